/*
 * The "cuda" backend: the table, device memory, and error reporting.  The
 * kernels are in the .cu files beside this one (cuda_kernels.h).
 *
 * One device (the first one CUDA lists: choose with CUDA_VISIBLE_DEVICES),
 * one stream, one cuBLAS handle per backend.  Everything is queued on the
 * stream in call order; upload and download wait for their copy, so host
 * buffers can be reused as soon as they return.  The entries return
 * nothing, so a failure to launch is kept (the first one) and reported by
 * the next sync, together with any fault of the queued work.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cuda/cuda_kernels.h"
#include "core/util.h"

static struct lc_cuda_ctx *ctx_of(struct lc_backend *be)
{
    return (struct lc_cuda_ctx *)be->ctx;
}

/* keep the first failure until the next sync */
static void note(struct lc_cuda_ctx *c, const char *op, const char *msg)
{
    if (msg != NULL && c->fail_op == NULL) {
        c->fail_op = op;
        snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", msg);
    }
}

static void note_cuda(struct lc_cuda_ctx *c, const char *op, cudaError_t e)
{
    if (e != cudaSuccess) {
        note(c, op, cudaGetErrorString(e));
    }
}

void *lc_cuda_scratch(struct lc_cuda_ctx *c, size_t bytes)
{
    size_t want;

    if (bytes <= c->scratch_bytes && c->scratch != NULL) {
        return c->scratch;
    }
    /* queued work may still read the old buffer */
    note_cuda(c, "queued work", cudaStreamSynchronize(c->stream));
    if (c->scratch != NULL) {
        cudaFree(c->scratch);
        c->scratch = NULL;
        c->scratch_bytes = 0;
    }
    /* whole MiB, so that slowly growing requests do not reallocate often */
    if (!lc_add_size(bytes, ((size_t)1 << 20) - 1, &want)) {
        return NULL;
    }
    want &= ~(((size_t)1 << 20) - 1);
    if (cudaMalloc(&c->scratch, want) != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is not sticky: clear it */
        c->scratch = NULL;
        return NULL;
    }
    c->scratch_bytes = want;
    return c->scratch;
}

/* ------------------------------------------------------------ lifetime */

static void ctx_free(struct lc_cuda_ctx *c)
{
    if (c == NULL) {
        return;
    }
    if (c->stream != NULL) {
        cudaStreamSynchronize(c->stream);
    }
    if (c->cublas != NULL) {
        cublasDestroy(c->cublas);
    }
    if (c->scratch != NULL) {
        cudaFree(c->scratch);
    }
    if (c->stream != NULL) {
        cudaStreamDestroy(c->stream);
    }
    free(c);
}

static lc_status cuda_init(struct lc_backend *be, struct lc_error *err)
{
    struct lc_cuda_ctx *c = NULL;
    int count = 0;
    cudaError_t e;
    cublasStatus_t s;
    const char *what = NULL;
    const char *why = NULL;

    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        return lc_err_set(err, LC_ERR_BACKEND, "no CUDA device: %s",
                          e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists none");
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory initializing the cuda backend");
    }
    c->device = 0;
    if ((e = cudaSetDevice(c->device)) != cudaSuccess) {
        what = "selecting device 0";
        why = cudaGetErrorString(e);
        goto fail;
    }
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        c->stream = NULL;
        what = "creating a stream";
        why = cudaGetErrorString(e);
        goto fail;
    }
    if ((s = cublasCreate(&c->cublas)) != CUBLAS_STATUS_SUCCESS) {
        c->cublas = NULL;
        what = "starting cuBLAS";
        why = cublasGetStatusString(s);
        goto fail;
    }
    /* the default math mode: fp32 SGEMM stays fp32 (no TF32) */
    if ((s = cublasSetStream(c->cublas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
        what = "configuring cuBLAS";
        why = cublasGetStatusString(s);
        goto fail;
    }
    if ((why = lc_cuda_probe()) != NULL) {
        what = "loading the kernels (built for a newer GPU?)";
        goto fail;
    }
    {
        const char *tf32 = getenv("LC_CUDA_TF32");
        const char *attn = getenv("LC_CUDA_ATTN");
        c->tf32 = tf32 != NULL && strcmp(tf32, "1") == 0;
        c->attn_bf16 = 1;
        if (attn != NULL && *attn != '\0') {
            if (strcmp(attn, "fp32") == 0) {
                c->attn_bf16 = 0;
            } else if (strcmp(attn, "bf16") != 0) {
                what = "reading LC_CUDA_ATTN";
                why = "its value must be bf16 or fp32";
                goto fail;
            }
        }
    }
    be->ctx = c;
    return LC_OK;

fail:
    ctx_free(c);
    (void)cudaGetLastError();
    return lc_err_set(err, LC_ERR_BACKEND, "cuda: %s: %s", what, why);
}

static void cuda_fini(struct lc_backend *be)
{
    ctx_free(ctx_of(be));
    be->ctx = NULL;
}

static const char *cuda_describe(struct lc_backend *be)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    struct cudaDeviceProp prop;
    int runtime = 0;
    int driver = 0;
    int major = 0;
    int minor = 0;
    int patch = 0;

    if (cudaGetDeviceProperties(&prop, c->device) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(be->description, sizeof(be->description), "cuda: device %d (no properties)",
                 c->device);
        return be->description;
    }
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    snprintf(be->description, sizeof(be->description),
             "cuda: %.80s (sm_%d%d, %d SMs, %.1f GiB), CUDA runtime %d.%d, driver %d.%d, "
             "cuBLAS %d.%d.%d, attention %s",
             prop.name, prop.major % 100, prop.minor % 100, prop.multiProcessorCount,
             (double)prop.totalGlobalMem / (double)(1u << 30), runtime / 1000,
             runtime % 1000 / 10, driver / 1000, driver % 1000 / 10, major, minor, patch,
             c->attn_bf16 ? "on bf16 tensor cores (fused kernels)"
             : c->tf32    ? "products in TF32"
                          : "products in fp32");
    return be->description;
}

