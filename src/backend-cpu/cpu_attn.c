/*
 * The teacher's causal softmax attention on the cpu backend.
 *
 * The work is cut into items of (batch, block of QBLOCK queries, hg query
 * heads that share one key/value head).  An item gathers its hg x QBLOCK
 * query rows into scratch, computes their scores S = scale Q K^T against
 * the keys its last query may see with one SGEMM, applies a causal softmax
 * per row, and computes Y = S V with a second SGEMM; grouping the heads of
 * one KV head makes these products taller (hg x QBLOCK rows) without
 * widening the causally masked triangle of a block.  Items are
 * independent and each runs on one thread with single-threaded BLAS, so
 * the result is the same for any number of threads.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"

/* queries per item: 64 keeps the masked upper triangle of a block small */
#define QBLOCK 64
/* at most this many rows of Q per item (heads x queries) */
#define MAX_ROWS 256
/* up to this many queries, the row kernels instead of GEMMs */
#define SMALL_TQ 4
/* below this many multiply-adds a decoding call stays on one thread */
#define SMALL_PAR_MIN (1 << 18)

/* heads per item: the largest divisor of the group size (query heads per
 * KV head) that keeps hg x QBLOCK within MAX_ROWS */
static int heads_per_item(int group)
{
    int hg = MAX_ROWS / QBLOCK < group ? MAX_ROWS / QBLOCK : group;
    while (group % hg != 0) {
        hg--;
    }
    return hg;
}

/* Query i of batch b, the heads of KV heads [g0, g1), against the keys it
 * sees: scores, their exponentials, the weighted sum of the values, then
 * the softmax's denominators.  s holds (g1 - g0) (H / Hkv) (Tk + 1)
 * floats. */
static void attn_rows(const struct lc_cpu_kernels *kr, float *y, const float *q, const float *k,
                      const float *v, int Tq, int Tk, int H, int Hkv, int D, int q_pos0,
                      float scale, int b, int i, int g0, int g1, float *s)
{
    const int rep = H / Hkv, nh = (g1 - g0) * rep;
    const int64_t last = (int64_t)q_pos0 + i + 1;
    const int seen = last < Tk ? (int)last : Tk;
    const size_t kvoff = ((size_t)b * Tk * Hkv + (size_t)g0) * D;
    const size_t qoff = (((size_t)b * Tq + i) * H + (size_t)g0 * rep) * D;
    float *sum = s + (size_t)nh * (size_t)seen;
    float m;

    kr->scores(s, q + qoff, nh, rep, k + kvoff, Hkv * D, seen, D, scale);
    for (int h = 0; h < nh; h++) {
        float *sh = s + (size_t)h * (size_t)seen;
        sum[h] = kr->exp_row(sh, sh, seen, 1.0f, &m);
    }
    memset(y + qoff, 0, (size_t)nh * (size_t)D * sizeof(float));
    kr->wsum(y + qoff, s, nh, rep, v + kvoff, Hkv * D, seen, D);
    for (int h = 0; h < nh; h++) {
        float *yh = y + qoff + (size_t)h * (size_t)D;
        for (int d = 0; d < D; d++) {
            yh[d] /= sum[h];
        }
    }
}

/* kmax: the most keys a query sees */
static void attn_small(struct lc_backend *be, float *y, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int kmax, int H, int Hkv, int D,
                       int q_pos0, float scale)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int64_t items = (int64_t)B * Tq;
    const int64_t work = items * H * kmax * D;
    const int nt = work >= SMALL_PAR_MIN ? omp_get_max_threads() : 1;
    /* one thread: all heads of a query at once; a team: one KV head each */
    const size_t per = (size_t)(nt == 1 ? H : H / Hkv) * ((size_t)kmax + 1);
    float *sc = lc_cpu_scratch(be, (size_t)nt * per * sizeof(float));

    if (sc == NULL) {
        return;
    }
    if (nt == 1) {
        for (int64_t it = 0; it < items; it++) {
            attn_rows(kr, y, q, k, v, Tq, Tk, H, Hkv, D, q_pos0, scale, (int)(it / Tq),
                      (int)(it % Tq), 0, Hkv, sc);
        }
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < items * Hkv; t++) {
        const int64_t it = t / Hkv;
        const int g = (int)(t % Hkv);
        attn_rows(kr, y, q, k, v, Tq, Tk, H, Hkv, D, q_pos0, scale, (int)(it / Tq),
                  (int)(it % Tq), g, g + 1, sc + (size_t)omp_get_thread_num() * per);
    }
}

