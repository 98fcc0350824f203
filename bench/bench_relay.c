/* bench-relay: relay throughput, added latency and idle memory of a TCP relay (spimwall's `tcp`
 * pass-through listener, HAProxy in TCP mode), measured side by side against the direct path.
 *
 * One libev program, three sub-commands:
 *
 *   bench-relay sink --listen 127.0.0.1:0 --port-file F --stats F [--cert C --key K]
 *       The far end. One port serves plain and TLS alike: a first byte of 0x16 (a TLS
 *       handshake record) starts a TLS server session, anything else is plain. The first
 *       application byte then selects the exchange:
 *         'T'  discard: read and count bytes (throughput)
 *         'E'  echo: send back every byte (request-response latency)
 *         'I'  idle: answer one 'K' (so the client knows both legs are up), then discard
 *       Bytes received are counted in a 64-bit counter in the shared file --stats, which the
 *       load generator maps: payload delivered to the sink, not merely written by the client.
 *
 *   bench-relay run --sink-stats F --direct PORT [--path NAME:PLAIN_PORT:TLS_PORT:PID]...
 *       The load generator. For each TLS setting (none = plain on both legs, both = TLS on both
 *       legs) and each mode it runs the direct path first, then every proxy path, and prints one
 *       JSON line per case:
 *         throughput  --conns connections write chunks of --chunk bytes for --duration seconds
 *                     after --warmup; Gbit/s of payload counted by the sink; CPU seconds per GB of
 *                     the proxy process (utime+stime from /proc/PID/stat, all threads); the
 *                     CPU share of the proxy, the load generator and the sink (--sink-pid),
 *                     to show which of them was the bottleneck
 *         latency     --lat-conns connections each do ping-pong of --msg bytes for
 *                     --lat-duration seconds, --lat-rounds times (paths interleaved, one merged
 *                     histogram per path); p50/p99/p999 of the round trip from a log-bucketed
 *                     histogram (1/64 relative error), and the same minus the direct path's
 *                     figures ("added")
 *         idle        --idle-conns connections are opened (TLS handshakes completed, both legs
 *                     up), then held; RSS per connection of the proxy = (VmRSS with the idle
 *                     sessions - VmRSS before) / N. Not run for the direct path.
 *       Throughput cases repeat --repeat times, paths interleaved, and report the median.
 *       Then one summary line per TLS setting and proxy path with the throughput ratio against
 *       --base (default haproxy) and the target.
 *
 *   bench-relay ports N
 *       Prints N distinct free TCP ports on 127.0.0.1 (for the script's configs).
 *
 * Exit status: 0 when every case ran with all its connections, 1 when one did not (its line
 * says "ok":false) or on a setup error, 2 on a usage error.
 *
 * JSON goes to stdout, one object per line; text for humans goes to stderr. TLS certificates are
 * not verified (the benchmark uses a throwaway self-signed one). scripts/bench-relay.sh starts
 * the sink and the proxies and runs all of this in one go.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/lib/benchutil.h"
#include "bench/lib/netbench.h"

#define PROTO_DISCARD 'T'
#define PROTO_ECHO 'E'
#define PROTO_IDLE 'I'
#define PROTO_IDLE_ACK 'K'

#define RELAY_MAX_PATHS 4
#define RELAY_NAME_MAX 32
#define RELAY_MAX_REPEAT 15
#define RELAY_STATS_SIZE 4096
/* Counters in the sink's shared stats file (uint64_t each). The session counts let the load
 * generator check that a proxy's upstream leg really was TLS (or plain) as configured: the sink
 * accepts both on one port, so a misconfigured leg would otherwise go unnoticed. */
enum { STAT_BYTES, STAT_PLAIN_SESSIONS, STAT_TLS_SESSIONS, STAT_COUNT };
/* Reads or writes per callback before yielding to other connections (fairness). */
#define RELAY_IO_BURST 32
#define RELAY_SINK_ECHO_BUF 16384
#define RELAY_DISCARD_BUF 65536

static volatile sig_atomic_t relay_stop_requested;

/* --- time ------------------------------------------------------------------------------------ */

static uint64_t relay_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void relay_sleep(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* --- /proc ------------------------------------------------------------------------------------ */

/* Resident set of process pid in KiB (VmRSS), or -1 if unreadable. */
static long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* --- transport: plain or TLS behind three calls --------------------------------------------- */

struct xconn {
    int fd;
    SSL *ssl;   /* NULL for plain */
    int wants;  /* EV_READ / EV_WRITE the last call that returned -1 waits for */
};

/* Reads up to len bytes. Returns >0 bytes read, 0 on orderly EOF, -1 when it would block
 * (x->wants says on what), -2 on error. */
static ssize_t x_read(struct xconn *x, void *buf, size_t len)
{
    if (x->ssl == NULL) {
        ssize_t n = recv(x->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            x->wants = EV_READ;
            return -1;
        }
        return -2;
    }
    int n = SSL_read(x->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(x->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        x->wants = EV_READ;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        x->wants = EV_WRITE;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return -2;
    }
}

/* Writes up to len bytes (TLS with partial writes enabled). Same returns as x_read except that
 * 0 is never returned. */
static ssize_t x_write(struct xconn *x, const void *buf, size_t len)
{
    if (x->ssl == NULL) {
        ssize_t n = send(x->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0)
            return n;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            x->wants = EV_WRITE;
            return -1;
        }
        return -2;
    }
    int n = SSL_write(x->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(x->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        x->wants = EV_READ;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        x->wants = EV_WRITE;
        return -1;
    default:
        ERR_clear_error();
        return -2;
    }
}

/* Drives the TLS handshake. Returns 1 when done, -1 when it would block, -2 on failure. */
static int x_handshake(struct xconn *x)
{
    int n = SSL_do_handshake(x->ssl);
    if (n == 1)
        return 1;
    switch (SSL_get_error(x->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        x->wants = EV_READ;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        x->wants = EV_WRITE;
        return -1;
    default:
        ERR_clear_error();
        return -2;
    }
}

static void x_close(struct xconn *x)
{
    if (x->ssl != NULL) {
        SSL_free(x->ssl);
        x->ssl = NULL;
    }
    if (x->fd != -1) {
        close(x->fd);
        x->fd = -1;
    }
}

/* Points w at events (EV_READ and/or EV_WRITE), restarting it only on a change. */
static void io_want(struct ev_loop *loop, ev_io *w, int events)
{
    if (events == 0)
        events = EV_READ;
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, w);
    ev_io_set(w, w->fd, events);
    ev_io_start(loop, w);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            fprintf(stderr, "bench-relay: setrlimit(NOFILE): %s\n", strerror(errno));
    }
}

static unsigned long nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return 0;
    return (unsigned long)rl.rlim_cur;
}

/* Common SSL_CTX settings: idle connections drop their record buffers (OpenSSL reallocates on
 * demand) and writes may be partial, as for a socket. */
