/*
 * The AVX-512 inner kernels of the dense entries: each works on one row or
 * one range of elements, and the OpenMP partition around it lives in the
 * generic code (cpu_dense.c, cpu_gemm.c, cpu_attn.c), which calls either
 * these or its own plain-C twins.  Sums run in a fixed order inside one
 * call, so results never depend on the number of threads.
 *
 * Only declarations here: the file is included by code built without
 * AVX-512 flags, which calls these functions only when LC_HAVE_AVX512 is
 * defined and the CPU has AVX-512.
 */
#ifndef LC_BACKEND_CPU_AVX512_AVX512_DENSE_H
#define LC_BACKEND_CPU_AVX512_AVX512_DENSE_H

#include <stdint.h>

/* AdamW's per-step scalars, formed in double and rounded once (see the
 * reference lc_ref_adamw). */
struct lc_adamw_scalars {
    float decay;      /* 1 - lr * wd */
    float w1;         /* 1 - beta1, the lerp weight */
    float beta1;      /* 1 - w1, for the lerp's second form */
    int lerp_first;   /* 1 - beta1 < 0.5: m + w1 (g - m); else g - (g - m) beta1 */
    float beta2;
    float w2;         /* 1 - beta2 */
    float neg_step;   /* -lr / (1 - beta1^step) */
    float bc2_sqrt;   /* sqrt(1 - beta2^step) */
    float eps;
};

/* dst[n] = src[n] widened to fp32 */
void lc_avx512_f16_to_f32(float *dst, const uint16_t *src, int64_t n);
void lc_avx512_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* dot products of one activation row with one weight row of K elements */
float lc_avx512_dot_f32(const float *x, const float *w, int K);
float lc_avx512_dot_f16(const float *x, const uint16_t *w, int K);
float lc_avx512_dot_bf16(const float *x, const uint16_t *w, int K);

void lc_avx512_add(float *y, const float *x, int64_t n);
/* elements i0 .. i0+n-1 of a dropout over a larger array */
void lc_avx512_dropout(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t i0);

/* one row: out = w * (x * r); returns r */
float lc_avx512_rmsnorm_row(float *out, const float *x, const float *w, int C, float eps);
/* one row of dx += r w g - x r^3/C sum(g w x) */
void lc_avx512_rmsnorm_dx_row(float *dx, const float *g, const float *x, const float *w, float r,
                              int C);
/* dw[c0 .. c0+nc) += sum over the N rows, in row order, of g x r */
void lc_avx512_rmsnorm_dw_cols(float *dw, const float *dout, const float *x, const float *rstd,
                               int N, int C, int c0, int nc);

/* one token: nh heads of D, rotated by cos c[D/2], sin s[D/2] (or the
 * inverse rotation) */
void lc_avx512_rope_row(float *x, const float *c, const float *s, int nh, int D, int inverse);

void lc_avx512_swiglu_fwd(float *out, const float *gate, const float *up, int64_t n);
void lc_avx512_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, int64_t n);

/* s[0..lim) = softmax(s[0..lim)), s[lim..n) = 0 */
void lc_avx512_softmax_row(float *s, int lim, int n);

/* one row of the cross-entropy: returns logsumexp(l) - l[t]; dl (nullable,
 * may alias l) = gs * (softmax(l) - onehot(t)).  t is a valid class. */
float lc_avx512_xent_row(float *dl, const float *l, int t, int V, float gs);

/* one row of the MSE: returns sum (p - t)^2; dp (nullable) = gs2 (p - t) */
float lc_avx512_mse_row(float *dp, const float *p, const float *t, int cols, float gs2);

void lc_avx512_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                     const struct lc_adamw_scalars *s);

#endif /* LC_BACKEND_CPU_AVX512_AVX512_DENSE_H */
