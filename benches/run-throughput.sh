#!/usr/bin/env bash
# The throughput table of issue 21 in one command: Tiercel against nginx, Apache Traffic
# Server and Varnish, measured with tiercel-load, wrk (HTTP/1.1) and h2load (h2c, -m 1), in
# four parts, each a run-peers.sh run:
#
#   hits       h1 and h2c hits of 1 KiB, 100 KiB and 1 MiB, every server, every tool
#   miss       a new 1 KiB URL every request (origin on loopback), every server
#   tls        h2 over TLS 1.3, 100 KiB and 1 MiB hits, Tiercel and nginx, h2load
#   multicore  2 workers per server, servers and load floating over both cores
#
# Each part's table goes to benches/results/<date>-throughput-<part>.md (with its .jsonl); all
# four together to benches/results/<date>-throughput.md. Every row carries the server's CPU
# time per request.
#
#   benches/run-throughput.sh                       # 3 rounds, 2 s warm-up + 10 s per case
#   benches/run-throughput.sh --rounds 1 --duration 3s --warmup 1s   # a quick look
#   benches/run-throughput.sh --parts hits,miss --no-build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="$ROOT/benches/results"
PARTS="hits,miss,tls,multicore"
PASS=()
BUILD=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --parts) PARTS="$2"; shift ;;
        --rounds|--duration|--warmup) PASS+=("$1" "$2"); shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-throughput.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

for tool in wrk h2load traffic_server nginx varnishd openssl; do
    command -v "$tool" >/dev/null || {
        echo "run-throughput.sh: $tool is required (apt-get install wrk nghttp2-client trafficserver nginx-light varnish openssl)" >&2
        exit 1
    }
done

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -p tiercel-edge -p tiercel-testbed -p tiercel-benches) >&2
fi

DATE="$(date -u +%Y-%m-%d)"
ALL="$RESULTS/$DATE-throughput.md"
mkdir -p "$RESULTS"
{
    echo "# Throughput against the peers, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`benches/run-throughput.sh${*:+ $*}\`. Each part below is one run-peers.sh run; its"
    echo "settings are listed under its heading. 'server µs/req' is the server's CPU time in the"
    echo "window divided by the requests it served: comparable between servers even when the"
    echo "load generator, not the server, set the pace (rows marked ‡)."
} >"$ALL"

run_part() {
    local part="$1" title="$2"
    shift 2
    local out="$RESULTS/$DATE-throughput-$part.md"
    echo "[run-throughput] $part" >&2
    # A part with failed or skipped cases still reports what it measured, and the next parts
    # still run; the script's status says that something failed.
    "$ROOT/benches/run-peers.sh" --no-build "${PASS[@]}" --out "$out" "$@" || {
        echo "[run-throughput] $part: some cases failed or were skipped" >&2
        STATUS=1
    }
    [[ -f "$out" ]] || return 0
    {
        echo
        echo "## $title"
        echo
        # The part's settings list and table, without its own title line.
        tail -n +3 "$out"
    } >>"$ALL"
}

STATUS=0
IFS=, read -r -a PART_LIST <<<"$PARTS"
for part in "${PART_LIST[@]}"; do
    case "$part" in
        hits) run_part hits "Hits: one core each, h1 and h2c, three tools" \
            --servers tiercel,nginx,trafficserver,varnish --protocols h1,h2 \
            --sizes 1KiB,100KiB,1MiB --tools tiercel-load,wrk,h2load ;;
        miss) run_part miss "Misses: a new 1 KiB URL every request" \
            --miss --servers tiercel,nginx,trafficserver,varnish --protocols h1 \
            --sizes 1KiB --tools tiercel-load,wrk ;;
        tls) run_part tls "h2 over TLS 1.3" \
            --servers tiercel,nginx --protocols h2tls --sizes 100KiB,1MiB --tools h2load ;;
        multicore) run_part multicore "Two workers, both cores shared with the load" \
            --servers tiercel,nginx --workers 2 --server-cpu 0,1 --load-cpu 0,1 \
            --protocols h1,h2 --sizes 1KiB,100KiB --tools wrk,h2load ;;
        *) echo "run-throughput.sh: unknown part $part" >&2; exit 2 ;;
    esac
done
echo "[run-throughput] wrote $ALL" >&2
exit "$STATUS"
