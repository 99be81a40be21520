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
# then /metrics latency (curl %{time_total}, 20 scrapes 0.5 s apart while polling goes on),
# scraped as Prometheus does: Accept-Encoding: gzip, OpenMetrics.
#
# Then, with one exporter (--shards 1), the same config again UNPINNED, as a user runs it:
# the whole process on every core, CPU ticks (utime+stime) and schedstat over a second window
# divided by the polls in it, and context switches per poll. --unpinned-window S sets that
# window (default 20 s; 0 skips it). BENCH_UNPINNED_ENV="NAME=VALUE ..." adds environment to
# that run only (e.g. TOKIO_WORKER_THREADS=2 to compare runtime widths). BENCH_UNPINNED_PROFILE=1
# then profiles that exporter (perf stat, perf record, strace -c) into the run's folder.
#
# Also, from the redis-servers over the same window: commands and commandstats CPU per poll
# (CONFIG RESETSTAT at the start), and redis-server process CPU (utime+stime, background cron
# included) per poll.
#
# --keep-connections false runs the exporter with `keep_connections = false` (a connection per
# poll: ~0 descriptors per target between polls, fred's handshake on every poll).
# --shards N runs N exporters (`--shard k/N`), all pinned to core 0, and sums them: the way to
# fit 10,000 kept connections under a 20,000 descriptor limit.
# --targets N overrides the scenario's target count.
#
# Usage: bash scripts/bench-scale.sh [--scenario 1k|10k|both] [--servers N] [--window S]
#                                     [--keep-connections true|false] [--shards N] [--targets N]
#                                     [--unpinned-window S]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/stack.sh
source "${ROOT}/scripts/lib/stack.sh"

SCENARIO=both
SERVERS=4
WINDOW=""
KEEP=true
SHARDS=1
TARGETS=""
UNPINNED_WINDOW=20
while [[ $# -gt 0 ]]; do
    case $1 in
    --scenario) SCENARIO=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --keep-connections) KEEP=$2; shift 2 ;;
    --shards) SHARDS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --unpinned-window) UNPINNED_WINDOW=$2; shift 2 ;;
    -h | --help) sed -n '2,42p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ ${SCENARIO} =~ ^(1k|10k|both)$ ]] || die "--scenario must be 1k, 10k or both"
[[ ${SERVERS} =~ ^[0-9]+$ && ${SERVERS} -ge 1 && ${SERVERS} -le 16 ]] || die "--servers must be 1..16"
[[ -z ${WINDOW} || (${WINDOW} =~ ^[0-9]+$ && ${WINDOW} -ge 15 && ${WINDOW} -le 300) ]] ||
    die "--window must be 15..300 seconds"
[[ ${KEEP} =~ ^(true|false)$ ]] || die "--keep-connections must be true or false"
[[ ${SHARDS} =~ ^[1-4]$ ]] || die "--shards must be 1..4"
[[ ${UNPINNED_WINDOW} =~ ^[0-9]+$ && ${UNPINNED_WINDOW} -le 300 ]] || die "--unpinned-window must be 0..300 seconds"
[[ -z ${TARGETS} || (${TARGETS} =~ ^[0-9]+$ && ${TARGETS} -ge 2 && ${TARGETS} -le 20000) ]] ||
    die "--targets must be 2..20000"
require_redis
command -v taskset >/dev/null || die "taskset (util-linux) is needed"

# 3 descriptors per target in the exporter: the Redis socket, fred's end of the relay and the
# relay's accepted end (src/redis_client.rs relay_unix closes its unix listener after accept,
# so a 4th exists only while a target connects); redis-server needs maxclients + 32. Raising
# the hard limit needs CAP_SYS_RESOURCE: without it the big scenario is cut to the targets
# that fit, and says so.
# With keep_connections = false a target holds a descriptor only while its poll runs.
FDS_PER_TARGET=3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [[ ${KEEP} == true ]]; then
    FITS=$(((NOFILE - 100) / FDS_PER_TARGET * SHARDS))
else
    FITS=20000
fi

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
    build_exporter profiling
fi
# Run a private copy: other builds may replace target/profiling while we measure.
cp "${EXPORTER_BIN}" "${WORK}/exporter"
EXPORTER_BIN="${WORK}/exporter"

