/*
 * The cuda backend against the reference kernels: memory, errors, and
 * every operation it implements, on awkward shapes (odd sizes, one row,
 * one query after a cache, grouped KV heads, F32/F16/BF16 weights).
 *
 * Inputs are made on the host, run through the ref backend and, uploaded,
 * through the cuda backend; the results are compared with the tolerances
 * stated at each check.  Operations whose summation order matches the
 * reference (gathers, the embedding scatter-add, dropout) must agree to
 * the bit.  Reductions must also give the same bits when run twice.
 *
 * Without a CUDA device this only checks that init says so, and exits 77.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend-cuda/cuda_kernels.h"
#include "core/half.h"
#include "tests/lc_test.h"

struct backends {
    struct lc_backend *ref;
    struct lc_backend *gpu;
};

static int setup(void **state)
{
    struct backends *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return -1;
    }
    b->ref = lc_test_backend(&lc_ref_ops);
    b->gpu = lc_test_backend(&lc_cuda_ops);
    fprintf(stderr, "%s\n", b->gpu->ops->describe(b->gpu));
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    struct backends *b = *state;
    lc_test_backend_free(b->ref);
    lc_test_backend_free(b->gpu);
    free(b);
    return 0;
}

/* The reference kernels come with the ref backend's table; a test whose
 * reference entry is not there yet is skipped, never run against NULL. */
#define NEED_REF(op)                                                           \
    do {                                                                       \
        if (lc_ref_ops.op == NULL) {                                           \
            fprintf(stderr, "note: ref backend has no " #op " yet: skipped\n"); \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* ---------------------------------------------------------------- helpers */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n + 1, size);
    if (p == NULL) {
        fail_msg("out of memory");
    }
    return p;
}

static float *new_f32(size_t n)
{
    return xcalloc(n, sizeof(float));
}

static float *new_uniform(size_t n, uint64_t seed, float lo, float hi)
{
    float *p = new_f32(n);
    lc_test_fill_uniform(p, n, seed, lo, hi);
    return p;
}

static float *dup_f32(const float *x, size_t n)
{
    float *p = new_f32(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = NAN;
    }
}

/* ids in [0, V) from a seed, with repeats */
static int32_t *new_ids(size_t n, uint64_t seed, int V)
{
    int32_t *ids = xcalloc(n, sizeof(int32_t));
    float *u = new_uniform(n, seed, 0.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        int id = (int)(u[i] * (float)V);
        ids[i] = id < V ? id : V - 1;
    }
    free(u);
    return ids;
}

/* weights stored in a dtype: a copy of w rounded to it */
static void *to_dtype(const float *w, size_t n, enum lc_dtype type)
{
    uint16_t *h;
    if (type == LC_DTYPE_F32) {
        return dup_f32(w, n);
    }
    h = xcalloc(n, sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        h[i] = type == LC_DTYPE_F16 ? lc_f32_to_f16(w[i]) : lc_f32_to_bf16(w[i]);
    }
    return h;
}

/* x rounded to the dtype and back (what the cuda linear layers feed the
 * tensor cores with F16/BF16 weights) */
static float *rounded_like(const float *x, size_t n, enum lc_dtype type)
{
    float *r = dup_f32(x, n);
    for (size_t i = 0; type != LC_DTYPE_F32 && i < n; i++) {
        r[i] = type == LC_DTYPE_F16 ? lc_f16_to_f32(lc_f32_to_f16(x[i]))
                                    : lc_bf16_to_f32(lc_f32_to_bf16(x[i]));
    }
    return r;
}

static void *dev(struct backends *b, const void *host, size_t bytes)
{
    void *d = lc_be_upload_new(b->gpu, host, bytes);
    if (d == NULL) {
        fail_msg("cuda alloc of %zu bytes failed", bytes);
    }
    return d;
}

static void gpu_sync(struct backends *b)
{
    struct lc_error err = {0};
    if (b->gpu->ops->sync(b->gpu, &err) != LC_OK) {
        fail_msg("cuda sync failed: %s", err.msg);
    }
}

/* n floats of device memory into a fresh host array (syncs first) */
static float *fetch(struct backends *b, const void *d, size_t n)
{
    float *h = new_f32(n);
    gpu_sync(b);
    b->gpu->ops->download(b->gpu, h, d, n * sizeof(float));
    gpu_sync(b);
    return h;
}

static void gpu_free(struct backends *b, void *d)
{
    b->gpu->ops->release(b->gpu, d);
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double atol, double rtol)
{
    if (lc_test_check_close(what, got, want, n, atol, rtol) != 0) {
        fail_msg("%s: cuda differs from ref", what);
    }
}

static void expect_same(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            fail_msg("%s: element %zu differs: %.9g vs %.9g", what, i, a[i], b[i]);
        }
    }
}

static void set_attn_chunk(struct backends *b, int rows)
{
    ((struct lc_cuda_ctx *)b->gpu->ctx)->attn_chunk = rows;
}

/* ---------------------------------------------------------------- memory */

