/*
 * The cpu backend's dense kernels against the reference kernels, with the
 * generic C kernels and (where the CPU has it) the AVX-512 kernels, on
 * awkward shapes; and every cpu kernel run with 1, 2 and 3 threads, which
 * must give the same bits.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"
#include "core/half.h"
#include "core/ref/ref.h"
#include "tests/lc_test.h"

static void expect_close(const char *what, enum lc_cpu_isa isa, const float *got,
                         const float *want, size_t n, double atol, double rtol)
{
    char name[160];
    snprintf(name, sizeof(name), "%s [%s]", what, lc_test_isa_name(isa));
    if (lc_test_check_close(name, got, want, n, atol, rtol) != 0) {
        fail_msg("%s: cpu differs from ref", name);
    }
}

/* the M x N part of a matrix with row stride ld, packed */
static float *packed(const float *C, int M, int N, int ld)
{
    float *p = lc_test_new_f32((size_t)M * N);
    for (int i = 0; i < M; i++) {
        memcpy(p + (size_t)i * N, C + (size_t)i * ld, (size_t)N * sizeof(float));
    }
    return p;
}

/* ------------------------------------------------------------------ gemm */

struct gemm_shape {
    int ta, tb, M, N, K;
    float alpha, beta;
    int pad; /* extra elements per row of A, B and C */
};

static void test_gemm(void **state)
{
    static const struct gemm_shape shapes[] = {
        {0, 0, 1, 1, 1, 1.0f, 0.0f, 0},      {0, 1, 17, 33, 5, 1.0f, 1.0f, 3},
        {1, 0, 31, 7, 129, 0.5f, 0.0f, 1},   {1, 1, 64, 48, 300, 1.0f, -0.5f, 0},
        {0, 0, 70, 1, 1000, 2.0f, 1.0f, 2},  {1, 0, 64, 8, 8192, 1.0f, 1.0f, 0},
        {0, 1, 600, 130, 40, 1.0f, 0.0f, 5}, {0, 0, 5, 6, 0, 1.0f, 0.5f, 0},
        {0, 0, 5, 6, 0, 1.0f, 0.0f, 0},
    };
    struct lc_test_cpu_ref *b = *state;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct gemm_shape *g = &shapes[s];
        int lda = (g->ta ? g->M : g->K) + g->pad;
        int ldb = (g->tb ? g->K : g->N) + g->pad;
        int ldc = g->N + g->pad;
        size_t na = (size_t)(g->ta ? g->K : g->M) * lda + 1;
        size_t nb = (size_t)(g->tb ? g->N : g->K) * ldb + 1;
        size_t nc = (size_t)g->M * ldc;
        float *A = lc_test_new_uniform(na, 100 + s, -1, 1);
        float *B = lc_test_new_uniform(nb, 200 + s, -1, 1);
        float *C0 = lc_test_new_uniform(nc, 300 + s, -1, 1);
        float *want = lc_test_dup_f32(C0, nc);
        char what[96];

        if (g->beta == 0.0f) {
            lc_test_fill_nan(C0, nc); /* beta 0 must ignore C */
            lc_test_fill_nan(want, nc);
        }
        lc_ref_gemm(b->ref, g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta,
                    want, ldc);
        for (int i = 0; i < b->nisas; i++) {
            float *got = lc_test_dup_f32(C0, nc);
            float *got_p = NULL;
            float *want_p = NULL;
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->gemm(b->cpu, g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, B, ldb,
                              g->beta, got, ldc);
            snprintf(what, sizeof(what), "gemm ta%d tb%d %dx%dx%d", g->ta, g->tb, g->M, g->N,
                     g->K);
            /* the padding is left alone */
            for (int r = 0; r < g->M; r++) {
                for (int j = g->N; j < ldc; j++) {
                    size_t o = (size_t)r * ldc + j;
                    assert_memory_equal(&got[o], &C0[o], sizeof(float));
                }
            }
            got_p = packed(got, g->M, g->N, ldc);
            want_p = packed(want, g->M, g->N, ldc);
            expect_close(what, b->isas[i], got_p, want_p, (size_t)g->M * g->N,
                         1e-5 * sqrt(g->K + 1.0), 1e-5);
            free(got);
            free(got_p);
            free(want_p);
        }
        free(A);
        free(B);
        free(C0);
        free(want);
    }
}

