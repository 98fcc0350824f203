/* Fuzz target for protocols/msnp/msnp_mime.c and msnp_chunks.c. The whole input is parsed as
 * one MSG payload; then it is read as a flags byte (tight limits) and a sequence of records
 * [u16 length][sender byte][clock byte][payload], each payload parsed and, when it is a chunk,
 * fed to the reassembler. Besides memory safety it checks that every slice lies in the payload
 * (or in the file-name buffer), that the reassembler keeps its bounds, and that a reassembled
 * message parses again with the same headers as its first chunk. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/msnp/msnp_chunks.h"
#include "protocols/msnp/msnp_mime.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void in_buf(const uint8_t *buf, size_t len, const uint8_t *p, size_t n)
{
    if (p == NULL) {
        check(n == 0);
        return;
    }
    check(p >= buf && p + n <= buf + len);
}

static void check_mime(const uint8_t *buf, size_t len, const struct msnp_mime *m)
{
    check(m->nheaders <= MSNP_MIME_HEADERS_CAP);
    for (size_t i = 0; i < m->nheaders; i++) {
        in_buf(buf, len, m->headers[i].name, m->headers[i].name_len);
        in_buf(buf, len, m->headers[i].value, m->headers[i].value_len);
        check(m->headers[i].name_len > 0);
    }
    check(m->body == buf + m->body_pos && m->body_pos + m->body_len == len);
    in_buf(buf, len, m->media_type, m->media_type_len);
    in_buf(buf, len, m->charset, m->charset_len);
    in_buf(buf, len, m->message_id, m->message_id_len);
    in_buf(buf, len, m->typing_user, m->typing_user_len);
    in_buf(buf, len, m->invitation_command, m->invitation_command_len);
    in_buf(buf, len, m->datacast_data, m->datacast_data_len);
    in_buf(buf, len, m->p2p_dest, m->p2p_dest_len);
    if (m->file_name == (const uint8_t *)m->file_buf) {
        check(m->file_name_len < MSNP_MIME_FILE_MAX);
        check(m->file_buf[m->file_name_len] == '\0');
    } else {
        in_buf(buf, len, m->file_name, m->file_name_len);
    }
    check(!(m->has_chunks && m->has_chunk));
    check(!m->has_chunks || (m->chunks >= 1 && m->chunks <= MSNP_MIME_CHUNKS_MAX));
    /* v1: header, msg_size bytes, footer; v2: HL-byte header, ML bytes, optional footer */
    check(!m->p2p_valid ||
          (m->p2p_version == 1 &&
           m->p2p_msg_size + MSNP_P2P_HEADER_LEN + MSNP_P2P_FOOTER_LEN == m->body_len) ||
          (m->p2p_version == 2 && m->body_len >= 8 &&
           (m->body[0] + (size_t)m->p2p_msg_size == m->body_len ||
            m->body[0] + (size_t)m->p2p_msg_size + MSNP_P2P_FOOTER_LEN == m->body_len)));
}

static uint8_t out[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msnp_mime m;
    uint8_t *copy = malloc(size > 0 ? size : 1);
    check(copy != NULL);
    if (size > 0)
        memcpy(copy, data, size);
    if (msnp_mime_parse(copy, size, NULL, &m) == SW_OK)
        check_mime(copy, size, &m);
    else
        check(m.err != NULL && m.err_pos <= size);
    free(copy);

    if (size < 1)
        return 0;
    struct msnp_mime_limits mlim;
    struct msnp_chunks_limits clim;
    msnp_mime_limits_default(&mlim);
    msnp_chunks_limits_default(&clim);
    if (data[0] & 1) {
        mlim.headers_max = 1 + data[0] % 8;
        mlim.header_len_max = 16 + data[0];
        clim.pending_max = 1 + (data[0] >> 1) % 4;
        clim.chunks_max = 1 + (data[0] >> 3) % 8;
        clim.bytes_max = 1024;
        clim.timeout_ms = 100;
    }
    struct msnp_chunks c;
    uint8_t *mem = malloc(clim.bytes_max);
    check(mem != NULL);
    check(msnp_chunks_init(&c, &clim, mem) == SW_OK);
    static const char *const senders[] = {"", "bob@example.com", "eve@example.com", "x"};
    uint64_t now = 0;
    size_t i = 1;
    while (size - i >= 4) {
        size_t n = (size_t)data[i] | (size_t)data[i + 1] << 8;
        const char *sender = senders[data[i + 2] % 4];
        now += data[i + 3];
        i += 4;
        if (n > size - i)
            n = size - i;
        uint8_t *p = malloc(n > 0 ? n : 1);
        check(p != NULL);
        if (n > 0)
            memcpy(p, data + i, n);
        i += n;
        if (msnp_mime_parse(p, n, &mlim, &m) != SW_OK) {
            free(p);
            continue;
        }
        check_mime(p, n, &m);
        size_t out_len = 0;
        size_t cap = (data[0] & 2) ? 64 : sizeof(out);
        int rc = msnp_chunks_add(&c, now, (const uint8_t *)sender, strlen(sender), p, n, &m, out,
                                 cap, &out_len);
        check(msnp_chunks_used(&c) <= clim.bytes_max);
        check(msnp_chunks_pending(&c) <= clim.pending_max);
        if (rc == SW_OK) {
            struct msnp_mime whole;
            check(out_len <= cap);
            uint8_t *w = malloc(out_len > 0 ? out_len : 1);
            check(w != NULL);
            memcpy(w, out, out_len);
            check(msnp_mime_parse(w, out_len, &mlim, &whole) == SW_OK);
            check(whole.has_chunks && whole.nheaders > 0);
            check(whole.message_id_len == m.message_id_len);
            free(w);
        } else {
            check(rc == SW_AGAIN || rc == SW_DECLINED || (rc == SW_ERROR && c.err != NULL));
        }
        free(p);
    }
    msnp_chunks_expire(&c, UINT64_MAX);
    check(msnp_chunks_pending(&c) == 0 && msnp_chunks_used(&c) == 0);
    free(mem);
    return 0;
}
