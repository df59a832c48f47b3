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
