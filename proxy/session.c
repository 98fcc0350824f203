/* Sessions: the two-legged relay; see session.h for the life cycle. */
#include "proxy/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "protocols/proxyproto.h"
#include "proxy/buf.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/msnp_session.h"
#include "proxy/runtime.h"
#include "proxy/tls.h"
#include "proxy/worker.h"
#include "proxy/xmpp_c2s.h"
#include "proxy/xprt.h"

/* Life cycle:
 *
 *   ST_PROXY --header--> ST_CLIENT_HS --done--> ST_CONNECT --> ST_UP_HS --> ST_RELAY
 *      \_____(no trusted source)__/ \___(tls none)___/     \__(plain)__/
 */
enum session_state {
    ST_PROXY = 0, /* reading a PROXY header from a trusted source */
    ST_CLIENT_HS, /* TLS handshake with the client */
    ST_CONNECT,   /* TCP connect to the upstream */
    ST_UP_HS,     /* TLS handshake with the upstream */
    ST_RELAY,
};

struct leg {
    struct xprt x; /* x.ops NULL until the leg exists */
    ev_io io;
    uint8_t ready;  /* socket events seen since the last SW_AGAIN asked for them */
    uint8_t events; /* current ev_io interest */
    bool rd_eof;    /* the peer ended its sending direction */
    bool shut;      /* we ended ours */
};

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct session {
    struct session *prev, *next;
    struct worker *w;
    struct runtime *rt; /* reference: the snapshot this session started with */
    const struct runtime_listener *rl;
    const struct proto_ops *proto;
    void *proto_state;
    uint64_t id;
    uint16_t lidx;
    uint8_t state;
    bool ip_held;         /* peer counted in the per-IP table */
    bool tls_peeked;      /* first client byte checked for a TLS record */
    bool up_deferred;     /* the protocol connects the upstream (session_connect_upstream) */
    bool ending;          /* session_end: flush, then close */
    bool cl_starttls;     /* session_start_client_tls: TLS once the s2c ready bytes are out */
    bool up_starttls;     /* session_start_upstream_tls: TLS once the c2s ready bytes are out */
    bool blocked[2];      /* on_data asked for room (SW_AGAIN): judge again after writes */
    bool retry;           /* session_retry: judge the blocked directions again at once */
    bool eof_deferred[2]; /* EOF seen while blocked: finish it once judged */
    uint8_t *up_after;    /* bytes to send first over the upstream's new TLS */
    uint32_t up_after_len;
    struct leg cl, up;
    struct buf c2s, s2c;
    ev_timer timer;
    ev_tstamp last_active;
    union sockaddr_any peer;    /* the real client (after a PROXY header) */
    union sockaddr_any local;   /* the address it connected to */
    union sockaddr_any up_addr; /* upstream chosen by the protocol (up_addr_len > 0) */
    socklen_t up_addr_len;
};

static void session_run(struct session *s);
static bool upstream_handover(struct session *s);

uint64_t session_id(const struct session *s)
{
    return s->id;
}

unsigned session_worker_id(const struct session *s)
{
    return s->w->id;
}

const struct config_listener *session_listener(const struct session *s)
{
    return s->rl->cfg;
}

struct matcher *session_matcher(const struct session *s)
{
    return s->rt->matcher;
}

const struct sockaddr *session_peer(const struct session *s)
{
    return &s->peer.sa;
}

void session_peer_ip(const struct session *s, char *out, size_t cap)
{
    out[0] = '\0';
    if (s->peer.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &s->peer.in.sin_addr, out, (socklen_t)cap);
    else if (s->peer.sa.sa_family == AF_INET6)
        inet_ntop(AF_INET6, &s->peer.in6.sin6_addr, out, (socklen_t)cap);
}

bool session_client_tls(const struct session *s)
{
    return s->cl.x.ssl != NULL && s->state != ST_CLIENT_HS;
}

