/* Unit tests for proxy/log.c: exact lines in logfmt and JSON, escaping of hostile values in
 * both, typed JSON values, truncation, per-site rate limiting with an injected clock, level and
 * per-module debug filtering, config parsing, and whole lines from concurrent writers. Output
 * goes to a temporary file opened O_APPEND, read back after each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include "proxy/log.h"

static uint64_t fake_mono;
static uint64_t fake_wall = 1790000000123ull; /* 2026-09-21T14:13:20.123Z */

static uint64_t mono_cb(void)
{
    return fake_mono;
}

static uint64_t wall_cb(void)
{
    return fake_wall;
}

struct cap {
    int fd;
    char path[64];
    off_t read_off;
    char buf[16 << 20];
};

static struct cap *cap_open(enum log_format format, enum log_level level, uint32_t debug)
{
    struct cap *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    snprintf(c->path, sizeof(c->path), "/tmp/sw_test_log_XXXXXX");
    c->fd = mkstemp(c->path);
    assert_true(c->fd != -1);
    assert_int_equal(fcntl(c->fd, F_SETFL, O_APPEND), 0);
    struct log_config cfg;
    log_config_defaults(&cfg);
    cfg.fd = c->fd;
    cfg.format = format;
    cfg.level = level;
    cfg.debug_mask = debug;
    struct sw_err err = {{0}};
    assert_int_equal(log_init(&cfg, &err), SW_OK);
    log_set_clock(mono_cb, wall_cb);
    return c;
}

/* Everything written since the last call, NUL-terminated. */
static const char *cap_read(struct cap *c)
{
    ssize_t n = pread(c->fd, c->buf, sizeof(c->buf) - 1, c->read_off);
    assert_true(n >= 0);
    c->buf[n] = '\0';
    c->read_off += n;
    return c->buf;
}

static void cap_close(struct cap *c)
{
    log_set_clock(NULL, NULL);
    log_deinit();
    close(c->fd);
    unlink(c->path);
    free(c);
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void test_logfmt_line(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_SESSION, 0, 0);
    log_emit(&site, LOG_LEVEL_INFO, 3, 42, "conn_open", "listener=%s peer=%s:%u n=%d lit=x", "c2s",
             "192.0.2.1", 5000u, -7);
    assert_string_equal(cap_read(c),
                        "ts=2026-09-21T14:13:20.123Z level=info worker=3 conn=42 mod=session "
                        "event=conn_open listener=c2s peer=192.0.2.1:5000 n=-7 lit=x\n");
    log_emit(&site, LOG_LEVEL_ERROR, 0, 0, "startup_failed", NULL);
    assert_string_equal(cap_read(c), "ts=2026-09-21T14:13:20.123Z level=error worker=0 conn=0 "
                                     "mod=session event=startup_failed\n");
    /* the one-liner macro */
    LOG(LOG_MOD_TLS, LOG_LEVEL_WARN, 1, 2, "handshake_failed", "reason=%s", "verify");
    assert_string_equal(cap_read(c), "ts=2026-09-21T14:13:20.123Z level=warn worker=1 conn=2 "
                                     "mod=tls event=handshake_failed reason=verify\n");
    cap_close(c);
}

static void test_json_line(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_JSON, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_MATCHER, 0, 0);
    log_emit(&site, LOG_LEVEL_INFO, 2, 17, "verdict",
             "action=%s score=%.2f rule=%s bytes=%zu n=%d neg=%lld peer=%s:%u hex=%x big=%" PRIu64
             " inf=%f",
             "drop", 1.5, "MSN_LOL_SEE_IT", (size_t)123, 4, -9ll, "::1", 80u, 255u, UINT64_MAX,
             (double)INFINITY);
    assert_string_equal(
        cap_read(c),
        "{\"ts\":\"2026-09-21T14:13:20.123Z\",\"level\":\"info\",\"worker\":2,\"conn\":17,"
        "\"mod\":\"matcher\",\"event\":\"verdict\",\"action\":\"drop\",\"score\":1.50,"
        "\"rule\":\"MSN_LOL_SEE_IT\",\"bytes\":123,\"n\":4,\"neg\":-9,\"peer\":\"::1:80\","
        "\"hex\":\"ff\",\"big\":18446744073709551615,\"inf\":\"inf\"}\n");
    cap_close(c);
}