static void test_memory(void **state)
{
    struct backends *b = *state;
    const struct lc_backend_ops *o = b->gpu->ops;
    size_t n = 1000003;
    unsigned char *pattern = xcalloc(n, 1);
    unsigned char *back = xcalloc(n, 1);
    unsigned char *want = xcalloc(n, 1);
    unsigned char *d = NULL;
    unsigned char *d2 = NULL;
    void *z0 = NULL;
    void *z1 = NULL;

    assert_int_equal(o->host_memory, 0);
    for (size_t i = 0; i < n; i++) {
        pattern[i] = (unsigned char)(i * 131 + 7);
    }
    /* alloc is zero-filled, also after memory was used and released */
    for (int round = 0; round < 2; round++) {
        d = o->alloc(b->gpu, n);
        assert_non_null(d);
        memset(back, 0xff, n);
        o->download(b->gpu, back, d, n);
        for (size_t i = 0; i < n; i++) {
            if (back[i] != 0) {
                fail_msg("alloc: byte %zu is %d, not 0", i, back[i]);
            }
        }
        o->upload(b->gpu, d, pattern, n);
        o->download(b->gpu, back, d, n);
        assert_memory_equal(back, pattern, n);
        o->release(b->gpu, d);
    }
    /* 0 bytes: two distinct pointers */
    z0 = o->alloc(b->gpu, 0);
    z1 = o->alloc(b->gpu, 0);
    assert_non_null(z0);
    assert_non_null(z1);
    assert_ptr_not_equal(z0, z1);
    o->release(b->gpu, z0);
    o->release(b->gpu, z1);
    o->release(b->gpu, NULL);
    /* far more than any device has: NULL, and nothing left to report */
    assert_null(o->alloc(b->gpu, (size_t)1 << 52));
    gpu_sync(b);

    /* copy between buffers, and overlapping both ways (memmove) */
    d = o->alloc(b->gpu, n);
    d2 = o->alloc(b->gpu, n);
    o->upload(b->gpu, d, pattern, n);
    o->copy(b->gpu, d2 + 3, d + 10, n - 20);
    memset(want, 0, n);
    memcpy(want + 3, pattern + 10, n - 20);
    o->download(b->gpu, back, d2, n);
    assert_memory_equal(back, want, n);
    o->copy(b->gpu, d + 1000, d, n - 1000);
    memcpy(want, pattern, n);
    memmove(want + 1000, want, n - 1000);
    o->download(b->gpu, back, d, n);
    assert_memory_equal(back, want, n);
    o->copy(b->gpu, d, d + 7, n - 7);
    memmove(want, want + 7, n - 7);
    o->download(b->gpu, back, d, n);
    assert_memory_equal(back, want, n);
    o->copy(b->gpu, d, d, n); /* to itself: nothing */
    o->copy(b->gpu, d, d2, 0);
    /* zero a range */
    o->zero(b->gpu, d + 5, 1001);
    memset(want + 5, 0, 1001);
    o->download(b->gpu, back, d, n);
    assert_memory_equal(back, want, n);
    gpu_sync(b);
    o->release(b->gpu, d);
    o->release(b->gpu, d2);
    assert_non_null(strstr(o->describe(b->gpu), "cuBLAS"));
    free(pattern);
    free(back);
    free(want);
}

/* A failed launch is kept and reported by the next sync, once; the
 * backend works on afterwards. */
static void test_errors(void **state)
{
    struct backends *b = *state;
    struct lc_error err = {0};
    float *A = dev(b, (float[8]){0}, 8 * sizeof(float));
    float *C = dev(b, (float[8]){0}, 8 * sizeof(float));
    lc_status rc;

    /* lda < K: cuBLAS refuses */
    b->gpu->ops->gemm(b->gpu, 0, 0, 2, 2, 2, 1.0f, A, 1, A, 2, 0.0f, C, 2);
    rc = b->gpu->ops->sync(b->gpu, &err);
    assert_int_equal(rc, LC_ERR_BACKEND);
    fprintf(stderr, "expected error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "cuda: gemm: "));
    assert_int_equal(b->gpu->ops->sync(b->gpu, &err), LC_OK);
    /* H not a multiple of Hkv */
    b->gpu->ops->attn_fwd(b->gpu, C, A, A, A, 1, 1, 1, 3, 2, 1, 0);
    assert_int_equal(b->gpu->ops->sync(b->gpu, &err), LC_ERR_BACKEND);
    assert_non_null(strstr(err.msg, "cuda: attn_fwd: "));
    b->gpu->ops->gemm(b->gpu, 0, 0, 2, 2, 2, 1.0f, A, 2, A, 2, 0.0f, C, 2);
    gpu_sync(b);
    gpu_free(b, A);
    gpu_free(b, C);
}

/* The registry rejects the table while entries are missing, naming one;
 * with every entry present it opens. */
static void test_open(void **state)
{
    struct lc_backend *be = NULL;
    struct lc_error err = {0};
    const char *missing = lc_backend_ops_missing(&lc_cuda_ops);
    lc_status rc;

    (void)state;
    rc = lc_backend_open(&be, "cuda", &err);
    if (missing != NULL) {
        assert_int_equal(rc, LC_ERR_BACKEND);
        assert_null(be);
        assert_non_null(strstr(err.msg, missing));
        fprintf(stderr, "expected: %s\n", err.msg);
    } else {
        assert_int_equal(rc, LC_OK);
        lc_backend_close(be);
    }
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
        {0, 0, 5, 6, 0, 1.0f, 0.0f, 0},      {1, 1, 1, 257, 33, 1.0f, 0.0f, 1},
        {0, 0, 257, 300, 129, -1.0f, 2.0f, 4},
    };
    struct backends *b = *state;

    NEED_REF(gemm);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct gemm_shape *g = &shapes[s];
        int lda = (g->ta ? g->M : g->K) + g->pad;
        int ldb = (g->tb ? g->K : g->N) + g->pad;
        int ldc = g->N + g->pad;
        size_t na = (size_t)(g->ta ? g->K : g->M) * lda + 1;
        size_t nb = (size_t)(g->tb ? g->N : g->K) * ldb + 1;
        size_t nc = (size_t)g->M * ldc;
        float *A = new_uniform(na, 100 + s, -1, 1);
        float *B = new_uniform(nb, 200 + s, -1, 1);
        float *C0 = new_uniform(nc, 300 + s, -1, 1);
        float *want = NULL;
        float *dA = NULL;
        float *dB = NULL;
        float *dC = NULL;
        float *got = NULL;
        float *got2 = NULL;
        char what[96];

        if (g->beta == 0.0f) {
            fill_nan(C0, nc); /* beta 0 must ignore C */
        }
        want = dup_f32(C0, nc);
        lc_ref_ops.gemm(b->ref, g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta,
                        want, ldc);
        dA = dev(b, A, na * sizeof(float));
        dB = dev(b, B, nb * sizeof(float));
        dC = dev(b, C0, nc * sizeof(float));
        b->gpu->ops->gemm(b->gpu, g->ta, g->tb, g->M, g->N, g->K, g->alpha, dA, lda, dB, ldb,
                          g->beta, dC, ldc);
        got = fetch(b, dC, nc);
        snprintf(what, sizeof(what), "gemm ta%d tb%d %dx%dx%d", g->ta, g->tb, g->M, g->N, g->K);
        /* the padding of C is left alone */
        for (int r = 0; r < g->M; r++) {
            for (int j = 0; j < ldc; j++) {
                size_t o = (size_t)r * ldc + j;
                if (j >= g->N) {
                    assert_memory_equal(&got[o], &C0[o], sizeof(float));
                    got[o] = want[o] = 0;
                }
            }
        }
        expect_close(what, got, want, nc, 1e-5 * sqrt(g->K + 1.0), 1e-5);
        /* the same call again gives the same bits */
        b->gpu->ops->upload(b->gpu, dC, C0, nc * sizeof(float));
        b->gpu->ops->gemm(b->gpu, g->ta, g->tb, g->M, g->N, g->K, g->alpha, dA, lda, dB, ldb,
                          g->beta, dC, ldc);
        got2 = fetch(b, dC, nc);
        for (size_t i = 0; i < nc; i++) {
            if (i % ldc >= (size_t)g->N) {
                got2[i] = 0;
            }
        }
        expect_same(what, got, got2, nc);
        gpu_free(b, dA);
        gpu_free(b, dB);
        gpu_free(b, dC);
        free(A);
        free(B);
        free(C0);
        free(want);
        free(got);
        free(got2);
    }
}

