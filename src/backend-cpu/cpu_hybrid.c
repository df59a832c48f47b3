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
 * The block products run through the ISA's small-GEMM kernel (cpu_kernels.h)
 * on operands packed once: a task is the query heads of one key head of
 * one sequence, which share the packed K^T, V (and V^T) of each block, and
 * each head keeps its state S (S^T in the backward) packed, as the next
 * block's product reads it.  The generic set runs the same products
 * through OpenBLAS.
 *
 * Work is split over those tasks with OpenMP; each thread works in
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

/* ------------------------------------------------------ packed operands */

/* A matrix packed as the ISA's GEMM kernel reads its B operand (or
 * writes a packed C): K rows of N columns in panels of P (cpu_kernels.h). */
struct hy_pk {
    float *p;
    int K, N, P;
};

static int panel_width(const struct lc_cpu_kernels *kr, int N)
{
    return kr->gemm_np > 0 ? kr->gemm_np : (N > 0 ? N : 1);
}

/* the floats of a packed K x N matrix, rounded for lc_hy_take */
static size_t packed_size(const struct lc_cpu_kernels *kr, int K, int N)
{
    const size_t P = (size_t)panel_width(kr, N);
    return lc_hy_round((size_t)K * (((size_t)N + P - 1) / P * P));
}

/* a packed K x N matrix at p, its contents not yet written */
static struct hy_pk pk_at(const struct lc_cpu_kernels *kr, float *p, int K, int N)
{
    struct hy_pk m;

    m.p = p;
    m.K = K;
    m.N = N;
    m.P = panel_width(kr, N);
    return m;
}

/* m = B (K x N), B(k, n) = b[k bks + n bns] */
static void pk_fill(const struct lc_cpu_kernels *kr, struct hy_pk *m, const float *b, int K, int N,
                    ptrdiff_t bks, ptrdiff_t bns)
{
    *m = pk_at(kr, m->p, K, N);
    kr->gemm_pack(m->p, b, K, N, bks, bns);
}

/* C (M x N, row-major, ldc) = alpha A B + beta C over the first K rows of
 * the packed B, A(r, k) = a[r ars + k aks] */
static void mm(const struct lc_cpu_kernels *kr, int M, int K, float alpha, const float *a,
               ptrdiff_t ars, ptrdiff_t aks, const struct hy_pk *b, float beta, float *c, int ldc)
{
    kr->gemm(M, b->N, K, alpha, a, ars, aks, b->p, (ptrdiff_t)b->K * b->P, beta, c, ldc, b->P);
}

/* the same into a packed C of M = c->K rows (a state kept packed, as the
 * next products read it) */
static void mm_packed(const struct lc_cpu_kernels *kr, int K, float alpha, const float *a,
                      ptrdiff_t ars, ptrdiff_t aks, const struct hy_pk *b, float beta,
                      struct hy_pk *c)
{
    LC_ASSERT(c->N == b->N && c->P == b->P);
    kr->gemm(c->K, b->N, K, alpha, a, ars, aks, b->p, (ptrdiff_t)b->K * b->P, beta, c->p, c->P,
             (ptrdiff_t)c->K * c->P);
}

/* The near keys of block t are those of key blocks t-1 and t, each packed
 * once (when block t is the query block) and kept for block t+1: near[0]
 * is block t-1's pack (NULL at t = 0), near[1] block t's. */

/* C[:, 0:np] = alpha A near[0], C[:, np:] = alpha A near[1] (the near
 * keys as columns: scores, g v^T) */
static void mm_near_cols(const struct lc_cpu_kernels *kr, int M, int K, float alpha,
                         const float *a, ptrdiff_t ars, ptrdiff_t aks,
                         const struct hy_pk *const near[2], float *c, int ldc)
{
    int np = 0;

    if (near[0] != NULL) {
        mm(kr, M, K, alpha, a, ars, aks, near[0], 0.0f, c, ldc);
        np = near[0]->N;
    }
    mm(kr, M, K, alpha, a, ars, aks, near[1], 0.0f, c + np, ldc);
}

/* C = alpha (A[:, 0:np] near[0] + A[:, np:] near[1]) + beta C (the near
 * keys as rows: weights times values, dq) */
