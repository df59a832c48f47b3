/*
 * Every compute entry of the backend table, on every backend of the build,
 * against the reference: one row per entry (below, in table order).
 *
 * A row names its entry and has an input maker (the case: seeded host
 * arrays, scalars, and the tolerance of each output; one call per shape,
 * variant 0, 1, ... until it says there are no more), the call through
 * ops->, and, where there is one, the same call on the double-precision
 * reference.  The harness uploads the inputs to each backend, runs the
 * call, downloads the outputs and compares them with what the ref backend
 * gives for the same case (moved through its own upload and download), and
 * the ref backend with the double-precision reference.  The backends are
 * those of lc_backend_list() (a cuda build without a device says so and
 * skips cuda), the cpu backend once per instruction set (generic, and each
 * vector set built and supported), and, built as test_backend_ops_emu,
 * the cuda backend under the CPU emulation of CUDA for the rows whose
 * kernels the emulation builds.  A table entry without a row fails, by
 * name.
 *
 * A case may ask for a second run on each backend, which must give the
 * same bits (sums in a fixed order).  A cuda device runs its fp32 paths
 * (LC_CUDA_ATTN=fp32, no TF32), as these tolerances assume.
 *
 * Outputs ("=") start as NaN, so an element a kernel forgets shows;
 * accumulated outputs ("+=") start from seeded values.  Operations whose
 * order of summation is fixed by the contract (gathers, the embedding
 * scatter-add, dropout, add) must agree to the bit.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/ref/ref.h"
#include "core/ref/ref_f64.h"
#include "core/ref/ref_hybrid_f64.h"
#include "tests/lc_test.h"
#include "tests/lc_test_hybrid.h"

#ifdef LC_CUDA_EMU
#include "backend-cuda/cuda_kernels.h"
#endif

#define MAX_ARGS 28
#define MAX_SAME 10

enum arg_dir {
    ARG_IN,  /* read only */
    ARG_OUT, /* "=": starts as NaN */
    ARG_ACC, /* "+=", or updated in place: starts from the host values */
};

enum arg_cmp {
    CMP_CLOSE, /* |got - want| <= atol + rtol |want| */
    CMP_REL,   /* the same with atol = atol * max|want| (lc_test_check_rel) */
    CMP_EXACT, /* the same bits */
    CMP_SUM,   /* a sum over all B*T rows of s (dtheta): atol * sqrt(B*T) * max(1, max|want|) */
};

struct arg {
    const char *name;
    enum arg_dir dir;
    int f32; /* fp32 data: NaN-filled when an output, widened for the double reference */
    size_t bytes;
    void *host; /* IN, ACC: the values the call starts from (owned) */
    enum arg_cmp cmp;
    double atol, rtol;  /* a backend against ref (and against double where vs64) */
    int ref64;          /* ref is compared with the double reference, */
    enum arg_cmp cmp64; /* under this rule */
    double atol64, rtol64;
    int has_dev; /* backends on a device (cuda) get these tolerances instead */
    double dev_atol, dev_rtol;
    int vs64;           /* the backends are also compared with the double reference */
    int only64;         /* compared with the double reference only (not with ref) */
    int vs_start;       /* compared with its starting values instead (an identity) */
    int unchanged;      /* an input every backend must leave as it was */
    int unchecked;      /* not compared with ref (state, or compared in a pair) */
    int first_exact;    /* element 0 equals ref's on every backend (an ignored row's 0) */
    int rows, cols, ld; /* ld > cols: a strided matrix whose padding must be left alone */
};

struct opcase {
    char what[200];
    struct arg a[MAX_ARGS];
    int na;
    int same[MAX_SAME][2]; /* pairs of outputs that must have the same bits */
    int nsame;
    int near[MAX_SAME][2]; /* pairs within the first one's tolerance of each other */
    int nnear;
    int twice; /* every backend runs the case twice: the same bits both times */
    int i[10];
    float f[3];
    double d[6];
    uint64_t seed;
    enum lc_dtype type;
    struct lc_attn_shape s;
};

struct row {
    const char *entry;
    /* fills c for variant v; 0 when there is no variant v */
    int (*make)(struct opcase *c, int v);
    void (*call)(struct lc_backend *be, const struct opcase *c, void **p);
    /* the same on the double reference: fp32 arguments as double arrays */
    void (*call64)(const struct opcase *c, void **p);
    int emulated; /* its cuda kernels are built under the emulation */
};

static struct lc_backend *g_ref; /* the ref backend, for input makers that need a forward */

/* ------------------------------------------------------------ case setup */

static struct arg *add_arg(struct opcase *c, const char *name, enum arg_dir dir, int f32,
                           void *host, size_t bytes)
{
    struct arg *a = &c->a[c->na++];
    assert_true(c->na <= MAX_ARGS);
    memset(a, 0, sizeof(*a));
    a->name = name;
    a->dir = dir;
    a->f32 = f32;
    a->host = host;
    a->bytes = bytes;
    return a;
}

/* an fp32 input (takes x) */
static struct arg *in_f32(struct opcase *c, const char *name, float *x, size_t n)
{
    return add_arg(c, name, ARG_IN, 1, x, n * sizeof(float));
}

/* other input data: ids, weights in their dtype (takes p) */
static struct arg *in_raw(struct opcase *c, const char *name, void *p, size_t bytes)
{
    return add_arg(c, name, ARG_IN, 0, p, bytes);
}

static struct arg *with_tol(struct arg *a, enum arg_cmp cmp, double atol, double rtol)
{
    a->cmp = cmp;
    a->atol = atol;
    a->rtol = rtol;
    return a;
}

/* an fp32 "=" output of n values */
static struct arg *out_f32(struct opcase *c, const char *name, size_t n, enum arg_cmp cmp,
                           double atol, double rtol)
{
    return with_tol(add_arg(c, name, ARG_OUT, 1, NULL, n * sizeof(float)), cmp, atol, rtol);
}

/* an fp32 "+=" or in-place output starting from x (takes x) */
static struct arg *acc_f32(struct opcase *c, const char *name, float *x, size_t n, enum arg_cmp cmp,
                           double atol, double rtol)
{
    return with_tol(add_arg(c, name, ARG_ACC, 1, x, n * sizeof(float)), cmp, atol, rtol);
}

static void ref_vs64(struct arg *a, enum arg_cmp cmp64, double atol64, double rtol64)
{
    a->ref64 = 1;
    a->cmp64 = cmp64;
    a->atol64 = atol64;
    a->rtol64 = rtol64;
}

static struct arg *dev_tol(struct arg *a, double atol, double rtol)
{
    a->has_dev = 1;
    a->dev_atol = atol;
    a->dev_rtol = rtol;
    return a;
}

static void same_bits(struct opcase *c, int a, int b)
{
    assert_true(c->nsame < MAX_SAME);
    c->same[c->nsame][0] = a;
    c->same[c->nsame][1] = b;
    c->nsame++;
}

static void near_pair(struct opcase *c, int a, int b)
{
    assert_true(c->nnear < MAX_SAME);
    c->near[c->nnear][0] = a;
    c->near[c->nnear][1] = b;
    c->nnear++;
}

static void case_free(struct opcase *c)
{
    for (int k = 0; k < c->na; k++) {
        free(c->a[k].host);
    }
    memset(c, 0, sizeof(*c));
}

static int32_t *new_ids(size_t n)
{
    return lc_test_calloc(n, sizeof(int32_t));
}

/* n ids in [0, V) from a seed, with repeats */
static int32_t *uniform_ids(size_t n, uint64_t seed, int V)
{
    int32_t *ids = new_ids(n);
    float *u = lc_test_new_uniform(n, seed, 0.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        int id = (int)(u[i] * (float)V);
        ids[i] = id < V ? id : V - 1;
    }
    free(u);
    return ids;
}

/* ------------------------------------------------------------ harness */

/* The case on backend be, outputs downloaded into out[k] (malloc'd; NULL
 * for inputs). */
static void run_case(const struct row *r, const struct opcase *c, struct lc_backend *be, void **out)
{
    void *p[MAX_ARGS];
    struct lc_error err = {0};

    for (int k = 0; k < c->na; k++) {
        const struct arg *a = &c->a[k];
        p[k] = be->ops->alloc(be, a->bytes + 1);
        if (p[k] == NULL) {
            fail_msg("%s: %s: alloc of %zu bytes failed", be->ops->name, c->what, a->bytes);
        }
        if (a->dir == ARG_OUT) {
            float *nan = lc_test_new_f32(a->bytes / sizeof(float));
            lc_test_fill_nan(nan, a->bytes / sizeof(float));
            be->ops->upload(be, p[k], nan, a->bytes);
            free(nan);
        } else {
            be->ops->upload(be, p[k], a->host, a->bytes);
        }
    }
    if (be->ops == &lc_cpu_ops) {
        /* NaN in the kernel scratch: a kernel that reads scratch it did not
         * write first gets caught.  Past what the kernels asked for since
         * the last fill it still holds NaN, unless the scratch was replaced
         * (grown); refilling only the rest halves this test's time. */
        static const void *filled;
        static size_t filled_bytes;
        struct lc_cpu_ctx *ctx = be->ctx;
        if (ctx->scratch != NULL) {
            size_t n = ctx->scratch_bytes;
            if (ctx->scratch == filled && ctx->scratch_bytes == filled_bytes &&
                ctx->scratch_asked < n) {
                n = ctx->scratch_asked;
            }
            memset(ctx->scratch, 0xff, n);
            filled = ctx->scratch;
            filled_bytes = ctx->scratch_bytes;
            ctx->scratch_asked = 0;
        }
    }
    r->call(be, c, p);
    if (be->ops->sync(be, &err) != LC_OK) {
        fail_msg("%s: %s: %s", be->ops->name, c->what, err.msg);
    }
    for (int k = 0; k < c->na; k++) {
        out[k] = NULL;
        if (c->a[k].dir != ARG_IN || c->a[k].unchanged) {
            out[k] = lc_test_calloc(c->a[k].bytes + 1, 1);
            be->ops->download(be, out[k], p[k], c->a[k].bytes);
        }
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        fail_msg("%s: %s: %s", be->ops->name, c->what, err.msg);
    }
    for (int k = 0; k < c->na; k++) {
        be->ops->release(be, p[k]);
    }
}

/* The double-precision reference of the case: outputs as floats in
 * out64[k] (NULL for inputs, or without a double reference). */
static void run_case64(const struct row *r, const struct opcase *c, float **out64)
{
    void *p[MAX_ARGS];

    for (int k = 0; k < c->na; k++) {
        out64[k] = NULL;
    }
    if (r->call64 == NULL) {
        return;
    }
    for (int k = 0; k < c->na; k++) {
        const struct arg *a = &c->a[k];
        if (!a->f32) {
            p[k] = a->host;
        } else if (a->dir == ARG_OUT) {
            double *d = lc_test_new_f64(a->bytes / sizeof(float));
            for (size_t i = 0; i < a->bytes / sizeof(float); i++) {
                d[i] = NAN;
            }
            p[k] = d;
        } else {
            p[k] = lc_test_to_f64(a->host, a->bytes / sizeof(float));
        }
    }
    r->call64(c, p);
    for (int k = 0; k < c->na; k++) {
        const struct arg *a = &c->a[k];
        if (!a->f32) {
            continue;
        }
        if (a->dir != ARG_IN) {
            const size_t n = a->bytes / sizeof(float);
            out64[k] = lc_test_new_f32(n);
            for (size_t i = 0; i < n; i++) {
                out64[k][i] = (float)((double *)p[k])[i];
            }
        }
        free(p[k]);
    }
}

/* got against want under a's rule (tolerances atol, rtol); returns the
 * number of mismatches */
