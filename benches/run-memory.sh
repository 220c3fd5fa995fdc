#!/usr/bin/env bash
# Memory per stored object: an edge (release build) fills its memory tier with distinct small
# objects (tiercel-load --miss style: a new URL every request) and reports, per million objects,
# the bytes the tier counted and the process's resident growth, and their ratio.
#
#   benches/run-memory.sh                         # 100-byte objects, 2 GiB tier, 120 s of load
#   benches/run-memory.sh --edge /tmp/old-edge --seconds 30 --size 100 --tier 2GiB
#
# Nothing is evicted as long as the tier is large enough for what the load stores, so stored
# objects = misses. Needs taskset and two CPUs; ports 18100-18102 on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release"
EDGE="$BIN/tiercel-edge"
SECONDS_LOAD=120
SIZE=100
TIER=2GiB
while [[ $# -gt 0 ]]; do
    case "$1" in
        --edge) EDGE="$2"; shift ;;
        --seconds) SECONDS_LOAD="$2"; shift ;;
        --size) SIZE="$2"; shift ;;
        --tier) TIER="$2"; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

RUN=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$RUN"; }
PIDS=()
trap cleanup EXIT

taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen 127.0.0.1:18100 >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
taskset -c 0 "$EDGE" --listen 127.0.0.1:18101 --admin-listen 127.0.0.1:18102 \
    --origin http://127.0.0.1:18100 --memory-cache "$TIER" >"$RUN/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:18102/healthz >/dev/null && break
    sleep 0.1
done

metric() { curl -sf http://127.0.0.1:18102/metrics | awk -v n="$1" '$1 == n {print $2}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$EDGE_PID/status"; }

# Baseline: a few objects through, so lazily built state is counted in it.
for i in $(seq 20); do
    curl -sf -o /dev/null "http://127.0.0.1:18101/warm/$i?size=$SIZE&cc=max-age%3D86400"
done
base_rss=$(rss_kib)
base_misses=$(metric tiercel_cache_misses_total)
base_bytes=$(metric tiercel_storage_memory_bytes)

taskset -c 1 "$BIN/tiercel-load" --connections 32 --warmup 0s --duration "${SECONDS_LOAD}s" \
    --expect-length "$SIZE" --min-requests 1 \
    "http://127.0.0.1:18101/m/{n}?size=$SIZE&cc=max-age%3D86400" >"$RUN/load.txt" 2>&1 || {
    cat "$RUN/load.txt" >&2
    exit 1
}

rss=$(rss_kib)
misses=$(metric tiercel_cache_misses_total)
bytes=$(metric tiercel_storage_memory_bytes)
objects=$((misses - base_misses))
awk -v o="$objects" -v b="$((bytes - base_bytes))" -v r="$(( (rss - base_rss) * 1024 ))" \
    -v br="$base_rss" -v size="$SIZE" -v tier="$TIER" 'BEGIN {
    m = 1000000 / o
    printf "objects stored: %d (%d-byte bodies, tier %s)\n", o, size, tier
    printf "baseline RSS: %.1f MiB\n", br / 1024
    printf "per million objects: counted %.0f MiB, resident %.0f MiB, resident/counted %.2f\n",
        b * m / 1048576, r * m / 1048576, r / b
}'
