/* XMPP client-to-server filtering: pure helpers (see xmpp_c2s.h for the SM accounting). */
#include "proxy/xmpp_c2s.h"

#include <stdio.h>
#include <string.h>

#include "protocols/xmpp/xmpp_escape.h"

#define XC2S_ATTR_MAX 3072 /* a JID is at most 3071 bytes (RFC 7622); ids get the same bound */

uint32_t xmpp_c2s_sm_fix_h(uint32_t h, const struct xmpp_c2s_sm_dir *dir)
{
    /* unsigned arithmetic wraps mod 2^32, exactly the XEP-0198 counter semantics */
    return h + dir->dropped - dir->inserted;
}

bool xmpp_c2s_sm_parse_h(const char *raw, size_t len, uint32_t *h)
{
    uint64_t v = 0;

    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] < '0' || raw[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(raw[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *h = (uint32_t)v;
    return true;
}

/* Appends src[0..n) to out at *pos, writing only what fits in cap; *pos always advances. */
static void put(char *out, size_t cap, size_t *pos, const char *src, size_t n)
{
    if (*pos < cap)
        memcpy(out + *pos, src, n <= cap - *pos ? n : cap - *pos);
    *pos += n;
}

static void puts_lit(char *out, size_t cap, size_t *pos, const char *s)
{
    put(out, cap, pos, s, strlen(s));
}

/* Appends in[0..n) escaped. */
static void put_escaped(char *out, size_t cap, size_t *pos, const char *in, size_t n)
{
    size_t room = *pos < cap ? cap - *pos : 0;
    *pos += xmpp_escape(in, n, room > 0 ? out + *pos : NULL, room);
}

size_t xmpp_c2s_sm_rewrite(const char *el, size_t len, size_t h_pos, size_t h_len,
                           const struct xmpp_c2s_sm_dir *dir, char *out, size_t cap)
{
    uint32_t h = 0;
    char num[16];
    size_t pos = 0;
    int n;

    if (h_pos > len || h_len > len - h_pos || !xmpp_c2s_sm_parse_h(el + h_pos, h_len, &h))
        return 0;
    n = snprintf(num, sizeof(num), "%u", (unsigned)xmpp_c2s_sm_fix_h(h, dir));
    put(out, cap, &pos, el, h_pos);
    put(out, cap, &pos, num, (size_t)n);
    put(out, cap, &pos, el + h_pos + h_len, len - h_pos - h_len);
    return pos;
}

bool xmpp_c2s_sm_counts(enum xmpp_kind kind)
{
    return kind == XMPP_EL_MESSAGE || kind == XMPP_EL_PRESENCE || kind == XMPP_EL_IQ;
}

size_t xmpp_c2s_sm_fix_event(const struct xmpp_c2s_sm *sm, bool from_server,
                             const struct xmpp_event *ev, char *out, size_t cap)
{
    const struct xmpp_c2s_sm_dir *dir = NULL;

    if (ev->type != XMPP_EV_ELEMENT || !ev->h.set)
        return 0;
    if (from_server && (ev->kind == XMPP_EL_SM_A || ev->kind == XMPP_EL_SM_RESUMED ||
                        ev->kind == XMPP_EL_SM_FAILED))
        dir = &sm->c2s;
    else if (!from_server && (ev->kind == XMPP_EL_SM_A || ev->kind == XMPP_EL_SM_RESUME))
        dir = &sm->s2c;
    if (dir == NULL || dir->dropped == dir->inserted)
        return 0; /* nothing to correct: forward the slice, no copy */
    return xmpp_c2s_sm_rewrite(ev->data, ev->size, ev->h.pos, ev->h.len, dir, out, cap);
}

size_t xmpp_c2s_bare_len(const char *jid, size_t len)
{
    const char *slash = memchr(jid, '/', len);
    return slash != NULL ? (size_t)(slash - jid) : len;
}

size_t xmpp_c2s_build_shim(double score, const char *reasons, char *out, size_t cap)
{
    char num[32];
    size_t pos = 0;
    int n = snprintf(num, sizeof(num), "%.1f", score);

    puts_lit(out, cap, &pos,
             "<headers xmlns='http://jabber.org/protocol/shim'>"
             "<header name='X-Spam-Flag'>YES</header><header name='X-Spam-Score'>");
    put(out, cap, &pos, num, n > 0 ? (size_t)n : 0);
    puts_lit(out, cap, &pos, "</header><header name='X-Spam-Reasons'>");
    if (reasons != NULL)
        put_escaped(out, cap, &pos, reasons, strlen(reasons));
    puts_lit(out, cap, &pos, "</header></headers>");
    return pos;
}

/* Appends " name='value'" with the raw value decoded then escaped; false if it is too long. */
static bool put_attr(char *out, size_t cap, size_t *pos, const char *name, const char *raw,
                     size_t len)
{
    char dec[XC2S_ATTR_MAX];
    size_t n;

    if (raw == NULL || len == 0)
        return true;
    n = xmpp_decode(raw, len, dec, sizeof(dec));
    if (n > sizeof(dec))
        return false;
    puts_lit(out, cap, pos, " ");
    puts_lit(out, cap, pos, name);
    puts_lit(out, cap, pos, "='");
    put_escaped(out, cap, pos, dec, n);
    puts_lit(out, cap, pos, "'");
    return true;
}

size_t xmpp_c2s_build_bounce(const char *to_raw, size_t to_len, const char *from_raw,
                             size_t from_len, const char *id_raw, size_t id_len, const char *text,
                             char *out, size_t cap)
{
    size_t pos = 0;

    puts_lit(out, cap, &pos, "<message type='error'");
    /* the bounce goes back to the sender: its from is the original to and vice versa */
    if (!put_attr(out, cap, &pos, "from", to_raw, to_len) ||
        !put_attr(out, cap, &pos, "to", from_raw, from_len) ||
        !put_attr(out, cap, &pos, "id", id_raw, id_len))
        return 0;
    puts_lit(out, cap, &pos,
             "><error type='modify'>"
             "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
             "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>");
    if (text != NULL)
        put_escaped(out, cap, &pos, text, strlen(text));
    puts_lit(out, cap, &pos, "</text></error></message>");
    return pos;
}
