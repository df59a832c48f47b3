/* Hybrid window attention: the window sets, the reference against an
 * explicit-set evaluation and finite differences, the cpu kernels' optional
 * outputs and thread-count independence, constant-memory decoding against
 * the parallel forward, and both backends against golden outputs of an
 * independent PyTorch implementation (data/gen/make_hybrid_golden.py).
 * Every backend against the reference: tests/test_backend_ops.c. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "core/ref/ref.h"
#include "core/ref/ref_hybrid_f64.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/util.h"
#include "tests/lc_test_hybrid.h"

/* ------------------------------------------------------------ the inputs */

/* ------------------------------------------------------------ window sets */

static void test_window_start(void **state)
{
    static const int terr3[] = {0, 0, 0, 0, 0, 0, 3, 3, 3, 6, 6, 6};
    static const int slid3[] = {0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    (void)state;

    for (int i = 0; i < 12; i++) {
        assert_int_equal(lc_window_start(i, 3, LC_WINDOW_TERRACED), terr3[i]);
        assert_int_equal(lc_window_start(i, 3, LC_WINDOW_SLIDING), slid3[i]);
        /* W = 1: terraced sees the previous token, sliding only itself */
        assert_int_equal(lc_window_start(i, 1, LC_WINDOW_TERRACED), i > 0 ? i - 1 : 0);
        assert_int_equal(lc_window_start(i, 1, LC_WINDOW_SLIDING), i);
        /* a window longer than the sequence holds every key */
        assert_int_equal(lc_window_start(i, 64, LC_WINDOW_TERRACED), 0);
        assert_int_equal(lc_window_start(i, 64, LC_WINDOW_SLIDING), 0);
    }
    /* 64-token blocks: a query sees 65..128 window keys once past block 0 */
    assert_int_equal(lc_window_start(1023, 64, LC_WINDOW_TERRACED), 896);
    assert_int_equal(lc_window_start(128, 64, LC_WINDOW_TERRACED), 64);
    assert_int_equal(lc_window_start(127, 64, LC_WINDOW_TERRACED), 0);
    assert_int_equal(lc_window_start(1023, 64, LC_WINDOW_SLIDING), 960);
}

/* The spec with its sets written out independently of lc_window_start:
 * terraced, j is a window key of i when j <= i and block(j) is block(i)
 * or block(i) - 1 (block(p) = p / W); sliding, when i - W < j <= i. */
static int in_window(int i, int j, int W, int mode)
{
    if (j > i) {
        return 0;
    }
    if (mode == LC_WINDOW_SLIDING) {
        return i - j < W;
    }
    return j / W == i / W || j / W == i / W - 1;
}

static void explicit_fwd(double *y, const struct lc_attn_shape *s, const double *q,
                         const double *k, const double *v, const double *fq, const double *fk,
                         const double *theta)
{
    const int rep = s->H / s->Hkv;

    for (int b = 0; b < s->B; b++) {
        for (int h = 0; h < s->H; h++) {
            const double gamma = 1.0 / (1.0 + exp(-theta[h]));
            const int g = h / rep;
            for (int i = 0; i < s->T; i++) {
                const double *qi = q + lc_test_at4(s, b, i, s->H, h, s->D);
                double m = -INFINITY, den = 0.0;
                double *yi = y + lc_test_at4(s, b, i, s->H, h, s->D);

                for (int j = 0; j <= i; j++) {
                    if (in_window(i, j, s->window, s->mode)) {
                        double sc = 0.0;
                        for (int d = 0; d < s->D; d++) {
                            sc += qi[d] * k[lc_test_at4(s, b, j, s->Hkv, g, s->D) + (size_t)d];
                        }
                        sc /= sqrt((double)s->D);
                        m = sc > m ? sc : m;
                    }
                }
                memset(yi, 0, (size_t)s->D * sizeof(double));
                for (int j = 0; j <= i; j++) {
                    double w = 0.0;
                    if (in_window(i, j, s->window, s->mode)) {
                        double sc = 0.0;
                        for (int d = 0; d < s->D; d++) {
                            sc += qi[d] * k[lc_test_at4(s, b, j, s->Hkv, g, s->D) + (size_t)d];
                        }
                        w = gamma * exp(sc / sqrt((double)s->D) - m);
                    } else {
                        for (int e = 0; e < s->F; e++) {
                            w += fq[lc_test_at4(s, b, i, s->H, h, s->F) + (size_t)e] *
                                 fk[lc_test_at4(s, b, j, s->H, h, s->F) + (size_t)e];
                        }
                    }
                    den += w;
                    for (int d = 0; d < s->D; d++) {
                        yi[d] += w * v[lc_test_at4(s, b, j, s->Hkv, g, s->D) + (size_t)d];
                    }
                }
                for (int d = 0; d < s->D; d++) {
                    yi[d] /= den;
                }
            }
        }
    }
}

static void test_ref_matches_explicit_sets(void **state)
{
    static const int Ts[] = {1, 5, 9, 16};
    static const int Ws[] = {1, 2, 3, 4, 7, 20};
    (void)state;

    for (int mode = 0; mode < 2; mode++) {
        for (size_t ti = 0; ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
            for (size_t wi = 0; wi < sizeof(Ws) / sizeof(Ws[0]); wi++) {
                struct lc_test_hy_in in;
                double *q, *k, *v, *fq, *fk, *th, *y, *want;
                char name[64];

                lc_test_hy_in_make(&in, 2, Ts[ti], 4, 2, 4, 6, Ws[wi], mode, 100 + ti * 10 + wi);
                q = lc_test_to_f64(in.q, in.nq);
                k = lc_test_to_f64(in.k, in.nk);
                v = lc_test_to_f64(in.v, in.nk);
                fq = lc_test_to_f64(in.fq, in.nf);
                fk = lc_test_to_f64(in.fk, in.nf);
                th = lc_test_to_f64(in.theta, 4);
                y = lc_test_new_f64(in.nq);
                want = lc_test_new_f64(in.nq);
                lc_ref_hybrid_fwd_f64(y, NULL, NULL, q, k, v, fq, fk, th, &in.s);
                explicit_fwd(want, &in.s, q, k, v, fq, fk, th);
                snprintf(name, sizeof(name), "y mode %d T %d W %d", mode, Ts[ti], Ws[wi]);
                assert_int_equal(lc_test_check_close_f64(name, y, want, in.nq, 1e-13, 1e-12), 0);
                free(q);
                free(k);
                free(v);
                free(fq);
                free(fk);
                free(th);
                free(y);
                free(want);
                lc_test_hy_in_free(&in);
            }
        }
    }
}

/* ------------------------------------------------- finite differences */

struct fd_ctx {
    const struct lc_attn_shape *s;
    double *q, *k, *v, *fq, *fk, *theta, *dy;
    int xent;
};

/* hybrid: sum(dy * y); xent: sum of the row losses */
static double fd_loss(const struct fd_ctx *c)
{
    const struct lc_attn_shape *s = c->s;
    const size_t nq = (size_t)s->B * s->T * s->H * s->D;
    const size_t nm = (size_t)s->B * s->T * s->H;
    double *out = lc_test_new_f64(nq > nm ? nq : nm);
    double L = 0.0;

    if (c->xent) {
        lc_ref_hybrid_xent_f64(out, NULL, NULL, NULL, 1.0, c->q, c->k, c->fq, c->fk, c->theta,
                               s);
        for (size_t i = 0; i < nm; i++) {
            L += out[i];
        }
    } else {
        lc_ref_hybrid_fwd_f64(out, NULL, NULL, c->q, c->k, c->v, c->fq, c->fk, c->theta, s);
        for (size_t i = 0; i < nq; i++) {
            L += out[i] * c->dy[i];
        }
    }
    free(out);
    return L;
}

static double *fd_grad(struct fd_ctx *c, double *x, size_t n, double h)
{
    double *g = lc_test_new_f64(n);

    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i];
        double lp, lm;
        x[i] = x0 + h;
        lp = fd_loss(c);
        x[i] = x0 - h;
        lm = fd_loss(c);
        x[i] = x0;
        g[i] = (lp - lm) / (2.0 * h);
    }
    return g;
}

