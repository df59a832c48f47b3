/*
 * The vector row kernels of the cpu backend, written once over a small set
 * of primitives (vf: a vector of VL floats; vm: a lane mask; vd: a sum
 * widened to double) and compiled once per instruction set:
 *
 *   kernels_avx2.c    simd_avx2.h     8 lanes, AVX2 + FMA + F16C
 *   kernels_avx512.c  simd_avx512.h  16 lanes, AVX-512 F/BW/DQ/VL
 *   kernels_neon.c    simd_neon.h     4 lanes, aarch64 ASIMD
 *
 * Each of those files includes its primitives, defines LC_SIMD_TABLE (the
 * name of its struct lc_cpu_kernels), LC_SIMD_LABEL and LC_SIMD_DROPOUT
 * (its dropout kernel, or the generic one), and optionally
 * LC_SIMD_SHORT_ROWS (a table of half the width, which the decoding
 * kernels use for rows of at most VL/2 elements, where half of every
 * vector would be empty) and LC_SIMD_STREAM_GEMV (a table whose gemv
 * takes the rows of more than 4 VL elements, which decoding streams from
 * memory), then includes this file.
 * What each kernel computes is in cpu_kernels.h.
 *
 * Loops step VL floats at a time and finish with one partial vector, so
 * no size needs to be a multiple of VL and no load reads past the end.
 * Every sum runs in an order fixed by the arguments alone.
 */
#include <math.h>
#include <stdint.h>

#include "backend-cpu/cpu_kernels.h"
#include "core/ref/ref.h"

/* Runs the statements once per vector of [0, n): the full vectors with
 * nl == VL (a constant there, so the n-lane loads and stores fold into
 * plain ones), then the last, partial vector with nl = n - i. */
#define SIMD_FOR(i, nl, n, ...)                                                                   \
    do {                                                                                          \
        const int64_t simd_n_ = (n);                                                              \
        int64_t i = 0;                                                                            \
        for (; i + VL <= simd_n_; i += VL) {                                                      \
            const int nl = VL;                                                                    \
            __VA_ARGS__                                                                           \
        }                                                                                         \
        if (i < simd_n_) {                                                                        \
            const int nl = (int)(simd_n_ - i);                                                    \
            __VA_ARGS__                                                                           \
        }                                                                                         \
    } while (0)

LC_SIMD_INLINE vf vf_keepn(vf v, int n) { return vf_keepn_or(v, n, 0.0f); }

/* exp(x), within 1 ulp of the correctly rounded result over the whole
 * float range, subnormal results included (tests/test_kernels_dense.c
 * checks every 97th float).  x = n ln2 + r with |r| <= ln2/2, e^r by its
 * Taylor polynomial to degree 7 (truncation error 5e-9 relative), then
 * scaled by 2^n, which also gives the overflow to inf and the gradual
 * underflow to 0.  Inputs are clamped first so that r stays small; NaN
 * passes through the clamp. */
LC_SIMD_INLINE vf vf_exp(vf x)
{
    const vf log2e = vf_set1(1.44269504088896341f);
    const vf ln2_hi = vf_set1(0.693145751953125f);
    const vf ln2_lo = vf_set1(1.428606820309417232e-6f);
    vf n, r, p;

    x = vf_max(vf_set1(-104.0f), x);
    x = vf_min(vf_set1(89.0f), x);
    n = vf_round(vf_mul(x, log2e));
    r = vf_fnma(n, ln2_hi, x);
    r = vf_fnma(n, ln2_lo, r);
    p = vf_set1(1.0f / 5040);
    p = vf_fma(p, r, vf_set1(1.0f / 720));
    p = vf_fma(p, r, vf_set1(1.0f / 120));
    p = vf_fma(p, r, vf_set1(1.0f / 24));
    p = vf_fma(p, r, vf_set1(1.0f / 6));
    p = vf_fma(p, r, vf_set1(0.5f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    return vf_ldexp(p, n);
}

static void v_exp(float *y, const float *x, int64_t n)
{
    SIMD_FOR(i, nl, n, vf_storen(y + i, vf_exp(vf_loadn(x + i, nl)), nl););
}

/* one lane of a vector whose lanes are all equal */
LC_SIMD_INLINE float vf_first(vf v)
{
    float t[VL];
    vf_store(t, v);
    return t[0];
}

/* ------------------------------------------------------------ conversions */

static void v_f16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    SIMD_FOR(i, nl, n, vf_storen(dst + i, vf_loadn_f16(src + i, nl), nl););
}

static void v_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    SIMD_FOR(i, nl, n, vf_storen(dst + i, vf_loadn_bf16(src + i, nl), nl););
}

/* -------------------------------------------------------------- dot rows */

LC_SIMD_INLINE vf load_w(const void *w, int64_t i, int nl, enum lc_dtype type)
{
    switch (type) {
    case LC_DTYPE_F16:
        return vf_loadn_f16((const uint16_t *)w + i, nl);
    case LC_DTYPE_BF16:
        return vf_loadn_bf16((const uint16_t *)w + i, nl);
    default:
        return vf_loadn((const float *)w + i, nl);
    }
}

/* how far the gemv prefetches its weights (measured best of 512 to 8192
 * bytes for bf16 rows of 4096 on AVX2 and AVX-512) */
#define GEMV_AHEAD 2048

/* The gemv streams GEMV_PARTS rows side by side, with GEMV_ACC
 * accumulators per row (16 of the 32 AVX-512 and NEON registers, 8 of
 * the 16 AVX2 ones): a core keeps more of the memory's bandwidth busy with
 * several streams than with one.  On an AMD EPYC Zen 4 with two threads,
 * when the machine's triad ran at 55-60 GB/s, two streams of bf16 rows of
 * 4096 per thread read 70-75% of it, four 80-95%, eight 100-110%. */
#define GEMV_PARTS 8
#if VL == 8
#define GEMV_ACC 1
#else
#define GEMV_ACC 2
#endif

/* The cache lines of n bytes at p, `ahead` bytes on, to the level that
 * `prefetch` names (cpu_kernels.h) */
LC_SIMD_INLINE void prefetch_ahead(const char *p, int n, int ahead, int prefetch)
{
    for (int l = 0; l < n; l += 64) {
        if (prefetch == LC_CPU_PREFETCH_L2) {
            __builtin_prefetch(p + ahead + l, 0, 2);
        } else {
            __builtin_prefetch(p + ahead + l, 0, 3);
        }
    }
}