const char *session_client_sni(const struct session *s)
{
    return s->cl.x.ssl != NULL ? SSL_get_servername(s->cl.x.ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

struct metrics_slot *session_metrics(const struct session *s)
{
    return s->w->ms;
}

struct rep *session_rep(const struct session *s)
{
    return s->w->sh->rep;
}

struct matcher_ctx *session_matcher_ctx(const struct session *s)
{
    return s->w->mctx;
}

unsigned session_listener_index(const struct session *s)
{
    return s->lidx;
}

struct ev_loop *session_loop(const struct session *s)
{
    return s->w->loop;
}

void session_retry(struct session *s)
{
    s->retry = true;
    session_run(s);
}

uint64_t session_now_ms(const struct session *s)
{
    return (uint64_t)(ev_now(s->w->loop) * 1000.0);
}

static const struct proto_ops proto_tcp = {.name = "tcp"};

const struct proto_ops *proto_for(enum config_proto p)
{
    switch (p) {
    case CONFIG_PROTO_TCP:
        return &proto_tcp;
    case CONFIG_PROTO_XMPP_C2S:
        return &xmpp_c2s_proto;
    case CONFIG_PROTO_MSNP:
        return &msnp_proto;
    default:
        return NULL;
    }
}

static const char *lname(const struct session *s)
{
    return s->rl->cfg->name;
}

static const char *peer_str(const struct session *s, char *buf, size_t len)
{
    return listener_addr_str(&s->peer.sa, buf, len);
}

static void session_free(struct session *s)
{
    struct worker *w = s->w;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    w->n_sessions--;
    ev_io_stop(w->loop, &s->cl.io);
    ev_io_stop(w->loop, &s->up.io);
    ev_timer_stop(w->loop, &s->timer);
    if (s->proto != NULL && s->proto->close != NULL)
        s->proto->close(s->proto_state);
    if (s->cl.x.ops != NULL)
        s->cl.x.ops->close(&s->cl.x);
    if (s->up.x.ops != NULL)
        s->up.x.ops->close(&s->up.x);
    buf_deinit(&s->c2s);
    buf_deinit(&s->s2c);
    free(s->up_after);
    if (s->ip_held)
        iptable_release(w->sh->iptable, s->lidx, &s->peer.sa);
    atomic_fetch_sub_explicit(&w->sh->n_conns, 1, memory_order_relaxed);
    metrics_add(w->ms, METRIC_CONNECTIONS_CURRENT, s->lidx, 0, (uint64_t)-1);
    runtime_unref(s->rt);
    free(s);
}

/* Closes the session after a failure already counted by the caller. */
static void session_close(struct session *s, const char *reason)
{
    char p[80];
    LOG(LOG_MOD_SESSION, LOG_LEVEL_DEBUG, s->w->id, s->id, "conn_close",
        "listener=%s peer=%s reason=%s state=%u", lname(s), peer_str(s, p, sizeof(p)), reason,
        (unsigned)s->state);
    session_free(s);
}

void session_close_all(struct worker *w)
{
    while (w->sessions != NULL)
        session_close(w->sessions, "shutdown");
}

static struct buf *dir_buf(struct session *s, enum session_dir dir)
{
    return dir == SESSION_C2S ? &s->c2s : &s->s2c;
}

size_t session_room(struct session *s, enum session_dir dir)
{
    const struct buf *b = dir_buf(s, dir);
    return b->max - (b->tail - b->head);
}

const uint8_t *session_pending(struct session *s, enum session_dir dir, size_t *len)
{
    struct buf *b = dir_buf(s, dir);
    *len = buf_pending(b);
    return *len > 0 ? buf_pending_ptr(b) : (const uint8_t *)"";
}

int session_forward(struct session *s, enum session_dir dir, size_t n)
{
    struct buf *b = dir_buf(s, dir);
    if (n > buf_pending(b))
        return SW_ERROR;
    buf_forward(b, (uint32_t)n);
    return SW_OK;
}

int session_drop(struct session *s, enum session_dir dir, size_t n)
{
    struct buf *b = dir_buf(s, dir);
    if (n > buf_pending(b))
        return SW_ERROR;
    buf_drop(b, (uint32_t)n);
    return SW_OK;
}

int session_insert(struct session *s, enum session_dir dir, const uint8_t *data, size_t len)
{
    if (len > UINT32_MAX)
        return SW_ERROR;
    return buf_insert(dir_buf(s, dir), data, (uint32_t)len);
}

/* --- timers ---------------------------------------------------------------------------- */

static void session_arm(struct session *s, double after)
{
    ev_timer_stop(s->w->loop, &s->timer);
    ev_timer_set(&s->timer, after, 0.);
    ev_timer_start(s->w->loop, &s->timer);
}

static void session_set_state(struct session *s, enum session_state st)
{
    const struct config_timeouts *t = &s->rl->cfg->timeouts;
    s->state = (uint8_t)st;
    switch (st) {
    case ST_PROXY:
    case ST_CLIENT_HS:
        session_arm(s, t->handshake);
        break;
    case ST_CONNECT:
    case ST_UP_HS:
        session_arm(s, t->connect);
        break;
    case ST_RELAY:
        s->last_active = ev_now(s->w->loop);
        /* before its upstream exists a session is still in its handshake: a fixed deadline */
        session_arm(s, s->up.x.ops == NULL ? t->handshake : t->idle);
        break;
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct session *s = t->data;
    struct worker *w = s->w;
    char p[80];
    enum metrics_timeout kind = METRICS_TIMEOUT_HANDSHAKE;
    if (s->ending) {
        kind = METRICS_TIMEOUT_HANDSHAKE; /* the last words never got out */
        goto out;
    }
    switch (s->state) {
    case ST_RELAY: {
        if (s->up.x.ops == NULL)
            break; /* the protocol never asked for its upstream in time */
        /* lazy idle timer: I/O only stamps last_active; re-arm for what is left */
        double left = s->last_active + s->rl->cfg->timeouts.idle - ev_now(loop);
        if (left > 0.001) {
            session_arm(s, left);
            return;
        }
        kind = METRICS_TIMEOUT_IDLE;
        break;
    }
    case ST_CONNECT:
        kind = METRICS_TIMEOUT_CONNECT;
        metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx, METRICS_REJECT_UPSTREAM_DOWN);
        break;
    case ST_CLIENT_HS:
        metrics_inc(w->ms, METRIC_TLS_FAILURES, s->lidx, METRICS_TLS_TIMEOUT);
        break;
    case ST_UP_HS:
        metrics_inc(w->ms, METRIC_TLS_FAILURES, s->lidx, METRICS_TLS_TIMEOUT);
        break;
    default:
        break;
    }
out:;
    static const char *const kinds[] = {"connect", "handshake", "idle"};
    metrics_inc(w->ms, METRIC_TIMEOUTS, s->lidx, kind);
    LOG(LOG_MOD_SESSION, LOG_LEVEL_INFO, w->id, s->id, "timeout", "listener=%s peer=%s kind=%s",
        lname(s), peer_str(s, p, sizeof(p)), kinds[kind]);
    if (!s->ending && (s->state == ST_CONNECT || s->state == ST_UP_HS) &&
        s->proto->upstream_failed != NULL && s->up.x.ops != NULL && upstream_handover(s)) {
        session_run(s); /* the protocol's last words to the client */
        return;
    }
    session_close(s, "timeout");
}

/* --- interest -------------------------------------------------------------------------- */

static void leg_set_events(struct session *s, struct leg *l, int ev)
{
    if (l->x.ops == NULL || l->x.fd == -1)
        ev = 0;
    if ((uint8_t)ev == l->events)
        return;
    ev_io_stop(s->w->loop, &l->io);
    if (ev != 0) {
        ev_io_set(&l->io, l->x.fd, ev);
        ev_io_start(s->w->loop, &l->io);
    }
    l->events = (uint8_t)ev;
}

static bool may_read(const struct leg *src, struct buf *b, uint32_t hiwm)
{
    return !src->rd_eof && !buf_above(b, hiwm);
}

static bool may_write(const struct leg *dst, const struct leg *src, const struct buf *b)
{
    return buf_ready(b) > 0 || (src->rd_eof && buf_len(b) == 0 && !dst->shut);
}

/* Recomputes both legs' interest from the state and the buffers. */
static void session_update_io(struct session *s)
{
    int ce = 0, ue = 0;
    uint32_t hiwm = s->rl->cfg->limits.high_watermark;
    switch (s->state) {
    case ST_PROXY:
        ce = EV_READ;
        break;
    case ST_CLIENT_HS:
        ce = s->cl.x.hs_need;
        break;
    case ST_CONNECT:
        ue = EV_WRITE;
        break;
    case ST_UP_HS:
        ue = s->up.x.hs_need;
        break;
    case ST_RELAY:
        if (!s->ending && !s->cl_starttls && !s->blocked[SESSION_C2S] &&
            may_read(&s->cl, &s->c2s, hiwm))
            ce |= s->cl.x.rd_need;
        if (may_write(&s->cl, &s->up, &s->s2c))
            ce |= s->cl.x.wr_need;
        if (!s->ending && !s->blocked[SESSION_S2C] && may_read(&s->up, &s->s2c, hiwm))
            ue |= s->up.x.rd_need;
        if (may_write(&s->up, &s->cl, &s->c2s))
            ue |= s->up.x.wr_need;
        break;
    }
    leg_set_events(s, &s->cl, ce);
    leg_set_events(s, &s->up, ue);
}

static void client_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct session *s = io->data;
    s->cl.ready |= (uint8_t)(revents & (EV_READ | EV_WRITE));
    session_run(s);
}

static void upstream_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct session *s = io->data;
    s->up.ready |= (uint8_t)(revents & (EV_READ | EV_WRITE));
    session_run(s);
}