/* -------------------------------------------------------------- memory */

/* zero-filled, in whole 256-byte units (cudaMalloc's own alignment), at
 * least one so that a 0-byte request still gets a distinct pointer */
static void *cuda_alloc(struct lc_backend *be, size_t bytes)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    void *p = NULL;
    size_t rounded;

    if (!lc_add_size(bytes, 255, &rounded)) {
        return NULL;
    }
    rounded &= ~(size_t)255;
    if (rounded == 0) {
        rounded = 256;
    }
    if (cudaMalloc(&p, rounded) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    if (cudaMemsetAsync(p, 0, rounded, c->stream) != cudaSuccess) {
        (void)cudaGetLastError();
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_release(struct lc_backend *be, void *p)
{
    struct lc_cuda_ctx *c = ctx_of(be);

    if (p == NULL) {
        return;
    }
    /* queued work may still use p */
    note_cuda(c, "queued work", cudaStreamSynchronize(c->stream));
    note_cuda(c, "release", cudaFree(p));
}

static void cuda_upload(struct lc_backend *be, void *dst, const void *host_src, size_t bytes)
{
    struct lc_cuda_ctx *c = ctx_of(be);

    if (bytes == 0) {
        return;
    }
    note_cuda(c, "upload",
              cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->stream));
    note_cuda(c, "upload", cudaStreamSynchronize(c->stream));
}

static void cuda_download(struct lc_backend *be, void *host_dst, const void *src, size_t bytes)
{
    struct lc_cuda_ctx *c = ctx_of(be);

    if (bytes == 0) {
        return;
    }
    note_cuda(c, "download",
              cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    note_cuda(c, "download", cudaStreamSynchronize(c->stream));
}

/* memmove semantics: overlapping ranges go through the scratch buffer */
static void cuda_copy(struct lc_backend *be, void *dst, const void *src, size_t bytes)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    const char *d = dst;
    const char *s = src;

    if (bytes == 0 || dst == src) {
        return;
    }
    if (d < s + bytes && s < d + bytes) {
        void *tmp = lc_cuda_scratch(c, bytes);
        if (tmp == NULL) {
            note(c, "copy", "out of device memory for an overlapping copy");
            return;
        }
        note_cuda(c, "copy", cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
        src = tmp;
    }
    note_cuda(c, "copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
}

static void cuda_zero(struct lc_backend *be, void *dst, size_t bytes)
{
    struct lc_cuda_ctx *c = ctx_of(be);

    if (bytes > 0) {
        note_cuda(c, "zero", cudaMemsetAsync(dst, 0, bytes, c->stream));
    }
}

static lc_status cuda_sync(struct lc_backend *be, struct lc_error *err)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    lc_status rc;

    note_cuda(c, "queued work", cudaStreamSynchronize(c->stream));
    if (c->fail_op == NULL) {
        return LC_OK;
    }
    rc = lc_err_set(err, LC_ERR_BACKEND, "cuda: %s: %s", c->fail_op, c->fail_msg);
    c->fail_op = NULL;
    c->fail_msg[0] = '\0';
    return rc;
}

/* ------------------------------------------------------- dense algebra */

static void cuda_gemm(struct lc_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    note(c, "gemm", lc_cuda_gemm(c, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}

static void cuda_linear_fwd(struct lc_backend *be, float *y, const float *x, const void *w,
                            enum lc_dtype wtype, int N, int K, int M, float beta)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    note(c, "linear_fwd", lc_cuda_linear(c, 0, y, x, w, wtype, N, K, M, beta));
}

static void cuda_linear_bwd(struct lc_backend *be, float *dx, const float *dy, const void *w,
                            enum lc_dtype wtype, int N, int K, int M, float beta)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    note(c, "linear_bwd", lc_cuda_linear(c, 1, dx, dy, w, wtype, N, K, M, beta));
}

static void cuda_add(struct lc_backend *be, float *y, const float *x, int64_t n)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (n > 0) {
        note(c, "add", lc_cuda_add(c, y, x, n));
    }
}

static void cuda_dropout(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                         uint64_t seed)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (n > 0) {
        note(c, "dropout", lc_cuda_dropout(c, y, x, n, p, seed));
    }
}

