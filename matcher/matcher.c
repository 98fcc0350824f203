/* The classification pipeline (see matcher.h for the data flow).
 *
 * Per message the work is: one normalisation pass, one Hyperscan scan of the body, one URL
 * pass, a few short scans (each URL, each host, the sender and its domain) only when the
 * database has patterns for that target, one fingerprint, and one reputation observation.
 * Matches are deduplicated with a per-rule generation stamp so that nothing is cleared per
 * message: the cost never depends on the number of rules, only on the number of hits. */
#include "matcher/matcher.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "matcher/hash.h"
#include "matcher/simd.h"
#include "matcher/text.h"
#include "matcher/url.h"

/* Hard ceilings for the configurable bounds, so a config typo cannot ask for gigabytes. */
#define MATCHER_MAX_URLS_CEIL 64
#define MATCHER_MAX_TEXT_CEIL (16u << 20)
#define MATCHER_URL_ARENA_CEIL (1u << 20)
/* Longest address we scan or hash (RFC 7622 caps a JID at 3 x 1023 bytes plus separators). */
#define MATCHER_ADDR_MAX 3072
/* Distinct hits kept per message; more are still scored (see struct verdict). */
#define MATCHER_MAX_HITS 64
#define MATCHER_FIELD_CACHE_CEIL (1u << 20)
#define MATCHER_DOMAIN_CACHE_CEIL (1u << 16)
/* Bytes of the body matcher_classify() starts fetching on entry (see there). */
#define MATCHER_BODY_PREFETCH 512
/* Rule ids one cached field result holds; a field with more hits is simply not cached. */
#define FCACHE_IDS 5

/* Results of scanning a short field (sender, domain, URL): which rules of that field's target
 * hit (a sender's entry holds its domain's hits too, see scan_sender()). Senders and link
 * domains repeat heavily in IM traffic, and every hs_scan call has a fixed cost that dwarfs a
 * 20-byte field, so a per-thread cache removes most of those scans.
 * Keys are salted 64-bit hashes of (target, bytes); cleared whenever the thread moves to another
 * matcher (another database). Two-way set associative: a set is the two entries of one cache
 * line (so a probe costs one miss, like a direct-mapped slot), the most recent in way 0; a new
 * key pushes way 0 to way 1. Direct-mapped, keys sharing a slot kept evicting each other: in
 * bench-matcher's 200 B case, two ways halved the sender scans (46k to 21k per two passes). */
#define FCACHE_WAYS 2
struct fcache_entry {
    uint64_t key; /* 0: empty */
    uint32_t ids[FCACHE_IDS];
    uint8_t n;
};
_Static_assert(sizeof(struct fcache_entry) * FCACHE_WAYS == 64, "a set fills one cache line");

struct matcher {
    atomic_int refs;
    uint64_t serial; /* unique per instance, so a ctx never trusts a recycled pointer */
    struct hsdb *db;
    const struct ruleset *rs;
    unsigned targets;
    uint64_t salt;
    struct matcher_config cfg;
};

struct hit {
    unsigned id;
    const char *detail; /* host or domain the hit was on; NULL for body/sender rules */
    uint32_t detail_len;
};

struct matcher_ctx {
    hs_scratch_t *scratch;
    uint64_t serial; /* of the matcher the scratch and stamps were prepared for */
    uint32_t *stamp; /* per rule: the generation it last hit in */
    size_t stamp_cap;
    uint32_t gen;

    char *norm;
    size_t norm_cap;
    struct url_set *urls;
    struct fcache_entry *fcache; /* 64-byte aligned; fcache_slots entries */
    unsigned fcache_slots;
    unsigned fcache_set_mask;  /* sets - 1; a set is FCACHE_WAYS entries */
    uint32_t fids[FCACHE_IDS]; /* hits of the field being scanned, for the cache */
    unsigned n_fids;           /* > FCACHE_IDS: too many to cache */
    char addr[MATCHER_ADDR_MAX];
    char rcpt[MATCHER_ADDR_MAX];

    /* state of the scan in progress, read by on_match() */
    const struct ruleset *rs;
    enum rule_target target;
    const char *field;
    uint32_t field_len;
    struct hit hits[MATCHER_MAX_HITS];
    unsigned n_hits;
    unsigned hits_dropped;
    double dropped_score;      /* of dropped rule hits without requirements */
    double dropped_score_link; /* of dropped rule hits with requires=link */
};

static atomic_uint_fast64_t matcher_serial_next = 1;

void matcher_config_defaults(struct matcher_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->tag_threshold = 5;
    cfg->drop_threshold = 10;
    cfg->max_urls = 16;
    cfg->max_text = 65536;
    cfg->url_arena = 8192;
    cfg->field_cache_slots = 65536;
    cfg->domain_cache_slots = 1024;
    cfg->score_domain_block = 10;
    cfg->score_domain_allow = -2;
    cfg->score_sender_block = 20;
    cfg->score_sender_allow = -20;
    cfg->score_shortener = 1.5;
    cfg->score_obfuscated_link = 5;
    cfg->score_ip_link = 3;
    cfg->score_userinfo_link = 4;
    cfg->score_stranger = 2;
    cfg->reputation = true;
    rep_config_defaults(&cfg->rep);
    cfg->spread_min_urls = 1;
    cfg->spread_min_len = 0;
    cfg->fanout_threshold = 5;
    cfg->score_fanout = 10;
    cfg->campaign_threshold = 10;
    cfg->campaign_min_len = 16;
    cfg->score_campaign = 6;
    cfg->rate_threshold = 30;
    cfg->score_rate = 3;
    cfg->bad_domain_threshold = 2;
    cfg->score_bad_domain = 4;
    cfg->bad_sender_threshold = 3;
    cfg->score_bad_sender = 3;
    cfg->quarantine_ms = 3600u * 1000u;
    cfg->score_quarantined = 100;
}

