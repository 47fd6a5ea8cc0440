/* Integer GEMM micro-kernels: u8 activations x s8 weights -> int32, with the epilogues of the
 * quantized operators (Sources/Engine/Kernels/IntegerGemm.swift chooses the path and owns the
 * contract; CKernels.h documents the layouts).
 *
 * Three x86 paths over one pair of layouts (A: 6-row panels, B: 16-column panels, both in groups
 * of 4 depth steps, so that one 32-bit lane holds the 4 bytes a dot-product instruction takes):
 *
 * - AVX-512 VNNI: `vpdpbusd` zmm, 16 columns x 4 steps per instruction. Tile 6 rows x 4 panels
 *   (24 accumulators, 4 B vectors, 1 broadcast: 29 of the 32 zmm registers).
 * - AVX-VNNI: the VEX-encoded `vpdpbusd` ymm (Alder Lake, Zen 5). Tile 6 rows x 1 panel (12 ymm
 *   accumulators, 2 B vectors, 1 broadcast: 15 of 16).
 * - AVX2: `vpmaddubsw` (u8 x s8 -> s16 pairs) + `vpmaddwd` by ones (-> s32) + `vpaddd`, which is
 *   exact only when no pair sum leaves int16: 255 * 64 * 2 = 32640, so weights in [-64, 64]
 *   (onnxruntime's reduce_range gives 7-bit weights for this reason; the packer checks every
 *   weight). Other weights take the widening kernel: bytes -> int16 (`vpmovsxbw`, `vpmovzxbw`),
 *   `vpmaddwd`, `vpaddd`, which cannot saturate; half the work per instruction.
 *
 * Accumulation wraps modulo 2^32 as `vpdpbusd` does (not the saturating `vpdpbusds`); with K up
 * to 2^31 / (255 * 128), about 65 000, no sum can wrap. The epilogue runs on each tile while it is
 * in registers: zero-point corrections, then int32, float or requantized 8-bit stores. */
#include "CKernels.h"
#include <string.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,avx,fma,bmi,bmi2")))
#define TVNNI __attribute__((target("avxvnni,avx2,avx,fma,bmi,bmi2")))
#define TAVX2 __attribute__((target("avx2,avx,fma,bmi,bmi2")))
#define INLINE static inline __attribute__((always_inline))

enum { MR = 6, NR = 16 };

