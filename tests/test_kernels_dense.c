/*
 * What the table-driven comparison of every entry with the reference
 * (tests/test_backend_ops.c) does not cover for the cpu backend's dense
 * kernels: the vector exp against exp in double, the hybrid attention's
 * small GEMMs and driver rows against sums in double, every cpu kernel run with
 * 1, 2 and 3 threads (which must give the same bits), the decoding gemv's
 * prefetch levels and their probe, the dropout mask's statistics, and the
 * report of a failed scratch allocation.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"
#include "core/ref/ref.h"
#include "tests/lc_test.h"

/* ------------------------------------------------------------------ exp */

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

/* ------------------------------------------------------- small GEMMs */

/* Every ISA's hybrid GEMM (gemm_pack, then gemm) against a sum in double:
 * B as stored and transposed, A row-major and transposed with padded
 * strides, sizes around the tile and panel widths, alpha and beta, and a
 * packed C.  K 512 is the longest whose tiles of A are copied (the last
 * step's whole-vector store reaching into the copy's spare room), K 600
 * reads A in place.  With beta 0, C is not read (it starts as NaN). */
static void test_gemm(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    static const int shapes[][3] = {{1, 1, 1},   {3, 7, 5},    {6, 16, 9},   {8, 32, 16},
                                    {9, 33, 17}, {13, 40, 3},  {64, 128, 128}, {17, 8, 64},
                                    {64, 64, 128}, {5, 129, 31}, {130, 20, 64},
                                    {50, 17, 512}, {7, 5, 600}};
    const int ld_pad = 3;

    for (int i = 0; i < b->nisas; i++) {
        const struct lc_cpu_kernels *kr = lc_cpu_kernels_of_isa(b->isas[i]);
        for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
            const int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
            const int P = kr->gemm_np > 0 ? kr->gemm_np : N;
            const int Np = (N + P - 1) / P * P;
            float *a = lc_test_new_f32((size_t)(M + ld_pad) * (K + ld_pad));
            /* twice the size B needs: form 4 reads every other float */
            float *bm = lc_test_new_f32((size_t)(K + ld_pad) * (N + ld_pad) * 2);
            float *bp = lc_test_new_f32((size_t)K * Np);
            float *c = lc_test_new_f32((size_t)M * (N + ld_pad));
            float *cp = lc_test_new_f32((size_t)M * Np);
            double *want = malloc((size_t)M * N * sizeof(double));
            double *mag = malloc((size_t)M * N * sizeof(double));

            assert_non_null(want);
            assert_non_null(mag);
            lc_test_fill_uniform(a, (size_t)(M + ld_pad) * (K + ld_pad), 11 + sh, -1.0f, 1.0f);
            lc_test_fill_uniform(bm, (size_t)(K + ld_pad) * (N + ld_pad) * 2, 23 + sh, -1.0f,
                                 1.0f);
            for (int form = 0; form < 5; form++) {
                /* bit 0: A transposed in memory; bit 1: B transposed;
                 * form 4: neither of B's strides is 1 */
                const int ta = form & 1, tb = (form >> 1) & 1;
                const ptrdiff_t ars = ta ? 1 : K + ld_pad, aks = ta ? M + ld_pad : 1;
                const ptrdiff_t bks = form == 4 ? 2 * (N + ld_pad) : tb ? 1 : N + ld_pad;
                const ptrdiff_t bns = form == 4 ? 2 : tb ? K + ld_pad : 1;
                const int ldc = N + ld_pad;
                const float alpha = form == 1 ? 1.0f : 0.75f, beta = form >= 2 ? 0.5f : 0.0f;
                size_t bad = 0;

                kr->gemm_pack(bp, bm, K, N, bks, bns);
                for (int r = 0; r < M; r++) {
                    for (int n = 0; n < N; n++) {
                        double sum = 0.0, sa = 0.0;
                        const float c0 = (float)((r * 7 + n * 3) % 11) * 0.125f - 0.5f;
                        for (int k = 0; k < K; k++) {
                            const double p = (double)a[r * ars + k * aks] * bm[k * bks + n * bns];
                            sum += p;
                            sa += fabs(p);
                        }
                        want[(size_t)r * N + n] = alpha * sum + beta * c0;
                        mag[(size_t)r * N + n] = fabs(alpha) * sa + fabs(beta * c0);
                        c[(size_t)r * ldc + n] = beta != 0.0f ? c0 : NAN;
                        /* the packed C: panel n / P, row r, column n % P */
                        cp[(size_t)(n / P) * M * P + (size_t)r * P + n % P] =
                            beta != 0.0f ? c0 : NAN;
                    }
                    /* the padding of C stays as it is */
                    for (int n = N; n < ldc; n++) {
                        c[(size_t)r * ldc + n] = 42.0f;
                    }
                }
                kr->gemm(M, N, K, alpha, a, ars, aks, bp, (ptrdiff_t)K * P, beta, c, ldc, P);
                if (kr->gemm_np > 0) {
                    kr->gemm(M, N, K, alpha, a, ars, aks, bp, (ptrdiff_t)K * P, beta, cp, P,
                             (ptrdiff_t)M * P);
                }
                for (int r = 0; r < M; r++) {
                    for (int n = 0; n < ldc; n++) {
                        const float got = c[(size_t)r * ldc + n];
                        const float gotp =
                            kr->gemm_np > 0 && n < N
                                ? cp[(size_t)(n / P) * M * P + (size_t)r * P + n % P]
                                : got;
                        double tol, w;
                        if (n >= N) {
                            bad += got != 42.0f;
                            continue;
                        }
                        w = want[(size_t)r * N + n];
                        /* the bound of a float sum of K + 2 terms */
                        tol = (K + 4) * 0x1p-23 * mag[(size_t)r * N + n] + 1e-30;
                        if (!(fabs(got - w) <= tol) || gotp != got) {
                            if (bad++ < 5) {
                                fprintf(stderr,
                                        "gemm [%s] %dx%dx%d form %d: C(%d, %d) = %g (packed C "
                                        "%g), want %g\n",
                                        lc_test_isa_name(b->isas[i]), M, N, K, form, r, n,
                                        (double)got, (double)gotp, w);
                            }
                        }
                    }
                }
                assert_int_equal(bad, 0);
            }
            free(a);
            free(bm);
            free(bp);
            free(c);
            free(cp);
            free(want);
            free(mag);
        }
    }
}

