/*
 * The cpu backend's feature maps, hybrid attention and decoding ops, and
 * the row kernels they share (generic C here, AVX-512 twins in
 * avx512/cpu_hybrid_avx512.c, chosen by lc_cpu_isa_of()).
 */
#ifndef LC_BACKEND_CPU_CPU_HYBRID_H
#define LC_BACKEND_CPU_CPU_HYBRID_H

#include "backend-cpu/cpu.h"

/* backend entries */
void lc_cpu_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W, int N,
                     int H, int Hx, int D, int f, float eps);
void lc_cpu_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps);
void lc_cpu_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s);
void lc_cpu_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s);
void lc_cpu_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s);
void lc_cpu_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F);
void lc_cpu_hybrid_add_state(struct lc_backend *be, float *y, const float *den,
                             const float *fq, const float *S, const float *z, int n, int H,
                             int D, int F);
void lc_cpu_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F);

/* Row-major SGEMM on the calling thread (the kernels call it inside their
 * parallel regions; see lc_cpu_sgemm_serial). */
static inline void lc_hy_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                               int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    lc_cpu_sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------- scratch */

/* The kernels' scratch, taken from the backend's (lc_cpu_scratch): a part
 * shared by all threads and one slice per thread of a team of at most nt
 * threads, each part 64-byte aligned.  Contents are not initialized.
 * Returns 0 when out of memory or when the sizes overflow (the failure is
 * recorded for sync, and the kernel returns without computing). */
struct lc_hy_work {
    float *shared;
    float *slices;
    size_t slice; /* floats per thread slice */
};

int lc_hy_work_get(struct lc_backend *be, struct lc_hy_work *w, size_t shared, size_t per_thread,
                   int nt);

/* The slice of the calling thread (thread numbers below nt). */
float *lc_hy_work_slice(const struct lc_hy_work *w);

/* Carves n floats (64-byte aligned) off *p. */
static inline float *lc_hy_take(float **p, size_t n)
{
    float *r = *p;
    *p += (n + 15) & ~(size_t)15;
    return r;
}

/* The floats lc_hy_take needs for n. */
static inline size_t lc_hy_round(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* dtheta[h] += (1 - sigmoid(theta[h])) * sum over b of acc[b * H + h]: the
 * window factors' gradient from the per-(batch, head) sums of the
 * backward and the cross-entropy. */
void lc_hy_dtheta_add(float *dtheta, const float *theta, const double *acc, int B, int H);

/* ------------------------------------------------------------ row kernels */

/* The window part of a forward row: m = max of s[0:n], e[c] = gamma *
 * exp(s[c] - m) (e may alias s); returns the sum of e and sets *m_out. */
typedef float (*lc_cpu_exp_row_fn)(float *e, const float *s, int n, float gamma, float *m_out);
/* The window part of a backward row, from the scores s[0:n], the
 * forward's stabilizer m, gamma, delta = g . y and invz = 1 / den:
 * e = gamma exp(s - m), G = (ds - delta) invz where ds holds g . v_c on
 * entry; on return ds[c] = dL/ds_c = G e plus the max path (-sum G e,
 * split evenly among the entries where s equals m) and p[c] = e invz.
 * Returns the sum of G e (the gradient of gamma times gamma). */
typedef float (*lc_cpu_bwd_row_fn)(float *ds, float *p, const float *s, int n, float m,
                                   float gamma, float delta, float invz);
/* Both softmaxes of the Hedgehog map for one row: phi[0:f] = softmax(z),
 * phi[f:2f] = softmax(-z), each clamped below at eps. */
typedef void (*lc_cpu_fmap_row_fn)(float *phi, const float *z, int f, float eps);
/* The feature-map backward for one row: dz from z and dphi[2f] (method
 * doc 2.4); the clamp passes the gradient where the pre-clamp value is
 * >= eps.  tmp holds 2f floats. */
typedef void (*lc_cpu_fmap_bwd_row_fn)(float *dz, const float *z, const float *dphi, int f,
                                       float eps, float *tmp);

struct lc_cpu_hybrid_kernels {
    lc_cpu_exp_row_fn exp_row;
    lc_cpu_bwd_row_fn bwd_row;
    lc_cpu_fmap_row_fn fmap_row;
    lc_cpu_fmap_bwd_row_fn fmap_bwd_row;
};

/* the row kernels for the backend's ISA */
const struct lc_cpu_hybrid_kernels *lc_cpu_hybrid_kernels(const struct lc_backend *be);

#ifdef LC_HAVE_AVX512
float lc_avx512_exp_row(float *e, const float *s, int n, float gamma, float *m_out);
float lc_avx512_bwd_row(float *ds, float *p, const float *s, int n, float m, float gamma,
                        float delta, float invz);
void lc_avx512_fmap_row(float *phi, const float *z, int f, float eps);
void lc_avx512_fmap_bwd_row(float *dz, const float *z, const float *dphi, int f, float eps,
                            float *tmp);
#endif

#endif /* LC_BACKEND_CPU_CPU_HYBRID_H */
