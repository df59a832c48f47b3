/*
 * Hybrid window attention, forward and backward, as fused tile kernels on
 * the bf16 tensor cores, for a 64-token window (the default): the
 * formulas of core/ref/ref_hybrid_impl.h and the block algorithm of
 * cuda_hybrid.cuh, with the window as the tile.
 *
 * Tile t of a (batch, query head) holds queries 64t .. 64t + 63; its
 * "near" keys are tiles t-1 and t (128 keys, column c = key - 64 (t-1)),
 * which it meets through the window softmax (sliding mode: the part of
 * tile t-1 before a query's window through the linear weights fq . fk),
 * and all keys of tiles <= t-2 through the linear state
 *   S_t = sum over tiles u <= t-2 of fk_u^T v_u  [F, D],  z_t = sum fk.
 * One block of four warps owns one tile, each warp 16 query rows: the
 * tile's q, k, v and feature maps are rounded to bf16 into shared memory,
 * the scores, weights and products stay in registers and shared memory,
 * and only the outputs leave.  The states come from per-tile products
 * (k_ht_state, one block per tile) and a lag-2 prefix over the tiles
 * (k_ht_scan), the same algorithm as the fp32 path, so every tile runs at
 * once.
 *
 * Forward, per tile (k_ht_fwd):
 *   y = fq S_t, dz = fq . z_t                      (t >= 2)
 *   m = max over the window of scale q k^T         (scores recomputed
 *                                                   below, same bits)
 *   w = gamma exp(scale q k^T - m) on the window, fq fk^T on near linear
 *       keys (sliding), 0 elsewhere
 *   y += w V_near, Z = sum w + dz, y = y / Z
 * Backward (k_ht_bwd_q per query tile: dq, dfq, and the tile's weight
 * gradients for the key side; k_ht_bwd_kv per KV head and key tile: dk,
 * dv summed over the grouped heads; k_ht_bwd_fk per key tile: dfk), with
 * delta = dy . y and G = (dy . v - delta) / Z, as the reference; the
 * reverse state R_u = sum over query tiles t >= u + 2 of (fq / Z)^T dy
 * gives the old keys' parts of dfk (v R^T - r) and dv (fk R).
 *
 * Products take bf16 operands with fp32 accumulation (mma.m16n8k16): the
 * inputs, the weights w / Z, the score gradients and the states are
 * rounded to bf16 where they enter one, so results carry about 2^-8
 * relative error per term; everything else -- maxima, exponentials,
 * denominators, delta, the window-max ties -- is fp32 as in the fp32
 * path.  Sums have an order fixed by the shapes, and no atomics: the
 * same inputs give the same bits.
 */
#include "backend-cuda/cuda_hybrid.cuh"
#include "backend-cuda/cuda_mma.cuh"

#define HT_ROWS 64     /* queries per tile = the window */
#define HT_NEAR 128    /* near keys per tile */
#define HT_THREADS 128 /* four warps, 16 query rows each */
#define HT_LDC (HT_NEAR + 4) /* fp32 staging rows */
#define HT_LDL (HT_ROWS + 4)


/* -------------------------------------------------------------- helpers */

/* Rows [r0, r0 + n) of head hs of src [B, T, nh, dim] (fp32), times
 * rscale[row] (nullable; indexed by the row), rounded to bf16 into dst
 * rows ld apart, DPAD columns; rows outside [0, T) and columns >= dim are
 * zero.  All threads of the block take part. */
template <int DPAD>
__device__ static void ht_load(uint16_t *dst, int ld, const float *src, int b, int T, int nh,
                               int hs, int dim, int r0, int n, const float *rscale)
{
    for (int idx = (int)threadIdx.x; idx < n * DPAD; idx += (int)blockDim.x) {
        const int r = idx / DPAD, d = idx % DPAD, i = r0 + r;
        float x = 0.0f;
        if (i >= 0 && i < T && d < dim) {
            x = src[(((int64_t)b * T + i) * nh + hs) * dim + d];
            if (rscale != NULL) {
                x *= rscale[i];
            }
        }
        dst[r * ld + d] = lc_bf16_bits(x);
    }
}

/* n rows of DPAD bf16 from a dense array (rows DPAD apart) into rows ld
 * apart */
template <int DPAD>
__device__ static void ht_copy(uint16_t *dst, int ld, const uint16_t *src, int n)
{
    for (int idx = (int)threadIdx.x; idx < n * (DPAD / 8); idx += (int)blockDim.x) {
        const int r = idx / (DPAD / 8), c8 = (idx % (DPAD / 8)) * 8;
        lc_copy16(dst + r * ld + c8, src + (int64_t)r * DPAD + c8);
    }
}

/* c[NT][4] = 0 */
template <int NT> __device__ static inline void ht_zero(float (*c)[4])
{
    for (int n = 0; n < NT; n++) {
        c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.0f;
    }
}

/* c += A B for the warp's 16 output rows and NT * 8 columns, K = KS * 16:
 * A [16][K] stored row-major at A (AT = 0, rows lda apart) or as its
 * transpose At[k][m] (AT = 1); B [K][NT * 8] stored with k adjacent,
 * Bt[n][k] (BN = 1, rows ldb apart), or row-major, B[k][n] (BN = 0). */
template <int NT, int KS, int AT, int BN>
__device__ static inline void ht_mma(float (*c)[4], const uint16_t *A, int lda,
                                     const uint16_t *Bm, int ldb)
{
    for (int kk = 0; kk < KS; kk++) {
        uint32_t a[4];
        if (AT) {
            lc_frag_a_t(a, A + kk * 16 * lda, lda);
        } else {
            lc_frag_a(a, A + kk * 16, lda);
        }
        for (int nt = 0; nt < NT; nt++) {
            uint32_t bf[2];
            if (BN) {
                lc_frag_b(bf, Bm + nt * 8 * ldb + kk * 16, ldb);
            } else {
                lc_frag_b_t(bf, Bm + kk * 16 * ldb + nt * 8, ldb);
            }
            lc_mma_16816(c[nt], a, bf);
        }
    }
}

/* x rounded to bf16: the near weights as they enter the products, in
 * the denominators too, so that y is the exact average of the values
 * under the weights it was computed with (and the backward's sums that
 * vanish in exact arithmetic vanish to fp32 rounding) */
__device__ static inline float ht_round(float x)
{
    return lc_bf16_value(lc_bf16_bits(x));
}

__device__ static inline float ht_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* ----------------------------------------------------- per-tile states */

