/* The compiled rule database. See hsdb.h and docs/rules.md ("Cache file").
 *
 * One block-mode Hyperscan database per target (or one for all, HSDB_LAYOUT_ONE) holds the rules
 * and list entries; match id i is ruleset->rules[i] in every one of them. The serialized form is
 * a fixed little-endian header followed by a table of the databases and their
 * hs_serialize_database() bytes; the header is checked field by field before Hyperscan reads
 * anything, because hs_deserialize_database() trusts its input. */
#include "matcher/hsdb.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/hash.h"

struct hsdb {
    atomic_uint refs;
    enum hsdb_layout layout;
    unsigned n_dbs;
    hs_database_t *dbs[HSDB_MAX_DBS];
    unsigned db_groups[HSDB_MAX_DBS];                  /* groups each database holds */
    const hs_database_t *of_target[RULE_TARGET_COUNT]; /* NULL: nothing targets it */
    const hs_database_t *body_plain;                   /* HSDB_GROUP_BODY_PLAIN; may be NULL */
    struct ruleset *rs;
    unsigned groups; /* groups of the patterns, as groups_of(); their targets' bits are the
                      * targets that have a database */
    size_t size;
    double compile_seconds;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned hsdb_hs_flags(unsigned flags)
{
    unsigned f = HS_FLAG_SINGLEMATCH;
    if (flags & RULE_F_CASELESS)
        f |= HS_FLAG_CASELESS;
    if (flags & RULE_F_UTF8)
        f |= HS_FLAG_UTF8 | HS_FLAG_UCP;
    if (flags & RULE_F_DOTALL)
        f |= HS_FLAG_DOTALL;
    if (flags & RULE_F_MULTILINE)
        f |= HS_FLAG_MULTILINE;
    return f;
}

const char *const hsdb_layout_names[] = {"per-target", "one", NULL};
_Static_assert(HSDB_LAYOUT_PER_TARGET == 0 && HSDB_LAYOUT_ONE == 1, "hsdb_layout_names order");

bool hsdb_layout_parse(const char *s, enum hsdb_layout *out)
{
    for (unsigned i = 0; hsdb_layout_names[i] != NULL; i++) {
        if (strcmp(s, hsdb_layout_names[i]) == 0) {
            *out = (enum hsdb_layout)i;
            return true;
        }
    }
    return false;
}

/* The groups of a ruleset's patterns: its targets' bits, and HSDB_GROUP_BODY_PLAIN under
 * HSDB_LAYOUT_PER_TARGET when the body has rules with and rules without requires=link. */
static unsigned groups_of(const struct ruleset *rs, enum hsdb_layout layout)
{
    unsigned g = 0;
    bool with = false, without = false;
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        g |= 1u << r->target;
        if (r->target == RULE_BODY) {
            with |= (r->requires & RULE_REQ_LINK) != 0;
            without |= (r->requires & RULE_REQ_LINK) == 0;
        }
    }
    if (layout == HSDB_LAYOUT_PER_TARGET && with && without)
        g |= HSDB_GROUP_BODY_PLAIN;
    return g;
}

/* The groups a pattern belongs to, of those present: its target's, and HSDB_GROUP_BODY_PLAIN
 * too for a body rule without requires=link. */
static unsigned group_of(const struct rule *r, unsigned present)
{
    unsigned g = 1u << r->target;
    if ((present & HSDB_GROUP_BODY_PLAIN) && r->target == RULE_BODY &&
        !(r->requires & RULE_REQ_LINK))
        g |= HSDB_GROUP_BODY_PLAIN;
    return g;
}

/* The databases a ruleset whose patterns fall in the groups present compiles into under
 * layout: the groups of each, in order (body, url, domain, sender, body without requires=link).
 * An empty ruleset still gets one database (holding no group). Returns how many. */
static unsigned plan_groups(unsigned present, enum hsdb_layout layout,
                            unsigned groups[HSDB_MAX_DBS])
{
    if (layout == HSDB_LAYOUT_ONE || present == 0) {
        groups[0] = present;
        return 1;
    }
    unsigned n = 0;
    for (unsigned t = 0; t < HSDB_MAX_DBS; t++) {
        if (present & (1u << t))
            groups[n++] = 1u << t;
    }
    return n;
}

/* Hyperscan refuses to compile zero patterns, yet an empty ruleset must give a database that
 * scans cleanly. The stand-in is one pattern that cannot report in block mode: its minimum
 * match offset (2^40) is beyond the largest buffer hs_scan() accepts (4 GiB). */
