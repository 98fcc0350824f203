/* Unit tests for protocols/proxyproto.c.
 *
 * Every valid vector is parsed whole, then as every growing prefix (byte by byte, each prefix
 * in its own exact-size allocation so that ASan catches a read past len), then split at every
 * offset (first part, then the whole), with trailing bytes after the header; every way must
 * give the same byte count and the same result. Every error vector must fail with the expected
 * reason and position whole and at exactly the first prefix that makes it wrong, and no earlier
 * prefix may fail. The builder is checked by round trips through the parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "protocols/proxyproto.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

struct outcome {
    ssize_t rc;
    const char *err;
    size_t err_pos;
    struct proxyproto_result res;
    size_t tlv_off; /* res.tlv - buf, so results from different copies compare */
};

static void parse_copy(const uint8_t *buf, size_t len, size_t tlv_max, struct outcome *o)
{
    uint8_t *in = malloc(len > 0 ? len : 1);
    assert_non_null(in);
    if (len > 0)
        memcpy(in, buf, len);
    struct proxyproto_parser p;
    proxyproto_parser_init(&p);
    if (tlv_max != 0)
        p.tlv_max = tlv_max;
    memset(o, 0, sizeof(*o));
    o->rc = proxyproto_parse(&p, in, len, &o->res);
    o->err = p.err;
    o->err_pos = p.err_pos;
    if (o->rc > 0 && o->res.tlv != NULL) {
        assert_true(o->res.tlv >= in && o->res.tlv + o->res.tlv_len <= in + o->rc);
        o->tlv_off = (size_t)(o->res.tlv - in);
    }
    o->res.tlv = NULL;
    free(in);
}

static void assert_same(const struct outcome *a, const struct outcome *b)
{
    assert_int_equal(a->rc, b->rc);
    if (a->rc < 0) {
        assert_string_equal(a->err, b->err);
        assert_int_equal(a->err_pos, b->err_pos);
        return;
    }
    if (a->rc == 0)
        return;
    const struct proxyproto_result *x = &a->res, *y = &b->res;
    assert_int_equal(x->version, y->version);
    assert_int_equal(x->local, y->local);
    assert_int_equal(x->src_len, y->src_len);
    assert_int_equal(x->dst_len, y->dst_len);
    assert_memory_equal(&x->src, &y->src, x->src_len);
    assert_memory_equal(&x->dst, &y->dst, x->dst_len);
    assert_int_equal(x->tlv_len, y->tlv_len);
    assert_int_equal(a->tlv_off, b->tlv_off);
    assert_int_equal(x->has_authority, y->has_authority);
    assert_string_equal(x->authority, y->authority);
    assert_int_equal(x->has_ssl, y->has_ssl);
    assert_int_equal(x->ssl_client, y->ssl_client);
    assert_int_equal(x->ssl_verify, y->ssl_verify);
    assert_string_equal(x->ssl_version, y->ssl_version);
    assert_string_equal(x->ssl_cipher, y->ssl_cipher);
}

/* Parses a valid header every way; returns the whole-buffer outcome in *out. */
static void check_valid(const uint8_t *hdr, size_t len, size_t tlv_max, struct outcome *out)
{
    struct outcome whole, o;
    parse_copy(hdr, len, tlv_max, &whole);
    if (whole.rc <= 0)
        fail_msg("valid vector rejected: rc %zd err %s at %zu", whole.rc,
                 whole.err ? whole.err : "-", whole.err_pos);
    assert_int_equal(whole.rc, len);

    /* byte by byte: every shorter prefix needs more, the full one completes */
    for (size_t k = 0; k < len; k++) {
        parse_copy(hdr, k, tlv_max, &o);
        if (o.rc != 0)
            fail_msg("prefix %zu of a valid vector: rc %zd err %s", k, o.rc, o.err ? o.err : "-");
    }

    /* trailing data (the TLS ClientHello or stream that follows) is never consumed */
    uint8_t *more = malloc(len + 64);
    assert_non_null(more);
    memcpy(more, hdr, len);
    memset(more + len, 0x16, 64);
    for (size_t extra = 1; extra <= 64; extra *= 4) {
        parse_copy(more, len + extra, tlv_max, &o);
        assert_same(&whole, &o);
    }

    /* split at every offset: one parser, first call with the head, second with everything */
    for (size_t k = 0; k <= len; k++) {
        struct proxyproto_parser p;
        struct proxyproto_result r;
        proxyproto_parser_init(&p);
        if (tlv_max != 0)
            p.tlv_max = tlv_max;
        ssize_t rc1 = proxyproto_parse(&p, more, k, &r);
        assert_int_equal(rc1, k == len ? (ssize_t)len : 0);
        memset(&o, 0, sizeof(o));
        o.rc = proxyproto_parse(&p, more, len + 5, &o.res);
        if (o.res.tlv != NULL)
            o.tlv_off = (size_t)(o.res.tlv - more);
        o.res.tlv = NULL;
        assert_same(&whole, &o);
    }
    free(more);
    if (out != NULL)
        *out = whole;
}