/* A cache size in slots: 0 (off) or a power of two up to ceil. */
static int check_slots(const char *name, unsigned slots, unsigned ceil, struct sw_err *err)
{
    if (slots > ceil || (slots & (slots - 1)) != 0)
        return sw_err_set(err, "matcher: %s must be 0 or a power of two up to %u (got %u)", name,
                          ceil, slots);
    return SW_OK;
}

int matcher_config_check(const struct matcher_config *cfg, struct sw_err *err)
{
    if (!isfinite(cfg->tag_threshold) || !isfinite(cfg->drop_threshold))
        return sw_err_set(err, "matcher: thresholds must be finite numbers");
    if (cfg->tag_threshold > cfg->drop_threshold)
        return sw_err_set(err, "matcher: tag_threshold (%g) must not exceed drop_threshold (%g)",
                          cfg->tag_threshold, cfg->drop_threshold);
    if (cfg->max_urls == 0 || cfg->max_urls > MATCHER_MAX_URLS_CEIL)
        return sw_err_set(err, "matcher: max_urls must be 1..%d (got %u)", MATCHER_MAX_URLS_CEIL,
                          cfg->max_urls);
    if (cfg->max_text < 64 || cfg->max_text > MATCHER_MAX_TEXT_CEIL)
        return sw_err_set(err, "matcher: max_text must be 64..%u bytes (got %zu)",
                          MATCHER_MAX_TEXT_CEIL, cfg->max_text);
    if (check_slots("field_cache_slots", cfg->field_cache_slots, MATCHER_FIELD_CACHE_CEIL, err) !=
            SW_OK ||
        check_slots("domain_cache_slots", cfg->domain_cache_slots, MATCHER_DOMAIN_CACHE_CEIL,
                    err) != SW_OK)
        return SW_ERROR;
    if (cfg->url_arena < 256 || cfg->url_arena > MATCHER_URL_ARENA_CEIL)
        return sw_err_set(err, "matcher: url_arena must be 256..%u bytes (got %zu)",
                          MATCHER_URL_ARENA_CEIL, cfg->url_arena);
    if (cfg->reputation) {
        if (cfg->fanout_threshold < 2)
            return sw_err_set(err, "matcher: fanout_threshold must be >= 2 (got %u)",
                              cfg->fanout_threshold);
        if (cfg->campaign_threshold < 2)
            return sw_err_set(err, "matcher: campaign_threshold must be >= 2 (got %u)",
                              cfg->campaign_threshold);
        if (!(cfg->rate_threshold > 0))
            return sw_err_set(err, "matcher: rate_threshold must be positive");
        /* history below REP_HISTORY_MIN reads as none (reputation.h) */
        if (!(cfg->bad_domain_threshold >= REP_HISTORY_MIN) ||
            !(cfg->bad_sender_threshold >= REP_HISTORY_MIN))
            return sw_err_set(err,
                              "matcher: bad-domain and bad-sender thresholds must be at "
                              "least %g",
                              REP_HISTORY_MIN);
    }
    const double scores[] = {
        cfg->score_domain_block, cfg->score_domain_allow,  cfg->score_sender_block,
        cfg->score_sender_allow, cfg->score_shortener,     cfg->score_obfuscated_link,
        cfg->score_ip_link,      cfg->score_userinfo_link, cfg->score_stranger,
        cfg->score_fanout,       cfg->score_campaign,      cfg->score_rate,
        cfg->score_bad_domain,   cfg->score_bad_sender,    cfg->score_quarantined};
    for (size_t i = 0; i < sizeof(scores) / sizeof(scores[0]); i++) {
        if (!isfinite(scores[i]) || fabs(scores[i]) > 1000)
            return sw_err_set(err, "matcher: scores must be finite and within -1000..1000");
    }
    return SW_OK;
}

struct matcher *matcher_new(struct hsdb *db, const struct matcher_config *cfg, struct sw_err *err)
{
    struct matcher *m = NULL;

    if (matcher_config_check(cfg, err) != SW_OK)
        return NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        sw_err_set(err, "matcher: out of memory");
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->serial = atomic_fetch_add(&matcher_serial_next, 1);
    m->db = hsdb_ref(db);
    m->rs = hsdb_ruleset(db);
    m->targets = hsdb_targets(db);
    m->cfg = *cfg;
    /* Keys are salted so that nobody can aim hash collisions at another user's counters. */
    if (getrandom(&m->salt, sizeof(m->salt), GRND_NONBLOCK) != (ssize_t)sizeof(m->salt))
        m->salt = sw_hash_mix((uint64_t)(uintptr_t)m ^ (uint64_t)time(NULL));
    return m;
}

struct matcher *matcher_ref(struct matcher *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void matcher_unref(struct matcher *m)
{
    if (m == NULL)
        return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    hsdb_unref(m->db);
    free(m);
}

const struct matcher_config *matcher_get_config(const struct matcher *m)
{
    return &m->cfg;
}

const struct hsdb *matcher_db(const struct matcher *m)
{
    return m->db;
}

struct matcher_ctx *matcher_ctx_new(void)
{
    return calloc(1, sizeof(struct matcher_ctx));
}

void matcher_ctx_free(struct matcher_ctx *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->scratch != NULL)
        hs_free_scratch(ctx->scratch);
    free(ctx->stamp);
    free(ctx->fcache);
    free(ctx->norm);
    url_set_free(ctx->urls);
    free(ctx);
}

const char *verdict_action_name(enum verdict_action a)
{
    switch (a) {
    case VERDICT_PASS:
        return "pass";
    case VERDICT_TAG:
        return "tag";
    case VERDICT_DROP:
        return "drop";
    }
    return "unknown";
}

/* Brings ctx in line with m: scratch for m's database, a stamp per rule, buffers sized to m's
 * bounds. Cheap when nothing changed (one comparison). */
