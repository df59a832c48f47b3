/*
 * bench_decode: what one generated token costs, in time and memory, at a
 * growing context, for the softmax teacher (KV cache) and the linearized
 * model (window cache + linear state), on a random model generated in
 * memory (2 layers, hidden 1024, 16 heads and 4 KV heads of 64, FFN 2816,
 * vocabulary 4096; linear attention with f = 64, window 64, terraced).
 *
 * Each model gets one session.  It is prefilled (in chunks of 512 tokens)
 * up to each context in turn, then decodes STEPS tokens one at a time;
 * the time per token is the median over those steps of the wall time and
 * of the process's CPU time (all threads; on a busy machine the CPU time
 * is the steadier of the two).  State is lc_session_state_bytes() after
 * them, RSS the process's resident memory (VmRSS) and its growth since
 * just before the session was made (a throwaway session has already sized
 * the model's forward scratch for 512-token chunks, so the growth is the
 * session's own memory).
 *
 * usage: bench_decode [CONTEXT ...]    (default 1024 4096 16384 32768)
 * The ratios use the first and the last context.  Threads: OMP_NUM_THREADS.
 *
 * bench_decode --model DIR|FILE [--tokens N] [--reps R]: single-thread
 * generation speed of a real model, as llama2.c's run.c measures it: BOS,
 * then N - 1 greedy tokens one at a time (the first step, with nothing
 * cached, not timed), tokens/s by the wall clock and by the thread's CPU
 * time (the steadier one on a shared machine), best of R runs; for the
 * model as it is (softmax attention) and linearized with fresh feature
 * maps (f 64, window 64, terraced).  Default N 256 (run.c's default).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/model.h"
#include "core/util.h"

#define MAX_CONTEXTS 16
#define STEPS 64

struct result {
    double ms_per_token;
    double cpu_ms_per_token;
    double state_mib;
    double rss_mib;
    double rss_growth_mib;
    double prefill_s; /* prefill from the previous context to this one */
};

/* VmRSS in MiB, or -1 where /proc is missing */
static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1.0;

    if (f == NULL) {
        return -1.0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = atof(line + 6);
            break;
        }
    }
    fclose(f);
    return kib < 0 ? -1.0 : kib / 1024.0;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median_ms(double *t, int n)
{
    return 1e3 * lc_median(t, n);
}

static int check(lc_status rc, const struct lc_error *err)
{
    if (rc != LC_OK) {
        fprintf(stderr, "bench_decode: %s\n", err->msg);
        return 0;
    }
    return 1;
}

/* One session over all contexts; res[i] for contexts[i]. */
static int run(struct lc_model *m, const int *contexts, int n_ctx, const int32_t *ids,
               struct result *res)
{
    const int V = lc_model_get_config(m)->vocab_size;
    struct lc_error err = {0};
    struct lc_session *s = NULL;
    float *logits = malloc((size_t)V * sizeof(float));
    double rss0;
    int ok = logits != NULL;

