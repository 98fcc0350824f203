/* The xmpp-c2s protocol: one restricted-XML parser per direction over the session's pending
 * bytes; every event is judged in stream order (forwarded as it came, rewritten, or dropped).
 * See docs/xmpp.md for the behaviour and its reasons. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>

#include "matcher/hash.h"
#include "matcher/matcher.h"
#include "protocols/xmpp/xmpp_escape.h"
#include "protocols/xmpp/xmpp_parser.h"
#include "proxy/judge.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/session.h"
#include "proxy/xmpp_c2s.h"

#define XC_DOMAIN_MAX 1024 /* stream 'to' kept for our own stream headers */
#define XC_JID_MAX 3072    /* RFC 7622 */
#define XC_SMID_MAX 128    /* XEP-0198 ids kept for resumption */
#define XC_OUT_MAX 16384   /* rewritten features, SM acks, bounces */
#define XC_TEXT_MAX 65536  /* decoded body bytes handed to the matcher */
#define XC_BOUNCE_TEXT "Message refused by the spam filter"

static const char ns_streams[] = "urn:ietf:params:xml:ns:xmpp-streams";

#define XC_TAG_ROOM 4096 /* room a tag needs in its own direction (SHIM block, prefix) */

/* Extra results of the element handlers, besides SW_OK and SW_ERROR. */
#define XC_STOP 1      /* judge nothing more now (TLS starts, or the session ends) */
#define XC_RESTARTED 2 /* the parser restarted after this element; judged is advanced */
#define XC_WAIT 3      /* not judged: an insertion would not fit yet (see session_room) */

/* --- SM counters kept for resumption, keyed by SM id (process-wide: a resume may reach
 * another worker) --------------------------------------------------------------------------- */

struct sm_entry {
    uint64_t key; /* hash of the id; 0 = free */
    uint64_t expires_ms;
    struct xmpp_c2s_sm_track tr[2];
};

static struct {
    pthread_mutex_t lock;
    struct sm_entry *e;
    unsigned cap; /* power of 2, fixed at the first store (xmpp.sm_resume_max) */
} sm_table = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static uint64_t sm_key(const char *id, size_t len)
{
    uint64_t k = sw_hash64(id, len, 0x5d3a);
    return k != 0 ? k : 1;
}

/* Linear probing over a bounded window: an expired or colliding slot is overwritten, so the
 * table never grows and a lookup costs at most 8 probes. */
#define SM_PROBES 8

static void sm_store(const char *id, size_t len, const struct xmpp_c2s_sm_track *tr, uint64_t now,
                     const struct config_xmpp *cfg)
{
    uint64_t k = sm_key(id, len);
    pthread_mutex_lock(&sm_table.lock);
    if (sm_table.e == NULL) {
        sm_table.e = calloc(cfg->sm_resume_max, sizeof(*sm_table.e));
        sm_table.cap = sm_table.e != NULL ? cfg->sm_resume_max : 0;
    }
    if (sm_table.e != NULL) {
        struct sm_entry *victim = NULL;
        for (unsigned i = 0; i < SM_PROBES; i++) {
            struct sm_entry *e = &sm_table.e[(k + i) & (sm_table.cap - 1)];
            if (e->key == k || e->key == 0 || e->expires_ms <= now) {
                victim = e;
                break;
            }
            if (victim == NULL || e->expires_ms < victim->expires_ms)
                victim = e;
        }
        victim->key = k;
        victim->expires_ms = now + (uint64_t)(cfg->sm_resume_ttl * 1000.0);
        memcpy(victim->tr, tr, sizeof(victim->tr));
    }
    pthread_mutex_unlock(&sm_table.lock);
}

static bool sm_take(const char *id, size_t len, struct xmpp_c2s_sm_track *tr, uint64_t now)
{
    uint64_t k = sm_key(id, len);
    bool found = false;
    pthread_mutex_lock(&sm_table.lock);
    for (unsigned i = 0; sm_table.e != NULL && i < SM_PROBES; i++) {
        struct sm_entry *e = &sm_table.e[(k + i) & (sm_table.cap - 1)];
        if (e->key == k) {
            found = e->expires_ms > now;
            if (found)
                memcpy(tr, e->tr, sizeof(e->tr));
            e->key = 0;
            break;
        }
    }
    pthread_mutex_unlock(&sm_table.lock);
    return found;
}

/* --- per-session state ------------------------------------------------------------------- */

enum xc_up_phase {
    XC_UP_READY = 0, /* the upstream carries the client's stream */
    XC_UP_FEATURES,  /* upstream STARTTLS: waiting for the server's features */
    XC_UP_PROCEED,   /* ... for <proceed/> */
    XC_UP_TLS,       /* ... for the server's stream header over TLS */
};