static inline int32_t load32(const uint8_t *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* ---------------------------------------------------------------------------------------------- */
/* A packing (portable C, every path).                                                            */

void swerve_i8_row_sums(const uint8_t *a, long lda, long rows, long k, int flip, int32_t *out) {
    for (long i = 0; i < rows; i++) {
        const uint8_t *src = a + i * lda;
        int32_t sum = 0;
        /* (byte ^ 0x80) read as uint8 is the byte read as int8 plus 128. */
        if (flip) {
            for (long q = 0; q < k; q++) sum += (int8_t)src[q];
            sum += 128 * (int32_t)k;
        } else {
            for (long q = 0; q < k; q++) sum += src[q];
        }
        out[i] = sum;
    }
}

void swerve_i8_pack_a(
    const uint8_t *a, long lda, long rows, long k, int flip, uint8_t *out, int32_t *row_sums) {
    const long kp = (k + 3) & ~3L;
    const long full = k / 4;
    const uint32_t x = flip ? 0x80808080u : 0;
    const long panels = (rows + MR - 1) / MR;
    for (long p = 0; p < panels; p++) {
        uint8_t *panel = out + p * MR * kp;
        const long valid = rows - p * MR < MR ? rows - p * MR : MR;
        const uint8_t *src[MR];
        for (int r = 0; r < MR; r++) src[r] = a + (p * MR + (r < valid ? r : 0)) * lda;
        /* One group of all six rows after the other: the panel is written sequentially. */
        if (valid == MR) {
            for (long g = 0; g < full; g++) {
                uint32_t w[MR];
                for (int r = 0; r < MR; r++) {
                    memcpy(&w[r], src[r] + 4 * g, 4);
                    w[r] ^= x;
                }
                memcpy(panel + g * 4 * MR, w, sizeof w);
            }
        } else {
            for (long g = 0; g < full; g++) {
                uint32_t w[MR] = {0, 0, 0, 0, 0, 0};
                for (int r = 0; r < valid; r++) {
                    memcpy(&w[r], src[r] + 4 * g, 4);
                    w[r] ^= x;
                }
                memcpy(panel + g * 4 * MR, w, sizeof w);
            }
        }
        if (full * 4 < kp) {
            uint8_t tail[4 * MR];
            memset(tail, 0, sizeof tail);
            for (int r = 0; r < valid; r++)
                for (long q = 4 * full; q < k; q++) tail[4 * r + q - 4 * full] = (uint8_t)(src[r][q] ^ (uint8_t)x);
            memcpy(panel + full * 4 * MR, tail, sizeof tail);
        }
    }
    if (row_sums) swerve_i8_row_sums(a, lda, rows, k, flip, row_sums);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* ---------------------------------------------------------------------------------------------- */
/* AVX-512 VNNI.                                                                                   */

/* What the epilogue needs of 16 columns, the same for every row of a tile: loaded once. */
typedef struct {
    __mmask16 m;
    __m512i offset; /* col_bias + zero * col_adjust (per-tensor zero point) */
    __m512i adjust; /* col_adjust, for per-row zero points */
    __m512i zb;     /* col_zero */
    __m512 scale, bias;
} cols512;

INLINE T512 cols512 columns512(long col, long cols, const swerve_i8_epilogue *e) {
    cols512 c;
    c.m = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
    c.offset = e->col_bias ? _mm512_maskz_loadu_epi32(c.m, e->col_bias + col) : _mm512_setzero_si512();
    c.adjust = e->col_adjust ? _mm512_maskz_loadu_epi32(c.m, e->col_adjust + col) : _mm512_setzero_si512();
    if (!e->row_zero) c.offset = _mm512_add_epi32(c.offset, _mm512_mullo_epi32(_mm512_set1_epi32(e->zero), c.adjust));
    c.zb = e->col_zero ? _mm512_maskz_loadu_epi32(c.m, e->col_zero + col) : _mm512_setzero_si512();
    c.scale = _mm512_set1_ps(e->scale);
    if (e->col_scale) c.scale = _mm512_mul_ps(c.scale, _mm512_maskz_loadu_ps(c.m, e->col_scale + col));
    c.bias = e->bias ? _mm512_maskz_loadu_ps(c.m, e->bias + col) : _mm512_setzero_ps();
    return c;
}

/* Row `row`, columns [col, col + 16) masked by c->m: corrections, then the store. */
INLINE T512 void epi512(__m512i acc, const cols512 *c, long row, long col, const swerve_i8_epilogue *e) {
    acc = _mm512_add_epi32(acc, c->offset);
    if (e->row_zero) acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(e->row_zero[row]), c->adjust));
    if (e->row_sums && e->col_zero) acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(e->row_sums[row]), c->zb));
    const int full = c->m == 0xffff;
    if (e->kind == SWERVE_I8_OUT_INT32) {
        int32_t *out = (int32_t *)e->c + row * e->ldc + col;
        if (full) _mm512_storeu_si512(out, acc);
        else _mm512_mask_storeu_epi32(out, c->m, acc);
        return;
    }
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), c->scale);
    if (e->kind == SWERVE_I8_OUT_FLOAT) {
        if (e->bias) f = _mm512_add_ps(f, c->bias);
        float *out = (float *)e->c + row * e->ldc + col;
        if (full) _mm512_storeu_ps(out, f);
        else _mm512_mask_storeu_ps(out, c->m, f);
        return;
    }
    /* Clamp in float (so values past int32 saturate the right way), round half to even (MXCSR's
     * default), add the zero point: the result is in [lo, hi]. */
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps((float)(e->lo - e->zero_point))), _mm512_set1_ps((float)(e->hi - e->zero_point)));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(e->zero_point));
    _mm_mask_storeu_epi8((uint8_t *)e->c + row * e->ldc + col, c->m, _mm512_cvtepi32_epi8(q));
}

