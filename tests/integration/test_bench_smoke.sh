#!/bin/bash
# Smoke test of bench/bench_matcher.c: runs build/bench-matcher in --quick mode and checks that
# stdout is one JSON object per line with the expected keys and types, and nothing else.
# Asserts structure only, never timings: benchmarks are not timed assertions (docs/STYLE).
set -euo pipefail

BUILD_DIR=${SW_BUILD_DIR:-build}
SOURCE_DIR=${SW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BENCH="$BUILD_DIR/bench-matcher"

if [ ! -x "$BENCH" ]; then
    echo "FAIL: $BENCH not found or not executable (build the bench-matcher target)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --quick: 100 rules, sizes 64 and 200, 2000 messages, one timed pass: a few seconds at most.
if ! SW_SOURCE_DIR="$SOURCE_DIR" "$BENCH" --quick >"$tmp/out.jsonl" 2>"$tmp/err.txt"; then
    echo "FAIL: bench-matcher --quick exited non-zero; stderr:" >&2
    cat "$tmp/err.txt" >&2
    exit 1
fi

# Options are validated: a bad value is a usage error (exit 2), not a crash or a silent default.
set +e
"$BENCH" --rules abc >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" -ne 2 ]; then
    echo "FAIL: bench-matcher --rules abc exited $rc, expected 2" >&2
    exit 1
fi

/usr/bin/python3 - "$tmp/out.jsonl" <<'PY'
import json
import math
import sys

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
if not lines:
    sys.exit("FAIL: no output lines")

numbers = [
    "rules", "rules_loaded", "rules_default", "list_entries", "msg_bytes", "messages",
    "body_bytes", "spim_share", "threads", "reps",
    "pipeline_msgs_per_s", "pipeline_gbps", "pipeline_wall_s", "pipeline_cpu_s",
    "pipeline_msgs_per_cpu_s", "pipeline_median_msgs_per_s",
    "raw_msgs_per_s", "raw_gbps", "raw_wall_s", "raw_cpu_s", "raw_msgs_per_cpu_s",
    "raw_median_msgs_per_s", "ratio", "ratio_cpu", "compile_s", "db_bytes",
]
integers = ["rules", "rules_loaded", "rules_default", "list_entries", "msg_bytes", "messages",
            "body_bytes", "threads", "reps", "db_bytes"]
seen_sizes = []
for n, line in enumerate(lines, 1):
    try:
        obj = json.loads(line)
    except ValueError as e:
        sys.exit(f"FAIL: line {n} is not valid JSON: {e}: {line[:200]!r}")
    if not isinstance(obj, dict):
        sys.exit(f"FAIL: line {n} is not a JSON object")
    if obj.get("bench") != "matcher":
        sys.exit(f"FAIL: line {n}: bench is {obj.get('bench')!r}, expected 'matcher'")
    for k in numbers:
        v = obj.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a number: {v!r}")
        if not math.isfinite(v) or v < 0:
            sys.exit(f"FAIL: line {n}: key {k!r} is {v!r}")
    for k in integers:
        if not isinstance(obj[k], int):
            sys.exit(f"FAIL: line {n}: key {k!r} is not an integer: {obj[k]!r}")
    if not isinstance(obj.get("reputation"), bool):
        sys.exit(f"FAIL: line {n}: key 'reputation' missing or not a boolean")
    verdicts = obj.get("verdicts")
    if not isinstance(verdicts, dict) or set(verdicts) != {"pass", "tag", "drop"}:
        sys.exit(f"FAIL: line {n}: verdicts must be an object with pass, tag, drop: {verdicts!r}")
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in verdicts.values()):
        sys.exit(f"FAIL: line {n}: verdict counts must be non-negative integers: {verdicts!r}")
    # sanity of the counts, not of the speed: every message got exactly one verdict
    if sum(verdicts.values()) != obj["messages"]:
        sys.exit(f"FAIL: line {n}: verdicts add up to {sum(verdicts.values())}, "
                 f"not messages={obj['messages']}")
    det = obj.get("detection")
    if not isinstance(det, dict) or set(det) != {"spim", "spim_flagged", "chat_flagged"}:
        sys.exit(f"FAIL: line {n}: detection must have spim, spim_flagged, chat_flagged: {det!r}")
    if det["spim_flagged"] > det["spim"] or det["spim"] > obj["messages"]:
        sys.exit(f"FAIL: line {n}: inconsistent detection counts {det!r}")
    if obj["rules_loaded"] < obj["rules_default"]:
        sys.exit(f"FAIL: line {n}: rules_loaded < rules_default")
    seen_sizes.append(obj["msg_bytes"])

if sorted(seen_sizes) != [64, 200]:
    sys.exit(f"FAIL: --quick should print the cases 64 and 200 bytes, got {seen_sizes}")
print(f"ok: {len(lines)} JSON lines with the expected keys")
PY