static void test_logfmt_escaping(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_XMPP, 0, 0);
    log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "a=%s b=%s c=%s d=%s e=%s f=%s g=%s h=%s", "x y",
             "say \"hi\"", "l1\nl2\r\t", "", "k=v", "back\\slash", "\xff\xc3(", "caf\xc3\xa9");
    assert_string_equal(cap_read(c),
                        "ts=2026-09-21T14:13:20.123Z level=info worker=0 conn=0 mod=xmpp event=e "
                        "a=\"x y\" b=\"say \\\"hi\\\"\" c=\"l1\\nl2\\r\\t\" d=\"\" e=\"k=v\" "
                        "f=\"back\\\\slash\" g=\"\\ufffd\\ufffd(\" h=\"caf\xc3\xa9\"\n");
    /* a value cannot forge a field or a line */
    log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "jid=%s", "evil level=error\nts=0 event=x");
    const char *out = cap_read(c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "jid=\"evil level=error\\nts=0 event=x\"\n"));
    /* control bytes and NULL */
    const char *volatile null_str = NULL; /* hidden from the compiler's format checks */
    log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "a=%s b=%s c=%c", "\x01\x7f", null_str, 'q');
    assert_non_null(strstr(cap_read(c), "a=\"\\u0001\\u007f\" b=(null) c=q\n"));
    cap_close(c);
}

static void test_json_escaping(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_JSON, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_MSNP, 0, 0);
    log_emit(&site, LOG_LEVEL_INFO, 0, 0, "ev\"il", "a=%s b=%s c=%s d=%s bare", "x y \"q\" \\",
             "l1\nl2\r\t\x01", "\xe2\x82", "\xf0\x9f\x98\x80");
    /* the event name is escaped too; a bare key is a flag */
    const char *out = cap_read(c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"event\":\"ev\\\"il\""));
    assert_non_null(strstr(out, "\"a\":\"x y \\\"q\\\" \\\\\""));
    assert_non_null(strstr(out, "\"b\":\"l1\\nl2\\r\\t\\u0001\""));
    assert_non_null(strstr(out, "\"c\":\"\\ufffd\\ufffd\""));
    assert_non_null(strstr(out, "\"d\":\"\xf0\x9f\x98\x80\""));
    assert_non_null(strstr(out, "\"bare\":true}\n"));
    cap_close(c);
}

static void test_truncation(void **state)
{
    for (int json = 0; json <= 1; json++) {
        struct cap *c = cap_open(json ? LOG_FORMAT_JSON : LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
        static struct log_site site = LOG_SITE_INIT(LOG_MOD_MAIN, 0, 0);
        char *big = malloc(10000);
        assert_non_null(big);
        memset(big, '"', 9999);
        big[9999] = '\0';
        log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "small=1 big=%s after=2", big);
        const char *out = cap_read(c);
        size_t len = strlen(out);
        assert_true(len <= LOG_LINE_MAX);
        assert_int_equal(count_lines(out), 1);
        assert_null(strstr(out, "big="));
        assert_null(strstr(out, "\"big\""));
        if (json) {
            assert_non_null(strstr(out, "\"small\":\"1\",\"truncated\":true}\n"));
        } else {
            assert_non_null(strstr(out, " small=1 truncated=true\n"));
        }
        /* a long but fitting %s is not cut at 512 bytes */
        memset(big, 'a', 1500);
        big[1500] = '\0';
        log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "v=%s", big);
        out = cap_read(c);
        assert_null(strstr(out, "truncated"));
        assert_non_null(strstr(out, big));
        free(big);
        cap_close(c);
    }
}