static size_t compare(const char *name, const struct opcase *c, const struct arg *a,
                      const float *got, const float *want, double atol, double rtol)
{
    const size_t n = a->bytes / sizeof(float);
    size_t bad = 0;

    if (a->cmp == CMP_EXACT) {
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ < 5) {
                fprintf(stderr, "%s: element %zu differs: %.9g vs %.9g\n", name, i, got[i],
                        want[i]);
            }
        }
        return bad;
    }
    if (a->ld > a->cols) {
        /* the rows x cols part by tolerance, the padding as it was */
        const float *init = a->host != NULL ? a->host : want;
        float *gp = lc_test_new_f32((size_t)a->rows * a->cols);
        float *wp = lc_test_new_f32((size_t)a->rows * a->cols);
        for (int r = 0; r < a->rows; r++) {
            const size_t row = (size_t)a->cols * sizeof(float);
            memcpy(gp + (size_t)r * a->cols, got + (size_t)r * a->ld, row);
            memcpy(wp + (size_t)r * a->cols, want + (size_t)r * a->ld, row);
            for (int j = a->cols; j < a->ld && (size_t)r * a->ld + j < n; j++) {
                size_t o = (size_t)r * a->ld + j;
                if (memcmp(&got[o], &init[o], sizeof(float)) != 0 && bad++ < 5) {
                    fprintf(stderr, "%s: padding element %zu was written\n", name, o);
                }
            }
        }
        if (a->cmp == CMP_REL) {
            atol *= lc_test_max_abs(wp, (size_t)a->rows * a->cols);
        }
        bad += lc_test_check_close(name, gp, wp, (size_t)a->rows * a->cols, atol, rtol);
        free(gp);
        free(wp);
        return bad;
    }
    if (a->cmp == CMP_REL) {
        atol *= lc_test_max_abs(want, n);
    }
    if (a->cmp == CMP_SUM) {
        const double m = lc_test_max_abs(want, n);
        atol *= sqrt((double)c->s.B * c->s.T) * (m > 1.0 ? m : 1.0);
    }
    return lc_test_check_close(name, got, want, n, atol, rtol);
}

/* one backend's outputs against the reference's */
static size_t check_backend(const char *tag, int on_device, const struct opcase *c, void **got,
                            void **want, float **want64)
{
    size_t bad = 0;
    char name[1024];

    for (int k = 0; k < c->na; k++) {
        const struct arg *a = &c->a[k];
        const int dev = on_device && a->has_dev;
        const double atol = dev ? a->dev_atol : a->atol;
        const double rtol = dev ? a->dev_rtol : a->rtol;
        if (a->dir == ARG_IN) {
            if (a->unchanged && memcmp(got[k], a->host, a->bytes) != 0) {
                fprintf(stderr, "%s %s: input %s was written\n", tag, c->what, a->name);
                bad++;
            }
            continue;
        }
        snprintf(name, sizeof(name), "%s %s: %s", tag, c->what, a->name);
        if (a->unchecked) {
            continue;
        }
        if (a->vs_start) {
            bad += compare(name, c, a, got[k], a->host, atol, rtol);
        } else if (!a->only64) {
            bad += compare(name, c, a, got[k], want[k], atol, rtol);
        }
        if (a->first_exact && !(*(float *)got[k] == *(float *)want[k])) {
            fprintf(stderr, "%s: element 0 is %.9g, ref's %.9g\n", name, *(float *)got[k],
                    *(float *)want[k]);
            bad++;
        }
        if ((a->vs64 || a->only64) && want64[k] != NULL) {
            snprintf(name, sizeof(name), "%s %s: %s against double", tag, c->what, a->name);
            bad += compare(name, c, a, got[k], want64[k], atol, rtol);
        }
    }
    for (int k = 0; k < c->nsame; k++) {
        const struct arg *a = &c->a[c->same[k][0]];
        struct arg exact = *a;
        exact.cmp = CMP_EXACT;
        snprintf(name, sizeof(name), "%s %s: %s and %s", tag, c->what, a->name,
                 c->a[c->same[k][1]].name);
        bad += compare(name, c, &exact, got[c->same[k][0]], got[c->same[k][1]], 0, 0);
    }
    for (int k = 0; k < c->nnear; k++) {
        const struct arg *a = &c->a[c->near[k][0]];
        snprintf(name, sizeof(name), "%s %s: %s against %s", tag, c->what, a->name,
                 c->a[c->near[k][1]].name);
        bad += compare(name, c, a, got[c->near[k][0]], got[c->near[k][1]], a->atol, a->rtol);
    }
    return bad;
}

/* a second run of the case against the first: the same bits */
static size_t check_twice(const char *tag, const struct opcase *c, void **first, void **again)
{
    size_t bad = 0;
    char name[1024];

    for (int k = 0; k < c->na; k++) {
        struct arg exact = c->a[k];
        if (exact.dir == ARG_IN) {
            continue;
        }
        exact.cmp = CMP_EXACT;
        snprintf(name, sizeof(name), "%s %s: %s, run twice", tag, c->what, exact.name);
        bad += compare(name, c, &exact, again[k], first[k], 0, 0);
    }
    return bad;
}

static void free_outs(const struct opcase *c, void **out)
{
    for (int k = 0; k < c->na; k++) {
        free(out[k]);
        out[k] = NULL;
    }
}

/* the backends a row runs on, besides ref */
struct target {
    char name[64];
    struct lc_backend *be;
    int isa;      /* cpu: the instruction set; -1 otherwise */
    int emulated; /* the cuda backend under the emulation */
};

static struct target g_targets[LC_CPU_ISA_COUNT + 4];
static int g_ntargets;

static int setup(void **state)
{
    (void)state;
    g_ref = lc_test_backend(&lc_ref_ops);
#ifdef LC_CUDA_EMU
    {
        struct target *t = &g_targets[g_ntargets++];
        snprintf(t->name, sizeof(t->name), "cuda (emulated)");
        t->be = lc_test_backend(&lc_cuda_ops);
        /* the fp32 paths, as on a device by default in these comparisons */
        ((struct lc_cuda_ctx *)t->be->ctx)->attn_bf16 = 0;
        t->isa = -1;
        t->emulated = 1;
    }
#else
    /* a cuda device runs the fp32 paths, as the comparisons assume (its
     * bf16 and TF32 kernels have tests of their own in tests/test_cuda.c) */
    setenv("LC_CUDA_ATTN", "fp32", 1);
    setenv("LC_CUDA_TF32", "0", 1);
    for (const char *const *name = lc_backend_list(); *name != NULL; name++) {
        struct lc_backend *be = NULL;
        struct lc_error err = {0};
        if (strcmp(*name, "ref") == 0) {
            continue;
        }
        if (lc_backend_open(&be, *name, &err) != LC_OK) {
            fprintf(stderr, "note: backend %s not run: %s\n", *name, err.msg);
            continue;
        }
        if (strcmp(*name, "cpu") == 0) {
            enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
            int n = lc_test_cpu_isas(isas);
            /* fp32 weight tiles of 64 MiB, below the default: the linear
             * shapes over 64 MiB take several tiles */
            ((struct lc_cpu_ctx *)be->ctx)->weight_tile_bytes = (size_t)64 << 20;
            for (int i = 0; i < n; i++) {
                struct target *t = &g_targets[g_ntargets++];
                snprintf(t->name, sizeof(t->name), "cpu [%s]", lc_test_isa_name(isas[i]));
                t->be = be;
                t->isa = (int)isas[i];
            }
        } else {
            struct target *t = &g_targets[g_ntargets++];
            snprintf(t->name, sizeof(t->name), "%s", *name);
            t->be = be;
            t->isa = -1;
        }
    }
#endif
    return 0;
}

static int teardown(void **state)
{
    struct lc_backend *last = NULL;
    (void)state;
    for (int i = 0; i < g_ntargets; i++) {
        if (g_targets[i].be != last) {
#ifdef LC_CUDA_EMU
            lc_test_backend_free(g_targets[i].be);
#else
            lc_backend_close(g_targets[i].be);
#endif
        }
        last = g_targets[i].be;
    }
    g_ntargets = 0;
    lc_test_backend_free(g_ref);
    return 0;
}

static void run_row(const struct row *r)
{
    size_t bad = 0;
    int variants = 0;

    for (int v = 0;; v++) {
        struct opcase c;
        void *want[MAX_ARGS];
        void *got[MAX_ARGS];
        float *want64[MAX_ARGS];
        char name[1024];

        memset(&c, 0, sizeof(c));
        if (!r->make(&c, v)) {
            break;
        }
        variants++;
        run_case(r, &c, g_ref, want);
        run_case64(r, &c, want64);
        for (int k = 0; k < c.na; k++) {
            struct arg a64 = c.a[k];
            if (a64.vs_start) {
                snprintf(name, sizeof(name), "ref %s: %s", c.what, a64.name);
                bad += compare(name, &c, &a64, want[k], a64.host, a64.atol, a64.rtol);
            }
            if (want64[k] != NULL && a64.ref64) {
                a64.cmp = a64.cmp64;
                snprintf(name, sizeof(name), "ref %s: %s against double", c.what, a64.name);
                bad += compare(name, &c, &a64, want[k], want64[k], a64.atol64, a64.rtol64);
            }
        }
        for (int t = 0; t < g_ntargets; t++) {
            const struct target *tg = &g_targets[t];
            if (tg->emulated && !r->emulated) {
                continue;
            }
            if (tg->isa >= 0) {
                lc_test_set_isa(tg->be, (enum lc_cpu_isa)tg->isa);
            }
            run_case(r, &c, tg->be, got);
            bad += check_backend(tg->name, !tg->be->ops->host_memory, &c, got, want, want64);
            if (c.twice) {
                void *again[MAX_ARGS];
                run_case(r, &c, tg->be, again);
                bad += check_twice(tg->name, &c, got, again);
                free_outs(&c, again);
            }
            free_outs(&c, got);
        }
        free_outs(&c, want);
        free_outs(&c, (void **)want64);
        case_free(&c);
    }
    assert_true(variants > 0);
    if (bad != 0) {
        fail_msg("%s: %zu mismatches", r->entry, bad);
    }
}

/* ================================================================ rows */

/* ------------------------------------------------------------------ gemm */

static int make_gemm(struct opcase *c, int v)
{
    static const struct {
        int ta, tb, M, N, K;
        float alpha, beta;
        int pad; /* extra elements per row of A, B and C */
    } shapes[] = {
        {0, 0, 1, 1, 1, 1.0f, 0.0f, 0},        {0, 1, 17, 33, 5, 1.0f, 1.0f, 3},
        {1, 0, 31, 7, 129, 0.5f, 0.0f, 1},     {1, 1, 64, 48, 300, 1.0f, -0.5f, 0},
        {0, 0, 70, 1, 1000, 2.0f, 1.0f, 2},    {1, 0, 64, 8, 8192, 1.0f, 1.0f, 0},
        {0, 1, 600, 130, 40, 1.0f, 0.0f, 5},   {0, 0, 5, 6, 0, 1.0f, 0.5f, 0},
        {0, 0, 5, 6, 0, 1.0f, 0.0f, 0},        {1, 1, 1, 257, 33, 1.0f, 0.0f, 1},
        {0, 0, 257, 300, 129, -1.0f, 2.0f, 4},
    };
    struct arg *C;
    int lda, ldb, ldc;
    size_t na, nb, nc;
    float *C0;

    if (v >= (int)(sizeof(shapes) / sizeof(shapes[0]))) {
        return 0;
    }
    lda = (shapes[v].ta ? shapes[v].M : shapes[v].K) + shapes[v].pad;
    ldb = (shapes[v].tb ? shapes[v].K : shapes[v].N) + shapes[v].pad;
    ldc = shapes[v].N + shapes[v].pad;
    na = (size_t)(shapes[v].ta ? shapes[v].K : shapes[v].M) * lda + 1;
    nb = (size_t)(shapes[v].tb ? shapes[v].N : shapes[v].K) * ldb + 1;
    nc = (size_t)shapes[v].M * ldc;
    c->i[0] = shapes[v].ta;
    c->i[1] = shapes[v].tb;
    c->i[2] = shapes[v].M;
    c->i[3] = shapes[v].N;
    c->i[4] = shapes[v].K;
    c->i[5] = lda;
    c->i[6] = ldb;
    c->i[7] = ldc;
    c->f[0] = shapes[v].alpha;
    c->f[1] = shapes[v].beta;
    snprintf(c->what, sizeof(c->what), "gemm ta%d tb%d %dx%dx%d", c->i[0], c->i[1], c->i[2],
             c->i[3], c->i[4]);
    in_f32(c, "A", lc_test_new_uniform(na, 100 + v, -1, 1), na);
    in_f32(c, "B", lc_test_new_uniform(nb, 200 + v, -1, 1), nb);
    C0 = lc_test_new_uniform(nc, 300 + v, -1, 1);
    if (shapes[v].beta == 0.0f) {
        lc_test_fill_nan(C0, nc); /* beta 0 must ignore C */
    }
    C = acc_f32(c, "C", C0, nc, CMP_CLOSE, 1e-5 * sqrt(shapes[v].K + 1.0), 1e-5);
    C->rows = shapes[v].M;
    C->cols = shapes[v].N;
    C->ld = ldc;
    c->twice = 1;
    return 1;
}