/* ---------------------------------------------------------------- linear */

struct linear_shape {
    int N, K, M;
};

static void check_linear(struct backends *b, const struct linear_shape *sh, enum lc_dtype type,
                         float beta, uint64_t seed)
{
    int N = sh->N;
    int K = sh->K;
    int M = sh->M;
    size_t nw = (size_t)M * K;
    float *wf = new_uniform(nw, seed, -1, 1);
    void *w = to_dtype(wf, nw, type);
    float *x = new_uniform((size_t)N * K, seed + 1, -2, 2);
    float *dy = new_uniform((size_t)N * M, seed + 2, -2, 2);
    float *y0 = new_uniform((size_t)N * M, seed + 3, -1, 1);
    float *dx0 = new_uniform((size_t)N * K, seed + 4, -1, 1);
    /* the reference sees the activations the tensor cores see */
    float *x_r = rounded_like(x, (size_t)N * K, type);
    float *dy_r = rounded_like(dy, (size_t)N * M, type);
    float *y_ref = NULL;
    float *dx_ref = NULL;
    float *got = NULL;
    void *dw = NULL;
    float *dx_d = NULL;
    float *dy_d = NULL;
    float *y_d = NULL;
    float *dxo_d = NULL;
    size_t wbytes = nw * (type == LC_DTYPE_F32 ? 4 : 2);
    /* fp32: ~1e-5; F16/BF16: the same products, summed in another order */
    double rtol = type == LC_DTYPE_F32 ? 1e-5 : 1e-3;
    double atol_f = (type == LC_DTYPE_F32 ? 1e-5 : 1e-4) * sqrt(K + 1.0);
    double atol_b = (type == LC_DTYPE_F32 ? 1e-5 : 1e-4) * sqrt(M + 1.0);
    char what[128];

    if (beta == 0.0f) {
        fill_nan(y0, (size_t)N * M);
        fill_nan(dx0, (size_t)N * K);
    }
    y_ref = dup_f32(y0, (size_t)N * M);
    dx_ref = dup_f32(dx0, (size_t)N * K);
    lc_ref_ops.linear_fwd(b->ref, y_ref, x_r, w, type, N, K, M, beta);
    lc_ref_ops.linear_bwd(b->ref, dx_ref, dy_r, w, type, N, K, M, beta);

    dw = dev(b, w, wbytes);
    dx_d = dev(b, x, (size_t)N * K * sizeof(float));
    dy_d = dev(b, dy, (size_t)N * M * sizeof(float));
    y_d = dev(b, y0, (size_t)N * M * sizeof(float));
    dxo_d = dev(b, dx0, (size_t)N * K * sizeof(float));
    b->gpu->ops->linear_fwd(b->gpu, y_d, dx_d, dw, type, N, K, M, beta);
    b->gpu->ops->linear_bwd(b->gpu, dxo_d, dy_d, dw, type, N, K, M, beta);

    got = fetch(b, y_d, (size_t)N * M);
    snprintf(what, sizeof(what), "linear_fwd %s N%d K%d M%d beta %g", lc_dtype_name(type), N, K, M,
             beta);
    expect_close(what, got, y_ref, (size_t)N * M, atol_f, rtol);
    free(got);
    got = fetch(b, dxo_d, (size_t)N * K);
    snprintf(what, sizeof(what), "linear_bwd %s N%d K%d M%d beta %g", lc_dtype_name(type), N, K, M,
             beta);
    expect_close(what, got, dx_ref, (size_t)N * K, atol_b, rtol);
    free(got);
    /* the weights were not touched */
    {
        unsigned char *wb = xcalloc(wbytes, 1);
        gpu_sync(b);
        b->gpu->ops->download(b->gpu, wb, dw, wbytes);
        gpu_sync(b);
        assert_memory_equal(wb, w, wbytes);
        free(wb);
    }
    gpu_free(b, dw);
    gpu_free(b, dx_d);
    gpu_free(b, dy_d);
    gpu_free(b, y_d);
    gpu_free(b, dxo_d);
    free(wf);
    free(w);
    free(x);
    free(dy);
    free(y0);
    free(dx0);
    free(x_r);
    free(dy_r);
    free(y_ref);
    free(dx_ref);
}

