/*
 * bench_train: speed of stage 2 (LoRA on the linearized model: forward and
 * backward of every layer) through the backend table, as tokens/s and as
 * achieved GFLOP/s against the GEMM peak measured in the same run (the
 * larger of an fp32 2048^3 gemm and a bf16-weight 4096^3 linear layer of
 * the backend), for
 *   - stories260K (--model DIR): whole micro-batches of 1 x 512 tokens,
 *     lm_head and loss included, with and without --recompute;
 *   - one Llama-3-8B-shaped layer (hidden 4096, 32 heads, 8 KV heads of
 *     128, FFN 14336, bf16 weights generated in memory; feature dim 64,
 *     window 64 terraced; LoRA r 8 on q, k, v, o) at T tokens (--tokens,
 *     default 1024; 0 skips it): the layer's forward and backward as the
 *     trainer runs them.
 *
 * FLOPs counted: matrix products only.  Forward: the projections, the MLP,
 * LoRA, the feature maps, and the chunked hybrid attention's block
 * products (window scores and weighted values, phi(q) S, S += phi(k)^T v).
 * Backward: the input gradients of the projections and MLP (as many FLOPs
 * as their forward), LoRA's four products per adapter, the feature maps'
 * weight and input gradients, and the hybrid attention's backward (window:
 * scores again, dP, dv, dq, dk; linear: two products with S, three for its
 * gradient).  Elementwise work (norms, RoPE, softmax, SwiGLU) is not counted.
 *
 * usage: bench_train [--backend NAME] [--model DIR] [--tokens T] [--reps R]
 *                    [--threads N]
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/finetune.h"
#include "core/half.h"
#include "core/util.h"

static struct lc_backend *be;

static void *dev_random(size_t n, enum lc_dtype dt, uint64_t seed, float scale)
{
    size_t esz = lc_dtype_size(dt);
    void *host = malloc(n * esz + 1);
    void *dev;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

    if (host == NULL) {
        fprintf(stderr, "bench_train: out of memory\n");
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
        fprintf(stderr, "bench_train: out of backend memory\n");
        exit(1);
    }
    return dev;
}

static double sync_now(void)
{
    be->ops->sync(be, NULL);
    return lc_time_now();
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

    for (int r = 0; r < 3; r++) {
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

/* GEMM FLOPs of one layer's stage-2 forward and backward for T tokens
 * (one sequence) */
static void layer_flops(const struct lc_model_config *c, int f, int W, int R, unsigned targets,
                        int T, double *fwd, double *bwd)
{
    const double N = T, C = c->hidden_size, H = c->n_heads, D = c->head_dim;
    const double HD = H * D, KD = (double)c->n_kv_heads * D, FF = c->intermediate_size;
    const double F = 2.0 * f;
    const double ins[4] = {C, C, C, HD}, outs[4] = {HD, KD, KD, C};
    double proj = 2.0 * N * C * (HD + 2 * KD) + 2.0 * N * HD * C;
    double mlp = 2.0 * N * C * 3.0 * FF;
    double lora_f = 0.0, lora_b = 0.0;
    double fm = 2.0 * 2.0 * N * H * D * f;
    double hf = 0.0, hb = 0.0;
    const int nblk = (T + W - 1) / W;

    for (int t = 0; t < 4; t++) {
        if (targets & (1u << t)) {
            lora_f += 2.0 * N * R * (ins[t] + outs[t]);
            lora_b += 2.0 * N * R * (2.0 * ins[t] + 2.0 * outs[t]) + 2.0 * N * R * ins[t];
        }
    }
    for (int b = 0; b < nblk; b++) {
        const double nb = T - b * W < W ? T - b * W : W;
        const double nk = nb + (b > 0 ? W : 0);
        const double near = 2.0 * nb * nk * D;
        const double lin = b >= 2 ? 2.0 * nb * F * D : 0.0;
        const double state = b >= 1 ? 2.0 * F * D * W : 0.0;
        hf += 2.0 * near + lin + state;
        hb += 5.0 * near + 2.0 * lin + 3.0 * state;
    }
    *fwd = proj + mlp + lora_f + fm + H * hf;
    *bwd = proj + mlp + lora_b + 2.0 * fm + H * hb;
}

static void report(const char *what, int tokens, double secs, double flops, double peak)
{
    printf("%-38s %9.0f tokens/s  %8.1f GFLOP/s  %5.1f%% of the GEMM peak\n", what,
           tokens / secs, flops / secs * 1e-9, 100.0 * flops / secs / peak);
}

static void update_peak(double *peak)
{
    double again = gemm_peak();
    *peak = again > *peak ? again : *peak;
    printf("GEMM peak used: %.1f GFLOP/s\n", *peak * 1e-9);
}

