/*
 * The dense algebra of the cpu backend: a deterministic tiled SGEMM over
 * OpenBLAS, and the linear layers with F32, F16 or BF16 weights.
 *
 * OpenBLAS's threaded driver splits the reduction dimension into blocks
 * other than its single-threaded driver does, so the same product comes
 * out with different rounding for 1 and for n threads (OpenBLAS 0.3.21,
 * every kernel set).  lc_cpu_sgemm therefore never lets OpenBLAS thread:
 * it cuts C into tiles fixed by the shapes and computes each tile with one
 * single-threaded call inside its own OpenMP team.
 */
#include "config.h"

#include <omp.h>
#include <stdint.h>

#include <cblas.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_kernels.h"

/* up to this many rows of x, the linear layer is a loop of dot products
 * over the weights in their own dtype (decoding: no fp32 copy at all) */
#define LINEAR_SMALL_N 4

/* ----------------------------------------------------------------- SGEMM */

static int round_up16(int v)
{
    return (v + 15) / 16 * 16;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Tiles of C: at most 1024 x 1024, halved (the longer side first) while
 * there are fewer than 16 tiles and a halved tile still holds 2^22
 * multiply-adds.  Each tile packs its own panels of A and B, which costs
 * in proportion to 1/m + 1/n: on one core, 512 x 512 tiles run at 93% of
 * one whole-matrix call and 256 x 256 tiles at 84% (n = 2048), so tiles
 * stay large and 16 of them is the aim.  Only the shapes decide, never
 * the thread count. */
static void gemm_tiles(int M, int N, int K, int *tm, int *tn)
{
    int m = M < 1024 ? M : 1024;
    int n = N < 1024 ? N : 1024;

    while (ceil_div(M, m) * ceil_div(N, n) < 16 && (int64_t)m * n * K >= ((int64_t)1 << 23)) {
        if (n >= m && n >= 32) {
            n = round_up16(n / 2);
        } else if (m >= 32) {
            m = round_up16(m / 2);
        } else if (n >= 32) {
            n = round_up16(n / 2);
        } else {
            break;
        }
    }
    *tm = m;
    *tn = n;
}

/* C = beta C for an empty reduction (BLAS would also reject lda = 0) */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) {
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
    }
}

void lc_cpu_sgemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int saved;

    if (M <= 0 || N <= 0) {
        return;
    }
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    /* OpenBLAS (OpenMP build) threads by omp_get_max_threads(); setting it
     * to 1 changes only this task's copy of the setting */
    saved = omp_get_max_threads();
    if (saved != 1) {
        omp_set_num_threads(1);
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (saved != 1) {
        omp_set_num_threads(saved);
    }
}

void lc_cpu_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    int tm;
    int tn;
    int64_t nmt;
    int64_t nnt;

    if (M <= 0 || N <= 0) {
        return;
    }
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_tiles(M, N, K, &tm, &tn);
    nmt = ceil_div(M, tm);
    nnt = ceil_div(N, tn);

    if (nmt * nnt == 1) {
        /* one tile: no team (entering one costs about a microsecond) */
        lc_cpu_sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < nmt * nnt; t++) {
        int i0 = (int)(t / nnt) * tm;
        int j0 = (int)(t % nnt) * tn;
        int m = M - i0 < tm ? M - i0 : tm;
        int n = N - j0 < tn ? N - j0 : tn;
        /* rows i0.. of op(A), columns j0.. of op(B) */
        const float *a = ta ? A + i0 : A + (size_t)i0 * lda;
        const float *b = tb ? B + (size_t)j0 * ldb : B + j0;
        lc_cpu_sgemm_serial(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta,
                            C + (size_t)i0 * ldc + j0, ldc);
    }
}

void lc_cpu_gemm(struct lc_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    (void)be;
    lc_cpu_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ------------------------------------------------------- weight convert */

typedef void (*convert_fn)(float *dst, const uint16_t *src, int64_t n);

static convert_fn pick_convert(struct lc_backend *be, enum lc_dtype type)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    return type == LC_DTYPE_F16 ? kr->f16_to_f32 : kr->bf16_to_f32;
}

/* dst[r, 0..cols) = w[r0 + r, c0 .. c0+cols) in fp32 for r < rows; w is a
 * half-precision matrix with row length ld */