/* --- steps: each returns SW_OK (state advanced), SW_AGAIN (wait), SW_ERROR (counted and
 * logged; the caller closes) ------------------------------------------------------------ */

static int step_proxy(struct session *s)
{
    struct worker *w = s->w;
    struct buf *b = &s->c2s;
    char p[80];
    if (buf_reserve(b) != SW_OK)
        return SW_ERROR;
    for (;;) {
        uint32_t have = buf_len(b), space = buf_space(b);
        if (space == 0)
            goto bad_header;
        /* peek so that nothing past the header is ever taken off the socket: what follows
         * (a ClientHello) must reach OpenSSL through the descriptor */
        ssize_t n = recv(s->cl.x.fd, buf_space_ptr(b), space, MSG_PEEK);
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            s->cl.ready &= (uint8_t)~EV_READ;
            return SW_AGAIN;
        }
        if (n <= 0) {
            metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx, METRICS_REJECT_PROXY_HEADER);
            LOG(LOG_MOD_PROXYPROTO, LOG_LEVEL_INFO, w->id, s->id, "proxy_header_eof",
                "listener=%s peer=%s", lname(s), peer_str(s, p, sizeof(p)));
            return SW_ERROR;
        }
        struct proxyproto_parser pp;
        struct proxyproto_result res;
        proxyproto_parser_init(&pp);
        ssize_t r = proxyproto_parse(&pp, b->data + b->head, have + (size_t)n, &res);
        if (r < 0) {
            metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx, METRICS_REJECT_PROXY_HEADER);
            LOG(LOG_MOD_PROXYPROTO, LOG_LEVEL_INFO, w->id, s->id, "proxy_header_bad",
                "listener=%s peer=%s reason=%s pos=%zu", lname(s), peer_str(s, p, sizeof(p)),
                pp.err != NULL ? pp.err : "?", pp.err_pos);
            return SW_ERROR;
        }
        size_t take = r > 0 ? (size_t)r - have : (size_t)n;
        ssize_t got = recv(s->cl.x.fd, buf_space_ptr(b), take, 0);
        if (got != (ssize_t)take)
            return SW_ERROR;
        buf_produce(b, (uint32_t)got);
        if (r == 0)
            continue;
        if (!res.local && res.src_len > 0 && res.src_len <= sizeof(s->peer)) {
            memcpy(&s->peer, &res.src, res.src_len);
            memcpy(&s->local, &res.dst, res.dst_len);
        }
        buf_forward(b, buf_pending(b));
        buf_consume(b, buf_ready(b));
        buf_release_if_empty(b);
        /* the per-IP limit applies to the real client, known only now */
        if (!res.local) {
            if (!iptable_acquire(w->sh->iptable, s->lidx, &s->peer.sa,
                                 s->rl->cfg->limits.max_per_ip)) {
                metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx,
                            METRICS_REJECT_PER_IP_LIMIT);
                LOG(LOG_MOD_SESSION, LOG_LEVEL_INFO, w->id, s->id, "per_ip_limit",
                    "listener=%s peer=%s", lname(s), peer_str(s, p, sizeof(p)));
                return SW_ERROR;
            }
            s->ip_held = true;
        }
        return SW_OK;
    }
