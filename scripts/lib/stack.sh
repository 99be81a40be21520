# shellcheck shell=bash
# Pieces shared by the scripts in scripts/: free loopback ports, bounded waits, starting
# redis-server, the exporter, Prometheus and Alertmanager as child processes of the calling
# script, and reading a process's CPU and memory from /proc. Source it; it defines functions
# only.
#
# The test that mirrors this stack is tests/dashboard_queries.rs (Stack::start): its Redis is
# RedisSpec::aof() in tests/support/redis.rs (same flags as start_redis, plus --maxmemory),
# its Prometheus config comes from prometheus_config / static_job in
# tests/support/prometheus.rs (same global block and job as write_prometheus_config). Change
# both sides together. Its 1,001-target stack is mirrored by scripts/bench-dashboard-queries.sh.
#
# Every process started here is recorded in STACK_PIDS; call stack_stop_all from an EXIT trap.

STACK_PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The repository root, whichever directory the script was started from.
repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# Prints a TCP port on 127.0.0.1 that nothing listens on right now. Ports come from below the
# Linux ephemeral range so outgoing connections do not take them between check and use.
free_port() {
    local attempt port
    for attempt in $(seq 1 100); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        # A refused connection means the port is free.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            printf '%s\n' "${port}"
            return 0
        fi
    done
    die "no free loopback port after ${attempt} attempts"
}

# http_get URL: prints the body; fails on connection errors and after 5 s.
http_get() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl --silent --show-error --fail --max-time 5 "${url}"
        return
    fi
    # Plain bash fallback for minimal hosts: http://HOST:PORT/PATH only.
    local rest=${url#http://}
    local hostport=${rest%%/*} path="/${rest#*/}"
    # The inner bash expands these, not this one.
    # shellcheck disable=SC2016
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$1" >&3
        # Drop the status line and headers.
        sed "1,/^\r\{0,1\}$/d" <&3
    ' _ "${hostport}" "${path}"
}

# wait_until TIMEOUT_SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it
# succeeds; fails after TIMEOUT_SECONDS (bounded in time and in attempts).
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout)) attempts=$((timeout * 5 + 1)) i
    for ((i = 0; i < attempts && SECONDS <= deadline; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    printf 'error: timed out after %ss waiting for %s\n' "${timeout}" "${what}" >&2
    return 1
}

# The process is still running (and not a zombie we have not reaped yet).
alive() { kill -0 "$1" 2>/dev/null; }

# stop_pid PID: TERM, up to 5 s to exit, then KILL.
stop_pid() {
    local pid=$1 i
    alive "${pid}" || return 0
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "${pid}" || break
        sleep 0.1
    done
    if alive "${pid}"; then
        kill -KILL "${pid}" 2>/dev/null || true
    fi
    wait "${pid}" 2>/dev/null || true
}

# stack_workdir NAME: a fresh temporary folder in ${workdir}, removed, with every process this
# library started, when the script exits (an EXIT trap; INT and TERM traps are the caller's).
stack_workdir() {
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap stack_cleanup EXIT
}
stack_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stack_stop_all
    rm -rf "${workdir}"
    exit "${status}"
}

