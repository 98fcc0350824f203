/* Reassembly of chunked MSNP messages (Message-ID with Chunks: N on the first chunk, Chunk: i
 * on the others) so that a message is scanned whole.
 *
 * Pure: no I/O, no allocation, no logging, no clock. Memory: the slot table is embedded in
 * struct msnp_chunks (MSNP_CHUNKS_SLOTS_CAP slots); chunk bytes live in an arena the caller
 * provides at init (bytes_max bytes, e.g. allocated lazily when a session sees its first
 * chunked message, freed by the caller after the last use). Time is the caller's: it passes
 * now_ms, and messages pending for longer than timeout_ms are expired.
 *
 * Bounds: pending_max messages in progress, chunks_max chunks per message, bytes_max arena
 * bytes in total (chunk data plus MSNP_CHUNKS_RECORD_OVERHEAD per stored chunk). A message that
 * would break a bound is discarded whole and reported, so one bad sender cannot pin memory.
 *
 * What is stored: the whole payload of chunk 0 (headers included) and only the body of the
 * others. The reassembled message is chunk 0's payload followed by the bodies of chunks 1..N-1
 * in index order: a MIME payload that msnp_mime_parse() reads like an unchunked one (its
 * Chunks header is still there). Chunks may arrive in any order.
 */
#ifndef SW_PROTOCOLS_MSNP_CHUNKS_H
#define SW_PROTOCOLS_MSNP_CHUNKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/msnp/msnp_mime.h"
#include "protocols/sw_rc.h"

#define MSNP_CHUNKS_SLOTS_CAP 32       /* highest pending_max (the table is embedded) */
#define MSNP_CHUNKS_PER_MSG_CAP 64     /* highest chunks_max (a 64-bit received mask) */
#define MSNP_CHUNKS_KEY_MAX 256        /* sender + Message-ID bytes kept per message */
#define MSNP_CHUNKS_RECORD_OVERHEAD 12 /* arena bytes per stored chunk besides its data */
#define MSNP_CHUNKS_PENDING_MAX_DEFAULT 8
#define MSNP_CHUNKS_PER_MSG_DEFAULT 32
#define MSNP_CHUNKS_BYTES_MAX_DEFAULT 65536
#define MSNP_CHUNKS_TIMEOUT_MS_DEFAULT 30000

struct msnp_chunks_limits {
    size_t pending_max; /* messages in progress, 1..MSNP_CHUNKS_SLOTS_CAP */
    uint32_t
        chunks_max;   /* chunks per message (and the highest Chunks), 1..MSNP_CHUNKS_PER_MSG_CAP */
    size_t bytes_max; /* arena size in bytes, >= 1024 */
    uint64_t timeout_ms; /* a message pending longer than this is expired */
};

struct msnp_chunks_slot {
    bool used;
    uint32_t total;    /* Chunks from chunk 0; 0 while chunk 0 has not arrived */
    uint64_t have;     /* bit i: chunk i stored */
    size_t bytes;      /* data bytes stored (the reassembled length) */
    uint64_t first_ms; /* when the first chunk arrived */
    size_t sender_len;
    size_t key_len; /* sender bytes then Message-ID bytes */
    uint8_t key[MSNP_CHUNKS_KEY_MAX];
};

/* Embed one per direction of a switchboard session. Fields are private except err. */
struct msnp_chunks {
    struct msnp_chunks_limits lim;
    const char *err; /* why the last msnp_chunks_add returned SW_ERROR (static string) */
    uint8_t *mem;    /* the caller's arena (borrowed) */
    size_t used;     /* arena bytes in use */
    struct msnp_chunks_slot slots[MSNP_CHUNKS_SLOTS_CAP];
};

/* Fills lim with the defaults above. */
void msnp_chunks_limits_default(struct msnp_chunks_limits *lim);

/* Initialises c with limits lim (copied; NULL = defaults) and the arena mem of lim->bytes_max
 * bytes (borrowed: the caller keeps it alive while c is used and frees it afterwards). Returns
 * SW_OK, or SW_ERROR if a limit is out of range or mem is NULL. */
int msnp_chunks_init(struct msnp_chunks *c, const struct msnp_chunks_limits *lim, uint8_t *mem);

/* Adds one chunk: payload[0..payload_len) is the MSG payload m was parsed from (both
 * borrowed, only for the call), sender the sending passport (borrowed; chunks of different
 * senders never mix; may be empty). Expires old messages first. Returns
 *   SW_OK: the message is complete; its bytes (*out_len) were copied to out[0..out_cap) and
 *          its state freed;
 *   SW_AGAIN: stored; more chunks are needed;
 *   SW_DECLINED: nothing stored: m is not a chunk, or this chunk index was already stored
 *                (duplicate; c->err says which);
 *   SW_ERROR: a bound or a consistency rule was broken (c->err): too many pending messages,
 *             too many chunks, arena full, index beyond Chunks, Chunks changed, key too long,
 *             out_cap too small; the message's stored chunks were discarded. */
int msnp_chunks_add(struct msnp_chunks *c, uint64_t now_ms, const uint8_t *sender,
                    size_t sender_len, const uint8_t *payload, size_t payload_len,
                    const struct msnp_mime *m, uint8_t *out, size_t out_cap, size_t *out_len);

/* Discards messages whose first chunk arrived more than timeout_ms before now_ms. Returns how
 * many were discarded. */
size_t msnp_chunks_expire(struct msnp_chunks *c, uint64_t now_ms);

/* Number of messages in progress. */
size_t msnp_chunks_pending(const struct msnp_chunks *c);

/* Arena bytes in use (chunk data plus per-chunk overhead). */
size_t msnp_chunks_used(const struct msnp_chunks *c);

#endif
