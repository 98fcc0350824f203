/* Configuration parsing with libconfig; see config.h and docs/config.md.
 *
 * Parsing is table-free but uniform: each group lists its allowed keys (check_keys), and each
 * scalar goes through one typed getter that checks type and range and reports file:line. */
#include "proxy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <openssl/tls1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "matcher/hsdb.h"
#include "protocols/msnp/msnp_oim.h"
#include "proxy/admin.h"

/* The parse context: where errors are reported. */
struct cfg_ctx {
    const char *file; /* default file name when a setting has none */
    struct sw_err *err;
};

__attribute__((format(printf, 3, 4))) static int
cfg_fail(struct cfg_ctx *cx, const config_setting_t *s, const char *fmt, ...)
{
    char reason[SW_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    const char *file = s != NULL ? config_setting_source_file(s) : NULL;
    int line = s != NULL ? (int)config_setting_source_line(s) : 0;
    if (file == NULL)
        file = cx->file;
    const char *name = s != NULL ? config_setting_name(s) : NULL;
    if (name != NULL)
        return sw_err_set(cx->err, "%s:%d: %s: %s", file, line, name, reason);
    return sw_err_set(cx->err, "%s:%d: %s", file, line, reason);
}

static int check_keys(struct cfg_ctx *cx, const config_setting_t *grp, const char *const *allowed)
{
    if (config_setting_type(grp) != CONFIG_TYPE_GROUP)
        return cfg_fail(cx, grp, "must be a group { ... }");
    int n = config_setting_length(grp);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
        const char *name = config_setting_name(s);
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(*a, name) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return cfg_fail(cx, s, "unknown option");
    }
    return SW_OK;
}

static int get_string(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, char **out)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL)
        return SW_OK;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(cx, s, "must be a string");
    char *v = strdup(config_setting_get_string(s));
    if (v == NULL)
        return cfg_fail(cx, s, "out of memory");
    free(*out);
    *out = v;
    return SW_OK;
}

static int get_u64(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, uint64_t *out,
                   uint64_t min, uint64_t max)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL)
        return SW_OK;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return cfg_fail(cx, s, "must be an integer");
    long long v = config_setting_get_int64(s);
    if (v < 0 || (uint64_t)v < min || (uint64_t)v > max)
        return cfg_fail(cx, s, "%lld is out of range %llu..%llu", v, (unsigned long long)min,
                        (unsigned long long)max);
    *out = (uint64_t)v;
    return SW_OK;
}

static int get_uint(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, unsigned *out,
                    unsigned min, unsigned max)
{
    uint64_t v = *out;
    if (get_u64(cx, grp, key, &v, min, max) != SW_OK)
        return SW_ERROR;
    *out = (unsigned)v;
    return SW_OK;
}

static int get_double(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, double *out,
                      double min, double max)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL)
        return SW_OK;
    double v;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else
        return cfg_fail(cx, s, "must be a number");
    if (!(v >= min && v <= max))
        return cfg_fail(cx, s, "%g is out of range %g..%g", v, min, max);
    *out = v;
    return SW_OK;
}

static int get_bool(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, bool *out)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL)
        return SW_OK;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return cfg_fail(cx, s, "must be true or false");
    *out = config_setting_get_bool(s) != 0;
    return SW_OK;
}

/* Looks up a string among names[]; sets *out to its index. */
static int get_enum(struct cfg_ctx *cx, const config_setting_t *grp, const char *key,
                    const char *const *names, int *out)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL)
        return SW_OK;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(cx, s, "must be a string");
    const char *v = config_setting_get_string(s);
    char allowed[256] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], v) == 0) {
            *out = i;
            return SW_OK;
        }
        size_t l = strlen(allowed);
        snprintf(allowed + l, sizeof(allowed) - l, "%s%s", i > 0 ? " | " : "", names[i]);
    }
    return cfg_fail(cx, s, "\"%s\" is not one of %s", v, allowed);
}

int config_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                      struct sw_err *err)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return sw_err_set(err, "\"%s\": expected [ipv6]:port", s);
        hl = (size_t)(close - s - 1);
        if (hl >= sizeof(host))
            return sw_err_set(err, "\"%s\": bad address", s);
        memcpy(host, s + 1, hl);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return sw_err_set(err, "\"%s\": expected host:port", s);
        hl = (size_t)(colon - s);
        if (hl >= sizeof(host))
            return sw_err_set(err, "\"%s\": bad address", s);
        memcpy(host, s, hl);
        port = colon + 1;
    }
    host[hl] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(port, &end, 10);
    if (port[0] < '0' || port[0] > '9' || *end != '\0' || errno != 0 || p > 65535)
        return sw_err_set(err, "\"%s\": bad port", s);
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        *len = sizeof(*in4);
        return SW_OK;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
        return SW_OK;
    }
    return sw_err_set(err, "\"%s\": host must be a numeric IPv4 or IPv6 address", s);
}

static int parse_cidr(const char *s, struct config_cidr *c, struct sw_err *err)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t hl = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (hl >= sizeof(host))
        return sw_err_set(err, "\"%s\": bad CIDR", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(c, 0, sizeof(*c));
    unsigned max;
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return sw_err_set(err, "\"%s\": not an IPv4 or IPv6 address", s);
    }
    c->prefix = max;
    if (slash != NULL) {
        char *end = NULL;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || p > max)
            return sw_err_set(err, "\"%s\": bad prefix length", s);
        c->prefix = (unsigned)p;
    }
    for (unsigned bit = c->prefix; bit < max; bit++)
        c->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    return SW_OK;
}

