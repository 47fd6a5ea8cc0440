/* Software prefetch of a byte range into the L2 cache (`prefetcht1`, one per 64-byte line), for a
 * pass that will read it after some computation: the 16-bit weights the next GEMM group widens
 * (Sources/Engine/Kernels/PackedGemm.swift), whose widening alone cannot hide DRAM's latency. A
 * hint only; any architecture the compiler knows (the builtin is a no-op where it has none). */
#include "CKernels.h"

void swerve_prefetch_l2(const void *p, long bytes) {
    const char *c = (const char *)p;
    for (long i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 2);
}
