/*
 * bench_cuda: how close the cuda backend comes to the GPU's bf16 GEMM peak.
 *
 * Prints the rate of cublasGemmEx at 8192^3 (bf16 inputs, fp32
 * accumulation; bf16 and fp32 outputs) as the peak, then times one
 * Llama-3-8B-shaped layer (hidden 4096, 32 heads, 8 KV heads, head dim
 * 128, FFN 14336, bf16 weights; feature maps f = 64 (F = 128), window 64,
 * terraced; B = 1, T = 1024 and 4096) through the backend entries:
 *   forward  the teacher's forward: rmsnorm, q/k/v, RoPE, softmax
 *            attention, o, rmsnorm, gate/up, SwiGLU, down
 *   stage 1  one layer of an attention-transfer micro-batch: the teacher's
 *            forward plus the student's feature maps, hybrid attention,
 *            MSE, hybrid backward (feature maps and window factors only)
 *            and feature-map backward
 *   stage 2  one layer of fine-tuning: the forward with the hybrid
 *            attention, then the backward through every op down to the
 *            layer input (activation gradients; the feature maps' weight
 *            gradients too; LoRA's rank-8 products, a few percent of the
 *            projections' work, are not included)
 * each with the attention in three ways: the fused bf16 tensor-core
 * kernels (the default, LC_CUDA_ATTN=bf16: flash attention for the
 * teacher, the tile kernels for the hybrid attention), and the fp32 paths
 * with their products in fp32 or on TF32 tensor cores (LC_CUDA_ATTN=fp32,
 * LC_CUDA_TF32).  Per operation and in total: milliseconds, TFLOP/s and
 * the fraction of the peak, and tokens/s.  FLOPs count the products of the
 * algorithms' useful work, the same for every way (causal attention as
 * half the square; the hybrid attention's block products, not the fused
 * kernels' recomputed scores); memory-bound operations count 0.
 *
 * Then linearized decoding: one step of the same layer for a batch of 1
 * and of 64 sequences, each with a full 64-key window cache and its linear
 * state: the projections batched over the sequences, the attention one
 * hybrid_decode call per sequence (the backend table's decode entry takes
 * one token), and one key per sequence moving into its state
 * (linstate_add), as in the steady state of sliding-window decoding.
 * Printed: milliseconds per step, tokens/s per layer, and tokens/s of a
 * 32-layer model's layers (without the embedding and the head).
 *
 * The weights are random, made on the device.  Times are CUDA events
 * around the backend calls on its stream, the mean over the timed repeats
 * after two warm-ups.  The last lines are a summary, with the issue's
 * targets for the default attention at T = 4096 (forward >= 60%, stage 1
 * >= 40%, stage 2 >= 35% of the peak).
 *
 * Not part of make check; run it by hand: bench/bench_cuda [repeats].
 * Exits 77 without a CUDA device.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend-cuda/cuda_kernels.h"

#define WARMUPS 2

static int repeats = 5;

#define CHECK_CUDA(call)                                                       \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) {                                               \
            fprintf(stderr, "bench_cuda: %s: %s\n", #call, cudaGetErrorString(e_)); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static struct lc_backend be;

static struct lc_cuda_ctx *ctx(void)
{
    return (struct lc_cuda_ctx *)be.ctx;
}

static void sync_or_die(const char *what)
{
    struct lc_error err = {0};
    if (be.ops->sync(&be, &err) != LC_OK) {
        fprintf(stderr, "bench_cuda: %s: %s\n", what, err.msg);
        exit(1);
    }
}

static void *dalloc(size_t bytes)
{
    void *p = be.ops->alloc(&be, bytes);
    if (p == NULL) {
        fprintf(stderr, "bench_cuda: out of device memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static void *random_dev(enum lc_dtype type, size_t n, uint64_t seed, float a)
{
    void *p = dalloc(n * lc_dtype_size(type));
    const char *e = lc_cuda_fill_uniform(ctx(), p, type, (int64_t)n, seed, -a, a);
    if (e != NULL) {
        fprintf(stderr, "bench_cuda: fill: %s\n", e);
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------ the peak */

/* mean TFLOP/s of cublasGemmEx n^3, bf16 in, ctype out */
static double gemm_peak(int n, cudaDataType_t ctype)
{
    cublasHandle_t h = ctx()->cublas;
    void *A = random_dev(LC_DTYPE_BF16, (size_t)n * n, 1, 1.0f);
    void *B = random_dev(LC_DTYPE_BF16, (size_t)n * n, 2, 1.0f);
    void *C = dalloc((size_t)n * n * 4);
    const float one = 1.0f;
    const float zero = 0.0f;
    cudaEvent_t t0;
    cudaEvent_t t1;
    float ms = 0;

    CHECK_CUDA(cudaEventCreate(&t0));
    CHECK_CUDA(cudaEventCreate(&t1));
    for (int r = 0; r < WARMUPS + repeats; r++) {
        cublasStatus_t s;
        if (r == WARMUPS) {
            CHECK_CUDA(cudaEventRecord(t0, ctx()->stream));
        }
        s = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A, CUDA_R_16BF, n, B,
                         CUDA_R_16BF, n, &zero, C, ctype, n, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "bench_cuda: cublasGemmEx: %s\n", cublasGetStatusString(s));
            exit(1);
        }
    }
    CHECK_CUDA(cudaEventRecord(t1, ctx()->stream));
    CHECK_CUDA(cudaEventSynchronize(t1));
    CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    be.ops->release(&be, A);
    be.ops->release(&be, B);
    be.ops->release(&be, C);
    return 2.0 * n * (double)n * n * repeats / (ms * 1e-3) / 1e12;
}