static void test_linear(void **state)
{
    static const struct linear_shape shapes[] = {
        {1, 1, 1}, {3, 5, 7}, {17, 129, 33}, {1, 4096, 64}, {64, 512, 384}, {130, 96, 1000},
        {4, 0, 3}, {2, 3, 0},
    };
    static const enum lc_dtype types[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
    struct backends *b = *state;

    NEED_REF(linear_fwd);
    NEED_REF(linear_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (size_t t = 0; t < 3; t++) {
            check_linear(b, &shapes[s], types[t], 0.0f, 1000 + 10 * s + t);
            check_linear(b, &shapes[s], types[t], 1.0f, 2000 + 10 * s + t);
        }
    }
    check_linear(b, &shapes[2], LC_DTYPE_BF16, -0.5f, 3000);
}

/* ------------------------------------------------------- add and dropout */

static void test_add(void **state)
{
    struct backends *b = *state;
    size_t n = 1000003;
    float *x = NULL;
    float *y = NULL;
    float *want = NULL;
    float *dx = NULL;
    float *dy = NULL;
    float *got = NULL;

    NEED_REF(add);
    x = new_uniform(n, 1, -1, 1);
    y = new_uniform(n, 2, -1, 1);
    want = dup_f32(y, n);
    dx = dev(b, x, n * sizeof(float));
    dy = dev(b, y, n * sizeof(float));
    lc_ref_ops.add(b->ref, want, x, (int64_t)n);
    b->gpu->ops->add(b->gpu, dy, dx, (int64_t)n);
    got = fetch(b, dy, n);
    expect_same("add", got, want, n);
    /* y += y */
    b->gpu->ops->add(b->gpu, dy, dy, 1);
    free(got);
    got = fetch(b, dy, 1);
    assert_true(got[0] == want[0] + want[0]);
    gpu_free(b, dx);
    gpu_free(b, dy);
    free(x);
    free(y);
    free(want);
    free(got);
}

static void test_dropout(void **state)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.999f, 1.0f};
    static const uint64_t seeds[] = {0, 12345, UINT64_MAX};
    struct backends *b = *state;
    size_t n = 1000003;
    float *x = NULL;
    float *dx = NULL;
    float *dy = NULL;

    NEED_REF(dropout);
    x = new_uniform(n, 3, -1, 1);
    dx = dev(b, x, n * sizeof(float));
    dy = dev(b, x, n * sizeof(float));
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
            float *want = new_f32(n);
            float *got = NULL;
            size_t kept = 0;
            char what[64];

            lc_ref_ops.dropout(b->ref, want, x, (int64_t)n, ps[i], seeds[s]);
            b->gpu->ops->dropout(b->gpu, dy, dx, (int64_t)n, ps[i], seeds[s]);
            got = fetch(b, dy, n);
            snprintf(what, sizeof(what), "dropout p %g seed %llu", ps[i],
                     (unsigned long long)seeds[s]);
            expect_same(what, got, want, n);
            for (size_t j = 0; j < n; j++) {
                kept += got[j] != 0.0f;
            }
            /* the mask keeps about 1 - p (binomial: 6 standard deviations) */
            assert_true(fabs((double)kept / n - (1.0 - ps[i])) <=
                        6.0 * sqrt(ps[i] * (1.0 - ps[i]) / n) + 1e-6);
            /* in place (y aliases x) */
            b->gpu->ops->upload(b->gpu, dy, x, n * sizeof(float));
            b->gpu->ops->dropout(b->gpu, dy, dy, (int64_t)n, ps[i], seeds[s]);
            free(got);
            got = fetch(b, dy, n);
            expect_same(what, got, want, n);
            free(got);
            free(want);
        }
    }
    gpu_free(b, dx);
    gpu_free(b, dy);
    free(x);
}

/* ------------------------------------------------------------ embedding */

static void test_embedding(void **state)
{
    static const enum lc_dtype types[] = {LC_DTYPE_F32, LC_DTYPE_F16, LC_DTYPE_BF16};
    static const int shapes[][3] = {{1, 1, 1}, {101, 67, 37}, {300, 4096, 5}, {7, 3, 1000}};
    struct backends *b = *state;

    NEED_REF(embedding_fwd);
    NEED_REF(embedding_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0];
        int C = shapes[s][1];
        int V = shapes[s][2];
        int32_t *ids = new_ids((size_t)N, 40 + s, V);
        float *dout = new_uniform((size_t)N * C, 50 + s, -1, 1);
        float *dt0 = new_uniform((size_t)V * C, 60 + s, -1, 1);
        float *dt_ref = dup_f32(dt0, (size_t)V * C);
        int32_t *ids_d = dev(b, ids, (size_t)N * sizeof(int32_t));
        float *dout_d = dev(b, dout, (size_t)N * C * sizeof(float));
        float *dt_d = dev(b, dt0, (size_t)V * C * sizeof(float));
        float *got = NULL;

        for (size_t t = 0; t < 3; t++) {
            float *tf = new_uniform((size_t)V * C, 70 + s, -3, 3);
            void *table = to_dtype(tf, (size_t)V * C, types[t]);
            size_t tbytes = (size_t)V * C * (types[t] == LC_DTYPE_F32 ? 4 : 2);
            void *table_d = dev(b, table, tbytes);
            float *want = new_f32((size_t)N * C);
            float *out_d = dev(b, want, (size_t)N * C * sizeof(float));

            lc_ref_ops.embedding_fwd(b->ref, want, ids, table, types[t], N, C);
            b->gpu->ops->embedding_fwd(b->gpu, out_d, ids_d, table_d, types[t], N, C);
            got = fetch(b, out_d, (size_t)N * C);
            expect_same("embedding_fwd", got, want, (size_t)N * C);
            free(got);
            gpu_free(b, table_d);
            gpu_free(b, out_d);
            free(tf);
            free(table);
            free(want);
        }
        /* the scatter-add sums repeated ids in token order, as the reference */
        lc_ref_ops.embedding_bwd(b->ref, dt_ref, dout, ids, N, C, V);
        b->gpu->ops->embedding_bwd(b->gpu, dt_d, dout_d, ids_d, N, C, V);
        got = fetch(b, dt_d, (size_t)V * C);
        expect_same("embedding_bwd", got, dt_ref, (size_t)V * C);
        free(got);
        gpu_free(b, ids_d);
        gpu_free(b, dout_d);
        gpu_free(b, dt_d);
        free(ids);
        free(dout);
        free(dt0);
        free(dt_ref);
    }
}

