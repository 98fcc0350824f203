/* Unit tests for matcher/reputation.c with replayed timestamps: config errors and defaults, the
 * memory bound for several sizes, exponential decay (one half-life halves, many make it vanish,
 * time going backwards decays nothing), LRU eviction in a small table (a hot key survives, an
 * old one is gone, stats stay within capacity; quarantine and spam history are kept while
 * active), fan-out and campaign counts (exact for small
 * counts, the window semantics of two epochs, estimates and saturation for large counts), rate,
 * bad-domain and sender history, the history bitmap against a model, quarantine, zero keys,
 * and 4 threads hammering distinct and shared keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "matcher/hash.h"
#include "matcher/reputation.h"

#define T0 1700000000000ull /* aligned to every window used below (multiple of 10 s) */

static uint64_t key(const char *kind, unsigned i)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%s-%u", kind, i);
    return sw_hash64(buf, (size_t)n, 0x5eed);
}

static struct rep *new_rep(size_t max_bytes, unsigned shards, uint32_t window_ms)
{
    struct rep_config cfg;
    struct sw_err err = {{0}};
    rep_config_defaults(&cfg);
    cfg.max_bytes = max_bytes;
    cfg.shards = shards;
    if (window_ms != 0)
        cfg.window_ms = window_ms;
    struct rep *rep = rep_new(&cfg, &err);
    if (rep == NULL)
        fail_msg("rep_new: %s", err.msg);
    return rep;
}

static struct rep_msg msg_of(uint64_t sender, uint64_t recipient, uint64_t fp, uint64_t now)
{
    struct rep_msg m;
    memset(&m, 0, sizeof(m));
    m.sender = sender;
    m.recipient = recipient;
    m.fingerprint = fp;
    m.now_ms = now;
    return m;
}

static struct rep_signals observe(struct rep *rep, const struct rep_msg *m)
{
    struct rep_signals s;
    memset(&s, 0xa5, sizeof(s)); /* everything must be written */
    rep_observe(rep, m, &s);
    return s;
}

static void test_config_errors(void **state)
{
    struct rep_config cfg;
    struct sw_err err = {{0}};
    (void)state;

    const size_t too_small[] = {0, 1000, REP_MIN_BYTES - 1};
    for (size_t i = 0; i < sizeof(too_small) / sizeof(too_small[0]); i++) {
        rep_config_defaults(&cfg);
        cfg.max_bytes = too_small[i];
        err.msg[0] = '\0';
        assert_null(rep_new(&cfg, &err));
        assert_non_null(strstr(err.msg, "max_bytes"));
    }
    rep_config_defaults(&cfg);
    cfg.shards = REP_MAX_SHARDS + 1;
    assert_null(rep_new(&cfg, &err));
    assert_non_null(strstr(err.msg, "shards"));
    rep_config_defaults(&cfg);
    cfg.window_ms = 0;
    assert_null(rep_new(&cfg, &err));
    rep_config_defaults(&cfg);
    cfg.rate_half_life_ms = 0;
    assert_null(rep_new(&cfg, &err));
    rep_config_defaults(&cfg);
    cfg.spam_half_life_ms = 0;
    assert_null(rep_new(&cfg, &err));
    rep_free(NULL);

    /* shards 0 is the default; others round up to a power of two */
    struct rep_stats st;
    struct rep *rep = new_rep(8u << 20, 0, 0);
    rep_get_stats(rep, &st);
    assert_int_equal(st.shards, 64);
    rep_free(rep);
    rep = new_rep(8u << 20, 3, 0);
    rep_get_stats(rep, &st);
    assert_int_equal(st.shards, 4);
    rep_free(rep);
    /* the smallest table gets fewer shards rather than useless ones */
    rep = new_rep(REP_MIN_BYTES, 64, 0);
    rep_get_stats(rep, &st);
    assert_true(st.shards >= 1 && st.shards < 64);
    assert_true(st.capacity >= 7 * 16 * st.shards);
    rep_free(rep);
}

static void test_memory_bound(void **state)
{
    (void)state;
    const size_t sizes[] = {REP_MIN_BYTES, REP_MIN_BYTES + 1, 1u << 20, (3u << 20) + 17, 64u << 20};
    const unsigned shards[] = {1, 64, 64, 16, 64};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct rep_stats st;
        struct rep *rep = new_rep(sizes[i], shards[i], 0);
        rep_get_stats(rep, &st);
        assert_true(st.bytes <= sizes[i]);
        assert_true(st.bytes >= sizes[i] - sizes[i] / 10); /* and most of it is used */
        assert_true(st.capacity > 0);
        assert_true(st.capacity * 64 <= st.bytes);
        assert_int_equal(st.entries, 0);
        rep_free(rep);
    }
}

