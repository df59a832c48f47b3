/*
 * What is the cuda backend's own: memory and its errors, opening it, the
 * table being complete, and its settings (the query chunks of the
 * attention and of the student's cross-entropy, TF32, the bf16 kernels).
 * Every entry against the reference at the default settings (fp32 paths,
 * awkward shapes, the same bits when run twice, gradients asked for in
 * subsets, decoding token by token against the parallel forward) is in
 * the table of every entry on every backend, tests/test_backend_ops.c,
 * which runs on a device and on the emulation.
 *
 * Built with cuda_emu.h (LC_CUDA_EMU), this file is also
 * tests/test_cuda_emu: the tests of the kernels the emulation builds (the
 * attention, the student), through the CPU emulation of CUDA and cuBLAS,
 * on any machine.
 *
 * The fused bf16 kernels (the teacher's flash attention, the student's
 * tile kernels) are compared with the reference run on the bf16 roundings
 * of their inputs, to the error bounds stated at each check, and the CUDA
 * primitives they rely on (shared memory, barriers, shuffles, the
 * tensor-core fragment layouts) are checked on their own first
 * (tests/cuda_selftest.cu): on a GPU that checks the hardware against the
 * layouts the kernels and the emulation assume.  The backend's bf16
 * switch is off except in those tests, so that every other comparison
 * runs the fp32 paths.
 *
 * Without a CUDA device this only checks that init says so, and exits 77.
 */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "backend-cuda/cuda_kernels.h"
#include "core/half.h"
#include "core/ref/ref_hybrid_f64.h"
#include "tests/cuda_selftest.h"
#include "tests/lc_test_hybrid.h"

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
    /* the fp32 paths, unless a test turns the bf16 kernels on */
    ((struct lc_cuda_ctx *)b->gpu->ctx)->attn_bf16 = 0;
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

/* x rounded to the dtype and back (what the bf16 kernels feed the tensor
 * cores) */
static float *rounded_like(const float *x, size_t n, enum lc_dtype type)
{
    float *r = lc_test_dup_f32(x, n);
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
    float *h = lc_test_new_f32(n);
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
    unsigned char *pattern = lc_test_calloc(n, 1);
    unsigned char *back = lc_test_calloc(n, 1);
    unsigned char *want = lc_test_calloc(n, 1);
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

/* The table is complete, so the registry opens it. */
static void test_open(void **state)
{
    struct lc_backend *be = NULL;
    struct lc_error err = {0};

    (void)state;
    assert_null(lc_backend_ops_missing(&lc_cuda_ops));
    if (lc_backend_open(&be, "cuda", &err) != LC_OK) {
        fail_msg("lc_backend_open(\"cuda\"): %s", err.msg);
    }
    assert_string_equal(lc_backend_name(be), "cuda");
    lc_backend_close(be);
}

/* Every entry is set (the emulated build of the same table). */
static void test_table_complete(void **state)
{
    (void)state;
    assert_null(lc_backend_ops_missing(&lc_cuda_ops));
}

/* ------------------------------------------------------------- attention */

static void check_attn(struct backends *b, const struct lc_test_attn_shape *a, int chunk,
                       uint64_t seed)
{
    size_t nq = (size_t)a->B * a->Tq * a->H * a->D;
    size_t nk = (size_t)a->B * a->Tk * a->Hkv * a->D;
    float *q = lc_test_new_uniform(nq, seed, -1, 1);
    float *k = lc_test_new_uniform(nk, seed + 1, -1, 1);
    float *v = lc_test_new_uniform(nk, seed + 2, -1, 1);
    float *want = lc_test_new_f32(nq);
    float *y0 = lc_test_new_f32(nq);
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
    lc_test_fill_nan(y0, nq); /* y is overwritten */
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
    lc_test_expect_same(what, got, got2, nq);
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
    /* chunk 0 (the default): the table's (tests/test_backend_ops.c) */
    static const int chunks[] = {7, 1, 64};
    struct backends *b = *state;

    NEED_REF(attn_fwd);
    for (size_t s = 0; s < LC_TEST_N_ATTN_SHAPES; s++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            if (chunks[c] == 1 && lc_test_attn_shapes[s].Tq > 40) {
                continue; /* one row at a time: slow, and covered by the small shapes */
            }
            check_attn(b, &lc_test_attn_shapes[s], chunks[c], 500 + 10 * s);
        }
    }
}

/* the TF32 switch: the teacher to TF32's precision */
static void test_attn_tf32(void **state)
{
    static const struct lc_test_attn_shape a = {2, 300, 300, 8, 2, 128, 0};
    struct backends *b = *state;
    size_t nq = (size_t)a.B * a.Tq * a.H * a.D;
    size_t nk = (size_t)a.B * a.Tk * a.Hkv * a.D;
    float *q = lc_test_new_uniform(nq, 900, -3, 3);
    float *k = lc_test_new_uniform(nk, 901, -1, 1);
    float *v = lc_test_new_uniform(nk, 902, -1, 1);
    float *want = lc_test_new_f32(nq);
    float *q_d = dev(b, q, nq * sizeof(float));
    float *k_d = dev(b, k, nk * sizeof(float));
    float *v_d = dev(b, v, nk * sizeof(float));
    float *y_d = dev(b, want, nq * sizeof(float));
    float *got = NULL;

    NEED_REF(attn_fwd);
    lc_ref_ops.attn_fwd(b->ref, want, q, k, v, a.B, a.Tq, a.Tk, a.H, a.Hkv, a.D, a.q_pos0);
    ((struct lc_cuda_ctx *)b->gpu->ctx)->tf32 = 1;
    b->gpu->ops->attn_fwd(b->gpu, y_d, q_d, k_d, v_d, a.B, a.Tq, a.Tk, a.H, a.Hkv, a.D, a.q_pos0);
    ((struct lc_cuda_ctx *)b->gpu->ctx)->tf32 = 0;
    got = fetch(b, y_d, nq);
    expect_close("attn_fwd tf32", got, want, nq, 1e-2, 1e-2);
    gpu_free(b, q_d);
    gpu_free(b, k_d);
    gpu_free(b, v_d);
    gpu_free(b, y_d);
    free(q);
    free(k);
    free(v);
    free(want);
    free(got);
}


