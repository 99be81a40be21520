#!/usr/bin/env bash
# Soak test: hundreds of targets, some appearing, disappearing and flapping, for a bounded time.
# Records the exporter's RSS and open file descriptors over time and checks they stay flat.
#
#   bash scripts/soak.sh                # 10 minutes, 300 targets
#   bash scripts/soak.sh --minutes 2    # shorter
#
# Loopback only. Every loop is bounded in count and time. Output: target/soak/soak.csv and a
# summary; exit 1 if RSS or descriptors grew beyond the thresholds below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MINUTES=10
STABLE=200      # targets on servers that stay up
FLAPPING=50     # targets on a server stopped and started every FLAP_SECONDS
ROTATING=50     # file_sd targets that appear and disappear
FLAP_SECONDS=20
SAMPLE_SECONDS=10
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        *) echo "usage: $0 [--minutes N]" >&2; exit 2 ;;
    esac
done

command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install redis-server" >&2; exit 1; }
# The profiling profile: release code with symbols, so perf can read a soak or load run.
cargo build --profile profiling --quiet
BIN=${CARGO_TARGET_DIR:-target}/profiling/redis-persistence-exporter

WORK=$(mktemp -d /tmp/rpe-soak.XXXXXX)
OUT=target/soak
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    [ -n "${FLAP_PID:-}" ] && kill -9 "$FLAP_PID" 2>/dev/null || true
    # The flapper's current redis-server, which it restarted after the first one.
    [ -f "$WORK/flap.pid" ] && kill -9 "$(cat "$WORK/flap.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_redis() { # port dir
    mkdir -p "$2"
    redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --save "" --appendonly yes \
        --maxclients 10000 --daemonize no >"$2/log" 2>&1 &
    echo $!
}

STABLE_PORTS=()
for i in 1 2 3 4; do
    port=$(free_port); STABLE_PORTS+=("$port")
    PIDS+=("$(start_redis "$port" "$WORK/r$i")")
done
FLAP_PORT=$(free_port)
FLAP_REDIS=$(start_redis "$FLAP_PORT" "$WORK/flap")
PIDS+=("$FLAP_REDIS")
DEAD_PORT=$(free_port)
EXPORTER_PORT=$(free_port)

mkdir -p "$WORK/sd"
{
    echo 'poll_interval = "1s"'
    echo 'poll_timeout = "500ms"'
    echo "listen_address = \"127.0.0.1:$EXPORTER_PORT\""
    echo 'config_refresh_interval = "1m"'
    echo '[[file_sd]]'
    echo "files = [\"$WORK/sd/*.json\"]"
    echo 'refresh_interval = "2s"'
    for i in $(seq 1 "$STABLE"); do
        port=${STABLE_PORTS[$((i % 4))]}
        echo "[[targets]]"
        echo "url = \"redis://127.0.0.1:$port\""
        echo "name = \"stable-$i\""
    done
    for i in $(seq 1 "$FLAPPING"); do
        echo "[[targets]]"
        echo "url = \"redis://127.0.0.1:$FLAP_PORT\""
        echo "name = \"flapping-$i\""
    done
} >"$WORK/config.toml"

write_sd() { # generation
    local gen=$1 first=true
    {
        echo '[{"targets": ['
        for i in $(seq 1 "$ROTATING"); do
            # Half the rotating targets change identity each generation; some point nowhere.
            local port=${STABLE_PORTS[$((i % 4))]}
            [ $((i % 5)) -eq 0 ] && port=$DEAD_PORT
            $first || echo ','
            first=false
            echo "\"127.0.0.1:$port/$((i <= ROTATING / 2 ? gen : 0))-$i\""
        done
        echo '], "labels": {"source": "soak"}}]'
    } >"$WORK/sd/rotating.json.tmp"
    # file_sd entries are host:port; give each a unique name through a one-target group.
    python3 - "$WORK/sd/rotating.json.tmp" "$WORK/sd/rotating.json" <<'PY'
import json, sys
groups = json.load(open(sys.argv[1]))
out = []
for entry in groups[0]["targets"]:
    hostport, tag = entry.split("/")
    out.append({"targets": [hostport], "labels": {"name": "rotating-" + tag, "source": "soak"}})
json.dump(out, open(sys.argv[2] + ".new", "w"))
PY
    mv "$WORK/sd/rotating.json.new" "$WORK/sd/rotating.json"
    rm -f "$WORK/sd/rotating.json.tmp"
}
write_sd 1

"$BIN" --config "$WORK/config.toml" --log.level warn >"$WORK/exporter.log" 2>&1 &
EXPORTER=$!
PIDS+=("$EXPORTER")

for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$EXPORTER_PORT/metrics" >/dev/null && break
    sleep 0.1
done

# Flapper: stop and start the flapping server every FLAP_SECONDS, bounded by the run time.
(
    end=$((SECONDS + MINUTES * 60))
    pid=$FLAP_REDIS
    while [ $SECONDS -lt $end ]; do
        sleep "$FLAP_SECONDS"; kill -9 "$pid" 2>/dev/null || true
        sleep "$FLAP_SECONDS"; pid=$(start_redis "$FLAP_PORT" "$WORK/flap")
        echo "$pid" >"$WORK/flap.pid"
    done
    kill -9 "$pid" 2>/dev/null || true
) &
FLAP_PID=$!

echo "elapsed_s,rss_kib,fds,targets,up,scrape_ms" >"$OUT/soak.csv"
samples=$((MINUTES * 60 / SAMPLE_SECONDS))
gen=1
for n in $(seq 1 "$samples"); do
    sleep "$SAMPLE_SECONDS"
    if [ $((n % 3)) -eq 0 ]; then gen=$((gen + 1)); write_sd "$gen"; fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$EXPORTER/status")
    fds=$(ls "/proc/$EXPORTER/fd" | wc -l)
    start=$(date +%s%N)
    body=$(curl -sf --max-time 5 "http://127.0.0.1:$EXPORTER_PORT/metrics" || true)
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    targets=$(printf '%s\n' "$body" | awk '/^redis_persistence_exporter_targets / {print $2}')
    up=$(printf '%s\n' "$body" | grep -c '^redis_up{.*} 1$' || true)
    echo "$((n * SAMPLE_SECONDS)),$rss,$fds,${targets:-0},$up,$ms" | tee -a "$OUT/soak.csv"
done

python3 - "$OUT/soak.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
warm = rows[min(len(rows) - 1, max(1, len(rows) // 5))]   # after the first fifth
last = rows[-1]
rss = [int(r["rss_kib"]) for r in rows]
fds = [int(r["fds"]) for r in rows]
print(f"samples={len(rows)} rss_kib: warm={warm['rss_kib']} last={last['rss_kib']} max={max(rss)}")
print(f"fds: warm={warm['fds']} last={last['fds']} max={max(fds)} min={min(fds)}")
grew_rss = int(last["rss_kib"]) > int(warm["rss_kib"]) * 1.25 + 4096
grew_fds = int(last["fds"]) > int(warm["fds"]) + 60
print("RESULT:", "FAIL (growth)" if grew_rss or grew_fds else "flat")
sys.exit(1 if grew_rss or grew_fds else 0)
PY
