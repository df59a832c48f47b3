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
 * SGEMM; on a GPU the bf16 tensor-core rate), best of three runs before
 * the layer's and one before each of its repetitions, so that a machine
 * whose speed drifts shows in both sides of the ratio.
 *
 * FLOPs counted: the matrix products (projections, MLP, causal attention
 * scores and weighted sums, feature maps, the chunked hybrid attention's
 * block products); elementwise work is not counted.
 *
 * Then decoding at batch 1, which is bound by memory bandwidth: one token
 * through the layer linearized (norms, projections, the query's feature
 * map, hybrid_decode over a full window cache of 2W keys and the linear
 * state, MLP), as tokens/s and as bytes/s (every weight, feature-map
 * weight, cached key and value and the state read once) against a triad
 * a = b + s c measured in the same run with the same threads (3 x 4 bytes
 * per element, as STREAM counts), before each decoding run and after the
 * last; the best of each counts.  The cpu backend's vector kernels first
 * let the probe of their gemv's prefetch levels (cpu.h) run from each
 * level, and print what it settles on; then they decode with each level
 * in turn, rep by rep: the decode line is the level in use (the probe's
 * pick from the default, or the one LC_CPU_PREFETCH names), the lines
 * under it what the others would give.
 *
 * "its hybrid attention" is the hybrid_fwd and hybrid_bwd calls of the
 * attention-transfer step alone.
 *
 * usage: bench_layer [--backend NAME] [--tokens T] [--reps R] [--threads N]
 * The cpu backend runs once per kernel set the CPU has (LC_CPU_ISA=NAME
 * for one; see bench_open).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "backend-cpu/cpu.h"
#include "bench/bench_common.h"
#include "core/llama.h"
#include "core/ref/ref.h"
#include "core/util.h"

struct layer_shape {
    int T, C, H, Hkv, D, FF, f, W;
};

/* The STREAM triad a = b + 3 c over 128 MiB arrays (far larger than the
 * caches, in the host allocator's buffers: the CPU backend's weights' page
 * size), all threads: sampled before each decoding run and after the
 * last, so that it sees the machine's memory in the same minutes as the
 * decoding (its speed moves with the rest of the machine); the best
 * sample counts. */
struct triad {
    float *a, *b, *c;
    int64_t n;
    double best; /* seconds */
};

static void triad_open(struct triad *t, struct lc_backend *be)
{
    const int64_t n = (int64_t)1 << 25;
    float *a = lc_host_alloc(be, (size_t)n * sizeof(float));
    float *b = lc_host_alloc(be, (size_t)n * sizeof(float));
    float *c = lc_host_alloc(be, (size_t)n * sizeof(float));

    if (a == NULL || b == NULL || c == NULL) {
        fprintf(stderr, "bench_layer: out of memory for the triad\n");
        exit(1);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    t->a = a;
    t->b = b;
    t->c = c;
    t->n = n;
    t->best = 1e30;
    /* a first pass that does not count (page faults of a) */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        a[i] = b[i] + 3.0f * c[i];
    }
}

static void triad_sample(struct triad *t)
{
    float *a = t->a;
    const float *b = t->b, *c = t->c;
    const int64_t n = t->n;
    double t0 = lc_time_now(), dt;

#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        a[i] = b[i] + 3.0f * c[i];
    }
    dt = lc_time_now() - t0;
    t->best = dt < t->best ? dt : t->best;
}

/* bytes per second of the best sample */
static double triad_close(struct triad *t, struct lc_backend *be)
{
    if (t->a[t->n / 2] != 7.0f) {
        fprintf(stderr, "bench_layer: the triad computed %g\n", (double)t->a[t->n / 2]);
        exit(1);
    }
    lc_host_release(be, t->a);
    lc_host_release(be, t->b);
    lc_host_release(be, t->c);
    return 3.0 * 4.0 * (double)t->n / t->best;
}

