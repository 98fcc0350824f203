/* Unit tests for the classification pipeline (matcher/matcher.c): thresholds, reasons, list
 * hits, content signals, behaviour signals with replayed timestamps, bounds, and the default
 * rule set against the shipped spim and ham samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/matcher.h"
#include "matcher/reputation.h"
#include "matcher/rules.h"
#include "proxy/ruleload.h"

struct fixture {
    struct hsdb *db;
    struct matcher *m;
    struct matcher_ctx *ctx;
    struct rep *rep;
};

static const char test_rules[] =
    "rule T_FIVE body 5 \"exactly five\"i \"scores the tag threshold exactly\"\n"
    "rule T_FOUR body 4.99 \"almost five\"i\n"
    "rule T_TEN body 10 \"exactly ten\"i\n"
    "rule T_HAM body -3 \"see you at dinner\"i\n"
    "rule T_ZIP url 6 /\\.zip$/i \"link to an archive\"\n"
    "rule T_TAIL body 50 \"tail marker\"\n"
    "rule T_SENDER sender 7 /^bot[0-9]+@/\n"
    "rule T_LURE body 3 /my\\spics/i requires=link \"a lure phrase counts only with a link\"\n"
    "rule T_SPACED body 1 /w\\sw\\sw\\s\\./i provides=link\n";

static const char test_domain_block[] = "# example block list\nevil.example\n";
static const char test_sender_allow[] = "boss@corp.example\n";

static struct hsdb *compile_or_fail(const char *rules, const char *dblock, const char *sallow)
{
    struct sw_err err = {{0}};
    struct ruleset *rs = ruleset_new(NULL);
    assert_non_null(rs);
    if (ruleset_parse_rules(rs, rules, strlen(rules), "test.rules", &err) != SW_OK)
        fail_msg("parse rules: %s", err.msg);
    if (dblock != NULL &&
        ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, dblock, strlen(dblock),
                           "domains-block.txt", &err) != SW_OK)
        fail_msg("parse list: %s", err.msg);
    if (sallow != NULL &&
        ruleset_parse_list(rs, RULE_KIND_SENDER_ALLOW, sallow, strlen(sallow),
                           "senders-allow.txt", &err) != SW_OK)
        fail_msg("parse list: %s", err.msg);
    struct hsdb *db = hsdb_compile(rs, HSDB_LAYOUT_PER_TARGET, &err);
    if (db == NULL)
        fail_msg("compile: %s", err.msg);
    return db;
}

static int setup_with(void **state, const struct matcher_config *cfg)
{
    struct sw_err err = {{0}};
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->db = compile_or_fail(test_rules, test_domain_block, test_sender_allow);
    f->m = matcher_new(f->db, cfg, &err);
    if (f->m == NULL)
        fail_msg("matcher_new: %s", err.msg);
    f->ctx = matcher_ctx_new();
    assert_non_null(f->ctx);
    struct rep_config rc = cfg->rep;
    rc.max_bytes = 1 << 20;
    f->rep = rep_new(&rc, &err);
    if (f->rep == NULL)
        fail_msg("rep_new: %s", err.msg);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    struct matcher_config cfg;
    matcher_config_defaults(&cfg);
    return setup_with(state, &cfg);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rep_free(f->rep);
    matcher_ctx_free(f->ctx);
    matcher_unref(f->m);
    hsdb_unref(f->db);
    free(f);
    return 0;
}

static struct verdict classify(struct fixture *f, const char *from, const char *to,
                               const char *body, uint64_t now_ms, unsigned flags, bool use_rep)
{
    struct verdict v;
    struct sw_err err = {{0}};
    struct matcher_msg msg = {
        .sender = from,
        .sender_len = from ? strlen(from) : 0,
        .recipient = to,
        .recipient_len = to ? strlen(to) : 0,
        .body = body,
        .body_len = strlen(body),
        .now_ms = now_ms,
        .flags = flags,
    };
    if (matcher_classify(f->ctx, f->m, use_rep ? f->rep : NULL, &msg, &v, &err) != SW_OK)
        fail_msg("classify: %s", err.msg);
    return v;
}

static const struct verdict_reason *find_reason(const struct verdict *v, const char *id)
{
    for (unsigned i = 0; i < v->n_reasons; i++) {
        if (strcmp(v->reasons[i].id, id) == 0)
            return &v->reasons[i];
    }
    return NULL;
}

static void test_thresholds(void **state)
{
    struct fixture *f = *state;
    struct verdict v;

    v = classify(f, "a@x.example", "b@x.example", "nothing to see here", 1000, 0, false);
    assert_int_equal(v.action, VERDICT_PASS);
    assert_true(v.score == 0);
    assert_int_equal(v.n_reasons, 0);

    v = classify(f, "a@x.example", "b@x.example", "this is almost five", 1000, 0, false);
    assert_int_equal(v.action, VERDICT_PASS);
    assert_true(v.score > 4.98 && v.score < 5);

    /* a score equal to a threshold reaches it */
    v = classify(f, "a@x.example", "b@x.example", "EXACTLY FIVE", 1000, 0, false);
    assert_int_equal(v.action, VERDICT_TAG);
    assert_true(v.score == 5);
    assert_non_null(find_reason(&v, "T_FIVE"));

    v = classify(f, "a@x.example", "b@x.example", "exactly ten", 1000, 0, false);
    assert_int_equal(v.action, VERDICT_DROP);

    /* a ham rule pulls a message back under the threshold */
    v = classify(f, "a@x.example", "b@x.example", "exactly five, see you at dinner", 1000, 0,
                 false);
    assert_int_equal(v.action, VERDICT_PASS);
    assert_true(v.score == 2);
    assert_int_equal(v.n_reasons, 2);
    /* reasons come in database order */
    assert_string_equal(v.reasons[0].id, "T_FIVE");
    assert_string_equal(v.reasons[1].id, "T_HAM");
}