static void fd_check(struct fd_ctx *c, const char *what, double *x, const double *analytic,
                     size_t n, double scale)
{
    double *g = fd_grad(c, x, n, 1e-6);
    char name[128];

    for (size_t i = 0; i < n; i++) {
        g[i] *= scale;
    }
    snprintf(name, sizeof(name), "%s d%s (T %d W %d mode %d)", c->xent ? "xent" : "hybrid", what,
             c->s->T, c->s->window, c->s->mode);
    assert_int_equal(lc_test_check_close_f64(name, analytic, g, n, 2e-7, 2e-6), 0);
    free(g);
}

static void fd_case(int T, int W, int mode, int xent)
{
    struct lc_test_hy_in in;
    struct fd_ctx c;
    double *y, *mx, *den, *dq, *dk, *dv, *dfq, *dfk, *dth, *loss;
    const double grad_scale = 0.5;
    const int H = 4;

    lc_test_hy_in_make(&in, 2, T, H, 2, 4, 6, W, mode, 1000 + (uint64_t)(T * 31 + W * 7 + mode));
    if (T >= 5) {
        lc_test_hy_make_tie(&in, 2);
    }
    c.s = &in.s;
    c.q = lc_test_to_f64(in.q, in.nq);
    c.k = lc_test_to_f64(in.k, in.nk);
    c.v = lc_test_to_f64(in.v, in.nk);
    c.fq = lc_test_to_f64(in.fq, in.nf);
    c.fk = lc_test_to_f64(in.fk, in.nf);
    c.theta = lc_test_to_f64(in.theta, (size_t)H);
    c.dy = lc_test_to_f64(in.dy, in.nq);
    c.xent = xent;
    y = lc_test_new_f64(in.nq);
    mx = lc_test_new_f64(in.nm);
    den = lc_test_new_f64(in.nm);
    dq = lc_test_new_f64(in.nq);
    dk = lc_test_new_f64(in.nk);
    dv = lc_test_new_f64(in.nk);
    dfq = lc_test_new_f64(in.nf);
    dfk = lc_test_new_f64(in.nf);
    dth = lc_test_new_f64((size_t)H);
    loss = lc_test_new_f64(in.nm);
    /* dtheta accumulates */
    for (int h = 0; h < H; h++) {
        dth[h] = 0.25;
    }

    lc_ref_hybrid_fwd_f64(y, mx, den, c.q, c.k, c.v, c.fq, c.fk, c.theta, &in.s);
    if (T >= 5 && lc_window_start(4, W, mode) <= 2) {
        /* the tie holds the max of row 4 */
        for (int b = 0; b < 2; b++) {
            for (int h = 0; h < H; h++) {
                double s42 = 0.0;
                for (int d = 0; d < 4; d++) {
                    s42 += c.q[lc_test_at4(&in.s, b, 4, H, h, 4) + (size_t)d] *
                           c.k[lc_test_at4(&in.s, b, 2, 2, h / 2, 4) + (size_t)d];
                }
                assert_true(mx[lc_test_at4(&in.s, b, 4, H, h, 1)] == s42 * 0.5);
                assert_true(s42 * 0.5 == 3.0);
            }
        }
    }
    if (xent) {
        /* dfq, dfk and dtheta accumulate, scaled by grad_scale */
        lc_ref_hybrid_xent_f64(loss, dfq, dfk, dth, grad_scale, c.q, c.k, c.fq, c.fk, c.theta,
                               &in.s);
    } else {
        lc_ref_hybrid_bwd_f64(dq, dk, dv, dfq, dfk, dth, c.dy, y, mx, den, c.q, c.k, c.v, c.fq,
                              c.fk, c.theta, &in.s);
    }
    for (int h = 0; h < H; h++) {
        dth[h] -= 0.25;
    }
    if (xent) {
        fd_check(&c, "fq", c.fq, dfq, in.nf, grad_scale);
        fd_check(&c, "fk", c.fk, dfk, in.nf, grad_scale);
        fd_check(&c, "theta", c.theta, dth, (size_t)H, grad_scale);
    } else {
        fd_check(&c, "q", c.q, dq, in.nq, 1.0);
        fd_check(&c, "k", c.k, dk, in.nk, 1.0);
        fd_check(&c, "v", c.v, dv, in.nk, 1.0);
        fd_check(&c, "fq", c.fq, dfq, in.nf, 1.0);
        fd_check(&c, "fk", c.fk, dfk, in.nf, 1.0);
        fd_check(&c, "theta", c.theta, dth, (size_t)H, 1.0);
    }

    free(c.q);
    free(c.k);
    free(c.v);
    free(c.fq);
    free(c.fk);
    free(c.theta);
    free(c.dy);
    free(y);
    free(mx);
    free(den);
    free(dq);
    free(dk);
    free(dv);
    free(dfq);
    free(dfk);
    free(dth);
    free(loss);
    lc_test_hy_in_free(&in);
}

