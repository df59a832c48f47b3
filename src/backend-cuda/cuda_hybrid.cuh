/*
 * Helpers of the attention-student kernels (k_fmap.cu, k_hybrid.cu,
 * k_hybrid_xent.cu, k_decode.cu): row-major strided-batched SGEMM, the
 * block geometry of the hybrid attention, and the head-major padded
 * layout its block products run on.
 *
 * The block algorithm is the one of the cpu backend (cpu_hybrid.c): query
 * block t (rows tW ..) meets its "near" keys, blocks t-1 and t, through
 * window softmax (sliding mode: part of block t-1 linearly), and all keys
 * of blocks <= t-2 through the linear state S = sum fk^T v, z = sum fk.
 * Here every block of every (batch, query head) is computed at once: each
 * block product is one batched GEMM, the state before each block is a
 * prefix sum over per-block states, and the per-row work (masks, softmax,
 * normalization) is done by kernels with one thread per row.
 *
 * Head-major padded layout of a per-token tensor of width dim: head bh =
 * b*H + h owns P = (nblk + 1) * W rows; its first W rows are zero (the
 * "block -1" that block 0 sees as its previous block), token i is row
 * W + i, and the rows after the last token are zero.  The buffer starts
 * with one more zero block of W rows before head 0, and "base" points
 * after it.  Row block u of head bh (u = 0 .. nblk, token block t = u - 1)
 * then starts at base + (bh * (nblk + 1) + u) * W * dim: one constant
 * stride W * dim over all (head, block) pairs, and the near keys of row
 * block u are the 2W rows starting one block earlier.  Row block u = 0 is
 * padding; the kernels zero what is computed for it and for padded rows
 * (inputs there are zero), so it never reaches an output.  Keys and values
 * are stored per query head (repeated over the GQA group).
 *
 * Kernels here have independent threads (no shared memory, no
 * synchronization inside a block) and fp32 products; k_hybrid_tile.cu
 * runs the same algorithm as fused bf16 tile kernels.  Reductions run in
 * a fixed order (a thread's own loop, or a GEMM), never with atomics.
 */
#ifndef LC_BACKEND_CUDA_CUDA_HYBRID_CUH
#define LC_BACKEND_CUDA_CUDA_HYBRID_CUH

#include "backend-cuda/cuda_common.cuh"

/* cuBLAS runs at most this many products per batched call here */
#define LC_HY_MAX_BATCH 32768

/* Row-major C_i = alpha op(A_i) op(B_i) + beta C_i for i < batch, with
 * X_i = X + i * sX; the shapes as in lc_cuda_gemm (backend.h's gemm).
 * K must be positive. */
static inline const char *lc_hy_gemm(struct lc_cuda_ctx *c, int ta, int tb, int M, int N, int K,
                                     float alpha, const float *A, int lda, long long sA,
                                     const float *B, int ldb, long long sB, float beta, float *C,
                                     int ldc, long long sC, long long batch)
{
    if (M <= 0 || N <= 0 || batch <= 0) {
        return NULL;
    }
    if (K <= 0) {
        return "internal error: a block product with K = 0";
    }
    for (long long i0 = 0; i0 < batch; i0 += LC_HY_MAX_BATCH) {
        long long nb = batch - i0 < LC_HY_MAX_BATCH ? batch - i0 : LC_HY_MAX_BATCH;
        /* column-major C^T = op(B)^T op(A)^T */
        const char *e = lc_cuda_sgemm_sb(c, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, alpha,
                                         B + i0 * sB, ldb, sB, A + i0 * sA, lda, sA, beta,
                                         C + i0 * sC, ldc, sC, (int)nb);
        if (e != NULL) {
            return e;
        }
    }
    return NULL;
}

/* blocks of a grid-stride loop over n items with LC_CUDA_EW_THREADS */
static inline unsigned lc_hy_blocks(int64_t n)
{
    return lc_cuda_ew_blocks(n);
}

/* grid-stride loop over [0, n) */
#define LC_HY_FOR(idx, n)                                                           \
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < (n); \
         idx += (int64_t)gridDim.x * blockDim.x)

/* The first window key of query i (core/ref/ref.h, lc_window_start). */
__host__ __device__ static inline int lc_hy_window_start(int i, int W, int mode)
{
    int lo = mode == LC_WINDOW_SLIDING ? i - W + 1 : (i / W - 1) * W;
    return lo > 0 ? lo : 0;
}

struct lc_hy_geom {
    int B, T, H, Hkv, rep, D, F;
    int W;       /* the window, at most T (the same sets: every key is near) */
    int mode;
    int nblk;    /* token blocks: ceil(T / W) */
    int nu;      /* row blocks per head: nblk + 1 */
    int BH;      /* B * H */
    int64_t P;   /* rows per head: nu * W */
    int64_t nb;  /* row blocks over all heads: BH * nu */
    int64_t rows; /* rows of a head-major buffer: W + BH * P */
};