/* An invalid header must fail with reason `why` at `pos`, whole and at the first bad prefix. */
static void check_error(const uint8_t *hdr, size_t len, size_t tlv_max, const char *why, size_t pos)
{
    struct outcome whole, o;
    parse_copy(hdr, len, tlv_max, &whole);
    if (whole.rc >= 0 || whole.err == NULL || strstr(whole.err, why) == NULL)
        fail_msg("want \"%s\", got rc %zd err %s", why, whole.rc, whole.err ? whole.err : "-");
    assert_int_equal(whole.err_pos, pos);
    bool failed = false;
    for (size_t k = 0; k <= len; k++) {
        parse_copy(hdr, k, tlv_max, &o);
        if (!failed && o.rc < 0) {
            failed = true;
            assert_same(&whole, &o);
        } else if (failed) {
            assert_same(&whole, &o); /* more bytes never change a verdict */
        } else {
            assert_int_equal(o.rc, 0);
        }
    }
    assert_true(failed);
}

static void assert_in4(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];
    assert_int_equal(sin->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, addr);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_in6(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    assert_string_equal(buf, addr);
    assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* --- v1 ------------------------------------------------------------------------------------ */

static void test_v1_tcp4(void **state)
{
    struct outcome o;
    check_valid(S("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), 0, &o);
    assert_int_equal(o.res.version, 1);
    assert_false(o.res.local);
    assert_int_equal(o.res.src_len, sizeof(struct sockaddr_in));
    assert_in4(&o.res.src, "192.0.2.1", 56324);
    assert_in4(&o.res.dst, "198.51.100.2", 443);
    assert_int_equal(o.res.tlv_len, 0);
    check_valid(S("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), 0, &o);
    assert_in4(&o.res.src, "0.0.0.0", 0);
    assert_in4(&o.res.dst, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state)
{
    struct outcome o;
    check_valid(S("PROXY TCP6 2001:db8::1 2001:db8::2 1 5222\r\n"), 0, &o);
    assert_int_equal(o.res.version, 1);
    assert_int_equal(o.res.src_len, sizeof(struct sockaddr_in6));
    assert_in6(&o.res.src, "2001:db8::1", 1);
    assert_in6(&o.res.dst, "2001:db8::2", 5222);
    check_valid(S("PROXY TCP6 ::ffff:192.0.2.1 ::1 1863 1863\r\n"), 0, &o);
    assert_in6(&o.res.src, "::ffff:192.0.2.1", 1863);
}

static void test_v1_unknown(void **state)
{
    struct outcome o;
    check_valid(S("PROXY UNKNOWN\r\n"), 0, &o);
    assert_true(o.res.local);
    assert_int_equal(o.res.src.ss_family, AF_UNSPEC);
    assert_int_equal(o.res.src_len, 0);
    /* the longest line the spec allows: exactly 107 bytes */
    const char *longest = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(longest), PROXYPROTO_V1_MAX);
    check_valid((const uint8_t *)longest, strlen(longest), 0, &o);
    assert_true(o.res.local);
    check_valid(S("PROXY UNKNOWN  anything  goes\r\n"), 0, NULL);
}

static void test_v1_errors(void **state)
{
    check_error(S("GET / HTTP/1.0\r\n"), 0, "not a PROXY protocol header", 0);
    check_error(S("\x16\x03\x01\x02\x00"), 0, "not a PROXY protocol header", 0);
    check_error(S("PROXX TCP4"), 0, "bad v1 signature", 4);
    check_error(S("PROXY\r\n"), 0, "bad v1 signature", 5);
    check_error(S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), 0, "unknown protocol", 6);
    check_error(S("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), 0, "unknown protocol", 6);
    check_error(S("PROXY UNKNOWNX\r\n"), 0, "unknown protocol", 6);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), 0, "LF without CR", 30);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), 0, "CR not followed by LF", 31);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n"), 0, "invalid character", 30);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 \xc3\xa9\r\n"), 0, "invalid character", 29);
    check_error(S("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), 0, "empty field", 19);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), 0, "empty field", 31);
    check_error(S("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 0, "empty field", 6);
    check_error(S("PROXY \r\n"), 0, "empty field", 6);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), 0, "missing fields", 28);
    check_error(S("PROXY TCP4\r\n"), 0, "missing fields", 10);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), 0, "too many fields", 31);
    check_error(S("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), 0, "bad source address", 11);
    check_error(S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), 0, "bad source address", 11);
    check_error(S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), 0, "bad source address", 11);
    check_error(S("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"), 0, "bad destination address", 19);
    check_error(S("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), 0, "bad source address", 11);
    check_error(S("PROXY TCP6 ::1 ::g 1 2\r\n"), 0, "bad destination address", 15);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), 0, "bad source port", 27);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), 0, "bad source port", 27);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), 0, "bad source port", 27);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n"), 0, "bad destination port", 29);
    check_error(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n"), 0, "bad destination port", 29);

    /* over-long: no CRLF within 107 bytes */
    char longl[200];
    memset(longl, 'a', sizeof(longl));
    memcpy(longl, "PROXY UNKNOWN ", 14);
    check_error((const uint8_t *)longl, sizeof(longl), 0, "line too long", PROXYPROTO_V1_MAX);
    /* CRLF one byte too late: 108 bytes */
    memcpy(longl + 106, "\r\n", 2);
    check_error((const uint8_t *)longl, 108, 0, "line too long", PROXYPROTO_V1_MAX);
    /* and just in time */
    memcpy(longl + 105, "\r\n", 2);
    check_valid((const uint8_t *)longl, 107, 0, NULL);
}

