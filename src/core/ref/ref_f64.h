/*
 * The double-precision instance of the dense reference kernels
 * (ref_dense_f64.c, built into the kernel tests only): the same code as
 * lc_ref_<op> with every float replaced by double, except the RoPE tables
 * and the dtype-tagged weights, which keep their storage types.  The tests
 * check each backward against finite differences of its forward with it.
 * The backend argument is unused and may be NULL.
 */
#ifndef LC_CORE_REF_REF_F64_H
#define LC_CORE_REF_REF_F64_H

#include "core/ref/ref.h"

void lc_ref_gemm_f64(struct lc_backend *be, int ta, int tb, int M, int N, int K, double alpha,
                     const double *A, int lda, const double *B, int ldb, double beta, double *C,
                     int ldc);
void lc_ref_linear_fwd_f64(struct lc_backend *be, double *y, const double *x, const void *w,
                           enum lc_dtype wtype, int N, int K, int M, double beta);
void lc_ref_linear_bwd_f64(struct lc_backend *be, double *dx, const double *dy, const void *w,
                           enum lc_dtype wtype, int N, int K, int M, double beta);
void lc_ref_add_f64(struct lc_backend *be, double *y, const double *x, int64_t n);
void lc_ref_dropout_f64(struct lc_backend *be, double *y, const double *x, int64_t n, double p,
                        uint64_t seed);
void lc_ref_embedding_fwd_f64(struct lc_backend *be, double *out, const int32_t *ids,
                              const void *table, enum lc_dtype ttype, int N, int C);
void lc_ref_embedding_bwd_f64(struct lc_backend *be, double *dtable, const double *dout,
                              const int32_t *ids, int N, int C, int V);
void lc_ref_rmsnorm_fwd_f64(struct lc_backend *be, double *out, double *rstd, const double *x,
                            const double *w, int N, int C, double eps);
void lc_ref_rmsnorm_bwd_f64(struct lc_backend *be, double *dx, double *dw, const double *dout,
                            const double *x, const double *w, const double *rstd, int N, int C);
void lc_ref_rope_fwd_f64(struct lc_backend *be, double *x, const int32_t *pos,
                         const float *cos_tab, const float *sin_tab, int N, int nh, int D);
void lc_ref_rope_bwd_f64(struct lc_backend *be, double *dx, const int32_t *pos,
                         const float *cos_tab, const float *sin_tab, int N, int nh, int D);
void lc_ref_swiglu_fwd_f64(struct lc_backend *be, double *out, const double *gate,
                           const double *up, int64_t n);
void lc_ref_swiglu_bwd_f64(struct lc_backend *be, double *dgate, double *dup, const double *dout,
                           const double *gate, const double *up, int64_t n);
void lc_ref_attn_fwd_f64(struct lc_backend *be, double *y, const double *q, const double *k,
                         const double *v, int B, int Tq, int Tk, int H, int Hkv, int D,
                         int q_pos0);
void lc_ref_mse_fwd_bwd_f64(struct lc_backend *be, double *row_sse, double *dpred,
                            const double *pred, const double *target, int64_t rows, int cols,
                            double grad_scale);
void lc_ref_xent_fwd_bwd_f64(struct lc_backend *be, double *row_loss, double *dlogits,
                             const double *logits, const int32_t *targets, int N, int V,
                             double grad_scale);
void lc_ref_adamw_f64(struct lc_backend *be, double *p, const double *g, double *m, double *v,
                      int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                      int64_t step);

#endif /* LC_CORE_REF_REF_F64_H */
