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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <libpsl.h>

#include "matcher/cpu.h"
#include "matcher/hash.h"
#include "matcher/simd.h"
#if defined(SW_HAVE_AVX2_PATHS)
#include <immintrin.h>
#endif

#define HOST_MAX 253
#define LABEL_MAX 63
/* Longest path+query kept in the canonical form: the host is what lists and reputation key on,
 * and one huge link must not fill the arena and push the next link out. The span still covers
 * the whole link. */
#define PATH_KEEP 1024

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

/* libpsl's registrable-domain lookup costs ~0.5 us per host (0.6-3 us on the first sight of a
 * suffix), and link hosts repeat (a campaign, a popular site), so each set keeps a
 * direct-mapped cache of host -> offset of its registrable domain (matcher.domain_cache slots,
 * 64 bytes each). Entries hold the whole host and are compared byte for byte, so a hash
 * collision can only cost a lookup, never give a wrong domain. Hosts longer than DC_HOST_MAX
 * are not cached. */
#define DC_HOST_MAX 62

struct url_domain_entry {
    uint8_t len; /* host length; 0: empty */
    uint8_t dom; /* offset of the registrable domain in the host */
    char host[DC_HOST_MAX];
};

_Static_assert(sizeof(struct url_domain_entry) == 64, "a domain cache entry is one cache line");

static size_t domain_offset(struct url_set *set, const char *host, size_t hn)
{
    struct url_domain_entry *e = NULL;
    if (set->dcache != NULL && hn > 0 && hn <= DC_HOST_MAX) {
        e = &set->dcache[sw_hash64(host, hn, 0x64636163u) & set->dcache_mask];
        if (e->len == hn && memcmp(e->host, host, hn) == 0)
            return e->dom;
    }
    const char *d = psl_registrable_domain(psl_get(), host);
    size_t off = d != NULL ? (size_t)(d - host) : 0;
    if (e != NULL) {
        e->len = (uint8_t)hn;
        e->dom = (uint8_t)off;
        memcpy(e->host, host, hn);
    }
    return off;
}

struct url_set *url_set_new(unsigned max_urls, size_t arena_bytes, unsigned domain_cache_slots)
{
    if (domain_cache_slots & (domain_cache_slots - 1))
        return NULL; /* not a power of two */
    struct url_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->items = calloc(max_urls > 0 ? max_urls : 1, sizeof(*set->items));
    set->arena = malloc(arena_bytes > 0 ? arena_bytes : 1);
    if (domain_cache_slots > 0) {
        size_t bytes = (size_t)domain_cache_slots * sizeof(struct url_domain_entry);
        set->dcache = aligned_alloc(64, bytes); /* a multiple of 64: every entry in one line */
        if (set->dcache != NULL)
            memset(set->dcache, 0, bytes);
        set->dcache_mask = domain_cache_slots - 1;
    }
    if (set->items == NULL || set->arena == NULL ||
        (domain_cache_slots > 0 && set->dcache == NULL)) {
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
    free(set->dcache);
    free(set);
}

static inline bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* ASCII host label characters */
static inline bool is_label(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '_';
}

/* Code points that cannot be part of a host name however a link is written: Latin-1
 * punctuation and symbols, general punctuation (quotes, dashes, ellipsis), arrows, math and
 * technical symbols, box drawing, dingbats, CJK punctuation, small and full-width forms,
 * specials, emoji. Without this, "«evil.com»" or "see evil.com…" would give the host
 * "«evil.com»" and hide evil.com from the domain lists. */
static bool is_symbol_cp(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0xbf) || cp == 0xd7 || cp == 0xf7 ||
           (cp >= 0x2000 && cp <= 0x2bff) || (cp >= 0x2e00 && cp <= 0x2e7f) ||
           (cp >= 0x3000 && cp <= 0x303f) || (cp >= 0xfe10 && cp <= 0xfe6f) ||
           (cp >= 0xff00 && cp <= 0xff20) || (cp >= 0xff3b && cp <= 0xff40) ||
           (cp >= 0xff5b && cp <= 0xff65) || cp >= 0xfff0 ||
           (cp >= 0xe000 && cp <= 0xf8ff);
}

/* Length of the valid, shortest-form UTF-8 sequence of a scalar value at s[0..len) (and the value
 * in *out), or 0. */
static size_t utf8_cp(const unsigned char *s, size_t len, uint32_t *out)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out = cp;
    return n;
}

/* Length of the UTF-8 sequence at s[0..len) if it encodes a character that may stand in an
 * internationalised host label, else 0 (invalid UTF-8 never joins a host). */
static size_t utf8_label(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n = utf8_cp(s, len, &cp);
    return n > 0 && !is_symbol_cp(cp) ? n : 0;
}

