/*
 * Elementwise and row-wise entries of the cpu backend: add, dropout,
 * embedding, RMSNorm, RoPE, SwiGLU, MSE, cross-entropy, AdamW.
 *
 * Each entry splits its work over OpenMP threads by rows or by fixed
 * chunks and calls an inner kernel on each piece: the plain-C kernels
 * below or their AVX-512 twins (avx512/avx512_dense.c), picked from the
 * backend's ISA.  No sum ever crosses a piece, so results do not depend on
 * the number of threads.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "backend-cpu/avx512/avx512_dense.h"
#include "backend-cpu/cpu.h"
#include "core/half.h"
#include "core/ref/ref.h"

/* elements per piece of the elementwise entries */
#define CHUNK 16384
/* columns per piece of the column-wise sums (embedding and RMSNorm weight
 * gradients): one thread adds all rows of its columns, in row order */
#define COL_BLOCK 64

/* The inner kernels, in one table per ISA (see avx512_dense.h for what
 * each does). */
struct dense_kernels {
    void (*f16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    void (*dropout)(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t i0);
    float (*rmsnorm_row)(float *out, const float *x, const float *w, int C, float eps);
    void (*rmsnorm_dx_row)(float *dx, const float *g, const float *x, const float *w, float r,
                           int C);
    void (*rmsnorm_dw_cols)(float *dw, const float *dout, const float *x, const float *rstd,
                            int N, int C, int c0, int nc);
    void (*rope_row)(float *x, const float *c, const float *s, int nh, int D, int inverse);
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, int64_t n);
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t n);
    float (*xent_row)(float *dl, const float *l, int t, int V, float gs);
    float (*mse_row)(float *dp, const float *p, const float *t, int cols, float gs2);
    void (*adamw)(float *p, const float *g, float *m, float *v, int64_t n,
                  const struct lc_adamw_scalars *s);
};

/* ------------------------------------------------------ generic kernels */

static void add_generic(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

static void dropout_generic(float *y, const float *x, int64_t n, float p, uint64_t seed,
                            int64_t i0)
{
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        int keep = lc_dropout_uniform(seed, (uint64_t)(i0 + i)) >= p;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

static float rmsnorm_row_generic(float *out, const float *x, const float *w, int C, float eps)
{
    double ss = 0;
    float r;
    for (int c = 0; c < C; c++) {
        ss += x[c] * x[c];
    }
    r = (float)(1 / sqrt(ss / C + eps));
    for (int c = 0; c < C; c++) {
        out[c] = w[c] * (x[c] * r);
    }
    return r;
}

static void rmsnorm_dx_row_generic(float *dx, const float *g, const float *x, const float *w,
                                   float r, int C)
{
    double dot = 0;
    float coef;
    for (int c = 0; c < C; c++) {
        dot += g[c] * w[c] * x[c];
    }
    coef = (float)(dot * r * r * r / C);
    for (int c = 0; c < C; c++) {
        dx[c] += r * (g[c] * w[c]) - coef * x[c];
    }
}

static void rmsnorm_dw_cols_generic(float *dw, const float *dout, const float *x,
                                    const float *rstd, int N, int C, int c0, int nc)
{
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C;
        const float *xr = x + (size_t)n * C;
        for (int c = c0; c < c0 + nc; c++) {
            dw[c] += g[c] * xr[c] * rstd[n];
        }
    }
}

static void rope_row_generic(float *x, const float *c, const float *s, int nh, int D, int inverse)
{
    int half = D / 2;
    for (int h = 0; h < nh; h++) {
        float *v = x + (size_t)h * D;
        for (int i = 0; i < half; i++) {
            float sn = inverse ? -s[i] : s[i];
            float a = v[i];
            float b = v[i + half];
            v[i] = a * c[i] - b * sn;
            v[i + half] = b * c[i] + a * sn;
        }
    }
}

static float sigmoid_generic(float g)
{
    return 1.0f / (1.0f + expf(-g));
}

static void swiglu_fwd_generic(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        out[i] = gate[i] * sigmoid_generic(gate[i]) * up[i];
    }
}

static void swiglu_bwd_generic(float *dgate, float *dup, const float *dout, const float *gate,
                               const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float s = sigmoid_generic(g);
        float d = dout[i];
        dgate[i] = d * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] = d * (g * s);
    }
}

/* p_j = exp(l_j - max) / sum: the exponent stays exact for logits far
 * from zero, where l_j - logsumexp in float would not be */
static float xent_row_generic(float *dl, const float *l, int t, int V, float gs)
{
    float lt = l[t]; /* before dl (maybe l itself) is written */
    float mx = -INFINITY;
    double sum = 0;

    for (int j = 0; j < V; j++) {
        mx = l[j] > mx ? l[j] : mx;
    }
    for (int j = 0; j < V; j++) {
        sum += expf(l[j] - mx);
    }
    if (dl != NULL) {
        float scale = (float)(gs / sum);
        for (int j = 0; j < V; j++) {
            dl[j] = scale * expf(l[j] - mx);
        }
        dl[t] = scale * expf(lt - mx) - gs;
    }
    return (float)(mx + log(sum) - lt);
}

