/*
 * The backend table: the only door between the model code (src/core) and
 * the kernels (src/core/ref, src/backend-cpu, src/backend-cuda).
 *
 * Rules every backend follows:
 *  - Pointers passed to compute entries are backend memory from alloc (or,
 *    on backends with host_memory = 1, any host memory, e.g. mmapped
 *    weights).  Core code never dereferences them; it moves data with
 *    upload/download.
 *  - Layouts are row-major.  N = B*T rows of tokens.  Per-token head
 *    tensors are [N, heads, dim]: q is [B, T, H, D], k and v [B, T, Hkv, D].
 *    Query head h reads KV head h / (H / Hkv) (grouped-query attention).
 *  - "=" outputs are overwritten, "+=" outputs accumulated (parameter
 *    gradients, and activation gradients on the residual stream).
 *  - Results must not depend on the number of threads: every reduction
 *    uses a partition fixed by the shapes alone.
 *  - Every entry is mandatory: lc_backend_open() rejects a table with a
 *    NULL entry, so a missing op is an error at init, never a fallback.
 *
 * Dimension names: B batch, T sequence length, C model width, H query
 * heads, Hkv key/value heads, D head dim, f feature-map output dim (64),
 * F = 2f features after the [softmax(z), softmax(-z)] concat, W window,
 * V vocabulary, R LoRA rank.
 *
 * Adding an operation, in this order:
 *  1. its entry in struct lc_backend_ops below (shapes, "=" or "+=",
 *     nullable outputs) and its name in LC_BACKEND_COMPUTE_OPS (backend.c
 *     fails to compile until the list matches the table);
 *  2. the reference kernel in src/core/ref (ref.h, ref_dense_impl.h or
 *     ref_hybrid_impl.h: one template gives the float kernel and its
 *     double twin, lc_ref_*_f64) and its line in ref_backend.c;
 *  3. a finite-difference test of the double twin if it has a backward
 *     (tests/test_kernels_grad.c, test_fmap.c, test_hybrid.c);
 *  4. the cpu entry (src/backend-cpu: cpu_dense.c, cpu_attn.c, cpu_fmap.c
 *     or cpu_hybrid*.c) and its line in cpu_backend.c; an inner loop worth
 *     vectorizing goes into the kernel table of cpu_kernels.h, plain C in
 *     cpu_kernels_generic.c and vectorized in simd/simd_kernels.h;
 *  5. the cuda kernel (src/backend-cuda/k_*.cu, its launcher declared in
 *     cuda_kernels.h) and its line in cuda_backend.c; if the kernel is to
 *     be checked under the CPU emulation of CUDA, its .cu file in
 *     LC_EMU_CU_OBJS (tests/local.mk);
 *  6. one row in tests/test_backend_ops.c (input maker, the call, the
 *     tolerance of each output, the double reference where there is one):
 *     it then runs on every backend, instruction set and the emulation,
 *     and that test fails, naming the entry, until the row is there.
 */
#ifndef LC_CORE_BACKEND_H
#define LC_CORE_BACKEND_H

#include <stdint.h>
#include <stddef.h>

#include "lolcats/lolcats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_BACKEND_ABI 1

/* Shapes of one hybrid-attention call (one layer). */
struct lc_attn_shape {
    int B, T;     /* batch and sequence length */
    int H, Hkv;   /* query heads, key/value heads (H % Hkv == 0) */
    int D;        /* head dim */
    int F;        /* feature dim of phi(q), phi(k): 2f */
    int window;   /* W >= 1 */
    int mode;     /* enum lc_window_mode */
};

struct lc_backend;

struct lc_backend_ops {
    const char *name;
    int abi;          /* LC_BACKEND_ABI */
    int host_memory;  /* 1: backend pointers are host pointers */

    lc_status (*init)(struct lc_backend *be, struct lc_error *err);
    void (*fini)(struct lc_backend *be);
    /* one line for --verbose: kernels, threads, device */
    const char *(*describe)(struct lc_backend *be);