static int bench_model(const char *dir, int reps, double *peak)
{
    struct lc_error err = {0};
    struct lc_llama *m = NULL;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_linattn_cfg lcfg = {.feature_dim = 64, .window = 64, .mode = LC_WINDOW_TERRACED};
    struct lc_lora_cfg rcfg = {.rank = 8, .alpha = 16, .dropout = 0, .targets = 15};
    const int T = 512;
    double times[2] = {0, 0}, flops[2] = {0, 0};
    int32_t *ids = malloc(T * sizeof(int32_t));
    int32_t *targets = malloc(T * sizeof(int32_t));
    int status = 0;

    if (lc_llama_load(&m, dir, be, &err) != LC_OK || lc_linattn_new(&lin, m, &lcfg, &err) != LC_OK ||
        lc_lora_new(&lora, m, &rcfg, 0, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    m->lora = lora;
    for (int i = 0; i < T; i++) {
        ids[i] = (int32_t)((i * 7919u + 13u) % (unsigned)m->cfg.vocab_size);
        targets[i] = i + 1 < T ? (int32_t)(((i + 1) * 7919u + 13u) % (unsigned)m->cfg.vocab_size)
                               : -1;
    }
    for (int recompute = 0; recompute < 2 && status == 0; recompute++) {
        struct lc_ft *ft = NULL;
        double best = 1e30, fwd, bwd, head;
        double sum;
        int64_t count;
        if (lc_ft_new(&ft, m, lin, lora, T, recompute, 0, &err) != LC_OK) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
        for (int r = 0; r < reps + 1; r++) {
            double t0 = sync_now(), dt;
            if (lc_ft_microbatch(ft, ids, targets, 1, T, 1, 1.0, &sum, &count, &err) != LC_OK) {
                fprintf(stderr, "bench_train: %s\n", err.msg);
                status = 1;
                break;
            }
            dt = sync_now() - t0;
            if (r > 0 && dt < best) { /* the first run warms up */
                best = dt;
            }
        }
        layer_flops(&m->cfg, 64, 64, 8, 15, T, &fwd, &bwd);
        /* lm_head forward and input gradient */
        head = 2.0 * 2.0 * T * (double)m->cfg.hidden_size * m->cfg.vocab_size;
        times[recompute] = best;
        flops[recompute] = m->cfg.n_layers * (fwd * (recompute ? 2 : 1) + bwd) + head;
        lc_ft_free(ft);
    }
    if (status == 0) {
        update_peak(peak);
        printf("stories260K, micro-batches of 1 x %d tokens, LoRA r 8 on q,k,v,o:\n", T);
        report("  forward + backward:", T, times[0], flops[0], *peak);
        report("  with --recompute:", T, times[1], flops[1], *peak);
    }
    m->lora = NULL;
    lc_lora_free(lora);
    lc_linattn_free(lin);
    lc_llama_free(m);
    free(ids);
    free(targets);
    return status;
}

/* One Llama-3-8B-shaped layer in a model object built in memory. */
static int bench_layer(int T, int reps, double *peak)
{
    struct lc_error err = {0};
    struct lc_llama m;
    struct lc_llama_layer layer;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_ft *ft = NULL;
    struct lc_linattn_cfg lcfg = {.feature_dim = 64, .window = 64, .mode = LC_WINDOW_TERRACED};
    struct lc_lora_cfg rcfg = {.rank = 8, .alpha = 16, .dropout = 0, .targets = 15};
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    double best_f = 1e30, best_b = 1e30, fwd, bwd;
    float *dx_host;
    int C, HD, KD, FF;

    memset(&m, 0, sizeof(m));
    memset(&layer, 0, sizeof(layer));
    m.be = be;
    snprintf(m.cfg.arch, sizeof(m.cfg.arch), "llama");
    m.cfg.vocab_size = 256; /* only the layer runs; the head's scratch stays small */
    m.cfg.hidden_size = C = 4096;
    m.cfg.intermediate_size = FF = 14336;
    m.cfg.n_layers = 1;
    m.cfg.n_heads = 32;
    m.cfg.n_kv_heads = 8;
    m.cfg.head_dim = 128;
    m.cfg.rms_norm_eps = 1e-5f;
    m.cfg.rope_theta = 500000.0;
    HD = 32 * 128;
    KD = 8 * 128;
    m.layers = &layer;
    m.inv_freq_host = malloc(64 * sizeof(float));
    lc_rope_inv_freq(&m.cfg, m.inv_freq_host);
    layer.attn_norm = dev_random((size_t)C, LC_DTYPE_F32, 17, 1.0f);
    layer.ffn_norm = dev_random((size_t)C, LC_DTYPE_F32, 18, 1.0f);
    layer.wq = (struct lc_weight){dev_random((size_t)HD * C, LC_DTYPE_BF16, 10, 0.02f), LC_DTYPE_BF16, NULL};
    layer.wk = (struct lc_weight){dev_random((size_t)KD * C, LC_DTYPE_BF16, 11, 0.02f), LC_DTYPE_BF16, NULL};
    layer.wv = (struct lc_weight){dev_random((size_t)KD * C, LC_DTYPE_BF16, 12, 0.02f), LC_DTYPE_BF16, NULL};
    layer.wo = (struct lc_weight){dev_random((size_t)C * HD, LC_DTYPE_BF16, 13, 0.02f), LC_DTYPE_BF16, NULL};
    layer.w_gate = (struct lc_weight){dev_random((size_t)FF * C, LC_DTYPE_BF16, 14, 0.02f), LC_DTYPE_BF16, NULL};
    layer.w_up = (struct lc_weight){dev_random((size_t)FF * C, LC_DTYPE_BF16, 15, 0.02f), LC_DTYPE_BF16, NULL};
    layer.w_down = (struct lc_weight){dev_random((size_t)C * FF, LC_DTYPE_BF16, 16, 0.02f), LC_DTYPE_BF16, NULL};
    if (lc_llama_rope_reserve(&m, T, &err) != LC_OK ||
        lc_linattn_new(&lin, &m, &lcfg, &err) != LC_OK ||
        lc_lora_new(&lora, &m, &rcfg, 0, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    m.lora = lora;
    if (lc_ft_new(&ft, &m, lin, lora, T, 0, 0, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    printf("activations of one layer at T %d: %.1f MiB (%.1f MiB with --recompute)\n", T,
           (double)lc_ft_bytes(&m, lin, lora, T, 0, 0) / (1 << 20),
           (double)lc_ft_bytes(&m, lin, lora, T, 1, 0) / (1 << 20));
    for (int i = 0; i < T; i++) {
        pos[i] = i;
    }
    be->ops->upload(be, ft->pos, pos, (size_t)T * sizeof(int32_t));
    {
        float *x = dev_random((size_t)T * C, LC_DTYPE_F32, 20, 1.0f);
        be->ops->copy(be, ft->acts[0].x, x, (size_t)T * C * sizeof(float));
        be->ops->release(be, x);
    }
    dx_host = malloc((size_t)T * C * sizeof(float));
    for (size_t i = 0; i < (size_t)T * C; i++) {
        dx_host[i] = (float)((int)(i % 17) - 8) * 1e-3f;
    }
    lc_ft_zero_grads(ft);
    for (int r = 0; r < reps + 1; r++) {
        double t0, t1, t2;
        /* the backward turns dx into the input's gradient: a fresh one each time */
        be->ops->upload(be, ft->dx, dx_host, (size_t)T * C * sizeof(float));
        t0 = sync_now();
        lc_ft_layer_forward(ft, 0, &ft->acts[0], ft->x_last, 1, T);
        t1 = sync_now();
        lc_ft_layer_backward(ft, 0, &ft->acts[0], ft->dx, 1, T);
        t2 = sync_now();
        if (r > 0) { /* the first run warms up */
            best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
            best_b = t2 - t1 < best_b ? t2 - t1 : best_b;
        }
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    layer_flops(&m.cfg, 64, 64, 8, 15, T, &fwd, &bwd);
    update_peak(peak);
    printf("Llama-3-8B-shaped layer: T %d, hidden 4096, 32 heads (8 KV) of 128, FFN 14336, bf16 "
           "weights; f 64, window 64 terraced, LoRA r 8 on q,k,v,o\n",
           T);
    report("  forward:", T, best_f, fwd, *peak);
    report("  backward:", T, best_b, bwd, *peak);
    report("  forward + backward:", T, best_f + best_b, fwd + bwd, *peak);
    report("  --recompute (2 forwards + backward):", T, 2 * best_f + best_b, 2 * fwd + bwd, *peak);
    lc_ft_free(ft);
    lc_lora_free(lora);
    lc_linattn_free(lin);
    be->ops->release(be, m.rope_cos);
    be->ops->release(be, m.rope_sin);
    free(m.inv_freq_host);
    free(pos);
    free(dx_host);
    return 0;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu";
    const char *model = NULL;
    struct lc_error err = {0};
    int reps = 3;
    int threads = 0;
    int T = 1024;
    int status = 0;
    double peak;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            T = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_train [--backend NAME] [--model DIR] [--tokens T] "
                            "[--reps R] [--threads N]\n");
            return 2;
        }
    }
    if (T < 0 || reps < 1) {
        fprintf(stderr, "bench_train: --tokens must be >= 0 (0: no layer) and --reps positive\n");
        return 2;
    }
    lc_blas_use_fast_kernels(argc, argv);
    lc_set_num_threads(threads);
    if (lc_backend_open(&be, backend, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return strstr(err.msg, "no CUDA device") != NULL ? 77 : 1;
    }
    printf("backend %s\n", lc_backend_describe(be));
    /* the peak before and after the runs, the larger counts: on a busy
     * machine a single measurement can come out low */
    peak = gemm_peak();
    if (model != NULL) {
        status = bench_model(model, reps, &peak);
    }
    if (status == 0 && T > 0) {
        status = bench_layer(T, reps, &peak);
    }
    lc_backend_close(be);
    return status;
}
