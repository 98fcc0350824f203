/* Which optional x86 instruction sets the text passes may use.
 *
 * The build targets the x86-64 baseline (SSE2), so a binary runs on any x86-64 host. The
 * hottest byte loops of the matcher outside Hyperscan (the plain-ASCII copy of
 * text_normalize(), the link anchor search of url_extract() and the emission step of
 * text_fingerprint()) also have AVX2 versions,
 * compiled with a per-function target attribute and chosen at run time, the way Hyperscan's
 * own fat runtime picks its engines. Both versions give the same results (tests/unit run both
 * on the same inputs). SW_SIMD=baseline in the environment turns the AVX2 versions off, for a
 * comparison or a suspect CPU. */
#ifndef SW_MATCHER_CPU_H
#define SW_MATCHER_CPU_H

#include <stdbool.h>

#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define SW_HAVE_AVX2_PATHS 1
#endif

/* True when the AVX2 versions are to be used: the CPU has AVX2 (and POPCNT, which they also
 * use) and SW_SIMD is not "baseline". Decided on the first call, then one load. */
bool sw_cpu_avx2(void);

/* Tests only: force the choice (true: AVX2, if the CPU has it; false: baseline). */
void sw_cpu_force_avx2(bool on);

#endif
