/* The embedded reputation cache: time-decayed behaviour signals keyed by sender, source IP, URL
 * domain, body fingerprint and (sender, fingerprint) pair.
 *
 * Shared by all worker threads (the one mutable structure besides metrics that is): the table
 * is split into independently locked shards, each a fixed array of set-associative buckets, so
 * memory is bounded exactly by config and every operation is O(1) (a bounded number of slots
 * is probed; a full bucket evicts its least recently used entry). Time is always passed in,
 * never read, so tests and offline replays control it. Keys are 64-bit hashes the caller makes
 * (matcher.c salts them per process). */
#ifndef SW_MATCHER_REPUTATION_H
#define SW_MATCHER_REPUTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

struct rep_config {
    size_t max_bytes;           /* memory for the table; default 64 MiB; min 64 KiB */
    unsigned shards;            /* rounded up to a power of two; default 64; 0 means the default;
                                 * max 65536; halved while a shard would get under 16 buckets
                                 * (8 KiB), so small tables get fewer shards */
    uint32_t window_ms;         /* fan-out and campaign window; default 60 s; counts cover
                                 * between one and two windows (docs/reputation.md) */
    uint32_t rate_half_life_ms; /* decay of the message-rate counters; default 10 s */
    uint32_t spam_half_life_ms; /* decay of spam history (sender, IP, domain); default 6 h */
};

#define REP_MIN_BYTES ((size_t)64 << 10)
#define REP_MAX_SHARDS 65536u

/* Fills cfg with the defaults documented above. */
void rep_config_defaults(struct rep_config *cfg);

struct rep;

/* Allocates the whole table up front (one block of at most cfg->max_bytes; nothing is allocated
 * afterwards). Returns NULL with err on a bad config (max_bytes < REP_MIN_BYTES, shards >
 * REP_MAX_SHARDS, a zero window or half-life) or ENOMEM. The caller frees with rep_free. */
struct rep *rep_new(const struct rep_config *cfg, struct sw_err *err);
/* Frees the table; rep may be NULL. No other thread may use it any more. */
void rep_free(struct rep *rep);

#define REP_MAX_DOMAINS 16
/* Spam history below this no longer counts as history (see rep_observe) and no longer keeps
 * its entry from eviction. */
#define REP_HISTORY_MIN 0.05

/* One message as the cache sees it. Zero keys mean "unknown" and are skipped. */
struct rep_msg {
    uint64_t sender;      /* hash of the bare sender address */
    uint64_t recipient;   /* hash of the bare recipient address */
    uint64_t ip;          /* hash of the source address; 0 if unknown */
    uint64_t fingerprint; /* text_fingerprint() of the body; 0 to skip fan-out and campaign */
    uint64_t domains[REP_MAX_DOMAINS]; /* hashes of the registrable domains of its URLs */
    unsigned n_domains;
    uint64_t now_ms;
    /* The caller reads only the source address's spam history (ip_spam): the address is then
     * looked up like a domain, its rate is not counted (ip_rate stays 0) and no entry is made
     * for it; only rep_report_spam gives it one. */
    bool ip_history_only;
};

struct rep_signals {
    uint32_t fanout;          /* distinct recipients this sender sent this fingerprint to within the
                               * window, this message included (exact up to 28, an estimate above);
                               * 0 if the fingerprint or the sender is 0 */
    uint32_t campaign;        /* distinct senders of this fingerprint within the window, this one
                               * included (same precision); 0 if the fingerprint is 0 */
    double sender_rate;       /* decayed message count of the sender (rate half-life), this one
                               * included */
    double ip_rate;           /* same for the source address */
    double sender_spam;       /* decayed count of the sender's earlier spim (spam half-life) */
    double ip_spam;           /* same for the source address */
    double domain_spam;       /* highest decayed spim count among the message's domains */
    unsigned domain_spam_idx; /* index into rep_msg.domains of that domain */
    bool quarantined;         /* the sender is in quarantine at now_ms */
    uint64_t quarantine_until_ms;
};

/* Records msg (borrowed) and fills *out with the signals as they stand with it counted. Domains
 * are only looked up here: they gain entries through rep_report_spam. The spam history of a
 * domain or a source address reads as 0 below 0.05 (REP_HISTORY_MIN), and is then dropped:
 * the table keeps one bit per bucket that says whether any of its entries has more, and the
 * look-ups of domains, and of source addresses with ip_history_only, skip the buckets whose bit
 * is clear. Thread-safe. */
void rep_observe(struct rep *rep, const struct rep_msg *msg, struct rep_signals *out);

/* A hint, no state change: starts fetching the bucket that rep_observe() will probe first for
 * this sender (0: none), so that a caller with other work to do first (the body scan) finds it
 * in cache. (Not the source address: most messages never look it up, see matcher.c.) */
void rep_prefetch(const struct rep *rep, uint64_t sender);

/* A hint like rep_prefetch: starts fetching the tag lines of the fingerprint, pair and domain
 * buckets of msg (borrowed), and the whole bucket of its source address if it has one, for a
 * caller that knows those keys some work before it calls rep_observe() with all of them (the
 * matcher: messages with links, which always look up their source address). Domains, and a
 * source address with ip_history_only, are fetched only where rep_observe() will probe them
 * (see the history bitmap there). */
void rep_prefetch_spread(const struct rep *rep, const struct rep_msg *msg);

/* The second stage of rep_prefetch_spread(), for a caller with more work before its
 * rep_observe(): reads the tag lines that one fetched (without the lock; a stale read costs a
 * wasted prefetch, nothing else) and starts fetching the entry line each key will most likely
 * use, so that the entry misses overlap that work too. */
void rep_prefetch_spread_entries(const struct rep *rep, const struct rep_msg *msg);

/* Feedback after a verdict of tag or drop: adds weight to the spam history of the sender, the
 * IP and every domain of msg (bad-domain history), at msg->now_ms. A weight that is not a
 * positive finite number is ignored. Thread-safe. */
void rep_report_spam(struct rep *rep, const struct rep_msg *msg, double weight);

/* Puts sender in quarantine until now_ms + duration_ms (extends, never shortens); a zero sender
 * is ignored. Thread-safe. */
void rep_quarantine(struct rep *rep, uint64_t sender, uint64_t now_ms, uint32_t duration_ms);

struct rep_stats {
    uint64_t capacity; /* entries the table can hold */
    uint64_t entries;  /* entries in use */
    uint64_t bytes;    /* memory held by the table */
    uint64_t hits, misses, evictions;
    uint64_t shards; /* shards actually in use (see rep_config.shards) */
};

/* Totals over all shards (each shard locked in turn; a consistent-enough snapshot). */
void rep_get_stats(struct rep *rep, struct rep_stats *out);

#endif
