/* Chunked-message reassembly. See msnp_chunks.h for the contract.
 *
 * The arena is a packed sequence of records, in arrival order:
 *
 *   [slot u32][index u32][len u32][len data bytes] [slot][index][len][data] ...
 *
 * A message's records are gathered in index order when it completes and removed by one
 * compacting pass (memmove) whenever a message completes, expires or is discarded. Messages are
 * short-lived and few (pending_max), so linear scans stay cheap and nothing is allocated.
 *
 *   free slot --first chunk seen--> pending --all N chunks--> copied out, slot freed
 *                                      |  duplicate index: ignored (DECLINED)
 *                                      +--bound broken / timeout--> discarded, slot freed
 */
#include "protocols/msnp/msnp_chunks.h"

#include <string.h>

void msnp_chunks_limits_default(struct msnp_chunks_limits *lim)
{
    lim->pending_max = MSNP_CHUNKS_PENDING_MAX_DEFAULT;
    lim->chunks_max = MSNP_CHUNKS_PER_MSG_DEFAULT;
    lim->bytes_max = MSNP_CHUNKS_BYTES_MAX_DEFAULT;
    lim->timeout_ms = MSNP_CHUNKS_TIMEOUT_MS_DEFAULT;
}

int msnp_chunks_init(struct msnp_chunks *c, const struct msnp_chunks_limits *lim, uint8_t *mem)
{
    memset(c, 0, sizeof(*c));
    if (lim != NULL)
        c->lim = *lim;
    else
        msnp_chunks_limits_default(&c->lim);
    if (mem == NULL || c->lim.pending_max < 1 || c->lim.pending_max > MSNP_CHUNKS_SLOTS_CAP ||
        c->lim.chunks_max < 1 || c->lim.chunks_max > MSNP_CHUNKS_PER_MSG_CAP ||
        c->lim.bytes_max < 1024) {
        c->err = "limit out of range";
        return SW_ERROR;
    }
    c->mem = mem;
    return SW_OK;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* Removes every record of slot s from the arena and frees the slot. */
static void drop_slot(struct msnp_chunks *c, size_t s)
{
    size_t r = 0, w = 0;
    while (r < c->used) {
        size_t n = MSNP_CHUNKS_RECORD_OVERHEAD + rd32(c->mem + r + 8);
        if (rd32(c->mem + r) != (uint32_t)s) {
            if (w != r)
                memmove(c->mem + w, c->mem + r, n);
            w += n;
        }
        r += n;
    }
    c->used = w;
    memset(&c->slots[s], 0, sizeof(c->slots[s]));
}

size_t msnp_chunks_expire(struct msnp_chunks *c, uint64_t now_ms)
{
    size_t n = 0;
    for (size_t s = 0; s < c->lim.pending_max; s++) {
        struct msnp_chunks_slot *sl = &c->slots[s];
        if (sl->used && now_ms > sl->first_ms && now_ms - sl->first_ms > c->lim.timeout_ms) {
            drop_slot(c, s);
            n++;
        }
    }
    return n;
}

size_t msnp_chunks_pending(const struct msnp_chunks *c)
{
    size_t n = 0;
    for (size_t s = 0; s < c->lim.pending_max; s++)
        n += c->slots[s].used;
    return n;
}

size_t msnp_chunks_used(const struct msnp_chunks *c)
{
    return c->used;
}

static int discard(struct msnp_chunks *c, size_t s, const char *why)
{
    if (c->slots[s].used)
        drop_slot(c, s);
    c->err = why;
    return SW_ERROR;
}

/* Mask of the first n chunk bits (n <= 64). */
static uint64_t all_bits(uint32_t n)
{
    return n >= 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
}

/* Copies slot s's chunks in index order into out. */
static void gather(const struct msnp_chunks *c, size_t s, uint8_t *out)
{
    size_t o = 0;
    for (uint32_t i = 0; i < c->slots[s].total; i++) {
        for (size_t r = 0; r < c->used;) {
            uint32_t len = rd32(c->mem + r + 8);
            if (rd32(c->mem + r) == (uint32_t)s && rd32(c->mem + r + 4) == i) {
                memcpy(out + o, c->mem + r + MSNP_CHUNKS_RECORD_OVERHEAD, len);
                o += len;
                break;
            }
            r += MSNP_CHUNKS_RECORD_OVERHEAD + len;
        }
    }
}

int msnp_chunks_add(struct msnp_chunks *c, uint64_t now_ms, const uint8_t *sender,
                    size_t sender_len, const uint8_t *payload, size_t payload_len,
                    const struct msnp_mime *m, uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    c->err = NULL;
    if (!m->has_chunks && !m->has_chunk) {
        c->err = "not a chunk";
        return SW_DECLINED;
    }
    msnp_chunks_expire(c, now_ms);

    size_t key_len = sender_len + m->message_id_len;
    if (key_len > MSNP_CHUNKS_KEY_MAX) {
        c->err = "sender and Message-ID too long";
        return SW_ERROR;
    }
    size_t s, free_slot = SIZE_MAX;
    for (s = 0; s < c->lim.pending_max; s++) {
        const struct msnp_chunks_slot *sl = &c->slots[s];
        if (!sl->used) {
            if (free_slot == SIZE_MAX)
                free_slot = s;
            continue;
        }
        if (sl->key_len == key_len && sl->sender_len == sender_len &&
            (sender_len == 0 || memcmp(sl->key, sender, sender_len) == 0) &&
            (m->message_id_len == 0 ||
             memcmp(sl->key + sender_len, m->message_id, m->message_id_len) == 0))
            break;
    }
    if (s == c->lim.pending_max) {
        if (free_slot == SIZE_MAX) {
            c->err = "too many pending chunked messages";
            return SW_ERROR;
        }
        s = free_slot;
        struct msnp_chunks_slot *sl = &c->slots[s];
        sl->used = true;
        sl->first_ms = now_ms;
        sl->sender_len = sender_len;
        sl->key_len = key_len;
        if (sender_len > 0)
            memcpy(sl->key, sender, sender_len);
        if (m->message_id_len > 0)
            memcpy(sl->key + sender_len, m->message_id, m->message_id_len);
    }
    struct msnp_chunks_slot *sl = &c->slots[s];

    uint32_t idx = m->has_chunks ? 0 : m->chunk;
    if (idx < 64 && (sl->have & (UINT64_C(1) << idx)) != 0) {
        c->err = "duplicate chunk";
        return SW_DECLINED;
    }
    if (m->has_chunks) {
        if (m->chunks > c->lim.chunks_max)
            return discard(c, s, "too many chunks");
        if ((sl->have & ~all_bits(m->chunks)) != 0)
            return discard(c, s, "chunk index beyond Chunks");
        sl->total = m->chunks;
    } else if (idx == 0) {
        return discard(c, s, "Chunk 0 without Chunks");
    }
    if (idx >= c->lim.chunks_max)
        return discard(c, s, "too many chunks");
    if (sl->total != 0 && idx >= sl->total)
        return discard(c, s, "chunk index beyond Chunks");

    const uint8_t *data = idx == 0 ? payload : m->body;
    size_t len = idx == 0 ? payload_len : m->body_len;
    if (len > c->lim.bytes_max - MSNP_CHUNKS_RECORD_OVERHEAD ||
        c->used + MSNP_CHUNKS_RECORD_OVERHEAD + len > c->lim.bytes_max)
        return discard(c, s, "chunk bytes limit");
    uint8_t *r = c->mem + c->used;
    wr32(r, (uint32_t)s);
    wr32(r + 4, idx);
    wr32(r + 8, (uint32_t)len);
    if (len > 0)
        memcpy(r + MSNP_CHUNKS_RECORD_OVERHEAD, data, len);
    c->used += MSNP_CHUNKS_RECORD_OVERHEAD + len;
    sl->have |= UINT64_C(1) << idx;
    sl->bytes += len;

    if (sl->total == 0 || sl->have != all_bits(sl->total))
        return SW_AGAIN;
    if (sl->bytes > out_cap)
        return discard(c, s, "output buffer too small");
    gather(c, s, out);
    *out_len = sl->bytes;
    drop_slot(c, s);
    return SW_OK;
}
