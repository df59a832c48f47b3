/*
 * The cuda backend against the cpu backend on a whole model (stories260K):
 * forward logits with softmax attention (the teacher) and with a
 * linearized attention attached (lc_model_load_lolcats, both window
 * modes), the loss and gradients of one attention-transfer micro-batch
 * (stage 1, core/transfer.c), the loss and gradients of one LoRA
 * micro-batch through the whole linearized model (stage 2,
 * core/finetune.c), and the logits of decoding sessions (prefill, then
 * token by token: KV cache, or window cache and linear state).
 *
 * Each case is a function that runs on one backend and returns its
 * results as one vector of floats; the table at the end lists the cases
 * with their tolerances, so that further cases (stage 2, prefill and
 * decoding) are one function and one line each.
 *
 * The comparisons run twice: with the fp32 attention (LC_CUDA_ATTN=fp32),
 * to the tolerances of the table, and with the default fused bf16
 * attention kernels, to BF16_TOL.  There the operands of the attention
 * products are rounded to bf16; the cpu backend with only the attention
 * inputs rounded to bf16 (a throwaway experiment) moved these outputs by
 * up to 8.4e-3 of their largest value (logits), 6.8e-3 (stage 2) and
 * 4e-4 (stage 1), and the kernels' own roundings are of the same size, so
 * BF16_TOL = 3e-2 leaves room for both while a wrong mask, a missing term
 * or a misplaced element changes outputs by their own size.
 *
 * Exits 77 without a CUDA device or without the test data.  With
 * LC_TEST_MODEL_BACKEND=ref it compares ref with cpu instead, which checks
 * the harness on a machine without a GPU.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/finetune.h"
#include "core/lolcats.h"
#include "core/lora.h"
#include "core/model.h"
#include "core/train.h"
#include "tests/lc_test.h"

#define MODEL "models/stories260K-hf"

struct fixture {
    struct lc_backend *cpu;
    struct lc_backend *gpu;
    struct lc_backend *gpu16; /* the bf16 attention kernels (NULL: not compared) */
    const char *lolcats_dir[2]; /* by window mode */
};

static struct fixture fx;

/* ------------------------------------------------------------ helpers */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) {
        fail_msg("out of memory");
    }
    return p;
}

static struct lc_model *open_model(struct lc_backend *be)
{
    struct lc_error err = {0};
    struct lc_model *m = NULL;

    if (lc_model_open(&m, lc_test_data_path(MODEL), be, &err) != LC_OK) {
        fail_msg("opening %s on %s: %s", MODEL, be->ops->name, err.msg);
    }
    return m;
}

/* B sequences of T token ids, the same for every backend */
static int32_t *make_ids(int B, int T, int V, uint64_t seed)
{
    int32_t *ids = xmalloc((size_t)B * T * sizeof(int32_t));
    float *u = xmalloc((size_t)B * T * sizeof(float));

    lc_test_fill_uniform(u, (size_t)B * T, seed, 0.0f, 1.0f);
    for (int i = 0; i < B * T; i++) {
        int id = (int)(u[i] * (float)V);
        ids[i] = id < V ? id : V - 1;
    }
    ids[0] = 1; /* BOS */
    free(u);
    return ids;
}

/* Feature maps away from their identity start (so that every part of the
 * linear attention matters): W += N(0, 0.3), theta ~ N(0, 1). */
static float *perturbed_arena(const struct lc_linattn *lin, uint64_t seed)
{
    float *host = xmalloc(lin->n_params * sizeof(float));
    float *noise = xmalloc(lin->n_params * sizeof(float));

    if (lc_linattn_download(lin, host) != LC_OK) {
        fail_msg("downloading the feature maps");
    }
    lc_test_fill_normal(noise, lin->n_params, seed, 0.3f);
    for (size_t i = 0; i < lin->n_params; i++) {
        host[i] += noise[i];
    }
    for (int l = 0; l < lin->L; l++) {
        float *th = lc_linattn_theta(lin, host, l);
        lc_test_fill_normal(th, (size_t)lin->H, seed + 1 + (uint64_t)l, 1.0f);
    }
    free(noise);
    return host;
}

