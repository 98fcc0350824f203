/* bench-matcher: throughput of the whole classification pipeline against a raw Hyperscan scan.
 *
 * For every (rule count, message size) case it builds a rule set (the real default rules from
 * conf/rules/ padded with generated spam rules, plus a domain block list), compiles it once,
 * generates a corpus of realistic chat with a share of spim, and then times, on the same
 * thread, over the same bodies and with the same database:
 *
 *   pipeline  matcher_classify() per message (normalise, scan, URLs, reputation, verdict)
 *   raw       hs_scan() of each body with a no-op callback, with the database the pipeline
 *             scans bodies with (--layout: the body database, or the one database): the floor
 *             the pipeline builds on
 *
 * and prints one JSON line per case with messages/s, GB/s (bytes of bodies), CPU seconds and
 * the ratio pipeline/raw. Passes alternate pipeline and raw so that noise from other work on
 * the machine hits both alike; each figure is the best of --reps passes after a warm-up pass.
 * Everything is generated before the clocks start. Human-readable text goes to stderr.
 *
 *   bench-matcher                      full sweep: rules 100,1000,2000,10000 x sizes 64,200,1000
 *   bench-matcher --quick              tiny run for the CI smoke test (structure, not speed)
 *   bench-matcher --rules 2000 --size 200 --threads 2
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hs/hs.h>

#include "bench/lib/benchutil.h"
#include "bench/lib/corpus.h"
#include "matcher/hsdb.h"
#include "matcher/matcher.h"
#include "matcher/reputation.h"
#include "matcher/rules.h"
#include "proxy/ruleload.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_CASES 16
#define MAX_THREADS 64
/* Default corpus: 200k messages, but no more than ~40 MB of bodies per size (and no fewer than
 * 20k messages), so a pass lasts a few tenths of a second at the target rate. */
#define DEFAULT_MESSAGES 200000
#define DEFAULT_CORPUS_BYTES (40u * 1000u * 1000u)
#define MIN_DEFAULT_MESSAGES 20000

struct options {
    uint64_t rules[MAX_CASES];
    size_t n_rules;
    uint64_t sizes[MAX_CASES];
    size_t n_sizes;
    uint64_t messages; /* 0: per-size default */
    double spim_share;
    uint64_t seed;
    uint64_t threads;
    uint64_t reps;
    uint64_t list_entries;
    uint64_t explain;
    bool reputation;
    enum hsdb_layout layout;
    bool quick;
    bool rule_cost;
    const char *conf_dir; /* NULL: search */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-matcher [options]\n"
               "  --rules N[,N...]     rule counts to sweep (default 100,1000,2000,10000)\n"
               "  --size N[,N...]      message sizes in bytes, each body +-20%% (default "
               "64,200,1000)\n"
               "  --messages N         messages per corpus (default 200000, at most ~40 MB of "
               "bodies)\n"
               "  --spim-share F       fraction of spim in the corpus (default 0.1)\n"
               "  --seed N             corpus and rule generator seed (default 1)\n"
               "  --threads N          classify on N threads sharing matcher and reputation "
               "(default 1)\n"
               "  --reps N             timed passes per measurement, best is reported (default 3)\n"
               "  --list-entries N     domain block list entries (default 500)\n"
               "  --no-reputation      classify without the reputation cache\n"
               "  --layout L           per-target (default: a Hyperscan database per target) or "
               "one\n"
               "                       (every pattern in one database, for comparison)\n"
               "  --conf DIR           configuration root holding rules/*.rules (default: "
               "$SW_SOURCE_DIR/conf,\n"
               "                       ./conf, or the source tree this was built from)\n"
               "  --quick              tiny run for smoke tests: 100 rules, sizes 64,200, 2000 "
               "messages, 1 rep\n"
               "  --explain N          print to stderr the reasons of the first N flagged chat "
               "messages\n"
               "                       and the first N missed spim of each case (warm-up pass "
               "only)\n"
               "  --rule-cost          instead of the sweep: scan cost of each default body rule "
               "compiled\n"
               "                       alone, of all default body rules, and of the whole default "
               "set,\n"
               "                       in ns per message over the corpus of each --size\n"
               "Output: one JSON object per case on stdout; progress on stderr.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_RULES = 256,
        OPT_SIZE,
        OPT_MESSAGES,
        OPT_SPIM,
        OPT_SEED,
        OPT_THREADS,
        OPT_REPS,
        OPT_LIST,
        OPT_NOREP,
        OPT_LAYOUT,
        OPT_CONF,
        OPT_QUICK,
        OPT_EXPLAIN,
        OPT_COST,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"rules", required_argument, NULL, OPT_RULES},
        {"size", required_argument, NULL, OPT_SIZE},
        {"messages", required_argument, NULL, OPT_MESSAGES},
        {"spim-share", required_argument, NULL, OPT_SPIM},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"reps", required_argument, NULL, OPT_REPS},
        {"list-entries", required_argument, NULL, OPT_LIST},
        {"no-reputation", no_argument, NULL, OPT_NOREP},
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"conf", required_argument, NULL, OPT_CONF},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"explain", required_argument, NULL, OPT_EXPLAIN},
        {"rule-cost", no_argument, NULL, OPT_COST},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    bool rules_set = false, sizes_set = false, messages_set = false, reps_set = false;

    memset(o, 0, sizeof(*o));
    o->spim_share = 0.1;
    o->seed = 1;
    o->threads = 1;
    o->reps = 3;
    o->list_entries = 500;
    o->reputation = true;

    for (;;) {
        int c = getopt_long(argc, argv, "", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case OPT_RULES:
            o->n_rules = bench_parse_u64_list(optarg, 0, 200000, o->rules, MAX_CASES);
            if (o->n_rules == 0)
                goto bad;
            rules_set = true;
            break;
        case OPT_SIZE:
            o->n_sizes = bench_parse_u64_list(optarg, 16, 1u << 20, o->sizes, MAX_CASES);
            if (o->n_sizes == 0)
                goto bad;
            sizes_set = true;
            break;
        case OPT_MESSAGES:
            if (!bench_parse_u64(optarg, 1, 100000000, &o->messages))
                goto bad;
            messages_set = true;
            break;
        case OPT_SPIM:
            if (!bench_parse_double(optarg, 0.0, 1.0, &o->spim_share))
                goto bad;
            break;
        case OPT_SEED:
            if (!bench_parse_u64(optarg, 0, UINT64_MAX, &o->seed))
                goto bad;
            break;
        case OPT_THREADS:
            if (!bench_parse_u64(optarg, 1, MAX_THREADS, &o->threads))
                goto bad;
            break;
        case OPT_REPS:
            if (!bench_parse_u64(optarg, 1, 1000, &o->reps))
                goto bad;
            reps_set = true;
            break;
        case OPT_LIST:
            if (!bench_parse_u64(optarg, 0, 100000, &o->list_entries))
                goto bad;
            break;
        case OPT_NOREP:
            o->reputation = false;
            break;
        case OPT_LAYOUT:
            if (!hsdb_layout_parse(optarg, &o->layout))
                goto bad;
            break;
        case OPT_CONF:
            o->conf_dir = optarg;
            break;
        case OPT_QUICK:
            o->quick = true;
            break;
        case OPT_EXPLAIN:
            if (!bench_parse_u64(optarg, 0, 1000000, &o->explain))
                goto bad;
            break;
        case OPT_COST:
            o->rule_cost = true;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "bench-matcher: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    if (!rules_set) {
        static const uint64_t quick_rules[] = {100};
        static const uint64_t full_rules[] = {100, 1000, 2000, 10000};
        const uint64_t *src = o->quick ? quick_rules : full_rules;
        o->n_rules = o->quick ? N_OF(quick_rules) : N_OF(full_rules);
        memcpy(o->rules, src, o->n_rules * sizeof(*src));
    }
    if (!sizes_set) {
        static const uint64_t quick_sizes[] = {64, 200};
        static const uint64_t full_sizes[] = {64, 200, 1000};
        const uint64_t *src = o->quick ? quick_sizes : full_sizes;
        o->n_sizes = o->quick ? N_OF(quick_sizes) : N_OF(full_sizes);
        memcpy(o->sizes, src, o->n_sizes * sizeof(*src));
    }
    if (o->quick && !messages_set)
        o->messages = 2000;
    if (o->quick && !reps_set)
        o->reps = 1;
    return 0;

bad:
    fprintf(stderr, "bench-matcher: bad value '%s' for an option\n", optarg);
    usage(stderr);
    return -1;
}

