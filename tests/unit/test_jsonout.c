/* Unit tests for proxy/jsonout.c: escaping of every byte class, U+FFFD substitution of maximal
 * ill-formed UTF-8 subparts, truncation only at whole escapes, and the bounded line builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/jsonout.h"

#define S(lit) lit, sizeof(lit) - 1

static void check_escape(const char *in, size_t len, const char *want)
{
    char out[512];
    size_t need = jsonout_escape(out, sizeof(out), in, len);
    assert_int_equal(need, strlen(want));
    assert_string_equal(out, want);
}

static void test_plain_and_specials(void **state)
{
    check_escape(S(""), "");
    check_escape(S("hello, world"), "hello, world");
    check_escape(S("say \"hi\" \\o/"), "say \\\"hi\\\" \\\\o/");
    check_escape(S("\b\f\n\r\t"), "\\b\\f\\n\\r\\t");
    check_escape(S("\x01\x1f\x7f"), "\\u0001\\u001f\x7f");
    check_escape(S("a\0b"), "a\\u0000b");
    check_escape(S("</script>"), "</script>");
}

static void test_all_control_chars(void **state)
{
    for (unsigned c = 0; c < 0x20; c++) {
        char in = (char)c, out[16];
        size_t need = jsonout_escape(out, sizeof(out), &in, 1);
        assert_true(need == 2 || need == 6);
        assert_int_equal(out[0], '\\');
        if (need == 6) {
            char want[8];
            snprintf(want, sizeof(want), "\\u%04x", c);
            assert_string_equal(out, want);
        }
    }
}

static void test_valid_utf8_copied(void **state)
{
    check_escape(S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80"),
                 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80");
}

static void test_invalid_utf8(void **state)
{
    check_escape(S("\xff"), "\\ufffd");
    check_escape(S("a\x80z"), "a\\ufffdz");
    check_escape(S("\xc0\x80"), "\\ufffd\\ufffd");         /* overlong: C0 never valid */
    check_escape(S("\xc3"), "\\ufffd");                     /* truncated at the end */
    check_escape(S("\xc3z"), "\\ufffdz");
    check_escape(S("\xe2\x82"), "\\ufffd");                 /* one maximal subpart */
    check_escape(S("\xe2\x82z"), "\\ufffdz");
    check_escape(S("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* surrogate: ED A0 invalid */
    check_escape(S("\xe0\x80\x80"), "\\ufffd\\ufffd\\ufffd"); /* overlong 3-byte */
    check_escape(S("\xf0\x9f\x98"), "\\ufffd");
    check_escape(S("\xf0\x9f\x98\"x"), "\\ufffd\\\"x");
    check_escape(S("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
    check_escape(S("\xf5\xbf"), "\\ufffd\\ufffd");
    check_escape(S("\xe2\x82\xac\xe2\x82"), "\xe2\x82\xac\\ufffd");
}

static void test_truncation_whole_units(void **state)
{
    static const char in[] = "ab\"\n\xe2\x82\xac\x01z";
    static const char full[] = "ab\\\"\\n\xe2\x82\xac\\u0001z";
    size_t full_len = sizeof(full) - 1;
    for (size_t cap = 0; cap <= full_len + 2; cap++) {
        char *out = cap ? malloc(cap) : NULL;
        size_t need = jsonout_escape(out, cap, in, sizeof(in) - 1);
        assert_int_equal(need, full_len);
        if (cap > 0) {
            size_t got = strlen(out);
            assert_true(got < cap);
            /* A prefix of the full text that ends on a unit boundary. */
            assert_memory_equal(out, full, got);
            static const size_t bounds[] = {0, 1, 2, 4, 6, 9, 15, 16};
            bool ok = false;
            for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
                ok = ok || bounds[i] == got;
            assert_true(ok);
            if (cap > full_len)
                assert_int_equal(got, full_len);
        }
        free(out);
    }
}

static void test_builder(void **state)
{
    char buf[64];
    struct jsonout b;
    jsonout_init(&b, buf, sizeof(buf));
    jsonout_raw(&b, S("{\"line\":"));
    jsonout_uint(&b, 42);
    jsonout_raw(&b, S(",\"s\":"));
    jsonout_str(&b, S("a\"b\n"));
    jsonout_raw(&b, S(",\"d\":"));
    jsonout_double(&b, 1.5, 2);
    jsonout_raw(&b, S(",\"n\":"));
    jsonout_double(&b, 1.0 / 0.0, 2);
    jsonout_raw(&b, S("}"));
    assert_false(b.overflow);
    assert_string_equal(buf, "{\"line\":42,\"s\":\"a\\\"b\\n\",\"d\":1.50,\"n\":null}");
    assert_int_equal(b.len, strlen(buf));
}

static void test_builder_overflow(void **state)
{
    char buf[8];
    struct jsonout b;
    jsonout_init(&b, buf, sizeof(buf));
    jsonout_cstr(&b, "abcd"); /* "abcd" with quotes = 6 bytes + NUL fits */
    assert_false(b.overflow);
    assert_string_equal(buf, "\"abcd\"");
    jsonout_cstr(&b, "x"); /* needs 3 more, only 1 left */
    assert_true(b.overflow);
    assert_string_equal(buf, "\"abcd\"");
    jsonout_raw(&b, "y", 1); /* sticky: nothing more is appended after an overflow */
    assert_string_equal(buf, "\"abcd\"");

    for (size_t cap = 1; cap < 12; cap++) {
        char *small = malloc(cap);
        jsonout_init(&b, small, cap);
        jsonout_str(&b, S("\xe2\x82\xac\""));
        /* Either the whole string ("\xe2\x82\xac\\\"" + 2 quotes = 7) or nothing. */
        if (cap > 7) {
            assert_false(b.overflow);
            assert_string_equal(small, "\"\xe2\x82\xac\\\"\"");
        } else {
            assert_true(b.overflow);
            assert_string_equal(small, "");
        }
        free(small);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_specials),
        cmocka_unit_test(test_all_control_chars),
        cmocka_unit_test(test_valid_utf8_copied),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_truncation_whole_units),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_builder_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
