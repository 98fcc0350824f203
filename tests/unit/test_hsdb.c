/* Unit tests for matcher/hsdb.c (compile, scan ids, serialization checks, refcounts) and
 * proxy/ruleload.c (directories, list kinds, cache reuse and rejection). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "matcher/hash.h"
#include "matcher/hsdb.h"
#include "proxy/ruleload.h"

static const char *const test_rules = "rule R_BODY body 3 /see\\s+it/i\n"
                                      "rule R_URL url 4 /\\.zip$/i\n"
                                      "rule R_LIT body 1 \"a.b\"\n";
static const char *const test_domains = "evil.example\n";
static const char *const test_senders = "@spim.example\nbot@x.example\n";
#define PT HSDB_LAYOUT_PER_TARGET

static struct ruleset *make_ruleset(void)
{
    struct sw_err err = {{0}};
    struct ruleset *rs = ruleset_new(NULL);
    assert_non_null(rs);
    assert_int_equal(ruleset_parse_rules(rs, test_rules, strlen(test_rules), "t.rules", &err),
                     SW_OK);
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, test_domains,
                                        strlen(test_domains), "domains-block.txt", &err),
                     SW_OK);
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_SENDER_BLOCK, test_senders,
                                        strlen(test_senders), "senders-block.txt", &err),
                     SW_OK);
    return rs;
}

struct hits {
    unsigned long long mask; /* bit i: id i matched */
    unsigned count;
};

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    struct hits *h = ctx;
    h->mask |= 1ull << id;
    h->count++;
    return 0;
}

/* The ids s matches in one database. */
static unsigned long long scan_one(const hs_database_t *hdb, hs_scratch_t *scratch, const char *s)
{
    struct hits h = {0, 0};
    assert_non_null(hdb);
    assert_int_equal(hs_scan(hdb, s, (unsigned)strlen(s), 0, scratch, on_match, &h), HS_SUCCESS);
    return h.mask;
}

/* The ids s matches in any of db's databases: what a pattern matches, whatever the layout. */
static unsigned long long scan(const struct hsdb *db, hs_scratch_t *scratch, const char *s)
{
    unsigned long long mask = 0;
    for (unsigned i = 0; i < hsdb_count(db); i++)
        mask |= scan_one(hsdb_database(db, i), scratch, s);
    return mask;
}

/* ids: 0 R_BODY, 1 R_URL, 2 R_LIT, 3 evil.example, 4 @spim.example, 5 bot@x.example */
static void check_matches(const struct hsdb *db)
{
    hs_scratch_t *scratch = NULL;
    struct sw_err err = {{0}};
    assert_int_equal(hsdb_alloc_scratch(db, &scratch, &err), SW_OK);
    assert_true(scan(db, scratch, "lol SEE  it") == 1ull << 0);
    assert_true(scan(db, scratch, "see it see it see it") == 1ull << 0); /* SINGLEMATCH */
    assert_true(scan(db, scratch, "http://x.example/pics.ZIP") == 1ull << 1);
    assert_true(scan(db, scratch, "a.b") == 1ull << 2);
    assert_true(scan(db, scratch, "axb") == 0); /* the literal's dot is not a wildcard */
    assert_true(scan(db, scratch, "evil.example") == 1ull << 3);
    assert_true(scan(db, scratch, "www.EVIL.example") == 1ull << 3);
    assert_true(scan(db, scratch, "notevil.example") == 0);
    assert_true(scan(db, scratch, "evil.example.org") == 0);
    assert_true(scan(db, scratch, "joe@spim.example") == 1ull << 4);
    assert_true(scan(db, scratch, "joe@eu.spim.example") == 1ull << 4);
    assert_true(scan(db, scratch, "joe@notspim.example") == 0);
    assert_true(scan(db, scratch, "bot@x.example") == 1ull << 5);
    assert_true(scan(db, scratch, "robot@x.example") == 0);
    assert_true(scan(db, scratch, "bot@x.example.org") == 0);
    hs_free_scratch(scratch);
}

static const enum hsdb_layout layouts[] = {HSDB_LAYOUT_PER_TARGET, HSDB_LAYOUT_ONE};

/* The test ruleset compiled in layouts[k]. */
static struct hsdb *compile_test_rules(size_t k)
{
    struct sw_err err = {{0}};
    struct hsdb *db = hsdb_compile(make_ruleset(), layouts[k], &err);
    if (db == NULL)
        fail_msg("compile: %s", err.msg);
    return db;
}

