/* Structured, levelled, rate-limited logging: one line per event, logfmt or JSON lines, to a
 * file descriptor (stderr by default) or syslog.
 *
 * Every line carries, in this order: ts (UTC, RFC 3339 with milliseconds), level, worker,
 * conn (0 when the line is not about a connection), mod, event, then the caller's fields, then
 * suppressed=N when the call site dropped N lines since its last emitted one:
 *
 *   ts=2026-11-22T20:55:01.123Z level=info worker=2 conn=17 mod=session event=conn_open
 *       listener=c2s peer=192.0.2.1:50000
 *   {"ts":"2026-11-22T20:55:01.123Z","level":"info","worker":2,"conn":17,"mod":"session",
 *    "event":"conn_open","listener":"c2s","peer":"192.0.2.1:50000"}
 *
 * Fields: the fmt argument of log_emit is a printf format made of space-separated
 * `key=value` pairs, where each value is either one conversion (%s %d %u %lu %llu %zu %" PRIu64
 * " %x %f %g %c %p with the usual flags, width and precision) or a literal without spaces, e.g.
 *   "listener=%s peer=%s reason=%s bytes=%zu"
 * Each value is formatted on its own and then escaped for the output format, so values may
 * contain anything (spaces, quotes, newlines, invalid UTF-8). In JSON, integer and floating
 * conversions are emitted as numbers, everything else as strings. Keys must be [a-z0-9_.].
 * A line is at most LOG_LINE_MAX bytes; a longer one is cut at a field boundary and ends with
 * truncated=true.
 *
 * PRIVACY: there is deliberately no call that logs a message body or any other free-form
 * payload. Callers must never pass message bodies, passwords, SASL exchanges (initial responses,
 * challenges, tokens), MSNP cookies or session tickets as field values. Verdict lines carry
 * rule ids, scores and a body digest only.
 *
 * Threads: any thread may call log_emit; each line is one write(2) on an O_APPEND-like fd (or
 * one syslog(3) call), so lines never interleave. log_init/log_deinit are start-up/shut-down
 * calls; the level and debug switches can be changed at any time (relaxed atomics). Before
 * log_init the defaults apply: info, logfmt, stderr. */
#ifndef SW_PROXY_LOG_H
#define SW_PROXY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

#define LOG_LINE_MAX 2048

/* Not LOG_ERR etc.: those are <syslog.h> priorities. */
enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* Modules with their own debug switch; the name in parentheses is the mod= value and the name
 * used in the debug list of log_set_debug / the config. */
enum log_module {
    LOG_MOD_MAIN = 0,   /* (main) start-up, signals, reload */
    LOG_MOD_CONFIG,     /* (config) */
    LOG_MOD_WORKER,     /* (worker) loops, accept */
    LOG_MOD_SESSION,    /* (session) relay, limits, timeouts */
    LOG_MOD_XPRT,       /* (xprt) plain and TLS transports */
    LOG_MOD_TLS,        /* (tls) contexts, SNI, handshakes, verification */
    LOG_MOD_PROXYPROTO, /* (proxyproto) */
    LOG_MOD_XMPP,       /* (xmpp) */
    LOG_MOD_MSNP,       /* (msnp) */
    LOG_MOD_MATCHER,    /* (matcher) rules, verdicts */
    LOG_MOD_REP,        /* (rep) reputation cache, redis */
    LOG_MOD_ADMIN,      /* (admin) HTTP listener */
    LOG_MOD_COUNT
};

enum log_format {
    LOG_FORMAT_LOGFMT = 0,
    LOG_FORMAT_JSON,
};

enum log_target {
    LOG_TARGET_FD = 0, /* cfg.fd; stderr by default */
    LOG_TARGET_SYSLOG, /* facility daemon, ident cfg.ident; the line keeps all its fields */
};

/* A clock returning milliseconds; log_set_clock lets tests inject one. */
typedef uint64_t log_clock_cb(void);

struct log_config {
    enum log_level level;   /* lines above it are dropped; default info */
    enum log_format format; /* default logfmt */
    enum log_target target; /* default fd */
    int fd;                 /* for LOG_TARGET_FD; default 2; borrowed, never closed */
    const char *ident;      /* for syslog; default "spimwall"; copied */
    uint32_t debug_mask;    /* bit (1u << mod): debug lines of mod are emitted whatever level */
};

