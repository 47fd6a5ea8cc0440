#ifndef SWERVE_CSHUFFLE_SHIM_H
#define SWERVE_CSHUFFLE_SHIM_H
/* 8x8 float transposes for the engine's channel-blocked kernels (DepthwiseBlocks.swift).
 *
 * Why C: Swift's SIMD types have no general shuffle, and the transposes written with them
 * (SIMD16 evenHalf/oddHalf, or lane-by-lane initialisers) were lowered by LLVM into 50-75
 * broadcasts, inserts and blends per 8x8 block once the loads were folded in. These static
 * inline functions are the textbook 24-shuffle AVX transpose (unpack, shuffle, 128-bit permute);
 * the Swift code that calls them inlines them (the Engine target is built for x86-64-v3). Built
 * without AVX (SWERVE_PORTABLE=1, other architectures) they are plain loops with the same results.
 * Header-only, stateless. */
#include <stddef.h>

#if defined(__AVX__)
#include <immintrin.h>

/* Rows r0..r7 in, columns out (as rows of the transpose) into t[0..7]. */
#define SWERVE_TRANSPOSE8(r0, r1, r2, r3, r4, r5, r6, r7, t)                                      \
    do {                                                                                           \
        __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1);                   \
        __m256 u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3);                   \
        __m256 u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5);                   \
        __m256 u6 = _mm256_unpacklo_ps(r6, r7), u7 = _mm256_unpackhi_ps(r6, r7);                   \
        __m256 s0 = _mm256_shuffle_ps(u0, u2, 0x44), s1 = _mm256_shuffle_ps(u0, u2, 0xEE);         \
        __m256 s2 = _mm256_shuffle_ps(u1, u3, 0x44), s3 = _mm256_shuffle_ps(u1, u3, 0xEE);         \
        __m256 s4 = _mm256_shuffle_ps(u4, u6, 0x44), s5 = _mm256_shuffle_ps(u4, u6, 0xEE);         \
        __m256 s6 = _mm256_shuffle_ps(u5, u7, 0x44), s7 = _mm256_shuffle_ps(u5, u7, 0xEE);         \
        t[0] = _mm256_permute2f128_ps(s0, s4, 0x20); t[1] = _mm256_permute2f128_ps(s1, s5, 0x20); \
        t[2] = _mm256_permute2f128_ps(s2, s6, 0x20); t[3] = _mm256_permute2f128_ps(s3, s7, 0x20); \
        t[4] = _mm256_permute2f128_ps(s0, s4, 0x31); t[5] = _mm256_permute2f128_ps(s1, s5, 0x31); \
        t[6] = _mm256_permute2f128_ps(s2, s6, 0x31); t[7] = _mm256_permute2f128_ps(s3, s7, 0x31); \
    } while (0)
#endif

/* Reads eight rows of eight floats (row j at src + j * srcStride) and writes column k of them,
 * eight floats, to dst + k * dstStride. */
static inline __attribute__((always_inline)) void swerve_transpose8(
    const float *src, ptrdiff_t srcStride, float *dst, ptrdiff_t dstStride) {
#if defined(__AVX__)
    __m256 t[8];
    SWERVE_TRANSPOSE8(_mm256_loadu_ps(src), _mm256_loadu_ps(src + srcStride), _mm256_loadu_ps(src + 2 * srcStride),
        _mm256_loadu_ps(src + 3 * srcStride), _mm256_loadu_ps(src + 4 * srcStride),
        _mm256_loadu_ps(src + 5 * srcStride), _mm256_loadu_ps(src + 6 * srcStride),
        _mm256_loadu_ps(src + 7 * srcStride), t);
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + k * dstStride, t[k]);
#else
    float column[8];
    for (int k = 0; k < 8; k++) {
        for (int j = 0; j < 8; j++) column[j] = src[j * srcStride + k];
        for (int j = 0; j < 8; j++) dst[k * dstStride + j] = column[j];
    }
#endif
}

/* As swerve_transpose8, with column k written to d[k]. */
static inline __attribute__((always_inline)) void swerve_transpose8_scatter(
    const float *src, ptrdiff_t stride, float *d0, float *d1, float *d2, float *d3, float *d4, float *d5,
    float *d6, float *d7) {
#if defined(__AVX__)
    __m256 t[8];
    SWERVE_TRANSPOSE8(_mm256_loadu_ps(src), _mm256_loadu_ps(src + stride), _mm256_loadu_ps(src + 2 * stride),
        _mm256_loadu_ps(src + 3 * stride), _mm256_loadu_ps(src + 4 * stride), _mm256_loadu_ps(src + 5 * stride),
        _mm256_loadu_ps(src + 6 * stride), _mm256_loadu_ps(src + 7 * stride), t);
    _mm256_storeu_ps(d0, t[0]); _mm256_storeu_ps(d1, t[1]); _mm256_storeu_ps(d2, t[2]); _mm256_storeu_ps(d3, t[3]);
    _mm256_storeu_ps(d4, t[4]); _mm256_storeu_ps(d5, t[5]); _mm256_storeu_ps(d6, t[6]); _mm256_storeu_ps(d7, t[7]);
#else
    float *d[8] = {d0, d1, d2, d3, d4, d5, d6, d7};
    float column[8];
    for (int k = 0; k < 8; k++) {
        for (int j = 0; j < 8; j++) column[j] = src[j * stride + k];
        for (int j = 0; j < 8; j++) d[k][j] = column[j];
    }
#endif
}

#endif
