/* PROXY protocol v1/v2 parser and v2 builder. See proxyproto.h for the contract and
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt for the format.
 *
 * The parser is re-entrant over a growing prefix: every call re-checks from byte 0, which is
 * cheap because a header is bounded (107 bytes for v1; for v2 only 16 bytes are looked at
 * until the announced length has arrived). Checks run in byte order, so feeding a header in
 * one piece or split anywhere gives the same result and the same error. */
#include "protocols/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_UNSPEC 0x0
#define V2_FAM_INET 0x1
#define V2_FAM_INET6 0x2
#define V2_FAM_UNIX 0x3
#define V2_TRANS_STREAM 0x1
#define V2_ADDR_INET 12
#define V2_ADDR_INET6 36
#define V2_ADDR_UNIX 216
#define V2_UNIQUE_ID_MAX 128

static ssize_t fail(struct proxyproto_parser *p, const char *why, size_t pos)
{
    p->err = why;
    p->err_pos = pos;
    return SW_ERROR;
}

void proxyproto_parser_init(struct proxyproto_parser *p)
{
    memset(p, 0, sizeof(*p));
    p->tlv_max = PROXYPROTO_TLV_MAX_DEFAULT;
}

/* CRC-32C (Castagnoli), bitwise: headers are at most a few KiB and checksums are rare. */
static uint32_t crc32c_update(uint32_t crc, const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= d[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

static uint16_t get_be16(const uint8_t *b)
{
    return (uint16_t)((b[0] << 8) | b[1]);
}

static uint32_t get_be32(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static void reset_result(struct proxyproto_result *out, int version)
{
    memset(out, 0, sizeof(*out));
    out->version = version;
    out->src.ss_family = AF_UNSPEC;
    out->dst.ss_family = AF_UNSPEC;
}

/* --- v1 -------------------------------------------------------------------------------------
 * "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, single spaces, nothing else. */

/* Decimal port 0..65535 without sign or leading zeros. */
static bool v1_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool v1_addr(int af, const char *s, size_t n, struct sockaddr_storage *ss, socklen_t *sl)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        *sl = sizeof(*sin);
        return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    *sl = sizeof(*sin6);
    return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
}

static void set_port(struct sockaddr_storage *ss, uint16_t host_order)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(host_order);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(host_order);
}

static ssize_t parse_v1(struct proxyproto_parser *p, const uint8_t *buf, size_t len,
                        struct proxyproto_result *out)
{
    size_t n = len < V1_SIG_LEN ? len : V1_SIG_LEN;
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (uint8_t)v1_sig[i])
            return fail(p, "bad v1 signature", i);
    if (len < V1_SIG_LEN)
        return 0;

    /* find CRLF, rejecting anything that cannot be part of the line on the way */
    size_t end = 0; /* index of the '\r' */
    size_t lim = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;
    for (size_t i = V1_SIG_LEN; i < lim; i++) {
        uint8_t c = buf[i];
        if (buf[i - 1] == '\r') {
            if (c != '\n')
                return fail(p, "v1: CR not followed by LF", i);
            end = i - 1;
            break;
        }
        if (c == '\n')
            return fail(p, "v1: LF without CR", i);
        if (c != '\r' && (c < 0x20 || c > 0x7e))
            return fail(p, "v1: invalid character", i);
    }
    if (end == 0) {
        if (len >= PROXYPROTO_V1_MAX)
            return fail(p, "v1: line too long", PROXYPROTO_V1_MAX);
        return 0;
    }

    const char *line = (const char *)buf;
    size_t pos = V1_SIG_LEN;
    if (end - pos >= 7 && memcmp(line + pos, "UNKNOWN", 7) == 0 &&
        (end - pos == 7 || line[pos + 7] == ' ')) {
        /* the receiver must ignore anything between UNKNOWN and CRLF */
        reset_result(out, 1);
        out->local = true;
        return (ssize_t)(end + 2);
    }
    /* exactly 5 fields separated by single spaces */
    size_t fs[5], fl[5];
    unsigned nf = 0;
    size_t start = pos;
    for (size_t i = pos; i <= end; i++) {
        if (i < end && line[i] != ' ')
            continue;
        if (i == start)
            return fail(p, "v1: empty field", i);
        if (nf == 5)
            return fail(p, "v1: too many fields", start);
        fs[nf] = start;
        fl[nf] = i - start;
        nf++;
        start = i + 1;
    }

    int af;
    if (fl[0] == 4 && memcmp(line + fs[0], "TCP4", 4) == 0)
        af = AF_INET;
    else if (fl[0] == 4 && memcmp(line + fs[0], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return fail(p, "v1: unknown protocol", fs[0]);
    if (nf != 5)
        return fail(p, "v1: missing fields", end);

    reset_result(out, 1);
    uint16_t sport, dport;
    if (!v1_addr(af, line + fs[1], fl[1], &out->src, &out->src_len))
        return fail(p, "v1: bad source address", fs[1]);
    if (!v1_addr(af, line + fs[2], fl[2], &out->dst, &out->dst_len))
        return fail(p, "v1: bad destination address", fs[2]);
    if (!v1_port(line + fs[3], fl[3], &sport))
        return fail(p, "v1: bad source port", fs[3]);
    if (!v1_port(line + fs[4], fl[4], &dport))
        return fail(p, "v1: bad destination port", fs[4]);
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    return (ssize_t)(end + 2);
}

/* --- v2 ---------------------------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const uint8_t *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static ssize_t parse_ssl_tlv(struct proxyproto_parser *p, const uint8_t *v, size_t n, size_t vpos,
                             struct proxyproto_result *out)
{
    if (n < 5)
        return fail(p, "v2: SSL TLV too short", vpos);
    out->has_ssl = true;
    out->ssl_client = v[0];
    out->ssl_verify = get_be32(v + 1);
    for (size_t i = 5; i < n;) {
        if (n - i < 3)
            return fail(p, "v2: truncated SSL sub-TLV", vpos + i);
        uint8_t type = v[i];
        size_t sl = get_be16(v + i + 1);
        if (sl > n - i - 3)
            return fail(p, "v2: SSL sub-TLV overruns its TLV", vpos + i + 1);
        const uint8_t *sv = v + i + 3;
        if (type == PP2_SUBTYPE_SSL_VERSION)
            copy_str(out->ssl_version, sizeof(out->ssl_version), sv, sl);
        else if (type == PP2_SUBTYPE_SSL_CIPHER)
            copy_str(out->ssl_cipher, sizeof(out->ssl_cipher), sv, sl);
        i += 3 + sl;
    }
    return 0;
}

static ssize_t parse_tlvs(struct proxyproto_parser *p, const uint8_t *buf, size_t off, size_t end,
                          struct proxyproto_result *out)
{
    bool seen_crc = false;
    out->tlv = buf + off;
    out->tlv_len = end - off;
    for (size_t i = off; i < end;) {
        if (end - i < 3)
            return fail(p, "v2: truncated TLV", i);
        uint8_t type = buf[i];
        size_t n = get_be16(buf + i + 1);
        if (n > end - i - 3)
            return fail(p, "v2: TLV overruns the header", i + 1);
        const uint8_t *v = buf + i + 3;
        size_t vpos = i + 3;
        switch (type) {
        case PP2_TYPE_AUTHORITY:
            if (n == 0 || n > PROXYPROTO_AUTHORITY_MAX)
                return fail(p, "v2: bad AUTHORITY length", i + 1);
            for (size_t k = 0; k < n; k++)
                if (v[k] <= 0x20 || v[k] >= 0x7f)
                    return fail(p, "v2: bad AUTHORITY character", vpos + k);
            out->has_authority = true;
            copy_str(out->authority, sizeof(out->authority), v, n);
            break;
        case PP2_TYPE_CRC32C: {
            if (n != 4)
                return fail(p, "v2: bad CRC32C length", i + 1);
            if (seen_crc)
                return fail(p, "v2: duplicate CRC32C", i);
            seen_crc = true;
            static const uint8_t zero[4] = {0, 0, 0, 0};
            uint32_t crc = crc32c_update(0xFFFFFFFFu, buf, vpos);
            crc = crc32c_update(crc, zero, 4);
            crc = crc32c_update(crc, buf + vpos + 4, end - vpos - 4);
            if ((crc ^ 0xFFFFFFFFu) != get_be32(v))
                return fail(p, "v2: CRC32C mismatch", vpos);
            break;
        }
        case PP2_TYPE_UNIQUE_ID:
            if (n > V2_UNIQUE_ID_MAX)
                return fail(p, "v2: UNIQUE_ID too long", i + 1);
            break;
        case PP2_TYPE_SSL:
            if (parse_ssl_tlv(p, v, n, vpos, out) < 0)
                return SW_ERROR;
            break;
        default:
            break; /* ALPN, NOOP, NETNS, custom and unknown types: ignored as the spec asks */
        }
        i += 3 + n;
    }
    return 0;
}

