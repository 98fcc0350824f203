/* OpenSSL contexts built from the config: per listener, one server context per certificate
 * (the first is the default, SNI picks another) and one client context for the upstream leg.
 * Built off the worker loops (start-up, reload) and immutable afterwards; OpenSSL locks its
 * own shared parts (session cache), so every worker uses the same contexts. */
#ifndef SW_PROXY_TLS_H
#define SW_PROXY_TLS_H

#include <openssl/ssl.h>

#include "protocols/sw_rc.h"
#include "proxy/config.h"
#include "proxy/metrics.h"

struct tls_server {
    SSL_CTX **ctx; /* n of them, ctx[0] is the default; owned */
    unsigned n;
    const struct config_listener *cfg; /* borrowed: names come from cfg->certs */
};

/* Process-wide OpenSSL set-up; call once at start. */
void tls_global_init(void);

/* Builds the server contexts of listener l (reads every cert and key now, before privileges
 * drop). Returns SW_OK, or SW_ERROR with err "file:line: listener x: cert.pem: reason". ts is
 * filled; release with tls_server_deinit (also after a failure). l must outlive ts. */
int tls_server_init(struct tls_server *ts, const struct config *cfg,
                    const struct config_listener *l, struct sw_err *err);
void tls_server_deinit(struct tls_server *ts);

/* Called by OpenSSL with each new upstream session (may be NULL: no resumption); returns 1 if
 * it kept the reference to sess, 0 if not (OpenSSL's SSL_CTX_sess_set_new_cb contract). */
typedef int tls_new_session_cb(SSL *ssl, SSL_SESSION *sess);

/* Builds the upstream client context of l (verification on unless l->upstream.verify is
 * false; CA file or the system store; sessions handed to new_session for resumption).
 * Returns a new context, or NULL with err. */
SSL_CTX *tls_client_ctx_new(const struct config *cfg, const struct config_listener *l,
                            tls_new_session_cb *new_session, struct sw_err *err);

/* A new server-side SSL for ts (the SNI callback switches context). NULL on ENOMEM. */
SSL *tls_server_ssl_new(struct tls_server *ts);

/* A new client-side SSL on ctx, with SNI and host name verification for name. NULL on error. */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *name);

/* Classifies the failure of the last handshake call on ssl from the thread's OpenSSL error
 * queue, then clears the queue. */
enum metrics_tls_reason tls_failure_reason(SSL *ssl);

/* The label of a reason, for logs. */
const char *tls_reason_name(enum metrics_tls_reason r);

#endif
