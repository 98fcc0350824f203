#!/bin/bash
# One full run of the MSNP end-to-end benchmark (issue 5, bench/bench_msnp.c): switchboard chat
# through spimwall's msnp listener (role sb, transparent mode, workers = 1) into bench-msnp's
# own sink, side by side with the direct path, with parse-only and scan-only figures.
#
#   scripts/bench-msnp.sh [--build DIR] [--quick] [--sessions N] [--messages N] [--rounds N]
#                         [--spim-share F] [--tag-share F] [--buffer-size N]
#
#   --quick         a few seconds, tiny settings: structure, not speed (the smoke test uses it)
#   --sessions N    client sessions (default 16)
#   --messages N    messages per throughput phase (default 300000)
#   --rounds N      rounds per path, paths interleaved, median reported (default 3)
#   --spim-share F  share of drop-level spim (default 0.1); --tag-share F tag-level (0.02)
#   --buffer-size N spimwall's limits.buffer_size and high_watermark (default 65536)
#
# Builds bench-msnp and spimwall in the build directory if they are missing. Starts spimwall
# with a temp-dir config (one msnp listener whose upstream is the sink, the shipped rules,
# reputation off so that every verdict follows from the text) on 127.0.0.1 ports from
# `bench-msnp ports`, runs `bench-msnp run` (which is the sink too) and stops everything.
# Results: JSON lines on stdout (see bench/bench_msnp.c and docs/performance.md); progress on
# stderr. Exit status 0 if every case ran cleanly (all ham delivered, tag-level tagged, spim
# dropped), 1 otherwise.
set -euo pipefail
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

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
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
    -h | --help) usage ;;
    *) echo "bench-msnp.sh: unknown option $1" >&2; usage ;;
    esac
done

log() { echo "bench-msnp.sh: $*" >&2; }

BENCH=$BUILD_DIR/bench-msnp
SPIMWALL=$BUILD_DIR/spimwall
if [ ! -x "$BENCH" ] || [ ! -x "$SPIMWALL" ]; then
    log "building bench-msnp and spimwall in $BUILD_DIR"
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target bench-msnp spimwall >&2
fi

if [ "$QUICK" = 1 ]; then
    OPTS=(--quick)
    [ -n "$SESSIONS" ] && OPTS+=(--sessions "$SESSIONS")
    [ -n "$MESSAGES" ] && OPTS+=(--messages "$MESSAGES")
    [ -n "$ROUNDS" ] && OPTS+=(--rounds "$ROUNDS")
else
    OPTS=(--sessions "${SESSIONS:-16}" --messages "${MESSAGES:-300000}" --lat-messages 20000
          --lat-rate 10000 --rounds "${ROUNDS:-3}")
fi
OPTS+=(--spim-share "$SPIM_SHARE" --tag-share "$TAG_SHARE" --conf "$SOURCE_DIR/conf")

tmp=$(mktemp -d /tmp/bench-msnp.XXXXXX)
SW_PID=""

cleanup() {
    if [ -n "$SW_PID" ]; then
        kill -TERM "$SW_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SW_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SW_PID" 2>/dev/null || true
        wait "$SW_PID" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t PORTS < <("$BENCH" ports 2)
SINK_PORT=${PORTS[0]}
SW_PORT=${PORTS[1]}

cat >"$tmp/spimwall.conf" <<EOF
workers = 1;
shutdown_grace = 1.0;
limits = { max_per_ip = 0; buffer_size = $BUFFER_SIZE; high_watermark = $BUFFER_SIZE; };
admin = { enabled = false; };
log = { level = "warn"; };
matcher = { rules_dir = "$SOURCE_DIR/conf/rules"; lists_dir = "$SOURCE_DIR/conf/lists"; };
reputation = { enabled = false; };
listeners = (
  { name = "bm-sb"; protocol = "msnp"; bind = "127.0.0.1:$SW_PORT";
    upstream = { address = "127.0.0.1:$SINK_PORT"; };
    msnp = { role = "sb"; mode = "transparent"; };
    actions = { drop = "drop"; }; }
);
EOF
if ! "$SPIMWALL" --check-config "$tmp/spimwall.conf" >"$tmp/check.log" 2>&1; then
    log "spimwall rejected its config:"; cat "$tmp/check.log" >&2; exit 1
fi
"$SPIMWALL" -c "$tmp/spimwall.conf" 2>>"$tmp/spimwall.log" &
SW_PID=$!
up=0
for _ in $(seq 100); do
    kill -0 "$SW_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$SW_PORT") 2>/dev/null; then up=1; break; fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    log "spimwall did not start:"; tail -20 "$tmp/spimwall.log" >&2; exit 1
fi

log "sink=$SINK_PORT spimwall=$SW_PORT"
status=0
"$BENCH" run --sink-port "$SINK_PORT" --proxy "$SW_PORT" --sw-pid "$SW_PID" "${OPTS[@]}" ||
    status=1
if grep -qiE 'level=(warn|error)' "$tmp/spimwall.log"; then
    log "spimwall logged warnings or errors (last lines):"
    grep -iE 'level=(warn|error)' "$tmp/spimwall.log" | tail -5 >&2
fi
exit $status
}
