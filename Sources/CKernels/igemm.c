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

void swerve_i8_pack_a(
    const uint8_t *a, long lda, long rows, long k, int flip, uint8_t *out, int32_t *row_sums) {
    const long kp = (k + 3) & ~3L;
    const long groups = kp / 4;
    const uint32_t x = flip ? 0x80808080u : 0;
    const long panels = (rows + MR - 1) / MR;
    for (long p = 0; p < panels; p++) {
        uint8_t *panel = out + p * MR * kp;
        for (int r = 0; r < MR; r++) {
            const long row = p * MR + r;
            uint8_t *dst = panel + r * 4;
            if (row >= rows) {
                for (long g = 0; g < groups; g++) memset(dst + g * 4 * MR, 0, 4);
                continue;
            }
            const uint8_t *src = a + row * lda;
            uint32_t sum = 0;
            long g = 0;
            for (; g < k / 4; g++) {
                uint32_t w;
                memcpy(&w, src + 4 * g, 4);
                w ^= x;
                memcpy(dst + g * 4 * MR, &w, 4);
                /* Byte sum of w: pairs, then quads (no carries between the 16-bit fields). */
                uint32_t s = (w & 0x00ff00ffu) + ((w >> 8) & 0x00ff00ffu);
                sum += (s & 0xffffu) + (s >> 16);
            }
            if (g < groups) {
                uint8_t tail[4] = {0, 0, 0, 0};
                for (long q = 4 * g; q < k; q++) {
                    tail[q - 4 * g] = (uint8_t)(src[q] ^ (uint8_t)x);
                    sum += tail[q - 4 * g];
                }
                memcpy(dst + g * 4 * MR, tail, 4);
            }
            if (row_sums) row_sums[row] = (int32_t)sum;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* ---------------------------------------------------------------------------------------------- */
/* AVX-512 VNNI.                                                                                   */

/* Columns [col, col + cols) of row `row` (cols in 1...16): corrections, then the store. */
INLINE T512 void epi512(__m512i acc, long row, long col, long cols, const swerve_i8_epilogue *e) {
    const __mmask16 m = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
    if (e->col_bias) acc = _mm512_add_epi32(acc, _mm512_maskz_loadu_epi32(m, e->col_bias + col));
    if (e->col_adjust) {
        const int32_t za = e->row_zero ? e->row_zero[row] : e->zero;
        if (za) acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(za), _mm512_maskz_loadu_epi32(m, e->col_adjust + col)));
    }
    if (e->row_sums && e->col_zero)
        acc = _mm512_add_epi32(
            acc, _mm512_mullo_epi32(_mm512_set1_epi32(e->row_sums[row]), _mm512_maskz_loadu_epi32(m, e->col_zero + col)));
    if (e->kind == SWERVE_I8_OUT_INT32) {
        int32_t *c = (int32_t *)e->c + row * e->ldc + col;
        if (m == 0xffff) _mm512_storeu_si512(c, acc);
        else _mm512_mask_storeu_epi32(c, m, acc);
        return;
    }
    __m512 s = _mm512_set1_ps(e->scale);
    if (e->col_scale) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, e->col_scale + col));
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), s);
    if (e->kind == SWERVE_I8_OUT_FLOAT) {
        if (e->bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(m, e->bias + col));
        float *c = (float *)e->c + row * e->ldc + col;
        if (m == 0xffff) _mm512_storeu_ps(c, f);
        else _mm512_mask_storeu_ps(c, m, f);
        return;
    }
    /* Clamp in float (so values past int32 saturate the right way), round half to even (MXCSR's
     * default), add the zero point: the result is in [lo, hi]. */
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps((float)(e->lo - e->zero_point))), _mm512_set1_ps((float)(e->hi - e->zero_point)));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(e->zero_point));
    uint8_t *c = (uint8_t *)e->c + row * e->ldc + col;
    _mm_mask_storeu_epi8(c, m, _mm512_cvtepi32_epi8(q));
}

