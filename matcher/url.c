/* URL extraction (see url.h and docs/text-and-urls.md).
 *
 * One forward pass finds anchors: a '.' between two host characters, or a dot-word ("[.]",
 * "(.)", "{.}", "[dot]", "(dot)", " dot "). From an anchor we step left over host characters to
 * where the link starts, look for a scheme ("http://", "hxxp://", ...) just before it, then
 * parse forward once: scheme, userinfo, host (dot-words read as dots), port, path. The
 * canonical form is written straight into the arena. A candidate without scheme and without
 * "www." must pass the bare-host guards (public suffix, and a path, a port, three labels, a
 * dot-word or a common link TLD) so that "e.g.", "3.14" and "ok.so" stay chat. */
#include "matcher/url.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#define HOST_MAX 253
#define LABEL_MAX 63
#define PATH_MAX_BYTES 2048

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_ctx;

static void psl_init(void)
{
    /* the newer of the built-in list and Debian's publicsuffix file; read-only afterwards */
    psl_ctx_t *ctx = psl_latest(NULL);
    psl_ctx = ctx != NULL ? ctx : psl_builtin();
}

static const psl_ctx_t *psl_get(void)
{
    pthread_once(&psl_once, psl_init);
    return psl_ctx;
}

struct url_set *url_set_new(unsigned max_urls, size_t arena_bytes)
{
    struct url_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->items = calloc(max_urls > 0 ? max_urls : 1, sizeof(*set->items));
    set->arena = malloc(arena_bytes > 0 ? arena_bytes : 1);
    if (set->items == NULL || set->arena == NULL) {
        url_set_free(set);
        return NULL;
    }
    set->max = max_urls;
    set->arena_cap = arena_bytes;
    psl_get();
    return set;
}

void url_set_free(struct url_set *set)
{
    if (set == NULL)
        return;
    free(set->items);
    free(set->arena);
    free(set);
}

static inline bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* host label characters; UTF-8 bytes count so that IDN hosts stay whole */
static inline bool is_label(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '_' || c >= 0x80;
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool ieq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != lit[i])
            return false;
    }
    return true;
}

/* Length of a dot-word written in place of a '.' at s[0..len), or 0. Spaces around bracketed
 * forms are allowed ("evil [.] com"). */
static size_t dot_word(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] == ' ' && i < 2)
        i++;
    if (i < len && (s[i] == '[' || s[i] == '(' || s[i] == '{')) {
        char close = s[i] == '[' ? ']' : s[i] == '(' ? ')' : '}';
        size_t j = i + 1;
        if (j < len && s[j] == '.')
            j++;
        else if (ieq(s + j, len - j, "dot"))
            j += 3;
        else
            return 0;
        if (j < len && s[j] == close) {
            j++;
            while (j < len && s[j] == ' ' && j - i < 8)
                j++;
            return j;
        }
        return 0;
    }
    /* " dot " needs its spaces on both sides, exactly as a person types it */
    if (i == 1 && ieq(s + 1, len - 1, "dot") && len > 4 && s[4] == ' ')
        return 5;
    return 0;
}

struct scheme {
    const char *text; /* lower-case as written, with "://" */
    const char *canon;
    bool defanged;
};

static const struct scheme schemes[] = {
    {"https://", "https", false}, {"http://", "http", false},  {"ftp://", "ftp", false},
    {"hxxps://", "https", true},  {"hxxp://", "http", true},   {"hxxxp://", "http", true},
    {"h**ps://", "https", true},  {"h**p://", "http", true},   {"htps://", "https", true},
    {"htp://", "http", true},     {"ttps://", "https", true},  {"ttp://", "http", true},
    {"hxtp://", "http", true},    {"htxp://", "http", true},   {"hxxps[:]//", "https", true},
    {"hxxp[:]//", "http", true},  {"http[:]//", "http", true}, {"https[:]//", "https", true},
};

/* If a scheme ends exactly at s[pos], returns it and sets *start to where it begins. */
static const struct scheme *scheme_before(const char *s, size_t pos, size_t *start)
{
    for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
        size_t n = strlen(schemes[k].text);
        if (pos < n)
            continue;
        if (!ieq(s + pos - n, n, schemes[k].text))
            continue;
        /* the scheme must start a word: "xhttp://" is not http */
        if (pos > n && is_alnum((unsigned char)s[pos - n - 1]))
            continue;
        *start = pos - n;
        return &schemes[k];
    }
    return NULL;
}

