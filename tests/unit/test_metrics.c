/* Unit tests for proxy/metrics.c: the rendered output is checked line by line against the
 * text exposition format 0.0.4 (HELP and TYPE before samples, one family each, valid names,
 * label escaping, numeric values, cumulative histogram buckets ending in +Inf with matching
 * _count and a _sum); values follow increments, gauges go negative, rule ids are interned up
 * to the bound; and concurrent increments from 4 threads (own slots and one shared slot, with
 * racing first hits of the same rule id) sum exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include "proxy/metrics.h"

static bool name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Parses `{k="v",...}` at *p; advances past it. */
static void parse_labels(const char **p)
{
    const char *s = *p;
    assert_int_equal(*s, '{');
    s++;
    while (*s != '}') {
        const char *k = s;
        while (*s != '=' && *s != '\0')
            s++;
        assert_true(name_ok(k, (size_t)(s - k)));
        assert_int_equal(s[1], '"');
        s += 2;
        while (*s != '"') {
            assert_true(*s != '\0' && *s != '\n');
            if (*s == '\\') {
                s++;
                assert_true(*s == '\\' || *s == '"' || *s == 'n');
            }
            s++;
        }
        s++;
        if (*s == ',')
            s++;
        else
            assert_int_equal(*s, '}');
    }
    *p = s + 1;
}

struct family_seen {
    char name[128];
    char type[16];
    bool help;
};

/* Validates the whole exposition; returns the number of samples. */
static unsigned check_exposition(const char *text)
{
    struct family_seen fam[128];
    unsigned nfam = 0, samples = 0;
    const char *cur_type = NULL;
    char cur[128] = "";
    uint64_t last_bucket = 0;
    bool in_hist = false;
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    for (const char *line = text; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        size_t n = (size_t)(eol - line);
        char buf[1024];
        assert_true(n < sizeof(buf));
        memcpy(buf, line, n);
        buf[n] = '\0';
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            const char *name = buf + 7;
            const char *sp = strchr(name, ' ');
            assert_non_null(sp);
            assert_true(name_ok(name, (size_t)(sp - name)));
            unsigned i;
            for (i = 0; i < nfam; i++)
                if (strlen(fam[i].name) == (size_t)(sp - name) &&
                    memcmp(fam[i].name, name, (size_t)(sp - name)) == 0)
                    break;
            if (i == nfam) {
                assert_true(nfam < 128);
                memset(&fam[nfam], 0, sizeof(fam[nfam]));
                memcpy(fam[nfam].name, name, (size_t)(sp - name));
                nfam++;
            }
            if (buf[2] == 'H') {
                assert_false(fam[i].help);
                assert_int_equal(fam[i].type[0], '\0'); /* HELP before TYPE */
                fam[i].help = true;
            } else {
                assert_int_equal(fam[i].type[0], '\0');
                const char *t = sp + 1;
                assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
                            strcmp(t, "histogram") == 0);
                snprintf(fam[i].type, sizeof(fam[i].type), "%s", t);
                snprintf(cur, sizeof(cur), "%s", fam[i].name);
                cur_type = fam[i].type;
                in_hist = strcmp(t, "histogram") == 0;
                last_bucket = 0;
            }
        } else {
            assert_int_not_equal(buf[0], '#');
            const char *p = buf;
            while (*p != '{' && *p != ' ' && *p != '\0')
                p++;
            size_t nl = (size_t)(p - buf);
            assert_true(name_ok(buf, nl));
            /* the sample belongs to the family whose TYPE came last */
            assert_non_null(cur_type);
            assert_int_equal(strncmp(buf, cur, strlen(cur)), 0);
            const char *suffix = buf + strlen(cur);
            if (in_hist) {
                assert_true(strncmp(suffix, "_bucket{", 8) == 0 ||
                            strncmp(suffix, "_sum ", 5) == 0 || strncmp(suffix, "_count ", 7) == 0);
            } else {
                assert_true(*suffix == '{' || *suffix == ' ');
            }
            if (*p == '{')
                parse_labels(&p);
            assert_int_equal(*p, ' ');
            p++;
            char *end = NULL;
            double v = strtod(p, &end);
            assert_true(end != p && *end == '\0');
            if (strcmp(cur_type, "counter") == 0)
                assert_true(v >= 0);
            if (in_hist && strncmp(suffix, "_bucket", 7) == 0) {
                assert_true((uint64_t)v >= last_bucket);
                last_bucket = (uint64_t)v;
            }
            if (in_hist && strncmp(suffix, "_count", 6) == 0)
                assert_int_equal((uint64_t)v, last_bucket);
            samples++;
        }
        line = eol + 1;
    }
    for (unsigned i = 0; i < nfam; i++) {
        assert_true(fam[i].help);
        assert_true(fam[i].type[0] != '\0');
    }
    return samples;
}

