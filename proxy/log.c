/* Structured logging; see log.h for the line format and the rules callers follow.
 *
 * A line is built on the stack (LOG_LINE_MAX bytes), field by field: each value of the
 * caller's key=value tail is formatted on its own with the matching printf conversion, then
 * escaped for the output format, so no value can forge a field or break a line. The finished
 * line goes out in one write(2) (or one syslog(3) call), so threads never interleave. */
#include "proxy/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *const module_names[LOG_MOD_COUNT] = {
    [LOG_MOD_MAIN] = "main",
    [LOG_MOD_CONFIG] = "config",
    [LOG_MOD_WORKER] = "worker",
    [LOG_MOD_SESSION] = "session",
    [LOG_MOD_XPRT] = "xprt",
    [LOG_MOD_TLS] = "tls",
    [LOG_MOD_PROXYPROTO] = "proxyproto",
    [LOG_MOD_XMPP] = "xmpp",
    [LOG_MOD_MSNP] = "msnp",
    [LOG_MOD_MATCHER] = "matcher",
    [LOG_MOD_REP] = "rep",
    [LOG_MOD_ADMIN] = "admin",
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Process-wide state. level and debug mask change at run time (relaxed atomics: a line more or
 * less around a change does not matter); the rest is set by log_init before threads start. */
static _Atomic int g_level = LOG_LEVEL_INFO;
static _Atomic uint32_t g_debug_mask = 0;
static enum log_format g_format = LOG_FORMAT_LOGFMT;
static enum log_target g_target = LOG_TARGET_FD;
static int g_fd = 2;
static bool g_syslog_open = false;
static char g_ident[64] = "spimwall";

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) == -1)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t real_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static uint64_t real_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static log_clock_cb *g_mono = real_mono_ms;
static log_clock_cb *g_wall = real_wall_ms;

const char *log_module_name(enum log_module module)
{
    if ((unsigned)module >= LOG_MOD_COUNT)
        return "unknown";
    return module_names[module];
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG)
        return "unknown";
    return level_names[level];
}

void log_config_defaults(struct log_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->level = LOG_LEVEL_INFO;
    cfg->format = LOG_FORMAT_LOGFMT;
    cfg->target = LOG_TARGET_FD;
    cfg->fd = 2;
    cfg->ident = "spimwall";
    cfg->debug_mask = 0;
}

int log_init(const struct log_config *cfg, struct sw_err *err)
{
    if ((unsigned)cfg->level > LOG_LEVEL_DEBUG)
        return sw_err_set(err, "log: bad level %d", (int)cfg->level);
    if (cfg->format != LOG_FORMAT_LOGFMT && cfg->format != LOG_FORMAT_JSON)
        return sw_err_set(err, "log: bad format %d", (int)cfg->format);
    if (cfg->target != LOG_TARGET_FD && cfg->target != LOG_TARGET_SYSLOG)
        return sw_err_set(err, "log: bad target %d", (int)cfg->target);
    if (cfg->target == LOG_TARGET_FD && cfg->fd < 0)
        return sw_err_set(err, "log: bad file descriptor %d", cfg->fd);
    if (g_syslog_open) {
        closelog();
        g_syslog_open = false;
    }
    const char *ident = cfg->ident != NULL && cfg->ident[0] != '\0' ? cfg->ident : "spimwall";
    snprintf(g_ident, sizeof(g_ident), "%s", ident);
    g_format = cfg->format;
    g_target = cfg->target;
    g_fd = cfg->fd;
    if (g_target == LOG_TARGET_SYSLOG) {
        openlog(g_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        g_syslog_open = true;
    }
    atomic_store_explicit(&g_level, (int)cfg->level, memory_order_relaxed);
    atomic_store_explicit(&g_debug_mask, cfg->debug_mask, memory_order_relaxed);
    return SW_OK;
}

void log_deinit(void)
{
    if (g_syslog_open) {
        closelog();
        g_syslog_open = false;
    }
    struct log_config cfg;
    log_config_defaults(&cfg);
    log_init(&cfg, NULL);
}

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&g_level, (int)level, memory_order_relaxed);
}

