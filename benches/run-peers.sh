#!/usr/bin/env bash
# Hot-hit load benchmark: a Tiercel edge against nginx (proxy_cache), Varnish (malloc storage)
# and Apache Traffic Server (RAM cache), all in front of the same demo origin, each pinned to
# the server core, with the load generator pinned to the other core. Prints one markdown table
# (req/s, latency percentiles, errors, CPU use and CPU per request, Tiercel's ratios to each
# peer) and writes it, with the raw JSON lines, to benches/results/<date>.md / .jsonl.
#
#   benches/run-peers.sh                 # full run: 2 s warm-up + 10 s per case
#   benches/run-peers.sh --quick         # CI smoke: 2 s cases, any error or skipped case fails
#   benches/run-peers.sh --servers nginx,varnish --no-build
#   benches/run-peers.sh --miss --sizes 1KiB   # the miss path: a new URL every request
#   benches/run-peers.sh --tools tiercel-load,wrk,h2load   # also measure with wrk and h2load
#   benches/run-peers.sh --protocols h2tls --tools h2load  # h2 over TLS (Tiercel and nginx)
#
# Needs: nginx (Debian nginx-light or nginx), varnishd (Debian varnish), traffic_server (Debian
# trafficserver), curl, taskset, two CPUs; wrk and h2load (Debian wrk, nghttp2-client) for
# --tools. The peers are started by hand on loopback ports, never as services.
# See benches/README.md for the methodology.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCHES="$ROOT/benches"
BIN="$ROOT/target/release"