static int ctx_prepare(struct matcher_ctx *ctx, const struct matcher *m, struct sw_err *err)
{
    if (ctx->serial == m->serial)
        return SW_OK;

    if (hsdb_alloc_scratch(m->db, &ctx->scratch, err) != SW_OK)
        return SW_ERROR;
    if (m->rs->n > ctx->stamp_cap) {
        uint32_t *s = calloc(m->rs->n, sizeof(*s));
        if (s == NULL)
            return sw_err_set(err, "matcher: out of memory");
        free(ctx->stamp);
        ctx->stamp = s;
        ctx->stamp_cap = m->rs->n;
    } else if (ctx->stamp_cap > 0) {
        memset(ctx->stamp, 0, ctx->stamp_cap * sizeof(*ctx->stamp));
    }
    ctx->gen = 0;
    if (ctx->fcache_slots != m->cfg.field_cache_slots) {
        free(ctx->fcache);
        ctx->fcache = NULL;
        ctx->fcache_slots = 0;
        if (m->cfg.field_cache_slots > 0) {
            /* slots is a power of two, so the size is a multiple of 64 unless it is one set
             * or less; sets smaller than FCACHE_WAYS round up to one whole set */
            unsigned slots =
                m->cfg.field_cache_slots < FCACHE_WAYS ? FCACHE_WAYS : m->cfg.field_cache_slots;
            size_t bytes = (size_t)slots * sizeof(*ctx->fcache);
            ctx->fcache = aligned_alloc(64, bytes);
            if (ctx->fcache == NULL)
                return sw_err_set(err, "matcher: out of memory");
            memset(ctx->fcache, 0, bytes);
            ctx->fcache_slots = m->cfg.field_cache_slots;
            ctx->fcache_set_mask = slots / FCACHE_WAYS - 1;
        }
    } else if (ctx->fcache != NULL) {
        memset(ctx->fcache, 0,
               (size_t)(ctx->fcache_set_mask + 1) * FCACHE_WAYS * sizeof(*ctx->fcache));
    }
    if (m->cfg.max_text > ctx->norm_cap) {
        char *n = malloc(m->cfg.max_text);
        if (n == NULL)
            return sw_err_set(err, "matcher: out of memory");
        free(ctx->norm);
        ctx->norm = n;
        ctx->norm_cap = m->cfg.max_text;
    }
    if (ctx->urls == NULL || ctx->urls->max != m->cfg.max_urls ||
        ctx->urls->arena_cap != m->cfg.url_arena ||
        url_set_domain_slots(ctx->urls) != m->cfg.domain_cache_slots) {
        struct url_set *u =
            url_set_new(m->cfg.max_urls, m->cfg.url_arena, m->cfg.domain_cache_slots);
        if (u == NULL)
            return sw_err_set(err, "matcher: out of memory");
        url_set_free(ctx->urls);
        ctx->urls = u;
    }
    ctx->serial = m->serial;
    return SW_OK;
}

/* Forgets every hit of the message: a new stamp generation, nothing dropped. */
static void forget_hits(struct matcher_ctx *ctx)
{
    ctx->n_hits = 0;
    ctx->hits_dropped = 0;
    ctx->dropped_score = 0;
    ctx->dropped_score_link = 0;
    if (++ctx->gen == 0) {
        /* the stamp counter wrapped: forget every stamp once every 2^32 messages */
        memset(ctx->stamp, 0, ctx->stamp_cap * sizeof(*ctx->stamp));
        ctx->gen = 1;
    }
}

/* Counts rule id as a hit of the field being scanned (deduplicated per message). */
static void record_hit(struct matcher_ctx *ctx, unsigned id)
{
    const struct rule *r = &ctx->rs->rules[id];
    if (ctx->stamp[id] == ctx->gen)
        return;
    ctx->stamp[id] = ctx->gen;
    if (ctx->n_hits == MATCHER_MAX_HITS) {
        ctx->hits_dropped++;
        if (r->kind == RULE_KIND_RULE && r->requires == 0)
            ctx->dropped_score += r->score;
        else if (r->kind == RULE_KIND_RULE && r->requires == RULE_REQ_LINK)
            ctx->dropped_score_link += r->score;
        return;
    }
    struct hit *h = &ctx->hits[ctx->n_hits++];
    h->id = id;
    h->detail = (ctx->target == RULE_URL || ctx->target == RULE_DOMAIN) ? ctx->field : NULL;
    h->detail_len = ctx->field_len;
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *arg)
{
    struct matcher_ctx *ctx = arg;

    (void)from;
    (void)to;
    (void)flags;
    if (ctx->rs->rules[id].target != ctx->target) /* HSDB_LAYOUT_ONE: another field's rule */
        return 0;
    if (ctx->n_fids < FCACHE_IDS)
        ctx->fids[ctx->n_fids] = id;
    ctx->n_fids++;
    record_hit(ctx, id);
    return 0;
}

/* The field cache key of a short field (never 0), or 0 when the field will not be scanned or
 * the cache is off. */
static uint64_t fcache_key(const struct matcher_ctx *ctx, const struct matcher *m,
                           enum rule_target target, const char *s, size_t len)
{
    if (!(m->targets & (1u << target)) || len == 0 || ctx->fcache == NULL)
        return 0;
    return sw_hash64(s, len, m->salt ^ (0xf1e1dull + target)) | 1;
}

/* The cache slots are random memory (2 MiB by default, the size of a core's L2 here): fetch the
 * slot of a key as soon as the key is known, so the miss overlaps other work (the body scan
 * for the sender fields, the fingerprint and the other links for links).
 *
 * always_inline, and it must stay so: GCC finds a function whose only effect is a prefetch
 * "pure" (a prefetch changes nothing it models) and deletes every call to it, result unused.
 * Inlined before that analysis runs, the prefetch stays (docs/performance.md, "Prefetches the
 * compiler deleted"). */