static void test_fd_hybrid(void **state)
{
    static const int Ts[] = {1, 5, 9};
    static const int Ws[] = {1, 2, 4};
    (void)state;

    for (int mode = 0; mode < 2; mode++) {
        for (size_t ti = 0; ti < 3; ti++) {
            for (size_t wi = 0; wi < 3; wi++) {
                fd_case(Ts[ti], Ws[wi], mode, 0);
            }
        }
    }
}

static void test_fd_xent(void **state)
{
    static const int Ts[] = {1, 5, 9};
    static const int Ws[] = {1, 2, 4};
    (void)state;

    for (int mode = 0; mode < 2; mode++) {
        for (size_t ti = 0; ti < 3; ti++) {
            for (size_t wi = 0; wi < 3; wi++) {
                fd_case(Ts[ti], Ws[wi], mode, 1);
            }
        }
    }
}

/* A student weight below the 1e-12 floor: its log term is frozen at
 * log(1e-12) (so the loss does not move when the weight shrinks further)
 * and the log passes no gradient (only the normalizer does, which keeps
 * the gradient bounded instead of ~ A_true / 1e-20). */
static void test_xent_clamp(void **state)
{
    struct lc_test_hy_in in;
    double *q, *k, *fq, *fk, *th, *loss[2], *dfk[2];
    (void)state;

    lc_test_hy_in_make(&in, 1, 6, 1, 1, 4, 6, 2, LC_WINDOW_SLIDING, 77);
    q = lc_test_to_f64(in.q, in.nq);
    k = lc_test_to_f64(in.k, in.nk);
    fq = lc_test_to_f64(in.fq, in.nf);
    fk = lc_test_to_f64(in.fk, in.nf);
    th = lc_test_to_f64(in.theta, 1);
    for (int run = 0; run < 2; run++) {
        /* key 0 is a linear key of rows 2..5, with a weight of ~1e-20 or ~1e-25 */
        for (int e = 0; e < 6; e++) {
            fk[e] = run == 0 ? 1e-20 : 1e-25;
        }
        loss[run] = lc_test_new_f64(in.nm);
        dfk[run] = lc_test_new_f64(in.nf);
        lc_ref_hybrid_xent_f64(loss[run], NULL, dfk[run], NULL, 1.0, q, k, fq, fk, th, &in.s);
    }
    for (int i = 0; i < 6; i++) {
        assert_true(isfinite(loss[0][i]));
        assert_true(fabs(loss[0][i] - loss[1][i]) < 1e-12);
    }
    for (size_t i = 0; i < in.nf; i++) {
        assert_true(isfinite(dfk[0][i]) && fabs(dfk[0][i]) < 1e3);
    }
    assert_int_equal(lc_test_check_close_f64("clamped dfk", dfk[0] + 6, dfk[1] + 6, in.nf - 6,
                                             1e-12, 1e-9),
                     0);
    for (int run = 0; run < 2; run++) {
        free(loss[run]);
        free(dfk[run]);
    }
    free(q);
    free(k);
    free(fq);
    free(fk);
    free(th);
    lc_test_hy_in_free(&in);
}

