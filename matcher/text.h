/* Text normalisation and body fingerprints.
 *
 * Everything the matcher scans goes through text_normalize() first, so that a rule written
 * against plain ASCII also catches the same words hidden with Unicode tricks. Pure functions:
 * no allocation, no I/O, thread-safe. */
#ifndef SW_MATCHER_TEXT_H
#define SW_MATCHER_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* What text_normalize() found and undid; reported so that the matcher can score obfuscation
 * itself (a zero-width character inside a link is a spim signal, not an accident). */
enum text_flag {
    TEXT_F_ENTITY = 1u << 0,      /* &amp; &lt; &gt; &quot; &apos; or &#NN; / &#xHH; decoded */
    TEXT_F_ZERO_WIDTH = 1u << 1,  /* zero-width / invisible format characters removed */
    TEXT_F_FULLWIDTH = 1u << 2,   /* full-width ASCII (U+FF01..U+FF5E) folded to ASCII */
    TEXT_F_CONFUSABLE = 1u << 3,  /* Cyrillic/Greek/other look-alikes folded to Latin */
    TEXT_F_SPACE = 1u << 4,       /* exotic Unicode spaces folded to ' ' */
    TEXT_F_BAD_UTF8 = 1u << 5,    /* invalid UTF-8 seen (bytes copied unchanged) */
    TEXT_F_MATH_ALNUM = 1u << 6,  /* mathematical alphanumerics (U+1D400..) folded to ASCII */
};

struct text_norm {
    size_t len;     /* bytes written to out */
    unsigned flags; /* enum text_flag bits */
    unsigned zero_width; /* how many invisible characters were removed */
    unsigned folded;     /* how many characters were folded (full-width, confusable, math) */
};

/* Normalises in[0..in_len) into out, which must have room for in_len bytes: the output is never
 * longer than the input. Decodes the five predefined XML/HTML entities and numeric character
 * references (a reference that is malformed or names an invalid code point is copied as is);
 * removes zero-width and invisible format characters (U+200B..U+200F, U+202A..U+202E,
 * U+2060..U+2064, U+FEFF, U+00AD, U+180E, U+034F); folds full-width ASCII, ideographic and other
 * Unicode spaces, mathematical alphanumerics and common Latin look-alikes from Cyrillic and Greek
 * to ASCII. Then every run of whitespace (after those removals and folds) becomes one character:
 * '\n' if the run holds a line break, else ' '; so body rules match words with a single \s and
 * padding words with extra spaces or tabs hides nothing. Case is kept (Hyperscan matches
 * caselessly where a rule asks). Invalid UTF-8 bytes are copied unchanged and flagged. Fast path:
 * pure ASCII input without '&' is a memcpy plus the whitespace pass.
 * in and out must not overlap. Never fails. */
void text_normalize(const char *in, size_t in_len, char *out, struct text_norm *res);

/* A URL's place in the normalised text, as the fingerprint needs it: [off, off + len). */
struct text_span {
    uint32_t off;
    uint32_t len;
};

/* Fingerprint of a normalised body for campaign and fan-out detection: a 64-bit hash of the
 * text with each URL span replaced by one marker, ASCII letters lower-cased, bytes >= 0x80 kept
 * and everything else (digits, whitespace, punctuation) removed. So
 * "Look at my pics http://a.example/1.zip", "look at my pics!!  http://b.example/22.zip" and
 * "l o o k at my p-i-c-s hxxp://c.example/" have the same fingerprint. spans must be sorted by off
 * and must not overlap; n may be 0. *folded_len (if not NULL) receives the length of the folded
 * text (without URL markers), which lets callers ignore fingerprints of trivially short messages
 * ("ok", "lol"). */
uint64_t text_fingerprint(const char *norm, size_t len, const struct text_span *spans, size_t n,
                          size_t *folded_len);

#endif
