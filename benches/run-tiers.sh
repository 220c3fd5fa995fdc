#!/usr/bin/env bash
# The shield tier's worth: a Zipf-distributed workload (s = 1.0 over 100 000 objects of 1 KiB)
# over three edges, once with the edges in front of two shields and once straight on the
# origin. Reports the origin requests (the upstream requests of the nodes facing the origin)
# and the clients' req/s and p99, and writes benches/results/<date>-tiers.md.
#
#   benches/run-tiers.sh                 # build, 20 s per setup
#   benches/run-tiers.sh --no-build --duration 20 --direct-duration 8
#
# The share of requests that reach the origin falls as more requests are served (Zipf), so
# compare setups at similar served counts: without the shield hop the edges serve faster, and
# --direct-duration shortens that run to match.
#
# Every process runs on this machine: nodes on core 0, the origin and the three load
# generators (one per edge, 8 connections each, the same objects) on core 1. Ports
# 18200-18230 on 127.0.0.1. Needs taskset, curl and two CPUs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release"
DURATION=20
DIRECT_DURATION=""
NGINX_DURATION=""
OBJECTS=100000
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --duration) DURATION="$2"; shift ;;
        --direct-duration) DIRECT_DURATION="$2"; shift ;;
        --nginx-duration) NGINX_DURATION="$2"; shift ;;
        --objects) OBJECTS="$2"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $BUILD == 1 ]] && cargo build --release -p tiercel-edge -p tiercel-shield -p tiercel-testbed -p tiercel-benches >&2

for port in 18206 18241 18242 18243 18251 18252 18200 18205 18201 18202 18203 18210 18211 18220 18221 18230 18231 18232; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (a previous run still going?)" >&2
        exit 1
    fi
done

RUN=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT

metric() {
    local v
    v=$(curl -sf "http://$1/metrics" | awk -v n="$2" '$1 == n {print $2}') || true
    echo "${v:-0}"
}
wait_ready() {
    for _ in $(seq 100); do
        curl -sf "http://$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "node on $1 did not become ready" >&2
    exit 1
}

# One tiercel-load per edge (ports PREFIX1..PREFIX3), the same Zipf object space, for DURATION
# seconds; reports go to $RUN/load-LABEL-i.json. A load generator exits 2 when requests failed:
# the failures are in its report.
load_edges() {
    local label="$1" prefix="$2" duration="$3" loads=()
    for i in 0 1 2; do
        taskset -c 1 "$BIN/tiercel-load" --connections 8 --warmup 0s --duration "${duration}s" \
            --zipf "$OBJECTS" --expect-length 1024 -H "Host: site.example" --json \
            "http://127.0.0.1:${prefix}$((i + 1))/z/{n}?size=1024&cc=max-age%3D3600" \
            >"$RUN/load-$label-$i.json" 2>"$RUN/load-$label-$i.err" &
        loads+=($!)
    done
    wait "${loads[@]}" || true
}

# Prints "origin served req/s worst_p99_ms errors error_kinds" from the origin request count, the
# requests served and the load generators' JSON reports.
summarize() {
    python3 - "$@" <<'PY'
import json, sys
origin, served = int(sys.argv[1]), int(sys.argv[2])
reports = [json.load(open(p)) for p in sys.argv[3:]]
rps = sum(r["rps"] for r in reports)
p99 = max(r["latency_us"]["p99"] for r in reports) / 1000
errors = sum(r["errors"] for r in reports)
kinds = {}
for r in reports:
    for k, v in r.get("error_kinds", {}).items():
        kinds[k] = kinds.get(k, 0) + v
detail = "/".join(f"{k}:{v}" for k, v in sorted(kinds.items())) or "-"
print(origin, served, f"{rps:.0f}", f"{p99:.2f}", errors, detail)
PY
}

# One setup: $1 = "shields" or "direct". Prints "origin_requests total_rps worst_p99_ms errors".
run_setup() {
    local mode="$1" duration="$2" upstream_admins=() origin=127.0.0.1:18200
    # Each setup has its own origin port: the last one may still be closing.
    [[ $mode == direct ]] && origin=127.0.0.1:18205
    taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen "$origin" >"$RUN/origin.log" 2>&1 &
    PIDS+=($!)
    local shield_list=""
    if [[ $mode == shields ]]; then
        for i in 0 1; do
            taskset -c 0 "$BIN/tiercel-shield" --listen "127.0.0.1:1821$i" \
                --admin-listen "127.0.0.1:1822$i" --origin "http://$origin" \
                --name "shield-$i" >"$RUN/shield-$i.log" 2>&1 &
            PIDS+=($!)
            wait_ready "127.0.0.1:1822$i"
            upstream_admins+=("127.0.0.1:1822$i")
        done
        shield_list="http://127.0.0.1:18210,http://127.0.0.1:18211"
    fi
    for i in 0 1 2; do
        local args=(--listen "127.0.0.1:1820$((i + 1))" --admin-listen "127.0.0.1:1823$i" --name "edge-$i")
        if [[ -n $shield_list ]]; then
            args+=(--shield "$shield_list")
        else
            args+=(--origin "http://$origin")
            upstream_admins+=("127.0.0.1:1823$i")
        fi
        taskset -c 0 "$BIN/tiercel-edge" "${args[@]}" >"$RUN/edge-$i.log" 2>&1 &
        PIDS+=($!)
        wait_ready "127.0.0.1:1823$i"
    done
    load_edges "$mode" 1820 "$duration"
    local origin_requests=0 served=0
    for a in "${upstream_admins[@]}"; do
        origin_requests=$((origin_requests + $(metric "$a" tiercel_upstream_requests_total)))
    done
    # What the edges served (hits and misses), the denominator of the origin share.
    for i in 0 1 2; do
        served=$((served + $(metric "127.0.0.1:1823$i" tiercel_cache_hits_total) \
            + $(metric "127.0.0.1:1823$i" tiercel_cache_misses_total)))
    done
    summarize "$origin_requests" "$served" "$RUN"/load-"$mode"-*.json
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    PIDS=()
}

