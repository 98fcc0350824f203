/* Unit tests for the pure helpers of proxy/xmpp_c2s.c: XEP-0198 h correction (including the
 * 2^32 wrap), h parsing and in-place rewriting, bare JIDs, and the SHIM and bounce builders
 * (escaping, truncation contract). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/xmpp/xmpp_parser.h"
#include "proxy/xmpp_c2s.h"

static void test_fix_h(void **state)
{
    struct xmpp_c2s_sm_dir d = {0, 0};
    (void)state;

    assert_int_equal(xmpp_c2s_sm_fix_h(5, &d), 5);
    d.dropped = 3; /* the server received 5 of the client's 8 */
    assert_int_equal(xmpp_c2s_sm_fix_h(5, &d), 8);
    d.inserted = 1; /* plus one bounce the sender never sent */
    assert_int_equal(xmpp_c2s_sm_fix_h(5, &d), 7);
    /* wrap both ways */
    d.dropped = 2;
    d.inserted = 0;
    assert_int_equal(xmpp_c2s_sm_fix_h(UINT32_MAX, &d), 1);
    d.dropped = 0;
    d.inserted = 3;
    assert_int_equal(xmpp_c2s_sm_fix_h(1, &d), UINT32_MAX - 1);
    /* counters that wrapped themselves still give the right difference */
    d.dropped = 1;           /* 2^32 + 1 drops */
    d.inserted = UINT32_MAX; /* 2^32 - 1 inserts: net +2 */
    assert_int_equal(xmpp_c2s_sm_fix_h(10, &d), 12);
}

static void test_parse_h(void **state)
{
    uint32_t h = 77;
    (void)state;

    assert_true(xmpp_c2s_sm_parse_h("0", 1, &h));
    assert_int_equal(h, 0);
    assert_true(xmpp_c2s_sm_parse_h("4294967295", 10, &h));
    assert_int_equal(h, UINT32_MAX);
    assert_true(xmpp_c2s_sm_parse_h("0000000012", 10, &h));
    assert_int_equal(h, 12);
    h = 77;
    assert_false(xmpp_c2s_sm_parse_h("4294967296", 10, &h));
    assert_false(xmpp_c2s_sm_parse_h("", 0, &h));
    assert_false(xmpp_c2s_sm_parse_h("-1", 2, &h));
    assert_false(xmpp_c2s_sm_parse_h("1 ", 2, &h));
    assert_false(xmpp_c2s_sm_parse_h("&#49;", 5, &h));
    assert_false(xmpp_c2s_sm_parse_h("12345678901", 11, &h));
    assert_int_equal(h, 77);
}

static void test_rewrite(void **state)
{
    const char *el = "<a xmlns='urn:xmpp:sm:3' h='41'/>";
    size_t hp = strlen("<a xmlns='urn:xmpp:sm:3' h='");
    struct xmpp_c2s_sm_dir d = {.dropped = 60, .inserted = 1};
    char out[128];
    char small[10];
    size_t n;
    (void)state;

    n = xmpp_c2s_sm_rewrite(el, strlen(el), hp, 2, &d, out, sizeof(out));
    assert_int_equal(n, strlen("<a xmlns='urn:xmpp:sm:3' h='100'/>"));
    assert_memory_equal(out, "<a xmlns='urn:xmpp:sm:3' h='100'/>", n);

    /* truncation: full length returned, only cap bytes written */
    memset(small, 'X', sizeof(small));
    assert_int_equal(xmpp_c2s_sm_rewrite(el, strlen(el), hp, 2, &d, small, 5), n);
    assert_memory_equal(small, "<a xm", 5);
    assert_int_equal(small[5], 'X');

    /* resumed with previd: only h changes */
    el = "<resumed xmlns='urn:xmpp:sm:3' h='4294967295' previd='x'/>";
    hp = strlen("<resumed xmlns='urn:xmpp:sm:3' h='");
    d.dropped = 1;
    d.inserted = 0;
    n = xmpp_c2s_sm_rewrite(el, strlen(el), hp, 10, &d, out, sizeof(out));
    assert_int_equal(n, strlen("<resumed xmlns='urn:xmpp:sm:3' h='0' previd='x'/>"));
    assert_memory_equal(out, "<resumed xmlns='urn:xmpp:sm:3' h='0' previd='x'/>", n);

    /* bad spans and values are refused */
    assert_int_equal(xmpp_c2s_sm_rewrite(el, strlen(el), strlen(el), 1, &d, out, 128), 0);
    assert_int_equal(xmpp_c2s_sm_rewrite(el, strlen(el), 2, SIZE_MAX, &d, out, 128), 0);
    assert_int_equal(xmpp_c2s_sm_rewrite(el, strlen(el), 0, 3, &d, out, 128), 0);
}

