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

/* --- light scanning of accepted XML -------------------------------------------------------- */

static bool name_char(char c)
{
    return c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/' && c != '>' && c != '=';
}

/* End of the tag starting at t[i] == '<' (index after its '>'), quote-aware; len if none. */
static size_t tag_end(const char *t, size_t len, size_t i)
{
    char q = 0;
    for (i++; i < len; i++) {
        char c = t[i];
        if (q != 0) {
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

/* Skips a CDATA section starting at t[i] ("<![CDATA["); index after "]]>" or len. */
static size_t cdata_end(const char *t, size_t len, size_t i)
{
    for (i += 9; i + 2 < len; i++)
        if (t[i] == ']' && t[i + 1] == ']' && t[i + 2] == '>')
            return i + 3;
    return len;
}

static bool is_cdata(const char *t, size_t len, size_t i)
{
    return len - i >= 9 && memcmp(t + i, "<![CDATA[", 9) == 0;
}

bool xmpp_c2s_next_child(const char *content, size_t len, size_t *pos, struct xmpp_c2s_child *c)
{
    size_t i = *pos;
    while (i < len) {
        if (content[i] != '<') {
            i++;
            continue;
        }
        if (is_cdata(content, len, i)) {
            i = cdata_end(content, len, i);
            continue;
        }
        if (i + 1 < len && content[i + 1] == '/') { /* stray end tag: not ours to judge */
            i = tag_end(content, len, i);
            continue;
        }
        size_t start = i, n = i + 1;
        while (n < len && name_char(content[n]))
            n++;
        const char *qn = content + i + 1;
        size_t qlen = n - (i + 1);
        const char *colon = memchr(qn, ':', qlen);
        c->start = start;
        c->local = colon != NULL ? colon + 1 : qn;
        c->local_len = colon != NULL ? qlen - (size_t)(colon + 1 - qn) : qlen;
        /* walk to the matching end, counting depth */
        size_t depth = 0;
        while (i < len) {
            if (content[i] != '<') {
                i++;
                continue;
            }
            if (is_cdata(content, len, i)) {
                i = cdata_end(content, len, i);
                continue;
            }
            bool end_tag = i + 1 < len && content[i + 1] == '/';
            size_t e = tag_end(content, len, i);
            bool empty = !end_tag && e >= 2 && content[e - 2] == '/';
            i = e;
            if (end_tag)
                depth--;
            else if (!empty)
                depth++;
            if (depth == 0)
                break;
        }
        c->end = i;
        *pos = i;
        return true;
    }
    *pos = len;
    return false;
}

bool xmpp_c2s_attr(const char *tag, size_t len, const char *name, const char **val, size_t *val_len)
{
    size_t nl = strlen(name);
    size_t i = 1;
    while (i < len && name_char(tag[i])) /* element name */
        i++;
    while (i < len && tag[i] != '>') {
        while (i < len && (tag[i] == ' ' || tag[i] == '\t' || tag[i] == '\r' || tag[i] == '\n'))
            i++;
        size_t a = i;
        while (i < len && name_char(tag[i]))
            i++;
        size_t an = i - a;
        while (i < len && tag[i] != '=' && tag[i] != '>' && tag[i] != '/')
            i++;
        if (i >= len || tag[i] != '=')
            return false;
        i++;
        while (i < len && tag[i] != '\'' && tag[i] != '"')
            i++;
        if (i >= len)
            return false;
        char q = tag[i++];
        size_t v = i;
        while (i < len && tag[i] != q)
            i++;
        if (i >= len)
            return false;
        if (an == nl && memcmp(tag + a, name, nl) == 0) {
            *val = tag + v;
            *val_len = i - v;
            return true;
        }
        i++;
    }
    return false;
}

static bool has_ns(const char *t, size_t len, const char *ns)
{
    const char *v;
    size_t vl;
    return xmpp_c2s_attr(t, len, "xmlns", &v, &vl) && xmpp_raw_eq(v, vl, ns);
}

static bool local_is(const struct xmpp_c2s_child *c, const char *name)
{
    return c->local_len == strlen(name) && memcmp(c->local, name, c->local_len) == 0;
}

/* Content of a child c of base: [cs, ce) relative to base. False for an empty element. */
static bool child_content(const char *base, const struct xmpp_c2s_child *c, size_t *cs, size_t *ce)
{
    size_t e = tag_end(base, c->end, c->start);
    if (e >= 2 && base[e - 2] == '/')
        return false;
    size_t k = c->end;
    while (k > e && base[k - 1] != '<')
        k--;
    if (k <= e)
        return false;
    *cs = e;
    *ce = k - 1;
    return true;
}

static bool parse_u32_text(const char *t, size_t len, uint32_t *v)
{
    while (len > 0 && (t[0] == ' ' || t[0] == '\n' || t[0] == '\t' || t[0] == '\r')) {
        t++;
        len--;
    }
    while (len > 0 &&
           (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\t' || t[len - 1] == '\r'))
        len--;
    return xmpp_c2s_sm_parse_h(t, len, v);
}

#define XC2S_LIMITS_NS "urn:xmpp:stream-limits:0"

size_t xmpp_c2s_rewrite_features(const char *el, size_t len, size_t cpos, size_t clen,
                                 bool strip_tls, bool strip_plus, uint32_t max_bytes,
                                 uint32_t idle_max, char *out, size_t cap)
{
    if (cpos > len || clen > len - cpos)
        return 0;
    const char *content = el + cpos;
    size_t o = 0, copied = 0, pos = 0; /* copied: content bytes already emitted */
    bool changed = false, limits = false;
    struct xmpp_c2s_child c;
    char num[16];
    put(out, cap, &o, el, cpos);
    while (xmpp_c2s_next_child(content, clen, &pos, &c)) {
        const char *t = content + c.start;
        size_t tl = c.end - c.start;
        if (strip_tls && local_is(&c, "starttls") &&
            has_ns(t, tl, "urn:ietf:params:xml:ns:xmpp-tls")) {
            put(out, cap, &o, content + copied, c.start - copied);
            copied = c.end;
            changed = true;
            continue;
        }
        if (strip_plus && local_is(&c, "sasl-channel-binding")) {
            /* XEP-0440: the types the server offers bind to its TLS, not the client's */
            put(out, cap, &o, content + copied, c.start - copied);
            copied = c.end;
            changed = true;
            continue;
        }
        if (strip_plus && local_is(&c, "mechanisms") &&
            has_ns(t, tl, "urn:ietf:params:xml:ns:xmpp-sasl")) {
            size_t ms, me, p3 = 0;
            struct xmpp_c2s_child m;
            if (!child_content(t, &(struct xmpp_c2s_child){0, tl, NULL, 0}, &ms, &me))
                continue;
            const char *in = t + ms;
            while (xmpp_c2s_next_child(in, me - ms, &p3, &m)) {
                size_t vs, ve;
                if (!local_is(&m, "mechanism") || !child_content(in, &m, &vs, &ve) || ve - vs < 5 ||
                    memcmp(in + ve - 5, "-PLUS", 5) != 0)
                    continue;
                size_t a = (size_t)(in + m.start - content), b = (size_t)(in + m.end - content);
                put(out, cap, &o, content + copied, a - copied);
                copied = b;
                changed = true;
            }
            continue;
        }
        if (!local_is(&c, "limits") || !has_ns(t, tl, XC2S_LIMITS_NS))
            continue;
        limits = true;
        size_t cs, ce, p2 = 0;
        if (!child_content(t, &(struct xmpp_c2s_child){0, tl, NULL, 0}, &cs, &ce))
            continue;
        struct xmpp_c2s_child g;
        const char *in = t + cs;
        while (xmpp_c2s_next_child(in, ce - cs, &p2, &g)) {
            uint32_t lim = local_is(&g, "max-bytes")      ? max_bytes
                           : local_is(&g, "idle-seconds") ? idle_max
                                                          : 0;
            size_t vs, ve;
            uint32_t v;
            if (lim == 0 || !child_content(in, &g, &vs, &ve) ||
                !parse_u32_text(in + vs, ve - vs, &v) || v <= lim)
                continue;
            size_t abs_vs = (size_t)(in + vs - content), abs_ve = (size_t)(in + ve - content);
            put(out, cap, &o, content + copied, abs_vs - copied);
            int n = snprintf(num, sizeof(num), "%u", lim);
            put(out, cap, &o, num, (size_t)n);
            copied = abs_ve;
            changed = true;
        }
    }
    if (!limits && max_bytes > 0) {
        put(out, cap, &o, content + copied, clen - copied);
        copied = clen;
        int n = snprintf(num, sizeof(num), "%u", max_bytes);
        static const char a[] = "<limits xmlns='" XC2S_LIMITS_NS "'><max-bytes>";
        static const char b[] = "</max-bytes></limits>";
        put(out, cap, &o, a, sizeof(a) - 1);
        put(out, cap, &o, num, (size_t)n);
        put(out, cap, &o, b, sizeof(b) - 1);
        changed = true;
    }
    if (!changed)
        return 0;
    put(out, cap, &o, content + copied, clen - copied);
    put(out, cap, &o, el + cpos + clen, len - cpos - clen);
    return o;
}

bool xmpp_c2s_bind_jid(const char *el, size_t len, size_t cpos, size_t clen, const char **jid,
                       size_t *jid_len)
{
    if (cpos > len || clen > len - cpos)
        return false;
    const char *content = el + cpos;
    size_t pos = 0;
    struct xmpp_c2s_child c;
    while (xmpp_c2s_next_child(content, clen, &pos, &c)) {
        const char *t = content + c.start;
        size_t tl = c.end - c.start, cs, ce, p2 = 0;
        if (!local_is(&c, "bind") || !has_ns(t, tl, "urn:ietf:params:xml:ns:xmpp-bind") ||
            !child_content(t, &(struct xmpp_c2s_child){0, tl, NULL, 0}, &cs, &ce))
            continue;
        struct xmpp_c2s_child g;
        while (xmpp_c2s_next_child(t + cs, ce - cs, &p2, &g)) {
            size_t vs, ve;
            if (local_is(&g, "jid") && child_content(t + cs, &g, &vs, &ve)) {
                *jid = t + cs + vs;
                *jid_len = ve - vs;
                return *jid_len > 0;
            }
        }
    }
    return false;
}

int xmpp_c2s_roster_items(const char *el, size_t len, size_t cpos, size_t clen,
                          void (*cb)(void *arg, const char *jid, size_t jid_len, bool remove),
                          void *arg)
{
    if (cpos > len || clen > len - cpos)
        return -1;
    const char *content = el + cpos;
    size_t pos = 0;
    struct xmpp_c2s_child c;
    while (xmpp_c2s_next_child(content, clen, &pos, &c)) {
        const char *t = content + c.start;
        size_t tl = c.end - c.start, cs, ce, p2 = 0;
        if (!local_is(&c, "query") || !has_ns(t, tl, "jabber:iq:roster"))
            continue;
        int n = 0;
        if (!child_content(t, &(struct xmpp_c2s_child){0, tl, NULL, 0}, &cs, &ce))
            return 0;
        struct xmpp_c2s_child g;
        while (xmpp_c2s_next_child(t + cs, ce - cs, &p2, &g)) {
            const char *it = t + cs + g.start, *v, *sub;
            size_t il = g.end - g.start, vl, sl;
            if (!local_is(&g, "item") || !xmpp_c2s_attr(it, il, "jid", &v, &vl))
                continue;
            bool remove =
                xmpp_c2s_attr(it, il, "subscription", &sub, &sl) && xmpp_raw_eq(sub, sl, "remove");
            cb(arg, v, vl, remove);
            n++;
        }
        return n;
    }
    return -1;
}

/* --- position-aware SM accounting ------------------------------------------------------ */

static void track_push(struct xmpp_c2s_sm_track *t, bool insert)
{
    if (t->n == XMPP_C2S_SM_MARKS) { /* full: apply the oldest early (see the header) */
        if (t->insert[t->head])
            t->base.inserted++;
        else
            t->base.dropped++;
        t->head = (uint16_t)((t->head + 1) % XMPP_C2S_SM_MARKS);
        t->n--;
    }
    unsigned i = (t->head + t->n) % XMPP_C2S_SM_MARKS;
    t->pos[i] = t->delivered;
    t->insert[i] = insert;
    t->n++;
}

void xmpp_c2s_track_delivered(struct xmpp_c2s_sm_track *t)
{
    t->delivered++;
}

void xmpp_c2s_track_dropped(struct xmpp_c2s_sm_track *t)
{
    track_push(t, false);
}

void xmpp_c2s_track_inserted(struct xmpp_c2s_sm_track *t)
{
    t->delivered++;
    track_push(t, true);
}

struct xmpp_c2s_sm_dir xmpp_c2s_track_ack(struct xmpp_c2s_sm_track *t, uint32_t h)
{
    while (t->n > 0 && (int32_t)(t->pos[t->head] - h) <= 0) {
        if (t->insert[t->head])
            t->base.inserted++;
        else
            t->base.dropped++;
        t->head = (uint16_t)((t->head + 1) % XMPP_C2S_SM_MARKS);
        t->n--;
    }
    return t->base;
}

void xmpp_c2s_track_resume(struct xmpp_c2s_sm_track *t, uint32_t h)
{
    (void)xmpp_c2s_track_ack(t, h);
    t->n = 0;
    t->head = 0;
    t->delivered = h;
}