now() { date +%s.%N; }
scrape_to() { curl --silent --show-error --fail --max-time 30 --output "$2" "$1"; }

# --- Redis servers --------------------------------------------------------------------------
# Sums a per-process reading over a list of processes: sum_over PIDS_ARRAY FUNCTION [ARG].
sum_over() {
    local -n pids=$1
    local pid sum=0
    for pid in "${pids[@]}"; do sum=$((sum + $("$2" "${pid}" ${3:+"$3"}))); done
    echo "${sum}"
}

REDIS_PORTS=()
REDIS_PIDS=()
for ((s = 0; s < SERVERS; s++)); do
    port=$(free_port)
    mkdir -p "${WORK}/redis-${s}"
    start_redis "${WORK}/redis-${s}" "${port}" --maxclients 20000 --tcp-backlog 4096 \
        --enable-debug-command local
    populate_redis "${port}" 1000
    REDIS_PORTS+=("${port}")
    REDIS_PIDS+=("${REDIS_PID}")
done
# "calls usec" summed over every server's commandstats, leaving out the script's own
# CONFIG RESETSTAT.
redis_commandstats() {
    local port
    for port in "${REDIS_PORTS[@]}"; do redis-cli -p "${port}" info commandstats; done |
        tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_config|resetstat" {
            c += $3; u += $5; n[$1] += $3 }
            END { printf "%d %d", c, u; for (k in n) printf " %s=%d", substr(k, 9), n[k]; print "" }'
}

# write_config PATH TARGETS INTERVAL TIMEOUT LISTEN_PORT
write_config() {
    local path=$1 targets=$2 interval=$3 timeout=$4 listen=$5 i
    {
        printf 'poll_interval = "%s"\npoll_timeout = "%s"\nlisten_address = "127.0.0.1:%s"\n' \
            "${interval}" "${timeout}" "${listen}"
        printf 'keep_connections = %s\n' "${KEEP}"
        for ((i = 0; i < targets; i++)); do
            printf '\n[[targets]]\nname = "t%05d"\nurl = "redis://127.0.0.1:%s"\n' \
                "${i}" "${REDIS_PORTS[i % SERVERS]}"
        done
    } >"${path}"
}

# start_pinned CONFIG LOG PORT TIMEOUT [ARGS...]: the exporter on core 0; sets EXPORTER_PID.
start_pinned() {
    taskset -c 0 "${EXPORTER_BIN}" --config "$1" --log.level warn "${@:5}" >"$2" 2>&1 &
    EXPORTER_PID=$!
    STACK_PIDS+=("${EXPORTER_PID}")
    await_ready "${EXPORTER_PID}" exporter "$2" "$4" http_get "http://127.0.0.1:$3/metrics"
}

# profile_unpinned DIR PID: where the unpinned exporter's time goes, 10 s each: scheduler
# counts (perf stat), a call-graph profile (perf record, cpu-clock) and system calls
# (strace -c, which slows the process: its counts matter, not its times). Reports go to
# DIR/profile-*.txt; the polls counted during each are in DIR/profile-polls.txt.
profile_unpinned() {
    local dir=$1 pid=$2 before after
    command -v perf >/dev/null 2>&1 || die "BENCH_UNPINNED_PROFILE needs perf (apt-get install linux-perf)"
    command -v strace >/dev/null 2>&1 || die "BENCH_UNPINNED_PROFILE needs strace (apt-get install strace)"
    polls_now() {
        http_get "http://127.0.0.1:${ports[0]}/metrics" |
            awk '/^redis_persistence_exporter_polls_total/ {s += $NF} END {printf "%d\n", s}'
    }
    before=$(polls_now)
    perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "${pid}" -- sleep 10 \
        2>"${dir}/profile-perf-stat.txt"
    after=$(polls_now)
    echo "perf stat: $((after - before)) polls" >"${dir}/profile-polls.txt"
    perf record -q -F 999 -g -p "${pid}" -o "${dir}/perf.data" -- sleep 10 2>/dev/null
    perf report -q -i "${dir}/perf.data" --no-children --sort dso,symbol --stdio -g none \
        --percent-limit 0.7 >"${dir}/profile-perf-report.txt" 2>/dev/null
    before=$(polls_now)
    timeout -s INT 10 strace -c -f -p "${pid}" -o "${dir}/profile-strace.txt" || true
    after=$(polls_now)
    echo "strace: $((after - before)) polls" >>"${dir}/profile-polls.txt"
}

