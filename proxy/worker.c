/* Worker threads; see worker.h. */
#include "proxy/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "matcher/matcher.h"
#include "proxy/log.h"
#include "proxy/session.h"

/* Accepts at most this many connections per readiness event, so one busy listener cannot starve
 * the sessions of its loop. */
#define WORKER_ACCEPT_BATCH 64

static void reject(struct worker *w, unsigned lidx, int fd, enum metrics_reject_reason r,
                   const struct sockaddr *peer)
{
    static const char *const names[] = {"global_limit",    "per_ip_limit",  "proxy_header",
                                        "proxy_untrusted", "upstream_down", "draining"};
    char p[80];
    close(fd);
    metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, lidx, r);
    LOG(LOG_MOD_WORKER, LOG_LEVEL_INFO, w->id, 0, "conn_rejected", "listener=%s peer=%s reason=%s",
        w->rt->listeners[lidx].cfg->name, listener_addr_str(peer, p, sizeof(p)), names[r]);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker_listener *wl = io->data;
    struct worker *w = wl->w;
    const struct config *cfg = w->rt->cfg;
    const struct config_listener *l = &cfg->listeners[wl->idx];
    for (int i = 0; i < WORKER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            /* EMFILE and friends: the connection stays queued and the socket stays readable,
             * so pause accepting briefly instead of spinning; say so, rate-limited */
            LOG(LOG_MOD_WORKER, LOG_LEVEL_WARN, w->id, 0, "accept_failed", "listener=%s error=%s",
                l->name, strerror(errno));
            for (unsigned k = 0; k < w->n_ls; k++)
                ev_io_stop(loop, &w->ls[k].io);
            ev_timer_set(&w->accept_pause, 0.1, 0.);
            ev_timer_start(loop, &w->accept_pause);
            return;
        }
        const struct sockaddr *peer = (const struct sockaddr *)&ss;
        unsigned prev = atomic_fetch_add_explicit(&w->sh->n_conns, 1, memory_order_relaxed);
        if (prev >= cfg->max_connections) {
            atomic_fetch_sub_explicit(&w->sh->n_conns, 1, memory_order_relaxed);
            reject(w, wl->idx, fd, METRICS_REJECT_GLOBAL_LIMIT, peer);
            continue;
        }
        /* behind a trusted balancer the limit applies to the address in the PROXY header */
        bool trusted =
            l->n_proxy_from > 0 && config_cidr_match(l->proxy_from, l->n_proxy_from, peer);
        if (!trusted && !iptable_acquire(w->sh->iptable, wl->idx, peer, l->limits.max_per_ip)) {
            atomic_fetch_sub_explicit(&w->sh->n_conns, 1, memory_order_relaxed);
            reject(w, wl->idx, fd, METRICS_REJECT_PER_IP_LIMIT, peer);
            continue;
        }
        if (session_new(w, wl->idx, fd, peer, len, !trusted) != SW_OK) {
            atomic_fetch_sub_explicit(&w->sh->n_conns, 1, memory_order_relaxed);
            LOG(LOG_MOD_WORKER, LOG_LEVEL_WARN, w->id, 0, "session_failed", "listener=%s", l->name);
        }
    }
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    for (unsigned i = 0; i < w->n_ls && !w->draining; i++)
        if (w->ls[i].io.fd != -1)
            ev_io_start(loop, &w->ls[i].io);
}

static void close_listeners(struct worker *w)
{
    ev_timer_stop(w->loop, &w->accept_pause);
    for (unsigned i = 0; i < w->n_ls; i++) {
        ev_io *io = &w->ls[i].io;
        if (io->fd == -1)
            continue;
        ev_io_stop(w->loop, io);
        close(io->fd);
        ev_io_set(io, -1, EV_READ);
    }
}