static void convert_block(struct lc_backend *be, float *dst, const void *w, enum lc_dtype type,
                          int64_t ld, int r0, int rows, int c0, int cols)
{
    convert_fn conv = pick_convert(be, type);
    const uint16_t *src = (const uint16_t *)w;

LC_CPU_PAR_FOR((int64_t)rows * cols >= 65536, r, rows, 1,
                   conv(dst + (size_t)r * cols, src + (size_t)(r0 + r) * ld + c0, cols););
}

static void check_wtype(enum lc_dtype type)
{
    LC_ASSERT(type == LC_DTYPE_F32 || type == LC_DTYPE_F16 || type == LC_DTYPE_BF16);
}

/* ------------------------------------------------------------ small N */

/* rows of w per task of linear_small_n (multiples of every VL): one row
 * of x against many weight rows takes GEMV_ROWS_STREAMED, where that
 * still gives each thread 4 tasks, so that the vector gemv streams its
 * parts of a task's rows side by side (simd_kernels.h) each a few groups
 * long; several rows of x take GEMV_ROWS, whose weights stay in cache
 * from one row of x to the next */
#define GEMV_ROWS 32
#define GEMV_ROWS_STREAMED 128

/* weight block b (rows b * rows ..) of linear_small_n against every row
 * of x */
static void gemv_block(const struct lc_cpu_kernels *kr, float *y, const float *x, const void *w,
                       size_t ld, enum lc_dtype wtype, int N, int K, int M, float beta, int rows,
                       int b, int prefetch)
{
    const int m0 = b * rows;
    const int mr = M - m0 < rows ? M - m0 : rows;

    for (int n = 0; n < N; n++) {
        kr->gemv(y + (size_t)n * M + m0, x + (size_t)n * K, (const char *)w + (size_t)m0 * ld,
                 wtype, K, mr, beta, prefetch);
    }
}

/* The prefetch level for a one-row product of `bytes` of weights w while
 * the probe runs (struct lc_cpu_probe): the next level in turn where this
 * product is to be timed, else -1. */
static int probe_level(struct lc_cpu_probe *p, const void *w, size_t bytes)
{
    if (bytes < p->min_bytes) {
        return -1;
    }
    if (p->first == NULL) {
        p->first = w;
        return -1;
    }
    if (p->taken == 0 && w != p->first) {
        return -1;
    }
    return p->taken % LC_CPU_PREFETCH_COUNT;
}

static void probe_record(struct lc_cpu_ctx *ctx, double seconds, size_t bytes)
{
    struct lc_cpu_probe *p = &ctx->probe;

    p->per_byte[p->taken++] = seconds / (double)bytes;
    if (p->taken == LC_CPU_PROBE_PRODUCTS) {
        ctx->gemv_prefetch =
            lc_cpu_probe_pick(p->per_byte, LC_CPU_PROBE_PRODUCTS, ctx->gemv_prefetch, NULL);
        p->active = 0;
    }
}

/* y[n, m] = x[n] . w[m] (+ beta y): the ISA's gemv over blocks of weight
 * rows, read in their dtype (no fp32 copy), for each row of x while the
 * block is in cache; blocks are spread over the threads and every dot
 * product is one thread's fixed-order sum, so neither which thread takes a
 * block nor the block size (the gemv's sums do not depend on it) changes
 * the result */
static void linear_small_n(struct lc_backend *be, float *y, const float *x, const void *w,
                           enum lc_dtype wtype, int N, int K, int M, float beta)
{
    struct lc_cpu_ctx *ctx = be->ctx;
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const size_t ld = (size_t)K * lc_dtype_size(wtype);
    const int probed = N == 1 && ctx->probe.active ? probe_level(&ctx->probe, w, ld * M) : -1;
    const int prefetch = probed >= 0 ? probed : (int)ctx->gemv_prefetch;
    const double t0 = probed >= 0 ? lc_time_now() : 0.0;
    int rows = GEMV_ROWS, nblk;

    if ((int64_t)M * K < 65536) {
        /* a small model's layers: no OpenMP call per product, which would
         * cost as much as the product */
        nblk = (M + rows - 1) / rows;
        for (int b = 0; b < nblk; b++) {
            gemv_block(kr, y, x, w, ld, wtype, N, K, M, beta, rows, b, prefetch);
        }
    } else {
        if (N == 1 && M >= GEMV_ROWS_STREAMED * 4 * omp_get_max_threads()) {
            rows = GEMV_ROWS_STREAMED;
        }
        nblk = (M + rows - 1) / rows;
        /* Handed out one block at a time rather than in halves: decoding is
         * bound by memory, and a thread slowed by the rest of the machine
         * would hold up the other one for the rest of its half. */
#pragma omp parallel for schedule(dynamic, GEMV_ROWS_STREAMED / rows)
        for (int b = 0; b < nblk; b++) {
            gemv_block(kr, y, x, w, ld, wtype, N, K, M, beta, rows, b, prefetch);
        }
    }
    if (probed >= 0) {
        probe_record(ctx, lc_time_now() - t0, ld * M);
    }
}