/* Length of the punctuation or symbol character (is_symbol_cp) that ends just before s[e],
 * not reaching below p, or 0: "evil.com/x”" ends before the closing quote. */
static size_t symbol_before(const char *s, size_t p, size_t e)
{
    size_t k = e - 1;
    while (k > p && e - k < 4 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    uint32_t cp;
    size_t n = utf8_cp((const unsigned char *)s + k, e - k, &cp);
    return n == e - k && is_symbol_cp(cp) ? n : 0;
}

/* Length of the host label character at s[i], or 0. */
static inline size_t label_at(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80)
        return is_label(c) ? 1 : 0;
    return utf8_label((const unsigned char *)s + i, len - i);
}

/* Length of the host label character that ends just before s[b] (not reaching below floor),
 * or 0. */
static size_t label_before(const char *s, size_t floor, size_t b)
{
    if (b <= floor)
        return 0;
    unsigned char c = (unsigned char)s[b - 1];
    if (c < 0x80)
        return is_label(c) ? 1 : 0;
    /* step back over continuation bytes to the lead byte, then decode forward */
    size_t k = b - 1;
    while (k > floor && b - k < 4 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    size_t n = utf8_label((const unsigned char *)s + k, b - k);
    return n == b - k ? n : 0;
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Whether s[0..len) starts with the n bytes of lit (lower-case), ignoring ASCII case. */
static bool ieqn(const char *s, size_t len, const char *lit, size_t n)
{
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != lit[i])
            return false;
    }
    return true;
}

static bool ieq(const char *s, size_t len, const char *lit)
{
    return ieqn(s, len, lit, strlen(lit));
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
    size_t text_len;
    const char *canon;
    size_t canon_len;
    bool defanged;
};

#define SCHEME(text, canon, defanged)                                                              \
    {                                                                                              \
        text, sizeof(text) - 1, canon, sizeof(canon) - 1, defanged                                 \
    }
static const struct scheme schemes[] = {
    SCHEME("https://", "https", false),  SCHEME("http://", "http", false),
    SCHEME("ftp://", "ftp", false),      SCHEME("hxxps://", "https", true),
    SCHEME("hxxp://", "http", true),     SCHEME("hxxxp://", "http", true),
    SCHEME("h**ps://", "https", true),   SCHEME("h**p://", "http", true),
    SCHEME("htps://", "https", true),    SCHEME("htp://", "http", true),
    SCHEME("ttps://", "https", true),    SCHEME("ttp://", "http", true),
    SCHEME("hxtp://", "http", true),     SCHEME("htxp://", "http", true),
    SCHEME("hxxps[:]//", "https", true), SCHEME("hxxp[:]//", "http", true),
    SCHEME("http[:]//", "http", true),   SCHEME("https[:]//", "https", true),
};
#undef SCHEME

/* If a scheme ends exactly at s[pos], returns it and sets *start to where it begins. */
static const struct scheme *scheme_before(const char *s, size_t pos, size_t *start)
{
    /* every spelling ends with "//": most candidates (bare hosts) stop here */
    if (pos < 2 || s[pos - 1] != '/' || s[pos - 2] != '/')
        return NULL;
    for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
        size_t n = schemes[k].text_len;
        if (pos < n)
            continue;
        if (!ieqn(s + pos - n, n, schemes[k].text, n))
            continue;
        /* the scheme must start a word: "xhttp://" is not http */
        if (pos > n && is_alnum((unsigned char)s[pos - n - 1]))
            continue;
        *start = pos - n;
        return &schemes[k];
    }
    return NULL;
}

static bool in_list(const char *const *list, size_t n_list, const char *w, size_t n)
{
    for (size_t i = 0; i < n_list; i++) {
        if (list[i][0] == w[0] && strnlen(list[i], n + 1) == n && memcmp(list[i], w, n) == 0)
            return true;
    }
    return false;
}

/* TLDs that spim links use so often that a bare "name.tld" counts as a link even without a
 * path (see docs/text-and-urls.md). English words that are also TLDs ("at", "in", "it", "be",
 * "us", "is") are left out: "see you.at 5" is a typo, not a link. */
static bool common_link_tld(const char *tld, size_t n)
{
    static const char *const tlds[] = {
        "com", "net", "org", "info", "biz", "ru", "cn", "io", "co", "me", "ly", "tk", "xyz",
        "top", "de", "uk", "su", "cc", "ws", "to", "pw", "eu", "online", "site", "club", "ml",
        "ga", "cf", "gq", "br", "pl", "fr", "nl", "es", "ua", "kz", "by", "tv", "ch", "ca", "au",
        "jp", "kr", "app", "dev", "live", "link", "click", "shop", "store", "fun", "icu", "buzz",
        "rest", "cam", "win", "bid", "loan", "work", "\xd1\x80\xd1\x84" /* рф */};
    return in_list(tlds, sizeof(tlds) / sizeof(tlds[0]), tld, n);
}

