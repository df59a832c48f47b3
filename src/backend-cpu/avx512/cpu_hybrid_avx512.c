/*
 * AVX-512 row kernels of the hybrid attention and the Hedgehog feature
 * maps (see cpu_hybrid.h for what each computes).  Compiled with
 * CFLAGS_AVX512 and called only when the CPU has AVX-512.
 */
#include "config.h"

#include <immintrin.h>

#include "backend-cpu/avx512/avx512_math.h"
#include "backend-cpu/cpu_hybrid.h"

static inline float row_max(const float *z, int f, int negate)
{
    const __m512 sign = _mm512_set1_ps(negate ? -1.0f : 1.0f);
    __m512 acc = _mm512_set1_ps(-__builtin_inff());

    for (int c = 0; c < f; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(f - c);
        __m512 x = _mm512_mul_ps(sign, _mm512_maskz_loadu_ps(k, z + c));
        acc = _mm512_mask_max_ps(acc, k, acc, x);
    }
    return _mm512_reduce_max_ps(acc);
}

static inline int count_equal(const float *s, int n, float m)
{
    const __m512 vm = _mm512_set1_ps(m);
    int count = 0;

    for (int c = 0; c < n; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - c);
        count += __builtin_popcount(
            _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, s + c), vm, _CMP_EQ_OQ));
    }
    return count;
}

float lc_avx512_exp_row(float *e, const float *s, int n, float gamma, float *m_out)
{
    const float m = row_max(s, n, 0);
    const __m512 vm = _mm512_set1_ps(m);
    const __m512 vg = _mm512_set1_ps(gamma);
    __m512 acc = _mm512_setzero_ps();

    for (int c = 0; c < n; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - c);
        __m512 x = _mm512_maskz_loadu_ps(k, s + c);
        __m512 y = _mm512_maskz_mov_ps(k, _mm512_mul_ps(vg, lc_avx512_exp(_mm512_sub_ps(x, vm))));

        _mm512_mask_storeu_ps(e + c, k, y);
        acc = _mm512_add_ps(acc, y);
    }
    *m_out = m;
    return _mm512_reduce_add_ps(acc);
}

float lc_avx512_bwd_row(float *ds, float *p, const float *s, int n, float m, float gamma,
                        float delta, float invz)
{
    const __m512 vd = _mm512_set1_ps(delta);
    const __m512 vz = _mm512_set1_ps(invz);
    const __m512 vg = _mm512_set1_ps(gamma);
    __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    float sum;
    int nties;

    for (int c = 0; c < n; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - c);
        __m512 x = _mm512_maskz_loadu_ps(k, s + c);
        __m512 e = _mm512_mul_ps(vg, lc_avx512_exp(_mm512_sub_ps(x, vm)));
        __m512 G = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, ds + c), vd), vz);
        __m512 ge = _mm512_maskz_mov_ps(k, _mm512_mul_ps(G, e));

        _mm512_mask_storeu_ps(ds + c, k, ge);
        _mm512_mask_storeu_ps(p + c, k, _mm512_mul_ps(e, vz));
        acc = _mm512_add_ps(acc, ge);
    }
    sum = _mm512_reduce_add_ps(acc);
    nties = count_equal(s, n, m);
    if (nties == 0) {
        /* m is not this row's max (it came from another computation of
         * the scores): route the max path to the row's own argmax */
        m = row_max(s, n, 0);
        vm = _mm512_set1_ps(m);
        nties = count_equal(s, n, m);
    }
    {
        const __m512 vdm = _mm512_set1_ps(-sum / (float)nties);
        for (int c = 0; c < n; c += 16) {
            __mmask16 k = lc_avx512_tail_mask(n - c);
            __mmask16 eq =
                _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, s + c), vm, _CMP_EQ_OQ);
            if (eq != 0) {
                __m512 d = _mm512_maskz_loadu_ps(k, ds + c);
                _mm512_mask_storeu_ps(ds + c, eq, _mm512_add_ps(d, vdm));
            }
        }
    }
    return sum;
}

