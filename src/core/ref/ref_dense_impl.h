/*
 * The reference kernels for dense algebra, embeddings, RMSNorm, RoPE,
 * SwiGLU, softmax attention, losses and AdamW, written once over a scalar
 * type REAL.  This file is included twice:
 *
 *   ref_dense.c      REAL float,  names lc_ref_<op>      (the ref backend)
 *   ref_dense_f64.c  REAL double, names lc_ref_<op>_f64  (finite-difference
 *                    tests: the backward of the double instance is checked
 *                    against differences of its forward)
 *
 * Define REAL and REF_FN(op) before including it.  Sums run in double in
 * both instances; <tgmath.h> picks expf or exp from the argument type.
 * Every kernel is single-threaded and written to be read: it is the
 * specification the fast kernels are tested against.
 */
#if !defined(REAL) || !defined(REF_FN)
#error "define REAL and REF_FN(op) before including ref_dense_impl.h"
#endif

#include <stdint.h>
#include <tgmath.h>

#include "core/half.h"
#include "core/util.h"

/* accumulator of every sum, in both instances */
typedef double acc_t;

/* Element i of a weight or embedding table stored in its file dtype. */
static REAL load_elem(const void *base, enum lc_dtype type, size_t i)
{
    LC_ASSERT(type == LC_DTYPE_F32 || type == LC_DTYPE_F16 || type == LC_DTYPE_BF16);
    return (REAL)lc_dtype_load_f32(base, type, i);
}

/* ------------------------------------------------------------ dense algebra */

/* C[M,N] = alpha * op(A) op(B) + beta * C.  As in BLAS, beta = 0 ignores
 * what C held (even NaN). */
void REF_FN(gemm)(struct lc_backend *be, int ta, int tb, int M, int N, int K, REAL alpha,
                  const REAL *A, int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
    (void)be;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            REAL *c = &C[(size_t)i * ldc + j];
            acc_t sum = 0;
            for (int k = 0; k < K; k++) {
                REAL a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                REAL b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += (acc_t)a * b;
            }
            *c = (REAL)(alpha * sum + (beta == 0 ? 0 : beta * (acc_t)*c));
        }
    }
}

/* y[N,M] = x[N,K] w[M,K]^T + beta * y (beta = 0 overwrites) */
void REF_FN(linear_fwd)(struct lc_backend *be, REAL *y, const REAL *x, const void *w,
                        enum lc_dtype wtype, int N, int K, int M, REAL beta)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            REAL *out = &y[(size_t)n * M + m];
            acc_t sum = 0;
            for (int k = 0; k < K; k++) {
                sum += (acc_t)x[(size_t)n * K + k] * load_elem(w, wtype, (size_t)m * K + k);
            }
            *out = (REAL)(sum + (beta == 0 ? 0 : beta * (acc_t)*out));
        }
    }
}

/* dx[N,K] = dy[N,M] w[M,K] + beta * dx (beta = 0 overwrites) */
void REF_FN(linear_bwd)(struct lc_backend *be, REAL *dx, const REAL *dy, const void *w,
                        enum lc_dtype wtype, int N, int K, int M, REAL beta)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) {
            REAL *out = &dx[(size_t)n * K + k];
            acc_t sum = 0;
            for (int m = 0; m < M; m++) {
                sum += (acc_t)dy[(size_t)n * M + m] * load_elem(w, wtype, (size_t)m * K + k);
            }
            *out = (REAL)(sum + (beta == 0 ? 0 : beta * (acc_t)*out));
        }
    }
}

void REF_FN(add)(struct lc_backend *be, REAL *y, const REAL *x, int64_t n)
{
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

/* Element i is kept when u(seed, i) >= p (lc_dropout_uniform) and scaled by
 * 1/(1-p); dropped elements become 0.  p = 0 keeps everything unscaled. */
void REF_FN(dropout)(struct lc_backend *be, REAL *y, const REAL *x, int64_t n, REAL p,
                     uint64_t seed)
{
    REAL scale = (REAL)1 / ((REAL)1 - p);

    (void)be;
    for (int64_t i = 0; i < n; i++) {
        int keep = (REAL)lc_dropout_uniform(seed, (uint64_t)i) >= p;
        y[i] = keep ? x[i] * scale : 0;
    }
}

/* ------------------------------------------------------ embedding, norms */

void REF_FN(embedding_fwd)(struct lc_backend *be, REAL *out, const int32_t *ids,
                           const void *table, enum lc_dtype ttype, int N, int C)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            out[(size_t)n * C + c] = load_elem(table, ttype, (size_t)ids[n] * C + c);
        }
    }
}

/* Rows are added in token order, so repeated ids sum deterministically. */
void REF_FN(embedding_bwd)(struct lc_backend *be, REAL *dtable, const REAL *dout,
                           const int32_t *ids, int N, int C, int V)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        LC_ASSERT(ids[n] >= 0 && ids[n] < V);
        for (int c = 0; c < C; c++) {
            dtable[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
        }
    }
}

/* out = w * (x * r), r = 1/sqrt(mean(x^2) + eps) per row, as in Hugging
 * Face's LlamaRMSNorm. */
