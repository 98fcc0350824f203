/* Rule loader: the I/O side of matcher/rules.h and matcher/hsdb.h.
 *
 * Reads every rule file and list file, parses them into one ruleset, and either loads a cached
 * compiled database that matches that ruleset exactly or compiles a new one and caches it.
 * Blocking and slow (compilation can take seconds): run it at start-up or on a reload thread,
 * never on an event loop. Does not log: everything worth logging is in struct ruleload_info. */
#ifndef SW_PROXY_RULELOAD_H
#define SW_PROXY_RULELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "matcher/hsdb.h"
#include "matcher/rules.h"
#include "protocols/sw_rc.h"

#define RULELOAD_DEFAULT_MAX_FILE (64u * 1024 * 1024)
#define RULELOAD_DEFAULT_MAX_CACHE (1024u * 1024 * 1024)

struct ruleload_opts {
    /* Directory of *.rules files, read in byte order of their names; NULL = no rule files. */
    const char *rules_dir;
    /* Directory of list files; NULL = no lists. A file's kind comes from its name:
     *   domains-block*.txt  domains-allow*.txt  senders-block*.txt  senders-allow*.txt
     *   shorteners*.txt
     * Any other *.txt name is an error (a misspelt list must not silently stop working); files
     * not ending in ".txt" and names starting with '.' are ignored (README, editor backups). */
    const char *lists_dir;
    /* Compiled-database cache file; NULL = always compile, write nothing. */
    const char *cache_path;
    struct ruleset_limits limits;
    enum hsdb_layout layout; /* HSDB_LAYOUT_PER_TARGET unless a benchmark compares */
    size_t max_file_bytes;  /* per rule or list file; 0 = RULELOAD_DEFAULT_MAX_FILE */
    size_t max_cache_bytes; /* cache file; 0 = RULELOAD_DEFAULT_MAX_CACHE */
};

struct ruleload_info {
    unsigned n_files;                   /* rule and list files read */
    size_t n_rules;                     /* entries from *.rules */
    size_t n_entries[RULE_KIND_COUNT];  /* per kind; [RULE_KIND_RULE] == n_rules */
    bool from_cache;                    /* database came from cache_path */
    bool cache_written;                 /* a new cache file was written */
    bool cache_missing;                 /* cache_path named a file that does not exist yet */
    char cache_reject[SW_ERR_MAX];      /* why the cache was not used; "" if used or no cache */
    char cache_write_error[SW_ERR_MAX]; /* why writing the cache failed; "" if fine */
    double compile_seconds;             /* 0 when loaded from cache */
    size_t db_bytes;                    /* hsdb_size() */
};

/* Fills opts with defaults (all directories NULL, default limits). */
void ruleload_opts_init(struct ruleload_opts *opts);

/* Reads, parses and compiles (or loads from cache) the rule set described by opts. Borrows opts.
 * Returns a new database (one reference, caller unrefs) and fills *info (may be NULL). Returns
 * NULL with err on a read, parse or compile error, "file:line: reason" where the line is known,
 * so the caller keeps its old database in force. A missing, stale or corrupt cache is not an
 * error (info->cache_reject says why), nor is a failure to write it (info->cache_write_error);
 * the cache is replaced atomically (temporary file, fsync, rename). */
struct hsdb *ruleload_build(const struct ruleload_opts *opts, struct ruleload_info *info,
                            struct sw_err *err);

/* Returns the list kind a file name selects (see ruleload_opts.lists_dir), RULE_KIND_RULE for a
 * "*.txt" name no kind matches, or -1 for a name that is not a list file at all (ignored). */
int ruleload_list_kind(const char *name);

#endif