INLINE T512 void tile512(
    const int R, const int NV, long groups, const uint8_t *a, const int8_t *b, long bs, long row0, long col0, long rows,
    long cols, const swerve_i8_epilogue *e) {
    __m512i acc[MR][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_si512();
    const int8_t *pb = b;
    const uint8_t *pa = a;
    for (long g = 0; g < groups; g++) {
        __m512i bv[4];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512(pb + v * bs);
        for (int r = 0; r < R; r++) {
            const __m512i av = _mm512_set1_epi32(load32(pa + 4 * r));
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
        }
        pb += 64;
        pa += 4 * MR;
    }
    for (int r = 0; r < R && r < rows; r++)
        for (int v = 0; v < NV; v++)
            if (cols > 16 * v) epi512(acc[r][v], row0 + r, col0 + 16 * v, cols - 16 * v, e);
}

typedef void (*tile_fn)(long, const uint8_t *, const int8_t *, long, long, long, long, long, const swerve_i8_epilogue *);

#define TILE512(R, NV) \
    static T512 __attribute__((noinline)) void t512_##R##_##NV( \
        long groups, const uint8_t *a, const int8_t *b, long bs, long row0, long col0, long rows, long cols, \
        const swerve_i8_epilogue *e) { \
        tile512(R, NV, groups, a, b, bs, row0, col0, rows, cols, e); \
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

/* The row-count class of a panel's `rows` valid rows: the smallest tile of 1, 2, 4 or 6 rows. */
static inline int row_class(long rows) { return rows <= 1 ? 0 : rows <= 2 ? 1 : rows <= 4 ? 2 : 3; }

T512 void swerve_i8gemm_avx512vnni(
    long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns, long row0, long col0,
    const swerve_i8_epilogue *e) {
    if (rows <= 0 || columns <= 0) return;
    const long groups = ((k + 3) & ~3L) / 4;
    const long panels = (rows + MR - 1) / MR, b_panels = (columns + NR - 1) / NR;
    for (long j = 0; j < b_panels; j += 4) {
        const long nv = b_panels - j < 4 ? b_panels - j : 4;
        for (long p = 0; p < panels; p++) {
            const long rv = rows - p * MR < MR ? rows - p * MR : MR;
            tiles512[row_class(rv)][nv - 1](
                groups, a + p * MR * groups * 4, b + j * b_stride, b_stride, row0 + p * MR, col0 + j * NR, rv,
                columns - j * NR, e);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* 256-bit paths (AVX-VNNI and AVX2): tiles of 1 panel (16 columns, two ymm).                       */

static const int32_t lane_index[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Masked 32-bit lanes [0, cols) of 8 (cols in 1...8). */
INLINE TAVX2 __m256i mask8(long cols) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols), _mm256_loadu_si256((const __m256i *)lane_index));
}

INLINE TAVX2 void epi256(__m256i acc, long row, long col, long cols, const swerve_i8_epilogue *e) {
    const int full = cols >= 8;
    const __m256i m = full ? _mm256_set1_epi32(-1) : mask8(cols);
#define LOADI(p) (full ? _mm256_loadu_si256((const __m256i *)(p)) : _mm256_maskload_epi32((const int *)(p), m))
#define LOADF(p) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), m))
    if (e->col_bias) acc = _mm256_add_epi32(acc, LOADI(e->col_bias + col));
    if (e->col_adjust) {
        const int32_t za = e->row_zero ? e->row_zero[row] : e->zero;
        if (za) acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(za), LOADI(e->col_adjust + col)));
    }
    if (e->row_sums && e->col_zero)
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(e->row_sums[row]), LOADI(e->col_zero + col)));
    if (e->kind == SWERVE_I8_OUT_INT32) {
        int32_t *c = (int32_t *)e->c + row * e->ldc + col;
        if (full) _mm256_storeu_si256((__m256i *)c, acc);
        else _mm256_maskstore_epi32((int *)c, m, acc);
        return;
    }
    __m256 s = _mm256_set1_ps(e->scale);
    if (e->col_scale) s = _mm256_mul_ps(s, LOADF(e->col_scale + col));
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), s);
    if (e->kind == SWERVE_I8_OUT_FLOAT) {
        if (e->bias) f = _mm256_add_ps(f, LOADF(e->bias + col));
        float *c = (float *)e->c + row * e->ldc + col;
        if (full) _mm256_storeu_ps(c, f);
        else _mm256_maskstore_ps(c, m, f);
        return;
    }