void log_set_debug(uint32_t mask)
{
    atomic_store_explicit(&g_debug_mask, mask, memory_order_relaxed);
}

int log_parse_level(const char *s, enum log_level *level, struct sw_err *err)
{
    for (unsigned i = 0; i <= LOG_LEVEL_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return SW_OK;
        }
    }
    return sw_err_set(err, "unknown log level \"%.32s\" (error, warn, info, debug)", s);
}

int log_parse_debug(const char *list, uint32_t *mask, struct sw_err *err)
{
    uint32_t m = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 3 && memcmp(p, "all", 3) == 0) {
            m |= (1u << LOG_MOD_COUNT) - 1;
        } else if (n > 0) {
            unsigned i;
            for (i = 0; i < LOG_MOD_COUNT; i++)
                if (strlen(module_names[i]) == n && memcmp(p, module_names[i], n) == 0)
                    break;
            if (i == LOG_MOD_COUNT)
                return sw_err_set(err, "unknown log module \"%.*s\"", (int)(n > 32 ? 32 : n), p);
            m |= 1u << i;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    *mask = m;
    return SW_OK;
}

void log_set_clock(log_clock_cb *mono_ms, log_clock_cb *wall_ms)
{
    g_mono = mono_ms != NULL ? mono_ms : real_mono_ms;
    g_wall = wall_ms != NULL ? wall_ms : real_wall_ms;
}

bool log_enabled(enum log_module module, enum log_level level)
{
    if ((int)level <= atomic_load_explicit(&g_level, memory_order_relaxed))
        return true;
    return level == LOG_LEVEL_DEBUG && (unsigned)module < 32 &&
           (atomic_load_explicit(&g_debug_mask, memory_order_relaxed) & (1u << module)) != 0;
}

/* Token bucket. Returns true if the line may go out and sets *suppressed to the lines dropped
 * since the last one that went out. */
static bool site_take(struct log_site *site, uint64_t *suppressed)
{
    *suppressed = 0;
    if (site->rate == 0)
        return true;
    uint64_t burst = site->burst != 0 ? site->burst : site->rate;
    while (atomic_flag_test_and_set_explicit(&site->lock, memory_order_acquire))
        ; /* held for a few instructions only */
    uint64_t now = g_mono();
    if (!site->primed) {
        site->primed = true;
        site->tokens_milli = burst * 1000u;
        site->last_ms = now;
    }
    if (now > site->last_ms) {
        uint64_t add = (now - site->last_ms) * site->rate;
        site->tokens_milli += add;
        if (site->tokens_milli > burst * 1000u)
            site->tokens_milli = burst * 1000u;
        site->last_ms = now;
    }
    bool ok = site->tokens_milli >= 1000u;
    if (ok) {
        site->tokens_milli -= 1000u;
        *suppressed = site->suppressed;
        site->suppressed = 0;
    } else {
        site->suppressed++;
    }
    atomic_flag_clear_explicit(&site->lock, memory_order_release);
    return ok;
}

/* --- line building ----------------------------------------------------------------------- */

/* Room kept at the end of a line for the truncation marker and the terminator. */
#define LINE_RESERVE 64

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool full; /* a field did not fit: nothing more is added */
};

static bool line_putc(struct line *l, char c)
{
    if (l->len + 1 > LOG_LINE_MAX - LINE_RESERVE)
        return false;
    l->buf[l->len++] = c;
    return true;
}

