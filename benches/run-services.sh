#!/usr/bin/env bash
# Services on one Tiercel edge: 1 KiB hit throughput with 1, 100 and 10 000 services
# configured (routing must not slow down with the count), compressed hits (br, stored encoded
# form) against identity hits of the same object, and p99 while the service set changes under
# load (a service rewritten through a one-member purge-service every 200 ms, with 10 000
# services in the edge's file). Edge on core 0; origin, purge-service, tiercelctl and
# tiercel-load on core 1. Each case runs ROUNDS times, interleaved; the table shows medians.
#
#   benches/run-services.sh                       # 3 rounds, 2 s warm-up + 10 s per case
#   benches/run-services.sh --rounds 1 --duration 3 --no-build
#
# Writes benches/results/<date>-services.md (or --out FILE).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROUNDS=3
DURATION=10
WARMUP=2
COUNTS="1 100 10000"
BUILD=1
OUT="$ROOT/benches/results/$(date -u +%Y-%m-%d)-services.md"
PORT="${TIERCEL_BENCH_PORT:-18700}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --counts) COUNTS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "run-services.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -p tiercel-edge -p tiercel-testbed -p tiercel-benches \
        -p tiercel-purge) >&2
fi
RUN="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$RUN"; }
trap cleanup EXIT

ORIGIN_PORT=$PORT
EDGE_PORT=$((PORT + 1))
PURGE_PORT=$((PORT + 2))
ADMIN_TOKEN="bench-admin-token-0123456789"
taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen "127.0.0.1:$ORIGIN_PORT" \
    >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"

# N services, each with an exact host and a wildcard; the last one compresses.
write_config() {
    local n=$1 file=$2
    python3 - "$n" "$ORIGIN" >"$file" <<'EOF'
import sys
n, origin = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print("[[services]]")
    print(f'name = "s{i}"')
    print(f'hosts = ["s{i}.bench", "*.w{i}.bench"]')
    print(f'origins = ["{origin}"]')
    if i == n - 1:
        print("compress = { min_size = 512 }")
    print()
EOF
}

EDGE=""
start_edge() {
    local config=$1; shift
    taskset -c 0 nice -n -20 "$BIN/tiercel-edge" --config "$config" --listen "127.0.0.1:$EDGE_PORT" \
        --origin "$ORIGIN" --memory-cache 256MiB "$@" >"$RUN/edge.log" 2>&1 &
    EDGE=$!
    PIDS+=($EDGE)
    for _ in $(seq 200); do
        curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/ready" && return 0
        sleep 0.05
    done
    echo "run-services.sh: the edge did not start" >&2
    cat "$RUN/edge.log" >&2
    exit 1
}
stop_edge() { kill "$EDGE" 2>/dev/null || true; wait "$EDGE" 2>/dev/null || true; }

PQ="/svc/obj.html?size=1024&cc=max-age%3D3600&h=Content-Type%3Atext%2Fhtml"
URL="http://127.0.0.1:$EDGE_PORT$PQ"
# Warms the object for a host (and encoding) and checks the next answer is a hit.
warm() {
    local host=$1; shift
    curl -s -o /dev/null -H "Host: $host" "$@" "$URL"
    curl -s -D - -o /dev/null -H "Host: $host" "$@" "$URL" | grep -qi '^cache-status:.*hit' \
        || { echo "run-services.sh: $host $* is not a hit after warming" >&2; exit 1; }
}
# One measured window; appends a JSON line tagged with case=$1.
measure() {
    local case=$1 host=$2; shift 2
    echo "[run-services $(date +%H:%M:%S)] $case" >&2
    local line
    line=$(taskset -c 1 nice -n -20 "$BIN/tiercel-load" --protocol h1 --connections 32 \
        --warmup "${WARMUP}s" --duration "${DURATION}s" -H "Host: $host" "$@" \
        --watch-pid "$EDGE" --json "$URL")
    echo "${line%\}}, \"case\": \"$case\"}" >>"$RUN/results.jsonl"
}
: >"$RUN/results.jsonl"

for n in $COUNTS; do write_config "$n" "$RUN/services-$n.toml"; done
for round in $(seq "$ROUNDS"); do
    for n in $COUNTS; do
        start_edge "$RUN/services-$n.toml"
        last="s$((n - 1)).bench"
        # A wildcard host of the last service: the longest lookup (exact miss, then suffixes).
        host="a.w$((n - 1)).bench"
        warm "$host"
        measure "services=$n" "$host"
        if [[ $n == "${COUNTS##* }" ]]; then
            warm "$last"
            warm "$last" -H "Accept-Encoding: br"
            measure "identity" "$last"
            measure "br" "$last" -H "Accept-Encoding: br"
        fi
        stop_edge
    done
done

