/* bench-msnp: MSNP switchboard filtering end to end (issue 5, "Benchmark"): messages/s and CPU
 * per message of spimwall's msnp listener, against the direct path, with parse-only and
 * scan-only figures for the same bytes and bodies from the same run, and the efficiency.
 *
 *   bench-msnp run --sink-port P --proxy PORT --sw-pid PID [options]
 *       One libev process holds both ends: a fast switchboard sink of ours listening on
 *       127.0.0.1:P, and the load generator. spimwall sits between them as an `msnp` listener
 *       with role "sb" and mode "transparent" whose upstream is the sink (scripts/bench-msnp.sh
 *       writes that config). For each round and each path (direct: generator -> sink; spimwall:
 *       generator -> spimwall -> sink) every session logs in to the switchboard
 *       (`USR trid email cookie`, answered `USR trid OK email nick`), invites its contact
 *       (`CAL trid email`, answered `CAL trid RINGING sessid` and `JOI email nick`), and then:
 *         throughput  every session writes its share of --messages as fast as it can, in
 *                     64 KiB writes of whole commands; messages/s = messages delivered /
 *                     (last delivery - start); spimwall's CPU seconds (/proc/PID/stat, all
 *                     threads) per message sent
 *         latency     --lat-messages at --lat-rate msg/s in all, paced by a 1 ms timer; p50/p99
 *                     of the delivery latency, and the same minus the direct path's ("added")
 *       A phase ends when every message that should arrive has arrived, or after 3 s without
 *       progress.
 *   bench-msnp ports N
 *       Prints N distinct free TCP ports on 127.0.0.1.
 *
 * Traffic. Corpus chat and spim (bench/lib/corpus.c, ~--size bytes) classified up front with
 * the shipped rules (--conf DIR/rules and DIR/lists, no reputation, so the verdict of each
 * message follows from its text and the expected fate of every message is known): pass-level,
 * tag-level (--tag-share) and drop-level (--spim-share). Each session cycles through a ring of
 * --ring pre-serialised `MSG trid U len` commands (text/plain MIME payloads as MSN Messenger
 * sent them; ack type U, so nothing answers them) to its contact. An extra MIME header
 * `X-Bench: CPPTTTTTTTTTTTTTTTT` carries the class (p, t, d), the phase (hex) and the send time
 * (hex ns, CLOCK_MONOTONIC), stamped just before the write; the sink reads it back and counts
 * the payloads that carry spimwall's X-Spam-Flag header.
 *
 * Checks (a case is "ok" only if all hold): directly, every message arrives; through spimwall,
 * every pass- and tag-level message arrives, every tag-level one with X-Spam headers, and no
 * drop-level one arrives.
 *
 * Parse-only: msnp_parse over the byte stream the sessions send (rings cycled up to
 * --messages) in 16 KiB pieces, with msnp_mime_parse of every MSG payload, as the proxy does.
 * Scan-only: matcher_classify of the same bodies with the sender and recipient the proxy
 * passes. Efficiency = end-to-end per-core rate (1 / spimwall CPU s per message) /
 * (1 / (parse time + scan time per message)).
 *
 * JSON goes to stdout, one object per line; text for humans to stderr. Exit status 0 when every
 * case was ok, 1 otherwise or on a setup error, 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "bench/lib/benchutil.h"
#include "bench/lib/corpus.h"
#include "bench/lib/netbench.h"
#include "matcher/hsdb.h"
#include "matcher/matcher.h"
#include "protocols/msnp/msnp_mime.h"
#include "protocols/msnp/msnp_parser.h"
#include "proxy/ruleload.h"

#define BM_PHASES 64
#define BM_TAG_LEN 19        /* C PP TTTTTTTTTTTTTTTT */
#define BM_CHUNK (64 * 1024) /* bytes of whole commands per write */
#define BM_IN_MAX (4u << 20) /* a sink connection's unparsed input */
#define BM_MAX_SESSIONS 1024
#define BM_MAX_ROUNDS 7
#define BM_HEADER "X-Bench: "

enum { CLS_PASS, CLS_TAG, CLS_DROP, CLS_N };
static const char cls_letter[CLS_N] = {'p', 't', 'd'};

/* --- delivery statistics (the sink's) ----------------------------------------------------- */

struct bm_phase {
    uint64_t msgs[CLS_N]; /* MSGs received, by the class in their X-Bench header */
    uint64_t tagged;      /* ... of which with X-Spam-Flag (tagged by the proxy) */
    uint64_t first_ns, last_ns;
    struct bench_hist lat; /* delivery latency, ns */
};

static struct bm_phase g_ph[BM_PHASES];
static uint64_t g_foreign; /* MSGs without a readable X-Bench header */

static const uint8_t *find_bytes(const uint8_t *h, size_t hl, const char *n, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++) {
        if (h[i] == (uint8_t)n[0] && memcmp(h + i + 1, n + 1, nl - 1) == 0)
            return h + i;
    }
    return NULL;
}