enum xc_phase {
    XC_LOCAL = 0, /* tls = starttls before TLS: the proxy answers the stream itself */
    XC_OPEN,      /* streams relayed (after TLS, or at once for direct/none) */
};

struct xc_dir {
    struct xmpp_parser p;
    uint64_t judged; /* stream offset of the first pending byte */
};

struct xc {
    struct session *s;
    const struct config_listener *cfg;
    unsigned lidx;
    enum xc_phase phase;
    enum xc_up_phase up_phase;
    bool resume_c2s;  /* judge the client bytes held while the upstream negotiated */
    char *client_hdr; /* the client's stream header, held during upstream STARTTLS */
    size_t client_hdr_len;
    bool client_open;     /* the client's stream header was seen (since the last restart) */
    bool client_answered; /* the client has a stream header from our side (server's or ours) */
    bool server_open;     /* the server's stream is open (since the last restart) */
    bool server_closed;   /* </stream:stream> from the server */
    bool connecting;      /* upstream requested */
    bool failed;          /* a stream error was sent: judge nothing more */
    bool bound;
    bool roster_known;              /* a roster result arrived: strangers can be told */
    bool sm_c2s, sm_s2c;            /* XEP-0198 counting active in that direction */
    bool sm_resume;                 /* the server allowed resumption */
    struct xmpp_c2s_sm_track tr[2]; /* per direction (enum session_dir) */
    char sm_id[XC_SMID_MAX];
    size_t sm_id_len;
    char domain[XC_DOMAIN_MAX]; /* raw 'to' of the client's stream header */
    size_t domain_len;
    char jid[XC_JID_MAX]; /* raw bound full JID */
    size_t jid_len;
    struct judge judge;
    /* contacts (hashes of decoded bare JIDs), open addressing, bounded by roster_max */
    uint64_t *roster;
    unsigned roster_cap, roster_n;
    struct xc_dir d[2];
};

static _Thread_local char xc_out[XC_OUT_MAX];
static _Thread_local char xc_text[XC_TEXT_MAX];
static _Thread_local char xc_jid[2][XC_JID_MAX];

/* verdict and scan_failed lines of this protocol (one rate limit each, mod=xmpp) */
static struct judge_sites xc_judge_sites = JUDGE_SITES_INIT(LOG_MOD_XMPP);

/* --- roster ------------------------------------------------------------------------------ */

static uint64_t jid_hash(const char *raw, size_t len)
{
    char *b = xc_jid[1];
    size_t n = xmpp_decode(raw, len, b, XC_JID_MAX);
    if (n > XC_JID_MAX)
        n = XC_JID_MAX;
    n = xmpp_c2s_bare_len(b, n);
    uint64_t h = sw_hash64(b, n, 0x7e57);
    return h != 0 ? h : 1;
}

static void roster_cb(void *arg, const char *jid, size_t len, bool remove)
{
    struct xc *x = arg;
    if (x->roster_cap == 0)
        return;
    uint64_t h = jid_hash(jid, len);
    unsigned mask = x->roster_cap - 1, i = (unsigned)h & mask;
    for (unsigned probes = 0; probes < x->roster_cap; probes++, i = (i + 1) & mask) {
        if (x->roster[i] == h) {
            if (remove) /* keep the slot occupied (tombstone-free): mark as unknown contact */
                x->roster[i] = ~h == 0 ? 1 : ~h;
            return;
        }
        if (x->roster[i] == 0) {
            /* full at 3/4: further contacts are not remembered (they count as strangers) */
            if (!remove && x->roster_n < x->roster_cap / 4 * 3) {
                x->roster[i] = h;
                x->roster_n++;
            }
            return;
        }
    }
}

static bool roster_has(const struct xc *x, const char *raw, size_t len)
{
    if (x->roster_cap == 0)
        return false;
    uint64_t h = jid_hash(raw, len);
    unsigned mask = x->roster_cap - 1, i = (unsigned)h & mask;
    for (unsigned probes = 0; probes < x->roster_cap; probes++, i = (i + 1) & mask) {
        if (x->roster[i] == h)
            return true;
        if (x->roster[i] == 0)
            return false;
    }
    return false;
}

/* --- output helpers ---------------------------------------------------------------------- */

static int insert(struct xc *x, enum session_dir dir, const char *data, size_t len)
{
    return session_insert(x->s, dir, (const uint8_t *)data, len);
}