__attribute__((always_inline)) static inline void fcache_prefetch(const struct matcher_ctx *ctx,
                                                                  uint64_t key)
{
    if (key != 0)
        __builtin_prefetch(&ctx->fcache[(key & ctx->fcache_set_mask) * FCACHE_WAYS], 1, 3);
}

/* The cached entry of key (non-zero), moved to the front of its set, or NULL. */
static const struct fcache_entry *fcache_find(struct matcher_ctx *ctx, uint64_t key)
{
    struct fcache_entry *set = &ctx->fcache[(key & ctx->fcache_set_mask) * FCACHE_WAYS];
    for (unsigned w = 0; w < FCACHE_WAYS; w++) {
        if (set[w].key == key) {
            if (w > 0) { /* most recent first */
                struct fcache_entry t = set[0];
                set[0] = set[w];
                set[w] = t;
            }
            return &set[0];
        }
    }
    return NULL;
}

/* Caches ids[0..n) under key (non-zero) unless there are more than an entry holds. */
static void fcache_store(struct matcher_ctx *ctx, uint64_t key, const uint32_t *ids, unsigned n)
{
    if (n > FCACHE_IDS)
        return;
    struct fcache_entry *set = &ctx->fcache[(key & ctx->fcache_set_mask) * FCACHE_WAYS];
    memmove(&set[1], &set[0], (FCACHE_WAYS - 1) * sizeof(*set)); /* drops the oldest */
    set[0].key = key;
    set[0].n = (uint8_t)n;
    memcpy(set[0].ids, ids, n * sizeof(ids[0]));
}

/* Makes s[0..len) the field being scanned for target: on_match() and record_hit() read it. */
static void set_field(struct matcher_ctx *ctx, enum rule_target target, const char *s, size_t len)
{
    ctx->target = target;
    ctx->field = s;
    ctx->field_len = (uint32_t)len;
}

/* Scans the current field (set_field()) with db, its hits into ctx (on_match()). */
static int scan_with(struct matcher_ctx *ctx, const hs_database_t *db, struct sw_err *err)
{
    hs_error_t rc = hs_scan(db, ctx->field, ctx->field_len, 0, ctx->scratch, on_match, ctx);
    if (rc != HS_SUCCESS)
        return sw_err_set(err, "matcher: hs_scan failed (%d)", (int)rc);
    return SW_OK;
}

/* Scans one field of the message for target. key is fcache_key() of the field for the short
 * targets (0: not cached), 0 for the body. Either way the field's hits are left in ctx->fids
 * (ctx->n_fids of them, only the first FCACHE_IDS kept) for scan_sender(). */
static int scan_field(struct matcher_ctx *ctx, const struct matcher *m, enum rule_target target,
                      const char *s, size_t len, uint64_t key, struct sw_err *err)
{
    ctx->n_fids = 0;
    if (!(m->targets & (1u << target)) || len == 0)
        return SW_OK;
    set_field(ctx, target, s, len);

    if (key != 0) {
        const struct fcache_entry *e = fcache_find(ctx, key);
        if (e != NULL) {
            for (unsigned i = 0; i < e->n; i++) {
                ctx->fids[i] = e->ids[i];
                record_hit(ctx, e->ids[i]);
            }
            ctx->n_fids = e->n;
            return SW_OK;
        }
    }
    if (scan_with(ctx, hsdb_handle(m->db, target), err) != SW_OK)
        return SW_ERROR;
    if (key != 0)
        fcache_store(ctx, key, ctx->fids, ctx->n_fids);
    return SW_OK;
}

/* The domain of a folded sender address: after the '@', without a JID's resource. NULL if the
 * address has no '@'. */
static const char *sender_domain(const char *addr, size_t len, size_t *dom_len)
{
    const char *at = memchr(addr, '@', len);
    if (at == NULL)
        return NULL;
    const char *d = at + 1;
    size_t n = len - (size_t)(d - addr);
    const char *slash = memchr(d, '/', n); /* full JID: drop the resource */
    *dom_len = slash != NULL ? (size_t)(slash - d) : n;
    return d;
}

/* Scans the sender's address (ctx->addr, len > 0) for sender rules and its domain for domain
 * rules. The domain is a function of the address, so the hits of both are cached as one entry
 * under the address's key (non-zero; 0: not cached), each id's rule telling which field it hit:
 * a known sender costs one probe, and its domain is not even looked for unless one of its
 * rules hit. A new sender scans both (the domain through its own cache entry, which the
 * senders of a popular server share). */
static int scan_sender(struct matcher_ctx *ctx, const struct matcher *m, size_t len, uint64_t key,
                       struct sw_err *err)
{
    size_t dom_len = 0;
    const char *dom = NULL;

    if (key != 0) {
        const struct fcache_entry *e = fcache_find(ctx, key);
        if (e != NULL) {
            for (unsigned i = 0; i < e->n; i++) {
                uint32_t id = e->ids[i];
                if (ctx->rs->rules[id].target == RULE_DOMAIN) {
                    if (dom == NULL)
                        dom = sender_domain(ctx->addr, len, &dom_len);
                    set_field(ctx, RULE_DOMAIN, dom, dom_len);
                } else {
                    set_field(ctx, RULE_SENDER, ctx->addr, len);
                }
                record_hit(ctx, id);
            }
            return SW_OK;
        }
    }
    if (scan_field(ctx, m, RULE_SENDER, ctx->addr, len, 0, err) != SW_OK)
        return SW_ERROR;
    uint32_t ids[2 * FCACHE_IDS];
    unsigned n = ctx->n_fids;
    memcpy(ids, ctx->fids, (n < FCACHE_IDS ? n : FCACHE_IDS) * sizeof(ids[0]));
    dom = sender_domain(ctx->addr, len, &dom_len);
    if (dom != NULL) {
        uint64_t dkey = fcache_key(ctx, m, RULE_DOMAIN, dom, dom_len);
        if (scan_field(ctx, m, RULE_DOMAIN, dom, dom_len, dkey, err) != SW_OK)
            return SW_ERROR;
        if (n <= FCACHE_IDS && ctx->n_fids <= FCACHE_IDS)
            memcpy(ids + n, ctx->fids, ctx->n_fids * sizeof(ids[0]));
        n += ctx->n_fids;
    }
    if (key != 0)
        fcache_store(ctx, key, ids, n);
    return SW_OK;
}