static void test_compile_and_scan(void **state)
{
    (void)state;
    for (size_t k = 0; k < 2; k++) {
        struct hsdb *db = compile_test_rules(k);
        assert_int_equal(hsdb_layout(db), layouts[k]);
        assert_int_equal(hsdb_count(db), layouts[k] == HSDB_LAYOUT_ONE ? 1 : 4);
        assert_null(hsdb_database(db, hsdb_count(db)));
        assert_int_equal(hsdb_ruleset(db)->n, 6);
        assert_int_equal(hsdb_targets(db), (1u << RULE_BODY) | (1u << RULE_URL) |
                                               (1u << RULE_DOMAIN) | (1u << RULE_SENDER));
        assert_true(hsdb_size(db) > 0);
        assert_true(hsdb_compile_seconds(db) > 0);
        check_matches(db);

        /* reference counting */
        assert_ptr_equal(hsdb_ref(db), db);
        hsdb_unref(db);
        check_matches(db);
        hsdb_unref(db);
    }
    hsdb_unref(NULL);
}

/* Per target, each field's database holds that target's patterns and nothing else; in one
 * database every target scans with the same one. */
static void test_layout_handles(void **state)
{
    (void)state;
    enum hsdb_layout l = HSDB_LAYOUT_ONE;
    assert_true(hsdb_layout_parse("per-target", &l) && l == HSDB_LAYOUT_PER_TARGET);
    assert_true(hsdb_layout_parse("one", &l) && l == HSDB_LAYOUT_ONE);
    assert_false(hsdb_layout_parse("One", &l) || hsdb_layout_parse("", &l));
    assert_string_equal(hsdb_layout_names[HSDB_LAYOUT_PER_TARGET], "per-target");
    struct sw_err err = {{0}};
    hs_scratch_t *scratch = NULL;
    const char *text = "see it http://x.example/pics.zip evil.example bot@x.example a.b";
    /* ids: 0 R_BODY, 1 R_URL, 2 R_LIT, 3 evil.example, 4 @spim.example, 5 bot@x.example */
    struct hsdb *db = hsdb_compile(make_ruleset(), HSDB_LAYOUT_PER_TARGET, &err);
    assert_non_null(db);
    assert_int_equal(hsdb_alloc_scratch(db, &scratch, &err), SW_OK);
    assert_true(scan_one(hsdb_handle(db, RULE_BODY), scratch, text) == ((1ull << 0) | (1ull << 2)));
    assert_true(scan_one(hsdb_handle(db, RULE_URL), scratch, "http://x.example/pics.zip") ==
                1ull << 1);
    assert_true(scan_one(hsdb_handle(db, RULE_URL), scratch, text) == 0);
    assert_true(scan_one(hsdb_handle(db, RULE_DOMAIN), scratch, "evil.example") == 1ull << 3);
    assert_true(scan_one(hsdb_handle(db, RULE_SENDER), scratch, "bot@x.example") == 1ull << 5);
    assert_true(scan_one(hsdb_handle(db, RULE_SENDER), scratch, "evil.example") == 0);
    assert_null(hsdb_handle(db, RULE_TARGET_COUNT));
    hsdb_unref(db);

    db = hsdb_compile(make_ruleset(), HSDB_LAYOUT_ONE, &err);
    assert_non_null(db);
    assert_int_equal(hsdb_alloc_scratch(db, &scratch, &err), SW_OK);
    for (unsigned t = 0; t < RULE_TARGET_COUNT; t++)
        assert_ptr_equal(hsdb_handle(db, (enum rule_target)t), hsdb_database(db, 0));
    assert_true(scan_one(hsdb_handle(db, RULE_BODY), scratch, "see it http://x.example/pics.zip") ==
                ((1ull << 0) | (1ull << 1)));
    hsdb_unref(db);
    hs_free_scratch(scratch);
}

static struct hsdb *compile_text(const char *rules, enum hsdb_layout layout)
{
    struct sw_err err = {{0}};
    struct ruleset *rs = ruleset_new(NULL);
    assert_non_null(rs);
    if (ruleset_parse_rules(rs, rules, strlen(rules), "p.rules", &err) != SW_OK)
        fail_msg("parse: %s", err.msg);
    struct hsdb *db = hsdb_compile(rs, layout, &err);
    if (db == NULL)
        fail_msg("compile: %s", err.msg);
    return db;
}

/* A body with rules with and without requires=link gets a second body database, of the rules
 * without it (HSDB_GROUP_BODY_PLAIN); the body database keeps all of them. Only then, only per
 * target, and it survives the cache. */
