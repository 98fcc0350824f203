/* Fast 64-bit non-cryptographic hashing used for reputation keys, fingerprints and checksums.
 * Not for anything an attacker must not be able to collide on purpose: keys are salted with a
 * per-process seed where that matters (see reputation.h). */
#ifndef SW_MATCHER_HASH_H
#define SW_MATCHER_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sw_hash_mix(uint64_t h)
{
    /* murmur3 fmix64 */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t sw_hash_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* The len < 8 bytes at s as a little-endian number (the value memcpy into a zeroed uint64_t
 * gives on x86), where before bytes are readable just before s. Whole loads, overlapping where
 * they can, instead of that memcpy: a variable-length copy is stored a byte at a time and the
 * 8-byte load that follows cannot be forwarded from those stores (a stall of a dozen cycles
 * on every short key). */
static inline uint64_t sw_hash_tail(const unsigned char *s, size_t len, size_t before)
{
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    uint64_t t = 0; /* the loads below assume little-endian; keep the plain copy elsewhere */
    (void)before;
    memcpy(&t, s, len);
    return t;
#endif
    if (len == 0)
        return 0;
    if (before + len >= 8) {
        uint64_t w;
        memcpy(&w, s + len - 8, 8);
        return w >> (8 * (8 - len));
    }
    if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + len - 4, 4);
        return (uint64_t)lo | (((uint64_t)hi >> (8 * (8 - len))) << 32);
    }
    return (uint64_t)s[0] | ((uint64_t)s[len / 2] << (8 * (len / 2))) |
           ((uint64_t)s[len - 1] << (8 * (len - 1)));
}

/* Hashes len bytes of p with a seed. Reads 8 bytes at a time; never reads past p + len. */
static inline uint64_t sw_hash64(const void *p, size_t len, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(len + 1));
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        k *= 0x87c37b91114253d5ULL;
        k = sw_hash_rotl(k, 31);
        k *= 0x4cf5ad432745937fULL;
        h ^= k;
        h = sw_hash_rotl(h, 27) * 5 + 0x52dce729;
        s += 8;
        len -= 8;
    }
    uint64_t t = sw_hash_tail(s, len, s - (const unsigned char *)p);
    t *= 0x87c37b91114253d5ULL;
    h ^= sw_hash_rotl(t, 31) * 0x4cf5ad432745937fULL;
    return sw_hash_mix(h);
}

/* Same contract as sw_hash64 (a different function: the values differ), for longer inputs such
 * as a whole message body: four independent lanes of 8 bytes take 32 bytes per round, so the
 * multiply-rotate chains overlap instead of running one after another (about 3x faster on
 * 200 bytes). Inputs under 64 bytes go to sw_hash64. */
static inline uint64_t sw_hash64_wide(const void *p, size_t len, uint64_t seed)
{
    if (len < 64)
        return sw_hash64(p, len, seed);
    const unsigned char *s = p;
    uint64_t lane[4] = {seed ^ 0x9e3779b97f4a7c15ULL, seed ^ 0xc2b2ae3d27d4eb4fULL,
                        seed ^ 0x165667b19e3779f9ULL, seed ^ 0x27d4eb2f165667c5ULL};
    size_t total = len;
    while (len >= 32) {
        for (int j = 0; j < 4; j++) {
            uint64_t k;
            memcpy(&k, s + 8 * j, 8);
            k *= 0x87c37b91114253d5ULL;
            k = sw_hash_rotl(k, 31);
            k *= 0x4cf5ad432745937fULL;
            lane[j] ^= k;
            lane[j] = sw_hash_rotl(lane[j], 27) * 5 + 0x52dce729;
        }
        s += 32;
        len -= 32;
    }
    uint64_t h = sw_hash_mix(lane[0]) ^ sw_hash_rotl(sw_hash_mix(lane[1]), 17) ^
                 sw_hash_rotl(sw_hash_mix(lane[2]), 31) ^ sw_hash_rotl(sw_hash_mix(lane[3]), 47);
    return sw_hash64(s, len, h ^ (uint64_t)total);
}

/* Combines two hashes into one key (order matters). */
static inline uint64_t sw_hash_combine(uint64_t a, uint64_t b)
{
    return sw_hash_mix(a ^ sw_hash_rotl(b, 29) ^ 0x2545f4914f6cdd1dULL);
}

#endif
