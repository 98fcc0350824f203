/* A runtime: everything a reload replaces, as one immutable, refcounted snapshot: the config,
 * the compiled rules (matcher) and the TLS contexts of every listener.
 *
 * Built on the main thread (start-up, SIGHUP), never on a worker loop. Each worker holds a
 * reference to the current one and swaps at a safe point (ev_async); each session holds a
 * reference to the one it started with, so a reload never changes a live session. */
#ifndef SW_PROXY_RUNTIME_H
#define SW_PROXY_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "matcher/matcher.h"
#include "proxy/config.h"
#include "proxy/ruleload.h"
#include "proxy/tls.h"

struct runtime_listener {
    const struct config_listener *cfg; /* borrowed from runtime.cfg */
    struct tls_server server;          /* n == 0 when tls = none */
    SSL_CTX *client_ctx;               /* upstream TLS; NULL when upstream.tls is false */
};

struct runtime {
    atomic_uint refs;
    uint64_t generation;     /* 1 at start-up, +1 per successful reload */
    struct config *cfg;      /* owned */
    struct matcher *matcher; /* owned reference */
    struct ruleload_info rules_info;
    struct runtime_listener *listeners; /* cfg->n_listeners of them */
};

/* Builds a runtime from cfg (ownership taken, freed on failure too): compiles or loads the
 * rules, reads every certificate and key. Blocking and slow: main thread only. Returns one
 * reference, or NULL with err "file:line: reason". */
struct runtime *runtime_new(struct config *cfg, struct sw_err *err);

/* Loads the file at path and builds a runtime from it (config_load + runtime_new). */
struct runtime *runtime_load(const char *path, struct sw_err *err);

/* Takes a reference (any thread). Returns rt. */
struct runtime *runtime_ref(struct runtime *rt);

/* Drops a reference (any thread); the last one frees everything. NULL is fine. */
void runtime_unref(struct runtime *rt);

#endif
