/* The packed SGEMM micro-kernels for AVX-512F (level "avx512" of Sources/Engine/CPU/CPULevel.swift).
 *
 * Register tile: 12 rows x 32 columns = 24 zmm accumulators, plus two B vectors and one broadcast
 * (embedded in the FMA as {1to16}): 27 of the 32 zmm registers. Per k step 2 loads of B and 12
 * broadcasts of A feed 24 FMAs (384 multiply-adds), against 8 + 6 for 12 FMAs (96) in the AVX2
 * 6 x 16 tile. The data layouts are the AVX2 path's (6-row A panels, 16-column B panels, K blocks
 * of 256), so packed weights and the panel builders (Conv's patches, Winograd) are shared: a
 * 12-row tile reads two consecutive A panels, a 32-column tile two consecutive B panels. Partial
 * tiles use masks on C (B's panels are zero-padded, so their loads are whole) and a smaller tile
 * for the rows or panels left. Prefetch: C's tile before the k loop; B and A are sequential
 * streams from L1/L2, which the hardware prefetcher follows.
 *
 * The tile is one always-inline function over compile-time (MR, NV); each caller below passes
 * constants, so the compiler unrolls it into straight-line code with the accumulators in
 * registers. */
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2,avx,f16c,bmi,bmi2")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* A panels of the K block: 16 panels (96 rows, 96 KiB at kcb 256) per L2 block, as the AVX2 path. */
enum { MC_PANELS = 16, MC_DIRECT_ROWS = 96 };

INLINE __mmask16 column_mask(long cols) {
    return cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1);
}

/* C[rows_valid, cols] (+)= A[MR rows] · B[NV panels] over kcb steps.
 * Row r of A, step q: (r < 6 ? a0 + r * rs : a1 + (r - 6) * rs)[q * step].
 * B panel v, step q: b + v * b_stride + q * 16. `bias` is row 0's bias (from_bias). */
INLINE void tile(
    const int MR, const int NV, long kcb, const float *a0, const float *a1, long rs, long step, const float *b,
    long b_stride, float *c, long ldc, long rows_valid, long cols, const swerve_tile_finish *f) {
    __m512 acc[12][4];
    __mmask16 mask[4];
    for (int v = 0; v < NV; v++) mask[v] = column_mask(cols - 16 * v);
    const int from_bias = f && f->from_bias;
    for (int r = 0; r < MR; r++) {
        if (from_bias) {
            float x = (f->bias && r < rows_valid) ? f->bias[r] : 0.0f;
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_set1_ps(x);
        } else if (r < rows_valid) {
            for (int v = 0; v < NV; v++)
                acc[r][v] = mask[v] == 0xffff ? _mm512_loadu_ps(c + r * ldc + 16 * v)
                                              : _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v);
        } else {
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
        }
    }
    const float *pa0 = a0, *pa1 = a1, *pb = b;
    for (long q = 0; q < kcb; q++) {
        __m512 bv[4];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(pb + v * b_stride);
        for (int r = 0; r < MR; r++) {
            const float *p = r < 6 ? pa0 + r * rs : pa1 + (r - 6) * rs;
            __m512 av = _mm512_set1_ps(*p);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
        pa0 += step;
        pa1 += step;
        pb += 16;
    }
    if (f && f->clamp) {
        __m512 lo = _mm512_set1_ps(f->lo), hi = _mm512_set1_ps(f->hi);
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_min_ps(_mm512_max_ps(acc[r][v], lo), hi);
    }
    for (int r = 0; r < MR; r++) {
        if (r >= rows_valid) break;
        for (int v = 0; v < NV; v++) {
            /* Whole vectors unmasked (a masked store costs more on Zen 4), the partial one masked. */
            if (mask[v] == 0xffff) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
            else _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], acc[r][v]);
        }
    }
}

/* Packed A: MR = 12 (two panels) or 6 (one), NV = 2 or 1. */
#define PACKED(MR, NV) \
    static TARGET __attribute__((noinline)) void packed_##MR##x##NV( \
        long kcb, const float *a, const float *b, long b_stride, float *c, long ldc, long rows, long cols, \
        const swerve_tile_finish *f) { \
        tile(MR, NV, kcb, a, a + 6 * kcb, 1, 6, b, b_stride, c, ldc, rows, cols, f); \
    }
PACKED(12, 2)
PACKED(12, 1)
PACKED(6, 2)
PACKED(6, 1)

TARGET void swerve_sgemm_packed_avx512(
    long kcb, const float *a, long rows, const float *b, long b_stride, long columns, float *c, long ldc,
    const swerve_tile_finish *finish) {
    if (rows <= 0 || columns <= 0 || kcb <= 0) return;
    const long panels = (rows + 5) / 6;
    const long b_panels = (columns + 15) / 16;
    for (long ic = 0; ic < panels; ic += MC_PANELS) {
        const long ic_end = ic + MC_PANELS < panels ? ic + MC_PANELS : panels;
        for (long j = 0; j < b_panels; j += 2) {
            const int nv = b_panels - j >= 2 ? 2 : 1;
            const float *bj = b + j * b_stride;
            const long cols = columns - 16 * j;
            for (long p = ic; p < ic_end; p += 2) {
                const long row = 6 * p;
                const float *ap = a + p * 6 * kcb;
                float *cp = c + row * ldc + 16 * j;
                swerve_tile_finish f;
                const swerve_tile_finish *fp = finish;
                if (finish && finish->from_bias && finish->bias) {
                    f = *finish;
                    f.bias += row;
                    fp = &f;
                }
                const long rows_left = rows - row;
                if (ic_end - p >= 2) {
                    if (nv == 2) packed_12x2(kcb, ap, bj, b_stride, cp, ldc, rows_left, cols, fp);
                    else packed_12x1(kcb, ap, bj, b_stride, cp, ldc, rows_left, cols, fp);
                } else {
                    if (nv == 2) packed_6x2(kcb, ap, bj, b_stride, cp, ldc, rows_left, cols, fp);
                    else packed_6x1(kcb, ap, bj, b_stride, cp, ldc, rows_left, cols, fp);
                }
            }
        }
    }
}