/* the buffers and weights of one decoded token (bench_layer's decode) */
struct decode_step {
    const struct layer_shape *s;
    int ncache;
    const int32_t *pos;
    const void *wq, *wk, *wv, *wo, *wg, *wu, *wd;
    const float *norm1, *norm2, *cos_tab, *sin_tab, *fmq, *theta, *S, *z;
    float *x, *xn, *q, *k, *v, *fq, *att, *gate, *up;
};

/* one token through the linearized layer at batch 1 */
static void decode_token(struct lc_backend *be, const struct decode_step *d)
{
    const struct layer_shape *s = d->s;
    const int HD = s->H * s->D, KD = s->Hkv * s->D, F = 2 * s->f;

    be->ops->rmsnorm_fwd(be, d->xn, NULL, d->x, d->norm1, 1, s->C, 1e-5f);
    be->ops->linear_fwd(be, d->q, d->xn, d->wq, LC_DTYPE_BF16, 1, s->C, HD, 0.0f);
    be->ops->linear_fwd(be, d->k, d->xn, d->wk, LC_DTYPE_BF16, 1, s->C, KD, 0.0f);
    be->ops->linear_fwd(be, d->v, d->xn, d->wv, LC_DTYPE_BF16, 1, s->C, KD, 0.0f);
    be->ops->rope_fwd(be, d->q, d->pos + d->ncache, d->cos_tab, d->sin_tab, 1, s->H, s->D);
    be->ops->rope_fwd(be, d->k, d->pos + d->ncache, d->cos_tab, d->sin_tab, 1, s->Hkv, s->D);
    be->ops->fmap_fwd(be, d->fq, d->q, d->fmq, 1, s->H, s->H, s->D, s->f, 1e-12f);
    /* the cache: rows of k and v from the forward */
    be->ops->hybrid_decode(be, d->att, d->q, d->fq, d->k + KD, d->v + KD, d->ncache, d->S, d->z,
                           d->theta, s->H, s->Hkv, s->D, F);
    be->ops->linear_fwd(be, d->x, d->att, d->wo, LC_DTYPE_BF16, 1, HD, s->C, 1.0f);
    be->ops->rmsnorm_fwd(be, d->xn, NULL, d->x, d->norm2, 1, s->C, 1e-5f);
    be->ops->linear_fwd(be, d->gate, d->xn, d->wg, LC_DTYPE_BF16, 1, s->C, s->FF, 0.0f);
    be->ops->linear_fwd(be, d->up, d->xn, d->wu, LC_DTYPE_BF16, 1, s->C, s->FF, 0.0f);
    be->ops->swiglu_fwd(be, d->gate, d->gate, d->up, s->FF);
    be->ops->linear_fwd(be, d->x, d->gate, d->wd, LC_DTYPE_BF16, 1, s->FF, s->C, 1.0f);
}

/* What the cpu backend's probe of the prefetch levels (cpu.h) settles on
 * starting from level `from`, decoding tokens until it is done: printed,
 * and returned (from where it does not finish) */
static enum lc_cpu_prefetch report_probe(struct lc_backend *be, struct lc_cpu_ctx *cpu,
                                         const struct decode_step *d, enum lc_cpu_prefetch from,
                                         const char *why)
{
    double med[LC_CPU_PREFETCH_COUNT];
    enum lc_cpu_prefetch pick;
    int tokens = 0;

    cpu->gemv_prefetch = from;
    lc_cpu_probe_start(cpu);
    while (cpu->probe.active && tokens < 100) {
        decode_token(be, d);
        tokens++;
    }
    bench_sync_now(be);
    if (cpu->probe.active) {
        cpu->probe.active = 0;
        printf("decode prefetch probe from %s%s: not done after %d tokens\n",
               lc_cpu_prefetch_name(from), why, tokens);
        return from;
    }
    pick = lc_cpu_probe_pick(cpu->probe.per_byte, LC_CPU_PROBE_PRODUCTS, from, med);
    LC_ASSERT(pick == cpu->gemv_prefetch);
    printf("decode prefetch probe from %s%s: %s %s after %d tokens (median time per byte:",
           lc_cpu_prefetch_name(from), why, pick == from ? "keeps" : "picks",
           lc_cpu_prefetch_name(pick), tokens);
    for (int i = 0; i < LC_CPU_PREFETCH_COUNT; i++) {
        printf(" %s %.2f", lc_cpu_prefetch_name((enum lc_cpu_prefetch)i), med[i] / med[pick]);
    }
    printf(" of %s's)\n", lc_cpu_prefetch_name(pick));
    return pick;
}

