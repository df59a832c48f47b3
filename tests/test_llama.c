/*
 * The Llama forward pass on real models against an independent
 * implementation (transformers; data/gen/make_logits_ref.py), across file
 * formats (safetensors vs GGUF), across backends (cpu vs ref), and
 * incremental decoding (KV cache) against the parallel forward.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/model.h"
#include "core/tensorfile.h"
#include "tests/lc_test.h"

/* the greedy continuation of BOS listed in the shared data README */
static const int32_t greedy_ids[32] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                       421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
                                       419, 292, 411, 322, 265, 282, 295, 433, 426, 385};

/* the models of the shared data that the project's data/ does not bundle */
#define TINY "models/llama-2-tiny-random/llama-2-tiny-random.gguf"
#define GGUF "models/stories260K/stories260K.gguf"

struct fixture {
    struct lc_backend *cpu;
    struct lc_backend *ref;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->cpu = lc_test_backend(&lc_cpu_ops);
    fx->ref = lc_test_backend(&lc_ref_ops);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    lc_test_backend_free(fx->cpu);
    lc_test_backend_free(fx->ref);
    free(fx);
    return 0;
}

/* A model of the shared data; a test whose model is missing is skipped,
 * so tests ask for the files data/ does not bundle before they allocate
 * anything (a skip leaks what is allocated). */
static struct lc_model *open_model(const char *rel, struct lc_backend *be)
{
    struct lc_error err = {0};
    struct lc_model *m = NULL;
    if (lc_model_open(&m, lc_test_data_file(rel), be, &err) != LC_OK) {
        fail_msg("opening %s: %s", rel, err.msg);
    }
    return m;
}

static float *logits_of(struct lc_model *m, const int32_t *ids, int B, int T)
{
    struct lc_error err = {0};
    const int V = lc_model_get_config(m)->vocab_size;
    float *out = malloc((size_t)B * T * V * sizeof(float));
    assert_non_null(out);
    if (lc_model_logits(m, ids, B, T, out, &err) != LC_OK) {
        fail_msg("forward: %s", err.msg);
    }
    return out;
}

static const struct lc_tensor_view *need_tensor(const struct lc_st_file *f, const char *name)
{
    const struct lc_tensor_view *t = lc_st_find(f, name);
    if (t == NULL) {
        fail_msg("reference file lacks %s", name);
    }
    return t;
}

/* Acceptance 2 (stories260K): the full logits of three sequences of 72
 * tokens equal transformers' within 1e-4; run on both backends, which
 * also checks acceptance 3 (cpu and ref agree). */