static bool line_puts(struct line *l, const char *s, size_t n)
{
    if (l->len + n > LOG_LINE_MAX - LINE_RESERVE)
        return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

static bool logfmt_needs_quotes(const char *v, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

/* Appends v escaped: JSON string body, or logfmt (quoted when needed). Both escape ", \ and
 * control characters and replace invalid UTF-8 with U+FFFD. */
static bool put_escaped(struct line *l, const char *v, size_t n, bool json)
{
    bool quote = json || logfmt_needs_quotes(v, n);
    if (quote && !line_putc(l, '"'))
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        char esc[8];
        const char *out = NULL;
        size_t on = 0;
        if (c == '"') {
            out = "\\\"";
        } else if (c == '\\') {
            out = "\\\\";
        } else if (c == '\n') {
            out = "\\n";
        } else if (c == '\r') {
            out = "\\r";
        } else if (c == '\t') {
            out = "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            out = esc;
        }
        if (out != NULL) {
            on = strlen(out);
            if (!line_puts(l, out, on))
                return false;
            i++;
            continue;
        }
        size_t u = utf8_len((const unsigned char *)v + i, n - i);
        if (u == 0) {
            if (!line_puts(l, "\\ufffd", 6))
                return false;
            i++;
            continue;
        }
        if (!line_puts(l, v + i, u))
            return false;
        i += u;
    }
    if (quote && !line_putc(l, '"'))
        return false;
    return true;
}

/* Appends one field; on overflow rolls the line back to before the field and marks it full.
 * raw values (numbers) are written as they are. */
static void put_field(struct line *l, const char *key, size_t klen, const char *v, size_t vn,
                      bool raw)
{
    if (l->full)
        return;
    size_t mark = l->len;
    bool json = g_format == LOG_FORMAT_JSON;
    bool ok;
    if (json) {
        ok = (mark == 1 || line_putc(l, ',')) && line_putc(l, '"') && line_puts(l, key, klen) &&
             line_puts(l, "\":", 2);
    } else {
        ok = (mark == 0 || line_putc(l, ' ')) && line_puts(l, key, klen) && line_putc(l, '=');
    }
    if (ok)
        ok = raw ? line_puts(l, v, vn) : put_escaped(l, v, vn, json);
    if (!ok) {
        l->len = mark;
        l->full = true;
    }
}

static void put_u64(struct line *l, const char *key, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    put_field(l, key, strlen(key), tmp, (size_t)n, true);
}

static void put_str(struct line *l, const char *key, const char *v)
{
    put_field(l, key, strlen(key), v, strlen(v), false);
}

/* --- the key=value tail ------------------------------------------------------------------- */

struct value {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void value_add(struct value *v, const char *s, size_t n)
{
    size_t room = sizeof(v->buf) - 1 - v->len;
    if (n > room)
        n = room;
    memcpy(v->buf + v->len, s, n);
    v->len += n;
}

enum conv_kind {
    CONV_LITERAL, /* not a conversion (text, %%) */
    CONV_INT,
    CONV_FLOAT,
    CONV_OTHER, /* string, char, pointer, hex */
};

/* The format is checked by the compiler at every call site (format attribute on log_emit);
 * here each conversion is rebuilt and passed to snprintf alone, hence a non-literal format. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* Formats the conversion at *pp (just after '%') into v, consuming its arguments from ap.
 * Advances *pp past it. Returns the kind of conversion. */
static enum conv_kind format_conv(const char **pp, va_list *ap, struct value *v)
{
    const char *p = *pp;
    char spec[32];
    size_t sn = 0;
    spec[sn++] = '%';
    if (*p == '%') {
        *pp = p + 1;
        value_add(v, "%", 1);
        return CONV_LITERAL;
    }
    while (*p != '\0' && strchr("-+ #0'", *p) != NULL) {
        if (sn < 8)
            spec[sn++] = *p;
        p++;
    }
    if (*p == '*') {
        int w = va_arg(*ap, int);
        sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d",
                               w < -4096  ? -4096
                               : w > 4096 ? 4096
                                          : w);
        p++;
    } else {
        while (*p >= '0' && *p <= '9') {
            if (sn < 16)
                spec[sn++] = *p;
            p++;
        }
    }
    if (*p == '.') {
        spec[sn++] = '.';
        p++;
        if (*p == '*') {
            int pr = va_arg(*ap, int);
            sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d",
                                   pr < 0      ? 0
                                   : pr > 4096 ? 4096
                                               : pr);
            p++;
        } else {
            while (*p >= '0' && *p <= '9') {
                if (sn < 24)
                    spec[sn++] = *p;
                p++;
            }
        }
    }
    enum { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_J, L_T, L_LD } lm = L_NONE;
    if (p[0] == 'h' && p[1] == 'h') {
        lm = L_HH;
        p += 2;
    } else if (p[0] == 'l' && p[1] == 'l') {
        lm = L_LL;
        p += 2;
    } else if (*p == 'h') {
        lm = L_H;
        p++;
    } else if (*p == 'l') {
        lm = L_L;
        p++;
    } else if (*p == 'z') {
        lm = L_Z;
        p++;
    } else if (*p == 'j') {
        lm = L_J;
        p++;
    } else if (*p == 't') {
        lm = L_T;
        p++;
    } else if (*p == 'L') {
        lm = L_LD;
        p++;
    }
    char conv = *p;
    if (conv == '\0') {
        *pp = p;
        return CONV_LITERAL;
    }
    *pp = p + 1;
    char tmp[512];
    int n = 0;
    enum conv_kind kind = CONV_OTHER;
    switch (conv) {
    case 'd':
    case 'i': {
        long long x;
        switch (lm) {
        case L_L:
            x = va_arg(*ap, long);
            break;
        case L_LL:
            x = va_arg(*ap, long long);
            break;
        case L_Z:
            x = va_arg(*ap, ssize_t);
            break;
        case L_J:
            x = va_arg(*ap, intmax_t);
            break;
        case L_T:
            x = va_arg(*ap, ptrdiff_t);
            break;
        case L_HH:
            x = (signed char)va_arg(*ap, int);
            break;
        case L_H:
            x = (short)va_arg(*ap, int);
            break;
        default:
            x = va_arg(*ap, int);
            break;
        }
        memcpy(spec + sn, "lld", 4);
        n = snprintf(tmp, sizeof(tmp), spec, x);
        kind = CONV_INT;
        break;
    }
    case 'u':
    case 'o':
    case 'x':
    case 'X': {
        unsigned long long x;
        switch (lm) {
        case L_L:
            x = va_arg(*ap, unsigned long);
            break;
        case L_LL:
            x = va_arg(*ap, unsigned long long);
            break;
        case L_Z:
            x = va_arg(*ap, size_t);
            break;
        case L_J:
            x = va_arg(*ap, uintmax_t);
            break;
        case L_T:
            x = (unsigned long long)va_arg(*ap, ptrdiff_t);
            break;
        case L_HH:
            x = (unsigned char)va_arg(*ap, unsigned);
            break;
        case L_H:
            x = (unsigned short)va_arg(*ap, unsigned);
            break;
        default:
            x = va_arg(*ap, unsigned);
            break;
        }
        spec[sn] = 'l';
        spec[sn + 1] = 'l';
        spec[sn + 2] = conv;
        spec[sn + 3] = '\0';
        n = snprintf(tmp, sizeof(tmp), spec, x);
        kind = conv == 'u' ? CONV_INT : CONV_OTHER;
        break;
    }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A': {
        double x = lm == L_LD ? (double)va_arg(*ap, long double) : va_arg(*ap, double);
        spec[sn] = conv;
        spec[sn + 1] = '\0';
        n = snprintf(tmp, sizeof(tmp), spec, x);
        /* JSON has no inf or nan */
        kind = (x == x && x - x == 0) && conv != 'a' && conv != 'A' ? CONV_FLOAT : CONV_OTHER;
        break;
    }
    case 'c': {
        int c = va_arg(*ap, int);
        tmp[0] = (char)c;
        n = 1;
        break;
    }
    case 's': {
        const char *s = va_arg(*ap, const char *);
        if (s == NULL)
            s = "(null)";
        if (sn == 1) { /* plain %s: no copy through snprintf, no 512-byte cut */
            value_add(v, s, strlen(s));
            return CONV_OTHER;
        }
        spec[sn] = 's';
        spec[sn + 1] = '\0';
        n = snprintf(tmp, sizeof(tmp), spec, s);
        break;
    }
    case 'p': {
        void *x = va_arg(*ap, void *);
        n = snprintf(tmp, sizeof(tmp), "%p", x);
        break;
    }
    case 'n':
        (void)va_arg(*ap, void *); /* never written: the format is data, not a side channel */
        return CONV_LITERAL;
    default:
        value_add(v, spec, sn);
        value_add(v, &conv, 1);
        return CONV_LITERAL;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    value_add(v, tmp, (size_t)n);
    return kind;
}

