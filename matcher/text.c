/* Text normalisation and body fingerprints (see text.h).
 *
 * The fast path (pure ASCII, no '&') is a word-at-a-time check plus memcpy; everything else
 * goes through one decoding loop that turns each input character (UTF-8 sequence or entity
 * reference) into a code point and then folds it. Look-alike letters from Cyrillic and Greek
 * are folded only inside words that also hold ASCII letters ("pаypal" with a Cyrillic а), so
 * ordinary Russian or Greek text is left as written. */
#include "matcher/text.h"

#include <stdbool.h>
#include <string.h>

#include "matcher/hash.h"

#define HIGH_BITS 0x8080808080808080ULL

/* True if any of the 8 bytes has the high bit set or equals '&'. */
static inline bool word_special(uint64_t w)
{
    uint64_t amp = w ^ 0x2626262626262626ULL; /* '&' bytes become zero */
    uint64_t zero = (amp - 0x0101010101010101ULL) & ~amp & HIGH_BITS;
    return ((w & HIGH_BITS) | zero) != 0;
}

static bool all_plain_ascii(const char *s, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (word_special(w))
            return false;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == '&')
            return false;
    }
    return true;
}

/* Decodes one UTF-8 sequence at s[0..len). Returns its length and sets *cp, or 0 if the bytes
 * are not a valid, shortest-form sequence of a Unicode scalar value. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        if (len < 2 || (s[1] & 0xc0) != 0x80)
            return 0;
        *cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        uint32_t v = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))
            return 0;
        *cp = v;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (len < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                     ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        if (v < 0x10000 || v > 0x10ffff)
            return 0;
        *cp = v;
        return 4;
    }
    return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses an entity or character reference at s[0] == '&'. Returns its length and sets *cp, or
 * 0 if it is not a complete, valid reference (then '&' is an ordinary character). */
static size_t entity_decode(const char *s, size_t len, uint32_t *cp)
{
    static const struct {
        const char *name;
        size_t len;
        uint32_t cp;
    } named[] = {{"&amp;", 5, '&'},
                 {"&lt;", 4, '<'},
                 {"&gt;", 4, '>'},
                 {"&quot;", 6, '"'},
                 {"&apos;", 6, '\''}};

    if (len >= 2 && s[1] != '#') {
        for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
            if (len >= named[i].len && memcmp(s, named[i].name, named[i].len) == 0) {
                *cp = named[i].cp;
                return named[i].len;
            }
        }
        return 0;
    }
    if (len < 4)
        return 0;
    size_t i = 2;
    uint32_t v = 0;
    unsigned digits = 0;
    bool hex = s[2] == 'x';
    if (hex)
        i++;
    for (; i < len && digits <= 8; i++, digits++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        v = v * (hex ? 16u : 10u) + d;
        if (v > 0x10ffff)
            return 0;
    }
    if (digits == 0 || i >= len || s[i] != ';')
        return 0;
    if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return i + 1;
}

static bool is_invisible(uint32_t cp)
{
    return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff || cp == 0x00ad || cp == 0x180e ||
           cp == 0x034f || cp == 0x061c || (cp >= 0x2066 && cp <= 0x2069);
}

