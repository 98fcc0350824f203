/* The classification pipeline: one message in, one verdict out.
 *
 *   body -> text_normalize -> hs_scan(body) -> url_extract -> hs_scan(url, host; sender)
 *        -> fingerprint -> reputation (fan-out, campaign, rate, bad domains, quarantine)
 *        -> score = rule scores + list scores + signals -> pass | tag | drop + reasons
 *
 * struct matcher is immutable and refcounted (compiled database + config), shared by every
 * thread; struct matcher_ctx is per thread (Hyperscan scratch, buffers). Neither does I/O. */
#ifndef SW_MATCHER_MATCHER_H
#define SW_MATCHER_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "matcher/hsdb.h"
#include "matcher/reputation.h"
#include "protocols/sw_rc.h"

struct matcher_config {
    double tag_threshold;       /* score >= this: tag; default 5 */
    double drop_threshold;      /* score >= this: drop; default 10 */
    unsigned max_urls;          /* links extracted per message; default 16 (max 64) */
    size_t max_text;            /* bytes of a body that are scanned; default 65536 */
    size_t url_arena;           /* bytes for extracted URL strings per message; default 8192 */
    unsigned field_cache_slots; /* per-thread cache of sender/domain/URL scan results; a power
                                 * of two, 0 = off; default 65536 (32 B each: 2 MiB per
                                 * thread, room for the senders of a busy worker) */
    unsigned domain_cache_slots; /* per-thread cache of hosts' registrable domains (a libpsl
                                  * look-up is ~0.5 us); a power of two, 0 = off; default 1024
                                  * (64 B each: 64 KiB per thread) */

    /* scores of list hits (once per list kind per message) */
    double score_domain_block; /* default 10 */
    double score_domain_allow; /* default -2 */
    double score_sender_block; /* default 20 */
    double score_sender_allow; /* default -20 */
    double score_shortener;    /* default 1.5 */

    /* built-in content signals */
    double score_obfuscated_link; /* defanged scheme, dot-words, or invisible/full-width/
                                   * look-alike characters in a message with a link; default 5 */
    double score_ip_link;         /* link to a literal IP address; default 3 */
    double score_userinfo_link;   /* http://bank.example@evil.example/; default 4 */
    double score_stranger;        /* inbound from a non-contact with a link (MATCHER_F_STRANGER);
                                   * default 2 */

    /* behaviour signals from the reputation cache */
    bool reputation; /* default true */
    struct rep_config rep;
    unsigned spread_min_urls;    /* fan-out/campaign count only messages with >= this many
                                  * links (0: all messages); default 1 */
    size_t spread_min_len;       /* ... and folded text of at least this length; default 0 */
    unsigned fanout_threshold;   /* distinct recipients in the window; default 5 */
    double score_fanout;         /* default 10 */
    unsigned campaign_threshold; /* distinct senders in the window; default 10 */
    size_t campaign_min_len;     /* letters of folded text (URLs, digits, separators
                                  * excluded) a message needs for the campaign signal: "did
                                  * you see this? <link>" (13) from many people is normal;
                                  * default 16 */
    double score_campaign;       /* default 6 */
    double rate_threshold;       /* decayed messages (rate half-life); default 30 */
    double score_rate;           /* default 3 */
    double bad_domain_threshold; /* decayed spim sightings of a domain; default 2 */
    double score_bad_domain;     /* default 4 */
    double bad_sender_threshold; /* decayed spim count of a sender; default 3 */
    double score_bad_sender;     /* default 3 */
    uint32_t quarantine_ms;      /* quarantine after a fan-out verdict; 0 = off; default 1 h */
    double score_quarantined;    /* default 100 */
};

/* Fills cfg with the defaults documented above. */
void matcher_config_defaults(struct matcher_config *cfg);
/* Checks ranges and relations (tag < drop, bounds non-zero, ...). SW_OK or SW_ERROR with err
 * naming the option. */
int matcher_config_check(const struct matcher_config *cfg, struct sw_err *err);

enum matcher_msg_flag {
    MATCHER_F_INBOUND = 1u << 0,   /* towards a local user (recipient is ours) */
    MATCHER_F_STRANGER = 1u << 1,  /* sender is not in the recipient's roster */
    MATCHER_F_ENCRYPTED = 1u << 2, /* OMEMO/OTR: the body is ciphertext; behaviour only */
};

/* One message. Strings are borrowed for the duration of the call and need not be
 * NUL-terminated. sender/recipient are bare addresses; ip is textual (may be NULL). */
struct matcher_msg {
    const char *sender;
    size_t sender_len;
    const char *recipient;
    size_t recipient_len;
    const char *body;
    size_t body_len;
    const char *ip;
    size_t ip_len;
    uint64_t now_ms;
    unsigned flags; /* enum matcher_msg_flag */
};

enum verdict_action { VERDICT_PASS = 0, VERDICT_TAG = 1, VERDICT_DROP = 2 };

#define VERDICT_MAX_REASONS 24
#define VERDICT_DETAIL_MAX 64

struct verdict_reason {
    const char *id; /* rule id or signal name; valid while the matcher lives */
    double score;
    char detail[VERDICT_DETAIL_MAX]; /* e.g. the domain or the count; "" if none. Never body
                                      * text. */
};

struct verdict {
    enum verdict_action action;
    double score;
    unsigned n_reasons;
    unsigned reasons_dropped; /* reasons beyond VERDICT_MAX_REASONS (still scored) */
    struct verdict_reason reasons[VERDICT_MAX_REASONS];
    /* Body digest for logs (never the body itself): the fan-out fingerprint when reputation
     * took one, else a digest of the normalised body for tag and drop verdicts; 0 for a pass
     * without a fan-out fingerprint (nothing logs it, and every message would pay for it). */
    uint64_t fingerprint;
    unsigned n_urls;
    bool quarantine_started; /* this verdict put the sender in quarantine */
};

struct matcher;
struct matcher_ctx;

/* Builds a matcher from a compiled database (takes a reference; caller keeps its own) and a
 * config (copied). Returns NULL with err on a bad config. */
struct matcher *matcher_new(struct hsdb *db, const struct matcher_config *cfg, struct sw_err *err);
struct matcher *matcher_ref(struct matcher *m);
void matcher_unref(struct matcher *m);
const struct matcher_config *matcher_get_config(const struct matcher *m);
const struct hsdb *matcher_db(const struct matcher *m);

/* Per-thread working state. NULL on ENOMEM. */
struct matcher_ctx *matcher_ctx_new(void);
void matcher_ctx_free(struct matcher_ctx *ctx);

/* Classifies msg. rep may be NULL (no behaviour signals). Fills *out and returns SW_OK, or
 * SW_ERROR with err if Hyperscan failed (scratch allocation, scan error); the caller then
 * applies its fail-open/fail-closed policy. Reasons come in a stable order: rules by id order of
 * the database, then lists, then signals. */
int matcher_classify(struct matcher_ctx *ctx, const struct matcher *m, struct rep *rep,
                     const struct matcher_msg *msg, struct verdict *out, struct sw_err *err);

const char *verdict_action_name(enum verdict_action a);

/* Writes the reason ids of v, comma-separated, into out[0..cap) (cap > 0), NUL-terminated;
 * ids that do not fit whole are left out. */
void verdict_reasons(const struct verdict *v, char *out, size_t cap);

#endif