bool config_cidr_match(const struct config_cidr *cidrs, unsigned n, const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        fam = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(a, a6->s6_addr + 12, 4);
            fam = AF_INET;
        } else {
            memcpy(a, a6->s6_addr, 16);
            fam = AF_INET6;
        }
    } else {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct config_cidr *c = &cidrs[i];
        if (c->family != fam)
            continue;
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(a, c->addr, full) != 0)
            continue;
        if (rest != 0 && ((a[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) != 0)
            continue;
        return true;
    }
    return false;
}

static int get_addr(struct cfg_ctx *cx, const config_setting_t *grp, const char *key, char **text,
                    struct sockaddr_storage *ss, socklen_t *len, bool required)
{
    const config_setting_t *s = config_setting_get_member(grp, key);
    if (s == NULL) {
        if (required)
            return cfg_fail(cx, grp, "missing required option \"%s\"", key);
        return SW_OK;
    }
    if (get_string(cx, grp, key, text) != SW_OK)
        return SW_ERROR;
    struct sw_err e;
    if (config_parse_addr(*text, ss, len, &e) != SW_OK)
        return cfg_fail(cx, s, "%s", e.msg);
    return SW_OK;
}

static const char *const proto_names[] = {"tcp", "xmpp-c2s", "xmpp-s2s", "msnp", NULL};
static const char *const tls_mode_names[] = {"none", "starttls", "direct", NULL};

const char *config_proto_name(enum config_proto p)
{
    return (unsigned)p < 4 ? proto_names[p] : "?";
}

const char *config_tls_mode_name(enum config_tls_mode m)
{
    return (unsigned)m < 3 ? tls_mode_names[m] : "?";
}

static const char *const limits_global_keys[] = {"max_connections", "per_ip_table",   "max_per_ip",
                                                 "buffer_size",     "high_watermark", NULL};
static const char *const limits_listener_keys[] = {"max_per_ip", "buffer_size", "high_watermark",
                                                   NULL};
static const char *const timeouts_keys[] = {"connect", "handshake", "idle", NULL};

static int parse_limits(struct cfg_ctx *cx, const config_setting_t *g, struct config_limits *l,
                        bool hw_given_before)
{
    uint64_t bs = l->buffer_size, hw = l->high_watermark;
    bool hw_set = config_setting_get_member(g, "high_watermark") != NULL;
    if (get_uint(cx, g, "max_per_ip", &l->max_per_ip, 0, 10000000) != SW_OK ||
        get_u64(cx, g, "buffer_size", &bs, 2048, 16u << 20) != SW_OK ||
        get_u64(cx, g, "high_watermark", &hw, 1, 16u << 20) != SW_OK)
        return SW_ERROR;
    /* The watermark follows the buffer size unless set explicitly somewhere. */
    if (!hw_set && !hw_given_before)
        hw = bs;
    if (hw > bs)
        return cfg_fail(cx, config_setting_get_member(g, hw_set ? "high_watermark" : "buffer_size"),
                        "high_watermark (%llu) exceeds buffer_size (%llu)", (unsigned long long)hw,
                        (unsigned long long)bs);
    l->buffer_size = (uint32_t)bs;
    l->high_watermark = (uint32_t)hw;
    return SW_OK;
}

static int parse_timeouts(struct cfg_ctx *cx, const config_setting_t *g, struct config_timeouts *t)
{
    if (check_keys(cx, g, timeouts_keys) != SW_OK ||
        get_double(cx, g, "connect", &t->connect, 0.01, 3600) != SW_OK ||
        get_double(cx, g, "handshake", &t->handshake, 0.01, 3600) != SW_OK ||
        get_double(cx, g, "idle", &t->idle, 0.01, 7 * 86400) != SW_OK)
        return SW_ERROR;
    return SW_OK;
}

static int parse_string_array(struct cfg_ctx *cx, const config_setting_t *s, char ***out,
                              unsigned *n, unsigned max)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return cfg_fail(cx, s, "must be a list of strings [\"...\", ...]");
    int len = config_setting_length(s);
    if ((unsigned)len > max)
        return cfg_fail(cx, s, "more than %u entries", max);
    *out = calloc((size_t)len + 1, sizeof(char *));
    if (*out == NULL)
        return cfg_fail(cx, s, "out of memory");
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return cfg_fail(cx, s, "entry %d must be a string", i);
        (*out)[i] = strdup(config_setting_get_string(e));
        if ((*out)[i] == NULL)
            return cfg_fail(cx, s, "out of memory");
        *n = (unsigned)i + 1;
    }
    return SW_OK;
}

static const char *const cert_keys[] = {"names", "cert", "key", NULL};
static const char *const upstream_keys[] = {"address", "tls",         "starttls",   "verify",
                                            "ca_file", "server_name", "send_proxy", NULL};
static const char *const threshold_keys[] = {"tag", "drop", NULL};
static const char *const listener_keys[] = {
    "name",   "protocol", "bind",       "tls",     "certificates", "proxy_protocol", "upstream",
    "limits", "timeouts", "thresholds", "actions", "xmpp",         "msnp",           NULL};
static const char *const action_keys[] = {"tag",         "drop",       "bounce",
                                          "bounce_text", "tag_prefix", NULL};