/* ------------------------------------------------ hybrid driver rows */

/* Every ISA's rows of the hybrid driver against the same arithmetic in
 * double, over lengths around the vector widths: the division and the
 * products are single roundings (so exact), the sums within a few
 * roundings of their terms' size; div_row also in place. */
static void test_hybrid_rows(void **state)
{
    static const int lens[] = {1, 3, 8, 15, 16, 17, 33, 64, 128, 130};
    struct lc_test_cpu_ref *b = *state;
    const int nmax = 130;
    float *x = lc_test_new_f32(nmax), *y0 = lc_test_new_f32(nmax), *y = lc_test_new_f32(nmax);
    float *acc0 = lc_test_new_f32(nmax), *acc = lc_test_new_f32(nmax);

    lc_test_fill_uniform(x, nmax, 61, -2.0f, 2.0f);
    lc_test_fill_uniform(y0, nmax, 62, -2.0f, 2.0f);
    lc_test_fill_uniform(acc0, nmax, 63, -2.0f, 2.0f);
    for (int i = 0; i < b->nisas; i++) {
        const struct lc_cpu_kernels *kr = lc_cpu_kernels_of_isa(b->isas[i]);
        const char *isa = lc_test_isa_name(b->isas[i]);
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            const int n = lens[li];
            const float d = 0.37f, a = -1.3f, sc = 0.61f;
            int bad = 0;

            /* y = x / d, then in place y = y / d */
            memset(y, 0, (size_t)nmax * sizeof(float));
            kr->div_row(y, x, d, n);
            for (int e = 0; e < nmax; e++) {
                bad += y[e] != (e < n ? x[e] / d : 0.0f);
            }
            kr->div_row(y, y, d, n);
            for (int e = 0; e < n; e++) {
                bad += y[e] != x[e] / d / d;
            }
            /* y = (y + a x) s */
            memcpy(y, y0, (size_t)nmax * sizeof(float));
            kr->axpy_scale_row(y, x, a, sc, n);
            for (int e = 0; e < nmax; e++) {
                const double want = e < n ? ((double)y0[e] + (double)a * x[e]) * sc : y0[e];
                const double tol = 4.0 * FLT_EPSILON * (fabs(y0[e]) + fabs(a * x[e])) * sc;
                bad += !(fabs(y[e] - want) <= tol);
            }
            /* y = x s, acc += a x */
            memset(y, 0, (size_t)nmax * sizeof(float));
            memcpy(acc, acc0, (size_t)nmax * sizeof(float));
            kr->scale_acc_row(y, acc, x, sc, a, n);
            for (int e = 0; e < nmax; e++) {
                const double want = e < n ? (double)acc0[e] + (double)a * x[e] : acc0[e];
                const double tol = 4.0 * FLT_EPSILON * (fabs(acc0[e]) + fabs(a * x[e]));
                bad += y[e] != (e < n ? x[e] * sc : 0.0f);
                bad += !(fabs(acc[e] - want) <= tol);
            }
            if (bad > 0) {
                fprintf(stderr, "hybrid rows [%s] n %d: %d elements wrong\n", isa, n, bad);
            }
            assert_int_equal(bad, 0);
        }
    }
    free(x);
    free(y0);
    free(y);
    free(acc0);
    free(acc);
}

