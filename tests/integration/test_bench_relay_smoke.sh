#!/bin/bash
# Smoke test of the relay benchmark (bench/bench_relay.c, scripts/bench-relay.sh): one --quick
# run through the direct path, spimwall's tcp listener and HAProxy, plain and TLS on both legs,
# then checks that stdout is one JSON object per line with the expected keys and types, that
# every case ran with no failed or dropped connection, and that the summary lines are there.
# Asserts structure only, never timings: benchmarks are not timed assertions (STYLE.md).
# HAProxy is optional: without it the haproxy leg is skipped, and the test says so.
set -euo pipefail

BUILD_DIR=${SW_BUILD_DIR:-build}
SOURCE_DIR=${SW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BENCH="$BUILD_DIR/bench-relay"

for exe in "$BENCH" "$BUILD_DIR/spimwall"; do
    if [ ! -x "$exe" ]; then
        echo "FAIL: $exe not found or not executable" \
             "(build the bench-relay and spimwall targets)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Options are validated: a bad value is a usage error (exit 2), not a crash or a silent default.
set +e
"$BENCH" run --sink-stats /dev/null --direct 1 --conns abc >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" -ne 2 ]; then
    echo "FAIL: bench-relay run --conns abc exited $rc, expected 2" >&2
    exit 1
fi

# --quick: 100 idle sessions, 0.4 s throughput and 0.3 s latency runs: about 15 s in all.
# timeout bounds a hung proxy; the script stops everything it started on the way out.
if ! timeout -k 5 120 /bin/bash "$SOURCE_DIR/scripts/bench-relay.sh" --build "$BUILD_DIR" --quick \
        >"$tmp/out.jsonl" 2>"$tmp/err.txt"; then
    echo "FAIL: scripts/bench-relay.sh --quick failed; stderr:" >&2
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
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
if not lines:
    sys.exit("FAIL: no output lines")

def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

common = {"bench": str, "path": str, "tls": str, "mode": str, "conns": int, "workers": int,
          "ok": bool, "failed": int, "dropped": int}
# per mode: keys that must be finite non-negative numbers; keys that may be null
numbers = {
    "throughput": ["chunk_bytes", "duration_s", "rounds", "bytes", "gbit_per_s",
                   "gbit_per_s_min", "gbit_per_s_max"],
    "latency": ["msg_bytes", "duration_s", "rounds", "exchanges", "p50_us", "p99_us", "p999_us"],
    "idle": ["setup_s", "rss_before_kib", "rss_after_kib", "limit_kib"],
}
nullable = {
    "throughput": ["cpu_s_per_gb", "proxy_cpu_util"],  # null for the direct path
    "latency": ["added_p50_us", "added_p99_us", "added_p999_us"],  # null for direct
    "idle": ["rss_per_conn_kib"],  # may be negative if the allocator gave memory back
}
skipped = set()
cases = {}
summaries = {}
for n, line in enumerate(lines, 1):
    try:
        obj = json.loads(line)
    except ValueError as e:
        sys.exit(f"FAIL: line {n} is not valid JSON: {e}: {line[:200]!r}")
    if not isinstance(obj, dict) or obj.get("bench") != "relay":
        sys.exit(f"FAIL: line {n}: not a JSON object with bench=relay: {line[:200]!r}")
    if "skipped" in obj:
        if obj["skipped"] == "spimwall":
            sys.exit(f"FAIL: the spimwall leg was skipped: {obj.get('reason')!r}")
        skipped.add(obj["skipped"])
        continue
    if "summary" in obj:
        for k in ["path", "base", "tls"]:
            if not isinstance(obj.get(k), str):
                sys.exit(f"FAIL: line {n}: summary key {k!r} missing or not a string")
        for k in ["throughput_ratio", "throughput_target", "cpu_per_gb_ratio",
                  "p50_us_diff", "p99_us_diff"]:
            if not is_num(obj.get(k)):
                sys.exit(f"FAIL: line {n}: summary key {k!r} missing or not a number")
        if not isinstance(obj.get("meets_target"), bool):
            sys.exit(f"FAIL: line {n}: summary key 'meets_target' missing or not a boolean")
        summaries[(obj["path"], obj["tls"])] = obj
        continue
    for k, t in common.items():
        v = obj.get(k)
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not {t.__name__}: {v!r}")
    mode = obj["mode"]
    if mode not in numbers or obj["tls"] not in ("none", "both"):
        sys.exit(f"FAIL: line {n}: unknown mode or tls: {mode!r} {obj['tls']!r}")
    for k in numbers[mode]:
        v = obj.get(k)
        if not is_num(v) or v < 0:
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a non-negative number: {v!r}")
    for k in nullable[mode]:
        if k not in obj or not (obj[k] is None or is_num(obj[k])):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or neither a number nor null")
    # functional, not timing: every connection came up and stayed up
    if not obj["ok"] or obj["failed"] or obj["dropped"]:
        sys.exit(f"FAIL: line {n}: {obj['path']} {obj['tls']} {mode}: connections failed: "
                 f"{line}")
    # the sink accepts plain and TLS on one port: check that each leg was what the case says
    want_saw = "tls" if obj["tls"] == "both" else "plain"
    if obj.get("sink_saw") != want_saw:
        sys.exit(f"FAIL: line {n}: sink_saw is {obj.get('sink_saw')!r}, expected {want_saw!r}")
    if obj["path"] != "direct":
        if mode == "throughput" and not is_num(obj["cpu_s_per_gb"]):
            sys.exit(f"FAIL: line {n}: cpu_s_per_gb must be a number for a proxy path")
        if mode == "latency" and not is_num(obj["added_p50_us"]):
            sys.exit(f"FAIL: line {n}: added_p50_us must be a number for a proxy path")
        if mode == "idle" and not is_num(obj["rss_per_conn_kib"]):
            sys.exit(f"FAIL: line {n}: rss_per_conn_kib must be a number")
    if mode == "throughput" and obj["bytes"] <= 0:
        sys.exit(f"FAIL: line {n}: no payload reached the sink")
    if mode == "latency" and obj["exchanges"] <= 0:
        sys.exit(f"FAIL: line {n}: no request-response exchange completed")
    key = (obj["path"], obj["tls"], mode)
    if key in cases:
        sys.exit(f"FAIL: line {n}: case {key} printed twice")
    cases[key] = obj

paths = ["direct", "spimwall"] + ([] if "haproxy" in skipped else ["haproxy"])
for path in paths:
    for tls in ("none", "both"):
        for mode in ("idle", "latency", "throughput"):
            if path == "direct" and mode == "idle":
                continue
            if (path, tls, mode) not in cases:
                sys.exit(f"FAIL: no line for path={path} tls={tls} mode={mode}")
if "haproxy" not in skipped:
    for tls in ("none", "both"):
        if ("spimwall", tls) not in summaries:
            sys.exit(f"FAIL: no summary line for spimwall vs haproxy, tls={tls}")
print(f"ok: {len(lines)} JSON lines, {len(cases)} cases with the expected keys")
if "haproxy" in skipped:
    print("SKIPPED: the haproxy leg (haproxy not installed; apt-get install haproxy)")
PY
