/* Unit tests for matcher/text.c: text_normalize() (entities, invisible characters, full-width,
 * spaces, mathematical alphanumerics, the mixed-script look-alike rule, invalid UTF-8, the
 * length bound) and text_fingerprint() (what it folds, what it ignores, URL spans, chunking). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matcher/cpu.h"
#include "matcher/hash.h"
#include "matcher/text.h"

/* Normalises in (NUL-terminated) into a buffer of exactly strlen(in) bytes, so that ASan builds
 * catch any write beyond the contract's bound, and returns it NUL-terminated (caller frees). */
static char *norm_n(const char *in, size_t n, struct text_norm *res)
{
    char *out = malloc(n > 0 ? n : 1);
    assert_non_null(out);
    text_normalize(in, n, out, res);
    assert_true(res->len <= n);
    char *z = malloc(res->len + 1);
    assert_non_null(z);
    memcpy(z, out, res->len);
    z[res->len] = '\0';
    free(out);
    return z;
}

static char *norm(const char *in, struct text_norm *res)
{
    return norm_n(in, strlen(in), res);
}

/* Asserts that in normalises to want with exactly the given flags. */
static void check_norm(const char *in, const char *want, unsigned flags)
{
    struct text_norm r;
    char *got = norm(in, &r);
    assert_string_equal(got, want);
    assert_int_equal(r.len, strlen(want));
    assert_int_equal(r.flags, flags);
    free(got);
}

/* Asserts that in comes out byte for byte unchanged, with exactly the given flags. */
static void check_same(const char *in, unsigned flags)
{
    check_norm(in, in, flags);
}

static void test_ascii_fast_path(void **state)
{
    check_same("", 0);
    check_same("hello world, see http://x.com/a?b=c#d <b>bold</b> 100% ok!", 0);
    /* longer than one 8-byte word, every ASCII byte but '&' and the whitespace that
     * test_whitespace_runs_folded covers */
    char all[128];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) {
        if (c != '&' && !(c >= '\t' && c <= '\r'))
            all[n++] = (char)c;
    }
    all[n] = '\0';
    struct text_norm r;
    char *got = norm(all, &r);
    assert_memory_equal(got, all, n);
    assert_int_equal(r.len, n);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.zero_width, 0);
    assert_int_equal(r.folded, 0);
    free(got);
}

/* Runs of whitespace become one ' ', or one '\n' when the run holds a line break, on the fast
 * path and after decoding alike, at every position relative to the 8- and 16-byte blocks. */
static void test_whitespace_runs_folded(void **state)
{
    (void)state;
    check_norm("see  it", "see it", 0);
    check_norm("  lead and trail\t\t", " lead and trail ", 0);
    check_norm("a\tb\vc\fd", "a b c d", 0);
    check_norm("line\r\nnext \n\n end", "line\nnext\nend", 0);
    check_norm("one\rtwo", "one\ntwo", 0);
    check_norm("free   emoticons \t here", "free emoticons here", 0);
    /* spaces around removed and folded characters */
    check_norm("a \xe2\x80\x8b b", "a b", TEXT_F_ZERO_WIDTH);
    check_norm("a\xe3\x80\x80 b", "a b", TEXT_F_SPACE);
    check_norm("x &#32; y", "x y", TEXT_F_ENTITY);
    check_norm("caf\xc3\xa9  au   lait", "caf\xc3\xa9 au lait", 0);
    /* control bytes that are not whitespace stay */
    check_same("a\x01 b\x1f", 0);
    /* a double space at every offset of a 40-byte text, and one across each block edge */
    for (size_t at = 0; at + 2 <= 40; at++) {
        char in[41], want[41];
        memset(in, 'x', 40);
        in[40] = '\0';
        in[at] = ' ';
        in[at + 1] = ' ';
        memcpy(want, in, at + 1);
        memcpy(want + at + 1, in + at + 2, 40 - at - 1);
        check_norm(in, want, 0);
    }
}

/* The fast path copies sixteen bytes at a time and gives up at the first '&' or non-ASCII
 * byte: one at every offset of a 40-byte text (with a run to fold before it, in the same block or
 * an earlier one) gives what the slow path gives. */
