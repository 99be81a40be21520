#!/usr/bin/env bash
# Scale: many targets on ONE core. Two scenarios, each bounded in time:
#
#   1k:  1,000 targets polled every 1 s  (poll_timeout 900ms)
#   10k: 10,000 targets polled every 15 s (poll_timeout 2s); fewer if `ulimit -n` cannot be
#        raised to fit 3 descriptors per target (the run says so)
#
# A handful of AOF redis-servers on loopback serve all targets: targets have distinct names
# and repeat the servers' URLs. Each target keeps its own connection, so file descriptors
# (3 per target, see below) and Redis maxclients are raised. The exporter runs under `taskset -c 0`.
#
# Over a window with no scrapes inside it, from /metrics at its start and end:
#   - polls per target: each target's redis_persistence_exporter_polls_total must advance by
#     window/interval +-1 (otherwise a missed poll), and none may fail (poll_failures_total);
#   - late polls: poll_duration histogram deltas, against poll_timeout;
#   - exporter CPU per target-poll (schedstat ns of all threads, and utime+stime);
#   - RSS per target: (VmRSS - VmRSS of the same binary with 1 target) / (targets - 1), and the
#     same for the anonymous part (/proc/<pid>/smaps_rollup), open descriptors and threads;
# then /metrics latency (curl %{time_total}, 20 scrapes 0.5 s apart while polling goes on).
#
# Usage: bash scripts/bench-scale.sh [--scenario 1k|10k|both] [--servers N] [--window S]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/stack.sh
source "${ROOT}/scripts/lib/stack.sh"

SCENARIO=both
SERVERS=4
WINDOW=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --scenario) SCENARIO=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ ${SCENARIO} =~ ^(1k|10k|both)$ ]] || die "--scenario must be 1k, 10k or both"
[[ ${SERVERS} =~ ^[0-9]+$ && ${SERVERS} -ge 1 && ${SERVERS} -le 16 ]] || die "--servers must be 1..16"
[[ -z ${WINDOW} || (${WINDOW} =~ ^[0-9]+$ && ${WINDOW} -ge 15 && ${WINDOW} -le 300) ]] ||
    die "--window must be 15..300 seconds"
require_redis
command -v taskset >/dev/null || die "taskset (util-linux) is needed"

# 3 descriptors per target in the exporter: the Redis socket, fred's end of the relay and the
# relay's accepted end (src/redis_client.rs relay_unix closes its unix listener after accept,
# so a 4th exists only while a target connects); redis-server needs maxclients + 32. Raising
# the hard limit needs CAP_SYS_RESOURCE: without it the big scenario is cut to the targets
# that fit, and says so.
FDS_PER_TARGET=3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
FITS=$(((NOFILE - 100) / FDS_PER_TARGET))

WORK=$(mktemp -d /tmp/bench-scale.XXXXXX)
cleanup() {
    stack_stop_all
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "${WORK}"
}
trap cleanup EXIT

# BENCH_EXPORTER_BIN=/path runs an already built binary (e.g. while the tree does not build).
if [[ -n ${BENCH_EXPORTER_BIN:-} ]]; then
    EXPORTER_BIN=${BENCH_EXPORTER_BIN}
else
    build_exporter
fi
# Run a private copy: other builds may replace target/release while we measure.
cp "${EXPORTER_BIN}" "${WORK}/exporter"
EXPORTER_BIN="${WORK}/exporter"

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# A field of /proc/<pid>/smaps_rollup in KiB (Rss, Anonymous, Private_Dirty, ...).
rollup_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
now() { date +%s.%N; }
scrape_to() { curl --silent --show-error --fail --max-time 30 --output "$2" "$1"; }

# --- Redis servers --------------------------------------------------------------------------
REDIS_PORTS=()
for ((s = 0; s < SERVERS; s++)); do
    port=$(free_port)
    mkdir -p "${WORK}/redis-${s}"
    start_redis "${WORK}/redis-${s}" "${port}" --maxclients 20000 --tcp-backlog 4096
    redis-cli -p "${port}" debug populate 1000 key 64 >/dev/null
    REDIS_PORTS+=("${port}")
done

