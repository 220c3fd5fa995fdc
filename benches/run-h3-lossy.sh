#!/usr/bin/env bash
# Time to last byte of a 1 MiB object over HTTP/2 (TLS) and HTTP/3 across a lossy, slow link:
# 1% loss each way and 40 ms round trip, emulated in user space (benches/lossy-relay.py moves
# every packet between a TUN device in a network namespace, where the client runs, and one in
# the root namespace, where the edge listens). Each fetch is a new connection (handshake
# included), as a first visit is. Needs root (netns, TUN).
#
#   benches/run-h3-lossy.sh [--fetches N] [--rounds R] [--loss 0.01] [--delay-ms 20] [--no-build]
#
# Writes benches/results/<date>-h3-lossy.md (or --out FILE).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
FETCHES=10
ROUNDS=2
LOSS=0.01
DELAY_MS=20
SIZE=1048576
BUILD=1
OUT="$ROOT/benches/results/$(date -u +%Y-%m-%d)-h3-lossy.md"
PORT="${TIERCEL_BENCH_PORT:-18800}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --fetches) FETCHES="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --loss) LOSS="$2"; shift ;;
        --delay-ms) DELAY_MS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "run-h3-lossy.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -p tiercel-edge -p tiercel-testbed -p tiercel-benches) >&2
fi

NS="tlossy$$"
CT="tlc$$"
ST="tls$$"
PIDS=()
RUN="$(mktemp -d)"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$ST" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
ip netns add "$NS"
ip tuntap add dev "$ST" mode tun
ip addr add 10.77.1.1/24 dev "$ST"
ip link set "$ST" up
ip route add 10.77.0.0/24 dev "$ST"
ip netns exec "$NS" ip tuntap add dev "$CT" mode tun
ip netns exec "$NS" ip addr add 10.77.0.2/24 dev "$CT"
ip netns exec "$NS" ip link set "$CT" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 10.77.1.0/24 dev "$CT"
python3 "$ROOT/benches/lossy-relay.py" "$NS" "$CT" "$ST" "$DELAY_MS" "$LOSS" >"$RUN/relay.log" 2>&1 &
PIDS+=($!)

taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen "127.0.0.1:$PORT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
taskset -c 0 "$BIN/tiercel-edge" --listen "127.0.0.1:$((PORT + 1))" --tls-listen "10.77.1.1:$((PORT + 43))" \
    --origin "http://127.0.0.1:$PORT" --memory-cache 256MiB >"$RUN/edge.log" 2>&1 &
PIDS+=($!)
URL="https://10.77.1.1:$((PORT + 43))/lossy?size=$SIZE&cc=max-age%3D3600"
for _ in $(seq 100); do curl -sk -o /dev/null "$URL" && break; sleep 0.1; done
curl -sk -D - -o /dev/null "$URL" | grep -qi '^cache-status:.*hit' || { echo "not a hit" >&2; exit 1; }

# (no ping here: the first fetch below shows the link works)

: >"$RUN/results.jsonl"
for round in $(seq "$ROUNDS"); do
    for proto in h2 h3; do
        echo "[run-h3-lossy $(date +%H:%M:%S)] round $round/$ROUNDS, $proto" >&2
        ip netns exec "$NS" taskset -c 1 "$BIN/h3-load" --protocol "$proto" --sequential "$FETCHES" \
            --expect-length "$SIZE" "$URL" >>"$RUN/results.jsonl"
    done
done
python3 - "$RUN/results.jsonl" "$OUT" "$LOSS" "$DELAY_MS" "$FETCHES" "$ROUNDS" <<'PY'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out, loss, delay, fetches, rounds = sys.argv[2:7]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [f"# Time to last byte of 1 MiB over a lossy link: HTTP/2 (TLS) vs HTTP/3 ({commit})", "",
         f"{float(loss) * 100:g}% loss each way, {2 * int(delay)} ms round trip (user-space relay between a "
         f"network namespace and the edge); each fetch on a new connection, handshake included; "
         f"{rounds} round(s) of {fetches} fetches per protocol, interleaved; medians of the rounds' figures.", "",
         "| protocol | fetches | errors | TTLB p50 ms | TTLB p90 ms | TTLB max ms |", "|---|--:|--:|--:|--:|--:|"]
agg = {}
for proto in ("h2", "h3"):
    rs = [r for r in rows if r["protocol"] == proto]
    agg[proto] = {k: statistics.median(r[k] for r in rs) for k in ("ttlb_p50_ms", "ttlb_p90_ms", "ttlb_max_ms")}
    lines.append(f"| {proto} | {sum(r['fetches'] for r in rs)} | {sum(r['errors'] for r in rs)} | "
                 f"{agg[proto]['ttlb_p50_ms']:.0f} | {agg[proto]['ttlb_p90_ms']:.0f} | {agg[proto]['ttlb_max_ms']:.0f} |")
lines += ["", f"h3/h2 TTLB p50: {agg['h3']['ttlb_p50_ms'] / agg['h2']['ttlb_p50_ms']:.2f}x, "
              f"p90: {agg['h3']['ttlb_p90_ms'] / agg['h2']['ttlb_p90_ms']:.2f}x"]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
