/*
 * bench_hybrid: speed of the cpu backend's hybrid attention on one
 * Llama-3-8B-shaped layer (H 32, Hkv 8, D 128, f 64 so F 128, W 64,
 * T 1024 by default), as GFLOP/s and as a fraction of the SGEMM rate
 * measured in the same run (2048^3, all threads).
 *
 * The FLOP counts are those of the matrix products the chunked algorithm
 * performs (scores, weights times values, fq times the state, the state
 * updates; in the backward also the recomputed scores and the reverse
 * scan), so the ratio says how close the kernel runs to GEMM speed.
 *
 * usage: bench_hybrid [T [reps]]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "backend-cpu/cpu.h"
#include "core/backend.h"
#include "core/ref/ref.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_fill(size_t n, unsigned seed, float lo, float hi)
{
    float *p = malloc(n * sizeof(float) + 64);
    if (p == NULL) {
        fprintf(stderr, "bench_hybrid: out of memory\n");
        exit(1);
    }
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        p[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    }
    return p;
}

/* best time of a 2048^3 SGEMM (n x n matrices) */
static double sgemm_best(const float *A, const float *Bm, float *C, int n, int reps)
{
    double best = 1e30;

    for (int r = 0; r < reps; r++) {
        double t0 = now(), dt;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f,
                    C, n);
        dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* GEMM FLOPs of the chunked forward and backward, per (batch, head) */
static void chunked_flops(const struct lc_attn_shape *s, double *fwd, double *bwd)
{
    const double D = s->D, F = s->F;
    const int W = s->window, nblk = (s->T + W - 1) / W;
    const int sliding = s->mode == LC_WINDOW_SLIDING;

    *fwd = 0.0;
    *bwd = 0.0;
    for (int t = 0; t < nblk; t++) {
        const double nb = s->T - t * W < W ? s->T - t * W : W;
        const double np = t > 0 ? W : 0;
        const double nk = nb + np;
        const double near = 2.0 * nb * nk * D;              /* one [nb x nk] x D product */
        const double lin = t >= 2 ? 2.0 * nb * F * D : 0.0; /* fq S */
        const double state = t >= 1 && t + 1 < nblk ? 2.0 * F * D * W : 0.0;
        const double slide = sliding ? 2.0 * nb * np * F : 0.0;
        const double rev = t >= 2 ? 2.0 * F * D * nb + 2.0 * 2.0 * W * F * D : 0.0;

        *fwd += 2.0 * near + lin + state + slide;
        /* scores, g v^T, dq, dk, dv; dfq from S; state; sliding dfq, dfk;
         * reverse scan: R update, dfk and dv of a key block */
        *bwd += 5.0 * near + lin + state + 3.0 * slide + rev;
    }
}

int main(int argc, char **argv)
{
    const int T = argc > 1 ? atoi(argv[1]) : 1024;
    const int reps = argc > 2 ? atoi(argv[2]) : 3;
    const int n = 2048;
    struct lc_attn_shape s = {1, T, 32, 8, 128, 128, 64, LC_WINDOW_TERRACED};
    struct lc_backend be = {0};
    struct lc_error err = {0};
    const size_t nq = (size_t)s.B * T * s.H * s.D, nk = (size_t)s.B * T * s.Hkv * s.D;
    const size_t nf = (size_t)s.B * T * s.H * s.F, nm = (size_t)s.B * T * s.H;
    float *A, *Bm, *C, *q, *k, *v, *fq, *fk, *theta, *y, *mx, *den, *dy;
    float *dq, *dk, *dv, *dfq, *dfk, *dth, *rows;
    double t0, peak, best, tf[2], tb[2], ts[2], tx = 1e30;

    lc_blas_use_fast_kernels(argc, argv);
    if (T < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_hybrid [T [reps]]\n");
        return 2;
    }
    be.ops = &lc_cpu_ops;
    if (be.ops->init(&be, &err) != LC_OK) {
        fprintf(stderr, "bench_hybrid: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", be.ops->describe(&be));

    /* the SGEMM rate, measured before and after the layer (the best of
     * both counts, so that a busy moment does not inflate the ratios) */
    A = alloc_fill((size_t)n * n, 1, -1.0f, 1.0f);
    Bm = alloc_fill((size_t)n * n, 2, -1.0f, 1.0f);
    C = alloc_fill((size_t)n * n, 3, 0.0f, 0.0f);
    sgemm_best(A, Bm, C, n, 1);
    best = sgemm_best(A, Bm, C, n, reps);

    q = alloc_fill(nq, 4, -1.0f, 1.0f);
    k = alloc_fill(nk, 5, -1.0f, 1.0f);
    v = alloc_fill(nk, 6, -1.0f, 1.0f);
    fq = alloc_fill(nf, 7, 0.0f, 0.02f);
    fk = alloc_fill(nf, 8, 0.0f, 0.02f);
    theta = alloc_fill((size_t)s.H, 9, -2.2f, -2.2f);
    dy = alloc_fill(nq, 10, -1.0f, 1.0f);
    y = alloc_fill(nq, 11, 0.0f, 0.0f);
    mx = alloc_fill(nm, 12, 0.0f, 0.0f);
    den = alloc_fill(nm, 13, 0.0f, 0.0f);
    dq = alloc_fill(nq, 14, 0.0f, 0.0f);
    dk = alloc_fill(nk, 15, 0.0f, 0.0f);
    dv = alloc_fill(nk, 16, 0.0f, 0.0f);
    dfq = alloc_fill(nf, 17, 0.0f, 0.0f);
    dfk = alloc_fill(nf, 18, 0.0f, 0.0f);
    dth = alloc_fill((size_t)s.H, 19, 0.0f, 0.0f);

    for (int mode = 0; mode < 2; mode++) {
        s.mode = mode;
        tf[mode] = tb[mode] = ts[mode] = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t1, t2, t3;
            t0 = now();
            be.ops->hybrid_fwd(&be, y, mx, den, q, k, v, fq, fk, theta, &s);
            t1 = now();
            be.ops->hybrid_bwd(&be, dq, dk, dv, dfq, dfk, dth, dy, y, mx, den, q, k, v, fq, fk,
                               theta, &s);
            t2 = now();
            /* stage 1 needs only dfq, dfk, dtheta */
            be.ops->hybrid_bwd(&be, NULL, NULL, NULL, dfq, dfk, dth, dy, y, mx, den, q, k, v, fq,
                               fk, theta, &s);
            t3 = now();
            if (r > 0) { /* the first round warms up */
                tf[mode] = t1 - t0 < tf[mode] ? t1 - t0 : tf[mode];
                tb[mode] = t2 - t0 < tb[mode] ? t2 - t0 : tb[mode];
                t3 = (t1 - t0) + (t3 - t2);
                ts[mode] = t3 < ts[mode] ? t3 : ts[mode];
            }
        }
    }
    /* the attention-weight cross-entropy is quadratic by nature */
    rows = alloc_fill(nm, 20, 0.0f, 0.0f);
    s.mode = LC_WINDOW_TERRACED;
    for (int r = 0; r < reps; r++) {
        double dt;
        t0 = now();
        be.ops->hybrid_xent(&be, rows, dfq, dfk, dth, 1.0f, q, k, fq, fk, theta, &s);
        dt = now() - t0;
        tx = dt < tx ? dt : tx;
    }

    t0 = sgemm_best(A, Bm, C, n, reps);
    best = t0 < best ? t0 : best;
    peak = 2.0 * n * (double)n * n / best * 1e-9;
    printf("sgemm %dx%dx%d: %.1f ms, %.1f GFLOP/s (best before and after)\n", n, n, n,
           best * 1e3, peak);
    printf("layer: B %d T %d H %d Hkv %d D %d F %d W %d\n", s.B, T, s.H, s.Hkv, s.D, s.F,
           s.window);
    for (int mode = 0; mode < 2; mode++) {
        const char *name = mode == LC_WINDOW_SLIDING ? "sliding" : "terraced";
        double ff, fb;

        s.mode = mode;
        chunked_flops(&s, &ff, &fb);
        ff *= s.B * s.H;
        fb *= s.B * s.H;
        printf("%-8s fwd         %8.2f ms  %7.1f GFLOP/s  %5.1f%% of sgemm\n", name,
               tf[mode] * 1e3, ff / tf[mode] * 1e-9, 100.0 * ff / tf[mode] * 1e-9 / peak);
        printf("%-8s fwd+bwd     %8.2f ms  %7.1f GFLOP/s  %5.1f%% of sgemm\n", name,
               tb[mode] * 1e3, (ff + fb) / tb[mode] * 1e-9,
               100.0 * (ff + fb) / tb[mode] * 1e-9 / peak);
        printf("%-8s fwd+bwd (stage 1: dfq, dfk, dtheta only) %8.2f ms\n", name,
               ts[mode] * 1e3);
    }
    printf("terraced xent (quadratic: loss, dfq, dfk, dtheta) %8.2f ms\n", tx * 1e3);

    free(A);
    free(Bm);
    free(C);
    free(rows);
    free(q);
    free(k);
    free(v);
    free(fq);
    free(fk);
    free(theta);
    free(dy);
    free(y);
    free(mx);
    free(den);
    free(dq);
    free(dk);
    free(dv);
    free(dfq);
    free(dfk);
    free(dth);
    be.ops->fini(&be);
    return 0;
}