static void test_rate_limit(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_SESSION, 2, 3); /* 2/s, burst 3 */
    fake_mono = 1000;
    for (int i = 0; i < 10; i++)
        log_emit(&site, LOG_LEVEL_WARN, 0, (uint64_t)i, "slow", "i=%d", i);
    const char *out = cap_read(c);
    assert_int_equal(count_lines(out), 3);
    assert_null(strstr(out, "suppressed"));
    assert_non_null(strstr(out, "conn=2 "));

    fake_mono += 499; /* 0.998 token: still nothing */
    log_emit(&site, LOG_LEVEL_WARN, 0, 10, "slow", NULL);
    assert_string_equal(cap_read(c), "");
    fake_mono += 1; /* one token */
    log_emit(&site, LOG_LEVEL_WARN, 0, 11, "slow", "k=v");
    out = cap_read(c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "conn=11 mod=session event=slow k=v suppressed=8\n"));
    log_emit(&site, LOG_LEVEL_WARN, 0, 12, "slow", NULL);
    assert_string_equal(cap_read(c), "");

    /* a long pause refills to the burst, not beyond */
    fake_mono += 3600 * 1000;
    for (int i = 0; i < 5; i++)
        log_emit(&site, LOG_LEVEL_WARN, 0, 100, "slow", NULL);
    out = cap_read(c);
    assert_int_equal(count_lines(out), 3);
    assert_non_null(strstr(out, "suppressed=1\n"));

    /* a different site has its own bucket; lines dropped by level do not count */
    static struct log_site other = LOG_SITE_INIT(LOG_MOD_SESSION, 1, 1);
    log_emit(&other, LOG_LEVEL_DEBUG, 0, 0, "x", NULL);
    log_emit(&other, LOG_LEVEL_INFO, 0, 0, "x", NULL);
    log_emit(&other, LOG_LEVEL_INFO, 0, 0, "x", NULL);
    fake_mono += 1000;
    log_emit(&other, LOG_LEVEL_INFO, 0, 0, "x", NULL);
    out = cap_read(c);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "event=x suppressed=1\n"));

    /* JSON carries it as a number */
    cap_close(c);
    c = cap_open(LOG_FORMAT_JSON, LOG_LEVEL_INFO, 0);
    log_emit(&other, LOG_LEVEL_INFO, 0, 0, "x", NULL);
    fake_mono += 1000;
    log_emit(&other, LOG_LEVEL_INFO, 0, 0, "x", NULL);
    assert_non_null(strstr(cap_read(c), "\"event\":\"x\",\"suppressed\":1}\n"));
    cap_close(c);
}

static void test_levels(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_WARN, 0);
    static struct log_site tls = LOG_SITE_INIT(LOG_MOD_TLS, 0, 0);
    static struct log_site xmpp = LOG_SITE_INIT(LOG_MOD_XMPP, 0, 0);
    log_emit(&tls, LOG_LEVEL_INFO, 0, 0, "info", NULL);
    log_emit(&tls, LOG_LEVEL_DEBUG, 0, 0, "debug", NULL);
    assert_string_equal(cap_read(c), "");
    assert_false(log_enabled(LOG_MOD_TLS, LOG_LEVEL_INFO));
    assert_true(log_enabled(LOG_MOD_TLS, LOG_LEVEL_WARN));
    log_emit(&tls, LOG_LEVEL_ERROR, 0, 0, "error", NULL);
    log_emit(&tls, LOG_LEVEL_WARN, 0, 0, "warn", NULL);
    assert_int_equal(count_lines(cap_read(c)), 2);

    /* per-module debug switch: debug lines of tls only, other levels unchanged */
    uint32_t mask = 0;
    struct sw_err err = {{0}};
    assert_int_equal(log_parse_debug("tls", &mask, &err), SW_OK);
    log_set_debug(mask);
    assert_true(log_enabled(LOG_MOD_TLS, LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_MOD_XMPP, LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_MOD_TLS, LOG_LEVEL_INFO));
    log_emit(&tls, LOG_LEVEL_DEBUG, 0, 0, "tls_debug", NULL);
    log_emit(&xmpp, LOG_LEVEL_DEBUG, 0, 0, "xmpp_debug", NULL);
    log_emit(&tls, LOG_LEVEL_INFO, 0, 0, "tls_info", NULL);
    const char *out = cap_read(c);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "level=debug worker=0 conn=0 mod=tls event=tls_debug\n"));

    log_set_debug(0);
    log_set_level(LOG_LEVEL_DEBUG);
    log_emit(&xmpp, LOG_LEVEL_DEBUG, 0, 0, "xmpp_debug", NULL);
    assert_int_equal(count_lines(cap_read(c)), 1);
    log_emit(&xmpp, (enum log_level)7, 0, 0, "bogus", NULL);
    assert_string_equal(cap_read(c), "");
    cap_close(c);
}

