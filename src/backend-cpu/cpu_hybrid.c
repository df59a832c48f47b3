/*
 * Hybrid window attention on the CPU: the chunked form, O(T) memory.
 *
 * Queries are processed in blocks of W rows (block t = rows tW ..).  The
 * window keys of every row of block t lie in blocks t-1 and t (the "near"
 * keys, at most 2W); keys in blocks <= t-2 are always linear keys and are
 * summed into a running state S = sum fk_j v_j^T [F, D], z = sum fk_j [F].
 * So a block costs a few SGEMMs: scores [nb x nk] against the near keys,
 * weights times near values, fq times S, and the state update.  In sliding
 * mode part of block t-1 is linear for some rows: those entries of the near
 * weight matrix hold fq_i . fk_j instead of window weights.
 *
 * The backward replays the forward scan for dfq = (S g - delta z) / Z and
 * runs a reverse scan with R = sum fq_i g_i^T / Z_i, r = sum delta_i fq_i /
 * Z_i over the query blocks for which a key block is linear:
 * dfk_j = R v_j - r and the linear part of dv_j = R^T fk_j.
 *
 * Work is split over (batch, query head) with OpenMP; each thread works in
 * its own slice of the backend's scratch.  Nothing is reduced
 * across tasks in an order that depends on the thread count: key and value
 * gradients go to per-query-head buffers summed afterwards in head order,
 * and dtheta partials are summed in batch order.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend-cpu/cpu_hybrid.h"
#include "backend-cpu/cpu_hybrid_rows.h"
#include "core/ref/ref.h"
#include "core/util.h"

/* One (batch, query head) task's views of the tensors: row i of a
 * per-token head tensor is at base + i * ld. */
struct hy_view {
    int T, D, F, W, mode, nblk;
    int ldq, ldk, ldf, ldm; /* [.., H, D], [.., Hkv, D], [.., H, F], [.., H] */
    float gamma, scale;
    const float *Q, *K, *V, *FQ, *FK;
};

static void view_init(struct hy_view *w, const struct lc_attn_shape *s, int b, int h,
                      const float *q, const float *k, const float *v, const float *fq,
                      const float *fk, const float *theta)
{
    /* grouped queries: consecutive query heads share key head g */
    const int g = h / (s->H / s->Hkv);
    const size_t bt = (size_t)b * (size_t)s->T;

    w->T = s->T;
    w->D = s->D;
    w->F = s->F;
    w->W = s->window;
    w->mode = s->mode;
    w->nblk = (int)(((int64_t)s->T + s->window - 1) / s->window);
    w->ldq = s->H * s->D;
    w->ldk = s->Hkv * s->D;
    w->ldf = s->H * s->F;
    w->ldm = s->H;
    w->gamma = 1.0f / (1.0f + expf(-theta[h]));
    w->scale = 1.0f / sqrtf((float)s->D);
    w->Q = q + (bt * (size_t)s->H + (size_t)h) * (size_t)s->D;
    w->K = k + (bt * (size_t)s->Hkv + (size_t)g) * (size_t)s->D;
    w->V = v + (bt * (size_t)s->Hkv + (size_t)g) * (size_t)s->D;
    w->FQ = fq + (bt * (size_t)s->H + (size_t)h) * (size_t)s->F;
    w->FK = fk + (bt * (size_t)s->H + (size_t)h) * (size_t)s->F;
}

/* Block t: query rows [i0, i0 + nb), near keys [j0, j0 + nk), of which the
 * first np belong to block t-1. */
struct hy_block {
    int i0, nb, j0, nk, np;
};

static struct hy_block block_of(const struct hy_view *w, int t)
{
    struct hy_block bk;

    bk.i0 = t * w->W;
    bk.nb = w->T - bk.i0 < w->W ? w->T - bk.i0 : w->W;
    bk.j0 = t > 0 ? bk.i0 - w->W : 0;
    bk.nk = bk.i0 + bk.nb - bk.j0;
    bk.np = bk.i0 - bk.j0;
    return bk;
}

/* the largest nb and nk of any block */
static void block_max(const struct lc_attn_shape *s, size_t *nbmax, size_t *nkmax)
{
    *nbmax = (size_t)(s->window < s->T ? s->window : s->T);
    *nkmax = (size_t)((int64_t)2 * s->window < s->T ? 2 * s->window : s->T);
}