/* Fills the cpu backend's kernel scratch with NaNs, so that a kernel that
 * reads scratch it did not write first gets caught. */
static void poison_scratch(struct lc_backend *be)
{
    if (be->ops == &lc_cpu_ops) {
        struct lc_cpu_ctx *ctx = be->ctx;
        if (ctx->scratch != NULL) {
            memset(ctx->scratch, 0xff, ctx->scratch_bytes);
        }
    }
}

/* forward, backward and cross-entropy of one backend; the accumulating
 * outputs start from fixed nonzero values */
static void hy_run(struct lc_backend *be, const struct lc_test_hy_in *in, struct lc_test_hy_out *o)
{
    const struct lc_backend_ops *ops = be->ops;
    struct lc_error err = {0};

    lc_test_hy_init_acc(o, in);
    poison_scratch(be);
    ops->hybrid_fwd(be, o->y, o->mx, o->den, in->q, in->k, in->v, in->fq, in->fk, in->theta,
                    &in->s);
    poison_scratch(be);
    ops->hybrid_bwd(be, o->dq, o->dk, o->dv, o->dfq, o->dfk, o->dth, in->dy, o->y, o->mx, o->den,
                    in->q, in->k, in->v, in->fq, in->fk, in->theta, &in->s);
    poison_scratch(be);
    ops->hybrid_xent(be, o->loss, o->xdfq, o->xdfk, o->xdth, 0.75f, in->q, in->k, in->fq, in->fk,
                     in->theta, &in->s);
    assert_int_equal(ops->sync(be, &err), LC_OK);
}

/* Outputs asked for as NULL are skipped without changing the others. */
static void test_cpu_bwd_subsets(void **state)
{
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    struct lc_test_hy_in in;
    struct lc_test_hy_out full, part;
    (void)state;

    lc_test_hy_in_make(&in, 2, 150, 4, 2, 16, 8, 32, LC_WINDOW_SLIDING, 5);
    lc_test_hy_out_alloc(&full, &in);
    lc_test_hy_out_alloc(&part, &in);
    hy_run(cpu, &in, &full);
    memcpy(part.y, full.y, in.nq * sizeof(float));
    memcpy(part.mx, full.mx, in.nm * sizeof(float));
    memcpy(part.den, full.den, in.nm * sizeof(float));
    /* stage 1: feature maps and theta only */
    part.dth[0] = part.dth[1] = part.dth[2] = part.dth[3] = 0.5f;
    lc_cpu_ops.hybrid_bwd(cpu, NULL, NULL, NULL, part.dfq, part.dfk, part.dth, in.dy, full.y,
                          full.mx, full.den, in.q, in.k, in.v, in.fq, in.fk, in.theta, &in.s);
    assert_memory_equal(part.dfq, full.dfq, in.nf * sizeof(float));
    assert_memory_equal(part.dfk, full.dfk, in.nf * sizeof(float));
    assert_memory_equal(part.dth, full.dth, 4 * sizeof(float));
    /* q, k, v only */
    lc_cpu_ops.hybrid_bwd(cpu, part.dq, part.dk, part.dv, NULL, NULL, NULL, in.dy, full.y,
                          full.mx, full.den, in.q, in.k, in.v, in.fq, in.fk, in.theta, &in.s);
    assert_memory_equal(part.dq, full.dq, in.nq * sizeof(float));
    assert_memory_equal(part.dk, full.dk, in.nk * sizeof(float));
    assert_memory_equal(part.dv, full.dv, in.nk * sizeof(float));
    /* the forward without mx, den */
    lc_cpu_ops.hybrid_fwd(cpu, part.y, NULL, NULL, in.q, in.k, in.v, in.fq, in.fk, in.theta,
                          &in.s);
    assert_memory_equal(part.y, full.y, in.nq * sizeof(float));
    lc_test_hy_out_free(&full);
    lc_test_hy_out_free(&part);
    lc_test_hy_in_free(&in);
    lc_test_backend_free(cpu);
}

