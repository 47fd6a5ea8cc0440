/* Byte matrix transpose for the quantized convolution's layout changes (channels-first <->
 * channels-last around the integer GEMM, Sources/Engine/Kernels/IntegerConvKernels.swift).
 *
 * 16 x 16 blocks through SSE2 byte/word/dword/qword unpacks (every x86-64 CPU has SSE2), the
 * edges element by element; other architectures take the element loop in 16 x 16 tiles. */
#include "CKernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>

static inline void block16(const uint8_t *s, long lds, uint8_t *d, long ldd) {
    __m128i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(s + i * lds));
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm_unpacklo_epi16(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 1] = _mm_unpackhi_epi16(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 2] = _mm_unpacklo_epi16(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm_unpackhi_epi16(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 4; j++) {
            t[8 * i + 2 * j] = _mm_unpacklo_epi32(r[8 * i + j], r[8 * i + 4 + j]);
            t[8 * i + 2 * j + 1] = _mm_unpackhi_epi32(r[8 * i + j], r[8 * i + 4 + j]);
        }
    }
    for (int j = 0; j < 8; j++) {
        r[2 * j] = _mm_unpacklo_epi64(t[j], t[8 + j]);
        r[2 * j + 1] = _mm_unpackhi_epi64(t[j], t[8 + j]);
    }
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(d + i * ldd), r[i]);
}
#define HAVE_BLOCK16 1
#endif

void swerve_transpose_u8(const uint8_t *src, long rows, long cols, long lds, uint8_t *dst, long ldd) {
    for (long r0 = 0; r0 < rows; r0 += 16) {
        long r1 = r0 + 16 < rows ? r0 + 16 : rows;
        for (long c0 = 0; c0 < cols; c0 += 16) {
            long c1 = c0 + 16 < cols ? c0 + 16 : cols;
#ifdef HAVE_BLOCK16
            if (r1 - r0 == 16 && c1 - c0 == 16) {
                block16(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
                continue;
            }
#endif
            for (long c = c0; c < c1; c++)
                for (long r = r0; r < r1; r++) dst[c * ldd + r] = src[r * lds + c];
        }
    }
}

/* The smallest and largest of n floats, each starting from 0 (DynamicQuantizeLinear's range, which
 * always holds 0); NaN values are skipped, as `if (v < lo) lo = v` skips them. SSE2 minps/maxps
 * return their second operand when either is NaN, which is that same rule. */
void swerve_range_f32(const float *x, long n, float *lo, float *hi) {
    long i = 0;
    float l = 0, h = 0;
#ifdef HAVE_BLOCK16
    __m128 l0 = _mm_setzero_ps(), l1 = l0, h0 = l0, h1 = l0;
    for (; i + 8 <= n; i += 8) {
        __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
        l0 = _mm_min_ps(a, l0);
        l1 = _mm_min_ps(b, l1);
        h0 = _mm_max_ps(a, h0);
        h1 = _mm_max_ps(b, h1);
    }
    float ls[8], hs[8];
    _mm_storeu_ps(ls, l0);
    _mm_storeu_ps(ls + 4, l1);
    _mm_storeu_ps(hs, h0);
    _mm_storeu_ps(hs + 4, h1);
    for (int j = 0; j < 8; j++) {
        if (ls[j] < l) l = ls[j];
        if (hs[j] > h) h = hs[j];
    }
#endif
    for (; i < n; i++) {
        if (x[i] < l) l = x[i];
        if (x[i] > h) h = x[i];
    }
    *lo = l;
    *hi = h;
}
