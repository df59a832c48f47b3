/*
 * bench_layer: speed of one Llama-3-8B-shaped decoder layer (hidden 4096,
 * 32 heads, 8 KV heads, head dim 128, FFN 14336, bf16 weights generated
 * in memory) through the backend table, for
 *   - the forward (softmax attention), and
 *   - one attention-transfer micro-batch of the layer (teacher forward,
 *     feature maps, hybrid attention forward, MSE, hybrid backward for the
 *     feature maps and window factors, feature-map backward),
 * as tokens/s and as achieved GFLOP/s against the GEMM peak measured in
 * the same run: the larger of an fp32 2048^3 gemm and a bf16-weight
 * 4096^3 linear layer of the same backend (on the CPU that is OpenBLAS
 * SGEMM; on a GPU the bf16 tensor-core rate).
 *
 * FLOPs counted: the matrix products (projections, MLP, causal attention
 * scores and weighted sums, feature maps, the chunked hybrid attention's
 * block products); elementwise work is not counted.
 *
 * usage: bench_layer [--backend NAME] [--tokens T] [--reps R] [--threads N]
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/half.h"
#include "core/util.h"

struct layer_shape {
    int T, C, H, Hkv, D, FF, f, W;
};

static struct lc_backend *be;

static void *dev_random(size_t n, enum lc_dtype dt, uint64_t seed, float scale)
{
    size_t esz = lc_dtype_size(dt);
    void *host = malloc(n * esz + 1);
    void *dev;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

    if (host == NULL) {
        fprintf(stderr, "bench_layer: out of memory\n");
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
        fprintf(stderr, "bench_layer: out of backend memory\n");
        exit(1);
    }
    return dev;
}

static double sync_now(void)
{
    be->ops->sync(be, NULL);
    return lc_time_now();
}

/* GEMM FLOPs of the chunked hybrid attention per (batch, head):
 * forward, and the backward of the stage-1 gradients */
static void hybrid_flops(const struct layer_shape *s, double *fwd, double *bwd)
{
    const double D = s->D, F = 2.0 * s->f;
    const int W = s->W, nblk = (s->T + W - 1) / W;

    *fwd = 0.0;
    *bwd = 0.0;
    for (int t = 0; t < nblk; t++) {
        const double nb = s->T - t * W < W ? s->T - t * W : W;
        const double nk = nb + (t > 0 ? W : 0);
        const double near = 2.0 * nb * nk * D;               /* scores or weights x values */
        const double lin = t >= 2 ? 2.0 * nb * F * D : 0.0; /* fq S */
        const double state = t >= 1 ? 2.0 * F * D * W : 0.0; /* S += fk^T v */
        *fwd += 2.0 * near + lin + state;
        /* backward: scores again, g.v, dfq from S, the reverse scan */
        *bwd += 2.0 * near + 2.0 * lin + 2.0 * state;
    }
}

static double gemm_peak(void)
{
    const int n = 2048, m = 4096;
    float *A = dev_random((size_t)n * n, LC_DTYPE_F32, 1, 1.0f);
    float *B = dev_random((size_t)n * n, LC_DTYPE_F32, 2, 1.0f);
    float *Cm = dev_random((size_t)n * n, LC_DTYPE_F32, 3, 1.0f);
    void *Wb = dev_random((size_t)m * m, LC_DTYPE_BF16, 4, 0.02f);
    float *X = dev_random((size_t)m * m, LC_DTYPE_F32, 5, 1.0f);
    float *Y = dev_random((size_t)m * m, LC_DTYPE_F32, 6, 1.0f);
    double best_f32 = 1e30, best_bf16 = 1e30;

    for (int r = 0; r < 4; r++) {
        double t0 = sync_now(), dt;
        be->ops->gemm(be, 0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, Cm, n);
        dt = sync_now() - t0;
        best_f32 = dt < best_f32 ? dt : best_f32;
        t0 = sync_now();
        be->ops->linear_fwd(be, Y, X, Wb, LC_DTYPE_BF16, m, m, m, 0.0f);
        dt = sync_now() - t0;
        best_bf16 = dt < best_bf16 ? dt : best_bf16;
    }
    printf("gemm fp32 %dx%dx%d: %.1f GFLOP/s; linear bf16 weights %dx%dx%d: %.1f GFLOP/s\n", n,
           n, n, 2.0 * n * n * n / best_f32 * 1e-9, m, m, m, 2.0 * m * m * m / best_bf16 * 1e-9);
    void *bufs[] = {A, B, Cm, Wb, X, Y};
    for (size_t i = 0; i < 6; i++) {
        be->ops->release(be, bufs[i]);
    }
    best_f32 = 2.0 * n * n * n / best_f32;
    best_bf16 = 2.0 * m * m * m / best_bf16;
    return best_f32 > best_bf16 ? best_f32 : best_bf16;
}

