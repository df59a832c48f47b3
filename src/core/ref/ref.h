/*
 * The reference kernels: plain C, single-threaded, written to be read.
 * They are the executable specification of every backend entry: each fast
 * kernel has a twin here with the same signature, and the tests compare
 * them.  They also form the "ref" backend, so whole-model tests can run on
 * both backends and compare.
 */
#ifndef LC_CORE_REF_REF_H
#define LC_CORE_REF_REF_H

#include "core/backend.h"

/* memory entries shared by every host-memory backend (ref and cpu) */
void *lc_host_alloc(struct lc_backend *be, size_t bytes);
void lc_host_release(struct lc_backend *be, void *p);
void lc_host_copy(struct lc_backend *be, void *dst, const void *src, size_t bytes);
void lc_host_zero(struct lc_backend *be, void *dst, size_t bytes);
lc_status lc_host_sync(struct lc_backend *be, struct lc_error *err);

/* ------------------------------------ feature maps, hybrid attention, decoding */

/* First key of query i's softmax window (DESIGN.md section 6): keys
 * [start, i] are window keys, keys [0, start) linear keys.  Terraced:
 * blocks of W aligned to the sequence start, own block and the previous
 * one; sliding: the W most recent keys. */
static inline int lc_window_start(int i, int W, int mode)
{
    int lo;

    if (mode == LC_WINDOW_SLIDING) {
        lo = i - W + 1;
    } else {
        lo = (i / W - 1) * W;
    }
    return lo > 0 ? lo : 0;
}

/* The float entries of the "ref" backend (quadratic form, one thread). */
void lc_ref_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W, int N,
                     int H, int Hx, int D, int f, float eps);
void lc_ref_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps);
void lc_ref_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s);
void lc_ref_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s);
void lc_ref_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s);
void lc_ref_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F);
void lc_ref_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F);

/* The same math in double, for the finite-difference tests.  Same
 * arguments and layouts as the entries above, without the backend. */
void lc_ref_fmap_fwd_f64(double *phi, const double *x, const double *W, int N, int H, int Hx,
                         int D, int f, double eps);
void lc_ref_fmap_bwd_f64(double *dW, double *dx, const double *dphi, const double *x,
                         const double *W, int N, int H, int Hx, int D, int f, double eps);
void lc_ref_hybrid_fwd_f64(double *y, double *mx, double *den, const double *q, const double *k,
                           const double *v, const double *fq, const double *fk,
                           const double *theta, const struct lc_attn_shape *s);
void lc_ref_hybrid_bwd_f64(double *dq, double *dk, double *dv, double *dfq, double *dfk,
                           double *dtheta, const double *dy, const double *y, const double *mx,
                           const double *den, const double *q, const double *k,
                           const double *v, const double *fq, const double *fk,
                           const double *theta, const struct lc_attn_shape *s);
void lc_ref_hybrid_xent_f64(double *row_loss, double *dfq, double *dfk, double *dtheta,
                            double grad_scale, const double *q, const double *k,
                            const double *fq, const double *fk, const double *theta,
                            const struct lc_attn_shape *s);
void lc_ref_hybrid_decode_f64(double *y, const double *q, const double *fq, const double *kc,
                              const double *vc, int ncache, const double *S, const double *z,
                              const double *theta, int H, int Hkv, int D, int F);
void lc_ref_linstate_add_f64(double *S, double *z, const double *fk, const double *v, int n,
                             int H, int Hkv, int D, int F);

#endif /* LC_CORE_REF_REF_H */