/* ------------------------------------------------------ CUDA primitives */

static struct lc_cuda_ctx *ctx_of(struct backends *b)
{
    return (struct lc_cuda_ctx *)b->gpu->ctx;
}

static void expect_launched(const char *what, const char *err)
{
    if (err != NULL) {
        fail_msg("%s: %s", what, err);
    }
}

/* Shared memory, __syncthreads, shuffles, votes and 64 KiB of dynamic
 * shared memory, on integers (exact in any order of summation). */
static void test_primitives_block(void **state)
{
    const int blocks = 3, n = blocks * LC_ST_THREADS;
    struct backends *b = *state;
    float *x = lc_test_new_f32((size_t)n);
    float *out0 = lc_test_new_f32((size_t)n * 8);
    float *x_d, *out_d, *out;

    for (int i = 0; i < n; i++) {
        x[i] = (float)((i * 37) % 19) - 9.0f; /* integers in [-9, 9] */
    }
    lc_test_fill_nan(out0, (size_t)n * 8); /* every value is written */
    x_d = dev(b, x, (size_t)n * sizeof(float));
    out_d = dev(b, out0, (size_t)n * 8 * sizeof(float));
    expect_launched("lc_st_block", lc_st_block(ctx_of(b), out_d, x_d, blocks));
    out = fetch(b, out_d, (size_t)n * 8);
    for (int blk = 0; blk < blocks; blk++) {
        const float *xb = x + blk * LC_ST_THREADS;
        float total = 0.0f;
        for (int t = 0; t < LC_ST_THREADS; t++) {
            total += xb[t];
        }
        for (int t = 0; t < LC_ST_THREADS; t++) {
            const int lane = t % 32, w0 = t - lane;
            const float *o = out + ((size_t)blk * LC_ST_THREADS + t) * 8;
            float want[8] = {total, 0, 0, xb[t], xb[w0 + 5], 0, 0, xb[LC_ST_THREADS - 1 - t]};
            unsigned ballot = 0;
            for (int l = 0; l < 32; l++) {
                want[1] += xb[w0 + l];
                want[2] += l <= lane ? xb[w0 + l] : 0.0f;
                ballot |= (unsigned)(xb[w0 + l] > 0.0f) << l;
            }
            for (int d = 1; d <= 4; d++) {
                want[3] += lane + d < 32 ? xb[t + d] : xb[t];
            }
            want[5] = (float)(ballot & 0xffffu);
            want[6] = (float)(ballot >> 16);
            for (int k = 0; k < 8; k++) {
                if (o[k] != want[k]) {
                    fail_msg("primitives: block %d thread %d value %d: %g, want %g", blk, t, k,
                             o[k], want[k]);
                }
            }
        }
    }
    gpu_free(b, x_d);
    gpu_free(b, out_d);
    free(x);
    free(out0);
    free(out);
}

/* The device's bf16 rounding is the readers' and the reference's
 * (nearest even, NaN stays NaN). */
static void test_primitives_bf16(void **state)
{
    enum { N = 1000 };
    struct backends *b = *state;
    float *x = lc_test_new_uniform(N, 61, -3.0f, 3.0f);
    uint16_t bits[N];
    float *x_d;
    uint16_t *bits_d;

    /* ties, both ways, and the special values */
    x[0] = 1.0f + 0x1p-8f;          /* halfway, even below */
    x[1] = 1.0f + 3 * 0x1p-8f;      /* halfway, even above */
    x[2] = -(1.0f + 0x1p-8f);
    x[3] = INFINITY;
    x[4] = -INFINITY;
    x[5] = NAN;
    x[6] = 0x1p-130f;               /* subnormal */
    x[7] = 3.3895314e38f;           /* rounds up to infinity */
    x[8] = -0.0f;
    x_d = dev(b, x, N * sizeof(float));
    bits_d = dev(b, bits, N * sizeof(uint16_t));
    expect_launched("lc_st_bf16", lc_st_bf16(ctx_of(b), bits_d, x_d, N));
    gpu_sync(b);
    b->gpu->ops->download(b->gpu, bits, bits_d, sizeof(bits));
    gpu_sync(b);
    for (int i = 0; i < N; i++) {
        uint16_t want = lc_f32_to_bf16(x[i]);
        int both_nan = (want & 0x7fffu) > 0x7f80u && (bits[i] & 0x7fffu) > 0x7f80u;
        if (bits[i] != want && !both_nan) {
            fail_msg("bf16 of %.9g: device 0x%04x, want 0x%04x", x[i], bits[i], want);
        }
    }
    gpu_free(b, x_d);
    gpu_free(b, bits_d);
    free(x);
}

