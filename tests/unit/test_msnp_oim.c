/* Unit tests for protocols/msnp/msnp_oim.c: Mail-Data values (entries and their field spans,
 * other <MD> children, empty elements, whitespace, too-large), every malformed-XML error path
 * and every truncation of a valid value, the entry and field bounds, removal of one, several
 * or all entries with the exact bytes expected, and the field decoder (RFC 2047 B and Q in
 * UTF-8, US-ASCII and ISO-8859-1, adjacent words, unknown charsets and malformed words kept as
 * they are, XML entities, the output bound). Every input is parsed from an exact-size copy so
 * that ASan sees any read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/msnp/msnp_oim.h"

/* The example of an initial notification: inbox counts, quota, two OIMs. */
#define M1                                                                                         \
    "<M><T>11</T><S>6</S><RT>2007-05-14T15:52:53.377Z</RT><RS>0</RS><SZ>950</SZ>"                  \
    "<E>sender@hotmail.com</E><I>08CBD8BE-9972-433C-A9DA-84A0A725ABFA</I>"                         \
    "<F>00000000-0000-0000-0000-000000000009</F><N>=?utf-8?B?Qm9i?=</N><SU> </SU></M>"
#define M2                                                                                         \
    "<M><T>11</T><S>6</S><RT>2007-05-14T15:53:01.000Z</RT><RS>0</RS><SZ>1012</SZ>"                 \
    "<E>eve@example.com</E><I>11111111-2222-3333-4444-555555555555</I>"                            \
    "<F>00000000-0000-0000-0000-000000000009</F>"                                                  \
    "<N>=?utf-8?B?bG9sIHNlZSBpdCB1J2xsIGxpa2UgaXQ=?=</N><SU>pics</SU></M>"
#define HEAD                                                                                       \
    "<MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q>"
#define MD2 HEAD M1 M2 "</MD>"

static uint8_t *copy_of(const char *s, size_t len)
{
    uint8_t *b = malloc(len > 0 ? len : 1);
    assert_non_null(b);
    memcpy(b, s, len);
    return b;
}

static int parse_lim(const char *s, size_t len, const struct msnp_oim_limits *lim,
                     struct msnp_oim *o)
{
    uint8_t *b = copy_of(s, len);
    int rc = msnp_oim_parse(b, len, lim, o);
    if (rc == SW_ERROR) {
        assert_non_null(o->err);
        assert_true(o->err_pos <= len);
    }
    free(b);
    return rc;
}

static int parse(const char *s, struct msnp_oim *o)
{
    return parse_lim(s, strlen(s), NULL, o);
}

static void assert_span(const char *doc, struct msnp_span sp, const char *want)
{
    assert_int_equal(sp.len, strlen(want));
    assert_memory_equal(doc + sp.pos, want, sp.len);
}

static void test_entries(void **state)
{
    struct msnp_oim o;
    (void)state;
    const char *doc = MD2;
    assert_int_equal(parse(doc, &o), SW_OK);
    assert_false(o.too_large);
    assert_int_equal(o.md.pos, 0);
    assert_int_equal(o.md.len, strlen(doc));
    assert_int_equal(o.nentries, 2);
    const struct msnp_oim_entry *e = &o.entries[0];
    assert_span(doc, e->m, M1);
    assert_true(e->has_e && e->has_n && e->has_su && e->has_i);
    assert_span(doc, e->e, "sender@hotmail.com");
    assert_span(doc, e->n, "=?utf-8?B?Qm9i?=");
    assert_span(doc, e->su, " ");
    assert_span(doc, e->i, "08CBD8BE-9972-433C-A9DA-84A0A725ABFA");
    e = &o.entries[1];
    assert_span(doc, e->m, M2);
    assert_span(doc, e->e, "eve@example.com");
    assert_span(doc, e->su, "pics");

    /* whitespace between elements and around the root, empty elements, missing fields, an
     * <M> nested deeper is not an entry, <E> of the root is not a sender */
    doc = " \r\n<MD>\n <E><I>3</I></E>\n <M>\n  <E>a@b.c</E> <N/> <SU></SU>\n </M>\n <M/>\n"
          " <X><M><E>no@entry</E></M></X>\n <M><T>1</T></M></MD>\t";
    assert_int_equal(parse(doc, &o), SW_OK);
    assert_int_equal(o.nentries, 3);
    assert_span(doc, o.entries[0].e, "a@b.c");
    assert_true(o.entries[0].has_n && o.entries[0].has_su);
    assert_int_equal(o.entries[0].n.len, 0);
    assert_int_equal(o.entries[0].su.len, 0);
    assert_false(o.entries[0].has_i);
    assert_span(doc, o.entries[1].m, "<M/>");
    assert_false(o.entries[1].has_e);
    assert_span(doc, o.entries[2].m, "<M><T>1</T></M>");
    assert_false(o.entries[2].has_e || o.entries[2].has_n || o.entries[2].has_su);

    /* no entries at all */
    assert_int_equal(parse("<MD></MD>", &o), SW_OK);
    assert_int_equal(o.nentries, 0);
    assert_int_equal(parse("<MD/>", &o), SW_OK);
    assert_int_equal(parse("<MD> </MD>", &o), SW_OK);
    assert_int_equal(parse(HEAD "</MD>", &o), SW_OK);
    assert_int_equal(o.nentries, 0);
}