/* Every ISA's gemv: rows long enough to be streamed in parts side by
 * side, whatever the number of rows (the last parts shorter or empty),
 * give each row the bits of that row alone, with every prefetch setting,
 * and sums within a few roundings of the sum in double. */
static void test_gemv_rows(void **state)
{
    static const int Ks[] = {40, 65, 1000, 4099};
    static const int Ms[] = {1, 7, 16, 17, 33, 64, 100, 128, 129, 300};
    static const enum lc_dtype types[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
    struct lc_test_cpu_ref *b = *state;
    const int kmax = 4099, mmax = 300;
    float *x = lc_test_new_uniform(kmax, 71, -1, 1);
    float *wf = lc_test_new_uniform((size_t)kmax * mmax, 72, -1, 1);
    float *y0 = lc_test_new_uniform(mmax, 73, -1, 1);
    float *y = lc_test_new_f32(mmax), *one = lc_test_new_f32(mmax);

    for (int i = 0; i < b->nisas; i++) {
        const struct lc_cpu_kernels *kr = lc_cpu_kernels_of_isa(b->isas[i]);
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            const size_t wsize = lc_dtype_size(types[t]), nw = (size_t)kmax * mmax;
            /* the weights as stored, and their values */
            void *w = lc_test_to_dtype(wf, nw, types[t]);
            float *wv = lc_test_round_to(lc_test_dup_f32(wf, nw), nw, types[t]);
            for (size_t ki = 0; ki < sizeof(Ks) / sizeof(Ks[0]); ki++) {
                const int K = Ks[ki];
                for (size_t mi = 0; mi < sizeof(Ms) / sizeof(Ms[0]); mi++) {
                    const int M = Ms[mi];
                    const float beta = (mi % 2) ? 1.0f : 0.0f;
                    int bad = 0;
                    for (int pf = LC_CPU_PREFETCH_NONE; pf < LC_CPU_PREFETCH_COUNT; pf++) {
                        memcpy(y, y0, (size_t)mmax * sizeof(float));
                        kr->gemv(y, x, w, types[t], K, M, beta, pf);
                        for (int m = 0; m < M; m++) {
                            const void *wr = (const char *)w + (size_t)m * K * wsize;
                            const float *vr = wv + (size_t)m * K;
                            double want = beta * (double)y0[m], size = fabs(want);
                            one[0] = y0[m];
                            kr->gemv(one, x, wr, types[t], K, 1, beta, pf);
                            bad += memcmp(&one[0], &y[m], sizeof(float)) != 0;
                            for (int k = 0; k < K; k++) {
                                const double p = (double)x[k] * vr[k];
                                want += p;
                                size += fabs(p);
                            }
                            bad += !(fabs(y[m] - want) <= 2.0 * K * FLT_EPSILON * size);
                        }
                        /* rows past M untouched */
                        bad += memcmp(y + M, y0 + M, (size_t)(mmax - M) * sizeof(float)) != 0;
                    }
                    if (bad > 0) {
                        fprintf(stderr, "gemv [%s] %s K %d M %d: %d rows wrong\n",
                                lc_test_isa_name(b->isas[i]), lc_dtype_name(types[t]), K, M,
                                bad);
                    }
                    assert_int_equal(bad, 0);
                }
            }
            free(w);
            free(wv);
        }
    }
    free(x);
    free(wf);
    free(y0);
    free(y);
    free(one);
}