static void test_rule_counts_once(void **state)
{
    struct fixture *f = *state;
    struct verdict v = classify(f, NULL, NULL, "exactly five exactly five EXACTLY FIVE", 1000, 0,
                                false);
    assert_true(v.score == 5);
    assert_int_equal(v.n_reasons, 1);
}

/* requires=link: the hit counts only when the message has a link, extracted or recognised by a
 * provides=link rule; whitespace runs are folded before the scan, so one \s matches them. */
static void test_requires_link(void **state)
{
    struct fixture *f = *state;
    struct verdict v = classify(f, NULL, NULL, "look at my pics", 1000, 0, false);
    assert_null(find_reason(&v, "T_LURE"));
    assert_true(v.score == 0);

    v = classify(f, NULL, NULL, "look at my  \t pics http://pics.example/a", 1000, 0, false);
    assert_non_null(find_reason(&v, "T_LURE"));
    assert_true(v.score == 3);

    v = classify(f, NULL, NULL, "my pics w w w . pics . example", 1000, 0, false);
    assert_non_null(find_reason(&v, "T_LURE"));
    assert_non_null(find_reason(&v, "T_SPACED"));
    assert_true(v.score == 4);

    /* the provider alone scores only itself */
    v = classify(f, NULL, NULL, "w w w . pics . example", 1000, 0, false);
    assert_null(find_reason(&v, "T_LURE"));
    assert_true(v.score == 1);
}

static void test_url_and_domain_lists(void **state)
{
    struct fixture *f = *state;
    struct verdict v;

    v = classify(f, "a@x.example", "b@x.example", "grab it at http://files.evil.example/pics.zip",
                 1000, 0, false);
    assert_int_equal(v.n_urls, 1);
    const struct verdict_reason *r = find_reason(&v, "T_ZIP");
    assert_non_null(r);
    r = find_reason(&v, "LIST_DOMAIN_BLOCK");
    assert_non_null(r);
    assert_string_equal(r->detail, "files.evil.example");
    assert_true(v.score == 16);
    assert_int_equal(v.action, VERDICT_DROP);

    /* the block list also applies to the sender's server (JabberSPAM-style server lists) */
    v = classify(f, "someone@evil.example", "b@x.example", "hello there", 1000, 0, false);
    r = find_reason(&v, "LIST_DOMAIN_BLOCK");
    assert_non_null(r);
    assert_string_equal(r->detail, "evil.example");
    assert_int_equal(v.action, VERDICT_DROP);

    /* a look-alike domain is not a parent-domain match */
    v = classify(f, "a@x.example", "b@x.example", "see https://notevil.example/", 1000, 0, false);
    assert_null(find_reason(&v, "LIST_DOMAIN_BLOCK"));

    /* sender rules see the lower-cased address; allow lists pull the score down */
    v = classify(f, "BOT17@x.example", "b@x.example", "hi", 1000, 0, false);
    assert_non_null(find_reason(&v, "T_SENDER"));
    v = classify(f, "Boss@Corp.Example", "b@x.example", "exactly ten", 1000, 0, false);
    r = find_reason(&v, "LIST_SENDER_ALLOW");
    assert_non_null(r);
    assert_int_equal(v.action, VERDICT_PASS);
    /* addresses of 16 bytes and more are folded a block at a time: exactly one block, two
     * blocks, and a last block that overlaps the one before it */
    const char *long_bots[] = {"BOT1234567@ab.co", "BOT12345678901234567890123@ab.co",
                               "BOT12345678901234567@Ab.Example"};
    for (size_t i = 0; i < sizeof(long_bots) / sizeof(long_bots[0]); i++) {
        v = classify(f, long_bots[i], "b@x.example", "hi", 1000, 0, false);
        if (find_reason(&v, "T_SENDER") == NULL)
            fail_msg("%s: no T_SENDER", long_bots[i]);
    }
    v = classify(f, "Someone.With.A.Long.Name@EVIL.Example", "b@x.example", "hello there", 1000, 0,
                 false);
    r = find_reason(&v, "LIST_DOMAIN_BLOCK");
    assert_non_null(r);
    assert_string_equal(r->detail, "evil.example");
    /* a full JID: the domain leaves out the resource; the second message finds the sender's
     * hits (address and domain) in the field cache and must report the same */
    for (unsigned i = 0; i < 2; i++) {
        v = classify(f, "BOT9@evil.example/phone", "b@x.example", "hello", 1000 + i, 0, false);
        assert_non_null(find_reason(&v, "T_SENDER"));
        r = find_reason(&v, "LIST_DOMAIN_BLOCK");
        assert_non_null(r);
        assert_string_equal(r->detail, "evil.example");
    }
}