int main(int argc, char **argv)
{
    struct layer_shape s = {.T = 1024, .C = 4096, .H = 32, .Hkv = 8, .D = 128, .FF = 14336,
                            .f = 64, .W = 64};
    const char *backend = "cpu";
    struct lc_error err = {0};
    int reps = 3;
    int threads = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            s.T = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_layer [--backend NAME] [--tokens T] [--reps R] [--threads N]\n");
            return 2;
        }
    }
    lc_blas_use_fast_kernels(argc, argv);
    lc_set_num_threads(threads);
    if (lc_backend_open(&be, backend, &err) != LC_OK) {
        fprintf(stderr, "bench_layer: %s\n", err.msg);
        return strstr(err.msg, "no CUDA device") != NULL ? 77 : 1;
    }
    printf("backend %s\n", lc_backend_describe(be));

    const double peak = gemm_peak();
    const int N = s.T, HD = s.H * s.D, KD = s.Hkv * s.D, F = 2 * s.f;
    const struct lc_attn_shape as = {.B = 1, .T = s.T, .H = s.H, .Hkv = s.Hkv, .D = s.D, .F = F,
                                     .window = s.W, .mode = LC_WINDOW_TERRACED};
    void *wq = dev_random((size_t)HD * s.C, LC_DTYPE_BF16, 10, 0.02f);
    void *wk = dev_random((size_t)KD * s.C, LC_DTYPE_BF16, 11, 0.02f);
    void *wv = dev_random((size_t)KD * s.C, LC_DTYPE_BF16, 12, 0.02f);
    void *wo = dev_random((size_t)s.C * HD, LC_DTYPE_BF16, 13, 0.02f);
    void *wg = dev_random((size_t)s.FF * s.C, LC_DTYPE_BF16, 14, 0.02f);
    void *wu = dev_random((size_t)s.FF * s.C, LC_DTYPE_BF16, 15, 0.02f);
    void *wd = dev_random((size_t)s.C * s.FF, LC_DTYPE_BF16, 16, 0.02f);
    float *norm = dev_random((size_t)s.C, LC_DTYPE_F32, 17, 1.0f);
    float *x = dev_random((size_t)N * s.C, LC_DTYPE_F32, 18, 1.0f);
    float *xn = dev_random((size_t)N * s.C, LC_DTYPE_F32, 19, 1.0f);
    float *q = dev_random((size_t)N * HD, LC_DTYPE_F32, 20, 1.0f);
    float *k = dev_random((size_t)N * KD, LC_DTYPE_F32, 21, 1.0f);
    float *v = dev_random((size_t)N * KD, LC_DTYPE_F32, 22, 1.0f);
    float *att = dev_random((size_t)N * HD, LC_DTYPE_F32, 23, 1.0f);
    float *gate = dev_random((size_t)N * s.FF, LC_DTYPE_F32, 24, 1.0f);
    float *up = dev_random((size_t)N * s.FF, LC_DTYPE_F32, 25, 1.0f);
    float *ys = dev_random((size_t)N * HD, LC_DTYPE_F32, 26, 1.0f);
    float *dy = dev_random((size_t)N * HD, LC_DTYPE_F32, 27, 1.0f);
    float *fq = dev_random((size_t)N * s.H * F, LC_DTYPE_F32, 28, 1.0f);
    float *fk = dev_random((size_t)N * s.H * F, LC_DTYPE_F32, 29, 1.0f);
    float *dfq = dev_random((size_t)N * s.H * F, LC_DTYPE_F32, 30, 1.0f);
    float *dfk = dev_random((size_t)N * s.H * F, LC_DTYPE_F32, 31, 1.0f);
    float *mx = dev_random((size_t)N * s.H, LC_DTYPE_F32, 32, 1.0f);
    float *den = dev_random((size_t)N * s.H, LC_DTYPE_F32, 33, 1.0f);
    float *rows = dev_random((size_t)N, LC_DTYPE_F32, 34, 1.0f);
    float *fmq = dev_random((size_t)s.H * s.D * s.f, LC_DTYPE_F32, 35, 0.1f);
    float *fmk = dev_random((size_t)s.H * s.D * s.f, LC_DTYPE_F32, 36, 0.1f);
    float *dfmq = dev_random((size_t)s.H * s.D * s.f, LC_DTYPE_F32, 37, 0.0f);
    float *dfmk = dev_random((size_t)s.H * s.D * s.f, LC_DTYPE_F32, 38, 0.0f);
    float *theta = dev_random((size_t)s.H, LC_DTYPE_F32, 39, 1.0f);
    float *dtheta = dev_random((size_t)s.H, LC_DTYPE_F32, 40, 0.0f);
    int32_t *pos_host = malloc((size_t)N * sizeof(int32_t));
    float *tab_host = malloc((size_t)N * (s.D / 2) * sizeof(float));
    int32_t *pos;
    float *cos_tab;
    float *sin_tab;

    for (int i = 0; i < N; i++) {
        pos_host[i] = i;
        for (int j = 0; j < s.D / 2; j++) {
            tab_host[(size_t)i * (s.D / 2) + j] = cosf((float)i * powf(500000.0f, -2.0f * j / s.D));
        }
    }
    pos = lc_be_upload_new(be, pos_host, (size_t)N * sizeof(int32_t));
    cos_tab = lc_be_upload_new(be, tab_host, (size_t)N * (s.D / 2) * sizeof(float));
    sin_tab = lc_be_upload_new(be, tab_host, (size_t)N * (s.D / 2) * sizeof(float));

    /* GEMM FLOPs of the forward: projections, MLP, causal attention */
    const double f_proj = 2.0 * N * s.C * (double)(HD + 2 * KD + s.C);
    const double f_mlp = 2.0 * N * s.C * 3.0 * s.FF;
    const double f_attn = 2.0 * 2.0 * s.H * s.D * (double)N * (N + 1) / 2.0;
    double h_fwd, h_bwd;
    hybrid_flops(&s, &h_fwd, &h_bwd);
    h_fwd *= s.H;
    h_bwd *= s.H;
    /* feature maps: q and k forward, and their weight gradients */
    const double f_fmap = 2.0 * 2.0 * N * s.H * s.D * s.f;
    const double fwd_flops = f_proj + f_mlp + f_attn;
    const double s1_flops = fwd_flops + 2.0 * f_fmap + h_fwd + h_bwd;

    double best_fwd = 1e30, best_s1 = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sync_now(), dt;
        /* forward */
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, q, xn, wq, LC_DTYPE_BF16, N, s.C, HD, 0.0f);
        be->ops->linear_fwd(be, k, xn, wk, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->linear_fwd(be, v, xn, wv, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->rope_fwd(be, q, pos, cos_tab, sin_tab, N, s.H, s.D);
        be->ops->rope_fwd(be, k, pos, cos_tab, sin_tab, N, s.Hkv, s.D);
        be->ops->attn_fwd(be, att, q, k, v, 1, N, N, s.H, s.Hkv, s.D, 0);
        be->ops->linear_fwd(be, x, att, wo, LC_DTYPE_BF16, N, HD, s.C, 1.0f);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, gate, xn, wg, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->linear_fwd(be, up, xn, wu, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->swiglu_fwd(be, gate, gate, up, (int64_t)N * s.FF);
        be->ops->linear_fwd(be, x, gate, wd, LC_DTYPE_BF16, N, s.FF, s.C, 1.0f);
        dt = sync_now() - t0;
        best_fwd = dt < best_fwd ? dt : best_fwd;

        /* attention transfer of the layer: the forward plus the student */
        t0 = sync_now();
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, q, xn, wq, LC_DTYPE_BF16, N, s.C, HD, 0.0f);
        be->ops->linear_fwd(be, k, xn, wk, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->linear_fwd(be, v, xn, wv, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->rope_fwd(be, q, pos, cos_tab, sin_tab, N, s.H, s.D);
        be->ops->rope_fwd(be, k, pos, cos_tab, sin_tab, N, s.Hkv, s.D);
        be->ops->attn_fwd(be, att, q, k, v, 1, N, N, s.H, s.Hkv, s.D, 0);
        be->ops->fmap_fwd(be, fq, q, fmq, N, s.H, s.H, s.D, s.f, 1e-12f);
        be->ops->fmap_fwd(be, fk, k, fmk, N, s.H, s.Hkv, s.D, s.f, 1e-12f);
        be->ops->hybrid_fwd(be, ys, mx, den, q, k, v, fq, fk, theta, &as);
        be->ops->mse_fwd_bwd(be, rows, dy, ys, att, N, HD, 1e-3f);
        be->ops->hybrid_bwd(be, NULL, NULL, NULL, dfq, dfk, dtheta, dy, ys, mx, den, q, k, v, fq,
                            fk, theta, &as);
        be->ops->fmap_bwd(be, dfmq, NULL, dfq, q, fmq, N, s.H, s.H, s.D, s.f, 1e-12f);
        be->ops->fmap_bwd(be, dfmk, NULL, dfk, k, fmk, N, s.H, s.Hkv, s.D, s.f, 1e-12f);
        be->ops->linear_fwd(be, x, att, wo, LC_DTYPE_BF16, N, HD, s.C, 1.0f);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, gate, xn, wg, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->linear_fwd(be, up, xn, wu, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->swiglu_fwd(be, gate, gate, up, (int64_t)N * s.FF);
        be->ops->linear_fwd(be, x, gate, wd, LC_DTYPE_BF16, N, s.FF, s.C, 1.0f);
        dt = sync_now() - t0;
        best_s1 = dt < best_s1 ? dt : best_s1;
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        fprintf(stderr, "bench_layer: %s\n", err.msg);
        return 1;
    }
    printf("layer: T %d, hidden %d, %d heads (%d KV) of %d, FFN %d, bf16 weights; "
           "feature dim %d, window %d terraced\n",
           s.T, s.C, s.H, s.Hkv, s.D, s.FF, s.f, s.W);
    printf("forward:                %10.0f tokens/s  %8.1f GFLOP/s  %5.1f%% of the GEMM peak\n",
           N / best_fwd, fwd_flops / best_fwd * 1e-9, 100.0 * fwd_flops / best_fwd / peak);
    printf("attention transfer:     %10.0f tokens/s  %8.1f GFLOP/s  %5.1f%% of the GEMM peak\n",
           N / best_s1, s1_flops / best_s1 * 1e-9, 100.0 * s1_flops / best_s1 / peak);
    lc_backend_close(be);
    free(pos_host);
    free(tab_host);
    return 0;
}
