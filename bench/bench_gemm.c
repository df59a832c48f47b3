/*
 * bench_gemm: how close the cpu backend's dense kernels come to the
 * machine's SGEMM speed.
 *
 * Prints the SGEMM rate at n = 2048 (OpenBLAS with its own threads, and
 * the backend's deterministic tiled gemm), then the linear layers of a
 * Llama-8B block (N = 1024 tokens, K = 4096, M = 4096 and 14336) with F32
 * and BF16 weights as a fraction of that peak, one decoding step (N = 1)
 * as a memory bandwidth, and the teacher attention.  Not part of make
 * check; run it by hand: bench/bench_gemm [repeats [threads]].  With
 * threads = 1 the times are the process's CPU time, which a busy shared
 * machine disturbs far less than the wall clock; otherwise wall time.
 */
#include "config.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "backend-cpu/cpu.h"
#include "core/half.h"

static int repeats = 5;
static int cpu_clock; /* time by CPU time (one thread) rather than wall */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (p == NULL) {
        fprintf(stderr, "bench_gemm: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float *random_f32(size_t n, uint32_t seed)
{
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    return x;
}

static uint16_t *to_bf16(const float *x, size_t n)
{
    uint16_t *h = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        h[i] = lc_f32_to_bf16(x[i]);
    }
    return h;
}

/* ------------------------------------------------------ timed bodies */

enum job_kind { JOB_BLAS, JOB_GEMM, JOB_LINEAR_FWD, JOB_LINEAR_BWD, JOB_ATTN };

struct job {
    enum job_kind kind;
    struct lc_backend *be;
    int N, K, M; /* gemm: M x N x K; linear: x [N,K], w [M,K] */
    enum lc_dtype wtype;
    const float *a, *b;
    const void *w;
    float *c;
    int B, T, H, Hkv, D; /* attention */
    const float *q, *k, *v;
};

static void run_job(const struct job *j)
{
    switch (j->kind) {
    case JOB_BLAS:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->M, j->N, j->K, 1.0f, j->a, j->K,
                    j->b, j->N, 0.0f, j->c, j->N);
        break;
    case JOB_GEMM:
        j->be->ops->gemm(j->be, 0, 0, j->M, j->N, j->K, 1.0f, j->a, j->K, j->b, j->N, 0.0f, j->c,
                         j->N);
        break;
    case JOB_LINEAR_FWD:
        j->be->ops->linear_fwd(j->be, j->c, j->a, j->w, j->wtype, j->N, j->K, j->M, 0.0f);
        break;
    case JOB_LINEAR_BWD:
        j->be->ops->linear_bwd(j->be, j->c, j->a, j->w, j->wtype, j->N, j->K, j->M, 0.0f);
        break;
    case JOB_ATTN:
        j->be->ops->attn_fwd(j->be, j->c, j->q, j->k, j->v, j->B, j->T, j->T, j->H, j->Hkv, j->D,
                             0);
        break;
    }
}