/* ---------------------------------------------------------------- linear */

struct linear_shape {
    int N, K, M;
};

static void check_linear(struct lc_test_cpu_ref *b, const struct linear_shape *sh,
                         enum lc_dtype type, float beta, uint64_t seed)
{
    int N = sh->N;
    int K = sh->K;
    int M = sh->M;
    float *wf = lc_test_new_uniform((size_t)M * K, seed, -1, 1);
    void *w = lc_test_to_dtype(wf, (size_t)M * K, type);
    float *x = lc_test_new_uniform((size_t)N * K, seed + 1, -1, 1);
    float *dy = lc_test_new_uniform((size_t)N * M, seed + 2, -1, 1);
    float *y0 = lc_test_new_uniform((size_t)N * M, seed + 3, -1, 1);
    float *dx0 = lc_test_new_uniform((size_t)N * K, seed + 4, -1, 1);
    float *y_ref = NULL;
    float *dx_ref = NULL;
    char what[128];

    if (beta == 0.0f) {
        lc_test_fill_nan(y0, (size_t)N * M);
        lc_test_fill_nan(dx0, (size_t)N * K);
    }
    y_ref = lc_test_dup_f32(y0, (size_t)N * M);
    dx_ref = lc_test_dup_f32(dx0, (size_t)N * K);
    lc_ref_linear_fwd(b->ref, y_ref, x, w, type, N, K, M, beta);
    lc_ref_linear_bwd(b->ref, dx_ref, dy, w, type, N, K, M, beta);
    for (int i = 0; i < b->nisas; i++) {
        float *y = lc_test_dup_f32(y0, (size_t)N * M);
        float *dx = lc_test_dup_f32(dx0, (size_t)N * K);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->linear_fwd(b->cpu, y, x, w, type, N, K, M, beta);
        b->cpu->ops->linear_bwd(b->cpu, dx, dy, w, type, N, K, M, beta);
        snprintf(what, sizeof(what), "linear_fwd %s N%d K%d M%d beta %g", lc_dtype_name(type), N,
                 K, M, beta);
        expect_close(what, b->isas[i], y, y_ref, (size_t)N * M, 1e-5 * sqrt(K + 1.0), 1e-5);
        snprintf(what, sizeof(what), "linear_bwd %s N%d K%d M%d beta %g", lc_dtype_name(type), N,
                 K, M, beta);
        expect_close(what, b->isas[i], dx, dx_ref, (size_t)N * K, 1e-5 * sqrt(M + 1.0), 1e-5);
        free(y);
        free(dx);
    }
    free(wf);
    free(w);
    free(x);
    free(dy);
    free(y0);
    free(dx0);
    free(y_ref);
    free(dx_ref);
}

static void test_linear(void **state)
{
    /* N <= 4 takes the dot-product path, larger N the SGEMM path */
    static const struct linear_shape shapes[] = {
        {1, 1, 1}, {1, 7, 17}, {3, 129, 5}, {4, 64, 300}, {5, 64, 33}, {37, 129, 300}, {2, 100, 1},
    };
    static const enum lc_dtype types[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
    struct lc_test_cpu_ref *b = *state;
    uint64_t seed = 1000;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (size_t t = 0; t < 3; t++) {
            check_linear(b, &shapes[s], types[t], 0.0f, seed);
            check_linear(b, &shapes[s], types[t], 1.0f, seed + 10);
            seed += 20;
        }
    }
}

/* Shapes whose fp32 copy of the weights exceeds one 16 MiB tile: several
 * row tiles in the forward, column tiles (M <= 2K) and row tiles (M > 2K,
 * the sum over M split across tiles) in the backward. */
static void test_linear_tiles(void **state)
{
    static const struct linear_shape shapes[] = {{5, 64, 70000}, {6, 5000, 1000}};
    struct lc_test_cpu_ref *b = *state;

    check_linear(*state, &shapes[0], LC_DTYPE_BF16, 1.0f, 77);
    check_linear(b, &shapes[1], LC_DTYPE_F16, 0.0f, 78);
}

