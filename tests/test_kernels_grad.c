/*
 * The backward reference kernels against finite differences of their
 * forwards, in double precision on tiny shapes, and AdamW against a
 * two-step example worked out by hand.
 *
 * Every check uses a scalar loss L = sum(g .* out) with a random cotangent
 * g, so that the backward called with dout = g must return dL/dinput.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/ref/ref_f64.h"
#include "tests/lc_test.h"

/* central differences with step h: the truncation error h^2 f'''/6 and the
 * rounding error 1e-16 |L| / h both stay far below the tolerances */
#define FD_STEP 1e-5
#define FD_RTOL 1e-6
#define FD_ATOL 1e-9

static void fill_f64(double *x, size_t n, uint64_t seed, double lo, double hi)
{
    float *tmp = lc_test_new_f32(n);
    lc_test_fill_uniform(tmp, n, seed, (float)lo, (float)hi);
    for (size_t i = 0; i < n; i++) {
        x[i] = tmp[i];
    }
    free(tmp);
}

static double dot_f64(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* grad[i] against (L(x + h e_i) - L(x - h e_i)) / 2h, x perturbed in place */
static void check_fd(const char *name, loss_fn loss, void *ctx, double *x, size_t n,
                     const double *grad, double h)
{
    double *fd = lc_test_new_f64(n);

    for (size_t i = 0; i < n; i++) {
        double xi = x[i];
        double lp;
        double lm;
        x[i] = xi + h;
        lp = loss(ctx);
        x[i] = xi - h;
        lm = loss(ctx);
        x[i] = xi;
        fd[i] = (lp - lm) / (2 * h);
    }
    assert_int_equal(lc_test_check_close_f64(name, grad, fd, n, FD_ATOL, FD_RTOL), 0);
    free(fd);
}

/* ---------------------------------------------------------------- RMSNorm */

struct rms_case {
    int N, C;
    double eps;
    double *x, *w, *g, *out, *rstd;
};

static double rms_loss(void *p)
{
    struct rms_case *c = p;
    lc_ref_rmsnorm_fwd_f64(NULL, c->out, c->rstd, c->x, c->w, c->N, c->C, c->eps);
    return dot_f64(c->g, c->out, (size_t)c->N * c->C);
}

static void test_fd_rmsnorm(void **state)
{
    struct rms_case c = {.N = 3, .C = 7, .eps = 1e-5};
    size_t n;
    double *dx = NULL;
    double *dw = NULL;

    (void)state;
    n = (size_t)c.N * c.C;
    c.x = lc_test_new_f64(n);
    c.w = lc_test_new_f64(c.C);
    c.g = lc_test_new_f64(n);
    c.out = lc_test_new_f64(n);
    c.rstd = lc_test_new_f64(c.N);
    dx = lc_test_new_f64(n);
    dw = lc_test_new_f64(c.C);
    fill_f64(c.x, n, 1, -2, 2);
    fill_f64(c.w, c.C, 2, 0.5, 1.5);
    fill_f64(c.g, n, 3, -1, 1);
    /* a row of tiny values, where eps matters */
    for (int i = 0; i < c.C; i++) {
        c.x[i] *= 1e-3;
    }

    rms_loss(&c);
    /* "+=": start from 1 and take it off again */
    for (size_t i = 0; i < n; i++) {
        dx[i] = 1;
    }
    lc_ref_rmsnorm_bwd_f64(NULL, dx, dw, c.g, c.x, c.w, c.rstd, c.N, c.C);
    for (size_t i = 0; i < n; i++) {
        dx[i] -= 1;
    }
    check_fd("rmsnorm dx", rms_loss, &c, c.x, n, dx, FD_STEP * 1e-3);
    check_fd("rmsnorm dw", rms_loss, &c, c.w, c.C, dw, FD_STEP);

    /* dw is nullable and dx does not depend on it */
    memset(dw, 0, c.C * sizeof(double));
    rms_loss(&c);
    lc_ref_rmsnorm_bwd_f64(NULL, dw, NULL, c.g, c.x, c.w, c.rstd, 1, c.C);
    assert_true(fabs(dw[0] - dx[0]) <= 1e-15 * (1 + fabs(dx[0])));

    free(c.x);
    free(c.w);
    free(c.g);
    free(c.out);
    free(c.rstd);
    free(dx);
    free(dw);
}

/* ------------------------------------------------------------------- RoPE */

struct rope_case {
    int N, nh, D;
    const int32_t *pos;
    const float *cos_tab, *sin_tab;
    double *x, *g, *tmp;
};

static double rope_loss(void *p)
{
    struct rope_case *c = p;
    size_t n = (size_t)c->N * c->nh * c->D;
    memcpy(c->tmp, c->x, n * sizeof(double));
    lc_ref_rope_fwd_f64(NULL, c->tmp, c->pos, c->cos_tab, c->sin_tab, c->N, c->nh, c->D);
    return dot_f64(c->g, c->tmp, n);
}

/* cos/sin tables [P, D/2] as Hugging Face builds them (theta 10000) */
static void rope_tables(float *cos_tab, float *sin_tab, int P, int D)
{
    for (int p = 0; p < P; p++) {
        for (int i = 0; i < D / 2; i++) {
            double freq = pow(10000.0, -2.0 * i / D);
            cos_tab[p * (D / 2) + i] = (float)cos(p * freq);
            sin_tab[p * (D / 2) + i] = (float)sin(p * freq);
        }
    }
}

static void test_fd_rope(void **state)
{
    /* positions out of order and repeated, as in packed sequences */
    static const int32_t pos[] = {5, 0, 3, 3, 11};
    struct rope_case c = {.N = 5, .nh = 2, .D = 6, .pos = pos};
    float cos_tab[12 * 3];
    float sin_tab[12 * 3];
    size_t n;
    double *dx = NULL;
    double *back = NULL;

    (void)state;
    rope_tables(cos_tab, sin_tab, 12, c.D);
    c.cos_tab = cos_tab;
    c.sin_tab = sin_tab;
    n = (size_t)c.N * c.nh * c.D;
    c.x = lc_test_new_f64(n);
    c.g = lc_test_new_f64(n);
    c.tmp = lc_test_new_f64(n);
    dx = lc_test_new_f64(n);
    back = lc_test_new_f64(n);
    fill_f64(c.x, n, 4, -1, 1);
    fill_f64(c.g, n, 5, -1, 1);

    memcpy(dx, c.g, n * sizeof(double));
    lc_ref_rope_bwd_f64(NULL, dx, pos, cos_tab, sin_tab, c.N, c.nh, c.D);
    check_fd("rope dx", rope_loss, &c, c.x, n, dx, FD_STEP);

    /* the backward is also the inverse: it undoes the forward */
    memcpy(back, c.x, n * sizeof(double));
    lc_ref_rope_fwd_f64(NULL, back, pos, cos_tab, sin_tab, c.N, c.nh, c.D);
    lc_ref_rope_bwd_f64(NULL, back, pos, cos_tab, sin_tab, c.N, c.nh, c.D);
    assert_int_equal(lc_test_check_close_f64("rope inverse", back, c.x, n, 1e-7, 0), 0);

    free(c.x);
    free(c.g);
    free(c.tmp);
    free(dx);
    free(back);
}

/* ----------------------------------------------------------------- SwiGLU */

struct swiglu_case {
    int64_t n;
    double *gate, *up, *g, *out;
};

static double swiglu_loss(void *p)
{
    struct swiglu_case *c = p;
    lc_ref_swiglu_fwd_f64(NULL, c->out, c->gate, c->up, c->n);
    return dot_f64(c->g, c->out, (size_t)c->n);
}

static void test_fd_swiglu(void **state)
{
    struct swiglu_case c = {.n = 23};
    double *dgate = NULL;
    double *dup = NULL;

    (void)state;
    c.gate = lc_test_new_f64(c.n);
    c.up = lc_test_new_f64(c.n);
    c.g = lc_test_new_f64(c.n);
    c.out = lc_test_new_f64(c.n);
    dgate = lc_test_new_f64(c.n);
    dup = lc_test_new_f64(c.n);
    fill_f64(c.gate, c.n, 6, -6, 6);
    fill_f64(c.up, c.n, 7, -2, 2);
    fill_f64(c.g, c.n, 8, -1, 1);

    lc_ref_swiglu_bwd_f64(NULL, dgate, dup, c.g, c.gate, c.up, c.n);
    check_fd("swiglu dgate", swiglu_loss, &c, c.gate, c.n, dgate, FD_STEP);
    check_fd("swiglu dup", swiglu_loss, &c, c.up, c.n, dup, FD_STEP);

    free(c.gate);
    free(c.up);
    free(c.g);
    free(c.out);
    free(dgate);
    free(dup);
}

/* ----------------------------------------------------------------- linear */

struct linear_case {
    int N, K, M;
    const void *w;
    enum lc_dtype wtype;
    double *x, *g, *y;
};

static double linear_loss(void *p)
{
    struct linear_case *c = p;
    lc_ref_linear_fwd_f64(NULL, c->y, c->x, c->w, c->wtype, c->N, c->K, c->M, 0);
    return dot_f64(c->g, c->y, (size_t)c->N * c->M);
}

static void test_fd_linear(void **state)
{
    struct linear_case c = {.N = 3, .K = 5, .M = 4};
    float w32[4 * 5];
    uint16_t w16[4 * 5];
    double *dx = NULL;

    (void)state;
    c.x = lc_test_new_f64((size_t)c.N * c.K);
    c.g = lc_test_new_f64((size_t)c.N * c.M);
    c.y = lc_test_new_f64((size_t)c.N * c.M);
    dx = lc_test_new_f64((size_t)c.N * c.K);
    lc_test_fill_uniform(w32, 20, 9, -1, 1);
    for (int i = 0; i < 20; i++) {
        w16[i] = lc_f32_to_bf16(w32[i]);
    }
    fill_f64(c.x, (size_t)c.N * c.K, 10, -1, 1);
    fill_f64(c.g, (size_t)c.N * c.M, 11, -1, 1);

    for (int variant = 0; variant < 2; variant++) {
        c.w = variant == 0 ? (const void *)w32 : (const void *)w16;
        c.wtype = variant == 0 ? LC_DTYPE_F32 : LC_DTYPE_BF16;
        /* beta = 0 overwrites whatever dx held, even NaN */
        for (int i = 0; i < c.N * c.K; i++) {
            dx[i] = NAN;
        }
        lc_ref_linear_bwd_f64(NULL, dx, c.g, c.w, c.wtype, c.N, c.K, c.M, 0);
        check_fd("linear dx", linear_loss, &c, c.x, (size_t)c.N * c.K, dx, FD_STEP);
    }

    free(c.x);
    free(c.g);
    free(c.y);
    free(dx);
}

/* -------------------------------------------------------------- embedding */

struct emb_case {
    int N, C;
    const int32_t *ids;
    float *table;
    double *g, *out;
};

static double emb_loss(void *p)
{
    struct emb_case *c = p;
    lc_ref_embedding_fwd_f64(NULL, c->out, c->ids, c->table, LC_DTYPE_F32, c->N, c->C);
    return dot_f64(c->g, c->out, (size_t)c->N * c->C);
}

static void test_fd_embedding(void **state)
{
    /* repeated ids accumulate; id 3 is never used and gets no gradient */
    static const int32_t ids[] = {2, 0, 2, 4, 1, 2};
    struct emb_case c = {.N = 6, .C = 3, .ids = ids};
    enum { V = 5 };
    double *dtable = NULL;
    double *tab64 = NULL;
    double *fd = NULL;
    const double h = 0x1p-6; /* exact on a table quantized to 2^-6 */

    (void)state;
    c.table = lc_test_new_f32((size_t)V * c.C);
    c.g = lc_test_new_f64((size_t)c.N * c.C);
    c.out = lc_test_new_f64((size_t)c.N * c.C);
    dtable = lc_test_new_f64((size_t)V * c.C);
    tab64 = lc_test_new_f64((size_t)V * c.C);
    fd = lc_test_new_f64((size_t)V * c.C);
    lc_test_fill_uniform(c.table, (size_t)V * c.C, 12, -1, 1);
    for (int i = 0; i < V * c.C; i++) {
        c.table[i] = roundf(c.table[i] * 64) / 64;
    }
    fill_f64(c.g, (size_t)c.N * c.C, 13, -1, 1);

    lc_ref_embedding_bwd_f64(NULL, dtable, c.g, ids, c.N, c.C, V);
    /* the table is float storage: difference it with an exact step */
    for (int i = 0; i < V * c.C; i++) {
        float ti = c.table[i];
        double lp;
        double lm;
        c.table[i] = (float)(ti + h);
        lp = emb_loss(&c);
        c.table[i] = (float)(ti - h);
        lm = emb_loss(&c);
        c.table[i] = ti;
        fd[i] = (lp - lm) / (2 * h);
    }
    assert_int_equal(lc_test_check_close_f64("embedding dtable", dtable, fd, (size_t)V * c.C,
                                             FD_ATOL, FD_RTOL),
                     0);
    for (int i = 0; i < c.C; i++) {
        assert_true(dtable[3 * c.C + i] == 0);
    }

    free(c.table);
    free(c.g);
    free(c.out);
    free(dtable);
    free(tab64);
    free(fd);
}

/* ----------------------------------------------------------------- losses */

struct xent_case {
    int N, V;
    const int32_t *targets;
    double scale;
    double *logits, *loss;
};

static double xent_loss(void *p)
{
    struct xent_case *c = p;
    double s = 0;
    lc_ref_xent_fwd_bwd_f64(NULL, c->loss, NULL, c->logits, c->targets, c->N, c->V, 0);
    for (int n = 0; n < c->N; n++) {
        s += c->loss[n];
    }
    return c->scale * s;
}

static void test_fd_xent(void **state)
{
    static const int32_t targets[] = {3, -1, 0, 6};
    struct xent_case c = {.N = 4, .V = 7, .targets = targets, .scale = 0.25};
    size_t n;
    double *dl = NULL;
    double *inplace = NULL;
    double *loss2 = NULL;

    (void)state;
    n = (size_t)c.N * c.V;
    c.logits = lc_test_new_f64(n);
    c.loss = lc_test_new_f64(c.N);
    dl = lc_test_new_f64(n);
    inplace = lc_test_new_f64(n);
    loss2 = lc_test_new_f64(c.N);
    fill_f64(c.logits, n, 14, -4, 4);
    /* a large offset: logsumexp must subtract the max */
    for (int j = 0; j < c.V; j++) {
        c.logits[2 * c.V + j] += 800;
    }

    lc_ref_xent_fwd_bwd_f64(NULL, c.loss, dl, c.logits, targets, c.N, c.V, c.scale);
    assert_true(c.loss[1] == 0);
    for (int j = 0; j < c.V; j++) {
        assert_true(dl[c.V + j] == 0);
    }
    check_fd("xent dlogits", xent_loss, &c, c.logits, n, dl, FD_STEP);

    /* in place: the gradient overwrites the logits, same numbers */
    lc_ref_xent_fwd_bwd_f64(NULL, c.loss, NULL, c.logits, targets, c.N, c.V, 0);
    memcpy(inplace, c.logits, n * sizeof(double));
    lc_ref_xent_fwd_bwd_f64(NULL, loss2, inplace, inplace, targets, c.N, c.V, c.scale);
    assert_memory_equal(inplace, dl, n * sizeof(double));
    assert_memory_equal(loss2, c.loss, c.N * sizeof(double));

    free(c.logits);
    free(c.loss);
    free(dl);
    free(inplace);
    free(loss2);
}

struct mse_case {
    int rows, cols;
    double scale;
    double *pred, *target, *sse;
};

static double mse_loss(void *p)
{
    struct mse_case *c = p;
    double s = 0;
    lc_ref_mse_fwd_bwd_f64(NULL, c->sse, NULL, c->pred, c->target, c->rows, c->cols, 0);
    for (int r = 0; r < c->rows; r++) {
        s += c->sse[r];
    }
    return c->scale * s;
}

static void test_fd_mse(void **state)
{
    struct mse_case c = {.rows = 3, .cols = 5, .scale = 1.5};
    size_t n;
    double *dpred = NULL;

    (void)state;
    n = (size_t)c.rows * c.cols;
    c.pred = lc_test_new_f64(n);
    c.target = lc_test_new_f64(n);
    c.sse = lc_test_new_f64(c.rows);
    dpred = lc_test_new_f64(n);
    fill_f64(c.pred, n, 15, -1, 1);
    fill_f64(c.target, n, 16, -1, 1);

    lc_ref_mse_fwd_bwd_f64(NULL, c.sse, dpred, c.pred, c.target, c.rows, c.cols, c.scale);
    check_fd("mse dpred", mse_loss, &c, c.pred, n, dpred, FD_STEP);

    free(c.pred);
    free(c.target);
    free(c.sse);
    free(dpred);
}

/* ------------------------------------------------------------------ AdamW */

/* Two steps on one parameter, lr 0.1, betas (0.9, 0.999), eps 1e-8,
 * weight decay 0.01, worked by hand:
 *
 * step 1, g = 0.5:
 *   p = 1 * (1 - 0.1*0.01) = 0.999
 *   m = 0.1 * 0.5 = 0.05,  v = 0.001 * 0.25 = 2.5e-4
 *   bc1 = 0.1, bc2 = 0.001: m / bc1 = 0.5, sqrt(v / bc2) = 0.5
 *   p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899000002 (to 1e-9)
 * step 2, g = -0.25:
 *   p = 0.899000002 * 0.999 = 0.898101002
 *   m = 0.9*0.05 - 0.1*0.25 = 0.02
 *   v = 0.999*2.5e-4 + 0.001*0.0625 = 3.1225e-4
 *   bc1 = 0.19, bc2 = 0.001999
 *   m / bc1 = 0.105263158, sqrt(v / bc2) = sqrt(0.156203102) = 0.395225381
 *   p = 0.898101002 - 0.1 * 0.105263158 / 0.395225391 = 0.871467299
 */
static void test_adamw_two_steps(void **state)
{
    float p = 1.0f;
    float m = 0.0f;
    float v = 0.0f;
    float g = 0.5f;
    double p64 = 1.0;
    double m64 = 0.0;
    double v64 = 0.0;
    double g64 = 0.5;

    (void)state;
    lc_ref_adamw(NULL, &p, &g, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1);
    lc_ref_adamw_f64(NULL, &p64, &g64, &m64, &v64, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1);
    assert_true(fabs(p - 0.899000002) < 1e-7);
    assert_true(fabs(m - 0.05) < 1e-9);
    assert_true(fabs(v - 2.5e-4) < 5e-11);
    assert_true(fabs(p64 - 0.899000002) < 1e-9);

    g = -0.25f;
    g64 = -0.25;
    lc_ref_adamw(NULL, &p, &g, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 2);
    lc_ref_adamw_f64(NULL, &p64, &g64, &m64, &v64, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 2);
    assert_true(fabs(m - 0.02) < 5e-9);
    assert_true(fabs(v - 3.1225e-4) < 5e-11);
    assert_true(fabs(p - 0.871467299) < 2e-7);
    assert_true(fabs(p64 - 0.871467299) < 2e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_rmsnorm),   cmocka_unit_test(test_fd_rope),
        cmocka_unit_test(test_fd_swiglu),    cmocka_unit_test(test_fd_linear),
        cmocka_unit_test(test_fd_embedding), cmocka_unit_test(test_fd_xent),
        cmocka_unit_test(test_fd_mse),       cmocka_unit_test(test_adamw_two_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