/* ------------------------------------------------------ embedding, norms */

static void cuda_embedding_fwd(struct lc_backend *be, float *out, const int32_t *ids,
                               const void *table, enum lc_dtype ttype, int N, int C)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && C > 0) {
        note(c, "embedding_fwd", lc_cuda_embedding_fwd(c, out, ids, table, ttype, N, C));
    }
}

static void cuda_embedding_bwd(struct lc_backend *be, float *dtable, const float *dout,
                               const int32_t *ids, int N, int C, int V)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && C > 0) {
        note(c, "embedding_bwd", lc_cuda_embedding_bwd(c, dtable, dout, ids, N, C, V));
    }
}

static void cuda_rmsnorm_fwd(struct lc_backend *be, float *out, float *rstd, const float *x,
                             const float *w, int N, int C, float eps)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && C > 0) {
        note(c, "rmsnorm_fwd", lc_cuda_rmsnorm_fwd(c, out, rstd, x, w, N, C, eps));
    }
}

static void cuda_rmsnorm_bwd(struct lc_backend *be, float *dx, float *dw, const float *dout,
                             const float *x, const float *w, const float *rstd, int N, int C)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && C > 0) {
        note(c, "rmsnorm_bwd", lc_cuda_rmsnorm_bwd(c, dx, dw, dout, x, w, rstd, N, C));
    }
}

/* ---------------------------------------------------------- RoPE, SwiGLU */

static void cuda_rope_fwd(struct lc_backend *be, float *x, const int32_t *pos,
                          const float *cos_tab, const float *sin_tab, int N, int nh, int D)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && nh > 0 && D >= 2) {
        note(c, "rope_fwd", lc_cuda_rope(c, x, pos, cos_tab, sin_tab, N, nh, D, 0));
    }
}

static void cuda_rope_bwd(struct lc_backend *be, float *dx, const int32_t *pos,
                          const float *cos_tab, const float *sin_tab, int N, int nh, int D)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && nh > 0 && D >= 2) {
        note(c, "rope_bwd", lc_cuda_rope(c, dx, pos, cos_tab, sin_tab, N, nh, D, 1));
    }
}

static void cuda_swiglu_fwd(struct lc_backend *be, float *out, const float *gate,
                            const float *up, int64_t n)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (n > 0) {
        note(c, "swiglu_fwd", lc_cuda_swiglu_fwd(c, out, gate, up, n));
    }
}

static void cuda_swiglu_bwd(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, int64_t n)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (n > 0) {
        note(c, "swiglu_bwd", lc_cuda_swiglu_bwd(c, dgate, dup, dout, gate, up, n));
    }
}

/* ------------------------------------------------------ softmax attention */