DURATION=""
WARMUP=""
H1_CONNS=32
H2_CONNS=4
H2_STREAMS=32
SERVERS="tiercel,nginx,varnish,trafficserver"
TOOLS="tiercel-load"
EXT_CONNS=64     # connections of wrk and h2load (one request in flight on each)
WORKERS=1        # worker threads / processes of every server
PROTOCOLS="h1,h2"
SIZES="1KiB,1MiB"
SERVER_CPU=0
LOAD_CPU=1
BASE_PORT="${TIERCEL_BENCH_PORT:-18000}"
BUILD=1
QUICK=0
OUT=""
QUIET_WAIT=""    # seconds to wait for other work on the machine to stop before each case
QUIET_MAX=15     # machine-wide busy percent (of one core) that counts as quiet
MAX_ERRORS=""
ROUNDS=""
RETRIES=""       # runs disturbed by other processes are measured again this many times at most
DISCARDED=0
KEEP=0
MISS=0
MISS_FILL=20s    # --miss: misses sent to each server before its first measured run
MISS_FILLED=0    # whether a fill ran (the report says so)
TIERCEL_MEMORY=512MiB
TIERCEL_DISK=""  # size of a disk tier for Tiercel (in the run directory); empty: memory only
ARGS="$*"

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --quick               CI smoke: short single runs, fail on any error or skipped case
  --duration D          measurement window per case (default 10s; --quick: 2s)
  --warmup D            warm-up per case (default 2s; --quick: 500ms)
  --servers LIST        comma-separated subset of tiercel,nginx,varnish,trafficserver
  --tools LIST          load generators, comma-separated: tiercel-load (h1 and h2), wrk (h1),
                        h2load (h2c, -m 1); each is its own case in the table (default
                        tiercel-load)
  --ext-connections N   connections of wrk and h2load (default $EXT_CONNS)
  --workers N           worker threads (Tiercel, ATS) / processes (nginx) / thread pools
                        (Varnish) of each server (default $WORKERS); with N > 1 give the
                        servers N cores, e.g. --server-cpu 0,1 --load-cpu 0,1
  --protocols LIST      comma-separated subset of h1,h2,h2tls (h2 over TLS 1.3, one ECDSA
                        P-256 certificate for every server; measured with h2load, shown as
                        size "<size> tls"; Tiercel and nginx only)
  --sizes LIST          comma-separated object sizes, e.g. 1KiB,64KiB,1MiB
  --rounds N            runs of every case, interleaved across servers; the table shows the
                        median of each figure and the req/s spread (default 3; --quick: 1)
  --h1-connections N    HTTP/1.1 connections (default $H1_CONNS)
  --h2-connections N    h2 connections (default $H2_CONNS)
  --h2-streams N        streams per h2 connection (default $H2_STREAMS)
  --server-cpu N        core for the servers (default $SERVER_CPU)
  --load-cpu N          core for tiercel-load and the origin (default $LOAD_CPU)
  --quiet-wait SECS     wait up to SECS for the machine to be idle before each case (default 60,
                        or 0 as root, where the runs get priority over everything else)
  --quiet-max PCT       busy percent that counts as idle (default $QUIET_MAX); a run during
                        which other processes used more is measured again
  --retries N           how many times such a run is measured again (default 2; --quick: 0)
  --tiercel-memory SIZE Tiercel's memory tier (default 512MiB)
  --tiercel-disk SIZE   give Tiercel a disk tier of SIZE in the run directory; with a small
                        --tiercel-memory, hits come from disk as nginx's do (default: none)
  --no-build            use the binaries already in target/release
  --out FILE            markdown output (default benches/results/<date>.md; --quick: none)
  --keep                keep the run directory (logs, rendered configs)
  --miss                every request asks for a new URL (the miss path: upstream fetch,
                        store, eviction); sizes are reported as e.g. "1KiB miss"; the
                        origin's CPU shows as "other CPU", and runs are not retried for it
  --miss-fill DURATION  with --miss, misses sent to each server before measuring, so every
                        measured miss also evicts (a node's steady state) and no server is
                        measured while it first touches its cache memory (default $MISS_FILL,
                        enough for the default cache sizes; --quick: 0s; 0s: none)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --miss) MISS=1 ;;
        --miss-fill) MISS_FILL="$2"; MISS_FILL_GIVEN=1; shift ;;
        --duration) DURATION="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --servers) SERVERS="$2"; shift ;;
        --tools) TOOLS="$2"; shift ;;
        --ext-connections) EXT_CONNS="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        --protocols) PROTOCOLS="$2"; shift ;;
        --sizes) SIZES="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --h1-connections) H1_CONNS="$2"; shift ;;
        --h2-connections) H2_CONNS="$2"; shift ;;
        --h2-streams) H2_STREAMS="$2"; shift ;;
        --server-cpu) SERVER_CPU="$2"; shift ;;
        --load-cpu) LOAD_CPU="$2"; shift ;;
        --quiet-wait) QUIET_WAIT="$2"; shift ;;
        --quiet-max) QUIET_MAX="$2"; shift ;;
        --retries) RETRIES="$2"; shift ;;
        --tiercel-memory) TIERCEL_MEMORY="$2"; shift ;;
        --tiercel-disk) TIERCEL_DISK="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-peers.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    DURATION="${DURATION:-2s}"
    WARMUP="${WARMUP:-500ms}"
    ROUNDS="${ROUNDS:-1}"
    QUIET_WAIT="${QUIET_WAIT:-0}"
    RETRIES="${RETRIES:-0}"
    MAX_ERRORS=0
    [[ -z "${MISS_FILL_GIVEN:-}" ]] && MISS_FILL=0s
fi
if [[ $MISS == 1 ]]; then
    # The origin works on every request, and counts as "other CPU": that is the workload, not
    # a disturbance, so runs are not measured again for it.
    RETRIES="${RETRIES:-0}"
fi
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
ROUNDS="${ROUNDS:-3}"
RETRIES="${RETRIES:-2}"

log() { printf '[run-peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
IFS=, read -r -a PROTOCOL_LIST <<<"$PROTOCOLS"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for tool in "${TOOL_LIST[@]}"; do
    case "$tool" in
        tiercel-load) ;;
        wrk|h2load) command -v "$tool" >/dev/null \
            || die "$tool is not installed (apt-get install ${tool/h2load/nghttp2-client})" ;;
        *) die "unknown tool $tool (tiercel-load, wrk or h2load)" ;;
    esac
done
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive number, got $WORKERS"