/* --- rule set ---------------------------------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Finds the configuration root: --conf, $SW_SOURCE_DIR/conf, ./conf, then the source tree this
 * file was compiled from (CMake passes absolute paths, so __FILE__ names it). */
static int find_conf_dir(const struct options *o, char *out, size_t cap)
{
    const char *env = getenv("SW_SOURCE_DIR");
    if (o->conf_dir != NULL) {
        snprintf(out, cap, "%s", o->conf_dir);
        return is_dir(out) ? 0 : -1;
    }
    if (env != NULL && *env != '\0') {
        snprintf(out, cap, "%s/conf", env);
        if (is_dir(out))
            return 0;
    }
    snprintf(out, cap, "conf");
    if (is_dir(out))
        return 0;
    const char *file = __FILE__;
    const char *tail = strstr(file, "bench/bench_matcher.c");
    if (tail != NULL && (size_t)(tail - file) + 5 < cap) {
        snprintf(out, cap, "%.*sconf", (int)(tail - file), file);
        if (is_dir(out))
            return 0;
    }
    return -1;
}

static int rules_file_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 6 && strcmp(d->d_name + n - 6, ".rules") == 0;
}

/* List files as the proxy reads them (kind from the name, see proxy/ruleload.h). */
static int list_file_filter(const struct dirent *d)
{
    return ruleload_list_kind(d->d_name) > RULE_KIND_RULE;
}

/* The default rule and list files, read once: name, kind and bytes of each, rules first, each
 * directory in name order. */
struct rule_files {
    char **names;
    char **bufs;
    size_t *lens;
    enum rule_kind *kinds;
    size_t n, n_rule_files;
};

static void rule_files_free(struct rule_files *rf)
{
    for (size_t i = 0; i < rf->n; i++) {
        free(rf->names[i]);
        free(rf->bufs[i]);
    }
    free(rf->names);
    free(rf->bufs);
    free(rf->lens);
    free(rf->kinds);
    memset(rf, 0, sizeof(*rf));
}

/* Appends the files of conf/sub that filter selects. A missing directory adds nothing. */
static int rule_files_add_dir(struct rule_files *rf, const char *conf, const char *sub,
                              int (*filter)(const struct dirent *))
{
    char dir[4096];
    struct dirent **ents = NULL;
    int n, rc = -1;

    snprintf(dir, sizeof(dir), "%s/%s", conf, sub);
    n = scandir(dir, &ents, filter, alphasort);
    if (n == -1)
        return 0;
    size_t cap = rf->n + (size_t)n + 1;
    char **names = realloc(rf->names, cap * sizeof(*names));
    if (names != NULL)
        rf->names = names;
    char **bufs = realloc(rf->bufs, cap * sizeof(*bufs));
    if (bufs != NULL)
        rf->bufs = bufs;
    size_t *lens = realloc(rf->lens, cap * sizeof(*lens));
    if (lens != NULL)
        rf->lens = lens;
    enum rule_kind *kinds = realloc(rf->kinds, cap * sizeof(*kinds));
    if (kinds != NULL)
        rf->kinds = kinds;
    if (names == NULL || bufs == NULL || lens == NULL || kinds == NULL)
        goto done;
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
        if (bench_read_file(path, &rf->bufs[rf->n], &rf->lens[rf->n]) != 0) {
            fprintf(stderr, "bench-matcher: %s: %s\n", path, strerror(errno));
            goto done;
        }
        rf->names[rf->n] = strdup(path);
        if (rf->names[rf->n] == NULL) {
            free(rf->bufs[rf->n]);
            goto done;
        }
        int kind = ruleload_list_kind(ents[i]->d_name);
        rf->kinds[rf->n] = filter == rules_file_filter ? RULE_KIND_RULE : (enum rule_kind)kind;
        rf->n++;
    }
    rc = 0;

