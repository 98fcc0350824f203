#!/bin/bash
# Smoke test of the MSNP end-to-end benchmark (bench/bench_msnp.c, scripts/bench-msnp.sh): one
# --quick run, direct and through spimwall's msnp switchboard listener, then checks that stdout
# is one JSON object per line with the expected keys and that the deliveries are exact: through
# spimwall every pass- and tag-level message arrived (tag-level ones with X-Spam headers) and no
# drop-level one did; directly, everything arrived untouched. So it fails if the proxy loses
# ham or lets dropped spim through. Asserts structure and counts, never timings.
set -euo pipefail

BUILD_DIR=${SW_BUILD_DIR:-build}
SOURCE_DIR=${SW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BENCH="$BUILD_DIR/bench-msnp"

for exe in "$BENCH" "$BUILD_DIR/spimwall"; do
    if [ ! -x "$exe" ]; then
        echo "FAIL: $exe not found or not executable (build bench-msnp and spimwall)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# a bad option value is a usage error (exit 2), not a crash or a silent default
set +e
"$BENCH" run --sink-port 1 --proxy 2 --sessions abc >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" -ne 2 ]; then
    echo "FAIL: bench-msnp run --sessions abc exited $rc, expected 2" >&2
    exit 1
fi

set +e
timeout -k 5 240 /bin/bash "$SOURCE_DIR/scripts/bench-msnp.sh" --build "$BUILD_DIR" --quick \
    >"$tmp/out.jsonl" 2>"$tmp/err.txt"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "FAIL: scripts/bench-msnp.sh --quick exited $rc; stderr:" >&2
    cat "$tmp/err.txt" >&2
    echo "stdout:" >&2
    cat "$tmp/out.jsonl" >&2
    exit 1
fi

/usr/bin/python3 - "$tmp/out.jsonl" <<'PY'
import json
import math
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    lines = [l for l in f.read().split("\n") if l != ""]
if not lines:
    sys.exit("FAIL: no output lines")


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def cnt(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


parse, cases, summary = None, {}, None
for n, line in enumerate(lines, 1):
    try:
        o = json.loads(line)
    except ValueError as e:
        sys.exit(f"FAIL: line {n} is not valid JSON: {e}: {line[:200]!r}")
    if not isinstance(o, dict) or o.get("bench") != "msnp":
        sys.exit(f"FAIL: line {n}: not a JSON object with bench=msnp")
    if "summary" in o:
        summary = o
        continue
    if o.get("case") == "parse_scan_only":
        for k in ["parse_msgs_per_s", "scan_msgs_per_s", "parse_us_per_msg", "scan_us_per_msg"]:
            if not num(o.get(k)) or o[k] <= 0:
                sys.exit(f"FAIL: line {n}: {k!r} missing or not a positive number")
        if o.get("verdict_mismatch") != 0:
            sys.exit(f"FAIL: line {n}: scan-only verdicts differ from the expected classes")
        parse = o
        continue
    for k in ["sent", "sent_pass", "sent_tag_level", "sent_drop_level", "received_pass",
              "received_tag_level", "received_drop_level", "received_tagged", "sessions"]:
        if not cnt(o.get(k)):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a count: {o.get(k)!r}")
    for k in ["msgs_per_s", "p50_us", "p99_us"]:
        if not num(o.get(k)) or o[k] < 0:
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a non-negative number")
    where = f"{o['path']} {o['phase']}"
    if o["sent_pass"] <= 0 or o["sent_drop_level"] <= 0 or o["sent_tag_level"] <= 0:
        sys.exit(f"FAIL: {where}: a class of messages was not sent: {line}")
    if o["sent"] != o["sent_pass"] + o["sent_tag_level"] + o["sent_drop_level"]:
        sys.exit(f"FAIL: {where}: sent is not the sum of its classes")
    if o["received_pass"] != o["sent_pass"] or o["received_tag_level"] != o["sent_tag_level"]:
        sys.exit(f"FAIL: {where}: ham lost: {line}")
    if o["path"] == "spimwall":
        if o["received_drop_level"] != 0:
            sys.exit(f"FAIL: {where}: drop-level spim arrived: {line}")
        if o["received_tagged"] != o["sent_tag_level"]:
            sys.exit(f"FAIL: {where}: {o['received_tagged']} tagged of "
                     f"{o['sent_tag_level']} tag-level: {line}")
        if not num(o.get("sw_cpu_s_per_msg")):
            sys.exit(f"FAIL: {where}: sw_cpu_s_per_msg must be a number")
    elif o["received_drop_level"] != o["sent_drop_level"] or o["received_tagged"] != 0:
        sys.exit(f"FAIL: {where}: the direct path must deliver everything untouched: {line}")
    if o.get("ok") is not True:
        sys.exit(f"FAIL: {where}: not ok: {o.get('why')!r}")
    cases[(o["path"], o["phase"])] = o

if parse is None:
    sys.exit("FAIL: no parse_scan_only line")
for p in ("direct", "spimwall"):
    for ph in ("throughput", "latency"):
        if (p, ph) not in cases:
            sys.exit(f"FAIL: no line for path={p} phase={ph}")
if summary is None or summary.get("ok") is not True:
    sys.exit(f"FAIL: no ok summary line: {summary!r}")
for k in ["efficiency", "sw_cpu_us_per_msg", "sw_per_core_msgs_per_s", "added_p50_us"]:
    if not num(summary.get(k)):
        sys.exit(f"FAIL: summary: key {k!r} missing or not a number")
print(f"ok: {len(lines)} JSON lines, {len(cases)} cases with exact deliveries")
PY