/* One block per (head bh, tile u): U [bh, u] = A_u^T B_u (fp32 [FP][DP])
 * and zs [bh, u] = the column sums of A_u weighted by zw (nullable;
 * head-major rows [BH][T]), where A_u = rows of head h of a [B, T, nha,
 * F] times ascale (nullable, head-major) and B_u = rows of head h / (H /
 * nhb) of bsrc [B, T, nhb, D], both rounded to bf16.  Forward state: A =
 * fk, B = v; reverse state: A = fq / Z, B = dy, zw = delta. */
template <int DP, int FP>
static __global__ void __launch_bounds__(HT_THREADS)
    k_ht_state(float *U, float *zs, const float *asrc, int nha, const float *ascale,
               const float *zw, const float *bsrc, int nhb, struct lc_hy_geom g)
{
    constexpr int LD = DP + 8, LDF = FP + 8;
    uint16_t *As = LC_DYN_SMEM(uint16_t); /* [64][LDF] */
    uint16_t *Bs = As + HT_ROWS * LDF;    /* [64][LD] */
    const int bh = (int)(blockIdx.x / (unsigned)g.nblk), u = (int)(blockIdx.x % (unsigned)g.nblk);
    const int b = bh / g.H, h = bh % g.H;
    const int warp = (int)(threadIdx.x >> 5);
    const int64_t tile = (int64_t)bh * g.nblk + u;
    const float *asc = ascale != NULL ? ascale + (int64_t)bh * g.T : NULL;
    const float *zwr = zw != NULL ? zw + (int64_t)bh * g.T : NULL;

    ht_load<FP>(As, LDF, asrc, b, g.T, nha, h / (g.H / nha), g.F, u * HT_ROWS, HT_ROWS, asc);
    ht_load<DP>(Bs, LD, bsrc, b, g.T, nhb, h / (g.H / nhb), g.D, u * HT_ROWS, HT_ROWS, NULL);
    __syncthreads();
    /* the column sums, each in row order */
    for (int e = (int)threadIdx.x; e < FP; e += HT_THREADS) {
        float acc = 0.0f;
        for (int r = 0; r < HT_ROWS; r++) {
            const int i = u * HT_ROWS + r;
            float x = lc_bf16_value(As[r * LDF + e]);
            if (zwr != NULL) {
                x *= i < g.T ? zwr[i] : 0.0f;
            }
            acc += x;
        }
        zs[tile * FP + e] = acc;
    }
    /* warp w: output rows (features) 16 mt .. for mt = w, w + 4, ... */
    for (int mt = warp; mt < FP / 16; mt += 4) {
        float c[DP / 8][4];
        ht_zero<DP / 8>(c);
        ht_mma<DP / 8, HT_ROWS / 16, 1, 0>(c, As + mt * 16, LDF, Bs, LD);
        for (int nd = 0; nd < DP / 8; nd++) {
            for (int i = 0; i < 4; i++) {
                U[(tile * FP + mt * 16 + lc_acc_row(i)) * DP + nd * 8 + lc_acc_col(i)] = c[nd][i];
            }
        }
    }
}

/* Lag-2 prefix over the tiles of each head, per element e < per of U
 * [BH, nblk, per], into bf16 out: forward, out[u] = sum of U[v] for v <=
 * u - 2 (the state a query tile sees); reverse, for v >= u + 2 (the query
 * tiles for which a key tile is old).  Sums in tile order, in fp32. */
static __global__ void k_ht_scan(uint16_t *out, const float *U, int64_t per, int BH, int nblk,
                                 int reverse)
{
    const int64_t n = (int64_t)BH * per;

    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t bh = idx / per, e = idx % per;
        float run = 0.0f, prev = 0.0f;

        for (int k = 0; k < nblk; k++) {
            const int u = reverse ? nblk - 1 - k : k;
            const int64_t at = (bh * nblk + u) * per + e;
            const float cur = U[at];
            out[at] = lc_bf16_bits(run);
            run += prev;
            prev = cur;
        }
    }
}

/* ------------------------------------------------------------- forward */

/* smem: FQs [64][LDF], FKs [64][LDF] (sliding), zs [FP] fp32, then one
 * region that holds Ss [FP][LD] first, then Ks, Vs [128][LD] */
template <int DP, int FP> static size_t ht_fwd_smem(void)
{
    const size_t ld = DP + 8, ldf = FP + 8;
    const size_t region = 2 * HT_NEAR * ld > FP * ld ? 2 * HT_NEAR * ld : FP * ld;
    return (2 * HT_ROWS * ldf + region) * sizeof(uint16_t) + FP * sizeof(float);
}