/* ----------------------------------------------------------- elementwise */

static void test_add_dropout(void **state)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    struct lc_test_cpu_ref *b = *state;
    const int64_t n = 100003; /* several chunks and a ragged end */
    float *x = lc_test_new_uniform(n, 1, -2, 2);
    float *y0 = lc_test_new_uniform(n, 2, -2, 2);
    float *want = lc_test_dup_f32(y0, n);

    lc_ref_add(b->ref, want, x, n);
    for (int i = 0; i < b->nisas; i++) {
        float *got = lc_test_dup_f32(y0, n);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->add(b->cpu, got, x, n);
        lc_test_expect_same("add", got, want, n);
        free(got);
    }

    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        float p = ps[k];
        int64_t kept = 0;
        lc_ref_dropout(b->ref, want, x, n, p, 42 + k);
        for (int64_t j = 0; j < n; j++) {
            kept += want[j] != 0.0f;
        }
        /* the mask keeps about 1 - p of the elements (4 sigma) */
        assert_true(fabs((double)kept / n - (1 - p)) <= 4 * sqrt(p * (1 - p) / n) + 1e-9);
        for (int i = 0; i < b->nisas; i++) {
            float *got = lc_test_new_f32(n);
            float *inplace = lc_test_dup_f32(x, n);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->dropout(b->cpu, got, x, n, p, 42 + k);
            lc_test_expect_same("dropout", got, want, n);
            b->cpu->ops->dropout(b->cpu, inplace, inplace, n, p, 42 + k);
            lc_test_expect_same("dropout in place", inplace, want, n);
            free(got);
            free(inplace);
        }
    }
    /* another seed, another mask */
    {
        float *other = lc_test_new_f32(n);
        lc_ref_dropout(b->ref, want, x, n, 0.5f, 1);
        lc_ref_dropout(b->ref, other, x, n, 0.5f, 2);
        assert_true(memcmp(want, other, n * sizeof(float)) != 0);
        free(other);
    }
    free(x);
    free(y0);
    free(want);
}

/* ------------------------------------------------------------- embedding */

