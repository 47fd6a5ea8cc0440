#ifndef SWERVE_CKERNELS_H
#define SWERVE_CKERNELS_H
/* The engine's per-instruction-set kernels, in C because Swift cannot give one function its own
 * target features: this target is compiled for baseline x86-64, and each kernel carries
 * __attribute__((target(...))) for its level, so the same binary holds the AVX-512 kernels and
 * runs on CPUs without them. The engine (Sources/Engine/CPU/CPULevel.swift) reads the CPU once
 * with swerve_cpu_detect and calls a level's kernels only when the CPU and the OS support it.
 * Stateless; every function is safe from any thread. */
#include <stddef.h>

/* What cpuid and xgetbv say about this CPU (1 = present). The OS-state fields say whether the
 * OS saves the registers (XCR0): without that an instruction set is unusable even if present. */
typedef struct swerve_cpu_features {
    int avx2, fma, f16c, bmi1, bmi2, lzcnt, movbe;
    int os_ymm; /* XCR0 bits 1, 2: XMM and YMM state */
    int avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512_vnni, avx512_bf16;
    int os_zmm; /* XCR0 bits 5, 6, 7: opmask, ZMM_Hi256, Hi16_ZMM state */
    unsigned family, model; /* display family and model */
} swerve_cpu_features;

/* Fills `out` (all zero on other architectures). */
void swerve_cpu_detect(swerve_cpu_features *out);

/* How a GEMM tile starts and ends (the engine's TileFinish): from C's values, or from bias[row]
 * (C not read; 0 when bias is NULL), then optionally clamped to [lo, hi] before the store. */
typedef struct swerve_tile_finish {
    const float *bias;
    int from_bias;
    int clamp;
    float lo, hi;
} swerve_tile_finish;

/* One K block of the engine's packed GEMM (PackedGemm.kBlock), AVX-512F:
 * C[rows, columns] (+)= A · B over `kcb` steps, where A is ceil(rows / 6) panels of 6 rows,
 * k-major (panel p at a + p * 6 * kcb, missing rows zero), and B is ceil(columns / 16) panels of
 * 16 columns, k-major (panel j at b + j * b_stride, missing columns zero). `c` is row 0 of the
 * first panel, `finish->bias` (if any) that row's bias. 12 x 32 register tiles (24 zmm
 * accumulators). */
void swerve_sgemm_packed_avx512(
    long kcb, const float *a, long rows, const float *b, long b_stride, long columns, float *c, long ldc,
    const swerve_tile_finish *finish);

/* C[rows, columns] += A[rows, kcb] · B for a row-major A read in place (row stride lda) and B as
 * above (Gemm/MatMul weights, PackedColumns), AVX-512F: 12 x 32 tiles, then 6, 4, 2 and 1-row
 * tiles for the rows left (1 and 2 rows 64 columns wide). */
void swerve_sgemm_direct_avx512(
    long kcb, const float *a, long lda, long rows, const float *b, long b_stride, long columns, float *c, long ldc);

#endif
