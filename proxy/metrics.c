/* Metrics registry and Prometheus text exposition; see metrics.h for the threading model.
 *
 * Memory layout: one block of cells per writer slot, each block a multiple of 64 bytes and
 * 64-byte aligned, so two threads never write the same cache line:
 *
 *   slot i: [ family cells (sum of card_a * card_b) | scan buckets (+Inf incl.) | scan sum_ns |
 *             rule cells (rule_cap) | rule overflow | padding to 64 B ]
 *
 * Rule ids live in an insert-only open-addressing table of rule_cap = 2 * max_rules (rounded
 * to a power of two) atomic pointers; the position of an id in that table is its cell index.
 * Names are published with a release CAS and read with acquire loads, never freed before
 * metrics_free. */
#include "proxy/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define CELLS_PER_LINE (CACHE_LINE / sizeof(uint64_t))

enum dim {
    DIM_NONE = 0,
    DIM_LISTENER,
    DIM_REJECT,
    DIM_TIMEOUT,
    DIM_DIRECTION,
    DIM_LEG,
    DIM_TLS_REASON,
    DIM_VERDICT,
};

struct family {
    const char *name;
    const char *help;
    const char *type; /* "counter" or "gauge" */
    enum dim a, b;
};

/* The families, as data. Order follows enum metric_id. */
static const struct family families[METRIC_ID_COUNT] = {
    [METRIC_CONNECTIONS_TOTAL] = {"spimwall_connections_total", "Client connections accepted.",
                                  "counter", DIM_LISTENER, DIM_NONE},
    [METRIC_CONNECTIONS_CURRENT] = {"spimwall_connections_current",
                                    "Client connections currently open.", "gauge", DIM_LISTENER,
                                    DIM_NONE},
    [METRIC_CONNECTIONS_REJECTED] = {"spimwall_connections_rejected_total",
                                     "Connections refused or closed before relaying, by reason.",
                                     "counter", DIM_LISTENER, DIM_REJECT},
    [METRIC_TIMEOUTS] = {"spimwall_timeouts_total", "Connections closed by a timeout, by kind.",
                         "counter", DIM_LISTENER, DIM_TIMEOUT},
    [METRIC_BYTES] = {"spimwall_bytes_total", "Bytes relayed, by direction.", "counter",
                      DIM_LISTENER, DIM_DIRECTION},
    [METRIC_TLS_HANDSHAKES] = {"spimwall_tls_handshakes_total", "Completed TLS handshakes, by leg.",
                               "counter", DIM_LISTENER, DIM_LEG},
    [METRIC_TLS_FAILURES] = {"spimwall_tls_handshake_failures_total",
                             "Failed TLS handshakes, by reason.", "counter", DIM_LISTENER,
                             DIM_TLS_REASON},
    [METRIC_PROTOCOL_ERRORS] = {"spimwall_protocol_errors_total",
                                "Sessions closed on a protocol error (XMPP, MSNP).", "counter",
                                DIM_LISTENER, DIM_NONE},
    [METRIC_MESSAGES] = {"spimwall_messages_total", "Messages scanned, by verdict.", "counter",
                         DIM_LISTENER, DIM_VERDICT},
    [METRIC_RELOADS] = {"spimwall_reloads_total", "Successful configuration and rule reloads.",
                        "counter", DIM_NONE, DIM_NONE},
    [METRIC_RELOAD_FAILURES] = {"spimwall_reload_failures_total",
                                "Failed reloads (the previous set stayed in force).", "counter",
                                DIM_NONE, DIM_NONE},
};

static const char *const direction_names[METRICS_DIR_COUNT] = {"client_to_server",
                                                               "server_to_client"};
static const char *const verdict_names[METRICS_VERDICT_COUNT] = {"pass", "tag", "drop"};
static const char *const leg_names[METRICS_LEG_COUNT] = {"client", "upstream"};
static const char *const tls_reason_names[METRICS_TLS_REASON_COUNT] = {
    "timeout", "eof",   "not_tls", "protocol_version", "no_shared_cipher", "unknown_sni",
    "verify",  "alert", "other"};
static const char *const reject_names[METRICS_REJECT_REASON_COUNT] = {
    "global_limit", "per_ip_limit", "proxy_header", "proxy_untrusted", "upstream_down", "draining"};
static const char *const timeout_names[METRICS_TIMEOUT_COUNT] = {"connect", "handshake", "idle"};

