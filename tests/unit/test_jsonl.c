/* Unit tests for protocols/jsonl.c: valid vectors (every field, escapes, skipped values, numbers)
 * and one or more vectors per error path, each checked for its column and reason. Every vector
 * is run with and without a trailing '\r' and must give the same result, and with a scratch
 * buffer of exactly the documented size (len + 5) in its own allocation so that ASan sees any
 * overrun. Lines are whole-line input (the reader is not incremental), so the byte-at-a-time
 * rule of the house style becomes: every prefix of a valid line is parsed too, and must fail
 * cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/jsonl.h"

#define S(lit) lit, sizeof(lit) - 1

/* Parses line[0..len) with a scratch buffer of exactly len + 5 bytes, copies the decoded fields
 * out (so the scratch can be freed) and returns the rc. */
struct parsed {
    int rc;
    char err[SW_ERR_MAX];
    bool has_from, has_to, has_body, has_ip, has_ts;
    char from[256], to[256], body[1024], ip[64];
    size_t from_len, to_len, body_len, ip_len;
    double ts;
};

static void copy_field(const char *src, size_t len, bool *has, char *dst, size_t cap,
                       size_t *dst_len)
{
    *has = src != NULL;
    *dst_len = len;
    if (src == NULL) {
        assert_int_equal(len, 0);
        return;
    }
    assert_true(len < cap);
    assert_int_equal(src[len], '\0'); /* contract: NUL-terminated */
    memcpy(dst, src, len + 1);
}

static void parse_into(const char *line, size_t len, struct parsed *p)
{
    char *in = malloc(len + 1); /* exact copy: reading past len is caught by ASan */
    char *scratch = malloc(len + 5);
    struct jsonl_record rec;
    struct sw_err err = {{0}};
    assert_non_null(in);
    assert_non_null(scratch);
    if (len > 0)
        memcpy(in, line, len);
    memset(p, 0, sizeof(*p));
    p->rc = jsonl_parse(in, len, scratch, len + 5, &rec, &err);
    if (p->rc == SW_OK) {
        copy_field(rec.from, rec.from_len, &p->has_from, p->from, sizeof(p->from), &p->from_len);
        copy_field(rec.to, rec.to_len, &p->has_to, p->to, sizeof(p->to), &p->to_len);
        copy_field(rec.body, rec.body_len, &p->has_body, p->body, sizeof(p->body), &p->body_len);
        copy_field(rec.ip, rec.ip_len, &p->has_ip, p->ip, sizeof(p->ip), &p->ip_len);
        p->has_ts = rec.has_ts;
        p->ts = rec.ts;
        assert_true(p->has_body);
    } else {
        assert_int_equal(p->rc, SW_ERROR);
        /* An error leaves no half-filled record. */
        assert_null(rec.body);
        assert_null(rec.from);
        assert_false(rec.has_ts);
        snprintf(p->err, sizeof(p->err), "%s", err.msg);
    }
    free(scratch);
    free(in);
}

/* Parses with and without a trailing '\r' and checks both give the same result. */
static void parse_both(const char *line, size_t len, struct parsed *p)
{
    struct parsed q;
    char *cr = malloc(len + 1);
    assert_non_null(cr);
    memcpy(cr, line, len);
    cr[len] = '\r';
    parse_into(line, len, p);
    parse_into(cr, len + 1, &q);
    free(cr);
    assert_int_equal(p->rc, q.rc);
    assert_string_equal(p->err, q.err);
    assert_int_equal(p->has_from, q.has_from);
    assert_int_equal(p->has_to, q.has_to);
    assert_int_equal(p->has_ip, q.has_ip);
    assert_int_equal(p->has_ts, q.has_ts);
    assert_int_equal(p->body_len, q.body_len);
    assert_memory_equal(p->body, q.body, p->body_len);
    assert_int_equal(p->from_len, q.from_len);
    assert_memory_equal(p->from, q.from, p->from_len);
    assert_int_equal(p->to_len, q.to_len);
    assert_memory_equal(p->to, q.to, p->to_len);
    assert_int_equal(p->ip_len, q.ip_len);
    assert_memory_equal(p->ip, q.ip, p->ip_len);
    if (p->has_ts)
        assert_true(p->ts == q.ts);
}

