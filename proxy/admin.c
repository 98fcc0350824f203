/* The admin HTTP listener; see admin.h for what it answers.
 *
 * One client goes through three states, each bounded by the same timer:
 *
 *   READ --head complete or too big--> WRITE --all sent--> LINGER --EOF or timer--> closed
 *     \--EOF, error or timer--> closed
 *
 * LINGER half-closes and drains what the client still sends before closing, so that closing
 * with unread input (an over-long request) does not turn into a RST that destroys the answer
 * before the client reads it. */
#include "proxy/admin.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_LINGER_TIMEOUT 2.0

enum admin_state {
    ADMIN_READ,
    ADMIN_WRITE,
    ADMIN_LINGER,
};

struct admin_client {
    struct admin *a;
    int fd;
    enum admin_state state;
    ev_io io;
    ev_timer timer;
    char *req;
    size_t req_len;
    char *resp;
    size_t resp_len, resp_off;
    struct admin_client *prev, *next;
};

struct admin {
    struct ev_loop *loop;
    int fd;
    ev_io accept_io;
    ev_timer accept_pause; /* out of descriptors: stop accepting for a while, not spin */
    struct metrics *metrics;
    _Atomic int draining;
    size_t max_request;
    double read_timeout;
    unsigned max_clients;
    unsigned n_clients;
    unsigned port;
    struct admin_client *clients;
};

void admin_config_defaults(struct admin_config *cfg)
{
    cfg->bind = ADMIN_BIND_DEFAULT;
    cfg->max_request = ADMIN_MAX_REQUEST_DEFAULT;
    cfg->read_timeout = ADMIN_READ_TIMEOUT_DEFAULT;
    cfg->max_clients = ADMIN_MAX_CLIENTS_DEFAULT;
}

static void client_close(struct admin_client *c)
{
    struct admin *a = c->a;
    ev_io_stop(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->timer);
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->n_clients--;
    free(c->req);
    free(c->resp);
    free(c);
}

/* Builds the whole response (head and body) in c->resp. Returns SW_OK or SW_ERROR (ENOMEM). */
static int set_response(struct admin_client *c, int status, const char *reason, const char *ctype,
                        const char *extra, const char *body, size_t blen)
{
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      status, reason, ctype, blen, extra != NULL ? extra : "");
    if (hn < 0 || (size_t)hn >= sizeof(head))
        return SW_ERROR;
    c->resp = malloc((size_t)hn + blen);
    if (c->resp == NULL)
        return SW_ERROR;
    memcpy(c->resp, head, (size_t)hn);
    if (blen > 0)
        memcpy(c->resp + hn, body, blen);
    c->resp_len = (size_t)hn + blen;
    c->resp_off = 0;
    return SW_OK;
}

static int simple_response(struct admin_client *c, int status, const char *reason,
                           const char *extra, const char *body)
{
    return set_response(c, status, reason, "text/plain; charset=utf-8", extra, body, strlen(body));
}

static int metrics_response(struct admin_client *c)
{
    struct admin *a = c->a;
    if (a->metrics == NULL)
        return simple_response(c, 503, "Service Unavailable", NULL, "no metrics\n");
    struct metrics_buf b;
    metrics_buf_init(&b, 0);
    int rc = metrics_render(a->metrics, &b);
    if (rc != SW_OK) {
        metrics_buf_deinit(&b);
        return simple_response(c, 500, "Internal Server Error", NULL, "render failed\n");
    }
    rc = set_response(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL,
                      b.data != NULL ? b.data : "", b.len);
    metrics_buf_deinit(&b);
    return rc;
}