template <int DP, int FP>
static __global__ void __launch_bounds__(HT_THREADS)
    k_ht_fwd(float *y, float *mx, float *den, const float *q, const float *k, const float *v,
             const float *fq, const float *fk, const float *theta, const uint16_t *Sb,
             const float *Zs, struct lc_hy_geom g)
{
    const float scale = 1.0f / sqrtf((float)g.D);
    constexpr int LD = DP + 8, LDF = FP + 8, KS = DP / 16, ND = DP / 8;
    uint16_t *FQs = LC_DYN_SMEM(uint16_t);
    uint16_t *FKs = FQs + HT_ROWS * LDF;
    float *zs = (float *)(FKs + HT_ROWS * LDF);
    uint16_t *Ss = (uint16_t *)(zs + FP);
    uint16_t *Ks = Ss;
    uint16_t *Vs = Ks + HT_NEAR * LD;
    const int bh = (int)(blockIdx.x / (unsigned)g.nblk), t = (int)(blockIdx.x % (unsigned)g.nblk);
    const int b = bh / g.H, h = bh % g.H, kvh = h / g.rep;
    const int warp = (int)(threadIdx.x >> 5), lane = lc_lane();
    const int sliding = g.mode == LC_WINDOW_SLIDING;
    const int has_state = t >= 2;
    const int j0 = (t - 1) * HT_ROWS; /* the key of column 0 */
    const float gamma = ht_sigmoid(theta[h]);
    int ir[2], lo[2];
    uint32_t qf[KS][4];
    float yacc[ND][4];
    float m[2] = {-INFINITY, -INFINITY}, wsum[2] = {0.0f, 0.0f}, dz[2] = {0.0f, 0.0f};

    for (int r = 0; r < 2; r++) {
        ir[r] = t * HT_ROWS + warp * 16 + (lane >> 2) + 8 * r;
        lo[r] = lc_hy_window_start(ir[r], HT_ROWS, g.mode);
    }
    ht_zero<ND>(yacc);
    ht_load<FP>(FQs, LDF, fq, b, g.T, g.H, h, g.F, t * HT_ROWS, HT_ROWS, NULL);
    if (has_state) {
        const int64_t tile = (int64_t)bh * g.nblk + t;
        ht_copy<DP>(Ss, LD, Sb + tile * FP * DP, FP);
        for (int e = (int)threadIdx.x; e < FP; e += HT_THREADS) {
            zs[e] = Zs[tile * FP + e];
        }
    }
    __syncthreads();
    if (has_state) {
        /* the old keys: y = fq S, and fq . z for the denominator */
        ht_mma<ND, FP / 16, 0, 0>(yacc, FQs + warp * 16 * LDF, LDF, Ss, LD);
        for (int r = 0; r < 2; r++) {
            const uint16_t *fr = FQs + (ir[r] - t * HT_ROWS) * LDF;
            float part = 0.0f;
            for (int e = lane & 3; e < FP; e += 4) {
                part += lc_bf16_value(fr[e]) * zs[e];
            }
            dz[r] = lc_quad_sum(part);
        }
    }
    __syncthreads(); /* the region is reused */
    /* q through the key buffer into registers */
    ht_load<DP>(Ks, LD, q, b, g.T, g.H, h, g.D, t * HT_ROWS, HT_ROWS, NULL);
    __syncthreads();
    for (int kk = 0; kk < KS; kk++) {
        lc_frag_a(qf[kk], Ks + warp * 16 * LD + kk * 16, LD);
    }
    __syncthreads();
    ht_load<DP>(Ks, LD, k, b, g.T, g.Hkv, kvh, g.D, j0, HT_NEAR, NULL);
    ht_load<DP>(Vs, LD, v, b, g.T, g.Hkv, kvh, g.D, j0, HT_NEAR, NULL);
    if (sliding) {
        ht_load<FP>(FKs, LDF, fk, b, g.T, g.H, h, g.F, j0, HT_ROWS, NULL);
    }
    __syncthreads();

    /* the window max (pass 1), then the weights and products (pass 2),
     * 64 near keys at a time; the scores of both passes are the same
     * products in the same order, so the same bits */
    for (int pass = 0; pass < 2; pass++) {
        for (int hk = 0; hk < 2; hk++) {
            float s[8][4], l[8][4];
            ht_zero<8>(s);
            for (int kk = 0; kk < KS; kk++) {
                for (int nt = 0; nt < 8; nt++) {
                    uint32_t bf[2];
                    lc_frag_b(bf, Ks + (hk * 64 + nt * 8) * LD + kk * 16, LD);
                    lc_mma_16816(s[nt], qf[kk], bf);
                }
            }
            if (pass == 0) {
                for (int nt = 0; nt < 8; nt++) {
                    for (int i = 0; i < 4; i++) {
                        const int r = i >> 1;
                        const int j = j0 + hk * 64 + nt * 8 + lc_acc_col(i);
                        if (j >= lo[r] && j <= ir[r]) {
                            m[r] = fmaxf(m[r], s[nt][i] * scale);
                        }
                    }
                }
                continue;
            }
            const int lin = sliding && hk == 0;
            if (lin) {
                ht_zero<8>(l);
                ht_mma<8, FP / 16, 0, 1>(l, FQs + warp * 16 * LDF, LDF, FKs, LDF);
            }
            for (int nt = 0; nt < 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    const int r = i >> 1;
                    const int j = j0 + hk * 64 + nt * 8 + lc_acc_col(i);
                    float w = 0.0f;
                    if (j >= lo[r] && j <= ir[r]) {
                        w = ht_round(gamma * expf(s[nt][i] * scale - m[r]));
                    } else if (lin && j >= 0 && j < lo[r]) {
                        w = ht_round(l[nt][i]);
                    }
                    s[nt][i] = w;
                    wsum[r] += w;
                }
            }
            for (int ks = 0; ks < 4; ks++) {
                uint32_t a[4];
                lc_frag_a_from_acc(a, s[2 * ks], s[2 * ks + 1]);
                for (int nd = 0; nd < ND; nd++) {
                    uint32_t bf[2];
                    lc_frag_b_t(bf, Vs + (hk * 64 + ks * 16) * LD + nd * 8, LD);
                    lc_mma_16816(yacc[nd], a, bf);
                }
            }
        }
        if (pass == 0) {
            m[0] = lc_quad_max(m[0]);
            m[1] = lc_quad_max(m[1]);
        }
    }
    for (int r = 0; r < 2; r++) {
        const float Z = lc_quad_sum(wsum[r]) + dz[r];
        const int i = ir[r];
        if (i >= g.T) {
            continue;
        }
        const int64_t row = ((int64_t)b * g.T + i) * g.H + h;
        for (int nd = 0; nd < ND; nd++) {
            for (int c = 0; c < 2; c++) {
                const int d = nd * 8 + lc_acc_col(c);
                if (d < g.D) {
                    y[row * g.D + d] = yacc[nd][2 * r + c] / Z;
                }
            }
        }
        if ((lane & 3) == 0) {
            if (mx != NULL) {
                mx[row] = m[r];
            }
            if (den != NULL) {
                den[row] = Z;
            }
        }
    }
}

/* ------------------------------------------------------------ backward */

/* delta = dy . y and invz = 1 / den per row, head-major [BH][T]; dy
 * rounded to bf16 as in the products dy . v, so that G = (dy . v - delta)
 * / Z cancels as it does in exact arithmetic */
static __global__ void k_ht_rows(float *delta, float *invz, const float *dy, const float *y,
                                 const float *den, struct lc_hy_geom g)
{
    const int64_t n = (int64_t)g.B * g.T * g.H;

    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int h = (int)(idx % g.H);
        const int64_t bi = idx / g.H;
        const int i = (int)(bi % g.T);
        const int64_t b = bi / g.T;
        const int64_t at = (b * g.H + h) * g.T + i;
        float acc = 0.0f;

        for (int d = 0; d < g.D; d++) {
            acc += ht_round(dy[idx * g.D + d]) * y[idx * g.D + d];
        }
        delta[at] = acc;
        invz[at] = 1.0f / den[idx];
    }
}

/* What k_ht_bwd_q writes for the key side (each nullable): the tile's
 * score gradients ds [BH, nblk, 64, 128] and normalized weights P = w / Z
 * (same shape), as bf16, the near linear keys' G (sliding) [BH, nblk, 64,
 * 64], and per row the window's sum of G e (head-major [BH][T]). */
struct ht_bwd_out {
    float *dq, *dfq;
    uint16_t *ds, *P, *Gl;
    float *thr;
};

/* smem: Qs, Gs [64][LD]; a region with Ks, Vs [128][LD] (Vs later Ss
 * [FP][LD]); FQs, FKs [64][LDF]; Sc, Pc [64][HT_LDC] fp32; Lc [64][HT_LDL]
 * fp32; zs [FP], rows' delta, invz, m [64] fp32 */