/* Bit-identical results on 1, 2 and 3 threads, on every kernel set: a
 * shape with more key heads than threads (4 = 2 sequences x 2; on 1 and 2
 * threads the last one's query heads are tasks of their own, on 3 they
 * are not), and one with a single key head of four query heads, which the
 * kernels split into more tasks the more threads there are. */
static void test_cpu_threads(void **state)
{
    static const int shapes[][7] = {{2, 200, 4, 2, 32, 16, 64}, {1, 150, 4, 1, 40, 36, 32}};
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
    const int nisas = lc_test_cpu_isas(isas);
    struct lc_test_hy_in in;
    struct lc_test_hy_out one, other;
    (void)state;

    for (int i = 0; i < nisas; i++) {
        lc_test_set_isa(cpu, isas[i]);
        for (int sh = 0; sh < 2; sh++) {
            const int *k = shapes[sh];
            for (int mode = 0; mode < 2; mode++) {
                lc_test_hy_in_make(&in, k[0], k[1], k[2], k[3], k[4], k[5], k[6], mode,
                                   (uint64_t)(11 + sh));
                lc_test_hy_out_alloc(&one, &in);
                lc_test_hy_out_alloc(&other, &in);
                lc_set_num_threads(1);
                hy_run(cpu, &in, &one);
                for (int nt = 2; nt <= 3; nt++) {
                    lc_set_num_threads(nt);
                    hy_run(cpu, &in, &other);
#define SAME(field, n) lc_test_expect_same(lc_test_isa_name(isas[i]), one.field, other.field, (n))
                    SAME(y, in.nq);
                    SAME(mx, in.nm);
                    SAME(den, in.nm);
                    SAME(dq, in.nq);
                    SAME(dk, in.nk);
                    SAME(dv, in.nk);
                    SAME(dfq, in.nf);
                    SAME(dfk, in.nf);
                    SAME(dth, (size_t)in.s.H);
                    SAME(loss, in.nm);
                    SAME(xdfq, in.nf);
                    SAME(xdfk, in.nf);
                    SAME(xdth, (size_t)in.s.H);
#undef SAME
                }
                lc_set_num_threads(0);
                lc_test_hy_out_free(&one);
                lc_test_hy_out_free(&other);
                lc_test_hy_in_free(&in);
            }
        }
    }
    lc_test_backend_free(cpu);
}

/* --------------------------------------------------------------- decoding */

/* Token by token with a window cache and the linear state, the way each
 * mode needs it: terraced keeps the previous and the current block (up to
 * 2W keys; when a block starts, the block two back moves into the state,
 * and the cache is compacted), sliding keeps the last W keys in a ring
 * (so the cache is out of order once it wraps). */