static float mse_row_generic(float *dp, const float *p, const float *t, int cols, float gs2)
{
    double sse = 0;
    for (int c = 0; c < cols; c++) {
        float e = p[c] - t[c];
        sse += e * e;
        if (dp != NULL) {
            dp[c] = gs2 * e;
        }
    }
    return (float)sse;
}

static void adamw_generic(float *p, const float *g, float *m, float *v, int64_t n,
                          const struct lc_adamw_scalars *s)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float denom;
        p[i] = p[i] * s->decay;
        if (s->lerp_first) {
            m[i] = m[i] + s->w1 * (gi - m[i]);
        } else {
            m[i] = gi - (gi - m[i]) * s->beta1;
        }
        v[i] = v[i] * s->beta2 + s->w2 * gi * gi;
        denom = sqrtf(v[i]) / s->bc2_sqrt + s->eps;
        p[i] = p[i] + s->neg_step * (m[i] / denom);
    }
}

static const struct dense_kernels generic_kernels = {
    .f16_to_f32 = lc_cpu_f16_to_f32,
    .bf16_to_f32 = lc_cpu_bf16_to_f32,
    .add = add_generic,
    .dropout = dropout_generic,
    .rmsnorm_row = rmsnorm_row_generic,
    .rmsnorm_dx_row = rmsnorm_dx_row_generic,
    .rmsnorm_dw_cols = rmsnorm_dw_cols_generic,
    .rope_row = rope_row_generic,
    .swiglu_fwd = swiglu_fwd_generic,
    .swiglu_bwd = swiglu_bwd_generic,
    .xent_row = xent_row_generic,
    .mse_row = mse_row_generic,
    .adamw = adamw_generic,
};

#ifdef LC_HAVE_AVX512
static const struct dense_kernels avx512_kernels = {
    .f16_to_f32 = lc_avx512_f16_to_f32,
    .bf16_to_f32 = lc_avx512_bf16_to_f32,
    .add = lc_avx512_add,
    .dropout = lc_avx512_dropout,
    .rmsnorm_row = lc_avx512_rmsnorm_row,
    .rmsnorm_dx_row = lc_avx512_rmsnorm_dx_row,
    .rmsnorm_dw_cols = lc_avx512_rmsnorm_dw_cols,
    .rope_row = lc_avx512_rope_row,
    .swiglu_fwd = lc_avx512_swiglu_fwd,
    .swiglu_bwd = lc_avx512_swiglu_bwd,
    .xent_row = lc_avx512_xent_row,
    .mse_row = lc_avx512_mse_row,
    .adamw = lc_avx512_adamw,
};
#endif

static const struct dense_kernels *kernels(struct lc_backend *be)
{
#ifdef LC_HAVE_AVX512
    if (lc_cpu_isa_of(be) == LC_CPU_ISA_AVX512) {
        return &avx512_kernels;
    }
#else
    (void)be;
#endif
    return &generic_kernels;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ----------------------------------------------------------- elementwise */

void lc_cpu_add(struct lc_backend *be, float *y, const float *x, int64_t n)
{
    const struct dense_kernels *kr = kernels(be);

#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i += CHUNK) {
        kr->add(y + i, x + i, min64(CHUNK, n - i));
    }
}

void lc_cpu_dropout(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                    uint64_t seed)
{
    const struct dense_kernels *kr = kernels(be);

    if (p == 0.0f) {
        if (y != x) {
            memmove(y, x, (size_t)n * sizeof(float));
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i += CHUNK) {
        kr->dropout(y + i, x + i, min64(CHUNK, n - i), p, seed, i);
    }
}

/* ------------------------------------------------------------- embedding */

void lc_cpu_embedding_fwd(struct lc_backend *be, float *out, const int32_t *ids,
                          const void *table, enum lc_dtype ttype, int N, int C)
{
    const struct dense_kernels *kr = kernels(be);

    LC_ASSERT(ttype == LC_DTYPE_F32 || ttype == LC_DTYPE_F16 || ttype == LC_DTYPE_BF16);
#pragma omp parallel for schedule(static) if ((int64_t)N * C > CHUNK)
    for (int n = 0; n < N; n++) {
        size_t row = (size_t)ids[n] * C;
        float *o = out + (size_t)n * C;
        if (ttype == LC_DTYPE_F32) {
            memcpy(o, (const float *)table + row, (size_t)C * sizeof(float));
        } else if (ttype == LC_DTYPE_F16) {
            kr->f16_to_f32(o, (const uint16_t *)table + row, C);
        } else {
            kr->bf16_to_f32(o, (const uint16_t *)table + row, C);
        }
    }
}

/* Each thread owns blocks of columns and adds the rows in token order, so
 * repeated ids sum in the same order as in the reference. */
void lc_cpu_embedding_bwd(struct lc_backend *be, float *dtable, const float *dout,
                          const int32_t *ids, int N, int C, int V)
{
    const struct dense_kernels *kr = kernels(be);
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;

    for (int n = 0; n < N; n++) {
        LC_ASSERT(ids[n] >= 0 && ids[n] < V);
    }
#pragma omp parallel for schedule(static) if ((int64_t)N * C > CHUNK)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * COL_BLOCK;
        int nc = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        for (int n = 0; n < N; n++) {
            kr->add(dtable + (size_t)ids[n] * C + c0, dout + (size_t)n * C + c0, nc);
        }
    }
}