/* Scans the normalised body. Under HSDB_LAYOUT_PER_TARGET a body in which the URL extractor
 * found no link is scanned with the database of the rules without requires=link
 * (hsdb_body_plain()): the others cannot count unless a rule with provides=link hits, and
 * only then (or when the hits overflowed) is the body scanned again, from scratch, with every
 * body rule. A body with a link is scanned once with every body rule. Either way the hits are
 * those of one scan with every body rule. */
static int scan_body_text(struct matcher_ctx *ctx, const struct matcher *m, const char *s,
                          size_t len, struct sw_err *err)
{
    const hs_database_t *plain = hsdb_body_plain(m->db);
    if (plain == NULL || ctx->urls->n > 0 || len == 0)
        return scan_field(ctx, m, RULE_BODY, s, len, 0, err);
    ctx->n_fids = 0;
    set_field(ctx, RULE_BODY, s, len);
    if (scan_with(ctx, plain, err) != SW_OK)
        return SW_ERROR;
    bool again = ctx->hits_dropped > 0;
    for (unsigned i = 0; i < ctx->n_hits && !again; i++)
        again = (m->rs->rules[ctx->hits[i].id].provides & RULE_REQ_LINK) != 0;
    if (!again)
        return SW_OK;
    /* Start the body over with every rule, so that the hits are exactly those of one full scan:
     * with more than MATCHER_MAX_HITS of them, which are kept depends on the rules that the
     * plain scan left out. The body is the first field scanned, so nothing else is lost. */
    forget_hits(ctx);
    return scan_field(ctx, m, RULE_BODY, s, len, 0, err);
}

#if defined(__SSE2__)
/* addr_fold() of the 16 bytes at src[off..off + 16). */
static inline void addr_fold16(char *dst, const char *src, size_t off)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + off));
    __m128i upper = sw_in_range_epu8(v, 'A', 25);
    v = _mm_or_si128(v, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
    _mm_storeu_si128((__m128i *)(void *)(dst + off), v);
}
#endif

/* Copies an address lower-cased (ASCII) into dst, bounded; returns its length. */
static size_t addr_fold(char *dst, const char *src, size_t len)
{
    if (src == NULL)
        return 0;
    if (len > MATCHER_ADDR_MAX)
        len = MATCHER_ADDR_MAX;
#if defined(__SSE2__)
    /* every message folds its sender: sixteen bytes at a time, the last block ending with the
     * address (overlapping bytes already folded, which folding again leaves alone) */
    if (len >= 16) {
        size_t i = 0;
        for (; i + 16 <= len; i += 16)
            addr_fold16(dst, src, i);
        if (i < len)
            addr_fold16(dst, src, len - 16);
        return len;
    }
#endif
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return len;
}

static void add_reason(struct verdict *v, const char *id, double score, const char *detail,
                       size_t detail_len)
{
    v->score += score;
    if (v->n_reasons == VERDICT_MAX_REASONS) {
        v->reasons_dropped++;
        return;
    }
    struct verdict_reason *r = &v->reasons[v->n_reasons++];
    r->id = id;
    r->score = score;
    if (detail_len >= sizeof(r->detail))
        detail_len = sizeof(r->detail) - 1;
    if (detail_len > 0)
        memcpy(r->detail, detail, detail_len);
    r->detail[detail_len] = '\0';
}

static void add_reason_count(struct verdict *v, const char *id, double score, double count)
{
    char buf[32];
    size_t n = 0;
    if (count >= 0 && count < 1e15) {
        /* what "%.0f" prints (llrint rounds half to even, as printf does), without printf's
         * floating-point formatting machinery: every flagged message pays for this */
        char rev[20];
        unsigned long long c = (unsigned long long)llrint(count);
        do {
            rev[n++] = (char)('0' + c % 10);
            c /= 10;
        } while (c > 0);
        for (size_t i = 0; i < n; i++)
            buf[i] = rev[n - 1 - i];
    } else {
        int w = snprintf(buf, sizeof(buf), "%.0f", count);
        n = w <= 0 ? 0 : (size_t)w < sizeof(buf) ? (size_t)w : sizeof(buf) - 1; /* truncated */
    }
    add_reason(v, id, score, buf, n);
}

static double list_score(const struct matcher_config *cfg, enum rule_kind kind)
{
    switch (kind) {
    case RULE_KIND_DOMAIN_BLOCK:
        return cfg->score_domain_block;
    case RULE_KIND_DOMAIN_ALLOW:
        return cfg->score_domain_allow;
    case RULE_KIND_SENDER_BLOCK:
        return cfg->score_sender_block;
    case RULE_KIND_SENDER_ALLOW:
        return cfg->score_sender_allow;
    case RULE_KIND_SHORTENER:
        return cfg->score_shortener;
    case RULE_KIND_RULE:
    case RULE_KIND_COUNT:
        break;
    }
    return 0;
}

/* Turns the collected hits into reasons: rules in database order, then one reason per list
 * kind (the first entry that hit names it). */
