/* Fuzz target: text_normalize() on arbitrary bytes, then url_extract() and text_fingerprint()
 * on the result, checking the contracts of matcher/text.h and matcher/url.h (whitespace runs
 * folded included). The first byte
 * picks small set bounds now and then so that the max-items and arena-overflow paths run too.
 * Where the CPU has AVX2, the three are run again on the baseline paths (matcher/cpu.h) and
 * must give the same bytes, links and fingerprint. */
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/cpu.h"
#include "matcher/text.h"
#include "matcher/url.h"

#define FUZZ_MAX_INPUT 65536

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t sn)
{
    return sn <= n && memcmp(s + n - sn, suffix, sn) == 0;
}

/* Whether s[0..n) is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 2, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 3, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < k)
            return false;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k;
    }
    return true;
}

static void check_item(const struct url_item *it, const char *text, size_t len)
{
    check(it->span_len > 0 && (size_t)it->span_off + it->span_len <= len);
    check(strlen(it->url) == it->url_len);
    check(strlen(it->host) == it->host_len && it->host_len > 0);
    check(strlen(it->path) == it->path_len);
    for (uint32_t k = 0; k < it->host_len; k++) {
        unsigned char c = (unsigned char)it->host[k];
        check(c > ' ' && c != 0x7f && !(c >= 'A' && c <= 'Z'));
    }
    check(valid_utf8((const unsigned char *)it->host, it->host_len));
    /* the domain is a suffix of the host, on a label boundary */
    check(it->domain >= it->host && it->domain + it->domain_len == it->host + it->host_len);
    check(it->domain_len > 0);
    check(it->domain == it->host || it->domain[-1] == '.');
    /* the url holds the host after "://" and ends with the path */
    const char *sep = strstr(it->url, "://");
    check(sep != NULL && strncmp(sep + 3, it->host, it->host_len) == 0);
    check(ends_with(it->url, it->url_len, it->path, it->path_len));
    check(it->path + it->path_len == it->url + it->url_len);
    (void)text;
}

/* The URL sets an input picks from by its first byte: a roomy one, and one so small that its
 * link and arena limits are hit and its one domain-cache slot keeps changing hands. Made on
 * first use. */
static struct url_set *pick_set(struct url_set *sets[2], uint8_t first)
{
    if (sets[0] == NULL) {
        sets[0] = url_set_new(16, 8192, 1024);
        sets[1] = url_set_new(2, 64, 1);
        if (sets[0] == NULL || sets[1] == NULL)
            abort();
    }
    return sets[first & 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct url_set *sets[2];
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    struct url_set *set = pick_set(sets, data[0]);
    const char *in = (const char *)data + 1;
    size_t in_len = size - 1;

    /* exactly in_len bytes so that ASan sees any write past the contract's bound */
    char *norm = malloc(in_len > 0 ? in_len : 1);
    if (norm == NULL)
        abort();
    struct text_norm tn;
    text_normalize(in, in_len, norm, &tn);
    check(tn.len <= in_len);
    check(tn.zero_width == 0 || (tn.flags & TEXT_F_ZERO_WIDTH));
    check(tn.flags < (TEXT_F_MATH_ALNUM << 1));
    /* whitespace runs are folded: no two neighbouring whitespace bytes, and only ' ' or '\n' */
    for (size_t i = 0; i < tn.len; i++) {
        unsigned char c = (unsigned char)norm[i];
        bool ws = c == ' ' || (c >= '\t' && c <= '\r');
        check(!ws || c == ' ' || c == '\n');
        check(!ws || i + 1 == tn.len || !(norm[i + 1] == ' ' || norm[i + 1] == '\n'));
    }

    unsigned n = url_extract(norm, tn.len, set);
    check(n == set->n && n <= set->max);
    check(set->arena_used <= set->arena_cap);
    struct text_span spans[16];
    for (unsigned i = 0; i < n; i++) {
        const struct url_item *it = &set->items[i];
        check_item(it, norm, tn.len);
        check(it->url >= set->arena && it->url + it->url_len < set->arena + set->arena_used);
        if (i > 0)
            check(it->span_off >= set->items[i - 1].span_off + set->items[i - 1].span_len);
        spans[i].off = it->span_off;
        spans[i].len = it->span_len;
    }
    size_t folded = 0;
    uint64_t fp = text_fingerprint(norm, tn.len, spans, n, &folded);
    check(folded <= tn.len);
    /* deterministic */
    check(fp == text_fingerprint(norm, tn.len, spans, n, NULL));

    /* every lower tier (AVX2, baseline) must give what the tier in use gave */
    static struct url_set *base_set[2];
    enum sw_cpu_tier used = sw_cpu_tier();
    for (int tier = (int)used - 1; tier >= SW_CPU_BASELINE; tier--) {
        struct url_set *bs = pick_set(base_set, data[0]);
        char *bnorm = malloc(in_len > 0 ? in_len : 1);
        if (bnorm == NULL)
            abort();
        struct text_norm btn;
        sw_cpu_force_tier((enum sw_cpu_tier)tier);
        text_normalize(in, in_len, bnorm, &btn);
        check(btn.len == tn.len && btn.flags == tn.flags && memcmp(bnorm, norm, tn.len) == 0);
        check(url_extract(bnorm, btn.len, bs) == n);
        for (unsigned i = 0; i < n; i++) {
            check(bs->items[i].span_off == set->items[i].span_off);
            check(bs->items[i].span_len == set->items[i].span_len);
            check(strcmp(bs->items[i].url, set->items[i].url) == 0);
        }
        size_t bfolded = 0;
        check(text_fingerprint(bnorm, btn.len, spans, n, &bfolded) == fp && bfolded == folded);
        free(bnorm);
    }
    sw_cpu_force_tier(used);
    free(norm);
    return 0;
}
