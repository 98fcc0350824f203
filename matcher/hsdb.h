/* The compiled rule database: the Hyperscan block-mode databases that hold every rule and list
 * entry of a ruleset, one per target by default, plus the ruleset itself for mapping match ids
 * back to rules. Compiled, cached, checked, reference-counted and swapped as one unit.
 *
 * Why one database per target: a field is scanned only for the rules that target it, so a body
 * scan pays nothing for the URL, domain and sender patterns and the list entries, whose matches
 * it would throw away, and a 20-byte sender is not scanned by the body rules' engines
 * (docs/architecture.md, docs/performance.md "One database per target"). HSDB_LAYOUT_ONE, all
 * of them in one database, stays available (matcher.databases = "one", bench-matcher --layout
 * one).
 *
 * Immutable once built and reference-counted: worker threads hold a reference while they scan,
 * and a reload swaps in a new one. Compilation is slow (milliseconds to seconds) and runs off the
 * data path. The serialized form carries a header that is checked before Hyperscan ever sees
 * the bytes (see hsdb_deserialize). */
#ifndef SW_MATCHER_HSDB_H
#define SW_MATCHER_HSDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hs/hs.h>

#include "matcher/rules.h"
#include "protocols/sw_rc.h"

struct hsdb;

/* Layout of the serialized header (integers little-endian); see docs/rules.md. Exposed so that
 * tools and tests can inspect a cache file without loading it. */
#define HSDB_MAGIC "SWHSDB01"
#define HSDB_FORMAT_VERSION 3u
#define HSDB_HSVER_LEN 80   /* hs_version(), NUL-padded */
#define HSDB_PLATFORM_LEN 28 /* tune u32, cpu_features u64, reserved1 u64, reserved2 u64 */
#define HSDB_OFF_MAGIC 0
#define HSDB_OFF_FORMAT 8
#define HSDB_OFF_HSVER 12
#define HSDB_OFF_PLATFORM (HSDB_OFF_HSVER + HSDB_HSVER_LEN)            /* 92 */
#define HSDB_OFF_DIGEST (HSDB_OFF_PLATFORM + HSDB_PLATFORM_LEN)        /* 120 */
#define HSDB_OFF_PAYLOAD_LEN (HSDB_OFF_DIGEST + 8)                     /* 128 */
#define HSDB_OFF_CHECKSUM (HSDB_OFF_PAYLOAD_LEN + 8)                   /* 136 */
#define HSDB_HEADER_LEN (HSDB_OFF_CHECKSUM + 8)                        /* 144 */
/* Seed of the payload checksum; changing it invalidates every cache, like a format bump. */
#define HSDB_CHECKSUM_SEED 0x53574853444231ULL
/* The payload: layout u32, database count u32, then per database its groups (bit mask of enum
 * rule_target, plus HSDB_GROUP_BODY_PLAIN) u32, a reserved u32 (0) and its length u64, then the
 * databases' hs_serialize_database() bytes in that order. */
#define HSDB_PAYLOAD_HEAD 8
#define HSDB_PAYLOAD_ENTRY 16

/* How the patterns are grouped into Hyperscan databases. */
enum hsdb_layout {
    HSDB_LAYOUT_PER_TARGET = 0, /* one database per target that has patterns (the default), and
                                 * one more of the body rules without requires=link */
    HSDB_LAYOUT_ONE = 1,        /* every pattern in one database */
};
/* The group bit, next to the targets' bits, of a second body database under
 * HSDB_LAYOUT_PER_TARGET: the body rules without requires=link (hsdb_body_plain()), made when
 * the body has rules of both kinds. A rule with requires=link cannot count in a message without
 * a link, so the matcher scans a body in which the URL extractor found none with this database
 * and skips their engines (most chat), and scans the others with the body database, which holds
 * every body rule: one scan either way. The phrase alternations of "lure phrase plus a link" are
 * the costliest patterns of the default set (docs/performance.md, "A body database without the
 * link rules"). The price: the body rules are compiled twice. */
#define HSDB_GROUP_BODY_PLAIN (1u << RULE_TARGET_COUNT)
#define HSDB_MAX_DBS (RULE_TARGET_COUNT + 1)
/* The layouts' names in enum order, NULL-terminated: "per-target", "one" (matcher.databases,
 * spimwall-scan --databases, bench-matcher --layout). */
extern const char *const hsdb_layout_names[];
/* Sets *out to the layout named s; false if s names none. */
bool hsdb_layout_parse(const char *s, enum hsdb_layout *out);

