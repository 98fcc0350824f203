/* Strict JSON-lines record reader (RFC 8259) for spimwall-scan; contract in protocols/jsonl.h.
 *
 * A whole line is parsed by recursive descent. Recursion only happens for values that are
 * skipped (unknown keys) and is bounded by JSONL_MAX_DEPTH, the top-level object counting as
 * depth 1. Nothing is allocated: decoded strings go to the caller's scratch buffer.
 *
 * Scratch budget: a decoded string plus its NUL never exceeds its source bytes including the
 * two quotes (every escape shrinks or keeps its length: \n 2->1, \uXXXX 6->at most 3, a
 * surrogate pair 12->4), and a number copied for strtod plus its NUL is at most its source
 * length + 1. So scratch use never exceeds bytes consumed + 1; len + 1 is always enough and
 * len + 5 (the documented figure) leaves slack. Every write is still bounds-checked. */
#include "protocols/jsonl.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/ascii.h"
#include "protocols/utf8.h"

struct jsonl_parser {
    const unsigned char *in;
    size_t len;
    size_t pos;
    char *scratch;
    size_t cap;
    size_t used; /* scratch bytes holding decoded values that rec points into */
    struct sw_err *err;
};

static int jp_fail(struct jsonl_parser *jp, size_t at, const char *reason)
{
    return sw_err_set(jp->err, "column %zu: %s", at + 1, reason);
}

static void jp_skip_ws(struct jsonl_parser *jp)
{
    while (jp->pos < jp->len) {
        unsigned char c = jp->in[jp->pos];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        jp->pos++;
    }
}

/* Returns the byte at pos or -1 at end of line. */
static int jp_peek(const struct jsonl_parser *jp)
{
    return jp->pos < jp->len ? jp->in[jp->pos] : -1;
}

static int jp_fail_unexpected(struct jsonl_parser *jp, const char *expected)
{
    char msg[96];
    int c = jp_peek(jp);
    if (c == -1)
        snprintf(msg, sizeof(msg), "unexpected end of line, expected %s", expected);
    else if (c >= 0x20 && c < 0x7f)
        snprintf(msg, sizeof(msg), "unexpected '%c', expected %s", c, expected);
    else
        snprintf(msg, sizeof(msg), "unexpected byte 0x%02x, expected %s", (unsigned)c, expected);
    return jp_fail(jp, jp->pos, msg);
}

/* Length of the well-formed UTF-8 sequence at in[0..avail), or 0 if it is not well formed. */
static size_t utf8_seq_len(const unsigned char *in, size_t avail)
{
    long n = utf8_unit(in, avail);
    return n > 0 ? (size_t)n : 0;
}

/* Reads the 4 hex digits after "\u" at pos (pos points at the backslash). Returns the code
 * unit or -1 (error already set). */