static const char *const xmpp_keys[] = {
    "stanza_max",    "depth_max",           "roster_max", "sm_resume_max",
    "sm_resume_ttl", "judge_local_inbound", NULL};
static const char *const action_names[] = {"pass", "tag", "drop", NULL};
static const char *const msnp_keys[] = {"role",
                                        "mode",
                                        "switchboard",
                                        "line_max",
                                        "payload_max",
                                        "drop_ack",
                                        "tag_overflow",
                                        "cookie_max",
                                        "cookie_ttl",
                                        "chunks_max",
                                        "oim_entries_max",
                                        "oim_field_max",
                                        "resolve_timeout",
                                        NULL};
static const char *const msnp_role_names[] = {"ns", "sb", NULL};
static const char *const msnp_mode_names[] = {"explicit", "transparent", NULL};
static const char *const msnp_ack_names[] = {"nak", "ack", NULL};
static const char *const msnp_overflow_names[] = {"pass", "drop", NULL};

static int parse_msnp(struct cfg_ctx *cx, const config_setting_t *s, struct config_msnp *m)
{
    int role = (int)m->role, mode = m->transparent, ack = (int)m->drop_ack,
        ovf = m->tag_overflow_drop;
    unsigned line_max = m->line_max, payload_max = m->payload_max;
    if (check_keys(cx, s, msnp_keys) != SW_OK ||
        get_enum(cx, s, "role", msnp_role_names, &role) != SW_OK ||
        get_enum(cx, s, "mode", msnp_mode_names, &mode) != SW_OK ||
        get_string(cx, s, "switchboard", &m->switchboard) != SW_OK ||
        get_uint(cx, s, "line_max", &line_max, 256, 65536) != SW_OK ||
        get_uint(cx, s, "payload_max", &payload_max, 1664, 16u << 20) != SW_OK ||
        get_enum(cx, s, "drop_ack", msnp_ack_names, &ack) != SW_OK ||
        get_enum(cx, s, "tag_overflow", msnp_overflow_names, &ovf) != SW_OK ||
        get_uint(cx, s, "cookie_max", &m->cookie_max, 16, 1u << 22) != SW_OK ||
        get_double(cx, s, "cookie_ttl", &m->cookie_ttl, 1, 86400) != SW_OK ||
        get_uint(cx, s, "chunks_max", &m->chunks_max, 1, 1024) != SW_OK ||
        get_uint(cx, s, "oim_entries_max", &m->oim_entries_max, 1, MSNP_OIM_ENTRIES_CAP) != SW_OK ||
        get_uint(cx, s, "oim_field_max", &m->oim_field_max, 16, MSNP_OIM_FIELD_MAX_LIMIT) !=
            SW_OK ||
        get_double(cx, s, "resolve_timeout", &m->resolve_timeout, 0.1, 60) != SW_OK)
        return SW_ERROR;
    m->role = (enum config_msnp_role)role;
    m->transparent = mode == 1;
    m->drop_ack = (enum config_msnp_ack)ack;
    m->tag_overflow_drop = ovf == 1;
    m->line_max = line_max;
    m->payload_max = payload_max;
    if (m->switchboard != NULL) {
        struct sockaddr_storage ss;
        socklen_t sl;
        struct sw_err e;
        if (config_parse_addr(m->switchboard, &ss, &sl, &e) != SW_OK)
            return cfg_fail(cx, config_setting_get_member(s, "switchboard"), "%s", e.msg);
    }
    if (m->role == CONFIG_MSNP_NS && !m->transparent && m->switchboard == NULL)
        return cfg_fail(cx, config_setting_get_member(s, "role"),
                        "role ns in explicit mode needs switchboard = \"host:port\" "
                        "(the address of the sb listener, written into XFR and RNG)");
    return SW_OK;
}

static int parse_actions(struct cfg_ctx *cx, const config_setting_t *s, struct config_actions *a)
{
    int on_tag = (int)a->on_tag, on_drop = (int)a->on_drop;
    if (check_keys(cx, s, action_keys) != SW_OK ||
        get_enum(cx, s, "tag", action_names, &on_tag) != SW_OK ||
        get_enum(cx, s, "drop", action_names, &on_drop) != SW_OK ||
        get_bool(cx, s, "bounce", &a->bounce) != SW_OK ||
        get_string(cx, s, "bounce_text", &a->bounce_text) != SW_OK ||
        get_string(cx, s, "tag_prefix", &a->tag_prefix) != SW_OK)
        return SW_ERROR;
    if (on_tag == CONFIG_ACTION_DROP)
        return cfg_fail(cx, config_setting_get_member(s, "tag"),
                        "a tag verdict can be \"tag\" or \"pass\", not \"drop\"");
    a->on_tag = (enum config_action)on_tag;
    a->on_drop = (enum config_action)on_drop;
    if (a->bounce_text != NULL && strlen(a->bounce_text) > CONFIG_BOUNCE_TEXT_MAX)
        return cfg_fail(cx, config_setting_get_member(s, "bounce_text"), "longer than %d bytes",
                        CONFIG_BOUNCE_TEXT_MAX);
    if (a->tag_prefix != NULL && strlen(a->tag_prefix) > CONFIG_TAG_PREFIX_MAX)
        return cfg_fail(cx, config_setting_get_member(s, "tag_prefix"), "longer than %d bytes",
                        CONFIG_TAG_PREFIX_MAX);
    return SW_OK;
}

