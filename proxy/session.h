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
struct ev_loop;
struct metrics_slot;
struct rep;
struct matcher_ctx;

enum session_dir {
    SESSION_C2S = 0, /* client to upstream */
    SESSION_S2C = 1, /* upstream to client */
};

/* "c2s" or "s2c", for log lines. */
static inline const char *session_dir_name(enum session_dir dir)
{
    return dir == SESSION_C2S ? "c2s" : "s2c";
}

struct proto_ops {
    const char *name;
    /* Creates per-session state in *state (may stay NULL). SW_OK, or SW_ERROR to refuse. */
    int (*open)(struct session *s, void **state);
    /* Bytes arrived in direction dir: data/len are all received bytes not yet judged (borrowed,
     * valid for the call). Judge a prefix with session_forward/session_drop/session_insert, in
     * stream order; what is left stays pending and comes back with more bytes. A protocol must
     * bound what it leaves pending (it is at most the buffer size). SW_OK; SW_AGAIN when it
     * stopped before a unit that needs more room than session_room() has (nothing more is read
     * in that direction, and on_data is called again with the pending bytes once some bytes
     * were written either way); or SW_ERROR to close the session. NULL means forward
     * everything. */
    int (*on_data)(struct session *s, void *state, enum session_dir dir, const uint8_t *data,
                   size_t len);
    /* Frees the state (may be NULL). */
    void (*close)(void *state);
    /* Optional. Direction dir ended (the sender closed, or the upstream failed mid-session):
     * pending bytes were discarded; the protocol may still insert a last word toward the other
     * side of that direction's receiver (e.g. a stream error to the client). */
    void (*on_eof)(struct session *s, void *state, enum session_dir dir);
    /* Optional. The upstream could not be reached (connect, PROXY header or TLS failed, all
     * counted and logged already). SW_OK if the protocol queued its own error toward the
     * client with session_insert(SESSION_S2C) and called session_end(); SW_ERROR (or NULL)
     * closes the session at once. */
    int (*upstream_failed)(struct session *s, void *state);
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
/* The bytes of direction dir not judged yet (borrowed; valid until the next judging call on
 * that direction: a drop or an insert moves them, an insert may reallocate). */
const uint8_t *session_pending(struct session *s, enum session_dir dir, size_t *len);
/* Bytes that may still be inserted in direction dir (the buffer may grow to its bound). */
size_t session_room(struct session *s, enum session_dir dir);

/* Releases the next n pending bytes unchanged. */
int session_forward(struct session *s, enum session_dir dir, size_t n);
/* Removes the next n pending bytes. */
int session_drop(struct session *s, enum session_dir dir, size_t n);
/* Queues len bytes (copied) in direction dir ahead of its pending bytes. SW_ERROR if they do
 * not fit in the buffer. */
int session_insert(struct session *s, enum session_dir dir, const uint8_t *data, size_t len);

/* Called from open(): the upstream is connected only when the protocol asks with
 * session_connect_upstream(); until then client bytes are judged and the protocol may answer
 * locally with session_insert(SESSION_S2C) (forwarded C2S bytes wait in the buffer). */
void session_defer_upstream(struct session *s);

/* Connects a deferred upstream now, to addr/len (copied; NULL = the listener's configured
 * upstream), with the listener's PROXY and TLS settings. The connect starts once the current
 * on_data returns. SW_OK, or SW_ERROR if the session has an upstream already or addr is bad. */
int session_connect_upstream(struct session *s, const struct sockaddr *addr, socklen_t len);

/* Ends the session gracefully: nothing more is read from either side; the bytes already
 * judged (forwarded or inserted) are written, each leg's sending direction is closed, then the
 * session is freed. Bounded by the handshake timeout. */
void session_end(struct session *s);

/* STARTTLS on the client leg: once the client-bound bytes queued now (the <proceed/>) are
 * written, every pending client byte is discarded (plaintext after the request must not
 * survive into the TLS stream) and a TLS server handshake starts on the client leg with the
 * listener's certificates; relaying resumes after it. SW_ERROR if the client leg is TLS already
 * or the listener has no certificates. */
int session_start_client_tls(struct session *s);

/* STARTTLS on the upstream leg: once the upstream-bound bytes queued now (the protocol's
 * <starttls/>) are written, every pending upstream byte is discarded, a TLS client handshake
 * starts with the listener's upstream TLS settings (verification, SNI, resumption), and
 * after[0..len) (copied) is the first thing sent over it, ahead of the pending client bytes.
 * SW_ERROR if the upstream is not connected, is TLS already, or has no TLS context. */
int session_start_upstream_tls(struct session *s, const uint8_t *after, size_t len);

/* True once the client leg runs TLS (direct, or after session_start_client_tls). */
bool session_client_tls(const struct session *s);

/* The SNI name the client sent, or NULL (borrowed, valid for the session). */
const char *session_client_sni(const struct session *s);

/* The worker's metrics slot, shared reputation cache (NULL if off) and matcher working state
 * (per worker; NULL if it could not be allocated), for protocols. */
struct metrics_slot *session_metrics(const struct session *s);
struct rep *session_rep(const struct session *s);
struct matcher_ctx *session_matcher_ctx(const struct session *s);
unsigned session_listener_index(const struct session *s);
/* The loop's current time in ms (ev_now), for reputation timestamps. */
uint64_t session_now_ms(const struct session *s);
/* The loop of s's worker, for a protocol's own watchers (loop thread only). */
struct ev_loop *session_loop(const struct session *s);
/* Judges again, now, the directions whose on_data answered SW_AGAIN: for a protocol whose wait
 * ended on an event of its own (a timer, a lookup) rather than on buffer room. Runs the
 * session's state machine, which may close s: the caller must not touch s or its protocol
 * state afterwards. Loop thread only, never from inside on_data. */
void session_retry(struct session *s);

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

/* The real client's IP address as text into out[0..cap) ("" if not IPv4/IPv6). */
void session_peer_ip(const struct session *s, char *out, size_t cap);

#endif