/* The mma.m16n8k16 fragment layouts, on small integers (every product
 * and sum exact in fp32, and the 16x8 intermediates exact in bf16). */
static void test_primitives_mma(void **state)
{
    struct backends *b = *state;
    uint16_t A[256], At[256], Bm[128], Bt[128], B2[128], B3[128];
    float Af[256], Bf[128], B2f[128], B3f[128], C[128];
    float want1[128], want3[128];
    int rc[256];
    float *D1_d, *D2_d, *D3_d, *C_d, *D1, *D2, *D3;
    int *rc_d;
    uint16_t *A_d, *At_d, *B_d, *Bt_d, *B2_d, *B3_d;

    for (int i = 0; i < 256; i++) {
        Af[i] = (float)((i * 7 + 3) % 7) - 3.0f;
        A[i] = lc_f32_to_bf16(Af[i]);
    }
    for (int m = 0; m < 16; m++) {
        for (int k = 0; k < 16; k++) {
            At[k * 16 + m] = A[m * 16 + k];
        }
    }
    for (int i = 0; i < 128; i++) {
        Bf[i] = (float)((i * 5 + 1) % 7) - 3.0f;
        B2f[i] = (float)((i * 3 + 2) % 5) - 2.0f;
        B3f[i] = (float)((i * 11 + 4) % 7) - 3.0f;
        Bm[i] = lc_f32_to_bf16(Bf[i]);
        B2[i] = lc_f32_to_bf16(B2f[i]);
        B3[i] = lc_f32_to_bf16(B3f[i]);
        C[i] = (float)(i % 9) - 4.0f;
    }
    for (int k = 0; k < 16; k++) {
        for (int n = 0; n < 8; n++) {
            Bt[n * 16 + k] = Bm[k * 8 + n];
        }
    }
    for (int m = 0; m < 16; m++) {
        float xy[16];
        for (int n = 0; n < 8; n++) {
            float s1 = C[m * 8 + n], sx = 0.0f, sy = 0.0f;
            for (int k = 0; k < 16; k++) {
                s1 += Af[m * 16 + k] * Bf[k * 8 + n];
                sx += Af[m * 16 + k] * Bf[k * 8 + n];
                sy += Af[m * 16 + k] * B3f[k * 8 + n];
            }
            want1[m * 8 + n] = s1;
            xy[n] = sx;
            xy[8 + n] = sy;
        }
        for (int n = 0; n < 8; n++) {
            float s3 = 0.0f;
            for (int k = 0; k < 16; k++) {
                s3 += xy[k] * B2f[k * 8 + n];
            }
            want3[m * 8 + n] = s3;
        }
    }
    A_d = dev(b, A, sizeof(A));
    At_d = dev(b, At, sizeof(At));
    B_d = dev(b, Bm, sizeof(Bm));
    Bt_d = dev(b, Bt, sizeof(Bt));
    B2_d = dev(b, B2, sizeof(B2));
    B3_d = dev(b, B3, sizeof(B3));
    C_d = dev(b, C, sizeof(C));
    D1_d = dev(b, C, sizeof(C));
    D2_d = dev(b, C, sizeof(C));
    D3_d = dev(b, C, sizeof(C));
    rc_d = dev(b, rc, sizeof(rc));
    expect_launched("lc_st_mma", lc_st_mma(ctx_of(b), D1_d, D2_d, D3_d, rc_d, A_d, At_d, B_d,
                                           Bt_d, B2_d, B3_d, C_d));
    D1 = fetch(b, D1_d, 128);
    D2 = fetch(b, D2_d, 128);
    D3 = fetch(b, D3_d, 128);
    b->gpu->ops->download(b->gpu, rc, rc_d, sizeof(rc));
    gpu_sync(b);
    for (int lane = 0; lane < 32; lane++) {
        for (int i = 0; i < 4; i++) {
            assert_int_equal(rc[lane * 8 + 2 * i], lane / 4 + (i >= 2 ? 8 : 0));
            assert_int_equal(rc[lane * 8 + 2 * i + 1], 2 * (lane % 4) + (i & 1));
        }
    }
    for (int i = 0; i < 128; i++) {
        if (D1[i] != want1[i] || D2[i] != want1[i] || D3[i] != want3[i]) {
            fail_msg("mma element (%d, %d): %g %g %g, want %g %g %g", i / 8, i % 8, D1[i], D2[i],
                     D3[i], want1[i], want1[i], want3[i]);
        }
    }
    {
        void *ps[] = {A_d, At_d, B_d, Bt_d, B2_d, B3_d, C_d, D1_d, D2_d, D3_d, rc_d};
        for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
            gpu_free(b, ps[i]);
        }
    }
    free(D1);
    free(D2);
    free(D3);
}

#ifdef LC_CUDA_EMU
/* What CUDA leaves undefined is reported by the emulation, not passed:
 * a warp split between __syncthreads and a shuffle aborts (in a child
 * process, so that the abort is observed). */
static void test_emu_reports_divergence(void **state)
{
    struct backends *b = *state;
    int status = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        float *out_d = b->gpu->ops->alloc(b->gpu, 64 * sizeof(float));
        /* the report goes to stderr; the abort ends the child */
        (void)lc_st_divergent(ctx_of(b), out_d);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    fprintf(stderr, "(the report above was expected)\n");
}
#endif

/* ----------------------------------------------- bf16 flash attention */

