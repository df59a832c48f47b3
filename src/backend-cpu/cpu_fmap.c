/*
 * Hedgehog feature maps on the CPU: z = x_h W[h] by SGEMM over a chunk of
 * tokens, then both softmaxes per row (the ISA's fmap_row, cpu_kernels.h).
 * The backward recomputes z (it needs the unclamped softmaxes).
 *
 * dW sums over every token.  Tokens are cut into chunks whose size depends
 * on N alone; each chunk writes its own partial dW and the partials are
 * summed in chunk order, so the result does not depend on the thread count.
 * dx of keys is shared by the query heads that read one key head: one task
 * handles all of them, in head order.
 */
#include "config.h"

#include <omp.h>
#include <string.h>

#include "backend-cpu/cpu_hybrid.h"
#include "core/util.h"

/* rows per forward task */
#define FMAP_CHUNK 128
/* below this many multiply-adds the forward stays on one thread */
#define FMAP_PAR_MIN (1 << 18)
/* the backward cuts the tokens into at most this many chunks */
#define FMAP_MAX_CHUNKS 16

/* the feature maps of rows [n0, n0 + nr) of head h; Z holds nr x f */
static void fmap_fwd_task(const struct lc_cpu_kernels *kr, float *phi, const float *x,
                          const float *W, int H, int Hx, int D, int f, float eps, int h, int n0,
                          int nr, float *Z)
{
    lc_hy_sgemm(0, 0, nr, f, D, 1.0f, x + ((size_t)n0 * (size_t)Hx + (size_t)(h / (H / Hx))) * D,
                Hx * D, W + (size_t)h * (size_t)D * (size_t)f, f, 0.0f, Z, f);
    for (int r = 0; r < nr; r++) {
        kr->fmap_row(phi + ((size_t)(n0 + r) * (size_t)H + (size_t)h) * (size_t)(2 * f),
                     Z + (size_t)r * (size_t)f, f, eps);
    }
}

void lc_cpu_fmap_fwd(struct lc_backend *be, float *phi, const float *x, const float *W, int N,
                     int H, int Hx, int D, int f, float eps)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int nchunk = (N + FMAP_CHUNK - 1) / FMAP_CHUNK;
    const int ntask = H * nchunk;
    /* a decoding step's few rows stay on this thread */
    const int nt = (int64_t)N * H * D * f >= FMAP_PAR_MIN ? omp_get_max_threads() : 1;
    struct lc_hy_work work;

    if (ntask <= 0 || !lc_hy_work_get(be, &work, 0, (size_t)FMAP_CHUNK * (size_t)f, nt)) {
        return;
    }
    if (nt == 1) {
        for (int task = 0; task < ntask; task++) {
            const int n0 = (task % nchunk) * FMAP_CHUNK;
            fmap_fwd_task(kr, phi, x, W, H, Hx, D, f, eps, task / nchunk, n0,
                          N - n0 < FMAP_CHUNK ? N - n0 : FMAP_CHUNK, work.slices);
        }
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < ntask; task++) {
        const int n0 = (task % nchunk) * FMAP_CHUNK;
        fmap_fwd_task(kr, phi, x, W, H, Hx, D, f, eps, task / nchunk, n0,
                      N - n0 < FMAP_CHUNK ? N - n0 : FMAP_CHUNK, lc_hy_work_slice(&work));
    }
}

void lc_cpu_fmap_bwd(struct lc_backend *be, float *dW, float *dx, const float *dphi,
                     const float *x, const float *W, int N, int H, int Hx, int D, int f,
                     float eps)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int rep = H / Hx;
    const int nchunk = N <= 0                                ? 0
                       : (N + FMAP_CHUNK - 1) / FMAP_CHUNK < FMAP_MAX_CHUNKS
                           ? (N + FMAP_CHUNK - 1) / FMAP_CHUNK
                           : FMAP_MAX_CHUNKS;
    const int chunk = nchunk > 0 ? (N + nchunk - 1) / nchunk : 0;
    const size_t wsize = (size_t)D * (size_t)f;
    const int ntask = Hx * nchunk;
    const int nt = omp_get_max_threads();
    struct lc_hy_work work;
    float *part = NULL; /* [nchunk, H, D, f] partial dW */

    if (ntask <= 0 ||
        !lc_hy_work_get(be, &work, (size_t)nchunk * (size_t)H * wsize,
                        2 * lc_hy_round((size_t)chunk * (size_t)f) + lc_hy_round((size_t)(2 * f)),
                        nt)) {
        return;
    }
    part = work.shared;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < ntask; task++) {
        const int hx = task / nchunk, c = task % nchunk;
        const int n0 = c * chunk;
        const int nr = N - n0 < chunk ? N - n0 : chunk;
        const size_t xo = ((size_t)n0 * (size_t)Hx + (size_t)hx) * (size_t)D;
        float *ws = lc_hy_work_slice(&work);
        float *Z = lc_hy_take(&ws, (size_t)chunk * (size_t)f);
        float *DZ = lc_hy_take(&ws, (size_t)chunk * (size_t)f);
        float *tmp = lc_hy_take(&ws, (size_t)(2 * f));

        for (int h = hx * rep; h < (hx + 1) * rep; h++) {
            if (nr <= 0) {
                /* an empty chunk (not made by the partition above) adds nothing */
                memset(part + ((size_t)c * (size_t)H + (size_t)h) * wsize, 0,
                       wsize * sizeof(float));
                continue;
            }
            const float *Wh = W + (size_t)h * wsize;

            lc_hy_sgemm(0, 0, nr, f, D, 1.0f, x + xo, Hx * D, Wh, f, 0.0f, Z, f);
            for (int r = 0; r < nr; r++) {
                kr->fmap_bwd_row(
                    DZ + (size_t)r * (size_t)f, Z + (size_t)r * (size_t)f,
                    dphi + ((size_t)(n0 + r) * (size_t)H + (size_t)h) * (size_t)(2 * f), f, eps,
                    tmp);
            }
            lc_hy_sgemm(1, 0, D, f, nr, 1.0f, x + xo, Hx * D, DZ, f, 0.0f,
                        part + ((size_t)c * (size_t)H + (size_t)h) * wsize, f);
            if (dx != NULL) {
                lc_hy_sgemm(0, 1, nr, D, f, 1.0f, DZ, f, Wh, f, 1.0f, dx + xo, Hx * D);
            }
        }
    }

    /* dW[h] += the partials, in chunk order */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int h = 0; h < H; h++) {
        float *dWh = dW + (size_t)h * wsize;
        for (int c = 0; c < nchunk; c++) {
            const float *p = part + ((size_t)c * (size_t)H + (size_t)h) * wsize;
            for (size_t i = 0; i < wsize; i++) {
                dWh[i] += p[i];
            }
        }
    }
}
