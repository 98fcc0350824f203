/* The base64 alphabet (RFC 4648 section 4), shared by the MSNP payload decoders: msnp_mime.c
 * (the P2P file-transfer context) and msnp_oim.c (RFC 2047 B encoded-words). Pure. */
#ifndef SW_PROTOCOLS_MSNP_B64_H
#define SW_PROTOCOLS_MSNP_B64_H

#include <stdint.h>

/* The 6-bit value of base64 character c, or -1 for any other byte ('=' included). */
static inline int msnp_b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

#endif