static void test_too_large(void **state)
{
    struct msnp_oim o;
    (void)state;
    assert_int_equal(parse("too-large", &o), SW_OK);
    assert_true(o.too_large);
    assert_int_equal(o.nentries, 0);
    assert_int_equal(parse("  too-large \t", &o), SW_OK);
    assert_true(o.too_large);
    assert_int_equal(parse("too-large!", &o), SW_ERROR);
    assert_int_equal(parse("too-large <MD></MD>", &o), SW_ERROR);
    assert_int_equal(parse("too-larg", &o), SW_ERROR);
}

static void test_malformed(void **state)
{
    static const struct {
        const char *doc;
        const char *err;
    } bad[] = {
        {"", "expected an element"},
        {"   ", "expected an element"},
        {"MD", "expected an element"},
        {"<MD>", "element not closed"},
        {"<MD><M>", "element not closed"},
        {"<MD></M>", "end tag does not match"},
        {"<MD></MDX>", "end tag does not match"},
        {"<MD><M><E>a</E></MD>", "end tag does not match"},
        {"<MD><M><E>a</E></M>", "element not closed"},
        {"<MD><M><E>a</E></M></MD>x", "data after MD"},
        {"<MD></MD><MD></MD>", "data after MD"},
        {"<XX></XX>", "root is not MD"},
        {"<MD>text</MD>", "text in MD"},
        {"<MD><M>text<E>a</E></M></MD>", "text mixed with elements"},
        {"<MD><M><E>a</E>text</M></MD>", "text mixed with elements"},
        {"<MD><M><N>a<b</N></M></MD>", "text mixed with elements"},
        {"<MD a='1'></MD>", "bad start tag"},
        {"<MD ></MD>", "bad start tag"},
        {"<MD><!-- c --></MD>", "bad element name"},
        {"<?xml version='1.0'?><MD></MD>", "bad element name"},
        {"<MD><![CDATA[x]]></MD>", "bad element name"},
        {"<></>", "bad element name"},
        {"<MD><ABCDEFGHIJKLMNOPQ/></MD>", "bad element name"},
        {"<MD><a><b><c><d>x</d></c></b></a></MD>", "elements nested too deep"},
        {"<MD><M><E>a</E><E>b</E></M></MD>", "entry field twice"},
        {"<MD><M><N>a</N><N/></M></MD>", "entry field twice"},
        {"<MD><M><N><x/></N></M></MD>", "entry field with child elements"},
        {"<MD><M><SU><b>x</b></SU></M></MD>", "entry field with child elements"},
        {"<MD><M><E>a</E></M", "end tag does not match"},
        {"<MD><M><E>a</E></M >", "end tag does not match"},
    };
    struct msnp_oim o;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].doc, &o);
        if (rc != SW_ERROR || strcmp(o.err, bad[i].err) != 0)
            fail_msg("%s: rc %d err %s, want %s", bad[i].doc, rc, rc == SW_ERROR ? o.err : "-",
                     bad[i].err);
    }
    /* four levels are fine */
    assert_int_equal(parse("<MD><a><b><c>x</c></b></a></MD>", &o), SW_OK);
    /* an element name of exactly MSNP_OIM_NAME_MAX bytes is fine */
    assert_int_equal(parse("<MD><ABCDEFGHIJKLMNOP/></MD>", &o), SW_OK);
    /* the error position: the mismatched end tag's name */
    assert_int_equal(parse("<MD><M></N></M></MD>", &o), SW_ERROR);
    assert_int_equal(o.err_pos, 9);
    /* NUL and other bytes in text are text */
    static const char nul[] = "<MD><M><N>a\0b\xff</N></M></MD>";
    assert_int_equal(parse_lim(nul, sizeof(nul) - 1, NULL, &o), SW_OK);
    assert_int_equal(o.entries[0].n.len, 4);

    /* every strict prefix of a valid value is an error (never a crash, never a read past it) */
    const char *doc = MD2;
    for (size_t n = 0; n < strlen(doc); n++)
        assert_int_equal(parse_lim(doc, n, NULL, &o), SW_ERROR);
    assert_int_equal(parse_lim(doc, strlen(doc), NULL, &o), SW_OK);
}