static void tls_ctx_common(SSL_CTX *ctx)
{
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static void print_ssl_errors(const char *what)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "bench-relay: %s: %s\n", what, buf);
    }
}

/* ============================================================================================ *
 * sink
 * ============================================================================================ */

struct sink {
    struct ev_loop *loop;
    ev_io accept_io;
    ev_signal sig_term, sig_int;
    SSL_CTX *tls; /* NULL: plain only */
    uint64_t *stats; /* shared counters: STAT_* */
    uint64_t total;
    unsigned long conns, conns_total;
    unsigned char discard[RELAY_DISCARD_BUF];
};

/* Sink connection state:
 *
 *   DETECT --0x16--> HANDSHAKE --+
 *      |                         v
 *      +----other----------->  MODE --'T'--> DISCARD
 *                                  --'E'--> ECHO
 *                                  --'I'--> IDLE_ACK --> DISCARD
 */
enum sink_state { SK_DETECT, SK_HANDSHAKE, SK_MODE, SK_DISCARD, SK_ECHO, SK_IDLE_ACK };

struct sink_conn {
    struct sink *s;
    struct xconn x;
    ev_io io;
    enum sink_state st;
    unsigned char *echo_buf; /* ECHO only */
    size_t out_off, out_len;
};

static void sink_count(struct sink *s, size_t n)
{
    s->total += n;
    __atomic_store_n(&s->stats[STAT_BYTES], s->total, __ATOMIC_RELAXED);
}

static void sink_conn_free(struct sink_conn *c)
{
    ev_io_stop(c->s->loop, &c->io);
    x_close(&c->x);
    free(c->echo_buf);
    c->s->conns--;
    free(c);
}

/* Runs c as far as it goes. Returns 0 when it waits for c->x.wants, -1 when c is finished. */
static int sink_conn_step(struct sink_conn *c)
{
    struct sink *s = c->s;
    for (;;) {
        switch (c->st) {
        case SK_DETECT: {
            unsigned char b;
            ssize_t n = recv(c->x.fd, &b, 1, MSG_PEEK);
            if (n == 0)
                return -1;
            if (n == -1) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    c->x.wants = EV_READ;
                    return 0;
                }
                return -1;
            }
            if (b == 0x16 && s->tls != NULL) {
                c->x.ssl = SSL_new(s->tls);
                if (c->x.ssl == NULL || SSL_set_fd(c->x.ssl, c->x.fd) != 1)
                    return -1;
                SSL_set_accept_state(c->x.ssl);
                c->st = SK_HANDSHAKE;
            } else {
                c->st = SK_MODE;
            }
            break;
        }
        case SK_HANDSHAKE: {
            int r = x_handshake(&c->x);
            if (r == -1)
                return 0;
            if (r < 0)
                return -1;
            c->st = SK_MODE;
            break;
        }
        case SK_MODE: {
            unsigned char b;
            ssize_t n = x_read(&c->x, &b, 1);
            if (n == -1)
                return 0;
            if (n <= 0)
                return -1;
            sink_count(s, 1);
            /* single writer: a relaxed increment is enough for the reader */
            uint64_t *ctr = &s->stats[c->x.ssl != NULL ? STAT_TLS_SESSIONS : STAT_PLAIN_SESSIONS];
            __atomic_store_n(ctr, *ctr + 1, __ATOMIC_RELAXED);
            if (b == PROTO_DISCARD) {
                c->st = SK_DISCARD;
            } else if (b == PROTO_ECHO) {
                c->echo_buf = malloc(RELAY_SINK_ECHO_BUF);
                if (c->echo_buf == NULL)
                    return -1;
                c->st = SK_ECHO;
            } else if (b == PROTO_IDLE) {
                c->st = SK_IDLE_ACK;
            } else {
                return -1;
            }
            break;
        }
        case SK_IDLE_ACK: {
            static const unsigned char ack = PROTO_IDLE_ACK;
            ssize_t n = x_write(&c->x, &ack, 1);
            if (n == -1)
                return 0;
            if (n < 0)
                return -1;
            c->st = SK_DISCARD;
            break;
        }
        case SK_DISCARD:
            for (unsigned i = 0; i < RELAY_IO_BURST; i++) {
                ssize_t n = x_read(&c->x, s->discard, sizeof s->discard);
                if (n == -1)
                    return 0;
                if (n <= 0)
                    return -1;
                sink_count(s, (size_t)n);
            }
            c->x.wants = EV_READ;
            return 0;
        case SK_ECHO:
            for (unsigned i = 0; i < RELAY_IO_BURST; i++) {
                if (c->out_off < c->out_len) {
                    ssize_t n = x_write(&c->x, c->echo_buf + c->out_off, c->out_len - c->out_off);
                    if (n == -1)
                        return 0;
                    if (n < 0)
                        return -1;
                    c->out_off += (size_t)n;
                    continue;
                }
                ssize_t n = x_read(&c->x, c->echo_buf, RELAY_SINK_ECHO_BUF);
                if (n == -1)
                    return 0;
                if (n <= 0)
                    return -1;
                sink_count(s, (size_t)n);
                c->out_off = 0;
                c->out_len = (size_t)n;
            }
            c->x.wants = c->out_off < c->out_len ? EV_WRITE : EV_READ;
            return 0;
        }
    }
}

static void sink_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sink_conn *c = w->data;
    c->x.wants = 0;
    if (sink_conn_step(c) < 0) {
        sink_conn_free(c);
        return;
    }
    io_want(loop, &c->io, c->x.wants);
}