static void test_decay_half_life(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0); /* rate 10 s, spam 6 h */
    uint64_t s = key("sender", 1);
    struct rep_msg m = msg_of(s, key("rcpt", 1), 0, T0);
    m.ip = key("ip", 1);

    struct rep_signals sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - 1.0) < 1e-9);
    assert_true(fabs(sig.ip_rate - 1.0) < 1e-9);
    m.now_ms = T0 + 10000; /* one rate half-life */
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - 1.5) < 1e-3);
    assert_true(fabs(sig.ip_rate - 1.5) < 1e-3);
    m.now_ms = T0 + 30000; /* two more: 1.5 / 4 + 1 */
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - 1.375) < 1e-3);

    /* spam history: 8 now, 4 after one spam half-life, about 0 after 60 of them */
    m.now_ms = T0;
    rep_report_spam(rep, &m, 8.0);
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_spam - 8.0) < 1e-6);
    assert_true(fabs(sig.ip_spam - 8.0) < 1e-6);
    m.now_ms = T0 + 6ull * 3600 * 1000;
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_spam - 4.0) < 4e-3);
    assert_true(fabs(sig.ip_spam - 4.0) < 4e-3);
    m.now_ms = T0 + 6ull * 3600 * 1000 * 1.5;
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_spam - 8.0 / pow(2, 1.5)) < 4e-3);
    m.now_ms = T0 + 60ull * 6 * 3600 * 1000;
    sig = observe(rep, &m);
    assert_true(sig.sender_spam < 1e-12);
    /* an absurd jump forward is just "gone", not NaN */
    m.now_ms = UINT64_MAX;
    sig = observe(rep, &m);
    assert_true(isfinite(sig.sender_rate) && sig.sender_rate >= 1.0 && sig.sender_rate < 1.01);
    rep_free(rep);
}

static void test_time_backwards(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_msg m = msg_of(key("sender", 2), key("rcpt", 1), key("fp", 1), T0 + 100000);
    struct rep_signals sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - 1.0) < 1e-9);
    /* replays out of order: earlier times decay nothing and never blow up */
    const uint64_t back[] = {T0, 0, T0 + 50000, 1};
    for (unsigned i = 0; i < 4; i++) {
        m.now_ms = back[i];
        m.recipient = key("rcpt", i + 2);
        sig = observe(rep, &m);
        assert_true(isfinite(sig.sender_rate));
        assert_true(fabs(sig.sender_rate - (2.0 + i)) < 1e-9);
        assert_int_equal(sig.fanout, i + 2); /* counts into the current set */
        assert_int_equal(sig.campaign, 1);
    }
    /* and forward again from the newest time seen: one half-life after T0 + 100 s */
    m.now_ms = T0 + 110000;
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - (5.0 / 2 + 1)) < 1e-3);
    m.now_ms = T0;
    rep_report_spam(rep, &m, 1.0);
    m.now_ms = 0;
    rep_report_spam(rep, &m, 1.0);
    m.now_ms = T0 + 110000;
    sig = observe(rep, &m);
    assert_true(sig.sender_spam > 1.99 && sig.sender_spam <= 2.0);
    rep_free(rep);
}

/* A small table: fill it several times over while one key stays hot. */
static void test_eviction_lru(void **state)
{
    (void)state;
    struct rep_config cfg;
    struct sw_err err = {{0}};
    rep_config_defaults(&cfg);
    cfg.max_bytes = REP_MIN_BYTES;
    cfg.shards = 1;
    cfg.rate_half_life_ms = UINT32_MAX; /* rates act as plain counters here */
    struct rep *rep = rep_new(&cfg, &err);
    assert_non_null(rep);
    struct rep_stats st;
    rep_get_stats(rep, &st);
    uint64_t cap = st.capacity;
    assert_true(cap > 50 && cap < 1000);

    uint64_t hot = key("hot", 0), old = key("old", 0);
    struct rep_msg m = msg_of(old, 0, 0, T0);
    observe(rep, &m);
    observe(rep, &m);
    m.sender = hot;
    observe(rep, &m);
    for (unsigned i = 0; i < 10 * cap; i++) {
        m.sender = key("filler", i);
        observe(rep, &m);
        m.sender = hot;
        observe(rep, &m);
        rep_get_stats(rep, &st);
        assert_true(st.entries <= cap);
    }
    rep_get_stats(rep, &st);
    assert_true(st.entries <= cap);
    assert_true(st.entries >= cap * 9 / 10); /* it did fill */
    assert_true(st.evictions >= 9 * cap);
    assert_true(st.bytes <= REP_MIN_BYTES);
    assert_int_equal(st.hits + st.misses, 2 + 1 + 20 * cap);

    /* the hot key kept its count; the old one was evicted and starts again at 1 */
    m.sender = hot;
    struct rep_signals sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - (double)(10 * cap + 2)) < 1e-3);
    m.sender = old;
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_rate - 1.0) < 1e-9);
    rep_free(rep);
}

