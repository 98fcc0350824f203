/* The compiled rule database: one Hyperscan block-mode database holding every rule and list
 * entry of a ruleset, plus the ruleset itself for mapping match ids back to rules.
 *
 * Immutable once built and reference-counted: worker threads hold a reference while they scan,
 * and a reload swaps in a new one. Compilation is slow (milliseconds to seconds) and runs off the
 * data path. The serialized form carries a header that is checked before Hyperscan ever sees
 * the bytes (see hsdb_deserialize). */
#ifndef SW_MATCHER_HSDB_H
#define SW_MATCHER_HSDB_H

#include <stddef.h>
#include <stdint.h>

#include <hs/hs.h>

#include "matcher/rules.h"
#include "protocols/sw_rc.h"

struct hsdb;

/* Layout of the serialized header (integers little-endian); see docs/rules.md. Exposed so that
 * tools and tests can inspect a cache file without loading it. */
#define HSDB_MAGIC "SWHSDB01"
#define HSDB_FORMAT_VERSION 1u
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

/* Compiles rs into a database. Takes ownership of rs in every case (freed on failure).
 * Match id i is rs->rules[i]; every pattern is compiled with HS_FLAG_SINGLEMATCH plus its own
 * flags. On a bad pattern returns NULL and err "file:line: rule ID: <compiler message>" (list
 * entries: "file:line: <kind> entry <entry>: <message>").
 * An empty ruleset compiles to a valid database that matches nothing (hsdb_targets() is 0; the
 * one stand-in pattern inside can never report, so match ids stay < rs->n). */
struct hsdb *hsdb_compile(struct ruleset *rs, struct sw_err *err);

/* Serializes db into a new malloc'd buffer (*out, caller frees) of *out_len bytes:
 * header {magic "SWHSDB01", format version, Hyperscan version string, hs_platform_info_t of the
 * compiling host, ruleset digest, payload length, payload checksum} followed by Hyperscan's own
 * serialized database. Returns SW_OK or SW_ERROR with err. */
int hsdb_serialize(const struct hsdb *db, char **out, size_t *out_len, struct sw_err *err);

/* Rebuilds a database from bytes made by hsdb_serialize(), for the given ruleset (takes
 * ownership of rs in every case). Checks, in order, before deserializing anything: size, magic,
 * format version, Hyperscan version (must equal hs_version()), platform (must equal this host's
 * hs_populate_platform()), ruleset digest (must equal ruleset_digest(rs)), payload length and
 * checksum. Any mismatch returns NULL with err naming the check that failed, so the caller
 * recompiles. */
struct hsdb *hsdb_deserialize(struct ruleset *rs, const char *buf, size_t len,
                              struct sw_err *err);

/* The Hyperscan flags a rule's flags (enum rule_flag) compile with, HS_FLAG_SINGLEMATCH included;
 * for tools that compile single rules (bench-matcher --rule-cost). */
unsigned hsdb_hs_flags(unsigned rule_flags);

/* Reference counting (atomic; safe from any thread). hsdb_unref frees at zero. */
struct hsdb *hsdb_ref(struct hsdb *db);
void hsdb_unref(struct hsdb *db);

const hs_database_t *hsdb_handle(const struct hsdb *db);
const struct ruleset *hsdb_ruleset(const struct hsdb *db);
/* Bitmask of targets that have at least one pattern (1u << RULE_BODY, ...), so the matcher can
 * skip scanning fields nothing applies to. */
unsigned hsdb_targets(const struct hsdb *db);
/* Size in bytes of the compiled database, and how long compilation took (0 if deserialized). */
size_t hsdb_size(const struct hsdb *db);
double hsdb_compile_seconds(const struct hsdb *db);

/* Grows *scratch (which may point to NULL) so it can scan db; one scratch per thread.
 * Returns SW_OK or SW_ERROR with err. */
int hsdb_alloc_scratch(const struct hsdb *db, hs_scratch_t **scratch, struct sw_err *err);

#endif