/* scratch floats of one forward task */
static size_t fwd_slice(const struct lc_attn_shape *s)
{
    size_t nb, nk;

    block_max(s, &nb, &nk);
    return lc_hy_round(nb * nk) + lc_hy_round(nb * nb) + lc_hy_round((size_t)s->F * s->D) +
           lc_hy_round((size_t)s->F) + lc_hy_round(nb);
}

/* scratch floats of one backward task */
static size_t bwd_slice(const struct lc_attn_shape *s)
{
    size_t nb, nk;

    block_max(s, &nb, &nk);
    return 3 * lc_hy_round(nb * nk) + lc_hy_round(nb * nb) + lc_hy_round((size_t)s->F * s->D) +
           2 * lc_hy_round((size_t)s->F) + 2 * lc_hy_round((size_t)s->T) +
           lc_hy_round(nb * (size_t)s->F);
}

static inline size_t off(int row, int ld)
{
    return (size_t)row * (size_t)ld;
}

/* The short vector loops are marked omp simd: without -ffast-math the
 * compiler would not vectorize them otherwise.  Dot products use the
 * ISA's kernel: a latency-bound scalar sum over D costs as much as a
 * small GEMM. */

/* Scores of block bk against its near keys, A[nb, nk] = scale Q K^T, and in
 * sliding mode the linear weights against block t-1, L[nb, np] = fq fk^T. */
static void block_scores(const struct hy_view *w, const struct hy_block *bk, float *A, float *L)
{
    lc_hy_sgemm(0, 1, bk->nb, bk->nk, w->D, w->scale, w->Q + off(bk->i0, w->ldq), w->ldq,
                w->K + off(bk->j0, w->ldk), w->ldk, 0.0f, A, bk->nk);
    if (w->mode == LC_WINDOW_SLIDING && bk->np > 0) {
        lc_hy_sgemm(0, 1, bk->nb, bk->np, w->F, 1.0f, w->FQ + off(bk->i0, w->ldf), w->ldf,
                    w->FK + off(bk->j0, w->ldf), w->ldf, 0.0f, L, bk->np);
    }
}

/* After block t: S, z += block t-1 (linear for every row of block t+1).
 * Block t-1 is never the last block, so it has all W rows. */
static void state_add_block(const struct hy_view *w, int t, float *S, float *z)
{
    const int u0 = (t - 1) * w->W;
    const float *FK = w->FK + off(u0, w->ldf);

    lc_hy_sgemm(1, 0, w->F, w->D, w->W, 1.0f, FK, w->ldf, w->V + off(u0, w->ldk), w->ldk, 1.0f,
                S, w->D);
    for (int r = 0; r < w->W; r++) {
        const float *fr = FK + off(r, w->ldf);
#pragma omp simd
        for (int e = 0; e < w->F; e++) {
            z[e] += fr[e];
        }
    }
}

/* ---------------------------------------------------------------- forward */

