#!/usr/bin/env bash
# Side-by-side cost of this exporter and the reference exporter (oliver006/redis_exporter, the
# Debian package prometheus-redis-exporter) against the same kind of Redis, in one run.
#
# Each exporter gets its own AOF redis-server on loopback so their INFO commandstats do not
# mix. This exporter polls every second and /metrics is scraped once a second; the reference
# exporter talks to Redis on each scrape and is scraped once a second too. Over the window:
#
#   - Redis commands and Redis command CPU (usec from INFO commandstats, reset with
#     CONFIG RESETSTAT) per poll (ours) and per scrape (reference),
#   - Redis reply bytes per poll/scrape (total_net_output_bytes): with ours this shows the mix
#     of `INFO persistence` polls (~0.9 KB) and full five-section polls (~4.5 KB),
#   - ours' Redis command CPU split by INFO form (SLOWLOG with slowlog-log-slower-than 0 on our
#     server only; a slowlog entry's duration is the same measure as commandstats usec),
#   - redis-server process CPU per poll/scrape (/proc/<pid>/task/*/schedstat, ns),
#   - exporter CPU (utime+stime from /proc/<pid>/stat, and schedstat for ns resolution),
#   - exporter RSS (VmRSS, VmHWM),
#   - /metrics latency (curl %{time_total}: p50, p90, p99, max), plus a short wrk run.
#
# --targets N (default 1) makes it a small fleet: each side's one server is polled as N targets
# (ours: N [[targets]] with the same URL, each polled every second; the reference: N
# `/scrape?target=` requests a second, its multi-target mode), so Redis answers N polls or
# scrapes a second instead of one, as a server in a fleet under one exporter does.
#
# Usage: bash scripts/bench-compare.sh [--duration SECONDS] [--keys N] [--no-wrk]
#        [--siblings-refresh DURATION] [--targets N]
# --siblings-refresh sets our siblings_refresh_interval (default: the exporter's, 30s): "1s"
# makes every poll a full INFO, "1h" makes every poll in the window `INFO persistence` only.
# Needs redis-server, redis-cli, curl; as root it installs prometheus-redis-exporter and wrk
# if missing. Everything listens on 127.0.0.1 only; every loop is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/stack.sh
source "${ROOT}/scripts/lib/stack.sh"

DURATION=60
KEYS=10000
RUN_WRK=1
SIBLINGS=""
TARGETS=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --no-wrk) RUN_WRK=0; shift ;;
    --siblings-refresh) SIBLINGS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ ${DURATION} =~ ^[0-9]+$ && ${DURATION} -ge 10 && ${DURATION} -le 600 ]] ||
    die "--duration must be 10..600 seconds"
[[ ${TARGETS} =~ ^[0-9]+$ && ${TARGETS} -ge 1 && ${TARGETS} -le 200 ]] || die "--targets must be 1..200"
[[ -z ${SIBLINGS} || ${SIBLINGS} =~ ^[0-9]+(s|m|h)$ ]] || die "--siblings-refresh must look like 1s, 30s, 1h"

require_redis
REF_BIN=/usr/bin/prometheus-redis-exporter
if [[ ! -x ${REF_BIN} ]] || { [[ ${RUN_WRK} == 1 ]] && ! command -v wrk >/dev/null; }; then
    if [[ $(id -u) == 0 ]]; then
        log "installing prometheus-redis-exporter and wrk"
        apt-get install -y prometheus-redis-exporter wrk >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y prometheus-redis-exporter wrk >/dev/null 2>&1; } ||
            die "apt-get install prometheus-redis-exporter wrk failed"
    fi
fi
[[ -x ${REF_BIN} ]] || die "${REF_BIN} missing: apt-get install prometheus-redis-exporter"
command -v wrk >/dev/null || RUN_WRK=0

WORK=$(mktemp -d /tmp/bench-compare.XXXXXX)
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

# --- helpers --------------------------------------------------------------------------------