static const double scan_bounds[METRICS_SCAN_NBUCKETS] = METRICS_SCAN_BUCKETS;
static const char *const scan_bound_str[METRICS_SCAN_NBUCKETS] = {
    "1e-05",  "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005",   "0.01",  "0.025",  "0.05",    "0.1",    "0.25"};

struct metrics_slot {
    struct metrics *m;
    _Atomic uint64_t *cells;
};

struct metrics {
    unsigned n_writers;
    unsigned n_listeners;
    char **listeners;
    unsigned base[METRIC_ID_COUNT];
    unsigned card_a[METRIC_ID_COUNT], card_b[METRIC_ID_COUNT];
    unsigned scan_base; /* METRICS_SCAN_NBUCKETS + 1 bucket cells, then sum_ns */
    unsigned rule_base; /* rule_cap cells, then the overflow cell */
    unsigned rule_cap;  /* power of two */
    unsigned max_rules;
    size_t stride; /* cells per slot, a multiple of CELLS_PER_LINE */
    _Atomic uint64_t *cells;
    struct metrics_slot *slots;
    _Atomic(char *) *rule_names;
    _Atomic unsigned n_rules;
    uint64_t scan_bound_ns[METRICS_SCAN_NBUCKETS];
    _Atomic int draining;
    metrics_rep_cb *rep_cb;
    void *rep_arg;
};

static unsigned dim_card(const struct metrics *m, enum dim d)
{
    switch (d) {
    case DIM_NONE:
        return 1;
    case DIM_LISTENER:
        return m->n_listeners;
    case DIM_REJECT:
        return METRICS_REJECT_REASON_COUNT;
    case DIM_TIMEOUT:
        return METRICS_TIMEOUT_COUNT;
    case DIM_DIRECTION:
        return METRICS_DIR_COUNT;
    case DIM_LEG:
        return METRICS_LEG_COUNT;
    case DIM_TLS_REASON:
        return METRICS_TLS_REASON_COUNT;
    case DIM_VERDICT:
        return METRICS_VERDICT_COUNT;
    }
    return 1;
}

static const char *dim_label(enum dim d)
{
    switch (d) {
    case DIM_LISTENER:
        return "listener";
    case DIM_REJECT:
    case DIM_TLS_REASON:
        return "reason";
    case DIM_TIMEOUT:
        return "kind";
    case DIM_DIRECTION:
        return "direction";
    case DIM_LEG:
        return "leg";
    case DIM_VERDICT:
        return "verdict";
    case DIM_NONE:
        break;
    }
    return NULL;
}

static const char *dim_value(const struct metrics *m, enum dim d, unsigned i)
{
    switch (d) {
    case DIM_LISTENER:
        return m->listeners[i];
    case DIM_REJECT:
        return reject_names[i];
    case DIM_TIMEOUT:
        return timeout_names[i];
    case DIM_DIRECTION:
        return direction_names[i];
    case DIM_LEG:
        return leg_names[i];
    case DIM_TLS_REASON:
        return tls_reason_names[i];
    case DIM_VERDICT:
        return verdict_names[i];
    case DIM_NONE:
        break;
    }
    return "";
}