done:
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

static int rule_files_load(const char *conf, struct rule_files *rf)
{
    memset(rf, 0, sizeof(*rf));
    if (rule_files_add_dir(rf, conf, "rules", rules_file_filter) != 0)
        goto fail;
    rf->n_rule_files = rf->n;
    if (rule_files_add_dir(rf, conf, "lists", list_file_filter) != 0)
        goto fail;
    return 0;

fail:
    rule_files_free(rf);
    return -1;
}

/* A growable text buffer for generated rule and list files. */
struct text {
    char *p;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static int text_printf(struct text *t, const char *fmt,
                                                             ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* no pointer arithmetic on a NULL buffer (UB): the first call only measures */
        int n = vsnprintf(t->p != NULL ? t->p + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return 0;
        }
        size_t ncap = t->cap * 2 + (size_t)n + 4096;
        char *np = realloc(t->p, ncap);
        if (np == NULL)
            return -1;
        t->p = np;
        t->cap = ncap;
    }
}

/* Spam vocabulary of the generated rules. Overlaps the corpus's lures on purpose (free iphone,
 * gift card, verify your account, pills, ...) so some generated rules hit the spim share. */
static const char *const g_verbs[] = {
    "claim", "win", "get", "download", "buy", "order", "unlock", "watch", "grab", "collect",
    "redeem", "activate", "earn", "receive", "access", "verify", "confirm", "double",
};
static const char *const g_adjs[] = {
    "free", "cheap", "exclusive", "limited", "discount", "instant", "secret", "guaranteed",
    "bonus", "premium", "hot", "lucky", "private", "vip", "genuine", "unlimited",
};
static const char *const g_nouns[] = {
    "iphone", "ipad", "gift card", "bitcoin", "pills", "viagra", "casino bonus", "loan",
    "prize", "reward", "followers", "likes", "robux", "vbucks", "crypto", "coupon", "voucher",
    "lottery", "jackpot", "airdrop", "nft", "rolex", "webcam", "singles", "pics", "photos",
    "video", "password", "account", "ringtones", "cialis", "replica watches", "diet pills",
    "mortgage", "credit score", "steam wallet", "amazon voucher", "paypal balance",
};
static const char *const g_tails[] = {
    "today only", "no prescription", "in 24 hours", "while supplies last", "for free",
    "no credit check", "limited time", "act now", "before midnight", "100% free",
    "risk free", "no survey",
};
static const char *const g_paths[] = {
    "photos", "pics", "album", "invoice", "document", "scan", "update", "setup", "video",
    "summer", "party", "holiday", "player", "codec", "gift",
};
static const char *const g_tlds[] = {"ru", "cn", "tk", "top", "xyz", "biz", "info", "su"};
static const char *const g_exts[] = {"zip", "scr", "pif", "exe", "rar", "bat", "com", "jar"};

#define GPICK(r, a) ((a)[bench_rng_below((r), N_OF(a))])

/* Appends one generated rule. Shapes follow public anti-spam rule sets: ~70% caseless literal
 * phrases, ~30% simple regexes; most target the body, some URLs, domains and senders. */
static int gen_rule(struct text *t, struct bench_rng *r, unsigned idx)
{
    char id[32];
    double score = 1.0 + (double)bench_rng_below(r, 9) * 0.5; /* 1.0 .. 5.0 */
    uint64_t target = bench_rng_below(r, 100);
    bool literal = bench_rng_chance(r, 0.7);

    snprintf(id, sizeof(id), "BENCH_GEN_%05u", idx);
    if (target < 6) {
        /* URL rules: payloads behind links */
        if (literal)
            return text_printf(t, "rule %s url %.1f \"/%s%u.%s\"i \"generated url\"\n", id, score,
                               GPICK(r, g_paths), (unsigned)bench_rng_below(r, 100),
                               GPICK(r, g_exts));
        return text_printf(t, "rule %s url %.1f /\\/[\\w-]*%s[\\w-]*\\.(?:%s|%s)(?:$|\\?)/i "
                              "\"generated url\"\n",
                           id, score, GPICK(r, g_adjs), GPICK(r, g_exts), GPICK(r, g_exts));
    }
    if (target < 11) {
        /* domain rules: campaign domains */
        if (literal)
            return text_printf(t, "rule %s domain %.1f \"%s-%s%u.%s\" \"generated domain\"\n",
                               id, score, GPICK(r, g_adjs), GPICK(r, g_verbs),
                               (unsigned)bench_rng_below(r, 1000), GPICK(r, g_tlds));
        return text_printf(t, "rule %s domain %.1f /(?:^|\\.)%s-?%s\\d*\\.(?:%s|%s)$/ "
                              "\"generated domain\"\n",
                           id, score, GPICK(r, g_adjs), GPICK(r, g_verbs), GPICK(r, g_tlds),
                           GPICK(r, g_tlds));
    }
    if (target < 12) {
        /* sender rules: throwaway account names */
        return text_printf(t, "rule %s sender %.1f /^%s[._-]?%s\\d{3,}@/ \"generated sender\"\n",
                           id, score, GPICK(r, g_adjs), GPICK(r, g_paths));
    }
    if (literal) {
        /* spaces in nouns stay: a phrase is a phrase */
        switch (bench_rng_below(r, 6)) {
        case 0:
            return text_printf(t, "rule %s body %.1f \"%s your %s %s\"i \"generated phrase\"\n",
                               id, score, GPICK(r, g_verbs), GPICK(r, g_adjs), GPICK(r, g_nouns));
        case 1:
            return text_printf(t, "rule %s body %.1f \"%s %s %s\"i \"generated phrase\"\n", id,
                               score, GPICK(r, g_adjs), GPICK(r, g_nouns), GPICK(r, g_tails));
        case 2:
            return text_printf(t, "rule %s body %.1f \"click here to %s %s\"i "
                                  "\"generated phrase\"\n",
                               id, score, GPICK(r, g_verbs), GPICK(r, g_nouns));
        case 3:
            return text_printf(t, "rule %s body %.1f \"%s %s giveaway\"i \"generated phrase\"\n",
                               id, score, GPICK(r, g_adjs), GPICK(r, g_nouns));
        case 4:
            return text_printf(t, "rule %s body %.1f \"%s %u %s\"i \"generated phrase\"\n", id,
                               score, GPICK(r, g_verbs), (unsigned)(10 * bench_rng_below(r, 100)),
                               GPICK(r, g_nouns));
        default:
            return text_printf(t, "rule %s body %.1f \"%s %s %s\"i \"generated phrase\"\n", id,
                               score, GPICK(r, g_verbs), GPICK(r, g_adjs), GPICK(r, g_nouns));
        }
    }
    switch (bench_rng_below(r, 6)) {
    case 0:
        return text_printf(t, "rule %s body %.1f /%s\\s+%s\\s+(?:now|today|here)/i "
                              "\"generated regex\"\n",
                           id, score, GPICK(r, g_adjs), GPICK(r, g_nouns));
    case 1:
        return text_printf(t, "rule %s body %.1f /(?:%s|%s)\\s+\\w+\\s+%s/i \"generated regex\"\n",
                           id, score, GPICK(r, g_adjs), GPICK(r, g_adjs), GPICK(r, g_nouns));
    case 2:
        return text_printf(t, "rule %s body %.1f /%s\\s+(?:your|a|the|my)\\s+%s/i "
                              "\"generated regex\"\n",
                           id, score, GPICK(r, g_verbs), GPICK(r, g_nouns));
    case 3:
        return text_printf(t, "rule %s body %.1f /%s\\s+(?:%s|%s|%s)/i \"generated regex\"\n", id,
                           score, GPICK(r, g_adjs), GPICK(r, g_nouns), GPICK(r, g_nouns),
                           GPICK(r, g_nouns));
    case 4:
        return text_printf(t, "rule %s body %.1f /%s\\s+\\d+\\s*%s/i \"generated regex\"\n", id,
                           score, GPICK(r, g_verbs), GPICK(r, g_nouns));
    default:
        return text_printf(t, "rule %s body %.1f /%s.{0,20}%s/i \"generated regex\"\n", id,
                           score, GPICK(r, g_nouns), GPICK(r, g_tails));
    }
}

