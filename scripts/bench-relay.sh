#!/bin/bash
# One full run of the relay benchmark (issue 3, bench/bench_relay.c): spimwall's tcp pass-through
# listener and HAProxy (Debian, TCP mode) side by side with the direct path, plain and TLS on
# both legs, with the same worker count.
#
#   scripts/bench-relay.sh [--build DIR] [--workers N] [--quick] [--repeat N] [--duration S]
#                          [--conns N] [--idle-conns N] [--no-haproxy] [--no-spimwall]
#
#   --workers N   spimwall's workers and haproxy's nbthread, always the same (default 1: on a
#                 2-core box the load generator and the sink need the other core)
#   --quick       a few seconds, tiny settings: structure, not speed (the smoke test uses it)
#   --repeat N    throughput rounds per path, paths interleaved, median reported (default 3)
#   --duration S  seconds per throughput round (default 3)
#   --conns N     throughput connections (default 32)
#   --idle-conns N  idle sessions for the memory figure (default 10000, fewer if the open-file
#                 limit cannot hold two descriptors per session in the proxy)
#
# It makes a throwaway self-signed ECDSA P-256 certificate with the openssl CLI, starts the sink
# (bench-relay sink), spimwall and haproxy on 127.0.0.1 ephemeral ports, runs bench-relay against
# each path and stops everything. Three phases, each on freshly started proxies so that the
# memory figures of one do not profit from memory freed by another:
#   1. idle sessions, plain       2. idle sessions, TLS       3. latency and throughput, both
# Results: JSON lines on stdout (see bench/bench_relay.c and docs/performance.md); progress on
# stderr. Exit status 0 if every case ran cleanly, 1 otherwise.
#
# Needs: build/bench-relay (and build/spimwall), haproxy (apt-get install haproxy), openssl.
set -euo pipefail
# The whole script is one block, so bash reads all of it before running any: editing the file
# during a run does not change the run.
{
SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${SW_BUILD_DIR:-$SOURCE_DIR/build}
WORKERS=1
QUICK=0
REPEAT=""
DURATION=""
CONNS=""
IDLE_CONNS=""
USE_HAPROXY=1
USE_SPIMWALL=1

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --idle-conns) IDLE_CONNS=$2; shift 2 ;;
    --no-haproxy) USE_HAPROXY=0; shift ;;
    --no-spimwall) USE_SPIMWALL=0; shift ;;
    -h | --help) usage ;;
    *) echo "bench-relay.sh: unknown option $1" >&2; usage ;;
    esac
done
case "$WORKERS" in '' | *[!0-9]* | 0) echo "bench-relay.sh: bad --workers" >&2; exit 2 ;; esac
case "$IDLE_CONNS" in *[!0-9]* | 0) echo "bench-relay.sh: bad --idle-conns" >&2; exit 2 ;; esac

log() { echo "bench-relay.sh: $*" >&2; }
# A JSON line for a leg that did not run (names and reasons are fixed strings: no escaping).
skipped() { printf '{"bench":"relay","skipped":"%s","reason":"%s"}\n' "$1" "$2"; }

BENCH=$BUILD_DIR/bench-relay
SPIMWALL=$BUILD_DIR/spimwall
if [ ! -x "$BENCH" ]; then
    log "$BENCH not found (cmake --build $BUILD_DIR --target bench-relay)"
    exit 1
fi
if [ "$USE_SPIMWALL" = 1 ] && [ ! -x "$SPIMWALL" ]; then
    log "$SPIMWALL not found: skipping the spimwall leg"
    skipped spimwall "not built"
    USE_SPIMWALL=0
fi
HAPROXY=$(command -v haproxy || true)
if [ -z "$HAPROXY" ] && [ -x /usr/sbin/haproxy ]; then HAPROXY=/usr/sbin/haproxy; fi
if [ "$USE_HAPROXY" = 1 ] && [ -z "$HAPROXY" ]; then
    log "haproxy not installed (apt-get install haproxy): skipping the haproxy leg"
    skipped haproxy "not installed"
    USE_HAPROXY=0
fi