static hs_error_t compile_empty(hs_database_t **db, hs_compile_error_t **cerr)
{
    const char *expr[] = {"\\x00"};
    unsigned flags[] = {HS_FLAG_SINGLEMATCH};
    unsigned ids[] = {0};
    hs_expr_ext_t ext = {.flags = HS_EXT_FLAG_MIN_OFFSET, .min_offset = 1ULL << 40};
    const hs_expr_ext_t *exts[] = {&ext};
    return hs_compile_ext_multi(expr, flags, ids, exts, 1, HS_MODE_BLOCK, NULL, db, cerr);
}

static void hsdb_free(struct hsdb *h)
{
    for (unsigned g = 0; g < h->n_dbs; g++)
        hs_free_database(h->dbs[g]);
    ruleset_free(h->rs);
    free(h);
}

/* A database set for rs (owned from here on) with no Hyperscan database yet; NULL if out of
 * memory (rs is then still the caller's). */
static struct hsdb *hsdb_new(struct ruleset *rs, enum hsdb_layout layout, struct sw_err *err)
{
    struct hsdb *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        sw_err_set(err, "hsdb: out of memory");
        return NULL;
    }
    atomic_init(&h->refs, 1);
    h->layout = layout == HSDB_LAYOUT_ONE ? HSDB_LAYOUT_ONE : HSDB_LAYOUT_PER_TARGET;
    h->rs = rs;
    h->groups = groups_of(rs, h->layout);
    return h;
}

/* Adds database db (owned from here on) holding the groups in mask. */
static void hsdb_add(struct hsdb *h, hs_database_t *db, unsigned mask)
{
    size_t size = 0;
    h->dbs[h->n_dbs] = db;
    h->db_groups[h->n_dbs] = mask;
    h->n_dbs++;
    for (unsigned t = 0; t < RULE_TARGET_COUNT; t++) {
        if (mask & (1u << t))
            h->of_target[t] = db;
    }
    if (mask & HSDB_GROUP_BODY_PLAIN)
        h->body_plain = db;
    if (hs_database_size(db, &size) == HS_SUCCESS)
        h->size += size;
}

/* Compiles the rules of rs that belong to a group in mask (group_of(), of the groups present)
 * into *db. Match ids are rule indexes. */
static int compile_group(const struct ruleset *rs, unsigned present, unsigned mask,
                         const char **exprs, unsigned *flags, unsigned *ids, hs_database_t **db,
                         struct sw_err *err)
{
    hs_compile_error_t *cerr = NULL;
    unsigned n = 0;
    hs_error_t rc;

    for (size_t i = 0; i < rs->n; i++) {
        if (!(mask & group_of(&rs->rules[i], present)))
            continue;
        exprs[n] = rs->rules[i].expr;
        flags[n] = hsdb_hs_flags(rs->rules[i].flags);
        ids[n] = (unsigned)i;
        n++;
    }
    if (n == 0)
        rc = compile_empty(db, &cerr);
    else
        rc = hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, db, &cerr);
    if (rc == HS_SUCCESS)
        return SW_OK;
    const char *msg = cerr != NULL && cerr->message != NULL ? cerr->message : "unknown error";
    if (n > 0 && cerr != NULL && cerr->expression >= 0 && (unsigned)cerr->expression < n) {
        const struct rule *r = &rs->rules[ids[cerr->expression]];
        if (r->kind == RULE_KIND_RULE)
            sw_err_set(err, "%s:%u: rule %s: %s", r->file, r->line, r->id, msg);
        else
            sw_err_set(err, "%s:%u: %s entry %s: %s", r->file, r->line, rule_kind_name(r->kind),
                       r->entry ? r->entry : "?", msg);
    } else {
        sw_err_set(err, "hyperscan: %s", msg);
    }
    if (cerr != NULL)
        hs_free_compile_error(cerr);
    *db = NULL;
    return SW_ERROR;
}

struct hsdb *hsdb_compile(struct ruleset *rs, enum hsdb_layout layout, struct sw_err *err)
{
    const char **exprs = NULL;
    unsigned *flags = NULL, *ids = NULL;
    struct hsdb *h = NULL;

