/* Fuzz target for protocols/proxyproto.c. Besides memory safety it checks the parser contract:
 * a complete header is never longer than the input, parsing exactly its bytes gives the same
 * length, no shorter prefix fails or completes, a tighter tlv_max never accepts what the
 * default refused, and a parsed PROXY header survives a rebuild through the v2 builder. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/proxyproto.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static ssize_t parse(const uint8_t *data, size_t size, size_t tlv_max, struct proxyproto_result *r)
{
    struct proxyproto_parser p;
    proxyproto_parser_init(&p);
    if (tlv_max != 0)
        p.tlv_max = tlv_max;
    ssize_t rc = proxyproto_parse(&p, data, size, r);
    check(rc >= 0 || (p.err != NULL && p.err_pos <= size));
    check(rc <= (ssize_t)size);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_result r, r2;
    ssize_t rc = parse(data, size, 0, &r);

    if (rc > 0) {
        check(parse(data, (size_t)rc, 0, &r2) == rc);
        for (size_t k = 0; k < (size_t)rc; k++)
            check(parse(data, k, 0, &r2) == 0);
    }
    ssize_t tight = parse(data, size, 64, &r2);
    check(rc <= 0 ? tight <= rc || (rc == 0 && tight <= 0) : tight < 0 || tight == rc);

    if (rc > 0 && !r.local) {
        struct proxyproto_tlvs t;
        memset(&t, 0, sizeof(t));
        t.authority = r.has_authority ? r.authority : NULL;
        t.ssl = r.has_ssl;
        t.ssl_client = r.ssl_client;
        t.ssl_verify = r.ssl_verify;
        t.ssl_version = r.ssl_version[0] != '\0' ? r.ssl_version : NULL;
        t.ssl_cipher = r.ssl_cipher[0] != '\0' ? r.ssl_cipher : NULL;
        t.crc32c = true;
        uint8_t out[1024];
        ssize_t n = proxyproto_build_v2(out, sizeof(out), (const struct sockaddr *)&r.src,
                                        (const struct sockaddr *)&r.dst, &t);
        check(n > 0);
        check(parse(out, (size_t)n, 0, &r2) == n);
        check(r2.src_len == r.src_len && memcmp(&r2.src, &r.src, r.src_len) == 0);
        check(r2.dst_len == r.dst_len && memcmp(&r2.dst, &r.dst, r.dst_len) == 0);
        check(r2.has_authority == r.has_authority && strcmp(r2.authority, r.authority) == 0);
        check(r2.has_ssl == r.has_ssl && r2.ssl_verify == r.ssl_verify);
    }
    return 0;
}
