/*
 * Hybrid window attention, forward and backward, as block products over
 * the head-major padded layout (cuda_hybrid.cuh has the layout and the
 * algorithm; the formulas are those of core/ref/ref_hybrid_impl.h and the
 * method doc, sections 3.3, 3.6 and 3.7).
 *
 * Forward, for every row block at once:
 *   A  = scale Q K_near^T                 [W, 2W]  batched SGEMM
 *   L  = fq fk_prev^T  (sliding mode)     [W, W]
 *   U_u = fk_u^T v_u, z_u = sum fk_u      per block; lag-2 prefix sums
 *   rows: window max m, e = gamma exp(A - m), linear weights, masks,
 *         den = their sum + fq . z
 *   Y  = A V_near + fq S                  [W, D]
 *   y = Y / den
 * The score-like blocks (A, L and their gradients) are stored transposed,
 * key-major ([2W keys, W queries]), so that the row kernels, one thread
 * per query row, read and write consecutive addresses across a warp.
 * The backward recomputes the scores and runs the same products
 * transposed, plus the reverse lag-2 sums R = sum fq g^T / Z over the
 * query blocks for which a key block is linear (dfk = v R^T - r, and the
 * linear part of dv = fk R).  Key and value gradients of one key block
 * come from two query blocks' products and from the GQA group's heads:
 * they are added by one kernel in a fixed order.
 *
 * All products are fp32 SGEMM (the handle's default math), or TF32 with
 * the context's tf32 switch.  With the context's bf16 switch on (the
 * default) and a window of 64, the fused bf16 tile kernels of
 * k_hybrid_tile.cu run instead.
 */
#include "backend-cuda/cuda_hybrid.cuh"

/* The rows after the forward's score product: row idx = blk * W + r is
 * query i = (u - 1) W + r of head bh (blk = bh nu + u); its score against
 * near key c is A[blk][c][r] (A [nb, 2W, W]), its near linear weight
 * L[blk][c][r] (L [nb, W, W], sliding mode).  A becomes the unnormalized
 * weights (window e, linear l, else 0); rden gets the denominator, their
 * sum plus fq . z (z [nb, F] the lag-2 prefix of the block key feature
 * sums, NULL when no block has a state); mx, den (nullable, [B, T, H])
 * the window max and the denominator. */
static __global__ void k_hy_fwd_rows(float *A, const float *L, float *rden, float *mx,
                                     float *den, const float *FQ, const float *z,
                                     const float *theta, struct lc_hy_geom g)
{
    const int64_t n = g.nb * g.W;
    const int W2 = 2 * g.W;
    const int W = g.W;

    LC_HY_FOR(idx, n)
    {
        const int64_t blk = idx / g.W;
        const int r = (int)(idx % g.W);
        const int bh = (int)(blk / g.nu);
        const int u = (int)(blk % g.nu);
        const int t = u - 1;
        const int i = t * W + r;
        float *a = A + blk * W2 * W + r; /* near key c at a[c * W] */

        if (u == 0 || i >= g.T) {
            for (int c = 0; c < W2; c++) {
                a[c * W] = 0.0f;
            }
            rden[idx] = 0.0f;
            continue;
        }
        const int h = bh % g.H;
        const int j0 = (t - 1) * W; /* the key of column 0 */
        const int ca = lc_hy_window_start(i, W, g.mode) - j0;
        const int cb = i - j0 + 1;
        const float gamma = 1.0f / (1.0f + expf(-theta[h]));
        float m = a[ca * W];
        float sum = 0.0f;

        for (int c = ca + 1; c < cb; c++) {
            m = a[c * W] > m ? a[c * W] : m;
        }
        for (int c = ca; c < cb; c++) {
            float e = gamma * expf(a[c * W] - m);
            a[c * W] = e;
            sum += e;
        }
        /* before the window: linear keys of block t-1 (sliding mode), or
         * padding before token 0 */
        for (int c = 0; c < ca; c++) {
            float w = 0.0f;
            if (L != NULL && j0 + c >= 0 && c < W) {
                w = L[(blk * W + c) * W + r];
            }
            a[c * W] = w;
            sum += w;
        }
        for (int c = cb; c < W2; c++) {
            a[c * W] = 0.0f;
        }
        if (z != NULL && t >= 2) {
            const float *fq = FQ + idx * g.F;
            const float *zb = z + blk * g.F;
            float acc = 0.0f;
            for (int e = 0; e < g.F; e++) {
                acc += fq[e] * zb[e];
            }
            sum += acc;
        }
        rden[idx] = sum;
        if (mx != NULL) {
            mx[((int64_t)(bh / g.H) * g.T + i) * g.H + h] = m;
        }
        if (den != NULL) {
            den[((int64_t)(bh / g.H) * g.T + i) * g.H + h] = sum;
        }
    }
}