/* The lane-wise partial sums of x . w for S rows at once (row s at w +
 * s part), each with A accumulators (1, 2 or 4): vector c of each 4 VL
 * step goes to accumulator c % A, the tail to the first, then a fixed
 * combination ((a0 + a1) + (a2 + a3) for 4); K >= 4 VL.  Always inlined
 * with constant S, A and type. */
LC_SIMD_INLINE void dot_vecs(vf *out, const float *x, const char *w, size_t part, int K,
                             enum lc_dtype type, int S, int A, int prefetch)
{
    const int wsize = type == LC_DTYPE_F32 ? (int)sizeof(float) : (int)sizeof(uint16_t);
    vf a[GEMV_PARTS][4];
    int i = 0;

    for (int s = 0; s < S; s++) {
        a[s][0] = a[s][1] = a[s][2] = a[s][3] = vf_zero();
    }
    for (; i + 4 * VL <= K; i += 4 * VL) {
        const vf xv[4] = {vf_load(x + i), vf_load(x + i + VL), vf_load(x + i + 2 * VL),
                          vf_load(x + i + 3 * VL)};
#pragma GCC unroll 8
        for (int s = 0; s < S; s++) {
            const char *ws = w + (size_t)s * part;
            if (prefetch != LC_CPU_PREFETCH_NONE) {
                prefetch_ahead(ws + (size_t)i * wsize, 4 * VL * wsize, GEMV_AHEAD, prefetch);
            }
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                a[s][c % A] = vf_fma(xv[c], load_w(ws, i + c * VL, VL, type), a[s][c % A]);
            }
        }
    }
    for (; i < K; i += VL) {
        const int nl = K - i < VL ? K - i : VL;
        const vf xt = vf_loadn(x + i, nl);
#pragma GCC unroll 8
        for (int s = 0; s < S; s++) {
            a[s][0] = vf_fma(xt, load_w(w + (size_t)s * part, i, nl, type), a[s][0]);
        }
    }
    for (int s = 0; s < S; s++) {
        out[s] = A == 4   ? vf_add(vf_add(a[s][0], a[s][1]), vf_add(a[s][2], a[s][3]))
                 : A == 2 ? vf_add(a[s][0], a[s][1])
                          : a[s][0];
    }
}

/* The lane-wise partial sums of x . w: four accumulators over 4 VL-element
 * steps, then the tail into the first, then a fixed combination (a0 + a1)
 * + (a2 + a3) (dot_vecs with A 4); only a0 when K < 4 VL.  Always inlined with a
 * constant type, so each caller gets its own loop. */
LC_SIMD_INLINE vf dot_vec(const float *x, const void *w, int K, enum lc_dtype type)
{
    vf a0 = vf_zero();

    if (K >= 4 * VL) {
        dot_vecs(&a0, x, (const char *)w, 0, K, type, 1, 4, LC_CPU_PREFETCH_NONE);
        return a0;
    }
    for (int i = 0; i < K; i += VL) {
        const int nl = K - i < VL ? K - i : VL;
        a0 = vf_fma(vf_loadn(x + i, nl), load_w(w, i, nl, type), a0);
    }
    return a0;
}

LC_SIMD_INLINE float dot_row(const float *x, const void *w, int K, enum lc_dtype type)
{
    return vf_hsum(dot_vec(x, w, K, type));
}

static float v_dot(const float *x, const float *w, int K)
{
    return dot_row(x, w, K, LC_DTYPE_F32);
}

/* ----------------------------------------------------------- elementwise */

static void v_add(float *y, const float *x, int64_t n)
{
    SIMD_FOR(i, nl, n, vf_storen(y + i, vf_add(vf_loadn(y + i, nl), vf_loadn(x + i, nl)), nl););
}

static void v_div_row(float *y, const float *x, float d, int n)
{
    const vf vdiv = vf_set1(d);
    SIMD_FOR(i, nl, n, vf_storen(y + i, vf_div(vf_loadn(x + i, nl), vdiv), nl););
}

static void v_axpy_scale_row(float *y, const float *x, float a, float s, int n)
{
    const vf va = vf_set1(a), vs = vf_set1(s);
    SIMD_FOR(i, nl, n,
             vf_storen(y + i, vf_mul(vf_fma(va, vf_loadn(x + i, nl), vf_loadn(y + i, nl)), vs),
                       nl););
}

static void v_scale_acc_row(float *y, float *acc, const float *x, float s, float a, int n)
{
    const vf vs = vf_set1(s), va = vf_set1(a);
    SIMD_FOR(i, nl, n, {
        const vf xv = vf_loadn(x + i, nl);
        vf_storen(y + i, vf_mul(xv, vs), nl);
        vf_storen(acc + i, vf_fma(va, xv, vf_loadn(acc + i, nl)), nl);
    });
}

/* --------------------------------------------------------------- RMSNorm */

static float v_rmsnorm_row(float *out, const float *x, const float *w, int C, float eps)
{
    vd acc = vd_zero();
    vf rv;
    float r;

    SIMD_FOR(c, nl, C, {
        vf v = vf_loadn(x + c, nl);
        acc = vd_add(acc, vf_mul(v, v));
    });
    r = (float)(1 / sqrt(vd_sum(acc) / C + eps));
    rv = vf_set1(r);
    SIMD_FOR(c, nl, C, {
        vf v = vf_mul(vf_loadn(w + c, nl), vf_mul(vf_loadn(x + c, nl), rv));
        vf_storen(out + c, v, nl);
    });
    return r;
}

static void v_rmsnorm_dx_row(float *dx, const float *g, const float *x, const float *w, float r,
                             int C)
{
    vd acc = vd_zero();
    const vf rv = vf_set1(r);
    vf coef;

    SIMD_FOR(c, nl, C, {
        vf gw = vf_mul(vf_loadn(g + c, nl), vf_loadn(w + c, nl));
        acc = vd_add(acc, vf_mul(gw, vf_loadn(x + c, nl)));
    });
    coef = vf_set1((float)(vd_sum(acc) * r * r * r / C));
    SIMD_FOR(c, nl, C, {
        vf gw = vf_mul(vf_loadn(g + c, nl), vf_loadn(w + c, nl));
        vf d = vf_fms(rv, gw, vf_mul(coef, vf_loadn(x + c, nl)));
        vf_storen(dx + c, vf_add(vf_loadn(dx + c, nl), d), nl);
    });
}