static int parse_xmpp(struct cfg_ctx *cx, const config_setting_t *s, struct config_xmpp *x)
{
    unsigned stanza_max = x->stanza_max;
    if (check_keys(cx, s, xmpp_keys) != SW_OK ||
        get_uint(cx, s, "stanza_max", &stanza_max, 4096, 64u << 20) != SW_OK ||
        get_uint(cx, s, "depth_max", &x->depth_max, 2, 64) != SW_OK ||
        get_uint(cx, s, "roster_max", &x->roster_max, 0, 1u << 20) != SW_OK ||
        get_uint(cx, s, "sm_resume_max", &x->sm_resume_max, 16, 1u << 22) != SW_OK ||
        get_double(cx, s, "sm_resume_ttl", &x->sm_resume_ttl, 1, 86400) != SW_OK ||
        get_bool(cx, s, "judge_local_inbound", &x->judge_local_inbound) != SW_OK)
        return SW_ERROR;
    if ((x->sm_resume_max & (x->sm_resume_max - 1)) != 0)
        return cfg_fail(cx, config_setting_get_member(s, "sm_resume_max"), "must be a power of 2");
    x->stanza_max = stanza_max;
    return SW_OK;
}

static int parse_certs(struct cfg_ctx *cx, const config_setting_t *s, struct config_listener *l)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return cfg_fail(cx, s, "must be a list ( { names = [...]; cert = ...; key = ...; } )");
    int n = config_setting_length(s);
    if (n > CONFIG_MAX_CERTS)
        return cfg_fail(cx, s, "more than %d certificates", CONFIG_MAX_CERTS);
    l->certs = calloc((size_t)n + 1, sizeof(*l->certs));
    if (l->certs == NULL)
        return cfg_fail(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        struct config_cert *c = &l->certs[i];
        l->n_certs = (unsigned)i + 1;
        c->line = (int)config_setting_source_line(g);
        if (check_keys(cx, g, cert_keys) != SW_OK || get_string(cx, g, "cert", &c->cert) ||
            get_string(cx, g, "key", &c->key) != SW_OK)
            return SW_ERROR;
        if (c->cert == NULL || c->key == NULL)
            return cfg_fail(cx, g, "a certificate needs both cert and key");
        const config_setting_t *names = config_setting_get_member(g, "names");
        if (names != NULL &&
            parse_string_array(cx, names, &c->names, &c->n_names, CONFIG_MAX_NAMES) != SW_OK)
            return SW_ERROR;
    }
    return SW_OK;
}

/* True for an msnp switchboard listener in explicit mode: its upstream comes from cookies. */
static bool msnp_sb_explicit(const config_setting_t *g, const struct config_listener *l)
{
    const config_setting_t *m = config_setting_get_member(g, "msnp");
    const char *role = NULL, *mode = NULL;
    if (l->proto != CONFIG_PROTO_MSNP || m == NULL ||
        !config_setting_lookup_string(m, "role", &role) || strcmp(role, "sb") != 0)
        return false;
    return !config_setting_lookup_string(m, "mode", &mode) || strcmp(mode, "transparent") != 0;
}

/* The upstream group s of listener l. */
static int parse_upstream(struct cfg_ctx *cx, const config_setting_t *s, struct config_listener *l)
{
    struct config_upstream *u = &l->upstream;
    if (check_keys(cx, s, upstream_keys) != SW_OK ||
        get_addr(cx, s, "address", &u->address, &u->addr, &u->addr_len, true) != SW_OK ||
        get_bool(cx, s, "tls", &u->tls) != SW_OK ||
        get_bool(cx, s, "starttls", &u->starttls) != SW_OK ||
        get_bool(cx, s, "verify", &u->verify) ||
        get_string(cx, s, "ca_file", &u->ca_file) != SW_OK ||
        get_string(cx, s, "server_name", &u->server_name) != SW_OK ||
        get_bool(cx, s, "send_proxy", &u->send_proxy) != SW_OK)
        return SW_ERROR;
    if (u->tls && u->starttls)
        return cfg_fail(cx, config_setting_get_member(s, "starttls"),
                        "tls and starttls exclude each other");
    if (u->starttls && l->proto != CONFIG_PROTO_XMPP_C2S)
        return cfg_fail(cx, config_setting_get_member(s, "starttls"),
                        "starttls needs a protocol that has it (xmpp-c2s)");
    if (!u->tls && !u->starttls && (u->ca_file != NULL || u->server_name != NULL))
        return cfg_fail(cx, s, "ca_file and server_name need tls = true or starttls = true");
    if ((u->tls || u->starttls) && u->server_name == NULL) {
        /* default expected name: the host part of the address */
        const char *a = u->address;
        const char *c = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
        size_t n = (size_t)(c - a) - (a[0] == '[' ? 1 : 0);
        u->server_name = strndup(a + (a[0] == '[' ? 1 : 0), n);
        if (u->server_name == NULL)
            return cfg_fail(cx, s, "out of memory");
    }
    return SW_OK;
}