/* Quarantined senders and spam history outlive the churn of one-off entries. */
static void test_eviction_protects_history(void **state)
{
    (void)state;
    struct rep_config cfg;
    struct sw_err err = {{0}};
    rep_config_defaults(&cfg);
    cfg.max_bytes = REP_MIN_BYTES;
    cfg.shards = 1;
    struct rep *rep = rep_new(&cfg, &err);
    assert_non_null(rep);
    struct rep_stats st;
    rep_get_stats(rep, &st);

    uint64_t q = key("quarantined", 0), bad = key("spammer", 0);
    rep_quarantine(rep, q, T0, 3600u * 1000u);
    struct rep_msg m = msg_of(bad, 0, 0, T0);
    m.domains[0] = key("bad-dom", 0);
    m.n_domains = 1;
    rep_report_spam(rep, &m, 5.0);
    m.n_domains = 0;
    rep_quarantine(rep, bad, T0, 0); /* a zero-length quarantine takes no protection away */
    for (unsigned i = 0; i < 10 * st.capacity; i++) {
        m = msg_of(key("churn", i), key("r", i), key("fp", i), T0 + 1);
        observe(rep, &m);
    }
    m = msg_of(q, 0, 0, T0 + 2);
    struct rep_signals sig = observe(rep, &m);
    assert_true(sig.quarantined);
    m = msg_of(bad, 0, 0, T0 + 2);
    m.domains[0] = key("bad-dom", 0);
    m.n_domains = 1;
    sig = observe(rep, &m);
    assert_true(sig.sender_spam > 4.99);
    assert_true(sig.domain_spam > 4.99);

    /* once the quarantine is over, the entry is ordinary again and churns out */
    m = msg_of(q, 0, 0, T0 + 3600u * 1000u);
    sig = observe(rep, &m);
    assert_false(sig.quarantined);
    for (unsigned i = 0; i < 10 * st.capacity; i++) {
        m = msg_of(key("churn2", i), key("r", i), key("fp", i), T0 + 3600u * 1000u);
        observe(rep, &m);
    }
    m = msg_of(q, 0, 0, T0 + 3600u * 1000u);
    sig = observe(rep, &m);
    assert_int_equal(sig.quarantine_until_ms, 0);
    rep_get_stats(rep, &st);
    assert_true(st.entries <= st.capacity);
    rep_free(rep);
}

static void test_fanout(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 10000);
    uint64_t s = key("sender", 3), fp = key("fp", 3);
    struct rep_signals sig;

    /* one sender, one fingerprint, 20 recipients within 10 s (two epochs at most) */
    for (unsigned i = 1; i <= 20; i++) {
        struct rep_msg m = msg_of(s, key("rcpt", i), fp, T0 + 5000 + i * 450);
        sig = observe(rep, &m);
        assert_int_equal(sig.fanout, i);
        assert_int_equal(sig.campaign, 1);
    }
    /* the same sender with another fingerprint is another pair */
    struct rep_msg other = msg_of(s, key("rcpt", 1), key("fp", 4), T0 + 15000);
    sig = observe(rep, &other);
    assert_int_equal(sig.fanout, 1);

    /* the same recipient 20 times is fan-out 1 */
    uint64_t s2 = key("sender", 4);
    for (unsigned i = 1; i <= 20; i++) {
        struct rep_msg m = msg_of(s2, key("rcpt", 7), fp, T0 + i * 450);
        sig = observe(rep, &m);
        assert_int_equal(sig.fanout, 1);
    }
    assert_int_equal(sig.campaign, 2);

    /* three windows of silence: back to 1 */
    struct rep_msg m = msg_of(s, key("rcpt", 99), fp, T0 + 5000 + 20 * 450 + 3 * 10000);
    sig = observe(rep, &m);
    assert_int_equal(sig.fanout, 1);
    assert_int_equal(sig.campaign, 1);

    /* no sender or no recipient: nothing is added */
    m = msg_of(0, key("rcpt", 100), fp, m.now_ms);
    sig = observe(rep, &m);
    assert_int_equal(sig.fanout, 0);
    assert_int_equal(sig.campaign, 1);
    m = msg_of(s, 0, fp, m.now_ms);
    sig = observe(rep, &m);
    assert_int_equal(sig.fanout, 1);
    rep_free(rep);
}