static bool is_unicode_space(uint32_t cp)
{
    return cp == 0x00a0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Cyrillic and Greek letters that look like Latin ones; 0 if cp is not one. */
static char confusable_ascii(uint32_t cp)
{
    switch (cp) {
    /* Cyrillic small */
    case 0x0430: return 'a';
    case 0x0435: return 'e';
    case 0x043e: return 'o';
    case 0x0440: return 'p';
    case 0x0441: return 'c';
    case 0x0443: return 'y';
    case 0x0445: return 'x';
    case 0x0455: return 's';
    case 0x0456: return 'i';
    case 0x0458: return 'j';
    case 0x04bb: return 'h';
    case 0x04cf: return 'l';
    case 0x0501: return 'd';
    case 0x051b: return 'q';
    case 0x051d: return 'w';
    /* Cyrillic capital */
    case 0x0405: return 'S';
    case 0x0406: return 'I';
    case 0x0408: return 'J';
    case 0x0410: return 'A';
    case 0x0412: return 'B';
    case 0x0415: return 'E';
    case 0x041a: return 'K';
    case 0x041c: return 'M';
    case 0x041d: return 'H';
    case 0x041e: return 'O';
    case 0x0420: return 'P';
    case 0x0421: return 'C';
    case 0x0422: return 'T';
    case 0x0423: return 'Y';
    case 0x0425: return 'X';
    /* Greek */
    case 0x03b1: return 'a';
    case 0x03b9: return 'i';
    case 0x03ba: return 'k';
    case 0x03bd: return 'v';
    case 0x03bf: return 'o';
    case 0x03c1: return 'p';
    case 0x03c5: return 'u';
    case 0x0391: return 'A';
    case 0x0392: return 'B';
    case 0x0395: return 'E';
    case 0x0396: return 'Z';
    case 0x0397: return 'H';
    case 0x0399: return 'I';
    case 0x039a: return 'K';
    case 0x039c: return 'M';
    case 0x039d: return 'N';
    case 0x039f: return 'O';
    case 0x03a1: return 'P';
    case 0x03a4: return 'T';
    case 0x03a5: return 'Y';
    case 0x03a7: return 'X';
    /* Latin letters used only to imitate others */
    case 0x0131: return 'i';
    case 0x0251: return 'a';
    case 0x0261: return 'g';
    default:
        return 0;
    }
}

/* Mathematical alphanumeric symbols (bold, italic, script, ... A-Z a-z 0-9) to ASCII. */
static char math_ascii(uint32_t cp)
{
    if (cp >= 0x1d400 && cp <= 0x1d6a3) {
        unsigned idx = (cp - 0x1d400) % 52;
        return (char)(idx < 26 ? 'A' + idx : 'a' + (idx - 26));
    }
    if (cp >= 0x1d7ce && cp <= 0x1d7ff)
        return (char)('0' + (cp - 0x1d7ce) % 10);
    return 0;
}

static bool is_ascii_letter(uint32_t cp)
{
    return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
}

/* Reads the character at s[i]: an entity reference or a UTF-8 sequence. Returns the number of
 * input bytes it covers (0 for an invalid UTF-8 byte, which the caller copies as is). */
static size_t next_char(const char *s, size_t len, size_t i, uint32_t *cp, bool *entity)
{
    *entity = false;
    if (s[i] == '&') {
        size_t n = entity_decode(s + i, len - i, cp);
        if (n > 0) {
            *entity = true;
            return n;
        }
        *cp = '&';
        return 1;
    }
    return utf8_decode((const unsigned char *)s + i, len - i, cp);
}

/* Whether the word starting at s[i] mixes ASCII letters with look-alikes, so that its
 * look-alikes should be folded. A word runs over ASCII letters and digits, look-alikes and
 * other Cyrillic/Greek letters, and invisible characters (which hide word boundaries). */
static bool word_is_mixed(const char *s, size_t len, size_t i)
{
    bool ascii = false, lookalike = false;
    while (i < len) {
        uint32_t cp;
        bool entity;
        size_t n = next_char(s, len, i, &cp, &entity);
        if (n == 0)
            break;
        if (is_ascii_letter(cp) || (cp >= '0' && cp <= '9'))
            ascii |= is_ascii_letter(cp);
        else if (confusable_ascii(cp))
            lookalike = true;
        else if (!((cp >= 0x0370 && cp <= 0x052f) || is_invisible(cp)))
            break;
        i += n;
    }
    return ascii && lookalike;
}

static bool is_word_char(uint32_t cp)
{
    return is_ascii_letter(cp) || (cp >= '0' && cp <= '9') || (cp >= 0x0370 && cp <= 0x052f) ||
           is_invisible(cp) || confusable_ascii(cp) != 0;
}

/* End (input offset) of the word that contains offset i. */
static size_t word_end_from(const char *s, size_t len, size_t i)
{
    while (i < len) {
        uint32_t cp;
        bool entity;
        size_t n = next_char(s, len, i, &cp, &entity);
        if (n == 0 || !is_word_char(cp))
            break;
        i += n;
    }
    return i;
}

void text_normalize(const char *in, size_t in_len, char *out, struct text_norm *res)
{
    memset(res, 0, sizeof(*res));
    if (all_plain_ascii(in, in_len)) {
        memcpy(out, in, in_len);
        res->len = in_len;
        return;
    }

    size_t o = 0, i = 0;
    size_t word_start = 0; /* input offset where the current word began */
    size_t word_end = 0;   /* the look-alike decision holds up to here */
    bool word_fold = false;
    while (i < in_len) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x80 && c != '&') {
            if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9')))
                word_start = i + 1;
            out[o++] = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        bool entity;
        size_t n = next_char(in, in_len, i, &cp, &entity);
        if (n == 0) {
            out[o++] = (char)c;
            res->flags |= TEXT_F_BAD_UTF8;
            word_start = ++i;
            continue;
        }
        if (entity)
            res->flags |= TEXT_F_ENTITY;
        if (!is_word_char(cp))
            word_start = i + n;

        char a;
        if (is_invisible(cp)) {
            res->flags |= TEXT_F_ZERO_WIDTH;
            res->zero_width++;
        } else if (cp >= 0xff01 && cp <= 0xff5e) {
            out[o++] = (char)(cp - 0xfee0);
            res->flags |= TEXT_F_FULLWIDTH;
            res->folded++;
        } else if (is_unicode_space(cp)) {
            out[o++] = ' ';
            res->flags |= TEXT_F_SPACE;
        } else if ((a = math_ascii(cp)) != 0) {
            out[o++] = a;
            res->flags |= TEXT_F_MATH_ALNUM;
            res->folded++;
        } else if ((a = confusable_ascii(cp)) != 0) {
            if (i >= word_end) {
                /* decide once for the whole word, the part before i included */
                word_fold = word_is_mixed(in, in_len, word_start);
                word_end = word_end_from(in, in_len, i);
            }
            if (word_fold) {
                out[o++] = a;
                res->flags |= TEXT_F_CONFUSABLE;
                res->folded++;
            } else {
                o += utf8_encode(cp, out + o);
            }
        } else {
            o += utf8_encode(cp, out + o);
        }
        i += n;
    }
    res->len = o;
}