# Settings. Full: ~3 minutes on 2 cores. Quick: a few seconds, for the smoke test.
if [ "$QUICK" = 1 ]; then
    RUN_OPTS=(--conns "${CONNS:-4}" --duration "${DURATION:-0.3}" --warmup 0.1
              --repeat "${REPEAT:-1}"
              --lat-conns 2 --lat-duration 0.2 --lat-rounds 1 --settle 0.2 --gap 0.1)
    IDLE_CONNS=${IDLE_CONNS:-100}
else
    RUN_OPTS=(--conns "${CONNS:-32}" --duration "${DURATION:-3}" --warmup 0.5
              --repeat "${REPEAT:-3}"
              --lat-conns 8 --lat-duration 1 --lat-rounds 3 --settle 1)
    IDLE_CONNS=${IDLE_CONNS:-10000}
fi

# Every idle session costs the proxy two descriptors. Raise the open-file limit for everything
# started from here (the hard limit too where that is allowed); where it stays below 2 x 10,000
# (containers often cap it at 20,000 and refuse more even to root), measure at the largest count
# that fits.
want=$((2 * IDLE_CONNS + 300))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || true # raises the hard limit too, where allowed
    hard=$(ulimit -Hn)
fi
if [ "$hard" = unlimited ]; then ulimit -Sn "$want" 2>/dev/null || true
else ulimit -Sn "$hard" 2>/dev/null || true; fi
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ]; then
    fit=$(( (NOFILE - 300) / 2 ))
    if [ "$IDLE_CONNS" -gt "$fit" ]; then
        log "open-file limit is $NOFILE: idle sessions reduced from $IDLE_CONNS to $fit"
        IDLE_CONNS=$fit
    fi
fi
MAXCONN=$((IDLE_CONNS + 50))

tmp=$(mktemp -d /tmp/bench-relay.XXXXXX)
SINK_PID=""
SW_PID=""
HA_PID=""

# Stops one process we started: TERM, then KILL after 5 s. Bounded.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$SW_PID"
    stop_pid "$HA_PID"
    stop_pid "$SINK_PID"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until something accepts on 127.0.0.1:$1 (and pid $2 is still alive). Bounded: 10 s.
wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# --- certificate ---------------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>"$tmp/openssl.log" || {
    cat "$tmp/openssl.log" >&2; exit 1; }
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/haproxy.pem"

# --- sink ----------------------------------------------------------------------------------------
"$BENCH" sink --listen 127.0.0.1:0 --port-file "$tmp/sink.port" --stats "$tmp/sink.stats" \
    --cert "$tmp/cert.pem" --key "$tmp/key.pem" 2>"$tmp/sink.log" &
SINK_PID=$!
for i in $(seq 100); do [ -s "$tmp/sink.port" ] && break; sleep 0.1; done
SINK_PORT=$(cat "$tmp/sink.port" 2>/dev/null || true)
if [ -z "$SINK_PORT" ] || ! wait_port "$SINK_PORT" "$SINK_PID"; then
    log "the sink did not start:"; cat "$tmp/sink.log" >&2; exit 1
fi

mapfile -t PORTS < <("$BENCH" ports 4)
SW_PLAIN=${PORTS[0]} SW_TLS=${PORTS[1]} HA_PLAIN=${PORTS[2]} HA_TLS=${PORTS[3]}

# --- configs -------------------------------------------------------------------------------------
# spimwall: two tcp pass-through listeners to the sink, plain->plain and TLS->TLS. No per-IP
# limit (all sessions come from 127.0.0.1), no admin listener (its port could be taken), a
# short drain so that stopping is quick.
cat >"$tmp/spimwall.conf" <<EOF
workers = $WORKERS;
shutdown_grace = 1.0;
limits = { max_connections = $((MAXCONN * 2)); max_per_ip = 0; };
admin = { enabled = false; };
log = { level = "warn"; };
listeners = (
  {
    name = "bench-plain";
    protocol = "tcp";
    bind = "127.0.0.1:$SW_PLAIN";
    tls = "none";
    upstream = { address = "127.0.0.1:$SINK_PORT"; tls = false; };
  },
  {
    name = "bench-tls";
    protocol = "tcp";
    bind = "127.0.0.1:$SW_TLS";
    tls = "direct";
    certificates = ( { cert = "$tmp/cert.pem"; key = "$tmp/key.pem"; } );
    upstream = { address = "127.0.0.1:$SINK_PORT"; tls = true; verify = false;
                 server_name = "localhost"; };
  }
);
EOF