static void decode_case(struct lc_backend *be, int T, int W, int mode)
{
    const struct lc_backend_ops *ops = be->ops;
    const int H = 4, Hkv = 2, D = 16, F = 8;
    const int cap = mode == LC_WINDOW_SLIDING ? W : 2 * W;
    const size_t kd = (size_t)Hkv * D;
    struct lc_test_hy_in in;
    float *yfull, *ydec, *S, *z, *kc, *vc;
    int ncache = 0;
    char name[96];

    lc_test_hy_in_make(&in, 1, T, H, Hkv, D, F, W, mode, (uint64_t)(T + 7 * W + mode));
    yfull = lc_test_new_f32(in.nq);
    ydec = lc_test_new_f32(in.nq);
    S = lc_test_new_f32((size_t)H * F * D);
    z = lc_test_new_f32((size_t)H * F);
    kc = lc_test_new_f32((size_t)cap * kd);
    vc = lc_test_new_f32((size_t)cap * kd);
    ops->hybrid_fwd(be, yfull, NULL, NULL, in.q, in.k, in.v, in.fq, in.fk, in.theta, &in.s);

    for (int p = 0; p < T; p++) {
        size_t slot;
        if (mode == LC_WINDOW_SLIDING) {
            if (p >= W) {
                const int old = p - W;
                ops->linstate_add(be, S, z, in.fk + (size_t)old * H * F, in.v + (size_t)old * kd,
                                  1, H, Hkv, D, F);
            }
            slot = (size_t)(p % W);
            ncache = p + 1 < W ? p + 1 : W;
        } else {
            if (p % W == 0 && p >= 2 * W) {
                const int old = p - 2 * W;
                ops->linstate_add(be, S, z, in.fk + (size_t)old * H * F, in.v + (size_t)old * kd,
                                  W, H, Hkv, D, F);
                memmove(kc, kc + (size_t)W * kd, (size_t)W * kd * sizeof(float));
                memmove(vc, vc + (size_t)W * kd, (size_t)W * kd * sizeof(float));
                ncache = W;
            }
            slot = (size_t)ncache;
            ncache++;
        }
        memcpy(kc + slot * kd, in.k + (size_t)p * kd, kd * sizeof(float));
        memcpy(vc + slot * kd, in.v + (size_t)p * kd, kd * sizeof(float));
        assert_int_equal(ncache, p - lc_window_start(p, W, mode) + 1);
        poison_scratch(be);
        ops->hybrid_decode(be, ydec + (size_t)p * H * D, in.q + (size_t)p * H * D,
                           in.fq + (size_t)p * H * F, kc, vc, ncache, S, z, in.theta, H, Hkv, D,
                           F);
    }
    snprintf(name, sizeof(name), "%s decode T %d W %d mode %d", ops->name, T, W, mode);
    assert_int_equal(lc_test_check_rel(name, ydec, yfull, in.nq, 1e-5), 0);
    free(yfull);
    free(ydec);
    free(S);
    free(z);
    free(kc);
    free(vc);
    lc_test_hy_in_free(&in);
}

static void test_decode(void **state)
{
    static const int Ts[] = {1, 63, 64, 65, 300};
    struct lc_backend *bes[2];
    (void)state;

    bes[0] = lc_test_backend(&lc_ref_ops);
    bes[1] = lc_test_backend(&lc_cpu_ops);
    for (int bi = 0; bi < 2; bi++) {
        for (int mode = 0; mode < 2; mode++) {
            for (size_t ti = 0; ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
                decode_case(bes[bi], Ts[ti], 64, mode);
            }
            decode_case(bes[bi], 40, 3, mode);
            decode_case(bes[bi], 9, 1, mode);
        }
    }
    lc_test_backend_free(bes[0]);
    lc_test_backend_free(bes[1]);
}

/* hybrid_decode large enough for a team (one KV head per thread; one
 * thread takes all heads at once): the same bits on 1 and 2 threads, for
 * every ISA, and close to the reference. */
static void test_decode_threads(void **state)
{
    const int H = 8, Hkv = 2, D = 64, F = 32, n = 200;
    struct lc_backend *ref = lc_test_backend(&lc_ref_ops);
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
    const int nisas = lc_test_cpu_isas(isas);
    float *q = lc_test_new_uniform((size_t)H * D, 31, -1.0f, 1.0f);
    float *fq = lc_test_new_uniform((size_t)H * F, 32, 0.0f, 0.2f);
    float *kc = lc_test_new_uniform((size_t)n * Hkv * D, 33, -1.0f, 1.0f);
    float *vc = lc_test_new_uniform((size_t)n * Hkv * D, 34, -1.0f, 1.0f);
    float *th = lc_test_new_uniform((size_t)H, 35, -2.0f, 2.0f);
    float *S = lc_test_new_uniform((size_t)H * F * D, 36, -1.0f, 1.0f);
    float *z = lc_test_new_uniform((size_t)H * F, 37, 0.0f, 2.0f);
    float *want = lc_test_new_f32((size_t)H * D), *one = lc_test_new_f32((size_t)H * D);
    float *two = lc_test_new_f32((size_t)H * D);
    (void)state;

    lc_ref_ops.hybrid_decode(ref, want, q, fq, kc, vc, n, S, z, th, H, Hkv, D, F);
    for (int i = 0; i < nisas; i++) {
        lc_test_set_isa(cpu, isas[i]);
        lc_set_num_threads(1);
        lc_cpu_ops.hybrid_decode(cpu, one, q, fq, kc, vc, n, S, z, th, H, Hkv, D, F);
        lc_set_num_threads(2);
        lc_cpu_ops.hybrid_decode(cpu, two, q, fq, kc, vc, n, S, z, th, H, Hkv, D, F);
        lc_test_expect_same(lc_test_isa_name(isas[i]), one, two, (size_t)H * D);
        assert_int_equal(lc_test_check_rel("decode y", one, want, (size_t)H * D, 1e-5), 0);
    }
    lc_set_num_threads(0);
    free(q);
    free(fq);
    free(kc);
    free(vc);
    free(th);
    free(S);
    free(z);
    free(want);
    free(one);
    free(two);
    lc_test_backend_free(ref);
    lc_test_backend_free(cpu);
}

