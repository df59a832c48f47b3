/*
 * Vector math for the AVX-512 kernels (compiled with $(CFLAGS_AVX512)
 * only): exp over 16 floats, horizontal sums in a fixed order.
 */
#ifndef LC_BACKEND_CPU_AVX512_AVX512_MATH_H
#define LC_BACKEND_CPU_AVX512_AVX512_MATH_H

#include <immintrin.h>

/* exp(x) for 16 floats, within 1 ulp of the correctly rounded result
 * over the whole float range, subnormal results included (checked on
 * every 97th float).  x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * polynomial to degree 7 (truncation error 5e-9 relative), then scaled by
 * 2^n with scalef, which also produces the overflow to inf and the gradual
 * underflow to 0.  Inputs are clamped first so that r stays small; NaN
 * passes through the clamp (max and min return their second operand when
 * one is NaN). */
static inline __m512 lc_avx512_exp(__m512 x)
{
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693145751953125f);
    const __m512 ln2_lo = _mm512_set1_ps(1.428606820309417232e-6f);
    __m512 n;
    __m512 r;
    __m512 p;

    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The 16 floats widened to double and added to two 8-lane sums. */
static inline void lc_avx512_acc_pd(__m512d *lo, __m512d *hi, __m512 v)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}

/* Lane sums in a fixed order (the pairwise tree of the reduce intrinsics
 * is fixed by the instruction sequence, not by the data). */
static inline double lc_avx512_hsum_pd(__m512d lo, __m512d hi)
{
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

static inline __mmask16 lc_avx512_tail_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

#endif /* LC_BACKEND_CPU_AVX512_AVX512_MATH_H */