/* --- v2 ------------------------------------------------------------------------------------ */

#define SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"

static void test_v2_inet(void **state)
{
    struct outcome o;
    /* 192.0.2.1:56324 -> 198.51.100.2:5222, no TLV */
    check_valid(S(SIG "\x21\x11\x00\x0C"
                      "\xC0\x00\x02\x01"
                      "\xC6\x33\x64\x02"
                      "\xDC\x04\x14\x66"),
                0, &o);
    assert_int_equal(o.res.version, 2);
    assert_false(o.res.local);
    assert_in4(&o.res.src, "192.0.2.1", 56324);
    assert_in4(&o.res.dst, "198.51.100.2", 5222);
    assert_int_equal(o.res.tlv_len, 0);
    assert_false(o.res.has_authority);
    assert_false(o.res.has_ssl);
}

static void test_v2_inet6_tlvs(void **state)
{
    struct outcome o;
    /* [2001:db8::1]:443 -> [2001:db8::2]:5223, ALPN, AUTHORITY, NOOP, custom 0xE0, SSL with
     * VERSION, CN and CIPHER sub-TLVs */
    check_valid(S(SIG "\x21\x21\x00\x7B"
                      "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                      "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
                      "\x01\xBB\x14\x67"
                      "\x01\x00\x0B"
                      "xmpp-client"
                      "\x02\x00\x0B"
                      "example.org"
                      "\x04\x00\x02\x00\x00"
                      "\xE0\x00\x01\x7F"
                      "\x20\x00\x2F"
                      "\x07\x00\x00\x00\x00"
                      "\x21\x00\x07TLSv1.3"
                      "\x22\x00\x04user"
                      "\x23\x00\x16TLS_AES_256_GCM_SHA384"),
                0, &o);
    assert_int_equal(o.res.version, 2);
    assert_in6(&o.res.src, "2001:db8::1", 443);
    assert_in6(&o.res.dst, "2001:db8::2", 5223);
    assert_int_equal(o.res.tlv_len, 0x7B - 36);
    assert_int_equal(o.tlv_off, 16 + 36);
    assert_true(o.res.has_authority);
    assert_string_equal(o.res.authority, "example.org");
    assert_true(o.res.has_ssl);
    assert_int_equal(o.res.ssl_client, 7);
    assert_int_equal(o.res.ssl_verify, 0);
    assert_string_equal(o.res.ssl_version, "TLSv1.3");
    assert_string_equal(o.res.ssl_cipher, "TLS_AES_256_GCM_SHA384");
}