/* Up to 4 VL columns at a time in four registers, rows in order. */
static void v_rmsnorm_dw_cols(float *dw, const float *dout, const float *x, const float *rstd,
                              int N, int C, int c0, int nc)
{
    for (int c = c0; c < c0 + nc; c += 4 * VL) {
        vf acc[4];
        int nls[4];
        int nv = (c0 + nc - c + VL - 1) / VL;
        nv = nv > 4 ? 4 : nv;
        for (int j = 0; j < nv; j++) {
            const int left = c0 + nc - c - VL * j;
            nls[j] = left < VL ? left : VL;
            acc[j] = vf_loadn(dw + c + VL * j, nls[j]);
        }
        for (int n = 0; n < N; n++) {
            const float *gr = dout + (size_t)n * C + c;
            const float *xr = x + (size_t)n * C + c;
            const vf r = vf_set1(rstd[n]);
            for (int j = 0; j < nv; j++) {
                vf gx = vf_mul(vf_loadn(gr + VL * j, nls[j]), vf_loadn(xr + VL * j, nls[j]));
                acc[j] = vf_fma(gx, r, acc[j]);
            }
        }
        for (int j = 0; j < nv; j++) {
            vf_storen(dw + c + VL * j, acc[j], nls[j]);
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

static void v_rope_row(float *x, const float *c, const float *s, int nh, int D, int inverse)
{
    const int half = D / 2;
    const vf sign = vf_set1(inverse ? -1.0f : 1.0f);

    for (int h = 0; h < nh; h++) {
        float *v = x + (size_t)h * D;
        SIMD_FOR(i, nl, half, {
            vf cv = vf_loadn(c + i, nl);
            vf sv = vf_mul(sign, vf_loadn(s + i, nl));
            vf a = vf_loadn(v + i, nl);
            vf b = vf_loadn(v + i + half, nl);
            vf_storen(v + i, vf_fms(a, cv, vf_mul(b, sv)), nl);
            vf_storen(v + i + half, vf_fma(b, cv, vf_mul(a, sv)), nl);
        });
    }
}

/* ---------------------------------------------------------------- SwiGLU */

LC_SIMD_INLINE vf sigmoid(vf g)
{
    const vf one = vf_set1(1.0f);
    return vf_div(one, vf_add(one, vf_exp(vf_sub(vf_zero(), g))));
}

static void v_swiglu_fwd(float *out, const float *gate, const float *up, int64_t n)
{
    SIMD_FOR(i, nl, n, {
        vf g = vf_loadn(gate + i, nl);
        vf u = vf_loadn(up + i, nl);
        vf_storen(out + i, vf_mul(vf_mul(g, sigmoid(g)), u), nl);
    });
}

static void v_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n)
{
    const vf one = vf_set1(1.0f);

    SIMD_FOR(i, nl, n, {
        vf g = vf_loadn(gate + i, nl);
        vf u = vf_loadn(up + i, nl);
        vf d = vf_loadn(dout + i, nl);
        vf s = sigmoid(g);
        /* s (1 + g (1 - s)) */
        vf ds = vf_mul(s, vf_fma(g, vf_sub(one, s), one));
        vf_storen(dgate + i, vf_mul(vf_mul(d, u), ds), nl);
        vf_storen(dup + i, vf_mul(d, vf_mul(g, s)), nl);
    });
}

/* --------------------------------------------------------------- softmax */

static float max_row(const float *s, int n)
{
    vf mx = vf_set1(-INFINITY);
    SIMD_FOR(j, nl, n, mx = vf_max(mx, vf_loadn_or(s + j, nl, -INFINITY)););
    return vf_hmax(mx);
}

static void v_softmax_row(float *s, int lim, int n)
{
    const vf mx = vf_set1(max_row(s, lim));
    vf sum = vf_zero();
    vf inv;

    SIMD_FOR(j, nl, lim, {
        vf e = vf_keepn(vf_exp(vf_sub(vf_loadn(s + j, nl), mx)), nl);
        sum = vf_add(sum, e);
        vf_storen(s + j, e, nl);
    });
    inv = vf_set1(1.0f / vf_hsum(sum));
    SIMD_FOR(j, nl, lim, vf_storen(s + j, vf_mul(vf_loadn(s + j, nl), inv), nl););
    for (int j = lim; j < n; j++) {
        s[j] = 0.0f;
    }
}

/* ---------------------------------------------------------------- losses */

/* p_j = exp(l_j - max) / sum, as in the generic kernel */
static float v_xent_row(float *dl, const float *l, int t, int V, float gs)
{
    const float lt = l[t]; /* before dl (maybe l itself) is written */
    const float mxs = max_row(l, V);
    const vf mx = vf_set1(mxs);
    vd acc = vd_zero();
    double sum;

    SIMD_FOR(j, nl, V, {
        vf e = vf_exp(vf_sub(vf_loadn(l + j, nl), mx));
        acc = vd_add(acc, vf_keepn(e, nl));
    });
    sum = vd_sum(acc);
    if (dl != NULL) {
        const float scale = (float)(gs / sum);
        const vf sv = vf_set1(scale);
        const float pt = vf_first(vf_exp(vf_sub(vf_set1(lt), mx)));
        SIMD_FOR(j, nl, V, {
            vf e = vf_exp(vf_sub(vf_loadn(l + j, nl), mx));
            vf_storen(dl + j, vf_mul(sv, e), nl);
        });
        dl[t] = scale * pt - gs;
    }
    return (float)(mxs + log(sum) - lt);
}

static float v_mse_row(float *dp, const float *p, const float *t, int cols, float gs2)
{
    vd acc = vd_zero();
    const vf g = vf_set1(gs2);

    SIMD_FOR(c, nl, cols, {
        vf e = vf_sub(vf_loadn(p + c, nl), vf_loadn(t + c, nl));
        acc = vd_add(acc, vf_mul(e, e));
        if (dp != NULL) {
            vf_storen(dp + c, vf_mul(g, e), nl);
        }
    });
    return (float)vd_sum(acc);
}

/* ------------------------------------------------------------- optimizer */

static void v_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                    const struct lc_adamw_scalars *s)
{
    const vf decay = vf_set1(s->decay);
    const vf w1 = vf_set1(s->w1);
    const vf b1 = vf_set1(s->beta1);
    const vf b2 = vf_set1(s->beta2);
    const vf w2 = vf_set1(s->w2);
    const vf neg_step = vf_set1(s->neg_step);
    const vf bc2_sqrt = vf_set1(s->bc2_sqrt);
    const vf eps = vf_set1(s->eps);

    SIMD_FOR(i, nl, n, {
        vf gv = vf_loadn(g + i, nl);
        vf pv = vf_mul(vf_loadn(p + i, nl), decay);
        vf mv = vf_loadn(m + i, nl);
        vf vv = vf_loadn(v + i, nl);
        vf denom;
        if (s->lerp_first) {
            mv = vf_fma(w1, vf_sub(gv, mv), mv);
        } else {
            mv = vf_fnma(vf_sub(gv, mv), b1, gv);
        }
        vv = vf_fma(vf_mul(w2, gv), gv, vf_mul(vv, b2));
        denom = vf_add(vf_div(vf_sqrt(vv), bc2_sqrt), eps);
        pv = vf_fma(neg_step, vf_div(mv, denom), pv);
        vf_storen(p + i, pv, nl);
        vf_storen(m + i, mv, nl);
        vf_storen(v + i, vv, nl);
    });
}

/* ------------------------------------------------------ hybrid attention */

/* max over c < f of (negate ? -z[c] : z[c]) */
static float row_max_signed(const float *z, int f, int negate)
{
    const vf sign = vf_set1(negate ? -1.0f : 1.0f);
    vf acc = vf_set1(-INFINITY);

    SIMD_FOR(c, nl, f, {
        vf x = vf_keepn_or(vf_mul(sign, vf_loadn(z + c, nl)), nl, -INFINITY);
        acc = vf_max(acc, x);
    });
    return vf_hmax(acc);
}

static int count_equal(const float *s, int n, float m)
{
    const vf vm_ = vf_set1(m);
    int count = 0;

    SIMD_FOR(c, nl, n, count += vm_count(vm_and(vf_eq(vf_loadn(s + c, nl), vm_), vm_first(nl))););
    return count;
}

static float v_exp_row(float *e, const float *s, int n, float gamma, float *m_out)
{
    const float m = row_max_signed(s, n, 0);
    const vf vm_ = vf_set1(m);
    const vf vg = vf_set1(gamma);
    vf acc = vf_zero();

    SIMD_FOR(c, nl, n, {
        vf x = vf_loadn(s + c, nl);
        vf y = vf_keepn(vf_mul(vg, vf_exp(vf_sub(x, vm_))), nl);
        vf_storen(e + c, y, nl);
        acc = vf_add(acc, y);
    });
    *m_out = m;
    return vf_hsum(acc);
}

static float v_bwd_row(float *ds, float *p, const float *s, int n, float m, float gamma,
                       float delta, float invz)
{
    const vf vd_ = vf_set1(delta);
    const vf vz = vf_set1(invz);
    const vf vg = vf_set1(gamma);
    vf acc = vf_zero();
    vf vm_, vdm;
    float sum;
    int nties;

    vm_ = vf_set1(m);
    SIMD_FOR(c, nl, n, {
        vf x = vf_loadn(s + c, nl);
        vf e = vf_mul(vg, vf_exp(vf_sub(x, vm_)));
        vf G = vf_mul(vf_sub(vf_loadn(ds + c, nl), vd_), vz);
        vf ge = vf_keepn(vf_mul(G, e), nl);
        vf_storen(ds + c, ge, nl);
        vf_storen(p + c, vf_mul(e, vz), nl);
        acc = vf_add(acc, ge);
    });
    sum = vf_hsum(acc);
    nties = count_equal(s, n, m);
    if (nties == 0) {
        /* m is not this row's max (it came from another computation of
         * the scores): route the max path to the row's own argmax */
        m = row_max_signed(s, n, 0);
        vm_ = vf_set1(m);
        nties = count_equal(s, n, m);
    }
    vdm = vf_set1(-sum / (float)nties);
    SIMD_FOR(c, nl, n, {
        vf d = vf_loadn(ds + c, nl);
        vm eq = vf_eq(vf_loadn(s + c, nl), vm_);
        vf_storen(ds + c, vf_select(eq, d, vf_add(d, vdm)), nl);
    });
    return sum;
}

/* out[c] = exp(sign z[c] - mx); returns the sum */
static float exp_half(float *out, const float *z, int f, int negate, float mx)
{
    const vf sign = vf_set1(negate ? -1.0f : 1.0f);
    const vf vmx = vf_set1(mx);
    vf acc = vf_zero();

    SIMD_FOR(c, nl, f, {
        vf x = vf_mul(sign, vf_loadn(z + c, nl));
        vf y = vf_keepn(vf_exp(vf_sub(x, vmx)), nl);
        vf_storen(out + c, y, nl);
        acc = vf_add(acc, y);
    });
    return vf_hsum(acc);
}

/* out[c] = out[c] / sum, then clamped below at eps */
static void normalize_clamp(float *out, int f, float sum, float eps)
{
    const vf vs = vf_set1(sum);
    const vf ve = vf_set1(eps);

    SIMD_FOR(c, nl, f, vf_storen(out + c, vf_max(ve, vf_div(vf_loadn(out + c, nl), vs)), nl););
}

static void v_fmap_row(float *phi, const float *z, int f, float eps)
{
    const float sp = exp_half(phi, z, f, 0, row_max_signed(z, f, 0));
    const float sn = exp_half(phi + f, z, f, 1, row_max_signed(z, f, 1));

    normalize_clamp(phi, f, sp, eps);
    normalize_clamp(phi + f, f, sn, eps);
}

static void v_fmap_bwd_row(float *dz, const float *z, const float *dphi, int f, float eps,
                           float *tmp)
{
    const vf ve = vf_set1(eps);
    float *p = tmp, *pn = tmp + f;
    const float sp = exp_half(p, z, f, 0, row_max_signed(z, f, 0));
    const float sn = exp_half(pn, z, f, 1, row_max_signed(z, f, 1));
    const vf vsp = vf_set1(sp), vsn = vf_set1(sn);
    vf accp = vf_zero(), accn = vf_zero();
    vf ip, in;

    SIMD_FOR(c, nl, f, {
        vf a = vf_div(vf_loadn(p + c, nl), vsp);
        vf b = vf_div(vf_loadn(pn + c, nl), vsn);
        /* the clamp's gradient mask: pre-clamp value >= eps (the partial
         * vector's extra lanes load dphi as 0) */
        vf ga = vf_maskz(vf_ge(a, ve), vf_loadn(dphi + c, nl));
        vf gb = vf_maskz(vf_ge(b, ve), vf_loadn(dphi + f + c, nl));
        vf_storen(p + c, a, nl);
        vf_storen(pn + c, b, nl);
        accp = vf_fma(ga, a, accp);
        accn = vf_fma(gb, b, accn);
    });
    ip = vf_set1(vf_hsum(accp));
    in = vf_set1(vf_hsum(accn));
    SIMD_FOR(c, nl, f, {
        vf a = vf_loadn(p + c, nl);
        vf b = vf_loadn(pn + c, nl);
        vf ga = vf_maskz(vf_ge(a, ve), vf_loadn(dphi + c, nl));
        vf gb = vf_maskz(vf_ge(b, ve), vf_loadn(dphi + f + c, nl));
        vf d = vf_sub(vf_mul(a, vf_sub(ga, ip)), vf_mul(b, vf_sub(gb, in)));
        vf_storen(dz + c, d, nl);
    });
}

/* -------------------------------------------------------------- decoding */

/* Rows of at most 4 VL elements (x in registers): the lane-wise partial
 * sums of x . w, one chain over the nc vectors of the row, the last one
 * nl lanes long; always inlined with constants where the caller has them. */
LC_SIMD_INLINE vf short_row(const vf *xv, const void *w, int nc, int nl, enum lc_dtype type)
{
    vf a = vf_mul(xv[0], load_w(w, 0, nc == 1 ? nl : VL, type));

#pragma GCC unroll 4
    for (int c = 1; c < 4; c++) {
        if (c < nc) {
            a = vf_fma(xv[c], load_w(w, (int64_t)c * VL, c == nc - 1 ? nl : VL, type), a);
        }
    }
    return a;
}

/* VL rows (keys) of w, row r at w + r ld, against x: each row's lane-wise
 * partial sums (short_row when K <= 4 VL, else dot_vec), then their lane
 * sums together (vf_hsum_lanes).  Rows past nr count as 0.  A row's sum
 * runs in the same order wherever it sits. */
LC_SIMD_INLINE vf group_dots(const float *x, const vf *xv, const char *w, size_t ld, int K,
                             int nr, enum lc_dtype type)
{
    vf acc[VL];

    if (K <= 4 * VL) {
        const int nc = (K + VL - 1) / VL, nl = K - (nc - 1) * VL;
        if (nr == VL) {
            /* whole groups: one straight-line copy per vector count */
            switch (nc) {
#define SHORT_GROUP(NC)                                                                           \
    case NC:                                                                                      \
        _Pragma("GCC unroll 16") for (int r = 0; r < VL; r++)                                     \
        {                                                                                         \
            acc[r] = short_row(xv, w + (size_t)r * ld, NC, nl, type);                             \
        }                                                                                         \
        break;
                SHORT_GROUP(1)
                SHORT_GROUP(2)
                SHORT_GROUP(3)
            default: /* 4: K <= 4 VL */
                SHORT_GROUP(4)
#undef SHORT_GROUP
            }
        } else {
            for (int r = 0; r < VL; r++) {
                acc[r] = r < nr ? short_row(xv, w + (size_t)r * ld, nc, nl, type) : vf_zero();
            }
        }
    } else {
        for (int r = 0; r < VL; r++) {
            acc[r] = r < nr ? dot_vec(x, w + (size_t)r * ld, K, type) : vf_zero();
        }
    }
    return vf_hsum_lanes(acc);
}

/* x's first 4 VL elements in registers (zeros past K) */
LC_SIMD_INLINE void load_short(vf *xv, const float *x, int K)
{
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const int left = K - c * VL;
        xv[c] = left > 0 ? vf_loadn(x + c * VL, left) : vf_zero();
    }
}

