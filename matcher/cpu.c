/* Run-time choice of the AVX2 and AVX-512 text passes (see cpu.h). */
#include "matcher/cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1: not decided yet; else an enum sw_cpu_tier. Racing first calls decide the same thing. */
static atomic_int cpu_tier = -1;

/* The best tier this CPU (and its OS, which must save the vector state) supports. */
static int cpu_best_tier(void)
{
#if defined(SW_HAVE_AVX2_PATHS)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("popcnt"))
        return SW_CPU_BASELINE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vbmi2"))
        return SW_CPU_AVX512;
    return SW_CPU_AVX2;
#else
    return SW_CPU_BASELINE;
#endif
}

static int cpu_tier_now(void)
{
    int v = atomic_load_explicit(&cpu_tier, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("SW_SIMD");
        v = cpu_best_tier();
        if (env != NULL && strcmp(env, "baseline") == 0)
            v = SW_CPU_BASELINE;
        else if (env != NULL && strcmp(env, "avx2") == 0 && v > SW_CPU_AVX2)
            v = SW_CPU_AVX2;
        atomic_store_explicit(&cpu_tier, v, memory_order_relaxed);
    }
    return v;
}

bool sw_cpu_avx2(void)
{
    return cpu_tier_now() >= SW_CPU_AVX2;
}

bool sw_cpu_avx512(void)
{
    return cpu_tier_now() >= SW_CPU_AVX512;
}

enum sw_cpu_tier sw_cpu_tier(void)
{
    return (enum sw_cpu_tier)cpu_tier_now();
}

void sw_cpu_force_tier(enum sw_cpu_tier tier)
{
    int best = cpu_best_tier();
    atomic_store_explicit(&cpu_tier, (int)tier < best ? (int)tier : best, memory_order_relaxed);
}

void sw_cpu_force_avx2(bool on)
{
    sw_cpu_force_tier(on ? SW_CPU_AVX512 : SW_CPU_BASELINE);
}