static void test_content_signals(void **state)
{
    struct fixture *f = *state;
    struct verdict v;

    v = classify(f, NULL, NULL, "see hxxp://evil-pics.example/a", 1000, 0, false);
    const struct verdict_reason *r = find_reason(&v, "OBFUSCATED_LINK");
    assert_non_null(r);
    assert_string_equal(r->detail, "defanged-scheme");

    /* zero-width space inside a link */
    v = classify(f, NULL, NULL, "go to www.ev\xe2\x80\x8bil-pics.com/x now", 1000, 0, false);
    r = find_reason(&v, "OBFUSCATED_LINK");
    assert_non_null(r);
    assert_string_equal(r->detail, "zero-width");

    v = classify(f, NULL, NULL, "look http://192.0.2.7/login", 1000, 0, false);
    assert_non_null(find_reason(&v, "IP_LINK"));

    v = classify(f, NULL, NULL, "http://paypal.com@evil.example/", 1000, 0, false);
    assert_non_null(find_reason(&v, "USERINFO_LINK"));

    v = classify(f, "x@y.example", "me@z.example", "hi, see https://example.org/", 1000,
                 MATCHER_F_STRANGER, false);
    assert_non_null(find_reason(&v, "STRANGER_LINK"));

    /* a plain link from a contact is not a signal */
    v = classify(f, "x@y.example", "me@z.example", "hi, see https://example.org/", 1000, 0,
                 false);
    assert_int_equal(v.n_reasons, 0);
    assert_int_equal(v.action, VERDICT_PASS);
}

static void test_encrypted_body_not_scanned(void **state)
{
    struct fixture *f = *state;
    struct verdict v = classify(f, "a@x.example", "b@x.example", "exactly ten", 1000,
                                MATCHER_F_ENCRYPTED, false);
    assert_int_equal(v.action, VERDICT_PASS);
    assert_null(find_reason(&v, "T_TEN"));
    /* sender-side signals still apply */
    v = classify(f, "someone@evil.example", "b@x.example", "ciphertext", 1000,
                 MATCHER_F_ENCRYPTED, false);
    assert_non_null(find_reason(&v, "LIST_DOMAIN_BLOCK"));
}

static void test_max_text_bound(void **state)
{
    struct fixture *f = *state;
    struct matcher_config cfg;
    struct sw_err err = {{0}};
    matcher_config_defaults(&cfg);
    cfg.max_text = 100;
    struct matcher *m = matcher_new(f->db, &cfg, &err);
    assert_non_null(m);

    char body[400];
    memset(body, 'a', sizeof(body));
    memcpy(body + 300, "tail marker", 11);
    body[399] = '\0';
    struct matcher_msg msg = {.body = body, .body_len = strlen(body), .now_ms = 1};
    struct verdict v;
    assert_int_equal(matcher_classify(f->ctx, m, NULL, &msg, &v, &err), SW_OK);
    assert_null(find_reason(&v, "T_TAIL"));
    /* the same text within the bound is seen */
    memcpy(body + 20, "tail marker", 11);
    assert_int_equal(matcher_classify(f->ctx, m, NULL, &msg, &v, &err), SW_OK);
    assert_non_null(find_reason(&v, "T_TAIL"));
    matcher_unref(m);
}

/* One hijacked account sends the same lure to 20 contacts within seconds. */
static void test_fanout_and_quarantine(void **state)
{
    struct fixture *f = *state;
    char to[64], body[128];
    unsigned first_flag = 0;
    uint64_t t0 = 1700000000000ull;

    for (unsigned i = 1; i <= 20; i++) {
        snprintf(to, sizeof(to), "friend%u@x.example", i);
        snprintf(body, sizeof(body), "hey look at this http://pics-%u.example/album", i % 3);
        struct verdict v = classify(f, "victim@x.example", to, body, t0 + i * 400, 0, true);
        if (i < 5) {
            assert_int_equal(v.action, VERDICT_PASS);
            assert_null(find_reason(&v, "REP_FANOUT"));
        }
        const struct verdict_reason *r = find_reason(&v, "REP_FANOUT");
        if (r != NULL && first_flag == 0) {
            first_flag = i;
            assert_int_equal(atoi(r->detail), (int)i);
            assert_true(v.quarantine_started);
        }
        if (i >= 5)
            assert_int_equal(v.action, VERDICT_DROP);
        /* ordinary chat between other people flows meanwhile */
        snprintf(to, sizeof(to), "c%u@x.example", i);
        v = classify(f, "alice@x.example", to, "lunch at noon?", t0 + i * 400 + 1, 0, true);
        assert_int_equal(v.action, VERDICT_PASS);
    }
    assert_int_equal(first_flag, 5);

    /* the quarantined sender's next message is dropped whatever it says */
    struct verdict v = classify(f, "victim@x.example", "friend1@x.example", "sorry, hacked",
                                t0 + 60000, 0, true);
    assert_non_null(find_reason(&v, "QUARANTINED"));
    assert_int_equal(v.action, VERDICT_DROP);

    /* after the quarantine time it is over */
    v = classify(f, "victim@x.example", "friend1@x.example", "back to normal",
                 t0 + 60000 + 3600u * 1000u + 1000, 0, true);
    assert_null(find_reason(&v, "QUARANTINED"));
}

static void test_same_recipient_is_not_fanout(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 12; i++) {
        struct verdict v = classify(f, "fan@x.example", "one@x.example",
                                    "this one https://example.org/thing", 5000 + i * 1000, 0,
                                    true);
        assert_null(find_reason(&v, "REP_FANOUT"));
    }
}

static void test_campaign(void **state)
{
    struct fixture *f = *state;
    char from[64];
    const struct verdict_reason *seen = NULL;
    struct verdict v;
    for (unsigned i = 1; i <= 12; i++) {
        snprintf(from, sizeof(from), "bot%c%u@x%u.example", 'a', i, i);
        v = classify(f, from, "target@y.example",
                     "Hot singles near you http://dating-1.example/join", 10000 + i * 100, 0,
                     true);
        seen = find_reason(&v, "REP_CAMPAIGN");
        if (i < 10)
            assert_null(seen);
    }
    assert_non_null(seen);
    assert_true(atoi(seen->detail) >= 10);
}