static void fwd_task(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s,
                     const struct hy_view *w, float *ws, float *Y, float *MX, float *DEN)
{
    const int D = w->D, F = w->F;
    size_t nbmax, nkmax;
    float *A = NULL, *L = NULL, *S = NULL, *z = NULL, *rden = NULL;

    block_max(s, &nbmax, &nkmax);
    A = lc_hy_take(&ws, nbmax * nkmax);
    L = lc_hy_take(&ws, nbmax * nbmax);
    S = lc_hy_take(&ws, (size_t)F * (size_t)D);
    z = lc_hy_take(&ws, (size_t)F);
    rden = lc_hy_take(&ws, nbmax);
    memset(S, 0, (size_t)F * (size_t)D * sizeof(float));
    memset(z, 0, (size_t)F * sizeof(float));

    /* When block t is computed, S and z hold the blocks <= t-2 only: block
     * t-1 is still near (window or sliding-linear keys) for block t and
     * goes into the state after it. */
    for (int t = 0; t < w->nblk; t++) {
        const struct hy_block bk = block_of(w, t);
        float *Yb = Y + off(bk.i0, w->ldq);

        block_scores(w, &bk, A, L);
        for (int r = 0; r < bk.nb; r++) {
            const int i = bk.i0 + r;
            const int wa = lc_window_start(i, w->W, w->mode) - bk.j0;
            const int wb = i - bk.j0 + 1;
            float *row = A + off(r, bk.nk);
            float m, sum;

            /* Columns [wa, wb) of the row are the window keys of row i
             * (wa is 0 in terraced mode), those past wb are future keys.
             * The weights overwrite the scores in place, and the zeroed
             * future columns let one GEMM cover the whole block. */
            sum = kr->exp_row(row + wa, row + wa, wb - wa, w->gamma, &m);
            for (int c = 0; c < wa; c++) {
                /* sliding mode: linear keys of block t-1 */
                row[c] = L[off(r, bk.np) + (size_t)c];
                sum += row[c];
            }
            for (int c = wb; c < bk.nk; c++) {
                row[c] = 0.0f;
            }
            rden[r] = sum;
            /* m is kept: the linear weights are not scaled by exp(-m), so
             * the output depends on it and the backward needs it */
            if (MX != NULL) {
                MX[off(i, w->ldm)] = m;
            }
        }
        /* Y holds the unnormalized sums until the division by Z below */
        lc_hy_sgemm(0, 0, bk.nb, D, bk.nk, 1.0f, A, bk.nk, w->V + off(bk.j0, w->ldk), w->ldk, 0.0f,
                    Yb, w->ldq);
        /* the state is empty before block 2 */
        if (t >= 2) {
            lc_hy_sgemm(0, 0, bk.nb, D, F, 1.0f, w->FQ + off(bk.i0, w->ldf), w->ldf, S, D, 1.0f,
                        Yb, w->ldq);
            for (int r = 0; r < bk.nb; r++) {
                rden[r] += kr->dot(w->FQ + off(bk.i0 + r, w->ldf), z, F);
            }
        }
        for (int r = 0; r < bk.nb; r++) {
            float *yr = Yb + off(r, w->ldq);
            const float dr = rden[r];
#pragma omp simd
            for (int d = 0; d < D; d++) {
                yr[d] = yr[d] / dr;
            }
            if (DEN != NULL) {
                DEN[off(bk.i0 + r, w->ldm)] = rden[r];
            }
        }
        /* no block t-1 at t = 0; after the last block nothing reads S */
        if (t >= 1 && t + 1 < w->nblk) {
            state_add_block(w, t, S, z);
        }
    }
}

void lc_cpu_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int ntask = s->B * s->H;
    const int nt = omp_get_max_threads();
    struct lc_hy_work work;

    if (ntask <= 0 || s->T <= 0 || !lc_hy_work_get(be, &work, 0, fwd_slice(s), nt)) {
        return;
    }
    /* Each task writes only its own rows of y, mx and den, and its scratch
     * slice is written before it is read, so which thread runs a task
     * does not change the result. */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < ntask; task++) {
        const int b = task / s->H, h = task % s->H;
        const size_t bt = (size_t)b * (size_t)s->T;
        struct hy_view w;

        view_init(&w, s, b, h, q, k, v, fq, fk, theta);
        fwd_task(kr, s, &w, lc_hy_work_slice(&work),
                 y + (bt * (size_t)s->H + (size_t)h) * (size_t)s->D,
                 mx != NULL ? mx + bt * (size_t)s->H + (size_t)h : NULL,
                 den != NULL ? den + bt * (size_t)s->H + (size_t)h : NULL);
    }
}

/* --------------------------------------------------------------- backward */

/* the gradient outputs of one task, each NULL when not wanted; DK and DV
 * are this query head's share [T, D] (row stride ldkh) */
struct hy_grads {
    float *DQ, *DK, *DV, *DFQ, *DFK;
    int ldkh;
    const float *DY, *Y, *MX, *DEN;
};

static void zero_rows(float *base, int rows, int ld, int n)
{
    if (base != NULL) {
        for (int r = 0; r < rows; r++) {
            memset(base + off(r, ld), 0, (size_t)n * sizeof(float));
        }
    }
}