static void test_body_plain(void **state)
{
    (void)state;
    static const char both[] = "rule P body 1 /plainword/i\n"
                               "rule L body 2 /lureword/i requires=link\n"
                               "rule S body 1 /w\\sw\\sw/ provides=link\n"
                               "rule U url 1 /lureword/\n";
    const char *text = "plainword lureword w w w";
    struct sw_err err = {{0}};
    hs_scratch_t *scratch = NULL;

    struct hsdb *db = compile_text(both, HSDB_LAYOUT_PER_TARGET);
    assert_int_equal(hsdb_count(db), 3);
    assert_int_equal(hsdb_groups(db), (1u << RULE_BODY) | (1u << RULE_URL) | HSDB_GROUP_BODY_PLAIN);
    assert_int_equal(hsdb_targets(db), (1u << RULE_BODY) | (1u << RULE_URL));
    assert_non_null(hsdb_body_plain(db));
    assert_int_equal(hsdb_alloc_scratch(db, &scratch, &err), SW_OK);
    assert_true(scan_one(hsdb_handle(db, RULE_BODY), scratch, text) == 0x7u);
    assert_true(scan_one(hsdb_body_plain(db), scratch, text) == 0x5u); /* P and S, not L */
    assert_true(scan_one(hsdb_handle(db, RULE_URL), scratch, text) == 0x8u);

    /* the cache keeps it, and a cache of the same rules with other requires= is refused */
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(hsdb_serialize(db, &out, &out_len, &err), SW_OK);
    hsdb_unref(db);
    struct ruleset *rs = ruleset_new(NULL);
    assert_int_equal(ruleset_parse_rules(rs, both, strlen(both), "p.rules", &err), SW_OK);
    db = hsdb_deserialize(rs, HSDB_LAYOUT_PER_TARGET, out, out_len, &err);
    if (db == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(hsdb_count(db), 3);
    assert_true(scan_one(hsdb_body_plain(db), scratch, text) == 0x5u);
    assert_true(scan_one(hsdb_handle(db, RULE_BODY), scratch, text) == 0x7u);
    hsdb_unref(db);
    static const char plain_only[] = "rule P body 1 /plainword/i\n"
                                     "rule L body 2 /lureword/i\n"
                                     "rule S body 1 /w\\sw\\sw/ provides=link\n"
                                     "rule U url 1 /lureword/\n";
    rs = ruleset_new(NULL);
    assert_int_equal(ruleset_parse_rules(rs, plain_only, strlen(plain_only), "p.rules", &err),
                     SW_OK);
    assert_null(hsdb_deserialize(rs, HSDB_LAYOUT_PER_TARGET, out, out_len, &err));
    assert_non_null(strstr(err.msg, "ruleset digest check failed"));
    free(out);

    /* one kind of body rule only, or one database for all: no second body database */
    db = compile_text(plain_only, HSDB_LAYOUT_PER_TARGET);
    assert_int_equal(hsdb_count(db), 2);
    assert_null(hsdb_body_plain(db));
    hsdb_unref(db);
    db = compile_text("rule L body 2 /lureword/i requires=link\n", HSDB_LAYOUT_PER_TARGET);
    assert_int_equal(hsdb_count(db), 1);
    assert_null(hsdb_body_plain(db));
    assert_int_equal(hsdb_targets(db), 1u << RULE_BODY);
    hsdb_unref(db);
    db = compile_text(both, HSDB_LAYOUT_ONE);
    assert_int_equal(hsdb_count(db), 1);
    assert_null(hsdb_body_plain(db));
    hsdb_unref(db);
    hs_free_scratch(scratch);
}

static void test_targets_mask(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct ruleset *rs = ruleset_new(NULL);
    assert_int_equal(ruleset_parse_rules(rs, "rule A url 1 /x/", 16, "t.rules", &err), SW_OK);
    struct hsdb *db = hsdb_compile(rs, HSDB_LAYOUT_PER_TARGET, &err);
    assert_non_null(db);
    assert_int_equal(hsdb_targets(db), 1u << RULE_URL);
    assert_int_equal(hsdb_count(db), 1);
    assert_non_null(hsdb_handle(db, RULE_URL));
    assert_null(hsdb_handle(db, RULE_BODY)); /* nothing targets the body: nothing to scan */
    hsdb_unref(db);
}

static void test_compile_error(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct ruleset *rs = ruleset_new(NULL);
    const char *text = "rule OK body 1 /fine/\n# c\nrule BROKEN body 1 /a(b/\n";
    assert_int_equal(ruleset_parse_rules(rs, text, strlen(text), "bad.rules", &err), SW_OK);
    assert_null(hsdb_compile(rs, HSDB_LAYOUT_PER_TARGET, &err)); /* rs freed by hsdb_compile */
    assert_true(strncmp(err.msg, "bad.rules:3: rule BROKEN: ", 26) == 0);

    rs = ruleset_new(NULL);
    text = "rule EMPTYMATCH body 1 /a*/\n";
    assert_int_equal(ruleset_parse_rules(rs, text, strlen(text), "e.rules", &err), SW_OK);
    assert_null(hsdb_compile(rs, HSDB_LAYOUT_PER_TARGET, &err));
    assert_true(strncmp(err.msg, "e.rules:1: rule EMPTYMATCH: ", 28) == 0);
    assert_null(hsdb_compile(NULL, HSDB_LAYOUT_PER_TARGET, &err));

    /* a bad pattern in a later database (the URL one, after the body one compiled) still names
     * its own place, in both layouts: its index in that database is not its rule index */
    text = "rule B1 body 1 /fine/\nrule B2 body 1 /also fine/\nrule U1 url 1 /ok/\n"
           "rule U2 url 1 /x(y/\n";
    for (int k = 0; k < 2; k++) {
        rs = ruleset_new(NULL);
        assert_int_equal(ruleset_parse_rules(rs, text, strlen(text), "u.rules", &err), SW_OK);
        assert_null(hsdb_compile(rs, k ? HSDB_LAYOUT_ONE : HSDB_LAYOUT_PER_TARGET, &err));
        if (strncmp(err.msg, "u.rules:4: rule U2: ", 20) != 0)
            fail_msg("layout %d: %s", k, err.msg);
    }
}

static void test_empty(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct hsdb *db = hsdb_compile(ruleset_new(NULL), HSDB_LAYOUT_PER_TARGET, &err);
    assert_non_null(db);
    assert_int_equal(hsdb_targets(db), 0);
    assert_int_equal(hsdb_count(db), 1);
    assert_null(hsdb_handle(db, RULE_BODY));
    hs_scratch_t *scratch = NULL;
    assert_int_equal(hsdb_alloc_scratch(db, &scratch, &err), SW_OK);
    char buf[4096];
    memset(buf, 0, sizeof(buf));
    struct hits h = {0, 0};
    assert_int_equal(hs_scan(hsdb_database(db, 0), buf, sizeof(buf), 0, scratch, on_match, &h),
                     HS_SUCCESS);
    assert_int_equal(h.count, 0);
    hs_free_scratch(scratch);

    /* and it round-trips through the cache format */
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(hsdb_serialize(db, &out, &out_len, &err), SW_OK);
    struct hsdb *db2 = hsdb_deserialize(ruleset_new(NULL), PT, out, out_len, &err);
    assert_non_null(db2);
    assert_int_equal(hsdb_count(db2), 1);
    hsdb_unref(db2);
    free(out);
    hsdb_unref(db);
}

static void test_serialize_roundtrip(void **state)
{
    (void)state;
    for (size_t k = 0; k < 2; k++) {
        struct sw_err err = {{0}};
        struct hsdb *db = compile_test_rules(k);
        char *out = NULL;
        size_t out_len = 0;
        assert_int_equal(hsdb_serialize(db, &out, &out_len, &err), SW_OK);
        assert_true(out_len > HSDB_HEADER_LEN);
        assert_memory_equal(out, "SWHSDB01", 8);
        size_t size = hsdb_size(db);
        hsdb_unref(db);

        struct hsdb *db2 = hsdb_deserialize(make_ruleset(), layouts[k], out, out_len, &err);
        if (db2 == NULL)
            fail_msg("%s", err.msg);
        assert_true(hsdb_compile_seconds(db2) == 0);
        assert_int_equal(hsdb_size(db2), size);
        assert_int_equal(hsdb_count(db2), layouts[k] == HSDB_LAYOUT_ONE ? 1 : 4);
        assert_int_equal(hsdb_targets(db2), 0xfu);
        check_matches(db2);
        hsdb_unref(db2);

        /* a cache of the other layout is refused, so the loader recompiles */
        assert_null(hsdb_deserialize(make_ruleset(), layouts[1 - k], out, out_len, &err));
        assert_non_null(strstr(err.msg, "layout check failed"));
        free(out);
    }
}

/* Re-seals a cache file whose payload was edited, so that only the layout check can refuse it. */
static void reseal(char *buf, size_t len)
{
    const char *payload = buf + HSDB_HEADER_LEN;
    size_t plen = len - HSDB_HEADER_LEN;
    uint64_t sum = sw_hash64(payload, plen, HSDB_CHECKSUM_SEED);
    for (int i = 0; i < 8; i++) {
        buf[HSDB_OFF_PAYLOAD_LEN + i] = (char)((uint64_t)plen >> (8 * i));
        buf[HSDB_OFF_CHECKSUM + i] = (char)(sum >> (8 * i));
    }
}

/* A database table that does not add up is refused before Hyperscan sees a byte of it. */
static void test_deserialize_bad_table(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct hsdb *db = hsdb_compile(make_ruleset(), HSDB_LAYOUT_PER_TARGET, &err);
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(hsdb_serialize(db, &out, &out_len, &err), SW_OK);
    hsdb_unref(db);
    char *copy = malloc(out_len + 1);
    assert_non_null(copy);
    const size_t table = HSDB_HEADER_LEN + HSDB_PAYLOAD_HEAD;
    static const struct {
        size_t off;   /* byte to change, from the start of the file */
        uint8_t flip; /* bits to flip in it */
    } edits[] = {
        {HSDB_HEADER_LEN, 1},                        /* layout 0 -> 1: one */
        {HSDB_HEADER_LEN + 4, 7},                    /* count 4 -> 3 */
        {HSDB_HEADER_LEN + 4, 1},                    /* count 4 -> 5 */
        {HSDB_HEADER_LEN + 7, 1},                    /* count 4 -> 2^24 + 4 */
        {table, 3},                                  /* first database's targets: body -> url */
        {table + 4, 1},                              /* reserved */
        {table + 8, 1},                              /* first length one more or one less */
        {table + 15, 1},                             /* first length past the end */
        {table + 3 * HSDB_PAYLOAD_ENTRY + 15, 0x80}, /* last length huge */
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        memcpy(copy, out, out_len);
        copy[edits[i].off] = (char)(copy[edits[i].off] ^ edits[i].flip);
        reseal(copy, out_len);
        assert_null(hsdb_deserialize(make_ruleset(), PT, copy, out_len, &err));
        if (strstr(err.msg, "layout check failed") == NULL)
            fail_msg("edit %zu: '%s'", i, err.msg);
    }
    /* a byte past the last database */
    memcpy(copy, out, out_len);
    copy[out_len] = 0;
    reseal(copy, out_len + 1);
    assert_null(hsdb_deserialize(make_ruleset(), PT, copy, out_len + 1, &err));
    assert_non_null(strstr(err.msg, "trailing"));
    /* and the resealed original still loads: the edits, not the sealing, were refused */
    memcpy(copy, out, out_len);
    reseal(copy, out_len);
    db = hsdb_deserialize(make_ruleset(), PT, copy, out_len, &err);
    if (db == NULL)
        fail_msg("%s", err.msg);
    hsdb_unref(db);
    free(copy);
    free(out);
}

/* Flipping a byte in each header field makes the check of that field fail, in order. */
static void test_deserialize_rejects(void **state)
{
    (void)state;
    static const struct {
        size_t off;
        const char *want;
    } flips[] = {
        {HSDB_OFF_MAGIC, "magic check failed"},
        {HSDB_OFF_MAGIC + 7, "magic check failed"},
        {HSDB_OFF_FORMAT, "format version check failed"},
        {HSDB_OFF_HSVER, "Hyperscan version check failed"},
        {HSDB_OFF_HSVER + HSDB_HSVER_LEN - 1, "Hyperscan version check failed"},
        {HSDB_OFF_PLATFORM, "platform check failed"},
        {HSDB_OFF_PLATFORM + 4, "platform check failed"},
        {HSDB_OFF_PLATFORM + HSDB_PLATFORM_LEN - 1, "platform check failed"},
        {HSDB_OFF_DIGEST, "ruleset digest check failed"},
        {HSDB_OFF_PAYLOAD_LEN, "payload length check failed"},
        {HSDB_OFF_PAYLOAD_LEN + 7, "payload length check failed"},
        {HSDB_OFF_CHECKSUM, "checksum check failed"},
        {HSDB_HEADER_LEN, "checksum check failed"},       /* payload byte */
        {HSDB_HEADER_LEN + 100, "checksum check failed"}, /* payload byte */
    };
    struct sw_err err = {{0}};
    struct hsdb *db = hsdb_compile(make_ruleset(), PT, &err);
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(hsdb_serialize(db, &out, &out_len, &err), SW_OK);
    hsdb_unref(db);
    char *copy = malloc(out_len);
    assert_non_null(copy);

    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(copy, out, out_len);
        copy[flips[i].off] ^= 0x5a;
        memset(&err, 0, sizeof(err));
        assert_null(hsdb_deserialize(make_ruleset(), PT, copy, out_len, &err));
        if (strstr(err.msg, flips[i].want) == NULL)
            fail_msg("flip at %zu: '%s', want '%s'", flips[i].off, err.msg, flips[i].want);
    }

    /* size: shorter than a header, and one payload byte missing or extra */
    assert_null(hsdb_deserialize(make_ruleset(), PT, out, HSDB_HEADER_LEN - 1, &err));
    assert_non_null(strstr(err.msg, "size check failed"));
    assert_null(hsdb_deserialize(make_ruleset(), PT, NULL, 0, &err));
    assert_non_null(strstr(err.msg, "size check failed"));
    assert_null(hsdb_deserialize(make_ruleset(), PT, out, out_len - 1, &err));
    assert_non_null(strstr(err.msg, "payload length check failed"));
    char *longer = malloc(out_len + 1);
    assert_non_null(longer);
    memcpy(longer, out, out_len);
    longer[out_len] = 0;
    assert_null(hsdb_deserialize(make_ruleset(), PT, longer, out_len + 1, &err));
    assert_non_null(strstr(err.msg, "payload length check failed"));
    free(longer);

    /* a different ruleset (one more rule) fails the digest check */
    struct ruleset *rs = make_ruleset();
    assert_int_equal(ruleset_parse_rules(rs, "rule NEW body 1 /new/", 21, "n.rules", &err), SW_OK);
    assert_null(hsdb_deserialize(rs, PT, out, out_len, &err));
    assert_non_null(strstr(err.msg, "ruleset digest check failed"));

    /* the untouched bytes still load */
    db = hsdb_deserialize(make_ruleset(), PT, out, out_len, &err);
    assert_non_null(db);
    hsdb_unref(db);
    free(copy);
    free(out);
}