static void test_bare(void **state)
{
    (void)state;
    assert_int_equal(xmpp_c2s_bare_len("a@b/c/d", 7), 3);
    assert_int_equal(xmpp_c2s_bare_len("a@b", 3), 3);
    assert_int_equal(xmpp_c2s_bare_len("b/", 2), 1);
    assert_int_equal(xmpp_c2s_bare_len("", 0), 0);
}

static void test_shim(void **state)
{
    const char *want = "<headers xmlns='http://jabber.org/protocol/shim'>"
                       "<header name='X-Spam-Flag'>YES</header>"
                       "<header name='X-Spam-Score'>7.5</header>"
                       "<header name='X-Spam-Reasons'>ID1,&lt;ID2&gt;</header></headers>";
    char out[512];
    size_t n;
    (void)state;

    n = xmpp_c2s_build_shim(7.5, "ID1,<ID2>", out, sizeof(out));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_int_equal(xmpp_c2s_build_shim(7.5, "ID1,<ID2>", NULL, 0), n);
    assert_int_equal(xmpp_c2s_build_shim(7.5, "ID1,<ID2>", out, 7), n);
    n = xmpp_c2s_build_shim(10, NULL, out, sizeof(out));
    out[n] = '\0';
    assert_non_null(strstr(out, ">10.0</header>"));
    assert_non_null(strstr(out, "'X-Spam-Reasons'></header></headers>"));
}

static void test_bounce(void **state)
{
    const char *want = "<message type='error' from='bob@x' to='al&apos;ice@x/r' id='a&amp;b'>"
                       "<error type='modify'>"
                       "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                       "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>spam &amp; co</text>"
                       "</error></message>";
    char out[1024];
    char big[4000];
    size_t n;
    (void)state;

    /* raw values as they came: the from used double quotes with a bare apostrophe */
    n = xmpp_c2s_build_bounce("bob@x", 5, "al'ice@x/r", 10, "a&amp;b", 7, "spam & co", out,
                              sizeof(out));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_int_equal(
        xmpp_c2s_build_bounce("bob@x", 5, "al'ice@x/r", 10, "a&amp;b", 7, "spam & co", NULL, 0), n);

    /* missing attributes are omitted */
    n = xmpp_c2s_build_bounce(NULL, 0, "a@x", 3, NULL, 0, "t", out, sizeof(out));
    out[n] = '\0';
    assert_non_null(strstr(out, "<message type='error' to='a@x'><error type='modify'>"));

    /* an oversized attribute skips the bounce */
    memset(big, 'a', sizeof(big));
    assert_int_equal(
        xmpp_c2s_build_bounce(big, sizeof(big), "a@x", 3, NULL, 0, "t", out, sizeof(out)), 0);
}

/* Feeds a whole stream through the real parser and rewrites every event with
 * xmpp_c2s_sm_fix_event (unchanged events copied as they are) into got. */