/* Returns sum over rows of sum_W G e (dtheta = that times 1 - gamma). */
static double bwd_task(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s,
                       const struct hy_view *w, float *ws, const struct hy_grads *o)
{
    const int T = w->T, D = w->D, F = w->F;
    const int sliding = w->mode == LC_WINDOW_SLIDING;
    size_t nbmax, nkmax;
    float *A = NULL, *dS = NULL, *P = NULL, *L = NULL, *S = NULL, *z = NULL;
    float *delta = NULL, *invz = NULL, *Fs = NULL, *rr = NULL;
    double acc_theta = 0.0;

    block_max(s, &nbmax, &nkmax);
    A = lc_hy_take(&ws, nbmax * nkmax);
    dS = lc_hy_take(&ws, nbmax * nkmax);
    P = lc_hy_take(&ws, nbmax * nkmax);
    L = lc_hy_take(&ws, nbmax * nbmax);
    S = lc_hy_take(&ws, (size_t)F * (size_t)D);
    z = lc_hy_take(&ws, (size_t)F);
    rr = lc_hy_take(&ws, (size_t)F);
    delta = lc_hy_take(&ws, (size_t)T);
    invz = lc_hy_take(&ws, (size_t)T);
    Fs = lc_hy_take(&ws, nbmax * (size_t)F);
    memset(S, 0, (size_t)F * (size_t)D * sizeof(float));
    memset(z, 0, (size_t)F * sizeof(float));
    memset(rr, 0, (size_t)F * sizeof(float));

    /* DK, DV and DFK are accumulated block by block (a key block is near
     * for two query blocks, and linear for later ones); DQ and DFQ are
     * written once per block and need no zeroing. */
    zero_rows(o->DK, T, o->ldkh, D);
    zero_rows(o->DV, T, o->ldkh, D);
    zero_rows(o->DFK, T, w->ldf, F);

    /* forward scan: the near keys of each query block, and dfq from the state.
     * The scores are recomputed rather than kept from the forward (which
     * would take T x 2W floats per head); only MX and DEN are kept. */
    for (int t = 0; t < w->nblk; t++) {
        const struct hy_block bk = block_of(w, t);
        const float *DYb = o->DY + off(bk.i0, w->ldq);

        block_scores(w, &bk, A, L);
        /* dS = g v^T over the near keys, turned row by row into dL/ds */
        lc_hy_sgemm(0, 1, bk.nb, bk.nk, D, 1.0f, DYb, w->ldq, w->V + off(bk.j0, w->ldk), w->ldk,
                    0.0f, dS, bk.nk);
        for (int r = 0; r < bk.nb; r++) {
            const int i = bk.i0 + r;
            const int wa = lc_window_start(i, w->W, w->mode) - bk.j0;
            const int wb = i - bk.j0 + 1;
            const float dl = kr->dot(DYb + off(r, w->ldq), o->Y + off(i, w->ldq), D);
            const float iz = 1.0f / o->DEN[off(i, w->ldm)];
            float *dsr = dS + off(r, bk.nk), *pr = P + off(r, bk.nk);

            /* kept per row for the reverse scan */
            delta[i] = dl;
            invz[i] = iz;
            acc_theta += kr->bwd_row(dsr + wa, pr + wa, A + off(r, bk.nk) + wa, wb - wa,
                                     o->MX[off(i, w->ldm)], w->gamma, dl, iz);
            for (int c = 0; c < wa; c++) {
                /* sliding mode: linear keys of block t-1; L becomes G.
                 * A linear weight has no score, so its dS entry is 0. */
                float *lc = L + off(r, bk.np) + (size_t)c;
                pr[c] = *lc * iz;
                *lc = (dsr[c] - dl) * iz;
                dsr[c] = 0.0f;
            }
            /* the window part of block t-1 must not reach dfq, dfk via L */
            for (int c = wa; sliding && c < bk.np; c++) {
                L[off(r, bk.np) + (size_t)c] = 0.0f;
            }
            for (int c = wb; c < bk.nk; c++) {
                dsr[c] = 0.0f;
                pr[c] = 0.0f;
            }
        }
        if (o->DQ != NULL) {
            lc_hy_sgemm(0, 0, bk.nb, D, bk.nk, w->scale, dS, bk.nk, w->K + off(bk.j0, w->ldk),
                        w->ldk, 0.0f, o->DQ + off(bk.i0, w->ldq), w->ldq);
        }
        if (o->DK != NULL) {
            lc_hy_sgemm(1, 0, bk.nk, D, bk.nb, w->scale, dS, bk.nk, w->Q + off(bk.i0, w->ldq),
                        w->ldq, 1.0f, o->DK + off(bk.j0, o->ldkh), o->ldkh);
        }
        if (o->DV != NULL) {
            lc_hy_sgemm(1, 0, bk.nk, D, bk.nb, 1.0f, P, bk.nk, DYb, w->ldq, 1.0f,
                        o->DV + off(bk.j0, o->ldkh), o->ldkh);
        }
        if (o->DFQ != NULL) {
            float *DFQb = o->DFQ + off(bk.i0, w->ldf);
            if (t >= 2) {
                /* dfq_i = (S^T g_i - delta_i z) / Z_i */
                lc_hy_sgemm(0, 1, bk.nb, F, D, 1.0f, DYb, w->ldq, S, D, 0.0f, DFQb, w->ldf);
                for (int r = 0; r < bk.nb; r++) {
                    float *dr = DFQb + off(r, w->ldf);
                    const float dl = delta[bk.i0 + r], iz = invz[bk.i0 + r];
#pragma omp simd
                    for (int e = 0; e < F; e++) {
                        dr[e] = (dr[e] - dl * z[e]) * iz;
                    }
                }
            } else {
                zero_rows(DFQb, bk.nb, w->ldf, F);
            }
            if (sliding && bk.np > 0) {
                lc_hy_sgemm(0, 0, bk.nb, F, bk.np, 1.0f, L, bk.np, w->FK + off(bk.j0, w->ldf),
                            w->ldf, 1.0f, DFQb, w->ldf);
            }
            /* the state is read only for dfq, so it is built only here */
            if (t >= 1 && t + 1 < w->nblk) {
                state_add_block(w, t, S, z);
            }
        }
        if (o->DFK != NULL && sliding && bk.np > 0) {
            lc_hy_sgemm(1, 0, bk.np, F, bk.nb, 1.0f, L, bk.np, w->FQ + off(bk.i0, w->ldf), w->ldf,
                        1.0f, o->DFK + off(bk.j0, w->ldf), w->ldf);
        }
    }

    /* reverse scan: R, r over the query blocks >= u + 2 for key block u.
     * Going down from the last key block, each step adds one query block
     * (u + 2), so R and r are suffix sums built in one pass. */
    if (o->DFK != NULL || o->DV != NULL) {
        /* the state's buffer, free once the forward scan is done */
        float *R = S;

        memset(R, 0, (size_t)F * (size_t)D * sizeof(float));
        for (int u = w->nblk - 3; u >= 0; u--) {
            const struct hy_block kq = block_of(w, u + 2);
            const struct hy_block ku = block_of(w, u);

            for (int r = 0; r < kq.nb; r++) {
                const int i = kq.i0 + r;
                const float *fqr = w->FQ + off(i, w->ldf);
                const float iz = invz[i], dz = delta[i] * invz[i];
                float *fs = Fs + off(r, F);
                /* fq_i / Z_i, so that one GEMM adds sum fq_i g_i^T / Z_i */
#pragma omp simd
                for (int e = 0; e < F; e++) {
                    fs[e] = fqr[e] * iz;
                    rr[e] += fqr[e] * dz;
                }
            }
            lc_hy_sgemm(1, 0, F, D, kq.nb, 1.0f, Fs, F, o->DY + off(kq.i0, w->ldq), w->ldq,
                        1.0f, R, D);
            if (o->DFK != NULL) {
                float *DFKb = o->DFK + off(ku.i0, w->ldf);
                lc_hy_sgemm(0, 1, ku.nb, F, D, 1.0f, w->V + off(ku.i0, w->ldk), w->ldk, R, D,
                            1.0f, DFKb, w->ldf);
                for (int r = 0; r < ku.nb; r++) {
                    float *dr = DFKb + off(r, w->ldf);
#pragma omp simd
                    for (int e = 0; e < F; e++) {
                        dr[e] -= rr[e];
                    }
                }
            }
            if (o->DV != NULL) {
                lc_hy_sgemm(0, 0, ku.nb, D, F, 1.0f, w->FK + off(ku.i0, w->ldf), w->ldf, R, D,
                            1.0f, o->DV + off(ku.i0, o->ldkh), o->ldkh);
            }
        }
    }

    return acc_theta;
}