    if (rs == NULL) {
        sw_err_set(err, "hsdb: no ruleset");
        return NULL;
    }
    if (rs->n > UINT32_MAX) {
        sw_err_set(err, "hsdb: too many patterns");
        ruleset_free(rs);
        return NULL;
    }
    double t0 = now_seconds();
    size_t cap = rs->n > 0 ? rs->n : 1;
    exprs = malloc(cap * sizeof(*exprs));
    flags = malloc(cap * sizeof(*flags));
    ids = malloc(cap * sizeof(*ids));
    h = hsdb_new(rs, layout, err);
    if (h == NULL) {
        ruleset_free(rs);
        goto fail;
    }
    if (exprs == NULL || flags == NULL || ids == NULL) {
        sw_err_set(err, "hsdb: out of memory");
        goto fail;
    }
    unsigned groups[HSDB_MAX_DBS];
    unsigned n_groups = plan_groups(h->groups, h->layout, groups);
    for (unsigned g = 0; g < n_groups; g++) {
        hs_database_t *db;
        if (compile_group(rs, h->groups, groups[g], exprs, flags, ids, &db, err) != SW_OK)
            goto fail;
        hsdb_add(h, db, groups[g]);
    }
    h->compile_seconds = now_seconds() - t0;
    free(exprs);
    free(flags);
    free(ids);
    return h;
fail:
    if (h != NULL)
        hsdb_free(h);
    free(exprs);
    free(flags);
    free(ids);
    return NULL;
}

/* --- serialization ------------------------------------------------------------------------------
 * Header (HSDB_HEADER_LEN bytes, integers little-endian):
 *    0  magic "SWHSDB01"                         8
 *    8  format version (u32)                     4
 *   12  hs_version() NUL-padded                  HSDB_HSVER_LEN
 *   92  platform: tune u32, cpu_features u64, reserved1 u64, reserved2 u64     28
 *  120  ruleset digest (u64)                     8
 *  128  payload length (u64)                     8
 *  136  payload checksum: sw_hash64 (u64)        8
 *  144  payload: the database table and the databases (HSDB_PAYLOAD_HEAD below) */

static void put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static uint32_t get_u32(const char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(unsigned char)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return v;
}

static void put_platform(char *p, const hs_platform_info_t *pl)
{
    put_u32(p, pl->tune);
    put_u64(p + 4, pl->cpu_features);
    put_u64(p + 12, pl->reserved1);
    put_u64(p + 20, pl->reserved2);
}

static int put_version(char *p, struct sw_err *err)
{
    const char *v = hs_version();
    size_t n = strlen(v);
    if (n >= HSDB_HSVER_LEN)
        return sw_err_set(err, "hsdb: Hyperscan version string too long");
    memset(p, 0, HSDB_HSVER_LEN);
    memcpy(p, v, n);
    return SW_OK;
}

int hsdb_serialize(const struct hsdb *db, char **out, size_t *out_len, struct sw_err *err)
{
    char *parts[HSDB_MAX_DBS] = {NULL};
    size_t lens[HSDB_MAX_DBS] = {0};
    char *buf = NULL;
    hs_platform_info_t pl;
    int rc = SW_ERROR;

    *out = NULL;
    *out_len = 0;
    if (hs_populate_platform(&pl) != HS_SUCCESS) {
        sw_err_set(err, "hsdb: hs_populate_platform failed");
        goto done;
    }
    size_t plen = HSDB_PAYLOAD_HEAD + (size_t)db->n_dbs * HSDB_PAYLOAD_ENTRY;
    for (unsigned g = 0; g < db->n_dbs; g++) {
        if (hs_serialize_database(db->dbs[g], &parts[g], &lens[g]) != HS_SUCCESS) {
            sw_err_set(err, "hsdb: hs_serialize_database failed");
            goto done;
        }
        plen += lens[g];
    }
    buf = malloc(HSDB_HEADER_LEN + plen);
    if (buf == NULL) {
        sw_err_set(err, "hsdb: out of memory");
        goto done;
    }
    memcpy(buf + HSDB_OFF_MAGIC, HSDB_MAGIC, 8);
    put_u32(buf + HSDB_OFF_FORMAT, HSDB_FORMAT_VERSION);
    if (put_version(buf + HSDB_OFF_HSVER, err) != SW_OK)
        goto done;
    put_platform(buf + HSDB_OFF_PLATFORM, &pl);
    put_u64(buf + HSDB_OFF_DIGEST, ruleset_digest(db->rs));
    put_u64(buf + HSDB_OFF_PAYLOAD_LEN, (uint64_t)plen);

    char *payload = buf + HSDB_HEADER_LEN;
    put_u32(payload, (uint32_t)db->layout);
    put_u32(payload + 4, db->n_dbs);
    size_t at = HSDB_PAYLOAD_HEAD + (size_t)db->n_dbs * HSDB_PAYLOAD_ENTRY;
    for (unsigned g = 0; g < db->n_dbs; g++) {
        char *e = payload + HSDB_PAYLOAD_HEAD + (size_t)g * HSDB_PAYLOAD_ENTRY;
        put_u32(e, db->db_groups[g]);
        put_u32(e + 4, 0);
        put_u64(e + 8, (uint64_t)lens[g]);
        memcpy(payload + at, parts[g], lens[g]);
        at += lens[g];
    }
    put_u64(buf + HSDB_OFF_CHECKSUM, sw_hash64(payload, plen, HSDB_CHECKSUM_SEED));
    *out = buf;
    *out_len = HSDB_HEADER_LEN + plen;
    buf = NULL;
    rc = SW_OK;
done:
    for (unsigned g = 0; g < HSDB_MAX_DBS; g++)
        free(parts[g]); /* hs_serialize_database uses the default misc allocator: malloc */
    free(buf);
    return rc;
}