struct built_rules {
    struct hsdb *db;
    size_t real_rules; /* from conf/rules */
    size_t rules;      /* rules in the database (real + generated) */
    size_t list_entries;
};

/* Builds and compiles the rule set for a case of n rules. */
static int build_rules(const struct options *o, const struct rule_files *rf, uint64_t n,
                       struct built_rules *out, struct sw_err *err)
{
    struct ruleset *rs = NULL;
    struct text t = {0};
    struct bench_rng rng;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    rs = ruleset_new(NULL);
    if (rs == NULL) {
        sw_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < rf->n_rule_files; i++) {
        if (ruleset_parse_rules(rs, rf->bufs[i], rf->lens[i], rf->names[i], err) != SW_OK)
            goto done;
    }
    out->real_rules = rs->n;

    bench_rng_seed(&rng, o->seed ^ 0x72756c6573ULL);
    for (uint64_t i = rs->n; i < n; i++) {
        if (gen_rule(&t, &rng, (unsigned)i) != 0) {
            sw_err_set(err, "out of memory");
            goto done;
        }
    }
    if (t.len > 0 && ruleset_parse_rules(rs, t.p, t.len, "bench:generated.rules", err) != SW_OK)
        goto done;
    out->rules = rs->n;

    /* the default lists, then a domain block list of spim domains the corpus links to */
    for (size_t i = rf->n_rule_files; i < rf->n; i++) {
        if (ruleset_parse_list(rs, rf->kinds[i], rf->bufs[i], rf->lens[i], rf->names[i], err) !=
            SW_OK)
            goto done;
    }
    /* the domain block list: spim domains of the corpus, first list_entries of them */
    t.len = 0;
    for (uint64_t i = 0; i < o->list_entries; i++) {
        char dom[96];
        corpus_spam_domain(i, dom, sizeof(dom));
        if (text_printf(&t, "%s\n", dom) != 0) {
            sw_err_set(err, "out of memory");
            goto done;
        }
    }
    if (t.len > 0 && ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, t.p, t.len,
                                        "bench:domain_block.list", err) != SW_OK)
        goto done;
    out->list_entries = rs->n - out->rules;

    out->db = hsdb_compile(rs, o->layout, err); /* takes rs in every case */
    rs = NULL;
    if (out->db == NULL)
        goto done;
    rc = 0;

done:
    ruleset_free(rs);
    free(t.p);
    return rc;
}

/* --- passes ------------------------------------------------------------------------------------ */

enum pass_kind { PASS_PIPELINE, PASS_RAW };

struct verdict_counts {
    uint64_t action[3];
    uint64_t spim, spim_flagged, chat_flagged;
};

/* One thread's share of a pass. */
struct worker {
    pthread_t tid;
    enum pass_kind kind;
    const struct matcher *m;
    struct rep *rep;
    struct matcher_ctx *ctx;
    hs_scratch_t *scratch; /* raw scans */
    const hs_database_t *hs;
    const struct matcher_msg *msgs;
    const bool *is_spim;
    size_t from, to;
    uint64_t explain; /* flagged chat and missed spim still to print (warm-up pass only) */
    uint64_t explain_fp, explain_fn;
    struct verdict_counts counts;
    double cpu_s;
    int rc;
    struct sw_err err;
};

static int noop_cb(unsigned int id, unsigned long long from, unsigned long long to,
                   unsigned int flags, void *ctx)
{
    (void)id;
    (void)from;
    (void)to;
    (void)flags;
    (void)ctx;
    return 0;
}

/* Prints why a chat message was flagged or a spim message passed: for tuning the corpus and the
 * default rules, never during a timed pass. */