/* R rows x NV panels. Row r's group g at a + r * rs + g * gs (packed: rs 4, gs 24; in place:
 * rs lda, gs 4). */
INLINE T512 void tile512(
    const int R, const int NV, long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long bs, long row0,
    long col0, long cols, const swerve_i8_epilogue *e) {
    __m512i acc[MR][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_si512();
    const int8_t *pb = b;
    const uint8_t *pa = a;
    for (long g = 0; g < groups; g++) {
        __m512i bv[4];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512(pb + v * bs);
        for (int r = 0; r < R; r++) {
            const __m512i av = _mm512_set1_epi32(load32(pa + r * rs));
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
        }
        pb += 64;
        pa += gs;
    }
    for (int v = 0; v < NV; v++) {
        if (cols <= 16 * v) break;
        const cols512 c = columns512(col0 + 16 * v, cols - 16 * v, e);
        for (int r = 0; r < R; r++) epi512(acc[r][v], &c, row0 + r, col0 + 16 * v, e);
    }
}

typedef void (*tile_fn)(
    long, const uint8_t *, long, long, const int8_t *, long, long, long, long, const swerve_i8_epilogue *);

#define TILE512(R, NV) \
    static T512 __attribute__((noinline)) void t512_##R##_##NV( \
        long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long bs, long row0, long col0, long cols, \
        const swerve_i8_epilogue *e) { \
        tile512(R, NV, groups, a, rs, gs, b, bs, row0, col0, cols, e); \
    }
#define TILE512_ROW(R) TILE512(R, 1) TILE512(R, 2) TILE512(R, 3) TILE512(R, 4)
TILE512_ROW(6)
TILE512_ROW(4)
TILE512_ROW(2)
TILE512_ROW(1)

static const tile_fn tiles512[4][4] = {
    {t512_1_1, t512_1_2, t512_1_3, t512_1_4},
    {t512_2_1, t512_2_2, t512_2_3, t512_2_4},
    {t512_4_1, t512_4_2, t512_4_3, t512_4_4},
    {t512_6_1, t512_6_2, t512_6_3, t512_6_4},
};

/* Tiles of 6, 4, 2 and 1 rows: a panel's `rows` valid rows are covered exactly (A read in place
 * has no padding rows to compute). Index into the tables and the row count of each class. */
static const int class_rows[4] = {1, 2, 4, 6};
static inline int row_class(long rows) { return rows >= 6 ? 3 : rows >= 4 ? 2 : rows >= 2 ? 1 : 0; }