static long jp_read_u4(struct jsonl_parser *jp, size_t at)
{
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t k = at + 2 + i;
        int h = k < jp->len ? sw_hex_val(jp->in[k]) : -1;
        if (h < 0) {
            jp_fail(jp, k < jp->len ? k : jp->len, "\\u must be followed by 4 hex digits");
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

/* Parses the string starting at the '"' at pos. With out == NULL the string is only
 * validated; otherwise it is decoded into out[0..cap) and NUL-terminated, *out_len set. */
static int jp_string(struct jsonl_parser *jp, char *out, size_t cap, size_t *out_len)
{
    size_t start = jp->pos;
    size_t n = 0;
    jp->pos++; /* opening quote */
    for (;;) {
        unsigned char buf[4];
        const unsigned char *src = buf;
        size_t k;
        if (jp->pos >= jp->len)
            return jp_fail(jp, start, "unterminated string");
        unsigned char c = jp->in[jp->pos];
        if (c == '"') {
            jp->pos++;
            break;
        }
        if (c < 0x20)
            return jp_fail(jp, jp->pos, "raw control character in string (must be escaped)");
        if (c == '\\') {
            size_t esc = jp->pos;
            if (esc + 1 >= jp->len)
                return jp_fail(jp, esc, "unterminated escape");
            k = 1;
            switch (jp->in[esc + 1]) {
            case '"': buf[0] = '"'; break;
            case '\\': buf[0] = '\\'; break;
            case '/': buf[0] = '/'; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                long u = jp_read_u4(jp, esc);
                unsigned long cp;
                if (u < 0)
                    return SW_ERROR;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return jp_fail(jp, esc, "lone low surrogate in \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    size_t lo_at = esc + 6;
                    long lo;
                    if (lo_at + 1 >= jp->len || jp->in[lo_at] != '\\' || jp->in[lo_at + 1] != 'u')
                        return jp_fail(jp, esc, "lone high surrogate in \\u escape");
                    lo = jp_read_u4(jp, lo_at);
                    if (lo < 0)
                        return SW_ERROR;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return jp_fail(jp, esc, "lone high surrogate in \\u escape");
                    cp = 0x10000 + (((unsigned long)u - 0xd800) << 10) +
                         ((unsigned long)lo - 0xdc00);
                    jp->pos += 6;
                } else {
                    cp = (unsigned long)u;
                }
                k = utf8_encode((uint32_t)cp, (char *)buf);
                jp->pos += 4;
                break;
            }
            default:
                return jp_fail(jp, esc + 1, "invalid escape character");
            }
            jp->pos += 2;
        } else if (c >= 0x80) {
            k = utf8_seq_len(jp->in + jp->pos, jp->len - jp->pos);
            if (k == 0)
                return jp_fail(jp, jp->pos, "invalid UTF-8 in string");
            src = jp->in + jp->pos;
            jp->pos += k;
        } else {
            k = 1;
            src = jp->in + jp->pos;
            jp->pos++;
        }
        if (out != NULL) {
            if (cap - n <= k) /* keep room for the NUL */
                return jp_fail(jp, start, "scratch buffer too small");
            memcpy(out + n, src, k);
        }
        n += k;
    }
    if (out != NULL) {
        out[n] = '\0';
        *out_len = n;
    }
    return SW_OK;
}

/* Parses a number at pos per the JSON grammar:
 *   -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?
 * With out != NULL, converts it (strtod on a NUL-terminated copy in free scratch space; it
 * assumes the "C" LC_NUMERIC locale, the default of a program that never calls setlocale). */
static int jp_number(struct jsonl_parser *jp, double *out)
{
    size_t start = jp->pos;
    const unsigned char *in = jp->in;
    size_t p = jp->pos;
    if (p < jp->len && in[p] == '-')
        p++;
    if (p >= jp->len || in[p] < '0' || in[p] > '9')
        return jp_fail(jp, p, "invalid number: expected a digit");
    if (in[p] == '0') {
        p++;
        if (p < jp->len && in[p] >= '0' && in[p] <= '9')
            return jp_fail(jp, p, "invalid number: leading zero");
    } else {
        while (p < jp->len && in[p] >= '0' && in[p] <= '9')
            p++;
    }
    if (p < jp->len && in[p] == '.') {
        p++;
        if (p >= jp->len || in[p] < '0' || in[p] > '9')
            return jp_fail(jp, p, "invalid number: expected a digit after '.'");
        while (p < jp->len && in[p] >= '0' && in[p] <= '9')
            p++;
    }
    if (p < jp->len && (in[p] == 'e' || in[p] == 'E')) {
        p++;
        if (p < jp->len && (in[p] == '+' || in[p] == '-'))
            p++;
        if (p >= jp->len || in[p] < '0' || in[p] > '9')
            return jp_fail(jp, p, "invalid number: expected a digit in the exponent");
        while (p < jp->len && in[p] >= '0' && in[p] <= '9')
            p++;
    }
    jp->pos = p;
    if (out != NULL) {
        size_t n = p - start;
        char *tmp = jp->scratch + jp->used;
        if (jp->cap - jp->used <= n)
            return jp_fail(jp, start, "scratch buffer too small");
        memcpy(tmp, in + start, n);
        tmp[n] = '\0';
        *out = strtod(tmp, NULL);
        if (!isfinite(*out))
            return jp_fail(jp, start, "number out of range");
    }
    return SW_OK;
}

static int jp_literal(struct jsonl_parser *jp, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++)
        if (jp->pos + i >= jp->len || jp->in[jp->pos + i] != (unsigned char)word[i])
            return jp_fail(jp, jp->pos, "invalid literal");
    jp->pos += n;
    return SW_OK;
}