/* The reference on the bf16 roundings of q, k, v; the kernel's only other
 * rounding is P's to bf16 before P V, so |y - ref| <= 2^-8 max|v| (see
 * k_flash.cu), plus fp32 rounding: 1e-4 max|v| covers sums of a few
 * hundred terms and exp2f's ulps many times over. */
static void check_flash(struct backends *b, const struct lc_test_attn_shape *a, int direct,
                        uint64_t seed)
{
    size_t nq = (size_t)a->B * a->Tq * a->H * a->D;
    size_t nk = (size_t)a->B * a->Tk * a->Hkv * a->D;
    float *q = lc_test_new_uniform(nq, seed, -3, 3);
    float *k = lc_test_new_uniform(nk, seed + 1, -1, 1);
    float *v = lc_test_new_uniform(nk, seed + 2, -1, 1);
    float *q_r = rounded_like(q, nq, LC_DTYPE_BF16);
    float *k_r = rounded_like(k, nk, LC_DTYPE_BF16);
    float *v_r = rounded_like(v, nk, LC_DTYPE_BF16);
    float *want = lc_test_new_f32(nq);
    float *y0 = lc_test_new_f32(nq);
    float *q_d = dev(b, q, nq * sizeof(float));
    float *k_d = dev(b, k, nk * sizeof(float));
    float *v_d = dev(b, v, nk * sizeof(float));
    float *y_d = NULL;
    float *got = NULL;
    float *got2 = NULL;
    double vmax = lc_test_max_abs(v_r, nk);
    char what[160];

    lc_test_fill_nan(y0, nq); /* y is overwritten */
    y_d = dev(b, y0, nq * sizeof(float));
    lc_ref_ops.attn_fwd(b->ref, want, q_r, k_r, v_r, a->B, a->Tq, a->Tk, a->H, a->Hkv, a->D,
                        a->q_pos0);
    snprintf(what, sizeof(what), "flash attention B%d Tq%d Tk%d H%d Hkv%d D%d pos0 %d%s", a->B,
             a->Tq, a->Tk, a->H, a->Hkv, a->D, a->q_pos0, direct ? " (kernel)" : "");
    for (int run = 0; run < 2; run++) {
        if (direct) {
            expect_launched(what, lc_cuda_flash_fwd(ctx_of(b), y_d, q_d, k_d, v_d, a->B, a->Tq,
                                                    a->Tk, a->H, a->Hkv, a->D, a->q_pos0));
        } else {
            ctx_of(b)->attn_bf16 = 1;
            b->gpu->ops->attn_fwd(b->gpu, y_d, q_d, k_d, v_d, a->B, a->Tq, a->Tk, a->H, a->Hkv,
                                  a->D, a->q_pos0);
            ctx_of(b)->attn_bf16 = 0;
        }
        if (run == 0) {
            got = fetch(b, y_d, nq);
        } else {
            got2 = fetch(b, y_d, nq);
        }
    }
    expect_close(what, got, want, nq, (0x1p-8 + 1e-4) * vmax, 0.0);
    /* run to run: the same bits */
    lc_test_expect_same(what, got, got2, nq);
    gpu_free(b, q_d);
    gpu_free(b, k_d);
    gpu_free(b, v_d);
    gpu_free(b, y_d);
    free(q);
    free(k);
    free(v);
    free(q_r);
    free(k_r);
    free(v_r);
    free(want);
    free(y0);
    free(got);
    free(got2);
}

static void test_attn_bf16(void **state)
{
    /* through the backend entry (chunks of >= 16 rows take the kernel) */
    static const struct lc_test_attn_shape shapes[] = {
        {2, 37, 37, 6, 2, 24, 0}, /* GQA, padded head dim and rows */
        {1, 300, 300, 8, 2, 128, 0}, {1, 130, 200, 4, 2, 64, 70}, /* a prefill after a cache */
        {1, 64, 64, 2, 1, 8, 0},                                  /* stories260K's head dim */
        {3, 17, 17, 3, 3, 5, 0},
    };
    /* the kernel itself on what the entry sends to the fp32 path */
    static const struct lc_test_attn_shape direct[] = {
        {1, 1, 1, 1, 1, 1, 0},     /* the smallest */
        {1, 1, 50, 8, 2, 128, 49}, /* one decoding step after a cache */
        {2, 5, 20, 4, 4, 64, 15},
        {1, 10, 6, 2, 1, 16, 3}, /* queries past the last key see all keys */
    };
    struct backends *b = *state;

    NEED_REF(attn_fwd);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        check_flash(b, &shapes[s], 0, 1500 + 10 * s);
    }
    for (size_t s = 0; s < sizeof(direct) / sizeof(direct[0]); s++) {
        check_flash(b, &direct[s], 1, 1600 + 10 * s);
    }
}

/* ------------------------------------------------- attention student */

/* The inputs of one hybrid-attention case (as tests/test_hybrid.c makes
 * them), host and device. */
struct hy_case {
    struct lc_test_hy_in h;
    float *q_d, *k_d, *v_d, *fq_d, *fk_d, *theta_d, *dy_d;
};

