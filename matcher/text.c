/* Text normalisation and body fingerprints (see text.h).
 *
 * The fast path (pure ASCII, no '&') is a word-at-a-time check plus memcpy; everything else
 * goes through one decoding loop that turns each input character (UTF-8 sequence or entity
 * reference) into a code point and then folds it. Look-alike letters from Cyrillic and Greek
 * are folded only inside words that also hold ASCII letters ("pаypal" with a Cyrillic а), so
 * ordinary Russian or Greek text is left as written. */
#include "matcher/text.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "matcher/cpu.h"
#include "matcher/hash.h"
#include "matcher/simd.h"
#include "protocols/utf8.h"
#include "protocols/xmlref.h"
#if defined(SW_HAVE_AVX2_PATHS)
#include <immintrin.h>
#endif

#define HIGH_BITS 0x8080808080808080ULL

#if !defined(__SSE2__)
/* True if any of the 8 bytes has the high bit set or equals '&'. */
static inline bool word_special(uint64_t w)
{
    uint64_t amp = w ^ 0x2626262626262626ULL; /* '&' bytes become zero */
    uint64_t zero = (amp - 0x0101010101010101ULL) & ~amp & HIGH_BITS;
    return ((w & HIGH_BITS) | zero) != 0;
}
#endif

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

/* The look-alikes of the Greek and Cyrillic blocks (U+0370..U+052F) by offset, for the hot
 * path: Russian or Greek text runs through here once per letter. Every index is a letter; 0
 * means a letter of the script that does not pass for Latin. */
#define SCRIPT_LO 0x0370u
#define SCRIPT_HI 0x052fu
static const char script_lookalike[SCRIPT_HI - SCRIPT_LO + 1] = {
    [0x00f] = 'J', [0x021] = 'A', [0x022] = 'B', [0x025] = 'E', [0x026] = 'Z', [0x027] = 'H',
    [0x029] = 'I', [0x02a] = 'K', [0x02c] = 'M', [0x02d] = 'N', [0x02f] = 'O', [0x031] = 'P',
    [0x034] = 'T', [0x035] = 'Y', [0x037] = 'X', [0x041] = 'a', [0x049] = 'i', [0x04a] = 'k',
    [0x04d] = 'v', [0x04f] = 'o', [0x051] = 'p', [0x055] = 'u', [0x057] = 'x', [0x082] = 'c',
    [0x083] = 'j', [0x089] = 'C', [0x095] = 'S', [0x096] = 'I', [0x098] = 'J', [0x0a0] = 'A',
    [0x0a2] = 'B', [0x0a5] = 'E', [0x0aa] = 'K', [0x0ac] = 'M', [0x0ad] = 'H', [0x0ae] = 'O',
    [0x0b0] = 'P', [0x0b1] = 'C', [0x0b2] = 'T', [0x0b3] = 'Y', [0x0b5] = 'X', [0x0c0] = 'a',
    [0x0c5] = 'e', [0x0ce] = 'o', [0x0d0] = 'p', [0x0d1] = 'c', [0x0d3] = 'y', [0x0d5] = 'x',
    [0x0e5] = 's', [0x0e6] = 'i', [0x0e8] = 'j', [0x105] = 'v', [0x13e] = 'Y', [0x13f] = 'y',
    [0x14a] = 'H', [0x14b] = 'h', [0x150] = 'I', [0x15f] = 'l', [0x190] = 'D', [0x191] = 'd',
    [0x1aa] = 'Q', [0x1ab] = 'q', [0x1ac] = 'W', [0x1ad] = 'w',
};
/* Cyrillic, Greek and rare Latin letters that look like basic Latin ones; 0 if cp is not one. */
static char confusable_ascii(uint32_t cp)
{
    if (cp >= SCRIPT_LO && cp <= SCRIPT_HI)
        return script_lookalike[cp - SCRIPT_LO];
    switch (cp) {
    case 0x0131: return 'i'; /* dotless i */
    case 0x0251: return 'a'; /* Latin alpha */
    case 0x0261: return 'g'; /* script g */
    default:
        return 0;
    }
}

