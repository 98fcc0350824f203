#!/bin/bash
# Integration test for spimwall-scan: runs the real binary on conf/samples/conversation.jsonl and
# on crafted inputs, and checks its output line by line (JSON parsed with Debian's python3):
# one output line per message in input order plus the summary, verdicts and reasons, fan-out
# seen on later copies of a hijacked account's link, bad lines reported with their line and
# column without stopping the run, --strict, plain-text mode, limits and exit codes.
#
# Environment: SW_SOURCE_DIR (repository), SW_BUILD_DIR (build directory with spimwall-scan).
set -u

SRC=${SW_SOURCE_DIR:?SW_SOURCE_DIR must name the source tree}
BUILD=${SW_BUILD_DIR:?SW_BUILD_DIR must name the build directory}
SCAN=$BUILD/spimwall-scan
PY=/usr/bin/python3
SAMPLE=$SRC/conf/samples/conversation.jsonl

if [ ! -x "$SCAN" ]; then
    echo "FAIL: $SCAN not built" >&2
    exit 1
fi
cd "$SRC" || exit 1 # default --rules/--lists are relative to the source tree

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_scan_cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

failures=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() {
    checks=$((checks + 1))
}
# expect_rc NAME WANT GOT
expect_rc() {
    if [ "$3" -ne "$2" ]; then
        fail "$1: exit status $3, want $2"
        sed 's/^/    stderr: /' "$TMP/err" >&2
    else
        ok
    fi
}
# pycheck NAME FILE SCRIPT [ARGS...]: runs SCRIPT with the output lines parsed as JSON in `rows`
# (a list of dicts), the raw lines in `raw`; the script raises AssertionError to fail.
pycheck() {
    local name=$1 file=$2 script=$3
    shift 3
    if "$PY" - "$file" "$@" >"$TMP/py.out" 2>&1 <<EOF
import json, re, sys
raw = open(sys.argv[1], encoding="utf-8").read().splitlines()
rows = [json.loads(l) for l in raw]
args = sys.argv[2:]
$script
EOF
    then
        ok
    else
        fail "$name"
        sed 's/^/    /' "$TMP/py.out" >&2
    fi
}

# --- 1. the sample conversation --------------------------------------------------------------
"$SCAN" "$SAMPLE" >"$TMP/out" 2>"$TMP/err"
expect_rc "sample" 0 $?
[ -s "$TMP/err" ] && fail "sample: unexpected stderr: $(head -3 "$TMP/err")"
n_in=$(grep -c . "$SAMPLE")
pycheck "sample: one line per message in order, summary last" "$TMP/out" '
n = int(args[0])
assert len(rows) == n + 1, f"{len(rows)} output lines for {n} messages"
for i, r in enumerate(rows[:-1], 1):
    assert r["line"] == i, (i, r)
    assert r["verdict"] in ("pass", "tag", "drop"), r
    assert isinstance(r["score"], (int, float)), r
    for reason in r["reasons"]:
        assert re.fullmatch(r"[A-Za-z0-9_.:-]+\([+-][0-9]+\.[0-9]+\)(\{[^{}]*\})?", reason), reason
    want = "drop" if r["score"] >= 10 else "tag" if r["score"] >= 5 else "pass"
    assert r["verdict"] == want, (i, r)
s = rows[-1]["summary"]
assert s["messages"] == n and s["errors"] == 0, s
assert s["pass"] + s["tag"] + s["drop"] == n, s
assert [s["pass"], s["tag"], s["drop"]] == [sum(r["verdict"] == v for r in rows[:-1])
                                            for v in ("pass", "tag", "drop")], s
assert s["seconds"] >= 0 and s["msgs_per_s"] >= 0, s
' "$n_in"

# frank's hijacked account sends the same link to 9 contacts within 4 s: the 5th and later
# copies reach the default fan-out threshold of 5 distinct recipients.
pycheck "sample: fan-out detected on the later copies only" "$TMP/out" '
src = [json.loads(l) for l in open(args[0], encoding="utf-8") if l.strip()]
fan = [i for i, m in enumerate(src) if m["from"] == "frank@example.net" and ".zip" in m["body"]]
assert len(fan) >= 8, fan
has = [any(x.startswith("REP_FANOUT(") for x in rows[i]["reasons"]) for i in fan]
assert has[:4] == [False] * 4, has
assert all(has[4:]), has
for k, i in enumerate(fan[4:], 5):
    r = rows[i]
    assert r["verdict"] == "drop", r
    fo = [x for x in r["reasons"] if x.startswith("REP_FANOUT(")][0]
    assert fo.endswith("{%d}" % k), (k, fo)
