#ifndef SWERVE_CCPU_SHIM_H
#define SWERVE_CCPU_SHIM_H
/* Whether this CPU runs code built for the instruction-set level the engine targets (see
 * Package.swift): x86-64-v3 (AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE, with the OS saving YMM state).
 * Always 1 on other architectures. Header-only: compiled into the caller, which must itself be
 * built for baseline x86-64 (the swerve executable target is). */
#if defined(__x86_64__)
#include <cpuid.h>
static inline int swerve_cpu_supports_engine_level(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned leaf1 = (1u << 12) /* FMA */ | (1u << 22) /* MOVBE */ | (1u << 27) /* OSXSAVE */
        | (1u << 28) /* AVX */ | (1u << 29) /* F16C */;
    if ((c & leaf1) != leaf1) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0; /* XMM and YMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned leaf7 = (1u << 3) /* BMI1 */ | (1u << 5) /* AVX2 */ | (1u << 8) /* BMI2 */;
    if ((b & leaf7) != leaf7) return 0;
    if (!__get_cpuid(0x80000001u, &a, &b, &c, &d)) return 0;
    return (c & (1u << 5)) != 0; /* LZCNT */
}
#else
static inline int swerve_cpu_supports_engine_level(void) { return 1; }
#endif
#endif