/* Many people sharing one link with a short remark is not a campaign. */
static void test_short_shared_link_is_not_campaign(void **state)
{
    struct fixture *f = *state;
    char from[64];
    for (unsigned i = 1; i <= 15; i++) {
        snprintf(from, sizeof(from), "user%u@x%u.example", i, i);
        struct verdict v = classify(f, from, "friend@y.example",
                                    "did you see this? https://news.example.org/story",
                                    20000 + i * 100, 0, true);
        assert_null(find_reason(&v, "REP_CAMPAIGN"));
        assert_int_equal(v.action, VERDICT_PASS);
    }
}

static void test_bad_domain_history(void **state)
{
    struct fixture *f = *state;
    /* drops that link to one domain make it a known-bad domain for later messages (the
     * default threshold is 2 decayed sightings, so three drops clear it despite decay) */
    classify(f, "s1@x.example", "r@y.example", "exactly ten http://lure-host.example/a", 1000, 0,
             true);
    struct verdict v0 = classify(f, "s2@x.example", "r@y.example",
                                 "innocent looking http://lure-host.example/b", 1500, 0, true);
    assert_null(find_reason(&v0, "REP_BAD_DOMAIN"));
    classify(f, "s2@x.example", "r@y.example", "exactly ten http://lure-host.example/b", 2000, 0,
             true);
    classify(f, "s4@x.example", "r@y.example", "exactly ten http://lure-host.example/d", 2500, 0,
             true);
    struct verdict v = classify(f, "s3@x.example", "r2@y.example",
                                "innocent looking http://www.lure-host.example/c", 3000, 0, true);
    const struct verdict_reason *r = find_reason(&v, "REP_BAD_DOMAIN");
    assert_non_null(r);
    assert_string_equal(r->detail, "lure-host.example");
}


/* Cached short-field results must give exactly what a fresh scan gives. */
static void test_field_cache_same_verdicts(void **state)
{
    struct fixture *f = *state;
    struct matcher_config cfg;
    struct sw_err err = {{0}};
    matcher_config_defaults(&cfg);
    cfg.field_cache_slots = 0;
    struct matcher *nocache = matcher_new(f->db, &cfg, &err);
    assert_non_null(nocache);
    struct matcher_ctx *ctx2 = matcher_ctx_new();
    /* the default cache, and tiny ones where the fields keep evicting each other (one slot,
     * one two-way set, two sets) */
    struct matcher *cached[4] = {f->m, NULL, NULL, NULL};
    struct matcher_ctx *cctx[4] = {f->ctx, NULL, NULL, NULL};
    for (unsigned k = 1; k < 4; k++) {
        cfg.field_cache_slots = 1u << (k - 1);
        cached[k] = matcher_new(f->db, &cfg, &err);
        assert_non_null(cached[k]);
        cctx[k] = matcher_ctx_new();
        assert_non_null(cctx[k]);
    }
    const char *bodies[] = {"hello", "see http://files.evil.example/pics.zip",
                            "mirror http://files.evil.example/pics.zip and www.other.example/",
                            "exactly five"};
    /* the sender and its domain are cached as one entry: a sender that hits both a sender
     * rule and a domain rule, with a JID resource the domain must leave out */
    const char *senders[] = {"someone@evil.example", "BOT7@x.example", "a@x.example",
                             "BOT8@evil.example/phone"};
    for (unsigned round = 0; round < 3 * 4; round++) {
        struct matcher *cm = cached[round % 4];
        struct matcher_ctx *cc = cctx[round % 4];
        for (unsigned b = 0; b < 4; b++) {
            /* each sender twice in a row: its entry is then found in the second way */
            for (unsigned sj = 0; sj < 8; sj++) {
                unsigned si = sj / 2;
                struct matcher_msg msg = {.sender = senders[si],
                                          .sender_len = strlen(senders[si]),
                                          .body = bodies[b],
                                          .body_len = strlen(bodies[b]),
                                          .now_ms = 1};
                struct verdict a, c;
                assert_int_equal(matcher_classify(cc, cm, NULL, &msg, &a, &err), SW_OK);
                assert_int_equal(matcher_classify(ctx2, nocache, NULL, &msg, &c, &err), SW_OK);
                assert_int_equal(a.action, c.action);
                assert_true(a.score == c.score);
                assert_int_equal(a.n_reasons, c.n_reasons);
                for (unsigned i = 0; i < a.n_reasons; i++) {
                    assert_string_equal(a.reasons[i].id, c.reasons[i].id);
                    assert_string_equal(a.reasons[i].detail, c.reasons[i].detail);
                }
            }
        }
    }
    for (unsigned k = 1; k < 4; k++) {
        matcher_ctx_free(cctx[k]);
        matcher_unref(cached[k]);
    }
    matcher_ctx_free(ctx2);
    matcher_unref(nocache);
}

/* A sender's cache entry holds the hits of its address and of its domain together; an entry
 * holds five ids, so a sender with more hits in all is scanned every time, and one with five
 * is replayed whole. Fresh, cached and replayed verdicts must agree, the block list's reason
 * naming the domain (rules' reasons carry no detail). */