# the body itself is never echoed
out = "\n".join(raw)
for m in src:
    assert m["body"] not in out, m["body"]
# ordinary chat passes
for i, m in enumerate(src):
    if m["body"].startswith(("hey bob", "yes! 12:30", "thanks dave", "got them")):
        assert rows[i]["verdict"] == "pass", (m["body"], rows[i])
' "$SAMPLE"

# the same log without behaviour signals: no REP_ reasons, fewer drops
"$SCAN" --no-reputation "$SAMPLE" >"$TMP/out.norep" 2>"$TMP/err"
expect_rc "--no-reputation" 0 $?
pycheck "--no-reputation: no behaviour reasons" "$TMP/out.norep" '
assert not any(x.startswith(("REP_", "QUARANTINED")) for r in rows[:-1] for x in r["reasons"])
'

# stdin, "-" and a file give the same verdicts; so does CRLF input
"$SCAN" --no-summary <"$SAMPLE" >"$TMP/out.stdin" 2>"$TMP/err"
expect_rc "stdin" 0 $?
"$SCAN" --no-summary - <"$SAMPLE" >"$TMP/out.dash" 2>"$TMP/err"
expect_rc "stdin -" 0 $?
sed 's/$/\r/' "$SAMPLE" >"$TMP/crlf.jsonl"
"$SCAN" --no-summary "$TMP/crlf.jsonl" >"$TMP/out.crlf" 2>"$TMP/err"
expect_rc "crlf" 0 $?
head -n -1 "$TMP/out" >"$TMP/out.nosum"
for f in out.stdin out.dash out.crlf; do
    if cmp -s "$TMP/out.nosum" "$TMP/$f"; then ok; else fail "$f differs from the file run"; fi
done
pycheck "--no-summary: no summary line" "$TMP/out.stdin" '
assert all("summary" not in r for r in rows), rows[-1]
'

# the compiled-database cache: written on the first run, used on the second, same verdicts
"$SCAN" --no-summary --cache "$TMP/scan.db" "$SAMPLE" >"$TMP/out.cache1" 2>"$TMP/err"
expect_rc "--cache write" 0 $?
[ -s "$TMP/scan.db" ] && ok || fail "--cache: no cache file written"
"$SCAN" --no-summary --cache "$TMP/scan.db" "$SAMPLE" >"$TMP/out.cache2" 2>"$TMP/err"
expect_rc "--cache read" 0 $?
if cmp -s "$TMP/out.cache1" "$TMP/out.nosum" && cmp -s "$TMP/out.cache2" "$TMP/out.nosum"; then
    ok
else
    fail "--cache: verdicts differ"
fi

# --databases one gives the same verdicts; the per-target cache is not its layout, so it is
# compiled again (the cache rewritten), and the rewritten one serves the next run
"$SCAN" --no-summary --databases one --cache "$TMP/scan.db" "$SAMPLE" >"$TMP/out.one" 2>"$TMP/err"
expect_rc "--databases one" 0 $?
cmp -s "$TMP/out.one" "$TMP/out.nosum" && ok || fail "--databases one: verdicts differ"
# the rewritten cache is format 3 in layout 1 (payload offset 0, right after the 144-byte header)
[ "$(od -A n -t u4 -j 8 -N 4 "$TMP/scan.db" | tr -d ' ')" = 3 ] &&
    [ "$(od -A n -t u4 -j 144 -N 4 "$TMP/scan.db" | tr -d ' ')" = 1 ] && ok ||
    fail "--databases one: cache not rewritten in layout one"