/* ------------------------------------------------------------ the layer */

enum { C_ = 4096, H_ = 32, HKV_ = 8, D_ = 128, FF_ = 14336, FD_ = 64, F_ = 2 * FD_, W_ = 64 };

#define HD_ (H_ * D_)
#define KD_ (HKV_ * D_)

enum op {
    /* forward */
    OP_NORM1, OP_Q, OP_K, OP_V, OP_ROPE, OP_ATTN, OP_FMAP, OP_HYB_FWD, OP_MSE, OP_HYB_BWD1,
    OP_FMAP_BWD1, OP_O, OP_SAVE_MID, OP_NORM2, OP_GATE, OP_UP, OP_SWIGLU, OP_DOWN,
    /* stage 2 */
    OP_SAVE_IN, OP_HYB_FWD2, OP_O2, OP_B_DOWN, OP_B_SWIGLU, OP_B_UP, OP_B_GATE, OP_B_NORM2,
    OP_B_O, OP_B_HYB, OP_B_FMAP, OP_B_ROPE, OP_B_QKV, OP_B_NORM1,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "rmsnorm",     "q",           "k",         "v",           "rope q,k",  "attention",
    "fmap q,k",    "hybrid fwd",  "mse",       "hybrid bwd",  "fmap bwd",  "o (+res)",
    "save h",      "rmsnorm",     "gate",      "up",          "swiglu",    "down (+res)",
    "save h",      "hybrid fwd",  "o (+res)",  "down bwd",    "swiglu bwd", "up bwd",
    "gate bwd",    "rmsnorm bwd", "o bwd",     "hybrid bwd",  "fmap bwd",  "rope bwd",
    "q,k,v bwd",   "rmsnorm bwd",
};

static const enum op seq_forward[] = {OP_NORM1, OP_Q,     OP_K,    OP_V,      OP_ROPE,
                                      OP_ATTN,  OP_O,     OP_NORM2, OP_GATE,  OP_UP,
                                      OP_SWIGLU, OP_DOWN};
static const enum op seq_stage1[] = {OP_NORM1,   OP_Q,       OP_K,     OP_V,       OP_ROPE,
                                     OP_ATTN,    OP_FMAP,    OP_HYB_FWD, OP_MSE,   OP_HYB_BWD1,
                                     OP_FMAP_BWD1, OP_O,     OP_NORM2, OP_GATE,    OP_UP,
                                     OP_SWIGLU,  OP_DOWN};
static const enum op seq_stage2[] = {
    OP_SAVE_IN, OP_NORM1,    OP_Q,       OP_K,     OP_V,       OP_ROPE,  OP_FMAP,
    OP_HYB_FWD2, OP_O2,      OP_SAVE_MID, OP_NORM2, OP_GATE,    OP_UP,    OP_SWIGLU,
    OP_DOWN,    OP_B_DOWN,   OP_B_SWIGLU, OP_B_UP, OP_B_GATE,  OP_B_NORM2, OP_B_O,
    OP_B_HYB,   OP_B_FMAP,   OP_B_ROPE,  OP_B_QKV, OP_B_NORM1};

struct layer {
    int T;
    struct lc_attn_shape s;
    void *wq, *wk, *wv, *wo, *wg, *wu, *wd; /* bf16 [out, in] */
    float *n1, *n2;                          /* fp32 [C] */
    float *fwq, *fwk, *theta;                /* feature maps [H, D, f], window factors [H] */
    float *dfwq, *dfwk, *dtheta;             /* their gradients */
    float *cos_tab, *sin_tab;                /* [T, D/2] */
    int32_t *pos;                            /* [T] */
    float *h, *h_in, *h_mid;                 /* residual stream [T, C] and saved copies */
    float *xn, *rstd1, *rstd2;               /* [T, C], [T], [T] */
    float *q, *k, *v, *att;                  /* [T, H*D], [T, Hkv*D] x2, [T, H*D] */
    float *fq, *fk, *ys, *dys, *mx, *den;    /* [T, H*F] x2, [T, H*D] x2, [T, H] x2 */
    float *dfq, *dfk, *row_sse;              /* [T, H*F] x2, [T] */
    float *gate, *up, *act;                  /* [T, FF] */
    float *dh, *dxn, *datt, *dq, *dk, *dv;   /* gradients */
    float *dact, *dgate, *dup;               /* [T, FF] */
};