static void test_sender_entry_bounds(void **state)
{
    (void)state;
    static const char rules[] = "rule S_A sender 1 /^spammer/\n"
                                "rule S_B sender 1 /mer@/\n"
                                "rule S_C sender 1 /@spam/\n"
                                "rule S_D sender 1 \"spammer@spam.example\"\n"
                                "rule S_E sender 1 /^spam/\n"
                                "rule S_F sender 1 /example/\n"
                                "rule D_A domain 1 /spam/\n"
                                "rule D_B domain 1 /example$/\n"
                                "rule D_C domain 1 /^spam\\./\n"
                                "rule D_D domain 1 /\\./\n";
    struct hsdb *db = compile_or_fail(rules, "spam.example\n", NULL);
    struct sw_err err = {{0}};
    struct matcher_config cfg;
    static const unsigned slots[] = {0, 1, 2, 65536};
    struct matcher *m[4];
    struct matcher_ctx *ctx[4];
    for (unsigned k = 0; k < 4; k++) {
        matcher_config_defaults(&cfg);
        cfg.field_cache_slots = slots[k];
        m[k] = matcher_new(db, &cfg, &err);
        assert_non_null(m[k]);
        ctx[k] = matcher_ctx_new();
        assert_non_null(ctx[k]);
    }
    /* ids per sender (address + domain): 6 + 5 (the address alone overflows an entry, and
     * all of them would overflow the ids kept while both are scanned), 2 + 5, 4 + 5, 2 + 5,
     * 2 + 3 (five: cached whole), none */
    static const struct {
        const char *from;
        unsigned sender_hits, domain_hits;
        bool listed;
    } cases[] = {
        {"spammer@spam.example/res", 6, 4, true}, {"xyz@spam.example", 2, 4, true},
        {"spammer2@spam.example", 4, 4, true},    {"zzz.spam.example@spam.example", 2, 4, true},
        {"x@spam.example.org", 2, 3, false},      {"nobody-at-all", 0, 0, false}};
    for (unsigned round = 0; round < 3; round++) {
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            for (unsigned k = 0; k < 4; k++) {
                struct matcher_msg msg = {.sender = cases[c].from,
                                          .sender_len = strlen(cases[c].from),
                                          .body = "hello",
                                          .body_len = 5,
                                          .now_ms = 1};
                struct verdict v;
                assert_int_equal(matcher_classify(ctx[k], m[k], NULL, &msg, &v, &err), SW_OK);
                unsigned ns = 0, nd = 0;
                bool listed = false;
                for (unsigned i = 0; i < v.n_reasons; i++) {
                    const struct verdict_reason *r = &v.reasons[i];
                    if (strcmp(r->id, "LIST_DOMAIN_BLOCK") == 0) {
                        listed = true;
                        assert_string_equal(r->detail, "spam.example");
                        continue;
                    }
                    assert_string_equal(r->detail, "");
                    ns += r->id[0] == 'S';
                    nd += r->id[0] == 'D';
                }
                if (ns != cases[c].sender_hits || nd != cases[c].domain_hits ||
                    listed != cases[c].listed)
                    fail_msg("%s, %u slots, round %u: %u sender and %u domain hits, listed %d; "
                             "want %u, %u, %d",
                             cases[c].from, slots[k], round, ns, nd, listed, cases[c].sender_hits,
                             cases[c].domain_hits, cases[c].listed);
            }
        }
    }
    for (unsigned k = 0; k < 4; k++) {
        matcher_ctx_free(ctx[k]);
        matcher_unref(m[k]);
    }
    hsdb_unref(db);
}

/* A sender with spim history is not flagged for link-free chat, but is when it links. */
static void test_history_needs_evidence(void **state)
{
    struct fixture *f = *state;
    for (unsigned i = 0; i < 5; i++)
        classify(f, "hijacked@x.example", "r@y.example", "exactly ten", 1000 + i, 0, true);
    struct verdict v = classify(f, "hijacked@x.example", "r@y.example", "good morning!", 2000, 0,
                                true);
    assert_null(find_reason(&v, "REP_BAD_SENDER"));
    assert_int_equal(v.action, VERDICT_PASS);
    v = classify(f, "hijacked@x.example", "r2@y.example", "look https://example.org/x", 2001, 0,
                 true);
    assert_non_null(find_reason(&v, "REP_BAD_SENDER"));
}

/* The body digest of a flagged link-free message (verdict.fingerprint, for its log line)
 * depends on every byte: long bodies are hashed in four lanes plus a tail, and a change in any
 * of them shows. The senders match T_SENDER (a tag), whatever the body. A passed message has
 * no log line and gets no digest. */