static void call_gemm(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->gemm(be, c->i[0], c->i[1], c->i[2], c->i[3], c->i[4], c->f[0], p[0], c->i[5], p[1],
                  c->i[6], c->f[1], p[2], c->i[7]);
}

/* ---------------------------------------------------------------- linear */

/* N <= 4 takes the cpu's dot-product path, larger N the SGEMM path; the
 * last two shapes have an fp32 copy of the weights over one 64 MiB tile,
 * the cpu backend's limit in this test (row tiles forward; column and row
 * tiles backward) */
struct linear_shape {
    int N, K, M;
};
static const struct linear_shape linear_shapes[] = {
    {1, 1, 1}, {1, 7, 17}, {3, 129, 5}, {4, 64, 300}, {5, 64, 33}, {37, 129, 300}, {2, 100, 1},
};
static const enum lc_dtype dtypes[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
/* After those (i[3] = 1), shapes with wide rows, no inputs or no outputs
 * to a device's tolerances: with F16/BF16 weights a device feeds its
 * tensor cores the activations rounded to the weights' dtype, so they come
 * rounded (the same products on every backend, summed in another order:
 * rtol 1e-3); the weights are left as they were. */
static const struct linear_shape linear_more[] = {
    {1, 1, 1},      {3, 5, 7},       {17, 129, 33}, {1, 4096, 64},
    {64, 512, 384}, {130, 96, 1000}, {4, 0, 3},     {2, 3, 0},
};
#define N_LINEAR_MORE ((int)(sizeof(linear_more) / sizeof(linear_more[0])))

static void linear_set(struct opcase *c, int N, int K, int M, enum lc_dtype type, float beta)
{
    c->i[0] = N, c->i[1] = K, c->i[2] = M;
    c->type = type;
    c->f[0] = beta;
}

/* variant v of linear_fwd / linear_bwd: shape, dtype, beta; sets i[0..2]
 * = N, K, M, type, f[0] = beta and i[3] = 1 for linear_more's; 0 past the
 * last */
static int linear_variant(struct opcase *c, int v, uint64_t *seed)
{
    const int nshapes = (int)(sizeof(linear_shapes) / sizeof(linear_shapes[0]));
    const int more = v - (nshapes * 6 + 2);
    if (v < nshapes * 6 || (more >= 0 && more < N_LINEAR_MORE * 6)) {
        const int first = v < nshapes * 6, u = first ? v : more;
        const int s = u / 6, t = (u / 2) % 3, b = u % 2;
        const struct linear_shape *sh = first ? &linear_shapes[s] : &linear_more[s];
        linear_set(c, sh->N, sh->K, sh->M, dtypes[t], b ? 1.0f : 0.0f);
        c->i[3] = !first;
        *seed = first ? 1000 + 20 * (uint64_t)(s * 3 + t) + 10 * (uint64_t)b
                      : (b ? 2000 : 1000) + 10 * (uint64_t)s + (uint64_t)t;
        return 1;
    }
    if (v == nshapes * 6) {
        linear_set(c, 5, 64, 270000, LC_DTYPE_BF16, 1.0f);
        *seed = 77;
        return 1;
    }
    if (v == nshapes * 6 + 1) {
        linear_set(c, 6, 5000, 3400, LC_DTYPE_F16, 0.0f);
        *seed = 78;
        return 1;
    }
    if (more == N_LINEAR_MORE * 6) {
        linear_set(c, 17, 129, 33, LC_DTYPE_BF16, -0.5f);
        c->i[3] = 1;
        *seed = 3000;
        return 1;
    }
    return 0;
}

static int make_linear(struct opcase *c, int v, int bwd)
{
    uint64_t seed;
    size_t N, K, M, nw, nout;
    float *wf, *out0;

    if (!linear_variant(c, v, &seed)) {
        return 0;
    }
    N = (size_t)c->i[0];
    K = (size_t)c->i[1];
    M = (size_t)c->i[2];
    nw = M * K;
    snprintf(c->what, sizeof(c->what), "%s %s N%zu K%zu M%zu beta %g",
             bwd ? "linear_bwd" : "linear_fwd", lc_dtype_name(c->type), N, K, M, c->f[0]);
    wf = lc_test_new_uniform(nw, seed, -1, 1);
    in_raw(c, "w", lc_test_to_dtype(wf, nw, c->type), nw * lc_dtype_size(c->type));
    free(wf);
    if (c->i[3]) {
        const int f32 = c->type == LC_DTYPE_F32;
        double rtol = f32 ? 1e-5 : 1e-3;
        double atol = (f32 ? 1e-5 : 1e-4) * sqrt((double)(bwd ? M : K) + 1.0);
        c->a[0].unchanged = 1;
        if (!bwd) {
            in_f32(c, "x",
                   lc_test_round_to(lc_test_new_uniform(N * K, seed + 1, -2, 2), N * K, c->type),
                   N * K);
            out0 = lc_test_new_uniform(N * M, seed + 3, -1, 1);
        } else {
            in_f32(c, "dy",
                   lc_test_round_to(lc_test_new_uniform(N * M, seed + 2, -2, 2), N * M, c->type),
                   N * M);
            out0 = lc_test_new_uniform(N * K, seed + 4, -1, 1);
        }
        nout = bwd ? N * K : N * M;
        if (c->f[0] == 0.0f) {
            lc_test_fill_nan(out0, nout);
        }
        acc_f32(c, bwd ? "dx" : "y", out0, nout, CMP_CLOSE, atol, rtol);
        return 1;
    }
    if (!bwd) {
        in_f32(c, "x", lc_test_new_uniform(N * K, seed + 1, -1, 1), N * K);
        nout = N * M;
        out0 = lc_test_new_uniform(nout, seed + 3, -1, 1);
    } else {
        in_f32(c, "dy", lc_test_new_uniform(N * M, seed + 2, -1, 1), N * M);
        nout = N * K;
        out0 = lc_test_new_uniform(nout, seed + 4, -1, 1);
    }
    if (c->f[0] == 0.0f) {
        lc_test_fill_nan(out0, nout);
    }
    acc_f32(c, bwd ? "dx" : "y", out0, nout, CMP_CLOSE, 1e-5 * sqrt((double)(bwd ? M : K) + 1.0),
            1e-5);
    return 1;
}

static int make_linear_fwd(struct opcase *c, int v)
{
    return make_linear(c, v, 0);
}

static int make_linear_bwd(struct opcase *c, int v)
{
    return make_linear(c, v, 1);
}

static void call_linear_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->linear_fwd(be, p[2], p[1], p[0], c->type, c->i[0], c->i[1], c->i[2], c->f[0]);
}

static void call_linear_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->linear_bwd(be, p[2], p[1], p[0], c->type, c->i[0], c->i[1], c->i[2], c->f[0]);
}

/* ----------------------------------------------------------- elementwise */

#define N_ELEMENTWISE 100003 /* several chunks and a ragged end */

/* i[0] = n; variant 1: a million elements, and y += y on one */
static int make_add(struct opcase *c, int v)
{
    const int n = v == 0 ? N_ELEMENTWISE : 1000003;
    if (v > 1) {
        return 0;
    }
    c->i[0] = n;
    snprintf(c->what, sizeof(c->what), "add n %d", n);
    in_f32(c, "x", lc_test_new_uniform((size_t)n, 1, v == 0 ? -2 : -1, v == 0 ? 2 : 1), (size_t)n);
    /* fp32 sums are correctly rounded: the same bits as in double */
    ref_vs64(acc_f32(c, "y", lc_test_new_uniform((size_t)n, 2, v == 0 ? -2 : -1, v == 0 ? 2 : 1),
                     (size_t)n, CMP_EXACT, 0, 0),
             CMP_EXACT, 0, 0);
    if (v == 1) {
        ref_vs64(acc_f32(c, "y plus itself", lc_test_new_uniform(1, 3, -1, 1), 1, CMP_EXACT, 0, 0),
                 CMP_EXACT, 0, 0);
    }
    return 1;
}

static void call_add(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->add(be, p[1], p[0], c->i[0]);
    if (c->na > 2) {
        be->ops->add(be, p[2], p[2], 1);
    }
}

static void call64_add(const struct opcase *c, void **p)
{
    lc_ref_add_f64(NULL, p[1], p[0], c->i[0]);
    if (c->na > 2) {
        lc_ref_add_f64(NULL, p[2], p[2], 1);
    }
}

/* Variants 0-7: p in {0, 0.1, 0.5, 1}, out of place and in place;
 * 8-37: a million elements, p in {0, 0.1, 0.5, 0.999, 1} and seeds 0,
 * 12345 and 2^64 - 1, each out of place and in place (the masks' share
 * of zeros: test_dropout_mask in tests/test_kernels_dense.c).  i[0]: in
 * place; i[2] = n. */
static int make_dropout(struct opcase *c, int v)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    static const float ps_more[] = {0.0f, 0.1f, 0.5f, 0.999f, 1.0f};
    static const uint64_t seeds_more[] = {0, 12345, UINT64_MAX};
    const int s = v - 8;
    size_t n;
    if (s >= 30) {
        return 0;
    }
    if (s < 0) {
        c->f[0] = ps[v % 4];
        c->i[0] = v / 4;
        c->seed = 42 + (uint64_t)(v % 4);
    } else {
        c->f[0] = ps_more[s / 6];
        c->i[0] = s % 2;
        c->seed = seeds_more[(s / 2) % 3];
    }
    n = s < 0 ? N_ELEMENTWISE : 1000003;
    c->i[2] = (int)n;
    snprintf(c->what, sizeof(c->what), "dropout n %zu p %g seed %llu%s", n, c->f[0],
             (unsigned long long)c->seed, c->i[0] ? " in place" : "");
    if (c->i[0]) {
        acc_f32(c, "x (in place)",
                lc_test_new_uniform(n, s < 0 ? 1 : 3, s < 0 ? -2 : -1, s < 0 ? 2 : 1), n, CMP_EXACT,
                0, 0);
    } else {
        in_f32(c, "x", lc_test_new_uniform(n, s < 0 ? 1 : 3, s < 0 ? -2 : -1, s < 0 ? 2 : 1), n);
        out_f32(c, "y", n, CMP_EXACT, 0, 0);
    }
    return 1;
}

static void call_dropout(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->dropout(be, c->i[0] ? p[0] : p[1], p[0], c->i[2], c->f[0], c->seed);
}

/* ------------------------------------------------------------- embedding */

enum { EMB_V = 50, EMB_C = 100, EMB_N = 300 };
/* after that case, N tokens of random ids below V, rows of C */
static const int emb_more[][3] = {{1, 1, 1}, {101, 67, 37}, {300, 4096, 5}, {7, 3, 1000}};
#define N_EMB_MORE ((int)(sizeof(emb_more) / sizeof(emb_more[0])))

static int32_t *emb_ids(void)
{
    int32_t *ids = new_ids(EMB_N);
    /* many repeats, a few ids never used */
    for (int n = 0; n < EMB_N; n++) {
        ids[n] = (int32_t)((n * 7 + n / 13) % (EMB_V - 3));
    }
    return ids;
}

/* case s (-1: the first) as i[] = N, C, V, with its ids */
static void emb_case(struct opcase *c, int s)
{
    c->i[0] = s < 0 ? EMB_N : emb_more[s][0];
    c->i[1] = s < 0 ? EMB_C : emb_more[s][1];
    c->i[2] = s < 0 ? EMB_V : emb_more[s][2];
    in_raw(c, "ids", s < 0 ? emb_ids() : uniform_ids((size_t)c->i[0], 40 + (uint64_t)s, c->i[2]),
           (size_t)c->i[0] * sizeof(int32_t));
}

/* each case in each dtype */
static int make_embedding_fwd(struct opcase *c, int v)
{
    const int s = v / 3 - 1;
    size_t vc;
    float *tf;
    if (s >= N_EMB_MORE) {
        return 0;
    }
    c->type = dtypes[v % 3];
    emb_case(c, s);
    vc = (size_t)c->i[2] * c->i[1];
    snprintf(c->what, sizeof(c->what), "embedding_fwd %s N%d C%d V%d", lc_dtype_name(c->type),
             c->i[0], c->i[1], c->i[2]);
    tf = lc_test_new_uniform(vc, s < 0 ? 5 : 70 + (uint64_t)s, -3, 3);
    in_raw(c, "table", lc_test_to_dtype(tf, vc, c->type), vc * lc_dtype_size(c->type));
    free(tf);
    out_f32(c, "out", (size_t)c->i[0] * c->i[1], CMP_EXACT, 0, 0);
    return 1;
}