/* y [B, T, H, D] = Y / den, one thread per element */
static __global__ void k_hy_fwd_out(float *y, const float *Y, const float *rden,
                                    struct lc_hy_geom g)
{
    const int64_t n = (int64_t)g.B * g.T * g.H * g.D;

    LC_HY_FOR(idx, n)
    {
        const int d = (int)(idx % g.D);
        const int64_t bih = idx / g.D;
        const int h = (int)(bih % g.H);
        const int64_t bi = bih / g.H;
        const int i = (int)(bi % g.T);
        const int b = (int)(bi / g.T);
        const int64_t row = ((int64_t)b * g.H + h) * g.P + g.W + i;

        y[idx] = Y[row * g.D + d] / rden[row];
    }
}

/* delta = dy . y, invz = 1 / den, m = mx: per row, head-major (rows from
 * base; the padding rows stay 0) */
static __global__ void k_hy_bwd_prep(float *delta, float *invz, float *mrow, const float *dy,
                                     const float *y, const float *mx, const float *den,
                                     struct lc_hy_geom g)
{
    const int64_t n = (int64_t)g.B * g.T * g.H;

    LC_HY_FOR(idx, n)
    {
        const int h = (int)(idx % g.H);
        const int64_t bi = idx / g.H;
        const int i = (int)(bi % g.T);
        const int b = (int)(bi / g.T);
        const int64_t row = ((int64_t)b * g.H + h) * g.P + g.W + i;
        float acc = 0.0f;

        for (int d = 0; d < g.D; d++) {
            acc += dy[idx * g.D + d] * y[idx * g.D + d];
        }
        delta[row] = acc;
        invz[row] = 1.0f / den[idx];
        mrow[row] = mx[idx];
    }
}

/* The backward's rows (the blocks key-major, as in the forward).  On entry
 * A holds the scores and dS the products g . v over the near keys, L
 * (sliding) the near linear weights.  On return dS = dL/ds (window: G e
 * plus the max path -sum G e split evenly over the keys whose score equals
 * the row's window max; else 0), A = the normalized weights omega / Z, Gl
 * (sliding, [nb, W, W]) = dL/domega of the near linear keys (else 0), thr
 * = sum over the window of G e. */
