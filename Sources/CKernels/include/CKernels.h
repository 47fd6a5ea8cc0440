#ifndef SWERVE_CKERNELS_H
#define SWERVE_CKERNELS_H
/* The engine's per-instruction-set kernels, in C because Swift cannot give one function its own
 * target features: this target is compiled for baseline x86-64, and each kernel carries
 * __attribute__((target(...))) for its level, so the same binary holds the AVX-512 kernels and
 * runs on CPUs without them. The engine (Sources/Engine/CPU/CPULevel.swift) reads the CPU once
 * with swerve_cpu_detect and calls a level's kernels only when the CPU and the OS support it.
 * Stateless; every function is safe from any thread. */
#include <stddef.h>
#include <stdint.h>

/* What cpuid and xgetbv say about this CPU (1 = present). The OS-state fields say whether the
 * OS saves the registers (XCR0): without that an instruction set is unusable even if present. */
typedef struct swerve_cpu_features {
    int avx2, fma, f16c, bmi1, bmi2, lzcnt, movbe;
    int os_ymm; /* XCR0 bits 1, 2: XMM and YMM state */
    int avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512_vnni, avx512_bf16;
    int os_zmm; /* XCR0 bits 5, 6, 7: opmask, ZMM_Hi256, Hi16_ZMM state */
    unsigned family, model; /* display family and model */
    int avx_vnni; /* AVX-VNNI (VEX-encoded vpdpbusd on ymm: Alder Lake, Zen 5), cpuid 7.1 EAX bit 4 */
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

/* ---- Integer GEMM (Sources/CKernels/igemm.c; contract in Sources/Engine/Kernels/IntegerGemm.swift) ----
 * C[rows, columns] = A[rows, k] (u8) . B[k, columns] (s8) in int32, then the epilogue.
 * A (the kernels' a, a_rs, a_gs, a_ps): row r's group of steps 4g..4g+3 at a + r * a_rs + g * a_gs
 * within 6-row panels a_ps apart. Packed by swerve_i8_pack_a (any k, int8 shifted to uint8): 6-row
 * panels (a_ps = 6 * kp, kp = k rounded up to a multiple of 4, a_rs = 4, a_gs = 24), zero-padded;
 * or uint8 A read in place when k is a multiple of 4 (a_rs = lda, a_gs = 4, a_ps = 6 * lda).
 * B is packed once (PackedInt8Weights): 16-column panels (panel j at b + j * b_stride, b_stride =
 * kp * 16), each in groups of 4 steps: step q of column c at (q / 4) * 64 + c * 4 + q % 4.
 * Padding (rows, columns, steps) is zero. `row0`, `col0`: the absolute row and column of the call's
 * first row and column, which index C and the epilogue's arrays. */

enum { SWERVE_I8_OUT_INT32 = 0, SWERVE_I8_OUT_FLOAT = 1, SWERVE_I8_OUT_U8 = 2, SWERVE_I8_OUT_S8 = 3 };

/* What happens to a tile's int32 sums acc[i][j], in this order:
 *   acc += col_bias[j]                           (if col_bias)
 *   acc += za * col_adjust[j], za = row_zero ? row_zero[i] : zero  (if col_adjust)
 *   acc += row_sums[i] * col_zero[j]             (if row_sums and col_zero)
 * then by kind: INT32 stores acc; FLOAT stores acc * scale * col_scale[j] (+ bias[j]);
 * U8 / S8 store clamp(round_half_even(acc * scale * col_scale[j]), lo - zero_point,
 * hi - zero_point) + zero_point (col_scale NULL = 1). `c` is C's element [0, 0], `ldc` its row
 * stride in elements. */
typedef struct swerve_i8_epilogue {
    int kind;
    void *c;
    long ldc;
    const int32_t *col_bias;
    const int32_t *col_adjust;
    const int32_t *row_zero;
    int32_t zero;
    const int32_t *row_sums;
    const int32_t *col_zero;
    float scale;
    const float *col_scale;
    const float *bias;
    int32_t zero_point, lo, hi;
} swerve_i8_epilogue;

/* Packs A[rows, k] (row stride lda bytes) as above; flip = 1 adds 128 to every byte (s8 -> u8).
 * If row_sums is not NULL, row_sums[i] = the sum of row i's packed bytes. `out` holds
 * ceil(rows / 6) * 6 * kp bytes. Portable C. */
/* out[i] = the sum of row i of A[rows, k] as uint8 (flip = 1: of its bytes plus 128, as packed). */
void swerve_i8_row_sums(const uint8_t *a, long lda, long rows, long k, int flip, int32_t *out);
void swerve_i8_pack_a(const uint8_t *a, long lda, long rows, long k, int flip, uint8_t *out, int32_t *row_sums);

/* The kernels, one per path, same contract (`a`: the call's first A panel, `b`: its first B panel). */
void swerve_i8gemm_avx512vnni(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e);
void swerve_i8gemm_avxvnni(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e);
/* The AVX-VNNI kernel with the EVEX encoding of the same instruction (AVX-512 VNNI + VL), for
 * tests on machines without AVX-VNNI. */
void swerve_i8gemm_avxvnni_evex(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e);
/* AVX2 vpmaddubsw: only for weights in [-64, 64] (PackedInt8Weights.sevenBit). */
void swerve_i8gemm_avx2_7bit(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e);
/* AVX2 widening to int16: any weights. */
void swerve_i8gemm_avx2(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e);

/* dst[c * ldd + r] = src[r * lds + c] for a rows x cols byte matrix (transpose.c). */
void swerve_transpose_u8(const uint8_t *src, long rows, long cols, long lds, uint8_t *dst, long ldd);

/* The smallest and largest of n floats and 0, NaN skipped (transpose.c). */
void swerve_range_f32(const float *x, long n, float *lo, float *hi);

/* Sigmoid and x * sigmoid(alpha x) of the first n - n % 16 (AVX-512) or n - n % 8 (AVX2) floats;
 * return how many were written (activations.c). s and d may be the same. */
long swerve_sigmoid_f32_avx512(const float *s, float *d, long n);
long swerve_swish_f32_avx512(const float *s, float *d, long n, float alpha);
long swerve_sigmoid_f32_avx2(const float *s, float *d, long n);
long swerve_swish_f32_avx2(const float *s, float *d, long n, float alpha);

/* Prefetches `bytes` from `p` into L2 (prefetch.c). */
void swerve_prefetch_l2(const void *p, long bytes);

#endif