/* Epochs are now / window: a count covers the current epoch and the whole previous one. */
static void test_window_semantics(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 10000);
    uint64_t s = key("sender", 5), fp = key("fp", 5);
    struct rep_msg m = msg_of(s, key("a", 0), fp, T0 + 1000); /* epoch E */
    assert_int_equal(observe(rep, &m).fanout, 1);
    m = msg_of(s, key("b", 0), fp, T0 + 19999); /* E + 1: a is 19 s old, still counted */
    assert_int_equal(observe(rep, &m).fanout, 2);
    m = msg_of(s, key("c", 0), fp, T0 + 20000); /* E + 2: a expires, b stays */
    assert_int_equal(observe(rep, &m).fanout, 2);
    m = msg_of(s, key("b", 0), fp, T0 + 21000); /* b again: now in the current epoch */
    assert_int_equal(observe(rep, &m).fanout, 2);
    m = msg_of(s, key("d", 0), fp, T0 + 30000); /* E + 3: b and c were seen in E + 2 */
    assert_int_equal(observe(rep, &m).fanout, 3);
    m = msg_of(s, key("e", 0), fp, T0 + 50000); /* E + 5: everything before expired */
    assert_int_equal(observe(rep, &m).fanout, 1);
    rep_free(rep);
}

/* Beyond the exact range the count is a linear-counting estimate that saturates sanely. */
static void test_fanout_estimate_and_saturation(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 60000);
    uint64_t s = key("sender", 6), fp = key("fp", 6);
    struct rep_signals sig = {0};
    uint32_t prev = 0;
    for (unsigned i = 1; i <= 100; i++) {
        struct rep_msg m = msg_of(s, key("rcpt", i), fp, T0 + i);
        sig = observe(rep, &m);
        if (i <= 28)
            assert_int_equal(sig.fanout, i);
        else
            assert_true(sig.fanout + 3 >= prev); /* no collapse at the switch */
        prev = sig.fanout;
    }
    assert_true(sig.fanout >= 85 && sig.fanout <= 115);
    for (unsigned i = 101; i <= 20000; i++) {
        struct rep_msg m = msg_of(s, key("rcpt", i), fp, T0 + i);
        sig = observe(rep, &m);
        assert_true(sig.fanout > 0);
        assert_true(sig.fanout <= 2000);
    }
    assert_true(sig.fanout >= 1000); /* saturated: large, finite, never 0 */
    /* dense sketches still rotate out */
    struct rep_msg m = msg_of(s, key("rcpt", 1), fp, T0 + 20000 + 60000);
    sig = observe(rep, &m);
    assert_true(sig.fanout >= 1000);
    m.now_ms += 60000;
    sig = observe(rep, &m);
    assert_int_equal(sig.fanout, 1);
    m.recipient = key("rcpt", 2);
    assert_int_equal(observe(rep, &m).fanout, 2);
    rep_free(rep);
}

static void test_campaign(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 60000);
    uint64_t fp = key("fp", 7), fp2 = key("fp", 8);
    struct rep_signals sig = {0};
    for (unsigned i = 1; i <= 15; i++) {
        struct rep_msg m = msg_of(key("bot", i), key("target", 0), fp, T0 + i * 100);
        sig = observe(rep, &m);
        assert_int_equal(sig.campaign, i);
        assert_int_equal(sig.fanout, 1);
        /* the same bot again does not count twice */
        sig = observe(rep, &m);
        assert_int_equal(sig.campaign, i);
    }
    for (unsigned i = 1; i <= 3; i++) {
        struct rep_msg m = msg_of(key("bot", i), key("target", 0), fp2, T0 + 2000 + i);
        sig = observe(rep, &m);
        assert_int_equal(sig.campaign, i);
    }
    struct rep_msg m = msg_of(key("bot", 16), key("target", 0), fp, T0 + 3000);
    assert_int_equal(observe(rep, &m).campaign, 16);
    rep_free(rep);
}