static void explain(struct worker *w, const struct matcher_msg *msg, const struct verdict *v,
                    bool spim)
{
    uint64_t *left = spim ? &w->explain_fn : &w->explain_fp;
    if (*left == 0)
        return;
    (*left)--;
    fprintf(stderr, "%s %s score %.1f:", spim ? "missed spim" : "flagged chat",
            verdict_action_name(v->action), v->score);
    for (unsigned i = 0; i < v->n_reasons; i++)
        fprintf(stderr, " %s(%.1f%s%s)", v->reasons[i].id, v->reasons[i].score,
                v->reasons[i].detail[0] != '\0' ? " " : "", v->reasons[i].detail);
    fprintf(stderr, "\n    %.*s\n", (int)msg->body_len, msg->body);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct verdict v;
    double cpu0 = bench_cpu_now();

    memset(&w->counts, 0, sizeof(w->counts));
    w->rc = SW_OK;
    if (w->kind == PASS_PIPELINE) {
        for (size_t i = w->from; i < w->to; i++) {
            if (matcher_classify(w->ctx, w->m, w->rep, &w->msgs[i], &v, &w->err) != SW_OK) {
                w->rc = SW_ERROR;
                break;
            }
            w->counts.action[v.action]++;
            bool flagged = v.action != VERDICT_PASS;
            if (w->explain > 0 && flagged != w->is_spim[i])
                explain(w, &w->msgs[i], &v, w->is_spim[i]);
            if (w->is_spim[i]) {
                w->counts.spim++;
                w->counts.spim_flagged += flagged;
            } else {
                w->counts.chat_flagged += flagged;
            }
        }
    } else {
        for (size_t i = w->from; i < w->to; i++) {
            hs_error_t e = hs_scan(w->hs, w->msgs[i].body, (unsigned)w->msgs[i].body_len, 0,
                                   w->scratch, noop_cb, NULL);
            if (e != HS_SUCCESS) {
                sw_err_set(&w->err, "hs_scan failed (%d)", (int)e);
                w->rc = SW_ERROR;
                break;
            }
        }
    }
    w->cpu_s = bench_cpu_now() - cpu0;
    return NULL;
}

struct pass_result {
    double wall_s, cpu_s;
    struct verdict_counts counts;
};

/* Runs one pass over all messages on n_workers threads (the calling thread when there is one).
 * Returns 0 or -1 with err. */
static int run_pass(struct worker *ws, size_t n_workers, enum pass_kind kind, size_t n_msgs,
                    struct pass_result *res, struct sw_err *err)
{
    double wall0;
    size_t started = 0;

    memset(res, 0, sizeof(*res));
    for (size_t i = 0; i < n_workers; i++) {
        ws[i].kind = kind;
        ws[i].from = n_msgs * i / n_workers;
        ws[i].to = n_msgs * (i + 1) / n_workers;
    }
    wall0 = bench_wall_now();
    if (n_workers == 1) {
        worker_run(&ws[0]);
        started = 1;
    } else {
        for (; started < n_workers; started++) {
            int e = pthread_create(&ws[started].tid, NULL, worker_run, &ws[started]);
            if (e != 0) {
                sw_err_set(err, "pthread_create: %s", strerror(e));
                break;
            }
        }
        for (size_t i = 0; i < started; i++)
            pthread_join(ws[i].tid, NULL);
        if (started < n_workers)
            return -1;
    }
    res->wall_s = bench_wall_now() - wall0;
    for (size_t i = 0; i < n_workers; i++) {
        if (ws[i].rc != SW_OK) {
            *err = ws[i].err;
            return -1;
        }
        res->cpu_s += ws[i].cpu_s;
        for (int a = 0; a < 3; a++)
            res->counts.action[a] += ws[i].counts.action[a];
        res->counts.spim += ws[i].counts.spim;
        res->counts.spim_flagged += ws[i].counts.spim_flagged;
        res->counts.chat_flagged += ws[i].counts.chat_flagged;
    }
    return 0;
}

/* --- one case ---------------------------------------------------------------------------------- */

struct prepared_corpus {
    struct corpus *c;
    struct matcher_msg *msgs; /* views of c->msgs as the matcher takes them */
    bool *is_spim;
};

static void prepared_corpus_free(struct prepared_corpus *pc)
{
    corpus_free(pc->c);
    free(pc->msgs);
    free(pc->is_spim);
    memset(pc, 0, sizeof(*pc));
}

static int prepare_corpus(const struct options *o, uint64_t size, struct prepared_corpus *pc)
{
    struct corpus_config cc;

    memset(pc, 0, sizeof(*pc));
    corpus_config_defaults(&cc);
    cc.msg_bytes = size;
    cc.spim_share = o->spim_share;
    cc.seed = o->seed;
    if (o->messages != 0) {
        cc.messages = o->messages;
    } else {
        cc.messages = DEFAULT_CORPUS_BYTES / size;
        if (cc.messages > DEFAULT_MESSAGES)
            cc.messages = DEFAULT_MESSAGES;
        if (cc.messages < MIN_DEFAULT_MESSAGES)
            cc.messages = MIN_DEFAULT_MESSAGES;
    }
    pc->c = corpus_new(&cc);
    if (pc->c == NULL)
        return -1;
    pc->msgs = calloc(pc->c->n, sizeof(*pc->msgs));
    pc->is_spim = calloc(pc->c->n, sizeof(*pc->is_spim));
    if (pc->msgs == NULL || pc->is_spim == NULL) {
        prepared_corpus_free(pc);
        return -1;
    }
    for (size_t i = 0; i < pc->c->n; i++) {
        const struct corpus_msg *cm = &pc->c->msgs[i];
        struct matcher_msg *mm = &pc->msgs[i];
        mm->sender = cm->sender;
        mm->sender_len = cm->sender_len;
        mm->recipient = cm->recipient;
        mm->recipient_len = cm->recipient_len;
        mm->body = cm->body;
        mm->body_len = cm->body_len;
        mm->ip = cm->ip;
        mm->ip_len = cm->ip_len;
        mm->now_ms = cm->now_ms;
        mm->flags = MATCHER_F_INBOUND | (cm->stranger ? MATCHER_F_STRANGER : 0);
        pc->is_spim[i] = cm->spim;
    }
    return 0;
}

/* Moves the corpus's clock to pass number k. Each replay starts two hours after the previous
 * one ended, so fan-out windows and quarantines (1 h) have expired while spam history (6 h
 * half-life) has only decayed: steady state for a cache that has seen traffic before. */