/* out[c] = exp(sign z[c] - mx); returns the sum */
static inline float exp_half(float *out, const float *z, int f, int negate, float mx)
{
    const __m512 sign = _mm512_set1_ps(negate ? -1.0f : 1.0f);
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();

    for (int c = 0; c < f; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(f - c);
        __m512 x = _mm512_mul_ps(sign, _mm512_maskz_loadu_ps(k, z + c));
        __m512 y = _mm512_maskz_mov_ps(k, lc_avx512_exp(_mm512_sub_ps(x, vm)));

        _mm512_mask_storeu_ps(out + c, k, y);
        acc = _mm512_add_ps(acc, y);
    }
    return _mm512_reduce_add_ps(acc);
}

/* out[c] = out[c] / sum, then clamped below at eps */
static inline void normalize_clamp(float *out, int f, float sum, float eps)
{
    const __m512 vs = _mm512_set1_ps(sum);
    const __m512 ve = _mm512_set1_ps(eps);

    for (int c = 0; c < f; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(f - c);
        __m512 x = _mm512_div_ps(_mm512_maskz_loadu_ps(k, out + c), vs);
        _mm512_mask_storeu_ps(out + c, k, _mm512_max_ps(ve, x));
    }
}

void lc_avx512_fmap_row(float *phi, const float *z, int f, float eps)
{
    float sp = exp_half(phi, z, f, 0, row_max(z, f, 0));
    float sn = exp_half(phi + f, z, f, 1, row_max(z, f, 1));

    normalize_clamp(phi, f, sp, eps);
    normalize_clamp(phi + f, f, sn, eps);
}

void lc_avx512_fmap_bwd_row(float *dz, const float *z, const float *dphi, int f, float eps,
                            float *tmp)
{
    const __m512 ve = _mm512_set1_ps(eps);
    float *p = tmp, *pn = tmp + f;
    float sp = exp_half(p, z, f, 0, row_max(z, f, 0));
    float sn = exp_half(pn, z, f, 1, row_max(z, f, 1));
    __m512 vsp = _mm512_set1_ps(sp), vsn = _mm512_set1_ps(sn);
    __m512 accp = _mm512_setzero_ps(), accn = _mm512_setzero_ps();
    __m512 ip, in;

    for (int c = 0; c < f; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(f - c);
        __m512 a = _mm512_div_ps(_mm512_maskz_loadu_ps(k, p + c), vsp);
        __m512 b = _mm512_div_ps(_mm512_maskz_loadu_ps(k, pn + c), vsn);
        /* the clamp's gradient mask: pre-clamp value >= eps */
        __m512 ga = _mm512_maskz_loadu_ps(k & _mm512_cmp_ps_mask(a, ve, _CMP_GE_OQ), dphi + c);
        __m512 gb =
            _mm512_maskz_loadu_ps(k & _mm512_cmp_ps_mask(b, ve, _CMP_GE_OQ), dphi + f + c);

        _mm512_mask_storeu_ps(p + c, k, a);
        _mm512_mask_storeu_ps(pn + c, k, b);
        accp = _mm512_fmadd_ps(ga, a, accp);
        accn = _mm512_fmadd_ps(gb, b, accn);
    }
    ip = _mm512_set1_ps(_mm512_reduce_add_ps(accp));
    in = _mm512_set1_ps(_mm512_reduce_add_ps(accn));
    for (int c = 0; c < f; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(f - c);
        __m512 a = _mm512_maskz_loadu_ps(k, p + c);
        __m512 b = _mm512_maskz_loadu_ps(k, pn + c);
        __m512 ga = _mm512_maskz_loadu_ps(k & _mm512_cmp_ps_mask(a, ve, _CMP_GE_OQ), dphi + c);
        __m512 gb =
            _mm512_maskz_loadu_ps(k & _mm512_cmp_ps_mask(b, ve, _CMP_GE_OQ), dphi + f + c);
        __m512 d = _mm512_sub_ps(_mm512_mul_ps(a, _mm512_sub_ps(ga, ip)),
                                 _mm512_mul_ps(b, _mm512_sub_ps(gb, in)));

        _mm512_mask_storeu_ps(dz + c, k, d);
    }
}
