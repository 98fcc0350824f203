/* MSNP OIM metadata parser and RFC 2047 decoder. See msnp_oim.h for the contract and
 * docs/msnp.md ("Offline messages") for the format.
 *
 * The XML is read by one recursive descent bounded by MSNP_OIM_DEPTH_MAX (so the stack is
 * bounded too); each element is:
 *
 *   '<' name ( "/>"                                   empty
 *            | '>' ws* ( "</" -> text (only ws)        leaf
 *                      | '<'  -> element, ws*, ...     children, until "</"
 *                      | text until '<' )              leaf
 *              "</" name '>' )
 *
 * Children of <MD> named M open an entry; the leaf children E, N, SU, I of an entry are its
 * fields. Nothing is copied: entries and fields are spans of the value. */
#include "protocols/msnp/msnp_oim.h"

#include <string.h>

#include "protocols/ascii.h"
#include "protocols/msnp/msnp_b64.h"
#include "protocols/utf8.h"
#include "protocols/xmlref.h"

void msnp_oim_limits_default(struct msnp_oim_limits *lim)
{
    lim->entries_max = MSNP_OIM_ENTRIES_MAX_DEFAULT;
    lim->field_max = MSNP_OIM_FIELD_MAX_DEFAULT;
}

/* --- the Mail-Data XML ------------------------------------------------------------------ */

struct px {
    const uint8_t *b;
    size_t len;
    size_t pos;
    const struct msnp_oim_limits *lim;
    struct msnp_oim *o;
};

/* One parsed element: its name, the whole element, and for a leaf its text. */
struct el {
    struct msnp_span name, whole, text;
    bool leaf;
};

static int fail(struct px *x, const char *why, size_t pos)
{
    x->o->err = why;
    x->o->err_pos = pos;
    return SW_ERROR;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

static void skip_ws(struct px *x)
{
    while (x->pos < x->len && is_ws(x->b[x->pos]))
        x->pos++;
}

static bool at(const struct px *x, const char *lit)
{
    size_t n = strlen(lit);
    return x->len - x->pos >= n && memcmp(x->b + x->pos, lit, n) == 0;
}

static bool name_is(const struct px *x, struct msnp_span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(x->b + s.pos, lit, s.len) == 0;
}

/* A field of entry e: the leaf child c of its <M>. Other children are ignored. */
static int field(struct px *x, struct msnp_oim_entry *e, const struct el *c)
{
    static const char *const names[] = {"E", "N", "SU", "I"};
    struct msnp_span *spans[] = {&e->e, &e->n, &e->su, &e->i};
    bool *has[] = {&e->has_e, &e->has_n, &e->has_su, &e->has_i};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (!name_is(x, c->name, names[k]))
            continue;
        if (!c->leaf)
            return fail(x, "entry field with child elements", c->whole.pos);
        if (*has[k])
            return fail(x, "entry field twice", c->whole.pos);
        if (c->text.len > x->lim->field_max)
            return fail(x, "entry field too long", c->text.pos + x->lim->field_max);
        *has[k] = true;
        *spans[k] = c->text;
        return SW_OK;
    }
    return SW_OK;
}

static int element(struct px *x, unsigned depth, struct el *out);

/* The content and end tag of element out (its start tag, from start, ends at x->pos): children
 * or text. mine is the entry out opens (NULL unless out is an <M> under the root). */
static int content(struct px *x, unsigned depth, struct el *out, struct msnp_oim_entry *mine,
                   size_t start)
{
    size_t c0 = x->pos;
    skip_ws(x);
    if (at(x, "<") && !at(x, "</")) {
        while (!at(x, "</")) {
            struct el child;
            if (element(x, depth + 1, &child) != SW_OK)
                return SW_ERROR;
            if (mine != NULL && field(x, mine, &child) != SW_OK)
                return SW_ERROR;
            skip_ws(x);
            if (x->pos >= x->len)
                return fail(x, "element not closed", start);
            if (!at(x, "<"))
                return fail(x, "text mixed with elements", x->pos);
        }
    } else {
        out->leaf = true;
        const uint8_t *lt = memchr(x->b + x->pos, '<', x->len - x->pos);
        if (lt == NULL)
            return fail(x, "element not closed", start);
        x->pos = (size_t)(lt - x->b);
        out->text = (struct msnp_span){c0, x->pos - c0};
        if (!at(x, "</"))
            return fail(x, "text mixed with elements", x->pos);
    }
    /* "</" name ">" */
    x->pos += 2;
    if (x->len - x->pos < out->name.len + 1 ||
        memcmp(x->b + x->pos, x->b + out->name.pos, out->name.len) != 0 ||
        x->b[x->pos + out->name.len] != '>')
        return fail(x, "end tag does not match", x->pos);
    x->pos += out->name.len + 1;
    return SW_OK;
}