bad_header:
    metrics_inc(w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx, METRICS_REJECT_PROXY_HEADER);
    return SW_ERROR;
}

static void tls_failed(struct session *s, struct leg *l, enum metrics_tls_reason r)
{
    char p[80];
    metrics_inc(s->w->ms, METRIC_TLS_FAILURES, s->lidx, r);
    LOG(LOG_MOD_TLS, LOG_LEVEL_INFO, s->w->id, s->id, "tls_handshake_failed",
        "listener=%s peer=%s leg=%s reason=%s", lname(s), peer_str(s, p, sizeof(p)),
        l == &s->cl ? "client" : "upstream", tls_reason_name(r));
}

/* Advances the TLS handshake of leg l (METRICS_LEG_CLIENT or METRICS_LEG_UPSTREAM): SW_AGAIN
 * until the transport is ready again, SW_OK when done (counted and logged), SW_ERROR after the
 * failure was counted by reason. */
static int leg_handshake(struct session *s, struct leg *l, unsigned leg, const char *leg_name)
{
    if (!(l->ready & l->x.hs_need))
        return SW_AGAIN;
    int rc = l->x.ops->handshake(&l->x);
    if (rc == SW_AGAIN) {
        l->ready &= (uint8_t)~l->x.hs_need;
        return SW_AGAIN;
    }
    if (rc != SW_OK) {
        tls_failed(s, l, tls_failure_reason(l->x.ssl));
        return SW_ERROR;
    }
    metrics_inc(s->w->ms, METRIC_TLS_HANDSHAKES, s->lidx, leg);
    LOG(LOG_MOD_TLS, LOG_LEVEL_DEBUG, s->w->id, s->id, "tls_handshake",
        "leg=%s version=%s cipher=%s resumed=%d", leg_name, SSL_get_version(l->x.ssl),
        SSL_get_cipher_name(l->x.ssl), SSL_session_reused(l->x.ssl));
    return SW_OK;
}

static int step_client_hs(struct session *s)
{
    struct leg *l = &s->cl;
    if (!s->tls_peeked) {
        /* one byte tells a TLS record (0x16 handshake) from garbage or plaintext, which
         * OpenSSL reports under assorted reasons */
        uint8_t c;
        ssize_t n = recv(l->x.fd, &c, 1, MSG_PEEK);
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            l->ready &= (uint8_t)~EV_READ;
            return SW_AGAIN;
        }
        if (n <= 0 || c != 0x16) {
            tls_failed(s, l, n <= 0 ? METRICS_TLS_EOF : METRICS_TLS_NOT_TLS);
            return SW_ERROR;
        }
        s->tls_peeked = true;
    }
    return leg_handshake(s, l, METRICS_LEG_CLIENT, "client");
}

static void upstream_down(struct session *s, int err)
{
    char p[80];
    metrics_inc(s->w->ms, METRIC_CONNECTIONS_REJECTED, s->lidx, METRICS_REJECT_UPSTREAM_DOWN);
    LOG(LOG_MOD_SESSION, LOG_LEVEL_WARN, s->w->id, s->id, "upstream_down",
        "listener=%s peer=%s upstream=%s error=%s", lname(s), peer_str(s, p, sizeof(p)),
        s->rl->cfg->upstream.address != NULL ? s->rl->cfg->upstream.address : "by-cookie",
        strerror(err));
}

/* Starts the non-blocking connect. SW_OK (connected or in progress) or SW_ERROR. */
static int start_connect(struct session *s)
{
    const struct config_upstream *u = &s->rl->cfg->upstream;
    const struct sockaddr *sa = (const struct sockaddr *)&u->addr;
    socklen_t sa_len = u->addr_len;
    if (s->up_addr_len > 0) {
        sa = &s->up_addr.sa;
        sa_len = s->up_addr_len;
    }
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        upstream_down(s, errno);
        return SW_ERROR;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    xprt_init_plain(&s->up.x, fd);
    if (connect(fd, sa, sa_len) == -1 && errno != EINPROGRESS) {
        upstream_down(s, errno);
        return SW_ERROR;
    }
    return SW_OK;
}

