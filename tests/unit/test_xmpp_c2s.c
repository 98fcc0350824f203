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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_h),     cmocka_unit_test(test_parse_h),
        cmocka_unit_test(test_rewrite),   cmocka_unit_test(test_bare),
        cmocka_unit_test(test_shim),      cmocka_unit_test(test_bounce),
        cmocka_unit_test(test_fix_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