static int jp_skip_value(struct jsonl_parser *jp, int depth);

/* Skips an object or array at pos; depth is the depth of the container being entered. */
static int jp_skip_container(struct jsonl_parser *jp, int depth)
{
    bool is_obj = jp->in[jp->pos] == '{';
    int close = is_obj ? '}' : ']';
    if (depth > JSONL_MAX_DEPTH)
        return jp_fail(jp, jp->pos, "nesting too deep");
    jp->pos++;
    jp_skip_ws(jp);
    if (jp_peek(jp) == close) {
        jp->pos++;
        return SW_OK;
    }
    for (;;) {
        if (is_obj) {
            if (jp_peek(jp) != '"')
                return jp_fail_unexpected(jp, "a string key");
            if (jp_string(jp, NULL, 0, NULL) != SW_OK)
                return SW_ERROR;
            jp_skip_ws(jp);
            if (jp_peek(jp) != ':')
                return jp_fail_unexpected(jp, "':'");
            jp->pos++;
            jp_skip_ws(jp);
        }
        if (jp_skip_value(jp, depth) != SW_OK)
            return SW_ERROR;
        jp_skip_ws(jp);
        int c = jp_peek(jp);
        if (c == close) {
            jp->pos++;
            return SW_OK;
        }
        if (c != ',')
            return jp_fail_unexpected(jp, is_obj ? "',' or '}'" : "',' or ']'");
        jp->pos++;
        jp_skip_ws(jp);
    }
}

/* Validates and skips any value at pos; depth is that of the enclosing container. */
static int jp_skip_value(struct jsonl_parser *jp, int depth)
{
    int c = jp_peek(jp);
    switch (c) {
    case '{':
    case '[':
        return jp_skip_container(jp, depth + 1);
    case '"':
        return jp_string(jp, NULL, 0, NULL);
    case 't':
        return jp_literal(jp, "true");
    case 'f':
        return jp_literal(jp, "false");
    case 'n':
        return jp_literal(jp, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return jp_number(jp, NULL);
        return jp_fail_unexpected(jp, "a value");
    }
}

enum jsonl_key { KEY_FROM, KEY_TO, KEY_BODY, KEY_IP, KEY_TS, KEY_COUNT, KEY_OTHER = KEY_COUNT };

static const char *const key_names[KEY_COUNT] = {"from", "to", "body", "ip", "ts"};

static enum jsonl_key key_lookup(const char *k, size_t n)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strlen(key_names[i]) == n && memcmp(key_names[i], k, n) == 0)
            return (enum jsonl_key)i;
    return KEY_OTHER;
}

/* Parses the value of a known string key ("from", "to", "body", "ip"): a string, decoded into
 * scratch, or null. */
static int jp_string_field(struct jsonl_parser *jp, enum jsonl_key key, const char **ptr,
                           size_t *len)
{
    char msg[64];
    int c = jp_peek(jp);
    if (c == 'n')
        return jp_literal(jp, "null");
    if (c == -1)
        return jp_fail_unexpected(jp, "a value");
    if (c != '"') {
        snprintf(msg, sizeof(msg), "\"%s\" must be a string or null", key_names[key]);
        return jp_fail(jp, jp->pos, msg);
    }
    char *dst = jp->scratch + jp->used;
    size_t n = 0;
    if (jp_string(jp, dst, jp->cap - jp->used, &n) != SW_OK)
        return SW_ERROR;
    *ptr = dst;
    *len = n;
    jp->used += n + 1;
    return SW_OK;
}