# One `INFO stats commandstats` after the window (a single call, so this script's own read is
# counted in neither). Prints "calls usec out_bytes per-command-breakdown": calls and usec summed
# over every command except the bookkeeping this script sends (CONFIG RESETSTAT), out_bytes =
# total_net_output_bytes since the reset.
cmdstats() {
    redis-cli -p "$1" info stats commandstats | tr -d '\r' | awk -F'[:,=]' '
        $1 == "total_net_output_bytes" { bytes = $2 }
        /^cmdstat_/ {
            name = substr($1, 9)
            if (name == "config|resetstat") next
            calls += $3; usec += $5
            detail = detail sprintf("%s=%d/%dus ", name, $3, $5)
        }
        END { printf "%.0f %.0f %.0f %s\n", calls, usec, bytes, detail }'
}
# slowlog_split PORT: every INFO the exporter sent in the window, grouped by its arguments:
# "count x mean us (min-max)" per form. Entries are blank-line separated (the exporter sets no
# client name): id, time, duration, args..., client address.
slowlog_split() {
    redis-cli -p "$1" slowlog get "${SLOWLOG_LEN}" | tr -d '\r' | awk 'BEGIN {RS = ""; FS = "\n"}
        tolower($4) == "info" {
            args = ""
            for (i = 5; i < NF; i++) args = args (args == "" ? "" : " ") $i
            if (args == "stats commandstats") next   # this script reading the results
            if (args == "") args = "(none)"
            n[args]++; sum[args] += $3
            if (!(args in lo) || $3 < lo[args]) lo[args] = $3
            if ($3 > hi[args]) hi[args] = $3
        }
        END { for (a in n) printf "      INFO %s: %d x %.1f us (min %d, max %d)\n", a, n[a], sum[a] / n[a], lo[a], hi[a] }'
}
polls_total() {
    http_get "http://127.0.0.1:$1/metrics" |
        awk '/^redis_persistence_exporter_polls_total[{ ]/ {s += $NF} END {printf "%.0f\n", s}'
}
# percentiles FILE: p50 p90 p99 max of one number per line, in ms.
percentiles() {
    sort -g "$1" | awk '{v[NR] = $1 * 1000} END {
        i50 = int(NR * 0.50 + 0.5); i90 = int(NR * 0.90 + 0.5); i99 = int(NR * 0.99 + 0.5)
        if (i50 < 1) i50 = 1; if (i90 < 1) i90 = 1; if (i99 < 1) i99 = 1
        printf "%.2f %.2f %.2f %.2f\n", v[i50], v[i90], v[i99], v[NR] }'
}
scrape_time() {
    curl --silent --output /dev/null --max-time 5 --write-out '%{time_total}\n' "$1"
}
# ref_scrapes FILE: one round of the reference's scrapes (one connection), a time per line.
ref_scrapes() {
    curl --silent --max-time 10 --write-out '%{stderr}%{time_total}\n' "${REF_URLS[@]}" \
        2>>"$1" >/dev/null || echo 5 >>"$1"
}

# --- processes ------------------------------------------------------------------------------

OURS_REDIS_PORT=$(free_port)
REF_REDIS_PORT=$(free_port)
OURS_PORT=$(free_port)
REF_PORT=$(free_port)
BASE_REDIS_PORT=$(free_port)
mkdir -p "${WORK}/redis-ours" "${WORK}/redis-ref" "${WORK}/redis-idle"

start_redis "${WORK}/redis-ours" "${OURS_REDIS_PORT}" --enable-debug-command local
OURS_REDIS_PID=${REDIS_PID}
start_redis "${WORK}/redis-ref" "${REF_REDIS_PORT}" --enable-debug-command local
REF_REDIS_PID=${REDIS_PID}
# A third server nobody talks to: its CPU is the background cost (serverCron) to subtract.
start_redis "${WORK}/redis-idle" "${BASE_REDIS_PORT}" --enable-debug-command local
IDLE_REDIS_PID=${REDIS_PID}
# Same data on all, so INFO keyspace and memory fields look like a used server.
for port in "${OURS_REDIS_PORT}" "${REF_REDIS_PORT}" "${BASE_REDIS_PORT}"; do
    populate_redis "${port}" "${KEYS}"
done

SIBLINGS_LINE=""
[[ -z ${SIBLINGS} ]] || SIBLINGS_LINE="siblings_refresh_interval = \"${SIBLINGS}\""
cat >"${WORK}/exporter.toml" <<EOF
poll_interval = "1s"
poll_timeout = "900ms"
listen_address = "127.0.0.1:${OURS_PORT}"
${SIBLINGS_LINE}
EOF
for ((i = 0; i < TARGETS; i++)); do
    printf '\n[[targets]]\nname = "bench-%03d"\nurl = "redis://127.0.0.1:%s"\n' "${i}" "${OURS_REDIS_PORT}"
done >>"${WORK}/exporter.toml"
start_exporter "${WORK}/exporter.toml" "${WORK}/exporter.log" "${OURS_PORT}"
OURS_PID=${EXPORTER_PID}

# One target: its own /metrics. A fleet: its multi-target /scrape endpoint, N times a second.
REF_URLS=()
if ((TARGETS == 1)); then
    REF_ADDR="redis://127.0.0.1:${REF_REDIS_PORT}"
    REF_URLS+=("http://127.0.0.1:${REF_PORT}/metrics")