static const struct lc_linattn_cfg lin_cfgs[2] = {
    {16, 64, LC_WINDOW_TERRACED},
    {16, 32, LC_WINDOW_SLIDING},
};

/* A lolcats output folder (lolcats_config.json + feature_maps.safetensors)
 * with perturbed feature maps, made once per window mode on the cpu. */
static const char *make_lolcats_dir(int mode)
{
    static char paths[2][4096];
    struct lc_error err = {0};
    struct lc_model *m = open_model(fx.cpu);
    const struct lc_linattn_cfg *cfg = &lin_cfgs[mode];
    struct lc_linattn *lin = NULL;
    float *host = NULL;
    char file[4200];
    FILE *f = NULL;

    snprintf(paths[mode], sizeof(paths[mode]), "%s/lolcats-%d", lc_test_tmpdir(), mode);
    if (mkdir(paths[mode], 0700) != 0) {
        fail_msg("%s: %s", paths[mode], strerror(errno));
    }
    if (lc_linattn_new(&lin, m->llama, cfg, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    host = perturbed_arena(lin, 100 + (uint64_t)mode);
    snprintf(file, sizeof(file), "%s/feature_maps.safetensors", paths[mode]);
    if (lc_linattn_save(lin, host, file, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    snprintf(file, sizeof(file), "%s/lolcats_config.json", paths[mode]);
    f = fopen(file, "w");
    assert_non_null(f);
    fprintf(f, "{\"attention\": {\"type\": \"hedgehog_window\", \"feature_dim\": %d, "
               "\"window\": %d, \"window_mode\": \"%s\"}}\n",
            cfg->feature_dim, cfg->window, mode == LC_WINDOW_SLIDING ? "sliding" : "terraced");
    assert_int_equal(fclose(f), 0);
    free(host);
    lc_linattn_free(lin);
    lc_model_close(m);
    return paths[mode];
}

/* ------------------------------------------------------------- cases */

struct case_args {
    int B, T;
    int mode; /* window mode, or -1: softmax attention */
    double xent_weight;
};

/* logits [B*T, V] */
static float *run_logits(struct lc_backend *be, const struct case_args *a, size_t *n)
{
    struct lc_error err = {0};
    struct lc_model *m = open_model(be);
    const int V = lc_model_get_config(m)->vocab_size;
    int32_t *ids = make_ids(a->B, a->T, V, 7);
    float *logits = xmalloc((size_t)a->B * a->T * V * sizeof(float));

    if (a->mode >= 0 && lc_model_load_lolcats(m, fx.lolcats_dir[a->mode], &err) != LC_OK) {
        fail_msg("attaching the linear attention: %s", err.msg);
    }
    if (lc_model_logits(m, ids, a->B, a->T, logits, &err) != LC_OK) {
        fail_msg("forward on %s: %s", be->ops->name, err.msg);
    }
    *n = (size_t)a->B * a->T * V;
    if (a->mode >= 0) {
        /* the linear attention is in use: the teacher's logits differ */
        float *teacher = xmalloc(*n * sizeof(float));
        lc_model_use_teacher(m, 1);
        if (lc_model_logits(m, ids, a->B, a->T, teacher, &err) != LC_OK) {
            fail_msg("teacher forward on %s: %s", be->ops->name, err.msg);
        }
        assert_true(lc_test_max_abs_diff(teacher, logits, *n) > 0.1);
        free(teacher);
    }
    free(ids);
    lc_model_close(m);
    return logits;
}

/* stage 1: [loss, layer MSEs [L], feature-map gradients [n_params]] of one
 * micro-batch from the same perturbed feature maps */
static float *run_transfer(struct lc_backend *be, const struct case_args *a, size_t *n)
{
    struct lc_error err = {0};
    struct lc_model *m = open_model(be);
    const struct lc_linattn_cfg *cfg = &lin_cfgs[a->mode];
    struct lc_train_opts o;
    struct lc_trainer tr;
    int32_t *ids = NULL;
    float *host = NULL;
    float *out = NULL;
    double loss = 0.0;
    double *layer = NULL;
    int L;

    lc_train_opts_default(&o);
    o.feature_dim = cfg->feature_dim;
    o.window = cfg->window;
    o.window_mode = cfg->mode;
    o.xent_weight = a->xent_weight;
    memset(&tr, 0, sizeof(tr));
    tr.model = m;
    tr.m = m->llama;
    tr.be = be;
    tr.o = &o;
    tr.T = a->T;
    tr.B = a->B;
    L = tr.m->cfg.n_layers;
    ids = make_ids(a->B, a->T, tr.m->cfg.vocab_size, 11);
    layer = xmalloc((size_t)L * sizeof(double));
    if (lc_linattn_new(&tr.lin, tr.m, cfg, &err) != LC_OK ||
        lc_model_reserve_rows(m, a->B * a->T, &err) != LC_OK ||
        lc_transfer_setup(&tr, &err) != LC_OK) {
        fail_msg("stage 1 setup on %s: %s", be->ops->name, err.msg);
    }
    host = perturbed_arena(tr.lin, 300 + (uint64_t)a->mode);
    if (lc_linattn_upload(tr.lin, host) != LC_OK) {
        fail_msg("uploading the feature maps");
    }
    if (lc_transfer_hooks.microbatch(&tr, ids, ids, a->B, 1, 2.0, &loss, layer, &err) != LC_OK) {
        fail_msg("stage 1 micro-batch on %s: %s", be->ops->name, err.msg);
    }
    *n = 1 + (size_t)L + tr.lin->n_params;
    out = xmalloc(*n * sizeof(float));
    out[0] = (float)loss;
    for (int l = 0; l < L; l++) {
        out[1 + l] = (float)layer[l];
    }
    be->ops->download(be, out + 1 + L, tr.groups[0].grads, tr.lin->n_params * sizeof(float));
    if (be->ops->sync(be, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_transfer_teardown(&tr);
    lc_linattn_free(tr.lin);
    lc_model_close(m);
    free(ids);
    free(host);
    free(layer);
    return out;
}

/* stage 2: one LoRA micro-batch (feature maps trained too), [loss, LoRA
 * gradients, feature-map gradients] */
static float *run_finetune(struct lc_backend *be, const struct case_args *a, size_t *n)
{
    struct lc_error err = {0};
    struct lc_model *m = open_model(be);
    const struct lc_linattn_cfg *cfg = &lin_cfgs[a->mode];
    const struct lc_lora_cfg rcfg = {.rank = 8, .alpha = 16.0, .dropout = 0.0,
                                     .targets = LC_LORA_Q | LC_LORA_K | LC_LORA_V | LC_LORA_O};
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_ft *ft = NULL;
    const int V = m->llama->cfg.vocab_size;
    int32_t *ids = make_ids(a->B, a->T, V, 17);
    int32_t *targets = make_ids(a->B, a->T, V, 19);
    float *host = NULL;
    float *lora_host = NULL;
    float *out = NULL;
    double sum = 0.0;
    int64_t count = 0;

    if (lc_linattn_new(&lin, m->llama, cfg, &err) != LC_OK ||
        lc_lora_new(&lora, m->llama, &rcfg, 7, &err) != LC_OK) {
        fail_msg("stage 2 setup on %s: %s", be->ops->name, err.msg);
    }
    host = perturbed_arena(lin, 400 + (uint64_t)a->mode);
    lora_host = xmalloc(lora->n_params * sizeof(float));
    /* B != 0, so that every gradient is non-zero */
    lc_test_fill_uniform(lora_host, lora->n_params, 23, -0.2f, 0.2f);
    if (lc_linattn_upload(lin, host) != LC_OK) {
        fail_msg("uploading the feature maps");
    }
    be->ops->upload(be, lora->params, lora_host, lora->n_params * sizeof(float));
    m->llama->lora = lora;
    if (lc_ft_new(&ft, m->llama, lin, lora, a->B * a->T, 0, 1, &err) != LC_OK) {
        fail_msg("stage 2 engine on %s: %s", be->ops->name, err.msg);
    }
    lc_ft_zero_grads(ft);
    if (lc_ft_microbatch(ft, ids, targets, a->B, a->T, 1, 1.0, &sum, &count, &err) != LC_OK) {
        fail_msg("stage 2 micro-batch on %s: %s", be->ops->name, err.msg);
    }
    *n = 1 + lora->n_params + lin->n_params;
    out = xmalloc(*n * sizeof(float));
    out[0] = (float)(sum / (double)count);
    be->ops->download(be, out + 1, ft->lora_grads, lora->n_params * sizeof(float));
    be->ops->download(be, out + 1 + lora->n_params, ft->lin_grads,
                      lin->n_params * sizeof(float));
    if (be->ops->sync(be, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_ft_free(ft);
    m->llama->lora = NULL;
    lc_lora_free(lora);
    lc_linattn_free(lin);
    lc_model_close(m);
    free(ids);
    free(targets);
    free(host);
    free(lora_host);
    return out;
}

/* a session (KV cache, or window cache and linear state): the logits after
 * a prompt of T - 40 tokens fed at once, then after each of 40 more tokens
 * fed one by one, [41, V] */
static float *run_session(struct lc_backend *be, const struct case_args *a, size_t *n)
{
    const int steps = 40;
    struct lc_error err = {0};
    struct lc_model *m = open_model(be);
    const int V = lc_model_get_config(m)->vocab_size;
    int32_t *ids = make_ids(1, a->T, V, 13);
    float *logits = xmalloc((size_t)(steps + 1) * V * sizeof(float));
    struct lc_session *sess = NULL;
    const int prompt = a->T - steps;

    if (a->mode >= 0 && lc_model_load_lolcats(m, fx.lolcats_dir[a->mode], &err) != LC_OK) {
        fail_msg("attaching the linear attention: %s", err.msg);
    }
    if (lc_session_new(&sess, m, a->T, &err) != LC_OK ||
        lc_session_feed(sess, ids, prompt, logits, &err) != LC_OK) {
        fail_msg("prefill on %s: %s", be->ops->name, err.msg);
    }
    for (int k = 0; k < steps; k++) {
        if (lc_session_feed(sess, ids + prompt + k, 1, logits + (size_t)(k + 1) * V, &err) !=
            LC_OK) {
            fail_msg("decoding on %s: %s", be->ops->name, err.msg);
        }
    }
    assert_int_equal(lc_session_length(sess), a->T);
    *n = (size_t)(steps + 1) * V;
    lc_session_free(sess);
    free(ids);
    lc_model_close(m);
    return logits;
}

struct model_case {
    const char *name;
    float *(*run)(struct lc_backend *be, const struct case_args *a, size_t *n);
    struct case_args args;
    /* |cuda - cpu| <= tol (max |cpu| + |cpu|) */
    double tol;
};

static const struct model_case cases[] = {
    {"teacher logits", run_logits, {2, 150, -1, 0.0}, 1e-5},
    {"terraced linear attention logits", run_logits, {2, 150, LC_WINDOW_TERRACED, 0.0}, 1e-5},
    {"sliding linear attention logits", run_logits, {1, 200, LC_WINDOW_SLIDING, 0.0}, 1e-5},
    {"stage 1 micro-batch, terraced, MSE", run_transfer, {2, 150, LC_WINDOW_TERRACED, 0.0}, 1e-4},
    {"stage 1 micro-batch, sliding, MSE + xent", run_transfer, {1, 200, LC_WINDOW_SLIDING, 1.0},
     1e-4},
    {"stage 2 micro-batch, terraced, LoRA + feature maps", run_finetune,
     {2, 150, LC_WINDOW_TERRACED, 0.0}, 1e-4},
    {"stage 2 micro-batch, sliding, LoRA + feature maps", run_finetune,
     {1, 200, LC_WINDOW_SLIDING, 0.0}, 1e-4},
    {"teacher session: prefill, then decoding", run_session, {1, 180, -1, 0.0}, 1e-5},
    {"terraced session: prefill, then decoding", run_session, {1, 230, LC_WINDOW_TERRACED, 0.0},
     1e-5},
    {"sliding session: prefill, then decoding", run_session, {1, 150, LC_WINDOW_SLIDING, 0.0},
     1e-5},
};

#define BF16_TOL 3e-2

static void test_cases(void **state)
{
    size_t bad = 0;
    (void)state;

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct model_case *mc = &cases[c];
        size_t n_cpu = 0;
        float *want = mc->run(fx.cpu, &mc->args, &n_cpu);
        double scale = lc_test_max_abs(want, n_cpu);

        for (int pass = 0; pass < 2; pass++) {
            struct lc_backend *be = pass == 0 ? fx.gpu : fx.gpu16;
            const double tol = pass == 0 ? mc->tol : BF16_TOL;
            size_t n_gpu = 0;
            float *got = NULL;
            char name[160];

            if (be == NULL) {
                continue;
            }
            got = mc->run(be, &mc->args, &n_gpu);
            assert_int_equal(n_cpu, n_gpu);
            snprintf(name, sizeof(name), "%s%s", mc->name, pass == 0 ? "" : " (bf16 attention)");
            fprintf(stderr, "%s: %zu values, max |cpu| %.3g, max |cuda - cpu| %.3g\n", name, n_cpu,
                    scale, lc_test_max_abs_diff(got, want, n_cpu));
            bad += lc_test_check_close(name, got, want, n_cpu, tol * scale, tol);
            free(got);
        }
        free(want);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
    };
    struct lc_error err = {0};
    int rc;

    /* LC_TEST_MODEL_BACKEND=ref checks this harness itself without a GPU */
    const char *other = getenv("LC_TEST_MODEL_BACKEND");

    (void)lc_test_data_path(MODEL "/config.json"); /* exits 77 without the data */
    /* the fp32 attention, as the cpu backend computes it */
    setenv("LC_CUDA_ATTN", "fp32", 1);
    if (lc_backend_open(&fx.gpu, other != NULL ? other : "cuda", &err) != LC_OK) {
        if (strncmp(err.msg, "no CUDA device", 14) == 0) {
            fprintf(stderr, "SKIP: %s\n", err.msg);
            return LC_TEST_SKIP;
        }
        fprintf(stderr, "test_cuda_model: %s\n", err.msg);
        return 1;
    }
    if (other == NULL) {
        setenv("LC_CUDA_ATTN", "bf16", 1);
        if (lc_backend_open(&fx.gpu16, "cuda", &err) != LC_OK) {
            fprintf(stderr, "test_cuda_model: %s\n", err.msg);
            return 1;
        }
    }
    if (lc_backend_open(&fx.cpu, "cpu", &err) != LC_OK) {
        fprintf(stderr, "test_cuda_model: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "%s\n", lc_backend_describe(fx.gpu));
    if (fx.gpu16 != NULL) {
        fprintf(stderr, "%s\n", lc_backend_describe(fx.gpu16));
    }
    fx.lolcats_dir[LC_WINDOW_TERRACED] = make_lolcats_dir(LC_WINDOW_TERRACED);
    fx.lolcats_dir[LC_WINDOW_SLIDING] = make_lolcats_dir(LC_WINDOW_SLIDING);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    lc_backend_close(fx.cpu);
    lc_backend_close(fx.gpu);
    if (fx.gpu16 != NULL) {
        lc_backend_close(fx.gpu16);
    }
    return rc;
}