static char *render(struct metrics *m)
{
    struct metrics_buf b;
    metrics_buf_init(&b, 0);
    assert_int_equal(metrics_render(m, &b), SW_OK);
    check_exposition(b.data);
    return b.data; /* caller frees */
}

static void assert_has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL)
        fail_msg("missing line: %s", line);
}

static const char *const two_listeners[] = {"c2s", "we\"ird\\name\nx"};

static void rep_cb(void *arg, struct metrics_rep_stats *st)
{
    (*(int *)arg)++;
    st->capacity = 1000;
    st->entries = 10;
    st->bytes = 65536;
    st->hits = 5;
    st->misses = 6;
    st->evictions = 7;
}

static void test_render_and_values(void **state)
{
    struct sw_err err = {{0}};
    struct metrics *m = metrics_new(2, two_listeners, 2, 0, &err);
    assert_non_null(m);
    char *out = render(m);
    assert_has(out, "# HELP spimwall_connections_total ");
    assert_has(out, "# TYPE spimwall_connections_total counter\n");
    assert_has(out, "spimwall_connections_total{listener=\"c2s\"} 0\n");
    assert_has(out, "spimwall_connections_total{listener=\"we\\\"ird\\\\name\\nx\"} 0\n");
    assert_has(out, "spimwall_draining 0\n");
    assert_null(strstr(out, "spimwall_reputation_"));
    assert_null(strstr(out, "spimwall_rule_hits_total{"));
    free(out);

    struct metrics_slot *s0 = metrics_slot(m, 0), *s1 = metrics_slot(m, 1);
    assert_non_null(s0);
    assert_non_null(s1);
    assert_null(metrics_slot(m, 2));
    metrics_inc(s0, METRIC_CONNECTIONS_TOTAL, 1, 0);
    metrics_inc(s1, METRIC_CONNECTIONS_TOTAL, 1, 0);
    metrics_add(s0, METRIC_CONNECTIONS_CURRENT, 0, 0, 1);
    metrics_add(s1, METRIC_CONNECTIONS_CURRENT, 0, 0, (uint64_t)-3);
    metrics_add(s0, METRIC_BYTES, 0, METRICS_DIR_S2C, 12345);
    metrics_inc(s1, METRIC_TLS_FAILURES, 0, METRICS_TLS_NOT_TLS);
    metrics_inc(s1, METRIC_MESSAGES, 1, METRICS_VERDICT_DROP);
    metrics_inc(s1, METRIC_CONNECTIONS_REJECTED, 0, METRICS_REJECT_PROXY_HEADER);
    metrics_inc(s0, METRIC_TIMEOUTS, 0, METRICS_TIMEOUT_IDLE);
    metrics_inc(s0, METRIC_TLS_HANDSHAKES, 0, METRICS_LEG_UPSTREAM);
    metrics_inc(s0, METRIC_RELOADS, 0, 0);
    metrics_inc(s0, METRIC_RELOAD_FAILURES, 0, 0);
    metrics_inc(s0, METRIC_RELOAD_FAILURES, 0, 0);
    /* out of range: ignored */
    metrics_inc(s0, METRIC_CONNECTIONS_TOTAL, 2, 0);
    metrics_inc(s0, METRIC_BYTES, 0, 2);
    metrics_inc(s0, METRIC_RELOADS, 1, 0);
    metrics_inc(s0, METRIC_ID_COUNT, 0, 0);

    metrics_observe_scan(s0, 5000);          /* 5 us */
    metrics_observe_scan(s1, 1000000);       /* 1 ms, on the bound */
    metrics_observe_scan(s1, 1000000000ull); /* 1 s: only +Inf */
    metrics_rule_hit(s0, "MSN_LOL_SEE_IT");
    metrics_rule_hit(s1, "MSN_LOL_SEE_IT");
    metrics_rule_hit(s1, "rule \"quoted\"");
    int calls = 0;
    metrics_set_rep_cb(m, rep_cb, &calls);
    metrics_set_draining(m, true);

    out = render(m);
    assert_int_equal(calls, 1);
    assert_has(out, "spimwall_connections_total{listener=\"we\\\"ird\\\\name\\nx\"} 2\n");
    assert_has(out, "spimwall_connections_total{listener=\"c2s\"} 0\n");
    assert_has(out, "# TYPE spimwall_connections_current gauge\n");
    assert_has(out, "spimwall_connections_current{listener=\"c2s\"} -2\n");
    assert_has(out,
               "spimwall_bytes_total{listener=\"c2s\",direction=\"server_to_client\"} 12345\n");
    assert_has(out, "spimwall_bytes_total{listener=\"c2s\",direction=\"client_to_server\"} 0\n");
    assert_has(out,
               "spimwall_tls_handshake_failures_total{listener=\"c2s\",reason=\"not_tls\"} 1\n");
    assert_has(out, "spimwall_tls_handshakes_total{listener=\"c2s\",leg=\"upstream\"} 1\n");
    assert_has(out,
               "spimwall_messages_total{listener=\"we\\\"ird\\\\name\\nx\",verdict=\"drop\"} 1\n");
    assert_has(out,
               "spimwall_connections_rejected_total{listener=\"c2s\",reason=\"proxy_header\"} 1\n");
    assert_has(out, "spimwall_timeouts_total{listener=\"c2s\",kind=\"idle\"} 1\n");
    assert_has(out, "spimwall_reloads_total 1\n");
    assert_has(out, "spimwall_reload_failures_total 2\n");
    assert_has(out, "# TYPE spimwall_scan_duration_seconds histogram\n");
    assert_has(out, "spimwall_scan_duration_seconds_bucket{le=\"5e-05\"} 1\n"
                    "spimwall_scan_duration_seconds_bucket{le=\"0.0001\"} 1\n");
    assert_has(out, "spimwall_scan_duration_seconds_bucket{le=\"1e-05\"} 1\n");
    assert_has(out, "spimwall_scan_duration_seconds_bucket{le=\"0.001\"} 2\n");
    assert_has(out, "spimwall_scan_duration_seconds_bucket{le=\"0.25\"} 2\n"
                    "spimwall_scan_duration_seconds_bucket{le=\"+Inf\"} 3\n"
                    "spimwall_scan_duration_seconds_sum 1.001005000\n"
                    "spimwall_scan_duration_seconds_count 3\n");
    assert_has(out, "spimwall_rule_hits_total{rule=\"MSN_LOL_SEE_IT\"} 2\n");
    assert_has(out, "spimwall_rule_hits_total{rule=\"rule \\\"quoted\\\"\"} 1\n");
    assert_has(out, "# TYPE spimwall_reputation_entries gauge\nspimwall_reputation_entries 10\n");
    assert_has(out, "# TYPE spimwall_reputation_evictions_total counter\n"
                    "spimwall_reputation_evictions_total 7\n");
    assert_has(out, "spimwall_reputation_hits_total 5\n");
    assert_has(out, "spimwall_draining 1\n");
    assert_has(out, "spimwall_build_info{version=\"");
    assert_string_equal(metrics_listener_name(m, 0), "c2s");
    assert_null(metrics_listener_name(m, 2));
    free(out);
    metrics_free(m);
}