static int parse_listener(struct cfg_ctx *cx, struct config *cfg, const config_setting_t *g,
                          struct config_listener *l, const struct config_limits *dlim,
                          const struct config_timeouts *dto, bool hw_given)
{
    l->line = (int)config_setting_source_line(g);
    l->limits = *dlim;
    l->timeouts = *dto;
    l->tag_threshold = cfg->matcher.tag_threshold;
    l->drop_threshold = cfg->matcher.drop_threshold;
    l->upstream.verify = true;
    l->actions.on_tag = CONFIG_ACTION_TAG;
    l->actions.on_drop = CONFIG_ACTION_DROP;
    l->actions.bounce = true;
    l->xmpp.stanza_max = 262144;
    l->xmpp.depth_max = 32;
    l->xmpp.roster_max = 2048;
    l->xmpp.sm_resume_max = 8192;
    l->xmpp.sm_resume_ttl = 900;
    l->msnp.line_max = 8192;
    l->msnp.payload_max = 65536;
    l->msnp.tag_overflow_drop = true;
    l->msnp.cookie_max = 65536;
    l->msnp.cookie_ttl = 120;
    l->msnp.chunks_max = 16;
    l->msnp.oim_entries_max = MSNP_OIM_ENTRIES_MAX_DEFAULT;
    l->msnp.oim_field_max = MSNP_OIM_FIELD_MAX_DEFAULT;
    l->msnp.resolve_timeout = 5;
    int proto = 0, tls = 0;
    if (check_keys(cx, g, listener_keys) != SW_OK || get_string(cx, g, "name", &l->name) ||
        get_enum(cx, g, "protocol", proto_names, &proto) != SW_OK ||
        get_enum(cx, g, "tls", tls_mode_names, &tls) != SW_OK ||
        get_addr(cx, g, "bind", &l->bind, &l->addr, &l->addr_len, true) != SW_OK)
        return SW_ERROR;
    if (l->name == NULL)
        return cfg_fail(cx, g, "listener: missing required option \"name\"");
    if (l->name[0] == '\0' || strlen(l->name) > 64)
        return cfg_fail(cx, config_setting_get_member(g, "name"), "must be 1..64 characters");
    const config_setting_t *ps = config_setting_get_member(g, "protocol");
    if (ps == NULL)
        return cfg_fail(cx, g, "listener %s: missing required option \"protocol\"", l->name);
    l->proto = (enum config_proto)proto;
    l->tls = (enum config_tls_mode)tls;
    if (l->proto == CONFIG_PROTO_XMPP_S2S)
        return cfg_fail(cx, ps, "protocol %s is not implemented yet", proto_names[proto]);
    if (l->tls == CONFIG_TLS_STARTTLS && l->proto == CONFIG_PROTO_TCP)
        return cfg_fail(cx, config_setting_get_member(g, "tls"),
                        "starttls needs a protocol that has it; tcp accepts none | direct");

    const config_setting_t *s = config_setting_get_member(g, "certificates");
    if (s != NULL && parse_certs(cx, s, l) != SW_OK)
        return SW_ERROR;
    if (l->tls != CONFIG_TLS_NONE && l->n_certs == 0)
        return cfg_fail(cx, s != NULL ? s : g, "listener %s: tls = \"%s\" needs certificates",
                        l->name, tls_mode_names[tls]);
    if (l->tls == CONFIG_TLS_NONE && l->n_certs > 0)
        return cfg_fail(cx, s, "listener %s has certificates but tls = \"none\"", l->name);

    s = config_setting_get_member(g, "proxy_protocol");
    if (s != NULL) {
        char **list = NULL;
        unsigned n = 0;
        int rc = parse_string_array(cx, s, &list, &n, CONFIG_MAX_CIDRS);
        if (rc == SW_OK) {
            l->proxy_from = calloc((size_t)n + 1, sizeof(*l->proxy_from));
            if (l->proxy_from == NULL)
                rc = cfg_fail(cx, s, "out of memory");
        }
        for (unsigned i = 0; rc == SW_OK && i < n; i++) {
            struct sw_err e;
            if (parse_cidr(list[i], &l->proxy_from[i], &e) != SW_OK)
                rc = cfg_fail(cx, s, "%s", e.msg);
            else
                l->n_proxy_from = i + 1;
        }
        for (unsigned i = 0; list != NULL && i < n; i++)
            free(list[i]);
        free(list);
        if (rc != SW_OK)
            return SW_ERROR;
    }

    s = config_setting_get_member(g, "upstream");
    if (s == NULL && !msnp_sb_explicit(g, l))
        return cfg_fail(cx, g, "listener %s: missing required group \"upstream\"", l->name);
    if (s != NULL && parse_upstream(cx, s, l) != SW_OK)
        return SW_ERROR;

    s = config_setting_get_member(g, "limits");
    if (s != NULL && (check_keys(cx, s, limits_listener_keys) != SW_OK ||
                      parse_limits(cx, s, &l->limits, hw_given) != SW_OK))
        return SW_ERROR;
    s = config_setting_get_member(g, "timeouts");
    if (s != NULL && parse_timeouts(cx, s, &l->timeouts) != SW_OK)
        return SW_ERROR;
    s = config_setting_get_member(g, "thresholds");
    if (s != NULL) {
        if (check_keys(cx, s, threshold_keys) != SW_OK ||
            get_double(cx, s, "tag", &l->tag_threshold, -1e6, 1e6) != SW_OK ||
            get_double(cx, s, "drop", &l->drop_threshold, -1e6, 1e6) != SW_OK)
            return SW_ERROR;
        if (!(l->tag_threshold < l->drop_threshold))
            return cfg_fail(cx, s, "tag (%g) must be below drop (%g)", l->tag_threshold,
                            l->drop_threshold);
    }
    s = config_setting_get_member(g, "actions");
    if (s != NULL && parse_actions(cx, s, &l->actions) != SW_OK)
        return SW_ERROR;
    s = config_setting_get_member(g, "xmpp");
    if (s != NULL) {
        if (l->proto != CONFIG_PROTO_XMPP_C2S && l->proto != CONFIG_PROTO_XMPP_S2S)
            return cfg_fail(cx, s, "listener %s: xmpp options need an xmpp protocol", l->name);
        if (parse_xmpp(cx, s, &l->xmpp) != SW_OK)
            return SW_ERROR;
    }
    s = config_setting_get_member(g, "msnp");
    if (s != NULL && l->proto != CONFIG_PROTO_MSNP)
        return cfg_fail(cx, s, "listener %s: msnp options need protocol msnp", l->name);
    if (l->proto == CONFIG_PROTO_MSNP && s != NULL && parse_msnp(cx, s, &l->msnp) != SW_OK)
        return SW_ERROR;
    if (l->proto == CONFIG_PROTO_MSNP && s == NULL)
        return cfg_fail(cx, g, "listener %s: protocol msnp needs an msnp group (role, ...)",
                        l->name);
    if (l->proto == CONFIG_PROTO_XMPP_C2S && l->limits.buffer_size < 4096)
        return cfg_fail(cx, g, "listener %s: xmpp-c2s needs buffer_size >= 4096", l->name);
    return SW_OK;
}