static void test_bounds(void **state)
{
    struct msnp_oim o;
    struct msnp_oim_limits lim;
    (void)state;
    msnp_oim_limits_default(&lim);
    assert_int_equal(lim.entries_max, MSNP_OIM_ENTRIES_MAX_DEFAULT);
    assert_int_equal(lim.field_max, MSNP_OIM_FIELD_MAX_DEFAULT);

    /* entries: at and past the bound */
    const char *three = "<MD><M/><M/><M/></MD>";
    lim.entries_max = 3;
    assert_int_equal(parse_lim(three, strlen(three), &lim, &o), SW_OK);
    assert_int_equal(o.nentries, 3);
    lim.entries_max = 2;
    assert_int_equal(parse_lim(three, strlen(three), &lim, &o), SW_ERROR);
    assert_string_equal(o.err, "too many entries");
    assert_int_equal(o.err_pos, 12);
    /* the default: 32 pass, 33 do not; the cap is accepted as a limit */
    char big[16 + 4 * (MSNP_OIM_ENTRIES_CAP + 1)];
    for (size_t n = MSNP_OIM_ENTRIES_MAX_DEFAULT; n <= MSNP_OIM_ENTRIES_MAX_DEFAULT + 1; n++) {
        size_t w = (size_t)sprintf(big, "<MD>");
        for (size_t i = 0; i < n; i++)
            w += (size_t)sprintf(big + w, "<M/>");
        w += (size_t)sprintf(big + w, "</MD>");
        assert_int_equal(parse_lim(big, w, NULL, &o),
                         n <= MSNP_OIM_ENTRIES_MAX_DEFAULT ? SW_OK : SW_ERROR);
    }
    lim.entries_max = MSNP_OIM_ENTRIES_CAP;
    assert_int_equal(parse_lim(big, strlen(big), &lim, &o), SW_OK);
    assert_int_equal(o.nentries, MSNP_OIM_ENTRIES_MAX_DEFAULT + 1);

    /* fields: at and past the bound, each of E, N, SU, I; other elements are not bounded */
    msnp_oim_limits_default(&lim);
    lim.field_max = 3;
    static const char *const at[] = {"<MD><M><E>abc</E></M></MD>", "<MD><M><N>abc</N></M></MD>",
                                     "<MD><M><SU>abc</SU></M></MD>", "<MD><M><I>abc</I></M></MD>",
                                     "<MD><M><RT>abcdef</RT></M></MD>"};
    static const char *const past[] = {"<MD><M><E>abcd</E></M></MD>", "<MD><M><N>abcd</N></M></MD>",
                                       "<MD><M><SU>abcd</SU></M></MD>",
                                       "<MD><M><I>abcd</I></M></MD>"};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        assert_int_equal(parse_lim(at[i], strlen(at[i]), &lim, &o), SW_OK);
    for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++) {
        assert_int_equal(parse_lim(past[i], strlen(past[i]), &lim, &o), SW_ERROR);
        assert_string_equal(o.err, "entry field too long");
    }

    /* limits out of range */
    static const struct msnp_oim_limits badlim[] = {
        {0, 10}, {MSNP_OIM_ENTRIES_CAP + 1, 10}, {1, 0}, {1, MSNP_OIM_FIELD_MAX_LIMIT + 1}};
    for (size_t i = 0; i < sizeof(badlim) / sizeof(badlim[0]); i++) {
        assert_int_equal(parse_lim("<MD/>", 5, &badlim[i], &o), SW_ERROR);
        assert_string_equal(o.err, "limit out of range");
    }
}

