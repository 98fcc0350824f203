/* Unit tests for protocols/msnp/msnp_mime.c and msnp_chunks.c: MSG payload vectors (text/plain
 * with charsets, typing, invites with file names, datacasts, P2P data and the file-transfer
 * SLP INVITE with its UTF-16LE file name, bare LF), every header error path, and chunk
 * reassembly in order, out of order, with duplicates, across senders and against every bound
 * (pending messages, chunks per message, arena bytes, output size, timeout). The last test
 * runs a whole chunked conversation through the framing parser one byte at a time and checks
 * the reassembled message equals the one reassembled from whole-buffer parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/msnp/msnp_chunks.h"
#include "protocols/msnp/msnp_mime.h"
#include "protocols/msnp/msnp_parser.h"

/* Parses s[0..len) from an exact-size copy (ASan sees overruns); the copy is leaked into
 * *keep so slices stay valid; the caller frees it. */
static int parse(const char *s, size_t len, const struct msnp_mime_limits *lim, struct msnp_mime *m,
                 uint8_t **keep)
{
    uint8_t *b = malloc(len > 0 ? len : 1);
    assert_non_null(b);
    memcpy(b, s, len);
    *keep = b;
    return msnp_mime_parse(b, len, lim, m);
}

static void assert_slice(const uint8_t *p, size_t n, const char *want)
{
    assert_non_null(p);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_text_plain(void **state)
{
    struct msnp_mime m;
    uint8_t *b;
    (void)state;
    assert_int_equal(parse(S("MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=UTF-8\r\n"
                             "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
                             "\r\n"
                             "lol! see it! u'll like it. http://x.example/pic.scr"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_TEXT);
    assert_int_equal(m.nheaders, 3);
    assert_slice(m.media_type, m.media_type_len, "text/plain");
    assert_slice(m.charset, m.charset_len, "UTF-8");
    assert_true(m.utf8);
    assert_slice(m.body, m.body_len, "lol! see it! u'll like it. http://x.example/pic.scr");
    assert_int_equal(m.body_pos, 117);
    const struct msnp_mime_header *h = msnp_mime_header(&m, "x-mms-im-format");
    assert_non_null(h);
    assert_slice(h->value, h->value_len, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0");
    assert_null(msnp_mime_header(&m, "Chunks"));
    assert_false(m.has_chunks);
    assert_false(m.has_chunk);
    free(b);

    /* bare LF, quoted charset in another case, extra parameters, empty body */
    assert_int_equal(
        parse(S("Content-Type:TEXT/Plain ; format=flowed; CHARSET=\"utf8\"\n\n"), NULL, &m, &b),
        SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_TEXT);
    assert_slice(m.charset, m.charset_len, "utf8");
    assert_true(m.utf8);
    assert_int_equal(m.body_len, 0);
    free(b);

    assert_int_equal(
        parse(S("Content-Type: text/plain; charset=ISO-8859-1\r\n\r\nol\xe9"), NULL, &m, &b),
        SW_OK);
    assert_false(m.utf8);
    assert_slice(m.body, m.body_len, "ol\xe9");
    free(b);

    /* no Content-Type at all (a later chunk, for instance) */
    assert_int_equal(parse(S("MIME-Version: 1.0\r\n\r\nx"), NULL, &m, &b), SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_NONE);
    assert_null(m.media_type);
    assert_true(m.utf8);
    free(b);
}

static void test_kinds(void **state)
{
    static const struct {
        const char *type;
        enum msnp_mime_kind kind;
    } v[] = {
        {"text/x-clientcaps", MSNP_MIME_CAPS},
        {"text/x-mms-emoticon", MSNP_MIME_EMOTICON},
        {"text/x-mms-animemoticon", MSNP_MIME_EMOTICON},
        {"text/x-keepalive", MSNP_MIME_KEEPALIVE},
        {"text/x-msmsgsprofile; charset=UTF-8", MSNP_MIME_PROFILE},
        {"text/x-msmsgsinitialemailnotification; charset=UTF-8", MSNP_MIME_PROFILE},
        {"application/x-msmsgssystemmessage", MSNP_MIME_PROFILE},
        {"image/gif", MSNP_MIME_OTHER},
        {"", MSNP_MIME_OTHER},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char buf[256];
        struct msnp_mime m;
        uint8_t *b;
        int n = snprintf(buf, sizeof(buf), "Content-Type: %s\r\n\r\n", v[i].type);
        assert_int_equal(parse(buf, (size_t)n, NULL, &m, &b), SW_OK);
        assert_int_equal(m.kind, v[i].kind);
        free(b);
    }
}

static void test_typing(void **state)
{
    struct msnp_mime m;
    uint8_t *b;
    (void)state;
    assert_int_equal(parse(S("MIME-Version: 1.0\r\n"
                             "Content-Type: text/x-msmsgscontrol\r\n"
                             "TypingUser: bob@example.com\r\n"
                             "\r\n"
                             "\r\n"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_TYPING);
    assert_slice(m.typing_user, m.typing_user_len, "bob@example.com");
    assert_slice(m.body, m.body_len, "\r\n");
    free(b);
}

static void test_invite(void **state)
{
    struct msnp_mime m;
    uint8_t *b;
    (void)state;
    assert_int_equal(parse(S("MIME-Version: 1.0\r\n"
                             "Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n"
                             "\r\n"
                             "Application-Name: File Transfer\r\n"
                             "Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n"
                             "Invitation-Command: INVITE\r\n"
                             "Invitation-Cookie: 91235\r\n"
                             "Application-File: summer pictures.zip\r\n"
                             "Application-FileSize: 48213\r\n"
                             "Connectivity: N\r\n"
                             "\r\n"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_INVITE);
    assert_slice(m.invitation_command, m.invitation_command_len, "INVITE");
    assert_slice(m.application_name, m.application_name_len, "File Transfer");
    assert_slice(m.application_guid, m.application_guid_len,
                 "{5D3E02AB-6190-11d3-BBBB-00C04F795683}");
    assert_slice(m.file_name, m.file_name_len, "summer pictures.zip");
    assert_true(m.has_file_size);
    assert_int_equal(m.file_size, 48213);
    free(b);

    /* ACCEPT carries no file; junk lines are skipped; bare LF */
    assert_int_equal(parse(S("Content-Type: text/x-msmsgsinvite\n\n"
                             "junk\nInvitation-Command: ACCEPT\nApplication-FileSize: x\n"),
                           NULL, &m, &b),
                     SW_OK);
    assert_slice(m.invitation_command, m.invitation_command_len, "ACCEPT");
    assert_null(m.file_name);
    assert_false(m.has_file_size);
    free(b);
}

static void test_datacast(void **state)
{
    struct msnp_mime m;
    uint8_t *b;
    (void)state;
    assert_int_equal(parse(S("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsdatacast\r\n\r\n"
                             "ID: 1\r\n\r\n"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_DATACAST);
    assert_true(m.has_datacast_id);
    assert_int_equal(m.datacast_id, 1);
    assert_null(m.datacast_data);
    free(b);
    assert_int_equal(parse(S("Content-Type: text/x-msmsgsdatacast\r\n\r\n"
                             "ID: 4\r\nData: look at my pics http://x.example/a.zip\r\n\r\n"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.datacast_id, 4);
    assert_slice(m.datacast_data, m.datacast_data_len, "look at my pics http://x.example/a.zip");
    free(b);
}

/* ---- P2P ------------------------------------------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static size_t b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    return o;
}

/* MSG payload: P2P headers + 48-byte header + data + footer. Returns its length. */
static size_t p2p_payload(uint8_t *out, uint32_t session, uint64_t offset, uint64_t total,
                          const uint8_t *data, size_t n, uint32_t app_id)
{
    static const char hdr[] = "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\n"
                              "P2P-Dest: bob@example.com\r\n\r\n";
    size_t o = sizeof(hdr) - 1;
    memcpy(out, hdr, o);
    memset(out + o, 0, 48);
    put_le32(out + o, session);
    put_le32(out + o + 4, 0x0d10a0b0);
    put_le64(out + o + 8, offset);
    put_le64(out + o + 16, total);
    put_le32(out + o + 24, (uint32_t)n);
    put_le32(out + o + 28, 0);
    o += 48;
    memcpy(out + o, data, n);
    o += n;
    out[o++] = (uint8_t)(app_id >> 24);
    out[o++] = (uint8_t)(app_id >> 16);
    out[o++] = (uint8_t)(app_id >> 8);
    out[o++] = (uint8_t)app_id;
    return o;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A P2P v2 MSG payload (MSNP16+): an 8-byte header plus hl_tlv bytes of header TLVs (zeros),
 * then, when n > 0 or remaining is set, a data header for session with, if remaining != 0, a
 * "data remaining" TLV, then data[0..n); a 4-byte footer when footer. */
static size_t p2p2_payload(uint8_t *out, uint32_t session, const uint8_t *data, size_t n,
                           uint64_t remaining, size_t hl_tlv, bool footer)
{
    static const char hdr[] = "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\n"
                              "P2P-Dest: bob@example.com;{F52973B6-C926-4BAD-9BA8-7C1E840E4AB0}"
                              "\r\n\r\n";
    size_t o = sizeof(hdr) - 1;
    memcpy(out, hdr, o);
    size_t hl = 8 + hl_tlv, dhl = remaining != 0 ? 20 : 8;
    size_t ml = n > 0 || remaining != 0 ? dhl + n : 0;
    uint8_t *h = out + o;
    memset(h, 0, hl + ml + 4);
    h[0] = (uint8_t)hl;
    h[1] = 0;
    h[2] = (uint8_t)(ml >> 8);
    h[3] = (uint8_t)ml;
    put_be32(h + 4, 0x51a2b3c4);
    if (ml > 0) {
        uint8_t *dh = h + hl;
        dh[0] = (uint8_t)dhl;
        dh[1] = 0x01; /* first */
        dh[3] = 1;    /* package 1 */
        put_be32(dh + 4, session);
        if (remaining != 0) {
            dh[8] = 1;
            dh[9] = 8;
            put_be32(dh + 10, (uint32_t)(remaining >> 32));
            put_be32(dh + 14, (uint32_t)remaining);
        }
        memcpy(dh + dhl, data, n);
    }
    o += hl + ml;
    if (footer) {
        put_be32(out + o, 2);
        o += 4;
    }
    return o;
}

/* An SLP INVITE for a file transfer of name (UTF-16 units) with the given size. */
static size_t slp_invite(char *out, const uint16_t *name, size_t units, uint64_t size,
                         const char *euf)
{
    uint8_t ctx[574];
    char ctx64[800];
    memset(ctx, 0, sizeof(ctx));
    put_le32(ctx, 574);
    put_le32(ctx + 4, 2);
    put_le64(ctx + 8, size);
    put_le32(ctx + 16, 1);
    for (size_t i = 0; i < units; i++) {
        ctx[20 + 2 * i] = (uint8_t)name[i];
        ctx[21 + 2 * i] = (uint8_t)(name[i] >> 8);
    }
    put_le32(ctx + 540, 0xFFFFFFFF);
    size_t k = b64(ctx, sizeof(ctx), ctx64);
    ctx64[k] = '\0';
    char body[1200];
    int bn = snprintf(body, sizeof(body),
                      "EUF-GUID: %s\r\nSessionID: 1980589\r\nAppID: 2\r\nContext: %s\r\n\r\n", euf,
                      ctx64);
    int n = snprintf(out, 2000,
                     "INVITE MSNMSGR:bob@example.com MSNSLP/1.0\r\n"
                     "To: <msnmsgr:bob@example.com>\r\n"
                     "From: <msnmsgr:alice@example.com>\r\n"
                     "Via: MSNSLP/1.0/TLP ;branch={A0D624A6-6C0C-4283-A9E0-BC97B4B46D32}\r\n"
                     "CSeq: 0 \r\n"
                     "Call-ID: {F13B5C0A-0C53-4A69-9E6A-3C7E6FE8A1A1}\r\n"
                     "Max-Forwards: 0\r\n"
                     "Content-Type: application/x-msnmsgr-sessionreqbody\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     bn + 1, body);
    out[n] = '\0'; /* SLP bodies end with a NUL */
    return (size_t)n + 1;
}

static void test_p2p(void **state)
{
    uint8_t payload[4096];
    char slp[2000];
    struct msnp_mime m;
    (void)state;
    /* "pics ö 😀.scr" in UTF-16 */
    static const uint16_t name[] = {'p',    'i',    'c', 's', ' ', 0xF6, ' ',
                                    0xD83D, 0xDE00, '.', 's', 'c', 'r'};
    size_t sn = slp_invite(slp, name, 13, 123456, "{5D3E02AB-6190-11D3-BBBB-00C04F795683}");
    size_t n = p2p_payload(payload, 0, 0, sn, (const uint8_t *)slp, sn, 0);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_P2P);
    assert_slice(m.p2p_dest, m.p2p_dest_len, "bob@example.com");
    assert_true(m.p2p_valid);
    assert_int_equal(m.p2p_session_id, 0);
    assert_int_equal(m.p2p_id, 0x0d10a0b0);
    assert_int_equal(m.p2p_msg_size, sn);
    assert_int_equal(m.p2p_total_size, sn);
    assert_int_equal(m.p2p_app_id, 0);
    assert_true(m.p2p_slp);
    assert_true(m.p2p_file_transfer);
    assert_slice(m.file_name, m.file_name_len, "pics \xc3\xb6 \xf0\x9f\x98\x80.scr");
    assert_ptr_equal(m.file_name, (const uint8_t *)m.file_buf);
    assert_true(m.has_file_size);
    assert_int_equal(m.file_size, 123456);

    /* an unpaired surrogate becomes U+FFFD */
    static const uint16_t bad[] = {'a', 0xDC00, 'b', 0xD800};
    sn = slp_invite(slp, bad, 4, 1, "{5D3E02AB-6190-11D3-BBBB-00C04F795683}");
    n = p2p_payload(payload, 0, 0, sn, (const uint8_t *)slp, sn, 0);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_slice(m.file_name, m.file_name_len,
                 "a\xef\xbf\xbd"
                 "b\xef\xbf\xbd");

    /* another EUF-GUID (a webcam invite): SLP, but no file transfer */
    sn = slp_invite(slp, name, 4, 1, "{4BD96FC0-AB17-4425-A14A-439185962DC8}");
    n = p2p_payload(payload, 0, 0, sn, (const uint8_t *)slp, sn, 0);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_slp);
    assert_false(m.p2p_file_transfer);
    assert_null(m.file_name);

    /* the INVITE split over two P2P messages: only reported as P2P */
    sn = slp_invite(slp, name, 13, 1, "{5D3E02AB-6190-11D3-BBBB-00C04F795683}");
    n = p2p_payload(payload, 0, 0, sn, (const uint8_t *)slp, 600, 0);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_false(m.p2p_file_transfer);
    assert_null(m.file_name);

    /* file data: binary with CR LF and NUL, session 7, app id 2 */
    static const uint8_t data[] = {'\r', '\n', 0, 'P', 'K', 3, 4, '\n', 0xff, 0};
    n = p2p_payload(payload, 7, 1202, 50000, data, sizeof(data), 2);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_int_equal(m.p2p_session_id, 7);
    assert_int_equal(m.p2p_offset, 1202);
    assert_int_equal(m.p2p_total_size, 50000);
    assert_int_equal(m.p2p_app_id, 2);
    assert_false(m.p2p_slp);
    assert_null(m.file_name);

    /* P2P v2 (MSNP16+): the same INVITE whole in session 0, with and without a footer and
     * with header TLVs: the file name is found */
    sn = slp_invite(slp, name, 13, 123456, "{5D3E02AB-6190-11D3-BBBB-00C04F795683}");
    for (int v = 0; v < 3; v++) {
        n = p2p2_payload(payload, 0, (const uint8_t *)slp, sn, 0, v == 2 ? 12 : 0, v != 1);
        assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
        assert_true(m.p2p_valid);
        assert_int_equal(m.p2p_version, 2);
        assert_int_equal(m.p2p_id, 0x51a2b3c4);
        assert_int_equal(m.p2p_msg_size, 8 + sn);
        assert_int_equal(m.p2p_app_id, v != 1 ? 2 : 0);
        assert_true(m.p2p_slp);
        assert_true(m.p2p_file_transfer);
        assert_slice(m.file_name, m.file_name_len, "pics \xc3\xb6 \xf0\x9f\x98\x80.scr");
        assert_int_equal(m.file_size, 123456);
    }
    /* v2, split (data remaining): SLP, but not read as a whole INVITE */
    n = p2p2_payload(payload, 0, (const uint8_t *)slp, 600, sn - 600, 0, true);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_true(m.p2p_slp);
    assert_false(m.p2p_file_transfer);
    assert_null(m.file_name);
    /* v2 file data in session 9, and a v2 ack (no data header) */
    n = p2p2_payload(payload, 9, data, sizeof(data), 0, 0, true);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_int_equal(m.p2p_session_id, 9);
    assert_false(m.p2p_slp);
    n = p2p2_payload(payload, 0, NULL, 0, 0, 0, true);
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_int_equal(m.p2p_msg_size, 0);
    /* v2 with a length that disagrees with the body, or a data header longer than ML */
    n = p2p2_payload(payload, 0, (const uint8_t *)slp, sn, 0, 0, true);
    assert_int_equal(msnp_mime_parse(payload, n - 1, NULL, &m), SW_OK);
    assert_false(m.p2p_valid);
    assert_null(m.file_name);
    n = p2p2_payload(payload, 0, (const uint8_t *)slp, 100, 0, 0, true);
    uint8_t *dh = (uint8_t *)memmem(payload, n, "\r\n\r\n", 4) + 4 + 8;
    dh[0] = 250;
    assert_int_equal(msnp_mime_parse(payload, n, NULL, &m), SW_OK);
    assert_true(m.p2p_valid);
    assert_false(m.p2p_slp);
    assert_null(m.file_name);

    /* a body that does not fit the layout is not an error, just not valid */
    n = p2p_payload(payload, 7, 0, 10, data, sizeof(data), 2);
    assert_int_equal(msnp_mime_parse(payload, n - 1, NULL, &m), SW_OK);
    assert_false(m.p2p_valid);
    assert_int_equal(msnp_mime_parse(payload, 100, NULL, &m), SW_OK);
    assert_false(m.p2p_valid);
}

static void test_chunk_headers(void **state)
{
    struct msnp_mime m;
    uint8_t *b;
    (void)state;
    assert_int_equal(parse(S("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                             "Message-ID: {2A8E3A3C-1111-2222-3333-0123456789AB}\r\n"
                             "Chunks: 3\r\n\r\nfirst part"),
                           NULL, &m, &b),
                     SW_OK);
    assert_slice(m.message_id, m.message_id_len, "{2A8E3A3C-1111-2222-3333-0123456789AB}");
    assert_true(m.has_chunks);
    assert_int_equal(m.chunks, 3);
    assert_false(m.has_chunk);
    free(b);
    assert_int_equal(parse(S("Message-ID: {2A8E3A3C-1111-2222-3333-0123456789AB}\r\n"
                             "Chunk: 2\r\n\r\nlast part"),
                           NULL, &m, &b),
                     SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_NONE);
    assert_true(m.has_chunk);
    assert_int_equal(m.chunk, 2);
    free(b);
}

static void test_errors(void **state)
{
    static const struct {
        const char *in;
        const char *err;
        size_t pos;
    } v[] = {
        {"Content-Type: text/plain\r\n", "headers not terminated", 26},
        {"Content-Type: text/plain", "headers not terminated", 24},
        {"", "headers not terminated", 0},
        {"Content-Type text/plain\r\n\r\n", "header without a name", 0},
        {": x\r\n\r\n", "header without a name", 0},
        {"A: 1\r\nBad Name: x\r\n\r\n", "bad header name", 9},
        {"Content-Type: a\r\ncontent-type: b\r\n\r\n", "duplicate header", 17},
        {"Message-ID: a\r\nMessage-ID: b\r\n\r\n", "duplicate header", 15},
        {"Message-ID: a\r\nChunks: 2\r\nChunks: 2\r\n\r\n", "duplicate header", 26},
        {"Message-ID: a\r\nChunk: 2\r\nChunk: 2\r\n\r\n", "duplicate header", 25},
        {"Message-ID: a\r\nChunks: 0\r\n\r\n", "bad Chunks header", 23},
        {"Message-ID: a\r\nChunks: 1025\r\n\r\n", "bad Chunks header", 23},
        {"Message-ID: a\r\nChunks: -1\r\n\r\n", "bad Chunks header", 23},
        {"Message-ID: a\r\nChunk: x\r\n\r\n", "bad Chunk header", 22},
        {"Message-ID: a\r\nChunk: 1024\r\n\r\n", "bad Chunk header", 22},
        {"Chunks: 2\r\n\r\n", "Chunks without Message-ID", 8},
        {"Chunk: 1\r\n\r\n", "Chunks without Message-ID", 7},
        {"Message-ID: a\r\nChunks: 2\r\nChunk: 1\r\n\r\n", "both Chunks and Chunk", 33},
        {"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", "too many headers", 24},
        {"A: 123456789012345678901234567890\r\n\r\n", "header line too long", 32},
    };
    struct msnp_mime_limits lim;
    (void)state;
    msnp_mime_limits_default(&lim);
    lim.headers_max = 4;
    lim.header_len_max = 32;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct msnp_mime m;
        uint8_t *b;
        int rc = parse(v[i].in, strlen(v[i].in), &lim, &m, &b);
        if (rc != SW_ERROR || strcmp(m.err, v[i].err) != 0 || m.err_pos != v[i].pos) {
            print_error("vector %zu: rc %d err %s @%zu\n", i, rc, rc == SW_ERROR ? m.err : "-",
                        m.err_pos);
            fail();
        }
        free(b);
    }
    /* exactly at the limits passes */
    struct msnp_mime m;
    uint8_t *b;
    assert_int_equal(
        parse(S("A: 1\r\nB: 2\r\nC: 3\r\nA: 12345678901234567890123456\r\n\r\n"), &lim, &m, &b),
        SW_OK);
    free(b);
    lim.headers_max = 0;
    assert_int_equal(parse(S("\r\n"), &lim, &m, &b), SW_ERROR);
    free(b);
    lim.headers_max = MSNP_MIME_HEADERS_CAP + 1;
    assert_int_equal(parse(S("\r\n"), &lim, &m, &b), SW_ERROR);
    free(b);
}

/* ---- chunk reassembly ------------------------------------------------------------------------ */

#define ID "{2A8E3A3C-1111-2222-3333-0123456789AB}"
static const char chunk0[] = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                             "Message-ID: " ID "\r\nChunks: 3\r\n\r\nwho is beside you ";
static const char chunk1[] = "Message-ID: " ID "\r\nChunk: 1\r\n\r\nin this pic ";
static const char chunk2[] = "Message-ID: " ID "\r\nChunk: 2\r\n\r\nhttp://x.example/p.zip";
static const char whole[] = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                            "Message-ID: " ID "\r\nChunks: 3\r\n\r\n"
                            "who is beside you in this pic http://x.example/p.zip";

struct chunks_fixture {
    struct msnp_chunks c;
    uint8_t *mem;
    uint8_t out[8192];
    size_t out_len;
};

static void fx_init(struct chunks_fixture *f, const struct msnp_chunks_limits *lim)
{
    struct msnp_chunks_limits d;
    if (lim == NULL) {
        msnp_chunks_limits_default(&d);
        lim = &d;
    }
    f->mem = malloc(lim->bytes_max);
    assert_non_null(f->mem);
    assert_int_equal(msnp_chunks_init(&f->c, lim, f->mem), SW_OK);
}

static int add(struct chunks_fixture *f, uint64_t now, const char *sender, const char *p)
{
    struct msnp_mime m;
    size_t n = strlen(p);
    uint8_t *b = malloc(n);
    assert_non_null(b);
    memcpy(b, p, n);
    assert_int_equal(msnp_mime_parse(b, n, NULL, &m), SW_OK);
    int rc = msnp_chunks_add(&f->c, now, (const uint8_t *)sender, strlen(sender), b, n, &m, f->out,
                             sizeof(f->out), &f->out_len);
    free(b); /* the store copied what it keeps */
    return rc;
}

static void assert_whole(struct chunks_fixture *f)
{
    struct msnp_mime m;
    assert_int_equal(f->out_len, sizeof(whole) - 1);
    assert_memory_equal(f->out, whole, f->out_len);
    assert_int_equal(msnp_mime_parse(f->out, f->out_len, NULL, &m), SW_OK);
    assert_int_equal(m.kind, MSNP_MIME_TEXT);
    assert_slice(m.body, m.body_len, "who is beside you in this pic http://x.example/p.zip");
    assert_int_equal(msnp_chunks_pending(&f->c), 0);
    assert_int_equal(msnp_chunks_used(&f->c), 0);
}

static void test_chunks_in_order(void **state)
{
    struct chunks_fixture f;
    (void)state;
    fx_init(&f, NULL);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk0), SW_AGAIN);
    assert_int_equal(msnp_chunks_pending(&f.c), 1);
    assert_int_equal(add(&f, 1, "bob@example.com", chunk1), SW_AGAIN);
    assert_int_equal(add(&f, 2, "bob@example.com", chunk2), SW_OK);
    assert_whole(&f);
    /* not a chunk */
    assert_int_equal(add(&f, 3, "bob@example.com", "Content-Type: text/plain\r\n\r\nhi"),
                     SW_DECLINED);
    /* Chunks: 1 completes at once */
    assert_int_equal(add(&f, 3, "bob@example.com", "Message-ID: x\r\nChunks: 1\r\n\r\nhi"), SW_OK);
    assert_int_equal(f.out_len, 30);
    free(f.mem);
}

static void test_chunks_out_of_order_and_duplicates(void **state)
{
    struct chunks_fixture f;
    (void)state;
    fx_init(&f, NULL);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk2), SW_AGAIN);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk2), SW_DECLINED);
    assert_string_equal(f.c.err, "duplicate chunk");
    assert_int_equal(add(&f, 0, "bob@example.com", chunk1), SW_AGAIN);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk1), SW_DECLINED);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk0), SW_OK);
    assert_whole(&f);

    /* interleaved messages of two senders with the same Message-ID do not mix */
    assert_int_equal(add(&f, 0, "bob@example.com", chunk1), SW_AGAIN);
    assert_int_equal(add(&f, 0, "eve@example.com", chunk0), SW_AGAIN);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk0), SW_AGAIN);
    assert_int_equal(add(&f, 0, "eve@example.com", chunk2), SW_AGAIN);
    assert_int_equal(msnp_chunks_pending(&f.c), 2);
    assert_int_equal(add(&f, 0, "bob@example.com", chunk2), SW_OK);
    assert_int_equal(f.out_len, sizeof(whole) - 1);
    assert_memory_equal(f.out, whole, f.out_len);
    assert_int_equal(add(&f, 0, "eve@example.com", chunk1), SW_OK);
    assert_whole(&f);
    free(f.mem);
}