/* Per head, VL keys at a time (group_dots). */
static void v_scores(float *s, const float *q, int H, int rep, const float *k, int ldk, int n,
                     int D, float scale)
{
    const vf sc = vf_set1(scale);
    const size_t ld = (size_t)ldk * sizeof(float);
    vf qv[4];

#ifdef LC_SIMD_SHORT_ROWS
    if (D <= VL / 2) {
        LC_SIMD_SHORT_ROWS.scores(s, q, H, rep, k, ldk, n, D, scale);
        return;
    }
#endif
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * (size_t)D;
        const float *kh = k + (size_t)(h / rep) * (size_t)D;
        float *sh = s + (size_t)h * (size_t)n;
        load_short(qv, qh, D);
        for (int j = 0; j < n; j += VL) {
            const int nk = n - j < VL ? n - j : VL;
            const vf d = group_dots(qh, qv, (const char *)(kh + (size_t)j * (size_t)ldk), ld, D,
                                    nk, LC_DTYPE_F32);
            vf_storen(sh + j, vf_mul(sc, d), nk);
        }
    }
}

/* y[m] = x . w[m] (+ beta y[m]) for the M rows of w, VL rows at a time,
 * their lane sums together (vf_hsum_lanes); always inlined with a
 * constant type.  Rows of at most 4 VL are group_dots' short rows; longer
 * ones are streamed in GEMV_PARTS parts of the M rows side by side (part
 * s: rows s P .. s P + P - 1, P a multiple of VL, the last parts shorter
 * or empty), each row with GEMV_ACC accumulators (dot_vecs).  A row keeps
 * its lane in its group of VL, so its sum does not depend on M. */