T512 void swerve_i8gemm_avx512vnni(
    long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e) {
    if (rows <= 0 || columns <= 0) return;
    const long groups = ((k + 3) & ~3L) / 4;
    const long panels = (rows + MR - 1) / MR, b_panels = (columns + NR - 1) / NR;
    for (long j = 0; j < b_panels; j += 4) {
        const long nv = b_panels - j < 4 ? b_panels - j : 4;
        for (long p = 0; p < panels; p++) {
            long r = 0;
            const long valid = rows - p * MR < MR ? rows - p * MR : MR;
            while (r < valid) {
                const int c = row_class(valid - r);
                tiles512[c][nv - 1](
                    groups, a + p * a_ps + r * a_rs, a_rs, a_gs, b + j * b_stride, b_stride, row0 + p * MR + r,
                    col0 + j * NR, columns - j * NR, e);
                r += class_rows[c];
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* 256-bit paths (AVX-VNNI and AVX2): tiles of 1 panel (16 columns, two ymm).                       */

static const int32_t lane_index[8] = {0, 1, 2, 3, 4, 5, 6, 7};

/* What the epilogue needs of 8 columns (cols512's counterpart). */
typedef struct {
    long cols; /* 1...8 */
    __m256i m, offset, adjust, zb;
    __m256 scale, bias;
} cols256;

INLINE TAVX2 cols256 columns256(long col, long cols, const swerve_i8_epilogue *e) {
    cols256 c;
    c.cols = cols > 8 ? 8 : cols;
    const int full = cols >= 8;
    c.m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)c.cols), _mm256_loadu_si256((const __m256i *)lane_index));
#define LOADI(p) (full ? _mm256_loadu_si256((const __m256i *)(p)) : _mm256_maskload_epi32((const int *)(p), c.m))
#define LOADF(p) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), c.m))
    c.offset = e->col_bias ? LOADI(e->col_bias + col) : _mm256_setzero_si256();
    c.adjust = e->col_adjust ? LOADI(e->col_adjust + col) : _mm256_setzero_si256();
    if (!e->row_zero) c.offset = _mm256_add_epi32(c.offset, _mm256_mullo_epi32(_mm256_set1_epi32(e->zero), c.adjust));
    c.zb = e->col_zero ? LOADI(e->col_zero + col) : _mm256_setzero_si256();
    c.scale = _mm256_set1_ps(e->scale);
    if (e->col_scale) c.scale = _mm256_mul_ps(c.scale, LOADF(e->col_scale + col));
    c.bias = e->bias ? LOADF(e->bias + col) : _mm256_setzero_ps();
#undef LOADI
#undef LOADF
    return c;
}

INLINE TAVX2 void epi256(__m256i acc, const cols256 *c, long row, long col, const swerve_i8_epilogue *e) {
    acc = _mm256_add_epi32(acc, c->offset);
    if (e->row_zero) acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(e->row_zero[row]), c->adjust));
    if (e->row_sums && e->col_zero) acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(e->row_sums[row]), c->zb));
    const int full = c->cols == 8;
    if (e->kind == SWERVE_I8_OUT_INT32) {
        int32_t *out = (int32_t *)e->c + row * e->ldc + col;
        if (full) _mm256_storeu_si256((__m256i *)out, acc);
        else _mm256_maskstore_epi32((int *)out, c->m, acc);
        return;
    }
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), c->scale);
    if (e->kind == SWERVE_I8_OUT_FLOAT) {
        if (e->bias) f = _mm256_add_ps(f, c->bias);
        float *out = (float *)e->c + row * e->ldc + col;
        if (full) _mm256_storeu_ps(out, f);
        else _mm256_maskstore_ps(out, c->m, f);
        return;
    }
    f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps((float)(e->lo - e->zero_point))), _mm256_set1_ps((float)(e->hi - e->zero_point)));
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(e->zero_point));
    /* q is in [lo, hi] within the 8-bit type: the saturating packs are exact. Bytes 0-3 and
     * 16-19 of the 128-bit lanes hold the 8 results. */
    __m256i w = _mm256_packs_epi32(q, q);
    w = e->kind == SWERVE_I8_OUT_U8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
    w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
    const long long bytes = _mm_cvtsi128_si64(_mm256_castsi256_si128(w));
    memcpy((uint8_t *)e->c + row * e->ldc + col, &bytes, (size_t)c->cols);
}

/* The rows of a 16-column panel: two 8-column halves per row. */
INLINE TAVX2 void epi256_panel(const int R, __m256i acc[][2], long row0, long col, long cols, const swerve_i8_epilogue *e) {
    for (int h = 0; h < 2; h++) {
        if (cols <= 8 * h) break;
        const cols256 c = columns256(col + 8 * h, cols - 8 * h, e);
        for (int r = 0; r < R; r++) epi256(acc[r][h], &c, row0 + r, col + 8 * h, e);
    }
}

