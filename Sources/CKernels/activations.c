/* Sigmoid and Swish (SiLU) over float arrays, the AVX-512 and AVX2 levels (CPULevel), with the
 * range reduction and polynomial of VectorMath.exp (Cephes: x = n ln2 + r, degree-6 polynomial,
 * 2^n built in the exponent bits) but with fused multiply-adds and, at AVX-512, 16 lanes. The
 * Swift eight-lane form took a third of EfficientNet-B0's time (its SiLU epilogues, about 7 M
 * values per image): a closure call per 8 values, no FMA contraction in Swift.
 *
 * Same edge behaviour as VectorMath.exp: exp is 0 below -87.34 (so sigmoid gives 0 where libm
 * gives a denormal), +inf above 88.72 (sigmoid 1); NaN stays NaN. Each function handles the
 * multiple of its width and returns how many values it wrote; the caller does the rest. */
#include "CKernels.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512dq,avx2,avx,fma")))
#define TAVX2 __attribute__((target("avx2,avx,fma")))

#define EXP_HI 88.72283935546875f
#define EXP_LO -87.3365478515625f

T512 static inline __m512 exp16(__m512 input) {
    __m512 x = _mm512_min_ps(_mm512_max_ps(input, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, z, r), _mm512_set1_ps(1.0f));
    /* 2^(n-1) * 2, so that n = 128 still has an exponent field. */
    __m512i n = _mm512_cvtps_epi32(fx); /* fx is an integer in [-127, 128] */
    __m512 pow2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(126)), 23));
    __m512 result = _mm512_mul_ps(_mm512_mul_ps(y, pow2), _mm512_set1_ps(2.0f));
    result = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(input, _mm512_set1_ps(EXP_LO), _CMP_NLT_UQ), result);
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(input, _mm512_set1_ps(EXP_HI), _CMP_GT_OQ),
                                _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(input, input, _CMP_UNORD_Q), input);
}

TAVX2 static inline __m256 exp8(__m256 input) {
    __m256 x = _mm256_min_ps(_mm256_max_ps(input, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, r), _mm256_set1_ps(1.0f));
    __m256i n = _mm256_cvtps_epi32(fx);
    __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(126)), 23));
    __m256 result = _mm256_mul_ps(_mm256_mul_ps(y, pow2), _mm256_set1_ps(2.0f));
    result = _mm256_and_ps(result, _mm256_cmp_ps(input, _mm256_set1_ps(EXP_LO), _CMP_NLT_UQ));
    result = _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(input, _mm256_set1_ps(EXP_HI), _CMP_GT_OQ));
    return _mm256_blendv_ps(result, input, _mm256_cmp_ps(input, input, _CMP_UNORD_Q));
}

/* y = x * sigmoid(alpha x) = x / (1 + exp(-alpha x)); alpha 0 is not special. */
T512 long swerve_swish_f32_avx512(const float *s, float *d, long n, float alpha) {
    const __m512 a = _mm512_set1_ps(-alpha), one = _mm512_set1_ps(1.0f);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(s + i);
        _mm512_storeu_ps(d + i, _mm512_div_ps(v, _mm512_add_ps(one, exp16(_mm512_mul_ps(a, v)))));
    }
    return i;
}

T512 long swerve_sigmoid_f32_avx512(const float *s, float *d, long n) {
    const __m512 one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-0.0f);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(s + i);
        _mm512_storeu_ps(d + i, _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_xor_ps(v, minus)))));
    }
    return i;
}

TAVX2 long swerve_swish_f32_avx2(const float *s, float *d, long n, float alpha) {
    const __m256 a = _mm256_set1_ps(-alpha), one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(s + i);
        _mm256_storeu_ps(d + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_mul_ps(a, v)))));
    }
    return i;
}

TAVX2 long swerve_sigmoid_f32_avx2(const float *s, float *d, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-0.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(s + i);
        _mm256_storeu_ps(d + i, _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_xor_ps(v, minus)))));
    }
    return i;
}
#else
long swerve_swish_f32_avx512(const float *s, float *d, long n, float alpha) { (void)s; (void)d; (void)n; (void)alpha; return 0; }
long swerve_sigmoid_f32_avx512(const float *s, float *d, long n) { (void)s; (void)d; (void)n; return 0; }
long swerve_swish_f32_avx2(const float *s, float *d, long n, float alpha) { (void)s; (void)d; (void)n; (void)alpha; return 0; }
long swerve_sigmoid_f32_avx2(const float *s, float *d, long n) { (void)s; (void)d; (void)n; return 0; }
#endif
