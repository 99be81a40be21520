#!/usr/bin/env bash
# The docker-compose.yml stack without containers, on loopback: three redis-servers, the
# exporter, Debian's prometheus (1 s scrape and evaluation, deploy/prometheus/rules.yml,
# alerting to the local Alertmanager) and prometheus-alertmanager
# (deploy/alertmanager/alertmanager.yml), each on a free port in a temporary directory.
#
#   bash scripts/local-stack.sh [--for SECONDS] [--healthy] [--env-file PATH]
#
#   Four targets: orders and sessions (AOF, env=prod), cache (RDB only) and gone (nothing
#   listens), both env=dev. orders' AOF rewrite child is killed once the stack is up, so its
#   card is err, as in scripts/demo.sh --inject-failure.
#
#   --healthy        leave every card as it is (no killed rewrite)
#   --for SECONDS    stay up this long, then stop everything (default 600)
#   --env-file PATH  once everything is ready, write the addresses there as shell assignments
#                    (REDIS_PORT=..., EXPORTER_URL=..., PROMETHEUS_URL=..., ALERTMANAGER_URL=...,
#                    STACK_DIR=...), so a test can start this script in the background, wait
#                    for the file, use the stack and end it with SIGTERM
#
# Needs: sudo apt-get install redis-server prometheus prometheus-alertmanager
# Ctrl-C, SIGTERM or the end of --for stops every process and removes the directory.
set -euo pipefail

# shellcheck source=scripts/lib/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"