# Changes under load: a one-member purge-service, the edge following it with the largest
# service file, one service rewritten every 200 ms during the second window.
N="${COUNTS##* }"
export TIERCEL_CLUSTER_SECRET="bench-cluster-secret-0123456789abcdef"
TIERCEL_ADMIN_TOKEN="$ADMIN_TOKEN" taskset -c 1 "$BIN/tiercel-purge" --id 1 \
    --listen "127.0.0.1:$PURGE_PORT" --data-dir "$RUN/purge" --bootstrap >"$RUN/purge.log" 2>&1 &
PIDS+=($!)
export TIERCEL_TOKEN="$ADMIN_TOKEN"
CTL=("$BIN/tiercelctl" --server "http://127.0.0.1:$PURGE_PORT")
for _ in $(seq 200); do "${CTL[@]}" cluster >/dev/null 2>&1 && break; sleep 0.1; done
FOLLOW=$("${CTL[@]}" --json tokens create --name edges --scope follow | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
swap_doc() {
    python3 -c "import json,sys; print(json.dumps({'hosts': ['swap.bench'], 'origins': [{'url': sys.argv[1], 'weight': int(sys.argv[2])}]}))" \
        "$ORIGIN" "$1" >"$RUN/swap.json"
}
swap_doc 1
"${CTL[@]}" services put swap --file "$RUN/swap.json" >/dev/null
for round in $(seq "$ROUNDS"); do
    TIERCEL_PURGE_TOKEN="$FOLLOW" start_edge "$RUN/services-$N.toml" --name bench-edge \
        --purge-service "http://127.0.0.1:$PURGE_PORT"
    host="a.w$((N - 1)).bench"
    warm "$host"
    measure "steady" "$host"
    (
        i=0
        end=$((SECONDS + WARMUP + DURATION))
        while [[ $SECONDS -lt $end ]]; do
            i=$((i + 1))
            swap_doc $((i % 9 + 1))
            taskset -c 1 "${CTL[@]}" services put swap --file "$RUN/swap.json" >/dev/null
            sleep 0.2
        done
        echo "$i" >"$RUN/swaps-$round"
    ) &
    SWAPPER=$!
    measure "swapping" "$host"
    wait "$SWAPPER"
    stop_edge
done
SWAPS=$(cat "$RUN"/swaps-* | awk '{s += $1} END {print s}')

python3 - "$RUN/results.jsonl" "$OUT" "$ROUNDS" "$DURATION" "$COUNTS" "$SWAPS" <<'EOF'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out, rounds, duration, counts, swaps = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(), sys.argv[6]
def med(case, f):
    return statistics.median([f(r) for r in rows if r["case"] == case])
rps = lambda r: r["rps"]
lat = lambda q: (lambda r: r["latency_us"][q] / 1000)
cpu = lambda r: r.get("server_cpu_percent") or 0
errors = lambda case: sum(r["errors"] for r in rows if r["case"] == case)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [f"# Services on one Tiercel edge ({commit})", "",
         f"1 KiB hits from the memory tier, HTTP/1.1, 32 connections; edge on core 0; origin, purge-service, "
         f"tiercelctl and `tiercel-load` on core 1; {rounds} round(s) of {duration} s per case, interleaved; medians.", "",
         "| services configured | req/s | p50 ms | p99 ms | server CPU | errors | req/s ratio to 1 service |",
         "|---|--:|--:|--:|--:|--:|--:|"]
base = med(f"services={counts[0]}", rps)
for n in counts:
    c = f"services={n}"
    lines.append(f"| {n} (wildcard host of the last) | {med(c, rps):.0f} | {med(c, lat('p50')):.2f} | "
                 f"{med(c, lat('p99')):.2f} | {med(c, cpu):.0f}% | {errors(c)} | {med(c, rps) / base:.2f}x |")
lines += ["", f"Compressed hits ({counts[-1]} services; the same 1 KiB text/html object):", "",
          "| encoding | req/s | p50 ms | p99 ms | server CPU | errors | ratio to identity |",
          "|---|--:|--:|--:|--:|--:|--:|"]
ident = med("identity", rps)
for c in ["identity", "br"]:
    lines.append(f"| {c} | {med(c, rps):.0f} | {med(c, lat('p50')):.2f} | {med(c, lat('p99')):.2f} | "
                 f"{med(c, cpu):.0f}% | {errors(c)} | {med(c, rps) / ident:.2f}x |")
lines += ["", f"Changes under load ({counts[-1]} services in the file, one more rewritten through the "
          f"purge-service every 200 ms during the second window; {swaps} changes in all):", "",
          "| window | req/s | p99 ms | p99.9 ms | errors | p99 ratio to steady |", "|---|--:|--:|--:|--:|--:|"]
steady = med("steady", lat("p99"))
for c in ["steady", "swapping"]:
    lines.append(f"| {c} | {med(c, rps):.0f} | {med(c, lat('p99')):.2f} | {med(c, lat('p999')):.2f} | "
                 f"{errors(c)} | {med(c, lat('p99')) / steady:.2f}x |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