LC_SIMD_INLINE void gemv_typed(float *y, const float *x, const void *w, int K, int M, float beta,
                               enum lc_dtype type, int prefetch)
{
    const size_t ld = (size_t)K * (type == LC_DTYPE_F32 ? sizeof(float) : sizeof(uint16_t));
    const int P = ((M + VL - 1) / VL + GEMV_PARTS - 1) / GEMV_PARTS * VL;
    vf xv[4];

    if (K <= 4 * VL) {
        load_short(xv, x, K);
        for (int m = 0; m < M; m += VL) {
            const int nr = M - m < VL ? M - m : VL;
            vf sums = group_dots(x, xv, (const char *)w + (size_t)m * ld, ld, K, nr, type);
            if (beta != 0.0f) {
                sums = vf_fma(vf_set1(beta), vf_loadn(y + m, nr), sums);
            }
            vf_storen(y + m, sums, nr);
        }
        return;
    }
    for (int g = 0; g < P; g += VL) {
        vf acc[GEMV_PARTS][VL];

        for (int r = 0; r < VL; r++) {
            /* the parts that have a row g + r */
            const int m = g + r;
            const int live = m >= M ? 0 : (M - m + P - 1) / P;
            const char *wr = (const char *)w + (size_t)m * ld;
            vf out[GEMV_PARTS];

            for (int s = 0; s < GEMV_PARTS; s++) {
                out[s] = vf_zero(); /* the parts past the last live one */
            }
            switch (live) {
            case 0:
                break;
#define GEMV_LIVE(S)                                                                              \
    case S:                                                                                       \
        dot_vecs(out, x, wr, (size_t)P * ld, K, type, S, GEMV_ACC, prefetch);                     \
        break;
                GEMV_LIVE(1)
                GEMV_LIVE(2)
                GEMV_LIVE(3)
                GEMV_LIVE(4)
                GEMV_LIVE(5)
                GEMV_LIVE(6)
                GEMV_LIVE(7)
            default:
                GEMV_LIVE(8)
#undef GEMV_LIVE
            }
            for (int s = 0; s < GEMV_PARTS; s++) {
                acc[s][r] = out[s];
            }
        }
        for (int s = 0; s < GEMV_PARTS && s * P + g < M; s++) {
            const int m0 = s * P + g, nr = M - m0 < VL ? M - m0 : VL;
            vf sums = vf_hsum_lanes(acc[s]);
            if (beta != 0.0f) {
                sums = vf_fma(vf_set1(beta), vf_loadn(y + m0, nr), sums);
            }
            vf_storen(y + m0, sums, nr);
        }
    }
}