static bool is_tchar(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Parses the complete head in c->req[0..hlen) and builds the answer. */
static int answer(struct admin_client *c, size_t hlen)
{
    char *req = c->req;
    char *eol = memchr(req, '\n', hlen);
    size_t llen = (size_t)(eol - req);
    if (llen > 0 && req[llen - 1] == '\r')
        llen--;
    /* request line: method SP target SP HTTP/1.x, nothing else */
    size_t i = 0;
    while (i < llen && is_tchar(req[i]))
        i++;
    size_t mlen = i;
    if (mlen == 0 || i >= llen || req[i] != ' ')
        goto bad;
    size_t ts = ++i;
    while (i < llen && req[i] > ' ' && req[i] < 0x7f)
        i++;
    size_t tlen = i - ts;
    if (tlen == 0 || i >= llen || req[i] != ' ')
        goto bad;
    i++;
    if (llen - i != 8 ||
        (memcmp(req + i, "HTTP/1.0", 8) != 0 && memcmp(req + i, "HTTP/1.1", 8) != 0))
        goto bad;
    if (req[ts] != '/' && !(tlen == 1 && req[ts] == '*'))
        goto bad;
    /* header lines: name ':' value, no obs-fold */
    for (char *p = eol + 1; p < req + hlen;) {
        char *e = memchr(p, '\n', (size_t)(req + hlen - p));
        size_t n = (size_t)(e - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the blank line ending the head */
        size_t k = 0;
        while (k < n && is_tchar(p[k]))
            k++;
        if (k == 0 || k >= n || p[k] != ':')
            goto bad;
        for (size_t j = k + 1; j < n; j++)
            if ((unsigned char)p[j] < 0x20 && p[j] != '\t')
                goto bad;
        p = e + 1;
    }

    if (mlen != 3 || memcmp(req, "GET", 3) != 0)
        return simple_response(c, 405, "Method Not Allowed", "Allow: GET\r\n",
                               "method not allowed\n");
    size_t plen = 0;
    while (plen < tlen && req[ts + plen] != '?')
        plen++;
    if (plen == 8 && memcmp(req + ts, "/metrics", 8) == 0)
        return metrics_response(c);
    if (plen == 8 && memcmp(req + ts, "/healthz", 8) == 0) {
        if (atomic_load_explicit(&c->a->draining, memory_order_relaxed))
            return simple_response(c, 503, "Service Unavailable", NULL, "draining\n");
        return simple_response(c, 200, "OK", NULL, "ok\n");
    }
    return simple_response(c, 404, "Not Found", NULL, "not found\n");

bad:
    return simple_response(c, 400, "Bad Request", NULL, "bad request\n");
}

/* Length of the head (through its blank line) if req holds one, else 0. */
static size_t head_len(const char *req, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (req[i] != '\n')
            continue;
        if (i + 1 < len && req[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && req[i + 1] == '\r' && req[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static void start_write(struct admin_client *c)
{
    struct admin *a = c->a;
    c->state = ADMIN_WRITE;
    ev_io_stop(a->loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_WRITE);
    ev_io_start(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->timer);
    ev_timer_set(&c->timer, a->read_timeout, 0.);
    ev_timer_start(a->loop, &c->timer);
}

static void start_linger(struct admin_client *c)
{
    struct admin *a = c->a;
    c->state = ADMIN_LINGER;
    if (shutdown(c->fd, SHUT_WR) == -1) {
        client_close(c);
        return;
    }
    ev_io_stop(a->loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->timer);
    ev_timer_set(&c->timer, ADMIN_LINGER_TIMEOUT, 0.);
    ev_timer_start(a->loop, &c->timer);
}

static void on_read(struct admin_client *c)
{
    struct admin *a = c->a;
    if (c->state == ADMIN_LINGER) {
        char sink[4096];
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
            client_close(c);
        return;
    }
    ssize_t n = read(c->fd, c->req + c->req_len, a->max_request - c->req_len);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    if (n == 0) {
        client_close(c);
        return;
    }
    size_t scan_from = c->req_len > 2 ? c->req_len - 2 : 0;
    c->req_len += (size_t)n;
    size_t h = head_len(c->req + scan_from, c->req_len - scan_from);
    int rc;
    if (h != 0) {
        rc = answer(c, scan_from + h);
    } else if (c->req_len == a->max_request) {
        rc =
            simple_response(c, 431, "Request Header Fields Too Large", NULL, "request too large\n");
    } else {
        return;
    }
    if (rc != SW_OK) {
        client_close(c);
        return;
    }
    start_write(c);
}

static void on_write(struct admin_client *c)
{
    while (c->resp_off < c->resp_len) {
        ssize_t n = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            client_close(c);
            return;
        }
        c->resp_off += (size_t)n;
    }
    start_linger(c);
}

static void client_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_client *c = w->data;
    if (c->state == ADMIN_WRITE)
        on_write(c);
    else
        on_read(c);
}

static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    client_close(w->data);
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct admin *a = w->data;
    ev_io_start(loop, &a->accept_io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin *a = w->data;
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the listener stays readable: pause instead of spinning on it */
                ev_io_stop(loop, &a->accept_io);
                ev_timer_start(loop, &a->accept_pause);
            }
            return; /* EAGAIN, or a transient error (ECONNABORTED): next event */
        }
        if (a->n_clients >= a->max_clients) {
            close(fd);
            continue;
        }
        struct admin_client *c = calloc(1, sizeof(*c));
        char *req = malloc(a->max_request);
        if (c == NULL || req == NULL) {
            free(c);
            free(req);
            close(fd);
            continue;
        }
        c->a = a;
        c->fd = fd;
        c->req = req;
        c->state = ADMIN_READ;
        ev_io_init(&c->io, client_io_cb, fd, EV_READ);
        c->io.data = c;
        ev_timer_init(&c->timer, client_timer_cb, a->read_timeout, 0.);
        c->timer.data = c;
        c->next = a->clients;
        if (a->clients != NULL)
            a->clients->prev = c;
        a->clients = c;
        a->n_clients++;
        ev_io_start(loop, &c->io);
        ev_timer_start(loop, &c->timer);
    }
}

/* Splits "host:port" / "[v6]:port" / "*:port" into numeric host and port strings. */
static int split_bind(const char *bind, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    const char *h = bind;
    size_t hn;
    if (bind[0] == '[') {
        const char *close_br = strchr(bind, ']');
        if (close_br == NULL || close_br[1] != ':')
            return SW_ERROR;
        h = bind + 1;
        hn = (size_t)(close_br - h);
        colon = close_br + 1;
    } else {
        colon = strrchr(bind, ':');
        if (colon == NULL)
            return SW_ERROR;
        hn = (size_t)(colon - bind);
    }
    const char *p = colon + 1;
    size_t pn = strlen(p);
    if (hn == 0 || hn >= hcap || pn == 0 || pn >= pcap || strspn(p, "0123456789") != pn)
        return SW_ERROR;
    if (pn > 5 || strtoul(p, NULL, 10) > 65535)
        return SW_ERROR;
    memcpy(host, h, hn);
    host[hn] = '\0';
    memcpy(port, p, pn + 1);
    if (strcmp(host, "*") == 0)
        snprintf(host, hcap, "0.0.0.0");
    return SW_OK;
}

struct admin *admin_new(struct ev_loop *loop, const struct admin_config *cfg,
                        struct metrics *metrics, struct sw_err *err)
{
    struct admin *a = NULL;
    struct addrinfo *ai = NULL;
    char host[256], port[16];
    if (cfg->bind == NULL ||
        split_bind(cfg->bind, host, sizeof(host), port, sizeof(port)) != SW_OK) {
        sw_err_set(err, "admin: bad bind address \"%.200s\" (want host:port or [v6]:port)",
                   cfg->bind != NULL ? cfg->bind : "");
        goto fail;
    }
    if (cfg->max_request < 64 || cfg->max_request > (1u << 20) || cfg->read_timeout <= 0 ||
        cfg->max_clients == 0) {
        sw_err_set(err, "admin: bad limits (max_request 64..1048576, timeout > 0, clients > 0)");
        goto fail;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        sw_err_set(err, "admin: bad bind address %s: %s", cfg->bind, gai_strerror(gai));
        goto fail;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        sw_err_set(err, "admin: out of memory");
        goto fail;
    }
    a->fd = -1;
    a->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd == -1) {
        sw_err_set(err, "admin: socket: %s", strerror(errno));
        goto fail;
    }
    int one = 1;
    if (setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        sw_err_set(err, "admin: SO_REUSEADDR: %s", strerror(errno));
        goto fail;
    }
    if (bind(a->fd, ai->ai_addr, ai->ai_addrlen) == -1) {
        sw_err_set(err, "admin: bind %s: %s", cfg->bind, strerror(errno));
        goto fail;
    }
    if (listen(a->fd, 64) == -1) {
        sw_err_set(err, "admin: listen %s: %s", cfg->bind, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(a->fd, (struct sockaddr *)&ss, &sl) == -1) {
        sw_err_set(err, "admin: getsockname: %s", strerror(errno));
        goto fail;
    }
    char pbuf[16];
    if (getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, pbuf, sizeof(pbuf), NI_NUMERICSERV) != 0) {
        sw_err_set(err, "admin: getnameinfo failed");
        goto fail;
    }
    a->port = (unsigned)strtoul(pbuf, NULL, 10);
    freeaddrinfo(ai);
    ai = NULL;

    a->loop = loop;
    a->metrics = metrics;
    a->max_request = cfg->max_request;
    a->read_timeout = cfg->read_timeout;
    a->max_clients = cfg->max_clients;
    atomic_init(&a->draining, 0);
    ev_io_init(&a->accept_io, accept_cb, a->fd, EV_READ);
    a->accept_io.data = a;
    ev_timer_init(&a->accept_pause, accept_pause_cb, 0.1, 0.);
    a->accept_pause.data = a;
    ev_io_start(loop, &a->accept_io);
    return a;

fail:
    if (ai != NULL)
        freeaddrinfo(ai);
    if (a != NULL) {
        if (a->fd != -1)
            close(a->fd);
        free(a);
    }
    return NULL;
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    while (a->clients != NULL)
        client_close(a->clients);
    ev_io_stop(a->loop, &a->accept_io);
    ev_timer_stop(a->loop, &a->accept_pause);
    if (a->fd != -1)
        close(a->fd);
    free(a);
}

void admin_set_draining(struct admin *a, bool draining)
{
    atomic_store_explicit(&a->draining, draining ? 1 : 0, memory_order_relaxed);
    if (a->metrics != NULL)
        metrics_set_draining(a->metrics, draining);
}

unsigned admin_port(const struct admin *a)
{
    return a->port;
}
