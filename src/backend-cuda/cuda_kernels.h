/*
 * The CUDA backend's private interface between the C glue
 * (cuda_backend.c: the table, memory, errors) and the kernels (*.cu).
 * Plain C: compiled by the C compiler and by nvcc.
 *
 * Every launcher queues its work on the context's stream and returns NULL,
 * or a static string saying what failed to launch (a CUDA or cuBLAS error
 * string); the glue keeps the first such failure and reports it at the
 * next sync.  Faults inside kernels surface there too.  Arguments follow
 * backend.h; shapes have been checked to be non-empty by the glue unless a
 * launcher says otherwise.
 */
#ifndef LC_BACKEND_CUDA_CUDA_KERNELS_H
#define LC_BACKEND_CUDA_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Query rows per chunk of the teacher attention (bounded further by the
 * score buffer's size, LC_CUDA_ATTN_SCORE_BYTES). */
#define LC_CUDA_ATTN_CHUNK 512
#define LC_CUDA_ATTN_SCORE_BYTES ((size_t)256 << 20)

struct lc_cuda_ctx {
    int device;
    cudaStream_t stream;   /* every operation runs on it, in order */
    cublasHandle_t cublas; /* bound to stream; fp32 math, no TF32 */
    void *scratch;         /* device scratch, grown on demand */
    size_t scratch_bytes;
    /* 1: the attention products (teacher attention, hybrid attention,
     * feature maps) on the TF32 tensor cores; 0 (default): fp32.  Set by
     * LC_CUDA_TF32=1 in the environment at init. */
    int tf32;
    /* 1 (default): the teacher's and the student's attention on the fused
     * bf16 tensor-core kernels (k_flash.cu, k_hybrid_tile.cu) where the
     * shapes allow: operands rounded to bf16, fp32 accumulation; 0: the
     * fp32 paths (or TF32, with tf32).  LC_CUDA_ATTN=fp32 in the
     * environment at init turns it off. */
    int attn_bf16;
    int attn_chunk;        /* query rows per chunk of the teacher attention and of the
                            * attention cross-entropy (tests lower it) */
    const char *fail_op;   /* first failure since the last sync, or NULL */
    char fail_msg[256];
};

/* Device scratch of at least bytes, valid until the next call that asks
 * for scratch; NULL when the device is out of memory. */
void *lc_cuda_scratch(struct lc_cuda_ctx *c, size_t bytes);

/* Fails (with the CUDA error string) when the kernels cannot run on the
 * current device, e.g. when it is older than the code was built for. */
const char *lc_cuda_probe(void);

/* ----------------------------------------------------- gemm.cu */
const char *lc_cuda_gemm(struct lc_cuda_ctx *c, int ta, int tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);
/* bwd = 0: y[N,M] = x[N,K] w[M,K]^T + beta y; bwd = 1: dx[N,K] = dy[N,M] w + beta dx.
 * F16/BF16 weights: the activations are rounded to the weight dtype and
 * multiplied on the tensor cores with fp32 accumulation. */
const char *lc_cuda_linear(struct lc_cuda_ctx *c, int bwd, float *out, const float *in,
                           const void *w, enum lc_dtype wtype, int N, int K, int M, float beta);

/* ------------------------------------------ k_elementwise.cu */
const char *lc_cuda_add(struct lc_cuda_ctx *c, float *y, const float *x, int64_t n);
const char *lc_cuda_dropout(struct lc_cuda_ctx *c, float *y, const float *x, int64_t n, float p,
                            uint64_t seed);
const char *lc_cuda_swiglu_fwd(struct lc_cuda_ctx *c, float *out, const float *gate,
                               const float *up, int64_t n);
const char *lc_cuda_swiglu_bwd(struct lc_cuda_ctx *c, float *dgate, float *dup, const float *dout,
                               const float *gate, const float *up, int64_t n);
/* x[i] for the whole of dst: uniform in [lo, hi) from the dropout hash of
 * (seed, i), stored as F32, F16 or BF16 (benchmarks' random weights) */