/* Our own stream header toward the client (answering its header, or before an error). */
static size_t own_header(const struct xc *x, char *out, size_t cap)
{
    char id[33];
    uint64_t r[2] = {session_id(x->s), session_now_ms(x->s)};
    (void)RAND_bytes((unsigned char *)r, sizeof(r));
    snprintf(id, sizeof(id), "%016llx%016llx", (unsigned long long)r[0], (unsigned long long)r[1]);
    int n;
    if (x->domain_len > 0)
        n = snprintf(out, cap,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%.*s' "
                     "version='1.0'>",
                     id, (int)x->domain_len, x->domain);
    else
        n = snprintf(out, cap,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' id='%s' version='1.0'>",
                     id);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Our stream header toward the server (upstream STARTTLS). 0 if it does not fit. */
static size_t upstream_header(const struct xc *x, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' to='%.*s' version='1.0'>",
                     (int)x->domain_len, x->domain);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Sends a stream error toward the client (with our header first if it has none) and a clean
 * close toward the server, then ends the session. */
static void stream_error(struct xc *x, const char *cond, const char *why, enum session_dir dir)
{
    char *o = xc_out;
    size_t n = 0;
    if (x->failed)
        return;
    x->failed = true;
    if (!x->client_answered)
        n = own_header(x, o, XC_OUT_MAX);
    n += (size_t)snprintf(o + n, XC_OUT_MAX - n,
                          "<stream:error><%s xmlns='%s'/></stream:error></stream:stream>", cond,
                          ns_streams);
    (void)insert(x, SESSION_S2C, o, n);
    if (x->connecting && x->client_open && !x->server_closed)
        (void)insert(x, SESSION_C2S, "</stream:stream>", 16);
    if (strcmp(cond, "remote-connection-failed") != 0) /* upstream failures count elsewhere */
        metrics_inc(session_metrics(x->s), METRIC_PROTOCOL_ERRORS, x->lidx, 0);
    LOG(LOG_MOD_XMPP, LOG_LEVEL_INFO, session_worker_id(x->s), session_id(x->s), "stream_error",
        "listener=%s condition=%s direction=%s reason=%s", x->cfg->name, cond,
        session_dir_name(dir), why);
    session_end(x->s);
}

/* --- messages ---------------------------------------------------------------------------- */

/* Forwards an element unchanged, counting it for XEP-0198 when it is a stanza. */
static int deliver(struct xc *x, enum session_dir dir, const struct xmpp_event *ev)
{
    if ((dir == SESSION_C2S ? x->sm_c2s : x->sm_s2c) && xmpp_c2s_sm_counts(ev->kind))
        xmpp_c2s_track_delivered(&x->tr[dir]);
    return session_forward(x->s, dir, ev->size);
}

/* True if the bare JIDs a and b have the same domain. */
static bool same_domain(const char *a, size_t al, const char *b, size_t bl)
{
    const char *da = memchr(a, '@', al), *db = memchr(b, '@', bl);
    size_t na = da != NULL ? al - (size_t)(da + 1 - a) : al;
    size_t nb = db != NULL ? bl - (size_t)(db + 1 - b) : bl;
    da = da != NULL ? da + 1 : a;
    db = db != NULL ? db + 1 : b;
    return na == nb && na > 0 && strncasecmp(da, db, na) == 0;
}

/* Judges one <message/>. Returns SW_OK or SW_ERROR. */
static int on_message(struct xc *x, enum session_dir dir, const struct xmpp_event *ev)
{
    struct session *s = x->s;
    const char *d = ev->data;
    bool counted = dir == SESSION_C2S ? x->sm_c2s : x->sm_s2c;
    bool is_error =
        ev->type_attr.set && xmpp_raw_eq(d + ev->type_attr.pos, ev->type_attr.len, "error");
    if (is_error || (!ev->body.set && ev->encrypted == 0))
        return deliver(x, dir, ev); /* chat states, receipts, errors */
    /* judge only when the verdict can be carried out: room for a tag here, and for a bounce
     * toward the client (nothing is classified twice: waiting happens before) */
    if (session_room(s, dir) < XC_TAG_ROOM ||
        (dir == SESSION_C2S && x->cfg->actions.bounce && session_room(s, SESSION_S2C) < XC_OUT_MAX))
        return XC_WAIT;

    struct matcher_msg m = {0};
    char *snd = xc_jid[0];
    size_t snd_len = 0, rcp_len = 0;
    const char *rcp = NULL;
    char rbuf[XC_JID_MAX];
    if (dir == SESSION_C2S) {
        snd_len = xmpp_decode(x->jid, x->jid_len, snd, XC_JID_MAX);
        snd_len = xmpp_c2s_bare_len(snd, snd_len > XC_JID_MAX ? XC_JID_MAX : snd_len);
        if (ev->to.set) {
            rcp_len = xmpp_decode(d + ev->to.pos, ev->to.len, rbuf, sizeof(rbuf));
            rcp_len = xmpp_c2s_bare_len(rbuf, rcp_len > sizeof(rbuf) ? sizeof(rbuf) : rcp_len);
            rcp = rbuf;
        }
    } else {
        if (ev->from.set) {
            snd_len = xmpp_decode(d + ev->from.pos, ev->from.len, snd, XC_JID_MAX);
            snd_len = xmpp_c2s_bare_len(snd, snd_len > XC_JID_MAX ? XC_JID_MAX : snd_len);
        }
        rcp_len = xmpp_decode(x->jid, x->jid_len, rbuf, sizeof(rbuf));
        rcp_len = xmpp_c2s_bare_len(rbuf, rcp_len > sizeof(rbuf) ? sizeof(rbuf) : rcp_len);
        rcp = rbuf;
        /* a local sender's message was judged on its own client leg already (unless clients
         * can reach the server without spimwall: xmpp.judge_local_inbound) */
        if (!x->cfg->xmpp.judge_local_inbound && snd_len > 0 && x->bound &&
            same_domain(snd, snd_len, rcp, rcp_len))
            return deliver(x, dir, ev);
        if (x->roster_known && ev->from.set && !roster_has(x, d + ev->from.pos, ev->from.len))
            m.flags |= MATCHER_F_STRANGER;
    }
    m.sender = snd;
    m.sender_len = snd_len;
    m.recipient = rcp;
    m.recipient_len = rcp_len;
    if (ev->encrypted != 0) {
        m.flags |= MATCHER_F_ENCRYPTED;
    } else {
        size_t n = xmpp_decode(d + ev->body.pos, ev->body.len, xc_text, XC_TEXT_MAX);
        m.body = xc_text;
        m.body_len = n > XC_TEXT_MAX ? XC_TEXT_MAX : n;
    }

    struct judge_result r;
    if (judge_message(&x->judge, dir, &m, NULL, &r) == VERDICT_PASS)
        return deliver(x, dir, ev); /* a pass, or a matcher error (failed open) */

    if (r.act == VERDICT_TAG) {
        size_t n = xmpp_c2s_build_shim(r.v.score, r.reasons, xc_out, XC_OUT_MAX);
        if (n > XC_OUT_MAX || !ev->content.set ||
            (dir == SESSION_S2C && ev->has_shim && same_domain(snd, snd_len, rcp, rcp_len)))
            return deliver(x, dir, ev); /* a local sender's message tagged on its way in */
        if (counted)
            xmpp_c2s_track_delivered(&x->tr[dir]);
        if (session_forward(s, dir, ev->content.pos) != SW_OK || insert(x, dir, xc_out, n) != SW_OK)
            return SW_ERROR;
        size_t done = ev->content.pos;
        const char *pfx = x->cfg->actions.tag_prefix;
        if (pfx != NULL && pfx[0] != '\0' && ev->body.set && ev->body.pos >= done) {
            size_t pl = xmpp_escape(pfx, strlen(pfx), xc_out, XC_OUT_MAX);
            if (session_forward(s, dir, ev->body.pos - done) != SW_OK ||
                insert(x, dir, xc_out, pl) != SW_OK)
                return SW_ERROR;
            done = ev->body.pos;
        }
        return session_forward(s, dir, ev->size - done);
    }

    /* drop; the bounce is built first: dropping moves the event's bytes */
    size_t bn = 0;
    if (dir == SESSION_C2S && x->cfg->actions.bounce) {
        const char *text = x->cfg->actions.bounce_text;
        bn = xmpp_c2s_build_bounce(ev->to.set ? d + ev->to.pos : NULL, ev->to.len, x->jid,
                                   x->jid_len, ev->id.set ? d + ev->id.pos : NULL, ev->id.len,
                                   text != NULL ? text : XC_BOUNCE_TEXT, xc_out, XC_OUT_MAX);
    }
    if (session_drop(s, dir, ev->size) != SW_OK)
        return SW_ERROR;
    if (counted)
        xmpp_c2s_track_dropped(&x->tr[dir]);
    /* the bounce reaches the client as a stanza the server never sent */
    if (bn > 0 && bn <= XC_OUT_MAX && insert(x, SESSION_S2C, xc_out, bn) == SW_OK && x->sm_s2c)
        xmpp_c2s_track_inserted(&x->tr[SESSION_S2C]);
    return SW_OK;
}

/* --- other elements ---------------------------------------------------------------------- */

static int forward_or_replace(struct xc *x, enum session_dir dir, const struct xmpp_event *ev,
                              size_t n)
{
    if (n == 0)
        return session_forward(x->s, dir, ev->size);
    if (n > XC_OUT_MAX)
        return session_forward(x->s, dir, ev->size); /* cannot happen for acks; be safe */
    if (n > ev->size && session_room(x->s, dir) < n - ev->size)
        return XC_WAIT;
    if (session_drop(x->s, dir, ev->size) != SW_OK)
        return SW_ERROR;
    return insert(x, dir, xc_out, n);
}

static void copy_raw(char *dst, size_t cap, size_t *dlen, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    *dlen = len;
}

/* An XEP-0198 ack (or resume) seen in direction dir: corrects its h for the stanzas of the
 * other direction the proxy removed or added before the receiver's h-th one. */
static int sm_ack(struct xc *x, enum session_dir dir, const struct xmpp_event *ev, bool resume)
{
    bool from_server = dir == SESSION_S2C;
    struct xmpp_c2s_sm_track *t = &x->tr[from_server ? SESSION_C2S : SESSION_S2C];
    uint32_t h;
    if (!ev->h.set || !xmpp_c2s_sm_parse_h(ev->data + ev->h.pos, ev->h.len, &h))
        return session_forward(x->s, dir, ev->size);
    struct xmpp_c2s_sm sm = {0};
    struct xmpp_c2s_sm_dir corr = xmpp_c2s_track_ack(t, h);
    if (from_server)
        sm.c2s = corr;
    else
        sm.s2c = corr;
    if (resume)
        xmpp_c2s_track_resume(t, h);
    return forward_or_replace(x, dir, ev,
                              xmpp_c2s_sm_fix_event(&sm, from_server, ev, xc_out, XC_OUT_MAX));
}

/* Client to server. */
static int on_c2s(struct xc *x, const struct xmpp_event *ev)
{
    struct session *s = x->s;
    const char *d = ev->data;
    switch (ev->type) {
    case XMPP_EV_STREAM_OPEN:
        x->client_open = true;
        if (ev->to.set)
            copy_raw(x->domain, sizeof(x->domain), &x->domain_len, d + ev->to.pos, ev->to.len);
        if (x->phase == XC_LOCAL) {
            /* before TLS the proxy is the server: RFC 6120 5.3.1 */
            size_t n = own_header(x, xc_out, XC_OUT_MAX);
            static const char feat[] = "<stream:features><starttls "
                                       "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                                       "</starttls></stream:features>";
            memcpy(xc_out + n, feat, sizeof(feat) - 1);
            x->client_answered = true;
            if (session_drop(s, SESSION_C2S, ev->size) != SW_OK)
                return SW_ERROR;
            return insert(x, SESSION_S2C, xc_out, n + sizeof(feat) - 1);
        }
        if (!x->connecting && x->cfg->upstream.starttls) {
            /* the server sees our stream first, and the client's only over TLS */
            x->client_hdr = malloc(ev->size);
            if (x->client_hdr == NULL)
                return SW_ERROR;
            memcpy(x->client_hdr, d, ev->size);
            x->client_hdr_len = ev->size;
            size_t n = upstream_header(x, xc_out, XC_OUT_MAX);
            if (n == 0 || session_drop(s, SESSION_C2S, ev->size) != SW_OK ||
                insert(x, SESSION_C2S, xc_out, n) != SW_OK)
                return SW_ERROR;
            x->connecting = true;
            x->up_phase = XC_UP_FEATURES;
            x->d[SESSION_C2S].judged += ev->size;
            return session_connect_upstream(s, NULL, 0) == SW_OK ? XC_STOP : SW_ERROR;
        }
        if (session_forward(s, SESSION_C2S, ev->size) != SW_OK)
            return SW_ERROR;
        if (!x->connecting) {
            x->connecting = true;
            return session_connect_upstream(s, NULL, 0);
        }
        return SW_OK;
    case XMPP_EV_STREAM_CLOSE:
        if (x->phase == XC_LOCAL) {
            (void)session_drop(s, SESSION_C2S, ev->size);
            (void)insert(x, SESSION_S2C, "</stream:stream>", 16);
            session_end(s);
            return SW_OK;
        }
        return session_forward(s, SESSION_C2S, ev->size);
    case XMPP_EV_WHITESPACE:
        if (x->phase == XC_LOCAL)
            return session_drop(s, SESSION_C2S, ev->size);
        return session_forward(s, SESSION_C2S, ev->size);
    case XMPP_EV_ELEMENT:
        break;
    }
    if (x->phase == XC_LOCAL) {
        if (ev->kind == XMPP_EL_STARTTLS) {
            static const char proceed[] = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
            if (session_drop(s, SESSION_C2S, ev->size) != SW_OK ||
                insert(x, SESSION_S2C, proceed, sizeof(proceed) - 1) != SW_OK ||
                session_start_client_tls(s) != SW_OK)
                return SW_ERROR;
            x->phase = XC_OPEN;
            x->client_open = x->client_answered = false;
            x->d[SESSION_C2S].judged += ev->size;
            xmpp_parser_restart(&x->d[SESSION_C2S].p);
            return XC_STOP; /* the rest is plaintext after <starttls/>: discarded */
        }
        stream_error(x, "policy-violation", "stanza before required STARTTLS", SESSION_C2S);
        return XC_STOP;
    }
    switch (ev->kind) {
    case XMPP_EL_MESSAGE:
        return on_message(x, SESSION_C2S, ev);
    case XMPP_EL_STARTTLS: {
        /* the server's <starttls/> was removed from the features: nothing to upgrade */
        static const char fail[] = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                   "</stream:stream>";
        (void)session_drop(s, SESSION_C2S, ev->size);
        (void)insert(x, SESSION_S2C, fail, sizeof(fail) - 1);
        if (x->connecting)
            (void)insert(x, SESSION_C2S, "</stream:stream>", 16);
        x->failed = true;
        session_end(s);
        return XC_STOP;
    }
    case XMPP_EL_SM_ENABLE:
        x->sm_c2s = true; /* the server counts what it receives from here on */
        return session_forward(s, SESSION_C2S, ev->size);
    case XMPP_EL_SM_RESUME:
        if (ev->previd.set) {
            (void)sm_take(d + ev->previd.pos, ev->previd.len, x->tr, session_now_ms(s));
            copy_raw(x->sm_id, sizeof(x->sm_id), &x->sm_id_len, d + ev->previd.pos, ev->previd.len);
        }
        x->sm_c2s = true;
        return sm_ack(x, SESSION_C2S, ev, true);
    case XMPP_EL_SM_A:
        return sm_ack(x, SESSION_C2S, ev, false);
    default:
        return deliver(x, SESSION_C2S, ev);
    }
}

/* Upstream STARTTLS: the proxy negotiates TLS with the server before the client's stream
 * reaches it; nothing of this exchange is forwarded. */
static int on_s2c_negotiation(struct xc *x, const struct xmpp_event *ev)
{
    struct session *s = x->s;
    if (session_drop(s, SESSION_S2C, ev->size) != SW_OK)
        return SW_ERROR;
    if (ev->type != XMPP_EV_ELEMENT)
        return SW_OK; /* the server's header, whitespace */
    if (x->up_phase == XC_UP_FEATURES && ev->kind == XMPP_EL_FEATURES) {
        size_t pos = 0;
        struct xmpp_c2s_child c;
        bool offered = false;
        while (ev->content.set &&
               xmpp_c2s_next_child(ev->data + ev->content.pos, ev->content.len, &pos, &c))
            offered |= c.local_len == 8 && memcmp(c.local, "starttls", 8) == 0;
        if (!offered) {
            stream_error(x, "remote-connection-failed", "upstream offers no STARTTLS", SESSION_S2C);
            return XC_STOP;
        }
        static const char st[] = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        x->up_phase = XC_UP_PROCEED;
        return insert(x, SESSION_C2S, st, sizeof(st) - 1);
    }
    if (x->up_phase == XC_UP_PROCEED && ev->kind == XMPP_EL_PROCEED) {
        if (session_start_upstream_tls(s, (const uint8_t *)x->client_hdr, x->client_hdr_len) !=
            SW_OK)
            return SW_ERROR;
        free(x->client_hdr);
        x->client_hdr = NULL;
        x->up_phase = XC_UP_TLS;
        x->d[SESSION_S2C].judged += ev->size;
        xmpp_parser_restart(&x->d[SESSION_S2C].p);
        return XC_STOP; /* anything after <proceed/> is discarded */
    }
    stream_error(x, "remote-connection-failed", "upstream STARTTLS refused", SESSION_S2C);
    return XC_STOP;
}

/* Server to client. */
static int on_s2c(struct xc *x, const struct xmpp_event *ev)
{
    struct session *s = x->s;
    const char *d = ev->data;
    if (x->up_phase == XC_UP_FEATURES || x->up_phase == XC_UP_PROCEED)
        return on_s2c_negotiation(x, ev);
    switch (ev->type) {
    case XMPP_EV_STREAM_OPEN:
        x->server_open = true;
        x->client_answered = true;
        if (x->up_phase == XC_UP_TLS) {
            x->up_phase = XC_UP_READY;
            x->resume_c2s = true; /* client bytes held during the negotiation */
        }
        return session_forward(s, SESSION_S2C, ev->size);
    case XMPP_EV_STREAM_CLOSE:
        x->server_closed = true;
        return session_forward(s, SESSION_S2C, ev->size);
    case XMPP_EV_WHITESPACE:
        return session_forward(s, SESSION_S2C, ev->size);
    case XMPP_EV_ELEMENT:
        break;
    }
    switch (ev->kind) {
    case XMPP_EL_MESSAGE:
        return on_message(x, SESSION_S2C, ev);
    case XMPP_EL_FEATURES: {
        size_t n = xmpp_c2s_rewrite_features(
            d, ev->size, ev->content.pos, ev->content.len, true, x->cfg->upstream.tls,
            (uint32_t)x->cfg->xmpp.stanza_max, (uint32_t)x->cfg->timeouts.idle, xc_out, XC_OUT_MAX);
        if (ev->empty || !ev->content.set)
            n = 0;
        return forward_or_replace(x, SESSION_S2C, ev, n > XC_OUT_MAX ? 0 : n);
    }
    case XMPP_EL_SASL_SUCCESS:
        /* both sides restart their streams after this element (RFC 6120 6.4.6) */
        if (session_forward(s, SESSION_S2C, ev->size) != SW_OK)
            return SW_ERROR;
        x->d[SESSION_S2C].judged += ev->size;
        xmpp_parser_restart(&x->d[SESSION_S2C].p);
        xmpp_parser_restart(&x->d[SESSION_C2S].p);
        x->server_open = false;
        x->client_open = false;
        return XC_RESTARTED;
    case XMPP_EL_IQ: {
        bool result =
            ev->type_attr.set && xmpp_raw_eq(d + ev->type_attr.pos, ev->type_attr.len, "result");
        bool set =
            ev->type_attr.set && xmpp_raw_eq(d + ev->type_attr.pos, ev->type_attr.len, "set");
        if (ev->content.set && ev->content.len > 0) {
            const char *j;
            size_t jl;
            if (result && !x->bound &&
                xmpp_c2s_bind_jid(d, ev->size, ev->content.pos, ev->content.len, &j, &jl)) {
                copy_raw(x->jid, sizeof(x->jid), &x->jid_len, j, jl);
                x->bound = true;
            } else if ((result || set) && x->roster != NULL) {
                /* a push (set) may only come from the account itself: no 'from' or the
                 * bare JID; the server enforces it, the proxy trusts the server */
                if (xmpp_c2s_roster_items(d, ev->size, ev->content.pos, ev->content.len, roster_cb,
                                          x) >= 0 &&
                    result)
                    x->roster_known = true;
            }
        }
        return deliver(x, SESSION_S2C, ev);
    }
    case XMPP_EL_SM_ENABLED: {
        const char *v;
        size_t vl;
        x->sm_s2c = true;
        x->sm_resume = false;
        if (ev->id.set)
            copy_raw(x->sm_id, sizeof(x->sm_id), &x->sm_id_len, d + ev->id.pos, ev->id.len);
        if (xmpp_c2s_attr(d, ev->size, "resume", &v, &vl))
            x->sm_resume = xmpp_raw_eq(v, vl, "true") || xmpp_raw_eq(v, vl, "1");
        return session_forward(s, SESSION_S2C, ev->size);
    }
    case XMPP_EL_SM_RESUMED:
        x->sm_s2c = x->sm_c2s = true;
        x->sm_resume = true;
        return sm_ack(x, SESSION_S2C, ev, true);
    case XMPP_EL_SM_FAILED: {
        int rc = sm_ack(x, SESSION_S2C, ev, false);
        /* a failed enable/resume: the next <enable/> starts fresh counters */
        memset(x->tr, 0, sizeof(x->tr));
        x->sm_c2s = x->sm_s2c = x->sm_resume = false;
        x->sm_id_len = 0;
        return rc;
    }
    case XMPP_EL_SM_A:
        return sm_ack(x, SESSION_S2C, ev, false);
    default:
        return deliver(x, SESSION_S2C, ev);
    }
}

/* --- proto_ops --------------------------------------------------------------------------- */

static int xc_open(struct session *s, void **state)
{
    const struct config_listener *cfg = session_listener(s);
    struct xc *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return SW_ERROR;
    x->s = s;
    x->cfg = cfg;
    x->lidx = session_listener_index(s);
    x->phase = cfg->tls == CONFIG_TLS_STARTTLS ? XC_LOCAL : XC_OPEN;
    struct xmpp_limits lim;
    xmpp_limits_default(&lim);
    lim.stanza_max = cfg->xmpp.stanza_max;
    lim.depth_max = cfg->xmpp.depth_max;
    if (lim.value_max > lim.stanza_max)
        lim.value_max = lim.stanza_max;
    if (xmpp_parser_init(&x->d[0].p, &lim) != SW_OK ||
        xmpp_parser_init(&x->d[1].p, &lim) != SW_OK) {
        free(x);
        return SW_ERROR;
    }
    if (cfg->xmpp.roster_max > 0) {
        unsigned cap = 16;
        while (cap < cfg->xmpp.roster_max / 3 * 4 + 1)
            cap *= 2;
        x->roster_cap = cap; /* allocated on the first roster result */
    }
    judge_init(&x->judge, s, &xc_judge_sites);
    session_defer_upstream(s);
    *state = x;
    return SW_OK;
}

static int xc_on_data(struct session *s, void *state, enum session_dir dir, const uint8_t *data,
                      size_t len)
{
    struct xc *x = state;
    struct xc_dir *d = &x->d[dir];
    if (x->failed)
        return session_drop(s, dir, len);
    if (dir == SESSION_C2S && x->up_phase != XC_UP_READY)
        return SW_OK; /* held until the upstream's TLS is up (bounded by the buffer) */
    if (dir == SESSION_C2S && x->roster == NULL && x->roster_cap > 0 && x->bound) {
        x->roster = calloc(x->roster_cap, sizeof(*x->roster));
        if (x->roster == NULL)
            x->roster_cap = 0;
    }
    for (;;) {
        struct xmpp_event ev;
        int rc = xmpp_parser_feed(&d->p, (const char *)data, len, d->judged, &ev);
        if (rc == SW_AGAIN)
            return SW_OK;
        if (rc == SW_ERROR) {
            if (dir == SESSION_C2S)
                stream_error(x, xmpp_error_condition(d->p.err), d->p.err_msg, dir);
            else
                stream_error(x, "internal-server-error", "upstream sent bad XML", dir);
            return SW_OK;
        }
        size_t size = ev.size;
        if (x->roster == NULL && x->roster_cap > 0 && x->bound) {
            x->roster = calloc(x->roster_cap, sizeof(*x->roster));
            if (x->roster == NULL)
                x->roster_cap = 0;
        }
        rc = dir == SESSION_C2S ? on_c2s(x, &ev) : on_s2c(x, &ev);
        if (rc == XC_STOP)
            return SW_OK;
        if (rc == XC_WAIT)
            return SW_AGAIN; /* the session calls again once bytes were written */
        if (rc != SW_OK && rc != XC_RESTARTED)
            return SW_ERROR;
        if (rc == SW_OK)
            d->judged += size;
        if (x->failed)
            return SW_OK;
        if (x->resume_c2s) {
            /* the upstream's TLS is up: judge what the client sent meanwhile */
            size_t cl;
            const uint8_t *cp = session_pending(s, SESSION_C2S, &cl);
            x->resume_c2s = false;
            /* SW_AGAIN leaves them pending: judged with the client's next bytes */
            if (cl > 0 && xc_on_data(s, x, SESSION_C2S, cp, cl) == SW_ERROR)
                return SW_ERROR;
            if (x->failed)
                return SW_OK;
        }
        /* judging moves the pending bytes (drops, inserts, growth): fetch them anew */
        data = session_pending(s, dir, &len);
    }
}

static void xc_on_eof(struct session *s, void *state, enum session_dir dir)
{
    struct xc *x = state;
    if (dir != SESSION_S2C || x->failed || x->server_closed)
        return;
    /* the server went away without closing its stream */
    stream_error(x, "remote-connection-failed", "upstream closed", dir);
    (void)s;
}

static int xc_upstream_failed(struct session *s, void *state)
{
    struct xc *x = state;
    x->connecting = false;
    stream_error(x, "remote-connection-failed", "upstream unreachable", SESSION_S2C);
    (void)s;
    return SW_OK;
}

static void xc_close(void *state)
{
    struct xc *x = state;
    if (x == NULL)
        return;
    const struct xmpp_c2s_sm_track *t = x->tr;
    if (x->sm_resume && x->sm_id_len > 0 &&
        (t[0].n | t[1].n | t[0].base.dropped | t[0].base.inserted | t[1].base.dropped |
         t[1].base.inserted) != 0)
        sm_store(x->sm_id, x->sm_id_len, x->tr, session_now_ms(x->s), &x->cfg->xmpp);
    free(x->roster);
    free(x->client_hdr);
    free(x);
}

const struct proto_ops xmpp_c2s_proto = {
    .name = "xmpp-c2s",
    .open = xc_open,
    .on_data = xc_on_data,
    .close = xc_close,
    .on_eof = xc_on_eof,
    .upstream_failed = xc_upstream_failed,
};