static void set_pass_clock(struct prepared_corpus *pc, unsigned k)
{
    uint64_t shift = (uint64_t)k * (pc->c->span_ms + 2ull * 3600 * 1000);
    for (size_t i = 0; i < pc->c->n; i++)
        pc->msgs[i].now_ms = pc->c->msgs[i].now_ms + shift;
}

struct case_result {
    double pipe_best_wall, pipe_best_cpu, pipe_median_wall;
    double raw_best_wall, raw_best_cpu, raw_median_wall;
    struct verdict_counts first;  /* the warm-up pass: a cold cache sees the traffic once */
};

static int run_case(const struct options *o, struct hsdb *db, struct prepared_corpus *pc,
                    struct case_result *cr, struct sw_err *err)
{
    struct matcher_config cfg;
    struct matcher *m = NULL;
    struct rep *rep = NULL;
    struct worker ws[MAX_THREADS];
    size_t nw = o->threads;
    double pipe_wall[1000], raw_wall[1000];
    int rc = -1;

    memset(ws, 0, sizeof(ws));
    memset(cr, 0, sizeof(*cr));
    matcher_config_defaults(&cfg);
    cfg.reputation = o->reputation;
    m = matcher_new(db, &cfg, err);
    if (m == NULL)
        goto done;
    if (o->reputation) {
        rep = rep_new(&cfg.rep, err);
        if (rep == NULL)
            goto done;
    }
    if (hsdb_handle(db, RULE_BODY) == NULL) {
        sw_err_set(err, "no body rule to scan with");
        goto done;
    }
    for (size_t i = 0; i < nw; i++) {
        ws[i].m = m;
        ws[i].rep = rep;
        ws[i].hs = hsdb_handle(db, RULE_BODY); /* what the pipeline scans bodies with */
        ws[i].msgs = pc->msgs;
        ws[i].is_spim = pc->is_spim;
        ws[i].ctx = matcher_ctx_new();
        if (ws[i].ctx == NULL) {
            sw_err_set(err, "out of memory");
            goto done;
        }
        if (hsdb_alloc_scratch(db, &ws[i].scratch, err) != SW_OK)
            goto done;
    }

    /* warm-up: caches, branch predictors, reputation table pages, the matcher's scratch */
    struct pass_result pr;
    set_pass_clock(pc, 0);
    for (size_t i = 0; i < nw; i++) {
        ws[i].explain = o->explain;
        ws[i].explain_fp = o->explain;
        ws[i].explain_fn = o->explain;
    }
    if (run_pass(ws, nw, PASS_PIPELINE, pc->c->n, &pr, err) != 0)
        goto done;
    cr->first = pr.counts;
    for (size_t i = 0; i < nw; i++)
        ws[i].explain = 0;
    if (run_pass(ws, nw, PASS_RAW, pc->c->n, &pr, err) != 0)
        goto done;

    for (unsigned k = 0; k < o->reps; k++) {
        set_pass_clock(pc, k + 1);
        if (run_pass(ws, nw, PASS_PIPELINE, pc->c->n, &pr, err) != 0)
            goto done;
        pipe_wall[k] = pr.wall_s;
        if (k == 0 || pr.wall_s < cr->pipe_best_wall)
            cr->pipe_best_wall = pr.wall_s;
        if (k == 0 || pr.cpu_s < cr->pipe_best_cpu)
            cr->pipe_best_cpu = pr.cpu_s;
        if (run_pass(ws, nw, PASS_RAW, pc->c->n, &pr, err) != 0)
            goto done;
        raw_wall[k] = pr.wall_s;
        if (k == 0 || pr.wall_s < cr->raw_best_wall)
            cr->raw_best_wall = pr.wall_s;
        if (k == 0 || pr.cpu_s < cr->raw_best_cpu)
            cr->raw_best_cpu = pr.cpu_s;
    }
    cr->pipe_median_wall = bench_median(pipe_wall, o->reps);
    cr->raw_median_wall = bench_median(raw_wall, o->reps);
    rc = 0;

done:
    for (size_t i = 0; i < nw; i++) {
        matcher_ctx_free(ws[i].ctx);
        if (ws[i].scratch != NULL)
            hs_free_scratch(ws[i].scratch);
    }
    rep_free(rep);
    matcher_unref(m);
    return rc;
}

static double per_s(double count, double secs)
{
    return secs > 0 ? count / secs : 0.0;
}