static void mm_near_rows(const struct lc_cpu_kernels *kr, int M, float alpha, const float *a,
                         ptrdiff_t ars, ptrdiff_t aks, const struct hy_pk *const near[2],
                         float beta, float *c, int ldc)
{
    if (near[0] != NULL) {
        mm(kr, M, near[0]->K, alpha, a, ars, aks, near[0], beta, c, ldc);
        a += near[0]->K * aks;
        beta = 1.0f;
    }
    mm(kr, M, near[1]->K, alpha, a, ars, aks, near[1], beta, c, ldc);
}

/* ------------------------------------------------------------ tasks */

/* A task is the query heads [h0, h1) of key head g in sequence b: they
 * share the packed keys and values of every block.  Each head's products
 * are the same calls whichever task holds it, so the split does not
 * change the results; it gives at least one task per thread where the
 * key heads alone would not.
 *
 * Tasks are handed out in order, so the last ones taken decide how long
 * the threads wait for each other.  Where every thread has several tasks,
 * the last key heads are split into one task per query head: a thread
 * slowed by the rest of the machine then holds the others up by one head
 * rather than a whole group (this packs those key heads' blocks once per
 * query head). */
struct hy_split {
    int hpt, chunks; /* heads per task, tasks per key head, of the first nbig */
    int nbig;        /* key heads split so; those after them: a task per head */
    int ntask;
};

static struct hy_split split_of(const struct lc_attn_shape *s, int nt)
{
    const int rep = s->H / s->Hkv;
    const int groups = s->B * s->Hkv;
    struct hy_split sp;
    int want = 1, tail = 0;

    while (groups * want < nt && want < rep) {
        want++;
    }
    sp.hpt = (rep + want - 1) / want;
    sp.chunks = (rep + sp.hpt - 1) / sp.hpt;
    if (sp.hpt > 1) {
        /* enough single heads for a last task on every thread, after a
         * whole round of the larger tasks */
        tail = (nt + rep - 1) / rep;
        tail = groups - tail >= nt ? tail : 0;
    }
    sp.nbig = groups - tail;
    sp.ntask = sp.nbig * sp.chunks + tail * rep;
    return sp;
}

/* the heads of task `task` */
static void task_heads(const struct lc_attn_shape *s, const struct hy_split *sp, int task,
                       int *b, int *h0, int *h1)
{
    const int rep = s->H / s->Hkv;
    const int first = sp->nbig * sp->chunks;
    int bg, hpt, chunk, g;

    if (task < first) {
        bg = task / sp->chunks;
        chunk = task % sp->chunks;
        hpt = sp->hpt;
    } else {
        bg = sp->nbig + (task - first) / rep;
        chunk = (task - first) % rep;
        hpt = 1;
    }
    g = bg % s->Hkv;
    *b = bg / s->Hkv;
    *h0 = g * rep + chunk * hpt;
    *h1 = *h0 + hpt < (g + 1) * rep ? *h0 + hpt : (g + 1) * rep;
}

/* scratch floats of one forward task of hpt heads */
static size_t fwd_slice(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s, int hpt)
{
    size_t nb, nk;

    block_max(s, &nb, &nk);
    return 2 * packed_size(kr, s->D, (int)nb) + 2 * packed_size(kr, (int)nb, s->D) +
           lc_hy_round(nb * nk) + lc_hy_round(nb * nb) +
           lc_hy_round(nb) +
           (size_t)hpt * (packed_size(kr, s->F, s->D) + lc_hy_round((size_t)s->F));
}

static inline size_t off(int row, int ld)
{
    return (size_t)row * (size_t)ld;
}

/* The short vector loops are marked omp simd: without -ffast-math the
 * compiler would not vectorize them otherwise.  Dot products use the
 * ISA's kernel: a latency-bound scalar sum over D costs as much as a
 * small GEMM. */

/* Scores of block bk against its near keys (kt: their K^T packed),
 * A[nb, nk] = scale Q K^T, and in sliding mode the linear weights against
 * block t-1, L[nb, np] = fq fk^T. */