static int send_proxy_v2(struct session *s)
{
    uint8_t hdr[512];
    struct proxyproto_tlvs tlvs = {0};
    SSL *ssl = s->cl.x.ssl;
    if (ssl != NULL) {
        tlvs.ssl = true;
        tlvs.ssl_client = PP2_CLIENT_SSL;
        tlvs.ssl_version = SSL_get_version(ssl);
        tlvs.ssl_cipher = SSL_get_cipher_name(ssl);
        tlvs.authority = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    }
    bool have_addr = s->peer.sa.sa_family != AF_UNSPEC && s->local.sa.sa_family != AF_UNSPEC;
    ssize_t n =
        proxyproto_build_v2(hdr, sizeof(hdr), have_addr ? &s->peer.sa : NULL, &s->local.sa, &tlvs);
    if (n < 0)
        return SW_ERROR;
    /* the socket buffer of a fresh connection always takes a few hundred bytes */
    ssize_t put = send(s->up.x.fd, hdr, (size_t)n, MSG_NOSIGNAL);
    if (put != n) {
        upstream_down(s, put == -1 ? errno : EAGAIN);
        return SW_ERROR;
    }
    return SW_OK;
}

/* Puts a TLS client on the connected upstream socket (resuming the worker's last session). */
static int upstream_tls_begin(struct session *s)
{
    const struct config_upstream *u = &s->rl->cfg->upstream;
    SSL *ssl = tls_client_ssl_new(s->rl->client_ctx, u->server_name);
    if (ssl == NULL)
        return SW_ERROR;
    struct worker *w = s->w;
    SSL_set_app_data(ssl, s);
    if (w->up_sess[s->lidx] != NULL && w->up_sess_gen[s->lidx] == s->rt->generation)
        SSL_set_session(ssl, w->up_sess[s->lidx]);
    int fd = s->up.x.fd;
    xprt_init_tls(&s->up.x, fd, ssl, 0);
    return SW_OK;
}

static int step_connect(struct session *s)
{
    if (!(s->up.ready & EV_WRITE))
        return SW_AGAIN;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->up.x.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY) {
        s->up.ready &= (uint8_t)~EV_WRITE;
        return SW_AGAIN;
    }
    if (err != 0) {
        upstream_down(s, err);
        return SW_ERROR;
    }
    const struct config_upstream *u = &s->rl->cfg->upstream;
    if (u->send_proxy && send_proxy_v2(s) != SW_OK)
        return SW_ERROR;
    if (u->tls)
        return upstream_tls_begin(s);
    return SW_OK;
}

int session_upstream_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct session *s = SSL_get_app_data(ssl);
    if (s == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    struct worker *w = s->w;
    SSL_SESSION_free(w->up_sess[s->lidx]);
    w->up_sess[s->lidx] = sess;
    w->up_sess_gen[s->lidx] = s->rt->generation;
    return 1;
}

static int step_up_hs(struct session *s)
{
    return leg_handshake(s, &s->up, METRICS_LEG_UPSTREAM, "upstream");
}

/* --- relay ----------------------------------------------------------------------------- */

static int judge(struct session *s, enum session_dir dir);

/* The sender of direction dir ended it: bytes the protocol never completed cannot be judged
 * any more; the protocol may add its last words. */
static void finish_eof(struct session *s, struct buf *b, enum session_dir dir)
{
    buf_drop(b, buf_pending(b));
    buf_release_if_empty(b);
    if (s->proto->on_eof != NULL)
        s->proto->on_eof(s, s->proto_state, dir);
}

/* Reads from src into b. Returns 1 on progress, 0 if nothing could be done, SW_ERROR. */
static int relay_read(struct session *s, struct leg *src, struct buf *b, enum session_dir dir)
{
    if (src->x.ops == NULL || s->ending || s->cl_starttls || src->rd_eof || s->blocked[dir] ||
        !(src->ready & src->x.rd_need) || buf_above(b, s->rl->cfg->limits.high_watermark))
        return 0;
    if (buf_reserve(b) != SW_OK)
        return SW_ERROR;
    uint32_t space = buf_space(b);
    if (space == 0)
        return 0;
    /* a grown buffer is for one long unit, not for reading more at once: a read takes at most
     * the configured size, so a protocol always has room for what it inserts */
    if (space > b->init)
        space = b->init;
    ssize_t n = src->x.ops->read(&src->x, buf_space_ptr(b), space);
    if (n == SW_AGAIN) {
        src->ready &= (uint8_t)~src->x.rd_need;
        buf_release_if_empty(b);
        return 0;
    }
    if (n < 0) {
        if (src != &s->up || s->proto->on_eof == NULL)
            return SW_ERROR;
        /* the upstream failed mid-session: the protocol tells the client in its own terms */
        char p[80];
        LOG(LOG_MOD_SESSION, LOG_LEVEL_INFO, s->w->id, s->id, "upstream_lost",
            "listener=%s peer=%s error=%s", lname(s), peer_str(s, p, sizeof(p)),
            errno != 0 ? strerror(errno) : "tls");
        src->shut = true;
        buf_drop(&s->c2s, buf_pending(&s->c2s));
        buf_consume(&s->c2s, buf_ready(&s->c2s));
        n = 0;
    }
    s->last_active = ev_now(s->w->loop);
    if (n == 0) {
        src->rd_eof = true;
        if (s->blocked[dir])
            s->eof_deferred[dir] = true; /* complete units still wait to be judged */
        else
            finish_eof(s, b, dir);
        return 1;
    }
    buf_produce(b, (uint32_t)n);
    metrics_add(s->w->ms, METRIC_BYTES, s->lidx,
                dir == SESSION_C2S ? METRICS_DIR_C2S : METRICS_DIR_S2C, (uint64_t)n);
    if (s->proto->on_data == NULL) {
        buf_forward(b, buf_pending(b));
        return 1;
    }
    return judge(s, dir) == SW_ERROR ? SW_ERROR : 1;
}