#pragma GCC diagnostic pop

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Walks the tail "k1=v1 k2=v2 ..." and appends each field. */
static void put_tail(struct line *l, const char *fmt, va_list *ap)
{
    const char *p = fmt;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        char key[64];
        size_t kn = 0;
        while (*p != '\0' && *p != '=' && *p != ' ') {
            if (kn < sizeof(key))
                key[kn++] = key_char(*p) ? *p : '_';
            p++;
        }
        struct value v;
        v.len = 0;
        unsigned convs = 0, lits = 0;
        enum conv_kind last = CONV_LITERAL;
        if (*p == '=') {
            p++;
            while (*p != '\0' && *p != ' ') {
                if (*p == '%') {
                    p++;
                    enum conv_kind k = format_conv(&p, ap, &v);
                    if (k == CONV_LITERAL) {
                        lits++;
                    } else {
                        convs++;
                        last = k;
                    }
                } else {
                    value_add(&v, p, 1);
                    lits++;
                    p++;
                }
            }
        } else {
            value_add(&v, "true", 4); /* a bare key is a flag */
            convs = 1;
            last = CONV_INT;
        }
        if (kn == 0)
            continue;
        bool raw = g_format == LOG_FORMAT_JSON && convs == 1 && lits == 0 &&
                   (last == CONV_INT || last == CONV_FLOAT);
        put_field(l, key, kn, v.buf, v.len, raw);
    }
}

