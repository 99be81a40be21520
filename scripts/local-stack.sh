#!/usr/bin/env bash
# The docker-compose.yml stack without containers, on loopback: redis-server (AOF), the
# exporter, Debian's prometheus (1 s scrape and evaluation, deploy/prometheus/rules.yml,
# alerting to the local Alertmanager) and prometheus-alertmanager
# (deploy/alertmanager/alertmanager.yml), each on a free port in a temporary directory.
#
#   bash scripts/local-stack.sh [--for SECONDS] [--env-file PATH]
#
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

TARGET=local
duration=600
env_file=

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

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

workdir=$(mktemp -d "${TMPDIR:-/tmp}/redis-persistence-stack.XXXXXX")
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stack_stop_all
    rm -rf "${workdir}"
    exit "${status}"
}
trap cleanup EXIT
# Stopping on request is the normal way to end early, hence exit 0 on TERM.
trap 'exit 130' INT
trap 'exit 0' TERM

build_exporter

redis_port=$(free_port)
log "redis-server (appendonly yes) on 127.0.0.1:${redis_port}"
mkdir -p "${workdir}/redis"
start_redis "${workdir}/redis" "${redis_port}"

exporter_port=$(free_port)
write_exporter_config "${workdir}/exporter.toml" "${exporter_port}" "${redis_port}" "${TARGET}" "${workdir}/redis"
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

cat <<EOF

Local stack is up for ${duration}s (Ctrl-C to stop earlier). Files: ${workdir}
  redis        redis-cli -p ${redis_port}
  exporter     http://127.0.0.1:${exporter_port}/metrics
  prometheus   http://127.0.0.1:${prometheus_port}  (alerts: /alerts, rules: /rules)
  alertmanager http://127.0.0.1:${alertmanager_port}

EOF

if [[ -n "${env_file}" ]]; then
    # Written to a temporary name and renamed, so a reader never sees half a file.
    cat >"${env_file}.tmp" <<EOF
STACK_DIR=${workdir}
REDIS_PORT=${redis_port}
REDIS_PID=${REDIS_PID}
EXPORTER_URL=http://127.0.0.1:${exporter_port}
PROMETHEUS_URL=http://127.0.0.1:${prometheus_port}
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
