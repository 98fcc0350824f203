/* Plain and TLS transports; see xprt.h. */
#include "proxy/xprt.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>

static ssize_t plain_read(struct xprt *x, uint8_t *p, size_t len)
{
    ssize_t n = recv(x->fd, p, len, 0);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        x->rd_need = EV_READ;
        return SW_AGAIN;
    }
    return SW_ERROR;
}

static ssize_t plain_write(struct xprt *x, const uint8_t *p, size_t len)
{
    ssize_t n = send(x->fd, p, len, MSG_NOSIGNAL);
    if (n > 0)
        return n;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        x->wr_need = EV_WRITE;
        return SW_AGAIN;
    }
    return SW_ERROR;
}

static int plain_handshake(struct xprt *x)
{
    return SW_OK;
}

static int plain_shutdown(struct xprt *x)
{
    if (shutdown(x->fd, SHUT_WR) == -1 && errno != ENOTCONN)
        return SW_ERROR;
    return SW_OK;
}

static void plain_close(struct xprt *x)
{
    if (x->fd != -1)
        close(x->fd);
    x->fd = -1;
}

const struct xprt_ops xprt_plain_ops = {
    .name = "plain",
    .read = plain_read,
    .write = plain_write,
    .handshake = plain_handshake,
    .shutdown = plain_shutdown,
    .close = plain_close,
};

void xprt_init_plain(struct xprt *x, int fd)
{
    x->ops = &xprt_plain_ops;
    x->ssl = NULL;
    x->fd = fd;
    x->rd_need = x->wr_need = x->hs_need = EV_READ;
    x->wr_need = EV_WRITE;
}

/* Maps SSL_get_error onto SW_AGAIN with the needed event, or SW_ERROR. The error queue is left
 * for the caller (tls_failure_reason) on SW_ERROR. */
static int tls_again(SSL *ssl, int ret, uint8_t *need)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *need = EV_READ;
        return SW_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *need = EV_WRITE;
        return SW_AGAIN;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EINTR) {
            *need = EV_READ;
            return SW_AGAIN;
        }
        return SW_ERROR;
    default:
        return SW_ERROR;
    }
}

static ssize_t tls_read(struct xprt *x, uint8_t *p, size_t len)
{
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(x->ssl, p, len, &got);
    if (ret == 1)
        return (ssize_t)got;
    if (SSL_get_error(x->ssl, ret) == SSL_ERROR_ZERO_RETURN)
        return 0;
    return tls_again(x->ssl, ret, &x->rd_need);
}

static ssize_t tls_write(struct xprt *x, const uint8_t *p, size_t len)
{
    size_t put = 0;
    ERR_clear_error();
    int ret = SSL_write_ex(x->ssl, p, len, &put);
    if (ret == 1)
        return (ssize_t)put;
    return tls_again(x->ssl, ret, &x->wr_need);
}

static int tls_handshake(struct xprt *x)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(x->ssl);
    if (ret == 1)
        return SW_OK;
    return tls_again(x->ssl, ret, &x->hs_need);
}

static int tls_shutdown(struct xprt *x)
{
    ERR_clear_error();
    /* 0: our close_notify is out, the peer's not seen yet: that is all a half-close needs. */
    int ret = SSL_shutdown(x->ssl);
    if (ret < 0) {
        int rc = tls_again(x->ssl, ret, &x->wr_need);
        if (rc == SW_AGAIN)
            return rc;
        ERR_clear_error();
        /* the peer may already be gone; still send our FIN */
    }
    if (shutdown(x->fd, SHUT_WR) == -1 && errno != ENOTCONN)
        return SW_ERROR;
    return SW_OK;
}

static void tls_close(struct xprt *x)
{
    SSL_free(x->ssl);
    x->ssl = NULL;
    ERR_clear_error();
    plain_close(x);
}

const struct xprt_ops xprt_tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

void xprt_init_tls(struct xprt *x, int fd, SSL *ssl, int server)
{
    x->ops = &xprt_tls_ops;
    x->ssl = ssl;
    x->fd = fd;
    x->rd_need = x->hs_need = EV_READ;
    x->wr_need = EV_WRITE;
    SSL_set_fd(ssl, fd);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
}
