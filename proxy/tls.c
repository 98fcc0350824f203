/* TLS contexts, SNI selection and failure classification; see tls.h. */
#include "proxy/tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

void tls_global_init(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

static int ssl_fail(struct sw_err *err, const struct config *cfg, int line, const char *what,
                    const char *arg)
{
    /* the whole queue, oldest first: the first entry says why (e.g. the errno of fopen) */
    char buf[256] = "";
    size_t len = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0 && len < sizeof(buf) - 1) {
        const char *r =
            ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
        char code[32];
        if (r == NULL) {
            snprintf(code, sizeof(code), "error %lx", e);
            r = code;
        }
        int n = snprintf(buf + len, sizeof(buf) - len, "%s%s", len > 0 ? ": " : "", r);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    ERR_clear_error();
    if (len == 0)
        snprintf(buf, sizeof(buf), "unknown error");
    return sw_err_set(err, "%s:%d: %s %s: %s", cfg->path, line, what, arg != NULL ? arg : "", buf);
}

/* Settings shared by server and client contexts. */
static int ctx_common(SSL_CTX *ctx, const struct config *cfg, int line, struct sw_err *err)
{
    SSL_CTX_set_min_proto_version(ctx, cfg->tls.min_version);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* a peer that closes without close_notify is an end of stream, not an error */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    if (cfg->tls.ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1)
        return ssl_fail(err, cfg, line, "tls.ciphers", cfg->tls.ciphers);
    if (cfg->tls.ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, cfg->tls.ciphersuites) != 1)
        return ssl_fail(err, cfg, line, "tls.ciphersuites", cfg->tls.ciphersuites);
    if (cfg->tls.groups != NULL && SSL_CTX_set1_groups_list(ctx, cfg->tls.groups) != 1)
        return ssl_fail(err, cfg, line, "tls.groups", cfg->tls.groups);
    return SW_OK;
}

static bool name_matches(const char *pattern, const char *name)
{
    if (strcasecmp(pattern, name) == 0)
        return true;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(pattern + 1, dot) == 0;
    }
    return false;
}

/* SNI: switch to the context whose names match; unknown or absent names keep the default. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    struct tls_server *ts = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (unsigned i = 0; i < ts->n; i++) {
        const struct config_cert *c = &ts->cfg->certs[i];
        for (unsigned k = 0; k < c->n_names; k++) {
            if (name_matches(c->names[k], name)) {
                if (i != 0)
                    SSL_set_SSL_CTX(ssl, ts->ctx[i]);
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

int tls_server_init(struct tls_server *ts, const struct config *cfg,
                    const struct config_listener *l, struct sw_err *err)
{
    static const unsigned char sid_ctx[] = "spimwall";
    ts->cfg = l;
    ts->n = 0;
    ts->ctx = calloc(l->n_certs, sizeof(*ts->ctx));
    if (ts->ctx == NULL)
        return sw_err_set(err, "%s:%d: out of memory", cfg->path, l->line);
    for (unsigned i = 0; i < l->n_certs; i++) {
        const struct config_cert *c = &l->certs[i];
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL)
            return ssl_fail(err, cfg, c->line, "listener", l->name);
        ts->ctx[i] = ctx;
        ts->n = i + 1;
        if (ctx_common(ctx, cfg, c->line, err) != SW_OK)
            return SW_ERROR;
        if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1)
            return ssl_fail(err, cfg, c->line, "certificate", c->cert);
        if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1)
            return ssl_fail(err, cfg, c->line, "key", c->key);
        if (SSL_CTX_check_private_key(ctx) != 1)
            return ssl_fail(err, cfg, c->line, "key does not match certificate", c->cert);
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
        SSL_CTX_set_session_cache_mode(ctx, cfg->tls.session_cache_size > 0 ? SSL_SESS_CACHE_SERVER
                                                                            : SSL_SESS_CACHE_OFF);
        SSL_CTX_sess_set_cache_size(ctx, cfg->tls.session_cache_size);
        SSL_CTX_set_timeout(ctx, cfg->tls.session_timeout);
        if (!cfg->tls.session_tickets)
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        /* TLS 1.3 tickets replace the cache; one is enough for a proxy's clients */
        SSL_CTX_set_num_tickets(ctx, cfg->tls.session_tickets ? 1 : 0);
        if (i == 0) {
            SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
            SSL_CTX_set_tlsext_servername_arg(ctx, ts);
        }
    }
    return SW_OK;
}

void tls_server_deinit(struct tls_server *ts)
{
    for (unsigned i = 0; i < ts->n; i++)
        SSL_CTX_free(ts->ctx[i]);
    free(ts->ctx);
    ts->ctx = NULL;
    ts->n = 0;
}

SSL_CTX *tls_client_ctx_new(const struct config *cfg, const struct config_listener *l,
                            tls_new_session_cb *new_session, struct sw_err *err)
{
    const struct config_upstream *u = &l->upstream;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ssl_fail(err, cfg, l->line, "listener", l->name);
        return NULL;
    }
    if (ctx_common(ctx, cfg, l->line, err) != SW_OK)
        goto fail;
    if (u->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (u->ca_file != NULL) {
            if (SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL) != 1) {
                ssl_fail(err, cfg, l->line, "upstream.ca_file", u->ca_file);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ssl_fail(err, cfg, l->line, "upstream: system CA store", NULL);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (new_session != NULL && cfg->tls.session_tickets) {
        /* the caller keeps sessions (per worker); OpenSSL's internal store stays unused */
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *tls_server_ssl_new(struct tls_server *ts)
{
    return SSL_new(ts->ctx[0]);
}

SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *name)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (name != NULL) {
        struct in6_addr a;
        bool is_ip = inet_pton(AF_INET, name, &a) == 1 || inet_pton(AF_INET6, name, &a) == 1;
        /* SNI must not carry an IP literal; verification matches the IP SAN instead */
        if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
            goto fail;
        if (is_ip) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
                goto fail;
        } else if (SSL_set1_host(ssl, name) != 1) {
            goto fail;
        }
    }
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

enum metrics_tls_reason tls_failure_reason(SSL *ssl)
{
    enum metrics_tls_reason r = METRICS_TLS_OTHER;
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        r = METRICS_TLS_EOF;
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
        int reason = ERR_GET_REASON(e);
        switch (reason) {
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
            r = METRICS_TLS_NO_SHARED_CIPHER;
            break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
            r = METRICS_TLS_PROTOCOL_VERSION;
            break;
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
        case SSL_R_UNKNOWN_PROTOCOL:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_RECORD_LENGTH_MISMATCH:
            r = METRICS_TLS_NOT_TLS;
            break;
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            r = METRICS_TLS_VERIFY;
            break;
        case SSL_R_UNEXPECTED_EOF_WHILE_READING:
            r = METRICS_TLS_EOF;
            break;
        default:
            if (reason >= SSL_AD_REASON_OFFSET)
                r = METRICS_TLS_ALERT;
            break;
        }
    }
    if (r == METRICS_TLS_OTHER && ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK)
        r = METRICS_TLS_VERIFY;
    ERR_clear_error();
    return r;
}

const char *tls_reason_name(enum metrics_tls_reason r)
{
    static const char *const names[] = {
        "timeout", "eof",   "not_tls", "protocol_version", "no_shared_cipher", "unknown_sni",
        "verify",  "alert", "other"};
    return (unsigned)r < METRICS_TLS_REASON_COUNT ? names[r] : "other";
}