template <int DP, int FP> static size_t ht_bwd_q_smem(void)
{
    const size_t ld = DP + 8, ldf = FP + 8;
    return (2 * HT_ROWS * ld + 2 * HT_NEAR * ld + 2 * HT_ROWS * ldf) * sizeof(uint16_t) +
           (2 * HT_ROWS * HT_LDC + HT_ROWS * HT_LDL + FP + 3 * HT_ROWS) * sizeof(float);
}

template <int DP, int FP>
static __global__ void __launch_bounds__(HT_THREADS)
    k_ht_bwd_q(struct ht_bwd_out o, const float *dy, const float *delta, const float *invz,
               const float *mx, const float *q, const float *k, const float *v, const float *fq,
               const float *fk, const float *theta, const uint16_t *Sb, const float *Zs,
               struct lc_hy_geom g)
{
    const float scale = 1.0f / sqrtf((float)g.D);
    constexpr int LD = DP + 8, LDF = FP + 8, KS = DP / 16, ND = DP / 8, NF = FP / 8;
    uint16_t *Qs = LC_DYN_SMEM(uint16_t);
    uint16_t *Gs = Qs + HT_ROWS * LD;
    uint16_t *Ks = Gs + HT_ROWS * LD;
    uint16_t *Vs = Ks + HT_NEAR * LD;
    uint16_t *Ss = Vs; /* after the scores */
    uint16_t *FQs = Vs + HT_NEAR * LD;
    uint16_t *FKs = FQs + HT_ROWS * LDF;
    float *Sc = (float *)(FKs + HT_ROWS * LDF);
    float *Pc = Sc + HT_ROWS * HT_LDC;
    float *Lc = Pc + HT_ROWS * HT_LDC;
    float *zs = Lc + HT_ROWS * HT_LDL;
    float *rdelta = zs + FP, *rinvz = rdelta + HT_ROWS, *rm = rinvz + HT_ROWS;
    const int bh = (int)(blockIdx.x / (unsigned)g.nblk), t = (int)(blockIdx.x % (unsigned)g.nblk);
    const int b = bh / g.H, h = bh % g.H, kvh = h / g.rep;
    const int warp = (int)(threadIdx.x >> 5), lane = lc_lane();
    const int sliding = g.mode == LC_WINDOW_SLIDING;
    const int j0 = (t - 1) * HT_ROWS;
    const int64_t tile = (int64_t)bh * g.nblk + t;
    const float gamma = ht_sigmoid(theta[h]);
    const int need_dfq_state = o.dfq != NULL && t >= 2;

    ht_load<DP>(Qs, LD, q, b, g.T, g.H, h, g.D, t * HT_ROWS, HT_ROWS, NULL);
    ht_load<DP>(Gs, LD, dy, b, g.T, g.H, h, g.D, t * HT_ROWS, HT_ROWS, NULL);
    ht_load<DP>(Ks, LD, k, b, g.T, g.Hkv, kvh, g.D, j0, HT_NEAR, NULL);
    ht_load<DP>(Vs, LD, v, b, g.T, g.Hkv, kvh, g.D, j0, HT_NEAR, NULL);
    if (sliding) {
        ht_load<FP>(FQs, LDF, fq, b, g.T, g.H, h, g.F, t * HT_ROWS, HT_ROWS, NULL);
        ht_load<FP>(FKs, LDF, fk, b, g.T, g.H, h, g.F, j0, HT_ROWS, NULL);
    }
    for (int r = (int)threadIdx.x; r < HT_ROWS; r += HT_THREADS) {
        const int i = t * HT_ROWS + r;
        const int64_t at = (int64_t)bh * g.T + i;
        rdelta[r] = i < g.T ? delta[at] : 0.0f;
        rinvz[r] = i < g.T ? invz[at] : 0.0f;
        rm[r] = i < g.T ? mx[((int64_t)b * g.T + i) * g.H + h] : 0.0f;
    }
    __syncthreads();