static void hy_case_make(struct backends *b, struct hy_case *in, int B, int T, int H, int Hkv,
                         int D, int F, int W, int mode, uint64_t seed)
{
    memset(in, 0, sizeof(*in));
    lc_test_hy_in_make(&in->h, B, T, H, Hkv, D, F, W, mode, seed);
    if (T >= 5) {
        lc_test_hy_make_tie(&in->h, 2);
    }
    if (T >= 3 * W + 2) {
        lc_test_hy_make_tie(&in->h, 3 * W - 1);
    }
    in->q_d = dev(b, in->h.q, in->h.nq * sizeof(float));
    in->k_d = dev(b, in->h.k, in->h.nk * sizeof(float));
    in->v_d = dev(b, in->h.v, in->h.nk * sizeof(float));
    in->fq_d = dev(b, in->h.fq, in->h.nf * sizeof(float));
    in->fk_d = dev(b, in->h.fk, in->h.nf * sizeof(float));
    in->theta_d = dev(b, in->h.theta, (size_t)H * sizeof(float));
    in->dy_d = dev(b, in->h.dy, in->h.nq * sizeof(float));
}

static void hy_case_free(struct backends *b, struct hy_case *in)
{
    float *devp[] = {in->q_d, in->k_d, in->v_d, in->fq_d, in->fk_d, in->theta_d, in->dy_d};
    for (size_t i = 0; i < 7; i++) {
        gpu_free(b, devp[i]);
    }
    lc_test_hy_in_free(&in->h);
}

/* the same on the device; outputs that are overwritten start as NaN */
static void hy_run_gpu(struct backends *b, const struct hy_case *in, struct lc_test_hy_out *r)
{
    const struct lc_backend_ops *o = b->gpu->ops;
    const size_t H = (size_t)in->h.s.H;
    float *nan_q = lc_test_new_f32(in->h.nq), *nan_k = lc_test_new_f32(in->h.nk);
    float *nan_f = lc_test_new_f32(in->h.nf);
    float *y_d, *mx_d, *den_d, *dq_d, *dk_d, *dv_d, *dfq_d, *dfk_d, *dth_d, *loss_d;
    float *xdfq_d, *xdfk_d, *xdth_d;
    struct lc_test_hy_out init;

    lc_test_fill_nan(nan_q, in->h.nq);
    lc_test_fill_nan(nan_k, in->h.nk);
    lc_test_fill_nan(nan_f, in->h.nf);
    memset(r, 0, sizeof(*r));
    lc_test_hy_out_alloc(&init, &in->h);
    lc_test_hy_init_acc(&init, &in->h);
    y_d = dev(b, nan_q, in->h.nq * sizeof(float));
    mx_d = dev(b, nan_q, in->h.nm * sizeof(float));
    den_d = dev(b, nan_q, in->h.nm * sizeof(float));
    dq_d = dev(b, nan_q, in->h.nq * sizeof(float));
    dk_d = dev(b, nan_k, in->h.nk * sizeof(float));
    dv_d = dev(b, nan_k, in->h.nk * sizeof(float));
    dfq_d = dev(b, nan_f, in->h.nf * sizeof(float));
    dfk_d = dev(b, nan_f, in->h.nf * sizeof(float));
    loss_d = dev(b, nan_q, in->h.nm * sizeof(float));
    dth_d = dev(b, init.dth, H * sizeof(float));
    xdth_d = dev(b, init.xdth, H * sizeof(float));
    xdfq_d = dev(b, init.xdfq, in->h.nf * sizeof(float));
    xdfk_d = dev(b, init.xdfk, in->h.nf * sizeof(float));
    o->hybrid_fwd(b->gpu, y_d, mx_d, den_d, in->q_d, in->k_d, in->v_d, in->fq_d, in->fk_d,
                  in->theta_d, &in->h.s);
    o->hybrid_bwd(b->gpu, dq_d, dk_d, dv_d, dfq_d, dfk_d, dth_d, in->dy_d, y_d, mx_d, den_d,
                  in->q_d, in->k_d, in->v_d, in->fq_d, in->fk_d, in->theta_d, &in->h.s);
    o->hybrid_xent(b->gpu, loss_d, xdfq_d, xdfk_d, xdth_d, 0.75f, in->q_d, in->k_d, in->fq_d,
                   in->fk_d, in->theta_d, &in->h.s);
    r->y = fetch(b, y_d, in->h.nq);
    r->mx = fetch(b, mx_d, in->h.nm);
    r->den = fetch(b, den_d, in->h.nm);
    r->dq = fetch(b, dq_d, in->h.nq);
    r->dk = fetch(b, dk_d, in->h.nk);
    r->dv = fetch(b, dv_d, in->h.nk);
    r->dfq = fetch(b, dfq_d, in->h.nf);
    r->dfk = fetch(b, dfk_d, in->h.nf);
    r->dth = fetch(b, dth_d, H);
    r->loss = fetch(b, loss_d, in->h.nm);
    r->xdfq = fetch(b, xdfq_d, in->h.nf);
    r->xdfk = fetch(b, xdfk_d, in->h.nf);
    r->xdth = fetch(b, xdth_d, H);
    {
        float *p[] = {y_d,   mx_d,   den_d,  dq_d,   dk_d,  dv_d,  dfq_d,
                      dfk_d, dth_d,  loss_d, xdfq_d, xdfk_d, xdth_d};
        for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
            gpu_free(b, p[i]);
        }
    }
    lc_test_hy_out_free(&init);
    free(nan_q);
    free(nan_k);
    free(nan_f);
}