/* Removes the entries flagged in drop from doc; compares with want. */
static void check_remove(const char *doc, const bool *drop, const char *want)
{
    struct msnp_oim o;
    size_t len = strlen(doc), n = 0;
    uint8_t *b = copy_of(doc, len);
    assert_int_equal(msnp_oim_parse(b, len, NULL, &o), SW_OK);
    uint8_t *out = malloc(len > 0 ? len : 1);
    assert_non_null(out);
    assert_int_equal(msnp_oim_remove(b, len, &o, drop, out, len, &n), SW_OK);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    /* the result parses again, without the dropped entries */
    struct msnp_oim again;
    assert_int_equal(msnp_oim_parse(out, n, NULL, &again), SW_OK);
    size_t kept = 0;
    for (size_t i = 0; i < o.nentries; i++)
        kept += !drop[i];
    assert_int_equal(again.nentries, kept);
    free(out);
    free(b);
}

static void test_remove(void **state)
{
    (void)state;
    const bool none[2] = {false, false}, first[2] = {true, false}, second[2] = {false, true},
               both[2] = {true, true};
    check_remove(MD2, none, MD2);
    check_remove(MD2, first, HEAD M2 "</MD>");
    check_remove(MD2, second, HEAD M1 "</MD>");
    /* every entry dropped: <MD> stays valid with the rest of its children */
    check_remove(MD2, both, HEAD "</MD>");
    check_remove("<MD>" M1 M2 "</MD>", both, "<MD></MD>");
    /* whitespace around the dropped entries stays as it was */
    check_remove(" <MD> " M1 " <Q/> " M2 " </MD> ", first, " <MD>  <Q/> " M2 " </MD> ");
    check_remove(" <MD> " M1 " <Q/> " M2 " </MD> ", both, " <MD>  <Q/>  </MD> ");
    /* one entry: the sign-in-time notification of a new OIM */
    check_remove("<MD>" M2 "</MD>", first, "<MD></MD>");

    /* the output buffer too small */
    struct msnp_oim o;
    const char *doc = MD2;
    size_t len = strlen(doc), n = 0;
    uint8_t *b = copy_of(doc, len);
    assert_int_equal(msnp_oim_parse(b, len, NULL, &o), SW_OK);
    uint8_t out[sizeof(MD2)];
    size_t need = strlen(HEAD M2 "</MD>");
    assert_int_equal(msnp_oim_remove(b, len, &o, first, out, need - 1, &n), SW_ERROR);
    assert_int_equal(msnp_oim_remove(b, len, &o, first, out, need, &n), SW_OK);
    assert_int_equal(n, need);
    free(b);
}

/* Decodes s; checks the result. */
static void check_decode(const char *s, const char *want)
{
    size_t len = strlen(s), n = 0;
    uint8_t *b = copy_of(s, len);
    size_t cap = MSNP_OIM_DECODED_MAX(len);
    char *out = malloc(cap);
    assert_non_null(out);
    assert_int_equal(msnp_oim_decode(b, len, out, cap, &n), SW_OK);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("decode(%s) = '%.*s', want '%s'", s, (int)n, out, want);
    free(out);
    free(b);
}