static void v_gemv(float *y, const float *x, const void *w, enum lc_dtype wtype, int K, int M,
                   float beta, int prefetch)
{
#ifdef LC_SIMD_STREAM_GEMV
    if (K > 4 * VL) {
        LC_SIMD_STREAM_GEMV.gemv(y, x, w, wtype, K, M, beta, prefetch);
        return;
    }
#endif
    switch (wtype) {
    case LC_DTYPE_F16:
        gemv_typed(y, x, w, K, M, beta, LC_DTYPE_F16, prefetch);
        break;
    case LC_DTYPE_BF16:
        gemv_typed(y, x, w, K, M, beta, LC_DTYPE_BF16, prefetch);
        break;
    default:
        gemv_typed(y, x, w, K, M, beta, LC_DTYPE_F32, prefetch);
        break;
    }
}

/* y += sum of p_j v_j over the nj keys for one head.  A row
 * of one vector: four partial sums (keys j mod 4) added to y as (y + s0 +
 * s1) + (s2 + s3) ... in a fixed tree; wider rows: up to four vectors of
 * columns at a time, keys in order. */
LC_SIMD_INLINE void wsum_head(float *y, const float *p, const float *v, size_t ldv, int nj,
                              int D)
{
    if (D <= VL) {
        vf a0 = vf_loadn(y, D), a1 = vf_zero(), a2 = vf_zero(), a3 = vf_zero();
        int j = 0;
        for (; j + 4 <= nj; j += 4) {
            const float *v0 = v + (size_t)j * ldv;
            a0 = vf_fma(vf_set1(p[j]), vf_loadn(v0, D), a0);
            a1 = vf_fma(vf_set1(p[j + 1]), vf_loadn(v0 + ldv, D), a1);
            a2 = vf_fma(vf_set1(p[j + 2]), vf_loadn(v0 + 2 * ldv, D), a2);
            a3 = vf_fma(vf_set1(p[j + 3]), vf_loadn(v0 + 3 * ldv, D), a3);
        }
        for (; j < nj; j++) {
            a0 = vf_fma(vf_set1(p[j]), vf_loadn(v + (size_t)j * ldv, D), a0);
        }
        vf_storen(y, vf_add(vf_add(a0, a1), vf_add(a2, a3)), D);
        return;
    }
    for (int d = 0; d < D; d += 4 * VL) {
        vf acc[4];
        int nls[4];
        int nv = (D - d + VL - 1) / VL;
        nv = nv > 4 ? 4 : nv;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const int left = D - d - VL * c;
            nls[c] = left < VL ? left : VL;
            acc[c] = c < nv ? vf_loadn(y + d + VL * c, nls[c]) : vf_zero();
        }
        for (int j = 0; j < nj; j++) {
            const float *vj = v + (size_t)j * ldv + d;
            const vf pj = vf_set1(p[j]);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                if (c < nv) {
                    acc[c] = vf_fma(pj, vf_loadn(vj + VL * c, nls[c]), acc[c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            if (c < nv) {
                vf_storen(y + d + VL * c, acc[c], nls[c]);
            }
        }
    }
}

static void v_wsum(float *y, const float *p, int H, int rep, const float *v, int ldv, int n, int D)
{
#ifdef LC_SIMD_SHORT_ROWS
    if (D <= VL / 2) {
        LC_SIMD_SHORT_ROWS.wsum(y, p, H, rep, v, ldv, n, D);
        return;
    }
#endif
    for (int h = 0; h < H; h++) {
        wsum_head(y + (size_t)h * (size_t)D, p + (size_t)h * (size_t)n,
                  v + (size_t)(h / rep) * (size_t)D, (size_t)ldv, n, D);
    }
}

/* ------------------------------------------------------- small GEMMs */

/* A tile of GEMM_MR rows of C by one panel of GEMM_NP = 2 VL columns
 * lives in registers (16 accumulators on AVX-512 and NEON, 12 of the 16
 * AVX2 registers), with the panel's two vectors of row k and one
 * broadcast element of A per row. */
#define GEMM_NP (2 * VL)
#if VL == 8
#define GEMM_MR 6
#else
#define GEMM_MR 8
#endif

static void v_gemm_pack(float *bp, const float *b, int K, int N, ptrdiff_t bks, ptrdiff_t bns)
{
    for (int n0 = 0; n0 < N; n0 += GEMM_NP) {
        const int nn = N - n0 < GEMM_NP ? N - n0 : GEMM_NP;
        float *p = bp + (size_t)n0 * (size_t)K;

        if (bns == 1) {
            for (int k = 0; k < K; k++) {
                const float *src = b + k * bks + n0;
                vf_store(p + (size_t)k * GEMM_NP, vf_loadn(src, nn));
                vf_store(p + (size_t)k * GEMM_NP + VL, nn > VL ? vf_loadn(src + VL, nn - VL)
                                                               : vf_zero());
            }
        } else if (bks == 1) {
            /* a transposed B whose columns are rows in memory (keys as
             * columns): VL x VL blocks, each column's VL values of k read
             * with one load and turned into rows of the panel */
            for (int h = 0; h < 2; h++) {
                const int c0 = h * VL, nc = nn - c0;
                for (int k0 = 0; k0 < K; k0 += VL) {
                    const int nk = K - k0 < VL ? K - k0 : VL;
                    vf r[VL];
#pragma GCC unroll 16
                    for (int i = 0; i < VL; i++) {
                        r[i] = i < nc ? vf_loadn(b + (ptrdiff_t)(n0 + c0 + i) * bns + k0, nk)
                                      : vf_zero();
                    }
                    vf_transpose(r);
                    for (int j = 0; j < nk; j++) {
                        vf_store(p + (size_t)(k0 + j) * GEMM_NP + c0, r[j]);
                    }
                }
            }
        } else {
            /* a transposed B (rows of B are columns in memory): row by
             * row of the panel, from the 2 VL columns' cache lines */
            const float *src = b + (ptrdiff_t)n0 * bns;
            for (int k = 0; k < K; k++) {
                float *pk = p + (size_t)k * GEMM_NP;
                for (int n = 0; n < nn; n++) {
                    pk[n] = src[n * bns + k * bks];
                }
                for (int n = nn; n < GEMM_NP; n++) {
                    pk[n] = 0.0f;
                }
            }
        }
    }
}

/* lines of A to prefetch while a tile runs: `lines` cache lines from
 * row, row_lines of them per row, rows ld floats apart */
struct gemm_pf {
    const float *row;
    ptrdiff_t ld;
    int lines, row_lines;
};

/* C rows [0, mr) of one panel (nn of its columns are C's): mr is a
 * constant where this is inlined, so the accumulators stay in registers.
 * A's addressing is one of three forms, each a plain pointer walk: rows
 * adjacent (ars 1, a transposed A), columns adjacent (aks 1), or any. */
LC_SIMD_INLINE void gemm_tile(const int mr, int K, float alpha, const float *a, ptrdiff_t ars,
                              ptrdiff_t aks, const float *bp, float beta, float *c, int ldc,
                              int nn, const struct gemm_pf *pf)
{
    /* the next tile's rows, a cache line per step of k: spread out, the
     * prefetches do not wait for free fill buffers all at once.  The
     * steps that prefetch and those after them are separate loops, with
     * no test for it in the steps: with AVX2's 12 FMAs per step that test
     * and its bookkeeping made the steps about a fifth slower on AMD's
     * Zen 4 (products on data in cache). */
    const float *pfr = pf != NULL ? pf->row : NULL;
    const int pfl = pf != NULL ? pf->lines : 0;
    vf c0[GEMM_MR], c1[GEMM_MR];

    /* C's rows are a large stride apart (a head of a token-major tensor):
     * fetched for writing now, they are in cache when the tile ends */
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        __builtin_prefetch(c + (size_t)r * (size_t)ldc, 1);
        __builtin_prefetch(c + (size_t)r * (size_t)ldc + 2 * VL - 1, 1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < GEMM_MR; r++) {
        c0[r] = vf_zero();
        c1[r] = vf_zero();
    }
#define GEMM_STEP(AK, OFF)                                                                        \
    do {                                                                                          \
        const vf b0 = vf_load(bp + (size_t)k * GEMM_NP);                                          \
        const vf b1 = vf_load(bp + (size_t)k * GEMM_NP + VL);                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++)                                      \
        {                                                                                         \
            const vf ar = vf_set1((AK)[OFF]);                                                     \
            c0[r] = vf_fma(ar, b0, c0[r]);                                                        \
            c1[r] = vf_fma(ar, b1, c1[r]);                                                        \
        }                                                                                         \
    } while (0)
    if (ars == 1) {
        /* a transposed A: the next tile's line of each row (row_lines 1) */
        int k = 0;
        for (; k < pfl && k < K; k++) {
            __builtin_prefetch(pfr + (size_t)k * (size_t)pf->ld);
            GEMM_STEP(a + k * aks, r);
        }
        for (; k < K; k++) {
            GEMM_STEP(a + k * aks, r);
        }
    } else if (aks == 1) {
        /* a row-major A: the next tile's rows, row_lines lines each */
        int k = 0, pfc = 0;
        for (; k < pfl && k < K; k++) {
            __builtin_prefetch(pfr + 16 * pfc);
            if (++pfc == pf->row_lines) {
                pfc = 0;
                pfr += pf->ld;
            }
            GEMM_STEP(a + k, r * ars);
        }
        for (; k < K; k++) {
            GEMM_STEP(a + k, r * ars);
        }
    } else {
        for (int k = 0; k < K; k++) {
            GEMM_STEP(a + k * aks, r * ars);
        }
    }
#undef GEMM_STEP
    {
        const vf al = vf_set1(alpha), be = vf_set1(beta);
        const int n0 = nn < VL ? nn : VL, n1 = nn - n0;
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            float *cr = c + (size_t)r * (size_t)ldc;
            vf v0 = vf_mul(al, c0[r]), v1 = vf_mul(al, c1[r]);
            if (beta != 0.0f) {
                v0 = vf_fma(be, vf_loadn(cr, n0), v0);
                v1 = n1 > 0 ? vf_fma(be, vf_loadn(cr + VL, n1), v1) : v1;
            }
            vf_storen(cr, v0, n0);
            if (n1 > 0) {
                vf_storen(cr + VL, v1, n1);
            }
        }
    }
}