static float *falloc(size_t n)
{
    return dalloc(n * sizeof(float));
}

static float *upload_f32(const float *host, size_t n)
{
    float *p = lc_be_upload_new(&be, host, n * sizeof(float));
    if (p == NULL) {
        fprintf(stderr, "bench_cuda: out of device memory\n");
        exit(1);
    }
    return p;
}

static void layer_init(struct layer *L, int T)
{
    const size_t t = (size_t)T;
    float *cs = malloc(t * (D_ / 2) * sizeof(float));
    float *sn = malloc(t * (D_ / 2) * sizeof(float));
    int32_t *pos = malloc(t * sizeof(int32_t));
    float *ones = malloc((size_t)C_ * sizeof(float));
    float *th = malloc((size_t)H_ * sizeof(float));

    if (cs == NULL || sn == NULL || pos == NULL || ones == NULL || th == NULL) {
        fprintf(stderr, "bench_cuda: out of memory\n");
        exit(1);
    }
    memset(L, 0, sizeof(*L));
    L->T = T;
    L->s = (struct lc_attn_shape){1, T, H_, HKV_, D_, F_, W_, LC_WINDOW_TERRACED};
    /* uniform(-a, a) with a = 1/sqrt(fan-in): activations stay O(1) */
    L->wq = random_dev(LC_DTYPE_BF16, (size_t)HD_ * C_, 11, 1.0f / 64);
    L->wk = random_dev(LC_DTYPE_BF16, (size_t)KD_ * C_, 12, 1.0f / 64);
    L->wv = random_dev(LC_DTYPE_BF16, (size_t)KD_ * C_, 13, 1.0f / 64);
    L->wo = random_dev(LC_DTYPE_BF16, (size_t)C_ * HD_, 14, 1.0f / 64);
    L->wg = random_dev(LC_DTYPE_BF16, (size_t)FF_ * C_, 15, 1.0f / 64);
    L->wu = random_dev(LC_DTYPE_BF16, (size_t)FF_ * C_, 16, 1.0f / 64);
    L->wd = random_dev(LC_DTYPE_BF16, (size_t)C_ * FF_, 17, 1.0f / 120);
    L->fwq = random_dev(LC_DTYPE_F32, (size_t)H_ * D_ * FD_, 20, 0.1f);
    L->fwk = random_dev(LC_DTYPE_F32, (size_t)H_ * D_ * FD_, 21, 0.1f);
    for (int i = 0; i < C_; i++) {
        ones[i] = 1.0f;
    }
    for (int i = 0; i < H_; i++) {
        th[i] = -2.1972246f; /* sigmoid = 0.1, the initialization */
    }
    L->n1 = upload_f32(ones, C_);
    L->n2 = upload_f32(ones, C_);
    L->theta = upload_f32(th, H_);
    /* Llama 3 RoPE base 500000 (no frequency scaling: timing only) */
    for (int i = 0; i < T; i++) {
        pos[i] = i;
        for (int j = 0; j < D_ / 2; j++) {
            double ang = i * pow(500000.0, -2.0 * j / D_);
            cs[(size_t)i * (D_ / 2) + j] = (float)cos(ang);
            sn[(size_t)i * (D_ / 2) + j] = (float)sin(ang);
        }
    }
    L->cos_tab = upload_f32(cs, t * (D_ / 2));
    L->sin_tab = upload_f32(sn, t * (D_ / 2));
    L->pos = lc_be_upload_new(&be, pos, t * sizeof(int32_t));
    if (L->pos == NULL) {
        fprintf(stderr, "bench_cuda: out of device memory\n");
        exit(1);
    }
    L->h = random_dev(LC_DTYPE_F32, t * C_, 18, 1.0f);
    L->dh = random_dev(LC_DTYPE_F32, t * C_, 19, 1e-3f);
    L->h_in = falloc(t * C_);
    L->h_mid = falloc(t * C_);
    L->xn = falloc(t * C_);
    L->rstd1 = falloc(t);
    L->rstd2 = falloc(t);
    L->q = falloc(t * HD_);
    L->k = falloc(t * KD_);
    L->v = falloc(t * KD_);
    L->att = falloc(t * HD_);
    L->fq = falloc(t * H_ * F_);
    L->fk = falloc(t * H_ * F_);
    L->ys = falloc(t * HD_);
    L->dys = falloc(t * HD_);
    L->mx = falloc(t * H_);
    L->den = falloc(t * H_);
    L->dfq = falloc(t * H_ * F_);
    L->dfk = falloc(t * H_ * F_);
    L->row_sse = falloc(t);
    L->gate = falloc(t * FF_);
    L->up = falloc(t * FF_);
    L->act = falloc(t * FF_);
    L->dxn = falloc(t * C_);
    L->datt = falloc(t * HD_);
    L->dq = falloc(t * HD_);
    L->dk = falloc(t * KD_);
    L->dv = falloc(t * KD_);
    L->dact = falloc(t * FF_);
    L->dgate = falloc(t * FF_);
    L->dup = falloc(t * FF_);
    L->dfwq = falloc((size_t)H_ * D_ * FD_);
    L->dfwk = falloc((size_t)H_ * D_ * FD_);
    L->dtheta = falloc(H_);
    free(cs);
    free(sn);
    free(pos);
    free(ones);
    free(th);
}