static int print_case(const struct options *o, uint64_t rules, const struct built_rules *br,
                      uint64_t size, const struct prepared_corpus *pc,
                      const struct case_result *cr)
{
    struct bench_json j;
    double n = (double)pc->c->n, bytes = (double)pc->c->body_bytes;
    double pipe_rate = per_s(n, cr->pipe_best_wall), raw_rate = per_s(n, cr->raw_best_wall);

    bench_json_begin(&j);
    bench_json_str(&j, "bench", "matcher");
    bench_json_u64(&j, "rules", rules);
    bench_json_u64(&j, "rules_loaded", br->rules);
    bench_json_u64(&j, "rules_default", br->real_rules);
    bench_json_u64(&j, "list_entries", br->list_entries);
    bench_json_u64(&j, "msg_bytes", size);
    bench_json_u64(&j, "messages", pc->c->n);
    bench_json_u64(&j, "body_bytes", pc->c->body_bytes);
    bench_json_double(&j, "spim_share", o->spim_share);
    bench_json_u64(&j, "threads", o->threads);
    bench_json_u64(&j, "reps", o->reps);
    bench_json_bool(&j, "reputation", o->reputation);
    bench_json_str(&j, "layout", hsdb_layout_names[o->layout]);
    bench_json_double(&j, "pipeline_msgs_per_s", pipe_rate);
    bench_json_double(&j, "pipeline_gbps", per_s(bytes, cr->pipe_best_wall) / 1e9);
    bench_json_double(&j, "pipeline_wall_s", cr->pipe_best_wall);
    bench_json_double(&j, "pipeline_cpu_s", cr->pipe_best_cpu);
    bench_json_double(&j, "pipeline_msgs_per_cpu_s", per_s(n, cr->pipe_best_cpu));
    bench_json_double(&j, "pipeline_median_msgs_per_s", per_s(n, cr->pipe_median_wall));
    bench_json_double(&j, "raw_msgs_per_s", raw_rate);
    bench_json_double(&j, "raw_gbps", per_s(bytes, cr->raw_best_wall) / 1e9);
    bench_json_double(&j, "raw_wall_s", cr->raw_best_wall);
    bench_json_double(&j, "raw_cpu_s", cr->raw_best_cpu);
    bench_json_double(&j, "raw_msgs_per_cpu_s", per_s(n, cr->raw_best_cpu));
    bench_json_double(&j, "raw_median_msgs_per_s", per_s(n, cr->raw_median_wall));
    bench_json_double(&j, "ratio", raw_rate > 0 ? pipe_rate / raw_rate : 0.0);
    bench_json_double(&j, "ratio_cpu",
                      cr->pipe_best_cpu > 0 ? cr->raw_best_cpu / cr->pipe_best_cpu : 0.0);
    bench_json_double(&j, "compile_s", hsdb_compile_seconds(br->db));
    bench_json_u64(&j, "db_bytes", hsdb_size(br->db));
    bench_json_object_begin(&j, "verdicts");
    bench_json_u64(&j, "pass", cr->first.action[VERDICT_PASS]);
    bench_json_u64(&j, "tag", cr->first.action[VERDICT_TAG]);
    bench_json_u64(&j, "drop", cr->first.action[VERDICT_DROP]);
    bench_json_object_end(&j);
    bench_json_object_begin(&j, "detection");
    bench_json_u64(&j, "spim", cr->first.spim);
    bench_json_u64(&j, "spim_flagged", cr->first.spim_flagged);
    bench_json_u64(&j, "chat_flagged", cr->first.chat_flagged);
    bench_json_object_end(&j);
    return bench_json_end(&j, stdout);
}

/* --- rule cost ---------------------------------------------------------------------------------
 * For rule authors: what each default body rule costs the body scan. Each rule is compiled alone
 * and hs_scan()ned over the corpus bodies (best of --reps passes, thread CPU time); then all the
 * default body rules together and the whole default set (rules and lists, every target) over the
 * same bodies. One JSON line per measurement, most expensive rule first on stderr. */

struct cost_line {
    const char *id;
    double ns;
};

static int cost_cmp(const void *a, const void *b)
{
    const struct cost_line *x = a, *y = b;
    return (x->ns < y->ns) - (x->ns > y->ns);
}

/* ns per body of scanning n bodies with db, best of reps passes; < 0 on a scan error. */
static double cost_scan(const hs_database_t *db, hs_scratch_t *scratch,
                        const struct prepared_corpus *pc, size_t n, uint64_t reps)
{
    double best = -1;
    for (uint64_t k = 0; k < reps + 1; k++) { /* pass 0 warms up */
        double t0 = bench_cpu_now();
        for (size_t i = 0; i < n; i++) {
            if (hs_scan(db, pc->msgs[i].body, (unsigned)pc->msgs[i].body_len, 0, scratch,
                        noop_cb, NULL) != HS_SUCCESS)
                return -1;
        }
        double ns = (bench_cpu_now() - t0) * 1e9 / (double)n;
        if (k > 0 && (best < 0 || ns < best))
            best = ns;
    }
    return best;
}

/* Compiles exprs[0..n) (flags per rule) into one block-mode database. */
static hs_database_t *cost_compile(const char *const *exprs, const unsigned *flags, size_t n,
                                   struct sw_err *err)
{
    hs_database_t *db = NULL;
    hs_compile_error_t *cerr = NULL;
    unsigned *ids = calloc(n, sizeof(*ids));
    if (ids == NULL) {
        sw_err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = (unsigned)i;
    if (hs_compile_multi(exprs, flags, ids, (unsigned)n, HS_MODE_BLOCK, NULL, &db, &cerr) !=
        HS_SUCCESS) {
        sw_err_set(err, "compile: %s", cerr != NULL ? cerr->message : "?");
        hs_free_compile_error(cerr);
        db = NULL;
    }
    free(ids);
    return db;
}

/* Compiles exprs[0..n) into one database and returns its cost_scan() figure, or < 0 with err. */
static double cost_of(const char *const *exprs, const unsigned *flags, size_t n,
                      hs_scratch_t **scratch, const struct prepared_corpus *pc, size_t msgs,
                      uint64_t reps, struct sw_err *err)
{
    hs_database_t *db = cost_compile(exprs, flags, n, err);
    if (db == NULL)
        return -1;
    double ns = -1;
    if (hs_alloc_scratch(db, scratch) != HS_SUCCESS)
        sw_err_set(err, "hs_alloc_scratch failed");
    else if ((ns = cost_scan(db, *scratch, pc, msgs, reps)) < 0)
        sw_err_set(err, "hs_scan failed");
    hs_free_database(db);
    return ns;
}

static int rule_cost(const struct options *o, const struct rule_files *rf,
                     const struct prepared_corpus *pc, uint64_t size, struct sw_err *err)
{
    struct ruleset *rs = ruleset_new(NULL);
    const char **exprs = NULL;
    unsigned *flags = NULL;
    struct cost_line *lines = NULL;
    hs_scratch_t *scratch = NULL;
    size_t nb = 0, n = pc->c->n < 50000 ? pc->c->n : 50000;
    int rc = -1;

    if (rs == NULL) {
        sw_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < rf->n; i++) {
        int r = i < rf->n_rule_files
                    ? ruleset_parse_rules(rs, rf->bufs[i], rf->lens[i], rf->names[i], err)
                    : ruleset_parse_list(rs, rf->kinds[i], rf->bufs[i], rf->lens[i], rf->names[i],
                                         err);
        if (r != SW_OK)
            goto done;
    }
    exprs = calloc(rs->n + 1, sizeof(*exprs));
    flags = calloc(rs->n + 1, sizeof(*flags));
    lines = calloc(rs->n + 1, sizeof(*lines));
    if (exprs == NULL || flags == NULL || lines == NULL) {
        sw_err_set(err, "out of memory");
        goto done;
    }
    /* body rules first, so exprs[0..nb) is the body set and exprs[0..rs->n) everything */
    size_t k = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        if (r->kind == RULE_KIND_RULE && r->target == RULE_BODY) {
            exprs[k] = r->expr;
            flags[k] = hsdb_hs_flags(r->flags);
            lines[k].id = r->id;
            k++;
        }
    }
    nb = k;
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        if (!(r->kind == RULE_KIND_RULE && r->target == RULE_BODY)) {
            exprs[k] = r->expr;
            flags[k] = hsdb_hs_flags(r->flags);
            k++;
        }
    }

    double total_alone = 0;
    for (size_t i = 0; i < nb; i++) {
        lines[i].ns = cost_of(&exprs[i], &flags[i], 1, &scratch, pc, n, o->reps, err);
        if (lines[i].ns < 0)
            goto done;
        total_alone += lines[i].ns;
        printf("{\"rule_cost\":\"%s\",\"size\":%llu,\"messages\":%zu,\"ns_per_msg\":%.1f}\n",
               lines[i].id, (unsigned long long)size, n, lines[i].ns);
    }
    const struct {
        const char *name;
        size_t count;
    } sets[] = {{"default_body_rules", nb}, {"default_set", rs->n}};
    for (size_t s = 0; s < N_OF(sets); s++) {
        if (sets[s].count == 0)
            continue;
        double ns = cost_of(exprs, flags, sets[s].count, &scratch, pc, n, o->reps, err);
        if (ns < 0)
            goto done;
        printf("{\"rule_cost\":\"%s\",\"size\":%llu,\"messages\":%zu,\"patterns\":%zu,"
               "\"ns_per_msg\":%.1f,\"sum_of_alone_ns\":%.1f}\n",
               sets[s].name, (unsigned long long)size, n, sets[s].count, ns, total_alone);
    }
    fflush(stdout);
    qsort(lines, nb, sizeof(*lines), cost_cmp);
    fprintf(stderr, "bench-matcher: %llu B bodies, default body rules by cost (ns/msg, alone):\n",
            (unsigned long long)size);
    for (size_t i = 0; i < nb; i++)
        fprintf(stderr, "  %8.1f  %s\n", lines[i].ns, lines[i].id);
    rc = 0;