    /* scores and dy . v over the near keys, the near linear weights */
    {
        float c[8][4];
        float *sc = Sc + warp * 16 * HT_LDC, *pc = Pc + warp * 16 * HT_LDC;
        for (int hk = 0; hk < 2; hk++) {
            ht_zero<8>(c);
            ht_mma<8, KS, 0, 1>(c, Qs + warp * 16 * LD, LD, Ks + hk * 64 * LD, LD);
            for (int nt = 0; nt < 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    sc[lc_acc_row(i) * HT_LDC + hk * 64 + nt * 8 + lc_acc_col(i)] =
                        c[nt][i] * scale;
                }
            }
            ht_zero<8>(c);
            ht_mma<8, KS, 0, 1>(c, Gs + warp * 16 * LD, LD, Vs + hk * 64 * LD, LD);
            for (int nt = 0; nt < 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    pc[lc_acc_row(i) * HT_LDC + hk * 64 + nt * 8 + lc_acc_col(i)] = c[nt][i];
                }
            }
        }
        if (sliding) {
            ht_zero<8>(c);
            ht_mma<8, FP / 16, 0, 1>(c, FQs + warp * 16 * LDF, LDF, FKs, LDF);
            for (int nt = 0; nt < 8; nt++) {
                for (int i = 0; i < 4; i++) {
                    Lc[(warp * 16 + lc_acc_row(i)) * HT_LDL + nt * 8 + lc_acc_col(i)] = c[nt][i];
                }
            }
        }
    }
    __syncwarp();

    /* the rows, a warp's own 16, lanes over the 128 columns: Sc becomes
     * ds, Pc the normalized weights, Lc the near linear keys' G */
    for (int rr = 0; rr < 16; rr++) {
        const int r = warp * 16 + rr, i = t * HT_ROWS + r;
        float *sc = Sc + r * HT_LDC, *pc = Pc + r * HT_LDC, *lc = Lc + r * HT_LDL;
        const int lo = lc_hy_window_start(i, HT_ROWS, g.mode);
        const float dl = rdelta[r], iz = rinvz[r], m = rm[r];
        float smax = -INFINITY, sum = 0.0f, nties = 0.0f, dm;

        if (i >= g.T) {
            for (int c = lane; c < HT_NEAR; c += 32) {
                sc[c] = pc[c] = 0.0f;
                if (c < HT_ROWS) {
                    lc[c] = 0.0f;
                }
            }
        } else {
            for (int c = lane; c < HT_NEAR; c += 32) {
                const int j = j0 + c;
                if (j >= lo && j <= i) {
                    smax = fmaxf(smax, sc[c]);
                }
            }
            smax = lc_warp_max(smax);
            for (int c = lane; c < HT_NEAR; c += 32) {
                const int j = j0 + c;
                if (j >= lo && j <= i) {
                    const float e = ht_round(gamma * expf(sc[c] - m));
                    sum += (pc[c] - dl) * iz * e;
                    nties += sc[c] == smax ? 1.0f : 0.0f;
                }
            }
            sum = lc_warp_sum(sum);
            nties = lc_warp_sum(nties);
            dm = -sum / nties;
            for (int c = lane; c < HT_NEAR; c += 32) {
                const int j = j0 + c;
                const float G = (pc[c] - dl) * iz;
                float ds = 0.0f, p = 0.0f, gl = 0.0f;
                if (j >= lo && j <= i) {
                    const float e = ht_round(gamma * expf(sc[c] - m));
                    ds = sc[c] == smax ? G * e + dm : G * e;
                    p = e * iz;
                } else if (sliding && c < HT_ROWS && j >= 0 && j < lo) {
                    p = ht_round(lc[c]) * iz;
                    gl = G;
                }
                sc[c] = ds;
                pc[c] = p;
                if (c < HT_ROWS) {
                    lc[c] = gl;
                }
            }
            if (o.thr != NULL && lane == 0) {
                o.thr[(int64_t)bh * g.T + i] = sum;
            }
        }
        /* the tile's rows for the key side */
        for (int c = lane; c < HT_NEAR; c += 32) {
            const int64_t at = (tile * HT_ROWS + r) * HT_NEAR + c;
            if (o.ds != NULL) {
                o.ds[at] = lc_bf16_bits(sc[c]);
            }
            if (o.P != NULL) {
                o.P[at] = lc_bf16_bits(pc[c]);
            }
            if (o.Gl != NULL && c < HT_ROWS) {
                o.Gl[(tile * HT_ROWS + r) * HT_ROWS + c] = lc_bf16_bits(lc[c]);
            }
        }
    }
    __syncthreads(); /* Vs becomes Ss */

    if (need_dfq_state) {
        ht_copy<DP>(Ss, LD, Sb + tile * FP * DP, FP);
        for (int e = (int)threadIdx.x; e < FP; e += HT_THREADS) {
            zs[e] = Zs[tile * FP + e];
        }
    }
    __syncthreads();
    if (o.dq != NULL) {
        float c[ND][4];
        ht_zero<ND>(c);
        for (int ks = 0; ks < HT_NEAR / 16; ks++) {
            uint32_t a[4];
            lc_frag_a_f32(a, Sc + warp * 16 * HT_LDC + ks * 16, HT_LDC);
            for (int nd = 0; nd < ND; nd++) {
                uint32_t bf[2];
                lc_frag_b_t(bf, Ks + ks * 16 * LD + nd * 8, LD);
                lc_mma_16816(c[nd], a, bf);
            }
        }
        for (int nd = 0; nd < ND; nd++) {
            for (int i = 0; i < 4; i++) {
                const int row = t * HT_ROWS + warp * 16 + lc_acc_row(i);
                const int d = nd * 8 + lc_acc_col(i);
                if (row < g.T && d < g.D) {
                    o.dq[(((int64_t)b * g.T + row) * g.H + h) * g.D + d] = c[nd][i] * scale;
                }
            }
        }
    }
    if (o.dfq != NULL) {
        float c[NF][4];
        ht_zero<NF>(c);
        if (need_dfq_state) {
            /* (dy S^T - delta z) / Z */
            ht_mma<NF, KS, 0, 1>(c, Gs + warp * 16 * LD, LD, Ss, LD);
            for (int nf = 0; nf < NF; nf++) {
                for (int i = 0; i < 4; i++) {
                    const int r = warp * 16 + lc_acc_row(i);
                    const int e = nf * 8 + lc_acc_col(i);
                    c[nf][i] = (c[nf][i] - rdelta[r] * zs[e]) * rinvz[r];
                }
            }
        }
        if (sliding) {
            /* + G fk over the near linear keys */
            for (int ks = 0; ks < HT_ROWS / 16; ks++) {
                uint32_t a[4];
                lc_frag_a_f32(a, Lc + warp * 16 * HT_LDL + ks * 16, HT_LDL);
                for (int nf = 0; nf < NF; nf++) {
                    uint32_t bf[2];
                    lc_frag_b_t(bf, FKs + ks * 16 * LDF + nf * 8, LDF);
                    lc_mma_16816(c[nf], a, bf);
                }
            }
        }
        for (int nf = 0; nf < NF; nf++) {
            for (int i = 0; i < 4; i++) {
                const int row = t * HT_ROWS + warp * 16 + lc_acc_row(i);
                const int e = nf * 8 + lc_acc_col(i);
                if (row < g.T && e < g.F) {
                    o.dfq[(((int64_t)b * g.T + row) * g.H + h) * g.F + e] = c[nf][i];
                }
            }
        }
    }
}

/* Loads the key-side columns [c0, c0 + 64) of rows of tile tq's bf16
 * [64][width] array of head bh into dst [64][72]; zeros when tq is past
 * the last tile. */
__device__ static void ht_load_cols(uint16_t *dst, const uint16_t *src, int64_t bh, int nblk,
                                    int tq, int width, int c0)
{
    for (int idx = (int)threadIdx.x; idx < HT_ROWS * 8; idx += (int)blockDim.x) {
        const int r = idx / 8, c8 = (idx % 8) * 8;
        if (tq < nblk) {
            lc_copy16(dst + r * 72 + c8,
                      src + ((bh * nblk + tq) * HT_ROWS + r) * width + c0 + c8);
        } else {
            lc_zero16(dst + r * 72 + c8);
        }
    }
}

/* One block per (batch, KV head, key tile u): which = 0, dk = scale sum
 * over the group's heads of ds^T q over the query tiles u (the keys'
 * second half of their near columns) and u + 1 (first half); which = 1,
 * dv = the same with P^T dy, plus fk R_u (old keys) where a state exists. */