int main(int argc, char **argv)
{
    struct layer_shape s = {.T = 1024, .f = 64, .W = 64};
    struct lc_model_config cfg;
    struct lc_backend *be = NULL;
    struct lc_llama *m = NULL;
    const char *backend = "cpu";
    struct lc_error err = {0};
    int reps = 3;
    int threads = 0;
    int status;

    bench_llama3_8b_layer(&cfg);
    s.C = cfg.hidden_size;
    s.H = cfg.n_heads;
    s.Hkv = cfg.n_kv_heads;
    s.D = cfg.head_dim;
    s.FF = cfg.intermediate_size;
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
    status = bench_open(&be, "bench_layer", argc, argv, backend, threads);
    if (status != 0) {
        return status;
    }

    /* the peak: sampled before the runs and once before each of them, the
     * best counts */
    struct bench_peak pk;
    bench_peak_open(&pk, be);
    for (int r = 0; r < 3; r++) {
        bench_peak_sample(&pk);
    }
    const int N = s.T, HD = s.H * s.D, KD = s.Hkv * s.D, F = 2 * s.f;
    const struct lc_attn_shape as = {.B = 1, .T = s.T, .H = s.H, .Hkv = s.Hkv, .D = s.D, .F = F,
                                     .window = s.W, .mode = LC_WINDOW_TERRACED};
    /* the layer's weights in bf16, and RoPE tables for T positions */
    if (lc_llama_random(&m, &cfg, LC_DTYPE_BF16, 10, be, &err) != LC_OK ||
        lc_llama_rope_reserve(m, N, &err) != LC_OK) {
        fprintf(stderr, "bench_layer: %s\n", err.msg);
        return 1;
    }
    const struct lc_llama_layer *L = &m->layers[0];
    const void *wq = L->wq.data, *wk = L->wk.data, *wv = L->wv.data, *wo = L->wo.data;
    const void *wg = L->w_gate.data, *wu = L->w_up.data, *wd = L->w_down.data;
    const float *norm1 = L->attn_norm, *norm2 = L->ffn_norm;
    const float *cos_tab = m->rope_cos, *sin_tab = m->rope_sin;
    float *x = bench_random(be, (size_t)N * s.C, LC_DTYPE_F32, 18, 1.0f);
    float *xn = bench_random(be, (size_t)N * s.C, LC_DTYPE_F32, 19, 1.0f);
    float *q = bench_random(be, (size_t)N * HD, LC_DTYPE_F32, 20, 1.0f);
    float *k = bench_random(be, (size_t)N * KD, LC_DTYPE_F32, 21, 1.0f);
    float *v = bench_random(be, (size_t)N * KD, LC_DTYPE_F32, 22, 1.0f);
    float *att = bench_random(be, (size_t)N * HD, LC_DTYPE_F32, 23, 1.0f);
    float *gate = bench_random(be, (size_t)N * s.FF, LC_DTYPE_F32, 24, 1.0f);
    float *up = bench_random(be, (size_t)N * s.FF, LC_DTYPE_F32, 25, 1.0f);
    float *ys = bench_random(be, (size_t)N * HD, LC_DTYPE_F32, 26, 1.0f);
    float *dy = bench_random(be, (size_t)N * HD, LC_DTYPE_F32, 27, 1.0f);
    float *fq = bench_random(be, (size_t)N * s.H * F, LC_DTYPE_F32, 28, 1.0f);
    float *fk = bench_random(be, (size_t)N * s.H * F, LC_DTYPE_F32, 29, 1.0f);
    float *dfq = bench_random(be, (size_t)N * s.H * F, LC_DTYPE_F32, 30, 1.0f);
    float *dfk = bench_random(be, (size_t)N * s.H * F, LC_DTYPE_F32, 31, 1.0f);
    float *mx = bench_random(be, (size_t)N * s.H, LC_DTYPE_F32, 32, 1.0f);
    float *den = bench_random(be, (size_t)N * s.H, LC_DTYPE_F32, 33, 1.0f);
    float *rows = bench_random(be, (size_t)N, LC_DTYPE_F32, 34, 1.0f);
    float *fmq = bench_random(be, (size_t)s.H * s.D * s.f, LC_DTYPE_F32, 35, 0.1f);
    float *fmk = bench_random(be, (size_t)s.H * s.D * s.f, LC_DTYPE_F32, 36, 0.1f);
    float *dfmq = bench_random(be, (size_t)s.H * s.D * s.f, LC_DTYPE_F32, 37, 0.0f);
    float *dfmk = bench_random(be, (size_t)s.H * s.D * s.f, LC_DTYPE_F32, 38, 0.0f);
    float *theta = bench_random(be, (size_t)s.H, LC_DTYPE_F32, 39, 1.0f);
    float *dtheta = bench_random(be, (size_t)s.H, LC_DTYPE_F32, 40, 0.0f);
    int32_t *pos_host = malloc((size_t)N * sizeof(int32_t));
    int32_t *pos;

    for (int i = 0; i < N; i++) {
        pos_host[i] = i;
    }
    pos = lc_be_upload_new(be, pos_host, (size_t)N * sizeof(int32_t));

    /* GEMM FLOPs: projections, MLP, causal attention; and attention transfer */
    double fwd_flops, s1_flops, h_fwd, h_bwd;
    bench_layer_flops(&cfg, s.T, s.f, s.W, 1, &fwd_flops, &s1_flops);
    bench_hybrid_flops(s.T, s.W, s.D, 2 * s.f, &h_fwd, &h_bwd);
    h_fwd *= s.H;
    h_bwd *= s.H;

    double best_fwd = 1e30, best_s1 = 1e30, best_hy = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0, dt, th, dh;
        bench_peak_sample(&pk);
        /* forward */
        t0 = bench_sync_now(be);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm1, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, q, xn, wq, LC_DTYPE_BF16, N, s.C, HD, 0.0f);
        be->ops->linear_fwd(be, k, xn, wk, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->linear_fwd(be, v, xn, wv, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->rope_fwd(be, q, pos, cos_tab, sin_tab, N, s.H, s.D);
        be->ops->rope_fwd(be, k, pos, cos_tab, sin_tab, N, s.Hkv, s.D);
        be->ops->attn_fwd(be, att, q, k, v, 1, N, N, s.H, s.Hkv, s.D, 0);
        be->ops->linear_fwd(be, x, att, wo, LC_DTYPE_BF16, N, HD, s.C, 1.0f);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm2, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, gate, xn, wg, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->linear_fwd(be, up, xn, wu, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->swiglu_fwd(be, gate, gate, up, (int64_t)N * s.FF);
        be->ops->linear_fwd(be, x, gate, wd, LC_DTYPE_BF16, N, s.FF, s.C, 1.0f);
        dt = bench_sync_now(be) - t0;
        best_fwd = dt < best_fwd ? dt : best_fwd;

        /* attention transfer of the layer: the forward plus the student */
        t0 = bench_sync_now(be);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm1, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, q, xn, wq, LC_DTYPE_BF16, N, s.C, HD, 0.0f);
        be->ops->linear_fwd(be, k, xn, wk, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->linear_fwd(be, v, xn, wv, LC_DTYPE_BF16, N, s.C, KD, 0.0f);
        be->ops->rope_fwd(be, q, pos, cos_tab, sin_tab, N, s.H, s.D);
        be->ops->rope_fwd(be, k, pos, cos_tab, sin_tab, N, s.Hkv, s.D);
        be->ops->attn_fwd(be, att, q, k, v, 1, N, N, s.H, s.Hkv, s.D, 0);
        be->ops->fmap_fwd(be, fq, q, fmq, N, s.H, s.H, s.D, s.f, 1e-12f);
        be->ops->fmap_fwd(be, fk, k, fmk, N, s.H, s.Hkv, s.D, s.f, 1e-12f);
        th = bench_sync_now(be);
        be->ops->hybrid_fwd(be, ys, mx, den, q, k, v, fq, fk, theta, &as);
        dh = bench_sync_now(be) - th;
        be->ops->mse_fwd_bwd(be, rows, dy, ys, att, N, HD, 1e-3f);
        th = bench_sync_now(be);
        be->ops->hybrid_bwd(be, NULL, NULL, NULL, dfq, dfk, dtheta, dy, ys, mx, den, q, k, v, fq,
                            fk, theta, &as);
        dh += bench_sync_now(be) - th;
        best_hy = dh < best_hy ? dh : best_hy;
        be->ops->fmap_bwd(be, dfmq, NULL, dfq, q, fmq, N, s.H, s.H, s.D, s.f, 1e-12f);
        be->ops->fmap_bwd(be, dfmk, NULL, dfk, k, fmk, N, s.H, s.Hkv, s.D, s.f, 1e-12f);
        be->ops->linear_fwd(be, x, att, wo, LC_DTYPE_BF16, N, HD, s.C, 1.0f);
        be->ops->rmsnorm_fwd(be, xn, NULL, x, norm2, N, s.C, 1e-5f);
        be->ops->linear_fwd(be, gate, xn, wg, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->linear_fwd(be, up, xn, wu, LC_DTYPE_BF16, N, s.C, s.FF, 0.0f);
        be->ops->swiglu_fwd(be, gate, gate, up, (int64_t)N * s.FF);
        be->ops->linear_fwd(be, x, gate, wd, LC_DTYPE_BF16, N, s.FF, s.C, 1.0f);
        dt = bench_sync_now(be) - t0;
        best_s1 = dt < best_s1 ? dt : best_s1;
    }
    if (be->ops->sync(be, &err) != LC_OK) {
        fprintf(stderr, "bench_layer: %s\n", err.msg);
        return 1;
    }
    const double peak = bench_peak_close(&pk);
    printf("layer: T %d, hidden %d, %d heads (%d KV) of %d, FFN %d, bf16 weights; "
           "feature dim %d, window %d terraced\n",
           s.T, s.C, s.H, s.Hkv, s.D, s.FF, s.f, s.W);
    bench_report("forward:", 24, N, best_fwd, fwd_flops, peak);
    bench_report("attention transfer:", 24, N, best_s1, s1_flops, peak);
    bench_report("  its hybrid attention:", 24, N, best_hy, h_fwd + h_bwd, peak);

    /* decoding at batch 1: token after token through the linearized layer
     * (position 2W + 1, a full window cache), reading the weights each time */
    if (N > 2 * s.W) {
        const int ncache = 2 * s.W, steps = 20;
        const double bytes =
            2.0 * ((double)s.C * (HD + 2.0 * KD) + (double)HD * s.C + 3.0 * s.C * s.FF) +
            4.0 * ((double)s.H * s.D * s.f + 2.0 * ncache * KD + (double)s.H * F * s.D +
                   (double)s.H * F);
        float *S = bench_random(be, (size_t)s.H * F * s.D, LC_DTYPE_F32, 41, 0.01f);
        float *z = bench_random(be, (size_t)s.H * F, LC_DTYPE_F32, 42, 1.0f);
        const struct decode_step d = {
            .s = &s, .ncache = ncache, .pos = pos, .wq = wq, .wk = wk, .wv = wv, .wo = wo,
            .wg = wg, .wu = wu, .wd = wd, .norm1 = norm1, .norm2 = norm2, .cos_tab = cos_tab,
            .sin_tab = sin_tab, .fmq = fmq, .theta = theta, .S = S, .z = z, .x = x, .xn = xn,
            .q = q, .k = k, .v = v, .fq = fq, .att = att, .gate = gate, .up = up};
        /* the cpu backend decodes with each gemv prefetch level in turn,
         * its default (the first) and the others, alternated rep by rep */
        struct lc_cpu_ctx *cpu = strcmp(be->ops->name, "cpu") == 0 ? be->ctx : NULL;
        enum lc_cpu_prefetch levels[LC_CPU_PREFETCH_COUNT];
        double best[LC_CPU_PREFETCH_COUNT];
        int nlevels = 1;
        double triad;
        struct triad tr;

        levels[0] = cpu != NULL ? cpu->gemv_prefetch : LC_CPU_PREFETCH_NONE;
        if (cpu != NULL && cpu->isa != LC_CPU_ISA_GENERIC) {
            /* where LC_CPU_PREFETCH names no level, decoding uses the one
             * the probe picks from the default; what it would pick from
             * the other levels says how clear the choice is */
            const int probing = cpu->probe.active;
            const enum lc_cpu_prefetch dflt = levels[0];
            const enum lc_cpu_prefetch pick = report_probe(be, cpu, &d, dflt, " (the default)");

            for (int l = 0; l < LC_CPU_PREFETCH_COUNT; l++) {
                if ((enum lc_cpu_prefetch)l != dflt) {
                    report_probe(be, cpu, &d, (enum lc_cpu_prefetch)l, "");
                }
            }
            levels[0] = probing ? pick : dflt;
        }
        for (int l = 0; cpu != NULL && l < LC_CPU_PREFETCH_COUNT; l++) {
            if ((enum lc_cpu_prefetch)l != levels[0]) {
                levels[nlevels++] = (enum lc_cpu_prefetch)l;
            }
        }
        triad_open(&tr, be);
        for (int r = 0; r < reps; r++) {
            /* one triad sample per rep, as many as each level's runs: more
             * would give the triad's best more chances than the decoding's */
            triad_sample(&tr);
            for (int l = 0; l < nlevels; l++) {
                double t0, dt;
                if (cpu != NULL) {
                    cpu->gemv_prefetch = levels[l];
                }
                t0 = bench_sync_now(be);
                for (int i = 0; i < steps; i++) {
                    decode_token(be, &d);
                }
                dt = (bench_sync_now(be) - t0) / steps;
                best[l] = r == 0 || dt < best[l] ? dt : best[l];
            }
        }
        triad_sample(&tr);
        triad = triad_close(&tr, be);
        if (cpu != NULL) {
            cpu->gemv_prefetch = levels[0];
        }
        printf("decode, batch 1 (linearized, %d cached keys, prefetch %s): %.1f tokens/s, "
               "%.1f GB/s = %.1f%% of the triad bandwidth (%.1f GB/s, %d threads)\n",
               ncache, lc_cpu_prefetch_name(levels[0]), 1.0 / best[0], bytes / best[0] * 1e-9,
               100.0 * bytes / best[0] / triad, triad * 1e-9, omp_get_max_threads());
        for (int l = 1; l < nlevels; l++) {
            printf("  with LC_CPU_PREFETCH=%s: %.1f tokens/s, %.1f GB/s = %.1f%% of the triad\n",
                   lc_cpu_prefetch_name(levels[l]), 1.0 / best[l], bytes / best[l] * 1e-9,
                   100.0 * bytes / best[l] / triad);
        }
        be->ops->release(be, S);
        be->ops->release(be, z);
    }
    lc_llama_free(m);
    lc_backend_close(be);
    free(pos_host);
    return 0;
}
