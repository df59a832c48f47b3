/*
 * The row kernels of the cpu backend: one table per instruction set.
 *
 * The entries (cpu_dense.c, cpu_gemm.c, cpu_attn.c, the hybrid files) own
 * the OpenMP partition and call these kernels on rows or fixed ranges, so
 * a kernel never sees the thread count and its sums run in an order fixed
 * by its arguments alone.
 *
 * Tables: generic C (cpu_kernels_generic.c, every build), and the vector
 * ones built from one template (simd/simd_kernels.h) over each instruction
 * set's primitives: AVX2+FMA+F16C and AVX-512 on x86-64, NEON (ASIMD) on
 * aarch64.  A vector table is compiled with its own flags and used only
 * when the CPU has the instructions (lc_cpu_detect_isa).
 */
#ifndef LC_BACKEND_CPU_CPU_KERNELS_H
#define LC_BACKEND_CPU_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend-cpu/cpu.h"

/* AdamW's per-step scalars, formed in double and rounded once (see the
 * reference lc_ref_adamw). */
struct lc_adamw_scalars {
    float decay;    /* 1 - lr * wd */
    float w1;       /* 1 - beta1, the lerp weight */
    float beta1;    /* 1 - w1, for the lerp's second form */
    int lerp_first; /* 1 - beta1 < 0.5: m + w1 (g - m); else g - (g - m) beta1 */
    float beta2;
    float w2;       /* 1 - beta2 */
    float neg_step; /* -lr / (1 - beta1^step) */
    float bc2_sqrt; /* sqrt(1 - beta2^step) */
    float eps;
};

struct lc_cpu_kernels {
    const char *name; /* for --verbose: "generic C", "AVX2+FMA", ... */

    /* y[i] = exp(x[i]); the vector tables share one algorithm (within
     * 1 ulp over the whole float range, subnormal results included) */
    void (*exp)(float *y, const float *x, int64_t n);