# Stops every process this library started, newest first.
stack_stop_all() {
    local i
    for ((i = ${#STACK_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${STACK_PIDS[i]}"
    done
    STACK_PIDS=()
}

# await_ready PID NAME LOG TIMEOUT_SECONDS COMMAND...: waits until COMMAND succeeds; fails with
# the tail of LOG if the process exits first or TIMEOUT_SECONDS pass.
await_ready() {
    local pid=$1 name=$2 logfile=$3 timeout=$4
    shift 4
    local deadline=$((SECONDS + timeout)) attempts=$((timeout * 5 + 1)) i
    for ((i = 0; i < attempts && SECONDS <= deadline; i++)); do
        if ! alive "${pid}"; then
            printf 'error: %s exited during startup; last lines of %s:\n' "${name}" "${logfile}" >&2
            tail -n 20 "${logfile}" >&2 || true
            exit 1
        fi
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    printf 'error: %s not ready after %ss; last lines of %s:\n' "${name}" "${timeout}" "${logfile}" >&2
    tail -n 20 "${logfile}" >&2 || true
    exit 1
}

require_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        printf 'redis-server (and redis-cli) not found. Install it with:\n    sudo apt-get install redis-server\n' >&2
        exit 1
    fi
}

# start_redis DIR PORT [EXTRA_ARGS...]: an AOF redis-server on 127.0.0.1:PORT keeping its files
# in DIR, no RDB snapshots. Sets REDIS_PID.
start_redis() {
    local dir=$1 port=$2
    shift 2
    redis-server --port "${port}" --bind 127.0.0.1 --protected-mode yes \
        --dir "${dir}" --appendonly yes --save '' \
        --daemonize no --logfile "${dir}/redis.log" "$@" &
    REDIS_PID=$!
    STACK_PIDS+=("${REDIS_PID}")
    await_ready "${REDIS_PID}" redis-server "${dir}/redis.log" 10 redis-cli -p "${port}" ping
}

# populate_redis PORT KEYS: KEYS keys of 64 bytes. The server must have been started with
# --enable-debug-command local (Redis 7 refuses DEBUG otherwise, and redis-cli exits 0 on an
# error reply, so the reply is checked).
populate_redis() {
    local reply
    reply=$(redis-cli -p "$1" debug populate "$2" key 64)
    [[ ${reply} == OK ]] || die "DEBUG POPULATE on port $1 failed: ${reply}"
}

# Readings of a process from /proc, for the benchmark scripts.
# utime+stime in clock ticks (fields 14 and 15, counted after the ")" that ends comm).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# CPU time of all live threads in ns (first field of each task's schedstat).
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# A field of /proc/<pid>/status in KiB (VmRSS, VmHWM) or as a count (Threads).
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# A field of /proc/<pid>/smaps_rollup in KiB (Rss, Anonymous, Private_Dirty, ...).
rollup_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# build_exporter [PROFILE]: quiet build with the cargo profile PROFILE (default release, the
# stripped binary people install; the benchmarks pass profiling, release code with symbols for
# perf); sets EXPORTER_BIN.
build_exporter() {
    local root profile=${1:-release}
    root=$(repo_root)
    log "building the exporter (cargo build --profile ${profile})"
    (cd "${root}" && cargo build --profile "${profile}" --quiet) ||
        die "cargo build --profile ${profile} failed"
    EXPORTER_BIN="${CARGO_TARGET_DIR:-${root}/target}/${profile}/redis-persistence-exporter"
    [[ -x "${EXPORTER_BIN}" ]] || die "built binary not found at ${EXPORTER_BIN}"
}

# write_exporter_config PATH LISTEN_PORT REDIS_PORT TARGET_NAME REDIS_DIR: data_dir lets the
# exporter report free disk space there, as it would running beside Redis.
write_exporter_config() {
    cat >"$1" <<EOF
poll_interval = "1s"
poll_timeout = "900ms"
listen_address = "127.0.0.1:$2"

[[targets]]
url = "redis://127.0.0.1:$3"
name = "$4"
data_dir = "$5"
EOF
}

# start_exporter CONFIG LOG PORT: sets EXPORTER_PID and waits until /metrics answers.
start_exporter() {
    local config=$1 logfile=$2 port=$3
    "${EXPORTER_BIN}" --config "${config}" --log.level warn >"${logfile}" 2>&1 &
    EXPORTER_PID=$!
    STACK_PIDS+=("${EXPORTER_PID}")
    await_ready "${EXPORTER_PID}" exporter "${logfile}" 15 http_get "http://127.0.0.1:${port}/metrics"
}

# metrics_show PORT PATTERN: /metrics has a line matching the extended regex PATTERN.
metrics_show() {
    http_get "http://127.0.0.1:$1/metrics" | grep -Eq -- "$2"
}

# write_prometheus_config PATH EXPORTER_PORT ALERTMANAGER_PORT RULES_FILE: 1 s scrape and
# evaluation, the job name the rules and the dashboard expect.
write_prometheus_config() {
    cat >"$1" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $4
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$3"]
scrape_configs:
  - job_name: redis-persistence-exporter
    static_configs:
      - targets: ["127.0.0.1:$2"]
EOF
}

# start_prometheus CONFIG DATA_DIR PORT LOG: sets PROMETHEUS_PID and waits until ready.
start_prometheus() {
    local config=$1 data=$2 port=$3 logfile=$4
    prometheus --config.file="${config}" --storage.tsdb.path="${data}" \
        --web.listen-address="127.0.0.1:${port}" >"${logfile}" 2>&1 &
    PROMETHEUS_PID=$!
    STACK_PIDS+=("${PROMETHEUS_PID}")
    await_ready "${PROMETHEUS_PID}" prometheus "${logfile}" 30 http_get "http://127.0.0.1:${port}/-/ready"
}

# start_alertmanager CONFIG DATA_DIR PORT LOG: sets ALERTMANAGER_PID and waits until ready.
# Clustering is off so nothing listens beyond the loopback web port.
start_alertmanager() {
    local config=$1 data=$2 port=$3 logfile=$4
    prometheus-alertmanager --config.file="${config}" --storage.path="${data}" \
        --web.listen-address="127.0.0.1:${port}" --cluster.listen-address= \
        >"${logfile}" 2>&1 &
    ALERTMANAGER_PID=$!
    STACK_PIDS+=("${ALERTMANAGER_PID}")
    await_ready "${ALERTMANAGER_PID}" alertmanager "${logfile}" 30 http_get "http://127.0.0.1:${port}/-/ready"
}