for tool in curl taskset; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ $(nproc --all) -ge 2 ]] || die "two CPUs are needed (server core + load core)"
# The tools' protocol: tiercel-load speaks h1 and h2c, wrk only HTTP/1.1, h2load h2c and h2
# over TLS.
tool_speaks() {
    case "$1/$2" in
        tiercel-load/h1|tiercel-load/h2|wrk/h1|h2load/h2|h2load/h2tls) return 0 ;;
        *) return 1 ;;
    esac
}
for proto in "${PROTOCOL_LIST[@]}"; do
    spoken=0
    for tool in "${TOOL_LIST[@]}"; do
        tool_speaks "$tool" "$proto" && spoken=1
    done
    [[ $spoken == 1 ]] || die "no tool in --tools $TOOLS speaks $proto (h2tls needs h2load)"
done

# Higher priority than builds or anything else on the machine, when allowed. With the
# kernel's autogroup scheduling on, nice only ranks processes within one session, so each
# server and each load run also gets a session of its own whose autogroup is at nice -20.
NICE=()
BOOST=()
if [[ $EUID -eq 0 ]]; then
    NICE=(nice -n -20)
    if [[ -w /proc/self/autogroup && $- != *m* ]] && command -v setsid >/dev/null; then
        # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
        BOOST=(setsid bash -c 'echo -20 >"/proc/$$/autogroup" 2>/dev/null || true; exec "$@"' boost)
    fi
fi
if [[ -z "$QUIET_WAIT" ]]; then
    QUIET_WAIT=60
    [[ ${#NICE[@]} -gt 0 ]] && QUIET_WAIT=0
fi

RUN="$(mktemp -d /dev/shm/tiercel-bench.XXXXXX 2>/dev/null || mktemp -d)"
# Varnish reads its VCL and work directory after dropping privileges.
chmod 755 "$RUN"
STARTED=()          # pids of everything this script started, stopped on exit
declare -A MAIN_PID # server -> pid
declare -A H1_PORT H2_PORT TLS_PORT
declare -A UNAVAILABLE # server -> reason it cannot run at all
FAILED=0

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        log "run directory kept: $RUN"
    else
        rm -rf "$RUN"
    fi
}
trap cleanup EXIT

# Starts "$@" in the background with its output in $RUN/<name>.log; sets LAST_PID.
start_bg() {
    local name="$1"
    shift
    "$@" >"$RUN/$name.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
}

# Waits until 127.0.0.1:<port> accepts connections while <pid> lives (10 s at most).
wait_port() {
    local port="$1" pid="$2"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# "1KiB" -> 1024, "1MiB" -> 1048576, "512" -> 512.
size_bytes() {
    local s="$1"
    case "$s" in
        *KiB) echo $(( ${s%KiB} * 1024 )) ;;
        *MiB) echo $(( ${s%MiB} * 1024 * 1024 )) ;;
        *[!0-9]*|"") die "bad size $s (use N, NKiB or NMiB)" ;;
        *) echo "$s" ;;
    esac
}

# The path of the object of a size: fresh for an hour, so every request after the first is a hit.
# With --miss, `{n}` makes tiercel-load ask for a new object every request.
object_path() {
    if [[ $MISS == 1 ]]; then
        echo "/miss-$1-{n}?size=$(size_bytes "$1")&cc=max-age%3D3600"
    else
        echo "/obj-$1?size=$(size_bytes "$1")&cc=max-age%3D3600"
    fi
}

# Machine-wide busy percent (of one core) over one second, from /proc/stat: user + nice +
# system + steal (interrupt time is mostly our own loopback traffic, as in tiercel-load).
busy_percent() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc --all)" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        t = y[2] - x[2]; if (t <= 0) { print 0; exit }
        printf "%d\n", (y[1] - x[1]) / t * n * 100 }'
}

# The percent of a core that processes other than the server and tiercel-load used during a
# run, from its JSON line (the table's "other CPU" figure, rounded; 0 when unknown).
other_cpu() {
    "$BIN/tiercel-bench-table" --other-cpu <<<"$1" 2>/dev/null || echo 0
}