/* Parses the element at x->pos at nesting depth (1 = the root) into *out; an <M> child of the
 * root becomes the next entry, its leaf children E, N, SU, I the entry's fields. */
static int element(struct px *x, unsigned depth, struct el *out)
{
    size_t start = x->pos;
    memset(out, 0, sizeof(*out));
    if (depth > MSNP_OIM_DEPTH_MAX)
        return fail(x, "elements nested too deep", start);
    if (!at(x, "<"))
        return fail(x, "expected an element", start);
    x->pos++;
    size_t n0 = x->pos;
    while (x->pos < x->len && is_name(x->b[x->pos]) && x->pos - n0 < MSNP_OIM_NAME_MAX + 1)
        x->pos++;
    out->name = (struct msnp_span){n0, x->pos - n0};
    if (out->name.len == 0 || out->name.len > MSNP_OIM_NAME_MAX)
        return fail(x, "bad element name", n0);
    /* an <M> directly under the root opens an entry */
    struct msnp_oim_entry *mine = NULL;
    if (depth == 2 && name_is(x, out->name, "M")) {
        if (x->o->nentries >= x->lim->entries_max)
            return fail(x, "too many entries", start);
        mine = &x->o->entries[x->o->nentries];
        memset(mine, 0, sizeof(*mine));
    }
    if (at(x, "/>")) {
        x->pos += 2;
        out->leaf = true;
        out->text = (struct msnp_span){x->pos, 0};
    } else if (!at(x, ">")) {
        return fail(x, "bad start tag", x->pos);
    } else {
        x->pos++;
        if (content(x, depth, out, mine, start) != SW_OK)
            return SW_ERROR;
    }
    out->whole = (struct msnp_span){start, x->pos - start};
    if (mine != NULL) {
        mine->m = out->whole;
        x->o->nentries++;
    }
    return SW_OK;
}

int msnp_oim_parse(const uint8_t *buf, size_t len, const struct msnp_oim_limits *lim,
                   struct msnp_oim *out)
{
    struct msnp_oim_limits def;
    struct px x = {buf, len, 0, lim, out};
    out->err = NULL;
    out->err_pos = 0;
    out->too_large = false;
    out->md = (struct msnp_span){0, 0};
    out->nentries = 0;
    if (lim == NULL) {
        msnp_oim_limits_default(&def);
        x.lim = &def;
    }
    if (x.lim->entries_max < 1 || x.lim->entries_max > MSNP_OIM_ENTRIES_CAP ||
        x.lim->field_max < 1 || x.lim->field_max > MSNP_OIM_FIELD_MAX_LIMIT)
        return fail(&x, "limit out of range", 0);
    skip_ws(&x);
    if (at(&x, "too-large")) {
        x.pos += 9;
        skip_ws(&x);
        if (x.pos != len)
            return fail(&x, "data after too-large", x.pos);
        out->too_large = true;
        return SW_OK;
    }
    struct el md;
    if (element(&x, 1, &md) != SW_OK)
        return SW_ERROR;
    if (!name_is(&x, md.name, "MD"))
        return fail(&x, "root is not MD", md.name.pos);
    for (size_t i = md.text.pos; md.leaf && i < md.text.pos + md.text.len; i++) {
        if (!is_ws(buf[i]))
            return fail(&x, "text in MD", i);
    }
    skip_ws(&x);
    if (x.pos != len)
        return fail(&x, "data after MD", x.pos);
    out->md = md.whole;
    return SW_OK;
}

int msnp_oim_remove(const uint8_t *buf, size_t len, const struct msnp_oim *o, const bool *drop,
                    uint8_t *out, size_t cap, size_t *out_len)
{
    size_t w = 0, from = 0;
    for (size_t i = 0; i <= o->nentries; i++) {
        size_t to = i < o->nentries ? o->entries[i].m.pos : len;
        if (i < o->nentries && !drop[i])
            continue;
        if (to - from > cap - w)
            return SW_ERROR;
        memcpy(out + w, buf + from, to - from);
        w += to - from;
        if (i < o->nentries)
            from = o->entries[i].m.pos + o->entries[i].m.len;
    }
    *out_len = w;
    return SW_OK;
}

/* --- field text: XML entities and RFC 2047 encoded-words --------------------------------- */

struct dout {
    char *p;
    size_t cap, n;
    bool full;
};

static void put(struct dout *d, uint8_t c)
{
    if (d->n < d->cap)
        d->p[d->n++] = (char)c;
    else
        d->full = true;
}

static void put_cp(struct dout *d, uint32_t c)
{
    char u[4];
    size_t n = utf8_encode(c, u);
    for (size_t k = 0; k < n; k++)
        put(d, (uint8_t)u[k]);
}

enum charset { CS_UTF8, CS_LATIN1, CS_OTHER };

