/* Fuzz target for protocols/xmpp/xmpp_parser.c and xmpp_escape.c. Input: a flags byte (bit 0
 * tight limits from the next three bytes), then the stream. Besides memory safety it checks
 * the parser contract: events tile the stream, their spans lie inside their bytes, and feeding
 * the stream whole, one byte at a time and in pseudo-random pieces (each piece in a fresh
 * allocation holding only the retained bytes) gives exactly the same events (adjacent
 * whitespace events merged), the same decoded bodies and the same error at the same offset.
 * The harness restarts the parser after <proceed/> and <success/>, as the proxy does. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/xmpp/xmpp_escape.h"
#include "protocols/xmpp/xmpp_parser.h"

#define EVENTS_MAX 4096

struct rec {
    int type, kind;
    uint64_t off;
    size_t size;
    struct xmpp_span sp[14];
    bool empty, server_ns, xml_decl, has_shim;
    unsigned encrypted;
    size_t ns_len;
    uint64_t ns_hash, body_hash;
    size_t body_dlen;
};

struct trace {
    size_t n;
    struct rec r[EVENTS_MAX];
    int rc;
    enum xmpp_error err;
    uint64_t err_pos, keep;
};

static struct trace t_whole, t_other;

static void check(int cond)
{
    if (!cond)
        abort();
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void record(struct trace *t, const struct xmpp_event *ev, const uint8_t *stream, size_t len)
{
    const struct rec *last = t->n > 0 ? &t->r[t->n - 1] : NULL;
    uint64_t expect = last == NULL ? 0 : last->off + last->size;
    check(ev->off == expect);
    check(ev->size > 0 && ev->off + ev->size <= len);
    check(memcmp(ev->data, stream + ev->off, ev->size) == 0);
    const struct xmpp_span sp[14] = {ev->name,    ev->local,  ev->to,   ev->from,     ev->type_attr,
                                     ev->id,      ev->lang,   ev->h,    ev->previd,   ev->version,
                                     ev->content, ev->prefix, ev->body, {0, 0, false}};
    for (size_t k = 0; k < 14; k++) {
        check(sp[k].pos + sp[k].len <= ev->size);
        if (!sp[k].set)
            check(sp[k].pos == 0 && sp[k].len == 0);
    }
    char tmp[64];
    for (size_t k = 2; k < 9; k++) {
        if (!sp[k].set)
            continue;
        size_t n = xmpp_decode(ev->data + sp[k].pos, sp[k].len, tmp, sizeof(tmp));
        check(n <= sp[k].len);
        /* attribute values are fully decodable: no '<' */
        check(memchr(ev->data + sp[k].pos, '<', sp[k].len) == NULL);
    }
    if (ev->type == XMPP_EV_WHITESPACE) {
        for (size_t k = 0; k < ev->size; k++)
            check(strchr(" \t\r\n", ev->data[k]) != NULL && ev->data[k] != 0);
        if (last != NULL && last->type == XMPP_EV_WHITESPACE) {
            t->r[t->n - 1].size += ev->size; /* split runs merge */
            return;
        }
    } else if (ev->type == XMPP_EV_ELEMENT || ev->type == XMPP_EV_STREAM_CLOSE) {
        check(ev->data[0] == '<' && ev->data[ev->size - 1] == '>');
        check(ev->name.set && ev->name.len > 0);
    }
    if (ev->type == XMPP_EV_ELEMENT)
        check(ev->content.set);
    check(ev->ns_len == 0 || ev->ns != NULL);
    check(t->n < EVENTS_MAX);
    struct rec *r = &t->r[t->n++];
    memset(r, 0, sizeof(*r));
    r->type = ev->type;
    r->kind = ev->kind;
    r->off = ev->off;
    r->size = ev->size;
    /* field by field: a span's padding bytes are whatever the parser's stack held, and same()
     * compares whole records */
    for (size_t k = 0; k < 14; k++) {
        r->sp[k].pos = sp[k].pos;
        r->sp[k].len = sp[k].len;
        r->sp[k].set = sp[k].set;
    }
    r->empty = ev->empty;
    r->server_ns = ev->server_ns;
    r->xml_decl = ev->xml_decl;
    r->has_shim = ev->has_shim;
    r->encrypted = ev->encrypted;
    r->ns_len = ev->ns_len;
    r->ns_hash = ev->ns != NULL ? fnv(ev->ns, ev->ns_len) : 0;
    if (ev->body.set) {
        static char body[1 << 16];
        size_t n = xmpp_decode(ev->data + ev->body.pos, ev->body.len, body, sizeof(body));
        check(n <= ev->body.len);
        r->body_dlen = n;
        r->body_hash = fnv(body, n < sizeof(body) ? n : sizeof(body));
        /* escaping the decoded text and decoding it again gives the text back */
        if (n <= 256) {
            char esc[256 * 6], back[256];
            size_t en = xmpp_escape(body, n, esc, sizeof(esc));
            check(en <= sizeof(esc));
            check(xmpp_decode(esc, en, back, sizeof(back)) == n);
            check(memcmp(back, body, n) == 0);
        }
    }
}

