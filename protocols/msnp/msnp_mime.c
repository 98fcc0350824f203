/* MSNP MSG payload parser. See msnp_mime.h for the contract and docs/msnp.md for the formats.
 *
 * Header section (one pass, no rescanning):
 *
 *   line start --"\r\n" | "\n"--> body starts after it
 *       |
 *       +--name ':' value ("\r\n" | "\n")--> store (bounded count, bounded line) --> line start
 *       +--no colon / too long / end of payload--> error
 *
 * Then the recognised headers are interpreted and, depending on the Content-Type, the body
 * (invite and datacast bodies are themselves `Name: value` lines; P2P bodies are binary). */
#include "protocols/msnp/msnp_mime.h"

#include <string.h>

#include "protocols/ascii.h"
#include "protocols/msnp/msnp_b64.h"

void msnp_mime_limits_default(struct msnp_mime_limits *lim)
{
    lim->headers_max = MSNP_MIME_HEADERS_MAX_DEFAULT;
    lim->header_len_max = MSNP_MIME_HEADER_LEN_MAX_DEFAULT;
}

/* Case-insensitive search of needle in hay[0..n). Returns the offset or n if absent. */
static size_t find_ci(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (k == 0 || k > n)
        return n;
    for (size_t i = 0; i + k <= n; i++) {
        if (sw_ascii_eq_ci(hay + i, k, needle))
            return i;
    }
    return n;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static void trim(const uint8_t **s, size_t *n)
{
    while (*n > 0 && is_ws((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_ws((*s)[*n - 1]))
        (*n)--;
}

/* Decimal without sign, at most max. */
static bool parse_u64(const uint8_t *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (max - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static int fail(struct msnp_mime *m, const char *why, size_t pos)
{
    m->err = why;
    m->err_pos = pos;
    return SW_ERROR;
}

const struct msnp_mime_header *msnp_mime_header(const struct msnp_mime *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++) {
        if (sw_ascii_eq_ci(m->headers[i].name, m->headers[i].name_len, name))
            return &m->headers[i];
    }
    return NULL;
}

/* Next `Name: value` line of b[*pos..len) (for invite and datacast bodies; lenient: lines
 * without a colon are skipped). Returns false at a blank line or the end. */
static bool next_field(const uint8_t *b, size_t len, size_t *pos, const uint8_t **name,
                       size_t *name_len, const uint8_t **val, size_t *val_len)
{
    while (*pos < len) {
        size_t s = *pos, e = s;
        while (e < len && b[e] != '\n')
            e++;
        *pos = e < len ? e + 1 : e;
        size_t le = e;
        if (le > s && b[le - 1] == '\r')
            le--;
        if (le == s)
            return false;
        const uint8_t *colon = memchr(b + s, ':', le - s);
        if (colon == NULL)
            continue;
        *name = b + s;
        *name_len = (size_t)(colon - (b + s));
        *val = colon + 1;
        *val_len = le - (size_t)(colon + 1 - b);
        trim(val, val_len);
        trim(name, name_len);
        return true;
    }
    return false;
}

static const struct {
    const char *type;
    enum msnp_mime_kind kind;
} kinds[] = {
    {"text/plain", MSNP_MIME_TEXT},
    {"text/x-msmsgscontrol", MSNP_MIME_TYPING},
    {"text/x-msmsgsinvite", MSNP_MIME_INVITE},
    {"text/x-msmsgsdatacast", MSNP_MIME_DATACAST},
    {"application/x-msnmsgrp2p", MSNP_MIME_P2P},
    {"text/x-clientcaps", MSNP_MIME_CAPS},
    {"text/x-mms-emoticon", MSNP_MIME_EMOTICON},
    {"text/x-mms-animemoticon", MSNP_MIME_EMOTICON},
    {"text/x-keepalive", MSNP_MIME_KEEPALIVE},
    {"text/x-msmsgsprofile", MSNP_MIME_PROFILE},
    {"text/x-msmsgsinitialemailnotification", MSNP_MIME_PROFILE},
    {"text/x-msmsgsemailnotification", MSNP_MIME_PROFILE},
    {"text/x-msmsgsactivemailnotification", MSNP_MIME_PROFILE},
    {"text/x-msmsgsinitialmdatanotification", MSNP_MIME_PROFILE},
    {"text/x-msmsgsoimnotification", MSNP_MIME_PROFILE},
    {"application/x-msmsgssystemmessage", MSNP_MIME_PROFILE},
};

static void content_type(struct msnp_mime *m, const uint8_t *v, size_t n)
{
    size_t i = 0;
    while (i < n && v[i] != ';')
        i++;
    const uint8_t *t = v;
    size_t tn = i;
    trim(&t, &tn);
    m->media_type = t;
    m->media_type_len = tn;
    m->kind = MSNP_MIME_OTHER;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (sw_ascii_eq_ci(t, tn, kinds[k].type)) {
            m->kind = kinds[k].kind;
            break;
        }
    }
    /* parameters: ; name=value [; ...], value possibly quoted */
    while (i < n) {
        size_t s = ++i;
        while (i < n && v[i] != ';')
            i++;
        const uint8_t *p = v + s;
        size_t pn = i - s;
        const uint8_t *eqp = memchr(p, '=', pn);
        if (eqp == NULL)
            continue;
        const uint8_t *name = p, *val = eqp + 1;
        size_t name_len = (size_t)(eqp - p), val_len = pn - name_len - 1;
        trim(&name, &name_len);
        trim(&val, &val_len);
        if (val_len >= 2 && val[0] == '"' && val[val_len - 1] == '"') {
            val++;
            val_len -= 2;
        }
        if (sw_ascii_eq_ci(name, name_len, "charset") && m->charset == NULL) {
            m->charset = val;
            m->charset_len = val_len;
        }
    }
    m->utf8 = m->charset == NULL || sw_ascii_eq_ci(m->charset, m->charset_len, "utf-8") ||
              sw_ascii_eq_ci(m->charset, m->charset_len, "utf8");
}

static void parse_invite(struct msnp_mime *m)
{
    const uint8_t *name, *val;
    size_t name_len, val_len, pos = 0;
    while (next_field(m->body, m->body_len, &pos, &name, &name_len, &val, &val_len)) {
        if (sw_ascii_eq_ci(name, name_len, "Invitation-Command") && m->invitation_command == NULL) {
            m->invitation_command = val;
            m->invitation_command_len = val_len;
        } else if (sw_ascii_eq_ci(name, name_len, "Application-Name") &&
                   m->application_name == NULL) {
            m->application_name = val;
            m->application_name_len = val_len;
        } else if (sw_ascii_eq_ci(name, name_len, "Application-GUID") &&
                   m->application_guid == NULL) {
            m->application_guid = val;
            m->application_guid_len = val_len;
        } else if (sw_ascii_eq_ci(name, name_len, "Application-File") && m->file_name == NULL) {
            m->file_name = val;
            m->file_name_len = val_len;
        } else if (sw_ascii_eq_ci(name, name_len, "Application-FileSize") && !m->has_file_size) {
            m->has_file_size = parse_u64(val, val_len, UINT64_MAX, &m->file_size);
        }
    }
}

static void parse_datacast(struct msnp_mime *m)
{
    const uint8_t *name, *val;
    size_t name_len, val_len, pos = 0;
    while (next_field(m->body, m->body_len, &pos, &name, &name_len, &val, &val_len)) {
        uint64_t id;
        if (sw_ascii_eq_ci(name, name_len, "ID") && !m->has_datacast_id &&
            parse_u64(val, val_len, UINT32_MAX, &id)) {
            m->has_datacast_id = true;
            m->datacast_id = (uint32_t)id;
        } else if (sw_ascii_eq_ci(name, name_len, "Data") && m->datacast_data == NULL) {
            m->datacast_data = val;
            m->datacast_data_len = val_len;
        }
    }
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* Decodes base64 s[0..n) into out (at most cap bytes; stops there or at '=' or a non-base64
 * byte). Returns the bytes written. */
static size_t b64_decode(const uint8_t *s, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        int v = msnp_b64_val(s[i]);
        if (v < 0)
            break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

/* UTF-16LE u[0..n units), stopping at NUL, to UTF-8 in out (cap >= 3 * n + 1); unpaired
 * surrogates become U+FFFD. Returns the bytes written (NUL not counted). */
static size_t utf16le_to_utf8(const uint8_t *u, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)u[2 * i] | (uint32_t)u[2 * i + 1] << 8;
        if (c == 0)
            break;
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n) {
            uint32_t d = (uint32_t)u[2 * i + 2] | (uint32_t)u[2 * i + 3] << 8;
            if (d >= 0xDC00 && d <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
                i++;
            } else {
                c = 0xFFFD;
            }
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = '\0';
    return o;
}

#define FT_EUF_GUID "{5D3E02AB-6190-11D3-BBBB-00C04F795683}"
#define FT_CONTEXT_NAME_OFF 20 /* file-transfer context: length, version, size, type, name */
#define FT_CONTEXT_NAME_UNITS 260

/* The SLP message d[0..n) of session 0; whole: not split over several P2P messages. The
 * INVITE of a file transfer carries a base64 Context whose UTF-16LE file name is at offset
 * 20 (the same context in P2P v1 and v2). */
static void parse_slp(struct msnp_mime *m, const uint8_t *d, size_t n, bool whole)
{
    m->p2p_slp = find_ci(d, n, "MSNSLP/1.0") < n;
    if (!m->p2p_slp || n < 7 || memcmp(d, "INVITE ", 7) != 0 || !whole)
        return;
    if (find_ci(d, n, "EUF-GUID: " FT_EUF_GUID) == n)
        return;
    m->p2p_file_transfer = true;
    size_t c = find_ci(d, n, "\nContext: ");
    if (c == n)
        return;
    c += 10;
    size_t e = c;
    while (e < n && d[e] != '\r' && d[e] != '\n')
        e++;
    uint8_t ctx[FT_CONTEXT_NAME_OFF + 2 * FT_CONTEXT_NAME_UNITS];
    size_t got = b64_decode(d + c, e - c, ctx, sizeof(ctx));
    if (got < FT_CONTEXT_NAME_OFF + 2)
        return;
    m->has_file_size = true;
    m->file_size = le64(ctx + 8);
    size_t units = (got - FT_CONTEXT_NAME_OFF) / 2;
    size_t k = utf16le_to_utf8(ctx + FT_CONTEXT_NAME_OFF, units, m->file_buf);
    m->file_name = (const uint8_t *)m->file_buf;
    m->file_name_len = k;
}

static uint16_t be16(const uint8_t *b)
{
    return (uint16_t)((unsigned)b[0] << 8 | b[1]);
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* A P2P v2 message (MSNP16+, Windows Live Messenger 2009), all big-endian:
 *
 *   HL(1) OP(1) ML(2) BaseID(4) TLVs(HL-8) | DHL(1) TF(1) Package(2) Session(4)
 *   TLVs(DHL-8) data(ML-DHL) | [footer(4)]
 *
 * The data header and data are present when ML > 0. A data-header TLV 1 (length 8) holds the
 * bytes of the message still to come: non-zero means this SLP message is split. */
static void parse_p2p_v2(struct msnp_mime *m)
{
    const uint8_t *b = m->body;
    size_t len = m->body_len;
    if (len < 8)
        return;
    size_t hl = b[0], ml = be16(b + 2);
    if (hl < 8 || hl > 252 || (hl + ml != len && hl + ml + MSNP_P2P_FOOTER_LEN != len))
        return;
    m->p2p_valid = true;
    m->p2p_version = 2;
    m->p2p_id = be32(b + 4);
    m->p2p_msg_size = (uint32_t)ml;
    if (hl + ml + MSNP_P2P_FOOTER_LEN == len)
        m->p2p_app_id = be32(b + hl + ml);
    if (ml == 0)
        return; /* an ack: no data header */
    const uint8_t *dh = b + hl;
    size_t dhl = dh[0];
    if (dhl < 8 || dhl > ml)
        return;
    m->p2p_session_id = be32(dh + 4);
    bool whole = true;
    for (size_t i = 8; i + 2 <= dhl;) {
        size_t t = dh[i], l = dh[i + 1];
        if (t == 0) /* padding */
            break;
        if (i + 2 + l > dhl)
            return;
        if (t == 1 && l == 8)
            whole = be32(dh + i + 2) == 0 && be32(dh + i + 6) == 0;
        i += 2 + l;
    }
    if (m->p2p_session_id == 0 && ml > dhl)
        parse_slp(m, dh + dhl, ml - dhl, whole);
}

/* A P2P v1 message: 48-byte little-endian header, msg_size data bytes, 4-byte big-endian
 * footer (the application id); else a P2P v2 message (parse_p2p_v2). */
static void parse_p2p(struct msnp_mime *m)
{
    const uint8_t *b = m->body;
    if (m->body_len < MSNP_P2P_HEADER_LEN + MSNP_P2P_FOOTER_LEN ||
        le32(b + 24) + (uint64_t)MSNP_P2P_HEADER_LEN + MSNP_P2P_FOOTER_LEN != m->body_len) {
        parse_p2p_v2(m);
        return;
    }
    m->p2p_session_id = le32(b);
    m->p2p_id = le32(b + 4);
    m->p2p_offset = le64(b + 8);
    m->p2p_total_size = le64(b + 16);
    m->p2p_msg_size = le32(b + 24);
    m->p2p_flags = le32(b + 28);
    m->p2p_app_id = be32(b + m->body_len - MSNP_P2P_FOOTER_LEN);
    m->p2p_valid = true;
    m->p2p_version = 1;

    size_t n = m->p2p_msg_size;
    if (m->p2p_session_id != 0 || n == 0)
        return;
    parse_slp(m, b + MSNP_P2P_HEADER_LEN, n, m->p2p_offset == 0 && m->p2p_total_size == n);
}

static int set_once(struct msnp_mime *m, const uint8_t **field, size_t *field_len,
                    const struct msnp_mime_header *h, const uint8_t *buf)
{
    if (*field != NULL)
        return fail(m, "duplicate header", (size_t)(h->name - buf));
    *field = h->value;
    *field_len = h->value_len;
    return SW_OK;
}

int msnp_mime_parse(const uint8_t *buf, size_t len, const struct msnp_mime_limits *lim,
                    struct msnp_mime *out)
{
    struct msnp_mime_limits def;
    struct msnp_mime *m = out;
    memset(m, 0, sizeof(*m));
    if (lim == NULL) {
        msnp_mime_limits_default(&def);
        lim = &def;
    }
    if (lim->headers_max < 1 || lim->headers_max > MSNP_MIME_HEADERS_CAP ||
        lim->header_len_max < 16)
        return fail(m, "limit out of range", 0);

    size_t pos = 0;
    for (;;) {
        if (pos >= len)
            return fail(m, "headers not terminated", len);
        size_t avail = len - pos;
        size_t scan = avail < lim->header_len_max ? avail : lim->header_len_max;
        const uint8_t *nl = memchr(buf + pos, '\n', scan);
        if (nl == NULL) {
            if (avail >= lim->header_len_max)
                return fail(m, "header line too long", pos + lim->header_len_max);
            return fail(m, "headers not terminated", len);
        }
        size_t e = (size_t)(nl - buf), le = e;
        if (le > pos && buf[le - 1] == '\r')
            le--;
        if (le == pos) {
            pos = e + 1;
            break;
        }
        const uint8_t *colon = memchr(buf + pos, ':', le - pos);
        if (colon == NULL || colon == buf + pos)
            return fail(m, "header without a name", pos);
        for (const uint8_t *c = buf + pos; c < colon; c++) {
            if (*c <= ' ' || *c >= 0x7f)
                return fail(m, "bad header name", (size_t)(c - buf));
        }
        if (m->nheaders == lim->headers_max)
            return fail(m, "too many headers", pos);
        struct msnp_mime_header *h = &m->headers[m->nheaders++];
        h->name = buf + pos;
        h->name_len = (size_t)(colon - (buf + pos));
        h->value = colon + 1;
        h->value_len = le - (size_t)(colon + 1 - buf);
        trim(&h->value, &h->value_len);
        pos = e + 1;
    }
    m->body_pos = pos;
    m->body = buf + pos;
    m->body_len = len - pos;

    const uint8_t *ctype = NULL, *chunks = NULL, *chunk = NULL;
    size_t ctype_len = 0, chunks_len = 0, chunk_len = 0;
    for (size_t i = 0; i < m->nheaders; i++) {
        const struct msnp_mime_header *h = &m->headers[i];
        int rc = SW_OK;
        if (sw_ascii_eq_ci(h->name, h->name_len, "Content-Type"))
            rc = set_once(m, &ctype, &ctype_len, h, buf);
        else if (sw_ascii_eq_ci(h->name, h->name_len, "Message-ID"))
            rc = set_once(m, &m->message_id, &m->message_id_len, h, buf);
        else if (sw_ascii_eq_ci(h->name, h->name_len, "Chunks"))
            rc = set_once(m, &chunks, &chunks_len, h, buf);
        else if (sw_ascii_eq_ci(h->name, h->name_len, "Chunk"))
            rc = set_once(m, &chunk, &chunk_len, h, buf);
        else if (sw_ascii_eq_ci(h->name, h->name_len, "TypingUser") && m->typing_user == NULL) {
            m->typing_user = h->value;
            m->typing_user_len = h->value_len;
        } else if (sw_ascii_eq_ci(h->name, h->name_len, "P2P-Dest") && m->p2p_dest == NULL) {
            m->p2p_dest = h->value;
            m->p2p_dest_len = h->value_len;
        }
        if (rc != SW_OK)
            return rc;
    }
    uint64_t v;
    if (chunks != NULL) {
        if (!parse_u64(chunks, chunks_len, MSNP_MIME_CHUNKS_MAX, &v) || v < 1)
            return fail(m, "bad Chunks header", (size_t)(chunks - buf));
        m->has_chunks = true;
        m->chunks = (uint32_t)v;
    }
    if (chunk != NULL) {
        if (!parse_u64(chunk, chunk_len, MSNP_MIME_CHUNKS_MAX - 1, &v))
            return fail(m, "bad Chunk header", (size_t)(chunk - buf));
        m->has_chunk = true;
        m->chunk = (uint32_t)v;
    }
    if ((m->has_chunks || m->has_chunk) && m->message_id == NULL)
        return fail(m, "Chunks without Message-ID", (size_t)((chunks ? chunks : chunk) - buf));
    if (m->has_chunks && m->has_chunk)
        return fail(m, "both Chunks and Chunk", (size_t)(chunk - buf));

    m->utf8 = true;
    if (ctype != NULL)
        content_type(m, ctype, ctype_len);
    switch (m->kind) {
    case MSNP_MIME_INVITE:
        parse_invite(m);
        break;
    case MSNP_MIME_DATACAST:
        parse_datacast(m);
        break;
    case MSNP_MIME_P2P:
        parse_p2p(m);
        break;
    default:
        break;
    }
    return SW_OK;
}