/* ---------------------------------------------------------------- golden */

static const float *golden(const struct lc_st_file *f, const char *name, int64_t numel)
{
    const struct lc_tensor_view *t = lc_st_find(f, name);

    if (t == NULL) {
        fail_msg("%s: no tensor %s", lc_st_path(f), name);
    }
    assert_int_equal(t->dtype, LC_DTYPE_F32);
    if (numel >= 0 && t->numel != numel) {
        fail_msg("%s: %s has %lld values, want %lld", lc_st_path(f), name, (long long)t->numel,
                 (long long)numel);
    }
    return t->data;
}

static size_t golden_check(const char *tag, const char *what, const float *got, const float *want,
                           size_t n)
{
    char name[160];

    const double scale = lc_test_max_abs(want, n);

    /* absolute 1e-5 for tensors of size ~1 and below, relative above */
    snprintf(name, sizeof(name), "%s %s", tag, what);
    return lc_test_check_close(name, got, want, n, 1e-5 * (scale > 1.0 ? scale : 1.0), 1e-5);
}

/* One backend on one (mode, n) case: feature maps from W_q, W_k, the
 * attention forward and backward, the chain back through the feature maps
 * (dq and dk include the path through phi), and the cross-entropy. */
static size_t golden_case(struct lc_backend *be, const struct lc_st_file *f, const char *mode_name,
                          int mode, int n, int H, int Hkv, int D, int fd, int W, const char *isa)
{
    const struct lc_backend_ops *ops = be->ops;
    const int F = 2 * fd;
    const struct lc_attn_shape s = {1, n, H, Hkv, D, F, W, mode};
    const size_t nq = (size_t)n * H * D, nk = (size_t)n * Hkv * D, nf = (size_t)n * H * F;
    const size_t nw = (size_t)H * D * fd;
    const float *q = golden(f, "q", -1), *k = golden(f, "k", -1), *v = golden(f, "v", -1);
    const float *dy = golden(f, "dy", -1), *Wq = golden(f, "W_q", (int64_t)nw);
    const float *Wk = golden(f, "W_k", (int64_t)nw), *theta = golden(f, "theta", H);
    float *fq = lc_test_new_f32(nf), *fk = lc_test_new_f32(nf), *y = lc_test_new_f32(nq);
    float *mx = lc_test_new_f32((size_t)n * H);
    float *den = lc_test_new_f32((size_t)n * H), *dq = lc_test_new_f32(nq);
    float *dk = lc_test_new_f32(nk), *dv = lc_test_new_f32(nk);
    float *dfq = lc_test_new_f32(nf), *dfk = lc_test_new_f32(nf), *dWq = lc_test_new_f32(nw);
    float *dWk = lc_test_new_f32(nw);
    float *dth = lc_test_new_f32((size_t)H), *rows = lc_test_new_f32((size_t)n * H);
    float *xdWq = lc_test_new_f32(nw), *xdWk = lc_test_new_f32(nw);
    float *xdth = lc_test_new_f32((size_t)H);
    char tag[96], key[96];
    size_t bad = 0;

    snprintf(tag, sizeof(tag), "golden %s%s%s %s n %d", ops->name, isa ? " " : "", isa ? isa : "",
             mode_name, n);
    ops->fmap_fwd(be, fq, q, Wq, n, H, H, D, fd, 1e-12f);
    ops->fmap_fwd(be, fk, k, Wk, n, H, Hkv, D, fd, 1e-12f);
    bad += golden_check(tag, "fq", fq, golden(f, "fq", -1), nf);
    bad += golden_check(tag, "fk", fk, golden(f, "fk", -1), nf);

    ops->hybrid_fwd(be, y, mx, den, q, k, v, fq, fk, theta, &s);
    snprintf(key, sizeof(key), "%s.y", mode_name);
    bad += golden_check(tag, "y", y, golden(f, key, -1), nq);
    ops->hybrid_bwd(be, dq, dk, dv, dfq, dfk, dth, dy, y, mx, den, q, k, v, fq, fk, theta, &s);
    ops->fmap_bwd(be, dWq, dq, dfq, q, Wq, n, H, H, D, fd, 1e-12f);
    ops->fmap_bwd(be, dWk, dk, dfk, k, Wk, n, H, Hkv, D, fd, 1e-12f);
#define GOLD(field, what, count)                                                           \
    do {                                                                                   \
        snprintf(key, sizeof(key), "%s.n%d.%s", mode_name, n, what);                       \
        bad += golden_check(tag, what, field, golden(f, key, (int64_t)(count)), count);    \
    } while (0)
    GOLD(dq, "dq", nq);
    GOLD(dk, "dk", nk);
    GOLD(dv, "dv", nk);
    GOLD(dWq, "dW_q", nw);
    GOLD(dWk, "dW_k", nw);

    memset(dfq, 0, nf * sizeof(float));
    memset(dfk, 0, nf * sizeof(float));
    ops->hybrid_xent(be, rows, dfq, dfk, xdth, 1.0f, q, k, fq, fk, theta, &s);
    ops->fmap_bwd(be, xdWq, NULL, dfq, q, Wq, n, H, H, D, fd, 1e-12f);
    ops->fmap_bwd(be, xdWk, NULL, dfk, k, Wk, n, H, Hkv, D, fd, 1e-12f);
    snprintf(key, sizeof(key), "%s.xent_rows", mode_name);
    bad += golden_check(tag, "xent rows", rows, golden(f, key, -1), (size_t)n * H);
    GOLD(xdWq, "xent_dW_q", nw);
    GOLD(xdWk, "xent_dW_k", nw);
#undef GOLD
    {
        /* dtheta: a sum over all rows, exactly 0 (rounding noise) when no
         * key is linear; absolute tolerance scaled as in hy_compare */
        const double rows_scale = 1e-5 * sqrt((double)n);
        snprintf(key, sizeof(key), "%s.n%d.dtheta", mode_name, n);
        snprintf(tag + strlen(tag), sizeof(tag) - strlen(tag), " dtheta");
        bad += lc_test_check_close(tag, dth, golden(f, key, H), (size_t)H, rows_scale, 1e-5);
        snprintf(key, sizeof(key), "%s.n%d.xent_dtheta", mode_name, n);
        bad += lc_test_check_close(tag, xdth, golden(f, key, H), (size_t)H,
                                   rows_scale * 10.0, 1e-5);
    }

    free(fq);
    free(fk);
    free(y);
    free(mx);
    free(den);
    free(dq);
    free(dk);
    free(dv);
    free(dfq);
    free(dfk);
    free(dWq);
    free(dWk);
    free(dth);
    free(rows);
    free(xdWq);
    free(xdWk);
    free(xdth);
    return bad;
}

