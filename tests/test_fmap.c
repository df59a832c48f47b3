/* Hedgehog feature maps: the forward against its definition, the
 * reference backward against finite differences (with and without clamped
 * entries), the cpu kernels against the reference, thread-count
 * independence. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "core/ref/ref.h"
#include "core/ref/ref_hybrid_f64.h"
#include "core/util.h"
#include "tests/lc_test.h"

/* With the rectangular identity as W (the initialization), phi(x) is
 * [softmax(x[:f]), softmax(-x[:f])]; the query heads that share a key
 * head see the same key. */
static void test_fmap_identity(void **state)
{
    const int N = 3, H = 4, Hx = 2, D = 6, f = 4;
    double x[3 * 2 * 6], W[4 * 6 * 4], phi[3 * 4 * 8];
    (void)state;

    for (int i = 0; i < N * Hx * D; i++) {
        x[i] = sin(1.7 * i) * 3.0;
    }
    memset(W, 0, sizeof(W));
    for (int h = 0; h < H; h++) {
        for (int c = 0; c < f; c++) {
            W[(h * D + c) * f + c] = 1.0;
        }
    }
    lc_ref_fmap_fwd_f64(phi, x, W, N, H, Hx, D, f, 1e-12);
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < H; h++) {
            const double *xr = x + (n * Hx + h / 2) * D;
            const double *p = phi + (n * H + h) * 2 * f;
            double sp = 0.0, sn = 0.0, tp = 0.0, tn = 0.0;
            for (int c = 0; c < f; c++) {
                sp += exp(xr[c]);
                sn += exp(-xr[c]);
                tp += p[c];
                tn += p[f + c];
            }
            for (int c = 0; c < f; c++) {
                assert_true(fabs(p[c] - exp(xr[c]) / sp) < 1e-15);
                assert_true(fabs(p[f + c] - exp(-xr[c]) / sn) < 1e-15);
            }
            assert_true(fabs(tp - 1.0) < 1e-14 && fabs(tn - 1.0) < 1e-14);
        }
    }
}

/* ------------------------------------------------- finite differences */

struct fd_ctx {
    int N, H, Hx, D, f;
    double eps;
    double *x, *W, *R;
};

static double fd_loss(const struct fd_ctx *c)
{
    const size_t n = (size_t)c->N * c->H * 2 * c->f;
    double *phi = lc_test_new_f64(n);
    double L = 0.0;

    lc_ref_fmap_fwd_f64(phi, c->x, c->W, c->N, c->H, c->Hx, c->D, c->f, c->eps);
    for (size_t i = 0; i < n; i++) {
        L += phi[i] * c->R[i];
    }
    free(phi);
    return L;
}

static void fd_check(struct fd_ctx *c, const char *what, double *x, const double *analytic,
                     size_t n)
{
    double *g = lc_test_new_f64(n);
    char name[96];

    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i], h = 1e-6;
        double lp, lm;
        x[i] = x0 + h;
        lp = fd_loss(c);
        x[i] = x0 - h;
        lm = fd_loss(c);
        x[i] = x0;
        g[i] = (lp - lm) / (2.0 * h);
    }
    snprintf(name, sizeof(name), "fmap d%s (Hx %d eps %g)", what, c->Hx, c->eps);
    assert_int_equal(lc_test_check_close_f64(name, analytic, g, n, 1e-8, 1e-6), 0);
    free(g);
}