static void layer_free(struct layer *L)
{
    void *ps[] = {L->wq,    L->wk,    L->wv,    L->wo,    L->wg,     L->wu,    L->wd,
                  L->n1,    L->n2,    L->fwq,   L->fwk,   L->theta,  L->dfwq,  L->dfwk,
                  L->dtheta, L->cos_tab, L->sin_tab, L->pos, L->h,   L->h_in,  L->h_mid,
                  L->xn,    L->rstd1, L->rstd2, L->q,     L->k,      L->v,     L->att,
                  L->fq,    L->fk,    L->ys,    L->dys,   L->mx,     L->den,   L->dfq,
                  L->dfk,   L->row_sse, L->gate, L->up,   L->act,    L->dh,    L->dxn,
                  L->datt,  L->dq,    L->dk,    L->dv,    L->dact,   L->dgate, L->dup};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        be.ops->release(&be, ps[i]);
    }
}

static void run_op(struct layer *L, enum op op)
{
    const struct lc_backend_ops *o = be.ops;
    const int T = L->T;
    const int64_t nff = (int64_t)T * FF_;
    const float eps = 1e-12f;

    switch (op) {
    case OP_SAVE_IN:
        o->copy(&be, L->h_in, L->h, (size_t)T * C_ * sizeof(float));
        break;
    case OP_NORM1:
        o->rmsnorm_fwd(&be, L->xn, L->rstd1, L->h, L->n1, T, C_, 1e-5f);
        break;
    case OP_Q:
        o->linear_fwd(&be, L->q, L->xn, L->wq, LC_DTYPE_BF16, T, C_, HD_, 0.0f);
        break;
    case OP_K:
        o->linear_fwd(&be, L->k, L->xn, L->wk, LC_DTYPE_BF16, T, C_, KD_, 0.0f);
        break;
    case OP_V:
        o->linear_fwd(&be, L->v, L->xn, L->wv, LC_DTYPE_BF16, T, C_, KD_, 0.0f);
        break;
    case OP_ROPE:
        o->rope_fwd(&be, L->q, L->pos, L->cos_tab, L->sin_tab, T, H_, D_);
        o->rope_fwd(&be, L->k, L->pos, L->cos_tab, L->sin_tab, T, HKV_, D_);
        break;
    case OP_ATTN:
        o->attn_fwd(&be, L->att, L->q, L->k, L->v, 1, T, T, H_, HKV_, D_, 0);
        break;
    case OP_FMAP:
        o->fmap_fwd(&be, L->fq, L->q, L->fwq, T, H_, H_, D_, FD_, eps);
        o->fmap_fwd(&be, L->fk, L->k, L->fwk, T, H_, HKV_, D_, FD_, eps);
        break;
    case OP_HYB_FWD:
        o->hybrid_fwd(&be, L->ys, L->mx, L->den, L->q, L->k, L->v, L->fq, L->fk, L->theta, &L->s);
        break;
    case OP_MSE:
        o->mse_fwd_bwd(&be, L->row_sse, L->dys, L->ys, L->att, T, HD_,
                       (float)(1000.0 / ((double)T * HD_)));
        break;
    case OP_HYB_BWD1:
        o->hybrid_bwd(&be, NULL, NULL, NULL, L->dfq, L->dfk, L->dtheta, L->dys, L->ys, L->mx,
                      L->den, L->q, L->k, L->v, L->fq, L->fk, L->theta, &L->s);
        break;
    case OP_FMAP_BWD1:
        o->fmap_bwd(&be, L->dfwq, NULL, L->dfq, L->q, L->fwq, T, H_, H_, D_, FD_, eps);
        o->fmap_bwd(&be, L->dfwk, NULL, L->dfk, L->k, L->fwk, T, H_, HKV_, D_, FD_, eps);
        break;
    case OP_O:
        o->linear_fwd(&be, L->h, L->att, L->wo, LC_DTYPE_BF16, T, HD_, C_, 1.0f);
        break;
    case OP_SAVE_MID:
        o->copy(&be, L->h_mid, L->h, (size_t)T * C_ * sizeof(float));
        break;
    case OP_NORM2:
        o->rmsnorm_fwd(&be, L->xn, L->rstd2, L->h, L->n2, T, C_, 1e-5f);
        break;
    case OP_GATE:
        o->linear_fwd(&be, L->gate, L->xn, L->wg, LC_DTYPE_BF16, T, C_, FF_, 0.0f);
        break;
    case OP_UP:
        o->linear_fwd(&be, L->up, L->xn, L->wu, LC_DTYPE_BF16, T, C_, FF_, 0.0f);
        break;
    case OP_SWIGLU:
        o->swiglu_fwd(&be, L->act, L->gate, L->up, nff);
        break;
    case OP_DOWN:
        o->linear_fwd(&be, L->h, L->act, L->wd, LC_DTYPE_BF16, T, FF_, C_, 1.0f);
        break;
    case OP_HYB_FWD2:
        o->hybrid_fwd(&be, L->att, L->mx, L->den, L->q, L->k, L->v, L->fq, L->fk, L->theta,
                      &L->s);
        break;
    case OP_O2:
        o->linear_fwd(&be, L->h, L->att, L->wo, LC_DTYPE_BF16, T, HD_, C_, 1.0f);
        break;
    case OP_B_DOWN:
        o->linear_bwd(&be, L->dact, L->dh, L->wd, LC_DTYPE_BF16, T, FF_, C_, 0.0f);
        break;
    case OP_B_SWIGLU:
        o->swiglu_bwd(&be, L->dgate, L->dup, L->dact, L->gate, L->up, nff);
        break;
    case OP_B_UP:
        o->linear_bwd(&be, L->dxn, L->dup, L->wu, LC_DTYPE_BF16, T, C_, FF_, 0.0f);
        break;
    case OP_B_GATE:
        o->linear_bwd(&be, L->dxn, L->dgate, L->wg, LC_DTYPE_BF16, T, C_, FF_, 1.0f);
        break;
    case OP_B_NORM2:
        o->rmsnorm_bwd(&be, L->dh, NULL, L->dxn, L->h_mid, L->n2, L->rstd2, T, C_);
        break;
    case OP_B_O:
        o->linear_bwd(&be, L->datt, L->dh, L->wo, LC_DTYPE_BF16, T, HD_, C_, 0.0f);
        break;
    case OP_B_HYB:
        o->hybrid_bwd(&be, L->dq, L->dk, L->dv, L->dfq, L->dfk, L->dtheta, L->datt, L->att,
                      L->mx, L->den, L->q, L->k, L->v, L->fq, L->fk, L->theta, &L->s);
        break;
    case OP_B_FMAP:
        o->fmap_bwd(&be, L->dfwq, L->dq, L->dfq, L->q, L->fwq, T, H_, H_, D_, FD_, eps);
        o->fmap_bwd(&be, L->dfwk, L->dk, L->dfk, L->k, L->fwk, T, H_, HKV_, D_, FD_, eps);
        break;
    case OP_B_ROPE:
        o->rope_bwd(&be, L->dq, L->pos, L->cos_tab, L->sin_tab, T, H_, D_);
        o->rope_bwd(&be, L->dk, L->pos, L->cos_tab, L->sin_tab, T, HKV_, D_);
        break;
    case OP_B_QKV:
        o->linear_bwd(&be, L->dxn, L->dq, L->wq, LC_DTYPE_BF16, T, C_, HD_, 0.0f);
        o->linear_bwd(&be, L->dxn, L->dk, L->wk, LC_DTYPE_BF16, T, C_, KD_, 1.0f);
        o->linear_bwd(&be, L->dxn, L->dv, L->wv, LC_DTYPE_BF16, T, C_, KD_, 1.0f);
        break;
    case OP_B_NORM1:
        o->rmsnorm_bwd(&be, L->dh, NULL, L->dxn, L->h_in, L->n1, L->rstd1, T, C_);
        break;
    case OP_COUNT:
        break;
    }
}