static inline struct lc_hy_geom lc_hy_geom_of(const struct lc_attn_shape *s)
{
    struct lc_hy_geom g;

    g.B = s->B;
    g.T = s->T;
    g.H = s->H;
    g.Hkv = s->Hkv;
    g.rep = s->H / s->Hkv;
    g.D = s->D;
    g.F = s->F;
    g.W = s->window < s->T ? s->window : s->T;
    g.mode = s->mode;
    g.nblk = (int)(((int64_t)s->T + g.W - 1) / g.W);
    g.nu = g.nblk + 1;
    g.BH = s->B * s->H;
    g.P = (int64_t)g.nu * g.W;
    g.nb = (int64_t)g.BH * g.nu;
    g.rows = g.W + (int64_t)g.BH * g.P;
    return g;
}

/* Carves device scratch: floats rounded up to 256 bytes per piece. */
static inline size_t lc_hy_round(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static inline float *lc_hy_take(float **p, size_t n)
{
    float *r = *p;
    *p += lc_hy_round(n);
    return r;
}

/* dst (the whole head-major buffer, leading block included) <- src [B, T,
 * nsrc, dim], head h of batch b reading source head h / (H / nsrc), and
 * zeros on the padding rows */
static __global__ void k_hy_pack(float *dst, const float *src, struct lc_hy_geom g, int nsrc,
                                 int dim)
{
    const int64_t n = g.rows * dim;
    const int per = g.H / nsrc;

    LC_HY_FOR(idx, n)
    {
        const int64_t row = idx / dim - g.W; /* from base */
        const int e = (int)(idx % dim);
        float x = 0.0f;

        if (row >= 0) {
            const int64_t bh = row / g.P;
            const int64_t i = row % g.P - g.W;
            if (i >= 0 && i < g.T) {
                const int64_t b = bh / g.H;
                const int h = (int)(bh % g.H);
                x = src[((b * g.T + i) * nsrc + h / per) * dim + e];
            }
        }
        dst[idx] = x;
    }
}

/* dst [B, T, H, dim] (= or +=) <- src head-major (base pointer) */
static __global__ void k_hy_unpack(float *dst, const float *src, struct lc_hy_geom g, int dim,
                                   int accumulate)
{
    const int64_t n = (int64_t)g.B * g.T * g.H * dim;

    LC_HY_FOR(idx, n)
    {
        int64_t rest = idx / dim;
        int e = (int)(idx % dim);
        int h = (int)(rest % g.H);
        int64_t bi = rest / g.H;
        int i = (int)(bi % g.T);
        int b = (int)(bi / g.T);
        float x = src[(((int64_t)b * g.H + h) * g.P + g.W + i) * dim + e];
        dst[idx] = accumulate ? dst[idx] + x : x;
    }
}

/* Lag-2 scan over the row blocks of each head, per element e < per of
 * X [BH, nu, per]: forward, X[u] <- sum of X[v] for v <= u - 2 (the
 * linear state a query block sees); reverse, X[u] <- sum for v >= u + 2
 * (the query blocks for which a key block is linear).  Sums in block
 * order. */
static __global__ void k_hy_scan2(float *X, int64_t per, int BH, int nu, int reverse)
{
    const int64_t n = (int64_t)BH * per;

    LC_HY_FOR(idx, n)
    {
        int64_t bh = idx / per;
        int64_t e = idx % per;
        float run = 0.0f;
        float prev = 0.0f;

        for (int k = 0; k < nu; k++) {
            int u = reverse ? nu - 1 - k : k;
            float *p = X + (bh * nu + u) * per + e;
            float cur = *p;
            *p = run;
            run += prev;
            prev = cur;
        }
    }
}

/* z[blk, e] = sum over the W rows of row block blk of X (base pointer,
 * width F), weighted by wrow[row] when wrow is not NULL (rows numbered
 * blk * W + r, the same numbering as the head-major rows from base). */
static __global__ void k_hy_block_colsum(float *z, const float *X, const float *wrow,
                                         const float *wrow2, int64_t nblocks, int W, int F)
{
    const int64_t n = nblocks * F;

    LC_HY_FOR(idx, n)
    {
        int64_t blk = idx / F;
        int e = (int)(idx % F);
        float acc = 0.0f;

        for (int r = 0; r < W; r++) {
            int64_t row = blk * W + r;
            float x = X[row * F + e];
            if (wrow != NULL) {
                x = x * (wrow[row] * wrow2[row]);
            }
            acc += x;
        }
        z[idx] = acc;
    }
}

/* dtheta[h] += (1 - gamma) * sum over batches and rows of thr (rows from
 * base, head-major; summed in double, batch by batch, row by row) */
static __global__ void k_hy_dtheta(float *dtheta, const float *thr, const float *theta,
                                   struct lc_hy_geom g)
{
    LC_HY_FOR(h, g.H)
    {
        const double gamma = 1.0 / (1.0 + exp(-(double)theta[h]));
        double sum = 0.0;

        for (int b = 0; b < g.B; b++) {
            const float *p = thr + ((int64_t)b * g.H + h) * g.P + g.W;
            for (int i = 0; i < g.T; i++) {
                sum += p[i];
            }
        }
        dtheta[h] += (float)(sum * (1.0 - gamma));
    }
}

static inline const char *lc_hy_zero(struct lc_cuda_ctx *c, float *p, size_t n)
{
    cudaError_t e = cudaMemsetAsync(p, 0, n * sizeof(float), c->stream);
    return e == cudaSuccess ? NULL : cudaGetErrorString(e);
}

/* fills the head-major buffer dst (g->rows rows of dim floats) from src */
static inline const char *lc_hy_pack(struct lc_cuda_ctx *c, float *dst, const float *src,
                                     const struct lc_hy_geom *g, int nsrc, int dim)
{
    LC_LAUNCH(k_hy_pack, lc_hy_blocks(g->rows * dim), LC_CUDA_EW_THREADS, c->stream)(dst, src,
                                                                                    *g, nsrc, dim);
    return lc_cuda_launched();
}

/* dst [B, T, H, dim] (= or, with accumulate, +=) <- the head-major src
 * (base pointer) */
static inline const char *lc_hy_unpack(struct lc_cuda_ctx *c, float *dst, const float *src,
                                       const struct lc_hy_geom *g, int dim, int accumulate)
{
    LC_LAUNCH(k_hy_unpack, lc_hy_blocks((int64_t)g->B * g->T * g->H * dim), LC_CUDA_EW_THREADS,
              c->stream)
    (dst, src, *g, dim, accumulate);
    return lc_cuda_launched();
}

/* The lag-2 scans (k_hy_scan2, forward or reverse) of a state S [BH, nu,
 * F, D] and of its normalizer z [BH, nu, F]. */
static inline const char *lc_hy_scan_state(struct lc_cuda_ctx *c, float *S, float *z,
                                           const struct lc_hy_geom *g, int reverse)
{
    const int F = g->F, D = g->D;
    const char *err;

    LC_LAUNCH(k_hy_scan2, lc_hy_blocks((int64_t)g->BH * F * D), LC_CUDA_EW_THREADS, c->stream)
    (S, (int64_t)F * D, g->BH, g->nu, reverse);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_hy_scan2, lc_hy_blocks((int64_t)g->BH * F), LC_CUDA_EW_THREADS, c->stream)
    (z, (int64_t)F, g->BH, g->nu, reverse);
    return lc_cuda_launched();
}