static void block_scores(const struct lc_cpu_kernels *kr, const struct hy_view *w,
                         const struct hy_block *bk, const struct hy_pk *const kt[2], float *A,
                         float *L)
{
    mm_near_cols(kr, bk->nb, w->D, w->scale, w->Q + off(bk->i0, w->ldq), w->ldq, 1, kt, A,
                 bk->nk);
    if (w->mode == LC_WINDOW_SLIDING && bk->np > 0) {
        lc_hy_sgemm(0, 1, bk->nb, bk->np, w->F, 1.0f, w->FQ + off(bk->i0, w->ldf), w->ldf,
                    w->FK + off(bk->j0, w->ldf), w->ldf, 0.0f, L, bk->np);
    }
}

/* z += the fk rows of block t-1 (which the caller adds to the state) */
static void z_add_block(const struct lc_cpu_kernels *kr, const struct hy_view *w, int t, float *z)
{
    const float *FK = w->FK + off((t - 1) * w->W, w->ldf);

    for (int r = 0; r < w->W; r++) {
        kr->add(z, FK + off(r, w->ldf), w->F);
    }
}

/* ---------------------------------------------------------------- forward */

static void fwd_task(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s, int b,
                     int h0, int h1, float *ws, const float *q, const float *k, const float *v,
                     const float *fq, const float *fk, const float *theta, float *y, float *mx,
                     float *den)
{
    const int D = s->D, F = s->F, nh = h1 - h0;
    const size_t bt = (size_t)b * (size_t)s->T;
    const size_t sslot = packed_size(kr, F, D), zslot = lc_hy_round((size_t)F);
    size_t nbmax, nkmax;
    struct hy_view w;
    struct hy_pk kts[2], vps[2];
    float *A = NULL, *L = NULL, *Sb = NULL, *zb = NULL, *rden = NULL;

    block_max(s, &nbmax, &nkmax);
    for (int u = 0; u < 2; u++) {
        kts[u] = pk_at(kr, lc_hy_take(&ws, packed_size(kr, D, (int)nbmax)), D, (int)nbmax);
        vps[u] = pk_at(kr, lc_hy_take(&ws, packed_size(kr, (int)nbmax, D)), (int)nbmax, D);
    }
    A = lc_hy_take(&ws, nbmax * nkmax);
    L = lc_hy_take(&ws, nbmax * nbmax);
    rden = lc_hy_take(&ws, nbmax);
    Sb = lc_hy_take(&ws, (size_t)nh * sslot);
    zb = lc_hy_take(&ws, (size_t)nh * zslot);
    /* each head's state S = sum fk_j v_j^T [F, D], packed, and z */
    memset(Sb, 0, (size_t)nh * sslot * sizeof(float));
    memset(zb, 0, (size_t)nh * zslot * sizeof(float));
    view_init(&w, s, b, h0, q, k, v, fq, fk, theta);

    /* When block t is computed, S and z hold the blocks <= t-2 only: block
     * t-1 is still near (window or sliding-linear keys) for block t and
     * goes into the state after it. */
    for (int t = 0; t < w.nblk; t++) {
        const struct hy_block bk = block_of(&w, t);
        const struct hy_pk *kt[2] = {t > 0 ? &kts[(t - 1) % 2] : NULL, &kts[t % 2]};
        const struct hy_pk *vp[2] = {t > 0 ? &vps[(t - 1) % 2] : NULL, &vps[t % 2]};

        /* K^T and V of key block t, once for the task's heads */
        pk_fill(kr, &kts[t % 2], w.K + off(bk.i0, w.ldk), D, bk.nb, 1, w.ldk);
        pk_fill(kr, &vps[t % 2], w.V + off(bk.i0, w.ldk), bk.nb, D, w.ldk, 1);
        for (int h = h0; h < h1; h++) {
            struct hy_view wh;
            struct hy_pk S = pk_at(kr, Sb + (size_t)(h - h0) * sslot, F, D);
            float *z = zb + (size_t)(h - h0) * zslot;
            const size_t hm = bt * (size_t)s->H + (size_t)h;
            float *Yb = y + hm * (size_t)D + off(bk.i0, w.ldq);

            view_init(&wh, s, b, h, q, k, v, fq, fk, theta);
            block_scores(kr, &wh, &bk, kt, A, L);
            for (int r = 0; r < bk.nb; r++) {
                const int i = bk.i0 + r;
                const int wa = lc_window_start(i, w.W, w.mode) - bk.j0;
                const int wb = i - bk.j0 + 1;
                float *row = A + off(r, bk.nk);
                float m, sum;

                /* Columns [wa, wb) of the row are the window keys of row i
                 * (wa is 0 in terraced mode), those past wb are future keys.
                 * The weights overwrite the scores in place, and the zeroed
                 * future columns let one GEMM cover the whole block. */
                sum = kr->exp_row(row + wa, row + wa, wb - wa, wh.gamma, &m);
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
                if (mx != NULL) {
                    mx[hm + off(i, w.ldm)] = m;
                }
            }
            /* Y holds the unnormalized sums until the division by Z below */
            mm_near_rows(kr, bk.nb, 1.0f, A, bk.nk, 1, vp, 0.0f, Yb, w.ldq);
            /* the state is empty before block 2 */
            if (t >= 2) {
                mm(kr, bk.nb, F, 1.0f, wh.FQ + off(bk.i0, w.ldf), w.ldf, 1, &S, 1.0f, Yb, w.ldq);
                for (int r = 0; r < bk.nb; r++) {
                    rden[r] += kr->dot(wh.FQ + off(bk.i0 + r, w.ldf), z, F);
                }
            }
            for (int r = 0; r < bk.nb; r++) {
                float *yr = Yb + off(r, w.ldq);
                kr->div_row(yr, yr, rden[r], D);
                if (den != NULL) {
                    den[hm + off(bk.i0 + r, w.ldm)] = rden[r];
                }
            }
            /* After block t: S, z += block t-1 (linear for every row of block
             * t+1), with its packed values.  No block t-1 at t = 0; after
             * the last block nothing reads S.  Block t-1 is never the last
             * block, so it has all W rows. */
            if (t >= 1 && t + 1 < w.nblk) {
                mm_packed(kr, w.W, 1.0f, wh.FK + off(bk.j0, w.ldf), 1, w.ldf, vp[0], 1.0f, &S);
                z_add_block(kr, &wh, t, z);
            }
        }
    }
}