static void test_body_digest(void **state)
{
    struct fixture *f = *state;
    char body[160];
    for (size_t i = 0; i + 1 < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    body[sizeof(body) - 1] = '\0';
    struct verdict a = classify(f, "bot1@x.example", "b@x.example", body, 1, 0, false);
    struct verdict b = classify(f, "bot2@x.example", "d@x.example", body, 2, 0, false);
    assert_int_equal(a.action, VERDICT_TAG);
    assert_true(a.fingerprint != 0);
    assert_true(a.fingerprint == b.fingerprint);
    for (size_t at = 0; at + 1 < sizeof(body); at += 7) {
        char save = body[at];
        body[at] = '_';
        struct verdict c = classify(f, "bot1@x.example", "b@x.example", body, 3, 0, false);
        body[at] = save;
        if (c.fingerprint == a.fingerprint)
            fail_msg("a change at byte %zu left the digest alone", at);
    }
    /* the length is part of it */
    body[100] = '\0';
    struct verdict d = classify(f, "bot1@x.example", "b@x.example", body, 4, 0, false);
    assert_true(d.fingerprint != a.fingerprint);
    struct verdict p = classify(f, "a@x.example", "b@x.example", body, 5, 0, false);
    assert_int_equal(p.action, VERDICT_PASS);
    assert_true(p.fingerprint == 0);
}

static struct verdict classify_ip(struct fixture *f, const char *from, const char *ip,
                                  const char *body, uint64_t now_ms)
{
    struct verdict v;
    struct sw_err err = {{0}};
    struct matcher_msg msg = {
        .sender = from,
        .sender_len = strlen(from),
        .recipient = "r@y.example",
        .recipient_len = strlen("r@y.example"),
        .body = body,
        .body_len = strlen(body),
        .ip = ip,
        .ip_len = strlen(ip),
        .now_ms = now_ms,
    };
    if (matcher_classify(f->ctx, f->m, f->rep, &msg, &v, &err) != SW_OK)
        fail_msg("classify: %s", err.msg);
    return v;
}

static uint64_t rep_lookups(struct rep *rep)
{
    struct rep_stats st;
    rep_get_stats(rep, &st);
    return st.hits + st.misses;
}

/* The source address's spim history flags a message with evidence from any source (a link, a
 * rule, the sender's own rate), and link-free chat that scored nothing never looks it up. */
static void test_bad_ip_needs_evidence(void **state)
{
    struct fixture *f = *state;
    const char *ip = "203.0.113.9";
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(classify_ip(f, "spammer@x.example", ip, "exactly ten", 1000 + i).action,
                         VERDICT_DROP);

    /* another account behind the same address, chatting: only its own entry is touched */
    uint64_t before = rep_lookups(f->rep);
    struct verdict v = classify_ip(f, "other@x.example", ip, "good morning!", 2000);
    assert_int_equal(rep_lookups(f->rep) - before, 1);
    assert_null(find_reason(&v, "REP_BAD_IP"));
    assert_int_equal(v.action, VERDICT_PASS);

    /* with a link, or with a rule score, the address counts */
    v = classify_ip(f, "other@x.example", ip, "look https://example.org/x", 2001);
    assert_non_null(find_reason(&v, "REP_BAD_IP"));
    v = classify_ip(f, "other@x.example", ip, "almost five", 2002);
    assert_non_null(find_reason(&v, "REP_BAD_IP"));
    assert_int_equal(v.action, VERDICT_TAG);

    /* evidence that only the sender's entry gives (its message rate) is looked up after it */
    bool rate_seen = false;
    for (unsigned i = 0; i < 40 && !rate_seen; i++) {
        v = classify_ip(f, "chatty@x.example", ip, "lol", 3000 + i);
        rate_seen = find_reason(&v, "REP_RATE") != NULL;
        if (!rate_seen)
            assert_null(find_reason(&v, "REP_BAD_IP"));
    }
    assert_true(rate_seen);
    assert_non_null(find_reason(&v, "REP_BAD_IP"));
    assert_int_equal(v.action, VERDICT_TAG);
}

static void test_config_check(void **state)
{
    (void)state;
    struct matcher_config cfg;
    struct sw_err err = {{0}};

    matcher_config_defaults(&cfg);
    assert_int_equal(matcher_config_check(&cfg, &err), SW_OK);

    cfg.tag_threshold = 11;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "tag_threshold"));

    matcher_config_defaults(&cfg);
    cfg.max_urls = 0;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "max_urls"));

    matcher_config_defaults(&cfg);
    cfg.max_text = 1;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "max_text"));

    matcher_config_defaults(&cfg);
    cfg.field_cache_slots = 1000;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "field_cache_slots"));

    matcher_config_defaults(&cfg);
    cfg.fanout_threshold = 1;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "fanout_threshold"));

    /* spam history below REP_HISTORY_MIN reads as none, so a lower threshold could never
     * mean what it says */
    matcher_config_defaults(&cfg);
    cfg.bad_domain_threshold = REP_HISTORY_MIN / 2;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "bad-domain and bad-sender thresholds must be at least"));
    matcher_config_defaults(&cfg);
    cfg.bad_sender_threshold = REP_HISTORY_MIN / 2;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    cfg.bad_sender_threshold = REP_HISTORY_MIN;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_OK);
    cfg.rate_threshold = 0;
    assert_int_equal(matcher_config_check(&cfg, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "rate_threshold"));
}

/* --- the default rule set against the shipped samples ---------------------------------- */

static struct hsdb *load_default_db_as(enum hsdb_layout layout)
{
    const char *src = getenv("SW_SOURCE_DIR");
    char rules[4096], lists[4096];
    struct sw_err err = {{0}};
    struct ruleload_info info;
    snprintf(rules, sizeof(rules), "%s/conf/rules", src ? src : ".");
    snprintf(lists, sizeof(lists), "%s/conf/lists", src ? src : ".");
    struct ruleload_opts o = {.rules_dir = rules, .lists_dir = lists, .layout = layout};
    memset(&info, 0, sizeof(info));
    struct hsdb *db = ruleload_build(&o, &info, &err);
    if (db == NULL)
        fail_msg("default rules: %s", err.msg);
    return db;
}

static struct hsdb *load_default_db(void)
{
    return load_default_db_as(HSDB_LAYOUT_PER_TARGET);
}

static FILE *open_sample(const char *name)
{
    const char *src = getenv("SW_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/%s", src ? src : ".", name);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    return fp;
}