static ssize_t parse_v2(struct proxyproto_parser *p, const uint8_t *buf, size_t len,
                        struct proxyproto_result *out)
{
    size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != v2_sig[i])
            return fail(p, "bad v2 signature", i);
    if (len < 13)
        return 0;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0F;
    if (ver != 2)
        return fail(p, "v2: bad version", 12);
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return fail(p, "v2: unknown command", 12);
    if (len < 14)
        return 0;
    uint8_t fam = buf[13] >> 4, trans = buf[13] & 0x0F;
    size_t addr_len = 0;
    if (cmd == V2_CMD_PROXY) {
        /* LOCAL discards the whole block, family included (spec 2.2); PROXY is checked */
        switch (fam) {
        case V2_FAM_UNSPEC:
            break;
        case V2_FAM_INET:
            addr_len = V2_ADDR_INET;
            break;
        case V2_FAM_INET6:
            addr_len = V2_ADDR_INET6;
            break;
        case V2_FAM_UNIX:
            return fail(p, "v2: unsupported family (unix)", 13);
        default:
            return fail(p, "v2: unknown address family", 13);
        }
        if (fam != V2_FAM_UNSPEC && trans != V2_TRANS_STREAM)
            return fail(p, "v2: unsupported transport (not stream)", 13);
    }
    if (len < PROXYPROTO_V2_HDR_LEN)
        return 0;
    size_t hlen = get_be16(buf + 14);
    size_t tlv_max = p->tlv_max > PROXYPROTO_TLV_MAX_LIMIT ? PROXYPROTO_TLV_MAX_LIMIT : p->tlv_max;
    size_t max = (cmd == V2_CMD_PROXY ? addr_len : V2_ADDR_UNIX) + tlv_max;
    if (hlen > max)
        return fail(p, "v2: header longer than allowed", 14);
    if (hlen < addr_len)
        return fail(p, "v2: length too short for the address family", 14);
    size_t total = PROXYPROTO_V2_HDR_LEN + hlen;
    if (len < total)
        return 0;

    reset_result(out, 2);
    if (cmd == V2_CMD_LOCAL || fam == V2_FAM_UNSPEC) {
        out->local = true;
        if (cmd == V2_CMD_LOCAL)
            return (ssize_t)total;
    }
    const uint8_t *a = buf + PROXYPROTO_V2_HDR_LEN;
    if (fam == V2_FAM_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->src_len = out->dst_len = sizeof(struct sockaddr_in);
    } else if (fam == V2_FAM_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->src_len = out->dst_len = sizeof(struct sockaddr_in6);
    }
    if (parse_tlvs(p, buf, PROXYPROTO_V2_HDR_LEN + addr_len, total, out) < 0)
        return SW_ERROR;
    return (ssize_t)total;
}

