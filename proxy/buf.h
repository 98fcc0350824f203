/* A bounded byte buffer for one relay direction, allocated lazily and released when empty, so
 * that an idle session holds no buffer memory at all.
 *
 *   data: [ consumed | ready (head..fwd) | pending (fwd..tail) | free (tail..size) ]
 *
 * The reader appends at tail (buf_space_ptr/buf_produce). A protocol then judges the pending
 * bytes and releases them for sending (buf_forward), removes some (buf_drop) or inserts its own
 * (buf_insert) at fwd. The writer sends the ready bytes (buf_ready_ptr/buf_consume). Forwarded
 * bytes are never copied; only the pending tail behind a drop or an insert is moved.
 * Every accessor asserts the invariant head <= fwd <= tail <= size. */
#ifndef SW_PROXY_BUF_H
#define SW_PROXY_BUF_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* owned; NULL while the buffer is released */
    uint32_t size; /* capacity once allocated (the configured buffer size) */
    uint32_t init; /* capacity of a fresh allocation */
    uint32_t max;  /* capacity it may grow to for a protocol's pending unit (>= init) */
    uint32_t head; /* first byte not yet sent */
    uint32_t fwd;  /* end of the bytes released for sending */
    uint32_t tail; /* end of the received bytes */
};

#define BUF_CHECK(b)                                                                               \
    assert((b) != NULL && (b)->head <= (b)->fwd && (b)->fwd <= (b)->tail &&                        \
           (b)->tail <= (b)->size && ((b)->data != NULL || (b)->tail == 0))

/* Prepares an empty, unallocated buffer of capacity size (> 0). Allocates nothing. */
void buf_init(struct buf *b, uint32_t size);

/* Frees the storage whatever it holds; the buffer is empty and reusable afterwards. */
void buf_deinit(struct buf *b);

/* Makes sure storage exists. Returns SW_OK, or SW_ERROR on ENOMEM (buffer unchanged). */
int buf_reserve(struct buf *b);

/* Frees the storage if the buffer is empty (idle sessions keep no buffers). */
void buf_release_if_empty(struct buf *b);

/* Bytes held (ready + pending). */
static inline uint32_t buf_len(const struct buf *b)
{
    BUF_CHECK(b);
    return b->tail - b->head;
}

/* Bytes released for sending. */
static inline uint32_t buf_ready(const struct buf *b)
{
    BUF_CHECK(b);
    return b->fwd - b->head;
}

/* Bytes received but not yet judged by the protocol. */
static inline uint32_t buf_pending(const struct buf *b)
{
    BUF_CHECK(b);
    return b->tail - b->fwd;
}

/* The ready bytes (buf_ready of them); NULL when none. Borrowed until the next call. */
static inline const uint8_t *buf_ready_ptr(const struct buf *b)
{
    BUF_CHECK(b);
    return b->data != NULL ? b->data + b->head : NULL;
}

/* The pending bytes (buf_pending of them); NULL when none. Borrowed until the next call. */
static inline const uint8_t *buf_pending_ptr(const struct buf *b)
{
    BUF_CHECK(b);
    return b->data != NULL ? b->data + b->fwd : NULL;
}

/* True if at least mark bytes wait to be sent (the high watermark test). Pending bytes do not
 * count: a protocol waiting for the rest of one long unit (a stanza) must go on reading; the
 * parser bounds that unit and max bounds the buffer. */
static inline bool buf_above(const struct buf *b, uint32_t mark)
{
    BUF_CHECK(b);
    return b->fwd - b->head >= mark;
}

/* Lets the buffer grow up to max (>= its size) while it is full; it shrinks back to the
 * initial size when released empty. */
void buf_set_max(struct buf *b, uint32_t max);

/* Free room at the tail after compacting consumed bytes away, growing (doubling, up to max)
 * when full; 0 when unallocated, full at max, or on ENOMEM. */
uint32_t buf_space(struct buf *b);

/* Where to append up to buf_space bytes; requires allocated storage. */
uint8_t *buf_space_ptr(struct buf *b);

/* Records n (<= buf_space) bytes appended at the tail. */
void buf_produce(struct buf *b, uint32_t n);

/* Releases n (<= buf_pending) pending bytes for sending, unchanged and uncopied. */
void buf_forward(struct buf *b, uint32_t n);

/* Removes n (<= buf_pending) bytes at fwd; the rest of the pending bytes move down. */
void buf_drop(struct buf *b, uint32_t n);

/* Inserts len bytes (borrowed) at fwd and releases them for sending, ahead of the pending bytes.
 * Returns SW_OK, or SW_ERROR if they do not fit (buffer unchanged) or on ENOMEM. */
int buf_insert(struct buf *b, const uint8_t *data, uint32_t len);

/* Marks n (<= buf_ready) bytes as sent; the storage is kept (see buf_release_if_empty). */
void buf_consume(struct buf *b, uint32_t n);

#endif
