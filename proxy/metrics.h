/* Process metrics, rendered as Prometheus text exposition (format 0.0.4) for the admin
 * listener's /metrics.
 *
 * Shared mutable state by design (DESIGN.md): worker threads write, the main thread scrapes.
 * Each writer thread owns a slot (struct metrics_slot): a cache-line-aligned array of relaxed
 * C11 atomic cells, so hot counters never share a line with another thread's; an increment is
 * one uncontended relaxed fetch_add. A scrape sums the slots with relaxed loads: every counter
 * is exact once writers are quiet, and monotonic while they run.
 *
 * Families are declared as data (a table of name, help, type and label dimensions in
 * metrics.c, indexed by enum metric_id). Label values come from fixed enums below, from the
 * listener names given to metrics_new, or, for rule ids, from a bounded intern table: the rule
 * set changes on reload, so a rule id is interned the first time it is counted (lock-free,
 * insert-only, at most max_rules ids; further new ids count under rule="_other"). Ids of
 * rules removed by a reload keep their final count until restart, as Prometheus expects of a
 * counter. */
#ifndef SW_PROXY_METRICS_H
#define SW_PROXY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

/* Label dimensions. A family has up to two; the caller passes the index in each (a, b). */
enum metrics_direction {
    METRICS_DIR_C2S = 0, /* client to server (upstream), label direction="client_to_server" */
    METRICS_DIR_S2C,     /* server to client, direction="server_to_client" */
    METRICS_DIR_COUNT
};

enum metrics_verdict {
    METRICS_VERDICT_PASS = 0,
    METRICS_VERDICT_TAG,
    METRICS_VERDICT_DROP,
    METRICS_VERDICT_COUNT
};

enum metrics_leg {
    METRICS_LEG_CLIENT = 0, /* leg="client": we are the TLS server */
    METRICS_LEG_UPSTREAM,   /* leg="upstream": we are the TLS client */
    METRICS_LEG_COUNT
};

/* Why a TLS handshake failed (label reason=). The core maps OpenSSL errors onto these. */
enum metrics_tls_reason {
    METRICS_TLS_TIMEOUT = 0,      /* "timeout" */
    METRICS_TLS_EOF,              /* "eof": peer closed during the handshake */
    METRICS_TLS_NOT_TLS,          /* "not_tls": garbage or plaintext instead of a ClientHello */
    METRICS_TLS_PROTOCOL_VERSION, /* "protocol_version" */
    METRICS_TLS_NO_SHARED_CIPHER, /* "no_shared_cipher" (ciphers or groups) */
    METRICS_TLS_UNKNOWN_SNI,      /* "unknown_sni": no certificate for the name */
    METRICS_TLS_VERIFY,           /* "verify": peer certificate failed verification */
    METRICS_TLS_ALERT,            /* "alert": peer sent a fatal alert */
    METRICS_TLS_OTHER,            /* "other" */
    METRICS_TLS_REASON_COUNT
};

/* Why a connection was refused or closed early (label reason=). */
enum metrics_reject_reason {
    METRICS_REJECT_GLOBAL_LIMIT = 0, /* "global_limit" */
    METRICS_REJECT_PER_IP_LIMIT,     /* "per_ip_limit" */
    METRICS_REJECT_PROXY_HEADER,     /* "proxy_header": malformed PROXY header */
    METRICS_REJECT_PROXY_UNTRUSTED,  /* "proxy_untrusted": PROXY header from an untrusted peer */
    METRICS_REJECT_UPSTREAM_DOWN,    /* "upstream_down": connect to the upstream failed */
    METRICS_REJECT_DRAINING,         /* "draining" */
    METRICS_REJECT_REASON_COUNT
};

enum metrics_timeout {
    METRICS_TIMEOUT_CONNECT = 0, /* kind="connect" */
    METRICS_TIMEOUT_HANDSHAKE,   /* kind="handshake" (TLS or PROXY header) */
    METRICS_TIMEOUT_IDLE,        /* kind="idle" */
    METRICS_TIMEOUT_COUNT
};

/* The families writers touch. Label dimensions in brackets: (a) then (b). */
enum metric_id {
    METRIC_CONNECTIONS_TOTAL = 0, /* counter [listener] spimwall_connections_total */
    METRIC_CONNECTIONS_CURRENT,   /* gauge [listener] spimwall_connections_current (add +1/-1) */
    METRIC_CONNECTIONS_REJECTED,  /* counter [listener][reject_reason]
                                   * spimwall_connections_rejected_total */
    METRIC_TIMEOUTS,              /* counter [listener][timeout] spimwall_timeouts_total */
    METRIC_BYTES,                 /* counter [listener][direction] spimwall_bytes_total */
    METRIC_TLS_HANDSHAKES,        /* counter [listener][leg] spimwall_tls_handshakes_total
                                   * (successful) */
    METRIC_TLS_FAILURES,          /* counter [listener][tls_reason]
                                   * spimwall_tls_handshake_failures_total */
    METRIC_PROTOCOL_ERRORS,       /* counter [listener] spimwall_protocol_errors_total */
    METRIC_MESSAGES,              /* counter [listener][verdict] spimwall_messages_total */
    METRIC_RELOADS,               /* counter [] spimwall_reloads_total (successful) */
    METRIC_RELOAD_FAILURES,       /* counter [] spimwall_reload_failures_total */
    METRIC_ID_COUNT
};
/* Not in enum metric_id because they have their own calls: spimwall_rule_hits_total{rule}
 * (metrics_rule_hit), spimwall_scan_duration_seconds histogram (metrics_observe_scan), the
 * spimwall_reputation_* families (pulled through metrics_set_rep_cb) and spimwall_draining. */

