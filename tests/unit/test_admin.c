/* Unit tests for proxy/admin.c: a real listener on an ephemeral loopback port, served by its
 * own libev loop in a thread, fetched with plain blocking sockets. Covers /metrics, /healthz
 * (and draining), 404, 405, malformed requests (400), an over-long request head (431, still
 * readable by the client), requests trickled byte by byte, the read timeout, the client limit
 * and start-up errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proxy/admin.h"

struct fixture {
    struct ev_loop *loop;
    ev_async stop;
    struct admin *admin;
    struct metrics *metrics;
    pthread_t thread;
    unsigned port;
};

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_thread(void *arg)
{
    struct fixture *f = arg;
    ev_run(f->loop, 0);
    admin_free(f->admin); /* on the loop's thread, as the contract asks */
    f->admin = NULL;
    return NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *listeners[] = {"c2s"};
    f->metrics = metrics_new(1, listeners, 1, 0, NULL);
    assert_non_null(f->metrics);
    metrics_inc(metrics_slot(f->metrics, 0), METRIC_CONNECTIONS_TOTAL, 0, 0);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    struct admin_config cfg;
    admin_config_defaults(&cfg);
    assert_string_equal(cfg.bind, "127.0.0.1:9464");
    cfg.bind = "127.0.0.1:0";
    cfg.read_timeout = 0.5;
    cfg.max_clients = 4;
    struct sw_err err = {{0}};
    f->admin = admin_new(f->loop, &cfg, f->metrics, &err);
    if (f->admin == NULL)
        fail_msg("admin_new: %s", err.msg);
    f->port = admin_port(f->admin);
    assert_true(f->port > 0);
    ev_async_init(&f->stop, stop_cb);
    ev_async_start(f->loop, &f->stop);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_thread, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ev_async_send(f->loop, &f->stop);
    pthread_join(f->thread, NULL);
    ev_loop_destroy(f->loop);
    metrics_free(f->metrics);
    free(f);
    return 0;
}

static int dial(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd != -1);
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until EOF; returns a malloc'd NUL-terminated string. */
static char *read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            fail_msg("read: %s", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

static char *fetch(unsigned port, const char *req, size_t len)
{
    int fd = dial(port);
    send_all(fd, req, len);
    char *resp = read_all(fd);
    close(fd);
    return resp;
}

static char *fetch_str(unsigned port, const char *req)
{
    return fetch(port, req, strlen(req));
}

/* Checks the status line, Connection: close and that Content-Length matches the body;
 * returns the body (inside resp). */
static const char *check_response(const char *resp, int status)
{
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
    if (strncmp(resp, want, strlen(want)) != 0)
        fail_msg("want %d, got: %.80s", status, resp);
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
    const char *cl = strstr(resp, "\r\nContent-Length: ");
    assert_non_null(cl);
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_int_equal(strtoul(cl + 18, NULL, 10), strlen(body));
    return body;
}

static void test_metrics(void **state)
{
    struct fixture *f = *state;
    char *r = fetch_str(f->port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
                                 "User-Agent: test\r\nAccept: */*\r\n\r\n");
    const char *body = check_response(r, 200);
    assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(body, "# TYPE spimwall_connections_total counter\n"));
    assert_non_null(strstr(body, "spimwall_connections_total{listener=\"c2s\"} 1\n"));
    free(r);
    /* a query string is ignored; HTTP/1.0 and bare LF line ends are accepted */
    r = fetch_str(f->port, "GET /metrics?name[]=x HTTP/1.0\n\n");
    check_response(r, 200);
    free(r);
}

