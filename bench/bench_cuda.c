/*
 * bench_cuda: how close the cuda backend comes to the GPU's bf16 GEMM peak.
 *
 * Prints the rate of cublasGemmEx at 8192^3 (bf16 inputs, fp32
 * accumulation; bf16 and fp32 outputs) as the peak, then times the forward
 * of one Llama-3-8B-shaped layer (hidden 4096, 32 heads, 8 KV heads, head
 * dim 128, FFN 14336, bf16 weights, B = 1, T = 1024 and 4096) through the
 * backend entries: rmsnorm, q/k/v, RoPE, attention, o, rmsnorm, gate/up,
 * SwiGLU, down.  Per operation and in total: milliseconds, TFLOP/s and the
 * fraction of the peak, and tokens/s.  The weights are random, made on the
 * device.  Times are CUDA events around the backend calls on its stream,
 * the mean over the timed repeats after two warm-ups.
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

enum { C_ = 4096, H_ = 32, HKV_ = 8, D_ = 128, F_ = 14336 };

enum op {
    OP_NORM1, OP_Q, OP_K, OP_V, OP_ROPE, OP_ATTN, OP_O, OP_NORM2, OP_GATE, OP_UP, OP_SWIGLU,
    OP_DOWN, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "rmsnorm", "q", "k", "v", "rope q,k", "attention", "o (+res)", "rmsnorm", "gate", "up",
    "swiglu", "down (+res)",
};

struct layer {
    int T;
    void *wq, *wk, *wv, *wo, *wg, *wu, *wd; /* bf16 [out, in] */
    float *n1, *n2;                          /* fp32 [C] */
    float *cos_tab, *sin_tab;                /* [T, D/2] */
    int32_t *pos;                            /* [T] */
    float *h;                                /* residual stream [T, C] */
    float *xn, *q, *k, *v, *att;             /* [T, C], [T, H*D], [T, Hkv*D] x2, [T, H*D] */
    float *gate, *up;                        /* [T, F] */
};

static void layer_init(struct layer *L, int T)
{
    float *cs = malloc((size_t)T * (D_ / 2) * sizeof(float));
    float *sn = malloc((size_t)T * (D_ / 2) * sizeof(float));
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    float *ones = malloc((size_t)C_ * sizeof(float));

    if (cs == NULL || sn == NULL || pos == NULL || ones == NULL) {
        fprintf(stderr, "bench_cuda: out of memory\n");
        exit(1);
    }
    memset(L, 0, sizeof(*L));
    L->T = T;
    /* uniform(-a, a) with a = 1/sqrt(fan-in): activations stay O(1) */
    L->wq = random_dev(LC_DTYPE_BF16, (size_t)H_ * D_ * C_, 11, 1.0f / 64);
    L->wk = random_dev(LC_DTYPE_BF16, (size_t)HKV_ * D_ * C_, 12, 1.0f / 64);
    L->wv = random_dev(LC_DTYPE_BF16, (size_t)HKV_ * D_ * C_, 13, 1.0f / 64);
    L->wo = random_dev(LC_DTYPE_BF16, (size_t)C_ * H_ * D_, 14, 1.0f / 64);
    L->wg = random_dev(LC_DTYPE_BF16, (size_t)F_ * C_, 15, 1.0f / 64);
    L->wu = random_dev(LC_DTYPE_BF16, (size_t)F_ * C_, 16, 1.0f / 64);
    L->wd = random_dev(LC_DTYPE_BF16, (size_t)C_ * F_, 17, 1.0f / 120);
    for (int i = 0; i < C_; i++) {
        ones[i] = 1.0f;
    }
    L->n1 = lc_be_upload_new(&be, ones, (size_t)C_ * sizeof(float));
    L->n2 = lc_be_upload_new(&be, ones, (size_t)C_ * sizeof(float));
    /* Llama 3 RoPE base 500000 (no frequency scaling: timing only) */
    for (int t = 0; t < T; t++) {
        pos[t] = t;
        for (int i = 0; i < D_ / 2; i++) {
            double ang = t * pow(500000.0, -2.0 * i / D_);
            cs[(size_t)t * (D_ / 2) + i] = (float)cos(ang);
            sn[(size_t)t * (D_ / 2) + i] = (float)sin(ang);
        }
    }
    L->cos_tab = lc_be_upload_new(&be, cs, (size_t)T * (D_ / 2) * sizeof(float));
    L->sin_tab = lc_be_upload_new(&be, sn, (size_t)T * (D_ / 2) * sizeof(float));
    L->pos = lc_be_upload_new(&be, pos, (size_t)T * sizeof(int32_t));
    if (L->n1 == NULL || L->n2 == NULL || L->cos_tab == NULL || L->sin_tab == NULL ||
        L->pos == NULL) {
        fprintf(stderr, "bench_cuda: out of device memory\n");
        exit(1);
    }
    L->h = random_dev(LC_DTYPE_F32, (size_t)T * C_, 18, 1.0f);
    L->xn = dalloc((size_t)T * C_ * sizeof(float));
    L->q = dalloc((size_t)T * H_ * D_ * sizeof(float));
    L->k = dalloc((size_t)T * HKV_ * D_ * sizeof(float));
    L->v = dalloc((size_t)T * HKV_ * D_ * sizeof(float));
    L->att = dalloc((size_t)T * H_ * D_ * sizeof(float));
    L->gate = dalloc((size_t)T * F_ * sizeof(float));
    L->up = dalloc((size_t)T * F_ * sizeof(float));
    free(cs);
    free(sn);
    free(pos);
    free(ones);
}