struct metrics *metrics_new(unsigned n_writers, const char *const *listeners, unsigned n_listeners,
                            unsigned max_rules, struct sw_err *err)
{
    struct metrics *m = NULL;
    if (n_writers == 0 || n_writers > 4096) {
        sw_err_set(err, "metrics: bad writer count %u", n_writers);
        goto fail;
    }
    if (n_listeners == 0 || listeners == NULL || n_listeners > 4096) {
        sw_err_set(err, "metrics: need between 1 and 4096 listeners");
        goto fail;
    }
    if (max_rules == 0)
        max_rules = METRICS_MAX_RULES_DEFAULT;
    if (max_rules > (1u << 20)) {
        sw_err_set(err, "metrics: max_rules %u too large", max_rules);
        goto fail;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto enomem;
    m->n_writers = n_writers;
    m->n_listeners = n_listeners;
    m->max_rules = max_rules;
    m->listeners = calloc(n_listeners, sizeof(*m->listeners));
    if (m->listeners == NULL)
        goto enomem;
    for (unsigned i = 0; i < n_listeners; i++) {
        if (listeners[i] == NULL) {
            sw_err_set(err, "metrics: listener %u has no name", i);
            goto fail;
        }
        m->listeners[i] = strdup(listeners[i]);
        if (m->listeners[i] == NULL)
            goto enomem;
    }

    unsigned n = 0;
    for (unsigned id = 0; id < METRIC_ID_COUNT; id++) {
        m->base[id] = n;
        m->card_a[id] = dim_card(m, families[id].a);
        m->card_b[id] = dim_card(m, families[id].b);
        n += m->card_a[id] * m->card_b[id];
    }
    m->scan_base = n;
    n += METRICS_SCAN_NBUCKETS + 2;
    m->rule_cap = 1;
    while (m->rule_cap < 2 * max_rules)
        m->rule_cap <<= 1;
    m->rule_base = n;
    n += m->rule_cap + 1;
    m->stride = (n + CELLS_PER_LINE - 1) / CELLS_PER_LINE * CELLS_PER_LINE;
    for (unsigned i = 0; i < METRICS_SCAN_NBUCKETS; i++)
        m->scan_bound_ns[i] = (uint64_t)(scan_bounds[i] * 1e9 + 0.5);

    size_t bytes = m->stride * n_writers * sizeof(uint64_t);
    m->cells = aligned_alloc(CACHE_LINE, bytes);
    if (m->cells == NULL)
        goto enomem;
    for (size_t i = 0; i < m->stride * n_writers; i++)
        atomic_init(&m->cells[i], 0);
    m->slots = calloc(n_writers, sizeof(*m->slots));
    if (m->slots == NULL)
        goto enomem;
    for (unsigned i = 0; i < n_writers; i++) {
        m->slots[i].m = m;
        m->slots[i].cells = m->cells + (size_t)i * m->stride;
    }
    m->rule_names = calloc(m->rule_cap, sizeof(*m->rule_names));
    if (m->rule_names == NULL)
        goto enomem;
    for (unsigned i = 0; i < m->rule_cap; i++)
        atomic_init(&m->rule_names[i], NULL);
    atomic_init(&m->n_rules, 0);
    atomic_init(&m->draining, 0);
    return m;

enomem:
    sw_err_set(err, "metrics: out of memory");
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    if (m->listeners != NULL) {
        for (unsigned i = 0; i < m->n_listeners; i++)
            free(m->listeners[i]);
        free(m->listeners);
    }
    if (m->rule_names != NULL) {
        for (unsigned i = 0; i < m->rule_cap; i++)
            free(atomic_load_explicit(&m->rule_names[i], memory_order_relaxed));
        free(m->rule_names);
    }
    free(m->slots);
    free(m->cells);
    free(m);
}

struct metrics_slot *metrics_slot(struct metrics *m, unsigned i)
{
    if (i >= m->n_writers)
        return NULL;
    return &m->slots[i];
}

const char *metrics_listener_name(const struct metrics *m, unsigned i)
{
    return i < m->n_listeners ? m->listeners[i] : NULL;
}

static void cell_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void metrics_add(struct metrics_slot *s, enum metric_id id, unsigned a, unsigned b, uint64_t n)
{
    const struct metrics *m = s->m;
    if ((unsigned)id >= METRIC_ID_COUNT || a >= m->card_a[id] || b >= m->card_b[id])
        return;
    cell_add(&s->cells[m->base[id] + a * m->card_b[id] + b], n);
}

void metrics_inc(struct metrics_slot *s, enum metric_id id, unsigned a, unsigned b)
{
    metrics_add(s, id, a, b, 1);
}

void metrics_observe_scan(struct metrics_slot *s, uint64_t ns)
{
    const struct metrics *m = s->m;
    unsigned i = 0;
    while (i < METRICS_SCAN_NBUCKETS && ns > m->scan_bound_ns[i])
        i++;
    cell_add(&s->cells[m->scan_base + i], 1);
    cell_add(&s->cells[m->scan_base + METRICS_SCAN_NBUCKETS + 1], ns);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Cell index (relative to rule_base) of id, interning it if new; rule_cap = overflow. */
static unsigned rule_index(struct metrics *m, const char *id)
{
    unsigned mask = m->rule_cap - 1;
    unsigned pos = (unsigned)fnv1a(id) & mask;
    char *mine = NULL;
    for (unsigned probe = 0; probe < m->rule_cap; probe++, pos = (pos + 1) & mask) {
        char *cur = atomic_load_explicit(&m->rule_names[pos], memory_order_acquire);
        if (cur == NULL) {
            if (atomic_load_explicit(&m->n_rules, memory_order_relaxed) >= m->max_rules)
                break;
            if (mine == NULL) {
                mine = strdup(id);
                if (mine == NULL)
                    break;
            }
            char *expected = NULL;
            if (atomic_compare_exchange_strong_explicit(&m->rule_names[pos], &expected, mine,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                atomic_fetch_add_explicit(&m->n_rules, 1, memory_order_relaxed);
                return pos;
            }
            cur = expected; /* another thread took the slot first */
        }
        if (strcmp(cur, id) == 0) {
            free(mine);
            return pos;
        }
    }
    free(mine);
    return m->rule_cap;
}

void metrics_rule_hit(struct metrics_slot *s, const char *rule_id)
{
    struct metrics *m = s->m;
    unsigned i = rule_id != NULL ? rule_index(m, rule_id) : m->rule_cap;
    cell_add(&s->cells[m->rule_base + i], 1);
}

void metrics_set_rep_cb(struct metrics *m, metrics_rep_cb *cb, void *arg)
{
    m->rep_cb = cb;
    m->rep_arg = arg;
}

void metrics_set_draining(struct metrics *m, bool draining)
{
    atomic_store_explicit(&m->draining, draining ? 1 : 0, memory_order_relaxed);
}

/* --- output buffer ----------------------------------------------------------------------- */

void metrics_buf_init(struct metrics_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max != 0 ? max : METRICS_RENDER_MAX_DEFAULT;
}

void metrics_buf_deinit(struct metrics_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Makes room for n more bytes plus a NUL. */
static int buf_reserve(struct metrics_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return SW_OK;
    if (b->len + n + 1 > b->max)
        return SW_ERROR;
    size_t cap = b->cap != 0 ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return SW_ERROR;
    b->data = d;
    b->cap = cap;
    return SW_OK;
}

static int buf_add(struct metrics_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != SW_OK)
        return SW_ERROR;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SW_OK;
}

__attribute__((format(printf, 2, 3))) static int buf_printf(struct metrics_buf *b, const char *fmt,
                                                            ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return SW_ERROR; /* only short fixed-shape fragments go through here */
    return buf_add(b, tmp, (size_t)n);
}

/* Label value escaping of the text format: backslash, double quote and newline. */
static int buf_label_value(struct metrics_buf *b, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        const char *e = NULL;
        if (*p == '\\')
            e = "\\\\";
        else if (*p == '"')
            e = "\\\"";
        else if (*p == '\n')
            e = "\\n";
        if (e != NULL ? buf_add(b, e, 2) : buf_add(b, p, 1))
            return SW_ERROR;
    }
    return SW_OK;
}

static int header(struct metrics_buf *b, const char *name, const char *help, const char *type)
{
    if (buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) != SW_OK)
        return SW_ERROR;
    return SW_OK;
}

static uint64_t sum_cell(const struct metrics *m, size_t idx)
{
    uint64_t v = 0;
    for (unsigned w = 0; w < m->n_writers; w++)
        v += atomic_load_explicit(&m->cells[(size_t)w * m->stride + idx], memory_order_relaxed);
    return v;
}

static int render_family(const struct metrics *m, unsigned id, struct metrics_buf *b)
{
    const struct family *f = &families[id];
    bool gauge = strcmp(f->type, "gauge") == 0;
    if (header(b, f->name, f->help, f->type) != SW_OK)
        return SW_ERROR;
    for (unsigned a = 0; a < m->card_a[id]; a++) {
        for (unsigned bb = 0; bb < m->card_b[id]; bb++) {
            uint64_t v = sum_cell(m, m->base[id] + a * m->card_b[id] + bb);
            if (buf_add(b, f->name, strlen(f->name)) != SW_OK)
                return SW_ERROR;
            if (f->a != DIM_NONE) {
                if (buf_printf(b, "{%s=\"", dim_label(f->a)) != SW_OK ||
                    buf_label_value(b, dim_value(m, f->a, a)) != SW_OK)
                    return SW_ERROR;
                if (f->b != DIM_NONE && (buf_printf(b, "\",%s=\"", dim_label(f->b)) != SW_OK ||
                                         buf_label_value(b, dim_value(m, f->b, bb)) != SW_OK))
                    return SW_ERROR;
                if (buf_add(b, "\"}", 2) != SW_OK)
                    return SW_ERROR;
            }
            int rc = gauge ? buf_printf(b, " %" PRId64 "\n", (int64_t)v)
                           : buf_printf(b, " %" PRIu64 "\n", v);
            if (rc != SW_OK)
                return SW_ERROR;
        }
    }
    return SW_OK;
}

static int render_scan(const struct metrics *m, struct metrics_buf *b)
{
    const char *name = "spimwall_scan_duration_seconds";
    if (header(b, name, "Time to scan one message.", "histogram") != SW_OK)
        return SW_ERROR;
    uint64_t cum = 0;
    for (unsigned i = 0; i <= METRICS_SCAN_NBUCKETS; i++) {
        cum += sum_cell(m, m->scan_base + i);
        const char *le = i < METRICS_SCAN_NBUCKETS ? scan_bound_str[i] : "+Inf";
        if (buf_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cum) != SW_OK)
            return SW_ERROR;
    }
    uint64_t sum_ns = sum_cell(m, m->scan_base + METRICS_SCAN_NBUCKETS + 1);
    /* _count is the +Inf bucket, so the two always agree even mid-update */
    if (buf_printf(b, "%s_sum %" PRIu64 ".%09" PRIu64 "\n%s_count %" PRIu64 "\n", name,
                   sum_ns / 1000000000u, sum_ns % 1000000000u, name, cum) != SW_OK)
        return SW_ERROR;
    return SW_OK;
}