static const char *const top_keys[] = {
    "workers", "user",       "group", "shutdown_grace", "limits", "timeouts", "admin", "log",
    "matcher", "reputation", "tls",   "listeners",      NULL};
static const char *const admin_keys[] = {"enabled", "bind", NULL};
static const char *const log_keys[] = {"level", "format", "target", "debug", NULL};
static const char *const matcher_keys[] = {
    "rules_dir", "lists_dir", "cache",       "tag_threshold", "drop_threshold", "max_urls",
    "max_text",  "url_arena", "field_cache", "domain_cache",  "databases",      NULL};

static const char *const rep_keys[] = {"enabled", "max_bytes", "shards", "window", NULL};
static const char *const tls_keys[] = {
    "ciphers",         "ciphersuites",       "groups",          "min_version",
    "session_tickets", "session_cache_size", "session_timeout", NULL};

static void config_defaults(struct config *cfg)
{
    cfg->workers = 0;
    cfg->shutdown_grace = 30;
    cfg->max_connections = 100000;
    cfg->per_ip_table = 65536;
    cfg->admin_enabled = true;
    log_config_defaults(&cfg->log);
    matcher_config_defaults(&cfg->matcher);
    cfg->tls.min_version = TLS1_2_VERSION;
    cfg->tls.session_tickets = true;
    cfg->tls.session_cache_size = 20480;
    cfg->tls.session_timeout = 300;
}

