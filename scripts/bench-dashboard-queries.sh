#!/usr/bin/env bash
# Evaluation time of every dashboard query at 1,001 targets.
#
# The stack of tests/dashboard_queries.rs (change both together): 4 redis-servers polled as 250
# targets each (labels env and shard) plus one target on a closed port, the exporter polling
# every 2 s, Prometheus scraping it every 2 s. Server 0 is healthy and rewritten once, server 1
# has had two rewrites killed (err, stuck), server 2 is RDB only, server 3 never rewritten.
#
# After every target is up and --warmup seconds of history exist, each panel query of both
# dashboards (variables filled as Grafana fills them: job, target=fleet-0000, $__range = 1h,
# $__rate_interval = 1m) runs --runs times as an instant query, and the panels Grafana runs as
# range queries also run over the last hour at a 15 s step (Grafana's step for 1 h at the data
# source's default 15 s scrape interval). Prints one Markdown row per query: median and p90 of
# Prometheus's own evalTotalTime (stats=all), and the median curl total time.
#
# The exporter is the debug build (the same binary the test runs; the queries run in
# Prometheus, not in the exporter). Everything listens on 127.0.0.1 only; every loop is
# bounded in count and time.
#
# Usage: bash scripts/bench-dashboard-queries.sh [--runs N] [--warmup SECONDS]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/stack.sh
source "${ROOT}/scripts/lib/stack.sh"

RUNS=20
WARMUP=60
while [[ $# -gt 0 ]]; do
    case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ ${RUNS} =~ ^[0-9]+$ && ${RUNS} -ge 1 && ${RUNS} -le 200 ]] || die "--runs must be 1..200"
[[ ${WARMUP} =~ ^[0-9]+$ && ${WARMUP} -le 3600 ]] || die "--warmup must be 0..3600 seconds"

require_redis
command -v prometheus >/dev/null 2>&1 || die "prometheus not found (apt-get install prometheus)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

SERVERS=4
PER_SERVER=250
JOB=redis-persistence-exporter

WORK=$(mktemp -d /tmp/rpe-bench-queries.XXXXXX)
trap 'stack_stop_all; rm -rf "${WORK}"' EXIT

log "building the exporter (debug, cargo build)"
(cd "${ROOT}" && cargo build --quiet) || die "cargo build failed"
EXPORTER_BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/redis-persistence-exporter"
[[ -x ${EXPORTER_BIN} ]] || die "built binary not found at ${EXPORTER_BIN}"

PORTS=()
for ((i = 0; i < SERVERS; i++)); do
    mkdir -p "${WORK}/redis${i}"
    PORTS+=("$(free_port)")
done
start_redis "${WORK}/redis0" "${PORTS[0]}" --maxmemory 256mb
start_redis "${WORK}/redis1" "${PORTS[1]}" --maxmemory 256mb --enable-debug-command local
start_redis "${WORK}/redis2" "${PORTS[2]}" --appendonly no
start_redis "${WORK}/redis3" "${PORTS[3]}"

log "server 0: one completed rewrite"
redis-cli -p "${PORTS[0]}" set dashboard-test:key value >/dev/null
redis-cli -p "${PORTS[0]}" bgrewriteaof >/dev/null
rewritten() { redis-cli -p "${PORTS[0]}" info persistence | grep -q '^aof_rewrites:[1-9]'; }
wait_until 60 "the rewrite on server 0" rewritten || exit 1
redis-cli -p "${PORTS[0]}" set dashboard-test:after-rewrite value >/dev/null

log "server 1: two killed rewrites"
populate_redis "${PORTS[1]}" 10000
redis-cli -p "${PORTS[1]}" config set rdb-key-save-delay 100 >/dev/null
REDIS1_PID=${STACK_PIDS[1]}
rewrite_child() { pgrep -P "${REDIS1_PID}" | head -n 1 | grep .; }
failures_are() {
    redis-cli -p "${PORTS[1]}" info persistence |
        grep -q "^aof_rewrites_consecutive_failures:$1"
}
for attempt in 1 2; do
    redis-cli -p "${PORTS[1]}" bgrewriteaof >/dev/null
    wait_until 30 "rewrite child ${attempt} on server 1" rewrite_child || exit 1
    kill -KILL "$(rewrite_child)"
    wait_until 30 "killed rewrite ${attempt} to count" failures_are "${attempt}" || exit 1
done