void lc_cpu_attn_fwd(struct lc_backend *be, float *y, const float *q, const float *k,
                     const float *v, int B, int Tq, int Tk, int H, int Hkv, int D, int q_pos0)
{
    void (*softmax)(float *s, int lim, int n) = lc_cpu_kernels(be)->softmax_row;
    int group = H / Hkv;
    int hg = heads_per_item(group);
    int nhg = H / hg;
    int nqb = (Tq + QBLOCK - 1) / QBLOCK;
    int64_t items = (int64_t)B * nhg * nqb;
    int64_t reach = (int64_t)q_pos0 + Tq; /* keys the last query sees */
    int kmax = reach < Tk ? (int)reach : Tk;
    int nthreads = omp_get_max_threads();
    size_t rows = (size_t)hg * QBLOCK;
    /* per thread: gathered Q [rows, D], Y [rows, D], scores [rows, kmax] */
    size_t per_thread = rows * (2 * (size_t)D + (size_t)(kmax > 0 ? kmax : 1));
    float *scratch = NULL;
    float scale = (float)(1 / sqrt((double)D));

    if (items <= 0 || D <= 0) {
        return;
    }
    if (kmax <= 0) {
        /* no keys at all: nothing to attend to */
        memset(y, 0, (size_t)B * Tq * H * D * sizeof(float));
        return;
    }
    if (Tq <= SMALL_TQ) {
        attn_small(be, y, q, k, v, B, Tq, Tk, kmax, H, Hkv, D, q_pos0, scale);
        return;
    }
    scratch = lc_cpu_scratch(be, (size_t)nthreads * per_thread * sizeof(float));
    if (scratch == NULL) {
        return;
    }

#pragma omp parallel num_threads(nthreads) if (items > 1)
    {
        float *Qs = scratch + (size_t)omp_get_thread_num() * per_thread; /* [hg, m, D] */
        float *Ys = Qs + rows * D;                                         /* [hg, m, D] */
        float *S = Ys + rows * D;                                          /* [hg, m, nk] */

#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            /* the last query blocks (the most keys) first */
            int qb = nqb - 1 - (int)(it % nqb);
            int h0 = (int)((it / nqb) % nhg) * hg;
            int b = (int)(it / ((int64_t)nqb * nhg));
            int i0 = qb * QBLOCK;
            int m = Tq - i0 < QBLOCK ? Tq - i0 : QBLOCK;
            int64_t last = (int64_t)q_pos0 + i0 + m; /* keys seen by the block's last query */
            int nk = last < Tk ? (int)last : Tk;
            size_t kvoff = ((size_t)b * Tk * Hkv + (size_t)(h0 / group)) * D;

            for (int j = 0; j < hg; j++) {
                for (int r = 0; r < m; r++) {
                    memcpy(Qs + ((size_t)j * m + r) * D,
                           q + (((size_t)b * Tq + i0 + r) * H + h0 + j) * D,
                           (size_t)D * sizeof(float));
                }
            }
            lc_cpu_sgemm_serial(0, 1, hg * m, nk, D, scale, Qs, D, k + kvoff, Hkv * D, 0.0f, S,
                                nk);
            for (int j = 0; j < hg; j++) {
                for (int r = 0; r < m; r++) {
                    int64_t seen = (int64_t)q_pos0 + i0 + r + 1;
                    softmax(S + ((size_t)j * m + r) * nk, seen < nk ? (int)seen : nk, nk);
                }
            }
            lc_cpu_sgemm_serial(0, 0, hg * m, D, nk, 1.0f, S, nk, v + kvoff, Hkv * D, 0.0f, Ys,
                                D);
            for (int j = 0; j < hg; j++) {
                for (int r = 0; r < m; r++) {
                    memcpy(y + (((size_t)b * Tq + i0 + r) * H + h0 + j) * D,
                           Ys + ((size_t)j * m + r) * D, (size_t)D * sizeof(float));
                }
            }
        }
    }
}