static void score_hits(struct matcher_ctx *ctx, const struct matcher *m, struct verdict *v)
{
    /* insertion sort: a handful of hits per message */
    for (unsigned i = 1; i < ctx->n_hits; i++) {
        struct hit h = ctx->hits[i];
        unsigned j = i;
        while (j > 0 && ctx->hits[j - 1].id > h.id) {
            ctx->hits[j] = ctx->hits[j - 1];
            j--;
        }
        ctx->hits[j] = h;
    }
    bool kind_seen[RULE_KIND_COUNT] = {false};
    unsigned met = ctx->urls->n > 0 ? RULE_REQ_LINK : 0;
    for (unsigned i = 0; i < ctx->n_hits; i++)
        met |= m->rs->rules[ctx->hits[i].id].provides;
    for (unsigned i = 0; i < ctx->n_hits; i++) {
        const struct rule *r = &m->rs->rules[ctx->hits[i].id];
        if (r->kind != RULE_KIND_RULE || (r->requires & ~met) != 0)
            continue;
        add_reason(v, r->id, r->score, NULL, 0);
    }
    for (unsigned i = 0; i < ctx->n_hits; i++) {
        const struct rule *r = &m->rs->rules[ctx->hits[i].id];
        if (r->kind == RULE_KIND_RULE || kind_seen[r->kind])
            continue;
        kind_seen[r->kind] = true;
        const char *d = ctx->hits[i].detail;
        size_t dl = ctx->hits[i].detail_len;
        if (d == NULL && r->entry != NULL) {
            d = r->entry;
            dl = strlen(r->entry);
        }
        add_reason(v, rule_kind_reason(r->kind), list_score(&m->cfg, r->kind), d, d ? dl : 0);
    }
    if (ctx->hits_dropped > 0)
        v->score += ctx->dropped_score + (met & RULE_REQ_LINK ? ctx->dropped_score_link : 0);
}

static void content_signals(const struct matcher *m, const struct url_set *urls,
                            const struct text_norm *tn, unsigned msg_flags, struct verdict *v)
{
    const struct matcher_config *cfg = &m->cfg;
    if (urls->n == 0)
        return;
    const char *obf = NULL;
    unsigned any = 0;
    for (unsigned i = 0; i < urls->n; i++)
        any |= urls->items[i].flags;
    if (any & URL_F_DEFANGED)
        obf = "defanged-scheme";
    else if (any & URL_F_DOT_WORD)
        obf = "dot-word";
    else if (tn->flags & TEXT_F_ZERO_WIDTH)
        obf = "zero-width";
    else if (tn->flags & (TEXT_F_FULLWIDTH | TEXT_F_MATH_ALNUM))
        obf = "full-width";
    else if (tn->flags & TEXT_F_CONFUSABLE)
        obf = "look-alike";
    if (obf != NULL && cfg->score_obfuscated_link != 0)
        add_reason(v, "OBFUSCATED_LINK", cfg->score_obfuscated_link, obf, strlen(obf));
    for (unsigned i = 0; i < urls->n; i++) {
        if ((urls->items[i].flags & URL_F_IP_HOST) && cfg->score_ip_link != 0) {
            add_reason(v, "IP_LINK", cfg->score_ip_link, urls->items[i].host,
                       urls->items[i].host_len);
            break;
        }
    }
    for (unsigned i = 0; i < urls->n; i++) {
        if ((urls->items[i].flags & URL_F_USERINFO) && cfg->score_userinfo_link != 0) {
            add_reason(v, "USERINFO_LINK", cfg->score_userinfo_link, urls->items[i].host,
                       urls->items[i].host_len);
            break;
        }
    }
    if ((msg_flags & MATCHER_F_STRANGER) && cfg->score_stranger != 0)
        add_reason(v, "STRANGER_LINK", cfg->score_stranger, NULL, 0);
}

/* The reputation key known before the scan: the sender (sender_h, the salted hash of the
 * folded address, 0 if absent). The source address's key is made only when it is looked up
 * (ip_key()): most messages never do (behaviour_signals). */
static void early_keys(const struct matcher_msg *msg, uint64_t sender_h, struct rep_msg *rm)
{
    memset(rm, 0, sizeof(*rm));
    rm->now_ms = msg->now_ms;
    rm->sender = sender_h;
    rm->ip_history_only = true; /* REP_BAD_IP is all the source address is used for */
}

static bool has_ip(const struct matcher_msg *msg)
{
    return msg->ip != NULL && msg->ip_len > 0;
}

/* Sets rm->ip, the source address's key, if the message has a source address. */
static void ip_key(const struct matcher *m, const struct matcher_msg *msg, struct rep_msg *rm)
{
    if (rm->ip == 0 && has_ip(msg))
        rm->ip = sw_hash64(msg->ip, msg->ip_len, m->salt ^ 0x1b);
}

/* The reputation keys known once the links and the body digest are: fingerprint, recipient
 * (both for fan-out and campaign), the links' domains, and for a message with links (which
 * always looks it up) the source address; dom_url[k] is the link that rm->domains[k] came
 * from. rm comes filled by early_keys(). */
static void spread_keys(struct matcher_ctx *ctx, const struct matcher *m,
                        const struct matcher_msg *msg, size_t folded_len, uint64_t fingerprint,
                        struct rep_msg *rm, unsigned *dom_url)
{
    const struct matcher_config *cfg = &m->cfg;
    const struct url_set *urls = ctx->urls;

    if (urls->n >= cfg->spread_min_urls && folded_len >= cfg->spread_min_len)
        rm->fingerprint = fingerprint ^ m->salt;
    /* the recipient only counts towards fan-out, which needs the fingerprint */
    if (rm->fingerprint != 0) {
        size_t rl = addr_fold(ctx->rcpt, msg->recipient, msg->recipient_len);
        if (rl > 0)
            rm->recipient = sw_hash64(ctx->rcpt, rl, m->salt ^ 0x7e);
    }
    for (unsigned i = 0; i < urls->n && rm->n_domains < REP_MAX_DOMAINS; i++) {
        uint64_t h = sw_hash64(urls->items[i].domain, urls->items[i].domain_len, m->salt ^ 0xd0);
        bool dup = false;
        for (unsigned j = 0; j < rm->n_domains; j++)
            dup |= rm->domains[j] == h;
        if (!dup) {
            dom_url[rm->n_domains] = i;
            rm->domains[rm->n_domains++] = h;
        }
    }
    if (urls->n > 0)
        ip_key(m, msg, rm);
}