# start_unpinned CONFIG LOG PORT TIMEOUT: the exporter on every core, as a user runs it, with
# BENCH_UNPINNED_ENV added; sets EXPORTER_PID.
start_unpinned() {
    # Word splitting of BENCH_UNPINNED_ENV into NAME=VALUE pairs is intended.
    # shellcheck disable=SC2086
    env ${BENCH_UNPINNED_ENV:-} "${EXPORTER_BIN}" --config "$1" --log.level warn >"$2" 2>&1 &
    EXPORTER_PID=$!
    STACK_PIDS+=("${EXPORTER_PID}")
    await_ready "${EXPORTER_PID}" exporter "$2" "$4" http_get "http://127.0.0.1:$3/metrics"
}

# Context switches (voluntary + involuntary) of all live threads of a process.
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {s += $2} END {printf "%.0f\n", s}'
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
    local dir=${WORK}/${label} i k
    mkdir -p "${dir}"
    local ports=()
    PIDS=()
    log "${label}: ${targets} targets every ${interval}s on core 0 (${SERVERS} redis-servers, ${SHARDS} exporter(s), keep_connections = ${KEEP}); load $(cut -d' ' -f1-3 /proc/loadavg)"
    local t_start=${SECONDS}
    for ((k = 0; k < SHARDS; k++)); do
        ports+=("$(free_port)")
        write_config "${dir}/config-${k}.toml" "${targets}" "${interval}s" "${timeout}" "${ports[k]}"
        if ((SHARDS > 1)); then
            start_pinned "${dir}/config-${k}.toml" "${dir}/exporter-${k}.log" "${ports[k]}" 60 --shard "${k}/${SHARDS}"
        else
            start_pinned "${dir}/config-${k}.toml" "${dir}/exporter-${k}.log" "${ports[k]}" 60
        fi
        PIDS+=("${EXPORTER_PID}")
    done
    # scrape_all NAME: /metrics of every exporter to ${dir}/NAME-k.txt.
    scrape_all() {
        local k
        for ((k = 0; k < SHARDS; k++)); do
            scrape_to "http://127.0.0.1:${ports[k]}/metrics" "${dir}/$1-${k}.txt" || return 1
        done
    }

    # Every target up: first polls are spread over one interval, then connections settle.
    local deadline=$((SECONDS + 3 * interval + 30)) up=0
    while ((SECONDS < deadline)); do
        up=0
        if scrape_all warm; then
            for ((k = 0; k < SHARDS; k++)); do
                up=$((up + $(metric_sum "${dir}/warm-${k}.txt" redis_up)))
            done
        fi
        [[ ${up} -ge ${targets} ]] && break
        sleep 1
    done
    [[ ${up} -ge ${targets} ]] || die "${label}: only ${up}/${targets} targets up after warm-up (see ${dir}/exporter-*.log)"
    log "${label}: all ${targets} targets up after $((SECONDS - t_start)) s; one more interval to settle"
    sleep "${interval}"

    # Window: /metrics at both ends, nothing in between.
    local port
    for port in "${REDIS_PORTS[@]}"; do redis-cli -p "${port}" config resetstat >/dev/null; done
    scrape_all m0
    local w0 ns0 tk0 rtk0 w1 ns1 tk1 rtk1 load0 load1
    local cs0 cs1
    w0=$(now); ns0=$(sum_over PIDS sched_ns); tk0=$(sum_over PIDS cpu_ticks); rtk0=$(sum_over REDIS_PIDS cpu_ticks)
    cs0=$(sum_over PIDS ctx_switches)
    load0=$(cut -d' ' -f1 /proc/loadavg)
    sleep "${window}"
    ns1=$(sum_over PIDS sched_ns); tk1=$(sum_over PIDS cpu_ticks); rtk1=$(sum_over REDIS_PIDS cpu_ticks); w1=$(now)
    cs1=$(sum_over PIDS ctx_switches)
    load1=$(cut -d' ' -f1 /proc/loadavg)
    local cmdstats
    cmdstats=$(redis_commandstats)
    scrape_all m1
    local rss hwm threads anon fds
    rss=$(sum_over PIDS status_kib VmRSS); hwm=$(sum_over PIDS status_kib VmHWM)
    threads=$(sum_over PIDS status_kib Threads); anon=$(sum_over PIDS rollup_kib Anonymous)
    fds=$(sum_over PIDS fd_count)

    # Per-target poll counts: expected window/interval, +-1 for where the window cuts.
    local verdict
    verdict=$(awk -v win="$(awk -v a="${w0}" -v b="${w1}" 'BEGIN {print b - a}')" -v iv="${interval}" '
        /^redis_persistence_exporter_polls_total\{/ {
            match($0, /target="[^"]*"/); t = substr($0, RSTART, RLENGTH)
            if (FILENAME ~ /\/m0-/) a[t] = $NF; else b[t] = $NF
        }
        END {
            ex = win / iv; n = 0; bad = 0; min = 1e18; max = 0; sum = 0
            for (t in b) {
                d = b[t] - a[t]; n++; sum += d
                if (d < min) min = d; if (d > max) max = d
                if (d < ex - 1 || d > ex + 1) bad++
            }
            printf "%d %d %.2f %d %d %d\n", n, sum, ex, min, max, bad
        }' "${dir}"/m0-*.txt "${dir}"/m1-*.txt)
    local seen total_polls expected pmin pmax missed
    read -r seen total_polls expected pmin pmax missed <<<"${verdict}"

    # Poll durations in the window: cumulative bucket counts summed over targets, m1 - m0.
    awk '/^redis_persistence_exporter_poll_duration_seconds_bucket\{/ {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            if (FILENAME ~ /\/m0-/) a[le] += $NF; else b[le] += $NF
        }
        END { for (le in b) printf "%s %d\n", le, b[le] - a[le] }' "${dir}"/m0-*.txt "${dir}"/m1-*.txt |
        sort -g >"${dir}/durations.txt"
    local failures0=0 failures1=0 failures
    for ((k = 0; k < SHARDS; k++)); do
        failures0=$((failures0 + $(metric_sum "${dir}/m0-${k}.txt" redis_persistence_exporter_poll_failures_total)))
        failures1=$((failures1 + $(metric_sum "${dir}/m1-${k}.txt" redis_persistence_exporter_poll_failures_total)))
    done
    failures=$((failures1 - failures0))
    local timeout_s
    timeout_s=$(awk -v t="${timeout}" 'BEGIN { if (t ~ /ms$/) print substr(t, 1, length(t) - 2) / 1000; else print substr(t, 1, length(t) - 1) }')
    # Late: slower than 10% of poll_timeout (cumulative count up to the first bucket >= that).
    local within_1ms within_10ms late
    within_1ms=$(awk '$1 == 0.001 {print $2}' "${dir}/durations.txt")
    within_10ms=$(awk '$1 == 0.01 {print $2}' "${dir}/durations.txt")
    late=$(awk -v lim="$(awk -v t="${timeout_s}" 'BEGIN {print t / 10}')" -v total="${total_polls}" '
        $1 >= lim && !done {print total - $2; done = 1}' "${dir}/durations.txt")

    local cpu_us cpu_tick_us rss_per cpu_share hz
    hz=$(getconf CLK_TCK)
    cpu_us=$(awk -v d=$((ns1 - ns0)) -v p="${total_polls}" 'BEGIN {printf "%.1f", d / 1000 / p}')
    cpu_tick_us=$(awk -v d=$((tk1 - tk0)) -v p="${total_polls}" -v hz="${hz}" 'BEGIN {printf "%.1f", d * 1e6 / hz / p}')
    local cs_per
    cs_per=$(awk -v d=$((cs1 - cs0)) -v p="${total_polls}" 'BEGIN {printf "%.2f", d / p}')
    cpu_share=$(awk -v d=$((ns1 - ns0)) -v a="${w0}" -v b="${w1}" 'BEGIN {printf "%.1f", d / 1e9 / (b - a) * 100}')
    # Per target: the exporters' total minus one baseline process per exporter.
    local base_n=$((targets - SHARDS))
    rss_per=$(awk -v r="${rss}" -v b=$((BASE_RSS * SHARDS)) -v n="${base_n}" 'BEGIN {printf "%.1f", (r - b) / n}')
    local anon_per fds_per
    anon_per=$(awk -v r="${anon}" -v b=$((BASE_ANON * SHARDS)) -v n="${base_n}" 'BEGIN {printf "%.1f", (r - b) / n}')
    fds_per=$(awk -v r="${fds}" -v b=$((BASE_FDS * SHARDS)) -v n="${base_n}" 'BEGIN {printf "%.2f", (r - b) / n}')
    # Redis side, all servers: commands and commandstats usec per poll, process CPU per poll.
    local calls usec by_command redis_cmd_per redis_usec_per redis_proc_us
    read -r calls usec by_command <<<"${cmdstats}"
    redis_cmd_per=$(awk -v c="${calls}" -v p="${total_polls}" 'BEGIN {printf "%.2f", c / p}')
    redis_usec_per=$(awk -v u="${usec}" -v p="${total_polls}" 'BEGIN {printf "%.1f", u / p}')
    redis_proc_us=$(awk -v d=$((rtk1 - rtk0)) -v p="${total_polls}" -v hz="${hz}" 'BEGIN {printf "%.1f", d * 1e6 / hz / p}')

    # /metrics latency while polling goes on: 20 scrapes of the first exporter, 0.5 s apart,
    # asking what Prometheus asks for (the body stays gzipped: size_download is on the wire).
    : >"${dir}/lat.txt"
    for ((i = 0; i < 20; i++)); do
        curl --silent --output /dev/null --max-time 30 --write-out '%{time_total} %{size_download}\n' \
            -H 'Accept-Encoding: gzip' \
            -H 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' \
            "http://127.0.0.1:${ports[0]}/metrics" >>"${dir}/lat.txt" || echo "30 0" >>"${dir}/lat.txt"
        sleep 0.5
    done
    local body_bytes series_per_target
    body_bytes=$(wc -c <"${dir}/m1-0.txt")
    series_per_target=$(grep -c 'target="t00000"' "${dir}/m1-0.txt" || true)
    local lat load_lat
    load_lat=$(cut -d' ' -f1 /proc/loadavg)
    lat=$(sort -g "${dir}/lat.txt" | awk '{v[NR] = $1 * 1000; sz = $2} END {
        printf "%.1f / %.1f / %.1f ms (%d bytes gzipped)", v[int(NR / 2 + 0.5)], v[int(NR * 0.9 + 0.5)], v[NR], sz }')

    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "${pid}"
        unset 'STACK_PIDS[${#STACK_PIDS[@]}-1]'
    done

    # The same config unpinned, as a user runs it (one exporter only).
    local unpinned="not run (--shards ${SHARDS} or --unpinned-window 0)" u_threads=-
    if ((SHARDS == 1 && UNPINNED_WINDOW > 0)); then
        log "${label}: unpinned run (${BENCH_UNPINNED_ENV:-default environment}), ${UNPINNED_WINDOW} s window"
        start_unpinned "${dir}/config-0.toml" "${dir}/unpinned.log" "${ports[0]}" 60
        PIDS=("${EXPORTER_PID}")
        deadline=$((SECONDS + 3 * interval + 30))
        while ((SECONDS < deadline)); do
            scrape_all uwarm && (($(metric_sum "${dir}/uwarm-0.txt" redis_up) >= targets)) && break
            sleep 1
        done
        sleep "${interval}"
        scrape_all u0
        local utk0 utk1 uns0 uns1 ucs0 ucs1 uw0 uw1 upolls uload0 uload1
        uload0=$(cut -d' ' -f1 /proc/loadavg)
        uw0=$(now); utk0=$(cpu_ticks "${EXPORTER_PID}"); uns0=$(sched_ns "${EXPORTER_PID}"); ucs0=$(ctx_switches "${EXPORTER_PID}")
        sleep "${UNPINNED_WINDOW}"
        utk1=$(cpu_ticks "${EXPORTER_PID}"); uns1=$(sched_ns "${EXPORTER_PID}"); ucs1=$(ctx_switches "${EXPORTER_PID}"); uw1=$(now)
        uload1=$(cut -d' ' -f1 /proc/loadavg)
        u_threads=$(status_kib "${EXPORTER_PID}" Threads)
        scrape_all u1
        upolls=$(($(metric_sum "${dir}/u1-0.txt" redis_persistence_exporter_polls_total) - $(metric_sum "${dir}/u0-0.txt" redis_persistence_exporter_polls_total)))
        if [[ -n "${BENCH_UNPINNED_PROFILE:-}" ]]; then
            # After the window, so the tools' own cost is not in the figures of the window.
            log "${label}: profiling the unpinned exporter (perf stat, perf record, strace -c; ~30 s)"
            profile_unpinned "${dir}" "${EXPORTER_PID}" || log "profiling failed; see ${dir}/profile-*"
        fi

        unpinned=$(awk -v t=$((utk1 - utk0)) -v n=$((uns1 - uns0)) -v c=$((ucs1 - ucs0)) -v p="${upolls}" -v hz="${hz}" \
            -v a="${uw0}" -v b="${uw1}" -v l0="${uload0}" -v l1="${uload1}" 'BEGIN {
            printf "%.1f us utime+stime, %.1f us schedstat, %.2f context switches per poll (%d polls in %.1f s; load %s / %s)",
                t * 1e6 / hz / p, n / 1000 / p, c / p, p, b - a, l0, l1 }')
        stop_pid "${EXPORTER_PID}"
        unset 'STACK_PIDS[${#STACK_PIDS[@]}-1]'
    fi

    RESULTS+=("$(
        cat <<EOF

== ${label}: ${targets} targets, interval ${interval}s, poll_timeout ${timeout}, keep_connections = ${KEEP}, ${SHARDS} exporter(s) on taskset -c 0, ${SERVERS} redis-servers
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
| context switches per target-poll (all threads) | ${cs_per} |
| exporter CPU per target-poll UNPINNED, whole process on $(nproc) cores (threads ${u_threads}) | ${unpinned} |
| exporter CPU share of core 0 | ${cpu_share} % |
| VmRSS / VmHWM, all exporters (KiB) | ${rss} / ${hwm} |
| RSS per target, (VmRSS - ${SHARDS} x ${BASE_RSS} KiB baseline) / (targets-${SHARDS}) | ${rss_per} KiB |
| smaps_rollup Anonymous; per target (baseline ${BASE_ANON} KiB each) | ${anon} KiB; ${anon_per} KiB |
| open descriptors; per target (baseline ${BASE_FDS} each) | ${fds}; ${fds_per} |
| threads (baseline ${BASE_THREADS} each) | ${threads} |
| Redis commands per poll (commandstats, all servers) | ${redis_cmd_per} (${by_command}) |
| Redis command CPU per poll (commandstats usec) | ${redis_usec_per} us |
| redis-server process CPU per poll (utime+stime, cron included) | ${redis_proc_us} us |
| /metrics latency p50 / p90 / max, gzip (20 scrapes; load ${load_lat} after) | ${lat} |
| /metrics body uncompressed; series (sample lines) per target | ${body_bytes} bytes, $((body_bytes / targets)) per target; ${series_per_target} |

   poll duration histogram deltas (le: cumulative count): $(tr '\n' ' ' <"${dir}/durations.txt")
EOF
    )")
    printf '%s\n' "${RESULTS[-1]}"
}

if [[ ${SCENARIO} == 1k || ${SCENARIO} == both ]]; then
    run_scenario 1k "${TARGETS:-1000}" 1 900ms "${WINDOW:-60}"
fi
if [[ ${SCENARIO} == 10k || ${SCENARIO} == both ]]; then
    big=${TARGETS:-10000}
    if ((FITS < big)); then
        log "WARNING: ulimit -n is ${NOFILE} (hard limit; raising it needs CAP_SYS_RESOURCE): 10,000 targets need ~$((10000 * FDS_PER_TARGET + 100)) descriptors at ${FDS_PER_TARGET} per target; running ${FITS} (or use --shards 2, or --keep-connections false)"
        big=${FITS}
    fi
    run_scenario 10k "${big}" 15 2s "${WINDOW:-90}"
fi

printf '\n== bench-scale summary: %s CPU(s), %s\n' "$(nproc)" "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
printf '%s\n' "${RESULTS[@]}"
