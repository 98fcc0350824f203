/* The verdict path every protocol shares (proxy/judge.c): one message goes through
 * matcher_classify, timed into the scan histogram, counted (messages by listener and action,
 * rule hits), failed open on a matcher error, logged when it is not a pass, and mapped to the
 * listener's configured action. What the action does to the byte stream (a SHIM block, X-Spam
 * headers, a bounce, a NAK, SM counters) stays with the protocol. */
#ifndef SW_PROXY_JUDGE_H
#define SW_PROXY_JUDGE_H

#include <stddef.h>
#include <stdint.h>

#include "matcher/matcher.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/session.h"

#define JUDGE_REASONS_MAX 512    /* bytes of the comma-joined reason ids (logs, tags) */
#define JUDGE_LOG_SENDER_MAX 256 /* bytes of the sender a verdict line shows */

/* The log sites of one protocol's verdicts, one static per protocol (JUDGE_SITES_INIT): each
 * protocol keeps its own mod= value and its own rate limit per event. */
struct judge_sites {
    struct log_site verdict;
    struct log_site scan_failed;
};

#define JUDGE_SITES_INIT(mod)                                                                      \
    {                                                                                              \
        .verdict = LOG_SITE_INIT(mod, LOG_RATE_DEFAULT, LOG_BURST_DEFAULT),                        \
        .scan_failed = LOG_SITE_INIT(mod, LOG_RATE_DEFAULT, LOG_BURST_DEFAULT)                     \
    }

/* One session's judge, embedded in the protocol's state; owns nothing (no deinit). */
struct judge {
    struct session *s;
    const struct config_listener *cfg; /* the session's listener (thresholds, actions) */
    unsigned lidx;                     /* its metrics index */
    struct judge_sites *sites;
    char ip[64]; /* the real client's address: the ip of every client-to-server message */
};

/* A verdict and what the listener makes of it. */
struct judge_result {
    enum verdict_action act;         /* the listener's action for v.score (judge_action) */
    struct verdict v;                /* zero score and no reasons after a matcher error */
    char reasons[JUDGE_REASONS_MAX]; /* reason ids, comma-joined; "" when act is VERDICT_PASS */
};

/* Binds j to session s (borrowed; j must not outlive it) and to sites (borrowed, static),
 * reading the listener, its metrics index and the client's address from s. */
void judge_init(struct judge *j, struct session *s, struct judge_sites *sites);

/* The action listener cfg (borrowed) takes for a message scoring score: its drop action
 * (drop, tag or pass) at or above the drop threshold, else its tag action (tag or pass) at or
 * above the tag threshold, else VERDICT_PASS. Pure. */
enum verdict_action judge_action(const struct config_listener *cfg, double score);

/* Judges one message m (borrowed for the call) travelling in direction dir. The caller fills
 * sender, recipient, body and the STRANGER/ENCRYPTED flags; this sets now_ms from the session,
 * and the ip for SESSION_C2S or MATCHER_F_INBOUND for SESSION_S2C, on its own copy. Times the
 * scan into spimwall_scan_duration_seconds, counts spimwall_messages_total and the rule hits,
 * and logs a line (event verdict; what=, e.g. "im" or "nick", when what is non-NULL) unless the
 * action is a pass. On a matcher error it fails open: counts a protocol error, logs
 * scan_failed, and gives VERDICT_PASS with a zero verdict. Fills *r and returns r->act. */
enum verdict_action judge_message(const struct judge *j, enum session_dir dir,
                                  const struct matcher_msg *m, const char *what,
                                  struct judge_result *r);

#endif