static void test_embedding(void **state)
{
    static const enum lc_dtype types[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
    struct lc_test_cpu_ref *b = *state;
    enum { V = 50, C = 100, N = 300 };
    float *tf = lc_test_new_uniform((size_t)V * C, 5, -3, 3);
    int32_t ids[N];
    float *dout = lc_test_new_uniform((size_t)N * C, 6, -1, 1);
    float *dt0 = lc_test_new_uniform((size_t)V * C, 7, -1, 1);
    float *dt_ref = lc_test_dup_f32(dt0, (size_t)V * C);

    /* many repeats, a few ids never used */
    for (int n = 0; n < N; n++) {
        ids[n] = (int32_t)((n * 7 + n / 13) % (V - 3));
    }
    for (size_t t = 0; t < 3; t++) {
        void *table = lc_test_to_dtype(tf, (size_t)V * C, types[t]);
        float *want = lc_test_new_f32((size_t)N * C);
        lc_ref_embedding_fwd(b->ref, want, ids, table, types[t], N, C);
        for (int i = 0; i < b->nisas; i++) {
            float *got = lc_test_new_f32((size_t)N * C);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->embedding_fwd(b->cpu, got, ids, table, types[t], N, C);
            lc_test_expect_same("embedding_fwd", got, want, (size_t)N * C);
            free(got);
        }
        free(table);
        free(want);
    }
    /* same additions in the same order: the same bits */
    lc_ref_embedding_bwd(b->ref, dt_ref, dout, ids, N, C, V);
    for (int i = 0; i < b->nisas; i++) {
        float *got = lc_test_dup_f32(dt0, (size_t)V * C);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->embedding_bwd(b->cpu, got, dout, ids, N, C, V);
        lc_test_expect_same("embedding_bwd", got, dt_ref, (size_t)V * C);
        free(got);
    }
    free(tf);
    free(dout);
    free(dt0);
    free(dt_ref);
}

/* --------------------------------------------------------------- RMSNorm */

static void test_rmsnorm(void **state)
{
    static const int shapes[][2] = {{1, 1}, {7, 5}, {3, 16}, {9, 100}, {2, 4096}, {130, 33}};
    struct lc_test_cpu_ref *b = *state;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0];
        int C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *x = lc_test_new_uniform(n, 10 + s, -3, 3);
        float *w = lc_test_new_uniform(C, 20 + s, 0.5f, 1.5f);
        float *g = lc_test_new_uniform(n, 30 + s, -1, 1);
        float *dx0 = lc_test_new_uniform(n, 40 + s, -1, 1);
        float *dw0 = lc_test_new_uniform(C, 50 + s, -1, 1);
        float *out_ref = lc_test_new_f32(n);
        float *rstd_ref = lc_test_new_f32(N);
        float *dx_ref = lc_test_dup_f32(dx0, n);
        float *dw_ref = lc_test_dup_f32(dw0, C);

        lc_ref_rmsnorm_fwd(b->ref, out_ref, rstd_ref, x, w, N, C, 1e-5f);
        lc_ref_rmsnorm_bwd(b->ref, dx_ref, dw_ref, g, x, w, rstd_ref, N, C);
        for (int i = 0; i < b->nisas; i++) {
            float *out = lc_test_new_f32(n);
            float *rstd = lc_test_new_f32(N);
            float *out2 = lc_test_new_f32(n);
            float *dx = lc_test_dup_f32(dx0, n);
            float *dx2 = lc_test_dup_f32(dx0, n);
            float *dw = lc_test_dup_f32(dw0, C);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->rmsnorm_fwd(b->cpu, out, rstd, x, w, N, C, 1e-5f);
            b->cpu->ops->rmsnorm_fwd(b->cpu, out2, NULL, x, w, N, C, 1e-5f);
            b->cpu->ops->rmsnorm_bwd(b->cpu, dx, dw, g, x, w, rstd_ref, N, C);
            b->cpu->ops->rmsnorm_bwd(b->cpu, dx2, NULL, g, x, w, rstd_ref, N, C);
            expect_close("rmsnorm out", b->isas[i], out, out_ref, n, 1e-6, 1e-5);
            lc_test_expect_same("rmsnorm out without rstd", out2, out, n);
            expect_close("rmsnorm rstd", b->isas[i], rstd, rstd_ref, N, 0, 1e-6);
            expect_close("rmsnorm dx", b->isas[i], dx, dx_ref, n, 1e-5, 1e-5);
            lc_test_expect_same("rmsnorm dx without dw", dx2, dx, n);
            expect_close("rmsnorm dw", b->isas[i], dw, dw_ref, C, 1e-5 * sqrt(N), 1e-5);
            free(out);
            free(rstd);
            free(out2);
            free(dx);
            free(dx2);
            free(dw);
        }
        free(x);
        free(w);
        free(g);
        free(dx0);
        free(dw0);
        free(out_ref);
        free(rstd_ref);
        free(dx_ref);
        free(dw_ref);
    }
}

/* ------------------------------------------------------------------ RoPE */

static void test_rope(void **state)
{
    static const int dims[] = {2, 8, 34, 64, 128};
    struct lc_test_cpu_ref *b = *state;
    enum { N = 6, NH = 3, P = 40 };
    static const int32_t pos[N] = {0, 39, 5, 5, 17, 1};

    for (size_t s = 0; s < sizeof(dims) / sizeof(dims[0]); s++) {
        int D = dims[s];
        size_t n = (size_t)N * NH * D;
        float *cos_tab = lc_test_new_f32((size_t)P * D / 2);
        float *sin_tab = lc_test_new_f32((size_t)P * D / 2);
        float *x = lc_test_new_uniform(n, 60 + s, -2, 2);
        float *fwd_ref = lc_test_dup_f32(x, n);
        float *bwd_ref = lc_test_dup_f32(x, n);
        for (int p = 0; p < P; p++) {
            for (int i = 0; i < D / 2; i++) {
                double a = p * pow(10000.0, -2.0 * i / D);
                cos_tab[p * (D / 2) + i] = (float)cos(a);
                sin_tab[p * (D / 2) + i] = (float)sin(a);
            }
        }
        lc_ref_rope_fwd(b->ref, fwd_ref, pos, cos_tab, sin_tab, N, NH, D);
        lc_ref_rope_bwd(b->ref, bwd_ref, pos, cos_tab, sin_tab, N, NH, D);
        for (int i = 0; i < b->nisas; i++) {
            float *f = lc_test_dup_f32(x, n);
            float *bw = lc_test_dup_f32(x, n);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->rope_fwd(b->cpu, f, pos, cos_tab, sin_tab, N, NH, D);
            b->cpu->ops->rope_bwd(b->cpu, bw, pos, cos_tab, sin_tab, N, NH, D);
            expect_close("rope_fwd", b->isas[i], f, fwd_ref, n, 1e-6, 1e-6);
            expect_close("rope_bwd", b->isas[i], bw, bwd_ref, n, 1e-6, 1e-6);
            free(f);
            free(bw);
        }
        free(cos_tab);
        free(sin_tab);
        free(x);
        free(fwd_ref);
        free(bwd_ref);
    }
}

