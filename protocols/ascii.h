/* ASCII helpers shared by the protocol parsers and decoders (JSON lines, XML references, MSNP
 * MIME headers and offline-message metadata). Locale-free, unlike <ctype.h>. Pure. */
#ifndef SW_PROTOCOLS_ASCII_H
#define SW_PROTOCOLS_ASCII_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* c with 'A'..'Z' lower-cased; any other value as it is. */
static inline int sw_ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* True if s[0..n) equals the NUL-terminated lit, ASCII letters compared caselessly. */
static inline bool sw_ascii_eq_ci(const unsigned char *s, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (sw_ascii_lower(s[i]) != sw_ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return true;
}

/* The value of hexadecimal digit c ('0'-'9', 'a'-'f', 'A'-'F'), or -1. */
static inline int sw_hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = sw_ascii_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of digit c in base 16 (hex) or 10, or -1: the digits of a character reference. */
static inline int sw_digit_val(int c, bool hex)
{
    if (hex)
        return sw_hex_val(c);
    return c >= '0' && c <= '9' ? c - '0' : -1;
}

#endif
