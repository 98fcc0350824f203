/* Worker threads: one libev loop each, with its own SO_REUSEPORT socket per listener.
 *
 * A worker owns its loop, its listening sockets and its sessions; nothing of it is touched by
 * another thread except through worker_post_* (a mutex-protected mailbox and an ev_async).
 * Shared by all workers on purpose: struct worker_shared (metrics counters, the per-IP table,
 * the reputation cache, the global connection count), each built for it. */
#ifndef SW_PROXY_WORKER_H
#define SW_PROXY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "protocols/sw_rc.h"
#include "proxy/listener.h"
#include "proxy/metrics.h"
#include "proxy/runtime.h"

struct session;
struct worker;

struct worker_shared {
    struct metrics *metrics; /* borrowed; counters are lock-free */
    struct iptable *iptable; /* borrowed; sharded locks */
    struct rep *rep;         /* borrowed; the reputation cache (sharded locks), NULL when
                              * reputation.enabled is false; lives across reloads */
    atomic_uint n_conns;     /* live sessions of every worker (limits.max_connections) */
};

struct worker_listener {
    ev_io io;
    struct worker *w;
    unsigned idx; /* index in the config's listeners, also the metrics label */
};

struct worker {
    unsigned id;
    struct ev_loop *loop;
    ev_async async;
    pthread_t thread;
    bool started;
    struct worker_shared *sh;
    struct metrics_slot *ms;
    struct runtime *rt; /* current snapshot for new sessions; worker thread only */
    struct worker_listener *ls;
    unsigned n_ls;
    ev_timer accept_pause; /* out of descriptors: accepting resumes when it fires */
    /* upstream TLS resumption: the last session per listener, valid for one runtime
     * generation (a reload brings new contexts) */
    SSL_SESSION **up_sess;
    uint64_t *up_sess_gen;
    struct matcher_ctx *mctx; /* matcher working state of this thread */
    struct session *sessions; /* live sessions, doubly linked */
    unsigned n_sessions;
    uint64_t next_conn_id;
    bool draining;
    /* mailbox, under lock */
    pthread_mutex_t lock;
    struct runtime *next_rt;
    bool want_drain, want_stop;
};

/* Prepares w: a new loop and watchers on fds (one per listener, ownership taken, closed on
 * failure too), a reference to rt. Returns SW_OK or SW_ERROR with err. */
int worker_init(struct worker *w, unsigned id, struct worker_shared *sh, struct runtime *rt,
                const int *fds, unsigned n_fds, struct sw_err *err);

/* Starts the thread. SW_OK or SW_ERROR with err. */
int worker_start(struct worker *w, struct sw_err *err);

/* Hands rt (one reference taken here) to the worker; it swaps at its next loop iteration. */
void worker_post_runtime(struct worker *w, struct runtime *rt);

/* Asks the worker to stop accepting (close its listening sockets); sessions go on. */
void worker_post_drain(struct worker *w);

/* Asks the worker to close every session and leave its loop. */
void worker_post_stop(struct worker *w);

/* Joins the thread (after worker_post_stop) and frees everything; safe on a worker that was
 * initialised but never started, and on a zeroed one. */
void worker_deinit(struct worker *w);

#endif