static int config_parse(struct cfg_ctx *cx, config_t *lc, struct config *cfg)
{
    const config_setting_t *root = config_root_setting(lc);
    const config_setting_t *s;
    if (check_keys(cx, root, top_keys) != SW_OK ||
        get_uint(cx, root, "workers", &cfg->workers, 0, CONFIG_MAX_WORKERS) != SW_OK ||
        get_string(cx, root, "user", &cfg->user) != SW_OK ||
        get_string(cx, root, "group", &cfg->group) != SW_OK ||
        get_double(cx, root, "shutdown_grace", &cfg->shutdown_grace, 0, 3600) != SW_OK)
        return SW_ERROR;
    if (cfg->group != NULL && cfg->user == NULL)
        return cfg_fail(cx, config_setting_get_member(root, "group"), "group needs user");
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n < 1 ? 1 : n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)n;
    }

    struct config_limits dlim = {.max_per_ip = 256, .buffer_size = 16384, .high_watermark = 16384};
    struct config_timeouts dto = {.connect = 10, .handshake = 10, .idle = 600};
    bool hw_given = false;
    s = config_setting_get_member(root, "limits");
    if (s != NULL) {
        if (check_keys(cx, s, limits_global_keys) != SW_OK ||
            get_uint(cx, s, "max_connections", &cfg->max_connections, 1, 10000000) != SW_OK ||
            get_uint(cx, s, "per_ip_table", &cfg->per_ip_table, 16, 16u << 20) != SW_OK ||
            parse_limits(cx, s, &dlim, false) != SW_OK)
            return SW_ERROR;
        hw_given = config_setting_get_member(s, "high_watermark") != NULL;
    }
    s = config_setting_get_member(root, "timeouts");
    if (s != NULL && parse_timeouts(cx, s, &dto) != SW_OK)
        return SW_ERROR;

    s = config_setting_get_member(root, "admin");
    if (s != NULL && (check_keys(cx, s, admin_keys) != SW_OK ||
                      get_bool(cx, s, "enabled", &cfg->admin_enabled) != SW_OK ||
                      get_string(cx, s, "bind", &cfg->admin_bind) != SW_OK))
        return SW_ERROR;
    if (cfg->admin_bind == NULL && (cfg->admin_bind = strdup(ADMIN_BIND_DEFAULT)) == NULL)
        return cfg_fail(cx, NULL, "out of memory");
    {
        struct sockaddr_storage ss;
        socklen_t len;
        struct sw_err e;
        if (config_parse_addr(cfg->admin_bind, &ss, &len, &e) != SW_OK)
            return cfg_fail(
                cx, config_setting_get_member(config_setting_get_member(root, "admin"), "bind"),
                "%s", e.msg);
    }

    s = config_setting_get_member(root, "log");
    if (s != NULL) {
        static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
        static const char *const formats[] = {"logfmt", "json", NULL};
        static const char *const targets[] = {"stderr", "syslog", NULL};
        int level = (int)cfg->log.level, format = (int)cfg->log.format,
            target = (int)cfg->log.target;
        char *debug = NULL;
        if (check_keys(cx, s, log_keys) != SW_OK ||
            get_enum(cx, s, "level", levels, &level) != SW_OK ||
            get_enum(cx, s, "format", formats, &format) != SW_OK ||
            get_enum(cx, s, "target", targets, &target) != SW_OK ||
            get_string(cx, s, "debug", &debug) != SW_OK)
            return SW_ERROR;
        cfg->log.level = (enum log_level)level;
        cfg->log.format = (enum log_format)format;
        cfg->log.target = target == 1 ? LOG_TARGET_SYSLOG : LOG_TARGET_FD;
        if (debug != NULL) {
            struct sw_err e;
            int rc = log_parse_debug(debug, &cfg->log.debug_mask, &e);
            free(debug);
            if (rc != SW_OK)
                return cfg_fail(cx, config_setting_get_member(s, "debug"), "%s", e.msg);
        }
    }

    s = config_setting_get_member(root, "matcher");
    if (s != NULL) {
        struct matcher_config *m = &cfg->matcher;
        uint64_t max_text = m->max_text, url_arena = m->url_arena;
        if (check_keys(cx, s, matcher_keys) != SW_OK ||
            get_string(cx, s, "rules_dir", &cfg->rules_dir) != SW_OK ||
            get_string(cx, s, "lists_dir", &cfg->lists_dir) != SW_OK ||
            get_string(cx, s, "cache", &cfg->rules_cache) != SW_OK ||
            get_double(cx, s, "tag_threshold", &m->tag_threshold, -1e6, 1e6) != SW_OK ||
            get_double(cx, s, "drop_threshold", &m->drop_threshold, -1e6, 1e6) != SW_OK ||
            get_uint(cx, s, "max_urls", &m->max_urls, 1, 64) != SW_OK ||
            get_u64(cx, s, "max_text", &max_text, 64, 16u << 20) != SW_OK ||
            get_u64(cx, s, "url_arena", &url_arena, 256, 1u << 20) != SW_OK ||
            get_uint(cx, s, "field_cache", &m->field_cache_slots, 0, 1u << 20) != SW_OK ||
            get_uint(cx, s, "domain_cache", &m->domain_cache_slots, 0, 1u << 16) != SW_OK ||
            get_enum(cx, s, "databases", hsdb_layout_names, &cfg->rules_layout) != SW_OK)
            return SW_ERROR;
        m->max_text = (size_t)max_text;
        m->url_arena = (size_t)url_arena;
    }
    s = config_setting_get_member(root, "reputation");
    if (s != NULL) {
        struct matcher_config *m = &cfg->matcher;
        uint64_t max_bytes = m->rep.max_bytes;
        double window = m->rep.window_ms / 1000.0;
        if (check_keys(cx, s, rep_keys) != SW_OK ||
            get_bool(cx, s, "enabled", &m->reputation) != SW_OK ||
            get_u64(cx, s, "max_bytes", &max_bytes, 64u << 10, 1ull << 40) != SW_OK ||
            get_uint(cx, s, "shards", &m->rep.shards, 1, 65536) != SW_OK ||
            get_double(cx, s, "window", &window, 1, 86400) != SW_OK)
            return SW_ERROR;
        m->rep.max_bytes = (size_t)max_bytes;
        m->rep.window_ms = (uint32_t)(window * 1000);
    }
    {
        struct sw_err e;
        if (matcher_config_check(&cfg->matcher, &e) != SW_OK)
            return cfg_fail(cx, config_setting_get_member(root, "matcher"), "%s", e.msg);
    }

    s = config_setting_get_member(root, "tls");
    if (s != NULL) {
        static const char *const versions[] = {"TLSv1.2", "TLSv1.3", NULL};
        int v = cfg->tls.min_version == TLS1_3_VERSION ? 1 : 0;
        uint64_t cache = (uint64_t)cfg->tls.session_cache_size,
                 tmo = (uint64_t)cfg->tls.session_timeout;
        if (check_keys(cx, s, tls_keys) != SW_OK ||
            get_string(cx, s, "ciphers", &cfg->tls.ciphers) != SW_OK ||
            get_string(cx, s, "ciphersuites", &cfg->tls.ciphersuites) != SW_OK ||
            get_string(cx, s, "groups", &cfg->tls.groups) != SW_OK ||
            get_enum(cx, s, "min_version", versions, &v) != SW_OK ||
            get_bool(cx, s, "session_tickets", &cfg->tls.session_tickets) != SW_OK ||
            get_u64(cx, s, "session_cache_size", &cache, 0, 10000000) != SW_OK ||
            get_u64(cx, s, "session_timeout", &tmo, 1, 86400) != SW_OK)
            return SW_ERROR;
        cfg->tls.min_version = v == 1 ? TLS1_3_VERSION : TLS1_2_VERSION;
        cfg->tls.session_cache_size = (long)cache;
        cfg->tls.session_timeout = (long)tmo;
    }

    s = config_setting_get_member(root, "listeners");
    if (s == NULL)
        return cfg_fail(cx, NULL, "no listeners: add listeners = ( { ... } )");
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return cfg_fail(cx, s, "must be a list ( { ... }, { ... } )");
    int n = config_setting_length(s);
    if (n < 1 || n > CONFIG_MAX_LISTENERS)
        return cfg_fail(cx, s, "needs 1..%d listeners", CONFIG_MAX_LISTENERS);
    cfg->listeners = calloc((size_t)n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return cfg_fail(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        cfg->n_listeners = (unsigned)i + 1;
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            return cfg_fail(cx, s, "entry %d must be a group { ... }", i);
        if (parse_listener(cx, cfg, g, &cfg->listeners[i], &dlim, &dto, hw_given) != SW_OK)
            return SW_ERROR;
        for (int j = 0; j < i; j++) {
            const struct config_listener *a = &cfg->listeners[j], *b = &cfg->listeners[i];
            if (strcmp(a->name, b->name) == 0)
                return cfg_fail(cx, g, "listener name \"%s\" is already used at line %d", b->name,
                                a->line);
            if (a->addr_len == b->addr_len && memcmp(&a->addr, &b->addr, a->addr_len) == 0)
                return cfg_fail(cx, g, "bind %s is already used by listener %s", b->bind, a->name);
        }
    }
    return SW_OK;
}

