/* Fuzz target for the xmpp-c2s rewriters together with the parser (proxy/xmpp_c2s.c): SM ack
 * rewriting with position-aware tracks, stream-features rewriting, bind and roster
 * extraction, child iteration. Input: a flags byte (bit 0: the stream comes from the server;
 * bit 1: strip -PLUS), a byte driving the simulated drops/inserts, then the stream.
 * Checks besides memory safety: every rewritten element parses back (after the same stream
 * header) as exactly one element of the same kind; a rewritten ack carries exactly the
 * corrected h; children lie inside the content, in order; extracted JIDs lie inside the
 * element; a track never applies more records than it was given. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/xmpp/xmpp_parser.h"
#include "proxy/xmpp_c2s.h"

#define OUT_MAX 65536

static char out[OUT_MAX];
static char reparse[OUT_MAX + 512];

static void check(int cond)
{
    if (!cond)
        abort();
}

static const char hdr[] = "<stream:stream xmlns='jabber:client' "
                          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/* Parses hdr + el[0..n): exactly one element of kind, covering all n bytes. Returns its h. */
static void reparse_one(const char *el, size_t n, enum xmpp_kind kind, struct xmpp_event *ev,
                        struct xmpp_parser *p)
{
    size_t hl = sizeof(hdr) - 1;
    check(hl + n <= sizeof(reparse));
    memcpy(reparse, hdr, hl);
    memcpy(reparse + hl, el, n);
    check(xmpp_parser_init(p, NULL) == SW_OK);
    check(xmpp_parser_feed(p, reparse, hl + n, 0, ev) == SW_OK);
    check(ev->type == XMPP_EV_STREAM_OPEN);
    check(xmpp_parser_feed(p, reparse, hl + n, 0, ev) == SW_OK);
    check(ev->type == XMPP_EV_ELEMENT && ev->kind == kind && ev->size == n);
}

struct span_check {
    const char *lo, *hi;
    int n;
};

static void item_cb(void *arg, const char *jid, size_t len, bool remove)
{
    struct span_check *sc = arg;
    (void)remove;
    check(jid >= sc->lo && jid + len <= sc->hi);
    sc->n++;
}

static void on_element(const struct xmpp_event *ev, bool from_server, bool strip_plus,
                       struct xmpp_c2s_sm_track *tr, uint32_t *rng, uint32_t *records)
{
    static struct xmpp_parser p2;
    struct xmpp_event e2;
    const char *d = ev->data;

    /* children: in order, inside the content */
    size_t pos = 0, last_end = 0;
    struct xmpp_c2s_child c;
    int nchild = 0;
    while (nchild < 10000 && xmpp_c2s_next_child(d + ev->content.pos, ev->content.len, &pos, &c)) {
        check(c.start >= last_end && c.end > c.start && c.end <= ev->content.len);
        check(c.local >= d + ev->content.pos &&
              c.local + c.local_len <= d + ev->content.pos + c.end);
        last_end = c.end;
        nchild++;
    }

    if (ev->kind == XMPP_EL_FEATURES && ev->content.set && !ev->empty) {
        size_t n = xmpp_c2s_rewrite_features(d, ev->size, ev->content.pos, ev->content.len, true,
                                             strip_plus, 4096, 60, out, sizeof(out));
        if (n > 0 && n <= sizeof(out))
            reparse_one(out, n, XMPP_EL_FEATURES, &e2, &p2);
    }
    if (ev->kind == XMPP_EL_IQ && ev->content.set) {
        const char *j;
        size_t jl;
        if (xmpp_c2s_bind_jid(d, ev->size, ev->content.pos, ev->content.len, &j, &jl))
            check(j >= d && j + jl <= d + ev->size && jl > 0);
        struct span_check sc = {d, d + ev->size, 0};
        int n = xmpp_c2s_roster_items(d, ev->size, ev->content.pos, ev->content.len, item_cb, &sc);
        check(n == -1 || n == sc.n);
    }

    /* simulate the proxy's drops and inserts since the last ack */
    *rng = *rng * 1103515245u + 12345u;
    unsigned ops = (*rng >> 16) % 8;
    for (unsigned k = 0; k < ops; k++) {
        *rng = *rng * 1103515245u + 12345u;
        switch ((*rng >> 16) % 3) {
        case 0:
            xmpp_c2s_track_delivered(tr);
            break;
        case 1:
            xmpp_c2s_track_dropped(tr);
            (*records)++;
            break;
        default:
            xmpp_c2s_track_inserted(tr);
            (*records)++;
            break;
        }
    }
    bool ack = ev->kind == XMPP_EL_SM_A || ev->kind == XMPP_EL_SM_RESUME ||
               ev->kind == XMPP_EL_SM_RESUMED || ev->kind == XMPP_EL_SM_FAILED;
    if (!ack)
        return;
    uint32_t h;
    if (!ev->h.set || !xmpp_c2s_sm_parse_h(d + ev->h.pos, ev->h.len, &h))
        return;
    struct xmpp_c2s_sm_dir corr = xmpp_c2s_track_ack(tr, h);
    check(corr.dropped + corr.inserted <= *records); /* no more than recorded (no wrap here) */
    struct xmpp_c2s_sm sm = {0};
    if (from_server)
        sm.c2s = corr;
    else
        sm.s2c = corr;
    size_t n = xmpp_c2s_sm_fix_event(&sm, from_server, ev, out, sizeof(out));
    if (n == 0)
        return;
    check(n <= sizeof(out));
    reparse_one(out, n, ev->kind, &e2, &p2);
    uint32_t h2 = 0;
    check(e2.h.set && xmpp_c2s_sm_parse_h(e2.data + e2.h.pos, e2.h.len, &h2));
    check(h2 == xmpp_c2s_sm_fix_h(h, &corr));
    if (ev->kind == XMPP_EL_SM_RESUME || ev->kind == XMPP_EL_SM_RESUMED) {
        xmpp_c2s_track_resume(tr, h);
        check(tr->delivered == h && tr->n == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xmpp_parser p;
    static struct xmpp_c2s_sm_track tr;
    struct xmpp_event ev;
    if (size < 2)
        return 0;
    bool from_server = data[0] & 1, strip_plus = data[0] & 2;
    uint32_t rng = data[1], records = 0;
    const char *s = (const char *)data + 2;
    size_t len = size - 2;
    memset(&tr, 0, sizeof(tr));
    check(xmpp_parser_init(&p, NULL) == SW_OK);
    int rc;
    while ((rc = xmpp_parser_feed(&p, s, len, 0, &ev)) == SW_OK) {
        if (ev.type == XMPP_EV_ELEMENT) {
            on_element(&ev, from_server, strip_plus, &tr, &rng, &records);
            if (ev.kind == XMPP_EL_PROCEED || ev.kind == XMPP_EL_SASL_SUCCESS)
                xmpp_parser_restart(&p);
        }
    }
    check(rc == SW_AGAIN || rc == SW_ERROR);
    return 0;
}