static void test_decode(void **state)
{
    (void)state;
    /* B and Q, charsets and their spellings */
    check_decode("=?utf-8?B?Qm9i?=", "Bob");
    check_decode("=?UTF-8?b?Qm9i?=", "Bob");
    check_decode("=?utf8?B?w6ljb2xl?=", "\xc3\xa9"
                                        "cole");
    check_decode("=?utf-8?B?bG9sIHNlZSBpdA==?=", "lol see it");
    check_decode("=?utf-8?B?bG9sIHNlZSBpdA?=", "lol see it"); /* padding left out */
    check_decode("=?us-ascii?Q?hello_world?=", "hello world");
    check_decode("=?iso-8859-1?Q?caf=E9_au_lait?=", "caf\xc3\xa9 au lait");
    check_decode("=?ISO-8859-1?B?6Q==?=", "\xc3\xa9");
    check_decode("=?latin1?q?=C0=ff?=", "\xc3\x80\xc3\xbf");
    check_decode("=?utf-8?Q?=E2=98=BA?=", "\xe2\x98\xba");
    check_decode("=?utf-8*en?Q?hi?=", "hi"); /* RFC 2231 language */
    /* words and text around them; whitespace between two words dropped, elsewhere kept */
    check_decode("Re: =?utf-8?Q?a?= =?utf-8?Q?b?=  =?utf-8?B?Yw==?= end", "Re: abc end");
    check_decode("=?utf-8?Q?a?= x =?utf-8?Q?b?=", "a x b");
    check_decode("=?utf-8?Q?a?=\r\n =?utf-8?Q?b?=", "ab");
    check_decode("=?utf-8?Q?a?= ", "a ");
    check_decode("plain name", "plain name");
    check_decode("", "");
    check_decode(" ", " ");
    /* other charsets and malformed words are left as they are */
    check_decode("=?koi8-r?B?8NLJ18XU?=", "=?koi8-r?B?8NLJ18XU?=");
    check_decode("=?utf-8?X?abc?=", "=?utf-8?X?abc?=");
    check_decode("=?utf-8?B?Qm9i", "=?utf-8?B?Qm9i");
    check_decode("=?utf-8?B?Qm!i?=", "=?utf-8?B?Qm!i?=");
    check_decode("=?utf-8?B?Qm=9i?=", "=?utf-8?B?Qm=9i?=");
    check_decode("=?utf-8?Q?a=4?=", "=?utf-8?Q?a=4?=");
    check_decode("=?utf-8?Q?a=G1?=", "=?utf-8?Q?a=G1?=");
    check_decode("=?utf-8?Q?a\xe9?=", "=?utf-8?Q?a\xe9?=");
    check_decode("=??Q?a?=", "=??Q?a?=");
    check_decode("=?utf 8?Q?a?=", "=?utf 8?Q?a?=");
    check_decode("=?utf-8?Q?"
                 "?=",
                 "");
    check_decode("a=?b", "a=?b");
    /* XML entities in plain text */
    check_decode("&lt;b&gt; &amp; &quot;x&quot; &apos;", "<b> & \"x\" '");
    check_decode("&#233;&#x263A;&#X41;&#x1F600;", "\xc3\xa9\xe2\x98\xba&#X41;\xf0\x9f\x98\x80");
    check_decode("&#0; &#xD800; &#x110000; &#; &#x; &#12 &bogus; &",
                 "&#0; &#xD800; &#x110000; &#; &#x; "
                 "&#12 &bogus; &");
    check_decode("www.evil-pics.example&#47;pics.zip", "www.evil-pics.example/pics.zip");
    /* leading zeros, any number of them */
    check_decode("&#0000000000000000102;ree &#x00000000000070;ics &#x00000000110000;",
                 "free pics &#x00000000110000;");

    /* the output bound: cut at cap with SW_ERROR */
    const char *s = "=?utf-8?B?bG9sIHNlZSBpdA==?=";
    char out[4];
    size_t n = 99;
    assert_int_equal(msnp_oim_decode((const uint8_t *)s, strlen(s), out, sizeof(out), &n),
                     SW_ERROR);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "lol ", 4);
    assert_int_equal(msnp_oim_decode((const uint8_t *)"abc", 3, out, 3, &n), SW_OK);
    assert_int_equal(n, 3);
    assert_int_equal(msnp_oim_decode((const uint8_t *)"abc", 3, out, 0, &n), SW_ERROR);
    assert_int_equal(n, 0);
    /* the worst growth (ISO-8859-1 upper half in B) stays within MSNP_OIM_DECODED_MAX */
    char worst[64] = "=?iso-8859-1?B?";
    strcat(worst, "////////////////////////////////////////////?=");
    size_t wl = strlen(worst);
    char big[MSNP_OIM_DECODED_MAX(64)];
    assert_int_equal(msnp_oim_decode((const uint8_t *)worst, wl, big, MSNP_OIM_DECODED_MAX(wl), &n),
                     SW_OK);
    assert_int_equal(n, 66); /* 44 base64 chars: 33 bytes of 0xFF, two UTF-8 bytes each */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),   cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_remove),    cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