/* rm comes filled by early_keys() and spread_keys(). */
static void behaviour_signals(struct matcher_ctx *ctx, const struct matcher *m, struct rep *rep,
                              const struct matcher_msg *msg, size_t folded_len,
                              const unsigned *dom_url, struct rep_msg *rm, struct verdict *v)
{
    const struct matcher_config *cfg = &m->cfg;
    const struct url_set *urls = ctx->urls;
    struct rep_signals sig;

    if (rm->fingerprint == 0 && rm->sender == 0 && !has_ip(msg) && rm->n_domains == 0)
        return;

    /* The source address feeds one signal, REP_BAD_IP, and only for a message with evidence
     * (below). Link-free chat that scored nothing has none unless the sender's own signals
     * (quarantine, rate, and campaign when spread_min_urls is 0) give it some, so its IP entry
     * is looked up after those, and not at all when they give nothing: one bucket and one
     * lock round trip fewer for most messages, and no key to make for it either. (Nothing
     * reads the IP's message rate.) */
    bool ip_later = has_ip(msg) && urls->n == 0 && !(v->score > 0);
    if (!ip_later)
        ip_key(m, msg, rm);
    rep_observe(rep, rm, &sig);

    if (sig.quarantined)
        add_reason(v, "QUARANTINED", cfg->score_quarantined, NULL, 0);
    if (rm->fingerprint != 0 && sig.fanout >= cfg->fanout_threshold) {
        add_reason_count(v, "REP_FANOUT", cfg->score_fanout, sig.fanout);
        if (cfg->quarantine_ms > 0 && rm->sender != 0 && !sig.quarantined) {
            rep_quarantine(rep, rm->sender, msg->now_ms, cfg->quarantine_ms);
            v->quarantine_started = true;
        }
    }
    if (rm->fingerprint != 0 && sig.campaign >= cfg->campaign_threshold &&
        folded_len >= cfg->campaign_min_len)
        add_reason_count(v, "REP_CAMPAIGN", cfg->score_campaign, sig.campaign);
    if (rm->sender != 0 && sig.sender_rate >= cfg->rate_threshold)
        add_reason_count(v, "REP_RATE", cfg->score_rate, sig.sender_rate);
    if (rm->n_domains > 0 && sig.domain_spam >= cfg->bad_domain_threshold) {
        const struct url_item *u =
            &urls->items[dom_url[sig.domain_spam_idx < rm->n_domains ? sig.domain_spam_idx : 0]];
        add_reason(v, "REP_BAD_DOMAIN", cfg->score_bad_domain, u->domain, u->domain_len);
    }
    /* History amplifies evidence; it does not flag a link-free "good morning" on its own (a
     * hijacked account's owner keeps chatting while the worm spams). */
    bool evidence = urls->n > 0 || v->score > 0;
    if (evidence && ip_later) {
        ip_key(m, msg, rm);
        struct rep_msg ipm = {.ip = rm->ip, .now_ms = rm->now_ms, .ip_history_only = true};
        struct rep_signals isig;
        rep_observe(rep, &ipm, &isig);
        sig.ip_spam = isig.ip_spam;
    }
    if (evidence && rm->sender != 0 && sig.sender_spam >= cfg->bad_sender_threshold)
        add_reason_count(v, "REP_BAD_SENDER", cfg->score_bad_sender, sig.sender_spam);
    if (evidence && rm->ip != 0 && sig.ip_spam >= cfg->bad_sender_threshold)
        add_reason_count(v, "REP_BAD_IP", cfg->score_bad_sender, sig.ip_spam);
}

