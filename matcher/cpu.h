/* Which optional x86 instruction sets the text passes may use.
 *
 * The build targets the x86-64 baseline (SSE2), so a binary runs on any x86-64 host. The
 * hottest byte loops of the matcher outside Hyperscan (the plain-ASCII copy of
 * text_normalize(), the link anchor search of url_extract() and the emission step of
 * text_fingerprint()) also have AVX2 versions, and the fingerprint an AVX-512 one (VBMI2's
 * byte compress does its packing in one instruction), compiled with a per-function target
 * attribute and chosen at run time, the way Hyperscan's own fat runtime picks its engines.
 * All versions give the same results (tests/unit run each on the same inputs). SW_SIMD in the
 * environment caps the choice, for a comparison or a suspect CPU: "baseline" turns the AVX2
 * and AVX-512 versions off, "avx2" the AVX-512 ones. */
#ifndef SW_MATCHER_CPU_H
#define SW_MATCHER_CPU_H

#include <stdbool.h>

#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define SW_HAVE_AVX2_PATHS 1
#endif

enum sw_cpu_tier {
    SW_CPU_BASELINE, /* SSE2 */
    SW_CPU_AVX2,     /* and POPCNT */
    SW_CPU_AVX512,   /* AVX-512 F, BW and VBMI2, on top of AVX2 */
};

/* True when the AVX2 versions are to be used: the CPU has AVX2 (and POPCNT, which they also
 * use) and SW_SIMD is not "baseline". Decided on the first call, then one load. */
bool sw_cpu_avx2(void);

/* True when the AVX-512 versions are to be used as well: the CPU (and OS) support AVX-512 F,
 * BW and VBMI2, and SW_SIMD is neither "baseline" nor "avx2". */
bool sw_cpu_avx512(void);

/* The tier in use (decided on the first call, as above). */
enum sw_cpu_tier sw_cpu_tier(void);

/* Tests only: force the tier (capped at what the CPU has). */
void sw_cpu_force_tier(enum sw_cpu_tier tier);

/* Tests only: true: the best tier the CPU has; false: baseline. */
void sw_cpu_force_avx2(bool on);

#endif