static __global__ void k_hy_bwd_rows(float *A, float *dS, const float *L, float *Gl, float *thr,
                                     const float *delta, const float *invz, const float *mrow,
                                     const float *theta, struct lc_hy_geom g)
{
    const int64_t n = g.nb * g.W;
    const int W2 = 2 * g.W;
    const int W = g.W;

    LC_HY_FOR(idx, n)
    {
        const int64_t blk = idx / W;
        const int r = (int)(idx % W);
        const int bh = (int)(blk / g.nu);
        const int u = (int)(blk % g.nu);
        const int t = u - 1;
        const int i = t * W + r;
        /* near key c at [c * W] */
        float *a = A + blk * W2 * W + r;
        float *ds = dS + blk * W2 * W + r;
        float *gl = Gl != NULL ? Gl + blk * W * W + r : NULL;
        const float *lw = L != NULL ? L + blk * W * W + r : NULL;

        if (u == 0 || i >= g.T) {
            for (int c = 0; c < W2; c++) {
                a[c * W] = 0.0f;
                ds[c * W] = 0.0f;
            }
            for (int c = 0; gl != NULL && c < W; c++) {
                gl[c * W] = 0.0f;
            }
            thr[idx] = 0.0f;
            continue;
        }
        const int j0 = (t - 1) * W;
        const int ca = lc_hy_window_start(i, W, g.mode) - j0;
        const int cb = i - j0 + 1;
        const float gamma = 1.0f / (1.0f + expf(-theta[bh % g.H]));
        const float m = mrow[idx];
        const float dl = delta[idx];
        const float iz = invz[idx];
        float smax = a[ca * W];
        float sum = 0.0f;
        float dm;
        int nties = 0;

        for (int c = ca + 1; c < cb; c++) {
            smax = a[c * W] > smax ? a[c * W] : smax;
        }
        for (int c = ca; c < cb; c++) {
            float e = gamma * expf(a[c * W] - m);
            float G = (ds[c * W] - dl) * iz;
            sum += G * e;
            nties += a[c * W] == smax;
        }
        dm = -sum / (float)nties;
        for (int c = ca; c < cb; c++) {
            float s = a[c * W];
            float e = gamma * expf(s - m);
            float G = (ds[c * W] - dl) * iz;
            float x = G * e;
            ds[c * W] = s == smax ? x + dm : x;
            a[c * W] = e * iz;
        }
        for (int c = 0; c < ca; c++) {
            if (gl != NULL && j0 + c >= 0 && c < W) {
                gl[c * W] = (ds[c * W] - dl) * iz;
                a[c * W] = lw[c * W] * iz;
            } else {
                if (gl != NULL && c < W) {
                    gl[c * W] = 0.0f;
                }
                a[c * W] = 0.0f;
            }
            ds[c * W] = 0.0f;
        }
        for (int c = ca; gl != NULL && c < W; c++) {
            gl[c * W] = 0.0f;
        }
        for (int c = cb; c < W2; c++) {
            a[c * W] = 0.0f;
            ds[c * W] = 0.0f;
        }
        thr[idx] = sum;
    }
}

/* X [nb * W, F] (rows from base): X = (X - delta z_u) invz on the rows of
 * token blocks t >= 2, 0 elsewhere (dfq's state part before the near
 * linear keys are added) */
static __global__ void k_hy_dfq_fix(float *X, const float *z, const float *delta,
                                    const float *invz, struct lc_hy_geom g)
{
    const int64_t n = g.nb * g.W * g.F;

    LC_HY_FOR(idx, n)
    {
        const int64_t row = idx / g.F;
        const int e = (int)(idx % g.F);
        const int64_t blk = row / g.W;
        const int u = (int)(blk % g.nu);
        const int i = (u - 1) * g.W + (int)(row % g.W);

        if (u >= 3 && i < g.T) {
            X[idx] = (X[idx] - delta[row] * z[blk * g.F + e]) * invz[row];
        } else {
            X[idx] = 0.0f;
        }
    }
}

/* X [nb * W, F]: X -= rr_u on token rows (dfk's state part), 0 on
 * padding */
static __global__ void k_hy_dfk_fix(float *X, const float *rr, struct lc_hy_geom g)
{
    const int64_t n = g.nb * g.W * g.F;

    LC_HY_FOR(idx, n)
    {
        const int64_t row = idx / g.F;
        const int e = (int)(idx % g.F);
        const int64_t blk = row / g.W;
        const int u = (int)(blk % g.nu);
        const int i = (u - 1) * g.W + (int)(row % g.W);

        X[idx] = u >= 1 && i < g.T ? X[idx] - rr[blk * g.F + e] : 0.0f;
    }
}