static void test_golden(void **state)
{
    static const int ns[] = {1, 5, 63, 64, 65, 200};
    static const char *const modes[] = {"terraced", "sliding"};
    const char *path = lc_test_project_path("ref/hybrid_golden.safetensors");
    struct lc_backend *ref = lc_test_backend(&lc_ref_ops);
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    struct lc_cpu_ctx *ctx = cpu->ctx;
    const enum lc_cpu_isa best = lc_cpu_detect_isa();
    enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
    const int nisas = lc_test_cpu_isas(isas);
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *tw, *tk;
    const char *meta, *wpos;
    int H, Hkv, D, fd, W;
    size_t bad = 0;
    (void)state;

    if (lc_st_open(&f, path, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    tw = lc_st_find(f, "W_q");
    tk = lc_st_find(f, "k");
    assert_non_null(tw);
    assert_non_null(tk);
    assert_int_equal(tw->ndim, 3);
    assert_int_equal(tk->ndim, 4);
    H = (int)tw->shape[0];
    D = (int)tw->shape[1];
    fd = (int)tw->shape[2];
    Hkv = (int)tk->shape[2];
    assert_int_equal(tk->shape[1], 200);
    meta = lc_st_metadata(f, "hybrid_golden");
    assert_non_null(meta);
    wpos = strstr(meta, "window=");
    assert_non_null(wpos);
    W = atoi(wpos + strlen("window="));
    assert_int_equal(W, 64);

    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
            bad += golden_case(ref, f, modes[m], m, ns[i], H, Hkv, D, fd, W, NULL);
            for (int ii = 0; ii < nisas; ii++) {
                const enum lc_cpu_isa isa = isas[ii];
                ctx->isa = isa;
                bad += golden_case(cpu, f, modes[m], m, ns[i], H, Hkv, D, fd, W,
                                   lc_test_isa_name(isa));
            }
            ctx->isa = best;
        }
    }
    assert_int_equal(bad, 0);
    lc_st_close(f);
    lc_test_backend_free(ref);
    lc_test_backend_free(cpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_start),
        cmocka_unit_test(test_ref_matches_explicit_sets),
        cmocka_unit_test(test_fd_hybrid),
        cmocka_unit_test(test_fd_xent),
        cmocka_unit_test(test_xent_clamp),
        cmocka_unit_test(test_cpu_bwd_subsets),
        cmocka_unit_test(test_cpu_threads),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_threads),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
