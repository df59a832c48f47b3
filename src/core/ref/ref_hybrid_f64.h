/*
 * The double-precision instance of the reference feature maps, hybrid
 * attention and decoding ops (ref_hybrid_f64.c, built into the tests only):
 * the math of ref_hybrid_impl.h in double, for the finite-difference tests.
 * Same arguments and layouts as the lc_ref_* entries in ref.h, without the
 * backend.
 */
#ifndef LC_CORE_REF_REF_HYBRID_F64_H
#define LC_CORE_REF_REF_HYBRID_F64_H

#include "core/ref/ref.h"

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
void lc_ref_hybrid_add_state_f64(double *y, const double *den, const double *fq,
                                 const double *S, const double *z, int n, int H, int D, int F);

#endif /* LC_CORE_REF_REF_HYBRID_F64_H */