static void cuda_attn_fwd(struct lc_backend *be, float *y, const float *q, const float *k,
                          const float *v, int B, int Tq, int Tk, int H, int Hkv, int D,
                          int q_pos0)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (Hkv < 1 || H % Hkv != 0) {
        note(c, "attn_fwd", "H is not a multiple of Hkv");
        return;
    }
    note(c, "attn_fwd", lc_cuda_attn_fwd(c, y, q, k, v, B, Tq, Tk, H, Hkv, D, q_pos0));
}

/* ------------------------------------------------- Hedgehog features */

static int fmap_shape_ok(struct lc_cuda_ctx *c, const char *op, int N, int H, int Hx, int D, int f)
{
    if (N < 0 || H < 1 || Hx < 1 || H % Hx != 0 || D < 1 || f < 1) {
        note(c, op, "bad shape (H must be a positive multiple of Hx; D, f >= 1)");
        return 0;
    }
    return N > 0;
}

static void cuda_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W,
                          int N, int H, int Hx, int D, int f, float eps)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (fmap_shape_ok(c, "fmap_fwd", N, H, Hx, D, f)) {
        note(c, "fmap_fwd", lc_cuda_fmap_fwd(c, phi, x, W, N, H, Hx, D, f, eps));
    }
}

static void cuda_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                          const float *x, const float *W, int N, int H, int Hx, int D, int f,
                          float eps)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (fmap_shape_ok(c, "fmap_bwd", N, H, Hx, D, f)) {
        note(c, "fmap_bwd", lc_cuda_fmap_bwd(c, dW, dx, dphi, x, W, N, H, Hx, D, f, eps));
    }
}

/* -------------------------------------------------- hybrid attention */

/* 1: run; 0: nothing to do (an empty batch); a bad shape is noted */
static int attn_shape_ok(struct lc_cuda_ctx *c, const char *op, const struct lc_attn_shape *s)
{
    if (s->B < 0 || s->T < 0 || s->H < 1 || s->Hkv < 1 || s->H % s->Hkv != 0 || s->D < 1 ||
        s->F < 1 || s->window < 1 ||
        (s->mode != LC_WINDOW_TERRACED && s->mode != LC_WINDOW_SLIDING)) {
        note(c, op, "bad shape (H a positive multiple of Hkv; D, F, window >= 1; a known "
                    "window mode)");
        return 0;
    }
    return s->B > 0 && s->T > 0;
}

static void cuda_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den,
                            const float *q, const float *k, const float *v, const float *fq,
                            const float *fk, const float *theta, const struct lc_attn_shape *s)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (attn_shape_ok(c, "hybrid_fwd", s)) {
        note(c, "hybrid_fwd", lc_cuda_hybrid_fwd(c, y, mx, den, q, k, v, fq, fk, theta, s));
    }
}

static void cuda_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                            float *dfk, float *dtheta, const float *dy, const float *y,
                            const float *mx, const float *den, const float *q, const float *k,
                            const float *v, const float *fq, const float *fk, const float *theta,
                            const struct lc_attn_shape *s)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (attn_shape_ok(c, "hybrid_bwd", s)) {
        note(c, "hybrid_bwd", lc_cuda_hybrid_bwd(c, dq, dk, dv, dfq, dfk, dtheta, dy, y, mx, den,
                                                 q, k, v, fq, fk, theta, s));
    }
}

static void cuda_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                             float *dtheta, float grad_scale, const float *q, const float *k,
                             const float *fq, const float *fk, const float *theta,
                             const struct lc_attn_shape *s)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (attn_shape_ok(c, "hybrid_xent", s)) {
        note(c, "hybrid_xent", lc_cuda_hybrid_xent(c, row_loss, dfq, dfk, dtheta, grad_scale, q,
                                                   k, fq, fk, theta, s));
    }
}

/* ------------------------------------------- constant-memory decoding */

static int decode_shape_ok(struct lc_cuda_ctx *c, const char *op, int n, int H, int Hkv, int D,
                           int F)
{
    if (n < 0 || H < 1 || Hkv < 1 || H % Hkv != 0 || D < 1 || F < 1) {
        note(c, op, "bad shape (H a positive multiple of Hkv; D, F >= 1)");
        return 0;
    }
    return 1;
}

static void cuda_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                               const float *kc, const float *vc, int ncache, const float *S,
                               const float *z, const float *theta, int H, int Hkv, int D, int F)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (decode_shape_ok(c, "hybrid_decode", ncache, H, Hkv, D, F)) {
        note(c, "hybrid_decode",
             lc_cuda_hybrid_decode(c, y, q, fq, kc, vc, ncache, S, z, theta, H, Hkv, D, F));
    }
}