static void sink_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sink *s = w->data;
    for (unsigned i = 0; i < 256; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                fprintf(stderr, "bench-relay sink: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sink_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->s = s;
        c->x.fd = fd;
        c->st = SK_DETECT;
        s->conns++;
        s->conns_total++;
        ev_io_init(&c->io, sink_conn_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
    }
}

static void sink_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int sink_main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:0", *port_file = NULL, *stats = NULL;
    const char *cert = NULL, *key = NULL;
    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            goto usage;
        if (strcmp(a, "--listen") == 0)
            listen_at = v;
        else if (strcmp(a, "--port-file") == 0)
            port_file = v;
        else if (strcmp(a, "--stats") == 0)
            stats = v;
        else if (strcmp(a, "--cert") == 0)
            cert = v;
        else if (strcmp(a, "--key") == 0)
            key = v;
        else
            goto usage;
    }
    if (stats == NULL || (cert == NULL) != (key == NULL))
        goto usage;

    struct sockaddr_in sin;
    if (!bench_parse_hostport(listen_at, &sin)) {
        fprintf(stderr, "bench-relay sink: bad --listen %s\n", listen_at);
        return 2;
    }
    raise_nofile();

    struct sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return 1;
    int sfd = open(stats, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (sfd == -1 || ftruncate(sfd, RELAY_STATS_SIZE) == -1) {
        fprintf(stderr, "bench-relay sink: %s: %s\n", stats, strerror(errno));
        return 1;
    }
    void *map = mmap(NULL, RELAY_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    close(sfd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "bench-relay sink: mmap %s: %s\n", stats, strerror(errno));
        return 1;
    }
    s->stats = map;

    if (cert != NULL) {
        s->tls = SSL_CTX_new(TLS_server_method());
        if (s->tls == NULL || SSL_CTX_use_certificate_chain_file(s->tls, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(s->tls, key, SSL_FILETYPE_PEM) != 1) {
            print_ssl_errors("sink certificate");
            return 1;
        }
        tls_ctx_common(s->tls);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd == -1 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1 || listen(lfd, 65535) == -1) {
        fprintf(stderr, "bench-relay sink: listen %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    socklen_t slen = sizeof sin;
    if (getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
        return 1;
    char portbuf[32];
    snprintf(portbuf, sizeof portbuf, "%u\n", (unsigned)ntohs(sin.sin_port));
    if (port_file != NULL) {
        if (write_file_atomic(port_file, portbuf) == -1) {
            fprintf(stderr, "bench-relay sink: %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    } else {
        fputs(portbuf, stdout);
        fflush(stdout);
    }

    s->loop = ev_default_loop(EVFLAG_AUTO);
    ev_io_init(&s->accept_io, sink_accept_cb, lfd, EV_READ);
    s->accept_io.data = s;
    ev_io_start(s->loop, &s->accept_io);
    ev_signal_init(&s->sig_term, sink_signal_cb, SIGTERM);
    ev_signal_init(&s->sig_int, sink_signal_cb, SIGINT);
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    fprintf(stderr, "bench-relay sink: listening on 127.0.0.1:%u (%s)\n",
            (unsigned)ntohs(sin.sin_port), s->tls != NULL ? "plain and TLS" : "plain");
    ev_run(s->loop, 0);
    fprintf(stderr, "bench-relay sink: stopping; %lu connections, %llu bytes\n", s->conns_total,
            (unsigned long long)s->total);
    /* Exiting frees the live connections with the process. */
    close(lfd);
    return 0;

usage:
    fprintf(stderr, "usage: bench-relay sink --stats FILE [--listen 127.0.0.1:0] "
                    "[--port-file FILE] [--cert PEM --key PEM]\n");
    return 2;
}

/* ============================================================================================ *
 * load generator
 * ============================================================================================ */

enum relay_mode { MODE_IDLE = 0, MODE_LATENCY, MODE_THROUGHPUT, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"idle", "latency", "throughput"};

struct relay_path {
    char name[RELAY_NAME_MAX];
    uint16_t port[2]; /* [0] plain, [1] TLS; 0 = not offered */
    pid_t pid;        /* process to measure; 0 = none (direct) */
};

struct relay_opts {
    struct sockaddr_in host;
    const uint64_t *sink_stats; /* STAT_* */
    struct relay_path paths[RELAY_MAX_PATHS]; /* [0] is direct */
    unsigned n_paths;
    bool tls_set[2];
    bool mode_set[MODE_COUNT];
    pid_t sink_pid; /* 0 = unknown */
    unsigned conns, lat_conns, idle_conns, inflight, repeat, lat_rounds, workers;
    double duration, warmup, lat_duration, settle, gap, connect_timeout, idle_timeout;
    size_t chunk, msg;
    const char *base;
    const char *server_name;
};

enum lg_state { LC_CONNECTING, LC_HANDSHAKE, LC_RUN, LC_IDLE, LC_DEAD };

struct lg_case;

struct lg_conn {
    struct lg_case *k;
    struct xconn x;
    ev_io io;
    enum lg_state st;
    bool counted_ready;
    /* current output buffer and how much of it went out */
    const unsigned char *wbuf;
    size_t wlen, off;
    /* latency: waiting for the echo of the current message */
    bool reading;
    size_t got;
    uint64_t t_send;
};

enum lg_phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_SETTLE, PH_DONE };

/* One case: one path, one TLS setting, one mode. */
struct lg_case {
    const struct relay_opts *o;
    struct ev_loop *loop;
    SSL_CTX *tls; /* NULL for plain */
    const struct relay_path *path;
    enum relay_mode mode;
    struct sockaddr_in addr;
    struct lg_conn *cs;
    unsigned n, started, inflight, ready, failed, dropped;
    enum lg_phase phase;
    bool filling;
    ev_timer timer;
    bool measuring;
    /* buffers: [0] is the hello byte, followed by the payload */
    unsigned char *out;
    size_t payload;
    unsigned char scratch[RELAY_SINK_ECHO_BUF];
    /* results */
    double t0, t1, cpu0, cpu1, self0, self1, sink0, sink1;
    uint64_t bytes0, bytes1;
    long rss0, rss1;
    double setup_s;
    uint64_t exchanges;
    struct bench_hist *hist;
    bool timed_out;
};

static uint64_t sink_stat(const struct relay_opts *o, unsigned which)
{
    return __atomic_load_n(&o->sink_stats[which], __ATOMIC_RELAXED);
}

static void lg_conn_close(struct lg_conn *c)
{
    ev_io_stop(c->k->loop, &c->io);
    x_close(&c->x);
}

static void lg_next_phase(struct lg_case *k);
static void lg_fill(struct lg_case *k);

/* A connection reached its steady state (or died on the way): update the counters that drive
 * the phases. */
static void lg_conn_ready(struct lg_conn *c, bool ok)
{
    struct lg_case *k = c->k;
    if (c->counted_ready)
        return;
    c->counted_ready = true;
    k->inflight--;
    if (ok)
        k->ready++;
    else
        k->failed++;
    /* lg_fill() starts the next connection and moves on once all are settled */
    if (k->phase == PH_CONNECT)
        lg_fill(k);
}

static void lg_conn_fail(struct lg_conn *c)
{
    struct lg_case *k = c->k;
    if (c->counted_ready && c->st != LC_DEAD)
        k->dropped++;
    c->st = LC_DEAD;
    lg_conn_close(c);
    lg_conn_ready(c, false);
}

/* The connection is up (and TLS done): set the first output buffer for the mode. */
static void lg_conn_start(struct lg_conn *c)
{
    struct lg_case *k = c->k;
    c->st = LC_RUN;
    c->wbuf = k->out;
    c->off = 0;
    c->reading = false;
    c->got = 0;
    c->t_send = relay_now_ns();
    switch (k->mode) {
    case MODE_THROUGHPUT:
    case MODE_LATENCY:
        c->wlen = 1 + k->payload;
        lg_conn_ready(c, true);
        break;
    case MODE_IDLE:
        c->wlen = 1;
        break; /* ready once the sink's ack came back through both legs */
    case MODE_COUNT:
        break;
    }
}

/* Runs c as far as it goes. Returns 0 when it waits on c->x.wants, -1 when c died. */
static int lg_conn_step(struct lg_conn *c)
{
    struct lg_case *k = c->k;
    switch (c->st) {
    case LC_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->x.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0)
            return -1;
        if (k->tls != NULL) {
            c->x.ssl = SSL_new(k->tls);
            if (c->x.ssl == NULL || SSL_set_fd(c->x.ssl, c->x.fd) != 1)
                return -1;
            SSL_set_connect_state(c->x.ssl);
            SSL_set_tlsext_host_name(c->x.ssl, k->o->server_name);
            c->st = LC_HANDSHAKE;
        } else {
            lg_conn_start(c);
        }
        return lg_conn_step(c);
    }
    case LC_HANDSHAKE: {
        int r = x_handshake(&c->x);
        if (r == -1)
            return 0;
        if (r < 0)
            return -1;
        lg_conn_start(c);
        return lg_conn_step(c);
    }
    case LC_RUN:
        break;
    case LC_IDLE: {
        /* Nothing is expected; read to notice a close (and to take TLS session tickets). */
        ssize_t n;
        do {
            n = x_read(&c->x, k->scratch, sizeof k->scratch);
        } while (n > 0);
        return n == -1 ? 0 : -1;
    }
    case LC_DEAD:
        return -1;
    }

    /* LC_RUN */
    for (unsigned i = 0; i < RELAY_IO_BURST; i++) {
        if (!c->reading) {
            ssize_t n = x_write(&c->x, c->wbuf + c->off, c->wlen - c->off);
            if (n == -1)
                break;
            if (n < 0)
                return -1;
            c->off += (size_t)n;
            if (c->off < c->wlen)
                continue;
            /* a whole buffer went out */
            if (k->mode == MODE_THROUGHPUT) {
                c->wbuf = k->out + 1;
                c->wlen = k->payload;
                c->off = 0;
                continue;
            }
            c->reading = true;
            c->got = 0;
            continue;
        }
        size_t want = k->mode == MODE_IDLE ? 1 : k->payload;
        ssize_t n = x_read(&c->x, k->scratch, want - c->got);
        if (n == -1)
            return 0;
        if (n <= 0)
            return -1;
        c->got += (size_t)n;
        if (c->got < want)
            continue;
        if (k->mode == MODE_IDLE) {
            if (k->scratch[0] != PROTO_IDLE_ACK)
                return -1;
            c->st = LC_IDLE;
            lg_conn_ready(c, true);
            c->x.wants = EV_READ;
            return 0;
        }
        /* MODE_LATENCY: one exchange done; start the next at once */
        uint64_t now = relay_now_ns();
        if (k->measuring) {
            bench_hist_record(k->hist, now - c->t_send);
            k->exchanges++;
        }
        c->t_send = now;
        c->wbuf = k->out + 1;
        c->wlen = k->payload;
        c->off = 0;
        c->reading = false;
    }
    if (k->mode == MODE_THROUGHPUT) {
        /* Keep reading as well: the peer sends nothing but TLS session tickets or a close. */
        ssize_t n;
        while ((n = x_read(&c->x, k->scratch, sizeof k->scratch)) > 0) {
        }
        if (n != -1)
            return -1;
        c->x.wants = EV_READ | EV_WRITE;
        return 0;
    }
    if (c->x.wants == 0)
        c->x.wants = c->reading ? EV_READ : EV_WRITE;
    return 0;
}

static void lg_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lg_conn *c = w->data;
    c->x.wants = 0;
    if (lg_conn_step(c) < 0) {
        lg_conn_fail(c);
        return;
    }
    if (c->st == LC_DEAD)
        return;
    io_want(loop, &c->io, c->x.wants);
}

/* Starts connections until --inflight are on their way or all have started. */
static void lg_fill(struct lg_case *k)
{
    /* lg_conn_ready() calls back here; the outer call does the work. */
    if (k->filling)
        return;
    k->filling = true;
    while (k->started < k->n && k->inflight < k->o->inflight) {
        struct lg_conn *c = &k->cs[k->started++];
        c->k = k;
        c->x.fd = -1;
        c->st = LC_CONNECTING;
        k->inflight++;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            fprintf(stderr, "bench-relay: socket: %s\n", strerror(errno));
            c->st = LC_DEAD;
            lg_conn_ready(c, false);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->x.fd = fd;
        ev_io_init(&c->io, lg_conn_cb, fd, EV_WRITE);
        c->io.data = c;
        if (connect(fd, (struct sockaddr *)&k->addr, sizeof k->addr) == -1 &&
            errno != EINPROGRESS) {
            fprintf(stderr, "bench-relay: connect: %s\n", strerror(errno));
            c->st = LC_DEAD;
            x_close(&c->x);
            lg_conn_ready(c, false);
            continue;
        }
        ev_io_start(k->loop, &c->io);
    }
    k->filling = false;
    if (k->phase == PH_CONNECT && k->started == k->n && k->ready + k->failed == k->n)
        lg_next_phase(k);
}

static double self_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == -1)
        return NAN;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lg_snapshot(struct lg_case *k, bool end)
{
    double t = bench_wall_now();
    uint64_t b = sink_stat(k->o, STAT_BYTES);
    double cpu = k->path->pid > 0 ? bench_proc_cpu_s(k->path->pid) : NAN;
    double self = self_cpu_s();
    double sink = k->o->sink_pid > 0 ? bench_proc_cpu_s(k->o->sink_pid) : NAN;
    if (end) {
        k->t1 = t;
        k->bytes1 = b;
        k->cpu1 = cpu;
        k->self1 = self;
        k->sink1 = sink;
    } else {
        k->t0 = t;
        k->bytes0 = b;
        k->cpu0 = cpu;
        k->self0 = self;
        k->sink0 = sink;
    }
}

static void lg_arm(struct lg_case *k, double s)
{
    ev_timer_stop(k->loop, &k->timer);
    ev_now_update(k->loop);
    ev_timer_set(&k->timer, s, 0.);
    ev_timer_start(k->loop, &k->timer);
}

static void lg_next_phase(struct lg_case *k)
{
    const struct relay_opts *o = k->o;
    switch (k->phase) {
    case PH_CONNECT:
        k->setup_s = bench_wall_now() - k->t0;
        if (k->mode == MODE_IDLE) {
            k->phase = PH_SETTLE;
            lg_arm(k, o->settle);
        } else {
            /* ping-pong has no queues to fill: a short warm-up is enough */
            k->phase = PH_WARMUP;
            lg_arm(k, k->mode == MODE_LATENCY ? fmin(o->warmup, 0.25) : o->warmup);
        }
        break;
    case PH_WARMUP:
        lg_snapshot(k, false);
        k->measuring = true;
        k->phase = PH_MEASURE;
        lg_arm(k, k->mode == MODE_LATENCY ? o->lat_duration : o->duration);
        break;
    case PH_MEASURE:
        lg_snapshot(k, true);
        k->measuring = false;
        k->phase = PH_DONE;
        ev_break(k->loop, EVBREAK_ALL);
        break;
    case PH_SETTLE:
        k->rss1 = k->path->pid > 0 ? proc_rss_kib(k->path->pid) : -1;
        k->phase = PH_DONE;
        ev_break(k->loop, EVBREAK_ALL);
        break;
    case PH_DONE:
        break;
    }
}

static void lg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lg_case *k = w->data;
    if (k->phase == PH_CONNECT) {
        k->timed_out = true;
        k->phase = PH_DONE;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    lg_next_phase(k);
}

struct relay_result {
    bool ran, ok;
    unsigned conns, failed, dropped;
    double gbit, cpu_per_gb, cpu_util, p50, p99, p999, rss_per_conn;
    double loadgen_util, sink_util; /* CPU share of the harness: is the proxy the bottleneck? */
    uint64_t bytes, exchanges;
    long rss0, rss1;
    double setup_s, wall_s;
    const char *sink_saw; /* sessions the sink saw: "tls", "plain", "mixed" or "none" */
};

/* Runs one case and fills *r. Latency samples are added to *hist (borrowed; required for
 * MODE_LATENCY, so that rounds accumulate), r->p* are left NAN. Returns 0, or -1 if the case
 * could not run at all. */
static int lg_run_case(const struct relay_opts *o, struct ev_loop *loop, SSL_CTX *tls,
                       const struct relay_path *p, enum relay_mode mode, struct bench_hist *hist,
                       struct relay_result *r)
{
    memset(r, 0, sizeof *r);
    r->gbit = r->cpu_per_gb = r->cpu_util = r->p50 = r->p99 = r->p999 = NAN;
    r->rss_per_conn = r->loadgen_util = r->sink_util = NAN;
    r->rss0 = r->rss1 = -1;

    struct lg_case *k = calloc(1, sizeof *k);
    if (k == NULL)
        return -1;
    k->o = o;
    k->loop = loop;
    k->tls = tls;
    k->path = p;
    k->mode = mode;
    k->addr = o->host;
    k->addr.sin_port = htons(p->port[tls != NULL]);
    k->n = mode == MODE_IDLE ? o->idle_conns : mode == MODE_LATENCY ? o->lat_conns : o->conns;
    k->payload = mode == MODE_THROUGHPUT ? o->chunk : mode == MODE_LATENCY ? o->msg : 0;
    k->cs = calloc(k->n, sizeof *k->cs);
    k->out = malloc(1 + k->payload);
    k->hist = hist;
    if (k->cs == NULL || k->out == NULL || (mode == MODE_LATENCY && k->hist == NULL)) {
        free(k->cs);
        free(k->out);
        free(k);
        return -1;
    }
    k->out[0] = mode == MODE_THROUGHPUT ? PROTO_DISCARD
                : mode == MODE_LATENCY  ? PROTO_ECHO
                                        : PROTO_IDLE;
    for (size_t i = 0; i < k->payload; i++)
        k->out[1 + i] = (unsigned char)('a' + i % 26);

    if (mode == MODE_IDLE && p->pid > 0)
        k->rss0 = proc_rss_kib(p->pid);
    uint64_t plain0 = sink_stat(o, STAT_PLAIN_SESSIONS), tls0 = sink_stat(o, STAT_TLS_SESSIONS);

    ev_timer_init(&k->timer, lg_timer_cb, 0., 0.);
    k->timer.data = k;
    k->phase = PH_CONNECT;
    k->t0 = bench_wall_now();
    lg_arm(k, mode == MODE_IDLE ? o->idle_timeout : o->connect_timeout);
    lg_fill(k);
    if (k->phase == PH_CONNECT && k->ready + k->failed == k->n)
        lg_next_phase(k);
    if (k->phase != PH_DONE)
        ev_run(loop, 0);
    ev_timer_stop(loop, &k->timer);
    uint64_t plain_n = sink_stat(o, STAT_PLAIN_SESSIONS) - plain0;
    uint64_t tls_n = sink_stat(o, STAT_TLS_SESSIONS) - tls0;
    r->sink_saw = plain_n && tls_n ? "mixed" : tls_n ? "tls" : plain_n ? "plain" : "none";
    bool legs_ok = tls != NULL ? plain_n == 0 : tls_n == 0;
    if (!legs_ok)
        fprintf(stderr, "bench-relay: %s %s %s: the sink saw %llu plain and %llu TLS sessions: "
                        "the upstream leg is not configured like the client leg\n",
                p->name, tls != NULL ? "tls" : "plain", mode_names[mode],
                (unsigned long long)plain_n, (unsigned long long)tls_n);

    r->ran = true;
    r->conns = k->n;
    r->failed = k->failed;
    r->dropped = k->dropped;
    r->setup_s = k->setup_s;
    r->ok = !k->timed_out && k->failed == 0 && k->dropped == 0 && legs_ok;
    if (k->timed_out)
        fprintf(stderr, "bench-relay: %s %s %s: only %u of %u connections up after %.0f s\n",
                p->name, tls != NULL ? "tls" : "plain", mode_names[mode], k->ready, k->n,
                mode == MODE_IDLE ? o->idle_timeout : o->connect_timeout);
    if (k->failed > 0 || k->dropped > 0)
        fprintf(stderr, "bench-relay: %s %s %s: %u connections failed, %u dropped\n", p->name,
                tls != NULL ? "tls" : "plain", mode_names[mode], k->failed, k->dropped);

    if (!k->timed_out) {
        switch (mode) {
        case MODE_THROUGHPUT: {
            r->wall_s = k->t1 - k->t0;
            if (r->wall_s > 0) {
                r->loadgen_util = (k->self1 - k->self0) / r->wall_s;
                r->sink_util = (k->sink1 - k->sink0) / r->wall_s;
            }
            r->bytes = k->bytes1 - k->bytes0;
            if (r->wall_s > 0)
                r->gbit = (double)r->bytes * 8 / r->wall_s / 1e9;
            if (p->pid > 0 && r->bytes > 0) {
                r->cpu_per_gb = (k->cpu1 - k->cpu0) / ((double)r->bytes / 1e9);
                r->cpu_util = (k->cpu1 - k->cpu0) / r->wall_s;
            }
            break;
        }
        case MODE_LATENCY:
            r->wall_s = k->t1 - k->t0;
            r->exchanges = k->exchanges;
            break;
        case MODE_IDLE:
            r->rss0 = k->rss0;
            r->rss1 = k->rss1;
            if (k->rss0 >= 0 && k->rss1 >= 0 && k->ready > 0)
                r->rss_per_conn = (double)(k->rss1 - k->rss0) / (double)k->ready;
            break;
        case MODE_COUNT:
            break;
        }
    }

    for (unsigned i = 0; i < k->started; i++) {
        if (k->cs[i].st != LC_DEAD)
            lg_conn_close(&k->cs[i]);
    }
    free(k->cs);
    free(k->out);
    free(k);
    return 0;
}

static double median_of(double *v, unsigned n)
{
    unsigned m = 0;
    double tmp[RELAY_MAX_REPEAT];
    for (unsigned i = 0; i < n; i++) {
        if (isfinite(v[i]))
            tmp[m++] = v[i];
    }
    return m == 0 ? NAN : bench_median(tmp, m);
}

static void json_common(struct bench_json *j, const struct relay_opts *o, const char *path,
                        bool tls, enum relay_mode mode, const struct relay_result *r)
{
    bench_json_begin(j);
    bench_json_str(j, "bench", "relay");
    bench_json_str(j, "path", path);
    bench_json_str(j, "tls", tls ? "both" : "none");
    bench_json_str(j, "mode", mode_names[mode]);
    bench_json_u64(j, "conns", r->conns);
    bench_json_u64(j, "workers", o->workers);
    bench_json_bool(j, "ok", r->ok);
    bench_json_u64(j, "failed", r->failed);
    bench_json_u64(j, "dropped", r->dropped);
    bench_json_str(j, "sink_saw", r->sink_saw != NULL ? r->sink_saw : "none");
}

static void print_case(const struct relay_opts *o, const char *path, bool tls,
                       enum relay_mode mode, const struct relay_result *r,
                       const struct relay_result *direct_lat, unsigned rounds, double gbit_min,
                       double gbit_max)
{
    struct bench_json j;
    json_common(&j, o, path, tls, mode, r);
    switch (mode) {
    case MODE_THROUGHPUT:
        bench_json_u64(&j, "chunk_bytes", o->chunk);
        bench_json_double(&j, "duration_s", r->wall_s);
        bench_json_u64(&j, "rounds", rounds);
        bench_json_u64(&j, "bytes", r->bytes);
        bench_json_double(&j, "gbit_per_s", r->gbit);
        bench_json_double(&j, "gbit_per_s_min", gbit_min);
        bench_json_double(&j, "gbit_per_s_max", gbit_max);
        bench_json_double(&j, "cpu_s_per_gb", r->cpu_per_gb);
        bench_json_double(&j, "proxy_cpu_util", r->cpu_util);
        bench_json_double(&j, "loadgen_cpu_util", r->loadgen_util);
        bench_json_double(&j, "sink_cpu_util", r->sink_util);
        break;
    case MODE_LATENCY: {
        bench_json_u64(&j, "msg_bytes", o->msg);
        bench_json_double(&j, "duration_s", r->wall_s);
        bench_json_u64(&j, "rounds", rounds);
        bench_json_u64(&j, "exchanges", r->exchanges);
        bench_json_double(&j, "p50_us", r->p50);
        bench_json_double(&j, "p99_us", r->p99);
        bench_json_double(&j, "p999_us", r->p999);
        bool have = direct_lat != NULL && direct_lat->ran;
        bench_json_double(&j, "added_p50_us", have ? r->p50 - direct_lat->p50 : NAN);
        bench_json_double(&j, "added_p99_us", have ? r->p99 - direct_lat->p99 : NAN);
        bench_json_double(&j, "added_p999_us", have ? r->p999 - direct_lat->p999 : NAN);
        break;
    }
    case MODE_IDLE: {
        double limit = tls ? 64 : 16;
        bench_json_double(&j, "setup_s", r->setup_s);
        bench_json_double(&j, "rss_before_kib", r->rss0 >= 0 ? (double)r->rss0 : NAN);
        bench_json_double(&j, "rss_after_kib", r->rss1 >= 0 ? (double)r->rss1 : NAN);
        bench_json_double(&j, "rss_per_conn_kib", r->rss_per_conn);
        bench_json_double(&j, "limit_kib", limit);
        bench_json_bool(&j, "within_limit", isfinite(r->rss_per_conn) &&
                                                 r->rss_per_conn <= limit && r->ok);
        break;
    }
    case MODE_COUNT:
        break;
    }
    if (bench_json_end(&j, stdout) == -1)
        fprintf(stderr, "bench-relay: JSON line overflow\n");
}

static int run_main(int argc, char **argv)
{
    struct relay_opts o;
    memset(&o, 0, sizeof o);
    o.conns = 32;
    o.lat_conns = 8;
    o.idle_conns = 10000;
    o.inflight = 256;
    o.repeat = 1;
    o.lat_rounds = 3;
    o.workers = 1;
    o.duration = 5;
    o.warmup = 1;
    o.lat_duration = 1;
    o.settle = 1;
    o.gap = 0.5; /* pause between cases so that the proxy has closed the last one's sessions */
    o.connect_timeout = 20;
    o.idle_timeout = 180;
    o.chunk = 16384;
    o.msg = 64;
    o.base = "haproxy";
    o.server_name = "localhost";
    o.tls_set[0] = o.tls_set[1] = true;
    for (unsigned m = 0; m < MODE_COUNT; m++)
        o.mode_set[m] = true;
    const char *stats = NULL, *host = "127.0.0.1";
    int direct_port = -1;
    o.n_paths = 1;

    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        double d;
        if (v == NULL)
            goto usage;
        if (strcmp(a, "--sink-stats") == 0) {
            stats = v;
        } else if (strcmp(a, "--sink-pid") == 0) {
            if (!bench_parse_u64(v, 1, INT32_MAX, &u))
                goto bad;
            o.sink_pid = (pid_t)u;
        } else if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--direct") == 0) {
            if (!bench_parse_u64(v, 1, 65535, &u))
                goto bad;
            direct_port = (int)u;
        } else if (strcmp(a, "--path") == 0) {
            /* NAME:PLAIN_PORT:TLS_PORT:PID */
            if (o.n_paths >= RELAY_MAX_PATHS)
                goto bad;
            struct relay_path *p = &o.paths[o.n_paths];
            char tmp[128];
            if (strlen(v) >= sizeof tmp)
                goto bad;
            strcpy(tmp, v);
            char *save = NULL;
            char *f[4];
            unsigned nf = 0;
            for (char *t = strtok_r(tmp, ":", &save); t != NULL && nf < 4;
                 t = strtok_r(NULL, ":", &save))
                f[nf++] = t;
            uint64_t pp, tp, pid;
            if (nf != 4 || strlen(f[0]) >= RELAY_NAME_MAX || strcmp(f[0], "direct") == 0 ||
                !bench_parse_u64(f[1], 0, 65535, &pp) || !bench_parse_u64(f[2], 0, 65535, &tp) ||
                !bench_parse_u64(f[3], 1, INT32_MAX, &pid))
                goto bad;
            strcpy(p->name, f[0]);
            p->port[0] = (uint16_t)pp;
            p->port[1] = (uint16_t)tp;
            p->pid = (pid_t)pid;
            o.n_paths++;
        } else if (strcmp(a, "--tls") == 0) {
            o.tls_set[0] = strstr(v, "none") != NULL;
            o.tls_set[1] = strstr(v, "both") != NULL;
            if (!o.tls_set[0] && !o.tls_set[1])
                goto bad;
        } else if (strcmp(a, "--modes") == 0) {
            bool any = false;
            for (unsigned m = 0; m < MODE_COUNT; m++) {
                o.mode_set[m] = strstr(v, mode_names[m]) != NULL;
                any |= o.mode_set[m];
            }
            if (!any)
                goto bad;
        } else if (strcmp(a, "--conns") == 0) {
            if (!bench_parse_u64(v, 1, 100000, &u))
                goto bad;
            o.conns = (unsigned)u;
        } else if (strcmp(a, "--lat-conns") == 0) {
            if (!bench_parse_u64(v, 1, 100000, &u))
                goto bad;
            o.lat_conns = (unsigned)u;
        } else if (strcmp(a, "--idle-conns") == 0) {
            if (!bench_parse_u64(v, 1, 1000000, &u))
                goto bad;
            o.idle_conns = (unsigned)u;
        } else if (strcmp(a, "--inflight") == 0) {
            if (!bench_parse_u64(v, 1, 100000, &u))
                goto bad;
            o.inflight = (unsigned)u;
        } else if (strcmp(a, "--repeat") == 0) {
            if (!bench_parse_u64(v, 1, RELAY_MAX_REPEAT, &u))
                goto bad;
            o.repeat = (unsigned)u;
        } else if (strcmp(a, "--lat-rounds") == 0) {
            if (!bench_parse_u64(v, 1, 1000, &u))
                goto bad;
            o.lat_rounds = (unsigned)u;
        } else if (strcmp(a, "--workers") == 0) {
            if (!bench_parse_u64(v, 1, 1024, &u))
                goto bad;
            o.workers = (unsigned)u;
        } else if (strcmp(a, "--chunk") == 0) {
            if (!bench_parse_u64(v, 1, 1 << 20, &u))
                goto bad;
            o.chunk = (size_t)u;
        } else if (strcmp(a, "--msg") == 0) {
            if (!bench_parse_u64(v, 1, RELAY_SINK_ECHO_BUF, &u))
                goto bad;
            o.msg = (size_t)u;
        } else if (strcmp(a, "--duration") == 0) {
            if (!bench_parse_double(v, 0.05, 3600, &d))
                goto bad;
            o.duration = d;
        } else if (strcmp(a, "--lat-duration") == 0) {
            if (!bench_parse_double(v, 0.05, 3600, &d))
                goto bad;
            o.lat_duration = d;
        } else if (strcmp(a, "--warmup") == 0) {
            if (!bench_parse_double(v, 0, 600, &d))
                goto bad;
            o.warmup = d;
        } else if (strcmp(a, "--settle") == 0) {
            if (!bench_parse_double(v, 0, 600, &d))
                goto bad;
            o.settle = d;
        } else if (strcmp(a, "--gap") == 0) {
            if (!bench_parse_double(v, 0, 60, &d))
                goto bad;
            o.gap = d;
        } else if (strcmp(a, "--base") == 0) {
            o.base = v;
        } else if (strcmp(a, "--server-name") == 0) {
            o.server_name = v;
        } else {
            goto usage;
        }
        continue;
    bad:
        fprintf(stderr, "bench-relay run: bad value for %s: %s\n", a, v);
        return 2;
    }
    if (stats == NULL || direct_port < 0)
        goto usage;
    char hp[96];
    snprintf(hp, sizeof hp, "%s:0", host);
    if (!bench_parse_hostport(hp, &o.host)) {
        fprintf(stderr, "bench-relay run: bad --host %s\n", host);
        return 2;
    }
    strcpy(o.paths[0].name, "direct");
    o.paths[0].port[0] = o.paths[0].port[1] = (uint16_t)direct_port;
    o.paths[0].pid = 0;

    int sfd = open(stats, O_RDONLY | O_CLOEXEC);
    if (sfd == -1) {
        fprintf(stderr, "bench-relay run: %s: %s\n", stats, strerror(errno));
        return 1;
    }
    void *map = mmap(NULL, RELAY_STATS_SIZE, PROT_READ, MAP_SHARED, sfd, 0);
    close(sfd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "bench-relay run: mmap %s: %s\n", stats, strerror(errno));
        return 1;
    }
    o.sink_stats = map;

    raise_nofile();
    if (o.mode_set[MODE_IDLE] && nofile_limit() < (unsigned long)o.idle_conns + 64) {
        fprintf(stderr, "bench-relay run: open-file limit %lu is too low for %u idle "
                        "connections (raise ulimit -n)\n", nofile_limit(), o.idle_conns);
        return 1;
    }

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (cctx == NULL) {
        print_ssl_errors("client context");
        return 1;
    }
    tls_ctx_common(cctx);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    /* Every connection does a full handshake, as a fresh client would. */
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(cctx, SSL_OP_NO_TICKET);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    /* results[tls][mode][path] (throughput: median over rounds) */
    static struct relay_result res[2][MODE_COUNT][RELAY_MAX_PATHS];
    int rc = 0;

    struct bench_hist *hists = calloc(RELAY_MAX_PATHS, sizeof *hists);
    if (hists == NULL)
        return 1;
    for (unsigned t = 0; t < 2; t++) {
        if (!o.tls_set[t])
            continue;
        SSL_CTX *tls = t ? cctx : NULL;
        /* idle first, on the freshest process; then latency; throughput last */
        for (unsigned m = 0; m < MODE_COUNT; m++) {
            if (!o.mode_set[m])
                continue;
            /* Rounds interleave the paths, so that a burst of other work on the machine hits
             * them alike. Throughput reports the median round; latency merges the rounds'
             * histograms. */
            unsigned rounds = m == MODE_THROUGHPUT ? o.repeat
                              : m == MODE_LATENCY  ? o.lat_rounds
                                                   : 1;
            double gbit[RELAY_MAX_PATHS][RELAY_MAX_REPEAT], cpu[RELAY_MAX_PATHS][RELAY_MAX_REPEAT];
            for (unsigned pi = 0; pi < RELAY_MAX_PATHS; pi++) {
                for (unsigned round = 0; round < RELAY_MAX_REPEAT; round++)
                    gbit[pi][round] = cpu[pi][round] = NAN;
            }
            memset(hists, 0, RELAY_MAX_PATHS * sizeof *hists);
            for (unsigned round = 0; round < rounds; round++) {
                for (unsigned pi = 0; pi < o.n_paths; pi++) {
                    const struct relay_path *p = &o.paths[pi];
                    if (m == MODE_IDLE && p->pid == 0)
                        continue; /* memory of a proxy; the direct path has none */
                    if (p->port[t] == 0)
                        continue;
                    fprintf(stderr, "bench-relay: %s tls=%s %s, round %u/%u\n", p->name,
                            t ? "both" : "none", mode_names[m], round + 1, rounds);
                    struct relay_result r;
                    if (lg_run_case(&o, loop, tls, p, (enum relay_mode)m, &hists[pi], &r) ==
                        -1) {
                        fprintf(stderr, "bench-relay: out of memory\n");
                        return 1;
                    }
                    struct relay_result *acc = &res[t][m][pi];
                    if (round == 0) {
                        *acc = r;
                    } else {
                        acc->ok = acc->ok && r.ok;
                        if (strcmp(acc->sink_saw, r.sink_saw) != 0)
                            acc->sink_saw = "mixed";
                        acc->failed += r.failed;
                        acc->dropped += r.dropped;
                        acc->bytes += r.bytes;
                        acc->exchanges += r.exchanges;
                        acc->wall_s += r.wall_s;
                    }
                    if (round < RELAY_MAX_REPEAT) {
                        gbit[pi][round] = r.gbit;
                        cpu[pi][round] = r.cpu_per_gb;
                    }
                    relay_sleep(m == MODE_IDLE ? 2 * o.gap : o.gap);
                    if (relay_stop_requested)
                        return 1;
                }
            }
            for (unsigned pi = 0; pi < o.n_paths; pi++) {
                struct relay_result *r = &res[t][m][pi];
                if (!r->ran)
                    continue;
                if (!r->ok)
                    rc = 1;
                double lo = NAN, hi = NAN;
                if (m == MODE_THROUGHPUT) {
                    lo = INFINITY, hi = -INFINITY;
                    for (unsigned round = 0; round < rounds; round++) {
                        if (isfinite(gbit[pi][round])) {
                            lo = fmin(lo, gbit[pi][round]);
                            hi = fmax(hi, gbit[pi][round]);
                        }
                    }
                    if (!isfinite(lo))
                        lo = hi = NAN;
                    r->gbit = median_of(gbit[pi], rounds);
                    r->cpu_per_gb = median_of(cpu[pi], rounds);
                } else if (m == MODE_LATENCY) {
                    r->p50 = bench_hist_quantile(&hists[pi], 0.50) / 1e3;
                    r->p99 = bench_hist_quantile(&hists[pi], 0.99) / 1e3;
                    r->p999 = bench_hist_quantile(&hists[pi], 0.999) / 1e3;
                }
                print_case(&o, o.paths[pi].name, t, (enum relay_mode)m, r,
                           m == MODE_LATENCY && pi > 0 ? &res[t][m][0] : NULL, rounds, lo, hi);
            }
        }
    }
    free(hists);

    /* Summary: each proxy path against the base, per TLS setting. */
    int base = -1;
    for (unsigned pi = 1; pi < o.n_paths; pi++) {
        if (strcmp(o.paths[pi].name, o.base) == 0)
            base = (int)pi;
    }
    for (unsigned t = 0; t < 2 && base > 0; t++) {
        if (!o.tls_set[t])
            continue;
        for (unsigned pi = 1; pi < o.n_paths; pi++) {
            if ((int)pi == base)
                continue;
            const struct relay_result *a = &res[t][MODE_THROUGHPUT][pi];
            const struct relay_result *b = &res[t][MODE_THROUGHPUT][base];
            const struct relay_result *la = &res[t][MODE_LATENCY][pi];
            const struct relay_result *lb = &res[t][MODE_LATENCY][base];
            if (!(a->ran && b->ran) && !(la->ran && lb->ran))
                continue;
            double target = t ? 1.0 : 0.9;
            double ratio = a->ran && b->ran ? a->gbit / b->gbit : NAN;
            struct bench_json j;
            bench_json_begin(&j);
            bench_json_str(&j, "bench", "relay");
            bench_json_str(&j, "summary", "vs_base");
            bench_json_str(&j, "path", o.paths[pi].name);
            bench_json_str(&j, "base", o.base);
            bench_json_str(&j, "tls", t ? "both" : "none");
            bench_json_u64(&j, "workers", o.workers);
            bench_json_double(&j, "throughput_ratio", ratio);
            bench_json_double(&j, "throughput_target", target);
            bench_json_bool(&j, "meets_target", isfinite(ratio) && ratio >= target);
            bench_json_double(&j, "cpu_per_gb_ratio",
                              a->ran && b->ran ? a->cpu_per_gb / b->cpu_per_gb : NAN);
            bench_json_double(&j, "p50_us_diff", la->ran && lb->ran ? la->p50 - lb->p50 : NAN);
            bench_json_double(&j, "p99_us_diff", la->ran && lb->ran ? la->p99 - lb->p99 : NAN);
            if (bench_json_end(&j, stdout) == -1)
                fprintf(stderr, "bench-relay: JSON line overflow\n");
        }
    }

    SSL_CTX_free(cctx);
    munmap(map, RELAY_STATS_SIZE);
    return rc;