/* Hands dir's pending bytes to the protocol. SW_OK, SW_AGAIN (blocked for room), SW_ERROR. */
static int judge(struct session *s, enum session_dir dir)
{
    struct buf *b = dir_buf(s, dir);
    int rc = s->proto->on_data(s, s->proto_state, dir, buf_pending_ptr(b), buf_pending(b));
    if (rc == SW_AGAIN) {
        s->blocked[dir] = true;
        return SW_AGAIN;
    }
    if (rc != SW_OK)
        return SW_ERROR;
    s->blocked[dir] = false;
    if (s->eof_deferred[dir]) {
        s->eof_deferred[dir] = false;
        finish_eof(s, b, dir);
    }
    return SW_OK;
}

/* Judges again the directions that were blocked for room. 1 if one got unblocked. */
static int rejudge(struct session *s)
{
    int p = 0;
    for (int d = 0; d < 2; d++) {
        if (!s->blocked[d] || s->ending)
            continue;
        int rc = judge(s, (enum session_dir)d);
        if (rc == SW_ERROR)
            return SW_ERROR;
        p |= rc == SW_OK;
    }
    return p;
}

/* Writes b's ready bytes to dst, or ends dst's direction once src ended and b drained. */
static int relay_write(struct session *s, struct leg *dst, struct leg *src, struct buf *b)
{
    if (dst->x.ops == NULL || dst->shut || !may_write(dst, src, b) ||
        !(dst->ready & dst->x.wr_need))
        return 0;
    if (buf_ready(b) == 0) {
        int rc = dst->x.ops->shutdown(&dst->x);
        if (rc == SW_AGAIN) {
            dst->ready &= (uint8_t)~dst->x.wr_need;
            return 0;
        }
        if (rc != SW_OK)
            return SW_ERROR;
        dst->shut = true;
        return 1;
    }
    ssize_t n = dst->x.ops->write(&dst->x, buf_ready_ptr(b), buf_ready(b));
    if (n == SW_AGAIN) {
        dst->ready &= (uint8_t)~dst->x.wr_need;
        return 0;
    }
    if (n < 0 && s->ending && dst == &s->up) {
        /* last words toward a dead upstream: nobody to tell */
        dst->shut = true;
        buf_consume(b, buf_ready(b));
        return 1;
    }
    if (n < 0)
        return SW_ERROR;
    buf_consume(b, (uint32_t)n);
    buf_release_if_empty(b);
    s->last_active = ev_now(s->w->loop);
    return 1;
}

/* Switches the client leg to TLS (session_start_client_tls) once the s2c bytes are out. */
static int client_starttls(struct session *s)
{
    SSL *ssl = tls_server_ssl_new((struct tls_server *)&s->rl->server);
    if (ssl == NULL)
        return SW_ERROR;
    /* plaintext sent after the request must not survive into the TLS stream */
    buf_drop(&s->c2s, buf_pending(&s->c2s));
    int fd = s->cl.x.fd;
    xprt_init_tls(&s->cl.x, fd, ssl, 1);
    s->cl.ready = EV_READ | EV_WRITE;
    s->cl_starttls = false;
    s->tls_peeked = false;
    session_set_state(s, ST_CLIENT_HS);
    return SW_OK;
}

/* Switches the upstream leg to TLS (session_start_upstream_tls) once the c2s bytes are out. */
static int upstream_starttls(struct session *s)
{
    s->up_starttls = false;
    /* whatever the server sent after agreeing is not trusted into the TLS stream */
    buf_drop(&s->s2c, buf_pending(&s->s2c));
    if (s->rl->client_ctx == NULL || upstream_tls_begin(s) != SW_OK)
        return SW_ERROR;
    int rc = buf_insert(&s->c2s, s->up_after, s->up_after_len);
    free(s->up_after);
    s->up_after = NULL;
    if (rc != SW_OK)
        return SW_ERROR;
    s->up.ready = EV_READ | EV_WRITE;
    session_set_state(s, ST_UP_HS);
    return SW_OK;
}

/* session_end: true once the last words are out (or cannot go anywhere). */
static bool ending_done(struct session *s)
{
    if (buf_ready(&s->s2c) > 0 && !s->cl.shut)
        return false;
    return s->up.x.ops == NULL || s->up.shut || buf_ready(&s->c2s) == 0;
}

/* Moves bytes both ways until nothing progresses (bounded, for fairness between sessions;
 * a leg left ready keeps its interest, so the loop comes back). SW_AGAIN, SW_OK when the
 * state changed (connect or TLS requested by the protocol), SW_DECLINED when both directions
 * are finished or an ending session flushed, SW_ERROR. */
