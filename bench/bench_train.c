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

#include "bench/bench_common.h"
#include "core/finetune.h"

static struct lc_backend *be;

/* GEMM FLOPs of one layer's stage-2 forward and backward for T tokens
 * (one sequence) */
static void layer_flops(const struct lc_model_config *c, int f, int W, int R, unsigned targets,
                        int T, double *fwd, double *bwd)
{
    const double N = T, C = c->hidden_size, H = c->n_heads, D = c->head_dim;
    const double HD = H * D, KD = (double)c->n_kv_heads * D, FF = c->intermediate_size;
    const double ins[4] = {C, C, C, HD}, outs[4] = {HD, KD, KD, C};
    double proj = 2.0 * N * C * (HD + 2 * KD) + 2.0 * N * HD * C;
    double mlp = 2.0 * N * C * 3.0 * FF;
    double lora_f = 0.0, lora_b = 0.0;
    double fm = 2.0 * 2.0 * N * H * D * f;
    double near, lin, state, hf, hb;

    for (int t = 0; t < 4; t++) {
        if (targets & (1u << t)) {
            lora_f += 2.0 * N * R * (ins[t] + outs[t]);
            lora_b += 2.0 * N * R * (2.0 * ins[t] + 2.0 * outs[t]) + 2.0 * N * R * ins[t];
        }
    }
    bench_hybrid_blocks(T, W, c->head_dim, 2 * f, &near, &lin, &state);
    hf = 2.0 * near + lin + state;
    hb = 5.0 * near + 2.0 * lin + 3.0 * state;
    *fwd = proj + mlp + lora_f + fm + H * hf;
    *bwd = proj + mlp + lora_b + 2.0 * fm + H * hb;
}

static void update_peak(double *peak)
{
    double again = bench_gemm_peak(be, 3);
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
            double t0 = bench_sync_now(be), dt;
            if (lc_ft_microbatch(ft, ids, targets, 1, T, 1, 1.0, &sum, &count, &err) != LC_OK) {
                fprintf(stderr, "bench_train: %s\n", err.msg);
                status = 1;
                break;
            }
            dt = bench_sync_now(be) - t0;
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
        bench_report("  forward + backward:", 38, T, times[0], flops[0], *peak);
        bench_report("  with --recompute:", 38, T, times[1], flops[1], *peak);
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
    struct lc_model_config cfg;
    struct lc_llama *m = NULL;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_ft *ft = NULL;
    struct lc_linattn_cfg lcfg = {.feature_dim = 64, .window = 64, .mode = LC_WINDOW_TERRACED};
    struct lc_lora_cfg rcfg = {.rank = 8, .alpha = 16, .dropout = 0, .targets = 15};
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    double best_f = 1e30, best_b = 1e30, fwd, bwd;
    float *dx_host;
    int C;

    bench_llama3_8b_layer(&cfg);
    C = cfg.hidden_size;
    if (lc_llama_random(&m, &cfg, LC_DTYPE_BF16, 10, be, &err) != LC_OK ||
        lc_llama_rope_reserve(m, T, &err) != LC_OK ||
        lc_linattn_new(&lin, m, &lcfg, &err) != LC_OK ||
        lc_lora_new(&lora, m, &rcfg, 0, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    m->lora = lora;
    if (lc_ft_new(&ft, m, lin, lora, T, 0, 0, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    printf("activations of one layer at T %d: %.1f MiB (%.1f MiB with --recompute)\n", T,
           (double)lc_ft_bytes(m, lin, lora, T, 0, 0) / (1 << 20),
           (double)lc_ft_bytes(m, lin, lora, T, 1, 0) / (1 << 20));
    for (int i = 0; i < T; i++) {
        pos[i] = i;
    }
    be->ops->upload(be, ft->pos, pos, (size_t)T * sizeof(int32_t));
    {
        float *x = bench_random(be, (size_t)T * C, LC_DTYPE_F32, 20, 1.0f);
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
        t0 = bench_sync_now(be);
        lc_ft_layer_forward(ft, 0, &ft->acts[0], ft->x_last, 1, T);
        t1 = bench_sync_now(be);
        lc_ft_layer_backward(ft, 0, &ft->acts[0], ft->dx, 1, T);
        t2 = bench_sync_now(be);
        if (r > 0) { /* the first run warms up */
            best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
            best_b = t2 - t1 < best_b ? t2 - t1 : best_b;
        }
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    layer_flops(&m->cfg, 64, 64, 8, 15, T, &fwd, &bwd);
    update_peak(peak);
    printf("Llama-3-8B-shaped layer: T %d, hidden 4096, 32 heads (8 KV) of 128, FFN 14336, bf16 "
           "weights; f 64, window 64 terraced, LoRA r 8 on q,k,v,o\n",
           T);
    bench_report("  forward:", 38, T, best_f, fwd, *peak);
    bench_report("  backward:", 38, T, best_b, bwd, *peak);
    bench_report("  forward + backward:", 38, T, best_f + best_b, fwd + bwd, *peak);
    bench_report("  --recompute (2 forwards + backward):", 38, T, 2 * best_f + best_b,
                 2 * fwd + bwd, *peak);
    lc_ft_free(ft);
    m->lora = NULL;
    lc_lora_free(lora);
    lc_linattn_free(lin);
    lc_llama_free(m);
    free(pos);
    free(dx_host);
    return 0;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu";
    const char *model = NULL;
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
    status = bench_open(&be, "bench_train", argc, argv, backend, threads);
    if (status != 0) {
        return status;
    }
    /* the peak before and after the runs, the larger counts: on a busy
     * machine a single measurement can come out low */
    peak = bench_gemm_peak(be, 3);
    if (model != NULL) {
        status = bench_model(model, reps, &peak);
    }
    if (status == 0 && T > 0) {
        status = bench_layer(T, reps, &peak);
    }
    lc_backend_close(be);
    return status;
}