/* Letterlike symbols (U+2100 block) that fill the holes of the mathematical alphabets (script,
 * fraktur, double-struck and italic letters that were encoded before them); "ℎttp" and "ℊoogle"
 * are written with these. */
static char letterlike_ascii(uint32_t cp)
{
    static const char map[0x40] = {
        [0x02] = 'C', [0x07] = 'E', [0x0a] = 'g', [0x0b] = 'H', [0x0c] = 'H', [0x0d] = 'H',
        [0x0e] = 'h', [0x0f] = 'h', [0x10] = 'I', [0x11] = 'I', [0x12] = 'L', [0x13] = 'l',
        [0x15] = 'N', [0x19] = 'P', [0x1a] = 'Q', [0x1b] = 'R', [0x1c] = 'R', [0x1d] = 'R',
        [0x24] = 'Z', [0x28] = 'Z', [0x2a] = 'K', [0x2c] = 'B', [0x2d] = 'C', [0x2f] = 'e',
        [0x30] = 'E', [0x31] = 'F', [0x33] = 'M', [0x34] = 'o', [0x39] = 'i', [0x3c] = 'p',
        [0x3d] = 'y', [0x3e] = 'G', [0x3f] = 'P'};
    return cp >= 0x2100 && cp < 0x2140 ? map[cp - 0x2100] : 0;
}

/* Mathematical alphanumeric symbols (bold, italic, script, ... A-Z a-z 0-9), their letterlike
 * stand-ins and circled letters and digits to ASCII. */
static char math_ascii(uint32_t cp)
{
    if (cp < 0x2100)
        return 0;
    if (cp < 0x2140)
        return letterlike_ascii(cp);
    if (cp >= 0x2460 && cp <= 0x2468) /* ① .. ⑨ */
        return (char)('1' + (cp - 0x2460));
    if (cp >= 0x24b6 && cp <= 0x24cf) /* Ⓐ .. Ⓩ */
        return (char)('A' + (cp - 0x24b6));
    if (cp >= 0x24d0 && cp <= 0x24e9) /* ⓐ .. ⓩ */
        return (char)('a' + (cp - 0x24d0));
    if (cp == 0x24ea) /* ⓪ */
        return '0';
    if (cp >= 0x1d400 && cp <= 0x1d6a3) {
        unsigned idx = (cp - 0x1d400) % 52;
        return (char)(idx < 26 ? 'A' + idx : 'a' + (idx - 26));
    }
    if (cp == 0x1d6a4 || cp == 0x1d6a5) /* dotless italic i and j */
        return cp == 0x1d6a4 ? 'i' : 'j';
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
        size_t n = xml_ref(s + i, len - i, XMLREF_UPPER_X, cp);
        if (n > 0) {
            *entity = true;
            return n;
        }
        *cp = '&';
        return 1;
    }
    return utf8_decode((const unsigned char *)s + i, len - i, cp);
}

/* Letters that fold to ASCII letters whatever the word: full-width and mathematical forms. */
static bool is_latin_form(uint32_t cp)
{
    if (cp >= 0xff21 && cp <= 0xff5a)
        return is_ascii_letter(cp - 0xfee0);
    char a = math_ascii(cp);
    return a != 0 && is_ascii_letter((unsigned char)a);
}

/* Whether the word starting at s[i] mixes Latin letters with look-alikes and nothing else from
 * Cyrillic or Greek, so that its look-alikes should be folded. A word runs over ASCII letters and
 * digits, full-width and mathematical letters, Cyrillic and Greek letters, and invisible
 * characters (which hide word boundaries). A Cyrillic or Greek letter that does not look Latin
 * ("VPNом", "iPhone-у" without the hyphen) means a real word of that script with a borrowed
 * name in it: a spimmer hiding "paypal" has no use for a letter that gives the trick away. */
