/* URL extraction from normalised message text.
 *
 * Finds links the way a spimmer writes them to get past filters: with a scheme (http, https,
 * ftp, and the defanged hxxp/hxxps/h**p forms), scheme-less "www." hosts, bare hosts whose last
 * label is a real public suffix ("evil.ru/pics.zip"), and hosts written with "[.]", "(.)",
 * "{.}", "[dot]", "(dot)" or " dot " in place of dots. Every host is reduced to its registrable
 * domain with libpsl. Pure: no I/O; the only allocation is url_set_new(). */
#ifndef SW_MATCHER_URL_H
#define SW_MATCHER_URL_H

#include <stddef.h>
#include <stdint.h>

enum url_flag {
    URL_F_SCHEMELESS = 1u << 0, /* no scheme: "www.x.com" or a bare host */
    URL_F_DEFANGED = 1u << 1,   /* hxxp://, h**p:// and similar scheme spellings */
    URL_F_DOT_WORD = 1u << 2,   /* "[.]", "(.)", "{.}", "[dot]", "(dot)", " dot " used for dots */
    URL_F_IP_HOST = 1u << 3,    /* host is a literal IPv4 or IPv6 address */
    URL_F_USERINFO = 1u << 4,   /* "user@host" form (http://paypal.com@evil.ru) */
    URL_F_PUNYCODE = 1u << 5,   /* a host label starts with xn-- */
    URL_F_NO_SUFFIX = 1u << 6,  /* last label is not on the public suffix list; domain then
                                 * follows the list's implicit "*" rule ("www.x.example" ->
                                 * "x.example"), or is the host if it has a single label */
};

struct url_item {
    uint32_t span_off, span_len; /* where it stood in the scanned text */
    /* Canonical form, deobfuscated: "scheme://host[:port]/path?query", scheme lower-cased
     * ("hxxp" becomes "http", scheme-less gets "http"), host lower-cased; stored in the set's
     * arena, NUL-terminated. */
    const char *url;
    uint32_t url_len;
    const char *host; /* lower-cased host, NUL-terminated, in the arena */
    uint32_t host_len;
    const char *domain; /* registrable domain per libpsl, points into host (or == host) */
    uint32_t domain_len;
    const char *path; /* path+query, "" if none, points into url */
    uint32_t path_len;
    unsigned flags; /* enum url_flag bits */
};

struct url_domain_entry; /* url.c: the registrable domain of a recently seen host */

struct url_set {
    struct url_item *items;
    unsigned n;       /* items found */
    unsigned max;     /* bound on items (config: matcher.max_urls) */
    unsigned dropped; /* links seen beyond max, or that did not fit the arena */
    char *arena;
    size_t arena_cap, arena_used;
    struct url_domain_entry *dcache; /* per set, so per thread; NULL: off */
    unsigned dcache_mask;            /* its slots - 1 */
};

/* Allocates a set for at most max_urls items with an arena of arena_bytes for their strings and
 * a cache of the registrable domains of domain_cache_slots hosts (0 or a power of two; 0: none).
 * Returns NULL on allocation failure or a slot count that is not a power of two. Free with
 * url_set_free(). One per thread. */
struct url_set *url_set_new(unsigned max_urls, size_t arena_bytes, unsigned domain_cache_slots);
void url_set_free(struct url_set *set);
/* The domain cache slots set was made with (0: none). */
static inline unsigned url_set_domain_slots(const struct url_set *set)
{
    return set->dcache != NULL ? set->dcache_mask + 1 : 0;
}

/* Extracts the links of text[0..len) (normalised text, see text.h) into set, replacing what it
 * held. Items come in text order and their spans never overlap. A URL that does not fit the arena
 * is counted in set->dropped, never truncated into a wrong host. Returns set->n. Never fails;
 * thread-safe given one set per thread (libpsl's built-in list is read-only). */
unsigned url_extract(const char *text, size_t len, struct url_set *set);

/* Reduces a lower-cased host to its registrable domain with libpsl. Returns a pointer into host
 * and its length in *dlen; returns host itself (and sets *dlen = strlen(host)) when the host is
 * an IP literal or has no registrable domain. */
const char *url_registrable_domain(const char *host, size_t *dlen);

#endif