/* --- fingerprint ----------------------------------------------------------------------- */

#define FP_CHUNK 64

struct fp_state {
    uint64_t h;
    char buf[FP_CHUNK];
    size_t n;
    size_t total;     /* folded bytes, markers excluded */
    bool pending_sep; /* a separator run is waiting for the next character */
    bool any;         /* something was emitted */
};

static void fp_flush(struct fp_state *st)
{
    if (st->n == 0)
        return;
    st->h = sw_hash_combine(st->h, sw_hash64(st->buf, st->n, 0x6670u));
    st->n = 0;
}

static inline void fp_put(struct fp_state *st, char c)
{
    if (st->pending_sep && st->any) {
        if (st->n == FP_CHUNK)
            fp_flush(st);
        st->buf[st->n++] = ' ';
    }
    st->pending_sep = false;
    if (st->n == FP_CHUNK)
        fp_flush(st);
    st->buf[st->n++] = c;
    st->any = true;
}

uint64_t text_fingerprint(const char *norm, size_t len, const struct text_span *spans, size_t n,
                          size_t *folded_len)
{
    struct fp_state st = {.h = 0x5370696d77616c6cULL};
    size_t si = 0;

    for (size_t i = 0; i < len;) {
        if (si < n && i >= spans[si].off) {
            /* one marker per URL, whatever the URL said */
            fp_put(&st, '\x01');
            i = spans[si].off + spans[si].len;
            si++;
            continue;
        }
        unsigned char c = (unsigned char)norm[i++];
        if (c >= '0' && c <= '9')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c >= 0x80 || (c >= 'a' && c <= 'z')) {
            fp_put(&st, (char)c);
            st.total++;
        } else {
            st.pending_sep = true;
        }
    }
    fp_flush(&st);
    if (folded_len != NULL)
        *folded_len = st.total;
    return sw_hash_mix(st.h ^ st.total);
}