"$SCAN" --no-summary --databases one --cache "$TMP/scan.db" "$SAMPLE" >"$TMP/out.one2" 2>"$TMP/err"
expect_rc "--databases one, cached" 0 $?
cmp -s "$TMP/out.one2" "$TMP/out.nosum" && ok || fail "--databases one, cached: verdicts differ"
# --- 2. bad lines are reported and skipped ---------------------------------------------------
cat >"$TMP/bad.jsonl" <<'EOF'
{"from":"a@example.org","to":"b@example.org","body":"hello there","ts":1700000000}
{"from":"a@example.org","to":"b@example.org","body":"unterminated

{"from":"a@example.org","to":"b@example.org","body":"second good line"}
{"body":"x","body":"y"}
not json at all
{"from":"a@example.org","body":"\ud800 lone surrogate"}
{"body":"last good line"}
EOF
"$SCAN" "$TMP/bad.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "bad lines" 0 $?
pycheck "bad lines: errors on stdout in order, run goes on" "$TMP/out" '
lines = [r.get("line") for r in rows[:-1]]
assert lines == [1, 2, 4, 5, 6, 7, 8], lines
assert "verdict" in rows[0] and "verdict" in rows[2] and "verdict" in rows[6], rows
assert rows[1]["error"].startswith("column 53: unterminated string"), rows[1]
assert rows[3]["error"].startswith("column 13: duplicate key \"body\""), rows[3]
assert rows[4]["error"].startswith("column 1: "), rows[4]
assert rows[5]["error"].startswith("column 33: lone high surrogate"), rows[5]
s = rows[-1]["summary"]
assert (s["messages"], s["errors"], s["lines"], s["empty"]) == (3, 4, 8, 1), s
'
for want in ":2: column 53: unterminated string" ":5: column 13: duplicate key" \
    ":6: column 1: " ":7: column 33: lone high surrogate"; do
    if grep -qF "spimwall-scan: $TMP/bad.jsonl$want" "$TMP/err"; then ok; else
        fail "stderr lacks '$want'"
        sed 's/^/    stderr: /' "$TMP/err" >&2
    fi
done
[ "$(wc -l <"$TMP/err")" -eq 4 ] && ok || fail "bad lines: want 4 stderr lines"

# --strict stops at the first bad line with exit 2
"$SCAN" --strict "$TMP/bad.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "--strict" 2 $?
pycheck "--strict: stops after the first bad line" "$TMP/out" '
assert [r.get("line") for r in rows[:-1]] == [1, 2], rows
assert "error" in rows[1], rows[1]
assert rows[-1]["summary"]["errors"] == 1, rows[-1]
'
grep -qF "spimwall-scan: $TMP/bad.jsonl:2: column 53:" "$TMP/err" && ok || fail "--strict: stderr"
# --strict on clean input is exit 0
"$SCAN" --strict "$SAMPLE" >/dev/null 2>"$TMP/err"
expect_rc "--strict clean" 0 $?

# --- 3. time: a missing ts reuses the previous one -------------------------------------------
# Only the first line has a ts, so all ten copies happen at that instant: fan-out must fire.
{
    echo '{"from":"x@example.org","to":"r0@example.org","body":"see http://fan.example.net/a.zip","ts":1700000000}'
    for i in 1 2 3 4 5 6 7 8 9; do
        echo "{\"from\":\"x@example.org\",\"to\":\"r$i@example.org\",\"body\":\"see http://fan.example.net/a.zip\"}"
    done
} >"$TMP/nots.jsonl"
"$SCAN" "$TMP/nots.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "missing ts" 0 $?
pycheck "missing ts: fan-out from the 5th copy" "$TMP/out" '
has = [any(x.startswith("REP_FANOUT(") for x in r["reasons"]) for r in rows[:-1]]
assert has == [False] * 4 + [True] * 6, has
'
# the same copies an hour apart are not a fan-out (the window is 60 s)
for i in 0 1 2 3 4 5 6 7 8 9; do
    echo "{\"from\":\"x@example.org\",\"to\":\"r$i@example.org\",\"body\":\"see http://fan.example.net/a.zip\",\"ts\":$((1700000000 + i * 3600)).5}"
done >"$TMP/slow.jsonl"
"$SCAN" "$TMP/slow.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "slow" 0 $?
pycheck "copies an hour apart: no fan-out" "$TMP/out" '
assert not any(x.startswith("REP_FANOUT(") for r in rows[:-1] for x in r["reasons"]), rows
'
echo '{"body":"x","ts":-5}' >"$TMP/negts.jsonl"
"$SCAN" "$TMP/negts.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "negative ts" 0 $?
grep -qF 'negts.jsonl:1: "ts" out of range' "$TMP/err" && ok || fail "negative ts not reported"

# --- 4. plain-text mode ----------------------------------------------------------------------
printf 'hello there, how are you?\n\nlol! see it! u'"'"'ll like it. http://pics-share.example.info/IMG_0412.zip\r\n{"body":"json is just text here"}' >"$TMP/plain.txt"
"$SCAN" -t "$TMP/plain.txt" >"$TMP/out" 2>"$TMP/err"
expect_rc "text mode" 0 $?
pycheck "text mode: one verdict per non-empty line" "$TMP/out" '
assert [r.get("line") for r in rows[:-1]] == [1, 3, 4], rows
assert rows[0]["verdict"] == "pass", rows[0]
assert rows[1]["verdict"] != "pass", rows[1]
assert rows[2]["verdict"] == "pass", rows[2]
assert rows[-1]["summary"]["messages"] == 3 and rows[-1]["summary"]["empty"] == 1, rows[-1]
'
"$SCAN" --text --no-summary <"$TMP/plain.txt" >"$TMP/out" 2>"$TMP/err"
expect_rc "text mode stdin" 0 $?
[ "$(wc -l <"$TMP/out")" -eq 3 ] && ok || fail "text mode stdin: want 3 lines"

# --- 5. line length bound --------------------------------------------------------------------
{
    echo '{"body":"short"}'
    printf '{"body":"%0200d"}\n' 0
    echo '{"body":"after the long one"}'
} >"$TMP/long.jsonl"
"$SCAN" --max-line 64 "$TMP/long.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "--max-line" 0 $?
pycheck "--max-line: long line reported, next line read" "$TMP/out" '
assert [r.get("line") for r in rows[:-1]] == [1, 2, 3], rows
assert "longer than 64 bytes" in rows[1]["error"], rows[1]
assert "verdict" in rows[2], rows[2]
'
grep -qF "long.jsonl:2: line longer than 64 bytes" "$TMP/err" && ok || fail "--max-line stderr"
# a 3 MiB line with the default bound (1 MiB), no trailing newline at the end of the input
{
    echo '{"body":"first"}'
    head -c 3145728 /dev/zero | tr '\0' 'a'
    echo
    printf '{"body":"no newline at the end"}'
} >"$TMP/huge.jsonl"
"$SCAN" "$TMP/huge.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_rc "huge line" 0 $?
pycheck "huge line skipped without stopping" "$TMP/out" '
assert [r.get("line") for r in rows[:-1]] == [1, 2, 3], rows
assert "longer than 1048576 bytes" in rows[1]["error"], rows[1]
assert rows[-1]["summary"]["messages"] == 2, rows[-1]
'

# --- 6. thresholds ---------------------------------------------------------------------------
"$SCAN" --tag-threshold 1000 --drop-threshold 2000 --no-reputation "$SAMPLE" >"$TMP/out" 2>"$TMP/err"
expect_rc "high thresholds" 0 $?
pycheck "high thresholds: everything passes" "$TMP/out" '
assert rows[-1]["summary"]["pass"] == rows[-1]["summary"]["messages"], rows[-1]
'

# --- 7. usage and setup errors ---------------------------------------------------------------
"$SCAN" --help >"$TMP/out" 2>"$TMP/err"
expect_rc "--help" 0 $?
grep -q "^usage: spimwall-scan" "$TMP/out" && ok || fail "--help prints no usage"
"$SCAN" --version >"$TMP/out" 2>"$TMP/err"
expect_rc "--version" 0 $?
grep -q "^spimwall-scan [0-9]" "$TMP/out" && ok || fail "--version output"

expect_setup_error() { # NAME PATTERN ARGS...
    local name=$1 pattern=$2
    shift 2
    "$SCAN" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
    expect_rc "$name" 1 $?
    grep -qE "$pattern" "$TMP/err" && ok || {
        fail "$name: stderr lacks /$pattern/"
        sed 's/^/    stderr: /' "$TMP/err" >&2
    }
    [ -s "$TMP/out" ] && fail "$name: wrote to stdout"
}
expect_setup_error "unknown option" "unknown option '--bogus'" --bogus
expect_setup_error "missing argument" "needs an argument" "$SAMPLE" --rules
expect_setup_error "bad threshold" "tag-threshold: not a number" --tag-threshold abc
expect_setup_error "tag above drop" "threshold" --tag-threshold 20 --drop-threshold 10
expect_setup_error "bad max-line" "max-line" --max-line 2
expect_setup_error "bad databases" "databases: expected per-target or one" --databases two
expect_setup_error "two inputs" "more than one input" "$SAMPLE" "$SAMPLE"
expect_setup_error "missing input" "no-such-file.jsonl: No such file" "$TMP/no-such-file.jsonl"
expect_setup_error "missing rules dir" "no-such-dir" --rules "$TMP/no-such-dir"
mkdir -p "$TMP/badrules"
cp "$SRC"/conf/rules/*.rules "$TMP/badrules/"
printf '# broken on purpose\nrule SW_TEST_BROKEN body notascore /x/\n' >"$TMP/badrules/50-broken.rules"
expect_setup_error "bad rule file" "50-broken\.rules:2: " --rules "$TMP/badrules"

echo "test_scan_cli: $checks checks passed, $failures failed"
[ "$failures" -eq 0 ]
