/* XML text helpers: see xmpp_escape.h. */
#include "protocols/xmpp/xmpp_escape.h"

#include <string.h>

#include "protocols/ascii.h"

static void put(char *out, size_t cap, size_t *n, char c)
{
    if (*n < cap)
        out[*n] = c;
    (*n)++;
}

static void put_utf8(char *out, size_t cap, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        put(out, cap, n, (char)cp);
    } else if (cp < 0x800) {
        put(out, cap, n, (char)(0xC0 | (cp >> 6)));
        put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        put(out, cap, n, (char)(0xE0 | (cp >> 12)));
        put(out, cap, n, (char)(0x80 | ((cp >> 6) & 0x3F)));
        put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
    } else {
        put(out, cap, n, (char)(0xF0 | (cp >> 18)));
        put(out, cap, n, (char)(0x80 | ((cp >> 12) & 0x3F)));
        put(out, cap, n, (char)(0x80 | ((cp >> 6) & 0x3F)));
        put(out, cap, n, (char)(0x80 | (cp & 0x3F)));
    }
}

/* Decodes the reference starting at raw[i] == '&'. Returns the bytes it spans (0 if it is not
 * a valid reference: the caller copies the '&' through). */
static size_t decode_ref(const char *raw, size_t len, size_t i, char *out, size_t cap, size_t *n)
{
    const char *semi = memchr(raw + i, ';', len - i < 12 ? len - i : 12);
    if (semi == NULL)
        return 0;
    size_t rl = (size_t)(semi - (raw + i)) + 1; /* "&...;" */
    const char *r = raw + i + 1;
    size_t nl = rl - 2;
    static const struct {
        const char *name;
        char c;
    } pre[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    if (nl >= 2 && r[0] == '#') {
        unsigned long cp = 0;
        size_t k = 1;
        int hex = r[1] == 'x';
        if (hex)
            k = 2;
        if (k >= nl)
            return 0;
        for (; k < nl; k++) {
            char c = r[k];
            int d = hex ? sw_hex_val(c) : c >= '0' && c <= '9' ? c - '0' : -1;
            if (d < 0)
                return 0;
            cp = cp * (hex ? 16 : 10) + (unsigned)d;
            if (cp > 0x10FFFF)
                return 0;
        }
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        put_utf8(out, cap, n, cp);
        return rl;
    }
    for (size_t k = 0; k < sizeof(pre) / sizeof(pre[0]); k++) {
        if (strlen(pre[k].name) == nl && memcmp(pre[k].name, r, nl) == 0) {
            put(out, cap, n, pre[k].c);
            return rl;
        }
    }
    return 0;
}

/* Skips a tag starting at raw[i] == '<' (not a CDATA section), honouring quoted attribute
 * values. Returns the index after its '>' (or len). */
static size_t skip_tag(const char *raw, size_t len, size_t i)
{
    char q = 0;
    for (i++; i < len; i++) {
        char c = raw[i];
        if (q) {
            if (c == q)
                q = 0;
        } else if (c == '\'' || c == '"') {
            q = c;
        } else if (c == '>') {
            return i + 1;
        }
    }
    return len;
}

/* Index of the first c in raw[i..len), or len. */
static size_t find(const char *raw, size_t len, size_t i, char c)
{
    const char *p = i < len ? memchr(raw + i, c, len - i) : NULL;
    return p != NULL ? (size_t)(p - raw) : len;
}

size_t xmpp_decode(const char *raw, size_t len, char *out, size_t cap)
{
    size_t n = 0, i = 0;
    /* the next '&' and '<' at or after i, each found with memchr once per occurrence */
    size_t amp = find(raw, len, 0, '&'), lt = find(raw, len, 0, '<');
    while (i < len) {
        if (amp < i)
            amp = find(raw, len, i, '&');
        if (lt < i)
            lt = find(raw, len, i, '<');
        size_t j = amp < lt ? amp : lt;
        if (j > i) {
            /* a run of plain bytes */
            size_t run = j - i;
            if (n < cap)
                memcpy(out + n, raw + i, run < cap - n ? run : cap - n);
            n += run;
            i = j;
            continue;
        }
        if (raw[i] == '&') {
            size_t rl = decode_ref(raw, len, i, out, cap, &n);
            if (rl == 0) {
                put(out, cap, &n, '&');
                i++;
            } else {
                i += rl;
            }
        } else if (len - i >= 9 && memcmp(raw + i, "<![CDATA[", 9) == 0) {
            size_t b = i + 9, e = b;
            for (;;) {
                e = find(raw, len, e, ']');
                if (e == len || (len - e >= 3 && raw[e + 1] == ']' && raw[e + 2] == '>'))
                    break;
                e++;
            }
            if (n < cap)
                memcpy(out + n, raw + b, e - b < cap - n ? e - b : cap - n);
            n += e - b;
            i = e < len ? e + 3 : len;
        } else {
            i = skip_tag(raw, len, i);
        }
    }
    return n;
}

bool xmpp_raw_eq(const char *raw, size_t len, const char *lit)
{
    size_t ll = strlen(lit);
    if (memchr(raw, '&', len) == NULL)
        return len == ll && memcmp(raw, lit, ll) == 0;
    if (len < ll)
        return false;
    char tmp[256];
    if (ll >= sizeof(tmp))
        return false;
    size_t n = xmpp_decode(raw, len, tmp, sizeof(tmp));
    return n == ll && memcmp(tmp, lit, ll) == 0;
}

size_t xmpp_escape(const char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (in[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            put(out, cap, &n, in[i]);
            continue;
        }
        for (; *rep != '\0'; rep++)
            put(out, cap, &n, *rep);
    }
    return n;
}
