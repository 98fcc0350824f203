/* Run-time choice of the AVX2 text passes (see cpu.h). */
#include "matcher/cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1: not decided yet; 0: baseline; 1: AVX2. Racing first calls decide the same thing. */
static atomic_int cpu_avx2 = -1;

static bool cpu_has_avx2(void)
{
#if defined(SW_HAVE_AVX2_PATHS)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("popcnt") != 0;
#else
    return false;
#endif
}

bool sw_cpu_avx2(void)
{
    int v = atomic_load_explicit(&cpu_avx2, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("SW_SIMD");
        v = cpu_has_avx2() && !(env != NULL && strcmp(env, "baseline") == 0);
        atomic_store_explicit(&cpu_avx2, v, memory_order_relaxed);
    }
    return v != 0;
}

void sw_cpu_force_avx2(bool on)
{
    atomic_store_explicit(&cpu_avx2, on && cpu_has_avx2(), memory_order_relaxed);
}