log "exporter: $((SERVERS * PER_SERVER + 1)) targets every 2 s"
EXPORTER_PORT=$(free_port)
{
    printf 'poll_interval = "2s"\npoll_timeout = "1500ms"\nlisten_address = "127.0.0.1:%s"\n' "${EXPORTER_PORT}"
    for ((i = 0; i < SERVERS; i++)); do
        env=prod
        ((i >= 2)) && env=staging
        for ((j = 0; j < PER_SERVER; j++)); do
            printf '\n[[targets]]\nurl = "redis://127.0.0.1:%s"\nname = "fleet-%04d"\n' \
                "${PORTS[i]}" $((i * PER_SERVER + j))
            printf 'labels = { env = "%s", shard = "shard-%d" }\n' "${env}" $((j % 8))
            printf 'log_file = "%s"\ndata_dir = "%s"\n' "${WORK}/redis${i}/redis.log" "${WORK}/redis${i}"
        done
    done
    printf '\n[[targets]]\nurl = "redis://127.0.0.1:%s"\nname = "fleet-down"\n' "$(free_port)"
    printf 'labels = { env = "prod", shard = "shard-0" }\n'
} >"${WORK}/exporter.toml"
start_exporter "${WORK}/exporter.toml" "${WORK}/exporter.log" "${EXPORTER_PORT}"

PROMETHEUS_PORT=$(free_port)
cat >"${WORK}/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: ${JOB}
    static_configs:
      - targets: ["127.0.0.1:${EXPORTER_PORT}"]
EOF
start_prometheus "${WORK}/prometheus.yml" "${WORK}/prometheus-data" "${PROMETHEUS_PORT}" "${WORK}/prometheus.log"
PROM="http://127.0.0.1:${PROMETHEUS_PORT}"

all_up() {
    curl --silent --fail --max-time 5 "${PROM}/api/v1/query" \
        --data-urlencode "query=count(redis_up{job=\"${JOB}\"} == 1) == $((SERVERS * PER_SERVER))" |
        grep -q '"value"'
}
wait_until 120 "Prometheus to see every target up" all_up || exit 1
log "all $((SERVERS * PER_SERVER)) reachable targets up; ${WARMUP} s of history before measuring"
sleep "${WARMUP}"

log "running every query ${RUNS} times (instant, and range over 1 h at 15 s)"
python3 - "${PROM}" "${RUNS}" "${ROOT}" "${JOB}" <<'PY'
import json, statistics, sys, time, urllib.parse, urllib.request

prom, runs, root, job = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
vars_ = {"job": job, "target": "fleet-0000", "__range": "1h", "__rate_interval": "1m"}

def fill(expr):
    for name, value in vars_.items():
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    assert "$" not in expr, expr
    return expr

def walk(panels):
    for p in panels:
        if p["type"] == "row":
            yield from walk(p.get("panels", []))
        else:
            yield p

def run(path, params):
    url = prom + path + "?" + urllib.parse.urlencode(dict(params, stats="all"))
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    wall = time.monotonic() - started
    assert body["status"] == "success", body
    series = len(body["data"]["result"]) if isinstance(body["data"]["result"], list) else 1
    return body["data"]["stats"]["timings"]["evalTotalTime"], wall, series

def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]

print("| dashboard | panel | ref | kind | series | eval median (ms) | eval p90 (ms) | HTTP median (ms) |")
print("|---|---|---|---|---:|---:|---:|---:|")
for name, path in (("per-target", "redis-persistence.json"), ("fleet", "redis-persistence-fleet.json")):
    dashboard = json.load(open(f"{root}/dashboards/{path}"))
    for panel in walk(dashboard["panels"]):
        for t in panel.get("targets", []):
            expr = fill(t["expr"])
            kinds = [("instant", "/api/v1/query", {"query": expr})]
            if not (t.get("instant") and not t.get("range")):
                end = time.time()
                kinds.append(("range 1h/15s", "/api/v1/query_range",
                              {"query": expr, "start": end - 3600, "end": end, "step": "15s"}))
            for kind, api, params in kinds:
                evals, walls, series = [], [], 0
                for _ in range(runs):
                    e, w, series = run(api, params)
                    evals.append(e * 1000)
                    walls.append(w * 1000)
                print(f"| {name} | {panel['title']} | {t['refId']} | {kind} | {series} "
                      f"| {statistics.median(evals):.2f} | {p90(evals):.2f} "
                      f"| {statistics.median(walls):.2f} |", flush=True)
PY
printf '\nload average after the run: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