    /* ------------------------------------------------------------- memory */
    /* zero-filled; NULL when out of memory */
    void *(*alloc)(struct lc_backend *be, size_t bytes);
    void (*release)(struct lc_backend *be, void *p);
    void (*upload)(struct lc_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(struct lc_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(struct lc_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(struct lc_backend *be, void *dst, size_t bytes);
    /* wait for queued work; report an asynchronous failure */
    lc_status (*sync)(struct lc_backend *be, struct lc_error *err);

    /* ------------------------------------------------------ dense algebra */
    /* C[M,N] = alpha * op(A) op(B) + beta * C, fp32, row-major; op(A) is
     * A[M,K] (lda >= K) or, with ta, A stored as [K,M] (lda >= M); op(B)
     * is B[K,N] (ldb >= N) or, with tb, B stored as [N,K] (ldb >= K). */
    void (*gemm)(struct lc_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
    /* linear layer: y[N,M] = x[N,K] w[M,K]^T + beta * y; w in its file
     * dtype (F32, F16 or BF16), converted on the fly, fp32 accumulation */
    void (*linear_fwd)(struct lc_backend *be, float *y, const float *x, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);
    /* its input gradient: dx[N,K] = dy[N,M] w[M,K] + beta * dx */
    void (*linear_bwd)(struct lc_backend *be, float *dx, const float *dy, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);
    /* y += x */
    void (*add)(struct lc_backend *be, float *y, const float *x, int64_t n);
    /* y = x * keep / (1 - p) where keep = (u(seed, i) >= p), u uniform in
     * [0,1) from a counter-based hash of (seed, i); the same call on dy
     * gives the backward.  y may alias x. */
    void (*dropout)(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                    uint64_t seed);

    /* --------------------------------------------------- embedding, norms */
    /* out[N,C] = table[ids[n], :]; table [V,C] in its file dtype */
    void (*embedding_fwd)(struct lc_backend *be, float *out, const int32_t *ids,
                          const void *table, enum lc_dtype ttype, int N, int C);
    /* dtable[ids[n], :] += dout[n, :] (fp32 table gradient) */
    void (*embedding_bwd)(struct lc_backend *be, float *dtable, const float *dout,
                          const int32_t *ids, int N, int C, int V);
    /* out = w * x / sqrt(mean(x^2) + eps) per row; rstd[N] (nullable) keeps
     * 1/sqrt(mean(x^2) + eps) for the backward */
    void (*rmsnorm_fwd)(struct lc_backend *be, float *out, float *rstd, const float *x,
                        const float *w, int N, int C, float eps);
    /* dx += d/dx, dw += d/dw (dw nullable) */
    void (*rmsnorm_bwd)(struct lc_backend *be, float *dx, float *dw, const float *dout,
                        const float *x, const float *w, const float *rstd, int N, int C);

    /* --------------------------------------------------------------- RoPE */
    /* In place on x[N, nh, D], Hugging Face rotate-half layout: for i < D/2,
     * (x[i], x[i+D/2]) is rotated by the angle whose cos/sin are
     * cos_tab[pos[n]*(D/2) + i], sin_tab[...].  pos[N] is backend memory. */
    void (*rope_fwd)(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);
    /* the transpose (inverse rotation), for gradients */
    void (*rope_bwd)(struct lc_backend *be, float *dx, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);

    /* -------------------------------------------------------------- SwiGLU */
    /* out = silu(gate) * up */
    void (*swiglu_fwd)(struct lc_backend *be, float *out, const float *gate, const float *up,
                       int64_t n);
    /* dgate, dup = (overwritten) */
    void (*swiglu_bwd)(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t n);

    /* ------------------------------------------------- softmax attention */
    /* The teacher: causal softmax attention with scale 1/sqrt(D).
     * y[B,Tq,H,D], q[B,Tq,H,D], k,v[B,Tk,Hkv,D]; query i sits at absolute
     * position q_pos0 + i and sees keys 0 .. q_pos0 + i (< Tk). */
    void (*attn_fwd)(struct lc_backend *be, float *y, const float *q, const float *k,
                     const float *v, int B, int Tq, int Tk, int H, int Hkv, int D, int q_pos0);

    /* ------------------------------------------------- Hedgehog features */
    /* phi[N,H,2f] = clamp_min([softmax(z), softmax(-z)], eps) with
     * z = x_h W[h] (W [H,D,f]); x is [N,Hx,D], Hx = H for queries, Hkv for
     * keys (head h reads x head h / (H/Hx)) */
    void (*fmap_fwd)(struct lc_backend *be, float *phi, const float *x, const float *W,
                     int N, int H, int Hx, int D, int f, float eps);
    /* dW += dL/dW; dx += dL/dx (nullable; [N,Hx,D], summed over the heads
     * that read one x head).  Gradient passes the clamp where the
     * pre-clamp value is >= eps. */
    void (*fmap_bwd)(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps);

    /* -------------------------------------------------- hybrid attention */
    /* y[B,T,H,D]: window softmax weighted by sigmoid(theta[h]) plus linear
     * attention phi(q).phi(k) over older keys, one shared denominator,
     * stabilized by the max over the window scores only (method doc 3.3).
     * fq, fk [B,T,H,F].  mx, den [B,T,H] (nullable) keep the stabilizer
     * and the denominator for the backward. */
    void (*hybrid_fwd)(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s);
    /* dq[B,T,H,D], dk, dv [B,T,Hkv,D], dfq, dfk [B,T,H,F] are overwritten
     * (each nullable: not computed); dtheta[H] +=.  dq and dk include the
     * path through the window max (routed to the argmax key, split evenly
     * among ties). */
    void (*hybrid_bwd)(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s);
    /* Cross-entropy between the teacher's softmax attention weights and the
     * student's normalized hybrid weights (quadratic form, method doc 4.1):
     * row_loss[B,T,H] = -sum_j A_true[i,j] log(max(A_pred[i,j], 1e-12)).
     * Accumulates grad_scale * d(sum of row_loss)/d(.) into dfq, dfk, dtheta. */
    void (*hybrid_xent)(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s);

    /* ---------------------------------------- constant-memory decoding */
    /* One query token per call (B = 1, T = 1).  y[H,D] from q[H,D],
     * fq[H,F], the window cache kc, vc [ncache, Hkv, D] (the keys of the
     * current window, any order) and the linear state S[H,F,D], z[H,F]. */
    void (*hybrid_decode)(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F);
    /* S[h] += sum_r fk[r,h]^T v[r, h/(H/Hkv)], z[h] += sum_r fk[r,h];
     * fk [n,H,F], v [n,Hkv,D] */
    void (*linstate_add)(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F);
    /* A chunk that starts after position 0 runs hybrid_fwd as a sequence
     * of its own, from the first cached key on; this adds the linear
     * state of the keys before those: per row and head,
     * y = (y * den + fq S) / (den + fq . z), with y [n,H,D] and den [n,H]
     * what hybrid_fwd returned, fq [n,H,F], S [H,F,D], z [H,F]. */
    void (*hybrid_add_state)(struct lc_backend *be, float *y, const float *den, const float *fq,
                             const float *S, const float *z, int n, int H, int D, int F);

    /* ------------------------------------------------------------ losses */
    /* row_sse[rows] = sum_c (pred - target)^2; dpred (nullable, =) =
     * grad_scale * 2 * (pred - target) */
    void (*mse_fwd_bwd)(struct lc_backend *be, float *row_sse, float *dpred, const float *pred,
                        const float *target, int64_t rows, int cols, float grad_scale);
    /* row_loss[N] = logsumexp(logits[n]) - logits[n, targets[n]] (0 where
     * targets[n] < 0); dlogits (nullable, may alias logits) =
     * grad_scale * (softmax - onehot), 0 on ignored rows */
    void (*xent_fwd_bwd)(struct lc_backend *be, float *row_loss, float *dlogits,
                         const float *logits, const int32_t *targets, int N, int V,
                         float grad_scale);

    /* --------------------------------------------------------- optimizer */
    /* PyTorch AdamW on a flat fp32 arena: p *= 1 - lr*wd; m, v moments;
     * p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
     * The hyperparameters are doubles, as PyTorch's Python floats are: the
     * scalars (1 - beta2, the bias corrections) are formed in double and
     * only then rounded to fp32 (1 - 0.999f is off by 5e-5 relative). */
    void (*adamw)(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                  int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                  int64_t step);
};

/* The compute entries above, in table order, for code that walks them by
 * name: lc_backend_ops_missing and the test of every entry on every
 * backend (tests/test_backend_ops.c, one row per entry).  backend.c checks
 * at compile time that the list covers the table. */
#define LC_BACKEND_COMPUTE_OPS(X)                                              \
    X(gemm) X(linear_fwd) X(linear_bwd) X(add) X(dropout) X(embedding_fwd)     \
    X(embedding_bwd) X(rmsnorm_fwd) X(rmsnorm_bwd) X(rope_fwd) X(rope_bwd)     \
    X(swiglu_fwd) X(swiglu_bwd) X(attn_fwd) X(fmap_fwd) X(fmap_bwd)            \
    X(hybrid_fwd) X(hybrid_bwd) X(hybrid_xent) X(hybrid_decode)                \
    X(linstate_add) X(hybrid_add_state) X(mse_fwd_bwd) X(xent_fwd_bwd) X(adamw)

struct lc_backend {
    const struct lc_backend_ops *ops;
    void *ctx;                 /* backend private state */
    char description[256];     /* filled by describe() */
};

/* The tables built into this library. */
extern const struct lc_backend_ops lc_ref_ops;
extern const struct lc_backend_ops lc_cpu_ops;
#ifdef LC_HAVE_CUDA
extern const struct lc_backend_ops lc_cuda_ops;
#endif

/* Checks that every entry of a table is set (NULL: all set; otherwise the
 * name of the first missing entry). */
const char *lc_backend_ops_missing(const struct lc_backend_ops *ops);

/* Convenience: allocate and upload; NULL when out of memory. */
void *lc_be_upload_new(struct lc_backend *be, const void *host, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* LC_CORE_BACKEND_H */