/* Records one MSG payload received by the sink. */
static void stats_record(const uint8_t *pay, size_t len, uint64_t now)
{
    /* the MIME headers end at the first blank line; the tag is among them */
    const uint8_t *end = find_bytes(pay, len, "\r\n\r\n", 4);
    size_t hl = end != NULL ? (size_t)(end - pay) : len;
    const uint8_t *t = find_bytes(pay, hl, BM_HEADER, sizeof(BM_HEADER) - 1);
    if (t == NULL || (size_t)(pay + hl - t) < sizeof(BM_HEADER) - 1 + BM_TAG_LEN) {
        g_foreign++;
        return;
    }
    const char *id = (const char *)t + sizeof(BM_HEADER) - 1;
    int cls = -1;
    for (int c = 0; c < CLS_N; c++) {
        if (id[0] == cls_letter[c])
            cls = c;
    }
    int p1 = bench_hexval(id[1]), p2 = bench_hexval(id[2]);
    uint64_t ts = 0;
    for (int i = 3; i < BM_TAG_LEN && cls >= 0; i++) {
        int v = bench_hexval(id[i]);
        if (v < 0)
            cls = -1;
        ts = ts << 4 | (uint64_t)(v < 0 ? 0 : v);
    }
    if (cls < 0 || p1 < 0 || p2 < 0 || p1 * 16 + p2 >= BM_PHASES) {
        g_foreign++;
        return;
    }
    struct bm_phase *ph = &g_ph[p1 * 16 + p2];
    ph->msgs[cls]++;
    if (find_bytes(pay, hl, "X-Spam-Flag:", 12) != NULL)
        ph->tagged++;
    if (ph->first_ns == 0)
        ph->first_ns = now;
    ph->last_ns = now;
    bench_hist_record(&ph->lat, now > ts ? now - ts : 0);
}

/* ============================================================================================ *
 * sink: a switchboard that answers USR and CAL and counts MSG
 * ============================================================================================ */

struct sconn {
    int fd;
    ev_io io;
    struct msnp_parser p;
    uint8_t *in;
    size_t in_len, in_cap;
    uint64_t in_base;
    char out[1024];
    size_t out_len;
};

static void sconn_free(struct ev_loop *loop, struct sconn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->fd);
    free(c->in);
    free(c);
}

static void sconn_reply(struct sconn *c, const struct msnp_event *ev)
{
    /* first argument token (after the trid) */
    const char *a = (const char *)ev->data + ev->args.pos;
    size_t al = 0;
    while (al < ev->args.len && a[al] != ' ')
        al++;
    if (al > 200)
        al = 200;
    int n = 0;
    size_t room = sizeof c->out - c->out_len;
    if (strcmp(ev->cmd, "USR") == 0)
        n = snprintf(c->out + c->out_len, room, "USR %u OK %.*s %.*s\r\n", ev->trid, (int)al, a,
                     (int)al, a);
    else if (strcmp(ev->cmd, "CAL") == 0)
        n = snprintf(c->out + c->out_len, room, "CAL %u RINGING 1\r\nJOI %.*s %.*s\r\n", ev->trid,
                     (int)al, a, (int)al, a);
    if (n > 0 && (size_t)n < room)
        c->out_len += (size_t)n;
    if (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w > 0) {
            memmove(c->out, c->out + w, c->out_len - (size_t)w);
            c->out_len -= (size_t)w;
        }
    }
}

static void sconn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sconn *c = w->data;
    (void)revents;
    for (int burst = 0; burst < 16; burst++) {
        if (c->in_cap - c->in_len < 65536) {
            if (c->in_cap >= BM_IN_MAX) {
                sconn_free(loop, c);
                return;
            }
            c->in_cap *= 2;
            uint8_t *nb = realloc(c->in, c->in_cap);
            if (nb == NULL) {
                sconn_free(loop, c);
                return;
            }
            c->in = nb;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            sconn_free(loop, c);
            return;
        }
        if (n == -1)
            return;
        c->in_len += (size_t)n;
        uint64_t now = bench_now_ns();
        struct msnp_event ev;
        int rc;
        for (;;) {
            uint64_t keep = msnp_parser_keep(&c->p);
            size_t skip = (size_t)(keep - c->in_base);
            rc = msnp_parse(&c->p, c->in + skip, c->in_len - skip, keep, &ev);
            if (rc != SW_OK)
                break;
            if (strcmp(ev.cmd, "MSG") == 0 && ev.has_payload)
                stats_record(ev.data + ev.payload.pos, ev.payload.len, now);
            else if (ev.has_trid)
                sconn_reply(c, &ev);
        }
        if (rc == SW_ERROR) {
            fprintf(stderr, "bench-msnp sink: framing error: %s\n", c->p.err);
            sconn_free(loop, c);
            return;
        }
        uint64_t keep = msnp_parser_keep(&c->p);
        size_t drop = (size_t)(keep - c->in_base);
        memmove(c->in, c->in + drop, c->in_len - drop);
        c->in_len -= drop;
        c->in_base = keep;
        if ((size_t)n < c->in_cap / 2)
            break;
    }
}

static void sink_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sconn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->in_cap = 1u << 17;
        c->in = bench_xmalloc(c->in_cap);
        struct msnp_limits lim;
        msnp_limits_default(&lim);
        lim.payload_max = 1u << 20;
        (void)msnp_parser_init(&c->p, MSNP_DIR_C2S, &lim);
        ev_io_init(&c->io, sconn_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
    }
}

/* ============================================================================================ *
 * traffic
 * ============================================================================================ */

struct ring {
    char *buf;
    size_t len, n;
    size_t *off;     /* off[i]: start of command i; off[n] == len */
    size_t *tag_pos; /* offset of the X-Bench value of command i */
    size_t *body_off, *body_len;
    uint8_t *cls;
};

struct opts {
    int sink_port, proxy_port;
    pid_t sw_pid;
    const char *conf;
    unsigned sessions;
    uint64_t messages, lat_messages;
    double lat_rate;
    size_t size, ring;
    double spim_share, tag_share;
    unsigned rounds, parse_reps;
    double stall_s;
    uint64_t seed;
};

struct traffic {
    struct matcher *m;
    struct matcher_ctx *ctx;
    struct ring *rings;
    uint64_t ring_cls[CLS_N];
};

