#!/usr/bin/env bash
# Two edge binaries under the 1 KiB miss load at the same time, so that the host's noise (on this
# VM the same binary's req/s moves by ±30 % from one minute to the next) hits both alike and
# cancels out of their ratio.
#
#   benches/ab-simultaneous.sh OLD_EDGE NEW_EDGE        # 8 rounds of 5 s
#   ROUNDS=4 DURATION=3 benches/ab-simultaneous.sh a b
#
# Edge A runs on one core beside B's wrk, edge B on the other beside A's wrk; the demo origin
# floats. The cores are swapped every round, so neither binary keeps the better core. Each edge
# has a 64 MiB memory tier, filled before each round, so every measured miss also evicts (the
# steady state of a node). Prints, per round, both binaries' requests and CPU time and the
# ratios B/A; the median ratio across rounds is the comparison. The coupling (the faster edge's
# wrk takes a little of the other's core) exaggerates a difference slightly; use it to tell
# whether a change made the miss path cheaper, and `run-peers.sh` for figures against peers.
#
# Needs wrk, curl, taskset and two CPUs; uses ports 19100-19105 on 127.0.0.1.
set -euo pipefail

A=${1:?usage: ab-simultaneous.sh EDGE_A EDGE_B}
B=${2:?usage: ab-simultaneous.sh EDGE_A EDGE_B}
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5}
WARM=${WARM:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/release/tiercel-testbed}
for tool in wrk curl taskset python3; do
    command -v "$tool" >/dev/null || { echo "ab-simultaneous: $tool is missing" >&2; exit 1; }
done
[[ -x $ORIGIN_BIN ]] || { echo "ab-simultaneous: $ORIGIN_BIN is missing (cargo build --release -p tiercel-testbed)" >&2; exit 1; }

RUN=$(mktemp -d)
PIDS=()
cleanup() {
    kill "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

"$ORIGIN_BIN" demo-origin --listen 127.0.0.1:19100 >"$RUN/origin.log" 2>&1 &
PIDS+=($!)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_edge() { # binary core port
    taskset -c "$2" "$1" --listen "127.0.0.1:$3" --admin-listen "127.0.0.1:$(($3 + 1))" \
        --origin http://127.0.0.1:19100 --memory-cache 64MiB --worker-threads 1 \
        >"$RUN/edge-$3.log" 2>&1 &
    PIDS+=($!)
    LAST=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$3/" && return 0
        sleep 0.1
    done
    echo "ab-simultaneous: $1 did not start: $(cat "$RUN/edge-$3.log")" >&2
    exit 1
}

load() { # core port seconds script output
    taskset -c "$1" wrk -t1 -c32 -d"$3s" -s "$4" "http://127.0.0.1:$2/" >"$5" 2>&1
}

ratios=()
for r in $(seq "$ROUNDS"); do
    if ((r % 2)); then ca=0 cb=1; else ca=1 cb=0; fi
    start_edge "$A" "$ca" 19102
    pa=$LAST
    start_edge "$B" "$cb" 19104
    pb=$LAST
    script="$RUN/round-$r.lua"
    printf 'local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "/ab-%s-%s-" .. n .. "?size=1024&cc=max-age%%3D3600")\nend\n' \
        "$r" "$RANDOM" >"$script"
    load "$cb" 19102 "$WARM" "$script" /dev/null &
    w1=$!
    load "$ca" 19104 "$WARM" "$script" /dev/null &
    w2=$!
    wait "$w1" "$w2"
    sed -i 's|/ab-|/ab-m-|' "$script"
    ta=$(cpu_ticks "$pa")
    tb=$(cpu_ticks "$pb")
    load "$cb" 19102 "$DURATION" "$script" "$RUN/a.txt" &
    w1=$!
    load "$ca" 19104 "$DURATION" "$script" "$RUN/b.txt" &
    w2=$!
    wait "$w1" "$w2"
    ta=$(($(cpu_ticks "$pa") - ta))
    tb=$(($(cpu_ticks "$pb") - tb))
    na=$(awk '/requests in/{print $1}' "$RUN/a.txt")
    nb=$(awk '/requests in/{print $1}' "$RUN/b.txt")
    line=$(python3 -c "
na, nb, ta, tb = $na, $nb, $ta, $tb
print(f'round $r: A core $ca {na} req {ta} ticks | B core $cb {nb} req {tb} ticks | B/A req {nb/na:.3f} CPU/req {(tb/nb)/(ta/na):.3f}')")
    echo "$line"
    ratios+=("$(python3 -c "print($nb/$na, ($tb/$nb)/($ta/$na))")")
    kill "$pa" "$pb"
    wait "$pa" "$pb" 2>/dev/null || true
done
printf '%s\n' "${ratios[@]}" | python3 -c "
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
print(f'median over {len(rows)} rounds: B/A req {statistics.median(r[0] for r in rows):.3f}, CPU per request {statistics.median(r[1] for r in rows):.3f}')"