static bool word_is_mixed(const char *s, size_t len, size_t i)
{
    bool latin = false, lookalike = false;
    while (i < len) {
        uint32_t cp;
        bool entity;
        size_t n = next_char(s, len, i, &cp, &entity);
        if (n == 0)
            break;
        if (is_ascii_letter(cp) || is_latin_form(cp))
            latin = true;
        else if (cp >= '0' && cp <= '9')
            latin |= false; /* digits neither make nor break a mixed word */
        else if (confusable_ascii(cp))
            lookalike = true;
        else if (cp >= 0x0370 && cp <= 0x052f)
            return false;
        else if (!is_invisible(cp))
            break;
        i += n;
    }
    return latin && lookalike;
}

static bool is_word_char(uint32_t cp)
{
    return is_ascii_letter(cp) || (cp >= '0' && cp <= '9') || (cp >= 0x0370 && cp <= 0x052f) ||
           is_invisible(cp) || confusable_ascii(cp) != 0 || is_latin_form(cp);
}

/* The bytes Hyperscan's \s matches: space, \t, \n, \v, \f, \r. */
static inline bool is_ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

#if !defined(__SSE2__) /* with SSE2, copy_plain_ascii() does this in the copying pass */
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
#endif

#if defined(__SSE2__)
/* The test of fold_start() on one 16-byte block v: true if the block holds a control byte or
 * two neighbouring bytes <= ' ' (counting the previous block's last byte, *carry), which is
 * where folding may start; else updates *carry for the next block. */
static inline bool fold_block_hit(__m128i v, unsigned *carry)
{
    unsigned sp = (unsigned)_mm_movemask_epi8(sw_le_epu8(v, _mm_set1_epi8(0x20)));
    if (sp == 0) {
        *carry = 0;
        return false;
    }
    unsigned ctl = (unsigned)_mm_movemask_epi8(sw_le_epu8(v, _mm_set1_epi8(0x1f)));
    if (ctl != 0 || (sp & (sp >> 1)) != 0 || (*carry && (sp & 1)))
        return true;
    *carry = sp >> 15;
    return false;
}
#endif

/* Offset from which fold_space_runs() may have to change s[0..len): the first control byte
 * (which may be \t, \n, \v, \f or \r) or the first of two neighbouring bytes <= ' '. An
 * earlier answer is harmless (the fold loop starts there), a later one would be a bug. Sixteen
 * bytes at a time with SSE2 (exact), else eight with subtract-and-mask tests (exact at the lowest
 * hit, borrow can flag bytes above it, which only makes the answer earlier); the last bytes are
 * left to the fold loop. */
static size_t fold_start(const char *s, size_t len)
{
    unsigned carry = 0; /* the previous block's last byte was <= ' ' */
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= len; i += 16) {
        if (fold_block_hit(_mm_loadu_si128((const __m128i *)(const void *)(s + i)), &carry))
            return i;
    }
#endif
    const uint64_t ones = 0x0101010101010101ULL;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t sp = (w - ones * 0x21) & ~w & HIGH_BITS; /* bytes < 0x21 */
        if (sp == 0) {
            carry = 0;
            continue;
        }
        uint64_t ctl = (w - ones * 0x20) & ~w & HIGH_BITS; /* bytes < 0x20 */
        if (ctl != 0 || (sp & (sp >> 8)) != 0 || (carry && (sp & 0x80)))
            return i;
        carry = (unsigned)(sp >> 63);
    }
    return i;
}

/* Folds every run of whitespace in s[0..len) to one character in place: '\n' if the run holds a
 * line break, else ' '. Returns the new length. from is where a change may start (fold_start()):
 * most chat has single spaces only, and nothing before it moves. */
static size_t fold_space_runs(char *s, size_t len, size_t from)
{
    size_t i = from;
    while (i > 0 && is_ascii_space((unsigned char)s[i - 1]))
        i--; /* start at the beginning of a run */
    size_t o = i;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (!is_ascii_space(c)) {
            s[o++] = (char)c;
            i++;
            continue;
        }
        bool nl = false;
        for (; i < len && is_ascii_space((unsigned char)s[i]); i++)
            nl |= s[i] == '\n' || s[i] == '\r';
        s[o++] = nl ? '\n' : ' ';
    }
    return o;
}

static void normalize_chars(const char *in, size_t in_len, char *out, struct text_norm *res);

