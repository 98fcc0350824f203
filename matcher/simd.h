/* Byte-class tests on 16- and 32-byte vectors, shared by the matcher's SSE2 and AVX2 text passes
 * (text.c, url.c, matcher.c). Each gives 0xff in the lanes that pass, 0 elsewhere. */
#ifndef SW_MATCHER_SIMD_H
#define SW_MATCHER_SIMD_H

#include "matcher/cpu.h"

#if defined(__SSE2__)
#include <emmintrin.h>

/* Lanes where x <= max, both taken unsigned: min(x, max) == x. */
static inline __m128i sw_le_epu8(__m128i x, __m128i max)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(x, max), x);
}

/* Lanes where lo <= v <= lo + span (unsigned, lo + span <= 0xff). */
static inline __m128i sw_in_range_epu8(__m128i v, char lo, char span)
{
    return sw_le_epu8(_mm_sub_epi8(v, _mm_set1_epi8(lo)), _mm_set1_epi8(span));
}

/* Lanes holding an ASCII letter, either case. */
static inline __m128i sw_ascii_letter16(__m128i v)
{
    return sw_in_range_epu8(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 25);
}

/* Lanes holding an ASCII letter or digit. */
static inline __m128i sw_ascii_alnum16(__m128i v)
{
    return _mm_or_si128(sw_ascii_letter16(v), sw_in_range_epu8(v, '0', 9));
}
#endif

#if defined(SW_HAVE_AVX2_PATHS)
#include <immintrin.h>

/* sw_le_epu8() on 32 bytes. */
__attribute__((target("avx2"))) static inline __m256i sw_le_epu8_256(__m256i x, __m256i max)
{
    return _mm256_cmpeq_epi8(_mm256_min_epu8(x, max), x);
}
#endif

#endif