/* Fs = fq invz per row (rows from base, width F) */
static __global__ void k_hy_scale_rows(float *Fs, const float *FQ, const float *invz,
                                       int64_t nrows, int F)
{
    const int64_t n = nrows * F;

    LC_HY_FOR(idx, n)
    {
        Fs[idx] = FQ[idx] * invz[idx / F];
    }
}

/* out [B, T, Hkv, D] = the key (or value) gradient: for each query head
 * of the group in order, the near products E [nb, 2W, D] of the key's own
 * query block (second half) and of the next one (first half), plus the
 * linear part Lin [nb * W, D] (nullable). */
static __global__ void k_hy_kv_grad(float *out, const float *E, const float *Lin,
                                    struct lc_hy_geom g)
{
    const int64_t n = (int64_t)g.B * g.T * g.Hkv * g.D;
    const int W2 = 2 * g.W;

    LC_HY_FOR(idx, n)
    {
        const int d = (int)(idx % g.D);
        int64_t rest = idx / g.D;
        const int kv = (int)(rest % g.Hkv);
        rest /= g.Hkv;
        const int j = (int)(rest % g.T);
        const int b = (int)(rest / g.T);
        const int t = j / g.W;
        const int rj = j % g.W;
        float acc = 0.0f;

        for (int k = 0; k < g.rep; k++) {
            const int64_t bh = (int64_t)b * g.H + kv * g.rep + k;
            const int64_t blk = bh * g.nu + t + 1;
            float x = E[(blk * W2 + g.W + rj) * g.D + d];
            if (t + 1 < g.nblk) {
                x += E[((blk + 1) * W2 + rj) * g.D + d];
            }
            if (Lin != NULL) {
                x += Lin[(blk * g.W + rj) * g.D + d];
            }
            acc = k == 0 ? x : acc + x;
        }
        out[idx] = acc;
    }
}

/* ------------------------------------------------------------- helpers */

/* The state each row block sees: S [nb, F, D] = lag-2 prefix of fk_u^T
 * v_u and z [nb, F] of the column sums of fk_u. */
static const char *hy_state(struct lc_cuda_ctx *c, const struct lc_hy_geom *g, float *S, float *z,
                            const float *FKb, const float *Vb)
{
    const int W = g->W, D = g->D, F = g->F;
    const char *err;

    err = lc_hy_gemm(c, 1, 0, F, D, W, 1.0f, FKb, F, (long long)W * F, Vb, D, (long long)W * D,
                     0.0f, S, D, (long long)F * D, g->nb);
    if (err != NULL) {
        return err;
    }
    err = lc_hy_colsum(c, z, FKb, NULL, NULL, g);
    if (err != NULL) {
        return err;
    }
    return lc_hy_scan_state(c, S, z, g, 0);
}

/* A [nb, 2W, W] = scale K_near Q^T and, in sliding mode, L [nb, W, W] =
 * fk_prev fq^T (key-major) */