static void test_v2_local_and_unspec(void **state)
{
    struct outcome o;
    check_valid(S(SIG "\x20\x00\x00\x00"), 0, &o);
    assert_int_equal(o.res.version, 2);
    assert_true(o.res.local);
    assert_int_equal(o.res.src.ss_family, AF_UNSPEC);
    /* LOCAL discards the block whatever the family says */
    check_valid(S(SIG "\x20\x55\x00\x05"
                      "\x01\x02\x03\x04\x05"),
                0, &o);
    assert_true(o.res.local);
    /* PROXY over UNSPEC: no addresses, TLVs still parsed */
    check_valid(S(SIG "\x21\x00\x00\x06"
                      "\x02\x00\x03xyz"),
                0, &o);
    assert_true(o.res.local);
    assert_true(o.res.has_authority);
    assert_string_equal(o.res.authority, "xyz");
}

static void test_v2_errors(void **state)
{
    check_error(S("\x0D\x0A\x0D\x0A\x01"), 0, "bad v2 signature", 4);
    check_error(S("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B"), 0, "bad v2 signature", 11);
    check_error(S(SIG "\x11\x11\x00\x0C"), 0, "bad version", 12);
    check_error(S(SIG "\x31\x11\x00\x0C"), 0, "bad version", 12);
    check_error(S(SIG "\x22\x11\x00\x0C"), 0, "unknown command", 12);
    check_error(S(SIG "\x2F\x11\x00\x0C"), 0, "unknown command", 12);
    check_error(S(SIG "\x21\x41\x00\x0C"), 0, "unknown address family", 13);
    check_error(S(SIG "\x21\x31\x00\xD8"), 0, "unsupported family (unix)", 13);
    check_error(S(SIG "\x21\x12\x00\x0C"), 0, "unsupported transport", 13);
    check_error(S(SIG "\x21\x10\x00\x0C"), 0, "unsupported transport", 13);
    check_error(S(SIG "\x21\x23\x00\x24"), 0, "unsupported transport", 13);
    check_error(S(SIG "\x21\x11\x00\x0B"), 0, "too short for the address family", 14);
    check_error(S(SIG "\x21\x21\x00\x0C"), 0, "too short for the address family", 14);
    /* announced length over the bound: rejected before the bytes arrive */
    check_error(S(SIG "\x21\x11\xFF\xFF"), 0, "longer than allowed", 14);
    check_error(S(SIG "\x20\x00\x05\x00"), 0, "longer than allowed", 14);
    check_error(S(SIG "\x21\x11\x00\x17"
                      "\xC0\x00\x02\x01\xC6\x33\x64\x02\xDC\x04\x14\x66"
                      "\x04\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00"),
                10, "longer than allowed", 14);

#define A4 "\xC0\x00\x02\x01\xC6\x33\x64\x02\xDC\x04\x14\x66"
    check_error(S(SIG "\x21\x11\x00\x0E" A4 "\x04\x00"), 0, "truncated TLV", 28);
    check_error(S(SIG "\x21\x11\x00\x10" A4 "\x04\x00\x02\x00"), 0, "TLV overruns", 29);
    check_error(S(SIG "\x21\x11\x00\x0F" A4 "\x02\x00\x00"), 0, "bad AUTHORITY length", 29);
    check_error(S(SIG "\x21\x11\x00\x12" A4 "\x02\x00\x03"
                      "a b"),
                0, "bad AUTHORITY character", 32);
    check_error(S(SIG "\x21\x11\x00\x12" A4 "\x03\x00\x03"
                      "abc"),
                0, "bad CRC32C length", 29);
    check_error(S(SIG "\x21\x11\x00\x13" A4 "\x03\x00\x04"
                      "\x00\x00\x00\x00"),
                0, "CRC32C mismatch", 31);
    check_error(S(SIG "\x21\x11\x00\x0F" A4 "\x20\x00\x00"), 0, "SSL TLV too short", 31);
    check_error(S(SIG "\x21\x11\x00\x16" A4 "\x20\x00\x07\x01\x00\x00\x00\x00\x21\x00"), 0,
                "truncated SSL sub-TLV", 36);
    check_error(S(SIG "\x21\x11\x00\x17" A4 "\x20\x00\x08\x01\x00\x00\x00\x00\x21\x00\x09"), 0,
                "SSL sub-TLV overruns", 37);

    uint8_t big[16 + 12 + 3 + 129];
    memcpy(big, SIG "\x21\x11\x00\x90" A4 "\x05\x00\x81", 31);
    memset(big + 31, 'u', 129);
    check_error(big, sizeof(big), 0, "UNIQUE_ID too long", 29);
    big[30] = 0x80; /* 128 bytes is fine */
    big[15] = 0x8F;
    check_valid(big, sizeof(big) - 1, 0, NULL);
#undef A4
}