static void format_reasons(const struct verdict *v, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < v->n_reasons && used + 1 < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s(%+.1f) ", v->reasons[i].id,
                         v->reasons[i].score);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void test_default_rules_samples(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct matcher_config cfg;
    matcher_config_defaults(&cfg);
    struct hsdb *db = load_default_db();
    struct matcher *m = matcher_new(db, &cfg, &err);
    assert_non_null(m);
    struct matcher_ctx *ctx = matcher_ctx_new();
    char line[8192], reasons[1024];
    unsigned n_spim = 0, n_ham = 0, failures = 0;

    FILE *fp = open_sample("spim_samples.txt");
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *body = tab + 1;
        enum verdict_action want = strcmp(line, "drop") == 0 ? VERDICT_DROP : VERDICT_TAG;
        struct matcher_msg msg = {.sender = "someone@example.net",
                                  .sender_len = 19,
                                  .recipient = "me@example.org",
                                  .recipient_len = 14,
                                  .body = body,
                                  .body_len = strlen(body),
                                  .now_ms = 1};
        struct verdict v;
        assert_int_equal(matcher_classify(ctx, m, NULL, &msg, &v, &err), SW_OK);
        if (v.action < want) {
            format_reasons(&v, reasons, sizeof(reasons));
            print_error("spim not caught (want %s, got %s %.1f: %s): %s\n", line,
                        verdict_action_name(v.action), v.score, reasons, body);
            failures++;
        }
        n_spim++;
    }
    fclose(fp);

    fp = open_sample("ham_samples.txt");
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        struct matcher_msg msg = {.sender = "friend@example.net",
                                  .sender_len = 18,
                                  .recipient = "me@example.org",
                                  .recipient_len = 14,
                                  .body = line,
                                  .body_len = strlen(line),
                                  .now_ms = 1};
        struct verdict v;
        assert_int_equal(matcher_classify(ctx, m, NULL, &msg, &v, &err), SW_OK);
        if (v.action != VERDICT_PASS) {
            format_reasons(&v, reasons, sizeof(reasons));
            print_error("ham flagged (%s %.1f: %s): %s\n", verdict_action_name(v.action),
                        v.score, reasons, line);
            failures++;
        }
        n_ham++;
    }
    fclose(fp);

    assert_true(n_spim >= 40);
    assert_true(n_ham >= 40);
    assert_int_equal(failures, 0);
    matcher_ctx_free(ctx);
    matcher_unref(m);
    hsdb_unref(db);
}

/* A database per target and one database for everything give the same verdicts, reasons and
 * details: the layout changes what each scan pays for, never what it finds. Run over every
 * shipped sample, from senders on and off the default lists, with links to listed, shortener
 * and unlisted hosts appended, through the same reputation history. */
/* More body hits than a verdict keeps (MATCHER_MAX_HITS): the second body database of the rules
 * without requires=link (hsdb_body_plain()) must not change the score or the action. Compared
 * against the one-database layout, with and without a provides=link hit, with and without a
 * link. The reasons are the same too, except in one case: a link-free body without a
 * provides=link hit, where the rules with requires=link (which cannot count there) no longer
 * take up the room, so the per-target layout keeps reasons that one database drops. */
static void test_hit_overflow_same_verdicts(void **state)
{
    (void)state;
    enum { N_LINK = 70 };
    char rules[8192], body[2048];
    size_t rl = 0, bl = 0;
    for (unsigned i = 0; i < N_LINK; i++) {
        rl += (size_t)snprintf(rules + rl, sizeof(rules) - rl,
                               "rule L%02u body 1 /lw%02u/ requires=link\n", i, i);
        bl += (size_t)snprintf(body + bl, sizeof(body) - bl, " lw%02u", i);
    }
    snprintf(rules + rl, sizeof(rules) - rl,
             "rule P body 0.5 /zzprov/ provides=link\nrule Q body 7 /zzplain/\n");
    static const char *const tails[] = {" zzprov", " zzplain", " zzplain zzprov",
                                        " zzplain http://pics.example/a.zip", ""};
    struct sw_err err = {{0}};
    struct matcher_config cfg;
    matcher_config_defaults(&cfg);
    cfg.reputation = false;
    struct matcher *ms[2];
    struct matcher_ctx *ctxs[2];
    for (int k = 0; k < 2; k++) {
        struct ruleset *rs = ruleset_new(NULL);
        assert_int_equal(ruleset_parse_rules(rs, rules, strlen(rules), "o.rules", &err), SW_OK);
        struct hsdb *db = hsdb_compile(rs, k == 0 ? HSDB_LAYOUT_PER_TARGET : HSDB_LAYOUT_ONE, &err);
        assert_non_null(db);
        assert_true((hsdb_body_plain(db) != NULL) == (k == 0));
        ms[k] = matcher_new(db, &cfg, &err);
        assert_non_null(ms[k]);
        hsdb_unref(db);
        ctxs[k] = matcher_ctx_new();
        assert_non_null(ctxs[k]);
    }
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
        char text[2200];
        snprintf(text, sizeof(text), "%s%s", body, tails[t]);
        struct verdict v[2];
        for (int k = 0; k < 2; k++) {
            struct matcher_msg msg = {.body = text, .body_len = strlen(text), .now_ms = 1000};
            assert_int_equal(matcher_classify(ctxs[k], ms[k], NULL, &msg, &v[k], &err), SW_OK);
        }
        if (v[0].score != v[1].score || v[0].action != v[1].action)
            fail_msg("tail \"%s\": score %g / %g", tails[t], v[0].score, v[1].score);
        if (strcmp(tails[t], " zzplain") == 0) {
            /* 70 useless hits crowd Q out of one database's list, not out of the plain one */
            assert_int_equal(v[1].n_reasons, 0);
            assert_int_equal(v[0].n_reasons, 1);
            assert_string_equal(v[0].reasons[0].id, "Q");
            continue;
        }
        if (v[0].n_reasons != v[1].n_reasons)
            fail_msg("tail \"%s\": reasons %u / %u", tails[t], v[0].n_reasons, v[1].n_reasons);
        for (unsigned i = 0; i < v[0].n_reasons; i++)
            assert_string_equal(v[0].reasons[i].id, v[1].reasons[i].id);
    }
    for (int k = 0; k < 2; k++) {
        matcher_ctx_free(ctxs[k]);
        matcher_unref(ms[k]);
    }
}