# Waits (up to QUIET_WAIT seconds) until nothing else is using the CPUs, so a build started by
# someone else does not end up in the figures. The "other CPU" column shows what remained.
wait_quiet() {
    [[ $QUIET_WAIT -gt 0 ]] || return 0
    local waited=0 busy
    while true; do
        busy=$(busy_percent)
        if [[ $busy -le $QUIET_MAX ]]; then
            return 0
        fi
        if [[ $waited -ge $QUIET_WAIT ]]; then
            log "machine still ${busy}% busy after ${waited}s: measuring anyway (see 'other CPU')"
            return 0
        fi
        [[ $waited -eq 0 ]] && log "machine ${busy}% busy: waiting for it to be idle"
        sleep 4
        waited=$((waited + 5))
    done
}

# --- build ------------------------------------------------------------------------------------

want() { [[ ",$SERVERS," == *",$1,"* ]]; }

if [[ $BUILD == 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p tiercel-testbed -p tiercel-benches) >&2 \
        || die "cargo build failed"
    if want tiercel; then
        if ! (cd "$ROOT" && cargo build --release -p tiercel-edge) >&2; then
            UNAVAILABLE[tiercel]="tiercel-edge did not build"
            log "tiercel-edge did not build: its cases are skipped"
        fi
    fi
fi
for b in tiercel-testbed tiercel-load peer-load tiercel-bench-table; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (run without --no-build)"
done
if want tiercel && [[ -z "${UNAVAILABLE[tiercel]:-}" && ! -x "$BIN/tiercel-edge" ]]; then
    UNAVAILABLE[tiercel]="no target/release/tiercel-edge"
fi
if want nginx && ! command -v nginx >/dev/null; then
    UNAVAILABLE[nginx]="nginx not installed (apt-get install nginx-light)"
fi
if want varnish && ! command -v varnishd >/dev/null; then
    UNAVAILABLE[varnish]="varnishd not installed (apt-get install varnish)"
fi
if want trafficserver && ! command -v traffic_server >/dev/null; then
    UNAVAILABLE[trafficserver]="traffic_server not installed (apt-get install trafficserver)"
fi

# --- start ------------------------------------------------------------------------------------

ORIGIN_PORT=$BASE_PORT
H1_PORT[tiercel]=$((BASE_PORT + 10)); H2_PORT[tiercel]=$((BASE_PORT + 10)); TLS_PORT[tiercel]=$((BASE_PORT + 11))
H1_PORT[nginx]=$((BASE_PORT + 20));   H2_PORT[nginx]=$((BASE_PORT + 21)); TLS_PORT[nginx]=$((BASE_PORT + 22))
H1_PORT[varnish]=$((BASE_PORT + 30)); H2_PORT[varnish]=$((BASE_PORT + 31))
# ATS takes h2c with prior knowledge on its HTTP/1.1 port (it probes for the h2 preface).
H1_PORT[trafficserver]=$((BASE_PORT + 40)); H2_PORT[trafficserver]=$((BASE_PORT + 40))
for port in "$ORIGIN_PORT" "${H1_PORT[@]}" "${H2_PORT[@]}" "${TLS_PORT[@]}"; do
    port_free "$port" || die "port $port is in use (set TIERCEL_BENCH_PORT to another base)"
done

log "run directory $RUN"
# One certificate for every TLS listener, so the handshakes and ciphers compare.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$RUN/tls.key" -out "$RUN/tls.crt" >/dev/null 2>&1 || die "openssl could not make a certificate"
# The origin shares the load generator's core and its priority: at nice 0 beside a load
# generator at -20 it got the core only when the load generator slept, so every miss waited
# for that (CFS weights 1024 against 88761), the more so for a server whose answers woke the
# load generator more often.
start_bg origin "${BOOST[@]}" taskset -c "$LOAD_CPU" "${NICE[@]}" "$BIN/tiercel-testbed" demo-origin \
    --listen "127.0.0.1:$ORIGIN_PORT"
wait_port "$ORIGIN_PORT" "$LAST_PID" || die "the demo origin did not start: $(cat "$RUN/origin.log")"
ORIGIN="127.0.0.1:$ORIGIN_PORT"

start_tiercel() {
    start_bg tiercel "${BOOST[@]}" env RUST_LOG=warn taskset -c "$SERVER_CPU" "${NICE[@]}" "$BIN/tiercel-edge" \
        --listen "127.0.0.1:${H1_PORT[tiercel]}" --origin "http://$ORIGIN" --memory-cache "$TIERCEL_MEMORY" \
        --worker-threads "$WORKERS" \
        --tls-listen "127.0.0.1:${TLS_PORT[tiercel]}" --cert "$RUN/tls.crt" --key "$RUN/tls.key" \
        ${TIERCEL_DISK:+--disk-cache "$RUN/tiercel-disk" --disk-cache-size "$TIERCEL_DISK"}
}

start_nginx() {
    local user=""
    [[ $EUID -eq 0 ]] && user="user root;"
    sed -e "s#@RUN_DIR@#$RUN#g" -e "s#@ORIGIN@#$ORIGIN#g" \
        -e "s#@H1_PORT@#${H1_PORT[nginx]}#g" -e "s#@H2_PORT@#${H2_PORT[nginx]}#g" \
        -e "s#@USER_DIRECTIVE@#$user#g" -e "s#@WORKERS@#$WORKERS#g" -e "s#@TLS_PORT@#${TLS_PORT[nginx]}#g" \
        "$BENCHES/peers/nginx.conf.tmpl" >"$RUN/nginx.conf"
    start_bg nginx "${BOOST[@]}" taskset -c "$SERVER_CPU" "${NICE[@]}" nginx -p "$RUN" -e stderr \
        -c "$RUN/nginx.conf"
}

start_varnish() {
    sed -e "s#@ORIGIN_HOST@#127.0.0.1#g" -e "s#@ORIGIN_PORT@#$ORIGIN_PORT#g" \
        "$BENCHES/peers/varnish.vcl" >"$RUN/varnish.vcl"
    start_bg varnish "${BOOST[@]}" taskset -c "$SERVER_CPU" "${NICE[@]}" varnishd -F -n "$RUN/varnish" \
        -f "$RUN/varnish.vcl" -a "127.0.0.1:${H1_PORT[varnish]}" -a "127.0.0.1:${H2_PORT[varnish]}" \
        -s malloc,256m -p thread_pools="$WORKERS" -p feature=+http2
}

# ATS reads its layout from a runroot file; everything it writes goes under $RUN/ats. Files
# the templates do not provide (ip_allow.yaml, logging.yaml...) come from Debian's defaults.
start_trafficserver() {
    local dir="$RUN/ats" f
    mkdir -p "$dir"/{etc,data,var,run,log,cache}
    cp /etc/trafficserver/*.yaml /etc/trafficserver/*.config "$dir/etc/" 2>/dev/null || true
    for f in records.config remap.config storage.config runroot.yaml; do
        local out="$dir/etc/$f"
        [[ $f == runroot.yaml ]] && out="$dir/runroot.yaml"
        sed -e "s#@RUN_DIR@#$RUN#g" -e "s#@ORIGIN@#$ORIGIN#g" \
            -e "s#@H1_PORT@#${H1_PORT[trafficserver]}#g" -e "s#@THREADS@#$WORKERS#g" \
            "$BENCHES/peers/trafficserver/$f" >"$out"
    done
    truncate -s 512M "$dir/cache.db"
    start_bg trafficserver "${BOOST[@]}" taskset -c "$SERVER_CPU" "${NICE[@]}" traffic_server \
        --run-root="$dir/runroot.yaml"
}

for server in "${SERVER_LIST[@]}"; do
    [[ -n "${UNAVAILABLE[$server]:-}" ]] && continue
    case "$server" in
        tiercel) start_tiercel ;;
        nginx) start_nginx ;;
        varnish) start_varnish ;;
        trafficserver) start_trafficserver ;;
        *) die "unknown server $server" ;;
    esac
    MAIN_PID[$server]=$LAST_PID
    if ! wait_port "${H1_PORT[$server]}" "$LAST_PID"; then
        UNAVAILABLE[$server]="did not start (see $server.log)"
        log "$server did not start: $(tail -5 "$RUN/$server.log")"
    else
        log "$server listening (pid $LAST_PID)"
    fi
done

# The processes whose CPU use counts as the server's: the main one and its children (nginx's
# worker and cache processes, Varnish's cache child).
watch_flags() {
    local pid="${MAIN_PID[$1]}" child
    printf -- '--watch-pid %s ' "$pid"
    for child in $(pgrep -P "$pid" || true); do
        printf -- '--watch-pid %s ' "$child"
    done
}

# Whether a response head (from curl -D -) says the cache served it.
is_hit() {
    local server="$1" head="$2"
    case "$server" in
        tiercel) grep -qiE '^cache-status:.*tiercel-edge; *hit' <<<"$head" ;;
        nginx) grep -qiE '^x-cache-status: *HIT' <<<"$head" ;;
        varnish) grep -qiE '^x-cache: *HIT' <<<"$head" ;;
        # Via with the cache codes (insert_response_via_str 2): "[cH" is a fresh hit from
        # the cache file, "[cR" a fresh hit from the RAM cache.
        trafficserver) grep -qiE '^via:.*\[c[HR]' <<<"$head" ;;
    esac
}

# Fetches the object twice over the protocol and checks the second answer is a 200 hit with the
# right length. Prints the reason on failure.
warm() {
    local server="$1" proto="$2" url="${3//\{n\}/warm}" bytes="$4" flag head
    flag=--http1.1
    [[ $proto == h2 ]] && flag=--http2-prior-knowledge
    [[ $proto == h2tls ]] && flag=--http2
    curl -sSk "$flag" --max-time 10 -o /dev/null "$url" 2>"$RUN/curl.err" \
        || { echo "no $proto answer: $(head -c 200 "$RUN/curl.err")"; return 1; }
    head=$(curl -sSk "$flag" --max-time 10 -o /dev/null -D - "$url" 2>"$RUN/curl.err" | tr -d '\r') \
        || { echo "no $proto answer: $(head -c 200 "$RUN/curl.err")"; return 1; }
    grep -qE '^HTTP/[0-9.]+ 200' <<<"$head" || { echo "status $(head -1 <<<"$head")"; return 1; }
    if [[ $proto == h2tls ]] && ! grep -qE '^HTTP/2 ' <<<"$head"; then
        echo "TLS answer was not HTTP/2"; return 1
    fi
    grep -qiE "^content-length: *$bytes\$" <<<"$head" \
        || { echo "second answer not $bytes bytes long"; return 1; }
    [[ $MISS == 1 ]] || is_hit "$server" "$head" || { echo "second request was not a cache hit"; return 1; }
}

# Scheme, address and port of a server for a protocol.
server_url() {
    case "$2" in
        h1) echo "http://127.0.0.1:${H1_PORT[$1]}" ;;
        h2) echo "http://127.0.0.1:${H2_PORT[$1]}" ;;
        h2tls) echo "https://127.0.0.1:${TLS_PORT[$1]}" ;;
    esac
}

skip() {
    local server="$1" proto="$2" size="$3" why="$4"
    local tool
    log "skip $server $proto $size: $why"
    # One record per tool that would have measured the case, so it lands in that tool's rows.
    for tool in "${TOOL_LIST[@]}"; do
        tool_speaks "$tool" "$proto" || continue
        printf '{"tags":{"server":"%s","size":"%s","tool":"%s"},"protocol":"%s","skipped":"%s"}\n' \
            "$server" "$size" "$tool" "${proto/h2tls/h2}" "${why//\"/\'}" >>"$RUN/results.jsonl"
    done
}

# --- measure ----------------------------------------------------------------------------------

# tiercel-load's command for a protocol, with the case's connections (and streams for h2), in
# TIERCEL_LOAD: the measured runs and the miss fill load alike.
tiercel_load_for() {
    TIERCEL_LOAD=("$BIN/tiercel-load" --protocol "$1")
    if [[ $1 == h1 ]]; then
        TIERCEL_LOAD+=(--connections "$H1_CONNS")
    else
        TIERCEL_LOAD+=(--connections "$H2_CONNS" --streams "$H2_STREAMS")
    fi
}

: >"$RUN/results.jsonl"
for proto in "${PROTOCOL_LIST[@]}"; do
    for size in "${SIZE_LIST[@]}"; do
        bytes=$(size_bytes "$size")
        path=$(object_path "$size")
        size_label="$size"
        [[ $MISS == 1 ]] && size_label="$size miss"
        [[ $proto == h2tls ]] && size_label="$size_label tls"
        # Warm every server's cache for this case first; a server that fails is skipped.
        ready=()
        for server in "${SERVER_LIST[@]}"; do
            if [[ -n "${UNAVAILABLE[$server]:-}" ]]; then
                skip "$server" "$proto" "$size_label" "${UNAVAILABLE[$server]}"
                [[ $QUICK == 1 ]] && FAILED=1
                continue
            fi
            if [[ $proto == h2tls && -z "${TLS_PORT[$server]:-}" ]]; then
                skip "$server" "$proto" "$size_label" "no TLS set-up in the runner"
                continue
            fi
            if ! why=$(warm "$server" "$proto" "$(server_url "$server" "$proto")$path" "$bytes"); then
                skip "$server" "$proto" "$size_label" "$why"
                [[ $QUICK == 1 ]] && FAILED=1
                continue
            fi
            ready+=("$server")
        done
        # Misses: each cache is filled first (512 MiB of 1 KiB objects is some 200 000 of
        # them), so the first rounds do not measure a server growing into fresh memory (page
        # faults, zeroed huge pages) and the later ones a server that evicts.
        if [[ $MISS == 1 && ! $MISS_FILL =~ ^0+(s|ms|m)?$ ]] && tool_speaks tiercel-load "$proto"; then
            tiercel_load_for "$proto"
            fill=("${TIERCEL_LOAD[@]}")
            for server in "${ready[@]}"; do
                log "filling $server's cache: $MISS_FILL of $proto misses"
                if "${BOOST[@]}" taskset -c "$LOAD_CPU" "${NICE[@]}" "${fill[@]}" \
                    --duration "$MISS_FILL" --warmup 0s \
                    --json "$(server_url "$server" "$proto")$path" >/dev/null 2>>"$RUN/load.err"; then
                    MISS_FILLED=1
                else
                    log "filling $server's cache failed: $(tail -2 "$RUN/load.err")"
                fi
            done
        fi
        for tool in "${TOOL_LIST[@]}"; do
        tool_speaks "$tool" "$proto" || continue
        if [[ $tool == h2load && $MISS == 1 ]]; then
            log "skip h2load $size miss: h2load cannot ask for a new URL per request"
            continue
        fi
        if [[ $tool == tiercel-load ]]; then
            tiercel_load_for "$proto"
            load=("${TIERCEL_LOAD[@]}")
        else
            load=("$BIN/peer-load" --tool "$tool" --connections "$EXT_CONNS")
        fi
        [[ -n "$MAX_ERRORS" ]] && load+=(--max-errors "$MAX_ERRORS")
        # Rounds interleave the servers, so slow drifts of the machine hit them all alike.
        for round in $(seq "$ROUNDS"); do
            for server in "${ready[@]}"; do
                url="$(server_url "$server" "$proto")$path"
                # A run during which something else took more than QUIET_MAX% of a core says
                # more about the machine than about the server: it is run again (at most
                # RETRIES times) and only the last attempt is kept.
                for attempt in $(seq 0 "$RETRIES"); do
                    wait_quiet
                    log "measuring $server $proto $size with $tool, round $round/$ROUNDS ($WARMUP + $DURATION)"
                    # shellcheck disable=SC2046 # watch_flags is a list of words
                    if json=$("${BOOST[@]}" taskset -c "$LOAD_CPU" "${NICE[@]}" \
                        "${load[@]}" --duration "$DURATION" --warmup "$WARMUP" \
                        --expect-length "$bytes" --tag "server=$server" --tag "size=$size_label" \
                        --tag "round=$round" \
                        $(watch_flags "$server") --json "$url" 2>>"$RUN/load.err"); then
                        :
                    else
                        log "$tool failed for $server $proto $size: $(tail -2 "$RUN/load.err")"
                        FAILED=1
                        break
                    fi
                    other=$(other_cpu "$json")
                    [[ $other -le $QUIET_MAX ]] && break
                    if [[ $attempt -lt $RETRIES ]]; then
                        log "other processes used ${other}% of a core during that run: measuring it again"
                        DISCARDED=$((DISCARDED + 1))
                    else
                        log "other processes used ${other}% of a core during that run: kept (see 'other CPU')"
                    fi
                done
                [[ -n "$json" ]] && echo "$json" >>"$RUN/results.jsonl"
            done
        done
        done
    done
done

# --- report -----------------------------------------------------------------------------------

TABLE=$("$BIN/tiercel-bench-table" "$RUN/results.jsonl")
echo "$TABLE"

version_of() {
    case "$1" in
        tiercel) echo "Tiercel edge $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" ;;
        nginx) nginx -v 2>&1 | sed 's#nginx version: ##' ;;
        varnish) varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(.*\) revision.*/\1/' ;;
        trafficserver) traffic_server -V 2>&1 | grep -m1 -o 'Traffic Server [0-9.]*' ;;
    esac
}

