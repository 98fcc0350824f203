/* A session: a client leg and an upstream leg, each a transport (xprt.h) with its own ev_io,
 * and two bounded buffers, one per direction.
 *
 *   accept -> [proxy header] -> [client TLS handshake] -> connect -> [PROXY v2 out]
 *          -> [upstream TLS handshake] -> relay -> half-close each way -> close
 *
 * After every event the ev_io interest of both legs is recomputed from buffer state: a side is
 * read only while the other direction's queue is below the high watermark (backpressure for
 * free), and written only while it has ready bytes. One ev_timer per session holds the current
 * deadline (handshake, connect, or idle, the latter re-armed lazily).
 *
 * Protocols (issues 4/5) plug in through struct proto_ops: the session hands them the bytes
 * received and not yet judged, and they answer through session_forward/drop/insert, so
 * unchanged bytes are sent from the receive buffer as they came. */
#ifndef SW_PROXY_SESSION_H
#define SW_PROXY_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "protocols/sw_rc.h"
#include "proxy/config.h"

struct session;
struct worker;

enum session_dir {
    SESSION_C2S = 0, /* client to upstream */
    SESSION_S2C = 1, /* upstream to client */
};

struct proto_ops {
    const char *name;
    /* Creates per-session state in *state (may stay NULL). SW_OK, or SW_ERROR to refuse. */
    int (*open)(struct session *s, void **state);
    /* Bytes arrived in direction dir: data/len are all received bytes not yet judged (borrowed,
     * valid for the call). Judge a prefix with session_forward/session_drop/session_insert, in
     * stream order; what is left stays pending and comes back with more bytes. A protocol must
     * bound what it leaves pending (it is at most the buffer size). SW_OK, or SW_ERROR to close
     * the session. NULL means forward everything. */
    int (*on_data)(struct session *s, void *state, enum session_dir dir, const uint8_t *data,
                   size_t len);
    /* Frees the state (may be NULL). */
    void (*close)(void *state);
};

/* The ops of a protocol; the pass-through for tcp. NULL for one not implemented yet. */
const struct proto_ops *proto_for(enum config_proto p);

/* Creates a session for an accepted client fd (ownership taken, closed on failure) on
 * listener lidx of worker w; peer is the socket's peer (copied). ip_held says the per-IP table
 * already counted peer. Returns SW_OK, or SW_ERROR after cleaning up (counted by the caller). */
int session_new(struct worker *w, unsigned lidx, int fd, const struct sockaddr *peer,
                socklen_t peer_len, bool ip_held);

/* Closes every session of w at once (end of the shutdown grace). */
void session_close_all(struct worker *w);

/* Judging calls for protocols, valid inside on_data for its direction dir (or, for insert,
 * the opposite direction too: a reply to the sender). Each returns SW_OK or SW_ERROR. */
/* Releases the next n pending bytes unchanged. */
int session_forward(struct session *s, enum session_dir dir, size_t n);
/* Removes the next n pending bytes. */
int session_drop(struct session *s, enum session_dir dir, size_t n);
/* Queues len bytes (copied) in direction dir ahead of its pending bytes. SW_ERROR if they do
 * not fit in the buffer. */
int session_insert(struct session *s, enum session_dir dir, const uint8_t *data, size_t len);

/* OpenSSL new-session callback of upstream contexts: keeps sess as the worker's resumption
 * candidate for the session's listener. Returns 1 (reference kept) or 0. Worker thread. */
int session_upstream_new_session(SSL *ssl, SSL_SESSION *sess);

/* The session's id and worker id, for protocol log lines. */
uint64_t session_id(const struct session *s);
unsigned session_worker_id(const struct session *s);

/* The listener config and the matcher of the snapshot the session started with (borrowed,
 * valid for the session's life: a reload does not change them), and the real client address
 * (after a PROXY header). */
const struct config_listener *session_listener(const struct session *s);
struct matcher *session_matcher(const struct session *s);
const struct sockaddr *session_peer(const struct session *s);

#endif