unsigned hsdb_table_check(const char *payload, size_t plen, unsigned groups,
                          enum hsdb_layout layout, size_t lens[HSDB_MAX_DBS], struct sw_err *err)
{
    unsigned want[HSDB_MAX_DBS];
    layout = layout == HSDB_LAYOUT_ONE ? HSDB_LAYOUT_ONE : HSDB_LAYOUT_PER_TARGET;
    unsigned n_want = plan_groups(groups & ((1u << HSDB_MAX_DBS) - 1), layout, want);
    if (plen < HSDB_PAYLOAD_HEAD) {
        sw_err_set(err, "hsdb cache: layout check failed (no database table)");
        return 0;
    }
    uint32_t file_layout = get_u32(payload), n = get_u32(payload + 4);
    if (file_layout != (uint32_t)layout || n != n_want ||
        plen < HSDB_PAYLOAD_HEAD + (size_t)n * HSDB_PAYLOAD_ENTRY) {
        sw_err_set(err,
                   "hsdb cache: layout check failed (file has %u database(s), layout %s; "
                   "expected %u, layout %s)",
                   (unsigned)n,
                   file_layout <= HSDB_LAYOUT_ONE ? hsdb_layout_names[file_layout] : "?", n_want,
                   hsdb_layout_names[layout]);
        return 0;
    }
    size_t at = HSDB_PAYLOAD_HEAD + (size_t)n * HSDB_PAYLOAD_ENTRY;
    for (unsigned g = 0; g < n; g++) {
        const char *e = payload + HSDB_PAYLOAD_HEAD + (size_t)g * HSDB_PAYLOAD_ENTRY;
        uint64_t len = get_u64(e + 8);
        if (get_u32(e) != want[g] || get_u32(e + 4) != 0 || len == 0 || len > plen - at) {
            sw_err_set(err, "hsdb cache: layout check failed (database %u)", g);
            return 0;
        }
        lens[g] = (size_t)len;
        at += lens[g];
    }
    if (at != plen) {
        sw_err_set(err, "hsdb cache: layout check failed (%zu trailing bytes)", plen - at);
        return 0;
    }
    return n;
}

/* Checks the payload's table (hsdb_table_check()) and deserializes each database; fills h.
 * Hyperscan sees nothing unless the whole table adds up. */
static int load_payload(struct hsdb *h, const char *payload, size_t plen, struct sw_err *err)
{
    unsigned want[HSDB_MAX_DBS];
    size_t lens[HSDB_MAX_DBS];
    unsigned n = hsdb_table_check(payload, plen, h->groups, h->layout, lens, err);
    if (n == 0)
        return SW_ERROR;
    plan_groups(h->groups, h->layout, want);
    size_t at = HSDB_PAYLOAD_HEAD + (size_t)n * HSDB_PAYLOAD_ENTRY;
    for (unsigned g = 0; g < n; g++) {
        hs_database_t *db = NULL;
        if (hs_deserialize_database(payload + at, lens[g], &db) != HS_SUCCESS)
            return sw_err_set(err, "hsdb cache: Hyperscan rejected database %u", g);
        hsdb_add(h, db, want[g]);
        at += lens[g];
    }
    return SW_OK;
}