/* rows [0, mr) of C against every panel of B */
LC_SIMD_INLINE void gemm_rows(const int mr, int N, int K, float alpha, const float *a,
                              ptrdiff_t ars, ptrdiff_t aks, const float *bp, ptrdiff_t bps,
                              float beta, float *c, int ldc, ptrdiff_t cps,
                              const struct gemm_pf *pf)
{
    for (int n0 = 0, p = 0; n0 < N; n0 += GEMM_NP, p++) {
        const int nn = N - n0 < GEMM_NP ? N - n0 : GEMM_NP;
        gemm_tile(mr, K, alpha, a, ars, aks, bp + p * bps, beta, c + p * cps, ldc, nn,
                  p == 0 ? pf : NULL);
    }
}

/* the longest K whose rows of A are copied for a tile (on the stack) */
#define GEMM_KMAX 512
_Static_assert(16 * GEMM_MR >= VL, "a tile's copy has room for a whole vector past step K");

static void v_gemm(int M, int N, int K, float alpha, const float *a, ptrdiff_t ars, ptrdiff_t aks,
                   const float *bp, ptrdiff_t bps, float beta, float *c, int ldc, ptrdiff_t cps)
{
    /* A tile of A's rows, copied: rows of the callers' large strides (a
     * head of a token-major tensor) all fall into one L1 set, so read in
     * place they would come from L2 for every panel; the copy stays in L1
     * while the panels of B pass over it (from L2). */
    float at[GEMM_MR * (GEMM_KMAX + 16)] __attribute__((aligned(64)));
    const int copy = K <= GEMM_KMAX;

    for (int m0 = 0; m0 < M; m0 += GEMM_MR) {
        const int mr = M - m0 < GEMM_MR ? M - m0 : GEMM_MR;
        const float *am = a + m0 * ars;
        ptrdiff_t tr = ars, tk = aks;
        struct gemm_pf pfs;
        const struct gemm_pf *pf = NULL;

        if (copy && ars == 1) {
            /* the cache line of each of the K rows that a later tile reads
             * next (tiles share a line when rows are short) */
            int ahead = GEMM_MR;
            if (((uintptr_t)(am + ahead) >> 6) == ((uintptr_t)am >> 6)) {
                ahead += GEMM_MR;
            }
            if (m0 + ahead < M) {
                pfs.row = am + ahead;
                pfs.ld = aks;
                pfs.row_lines = 1;
                pfs.lines = K;
                pf = &pfs;
            }
            /* k-major: the tile's elements of step k side by side.  The
             * stores are whole vectors (masked stores are slow on AMD's Zen
             * cores, and this one ran for every step): lanes past the rows
             * land in the next step's slot, which is written after them,
             * or in the buffer's 16 spare steps. */
            for (int k = 0; k < K; k++) {
                for (int r0 = 0; r0 < mr; r0 += VL) {
                    const int nl = mr - r0 < VL ? mr - r0 : VL;
                    vf_store(at + (size_t)k * GEMM_MR + r0, vf_loadn(am + k * aks + r0, nl));
                }
            }
            am = at;
            tr = 1;
            tk = GEMM_MR;
        } else if (copy) {
            /* row-major, rows a cache line longer than K apart */
            const int kp = (K + 15) / 16 * 16 + 16;
            /* the next tile's rows, each in a page of its own: the hardware
             * prefetcher does not find them */
            if (aks == 1 && m0 + GEMM_MR < M) {
                const int nr = M - m0 - GEMM_MR < GEMM_MR ? M - m0 - GEMM_MR : GEMM_MR;
                pfs.row = am + GEMM_MR * ars;
                pfs.ld = ars;
                pfs.row_lines = (K + 15) / 16;
                pfs.lines = nr * pfs.row_lines;
                pf = &pfs;
            }
            for (int r = 0; r < mr; r++) {
                float *dst = at + (size_t)r * kp;
                if (aks == 1) {
                    SIMD_FOR(k, nl, K, vf_storen(dst + k, vf_loadn(am + r * ars + k, nl), nl););
                } else {
                    for (int k = 0; k < K; k++) {
                        dst[k] = am[r * ars + k * aks];
                    }
                }
            }
            am = at;
            tr = kp;
            tk = 1;
        }
        switch (mr) {
#define GEMM_ROWS(MR)                                                                             \
    case MR:                                                                                      \
        gemm_rows(MR, N, K, alpha, am, tr, tk, bp, bps, beta, c + (size_t)m0 * (size_t)ldc, ldc,  \
                  cps, pf);                                                                       \
        break;
            GEMM_ROWS(1)
            GEMM_ROWS(2)
            GEMM_ROWS(3)
            GEMM_ROWS(4)
            GEMM_ROWS(5)
            GEMM_ROWS(6)
#if GEMM_MR > 6
            GEMM_ROWS(7)
            GEMM_ROWS(8)
#endif
#undef GEMM_ROWS
        default:
            break;
        }
    }
}