static void call_embedding_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->embedding_fwd(be, p[2], p[0], p[1], c->type, c->i[0], c->i[1]);
}

/* the same additions in the same order: the same bits */
static int make_embedding_bwd(struct opcase *c, int v)
{
    const int s = v - 1;
    size_t nc, vc;
    struct arg *dt;
    if (s >= N_EMB_MORE) {
        return 0;
    }
    emb_case(c, s);
    nc = (size_t)c->i[0] * c->i[1];
    vc = (size_t)c->i[2] * c->i[1];
    snprintf(c->what, sizeof(c->what), "embedding_bwd N%d C%d V%d", c->i[0], c->i[1], c->i[2]);
    in_f32(c, "dout", lc_test_new_uniform(nc, s < 0 ? 6 : 50 + (uint64_t)s, -1, 1), nc);
    dt = acc_f32(c, "dtable", lc_test_new_uniform(vc, s < 0 ? 7 : 60 + (uint64_t)s, -1, 1), vc,
                 CMP_EXACT, 0, 0);
    if (s < 0) {
        /* about six repeats of an id: within 1e-6 of the sum in double */
        ref_vs64(dt, CMP_CLOSE, 1e-6, 1e-6);
    }
    return 1;
}

static void call_embedding_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->embedding_bwd(be, p[2], p[1], p[0], c->i[0], c->i[1], c->i[2]);
}

static void call64_embedding_bwd(const struct opcase *c, void **p)
{
    lc_ref_embedding_bwd_f64(NULL, p[2], p[1], p[0], c->i[0], c->i[1], c->i[2]);
}

/* --------------------------------------------------------------- RMSNorm */

static const int rms_shapes[][2] = {{1, 1}, {7, 5}, {3, 16}, {9, 100}, {2, 4096}, {130, 33}};
#define N_RMS_SHAPES ((int)(sizeof(rms_shapes) / sizeof(rms_shapes[0])))
/* after those, long rows (a device's block per row and more) with their
 * own seeds and eps 1e-6 or 1e-5 */
static const int rms_long[][2] = {{1, 1}, {5, 4097}, {33, 4096}, {1, 16384}, {700, 31}};
#define N_RMS_LONG ((int)(sizeof(rms_long) / sizeof(rms_long[0])))

/* i[0], i[1] = N, C; f[0] = eps; i[2]: a long-row variant (index s); inputs x,
 * w as in every rmsnorm case; 0 past the last variant */
static int rms_inputs(struct opcase *c, int v)
{
    const int s = v - N_RMS_SHAPES;
    size_t N, C;

    if (s >= N_RMS_LONG) {
        return 0;
    }
    N = (size_t)(s < 0 ? rms_shapes[v][0] : rms_long[s][0]);
    C = (size_t)(s < 0 ? rms_shapes[v][1] : rms_long[s][1]);
    c->i[0] = (int)N;
    c->i[1] = (int)C;
    c->i[2] = s;
    if (s < 0) {
        c->f[0] = 1e-5f;
        in_f32(c, "x", lc_test_new_uniform(N * C, 10 + v, -3, 3), N * C);
        in_f32(c, "w", lc_test_new_uniform(C, 20 + v, 0.5f, 1.5f), C);
    } else {
        c->f[0] = s % 2 ? 1e-5f : 1e-6f;
        in_f32(c, "x", lc_test_new_uniform(N * C, 80 + s, -2, 2), N * C);
        in_f32(c, "w", lc_test_new_uniform(C, 90 + s, 0.5f, 1.5f), C);
    }
    return 1;
}

static int make_rmsnorm_fwd(struct opcase *c, int v)
{
    size_t n;
    if (!rms_inputs(c, v)) {
        return 0;
    }
    n = (size_t)c->i[0] * c->i[1];
    snprintf(c->what, sizeof(c->what), "rmsnorm_fwd N%d C%d eps %g", c->i[0], c->i[1],
             (double)c->f[0]);
    out_f32(c, "out", n, CMP_CLOSE, 1e-6, 1e-5);
    out_f32(c, "rstd", (size_t)c->i[0], CMP_CLOSE, 0, c->i[2] < 0 ? 1e-6 : 1e-5);
    out_f32(c, "out without rstd", n, CMP_CLOSE, 1e-6, 1e-5);
    same_bits(c, 4, 2);
    /* out may alias x */
    acc_f32(c, "out in place of x", lc_test_dup_f32(c->a[0].host, n), n, CMP_CLOSE, 1e-6, 1e-5);
    return 1;
}

static void call_rmsnorm_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->rmsnorm_fwd(be, p[2], p[3], p[0], p[1], c->i[0], c->i[1], c->f[0]);
    be->ops->rmsnorm_fwd(be, p[4], NULL, p[0], p[1], c->i[0], c->i[1], c->f[0]);
    be->ops->rmsnorm_fwd(be, p[5], NULL, p[5], p[1], c->i[0], c->i[1], c->f[0]);
}

static int make_rmsnorm_bwd(struct opcase *c, int v)
{
    size_t N, C, n;
    float *rstd;
    /* seeds of dout, dx and dw */
    uint64_t sd, sx, sw;

    if (!rms_inputs(c, v)) {
        return 0;
    }
    N = (size_t)c->i[0];
    C = (size_t)c->i[1];
    n = N * C;
    sd = c->i[2] < 0 ? 30 + (uint64_t)v : 100 + (uint64_t)c->i[2];
    sx = c->i[2] < 0 ? 40 + (uint64_t)v : 110 + (uint64_t)c->i[2];
    sw = c->i[2] < 0 ? 50 + (uint64_t)v : 120 + (uint64_t)c->i[2];
    snprintf(c->what, sizeof(c->what), "rmsnorm_bwd N%zu C%zu", N, C);
    in_f32(c, "dout", lc_test_new_uniform(n, sd, -1, 1), n);
    /* the reference's rstd, as the model's backward gets its forward's */
    rstd = lc_test_new_f32(N);
    {
        float *out = lc_test_new_f32(n);
        lc_ref_rmsnorm_fwd(g_ref, out, rstd, c->a[0].host, c->a[1].host, (int)N, (int)C, c->f[0]);
        free(out);
    }
    in_f32(c, "rstd", rstd, N);
    acc_f32(c, "dx", lc_test_new_uniform(n, sx, -1, 1), n, CMP_CLOSE, 1e-5, 1e-5);
    acc_f32(c, "dw", lc_test_new_uniform(C, sw, -1, 1), C, CMP_CLOSE, 1e-5 * sqrt((double)N), 1e-5);
    acc_f32(c, "dx without dw", lc_test_new_uniform(n, sx, -1, 1), n, CMP_CLOSE, 1e-5, 1e-5);
    same_bits(c, 6, 4);
    /* dw sums over the rows in a fixed order */
    c->twice = 1;
    return 1;
}

static void call_rmsnorm_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->rmsnorm_bwd(be, p[4], p[5], p[2], p[0], p[1], p[3], c->i[0], c->i[1]);
    be->ops->rmsnorm_bwd(be, p[6], NULL, p[2], p[0], p[1], p[3], c->i[0], c->i[1]);
}

/* ------------------------------------------------------------------ RoPE */

static const int rope_dims[] = {2, 8, 34, 64, 128};
enum { ROPE_N = 6, ROPE_NH = 3, ROPE_P = 40 };
/* after those, tokens N of nh heads of dim D at random positions < 64,
 * an odd D among them */
static const int rope_more[][3] = {{1, 1, 2}, {13, 3, 6}, {37, 8, 128}, {5, 2, 7}};
#define N_ROPE_DIMS ((int)(sizeof(rope_dims) / sizeof(rope_dims[0])))
#define N_ROPE_MORE ((int)(sizeof(rope_more) / sizeof(rope_more[0])))

/* i[] = D, N, nh; inputs pos, cos, sin; output x (in place) */
static int make_rope(struct opcase *c, int v, const char *entry)
{
    static const int32_t pos[ROPE_N] = {0, 39, 5, 5, 17, 1};
    const int s = v - N_ROPE_DIMS;
    int D, N, nh, P;
    size_t n, half;
    float *cos_tab, *sin_tab;

    if (s >= N_ROPE_MORE) {
        return 0;
    }
    N = s < 0 ? ROPE_N : rope_more[s][0];
    nh = s < 0 ? ROPE_NH : rope_more[s][1];
    D = s < 0 ? rope_dims[v] : rope_more[s][2];
    P = s < 0 ? ROPE_P : 64;
    half = (size_t)D / 2;
    n = (size_t)N * nh * D;
    c->i[0] = D;
    c->i[1] = N;
    c->i[2] = nh;
    snprintf(c->what, sizeof(c->what), "%s N%d nh%d D%d", entry, N, nh, D);
    cos_tab = lc_test_new_f32(P * half);
    sin_tab = lc_test_new_f32(P * half);
    for (int p = 0; p < P; p++) {
        for (size_t i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * (double)i / D);
            cos_tab[p * half + i] = (float)cos(a);
            sin_tab[p * half + i] = (float)sin(a);
        }
    }
    if (s < 0) {
        int32_t *ids = new_ids(ROPE_N);
        memcpy(ids, pos, sizeof(pos));
        in_raw(c, "pos", ids, sizeof(pos));
    } else {
        in_raw(c, "pos", uniform_ids((size_t)N, 130 + (uint64_t)s, P), (size_t)N * sizeof(int32_t));
    }
    in_f32(c, "cos", cos_tab, P * half);
    in_f32(c, "sin", sin_tab, P * half);
    acc_f32(c, "x", lc_test_new_uniform(n, s < 0 ? 60 + (uint64_t)v : 140 + (uint64_t)s, -2, 2), n,
            CMP_CLOSE, 1e-6, 1e-6);
    if (s >= 0 && strcmp(entry, "rope_fwd") == 0) {
        /* the backward undoes the forward */
        acc_f32(c, "rope_bwd(rope_fwd(x))", lc_test_dup_f32(c->a[3].host, n), n, CMP_CLOSE, 1e-5,
                1e-5)
            ->vs_start = 1;
    }
    return 1;
}

static int make_rope_fwd(struct opcase *c, int v)
{
    return make_rope(c, v, "rope_fwd");
}

static int make_rope_bwd(struct opcase *c, int v)
{
    return make_rope(c, v, "rope_bwd");
}

static void call_rope_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->rope_fwd(be, p[3], p[0], p[1], p[2], c->i[1], c->i[2], c->i[0]);
    if (c->na > 4) {
        be->ops->rope_fwd(be, p[4], p[0], p[1], p[2], c->i[1], c->i[2], c->i[0]);
        be->ops->rope_bwd(be, p[4], p[0], p[1], p[2], c->i[1], c->i[2], c->i[0]);
    }
}

static void call_rope_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->rope_bwd(be, p[3], p[0], p[1], p[2], c->i[1], c->i[2], c->i[0]);
}

/* ---------------------------------------------------------------- SwiGLU */

#define N_SWIGLU 40009
#define N_SWIGLU_WIDE 100003

/* i[0] = n; variant 0: gates in [-10, 10]; 1: in [-12, 12], tiny ones too,
 * to a device's tolerances (expf within 2 ulp; dgate's 1 + g (1 - s)
 * cancels near g = -1.28, so its error is absolute there, on the scale of
 * d u) */
static int swiglu_inputs(struct opcase *c, int v)
{
    const size_t n = v == 0 ? N_SWIGLU : N_SWIGLU_WIDE;
    float *gate;

    if (v > 1) {
        return 0;
    }
    c->i[0] = (int)n;
    gate = lc_test_new_uniform(n, v == 0 ? 70 : 150, v == 0 ? -10 : -12, v == 0 ? 10 : 12);
    /* saturated gates: exp(-g) overflows or vanishes */
    gate[0] = -100.0f;
    gate[1] = 100.0f;
    gate[2] = v == 0 ? -88.5f : 0.0f;
    gate[3] = v == 0 ? 0.0f : -88.5f;
    if (v == 1) {
        gate[4] = 1e-30f;
    }
    in_f32(c, "gate", gate, n);
    in_f32(c, "up", lc_test_new_uniform(n, v == 0 ? 71 : 151, -3, 3), n);
    return 1;
}