struct hsdb *hsdb_deserialize(struct ruleset *rs, enum hsdb_layout layout, const char *buf,
                              size_t len, struct sw_err *err)
{
    char ver[HSDB_HSVER_LEN];
    char plat[HSDB_PLATFORM_LEN];
    hs_platform_info_t pl;

    if (rs == NULL) {
        sw_err_set(err, "hsdb cache: no ruleset");
        goto fail;
    }
    if (buf == NULL || len < HSDB_HEADER_LEN) {
        sw_err_set(err, "hsdb cache: size check failed (%zu bytes, header needs %d)", len,
                   HSDB_HEADER_LEN);
        goto fail;
    }
    if (memcmp(buf + HSDB_OFF_MAGIC, HSDB_MAGIC, 8) != 0) {
        sw_err_set(err, "hsdb cache: magic check failed (not a spimwall database)");
        goto fail;
    }
    uint32_t fmt = get_u32(buf + HSDB_OFF_FORMAT);
    if (fmt != HSDB_FORMAT_VERSION) {
        sw_err_set(err, "hsdb cache: format version check failed (file %u, expected %u)", fmt,
                   (unsigned)HSDB_FORMAT_VERSION);
        goto fail;
    }
    if (put_version(ver, err) != SW_OK)
        goto fail;
    if (memcmp(ver, buf + HSDB_OFF_HSVER, HSDB_HSVER_LEN) != 0) {
        sw_err_set(err, "hsdb cache: Hyperscan version check failed (running %s)", hs_version());
        goto fail;
    }
    if (hs_populate_platform(&pl) != HS_SUCCESS) {
        sw_err_set(err, "hsdb cache: hs_populate_platform failed");
        goto fail;
    }
    put_platform(plat, &pl);
    if (memcmp(plat, buf + HSDB_OFF_PLATFORM, HSDB_PLATFORM_LEN) != 0) {
        sw_err_set(err, "hsdb cache: platform check failed (compiled for another CPU)");
        goto fail;
    }
    if (get_u64(buf + HSDB_OFF_DIGEST) != ruleset_digest(rs)) {
        sw_err_set(err, "hsdb cache: ruleset digest check failed (rules changed)");
        goto fail;
    }
    uint64_t plen = get_u64(buf + HSDB_OFF_PAYLOAD_LEN);
    if (plen != (uint64_t)(len - HSDB_HEADER_LEN) || plen == 0) {
        sw_err_set(err, "hsdb cache: payload length check failed (header %llu, file has %zu)",
                   (unsigned long long)plen, len - HSDB_HEADER_LEN);
        goto fail;
    }
    const char *payload = buf + HSDB_HEADER_LEN;
    if (get_u64(buf + HSDB_OFF_CHECKSUM) != sw_hash64(payload, (size_t)plen, HSDB_CHECKSUM_SEED)) {
        sw_err_set(err, "hsdb cache: checksum check failed (file corrupt)");
        goto fail;
    }
    struct hsdb *h = hsdb_new(rs, layout, err);
    if (h == NULL)
        goto fail;
    if (load_payload(h, payload, (size_t)plen, err) != SW_OK) {
        hsdb_free(h);
        return NULL;
    }
    return h;
fail:
    ruleset_free(rs);
    return NULL;
}

struct hsdb *hsdb_ref(struct hsdb *db)
{
    atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
    return db;
}

void hsdb_unref(struct hsdb *db)
{
    if (db == NULL)
        return;
    /* acq_rel: the last owner must see every other owner's reads done before it frees */
    if (atomic_fetch_sub_explicit(&db->refs, 1, memory_order_acq_rel) != 1)
        return;
    hsdb_free(db);
}

const hs_database_t *hsdb_handle(const struct hsdb *db, enum rule_target target)
{
    return (unsigned)target < RULE_TARGET_COUNT ? db->of_target[target] : NULL;
}

unsigned hsdb_count(const struct hsdb *db)
{
    return db->n_dbs;
}

const hs_database_t *hsdb_database(const struct hsdb *db, unsigned i)
{
    return i < db->n_dbs ? db->dbs[i] : NULL;
}

enum hsdb_layout hsdb_layout(const struct hsdb *db)
{
    return db->layout;
}

const struct ruleset *hsdb_ruleset(const struct hsdb *db)
{
    return db->rs;
}

unsigned hsdb_targets(const struct hsdb *db)
{
    return db->groups & ((1u << RULE_TARGET_COUNT) - 1);
}

const hs_database_t *hsdb_body_plain(const struct hsdb *db)
{
    return db->body_plain;
}

unsigned hsdb_groups(const struct hsdb *db)
{
    return db->groups;
}

size_t hsdb_size(const struct hsdb *db)
{
    return db->size;
}

double hsdb_compile_seconds(const struct hsdb *db)
{
    return db->compile_seconds;
}

int hsdb_alloc_scratch(const struct hsdb *db, hs_scratch_t **scratch, struct sw_err *err)
{
    for (unsigned g = 0; g < db->n_dbs; g++) {
        hs_error_t rc = hs_alloc_scratch(db->dbs[g], scratch);
        if (rc != HS_SUCCESS)
            return sw_err_set(err, "hsdb: hs_alloc_scratch failed (%d)", (int)rc);
    }
    return SW_OK;
}