/* ------------------------------------------------------------ linear */

/* rows of one fp32 weight tile of `len`-element rows: a multiple of 16
 * (at least 16) within the backend's weight_tile_bytes (cpu.h), and no
 * more than `total` */
static int tile_rows(const struct lc_backend *be, int len, int total)
{
    const size_t limit = ((const struct lc_cpu_ctx *)be->ctx)->weight_tile_bytes;
    int64_t rows = (int64_t)(limit / sizeof(float)) / (len > 0 ? len : 1);
    rows = rows / 16 * 16;
    if (rows < 16) {
        rows = 16;
    }
    return rows < total ? (int)rows : total;
}

void lc_cpu_linear_fwd(struct lc_backend *be, float *y, const float *x, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta)
{
    float *wt = NULL;
    int rows;

    check_wtype(wtype);
    if (N <= 0 || M <= 0) {
        return;
    }
    if (N <= LINEAR_SMALL_N && K > 0) {
        linear_small_n(be, y, x, w, wtype, N, K, M, beta);
        return;
    }
    if (wtype == LC_DTYPE_F32 || K <= 0) {
        lc_cpu_sgemm(0, 1, N, M, K, 1.0f, x, K, w, K, beta, y, M);
        return;
    }
    /* tiles of weight rows (output features) in fp32: no tile splits the
     * reduction over K, so each output is one SGEMM sum */
    rows = tile_rows(be, K, M);
    wt = lc_cpu_scratch(be, (size_t)rows * K * sizeof(float));
    if (wt == NULL) {
        return;
    }
    for (int m0 = 0; m0 < M; m0 += rows) {
        int mt = M - m0 < rows ? M - m0 : rows;
        convert_block(be, wt, w, wtype, K, m0, mt, 0, K);
        lc_cpu_sgemm(0, 1, N, mt, K, 1.0f, x, K, wt, K, beta, y + m0, M);
    }
}

/* dx[N,K] = dy[N,M] w[M,K] + beta dx with a half-precision w, by fp32
 * tiles of w.  Column tiles [M, cols] keep each output one SGEMM sum but
 * make every tile re-read all of dy; row tiles [rows, K] split the sum
 * over M into a fixed sequence of tiles and re-read dx instead.  Per pass
 * the first moves 4 N M bytes, the second 8 N K: pick the smaller (for
 * the vocabulary projection, M = V, that is row tiles by far). */
void lc_cpu_linear_bwd(struct lc_backend *be, float *dx, const float *dy, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta)
{
    float *wt = NULL;

    check_wtype(wtype);
    if (N <= 0 || K <= 0) {
        return;
    }
    if (wtype == LC_DTYPE_F32 || M <= 0) {
        lc_cpu_sgemm(0, 0, N, K, M, 1.0f, dy, M, w, K, beta, dx, K);
        return;
    }
    if ((int64_t)M <= 2 * (int64_t)K) {
        int cols = tile_rows(be, M, K);
        wt = lc_cpu_scratch(be, (size_t)M * cols * sizeof(float));
        if (wt == NULL) {
            return;
        }
        for (int k0 = 0; k0 < K; k0 += cols) {
            int kt = K - k0 < cols ? K - k0 : cols;
            convert_block(be, wt, w, wtype, K, 0, M, k0, kt);
            lc_cpu_sgemm(0, 0, N, kt, M, 1.0f, dy, M, wt, kt, beta, dx + k0, K);
        }
    } else {
        int rows = tile_rows(be, K, M);
        wt = lc_cpu_scratch(be, (size_t)rows * K * sizeof(float));
        if (wt == NULL) {
            return;
        }
        for (int m0 = 0; m0 < M; m0 += rows) {
            int mt = M - m0 < rows ? M - m0 : rows;
            convert_block(be, wt, w, wtype, K, m0, mt, 0, K);
            lc_cpu_sgemm(0, 0, N, K, mt, 1.0f, dy + m0, M, wt, K, m0 == 0 ? beta : 1.0f, dx, K);
        }
    }
}
