/*
 * The vector primitives of simd_kernels.h for aarch64 NEON (ASIMD, part
 * of every ARMv8-A core): 4 floats; a lane mask has all bits set in its
 * lanes.  Partial vectors go through a small buffer, as NEON has no
 * masked loads.
 */
#ifndef LC_BACKEND_CPU_SIMD_NEON_H
#define LC_BACKEND_CPU_SIMD_NEON_H

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define VL 4
typedef float32x4_t vf;
typedef uint32x4_t vm;
/* a sum widened to double: two 2-lane halves */
typedef struct {
    float64x2_t lo, hi;
} vd;

#define LC_SIMD_INLINE static inline __attribute__((always_inline))

LC_SIMD_INLINE vf vf_zero(void) { return vdupq_n_f32(0.0f); }
LC_SIMD_INLINE vf vf_set1(float x) { return vdupq_n_f32(x); }
LC_SIMD_INLINE vf vf_load(const float *p) { return vld1q_f32(p); }
LC_SIMD_INLINE void vf_store(float *p, vf v) { vst1q_f32(p, v); }

/* lanes 0 .. n-1 (n >= VL: all) */
LC_SIMD_INLINE vm vm_first(int n)
{
    static const uint32_t lane[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(lane), vdupq_n_u32((uint32_t)(n >= VL ? VL : n)));
}

/* n lanes from p (n >= VL: a plain load), the others fill or 0; no byte
 * past p + n is read */
LC_SIMD_INLINE vf vf_loadn_or(const float *p, int n, float fill)
{
    float buf[VL] = {fill, fill, fill, fill};

    if (n >= VL) {
        return vf_load(p);
    }
    memcpy(buf, p, (size_t)n * sizeof(float));
    return vld1q_f32(buf);
}
LC_SIMD_INLINE vf vf_loadn(const float *p, int n) { return vf_loadn_or(p, n, 0.0f); }
LC_SIMD_INLINE void vf_storen(float *p, vf v, int n)
{
    float buf[VL];

    if (n >= VL) {
        vf_store(p, v);
    } else {
        vst1q_f32(buf, v);
        memcpy(p, buf, (size_t)n * sizeof(float));
    }
}
/* lanes n .. VL-1 replaced by fill */
LC_SIMD_INLINE vf vf_keepn_or(vf v, int n, float fill)
{
    return n >= VL ? v : vbslq_f32(vm_first(n), v, vdupq_n_f32(fill));
}

LC_SIMD_INLINE vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
LC_SIMD_INLINE vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
LC_SIMD_INLINE vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
LC_SIMD_INLINE vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
LC_SIMD_INLINE vf vf_sqrt(vf a) { return vsqrtq_f32(a); }
/* a b + c, c - a b, a b - c: one rounding each (the last is the negated
 * c - a b, and negation is exact) */
LC_SIMD_INLINE vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
LC_SIMD_INLINE vf vf_fnma(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
LC_SIMD_INLINE vf vf_fms(vf a, vf b, vf c) { return vnegq_f32(vfmsq_f32(c, a, b)); }
/* NaN in either operand comes out (FMAX, FMIN) */
LC_SIMD_INLINE vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
LC_SIMD_INLINE vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
/* to the nearest integer, ties to even */
LC_SIMD_INLINE vf vf_round(vf a) { return vrndnq_f32(a); }
/* p 2^n for integral n in [-150, 128], rounded once: n = n1 + n2 with
 * both halves in [-75, 64], so p 2^n1 is exact (a normal float) and only
 * the second product rounds, into the subnormals or to infinity where the
 * result lies there.  A NaN n (from a NaN input) leaves p NaN already. */
LC_SIMD_INLINE vf vf_ldexp(vf p, vf n)
{
    const int32x4_t bias = vdupq_n_s32(127);
    int32x4_t ni = vcvtq_s32_f32(n);
    int32x4_t n1 = vshrq_n_s32(ni, 1);
    int32x4_t n2 = vsubq_s32(ni, n1);
    vf s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    vf s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* lane sums and maxima in a fixed order: pairs, then the two pair sums */
LC_SIMD_INLINE float vf_hsum(vf a) { return vaddvq_f32(a); }
LC_SIMD_INLINE float vf_hmax(vf a) { return vmaxvq_f32(a); }

/* r[k] = the lane sum of a[k], for VL vectors: pairs, then pairs of
 * pairs (the order of vf_hsum) */
LC_SIMD_INLINE vf vf_hsum_lanes(const vf *a)
{
    return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}

/* r[i][j] <-> r[j][i] for a VL x VL block held in VL vectors */
LC_SIMD_INLINE void vf_transpose(vf *r)
{
    const float32x4x2_t a = vtrnq_f32(r[0], r[1]), b = vtrnq_f32(r[2], r[3]);

    r[0] = vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0]));
    r[1] = vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1]));
    r[2] = vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0]));
    r[3] = vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1]));
}

LC_SIMD_INLINE vm vf_ge(vf a, vf b) { return vcgeq_f32(a, b); }
LC_SIMD_INLINE vm vf_eq(vf a, vf b) { return vceqq_f32(a, b); }
LC_SIMD_INLINE vm vm_and(vm a, vm b) { return vandq_u32(a, b); }
LC_SIMD_INLINE int vm_count(vm a) { return (int)vaddvq_u32(vshrq_n_u32(a, 31)); }
/* m ? a : 0, and m ? b : a */
LC_SIMD_INLINE vf vf_maskz(vm m, vf a)
{
    return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(a)));
}
LC_SIMD_INLINE vf vf_select(vm m, vf a, vf b) { return vbslq_f32(m, b, a); }

/* n half-precision values from p widened (lanes past n are 0) */
LC_SIMD_INLINE uint16x4_t load_u16n(const uint16_t *p, int n)
{
    uint16_t buf[VL] = {0, 0, 0, 0};

    if (n >= VL) {
        return vld1_u16(p);
    }
    memcpy(buf, p, (size_t)n * sizeof(uint16_t));
    return vld1_u16(buf);
}
LC_SIMD_INLINE vf vf_loadn_f16(const uint16_t *p, int n)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(load_u16n(p, n)));
}
/* bf16 is the upper half of an fp32: widen and shift */
LC_SIMD_INLINE vf vf_loadn_bf16(const uint16_t *p, int n)
{
    return vreinterpretq_f32_u32(vshll_n_u16(load_u16n(p, n), 16));
}

LC_SIMD_INLINE vd vd_zero(void)
{
    vd r = {vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
    return r;
}
LC_SIMD_INLINE vd vd_add(vd a, vf v)
{
    a.lo = vaddq_f64(a.lo, vcvt_f64_f32(vget_low_f32(v)));
    a.hi = vaddq_f64(a.hi, vcvt_high_f64_f32(v));
    return a;
}
LC_SIMD_INLINE double vd_sum(vd a) { return vaddvq_f64(vaddq_f64(a.lo, a.hi)); }

#endif /* LC_BACKEND_CPU_SIMD_NEON_H */
