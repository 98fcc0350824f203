/* A generator of realistic instant-message traffic for the benchmarks.
 *
 * Chat between users who mostly talk to their contacts (conversations go back and forth),
 * everyday sentences, an occasional link to a well-known site, a few percent of messages with
 * emoji or non-ASCII text; and a share of spim the way it arrived on MSN and XMPP: a hijacked
 * account sending the same lure with a link to each of its contacts within seconds, or a bot
 * account writing to strangers ("lol! see it!", "who is beside you in this pic", summer
 * pictures .zip, "find out who blocked you", "verify your account", ...). Timestamps advance
 * with exponential gaps. The whole corpus is generated up front in memory, so that a benchmark
 * times only its subject. Deterministic for a given config (seed included). */
#ifndef SW_BENCH_CORPUS_H
#define SW_BENCH_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct corpus_config {
    size_t messages;          /* default 100000 */
    size_t msg_bytes;         /* target body length; every body is within +-20%; default 200;
                               * min 16 */
    double spim_share;        /* fraction of messages that are spim; default 0.1 */
    unsigned users;           /* distinct user accounts; default 10000 */
    unsigned contacts;        /* roster size per user; default 20 */
    double bot_share;         /* of spim: sent by bot accounts to strangers (the rest comes from
                               * hijacked accounts to their contacts); default 0.3 */
    double link_share;        /* of chat: messages with a link to a well-known site; default
                               * 0.06 */
    double utf8_share;        /* of chat: messages with emoji or non-ASCII words; default 0.05 */
    unsigned spam_domains;    /* spim links use corpus_spam_domain(0 .. spam_domains - 1);
                               * default 1000 */
    uint64_t seed;            /* default 1 */
    uint64_t start_ms;        /* timestamp of the first message; default 1700000000000 */
    uint32_t mean_gap_us;     /* mean time between two messages; default 500 (2000 msg/s) */
};

void corpus_config_defaults(struct corpus_config *cfg);

/* One message. Strings point into the corpus and are not NUL-terminated. */
struct corpus_msg {
    const char *body;
    size_t body_len;
    const char *sender; /* bare address, e.g. "anna.kowalski@jabber.example" */
    size_t sender_len;
    const char *recipient;
    size_t recipient_len;
    const char *ip; /* textual source address of the sender */
    size_t ip_len;
    uint64_t now_ms;
    bool spim;     /* generated from a lure (ground truth) */
    bool stranger; /* the sender is not in the recipient's roster */
};

struct corpus {
    struct corpus_msg *msgs;
    size_t n;
    size_t n_spim;
    uint64_t body_bytes; /* sum of body_len */
    uint64_t span_ms;    /* now_ms of the last message minus that of the first */
    struct corpus_config cfg;
    /* storage behind the pointers above */
    char *bodies;
    char *names;
};

/* Generates a corpus. Returns NULL on a bad config (messages == 0, msg_bytes < 16, users < 2,
 * contacts == 0, shares outside [0, 1], spam_domains == 0) or on ENOMEM. */
struct corpus *corpus_new(const struct corpus_config *cfg);
void corpus_free(struct corpus *c);

/* Writes the i-th spam domain (e.g. "photo-share12.ru") into buf, NUL-terminated, and returns
 * its length (0 if cap is too small). Deterministic and distinct for distinct i, so a benchmark
 * can put the first k of them on a block list and know that the corpus links to them. */
size_t corpus_spam_domain(uint64_t i, char *buf, size_t cap);

#endif