void lc_cpu_hybrid_fwd(struct lc_backend *be, float *y, float *mx, float *den, const float *q,
                       const float *k, const float *v, const float *fq, const float *fk,
                       const float *theta, const struct lc_attn_shape *s)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int nt = omp_get_max_threads();
    struct hy_split sp;
    struct lc_hy_work work;

    if (s->B <= 0 || s->H <= 0 || s->T <= 0) {
        return;
    }
    sp = split_of(s, nt);
    if (!lc_hy_work_get(be, &work, 0, fwd_slice(kr, s, sp.hpt), nt)) {
        return;
    }
    /* Each task writes only its own heads' rows of y, mx and den, and its
     * scratch slice is written before it is read, so which thread runs a
     * task does not change the result. */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < sp.ntask; task++) {
        int b, h0, h1;

        task_heads(s, &sp, task, &b, &h0, &h1);
        fwd_task(kr, s, b, h0, h1, lc_hy_work_slice(&work), q, k, v, fq, fk, theta, y, mx, den);
    }
}

/* --------------------------------------------------------------- backward */

/* the gradient outputs of one query head, each NULL when not wanted; DK
 * and DV are this query head's share [T, D] (row stride ldkh) */
struct hy_grads {
    float *DQ, *DK, *DV, *DFQ, *DFK;
    int ldkh;
    const float *DY, *Y, *MX, *DEN;
};

/* the outputs and inputs of head h of sequence b */
struct hy_bwd_io {
    float *dq, *dkh, *dvh, *dfq, *dfk;
    const float *dy, *y, *mx, *den;
};

static void grads_init(struct hy_grads *o, const struct hy_bwd_io *io,
                       const struct lc_attn_shape *s, int b, int h)
{
    const size_t bt = (size_t)b * (size_t)s->T;
    const size_t hm = bt * (size_t)s->H + (size_t)h;
    const size_t hd = hm * (size_t)s->D, hf = hm * (size_t)s->F;

    o->DQ = io->dq != NULL ? io->dq + hd : NULL;
    o->DK = io->dkh != NULL ? io->dkh + hd : NULL;
    o->DV = io->dvh != NULL ? io->dvh + hd : NULL;
    o->DFQ = io->dfq != NULL ? io->dfq + hf : NULL;
    o->DFK = io->dfk != NULL ? io->dfk + hf : NULL;
    o->ldkh = s->H * s->D;
    o->DY = io->dy + hd;
    o->Y = io->y + hd;
    o->MX = io->mx + hm;
    o->DEN = io->den + hm;
}