/* ---------------------------------------------------------------- SwiGLU */

/* float bits in the order of the values: distances in ulps */
static int64_t ordered_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

/* Every ISA's exp within 1 ulp of exp rounded from double, on every 97th
 * float (both signs, overflow to inf, subnormal results, underflow to 0),
 * and NaN for NaN. */
static void test_exp(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    const size_t n = ((size_t)1 << 32) / 97 + 1;
    float *x = lc_test_new_f32(n), *y = lc_test_new_f32(n);

    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(i * 97);
        memcpy(&x[i], &u, sizeof(u));
    }
    for (int i = 0; i < b->nisas; i++) {
        const struct lc_cpu_kernels *kr = lc_cpu_kernels_of_isa(b->isas[i]);
        size_t bad = 0;
        kr->exp(y, x, (int64_t)n);
        for (size_t j = 0; j < n; j++) {
            const float want = (float)exp((double)x[j]);
            int ok;
            if (isnan(x[j])) {
                ok = isnan(y[j]);
            } else {
                int64_t d = ordered_bits(y[j]) - ordered_bits(want);
                ok = !isnan(y[j]) && d >= -1 && d <= 1;
            }
            if (!ok && bad++ < 5) {
                fprintf(stderr, "exp [%s]: exp(%a) = %a, want %a\n", lc_test_isa_name(b->isas[i]),
                        (double)x[j], (double)y[j], (double)want);
            }
        }
        assert_int_equal(bad, 0);
    }
    free(x);
    free(y);
}

static void test_swiglu(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    const int64_t n = 40009;
    float *gate = lc_test_new_uniform(n, 70, -10, 10);
    float *up = lc_test_new_uniform(n, 71, -3, 3);
    float *dout = lc_test_new_uniform(n, 72, -1, 1);
    float *out_ref = lc_test_new_f32(n);
    float *dg_ref = lc_test_new_f32(n);
    float *du_ref = lc_test_new_f32(n);

    /* saturated gates: exp(-g) overflows or vanishes */
    gate[0] = -100.0f;
    gate[1] = 100.0f;
    gate[2] = -88.5f;
    gate[3] = 0.0f;
    lc_ref_swiglu_fwd(b->ref, out_ref, gate, up, n);
    lc_ref_swiglu_bwd(b->ref, dg_ref, du_ref, dout, gate, up, n);
    for (int i = 0; i < b->nisas; i++) {
        float *out = lc_test_new_f32(n);
        float *dg = lc_test_new_f32(n);
        float *du = lc_test_new_f32(n);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->swiglu_fwd(b->cpu, out, gate, up, n);
        b->cpu->ops->swiglu_bwd(b->cpu, dg, du, dout, gate, up, n);
        expect_close("swiglu out", b->isas[i], out, out_ref, n, 1e-6, 1e-5);
        expect_close("swiglu dgate", b->isas[i], dg, dg_ref, n, 1e-6, 1e-5);
        expect_close("swiglu dup", b->isas[i], du, du_ref, n, 1e-6, 1e-5);
        free(out);
        free(dg);
        free(du);
    }
    free(gate);
    free(up);
    free(dout);
    free(out_ref);
    free(dg_ref);
    free(du_ref);
}