/* --- ruleload ----------------------------------------------------------------------------------
 */

struct tmpdirs {
    char root[64];
    char rules[96];
    char lists[96];
    char cache[96];
};

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static int setup_dirs(void **state)
{
    struct tmpdirs *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    snprintf(t->root, sizeof(t->root), "/tmp/sw_test_hsdb.XXXXXX");
    if (mkdtemp(t->root) == NULL)
        return -1;
    snprintf(t->rules, sizeof(t->rules), "%s/rules", t->root);
    snprintf(t->lists, sizeof(t->lists), "%s/lists", t->root);
    snprintf(t->cache, sizeof(t->cache), "%s/rules.hsdb", t->root);
    if (mkdir(t->rules, 0700) == -1 || mkdir(t->lists, 0700) == -1)
        return -1;
    *state = t;
    return 0;
}

static int teardown_dirs(void **state)
{
    struct tmpdirs *t = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
    if (system(cmd) != 0)
        return -1;
    free(t);
    return 0;
}

static void test_ruleload_cache(void **state)
{
    struct tmpdirs *t = *state;
    write_text(t->rules, "20-b.rules", "rule B body 1 /bbb/\n");
    write_text(t->rules, "10-a.rules", "rule A body 1 /aaa/\n");
    write_text(t->rules, "README", "not a rule file\n");
    write_text(t->lists, "domains-block.txt", "evil.example\n");
    write_text(t->lists, "domains-block-jabberspam.txt", "bashtel.ru\njabber.cd\n");
    write_text(t->lists, "senders-allow.txt", "ops@x.example\n");
    write_text(t->lists, "shorteners.txt", "bit.ly\n");
    write_text(t->lists, "domains-allow.txt~", "editor backup, ignored\n");
    write_text(t->lists, ".hidden.txt", "ignored\n");

    struct ruleload_opts o;
    ruleload_opts_init(&o);
    o.rules_dir = t->rules;
    o.lists_dir = t->lists;
    o.cache_path = t->cache;
    struct ruleload_info info;
    struct sw_err err = {{0}};

    struct hsdb *db = ruleload_build(&o, &info, &err);
    if (db == NULL)
        fail_msg("%s", err.msg);
    assert_false(info.from_cache);
    assert_true(info.cache_written);
    assert_non_null(strstr(info.cache_reject, "no cache file"));
    assert_int_equal(info.n_files, 6);
    assert_int_equal(info.n_rules, 2);
    assert_int_equal(info.n_entries[RULE_KIND_DOMAIN_BLOCK], 3);
    assert_int_equal(info.n_entries[RULE_KIND_SENDER_ALLOW], 1);
    assert_int_equal(info.n_entries[RULE_KIND_SHORTENER], 1);
    assert_true(info.compile_seconds > 0);
    assert_true(info.db_bytes > 0);
    /* rule files in name order, then list files in name order */
    const struct ruleset *rs = hsdb_ruleset(db);
    assert_string_equal(rs->rules[0].id, "A");
    assert_string_equal(rs->rules[1].id, "B");
    assert_string_equal(rs->rules[2].entry, "bashtel.ru");
    assert_non_null(strstr(rs->rules[2].file, "domains-block-jabberspam.txt"));
    hsdb_unref(db);

    /* second load: from the cache */
    db = ruleload_build(&o, &info, &err);
    assert_non_null(db);
    assert_true(info.from_cache);
    assert_false(info.cache_written);
    assert_string_equal(info.cache_reject, "");
    assert_true(info.compile_seconds == 0);
    hsdb_unref(db);

    /* a changed rule: the cache is rejected by digest, recompiled and replaced */
    write_text(t->rules, "20-b.rules", "rule B body 1 /bbbb/\n");
    db = ruleload_build(&o, &info, &err);
    assert_non_null(db);
    assert_false(info.from_cache);
    assert_non_null(strstr(info.cache_reject, "ruleset digest check failed"));
    assert_true(info.cache_written);
    hsdb_unref(db);
    db = ruleload_build(&o, &info, &err);
    assert_non_null(db);
    assert_true(info.from_cache);
    hsdb_unref(db);

    /* a corrupt cache is not an error either */
    write_text(t->root, "rules.hsdb", "garbage");
    db = ruleload_build(&o, &info, &err);
    assert_non_null(db);
    assert_false(info.from_cache);
    assert_non_null(strstr(info.cache_reject, "size check failed"));
    hsdb_unref(db);

    /* an unwritable cache path is reported, not fatal */
    o.cache_path = "/nonexistent-dir/sw/rules.hsdb";
    db = ruleload_build(&o, &info, &err);
    assert_non_null(db);
    assert_false(info.cache_written);
    assert_non_null(strstr(info.cache_write_error, "/nonexistent-dir/sw/rules.hsdb"));
    hsdb_unref(db);
    o.cache_path = t->cache;

    /* a compile error names the file and line; no database */
    write_text(t->rules, "30-c.rules", "# x\nrule C body 1 /(/\n");
    assert_null(ruleload_build(&o, &info, &err));
    assert_non_null(strstr(err.msg, "/30-c.rules:2: rule C: "));
    /* a parse error too */
    write_text(t->rules, "30-c.rules", "rule A body 1 /dup/\n");
    assert_null(ruleload_build(&o, &info, &err));
    assert_non_null(strstr(err.msg, "/30-c.rules:1: duplicate rule id A"));
    write_text(t->rules, "30-c.rules", "\n");

    /* unknown list names are errors */
    write_text(t->lists, "domain-block.txt", "x.example\n");
    assert_null(ruleload_build(&o, &info, &err));
    assert_non_null(strstr(err.msg, "domain-block.txt: unknown list file name"));
}

