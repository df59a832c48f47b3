/*
 * The vector primitives of simd_kernels.h for AVX2 with FMA and F16C:
 * 8 floats; a lane mask is a vector with all bits set in its lanes.
 * Included only by the file compiled with $(CFLAGS_AVX2).
 */
#ifndef LC_BACKEND_CPU_SIMD_AVX2_H
#define LC_BACKEND_CPU_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define VL 8
typedef __m256 vf;
typedef __m256 vm;
/* a sum widened to double: two 4-lane halves */
typedef struct {
    __m256d lo, hi;
} vd;

#define LC_SIMD_INLINE static inline __attribute__((always_inline))

LC_SIMD_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
LC_SIMD_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
LC_SIMD_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
LC_SIMD_INLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }

/* 8 all-ones lanes then 8 zero lanes: a window of 8 starting at 8 - n
 * has the first n lanes set */
static const int32_t lc_avx2_first_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                              0,  0,  0,  0,  0,  0,  0,  0};

LC_SIMD_INLINE __m256i vm_first_i(int n)
{
    return _mm256_loadu_si256((const __m256i *)(lc_avx2_first_tab + 8 - (n >= VL ? VL : n)));
}
/* lanes 0 .. n-1 (n >= VL: all) */
LC_SIMD_INLINE vm vm_first(int n) { return _mm256_castsi256_ps(vm_first_i(n)); }

/* n lanes from p (n >= VL: a plain load), the others fill or 0; the
 * masked load reads no byte past p + n */
LC_SIMD_INLINE vf vf_loadn(const float *p, int n)
{
    return n >= VL ? vf_load(p) : _mm256_maskload_ps(p, vm_first_i(n));
}
LC_SIMD_INLINE vf vf_loadn_or(const float *p, int n, float fill)
{
    return n >= VL ? vf_load(p)
                   : _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, vm_first_i(n)),
                                      vm_first(n));
}
LC_SIMD_INLINE void vf_storen(float *p, vf v, int n)
{
    if (n >= VL) {
        vf_store(p, v);
    } else {
        _mm256_maskstore_ps(p, vm_first_i(n), v);
    }
}
/* lanes n .. VL-1 replaced by fill */
LC_SIMD_INLINE vf vf_keepn_or(vf v, int n, float fill)
{
    return n >= VL ? v : _mm256_blendv_ps(_mm256_set1_ps(fill), v, vm_first(n));
}

LC_SIMD_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
LC_SIMD_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
LC_SIMD_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
LC_SIMD_INLINE vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
LC_SIMD_INLINE vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
/* a b + c, c - a b, a b - c: one rounding each */
LC_SIMD_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
LC_SIMD_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
LC_SIMD_INLINE vf vf_fms(vf a, vf b, vf c) { return _mm256_fmsub_ps(a, b, c); }
/* a NaN in b comes out (x86 max and min return their second operand) */
LC_SIMD_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
LC_SIMD_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
/* to the nearest integer, ties to even */
LC_SIMD_INLINE vf vf_round(vf a)
{
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p 2^n for integral n in [-150, 128], rounded once: n = n1 + n2 with
 * both halves in [-75, 64], so p 2^n1 is exact (a normal float) and only
 * the second product rounds, into the subnormals or to infinity where the
 * result lies there.  A NaN n (from a NaN input) leaves p NaN already. */
LC_SIMD_INLINE vf vf_ldexp(vf p, vf n)
{
    const __m256i bias = _mm256_set1_epi32(127);
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* lane sums and maxima in a fixed order: the halves, then pairs */
LC_SIMD_INLINE float vf_hsum(vf a)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}
LC_SIMD_INLINE float vf_hmax(vf a)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

/* r[k] = the lane sum of a[k], for VL vectors: pairs, pairs of pairs,
 * then the two halves (a fixed tree, the same for every k) */
LC_SIMD_INLINE vf vf_hsum_lanes(const vf *a)
{
    const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

/* r[i][j] <-> r[j][i] for a VL x VL block held in VL vectors: pairs,
 * then quads within each 128-bit lane, then the lanes */
LC_SIMD_INLINE void vf_transpose(vf *r)
{
    __m256 t[8], u[8];

#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

LC_SIMD_INLINE vm vf_ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
LC_SIMD_INLINE vm vf_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
LC_SIMD_INLINE vm vm_and(vm a, vm b) { return _mm256_and_ps(a, b); }
LC_SIMD_INLINE int vm_count(vm a) { return __builtin_popcount((unsigned)_mm256_movemask_ps(a)); }
/* m ? a : 0, and m ? b : a */
LC_SIMD_INLINE vf vf_maskz(vm m, vf a) { return _mm256_and_ps(m, a); }
LC_SIMD_INLINE vf vf_select(vm m, vf a, vf b) { return _mm256_blendv_ps(a, b, m); }

/* n half-precision values from p widened (lanes past n are 0) */
LC_SIMD_INLINE __m128i load_u16n(const uint16_t *p, int n)
{
    uint16_t buf[VL] = {0};

    if (n >= VL) {
        return _mm_loadu_si128((const __m128i *)p);
    }
    memcpy(buf, p, (size_t)n * sizeof(uint16_t));
    return _mm_loadu_si128((const __m128i *)buf);
}
LC_SIMD_INLINE vf vf_loadn_f16(const uint16_t *p, int n) { return _mm256_cvtph_ps(load_u16n(p, n)); }
/* bf16 is the upper half of an fp32: widen and shift */
LC_SIMD_INLINE vf vf_loadn_bf16(const uint16_t *p, int n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load_u16n(p, n)), 16));
}

LC_SIMD_INLINE vd vd_zero(void)
{
    vd r = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    return r;
}
LC_SIMD_INLINE vd vd_add(vd a, vf v)
{
    a.lo = _mm256_add_pd(a.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a.hi = _mm256_add_pd(a.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return a;
}
LC_SIMD_INLINE double vd_sum(vd a)
{
    __m256d s = _mm256_add_pd(a.lo, a.hi);
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
}

#endif /* LC_BACKEND_CPU_SIMD_AVX2_H */