/* AVX-VNNI: R rows x 16 columns. Written once for two encodings: the VEX `vpdpbusd` of AVX-VNNI
 * (tile_vnni256) and its EVEX twin of AVX-512 VNNI + VL (tile_vnni256x, same operation), which
 * lets the tests run this tile's code on AVX-512 machines without AVX-VNNI (Zen 4). */
#define VNNI256_TILE(NAME, TARGET, DPBUSD) \
    INLINE TARGET void NAME( \
        const int R, long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols, \
        const swerve_i8_epilogue *e) { \
        __m256i acc[MR][2]; \
        for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256(); \
        for (long g = 0; g < groups; g++) { \
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g)); \
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32)); \
            for (int r = 0; r < R; r++) { \
                const __m256i av = _mm256_set1_epi32(load32(a + g * gs + r * rs)); \
                acc[r][0] = DPBUSD(acc[r][0], av, b0); \
                acc[r][1] = DPBUSD(acc[r][1], av, b1); \
            } \
        } \
        epi256_panel(R, acc, row0, col0, cols, e); \
    }
#define TVNNIX __attribute__((target("avx512vnni,avx512vl,avx512f,avx2,avx,fma,bmi,bmi2")))
VNNI256_TILE(tile_vnni256, TVNNI, _mm256_dpbusd_avx_epi32)
VNNI256_TILE(tile_vnni256x, TVNNIX, _mm256_dpbusd_epi32)

/* AVX2 with 7-bit weights: maddubs (exact for |b| <= 64), madd by ones, add. */
INLINE TAVX2 void tile_maddubs(
    const int R, long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols,
    const swerve_i8_epilogue *e) {
    __m256i acc[MR][2];
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (long g = 0; g < groups; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32));
        for (int r = 0; r < R; r++) {
            const __m256i av = _mm256_set1_epi32(load32(a + g * gs + r * rs));
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
        }
    }
    epi256_panel(R, acc, row0, col0, cols, e);
}

/* AVX2, any weights: widen to int16 and madd, up to 2 rows. Accumulator q of a row holds
 * columns 4q..4q+3 as (steps 0-1, steps 2-3) lane pairs, summed by hadd at the end. */
INLINE TAVX2 void tile_widen(
    const int R, long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols,
    const swerve_i8_epilogue *e) {
    __m256i acc[2][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
    for (long g = 0; g < groups; g++) {
        __m256i bw[4];
        for (int q = 0; q < 4; q++) bw[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 64 * g + 16 * q)));
        for (int r = 0; r < R; r++) {
            const __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(load32(a + g * gs + r * rs))));
            for (int q = 0; q < 4; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, bw[q]));
        }
    }
    __m256i sums[2][2];
    for (int r = 0; r < R; r++) {
        sums[r][0] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][0], acc[r][1]), 0xD8);
        sums[r][1] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][2], acc[r][3]), 0xD8);
    }
    epi256_panel(R, sums, row0, col0, cols, e);
}

typedef void (*tile256_fn)(
    long, const uint8_t *, long, long, const int8_t *, long, long, long, const swerve_i8_epilogue *);

#define TILE256(NAME, TARGET, R) \
    static TARGET __attribute__((noinline)) void NAME##_##R( \
        long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols, \
        const swerve_i8_epilogue *e) { \
        tile_##NAME(R, groups, a, rs, gs, b, row0, col0, cols, e); \
    }
TILE256(vnni256, TVNNI, 6)
TILE256(vnni256, TVNNI, 4)
TILE256(vnni256, TVNNI, 2)
TILE256(vnni256, TVNNI, 1)
TILE256(vnni256x, TVNNIX, 6)
TILE256(vnni256x, TVNNIX, 4)
TILE256(vnni256x, TVNNIX, 2)
TILE256(vnni256x, TVNNIX, 1)
TILE256(maddubs, TAVX2, 6)
TILE256(maddubs, TAVX2, 4)
TILE256(maddubs, TAVX2, 2)
TILE256(maddubs, TAVX2, 1)
TILE256(widen, TAVX2, 2)
TILE256(widen, TAVX2, 1)