/* k_hy_block_colsum over all row blocks (nb) into z */
static inline const char *lc_hy_colsum(struct lc_cuda_ctx *c, float *z, const float *X,
                                       const float *wrow, const float *wrow2,
                                       const struct lc_hy_geom *g)
{
    LC_LAUNCH(k_hy_block_colsum, lc_hy_blocks(g->nb * g->F), LC_CUDA_EW_THREADS, c->stream)
    (z, X, wrow, wrow2, g->nb, g->W, g->F);
    return lc_cuda_launched();
}

/* dtheta += the window factors' gradient from the per-row thr (k_hy_dtheta) */
static inline const char *lc_hy_dtheta(struct lc_cuda_ctx *c, float *dtheta, const float *thr,
                                       const float *theta, const struct lc_hy_geom *g)
{
    LC_LAUNCH(k_hy_dtheta, lc_hy_blocks(g->H), LC_CUDA_EW_THREADS, c->stream)
    (dtheta, thr, theta, *g);
    return lc_cuda_launched();
}

/* one input of a kernel, packed head-major: dst <- src [B, T, nsrc, dim] */
struct lc_hy_input {
    float *dst;
    const float *src;
    int nsrc;
    int dim;
};

/* lc_hy_pack of the n inputs in turn; the first failure, or NULL */
static inline const char *lc_hy_pack_all(struct lc_cuda_ctx *c, const struct lc_hy_geom *g,
                                         const struct lc_hy_input *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *err = lc_hy_pack(c, in[i].dst, in[i].src, g, in[i].nsrc, in[i].dim);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

#endif /* LC_BACKEND_CUDA_CUDA_HYBRID_CUH */