static void test_fast_path_gives_up_anywhere(void **state)
{
    (void)state;
    for (size_t at = 2; at + 5 <= 40; at++) {
        for (size_t sp = 0; sp + 2 <= at; sp++) {
            char in[48], want[48];
            memset(in, 'x', 40);
            in[40] = '\0';
            in[sp] = ' ';
            in[sp + 1] = ' ';
            memcpy(in + at, "&lt;", 4);
            /* want: the same with the double space single and the entity decoded */
            size_t o = 0;
            for (size_t i = 0; i < 40; i++) {
                if (i == sp + 1)
                    continue;
                if (i == at) {
                    want[o++] = '<';
                    i += 3;
                    continue;
                }
                want[o++] = in[i];
            }
            want[o] = '\0';
            check_norm(in, want, TEXT_F_ENTITY);
            /* a two-byte letter there instead: copied as it is */
            memcpy(in + at, "\xc3\xa9xx", 4);
            o = 0;
            for (size_t i = 0; i < 40; i++) {
                if (i != sp + 1)
                    want[o++] = in[i];
            }
            want[o] = '\0';
            check_norm(in, want, 0);
        }
    }
}

static void test_named_entities(void **state)
{
    check_norm("&amp;&lt;&gt;&quot;&apos;", "&<>\"'", TEXT_F_ENTITY);
    check_norm("Tom &amp; Jerry", "Tom & Jerry", TEXT_F_ENTITY);
    /* decoded once, not twice */
    check_norm("&amp;lt;", "&lt;", TEXT_F_ENTITY);
    /* an ampersand alone is plain text and leaves the rest on the slow path unchanged */
    check_same("fish & chips", 0);
    check_same("a&b", 0);
    check_same("&", 0);
}