static void passport(unsigned i, char *out, size_t cap)
{
    snprintf(out, cap, "user%u@bench.example", i);
}

static int classify(struct traffic *t, const char *sender, const char *recipient, const char *body,
                    size_t len, struct verdict *v)
{
    struct matcher_msg mm = {
        .sender = sender,
        .sender_len = strlen(sender),
        .recipient = recipient,
        .recipient_len = strlen(recipient),
        .body = body,
        .body_len = len,
        .ip = "127.0.0.1",
        .ip_len = 9,
        .now_ms = 1700000000000ull,
    };
    struct sw_err err;
    if (matcher_classify(t->ctx, t->m, NULL, &mm, v, &err) != SW_OK) {
        fprintf(stderr, "bench-msnp: classify: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int traffic_build(struct traffic *t, const struct opts *o)
{
    size_t n_rules = 0;
    t->m = bench_matcher_load("bench-msnp", o->conf, &n_rules);
    t->ctx = matcher_ctx_new();
    if (t->m == NULL || t->ctx == NULL)
        return -1;

    /* pools of corpus bodies by verdict; spim over-represented so that every pool fills */
    struct corpus_config cc;
    corpus_config_defaults(&cc);
    cc.messages = 20000;
    cc.msg_bytes = o->size;
    cc.spim_share = 0.3;
    cc.seed = o->seed;
    struct corpus *corpus = corpus_new(&cc);
    if (corpus == NULL)
        return -1;
    size_t *pool[CLS_N], npool[CLS_N] = {0};
    for (int c = 0; c < CLS_N; c++)
        pool[c] = bench_xmalloc(corpus->n * sizeof *pool[c]);
    char sender[64], recipient[64];
    passport(0, sender, sizeof sender);
    passport(1, recipient, sizeof recipient);
    for (size_t i = 0; i < corpus->n; i++) {
        const struct corpus_msg *m = &corpus->msgs[i];
        struct verdict v;
        if (classify(t, sender, recipient, m->body, m->body_len, &v) != 0)
            return -1;
        if (m->spim && v.action == VERDICT_DROP)
            pool[CLS_DROP][npool[CLS_DROP]++] = i;
        else if (m->spim && v.action == VERDICT_TAG)
            pool[CLS_TAG][npool[CLS_TAG]++] = i;
        else if (!m->spim && v.action == VERDICT_PASS)
            pool[CLS_PASS][npool[CLS_PASS]++] = i;
    }
    if (npool[CLS_PASS] == 0 || (npool[CLS_DROP] == 0 && o->spim_share > 0) ||
        (npool[CLS_TAG] == 0 && o->tag_share > 0)) {
        fprintf(stderr, "bench-msnp: the rules leave a verdict class empty\n");
        return -1;
    }

    struct bench_rng rng;
    bench_rng_seed(&rng, o->seed + 11);
    t->rings = calloc(o->sessions, sizeof *t->rings);
    if (t->rings == NULL)
        return -1;
    for (unsigned s = 0; s < o->sessions; s++) {
        struct ring *r = &t->rings[s];
        size_t cap = 0;
        r->n = o->ring;
        r->off = bench_xmalloc((r->n + 1) * sizeof *r->off);
        r->tag_pos = bench_xmalloc(r->n * sizeof *r->tag_pos);
        r->body_off = bench_xmalloc(r->n * sizeof *r->body_off);
        r->body_len = bench_xmalloc(r->n * sizeof *r->body_len);
        r->cls = bench_xmalloc(r->n);
        for (size_t i = 0; i < r->n; i++) {
            double u = bench_rng_unit(&rng);
            int c = u < o->spim_share                  ? CLS_DROP
                    : u < o->spim_share + o->tag_share ? CLS_TAG
                                                       : CLS_PASS;
            const struct corpus_msg *m = &corpus->msgs[pool[c][bench_rng_below(&rng, npool[c])]];
            r->cls[i] = (uint8_t)c;
            t->ring_cls[c]++;
            char head[320], tag[BM_TAG_LEN + 1];
            memset(tag, '0', BM_TAG_LEN);
            tag[BM_TAG_LEN] = '\0';
            tag[0] = cls_letter[c];
            int hn = snprintf(head, sizeof head,
                              "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                              "X-MMS-IM-Format: FN=Segoe%%20UI; EF=; CO=0; CS=0; PF=0\r\n"
                              "%s%s\r\n\r\n",
                              BM_HEADER, tag);
            size_t plen = (size_t)hn + m->body_len;
            char line[64];
            int ln = snprintf(line, sizeof line, "MSG %zu U %zu\r\n", i % 100000 + 1, plen);
            r->off[i] = r->len;
            bench_buf_put(&r->buf, &r->len, &cap, line, (size_t)ln);
            r->tag_pos[i] = r->len + (size_t)hn - 4 - BM_TAG_LEN;
            bench_buf_put(&r->buf, &r->len, &cap, head, (size_t)hn);
            r->body_off[i] = r->len;
            r->body_len[i] = m->body_len;
            bench_buf_put(&r->buf, &r->len, &cap, m->body, m->body_len);
        }
        r->off[r->n] = r->len;
    }
    for (int c = 0; c < CLS_N; c++)
        free(pool[c]);
    corpus_free(corpus);
    fprintf(stderr,
            "bench-msnp: %zu rules; ring of %zu messages per session, %.0f bytes on average\n",
            n_rules, o->ring,
            (double)t->rings[0].len / (double)(t->rings[0].n > 0 ? t->rings[0].n : 1));
    return 0;
}

static void ring_stamp(struct ring *r, size_t i, unsigned phase, uint64_t ts)
{
    bench_stamp_hex(r->buf + r->tag_pos[i] + 1, phase, ts);
}

/* --- parse-only and scan-only ------------------------------------------------------------- */

/* Frames the sessions' command streams (rings cycled up to `messages`) in 16 KiB pieces and
 * parses the MIME of every MSG payload. Returns CPU seconds, or -1 on a framing error. */
static double parse_only(struct traffic *t, const struct opts *o, uint64_t messages)
{
    struct msnp_parser p;
    struct msnp_event ev;
    static struct msnp_mime mime;
    struct bench_timer tm;
    uint64_t n = 0, sink = 0;
    bench_timer_start(&tm);
    for (unsigned s = 0; n < messages; s = (s + 1) % o->sessions) {
        const struct ring *r = &t->rings[s];
        (void)msnp_parser_init(&p, MSNP_DIR_C2S, NULL);
        size_t fed = 0;
        while (fed < r->len && n < messages) {
            fed = fed + 16384 < r->len ? fed + 16384 : r->len;
            int rc;
            for (;;) {
                uint64_t keep = msnp_parser_keep(&p);
                rc = msnp_parse(&p, (const uint8_t *)r->buf + keep, fed - (size_t)keep, keep, &ev);
                if (rc != SW_OK)
                    break;
                if (strcmp(ev.cmd, "MSG") == 0 && ev.has_payload &&
                    msnp_mime_parse(ev.data + ev.payload.pos, ev.payload.len, NULL, &mime) ==
                        SW_OK) {
                    sink += mime.body_len;
                    n++;
                }
            }
            if (rc == SW_ERROR) {
                fprintf(stderr, "bench-msnp: parse-only: %s\n", p.err);
                return -1;
            }
        }
    }
    bench_timer_stop(&tm);
    if (sink == 0)
        return -1;
    return tm.cpu_s;
}

/* matcher_classify of the same bodies, as the proxy calls it. Returns CPU seconds. */
static double scan_only(struct traffic *t, const struct opts *o, uint64_t messages,
                        uint64_t *mismatch)
{
    struct bench_timer tm;
    uint64_t n = 0;
    char sender[64], recipient[64];
    bench_timer_start(&tm);
    for (unsigned s = 0; n < messages; s = (s + 1) % o->sessions) {
        const struct ring *r = &t->rings[s];
        passport(s, sender, sizeof sender);
        passport((s + 1) % o->sessions, recipient, sizeof recipient);
        for (size_t i = 0; i < r->n && n < messages; i++, n++) {
            struct verdict v;
            if (classify(t, sender, recipient, r->buf + r->body_off[i], r->body_len[i], &v) != 0)
                return -1;
            int want = v.action == VERDICT_DROP  ? CLS_DROP
                       : v.action == VERDICT_TAG ? CLS_TAG
                                                 : CLS_PASS;
            if (want != r->cls[i])
                (*mismatch)++;
        }
    }
    bench_timer_stop(&tm);
    return tm.cpu_s;
}

/* ============================================================================================ *
 * load generator
 * ============================================================================================ */

enum sess_state { S_CONNECTING, S_USR, S_CAL, S_READY, S_DEAD };

struct sess {
    struct gen *g;
    unsigned idx;
    int fd;
    ev_io io;
    enum sess_state st;
    struct ring *r;
    size_t next;                /* next ring message */
    uint64_t left;              /* messages still to send in this phase */
    size_t w_from, w_to, w_off; /* the chunk being written: ring bytes [w_from, w_to), w_off done */
    char in[4096];
    size_t in_len;
};

struct gen {
    struct ev_loop *loop;
    struct sess *s;
    unsigned n, ready, dead;
    unsigned phase;
    bool paced;
    uint64_t paced_total, paced_sent, paced_t0;
    double rate;
    unsigned rr;
};

static void sess_kill(struct sess *ss)
{
    if (ss->st == S_DEAD)
        return;
    ev_io_stop(ss->g->loop, &ss->io);
    close(ss->fd);
    ss->st = S_DEAD;
    ss->g->dead++;
}

static int sess_send_ctl(struct sess *ss, const char *s)
{
    size_t n = strlen(s);
    return send(ss->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Picks the next chunk of whole ring messages (at most `max` of them) and stamps them. */
static bool sess_next_chunk(struct sess *ss, uint64_t max)
{
    struct ring *r = ss->r;
    if (ss->left == 0 || max == 0)
        return false;
    if (ss->next == r->n)
        ss->next = 0;
    size_t i = ss->next;
    uint64_t ts = bench_now_ns();
    size_t k = 0;
    while (i + k < r->n && k < ss->left && k < max &&
           (k == 0 || r->off[i + k + 1] - r->off[i] <= BM_CHUNK)) {
        ring_stamp(r, i + k, ss->g->phase, ts);
        k++;
    }
    ss->w_from = r->off[i];
    ss->w_to = r->off[i + k];
    ss->w_off = 0;
    ss->next = i + k;
    ss->left -= k;
    return true;
}

/* Writes what it can; returns -1 on error, 1 if the socket is full, 0 when the chunk is done. */
static int sess_write(struct sess *ss)
{
    while (ss->w_from + ss->w_off < ss->w_to) {
        ssize_t n = send(ss->fd, ss->r->buf + ss->w_from + ss->w_off,
                         ss->w_to - ss->w_from - ss->w_off, MSG_NOSIGNAL);
        if (n > 0) {
            ss->w_off += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return 1;
        return -1;
    }
    return 0;
}

static void sess_pump(struct sess *ss)
{
    for (;;) {
        int rc = sess_write(ss);
        if (rc < 0) {
            sess_kill(ss);
            return;
        }
        if (rc == 1) {
            bench_io_want(ss->g->loop, &ss->io, EV_READ | EV_WRITE);
            return;
        }
        if (ss->g->paced || !sess_next_chunk(ss, UINT64_MAX)) {
            bench_io_want(ss->g->loop, &ss->io, EV_READ);
            return;
        }
    }
}

/* Handshake replies: lines only (USR ... OK, CAL ... RINGING, JOI). */
static void sess_read(struct sess *ss)
{
    for (;;) {
        ssize_t n = recv(ss->fd, ss->in + ss->in_len, sizeof ss->in - ss->in_len, 0);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            sess_kill(ss);
            return;
        }
        if (n == -1)
            return;
        ss->in_len += (size_t)n;
        char *nl;
        while ((nl = memchr(ss->in, '\n', ss->in_len)) != NULL) {
            size_t ll = (size_t)(nl - ss->in) + 1;
            if (ss->st == S_USR && ll > 4 && memcmp(ss->in, "USR ", 4) == 0) {
                char cal[96], peer[64];
                passport((ss->idx + 1) % ss->g->n, peer, sizeof peer);
                snprintf(cal, sizeof cal, "CAL 2 %s\r\n", peer);
                if (sess_send_ctl(ss, cal) != 0) {
                    sess_kill(ss);
                    return;
                }
                ss->st = S_CAL;
            } else if (ss->st == S_CAL && ll > 4 && memcmp(ss->in, "JOI ", 4) == 0) {
                ss->st = S_READY;
                ss->g->ready++;
            } else if (ss->in[0] >= '0' && ss->in[0] <= '9') {
                fprintf(stderr, "bench-msnp: session %u got an error: %.*s", ss->idx, (int)ll,
                        ss->in);
                sess_kill(ss);
                return;
            }
            memmove(ss->in, ss->in + ll, ss->in_len - ll);
            ss->in_len -= ll;
        }
        if (ss->in_len == sizeof ss->in) {
            sess_kill(ss);
            return;
        }
    }
}

static void sess_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sess *ss = w->data;
    (void)loop;
    if (ss->st == S_CONNECTING && (revents & EV_WRITE)) {
        int err = 0;
        socklen_t el = sizeof err;
        char usr[128], me[64];
        passport(ss->idx, me, sizeof me);
        snprintf(usr, sizeof usr, "USR 1 %s %u.%u.bench\r\n", me, ss->idx, 4242u);
        if (getsockopt(ss->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 || err != 0 ||
            sess_send_ctl(ss, usr) != 0) {
            sess_kill(ss);
            return;
        }
        ss->st = S_USR;
        bench_io_want(ss->g->loop, &ss->io, EV_READ);
        return;
    }
    if (revents & EV_READ)
        sess_read(ss);
    if (ss->st == S_READY && (revents & EV_WRITE))
        sess_pump(ss);
}

static void wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop for up to secs (or until ev_break). */
static void run_for(struct gen *g, double secs)
{
    ev_timer t;
    ev_timer_init(&t, wait_cb, secs, 0);
    ev_timer_start(g->loop, &t);
    ev_run(g->loop, 0);
    ev_timer_stop(g->loop, &t);
}

static int gen_login(struct gen *g, int port, struct traffic *t, unsigned n)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g->n = n;
    g->ready = g->dead = 0;
    g->s = calloc(n, sizeof *g->s);
    if (g->s == NULL)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct sess *ss = &g->s[i];
        ss->g = g;
        ss->idx = i;
        ss->r = &t->rings[i];
        ss->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (ss->fd == -1)
            return -1;
        (void)setsockopt(ss->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(ss->fd, (struct sockaddr *)&sin, sizeof sin) == -1 && errno != EINPROGRESS) {
            close(ss->fd);
            ss->st = S_DEAD;
            g->dead++;
            continue;
        }
        ss->st = S_CONNECTING;
        ev_io_init(&ss->io, sess_cb, ss->fd, EV_WRITE);
        ss->io.data = ss;
        ev_io_start(g->loop, &ss->io);
    }
    double t0 = bench_wall_now();
    while (g->ready + g->dead < n && bench_wall_now() - t0 < 10)
        run_for(g, 0.01);
    return g->ready == n ? 0 : -1;
}

static void gen_close(struct gen *g)
{
    for (unsigned i = 0; i < g->n; i++)
        sess_kill(&g->s[i]);
    free(g->s);
    g->s = NULL;
    run_for(g, 0.05);
}

static void pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct gen *g = w->data;
    (void)loop;
    (void)revents;
    uint64_t due = (uint64_t)((double)(bench_now_ns() - g->paced_t0) / 1e9 * g->rate);
    if (due > g->paced_total)
        due = g->paced_total;
    for (unsigned tries = 0; g->paced_sent < due && tries < 4 * g->n; tries++) {
        struct sess *ss = &g->s[g->rr++ % g->n];
        if (ss->st != S_READY || ss->left == 0 || ss->w_from + ss->w_off < ss->w_to)
            continue;
        if (sess_next_chunk(ss, 1)) {
            g->paced_sent++;
            sess_pump(ss);
        }
    }
}

struct phase_result {
    uint64_t sent[CLS_N], recv[CLS_N], tagged;
    double msgs_per_s, sw_cpu_s, p50_us, p99_us;
    bool ok;
    char why[160];
};

/* One phase on a logged-in generator: total messages, flat out (rate 0) or paced. */
static void gen_phase(struct gen *g, const struct opts *o, bool proxy, uint64_t total, double rate,
                      unsigned phase, struct phase_result *res)
{
    memset(res, 0, sizeof *res);
    memset(&g_ph[phase], 0, sizeof g_ph[phase]);
    g->phase = phase;
    g->paced = rate > 0;
    uint64_t expect = 0;
    for (unsigned i = 0; i < g->n; i++) {
        struct sess *ss = &g->s[i];
        ss->left = total / g->n + (i < total % g->n ? 1 : 0);
        /* what this session will send, by class, from where its ring stands */
        size_t k = ss->next;
        for (uint64_t m = 0; m < ss->left; m++, k++) {
            if (k == ss->r->n)
                k = 0;
            res->sent[ss->r->cls[k]]++;
        }
    }
    expect = proxy ? res->sent[CLS_PASS] + res->sent[CLS_TAG] : total;
    double cpu0 = bench_proc_cpu_s(o->sw_pid);
    uint64_t t0 = bench_now_ns();
    ev_timer pace;
    if (g->paced) {
        g->paced_total = total;
        g->paced_sent = 0;
        g->paced_t0 = t0;
        g->rate = rate;
        ev_timer_init(&pace, pace_cb, 0.001, 0.001);
        pace.data = g;
        ev_timer_start(g->loop, &pace);
    } else {
        for (unsigned i = 0; i < g->n; i++) {
            if (g->s[i].st == S_READY && sess_next_chunk(&g->s[i], UINT64_MAX))
                sess_pump(&g->s[i]);
        }
    }
    uint64_t last_count = 0;
    double last_progress = bench_wall_now();
    for (;;) {
        run_for(g, 0.005);
        struct bm_phase *ph = &g_ph[phase];
        uint64_t got = ph->msgs[CLS_PASS] + ph->msgs[CLS_TAG] + ph->msgs[CLS_DROP];
        if (got != last_count) {
            last_count = got;
            last_progress = bench_wall_now();
        }
        if (got >= expect && (!g->paced || g->paced_sent == total)) {
            run_for(g, proxy ? 0.05 : 0.0); /* a stray drop-level message would show now */
            break;
        }
        if (bench_wall_now() - last_progress > o->stall_s)
            break;
    }
    if (g->paced)
        ev_timer_stop(g->loop, &pace);
    double cpu1 = bench_proc_cpu_s(o->sw_pid);
    struct bm_phase *ph = &g_ph[phase];
    uint64_t got = 0;
    for (int c = 0; c < CLS_N; c++) {
        res->recv[c] = ph->msgs[c];
        got += ph->msgs[c];
    }
    res->tagged = ph->tagged;
    double span = ph->last_ns > t0 ? (double)(ph->last_ns - t0) / 1e9 : NAN;
    res->msgs_per_s = (double)got / span;
    res->sw_cpu_s = proxy ? cpu1 - cpu0 : NAN;
    res->p50_us = bench_hist_quantile(&ph->lat, 0.5) / 1e3;
    res->p99_us = bench_hist_quantile(&ph->lat, 0.99) / 1e3;
    res->ok = true;
    if (proxy) {
        if (res->recv[CLS_PASS] != res->sent[CLS_PASS] || res->recv[CLS_TAG] != res->sent[CLS_TAG])
            snprintf(
                res->why, sizeof res->why, "ham lost: pass %llu/%llu tag %llu/%llu",
                (unsigned long long)res->recv[CLS_PASS], (unsigned long long)res->sent[CLS_PASS],
                (unsigned long long)res->recv[CLS_TAG], (unsigned long long)res->sent[CLS_TAG]);
        else if (res->recv[CLS_DROP] != 0)
            snprintf(res->why, sizeof res->why, "%llu drop-level messages arrived",
                     (unsigned long long)res->recv[CLS_DROP]);
        else if (res->tagged != res->sent[CLS_TAG])
            snprintf(res->why, sizeof res->why, "tagged %llu of %llu tag-level messages",
                     (unsigned long long)res->tagged, (unsigned long long)res->sent[CLS_TAG]);
    } else if (got != total || res->tagged != 0) {
        snprintf(res->why, sizeof res->why, "direct: %llu of %llu arrived", (unsigned long long)got,
                 (unsigned long long)total);
    }
    if (res->why[0] != '\0' || g->dead > 0) {
        res->ok = false;
        if (res->why[0] == '\0')
            snprintf(res->why, sizeof res->why, "%u sessions died", g->dead);
    }
}

static double median_of(double *v, unsigned n)
{
    return bench_median(v, n);
}

static void usage_run(void)
{
    fprintf(stderr,
            "usage: bench-msnp run --sink-port P --proxy PORT --sw-pid PID [--conf DIR]\n"
            "       [--sessions 16] [--messages 300000] [--lat-messages 20000] [--lat-rate 10000]\n"
            "       [--size 200] [--ring 1024] [--spim-share 0.1] [--tag-share 0.02]\n"
            "       [--rounds 3] [--parse-reps 3] [--seed 1] [--quick]\n");
}

static int run_main(int argc, char **argv)
{
    struct opts o = {
        .conf = "conf",
        .sessions = 16,
        .messages = 300000,
        .lat_messages = 20000,
        .lat_rate = 10000,
        .size = 200,
        .ring = 1024,
        .spim_share = 0.1,
        .tag_share = 0.02,
        .rounds = 3,
        .parse_reps = 3,
        .stall_s = 3,
        .seed = 1,
    };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        bool ok = true;
        if (strcmp(a, "--quick") == 0) {
            o.sessions = 4;
            o.messages = 20000;
            o.lat_messages = 1000;
            o.lat_rate = 2000;
            o.ring = 256;
            o.rounds = 1;
            o.parse_reps = 1;
            continue;
        }
        if (v == NULL) {
            usage_run();
            return 2;
        }
        i++;
        if (strcmp(a, "--sink-port") == 0 && (ok = bench_parse_u64(v, 1, 65535, &u)))
            o.sink_port = (int)u;
        else if (strcmp(a, "--proxy") == 0 && (ok = bench_parse_u64(v, 1, 65535, &u)))
            o.proxy_port = (int)u;
        else if (strcmp(a, "--sw-pid") == 0 && (ok = bench_parse_u64(v, 1, INT32_MAX, &u)))
            o.sw_pid = (pid_t)u;
        else if (strcmp(a, "--conf") == 0)
            o.conf = v;
        else if (strcmp(a, "--sessions") == 0 && (ok = bench_parse_u64(v, 1, BM_MAX_SESSIONS, &u)))
            o.sessions = (unsigned)u;
        else if (strcmp(a, "--messages") == 0 && (ok = bench_parse_u64(v, 1, 1u << 30, &u)))
            o.messages = u;
        else if (strcmp(a, "--lat-messages") == 0 && (ok = bench_parse_u64(v, 1, 1u << 30, &u)))
            o.lat_messages = u;
        else if (strcmp(a, "--lat-rate") == 0)
            ok = bench_parse_double(v, 1, 1e7, &o.lat_rate);
        else if (strcmp(a, "--size") == 0 && (ok = bench_parse_u64(v, 16, 1400, &u)))
            o.size = (size_t)u;
        else if (strcmp(a, "--ring") == 0 && (ok = bench_parse_u64(v, 1, 1u << 20, &u)))
            o.ring = (size_t)u;
        else if (strcmp(a, "--spim-share") == 0)
            ok = bench_parse_double(v, 0, 1, &o.spim_share);
        else if (strcmp(a, "--tag-share") == 0)
            ok = bench_parse_double(v, 0, 1, &o.tag_share);
        else if (strcmp(a, "--rounds") == 0 && (ok = bench_parse_u64(v, 1, BM_MAX_ROUNDS, &u)))
            o.rounds = (unsigned)u;
        else if (strcmp(a, "--parse-reps") == 0 && (ok = bench_parse_u64(v, 1, 99, &u)))
            o.parse_reps = (unsigned)u;
        else if (strcmp(a, "--seed") == 0)
            ok = bench_parse_u64(v, 0, UINT64_MAX, &o.seed);
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "bench-msnp: bad option %s %s\n", a, v);
            usage_run();
            return 2;
        }
    }
    if (o.sink_port == 0 || o.proxy_port == 0 || o.spim_share + o.tag_share > 1 ||
        o.rounds * 4 > BM_PHASES) {
        usage_run();
        return 2;
    }

    struct traffic t;
    memset(&t, 0, sizeof t);
    if (traffic_build(&t, &o) != 0)
        return 1;

    /* parse-only and scan-only over the same bytes and bodies */
    uint64_t pscan = o.messages < 50000 ? o.messages : 50000, mismatch = 0;
    double parse_s[99], scan_s[99];
    for (unsigned k = 0; k < o.parse_reps; k++) {
        parse_s[k] = parse_only(&t, &o, pscan);
        scan_s[k] = scan_only(&t, &o, pscan, &mismatch);
        if (parse_s[k] < 0 || scan_s[k] < 0)
            return 1;
    }
    double parse_us = median_of(parse_s, o.parse_reps) / (double)pscan * 1e6;
    double scan_us = median_of(scan_s, o.parse_reps) / (double)pscan * 1e6;
    printf("{\"bench\":\"msnp\",\"case\":\"parse_scan_only\",\"messages\":%llu,\"reps\":%u,"
           "\"parse_msgs_per_s\":%.0f,\"scan_msgs_per_s\":%.0f,\"parse_us_per_msg\":%.4f,"
           "\"scan_us_per_msg\":%.4f,\"verdict_mismatch\":%llu,\"ring_pass\":%llu,"
           "\"ring_tag\":%llu,\"ring_drop\":%llu}\n",
           (unsigned long long)pscan, o.parse_reps, 1e6 / parse_us, 1e6 / scan_us, parse_us,
           scan_us, (unsigned long long)mismatch, (unsigned long long)t.ring_cls[CLS_PASS],
           (unsigned long long)t.ring_cls[CLS_TAG], (unsigned long long)t.ring_cls[CLS_DROP]);
    fflush(stdout);

    signal(SIGPIPE, SIG_IGN);
    struct gen g;
    memset(&g, 0, sizeof g);
    g.loop = ev_default_loop(EVFLAG_AUTO);
    uint16_t sport;
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", o.sink_port);
    int lfd = bench_listen_on(hp, &sport);
    if (lfd == -1) {
        fprintf(stderr, "bench-msnp: cannot listen on %s: %s\n", hp, strerror(errno));
        return 1;
    }
    ev_io accept_io;
    ev_io_init(&accept_io, sink_accept_cb, lfd, EV_READ);
    ev_io_start(g.loop, &accept_io);

    /* rounds: paths interleaved; throughput then latency */
    enum { P_DIRECT, P_PROXY, P_N };
    static const char *const pname[P_N] = {"direct", "spimwall"};
    struct phase_result thr[P_N][BM_MAX_ROUNDS], lat[P_N][BM_MAX_ROUNDS];
    unsigned phase = 0;
    bool all_ok = true;
    for (unsigned r = 0; r < o.rounds; r++) {
        for (int p = 0; p < P_N; p++) {
            int port = p == P_DIRECT ? o.sink_port : o.proxy_port;
            if (gen_login(&g, port, &t, o.sessions) != 0) {
                fprintf(stderr, "bench-msnp: %s: %u of %u sessions logged in\n", pname[p], g.ready,
                        o.sessions);
                gen_close(&g);
                return 1;
            }
            gen_phase(&g, &o, p == P_PROXY, o.messages, 0, phase++, &thr[p][r]);
            gen_phase(&g, &o, p == P_PROXY, o.lat_messages, o.lat_rate, phase++, &lat[p][r]);
            gen_close(&g);
            fprintf(stderr, "bench-msnp: round %u %s: %.0f msg/s, p50 %.0f us%s%s\n", r + 1,
                    pname[p], thr[p][r].msgs_per_s, lat[p][r].p50_us,
                    thr[p][r].ok && lat[p][r].ok ? "" : ", NOT OK: ",
                    thr[p][r].ok ? lat[p][r].why : thr[p][r].why);
        }
    }

    /* one line per path and phase: medians over rounds, sums of counts */
    double sum_rate[P_N], cpu_per_msg = NAN, p50[P_N], p99[P_N];
    for (int p = 0; p < P_N; p++) {
        for (int ph = 0; ph < 2; ph++) {
            struct phase_result *rs = ph == 0 ? thr[p] : lat[p];
            double rate[BM_MAX_ROUNDS], cpu[BM_MAX_ROUNDS], q50[BM_MAX_ROUNDS], q99[BM_MAX_ROUNDS];
            uint64_t sent[CLS_N] = {0}, recv[CLS_N] = {0}, tagged = 0, sent_all = 0;
            bool ok = true;
            for (unsigned r = 0; r < o.rounds; r++) {
                uint64_t s_all = 0;
                for (int c = 0; c < CLS_N; c++) {
                    sent[c] += rs[r].sent[c];
                    recv[c] += rs[r].recv[c];
                    s_all += rs[r].sent[c];
                }
                sent_all += s_all;
                tagged += rs[r].tagged;
                rate[r] = rs[r].msgs_per_s;
                cpu[r] = rs[r].sw_cpu_s / (double)s_all;
                q50[r] = rs[r].p50_us;
                q99[r] = rs[r].p99_us;
                ok = ok && rs[r].ok;
            }
            all_ok = all_ok && ok;
            double mrate = median_of(rate, o.rounds), mcpu = median_of(cpu, o.rounds);
            double m50 = median_of(q50, o.rounds), m99 = median_of(q99, o.rounds);
            if (ph == 0) {
                sum_rate[p] = mrate;
                if (p == P_PROXY)
                    cpu_per_msg = mcpu;
            } else {
                p50[p] = m50;
                p99[p] = m99;
            }
            printf("{\"bench\":\"msnp\",\"path\":\"%s\",\"phase\":\"%s\",\"ok\":%s,"
                   "\"sessions\":%u,\"rounds\":%u,\"sent\":%llu,\"sent_pass\":%llu,"
                   "\"sent_tag_level\":%llu,\"sent_drop_level\":%llu,\"received_pass\":%llu,"
                   "\"received_tag_level\":%llu,\"received_drop_level\":%llu,"
                   "\"received_tagged\":%llu,\"msgs_per_s\":%.0f,\"p50_us\":%.1f,"
                   "\"p99_us\":%.1f",
                   pname[p], ph == 0 ? "throughput" : "latency", ok ? "true" : "false", o.sessions,
                   o.rounds, (unsigned long long)sent_all, (unsigned long long)sent[CLS_PASS],
                   (unsigned long long)sent[CLS_TAG], (unsigned long long)sent[CLS_DROP],
                   (unsigned long long)recv[CLS_PASS], (unsigned long long)recv[CLS_TAG],
                   (unsigned long long)recv[CLS_DROP], (unsigned long long)tagged, mrate, m50, m99);
            if (p == P_PROXY)
                printf(",\"sw_cpu_s_per_msg\":%.3g", mcpu);
            if (ph == 1)
                printf(",\"offered_rate\":%.0f", o.lat_rate);
            if (!ok) {
                for (unsigned r = 0; r < o.rounds; r++) {
                    if (!rs[r].ok) {
                        printf(",\"why\":\"%s\"", rs[r].why);
                        break;
                    }
                }
            }
            printf("}\n");
        }
    }
    double per_core = 1.0 / cpu_per_msg;
    double eff = (1.0 / cpu_per_msg) / (1.0 / ((parse_us + scan_us) / 1e6));
    printf("{\"bench\":\"msnp\",\"summary\":\"sink\",\"ok\":%s,\"msgs_per_s_direct\":%.0f,"
           "\"msgs_per_s_spimwall\":%.0f,\"sw_cpu_us_per_msg\":%.4g,"
           "\"sw_per_core_msgs_per_s\":%.0f,\"added_p50_us\":%.1f,\"added_p99_us\":%.1f,"
           "\"parse_us_per_msg\":%.4f,\"scan_us_per_msg\":%.4f,\"efficiency\":%.3f,"
           "\"efficiency_target\":0.7,\"per_core_target\":300000,\"meets_rate_target\":%s}\n",
           all_ok ? "true" : "false", sum_rate[P_DIRECT], sum_rate[P_PROXY], cpu_per_msg * 1e6,
           per_core, p50[P_PROXY] - p50[P_DIRECT], p99[P_PROXY] - p99[P_DIRECT], parse_us, scan_us,
           eff, per_core >= 300000 ? "true" : "false");
    if (g_foreign > 0)
        fprintf(stderr, "bench-msnp: %llu MSGs without a bench header reached the sink\n",
                (unsigned long long)g_foreign);
    ev_io_stop(g.loop, &accept_io);
    close(lfd);
    return all_ok && g_foreign == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "ports") == 0)
        return bench_ports_main("bench-msnp", argc - 2, argv + 2);
    fprintf(stderr, "usage: bench-msnp run ... | bench-msnp ports N\n");
    return 2;
}