int matcher_classify(struct matcher_ctx *ctx, const struct matcher *m, struct rep *rep,
                     const struct matcher_msg *msg, struct verdict *out, struct sw_err *err)
{
    const struct matcher_config *cfg = &m->cfg;
    struct text_norm tn = {0};
    size_t folded_len = 0;
    size_t digest_len = 0; /* > 0: the body digest is still to be taken over ctx->norm */

    out->action = VERDICT_PASS;
    out->score = 0;
    out->n_reasons = 0;
    out->reasons_dropped = 0;
    out->fingerprint = 0;
    out->n_urls = 0;
    out->quarantine_started = false;

    /* The sender's address is read first (its keys below), then the body by text_normalize():
     * start fetching both now, so that their misses overlap each other and that work instead
     * of following one another (the hardware prefetcher picks up the rest of a long body once
     * the copy streams through it). A no-op for a stanza the parser just read; the bench's
     * corpus, 40 MB of bodies and a table of 10,000 addresses, is not in cache. */
    bool scan_body = !(msg->flags & MATCHER_F_ENCRYPTED) && msg->body != NULL && msg->body_len > 0;
    if (msg->sender != NULL && msg->sender_len > 0) {
        __builtin_prefetch(msg->sender, 0, 3);
        __builtin_prefetch(msg->sender + msg->sender_len - 1, 0, 3);
    }
    /* and the first lines of the recipient and source addresses, which a message with a link
     * reads after its scans: two wasted prefetches for the others */
    if (msg->recipient != NULL && msg->recipient_len > 0)
        __builtin_prefetch(msg->recipient, 0, 3);
    if (has_ip(msg))
        __builtin_prefetch(msg->ip, 0, 3);
    if (scan_body) {
        size_t ahead =
            msg->body_len < MATCHER_BODY_PREFETCH ? msg->body_len : MATCHER_BODY_PREFETCH;
        for (size_t off = 0; off < ahead; off += 64)
            __builtin_prefetch(msg->body + off, 0, 3);
        __builtin_prefetch(msg->body + ahead - 1, 0, 3); /* a body that straddles a line */
    }

    if (ctx_prepare(ctx, m, err) != SW_OK)
        return SW_ERROR;
    ctx->rs = m->rs;
    forget_hits(ctx);
    ctx->urls->n = 0;
    ctx->urls->dropped = 0;

    /* The sender's bucket of the reputation table is random memory: start fetching it now so
     * that the misses overlap the body scan. The source address's bucket is not fetched: most
     * messages never look it up (behaviour_signals). */
    size_t sender_len = addr_fold(ctx->addr, msg->sender, msg->sender_len);
    /* one hash of the address serves as its reputation key and, mixed, its field cache key */
    uint64_t sender_h = sender_len > 0 ? sw_hash64(ctx->addr, sender_len, m->salt ^ 0x5e) : 0;
    bool use_rep = rep != NULL && cfg->reputation;
    struct rep_msg rm;
    unsigned dom_url[REP_MAX_DOMAINS]; /* see spread_keys() */
    bool spread_done = false;
    if (use_rep) {
        early_keys(msg, sender_h, &rm);
        rep_prefetch(rep, rm.sender);
    }
    /* Likewise the field cache slot of the sender (and its domain, see scan_sender()). */
    uint64_t sender_key = 0;
    if (sender_len > 0 && (m->targets & (1u << RULE_SENDER | 1u << RULE_DOMAIN)) &&
        ctx->fcache != NULL) {
        sender_key = sw_hash_mix(sender_h ^ (0xf1e1dull + RULE_SENDER)) | 1;
        fcache_prefetch(ctx, sender_key);
    }

    if (scan_body) {
        size_t in_len = msg->body_len < cfg->max_text ? msg->body_len : cfg->max_text;
        text_normalize(msg->body, in_len, ctx->norm, &tn);
        /* The links, their keys and the fingerprint come before the body scan, which does not
         * need them: the cache slots and reputation buckets they name are random memory, and
         * the scan is the longest work there is to overlap their misses with. */
        url_extract(ctx->norm, tn.len, ctx->urls);
        out->n_urls = ctx->urls->n;

        /* every link's keys first, so that the cache misses of all its slots overlap */
        struct text_span spans[MATCHER_MAX_URLS_CEIL];
        uint64_t url_keys[MATCHER_MAX_URLS_CEIL][2];
        for (unsigned i = 0; i < ctx->urls->n; i++) {
            const struct url_item *u = &ctx->urls->items[i];
            spans[i].off = u->span_off;
            spans[i].len = u->span_len;
            url_keys[i][0] = fcache_key(ctx, m, RULE_URL, u->url, u->url_len);
            url_keys[i][1] = fcache_key(ctx, m, RULE_DOMAIN, u->host, u->host_len);
            fcache_prefetch(ctx, url_keys[i][0]);
            fcache_prefetch(ctx, url_keys[i][1]);
        }
        /* The folded fingerprint feeds fan-out and campaign counting only; other messages get
         * a plain digest of the normalised text for the logs, once the verdict shows that
         * there will be a log line (below). */
        if (use_rep && ctx->urls->n >= cfg->spread_min_urls)
            out->fingerprint =
                text_fingerprint(ctx->norm, tn.len, spans, ctx->urls->n, &folded_len);
        else
            digest_len = tn.len;
        /* The fingerprint, pair, domain and source-address buckets are random memory too, and a
         * message with a link looks all of them up: fetch their tag lines during the body scan,
         * then their entry lines while the links are scanned. */
        if (use_rep) {
            spread_keys(ctx, m, msg, folded_len, out->fingerprint, &rm, dom_url);
            spread_done = true;
            if (ctx->urls->n > 0)
                rep_prefetch_spread(rep, &rm);
        }
        if (scan_body_text(ctx, m, ctx->norm, tn.len, err) != SW_OK)
            return SW_ERROR;
        if (use_rep && ctx->urls->n > 0)
            rep_prefetch_spread_entries(rep, &rm);
        for (unsigned i = 0; i < ctx->urls->n; i++) {
            const struct url_item *u = &ctx->urls->items[i];
            if (scan_field(ctx, m, RULE_URL, u->url, u->url_len, url_keys[i][0], err) != SW_OK ||
                scan_field(ctx, m, RULE_DOMAIN, u->host, u->host_len, url_keys[i][1], err) != SW_OK)
                return SW_ERROR;
        }
    }

    if (sender_len > 0 && scan_sender(ctx, m, sender_len, sender_key, err) != SW_OK)
        return SW_ERROR;

    score_hits(ctx, m, out);
    content_signals(m, ctx->urls, &tn, msg->flags, out);

    bool observed = false;
    if (use_rep) {
        if (!spread_done) /* no body to scan: only the config can give it a fingerprint */
            spread_keys(ctx, m, msg, folded_len, out->fingerprint, &rm, dom_url);
        behaviour_signals(ctx, m, rep, msg, folded_len, dom_url, &rm, out);
        observed = true;
    }

    if (out->score >= cfg->drop_threshold)
        out->action = VERDICT_DROP;
    else if (out->score >= cfg->tag_threshold)
        out->action = VERDICT_TAG;
    if (digest_len > 0 && out->action != VERDICT_PASS)
        out->fingerprint = sw_hash64_wide(ctx->norm, digest_len, 0x6466u);

    /* Feedback: what we flag feeds the history of its sender, source and domains. */
    if (observed && out->action != VERDICT_PASS) {
        ip_key(m, msg, &rm); /* not made yet if nothing looked it up */
        rep_report_spam(rep, &rm, out->action == VERDICT_DROP ? 1.0 : 0.5);
    }
    return SW_OK;
}

void verdict_reasons(const struct verdict *v, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < v->n_reasons && n + 1 < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", i > 0 ? "," : "", v->reasons[i].id);
        if (w < 0 || (size_t)w >= cap - n) {
            out[n] = '\0';
            break;
        }
        n += (size_t)w;
    }
}