static void test_rate(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_signals sig = {0};
    struct rep_msg m = msg_of(key("burst", 0), key("r", 0), 0, 0);
    m.ip = key("ip", 9);
    for (unsigned i = 0; i < 50; i++) {
        m.now_ms = T0 + i * 20;
        sig = observe(rep, &m);
    }
    assert_true(sig.sender_rate > 30 && sig.sender_rate <= 50);
    assert_true(sig.ip_rate > 30 && sig.ip_rate <= 50);

    m.sender = key("slow", 0);
    m.ip = key("ip", 10);
    double max = 0;
    for (unsigned i = 0; i < 50; i++) {
        m.now_ms = T0 + i * 72000ull;
        sig = observe(rep, &m);
        if (sig.sender_rate > max)
            max = sig.sender_rate;
    }
    assert_true(max < 1.1);
    assert_true(sig.ip_rate < 1.1);
    rep_free(rep);
}

static void test_bad_domain_history(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_stats st0, st1;
    struct rep_msg m = msg_of(key("s", 1), key("r", 1), 0, T0);
    m.domains[0] = key("dom", 1);
    m.domains[1] = key("lure", 1);
    m.n_domains = 2;

    /* observing does not create domain entries */
    rep_get_stats(rep, &st0);
    struct rep_msg look = msg_of(0, 0, 0, T0);
    look.domains[0] = key("dom", 2);
    look.domains[1] = 0;
    look.domains[2] = key("lure", 1);
    look.n_domains = 3;
    struct rep_signals sig = observe(rep, &look);
    assert_true(sig.domain_spam == 0);
    rep_get_stats(rep, &st1);
    assert_int_equal(st1.entries, st0.entries);

    rep_report_spam(rep, &m, 1.0);
    rep_report_spam(rep, &m, 1.0);
    m.domains[0] = key("dom", 3);
    rep_report_spam(rep, &m, 0.5);
    sig = observe(rep, &look);
    assert_true(fabs(sig.domain_spam - 2.5) < 1e-6);
    assert_int_equal(sig.domain_spam_idx, 2);
    assert_true(sig.sender_spam == 0 && sig.sender_rate == 0);

    /* the sender's history grew with it */
    sig = observe(rep, &m);
    assert_true(fabs(sig.sender_spam - 2.5) < 1e-6);

    /* weights that are not positive finite numbers are ignored */
    rep_report_spam(rep, &look, -5.0);
    rep_report_spam(rep, &look, NAN);
    rep_report_spam(rep, &look, INFINITY);
    rep_report_spam(rep, &look, 0.0);
    sig = observe(rep, &look);
    assert_true(fabs(sig.domain_spam - 2.5) < 1e-6);

    /* 2.5 decays below REP_HISTORY_MIN after log2(2.5 / 0.05) = 5.6 half-lives: at 5.5 it is
     * still there, at 5.7 it reads as none, and it is dropped, so a look back in time (a
     * replay out of order) does not bring it back */
    const uint64_t hl = 6ull * 3600 * 1000;
    look.now_ms = T0 + hl * 55 / 10;
    sig = observe(rep, &look);
    assert_true(sig.domain_spam >= REP_HISTORY_MIN && sig.domain_spam < 0.06);
    look.now_ms = T0 + hl * 57 / 10;
    sig = observe(rep, &look);
    assert_true(sig.domain_spam == 0);
    look.now_ms = T0;
    sig = observe(rep, &look);
    assert_true(sig.domain_spam == 0);
    rep_free(rep);
}

/* Key i of test_history_bitmap: a domain for even i, a history-only source address for odd. */
static struct rep_msg history_key(unsigned i, uint64_t now)
{
    struct rep_msg m = msg_of(0, 0, 0, now);
    if (i % 2 == 0) {
        m.domains[0] = key("hdom", i);
        m.n_domains = 1;
    } else {
        m.ip = key("hip", i);
        m.ip_history_only = true;
    }
    return m;
}

/* The history bitmap: a look-up that only reads spam history (domains, and source addresses
 * with ip_history_only) skips a bucket none of whose entries has any, and reads every history
 * there is. Checked against a model of 3,000 domains and addresses in a table that evicts
 * nothing, so buckets hold keys with and without history side by side, through reports,
 * decay below REP_HISTORY_MIN, and new reports into emptied buckets. */