DEFAULT_OUT=0
if [[ -z "$OUT" && $QUICK == 0 ]]; then
    mkdir -p "$BENCHES/results"
    OUT="$BENCHES/results/$(date -u +%Y-%m-%d).md"
    DEFAULT_OUT=1
fi
if [[ -n "$OUT" ]]; then
    {
        title="Hot-hit benchmark"
        [[ $MISS == 1 ]] && title="Miss benchmark"
        echo "# $title, $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        dirty=""
        [[ -n "$(git -C "$ROOT" status --porcelain -- edge cluster 2>/dev/null)" ]] && dirty=" (edge/ or cluster/ modified)"
        echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$dirty"
        echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) CPUs, Linux $(uname -r)"
        for server in "${SERVER_LIST[@]}"; do
            echo "- $server: $(version_of "$server")"
        done
        echo "- servers on core $SERVER_CPU, tiercel-load and the origin on core $LOAD_CPU${NICE[*]:+, both at nice -20}"
        echo "- runs measured again because other processes used more than ${QUIET_MAX}% of a core meanwhile: $DISCARDED (at most $RETRIES per run)"
        echo "- each case: $WARMUP warm-up, then $DURATION measured, $ROUNDS round(s) interleaved across servers (the table shows per-figure medians; ± is half the req/s range); tiercel-load h1: $H1_CONNS keep-alive connections; tiercel-load h2: $H2_CONNS connections × $H2_STREAMS streams (prior knowledge); wrk and h2load: $EXT_CONNS connections, one request in flight on each"
        echo "- workers per server: $WORKERS; server µs/req: the servers' CPU time over the window divided by the requests served in it"
        if [[ $MISS == 1 && $MISS_FILLED == 1 ]]; then
            echo "- objects: demo origin \`$(object_path 1KiB)\` etc., a new URL every request; each server's cache first filled with $MISS_FILL of misses, so every measured miss also evicts"
        elif [[ $MISS == 1 ]]; then
            echo "- objects: demo origin \`$(object_path 1KiB)\` etc., a new URL every request; caches not filled first"
        else
            echo "- objects: demo origin \`$(object_path 1KiB)\` etc., warmed and checked to be hits first"
        fi
        echo "- command: \`benches/run-peers.sh${ARGS:+ $ARGS}\`"
        echo
        echo "$TABLE"
    } >"$OUT"
    cp "$RUN/results.jsonl" "${OUT%.md}.jsonl"
    log "wrote $OUT and ${OUT%.md}.jsonl"
    # A run with the default output also refreshes the README's latest table.
    if [[ $DEFAULT_OUT == 1 && -f "$BENCHES/README.md" ]]; then
        awk -v table="$OUT" '
            /<!-- latest-table -->/ { print; print ""; print "From `results/" substr(table, match(table, /[^\/]*$/)) "`:"; print "";
                                      while ((getline line < table) > 0) { if (seen || line ~ /^\|/) { seen = 1; print line } }
                                      print ""; skip = 1; next }
            /<!-- \/latest-table -->/ { skip = 0 }
            !skip { print }' "$BENCHES/README.md" >"$RUN/README.md" && cp "$RUN/README.md" "$BENCHES/README.md"
        log "updated the latest table in benches/README.md"
    fi
fi

if [[ $FAILED == 1 ]]; then
    log "some cases failed or were skipped"
    exit 1
fi
