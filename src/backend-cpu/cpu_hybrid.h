/*
 * The cpu backend's feature maps, hybrid attention and decoding ops; what
 * they share is in cpu_hybrid_rows.h, their row kernels in the ISA tables
 * (cpu_kernels.h).
 */
#ifndef LC_BACKEND_CPU_CPU_HYBRID_H
#define LC_BACKEND_CPU_CPU_HYBRID_H

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"

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

#endif /* LC_BACKEND_CPU_CPU_HYBRID_H */