usage:
    fprintf(stderr,
            "usage: bench-relay run --sink-stats FILE --direct PORT [--sink-pid PID]\n"
            "         [--path NAME:PLAIN_PORT:TLS_PORT:PID]... (port 0: not offered)\n"
            "         [--tls none,both] [--modes idle,latency,throughput] [--host 127.0.0.1]\n"
            "         [--conns 32] [--duration 5] [--warmup 1] [--chunk 16384] [--repeat 1]\n"
            "         [--lat-conns 8] [--lat-duration 1] [--lat-rounds 3] [--msg 64]\n"
            "         [--idle-conns 10000] [--inflight 256] [--settle 1] [--gap 0.5]\n"
            "         [--workers N (label)] [--base haproxy] [--server-name localhost]\n");
    return 2;
}

/* ============================================================================================ */

static int ports_main(int argc, char **argv)
{
    uint64_t n;
    if (argc != 1 || !bench_parse_u64(argv[0], 1, 64, &n)) {
        fprintf(stderr, "usage: bench-relay ports N (1..64)\n");
        return 2;
    }
    int fds[64];
    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sin;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] == -1 || bind(fds[i], (struct sockaddr *)&sin, sizeof sin) == -1 ||
            getsockname(fds[i], (struct sockaddr *)&sin, &len) == -1) {
            fprintf(stderr, "bench-relay ports: %s\n", strerror(errno));
            return 1;
        }
        printf("%u\n", (unsigned)ntohs(sin.sin_port));
    }
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static void on_stop_signal(int sig)
{
    relay_stop_requested = 1;
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
        return ports_main(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench-relay sink|run|ports ... (see the comment at the top of "
                    "bench/bench_relay.c)\n");
    return 2;
}