/* Link TLDs that are also everyday words: "go.to bed", "tell.me", "do.it", "ok.so" are typos
 * (a missing space after a full stop) far more often than links, so a bare two-label host under
 * one of these needs a path or a port. */
static bool word_tld(const char *tld, size_t n)
{
    static const char *const words[] = {"to", "me", "no", "my", "do", "is", "am", "as",
                                        "by", "us", "in", "at", "it", "be", "so", "go",
                                        "on"};
    return in_list(words, sizeof(words) / sizeof(words[0]), tld, n);
}

/* Words that start a phrase rather than a host name: "the dot com bubble", "a dot com". */
static bool dot_word_stopword(const char *w, size_t n)
{
    static const char *const words[] = {"the", "a", "an", "and", "or", "of", "to", "this",
                                        "that", "my", "your", "our", "their", "his", "her",
                                        "its", "one", "per", "no", "polka", "dot", "each"};
    return in_list(words, sizeof(words) / sizeof(words[0]), w, n);
}

/* Whether suffix (lower-case, NUL-terminated) is on the public suffix list itself, not merely
 * covered by the implicit "*" rule that makes every unknown TLD look public. */
static bool known_suffix(const char *suffix)
{
    /* every common link TLD is on the list; asking libpsl costs 0.5-1 us a call */
    if (common_link_tld(suffix, strlen(suffix)))
        return true;
    return psl_is_public_suffix2(psl_get(), suffix, PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE) != 0;
}

/* Strict dotted quad: four decimal parts 0..255, no more than three digits each. */
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

/* Whether a host's last label is a number ("2130706433", "0x7f.1", "127.1"): browsers then read
 * the whole host as an IPv4 address in decimal, octal or hex, which spimmers use to hide one. */
static bool is_numeric_host(const char *h, size_t n)
{
    size_t k = n;
    while (k > 0 && h[k - 1] != '.')
        k--;
    const char *l = h + k;
    size_t ln = n - k;
    if (ln == 0)
        return false;
    size_t i = 0;
    bool hex = ln >= 2 && l[0] == '0' && (l[1] | 0x20) == 'x';
    if (hex)
        i = 2;
    for (; i < ln; i++) {
        char c = l[i];
        if (!((c >= '0' && c <= '9') || (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f')))
            return false;
    }
    return true;
}

const char *url_registrable_domain(const char *host, size_t *dlen)
{
    size_t n = strlen(host);
    const char *d = NULL;
    if (n > 0 && host[0] != '[' && !is_numeric_host(host, n))
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

/* Copies n bytes with loads and stores that stay within src[0..n) and dst[0..n): from 32 bytes
 * on (with SSE2) 16-byte blocks, else 8-byte words, the last block or word ending with the copy
 * (overlapping bytes are written twice); below 8 bytes two overlapping 4-byte words or single
 * bytes. The word loop also runs on SSE2 builds (8..31 bytes: hosts, short paths), so the tests
 * cover it everywhere. GCC expands memcpy() of a length it can bound (a host, a path cut at
 * PATH_KEEP) into "rep movsq", whose start-up costs more than a whole link's copy here. */
static inline void copy_bytes(char *dst, const char *src, size_t n)
{
#if defined(__SSE2__)
    if (n >= 32) {
        for (size_t i = 0; i + 16 < n; i += 16)
            _mm_storeu_si128((__m128i *)(void *)(dst + i),
                             _mm_loadu_si128((const __m128i *)(const void *)(src + i)));
        _mm_storeu_si128((__m128i *)(void *)(dst + n - 16),
                         _mm_loadu_si128((const __m128i *)(const void *)(src + n - 16)));
        return;
    }
#endif
    if (n >= 8) {
        uint64_t w;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, src + i, 8);
            memcpy(dst + i, &w, 8);
        }
        memcpy(&w, src + n - 8, 8);
        memcpy(dst + n - 8, &w, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    }
}

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->used < n) {
        o->overflow = true;
        return;
    }
    copy_bytes(o->base + o->used, s, n);
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

#if defined(__SSE2__)
/* The bytes of s[0..16) that are not path_char(), as a bit mask. */
static inline unsigned path_stop16(__m128i v)
{
    __m128i m = sw_le_epu8(v, _mm_set1_epi8(' '));
    static const char stop[] = {'<', '>', '"', '`', '{', '}', '|', '\\', '^', 0x7f};
    for (size_t i = 0; i < sizeof(stop); i++)
        m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(stop[i])));
    return (unsigned)_mm_movemask_epi8(m);
}