static void test_history_bitmap(void **state)
{
    (void)state;
    struct rep *rep = new_rep(2u << 20, 4, 0); /* ~4,000 buckets: keys share some */
    struct rep_stats st0, st1;
    const uint64_t hl = 6ull * 3600 * 1000; /* spam half-life */
    enum { N = 3000 };
    static double weight[N]; /* model: spam weight reported at model_ms, 0 if none */
    static uint64_t model_ms[N];

    /* nothing reported: no probe at all, no entry for the address */
    struct rep_msg look = msg_of(0, 0, 0, T0);
    look.domains[0] = key("hdom", 0);
    look.n_domains = 1;
    look.ip = key("hip", 0);
    look.ip_history_only = true;
    rep_get_stats(rep, &st0);
    struct rep_signals sig = observe(rep, &look);
    rep_get_stats(rep, &st1);
    assert_true(sig.domain_spam == 0 && sig.ip_spam == 0 && sig.ip_rate == 0);
    assert_int_equal(st1.hits + st1.misses, st0.hits + st0.misses);
    assert_int_equal(st1.entries, st0.entries);

    uint64_t now = T0;
    for (unsigned round = 0; round < 6; round++) {
        /* report a different third of the keys each round, with weights 0.1 .. 3.0 */
        for (unsigned i = round % 3; i < N; i += 3) {
            struct rep_msg r = history_key(i, now);
            double w = 0.113 + (double)(i % 30) * 0.1; /* never 0.05 * 2^k after decay */
            rep_report_spam(rep, &r, w);
            double old = weight[i] == 0 ? 0 : weight[i] * exp2(-(double)(now - model_ms[i]) / hl);
            weight[i] = old + w;
            model_ms[i] = now;
        }
        now += hl * 3 / 2; /* a weight of 0.1 is gone after 1 half-life, 3.0 after 5.9 */
        unsigned with_history = 0, without = 0;
        for (unsigned i = 0; i < N; i++) {
            struct rep_msg q = history_key(i, now);
            double want = weight[i] == 0 ? 0 : weight[i] * exp2(-(double)(now - model_ms[i]) / hl);
            if (want < REP_HISTORY_MIN) {
                want = 0;
                weight[i] = 0; /* dropped by the look-up below */
            }
            sig = observe(rep, &q);
            double got = i % 2 == 0 ? sig.domain_spam : sig.ip_spam;
            if (fabs(got - want) > 1e-6 * (1 + want))
                fail_msg("round %u key %u: history %g, want %g", round, i, got, want);
            assert_true(sig.ip_rate == 0);
            with_history += want > 0;
            without += want == 0;
        }
        /* both kinds of key occur in every round */
        assert_true(with_history > 100 && without > 100);
    }
    rep_get_stats(rep, &st1);
    assert_int_equal(st1.evictions, 0);

    /* a look-up of keys without history skips most buckets: fewer probes than keys */
    rep_get_stats(rep, &st0);
    for (unsigned i = 0; i < N; i++) {
        struct rep_msg q = msg_of(0, 0, 0, now);
        q.domains[0] = key("clean", i);
        q.n_domains = 1;
        observe(rep, &q);
    }
    rep_get_stats(rep, &st1);
    assert_true(st1.hits + st1.misses - (st0.hits + st0.misses) < N / 2);
    assert_int_equal(st1.hits, st0.hits);
    rep_free(rep);
}

/* Without ip_history_only the source address counts a rate and gets an entry. */
static void test_ip_counted(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_stats st;
    struct rep_msg m = msg_of(0, 0, 0, T0);
    m.ip = key("ip", 77);
    struct rep_signals sig = observe(rep, &m);
    assert_true(fabs(sig.ip_rate - 1.0) < 1e-9);
    rep_get_stats(rep, &st);
    assert_int_equal(st.entries, 1);
    m.ip_history_only = true;
    sig = observe(rep, &m); /* reads it, counts nothing */
    assert_true(sig.ip_rate == 0 && sig.ip_spam == 0);
    m.ip_history_only = false;
    sig = observe(rep, &m);
    assert_true(fabs(sig.ip_rate - 2.0) < 1e-9);

    /* Both ways of looking an address up read its history alike, below REP_HISTORY_MIN too:
     * once a counting look-up has seen it decayed away, a replay back in time finds nothing
     * either way (the history is dropped, not only unprotected). */
    const uint64_t hl = 6ull * 3600 * 1000;
    m.ip = key("ip", 78);
    m.now_ms = T0;
    rep_report_spam(rep, &m, 1.0);
    m.now_ms = T0 + hl;
    sig = observe(rep, &m);
    assert_true(fabs(sig.ip_spam - 0.5) < 1e-6);
    m.now_ms = T0 + 5 * hl; /* 1/32 < 0.05 */
    sig = observe(rep, &m);
    assert_true(sig.ip_spam == 0);
    m.now_ms = T0 + hl;
    for (int k = 0; k < 2; k++) {
        m.ip_history_only = k == 0;
        sig = observe(rep, &m);
        assert_true(sig.ip_spam == 0);
    }
    rep_free(rep);
}