# write_config PATH TARGETS INTERVAL TIMEOUT LISTEN_PORT
write_config() {
    local path=$1 targets=$2 interval=$3 timeout=$4 listen=$5 i
    {
        printf 'poll_interval = "%s"\npoll_timeout = "%s"\nlisten_address = "127.0.0.1:%s"\n' \
            "${interval}" "${timeout}" "${listen}"
        for ((i = 0; i < targets; i++)); do
            printf '\n[[targets]]\nname = "t%05d"\nurl = "redis://127.0.0.1:%s"\n' \
                "${i}" "${REDIS_PORTS[i % SERVERS]}"
        done
    } >"${path}"
}

# start_pinned CONFIG LOG PORT TIMEOUT: the exporter on core 0; sets EXPORTER_PID.
start_pinned() {
    taskset -c 0 "${EXPORTER_BIN}" --config "$1" --log.level warn >"$2" 2>&1 &
    EXPORTER_PID=$!
    STACK_PIDS+=("${EXPORTER_PID}")
    await_ready "${EXPORTER_PID}" exporter "$2" "$4" http_get "http://127.0.0.1:$3/metrics"
}

# Sum over targets of a self-metric's samples, from a saved exposition.
metric_sum() {
    awk -v re="^$2[{ ]" '$0 ~ re {s += $NF} END {printf "%.0f\n", s}' "$1"
}

# --- baseline: the same binary with 1 target ------------------------------------------------
log "baseline: VmRSS with 1 target"
port=$(free_port)
write_config "${WORK}/one.toml" 1 1s 900ms "${port}"
start_pinned "${WORK}/one.toml" "${WORK}/one.log" "${port}" 15
sleep 4
BASE_RSS=$(status_kib "${EXPORTER_PID}" VmRSS)
BASE_ANON=$(rollup_kib "${EXPORTER_PID}" Anonymous)
BASE_FDS=$(fd_count "${EXPORTER_PID}")
BASE_THREADS=$(status_kib "${EXPORTER_PID}" Threads)
stop_pid "${EXPORTER_PID}"
unset 'STACK_PIDS[${#STACK_PIDS[@]}-1]'
log "baseline: VmRSS ${BASE_RSS} KiB, anonymous ${BASE_ANON} KiB, ${BASE_FDS} descriptors, ${BASE_THREADS} threads"

RESULTS=()

