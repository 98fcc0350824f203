/* bench-xmpp: XMPP client-to-server filtering end to end (issue 4, "Benchmark"): messages/s,
 * added latency and CPU per message of spimwall's xmpp-c2s listener, against the direct path,
 * with parse-only and scan-only figures for the same bytes and bodies from the same run.
 *
 * One libev program, three sub-commands:
 *
 *   bench-xmpp sink --listen 127.0.0.1:0 --port-file F --stats F [--domain localhost]
 *       A fast XMPP server that speaks just enough c2s: answers the stream header with
 *       features (SASL PLAIN; after <success/>, resource binding), accepts any credentials,
 *       binds user@domain/resource, answers every other <iq/> with an empty result (so a
 *       client's <iq/> after its messages is an end-to-end barrier: streams are ordered), and
 *       ignores presence. Every <message/> is counted by the class letter and phase in its id
 *       (see "ids" below), with a SHIM-header count, and its delivery latency (now minus the
 *       send time in the id, CLOCK_MONOTONIC, same machine) goes into a histogram, all in the
 *       shared file --stats that the load generator maps. Parsing uses protocols/xmpp.
 *
 *   bench-xmpp run --server sink|prosody --direct PORT [--proxy PORT --sw-pid PID] ...
 *       The load generator. Prepares the traffic (below), measures parse-only and scan-only
 *       rates over it, then for each round and each path (direct, then spimwall) logs in
 *       --sessions sessions (stream header, SASL PLAIN, stream restart, resource bind,
 *       <presence/>) and runs two phases:
 *         throughput  every session writes its share of --messages as fast as it can;
 *                     messages/s = messages delivered / (last delivery - start); CPU seconds of
 *                     spimwall (and of --server-pid) per message sent, from /proc/PID/stat
 *         latency     --lat-messages at --lat-rate msg/s in all, paced by a 1 ms timer; p50/p99
 *                     of the delivery latency, and the same minus the direct path's ("added")
 *       With --server sink, messages go to the sink (a ping <iq/> per session ends a phase);
 *       with --server prosody, session i writes to session i+1 through Prosody, and delivery
 *       is measured where the other session receives it (a phase ends when every expected
 *       message arrived, or after 3 s without progress).
 *       Then JSON lines: one per path and phase, one summary per server (spimwall against
 *       direct, the efficiency, the targets; with Prosody the CPU ratio spimwall/Prosody).
 *
 *   bench-xmpp ports N
 *       Prints N distinct free TCP ports on 127.0.0.1.
 *
 * Traffic. A corpus of chat and spim (bench/lib/corpus.c) is classified with the shipped rules
 * (matcher_classify, --conf DIR/rules and DIR/lists, no reputation: the verdict of a message
 * then depends on its text only, so the expected result of every message is known). Ham is
 * corpus chat the rules pass or tag; spim is corpus spim the rules drop ("lol! see it! u'll
 * like it. http://bit.ly/...", ...). Each session gets a ring of --ring messages to its
 * recipient, spim with probability --spim-share, serialised once; sending cycles through it.
 *
 * Ids: id='CPPTTTTTTTTTTTTTTTT': C the expected verdict (p pass, t tag, d drop), PP the phase
 * (hex), T the send time (hex ns, CLOCK_MONOTONIC), stamped into the ring just before the
 * write. The receiver (sink or session) reads class, phase and time back.
 *
 * Checks (a case is "ok" only if all hold): every pass and tag message arrived, no drop
 * message arrived through spimwall (direct: all arrived), every tag message arrived with
 * SHIM headers (spimwall) and each dropped one came back to its sender as a bounce. So a
 * proxy that loses ham fails the run.
 *
 * Parse-only: protocols/xmpp over the bytes the sessions send (rings cycled up to --messages),
 * in 16 KiB pieces, with xmpp_decode of each body, as the proxy does. Scan-only:
 * matcher_classify of the same decoded bodies with the sender, recipient and address the proxy
 * passes. Efficiency = end-to-end per-core rate (1 / spimwall CPU s per message) /
 * (1 / (parse time per message + scan time per message)).
 *
 * JSON goes to stdout, one object per line; text for humans to stderr. Exit status 0 when every
 * case was ok, 1 otherwise or on a setup error, 2 on a usage error. scripts/bench-xmpp.sh
 * starts the sink, spimwall and Prosody and runs all of this.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "bench/lib/benchutil.h"
#include "bench/lib/corpus.h"
#include "bench/lib/netbench.h"
#include "matcher/hsdb.h"
#include "matcher/matcher.h"
#include "protocols/xmpp/xmpp_escape.h"
#include "protocols/xmpp/xmpp_parser.h"
#include "proxy/ruleload.h"

#define BX_PHASES 32
#define BX_MAGIC 0x62782d73696e6b31ull /* "bx-sink1" */
#define BX_ID_LEN 19                   /* C PP TTTTTTTTTTTTTTTT */
#define BX_CHUNK (64 * 1024)           /* bytes of whole messages per write */
#define BX_IN_MAX (1u << 20)
#define BX_MAX_SESSIONS 4096
#define BX_MAX_ROUNDS 7

enum { CLS_PASS, CLS_TAG, CLS_DROP, CLS_N };
static const char cls_letter[CLS_N] = {'p', 't', 'd'};

static volatile sig_atomic_t bx_stop;

/* --- per-phase delivery statistics (the sink's shared file, or the generator's own) --------- */

struct bx_phase {
    uint64_t msgs[CLS_N]; /* messages received, by the class in their id */
    uint64_t shim;        /* ... of which with SHIM headers (tagged by the proxy) */
    uint64_t first_ns, last_ns;
    struct bench_hist lat; /* delivery latency, ns */
};

struct bx_stats {
    uint64_t magic;
    uint64_t logins, foreign; /* bound sessions; messages without our id */
    struct bx_phase ph[BX_PHASES];
};

/* Records one received message whose raw id is id[0..len) into st. */
static void stats_record(struct bx_stats *st, const char *id, size_t len, bool shim,
                         uint64_t now)
{
    int cls = -1;
    for (int c = 0; c < CLS_N && len == BX_ID_LEN; c++) {
        if (id[0] == cls_letter[c])
            cls = c;
    }
    int p1 = len == BX_ID_LEN ? bench_hexval(id[1]) : -1, p2 = len == BX_ID_LEN ? bench_hexval(id[2]) : -1;
    uint64_t ts = 0;
    for (size_t i = 3; i < len && cls >= 0; i++) {
        int v = bench_hexval(id[i]);
        if (v < 0) {
            cls = -1;
            break;
        }
        ts = ts << 4 | (uint64_t)v;
    }
    if (cls < 0 || p1 < 0 || p2 < 0 || p1 * 16 + p2 >= BX_PHASES) {
        st->foreign++;
        return;
    }
    struct bx_phase *ph = &st->ph[p1 * 16 + p2];
    ph->msgs[cls]++;
    if (shim)
        ph->shim++;
    if (ph->first_ns == 0)
        ph->first_ns = now;
    ph->last_ns = now;
    uint64_t lat = now > ts ? now - ts : 0;
    bench_hist_record(&ph->lat, lat);
}

/* --- small helpers ---------------------------------------------------------------------------- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64chars[v >> 18 & 63];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes base64 (stops at '=' or any other character); returns the decoded length. */
static size_t b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = in[i] != '\0' ? strchr(b64chars, in[i]) : NULL;
        if (p == NULL)
            break;
        acc = acc << 6 | (uint32_t)(p - b64chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o < cap)
                out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

/* Looks for needle in the raw bytes of an event. */
static bool ev_contains(const struct xmpp_event *ev, const char *needle)
{
    return memmem(ev->data, ev->size, needle, strlen(needle)) != NULL;
}

static bool span_eq(const struct xmpp_event *ev, const struct xmpp_span *s, const char *lit)
{
    return s->set && xmpp_raw_eq(ev->data + s->pos, s->len, lit);
}

/* ============================================================================================ *
 * An XMPP stream end: socket, parser over the bytes read, a queue of bytes to write.
 * ============================================================================================ */

struct xstream {
    int fd;
    ev_io io;
    struct xmpp_parser p;
    char *in; /* stream bytes [in_base, in_base + in_len) */
    size_t in_len, in_cap;
    uint64_t in_base;
    char *out; /* control bytes to write: out[out_off..out_len) */
    size_t out_off, out_len, out_cap;
    bool dead;
};

static void xs_init(struct xstream *x, int fd)
{
    memset(x, 0, sizeof *x);
    x->fd = fd;
    xmpp_parser_init(&x->p, NULL);
    x->in_cap = 65536;
    x->in = bench_xmalloc(x->in_cap);
}