static void test_quarantine(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    uint64_t s = key("victim", 0);
    struct rep_msg m = msg_of(s, key("r", 0), 0, T0 + 500);

    struct rep_signals sig = observe(rep, &m);
    assert_false(sig.quarantined);
    assert_int_equal(sig.quarantine_until_ms, 0);
    rep_quarantine(rep, s, T0 + 1000, 5000);
    m.now_ms = T0 + 2000;
    sig = observe(rep, &m);
    assert_true(sig.quarantined);
    assert_int_equal(sig.quarantine_until_ms, T0 + 6000);
    rep_quarantine(rep, s, T0 + 2000, 1000); /* shorter: ignored */
    sig = observe(rep, &m);
    assert_int_equal(sig.quarantine_until_ms, T0 + 6000);
    rep_quarantine(rep, s, T0 + 3000, 10000); /* longer: extends */
    m.now_ms = T0 + 12999;
    sig = observe(rep, &m);
    assert_true(sig.quarantined);
    assert_int_equal(sig.quarantine_until_ms, T0 + 13000);
    m.now_ms = T0 + 13000;
    sig = observe(rep, &m);
    assert_false(sig.quarantined);
    /* a quarantine can start before the sender was ever seen, and saturates */
    uint64_t s2 = key("victim", 1);
    rep_quarantine(rep, s2, UINT64_MAX - 10, 1000);
    m.sender = s2;
    m.now_ms = UINT64_MAX - 1;
    sig = observe(rep, &m);
    assert_true(sig.quarantined);
    assert_int_equal(sig.quarantine_until_ms, UINT64_MAX);
    rep_quarantine(rep, 0, T0, 1000); /* zero sender: nothing */
    rep_free(rep);
}

/* The prefetch hints change nothing: no entry, no lookup counted, the same signals after. */
static void test_prefetch_is_only_a_hint(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_stats st;
    struct rep_msg m = msg_of(key("s", 1), key("r", 1), key("fp", 1), T0);
    m.domains[0] = key("d", 1);
    m.domains[1] = 0;
    m.n_domains = 1000; /* clamped, as in rep_observe */
    rep_prefetch(rep, m.sender);
    rep_prefetch_spread(rep, &m);
    rep_get_stats(rep, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.hits + st.misses, 0);
    m.n_domains = 2;
    rep_report_spam(rep, &m, 1.0);
    rep_prefetch_spread(rep, &m);
    struct rep_signals sig = observe(rep, &m);
    assert_int_equal(sig.campaign, 1);
    assert_int_equal(sig.fanout, 1);
    assert_true(fabs(sig.domain_spam - 1.0) < 1e-9);
    assert_int_equal(sig.domain_spam_idx, 0);
    rep_free(rep);
}

static void test_zero_keys(void **state)
{
    (void)state;
    struct rep *rep = new_rep(1u << 20, 4, 0);
    struct rep_stats st;
    struct rep_msg m;
    memset(&m, 0, sizeof(m));
    m.now_ms = T0;
    m.n_domains = 4; /* all zero */
    struct rep_signals sig = observe(rep, &m);
    assert_int_equal(sig.fanout, 0);
    assert_int_equal(sig.campaign, 0);
    assert_true(sig.sender_rate == 0 && sig.ip_rate == 0 && sig.domain_spam == 0);
    assert_true(sig.sender_spam == 0 && sig.ip_spam == 0);
    assert_false(sig.quarantined);
    rep_report_spam(rep, &m, 1.0);
    rep_get_stats(rep, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.hits + st.misses, 0);

    /* an out-of-range n_domains is clamped, not read past the array */
    m.n_domains = 1000;
    observe(rep, &m);
    /* recipient without sender or fingerprint: nothing either */
    m.recipient = key("r", 1);
    observe(rep, &m);
    rep_get_stats(rep, &st);
    assert_int_equal(st.entries, 0);
    rep_free(rep);
}

