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
#   KEEP_DUMP=/tmp/miss.cg benches/count-instructions.sh miss   # keep the profile to annotate
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
h2load --h1 -i "$RUN/warm.txt" -n "$(wc -l <"$RUN/warm.txt")" -c 1 >/dev/null 2>&1
# h2load gives every client the whole URL list from its start: four clients on one list would
# ask for each URL four times (one miss, three hits). Four single-client runs on four disjoint
# quarters of the list keep four requests in flight and every miss a miss.
upstream_requests() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" \
        | awk '/^tiercel_upstream_requests_total / { print $2 }'
}
fetched_before="$(upstream_requests)"
callgrind_control -z "$EDGE_PID" >/dev/null 2>&1
split -n l/4 -d "$RUN/urls.txt" "$RUN/part."
LOADS=()
for part in "$RUN"/part.??; do
    h2load --h1 -i "$part" -n "$(wc -l <"$part")" -c 1 >"$part.out" 2>&1 &
    LOADS+=($!)
done
wait "${LOADS[@]}" || die "h2load failed: $(cat "$RUN"/part.*.out | tail -5)"
callgrind_control -d "$EDGE_PID" >/dev/null 2>&1
ok=$(cat "$RUN"/part.*.out | awk '/^status codes:/ { sum += $3 } END { print sum + 0 }')
[[ $ok == "$N" ]] || die "$ok of $N requests succeeded: $(grep -h -E '^(requests|status)' "$RUN"/part.*.out)"
fetched=$(( $(upstream_requests) - fetched_before ))
case $MODE in
    miss) [[ $fetched == "$N" ]] || die "$fetched of $N requests went upstream: they were not all misses" ;;
    hit) [[ $fetched == 0 ]] || die "$fetched of $N requests went upstream: they were not all hits" ;;
esac
dump="$(ls "$RUN"/cg.out.* | head -1)"
total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')"
[[ -n $total ]] || die "callgrind wrote no totals"
echo "$MODE: $((total / N)) instructions per request ($total over $N requests; $EDGE)"
if [[ -n ${KEEP_DUMP:-} ]]; then
    cp "$dump" "$KEEP_DUMP"
    echo "callgrind dump kept in $KEEP_DUMP (callgrind_annotate --inclusive=yes $KEEP_DUMP)"
fi