static void test_ruleload_limits(void **state)
{
    struct tmpdirs *t = *state;
    write_text(t->rules, "a.rules", "rule A body 1 /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/\n");
    struct ruleload_opts o;
    ruleload_opts_init(&o);
    o.rules_dir = t->rules;
    o.max_file_bytes = 16;
    struct ruleload_info info;
    struct sw_err err = {{0}};
    assert_null(ruleload_build(&o, &info, &err));
    assert_non_null(strstr(err.msg, "a.rules: file too large"));

    o.max_file_bytes = 0;
    o.rules_dir = "/nonexistent-dir/rules";
    assert_null(ruleload_build(&o, &info, &err));
    assert_non_null(strstr(err.msg, "/nonexistent-dir/rules: "));

    /* nothing configured: an empty database */
    ruleload_opts_init(&o);
    struct hsdb *db = ruleload_build(&o, NULL, &err);
    assert_non_null(db);
    assert_int_equal(hsdb_targets(db), 0);
    hsdb_unref(db);

    assert_int_equal(ruleload_list_kind("domains-block.txt"), RULE_KIND_DOMAIN_BLOCK);
    assert_int_equal(ruleload_list_kind("domains-allow-corp.txt"), RULE_KIND_DOMAIN_ALLOW);
    assert_int_equal(ruleload_list_kind("senders-block.txt"), RULE_KIND_SENDER_BLOCK);
    assert_int_equal(ruleload_list_kind("senders-allow.txt"), RULE_KIND_SENDER_ALLOW);
    assert_int_equal(ruleload_list_kind("shorteners.txt"), RULE_KIND_SHORTENER);
    assert_int_equal(ruleload_list_kind("other.txt"), RULE_KIND_RULE);
    assert_int_equal(ruleload_list_kind("shorteners.txt.orig"), -1);
    assert_int_equal(ruleload_list_kind(".shorteners.txt"), -1);
}

