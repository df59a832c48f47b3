/*
 * The vector primitives of simd_kernels.h for AVX-512 (F, BW, DQ, VL):
 * 16 floats, lane masks in mask registers.  Included only by the file
 * compiled with $(CFLAGS_AVX512).
 */
#ifndef LC_BACKEND_CPU_SIMD_AVX512_H
#define LC_BACKEND_CPU_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#define VL 16
typedef __m512 vf;
typedef __mmask16 vm;
/* a sum widened to double: two 8-lane halves */
typedef struct {
    __m512d lo, hi;
} vd;

#define LC_SIMD_INLINE static inline __attribute__((always_inline))

LC_SIMD_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
LC_SIMD_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
LC_SIMD_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
LC_SIMD_INLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }

/* lanes 0 .. n-1 (n >= VL: all) */
LC_SIMD_INLINE vm vm_first(int n)
{
    return n >= VL ? (vm)0xffff : (vm)((1u << n) - 1u);
}

/* n lanes from p (n >= VL: a plain load), the others fill or 0; no byte
 * past p + n is read */
LC_SIMD_INLINE vf vf_loadn_or(const float *p, int n, float fill)
{
    return n >= VL ? vf_load(p) : _mm512_mask_loadu_ps(_mm512_set1_ps(fill), vm_first(n), p);
}
LC_SIMD_INLINE vf vf_loadn(const float *p, int n)
{
    return n >= VL ? vf_load(p) : _mm512_maskz_loadu_ps(vm_first(n), p);
}
LC_SIMD_INLINE void vf_storen(float *p, vf v, int n)
{
    if (n >= VL) {
        vf_store(p, v);
    } else {
        _mm512_mask_storeu_ps(p, vm_first(n), v);
    }
}
/* lanes n .. VL-1 replaced by fill */
LC_SIMD_INLINE vf vf_keepn_or(vf v, int n, float fill)
{
    return n >= VL ? v : _mm512_mask_mov_ps(_mm512_set1_ps(fill), vm_first(n), v);
}

LC_SIMD_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
LC_SIMD_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
LC_SIMD_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
LC_SIMD_INLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
LC_SIMD_INLINE vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
/* a b + c, c - a b, a b - c: one rounding each */
LC_SIMD_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
LC_SIMD_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
LC_SIMD_INLINE vf vf_fms(vf a, vf b, vf c) { return _mm512_fmsub_ps(a, b, c); }
/* a NaN in b comes out (as x86 max and min return their second operand) */
LC_SIMD_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
LC_SIMD_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* to the nearest integer, ties to even */
LC_SIMD_INLINE vf vf_round(vf a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p 2^n for integral n in [-150, 128], rounded once (subnormal and
 * infinite results included) */
LC_SIMD_INLINE vf vf_ldexp(vf p, vf n) { return _mm512_scalef_ps(p, n); }

/* lane sums and maxima in a fixed order (the reduction tree of these
 * intrinsics is fixed by the instruction sequence, not by the data) */
LC_SIMD_INLINE float vf_hsum(vf a) { return _mm512_reduce_add_ps(a); }
LC_SIMD_INLINE float vf_hmax(vf a) { return _mm512_reduce_max_ps(a); }

/* r[k] = the lane sum of a[k], for VL vectors: halves, quarters, then
 * pairs within each quarter (a fixed tree, the same for every k) */
LC_SIMD_INLINE __m512 hadd128(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
}
LC_SIMD_INLINE vf vf_hsum_lanes(const vf *a)
{
    __m512 u[8], v[4];

#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        /* [a(2k) lanes i + lanes i+8 | a(2k+1) the same] */
        u[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xee));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        /* quarter q of v[k]: key 4k + q, 4 lanes */
        v[k] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], 0xdd));
    }
    {
        /* lane 4q + m: the sum of key 4m + q */
        const __m512 z = hadd128(hadd128(v[0], v[1]), hadd128(v[2], v[3]));
        const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        return _mm512_permutexvar_ps(idx, z);
    }
}

/* r[i][j] <-> r[j][i] for a VL x VL block held in VL vectors: pairs,
 * then quads within each 128-bit lane, then the lanes */
LC_SIMD_INLINE void vf_transpose(vf *r)
{
    __m512 t[16], u[16];

#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        /* lane L of u[4i + j]: element 4L + j of rows 4i .. 4i+3 */
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 x0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        const __m512 y0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        const __m512 x1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
        const __m512 y1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        r[12 + j] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}

LC_SIMD_INLINE vm vf_ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
LC_SIMD_INLINE vm vf_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
LC_SIMD_INLINE vm vm_and(vm a, vm b) { return (vm)(a & b); }
LC_SIMD_INLINE int vm_count(vm a) { return __builtin_popcount((unsigned)a); }
/* m ? a : 0, and m ? b : a */
LC_SIMD_INLINE vf vf_maskz(vm m, vf a) { return _mm512_maskz_mov_ps(m, a); }
LC_SIMD_INLINE vf vf_select(vm m, vf a, vf b) { return _mm512_mask_mov_ps(a, m, b); }

/* n half-precision values from p widened (lanes past n are 0) */
LC_SIMD_INLINE vf vf_loadn_f16(const uint16_t *p, int n)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(vm_first(n), p));
}
/* bf16 is the upper half of an fp32: widen and shift */
LC_SIMD_INLINE vf vf_loadn_bf16(const uint16_t *p, int n)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(vm_first(n), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

LC_SIMD_INLINE vd vd_zero(void)
{
    vd r = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    return r;
}
LC_SIMD_INLINE vd vd_add(vd a, vf v)
{
    a.lo = _mm512_add_pd(a.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a.hi = _mm512_add_pd(a.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    return a;
}
LC_SIMD_INLINE double vd_sum(vd a) { return _mm512_reduce_add_pd(_mm512_add_pd(a.lo, a.hi)); }

#endif /* LC_BACKEND_CPU_SIMD_AVX512_H */