/* ---------------------------------------------------------------- losses */

static void test_mse(void **state)
{
    static const int shapes[][2] = {{1, 1}, {13, 17}, {3, 1000}};
    struct lc_test_cpu_ref *b = *state;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int rows = shapes[s][0];
        int cols = shapes[s][1];
        size_t n = (size_t)rows * cols;
        float *p = lc_test_new_uniform(n, 80 + s, -2, 2);
        float *t = lc_test_new_uniform(n, 90 + s, -2, 2);
        float *sse_ref = lc_test_new_f32(rows);
        float *d_ref = lc_test_new_f32(n);
        lc_ref_mse_fwd_bwd(b->ref, sse_ref, d_ref, p, t, rows, cols, 0.01f);
        for (int i = 0; i < b->nisas; i++) {
            float *sse = lc_test_new_f32(rows);
            float *sse2 = lc_test_new_f32(rows);
            float *d = lc_test_new_f32(n);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->mse_fwd_bwd(b->cpu, sse, d, p, t, rows, cols, 0.01f);
            b->cpu->ops->mse_fwd_bwd(b->cpu, sse2, NULL, p, t, rows, cols, 0.01f);
            expect_close("mse sse", b->isas[i], sse, sse_ref, rows, 0, 1e-6);
            lc_test_expect_same("mse sse without dpred", sse2, sse, rows);
            expect_close("mse dpred", b->isas[i], d, d_ref, n, 0, 1e-6);
            free(sse);
            free(sse2);
            free(d);
        }
        free(p);
        free(t);
        free(sse_ref);
        free(d_ref);
    }
}

static void test_xent(void **state)
{
    static const int vocab[] = {1, 5, 517, 32000};
    struct lc_test_cpu_ref *b = *state;
    enum { N = 9 };

    for (size_t s = 0; s < sizeof(vocab) / sizeof(vocab[0]); s++) {
        int V = vocab[s];
        size_t n = (size_t)N * V;
        int32_t targets[N];
        float *l = lc_test_new_uniform(n, 110 + s, -8, 8);
        float *loss_ref = lc_test_new_f32(N);
        float *d_ref = lc_test_new_f32(n);
        for (int r = 0; r < N; r++) {
            targets[r] = r == 3 ? -1 : (int32_t)((r * 7919) % V);
        }
        /* a row far from zero: logsumexp must subtract its max */
        for (int j = 0; j < V; j++) {
            l[5 * (size_t)V + j] += 1000.0f;
        }
        lc_ref_xent_fwd_bwd(b->ref, loss_ref, d_ref, l, targets, N, V, 0.5f);
        for (int i = 0; i < b->nisas; i++) {
            float *loss = lc_test_new_f32(N);
            float *loss2 = lc_test_new_f32(N);
            float *d = lc_test_new_f32(n);
            float *inplace = lc_test_dup_f32(l, n);
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->xent_fwd_bwd(b->cpu, loss, d, l, targets, N, V, 0.5f);
            b->cpu->ops->xent_fwd_bwd(b->cpu, loss2, NULL, l, targets, N, V, 0.5f);
            expect_close("xent loss", b->isas[i], loss, loss_ref, N, 1e-5, 1e-6);
            lc_test_expect_same("xent loss without dlogits", loss2, loss, N);
            expect_close("xent dlogits", b->isas[i], d, d_ref, n, 1e-7, 1e-5);
            b->cpu->ops->xent_fwd_bwd(b->cpu, loss2, inplace, inplace, targets, N, V, 0.5f);
            lc_test_expect_same("xent in place", inplace, d, n);
            free(loss);
            free(loss2);
            free(d);
            free(inplace);
        }
        free(l);
        free(loss_ref);
        free(d_ref);
    }
}

/* ------------------------------------------------------------------ AdamW */