/* LC_CPU_PREFETCH names the decoding gemv's prefetch level; an empty or
 * unknown value (with a warning) leaves the CPU's default. */
static void test_prefetch_env(void **state)
{
    static const char *const unknown[] = {"", "L2", "l3", "none ", "2"};
    const char *saved = getenv("LC_CPU_PREFETCH");
    char *keep = saved != NULL ? strdup(saved) : NULL;
    enum lc_cpu_prefetch dflt;
    int named = -1;

    (void)state;
    unsetenv("LC_CPU_PREFETCH");
    dflt = lc_cpu_detect_prefetch(&named);
    assert_true(dflt < LC_CPU_PREFETCH_COUNT);
    assert_int_equal(named, 0);
    for (int i = 0; i < LC_CPU_PREFETCH_COUNT; i++) {
        setenv("LC_CPU_PREFETCH", lc_cpu_prefetch_name((enum lc_cpu_prefetch)i), 1);
        assert_int_equal(lc_cpu_detect_prefetch(&named), i);
        assert_int_equal(named, 1);
    }
    assert_string_equal(lc_cpu_prefetch_name(LC_CPU_PREFETCH_NONE), "none");
    assert_string_equal(lc_cpu_prefetch_name(LC_CPU_PREFETCH_L1), "l1");
    assert_string_equal(lc_cpu_prefetch_name(LC_CPU_PREFETCH_L2), "l2");
    assert_string_equal(lc_cpu_prefetch_name(LC_CPU_PREFETCH_COUNT), "unknown");
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        setenv("LC_CPU_PREFETCH", unknown[i], 1);
        assert_int_equal(lc_cpu_detect_prefetch(&named), dflt);
        assert_int_equal(named, 0);
    }
    if (keep != NULL) {
        setenv("LC_CPU_PREFETCH", keep, 1);
    } else {
        unsetenv("LC_CPU_PREFETCH");
    }
    free(keep);
}

/* The probe keeps the level with the least median time per byte where it
 * beats the level in use by the margin: not a level that wins by less,
 * nor one that a few slow products of the others make look faster. */
static void test_probe_pick(void **state)
{
    double t[LC_CPU_PROBE_PRODUCTS], med[LC_CPU_PREFETCH_COUNT];
    const int n = LC_CPU_PROBE_PRODUCTS;
    /* seconds per byte of each level, before the noise */
    const double l2_fast[] = {1.0, 1.3, 0.8}, l2_close[] = {1.0, 1.3, 0.97};

    (void)state;
    for (int i = 0; i < n; i++) {
        t[i] = l2_fast[i % 3] * (1.0 + 0.01 * (i % 5));
    }
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_L1, med), LC_CPU_PREFETCH_L2);
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_NONE, NULL), LC_CPU_PREFETCH_L2);
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_L2, NULL), LC_CPU_PREFETCH_L2);
    for (int l = 0; l < LC_CPU_PREFETCH_COUNT; l++) {
        assert_true(med[l] >= l2_fast[l] && med[l] <= 1.04 * l2_fast[l]);
    }
    /* within the margin: the level in use stays */
    for (int i = 0; i < n; i++) {
        t[i] = l2_close[i % 3];
    }
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_NONE, med), LC_CPU_PREFETCH_NONE);
    assert_true(med[LC_CPU_PREFETCH_L2] == 0.97);
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_L1, NULL), LC_CPU_PREFETCH_L2);
    /* l1 interrupted in 6 of its 14 products: its median stays, none stays */
    for (int i = 0; i < n; i++) {
        t[i] = i % 3 == 1 ? (i < 18 ? 50.0 : 1.0) : 1.02;
    }
    assert_int_equal(lc_cpu_probe_pick(t, n, LC_CPU_PREFETCH_L1, med), LC_CPU_PREFETCH_L1);
    assert_true(med[LC_CPU_PREFETCH_L1] == 1.0);
    /* and it picks with three products per level */
    for (int i = 0; i < 9; i++) {
        t[i] = l2_fast[2 - i % 3];
    }
    assert_int_equal(lc_cpu_probe_pick(t, 9, LC_CPU_PREFETCH_L2, NULL), LC_CPU_PREFETCH_NONE);
}