# run_scenario LABEL TARGETS INTERVAL_S TIMEOUT WINDOW_S
run_scenario() {
    local label=$1 targets=$2 interval=$3 timeout=$4 window=$5
    local port dir=${WORK}/${label} i
    mkdir -p "${dir}"
    port=$(free_port)
    write_config "${dir}/config.toml" "${targets}" "${interval}s" "${timeout}" "${port}"
    log "${label}: ${targets} targets every ${interval}s on core 0 (${SERVERS} redis-servers); load $(cut -d' ' -f1-3 /proc/loadavg)"
    local t_start=${SECONDS}
    start_pinned "${dir}/config.toml" "${dir}/exporter.log" "${port}" 60
    local pid=${EXPORTER_PID}

    # Every target up: first polls are spread over one interval, then connections settle.
    local deadline=$((SECONDS + 3 * interval + 30)) up=0
    while ((SECONDS < deadline)); do
        scrape_to "http://127.0.0.1:${port}/metrics" "${dir}/warm.txt" || true
        up=$(metric_sum "${dir}/warm.txt" redis_up)
        [[ ${up} -ge ${targets} ]] && break
        sleep 1
    done
    [[ ${up} -ge ${targets} ]] || die "${label}: only ${up}/${targets} targets up after warm-up (see ${dir}/exporter.log)"
    log "${label}: all ${targets} targets up after $((SECONDS - t_start)) s; one more interval to settle"
    sleep "${interval}"

    # Window: /metrics at both ends, nothing in between.
    scrape_to "http://127.0.0.1:${port}/metrics" "${dir}/m0.txt"
    local w0 ns0 tk0 w1 ns1 tk1 load0 load1
    w0=$(now); ns0=$(sched_ns "${pid}"); tk0=$(cpu_ticks "${pid}"); load0=$(cut -d' ' -f1 /proc/loadavg)
    sleep "${window}"
    ns1=$(sched_ns "${pid}"); tk1=$(cpu_ticks "${pid}"); w1=$(now); load1=$(cut -d' ' -f1 /proc/loadavg)
    scrape_to "http://127.0.0.1:${port}/metrics" "${dir}/m1.txt"
    local rss hwm threads anon fds
    rss=$(status_kib "${pid}" VmRSS); hwm=$(status_kib "${pid}" VmHWM)
    threads=$(status_kib "${pid}" Threads); anon=$(rollup_kib "${pid}" Anonymous)
    fds=$(fd_count "${pid}")

    # Per-target poll counts: expected window/interval, +-1 for where the window cuts.
    local verdict
    verdict=$(awk -v win="$(awk -v a="${w0}" -v b="${w1}" 'BEGIN {print b - a}')" -v iv="${interval}" '
        /^redis_persistence_exporter_polls_total\{/ {
            match($0, /target="[^"]*"/); t = substr($0, RSTART, RLENGTH)
            if (FILENAME ~ /m0/) a[t] = $NF; else b[t] = $NF
        }
        END {
            ex = win / iv; n = 0; bad = 0; min = 1e18; max = 0; sum = 0
            for (t in b) {
                d = b[t] - a[t]; n++; sum += d
                if (d < min) min = d; if (d > max) max = d
                if (d < ex - 1 || d > ex + 1) bad++
            }
            printf "%d %d %.2f %d %d %d\n", n, sum, ex, min, max, bad
        }' "${dir}/m0.txt" "${dir}/m1.txt")
    local seen total_polls expected pmin pmax missed
    read -r seen total_polls expected pmin pmax missed <<<"${verdict}"

    # Poll durations in the window: cumulative bucket counts summed over targets, m1 - m0.
    awk '/^redis_persistence_exporter_poll_duration_seconds_bucket\{/ {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            if (FILENAME ~ /m0/) a[le] += $NF; else b[le] += $NF
        }
        END { for (le in b) printf "%s %d\n", le, b[le] - a[le] }' "${dir}/m0.txt" "${dir}/m1.txt" |
        sort -g >"${dir}/durations.txt"
    local failures0 failures1 failures
    failures0=$(metric_sum "${dir}/m0.txt" redis_persistence_exporter_poll_failures_total)
    failures1=$(metric_sum "${dir}/m1.txt" redis_persistence_exporter_poll_failures_total)
    failures=$((failures1 - failures0))
    local timeout_s
    timeout_s=$(awk -v t="${timeout}" 'BEGIN { if (t ~ /ms$/) print substr(t, 1, length(t) - 2) / 1000; else print substr(t, 1, length(t) - 1) }')
    # Late: slower than 10% of poll_timeout (cumulative count up to the first bucket >= that).
    local within_1ms within_10ms late
    within_1ms=$(awk '$1 == 0.001 {print $2}' "${dir}/durations.txt")
    within_10ms=$(awk '$1 == 0.01 {print $2}' "${dir}/durations.txt")
    late=$(awk -v lim="$(awk -v t="${timeout_s}" 'BEGIN {print t / 10}')" -v total="${total_polls}" '
        $1 >= lim && !done {print total - $2; done = 1}' "${dir}/durations.txt")

    local cpu_us cpu_tick_us rss_per cpu_share
    cpu_us=$(awk -v d=$((ns1 - ns0)) -v p="${total_polls}" 'BEGIN {printf "%.1f", d / 1000 / p}')
    cpu_tick_us=$(awk -v d=$((tk1 - tk0)) -v p="${total_polls}" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", d * 1e6 / hz / p}')
    cpu_share=$(awk -v d=$((ns1 - ns0)) -v a="${w0}" -v b="${w1}" 'BEGIN {printf "%.1f", d / 1e9 / (b - a) * 100}')
    rss_per=$(awk -v r="${rss}" -v b="${BASE_RSS}" -v n="${targets}" 'BEGIN {printf "%.1f", (r - b) / (n - 1)}')
    local anon_per fds_per
    anon_per=$(awk -v r="${anon}" -v b="${BASE_ANON}" -v n="${targets}" 'BEGIN {printf "%.1f", (r - b) / (n - 1)}')
    fds_per=$(awk -v r="${fds}" -v b="${BASE_FDS}" -v n="${targets}" 'BEGIN {printf "%.2f", (r - b) / (n - 1)}')

    # /metrics latency while polling goes on: 20 scrapes, 0.5 s apart.
    : >"${dir}/lat.txt"
    for ((i = 0; i < 20; i++)); do
        curl --silent --output /dev/null --max-time 30 --write-out '%{time_total} %{size_download}\n' \
            "http://127.0.0.1:${port}/metrics" >>"${dir}/lat.txt" || echo "30 0" >>"${dir}/lat.txt"
        sleep 0.5
    done
    local lat load_lat
    load_lat=$(cut -d' ' -f1 /proc/loadavg)
    lat=$(sort -g "${dir}/lat.txt" | awk '{v[NR] = $1 * 1000; sz = $2} END {
        printf "%.1f / %.1f / %.1f ms (%d bytes)", v[int(NR / 2 + 0.5)], v[int(NR * 0.9 + 0.5)], v[NR], sz }')

    stop_pid "${pid}"
    unset 'STACK_PIDS[${#STACK_PIDS[@]}-1]'

    RESULTS+=("$(
        cat <<EOF

== ${label}: ${targets} targets, interval ${interval}s, poll_timeout ${timeout}, taskset -c 0, ${SERVERS} redis-servers
   window $(awk -v a="${w0}" -v b="${w1}" 'BEGIN {printf "%.1f", b - a}') s; load (1 min) at start/end of window: ${load0} / ${load1}; exporter threads ${threads}

| measure | value |
|---|---|
| targets seen in /metrics | ${seen} |
| polls in window (all targets) | ${total_polls} |
| polls per target: expected / min / max | ${expected} / ${pmin} / ${pmax} |
| targets outside expected +-1 (missed polls) | ${missed} |
| failed polls in window | ${failures} |
| polls taking <= 1 ms / <= 10 ms | ${within_1ms} / ${within_10ms} |
| polls slower than poll_timeout/10 (${timeout_s}s/10) | ${late:-0} |
| exporter CPU per target-poll, schedstat (us) | ${cpu_us} |
| exporter CPU per target-poll, utime+stime (us) | ${cpu_tick_us} |
| exporter CPU share of core 0 | ${cpu_share} % |
| VmRSS / VmHWM (KiB) | ${rss} / ${hwm} |
| RSS per target, (VmRSS - ${BASE_RSS} KiB baseline) / (targets-1) | ${rss_per} KiB |
| smaps_rollup Anonymous; per target (baseline ${BASE_ANON} KiB) | ${anon} KiB; ${anon_per} KiB |
| open descriptors; per target (baseline ${BASE_FDS}) | ${fds}; ${fds_per} |
| threads (baseline ${BASE_THREADS}) | ${threads} |
| /metrics latency p50 / p90 / max (20 scrapes; load ${load_lat} after) | ${lat} |

   poll duration histogram deltas (le: cumulative count): $(tr '\n' ' ' <"${dir}/durations.txt")
EOF
    )")
    printf '%s\n' "${RESULTS[-1]}"
}

if [[ ${SCENARIO} == 1k || ${SCENARIO} == both ]]; then
    run_scenario 1k 1000 1 900ms "${WINDOW:-60}"
fi
if [[ ${SCENARIO} == 10k || ${SCENARIO} == both ]]; then
    big=10000
    if ((FITS < big)); then
        log "WARNING: ulimit -n is ${NOFILE} (hard limit; raising it needs CAP_SYS_RESOURCE): 10,000 targets need ~$((10000 * FDS_PER_TARGET + 100)) descriptors at ${FDS_PER_TARGET} per target; running ${FITS}"
        big=${FITS}
    fi
    run_scenario 10k "${big}" 15 2s "${WINDOW:-90}"
fi

printf '\n== bench-scale summary: %s CPU(s), %s\n' "$(nproc)" "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
printf '%s\n' "${RESULTS[@]}"