static double now(void)
{
    struct timespec ts;
    if (!cpu_clock) {
        return omp_get_wtime();
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* best time of `repeats` runs after one warm-up run */
static double time_job(const struct job *j)
{
    double best = 1e30;
    run_job(j);
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        double dt;
        run_job(j);
        dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* ------------------------------------------------------------- parts */

static double bench_sgemm(struct lc_backend *be)
{
    const int n = 2048;
    float *a = random_f32((size_t)n * n, 1);
    float *b = random_f32((size_t)n * n, 2);
    float *c = xmalloc((size_t)n * n * sizeof(float));
    struct job j = {.kind = JOB_BLAS, .be = be, .M = n, .N = n, .K = n, .a = a, .b = b, .c = c};
    double flops = 2.0 * n * n * n;
    double blas;
    double tiled;

    blas = flops / time_job(&j) * 1e-9;
    j.kind = JOB_GEMM;
    tiled = flops / time_job(&j) * 1e-9;
    printf("SGEMM n=%d, OpenBLAS %s, %d threads:\n", n, lc_blas_kernel_name(),
           lc_get_num_threads());
    printf("  cblas_sgemm (OpenBLAS threads)       %8.1f GFLOP/s  (the peak below)\n", blas);
    printf("  backend gemm (deterministic tiles)   %8.1f GFLOP/s  %5.2f of peak\n", tiled,
           tiled / blas);
    free(a);
    free(b);
    free(c);
    return blas;
}

static void bench_linear(struct lc_backend *be, double peak)
{
    static const int Ms[] = {4096, 14336};
    const int N = 1024;
    const int K = 4096;

    printf("linear layers, N=%d tokens, K=%d (Llama-8B block):\n", N, K);
    for (size_t i = 0; i < sizeof(Ms) / sizeof(Ms[0]); i++) {
        int M = Ms[i];
        float *x = random_f32((size_t)N * (M > K ? M : K), 3);
        float *w32 = random_f32((size_t)M * K, 4);
        uint16_t *w16 = to_bf16(w32, (size_t)M * K);
        float *y = xmalloc((size_t)N * (M > K ? M : K) * sizeof(float));
        double flops = 2.0 * N * K * M;
        struct job j = {.be = be, .N = N, .K = K, .M = M, .a = x, .c = y};

        for (int t = 0; t < 2; t++) {
            j.wtype = t == 0 ? LC_DTYPE_F32 : LC_DTYPE_BF16;
            j.w = t == 0 ? (const void *)w32 : (const void *)w16;
            for (int dir = 0; dir < 2; dir++) {
                double g;
                j.kind = dir == 0 ? JOB_LINEAR_FWD : JOB_LINEAR_BWD;
                g = flops / time_job(&j) * 1e-9;
                printf("  %s M=%-5d %-4s  %8.1f GFLOP/s  %5.2f of peak\n",
                       dir == 0 ? "linear_fwd" : "linear_bwd", M, lc_dtype_name(j.wtype), g,
                       g / peak);
            }
        }
        /* one decoding step: the weights stream through once */
        j.kind = JOB_LINEAR_FWD;
        j.N = 1;
        j.wtype = LC_DTYPE_BF16;
        j.w = w16;
        printf("  linear_fwd M=%-5d BF16 N=1  %8.1f GB/s of weights\n", M,
               (double)M * K * 2 / time_job(&j) * 1e-9);
        free(x);
        free(w32);
        free(w16);
        free(y);
    }
}

static void bench_attn(struct lc_backend *be, double peak)
{
    static const int shapes[][5] = {
        /* B, T, H, Hkv, D */
        {1, 1024, 32, 8, 128},
        {1, 2048, 32, 8, 128},
        {8, 256, 8, 4, 8},
    };

    printf("attn_fwd (causal):\n");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int B = shapes[s][0];
        int T = shapes[s][1];
        int H = shapes[s][2];
        int Hkv = shapes[s][3];
        int D = shapes[s][4];
        size_t nq = (size_t)B * T * H * D;
        size_t nkv = (size_t)B * T * Hkv * D;
        struct job j = {.kind = JOB_ATTN, .be = be, .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D};
        /* QK^T and PV over the causal half */
        double flops = 2.0 * 2.0 * B * H * D * ((double)T * (T + 1) / 2);
        double dt;
        float *q = random_f32(nq, 5);
        float *k = random_f32(nkv, 6);
        float *v = random_f32(nkv, 7);
        float *y = xmalloc(nq * sizeof(float));
        j.q = q;
        j.k = k;
        j.v = v;
        j.c = y;
        dt = time_job(&j);
        printf("  B=%d T=%-4d H=%-2d Hkv=%d D=%-3d  %8.2f ms  %8.1f GFLOP/s  %5.2f of peak\n", B,
               T, H, Hkv, D, dt * 1e3, flops / dt * 1e-9, flops / dt * 1e-9 / peak);
        free(q);
        free(k);
        free(v);
        free(y);
    }
}

int main(int argc, char **argv)
{
    struct lc_backend be = {0};
    struct lc_error err = {0};
    double peak;

    lc_blas_use_fast_kernels(argc, argv);
    if (argc > 1) {
        repeats = atoi(argv[1]);
        if (repeats < 1 || (argc > 2 && atoi(argv[2]) < 1) || argc > 3) {
            fprintf(stderr, "usage: bench_gemm [repeats >= 1 [threads >= 1]]\n");
            return 2;
        }
        if (argc > 2) {
            lc_set_num_threads(atoi(argv[2]));
            cpu_clock = atoi(argv[2]) == 1;
        }
    }
    /* the table is opened directly: the benchmark needs only its dense
     * entries, not the completeness check of lc_backend_open */
    be.ops = &lc_cpu_ops;
    if (be.ops->init(&be, &err) != LC_OK) {
        fprintf(stderr, "bench_gemm: %s\n", err.msg);
        return 1;
    }
    printf("%s; times: %s\n", be.ops->describe(&be),
           cpu_clock ? "CPU time of the one thread" : "wall clock");
    peak = bench_sgemm(&be);
    bench_linear(&be, peak);
    bench_attn(&be, peak);
    if (be.ops->sync(&be, &err) != LC_OK) {
        fprintf(stderr, "bench_gemm: %s\n", err.msg);
        be.ops->fini(&be);
        return 1;
    }
    be.ops->fini(&be);
    return 0;
}