/* Emits one decoded byte of an encoded-word in charset cs. */
static void put_cs(struct dout *d, enum charset cs, uint8_t c)
{
    if (cs == CS_LATIN1)
        put_cp(d, c);
    else
        put(d, c);
}

/* Checks the encoded text t[0..n) of a B or Q word; emits it when d is not NULL. */
static bool word_text(struct dout *d, enum charset cs, bool b64, const uint8_t *t, size_t n)
{
    if (b64) {
        uint32_t acc = 0;
        int bits = 0;
        size_t i = 0;
        for (; i < n && t[i] != '='; i++) {
            int v = msnp_b64_val(t[i]);
            if (v < 0)
                return false;
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                if (d != NULL)
                    put_cs(d, cs, (uint8_t)(acc >> bits));
            }
        }
        for (; i < n; i++) { /* only padding after the first '=' */
            if (t[i] != '=')
                return false;
        }
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = t[i];
        if (c <= 0x20 || c >= 0x7f)
            return false; /* Q text is printable ASCII */
        if (c == '=') {
            if (i + 2 >= n || sw_hex_val(t[i + 1]) < 0 || sw_hex_val(t[i + 2]) < 0)
                return false;
            c = (uint8_t)(sw_hex_val(t[i + 1]) << 4 | sw_hex_val(t[i + 2]));
            i += 2;
        } else if (c == '_') {
            c = ' ';
        }
        if (d != NULL)
            put_cs(d, cs, c);
    }
    return true;
}

/* An encoded-word `=?charset?B|Q?text?=` at s[0..n): its length, or 0 if there is none. Emits
 * the decoded text into d when the charset is known; an unknown charset is copied as is. */
static size_t encoded_word(struct dout *d, const uint8_t *s, size_t n)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t i = 2;
    while (i < n && s[i] != '?' && s[i] > ' ' && s[i] < 0x7f)
        i++;
    size_t cs_end = i;
    if (i + 3 >= n || s[i] != '?' || s[i + 2] != '?' || cs_end == 2)
        return 0;
    uint8_t enc = (uint8_t)sw_ascii_lower(s[i + 1]);
    if (enc != 'b' && enc != 'q')
        return 0;
    size_t t0 = i + 3, t = t0;
    while (t + 1 < n && !(s[t] == '?' && s[t + 1] == '='))
        t++;
    if (t + 1 >= n)
        return 0;
    size_t wlen = t + 2;
    /* RFC 2231: charset*language */
    const uint8_t *cs = s + 2;
    size_t csl = cs_end - 2;
    const uint8_t *star = memchr(cs, '*', csl);
    if (star != NULL)
        csl = (size_t)(star - cs);
    enum charset c = CS_OTHER;
    if (sw_ascii_eq_ci(cs, csl, "utf-8") || sw_ascii_eq_ci(cs, csl, "utf8") ||
        sw_ascii_eq_ci(cs, csl, "us-ascii") || sw_ascii_eq_ci(cs, csl, "ascii"))
        c = CS_UTF8;
    else if (sw_ascii_eq_ci(cs, csl, "iso-8859-1") || sw_ascii_eq_ci(cs, csl, "latin1") ||
             sw_ascii_eq_ci(cs, csl, "iso_8859-1"))
        c = CS_LATIN1;
    if (!word_text(NULL, c, enc == 'b', s + t0, t - t0))
        return 0;
    if (c == CS_OTHER) {
        for (size_t k = 0; k < wlen; k++)
            put(d, s[k]);
    } else {
        word_text(d, c, enc == 'b', s + t0, t - t0);
    }
    return wlen;
}

int msnp_oim_decode(const uint8_t *src, size_t len, char *out, size_t cap, size_t *out_len)
{
    struct dout d = {out, cap, 0, false};
    size_t i = 0;
    bool after_word = false; /* the last thing read was an encoded-word */
    while (i < len) {
        /* whitespace between two encoded-words is not part of the text (RFC 2047 6.2) */
        if (after_word && is_ws(src[i])) {
            size_t j = i;
            while (j < len && is_ws(src[j]))
                j++;
            struct dout probe = {NULL, 0, 0, false};
            if (j < len && encoded_word(&probe, src + j, len - j) > 0) {
                i = j;
                continue;
            }
        }
        size_t wl = encoded_word(&d, src + i, len - i);
        if (wl > 0) {
            i += wl;
            after_word = true;
            continue;
        }
        after_word = false;
        uint32_t cp;
        size_t adv;
        if (src[i] == '&' && (adv = xml_ref((const char *)src + i, len - i, 0, &cp)) > 0) {
            put_cp(&d, cp);
            i += adv;
            continue;
        }
        put(&d, src[i++]);
    }
    *out_len = d.n;
    return d.full ? SW_ERROR : SW_OK;
}