/* The mailbox: runs on the worker thread, between events, so no session is mid-operation. */
static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    pthread_mutex_lock(&w->lock);
    struct runtime *rt = w->next_rt;
    w->next_rt = NULL;
    bool drain = w->want_drain, stop = w->want_stop;
    pthread_mutex_unlock(&w->lock);
    if (rt != NULL) {
        /* live sessions keep their own reference to the old snapshot */
        runtime_unref(w->rt);
        w->rt = rt;
        LOG_UNLIMITED(LOG_MOD_WORKER, LOG_LEVEL_DEBUG, w->id, 0, "runtime_swapped",
                      "generation=%llu", (unsigned long long)rt->generation);
    }
    if ((drain || stop) && !w->draining) {
        w->draining = true;
        close_listeners(w);
    }
    if (stop) {
        session_close_all(w);
        ev_break(loop, EVBREAK_ALL);
    }
}

int worker_init(struct worker *w, unsigned id, struct worker_shared *sh, struct runtime *rt,
                const int *fds, unsigned n_fds, struct sw_err *err)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->sh = sh;
    pthread_mutex_init(&w->lock, NULL);
    w->ms = metrics_slot(sh->metrics, id - 1); /* ids start at 1: 0 is the main thread */
    w->rt = runtime_ref(rt);
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    w->ls = calloc(n_fds, sizeof(*w->ls));
    w->up_sess = calloc(n_fds, sizeof(*w->up_sess));
    w->up_sess_gen = calloc(n_fds, sizeof(*w->up_sess_gen));
    w->mctx = matcher_ctx_new();
    if (w->loop == NULL || w->ls == NULL || w->ms == NULL || w->up_sess == NULL ||
        w->up_sess_gen == NULL || w->mctx == NULL) {
        for (unsigned i = 0; i < n_fds; i++)
            close(fds[i]);
        return sw_err_set(err, "worker %u: cannot create its event loop", id);
    }
    w->n_ls = n_fds;
    for (unsigned i = 0; i < n_fds; i++) {
        struct worker_listener *wl = &w->ls[i];
        wl->w = w;
        wl->idx = i;
        ev_io_init(&wl->io, accept_cb, fds[i], EV_READ);
        wl->io.data = wl;
        ev_io_start(w->loop, &wl->io);
    }
    ev_init(&w->accept_pause, accept_resume_cb);
    w->accept_pause.data = w;
    ev_async_init(&w->async, async_cb);
    w->async.data = w;
    ev_async_start(w->loop, &w->async);
    return SW_OK;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

int worker_start(struct worker *w, struct sw_err *err)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return sw_err_set(err, "worker %u: pthread_create: %s", w->id, strerror(rc));
    w->started = true;
    return SW_OK;
}

void worker_post_runtime(struct worker *w, struct runtime *rt)
{
    runtime_ref(rt);
    pthread_mutex_lock(&w->lock);
    struct runtime *old = w->next_rt;
    w->next_rt = rt;
    pthread_mutex_unlock(&w->lock);
    runtime_unref(old);
    ev_async_send(w->loop, &w->async);
}

void worker_post_drain(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->want_drain = true;
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->async);
}

void worker_post_stop(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->want_stop = true;
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->async);
}

void worker_deinit(struct worker *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
    if (w->loop != NULL) {
        session_close_all(w);
        close_listeners(w);
        ev_async_stop(w->loop, &w->async);
        ev_loop_destroy(w->loop);
        w->loop = NULL;
    }
    for (unsigned i = 0; w->up_sess != NULL && i < w->n_ls; i++)
        SSL_SESSION_free(w->up_sess[i]);
    free(w->up_sess);
    w->up_sess = NULL;
    free(w->up_sess_gen);
    matcher_ctx_free(w->mctx);
    w->mctx = NULL;
    w->up_sess_gen = NULL;
    free(w->ls);
    w->ls = NULL;
    runtime_unref(w->next_rt);
    w->next_rt = NULL;
    runtime_unref(w->rt);
    w->rt = NULL;
    if (w->sh != NULL)
        pthread_mutex_destroy(&w->lock);
    w->sh = NULL;
}