static int make_swiglu_fwd(struct opcase *c, int v)
{
    if (!swiglu_inputs(c, v)) {
        return 0;
    }
    snprintf(c->what, sizeof(c->what), "swiglu_fwd n %d", c->i[0]);
    if (v == 0) {
        out_f32(c, "out", N_SWIGLU, CMP_CLOSE, 1e-6, 1e-5);
    } else {
        out_f32(c, "out", N_SWIGLU_WIDE, CMP_CLOSE, 1e-30, 2e-6);
    }
    return 1;
}

static void call_swiglu_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->swiglu_fwd(be, p[2], p[0], p[1], c->i[0]);
}

static int make_swiglu_bwd(struct opcase *c, int v)
{
    if (!swiglu_inputs(c, v)) {
        return 0;
    }
    snprintf(c->what, sizeof(c->what), "swiglu_bwd n %d", c->i[0]);
    if (v == 0) {
        in_f32(c, "dout", lc_test_new_uniform(N_SWIGLU, 72, -1, 1), N_SWIGLU);
        out_f32(c, "dgate", N_SWIGLU, CMP_CLOSE, 1e-6, 1e-5);
        out_f32(c, "dup", N_SWIGLU, CMP_CLOSE, 1e-6, 1e-5);
    } else {
        in_f32(c, "dout", lc_test_new_uniform(N_SWIGLU_WIDE, 152, -1, 1), N_SWIGLU_WIDE);
        out_f32(c, "dgate", N_SWIGLU_WIDE, CMP_CLOSE, 4e-6, 2e-6);
        out_f32(c, "dup", N_SWIGLU_WIDE, CMP_CLOSE, 1e-30, 2e-6);
    }
    return 1;
}

static void call_swiglu_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->swiglu_bwd(be, p[3], p[4], p[2], p[0], p[1], c->i[0]);
}

/* ------------------------------------------------- softmax attention */

/* Uniform inputs, scores of a few units (q times 3), on training,
 * decoding and prefill shapes (lc_test_attn_shapes); run twice for the
 * same bits. */
static int make_attn_fwd_uniform(struct opcase *c, int v)
{
    const uint64_t seed = 500 + 10 * (uint64_t)v;
    size_t nq, nkv;
    float *q;

    if (v >= LC_TEST_N_ATTN_SHAPES) {
        return 0;
    }
    memcpy(c->i, &lc_test_attn_shapes[v], 7 * sizeof(int));
    snprintf(c->what, sizeof(c->what), "attn_fwd uniform B%d Tq%d Tk%d H%d Hkv%d D%d pos%d",
             c->i[0], c->i[1], c->i[2], c->i[3], c->i[4], c->i[5], c->i[6]);
    nq = (size_t)c->i[0] * c->i[1] * c->i[3] * c->i[5];
    nkv = (size_t)c->i[0] * c->i[2] * c->i[4] * c->i[5];
    q = lc_test_new_uniform(nq, seed, -1, 1);
    for (size_t i = 0; i < nq; i++) {
        q[i] *= 3.0f;
    }
    in_f32(c, "q", q, nq);
    in_f32(c, "k", lc_test_new_uniform(nkv, seed + 1, -1, 1), nkv);
    in_f32(c, "v", lc_test_new_uniform(nkv, seed + 2, -1, 1), nkv);
    ref_vs64(out_f32(c, "y", nq, CMP_CLOSE, 2e-5, 1e-4), CMP_CLOSE, 1e-6, 1e-5);
    c->twice = 1;
    return 1;
}

static int make_attn_fwd(struct opcase *c, int v)
{
    static const struct {
        int B, Tq, Tk, H, Hkv, D, q_pos0;
        float qscale; /* spread of the scores */
    } shapes[] = {
        {1, 1, 1, 1, 1, 1, 0, 1.0f},    /* one key */
        {2, 5, 5, 4, 2, 8, 0, 1.0f},    /* grouped heads, tiny head dim */
        {1, 70, 70, 8, 4, 8, 0, 1.0f},  /* two query blocks, the second ragged */
        {1, 1, 37, 4, 1, 16, 36, 1.0f}, /* decoding: one query at position 36 */
        {2, 3, 20, 6, 3, 34, 17, 1.0f}, /* chunked prefill: positions 17..19 */
        {1, 4, 10, 2, 1, 8, 3, 1.0f},   /* keys beyond the last query are unseen */
        {1, 5, 3, 2, 2, 4, 0, 1.0f},    /* fewer keys than queries */
        {1, 130, 130, 2, 2, 128, 0, 1.0f},
        {1, 33, 33, 2, 1, 64, 0, 30.0f}, /* sharp softmax: needs the max */
        {1, 9, 12, 12, 2, 8, 3, 1.0f},   /* 6 heads per KV head: items of 3 */
        {2, 20, 20, 16, 2, 16, 0, 1.0f}, /* 8 heads per KV head: items of 4 */
        {1, 7, 7, 5, 5, 12, 0, 1.0f},    /* no grouping */
    };
    const int nshapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    size_t nq, nkv;
    float *q, *k, *vv;
    struct arg *y;
    const uint64_t seed = 10 * (uint64_t)v + 1;

    if (v >= nshapes) {
        return make_attn_fwd_uniform(c, v - nshapes);
    }
    memcpy(c->i, &shapes[v], 7 * sizeof(int));
    snprintf(c->what, sizeof(c->what), "attn_fwd B%d Tq%d Tk%d H%d Hkv%d D%d pos%d", c->i[0],
             c->i[1], c->i[2], c->i[3], c->i[4], c->i[5], c->i[6]);
    nq = (size_t)shapes[v].B * shapes[v].Tq * shapes[v].H * shapes[v].D;
    nkv = (size_t)shapes[v].B * shapes[v].Tk * shapes[v].Hkv * shapes[v].D;
    q = lc_test_new_f32(nq);
    k = lc_test_new_f32(nkv);
    vv = lc_test_new_f32(nkv);
    lc_test_fill_normal(q, nq, seed, shapes[v].qscale);
    lc_test_fill_normal(k, nkv, seed + 1, 1.0f);
    lc_test_fill_normal(vv, nkv, seed + 2, 1.0f);
    in_f32(c, "q", q, nq);
    in_f32(c, "k", k, nkv);
    in_f32(c, "v", vv, nkv);
    y = out_f32(c, "y", nq, CMP_CLOSE, 1e-5, 1e-4);
    ref_vs64(y, CMP_CLOSE, 1e-6, 1e-5);
    y->vs64 = 1;
    return 1;
}

static void call_attn_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->attn_fwd(be, p[3], p[0], p[1], p[2], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4],
                      c->i[5], c->i[6]);
}

static void call64_attn_fwd(const struct opcase *c, void **p)
{
    lc_ref_attn_fwd_f64(NULL, p[3], p[0], p[1], p[2], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4],
                        c->i[5], c->i[6]);
}

/* ------------------------------------------------- Hedgehog features */

static const struct {
    int N, H, Hx, D, f;
    float eps, xscale;
} fmap_cases[] = {
    {1, 4, 4, 16, 8, 1e-12f, 1.0f},
    {7, 4, 2, 16, 8, 1e-12f, 1.0f},
    {300, 4, 2, 32, 16, 1e-12f, 1.0f},
    {130, 3, 1, 13, 5, 1e-12f, 1.0f},
    /* more tokens than the cpu backward's chunk cap (16 x 128) */
    {2100, 2, 2, 8, 17, 1e-12f, 1.0f},
    /* clamped entries */
    {50, 4, 2, 16, 8, 0.01f, 3.0f},
    /* one-element heads and features */
    {3, 2, 1, 1, 1, 1e-12f, 1.0f},
};
#define N_FMAP_CASES ((int)(sizeof(fmap_cases) / sizeof(fmap_cases[0])))

/* i[] = N, H, Hx, D, f; f[0] = eps; inputs x, W */
static void fmap_inputs(struct opcase *c, int v, const char *entry)
{
    const int N = fmap_cases[v].N, H = fmap_cases[v].H, Hx = fmap_cases[v].Hx;
    const int D = fmap_cases[v].D, f = fmap_cases[v].f;
    const size_t nx = (size_t)N * Hx * D, nw = (size_t)H * D * f;
    float *x = lc_test_new_f32(nx), *W = lc_test_new_f32(nw);

    c->i[0] = N, c->i[1] = H, c->i[2] = Hx, c->i[3] = D, c->i[4] = f;
    c->f[0] = fmap_cases[v].eps;
    snprintf(c->what, sizeof(c->what), "%s N %d H %d Hx %d D %d f %d eps %g", entry, N, H, Hx, D, f,
             (double)c->f[0]);
    lc_test_fill_normal(x, nx, (uint64_t)N + 1, fmap_cases[v].xscale);
    lc_test_fill_normal(W, nw, (uint64_t)N + 2, 0.5f);
    in_f32(c, "x", x, nx);
    in_f32(c, "W", W, nw);
}

static int make_fmap_fwd(struct opcase *c, int v)
{
    if (v >= N_FMAP_CASES) {
        return 0;
    }
    fmap_inputs(c, v, "fmap_fwd");
    ref_vs64(out_f32(c, "phi", (size_t)c->i[0] * c->i[1] * 2 * c->i[4], CMP_REL, 1e-5, 1e-5),
             CMP_REL, 1e-6, 1e-6);
    return 1;
}

static void call_fmap_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->fmap_fwd(be, p[2], p[0], p[1], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4], c->f[0]);
}

static void call64_fmap_fwd(const struct opcase *c, void **p)
{
    lc_ref_fmap_fwd_f64(p[2], p[0], p[1], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4], c->f[0]);
}

static int make_fmap_bwd(struct opcase *c, int v)
{
    size_t np, nw, nx;
    float *dphi;
    if (v >= N_FMAP_CASES) {
        return 0;
    }
    fmap_inputs(c, v, "fmap_bwd");
    np = (size_t)c->i[0] * c->i[1] * 2 * c->i[4];
    nw = (size_t)c->i[1] * c->i[3] * c->i[4];
    nx = (size_t)c->i[0] * c->i[2] * c->i[3];
    dphi = lc_test_new_f32(np);
    lc_test_fill_normal(dphi, np, (uint64_t)c->i[0] + 3, 1.0f);
    in_f32(c, "dphi", dphi, np);
    acc_f32(c, "dW", lc_test_new_uniform(nw, 4, -1, 1), nw, CMP_REL, 1e-5, 1e-5);
    acc_f32(c, "dx", lc_test_new_uniform(nx, 5, -1, 1), nx, CMP_REL, 1e-5, 1e-5);
    /* dx is optional, and leaves dW as it is */
    acc_f32(c, "dW without dx", lc_test_new_uniform(nw, 4, -1, 1), nw, CMP_REL, 1e-5, 1e-5);
    same_bits(c, 5, 3);
    return 1;
}

static void call_fmap_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->fmap_bwd(be, p[3], p[4], p[2], p[0], p[1], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4],
                      c->f[0]);
    be->ops->fmap_bwd(be, p[5], NULL, p[2], p[0], p[1], c->i[0], c->i[1], c->i[2], c->i[3], c->i[4],
                      c->f[0]);
}

/* -------------------------------------------------- hybrid attention */

/* B, T, H, Hkv, D, F, W: the cases of the cpu comparison in both window
 * modes */
static const int hy_cases[][7] = {
    {2, 1, 4, 2, 32, 16, 64},
    {2, 5, 4, 2, 32, 16, 64},
    {2, 63, 4, 2, 32, 16, 64},
    {2, 64, 4, 2, 32, 16, 64},
    {2, 65, 4, 2, 32, 16, 64},
    {2, 200, 4, 2, 32, 16, 64},
    {2, 20, 4, 2, 32, 16, 3},
    {2, 7, 4, 2, 32, 16, 1},
    {2, 10, 4, 2, 32, 16, 2},
    {2, 33, 4, 2, 32, 16, 4},
    {2, 16, 4, 2, 32, 16, 32},
    /* no grouping, odd sizes */
    {1, 70, 2, 2, 17, 5, 16},
    {1, 50, 6, 2, 8, 12, 7},
    /* four query heads per key head, heads and features over several
     * panels of the GEMM kernels (8 and 16 lanes) */
    {1, 140, 8, 2, 40, 36, 32},
    /* one-element heads and features, a window far longer than T */
    {2, 9, 2, 1, 1, 1, 1000},
    {1, 30, 2, 1, 1, 1, 2},
};
#define N_HY_CASES ((int)(sizeof(hy_cases) / sizeof(hy_cases[0])))

