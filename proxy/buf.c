/* Bounded relay buffers; see buf.h for the layout and the contract. */
#include "proxy/buf.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/sw_rc.h"

void buf_init(struct buf *b, uint32_t size)
{
    assert(b != NULL && size > 0);
    b->data = NULL;
    b->size = b->init = b->max = size;
    b->head = b->fwd = b->tail = 0;
}

void buf_set_max(struct buf *b, uint32_t max)
{
    BUF_CHECK(b);
    b->max = max > b->init ? max : b->init;
}

void buf_deinit(struct buf *b)
{
    BUF_CHECK(b);
    free(b->data);
    b->data = NULL;
    b->size = b->init;
    b->head = b->fwd = b->tail = 0;
}

int buf_reserve(struct buf *b)
{
    BUF_CHECK(b);
    if (b->data != NULL)
        return SW_OK;
    b->data = malloc(b->size);
    if (b->data == NULL)
        return SW_ERROR;
    b->head = b->fwd = b->tail = 0;
    return SW_OK;
}

void buf_release_if_empty(struct buf *b)
{
    BUF_CHECK(b);
    if (b->head == b->tail && b->data != NULL)
        buf_deinit(b);
}

/* Moves the unsent bytes to the front; only when the tail has hit the end, so a steady stream
 * that is drained as it comes is never copied. */
static void buf_compact(struct buf *b)
{
    if (b->head == 0)
        return;
    if (b->head == b->tail) {
        b->head = b->fwd = b->tail = 0;
        return;
    }
    if (b->tail < b->size)
        return;
    memmove(b->data, b->data + b->head, b->tail - b->head);
    b->fwd -= b->head;
    b->tail -= b->head;
    b->head = 0;
}

/* Grows the storage to hold at least need bytes (<= max). SW_OK or SW_ERROR. */
static int buf_grow(struct buf *b, uint32_t need)
{
    if (need <= b->size)
        return SW_OK;
    if (need > b->max)
        return SW_ERROR;
    uint32_t n = b->size;
    while (n < need)
        n = n > b->max / 2 ? b->max : n * 2;
    uint8_t *d = realloc(b->data, n);
    if (d == NULL)
        return SW_ERROR;
    b->data = d;
    b->size = n;
    return SW_OK;
}

uint32_t buf_space(struct buf *b)
{
    BUF_CHECK(b);
    if (b->data == NULL)
        return 0;
    buf_compact(b);
    if (b->tail == b->size && b->size < b->max && buf_grow(b, b->size + 1) != SW_OK)
        return 0;
    return b->size - b->tail;
}

uint8_t *buf_space_ptr(struct buf *b)
{
    BUF_CHECK(b);
    assert(b->data != NULL);
    return b->data + b->tail;
}

void buf_produce(struct buf *b, uint32_t n)
{
    BUF_CHECK(b);
    assert(b->data != NULL && n <= b->size - b->tail);
    b->tail += n;
}

void buf_forward(struct buf *b, uint32_t n)
{
    BUF_CHECK(b);
    assert(n <= b->tail - b->fwd);
    b->fwd += n;
}

void buf_drop(struct buf *b, uint32_t n)
{
    BUF_CHECK(b);
    assert(n <= b->tail - b->fwd);
    if (n == 0)
        return;
    memmove(b->data + b->fwd, b->data + b->fwd + n, b->tail - b->fwd - n);
    b->tail -= n;
}

int buf_insert(struct buf *b, const uint8_t *data, uint32_t len)
{
    BUF_CHECK(b);
    assert(data != NULL || len == 0);
    if (len == 0)
        return SW_OK;
    if (buf_reserve(b) != SW_OK)
        return SW_ERROR;
    if (len > b->size - (b->tail - b->head) &&
        (len > b->max - (b->tail - b->head) || buf_grow(b, (b->tail - b->head) + len) != SW_OK))
        return SW_ERROR;
    if (len > b->size - b->tail) {
        memmove(b->data, b->data + b->head, b->tail - b->head);
        b->fwd -= b->head;
        b->tail -= b->head;
        b->head = 0;
    }
    memmove(b->data + b->fwd + len, b->data + b->fwd, b->tail - b->fwd);
    memcpy(b->data + b->fwd, data, len);
    b->fwd += len;
    b->tail += len;
    return SW_OK;
}

void buf_consume(struct buf *b, uint32_t n)
{
    BUF_CHECK(b);
    assert(n <= b->fwd - b->head);
    b->head += n;
    if (b->head == b->tail)
        b->head = b->fwd = b->tail = 0;
}