else
    REF_ADDR=""
    for ((i = 0; i < TARGETS; i++)); do
        REF_URLS+=("http://127.0.0.1:${REF_PORT}/scrape?target=redis://127.0.0.1:${REF_REDIS_PORT}")
    done
fi
"${REF_BIN}" -redis.addr "${REF_ADDR}" \
    -web.listen-address "127.0.0.1:${REF_PORT}" >"${WORK}/reference.log" 2>&1 &
REF_PID=$!
STACK_PIDS+=("${REF_PID}")
await_ready "${REF_PID}" reference "${WORK}/reference.log" 15 \
    http_get "http://127.0.0.1:${REF_PORT}/metrics"

log "warming up for 5 s (first polls, CONFIG GET, connection set-up)"
for _ in 1 2 3 4 5; do
    scrape_time "http://127.0.0.1:${OURS_PORT}/metrics" >/dev/null
    ref_scrapes /dev/null
    sleep 1
done

# --- window ---------------------------------------------------------------------------------

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring for ${DURATION} s; load before: ${load_before}"
# Log every command on our server (kept in memory, read once at the end), then reset counters.
SLOWLOG_LEN=$((DURATION * 3 * TARGETS + 64))
redis-cli -p "${OURS_REDIS_PORT}" config set slowlog-max-len "${SLOWLOG_LEN}" >/dev/null
redis-cli -p "${OURS_REDIS_PORT}" config set slowlog-log-slower-than 0 >/dev/null
redis-cli -p "${OURS_REDIS_PORT}" slowlog reset >/dev/null
redis-cli -p "${OURS_REDIS_PORT}" config resetstat >/dev/null
redis-cli -p "${REF_REDIS_PORT}" config resetstat >/dev/null
polls_start=$(polls_total "${OURS_PORT}")
ours_ticks0=$(cpu_ticks "${OURS_PID}")
ref_ticks0=$(cpu_ticks "${REF_PID}")
ours_ns0=$(sched_ns "${OURS_PID}")
ref_ns0=$(sched_ns "${REF_PID}")
oredis_ns0=$(sched_ns "${OURS_REDIS_PID}")
rredis_ns0=$(sched_ns "${REF_REDIS_PID}")
iredis_ns0=$(sched_ns "${IDLE_REDIS_PID}")
: >"${WORK}/ours.lat"
: >"${WORK}/ref.lat"
started=${SECONDS}
for ((i = 0; i < DURATION; i++)); do
    tick=$(date +%s.%N)
    scrape_time "http://127.0.0.1:${OURS_PORT}/metrics" >>"${WORK}/ours.lat" || echo 5 >>"${WORK}/ours.lat"
    ref_scrapes "${WORK}/ref.lat"
    # Sleep out the rest of the second (bounded: at most 1 s).
    sleep "$(awk -v t="${tick}" -v n="$(date +%s.%N)" 'BEGIN {d = 1 - (n - t); if (d < 0) d = 0; if (d > 1) d = 1; printf "%.3f", d}')"
done
elapsed=$((SECONDS - started))
polls_end=$(polls_total "${OURS_PORT}")
ours_ticks1=$(cpu_ticks "${OURS_PID}")
ref_ticks1=$(cpu_ticks "${REF_PID}")
ours_ns1=$(sched_ns "${OURS_PID}")
ref_ns1=$(sched_ns "${REF_PID}")
oredis_ns1=$(sched_ns "${OURS_REDIS_PID}")
rredis_ns1=$(sched_ns "${REF_REDIS_PID}")
iredis_ns1=$(sched_ns "${IDLE_REDIS_PID}")
read -r ours_calls ours_usec ours_bytes ours_detail <<<"$(cmdstats "${OURS_REDIS_PORT}")"
read -r ref_calls ref_usec ref_bytes ref_detail <<<"$(cmdstats "${REF_REDIS_PORT}")"
ours_split=$(slowlog_split "${OURS_REDIS_PORT}")
ours_rss=$(status_kib "${OURS_PID}" VmRSS)
ours_hwm=$(status_kib "${OURS_PID}" VmHWM)
ref_rss=$(status_kib "${REF_PID}" VmRSS)
ref_hwm=$(status_kib "${REF_PID}" VmHWM)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

polls=$((polls_end - polls_start))
scrapes=$((DURATION * TARGETS))
[[ ${polls} -gt 0 ]] || die "our exporter made no polls in the window (see ${WORK}/exporter.log)"
TCK=$(getconf CLK_TCK)
read -r o50 o90 o99 omax <<<"$(percentiles "${WORK}/ours.lat")"
read -r r50 r90 r99 rmax <<<"$(percentiles "${WORK}/ref.lat")"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
per() { awk -v a="$1" -v b="$2" -v s="${3:-1}" 'BEGIN { printf "%.1f", a * s / b }'; }