#if defined(__SSE2__)
/* The fast path in one pass: copies in[0..len) to out while it is plain ASCII without '&',
 * and finds where fold_space_runs() must start, as fold_start() would (*from). Returns false
 * at the first special byte (out then holds a prefix that the slow path overwrites). */
static bool copy_plain_ascii(const char *in, size_t len, char *out, size_t *from)
{
    const __m128i amp = _mm_set1_epi8('&');
    unsigned carry = 0; /* the previous block's last byte was <= ' ' */
    size_t i = 0, start = (size_t)-1;
    for (; i + 16 <= len; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        if (_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, amp))) != 0)
            return false;
        _mm_storeu_si128((__m128i *)(void *)(out + i), v);
        if (start != (size_t)-1)
            continue;
        if (fold_block_hit(v, &carry)) /* fold_start()'s test */
            start = i;
    }
    /* the last bytes one at a time, with the same test made exact: most chat then needs no
     * fold pass at all (*from == len) */
    for (size_t k = i; k < len; k++) {
        unsigned char c = (unsigned char)in[k];
        if (c >= 0x80 || c == '&')
            return false;
        out[k] = (char)c;
        if (start == (size_t)-1 && c <= ' ') {
            if (c < ' ' || carry)
                start = k;
            carry = 1;
        } else {
            carry = 0;
        }
    }
    *from = start != (size_t)-1 ? start : len;
    return true;
}
#endif

#if defined(SW_HAVE_AVX2_PATHS)
/* fold_block_hit() for a 32-byte block. */
__attribute__((target("avx2"))) static inline bool fold_block_hit32(__m256i v, unsigned *carry)
{
    uint32_t sp = (uint32_t)_mm256_movemask_epi8(sw_le_epu8_256(v, _mm256_set1_epi8(0x20)));
    if (sp == 0) {
        *carry = 0;
        return false;
    }
    uint32_t ctl = (uint32_t)_mm256_movemask_epi8(sw_le_epu8_256(v, _mm256_set1_epi8(0x1f)));
    if (ctl != 0 || (sp & (sp >> 1)) != 0 || (*carry && (sp & 1)))
        return true;
    *carry = sp >> 31;
    return false;
}

/* One 32-byte block of copy_plain_ascii_avx2() at in[off..off + 32): false if it holds a
 * special byte; else copied to out, and *start set to off if a fold may begin in it. */
__attribute__((target("avx2"))) static inline bool
copy_block32(const char *in, char *out, size_t off, size_t *start, unsigned *carry)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(in + off));
    if (_mm256_movemask_epi8(_mm256_or_si256(v, _mm256_cmpeq_epi8(v, _mm256_set1_epi8('&')))) != 0)
        return false;
    _mm256_storeu_si256((__m256i *)(void *)(out + off), v);
    if (*start == (size_t)-1 && fold_block_hit32(v, carry))
        *start = off;
    return true;
}

/* copy_plain_ascii() thirty-two bytes per step, for texts of 32 bytes or more. The last
 * partial block is the block that ends with the text, overlapping bytes already copied (the
 * same bytes are written again); bytes already tested cannot start a fold that their first
 * test missed, and the carry comes from the byte before that block, so *from stays exact. A
 * padded copy of the tail would cost a failed store forward on every message. */
__attribute__((target("avx2"))) static bool copy_plain_ascii_avx2(const char *in, size_t len,
                                                                  char *out, size_t *from)
{
    unsigned carry = 0;
    size_t i = 0, start = (size_t)-1;
    for (; i + 32 <= len; i += 32) {
        if (!copy_block32(in, out, i, &start, &carry))
            return false;
    }
    if (i < len) {
        size_t j = len - 32; /* len >= 32 */
        carry = j > 0 && (unsigned char)in[j - 1] <= ' ';
        if (!copy_block32(in, out, j, &start, &carry))
            return false;
    }
    *from = start != (size_t)-1 ? start : len;
    return true;
}
#endif

/* The fast path: copies in[0..len) to out if it is plain ASCII without '&' and sets *from to
 * where fold_space_runs() must start; false (out then holds a prefix that the slow path
 * overwrites) otherwise. AVX2 for 32 bytes and more where the CPU has it, else SSE2, else
 * eight bytes at a time. */
