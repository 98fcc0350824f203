#!/bin/bash
# Smoke test of the XMPP end-to-end benchmark (bench/bench_xmpp.c, scripts/bench-xmpp.sh): one
# --quick run into the sink and into Prosody, direct and through spimwall's xmpp-c2s listener,
# then checks that stdout is one JSON object per line with the expected keys, and that the
# deliveries are exact: through spimwall every ham message arrived (tag-level ones with SHIM
# headers), no drop-level spim arrived and each came back to its sender as a bounce; directly,
# everything arrived. So it fails if the proxy loses ham. Asserts structure and counts, never
# timings: benchmarks are not timed assertions (STYLE.md).
# Prosody is optional (skipped, and said so, when not installed). If spimwall refuses the
# xmpp-c2s config, the direct path is still checked and the proxy part is reported SKIPPED.
set -euo pipefail

BUILD_DIR=${SW_BUILD_DIR:-build}
SOURCE_DIR=${SW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BENCH="$BUILD_DIR/bench-xmpp"

for exe in "$BENCH" "$BUILD_DIR/spimwall"; do
    if [ ! -x "$exe" ]; then
        echo "FAIL: $exe not found or not executable (build the bench-xmpp and spimwall" \
             "targets)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Options are validated: a bad value is a usage error (exit 2), not a crash or a silent default.
set +e
"$BENCH" run --server sink --direct 1 --sink-stats /dev/null --sessions abc >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" -ne 2 ]; then
    echo "FAIL: bench-xmpp run --sessions abc exited $rc, expected 2" >&2
    exit 1
fi

# --quick: 4 sessions, 4000 messages into the sink, 600 through Prosody: about 10 s in all.
# timeout bounds a hung proxy; the script stops everything it started on the way out.
set +e
timeout -k 5 240 /bin/bash "$SOURCE_DIR/scripts/bench-xmpp.sh" --build "$BUILD_DIR" --quick \
    >"$tmp/out.jsonl" 2>"$tmp/err.txt"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "FAIL: scripts/bench-xmpp.sh --quick exited $rc; stderr:" >&2
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

skipped = {}
parse = {}
cases = {}
summaries = {}
for n, line in enumerate(lines, 1):
    try:
        o = json.loads(line)
    except ValueError as e:
        sys.exit(f"FAIL: line {n} is not valid JSON: {e}: {line[:200]!r}")
    if not isinstance(o, dict) or o.get("bench") != "xmpp":
        sys.exit(f"FAIL: line {n}: not a JSON object with bench=xmpp: {line[:200]!r}")
    if "skipped" in o:
        skipped[o["skipped"]] = o.get("reason")
        continue
    if "summary" in o:
        summaries[o["summary"]] = o
        continue
    if o.get("case") == "parse_scan_only":
        for k in ["parse_msgs_per_s", "scan_msgs_per_s", "parse_scan_msgs_per_s",
                  "parse_us_per_msg", "scan_us_per_msg", "stanza_bytes"]:
            if not num(o.get(k)) or o[k] <= 0:
                sys.exit(f"FAIL: line {n}: {k!r} missing or not a positive number")
        if o.get("verdict_mismatch") != 0:
            sys.exit(f"FAIL: line {n}: scan-only verdicts differ from the expected classes")
        parse[o["server"]] = o
        continue
    for k in ["server", "path", "phase"]:
        if not isinstance(o.get(k), str):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a string")
    for k in ["sent", "sent_ham", "sent_tag_level", "sent_spim", "received", "received_ham",
              "received_spim", "received_tagged", "bounces", "bounces_ham", "sessions"]:
        if not cnt(o.get(k)):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a count: {o.get(k)!r}")
    for k in ["msgs_per_s", "p50_us", "p99_us"]:
        if not num(o.get(k)) or o[k] < 0:
            sys.exit(f"FAIL: line {n}: key {k!r} missing or not a non-negative number")
    for k in ["sw_cpu_s_per_msg", "server_cpu_s_per_msg"]:
        if k not in o or not (o[k] is None or num(o[k])):
            sys.exit(f"FAIL: line {n}: key {k!r} missing or neither a number nor null")
    where = f"{o['server']} {o['path']} {o['phase']}"
    if o["sent"] <= 0 or o["sent_ham"] <= 0 or o["sent_spim"] <= 0:
        sys.exit(f"FAIL: {where}: nothing (or no ham, or no spim) was sent: {line}")
    if o["sent"] != o["sent_ham"] + o["sent_spim"]:
        sys.exit(f"FAIL: {where}: sent != sent_ham + sent_spim")
    # exact delivery: this is what makes the test fail when the proxy loses ham
    if o["received_ham"] != o["sent_ham"]:
        sys.exit(f"FAIL: {where}: {o['received_ham']} of {o['sent_ham']} ham messages "
                 f"arrived: {line}")
    if o["path"] == "spimwall":
        if o["received_spim"] != 0 or o["received"] != o["sent"] - o["sent_spim"]:
            sys.exit(f"FAIL: {where}: received {o['received']} != sent {o['sent']} minus "
                     f"dropped spim {o['sent_spim']}: {line}")
        if o["bounces"] != o["sent_spim"] or o["bounces_ham"] != 0:
            sys.exit(f"FAIL: {where}: {o['bounces']} bounces for {o['sent_spim']} dropped "
                     f"(and {o['bounces_ham']} for ham): {line}")
        if o["received_tagged"] != o["sent_tag_level"]:
            sys.exit(f"FAIL: {where}: {o['received_tagged']} tagged of {o['sent_tag_level']} "
                     f"tag-level: {line}")
        if o["phase"] == "throughput" and not num(o["sw_cpu_s_per_msg"]):
            sys.exit(f"FAIL: {where}: sw_cpu_s_per_msg must be a number")
        if o["phase"] == "latency" and not num(o.get("added_p50_us")):
            sys.exit(f"FAIL: {where}: added_p50_us must be a number")
    elif o["received"] != o["sent"] or o["received_tagged"] != 0:
        sys.exit(f"FAIL: {where}: the direct path must deliver everything untouched: {line}")
    if o.get("ok") is not True:
        sys.exit(f"FAIL: {where}: not ok: {o.get('error')!r}")
    if o["msgs_per_s"] <= 0:
        sys.exit(f"FAIL: {where}: msgs_per_s is 0")
    key = (o["server"], o["path"], o["phase"])
    if key in cases:
        sys.exit(f"FAIL: case {key} printed twice")
    cases[key] = o

servers = ["sink"] + ([] if "prosody" in skipped else ["prosody"])
paths = ["direct"] + ([] if "spimwall" in skipped else ["spimwall"])
for srv in servers:
    if srv not in parse:
        sys.exit(f"FAIL: no parse_scan_only line for {srv}")
    for p in paths:
        for ph in ("throughput", "latency"):
            if (srv, p, ph) not in cases:
                sys.exit(f"FAIL: no line for server={srv} path={p} phase={ph}")
    if "spimwall" in paths:
        s = summaries.get(srv)
        if s is None:
            sys.exit(f"FAIL: no summary line for {srv}")
        want = (["efficiency", "sw_cpu_us_per_msg"] if srv == "sink"
                else ["sw_over_server_cpu", "server_cpu_us_per_msg"])
        for k in want + ["added_p50_us", "added_p99_us"]:
            if k not in s or not (s[k] is None or num(s[k])):
                sys.exit(f"FAIL: summary {srv}: key {k!r} missing or not a number/null")
print(f"ok: {len(lines)} JSON lines, {len(cases)} cases with exact deliveries")
for what, why in skipped.items():
    print(f"SKIPPED: the {what} part: {why}")
PY