static void hybrid_case_tol(struct backends *b, int B, int T, int H, int Hkv, int D, int F,
                            int W, int mode, int chunk, double tol)
{
    struct hy_case in;
    struct lc_test_hy_out want, got, again;
    char tag[128];

    hy_case_make(b, &in, B, T, H, Hkv, D, F, W, mode, (uint64_t)(T * 131 + W * 17 + mode + H));
    lc_test_hy_ref(b->ref, &in.h, &want);
    set_attn_chunk(b, chunk);
    hy_run_gpu(b, &in, &got);
    snprintf(tag, sizeof(tag), "[B %d T %d W %d H %d/%d D %d F %d mode %d chunk %d]", B, T, W, H,
             Hkv, D, F, mode, chunk);
    if (lc_test_hy_compare(tag, &got, &want, &in.h, tol) != 0) {
        fail_msg("%s: cuda differs from ref", tag);
    }
    /* run to run: the same bits */
    hy_run_gpu(b, &in, &again);
#define SAME(field, n) lc_test_expect_same(tag, again.field, got.field, n)
    SAME(y, in.h.nq);
    SAME(den, in.h.nm);
    SAME(dq, in.h.nq);
    SAME(dk, in.h.nk);
    SAME(dv, in.h.nk);
    SAME(dfq, in.h.nf);
    SAME(dfk, in.h.nf);
    SAME(dth, (size_t)H);
    SAME(loss, in.h.nm);
    SAME(xdfq, in.h.nf);
    SAME(xdfk, in.h.nf);
    SAME(xdth, (size_t)H);
#undef SAME
    set_attn_chunk(b, 0);
    lc_test_hy_out_free(&want);
    lc_test_hy_out_free(&got);
    lc_test_hy_out_free(&again);
    hy_case_free(b, &in);
}

static void hybrid_case(struct backends *b, int B, int T, int H, int Hkv, int D, int F, int W,
                        int mode, int chunk)
{
    hybrid_case_tol(b, B, T, H, Hkv, D, F, W, mode, chunk, 1e-5);
}

/* The cuda backend's own settings of the student: the cross-entropy in
 * several query chunks, and TF32 (every backend's comparison on the cases
 * of tests/test_hybrid.c, run twice for the same bits, is the table's:
 * tests/test_backend_ops.c) */
static void test_hybrid(void **state)
{
    struct backends *b = *state;

    NEED_REF(hybrid_fwd);
    NEED_REF(hybrid_bwd);
    NEED_REF(hybrid_xent);
    for (int mode = 0; mode < 2; mode++) {
        hybrid_case(b, 2, 200, 4, 2, 32, 16, 64, mode, 37);
        hybrid_case(b, 1, 20, 4, 2, 32, 16, 3, mode, 1);
    }
    /* the TF32 switch: the same results to TF32's precision (10-bit
     * mantissas in the products) */
    ((struct lc_cuda_ctx *)b->gpu->ctx)->tf32 = 1;
    hybrid_case_tol(b, 2, 200, 4, 2, 32, 16, 64, LC_WINDOW_TERRACED, 0, 1e-2);
    hybrid_case_tol(b, 1, 70, 2, 2, 17, 5, 16, LC_WINDOW_SLIDING, 0, 1e-2);
    ((struct lc_cuda_ctx *)b->gpu->ctx)->tf32 = 0;
}

/* ------------------------------------------ bf16 hybrid tile kernels */

/* in with q, k, v, fq, fk and dy rounded to bf16 (theta as it is) */
static void hy_in_rounded(struct lc_test_hy_in *r, const struct lc_test_hy_in *in)
{
    *r = *in;
    r->q = rounded_like(in->q, in->nq, LC_DTYPE_BF16);
    r->k = rounded_like(in->k, in->nk, LC_DTYPE_BF16);
    r->v = rounded_like(in->v, in->nk, LC_DTYPE_BF16);
    r->fq = rounded_like(in->fq, in->nf, LC_DTYPE_BF16);
    r->fk = rounded_like(in->fk, in->nf, LC_DTYPE_BF16);
    r->dy = rounded_like(in->dy, in->nq, LC_DTYPE_BF16);
    r->theta = lc_test_dup_f32(in->theta, (size_t)in->s.H);
}

/* |got - want| <= tol max|want| over one output; prints the ratio seen */
static size_t hy_check16(const char *tag, const char *field, const float *got, const float *want,
                         size_t n, double tol)
{
    char name[200];
    double scale = lc_test_max_abs(want, n);
    double err = lc_test_max_abs_diff(got, want, n);

    snprintf(name, sizeof(name), "%s %s", tag, field);
    fprintf(stderr, "  %-40s max|ref| %9.3g  max|diff| / max|ref| %.2e (tolerance %.0e)\n", name,
            scale, scale > 0 ? err / scale : err, tol);
    return lc_test_check_close(name, got, want, n, tol * (scale > 0 ? scale : 1.0), 0.0);
}

/* The fused tile kernels against the reference run on the bf16 roundings
 * of q, k, v, fq, fk and dy.  What remains is the rounding of the
 * products' other operands to bf16 (each term off by at most 2^-8
 * relative: the weights w / Z for y and dv, the states S and R, the score
 * gradients for dq and dk, G for the near linear keys), summed over up to
 * a few hundred terms of both signs: the errors seen are 0.5-2.5 times
 * 2^-8 of an output's largest value (y: 1e-3 to 1.7e-3, gradients up to
 * 4.9e-3); the tolerances leave two to six times that.  Missing one term
 * of the method (a state, the max path, the near linear keys) gives errors
 * of 2e-2 to 1 times the largest value.  The forward's window
 * max is fp32 throughout (exact up to the summation order of the
 * scores); the denominators sum the rounded weights. */