/* the inputs of case v (both modes), with window-max ties; c->s set */
static int hy_make(struct opcase *c, int v, struct lc_test_hy_in *in, const char *entry)
{
    const int *k = hy_cases[v % N_HY_CASES];
    const int mode = v / N_HY_CASES;

    if (v >= 2 * N_HY_CASES) {
        return 0;
    }
    lc_test_hy_in_make(in, k[0], k[1], k[2], k[3], k[4], k[5], k[6], mode,
                       (uint64_t)(k[1] * 131 + k[6] * 17 + mode + k[2]));
    /* ties for the window max, in the first block and (if any) later */
    if (k[1] >= 5) {
        lc_test_hy_make_tie(in, 2);
    }
    if (k[1] >= 3 * k[6] + 2) {
        lc_test_hy_make_tie(in, 3 * k[6] - 1);
    }
    c->s = in->s;
    snprintf(c->what, sizeof(c->what), "%s B %d T %d H %d/%d D %d F %d W %d mode %d", entry, k[0],
             k[1], k[2], k[3], k[4], k[5], k[6], mode);
    /* the order of every sum is fixed: a second run gives the same bits */
    c->twice = 1;
    return 1;
}

/* hands the arrays of in to c as inputs, in the order of struct lc_test_hy_in */
static void hy_inputs(struct opcase *c, struct lc_test_hy_in *in)
{
    in_f32(c, "q", in->q, in->nq);
    in_f32(c, "k", in->k, in->nk);
    in_f32(c, "v", in->v, in->nk);
    in_f32(c, "fq", in->fq, in->nf);
    in_f32(c, "fk", in->fk, in->nf);
    in_f32(c, "theta", in->theta, (size_t)in->s.H);
    in_f32(c, "dy", in->dy, in->nq);
}

/* dtheta sums G e over all B*T rows and keys, with cancellation (and is
 * exactly 0, i.e. rounding noise, when no key is linear): it is compared
 * with the double reference only, with a rounding allowance growing with
 * sqrt(rows) (as lc_test_hy_compare) */
static void hy_dtheta(struct arg *a)
{
    a->only64 = 1;
}

static int make_hybrid_fwd(struct opcase *c, int v)
{
    struct lc_test_hy_in in;
    if (!hy_make(c, v, &in, "hybrid_fwd")) {
        return 0;
    }
    hy_inputs(c, &in);
    out_f32(c, "y", in.nq, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "mx", in.nm, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "den", in.nm, CMP_REL, 1e-5, 1e-5);
    /* without mx and den */
    out_f32(c, "y alone", in.nq, CMP_REL, 1e-5, 1e-5);
    same_bits(c, 10, 7);
    return 1;
}

static void call_hybrid_fwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->hybrid_fwd(be, p[7], p[8], p[9], p[0], p[1], p[2], p[3], p[4], p[5], &c->s);
    be->ops->hybrid_fwd(be, p[10], NULL, NULL, p[0], p[1], p[2], p[3], p[4], p[5], &c->s);
}

/* the gradients a backward asked for only some of them writes: the
 * others as NULL (stage 1: dfq, dfk, dtheta; q, k, v only; each alone),
 * with the same bits as the full backward's */
static void hy_subsets(struct opcase *c, const struct lc_test_hy_in *in)
{
    static const char *const names[] = {"dfq of stage 1", "dfk of stage 1", "dq of q, k, v",
                                        "dk of q, k, v",  "dv of q, k, v",  "dq alone",
                                        "dk alone",       "dv alone"};
    static const int full[] = {13, 14, 10, 11, 12, 10, 11, 12};
    float *dth = lc_test_new_f32((size_t)in->s.H);

    for (int i = 0; i < 8; i++) {
        const struct arg *f = &c->a[full[i]];
        if (i == 2) {
            for (int h = 0; h < in->s.H; h++) {
                dth[h] = 0.5f;
            }
            hy_dtheta(acc_f32(c, "dtheta of stage 1", dth, (size_t)in->s.H, CMP_SUM, 1e-5, 1e-5));
            same_bits(c, c->na - 1, 15);
        }
        out_f32(c, names[i], f->bytes / sizeof(float), f->cmp, f->atol, f->rtol);
        same_bits(c, c->na - 1, full[i]);
    }
}

/* Variants 0 .. 2 N_HY_CASES - 1: from the reference forward's y, mx and
 * den; the next as many: after the backend's own forward (i[0] = 1), as
 * a layer's backward runs, y, mx and den compared too; the last two (i[0]
 * = 2): the same on one case per mode, and the gradients in subsets. */
static int make_hybrid_bwd(struct opcase *c, int v)
{
    struct lc_test_hy_in in;
    const int subsets = v >= 4 * N_HY_CASES;
    const int chained = v >= 2 * N_HY_CASES;
    float *y, *mx, *den, *dth;

    if (subsets) {
        const int mode = v - 4 * N_HY_CASES;
        if (mode > 1) {
            return 0;
        }
        lc_test_hy_in_make(&in, 2, 150, 4, 2, 16, 8, 32, mode, 5);
        lc_test_hy_make_tie(&in, 2);
        lc_test_hy_make_tie(&in, 3 * 32 - 1);
        c->s = in.s;
        snprintf(c->what, sizeof(c->what),
                 "hybrid_bwd subsets B 2 T 150 H 4/2 D 16 F 8 W 32 mode %d", mode);
        c->twice = 1;
    } else if (v >= 4 * N_HY_CASES ||
               !hy_make(c, v % (2 * N_HY_CASES), &in,
                        chained ? "hybrid_fwd then hybrid_bwd" : "hybrid_bwd")) {
        return 0;
    }
    hy_inputs(c, &in);
    c->i[0] = subsets ? 2 : chained;
    if (chained) {
        out_f32(c, "y", in.nq, CMP_REL, 1e-5, 1e-5);
        out_f32(c, "mx", in.nm, CMP_REL, 1e-5, 1e-5);
        out_f32(c, "den", in.nm, CMP_REL, 1e-5, 1e-5);
    } else {
        /* the reference forward's y, mx, den */
        y = lc_test_new_f32(in.nq);
        mx = lc_test_new_f32(in.nm);
        den = lc_test_new_f32(in.nm);
        lc_ref_ops.hybrid_fwd(g_ref, y, mx, den, in.q, in.k, in.v, in.fq, in.fk, in.theta, &in.s);
        in_f32(c, "y", y, in.nq);
        in_f32(c, "mx", mx, in.nm);
        in_f32(c, "den", den, in.nm);
    }
    out_f32(c, "dq", in.nq, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "dk", in.nk, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "dv", in.nk, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "dfq", in.nf, CMP_REL, 1e-5, 1e-5);
    out_f32(c, "dfk", in.nf, CMP_REL, 1e-5, 1e-5);
    dth = lc_test_new_f32((size_t)in.s.H);
    for (int h = 0; h < in.s.H; h++) {
        dth[h] = 0.5f;
    }
    hy_dtheta(acc_f32(c, "dtheta", dth, (size_t)in.s.H, CMP_SUM, 1e-5, 1e-5));
    if (subsets) {
        hy_subsets(c, &in);
    }
    return 1;
}

static void call_hybrid_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    if (c->i[0]) {
        be->ops->hybrid_fwd(be, p[7], p[8], p[9], p[0], p[1], p[2], p[3], p[4], p[5], &c->s);
    }
    be->ops->hybrid_bwd(be, p[10], p[11], p[12], p[13], p[14], p[15], p[6], p[7], p[8], p[9], p[0],
                        p[1], p[2], p[3], p[4], p[5], &c->s);
    if (c->i[0] == 2) {
        /* the subsets of hy_subsets: which of dq, dk, dv, dfq, dfk, dtheta */
        static const int sets[5][6] = {{0, 0, 0, 16, 17, 18},
                                       {19, 20, 21, 0, 0, 0},
                                       {22, 0, 0, 0, 0, 0},
                                       {0, 23, 0, 0, 0, 0},
                                       {0, 0, 24, 0, 0, 0}};
        for (int i = 0; i < 5; i++) {
            void *g[6];
            for (int j = 0; j < 6; j++) {
                g[j] = sets[i][j] ? p[sets[i][j]] : NULL;
            }
            be->ops->hybrid_bwd(be, g[0], g[1], g[2], g[3], g[4], g[5], p[6], p[7], p[8], p[9],
                                p[0], p[1], p[2], p[3], p[4], p[5], &c->s);
        }
    }
}

static void call64_hybrid_bwd(const struct opcase *c, void **p)
{
    if (c->i[0]) {
        lc_ref_hybrid_fwd_f64(p[7], p[8], p[9], p[0], p[1], p[2], p[3], p[4], p[5], &c->s);
    }
    lc_ref_hybrid_bwd_f64(p[10], p[11], p[12], p[13], p[14], p[15], p[6], p[7], p[8], p[9], p[0],
                          p[1], p[2], p[3], p[4], p[5], &c->s);
    if (c->i[0] == 2) {
        /* the stage-1 subset's dtheta, compared with this one */
        lc_ref_hybrid_bwd_f64(NULL, NULL, NULL, p[16], p[17], p[18], p[6], p[7], p[8], p[9], p[0],
                              p[1], p[2], p[3], p[4], p[5], &c->s);
    }
}

static int make_hybrid_xent(struct opcase *c, int v)
{
    struct lc_test_hy_in in;
    float *xdfq, *xdfk, *xdth;

    if (!hy_make(c, v, &in, "hybrid_xent")) {
        return 0;
    }
    hy_inputs(c, &in);
    xdfq = lc_test_new_f32(in.nf);
    xdfk = lc_test_new_f32(in.nf);
    xdth = lc_test_new_f32((size_t)in.s.H);
    lc_test_fill_uniform(xdfq, in.nf, 9, -0.1f, 0.1f);
    lc_test_fill_uniform(xdfk, in.nf, 10, -0.1f, 0.1f);
    for (int h = 0; h < in.s.H; h++) {
        xdth[h] = -0.25f;
    }
    ref_vs64(out_f32(c, "row_loss", in.nm, CMP_REL, 1e-5, 1e-5), CMP_REL, 1e-5, 1e-5);
    ref_vs64(acc_f32(c, "dfq", xdfq, in.nf, CMP_REL, 1e-5, 1e-5), CMP_REL, 1e-5, 1e-5);
    ref_vs64(acc_f32(c, "dfk", xdfk, in.nf, CMP_REL, 1e-5, 1e-5), CMP_REL, 1e-5, 1e-5);
    hy_dtheta(acc_f32(c, "dtheta", xdth, (size_t)in.s.H, CMP_SUM, 1e-5, 1e-5));
    return 1;
}

static void call_hybrid_xent(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->hybrid_xent(be, p[7], p[8], p[9], p[10], 0.75f, p[0], p[1], p[3], p[4], p[5], &c->s);
}

static void call64_hybrid_xent(const struct opcase *c, void **p)
{
    lc_ref_hybrid_xent_f64(p[7], p[8], p[9], p[10], 0.75, p[0], p[1], p[3], p[4], p[5], &c->s);
}

/* ---------------------------------------- constant-memory decoding */

enum { DEC_H = 8, DEC_HKV = 2, DEC_D = 40, DEC_F = 24, DEC_N = 37 };

/* Token by token with a window cache and the linear state (as a model
 * decodes; variants 2 ..): terraced keeps the previous and the current
 * block, moving the block two back into the state when a block starts;
 * sliding keeps the last W keys in a ring.  y equals the parallel
 * forward's (on the same backend). */