/* --------------------------------------------------------------- rmsnorm */

static void test_rmsnorm(void **state)
{
    static const int shapes[][2] = {{1, 1}, {5, 4097}, {33, 4096}, {1, 16384}, {700, 31}};
    struct backends *b = *state;

    NEED_REF(rmsnorm_fwd);
    NEED_REF(rmsnorm_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0];
        int C = shapes[s][1];
        size_t nx = (size_t)N * C;
        float eps = s % 2 ? 1e-5f : 1e-6f;
        float *x = new_uniform(nx, 80 + s, -2, 2);
        float *w = new_uniform((size_t)C, 90 + s, 0.5f, 1.5f);
        float *g = new_uniform(nx, 100 + s, -1, 1);
        float *dx0 = new_uniform(nx, 110 + s, -1, 1);
        float *dw0 = new_uniform((size_t)C, 120 + s, -1, 1);
        float *out_ref = new_f32(nx);
        float *rstd_ref = new_f32((size_t)N);
        float *dx_ref = dup_f32(dx0, nx);
        float *dw_ref = dup_f32(dw0, (size_t)C);
        float *dx_ref2 = dup_f32(dx0, nx);
        float *x_d = dev(b, x, nx * sizeof(float));
        float *w_d = dev(b, w, (size_t)C * sizeof(float));
        float *g_d = dev(b, g, nx * sizeof(float));
        float *out_d = dev(b, out_ref, nx * sizeof(float));
        float *rstd_d = dev(b, rstd_ref, (size_t)N * sizeof(float));
        float *dx_d = dev(b, dx0, nx * sizeof(float));
        float *dw_d = dev(b, dw0, (size_t)C * sizeof(float));
        float *got = NULL;
        float *got2 = NULL;

        lc_ref_ops.rmsnorm_fwd(b->ref, out_ref, rstd_ref, x, w, N, C, eps);
        lc_ref_ops.rmsnorm_bwd(b->ref, dx_ref, dw_ref, g, x, w, rstd_ref, N, C);
        lc_ref_ops.rmsnorm_bwd(b->ref, dx_ref2, NULL, g, x, w, rstd_ref, N, C);

        b->gpu->ops->rmsnorm_fwd(b->gpu, out_d, rstd_d, x_d, w_d, N, C, eps);
        got = fetch(b, out_d, nx);
        expect_close("rmsnorm_fwd out", got, out_ref, nx, 1e-6, 1e-5);
        free(got);
        got = fetch(b, rstd_d, (size_t)N);
        expect_close("rmsnorm_fwd rstd", got, rstd_ref, (size_t)N, 0, 1e-5);
        free(got);
        /* rstd is optional; out may alias x */
        b->gpu->ops->rmsnorm_fwd(b->gpu, x_d, NULL, x_d, w_d, N, C, eps);
        got = fetch(b, x_d, nx);
        expect_close("rmsnorm_fwd in place", got, out_ref, nx, 1e-6, 1e-5);
        free(got);
        b->gpu->ops->upload(b->gpu, x_d, x, nx * sizeof(float));

        /* the backward from the reference rstd, so that it alone is tested */
        b->gpu->ops->upload(b->gpu, rstd_d, rstd_ref, (size_t)N * sizeof(float));
        b->gpu->ops->rmsnorm_bwd(b->gpu, dx_d, dw_d, g_d, x_d, w_d, rstd_d, N, C);
        got = fetch(b, dx_d, nx);
        expect_close("rmsnorm_bwd dx", got, dx_ref, nx, 1e-5, 1e-5);
        free(got);
        got = fetch(b, dw_d, (size_t)C);
        expect_close("rmsnorm_bwd dw", got, dw_ref, (size_t)C, 1e-5 * sqrt(N), 1e-5);
        /* run to run: the same bits */
        b->gpu->ops->upload(b->gpu, dw_d, dw0, (size_t)C * sizeof(float));
        b->gpu->ops->upload(b->gpu, dx_d, dx0, nx * sizeof(float));
        b->gpu->ops->rmsnorm_bwd(b->gpu, dx_d, dw_d, g_d, x_d, w_d, rstd_d, N, C);
        got2 = fetch(b, dw_d, (size_t)C);
        expect_same("rmsnorm_bwd dw twice", got, got2, (size_t)C);
        free(got);
        free(got2);
        /* dw is optional */
        b->gpu->ops->upload(b->gpu, dx_d, dx0, nx * sizeof(float));
        b->gpu->ops->rmsnorm_bwd(b->gpu, dx_d, NULL, g_d, x_d, w_d, rstd_d, N, C);
        got = fetch(b, dx_d, nx);
        expect_close("rmsnorm_bwd dx (no dw)", got, dx_ref2, nx, 1e-5, 1e-5);
        free(got);

        gpu_free(b, x_d);
        gpu_free(b, w_d);
        gpu_free(b, g_d);
        gpu_free(b, out_d);
        gpu_free(b, rstd_d);
        gpu_free(b, dx_d);
        gpu_free(b, dw_d);
        free(x);
        free(w);
        free(g);
        free(dx0);
        free(dw0);
        free(out_ref);
        free(rstd_ref);
        free(dx_ref);
        free(dw_ref);
        free(dx_ref2);
    }
}

/* ------------------------------------------------------------------ RoPE */