const char *lc_cuda_fill_uniform(struct lc_cuda_ctx *c, void *dst, enum lc_dtype type, int64_t n,
                                 uint64_t seed, float lo, float hi);

/* -------------------------------------------- k_embedding.cu */
const char *lc_cuda_embedding_fwd(struct lc_cuda_ctx *c, float *out, const int32_t *ids,
                                  const void *table, enum lc_dtype ttype, int N, int C);
const char *lc_cuda_embedding_bwd(struct lc_cuda_ctx *c, float *dtable, const float *dout,
                                  const int32_t *ids, int N, int C, int V);

/* ------------------------------------------------- k_norm.cu */
const char *lc_cuda_rmsnorm_fwd(struct lc_cuda_ctx *c, float *out, float *rstd, const float *x,
                                const float *w, int N, int C, float eps);
const char *lc_cuda_rmsnorm_bwd(struct lc_cuda_ctx *c, float *dx, float *dw, const float *dout,
                                const float *x, const float *w, const float *rstd, int N, int C);

/* ------------------------------------------------- k_rope.cu */
/* inverse = 0: rope_fwd; 1: rope_bwd (the transpose) */
const char *lc_cuda_rope(struct lc_cuda_ctx *c, float *x, const int32_t *pos,
                         const float *cos_tab, const float *sin_tab, int N, int nh, int D,
                         int inverse);

/* ------------------------------------------------- k_attn.cu */
/* Query rows from which a chunk runs the fused bf16 kernel (attn_bf16). */
#define LC_CUDA_FLASH_MIN_ROWS 16
/* the entry: the fused bf16 kernel or the fp32 path, as the context says */
const char *lc_cuda_attn_fwd(struct lc_cuda_ctx *c, float *y, const float *q, const float *k,
                             const float *v, int B, int Tq, int Tk, int H, int Hkv, int D,
                             int q_pos0);
/* the fp32 path: batched SGEMMs and a softmax kernel */
const char *lc_cuda_attn_fwd_fp32(struct lc_cuda_ctx *c, float *y, const float *q, const float *k,
                                  const float *v, int B, int Tq, int Tk, int H, int Hkv, int D,
                                  int q_pos0);

/* ------------------------------------------------ k_flash.cu */
/* 1 when the fused kernel is built for head dim D (D <= 128) */
int lc_cuda_flash_supports(int D);
/* the fused bf16 flash attention; B, Tq, Tk, H >= 1, D supported */
const char *lc_cuda_flash_fwd(struct lc_cuda_ctx *c, float *y, const float *q, const float *k,
                              const float *v, int B, int Tq, int Tk, int H, int Hkv, int D,
                              int q_pos0);
/* dst [B, nh, T, DP] = the bf16 rounding of src [B, T, nh, D], zero for
 * d >= D (DP a multiple of 8) */
const char *lc_cuda_to_bf16_heads(struct lc_cuda_ctx *c, uint16_t *dst, const float *src, int B,
                                  int T, int nh, int D, int DP);

/* -------------------------------------------------- k_fmap.cu */
const char *lc_cuda_fmap_fwd(struct lc_cuda_ctx *c, float *phi, const float *x, const float *W,
                             int N, int H, int Hx, int D, int f, float eps);
const char *lc_cuda_fmap_bwd(struct lc_cuda_ctx *c, float *dW, float *dx, const float *dphi,
                             const float *x, const float *W, int N, int H, int Hx, int D, int f,
                             float eps);

/* ----------------------------------- k_hybrid.cu, k_hybrid_xent.cu */
/* shapes checked by the glue: B, T, H, Hkv, D, F, window >= 1, H % Hkv == 0 */
const char *lc_cuda_hybrid_fwd(struct lc_cuda_ctx *c, float *y, float *mx, float *den,
                               const float *q, const float *k, const float *v, const float *fq,
                               const float *fk, const float *theta,
                               const struct lc_attn_shape *s);