ssize_t proxyproto_parse(struct proxyproto_parser *p, const uint8_t *buf, size_t len,
                         struct proxyproto_result *out)
{
    p->err = NULL;
    p->err_pos = 0;
    if (len == 0)
        return 0;
    if (buf[0] == 'P')
        return parse_v1(p, buf, len, out);
    if (buf[0] == 0x0D)
        return parse_v2(p, buf, len, out);
    return fail(p, "not a PROXY protocol header", 0);
}

/* --- v2 builder -------------------------------------------------------------------------- */

static size_t tlv_str_len(const char *s)
{
    return s != NULL ? 3 + strlen(s) : 0;
}

size_t proxyproto_build_v2_max(const struct proxyproto_tlvs *t)
{
    size_t n = PROXYPROTO_V2_HDR_LEN + V2_ADDR_INET6;
    if (t == NULL)
        return n;
    n += tlv_str_len(t->authority) + tlv_str_len(t->alpn);
    if (t->ssl)
        n += 3 + 5 + tlv_str_len(t->ssl_version) + tlv_str_len(t->ssl_cipher);
    if (t->crc32c)
        n += 3 + 4;
    return n;
}

static void put_be16(uint8_t *b, size_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static size_t put_tlv(uint8_t *b, uint8_t type, const char *s)
{
    size_t n = strlen(s);
    b[0] = type;
    put_be16(b + 1, n);
    memcpy(b + 3, s, n);
    return 3 + n;
}

/* IPv4 as ::ffff:a.b.c.d, port kept. */
static void map_v4(const struct sockaddr *sa, struct sockaddr_in6 *out)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    memset(out, 0, sizeof(*out));
    out->sin6_family = AF_INET6;
    out->sin6_port = sin->sin_port;
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
}