# HAProxy: the same two paths in TCP mode, same thread count; ssl on both sides, no verification
# of the sink's throwaway certificate.
cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn $MAXCONN
    ssl-server-verify none

defaults
    mode tcp
    maxconn $MAXCONN
    timeout connect 10s
    timeout client 600s
    timeout server 600s

frontend bench_plain
    bind 127.0.0.1:$HA_PLAIN
    default_backend sink_plain

frontend bench_tls
    bind 127.0.0.1:$HA_TLS ssl crt $tmp/haproxy.pem
    default_backend sink_tls

backend sink_plain
    server sink 127.0.0.1:$SINK_PORT

backend sink_tls
    server sink 127.0.0.1:$SINK_PORT ssl verify none sni str(localhost)
EOF

if [ "$USE_HAPROXY" = 1 ] &&
        ! "$HAPROXY" -c -q -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy-check.log"; then
    log "haproxy rejected its config:"; cat "$tmp/haproxy-check.log" >&2; exit 1
fi
if [ "$USE_SPIMWALL" = 1 ] && ! "$SPIMWALL" --check-config "$tmp/spimwall.conf" \
        >"$tmp/spimwall-check.log" 2>&1; then
    log "spimwall rejected its config:"; cat "$tmp/spimwall-check.log" >&2; exit 1
fi

start_proxies() {
    if [ "$USE_SPIMWALL" = 1 ]; then
        "$SPIMWALL" -c "$tmp/spimwall.conf" 2>>"$tmp/spimwall.log" &
        SW_PID=$!
        if ! wait_port "$SW_PLAIN" "$SW_PID" || ! wait_port "$SW_TLS" "$SW_PID"; then
            log "spimwall did not start:"; tail -20 "$tmp/spimwall.log" >&2; exit 1
        fi
    fi
    if [ "$USE_HAPROXY" = 1 ]; then
        "$HAPROXY" -db -f "$tmp/haproxy.cfg" 2>>"$tmp/haproxy.log" &
        HA_PID=$!
        if ! wait_port "$HA_PLAIN" "$HA_PID" || ! wait_port "$HA_TLS" "$HA_PID"; then
            log "haproxy did not start:"; tail -20 "$tmp/haproxy.log" >&2; exit 1
        fi
    fi
    sleep 0.5 # let the readiness probes' sessions close before any RSS baseline
}

stop_proxies() {
    stop_pid "$SW_PID"; SW_PID=""
    stop_pid "$HA_PID"; HA_PID=""
}

path_args() {
    PATHS=()
    if [ "$USE_SPIMWALL" = 1 ]; then PATHS+=(--path "spimwall:$SW_PLAIN:$SW_TLS:$SW_PID"); fi
    if [ "$USE_HAPROXY" = 1 ]; then PATHS+=(--path "haproxy:$HA_PLAIN:$HA_TLS:$HA_PID"); fi
}

status=0
run_phase() { # label, then bench-relay run options
    local label=$1
    shift
    log "phase: $label"
    start_proxies
    path_args
    if ! "$BENCH" run --sink-stats "$tmp/sink.stats" --direct "$SINK_PORT" --sink-pid "$SINK_PID" \
            --workers "$WORKERS" \
            "${PATHS[@]}" "${RUN_OPTS[@]}" "$@"; then
        status=1
    fi
    stop_proxies
}

log "workers=$WORKERS sink=$SINK_PORT spimwall=$SW_PLAIN/$SW_TLS haproxy=$HA_PLAIN/$HA_TLS" \
    "idle sessions=$IDLE_CONNS"
if [ "$USE_SPIMWALL" = 1 ] || [ "$USE_HAPROXY" = 1 ]; then
    run_phase "idle, plain" --modes idle --tls none --idle-conns "$IDLE_CONNS"
    run_phase "idle, TLS" --modes idle --tls both --idle-conns "$IDLE_CONNS"
fi
run_phase "latency and throughput" --modes latency,throughput --tls none,both

for f in spimwall haproxy; do
    if [ -s "$tmp/$f.log" ] && grep -qiE 'alert|error|fatal' "$tmp/$f.log"; then
        log "$f logged errors (last lines):"
        grep -iE 'alert|error|fatal' "$tmp/$f.log" | tail -5 >&2
    fi
done
exit $status
}