/* Bytes of s[0..16) that are '(' or ')', '[' or ']', as a bit mask. */
static inline unsigned bracket16(__m128i v)
{
    __m128i m =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('(')), _mm_cmpeq_epi8(v, _mm_set1_epi8(')')));
    m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('[')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8(']'))));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* Where a path that starts at s[p] ends: at white space or a delimiter, minus trailing
 * punctuation, keeping balanced parentheses ("wiki/Foo_(bar)") but not a closing one that
 * belongs to the sentence ("(see a.com/x)"). Linear: brackets are counted once. */
static size_t path_end(const char *s, size_t len, size_t p)
{
    size_t e = p;
    long paren = 0, square = 0; /* opens minus closes */
#if defined(__SSE2__)
    /* sixteen bytes per step; the brackets of a block (rare) are counted a byte at a time */
    for (; e + 16 <= len; e += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + e));
        unsigned stop = path_stop16(v);
        unsigned take = stop != 0 ? (1u << __builtin_ctz(stop)) - 1 : 0xffffu;
        for (unsigned b = bracket16(v) & take; b != 0; b &= b - 1) {
            char c = s[e + (size_t)__builtin_ctz(b)];
            paren += c == '(' ? 1 : c == ')' ? -1 : 0;
            square += c == '[' ? 1 : c == ']' ? -1 : 0;
        }
        if (stop != 0) {
            e += (size_t)__builtin_ctz(stop);
            goto trim;
        }
    }
#endif
    while (e < len && path_char((unsigned char)s[e])) {
        char c = s[e++];
        paren += c == '(' ? 1 : c == ')' ? -1 : 0;
        square += c == '[' ? 1 : c == ']' ? -1 : 0;
    }
#if defined(__SSE2__)
trim:
#endif
    while (e > p) {
        char c = s[e - 1];
        size_t k;
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\'' ||
            c == '*') {
            e--;
        } else if (c == ')' && paren < 0) {
            e--;
            paren++;
        } else if (c == ']' && square < 0) {
            e--;
            square++;
        } else if ((unsigned char)c >= 0x80 && (k = symbol_before(s, p, e)) > 0) {
            e -= k; /* closing quotes, ellipsis, guillemets: the sentence's, not the link's */
        } else {
            break;
        }
    }
    return e;
}

/* How a scheme-less, www-less host was written, for the bare-host guards. */
struct bare_info {
    bool spaced_dot; /* " dot " (not a bracketed dot-word) stood for a dot */
    bool last_upper; /* the last label starts with an upper-case letter as written */
    bool lower_seen; /* some label holds a lower-case letter as written */
};

/* The bare-host guards (docs/text-and-urls.md): whether a host written without scheme and
 * without "www." is a link rather than chat. host is lower-cased and NUL-terminated; its last
 * label starts at host[last]. Order matters: the mandatory checks come first, then whatever
 * makes the host strong enough. */
static bool bare_host_ok(const char *host, size_t last, size_t labels, unsigned flags,
                         const struct bare_info *bi, bool path_or_port)
{
    const char *tld = host + last;
    size_t tn = strlen(tld);
    if (tn < 2 || tn > 24)
        return false;
    for (size_t k = 0; k < tn; k++) {
        unsigned char c = (unsigned char)tld[k];
        if (!((c >= 'a' && c <= 'z') || c >= 0x80))
            return false;
    }
    /* Nothing below makes a weak host (no path, port, dot-word or third label, not a common
     * link TLD) a link, so "mr.smith" and "file.txt" stop here without a libpsl look-up, which
     * costs more than the rest of the scan of a chat line. */
    if (!path_or_port && !(flags & URL_F_DOT_WORD) && labels < 3 && !common_link_tld(tld, tn))
        return false;
    /* a real suffix: "x.y.zzzz", "mr.smith.jr" and "file.txt" are not hosts */
    if (!known_suffix(tld))
        return false;
    /* the labels before the suffix must hold a letter ("1.5.com" is not a host) */
    bool letter = false;
    for (size_t k = 0; k < last; k++) {
        unsigned char c = (unsigned char)host[k];
        letter |= (c >= 'a' && c <= 'z') || c >= 0x80;
    }
    if (!letter)
        return false;
    if (bi->spaced_dot) {
        /* "the dot com bubble", "polka dot dress": phrases, not hosts */
        const char *dot = strchr(host, '.');
        if (dot_word_stopword(host, (size_t)(dot - host)))
            return false;
        if (!path_or_port && (!common_link_tld(tld, tn) || (labels == 2 && word_tld(tld, tn))))
            return false;
        return true;
    }
    if (path_or_port)
        return true;
    /* "Thanks.It works": a capital after the dot starts a sentence; an all-caps "EVIL.RU"
     * is still a host */
    if (bi->last_upper && bi->lower_seen)
        return false;
    if (labels == 2 && word_tld(tld, tn))
        return false;
    if (flags & URL_F_DOT_WORD)
        return true;
    return common_link_tld(tld, tn) || labels >= 3;
}