static void run_stream(const char *in, const struct xmpp_c2s_sm *sm, bool from_server, char *got,
                       size_t cap)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    size_t n = 0;
    int rc;

    assert_int_equal(xmpp_parser_init(&p, NULL), 0);
    while ((rc = xmpp_parser_feed(&p, in, strlen(in), 0, &ev)) == 0) {
        size_t w = xmpp_c2s_sm_fix_event(sm, from_server, &ev, got + n, cap - n);
        if (w == 0) {
            assert_true(ev.size < cap - n);
            memcpy(got + n, ev.data, ev.size);
            w = ev.size;
        }
        assert_true(w < cap - n);
        n += w;
    }
    assert_int_not_equal(rc, -1);
    got[n] = '\0';
}

static void test_fix_event(void **state)
{
    const char *hdr = "<stream:stream xmlns='jabber:client' xmlns:stream="
                      "'http://etherx.jabber.org/streams' version='1.0'>";
    struct xmpp_c2s_sm sm = {.c2s = {.dropped = 2, .inserted = 0},
                             .s2c = {.dropped = 1, .inserted = 4}};
    char in[1024], got[1024], want[1024];
    (void)state;

    /* from the server: a, resumed, failed use the C2S counters; r and stanzas untouched */
    snprintf(in, sizeof(in),
             "%s<a xmlns='urn:xmpp:sm:3' h='5'/><r xmlns='urn:xmpp:sm:3'/>"
             "<resumed xmlns='urn:xmpp:sm:3' previd='q' h='7'/>"
             "<failed xmlns='urn:xmpp:sm:3' h='0'><item-not-found "
             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
             "<message to='a@b'><body>h='1'</body></message>",
             hdr);
    snprintf(want, sizeof(want),
             "%s<a xmlns='urn:xmpp:sm:3' h='7'/><r xmlns='urn:xmpp:sm:3'/>"
             "<resumed xmlns='urn:xmpp:sm:3' previd='q' h='9'/>"
             "<failed xmlns='urn:xmpp:sm:3' h='2'><item-not-found "
             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
             "<message to='a@b'><body>h='1'</body></message>",
             hdr);
    run_stream(in, &sm, true, got, sizeof(got));
    assert_string_equal(got, want);

    /* from the client: a and resume use the S2C counters (1 dropped, 4 bounces inserted) */
    snprintf(in, sizeof(in),
             "%s<a xmlns='urn:xmpp:sm:3' h='10'/><resume xmlns='urn:xmpp:sm:3' h='2' "
             "previd='q'/><enable xmlns='urn:xmpp:sm:3' resume='true'/>",
             hdr);
    snprintf(want, sizeof(want),
             "%s<a xmlns='urn:xmpp:sm:3' h='7'/><resume xmlns='urn:xmpp:sm:3' h='4294967295' "
             "previd='q'/><enable xmlns='urn:xmpp:sm:3' resume='true'/>",
             hdr);
    run_stream(in, &sm, false, got, sizeof(got));
    assert_string_equal(got, want);

    /* a server-side resumed seen from the client side is not an ack to fix */
    snprintf(in, sizeof(in), "%s<resumed xmlns='urn:xmpp:sm:3' h='3' previd='q'/>", hdr);
    run_stream(in, &sm, false, got, sizeof(got));
    assert_string_equal(got, in);

    /* no correction pending: forwarded unchanged */
    memset(&sm, 0, sizeof(sm));
    snprintf(in, sizeof(in), "%s<a xmlns='urn:xmpp:sm:3' h='3'/>", hdr);
    run_stream(in, &sm, true, got, sizeof(got));
    assert_string_equal(got, in);

    assert_true(xmpp_c2s_sm_counts(XMPP_EL_MESSAGE));
    assert_true(xmpp_c2s_sm_counts(XMPP_EL_PRESENCE));
    assert_true(xmpp_c2s_sm_counts(XMPP_EL_IQ));
    assert_false(xmpp_c2s_sm_counts(XMPP_EL_SM_A));
    assert_false(xmpp_c2s_sm_counts(XMPP_EL_OTHER));
}