static void test_rope(void **state)
{
    static const int shapes[][3] = {{1, 1, 2}, {13, 3, 6}, {37, 8, 128}, {5, 2, 7}};
    struct backends *b = *state;
    int T = 64;

    NEED_REF(rope_fwd);
    NEED_REF(rope_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0];
        int nh = shapes[s][1];
        int D = shapes[s][2];
        int half = D / 2;
        size_t nx = (size_t)N * nh * D;
        float *cos_tab = new_f32((size_t)T * half);
        float *sin_tab = new_f32((size_t)T * half);
        int32_t *pos = new_ids((size_t)N, 130 + s, T);
        float *x = new_uniform(nx, 140 + s, -2, 2);
        float *want = dup_f32(x, nx);
        float *want_b = dup_f32(x, nx);
        float *cos_d = NULL;
        float *sin_d = NULL;
        int32_t *pos_d = NULL;
        float *x_d = NULL;
        float *got = NULL;

        for (int t = 0; t < T; t++) {
            for (int i = 0; i < half; i++) {
                double ang = t * pow(10000.0, -2.0 * i / D);
                cos_tab[(size_t)t * half + i] = (float)cos(ang);
                sin_tab[(size_t)t * half + i] = (float)sin(ang);
            }
        }
        cos_d = dev(b, cos_tab, (size_t)T * half * sizeof(float));
        sin_d = dev(b, sin_tab, (size_t)T * half * sizeof(float));
        pos_d = dev(b, pos, (size_t)N * sizeof(int32_t));
        x_d = dev(b, x, nx * sizeof(float));
        lc_ref_ops.rope_fwd(b->ref, want, pos, cos_tab, sin_tab, N, nh, D);
        lc_ref_ops.rope_bwd(b->ref, want_b, pos, cos_tab, sin_tab, N, nh, D);
        b->gpu->ops->rope_fwd(b->gpu, x_d, pos_d, cos_d, sin_d, N, nh, D);
        got = fetch(b, x_d, nx);
        expect_close("rope_fwd", got, want, nx, 1e-6, 1e-6);
        free(got);
        /* the backward undoes the forward */
        b->gpu->ops->rope_bwd(b->gpu, x_d, pos_d, cos_d, sin_d, N, nh, D);
        got = fetch(b, x_d, nx);
        expect_close("rope_bwd(rope_fwd(x))", got, x, nx, 1e-5, 1e-5);
        free(got);
        b->gpu->ops->upload(b->gpu, x_d, x, nx * sizeof(float));
        b->gpu->ops->rope_bwd(b->gpu, x_d, pos_d, cos_d, sin_d, N, nh, D);
        got = fetch(b, x_d, nx);
        expect_close("rope_bwd", got, want_b, nx, 1e-6, 1e-6);
        free(got);
        gpu_free(b, cos_d);
        gpu_free(b, sin_d);
        gpu_free(b, pos_d);
        gpu_free(b, x_d);
        free(cos_tab);
        free(sin_tab);
        free(pos);
        free(x);
        free(want);
        free(want_b);
    }
}

/* ---------------------------------------------------------------- SwiGLU */

static void test_swiglu(void **state)
{
    struct backends *b = *state;
    size_t n = 100003;
    float *gate = NULL;
    float *up = NULL;
    float *dout = NULL;
    float *out_ref = NULL;
    float *dg_ref = NULL;
    float *du_ref = NULL;
    float *gate_d = NULL;
    float *up_d = NULL;
    float *dout_d = NULL;
    float *out_d = NULL;
    float *dg_d = NULL;
    float *du_d = NULL;
    float *got = NULL;

    NEED_REF(swiglu_fwd);
    NEED_REF(swiglu_bwd);
    gate = new_uniform(n, 150, -12, 12);
    up = new_uniform(n, 151, -3, 3);
    dout = new_uniform(n, 152, -1, 1);
    out_ref = new_f32(n);
    dg_ref = new_f32(n);
    du_ref = new_f32(n);
    /* saturated and tiny gates */
    gate[0] = -100.0f;
    gate[1] = 100.0f;
    gate[2] = 0.0f;
    gate[3] = -88.5f;
    gate[4] = 1e-30f;
    lc_ref_ops.swiglu_fwd(b->ref, out_ref, gate, up, (int64_t)n);
    lc_ref_ops.swiglu_bwd(b->ref, dg_ref, du_ref, dout, gate, up, (int64_t)n);
    gate_d = dev(b, gate, n * sizeof(float));
    up_d = dev(b, up, n * sizeof(float));
    dout_d = dev(b, dout, n * sizeof(float));
    out_d = dev(b, out_ref, n * sizeof(float));
    dg_d = dev(b, out_ref, n * sizeof(float));
    du_d = dev(b, out_ref, n * sizeof(float));
    b->gpu->ops->swiglu_fwd(b->gpu, out_d, gate_d, up_d, (int64_t)n);
    b->gpu->ops->swiglu_bwd(b->gpu, dg_d, du_d, dout_d, gate_d, up_d, (int64_t)n);
    /* expf is within 2 ulp on the GPU; dgate's 1 + g (1 - s) cancels near
     * g = -1.28, so its error is absolute there, on the scale of d u */
    got = fetch(b, out_d, n);
    expect_close("swiglu_fwd", got, out_ref, n, 1e-30, 2e-6);
    free(got);
    got = fetch(b, dg_d, n);
    expect_close("swiglu_bwd dgate", got, dg_ref, n, 4e-6, 2e-6);
    free(got);
    got = fetch(b, du_d, n);
    expect_close("swiglu_bwd dup", got, du_ref, n, 1e-30, 2e-6);
    free(got);
    gpu_free(b, gate_d);
    gpu_free(b, up_d);
    gpu_free(b, dout_d);
    gpu_free(b, out_d);
    gpu_free(b, dg_d);
    gpu_free(b, du_d);
    free(gate);
    free(up);
    free(dout);
    free(out_ref);
    free(dg_ref);
    free(du_ref);
}

/* ------------------------------------------------------------- attention */

struct attn_shape {
    int B, Tq, Tk, H, Hkv, D, q_pos0;
};

