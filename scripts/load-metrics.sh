#!/usr/bin/env bash
# Load test of /metrics: many concurrent scrapes (wrk) against an exporter polling real
# targets. Checks that every response stays correct (strict OpenMetrics parse after the run,
# no non-2xx answers) and that memory stays bounded (concurrent renders are capped at 4).
#
#   bash scripts/load-metrics.sh                      # 200 targets, 64 connections, 30 s
#   bash scripts/load-metrics.sh --targets 1000 --seconds 60 --connections 256
#
# Loopback only; bounded in time. Prints RSS before/after and wrk's summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=200
SECONDS_=30
CONNECTIONS=64
while [ $# -gt 0 ]; do
    case "$1" in
        --targets) TARGETS="$2"; shift 2 ;;
        --seconds) SECONDS_="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        *) echo "usage: $0 [--targets N] [--seconds S] [--connections C]" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is missing: sudo apt-get install wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install redis-server" >&2; exit 1; }
# The profiling profile: release code with symbols, so perf can read a soak or load run.
cargo build --profile profiling --quiet
BIN=${CARGO_TARGET_DIR:-target}/profiling/redis-persistence-exporter
# Before redis-server starts, so that its --maxclients fits too.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/rpe-load.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORTS=()
for i in 1 2; do
    port=$(free_port); PORTS+=("$port"); mkdir -p "$WORK/r$i"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/r$i" --save "" --appendonly yes \
        --maxclients 10000 >"$WORK/r$i/log" 2>&1 &
    PIDS+=($!)
done
EXPORTER_PORT=$(free_port)
{
    echo 'poll_interval = "1s"'
    echo 'poll_timeout = "500ms"'
    echo "listen_address = \"127.0.0.1:$EXPORTER_PORT\""
    for i in $(seq 1 "$TARGETS"); do
        echo "[[targets]]"
        echo "url = \"redis://127.0.0.1:${PORTS[$((i % 2))]}\""
        echo "name = \"t$i\""
        echo "labels = { env = \"load\" }"
    done
} >"$WORK/config.toml"
"$BIN" --config "$WORK/config.toml" --log.level warn >"$WORK/exporter.log" 2>&1 &
EXPORTER=$!
PIDS+=("$EXPORTER")
URL="http://127.0.0.1:$EXPORTER_PORT/metrics"
for _ in $(seq 1 200); do
    up=$(curl -sf "$URL" 2>/dev/null | grep -c '^redis_up{.*} 1$' || true)
    [ "${up:-0}" -ge "$TARGETS" ] && break
    sleep 0.1
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$EXPORTER/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$EXPORTER/status"; }
echo "targets=$TARGETS connections=$CONNECTIONS seconds=$SECONDS_"
echo "rss_before_kib=$(rss)"
wrk -t 2 -c "$CONNECTIONS" -d "${SECONDS_}s" --latency "$URL" | tee "$WORK/wrk.txt"
echo "rss_after_kib=$(rss) hwm_kib=$(hwm)"
if grep -q "Non-2xx" "$WORK/wrk.txt"; then echo "FAIL: non-2xx responses"; exit 1; fi

curl -sf "$URL" >"$WORK/final.txt"
python3 - "$WORK/final.txt" "$TARGETS" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}
up = [s for s in families["redis_up"].samples if s.value == 1]
print(f"strict OpenMetrics parse OK: {len(families)} families, {len(up)} targets up")
sys.exit(0 if len(up) == int(sys.argv[2]) else 1)
PY