static int make_decode_tokens(struct opcase *c, int v)
{
    static const int tw[][2] = {{1, 64}, {63, 64}, {64, 64}, {65, 64}, {300, 64}, {40, 3}, {9, 1}};
    const int n = (int)(sizeof(tw) / sizeof(tw[0]));
    const int H = 4, Hkv = 2, D = 16, F = 8;
    struct lc_test_hy_in in;
    int T, W, mode, cap;
    size_t kd;

    if (v >= 2 * n) {
        return 0;
    }
    T = tw[v % n][0];
    W = tw[v % n][1];
    mode = v / n;
    cap = mode == LC_WINDOW_SLIDING ? W : 2 * W;
    kd = (size_t)Hkv * D;
    lc_test_hy_in_make(&in, 1, T, H, Hkv, D, F, W, mode, (uint64_t)(T + 7 * W + mode));
    if (T >= 5) {
        lc_test_hy_make_tie(&in, 2);
    }
    if (T >= 3 * W + 2) {
        lc_test_hy_make_tie(&in, 3 * W - 1);
    }
    c->s = in.s;
    c->i[1] = 1;
    snprintf(c->what, sizeof(c->what), "hybrid_decode token by token T %d W %d mode %d", T, W,
             mode);
    in_f32(c, "q", in.q, in.nq);
    in_f32(c, "k", in.k, in.nk);
    in_f32(c, "v", in.v, in.nk);
    in_f32(c, "fq", in.fq, in.nf);
    in_f32(c, "fk", in.fk, in.nf);
    in_f32(c, "theta", in.theta, (size_t)H);
    free(in.dy);
    acc_f32(c, "S", lc_test_new_f32((size_t)H * F * D), (size_t)H * F * D, CMP_CLOSE, 0, 0)
        ->unchecked = 1;
    acc_f32(c, "z", lc_test_new_f32((size_t)H * F), (size_t)H * F, CMP_CLOSE, 0, 0)->unchecked = 1;
    acc_f32(c, "k cache", lc_test_new_f32((size_t)cap * kd), (size_t)cap * kd, CMP_CLOSE, 0, 0)
        ->unchecked = 1;
    acc_f32(c, "v cache", lc_test_new_f32((size_t)cap * kd), (size_t)cap * kd, CMP_CLOSE, 0, 0)
        ->unchecked = 1;
    out_f32(c, "y of the parallel forward", in.nq, CMP_REL, 1e-5, 1e-5)->unchecked = 1;
    out_f32(c, "y decoded", in.nq, CMP_REL, 1e-5, 1e-5)->unchecked = 1;
    near_pair(c, 11, 10);
    return 1;
}

static void call_decode_tokens(struct lc_backend *be, const struct opcase *c, void **p)
{
    const int T = c->s.T, W = c->s.window, H = c->s.H, Hkv = c->s.Hkv, D = c->s.D, F = c->s.F;
    const size_t kd = (size_t)Hkv * D;
    float *k = p[1], *v = p[2], *fk = p[4], *S = p[6], *z = p[7], *kc = p[8], *vc = p[9];
    int ncache = 0;

    be->ops->hybrid_fwd(be, p[10], NULL, NULL, p[0], k, v, p[3], fk, p[5], &c->s);
    for (int t = 0; t < T; t++) {
        size_t slot;
        if (c->s.mode == LC_WINDOW_SLIDING) {
            if (t >= W) {
                const int old = t - W;
                be->ops->linstate_add(be, S, z, fk + (size_t)old * H * F, v + (size_t)old * kd, 1,
                                      H, Hkv, D, F);
            }
            slot = (size_t)(t % W);
            ncache = t + 1 < W ? t + 1 : W;
        } else {
            if (t % W == 0 && t >= 2 * W) {
                const int old = t - 2 * W;
                be->ops->linstate_add(be, S, z, fk + (size_t)old * H * F, v + (size_t)old * kd, W,
                                      H, Hkv, D, F);
                be->ops->copy(be, kc, kc + (size_t)W * kd, (size_t)W * kd * sizeof(float));
                be->ops->copy(be, vc, vc + (size_t)W * kd, (size_t)W * kd * sizeof(float));
                ncache = W;
            }
            slot = (size_t)ncache;
            ncache++;
        }
        be->ops->copy(be, kc + slot * kd, k + (size_t)t * kd, kd * sizeof(float));
        be->ops->copy(be, vc + slot * kd, v + (size_t)t * kd, kd * sizeof(float));
        be->ops->hybrid_decode(be, (float *)p[11] + (size_t)t * H * D,
                               (float *)p[0] + (size_t)t * H * D, (float *)p[3] + (size_t)t * H * F,
                               kc, vc, ncache, S, z, p[5], H, Hkv, D, F);
    }
}

/* a full window cache, and none (the first token); then make_decode_tokens */
static int make_hybrid_decode(struct opcase *c, int v)
{
    const size_t nkv = (size_t)DEC_N * DEC_HKV * DEC_D;
    float *x;
    if (v > 1) {
        return make_decode_tokens(c, v - 2);
    }
    c->i[0] = v == 0 ? DEC_N : 0;
    snprintf(c->what, sizeof(c->what), "hybrid_decode H %d/%d D %d F %d cache %d", DEC_H, DEC_HKV,
             DEC_D, DEC_F, c->i[0]);
    x = lc_test_new_f32((size_t)DEC_H * DEC_D);
    lc_test_fill_normal(x, (size_t)DEC_H * DEC_D, 1, 1.0f);
    in_f32(c, "q", x, (size_t)DEC_H * DEC_D);
    in_f32(c, "fq", lc_test_new_uniform((size_t)DEC_H * DEC_F, 2, 0.0f, 0.2f),
           (size_t)DEC_H * DEC_F);
    x = lc_test_new_f32(nkv);
    lc_test_fill_normal(x, nkv, 3, 1.0f);
    in_f32(c, "kc", x, nkv);
    x = lc_test_new_f32(nkv);
    lc_test_fill_normal(x, nkv, 4, 1.0f);
    in_f32(c, "vc", x, nkv);
    in_f32(c, "S", lc_test_new_uniform((size_t)DEC_H * DEC_F * DEC_D, 7, -1, 1),
           (size_t)DEC_H * DEC_F * DEC_D);
    in_f32(c, "z", lc_test_new_uniform((size_t)DEC_H * DEC_F, 8, 0.0f, 2.0f),
           (size_t)DEC_H * DEC_F);
    x = lc_test_new_f32(DEC_H);
    lc_test_fill_normal(x, DEC_H, 6, 1.0f);
    in_f32(c, "theta", x, DEC_H);
    ref_vs64(dev_tol(out_f32(c, "y", (size_t)DEC_H * DEC_D, CMP_REL, 1e-6, 1e-6), 1e-5, 1e-5),
             CMP_REL, 1e-6, 1e-6);
    return 1;
}

static void call_hybrid_decode(struct lc_backend *be, const struct opcase *c, void **p)
{
    if (c->i[1]) {
        call_decode_tokens(be, c, p);
        return;
    }
    be->ops->hybrid_decode(be, p[7], p[0], p[1], p[2], p[3], c->i[0], p[4], p[5], p[6], DEC_H,
                           DEC_HKV, DEC_D, DEC_F);
}

static void call64_hybrid_decode(const struct opcase *c, void **p)
{
    if (c->i[1]) {
        return; /* token by token: compared with the parallel forward */
    }
    lc_ref_hybrid_decode_f64(p[7], p[0], p[1], p[2], p[3], c->i[0], p[4], p[5], p[6], DEC_H,
                             DEC_HKV, DEC_D, DEC_F);
}

static int make_linstate_add(struct opcase *c, int v)
{
    const size_t nkv = (size_t)DEC_N * DEC_HKV * DEC_D;
    float *x;
    if (v > 0) {
        return 0;
    }
    snprintf(c->what, sizeof(c->what), "linstate_add H %d/%d D %d F %d n %d", DEC_H, DEC_HKV, DEC_D,
             DEC_F, DEC_N);
    in_f32(c, "fk", lc_test_new_uniform((size_t)DEC_N * DEC_H * DEC_F, 5, 0.0f, 0.2f),
           (size_t)DEC_N * DEC_H * DEC_F);
    x = lc_test_new_f32(nkv);
    lc_test_fill_normal(x, nkv, 4, 1.0f);
    in_f32(c, "v", x, nkv);
    ref_vs64(acc_f32(c, "S", lc_test_new_uniform((size_t)DEC_H * DEC_F * DEC_D, 7, -1, 1),
                     (size_t)DEC_H * DEC_F * DEC_D, CMP_REL, 1e-6, 1e-6),
             CMP_REL, 1e-6, 1e-6);
    ref_vs64(acc_f32(c, "z", lc_test_new_uniform((size_t)DEC_H * DEC_F, 8, 0.0f, 2.0f),
                     (size_t)DEC_H * DEC_F, CMP_REL, 1e-6, 1e-6),
             CMP_REL, 1e-6, 1e-6);
    return 1;
}

static void call_linstate_add(struct lc_backend *be, const struct opcase *c, void **p)
{
    (void)c;
    be->ops->linstate_add(be, p[2], p[3], p[0], p[1], DEC_N, DEC_H, DEC_HKV, DEC_D, DEC_F);
}

static void call64_linstate_add(const struct opcase *c, void **p)
{
    (void)c;
    lc_ref_linstate_add_f64(p[2], p[3], p[0], p[1], DEC_N, DEC_H, DEC_HKV, DEC_D, DEC_F);
}

static int make_hybrid_add_state(struct opcase *c, int v)
{
    const int n = 13;
    const size_t ny = (size_t)n * DEC_H * DEC_D;
    float *y;
    if (v > 0) {
        return 0;
    }
    c->i[0] = n;
    snprintf(c->what, sizeof(c->what), "hybrid_add_state n %d H %d D %d F %d", n, DEC_H, DEC_D,
             DEC_F);
    in_f32(c, "den", lc_test_new_uniform((size_t)n * DEC_H, 11, 0.5f, 3.0f), (size_t)n * DEC_H);
    in_f32(c, "fq", lc_test_new_uniform((size_t)n * DEC_H * DEC_F, 12, 0.0f, 0.2f),
           (size_t)n * DEC_H * DEC_F);
    in_f32(c, "S", lc_test_new_uniform((size_t)DEC_H * DEC_F * DEC_D, 13, -1, 1),
           (size_t)DEC_H * DEC_F * DEC_D);
    in_f32(c, "z", lc_test_new_uniform((size_t)DEC_H * DEC_F, 14, 0.0f, 2.0f),
           (size_t)DEC_H * DEC_F);
    y = lc_test_new_f32(ny);
    lc_test_fill_normal(y, ny, 15, 1.0f);
    ref_vs64(dev_tol(acc_f32(c, "y", y, ny, CMP_REL, 1e-6, 1e-6), 1e-5, 1e-5), CMP_REL, 1e-6, 1e-6);
    return 1;
}

static void call_hybrid_add_state(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->hybrid_add_state(be, p[4], p[0], p[1], p[2], p[3], c->i[0], DEC_H, DEC_D, DEC_F);
}

static void call64_hybrid_add_state(const struct opcase *c, void **p)
{
    lc_ref_hybrid_add_state_f64(p[4], p[0], p[1], p[2], p[3], c->i[0], DEC_H, DEC_D, DEC_F);
}

/* ------------------------------------------------------------ losses */

static const int mse_shapes[][2] = {{1, 1}, {13, 17}, {3, 1000}};
#define N_MSE_SHAPES ((int)(sizeof(mse_shapes) / sizeof(mse_shapes[0])))
/* after those, scale 0.25, wider rows, no columns; dpred to the bit, also
 * in place of pred */
static const int mse_more[][2] = {{1, 1}, {37, 129}, {9, 4096}, {1000, 128}, {3, 0}};
#define N_MSE_MORE ((int)(sizeof(mse_more) / sizeof(mse_more[0])))

/* i[0], i[1] = rows, cols; f[0] = the gradient's scale */
static int make_mse_fwd_bwd(struct opcase *c, int v)
{
    const int s = v - N_MSE_SHAPES;
    int rows, cols;
    size_t n;
    if (s >= N_MSE_MORE) {
        return 0;
    }
    rows = s < 0 ? mse_shapes[v][0] : mse_more[s][0];
    cols = s < 0 ? mse_shapes[v][1] : mse_more[s][1];
    n = (size_t)rows * cols;
    c->i[0] = rows;
    c->i[1] = cols;
    c->f[0] = s < 0 ? 0.01f : 0.25f;
    snprintf(c->what, sizeof(c->what), "mse_fwd_bwd rows %d cols %d", rows, cols);
    in_f32(c, "pred", lc_test_new_uniform(n, s < 0 ? 80 + (uint64_t)v : 160 + (uint64_t)s, -2, 2),
           n);
    in_f32(c, "target", lc_test_new_uniform(n, s < 0 ? 90 + (uint64_t)v : 170 + (uint64_t)s, -2, 2),
           n);
    if (s < 0) {
        out_f32(c, "row_sse", (size_t)rows, CMP_CLOSE, 0, 1e-6);
        out_f32(c, "dpred", n, CMP_CLOSE, 0, 1e-6);
        out_f32(c, "row_sse without dpred", (size_t)rows, CMP_CLOSE, 0, 1e-6);
    } else {
        out_f32(c, "row_sse", (size_t)rows, CMP_CLOSE, 1e-6, 1e-5);
        out_f32(c, "dpred", n, CMP_EXACT, 0, 0);
        out_f32(c, "row_sse without dpred", (size_t)rows, CMP_CLOSE, 1e-6, 1e-5);
        acc_f32(c, "dpred in place of pred", lc_test_dup_f32(c->a[0].host, n), n, CMP_EXACT, 0, 0);
        out_f32(c, "row_sse in place", (size_t)rows, CMP_CLOSE, 1e-6, 1e-5);
        c->twice = 1;
    }
    same_bits(c, 4, 2);
    return 1;
}