static int relay(struct session *s)
{
    int i;
    for (i = 0; i < 16; i++) {
        int p = 0, rc;
        if ((rc = relay_read(s, &s->cl, &s->c2s, SESSION_C2S)) < 0)
            return SW_ERROR;
        p |= rc;
        if (s->state != ST_RELAY)
            return SW_OK;
        if ((rc = relay_write(s, &s->up, &s->cl, &s->c2s)) < 0)
            return SW_ERROR;
        p |= rc;
        if ((rc = relay_read(s, &s->up, &s->s2c, SESSION_S2C)) < 0)
            return SW_ERROR;
        p |= rc;
        if (s->state != ST_RELAY)
            return SW_OK;
        if ((rc = relay_write(s, &s->cl, &s->up, &s->s2c)) < 0)
            return SW_ERROR;
        p |= rc;
        if ((s->blocked[0] || s->blocked[1]) && (p != 0 || s->retry)) {
            s->retry = false;
            if ((rc = rejudge(s)) < 0)
                return SW_ERROR;
            p |= rc;
        }
        if (s->state != ST_RELAY)
            return SW_OK;
        if (s->cl_starttls && buf_ready(&s->s2c) == 0)
            return client_starttls(s);
        if (s->up_starttls && buf_ready(&s->c2s) == 0)
            return upstream_starttls(s);
        if (s->ending && ending_done(s)) {
            if (!s->cl.shut)
                (void)s->cl.x.ops->shutdown(&s->cl.x);
            if (s->up.x.ops != NULL && !s->up.shut)
                (void)s->up.x.ops->shutdown(&s->up.x);
            return SW_DECLINED;
        }
        if (p == 0)
            break;
    }
    /* Stopped while still progressing: bytes may sit inside OpenSSL where no socket event
     * announces them, so come back on the next loop iteration (ev_io_stop in session_free
     * cancels this). */
    if (i == 16)
        ev_feed_event(s->w->loop, &s->cl.io, EV_CUSTOM);
    if (s->cl.rd_eof && s->cl.shut && (s->up.x.ops == NULL || (s->up.shut && s->up.rd_eof)))
        return SW_DECLINED;
    if (s->cl.rd_eof && s->up.x.ops == NULL && buf_ready(&s->s2c) == 0)
        return SW_DECLINED; /* the client left before any upstream was needed */
    return SW_AGAIN;
}

void session_defer_upstream(struct session *s)
{
    s->up_deferred = true;
}

