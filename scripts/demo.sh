#!/usr/bin/env bash
# Quick start: a throwaway AOF redis-server and the exporter on loopback, then the
# "Last AOF Rewrite Status" card as /metrics shows it.
#
#   bash scripts/demo.sh                   # healthy card
#   bash scripts/demo.sh --inject-failure  # ok -> kill the rewrite child -> err -> ok again
#
# Needs redis-server (sudo apt-get install redis-server) and a Rust toolchain. Everything it
# starts lives in a temporary directory and is stopped on exit.
set -euo pipefail

# shellcheck source=scripts/lib/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"

TARGET=demo
inject_failure=false

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "${arg}" in
        --inject-failure) inject_failure=true ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: ${arg}"
            ;;
    esac
done

require_redis
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"

stack_workdir redis-persistence-demo
trap 'exit 130' INT
trap 'exit 143' TERM

build_exporter

redis_port=$(free_port)
log "starting redis-server (appendonly yes) on 127.0.0.1:${redis_port}"
# DEBUG POPULATE is only used by --inject-failure, and only from loopback.
start_redis "${workdir}" "${redis_port}" --enable-debug-command local

exporter_port=$(free_port)
write_exporter_config "${workdir}/exporter.toml" "${exporter_port}" "${redis_port}" "${TARGET}" "${workdir}"
log "starting the exporter on 127.0.0.1:${exporter_port} (poll_interval 1s)"
start_exporter "${workdir}/exporter.toml" "${workdir}/exporter.log" "${exporter_port}"

rcli() { redis-cli -p "${redis_port}" "$@"; }

# card_is STATE: the card's one-hot series for STATE is 1.
card_is() {
    metrics_show "${exporter_port}" "^redis_aof_rewrite_state\\{.*state=\"$1\".*\\} 1(\\.0)?\$"
}

# Prints the card lines of /metrics under a heading.
show_card() {
    local metrics state
    metrics=$(http_get "http://127.0.0.1:${exporter_port}/metrics")
    state=$(grep -E '^redis_aof_rewrite_state\{.*\} 1(\.0)?$' <<<"${metrics}" |
        sed -E 's/.*state="([a-z_]+)".*/\1/' || true)
    printf '\n--- %s: card = %s ---\n' "$1" "${state:-unknown}"
    grep -E '^(redis_up|redis_aof_rewrite_state|redis_aof_last_bgrewrite_status|redis_aof_last_write_status|redis_aof_rewrite_in_progress|redis_aof_rewrites_consecutive_failures|redis_aof_rewrite_stuck|redis_aof_current_size_bytes|redis_aof_base_size_bytes|redis_aof_growth_ratio)\{' \
        <<<"${metrics}" || true
    printf '\n'
}

wait_until 30 "redis_up 1 for target ${TARGET}" \
    metrics_show "${exporter_port}" "^redis_up\\{target=\"${TARGET}\"\\} 1(\\.0)?\$"
wait_until 15 "the card to read ok" card_is ok
show_card "healthy"

if [[ "${inject_failure}" == true ]]; then
    log "filling 20000 keys and slowing the rewrite (rdb-key-save-delay 1000us per key)"
    rcli DEBUG POPULATE 20000 demo 100 >/dev/null
    rcli CONFIG SET rdb-key-save-delay 1000 >/dev/null

    log "BGREWRITEAOF, then kill -9 the rewrite child (as the OOM killer would)"
    rcli BGREWRITEAOF
    rewrite_child() { ps --ppid "${REDIS_PID}" -o pid= | tr -d ' ' | head -n 1; }
    has_child() { [[ -n "$(rewrite_child)" ]]; }
    wait_until 10 "the rewrite child process" has_child
    child=$(rewrite_child)
    log "killing rewrite child pid ${child}"
    kill -9 "${child}"

    wait_until 30 "the card to turn err" card_is err
    show_card "after the rewrite child was killed"

    log "removing the delay and running a clean BGREWRITEAOF"
    rcli CONFIG SET rdb-key-save-delay 0 >/dev/null
    # Redis may still be reaping the killed child for a moment; retry a bounded number of times.
    rewrite_started() { rcli BGREWRITEAOF | grep -q 'started\|scheduled'; }
    wait_until 10 "BGREWRITEAOF to be accepted" rewrite_started
    wait_until 60 "the card to return to ok" card_is ok
    show_card "after a clean rewrite"
fi

log "done; stopping redis-server and the exporter"