/* Link TLDs that make a bare "name.tld" a link even without a path (see the docs). */
static bool common_link_tld(const char *tld, size_t n)
{
    static const char *const tlds[] = {
        "com", "net", "org", "info", "biz", "ru", "cn", "io", "co", "me", "ly", "tk", "xyz",
        "top", "de", "uk", "su", "cc", "ws", "to", "pw", "us", "eu", "in", "online", "site",
        "club", "ml", "ga", "cf", "gq", "br", "pl", "fr", "it", "nl", "es", "ua", "kz", "by",
        "tv", "be", "at", "ch", "ca", "au", "jp", "kr", "app", "dev", "live", "link", "click",
        "shop", "store", "fun", "icu", "buzz", "rest", "cam", "win", "bid", "loan", "work"};
    for (size_t i = 0; i < sizeof(tlds) / sizeof(tlds[0]); i++) {
        if (strlen(tlds[i]) == n && memcmp(tlds[i], tld, n) == 0)
            return true;
    }
    return false;
}

static bool is_ipv4(const char *h, size_t n)
{
    unsigned parts = 0, digits = 0, val = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (digits == 0 || val > 255)
                return false;
            parts++;
            digits = val = 0;
            continue;
        }
        if (h[i] < '0' || h[i] > '9' || ++digits > 3)
            return false;
        val = val * 10 + (unsigned)(h[i] - '0');
    }
    return parts == 4;
}

const char *url_registrable_domain(const char *host, size_t *dlen)
{
    size_t n = strlen(host);
    const char *d = NULL;
    if (!is_ipv4(host, n) && host[0] != '[')
        d = psl_registrable_domain(psl_get(), host);
    if (d == NULL)
        d = host;
    *dlen = n - (size_t)(d - host);
    return d;
}

/* A link being built in the arena. */
struct out {
    char *base;
    size_t cap, used;
    bool overflow;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->used < n) {
        o->overflow = true;
        return;
    }
    memcpy(o->base + o->used, s, n);
    o->used += n;
}

static inline void out_ch(struct out *o, char c)
{
    out_put(o, &c, 1);
}

static bool path_char(unsigned char c)
{
    return c > ' ' && c != '<' && c != '>' && c != '"' && c != '`' && c != '{' && c != '}' &&
           c != '|' && c != '\\' && c != '^' && c != 0x7f;
}

/* Where a path that starts at s[p] ends: at white space or a delimiter, minus trailing
 * punctuation, keeping balanced parentheses ("wiki/Foo_(bar)"). */
static size_t path_end(const char *s, size_t len, size_t p)
{
    size_t e = p;
    while (e < len && e - p < PATH_MAX_BYTES && path_char((unsigned char)s[e]))
        e++;
    for (;;) {
        if (e == p)
            break;
        char c = s[e - 1];
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\'' ||
            c == '*') {
            e--;
            continue;
        }
        if (c == ')' || c == ']') {
            char open = c == ')' ? '(' : '[';
            int depth = 0;
            for (size_t k = p; k < e; k++)
                depth += s[k] == open ? 1 : s[k] == c ? -1 : 0;
            if (depth < 0) {
                e--;
                continue;
            }
        }
        break;
    }
    return e;
}

struct cand {
    size_t start, end;        /* span in the text */
    const struct scheme *sch; /* NULL: scheme-less */
    unsigned flags;
};

/* Parses a link whose host starts at s[h] (after any scheme). On success appends the item and
 * returns the end of the span; returns 0 if it is not a link. */