static void test_numeric_references(void **state)
{
    check_norm("&#65;&#x42;&#x63;&#X64;&#X2f;", "ABcd/", TEXT_F_ENTITY);
    check_norm("&#233;t&#xE9;", "\xc3\xa9t\xc3\xa9", TEXT_F_ENTITY);
    check_norm("&#x20AC;", "\xe2\x82\xac", TEXT_F_ENTITY);
    /* astral plane, decimal and hex */
    check_norm("&#128512;&#x1F600;", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", TEXT_F_ENTITY);
    check_norm("&#x10FFFF;", "\xf4\x8f\xbf\xbf", TEXT_F_ENTITY);
    /* leading zeros are fine */
    check_norm("&#0065;", "A", TEXT_F_ENTITY);
    /* any number of leading zeros, as XML allows and the XMPP parser accepts: a padded
     * reference must not hide a letter from the rules */
    check_norm("&#x0000000041;", "A", TEXT_F_ENTITY);
    check_norm("&#0000000000000000102;ree pics", "free pics", TEXT_F_ENTITY);
}

static void test_malformed_references_copied(void **state)
{
    static const char *const bad[] = {
        "&amp",
        "x &amp y",
        "&#0;",
        "&#x110000;",
        "&#1114112;",
        "&#xD800;",
        "&#55296;",
        "&#xDFFF;",
        "&#;",
        "&#x;",
        "&foo;",
        "&AMP;",
        "&#12a;",
        "&#x12g;",
        "&#65",
        "&#99999999999999;",
        "&#x00000000110000;",
        "&l",
        "&#",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_same(bad[i], 0);
    /* a malformed one does not stop a good one after it */
    check_norm("&#0;&amp;", "&#0;&", TEXT_F_ENTITY);
}

static void test_zero_width_removed_and_counted(void **state)
{
    static const char *const zw[] = {
        "\xe2\x80\x8b", "\xe2\x80\x8c", "\xe2\x80\x8d", "\xe2\x80\x8e", "\xe2\x80\x8f", /* 200B-F */
        "\xef\xbb\xbf",                                                                 /* FEFF */
        "\xc2\xad",                                                                     /* 00AD */
        "\xe2\x81\xa0",                                                                 /* 2060 */
        "\xe2\x80\xae", /* 202E right-to-left override */
        "\xcd\x8f",     /* 034F combining grapheme joiner */
    };
    for (size_t i = 0; i < sizeof(zw) / sizeof(zw[0]); i++) {
        char in[64];
        snprintf(in, sizeof(in), "pay%spal%s", zw[i], zw[i]);
        struct text_norm r;
        char *got = norm(in, &r);
        assert_string_equal(got, "paypal");
        assert_int_equal(r.flags, TEXT_F_ZERO_WIDTH);
        assert_int_equal(r.zero_width, 2);
        free(got);
    }
    /* written as character references */
    struct text_norm r;
    char *got = norm("pay&#8203;pal&#x200B;.com&#xFEFF;&#173;", &r);
    assert_string_equal(got, "paypal.com");
    assert_int_equal(r.flags, TEXT_F_ZERO_WIDTH | TEXT_F_ENTITY);
    assert_int_equal(r.zero_width, 4);
    free(got);
}

static void test_fullwidth_and_spaces(void **state)
{
    struct text_norm r;
    /* "ｐａｙｐａｌ．ｃｏｍ" */
    char *got = norm("\xef\xbd\x90\xef\xbd\x81\xef\xbd\x99\xef\xbd\x90\xef\xbd\x81\xef\xbd\x8c"
                     "\xef\xbc\x8e\xef\xbd\x83\xef\xbd\x8f\xef\xbd\x8d",
                     &r);
    assert_string_equal(got, "paypal.com");
    assert_int_equal(r.flags, TEXT_F_FULLWIDTH);
    assert_int_equal(r.folded, 10);
    free(got);
    /* U+FF01 and U+FF5E are the ends of the range */
    check_norm("\xef\xbc\x81\xef\xbd\x9e", "!~", TEXT_F_FULLWIDTH);
    /* U+3000 ideographic space, U+00A0 no-break space, U+2009 thin space, U+202F */
    check_norm("a\xe3\x80\x80" "b\xc2\xa0" "c\xe2\x80\x89" "d\xe2\x80\xaf" "e", "a b c d e",
               TEXT_F_SPACE);
    check_norm("a&#160;b&#x3000;c", "a b c", TEXT_F_SPACE | TEXT_F_ENTITY);
}

static void test_math_alphanumerics(void **state)
{
    struct text_norm r;
    /* bold "Pay", italic "pal", bold digits "10", sans-serif bold "X" */
    char *got = norm("\xf0\x9d\x90\x8f\xf0\x9d\x90\x9a\xf0\x9d\x90\xb2"
                     "\xf0\x9d\x91\x9d\xf0\x9d\x91\x8e\xf0\x9d\x91\x99"
                     "\xf0\x9d\x9f\x8f\xf0\x9d\x9f\x8e \xf0\x9d\x97\xab",
                     &r);
    assert_string_equal(got, "Paypal10 X");
    assert_int_equal(r.flags, TEXT_F_MATH_ALNUM);
    assert_int_equal(r.folded, 9);
    free(got);
    /* monospace z (U+1D6A3, last letter of the block) and digit 9 (U+1D7FF) */
    check_norm("\xf0\x9d\x9a\xa3\xf0\x9d\x9f\xbf", "z9", TEXT_F_MATH_ALNUM);
}

static void test_lookalikes_in_mixed_words(void **state)
{
    struct text_norm r;
    /* "pаypal" with a Cyrillic а (U+0430) */
    char *got = norm("p\xd0\xb0ypal", &r);
    assert_string_equal(got, "paypal");
    assert_int_equal(r.flags, TEXT_F_CONFUSABLE);
    assert_int_equal(r.folded, 1);
    free(got);
    /* look-alike first in the word, several of them, capitals */
    check_norm("\xd0\xa0\xd0\xb0yP\xd0\xb0l log in", "PayPal log in", TEXT_F_CONFUSABLE);
    /* Greek omicron in "gοοgle" */
    check_norm("g\xce\xbf\xce\xbfgle.com", "google.com", TEXT_F_CONFUSABLE);
    /* written as a character reference */
    check_norm("p&#1072;ypal", "paypal", TEXT_F_CONFUSABLE | TEXT_F_ENTITY);
    /* hidden by a zero-width character between the halves: still one word */
    check_norm("\xd1\x80\xd0\xb0\xe2\x80\x8bypal", "paypal",
               TEXT_F_CONFUSABLE | TEXT_F_ZERO_WIDTH);
    /* only the mixed word is folded, the Russian word next to it is not */
    check_norm("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 p\xd0\xb0ypal",
               "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 paypal", TEXT_F_CONFUSABLE);
}

static void test_plain_cyrillic_and_greek_unchanged(void **state)
{
    /* "привет, как дела?" - full of letters that look Latin (р, е, а), all Cyrillic */
    check_same("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xba\xd0\xb0\xd0\xba "
               "\xd0\xb4\xd0\xb5\xd0\xbb\xd0\xb0?",
               0);
    /* "Καλημέρα κόσμε" (Greek, with α ο κ) */
    check_same("\xce\x9a\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 "
               "\xce\xba\xcf\x8c\xcf\x83\xce\xbc\xce\xb5",
               0);
    /* "ВСЕ ОК" in capitals (В С Е О К all look Latin) next to a Latin word */
    check_same("\xd0\x92\xd0\xa1\xd0\x95 \xd0\x9e\xd0\x9a ok", 0);
    /* digits do not make a word Latin */
    check_same("\xd1\x80\xd0\xb0\xd0\xb7 2 \xd1\x80\xd0\xb0\xd0\xb7""2", 0);
}

/* Long plain runs before, between and after the look-alikes: the slow path copies them a block
 * at a time and must still say where each word begins. */
static void test_lookalikes_after_long_plain_runs(void **state)
{
    /* Each text goes on for 16+ bytes after its last look-alike, so that the runs before them
     * are copied as whole blocks, not by the byte loop that handles a text's last bytes. */
    /* a Russian word after Latin words is its own word: not folded */
    check_same("hello there my good friend \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
               "how are you doing today",
               0);
    check_same("hello-there_my.good,friend!!\xd1\x80\xd0\xb0\xd0\xb7 how are you doing today", 0);
    /* the word boundary is the last byte of a block */
    check_same("0123456789abcde \xd1\x80\xd0\xb0\xd0\xb7 ok, how are you doing today", 0);
    /* a mixed word that starts inside a plain run is folded */
    check_norm("please log in to your account at p\xd0\xb0ypal right now before it is too late",
               "please log in to your account at paypal right now before it is too late",
               TEXT_F_CONFUSABLE);
    check_norm("supercalifragilisticexpialidocious\xd0\xb0 and the rest of the text",
               "supercalifragilisticexpialidociousa and the rest of the text", TEXT_F_CONFUSABLE);
    /* after an accent, a long plain run, a Russian word (kept), more plain text and a mixed
     * word (folded) */
    check_norm("caf\xc3\xa9 and then a long plain run \xd1\x80\xd0\xb0\xd0\xb7 and more plain "
               "text p\xd0\xb0ypal and the rest of the text",
               "caf\xc3\xa9 and then a long plain run \xd1\x80\xd0\xb0\xd0\xb7 and more plain "
               "text paypal and the rest of the text",
               TEXT_F_CONFUSABLE);
}

static void test_invalid_utf8_copied(void **state)
{
    static const struct {
        const char *in;
        size_t len;
    } bad[] = {
        {"a\x80z", 3},             /* lone continuation byte */
        {"\xc0\xaf", 2},           /* overlong '/' */
        {"\xe0\x80\xaf", 3},       /* overlong '/' in three bytes */
        {"\xf0\x80\x80\xaf", 4},   /* overlong in four */
        {"\xed\xa0\x80", 3},       /* U+D800 encoded in UTF-8 */
        {"\xed\xbf\xbf", 3},       /* U+DFFF */
        {"\xf4\x90\x80\x80", 4},   /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4},   /* never a lead byte */
        {"\xff\xfe", 2},
        {"ab\xe2\x82", 4},         /* truncated at the end */
        {"ab\xf0\x9f\x98", 5},     /* truncated four-byte sequence */
        {"\xd0", 1},
        {"\xe2\x80\x8bzz\xe2", 6}, /* good zero-width first, then truncated */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct text_norm r;
        char *got = norm_n(bad[i].in, bad[i].len, &r);
        assert_true(r.flags & TEXT_F_BAD_UTF8);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1) {
            assert_int_equal(r.len, 3);
            assert_memory_equal(got, "zz\xe2", 3);
        } else {
            assert_int_equal(r.len, bad[i].len);
            assert_memory_equal(got, bad[i].in, bad[i].len);
            assert_int_equal(r.flags, TEXT_F_BAD_UTF8);
        }
        free(got);
    }
    /* a bad byte does not swallow the good character after it */
    check_norm("\x80\xef\xbd\x81", "\x80" "a", TEXT_F_BAD_UTF8 | TEXT_F_FULLWIDTH);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Output is never longer than input, and normalising is deterministic, over inputs built from
 * the pieces that grow when decoded carelessly (short references of long code points) and
 * random bytes. */
static void test_output_never_longer(void **state)
{
    static const char *const pieces[] = {
        "&#1;", "&#128;", "&#2048;", "&#65536;", "&#x80;", "&#x800;", "&#x10000;", "&#x10FFFF;",
        "&amp;", "&lt;", "&", "&#", "&#x", ";", "a", "Z", "0", " ", ".", "\xd0\xb0", "\xd1\x80",
        "\xce\xbf", "\xe2\x80\x8b", "\xef\xbd\x81", "\xe3\x80\x80", "\xf0\x9d\x90\x9a", "\x80",
        "\xc3", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "&#1072;", "&#8203;", "p", "http://",
    };
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char in[512];
    char out[512], out2[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        size_t want = rng_next(&seed) % 480;
        while (n < want) {
            uint64_t r = rng_next(&seed);
            if (r % 4 == 0) {
                in[n++] = (char)(r >> 8);
                continue;
            }
            const char *p = pieces[(r >> 8) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (n + pl > sizeof(in))
                break;
            memcpy(in + n, p, pl);
            n += pl;
        }
        struct text_norm r1, r2;
        text_normalize(in, n, out, &r1);
        assert_true(r1.len <= n);
        text_normalize(in, n, out2, &r2);
        assert_int_equal(r1.len, r2.len);
        assert_int_equal(r1.flags, r2.flags);
        assert_memory_equal(out, out2, r1.len);
    }
}

/* The AVX2 copy of plain ASCII (matcher/cpu.h) gives what the baseline gives: the same bytes,
 * length and flags, over ASCII texts with blanks, line breaks, control bytes, '&' and non-ASCII
 * bytes at every offset, so that the fast path, its padded last block and the fall back to the
 * slow path are all taken. */
static void test_avx2_matches_baseline(void **state)
{
    (void)state;
    sw_cpu_force_avx2(true);
    if (!sw_cpu_avx2())
        skip(); /* the CPU has no AVX2: there is only the baseline */
    static const char alphabet[] = "abcdefghij klmnop  \n\t\r.,!?XYZ012";
    static const char chat[] = "abcdefghijklmnopqrstuvwxyz ,.!?";
    uint64_t seed = 0x123456789abcdefULL;
    char in[300], a[300], b[300];
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = rng_next(&seed) % sizeof(in);
        /* half the texts are chat with single blanks and then one run of two blanks or one
         * control byte at a random place (the fold start, also at block borders) */
        bool plain = iter % 2 == 0;
        for (size_t i = 0; i < n; i++)
            in[i] = plain ? chat[rng_next(&seed) % (sizeof(chat) - 1)]
                          : alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
        for (size_t i = 1; plain && i < n; i++) {
            if (in[i] == ' ' && in[i - 1] == ' ')
                in[i] = 'x';
        }
        if (plain && n > 2) {
            size_t at = 1 + rng_next(&seed) % (n - 2);
            in[at] = ' ';
            in[at + 1] = rng_next(&seed) % 3 == 0 ? '\n' : ' ';
        }
        /* some get one special byte somewhere */
        uint64_t r = rng_next(&seed);
        if (n > 0 && r % 4 == 0)
            in[(r >> 8) % n] = (r >> 16) % 2 ? '&' : (char)0xc3;
        if (n > 0 && r % 7 == 0)
            in[(r >> 24) % n] = (char)((r >> 32) % 0x20);
        struct text_norm ra, rb;
        sw_cpu_force_avx2(true);
        text_normalize(in, n, a, &ra);
        sw_cpu_force_avx2(false);
        text_normalize(in, n, b, &rb);
        assert_int_equal(ra.len, rb.len);
        assert_int_equal(ra.flags, rb.flags);
        assert_memory_equal(a, b, ra.len);
    }
    sw_cpu_force_avx2(true);
}

/* --- fingerprint ----------------------------------------------------------------------- */

/* Fingerprint of s with the spans of the given substrings (each found once, in order). */
static uint64_t fp_of(const char *s, const char *url1, size_t *folded)
{
    struct text_span sp[1] = {{0, 0}};
    size_t n = 0;
    if (url1 != NULL) {
        const char *u = strstr(s, url1);
        assert_non_null(u);
        sp[0].off = (uint32_t)(u - s);
        sp[0].len = (uint32_t)strlen(url1);
        n = 1;
    }
    return text_fingerprint(s, strlen(s), sp, n, folded);
}

static void test_fingerprint_campaign(void **state)
{
    size_t f1 = 0, f2 = 0;
    uint64_t a = fp_of("Look at my pics http://a.example/1.zip", "http://a.example/1.zip", &f1);
    uint64_t b = fp_of("look at my pics!!  http://b.example/22.zip", "http://b.example/22.zip",
                       &f2);
    assert_true(a == b);
    assert_int_equal(f1, 12); /* the letters of "look at my pics": markers and spaces excluded */
    assert_int_equal(f2, 12);
    /* the URL counts as something: without a span the URL text is hashed */
    assert_true(fp_of("Look at my pics http://a.example/1.zip", NULL, NULL) != a);
    /* a marker is not nothing */
    assert_true(fp_of("look at my pics", NULL, NULL) != a);
    /* two URLs are two markers */
    const char *two = "look at my pics a.com b.com";
    struct text_span sp[2] = {{16, 5}, {22, 5}};
    assert_true(text_fingerprint(two, strlen(two), sp, 2, NULL) != a);
}

static void test_fingerprint_differs_and_folds(void **state)
{
    uint64_t base = fp_of("free pics here", NULL, NULL);
    assert_true(fp_of("free pix here", NULL, NULL) != base);
    assert_true(fp_of("free pics her", NULL, NULL) != base);
    assert_true(fp_of("here free pics", NULL, NULL) != base); /* word order matters */
    /* case, digits, blanks and punctuation are ignored, word boundaries included: spacing is
     * what a campaign varies first ("f r e e  p i c s") */
    assert_true(fp_of("freepics here", NULL, NULL) == base);
    assert_true(fp_of("f r e e p-i-c-s h.e.r.e", NULL, NULL) == base);
    assert_true(fp_of("FREE pics HERE", NULL, NULL) == base);
    assert_true(fp_of("fr33eee pics here 2024", NULL, NULL) != base); /* one more e */
    assert_true(fp_of("fr3ee pi4cs here 2024", NULL, NULL) == base);
    assert_true(fp_of("  ...free, pics -- here!!!  ", NULL, NULL) == base);
    assert_true(fp_of("\tfree\r\npics\there\n", NULL, NULL) == base);
    /* non-ASCII bytes are kept as they are */
    assert_true(fp_of("free pi\xc3\xa7s here", NULL, NULL) != base);

    size_t f = 99;
    (void)fp_of("", NULL, &f);
    assert_int_equal(f, 0);
    (void)fp_of("123 !!! 456", NULL, &f);
    assert_int_equal(f, 0);
    (void)fp_of("ok", NULL, &f);
    assert_int_equal(f, 2);
    (void)fp_of("Ok, lol!", NULL, &f);
    assert_int_equal(f, 5);
    /* the empty text and a text of separators fingerprint alike; "ok" does not */
    assert_true(fp_of("", NULL, NULL) == fp_of(" 1 2 ", NULL, NULL));
    assert_true(fp_of("", NULL, NULL) != fp_of("ok", NULL, NULL));
}

/* The same sentence n times over into buf (NUL-terminated); returns buf. */
static char *repeat(char *buf, size_t cap, const char *sentence, unsigned n)
{
    size_t len = strlen(sentence), o = 0;
    for (unsigned i = 0; i < n && o + len < cap; i++, o += len)
        memcpy(buf + o, sentence, len);
    buf[o] = '\0';
    return buf;
}

static void test_fingerprint_long_bodies(void **state)
{
    (void)state;
    /* well past the 512-byte piece: separators and digits in different places in the raw text
     * shift where pieces fall in the input but not in the folded text */
    static char a[2048], b[2048], c[2048];
    repeat(a, sizeof(a),
           "Hello my friend, I have found the most wonderful pictures of you on this site, "
           "please look at them before they are deleted tomorrow morning. ",
           12);
    repeat(b, sizeof(b),
           "hello   my friend!!! i have found the most wonderful pictures of you on this site "
           "100% -- please look at them before they are deleted tomorrow morning... ",
           12);
    size_t fa = 0, fb = 0;
    assert_true(fp_of(a, NULL, &fa) == fp_of(b, NULL, &fb));
    assert_int_equal(fa, fb);
    assert_true(fa > 2 * 512 + 32);
    /* one letter changed near the end, in the third piece, changes the result */
    memcpy(c, a, sizeof(c));
    char *last = strrchr(c, 'g');
    assert_non_null(last);
    *last = 'k';
    assert_true(fp_of(c, NULL, NULL) != fp_of(a, NULL, NULL));
    /* a URL span in the middle of a long body */
    static char d[2048], e[2048];
    repeat(d, sizeof(d), "Hello my friend, I have found the most wonderful pictures of you ", 8);
    strcat(d, "http://x.example/p?id=1 please look at them before they are deleted");
    repeat(e, sizeof(e), "hello my friend i have found the most wonderful pictures of you ", 8);
    strcat(e, "hxxp://other.example/ please look at them before they are deleted");
    assert_true(fp_of(d, "http://x.example/p?id=1", NULL) ==
                fp_of(e, "hxxp://other.example/", NULL));
    /* exactly one piece of letters and one letter more differ */
    static char l512[513], l513[514];
    memset(l512, 'a', 512);
    l512[512] = '\0';
    memset(l513, 'a', 513);
    l513[513] = '\0';
    size_t f = 0;
    uint64_t h512 = fp_of(l512, NULL, &f);
    assert_int_equal(f, 512);
    assert_true(h512 != fp_of(l513, NULL, &f));
    assert_int_equal(f, 513);
}

/* text_fingerprint() as first written, one byte at a time: the vectorised version must give
 * the same value and folded length for every input. */
#define FP_REF_PIECE 512 /* text.c's FP_CHUNK */

static uint64_t fp_block_ref(uint64_t h, const char *buf, size_t n)
{
    return sw_hash_combine(h, sw_hash64_wide(buf, n, 0x6670u));
}

static uint64_t fingerprint_reference(const char *norm, size_t len, const struct text_span *spans,
                                      size_t n, size_t *folded_len)
{
    uint64_t h = 0x5370696d77616c6cULL;
    char buf[FP_REF_PIECE];
    size_t bn = 0, total = 0, i = 0, si = 0;
    while (i < len) {
        size_t stop = len;
        if (si < n && spans[si].off < stop)
            stop = spans[si].off > i ? spans[si].off : i;
        for (; i < stop; i++) {
            unsigned c = (unsigned char)norm[i];
            unsigned lc = c | 0x20;
            if (lc - 'a' < 26u || c >= 0x80) {
                if (bn == FP_REF_PIECE) {
                    h = fp_block_ref(h, buf, bn);
                    bn = 0;
                }
                buf[bn++] = (char)(c >= 0x80 ? c : lc);
                total++;
            }
        }
        if (i >= len)
            break;
        if (bn == FP_REF_PIECE) {
            h = fp_block_ref(h, buf, bn);
            bn = 0;
        }
        buf[bn++] = '\x01';
        size_t end = (size_t)spans[si].off + spans[si].len;
        i = end > i ? end : i;
        si++;
    }
    if (bn > 0)
        h = fp_block_ref(h, buf, bn);
    *folded_len = total;
    return sw_hash_mix(h ^ total);
}

static void test_fingerprint_matches_reference(void **state)
{
    (void)state;
    /* letters, digits, blanks, punctuation and non-ASCII in runs of every length, so that
     * every chunk boundary meets every kind of byte */
    static const char alphabet[] = "aZeQx  ...!?,-'0123456789\n\xc3\xa9\xd0\xbf";
    uint64_t rnd = 0x2545f4914f6cdd1dULL;
    static char text[65536];
    for (unsigned round = 0; round < 20000; round++) {
        rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
        /* mostly up to three pieces and more; every 500th round up to the largest body the
         * matcher passes (max_text's default), a hundred pieces and more */
        size_t cap = round % 500 == 0 ? sizeof(text) : 1600;
        size_t len = (size_t)(rnd >> 33) % cap;
        unsigned mode = (unsigned)(rnd >> 20) % 4; /* how long runs of one kind get */
        for (size_t i = 0; i < len; i++) {
            rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(rnd >> 33);
            text[i] = mode == 0 || i == 0 || r % (2u << mode) == 0
                          ? alphabet[r % (sizeof(alphabet) - 1)]
                          : text[i - 1];
        }
        struct text_span spans[3];
        size_t ns = 0, at = 0;
        while (ns < 3 && len > 0) {
            rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t off = at + (size_t)(rnd >> 40) % (len + 1);
            size_t sl = 1 + (size_t)(rnd >> 20) % 30;
            if (off + sl > len || (rnd & 3) == 0)
                break;
            spans[ns].off = (uint32_t)off;
            spans[ns].len = (uint32_t)sl;
            ns++;
            at = off + sl;
        }
        size_t fb = 0;
        uint64_t b = fingerprint_reference(text, len, spans, ns, &fb);
        /* the AVX-512 compress, the AVX2 packing and the baseline (a tier the CPU lacks runs
         * the best one below it) */
        /* also from a copy in a block of exactly len bytes, so that a read past the end of
         * the text is a heap overflow that the sanitizer build reports */
        char *exact = malloc(len > 0 ? len : 1);
        assert_non_null(exact);
        memcpy(exact, text, len);
        for (int tier = SW_CPU_AVX512; tier >= SW_CPU_BASELINE; tier--) {
            sw_cpu_force_tier((enum sw_cpu_tier)tier);
            size_t fa = 0, fe = 0;
            uint64_t a = text_fingerprint(text, len, spans, ns, &fa);
            uint64_t e = text_fingerprint(exact, len, spans, ns, &fe);
            if (a != b || fa != fb || e != b || fe != fb)
                fail_msg("round %u (tier %d): len %zu, %zu spans: %016llx/%zu, reference "
                         "%016llx/%zu",
                         round, tier, len, ns, (unsigned long long)a, fa, (unsigned long long)b,
                         fb);
        }
        free(exact);
    }
    sw_cpu_force_avx2(true);
}

static void test_fingerprint_span_edges(void **state)
{
    /* span at the start and at the end, span covering everything */
    const char *s = "a.com hi b.com";
    struct text_span sp[2] = {{0, 5}, {9, 5}};
    size_t f = 0;
    uint64_t h = text_fingerprint(s, strlen(s), sp, 2, &f);
    assert_int_equal(f, 2);
    const char *t = "x.org  HI!! y.net";
    struct text_span tp[2] = {{0, 5}, {12, 5}};
    assert_true(text_fingerprint(t, strlen(t), tp, 2, NULL) == h);
    struct text_span all = {0, (uint32_t)strlen(s)};
    text_fingerprint(s, strlen(s), &all, 1, &f);
    assert_int_equal(f, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_fast_path),
        cmocka_unit_test(test_whitespace_runs_folded),
        cmocka_unit_test(test_fast_path_gives_up_anywhere),
        cmocka_unit_test(test_named_entities),
        cmocka_unit_test(test_numeric_references),
        cmocka_unit_test(test_malformed_references_copied),
        cmocka_unit_test(test_zero_width_removed_and_counted),
        cmocka_unit_test(test_fullwidth_and_spaces),
        cmocka_unit_test(test_math_alphanumerics),
        cmocka_unit_test(test_lookalikes_in_mixed_words),
        cmocka_unit_test(test_plain_cyrillic_and_greek_unchanged),
        cmocka_unit_test(test_lookalikes_after_long_plain_runs),
        cmocka_unit_test(test_invalid_utf8_copied),
        cmocka_unit_test(test_output_never_longer),
        cmocka_unit_test(test_avx2_matches_baseline),
        cmocka_unit_test(test_fingerprint_campaign),
        cmocka_unit_test(test_fingerprint_differs_and_folds),
        cmocka_unit_test(test_fingerprint_long_bodies),
        cmocka_unit_test(test_fingerprint_span_edges),
        cmocka_unit_test(test_fingerprint_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