/* --- builder ------------------------------------------------------------------------------- */

static void sin4(struct sockaddr_in *s, const char *addr, unsigned port)
{
    memset(s, 0, sizeof(*s));
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &s->sin_addr), 1);
}

static void sin6(struct sockaddr_in6 *s, const char *addr, unsigned port)
{
    memset(s, 0, sizeof(*s));
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, addr, &s->sin6_addr), 1);
}

static void test_build_roundtrip(void **state)
{
    uint8_t buf[1024];
    struct sockaddr_in s4, d4;
    struct sockaddr_in6 s6, d6;
    struct outcome o;
    sin4(&s4, "203.0.113.7", 40000);
    sin4(&d4, "10.0.0.1", 5222);
    sin6(&s6, "2001:db8::7", 40001);
    sin6(&d6, "2001:db8::1", 5269);

    ssize_t n =
        proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s4, (struct sockaddr *)&d4, NULL);
    assert_int_equal(n, 28);
    assert_true((size_t)n <= proxyproto_build_v2_max(NULL));
    check_valid(buf, (size_t)n, 0, &o);
    assert_in4(&o.res.src, "203.0.113.7", 40000);
    assert_in4(&o.res.dst, "10.0.0.1", 5222);

    n = proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s6, (struct sockaddr *)&d6, NULL);
    assert_int_equal(n, 52);
    check_valid(buf, (size_t)n, 0, &o);
    assert_in6(&o.res.src, "2001:db8::7", 40001);
    assert_in6(&o.res.dst, "2001:db8::1", 5269);

    /* mixed families go out as IPv6 with the IPv4 side v4-mapped */
    n = proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s4, (struct sockaddr *)&d6, NULL);
    check_valid(buf, (size_t)n, 0, &o);
    assert_in6(&o.res.src, "::ffff:203.0.113.7", 40000);
    assert_in6(&o.res.dst, "2001:db8::1", 5269);
    n = proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s6, (struct sockaddr *)&d4, NULL);
    check_valid(buf, (size_t)n, 0, &o);
    assert_in6(&o.res.dst, "::ffff:10.0.0.1", 5222);

    /* LOCAL */
    n = proxyproto_build_v2(buf, sizeof(buf), NULL, NULL, NULL);
    assert_int_equal(n, 16);
    check_valid(buf, (size_t)n, 0, &o);
    assert_true(o.res.local);

    /* every TLV, with and without a checksum */
    struct proxyproto_tlvs t = {
        .authority = "chat.example.org",
        .alpn = "xmpp-client",
        .ssl = true,
        .ssl_client = PP2_CLIENT_CERT_SESS,
        .ssl_verify = 0x01020304,
        .ssl_version = "TLSv1.2",
        .ssl_cipher = "ECDHE-RSA-AES128-GCM-SHA256",
    };
    for (int crc = 0; crc <= 1; crc++) {
        t.crc32c = crc;
        n = proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s6, (struct sockaddr *)&d6,
                                &t);
        assert_true(n > 52);
        assert_true((size_t)n <= proxyproto_build_v2_max(&t));
        check_valid(buf, (size_t)n, 0, &o);
        assert_in6(&o.res.src, "2001:db8::7", 40001);
        assert_true(o.res.has_authority);
        assert_string_equal(o.res.authority, "chat.example.org");
        assert_true(o.res.has_ssl);
        assert_int_equal(o.res.ssl_client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS);
        assert_int_equal(o.res.ssl_verify, 0x01020304);
        assert_string_equal(o.res.ssl_version, "TLSv1.2");
        assert_string_equal(o.res.ssl_cipher, "ECDHE-RSA-AES128-GCM-SHA256");
        if (crc) {
            /* any flipped bit is caught by the checksum */
            for (ssize_t i = 16; i < n; i++) {
                if (i >= n - 7 && i < n - 4)
                    continue; /* the CRC TLV's own type and length */
                buf[i] ^= 0x01;
                struct outcome bad;
                parse_copy(buf, (size_t)n, 0, &bad);
                assert_true(bad.rc < 0);
                buf[i] ^= 0x01;
            }
        }
    }

    /* a TLV total over tlv_max is refused by a stricter receiver */
    n = proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s4, (struct sockaddr *)&d4, &t);
    parse_copy(buf, (size_t)n, 16, &o);
    assert_true(o.rc < 0);
    assert_string_equal(o.err, "v2: header longer than allowed");
}