/* Where a userinfo that may start at s[h] stops: the first '/', '@' or byte that is not above
 * ' ' as a (signed) char, so also at any byte >= 0x80; at most 256 bytes on. */
static size_t userinfo_stop(const char *s, size_t len, size_t h)
{
    size_t k = h, lim = len - h > 256 ? h + 256 : len;
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(' '), sl = _mm_set1_epi8('/'), at = _mm_set1_epi8('@');
    for (; k + 16 <= lim; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + k));
        unsigned m = ~(unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(v, sp)) & 0xffffu;
        m |=
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, sl), _mm_cmpeq_epi8(v, at)));
        if (m != 0)
            return k + (size_t)__builtin_ctz(m);
    }
#endif
    while (k < lim && s[k] != '/' && s[k] != '@' && s[k] > ' ')
        k++;
    return k;
}

/* How many ASCII host label bytes (is_label()) follow from s[p], counting no further than
 * LABEL_MAX + 1 (more is too long a label anyway). */
static size_t ascii_label_run(const char *s, size_t len, size_t p)
{
    size_t k = p;
#if defined(__SSE2__)
    for (; k + 16 <= len && k - p <= LABEL_MAX; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + k));
        __m128i ok =
            _mm_or_si128(sw_ascii_alnum16(v), _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')),
                                                           _mm_cmpeq_epi8(v, _mm_set1_epi8('_'))));
        unsigned bad = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
        if (bad != 0)
            return k - p + (size_t)__builtin_ctz(bad);
    }