static void call_mse_fwd_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->mse_fwd_bwd(be, p[2], p[3], p[0], p[1], c->i[0], c->i[1], c->f[0]);
    be->ops->mse_fwd_bwd(be, p[4], NULL, p[0], p[1], c->i[0], c->i[1], c->f[0]);
    if (c->na > 5) {
        be->ops->mse_fwd_bwd(be, p[6], p[5], p[5], p[1], c->i[0], c->i[1], c->f[0]);
    }
}

static const int xent_vocab[] = {1, 5, 517, 32000};
enum { XENT_N = 9 };
#define N_XENT_VOCAB ((int)(sizeof(xent_vocab) / sizeof(xent_vocab[0])))
/* after those, N rows of V logits in [-20, 20] (Llama 3's vocabulary among
 * them), scale 1/N, row 0 ignored and the last target V - 1 */
static const int xent_more[][2] = {{5, 1}, {7, 1000}, {3, 128256}, {64, 32000}};
#define N_XENT_MORE ((int)(sizeof(xent_more) / sizeof(xent_more[0])))

/* i[0], i[1] = V, N; f[0] = the gradient's scale */
static int make_xent_fwd_bwd(struct opcase *c, int v)
{
    const int s = v - N_XENT_VOCAB;
    int V, N;
    size_t n;
    int32_t *targets;
    float *l;
    if (s >= N_XENT_MORE) {
        return 0;
    }
    V = s < 0 ? xent_vocab[v] : xent_more[s][1];
    N = s < 0 ? XENT_N : xent_more[s][0];
    n = (size_t)N * V;
    c->i[0] = V;
    c->i[1] = N;
    c->f[0] = s < 0 ? 0.5f : 1.0f / (float)N;
    snprintf(c->what, sizeof(c->what), "xent_fwd_bwd N %d V %d", N, V);
    if (s < 0) {
        targets = new_ids(XENT_N);
        for (int r = 0; r < XENT_N; r++) {
            targets[r] = r == 3 ? -1 : (int32_t)((r * 7919) % V);
        }
        l = lc_test_new_uniform(n, 110 + v, -8, 8);
        /* a row far from zero: logsumexp must subtract its max */
        for (int j = 0; j < V; j++) {
            l[5 * (size_t)V + j] += 1000.0f;
        }
    } else {
        l = lc_test_new_uniform(n, 180 + (uint64_t)s, -20, 20);
        targets = uniform_ids((size_t)N, 190 + (uint64_t)s, V);
        targets[0] = -1; /* ignored */
        if (N > 2) {
            targets[N - 1] = V - 1;
        }
    }
    in_raw(c, "targets", targets, (size_t)N * sizeof(int32_t));
    if (s < 0) {
        acc_f32(c, "dlogits in place", lc_test_dup_f32(l, n), n, CMP_CLOSE, 1e-7, 1e-5);
        in_f32(c, "logits", l, n);
        out_f32(c, "row_loss", XENT_N, CMP_CLOSE, 1e-5, 1e-6);
        out_f32(c, "dlogits", n, CMP_CLOSE, 1e-7, 1e-5);
        out_f32(c, "row_loss without dlogits", XENT_N, CMP_CLOSE, 1e-5, 1e-6);
        out_f32(c, "row_loss in place", XENT_N, CMP_CLOSE, 1e-5, 1e-6);
        same_bits(c, 1, 4);
    } else {
        acc_f32(c, "dlogits in place", lc_test_dup_f32(l, n), n, CMP_CLOSE, 1e-9, 1e-5);
        in_f32(c, "logits", l, n);
        /* row 0 is ignored: its loss is 0 */
        out_f32(c, "row_loss", (size_t)N, CMP_CLOSE, 1e-5, 1e-5)->first_exact = 1;
        out_f32(c, "dlogits", n, CMP_CLOSE, 1e-9, 1e-5);
        out_f32(c, "row_loss without dlogits", (size_t)N, CMP_CLOSE, 1e-5, 1e-5);
        out_f32(c, "row_loss in place", (size_t)N, CMP_CLOSE, 1e-5, 1e-5);
        same_bits(c, 6, 3);
    }
    same_bits(c, 5, 3);
    return 1;
}

static void call_xent_fwd_bwd(struct lc_backend *be, const struct opcase *c, void **p)
{
    be->ops->xent_fwd_bwd(be, p[3], p[4], p[2], p[0], c->i[1], c->i[0], c->f[0]);
    be->ops->xent_fwd_bwd(be, p[5], NULL, p[2], p[0], c->i[1], c->i[0], c->f[0]);
    be->ops->xent_fwd_bwd(be, p[6], p[1], p[1], p[0], c->i[1], c->i[0], c->f[0]);
}

/* ------------------------------------------------------------ AdamW */

#define N_ADAMW 50021
#define N_ADAMW_RUN 10007

/* Variants 0-3: steps 1 and 10 from a state; beta1 0.9 takes the cpu's
 * first lerp form, 0.3 the second.  Variants 4-9: steps 1 .. i[1] (1, 2
 * or 3) in turn from zero moments, the state after the last compared. */
static int make_adamw(struct opcase *c, int v)
{
    const int s = v - 4;
    if (s >= 6) {
        return 0;
    }
    c->d[0] = (s < 0 ? v : s) % 2 ? 0.3 : 0.9;
    if (s < 0) {
        c->i[0] = v / 2 ? 10 : 1;
        snprintf(c->what, sizeof(c->what), "adamw step %d beta1 %g", c->i[0], c->d[0]);
        in_f32(c, "g", lc_test_new_uniform(N_ADAMW, 121, -0.1f, 0.1f), N_ADAMW);
        acc_f32(c, "p", lc_test_new_uniform(N_ADAMW, 120, -1, 1), N_ADAMW, CMP_CLOSE, 1e-7, 1e-6);
        acc_f32(c, "m", lc_test_new_uniform(N_ADAMW, 122, -0.05f, 0.05f), N_ADAMW, CMP_CLOSE, 1e-9,
                1e-6);
        acc_f32(c, "v", lc_test_new_uniform(N_ADAMW, 123, 0, 0.01f), N_ADAMW, CMP_CLOSE, 1e-12,
                1e-6);
        return 1;
    }
    c->i[1] = s / 2 + 1;
    snprintf(c->what, sizeof(c->what), "adamw steps 1..%d beta1 %g", c->i[1], c->d[0]);
    for (int step = 1; step <= 3; step++) {
        const uint64_t seed = 210 + 10 * (uint64_t)(s % 2) + (uint64_t)step;
        in_f32(c, "g", lc_test_new_uniform(N_ADAMW_RUN, seed, -1, 1), N_ADAMW_RUN);
    }
    /* rounding (and contraction into FMAs) on the scale of g for m,
     * g^2 (1 - beta2) for v, and lr for p */
    acc_f32(c, "p", lc_test_new_uniform(N_ADAMW_RUN, 200 + (uint64_t)(s % 2), -1, 1), N_ADAMW_RUN,
            CMP_CLOSE, 1e-8, 1e-6);
    acc_f32(c, "m", lc_test_new_f32(N_ADAMW_RUN), N_ADAMW_RUN, CMP_CLOSE, 1e-7, 1e-6);
    acc_f32(c, "v", lc_test_new_f32(N_ADAMW_RUN), N_ADAMW_RUN, CMP_CLOSE, 1e-10, 1e-6);
    return 1;
}

static void call_adamw(struct lc_backend *be, const struct opcase *c, void **p)
{
    if (c->i[1] == 0) {
        be->ops->adamw(be, p[1], p[0], p[2], p[3], N_ADAMW, 1e-3, c->d[0], 0.999, 1e-8, 0.1,
                       c->i[0]);
    }
    for (int step = 1; step <= c->i[1]; step++) {
        be->ops->adamw(be, p[3], p[step - 1], p[4], p[5], N_ADAMW_RUN, 1e-3, c->d[0], 0.999, 1e-8,
                       0.01, step);
    }
}

/* ================================================================ table */

#define ROW(op, c64, emu)                                                                          \
    {                                                                                              \
#op, make_##op, call_##op, c64, emu                                                        \
    }

static const struct row rows[] = {
    ROW(gemm, NULL, 0),
    ROW(linear_fwd, NULL, 0),
    ROW(linear_bwd, NULL, 0),
    ROW(add, call64_add, 0),
    ROW(dropout, NULL, 0),
    ROW(embedding_fwd, NULL, 0),
    ROW(embedding_bwd, call64_embedding_bwd, 0),
    ROW(rmsnorm_fwd, NULL, 0),
    ROW(rmsnorm_bwd, NULL, 0),
    ROW(rope_fwd, NULL, 0),
    ROW(rope_bwd, NULL, 0),
    ROW(swiglu_fwd, NULL, 0),
    ROW(swiglu_bwd, NULL, 0),
    ROW(attn_fwd, call64_attn_fwd, 1),
    ROW(fmap_fwd, call64_fmap_fwd, 1),
    ROW(fmap_bwd, NULL, 1),
    ROW(hybrid_fwd, NULL, 1),
    ROW(hybrid_bwd, call64_hybrid_bwd, 1),
    ROW(hybrid_xent, call64_hybrid_xent, 1),
    ROW(hybrid_decode, call64_hybrid_decode, 1),
    ROW(linstate_add, call64_linstate_add, 1),
    ROW(hybrid_add_state, call64_hybrid_add_state, 1),
    ROW(mse_fwd_bwd, NULL, 0),
    ROW(xent_fwd_bwd, NULL, 0),
    ROW(adamw, NULL, 0),
};
#define N_ROWS ((int)(sizeof(rows) / sizeof(rows[0])))

static const struct row *row_of(const char *entry)
{
    for (int r = 0; r < N_ROWS; r++) {
        if (strcmp(rows[r].entry, entry) == 0) {
            return &rows[r];
        }
    }
    return NULL;
}

/* Every compute entry of the table has its row, and every row an entry. */
static void test_every_entry_has_a_row(void **state)
{
    static const char *const entries[] = {
#define LC_ENTRY_NAME(f) #f,
        LC_BACKEND_COMPUTE_OPS(LC_ENTRY_NAME)
#undef LC_ENTRY_NAME
    };
    const int n = (int)(sizeof(entries) / sizeof(entries[0]));
    int missing = 0;
    (void)state;

    for (int i = 0; i < n; i++) {
        if (row_of(entries[i]) == NULL) {
            fprintf(stderr, "backend entry '%s' has no row in tests/test_backend_ops.c\n",
                    entries[i]);
            missing++;
        }
    }
    for (int r = 0; r < N_ROWS; r++) {
        int found = 0;
        for (int i = 0; i < n; i++) {
            found |= strcmp(entries[i], rows[r].entry) == 0;
        }
        if (!found) {
            fprintf(stderr, "row '%s' names no entry of the backend table\n", rows[r].entry);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    assert_int_equal(n, N_ROWS);
}

static void test_row(void **state)
{
    run_row(*state);
}

int main(void)
{
    struct CMUnitTest tests[N_ROWS + 1];
    int nt = 0;
    int rc;

    tests[nt++] = (struct CMUnitTest)cmocka_unit_test(test_every_entry_has_a_row);
    for (int r = 0; r < N_ROWS; r++) {
#ifdef LC_CUDA_EMU
        if (!rows[r].emulated) {
            continue; /* its kernels are not built under the emulation */
        }
#endif
        tests[nt] = (struct CMUnitTest)cmocka_unit_test(test_row);
        tests[nt].name = rows[r].entry;
        tests[nt].initial_state = (void *)&rows[r];
        nt++;
    }
    rc = _cmocka_run_group_tests("backend_ops", tests, (size_t)nt, setup, teardown);
#ifdef LC_CUDA_EMU
    /* the kernels ran (not a table of no-ops) */
    if (rc == 0 && lc_emu_launches < 100) {
        fprintf(stderr, "test_backend_ops_emu: only %lld kernel launches\n", lc_emu_launches);
        return 1;
    }
#endif
    return rc;
}