    /* size the forward scratch for the prefill chunks first */
    ok = ok && check(lc_session_new(&s, m, 512, &err), &err);
    ok = ok && check(lc_session_feed(s, ids, 512, logits, &err), &err);
    lc_session_free(s);
    s = NULL;
    rss0 = rss_mib();
    ok = ok && check(lc_session_new(&s, m, contexts[n_ctx - 1] + STEPS, &err), &err);
    for (int c = 0; ok && c < n_ctx; c++) {
        double times[STEPS], cpu[STEPS];
        double t0 = lc_time_now();
        int len = lc_session_length(s);

        if (contexts[c] > len) {
            ok = check(lc_session_feed(s, ids + len, contexts[c] - len, logits, &err), &err);
        }
        res[c].prefill_s = lc_time_now() - t0;
        for (int i = 0; ok && i < STEPS; i++) {
            double c0 = cpu_seconds();
            len = lc_session_length(s);
            t0 = lc_time_now();
            ok = check(lc_session_feed(s, ids + len, 1, logits, &err), &err);
            times[i] = lc_time_now() - t0;
            cpu[i] = cpu_seconds() - c0;
        }
        if (!ok) {
            break;
        }
        res[c].ms_per_token = median_ms(times, STEPS);
        res[c].cpu_ms_per_token = median_ms(cpu, STEPS);
        res[c].state_mib = (double)lc_session_state_bytes(s) / (1024.0 * 1024.0);
        res[c].rss_mib = rss_mib();
        res[c].rss_growth_mib = res[c].rss_mib - rss0;
        fprintf(stderr, "  context %6d: prefill %.1f s, %.3f ms/token (CPU %.3f ms)\n",
                contexts[c], res[c].prefill_s, res[c].ms_per_token, res[c].cpu_ms_per_token);
    }
    lc_session_free(s);
    free(logits);
    return ok;
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* BOS, then greedy tokens: tokens/s of the n - 1 timed steps */
static int generate(struct lc_model *m, int n, double *wall_tps, double *cpu_tps)
{
    const struct lc_model_config *c = lc_model_get_config(m);
    struct lc_error err = {0};
    struct lc_session *s = NULL;
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    int32_t tok = c->bos_token_id >= 0 ? c->bos_token_id : 0;
    double t0 = 0, c0 = 0;
    int ok = logits != NULL && check(lc_session_new(&s, m, n, &err), &err);

    for (int i = 0; ok && i < n; i++) {
        if (i == 1) {
            t0 = lc_time_now();
            c0 = thread_cpu_seconds();
        }
        ok = check(lc_session_feed(s, &tok, 1, logits, &err), &err);
        tok = lc_sample_token(logits, c->vocab_size, 0.0f, 1.0f, NULL);
    }
    if (ok) {
        *wall_tps = (n - 1) / (lc_time_now() - t0);
        *cpu_tps = (n - 1) / (thread_cpu_seconds() - c0);
    }
    lc_session_free(s);
    free(logits);
    return ok;
}

static int run_model(const char *path, int n, int reps)
{
    const struct lc_linattn_cfg lcfg = {.feature_dim = 64, .window = 64,
                                        .mode = LC_WINDOW_TERRACED};
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *m = NULL;
    struct lc_linattn *lin = NULL;
    int ok;

    lc_set_num_threads(1);
    ok = check(lc_backend_open(&be, "cpu", &err), &err) &&
         check(lc_model_open(&m, path, be, &err), &err) &&
         check(lc_linattn_new(&lin, m->llama, &lcfg, &err), &err);
    if (ok) {
        printf("bench_decode: %s, %d tokens, 1 thread, best of %d\nbackend: %s\n", path, n, reps,
               lc_backend_describe(be));
    }
    for (int pass = 0; ok && pass < 2; pass++) {
        double best_wall = 0, best_cpu = 0;
        if (pass == 1) {
            lc_model_attach_linattn(m, lin);
            lin = NULL;
            lc_model_use_teacher(m, 0);
        }
        for (int r = 0; ok && r < reps; r++) {
            double wall, cpu;
            ok = generate(m, n, &wall, &cpu);
            best_wall = ok && wall > best_wall ? wall : best_wall;
            best_cpu = ok && cpu > best_cpu ? cpu : best_cpu;
        }
        if (ok) {
            printf("%-34s %9.0f tokens/s (wall)  %9.0f tokens/s (CPU time)\n",
                   pass == 0 ? "softmax attention (KV cache):" : "linearized (window + state):",
                   best_wall, best_cpu);
        }
    }
    lc_linattn_free(lin);
    lc_model_close(m);
    lc_backend_close(be);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct lc_model_config cfg = {
        .arch = "llama",
        .vocab_size = 4096,
        .hidden_size = 1024,
        .intermediate_size = 2816,
        .n_layers = 2,
        .n_heads = 16,
        .n_kv_heads = 4,
        .head_dim = 64,
        .max_position_embeddings = 131072,
        .rms_norm_eps = 1e-5f,
        .rope_theta = 500000.0,
        .rope_type = LC_ROPE_DEFAULT,
        .bos_token_id = 1,
        .eos_token_id = 2,
    };
    const struct lc_linattn_cfg lcfg = {.feature_dim = 64, .window = 64,
                                        .mode = LC_WINDOW_TERRACED};
    int contexts[MAX_CONTEXTS] = {1024, 4096, 16384, 32768};
    int n_ctx = 4;
    struct result teacher[MAX_CONTEXTS], linear[MAX_CONTEXTS];
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *m = NULL;
    struct lc_linattn *lin = NULL;
    int32_t *ids = NULL;
    int n_ids;
    uint64_t x = 12345;
    int status = 1;

    lc_blas_use_fast_kernels(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--model") == 0) {
        int n = 256, reps = 5;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--tokens") == 0) {
                n = atoi(argv[i + 1]);
            } else if (strcmp(argv[i], "--reps") == 0) {
                reps = atoi(argv[i + 1]);
            } else {
                n = 0;
            }
        }
        if (argc < 3 || argc % 2 == 0 || n < 2 || reps < 1) {
            fprintf(stderr, "usage: bench_decode --model DIR|FILE [--tokens N >= 2] [--reps R]\n");
            return 2;
        }
        return run_model(argv[2], n, reps);
    }
    if (argc > 1) {
        n_ctx = 0;
        for (int i = 1; i < argc && n_ctx < MAX_CONTEXTS; i++) {
            int c = atoi(argv[i]);
            if (c < 1 || (n_ctx > 0 && c <= contexts[n_ctx - 1]) || c > (1 << 24)) {
                fprintf(stderr, "usage: bench_decode [CONTEXT ...] (increasing, >= 1)\n");
                return 2;
            }
            contexts[n_ctx++] = c;
        }
    }
    /* enough for the longest context and its steps, and for the 512-token
     * chunk that run() feeds first to size the scratch */
    n_ids = contexts[n_ctx - 1] + STEPS > 512 ? contexts[n_ctx - 1] + STEPS : 512;
    ids = malloc((size_t)n_ids * sizeof(int32_t));
    if (ids == NULL) {
        fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n_ids; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)cfg.vocab_size);
    }
    if (!check(lc_backend_open(&be, "cpu", &err), &err) ||
        !check(lc_model_random(&m, &cfg, 1, be, &err), &err) ||
        !check(lc_linattn_new(&lin, m->llama, &lcfg, &err), &err)) {
        goto done;
    }
    lc_model_attach_linattn(m, lin);
    printf("bench_decode: random model, %d layers, hidden %d, %d heads (%d KV) of %d, FFN %d, "
           "vocabulary %d; linear attention f %d, window %d terraced\n",
           cfg.n_layers, cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
           cfg.intermediate_size, cfg.vocab_size, lcfg.feature_dim, lcfg.window);
    printf("backend: %s\n", lc_backend_describe(be));
    printf("time: median of %d single-token steps after prefilling to the context; state: "
           "lc_session_state_bytes; RSS: VmRSS (growth since the session began)\n",
           STEPS);
    fflush(stdout);

    fprintf(stderr, "linearized:\n");
    lc_model_use_teacher(m, 0);
    if (!run(m, contexts, n_ctx, ids, linear)) {
        goto done;
    }
    fprintf(stderr, "teacher:\n");
    lc_model_use_teacher(m, 1);
    if (!run(m, contexts, n_ctx, ids, teacher)) {
        goto done;
    }

    printf("\n%8s | %-51s | %-51s\n", "", "teacher (softmax attention, KV cache)",
           "linearized (window cache + linear state)");
    printf("%8s | %10s %10s %10s %18s | %10s %10s %10s %18s\n", "context", "ms/token",
           "CPU ms/tok", "state MiB", "RSS MiB (growth)", "ms/token", "CPU ms/tok", "state MiB",
           "RSS MiB (growth)");
    for (int c = 0; c < n_ctx; c++) {
        const struct result *t = &teacher[c], *l = &linear[c];
        printf("%8d | %10.3f %10.3f %10.2f %9.1f (%+6.1f) | %10.3f %10.3f %10.2f %9.1f (%+6.1f)\n",
               contexts[c], t->ms_per_token, t->cpu_ms_per_token, t->state_mib, t->rss_mib,
               t->rss_growth_mib, l->ms_per_token, l->cpu_ms_per_token, l->state_mib, l->rss_mib,
               l->rss_growth_mib);
    }
    printf("\nlinearized time per token at %d / at %d: %.3f wall, %.3f CPU (target <= 1.2)\n",
           contexts[n_ctx - 1], contexts[0],
           linear[n_ctx - 1].ms_per_token / linear[0].ms_per_token,
           linear[n_ctx - 1].cpu_ms_per_token / linear[0].cpu_ms_per_token);
    printf("teacher / linearized time per token at %d: %.2f wall, %.2f CPU (target > 1)\n",
           contexts[n_ctx - 1], teacher[n_ctx - 1].ms_per_token / linear[n_ctx - 1].ms_per_token,
           teacher[n_ctx - 1].cpu_ms_per_token / linear[n_ctx - 1].cpu_ms_per_token);
    printf("state at %d / at %d: teacher %.2f, linearized %.2f\n", contexts[n_ctx - 1],
           contexts[0], teacher[n_ctx - 1].state_mib / teacher[0].state_mib,
           linear[n_ctx - 1].state_mib / linear[0].state_mib);
    status = 0;

done:
    lc_model_close(m);
    lc_backend_close(be);
    free(ids);
    return status;
}
