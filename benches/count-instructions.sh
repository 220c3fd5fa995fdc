#!/usr/bin/env bash
# User-space instructions a Tiercel edge executes per request, counted by callgrind.
#
# Wall-clock figures on a shared 2-core VM move by ±30 % between runs; an instruction count
# does not (same binary, same requests: the same count to within a fraction of a percent). Use
# it to judge a change to the request path, then confirm with run-peers.sh. Kernel work
# (system calls, the TCP stack) is not counted.
#
#   benches/count-instructions.sh miss            # a new 1 KiB URL per request
#   benches/count-instructions.sh hit             # 50 hot 1 KiB objects
#   benches/count-instructions.sh hit 2000 path/to/tiercel-edge
#
# Needs valgrind and h2load (nghttp2-client); builds the release binaries unless given one.
set -euo pipefail

MODE="${1:-miss}"
N="${2:-2000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
EDGE="${3:-$BIN_DIR/tiercel-edge}"

die() { echo "count-instructions.sh: $*" >&2; exit 1; }
[[ $MODE == miss || $MODE == hit ]] || die "mode is miss or hit, got $MODE"
[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || die "the request count must be a positive number, got $N"
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
command -v h2load >/dev/null || die "h2load is missing (apt-get install nghttp2-client)"
if [[ $# -lt 3 ]]; then
    cargo build --release -q -p tiercel-edge -p tiercel-testbed --manifest-path "$ROOT/Cargo.toml"
fi
[[ -x $EDGE ]] || die "$EDGE is not an executable"
[[ -x $BIN_DIR/tiercel-testbed ]] || die "$BIN_DIR/tiercel-testbed is missing (cargo build --release -p tiercel-testbed)"

RUN="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN_PORT=$(free_port); EDGE_PORT=$(free_port); ADMIN_PORT=$(free_port)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT

"$BIN_DIR/tiercel-testbed" demo-origin --listen "127.0.0.1:$ORIGIN_PORT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$RUN/cg.out" "$EDGE" \
    --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --origin "http://127.0.0.1:$ORIGIN_PORT" --memory-cache 256MiB --worker-threads 1 \
    >"$RUN/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
for _ in $(seq 200); do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$EDGE_PORT/" && break
    sleep 0.3
done
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$EDGE_PORT/" || die "the edge did not start: $(tail -3 "$RUN/edge.log")"

base="http://127.0.0.1:$EDGE_PORT"
q="size=1024&cc=max-age%3D3600"
for i in $(seq 300); do echo "$base/warm-$i?$q"; done >"$RUN/warm.txt"
case $MODE in
    miss) for i in $(seq "$N"); do echo "$base/miss-$i?$q"; done >"$RUN/urls.txt" ;;
    hit) for i in $(seq "$N"); do echo "$base/hit-$((i % 50))?$q"; done >"$RUN/urls.txt"
         head -50 "$RUN/urls.txt" >>"$RUN/warm.txt" ;;
esac
h2load --h1 -i "$RUN/warm.txt" -n "$(wc -l <"$RUN/warm.txt")" -c 4 >/dev/null 2>&1
callgrind_control -z "$EDGE_PID" >/dev/null 2>&1
out="$(h2load --h1 -i "$RUN/urls.txt" -n "$N" -c 4 2>&1)"
callgrind_control -d "$EDGE_PID" >/dev/null 2>&1
grep -q "^status codes: $N 2xx" <<<"$out" || die "not every request succeeded: $(grep -E '^(requests|status)' <<<"$out")"
dump="$(ls "$RUN"/cg.out.* | head -1)"
total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')"
[[ -n $total ]] || die "callgrind wrote no totals"
echo "$MODE: $((total / N)) instructions per request ($total over $N requests; $EDGE)"