static size_t parse_at(const char *s, size_t len, size_t span_start, size_t h,
                       const struct scheme *sch, struct url_set *set)
{
    unsigned flags = 0;
    struct out o = {set->arena + set->arena_used, set->arena_cap - set->arena_used, 0, false};

    if (sch != NULL && sch->defanged)
        flags |= URL_F_DEFANGED;

    /* userinfo: only after a scheme ("http://paypal.com@evil.example/"); without one,
     * "bob@example.com" is an e-mail address, not a link */
    if (sch != NULL) {
        size_t k = h;
        while (k < len && k - h < 256 && s[k] != '/' && s[k] != '@' && s[k] > ' ')
            k++;
        if (k < len && s[k] == '@' && k + 1 < len && is_label((unsigned char)s[k + 1])) {
            flags |= URL_F_USERINFO;
            h = k + 1;
        }
    }

    /* host */
    char host[HOST_MAX + 1];
    size_t hn = 0, labels = 0, label_len = 0, last_label = 0;
    size_t p = h;
    bool ipv6 = false;
    if (sch != NULL && p < len && s[p] == '[') {
        size_t k = p + 1;
        while (k < len && k - p < 48 &&
               (is_alnum((unsigned char)s[k]) || s[k] == ':' || s[k] == '.'))
            k++;
        if (k >= len || s[k] != ']' || k == p + 1)
            return 0;
        memcpy(host, s + p, k + 1 - p);
        hn = k + 1 - p;
        p = k + 1;
        ipv6 = true;
        labels = 1;
    } else {
        for (;;) {
            if (p < len && is_label((unsigned char)s[p])) {
                if (hn == HOST_MAX || ++label_len > LABEL_MAX)
                    return 0;
                if (label_len == 1)
                    last_label = hn;
                host[hn++] = lower(s[p++]);
                continue;
            }
            if (label_len == 0)
                break;
            /* a separator ends the label; it must be followed by another label */
            size_t sep = 0;
            if (p < len && s[p] == '.')
                sep = 1;
            else if (p < len)
                sep = dot_word(s + p, len - p);
            if (sep == 0 || p + sep >= len || !is_label((unsigned char)s[p + sep]))
                break;
            if (sep > 1)
                flags |= URL_F_DOT_WORD;
            if (hn == HOST_MAX)
                return 0;
            host[hn++] = '.';
            labels++;
            label_len = 0;
            p += sep;
        }
        if (label_len == 0)
            return 0;
        labels++;
    }
    host[hn] = '\0';

    /* port */
    size_t port_start = p, port_len = 0;
    if (p + 1 < len && s[p] == ':' && s[p + 1] >= '0' && s[p + 1] <= '9') {
        size_t k = p + 1;
        while (k < len && k - p <= 5 && s[k] >= '0' && s[k] <= '9')
            k++;
        port_len = k - p;
        p = k;
    }
    /* path, query, fragment */
    size_t path_start = p, path_stop = p;
    if (p < len && (s[p] == '/' || s[p] == '?' || s[p] == '#'))
        path_stop = path_end(s, len, p);

    bool ip = ipv6 || is_ipv4(host, hn);
    if (ip)
        flags |= URL_F_IP_HOST;
    bool www = hn > 4 && memcmp(host, "www", 3) == 0 &&
               (host[3] == '.' || (host[3] >= '0' && host[3] <= '9'));
    if (sch == NULL) {
        flags |= URL_F_SCHEMELESS;
        if (labels < 2)
            return 0;
        if (ip) {
            if (port_len == 0 && path_stop == path_start)
                return 0;
        } else if (!www) {
            /* bare host guards */
            const char *tld = host + last_label;
            size_t tn = hn - last_label;
            if (tn < 2 || tn > 24)
                return 0;
            for (size_t k = 0; k < tn; k++) {
                if (!((tld[k] | 0x20) >= 'a' && (tld[k] | 0x20) <= 'z'))
                    return 0;
            }
            if (!psl_is_public_suffix(psl_get(), tld))
                return 0;
            bool strong = port_len > 0 || path_stop > path_start || labels >= 3 ||
                          (flags & URL_F_DOT_WORD) || common_link_tld(tld, tn);
            if (!strong)
                return 0;
            /* the label before the suffix must hold a letter ("1.5.com" is not a host) */
            bool letter = false;
            for (size_t k = 0; k < last_label; k++)
                letter |= (host[k] | 0x20) >= 'a' && (host[k] | 0x20) <= 'z';
            if (!letter)
                return 0;
        }
    }
    if (!ip && hn >= 4 && (memcmp(host, "xn--", 4) == 0 || strstr(host, ".xn--") != NULL))
        flags |= URL_F_PUNYCODE;

    if (set->n == set->max) {
        set->dropped++;
        return path_stop > p ? path_stop : p;
    }

    /* canonical form: scheme://host[:port]path, then the host on its own */
    const char *canon = sch != NULL ? sch->canon : "http";
    out_put(&o, canon, strlen(canon));
    out_put(&o, "://", 3);
    out_put(&o, host, hn);
    if (port_len > 0)
        out_put(&o, s + port_start, port_len);
    size_t path_in_url = o.used;
    out_put(&o, s + path_start, path_stop - path_start);
    out_ch(&o, '\0');
    size_t host_off = o.used;
    out_put(&o, host, hn + 1);
    if (o.overflow) {
        set->dropped++;
        return path_stop;
    }

    struct url_item *it = &set->items[set->n++];
    char *base = set->arena + set->arena_used;
    it->span_off = (uint32_t)span_start;
    it->span_len = (uint32_t)(path_stop - span_start);
    it->url = base;
    it->url_len = (uint32_t)(host_off - 1);
    it->host = base + host_off;
    it->host_len = (uint32_t)hn;
    it->path = base + path_in_url;
    it->path_len = (uint32_t)(path_stop - path_start);
    const char *d = ip ? NULL : psl_registrable_domain(psl_get(), it->host);
    if (d == NULL) {
        d = it->host;
        if (!ip)
            flags |= URL_F_NO_SUFFIX;
    }
    it->domain = d;
    it->domain_len = (uint32_t)(hn - (size_t)(d - it->host));
    it->flags = flags;
    set->arena_used += o.used;
    return path_stop;
}

