#!/bin/bash
# One full run of the XMPP end-to-end benchmark (issue 4, bench/bench_xmpp.c): chat through
# spimwall's xmpp-c2s listener (tls = "none", workers = 1) into bench-xmpp's own fast sink and
# into a private Prosody, each side by side with the direct path, in one run.
#
#   scripts/bench-xmpp.sh [--build DIR] [--quick] [--sessions N] [--messages N] [--rounds N]
#                         [--spim-share F] [--tag-share F] [--buffer-size N] [--no-prosody]
#
#   --quick        a few seconds, tiny settings: structure, not speed (the smoke test uses it)
#   --sessions N   client sessions (default 16 into the sink, 8 into Prosody)
#   --messages N   messages per throughput phase (default 300000 sink, 20000 Prosody)
#   --rounds N     rounds per path, paths interleaved, median reported (default 3)
#   --spim-share F share of drop-level spim (default 0.1); --tag-share F tag-level (0.02)
#   --buffer-size N spimwall's limits.buffer_size and high_watermark (default 65536: a read
#                  takes up to N bytes, so bigger means fewer system calls per message)
#   --no-prosody   skip the Prosody part
#
# Builds build/bench-xmpp and build/spimwall if they are missing. Starts `bench-xmpp sink`,
# spimwall (a temp dir config: two xmpp-c2s listeners, one to the sink and one to Prosody, the
# shipped rules, reputation off so that every verdict follows from the text), and Prosody with
# scripts/prosody-local.sh (SW_PROSODY_PLAINTEXT=1, one account per session), all on
# 127.0.0.1 ephemeral ports; runs `bench-xmpp run` for each server and stops everything.
# Results: JSON lines on stdout (see bench/bench_xmpp.c and docs/performance.md); progress on
# stderr. Exit status 0 if every case ran cleanly (all ham delivered, spim dropped and bounced),
# 1 otherwise.
set -euo pipefail
# One block: bash reads all of it before running any, so editing the file mid-run is harmless.
{
SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${SW_BUILD_DIR:-$SOURCE_DIR/build}
QUICK=0
SESSIONS=""
MESSAGES=""
ROUNDS=""
SPIM_SHARE=0.1
TAG_SHARE=0.02
BUFFER_SIZE=65536
USE_PROSODY=1

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD_DIR=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --sessions) SESSIONS=$2; shift 2 ;;
    --messages) MESSAGES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --spim-share) SPIM_SHARE=$2; shift 2 ;;
    --tag-share) TAG_SHARE=$2; shift 2 ;;
    --buffer-size) BUFFER_SIZE=$2; shift 2 ;;
    --no-prosody) USE_PROSODY=0; shift ;;
    -h | --help) usage ;;
    *) echo "bench-xmpp.sh: unknown option $1" >&2; usage ;;
    esac
done

log() { echo "bench-xmpp.sh: $*" >&2; }
skipped() { printf '{"bench":"xmpp","skipped":"%s","reason":"%s"}\n' "$1" "$2"; }

BENCH=$BUILD_DIR/bench-xmpp
SPIMWALL=$BUILD_DIR/spimwall
if [ ! -x "$BENCH" ] || [ ! -x "$SPIMWALL" ]; then
    log "building bench-xmpp and spimwall in $BUILD_DIR"
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target bench-xmpp spimwall >&2
fi
if [ "$USE_PROSODY" = 1 ] && ! command -v prosody >/dev/null 2>&1; then
    log "prosody not installed (apt-get install prosody): skipping the Prosody part"
    skipped prosody "not installed"
    USE_PROSODY=0
fi

if [ "$QUICK" = 1 ]; then
    SINK_OPTS=(--sessions "${SESSIONS:-4}" --messages "${MESSAGES:-4000}" --lat-messages 400
               --lat-rate 2000 --rounds "${ROUNDS:-1}" --parse-reps 1 --ring 256
               --phase-timeout 30)
    PROS_OPTS=(--sessions "${SESSIONS:-4}" --messages "${MESSAGES:-600}" --lat-messages 200
               --lat-rate 500 --rounds "${ROUNDS:-1}" --parse-reps 1 --ring 256
               --phase-timeout 30)
else
    SINK_OPTS=(--sessions "${SESSIONS:-16}" --messages "${MESSAGES:-300000}"
               --lat-messages 20000 --lat-rate 10000 --rounds "${ROUNDS:-3}")
    PROS_OPTS=(--sessions "${SESSIONS:-8}" --messages "${MESSAGES:-20000}"
               --lat-messages 5000 --lat-rate 1000 --rounds "${ROUNDS:-3}")
fi
COMMON=(--spim-share "$SPIM_SHARE" --tag-share "$TAG_SHARE" --conf "$SOURCE_DIR/conf")
NPROS=$(( ${SESSIONS:-0} > 0 ? SESSIONS : (QUICK == 1 ? 4 : 8) ))

tmp=$(mktemp -d /tmp/bench-xmpp.XXXXXX)
SINK_PID=""
SW_PID=""
PROSODY_UP=0

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
    stop_pid "$SINK_PID"
    if [ "$PROSODY_UP" = 1 ]; then
        "$SOURCE_DIR/scripts/prosody-local.sh" stop "$tmp/prosody" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# --- sink ----------------------------------------------------------------------------------------
