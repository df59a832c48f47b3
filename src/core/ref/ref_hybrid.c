/*
 * Reference feature maps, hybrid attention and decoding ops: the math of
 * ref_hybrid_impl.h instantiated in float, the "ref" backend entries.
 * (ref_hybrid_f64.c instantiates it in double for the tests.)
 */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "core/ref/ref.h"

/* --------------------------------------------------------------- float */
#define REAL float
#define FN(name) ref_##name##_f32
#define LINKAGE static
#define LOCAL(name) name##_f32
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define XENT_CLAMP 1e-12f
#include "core/ref/ref_hybrid_impl.h"
#undef REAL
#undef FN
#undef LINKAGE
#undef LOCAL
#undef EXP
#undef LOG
#undef SQRT
#undef XENT_CLAMP

/* ------------------------------------------------------ backend entries */

void lc_ref_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W, int N,
                     int H, int Hx, int D, int f, float eps)
{
    (void)be;
    ref_fmap_fwd_f32(phi, x, W, N, H, Hx, D, f, eps);
}

void lc_ref_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps)
{
    (void)be;
    ref_fmap_bwd_f32(dW, dx, dphi, x, W, N, H, Hx, D, f, eps);
}

void lc_ref_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s)
{
    (void)be;
    ref_hybrid_fwd_f32(y, mx, den, q, k, v, fq, fk, theta, s);
}

void lc_ref_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s)
{
    (void)be;
    ref_hybrid_bwd_f32(dq, dk, dv, dfq, dfk, dtheta, dy, y, mx, den, q, k, v, fq, fk, theta, s);
}

void lc_ref_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s)
{
    (void)be;
    ref_hybrid_xent_f32(row_loss, dfq, dfk, dtheta, grad_scale, q, k, fq, fk, theta, s);
}

void lc_ref_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F)
{
    (void)be;
    ref_hybrid_decode_f32(y, q, fq, kc, vc, ncache, S, z, theta, H, Hkv, D, F);
}

void lc_ref_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F)
{
    (void)be;
    ref_linstate_add_f32(S, z, fk, v, n, H, Hkv, D, F);
}

void lc_ref_hybrid_add_state(struct lc_backend *be, float *y, const float *den, const float *fq,
                             const float *S, const float *z, int n, int H, int D, int F)
{
    (void)be;
    ref_hybrid_add_state_f32(y, den, fq, S, z, n, H, D, F);
}
