/*
 * AVX-512 inner kernels of the dense entries (see avx512_dense.h).  Every
 * loop steps 16 floats at a time and finishes with a masked step, so no
 * size needs to be a multiple of 16 and no load reads past the end.
 */
#include "config.h"

#include <math.h>

#include "backend-cpu/avx512/avx512_dense.h"
#include "backend-cpu/avx512/avx512_math.h"
#include "core/ref/ref.h"

/* ------------------------------------------------------------ conversions */

static inline __m512 load_f16(const uint16_t *src, __mmask16 k)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src));
}

/* bf16 is the upper half of an fp32: widen and shift */
static inline __m512 load_bf16(const uint16_t *src, __mmask16 k)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

void lc_avx512_f16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, k, load_f16(src + i, k));
    }
}

void lc_avx512_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, k, load_bf16(src + i, k));
    }
}

/* -------------------------------------------------------------- dot rows */

static inline __m512 load_w(const void *w, int64_t i, __mmask16 k, enum lc_dtype type)
{
    switch (type) {
    case LC_DTYPE_F16:
        return load_f16((const uint16_t *)w + i, k);
    case LC_DTYPE_BF16:
        return load_bf16((const uint16_t *)w + i, k);
    default:
        return _mm512_maskz_loadu_ps(k, (const float *)w + i);
    }
}

/* Four accumulators over 64-element steps, then the tail, then a fixed
 * combination (a0 + a1) + (a2 + a3), reduced lane-wise.  Always inlined
 * with a constant type, so each caller gets its own loop. */
static inline __attribute__((always_inline)) float dot_row(const float *x, const void *w, int K,
                                                           enum lc_dtype type)
{
    __m512 a0 = _mm512_setzero_ps();
    __m512 a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps();
    __m512 a3 = _mm512_setzero_ps();
    int i = 0;

    for (; i + 64 <= K; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load_w(w, i, 0xffff, type), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), load_w(w, i + 16, 0xffff, type), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), load_w(w, i + 32, 0xffff, type), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), load_w(w, i + 48, 0xffff, type), a3);
    }
    for (; i < K; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(K - i);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), load_w(w, i, k, type), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float lc_avx512_dot_f32(const float *x, const float *w, int K)
{
    return dot_row(x, w, K, LC_DTYPE_F32);
}

float lc_avx512_dot_f16(const float *x, const uint16_t *w, int K)
{
    return dot_row(x, w, K, LC_DTYPE_F16);
}

float lc_avx512_dot_bf16(const float *x, const uint16_t *w, int K)
{
    return dot_row(x, w, K, LC_DTYPE_BF16);
}

/* ----------------------------------------------------------- elementwise */

void lc_avx512_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(k, y + i);
        __m512 b = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(a, b));
    }
}

/* lc_mix64 over 8 lanes (AVX-512DQ has the 64-bit multiply) */
static inline __m512i mix64_epi64(__m512i z)
{
    const __m512i c1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull);
    const __m512i c2 = _mm512_set1_epi64((long long)0x94d049bb133111ebull);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), c1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), c2);
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* u = (h >> 40) * 2^-24 for 8 counters */
static inline __m256 dropout_u8(__m512i base, __m512i idx)
{
    const __m512i gamma = _mm512_set1_epi64((long long)LC_DROPOUT_GAMMA);
    __m512i h = mix64_epi64(_mm512_add_epi64(base, _mm512_mullo_epi64(idx, gamma)));
    __m256 u = _mm512_cvtepi64_ps(_mm512_srli_epi64(h, 40));
    return _mm256_mul_ps(u, _mm256_set1_ps(0x1p-24f));
}

void lc_avx512_dropout(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t i0)
{
    const __m512i base = _mm512_set1_epi64((long long)lc_mix64(seed));
    const __m512i lanes = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
    const __m512 pv = _mm512_set1_ps(p);
    const __m512 scale = _mm512_set1_ps(1.0f / (1.0f - p));

    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        /* counters i0 + i + 1 .. i0 + i + 16, as lc_dropout_uniform counts */
        __m512i idx = _mm512_add_epi64(_mm512_set1_epi64((long long)(i0 + i)), lanes);
        __m256 ulo = dropout_u8(base, idx);
        __m256 uhi = dropout_u8(base, _mm512_add_epi64(idx, _mm512_set1_epi64(8)));
        __m512 u = _mm512_insertf32x8(_mm512_castps256_ps512(ulo), uhi, 1);
        __mmask16 keep = _mm512_mask_cmp_ps_mask(k, u, pv, _CMP_GE_OQ);
        __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_maskz_mul_ps(keep, xv, scale));
    }
}

/* --------------------------------------------------------------- RMSNorm */