int session_connect_upstream(struct session *s, const struct sockaddr *addr, socklen_t len)
{
    if (!s->up_deferred || s->up.x.ops != NULL || s->state != ST_RELAY)
        return SW_ERROR;
    if (addr != NULL) {
        if (len > sizeof(s->up_addr) || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
            return SW_ERROR;
        memcpy(&s->up_addr, addr, len);
        s->up_addr_len = len;
    }
    s->up_deferred = false;
    session_set_state(s, ST_CONNECT);
    return SW_OK;
}

void session_end(struct session *s)
{
    if (s->ending)
        return;
    s->ending = true;
    session_arm(s, s->rl->cfg->timeouts.handshake);
}

int session_start_upstream_tls(struct session *s, const uint8_t *after, size_t len)
{
    if (s->up.x.ops == NULL || s->up.x.ssl != NULL || s->ending || s->up_starttls ||
        s->rl->client_ctx == NULL || len > UINT32_MAX)
        return SW_ERROR;
    s->up_after = malloc(len > 0 ? len : 1);
    if (s->up_after == NULL)
        return SW_ERROR;
    memcpy(s->up_after, after, len);
    s->up_after_len = (uint32_t)len;
    s->up_starttls = true;
    return SW_OK;
}

int session_start_client_tls(struct session *s)
{
    if (s->cl.x.ssl != NULL || s->rl->server.n == 0 || s->ending)
        return SW_ERROR;
    s->cl_starttls = true;
    return SW_OK;
}

/* The upstream failed before relaying: lets the protocol answer the client itself. True if
 * it took over (the session goes on without an upstream until the protocol ends it). */
static bool upstream_handover(struct session *s)
{
    s->up.x.ops->close(&s->up.x);
    memset(&s->up.x, 0, sizeof(s->up.x));
    s->up.x.fd = -1;
    s->up.ready = 0;
    leg_set_events(s, &s->up, 0);
    s->cl.ready = EV_READ | EV_WRITE;
    session_set_state(s, ST_RELAY);
    if (s->proto->upstream_failed(s, s->proto_state) != SW_OK)
        return false;
    if (!s->ending)
        session_end(s);
    return true;
}

static void session_run(struct session *s)
{
    int rc = SW_OK;
    const char *why = "error";
    for (;;) {
        enum session_state st = (enum session_state)s->state;
        switch (st) {
        case ST_PROXY:
            rc = step_proxy(s);
            why = "proxy_header";
            if (rc == SW_OK)
                session_set_state(s, s->rl->cfg->tls == CONFIG_TLS_DIRECT ? ST_CLIENT_HS
                                     : s->up_deferred                     ? ST_RELAY
                                                                          : ST_CONNECT);
            break;
        case ST_CLIENT_HS:
            if (s->cl.x.ssl == NULL) {
                SSL *ssl = tls_server_ssl_new((struct tls_server *)&s->rl->server);
                if (ssl == NULL) {
                    rc = SW_ERROR;
                    break;
                }
                int fd = s->cl.x.fd;
                xprt_init_tls(&s->cl.x, fd, ssl, 1);
            }
            rc = step_client_hs(s);
            why = "client_tls";
            if (rc == SW_OK)
                session_set_state(s, s->up.x.ops != NULL || s->up_deferred ? ST_RELAY : ST_CONNECT);
            break;
        case ST_CONNECT:
            if (s->up.x.ops == NULL) {
                rc = start_connect(s);
                why = "upstream_down";
                if (rc != SW_OK)
                    break;
                s->up.ready = 0;
            }
            rc = step_connect(s);
            why = "upstream_down";
            if (rc == SW_OK) {
                s->up.ready = EV_READ | EV_WRITE;
                session_set_state(s, s->rl->cfg->upstream.tls ? ST_UP_HS : ST_RELAY);
            }
            break;
        case ST_UP_HS:
            rc = step_up_hs(s);
            why = "upstream_tls";
            if (rc == SW_OK)
                session_set_state(s, ST_RELAY);
            break;
        case ST_RELAY:
            errno = 0;
            rc = relay(s);
            why = "io_error";
            if (rc == SW_DECLINED) {
                session_close(s, "done");
                return;
            }
            break;
        }
        if (rc == SW_ERROR && (st == ST_CONNECT || st == ST_UP_HS) &&
            s->proto->upstream_failed != NULL && upstream_handover(s))
            rc = SW_OK;
        if (rc == SW_ERROR) {
            if (st == ST_RELAY) {
                /* reset by a peer, TLS record error: the other failures logged already */
                char p[80];
                LOG(LOG_MOD_SESSION, LOG_LEVEL_INFO, s->w->id, s->id, "relay_error",
                    "listener=%s peer=%s error=%s", lname(s), peer_str(s, p, sizeof(p)),
                    errno != 0                                   ? strerror(errno)
                    : s->cl.x.ssl != NULL || s->up.x.ssl != NULL ? "tls"
                                                                 : "protocol");
            }
            session_close(s, why);
            return;
        }
        if (rc == SW_AGAIN)
            break;
    }
    session_update_io(s);
}

int session_new(struct worker *w, unsigned lidx, int fd, const struct sockaddr *peer,
                socklen_t peer_len, bool ip_held)
{
    const struct runtime_listener *rl = &w->rt->listeners[lidx];
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        if (ip_held)
            iptable_release(w->sh->iptable, lidx, peer);
        return SW_ERROR;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->w = w;
    s->rt = runtime_ref(w->rt);
    s->rl = rl;
    s->proto = proto_for(rl->cfg->proto);
    s->id = ++w->next_conn_id;
    s->lidx = (uint16_t)lidx;
    s->ip_held = ip_held;
    if (peer_len <= sizeof(s->peer))
        memcpy(&s->peer, peer, peer_len);
    socklen_t ll = sizeof(s->local);
    if (getsockname(fd, &s->local.sa, &ll) == -1)
        s->local.sa.sa_family = AF_UNSPEC;
    xprt_init_plain(&s->cl.x, fd);
    s->up.x.fd = -1;
    s->cl.ready = EV_READ | EV_WRITE;
    buf_init(&s->c2s, rl->cfg->limits.buffer_size);
    buf_init(&s->s2c, rl->cfg->limits.buffer_size);
    /* a unit (stanza, command with payload) waits whole in the buffer until it is judged;
     * the rest is room for one read, queued bytes and the protocol's insertions */
    uint32_t unit = rl->cfg->proto == CONFIG_PROTO_XMPP_C2S ? rl->cfg->xmpp.stanza_max
                    : rl->cfg->proto == CONFIG_PROTO_MSNP
                        ? rl->cfg->msnp.line_max + rl->cfg->msnp.payload_max
                        : 0;
    if (unit > 0) {
        uint32_t max = unit + 4 * rl->cfg->limits.buffer_size + 65536;
        buf_set_max(&s->c2s, max);
        buf_set_max(&s->s2c, max);
    }
    ev_io_init(&s->cl.io, client_io_cb, fd, EV_READ);
    ev_io_init(&s->up.io, upstream_io_cb, -1, EV_READ);
    s->cl.io.data = s->up.io.data = s;
    ev_init(&s->timer, timer_cb);
    s->timer.data = s;
    s->next = w->sessions;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;
    metrics_inc(w->ms, METRIC_CONNECTIONS_TOTAL, lidx, 0);
    metrics_add(w->ms, METRIC_CONNECTIONS_CURRENT, lidx, 0, 1);
    if (s->proto == NULL ||
        (s->proto->open != NULL && s->proto->open(s, &s->proto_state) != SW_OK)) {
        session_close(s, "protocol");
        return SW_OK;
    }
    if (log_enabled(LOG_MOD_SESSION, LOG_LEVEL_DEBUG)) {
        char p[80];
        LOG(LOG_MOD_SESSION, LOG_LEVEL_DEBUG, w->id, s->id, "conn_open", "listener=%s peer=%s",
            lname(s), peer_str(s, p, sizeof(p)));
    }
    enum session_state first = s->up_deferred ? ST_RELAY : ST_CONNECT;
    if (rl->cfg->n_proxy_from > 0 &&
        config_cidr_match(rl->cfg->proxy_from, rl->cfg->n_proxy_from, peer))
        first = ST_PROXY;
    else if (rl->cfg->tls == CONFIG_TLS_DIRECT)
        first = ST_CLIENT_HS;
    session_set_state(s, first);
    session_run(s);
    return SW_OK;
}