"$BENCH" sink --listen 127.0.0.1:0 --port-file "$tmp/sink.port" --stats "$tmp/sink.stats" \
    2>"$tmp/sink.log" &
SINK_PID=$!
for i in $(seq 100); do [ -s "$tmp/sink.port" ] && break; sleep 0.1; done
SINK_PORT=$(cat "$tmp/sink.port" 2>/dev/null || true)
if [ -z "$SINK_PORT" ] || ! wait_port "$SINK_PORT" "$SINK_PID"; then
    log "the sink did not start:"; cat "$tmp/sink.log" >&2; exit 1
fi

mapfile -t PORTS < <("$BENCH" ports 3)
SW_SINK=${PORTS[0]} SW_PROS=${PORTS[1]} PROS_PORT=${PORTS[2]}

# --- Prosody -------------------------------------------------------------------------------------
if [ "$USE_PROSODY" = 1 ]; then
    accts=()
    for i in $(seq 0 $((NPROS - 1))); do accts+=("bench$i:bench-pw"); done
    log "starting Prosody on $PROS_PORT with ${#accts[@]} accounts"
    if SW_PROSODY_PLAINTEXT=1 "$SOURCE_DIR/scripts/prosody-local.sh" start "$tmp/prosody" \
            "$PROS_PORT" "${accts[@]}" >"$tmp/prosody-start.log" 2>&1; then
        PROSODY_UP=1
    else
        log "Prosody did not start:"; tail -5 "$tmp/prosody-start.log" >&2
        skipped prosody "did not start"
        USE_PROSODY=0
    fi
fi

# --- spimwall ------------------------------------------------------------------------------------
cat >"$tmp/spimwall.conf" <<EOF
workers = 1;
shutdown_grace = 1.0;
limits = { max_per_ip = 0; buffer_size = $BUFFER_SIZE; high_watermark = $BUFFER_SIZE; };
admin = { enabled = false; };
log = { level = "warn"; };
matcher = { rules_dir = "$SOURCE_DIR/conf/rules"; lists_dir = "$SOURCE_DIR/conf/lists"; };
reputation = { enabled = false; };
listeners = (
  { name = "bx-sink"; protocol = "xmpp-c2s"; bind = "127.0.0.1:$SW_SINK"; tls = "none";
    upstream = { address = "127.0.0.1:$SINK_PORT"; };
    actions = { drop = "drop"; bounce = true; }; },
  { name = "bx-prosody"; protocol = "xmpp-c2s"; bind = "127.0.0.1:$SW_PROS"; tls = "none";
    upstream = { address = "127.0.0.1:$PROS_PORT"; };
    actions = { drop = "drop"; bounce = true; }; }
);
EOF
USE_PROXY=1
if ! "$SPIMWALL" --check-config "$tmp/spimwall.conf" >"$tmp/spimwall-check.log" 2>&1; then
    log "spimwall rejected its config (no xmpp-c2s yet?):"; cat "$tmp/spimwall-check.log" >&2
    skipped spimwall "config rejected: $(head -1 "$tmp/spimwall-check.log" | tr -d '"\\')"
    USE_PROXY=0
else
    "$SPIMWALL" -c "$tmp/spimwall.conf" 2>>"$tmp/spimwall.log" &
    SW_PID=$!
    if ! wait_port "$SW_SINK" "$SW_PID"; then
        log "spimwall did not start:"; tail -20 "$tmp/spimwall.log" >&2; exit 1
    fi
fi

status=0
log "sink=$SINK_PORT spimwall=$SW_SINK/$SW_PROS prosody=$PROS_PORT"
PROXY_ARGS=()
if [ "$USE_PROXY" = 1 ]; then PROXY_ARGS=(--proxy "$SW_SINK" --sw-pid "$SW_PID"); fi
if ! "$BENCH" run --server sink --direct "$SINK_PORT" --sink-stats "$tmp/sink.stats" \
        --server-pid "$SINK_PID" "${PROXY_ARGS[@]}" "${SINK_OPTS[@]}" "${COMMON[@]}"; then
    status=1
fi
if [ "$USE_PROSODY" = 1 ]; then
    PROS_PID=$(cat "$tmp/prosody/prosody.pid")
    PROXY_ARGS=()
    if [ "$USE_PROXY" = 1 ]; then PROXY_ARGS=(--proxy "$SW_PROS" --sw-pid "$SW_PID"); fi
    if ! "$BENCH" run --server prosody --direct "$PROS_PORT" --server-pid "$PROS_PID" \
            --user-prefix bench --password bench-pw "${PROXY_ARGS[@]}" "${PROS_OPTS[@]}" \
            "${COMMON[@]}"; then
        status=1
    fi
fi

if [ -s "$tmp/spimwall.log" ] && grep -qiE 'level=(warn|error)' "$tmp/spimwall.log"; then
    log "spimwall logged warnings or errors (last lines):"
    grep -iE 'level=(warn|error)' "$tmp/spimwall.log" | tail -5 >&2
fi
exit $status
}
