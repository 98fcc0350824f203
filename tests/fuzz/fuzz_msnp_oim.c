/* Fuzz target for protocols/msnp/msnp_oim.c. The input is parsed as a Mail-Data value with the
 * default limits and with tight ones taken from its last byte; then every entry's fields and the
 * whole input are decoded. Besides memory safety it checks that entries lie inside <MD> in
 * order without overlapping, that each field lies inside its entry and within field_max, that
 * removing the entries picked by the input's bytes gives a value that parses again with exactly
 * the entries kept (byte for byte), and that the decoder keeps its output bound. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/msnp/msnp_oim.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void in_span(struct msnp_span outer, struct msnp_span in)
{
    check(in.pos >= outer.pos && in.len <= outer.len && in.pos - outer.pos <= outer.len - in.len);
}

static void decode(const uint8_t *s, size_t n, size_t small)
{
    size_t cap = MSNP_OIM_DECODED_MAX(n), got = 0;
    char *out = malloc(cap);
    check(out != NULL);
    check(msnp_oim_decode(s, n, out, cap, &got) == SW_OK);
    check(got <= cap);
    size_t got2 = 0;
    int rc = msnp_oim_decode(s, n, out, small < cap ? small : cap, &got2);
    check(rc == SW_OK ? got2 == got : (rc == SW_ERROR && got2 == (small < cap ? small : cap)));
    free(out);
}

static void run(const uint8_t *b, size_t len, const struct msnp_oim_limits *lim, uint8_t seed)
{
    struct msnp_oim o;
    if (msnp_oim_parse(b, len, lim, &o) != SW_OK) {
        check(o.err != NULL && o.err_pos <= len);
        return;
    }
    size_t field_max = lim != NULL ? lim->field_max : MSNP_OIM_FIELD_MAX_DEFAULT;
    size_t entries_max = lim != NULL ? lim->entries_max : MSNP_OIM_ENTRIES_MAX_DEFAULT;
    check(o.nentries <= entries_max);
    if (o.too_large) {
        check(o.nentries == 0);
        return;
    }
    check(o.md.len >= 5 && o.md.pos + o.md.len <= len);
    check(b[o.md.pos] == '<' && b[o.md.pos + o.md.len - 1] == '>');
    bool drop[MSNP_OIM_ENTRIES_CAP];
    size_t end = o.md.pos, kept = 0;
    for (size_t i = 0; i < o.nentries; i++) {
        const struct msnp_oim_entry *e = &o.entries[i];
        in_span(o.md, e->m);
        check(e->m.pos >= end);
        end = e->m.pos + e->m.len;
        check(memcmp(b + e->m.pos, "<M", 2) == 0 && b[end - 1] == '>');
        const struct msnp_span *f[] = {&e->e, &e->n, &e->su, &e->i};
        const bool h[] = {e->has_e, e->has_n, e->has_su, e->has_i};
        for (size_t k = 0; k < 4; k++) {
            check(h[k] || f[k]->len == 0);
            if (!h[k])
                continue;
            in_span(e->m, *f[k]);
            check(f[k]->len <= field_max);
            check(memchr(b + f[k]->pos, '<', f[k]->len) == NULL);
            decode(b + f[k]->pos, f[k]->len, seed % 16);
        }
        drop[i] = (seed >> (i % 8)) & 1;
        kept += !drop[i];
    }
    uint8_t *out = malloc(len > 0 ? len : 1);
    check(out != NULL);
    size_t n = 0;
    check(msnp_oim_remove(b, len, &o, drop, out, len, &n) == SW_OK);
    uint8_t *exact = malloc(n > 0 ? n : 1);
    check(exact != NULL);
    memcpy(exact, out, n);
    struct msnp_oim again;
    check(msnp_oim_parse(exact, n, lim, &again) == SW_OK);
    check(again.nentries == kept);
    for (size_t i = 0, j = 0; i < o.nentries; i++) {
        if (drop[i])
            continue;
        check(again.entries[j].m.len == o.entries[i].m.len);
        check(memcmp(exact + again.entries[j].m.pos, b + o.entries[i].m.pos, o.entries[i].m.len) ==
              0);
        j++;
    }
    size_t n2 = 0;
    if (n > 0)
        check(msnp_oim_remove(b, len, &o, drop, out, n - 1, &n2) == SW_ERROR);
    free(exact);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *b = malloc(size > 0 ? size : 1);
    check(b != NULL);
    if (size > 0)
        memcpy(b, data, size);
    uint8_t seed = size > 0 ? data[size - 1] : 0;
    run(b, size, NULL, seed);
    struct msnp_oim_limits lim = {1 + seed % 4, 1 + seed % 32};
    run(b, size, &lim, (uint8_t)(seed ^ 0x5a));
    decode(b, size, seed);
    free(b);
    return 0;
}