/* --- concurrency ------------------------------------------------------------------------- */

#define N_THREADS 4
#define SHARED_RCPTS 10

struct worker {
    struct rep *rep;
    unsigned id;
    atomic_bool *stop;
    uint64_t ops;
    unsigned bad_fanout, bad_campaign, bad_rate;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t shared_s = key("shared-sender", 0), shared_fp = key("shared-fp", 0);
    uint64_t x = 0x9e3779b97f4a7c15ull * (w->id + 1);
    while (!atomic_load(w->stop)) {
        for (unsigned k = 0; k < 256; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint64_t now = T0 + 1000 + (w->ops % 5000); /* all within one 60 s window */
            /* shared pair: fan-out is bounded by the recipient pool */
            struct rep_msg m =
                msg_of(shared_s, key("pool", (unsigned)(x % SHARED_RCPTS)), shared_fp, now);
            m.ip = key("shared-ip", 0);
            m.domains[0] = key("shared-dom", 0);
            m.n_domains = 1;
            struct rep_signals sig;
            rep_observe(w->rep, &m, &sig);
            if (sig.fanout < 1 || sig.fanout > SHARED_RCPTS)
                w->bad_fanout++;
            /* the shared fingerprint's senders: the shared one plus one per thread */
            if (sig.campaign < 1 || sig.campaign > N_THREADS + 1)
                w->bad_campaign++;
            if (!(sig.sender_rate >= 1) || !isfinite(sig.sender_rate))
                w->bad_rate++;
            if ((x & 15) == 0)
                rep_report_spam(w->rep, &m, 0.5);
            if ((x & 63) == 1)
                rep_quarantine(w->rep, shared_s, now, 1000);

            /* the thread's own sender on the shared fingerprint, and private keys */
            m = msg_of(key("own", w->id), key("pool", 0), shared_fp, now);
            rep_observe(w->rep, &m, &sig);
            m = msg_of(key("private", w->id * 100000u + (unsigned)(x % 50000)),
                       key("r", (unsigned)(x >> 40)), key("pfp", (unsigned)(x % 977)), now);
            m.ip = key("pip", w->id);
            rep_observe(w->rep, &m, &sig);
            if (sig.fanout < 1 || sig.campaign < 1)
                w->bad_fanout++;
            w->ops += 3;
        }
        if (w->id == 0) {
            struct rep_stats st;
            rep_get_stats(w->rep, &st);
            if (st.entries > st.capacity)
                w->bad_rate++;
        }
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    /* small enough that the private keys keep evicting */
    struct rep *rep = new_rep(256u << 10, 8, 60000);
    atomic_bool stop;
    atomic_init(&stop, false);
    struct worker w[N_THREADS];
    pthread_t th[N_THREADS];
    memset(w, 0, sizeof(w));
    for (unsigned i = 0; i < N_THREADS; i++) {
        w[i].rep = rep;
        w[i].id = i;
        w[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&stop, true);
    uint64_t ops = 0;
    for (unsigned i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad_fanout, 0);
        assert_int_equal(w[i].bad_campaign, 0);
        assert_int_equal(w[i].bad_rate, 0);
        ops += w[i].ops;
    }
    assert_true(ops > 1000);

    struct rep_stats st;
    rep_get_stats(rep, &st);
    assert_true(st.entries <= st.capacity);
    assert_true(st.evictions > 0);
    assert_true(st.bytes <= 256u << 10);
    /* the shared pair saw every recipient of the pool */
    struct rep_msg m =
        msg_of(key("shared-sender", 0), key("pool", 0), key("shared-fp", 0), T0 + 6000);
    struct rep_signals sig;
    rep_observe(rep, &m, &sig);
    assert_int_equal(sig.fanout, SHARED_RCPTS);
    assert_int_equal(sig.campaign, N_THREADS + 1);
    rep_free(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_decay_half_life),
        cmocka_unit_test(test_time_backwards),
        cmocka_unit_test(test_eviction_lru),
        cmocka_unit_test(test_eviction_protects_history),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_window_semantics),
        cmocka_unit_test(test_fanout_estimate_and_saturation),
        cmocka_unit_test(test_campaign),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_bad_domain_history),
        cmocka_unit_test(test_history_bitmap),
        cmocka_unit_test(test_ip_counted),
        cmocka_unit_test(test_quarantine),
        cmocka_unit_test(test_prefetch_is_only_a_hint),
        cmocka_unit_test(test_zero_keys),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