static void fd_case(int Hx, double eps, double xscale, int want_clamped)
{
    struct fd_ctx c = {5, 4, Hx, 4, 3, eps, NULL, NULL, NULL};
    const size_t nx = (size_t)c.N * Hx * c.D, nw = (size_t)c.H * c.D * c.f;
    const size_t np = (size_t)c.N * c.H * 2 * c.f;
    float *tmp = lc_test_new_f32(np + nx + nw);
    double *dW = lc_test_new_f64(nw), *dx = lc_test_new_f64(nx), *phi = lc_test_new_f64(np);
    size_t nclamped = 0;

    c.x = lc_test_new_f64(nx);
    c.W = lc_test_new_f64(nw);
    c.R = lc_test_new_f64(np);
    lc_test_fill_normal(tmp, nx, 21 + (uint64_t)Hx, (float)xscale);
    for (size_t i = 0; i < nx; i++) {
        c.x[i] = tmp[i];
    }
    lc_test_fill_normal(tmp, nw, 22, 1.0f);
    for (size_t i = 0; i < nw; i++) {
        c.W[i] = tmp[i];
    }
    lc_test_fill_normal(tmp, np, 23, 1.0f);
    for (size_t i = 0; i < np; i++) {
        c.R[i] = tmp[i];
    }
    /* both gradients accumulate */
    for (size_t i = 0; i < nw; i++) {
        dW[i] = 1.0;
    }
    for (size_t i = 0; i < nx; i++) {
        dx[i] = -2.0;
    }
    lc_ref_fmap_fwd_f64(phi, c.x, c.W, c.N, c.H, c.Hx, c.D, c.f, c.eps);
    for (size_t i = 0; i < np; i++) {
        nclamped += phi[i] == eps;
    }
    if (want_clamped) {
        assert_true(nclamped > 0 && nclamped < np / 2);
    } else {
        assert_int_equal(nclamped, 0);
    }
    lc_ref_fmap_bwd_f64(dW, dx, c.R, c.x, c.W, c.N, c.H, c.Hx, c.D, c.f, c.eps);
    for (size_t i = 0; i < nw; i++) {
        dW[i] -= 1.0;
    }
    for (size_t i = 0; i < nx; i++) {
        dx[i] += 2.0;
    }
    fd_check(&c, "W", c.W, dW, nw);
    fd_check(&c, "x", c.x, dx, nx);
    free(tmp);
    free(dW);
    free(dx);
    free(phi);
    free(c.x);
    free(c.W);
    free(c.R);
}

static void test_fd_fmap(void **state)
{
    (void)state;
    fd_case(4, 1e-12, 1.0, 0);
    fd_case(2, 1e-12, 1.0, 0);
    /* wide z and a high floor: some entries clamped */
    fd_case(4, 0.02, 2.0, 1);
    fd_case(2, 0.02, 2.0, 1);
}

/* ------------------------------------------------------------ cpu vs ref */

static void cpu_vs_ref_case(struct lc_backend *ref, struct lc_backend *cpu, int N, int H, int Hx,
                            int D, int f, float eps, float xscale)
{
    struct lc_cpu_ctx *ctx = cpu->ctx;
    const enum lc_cpu_isa best = lc_cpu_detect_isa();
    enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
    const int nisas = lc_test_cpu_isas(isas);
    const size_t nx = (size_t)N * Hx * D, nw = (size_t)H * D * f, np = (size_t)N * H * 2 * f;
    float *x = lc_test_new_f32(nx), *W = lc_test_new_f32(nw), *dphi = lc_test_new_f32(np);
    float *phi1 = lc_test_new_f32(np), *phi2 = lc_test_new_f32(np);
    float *dW1 = lc_test_new_f32(nw), *dW2 = lc_test_new_f32(nw), *dx1 = lc_test_new_f32(nx);
    float *dx2 = lc_test_new_f32(nx);
    char name[96];

    lc_test_fill_normal(x, nx, (uint64_t)N + 1, xscale);
    lc_test_fill_normal(W, nw, (uint64_t)N + 2, 0.5f);
    lc_test_fill_normal(dphi, np, (uint64_t)N + 3, 1.0f);
    lc_test_fill_uniform(dW1, nw, 4, -1.0f, 1.0f);
    lc_test_fill_uniform(dx1, nx, 5, -1.0f, 1.0f);
    memcpy(dW2, dW1, nw * sizeof(float));
    memcpy(dx2, dx1, nx * sizeof(float));
    lc_ref_ops.fmap_fwd(ref, phi1, x, W, N, H, Hx, D, f, eps);
    lc_ref_ops.fmap_bwd(ref, dW1, dx1, dphi, x, W, N, H, Hx, D, f, eps);
    for (int ii = 0; ii < nisas; ii++) {
        const enum lc_cpu_isa isa = isas[ii];
        const char *tag = lc_test_isa_name(isa);
        float *dW3 = lc_test_new_f32(nw), *dx3 = lc_test_new_f32(nx);

        memcpy(dW3, dW2, nw * sizeof(float));
        memcpy(dx3, dx2, nx * sizeof(float));
        ctx->isa = isa;
        /* scratch the kernels read without writing first would show as NaN */
        if (ctx->scratch != NULL) {
            memset(ctx->scratch, 0xff, ctx->scratch_bytes);
        }
        lc_cpu_ops.fmap_fwd(cpu, phi2, x, W, N, H, Hx, D, f, eps);
        memset(ctx->scratch, 0xff, ctx->scratch_bytes);
        lc_cpu_ops.fmap_bwd(cpu, dW3, dx3, dphi, x, W, N, H, Hx, D, f, eps);
        snprintf(name, sizeof(name), "%s phi N %d Hx %d f %d", tag, N, Hx, f);
        assert_int_equal(lc_test_check_rel(name, phi2, phi1, np, 1e-5), 0);
        snprintf(name, sizeof(name), "%s dW N %d Hx %d f %d", tag, N, Hx, f);
        assert_int_equal(lc_test_check_rel(name, dW3, dW1, nw, 1e-5), 0);
        snprintf(name, sizeof(name), "%s dx N %d Hx %d f %d", tag, N, Hx, f);
        assert_int_equal(lc_test_check_rel(name, dx3, dx1, nx, 1e-5), 0);
        /* dx is optional */
        memcpy(dW3, dW2, nw * sizeof(float));
        lc_cpu_ops.fmap_bwd(cpu, dW3, NULL, dphi, x, W, N, H, Hx, D, f, eps);
        assert_int_equal(lc_test_check_rel("dW without dx", dW3, dW1, nw, 1e-5), 0);
        free(dW3);
        free(dx3);
    }
    ctx->isa = best;
    free(x);
    free(W);
    free(dphi);
    free(phi1);
    free(phi2);
    free(dW1);
    free(dW2);
    free(dx1);
    free(dx2);
}