static void check_attn(struct backends *b, const struct attn_shape *a, int chunk, uint64_t seed)
{
    size_t nq = (size_t)a->B * a->Tq * a->H * a->D;
    size_t nk = (size_t)a->B * a->Tk * a->Hkv * a->D;
    float *q = new_uniform(nq, seed, -1, 1);
    float *k = new_uniform(nk, seed + 1, -1, 1);
    float *v = new_uniform(nk, seed + 2, -1, 1);
    float *want = new_f32(nq);
    float *y0 = new_f32(nq);
    float *q_d = dev(b, q, nq * sizeof(float));
    float *k_d = dev(b, k, nk * sizeof(float));
    float *v_d = dev(b, v, nk * sizeof(float));
    float *y_d = NULL;
    float *got = NULL;
    float *got2 = NULL;
    char what[160];

    /* scores of a few units, so that the softmax is not flat */
    for (size_t i = 0; i < nq; i++) {
        q[i] *= 3.0f;
    }
    b->gpu->ops->upload(b->gpu, q_d, q, nq * sizeof(float));
    fill_nan(y0, nq); /* y is overwritten */
    y_d = dev(b, y0, nq * sizeof(float));
    lc_ref_ops.attn_fwd(b->ref, want, q, k, v, a->B, a->Tq, a->Tk, a->H, a->Hkv, a->D, a->q_pos0);
    set_attn_chunk(b, chunk);
    b->gpu->ops->attn_fwd(b->gpu, y_d, q_d, k_d, v_d, a->B, a->Tq, a->Tk, a->H, a->Hkv, a->D,
                          a->q_pos0);
    got = fetch(b, y_d, nq);
    snprintf(what, sizeof(what), "attn_fwd B%d Tq%d Tk%d H%d Hkv%d D%d pos0 %d chunk %d", a->B,
             a->Tq, a->Tk, a->H, a->Hkv, a->D, a->q_pos0, chunk);
    expect_close(what, got, want, nq, 2e-5, 1e-4);
    /* run to run: the same bits */
    b->gpu->ops->attn_fwd(b->gpu, y_d, q_d, k_d, v_d, a->B, a->Tq, a->Tk, a->H, a->Hkv, a->D,
                          a->q_pos0);
    got2 = fetch(b, y_d, nq);
    expect_same(what, got, got2, nq);
    set_attn_chunk(b, 0);
    gpu_free(b, q_d);
    gpu_free(b, k_d);
    gpu_free(b, v_d);
    gpu_free(b, y_d);
    free(q);
    free(k);
    free(v);
    free(want);
    free(y0);
    free(got);
    free(got2);
}

static void test_attn(void **state)
{
    static const struct attn_shape shapes[] = {
        {1, 1, 1, 1, 1, 1, 0},      /* the smallest */
        {2, 37, 37, 6, 2, 24, 0},   /* training shape, GQA */
        {1, 1, 50, 8, 2, 128, 49},  /* one decoding step after a cache */
        {1, 1, 1000, 4, 1, 64, 999},
        {2, 5, 20, 4, 4, 64, 15},   /* a prefill after a cache */
        {1, 10, 6, 2, 1, 16, 3},    /* queries past the last key see all keys */
        {1, 300, 300, 8, 2, 128, 0},
        {3, 17, 17, 3, 3, 5, 0},
    };
    static const int chunks[] = {0, 7, 1, 64};
    struct backends *b = *state;

    NEED_REF(attn_fwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            if (chunks[c] == 1 && shapes[s].Tq > 40) {
                continue; /* one row at a time: slow, and covered by the small shapes */
            }
            check_attn(b, &shapes[s], chunks[c], 500 + 10 * s);
        }
    }
}

/* ---------------------------------------------------------------- losses */

static void test_mse(void **state)
{
    static const int shapes[][2] = {{1, 1}, {37, 129}, {9, 4096}, {1000, 128}, {3, 0}};
    struct backends *b = *state;

    NEED_REF(mse_fwd_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int64_t rows = shapes[s][0];
        int cols = shapes[s][1];
        size_t n = (size_t)rows * cols;
        float gs = 0.25f;
        float *pred = new_uniform(n, 160 + s, -2, 2);
        float *target = new_uniform(n, 170 + s, -2, 2);
        float *sse_ref = new_f32((size_t)rows);
        float *dp_ref = new_f32(n);
        float *pred_d = dev(b, pred, n * sizeof(float));
        float *target_d = dev(b, target, n * sizeof(float));
        float *sse_d = dev(b, sse_ref, (size_t)rows * sizeof(float));
        float *dp_d = dev(b, dp_ref, n * sizeof(float));
        float *got = NULL;
        float *got2 = NULL;

        lc_ref_ops.mse_fwd_bwd(b->ref, sse_ref, dp_ref, pred, target, rows, cols, gs);
        b->gpu->ops->mse_fwd_bwd(b->gpu, sse_d, dp_d, pred_d, target_d, rows, cols, gs);
        got = fetch(b, sse_d, (size_t)rows);
        expect_close("mse row_sse", got, sse_ref, (size_t)rows, 1e-6, 1e-5);
        got2 = fetch(b, dp_d, n);
        expect_same("mse dpred", got2, dp_ref, n);
        free(got2);
        /* without dpred; then in place (dpred aliases pred) */
        b->gpu->ops->zero(b->gpu, sse_d, (size_t)rows * sizeof(float));
        b->gpu->ops->mse_fwd_bwd(b->gpu, sse_d, NULL, pred_d, target_d, rows, cols, gs);
        got2 = fetch(b, sse_d, (size_t)rows);
        expect_same("mse row_sse (no dpred), twice", got2, got, (size_t)rows);
        free(got2);
        b->gpu->ops->mse_fwd_bwd(b->gpu, sse_d, pred_d, pred_d, target_d, rows, cols, gs);
        got2 = fetch(b, pred_d, n);
        expect_same("mse dpred in place", got2, dp_ref, n);
        free(got2);
        free(got);
        gpu_free(b, pred_d);
        gpu_free(b, target_d);
        gpu_free(b, sse_d);
        gpu_free(b, dp_d);
        free(pred);
        free(target);
        free(sse_ref);
        free(dp_ref);
    }
}