static void test_healthz(void **state)
{
    struct fixture *f = *state;
    char *r = fetch_str(f->port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_string_equal(check_response(r, 200), "ok\n");
    free(r);
    admin_set_draining(f->admin, true);
    r = fetch_str(f->port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_string_equal(check_response(r, 503), "draining\n");
    free(r);
    r = fetch_str(f->port, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(check_response(r, 200), "spimwall_draining 1\n"));
    free(r);
    admin_set_draining(f->admin, false);
    r = fetch_str(f->port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_string_equal(check_response(r, 200), "ok\n");
    free(r);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    char *r = fetch_str(f->port, "GET / HTTP/1.1\r\n\r\n");
    check_response(r, 404);
    free(r);
    r = fetch_str(f->port, "GET /metricsx HTTP/1.1\r\n\r\n");
    check_response(r, 404);
    free(r);
    r = fetch_str(f->port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    check_response(r, 405);
    assert_non_null(strstr(r, "\r\nAllow: GET\r\n"));
    free(r);
    r = fetch_str(f->port, "HEAD /healthz HTTP/1.1\r\n\r\n");
    check_response(r, 405);
    free(r);
}

static void test_malformed(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "\x16\x03\x01\x02\x05hello\r\n\r\n", /* a TLS ClientHello-ish start */
        "GET /metrics\r\n\r\n",              /* HTTP/0.9 */
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1 \r\n\r\n",
        "GET /metrics HTTP/1.1\r\nNoColonHere\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n Folded: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nBad\x01: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *r = fetch_str(f->port, bad[i]);
        if (strncmp(r, "HTTP/1.1 400 ", 13) != 0)
            fail_msg("request %zu: got %.60s", i, r);
        check_response(r, 400);
        free(r);
    }
}

static void test_too_long(void **state)
{
    struct fixture *f = *state;
    size_t n = 64 * 1024;
    char *req = malloc(n);
    assert_non_null(req);
    memcpy(req, "GET /metrics HTTP/1.1\r\n", 23);
    for (size_t i = 23; i < n - 4; i += 16)
        memcpy(req + i, "X-Pad: aaaaaaa\r\n", i + 16 <= n - 4 ? 16 : n - 4 - i);
    memcpy(req + n - 4, "\r\n\r\n", 4);
    char *r = fetch(f->port, req, n);
    check_response(r, 431);
    free(r);
    /* exactly at the limit (8192 bytes including the blank line) is still served */
    size_t lim = ADMIN_MAX_REQUEST_DEFAULT;
    memset(req, 'a', lim);
    memcpy(req, "GET /healthz HTTP/1.1\r\nX: ", 26);
    memcpy(req + lim - 4, "\r\n\r\n", 4);
    r = fetch(f->port, req, lim);
    assert_string_equal(check_response(r, 200), "ok\n");
    free(r);
    free(req);
}

static void test_trickle(void **state)
{
    struct fixture *f = *state;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = dial(f->port);
    for (const char *p = req; *p != '\0'; p++) {
        send_all(fd, p, 1);
        struct timespec ts = {.tv_nsec = 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char *r = read_all(fd);
    close(fd);
    assert_string_equal(check_response(r, 200), "ok\n");
    free(r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    int fd = dial(f->port);
    send_all(fd, "GET /heal", 9);
    double t0 = now_s();
    char *r = read_all(fd); /* closed without an answer after read_timeout (0.5 s) */
    double dt = now_s() - t0;
    close(fd);
    assert_string_equal(r, "");
    assert_true(dt > 0.3 && dt < 4.0);
    free(r);
}

static void test_client_limit(void **state)
{
    struct fixture *f = *state;
    int idle[4];
    for (int i = 0; i < 4; i++) {
        idle[i] = dial(f->port);
        send_all(idle[i], "G", 1);
    }
    struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
    nanosleep(&ts, NULL); /* let the loop accept them */
    int extra = dial(f->port);
    char *r = read_all(extra); /* accepted and closed at once */
    assert_string_equal(r, "");
    free(r);
    close(extra);
    for (int i = 0; i < 4; i++)
        close(idle[i]);
    nanosleep(&ts, NULL);
    r = fetch_str(f->port, "GET /healthz HTTP/1.1\r\n\r\n");
    check_response(r, 200);
    free(r);
}

static void test_new_errors(void **state)
{
    struct fixture *f = *state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    struct admin_config cfg;
    struct sw_err err = {{0}};
    static const char *const bad[] = {"nonsense",         "127.0.0.1",      ":9464",
                                      "127.0.0.1:",       "127.0.0.1:x1",   "[::1:9464",
                                      "example.org:9464", "127.0.0.1:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        admin_config_defaults(&cfg);
        cfg.bind = bad[i];
        err.msg[0] = '\0';
        if (admin_new(loop, &cfg, NULL, &err) != NULL)
            fail_msg("bind \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err.msg, "admin: "));
    }
    char busy[64];
    snprintf(busy, sizeof(busy), "127.0.0.1:%u", f->port);
    admin_config_defaults(&cfg);
    cfg.bind = busy;
    assert_null(admin_new(loop, &cfg, NULL, &err));
    assert_non_null(strstr(err.msg, "Address already in use"));
    admin_config_defaults(&cfg);
    cfg.bind = "127.0.0.1:0";
    cfg.max_request = 10;
    assert_null(admin_new(loop, &cfg, NULL, &err));

    /* IPv6 loopback binds too */
    admin_config_defaults(&cfg);
    cfg.bind = "[::1]:0";
    struct admin *a = admin_new(loop, &cfg, NULL, &err);
    if (a != NULL) { /* hosts without IPv6 skip this part */
        assert_true(admin_port(a) > 0);
        admin_free(a);
    }
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trickle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