#endif
    while (k < len && k - p <= LABEL_MAX && is_label((unsigned char)s[k]))
        k++;
    return k - p;
}

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
        size_t k = userinfo_stop(s, len, h);
        if (k < len && s[k] == '@' && k + 1 < len && label_at(s, len, k + 1) > 0) {
            flags |= URL_F_USERINFO;
            h = k + 1;
        }
    }

    /* host */
    char host[HOST_MAX + 1];
    size_t hn = 0, labels = 0, label_len = 0, last_label = 0;
    size_t p = h;
    bool ipv6 = false;
    struct bare_info bi = {false, false, false};
    if (sch != NULL && p < len && s[p] == '[') {
        size_t k = p + 1;
        while (k < len && k - p < 48 &&
               (is_alnum((unsigned char)s[k]) || s[k] == ':' || s[k] == '.'))
            k++;
        if (k >= len || s[k] != ']' || k == p + 1)
            return 0;
        for (size_t j = p; j <= k; j++)
            host[j - p] = lower(s[j]); /* "[2001:DB8::1]" is "[2001:db8::1]" */
        hn = k + 1 - p;
        p = k + 1;
        ipv6 = true;
        labels = 1;
    } else {
        for (;;) {
            /* a run of ASCII label bytes at once: most hosts are nothing else */
            size_t run = ascii_label_run(s, len, p);
            if (run > 0) {
                if (hn + run > HOST_MAX || label_len + run > LABEL_MAX)
                    return 0;
                if (label_len == 0) {
                    last_label = hn;
                    bi.last_upper = s[p] >= 'A' && s[p] <= 'Z';
                }
                label_len += run;
                for (size_t k = 0; k < run; k++) {
                    char c = s[p++];
                    bi.lower_seen |= c >= 'a' && c <= 'z';
                    host[hn++] = lower(c);
                }
                continue;
            }
            size_t cl = p < len ? label_at(s, len, p) : 0;
            if (cl > 0) {
                if (hn + cl > HOST_MAX || (label_len += cl) > LABEL_MAX)
                    return 0;
                if (label_len == cl) {
                    last_label = hn;
                    bi.last_upper = s[p] >= 'A' && s[p] <= 'Z';
                }
                bi.lower_seen |= s[p] >= 'a' && s[p] <= 'z';
                for (size_t k = 0; k < cl; k++)
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
            if (sep == 0 || p + sep >= len || label_at(s, len, p + sep) == 0)
                break;
            if (sep > 1) {
                flags |= URL_F_DOT_WORD;
                size_t q = p;
                while (s[q] == ' ')
                    q++;
                bi.spaced_dot |= s[q] != '[' && s[q] != '(' && s[q] != '{';
            }
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

    /* port: 1..65535; anything else ends the link at the host ("a.com:99999999") */
    size_t port_start = p, port_len = 0;
    if (p + 1 < len && s[p] == ':' && s[p + 1] >= '0' && s[p + 1] <= '9') {
        size_t k = p + 1;
        unsigned long v = 0;
        while (k < len && k - p <= 6 && s[k] >= '0' && s[k] <= '9')
            v = v * 10 + (unsigned long)(s[k++] - '0');
        if (v >= 1 && v <= 65535 && (k >= len || s[k] < '0' || s[k] > '9')) {
            port_len = k - p;
            p = k;
        }
    }
    /* path, query, fragment */
    size_t path_start = p, path_stop = p;
    if (p < len && (s[p] == '/' || s[p] == '?' || s[p] == '#'))
        path_stop = path_end(s, len, p);
    bool has_path = path_stop > path_start;

    /* a scheme makes a number a host ("http://2130706433/"); bare text needs a dotted quad */
    bool ip = ipv6 || (sch != NULL ? is_numeric_host(host, hn) : is_ipv4(host, hn));
    if (ip)
        flags |= URL_F_IP_HOST;
    bool www = hn > 4 && memcmp(host, "www", 3) == 0 &&
               (host[3] == '.' || (host[3] >= '0' && host[3] <= '9'));
    const char *tld = host + last_label;
    if (sch == NULL) {
        flags |= URL_F_SCHEMELESS;
        if (labels < 2)
            return 0;
        if (ip) {
            if (port_len == 0 && !has_path)
                return 0;
        } else if (!www && !bare_host_ok(host, last_label, labels, flags, &bi,
                                         port_len > 0 || has_path)) {
            return 0;
        }
    }
    if (!ip && ((hn >= 4 && memcmp(host, "xn--", 4) == 0) || strstr(host, ".xn--") != NULL))
        flags |= URL_F_PUNYCODE;
    if (!ip && !ipv6 && !known_suffix(tld))
        flags |= URL_F_NO_SUFFIX;

    if (set->n == set->max) {
        set->dropped++;
        return path_stop;
    }

    /* canonical form: scheme://host[:port]path, then the host on its own */
    if (sch != NULL)
        out_put(&o, sch->canon, sch->canon_len);
    else
        out_put(&o, "http", 4);
    out_put(&o, "://", 3);
    out_put(&o, host, hn);
    if (port_len > 0)
        out_put(&o, s + port_start, port_len);
    size_t path_in_url = o.used;
    size_t path_keep = path_stop - path_start < PATH_KEEP ? path_stop - path_start : PATH_KEEP;
    out_put(&o, s + path_start, path_keep);
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
    it->path_len = (uint32_t)path_keep;
    /* libpsl applies the list's implicit "*" rule to a TLD it does not know, as browsers do:
     * "www.lure.example" is under "lure.example" (and flagged URL_F_NO_SUFFIX), so that the
     * reputation of a domain is not split over its host names */
    const char *d = ip ? it->host : it->host + domain_offset(set, it->host, hn);
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
    for (;;) {
        size_t k = b > floor && s[b - 1] == '.' ? 1 : label_before(s, floor, b);
        if (k == 0)
            break;
        b -= k;
    }
    /* a host starts with a letter or digit: in "...evil.com", "--evil.com" and "__evil.com"
     * the host is evil.com, not a name the domain lists would miss */
    while (b < a && (s[b] == '.' || s[b] == '-' || s[b] == '_'))
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

/* Last offset of the run of host characters and dots that follows s[i] (i itself if none). */
static size_t skip_run(const char *s, size_t len, size_t i)
{
    while (i + 1 < len) {
        size_t k = s[i + 1] == '.' ? 1 : label_at(s, len, i + 1);
        if (k == 0)
            break;
        i += k;
    }
    return i;
}

/* Whether s[i] is an anchor that url_extract() can act on: a '.' between two bytes above ' '
 * (a space or control byte is never a host character, so "ok. so" and "end." are skipped
 * here), '[', '(' or '{', a '/' followed by '/', or the 'd' of " dot". Every byte this rejects
 * would be dropped by url_extract()'s own checks, so it only saves their cost. */
static inline bool anchor_at(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '.':
        return i > 0 && i + 1 < len && (unsigned char)s[i - 1] > ' ' &&
               (unsigned char)s[i + 1] > ' ';
    case '[':
    case '(':
    case '{':
        return true;
    case '/':
        return i + 1 < len && s[i + 1] == '/';
    case 'd':
    case 'D':
        return i > 0 && s[i - 1] == ' ' && i + 2 < len && (s[i + 1] | 0x20) == 'o' &&
               (s[i + 2] | 0x20) == 't';
    default:
        return false;
    }
}

/* Offset of the first anchor (anchor_at()) in text[i..len), or len. Most chat bytes are none:
 * sixteen bytes per step with SSE2 (where the compiler targets it), which also tests the
 * neighbours, so that sentence dots and the letter d (common in chat) do not each cost a call;
 * else a byte at a time. */
#if defined(__SSE2__)
/* anchor_at() for p[0..16) at once, as a bit mask; reads p[-1] to p[17]. */
static inline unsigned anchor_mask16(const char *p)
{
    const __m128i dot = _mm_set1_epi8('.'), lbr = _mm_set1_epi8('['), lpa = _mm_set1_epi8('('),
                  lcu = _mm_set1_epi8('{'), sla = _mm_set1_epi8('/'), d = _mm_set1_epi8('d'),
                  o = _mm_set1_epi8('o'), t = _mm_set1_epi8('t'), sp = _mm_set1_epi8(' '),
                  lower = _mm_set1_epi8(0x20);
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i prev = _mm_loadu_si128((const __m128i *)(const void *)(p - 1));
    __m128i next = _mm_loadu_si128((const __m128i *)(const void *)(p + 1));
    __m128i next2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
    __m128i prev_blank = sw_le_epu8(prev, sp);
    __m128i next_blank = sw_le_epu8(next, sp);
    __m128i m = _mm_andnot_si128(_mm_or_si128(prev_blank, next_blank), _mm_cmpeq_epi8(v, dot));
    m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, lbr),
                                     _mm_or_si128(_mm_cmpeq_epi8(v, lpa),
                                                  _mm_cmpeq_epi8(v, lcu))));
    m = _mm_or_si128(m, _mm_and_si128(_mm_cmpeq_epi8(v, sla), _mm_cmpeq_epi8(next, sla)));
    /* only 'D'/'d' (and 'O'/'o', 'T'/'t') become 'd' ('o', 't') when 0x20 is or-ed in */
    __m128i dw =
        _mm_and_si128(_mm_cmpeq_epi8(_mm_or_si128(v, lower), d), _mm_cmpeq_epi8(prev, sp));
    dw = _mm_and_si128(dw, _mm_and_si128(_mm_cmpeq_epi8(_mm_or_si128(next, lower), o),
                                         _mm_cmpeq_epi8(_mm_or_si128(next2, lower), t)));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(m, dw));
}
#endif