#undef LOADI
#undef LOADF
    f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps((float)(e->lo - e->zero_point))), _mm256_set1_ps((float)(e->hi - e->zero_point)));
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(e->zero_point));
    /* q is in [lo, hi] within the 8-bit type: the saturating packs are exact. Bytes 0-3 and
     * 16-19 of the 128-bit lanes hold the 8 results. */
    __m256i w = _mm256_packs_epi32(q, q);
    w = e->kind == SWERVE_I8_OUT_U8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
    w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
    const long long bytes = _mm_cvtsi128_si64(_mm256_castsi256_si128(w));
    uint8_t *c = (uint8_t *)e->c + row * e->ldc + col;
    memcpy(c, &bytes, full ? 8 : (size_t)cols);
}

/* Stores the two 8-column halves of a 16-column panel row. */
INLINE TAVX2 void epi256_panel(__m256i lo, __m256i hi, long row, long col, long cols, const swerve_i8_epilogue *e) {
    epi256(lo, row, col, cols, e);
    if (cols > 8) epi256(hi, row, col + 8, cols - 8, e);
}

/* AVX-VNNI: R rows x 16 columns. */
INLINE TVNNI void tile_vnni256(
    const int R, long groups, const uint8_t *a, const int8_t *b, long row0, long col0, long rows, long cols,
    const swerve_i8_epilogue *e) {
    __m256i acc[MR][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (long g = 0; g < groups; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32));
        for (int r = 0; r < R; r++) {
            const __m256i av = _mm256_set1_epi32(load32(a + g * 4 * MR + 4 * r));
            acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], av, b0);
            acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], av, b1);
        }
    }
    for (int r = 0; r < R && r < rows; r++) epi256_panel(acc[r][0], acc[r][1], row0 + r, col0, cols, e);
}

/* AVX2 with 7-bit weights: maddubs (exact for |b| <= 64), madd by ones, add. */
INLINE TAVX2 void tile_maddubs(
    const int R, long groups, const uint8_t *a, const int8_t *b, long row0, long col0, long rows, long cols,
    const swerve_i8_epilogue *e) {
    __m256i acc[MR][2];
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (long g = 0; g < groups; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + 64 * g));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 64 * g + 32));
        for (int r = 0; r < R; r++) {
            const __m256i av = _mm256_set1_epi32(load32(a + g * 4 * MR + 4 * r));
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
        }
    }
    for (int r = 0; r < R && r < rows; r++) epi256_panel(acc[r][0], acc[r][1], row0 + r, col0, cols, e);
}

/* AVX2, any weights: widen to int16 and madd. Accumulator q of a row holds columns 4q..4q+3 as
 * (steps 0-1, steps 2-3) lane pairs, summed by hadd at the end. */
INLINE TAVX2 void tile_widen(
    const int R, long groups, const uint8_t *a, const int8_t *b, long row0, long col0, long rows, long cols,
    const swerve_i8_epilogue *e) {
    __m256i acc[2][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
    for (long g = 0; g < groups; g++) {
        __m256i bw[4];
        for (int q = 0; q < 4; q++) bw[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 64 * g + 16 * q)));
        for (int r = 0; r < R; r++) {
            const __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(load32(a + g * 4 * MR + 4 * r))));
            for (int q = 0; q < 4; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, bw[q]));
        }
    }
    for (int r = 0; r < R && r < rows; r++) {
        const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][0], acc[r][1]), 0xD8);
        const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][2], acc[r][3]), 0xD8);
        epi256_panel(lo, hi, row0 + r, col0, cols, e);
    }
}

