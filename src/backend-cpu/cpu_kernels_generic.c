/*
 * The generic C row kernels (cpu_kernels.h): every build has them, and
 * they run where no vector set does.  Plain loops in a fixed order; the
 * short ones are marked omp simd where a reduction would otherwise stay
 * scalar (the order is then fixed by the build's vector width).
 */
#include "config.h"

#include <math.h>

#include "backend-cpu/cpu_kernels.h"
#include "core/half.h"
#include "core/ref/ref.h"

static void exp_generic(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i]);
    }
}

/* ------------------------------------------------------------ conversions */

static void f16_to_f32_generic(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        dst[i] = lc_f16_to_f32(src[i]);
    }
}

static void bf16_to_f32_generic(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        dst[i] = lc_bf16_to_f32(src[i]);
    }
}

/* Eight running sums combined in a fixed tree; always inlined with a
 * constant type so that each dtype gets its own loop. */
static inline __attribute__((always_inline)) float dot_generic(const float *x, const void *w,
                                                               int K, enum lc_dtype type)
{
    float acc[8] = {0};
    int i = 0;

    for (; i + 8 <= K; i += 8) {
        for (int j = 0; j < 8; j++) {
            acc[j] += x[i + j] * lc_dtype_load_f32(w, type, (size_t)(i + j));
        }
    }
    for (; i < K; i++) {
        acc[0] += x[i] * lc_dtype_load_f32(w, type, (size_t)i);
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_f32_generic(const float *x, const float *w, int K)
{
    return dot_generic(x, w, K, LC_DTYPE_F32);
}

static void gemv_generic(float *y, const float *x, const void *w, enum lc_dtype wtype, int K,
                         int M, float beta, int prefetch)
{
    const size_t ld = (size_t)K * lc_dtype_size(wtype);

    (void)prefetch;

    for (int m = 0; m < M; m++) {
        const void *wr = (const char *)w + (size_t)m * ld;
        const float d = wtype == LC_DTYPE_F16    ? dot_generic(x, wr, K, LC_DTYPE_F16)
                        : wtype == LC_DTYPE_BF16 ? dot_generic(x, wr, K, LC_DTYPE_BF16)
                                                 : dot_generic(x, wr, K, LC_DTYPE_F32);
        y[m] = beta == 0.0f ? d : d + beta * y[m];
    }
}

/* ----------------------------------------------------------- elementwise */

static void add_generic(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

static void div_row_generic(float *y, const float *x, float d, int n)
{
    for (int i = 0; i < n; i++) {
        y[i] = x[i] / d;
    }
}

static void axpy_scale_row_generic(float *y, const float *x, float a, float s, int n)
{
    for (int i = 0; i < n; i++) {
        y[i] = (y[i] + a * x[i]) * s;
    }
}

static void scale_acc_row_generic(float *y, float *acc, const float *x, float s, float a, int n)
{
    for (int i = 0; i < n; i++) {
        y[i] = x[i] * s;
        acc[i] += a * x[i];
    }
}

void lc_cpu_dropout_generic(float *y, const float *x, int64_t n, float p, uint64_t seed,
                            int64_t i0)
{
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        int keep = lc_dropout_uniform(seed, (uint64_t)(i0 + i)) >= p;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

/* --------------------------------------------------------------- RMSNorm */

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

/* ------------------------------------------------------------------ RoPE */

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

/* ---------------------------------------------------------------- SwiGLU */

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

/* --------------------------------------------------------------- softmax */

static void softmax_row_generic(float *s, int lim, int n)
{
    float mx = -INFINITY;
    float sum = 0.0f;
    float inv;

    for (int j = 0; j < lim; j++) {
        mx = s[j] > mx ? s[j] : mx;
    }
    for (int j = 0; j < lim; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    inv = 1.0f / sum;
    for (int j = 0; j < lim; j++) {
        s[j] *= inv;
    }
    for (int j = lim; j < n; j++) {
        s[j] = 0.0f;
    }
}

/* ---------------------------------------------------------------- losses */

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

/* ------------------------------------------------------------- optimizer */

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

/* ------------------------------------------------------ hybrid attention */

static float exp_row_generic(float *e, const float *s, int n, float gamma, float *m_out)
{
    float m = s[0];
    float sum = 0.0f;

    for (int c = 1; c < n; c++) {
        m = s[c] > m ? s[c] : m;
    }
    for (int c = 0; c < n; c++) {
        e[c] = gamma * expf(s[c] - m);
        sum += e[c];
    }
    *m_out = m;
    return sum;
}

static float bwd_row_generic(float *ds, float *p, const float *s, int n, float m, float gamma,
                             float delta, float invz)
{
    float sum = 0.0f, dm;
    int nties = 0;

    for (int c = 0; c < n; c++) {
        float e = gamma * expf(s[c] - m);
        float G = (ds[c] - delta) * invz;
        ds[c] = G * e;
        p[c] = e * invz;
        sum += ds[c];
        nties += s[c] == m;
    }
    if (nties == 0) {
        /* m is not this row's max (it came from another computation of
         * the scores): route the max path to the row's own argmax */
        m = s[0];
        for (int c = 1; c < n; c++) {
            m = s[c] > m ? s[c] : m;
        }
        for (int c = 0; c < n; c++) {
            nties += s[c] == m;
        }
    }
    dm = -sum / (float)nties;
    for (int c = 0; c < n; c++) {
        ds[c] += s[c] == m ? dm : 0.0f;
    }
    return sum;
}

/* out[c] = exp(sign z[c] - max(sign z)); returns the sum */
static float exp_half_generic(float *out, const float *z, int f, float sign)
{
    float mx = sign * z[0];
    float sum = 0.0f;

    for (int c = 1; c < f; c++) {
        mx = sign * z[c] > mx ? sign * z[c] : mx;
    }
    for (int c = 0; c < f; c++) {
        out[c] = expf(sign * z[c] - mx);
        sum += out[c];
    }
    return sum;
}

static void fmap_row_generic(float *phi, const float *z, int f, float eps)
{
    float sp = exp_half_generic(phi, z, f, 1.0f);
    float sn = exp_half_generic(phi + f, z, f, -1.0f);

    for (int c = 0; c < f; c++) {
        float a = phi[c] / sp;
        float b = phi[f + c] / sn;
        phi[c] = a < eps ? eps : a;
        phi[f + c] = b < eps ? eps : b;
    }
}

static void fmap_bwd_row_generic(float *dz, const float *z, const float *dphi, int f, float eps,
                                 float *tmp)
{
    float *p = tmp, *pn = tmp + f;
    float sp = exp_half_generic(p, z, f, 1.0f);
    float sn = exp_half_generic(pn, z, f, -1.0f);
    float ip = 0.0f, in = 0.0f;

    for (int c = 0; c < f; c++) {
        p[c] = p[c] / sp;
        pn[c] = pn[c] / sn;
        ip += (p[c] >= eps ? dphi[c] : 0.0f) * p[c];
        in += (pn[c] >= eps ? dphi[f + c] : 0.0f) * pn[c];
    }
    for (int c = 0; c < f; c++) {
        float gp = p[c] >= eps ? dphi[c] : 0.0f;
        float gn = pn[c] >= eps ? dphi[f + c] : 0.0f;
        dz[c] = p[c] * (gp - ip) - pn[c] * (gn - in);
    }
}

/* -------------------------------------------------------------- decoding */

static void scores_generic(float *s, const float *q, int H, int rep, const float *k, int ldk,
                           int n, int D, float scale)
{
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * (size_t)D;
        const float *kh = k + (size_t)(h / rep) * (size_t)D;
        for (int j = 0; j < n; j++) {
            const float *kj = kh + (size_t)j * (size_t)ldk;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int d = 0; d < D; d++) {
                acc += qh[d] * kj[d];
            }
            s[(size_t)h * (size_t)n + (size_t)j] = scale * acc;
        }
    }
}

static void wsum_generic(float *y, const float *p, int H, int rep, const float *v, int ldv, int n,
                         int D)
{
    for (int h = 0; h < H; h++) {
        float *yh = y + (size_t)h * (size_t)D;
        const float *ph = p + (size_t)h * (size_t)n;
        const float *vh = v + (size_t)(h / rep) * (size_t)D;
        for (int j = 0; j < n; j++) {
            const float *vj = vh + (size_t)j * (size_t)ldv;
            const float pj = ph[j];
#pragma omp simd
            for (int d = 0; d < D; d++) {
                yh[d] += pj * vj[d];
            }
        }
    }
}

/* The hybrid attention's small GEMMs through OpenBLAS: the packed B is
 * B itself, row-major (one panel of N columns). */
static void gemm_pack_generic(float *bp, const float *b, int K, int N, ptrdiff_t bks,
                              ptrdiff_t bns)
{
    for (int k = 0; k < K; k++) {
        for (int n = 0; n < N; n++) {
            bp[(size_t)k * (size_t)N + (size_t)n] = b[k * bks + n * bns];
        }
    }
}

static void gemm_generic(int M, int N, int K, float alpha, const float *a, ptrdiff_t ars,
                         ptrdiff_t aks, const float *bp, ptrdiff_t bps, float beta, float *c,
                         int ldc, ptrdiff_t cps)
{
    /* one panel: B row-major with N columns, C row-major; A as stored
     * (a single row or column may come with either stride 1) */
    const int ta = !(K <= 1 || (aks == 1 && (ars >= K || M <= 1)));
    const ptrdiff_t lda = ta ? (aks > M ? aks : M) : (ars > K ? ars : K);

    (void)bps;
    (void)cps;
    LC_ASSERT(!ta || ars == 1);
    lc_cpu_sgemm_serial(ta, 0, M, N, K, alpha, a, (int)lda, bp, N, beta, c, ldc);
}

const struct lc_cpu_kernels lc_cpu_kernels_generic = {
    .name = "generic C",
    .exp = exp_generic,
    .f16_to_f32 = f16_to_f32_generic,
    .bf16_to_f32 = bf16_to_f32_generic,
    .dot = dot_f32_generic,
    .gemv = gemv_generic,
    .add = add_generic,
    .dropout = lc_cpu_dropout_generic,
    .rmsnorm_row = rmsnorm_row_generic,
    .rmsnorm_dx_row = rmsnorm_dx_row_generic,
    .rmsnorm_dw_cols = rmsnorm_dw_cols_generic,
    .rope_row = rope_row_generic,
    .swiglu_fwd = swiglu_fwd_generic,
    .swiglu_bwd = swiglu_bwd_generic,
    .softmax_row = softmax_row_generic,
    .xent_row = xent_row_generic,
    .mse_row = mse_row_generic,
    .adamw = adamw_generic,
    .exp_row = exp_row_generic,
    .bwd_row = bwd_row_generic,
    .div_row = div_row_generic,
    .axpy_scale_row = axpy_scale_row_generic,
    .scale_acc_row = scale_acc_row_generic,
    .fmap_row = fmap_row_generic,
    .fmap_bwd_row = fmap_bwd_row_generic,
    .scores = scores_generic,
    .wsum = wsum_generic,
    .gemm_np = 0,
    .gemm_pack = gemm_pack_generic,
    .gemm = gemm_generic,
};

const struct lc_cpu_kernels *lc_cpu_kernels_of_isa(enum lc_cpu_isa isa)
{
    switch (isa) {
#ifdef LC_HAVE_AVX2
    case LC_CPU_ISA_AVX2:
        return &lc_cpu_kernels_avx2;
#endif
#ifdef LC_HAVE_AVX512
    case LC_CPU_ISA_AVX512:
        return &lc_cpu_kernels_avx512;
#endif
#ifdef LC_HAVE_NEON
    case LC_CPU_ISA_NEON:
        return &lc_cpu_kernels_neon;
#endif
    default:
        return &lc_cpu_kernels_generic;
    }
}