static void test_rule_bound(void **state)
{
    const char *l[] = {"x"};
    struct metrics *m = metrics_new(1, l, 1, 2, NULL);
    assert_non_null(m);
    struct metrics_slot *s = metrics_slot(m, 0);
    metrics_rule_hit(s, "A");
    metrics_rule_hit(s, "B");
    metrics_rule_hit(s, "C"); /* over the bound */
    metrics_rule_hit(s, "D");
    metrics_rule_hit(s, "A");
    metrics_rule_hit(s, NULL);
    char *out = render(m);
    assert_has(out, "spimwall_rule_hits_total{rule=\"A\"} 2\n");
    assert_has(out, "spimwall_rule_hits_total{rule=\"B\"} 1\n");
    assert_has(out, "spimwall_rule_hits_total{rule=\"_other\"} 3\n");
    assert_null(strstr(out, "rule=\"C\""));
    free(out);
    metrics_free(m);
}

static void test_bounds_and_errors(void **state)
{
    const char *l[] = {"x"};
    struct sw_err err = {{0}};
    assert_null(metrics_new(0, l, 1, 0, &err));
    assert_null(metrics_new(1, l, 0, 0, &err));
    assert_null(metrics_new(1, NULL, 1, 0, &err));
    const char *nul[] = {NULL};
    assert_null(metrics_new(1, nul, 1, 0, &err));
    assert_null(metrics_new(1, l, 1, 1u << 30, &err));
    metrics_free(NULL);

    struct metrics *m = metrics_new(1, l, 1, 0, &err);
    assert_non_null(m);
    struct metrics_buf b;
    metrics_buf_init(&b, 512); /* far too small: fails, holds a bounded partial output */
    assert_int_equal(metrics_render(m, &b), SW_ERROR);
    assert_true(b.len < 512);
    metrics_buf_deinit(&b);
    assert_null(b.data);
    /* reuse of a buffer appends; resetting len renders again from scratch */
    metrics_buf_init(&b, 0);
    assert_int_equal(metrics_render(m, &b), SW_OK);
    size_t len = b.len;
    b.len = 0;
    assert_int_equal(metrics_render(m, &b), SW_OK);
    assert_int_equal(b.len, len);
    metrics_buf_deinit(&b);
    metrics_free(m);
}