/* the products an op does: 2 m n k per GEMM */
static double op_flops(int T, enum op op)
{
    const double t = T;
    /* hybrid attention per token and head: near scores and weights times
     * values 8WD, the linear state and its read 4FD (forward); the
     * backward recomputes the scores (4WD), g v^T (4WD), the state and
     * dfq (4FD), the reverse state and dfk (4FD), and for q, k, v the
     * near products 12WD and the linear dv 2FD */
    const double hyb_fwd = t * H_ * (8.0 * W_ * D_ + 4.0 * F_ * D_);
    const double hyb_bwd1 = t * H_ * (8.0 * W_ * D_ + 8.0 * F_ * D_);
    const double hyb_bwd2 = hyb_bwd1 + t * H_ * (12.0 * W_ * D_ + 2.0 * F_ * D_);
    /* one feature-map product: z = x W for every query head */
    const double fmap = 2.0 * t * H_ * D_ * FD_;

    switch (op) {
    case OP_Q:
    case OP_O:
    case OP_O2:
    case OP_B_O:
        return 2 * t * C_ * (double)HD_;
    case OP_K:
    case OP_V:
        return 2 * t * C_ * (double)KD_;
    case OP_B_QKV:
        return 2 * t * C_ * (double)(HD_ + 2 * KD_);
    case OP_GATE:
    case OP_UP:
    case OP_DOWN:
    case OP_B_DOWN:
    case OP_B_UP:
    case OP_B_GATE:
        return 2 * t * C_ * (double)FF_;
    case OP_ATTN:
        /* causal: query i meets i + 1 keys, in Q K^T and in P V */
        return 2.0 * 2.0 * H_ * D_ * (t * (t + 1) / 2);
    case OP_FMAP:
        return 2 * fmap;
    case OP_FMAP_BWD1:
        return 2 * 2 * fmap; /* z again, dW */
    case OP_B_FMAP:
        return 2 * 3 * fmap; /* z again, dW, dx */
    case OP_HYB_FWD:
    case OP_HYB_FWD2:
        return hyb_fwd;
    case OP_HYB_BWD1:
        return hyb_bwd1;
    case OP_B_HYB:
        return hyb_bwd2;
    default:
        return 0; /* norms, RoPE, SwiGLU, MSE, copies: memory-bound, counted as 0 */
    }
}

