/* Transports: one leg's byte stream behind an ops table (plain TCP or OpenSSL TLS), so the
 * session relay never asks which one it drives.
 *
 * Every op is non-blocking. When an op cannot progress it returns SW_AGAIN and records in the
 * xprt which socket event it waits for (EV_READ or EV_WRITE): TLS may need to write to read
 * (key update answers) or read to write, and the session recomputes its ev_io interest from
 * these fields after every event. */
#ifndef SW_PROXY_XPRT_H
#define SW_PROXY_XPRT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "protocols/sw_rc.h"

struct xprt;

struct xprt_ops {
    const char *name;
    /* Reads up to len bytes into p. Returns > 0 bytes read, 0 at end of stream (FIN or
     * close_notify), SW_AGAIN (x->rd_need says on what), SW_ERROR (reset, TLS error). */
    ssize_t (*read)(struct xprt *x, uint8_t *p, size_t len);
    /* Writes up to len (> 0) bytes from p (borrowed). Returns > 0 bytes taken, SW_AGAIN
     * (x->wr_need says on what) or SW_ERROR. A TLS retry must offer at least the same bytes. */
    ssize_t (*write)(struct xprt *x, const uint8_t *p, size_t len);
    /* Progresses the handshake. SW_OK done, SW_AGAIN (x->hs_need), SW_ERROR. */
    int (*handshake)(struct xprt *x);
    /* Ends our sending direction (FIN, or close_notify then FIN); reading stays possible.
     * SW_OK, SW_AGAIN (x->wr_need) or SW_ERROR. */
    int (*shutdown)(struct xprt *x);
    /* Frees the TLS state and closes the descriptor; the xprt is empty afterwards. */
    void (*close)(struct xprt *x);
};

struct xprt {
    const struct xprt_ops *ops;
    SSL *ssl;        /* owned; NULL for plain */
    int fd;          /* owned; -1 when closed */
    uint8_t rd_need; /* EV_READ or EV_WRITE: what the last SW_AGAIN read waits for */
    uint8_t wr_need; /* same for write and shutdown */
    uint8_t hs_need; /* same for handshake */
};

extern const struct xprt_ops xprt_plain_ops;
extern const struct xprt_ops xprt_tls_ops;

/* Makes x a plain transport on fd (ownership taken). */
void xprt_init_plain(struct xprt *x, int fd);

/* Makes x a TLS transport on fd (ownership of fd and ssl taken; ssl is set to fd here).
 * server selects accept or connect state. */
void xprt_init_tls(struct xprt *x, int fd, SSL *ssl, int server);

#endif
