/* The admin HTTP listener: GET /metrics (Prometheus text 0.0.4) and GET /healthz, on the main
 * thread's libev loop.
 *
 * Deliberately minimal: HTTP/1.0 and 1.1 GET only, one request per connection (every response
 * says Connection: close), the request head bounded in size and in time, a bounded number of
 * concurrent clients (further ones are accepted and closed at once). Responses:
 *   GET /metrics -> 200 text/plain; version=0.0.4; charset=utf-8
 *   GET /healthz -> 200 "ok\n", or 503 "draining\n" once admin_set_draining(a, true)
 *   other paths  -> 404;  other methods -> 405 (Allow: GET);  malformed -> 400;
 *   head too big -> 431;  timeout -> closed without answer.
 * A query string is ignored ("/metrics?x" is /metrics). HEAD is not supported (405). */
#ifndef SW_PROXY_ADMIN_H
#define SW_PROXY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "protocols/sw_rc.h"
#include "proxy/metrics.h"

#define ADMIN_BIND_DEFAULT "127.0.0.1:9464"
#define ADMIN_MAX_REQUEST_DEFAULT 8192
#define ADMIN_READ_TIMEOUT_DEFAULT 5.0 /* seconds */
#define ADMIN_MAX_CLIENTS_DEFAULT 16

struct admin_config {
    const char *bind;    /* "host:port", "[v6]:port"; port 0 = ephemeral; borrowed for the call */
    size_t max_request;  /* bound on the request head, bytes */
    double read_timeout; /* seconds from accept to a complete request head */
    unsigned max_clients;
};

/* Fills cfg with the defaults above. */
void admin_config_defaults(struct admin_config *cfg);

struct admin;

/* Binds, listens and starts serving on loop (borrowed; must outlive the admin). metrics is
 * borrowed (may be NULL: /metrics then answers 503). Call before dropping privileges if the
 * port needs it. Returns NULL with err ("admin: bind 127.0.0.1:9464: Address already in use"). */
struct admin *admin_new(struct ev_loop *loop, const struct admin_config *cfg,
                        struct metrics *metrics, struct sw_err *err);

/* Stops the watchers, closes the listener and every client; must run on the loop's thread. */
void admin_free(struct admin *a);

/* /healthz answers 503 from now on when draining (any thread; takes effect on the next
 * request). Also sets the spimwall_draining gauge when metrics were given. */
void admin_set_draining(struct admin *a, bool draining);

/* The bound port (useful with port 0), host byte order. */
unsigned admin_port(const struct admin *a);

#endif