static void test_layouts_same_verdicts(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct matcher_config cfg;
    matcher_config_defaults(&cfg);
    struct hsdb *dbs[2] = {load_default_db_as(HSDB_LAYOUT_PER_TARGET),
                           load_default_db_as(HSDB_LAYOUT_ONE)};
    assert_true(hsdb_count(dbs[0]) > 1);
    assert_int_equal(hsdb_count(dbs[1]), 1);
    struct matcher *ms[2];
    struct matcher_ctx *ctxs[2];
    struct rep *reps[2];
    for (int k = 0; k < 2; k++) {
        ms[k] = matcher_new(dbs[k], &cfg, &err);
        assert_non_null(ms[k]);
        ctxs[k] = matcher_ctx_new();
        assert_non_null(ctxs[k]);
        reps[k] = rep_new(&cfg.rep, &err);
        assert_non_null(reps[k]);
    }
    /* off the lists; sender block list (address, then domain); sender allow list; a sender
     * at a blocked domain */
    static const char *const senders[] = {"friend@example.net", "spimbot@example.invalid",
                                          "X@Spim-Farm.invalid", "alerts@monitoring.invalid",
                                          "someone@bashtel.ru"};
    /* none; a shortener; an allowed host; an archive on a free TLD; an executable with a
     * double extension on a blocked domain */
    static const char *const tails[] = {"", " http://bit.ly/abc", " https://www.youtube.com/watch",
                                        " www.free-pics.tk/album.zip",
                                        " http://jabber.cd/photo.jpg.exe"};
    enum {
        N_SENDERS = sizeof(senders) / sizeof(senders[0]),
        N_TAILS = sizeof(tails) / sizeof(tails[0])
    };
    static const char *const files[] = {"spim_samples.txt", "ham_samples.txt"};
    char line[8192], body[8400];
    unsigned compared = 0, flagged = 0;
    uint64_t now = 1000;
    for (int fi = 0; fi < 2; fi++) {
        FILE *fp = open_sample(files[fi]);
        while (fgets(line, sizeof(line), fp) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] == '\0' || line[0] == '#')
                continue;
            char *tab = strchr(line, '\t');
            const char *text = tab != NULL ? tab + 1 : line;
            for (unsigned si = 0; si < N_SENDERS; si++) {
                snprintf(body, sizeof(body), "%s%s", text,
                         tails[(compared / N_SENDERS + si) % N_TAILS]);
                struct matcher_msg msg = {.sender = senders[si],
                                          .sender_len = strlen(senders[si]),
                                          .recipient = "me@example.org",
                                          .recipient_len = 14,
                                          .ip = "192.0.2.7",
                                          .ip_len = 9,
                                          .body = body,
                                          .body_len = strlen(body),
                                          .now_ms = now += 250};
                struct verdict v[2];
                for (int k = 0; k < 2; k++)
                    assert_int_equal(matcher_classify(ctxs[k], ms[k], reps[k], &msg, &v[k], &err),
                                     SW_OK);
                assert_int_equal(v[0].action, v[1].action);
                assert_true(v[0].score == v[1].score);
                assert_int_equal(v[0].n_reasons, v[1].n_reasons);
                for (unsigned i = 0; i < v[0].n_reasons; i++) {
                    assert_string_equal(v[0].reasons[i].id, v[1].reasons[i].id);
                    assert_string_equal(v[0].reasons[i].detail, v[1].reasons[i].detail);
                }
                compared++;
                flagged += v[0].action != VERDICT_PASS;
            }
        }
        fclose(fp);
    }
    /* the comparison saw both outcomes, plenty of each */
    assert_true(compared >= 400);
    assert_true(flagged >= 100 && compared - flagged >= 50); /* 540 and 467 when written */
    for (int k = 0; k < 2; k++) {
        rep_free(reps[k]);
        matcher_ctx_free(ctxs[k]);
        matcher_unref(ms[k]);
        hsdb_unref(dbs[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_thresholds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requires_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_and_domain_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_body_not_scanned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_text_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_and_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_recipient_is_not_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_campaign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_shared_link_is_not_campaign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_domain_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_field_cache_same_verdicts, setup, teardown),
        cmocka_unit_test(test_sender_entry_bounds),
        cmocka_unit_test_setup_teardown(test_bad_ip_needs_evidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_needs_evidence, setup, teardown),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_default_rules_samples),
        cmocka_unit_test(test_layouts_same_verdicts),
        cmocka_unit_test(test_hit_overflow_same_verdicts),
    };
    return cmocka_run_group_tests_name("matcher", tests, NULL, NULL);
}
