/* What the backend-table benchmarks share (bench_common.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend-cpu/cpu.h"
#include "bench/bench_common.h"
#include "core/half.h"
#include "core/util.h"

static const char *prog = "bench";

/* Runs the program again for each kernel set of the cpu backend this CPU
 * supports (LC_CPU_ISA set for it), one after the other, and exits with
 * the first failure's status.  The AVX2 run also gets OpenBLAS's Haswell
 * kernels (unless OPENBLAS_CORETYPE is set), so that on a CPU with
 * AVX-512 it measures what an AVX2 machine would run, SGEMM peak included. */
static void run_each_isa(char **argv)
{
    int status = 0;

    for (int i = 0; i < LC_CPU_ISA_COUNT; i++) {
        const enum lc_cpu_isa isa = (enum lc_cpu_isa)i;
        pid_t pid;
        int st = 0;

        if (!lc_cpu_isa_supported(isa)) {
            continue;
        }
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
            fprintf(stderr, "%s: fork failed\n", prog);
            exit(1);
        }
        if (pid == 0) {
            setenv("LC_CPU_ISA", lc_cpu_isa_name(isa), 1);
            if (isa == LC_CPU_ISA_AVX2 && getenv("OPENBLAS_CORETYPE") == NULL) {
                setenv("OPENBLAS_CORETYPE", "Haswell", 1);
            }
            execv("/proc/self/exe", argv);
            fprintf(stderr, "%s: cannot run itself again\n", prog);
            _exit(1);
        }
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            status = status != 0 ? status : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
        }
    }
    exit(status);
}

int bench_open(struct lc_backend **be, const char *name, int argc, char **argv,
               const char *backend, int threads)
{
    struct lc_error err = {0};
    const char *isa = getenv("LC_CPU_ISA");

    prog = name;
    if (strcmp(backend, "cpu") == 0 && (isa == NULL || strcmp(isa, "all") == 0)) {
        printf("%s: each kernel set of the cpu backend in turn (LC_CPU_ISA picks one)\n", prog);
        run_each_isa(argv);
    }
    lc_blas_use_fast_kernels(argc, argv);
    lc_set_num_threads(threads);
    if (lc_backend_open(be, backend, &err) != LC_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return strstr(err.msg, "no CUDA device") != NULL ? 77 : 1;
    }
    printf("backend %s\n", lc_backend_describe(*be));
    return 0;
}

void *bench_random(struct lc_backend *be, size_t n, enum lc_dtype dt, uint64_t seed, float scale)
{
    size_t esz = lc_dtype_size(dt);
    void *host = malloc(n * esz + 1);
    void *dev;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

    if (host == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        float v;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v = scale * (2.0f * (float)(s >> 40) / (float)(1ull << 24) - 1.0f);
        if (dt == LC_DTYPE_BF16) {
            ((uint16_t *)host)[i] = lc_f32_to_bf16(v);
        } else {
            ((float *)host)[i] = v;
        }
    }
    dev = lc_be_upload_new(be, host, n * esz);
    free(host);
    if (dev == NULL) {
        fprintf(stderr, "%s: out of backend memory\n", prog);
        exit(1);
    }
    return dev;
}

double bench_sync_now(struct lc_backend *be)
{
    be->ops->sync(be, NULL);
    return lc_time_now();
}

/* the peak's shapes: fp32 gemm n^3, bf16-weight linear m^3 */
enum { PEAK_N = 2048, PEAK_M = 4096 };

void bench_peak_open(struct bench_peak *p, struct lc_backend *be)
{
    const size_t n = PEAK_N, m = PEAK_M;

    p->be = be;
    p->A = bench_random(be, n * n, LC_DTYPE_F32, 1, 1.0f);
    p->B = bench_random(be, n * n, LC_DTYPE_F32, 2, 1.0f);
    p->C = bench_random(be, n * n, LC_DTYPE_F32, 3, 1.0f);
    p->W = bench_random(be, m * m, LC_DTYPE_BF16, 4, 0.02f);
    p->X = bench_random(be, m * m, LC_DTYPE_F32, 5, 1.0f);
    p->Y = bench_random(be, m * m, LC_DTYPE_F32, 6, 1.0f);
    p->best_f32 = 1e30;
    p->best_bf16 = 1e30;
}

void bench_peak_sample(struct bench_peak *p)
{
    struct lc_backend *be = p->be;
    const int n = PEAK_N, m = PEAK_M;
    double t0 = bench_sync_now(be), dt;

    be->ops->gemm(be, 0, 0, n, n, n, 1.0f, p->A, n, p->B, n, 0.0f, p->C, n);
    dt = bench_sync_now(be) - t0;
    p->best_f32 = dt < p->best_f32 ? dt : p->best_f32;
    t0 = bench_sync_now(be);
    be->ops->linear_fwd(be, p->Y, p->X, p->W, LC_DTYPE_BF16, m, m, m, 0.0f);
    dt = bench_sync_now(be) - t0;
    p->best_bf16 = dt < p->best_bf16 ? dt : p->best_bf16;
}