/* A in place: MR rows `lda` apart, NV panels. */
#define DIRECT(MR, NV) \
    static TARGET __attribute__((noinline)) void direct_##MR##x##NV( \
        long kcb, const float *a, long lda, const float *b, long b_stride, float *c, long ldc, long cols) { \
        tile(MR, NV, kcb, a, a + 6 * lda, lda, 1, b, b_stride, c, ldc, MR, cols, 0); \
    }
DIRECT(12, 2)
DIRECT(12, 1)
DIRECT(6, 2)
DIRECT(6, 1)
DIRECT(4, 2)
DIRECT(4, 1)
DIRECT(2, 4)
DIRECT(2, 2)
DIRECT(2, 1)
DIRECT(1, 4)
DIRECT(1, 2)
DIRECT(1, 1)

/* Rows [0, mr) of the tile row at `a`/`c` over every column, in groups of `nv_max` panels. */
#define COLUMN_LOOP(MR, CALL_WIDE, CALL_2, CALL_1, WIDE) \
    for (long j = 0; j < b_panels;) { \
        const long left = b_panels - j; \
        const float *bj = b + j * b_stride; \
        float *cj = c + r * ldc + 16 * j; \
        const long cols = columns - 16 * j; \
        if (left >= WIDE) { CALL_WIDE; j += WIDE; } \
        else if (left >= 2) { CALL_2; j += 2; } \
        else { CALL_1; j += 1; } \
    }

TARGET void swerve_sgemm_direct_avx512(
    long kcb, const float *a, long lda, long rows, const float *b, long b_stride, long columns, float *c, long ldc) {
    if (rows <= 0 || columns <= 0 || kcb <= 0) return;
    const long b_panels = (columns + 15) / 16;
    for (long ic = 0; ic < rows; ic += MC_DIRECT_ROWS) {
        const long ic_end = ic + MC_DIRECT_ROWS < rows ? ic + MC_DIRECT_ROWS : rows;
        long r = ic;
        while (r < ic_end) {
            const long left = ic_end - r;
            const float *ar = a + r * lda;
            if (left >= 12) {
                COLUMN_LOOP(12, direct_12x2(kcb, ar, lda, bj, b_stride, cj, ldc, cols), (void)0,
                    direct_12x1(kcb, ar, lda, bj, b_stride, cj, ldc, cols), 2)
                r += 12;
            } else if (left >= 6) {
                COLUMN_LOOP(6, direct_6x2(kcb, ar, lda, bj, b_stride, cj, ldc, cols), (void)0,
                    direct_6x1(kcb, ar, lda, bj, b_stride, cj, ldc, cols), 2)
                r += 6;
            } else if (left >= 4) {
                COLUMN_LOOP(4, direct_4x2(kcb, ar, lda, bj, b_stride, cj, ldc, cols), (void)0,
                    direct_4x1(kcb, ar, lda, bj, b_stride, cj, ldc, cols), 2)
                r += 4;
            } else if (left >= 2) {
                COLUMN_LOOP(2, direct_2x4(kcb, ar, lda, bj, b_stride, cj, ldc, cols),
                    direct_2x2(kcb, ar, lda, bj, b_stride, cj, ldc, cols),
                    direct_2x1(kcb, ar, lda, bj, b_stride, cj, ldc, cols), 4)
                r += 2;
            } else {
                COLUMN_LOOP(1, direct_1x4(kcb, ar, lda, bj, b_stride, cj, ldc, cols),
                    direct_1x2(kcb, ar, lda, bj, b_stride, cj, ldc, cols),
                    direct_1x1(kcb, ar, lda, bj, b_stride, cj, ldc, cols), 4)
                r += 1;
            }
        }
    }
}

#else
void swerve_sgemm_packed_avx512(
    long kcb, const float *a, long rows, const float *b, long b_stride, long columns, float *c, long ldc,
    const swerve_tile_finish *finish) {
    (void)kcb; (void)a; (void)rows; (void)b; (void)b_stride; (void)columns; (void)c; (void)ldc; (void)finish;
    __builtin_trap(); /* never called: the engine selects AVX-512 only on x86-64 */
}
void swerve_sgemm_direct_avx512(
    long kcb, const float *a, long lda, long rows, const float *b, long b_stride, long columns, float *c, long ldc) {
    (void)kcb; (void)a; (void)lda; (void)rows; (void)b; (void)b_stride; (void)columns; (void)c; (void)ldc;
    __builtin_trap();
}
#endif
