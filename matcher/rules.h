/* Rule files and list files: parsing into a ruleset (see docs/rules.md for the formats).
 *
 * A ruleset is the uncompiled form of everything the Hyperscan database will hold: rules from
 * *.rules files and entries from list files (domain and sender block/allow lists, URL shortener
 * domains), each turned into one pattern with a target. Parsing is pure: the caller reads files
 * (proxy/ruleload.c) and hands the bytes in. */
#ifndef SW_MATCHER_RULES_H
#define SW_MATCHER_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

/* What a pattern is matched against. The matcher scans each field of a message separately, with
 * the database of that field's target (hsdb.h). */
enum rule_target {
    RULE_BODY = 0, /* the normalised message text */
    RULE_URL,      /* each extracted URL in canonical form (see url.h) */
    RULE_DOMAIN,   /* each URL's host, and the sender's domain part */
    RULE_SENDER,   /* the sender's bare address (JID or passport), lower-cased */
    RULE_TARGET_COUNT
};

enum rule_flag {
    RULE_F_CASELESS = 1u << 0,  /* 'i' */
    RULE_F_LITERAL = 1u << 1,   /* pattern was "quoted": matched byte for byte */
    RULE_F_UTF8 = 1u << 2,      /* 'u': UTF-8 mode and Unicode properties */
    RULE_F_DOTALL = 1u << 3,    /* 's' */
    RULE_F_MULTILINE = 1u << 4, /* 'm' */
};

/* Conditions a rule's hit needs before it counts (option "requires=", see docs/rules.md). They
 * are checked when the hits are scored, not by Hyperscan, so a rule such as "lure phrase plus a
 * link" needs no `.{0,200}` gap between a phrase and a link regex. */
enum rule_require {
    RULE_REQ_LINK = 1u << 0, /* the message has at least one extracted link, or a hit of a rule
                              * with provides=link */
};

/* Where an entry came from: a rule, or one of the list kinds. List entries get their score from
 * the matcher config at classification time, so scores can change without a recompile. */
enum rule_kind {
    RULE_KIND_RULE = 0,
    RULE_KIND_DOMAIN_BLOCK,
    RULE_KIND_DOMAIN_ALLOW,
    RULE_KIND_SENDER_BLOCK,
    RULE_KIND_SENDER_ALLOW,
    RULE_KIND_SHORTENER,
    RULE_KIND_COUNT
};

struct rule {
    char *id;         /* owned; rules: as written; list entries: the list kind's id */
    char *expr;       /* owned; the Hyperscan expression (literals and list entries escaped) */
    char *entry;      /* owned; list entries: the entry normalised (lower-cased, a leading "*." or
                       * "." and a trailing "." dropped, e.g. "evil.example"); else NULL */
    char *desc;       /* owned; may be NULL */
    const char *file; /* interned in the ruleset; valid as long as it */
    unsigned line;
    double score;    /* rules only; list entries take theirs from the matcher config */
    unsigned flags;  /* enum rule_flag */
    unsigned requires; /* enum rule_require bits; 0 for list entries */
    unsigned provides; /* enum rule_require bits a hit of this rule satisfies ("provides=link":
                        * it recognises a link written so that no extractor rebuilds it) */
    enum rule_target target;
    enum rule_kind kind;
};

/* Bounds applied while parsing (config: rules.*). Zero fields take the defaults. */
struct ruleset_limits {
    size_t max_rules;      /* rules + list entries in one ruleset; default 200000 */
    size_t max_line;       /* bytes in one line; default 16384 */
    size_t max_pattern;    /* bytes in one pattern; default 8192 */
};

struct ruleset {
    struct rule *rules;
    size_t n, cap;
    char **files; /* interned file names */
    size_t n_files;
    struct ruleset_limits limits;
};

/* Returns an empty ruleset with the given limits (NULL = defaults), or NULL on ENOMEM. */
struct ruleset *ruleset_new(const struct ruleset_limits *limits);
void ruleset_free(struct ruleset *rs);
/* Returns a deep copy of rs (its own strings and interned file names), or NULL on ENOMEM. Lets a
 * loader keep a ruleset while handing a copy to a function that takes ownership
 * (hsdb_deserialize). */
struct ruleset *ruleset_clone(const struct ruleset *rs);

/* Parses a rule file's bytes (buf need not be NUL-terminated). file names the source in errors.
 * On success appends its rules and returns SW_OK. On the first error returns SW_ERROR with err
 * "file:line: reason" and leaves rs exactly as it was before the call. Duplicate rule ids (also
 * across files), unknown targets or flags, bad scores, unterminated patterns, over-long lines
 * and patterns, and the max_rules bound are all errors. Regex syntax is checked by the compiler
 * (hsdb_compile), which reports file:line too. */
int ruleset_parse_rules(struct ruleset *rs, const char *buf, size_t len, const char *file,
                        struct sw_err *err);

/* Parses a list file of the given kind (not RULE_KIND_RULE): one entry per line, '#' starts a
 * comment, blank lines ignored, surrounding whitespace trimmed; the format of JabberSPAM's
 * public blacklist is accepted as is. Domain-like kinds take hostnames (a leading "*." or "." is
 * accepted and means the same as the bare domain: subdomains always match); sender kinds take
 * "user@domain" (exact address) or "@domain" (any address at that domain). Invalid entries are
 * errors with file:line. Same all-or-nothing contract as ruleset_parse_rules(). */
int ruleset_parse_list(struct ruleset *rs, enum rule_kind kind, const char *buf, size_t len,
                       const char *file, struct sw_err *err);

/* A digest of everything that determines the compiled databases (expressions, flags, targets,
 * requires=, order). Used to tell whether a cached database still matches the rules on disk. */
uint64_t ruleset_digest(const struct ruleset *rs);

/* Names for kinds and targets: "rule", "domain_block", ...; "body", "url", "domain", "sender". */
const char *rule_kind_name(enum rule_kind kind);
const char *rule_target_name(enum rule_target target);
/* The reason id a list kind reports in verdicts, e.g. "LIST_DOMAIN_BLOCK". */
const char *rule_kind_reason(enum rule_kind kind);

#endif