/* Times one sequence of ops; returns tokens/s and sets *frac (of peak). */
static double bench_seq(struct layer *L, const char *title, const enum op *seq, int nseq,
                        double peak, double *frac)
{
    const int T = L->T;
    cudaEvent_t ev[64];
    double ms[64] = {0};
    double total_ms = 0;
    double total_flops = 0;
    float probe[4];

    for (int i = 0; i <= nseq; i++) {
        CHECK_CUDA(cudaEventCreate(&ev[i]));
    }
    for (int r = 0; r < WARMUPS + repeats; r++) {
        for (int i = 0; i < nseq; i++) {
            CHECK_CUDA(cudaEventRecord(ev[i], ctx()->stream));
            run_op(L, seq[i]);
        }
        CHECK_CUDA(cudaEventRecord(ev[nseq], ctx()->stream));
        sync_or_die(title);
        if (r >= WARMUPS) {
            for (int i = 0; i < nseq; i++) {
                float t = 0;
                CHECK_CUDA(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
                ms[i] += t / repeats;
            }
        }
        /* keep the residual stream and its gradient from growing */
        be.ops->rmsnorm_fwd(&be, L->h, NULL, L->h, L->n1, T, C_, 1e-5f);
        be.ops->zero(&be, L->dfwq, (size_t)H_ * D_ * FD_ * sizeof(float));
        be.ops->zero(&be, L->dfwk, (size_t)H_ * D_ * FD_ * sizeof(float));
    }
    be.ops->download(&be, probe, L->h, sizeof(probe));
    sync_or_die("download");

    printf("\n%s, B = 1, T = %d, attention %s (mean of %d after %d warm-ups)\n", title, T,
           ctx()->attn_bf16 ? "fused bf16" : ctx()->tf32 ? "products in TF32"
                                                         : "products in fp32",
           repeats, WARMUPS);
    printf("  %-12s %9s %9s %8s\n", "op", "ms", "TFLOP/s", "of peak");
    for (int i = 0; i < nseq; i++) {
        double f = op_flops(T, seq[i]);
        total_ms += ms[i];
        total_flops += f;
        if (f > 0) {
            printf("  %-12s %9.3f %9.1f %7.1f%%\n", op_names[seq[i]], ms[i], f / (ms[i] * 1e9),
                   100.0 * f / (ms[i] * 1e9) / peak);
        } else {
            printf("  %-12s %9.3f %9s %8s\n", op_names[seq[i]], ms[i], "-", "-");
        }
    }
    *frac = total_flops / (total_ms * 1e9) / peak;
    printf("  %-12s %9.3f %9.1f %7.1f%%   %.0f tokens/s\n", "layer", total_ms,
           total_flops / (total_ms * 1e9), 100.0 * *frac, T / (total_ms * 1e-3));
    printf("  output h[0..3] = %g %g %g %g (%s)\n", probe[0], probe[1], probe[2], probe[3],
           isfinite(probe[0]) && isfinite(probe[1]) && isfinite(probe[2]) &&
                   isfinite(probe[3])
               ? "finite"
               : "NOT FINITE");
    for (int i = 0; i <= nseq; i++) {
        cudaEventDestroy(ev[i]);
    }
    return T / (total_ms * 1e-3);
}


/* ------------------------------------------------------------ decoding */

#define DEC_WINDOW 64
#define DEC_STEPS 20

/* the per-sequence state of linearized decoding */
struct dec_state {
    int nb;
    float *kc, *vc; /* [nb, 64, Hkv*D] window caches */
    float *S, *z;   /* [nb, H*F*D], [nb, H*F] linear states */
};

/* One decoding step of the layer L (T >= nb rows of activations) for nb
 * sequences; step picks the cache slot written. */
static void dec_step(struct layer *L, struct dec_state *st, int step)
{
    const struct lc_backend_ops *o = be.ops;
    const int nb = st->nb;
    const size_t kd = KD_, hf = (size_t)H_ * F_;
    const float eps = 1e-12f;

    o->rmsnorm_fwd(&be, L->xn, NULL, L->h, L->n1, nb, C_, 1e-5f);
    o->linear_fwd(&be, L->q, L->xn, L->wq, LC_DTYPE_BF16, nb, C_, HD_, 0.0f);
    o->linear_fwd(&be, L->k, L->xn, L->wk, LC_DTYPE_BF16, nb, C_, KD_, 0.0f);
    o->linear_fwd(&be, L->v, L->xn, L->wv, LC_DTYPE_BF16, nb, C_, KD_, 0.0f);
    o->rope_fwd(&be, L->q, L->pos, L->cos_tab, L->sin_tab, nb, H_, D_);
    o->rope_fwd(&be, L->k, L->pos, L->cos_tab, L->sin_tab, nb, HKV_, D_);
    o->fmap_fwd(&be, L->fq, L->q, L->fwq, nb, H_, H_, D_, FD_, eps);
    o->fmap_fwd(&be, L->fk, L->k, L->fwk, nb, H_, HKV_, D_, FD_, eps);
    for (int sq = 0; sq < nb; sq++) {
        float *kc = st->kc + (size_t)sq * DEC_WINDOW * kd;
        float *vc = st->vc + (size_t)sq * DEC_WINDOW * kd;
        const size_t slot = (size_t)(step % DEC_WINDOW);
        /* the key leaving the window (here: this step's, for timing) */
        o->linstate_add(&be, st->S + (size_t)sq * hf * D_, st->z + (size_t)sq * hf,
                        L->fk + (size_t)sq * hf, L->v + (size_t)sq * kd, 1, H_, HKV_, D_, F_);
        o->copy(&be, kc + slot * kd, L->k + (size_t)sq * kd, kd * sizeof(float));
        o->copy(&be, vc + slot * kd, L->v + (size_t)sq * kd, kd * sizeof(float));
        o->hybrid_decode(&be, L->att + (size_t)sq * HD_, L->q + (size_t)sq * HD_,
                         L->fq + (size_t)sq * hf, kc, vc, DEC_WINDOW,
                         st->S + (size_t)sq * hf * D_, st->z + (size_t)sq * hf, L->theta, H_,
                         HKV_, D_, F_);
    }
    o->linear_fwd(&be, L->h, L->att, L->wo, LC_DTYPE_BF16, nb, HD_, C_, 1.0f);
    o->rmsnorm_fwd(&be, L->xn, NULL, L->h, L->n2, nb, C_, 1e-5f);
    o->linear_fwd(&be, L->gate, L->xn, L->wg, LC_DTYPE_BF16, nb, C_, FF_, 0.0f);
    o->linear_fwd(&be, L->up, L->xn, L->wu, LC_DTYPE_BF16, nb, C_, FF_, 0.0f);
    o->swiglu_fwd(&be, L->act, L->gate, L->up, (int64_t)nb * FF_);
    o->linear_fwd(&be, L->h, L->act, L->wd, LC_DTYPE_BF16, nb, FF_, C_, 1.0f);
    /* keep the residual stream bounded */
    o->rmsnorm_fwd(&be, L->h, NULL, L->h, L->n1, nb, C_, 1e-5f);
}

/* ms per decoding step of one layer for nb sequences */
static double bench_decode(int nb)
{
    struct layer L;
    struct dec_state st;
    cudaEvent_t t0;
    cudaEvent_t t1;
    float ms = 0;

    layer_init(&L, DEC_WINDOW > nb ? DEC_WINDOW : nb);
    st.nb = nb;
    st.kc = random_dev(LC_DTYPE_F32, (size_t)nb * DEC_WINDOW * KD_, 30, 1.0f);
    st.vc = random_dev(LC_DTYPE_F32, (size_t)nb * DEC_WINDOW * KD_, 31, 1.0f);
    st.S = random_dev(LC_DTYPE_F32, (size_t)nb * H_ * F_ * D_, 32, 0.01f);
    st.z = random_dev(LC_DTYPE_F32, (size_t)nb * H_ * F_, 33, 1.0f);
    CHECK_CUDA(cudaEventCreate(&t0));
    CHECK_CUDA(cudaEventCreate(&t1));
    for (int r = 0; r < 5; r++) {
        dec_step(&L, &st, r);
    }
    sync_or_die("decode warm-up");
    CHECK_CUDA(cudaEventRecord(t0, ctx()->stream));
    for (int r = 0; r < DEC_STEPS; r++) {
        dec_step(&L, &st, 5 + r);
    }
    CHECK_CUDA(cudaEventRecord(t1, ctx()->stream));
    sync_or_die("decode");
    CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    be.ops->release(&be, st.kc);
    be.ops->release(&be, st.vc);
    be.ops->release(&be, st.S);
    be.ops->release(&be, st.z);
    layer_free(&L);
    return ms / DEC_STEPS;
}

#define NSEQ(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(int argc, char **argv)
{
    static const int Ts[] = {1024, 4096};
    static const struct {
        const char *name;
        const enum op *seq;
        int n;
    } seqs[] = {
        {"Llama-3-8B layer forward (teacher)", seq_forward, NSEQ(seq_forward)},
        {"Llama-3-8B layer, stage 1 (attention transfer)", seq_stage1, NSEQ(seq_stage1)},
        {"Llama-3-8B layer, stage 2 (forward + backward, without LoRA)", seq_stage2,
         NSEQ(seq_stage2)},
    };
    /* the default first */
    static const struct {
        const char *name;
        int bf16, tf32;
    } modes[] = {{"bf16 fused", 1, 0}, {"fp32", 0, 0}, {"TF32", 0, 1}};
    static const char *const short_names[] = {"forward", "stage 1", "stage 2"};
    static const double targets[] = {0.60, 0.40, 0.35}; /* at T = 4096, default attention */
    static const int batches[] = {1, 64};
    struct lc_error err = {0};
    int count = 0;
    double peak;
    double peak_f32;
    double rate[2][3][3];
    double frac[2][3][3];
    double dec_ms[2];

    if (argc > 1) {
        repeats = atoi(argv[1]);
        if (repeats < 1) {
            fprintf(stderr, "usage: bench_cuda [repeats >= 1]\n");
            return 2;
        }
    }
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        fprintf(stderr, "bench_cuda: no CUDA device: skipped\n");
        return 77;
    }
    be.ops = &lc_cuda_ops;
    if (lc_cuda_ops.init(&be, &err) != LC_OK) {
        fprintf(stderr, "bench_cuda: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", be.ops->describe(&be));
    peak = gemm_peak(8192, CUDA_R_16BF);
    peak_f32 = gemm_peak(8192, CUDA_R_32F);
    sync_or_die("gemm peak");
    printf("bf16 GEMM 8192^3, cublasGemmEx, fp32 accumulation: %.1f TFLOP/s with bf16 output "
           "(the peak below), %.1f with fp32 output\n",
           peak, peak_f32);
    fflush(stdout);
    for (int ti = 0; ti < 2; ti++) {
        struct layer L;
        layer_init(&L, Ts[ti]);
        for (int si = 0; si < 3; si++) {
            for (int mi = 0; mi < 3; mi++) {
                ctx()->attn_bf16 = modes[mi].bf16;
                ctx()->tf32 = modes[mi].tf32;
                rate[ti][si][mi] = bench_seq(&L, seqs[si].name, seqs[si].seq, seqs[si].n, peak,
                                             &frac[ti][si][mi]);
                fflush(stdout);
            }
        }
        layer_free(&L);
    }
    /* decoding with the default attention (decode steps run the same
     * kernels either way) */
    ctx()->attn_bf16 = 1;
    ctx()->tf32 = 0;
    for (int bi = 0; bi < 2; bi++) {
        dec_ms[bi] = bench_decode(batches[bi]);
        printf("\nlinearized decoding, one Llama-3-8B-shaped layer, batch %d: %.3f ms per step\n",
               batches[bi], dec_ms[bi]);
        fflush(stdout);
    }

    printf("\nsummary (one Llama-3-8B-shaped layer, B = 1; bf16 GEMM peak %.1f TFLOP/s):\n", peak);
    printf("  %-8s %6s", "", "T");
    for (int mi = 0; mi < 3; mi++) {
        printf(" %10s tok/s %6s", modes[mi].name, "peak");
    }
    printf("\n");
    for (int si = 0; si < 3; si++) {
        for (int ti = 0; ti < 2; ti++) {
            printf("  %-8s %6d", short_names[si], Ts[ti]);
            for (int mi = 0; mi < 3; mi++) {
                printf(" %16.0f %5.1f%%", rate[ti][si][mi], 100.0 * frac[ti][si][mi]);
            }
            printf("\n");
        }
    }
    printf("targets at T = 4096, %s attention:", modes[0].name);
    for (int si = 0; si < 3; si++) {
        printf(" %s %.1f%% (>= %.0f%%: %s)%s", short_names[si], 100.0 * frac[1][si][0],
               100.0 * targets[si], frac[1][si][0] >= targets[si] ? "met" : "NOT met",
               si < 2 ? ";" : "\n");
    }
    for (int bi = 0; bi < 2; bi++) {
        printf("linearized decode, batch %d: %.3f ms per layer step, %.0f tokens/s per layer, "
               "%.0f tokens/s for 32 layers (without embedding and head)\n",
               batches[bi], dec_ms[bi], batches[bi] / (dec_ms[bi] * 1e-3),
               batches[bi] / (32.0 * dec_ms[bi] * 1e-3));
    }
    lc_cuda_ops.fini(&be);
    return 0;
}