/* The widening tile holds 2 rows: 6 and 4 rows are three and two pairs. */
static TAVX2 void widen_6(
    long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols,
    const swerve_i8_epilogue *e) {
    for (int r = 0; r < 6; r += 2) widen_2(groups, a + r * rs, rs, gs, b, row0 + r, col0, cols, e);
}
static TAVX2 void widen_4(
    long groups, const uint8_t *a, long rs, long gs, const int8_t *b, long row0, long col0, long cols,
    const swerve_i8_epilogue *e) {
    for (int r = 0; r < 4; r += 2) widen_2(groups, a + r * rs, rs, gs, b, row0 + r, col0, cols, e);
}

/* Every panel of the call, each A panel's valid rows in tiles of 6, 4, 2, 1 rows. */
static inline void drive256(
    const tile256_fn table[4], long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b,
    long b_stride, long columns, long row0, long col0, const swerve_i8_epilogue *e) {
    if (rows <= 0 || columns <= 0) return;
    const long groups = ((k + 3) & ~3L) / 4;
    const long panels = (rows + MR - 1) / MR, b_panels = (columns + NR - 1) / NR;
    for (long j = 0; j < b_panels; j++)
        for (long p = 0; p < panels; p++) {
            const long valid = rows - p * MR < MR ? rows - p * MR : MR;
            long r = 0;
            while (r < valid) {
                const int c = row_class(valid - r);
                table[c](groups, a + p * a_ps + r * a_rs, a_rs, a_gs, b + j * b_stride, row0 + p * MR + r, col0 + j * NR,
                    columns - j * NR, e);
                r += class_rows[c];
            }
        }
}

#define DRIVER(NAME, TARGET, T1, T2, T4, T6) \
    TARGET void NAME( \
        long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, \
        long columns, long row0, long col0, const swerve_i8_epilogue *e) { \
        static const tile256_fn table[4] = {T1, T2, T4, T6}; \
        drive256(table, k, a, a_rs, a_gs, a_ps, rows, b, b_stride, columns, row0, col0, e); \
    }
DRIVER(swerve_i8gemm_avxvnni, TVNNI, vnni256_1, vnni256_2, vnni256_4, vnni256_6)
DRIVER(swerve_i8gemm_avxvnni_evex, TVNNIX, vnni256x_1, vnni256x_2, vnni256x_4, vnni256x_6)
DRIVER(swerve_i8gemm_avx2_7bit, TAVX2, maddubs_1, maddubs_2, maddubs_4, maddubs_6)
DRIVER(swerve_i8gemm_avx2, TAVX2, widen_1, widen_2, widen_4, widen_6)

#else
/* Never called: the engine takes these paths only on x86-64 CPUs that have them. */
static void unavailable(void) { __builtin_trap(); }
#define STUB(NAME) \
    void NAME(long k, const uint8_t *a, long a_rs, long a_gs, long a_ps, long rows, const int8_t *b, long b_stride, \
        long columns, long row0, long col0, const swerve_i8_epilogue *e) { \
        (void)k, (void)a, (void)a_rs, (void)a_gs, (void)a_ps, (void)rows, (void)b, (void)b_stride, (void)columns, \
            (void)row0, (void)col0, (void)e; \
        unavailable(); \
    }
STUB(swerve_i8gemm_avx512vnni)
STUB(swerve_i8gemm_avxvnni)
STUB(swerve_i8gemm_avxvnni_evex)
STUB(swerve_i8gemm_avx2_7bit)
STUB(swerve_i8gemm_avx2)
#endif