TARGET=orders
inject_failure=true
duration=600
env_file=

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($# > 0)); do
    case "$1" in
        --for)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--for needs a number of seconds"
            duration=$2
            shift 2
            ;;
        --env-file)
            [[ $# -ge 2 && -n "$2" ]] || die "--env-file needs a path"
            env_file=$2
            shift 2
            ;;
        --healthy)
            inject_failure=false
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
done

require_redis
for tool in prometheus prometheus-alertmanager; do
    command -v "${tool}" >/dev/null 2>&1 ||
        die "${tool} not found; install it with: sudo apt-get install ${tool}"
done

root=$(repo_root)
rules="${root}/deploy/prometheus/rules.yml"
alertmanager_config="${root}/deploy/alertmanager/alertmanager.yml"
[[ -f "${rules}" ]] || die "missing ${rules}"
[[ -f "${alertmanager_config}" ]] || die "missing ${alertmanager_config}"

stack_workdir redis-persistence-stack
# Stopping on request is the normal way to end early, hence exit 0 on TERM.
trap 'exit 130' INT
trap 'exit 0' TERM

build_exporter

# A small fleet, so the status page's filters and the fleet dashboard's queries have something
# to tell apart: two AOF servers in prod, an RDB-only server and a target that is down, in dev.
orders_port=$(free_port)
sessions_port=$(free_port)
cache_port=$(free_port)
gone_port=$(free_port)
mkdir -p "${workdir}/orders" "${workdir}/sessions" "${workdir}/cache"
log "redis-server ${TARGET} (AOF) on 127.0.0.1:${orders_port}"
start_redis "${workdir}/orders" "${orders_port}" --enable-debug-command local
ORDERS_PID=${REDIS_PID}
log "redis-server sessions (AOF) on 127.0.0.1:${sessions_port}"
start_redis "${workdir}/sessions" "${sessions_port}"
log "redis-server cache (RDB only) on 127.0.0.1:${cache_port}"
start_redis "${workdir}/cache" "${cache_port}" --appendonly no --save '3600 1'
log "target gone: 127.0.0.1:${gone_port}, where nothing listens"

exporter_port=$(free_port)
cat >"${workdir}/exporter.toml" <<CONFIG
poll_interval = "1s"
poll_timeout = "900ms"
listen_address = "127.0.0.1:${exporter_port}"

[[targets]]
url = "redis://127.0.0.1:${orders_port}"
name = "${TARGET}"
labels = { env = "prod", team = "payments" }
data_dir = "${workdir}/orders"
log_file = "${workdir}/orders/redis.log"

[[targets]]
url = "redis://127.0.0.1:${sessions_port}"
name = "sessions"
labels = { env = "prod", team = "web" }
data_dir = "${workdir}/sessions"

[[targets]]
url = "redis://127.0.0.1:${cache_port}"
name = "cache"
labels = { env = "dev", team = "web" }

[[targets]]
url = "redis://127.0.0.1:${gone_port}"
name = "gone"
labels = { env = "dev", team = "payments" }
CONFIG
log "exporter on 127.0.0.1:${exporter_port}"
start_exporter "${workdir}/exporter.toml" "${workdir}/exporter.log" "${exporter_port}"

alertmanager_port=$(free_port)
log "alertmanager on 127.0.0.1:${alertmanager_port}"
start_alertmanager "${alertmanager_config}" "${workdir}/alertmanager-data" \
    "${alertmanager_port}" "${workdir}/alertmanager.log"

prometheus_port=$(free_port)
write_prometheus_config "${workdir}/prometheus.yml" "${exporter_port}" "${alertmanager_port}" "${rules}"
log "prometheus on 127.0.0.1:${prometheus_port}"
start_prometheus "${workdir}/prometheus.yml" "${workdir}/prometheus-data" \
    "${prometheus_port}" "${workdir}/prometheus.log"

# Ready means Prometheus has scraped a healthy target, not merely that it answers.
prometheus_sees_target() {
    http_get "http://127.0.0.1:${prometheus_port}/api/v1/query?query=redis_up%7Btarget%3D%22${TARGET}%22%7D%3D%3D1" |
        grep -q '"result":\[{'
}
wait_until 30 "Prometheus to scrape the exporter" prometheus_sees_target

# card_is TARGET STATE: that target's card reads STATE in /metrics.
card_is() {
    metrics_show "${exporter_port}" "^redis_aof_rewrite_state\\{target=\"$1\".*state=\"$2\"\\} 1(\\.0)?\$"
}
if [[ "${inject_failure}" == true ]]; then
    # A real failure, as in scripts/demo.sh: a slowed rewrite whose child is killed.
    log "making ${TARGET} fail for real: kill -9 of its AOF rewrite child"
    populate_redis "${orders_port}" 20000
    redis-cli -p "${orders_port}" CONFIG SET rdb-key-save-delay 1000 >/dev/null
    redis-cli -p "${orders_port}" BGREWRITEAOF >/dev/null
    rewrite_child() { ps --ppid "${ORDERS_PID}" -o pid= | tr -d ' ' | head -n 1; }
    has_child() { [[ -n "$(rewrite_child)" ]]; }
    wait_until 10 "the rewrite child of ${TARGET}" has_child
    kill -9 "$(rewrite_child)"
    redis-cli -p "${orders_port}" CONFIG SET rdb-key-save-delay 0 >/dev/null
    wait_until 30 "the card of ${TARGET} to turn err" card_is "${TARGET}" err
fi

exporter=http://127.0.0.1:${exporter_port}
prometheus=http://127.0.0.1:${prometheus_port}
# The fleet dashboard's "err" count, URL-encoded for a Prometheus graph link.
err_count='count(max without (state) (redis_aof_rewrite_state{state="err"}) == 1) or vector(0)'
err_count_uri=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' \
    "${err_count}" 2>/dev/null || printf '%s' "${err_count}")
failure_line="Every card is healthy (--healthy)."
if [[ "${inject_failure}" == true ]]; then
    failure_line="The AOF rewrite child of ${TARGET} was killed: its card is err. Fix it with:
  redis-cli -p ${orders_port} BGREWRITEAOF"
fi

cat <<EOF

Local stack is up for ${duration}s (Ctrl-C to stop earlier). Files: ${workdir}
Four targets: ${TARGET} and sessions (AOF, env=prod), cache (RDB only, env=dev) and gone
(nothing listens, env=dev). ${failure_line}

  status page   ${exporter}/                  worst first, counts at the top
                ${exporter}/?state=err        the failing cards only
                ${exporter}/?label=env:prod   prod only
                ${exporter}/target?name=${TARGET}
  metrics       ${exporter}/metrics
  prometheus    ${prometheus}/graph?g0.expr=${err_count_uri}&g0.tab=0
                (the fleet dashboard's err count; its other queries are in
                dashboards/redis-persistence-fleet.json)
                ${prometheus}/alerts           the shipped rules
  alertmanager  http://127.0.0.1:${alertmanager_port}
  redis         redis-cli -p ${orders_port} (${TARGET}), -p ${sessions_port} (sessions), -p ${cache_port} (cache)

EOF

if [[ -n "${env_file}" ]]; then
    # Written to a temporary name and renamed, so a reader never sees half a file.
    cat >"${env_file}.tmp" <<EOF
STACK_DIR=${workdir}
REDIS_PORT=${orders_port}
REDIS_PID=${ORDERS_PID}
EXPORTER_URL=${exporter}
PROMETHEUS_URL=${prometheus}
ALERTMANAGER_URL=http://127.0.0.1:${alertmanager_port}
TARGET=${TARGET}
EOF
    mv "${env_file}.tmp" "${env_file}"
fi

# Bounded: returns after --for seconds, or earlier if any process dies.
deadline=$((SECONDS + duration))
while ((SECONDS < deadline)); do
    for pid in "${STACK_PIDS[@]}"; do
        if ! alive "${pid}"; then
            for logfile in "${workdir}"/*.log "${workdir}"/redis/redis.log; do
                [[ -f "${logfile}" ]] || continue
                printf '\n--- last lines of %s ---\n' "${logfile##*/}" >&2
                tail -n 10 "${logfile}" >&2
            done
            die "process ${pid} exited; stopping the stack"
        fi
    done
    sleep 1
done
log "--for ${duration}s elapsed; stopping"