static int render_rules(struct metrics *m, struct metrics_buf *b)
{
    const char *name = "spimwall_rule_hits_total";
    if (header(b, name, "Messages matched, by rule or signal id.", "counter") != SW_OK)
        return SW_ERROR;
    for (unsigned i = 0; i <= m->rule_cap; i++) {
        const char *id;
        if (i < m->rule_cap) {
            id = atomic_load_explicit(&m->rule_names[i], memory_order_acquire);
            if (id == NULL)
                continue;
        } else {
            id = "_other";
        }
        uint64_t v = sum_cell(m, m->rule_base + i);
        if (i == m->rule_cap && v == 0)
            continue;
        if (buf_printf(b, "%s{rule=\"", name) != SW_OK || buf_label_value(b, id) != SW_OK ||
            buf_printf(b, "\"} %" PRIu64 "\n", v) != SW_OK)
            return SW_ERROR;
    }
    return SW_OK;
}

static int render_rep(struct metrics *m, struct metrics_buf *b)
{
    if (m->rep_cb == NULL)
        return SW_OK;
    struct metrics_rep_stats st;
    memset(&st, 0, sizeof(st));
    m->rep_cb(m->rep_arg, &st);
    const struct {
        const char *name, *help, *type;
        uint64_t v;
    } rows[] = {
        {"spimwall_reputation_capacity", "Entries the reputation cache can hold.", "gauge",
         st.capacity},
        {"spimwall_reputation_entries", "Entries in use in the reputation cache.", "gauge",
         st.entries},
        {"spimwall_reputation_bytes", "Memory held by the reputation cache.", "gauge", st.bytes},
        {"spimwall_reputation_hits_total", "Reputation cache lookups that found an entry.",
         "counter", st.hits},
        {"spimwall_reputation_misses_total", "Reputation cache lookups that found none.", "counter",
         st.misses},
        {"spimwall_reputation_evictions_total", "Reputation cache entries evicted.", "counter",
         st.evictions},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (header(b, rows[i].name, rows[i].help, rows[i].type) != SW_OK ||
            buf_printf(b, "%s %" PRIu64 "\n", rows[i].name, rows[i].v) != SW_OK)
            return SW_ERROR;
    }
    return SW_OK;
}

int metrics_render(struct metrics *m, struct metrics_buf *b)
{
#ifdef SW_VERSION
    if (header(b, "spimwall_build_info", "Build information.", "gauge") != SW_OK ||
        buf_printf(b, "spimwall_build_info{version=\"%s\"} 1\n", SW_VERSION) != SW_OK)
        return SW_ERROR;
#endif
    for (unsigned id = 0; id < METRIC_ID_COUNT; id++)
        if (render_family(m, id, b) != SW_OK)
            return SW_ERROR;
    if (render_scan(m, b) != SW_OK || render_rules(m, b) != SW_OK || render_rep(m, b) != SW_OK)
        return SW_ERROR;
    if (header(b, "spimwall_draining", "1 while the proxy drains before exit.", "gauge") != SW_OK ||
        buf_printf(b, "spimwall_draining %d\n",
                   atomic_load_explicit(&m->draining, memory_order_relaxed)) != SW_OK)
        return SW_ERROR;
    return SW_OK;
}
