/* JSON output helpers; contract in proxy/jsonout.h. */
#include "proxy/jsonout.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "protocols/utf8.h"

size_t jsonout_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = (const unsigned char *)s;
    size_t need = 0;    /* length of the complete escaped text */
    size_t written = 0; /* bytes actually in out */
    bool full = false;  /* a unit did not fit: write nothing more */

    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *unit = esc;
        size_t k;
        unsigned char c = in[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
            i++;
        } else if (c < 0x20) {
            static const char short_esc[0x20] = {
                ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
            esc[0] = '\\';
            if (short_esc[c] != 0) {
                esc[1] = short_esc[c];
                k = 2;
            } else {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xf];
                k = 6;
            }
            i++;
        } else {
            long u = utf8_unit(in + i, len - i);
            if (u > 0) {
                unit = s + i;
                k = (size_t)u;
                i += k;
            } else {
                memcpy(esc, "\\ufffd", 6);
                k = 6;
                i += (size_t)-u;
            }
        }
        need += k;
        if (!full && cap > 0 && cap - 1 - written >= k) {
            memcpy(out + written, unit, k);
            written += k;
        } else {
            full = true;
        }
    }
    if (cap > 0)
        out[written] = '\0';
    return need;
}

void jsonout_init(struct jsonout *b, char *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
    if (cap > 0)
        buf[0] = '\0';
}

static size_t jsonout_room(const struct jsonout *b)
{
    return b->cap > b->len ? b->cap - b->len - 1 : 0;
}

void jsonout_raw(struct jsonout *b, const char *s, size_t len)
{
    if (b->overflow || jsonout_room(b) < len) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, s, len);
    b->len += len;
    b->buf[b->len] = '\0';
}

void jsonout_str(struct jsonout *b, const char *s, size_t len)
{
    size_t room = jsonout_room(b);
    size_t need;
    if (b->overflow || room < 2) {
        b->overflow = true;
        return;
    }
    /* The escaped text goes after the opening quote; room - 1 keeps a byte for the closing
     * quote, and jsonout_escape's cap counts its NUL. */
    need = jsonout_escape(b->buf + b->len + 1, room, s, len);
    if (need + 2 > room) {
        b->buf[b->len] = '\0';
        b->overflow = true;
        return;
    }
    b->buf[b->len] = '"';
    b->buf[b->len + 1 + need] = '"';
    b->len += need + 2;
    b->buf[b->len] = '\0';
}

void jsonout_cstr(struct jsonout *b, const char *s)
{
    jsonout_str(b, s, strlen(s));
}

void jsonout_uint(struct jsonout *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", v);
    jsonout_raw(b, tmp, (size_t)n);
}

void jsonout_double(struct jsonout *b, double v, int decimals)
{
    char tmp[64];
    int n;
    if (!isfinite(v)) {
        jsonout_raw(b, "null", 4);
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.*f", decimals, v);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        /* Huge magnitudes: %g is still valid JSON (e.g. 1e+300) and always short. */
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    }
    jsonout_raw(b, tmp, (size_t)n);
}