/* The shipped rule set (conf/) must load and compile. Tests run from the source tree. */
/* sw_hash64 as first written, with the tail copied byte-wise: the values cache files were
 * checksummed with. */
static uint64_t hash64_reference(const void *p, size_t len, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(len + 1));
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        k *= 0x87c37b91114253d5ULL;
        k = sw_hash_rotl(k, 31);
        k *= 0x4cf5ad432745937fULL;
        h ^= k;
        h = sw_hash_rotl(h, 27) * 5 + 0x52dce729;
        s += 8;
        len -= 8;
    }
    uint64_t t = 0;
    memcpy(&t, s, len);
    t *= 0x87c37b91114253d5ULL;
    h ^= sw_hash_rotl(t, 31) * 0x4cf5ad432745937fULL;
    return sw_hash_mix(h);
}

/* The tail of sw_hash64 is read with whole, overlapping loads: every length and alignment gives
 * the same value as before (so checksums of existing cache files still match), and the bytes
 * read stay within the input (an exact-size heap copy: ASan builds would catch an overread). */
static void test_hash_values_stable(void **state)
{
    (void)state;
    unsigned char src[80];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (unsigned char)(i * 37 + 11);
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len + off <= 64; len++) {
            unsigned char *copy = malloc(len > 0 ? len : 1);
            assert_non_null(copy);
            memcpy(copy, src + off, len);
            assert_true(sw_hash64(copy, len, 7) == hash64_reference(src + off, len, 7));
            free(copy);
        }
    }
}