static void hybrid_bf16_case(struct backends *b, int B, int T, int H, int Hkv, int D, int F,
                             int mode)
{
    const struct lc_backend_ops *o = b->gpu->ops;
    struct hy_case in;
    struct lc_test_hy_in rin;
    struct lc_test_hy_out want, got, again;
    char tag[128], name[160];
    size_t bad = 0;

    hy_case_make(b, &in, B, T, H, Hkv, D, F, 64, mode, (uint64_t)(T * 7 + D + mode + 3 * H));
    hy_in_rounded(&rin, &in.h);
    assert_true(lc_cuda_hytile_supports(&in.h.s));
    lc_test_hy_ref(b->ref, &rin, &want);
    ctx_of(b)->attn_bf16 = 1;
    hy_run_gpu(b, &in, &got);
    hy_run_gpu(b, &in, &again);
    snprintf(tag, sizeof(tag), "bf16 [B %d T %d H %d/%d D %d F %d mode %d]", B, T, H, Hkv, D, F,
             mode);
    bad += hy_check16(tag, "y", got.y, want.y, in.h.nq, 1e-2);
    bad += hy_check16(tag, "mx", got.mx, want.mx, in.h.nm, 1e-5);
    /* a sum of positive weights, each rounded to bf16 (relative 2^-8) */
    snprintf(name, sizeof(name), "%s den", tag);
    bad += lc_test_check_close(name, got.den, want.den, in.h.nm, 0.0, 0x1p-8 + 1e-6);
    bad += hy_check16(tag, "dq", got.dq, want.dq, in.h.nq, 2e-2);
    bad += hy_check16(tag, "dk", got.dk, want.dk, in.h.nk, 2e-2);
    bad += hy_check16(tag, "dv", got.dv, want.dv, in.h.nk, 2e-2);
    bad += hy_check16(tag, "dfq", got.dfq, want.dfq, in.h.nf, 2e-2);
    bad += hy_check16(tag, "dfk", got.dfk, want.dfk, in.h.nf, 2e-2);
    bad += hy_check16(tag, "dtheta", got.dth, want.dth, (size_t)H, 1e-2);
    if (bad != 0) {
        fail_msg("%s: the tile kernels differ from ref", tag);
    }
#define SAME(field, n) lc_test_expect_same(tag, again.field, got.field, n)
    SAME(y, in.h.nq);
    SAME(mx, in.h.nm);
    SAME(den, in.h.nm);
    SAME(dq, in.h.nq);
    SAME(dk, in.h.nk);
    SAME(dv, in.h.nk);
    SAME(dfq, in.h.nf);
    SAME(dfk, in.h.nf);
    SAME(dth, (size_t)H);
#undef SAME
    /* stage 1 asks for dfq, dfk and dtheta only, stage 2 for all: the
     * outputs asked for do not depend on the others */
    {
        float *y_d = dev(b, got.y, in.h.nq * sizeof(float));
        float *mx_d = dev(b, got.mx, in.h.nm * sizeof(float));
        float *den_d = dev(b, got.den, in.h.nm * sizeof(float));
        float *g4 = dev(b, got.dfq, in.h.nf * sizeof(float));
        float *g5 = dev(b, got.dfk, in.h.nf * sizeof(float));
        float *g1 = dev(b, got.dq, in.h.nq * sizeof(float));
        float *th = lc_test_new_f32((size_t)H);
        float *th_d, *r4, *r5, *rt, *r1;

        lc_test_hy_init_acc(&again, &in.h);
        memcpy(th, again.dth, (size_t)H * sizeof(float));
        th_d = dev(b, th, (size_t)H * sizeof(float));
        b->gpu->ops->zero(b->gpu, g4, in.h.nf * sizeof(float));
        b->gpu->ops->zero(b->gpu, g5, in.h.nf * sizeof(float));
        o->hybrid_bwd(b->gpu, NULL, NULL, NULL, g4, g5, th_d, in.dy_d, y_d, mx_d, den_d, in.q_d,
                      in.k_d, in.v_d, in.fq_d, in.fk_d, in.theta_d, &in.h.s);
        b->gpu->ops->zero(b->gpu, g1, in.h.nq * sizeof(float));
        o->hybrid_bwd(b->gpu, g1, NULL, NULL, NULL, NULL, NULL, in.dy_d, y_d, mx_d, den_d,
                      in.q_d, in.k_d, in.v_d, in.fq_d, in.fk_d, in.theta_d, &in.h.s);
        r4 = fetch(b, g4, in.h.nf);
        r5 = fetch(b, g5, in.h.nf);
        rt = fetch(b, th_d, (size_t)H);
        r1 = fetch(b, g1, in.h.nq);
        lc_test_expect_same("bf16 subset dfq", r4, got.dfq, in.h.nf);
        lc_test_expect_same("bf16 subset dfk", r5, got.dfk, in.h.nf);
        lc_test_expect_same("bf16 subset dtheta", rt, got.dth, (size_t)H);
        lc_test_expect_same("bf16 subset dq", r1, got.dq, in.h.nq);
        {
            float *ps[] = {y_d, mx_d, den_d, g4, g5, g1, th_d};
            for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
                gpu_free(b, ps[i]);
            }
        }
        free(th);
        free(r4);
        free(r5);
        free(rt);
        free(r1);
    }
    ctx_of(b)->attn_bf16 = 0;
    lc_test_hy_out_free(&want);
    lc_test_hy_out_free(&got);
    lc_test_hy_out_free(&again);
    lc_test_hy_in_free(&rin);
    hy_case_free(b, &in);
}