static void xs_deinit(struct xstream *x)
{
    if (x->fd != -1)
        close(x->fd);
    x->fd = -1;
    free(x->in);
    free(x->out);
    x->in = x->out = NULL;
}

static void xs_put(struct xstream *x, const char *s, size_t n)
{
    if (x->out_off == x->out_len)
        x->out_off = x->out_len = 0;
    if (x->out_len + n > x->out_cap) {
        size_t cap = (x->out_len + n) * 2 + 1024;
        char *nb = realloc(x->out, cap);
        if (nb == NULL) {
            fprintf(stderr, "bench-xmpp: out of memory\n");
            exit(1);
        }
        x->out = nb;
        x->out_cap = cap;
    }
    memcpy(x->out + x->out_len, s, n);
    x->out_len += n;
}

static void xs_puts(struct xstream *x, const char *s)
{
    xs_put(x, s, strlen(s));
}

/* Writes queued control bytes. Returns 0 when all are written, 1 when the socket is full,
 * -1 on error. */
static int xs_flush(struct xstream *x)
{
    while (x->out_off < x->out_len) {
        ssize_t n = send(x->fd, x->out + x->out_off, x->out_len - x->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            x->out_off += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return 1;
        return -1;
    }
    return 0;
}

/* Reads what the socket has and hands every complete event to cb (ev borrows x->in until cb
 * returns; cb may restart x->p and queue output). Returns 0, or -1 on EOF, a socket error, a
 * parse error or when cb returned -1. */
static int xs_read(struct xstream *x,
                   int (*cb)(void *ud, struct xstream *x, const struct xmpp_event *ev), void *ud)
{
    for (int burst = 0; burst < 16; burst++) {
        if (x->in_cap - x->in_len < 16384) {
            if (x->in_cap >= BX_IN_MAX)
                return -1;
            x->in_cap *= 2;
            char *nb = realloc(x->in, x->in_cap);
            if (nb == NULL)
                return -1;
            x->in = nb;
        }
        ssize_t n = recv(x->fd, x->in + x->in_len, x->in_cap - x->in_len, 0);
        if (n == 0)
            return -1;
        if (n == -1)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        x->in_len += (size_t)n;
        struct xmpp_event ev;
        int rc;
        for (;;) {
            uint64_t keep = xmpp_parser_keep(&x->p);
            size_t skip = (size_t)(keep - x->in_base);
            rc = xmpp_parser_feed(&x->p, x->in + skip, x->in_len - skip, keep, &ev);
            if (rc != SW_OK)
                break;
            if (cb(ud, x, &ev) == -1)
                return -1;
        }
        if (rc == SW_ERROR) {
            fprintf(stderr, "bench-xmpp: stream error %s at %llu: %s\n",
                    xmpp_error_condition(x->p.err), (unsigned long long)x->p.err_pos,
                    x->p.err_msg);
            return -1;
        }
        uint64_t keep = xmpp_parser_keep(&x->p);
        size_t drop = (size_t)(keep - x->in_base);
        memmove(x->in, x->in + drop, x->in_len - drop);
        x->in_len -= drop;
        x->in_base = keep;
        if ((size_t)n < 16384)
            break;
    }
    return 0;
}

/* ============================================================================================ *
 * sink
 * ============================================================================================ */

struct sink {
    struct ev_loop *loop;
    ev_io accept_io;
    ev_signal sig_term, sig_int;
    struct bx_stats *st;
    const char *domain;
    unsigned long conns;
};

struct sink_conn {
    struct sink *s;
    struct xstream x;
    bool authed;
    char user[64];
    unsigned long id;
};

static void sink_conn_free(struct sink_conn *c)
{
    ev_io_stop(c->s->loop, &c->x.io);
    xs_deinit(&c->x);
    free(c);
}

static int sink_event(void *ud, struct xstream *x, const struct xmpp_event *ev)
{
    struct sink_conn *c = ud;
    char tmp[512];
    switch (ev->type) {
    case XMPP_EV_STREAM_OPEN:
        snprintf(tmp, sizeof tmp,
                 "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' id='bx%lu-%d' from='%s' "
                 "version='1.0' xml:lang='en'><stream:features>",
                 c->id, c->authed, c->s->domain);
        xs_puts(x, tmp);
        xs_puts(x, c->authed ? "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                             : "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                               "<mechanism>PLAIN</mechanism></mechanisms>");
        xs_puts(x, "</stream:features>");
        return 0;
    case XMPP_EV_STREAM_CLOSE:
        xs_puts(x, "</stream:stream>");
        x->dead = true;
        return 0;
    case XMPP_EV_WHITESPACE:
        return 0;
    case XMPP_EV_ELEMENT:
        break;
    }
    switch (ev->kind) {
    case XMPP_EL_MESSAGE: {
        uint64_t t = bench_now_ns();
        if (ev->id.set)
            stats_record(c->s->st, ev->data + ev->id.pos, ev->id.len, ev->has_shim, t);
        else
            c->s->st->foreign++;
        return 0;
    }
    case XMPP_EL_SASL_AUTH: {
        /* PLAIN: authzid NUL authcid NUL password; any credentials are fine */
        unsigned char dec[256];
        size_t n = ev->content.set ? b64_decode(ev->data + ev->content.pos, ev->content.len,
                                                dec, sizeof dec)
                                   : 0;
        const unsigned char *a = memchr(dec, 0, n);
        size_t ulen = 0;
        if (a != NULL) {
            const unsigned char *e = memchr(a + 1, 0, n - (size_t)(a + 1 - dec));
            ulen = (size_t)((e != NULL ? e : dec + n) - (a + 1));
            if (ulen >= sizeof c->user)
                ulen = sizeof c->user - 1;
            memcpy(c->user, a + 1, ulen);
        }
        if (ulen == 0)
            snprintf(c->user, sizeof c->user, "user%lu", c->id);
        else
            c->user[ulen] = '\0';
        xs_puts(x, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        c->authed = true;
        xmpp_parser_restart(&x->p);
        return 0;
    }
    case XMPP_EL_IQ: {
        char id[96] = "";
        if (ev->id.set) {
            size_t n = xmpp_decode(ev->data + ev->id.pos, ev->id.len, id, sizeof id - 1);
            id[n < sizeof id - 1 ? n : sizeof id - 1] = '\0';
            /* echoed as is: our clients' ids need no escaping; others get a fixed one */
            if (strpbrk(id, "<>&'\"") != NULL)
                strcpy(id, "x");
        }
        if (span_eq(ev, &ev->type_attr, "result") || span_eq(ev, &ev->type_attr, "error"))
            return 0;
        if (ev_contains(ev, "urn:ietf:params:xml:ns:xmpp-bind")) {
            snprintf(tmp, sizeof tmp,
                     "<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     "<jid>%s@%s/bx</jid></bind></iq>",
                     id, c->user, c->s->domain);
            c->s->st->logins++;
        } else {
            snprintf(tmp, sizeof tmp, "<iq type='result' id='%s'/>", id);
        }
        xs_puts(x, tmp);
        return 0;
    }
    default:
        return 0;
    }
}

static void sink_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sink_conn *c = w->data;
    if ((revents & EV_READ) && xs_read(&c->x, sink_event, c) == -1)
        c->x.dead = true;
    int f = xs_flush(&c->x);
    if (f == -1 || (c->x.dead && f == 0)) {
        sink_conn_free(c);
        return;
    }
    bench_io_want(loop, &c->x.io, f == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void sink_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sink *s = w->data;
    (void)revents;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sink_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->s = s;
        c->id = ++s->conns;
        xs_init(&c->x, fd);
        ev_io_init(&c->x.io, sink_conn_cb, fd, EV_READ);
        c->x.io.data = c;
        ev_io_start(loop, &c->x.io);
    }
}

static void sink_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static int sink_main(int argc, char **argv)
{
    const char *listen_s = "127.0.0.1:0", *port_file = NULL, *stats = NULL;
    struct sink s;
    memset(&s, 0, sizeof s);
    s.domain = "localhost";
    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_s = argv[i + 1];
        else if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[i + 1];
        else if (strcmp(argv[i], "--stats") == 0)
            stats = argv[i + 1];
        else if (strcmp(argv[i], "--domain") == 0)
            s.domain = argv[i + 1];
        else
            goto usage;
    }
    if (argc % 2 != 0 || stats == NULL)
        goto usage;
    int sfd = open(stats, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sfd == -1 || ftruncate(sfd, sizeof(struct bx_stats)) == -1) {
        fprintf(stderr, "bench-xmpp sink: %s: %s\n", stats, strerror(errno));
        return 1;
    }
    void *map = mmap(NULL, sizeof(struct bx_stats), PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    close(sfd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "bench-xmpp sink: mmap: %s\n", strerror(errno));
        return 1;
    }
    s.st = map;
    s.st->magic = BX_MAGIC;
    uint16_t port;
    int lfd = bench_listen_on(listen_s, &port);
    if (lfd == -1) {
        fprintf(stderr, "bench-xmpp sink: cannot listen on %s: %s\n", listen_s,
                strerror(errno));
        return 1;
    }
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) == -1) {
            fprintf(stderr, "bench-xmpp sink: %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    s.loop = ev_default_loop(EVFLAG_AUTO);
    ev_io_init(&s.accept_io, sink_accept_cb, lfd, EV_READ);
    s.accept_io.data = &s;
    ev_io_start(s.loop, &s.accept_io);
    ev_signal_init(&s.sig_term, sink_signal_cb, SIGTERM);
    ev_signal_init(&s.sig_int, sink_signal_cb, SIGINT);
    ev_signal_start(s.loop, &s.sig_term);
    ev_signal_start(s.loop, &s.sig_int);
    fprintf(stderr, "bench-xmpp sink: listening on 127.0.0.1:%u\n", port);
    ev_run(s.loop, 0);
    close(lfd);
    munmap(map, sizeof(struct bx_stats));
    return 0;
usage:
    fprintf(stderr, "usage: bench-xmpp sink --stats FILE [--listen 127.0.0.1:0] "
                    "[--port-file FILE] [--domain localhost]\n");
    return 2;
}

/* ============================================================================================ *
 * traffic
 * ============================================================================================ */

/* One session's messages, serialised once. */
struct ring {
    char *buf;
    size_t len;
    size_t n;
    size_t *off;    /* off[i]: start of message i; off[n] == len */
    size_t *id_pos; /* offset of the id value of message i */
    uint8_t *cls;
    const struct corpus_msg **src;
};

struct opts {
    const char *server; /* "sink" or "prosody" */
    int direct_port, proxy_port;
    pid_t sw_pid, server_pid;
    const char *stats_path;
    const char *conf;
    const char *domain, *user_prefix, *password;
    unsigned sessions;
    uint64_t messages, lat_messages;
    double lat_rate;
    size_t size, ring;
    double spim_share, tag_share;
    unsigned rounds;
    unsigned parse_reps;
    double phase_timeout;
    uint64_t seed;
};

struct traffic {
    struct matcher *m;
    struct matcher_ctx *ctx;
    struct corpus *corpus;
    size_t *ham, *spim, *tagged; /* indices into the corpus */
    uint8_t *ham_cls;
    size_t n_ham, n_spim, n_tagged;
    size_t corpus_spim_not_drop, corpus_ham_drop;
    struct ring *rings; /* one per session */
    char header[512];   /* the stream header the sessions send, for parse-only */
};

static int classify(struct traffic *t, const char *sender, const char *recipient,
                    const char *body, size_t len, struct verdict *v)
{
    struct matcher_msg mm = {
        .sender = sender, .sender_len = strlen(sender),
        .recipient = recipient, .recipient_len = strlen(recipient),
        .body = body, .body_len = len,
        .ip = "127.0.0.1", .ip_len = 9,
        .now_ms = 1700000000000ull, .flags = 0,
    };
    struct sw_err err;
    if (matcher_classify(t->ctx, t->m, NULL, &mm, v, &err) != SW_OK) {
        fprintf(stderr, "bench-xmpp: classify: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void jid_of(const struct opts *o, unsigned i, char *out, size_t cap, bool full)
{
    snprintf(out, cap, "%s%u@%s%s", o->user_prefix, i, o->domain, full ? "/bx" : "");
}

static int traffic_build(struct traffic *t, const struct opts *o)
{
    size_t n_rules = 0;
    t->m = bench_matcher_load("bench-xmpp", o->conf, &n_rules);
    if (t->m == NULL)
        return -1;
    t->ctx = matcher_ctx_new();
    if (t->ctx == NULL)
        return -1;
    fprintf(stderr, "bench-xmpp: %zu rules from %s/rules\n", n_rules, o->conf);

    /* a corpus with spim over-represented, so that both pools fill */
    struct corpus_config cc;
    corpus_config_defaults(&cc);
    cc.messages = 20000;
    cc.msg_bytes = o->size;
    cc.spim_share = 0.3;
    cc.seed = o->seed;
    t->corpus = corpus_new(&cc);
    if (t->corpus == NULL)
        return -1;
    t->ham = bench_xmalloc(cc.messages * sizeof *t->ham);
    t->ham_cls = bench_xmalloc(cc.messages);
    t->spim = bench_xmalloc(cc.messages * sizeof *t->spim);
    t->tagged = bench_xmalloc(cc.messages * sizeof *t->tagged);
    char sender[128], recipient[128];
    jid_of(o, 0, sender, sizeof sender, false);
    jid_of(o, 1, recipient, sizeof recipient, false);
    for (size_t i = 0; i < t->corpus->n; i++) {
        const struct corpus_msg *m = &t->corpus->msgs[i];
        struct verdict v;
        if (classify(t, sender, recipient, m->body, m->body_len, &v) != 0)
            return -1;
        if (m->spim) {
            if (v.action == VERDICT_DROP)
                t->spim[t->n_spim++] = i;
            else if (v.action == VERDICT_TAG)
                t->tagged[t->n_tagged++] = i;
            else
                t->corpus_spim_not_drop++;
        } else if (v.action == VERDICT_DROP) {
            t->corpus_ham_drop++; /* a false positive of the rules: not used */
        } else {
            t->ham_cls[t->n_ham] = v.action == VERDICT_TAG ? CLS_TAG : CLS_PASS;
            t->ham[t->n_ham++] = i;
        }
    }
    if (t->n_ham == 0 || (t->n_spim == 0 && o->spim_share > 0)) {
        fprintf(stderr, "bench-xmpp: the rules leave no ham or no drop-level spim\n");
        return -1;
    }
    snprintf(t->header, sizeof t->header,
             "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>",
             o->domain);

    struct bench_rng rng;
    bench_rng_seed(&rng, o->seed + 7);
    t->rings = calloc(o->sessions, sizeof *t->rings);
    if (t->rings == NULL)
        return -1;
    char *esc = bench_xmalloc(o->size * 8 + 64);
    for (unsigned s = 0; s < o->sessions; s++) {
        struct ring *r = &t->rings[s];
        size_t cap = 0;
        r->n = o->ring;
        r->off = bench_xmalloc((r->n + 1) * sizeof *r->off);
        r->id_pos = bench_xmalloc(r->n * sizeof *r->id_pos);
        r->cls = bench_xmalloc(r->n);
        r->src = bench_xmalloc(r->n * sizeof *r->src);
        char to[128], head[256];
        jid_of(o, (s + 1) % o->sessions, to, sizeof to, true);
        for (size_t i = 0; i < r->n; i++) {
            /* drop-level spim, tag-level spim (greyish: arrives with SHIM headers), or ham */
            double u = bench_rng_unit(&rng);
            const struct corpus_msg *m;
            if (t->n_spim > 0 && u < o->spim_share) {
                m = &t->corpus->msgs[t->spim[bench_rng_below(&rng, t->n_spim)]];
                r->cls[i] = CLS_DROP;
            } else if (t->n_tagged > 0 && u < o->spim_share + o->tag_share) {
                m = &t->corpus->msgs[t->tagged[bench_rng_below(&rng, t->n_tagged)]];
                r->cls[i] = CLS_TAG;
            } else {
                size_t k = bench_rng_below(&rng, t->n_ham);
                m = &t->corpus->msgs[t->ham[k]];
                r->cls[i] = t->ham_cls[k];
            }
            r->src[i] = m;
            r->off[i] = r->len;
            int hn = snprintf(head, sizeof head, "<message to='%s' type='chat' id='", to);
            bench_buf_put(&r->buf, &r->len, &cap, head, (size_t)hn);
            r->id_pos[i] = r->len;
            char id[BX_ID_LEN + 1];
            memset(id, '0', BX_ID_LEN);
            id[0] = cls_letter[r->cls[i]];
            bench_buf_put(&r->buf, &r->len, &cap, id, BX_ID_LEN);
            bench_buf_put(&r->buf, &r->len, &cap, "'><body>", 8);
            /* text content: only & and < must be escaped (> too, for "]]>") */
            size_t e = 0;
            for (size_t b = 0; b < m->body_len; b++) {
                char ch = m->body[b];
                const char *rep = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
                                                                                      : NULL;
                if (rep != NULL) {
                    memcpy(esc + e, rep, strlen(rep));
                    e += strlen(rep);
                } else {
                    esc[e++] = ch;
                }
            }
            bench_buf_put(&r->buf, &r->len, &cap, esc, e);
            bench_buf_put(&r->buf, &r->len, &cap, "</body></message>", 17);
        }
        r->off[r->n] = r->len;
    }
    free(esc);
    return 0;
}

/* Stamps message i of r with phase and time. */
static void ring_stamp(struct ring *r, size_t i, unsigned phase, uint64_t ts)
{
    bench_stamp_hex(r->buf + r->id_pos[i] + 1, phase, ts);
}

/* --- parse-only and scan-only ---------------------------------------------------------------- */

/* Parses the sessions' message streams (rings cycled up to `messages`), decoding each body.
 * Returns CPU seconds, or -1 on a parse error (a bug in the generator or the parser). */
static double parse_only(struct traffic *t, const struct opts *o, uint64_t messages,
                         uint64_t *seen)
{
    static char body[65536];
    struct xmpp_parser p;
    struct xmpp_event ev;
    struct bench_timer tm;
    uint64_t n = 0, sink = 0;
    bench_timer_start(&tm);
    for (unsigned s = 0; n < messages; s = (s + 1) % o->sessions) {
        const struct ring *r = &t->rings[s];
        xmpp_parser_init(&p, NULL);
        uint64_t base = 0;
        size_t hl = strlen(t->header);
        while (xmpp_parser_feed(&p, t->header, hl, 0, &ev) == SW_OK) {
        }
        base = hl;
        /* one pass over this session's ring, fed in 16 KiB pieces as reads would give it */
        size_t fed = 0;
        while (fed < r->len) {
            fed = fed + 16384 < r->len ? fed + 16384 : r->len;
            int rc;
            for (;;) {
                uint64_t keep = xmpp_parser_keep(&p);
                rc = xmpp_parser_feed(&p, r->buf + (keep - base), fed - (size_t)(keep - base),
                                      keep, &ev);
                if (rc != SW_OK)
                    break;
                if (ev.type == XMPP_EV_ELEMENT && ev.kind == XMPP_EL_MESSAGE && ev.body.set) {
                    sink += xmpp_decode(ev.data + ev.body.pos, ev.body.len, body, sizeof body);
                    n++;
                }
            }
            if (rc == SW_ERROR) {
                fprintf(stderr, "bench-xmpp: parse-only: %s at %llu: %s\n",
                        xmpp_error_condition(p.err), (unsigned long long)p.err_pos, p.err_msg);
                return -1;
            }
        }
    }
    bench_timer_stop(&tm);
    *seen = n + (sink == 0); /* sink keeps the decode from being optimised away */
    return tm.cpu_s;
}

/* Classifies the same bodies as the proxy would (decoded, with sender, recipient, address).
 * Returns CPU seconds; *mismatch counts verdicts that differ from the ring's class. */
static double scan_only(struct traffic *t, const struct opts *o, uint64_t messages,
                        uint64_t *mismatch)
{
    struct bench_timer tm;
    uint64_t n = 0;
    char from[128], to[128];
    struct verdict v;
    *mismatch = 0;
    bench_timer_start(&tm);
    for (unsigned s = 0; n < messages; s = (s + 1) % o->sessions) {
        const struct ring *r = &t->rings[s];
        jid_of(o, s, from, sizeof from, false);
        jid_of(o, (s + 1) % o->sessions, to, sizeof to, false);
        for (size_t i = 0; i < r->n && n < messages; i++, n++) {
            const struct corpus_msg *m = r->src[i];
            if (classify(t, from, to, m->body, m->body_len, &v) != 0)
                return -1;
            int c = v.action == VERDICT_DROP ? CLS_DROP : v.action == VERDICT_TAG ? CLS_TAG
                                                                                   : CLS_PASS;
            if (c != r->cls[i])
                (*mismatch)++;
        }
    }
    bench_timer_stop(&tm);
    return tm.cpu_s;
}

/* ============================================================================================ *
 * load generator
 * ============================================================================================ */

enum sess_state { SS_CONNECTING, SS_FEAT1, SS_AUTH, SS_FEAT2, SS_BIND, SS_READY, SS_DEAD };

struct gen;

struct sess {
    struct gen *g;
    unsigned idx;
    struct xstream x;
    enum sess_state st;
    struct ring *r;
    /* the phase being sent */
    uint64_t quota, queued, allowed;
    size_t next;              /* ring index of the next message to stamp */
    size_t cur_off, end_off;  /* bytes of the stamped chunk still to write */
    bool sync_sent, sync_done;
};

struct gen {
    const struct opts *o;
    struct ev_loop *loop;
    struct traffic *t;
    struct sess *s;
    unsigned n;
    bool prosody;
    unsigned phase;
    unsigned ready, synced, dead;
    uint64_t sent[CLS_N], bounced[CLS_N];
    struct bx_stats local; /* deliveries seen by our own sessions (prosody) */
    uint64_t want_ready;   /* break the loop when this many sessions are ready */
    bool want_sync;
    uint64_t start_ns;
    ev_timer pace, guard;
    uint64_t last_progress_ns, last_count;
};

static void sess_kill(struct sess *ss)
{
    if (ss->st == SS_DEAD)
        return;
    if (ss->st != SS_READY)
        fprintf(stderr, "bench-xmpp: session %u failed during login (state %d)\n", ss->idx,
                ss->st);
    else
        fprintf(stderr, "bench-xmpp: session %u lost its stream\n", ss->idx);
    ss->st = SS_DEAD;
    ss->g->dead++;
    ev_io_stop(ss->g->loop, &ss->x.io);
    ev_break(ss->g->loop, EVBREAK_ONE);
}

static int sess_event(void *ud, struct xstream *x, const struct xmpp_event *ev)
{
    struct sess *ss = ud;
    struct gen *g = ss->g;
    const struct opts *o = g->o;
    char tmp[512];
    if (ev->type == XMPP_EV_STREAM_CLOSE)
        return -1;
    if (ev->type != XMPP_EV_ELEMENT)
        return 0;
    switch (ev->kind) {
    case XMPP_EL_FEATURES:
        if (ss->st == SS_FEAT1) {
            char plain[256], b64[400];
            int n = snprintf(plain, sizeof plain, "%c%s%u%c%s", 0, o->user_prefix, ss->idx, 0,
                             o->password);
            b64_encode((unsigned char *)plain, (size_t)n, b64);
            snprintf(tmp, sizeof tmp,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
                     b64);
            xs_puts(x, tmp);
            ss->st = SS_AUTH;
        } else if (ss->st == SS_FEAT2) {
            xs_puts(x, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       "<resource>bx</resource></bind></iq>");
            ss->st = SS_BIND;
        }
        return 0;
    case XMPP_EL_SASL_SUCCESS:
        if (ss->st != SS_AUTH)
            return -1;
        xmpp_parser_restart(&x->p);
        xs_puts(x, g->t->header);
        ss->st = SS_FEAT2;
        return 0;
    case XMPP_EL_SASL_FAILURE:
        fprintf(stderr, "bench-xmpp: session %u: SASL failure: %.*s\n", ss->idx,
                (int)(ev->size < 300 ? ev->size : 300), ev->data);
        return -1;
    case XMPP_EL_STREAM_ERROR:
        fprintf(stderr, "bench-xmpp: session %u: stream error: %.*s\n", ss->idx,
                (int)(ev->size < 300 ? ev->size : 300), ev->data);
        return -1;
    case XMPP_EL_IQ:
        if (span_eq(ev, &ev->id, "bind") && ss->st == SS_BIND) {
            if (!span_eq(ev, &ev->type_attr, "result")) {
                fprintf(stderr, "bench-xmpp: session %u: bind failed: %.*s\n", ss->idx,
                        (int)(ev->size < 300 ? ev->size : 300), ev->data);
                return -1;
            }
            xs_puts(x, "<presence/>");
            ss->st = SS_READY;
            g->ready++;
            if (g->ready + g->dead >= g->want_ready)
                ev_break(g->loop, EVBREAK_ONE);
        } else if (span_eq(ev, &ev->id, "sync") && ss->sync_sent && !ss->sync_done) {
            ss->sync_done = true;
            g->synced++;
            if (g->want_sync && g->synced >= g->ready)
                ev_break(g->loop, EVBREAK_ONE);
        } else if (span_eq(ev, &ev->type_attr, "get") || span_eq(ev, &ev->type_attr, "set")) {
            /* a server ping or query: answer with an error, as a minimal client does */
            char id[96] = "x";
            if (ev->id.set && ev->id.len < sizeof id) {
                memcpy(id, ev->data + ev->id.pos, ev->id.len);
                id[ev->id.len] = '\0';
            }
            snprintf(tmp, sizeof tmp,
                     "<iq type='error' id='%s'><error type='cancel'><service-unavailable "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                     id);
            xs_puts(x, tmp);
        }
        return 0;
    case XMPP_EL_MESSAGE:
        if (span_eq(ev, &ev->type_attr, "error")) {
            /* a bounce: the id is ours, its class says what was refused */
            if (ev->id.set && ev->id.len == BX_ID_LEN) {
                for (int c = 0; c < CLS_N; c++) {
                    if (ev->data[ev->id.pos] == cls_letter[c])
                        g->bounced[c]++;
                }
            }
        } else if (ev->id.set) {
            uint64_t t = bench_now_ns();
            stats_record(&g->local, ev->data + ev->id.pos, ev->id.len, ev->has_shim, t);
            g->last_progress_ns = t;
        }
        return 0;
    default:
        return 0;
    }
}

/* Stamps the next run of messages (whole ones, at most BX_CHUNK bytes, not across the ring's
 * end, at most allowed - queued) and makes them the chunk to write. Returns false if none. */
static bool sess_next_chunk(struct sess *ss)
{
    struct gen *g = ss->g;
    struct ring *r = ss->r;
    uint64_t can = ss->allowed - ss->queued;
    if (can == 0)
        return false;
    size_t i = ss->next, j = i;
    uint64_t ts = bench_now_ns();
    while (j < r->n && (uint64_t)(j - i) < can &&
           (j == i || r->off[j + 1] - r->off[i] <= BX_CHUNK)) {
        ring_stamp(r, j, g->phase, ts);
        g->sent[r->cls[j]]++;
        j++;
    }
    ss->cur_off = r->off[i];
    ss->end_off = r->off[j];
    ss->queued += j - i;
    ss->next = j == r->n ? 0 : j;
    return true;
}

/* Writes control bytes, then message chunks, until the socket is full or nothing is allowed;
 * queues the sync ping once the quota is written. */
static int sess_write(struct sess *ss)
{
    struct gen *g = ss->g;
    for (;;) {
        if (ss->cur_off == ss->end_off) {
            int f = xs_flush(&ss->x);
            if (f != 0)
                return f;
            if (ss->st != SS_READY)
                return 0;
            if (!sess_next_chunk(ss)) {
                if (ss->quota > 0 && ss->queued == ss->quota && !ss->sync_sent) {
                    ss->sync_sent = true;
                    /* to the server: the sink and Prosody both answer a ping */
                    char tmp[160];
                    snprintf(tmp, sizeof tmp,
                             "<iq type='get' id='sync' to='%s'><ping xmlns='urn:xmpp:ping'/>"
                             "</iq>",
                             g->o->domain);
                    xs_puts(&ss->x, tmp);
                    continue;
                }
                return 0;
            }
        }
        ssize_t n = send(ss->x.fd, ss->r->buf + ss->cur_off, ss->end_off - ss->cur_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            ss->cur_off += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return 1;
        return -1;
    }
}

static void sess_update(struct sess *ss)
{
    if (ss->st == SS_DEAD)
        return;
    int w = sess_write(ss);
    if (w == -1) {
        sess_kill(ss);
        return;
    }
    bench_io_want(ss->g->loop, &ss->x.io, w == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void sess_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sess *ss = w->data;
    (void)loop;
    if (ss->st == SS_CONNECTING && (revents & EV_WRITE)) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(ss->x.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
            fprintf(stderr, "bench-xmpp: connect: %s\n", strerror(err ? err : errno));
            sess_kill(ss);
            return;
        }
        ss->st = SS_FEAT1;
        xs_puts(&ss->x, ss->g->t->header);
    }
    if ((revents & EV_READ) && xs_read(&ss->x, sess_event, ss) == -1) {
        sess_kill(ss);
        return;
    }
    sess_update(ss);
}

static void gen_stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Opens and logs in g->n sessions to port. Returns the number ready. */
static unsigned gen_login(struct gen *g, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g->ready = g->dead = 0;
    for (unsigned i = 0; i < g->n; i++) {
        struct sess *ss = &g->s[i];
        memset(ss, 0, sizeof *ss);
        ss->g = g;
        ss->idx = i;
        ss->r = &g->t->rings[i];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        xs_init(&ss->x, fd);
        ev_io_init(&ss->x.io, sess_cb, fd, EV_READ | EV_WRITE);
        ss->x.io.data = ss;
        if (fd == -1 || (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1 &&
                         errno != EINPROGRESS)) {
            fprintf(stderr, "bench-xmpp: connect to %d: %s\n", port, strerror(errno));
            ss->st = SS_DEAD;
            g->dead++;
            continue;
        }
        ev_io_start(g->loop, &ss->x.io);
    }
    g->want_ready = g->n;
    ev_timer_init(&g->guard, gen_stop_cb, 30, 0);
    ev_timer_start(g->loop, &g->guard);
    while (g->ready + g->dead < g->n && !bx_stop && ev_is_active(&g->guard))
        ev_run(g->loop, EVRUN_ONCE);
    ev_timer_stop(g->loop, &g->guard);
    return g->ready;
}

static void gen_close(struct gen *g)
{
    for (unsigned i = 0; i < g->n; i++) {
        struct sess *ss = &g->s[i];
        if (ss->st != SS_DEAD) {
            /* a closing tag; what the peer sent meanwhile is read first, so that the close
             * is a FIN and not a reset */
            char junk[4096];
            while (recv(ss->x.fd, junk, sizeof junk, 0) > 0) {
            }
            (void)!send(ss->x.fd, "</stream:stream>", 16, MSG_NOSIGNAL);
            shutdown(ss->x.fd, SHUT_WR);
            ev_io_stop(g->loop, &ss->x.io);
        }
        xs_deinit(&ss->x);
    }
}

static void pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct gen *g = w->data;
    (void)loop;
    (void)revents;
    double el = (double)(bench_now_ns() - g->start_ns) * 1e-9;
    double per = g->o->lat_rate / g->ready;
    for (unsigned i = 0; i < g->n; i++) {
        struct sess *ss = &g->s[i];
        if (ss->st != SS_READY)
            continue;
        uint64_t due = (uint64_t)(per * el) + 1;
        ss->allowed = due < ss->quota ? due : ss->quota;
        sess_update(ss);
    }
}

struct phase_result {
    bool ran, ok;
    uint64_t sent, sent_cls[CLS_N], recv_cls[CLS_N], shim, bounced[CLS_N];
    double wall_s, msgs_per_s, sw_cpu_s, server_cpu_s;
    double phase_s, gen_cpu_s; /* whole phase (start to last sync), load generator's CPU */
    struct bench_hist lat;
};

/* Runs one phase on the logged-in sessions: total messages, paced at rate (0: flat out). */
static void gen_phase(struct gen *g, struct bx_stats *remote, uint64_t total, double rate,
                      struct phase_result *res)
{
    const struct opts *o = g->o;
    struct bx_stats *st = g->prosody ? &g->local : remote;
    memset(res, 0, sizeof *res);
    memset(g->sent, 0, sizeof g->sent);
    memset(g->bounced, 0, sizeof g->bounced);
    g->synced = 0;
    unsigned live = g->ready;
    /* the sink outlives runs: count what this phase adds to its counters */
    static struct bx_phase before;
    memcpy(&before, &st->ph[g->phase], sizeof before);
    double cpu0 = bench_proc_cpu_s(o->sw_pid), scpu0 = bench_proc_cpu_s(o->server_pid);
    double gcpu0 = bench_proc_cpu_s(getpid());
    g->start_ns = bench_now_ns();
    g->last_progress_ns = g->start_ns;
    for (unsigned i = 0; i < g->n; i++) {
        struct sess *ss = &g->s[i];
        ss->quota = total / live + (i < total % live ? 1 : 0);
        ss->queued = 0;
        ss->allowed = rate > 0 ? 0 : ss->quota;
        ss->sync_sent = ss->sync_done = false;
        if (ss->st == SS_READY)
            sess_update(ss);
    }
    if (rate > 0) {
        ev_timer_init(&g->pace, pace_cb, 0.001, 0.001);
        g->pace.data = g;
        ev_timer_start(g->loop, &g->pace);
    }
    g->want_sync = true;
    double limit = o->phase_timeout;
    bool timed_out = false;
    while (g->synced < g->ready && g->dead == 0 && !bx_stop) {
        ev_timer_init(&g->guard, gen_stop_cb, 0.2, 0);
        ev_timer_start(g->loop, &g->guard);
        ev_run(g->loop, EVRUN_ONCE);
        ev_timer_stop(g->loop, &g->guard);
        if ((double)(bench_now_ns() - g->start_ns) * 1e-9 > limit) {
            timed_out = true;
            break;
        }
    }
    g->want_sync = false;
    if (rate > 0)
        ev_timer_stop(g->loop, &g->pace);
    /* Prosody: the pings only say the server has everything; wait for the deliveries. */
    if (g->prosody) {
        uint64_t want = g->sent[CLS_PASS] + g->sent[CLS_TAG];
        for (;;) {
            const struct bx_phase *ph = &st->ph[g->phase];
            if (ph->msgs[CLS_PASS] + ph->msgs[CLS_TAG] - before.msgs[CLS_PASS] -
                        before.msgs[CLS_TAG] >=
                    want &&
                g->bounced[CLS_DROP] + ph->msgs[CLS_DROP] - before.msgs[CLS_DROP] >=
                    g->sent[CLS_DROP])
                break;
            if (bench_now_ns() - g->last_progress_ns > 3000000000ull || bx_stop)
                break;
            ev_timer_init(&g->guard, gen_stop_cb, 0.05, 0);
            ev_timer_start(g->loop, &g->guard);
            ev_run(g->loop, EVRUN_ONCE);
            ev_timer_stop(g->loop, &g->guard);
        }
    } else {
        /* bounces travel back while the pings do; give stragglers a moment */
        uint64_t t0 = bench_now_ns();
        while (g->bounced[CLS_DROP] < g->sent[CLS_DROP] && bench_now_ns() - t0 < 1000000000ull &&
               !bx_stop && !timed_out) {
            ev_timer_init(&g->guard, gen_stop_cb, 0.02, 0);
            ev_timer_start(g->loop, &g->guard);
            ev_run(g->loop, EVRUN_ONCE);
            ev_timer_stop(g->loop, &g->guard);
        }
    }
    double cpu1 = bench_proc_cpu_s(o->sw_pid), scpu1 = bench_proc_cpu_s(o->server_pid);
    res->gen_cpu_s = bench_proc_cpu_s(getpid()) - gcpu0;
    res->phase_s = (double)(bench_now_ns() - g->start_ns) * 1e-9;
    const struct bx_phase *ph = &st->ph[g->phase];
    res->ran = true;
    for (int c = 0; c < CLS_N; c++) {
        res->sent_cls[c] = g->sent[c];
        res->sent += g->sent[c];
        res->recv_cls[c] = __atomic_load_n(&ph->msgs[c], __ATOMIC_RELAXED) - before.msgs[c];
        res->bounced[c] = g->bounced[c];
    }
    res->shim = ph->shim - before.shim;
    uint64_t last = ph->last_ns;
    res->wall_s = last > g->start_ns ? (double)(last - g->start_ns) * 1e-9 : NAN;
    uint64_t recv = res->recv_cls[0] + res->recv_cls[1] + res->recv_cls[2];
    res->msgs_per_s = (double)recv / res->wall_s;
    res->sw_cpu_s = cpu1 - cpu0;
    res->server_cpu_s = scpu1 - scpu0;
    res->lat.count = ph->lat.count - before.lat.count;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        res->lat.b[i] = ph->lat.b[i] - before.lat.b[i];
    res->ok = !timed_out && g->dead == 0 && g->synced == g->ready;
    if (timed_out)
        fprintf(stderr, "bench-xmpp: phase %u timed out after %.0f s (%u/%u sessions synced)\n",
                g->phase, limit, g->synced, g->ready);
}

/* Whether a path's deliveries are what its filtering promises. Fills why. */
static bool check_delivery(const struct phase_result *r, bool proxy, char *why, size_t cap)
{
    why[0] = '\0';
    if (r->recv_cls[CLS_PASS] != r->sent_cls[CLS_PASS] ||
        r->recv_cls[CLS_TAG] != r->sent_cls[CLS_TAG]) {
        snprintf(why, cap, "ham lost or duplicated: pass %llu/%llu tag %llu/%llu",
                 (unsigned long long)r->recv_cls[CLS_PASS],
                 (unsigned long long)r->sent_cls[CLS_PASS],
                 (unsigned long long)r->recv_cls[CLS_TAG],
                 (unsigned long long)r->sent_cls[CLS_TAG]);
        return false;
    }
    if (proxy) {
        if (r->recv_cls[CLS_DROP] != 0) {
            snprintf(why, cap, "%llu drop-level spim delivered",
                     (unsigned long long)r->recv_cls[CLS_DROP]);
            return false;
        }
        if (r->shim != r->recv_cls[CLS_TAG]) {
            snprintf(why, cap, "SHIM headers on %llu messages, %llu tag-level",
                     (unsigned long long)r->shim, (unsigned long long)r->recv_cls[CLS_TAG]);
            return false;
        }
        if (r->bounced[CLS_DROP] != r->sent_cls[CLS_DROP] ||
            r->bounced[CLS_PASS] + r->bounced[CLS_TAG] != 0) {
            snprintf(why, cap, "bounces: %llu for %llu dropped, %llu for ham",
                     (unsigned long long)r->bounced[CLS_DROP],
                     (unsigned long long)r->sent_cls[CLS_DROP],
                     (unsigned long long)(r->bounced[CLS_PASS] + r->bounced[CLS_TAG]));
            return false;
        }
    } else if (r->recv_cls[CLS_DROP] != r->sent_cls[CLS_DROP] || r->shim != 0) {
        snprintf(why, cap, "direct path: spim %llu/%llu, shim %llu",
                 (unsigned long long)r->recv_cls[CLS_DROP],
                 (unsigned long long)r->sent_cls[CLS_DROP], (unsigned long long)r->shim);
        return false;
    }
    return true;
}

static double median_of(double *v, unsigned n)
{
    double tmp[BX_MAX_ROUNDS];
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (isfinite(v[i]))
            tmp[k++] = v[i];
    }
    return k ? bench_median(tmp, k) : NAN;
}

static void usage_run(void)
{
    fprintf(stderr,
            "usage: bench-xmpp run --server sink|prosody --direct PORT [--proxy PORT]\n"
            "         [--sw-pid PID] [--server-pid PID] [--sink-stats FILE (sink)]\n"
            "         [--sessions 16] [--messages 300000] [--lat-messages 20000]\n"
            "         [--lat-rate 10000] [--size 120] [--ring 1024] [--spim-share 0.1]\n"
            "         [--tag-share 0.02]"
            "         [--rounds 3] [--parse-reps 3] [--conf DIR] [--domain localhost]\n"
            "         [--user-prefix bench] [--password bench-pw] [--phase-timeout 120]\n"
            "         [--seed 1]\n");
}

static int run_main(int argc, char **argv)
{
    struct opts o = {
        .server = "sink", .direct_port = -1, .proxy_port = 0, .conf = "conf",
        .domain = "localhost", .user_prefix = "bench", .password = "bench-pw",
        .sessions = 16, .messages = 300000, .lat_messages = 20000, .lat_rate = 10000,
        .size = 120, .ring = 1024, .spim_share = 0.1, .tag_share = 0.02, .rounds = 3, .parse_reps = 3,
        .phase_timeout = 120, .seed = 1,
    };
    const char *env_src = getenv("SW_SOURCE_DIR");
    static char confbuf[4096];
    if (env_src != NULL) {
        snprintf(confbuf, sizeof confbuf, "%s/conf", env_src);
        o.conf = confbuf;
    }
    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        double d;
        if (v == NULL)
            goto usage;
        if (strcmp(a, "--server") == 0) {
            if (strcmp(v, "sink") != 0 && strcmp(v, "prosody") != 0)
                goto bad;
            o.server = v;
        } else if (strcmp(a, "--direct") == 0) {
            if (!bench_parse_u64(v, 1, 65535, &u))
                goto bad;
            o.direct_port = (int)u;
        } else if (strcmp(a, "--proxy") == 0) {
            if (!bench_parse_u64(v, 1, 65535, &u))
                goto bad;
            o.proxy_port = (int)u;
        } else if (strcmp(a, "--sw-pid") == 0) {
            if (!bench_parse_u64(v, 1, INT32_MAX, &u))
                goto bad;
            o.sw_pid = (pid_t)u;
        } else if (strcmp(a, "--server-pid") == 0) {
            if (!bench_parse_u64(v, 1, INT32_MAX, &u))
                goto bad;
            o.server_pid = (pid_t)u;
        } else if (strcmp(a, "--sink-stats") == 0) {
            o.stats_path = v;
        } else if (strcmp(a, "--sessions") == 0) {
            if (!bench_parse_u64(v, 2, BX_MAX_SESSIONS, &u))
                goto bad;
            o.sessions = (unsigned)u;
        } else if (strcmp(a, "--messages") == 0) {
            if (!bench_parse_u64(v, 1, 1000000000, &u))
                goto bad;
            o.messages = u;
        } else if (strcmp(a, "--lat-messages") == 0) {
            if (!bench_parse_u64(v, 1, 1000000000, &u))
                goto bad;
            o.lat_messages = u;
        } else if (strcmp(a, "--lat-rate") == 0) {
            if (!bench_parse_double(v, 1, 1e7, &d))
                goto bad;
            o.lat_rate = d;
        } else if (strcmp(a, "--size") == 0) {
            if (!bench_parse_u64(v, 16, 16384, &u))
                goto bad;
            o.size = (size_t)u;
        } else if (strcmp(a, "--ring") == 0) {
            if (!bench_parse_u64(v, 1, 1000000, &u))
                goto bad;
            o.ring = (size_t)u;
        } else if (strcmp(a, "--spim-share") == 0) {
            if (!bench_parse_double(v, 0, 1, &d))
                goto bad;
            o.spim_share = d;
        } else if (strcmp(a, "--tag-share") == 0) {
            if (!bench_parse_double(v, 0, 1, &d))
                goto bad;
            o.tag_share = d;
        } else if (strcmp(a, "--rounds") == 0) {
            if (!bench_parse_u64(v, 1, BX_MAX_ROUNDS, &u))
                goto bad;
            o.rounds = (unsigned)u;
        } else if (strcmp(a, "--parse-reps") == 0) {
            if (!bench_parse_u64(v, 1, 100, &u))
                goto bad;
            o.parse_reps = (unsigned)u;
        } else if (strcmp(a, "--phase-timeout") == 0) {
            if (!bench_parse_double(v, 1, 3600, &d))
                goto bad;
            o.phase_timeout = d;
        } else if (strcmp(a, "--seed") == 0) {
            if (!bench_parse_u64(v, 0, UINT64_MAX, &u))
                goto bad;
            o.seed = u;
        } else if (strcmp(a, "--conf") == 0) {
            o.conf = v;
        } else if (strcmp(a, "--domain") == 0) {
            o.domain = v;
        } else if (strcmp(a, "--user-prefix") == 0) {
            o.user_prefix = v;
        } else if (strcmp(a, "--password") == 0) {
            o.password = v;
        } else {
            goto usage;
        }
        continue;
    bad:
        fprintf(stderr, "bench-xmpp run: bad value for %s: %s\n", a, v);
        return 2;
    }
    bool prosody = strcmp(o.server, "prosody") == 0;
    if (o.direct_port < 0 || o.spim_share + o.tag_share > 1 || (!prosody && o.stats_path == NULL) || strlen(o.domain) > 64 ||
        strlen(o.user_prefix) > 32 || strlen(o.password) > 64 ||
        strpbrk(o.domain, "<>&'\"") != NULL || strpbrk(o.user_prefix, "<>&'\"@/") != NULL)
        goto usage;

    struct bx_stats *remote = NULL;
    if (!prosody) {
        int sfd = open(o.stats_path, O_RDONLY | O_CLOEXEC);
        if (sfd == -1) {
            fprintf(stderr, "bench-xmpp run: %s: %s\n", o.stats_path, strerror(errno));
            return 1;
        }
        void *map = mmap(NULL, sizeof(struct bx_stats), PROT_READ, MAP_SHARED, sfd, 0);
        close(sfd);
        if (map == MAP_FAILED || ((struct bx_stats *)map)->magic != BX_MAGIC) {
            fprintf(stderr, "bench-xmpp run: %s is not a sink stats file\n", o.stats_path);
            return 1;
        }
        remote = map;
    }

    struct traffic t;
    memset(&t, 0, sizeof t);
    if (traffic_build(&t, &o) != 0)
        return 1;
    size_t ring_bytes = 0;
    uint64_t ring_cls[CLS_N] = {0};
    for (unsigned s = 0; s < o.sessions; s++) {
        ring_bytes += t.rings[s].len;
        for (size_t i = 0; i < t.rings[s].n; i++)
            ring_cls[t.rings[s].cls[i]]++;
    }
    double avg_stanza = (double)ring_bytes / (double)(o.sessions * o.ring);
    fprintf(stderr,
            "bench-xmpp: %s, %u sessions, rings of %zu messages (%.0f B per stanza), pools: "
            "%zu ham, %zu drop-level spim, %zu tag-level spim (%zu corpus spim below tag, "
            "%zu corpus ham dropped, both unused)\n",
            o.server, o.sessions, o.ring, avg_stanza, t.n_ham, t.n_spim, t.n_tagged,
            t.corpus_spim_not_drop, t.corpus_ham_drop);

    /* --- parse-only and scan-only over the same bytes and bodies ------------------------- */
    uint64_t pmsgs = o.messages < 50000 ? o.messages : 50000;
    if (pmsgs < (uint64_t)o.ring)
        pmsgs = o.ring;
    double tp[100], ts[100];
    uint64_t seen = 0, mismatch = 0;
    for (unsigned k = 0; k < o.parse_reps; k++) {
        tp[k] = parse_only(&t, &o, pmsgs, &seen);
        ts[k] = scan_only(&t, &o, pmsgs, &mismatch);
        if (tp[k] < 0 || ts[k] < 0)
            return 1;
        tp[k] /= (double)seen; /* whole rings: may pass pmsgs */
    }
    double parse_s = bench_median(tp, o.parse_reps);
    double scan_s = bench_median(ts, o.parse_reps) / (double)pmsgs;
    {
        struct bench_json j;
        bench_json_begin(&j);
        bench_json_str(&j, "bench", "xmpp");
        bench_json_str(&j, "server", o.server);
        bench_json_str(&j, "case", "parse_scan_only");
        bench_json_u64(&j, "messages", pmsgs);
        bench_json_u64(&j, "reps", o.parse_reps);
        bench_json_double(&j, "stanza_bytes", avg_stanza);
        bench_json_double(&j, "parse_msgs_per_s", 1.0 / parse_s);
        bench_json_double(&j, "scan_msgs_per_s", 1.0 / scan_s);
        bench_json_double(&j, "parse_scan_msgs_per_s", 1.0 / (parse_s + scan_s));
        bench_json_double(&j, "parse_us_per_msg", parse_s * 1e6);
        bench_json_double(&j, "scan_us_per_msg", scan_s * 1e6);
        bench_json_u64(&j, "verdict_mismatch", mismatch);
        bench_json_u64(&j, "ring_pass", ring_cls[CLS_PASS]);
        bench_json_u64(&j, "ring_tag", ring_cls[CLS_TAG]);
        bench_json_u64(&j, "ring_drop", ring_cls[CLS_DROP]);
        if (bench_json_end(&j, stdout) != 0)
            return 1;
    }
    if (mismatch != 0)
        fprintf(stderr, "bench-xmpp: %llu verdicts differ from the ring's classes\n",
                (unsigned long long)mismatch);

    /* --- end to end ------------------------------------------------------------------------ */
    struct gen g;
    memset(&g, 0, sizeof g);
    g.o = &o;
    g.t = &t;
    g.n = o.sessions;
    g.prosody = prosody;
    g.s = calloc(g.n, sizeof *g.s);
    g.loop = ev_default_loop(EVFLAG_AUTO);
    if (g.s == NULL)
        return 1;

    const char *path_names[2] = {"direct", "spimwall"};
    int ports[2] = {o.direct_port, o.proxy_port};
    unsigned n_paths = o.proxy_port > 0 ? 2 : 1;
    static struct phase_result res[BX_MAX_ROUNDS][2][2]; /* round, path, phase kind */
    int rc = 0;
    for (unsigned round = 0; round < o.rounds && !bx_stop; round++) {
        for (unsigned pi = 0; pi < n_paths && !bx_stop; pi++) {
            fprintf(stderr, "bench-xmpp: %s via %s, round %u/%u: login\n", o.server,
                    path_names[pi], round + 1, o.rounds);
            memset(&g.local, 0, sizeof g.local);
            unsigned ready = gen_login(&g, ports[pi]);
            if (ready < g.n) {
                fprintf(stderr, "bench-xmpp: only %u of %u sessions logged in via %s\n", ready,
                        g.n, path_names[pi]);
                gen_close(&g);
                for (unsigned k = 0; k < 2; k++)
                    res[round][pi][k].ran = true;
                rc = 1;
                continue;
            }
            for (unsigned k = 0; k < 2; k++) {
                g.phase = round * 4 + pi * 2 + k;
                fprintf(stderr, "bench-xmpp: %s via %s, round %u/%u: %s\n", o.server,
                        path_names[pi], round + 1, o.rounds, k ? "latency" : "throughput");
                gen_phase(&g, remote, k ? o.lat_messages : o.messages, k ? o.lat_rate : 0,
                          &res[round][pi][k]);
            }
            gen_close(&g);
            struct timespec pause = {0, 200000000};
            nanosleep(&pause, NULL);
        }
    }

    /* --- report ------------------------------------------------------------------------------ */
    double rate_med[2] = {NAN, NAN}, cpu_med[2] = {NAN, NAN}, scpu_med[2] = {NAN, NAN};
    double p50[2] = {NAN, NAN}, p99[2] = {NAN, NAN};
    bool all_ok = true;
    for (unsigned pi = 0; pi < n_paths; pi++) {
        for (unsigned k = 0; k < 2; k++) {
            struct phase_result agg;
            memset(&agg, 0, sizeof agg);
            agg.ok = true;
            double rates[BX_MAX_ROUNDS], cpus[BX_MAX_ROUNDS], scpus[BX_MAX_ROUNDS];
            double util[3][BX_MAX_ROUNDS]; /* CPU s per wall s: spimwall, server, generator */
            char why[320] = ""; /* "round N: " and the 256 bytes of w */
            for (unsigned round = 0; round < o.rounds; round++) {
                const struct phase_result *r = &res[round][pi][k];
                rates[round] = cpus[round] = scpus[round] = NAN;
                util[0][round] = util[1][round] = util[2][round] = NAN;
                if (!r->ran)
                    continue;
                agg.ran = true;
                char w[256];
                if (!r->ok || !check_delivery(r, pi == 1, w, sizeof w)) {
                    agg.ok = false;
                    if (why[0] == '\0')
                        snprintf(why, sizeof why, "round %u: %s", round + 1,
                                 r->ok ? w : "sessions failed or timed out");
                }
                agg.sent += r->sent;
                for (int c = 0; c < CLS_N; c++) {
                    agg.sent_cls[c] += r->sent_cls[c];
                    agg.recv_cls[c] += r->recv_cls[c];
                    agg.bounced[c] += r->bounced[c];
                }
                agg.shim += r->shim;
                bench_hist_add(&agg.lat, &r->lat);
                rates[round] = r->msgs_per_s;
                util[0][round] = r->sw_cpu_s / r->phase_s;
                util[1][round] = r->server_cpu_s / r->phase_s;
                util[2][round] = r->gen_cpu_s / r->phase_s;
                cpus[round] = r->sent ? r->sw_cpu_s / (double)r->sent : NAN;
                scpus[round] = r->sent ? r->server_cpu_s / (double)r->sent : NAN;
            }
            if (!agg.ran)
                continue;
            if (!agg.ok) {
                rc = 1;
                all_ok = false;
                fprintf(stderr, "bench-xmpp: %s via %s %s: NOT OK: %s\n", o.server,
                        path_names[pi], k ? "latency" : "throughput", why);
            }
            double rate = median_of(rates, o.rounds);
            double cpu = pi == 1 ? median_of(cpus, o.rounds) : NAN;
            double scpu = o.server_pid > 0 ? median_of(scpus, o.rounds) : NAN;
            struct bench_json j;
            bench_json_begin(&j);
            bench_json_str(&j, "bench", "xmpp");
            bench_json_str(&j, "server", o.server);
            bench_json_str(&j, "path", path_names[pi]);
            bench_json_str(&j, "phase", k ? "latency" : "throughput");
            bench_json_bool(&j, "ok", agg.ok);
            if (!agg.ok)
                bench_json_str(&j, "error", why);
            bench_json_u64(&j, "sessions", o.sessions);
            bench_json_u64(&j, "rounds", o.rounds);
            bench_json_u64(&j, "sent", agg.sent);
            bench_json_u64(&j, "sent_ham", agg.sent_cls[CLS_PASS] + agg.sent_cls[CLS_TAG]);
            bench_json_u64(&j, "sent_tag_level", agg.sent_cls[CLS_TAG]);
            bench_json_u64(&j, "sent_spim", agg.sent_cls[CLS_DROP]);
            bench_json_u64(&j, "received",
                           agg.recv_cls[CLS_PASS] + agg.recv_cls[CLS_TAG] + agg.recv_cls[CLS_DROP]);
            bench_json_u64(&j, "received_ham", agg.recv_cls[CLS_PASS] + agg.recv_cls[CLS_TAG]);
            bench_json_u64(&j, "received_spim", agg.recv_cls[CLS_DROP]);
            bench_json_u64(&j, "received_tagged", agg.shim);
            bench_json_u64(&j, "bounces", agg.bounced[CLS_DROP]);
            bench_json_u64(&j, "bounces_ham", agg.bounced[CLS_PASS] + agg.bounced[CLS_TAG]);
            bench_json_double(&j, "msgs_per_s", rate);
            if (k == 1)
                bench_json_double(&j, "offered_rate", o.lat_rate);
            bench_json_double(&j, "p50_us", bench_hist_quantile(&agg.lat, 0.5) / 1e3);
            bench_json_double(&j, "p99_us", bench_hist_quantile(&agg.lat, 0.99) / 1e3);
            if (k == 1 && pi == 1) {
                bench_json_double(&j, "added_p50_us",
                                  bench_hist_quantile(&agg.lat, 0.5) / 1e3 - p50[0]);
                bench_json_double(&j, "added_p99_us",
                                  bench_hist_quantile(&agg.lat, 0.99) / 1e3 - p99[0]);
            }
            bench_json_double(&j, "sw_cpu_s_per_msg", cpu);
            bench_json_double(&j, "server_cpu_s_per_msg", scpu);
            /* which process was the bottleneck: CPU seconds per wall second of the phase */
            bench_json_double(&j, "sw_cpu_util", pi == 1 ? median_of(util[0], o.rounds) : NAN);
            bench_json_double(&j, "server_cpu_util",
                              o.server_pid > 0 ? median_of(util[1], o.rounds) : NAN);
            bench_json_double(&j, "loadgen_cpu_util", median_of(util[2], o.rounds));
            if (bench_json_end(&j, stdout) != 0)
                return 1;
            if (k == 0) {
                rate_med[pi] = rate;
                cpu_med[pi] = cpu;
                scpu_med[pi] = scpu;
            } else {
                p50[pi] = bench_hist_quantile(&agg.lat, 0.5) / 1e3;
                p99[pi] = bench_hist_quantile(&agg.lat, 0.99) / 1e3;
            }
        }
    }
    if (n_paths == 2) {
        struct bench_json j;
        double per_core = 1.0 / cpu_med[1];
        bench_json_begin(&j);
        bench_json_str(&j, "bench", "xmpp");
        bench_json_str(&j, "summary", o.server);
        bench_json_bool(&j, "ok", all_ok); /* false: some figure comes from a failed case */
        bench_json_double(&j, "msgs_per_s_direct", rate_med[0]);
        bench_json_double(&j, "msgs_per_s_spimwall", rate_med[1]);
        bench_json_double(&j, "sw_cpu_us_per_msg", cpu_med[1] * 1e6);
        bench_json_double(&j, "sw_per_core_msgs_per_s", per_core);
        bench_json_double(&j, "added_p50_us", p50[1] - p50[0]);
        bench_json_double(&j, "added_p99_us", p99[1] - p99[0]);
        if (!prosody) {
            bench_json_double(&j, "parse_us_per_msg", parse_s * 1e6);
            bench_json_double(&j, "scan_us_per_msg", scan_s * 1e6);
            bench_json_double(&j, "efficiency", per_core * (parse_s + scan_s));
            bench_json_double(&j, "efficiency_target", 0.7);
            bench_json_bool(&j, "meets_efficiency_target",
                            isfinite(per_core) && per_core * (parse_s + scan_s) >= 0.7);
        }
        if (prosody) {
            /* both legs of every message cross spimwall (judged on the sender's and on the
             * recipient's stream); Prosody routes it once. Per message sent. */
            double ratio = cpu_med[1] / scpu_med[1];
            bench_json_u64(&j, "sw_legs_per_msg", 2);
            bench_json_double(&j, "server_cpu_us_per_msg", scpu_med[1] * 1e6);
            bench_json_double(&j, "server_cpu_us_per_msg_direct", scpu_med[0] * 1e6);
            bench_json_double(&j, "sw_over_server_cpu", ratio);
            bench_json_double(&j, "sw_over_server_cpu_target", 0.10);
            bench_json_bool(&j, "meets_cpu_target", isfinite(ratio) && ratio <= 0.10);
        } else {
            bench_json_double(&j, "per_core_target", 300000);
            bench_json_bool(&j, "meets_rate_target", isfinite(per_core) && per_core >= 300000);
        }
        if (bench_json_end(&j, stdout) != 0)
            return 1;
    }
    free(g.s);
    if (remote != NULL)
        munmap(remote, sizeof(struct bx_stats));
    return rc;

usage:
    usage_run();
    return 2;
}

/* ============================================================================================ */

static void on_stop_signal(int sig)
{
    (void)sig;
    bx_stop = 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "sink") == 0)
        return sink_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        signal(SIGINT, on_stop_signal);
        signal(SIGTERM, on_stop_signal);
        return run_main(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "ports") == 0)
        return bench_ports_main("bench-xmpp", argc - 2, argv + 2);
    fprintf(stderr, "usage: bench-xmpp sink|run|ports ... (see the comment at the top of "
                    "bench/bench_xmpp.c)\n");
    return 2;
}