const struct lc_cpu_kernels LC_SIMD_TABLE = {
    .name = LC_SIMD_LABEL,
    .exp = v_exp,
    .f16_to_f32 = v_f16_to_f32,
    .bf16_to_f32 = v_bf16_to_f32,
    .dot = v_dot,
    .gemv = v_gemv,
    .add = v_add,
    .dropout = LC_SIMD_DROPOUT,
    .rmsnorm_row = v_rmsnorm_row,
    .rmsnorm_dx_row = v_rmsnorm_dx_row,
    .rmsnorm_dw_cols = v_rmsnorm_dw_cols,
    .rope_row = v_rope_row,
    .swiglu_fwd = v_swiglu_fwd,
    .swiglu_bwd = v_swiglu_bwd,
    .softmax_row = v_softmax_row,
    .xent_row = v_xent_row,
    .mse_row = v_mse_row,
    .adamw = v_adamw,
    .exp_row = v_exp_row,
    .bwd_row = v_bwd_row,
    .div_row = v_div_row,
    .axpy_scale_row = v_axpy_scale_row,
    .scale_acc_row = v_scale_acc_row,
    .fmap_row = v_fmap_row,
    .fmap_bwd_row = v_fmap_bwd_row,
    .scores = v_scores,
    .wsum = v_wsum,
    .gemm_np = GEMM_NP,
    .gemm_pack = v_gemm_pack,
    .gemm = v_gemm,
};