static void test_stories_reference(void **state)
{
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_st_file *ref = NULL;
    const struct lc_tensor_view *ids_t;
    const struct lc_tensor_view *logits_t;

    if (lc_st_open(&ref, lc_test_project_path("ref/logits_stories260K.safetensors"), &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    float *by_backend[2] = {NULL, NULL};

    ids_t = need_tensor(ref, "ids");
    logits_t = need_tensor(ref, "logits");
    assert_int_equal(ids_t->ndim, 2);
    for (int b = 0; b < 2; b++) {
        struct lc_backend *be = b == 0 ? fx->cpu : fx->ref;
        struct lc_model *m = open_model("models/stories260K-hf", be);
        const int S = (int)ids_t->shape[0];
        const int T = (int)ids_t->shape[1];
        float *got = logits_of(m, ids_t->data, S, T);
        size_t n = (size_t)logits_t->numel;
        fprintf(stderr, "stories260K vs transformers on %s: max abs diff %.3g\n", be->ops->name,
                lc_test_max_abs_diff(got, logits_t->data, n));
        assert_int_equal(lc_test_check_close("logits", got, logits_t->data, n, 1e-4, 0.0), 0);
        by_backend[b] = got;
        lc_model_close(m);
    }
    /* acceptance 3: the backends agree with each other directly */
    fprintf(stderr, "stories260K cpu vs ref: max abs diff %.3g\n",
            lc_test_max_abs_diff(by_backend[0], by_backend[1], (size_t)logits_t->numel));
    assert_int_equal(lc_test_check_close("cpu-vs-ref", by_backend[0], by_backend[1],
                                         (size_t)logits_t->numel, 1e-4, 0.0), 0);
    free(by_backend[0]);
    free(by_backend[1]);
    lc_st_close(ref);
}

/* Acceptance 2 (llama-2-tiny-random.gguf, F16 weights, untied, 32000
 * vocabulary): the stored vocabulary columns, the logsumexp over the whole
 * vocabulary and the argmax (where the top two are not nearly tied). */
static void test_tiny_random_reference(void **state)
{
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_st_file *ref = NULL;
    const struct lc_tensor_view *ids_t;
    const struct lc_tensor_view *cols_t;
    const struct lc_tensor_view *logits_t;
    const struct lc_tensor_view *lse_t;
    const struct lc_tensor_view *argmax_t;
    const struct lc_tensor_view *margin_t;

    (void)lc_test_data_file(TINY); /* skipped without it */
    if (lc_st_open(&ref, lc_test_project_path("ref/logits_tiny_random.safetensors"), &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    ids_t = need_tensor(ref, "ids");
    cols_t = need_tensor(ref, "cols");
    logits_t = need_tensor(ref, "logits");
    lse_t = need_tensor(ref, "logsumexp");
    argmax_t = need_tensor(ref, "argmax");
    margin_t = need_tensor(ref, "margin");
    for (int b = 0; b < 2; b++) {
        struct lc_backend *be = b == 0 ? fx->cpu : fx->ref;
        struct lc_model *m = open_model(TINY, be);
        const int S = (int)ids_t->shape[0];
        const int T = (int)ids_t->shape[1];
        const int V = lc_model_get_config(m)->vocab_size;
        const int K = (int)cols_t->numel;
        const int32_t *cols = cols_t->data;
        const int32_t *argmax = argmax_t->data;
        const float *margin = margin_t->data;
        float *got = logits_of(m, ids_t->data, S, T);
        float *sel = malloc((size_t)S * T * K * sizeof(float));
        float *lse = malloc((size_t)S * T * sizeof(float));
        size_t bad = 0;

        assert_int_equal(V, 32000);
        for (int r = 0; r < S * T; r++) {
            const float *row = got + (size_t)r * V;
            double mx = row[0];
            double sum = 0.0;
            int best = 0;
            for (int v = 0; v < V; v++) {
                if (row[v] > row[best]) {
                    best = v;
                }
                mx = row[v] > mx ? row[v] : mx;
            }
            for (int v = 0; v < V; v++) {
                sum += exp((double)row[v] - mx);
            }
            lse[r] = (float)(mx + log(sum));
            for (int k = 0; k < K; k++) {
                sel[(size_t)r * K + k] = row[cols[k]];
            }
            if (margin[r] > 1e-4f && best != argmax[r]) {
                bad++;
            }
        }
        fprintf(stderr, "tiny-random vs transformers on %s: max abs diff %.3g (columns), %.3g (logsumexp)\n",
                be->ops->name, lc_test_max_abs_diff(sel, logits_t->data, (size_t)logits_t->numel),
                lc_test_max_abs_diff(lse, lse_t->data, (size_t)S * T));
        assert_int_equal(lc_test_check_close("logits", sel, logits_t->data,
                                             (size_t)logits_t->numel, 1e-4, 0.0), 0);
        assert_int_equal(lc_test_check_close("logsumexp", lse, lse_t->data, (size_t)S * T, 1e-4,
                                             0.0), 0);
        assert_int_equal(bad, 0);
        free(sel);
        free(lse);
        free(got);
        lc_model_close(m);
    }
    lc_st_close(ref);
}

/* Acceptance 1: the safetensors and GGUF copies of stories260K give the
 * same logits, and greedy decoding from BOS gives the 32 listed ids. */
static void test_formats_agree_and_greedy(void **state)
{
    struct fixture *fx = *state;
    struct lc_model *gg = open_model(GGUF, fx->cpu);
    struct lc_model *hf = open_model("models/stories260K-hf", fx->cpu);
    const int V = lc_model_get_config(hf)->vocab_size;
    int32_t seq[33];
    float *a;
    float *b;

    assert_int_equal(lc_model_get_config(gg)->vocab_size, V);
    /* greedy from BOS with the full forward each step */
    seq[0] = 1;
    for (int t = 0; t < 32; t++) {
        float *lg = logits_of(hf, seq, 1, t + 1);
        const float *row = lg + (size_t)t * V;
        int best = 0;
        for (int v = 1; v < V; v++) {
            if (row[v] > row[best]) {
                best = v;
            }
        }
        seq[t + 1] = best;
        free(lg);
    }
    for (int t = 0; t < 32; t++) {
        if (seq[t + 1] != greedy_ids[t]) {
            fail_msg("greedy token %d: got %d, want %d", t, seq[t + 1], greedy_ids[t]);
        }
    }
    a = logits_of(hf, seq, 1, 33);
    b = logits_of(gg, seq, 1, 33);
    fprintf(stderr, "stories260K safetensors vs GGUF: max abs diff %.3g\n",
            lc_test_max_abs_diff(a, b, (size_t)33 * V));
    assert_int_equal(lc_test_check_close("gguf", b, a, (size_t)33 * V, 1e-4, 0.0), 0);
    free(a);
    free(b);
    lc_model_close(hf);
    lc_model_close(gg);
}

/* Incremental decoding with the KV cache equals the parallel forward at
 * every position, whatever the chunking of the prompt. */
static void test_session_matches_forward(void **state)
{
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_model *m = open_model("models/stories260K-hf", fx->cpu);
    const int V = lc_model_get_config(m)->vocab_size;
    const int T = 80;
    int32_t ids[80];
    float *full;
    float *step = malloc((size_t)V * sizeof(float));
    struct lc_session *s = NULL;

    ids[0] = 1;
    for (int t = 1; t < T; t++) {
        ids[t] = 3 + (t * 37) % 500;
    }
    full = logits_of(m, ids, 1, T);
    if (lc_session_new(&s, m, T, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    /* a prompt of 7 tokens, then one at a time */
    assert_int_equal(lc_session_feed(s, ids, 7, step, &err), LC_OK);
    assert_int_equal(lc_test_check_close("prefill", step, full + (size_t)6 * V, (size_t)V, 1e-4, 0.0), 0);
    for (int t = 7; t < T; t++) {
        assert_int_equal(lc_session_feed(s, &ids[t], 1, step, &err), LC_OK);
        if (lc_test_check_close("decode", step, full + (size_t)t * V, (size_t)V, 1e-4, 0.0) != 0) {
            fail_msg("position %d differs", t);
        }
    }
    assert_int_equal(lc_session_length(s), T);
    /* one more does not fit */
    assert_int_equal(lc_session_feed(s, ids, 1, step, &err), LC_ERR_ARG);
    lc_session_free(s);
    free(step);
    free(full);
    lc_model_close(m);
}

/* lc_llama_random: the same seed gives the same weights, bf16 weights are
 * the fp32 ones rounded (norms stay fp32 ones), the bf16 model runs, and a
 * bad weight type or shape is refused. */
static void test_random_model(void **state)
{
    struct fixture *fx = *state;
    struct lc_backend *be = fx->ref;
    struct lc_error err = {0};
    struct lc_model_config cfg;
    struct lc_llama *f32 = NULL;
    struct lc_llama *again = NULL;
    struct lc_llama *bf16 = NULL;
    struct lc_llama_fwd fwd = {0};
    const int32_t ids[4] = {1, 7, 30, 49};
    float logits[4 * 50];

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.arch, sizeof(cfg.arch), "llama");
    cfg.vocab_size = 50;
    cfg.hidden_size = 64;
    cfg.intermediate_size = 96;
    cfg.n_layers = 2;
    cfg.n_heads = 4;
    cfg.n_kv_heads = 2;
    cfg.head_dim = 16;
    cfg.rms_norm_eps = 1e-5f;
    cfg.rope_theta = 10000.0;
    assert_int_equal(lc_llama_random(&f32, &cfg, LC_DTYPE_F32, 7, be, &err), LC_OK);
    assert_int_equal(lc_llama_random(&again, &cfg, LC_DTYPE_F32, 7, be, &err), LC_OK);
    assert_int_equal(lc_llama_random(&bf16, &cfg, LC_DTYPE_BF16, 7, be, &err), LC_OK);
    for (int l = 0; l < cfg.n_layers; l++) {
        const struct lc_weight *a[] = {&f32->layers[l].wq, &f32->layers[l].wo,
                                       &f32->layers[l].w_down, &f32->embed, &f32->lm_head};
        const struct lc_weight *b[] = {&bf16->layers[l].wq, &bf16->layers[l].wo,
                                       &bf16->layers[l].w_down, &bf16->embed, &bf16->lm_head};
        const struct lc_weight *c[] = {&again->layers[l].wq, &again->layers[l].wo,
                                       &again->layers[l].w_down, &again->embed, &again->lm_head};
        const size_t n[] = {64 * 64, 64 * 64, 64 * 96, 50 * 64, 50 * 64};
        for (int w = 0; w < 5; w++) {
            const float *x = a[w]->data;
            const uint16_t *h = b[w]->data;
            assert_int_equal(a[w]->dtype, LC_DTYPE_F32);
            assert_int_equal(b[w]->dtype, LC_DTYPE_BF16);
            assert_memory_equal(a[w]->data, c[w]->data, n[w] * sizeof(float));
            for (size_t i = 0; i < n[w]; i++) {
                if (h[i] != lc_f32_to_bf16(x[i])) {
                    fail_msg("layer %d weight %d [%zu]: bf16 %04x, fp32 %g", l, w, i, h[i], x[i]);
                }
            }
        }
        assert_true(bf16->layers[l].attn_norm[0] == 1.0f && bf16->layers[l].ffn_norm[63] == 1.0f);
    }
    assert_int_equal(lc_llama_fwd_alloc(bf16, &fwd, 4, &err), LC_OK);
    assert_int_equal(lc_llama_forward(bf16, &fwd, ids, 1, 4, logits, &err), LC_OK);
    for (int i = 0; i < 4 * 50; i++) {
        assert_true(isfinite(logits[i]));
    }
    lc_llama_fwd_free(bf16, &fwd);
    lc_llama_free(f32);
    lc_llama_free(again);
    lc_llama_free(bf16);

    f32 = NULL;
    assert_int_equal(lc_llama_random(&f32, &cfg, LC_DTYPE_F16, 7, be, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "type F16"));
    assert_null(f32);
    /* per-frequency RoPE factors come from a model file; there is none */
    cfg.rope_type = LC_ROPE_FACTORS;
    assert_int_equal(lc_llama_random(&f32, &cfg, LC_DTYPE_F32, 7, be, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "need a model file"));
    assert_null(f32);
    cfg.rope_type = LC_ROPE_DEFAULT;
    cfg.n_kv_heads = 3;
    assert_int_equal(lc_llama_random(&f32, &cfg, LC_DTYPE_F32, 7, be, &err), LC_ERR_ARG);
    assert_null(f32);
}

/* Llama 3.1 RoPE scaling, from config.json ("llama3" rope_scaling) and from
 * a GGUF (rope_freqs.weight divisors), against transformers
 * (data/gen/make_llama31_ref.py: a tiny model with explicit head_dim, GQA,
 * an untied lm_head), on both backends. */
static void test_llama31_reference(void **state)
{
    static const char *const files[2] = {"ref/tiny-llama31-hf", "ref/tiny-llama31.gguf"};
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_st_file *ref = NULL;
    const struct lc_tensor_view *ids_t;
    const struct lc_tensor_view *logits_t;
    const struct lc_tensor_view *plain_t;

    if (lc_st_open(&ref, lc_test_project_path("ref/logits_tiny_llama31.safetensors"), &err) !=
        LC_OK) {
        fail_msg("%s", err.msg);
    }
    ids_t = need_tensor(ref, "ids");
    logits_t = need_tensor(ref, "logits");
    plain_t = need_tensor(ref, "logits_default_rope");
    /* the reference would notice unscaled frequencies */
    assert_true(lc_test_max_abs_diff(logits_t->data, plain_t->data, (size_t)logits_t->numel) >
                0.1);
    for (int f = 0; f < 2; f++) {
        for (int b = 0; b < 2; b++) {
            struct lc_backend *be = b == 0 ? fx->cpu : fx->ref;
            struct lc_model *m = NULL;
            const struct lc_model_config *c;
            float *got;

            if (lc_model_open(&m, lc_test_project_path(files[f]), be, &err) != LC_OK) {
                fail_msg("opening %s: %s", files[f], err.msg);
            }
            c = lc_model_get_config(m);
            assert_int_equal(c->head_dim, 16);
            assert_int_equal(c->n_kv_heads, 2);
            assert_int_equal(c->rope_type, f == 0 ? LC_ROPE_LLAMA3 : LC_ROPE_FACTORS);
            got = logits_of(m, ids_t->data, (int)ids_t->shape[0], (int)ids_t->shape[1]);
            fprintf(stderr, "tiny-llama31 (%s) vs transformers on %s: max abs diff %.3g\n",
                    files[f], be->ops->name,
                    lc_test_max_abs_diff(got, logits_t->data, (size_t)logits_t->numel));
            assert_int_equal(lc_test_check_close(files[f], got, logits_t->data,
                                                 (size_t)logits_t->numel, 1e-4, 0.0),
                             0);
            free(got);
            lc_model_close(m);
        }
    }
    lc_st_close(ref);
}

/* A GGUF's rope_freqs.weight of the wrong length, or with a factor that is
 * not positive, is refused naming the file and the tensor. */
static void test_llama31_bad_factors(void **state)
{
    struct fixture *fx = *state;
    const char *src = lc_test_project_path("ref/tiny-llama31.gguf");
    const char *dst = lc_test_tmp_path("llama31-patched.gguf");
    const char *name = "rope_freqs.weight";
    const size_t n = strlen(name);
    struct lc_error err = {0};
    struct lc_model *m = NULL;
    size_t len = 0;
    unsigned char *buf = lc_test_read_file(src, &len);
    unsigned char *info = NULL;
    unsigned char *data = NULL;
    float factors[8];
    uint64_t ne0;
    lc_status rc;

    /* the tensor info: u64 name length, name, u32 n_dims = 1, u64 ne[0] */
    for (size_t i = 8; i + n + 12 < len && info == NULL; i++) {
        if (buf[i - 8] == n && memcmp(buf + i, name, n) == 0 && buf[i + n] == 1) {
            info = buf + i + n + 4;
        }
    }
    assert_non_null(info);
    memcpy(&ne0, info, 8);
    assert_int_equal(ne0, 8);
    /* the factors of the scaling the file was made with: 1 for the
     * shortest wavelength, 8 (the factor) for the longest */
    for (size_t i = 0; i + sizeof(factors) <= len && data == NULL; i++) {
        memcpy(factors, buf + i, sizeof(factors));
        if (factors[0] == 1.0f && factors[7] == 8.0f && factors[1] > 1.0f && factors[1] < 8.0f) {
            data = buf + i;
        }
    }
    assert_non_null(data);

    ne0 = 7;
    memcpy(info, &ne0, 8);
    lc_test_write_file(dst, buf, len);
    rc = lc_model_open(&m, dst, fx->cpu, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT,
                         "llama31-patched.gguf: rope_freqs.weight has shape [7], but the GGUF "
                         "metadata (llama.attention.key_length 16: one RoPE factor per "
                         "frequency) implies [8]");
    assert_null(m);
    ne0 = 8;
    memcpy(info, &ne0, 8);

    factors[3] = 0.0f;
    memcpy(data, factors, sizeof(factors));
    lc_test_write_file(dst, buf, len);
    rc = lc_model_open(&m, dst, fx->cpu, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT,
                         "llama31-patched.gguf: rope_freqs.weight[3] is 0; RoPE factors must be "
                         "positive and finite");
    assert_null(m);
    free(buf);
}

struct page_in_log {
    int calls;
    int64_t last_done;
    int64_t total;
    int stop_after;
};

static int on_page_in(int64_t done, int64_t total, void *user)
{
    struct page_in_log *log = user;
    assert_true(done > log->last_done && done <= total);
    log->calls++;
    log->last_done = done;
    log->total = total;
    return log->stop_after > 0 && log->calls >= log->stop_after;
}

/* The mapped weights: every matrix of the file once (the tied lm_head is
 * the embedding), paged in with progress up to that amount; a progress
 * callback can stop it; a model made in memory maps nothing. */
static void test_page_in(void **state)
{
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_model *m = open_model("models/stories260K-hf", fx->cpu);
    const struct lc_model_config *c = lc_model_get_config(m);
    const int64_t HD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t C = c->hidden_size, FF = c->intermediate_size;
    /* stories260K-hf stores float32 */
    const int64_t want = 4 * ((int64_t)c->vocab_size * C +
                              c->n_layers * (2 * HD * C + 2 * KD * C + 3 * FF * C));
    struct page_in_log log = {0};
    struct lc_model *r = NULL;
    struct lc_model_config small = {
        .vocab_size = 32, .hidden_size = 16, .intermediate_size = 32, .n_layers = 1,
        .n_heads = 2, .n_kv_heads = 1, .head_dim = 8, .rms_norm_eps = 1e-5f,
        .rope_theta = 10000.0, .tie_word_embeddings = 1,
    };

    assert_true(c->tie_word_embeddings);
    assert_int_equal(lc_model_mapped_bytes(m), want);
    assert_int_equal(lc_model_page_in(m, on_page_in, &log, &err), LC_OK);
    assert_true(log.calls >= 1);
    assert_int_equal(log.last_done, want);
    assert_int_equal(log.total, want);
    assert_int_equal(lc_model_page_in(m, NULL, NULL, &err), LC_OK);
    memset(&log, 0, sizeof(log));
    log.stop_after = 1;
    assert_int_equal(lc_model_page_in(m, on_page_in, &log, &err), LC_ERR_INTERRUPTED);
    assert_int_equal(log.calls, 1);
    lc_model_close(m);

    assert_int_equal(lc_model_random(&r, &small, 1, fx->cpu, &err), LC_OK);
    assert_int_equal(lc_model_mapped_bytes(r), 0);
    assert_int_equal(lc_model_page_in(r, on_page_in, &log, &err), LC_OK);
    lc_model_close(r);
}

/* Bad calls get clear errors. */
static void test_bad_calls(void **state)
{
    struct fixture *fx = *state;
    struct lc_error err = {0};
    struct lc_model *m = open_model("models/stories260K-hf", fx->cpu);
    int32_t ids[3] = {1, 512, 2};
    float out[3 * 512];

    assert_int_equal(lc_model_logits(m, ids, 1, 3, out, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "512"));
    assert_int_equal(lc_model_logits(m, ids, 0, 3, out, &err), LC_ERR_ARG);
    lc_model_close(m);
    assert_int_equal(lc_model_open(&m, "/nonexistent/model", fx->cpu, &err) != LC_OK, 1);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_reference),
        cmocka_unit_test(test_tiny_random_reference),
        cmocka_unit_test(test_llama31_reference),
        cmocka_unit_test(test_llama31_bad_factors),
        cmocka_unit_test(test_formats_agree_and_greedy),
        cmocka_unit_test(test_session_matches_forward),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_page_in),
        cmocka_unit_test(test_bad_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