/* --- valid vectors ------------------------------------------------------------------------- */

static void test_all_fields(void **state)
{
    struct parsed p;
    parse_both(S("{\"from\":\"alice@example.org\",\"to\":\"bob@example.net\",\"body\":\"hi bob\","
                 "\"ts\":1700000000.25,\"ip\":\"192.0.2.1\"}"),
               &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.from, "alice@example.org");
    assert_string_equal(p.to, "bob@example.net");
    assert_string_equal(p.body, "hi bob");
    assert_string_equal(p.ip, "192.0.2.1");
    assert_true(p.has_ts);
    assert_true(p.ts == 1700000000.25);
}

static void test_body_only_and_empty(void **state)
{
    struct parsed p;
    parse_both(S("{\"body\":\"\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_true(p.has_body);
    assert_int_equal(p.body_len, 0);
    assert_false(p.has_from);
    assert_false(p.has_to);
    assert_false(p.has_ip);
    assert_false(p.has_ts);
}

static void test_whitespace(void **state)
{
    struct parsed p;
    parse_both(S(" \t{ \"body\" :\t\"x\" ,\n\"ts\" : 0 } \t "), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "x");
    assert_true(p.has_ts);
    assert_true(p.ts == 0.0);
    /* '\r' is JSON whitespace: more than one trailing, or one in the middle, is fine. */
    parse_both(S("{\"body\":\"x\"}\r\r"), &p);
    assert_int_equal(p.rc, SW_OK);
    parse_both(S("{\r\"body\":\"x\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
}

static void test_simple_escapes(void **state)
{
    struct parsed p;
    parse_both(S("{\"body\":\"q\\\" bs\\\\ sl\\/ \\b\\f\\n\\r\\t end\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "q\" bs\\ sl/ \b\f\n\r\t end");
}

static void test_unicode_escapes(void **state)
{
    struct parsed p;
    parse_both(S("{\"body\":\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\uFFFF\\u007f\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\x7f");
    /* U+0000 decodes to a NUL inside the string; the length keeps it. */
    parse_both(S("{\"body\":\"a\\u0000b\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_int_equal(p.body_len, 3);
    assert_memory_equal(p.body, "a\0b", 3);
    /* Highest code point, as a surrogate pair. */
    parse_both(S("{\"body\":\"\\udbff\\udfff\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "\xf4\x8f\xbf\xbf");
}

static void test_raw_utf8(void **state)
{
    struct parsed p;
    parse_both(S("{\"from\":\"j\xc3\xbcrgen@example.de\",\"body\":\"\xe2\x82\xac 5 \xf0\x9f\x98\x80"
                 " \xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf\"}"),
               &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.from, "j\xc3\xbcrgen@example.de");
    assert_string_equal(p.body,
                        "\xe2\x82\xac 5 \xf0\x9f\x98\x80 \xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf");
}

static void test_unknown_keys_skipped(void **state)
{
    struct parsed p;
    parse_both(S("{\"x\":{\"a\":[1,2,{\"b\":null}],\"c\":true},\"body\":\"b\",\"y\":[],\"z\":{},"
                 "\"w\":-0.5e+3,\"v\":false,\"u\":\"\\ud83d\\ude00\",\"t\":[[[]]],"
                 "\"x\":\"unknown keys may repeat\",\"BODY\":1,\"id\":\"\"}"),
               &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "b");
    assert_false(p.has_ts);
}

static void test_nulls(void **state)
{
    struct parsed p;
    parse_both(S("{\"from\":null,\"to\":null,\"ip\":null,\"body\":\"x\"}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_false(p.has_from);
    assert_false(p.has_to);
    assert_false(p.has_ip);
    assert_string_equal(p.body, "x");
}

static void test_escaped_key(void **state)
{
    struct parsed p;
    /* Keys are compared after decoding, so "\u0062ody" is "body". */
    parse_both(S("{\"\\u0062ody\":\"x\",\"t\\u0073\":2}"), &p);
    assert_int_equal(p.rc, SW_OK);
    assert_string_equal(p.body, "x");
    assert_true(p.has_ts);
    assert_true(p.ts == 2.0);
}

static void test_numbers(void **state)
{
    static const struct {
        const char *line;
        double ts;
    } v[] = {
        {"{\"body\":\"\",\"ts\":0}", 0.0},
        {"{\"body\":\"\",\"ts\":-0}", 0.0},
        {"{\"body\":\"\",\"ts\":-0.0}", 0.0},
        {"{\"body\":\"\",\"ts\":1e3}", 1000.0},
        {"{\"body\":\"\",\"ts\":1E+3}", 1000.0},
        {"{\"body\":\"\",\"ts\":25e-1}", 2.5},
        {"{\"body\":\"\",\"ts\":1.5}", 1.5},
        {"{\"body\":\"\",\"ts\":-12}", -12.0},
        {"{\"body\":\"\",\"ts\":1700000000.125}", 1700000000.125},
        {"{\"body\":\"\",\"ts\":10.0000000000000000000000000000001}", 10.0},
        {"{\"ts\":7,\"body\":\"\"}", 7.0},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct parsed p;
        parse_both(v[i].line, strlen(v[i].line), &p);
        if (p.rc != SW_OK)
            fail_msg("vector %zu: %s: %s", i, v[i].line, p.err);
        assert_true(p.has_ts);
        if (p.ts != v[i].ts)
            fail_msg("vector %zu: %s: got %.17g", i, v[i].line, p.ts);
    }
}

static void test_max_depth(void **state)
{
    char line[256];
    struct parsed p;
    int n;
    /* The top-level object is depth 1: JSONL_MAX_DEPTH - 1 nested arrays fit. */
    n = snprintf(line, sizeof(line), "{\"x\":");
    for (int i = 0; i < JSONL_MAX_DEPTH - 1; i++)
        line[n++] = '[';
    for (int i = 0; i < JSONL_MAX_DEPTH - 1; i++)
        line[n++] = ']';
    n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"body\":\"ok\"}");
    parse_both(line, (size_t)n, &p);
    assert_int_equal(p.rc, SW_OK);
}

/* --- error vectors ------------------------------------------------------------------------- */

struct err_vec {
    const char *line;
    size_t len;
    const char *want; /* "column N: ..." prefix expected in the message */
};

#define E(lit, want) {lit, sizeof(lit) - 1, want}

static const struct err_vec err_vecs[] = {
    /* top level */
    E("", "column 1: unexpected end of line, expected '{'"),
    E("   ", "column 4: unexpected end of line, expected '{'"),
    E("[]", "column 1: unexpected '[', expected '{'"),
    E("\"body\"", "column 1: unexpected '\"', expected '{'"),
    E("\xef\xbb\xbf{\"body\":\"x\"}", "column 1: unexpected byte 0xef, expected '{'"),
    E("{", "column 2: unexpected end of line, expected a string key"),
    E("{}", "column 2: missing \"body\""),
    E("{\"to\":\"b\"}", "column 10: missing \"body\""),
    E("{\"body\":\"x\"} x", "column 14: trailing characters"),
    E("{\"body\":\"x\"}{\"body\":\"y\"}", "column 13: trailing characters"),
    E("{\"body\":\"x\"}\x00", "column 13: trailing characters"),
    E("{\"body\":\"x\"", "column 12: unexpected end of line, expected ',' or '}'"),
    E("{\"body\":\"x\",}", "column 13: unexpected '}', expected a string key"),
    E("{\"body\":\"x\" \"to\":\"y\"}", "column 13: unexpected '\"', expected ',' or '}'"),
    E("{\"body\" \"x\"}", "column 9: unexpected '\"', expected ':'"),
    E("{\"body\"", "column 8: unexpected end of line, expected ':'"),
    E("{\"body\":", "column 9: unexpected end of line, expected a value"),
    E("{body:\"x\"}", "column 2: unexpected 'b', expected a string key"),
    E("{'body':'x'}", "column 2: unexpected ''', expected a string key"),
    E("{,\"body\":\"x\"}", "column 2: unexpected ',', expected a string key"),
    E("{\"body\":\"x\",,\"to\":\"y\"}", "column 13: unexpected ',', expected a string key"),
    E("{\x01\"body\":\"x\"}", "column 2: unexpected byte 0x01, expected a string key"),
    E("{\"body\":\"x\"\x0b}", "column 12: unexpected byte 0x0b, expected ',' or '}'"),
    /* strings */
    E("{\"body\":\"x}", "column 9: unterminated string"),
    E("{\"body\":\"x\\\"}", "column 9: unterminated string"),
    E("{\"bo", "column 2: unterminated string"),
    E("{\"body\":\"a\tb\"}", "column 11: raw control character"),
    E("{\"body\":\"a\nb\"}", "column 11: raw control character"),
    E("{\"body\":\"a\x00" "b\"}", "column 11: raw control character"),
    E("{\"body\":\"a\x1f\"}", "column 11: raw control character"),
    E("{\"body\":\"\\x\"}", "column 11: invalid escape character"),
    E("{\"body\":\"\\U0041\"}", "column 11: invalid escape character"),
    E("{\"body\":\"\\'\"}", "column 11: invalid escape character"),
    E("{\"body\":\"\\", "column 10: unterminated escape"),
    E("{\"body\":\"\\u12\"}", "column 14: \\u must be followed by 4 hex digits"),
    E("{\"body\":\"\\u12g4\"}", "column 14: \\u must be followed by 4 hex digits"),
    E("{\"body\":\"\\u", "column 12: \\u must be followed by 4 hex digits"),
    E("{\"body\":\"\\ud800\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\ud800x\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\ud800\\n\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\ud800\\u0041\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\ud800\\ud800\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\udbff\\ue000\"}", "column 10: lone high surrogate"),
    E("{\"body\":\"\\ud800\\u00", "column 20: \\u must be followed by 4 hex digits"),
    E("{\"body\":\"\\udc00\"}", "column 10: lone low surrogate"),
    E("{\"body\":\"x\\udfff\"}", "column 11: lone low surrogate"),
    /* raw UTF-8 */
    E("{\"body\":\"\xc3\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xc0\x80\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xc1\xbf\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xe0\x9f\xbf\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xed\xa0\x80\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xf0\x8f\xbf\xbf\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xf4\x90\x80\x80\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"ab\xf5\x80\x80\x80\"}", "column 12: invalid UTF-8"),
    E("{\"body\":\"\xff\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\x80\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xe2\x82\"}", "column 10: invalid UTF-8"),
    E("{\"body\":\"\xe2\x82", "column 10: invalid UTF-8"),
    E("{\"x\":\"\xff\",\"body\":\"b\"}", "column 7: invalid UTF-8"),
    E("{\"\xff\":1,\"body\":\"b\"}", "column 3: invalid UTF-8"),
    /* known keys with the wrong type, null body, duplicates */
    E("{\"body\":1}", "column 9: \"body\" must be a string or null"),
    E("{\"body\":[\"x\"]}", "column 9: \"body\" must be a string or null"),
    E("{\"from\":true,\"body\":\"x\"}", "column 9: \"from\" must be a string or null"),
    E("{\"to\":{},\"body\":\"x\"}", "column 7: \"to\" must be a string or null"),
    E("{\"ip\":3232235777,\"body\":\"x\"}", "column 7: \"ip\" must be a string or null"),
    E("{\"body\":nul}", "column 9: invalid literal"),
    E("{\"body\":null}", "column 13: missing \"body\""),
    E("{\"ts\":\"1\",\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":null,\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":[1],\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"body\":\"x\",\"body\":\"y\"}", "column 13: duplicate key \"body\""),
    E("{\"from\":null,\"from\":\"a\",\"body\":\"x\"}", "column 14: duplicate key \"from\""),
    E("{\"ts\":1,\"body\":\"x\",\"t\\u0073\":2}", "column 20: duplicate key \"ts\""),
    E("{\"ip\":\"a\",\"to\":\"b\",\"ip\":\"c\",\"body\":\"x\"}", "column 20: duplicate key \"ip\""),
    E("{\"to\":\"b\",\"to\":null,\"body\":\"x\"}", "column 11: duplicate key \"to\""),
    /* numbers */
    E("{\"ts\":01,\"body\":\"x\"}", "column 8: invalid number: leading zero"),
    E("{\"ts\":-01,\"body\":\"x\"}", "column 9: invalid number: leading zero"),
    E("{\"ts\":1.,\"body\":\"x\"}", "column 9: invalid number: expected a digit after '.'"),
    E("{\"ts\":.5,\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":-,\"body\":\"x\"}", "column 8: invalid number: expected a digit"),
    E("{\"ts\":-a,\"body\":\"x\"}", "column 8: invalid number: expected a digit"),
    E("{\"ts\":+1,\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":1e,\"body\":\"x\"}", "column 9: invalid number: expected a digit in the exponent"),
    E("{\"ts\":1e+,\"body\":\"x\"}", "column 10: invalid number: expected a digit in the exponent"),
    E("{\"ts\":1E-x,\"body\":\"x\"}", "column 10: invalid number: expected a digit in the exponent"),
    E("{\"ts\":0x10,\"body\":\"x\"}", "column 8: unexpected 'x', expected ',' or '}'"),
    E("{\"ts\":1.5.2,\"body\":\"x\"}", "column 10: unexpected '.', expected ',' or '}'"),
    E("{\"ts\":Infinity,\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":NaN,\"body\":\"x\"}", "column 7: \"ts\" must be a number"),
    E("{\"ts\":1e999,\"body\":\"x\"}", "column 7: number out of range"),
    E("{\"ts\":-1e400,\"body\":\"x\"}", "column 7: number out of range"),
    E("{\"ts\":1", "column 8: unexpected end of line, expected ',' or '}'"),
    E("{\"ts\":-", "column 8: invalid number: expected a digit"),
    E("{\"x\":01,\"body\":\"x\"}", "column 7: invalid number: leading zero"),
    E("{\"x\":1e,\"body\":\"x\"}", "column 8: invalid number: expected a digit in the exponent"),
    /* skipped values */
    E("{\"x\":tru,\"body\":\"x\"}", "column 6: invalid literal"),
    E("{\"x\":True,\"body\":\"x\"}", "column 6: unexpected 'T', expected a value"),
    E("{\"x\":fals", "column 6: invalid literal"),
    E("{\"x\":nulll,\"body\":\"x\"}", "column 10: unexpected 'l', expected ',' or '}'"),
    E("{\"x\":[1,],\"body\":\"x\"}", "column 9: unexpected ']', expected a value"),
    E("{\"x\":[1 2],\"body\":\"x\"}", "column 9: unexpected '2', expected ',' or ']'"),
    E("{\"x\":[,1],\"body\":\"x\"}", "column 7: unexpected ',', expected a value"),
    E("{\"x\":{\"a\"},\"body\":\"x\"}", "column 10: unexpected '}', expected ':'"),
    E("{\"x\":{1:2},\"body\":\"x\"}", "column 7: unexpected '1', expected a string key"),
    E("{\"x\":{\"a\":1,},\"body\":\"x\"}", "column 13: unexpected '}', expected a string key"),
    E("{\"x\":{\"a\":1]", "column 12: unexpected ']', expected ',' or '}'"),
    E("{\"x\":[1}", "column 8: unexpected '}', expected ',' or ']'"),
    E("{\"x\":[", "column 7: unexpected end of line, expected a value"),
    E("{\"x\":{\"a\":[\"\\q\"]},\"body\":\"x\"}", "column 14: invalid escape character"),
    E("{\"x\":'a',\"body\":\"x\"}", "column 6: unexpected ''', expected a value"),
    E("{\"x\":undefined,\"body\":\"x\"}", "column 6: unexpected 'u', expected a value"),
    E("{\"x\":1,\"x\":{\"y\":[\"\x01\"]},\"body\":\"x\"}", "column 19: raw control character"),
};

static void test_error_vectors(void **state)
{
    unsigned failed = 0;
    for (size_t i = 0; i < sizeof(err_vecs) / sizeof(err_vecs[0]); i++) {
        struct parsed p;
        parse_both(err_vecs[i].line, err_vecs[i].len, &p);
        if (p.rc != SW_ERROR) {
            print_error("error vector %zu (%.*s) parsed\n", i, (int)err_vecs[i].len,
                        err_vecs[i].line);
            failed++;
        } else if (strncmp(p.err, err_vecs[i].want, strlen(err_vecs[i].want)) != 0) {
            failed++;
            print_error("error vector %zu (%.*s): got \"%s\", want \"%s...\"\n", i,
                        (int)err_vecs[i].len, err_vecs[i].line, p.err, err_vecs[i].want);
        }
    }
    assert_int_equal(failed, 0);
}

static void test_too_deep(void **state)
{
    char line[512];
    size_t n = (size_t)snprintf(line, sizeof(line), "{\"x\":");
    /* 200 '[' would need 200 levels; the reader must stop at the bound, not recurse. */
    for (int i = 0; i < 200; i++)
        line[n++] = '[';
    struct parsed p;
    parse_both(line, n, &p);
    assert_int_equal(p.rc, SW_ERROR);
    /* '{' is depth 1, so the first '[' beyond the bound is the JSONL_MAX_DEPTH-th one, at
     * column 6 + JSONL_MAX_DEPTH - 1. */
    char want[64];
    snprintf(want, sizeof(want), "column %d: nesting too deep", 6 + JSONL_MAX_DEPTH - 1);
    assert_string_equal(p.err, want);
}

/* Every prefix of valid lines, and every single-byte corruption, must parse or fail cleanly
 * (under ASan: without touching memory outside the line or the scratch). */
static void test_prefixes_and_mutations(void **state)
{
    static const char *lines[] = {
        "{\"from\":\"a@x\",\"to\":\"b@y\",\"body\":\"h\\u00e9\\ud83d\\ude00 \xe2\x82\xac\","
        "\"ts\":-1.5e+2,\"ip\":\"::1\",\"k\":[{\"a\":[true,false,null,0.5]}]}",
        "{\"body\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    };
    static const unsigned char subst[] = {'"', '\\', '{', '}', '[', ']', ':', ',', '0',
                                          'e', '-', 'u', 0x00, 0x1f, 0x80, 0xc3, 0xff};
    for (size_t l = 0; l < sizeof(lines) / sizeof(lines[0]); l++) {
        size_t len = strlen(lines[l]);
        struct parsed p;
        parse_both(lines[l], len, &p);
        assert_int_equal(p.rc, SW_OK);
        for (size_t i = 0; i < len; i++) {
            parse_both(lines[l], i, &p);
            assert_int_equal(p.rc, SW_ERROR);
        }
        char *m = malloc(len);
        assert_non_null(m);
        for (size_t i = 0; i < len; i++) {
            for (size_t s = 0; s < sizeof(subst); s++) {
                memcpy(m, lines[l], len);
                m[i] = (char)subst[s];
                parse_both(m, len, &p);
            }
        }
        free(m);
    }
}

static void test_scratch_bounds(void **state)
{
    static const char line[] = "{\"body\":\"\\u20ac\",\"from\":\"abc\"}";
    size_t len = sizeof(line) - 1;
    struct jsonl_record rec;
    struct sw_err err = {{0}};
    /* len + 1 is always enough (see jsonl.c); smaller must fail cleanly, never overrun. */
    for (size_t cap = 0; cap <= len + 5; cap++) {
        char *scratch = cap ? malloc(cap) : NULL;
        int rc = jsonl_parse(line, len, scratch, cap, &rec, &err);
        if (cap >= len + 1) {
            assert_int_equal(rc, SW_OK);
            assert_int_equal(rec.body_len, 3);
            assert_string_equal(rec.from, "abc");
        } else if (rc != SW_OK) {
            assert_non_null(strstr(err.msg, "scratch buffer too small"));
        }
        free(scratch);
    }
    /* A long number needs the scratch too. */
    char big[700];
    int n = snprintf(big, sizeof(big), "{\"body\":\"\",\"ts\":1.");
    for (int i = 0; i < 600; i++)
        big[n++] = '0';
    n += snprintf(big + n, sizeof(big) - (size_t)n, "}");
    char *scratch = malloc((size_t)n + 1);
    assert_non_null(scratch);
    assert_int_equal(jsonl_parse(big, (size_t)n, scratch, (size_t)n + 1, &rec, &err), SW_OK);
    assert_true(rec.has_ts);
    assert_true(rec.ts == 1.0);
    free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_fields),
        cmocka_unit_test(test_body_only_and_empty),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_simple_escapes),
        cmocka_unit_test(test_unicode_escapes),
        cmocka_unit_test(test_raw_utf8),
        cmocka_unit_test(test_unknown_keys_skipped),
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_escaped_key),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_max_depth),
        cmocka_unit_test(test_error_vectors),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_prefixes_and_mutations),
        cmocka_unit_test(test_scratch_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