static const char *hy_scores(struct lc_cuda_ctx *c, const struct lc_hy_geom *g, float *A, float *L,
                             const float *Qb, const float *Kb, const float *FQb, const float *FKb)
{
    const int W = g->W, D = g->D, F = g->F;
    const float scale = 1.0f / sqrtf((float)D);
    const char *err;

    err = lc_hy_gemm(c, 0, 1, 2 * W, W, D, scale, Kb - (size_t)W * D, D, (long long)W * D, Qb, D,
                     (long long)W * D, 0.0f, A, W, 2LL * W * W, g->nb);
    if (err != NULL) {
        return err;
    }
    if (L != NULL) {
        err = lc_hy_gemm(c, 0, 1, W, W, F, 1.0f, FKb - (size_t)W * F, F, (long long)W * F, FQb, F,
                         (long long)W * F, 0.0f, L, W, (long long)W * W, g->nb);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- forward */

extern "C" const char *lc_cuda_hybrid_fwd(struct lc_cuda_ctx *c, float *y, float *mx, float *den,
                                          const float *q, const float *k, const float *v,
                                          const float *fq, const float *fk, const float *theta,
                                          const struct lc_attn_shape *s)
{
    const struct lc_hy_geom g = lc_hy_geom_of(s);
    const int W = g.W, D = g.D, F = g.F;
    const int sliding = g.mode == LC_WINDOW_SLIDING;
    const int has_state = g.nblk >= 3;
    const size_t nhd = (size_t)g.rows * D, nhf = (size_t)g.rows * F;
    const size_t nrow = (size_t)g.nb * W;
    float *w = NULL;
    float *Qh, *Kh, *Vh, *FQh, *FKh, *A, *L = NULL, *S = NULL, *z = NULL, *Y, *rden;

    if (c->attn_bf16 && lc_cuda_hytile_supports(s)) {
        return lc_cuda_hytile_fwd(c, y, mx, den, q, k, v, fq, fk, theta, s);
    }
    const float *Qb, *Kb, *Vb, *FQb, *FKb;
    const char *err;
    size_t total = 3 * lc_hy_round(nhd) + 2 * lc_hy_round(nhf) + lc_hy_round(nrow * 2 * W) +
                   lc_hy_round(nrow * D) + lc_hy_round(nrow);

    if (sliding) {
        total += lc_hy_round(nrow * W);
    }
    if (has_state) {
        total += lc_hy_round((size_t)g.nb * F * D) + lc_hy_round((size_t)g.nb * F);
    }
    w = (float *)lc_cuda_scratch(c, total * sizeof(float));
    if (w == NULL) {
        return "out of device memory for the hybrid attention";
    }
    Qh = lc_hy_take(&w, nhd);
    Kh = lc_hy_take(&w, nhd);
    Vh = lc_hy_take(&w, nhd);
    FQh = lc_hy_take(&w, nhf);
    FKh = lc_hy_take(&w, nhf);
    A = lc_hy_take(&w, nrow * 2 * W);
    Y = lc_hy_take(&w, nrow * D);
    rden = lc_hy_take(&w, nrow);
    if (sliding) {
        L = lc_hy_take(&w, nrow * W);
    }
    if (has_state) {
        S = lc_hy_take(&w, (size_t)g.nb * F * D);
        z = lc_hy_take(&w, (size_t)g.nb * F);
    }
    Qb = Qh + (size_t)W * D;
    Kb = Kh + (size_t)W * D;
    Vb = Vh + (size_t)W * D;
    FQb = FQh + (size_t)W * F;
    FKb = FKh + (size_t)W * F;

    const struct lc_hy_input in[] = {{Qh, q, g.H, D},
                                     {Kh, k, g.Hkv, D},
                                     {Vh, v, g.Hkv, D},
                                     {FQh, fq, g.H, F},
                                     {FKh, fk, g.H, F}};
    err = lc_hy_pack_all(c, &g, in, sizeof(in) / sizeof(in[0]));
    if (err != NULL) {
        return err;
    }
    err = hy_scores(c, &g, A, L, Qb, Kb, FQb, FKb);
    if (err != NULL) {
        return err;
    }
    if (has_state) {
        err = hy_state(c, &g, S, z, FKb, Vb);
        if (err != NULL) {
            return err;
        }
    }
    LC_LAUNCH(k_hy_fwd_rows, lc_hy_blocks((int64_t)nrow), LC_CUDA_EW_THREADS, c->stream)(
        A, L, rden, mx, den, FQb, z, theta, g);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    /* Y = weights times the near values (A key-major) plus fq S */
    err = lc_hy_gemm(c, 1, 0, W, D, 2 * W, 1.0f, A, W, 2LL * W * W, Vb - (size_t)W * D, D,
                     (long long)W * D, 0.0f, Y, D, (long long)W * D, g.nb);
    if (err != NULL) {
        return err;
    }
    if (has_state) {
        err = lc_hy_gemm(c, 0, 0, W, D, F, 1.0f, FQb, F, (long long)W * F, S, D, (long long)F * D,
                         1.0f, Y, D, (long long)W * D, g.nb);
        if (err != NULL) {
            return err;
        }
    }
    LC_LAUNCH(k_hy_fwd_out, lc_hy_blocks((int64_t)g.B * g.T * g.H * D), LC_CUDA_EW_THREADS,
              c->stream)(y, Y, rden, g);
    return lc_cuda_launched();
}

/* ------------------------------------------------------------ backward */

extern "C" const char *lc_cuda_hybrid_bwd(struct lc_cuda_ctx *c, float *dq, float *dk, float *dv,
                                          float *dfq, float *dfk, float *dtheta, const float *dy,
                                          const float *y, const float *mx, const float *den,
                                          const float *q, const float *k, const float *v,
                                          const float *fq, const float *fk, const float *theta,
                                          const struct lc_attn_shape *s)
{
    const struct lc_hy_geom g = lc_hy_geom_of(s);
    const int W = g.W, D = g.D, F = g.F;
    const int sliding = g.mode == LC_WINDOW_SLIDING;
    const int has_state = g.nblk >= 3;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t nhd = (size_t)g.rows * D, nhf = (size_t)g.rows * F;
    const size_t nrow = (size_t)g.nb * W;
    const size_t nstate = has_state ? (size_t)g.nb * F * D : 0;
    const size_t nz = has_state ? (size_t)g.nb * F : 0;
    const int64_t ntok = (int64_t)g.B * g.T * g.H;
    const int need_rev = has_state && (dfk != NULL || dv != NULL);
    float *w = NULL;
    float *Qh, *Kh, *Vh, *DYh, *FQh, *FKh, *A, *dS, *L = NULL, *Gl = NULL;
    float *delta, *invz, *mrow, *thr, *S = NULL, *z = NULL;
    float *X = NULL, *E = NULL, *Dvl = NULL, *Fs = NULL;
    const float *Qb, *Kb, *Vb, *DYb, *FQb, *FKb;
    const char *err;
    size_t total;

    if (c->attn_bf16 && lc_cuda_hytile_supports(s)) {
        return lc_cuda_hytile_bwd(c, dq, dk, dv, dfq, dfk, dtheta, dy, y, mx, den, q, k, v, fq,
                                  fk, theta, s);
    }
    /* X: dq's, dfq's and dfk's product in turn (dfk with a leading block,
     * written by the near linear keys of block u from row block u + 1);
     * E: the key's, then the value's near products */
    total = 4 * lc_hy_round(nhd) + 2 * lc_hy_round(nhf) + 2 * lc_hy_round(nrow * 2 * W) +
            4 * lc_hy_round(nrow) + lc_hy_round(nstate) + lc_hy_round(nz) +
            lc_hy_round(((size_t)g.nb + 1) * W * (D > F ? D : F)) +
            lc_hy_round(nrow * 2 * D);
    if (sliding) {
        total += 2 * lc_hy_round(nrow * W);
    }
    if (need_rev) {
        total += lc_hy_round(nrow * F);
        if (dv != NULL) {
            total += lc_hy_round(nrow * D);
        }
    }
    w = (float *)lc_cuda_scratch(c, total * sizeof(float));
    if (w == NULL) {
        return "out of device memory for the hybrid attention backward";
    }
    Qh = lc_hy_take(&w, nhd);
    Kh = lc_hy_take(&w, nhd);
    Vh = lc_hy_take(&w, nhd);
    DYh = lc_hy_take(&w, nhd);
    FQh = lc_hy_take(&w, nhf);
    FKh = lc_hy_take(&w, nhf);
    A = lc_hy_take(&w, nrow * 2 * W);
    dS = lc_hy_take(&w, nrow * 2 * W);
    delta = lc_hy_take(&w, nrow);
    invz = lc_hy_take(&w, nrow);
    mrow = lc_hy_take(&w, nrow);
    thr = lc_hy_take(&w, nrow);
    X = lc_hy_take(&w, ((size_t)g.nb + 1) * W * (D > F ? D : F));
    E = lc_hy_take(&w, nrow * 2 * D);
    if (has_state) {
        S = lc_hy_take(&w, nstate);
        z = lc_hy_take(&w, nz);
    }
    if (sliding) {
        L = lc_hy_take(&w, nrow * W);
        Gl = lc_hy_take(&w, nrow * W);
    }
    if (need_rev) {
        Fs = lc_hy_take(&w, nrow * F);
        if (dv != NULL) {
            Dvl = lc_hy_take(&w, nrow * D);
        }
    }
    Qb = Qh + (size_t)W * D;
    Kb = Kh + (size_t)W * D;
    Vb = Vh + (size_t)W * D;
    DYb = DYh + (size_t)W * D;
    FQb = FQh + (size_t)W * F;
    FKb = FKh + (size_t)W * F;

    const struct lc_hy_input in[] = {{Qh, q, g.H, D},   {Kh, k, g.Hkv, D}, {Vh, v, g.Hkv, D},
                                     {DYh, dy, g.H, D}, {FQh, fq, g.H, F}, {FKh, fk, g.H, F}};
    err = lc_hy_pack_all(c, &g, in, sizeof(in) / sizeof(in[0]));
    if (err != NULL) {
        return err;
    }
    /* delta, invz, mrow are consecutive pieces: one memset */
    err = lc_hy_zero(c, delta, (size_t)(thr - delta));
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_hy_bwd_prep, lc_hy_blocks(ntok), LC_CUDA_EW_THREADS, c->stream)(
        delta, invz, mrow, dy, y, mx, den, g);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }

    err = hy_scores(c, &g, A, L, Qb, Kb, FQb, FKb);
    if (err != NULL) {
        return err;
    }
    /* dS = g . v over the near keys (key-major) */
    err = lc_hy_gemm(c, 0, 1, 2 * W, W, D, 1.0f, Vb - (size_t)W * D, D, (long long)W * D, DYb, D,
                     (long long)W * D, 0.0f, dS, W, 2LL * W * W, g.nb);
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_hy_bwd_rows, lc_hy_blocks((int64_t)nrow), LC_CUDA_EW_THREADS, c->stream)(
        A, dS, L, Gl, thr, delta, invz, mrow, theta, g);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }

    if (dq != NULL) {
        err = lc_hy_gemm(c, 1, 0, W, D, 2 * W, scale, dS, W, 2LL * W * W, Kb - (size_t)W * D, D,
                         (long long)W * D, 0.0f, X, D, (long long)W * D, g.nb);
        if (err != NULL) {
            return err;
        }
        /* X is numbered as rows from base */
        err = lc_hy_unpack(c, dq, X, &g, D, 0);
        if (err != NULL) {
            return err;
        }
    }
    if (dk != NULL) {
        err = lc_hy_gemm(c, 0, 0, 2 * W, D, W, scale, dS, W, 2LL * W * W, Qb, D, (long long)W * D,
                         0.0f, E, D, 2LL * W * D, g.nb);
        if (err != NULL) {
            return err;
        }
        LC_LAUNCH(k_hy_kv_grad, lc_hy_blocks((int64_t)g.B * g.T * g.Hkv * D), LC_CUDA_EW_THREADS,
                  c->stream)(dk, E, NULL, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
    }
    if (dfq != NULL) {
        if (has_state) {
            err = hy_state(c, &g, S, z, FKb, Vb);
            if (err != NULL) {
                return err;
            }
            err = lc_hy_gemm(c, 0, 1, W, F, D, 1.0f, DYb, D, (long long)W * D, S, D,
                             (long long)F * D, 0.0f, X, F, (long long)W * F, g.nb);
            if (err != NULL) {
                return err;
            }
            LC_LAUNCH(k_hy_dfq_fix, lc_hy_blocks((int64_t)nrow * F), LC_CUDA_EW_THREADS,
                      c->stream)(X, z, delta, invz, g);
            err = lc_cuda_launched();
            if (err != NULL) {
                return err;
            }
        } else {
            err = lc_hy_zero(c, X, nrow * F);
            if (err != NULL) {
                return err;
            }
        }
        if (sliding) {
            err = lc_hy_gemm(c, 1, 0, W, F, W, 1.0f, Gl, W, (long long)W * W, FKb - (size_t)W * F,
                             F, (long long)W * F, 1.0f, X, F, (long long)W * F, g.nb);
            if (err != NULL) {
                return err;
            }
        }
        err = lc_hy_unpack(c, dfq, X, &g, F, 0);
        if (err != NULL) {
            return err;
        }
    }

    if (need_rev) {
        /* S, z become R [nb, F, D] = sum over query blocks u' >= u + 2 of
         * (fq invz)^T g, and r [nb, F] = sum of fq delta invz */
        LC_LAUNCH(k_hy_scale_rows, lc_hy_blocks((int64_t)nrow * F), LC_CUDA_EW_THREADS,
                  c->stream)(Fs, FQb, invz, (int64_t)nrow, F);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
        err = lc_hy_gemm(c, 1, 0, F, D, W, 1.0f, Fs, F, (long long)W * F, DYb, D, (long long)W * D,
                         0.0f, S, D, (long long)F * D, g.nb);
        if (err != NULL) {
            return err;
        }
        err = lc_hy_colsum(c, z, FQb, delta, invz, &g);
        if (err != NULL) {
            return err;
        }
        err = lc_hy_scan_state(c, S, z, &g, 1);
        if (err != NULL) {
            return err;
        }
    }
    if (dfk != NULL) {
        /* X: one leading block, then the rows from base */
        float *Xb = X + (size_t)W * F;
        if (need_rev) {
            err = lc_hy_zero(c, X, (size_t)W * F);
            if (err != NULL) {
                return err;
            }
            err = lc_hy_gemm(c, 0, 1, W, F, D, 1.0f, Vb, D, (long long)W * D, S, D,
                             (long long)F * D, 0.0f, Xb, F, (long long)W * F, g.nb);
            if (err != NULL) {
                return err;
            }
            LC_LAUNCH(k_hy_dfk_fix, lc_hy_blocks((int64_t)nrow * F), LC_CUDA_EW_THREADS,
                      c->stream)(Xb, z, g);
            err = lc_cuda_launched();
            if (err != NULL) {
                return err;
            }
        } else {
            err = lc_hy_zero(c, X, (nrow + W) * F);
            if (err != NULL) {
                return err;
            }
        }
        if (sliding) {
            /* the near linear keys of row block u are block u - 1 */
            err = lc_hy_gemm(c, 0, 0, W, F, W, 1.0f, Gl, W, (long long)W * W, FQb, F,
                             (long long)W * F, 1.0f, X, F, (long long)W * F, g.nb);
            if (err != NULL) {
                return err;
            }
        }
        err = lc_hy_unpack(c, dfk, Xb, &g, F, 0);
        if (err != NULL) {
            return err;
        }
    }
    if (dv != NULL) {
        if (need_rev) {
            err = lc_hy_gemm(c, 0, 0, W, D, F, 1.0f, FKb, F, (long long)W * F, S, D,
                             (long long)F * D, 0.0f, Dvl, D, (long long)W * D, g.nb);
            if (err != NULL) {
                return err;
            }
        }
        err = lc_hy_gemm(c, 0, 0, 2 * W, D, W, 1.0f, A, W, 2LL * W * W, DYb, D, (long long)W * D,
                         0.0f, E, D, 2LL * W * D, g.nb);
        if (err != NULL) {
            return err;
        }
        LC_LAUNCH(k_hy_kv_grad, lc_hy_blocks((int64_t)g.B * g.T * g.Hkv * D), LC_CUDA_EW_THREADS,
                  c->stream)(dv, E, Dvl, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
    }
    if (dtheta != NULL) {
        err = lc_hy_dtheta(c, dtheta, thr, theta, &g);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}