template <int DP, int FP>
static __global__ void __launch_bounds__(HT_THREADS)
    k_ht_bwd_kv(float *out, int which, const uint16_t *W, const float *x, const float *fk,
                const uint16_t *Rb, struct lc_hy_geom g)
{
    const float scale = 1.0f / sqrtf((float)g.D);
    constexpr int LD = DP + 8, LDF = FP + 8, ND = DP / 8;
    uint16_t *W0 = LC_DYN_SMEM(uint16_t); /* [64][72] */
    uint16_t *W1 = W0 + HT_ROWS * 72;
    uint16_t *X0 = W1 + HT_ROWS * 72; /* [64][LD] */
    uint16_t *X1 = X0 + HT_ROWS * LD;
    uint16_t *FKs = X1 + HT_ROWS * LD; /* [64][LDF] */
    uint16_t *Rs = FKs + HT_ROWS * LDF; /* [FP][LD] */
    const int u = (int)(blockIdx.x % (unsigned)g.nblk);
    const int bkv = (int)(blockIdx.x / (unsigned)g.nblk);
    const int b = bkv / g.Hkv, kvh = bkv % g.Hkv;
    const int warp = (int)(threadIdx.x >> 5);
    const int old = which == 1 && Rb != NULL && u + 2 < g.nblk;
    float c[ND][4];

    ht_zero<ND>(c);
    for (int kk = 0; kk < g.rep; kk++) {
        const int h = kvh * g.rep + kk;
        const int64_t bh = (int64_t)b * g.H + h;
        __syncthreads(); /* the previous head's tiles are read */
        ht_load_cols(W0, W, bh, g.nblk, u, HT_NEAR, 64);
        ht_load_cols(W1, W, bh, g.nblk, u + 1, HT_NEAR, 0);
        ht_load<DP>(X0, LD, x, b, g.T, g.H, h, g.D, u * HT_ROWS, HT_ROWS, NULL);
        ht_load<DP>(X1, LD, x, b, g.T, g.H, h, g.D, (u + 1) * HT_ROWS, HT_ROWS, NULL);
        if (old) {
            ht_load<FP>(FKs, LDF, fk, b, g.T, g.H, h, g.F, u * HT_ROWS, HT_ROWS, NULL);
            ht_copy<DP>(Rs, LD, Rb + (bh * g.nblk + u) * FP * DP, FP);
        }
        __syncthreads();
        ht_mma<ND, HT_ROWS / 16, 1, 0>(c, W0 + warp * 16, 72, X0, LD);
        ht_mma<ND, HT_ROWS / 16, 1, 0>(c, W1 + warp * 16, 72, X1, LD);
        if (old) {
            ht_mma<ND, FP / 16, 0, 0>(c, FKs + warp * 16 * LDF, LDF, Rs, LD);
        }
    }
    for (int nd = 0; nd < ND; nd++) {
        for (int i = 0; i < 4; i++) {
            const int j = u * HT_ROWS + warp * 16 + lc_acc_row(i);
            const int d = nd * 8 + lc_acc_col(i);
            if (j < g.T && d < g.D) {
                out[(((int64_t)b * g.T + j) * g.Hkv + kvh) * g.D + d] =
                    which == 0 ? c[nd][i] * scale : c[nd][i];
            }
        }
    }
}

/* One block per (head bh, key tile u): dfk = Gl^T fq over query tile u +
 * 1 (sliding: the near linear keys) + v R_u^T - r_u (old keys). */
template <int DP, int FP>
static __global__ void __launch_bounds__(HT_THREADS)
    k_ht_bwd_fk(float *dfk, const uint16_t *Gl, const float *fq, const float *v,
                const uint16_t *Rb, const float *rz, struct lc_hy_geom g)
{
    constexpr int LD = DP + 8, LDF = FP + 8, NF = FP / 8;
    uint16_t *Ws = LC_DYN_SMEM(uint16_t); /* [64][72] */
    uint16_t *FQs = Ws + HT_ROWS * 72;    /* [64][LDF] */
    uint16_t *Vs = FQs + HT_ROWS * LDF;   /* [64][LD] */
    uint16_t *Rs = Vs + HT_ROWS * LD;     /* [FP][LD] */
    float *rs = (float *)(Rs + FP * LD);  /* [FP] */
    const int bh = (int)(blockIdx.x / (unsigned)g.nblk), u = (int)(blockIdx.x % (unsigned)g.nblk);
    const int b = bh / g.H, h = bh % g.H, kvh = h / g.rep;
    const int warp = (int)(threadIdx.x >> 5);
    const int near = Gl != NULL && u + 1 < g.nblk;
    const int old = Rb != NULL && u + 2 < g.nblk;
    const int64_t tile = (int64_t)bh * g.nblk + u;
    float c[NF][4];

    if (near) {
        ht_load_cols(Ws, Gl, bh, g.nblk, u + 1, HT_ROWS, 0);
        ht_load<FP>(FQs, LDF, fq, b, g.T, g.H, h, g.F, (u + 1) * HT_ROWS, HT_ROWS, NULL);
    }
    if (old) {
        ht_load<DP>(Vs, LD, v, b, g.T, g.Hkv, kvh, g.D, u * HT_ROWS, HT_ROWS, NULL);
        ht_copy<DP>(Rs, LD, Rb + tile * FP * DP, FP);
        for (int e = (int)threadIdx.x; e < FP; e += HT_THREADS) {
            rs[e] = rz[tile * FP + e];
        }
    }
    __syncthreads();
    ht_zero<NF>(c);
    if (old) {
        ht_mma<NF, DP / 16, 0, 1>(c, Vs + warp * 16 * LD, LD, Rs, LD);
        for (int nf = 0; nf < NF; nf++) {
            for (int i = 0; i < 4; i++) {
                c[nf][i] -= rs[nf * 8 + lc_acc_col(i)];
            }
        }
    }
    if (near) {
        ht_mma<NF, HT_ROWS / 16, 1, 0>(c, Ws + warp * 16, 72, FQs, LDF);
    }
    for (int nf = 0; nf < NF; nf++) {
        for (int i = 0; i < 4; i++) {
            const int j = u * HT_ROWS + warp * 16 + lc_acc_row(i);
            const int e = nf * 8 + lc_acc_col(i);
            if (j < g.T && e < g.F) {
                dfk[(((int64_t)b * g.T + j) * g.H + h) * g.F + e] = c[nf][i];
            }
        }
    }
}

/* dtheta[h] += (1 - gamma) * the rows' sums of G e, in double, batch by
 * batch, row by row */
static __global__ void k_ht_dtheta(float *dtheta, const float *thr, const float *theta,
                                   struct lc_hy_geom g)
{
    for (int h = (int)(blockIdx.x * blockDim.x + threadIdx.x); h < g.H;
         h += (int)(gridDim.x * blockDim.x)) {
        const double gamma = 1.0 / (1.0 + exp(-(double)theta[h]));
        double sum = 0.0;
        for (int b = 0; b < g.B; b++) {
            const float *p = thr + ((int64_t)b * g.H + h) * g.T;
            for (int i = 0; i < g.T; i++) {
                sum += p[i];
            }
        }
        dtheta[h] += (float)(sum * (1.0 - gamma));
    }
}

