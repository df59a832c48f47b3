/*
 * Elementwise and row-wise entries of the cpu backend: add, dropout,
 * embedding, RMSNorm, RoPE, SwiGLU, MSE, cross-entropy, AdamW.
 *
 * Each entry splits its work over OpenMP threads by rows or by fixed
 * chunks and calls a row kernel of the backend's ISA table
 * (cpu_kernels.h) on each piece.  No sum ever crosses a piece, so results
 * do not depend on the number of threads.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"
#include "core/ref/ref.h"

/* elements per piece of the elementwise entries */
#define CHUNK 16384
/* columns per piece of the column-wise sums (embedding and RMSNorm weight
 * gradients): one thread adds all rows of its columns, in row order */
#define COL_BLOCK 64

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ----------------------------------------------------------- elementwise */

void lc_cpu_add(struct lc_backend *be, float *y, const float *x, int64_t n)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

LC_CPU_PAR_FOR(n > CHUNK, i, n, CHUNK, kr->add(y + i, x + i, min64(CHUNK, n - i)););
}

void lc_cpu_dropout(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                    uint64_t seed)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

    if (p == 0.0f) {
        if (y != x) {
            memmove(y, x, (size_t)n * sizeof(float));
        }
        return;
    }
LC_CPU_PAR_FOR(n > CHUNK, i, n, CHUNK,
                   kr->dropout(y + i, x + i, min64(CHUNK, n - i), p, seed, i););
}

/* ------------------------------------------------------------- embedding */

void lc_cpu_embedding_fwd(struct lc_backend *be, float *out, const int32_t *ids,
                          const void *table, enum lc_dtype ttype, int N, int C)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

    LC_ASSERT(ttype == LC_DTYPE_F32 || ttype == LC_DTYPE_F16 || ttype == LC_DTYPE_BF16);
LC_CPU_PAR_FOR((int64_t)N * C > CHUNK, n, N, 1, {
        size_t row = (size_t)ids[n] * C;
        float *o = out + (size_t)n * C;
        if (ttype == LC_DTYPE_F32) {
            memcpy(o, (const float *)table + row, (size_t)C * sizeof(float));
        } else if (ttype == LC_DTYPE_F16) {
            kr->f16_to_f32(o, (const uint16_t *)table + row, C);
        } else {
            kr->bf16_to_f32(o, (const uint16_t *)table + row, C);
        }
    });
}

/* Each thread owns blocks of columns and adds the rows in token order, so
 * repeated ids sum in the same order as in the reference. */
void lc_cpu_embedding_bwd(struct lc_backend *be, float *dtable, const float *dout,
                          const int32_t *ids, int N, int C, int V)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;

    for (int n = 0; n < N; n++) {
        LC_ASSERT(ids[n] >= 0 && ids[n] < V);
    }
LC_CPU_PAR_FOR((int64_t)N * C > CHUNK, b, nblocks, 1, {
        int c0 = (int)b * COL_BLOCK;
        int nc = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        for (int n = 0; n < N; n++) {
            kr->add(dtable + (size_t)ids[n] * C + c0, dout + (size_t)n * C + c0, nc);
        }
    });
}

/* --------------------------------------------------------------- RMSNorm */

void lc_cpu_rmsnorm_fwd(struct lc_backend *be, float *out, float *rstd, const float *x,
                        const float *w, int N, int C, float eps)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

LC_CPU_PAR_FOR((int64_t)N * C > CHUNK, n, N, 1, {
        float r = kr->rmsnorm_row(out + (size_t)n * C, x + (size_t)n * C, w, C, eps);
        if (rstd != NULL) {
            rstd[n] = r;
        }
    });
}

/* pass 1: dx row by row; pass 2: dw column block by column block, rows in
 * order (a sum over rows that no thread count can reorder) */
void lc_cpu_rmsnorm_bwd(struct lc_backend *be, float *dx, float *dw, const float *dout,
                        const float *x, const float *w, const float *rstd, int N, int C)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;