static void zero_rows(float *base, int rows, int ld, int n)
{
    if (base != NULL) {
        for (int r = 0; r < rows; r++) {
            memset(base + off(r, ld), 0, (size_t)n * sizeof(float));
        }
    }
}

/* scratch floats of one backward task of hpt heads */
static size_t bwd_slice(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s, int hpt)
{
    const int D = s->D, F = s->F;
    size_t nb, nk;

    block_max(s, &nb, &nk);
    return 4 * packed_size(kr, D, (int)nb) + 3 * packed_size(kr, (int)nb, D) +
           2 * packed_size(kr, (int)nb, F) + packed_size(kr, F, D) + 3 * lc_hy_round(nb * nk) +
           lc_hy_round(nb * nb) + lc_hy_round(nb * (size_t)F) + lc_hy_round((size_t)F) +
           (size_t)hpt * (packed_size(kr, D, F) + lc_hy_round((size_t)F) +
                          2 * lc_hy_round((size_t)s->T));
}

/* The heads [h0, h1) of key head g in sequence b; acc[h - h0] = sum over
 * the head's rows of sum_W G e (dtheta = that times 1 - gamma). */
static void bwd_task(const struct lc_cpu_kernels *kr, const struct lc_attn_shape *s, int b,
                     int h0, int h1, float *ws, const struct hy_bwd_io *io, const float *q,
                     const float *k, const float *v, const float *fq, const float *fk,
                     const float *theta, double *acc)
{
    const int T = s->T, D = s->D, F = s->F, nh = h1 - h0;
    const int sliding = s->mode == LC_WINDOW_SLIDING;
    const size_t sslot = packed_size(kr, D, F), zslot = lc_hy_round((size_t)F);
    const size_t rslot = lc_hy_round((size_t)T);
    const int want_dq = io->dq != NULL, want_dk = io->dkh != NULL, want_dv = io->dvh != NULL;
    const int want_dfq = io->dfq != NULL, want_dfk = io->dfk != NULL;
    size_t nbmax, nkmax;
    struct hy_view w;
    struct hy_pk kts[2], vts[2], kps[2], hp, fkp, fsp, R;
    float *A = NULL, *dS = NULL, *P = NULL, *L = NULL, *STb = NULL, *zb = NULL, *rowb = NULL;
    float *Fs = NULL, *rr = NULL;

    block_max(s, &nbmax, &nkmax);
    for (int u = 0; u < 2; u++) {
        kts[u] = pk_at(kr, lc_hy_take(&ws, packed_size(kr, D, (int)nbmax)), D, (int)nbmax);
        vts[u] = pk_at(kr, lc_hy_take(&ws, packed_size(kr, D, (int)nbmax)), D, (int)nbmax);
        kps[u] = pk_at(kr, lc_hy_take(&ws, packed_size(kr, (int)nbmax, D)), (int)nbmax, D);
    }
    hp = pk_at(kr, lc_hy_take(&ws, packed_size(kr, (int)nbmax, D)), (int)nbmax, D);
    fkp = pk_at(kr, lc_hy_take(&ws, packed_size(kr, (int)nbmax, F)), (int)nbmax, F);
    fsp = pk_at(kr, lc_hy_take(&ws, packed_size(kr, (int)nbmax, F)), (int)nbmax, F);
    R = pk_at(kr, lc_hy_take(&ws, packed_size(kr, F, D)), F, D);
    A = lc_hy_take(&ws, nbmax * nkmax);
    dS = lc_hy_take(&ws, nbmax * nkmax);
    P = lc_hy_take(&ws, nbmax * nkmax);
    L = lc_hy_take(&ws, nbmax * nbmax);
    Fs = lc_hy_take(&ws, nbmax * (size_t)F);
    rr = lc_hy_take(&ws, (size_t)F);
    /* per head: S^T [D, F] packed (the state as dfq reads it), z, and
     * delta = g . y and 1 / Z of every row for the reverse scan */
    STb = lc_hy_take(&ws, (size_t)nh * sslot);
    zb = lc_hy_take(&ws, (size_t)nh * zslot);
    rowb = lc_hy_take(&ws, (size_t)nh * 2 * rslot);
    memset(STb, 0, (size_t)nh * sslot * sizeof(float));
    memset(zb, 0, (size_t)nh * zslot * sizeof(float));
    view_init(&w, s, b, h0, q, k, v, fq, fk, theta);

    for (int h = h0; h < h1; h++) {
        struct hy_grads o;

        grads_init(&o, io, s, b, h);
        /* DK, DV and DFK are accumulated block by block (a key block is
         * near for two query blocks, and linear for later ones); DQ and
         * DFQ are written once per block and need no zeroing. */
        zero_rows(o.DK, T, o.ldkh, D);
        zero_rows(o.DV, T, o.ldkh, D);
        /* in terraced mode only the reverse scan writes dfk, once per key
         * block up to the third last: it assigns those */
        if (o.DFK != NULL) {
            const int z0 = sliding || w.nblk < 3 ? 0 : (w.nblk - 2) * w.W;
            zero_rows(o.DFK + off(z0, w.ldf), T - z0, w.ldf, F);
        }
        acc[h - h0] = 0.0;
    }

    /* forward scan: the near keys of each query block, and dfq from the state.
     * The scores are recomputed rather than kept from the forward (which
     * would take T x 2W floats per head); only MX and DEN are kept. */
    for (int t = 0; t < w.nblk; t++) {
        const struct hy_block bk = block_of(&w, t);
        const struct hy_pk *kt[2] = {t > 0 ? &kts[(t - 1) % 2] : NULL, &kts[t % 2]};
        const struct hy_pk *vt[2] = {t > 0 ? &vts[(t - 1) % 2] : NULL, &vts[t % 2]};
        const struct hy_pk *kp[2] = {t > 0 ? &kps[(t - 1) % 2] : NULL, &kps[t % 2]};

        /* K^T, V^T (and K for dq) of key block t, once for the heads */
        pk_fill(kr, &kts[t % 2], w.K + off(bk.i0, w.ldk), D, bk.nb, 1, w.ldk);
        pk_fill(kr, &vts[t % 2], w.V + off(bk.i0, w.ldk), D, bk.nb, 1, w.ldk);
        if (want_dq) {
            pk_fill(kr, &kps[t % 2], w.K + off(bk.i0, w.ldk), bk.nb, D, w.ldk, 1);
        }
        for (int h = h0; h < h1; h++) {
            struct hy_view wh;
            struct hy_grads o;
            struct hy_pk ST = pk_at(kr, STb + (size_t)(h - h0) * sslot, D, F);
            float *z = zb + (size_t)(h - h0) * zslot;
            float *delta = rowb + (size_t)(h - h0) * 2 * rslot, *invz = delta + rslot;
            const float *DYb = NULL;
            double acc_theta = 0.0;

            view_init(&wh, s, b, h, q, k, v, fq, fk, theta);
            grads_init(&o, io, s, b, h);
            DYb = o.DY + off(bk.i0, w.ldq);
            block_scores(kr, &wh, &bk, kt, A, L);
            /* dS = g v^T over the near keys, turned row by row into dL/ds */
            mm_near_cols(kr, bk.nb, D, 1.0f, DYb, w.ldq, 1, vt, dS, bk.nk);
            for (int r = 0; r < bk.nb; r++) {
                const int i = bk.i0 + r;
                const int wa = lc_window_start(i, w.W, w.mode) - bk.j0;
                const int wb = i - bk.j0 + 1;
                /* y is read only here, a row per head a large stride apart,
                 * which the hardware prefetcher does not follow */
                if (r + 4 < bk.nb) {
                    for (int d = 0; d < D; d += 16) {
                        __builtin_prefetch(o.Y + off(i + 4, w.ldq) + d);
                    }
                }
                const float dl = kr->dot(DYb + off(r, w.ldq), o.Y + off(i, w.ldq), D);
                const float iz = 1.0f / o.DEN[off(i, w.ldm)];
                float *dsr = dS + off(r, bk.nk), *pr = P + off(r, bk.nk);

                /* kept per row for the reverse scan */
                delta[i] = dl;
                invz[i] = iz;
                acc_theta += kr->bwd_row(dsr + wa, pr + wa, A + off(r, bk.nk) + wa, wb - wa,
                                         o.MX[off(i, w.ldm)], wh.gamma, dl, iz);
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
            acc[h - h0] += acc_theta;
            if (want_dq) {
                mm_near_rows(kr, bk.nb, wh.scale, dS, bk.nk, 1, kp, 0.0f,
                             o.DQ + off(bk.i0, w.ldq), w.ldq);
            }
            if (want_dk) {
                /* dk += scale dS^T q over the block's queries */
                pk_fill(kr, &hp, wh.Q + off(bk.i0, w.ldq), bk.nb, D, w.ldq, 1);
                mm(kr, bk.nk, bk.nb, wh.scale, dS, 1, bk.nk, &hp, 1.0f,
                   o.DK + off(bk.j0, o.ldkh), o.ldkh);
            }
            if (want_dv) {
                pk_fill(kr, &hp, DYb, bk.nb, D, w.ldq, 1);
                mm(kr, bk.nk, bk.nb, 1.0f, P, 1, bk.nk, &hp, 1.0f, o.DV + off(bk.j0, o.ldkh),
                   o.ldkh);
            }
            if (want_dfq) {
                float *DFQb = o.DFQ + off(bk.i0, w.ldf);
                if (t >= 2) {
                    /* dfq_i = (S^T g_i - delta_i z) / Z_i */
                    mm(kr, bk.nb, D, 1.0f, DYb, w.ldq, 1, &ST, 0.0f, DFQb, w.ldf);
                    for (int r = 0; r < bk.nb; r++) {
                        kr->axpy_scale_row(DFQb + off(r, w.ldf), z, -delta[bk.i0 + r],
                                           invz[bk.i0 + r], F);
                    }
                } else {
                    zero_rows(DFQb, bk.nb, w.ldf, F);
                }
                if (sliding && bk.np > 0) {
                    lc_hy_sgemm(0, 0, bk.nb, F, bk.np, 1.0f, L, bk.np,
                                wh.FK + off(bk.j0, w.ldf), w.ldf, 1.0f, DFQb, w.ldf);
                }
                /* the state is read only for dfq, so it is built only
                 * here: S^T += v^T fk over block t-1 */
                if (t >= 1 && t + 1 < w.nblk) {
                    pk_fill(kr, &fkp, wh.FK + off(bk.j0, w.ldf), w.W, F, w.ldf, 1);
                    mm_packed(kr, w.W, 1.0f, w.V + off(bk.j0, w.ldk), 1, w.ldk, &fkp, 1.0f,
                              &ST);
                    z_add_block(kr, &wh, t, z);
                }
            }
            if (want_dfk && sliding && bk.np > 0) {
                lc_hy_sgemm(1, 0, bk.np, F, bk.nb, 1.0f, L, bk.np, wh.FQ + off(bk.i0, w.ldf),
                            w.ldf, 1.0f, o.DFK + off(bk.j0, w.ldf), w.ldf);
            }
        }
    }

    /* reverse scan: R, r over the query blocks >= u + 2 for key block u
     * (rr holds -r, so that dfk_j = R v_j + rr is an addition).
     * Going down from the last key block, each step adds one query block
     * (u + 2), so R and r are suffix sums built in one pass.  R is kept
     * as R^T [D, F] for dfk = v R^T, and as R [F, D] for dv = fk R. */
    for (int h = h0; (want_dfk || want_dv) && h < h1; h++) {
        struct hy_view wh;
        struct hy_grads o;
        /* the head's state buffer, free once the forward scan is done */
        struct hy_pk RT = pk_at(kr, STb + (size_t)(h - h0) * sslot, D, F);
        const float *delta = rowb + (size_t)(h - h0) * 2 * rslot, *invz = delta + rslot;

        view_init(&wh, s, b, h, q, k, v, fq, fk, theta);
        grads_init(&o, io, s, b, h);
        memset(RT.p, 0, sslot * sizeof(float));
        memset(rr, 0, (size_t)F * sizeof(float));
        if (want_dv) {
            memset(R.p, 0, packed_size(kr, F, D) * sizeof(float));
        }
        for (int u = w.nblk - 3; u >= 0; u--) {
            const struct hy_block kq = block_of(&w, u + 2);
            const struct hy_block ku = block_of(&w, u);
            const float *DYq = o.DY + off(kq.i0, w.ldq);

            for (int r = 0; r < kq.nb; r++) {
                const int i = kq.i0 + r;
                const float *fqr = wh.FQ + off(i, w.ldf);
                if (r + 4 < kq.nb) {
                    for (int e = 0; e < F; e += 16) {
                        __builtin_prefetch(wh.FQ + off(i + 4, w.ldf) + e);
                    }
                }
                /* fq_i / Z_i, so that one GEMM adds sum fq_i g_i^T / Z_i */
                kr->scale_acc_row(Fs + off(r, F), rr, fqr, invz[i], -(delta[i] * invz[i]), F);
            }
            if (want_dfk) {
                float *DFKb = o.DFK + off(ku.i0, w.ldf);
                pk_fill(kr, &fsp, Fs, kq.nb, F, F, 1);
                mm_packed(kr, kq.nb, 1.0f, DYq, 1, w.ldq, &fsp, 1.0f, &RT);
                mm(kr, ku.nb, D, 1.0f, w.V + off(ku.i0, w.ldk), w.ldk, 1, &RT,
                   sliding ? 1.0f : 0.0f, DFKb, w.ldf);
                for (int r = 0; r < ku.nb; r++) {
                    kr->add(DFKb + off(r, w.ldf), rr, F);
                }
            }
            if (want_dv) {
                pk_fill(kr, &hp, DYq, kq.nb, D, w.ldq, 1);
                mm_packed(kr, kq.nb, 1.0f, Fs, 1, F, &hp, 1.0f, &R);
                mm(kr, ku.nb, F, 1.0f, wh.FK + off(ku.i0, w.ldf), w.ldf, 1, &R, 1.0f,
                   o.DV + off(ku.i0, o.ldkh), o.ldkh);
            }
        }
    }
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
    const size_t nrow = (size_t)B * (size_t)T;
    const int nt = omp_get_max_threads();
    /* with grouped queries each query head's share of dk, dv goes to its
     * own buffer ([B, T, H, D]), summed over the group afterwards */
    const size_t nkh = rep > 1 ? nrow * (size_t)H * (size_t)D : 0;
    struct hy_bwd_io io;
    struct hy_split sp;
    float *sh = NULL;
    double *acc = NULL; /* [B * H] */
    struct lc_hy_work work;

    if (B <= 0 || H <= 0 || T <= 0) {
        return;
    }
    sp = split_of(s, nt);
    if (!lc_hy_work_get(be, &work, 2 * lc_hy_round(nkh) + lc_hy_round(2 * (size_t)B * H),
                        bwd_slice(kr, s, sp.hpt), nt)) {
        return;
    }
    sh = work.shared;
    /* one double per head (2 floats each), summed in batch order by
     * lc_hy_dtheta_add so that dtheta does not depend on the thread count */
    acc = (double *)lc_hy_take(&sh, 2 * (size_t)B * H);
    io.dq = dq;
    io.dkh = dk;
    io.dvh = dv;
    io.dfq = dfq;
    io.dfk = dfk;
    io.dy = dy;
    io.y = y;
    io.mx = mx;
    io.den = den;
    /* with one query head per key head, dkh and dvh stay dk and dv: the
     * heads then write disjoint rows */
    if (rep > 1) {
        float *bk = lc_hy_take(&sh, nkh), *bv = lc_hy_take(&sh, nkh);
        io.dkh = dk != NULL ? bk : NULL;
        io.dvh = dv != NULL ? bv : NULL;
    }

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < sp.ntask; task++) {
        int b, h0, h1;

        task_heads(s, &sp, task, &b, &h0, &h1);
        bwd_task(kr, s, b, h0, h1, lc_hy_work_slice(&work), &io, q, k, v, fq, fk, theta,
                 acc + (size_t)b * H + h0);
    }

    if (rep > 1) {
        const float *dkh = io.dkh, *dvh = io.dvh;
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