void REF_FN(rmsnorm_fwd)(struct lc_backend *be, REAL *out, REAL *rstd, const REAL *x,
                         const REAL *w, int N, int C, REAL eps)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        const REAL *xr = x + (size_t)n * C;
        REAL *o = out + (size_t)n * C;
        acc_t ss = 0;
        REAL r;
        for (int c = 0; c < C; c++) {
            ss += (acc_t)xr[c] * xr[c];
        }
        r = (REAL)(1 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) {
            o[c] = w[c] * (xr[c] * r);
        }
        if (rstd != NULL) {
            rstd[n] = r;
        }
    }
}

/* With y_c = w_c x_c r and r = (mean(x^2) + eps)^(-1/2):
 *   dL/dx_c = r w_c g_c - x_c r^3 / C * sum_j g_j w_j x_j
 *   dL/dw_c = sum over rows of g_c x_c r */
void REF_FN(rmsnorm_bwd)(struct lc_backend *be, REAL *dx, REAL *dw, const REAL *dout,
                         const REAL *x, const REAL *w, const REAL *rstd, int N, int C)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        const REAL *xr = x + (size_t)n * C;
        const REAL *g = dout + (size_t)n * C;
        REAL *dxr = dx + (size_t)n * C;
        acc_t r = rstd[n];
        acc_t dot = 0;
        acc_t coef;
        for (int c = 0; c < C; c++) {
            dot += (acc_t)g[c] * w[c] * xr[c];
        }
        coef = dot * r * r * r / C;
        for (int c = 0; c < C; c++) {
            dxr[c] += (REAL)(r * w[c] * g[c] - coef * xr[c]);
        }
        if (dw != NULL) {
            for (int c = 0; c < C; c++) {
                dw[c] += (REAL)((acc_t)g[c] * xr[c] * r);
            }
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

/* Rotate-half: (x_i, x_{i+D/2}) -> (x_i c - x_{i+D/2} s, x_{i+D/2} c + x_i s);
 * inverse = 1 turns the angle around (the transpose, for gradients). */
static void rope_apply(REAL *x, const int32_t *pos, const float *cos_tab, const float *sin_tab,
                       int N, int nh, int D, int inverse)
{
    int half = D / 2;

    for (int n = 0; n < N; n++) {
        const float *cr = cos_tab + (size_t)pos[n] * half;
        const float *sr = sin_tab + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            REAL *v = x + ((size_t)n * nh + h) * D;
            for (int i = 0; i < half; i++) {
                REAL c = cr[i];
                REAL s = inverse ? -sr[i] : sr[i];
                REAL a = v[i];
                REAL b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

void REF_FN(rope_fwd)(struct lc_backend *be, REAL *x, const int32_t *pos, const float *cos_tab,
                      const float *sin_tab, int N, int nh, int D)
{
    (void)be;
    rope_apply(x, pos, cos_tab, sin_tab, N, nh, D, 0);
}

void REF_FN(rope_bwd)(struct lc_backend *be, REAL *dx, const int32_t *pos, const float *cos_tab,
                      const float *sin_tab, int N, int nh, int D)
{
    (void)be;
    rope_apply(dx, pos, cos_tab, sin_tab, N, nh, D, 1);
}

/* ---------------------------------------------------------------- SwiGLU */

/* sigmoid(g) = 1 / (1 + exp(-g)): exp overflows to inf for g < -88 (float)
 * and the quotient is then exactly 0, as in PyTorch. */
static REAL sigmoid(REAL g)
{
    return (REAL)1 / ((REAL)1 + exp(-g));
}

void REF_FN(swiglu_fwd)(struct lc_backend *be, REAL *out, const REAL *gate, const REAL *up,
                        int64_t n)
{
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        out[i] = gate[i] * sigmoid(gate[i]) * up[i];
    }
}

/* d silu(g)/dg = s (1 + g (1 - s)) with s = sigmoid(g) */
void REF_FN(swiglu_bwd)(struct lc_backend *be, REAL *dgate, REAL *dup, const REAL *dout,
                        const REAL *gate, const REAL *up, int64_t n)
{
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        REAL g = gate[i];
        REAL s = sigmoid(g);
        REAL d = dout[i];
        dgate[i] = d * up[i] * (s * ((REAL)1 + g * ((REAL)1 - s)));
        dup[i] = d * (g * s);
    }
}

/* ----------------------------------------------------- softmax attention */

static acc_t dot_real(const REAL *a, const REAL *b, int D)
{
    acc_t s = 0;
    for (int d = 0; d < D; d++) {
        s += (acc_t)a[d] * b[d];
    }
    return s;
}

/* Three passes per query (max, denominator, weighted sum of values) so that
 * no scratch memory is needed: the scores are recomputed each time. */
void REF_FN(attn_fwd)(struct lc_backend *be, REAL *y, const REAL *q, const REAL *k,
                      const REAL *v, int B, int Tq, int Tk, int H, int Hkv, int D, int q_pos0)
{
    acc_t scale = 1 / sqrt((acc_t)D);
    int group = H / Hkv;

    (void)be;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Tq; i++) {
            /* causal by absolute position, bounded by the keys present */
            int64_t last = (int64_t)q_pos0 + i;
            int nk = last + 1 < Tk ? (int)(last + 1) : Tk;
            for (int h = 0; h < H; h++) {
                const REAL *qi = q + (((size_t)b * Tq + i) * H + h) * D;
                REAL *yi = y + (((size_t)b * Tq + i) * H + h) * D;
                size_t kv0 = (size_t)b * Tk * Hkv + (size_t)(h / group);
                acc_t mx = -INFINITY;
                acc_t den = 0;
                for (int d = 0; d < D; d++) {
                    yi[d] = 0;
                }
                for (int j = 0; j < nk; j++) {
                    acc_t s = scale * dot_real(qi, k + (kv0 + (size_t)j * Hkv) * D, D);
                    mx = s > mx ? s : mx;
                }
                for (int j = 0; j < nk; j++) {
                    acc_t s = scale * dot_real(qi, k + (kv0 + (size_t)j * Hkv) * D, D);
                    den += exp(s - mx);
                }
                for (int j = 0; j < nk; j++) {
                    acc_t s = scale * dot_real(qi, k + (kv0 + (size_t)j * Hkv) * D, D);
                    REAL p = (REAL)(exp(s - mx) / den);
                    const REAL *vj = v + (kv0 + (size_t)j * Hkv) * D;
                    for (int d = 0; d < D; d++) {
                        yi[d] += p * vj[d];
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- losses */

void REF_FN(mse_fwd_bwd)(struct lc_backend *be, REAL *row_sse, REAL *dpred, const REAL *pred,
                         const REAL *target, int64_t rows, int cols, REAL grad_scale)
{
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        const REAL *p = pred + (size_t)r * cols;
        const REAL *t = target + (size_t)r * cols;
        acc_t sse = 0;
        for (int c = 0; c < cols; c++) {
            REAL e = p[c] - t[c];
            sse += (acc_t)e * e;
            if (dpred != NULL) {
                dpred[(size_t)r * cols + c] = grad_scale * 2 * e;
            }
        }
        row_sse[r] = (REAL)sse;
    }
}

/* dlogits may alias logits: each element is read before it is written. */
void REF_FN(xent_fwd_bwd)(struct lc_backend *be, REAL *row_loss, REAL *dlogits,
                          const REAL *logits, const int32_t *targets, int N, int V,
                          REAL grad_scale)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        const REAL *l = logits + (size_t)n * V;
        REAL *dl = dlogits != NULL ? dlogits + (size_t)n * V : NULL;
        int t = targets[n];
        acc_t mx = -INFINITY;
        acc_t sum = 0;
        acc_t lse;

        LC_ASSERT(t < V);
        if (t < 0) {
            row_loss[n] = 0;
            for (int j = 0; dl != NULL && j < V; j++) {
                dl[j] = 0;
            }
            continue;
        }
        for (int j = 0; j < V; j++) {
            mx = l[j] > mx ? l[j] : mx;
        }
        for (int j = 0; j < V; j++) {
            sum += exp(l[j] - mx);
        }
        lse = mx + log(sum);
        row_loss[n] = (REAL)(lse - l[t]);
        for (int j = 0; dl != NULL && j < V; j++) {
            REAL p = (REAL)exp(l[j] - lse);
            dl[j] = grad_scale * (p - (j == t ? (REAL)1 : (REAL)0));
        }
    }
}

/* ------------------------------------------------------------- optimizer */

/* PyTorch's single-tensor AdamW: the scalars are formed in double (Python
 * floats) and rounded to REAL where they meet the tensors; the elementwise
 * updates run in REAL, in PyTorch's order.  The first moment is a lerp
 * towards g with weight 1 - beta1, evaluated the way torch.lerp does. */
void REF_FN(adamw)(struct lc_backend *be, REAL *p, const REAL *g, REAL *m, REAL *v, int64_t n,
                   double lr, double beta1, double beta2, double eps, double wd, int64_t step)
{
    double bc1 = 1 - pow(beta1, (double)step);
    double bc2 = 1 - pow(beta2, (double)step);
    REAL decay = (REAL)(1 - lr * wd);
    REAL w1 = (REAL)(1 - beta1);
    REAL w1c = (REAL)beta1; /* 1 - w1, for the lerp's second form */
    REAL b2 = (REAL)beta2;
    REAL w2 = (REAL)(1 - beta2);
    REAL neg_step = (REAL)(-(lr / bc1));
    REAL bc2_sqrt = (REAL)sqrt(bc2);
    REAL eps_r = (REAL)eps;

    (void)be;
    for (int64_t i = 0; i < n; i++) {
        REAL gi = g[i];
        REAL denom;
        p[i] = p[i] * decay;
        if (1 - beta1 < 0.5) {
            m[i] = m[i] + w1 * (gi - m[i]);
        } else {
            m[i] = gi - (gi - m[i]) * w1c;
        }
        v[i] = v[i] * b2 + w2 * gi * gi;
        denom = sqrt(v[i]) / bc2_sqrt + eps_r;
        p[i] = p[i] + neg_step * (m[i] / denom);
    }
}