void lc_cpu_hybrid_bwd(struct lc_backend *be, float *dq, float *dk, float *dv, float *dfq,
                       float *dfk, float *dtheta, const float *dy, const float *y,
                       const float *mx, const float *den, const float *q, const float *k,
                       const float *v, const float *fq, const float *fk, const float *theta,
                       const struct lc_attn_shape *s)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int B = s->B, T = s->T, H = s->H, Hkv = s->Hkv, D = s->D;
    const int rep = H / Hkv;
    const int ntask = B * H;
    const size_t nrow = (size_t)B * (size_t)T;
    const int nt = omp_get_max_threads();
    /* with grouped queries each query head's share of dk, dv goes to its
     * own buffer ([B, T, H, D]), summed over the group afterwards */
    const size_t nkh = rep > 1 ? nrow * (size_t)H * (size_t)D : 0;
    float *dkh = dk, *dvh = dv, *sh = NULL;
    double *acc = NULL; /* [B * H] */
    struct lc_hy_work work;

    if (ntask <= 0 || T <= 0 ||
        !lc_hy_work_get(be, &work,
                        2 * lc_hy_round(nkh) + lc_hy_round(2 * (size_t)ntask), bwd_slice(s),
                        nt)) {
        return;
    }
    sh = work.shared;
    /* one double per task (2 floats each), summed in batch order by
     * lc_hy_dtheta_add so that dtheta does not depend on the thread count */
    acc = (double *)lc_hy_take(&sh, 2 * (size_t)ntask);
    /* with one query head per key head, dkh and dvh stay dk and dv: the
     * tasks then write disjoint rows */
    if (rep > 1) {
        float *bk = lc_hy_take(&sh, nkh), *bv = lc_hy_take(&sh, nkh);
        dkh = dk != NULL ? bk : NULL;
        dvh = dv != NULL ? bv : NULL;
    }

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < ntask; task++) {
        const int b = task / H, h = task % H;
        const size_t bt = (size_t)b * (size_t)T;
        const size_t hd = (bt * (size_t)H + (size_t)h) * (size_t)D;
        const size_t hf = (bt * (size_t)H + (size_t)h) * (size_t)s->F;
        const size_t hm = bt * (size_t)H + (size_t)h;
        struct hy_view w;
        struct hy_grads o;

        view_init(&w, s, b, h, q, k, v, fq, fk, theta);
        o.DQ = dq != NULL ? dq + hd : NULL;
        o.DK = dkh != NULL ? dkh + hd : NULL;
        o.DV = dvh != NULL ? dvh + hd : NULL;
        o.DFQ = dfq != NULL ? dfq + hf : NULL;
        o.DFK = dfk != NULL ? dfk + hf : NULL;
        o.ldkh = H * D;
        o.DY = dy + hd;
        o.Y = y + hd;
        o.MX = mx + hm;
        o.DEN = den + hm;
        acc[task] = bwd_task(kr, s, &w, lc_hy_work_slice(&work), &o);
    }

    if (rep > 1) {
        const int64_t nout = (int64_t)nrow * Hkv;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t ro = 0; ro < nout; ro++) {
            const size_t n = (size_t)(ro / Hkv);
            const int g = (int)(ro % Hkv);
            const size_t src = (n * (size_t)H + (size_t)g * (size_t)rep) * (size_t)D;
            const size_t dst = (size_t)ro * (size_t)D;

            /* j == 0 assigns, so dk and dv need no zeroing, and the sum
             * runs in head order whatever the thread count */
            for (int j = 0; j < rep; j++) {
                const size_t sj = src + (size_t)j * (size_t)D;
                if (dk != NULL) {
                    float *o = dk + dst;
                    const float *a = dkh + sj;
#pragma omp simd
                    for (int d = 0; d < D; d++) {
                        o[d] = j == 0 ? a[d] : o[d] + a[d];
                    }
                }
                if (dv != NULL) {
                    float *o = dv + dst;
                    const float *a = dvh + sj;
#pragma omp simd
                    for (int d = 0; d < D; d++) {
                        o[d] = j == 0 ? a[d] : o[d] + a[d];
                    }
                }
            }
        }
    }

    if (dtheta != NULL) {
        lc_hy_dtheta_add(dtheta, theta, acc, B, H);
    }
}