static void test_build_errors(void **state)
{
    uint8_t buf[256];
    struct sockaddr_in s4, d4;
    sin4(&s4, "203.0.113.7", 1);
    sin4(&d4, "10.0.0.1", 2);
    assert_int_equal(
        proxyproto_build_v2(buf, 27, (struct sockaddr *)&s4, (struct sockaddr *)&d4, NULL),
        SW_ERROR);
    assert_int_equal(proxyproto_build_v2(buf, 15, NULL, NULL, NULL), SW_ERROR);
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_int_equal(
        proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&un, (struct sockaddr *)&d4, NULL),
        SW_ERROR);
    assert_int_equal(proxyproto_build_v2(buf, sizeof(buf), (struct sockaddr *)&s4, NULL, NULL),
                     SW_ERROR);
    struct proxyproto_tlvs t = {.authority = "example.org"};
    assert_int_equal(
        proxyproto_build_v2(buf, 52 + 3 + 5, (struct sockaddr *)&s4, (struct sockaddr *)&d4, &t),
        SW_ERROR); /* cap below the worst case is refused even if it would fit */
    char *huge = malloc(70000);
    assert_non_null(huge);
    memset(huge, 'a', 69999);
    huge[69999] = '\0';
    t.authority = huge;
    uint8_t *big = malloc(80000);
    assert_non_null(big);
    assert_int_equal(
        proxyproto_build_v2(big, 80000, (struct sockaddr *)&s4, (struct sockaddr *)&d4, &t),
        SW_ERROR);
    free(big);
    free(huge);
}

static void test_parse_empty(void **state)
{
    struct proxyproto_parser p;
    struct proxyproto_result r;
    proxyproto_parser_init(&p);
    assert_int_equal(p.tlv_max, PROXYPROTO_TLV_MAX_DEFAULT);
    assert_int_equal(proxyproto_parse(&p, (const uint8_t *)"", 0, &r), 0);
    assert_null(p.err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_empty),   cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),       cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_errors),     cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_inet6_tlvs), cmocka_unit_test(test_v2_local_and_unspec),
        cmocka_unit_test(test_v2_errors),     cmocka_unit_test(test_build_roundtrip),
        cmocka_unit_test(test_build_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