const char *lc_cuda_hybrid_bwd(struct lc_cuda_ctx *c, float *dq, float *dk, float *dv, float *dfq,
                               float *dfk, float *dtheta, const float *dy, const float *y,
                               const float *mx, const float *den, const float *q, const float *k,
                               const float *v, const float *fq, const float *fk,
                               const float *theta, const struct lc_attn_shape *s);
/* ------------------------------------------ k_hybrid_tile.cu */
/* 1 when the fused bf16 tile kernels are built for the shape: window 64,
 * D <= 128, F <= 128 (the entries above run them when attn_bf16 is on) */
int lc_cuda_hytile_supports(const struct lc_attn_shape *s);
const char *lc_cuda_hytile_fwd(struct lc_cuda_ctx *c, float *y, float *mx, float *den,
                               const float *q, const float *k, const float *v, const float *fq,
                               const float *fk, const float *theta, const struct lc_attn_shape *s);
const char *lc_cuda_hytile_bwd(struct lc_cuda_ctx *c, float *dq, float *dk, float *dv, float *dfq,
                               float *dfk, float *dtheta, const float *dy, const float *y,
                               const float *mx, const float *den, const float *q, const float *k,
                               const float *v, const float *fq, const float *fk,
                               const float *theta, const struct lc_attn_shape *s);
/* query rows per chunk: the context's attn_chunk, else as many as 1 GiB of scores allows */
const char *lc_cuda_hybrid_xent(struct lc_cuda_ctx *c, float *row_loss, float *dfq, float *dfk,
                                float *dtheta, float grad_scale, const float *q, const float *k,
                                const float *fq, const float *fk, const float *theta,
                                const struct lc_attn_shape *s);

/* ------------------------------------------------ k_decode.cu */
/* ncache may be 0 */
const char *lc_cuda_hybrid_decode(struct lc_cuda_ctx *c, float *y, const float *q, const float *fq,
                                  const float *kc, const float *vc, int ncache, const float *S,
                                  const float *z, const float *theta, int H, int Hkv, int D,
                                  int F);
const char *lc_cuda_linstate_add(struct lc_cuda_ctx *c, float *S, float *z, const float *fk,
                                 const float *v, int n, int H, int Hkv, int D, int F);
const char *lc_cuda_hybrid_add_state(struct lc_cuda_ctx *c, float *y, const float *den,
                                     const float *fq, const float *S, const float *z, int n, int H,
                                     int D, int F);

/* ------------------------------------------------- k_loss.cu */
const char *lc_cuda_mse_fwd_bwd(struct lc_cuda_ctx *c, float *row_sse, float *dpred,
                                const float *pred, const float *target, int64_t rows, int cols,
                                float grad_scale);
const char *lc_cuda_xent_fwd_bwd(struct lc_cuda_ctx *c, float *row_loss, float *dlogits,
                                 const float *logits, const int32_t *targets, int N, int V,
                                 float grad_scale);

/* ------------------------------------------------ k_adamw.cu */
/* The AdamW step's scalars, formed in double by the glue (as PyTorch
 * forms them from Python floats) and rounded to fp32 once. */
struct lc_cuda_adamw_scalars {
    float decay;     /* 1 - lr*wd */
    float w1;        /* 1 - beta1 */
    float beta1;
    int lerp_first;  /* 1 - beta1 < 0.5: torch.lerp's first form */
    float beta2;
    float w2;        /* 1 - beta2 */
    float neg_step;  /* -lr / (1 - beta1^step) */
    float bc2_sqrt;  /* sqrt(1 - beta2^step) */
    float eps;
};
const char *lc_cuda_adamw(struct lc_cuda_ctx *c, float *p, const float *g, float *m, float *v,
                          int64_t n, const struct lc_cuda_adamw_scalars *s);

#ifdef __cplusplus
}
#endif

#endif /* LC_BACKEND_CUDA_CUDA_KERNELS_H */