LC_CPU_PAR_FOR((int64_t)N * C > CHUNK, n, N, 1, {
        size_t o = (size_t)n * C;
        kr->rmsnorm_dx_row(dx + o, dout + o, x + o, w, rstd[n], C);
    });
    if (dw != NULL) {
        LC_CPU_PAR_FOR((int64_t)N * C > CHUNK, b, nblocks, 1, {
            int c0 = (int)b * COL_BLOCK;
            int nc = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
            kr->rmsnorm_dw_cols(dw, dout, x, rstd, N, C, c0, nc);
        });
    }
}

/* ------------------------------------------------------------------ RoPE */

static void rope(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                 const float *sin_tab, int N, int nh, int D, int inverse)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    size_t half = (size_t)(D / 2);

LC_CPU_PAR_FOR((int64_t)N * nh * D > CHUNK, n, N, 1,
                   kr->rope_row(x + (size_t)n * nh * D, cos_tab + (size_t)pos[n] * half,
                                sin_tab + (size_t)pos[n] * half, nh, D, inverse););
}

void lc_cpu_rope_fwd(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D)
{
    rope(be, x, pos, cos_tab, sin_tab, N, nh, D, 0);
}

void lc_cpu_rope_bwd(struct lc_backend *be, float *dx, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D)
{
    rope(be, dx, pos, cos_tab, sin_tab, N, nh, D, 1);
}

/* ---------------------------------------------------------------- SwiGLU */

void lc_cpu_swiglu_fwd(struct lc_backend *be, float *out, const float *gate, const float *up,
                       int64_t n)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

LC_CPU_PAR_FOR(n > CHUNK, i, n, CHUNK,
                   kr->swiglu_fwd(out + i, gate + i, up + i, min64(CHUNK, n - i)););
}

void lc_cpu_swiglu_bwd(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t n)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

LC_CPU_PAR_FOR(n > CHUNK, i, n, CHUNK,
                   kr->swiglu_bwd(dgate + i, dup + i, dout + i, gate + i, up + i,
                                  min64(CHUNK, n - i)););
}

/* ---------------------------------------------------------------- losses */

void lc_cpu_mse_fwd_bwd(struct lc_backend *be, float *row_sse, float *dpred, const float *pred,
                        const float *target, int64_t rows, int cols, float grad_scale)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    float gs2 = grad_scale * 2;

LC_CPU_PAR_FOR(rows * cols > CHUNK, r, rows, 1, {
        size_t o = (size_t)r * cols;
        row_sse[r] = kr->mse_row(dpred != NULL ? dpred + o : NULL, pred + o, target + o, cols, gs2);
    });
}

void lc_cpu_xent_fwd_bwd(struct lc_backend *be, float *row_loss, float *dlogits,
                         const float *logits, const int32_t *targets, int N, int V,
                         float grad_scale)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);

    for (int n = 0; n < N; n++) {
        LC_ASSERT(targets[n] < V);
    }
LC_CPU_PAR_FOR((int64_t)N * V > CHUNK, n, N, 1, {
        size_t o = (size_t)n * V;
        float *dl = dlogits != NULL ? dlogits + o : NULL;
        if (targets[n] < 0) {
            row_loss[n] = 0.0f;
            if (dl != NULL) {
                memset(dl, 0, (size_t)V * sizeof(float));
            }
        } else {
            row_loss[n] = kr->xent_row(dl, logits + o, targets[n], V, grad_scale);
        }
    });
}

/* ------------------------------------------------------------- optimizer */

void lc_cpu_adamw(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                  int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                  int64_t step)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    double bc1 = 1 - pow(beta1, (double)step);
    double bc2 = 1 - pow(beta2, (double)step);
    struct lc_adamw_scalars s = {
        .decay = (float)(1 - lr * wd),
        .w1 = (float)(1 - beta1),
        .beta1 = (float)beta1,
        .lerp_first = 1 - beta1 < 0.5,
        .beta2 = (float)beta2,
        .w2 = (float)(1 - beta2),
        .neg_step = (float)(-(lr / bc1)),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = (float)eps,
    };

LC_CPU_PAR_FOR(n > CHUNK, i, n, CHUNK, kr->adamw(p + i, g + i, m + i, v + i, min64(CHUNK, n - i), &s););
}
