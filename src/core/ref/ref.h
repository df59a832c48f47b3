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
#include "core/util.h"

/* memory entries shared by every host-memory backend (ref and cpu) */
void *lc_host_alloc(struct lc_backend *be, size_t bytes);
void lc_host_release(struct lc_backend *be, void *p);
void lc_host_copy(struct lc_backend *be, void *dst, const void *src, size_t bytes);
void lc_host_zero(struct lc_backend *be, void *dst, size_t bytes);
lc_status lc_host_sync(struct lc_backend *be, struct lc_error *err);

/* Dropout's uniform numbers: u(seed, i) in [0, 1) with 24 random bits, so
 * that u is exact in float and every backend draws the same mask.  The
 * seed is mixed first and the index added as a Weyl sequence, then mixed
 * again (lc_mix64, util.h). */
#define LC_DROPOUT_GAMMA LC_GOLDEN_GAMMA

static inline float lc_dropout_uniform(uint64_t seed, uint64_t i)
{
    uint64_t h = lc_mix64(lc_mix64(seed) + (i + 1) * LC_DROPOUT_GAMMA);
    return (float)(h >> 40) * 0x1p-24f;
}

/* dense algebra, embedding, norms, RoPE, SwiGLU, softmax attention, losses,
 * optimizer (ref_dense.c); see backend.h for the contracts */
void lc_ref_gemm(struct lc_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void lc_ref_linear_fwd(struct lc_backend *be, float *y, const float *x, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);
void lc_ref_linear_bwd(struct lc_backend *be, float *dx, const float *dy, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);
void lc_ref_add(struct lc_backend *be, float *y, const float *x, int64_t n);
void lc_ref_dropout(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                    uint64_t seed);
void lc_ref_embedding_fwd(struct lc_backend *be, float *out, const int32_t *ids,
                          const void *table, enum lc_dtype ttype, int N, int C);
void lc_ref_embedding_bwd(struct lc_backend *be, float *dtable, const float *dout,
                          const int32_t *ids, int N, int C, int V);
void lc_ref_rmsnorm_fwd(struct lc_backend *be, float *out, float *rstd, const float *x,
                        const float *w, int N, int C, float eps);
void lc_ref_rmsnorm_bwd(struct lc_backend *be, float *dx, float *dw, const float *dout,
                        const float *x, const float *w, const float *rstd, int N, int C);
void lc_ref_rope_fwd(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);
void lc_ref_rope_bwd(struct lc_backend *be, float *dx, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);
void lc_ref_swiglu_fwd(struct lc_backend *be, float *out, const float *gate, const float *up,
                       int64_t n);
void lc_ref_swiglu_bwd(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t n);
void lc_ref_attn_fwd(struct lc_backend *be, float *y, const float *q, const float *k,
                     const float *v, int B, int Tq, int Tk, int H, int Hkv, int D, int q_pos0);
void lc_ref_mse_fwd_bwd(struct lc_backend *be, float *row_sse, float *dpred, const float *pred,
                        const float *target, int64_t rows, int cols, float grad_scale);
void lc_ref_xent_fwd_bwd(struct lc_backend *be, float *row_loss, float *dlogits,
                         const float *logits, const int32_t *targets, int N, int V,
                         float grad_scale);
void lc_ref_adamw(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                  int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                  int64_t step);

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
void lc_ref_hybrid_add_state(struct lc_backend *be, float *y, const float *den, const float *fq,
                             const float *S, const float *z, int n, int H, int D, int F);

#endif /* LC_CORE_REF_REF_H */
