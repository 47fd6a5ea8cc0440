/* CPU feature detection: cpuid leaves 1, 7 (sub-leaf 0 and 1) and 0x80000001, and XCR0 (xgetbv)
 * for the register state the OS saves. Compiled for baseline x86-64. */
#include "CKernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

void swerve_cpu_detect(swerve_cpu_features *out) {
    memset(out, 0, sizeof *out);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    if (family == 0x6 || family >= 0xf) model |= ((a >> 16) & 0xf) << 4;
    out->family = family;
    out->model = model;
    out->fma = (c >> 12) & 1;
    out->movbe = (c >> 22) & 1;
    out->f16c = (c >> 29) & 1;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    out->os_ymm = avx && (xcr0 & 0x6) == 0x6;
    out->os_zmm = out->os_ymm && (xcr0 & 0xe0) == 0xe0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        out->bmi1 = (b >> 3) & 1;
        out->avx2 = (b >> 5) & 1;
        out->bmi2 = (b >> 8) & 1;
        out->avx512f = (b >> 16) & 1;
        out->avx512dq = (b >> 17) & 1;
        out->avx512cd = (b >> 28) & 1;
        out->avx512bw = (b >> 30) & 1;
        out->avx512vl = (b >> 31) & 1;
        out->avx512_vnni = (c >> 11) & 1;
        unsigned max7 = a;
        if (max7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            out->avx512_bf16 = (a >> 5) & 1;
            out->avx_vnni = (a >> 4) & 1;
        }
    }
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) out->lzcnt = (c >> 5) & 1;
}
#else
void swerve_cpu_detect(swerve_cpu_features *out) { memset(out, 0, sizeof *out); }
#endif