    /* dst[i] = src[i] widened to fp32 */
    void (*f16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    /* the dot product of two fp32 rows of K */
    float (*dot)(const float *x, const float *w, int K);
    /* y[m] = x . w[m] (+ beta y[m]) for the M rows of K elements of w, in
     * its dtype (F32, F16, BF16); a row's sum does not depend on M.
     * prefetch (enum lc_cpu_prefetch): how the vector tables fetch
     * weights streamed from memory ahead of use; it changes no result. */
    void (*gemv)(float *y, const float *x, const void *w, enum lc_dtype wtype, int K, int M,
                 float beta, int prefetch);

    void (*add)(float *y, const float *x, int64_t n);
    /* elements i0 .. i0+n-1 of a dropout over a larger array */
    void (*dropout)(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t i0);

    /* one row: out = w * (x * r); returns r = 1 / sqrt(mean(x^2) + eps) */
    float (*rmsnorm_row)(float *out, const float *x, const float *w, int C, float eps);
    /* one row of dx += r w g - x r^3/C sum(g w x) */
    void (*rmsnorm_dx_row)(float *dx, const float *g, const float *x, const float *w, float r,
                           int C);
    /* dw[c0 .. c0+nc) += sum over the N rows, in row order, of g x r */
    void (*rmsnorm_dw_cols)(float *dw, const float *dout, const float *x, const float *rstd,
                            int N, int C, int c0, int nc);
    /* one token: nh heads of D, rotated by cos c[D/2], sin s[D/2] (or the
     * inverse rotation) */
    void (*rope_row)(float *x, const float *c, const float *s, int nh, int D, int inverse);
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, int64_t n);
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t n);
    /* s[0..lim) = softmax(s[0..lim)), s[lim..n) = 0 */
    void (*softmax_row)(float *s, int lim, int n);
    /* one row of the cross-entropy: returns logsumexp(l) - l[t]; dl
     * (nullable, may alias l) = gs * (softmax(l) - onehot(t)) */
    float (*xent_row)(float *dl, const float *l, int t, int V, float gs);
    /* one row of the MSE: returns sum (p - t)^2; dp (nullable) = gs2 (p - t) */
    float (*mse_row)(float *dp, const float *p, const float *t, int cols, float gs2);
    void (*adamw)(float *p, const float *g, float *m, float *v, int64_t n,
                  const struct lc_adamw_scalars *s);

    /* The window part of a hybrid forward row: m = max of s[0:n], e[c] =
     * gamma exp(s[c] - m) (e may alias s); returns the sum of e and sets
     * *m_out. */
    float (*exp_row)(float *e, const float *s, int n, float gamma, float *m_out);
    /* The window part of a backward row, from the scores s[0:n], the
     * forward's stabilizer m, gamma, delta = g . y and invz = 1 / den:
     * e = gamma exp(s - m), G = (ds - delta) invz where ds holds g . v_c
     * on entry; on return ds[c] = dL/ds_c = G e plus the max path (-sum
     * G e, split evenly among the entries where s equals m) and p[c] = e
     * invz.  Returns the sum of G e (the gradient of gamma times gamma). */
    float (*bwd_row)(float *ds, float *p, const float *s, int n, float m, float gamma,
                     float delta, float invz);
    /* Rows of the hybrid attention's chunked driver, n elements each.
     * div_row: y = x / d, correctly rounded (the same bits in every set;
     * y may be x); axpy_scale_row: y = (y + a x) s; scale_acc_row:
     * y = x s and acc += a x (y, x and acc apart). */
    void (*div_row)(float *y, const float *x, float d, int n);
    void (*axpy_scale_row)(float *y, const float *x, float a, float s, int n);
    void (*scale_acc_row)(float *y, float *acc, const float *x, float s, float a, int n);
    /* Both softmaxes of the Hedgehog map for one row: phi[0:f] =
     * softmax(z), phi[f:2f] = softmax(-z), each clamped below at eps. */
    void (*fmap_row)(float *phi, const float *z, int f, float eps);
    /* The feature-map backward for one row: dz from z and dphi[2f] (method
     * doc 2.4); the clamp passes the gradient where the pre-clamp value is
     * >= eps.  tmp holds 2f floats. */
    void (*fmap_bwd_row)(float *dz, const float *z, const float *dphi, int f, float eps,
                         float *tmp);

    /* Decoding: H query heads q[H, D] against n cached keys, key j of
     * head h at k + j ldk + (h / rep) D (grouped heads share a key):
     * s[h n + j] = scale q_h . k_j(h). */
    void (*scores)(float *s, const float *q, int H, int rep, const float *k, int ldk, int n,
                   int D, float scale);
    /* and y[h D + d] += sum over j < n, in order, of p[h n + j] v_j(h)[d],
     * the values laid out as the keys */
    void (*wsum)(float *y, const float *p, int H, int rep, const float *v, int ldv, int n, int D);

    /* The small GEMMs of the hybrid attention (64 x 128 x 128 blocks), on
     * the calling thread.  B is packed once (gemm_pack) and then read by
     * any number of products: columns in panels of P = gemm_np floats
     * (gemm_np 0: one panel of all N columns), panel p at bp + p bps,
     * its row k at + k P, zeros past column N.  gemm_pack writes
     * B(k, n) = b[k bks + n bns] (K x N) with bps = K P, so it needs
     * K * (N rounded up to P) floats.
     * gemm: C = alpha A B + beta C (beta 0: C is not read) for A(r, k) =
     * a[r ars + k aks] (M x K; ars or aks is 1), the packed B (K x N), and
     * C(r, n) = c[r ldc + (n / P) cps + n % P] (cps = P: row-major C;
     * a packed C is another product's B).  The result depends on the
     * arguments only (the caller's thread count never reaches it). */
    int gemm_np;
    void (*gemm_pack)(float *bp, const float *b, int K, int N, ptrdiff_t bks, ptrdiff_t bns);
    void (*gemm)(int M, int N, int K, float alpha, const float *a, ptrdiff_t ars, ptrdiff_t aks,
                 const float *bp, ptrdiff_t bps, float beta, float *c, int ldc, ptrdiff_t cps);
};

extern const struct lc_cpu_kernels lc_cpu_kernels_generic;
#ifdef LC_HAVE_AVX2
extern const struct lc_cpu_kernels lc_cpu_kernels_avx2;
#endif
#ifdef LC_HAVE_AVX512
extern const struct lc_cpu_kernels lc_cpu_kernels_avx512;
#endif
#ifdef LC_HAVE_NEON
extern const struct lc_cpu_kernels lc_cpu_kernels_neon;
#endif

/* The table of an instruction set (generic for one not built). */
const struct lc_cpu_kernels *lc_cpu_kernels_of_isa(enum lc_cpu_isa isa);

/* The table of the backend's instruction set. */
static inline const struct lc_cpu_kernels *lc_cpu_kernels(const struct lc_backend *be)
{
    return lc_cpu_kernels_of_isa(lc_cpu_isa_of(be));
}

/* generic kernels the vector tables use where they have no twin */
void lc_cpu_dropout_generic(float *y, const float *x, int64_t n, float p, uint64_t seed,
                            int64_t i0);

#endif /* LC_BACKEND_CPU_CPU_KERNELS_H */
