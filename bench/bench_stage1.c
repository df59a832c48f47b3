/*
 * bench_stage1: one optimizer step of attention transfer (stage 1) on a
 * model of the Llama-3.2-1B shape (16 layers, hidden 2048, 32 heads and 8
 * KV heads of 64, FFN 8192, vocabulary 128256 tied; bf16 weights made in
 * memory, about 2.5 GB, no file), run through the trainer's own stage-1
 * micro-batch and AdamW: --accum micro-batches of one chunk of --tokens
 * tokens (default 1 x 1024), feature dim 64, window 64 terraced.  Prints
 * tokens/s and the achieved GFLOP/s against the GEMM peak measured in the
 * same run (the larger of an fp32 2048^3 gemm and a bf16-weight 4096^3
 * linear layer, before and after the steps), so that a slowdown at real
 * width shows.
 *
 * FLOPs counted: the matrix products of every layer's teacher forward
 * (projections, causal attention, the MLP except in the last layer, whose
 * output no loss uses), the feature maps of q and k and their weight
 * gradients, and the chunked hybrid attention forward and backward (see
 * bench_layer_flops); elementwise work and AdamW are not counted.
 *
 * usage: bench_stage1 [--backend NAME] [--tokens T] [--accum A] [--reps R]
 *                     [--threads N]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "core/model.h"
#include "core/train.h"

static size_t weight_bytes(const struct lc_llama *m)
{
    size_t n = m->embed.nbytes;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct lc_llama_layer *L = &m->layers[l];
        n += L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes + L->w_gate.nbytes +
             L->w_up.nbytes + L->w_down.nbytes;
    }
    return n;
}

static int failed(const struct lc_error *err)
{
    fprintf(stderr, "bench_stage1: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu";
    int T = 1024, accum = 1, reps = 2, threads = 0;
    struct lc_backend *be = NULL;
    struct lc_model_config cfg;
    struct lc_train_opts o;
    struct lc_linattn_cfg lcfg;
    struct lc_model model;
    struct lc_trainer tr;
    struct lc_error err = {0};
    int32_t *ids;
    double *layer_loss;
    double peak, again, best = 1e30, fwd, layer_s1, flops = 0.0;
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            T = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--accum") == 0 && i + 1 < argc) {
            accum = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_stage1 [--backend NAME] [--tokens T] [--accum A] "
                            "[--reps R] [--threads N]\n");
            return 2;
        }
    }
    if (T < 129 || accum < 1 || reps < 1) {
        fprintf(stderr, "bench_stage1: --tokens must exceed 128 (twice the window), --accum and "
                        "--reps be positive\n");
        return 2;
    }
    status = bench_open(&be, "bench_stage1", argc, argv, backend, threads);
    if (status != 0) {
        return status;
    }
    /* the peak before and after the steps, the larger counts: on a busy
     * machine a single measurement can come out low */
    peak = bench_gemm_peak(be, 3);

    bench_llama32_1b(&cfg);
    lc_train_opts_default(&o);
    o.seq_len = T;
    o.grad_accum = accum;
    lcfg.feature_dim = o.feature_dim;
    lcfg.window = o.window;
    lcfg.mode = o.window_mode;
    memset(&model, 0, sizeof(model));
    memset(&tr, 0, sizeof(tr));
    if (lc_llama_random(&model.llama, &cfg, LC_DTYPE_BF16, 7, be, &err) != LC_OK) {
        return failed(&err);
    }
    tr.model = &model;
    tr.m = model.llama;
    tr.be = be;
    tr.o = &o;
    tr.T = T;
    tr.B = 1;
    tr.hooks = &lc_transfer_hooks;
    ids = malloc((size_t)T * sizeof(int32_t));
    layer_loss = calloc((size_t)cfg.n_layers, sizeof(double));
    if (ids == NULL || layer_loss == NULL) {
        fprintf(stderr, "bench_stage1: out of memory\n");
        return 1;
    }
    for (int i = 0; i < T; i++) {
        ids[i] = (int32_t)((i * 7919u + 13u) % (unsigned)cfg.vocab_size);
    }
    if (lc_linattn_new(&tr.lin, tr.m, &lcfg, &err) != LC_OK ||
        lc_model_reserve_rows(&model, T, &err) != LC_OK || lc_transfer_setup(&tr, &err) != LC_OK) {
        return failed(&err);
    }
    printf("Llama-3.2-1B shape: %d layers, hidden %d, %d heads (%d KV) of %d, FFN %d, vocabulary "
           "%d, bf16 weights made in memory (%.2f GiB); feature dim %d, window %d terraced\n",
           cfg.n_layers, cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
           cfg.intermediate_size, cfg.vocab_size, (double)weight_bytes(tr.m) / (1 << 30),
           o.feature_dim, o.window);
    fflush(stdout);
    /* the first step warms up (OpenBLAS buffers, first touches) */
    for (int r = 0; r < reps + 1; r++) {
        const struct lc_param_group *pg = &tr.groups[0];
        double t0 = bench_sync_now(be), dt, loss = 0.0;
        be->ops->zero(be, pg->grads, pg->n * sizeof(float));
        for (int i = 0; i < accum; i++) {
            double mb_loss;
            if (lc_transfer_hooks.microbatch(&tr, ids, ids, 1, 1, (double)accum, &mb_loss,
                                             layer_loss, &err) != LC_OK) {
                return failed(&err);
            }
            loss += mb_loss / accum;
        }
        be->ops->adamw(be, pg->params, pg->grads, pg->adam_m, pg->adam_v, (int64_t)pg->n,
                       (float)o.lr, 0.9f, 0.999f, 1e-8f, 0.0f, r + 1);
        dt = bench_sync_now(be) - t0;
        printf("step %d%s: %.1f s, loss %.4f\n", r, r == 0 ? " (warm-up)" : "", dt, loss);
        fflush(stdout);
        if (r > 0 && dt < best) {
            best = dt;
        }
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        return failed(&err);
    }
    for (int l = 0; l < cfg.n_layers; l++) {
        bench_layer_flops(&cfg, T, o.feature_dim, o.window, l + 1 < cfg.n_layers, &fwd,
                          &layer_s1);
        flops += layer_s1;
    }
    flops *= accum;
    again = bench_gemm_peak(be, 3);
    peak = again > peak ? again : peak;
    printf("GEMM peak used: %.1f GFLOP/s\n", peak * 1e-9);
    {
        char what[64];
        snprintf(what, sizeof(what), "stage-1 step, %d x %d tokens:", accum, T);
        bench_report(what, 34, accum * T, best, flops, peak);
    }
    lc_transfer_teardown(&tr);
    lc_linattn_free(tr.lin);
    lc_llama_fwd_free(model.llama, &model.fwd);
    lc_llama_free(model.llama);
    lc_backend_close(be);
    free(ids);
    free(layer_loss);
    return 0;
}