static void test_adamw(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    const int64_t n = 50021;
    float *p0 = lc_test_new_uniform(n, 120, -1, 1);
    float *g = lc_test_new_uniform(n, 121, -0.1f, 0.1f);
    float *m0 = lc_test_new_uniform(n, 122, -0.05f, 0.05f);
    float *v0 = lc_test_new_uniform(n, 123, 0, 0.01f);

    for (int step = 1; step <= 10; step += 9) {
        /* beta1 0.9 takes the first lerp form, beta1 0.3 the second */
        for (int form = 0; form < 2; form++) {
            double beta1 = form == 0 ? 0.9 : 0.3;
            float *p_ref = lc_test_dup_f32(p0, n);
            float *m_ref = lc_test_dup_f32(m0, n);
            float *v_ref = lc_test_dup_f32(v0, n);
            lc_ref_adamw(b->ref, p_ref, g, m_ref, v_ref, n, 1e-3, beta1, 0.999, 1e-8, 0.1, step);
            for (int i = 0; i < b->nisas; i++) {
                float *p = lc_test_dup_f32(p0, n);
                float *m = lc_test_dup_f32(m0, n);
                float *v = lc_test_dup_f32(v0, n);
                lc_test_set_isa(b->cpu, b->isas[i]);
                b->cpu->ops->adamw(b->cpu, p, g, m, v, n, 1e-3, beta1, 0.999, 1e-8, 0.1, step);
                expect_close("adamw p", b->isas[i], p, p_ref, n, 1e-7, 1e-6);
                expect_close("adamw m", b->isas[i], m, m_ref, n, 1e-9, 1e-6);
                expect_close("adamw v", b->isas[i], v, v_ref, n, 1e-12, 1e-6);
                free(p);
                free(m);
                free(v);
            }
            free(p_ref);
            free(m_ref);
            free(v_ref);
        }
    }
    free(p0);
    free(g);
    free(m0);
    free(v0);
}

/* --------------------------------------------------------- determinism */

/* Case `which` of the determinism test: one cpu entry on shapes large
 * enough to be split over threads (several tiles, chunks or rows).  wh is
 * [900, 1000] weights in 16 bits, valid as F16 and as BF16. */