static int jp_parse(const char *line, size_t len, char *scratch, size_t scratch_cap,
                    struct jsonl_record *rec, struct sw_err *err)
{
    struct jsonl_parser jp = {
        .in = (const unsigned char *)line,
        .len = len,
        .scratch = scratch,
        .cap = scratch_cap,
        .err = err,
    };
    bool seen[KEY_COUNT] = {false};
    size_t close_at;

    memset(rec, 0, sizeof(*rec));
    /* One trailing '\r' (CRLF files) is not part of the record; strip it up front so error
     * columns are the same with or without it. */
    if (jp.len > 0 && jp.in[jp.len - 1] == '\r')
        jp.len--;
    if (scratch == NULL || scratch_cap == 0)
        return jp_fail(&jp, 0, "scratch buffer too small");

    jp_skip_ws(&jp);
    if (jp_peek(&jp) != '{')
        return jp_fail_unexpected(&jp, "'{'");
    jp.pos++;
    jp_skip_ws(&jp);
    if (jp_peek(&jp) != '}') {
        for (;;) {
            size_t key_at = jp.pos;
            size_t key_len = 0;
            enum jsonl_key key;
            if (jp_peek(&jp) != '"')
                return jp_fail_unexpected(&jp, "a string key");
            /* Decode the key into free scratch space without claiming it. */
            if (jp_string(&jp, jp.scratch + jp.used, jp.cap - jp.used, &key_len) != SW_OK)
                return SW_ERROR;
            key = key_lookup(jp.scratch + jp.used, key_len);
            jp_skip_ws(&jp);
            if (jp_peek(&jp) != ':')
                return jp_fail_unexpected(&jp, "':'");
            jp.pos++;
            jp_skip_ws(&jp);
            if (key != KEY_OTHER) {
                if (seen[key]) {
                    char msg[64];
                    snprintf(msg, sizeof(msg), "duplicate key \"%s\"", key_names[key]);
                    return jp_fail(&jp, key_at, msg);
                }
                seen[key] = true;
            }
            int rc;
            switch (key) {
            case KEY_FROM:
                rc = jp_string_field(&jp, key, &rec->from, &rec->from_len);
                break;
            case KEY_TO:
                rc = jp_string_field(&jp, key, &rec->to, &rec->to_len);
                break;
            case KEY_BODY:
                rc = jp_string_field(&jp, key, &rec->body, &rec->body_len);
                break;
            case KEY_IP:
                rc = jp_string_field(&jp, key, &rec->ip, &rec->ip_len);
                break;
            case KEY_TS: {
                int c = jp_peek(&jp);
                if (c == -1)
                    rc = jp_fail_unexpected(&jp, "a value");
                else if (c != '-' && (c < '0' || c > '9'))
                    rc = jp_fail(&jp, jp.pos, "\"ts\" must be a number");
                else
                    rc = jp_number(&jp, &rec->ts);
                rec->has_ts = rc == SW_OK;
                break;
            }
            default:
                rc = jp_skip_value(&jp, 1);
                break;
            }
            if (rc != SW_OK)
                return SW_ERROR;
            jp_skip_ws(&jp);
            int c = jp_peek(&jp);
            if (c == '}')
                break;
            if (c != ',')
                return jp_fail_unexpected(&jp, "',' or '}'");
            jp.pos++;
            jp_skip_ws(&jp);
        }
    }
    close_at = jp.pos;
    jp.pos++;
    jp_skip_ws(&jp);
    if (jp.pos < jp.len)
        return jp_fail(&jp, jp.pos, "trailing characters after the object");
    if (rec->body == NULL)
        return jp_fail(&jp, close_at, "missing \"body\" (a string)");
    return SW_OK;
}

int jsonl_parse(const char *line, size_t len, char *scratch, size_t scratch_cap,
                struct jsonl_record *rec, struct sw_err *err)
{
    int rc = jp_parse(line, len, scratch, scratch_cap, rec, err);
    if (rc != SW_OK)
        memset(rec, 0, sizeof(*rec)); /* no half-filled record on error */
    return rc;
}
