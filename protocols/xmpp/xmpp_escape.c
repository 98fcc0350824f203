/* XML text helpers: see xmpp_escape.h. */
#include "protocols/xmpp/xmpp_escape.h"

#include <string.h>

#include "protocols/utf8.h"
#include "protocols/xmlref.h"

static void put(char *out, size_t cap, size_t *n, char c)
{
    if (*n < cap)
        out[*n] = c;
    (*n)++;
}

/* Decodes the reference starting at raw[i] == '&' (xml_ref()). Returns the bytes it spans (0 if
 * it is not a valid reference: the caller copies the '&' through). */
static size_t decode_ref(const char *raw, size_t len, size_t i, char *out, size_t cap, size_t *n)
{
    uint32_t cp;
    size_t rl = xml_ref(raw + i, len - i, 0, &cp);
    if (rl > 0) {
        char u[4];
        size_t ul = utf8_encode(cp, u);
        for (size_t k = 0; k < ul; k++)
            put(out, cap, n, u[k]);
    }
    return rl;
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