float lc_avx512_rmsnorm_row(float *out, const float *x, const float *w, int C, float eps)
{
    __m512d lo = _mm512_setzero_pd();
    __m512d hi = _mm512_setzero_pd();
    __m512 rv;
    float r;

    for (int c = 0; c < C; c += 16) {
        __m512 v = _mm512_maskz_loadu_ps(lc_avx512_tail_mask(C - c), x + c);
        lc_avx512_acc_pd(&lo, &hi, _mm512_mul_ps(v, v));
    }
    r = (float)(1 / sqrt(lc_avx512_hsum_pd(lo, hi) / C + eps));
    rv = _mm512_set1_ps(r);
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(C - c);
        __m512 v = _mm512_maskz_loadu_ps(k, x + c);
        __m512 wv = _mm512_maskz_loadu_ps(k, w + c);
        _mm512_mask_storeu_ps(out + c, k, _mm512_mul_ps(wv, _mm512_mul_ps(v, rv)));
    }
    return r;
}

void lc_avx512_rmsnorm_dx_row(float *dx, const float *g, const float *x, const float *w, float r,
                              int C)
{
    __m512d lo = _mm512_setzero_pd();
    __m512d hi = _mm512_setzero_pd();
    __m512 rv = _mm512_set1_ps(r);
    __m512 coef;

    for (int c = 0; c < C; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(C - c);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + c), _mm512_maskz_loadu_ps(k, w + c));
        lc_avx512_acc_pd(&lo, &hi, _mm512_mul_ps(gw, _mm512_maskz_loadu_ps(k, x + c)));
    }
    coef = _mm512_set1_ps((float)(lc_avx512_hsum_pd(lo, hi) * r * r * r / C));
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(C - c);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + c), _mm512_maskz_loadu_ps(k, w + c));
        __m512 d = _mm512_fmsub_ps(rv, gw, _mm512_mul_ps(coef, _mm512_maskz_loadu_ps(k, x + c)));
        _mm512_mask_storeu_ps(dx + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + c), d));
    }
}

/* Up to 64 columns at a time in four registers, rows in order. */
void lc_avx512_rmsnorm_dw_cols(float *dw, const float *dout, const float *x, const float *rstd,
                               int N, int C, int c0, int nc)
{
    for (int c = c0; c < c0 + nc; c += 64) {
        __mmask16 k[4];
        __m512 acc[4];
        int nv = (c0 + nc - c + 15) / 16;
        nv = nv > 4 ? 4 : nv;
        for (int j = 0; j < nv; j++) {
            k[j] = lc_avx512_tail_mask(c0 + nc - c - 16 * j);
            acc[j] = _mm512_maskz_loadu_ps(k[j], dw + c + 16 * j);
        }
        for (int n = 0; n < N; n++) {
            const float *gr = dout + (size_t)n * C + c;
            const float *xr = x + (size_t)n * C + c;
            __m512 r = _mm512_set1_ps(rstd[n]);
            for (int j = 0; j < nv; j++) {
                __m512 gx = _mm512_mul_ps(_mm512_maskz_loadu_ps(k[j], gr + 16 * j),
                                          _mm512_maskz_loadu_ps(k[j], xr + 16 * j));
                acc[j] = _mm512_fmadd_ps(gx, r, acc[j]);
            }
        }
        for (int j = 0; j < nv; j++) {
            _mm512_mask_storeu_ps(dw + c + 16 * j, k[j], acc[j]);
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

void lc_avx512_rope_row(float *x, const float *c, const float *s, int nh, int D, int inverse)
{
    int half = D / 2;
    __m512 sign = _mm512_set1_ps(inverse ? -1.0f : 1.0f);

    for (int h = 0; h < nh; h++) {
        float *v = x + (size_t)h * D;
        for (int i = 0; i < half; i += 16) {
            __mmask16 k = lc_avx512_tail_mask(half - i);
            __m512 cv = _mm512_maskz_loadu_ps(k, c + i);
            __m512 sv = _mm512_mul_ps(sign, _mm512_maskz_loadu_ps(k, s + i));
            __m512 a = _mm512_maskz_loadu_ps(k, v + i);
            __m512 b = _mm512_maskz_loadu_ps(k, v + i + half);
            _mm512_mask_storeu_ps(v + i, k, _mm512_fmsub_ps(a, cv, _mm512_mul_ps(b, sv)));
            _mm512_mask_storeu_ps(v + i + half, k, _mm512_fmadd_ps(b, cv, _mm512_mul_ps(a, sv)));
        }
    }
}

/* ---------------------------------------------------------------- SwiGLU */

static inline __m512 sigmoid_ps(__m512 g)
{
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = lc_avx512_exp(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_div_ps(one, _mm512_add_ps(one, e));
}

void lc_avx512_swiglu_fwd(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
        __m512 u = _mm512_maskz_loadu_ps(k, up + i);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid_ps(g)), u));
    }
}

void lc_avx512_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, int64_t n)
{
    __m512 one = _mm512_set1_ps(1.0f);

    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
        __m512 u = _mm512_maskz_loadu_ps(k, up + i);
        __m512 d = _mm512_maskz_loadu_ps(k, dout + i);
        __m512 s = sigmoid_ps(g);
        /* s (1 + g (1 - s)) */
        __m512 ds = _mm512_mul_ps(s, _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one));
        _mm512_mask_storeu_ps(dgate + i, k, _mm512_mul_ps(_mm512_mul_ps(d, u), ds));
        _mm512_mask_storeu_ps(dup + i, k, _mm512_mul_ps(d, _mm512_mul_ps(g, s)));
    }
}