/* Compiles rs into its databases. Takes ownership of rs in every case (freed on failure).
 * Match id i is rs->rules[i]; every pattern is compiled with HS_FLAG_SINGLEMATCH plus its own
 * flags. On a bad pattern returns NULL and err "file:line: rule ID: <compiler message>" (list
 * entries: "file:line: <kind> entry <entry>: <message>").
 * An empty ruleset compiles to one valid database that matches nothing (hsdb_targets() is 0;
 * the one stand-in pattern inside can never report, so match ids stay < rs->n). */
struct hsdb *hsdb_compile(struct ruleset *rs, enum hsdb_layout layout, struct sw_err *err);

/* Serializes db into a new malloc'd buffer (*out, caller frees) of *out_len bytes:
 * header {magic "SWHSDB01", format version, Hyperscan version string, hs_platform_info_t of the
 * compiling host, ruleset digest, payload length, payload checksum} followed by the payload: the
 * layout, a table of the databases (targets, length) and Hyperscan's own serialized databases.
 * Returns SW_OK or SW_ERROR with err. */
int hsdb_serialize(const struct hsdb *db, char **out, size_t *out_len, struct sw_err *err);

/* Rebuilds the databases from bytes made by hsdb_serialize(), for the given ruleset and layout
 * (takes ownership of rs in every case). Checks, in order, before deserializing anything: size,
 * magic, format version, Hyperscan version (must equal hs_version()), platform (must equal this
 * host's hs_populate_platform()), ruleset digest (must equal ruleset_digest(rs)), payload length,
 * checksum, and layout (the table must list exactly the databases hsdb_compile(rs, layout)
 * makes). Any mismatch returns NULL with err naming the check that failed, so the caller
 * recompiles. */
struct hsdb *hsdb_deserialize(struct ruleset *rs, enum hsdb_layout layout, const char *buf,
                              size_t len, struct sw_err *err);

/* The payload's database table, checked against the databases a rule set whose patterns fall
 * in the groups given (bit mask, as hsdb_groups()) compiles into under layout: each listed with
 * its groups, in order, reserved 0, lengths non-zero and adding up to exactly the rest of
 * payload[0..plen). Returns the number of databases with lens[i] set, or 0 with err ("layout
 * check failed ..."). Reads nothing outside payload[0..plen); pure. hsdb_deserialize() runs it
 * before Hyperscan sees a byte; exposed for its fuzz target. */
unsigned hsdb_table_check(const char *payload, size_t plen, unsigned groups,
                          enum hsdb_layout layout, size_t lens[HSDB_MAX_DBS], struct sw_err *err);

/* The Hyperscan flags a rule's flags (enum rule_flag) compile with, HS_FLAG_SINGLEMATCH included;
 * for tools that compile single rules (bench-matcher --rule-cost). */
unsigned hsdb_hs_flags(unsigned rule_flags);

/* Reference counting (atomic; safe from any thread). hsdb_unref frees at zero. */
struct hsdb *hsdb_ref(struct hsdb *db);
void hsdb_unref(struct hsdb *db);

/* The database that holds target's patterns; NULL if no pattern targets it. */
const hs_database_t *hsdb_handle(const struct hsdb *db, enum rule_target target);
/* The database of the body rules without requires=link (HSDB_GROUP_BODY_PLAIN); NULL unless the
 * layout is HSDB_LAYOUT_PER_TARGET and the body has rules with and without requires=link. */
const hs_database_t *hsdb_body_plain(const struct hsdb *db);
/* Bitmask of the groups the databases hold (the targets' bits and HSDB_GROUP_BODY_PLAIN); the
 * plan hsdb_table_check() checks a cache file against. */
unsigned hsdb_groups(const struct hsdb *db);
/* The databases one by one (for tools and fuzzers that scan with all of them), i < count. */
unsigned hsdb_count(const struct hsdb *db);
const hs_database_t *hsdb_database(const struct hsdb *db, unsigned i);
enum hsdb_layout hsdb_layout(const struct hsdb *db);
const struct ruleset *hsdb_ruleset(const struct hsdb *db);
/* Bitmask of targets that have at least one pattern (1u << RULE_BODY, ...), so the matcher can
 * skip scanning fields nothing applies to. */
unsigned hsdb_targets(const struct hsdb *db);
/* Size in bytes of the compiled databases, and how long compilation took (0 if deserialized). */
size_t hsdb_size(const struct hsdb *db);
double hsdb_compile_seconds(const struct hsdb *db);

/* Grows *scratch (which may point to NULL) so it can scan with each of db's databases; one
 * scratch per thread.
 * Returns SW_OK or SW_ERROR with err. */
int hsdb_alloc_scratch(const struct hsdb *db, hs_scratch_t **scratch, struct sw_err *err);

#endif