static void test_chunks_bounds(void **state)
{
    struct chunks_fixture f;
    struct msnp_chunks_limits lim;
    (void)state;

    /* pending messages */
    msnp_chunks_limits_default(&lim);
    lim.pending_max = 2;
    fx_init(&f, &lim);
    assert_int_equal(add(&f, 0, "a@x", chunk0), SW_AGAIN);
    assert_int_equal(add(&f, 0, "b@x", chunk0), SW_AGAIN);
    assert_int_equal(add(&f, 0, "c@x", chunk0), SW_ERROR);
    assert_string_equal(f.c.err, "too many pending chunked messages");
    assert_int_equal(msnp_chunks_pending(&f.c), 2);
    /* timeout frees them: at exactly timeout_ms they are kept, after it expired */
    assert_int_equal(msnp_chunks_expire(&f.c, lim.timeout_ms), 0);
    assert_int_equal(add(&f, lim.timeout_ms + 1, "c@x", chunk0), SW_AGAIN);
    assert_int_equal(msnp_chunks_pending(&f.c), 1);
    assert_int_equal(msnp_chunks_used(&f.c), MSNP_CHUNKS_RECORD_OVERHEAD + sizeof(chunk0) - 1);
    assert_int_equal(msnp_chunks_expire(&f.c, 2 * lim.timeout_ms + 2), 1);
    assert_int_equal(msnp_chunks_used(&f.c), 0);
    free(f.mem);

    /* chunks per message: Chunks above the bound, an index above the bound */
    msnp_chunks_limits_default(&lim);
    lim.chunks_max = 2;
    fx_init(&f, &lim);
    assert_int_equal(add(&f, 0, "a@x", chunk1), SW_AGAIN);
    assert_int_equal(add(&f, 0, "a@x", chunk0), SW_ERROR);
    assert_string_equal(f.c.err, "too many chunks");
    assert_int_equal(msnp_chunks_pending(&f.c), 0); /* discarded whole */
    assert_int_equal(msnp_chunks_used(&f.c), 0);
    assert_int_equal(add(&f, 0, "a@x", chunk2), SW_ERROR);
    assert_string_equal(f.c.err, "too many chunks");
    free(f.mem);

    /* index beyond Chunks, either order; Chunk 0 */
    fx_init(&f, NULL);
    static const char two[] = "Message-ID: " ID "\r\nChunks: 2\r\n\r\nx";
    assert_int_equal(add(&f, 0, "a@x", two), SW_AGAIN);
    assert_int_equal(add(&f, 0, "a@x", chunk2), SW_ERROR);
    assert_string_equal(f.c.err, "chunk index beyond Chunks");
    assert_int_equal(msnp_chunks_pending(&f.c), 0);
    assert_int_equal(add(&f, 0, "a@x", chunk2), SW_AGAIN);
    assert_int_equal(add(&f, 0, "a@x", two), SW_ERROR);
    assert_string_equal(f.c.err, "chunk index beyond Chunks");
    assert_int_equal(add(&f, 0, "a@x", "Message-ID: q\r\nChunk: 0\r\n\r\nx"), SW_ERROR);
    assert_string_equal(f.c.err, "Chunk 0 without Chunks");
    assert_int_equal(msnp_chunks_used(&f.c), 0);
    free(f.mem);

    /* arena bytes: the second chunk does not fit, the message is discarded */
    msnp_chunks_limits_default(&lim);
    lim.bytes_max = 1024;
    fx_init(&f, &lim);
    char big[1200];
    int n = snprintf(big, sizeof(big), "Message-ID: " ID "\r\nChunk: 1\r\n\r\n%0900d", 7);
    assert_true(n > 900);
    assert_int_equal(add(&f, 0, "a@x", chunk0), SW_AGAIN);
    assert_int_equal(add(&f, 0, "a@x", big), SW_ERROR);
    assert_string_equal(f.c.err, "chunk bytes limit");
    assert_int_equal(msnp_chunks_pending(&f.c), 0);
    assert_int_equal(msnp_chunks_used(&f.c), 0);
    free(f.mem);

    /* key too long */
    fx_init(&f, NULL);
    char sender[300];
    memset(sender, 'a', sizeof(sender) - 1);
    sender[sizeof(sender) - 1] = '\0';
    assert_int_equal(add(&f, 0, sender, chunk0), SW_ERROR);
    assert_string_equal(f.c.err, "sender and Message-ID too long");

    /* output too small: discarded */
    struct msnp_mime m[3];
    const char *parts[3] = {chunk0, chunk1, chunk2};
    for (int i = 0; i < 3; i++)
        assert_int_equal(msnp_mime_parse((const uint8_t *)parts[i], strlen(parts[i]), NULL, &m[i]),
                         SW_OK);
    uint8_t small[16];
    size_t out_len;
    for (int i = 0; i < 3; i++) {
        int rc = msnp_chunks_add(&f.c, 0, (const uint8_t *)"a", 1, (const uint8_t *)parts[i],
                                 strlen(parts[i]), &m[i], small, sizeof(small), &out_len);
        assert_int_equal(rc, i < 2 ? SW_AGAIN : SW_ERROR);
    }
    assert_string_equal(f.c.err, "output buffer too small");
    assert_int_equal(msnp_chunks_pending(&f.c), 0);
    free(f.mem);

    /* init bounds */
    uint8_t mem[1024];
    struct msnp_chunks c;
    msnp_chunks_limits_default(&lim);
    assert_int_equal(msnp_chunks_init(&c, &lim, NULL), SW_ERROR);
    lim.pending_max = MSNP_CHUNKS_SLOTS_CAP + 1;
    assert_int_equal(msnp_chunks_init(&c, &lim, mem), SW_ERROR);
    msnp_chunks_limits_default(&lim);
    lim.chunks_max = MSNP_CHUNKS_PER_MSG_CAP + 1;
    assert_int_equal(msnp_chunks_init(&c, &lim, mem), SW_ERROR);
    msnp_chunks_limits_default(&lim);
    lim.bytes_max = 100;
    assert_int_equal(msnp_chunks_init(&c, &lim, mem), SW_ERROR);
}