static void test_hybrid_bf16(void **state)
{
    struct backends *b = *state;

    NEED_REF(hybrid_fwd);
    NEED_REF(hybrid_bwd);
    for (int mode = 0; mode < 2; mode++) {
        /* one tile, a partial tile, the first state (three tiles) */
        hybrid_bf16_case(b, 2, 5, 4, 2, 32, 16, mode);
        hybrid_bf16_case(b, 1, 64, 4, 2, 32, 16, mode);
        hybrid_bf16_case(b, 2, 200, 4, 2, 32, 16, mode);
        /* odd sizes, no grouping; stories260K's head and feature dims */
        hybrid_bf16_case(b, 1, 150, 2, 2, 17, 5, mode);
        hybrid_bf16_case(b, 1, 140, 2, 1, 8, 128, mode);
    }
    /* Llama's dims, and the other padded head dim */
    hybrid_bf16_case(b, 1, 200, 2, 1, 128, 128, LC_WINDOW_TERRACED);
    hybrid_bf16_case(b, 1, 130, 2, 1, 64, 24, LC_WINDOW_SLIDING);
    /* a window other than 64 keeps the fp32 path, bf16 switch or not */
    {
        struct hy_case in;
        struct lc_test_hy_out off, on;
        hy_case_make(b, &in, 1, 70, 2, 1, 16, 8, 32, LC_WINDOW_SLIDING, 77);
        hy_run_gpu(b, &in, &off);
        ctx_of(b)->attn_bf16 = 1;
        hy_run_gpu(b, &in, &on);
        ctx_of(b)->attn_bf16 = 0;
        lc_test_expect_same("window 32 with the bf16 switch", on.y, off.y, in.h.nq);
        lc_test_expect_same("window 32 with the bf16 switch", on.dq, off.dq, in.h.nq);
        lc_test_hy_out_free(&off);
        lc_test_hy_out_free(&on);
        hy_case_free(b, &in);
    }
}

/* Bad shapes are reported by the next sync, naming the entry. */
static void test_hybrid_errors(void **state)
{
    struct backends *b = *state;
    struct lc_error err = {0};
    float *p = dev(b, (float[8]){0}, 8 * sizeof(float));
    struct lc_attn_shape s = {1, 1, 3, 2, 1, 1, 1, LC_WINDOW_TERRACED};

    b->gpu->ops->hybrid_fwd(b->gpu, p, NULL, NULL, p, p, p, p, p, p, &s);
    assert_int_equal(b->gpu->ops->sync(b->gpu, &err), LC_ERR_BACKEND);
    assert_non_null(strstr(err.msg, "cuda: hybrid_fwd: "));
    fprintf(stderr, "expected error: %s\n", err.msg);
    s.H = 2;
    s.window = 0;
    b->gpu->ops->hybrid_xent(b->gpu, p, p, p, p, 1.0f, p, p, p, p, p, &s);
    assert_int_equal(b->gpu->ops->sync(b->gpu, &err), LC_ERR_BACKEND);
    assert_non_null(strstr(err.msg, "cuda: hybrid_xent: "));
    b->gpu->ops->fmap_fwd(b->gpu, p, p, p, 1, 3, 2, 1, 1, 1e-12f);
    assert_int_equal(b->gpu->ops->sync(b->gpu, &err), LC_ERR_BACKEND);
    assert_non_null(strstr(err.msg, "cuda: fmap_fwd: "));
    /* an empty batch is nothing to do */
    s.window = 1;
    s.T = 0;
    b->gpu->ops->hybrid_fwd(b->gpu, p, NULL, NULL, p, p, p, p, p, p, &s);
    gpu_sync(b);
    gpu_free(b, p);
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

#ifdef LC_CUDA_EMU
/* Under the CPU emulation (cuda_emu.h) the entries whose kernels are
 * built with it run: the teacher's attention (its cuBLAS products through
 * the emulation's SGEMM) and the attention student, fp32 and bf16. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_primitives_block),
        cmocka_unit_test(test_primitives_bf16),
        cmocka_unit_test(test_primitives_mma),
        cmocka_unit_test(test_emu_reports_divergence),
        cmocka_unit_test(test_attn),
        cmocka_unit_test(test_attn_bf16),
        cmocka_unit_test(test_hybrid),
        cmocka_unit_test(test_hybrid_bf16),
        cmocka_unit_test(test_hybrid_errors),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);

    /* the kernels ran (not a table of no-ops) */
    if (rc == 0 && lc_emu_launches < 100) {
        fprintf(stderr, "test_cuda_emu: only %lld kernel launches\n", lc_emu_launches);
        return 1;
    }
    fprintf(stderr, "test_cuda_emu: %lld launches, %lld switches between emulated threads\n",
            lc_emu_launches, lc_emu_switches);
    return rc;
}
#else
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_primitives_block),
        cmocka_unit_test(test_primitives_bf16),
        cmocka_unit_test(test_primitives_mma),
        cmocka_unit_test(test_attn),
        cmocka_unit_test(test_attn_tf32),
        cmocka_unit_test(test_attn_bf16),
        cmocka_unit_test(test_hybrid),
        cmocka_unit_test(test_hybrid_bf16),
        cmocka_unit_test(test_hybrid_errors),
        cmocka_unit_test(test_table_complete),
    };
    int count = 0;

    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        return check_no_device();
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
#endif
