/* Unit tests for the msnp proxy's MSG tagger (proxy/msnp_session.c): headers inserted before
 * the blank line, the byte count fixed, every other byte kept, the 1664-byte limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/msnp/msnp_mime.h"
#include "protocols/msnp/msnp_parser.h"
#include "proxy/msnp_session.h"

/* Parses one client command from buf into ev (whole). */
static void parse_one(const char *buf, size_t len, struct msnp_event *ev)
{
    struct msnp_parser p;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_C2S, NULL), 0);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)buf, len, 0, ev), 0);
    assert_int_equal(ev->size, len);
}

static size_t body_pos(const struct msnp_event *ev)
{
    struct msnp_mime m;
    assert_int_equal(msnp_mime_parse(ev->data + ev->payload.pos, ev->payload.len, NULL, &m), 0);
    return m.body_pos;
}

static void test_tag_crlf(void **state)
{
    (void)state;
    const char *pay =
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nlol! see";
    char in[512];
    int n = snprintf(in, sizeof(in), "MSG 7 A %zu\r\n%s", strlen(pay), pay);
    struct msnp_event ev;
    parse_one(in, (size_t)n, &ev);
    uint8_t out[1024];
    size_t o =
        msnp_session_tag(&ev, body_pos(&ev), 12.5, "SW_LURE,LIST_SHORTENER", out, sizeof(out));
    const char *want_pay = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                           "X-Spam-Flag: YES\r\nX-Spam-Score: 12.5\r\n"
                           "X-Spam-Reasons: SW_LURE,LIST_SHORTENER\r\n\r\nlol! see";
    char want[1024];
    int wn = snprintf(want, sizeof(want), "MSG 7 A %zu\r\n%s", strlen(want_pay), want_pay);
    assert_int_equal(o, (size_t)wn);
    assert_memory_equal(out, want, o);

    /* the result frames as one command with the new length */
    struct msnp_event ev2;
    parse_one((const char *)out, o, &ev2);
    assert_int_equal(ev2.payload.len, strlen(want_pay));
}

static void test_tag_bare_lf_and_limits(void **state)
{
    (void)state;
    const char *pay = "MIME-Version: 1.0\nContent-Type: text/plain\n\nhi";
    char in[4096];
    int n = snprintf(in, sizeof(in), "MSG 3 N %zu\n%s", strlen(pay), pay);
    struct msnp_event ev;
    parse_one(in, (size_t)n, &ev);
    uint8_t out[1024];
    size_t o = msnp_session_tag(&ev, body_pos(&ev), 5, "", out, sizeof(out));
    assert_true(o > 0 && o != SIZE_MAX);
    assert_non_null(memmem(out, o, "\nX-Spam-Flag: YES\r\n", 19));
    assert_non_null(memmem(out, o, "X-Spam-Reasons: -\r\n\nhi", 22));
    assert_memory_equal(out, "MSG 3 N ", 8);

    /* too small an output buffer: 0, nothing half-written is used */
    assert_int_equal(msnp_session_tag(&ev, body_pos(&ev), 5, "", out, 20), 0);

    /* a payload near 1664 bytes: the tag would pass the limit */
    char big[1700];
    memset(big, 'a', sizeof(big));
    const char *hdr = "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n";
    size_t blen = 1640 - strlen(hdr);
    n = snprintf(in, sizeof(in), "MSG 4 A %zu\r\n%s%.*s", strlen(hdr) + blen, hdr, (int)blen, big);
    parse_one(in, (size_t)n, &ev);
    assert_int_equal(msnp_session_tag(&ev, body_pos(&ev), 5, "X", out, sizeof(out)), SIZE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_crlf),
        cmocka_unit_test(test_tag_bare_lf_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
