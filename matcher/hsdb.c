/* The compiled rule database. See hsdb.h and docs/rules.md ("Cache file").
 *
 * One block-mode Hyperscan database holds every rule and list entry; match id i is
 * ruleset->rules[i]. The serialized form is a fixed little-endian header followed by
 * hs_serialize_database()'s bytes; the header is checked field by field before Hyperscan reads
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
    hs_database_t *db;
    struct ruleset *rs;
    unsigned targets;
    size_t size;
    double compile_seconds;
};

/* Seed of the payload checksum; changing it invalidates every cache, like a format bump. */
#define HSDB_CHECKSUM_SEED 0x53574853444231ULL

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

static unsigned targets_of(const struct ruleset *rs)
{
    unsigned t = 0;
    for (size_t i = 0; i < rs->n; i++)
        t |= 1u << rs->rules[i].target;
    return t;
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

static struct hsdb *hsdb_wrap(struct ruleset *rs, hs_database_t *db, double secs,
                              struct sw_err *err)
{
    struct hsdb *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        sw_err_set(err, "hsdb: out of memory");
        return NULL;
    }
    atomic_init(&h->refs, 1);
    h->db = db;
    h->rs = rs;
    h->targets = targets_of(rs);
    h->compile_seconds = secs;
    if (hs_database_size(db, &h->size) != HS_SUCCESS)
        h->size = 0;
    return h;
}

struct hsdb *hsdb_compile(struct ruleset *rs, struct sw_err *err)
{
    const char **exprs = NULL;
    unsigned *flags = NULL, *ids = NULL;
    hs_database_t *db = NULL;
    hs_compile_error_t *cerr = NULL;
    struct hsdb *h = NULL;
    hs_error_t rc;

    if (rs == NULL) {
        sw_err_set(err, "hsdb: no ruleset");
        goto fail;
    }
    if (rs->n > UINT32_MAX) {
        sw_err_set(err, "hsdb: too many patterns");
        goto fail;
    }
    double t0 = now_seconds();
    if (rs->n == 0) {
        rc = compile_empty(&db, &cerr);
    } else {
        exprs = malloc(rs->n * sizeof(*exprs));
        flags = malloc(rs->n * sizeof(*flags));
        ids = malloc(rs->n * sizeof(*ids));
        if (exprs == NULL || flags == NULL || ids == NULL) {
            sw_err_set(err, "hsdb: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < rs->n; i++) {
            exprs[i] = rs->rules[i].expr;
            flags[i] = hsdb_hs_flags(rs->rules[i].flags);
            ids[i] = (unsigned)i;
        }
        rc = hs_compile_multi(exprs, flags, ids, (unsigned)rs->n, HS_MODE_BLOCK, NULL, &db, &cerr);
    }
    if (rc != HS_SUCCESS) {
        const char *msg = cerr != NULL && cerr->message != NULL ? cerr->message : "unknown error";
        if (cerr != NULL && cerr->expression >= 0 && (size_t)cerr->expression < rs->n) {
            const struct rule *r = &rs->rules[cerr->expression];
            if (r->kind == RULE_KIND_RULE)
                sw_err_set(err, "%s:%u: rule %s: %s", r->file, r->line, r->id, msg);
            else
                sw_err_set(err, "%s:%u: %s entry %s: %s", r->file, r->line, rule_kind_name(r->kind),
                           r->entry ? r->entry : "?", msg);
        } else {
            sw_err_set(err, "hyperscan: %s", msg);
        }
        goto fail;
    }
    double secs = now_seconds() - t0;
    h = hsdb_wrap(rs, db, secs, err);
    if (h == NULL)
        goto fail;
    free(exprs);
    free(flags);
    free(ids);
    return h;
fail:
    if (cerr != NULL)
        hs_free_compile_error(cerr);
    if (db != NULL)
        hs_free_database(db);
    free(exprs);
    free(flags);
    free(ids);
    ruleset_free(rs);
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
 *  144  payload: hs_serialize_database() output */

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
    char *payload = NULL, *buf = NULL;
    size_t plen = 0;
    hs_platform_info_t pl;

    *out = NULL;
    *out_len = 0;
    if (hs_populate_platform(&pl) != HS_SUCCESS) {
        sw_err_set(err, "hsdb: hs_populate_platform failed");
        goto fail;
    }
    if (hs_serialize_database(db->db, &payload, &plen) != HS_SUCCESS) {
        sw_err_set(err, "hsdb: hs_serialize_database failed");
        goto fail;
    }
    buf = malloc(HSDB_HEADER_LEN + plen);
    if (buf == NULL) {
        sw_err_set(err, "hsdb: out of memory");
        goto fail;
    }
    memcpy(buf + HSDB_OFF_MAGIC, HSDB_MAGIC, 8);
    put_u32(buf + HSDB_OFF_FORMAT, HSDB_FORMAT_VERSION);
    if (put_version(buf + HSDB_OFF_HSVER, err) != SW_OK)
        goto fail;
    put_platform(buf + HSDB_OFF_PLATFORM, &pl);
    put_u64(buf + HSDB_OFF_DIGEST, ruleset_digest(db->rs));
    put_u64(buf + HSDB_OFF_PAYLOAD_LEN, (uint64_t)plen);
    put_u64(buf + HSDB_OFF_CHECKSUM, sw_hash64(payload, plen, HSDB_CHECKSUM_SEED));
    memcpy(buf + HSDB_HEADER_LEN, payload, plen);
    free(payload); /* hs_serialize_database uses the default misc allocator: malloc */
    *out = buf;
    *out_len = HSDB_HEADER_LEN + plen;
    return SW_OK;
fail:
    free(payload);
    free(buf);
    return SW_ERROR;
}

struct hsdb *hsdb_deserialize(struct ruleset *rs, const char *buf, size_t len, struct sw_err *err)
{
    hs_database_t *hdb = NULL;
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
    if (hs_deserialize_database(payload, (size_t)plen, &hdb) != HS_SUCCESS) {
        sw_err_set(err, "hsdb cache: Hyperscan rejected the database");
        goto fail;
    }
    struct hsdb *h = hsdb_wrap(rs, hdb, 0, err);
    if (h == NULL)
        goto fail;
    return h;
fail:
    if (hdb != NULL)
        hs_free_database(hdb);
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
    hs_free_database(db->db);
    ruleset_free(db->rs);
    free(db);
}

const hs_database_t *hsdb_handle(const struct hsdb *db)
{
    return db->db;
}

const struct ruleset *hsdb_ruleset(const struct hsdb *db)
{
    return db->rs;
}

unsigned hsdb_targets(const struct hsdb *db)
{
    return db->targets;
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
    hs_error_t rc = hs_alloc_scratch(db->db, scratch);
    if (rc != HS_SUCCESS)
        return sw_err_set(err, "hsdb: hs_alloc_scratch failed (%d)", (int)rc);
    return SW_OK;
}