#define THREADS 4
#define ITER 200000

struct worker_arg {
    struct metrics_slot *slot;
    unsigned id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    char rule[16];
    for (unsigned i = 0; i < ITER; i++) {
        metrics_inc(a->slot, METRIC_CONNECTIONS_TOTAL, 0, 0);
        metrics_add(a->slot, METRIC_BYTES, 1, METRICS_DIR_C2S, 3);
        metrics_add(a->slot, METRIC_CONNECTIONS_CURRENT, 1, 0, (i & 1) ? (uint64_t)-1 : 1);
        metrics_observe_scan(a->slot, (i % 7) * 20000);
        if (i % 10 == 0) {
            metrics_rule_hit(a->slot, "SHARED_RULE"); /* racing first interning */
            snprintf(rule, sizeof(rule), "R%u", i % 50);
            metrics_rule_hit(a->slot, rule);
        }
    }
    return NULL;
}

static uint64_t sample(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    if (p == NULL)
        fail_msg("no sample %s", prefix);
    return strtoull(p + strlen(prefix), NULL, 10);
}

static void run_threads(bool shared_slot)
{
    const char *l[] = {"a", "b"};
    struct metrics *m = metrics_new(THREADS, l, 2, 0, NULL);
    assert_non_null(m);
    pthread_t t[THREADS];
    struct worker_arg args[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        args[i].slot = metrics_slot(m, shared_slot ? 0 : i);
        args[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    /* scrapes while the writers run must stay valid */
    for (int i = 0; i < 5; i++)
        free(render(m));
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *out = render(m);
    assert_int_equal(sample(out, "spimwall_connections_total{listener=\"a\"} "),
                     (uint64_t)THREADS * ITER);
    assert_int_equal(
        sample(out, "spimwall_bytes_total{listener=\"b\",direction=\"client_to_server\"} "),
        (uint64_t)THREADS * ITER * 3);
    assert_has(out, "spimwall_connections_current{listener=\"b\"} 0\n");
    assert_int_equal(sample(out, "spimwall_scan_duration_seconds_count "),
                     (uint64_t)THREADS * ITER);
    assert_int_equal(sample(out, "spimwall_rule_hits_total{rule=\"SHARED_RULE\"} "),
                     (uint64_t)THREADS * ITER / 10);
    assert_int_equal(sample(out, "spimwall_rule_hits_total{rule=\"R10\"} "),
                     (uint64_t)THREADS * ITER / 50);
    /* each id interned exactly once */
    const char *first = strstr(out, "rule=\"SHARED_RULE\"");
    assert_null(strstr(first + 1, "rule=\"SHARED_RULE\""));
    assert_null(strstr(out, "rule=\"_other\""));
    free(out);
    metrics_free(m);
}

static void test_threads_own_slots(void **state)
{
    run_threads(false);
}

static void test_threads_shared_slot(void **state)
{
    run_threads(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_and_values),   cmocka_unit_test(test_rule_bound),
        cmocka_unit_test(test_bounds_and_errors),   cmocka_unit_test(test_threads_own_slots),
        cmocka_unit_test(test_threads_shared_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