static void test_xent(void **state)
{
    static const int shapes[][2] = {{5, 1}, {7, 1000}, {3, 128256}, {64, 32000}};
    struct backends *b = *state;

    NEED_REF(xent_fwd_bwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0];
        int V = shapes[s][1];
        size_t n = (size_t)N * V;
        float gs = 1.0f / (float)N;
        float *logits = new_uniform(n, 180 + s, -20, 20);
        int32_t *targets = new_ids((size_t)N, 190 + s, V);
        float *loss_ref = new_f32((size_t)N);
        float *dl_ref = new_f32(n);
        float *loss_ref2 = new_f32((size_t)N);
        float *logits_d = NULL;
        int32_t *targets_d = NULL;
        float *loss_d = NULL;
        float *dl_d = NULL;
        float *got = NULL;
        float *got2 = NULL;

        targets[0] = -1; /* ignored */
        if (N > 2) {
            targets[N - 1] = V - 1;
        }
        logits_d = dev(b, logits, n * sizeof(float));
        targets_d = dev(b, targets, (size_t)N * sizeof(int32_t));
        loss_d = dev(b, loss_ref, (size_t)N * sizeof(float));
        dl_d = dev(b, dl_ref, n * sizeof(float));
        lc_ref_ops.xent_fwd_bwd(b->ref, loss_ref, dl_ref, logits, targets, N, V, gs);
        lc_ref_ops.xent_fwd_bwd(b->ref, loss_ref2, NULL, logits, targets, N, V, gs);
        b->gpu->ops->xent_fwd_bwd(b->gpu, loss_d, dl_d, logits_d, targets_d, N, V, gs);
        got = fetch(b, loss_d, (size_t)N);
        expect_close("xent row_loss", got, loss_ref, (size_t)N, 1e-5, 1e-5);
        assert_true(got[0] == 0.0f);
        got2 = fetch(b, dl_d, n);
        expect_close("xent dlogits", got2, dl_ref, n, 1e-9, 1e-5);
        free(got2);
        /* without dlogits: the same loss, the same bits */
        b->gpu->ops->xent_fwd_bwd(b->gpu, loss_d, NULL, logits_d, targets_d, N, V, gs);
        got2 = fetch(b, loss_d, (size_t)N);
        expect_same("xent row_loss (no dlogits), twice", got2, got, (size_t)N);
        free(got2);
        /* in place: dlogits aliases logits */
        b->gpu->ops->xent_fwd_bwd(b->gpu, loss_d, logits_d, logits_d, targets_d, N, V, gs);
        got2 = fetch(b, loss_d, (size_t)N);
        expect_same("xent row_loss in place", got2, got, (size_t)N);
        free(got2);
        got2 = fetch(b, logits_d, n);
        expect_close("xent dlogits in place", got2, dl_ref, n, 1e-9, 1e-5);
        free(got2);
        free(got);
        gpu_free(b, logits_d);
        gpu_free(b, targets_d);
        gpu_free(b, loss_d);
        gpu_free(b, dl_d);
        free(logits);
        free(targets);
        free(loss_ref);
        free(dl_ref);
        free(loss_ref2);
    }
}

/* ------------------------------------------------------------- optimizer */

static void test_adamw(void **state)
{
    static const double beta1s[] = {0.9, 0.3};
    struct backends *b = *state;
    size_t n = 10007;

    NEED_REF(adamw);
    for (size_t c = 0; c < 2; c++) {
        float *p = new_uniform(n, 200 + c, -1, 1);
        float *m = new_f32(n);
        float *v = new_f32(n);
        float *p_d = dev(b, p, n * sizeof(float));
        float *m_d = dev(b, m, n * sizeof(float));
        float *v_d = dev(b, v, n * sizeof(float));
        float *g_d = NULL;

        for (int64_t step = 1; step <= 3; step++) {
            float *g = new_uniform(n, 210 + 10 * c + (uint64_t)step, -1, 1);
            float *got = NULL;
            if (g_d == NULL) {
                g_d = dev(b, g, n * sizeof(float));
            } else {
                b->gpu->ops->upload(b->gpu, g_d, g, n * sizeof(float));
            }
            lc_ref_ops.adamw(b->ref, p, g, m, v, (int64_t)n, 1e-3, beta1s[c], 0.999, 1e-8, 0.01,
                             step);
            b->gpu->ops->adamw(b->gpu, p_d, g_d, m_d, v_d, (int64_t)n, 1e-3, beta1s[c], 0.999,
                               1e-8, 0.01, step);
            /* rounding (and contraction into FMAs) on the scale of g for
             * m, g^2 (1 - beta2) for v, and lr for p */
            got = fetch(b, p_d, n);
            expect_close("adamw p", got, p, n, 1e-8, 1e-6);
            free(got);
            got = fetch(b, m_d, n);
            expect_close("adamw m", got, m, n, 1e-7, 1e-6);
            free(got);
            got = fetch(b, v_d, n);
            expect_close("adamw v", got, v, n, 1e-10, 1e-6);
            free(got);
            free(g);
        }
        gpu_free(b, p_d);
        gpu_free(b, m_d);
        gpu_free(b, v_d);
        gpu_free(b, g_d);
        free(p);
        free(m);
        free(v);
    }
}

/* Without a device, init must say so (the message users see for
 * --backend cuda on such a machine). */
static int check_no_device(void)
{
    struct lc_backend be;
    struct lc_error err = {0};

    memset(&be, 0, sizeof(be));
    be.ops = &lc_cuda_ops;
    if (lc_cuda_ops.init(&be, &err) == LC_OK) {
        fprintf(stderr, "test_cuda: cudaGetDeviceCount found no device but init succeeded\n");
        lc_cuda_ops.fini(&be);
        return 1;
    }
    if (err.code != LC_ERR_BACKEND || strncmp(err.msg, "no CUDA device: ", 16) != 0) {
        fprintf(stderr, "test_cuda: unexpected init error without a device: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "SKIP: %s\n", err.msg);
    return LC_TEST_SKIP;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_open),    cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_linear),  cmocka_unit_test(test_add),
        cmocka_unit_test(test_dropout), cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),  cmocka_unit_test(test_attn),
        cmocka_unit_test(test_mse),     cmocka_unit_test(test_xent),
        cmocka_unit_test(test_adamw),
    };
    int count = 0;

    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        return check_no_device();
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