static void put_ts(struct line *l)
{
    uint64_t ms = g_wall();
    time_t secs = (time_t)(ms / 1000u);
    struct tm tm;
    char ts[80];
    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000u));
    put_str(l, "ts", ts);
}

static void write_line(const char *buf, size_t len, enum log_level level)
{
    if (g_target == LOG_TARGET_SYSLOG) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "%.*s", (int)(len - 1), buf); /* without the newline */
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(g_fd, buf + off, len - off);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report it; logging must not take the proxy down */
        }
        off += (size_t)n;
    }
}

void log_emit(struct log_site *site, enum log_level level, unsigned worker, uint64_t conn,
              const char *event, const char *fmt, ...)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG || !log_enabled(site->module, level))
        return;
    uint64_t suppressed;
    if (!site_take(site, &suppressed))
        return;

    int saved_errno = errno; /* callers often log right after a syscall and then read errno */
    struct line l;
    l.len = 0;
    l.full = false;
    bool json = g_format == LOG_FORMAT_JSON;
    if (json)
        l.buf[l.len++] = '{';
    put_ts(&l);
    put_str(&l, "level", level_names[level]);
    put_u64(&l, "worker", worker);
    put_u64(&l, "conn", conn);
    put_str(&l, "mod", log_module_name(site->module));
    put_str(&l, "event", event != NULL ? event : "unknown");
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        put_tail(&l, fmt, &ap);
        va_end(ap);
    }
    if (suppressed > 0) {
        /* written into the reserve, so even a truncated line reports its drops */
        int n = snprintf(l.buf + l.len, LOG_LINE_MAX - l.len,
                         json ? ",\"suppressed\":%llu" : " suppressed=%llu",
                         (unsigned long long)suppressed);
        if (n > 0)
            l.len += (size_t)n;
    }
    /* the reserve still holds the terminator: suppressed takes at most 34 of its 64 bytes */
    const char *tail;
    if (json)
        tail = l.full ? ",\"truncated\":true}\n" : "}\n";
    else
        tail = l.full ? " truncated=true\n" : "\n";
    size_t tn = strlen(tail);
    memcpy(l.buf + l.len, tail, tn);
    l.len += tn;
    write_line(l.buf, l.len, level);
    errno = saved_errno;
}