/* Parses one element (after a stream header) and returns its event. */
static void one_element(struct xmpp_parser *p, const char *hdr_el, size_t hdr_len,
                        struct xmpp_event *ev)
{
    assert_int_equal(xmpp_parser_init(p, NULL), 0);
    assert_int_equal(xmpp_parser_feed(p, hdr_el, strlen(hdr_el), 0, ev), 0); /* header */
    assert_int_equal(ev->size, hdr_len);
    assert_int_equal(xmpp_parser_feed(p, hdr_el, strlen(hdr_el), 0, ev), 0);
}

#define HDR                                                                                        \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "version='1.0'>"

static void test_features(void **state)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    char out[2048];
    (void)state;

    const char *in =
        HDR "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            "</starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
            "SCRAM-SHA-1</mechanism></mechanisms><limits xmlns='urn:xmpp:stream-limits:0'>"
            "<max-bytes>524288</max-bytes><idle-seconds>30</idle-seconds></limits>"
            "</stream:features>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_int_equal(ev.kind, XMPP_EL_FEATURES);
    size_t n = xmpp_c2s_rewrite_features(ev.data, ev.size, ev.content.pos, ev.content.len, true,
                                         false, 262144, 600, out, sizeof(out));
    const char *want =
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
        "SCRAM-SHA-1</mechanism></mechanisms><limits xmlns='urn:xmpp:stream-limits:0'>"
        "<max-bytes>262144</max-bytes><idle-seconds>30</idle-seconds></limits>"
        "</stream:features>";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);

    /* limits within ours and no starttls: unchanged (0) */
    in = HDR "<stream:features><limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>1000"
             "</max-bytes></limits><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
             "</stream:features>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_int_equal(xmpp_c2s_rewrite_features(ev.data, ev.size, ev.content.pos, ev.content.len,
                                               true, false, 262144, 0, out, sizeof(out)),
                     0);

    /* no limits advertised: ours is added; a '>' inside an attribute value is no tag end */
    in = HDR "<stream:features><ver xmlns='urn:xmpp:features:rosterver' x='a>b'/>"
             "</stream:features>";
    one_element(&p, in, strlen(HDR), &ev);
    n = xmpp_c2s_rewrite_features(ev.data, ev.size, ev.content.pos, ev.content.len, true, false,
                                  4096, 0, out, sizeof(out));
    want = "<stream:features><ver xmlns='urn:xmpp:features:rosterver' x='a>b'/>"
           "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>4096</max-bytes></limits>"
           "</stream:features>";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);

    /* upstream TLS: -PLUS mechanisms and the XEP-0440 list go, the rest stays */
    in = HDR "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
             "<mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
             "<mechanism>SCRAM-SHA-256-PLUS</mechanism></mechanisms>"
             "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding "
             "type='tls-exporter'/></sasl-channel-binding>"
             "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10</max-bytes></limits>"
             "</stream:features>";
    one_element(&p, in, strlen(HDR), &ev);
    n = xmpp_c2s_rewrite_features(ev.data, ev.size, ev.content.pos, ev.content.len, true, true,
                                  4096, 0, out, sizeof(out));
    want = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
           "<mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
           "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>10</max-bytes></limits>"
           "</stream:features>";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void test_bind_and_roster(void **state)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    const char *j;
    size_t jl;
    (void)state;

    const char *in = HDR "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                         "<jid>alice@example.org/ph&amp;one</jid></bind></iq>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_true(xmpp_c2s_bind_jid(ev.data, ev.size, ev.content.pos, ev.content.len, &j, &jl));
    assert_int_equal(jl, strlen("alice@example.org/ph&amp;one"));
    assert_memory_equal(j, "alice@example.org/ph&amp;one", jl);

    in = HDR "<iq type='result' id='r1'><query xmlns='jabber:iq:roster'/></iq>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_false(xmpp_c2s_bind_jid(ev.data, ev.size, ev.content.pos, ev.content.len, &j, &jl));
}

struct items {
    char got[512];
    size_t n;
};

