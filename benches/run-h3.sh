#!/usr/bin/env bash
# HTTP/3 against HTTP/2 over TLS on one Tiercel edge: hit throughput, latency and server CPU
# for 1 KiB and 1 MiB objects. The edge is pinned to core 0; the demo origin and the load
# generator (h3-load: the same client code around both protocols) to core 1. Each case runs
# ROUNDS times, the protocols interleaved; the table shows medians and h3/h2 ratios.
#
#   benches/run-h3.sh                      # 3 rounds, 2 s warm-up + 10 s per case
#   benches/run-h3.sh --rounds 1 --duration 3 --no-build
#
# Writes benches/results/<date>-h3.md (or --out FILE).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROUNDS=3
DURATION=10
WARMUP=2
SIZES="1024 1048576"
BUILD=1
OUT="$ROOT/benches/results/$(date -u +%Y-%m-%d)-h3.md"
PORT="${TIERCEL_BENCH_PORT:-18600}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --sizes) SIZES="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "run-h3.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -p tiercel-edge -p tiercel-testbed -p tiercel-benches) >&2
fi
RUN="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$RUN"; }
trap cleanup EXIT

ORIGIN_PORT=$PORT
H1_PORT=$((PORT + 1))
TLS_PORT=$((PORT + 43))
taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen "127.0.0.1:$ORIGIN_PORT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
taskset -c 0 nice -n -20 "$BIN/tiercel-edge" --listen "127.0.0.1:$H1_PORT" \
    --tls-listen "127.0.0.1:$TLS_PORT" --origin "http://127.0.0.1:$ORIGIN_PORT" \
    --memory-cache 512MiB >"$RUN/edge.log" 2>&1 &
EDGE=$!
PIDS+=($EDGE)
for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$TLS_PORT/ready" && break
    sleep 0.1
done

ticks() { awk '{print $14 + $15}' "/proc/$EDGE/stat"; }
: >"$RUN/results.jsonl"
for size in $SIZES; do
    # Warm over TLS (the https key h2 and h3 share) and check it is a hit.
    url="https://127.0.0.1:$TLS_PORT/obj-$size?size=$size&cc=max-age%3D3600"
    curl -sk -o /dev/null "$url"
    curl -sk -D - -o /dev/null "$url" | grep -qi '^cache-status:.*hit' \
        || { echo "run-h3.sh: $url is not a hit after warming" >&2; exit 1; }
done
for round in $(seq "$ROUNDS"); do
    for size in $SIZES; do
        url="https://127.0.0.1:$TLS_PORT/obj-$size?size=$size&cc=max-age%3D3600"
        streams=32
        [[ $size -ge 1048576 ]] && streams=8
        for proto in h2 h3; do
            echo "[run-h3 $(date +%H:%M:%S)] round $round/$ROUNDS, $proto, $size bytes" >&2
            t0=$(ticks)
            line=$(taskset -c 1 nice -n -20 "$BIN/h3-load" --protocol "$proto" --connections 4 \
                --streams "$streams" --warmup "$WARMUP" --duration "$DURATION" \
                --expect-length "$size" "$url")
            t1=$(ticks)
            # Server CPU over warm-up + window, in percent of one core.
            cpu=$(awk -v t="$((t1 - t0))" -v s="$(echo "$WARMUP + $DURATION" | bc)" 'BEGIN { printf "%.0f", t / s }')
            echo "${line%\}}, \"size\": $size, \"server_cpu\": $cpu}" >>"$RUN/results.jsonl"
        done
    done
done

python3 - "$RUN/results.jsonl" "$OUT" "$ROUNDS" "$DURATION" <<'EOF'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out, rounds, duration = sys.argv[2], sys.argv[3], sys.argv[4]
def med(xs): return statistics.median(xs)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [f"# HTTP/3 vs HTTP/2 over TLS on one Tiercel edge ({commit})", "",
         f"Hits from the memory tier; edge on core 0, origin and `h3-load` on core 1; 4 connections, "
         f"32 streams each (8 for 1 MiB); {rounds} round(s) of {duration} s per case, protocols interleaved; medians.", "",
         "| size | protocol | req/s | p50 ms | p99 ms | errors | server CPU | h3/h2 req/s | h3/h2 p99 |",
         "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
for size in sorted({r["size"] for r in rows}):
    agg = {}
    for proto in ("h2", "h3"):
        rs = [r for r in rows if r["size"] == size and r["protocol"] == proto]
        agg[proto] = dict(rps=med([r["rps"] for r in rs]), p50=med([r["p50_ms"] for r in rs]),
                          p99=med([r["p99_ms"] for r in rs]), errors=sum(r["errors"] for r in rs),
                          cpu=med([r["server_cpu"] for r in rs]))
    for proto in ("h2", "h3"):
        a = agg[proto]
        ratio = ""
        if proto == "h3":
            ratio = f"{a['rps'] / agg['h2']['rps']:.2f}× | {a['p99'] / agg['h2']['p99']:.2f}×"
        else:
            ratio = " | "
        label = f"{size // 1024} KiB" if size < 1048576 else f"{size // 1048576} MiB"
        lines.append(f"| {label} | {proto} | {a['rps']:.0f} | {a['p50']:.2f} | {a['p99']:.2f} | {a['errors']} | {a['cpu']}% | {ratio} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
