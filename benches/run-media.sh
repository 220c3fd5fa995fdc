#!/usr/bin/env bash
# Cold seeks into large objects (issue 17): a Tiercel edge against nginx with the slice module
# (`slice 1m; proxy_cache_key $uri$is_args$args$slice_range;`), in one run, in front of the same
# demo origin with added latency. Writes benches/results/<date>-media.md.
#
#   benches/run-media.sh                       # build, 50 seeks per server, 20 ms latency
#   benches/run-media.sh --no-build --seeks 200 --latency-ms 50
#
# The servers run on core 0, the origin and the client (media-seeks) on core 1. Ports
# 18300-18302 on 127.0.0.1. Needs nginx (with the slice module: Debian's nginx-light has it)
# and taskset.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
[[ $BUILD == 1 ]] && cargo build --release -p tiercel-edge -p tiercel-benches --bin media-seeks >&2

OUT="$ROOT/benches/results/$(date -u +%Y-%m-%d)-media.md"
{
    echo "# Cold seeks: Tiercel vs nginx slice ($(date -u +%Y-%m-%d), $(nproc) cores, $(nginx -v 2>&1 | sed 's#nginx version: ##'))"
    echo
    RUST_LOG=warn taskset -c 1 "$ROOT/target/release/media-seeks" \
        --edge-bin "$ROOT/target/release/tiercel-edge" "${ARGS[@]}"
} | tee "$OUT"