static void test_cpu_vs_ref(void **state)
{
    struct lc_backend *ref = lc_test_backend(&lc_ref_ops);
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    (void)state;

    cpu_vs_ref_case(ref, cpu, 1, 4, 4, 16, 8, 1e-12f, 1.0f);
    cpu_vs_ref_case(ref, cpu, 7, 4, 2, 16, 8, 1e-12f, 1.0f);
    cpu_vs_ref_case(ref, cpu, 300, 4, 2, 32, 16, 1e-12f, 1.0f);
    cpu_vs_ref_case(ref, cpu, 130, 3, 1, 13, 5, 1e-12f, 1.0f);
    /* more tokens than the backward's chunk cap (16 x 128) */
    cpu_vs_ref_case(ref, cpu, 2100, 2, 2, 8, 17, 1e-12f, 1.0f);
    /* clamped entries */
    cpu_vs_ref_case(ref, cpu, 50, 4, 2, 16, 8, 0.01f, 3.0f);
    lc_test_backend_free(ref);
    lc_test_backend_free(cpu);
}

static void test_cpu_threads(void **state)
{
    const int N = 1000, H = 8, Hx = 4, D = 16, f = 8;
    const size_t nx = (size_t)N * Hx * D, nw = (size_t)H * D * f, np = (size_t)N * H * 2 * f;
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    float *x = lc_test_new_f32(nx), *W = lc_test_new_f32(nw), *dphi = lc_test_new_f32(np);
    float *phi[2], *dW[2], *dx[2];
    (void)state;

    lc_test_fill_normal(x, nx, 1, 1.0f);
    lc_test_fill_normal(W, nw, 2, 0.5f);
    lc_test_fill_normal(dphi, np, 3, 1.0f);
    for (int t = 0; t < 2; t++) {
        phi[t] = lc_test_new_f32(np);
        dW[t] = lc_test_new_f32(nw);
        dx[t] = lc_test_new_f32(nx);
        lc_set_num_threads(t + 1);
        lc_cpu_ops.fmap_fwd(cpu, phi[t], x, W, N, H, Hx, D, f, 1e-12f);
        lc_cpu_ops.fmap_bwd(cpu, dW[t], dx[t], dphi, x, W, N, H, Hx, D, f, 1e-12f);
    }
    lc_set_num_threads(0);
    assert_memory_equal(phi[0], phi[1], np * sizeof(float));
    assert_memory_equal(dW[0], dW[1], nw * sizeof(float));
    assert_memory_equal(dx[0], dx[1], nx * sizeof(float));
    for (int t = 0; t < 2; t++) {
        free(phi[t]);
        free(dW[t]);
        free(dx[t]);
    }
    free(x);
    free(W);
    free(dphi);
    lc_test_backend_free(cpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmap_identity),
        cmocka_unit_test(test_fd_fmap),
        cmocka_unit_test(test_cpu_vs_ref),
        cmocka_unit_test(test_cpu_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