double bench_peak_close(struct bench_peak *p)
{
    const double n = PEAK_N, m = PEAK_M;
    const double f32 = 2.0 * n * n * n / p->best_f32, bf16 = 2.0 * m * m * m / p->best_bf16;
    void *bufs[] = {p->A, p->B, p->C, p->W, p->X, p->Y};

    printf("gemm fp32 %dx%dx%d: %.1f GFLOP/s; linear bf16 weights %dx%dx%d: %.1f GFLOP/s\n",
           PEAK_N, PEAK_N, PEAK_N, f32 * 1e-9, PEAK_M, PEAK_M, PEAK_M, bf16 * 1e-9);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        p->be->ops->release(p->be, bufs[i]);
    }
    return f32 > bf16 ? f32 : bf16;
}

double bench_gemm_peak(struct lc_backend *be, int reps)
{
    struct bench_peak p;

    bench_peak_open(&p, be);
    for (int r = 0; r < reps; r++) {
        bench_peak_sample(&p);
    }
    return bench_peak_close(&p);
}

void bench_llama3_8b_layer(struct lc_model_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->arch, sizeof(cfg->arch), "llama");
    cfg->vocab_size = 256;
    cfg->tie_word_embeddings = 1;
    cfg->hidden_size = 4096;
    cfg->intermediate_size = 14336;
    cfg->n_layers = 1;
    cfg->n_heads = 32;
    cfg->n_kv_heads = 8;
    cfg->head_dim = 128;
    cfg->rms_norm_eps = 1e-5f;
    cfg->rope_theta = 500000.0;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
}

void bench_llama32_1b(struct lc_model_config *cfg)
{
    bench_llama3_8b_layer(cfg);
    cfg->vocab_size = 128256;
    cfg->tie_word_embeddings = 1;
    cfg->hidden_size = 2048;
    cfg->intermediate_size = 8192;
    cfg->n_layers = 16;
    cfg->head_dim = 64;
    cfg->max_position_embeddings = 131072;
    cfg->rope_type = LC_ROPE_LLAMA3;
    cfg->rope_factor = 32.0;
    cfg->rope_low_freq_factor = 1.0;
    cfg->rope_high_freq_factor = 4.0;
    cfg->rope_original_max_pos = 8192;
    cfg->bos_token_id = 128000;
    cfg->eos_token_id = 128001;
}

void bench_hybrid_blocks(int T, int W, int D, int F, double *near, double *lin, double *state)
{
    const int nblk = (T + W - 1) / W;

    *near = 0.0;
    *lin = 0.0;
    *state = 0.0;
    for (int b = 0; b < nblk; b++) {
        const double nb = T - b * W < W ? T - b * W : W;
        const double nk = nb + (b > 0 ? W : 0);
        *near += 2.0 * nb * nk * D;
        *lin += b >= 2 ? 2.0 * nb * F * D : 0.0;
        *state += b >= 1 ? 2.0 * (double)F * D * W : 0.0;
    }
}

void bench_hybrid_flops(int T, int W, int D, int F, double *fwd, double *bwd)
{
    double near, lin, state;

    bench_hybrid_blocks(T, W, D, F, &near, &lin, &state);
    *fwd = 2.0 * near + lin + state;
    /* backward: scores again, g.v, dfq from S, the reverse scan */
    *bwd = 2.0 * near + 2.0 * lin + 2.0 * state;
}

void bench_layer_flops(const struct lc_model_config *c, int T, int f, int W, int with_mlp,
                       double *fwd, double *transfer)
{
    const double N = T, C = c->hidden_size, H = c->n_heads, D = c->head_dim;
    const double HD = H * D, KD = (double)c->n_kv_heads * D, FF = c->intermediate_size;
    const double proj = 2.0 * N * C * (HD + 2.0 * KD + C);
    const double mlp = with_mlp ? 2.0 * N * C * 3.0 * FF : 0.0;
    const double attn = 2.0 * 2.0 * H * D * N * (N + 1) / 2.0;
    /* feature maps of q and k, and their weight gradients */
    const double fmap = 2.0 * 2.0 * N * H * D * f;
    double hy_fwd, hy_bwd;

    bench_hybrid_flops(T, W, c->head_dim, 2 * f, &hy_fwd, &hy_bwd);
    *fwd = proj + mlp + attn;
    *transfer = *fwd + 2.0 * fmap + H * (hy_fwd + hy_bwd);
}

void bench_report(const char *what, int width, int tokens, double secs, double flops,
                  double peak)
{
    printf("%-*s %9.0f tokens/s  %8.1f GFLOP/s  %5.1f%% of the GEMM peak\n", width, what,
           tokens / secs, flops / secs * 1e-9, 100.0 * flops / secs / peak);
}