/* --------------------------------------------------------------- RMSNorm */

void lc_cpu_rmsnorm_fwd(struct lc_backend *be, float *out, float *rstd, const float *x,
                        const float *w, int N, int C, float eps)
{
    const struct dense_kernels *kr = kernels(be);

#pragma omp parallel for schedule(static) if ((int64_t)N * C > CHUNK)
    for (int n = 0; n < N; n++) {
        float r = kr->rmsnorm_row(out + (size_t)n * C, x + (size_t)n * C, w, C, eps);
        if (rstd != NULL) {
            rstd[n] = r;
        }
    }
}

/* pass 1: dx row by row; pass 2: dw column block by column block, rows in
 * order (a sum over rows that no thread count can reorder) */
void lc_cpu_rmsnorm_bwd(struct lc_backend *be, float *dx, float *dw, const float *dout,
                        const float *x, const float *w, const float *rstd, int N, int C)
{
    const struct dense_kernels *kr = kernels(be);
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;

#pragma omp parallel if ((int64_t)N * C > CHUNK)
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            size_t o = (size_t)n * C;
            kr->rmsnorm_dx_row(dx + o, dout + o, x + o, w, rstd[n], C);
        }
        if (dw != NULL) {
#pragma omp for schedule(static)
            for (int b = 0; b < nblocks; b++) {
                int c0 = b * COL_BLOCK;
                int nc = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
                kr->rmsnorm_dw_cols(dw, dout, x, rstd, N, C, c0, nc);
            }
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

static void rope(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                 const float *sin_tab, int N, int nh, int D, int inverse)
{
    const struct dense_kernels *kr = kernels(be);
    size_t half = (size_t)(D / 2);

#pragma omp parallel for schedule(static) if ((int64_t)N * nh * D > CHUNK)
    for (int n = 0; n < N; n++) {
        kr->rope_row(x + (size_t)n * nh * D, cos_tab + (size_t)pos[n] * half,
                     sin_tab + (size_t)pos[n] * half, nh, D, inverse);
    }
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
    const struct dense_kernels *kr = kernels(be);

#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i += CHUNK) {
        kr->swiglu_fwd(out + i, gate + i, up + i, min64(CHUNK, n - i));
    }
}

void lc_cpu_swiglu_bwd(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t n)
{
    const struct dense_kernels *kr = kernels(be);

#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i += CHUNK) {
        kr->swiglu_bwd(dgate + i, dup + i, dout + i, gate + i, up + i, min64(CHUNK, n - i));
    }
}

/* ---------------------------------------------------------------- losses */

void lc_cpu_mse_fwd_bwd(struct lc_backend *be, float *row_sse, float *dpred, const float *pred,
                        const float *target, int64_t rows, int cols, float grad_scale)
{
    const struct dense_kernels *kr = kernels(be);
    float gs2 = grad_scale * 2;

#pragma omp parallel for schedule(static) if (rows * cols > CHUNK)
    for (int64_t r = 0; r < rows; r++) {
        size_t o = (size_t)r * cols;
        row_sse[r] = kr->mse_row(dpred != NULL ? dpred + o : NULL, pred + o, target + o, cols, gs2);
    }
}

void lc_cpu_xent_fwd_bwd(struct lc_backend *be, float *row_loss, float *dlogits,
                         const float *logits, const int32_t *targets, int N, int V,
                         float grad_scale)
{
    const struct dense_kernels *kr = kernels(be);

    for (int n = 0; n < N; n++) {
        LC_ASSERT(targets[n] < V);
    }
#pragma omp parallel for schedule(static) if ((int64_t)N * V > CHUNK)
    for (int n = 0; n < N; n++) {
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
    }
}

/* ------------------------------------------------------------- optimizer */

void lc_cpu_adamw(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                  int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                  int64_t step)
{
    const struct dense_kernels *kr = kernels(be);
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

#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t len = min64(CHUNK, n - i);
        kr->adamw(p + i, g + i, m + i, v + i, len, &s);
    }
}