static void test_parse_config(void **state)
{
    struct sw_err err = {{0}};
    uint32_t mask = 123;
    assert_int_equal(log_parse_debug("", &mask, &err), SW_OK);
    assert_int_equal(mask, 0);
    assert_int_equal(log_parse_debug("tls, session ,xmpp", &mask, &err), SW_OK);
    assert_int_equal(mask, (1u << LOG_MOD_TLS) | (1u << LOG_MOD_SESSION) | (1u << LOG_MOD_XMPP));
    assert_int_equal(log_parse_debug("all", &mask, &err), SW_OK);
    assert_int_equal(mask, (1u << LOG_MOD_COUNT) - 1);
    assert_int_equal(log_parse_debug("tls,bogus", &mask, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "bogus"));
    enum log_level lvl;
    assert_int_equal(log_parse_level("debug", &lvl, &err), SW_OK);
    assert_int_equal(lvl, LOG_LEVEL_DEBUG);
    assert_int_equal(log_parse_level("warning", &lvl, &err), SW_ERROR);
    assert_string_equal(log_module_name(LOG_MOD_PROXYPROTO), "proxyproto");
    assert_string_equal(log_level_name(LOG_LEVEL_WARN), "warn");
    struct log_config cfg;
    log_config_defaults(&cfg);
    cfg.fd = -1;
    assert_int_equal(log_init(&cfg, &err), SW_ERROR);
    log_config_defaults(&cfg);
    cfg.format = (enum log_format)9;
    assert_int_equal(log_init(&cfg, &err), SW_ERROR);
}

static void test_errno_kept(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
    static struct log_site site = LOG_SITE_INIT(LOG_MOD_MAIN, 0, 0);
    errno = ECONNRESET;
    log_emit(&site, LOG_LEVEL_INFO, 0, 0, "e", "err=%s", strerror(errno));
    assert_int_equal(errno, ECONNRESET);
    assert_non_null(strstr(cap_read(c), "err=\"Connection reset by peer\"\n"));
    cap_close(c);
}

#define THREADS 4
#define PER_THREAD 2000

static struct log_site thread_site = LOG_SITE_INIT(LOG_MOD_WORKER, 0, 0);

static void *writer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char val[300];
    memset(val, 'a' + (int)id, sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < PER_THREAD; i++)
        log_emit(&thread_site, LOG_LEVEL_INFO, id, (uint64_t)i, "tick", "v=%s", val);
    return NULL;
}

static void test_threads(void **state)
{
    struct cap *c = cap_open(LOG_FORMAT_LOGFMT, LOG_LEVEL_INFO, 0);
    log_set_clock(NULL, NULL); /* the real clocks are thread-safe; the fakes are too, anyway */
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    const char *out = cap_read(c);
    assert_int_equal(count_lines(out), THREADS * PER_THREAD);
    /* every line whole: its worker id matches its value's letter */
    for (const char *p = out; *p != '\0';) {
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        /* memmem within the line: strstr would rescan the whole 3 MB tail under ASan */
        const char *w = memmem(p, (size_t)(e - p), " worker=", 8);
        assert_true(w != NULL && w < e);
        unsigned id = (unsigned)(w[8] - '0');
        assert_true(id < THREADS);
        const char *v = memmem(p, (size_t)(e - p), " v=", 3);
        assert_true(v != NULL && v < e);
        assert_int_equal(e - (v + 3), 299);
        for (const char *q = v + 3; q < e; q++)
            assert_int_equal(*q, 'a' + (int)id);
        p = e + 1;
    }
    cap_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt_line),     cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_logfmt_escaping), cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_truncation),      cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_levels),          cmocka_unit_test(test_parse_config),
        cmocka_unit_test(test_errno_kept),      cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