/* From an anchor at s[a] (a '.' or the first byte of a dot-word), finds where the link would
 * start: back over host characters and plain dots, then over a scheme if one is there. */
static size_t link_start(const char *s, size_t a, size_t floor, const struct scheme **sch,
                         size_t *host_start)
{
    size_t b = a;
    while (b > floor && (is_label((unsigned char)s[b - 1]) || s[b - 1] == '.'))
        b--;
    while (b < a && s[b] == '.')
        b++;
    *host_start = b;
    *sch = NULL;
    size_t start;
    const struct scheme *found = scheme_before(s, b, &start);
    if (found != NULL && start >= floor) {
        *sch = found;
        return start;
    }
    /* userinfo before the host: "http://user@host" - step over it to the scheme */
    if (b > floor && s[b - 1] == '@') {
        size_t u = b - 1;
        while (u > floor && s[u - 1] > ' ' && s[u - 1] != '/' && b - u < 256)
            u--;
        found = scheme_before(s, u, &start);
        if (found != NULL && start >= floor) {
            *sch = found;
            *host_start = u;
            return start;
        }
        return (size_t)-1; /* an e-mail address */
    }
    return b;
}

unsigned url_extract(const char *text, size_t len, struct url_set *set)
{
    set->n = 0;
    set->dropped = 0;
    set->arena_used = 0;

    size_t floor = 0; /* text before this belongs to an earlier link */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        size_t sep;
        if (c == '.') {
            if (i == 0 || i + 1 >= len || !is_label((unsigned char)text[i - 1]) ||
                !is_label((unsigned char)text[i + 1]))
                continue;
        } else if (c == '[' || c == '(' || c == '{' || ((c | 0x20) == 'd' && i > 0 &&
                                                       text[i - 1] == ' ')) {
            size_t from = (c | 0x20) == 'd' ? i - 1 : i;
            while (c != 'd' && c != 'D' && from > 0 && text[from - 1] == ' ' && i - from < 2)
                from--;
            sep = dot_word(text + from, len - from);
            if (sep == 0 || from == 0 || !is_label((unsigned char)text[from - 1]) ||
                from + sep >= len || !is_label((unsigned char)text[from + sep]))
                continue;
            i = from;
        } else if (c == '/' && i >= 3 && i + 2 < len && text[i - 1] == ':' && text[i + 1] == '/' &&
                   text[i + 2] == '[') {
            /* IPv6 literal after a scheme: no dot to anchor on */
            const struct scheme *sch;
            size_t start;
            if ((sch = scheme_before(text, i + 2, &start)) != NULL && start >= floor) {
                size_t end = parse_at(text, len, start, i + 2, sch, set);
                if (end > 0) {
                    floor = end;
                    i = end - 1;
                }
            }
            continue;
        } else {
            continue;
        }
        if (i < floor)
            continue;
        const struct scheme *sch;
        size_t host_start;
        size_t start = link_start(text, i, floor, &sch, &host_start);
        if (start == (size_t)-1) {
            /* skip the rest of the e-mail address */
            while (i + 1 < len && (is_label((unsigned char)text[i + 1]) || text[i + 1] == '.'))
                i++;
            floor = i + 1;
            continue;
        }
        size_t end = parse_at(text, len, start, host_start, sch, set);
        if (end > 0) {
            floor = end;
            i = end - 1;
        } else {
            /* every later anchor in this run would start at the same place and fail the same
             * way: skip the run, which keeps the pass linear on "a.a.a.a..." floods */
            while (i + 1 < len && (is_label((unsigned char)text[i + 1]) || text[i + 1] == '.'))
                i++;
        }
    }
    return set->n;
}