/* Decoding runs the probe on the one-row products of at least min_bytes of
 * weights from the second time the first one's weights come by, for
 * LC_CPU_PROBE_PRODUCTS products, then keeps what lc_cpu_probe_pick says;
 * products of several rows or fewer bytes are not timed, and no product's
 * bits change on the way. */
static void test_probe_decoding(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    struct lc_backend *be = b->cpu;
    struct lc_cpu_ctx *ctx = be->ctx;
    const enum lc_cpu_isa saved_isa = ctx->isa;
    const enum lc_cpu_prefetch saved_prefetch = ctx->gemv_prefetch;
    const struct lc_cpu_probe saved_probe = ctx->probe;
    /* bf16 weights: 80 KiB (a serial product), 300 KiB (a parallel one),
     * 8 KiB (under the size timed) */
    enum { K = 512, NW = 3 };
    static const int Ms[NW] = {80, 300, 8};
    const size_t min_bytes = (size_t)64 << 10;
    float *x = lc_test_new_uniform(2 * K, 81, -1, 1);
    float *y = lc_test_new_f32(2 * 300), *want[NW][2];
    void *w[NW];

    for (int i = 0; i < NW; i++) {
        float *wf = lc_test_new_uniform((size_t)Ms[i] * K, 82 + (uint64_t)i, -1, 1);
        w[i] = lc_test_to_dtype(wf, (size_t)Ms[i] * K, LC_DTYPE_BF16);
        free(wf);
    }
    for (int i = 0; i < b->nisas; i++) {
        if (b->isas[i] == LC_CPU_ISA_GENERIC) {
            continue;
        }
        ctx->isa = b->isas[i];
        ctx->probe.active = 0;
        /* each product's bits with the probe off, one and two rows */
        for (int j = 0; j < NW; j++) {
            for (int n = 1; n <= 2; n++) {
                want[j][n - 1] = lc_test_new_f32((size_t)n * Ms[j]);
                be->ops->linear_fwd(be, want[j][n - 1], x, w[j], LC_DTYPE_BF16, n, K, Ms[j],
                                    0.0f);
            }
        }
        ctx->gemv_prefetch = LC_CPU_PREFETCH_L1;
        ctx->probe.min_bytes = min_bytes;
        lc_cpu_probe_start(ctx);
        assert_int_equal(ctx->probe.min_bytes, min_bytes);
        assert_non_null(strstr(lc_backend_describe(be), "decode prefetch l1, to be measured"));
        int calls = 0;
        /* rounds of: 80 KiB, two rows of 300 KiB, 8 KiB, 300 KiB */
        while (ctx->probe.active) {
            static const int order[4][2] = {{0, 1}, {1, 2}, {2, 1}, {1, 1}};
            const int *o = order[calls % 4];
            const int before = ctx->probe.taken;
            const int timed = ctx->probe.taken > 0 && o[0] != 2 && o[1] == 1;
            be->ops->linear_fwd(be, y, x, w[o[0]], LC_DTYPE_BF16, o[1], K, Ms[o[0]], 0.0f);
            assert_memory_equal(y, want[o[0]][o[1] - 1], (size_t)o[1] * Ms[o[0]] * sizeof(float));
            if (calls < 4) {
                /* the first pass: not timed; the next 80 KiB starts the probe */
                assert_ptr_equal(ctx->probe.first, w[0]);
                assert_int_equal(ctx->probe.taken, 0);
            } else if (calls == 4) {
                assert_int_equal(ctx->probe.taken, 1);
            } else if (ctx->probe.active) {
                assert_int_equal(ctx->probe.taken, before + timed);
            }
            calls++;
            assert_true(calls < 200);
        }
        /* 42 timed products, two in each round of four calls */
        assert_int_equal(calls, 4 + LC_CPU_PROBE_PRODUCTS / 2 * 4);
        assert_int_equal(ctx->probe.taken, LC_CPU_PROBE_PRODUCTS);
        assert_int_equal(ctx->gemv_prefetch, lc_cpu_probe_pick(ctx->probe.per_byte,
                                                                LC_CPU_PROBE_PRODUCTS,
                                                                LC_CPU_PREFETCH_L1, NULL));
        for (int p = 0; p < LC_CPU_PROBE_PRODUCTS; p++) {
            assert_true(ctx->probe.per_byte[p] > 0.0);
        }
        {
            char expect[64];
            snprintf(expect, sizeof(expect), "decode prefetch %s, measured",
                     lc_cpu_prefetch_name(ctx->gemv_prefetch));
            assert_non_null(strstr(lc_backend_describe(be), expect));
        }
        /* and the products after it keep their bits */
        for (int j = 0; j < NW; j++) {
            be->ops->linear_fwd(be, y, x, w[j], LC_DTYPE_BF16, 1, K, Ms[j], 0.0f);
            assert_memory_equal(y, want[j][0], (size_t)Ms[j] * sizeof(float));
            free(want[j][0]);
            free(want[j][1]);
        }
    }
    ctx->isa = saved_isa;
    ctx->gemv_prefetch = saved_prefetch;
    ctx->probe = saved_probe;
    for (int i = 0; i < NW; i++) {
        free(w[i]);
    }
    free(x);
    free(y);
}