#if defined(SW_HAVE_AVX2_PATHS)
/* anchor_mask16() for p[0..32) with AVX2; reads p[-1] to p[33]. */
__attribute__((target("avx2"))) static inline uint32_t anchor_mask32(const char *p)
{
    const __m256i dot = _mm256_set1_epi8('.'), lbr = _mm256_set1_epi8('['),
                  lpa = _mm256_set1_epi8('('), lcu = _mm256_set1_epi8('{'),
                  sla = _mm256_set1_epi8('/'), d = _mm256_set1_epi8('d'), o = _mm256_set1_epi8('o'),
                  t = _mm256_set1_epi8('t'), sp = _mm256_set1_epi8(' '),
                  lower = _mm256_set1_epi8(0x20);
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i prev = _mm256_loadu_si256((const __m256i *)(const void *)(p - 1));
    __m256i next = _mm256_loadu_si256((const __m256i *)(const void *)(p + 1));
    __m256i next2 = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
    __m256i prev_blank = sw_le_epu8_256(prev, sp);
    __m256i next_blank = sw_le_epu8_256(next, sp);
    __m256i m =
        _mm256_andnot_si256(_mm256_or_si256(prev_blank, next_blank), _mm256_cmpeq_epi8(v, dot));
    m = _mm256_or_si256(
        m, _mm256_or_si256(_mm256_cmpeq_epi8(v, lbr),
                           _mm256_or_si256(_mm256_cmpeq_epi8(v, lpa), _mm256_cmpeq_epi8(v, lcu))));
    m = _mm256_or_si256(m,
                        _mm256_and_si256(_mm256_cmpeq_epi8(v, sla), _mm256_cmpeq_epi8(next, sla)));
    __m256i dw = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(v, lower), d),
                                  _mm256_cmpeq_epi8(prev, sp));
    dw =
        _mm256_and_si256(dw, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(next, lower), o),
                                              _mm256_cmpeq_epi8(_mm256_or_si256(next2, lower), t)));
    return (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(m, dw));
}