/* --------------------------------------------------------------- softmax */

static float max_row(const float *s, int n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - j);
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, s + j));
    }
    return _mm512_reduce_max_ps(mx);
}

void lc_avx512_softmax_row(float *s, int lim, int n)
{
    __m512 mx = _mm512_set1_ps(max_row(s, lim));
    __m512 sum = _mm512_setzero_ps();
    __m512 inv;

    for (int j = 0; j < lim; j += 16) {
        __mmask16 k = lc_avx512_tail_mask(lim - j);
        __m512 e = lc_avx512_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mx));
        e = _mm512_maskz_mov_ps(k, e);
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(s + j, k, e);
    }
    inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int j = 0; j < lim; j += 16) {
        __mmask16 k = lc_avx512_tail_mask(lim - j);
        _mm512_mask_storeu_ps(s + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), inv));
    }
    for (int j = lim; j < n; j++) {
        s[j] = 0.0f;
    }
}

/* ---------------------------------------------------------------- losses */

/* p_j = exp(l_j - max) / sum, as in the generic kernel */
float lc_avx512_xent_row(float *dl, const float *l, int t, int V, float gs)
{
    float lt = l[t]; /* before dl (maybe l itself) is written */
    __m512 mx = _mm512_set1_ps(max_row(l, V));
    __m512d lo = _mm512_setzero_pd();
    __m512d hi = _mm512_setzero_pd();
    double sum;

    for (int j = 0; j < V; j += 16) {
        __mmask16 k = lc_avx512_tail_mask(V - j);
        __m512 e = lc_avx512_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, l + j), mx));
        lc_avx512_acc_pd(&lo, &hi, _mm512_maskz_mov_ps(k, e));
    }
    sum = lc_avx512_hsum_pd(lo, hi);
    if (dl != NULL) {
        float scale = (float)(gs / sum);
        __m512 sv = _mm512_set1_ps(scale);
        float pt = _mm512_cvtss_f32(lc_avx512_exp(_mm512_sub_ps(_mm512_set1_ps(lt), mx)));
        for (int j = 0; j < V; j += 16) {
            __mmask16 k = lc_avx512_tail_mask(V - j);
            __m512 e = lc_avx512_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, l + j), mx));
            _mm512_mask_storeu_ps(dl + j, k, _mm512_mul_ps(sv, e));
        }
        dl[t] = scale * pt - gs;
    }
    return (float)(_mm512_cvtss_f32(mx) + log(sum) - lt);
}

float lc_avx512_mse_row(float *dp, const float *p, const float *t, int cols, float gs2)
{
    __m512d lo = _mm512_setzero_pd();
    __m512d hi = _mm512_setzero_pd();
    __m512 g = _mm512_set1_ps(gs2);

    for (int c = 0; c < cols; c += 16) {
        __mmask16 k = lc_avx512_tail_mask(cols - c);
        __m512 e = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + c), _mm512_maskz_loadu_ps(k, t + c));
        lc_avx512_acc_pd(&lo, &hi, _mm512_mul_ps(e, e));
        if (dp != NULL) {
            _mm512_mask_storeu_ps(dp + c, k, _mm512_mul_ps(g, e));
        }
    }
    return (float)lc_avx512_hsum_pd(lo, hi);
}

/* ------------------------------------------------------------- optimizer */

void lc_avx512_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                     const struct lc_adamw_scalars *s)
{
    const __m512 decay = _mm512_set1_ps(s->decay);
    const __m512 w1 = _mm512_set1_ps(s->w1);
    const __m512 b1 = _mm512_set1_ps(s->beta1);
    const __m512 b2 = _mm512_set1_ps(s->beta2);
    const __m512 w2 = _mm512_set1_ps(s->w2);
    const __m512 neg_step = _mm512_set1_ps(s->neg_step);
    const __m512 bc2_sqrt = _mm512_set1_ps(s->bc2_sqrt);
    const __m512 eps = _mm512_set1_ps(s->eps);

    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lc_avx512_tail_mask(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        __m512 pv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay);
        __m512 mv = _mm512_maskz_loadu_ps(k, m + i);
        __m512 vv = _mm512_maskz_loadu_ps(k, v + i);
        __m512 denom;
        if (s->lerp_first) {
            mv = _mm512_fmadd_ps(w1, _mm512_sub_ps(gv, mv), mv);
        } else {
            mv = _mm512_fnmadd_ps(_mm512_sub_ps(gv, mv), b1, gv);
        }
        vv = _mm512_fmadd_ps(_mm512_mul_ps(w2, gv), gv, _mm512_mul_ps(vv, b2));
        denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), bc2_sqrt), eps);
        pv = _mm512_fmadd_ps(neg_step, _mm512_div_ps(mv, denom), pv);
        _mm512_mask_storeu_ps(p + i, k, pv);
        _mm512_mask_storeu_ps(m + i, k, mv);
        _mm512_mask_storeu_ps(v + i, k, vv);
    }
}