ssize_t proxyproto_build_v2(uint8_t *out, size_t cap, const struct sockaddr *src,
                            const struct sockaddr *dst, const struct proxyproto_tlvs *t)
{
    const size_t str_max = 65000;
    if (t != NULL) {
        const char *strs[4] = {t->authority, t->alpn, t->ssl_version, t->ssl_cipher};
        for (int i = 0; i < 4; i++)
            if (strs[i] != NULL && strlen(strs[i]) > str_max)
                return SW_ERROR;
    }
    size_t need = proxyproto_build_v2_max(t);
    if (need - PROXYPROTO_V2_HDR_LEN > 0xFFFF)
        return SW_ERROR;

    struct sockaddr_in6 m_src, m_dst;
    uint8_t fam = 0;
    size_t addr_len = 0;
    if (src != NULL) {
        if (dst == NULL)
            return SW_ERROR;
        int sf = src->sa_family, df = dst->sa_family;
        if ((sf != AF_INET && sf != AF_INET6) || (df != AF_INET && df != AF_INET6))
            return SW_ERROR;
        if (sf != df) {
            if (sf == AF_INET) {
                map_v4(src, &m_src);
                src = (const struct sockaddr *)&m_src;
            }
            if (df == AF_INET) {
                map_v4(dst, &m_dst);
                dst = (const struct sockaddr *)&m_dst;
            }
        }
        if (src->sa_family == AF_INET) {
            fam = (V2_FAM_INET << 4) | V2_TRANS_STREAM;
            addr_len = V2_ADDR_INET;
        } else {
            fam = (V2_FAM_INET6 << 4) | V2_TRANS_STREAM;
            addr_len = V2_ADDR_INET6;
        }
    }
    if (cap < need)
        return SW_ERROR;

    memcpy(out, v2_sig, sizeof(v2_sig));
    out[12] = (uint8_t)(0x20 | (src != NULL ? V2_CMD_PROXY : V2_CMD_LOCAL));
    out[13] = fam;
    uint8_t *a = out + PROXYPROTO_V2_HDR_LEN;
    if (addr_len == V2_ADDR_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src;
        const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
        memcpy(a, &s->sin_addr, 4);
        memcpy(a + 4, &d->sin_addr, 4);
        memcpy(a + 8, &s->sin_port, 2);
        memcpy(a + 10, &d->sin_port, 2);
    } else if (addr_len == V2_ADDR_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
        memcpy(a, &s->sin6_addr, 16);
        memcpy(a + 16, &d->sin6_addr, 16);
        memcpy(a + 32, &s->sin6_port, 2);
        memcpy(a + 34, &d->sin6_port, 2);
    }
    size_t pos = PROXYPROTO_V2_HDR_LEN + addr_len;
    uint8_t *crc_at = NULL; /* the CRC32C TLV's value, filled in once the header is complete */
    if (t != NULL) {
        if (t->alpn != NULL)
            pos += put_tlv(out + pos, PP2_TYPE_ALPN, t->alpn);
        if (t->authority != NULL)
            pos += put_tlv(out + pos, PP2_TYPE_AUTHORITY, t->authority);
        if (t->ssl) {
            size_t start = pos;
            out[pos] = PP2_TYPE_SSL;
            pos += 3;
            out[pos++] = (uint8_t)(t->ssl_client | PP2_CLIENT_SSL);
            out[pos++] = (uint8_t)(t->ssl_verify >> 24);
            out[pos++] = (uint8_t)(t->ssl_verify >> 16);
            out[pos++] = (uint8_t)(t->ssl_verify >> 8);
            out[pos++] = (uint8_t)t->ssl_verify;
            if (t->ssl_version != NULL)
                pos += put_tlv(out + pos, PP2_SUBTYPE_SSL_VERSION, t->ssl_version);
            if (t->ssl_cipher != NULL)
                pos += put_tlv(out + pos, PP2_SUBTYPE_SSL_CIPHER, t->ssl_cipher);
            put_be16(out + start + 1, pos - start - 3);
        }
        if (t->crc32c) {
            out[pos] = PP2_TYPE_CRC32C;
            put_be16(out + pos + 1, 4);
            crc_at = out + pos + 3;
            memset(crc_at, 0, 4);
            pos += 7;
        }
    }
    put_be16(out + 14, pos - PROXYPROTO_V2_HDR_LEN);
    if (crc_at != NULL) {
        uint32_t crc = crc32c_update(0xFFFFFFFFu, out, pos) ^ 0xFFFFFFFFu;
        crc_at[0] = (uint8_t)(crc >> 24);
        crc_at[1] = (uint8_t)(crc >> 16);
        crc_at[2] = (uint8_t)(crc >> 8);
        crc_at[3] = (uint8_t)crc;
    }
    return (ssize_t)pos;
}