/* ------------------------------------------------------------ launchers */

static int ht_dpad(int D)
{
    return D <= 16 ? 16 : D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 0;
}

static int ht_fpad(int F)
{
    return F <= 32 ? 32 : F <= 128 ? 128 : 0;
}

extern "C" int lc_cuda_hytile_supports(const struct lc_attn_shape *s)
{
    return s->window == HT_ROWS && s->D >= 1 && ht_dpad(s->D) > 0 && s->F >= 1 &&
           ht_fpad(s->F) > 0 && (s->mode == LC_WINDOW_TERRACED || s->mode == LC_WINDOW_SLIDING);
}


/* Dynamic shared memory beyond 48 KiB is opted into per kernel. */
template <typename K> static const char *ht_smem_ok(K *kernel, size_t bytes)
{
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)bytes);
    return e == cudaSuccess ? NULL : cudaGetErrorString(e);
}

/* The lag-2 states of every tile: U is scratch [BH, nblk, FP, DP] fp32,
 * out the bf16 prefix, z [BH, nblk, FP] the column sums, prefixed in
 * place.  Forward (reverse = 0): A = fk, B = v; reverse: A = fq / Z (per
 * row ascale = invz), B = dy, z weighted by delta. */
template <int DP, int FP>
static const char *ht_states(struct lc_cuda_ctx *c, const struct lc_hy_geom *g, float *U,
                             uint16_t *out, float *z, const float *asrc, const float *ascale,
                             const float *zw, const float *bsrc, int nhb, int reverse)
{
    const size_t smem = (HT_ROWS * (FP + 8) + HT_ROWS * (DP + 8)) * sizeof(uint16_t);
    const int64_t blocks = (int64_t)g->B * g->H * g->nblk;
    const int64_t per = (int64_t)FP * DP;
    auto kern_state_k = k_ht_state<DP, FP>;
    const char *err;

    err = ht_smem_ok(kern_state_k, smem);
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH_SMEM(kern_state_k, (unsigned)blocks, HT_THREADS, smem, c->stream)(
        U, z, asrc, g->H, ascale, zw, bsrc, nhb, *g);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_ht_scan, lc_cuda_ew_blocks((int64_t)g->B * g->H * per), LC_CUDA_EW_THREADS,
              c->stream)(out, U, per, g->B * g->H, g->nblk, reverse);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_hy_scan2, lc_cuda_ew_blocks((int64_t)g->B * g->H * FP), LC_CUDA_EW_THREADS,
              c->stream)(z, (int64_t)FP, g->B * g->H, g->nblk, reverse);
    return lc_cuda_launched();
}

template <int DP, int FP>
static const char *ht_fwd(struct lc_cuda_ctx *c, float *y, float *mx, float *den, const float *q,
                          const float *k, const float *v, const float *fq, const float *fk,
                          const float *theta, const struct lc_attn_shape *s)
{
    const struct lc_hy_geom g = lc_hy_geom_of(s);
    const int64_t tiles = (int64_t)g.B * g.H * g.nblk;
    const int has_state = g.nblk >= 3;
    const size_t nstate = has_state ? (size_t)tiles * FP * DP : 0;
    const size_t smem = ht_fwd_smem<DP, FP>();
    float *U = NULL, *z = NULL;
    uint16_t *Sb = NULL;
    const char *err;

    if (tiles > 2147483647) {
        return "too many tiles for one launch";
    }
    if (has_state) {
        float *w = (float *)lc_cuda_scratch(
            c, (lc_hy_round(nstate) + lc_hy_round(nstate / 2) + lc_hy_round((size_t)tiles * FP)) *
                   sizeof(float));
        if (w == NULL) {
            return "out of device memory for the hybrid attention states";
        }
        U = lc_hy_take(&w, nstate);
        Sb = (uint16_t *)lc_hy_take(&w, nstate / 2);
        z = lc_hy_take(&w, (size_t)tiles * FP);
        err = ht_states<DP, FP>(c, &g, U, Sb, z, fk, NULL, NULL, v, g.Hkv, 0);
        if (err != NULL) {
            return err;
        }
    }
    auto kern_fwd_k = k_ht_fwd<DP, FP>;

    err = ht_smem_ok(kern_fwd_k, smem);
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH_SMEM(kern_fwd_k, (unsigned)tiles, HT_THREADS, smem, c->stream)(
        y, mx, den, q, k, v, fq, fk, theta, Sb, z, g);
    return lc_cuda_launched();
}