o_cmd=$(per "${ours_calls}" "${polls}")
r_cmd=$(per "${ref_calls}" "${scrapes}")
o_us=$(per "${ours_usec}" "${polls}")
r_us=$(per "${ref_usec}" "${scrapes}")
idle_ns=$((iredis_ns1 - iredis_ns0))
o_rproc=$(per $((oredis_ns1 - oredis_ns0 - idle_ns)) "${polls}" 0.001)
r_rproc=$(per $((rredis_ns1 - rredis_ns0 - idle_ns)) "${scrapes}" 0.001)
o_cpu=$(per $((ours_ns1 - ours_ns0)) "${polls}" 0.001)
r_cpu=$(per $((ref_ns1 - ref_ns0)) "${scrapes}" 0.001)
o_tick=$(per $(((ours_ticks1 - ours_ticks0) * 1000000)) $((polls * TCK)))
r_tick=$(per $(((ref_ticks1 - ref_ticks0) * 1000000)) $((scrapes * TCK)))

cat <<EOF

== bench-compare: ${elapsed} s window, ${TARGETS} target(s) per side; ours ${polls} polls + ${DURATION} scrapes, reference ${scrapes} scrapes
   machine: $(nproc) CPU(s), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); load (1/5/15 min) before window: ${load_before}, after: ${load_after}
   ours: siblings_refresh_interval ${SIBLINGS:-default (30s)}
   Redis: $(redis-server --version | awk '{print $3}'), ${KEYS} keys each; reference: $("${REF_BIN}" --version 2>&1 | grep -o 'Exporter [^ ]*' | head -1)

| measure                                   | ours (per poll) | reference (per scrape) | reference / ours |
|-------------------------------------------|----------------:|-----------------------:|-----------------:|
| Redis commands                            | ${o_cmd} | ${r_cmd} | $(ratio "${r_cmd}" "${o_cmd}") |
| Redis command CPU, commandstats (us)      | ${o_us} | ${r_us} | $(ratio "${r_us}" "${o_us}") |
| Redis reply bytes, total_net_output_bytes | $(per "${ours_bytes}" "${polls}") | $(per "${ref_bytes}" "${scrapes}") | $(ratio "${ref_bytes}" "${ours_bytes}") |
| redis-server CPU minus idle server (us)   | ${o_rproc} | ${r_rproc} | $(ratio "${r_rproc}" "${o_rproc}") |
| exporter CPU, schedstat (us)              | ${o_cpu} | ${r_cpu} | $(ratio "${r_cpu}" "${o_cpu}") |
| exporter CPU, utime+stime (us, 1/${TCK} s ticks) | ${o_tick} | ${r_tick} | $(ratio "${r_tick}" "${o_tick}") |
| exporter VmRSS / VmHWM (KiB)              | ${ours_rss} / ${ours_hwm} | ${ref_rss} / ${ref_hwm} | $(ratio "${ref_rss}" "${ours_rss}") |
| /metrics latency p50 / p90 / p99 / max (ms) | ${o50} / ${o90} / ${o99} / ${omax} | ${r50} / ${r90} / ${r99} / ${rmax} | $(ratio "${r50}" "${o50}") (p50) |

   ours' exporter CPU includes serving its ${DURATION} scrapes. redis-server CPU is the process's
   schedstat time minus that of an identical idle server over the same window
   ($(per "${idle_ns}" "${elapsed}" 0.001) us/s of background cron), so it includes connection handling.
   That row is noisy: the servers' background cron differs by several hundred us/s between
   runs, more than a ~30-80 us poll; prefer commandstats and the slowlog split below.
   commands, ours:      ${ours_detail}
   ours' INFO calls by form (slowlog durations, us):
${ours_split}
   commands, reference: ${ref_detail}
EOF

if [[ ${RUN_WRK} == 1 ]]; then
    log "wrk: 5 s, 1 thread, 1 connection against each /metrics"
    for side in ours:${OURS_PORT} reference:${REF_PORT}; do
        printf '   wrk %-9s ' "${side%%:*}"
        timeout 20 wrk -t1 -c1 -d5s --latency "http://127.0.0.1:${side##*:}/metrics" |
            awk '/Latency  / {lat = $2} /50%/ {p50 = $2} /99%/ {p99 = $2} /Requests\/sec/ {rps = $2}
                 END {printf "mean %s  p50 %s  p99 %s  %s req/s\n", lat, p50, p99, rps}'
    done
fi