static void run_det(struct lc_backend *be, int which, float *out, const float *a, const float *b,
                    const float *c, const uint16_t *wh, const int32_t *ids, int64_t n)
{
    switch (which) {
    case 0: /* weight-gradient shape: a long reduction, a small output */
        be->ops->gemm(be, 1, 0, 64, 8, 8192, 1.0f, a, 64, b, 8, 1.0f, out, 8);
        break;
    case 1:
        be->ops->gemm(be, 0, 0, 8, 512, 8192, 1.0f, a, 8192, b, 512, 0.0f, out, 512);
        break;
    case 2: /* odd reduction lengths split differently by threaded OpenBLAS */
        be->ops->gemm(be, 0, 1, 300, 300, 3001, 1.0f, a, 3001, b, 3001, 0.0f, out, 300);
        break;
    case 3:
        be->ops->gemm(be, 1, 1, 512, 512, 999, 0.5f, a, 512, b, 999, 1.0f, out, 512);
        break;
    case 4:
        be->ops->linear_fwd(be, out, a, wh, LC_DTYPE_BF16, 64, 1000, 900, 1.0f);
        break;
    case 5:
        be->ops->linear_bwd(be, out, a, wh, LC_DTYPE_F16, 64, 900, 1000, 1.0f);
        break;
    case 6:
        be->ops->linear_fwd(be, out, a, wh, LC_DTYPE_BF16, 3, 1000, 900, 0.0f);
        break;
    case 7:
        be->ops->add(be, out, a, n);
        break;
    case 8:
        be->ops->dropout(be, out, a, n, 0.3f, 9);
        break;
    case 9:
        be->ops->embedding_bwd(be, out, a, ids, 1000, 200, 50);
        break;
    case 10:
        be->ops->rmsnorm_fwd(be, out, out + 200000, a, b, 1000, 200, 1e-6f);
        break;
    case 11:
        be->ops->rmsnorm_bwd(be, out, out + 200000, a, b, c, c + 200000, 1000, 200);
        break;
    case 12:
        be->ops->swiglu_bwd(be, out, out + n, a, b, c, n);
        break;
    case 13:
        be->ops->xent_fwd_bwd(be, out + 200000, out, a, ids, 1000, 200, 1.0f);
        break;
    case 14:
        be->ops->mse_fwd_bwd(be, out + 200000, out, a, b, 1000, 200, 1.0f);
        break;
    case 15:
        be->ops->adamw(be, out, a, out + n, out + 2 * n, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
        break;
    case 16:
        be->ops->embedding_fwd(be, out, ids, a, LC_DTYPE_F32, 1000, 200);
        break;
    case 17:
        be->ops->rope_fwd(be, out, ids, a, b, 1000, 4, 50);
        break;
    default:
        fail_msg("no determinism case %d", which);
    }
}

static void test_thread_independence(void **state)
{
    static const char *const names[] = {
        "gemm 64x8x8192 (ta)", "gemm 8x512x8192", "gemm 300x300x3001 (tb)",
        "gemm 512x512x999 (ta, tb)", "linear_fwd bf16", "linear_bwd f16",
        "linear_fwd bf16 N=3", "add", "dropout", "embedding_bwd", "rmsnorm_fwd",
        "rmsnorm_bwd", "swiglu_bwd", "xent", "mse", "adamw", "embedding_fwd", "rope_fwd",
    };
    struct lc_test_cpu_ref *b = *state;
    const int64_t n = 200000;
    const size_t big = (size_t)1 << 22; /* enough for every operand above */
    float *a = lc_test_new_uniform(big, 130, -1, 1);
    float *bb = lc_test_new_uniform(big, 131, -1, 1);
    float *c = lc_test_new_uniform(big, 132, 0.5f, 1.5f);
    float *out0 = lc_test_new_uniform(big, 133, 0, 1);
    uint16_t *wh = lc_test_to_dtype(bb, 900 * 1000, LC_DTYPE_F16);
    int32_t *ids = calloc(1000, sizeof(int32_t));

    assert_non_null(ids);
    for (int i = 0; i < 1000; i++) {
        ids[i] = (i * 31) % 50;
    }
    for (int i = 0; i < b->nisas; i++) {
        lc_test_set_isa(b->cpu, b->isas[i]);
        for (int which = 0; which < (int)(sizeof(names) / sizeof(names[0])); which++) {
            float *one = lc_test_dup_f32(out0, big);
            lc_set_num_threads(1);
            run_det(b->cpu, which, one, a, bb, c, wh, ids, n);
            /* 2 threads split evenly, 3 unevenly (oversubscribed on small
             * machines, which changes nothing here) */
            for (int nt = 2; nt <= 3; nt++) {
                float *many = lc_test_dup_f32(out0, big);
                char what[128];
                lc_set_num_threads(nt);
                run_det(b->cpu, which, many, a, bb, c, wh, ids, n);
                /* the kernels leave the thread setting as they found it */
                assert_int_equal(omp_get_max_threads(), nt);
                snprintf(what, sizeof(what), "%s [%s], 1 vs %d threads", names[which],
                         lc_test_isa_name(b->isas[i]), nt);
                lc_test_expect_same(what, one, many, big);
                free(many);
            }
            free(one);
        }
    }
    lc_set_num_threads(0);
    free(a);
    free(bb);
    free(c);
    free(out0);
    free(wh);
    free(ids);
}

/* A kernel that cannot get scratch memory records the failure; sync
 * reports it once. */
static void test_sync_reports_failure(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    struct lc_error err = {0};

    assert_int_equal(b->cpu->ops->sync(b->cpu, &err), LC_OK);
    assert_null(lc_cpu_scratch(b->cpu, SIZE_MAX - 8));
    assert_int_equal(b->cpu->ops->sync(b->cpu, &err), LC_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "scratch"));
    assert_int_equal(b->cpu->ops->sync(b->cpu, &err), LC_OK);
    /* the scratch still works afterwards */
    assert_non_null(lc_cpu_scratch(b->cpu, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_tiles),
        cmocka_unit_test(test_add_dropout),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_thread_independence),
        cmocka_unit_test(test_sync_reports_failure),
    };
    return cmocka_run_group_tests(tests, lc_test_cpu_ref_setup, lc_test_cpu_ref_teardown);
}