/* The reference's dropout mask keeps about 1 - p of the elements, and
 * another seed gives another mask (the backends must give the same bits:
 * tests/test_backend_ops.c). */
static void test_dropout_mask(void **state)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    struct lc_test_cpu_ref *b = *state;
    const int64_t n = 100003;
    float *x = lc_test_new_uniform(n, 1, -2, 2);
    float *want = lc_test_new_f32(n);
    float *other = lc_test_new_f32(n);

    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        float p = ps[k];
        int64_t kept = 0;
        lc_ref_dropout(b->ref, want, x, n, p, 42 + k);
        for (int64_t j = 0; j < n; j++) {
            kept += want[j] != 0.0f;
        }
        /* 4 sigma */
        assert_true(fabs((double)kept / n - (1 - p)) <= 4 * sqrt(p * (1 - p) / n) + 1e-9);
    }
    lc_ref_dropout(b->ref, want, x, n, 0.5f, 1);
    lc_ref_dropout(b->ref, other, x, n, 0.5f, 2);
    assert_true(memcmp(want, other, n * sizeof(float)) != 0);
    free(x);
    free(want);
    free(other);
}

/* The masks of the million-element cases of the dropout row of
 * tests/test_backend_ops.c, where every backend gives these bits: the
 * share kept is about 1 - p (binomial: 6 standard deviations). */
static void test_dropout_mask_large(void **state)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.999f, 1.0f};
    static const uint64_t seeds[] = {0, 12345, UINT64_MAX};
    struct lc_test_cpu_ref *b = *state;
    const size_t n = 1000003;
    float *x = lc_test_new_uniform(n, 3, -1, 1);
    float *y = lc_test_new_f32(n);

    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
            size_t kept = 0;
            lc_ref_dropout(b->ref, y, x, (int64_t)n, ps[i], seeds[s]);
            for (size_t j = 0; j < n; j++) {
                kept += y[j] != 0.0f;
            }
            assert_true(fabs((double)kept / n - (1.0 - ps[i])) <=
                        6.0 * sqrt(ps[i] * (1.0 - ps[i]) / n) + 1e-6);
        }
    }
    free(x);
    free(y);
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
    case 18: /* decoding: 1 thread takes blocks of 128 weight rows, which
              * the vector gemv streams in parts; 2 and 3 take 32 */
        be->ops->linear_fwd(be, out, a, wh, LC_DTYPE_BF16, 1, 1000, 900, 1.0f);
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
        "linear_fwd bf16 N=1",
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
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_hybrid_rows),
        cmocka_unit_test(test_gemv_rows),
        cmocka_unit_test(test_prefetch_env),
        cmocka_unit_test(test_probe_pick),
        cmocka_unit_test(test_probe_decoding),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_dropout_mask_large),
        cmocka_unit_test(test_thread_independence),
        cmocka_unit_test(test_sync_reports_failure),
    };
    return cmocka_run_group_tests(tests, lc_test_cpu_ref_setup, lc_test_cpu_ref_teardown);
}
