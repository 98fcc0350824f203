/* XML references (XML 1.0 sections 4.1 and 4.6): the five predefined entities and character
 * references, decoded the same way by every reader of XML text: the XMPP body decoder, the MSNP
 * offline-message fields, and the matcher's text normalisation (which decodes a second time,
 * for double-escaped spim). Pure. */
#ifndef SW_PROTOCOLS_XMLREF_H
#define SW_PROTOCOLS_XMLREF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocols/ascii.h"

/* Also take "&#X41;" with a capital X: HTML does, XML does not, and spimmers write it. */
#define XMLREF_UPPER_X 1u

/* The reference at s[0] == '&' of s[0..n): its length, with its code point in *cp; or 0 if
 * s does not start with a complete, valid one (the '&' is then an ordinary character).
 *
 * A character reference may have any number of digits, as the grammar allows ("&#0000065;" is
 * 'A') and as the XMPP parser accepts them: a reader with a digit bound would see a padded
 * reference as text while the recipient's client shows the letter. The value must be above 0,
 * at most U+10FFFF and not a surrogate; the digits stop being read once it is too large, so a
 * reference costs its length, once. */
static inline size_t xml_ref(const char *s, size_t n, unsigned flags, uint32_t *cp)
{
    static const struct {
        const char *ref;
        uint8_t len;
        char c;
    } named[] = {{"&amp;", 5, '&'},
                 {"&lt;", 4, '<'},
                 {"&gt;", 4, '>'},
                 {"&quot;", 6, '"'},
                 {"&apos;", 6, '\''}};

    if (n >= 2 && s[1] != '#') {
        for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
            if (n >= named[k].len && memcmp(s, named[k].ref, named[k].len) == 0) {
                *cp = (uint32_t)(unsigned char)named[k].c;
                return named[k].len;
            }
        }
        return 0;
    }
    if (n < 4)
        return 0;
    bool hex = s[2] == 'x' || (s[2] == 'X' && (flags & XMLREF_UPPER_X));
    size_t i = hex ? 3 : 2, first = i;
    uint32_t v = 0;
    for (; i < n; i++) {
        int d = sw_digit_val((unsigned char)s[i], hex);
        if (d < 0)
            break;
        v = v * (hex ? 16u : 10u) + (uint32_t)d;
        if (v > 0x10FFFF)
            return 0;
    }
    if (i == first || i >= n || s[i] != ';' || v == 0 || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return i + 1;
}

#endif