/* The three chunks as server MSGs, fed through the framing parser one byte at a time and whole:
 * both give the same reassembled message. */
static size_t stream_of_chunks(char *out, size_t cap)
{
    size_t o = 0;
    const char *parts[3] = {chunk2, chunk0, chunk1};
    for (int i = 0; i < 3; i++)
        o += (size_t)snprintf(out + o, cap - o, "MSG bob@example.com Bob %zu\r\n%s",
                              strlen(parts[i]), parts[i]);
    o += (size_t)snprintf(out + o, cap - o, "BYE bob@example.com\r\n");
    return o;
}

static size_t reassemble(const uint8_t *in, size_t len, size_t step, uint8_t *out)
{
    struct msnp_parser p;
    struct msnp_event ev;
    struct chunks_fixture f;
    size_t got = 0, events = 0;
    fx_init(&f, NULL);
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, NULL), SW_OK);
    for (size_t fed = 0; fed < len;) {
        fed = fed + step < len ? fed + step : len;
        uint64_t keep = msnp_parser_keep(&p);
        int rc;
        while ((rc = msnp_parse(&p, in + keep, fed - (size_t)keep, keep, &ev)) == SW_OK) {
            events++;
            if (strcmp(ev.cmd, "MSG") != 0)
                continue;
            struct msnp_msg_line ml;
            struct msnp_mime m;
            assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_S2C, &ml), SW_OK);
            const uint8_t *pl = ev.data + ev.payload.pos;
            assert_int_equal(msnp_mime_parse(pl, ev.payload.len, NULL, &m), SW_OK);
            rc = msnp_chunks_add(&f.c, 0, ev.data + ml.email.pos, ml.email.len, pl, ev.payload.len,
                                 &m, f.out, sizeof(f.out), &f.out_len);
            if (rc == SW_OK) {
                memcpy(out, f.out, f.out_len);
                got = f.out_len;
            } else {
                assert_int_equal(rc, SW_AGAIN);
            }
        }
        assert_int_equal(rc, SW_AGAIN);
    }
    assert_int_equal(events, 4);
    free(f.mem);
    return got;
}

static void test_stream_reassembly(void **state)
{
    char in[2048];
    uint8_t a[2048], b[2048];
    (void)state;
    size_t len = stream_of_chunks(in, sizeof(in));
    size_t na = reassemble((const uint8_t *)in, len, len, a);
    assert_int_equal(na, sizeof(whole) - 1);
    assert_memory_equal(a, whole, na);
    for (size_t step = 1; step < 64; step++) {
        size_t nb = reassemble((const uint8_t *)in, len, step, b);
        assert_int_equal(nb, na);
        assert_memory_equal(a, b, na);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_plain),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_typing),
        cmocka_unit_test(test_invite),
        cmocka_unit_test(test_datacast),
        cmocka_unit_test(test_p2p),
        cmocka_unit_test(test_chunk_headers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_chunks_in_order),
        cmocka_unit_test(test_chunks_out_of_order_and_duplicates),
        cmocka_unit_test(test_chunks_bounds),
        cmocka_unit_test(test_stream_reassembly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