static void layer_free(struct layer *L)
{
    void *ps[] = {L->wq, L->wk, L->wv,  L->wo, L->wg, L->wu,   L->wd,   L->n1,  L->n2,
                  L->cos_tab, L->sin_tab, L->pos, L->h,  L->xn, L->q,   L->k, L->v, L->att,
                  L->gate, L->up};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        be.ops->release(&be, ps[i]);
    }
}

static void run_op(struct layer *L, enum op op)
{
    const struct lc_backend_ops *o = be.ops;
    int T = L->T;

    switch (op) {
    case OP_NORM1:
        o->rmsnorm_fwd(&be, L->xn, NULL, L->h, L->n1, T, C_, 1e-5f);
        break;
    case OP_Q:
        o->linear_fwd(&be, L->q, L->xn, L->wq, LC_DTYPE_BF16, T, C_, H_ * D_, 0.0f);
        break;
    case OP_K:
        o->linear_fwd(&be, L->k, L->xn, L->wk, LC_DTYPE_BF16, T, C_, HKV_ * D_, 0.0f);
        break;
    case OP_V:
        o->linear_fwd(&be, L->v, L->xn, L->wv, LC_DTYPE_BF16, T, C_, HKV_ * D_, 0.0f);
        break;
    case OP_ROPE:
        o->rope_fwd(&be, L->q, L->pos, L->cos_tab, L->sin_tab, T, H_, D_);
        o->rope_fwd(&be, L->k, L->pos, L->cos_tab, L->sin_tab, T, HKV_, D_);
        break;
    case OP_ATTN:
        o->attn_fwd(&be, L->att, L->q, L->k, L->v, 1, T, T, H_, HKV_, D_, 0);
        break;
    case OP_O:
        o->linear_fwd(&be, L->h, L->att, L->wo, LC_DTYPE_BF16, T, H_ * D_, C_, 1.0f);
        break;
    case OP_NORM2:
        o->rmsnorm_fwd(&be, L->xn, NULL, L->h, L->n2, T, C_, 1e-5f);
        break;
    case OP_GATE:
        o->linear_fwd(&be, L->gate, L->xn, L->wg, LC_DTYPE_BF16, T, C_, F_, 0.0f);
        break;
    case OP_UP:
        o->linear_fwd(&be, L->up, L->xn, L->wu, LC_DTYPE_BF16, T, C_, F_, 0.0f);
        break;
    case OP_SWIGLU:
        o->swiglu_fwd(&be, L->gate, L->gate, L->up, (int64_t)T * F_);
        break;
    case OP_DOWN:
        o->linear_fwd(&be, L->h, L->gate, L->wd, LC_DTYPE_BF16, T, F_, C_, 1.0f);
        break;
    case OP_COUNT:
        break;
    }
}