static void test_default_ruleset(void **state)
{
    (void)state;
    const char *src = getenv("SW_SOURCE_DIR");
    char rules[512], lists[512];
    snprintf(rules, sizeof(rules), "%s/conf/rules", src ? src : ".");
    snprintf(lists, sizeof(lists), "%s/conf/lists", src ? src : ".");
    struct ruleload_opts o;
    ruleload_opts_init(&o);
    o.rules_dir = rules;
    o.lists_dir = lists;
    struct ruleload_info info;
    struct sw_err err = {{0}};
    struct hsdb *db = ruleload_build(&o, &info, &err);
    if (db == NULL)
        fail_msg("%s", err.msg);
    assert_true(info.n_rules >= 30);
    assert_true(info.n_entries[RULE_KIND_SHORTENER] >= 12);
    assert_true(info.n_entries[RULE_KIND_DOMAIN_BLOCK] >= 1);
    assert_int_equal(hsdb_targets(db), 0xfu);
    printf("default rule set: %zu rules, %zu list entries, compiled in %.3f s, %zu bytes\n",
           info.n_rules, hsdb_ruleset(db)->n - info.n_rules, info.compile_seconds, info.db_bytes);
    const struct ruleset *rs = hsdb_ruleset(db);
    for (size_t i = 0; i < rs->n; i++)
        if (rs->rules[i].kind == RULE_KIND_RULE)
            assert_true(strncmp(rs->rules[i].id, "SW_", 3) == 0);
    hsdb_unref(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_and_scan),
        cmocka_unit_test(test_layout_handles),
        cmocka_unit_test(test_body_plain),
        cmocka_unit_test(test_targets_mask),
        cmocka_unit_test(test_compile_error),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test(test_deserialize_rejects),
        cmocka_unit_test(test_deserialize_bad_table),
        cmocka_unit_test_setup_teardown(test_ruleload_cache, setup_dirs, teardown_dirs),
        cmocka_unit_test_setup_teardown(test_ruleload_limits, setup_dirs, teardown_dirs),
        cmocka_unit_test(test_hash_values_stable),
        cmocka_unit_test(test_default_ruleset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