# The same workload on nginx configured as a two-tier cache (peers/nginx-tiers.conf.tmpl).
run_nginx() {
    local duration="$1" origin=127.0.0.1:18206 dir
    dir=$(mktemp -d /dev/shm/tiercel-tiers.XXXXXX)
    taskset -c 1 "$BIN/tiercel-testbed" demo-origin --listen "$origin" >"$RUN/origin-nginx.log" 2>&1 &
    PIDS+=($!)
    local user=""
    [[ $EUID -eq 0 ]] && user="user root;"
    sed -e "s#@RUN_DIR@#$dir#g" -e "s#@ORIGIN@#$origin#g" -e "s#@USER_DIRECTIVE@#$user#g" \
        -e "s#@EDGE0@#18241#g" -e "s#@EDGE1@#18242#g" -e "s#@EDGE2@#18243#g" \
        -e "s#@SHIELD0@#18251#g" -e "s#@SHIELD1@#18252#g" \
        "$ROOT/benches/peers/nginx-tiers.conf.tmpl" >"$dir/nginx-tiers.conf"
    taskset -c 0 nginx -p "$dir" -e stderr -c "$dir/nginx-tiers.conf" >"$RUN/nginx.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/18243) 2>/dev/null && break
        sleep 0.1
    done
    load_edges nginx 1824 "$duration"
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    PIDS=()
    local origin_requests served
    origin_requests=$(cat "$dir"/nt-shield*.log | grep -cE '^(MISS|EXPIRED)$' || true)
    served=$(cat "$dir"/nt-edge*.log | wc -l)
    rm -rf "$dir"
    summarize "$origin_requests" "$served" "$RUN"/load-nginx-*.json
}

read -r with_origin with_requests with_rps with_p99 with_errors with_kinds < <(run_setup shields "$DURATION")
read -r direct_origin direct_requests direct_rps direct_p99 direct_errors direct_kinds < <(run_setup direct "${DIRECT_DURATION:-$DURATION}")
nginx_row=""
if command -v nginx >/dev/null; then
    read -r ng_origin ng_requests ng_rps ng_p99 ng_errors ng_kinds < <(run_nginx "${NGINX_DURATION:-$DURATION}")
    nginx_row=$(awk -v r="$ng_requests" -v o="$ng_origin" -v rps="$ng_rps" -v p="$ng_p99" -v e="$ng_errors ($ng_kinds)" \
        'BEGIN { printf "| nginx: 3 edges → 2 shields → origin | %d | %s | %s | %s | %d | %.3f |\n", r, rps, p, e, o, o / r }')
fi

OUT="$ROOT/benches/results/$(date +%F)-tiers.md"
{
    echo "# Shield tier: Zipf workload over three edges ($(date +%F))"
    echo
    echo "Zipf s = 1.0 over $OBJECTS objects of 1 KiB, three edges, one tiercel-load per edge (8 h1"
    echo "connections each, the same object space, ${DURATION} s with shields and ${DIRECT_DURATION:-$DURATION} s without, cold"
    echo "caches). Nodes on core 0;"
    echo "origin and load generators on core 1. \`benches/run-tiers.sh\`."
    echo
    echo "| setup | requests served by the edges | client req/s (3 edges) | worst p99 ms | client errors | origin requests | origin requests / served |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    awk -v r="$with_requests" -v o="$with_origin" -v rps="$with_rps" -v p="$with_p99" -v e="$with_errors ($with_kinds)" \
        'BEGIN { printf "| Tiercel: 3 edges → 2 shields → origin | %d | %s | %s | %s | %d | %.3f |\n", r, rps, p, e, o, o / r }'
    awk -v r="$direct_requests" -v o="$direct_origin" -v rps="$direct_rps" -v p="$direct_p99" -v e="$direct_errors ($direct_kinds)" \
        'BEGIN { printf "| Tiercel: 3 edges → origin | %d | %s | %s | %s | %d | %.3f |\n", r, rps, p, e, o, o / r }'
    [[ -n $nginx_row ]] && echo "$nginx_row"
} | tee "$OUT"