static bool copy_plain(const char *in, size_t len, char *out, size_t *from)
{
#if defined(SW_HAVE_AVX2_PATHS)
    if (len >= 32 && sw_cpu_avx2())
        return copy_plain_ascii_avx2(in, len, out, from);
#endif
#if defined(__SSE2__)
    return copy_plain_ascii(in, len, out, from);
#else
    if (!all_plain_ascii(in, len))
        return false;
    memcpy(out, in, len);
    *from = fold_start(out, len);
    return true;
#endif
}

void text_normalize(const char *in, size_t in_len, char *out, struct text_norm *res)
{
    memset(res, 0, sizeof(*res));
    size_t from;
    if (copy_plain(in, in_len, out, &from)) {
        res->len = fold_space_runs(out, in_len, from);
        return;
    }
    normalize_chars(in, in_len, out, res);
    res->len = fold_space_runs(out, res->len, fold_start(out, res->len));
}

#if defined(__SSE2__)
/* The run of plain bytes (ASCII other than '&') at in[i..len), sixteen at a time while sixteen
 * remain: copied to out[o..], and *word_start moved past its last byte that is not a letter or
 * digit, as the byte-at-a-time loop of normalize_chars() would. Returns the run's length (0 if
 * in[i] is not plain or fewer than sixteen bytes remain; the caller goes on byte by byte). A
 * text with one emoji or accent is mostly such runs: without this, all of it went byte by
 * byte. Stores whole blocks: o <= i, so out[o..o + 16) lies within the room for in_len. */
static inline size_t plain_run16(const char *in, size_t i, size_t len, char *out, size_t o,
                                 size_t *word_start)
{
    size_t start = i;
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        unsigned special =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_set1_epi8('&'))));
        unsigned n = special != 0 ? (unsigned)__builtin_ctz(special) : 16;
        _mm_storeu_si128((__m128i *)(void *)(out + o + (i - start)), v);
        unsigned alnum = (unsigned)_mm_movemask_epi8(sw_ascii_alnum16(v));
        unsigned sep = ~alnum & ((1u << n) - 1u); /* n <= 16: no overflow */
        if (sep != 0)
            *word_start = i + (31u - (unsigned)__builtin_clz(sep)) + 1;
        i += n;
        if (n < 16)
            break;
    }
    return i - start;
}
#endif