/* next_anchor() thirty-two bytes per step; same answers. */
__attribute__((target("avx2"))) static size_t next_anchor_avx2(const char *text, size_t len,
                                                               size_t i)
{
    if (i == 0) {
        if (anchor_at(text, len, 0))
            return 0;
        i = 1;
    }
    for (; i + 34 <= len; i += 32) {
        uint32_t bits = anchor_mask32(text + i);
        if (bits != 0)
            return i + (size_t)__builtin_ctz(bits);
    }
    if (i >= len)
        return len;
    /* The last 1..33 bytes. With room for it, the block that ends two bytes before the text
     * does, masked to the bytes not tested yet (a padded copy would cost a failed store
     * forward on every message), then the last two bytes one at a time. */
    if (len >= 35) {
        size_t j = len - 34;
        /* j < i <= len - 1, so i - j is 1..33: the positions from i on */
        uint32_t bits = i - j < 32 ? anchor_mask32(text + j) & (~0u << (i - j)) : 0;
        if (bits != 0)
            return j + (size_t)__builtin_ctz(bits);
        for (i = i > len - 2 ? i : len - 2; i < len; i++) {
            if (anchor_at(text, len, i))
                return i;
        }
        return len;
    }
    char tail[72] = {0};
    memcpy(tail, text + i - 1, len - i + 1);
    uint64_t bits = anchor_mask32(tail + 1) | ((uint64_t)anchor_mask32(tail + 33) << 32);
    return bits != 0 ? i + (size_t)__builtin_ctzll(bits) : len;
}
#endif

static size_t next_anchor(const char *text, size_t len, size_t i)
{
#if defined(SW_HAVE_AVX2_PATHS)
    if (i < len && sw_cpu_avx2())
        return next_anchor_avx2(text, len, i);
#endif
#if defined(__SSE2__)
    if (i >= len)
        return len;
    if (i == 0) {
        if (anchor_at(text, len, 0))
            return 0;
        i = 1;
    }
    for (; i + 18 <= len; i += 16) {
        unsigned bits = anchor_mask16(text + i);
        if (bits != 0)
            return i + (size_t)__builtin_ctz(bits);
    }
    if (i >= len)
        return len;
    /* the last 1..17 bytes from a zero-padded copy: a zero after the end is blank, not '/',
     * not "ot", so the mask agrees with anchor_at() at the end of the text too */
    char tail[40] = {0};
    memcpy(tail, text + i - 1, len - i + 1);
    unsigned bits = anchor_mask16(tail + 1) | (anchor_mask16(tail + 17) << 16);
    return bits != 0 ? i + (size_t)__builtin_ctz(bits) : len;
#else
    for (; i < len; i++) {
        if (anchor_at(text, len, i))
            return i;
    }
    return len;
#endif
}

unsigned url_extract(const char *text, size_t len, struct url_set *set)
{
    set->n = 0;
    set->dropped = 0;
    set->arena_used = 0;

    size_t floor = 0; /* text before this belongs to an earlier link */
    for (size_t i = next_anchor(text, len, 0); i < len; i = next_anchor(text, len, i + 1)) {
        unsigned char c = (unsigned char)text[i];
        /* a dot-word anchor steps back to the spaces before it; the scan resumes after the
         * anchor, never before it, or "a [.] b" would find the same anchor for ever */
        size_t anchor = i;
        size_t sep;
        if (c == '.') {
            if (i == 0 || i + 1 >= len || label_before(text, 0, i) == 0 ||
                label_at(text, len, i + 1) == 0)
                continue;
        } else if (c == '[' || c == '(' || c == '{' || ((c | 0x20) == 'd' && i > 0 &&
                                                       text[i - 1] == ' ')) {
            size_t from = (c | 0x20) == 'd' ? i - 1 : i;
            while (c != 'd' && c != 'D' && from > 0 && text[from - 1] == ' ' && i - from < 2)
                from--;
            sep = dot_word(text + from, len - from);
            if (sep == 0 || from == 0 || label_before(text, 0, from) == 0 ||
                from + sep >= len || label_at(text, len, from + sep) == 0)
                continue;
            i = from;
        } else if (c == '/' && i >= 3 && i + 2 < len && text[i + 1] == '/') {
            /* a link with a scheme is a link whatever its host: this anchor also finds the
             * hosts without a dot to anchor on, "http://[2001:db8::1]/" and the decimal IPv4
             * "http://2130706433/" */
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
        if (i < floor) {
            i = anchor;
            continue;
        }
        const struct scheme *sch;
        size_t host_start;
        size_t start = link_start(text, i, floor, &sch, &host_start);
        if (start == (size_t)-1) {
            /* skip the rest of the e-mail address */
            i = skip_run(text, len, anchor);
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
            i = skip_run(text, len, anchor);
        }
    }
    return set->n;
}
