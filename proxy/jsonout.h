/* JSON output helpers for spimwall's tools: string escaping into a bounded buffer and a small
 * line builder that never overflows (it records truncation instead). No I/O, no allocation. */
#ifndef SW_PROXY_JSONOUT_H
#define SW_PROXY_JSONOUT_H

#include <stdbool.h>
#include <stddef.h>

/* Escapes s[0..len) as the inside of a JSON string (no surrounding quotes) into out[0..cap):
 * '"' and '\\' are backslash-escaped, \b \f \n \r \t use their short forms, other bytes below
 * 0x20 become \u00XX, and each maximal ill-formed UTF-8 subpart becomes \ufffd; valid UTF-8 is
 * copied as is. Whole escapes only: output stops before the first unit that does not fit, and
 * out is NUL-terminated whenever cap > 0. Borrows s and out. Returns the length the complete
 * escaped text needs (without the NUL), so the result was truncated iff the return >= cap. */
size_t jsonout_escape(char *out, size_t cap, const char *s, size_t len);

/* A line being built in a caller-owned buffer. */
struct jsonout {
    char *buf; /* borrowed; always NUL-terminated when cap > 0 */
    size_t cap;
    size_t len;    /* bytes written, never more than cap - 1 */
    bool overflow; /* something did not fit; the content is then incomplete */
};

/* Points b at buf[0..cap) (borrowed) and empties it. */
void jsonout_init(struct jsonout *b, char *buf, size_t cap);

/* Appends raw bytes s[0..len) unchanged (the caller vouches they are valid JSON syntax). On
 * lack of room appends nothing and sets overflow. Borrows s. */
void jsonout_raw(struct jsonout *b, const char *s, size_t len);

/* Appends s[0..len) as a quoted, escaped JSON string (see jsonout_escape). On lack of room
 * appends nothing and sets overflow. Borrows s. */
void jsonout_str(struct jsonout *b, const char *s, size_t len);

/* Appends the NUL-terminated s as a quoted, escaped JSON string. */
void jsonout_cstr(struct jsonout *b, const char *s);

/* Appends an unsigned integer in decimal. */
void jsonout_uint(struct jsonout *b, unsigned long long v);

/* Appends a finite double with up to `decimals` fractional digits ("%.*f"); a non-finite
 * value is written as null, since JSON has no NaN or infinity. */
void jsonout_double(struct jsonout *b, double v, int decimals);

#endif