done:
    if (scratch != NULL)
        hs_free_scratch(scratch);
    free(exprs);
    free(flags);
    free(lines);
    ruleset_free(rs);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    struct rule_files rf = {0};
    struct prepared_corpus pcs[MAX_CASES];
    struct sw_err err = {{0}};
    char conf[4096];
    int status = 1;

    memset(pcs, 0, sizeof(pcs));
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    if (hs_valid_platform() != HS_SUCCESS) {
        fprintf(stderr, "bench-matcher: this CPU lacks the instructions Hyperscan needs\n");
        return 1;
    }
    if (find_conf_dir(&o, conf, sizeof(conf)) != 0) {
        if (o.conf_dir != NULL) {
            fprintf(stderr, "bench-matcher: --conf %s: not a directory\n", o.conf_dir);
            return 1;
        }
        fprintf(stderr, "bench-matcher: no conf/ directory found; generated rules only\n");
    } else if (rule_files_load(conf, &rf) != 0) {
        goto out;
    }
    fprintf(stderr, "bench-matcher: %zu default rule and %zu list file(s) from %s, Hyperscan %s\n",
            rf.n_rule_files, rf.n - rf.n_rule_files, conf, hs_version());

    /* corpora first (one per size, reused for every rule count); not timed */
    for (size_t s = 0; s < o.n_sizes; s++) {
        double t0 = bench_wall_now();
        if (prepare_corpus(&o, o.sizes[s], &pcs[s]) != 0) {
            fprintf(stderr, "bench-matcher: cannot generate the %llu-byte corpus\n",
                    (unsigned long long)o.sizes[s]);
            goto out;
        }
        fprintf(stderr, "bench-matcher: corpus %llu B: %zu messages, %llu bytes, %zu spim "
                        "(%.2f s)\n",
                (unsigned long long)o.sizes[s], pcs[s].c->n,
                (unsigned long long)pcs[s].c->body_bytes, pcs[s].c->n_spim,
                bench_wall_now() - t0);
    }

    if (o.rule_cost) {
        for (size_t s = 0; s < o.n_sizes; s++) {
            if (rule_cost(&o, &rf, &pcs[s], o.sizes[s], &err) != 0) {
                fprintf(stderr, "bench-matcher: --rule-cost: %s\n", err.msg);
                goto out;
            }
        }
        status = 0;
        goto out;
    }

    for (size_t r = 0; r < o.n_rules; r++) {
        struct built_rules br;
        if (build_rules(&o, &rf, o.rules[r], &br, &err) != 0) {
            fprintf(stderr, "bench-matcher: rules %llu: %s\n", (unsigned long long)o.rules[r],
                    err.msg);
            goto out;
        }
        fprintf(stderr, "bench-matcher: %zu rules (%zu default) + %zu list entries: compiled "
                        "in %.2f s, %zu bytes\n",
                br.rules, br.real_rules, br.list_entries, hsdb_compile_seconds(br.db),
                hsdb_size(br.db));
        for (size_t s = 0; s < o.n_sizes; s++) {
            struct case_result cr;
            if (run_case(&o, br.db, &pcs[s], &cr, &err) != 0) {
                fprintf(stderr, "bench-matcher: rules %llu size %llu: %s\n",
                        (unsigned long long)o.rules[r], (unsigned long long)o.sizes[s],
                        err.msg);
                hsdb_unref(br.db);
                goto out;
            }
            if (print_case(&o, o.rules[r], &br, o.sizes[s], &pcs[s], &cr) != 0) {
                fprintf(stderr, "bench-matcher: cannot write the result line\n");
                hsdb_unref(br.db);
                goto out;
            }
        }
        hsdb_unref(br.db);
    }
    status = 0;

out:
    for (size_t s = 0; s < o.n_sizes; s++)
        prepared_corpus_free(&pcs[s]);
    rule_files_free(&rf);
    return status;
}