#define METRICS_MAX_RULES_DEFAULT 4096
#define METRICS_RENDER_MAX_DEFAULT (8u << 20) /* bound on one /metrics response */

/* Scan latency histogram upper bounds in seconds (+Inf added at render). */
#define METRICS_SCAN_BUCKETS                                                                       \
    {                                                                                              \
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,    \
            0.05, 0.1, 0.25                                                                        \
    }
#define METRICS_SCAN_NBUCKETS 14

struct metrics;
struct metrics_slot;

/* Creates the registry with n_writers writer slots (one per worker thread, plus any others:
 * give the main thread one too) and the listener label values (names copied; at least one).
 * max_rules bounds the rule-id label table (0 = METRICS_MAX_RULES_DEFAULT). Returns NULL with
 * err on a bad argument or ENOMEM. Free with metrics_free after all writers stopped. */
struct metrics *metrics_new(unsigned n_writers, const char *const *listeners, unsigned n_listeners,
                            unsigned max_rules, struct sw_err *err);
/* Frees m, its slots and every interned rule id; NULL is fine. No writer or scrape may run. */
void metrics_free(struct metrics *m);

/* The slot of writer i (0 <= i < n_writers), valid while m lives; NULL if i is out of range.
 * A slot should be written by one thread (any number of threads is still exact, just slower). */
struct metrics_slot *metrics_slot(struct metrics *m, unsigned i);

/* Adds n to family id at label indices (a, b) (pass 0 for unused dimensions). For a gauge,
 * n may be "negative" as a two's complement uint64_t: metrics_add(s, id, l, 0, (uint64_t)-1).
 * Out-of-range ids or indices are ignored. Lock-free. */
void metrics_add(struct metrics_slot *s, enum metric_id id, unsigned a, unsigned b, uint64_t n);

/* metrics_add(s, id, a, b, 1). */
void metrics_inc(struct metrics_slot *s, enum metric_id id, unsigned a, unsigned b);

/* Records one scan that took ns nanoseconds. Lock-free. */
void metrics_observe_scan(struct metrics_slot *s, uint64_t ns);

/* Counts a hit of rule id (borrowed; interned on first use, lock-free). Lock-free after the
 * first hit of an id; the first one of a new id allocates a copy (a failed allocation counts
 * under "_other"). */
void metrics_rule_hit(struct metrics_slot *s, const char *rule_id);

/* Reputation cache figures, pulled at scrape time. */
struct metrics_rep_stats {
    uint64_t capacity, entries, bytes;
    uint64_t hits, misses, evictions;
};
/* Fills *st; called from the scraping thread, must be thread-safe w.r.t. the workers. */
typedef void metrics_rep_cb(void *arg, struct metrics_rep_stats *st);

/* Registers the reputation callback (NULL to remove; then the families are omitted). Call
 * before scraping starts or from the scraping thread. */
void metrics_set_rep_cb(struct metrics *m, metrics_rep_cb *cb, void *arg);

/* Sets the spimwall_draining gauge (0 or 1). Any thread. */
void metrics_set_draining(struct metrics *m, bool draining);

/* A growable output buffer with a hard bound. */
struct metrics_buf {
    char *data; /* owned; NUL-terminated when len > 0 */
    size_t len, cap, max;
};

/* Empty buffer that will grow up to max bytes (0 = METRICS_RENDER_MAX_DEFAULT). */
void metrics_buf_init(struct metrics_buf *b, size_t max);
/* Frees b->data and leaves b empty (reusable after metrics_buf_init). */
void metrics_buf_deinit(struct metrics_buf *b);

/* Appends the whole exposition to b (callers reset b->len = 0 to reuse it). Thread-safe with
 * the writers; scrapes from several threads at once are safe too. Returns SW_OK, or SW_ERROR
 * if the output would exceed b->max or memory ran out (b then holds a partial output). */
int metrics_render(struct metrics *m, struct metrics_buf *b);

/* The label value of a listener index, or NULL if out of range. */
const char *metrics_listener_name(const struct metrics *m, unsigned i);

#endif