/* The slow path of text_normalize(): decodes, removes and folds character by character. */
static void normalize_chars(const char *in, size_t in_len, char *out, struct text_norm *res)
{

    size_t o = 0, i = 0;
    size_t word_start = 0;          /* input offset where the current word began */
    size_t decided = (size_t)-1;    /* word_start of the word word_fold was decided for */
    bool word_fold = false;
    while (i < in_len) {
        unsigned char c = (unsigned char)in[i];
#if defined(__SSE2__)
        size_t run = plain_run16(in, i, in_len, out, o, &word_start);
        if (run > 0) {
            i += run;
            o += run;
            continue;
        }
#endif
        if (c < 0x80 && c != '&') {
            if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9')))
                word_start = i + 1;
            out[o++] = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        bool entity = false;
        size_t n;
        if (c >= 0xc2 && c <= 0xdf && i + 1 < in_len && ((unsigned char)in[i + 1] & 0xc0) == 0x80) {
            /* two-byte sequences (Cyrillic, Greek, Latin-1) inline: Russian text is made of them */
            cp = ((uint32_t)(c & 0x1f) << 6) | ((unsigned char)in[i + 1] & 0x3fu);
            n = 2;
        } else {
            n = next_char(in, in_len, i, &cp, &entity);
        }
        if (n == 0) {
            out[o++] = (char)c;
            res->flags |= TEXT_F_BAD_UTF8;
            word_start = ++i;
            continue;
        }
        if (entity)
            res->flags |= TEXT_F_ENTITY;
        if (cp >= SCRIPT_LO && cp <= SCRIPT_HI) {
            /* Greek or Cyrillic: always part of a word; folded only in a mixed word, which is
             * decided once per word (the part before i included) */
            char a = script_lookalike[cp - SCRIPT_LO];
            if (a != 0 && decided != word_start) {
                word_fold = word_is_mixed(in, in_len, word_start);
                decided = word_start;
            }
            if (a != 0 && word_fold) {
                out[o++] = a;
                res->flags |= TEXT_F_CONFUSABLE;
                res->folded++;
            } else if (entity) {
                o += utf8_encode(cp, out + o);
            } else {
                for (size_t k = 0; k < n; k++) /* n is 2 or 3: no memcpy call */
                    out[o++] = in[i + k];
            }
            i += n;
            continue;
        }
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
            if (decided != word_start) {
                word_fold = word_is_mixed(in, in_len, word_start);
                decided = word_start;
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

/* The folded text: each kept byte (an ASCII letter, lower-cased, or a byte >= 0x80) in order,
 * and one marker '\x01' per URL span; everything else (digits, blanks, punctuation) is dropped.
 * Hashed in pieces of FP_CHUNK bytes (the last one shorter), so the result is a function of the
 * folded text alone, however the raw text spreads it out, and equals the result of the
 * byte-at-a-time definition (tests/unit/test_text.c keeps it as the reference). The folded text
 * is written to a staging buffer on the stack, nothing is allocated. A piece is long enough
 * that a chat message is one piece, hashed by the four-lane sw_hash64_wide: the staging costs
 * one compare per block, and the hash one multiply chain per 32 bytes. */
#define FP_CHUNK 512
#define FP_STAGE 2048
/* Room past FP_STAGE: what one step writes before its drain (a block's 16 bytes, a scalar
 * run's 15, a marker) plus the 8-byte stores of the packing and the 64-byte store of the
 * compress step, which may write past the end. */
#define FP_SLACK 64

struct fp_state {
    uint64_t h;
    size_t total;   /* folded letters, markers excluded */
    size_t at, end; /* stage[at..end) not hashed yet */
    char *stage;    /* FP_STAGE + FP_SLACK bytes, a separate object: stores into it cannot
                     * alias the fields above, so the compiler keeps them in registers */
};

static inline uint64_t fp_block(uint64_t h, const char *buf, size_t n)
{
    return sw_hash_combine(h, sw_hash64_wide(buf, n, 0x6670u));
}

/* Hashes the whole pieces of the stage, and at the end (final) what is left. */
static void fp_drain_now(struct fp_state *st, bool final)
{
    while (st->end - st->at >= FP_CHUNK) {
        st->h = fp_block(st->h, st->stage + st->at, FP_CHUNK);
        st->at += FP_CHUNK;
    }
    if (final && st->end > st->at) {
        st->h = fp_block(st->h, st->stage + st->at, st->end - st->at);
        st->at = st->end;
    }
    if (st->at >= FP_STAGE / 2) {
        memmove(st->stage, st->stage + st->at, st->end - st->at);
        st->end -= st->at;
        st->at = 0;
    }
}

/* fp_drain_now() when a piece is whole (or at the end), else nothing: called after every step,
 * so the common case is one compare. After it, stage[at..end) holds less than FP_CHUNK bytes
 * and at < FP_STAGE / 2, so one more step stays within FP_STAGE + FP_SLACK. */
static inline void fp_drain(struct fp_state *st, bool final)
{
    if (final || st->end - st->at >= FP_CHUNK)
        fp_drain_now(st, final);
}

#if defined(__SSE2__)
/* Classifies 16 bytes p[0..16) as text_fingerprint() reads them: *keep gets the kept bytes
 * (ASCII letters and bytes >= 0x80) as a bit mask, *e the bytes to write (letters lower-cased,
 * bytes >= 0x80 as they are). Chat mixes letters, blanks, punctuation and digits too
 * irregularly for a branch predictor to do this a byte at a time. The kept bytes are counted
 * (st->total) here, for both ways of writing them. */
static inline void fp_classify16(const char *p, struct fp_state *st, unsigned *keep_out, __m128i *e)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i lc = _mm_or_si128(v, _mm_set1_epi8(0x20));
    unsigned letter = (unsigned)_mm_movemask_epi8(sw_ascii_letter16(v));
    unsigned keep = letter | (unsigned)_mm_movemask_epi8(v);
    *keep_out = keep;
    st->total += (size_t)__builtin_popcount(keep);
    __m128i isk = _mm_cmplt_epi8(v, _mm_setzero_si128()); /* bytes >= 0x80 keep their value */
    *e = _mm_or_si128(_mm_and_si128(isk, v), _mm_andnot_si128(isk, lc));
}

/* 16 bytes, writing the kept ones one at a time. */
static inline void fp_chunk16(const char *p, struct fp_state *st)
{
    unsigned keep;
    __m128i ev;
    fp_classify16(p, st, &keep, &ev);
    if (keep == 0)
        return;
    char e[16];
    _mm_storeu_si128((__m128i *)(void *)e, ev);
    size_t n = st->end;
    while (keep != 0) {
        st->stage[n++] = e[__builtin_ctz(keep)];
        keep &= keep - 1;
    }
    st->end = n;
}
#endif

#if defined(SW_HAVE_AVX2_PATHS)
/* Byte-shuffle controls that pack the bytes of an 8-bit mask to the front (SSSE3 pshufb). */
static uint8_t fp_pack[256][8];
static pthread_once_t fp_pack_once = PTHREAD_ONCE_INIT;

static void fp_pack_init(void)
{
    for (unsigned m = 0; m < 256; m++) {
        unsigned k = 0;
        for (unsigned b = 0; b < 8; b++) {
            if (m & (1u << b))
                fp_pack[m][k++] = (uint8_t)b;
        }
        for (; k < 8; k++)
            fp_pack[m][k] = 0x80; /* a zero byte, overwritten by the next store */
    }
}

/* fp_chunk16() without a loop per byte: the kept bytes of each half are packed to its front
 * with one byte shuffle. */
__attribute__((target("avx2,popcnt"))) static inline void fp_chunk16_pack(const char *p,
                                                                          struct fp_state *st)
{
    unsigned keep;
    __m128i e;
    fp_classify16(p, st, &keep, &e);
    if (keep == 0)
        return;
    unsigned lo = keep & 0xff, hi = keep >> 8;
    uint64_t cl, ch;
    memcpy(&cl, fp_pack[lo], 8);
    memcpy(&ch, fp_pack[hi], 8);
    ch += 0x0808080808080808ULL; /* the upper half's bytes; 0x80 stays a zero byte */
    __m128i ctl = _mm_set_epi64x((long long)ch, (long long)cl);
    __m128i r = _mm_shuffle_epi8(e, ctl);
    _mm_storel_epi64((__m128i *)(void *)(st->stage + st->end), r);
    st->end += (size_t)__builtin_popcount(lo);
    _mm_storel_epi64((__m128i *)(void *)(st->stage + st->end), _mm_unpackhi_epi64(r, r));
    st->end += (size_t)__builtin_popcount(hi);
}
#endif

#if defined(SW_HAVE_AVX2_PATHS)
/* fp_chunk16_pack() for the n <= 64 bytes p[0..n) at once: AVX-512 VBMI2 compresses the kept
 * bytes to the front of a register in one instruction, stored in one go (up to 64 bytes, within
 * FP_SLACK). The bytes past n are never loaded (a masked load), so the last piece of a run
 * needs no byte loop. */
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) static inline void
fp_chunk64(const char *p, size_t n, struct fp_state *st)
{
    __mmask64 valid = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
    __m512i v = _mm512_maskz_loadu_epi8(valid, p);
    __m512i lc = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    __mmask64 letter =
        _mm512_cmple_epu8_mask(_mm512_sub_epi8(lc, _mm512_set1_epi8('a')), _mm512_set1_epi8(25));
    __mmask64 high = _mm512_movepi8_mask(v); /* bytes >= 0x80 keep their value */
    __mmask64 keep = (letter | high) & valid;
    if (keep == 0)
        return;
    __m512i e = _mm512_mask_blend_epi8(high, lc, v);
    _mm512_storeu_si512((void *)(st->stage + st->end), _mm512_maskz_compress_epi8(keep, e));
    size_t k = (size_t)__builtin_popcountll(keep);
    st->end += k;
    st->total += k;
}
#endif

/* How fp_fold() steps through a run of text between links. */
enum fp_step {
    FP_STEP_LOOP,     /* sixteen bytes classified at once, kept bytes written one at a time */
    FP_STEP_PACK,     /* sixteen bytes, kept bytes packed by two byte shuffles (AVX2) */
    FP_STEP_COMPRESS, /* sixty-four bytes, kept bytes compressed in one instruction (AVX-512) */
};

/* The whole fold. step picks the block step and is a constant where this is inlined, so each
 * variant below is one function, with the state in registers and the constants of the block
 * step loaded once. */
__attribute__((always_inline)) static inline uint64_t fp_fold(const char *norm, size_t len,
                                                              const struct text_span *spans,
                                                              size_t n, size_t *folded_len,
                                                              enum fp_step step)
{
    char stage[FP_STAGE + FP_SLACK];
    struct fp_state st = {.h = 0x5370696d77616c6cULL, .stage = stage};
    size_t i = 0, si = 0;
    (void)step;

    while (i < len) {
        size_t stop = len;
        if (si < n && spans[si].off < stop)
            stop = spans[si].off > i ? spans[si].off : i;
#if defined(SW_HAVE_AVX2_PATHS)
        while (step == FP_STEP_COMPRESS && i < stop) {
            size_t k = stop - i < 64 ? stop - i : 64;
            fp_chunk64(norm + i, k, &st);
            fp_drain(&st, false);
            i += k;
        }
#endif
#if defined(__SSE2__)
        for (; i + 16 <= stop; i += 16) {
#if defined(SW_HAVE_AVX2_PATHS)
            if (step == FP_STEP_PACK)
                fp_chunk16_pack(norm + i, &st);
            else
#endif
                fp_chunk16(norm + i, &st);
            fp_drain(&st, false);
        }
#endif
        for (; i < stop; i++) {
            unsigned c = (unsigned char)norm[i];
            unsigned lc = c | 0x20;
            if (lc - 'a' < 26u || c >= 0x80) {
                st.stage[st.end++] = (char)(c >= 0x80 ? c : lc);
                st.total++;
                fp_drain(&st, false);
            }
        }
        if (i >= len)
            break;
        /* one marker per URL, whatever the URL said */
        st.stage[st.end++] = '\x01';
        fp_drain(&st, false);
        /* never step backwards, even on spans that break the contract */
        size_t end = (size_t)spans[si].off + spans[si].len;
        i = end > i ? end : i;
        si++;
    }
    fp_drain(&st, true);
    if (folded_len != NULL)
        *folded_len = st.total;
    return sw_hash_mix(st.h ^ st.total);
}

#if defined(SW_HAVE_AVX2_PATHS)
__attribute__((target("avx2,popcnt"))) static uint64_t fp_fold_avx2(const char *norm, size_t len,
                                                                    const struct text_span *spans,
                                                                    size_t n, size_t *folded_len)
{
    return fp_fold(norm, len, spans, n, folded_len, FP_STEP_PACK);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi2,avx2,popcnt"))) static uint64_t
fp_fold_avx512(const char *norm, size_t len, const struct text_span *spans, size_t n,
               size_t *folded_len)
{
    return fp_fold(norm, len, spans, n, folded_len, FP_STEP_COMPRESS);
}
#endif

uint64_t text_fingerprint(const char *norm, size_t len, const struct text_span *spans, size_t n,
                          size_t *folded_len)
{
#if defined(SW_HAVE_AVX2_PATHS)
    if (sw_cpu_avx512())
        return fp_fold_avx512(norm, len, spans, n, folded_len);
    if (sw_cpu_avx2()) {
        pthread_once(&fp_pack_once, fp_pack_init);
        return fp_fold_avx2(norm, len, spans, n, folded_len);
    }
#endif
    return fp_fold(norm, len, spans, n, folded_len, FP_STEP_LOOP);
}