template <int DP, int FP>
static const char *ht_bwd(struct lc_cuda_ctx *c, float *dq, float *dk, float *dv, float *dfq,
                          float *dfk, float *dtheta, const float *dy, const float *y,
                          const float *mx, const float *den, const float *q, const float *k,
                          const float *v, const float *fq, const float *fk, const float *theta,
                          const struct lc_attn_shape *s)
{
    const struct lc_hy_geom g = lc_hy_geom_of(s);
    const int64_t tiles = (int64_t)g.B * g.H * g.nblk;
    const int has_state = g.nblk >= 3;
    const int need_S = has_state && dfq != NULL;
    const int need_R = has_state && (dfk != NULL || dv != NULL);
    const size_t nstate = has_state ? (size_t)tiles * FP * DP : 0;
    const size_t nrows = (size_t)g.B * g.H * g.T;
    const size_t ntile = (size_t)tiles * HT_ROWS * HT_NEAR; /* bf16 */
    const int sliding = g.mode == LC_WINDOW_SLIDING;
    struct ht_bwd_out o = {dq, dfq, NULL, NULL, NULL, NULL};
    float *w, *delta, *invz, *U = NULL, *z = NULL, *rz = NULL;
    uint16_t *Sb = NULL, *Rb = NULL;
    const char *err;
    size_t total;

    if (tiles > 2147483647) {
        return "too many tiles for one launch";
    }
    total = 3 * lc_hy_round(nrows);
    if (need_S || need_R) {
        total += lc_hy_round(nstate) + lc_hy_round((size_t)tiles * FP);
    }
    if (need_S) {
        total += lc_hy_round(nstate / 2);
    }
    if (need_R) {
        total += lc_hy_round(nstate / 2) + lc_hy_round((size_t)tiles * FP);
    }
    total += (dk != NULL) * lc_hy_round(ntile / 2) + (dv != NULL) * lc_hy_round(ntile / 2) +
             (dfk != NULL && sliding) * lc_hy_round(ntile / 4);
    w = (float *)lc_cuda_scratch(c, total * sizeof(float));
    if (w == NULL) {
        return "out of device memory for the hybrid attention backward";
    }
    delta = lc_hy_take(&w, nrows);
    invz = lc_hy_take(&w, nrows);
    o.thr = lc_hy_take(&w, nrows);
    if (need_S || need_R) {
        U = lc_hy_take(&w, nstate);
        z = lc_hy_take(&w, (size_t)tiles * FP);
    }
    if (need_S) {
        Sb = (uint16_t *)lc_hy_take(&w, nstate / 2);
    }
    if (need_R) {
        Rb = (uint16_t *)lc_hy_take(&w, nstate / 2);
        rz = lc_hy_take(&w, (size_t)tiles * FP);
    }
    if (dk != NULL) {
        o.ds = (uint16_t *)lc_hy_take(&w, ntile / 2);
    }
    if (dv != NULL) {
        o.P = (uint16_t *)lc_hy_take(&w, ntile / 2);
    }
    if (dfk != NULL && sliding) {
        o.Gl = (uint16_t *)lc_hy_take(&w, ntile / 4);
    }
    if (dtheta == NULL) {
        o.thr = NULL;
    }

    LC_LAUNCH(k_ht_rows, lc_cuda_ew_blocks((int64_t)nrows), LC_CUDA_EW_THREADS, c->stream)(
        delta, invz, dy, y, den, g);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    if (need_S) {
        err = ht_states<DP, FP>(c, &g, U, Sb, z, fk, NULL, NULL, v, g.Hkv, 0);
        if (err != NULL) {
            return err;
        }
    }
    if (need_R) {
        err = ht_states<DP, FP>(c, &g, U, Rb, rz, fq, invz, delta, dy, g.H, 1);
        if (err != NULL) {
            return err;
        }
    }
    if (dq != NULL || dfq != NULL || o.ds != NULL || o.P != NULL || o.Gl != NULL ||
        o.thr != NULL) {
        const size_t smem = ht_bwd_q_smem<DP, FP>();
        auto kern_bwd_q_k = k_ht_bwd_q<DP, FP>;
        err = ht_smem_ok(kern_bwd_q_k, smem);
        if (err != NULL) {
            return err;
        }
        LC_LAUNCH_SMEM(kern_bwd_q_k, (unsigned)tiles, HT_THREADS, smem, c->stream)(
            o, dy, delta, invz, mx, q, k, v, fq, fk, theta, Sb, z, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
    }
    if (dk != NULL || dv != NULL) {
        const size_t smem =
            (2 * HT_ROWS * 72 + 2 * HT_ROWS * (DP + 8) + HT_ROWS * (FP + 8) + FP * (DP + 8)) *
            sizeof(uint16_t);
        const int64_t blocks = (int64_t)g.B * g.Hkv * g.nblk;
        auto kern_bwd_kv_k = k_ht_bwd_kv<DP, FP>;
        err = ht_smem_ok(kern_bwd_kv_k, smem);
        if (err != NULL) {
            return err;
        }
        if (dk != NULL) {
            LC_LAUNCH_SMEM(kern_bwd_kv_k, (unsigned)blocks, HT_THREADS, smem, c->stream)(
                dk, 0, o.ds, q, fk, NULL, g);
            err = lc_cuda_launched();
            if (err != NULL) {
                return err;
            }
        }
        if (dv != NULL) {
            LC_LAUNCH_SMEM(kern_bwd_kv_k, (unsigned)blocks, HT_THREADS, smem, c->stream)(
                dv, 1, o.P, dy, fk, Rb, g);
            err = lc_cuda_launched();
            if (err != NULL) {
                return err;
            }
        }
    }
    if (dfk != NULL) {
        const size_t smem = (HT_ROWS * 72 + HT_ROWS * (FP + 8) + HT_ROWS * (DP + 8) +
                             FP * (DP + 8)) * sizeof(uint16_t) + FP * sizeof(float);
        auto kern_bwd_fk_k = k_ht_bwd_fk<DP, FP>;
        err = ht_smem_ok(kern_bwd_fk_k, smem);
        if (err != NULL) {
            return err;
        }
        LC_LAUNCH_SMEM(kern_bwd_fk_k, (unsigned)tiles, HT_THREADS, smem, c->stream)(
            dfk, o.Gl, fq, v, Rb, rz, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
    }
    if (dtheta != NULL) {
        LC_LAUNCH(k_ht_dtheta, lc_cuda_ew_blocks(g.H), LC_CUDA_EW_THREADS, c->stream)(
            dtheta, o.thr, theta, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

/* the instantiations: head dims padded to 16, 32, 64 or 128, features to
 * 32 or 128 */
#define HT_DISPATCH(fn, args)                                                    \
    do {                                                                         \
        const int dp_ = ht_dpad(s->D), fp_ = ht_fpad(s->F);                      \
        if (fp_ == 32) {                                                         \
            switch (dp_) {                                                       \
            case 16: return fn<16, 32> args;                                     \
            case 32: return fn<32, 32> args;                                     \
            case 64: return fn<64, 32> args;                                     \
            default: return fn<128, 32> args;                                    \
            }                                                                    \
        }                                                                        \
        switch (dp_) {                                                           \
        case 16: return fn<16, 128> args;                                        \
        case 32: return fn<32, 128> args;                                        \
        case 64: return fn<64, 128> args;                                        \
        default: return fn<128, 128> args;                                       \
        }                                                                        \
    } while (0)

extern "C" const char *lc_cuda_hytile_fwd(struct lc_cuda_ctx *c, float *y, float *mx,
                                          float *den, const float *q, const float *k,
                                          const float *v, const float *fq, const float *fk,
                                          const float *theta, const struct lc_attn_shape *s)
{
    if (!lc_cuda_hytile_supports(s)) {
        return "internal error: the tile kernels for an unsupported shape";
    }
    HT_DISPATCH(ht_fwd, (c, y, mx, den, q, k, v, fq, fk, theta, s));
}

extern "C" const char *lc_cuda_hytile_bwd(struct lc_cuda_ctx *c, float *dq, float *dk, float *dv,
                                          float *dfq, float *dfk, float *dtheta, const float *dy,
                                          const float *y, const float *mx, const float *den,
                                          const float *q, const float *k, const float *v,
                                          const float *fq, const float *fk, const float *theta,
                                          const struct lc_attn_shape *s)
{
    if (!lc_cuda_hytile_supports(s)) {
        return "internal error: the tile kernels for an unsupported shape";
    }
    HT_DISPATCH(ht_bwd, (c, dq, dk, dv, dfq, dfk, dtheta, dy, y, mx, den, q, k, v, fq, fk, theta,
                         s));
}