/* Fills cfg with the defaults above. */
void log_config_defaults(struct log_config *cfg);

/* Applies cfg process-wide (opens syslog if asked). Call at start-up, before worker threads
 * start, or again on reload from the main thread. Returns SW_OK, or SW_ERROR with err. */
int log_init(const struct log_config *cfg, struct sw_err *err);

/* Closes syslog if open and returns to the defaults. */
void log_deinit(void);

/* Changes the level at run time (any thread). */
void log_set_level(enum log_level level);

/* Parses a debug list: comma-separated module names, "all" or "" (none), into *mask. Returns
 * SW_OK, or SW_ERROR with err naming the unknown module. Does not apply it. */
int log_parse_debug(const char *list, uint32_t *mask, struct sw_err *err);

/* Applies a debug mask (any thread). */
void log_set_debug(uint32_t mask);

/* Parses "error", "warn", "info", "debug" into *level. Returns SW_OK or SW_ERROR with err. */
int log_parse_level(const char *s, enum log_level *level, struct sw_err *err);

/* Replaces the monotonic clock (rate limiting) and the wall clock (ts) with test clocks; NULL
 * restores the real one. Not thread-safe: tests only. */
void log_set_clock(log_clock_cb *mono_ms, log_clock_cb *wall_ms);

/* A call site: declare one static per place that logs (LOG_SITE below). Rate limiting is a
 * token bucket per site, shared by all threads: `burst` lines at once, refilled at `rate`
 * lines per second; rate 0 = unlimited. The fields after `burst` are private. */
struct log_site {
    enum log_module module;
    uint32_t rate;
    uint32_t burst;
    atomic_flag lock;
    uint64_t tokens_milli; /* tokens * 1000 */
    uint64_t last_ms;
    uint64_t suppressed;
    bool primed;
};

#define LOG_SITE_INIT(mod, rate_, burst_)                                                          \
    {                                                                                              \
        .module = (mod), .rate = (rate_), .burst = (burst_), .lock = ATOMIC_FLAG_INIT              \
    }

/* Default limits for data-path sites: 10 lines/s, bursts of 20. */
#define LOG_RATE_DEFAULT 10
#define LOG_BURST_DEFAULT 20

/* True if a line of this level from this module would be written (cheap; use it to skip
 * expensive argument preparation). */
bool log_enabled(enum log_module module, enum log_level level);

/* Emits one line if the level passes and the site has a token; otherwise counts it as
 * suppressed (rate) or drops it (level). site is borrowed and updated; event is a static
 * snake_case name; fmt is the key=value tail described above (may be NULL or "").
 * Never fails visibly: a write error is ignored (logging must not take the proxy down). */
__attribute__((format(printf, 6, 7))) void log_emit(struct log_site *site, enum log_level level,
                                                    unsigned worker, uint64_t conn,
                                                    const char *event, const char *fmt, ...);

/* One-liner for the common case: a static site with the default limits per call site.
 *   LOG(LOG_MOD_SESSION, LOG_LEVEL_WARN, w->id, c->id, "upstream_down", "listener=%s", name);
 * Expands to a block; it does not return or jump. */
#define LOG(mod, level, worker, conn, event, ...)                                                  \
    do {                                                                                           \
        static struct log_site log_site_here_ =                                                    \
            LOG_SITE_INIT(mod, LOG_RATE_DEFAULT, LOG_BURST_DEFAULT);                               \
        log_emit(&log_site_here_, (level), (worker), (conn), (event), __VA_ARGS__);                \
    } while (0)

/* Same without rate limit: start-up, shutdown, reload, config errors. */
#define LOG_UNLIMITED(mod, level, worker, conn, event, ...)                                        \
    do {                                                                                           \
        static struct log_site log_site_here_ = LOG_SITE_INIT(mod, 0, 0);                          \
        log_emit(&log_site_here_, (level), (worker), (conn), (event), __VA_ARGS__);                \
    } while (0)

/* Name of a module (mod= value) and of a level. */
const char *log_module_name(enum log_module module);
const char *log_level_name(enum log_level level);

#endif