static void item_cb(void *arg, const char *jid, size_t len, bool remove)
{
    struct items *it = arg;
    it->n += (size_t)snprintf(it->got + it->n, sizeof(it->got) - it->n, "%s%.*s;",
                              remove ? "-" : "+", (int)len, jid);
}

static void test_roster_items(void **state)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    struct items it = {{0}, 0};
    (void)state;

    const char *in =
        HDR "<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='3'>"
            "<item jid='bob@example.org' name='Bob' subscription='both'><group>x</group></item>"
            "<item subscription=\"remove\" jid=\"carol@example.org\"/>"
            "<item name='no jid'/></query></iq>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_int_equal(
        xmpp_c2s_roster_items(ev.data, ev.size, ev.content.pos, ev.content.len, item_cb, &it), 2);
    assert_string_equal(it.got, "+bob@example.org;-carol@example.org;");

    in = HDR "<iq type='result' id='v'><query xmlns='jabber:iq:version'/></iq>";
    one_element(&p, in, strlen(HDR), &ev);
    assert_int_equal(
        xmpp_c2s_roster_items(ev.data, ev.size, ev.content.pos, ev.content.len, item_cb, &it), -1);
}

static void test_track(void **state)
{
    struct xmpp_c2s_sm_track t;
    struct xmpp_c2s_sm_dir d;
    (void)state;
    memset(&t, 0, sizeof(t));

    /* server sends: A (delivered), S (dropped), bounce inserted, B (delivered) */
    xmpp_c2s_track_delivered(&t); /* A is the receiver's 1st */
    xmpp_c2s_track_dropped(&t);   /* right after the 1st */
    xmpp_c2s_track_inserted(&t);  /* the bounce is the receiver's 2nd */
    xmpp_c2s_track_delivered(&t); /* B is the 3rd */

    /* the receiver acked 0: nothing covered */
    d = xmpp_c2s_track_ack(&t, 0);
    assert_int_equal(xmpp_c2s_sm_fix_h(0, &d), 0);
    /* acked 1 (A): the drop right after A is covered: the sender sees 2 (A and S) */
    d = xmpp_c2s_track_ack(&t, 1);
    assert_int_equal(xmpp_c2s_sm_fix_h(1, &d), 2);
    /* acked 3 (A, bounce, B): 3 + 1 dropped - 1 inserted = 3 (A, S, B) */
    d = xmpp_c2s_track_ack(&t, 3);
    assert_int_equal(xmpp_c2s_sm_fix_h(3, &d), 3);

    /* a legitimate stanza delivered before a drop is not claimed by an ack that misses it:
     * B delivered (4th) but lost, then S2 dropped; receiver resumes at 3 */
    xmpp_c2s_track_delivered(&t);
    xmpp_c2s_track_dropped(&t);
    d = xmpp_c2s_track_ack(&t, 3);
    assert_int_equal(xmpp_c2s_sm_fix_h(3, &d), 3);
    xmpp_c2s_track_resume(&t, 3);
    assert_int_equal(t.delivered, 3);
    assert_int_equal(t.n, 0);
    d = xmpp_c2s_track_ack(&t, 5);
    assert_int_equal(xmpp_c2s_sm_fix_h(5, &d), 5);

    /* a full ring applies its oldest records early, never losing count */
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < XMPP_C2S_SM_MARKS + 10; i++) {
        xmpp_c2s_track_delivered(&t);
        xmpp_c2s_track_dropped(&t);
    }
    assert_int_equal(t.n, XMPP_C2S_SM_MARKS);
    assert_int_equal(t.base.dropped, 10);
    d = xmpp_c2s_track_ack(&t, XMPP_C2S_SM_MARKS + 10);
    assert_int_equal(d.dropped, XMPP_C2S_SM_MARKS + 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_h),
        cmocka_unit_test(test_parse_h),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_bare),
        cmocka_unit_test(test_shim),
        cmocka_unit_test(test_bounce),
        cmocka_unit_test(test_fix_event),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_bind_and_roster),
        cmocka_unit_test(test_roster_items),
        cmocka_unit_test(test_track),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