static void cuda_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                              const float *v, int n, int H, int Hkv, int D, int F)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (decode_shape_ok(c, "linstate_add", n, H, Hkv, D, F) && n > 0) {
        note(c, "linstate_add", lc_cuda_linstate_add(c, S, z, fk, v, n, H, Hkv, D, F));
    }
}

static void cuda_hybrid_add_state(struct lc_backend *be, float *y, const float *den,
                                  const float *fq, const float *S, const float *z, int n, int H,
                                  int D, int F)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (decode_shape_ok(c, "hybrid_add_state", n, H, 1, D, F) && n > 0) {
        note(c, "hybrid_add_state", lc_cuda_hybrid_add_state(c, y, den, fq, S, z, n, H, D, F));
    }
}

/* --------------------------------------------------------------- losses */

static void cuda_mse_fwd_bwd(struct lc_backend *be, float *row_sse, float *dpred,
                             const float *pred, const float *target, int64_t rows, int cols,
                             float grad_scale)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (rows > 0) {
        note(c, "mse_fwd_bwd",
             lc_cuda_mse_fwd_bwd(c, row_sse, dpred, pred, target, rows, cols, grad_scale));
    }
}

static void cuda_xent_fwd_bwd(struct lc_backend *be, float *row_loss, float *dlogits,
                              const float *logits, const int32_t *targets, int N, int V,
                              float grad_scale)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    if (N > 0 && V > 0) {
        note(c, "xent_fwd_bwd",
             lc_cuda_xent_fwd_bwd(c, row_loss, dlogits, logits, targets, N, V, grad_scale));
    }
}

/* ------------------------------------------------------------ optimizer */

/* The scalars as PyTorch forms them: in double (Python floats), rounded
 * to fp32 where they meet the tensors. */
static void cuda_adamw(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                       int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                       int64_t step)
{
    struct lc_cuda_ctx *c = ctx_of(be);
    double bc1 = 1 - pow(beta1, (double)step);
    double bc2 = 1 - pow(beta2, (double)step);
    struct lc_cuda_adamw_scalars s;

    if (n <= 0) {
        return;
    }
    s.decay = (float)(1 - lr * wd);
    s.w1 = (float)(1 - beta1);
    s.beta1 = (float)beta1;
    s.lerp_first = 1 - beta1 < 0.5;
    s.beta2 = (float)beta2;
    s.w2 = (float)(1 - beta2);
    s.neg_step = (float)(-(lr / bc1));
    s.bc2_sqrt = (float)sqrt(bc2);
    s.eps = (float)eps;
    note(c, "adamw", lc_cuda_adamw(c, p, g, m, v, n, &s));
}

const struct lc_backend_ops lc_cuda_ops = {
    .name = "cuda",
    .abi = LC_BACKEND_ABI,
    .host_memory = 0,
    .init = cuda_init,
    .fini = cuda_fini,
    .describe = cuda_describe,

    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .zero = cuda_zero,
    .sync = cuda_sync,

    .gemm = cuda_gemm,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd = cuda_linear_bwd,
    .add = cuda_add,
    .dropout = cuda_dropout,
    .embedding_fwd = cuda_embedding_fwd,
    .embedding_bwd = cuda_embedding_bwd,
    .rmsnorm_fwd = cuda_rmsnorm_fwd,
    .rmsnorm_bwd = cuda_rmsnorm_bwd,
    .rope_fwd = cuda_rope_fwd,
    .rope_bwd = cuda_rope_bwd,
    .swiglu_fwd = cuda_swiglu_fwd,
    .swiglu_bwd = cuda_swiglu_bwd,
    .attn_fwd = cuda_attn_fwd,
    .mse_fwd_bwd = cuda_mse_fwd_bwd,
    .xent_fwd_bwd = cuda_xent_fwd_bwd,
    .fmap_fwd = cuda_fmap_fwd,
    .fmap_bwd = cuda_fmap_bwd,
    .hybrid_fwd = cuda_hybrid_fwd,
    .hybrid_bwd = cuda_hybrid_bwd,
    .hybrid_xent = cuda_hybrid_xent,
    .hybrid_decode = cuda_hybrid_decode,
    .linstate_add = cuda_linstate_add,
    .hybrid_add_state = cuda_hybrid_add_state,
    .adamw = cuda_adamw,
};
