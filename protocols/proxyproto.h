/* The HAProxy PROXY protocol, versions 1 (text) and 2 (binary): a strict parser for the header
 * a trusted load balancer puts in front of a connection, and a builder for the v2 header the
 * proxy sends to its upstream (Prosody mod_net_proxy, ejabberd use_proxy_protocol).
 *
 * Pure: no I/O, no allocation, no logging. The parser works on the bytes received so far from
 * the start of the connection (picohttpparser style): the caller keeps the unconsumed prefix in
 * its buffer and calls again with the same bytes plus whatever arrived since. It never reads
 * past the header, so whatever follows it (a TLS ClientHello, an XMPP stream) stays in the
 * caller's buffer untouched. Malformed input is rejected as early as the first wrong byte, so
 * a peer that does not speak the protocol fails at once instead of waiting for a timeout.
 *
 *   start --'P'--> v1: "PROXY " ("TCP4 " | "TCP6 ") src ' ' dst ' ' sport ' ' dport "\r\n"
 *     |                        | "UNKNOWN" [anything printable] "\r\n"         (<= 107 bytes)
 *     +--0x0D--> v2: 12-byte signature, ver_cmd, fam, len(be16), addresses, TLVs
 *     +--other--> error at offset 0
 */
#ifndef SW_PROTOCOLS_PROXYPROTO_H
#define SW_PROTOCOLS_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "protocols/sw_rc.h"

#define PROXYPROTO_V1_MAX 107           /* longest v1 line, CRLF included (spec section 2.1) */
#define PROXYPROTO_V2_HDR_LEN 16        /* fixed part of a v2 header */
#define PROXYPROTO_TLV_MAX_DEFAULT 1024 /* default bound on the TLV bytes of a v2 header */
#define PROXYPROTO_TLV_MAX_LIMIT 65000  /* highest accepted tlv_max (the len field is 16 bits) */
#define PROXYPROTO_AUTHORITY_MAX 255    /* longest PP2_TYPE_AUTHORITY kept (a DNS name) */
#define PROXYPROTO_SSL_STR_MAX 63       /* longest SSL version / cipher string kept */

/* v2 TLV types (spec section 2.2.x) */
enum proxyproto_tlv_type {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_TYPE_NETNS = 0x30,
};

/* PP2_TYPE_SSL client bits */
#define PP2_CLIENT_SSL 0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04

struct proxyproto_parser {
    size_t tlv_max; /* bound on the v2 TLV bytes; PROXYPROTO_TLV_MAX_DEFAULT after init */
    /* set when proxyproto_parse returns < 0; err is a static string, err_pos a byte offset
     * from the start of the header */
    const char *err;
    size_t err_pos;
};

struct proxyproto_result {
    int version; /* 1 or 2 */
    /* true for the v2 LOCAL command, v1 "UNKNOWN" and v2 PROXY over AF_UNSPEC: the header
     * carries no usable addresses and the caller keeps the socket's own endpoints; src and dst
     * are then zeroed with ss_family AF_UNSPEC */
    bool local;
    struct sockaddr_storage src; /* AF_INET or AF_INET6, port in network order as usual */
    struct sockaddr_storage dst;
    socklen_t src_len, dst_len; /* sizeof(struct sockaddr_in[6]); 0 when local */

    /* v2 TLVs (absent in v1). tlv borrows the caller's buffer: the raw TLV bytes, valid while
     * that buffer is; the fields below are copies. A CRC32C TLV, when present, was verified. */
    const uint8_t *tlv;
    size_t tlv_len;
    bool has_authority;
    char authority[PROXYPROTO_AUTHORITY_MAX + 1]; /* NUL-terminated (SNI the balancer saw) */
    bool has_ssl;
    uint8_t ssl_client;                           /* PP2_CLIENT_* bits */
    uint32_t ssl_verify;                          /* 0 when the client certificate verified */
    char ssl_version[PROXYPROTO_SSL_STR_MAX + 1]; /* "" when absent */
    char ssl_cipher[PROXYPROTO_SSL_STR_MAX + 1];  /* "" when absent */
};

/* Sets defaults (tlv_max = PROXYPROTO_TLV_MAX_DEFAULT). Call once per connection. */
void proxyproto_parser_init(struct proxyproto_parser *p);

/* Parses a v1 or v2 header at the start of buf (the first len bytes received on the
 * connection; the caller's buffer, borrowed only for the call except for out->tlv). Returns
 * > 0: the header is complete, that many bytes belong to it and out is filled;
 *   0: need more bytes (no error so far); call again with the same prefix and more after it;
 *   < 0 (SW_ERROR): malformed, p->err says why and p->err_pos where; the connection must be
 *       closed (out is unspecified). Never reads buf beyond len or beyond the header. */
ssize_t proxyproto_parse(struct proxyproto_parser *p, const uint8_t *buf, size_t len,
                         struct proxyproto_result *out);

/* Optional TLVs for proxyproto_build_v2. Strings are borrowed; NULL means absent. */
struct proxyproto_tlvs {
    const char *authority;   /* PP2_TYPE_AUTHORITY, e.g. the SNI the client sent */
    const char *alpn;        /* PP2_TYPE_ALPN, e.g. "xmpp-client" */
    bool ssl;                /* emit PP2_TYPE_SSL (the client leg was TLS) */
    uint8_t ssl_client;      /* PP2_CLIENT_* bits; PP2_CLIENT_SSL is always set when ssl */
    uint32_t ssl_verify;     /* 0 = client certificate verified (or none asked) */
    const char *ssl_version; /* PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3" */
    const char *ssl_cipher;  /* PP2_SUBTYPE_SSL_CIPHER */
    bool crc32c;             /* append a PP2_TYPE_CRC32C checksum of the whole header */
};

/* Writes a v2 header into out (cap bytes). With src and dst both non-NULL, the PROXY command
 * over TCP: AF_INET or AF_INET6 (a mix is sent as IPv6 with the IPv4 address v4-mapped);
 * with src == NULL, the LOCAL command (dst ignored; health checks). tlvs may be NULL; each
 * string must be at most 65000 bytes. Borrows everything. cap must be at least
 * proxyproto_build_v2_max(tlvs). Returns the header length, or SW_ERROR if cap is below that,
 * a string is too long or an address family is unsupported (out unspecified). */
ssize_t proxyproto_build_v2(uint8_t *out, size_t cap, const struct sockaddr *src,
                            const struct sockaddr *dst, const struct proxyproto_tlvs *tlvs);

/* Worst-case length of a v2 header from proxyproto_build_v2 with the given tlvs (may be
 * NULL), so callers can size a buffer. */
size_t proxyproto_build_v2_max(const struct proxyproto_tlvs *tlvs);

#endif