static double op_flops(int T, enum op op)
{
    double t = T;
    switch (op) {
    case OP_Q:
    case OP_O:
        return 2 * t * C_ * (double)(H_ * D_);
    case OP_K:
    case OP_V:
        return 2 * t * C_ * (double)(HKV_ * D_);
    case OP_GATE:
    case OP_UP:
    case OP_DOWN:
        return 2 * t * C_ * (double)F_;
    case OP_ATTN:
        /* causal: query i meets i + 1 keys, in Q K^T and in P V */
        return 2.0 * 2.0 * H_ * D_ * (t * (t + 1) / 2);
    default:
        return 0; /* norms, RoPE, SwiGLU: memory-bound, counted as 0 */
    }
}

static void bench_layer(int T, double peak)
{
    struct layer L;
    cudaEvent_t ev[OP_COUNT + 1];
    double ms[OP_COUNT] = {0};
    double total_ms = 0;
    double total_flops = 0;
    float probe[4];

    layer_init(&L, T);
    for (int i = 0; i <= OP_COUNT; i++) {
        CHECK_CUDA(cudaEventCreate(&ev[i]));
    }
    for (int r = 0; r < WARMUPS + repeats; r++) {
        for (int op = 0; op < OP_COUNT; op++) {
            CHECK_CUDA(cudaEventRecord(ev[op], ctx()->stream));
            run_op(&L, (enum op)op);
        }
        CHECK_CUDA(cudaEventRecord(ev[OP_COUNT], ctx()->stream));
        sync_or_die("layer forward");
        if (r >= WARMUPS) {
            for (int op = 0; op < OP_COUNT; op++) {
                float t = 0;
                CHECK_CUDA(cudaEventElapsedTime(&t, ev[op], ev[op + 1]));
                ms[op] += t / repeats;
            }
        }
        /* keep the residual stream from growing over the repeats */
        be.ops->rmsnorm_fwd(&be, L.h, NULL, L.h, L.n1, T, C_, 1e-5f);
    }
    be.ops->download(&be, probe, L.h, sizeof(probe));
    sync_or_die("download");

    printf("\nLlama-3-8B layer forward, B = 1, T = %d, bf16 weights (mean of %d after %d "
           "warm-ups)\n",
           T, repeats, WARMUPS);
    printf("  %-12s %9s %9s %8s\n", "op", "ms", "TFLOP/s", "of peak");
    for (int op = 0; op < OP_COUNT; op++) {
        double f = op_flops(T, (enum op)op);
        total_ms += ms[op];
        total_flops += f;
        if (f > 0) {
            printf("  %-12s %9.3f %9.1f %7.1f%%\n", op_names[op], ms[op], f / (ms[op] * 1e9),
                   100.0 * f / (ms[op] * 1e9) / peak);
        } else {
            printf("  %-12s %9.3f %9s %8s\n", op_names[op], ms[op], "-", "-");
        }
    }
    printf("  %-12s %9.3f %9.1f %7.1f%%   %.0f tokens/s\n", "layer", total_ms,
           total_flops / (total_ms * 1e9), 100.0 * total_flops / (total_ms * 1e9) / peak,
           T / (total_ms * 1e-3));
    printf("  output h[0..3] = %g %g %g %g (%s)\n", probe[0], probe[1], probe[2], probe[3],
           isfinite(probe[0]) && isfinite(probe[1]) && isfinite(probe[2]) &&
                   isfinite(probe[3])
               ? "finite"
               : "NOT FINITE");
    for (int i = 0; i <= OP_COUNT; i++) {
        cudaEventDestroy(ev[i]);
    }
    layer_free(&L);
}

int main(int argc, char **argv)
{
    struct lc_error err = {0};
    int count = 0;
    double peak;
    double peak_f32;

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
    /* the table directly: lc_backend_open would refuse it while entries
     * this benchmark does not use are missing */
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
    bench_layer(1024, peak);
    bench_layer(4096, peak);
    lc_cuda_ops.fini(&be);
    return 0;
}