/* mode 0: whole; 1: one byte at a time; 2: pseudo-random pieces, each a fresh copy */
static void run(const struct xmpp_limits *lim, const uint8_t *s, size_t len, int mode,
                uint32_t seed, struct trace *t)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    uint32_t rng = seed;
    check(xmpp_parser_init(&p, lim) == SW_OK);
    t->n = 0;
    t->rc = SW_AGAIN;
    t->err = XMPP_ERR_NONE;
    t->err_pos = 0;
    size_t fed = 0;
    do {
        if (mode == 0) {
            fed = len;
        } else if (mode == 1) {
            fed = fed + 1 < len ? fed + 1 : len;
        } else {
            rng = rng * 1103515245u + 12345u;
            size_t step = (rng >> 16) % 61;
            fed = fed + step < len ? fed + step : len;
        }
        uint64_t keep = xmpp_parser_keep(&p);
        check(keep <= fed);
        size_t blen = fed - (size_t)keep;
        char *copy = NULL;
        const char *b = (const char *)s + keep;
        if (mode == 2) {
            copy = malloc(blen > 0 ? blen : 1);
            check(copy != NULL);
            memcpy(copy, s + keep, blen);
            b = copy;
        }
        int rc;
        while ((rc = xmpp_parser_feed(&p, b, blen, keep, &ev)) == SW_OK) {
            record(t, &ev, s, len);
            check(xmpp_parser_keep(&p) == ev.off + ev.size);
            if (ev.type == XMPP_EV_ELEMENT &&
                (ev.kind == XMPP_EL_PROCEED || ev.kind == XMPP_EL_SASL_SUCCESS))
                xmpp_parser_restart(&p);
        }
        free(copy);
        t->rc = rc;
        if (rc == SW_ERROR) {
            check(p.err != XMPP_ERR_NONE && p.err_pos <= len && p.err_msg != NULL);
            check(xmpp_error_condition(p.err)[0] != '\0');
            t->err = p.err;
            t->err_pos = p.err_pos;
            break;
        }
        check(rc == SW_AGAIN);
    } while (fed < len);
    t->keep = xmpp_parser_keep(&p);
}

static void same(const struct trace *a, const struct trace *b)
{
    check(a->n == b->n);
    check(memcmp(a->r, b->r, a->n * sizeof(a->r[0])) == 0);
    check(a->rc == b->rc);
    check(a->err == b->err && a->err_pos == b->err_pos);
    check(a->keep == b->keep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xmpp_limits lim;
    size_t i = 0;
    if (size < 1)
        return 0;
    xmpp_limits_default(&lim);
    uint8_t flags = data[i++];
    if ((flags & 1) && size - i >= 3) {
        lim.stanza_max = 64 + (size_t)data[i++] * 4;
        lim.depth_max = 1 + data[i] % 8;
        lim.attrs_max = 1 + data[i++] / 32;
        lim.name_max = 8 + data[i] % 16;
        lim.value_max = 16 + (size_t)data[i] % 48;
        lim.ns_max = 2 + data[i++] / 64;
    }
    const uint8_t *s = data + i;
    size_t len = size - i;

    /* the helpers must be safe on arbitrary bytes */
    char tmp[128];
    check(xmpp_decode((const char *)s, len, tmp, sizeof(tmp)) <= len);
    (void)xmpp_raw_eq((const char *)s, len > 64 ? 64 : len, "jabber:client");

    run(&lim, s, len, 0, 0, &t_whole);
    run(&lim, s, len, 1, 0, &t_other);
    same(&t_whole, &t_other);
    run(&lim, s, len, 2, (uint32_t)len * 2654435761u + flags, &t_other);
    same(&t_whole, &t_other);
    return 0;
}