#define TILE256(NAME, TARGET, R) \
    static TARGET __attribute__((noinline)) void NAME##_##R( \
        long groups, const uint8_t *a, const int8_t *b, long row0, long col0, long rows, long cols, \
        const swerve_i8_epilogue *e) { \
        tile_##NAME(R, groups, a, b, row0, col0, rows, cols, e); \
    }
TILE256(vnni256, TVNNI, 6)
TILE256(vnni256, TVNNI, 4)
TILE256(vnni256, TVNNI, 2)
TILE256(vnni256, TVNNI, 1)
TILE256(maddubs, TAVX2, 6)
TILE256(maddubs, TAVX2, 4)
TILE256(maddubs, TAVX2, 2)
TILE256(maddubs, TAVX2, 1)
TILE256(widen, TAVX2, 2)
TILE256(widen, TAVX2, 1)

typedef void (*tile256_fn)(long, const uint8_t *, const int8_t *, long, long, long, long, const swerve_i8_epilogue *);

/* Every panel pair of the call with tiles of up to 6 rows from `table` (indexed by row_class). */
static inline void drive256(
    const tile256_fn table[4], long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns,
    long row0, long col0, const swerve_i8_epilogue *e) {
    if (rows <= 0 || columns <= 0) return;
    const long groups = ((k + 3) & ~3L) / 4;
    const long panels = (rows + MR - 1) / MR, b_panels = (columns + NR - 1) / NR;
    for (long j = 0; j < b_panels; j++)
        for (long p = 0; p < panels; p++) {
            const long rv = rows - p * MR < MR ? rows - p * MR : MR;
            table[row_class(rv)](
                groups, a + p * MR * groups * 4, b + j * b_stride, row0 + p * MR, col0 + j * NR, rv, columns - j * NR, e);
        }
}

TVNNI void swerve_i8gemm_avxvnni(
    long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns, long row0, long col0,
    const swerve_i8_epilogue *e) {
    static const tile256_fn table[4] = {vnni256_1, vnni256_2, vnni256_4, vnni256_6};
    drive256(table, k, a, rows, b, b_stride, columns, row0, col0, e);
}

TAVX2 void swerve_i8gemm_avx2_7bit(
    long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns, long row0, long col0,
    const swerve_i8_epilogue *e) {
    static const tile256_fn table[4] = {maddubs_1, maddubs_2, maddubs_4, maddubs_6};
    drive256(table, k, a, rows, b, b_stride, columns, row0, col0, e);
}

/* The widening tile holds 2 rows: a 6-row panel is three calls on rows 0-1, 2-3, 4-5. */
static TAVX2 void widen_panel(
    long groups, const uint8_t *a, const int8_t *b, long row0, long col0, long rows, long cols,
    const swerve_i8_epilogue *e) {
    for (long r = 0; r < rows; r += 2) {
        if (rows - r >= 2) widen_2(groups, a + 4 * r, b, row0 + r, col0, 2, cols, e);
        else widen_1(groups, a + 4 * r, b, row0 + r, col0, 1, cols, e);
    }
}

TAVX2 void swerve_i8gemm_avx2(
    long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns, long row0, long col0,
    const swerve_i8_epilogue *e) {
    static const tile256_fn table[4] = {widen_panel, widen_panel, widen_panel, widen_panel};
    drive256(table, k, a, rows, b, b_stride, columns, row0, col0, e);
}

#else
/* Never called: the engine takes these paths only on x86-64 CPUs that have them. */
static void unavailable(void) { __builtin_trap(); }
#define STUB(NAME) \
    void NAME(long k, const uint8_t *a, long rows, const int8_t *b, long b_stride, long columns, long row0, long col0, \
        const swerve_i8_epilogue *e) { \
        (void)k, (void)a, (void)rows, (void)b, (void)b_stride, (void)columns, (void)row0, (void)col0, (void)e; \
        unavailable(); \
    }
STUB(swerve_i8gemm_avx512vnni)
STUB(swerve_i8gemm_avxvnni)
STUB(swerve_i8gemm_avx2_7bit)
STUB(swerve_i8gemm_avx2)
#endif