static struct config *config_load_common(const char *path, const char *text, const char *name,
                                         struct sw_err *err)
{
    config_t lc;
    struct config *cfg = NULL;
    struct cfg_ctx cx = {.file = name, .err = err};
    config_init(&lc);
    config_set_options(&lc, 0); /* no autoconversion: types are checked */
    int ok = path != NULL ? config_read_file(&lc, path) : config_read_string(&lc, text);
    if (ok != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            sw_err_set(err, "%s: cannot read: %s", name, strerror(errno));
        else
            sw_err_set(err, "%s:%d: %s",
                       config_error_file(&lc) != NULL ? config_error_file(&lc) : name,
                       config_error_line(&lc), config_error_text(&lc));
        goto fail;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        sw_err_set(err, "%s: out of memory", name);
        goto fail;
    }
    config_defaults(cfg);
    cfg->path = strdup(name);
    if (cfg->path == NULL) {
        sw_err_set(err, "%s: out of memory", name);
        goto fail;
    }
    if (config_parse(&cx, &lc, cfg) != SW_OK)
        goto fail;
    config_destroy(&lc);
    return cfg;
fail:
    config_destroy(&lc);
    config_free(cfg);
    return NULL;
}

struct config *config_load(const char *path, struct sw_err *err)
{
    return config_load_common(path, NULL, path, err);
}

struct config *config_load_string(const char *text, const char *name, struct sw_err *err)
{
    return config_load_common(NULL, text, name, err);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        struct config_listener *l = &cfg->listeners[i];
        free(l->name);
        free(l->bind);
        for (unsigned c = 0; c < l->n_certs; c++) {
            for (unsigned k = 0; k < l->certs[c].n_names; k++)
                free(l->certs[c].names[k]);
            free(l->certs[c].names);
            free(l->certs[c].cert);
            free(l->certs[c].key);
        }
        free(l->certs);
        free(l->proxy_from);
        free(l->upstream.address);
        free(l->upstream.ca_file);
        free(l->upstream.server_name);
        free(l->actions.bounce_text);
        free(l->actions.tag_prefix);
        free(l->msnp.switchboard);
    }
    free(cfg->listeners);
    free(cfg->path);
    free(cfg->user);
    free(cfg->group);
    free(cfg->admin_bind);
    free(cfg->rules_dir);
    free(cfg->lists_dir);
    free(cfg->rules_cache);
    free(cfg->tls.ciphers);
    free(cfg->tls.ciphersuites);
    free(cfg->tls.groups);
    free(cfg);
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int config_check_reload(const struct config *o, const struct config *n, struct sw_err *err)
{
    if (o->workers != n->workers)
        return sw_err_set(err, "%s: workers changed (%u -> %u): restart needed", n->path,
                          o->workers, n->workers);
    if (!str_eq(o->user, n->user) || !str_eq(o->group, n->group))
        return sw_err_set(err, "%s: user/group changed: restart needed", n->path);
    if (o->admin_enabled != n->admin_enabled || !str_eq(o->admin_bind, n->admin_bind))
        return sw_err_set(err, "%s: admin listener changed: restart needed", n->path);
    if (o->n_listeners != n->n_listeners)
        return sw_err_set(err, "%s: number of listeners changed: restart needed", n->path);
    for (unsigned i = 0; i < n->n_listeners; i++) {
        const struct config_listener *a = &o->listeners[i], *b = &n->listeners[i];
        if (strcmp(a->name, b->name) != 0 || a->proto != b->proto || a->tls != b->tls ||
            a->addr_len != b->addr_len || memcmp(&a->addr, &b->addr, a->addr_len) != 0)
            return sw_err_set(err,
                              "%s:%d: listener %s: name, protocol, tls mode or bind changed: "
                              "restart needed",
                              n->path, b->line, b->name);
    }
    return SW_OK;
}
