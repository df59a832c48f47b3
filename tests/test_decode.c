/*
 * Decoding sessions of a linearized model: prefill + token-by-token decode
 * give the logits of the parallel forward at every position, in both window
 * modes, for prompts around the window and block boundaries, for prompts
 * fed in uneven pieces, on the cpu and ref backends; the state stops
 * growing after 2W tokens (the teacher's KV cache does not); bad calls get
 * errors.  The feature maps are the identity plus seeded noise and theta is
 * away from its initial value, so that every part of the state matters.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "tests/lc_test.h"

#define FEATURE_DIM 6 /* f: F = 12 features per head (head dim 8) */
#define TOL 1e-4

/* the largest difference seen, printed at the end */
static double worst_diff;

static const char *mode_name(int mode)
{
    return mode == LC_WINDOW_SLIDING ? "sliding" : "terraced";
}

static struct lc_model *open_stories(struct lc_backend *be)
{
    struct lc_error err = {0};
    struct lc_model *m = NULL;

    if (lc_model_open(&m, lc_test_data_path("models/stories260K-hf"), be, &err) != LC_OK) {
        fail_msg("opening stories260K-hf: %s", err.msg);
    }
    return m;
}

/* New linear attention for m: identity feature maps plus N(0, 0.5) noise,
 * theta uniform in [-2, 2]. */
static struct lc_linattn *noisy_linattn(struct lc_model *m, int W, int mode, uint64_t seed)
{
    struct lc_error err = {0};
    struct lc_linattn_cfg cfg = {.feature_dim = FEATURE_DIM, .window = W, .mode = mode};
    struct lc_linattn *lin = NULL;
    float *host;
    float *noise;

    if (lc_linattn_new(&lin, m->llama, &cfg, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    host = malloc(lin->n_params * sizeof(float));
    noise = malloc(lin->n_params * sizeof(float));
    assert_int_equal(lc_linattn_download(lin, host), LC_OK);
    lc_test_fill_normal(noise, lin->n_params, seed, 0.5f);
    for (int l = 0; l < lin->L; l++) {
        const size_t nw = 2 * (size_t)lin->H * lin->D * FEATURE_DIM;
        float *w = lc_linattn_wq(lin, host, l);
        float *theta = lc_linattn_theta(lin, host, l);
        for (size_t i = 0; i < nw; i++) {
            w[i] += noise[(size_t)l * lin->layer_size + i];
        }
        lc_test_fill_uniform(theta, (size_t)lin->H, seed + 1000 + (uint64_t)l, -2.0f, 2.0f);
    }
    assert_int_equal(lc_linattn_upload(lin, host), LC_OK);
    free(noise);
    free(host);
    return lin;
}

static void attach(struct lc_model *m, int W, int mode, uint64_t seed)
{
    lc_model_attach_linattn(m, noisy_linattn(m, W, mode, seed));
}

/* n token ids in [3, 512) */
static int32_t *make_ids(int n, uint64_t seed)
{
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;

    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = 3 + (int32_t)((x >> 33) % 509);
    }
    return ids;
}

static float *forward_logits(struct lc_model *m, const int32_t *ids, int T)
{
    struct lc_error err = {0};
    const int V = lc_model_get_config(m)->vocab_size;
    float *out = malloc((size_t)T * V * sizeof(float));

    if (lc_model_logits(m, ids, 1, T, out, &err) != LC_OK) {
        fail_msg("forward: %s", err.msg);
    }
    return out;
}

/* Feeds ids[0..T) in the given pieces (then one token at a time up to T)
 * and checks the logits after each piece against full [T, V]. */
static void check_session(struct lc_model *m, const int32_t *ids, int T, const int *pieces,
                          int n_pieces, const float *full, const char *what)
{
    struct lc_error err = {0};
    const int V = lc_model_get_config(m)->vocab_size;
    struct lc_session *s = NULL;
    float *step = malloc((size_t)V * sizeof(float));
    int done = 0;

    if (lc_session_new(&s, m, T, &err) != LC_OK) {
        fail_msg("%s: %s", what, err.msg);
    }
    for (int k = 0; done < T; k++) {
        int n = k < n_pieces ? pieces[k] : 1;
        char name[160];
        double diff;

        if (lc_session_feed(s, ids + done, n, step, &err) != LC_OK) {
            fail_msg("%s: feeding %d tokens at %d: %s", what, n, done, err.msg);
        }
        done += n;
        snprintf(name, sizeof(name), "%s, position %d", what, done - 1);
        diff = lc_test_max_abs_diff(step, full + (size_t)(done - 1) * V, (size_t)V);
        worst_diff = diff > worst_diff ? diff : worst_diff;
        if (lc_test_check_close(name, step, full + (size_t)(done - 1) * V, (size_t)V, TOL, 0.0) !=
            0) {
            fail_msg("%s: logits at position %d differ from the parallel forward", what,
                     done - 1);
        }
    }
    assert_int_equal(lc_session_length(s), T);
    lc_session_free(s);
    free(step);
}

/* Prompts of 1, 63, 64, 65 and 300 tokens, each followed by decode steps:
 * 2W + 3 for W = 4 and 16 (so that keys move into the state while
 * decoding, in every phase of the cache), 3 for the default W = 64 (the
 * hand-over of the prefill; n_windows = 3 takes it, 2 leaves it out to
 * spare the slow ref backend). */
static void prompts_on(struct lc_backend *be, size_t n_windows)
{
    static const int prompts[] = {1, 63, 64, 65, 300};
    static const int windows[] = {4, 16, 64};
    struct lc_model *m = open_stories(be);

    for (int mode = 0; mode < 2; mode++) {
        for (size_t wi = 0; wi < n_windows; wi++) {
            const int W = windows[wi];
            const int extra = W < 64 ? 2 * W + 3 : 3;
            const int T_max = 300 + extra;
            /* one causal forward serves every prompt: they are prefixes */
            int32_t *ids = make_ids(T_max, (uint64_t)(W + mode));
            float *full;

            attach(m, W, mode, (uint64_t)(11 * W + mode));
            full = forward_logits(m, ids, T_max);
            for (size_t pi = 0; pi < sizeof(prompts) / sizeof(prompts[0]); pi++) {
                const int P = prompts[pi];
                char what[96];

                snprintf(what, sizeof(what), "%s %s W %d prompt %d", be->ops->name,
                         mode_name(mode), W, P);
                check_session(m, ids, P + extra, &P, 1, full, what);
            }
            free(full);
            free(ids);
        }
    }
    lc_model_close(m);
}

static void test_prompts_cpu(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    (void)state;
    prompts_on(be, 3);
    lc_test_backend_free(be);
}

static void test_prompts_ref(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_ref_ops);
    (void)state;
    prompts_on(be, 2);
    lc_test_backend_free(be);
}

/* A prompt in uneven pieces (some inside a block, some across several
 * blocks; with `long_piece`, one longer than the session's 512-row chunks)
 * hands over the same state as one piece: every later position still
 * matches. */
static void pieces_on(struct lc_backend *be, int long_piece)
{
    int pieces[] = {3, 1, 14, 2, 29, 7, 150, 5, 33};
    static const int windows[] = {4, 16};
    struct lc_model *m = open_stories(be);
    int prompt = 0;

    if (long_piece) {
        pieces[6] = 600;
    }
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        prompt += pieces[k];
    }
    for (int mode = 0; mode < 2; mode++) {
        for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
            const int W = windows[wi];
            const int T = prompt + 2 * W + 3;
            int32_t *ids = make_ids(T, (uint64_t)(7 * W + mode));
            float *full;
            char what[96];

            attach(m, W, mode, (uint64_t)(5 * W + mode + 100));
            full = forward_logits(m, ids, T);
            snprintf(what, sizeof(what), "%s %s W %d pieces", be->ops->name, mode_name(mode), W);
            check_session(m, ids, T, pieces, (int)(sizeof(pieces) / sizeof(pieces[0])), full,
                          what);
            /* one prompt (longer than 512 rows: the rest as later chunks) */
            snprintf(what, sizeof(what), "%s %s W %d one prompt of %d", be->ops->name,
                     mode_name(mode), W, prompt);
            check_session(m, ids, T, &prompt, 1, full, what);
            free(full);
            free(ids);
        }
    }
    lc_model_close(m);
}

static void test_pieces_cpu(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    (void)state;
    pieces_on(be, 1);
    lc_test_backend_free(be);
}

static void test_pieces_ref(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_ref_ops);
    (void)state;
    pieces_on(be, 0);
    lc_test_backend_free(be);
}

/* hybrid_add_state, the state added to the rows of a chunk run after
 * position 0: the cpu kernel against the reference, on shapes that are
 * not multiples of anything, one row and many. */
static void test_add_state_kernel(void **state)
{
    static const int shapes[][4] = {{1, 1, 8, 12}, {5, 3, 7, 10}, {37, 4, 16, 24}};
    struct lc_backend *cpu = lc_test_backend(&lc_cpu_ops);
    struct lc_backend *ref = lc_test_backend(&lc_ref_ops);
    (void)state;

    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        const int n = shapes[k][0], H = shapes[k][1], D = shapes[k][2], F = shapes[k][3];
        const size_t ny = (size_t)n * H * D;
        float *y = lc_test_new_f32(ny);
        float *den = lc_test_new_uniform((size_t)n * H, 20 + k, 0.5f, 3.0f);
        float *fq = lc_test_new_uniform((size_t)n * H * F, 30 + k, 0.0f, 0.2f);
        float *S = lc_test_new_uniform((size_t)H * F * D, 40 + k, -1.0f, 1.0f);
        float *z = lc_test_new_uniform((size_t)H * F, 50 + k, 0.0f, 2.0f);
        float *want;
        char what[64];

        lc_test_fill_normal(y, ny, 10 + k, 1.0f);
        want = lc_test_dup_f32(y, ny);
        lc_ref_ops.hybrid_add_state(ref, want, den, fq, S, z, n, H, D, F);
        lc_cpu_ops.hybrid_add_state(cpu, y, den, fq, S, z, n, H, D, F);
        snprintf(what, sizeof(what), "add_state n %d H %d D %d F %d", n, H, D, F);
        assert_int_equal(lc_test_check_rel(what, y, want, ny, 1e-5), 0);
        /* it changed something: the state is not a no-op here */
        lc_test_fill_normal(y, ny, 10 + k, 1.0f);
        assert_true(lc_test_max_abs_diff(y, want, ny) > 1e-3);
        free(y);
        free(den);
        free(fq);
        free(S);
        free(z);
        free(want);
    }
    lc_test_backend_free(cpu);
    lc_test_backend_free(ref);
}

/* The linearized state stops growing once the cache has held its 2W keys
 * (W when sliding); the teacher's KV cache grows by one row per token. */
static void test_state_bytes(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = open_stories(be);
    const struct lc_model_config *c = lc_model_get_config(m);
    const size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    const size_t HF = (size_t)c->n_heads * 2 * FEATURE_DIM;
    const int W = 16;
    const int n_tok = 100;
    int32_t *ids = make_ids(n_tok, 3);
    struct lc_error err = {0};
    struct lc_session *s = NULL;
    (void)state;

    /* teacher */
    assert_int_equal(lc_session_new(&s, m, n_tok, &err), LC_OK);
    assert_int_equal(lc_session_state_bytes(s), 0);
    for (int n = 1; n <= n_tok; n++) {
        assert_int_equal(lc_session_feed(s, ids + n - 1, 1, NULL, &err), LC_OK);
        assert_int_equal(lc_session_state_bytes(s),
                         (size_t)c->n_layers * 2 * (size_t)n * KD * sizeof(float));
    }
    lc_session_free(s);

    for (int mode = 0; mode < 2; mode++) {
        const size_t rows = mode == LC_WINDOW_SLIDING ? (size_t)W : 2 * (size_t)W;
        const size_t linear = (size_t)c->n_layers * (HF * c->head_dim + HF) * sizeof(float);
        size_t at_2w = 0;

        attach(m, W, mode, 9);
        assert_int_equal(lc_session_new(&s, m, n_tok, &err), LC_OK);
        assert_int_equal(lc_session_state_bytes(s), linear);
        /* the first 40 tokens one by one, then pieces of up to 9 */
        while (lc_session_length(s) < n_tok) {
            const int len = lc_session_length(s);
            const int n = len < 40 ? 1 : (n_tok - len < 9 ? n_tok - len : 9);
            size_t bytes;

            assert_int_equal(lc_session_feed(s, ids + len, n, NULL, &err), LC_OK);
            bytes = lc_session_state_bytes(s);
            if (len + n <= (int)rows) {
                assert_int_equal(bytes, linear + (size_t)c->n_layers * 2 * (size_t)(len + n) *
                                                     KD * sizeof(float));
            }
            if (len + n == 2 * W) {
                at_2w = bytes;
            }
            if (len + n >= 2 * W) {
                assert_int_equal(bytes, at_2w);
                assert_int_equal(bytes, linear + (size_t)c->n_layers * 2 * rows * KD *
                                                     sizeof(float));
            }
        }
        assert_int_equal(lc_session_length(s), n_tok);
        lc_session_free(s);
    }
    free(ids);
    lc_model_close(m);
    lc_test_backend_free(be);
}

/* A session's memory does not grow with its length: the model's RoPE
 * tables stay as they were however far a session goes (each chunk gets
 * its own rows), here a session of room for 2^24 tokens fed 600. */
static void test_rope_tables_constant(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = open_stories(be);
    const int n_tok = 600;
    int32_t *ids = make_ids(n_tok, 5);
    struct lc_error err = {0};
    struct lc_session *s = NULL;
    float logits[512];
    int rope_len;
    (void)state;

    attach(m, 16, LC_WINDOW_TERRACED, 4);
    rope_len = m->llama->rope_len;
    assert_true(rope_len < n_tok);
    assert_int_equal(lc_session_new(&s, m, 1 << 24, &err), LC_OK);
    assert_int_equal(lc_session_feed(s, ids, 300, logits, &err), LC_OK);
    for (int i = 300; i < n_tok; i++) {
        assert_int_equal(lc_session_feed(s, ids + i, 1, logits, &err), LC_OK);
    }
    assert_int_equal(lc_session_length(s), n_tok);
    assert_int_equal(m->llama->rope_len, rope_len);
    lc_session_free(s);
    free(ids);
    lc_model_close(m);
    lc_test_backend_free(be);
}

/* Feeding past max_tokens, empty feeds, ids outside the vocabulary and a
 * model whose attention changed under the session get errors and change
 * nothing. */
static void test_errors(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = open_stories(be);
    const int V = lc_model_get_config(m)->vocab_size;
    int32_t *ids = make_ids(40, 5);
    int32_t bad[2] = {5, 512};
    float *full;
    float *step = malloc((size_t)V * sizeof(float));
    struct lc_error err = {0};
    struct lc_session *s = NULL;
    (void)state;

    assert_int_equal(lc_session_new(&s, m, 0, &err), LC_ERR_ARG);
    assert_null(s);
    for (int mode = 0; mode < 2; mode++) {
        attach(m, 4, mode, 21);
        full = forward_logits(m, ids, 10);
        assert_int_equal(lc_session_new(&s, m, 10, &err), LC_OK);
        assert_int_equal(lc_session_feed(s, ids, 8, step, &err), LC_OK);
        assert_int_equal(lc_session_feed(s, ids + 8, 3, step, &err), LC_ERR_ARG);
        assert_non_null(strstr(err.msg, "do not fit"));
        assert_int_equal(lc_session_feed(s, ids + 8, 0, step, &err), LC_ERR_ARG);
        assert_int_equal(lc_session_feed(s, bad, 2, step, &err), LC_ERR_ARG);
        assert_non_null(strstr(err.msg, "512"));
        assert_int_equal(lc_session_length(s), 8);
        /* the refused calls left the state alone */
        assert_int_equal(lc_session_feed(s, ids + 8, 2, step, &err), LC_OK);
        assert_int_equal(lc_test_check_close("after refused calls", step, full + (size_t)9 * V,
                                             (size_t)V, TOL, 0.0),
                         0);
        assert_int_equal(lc_session_feed(s, ids, 1, step, &err), LC_ERR_ARG);
        assert_int_equal(lc_session_length(s), 10);
        lc_session_free(s);
        free(full);

        /* the session was made for the linearized attention */
        assert_int_equal(lc_session_new(&s, m, 10, &err), LC_OK);
        assert_int_equal(lc_session_feed(s, ids, 2, step, &err), LC_OK);
        lc_model_use_teacher(m, 1);
        assert_int_equal(lc_session_feed(s, ids + 2, 1, step, &err), LC_ERR_ARG);
        assert_non_null(strstr(err.msg, "attention changed"));
        lc_model_use_teacher(m, 0);
        assert_int_equal(lc_session_feed(s, ids + 2, 1, step, &err), LC_OK);
        /* another linear attention (even at the same address) */
        attach(m, 4, mode, 22);
        assert_int_equal(lc_session_feed(s, ids + 3, 1, step, &err), LC_ERR_ARG);
        assert_non_null(strstr(err.msg, "attention changed"));
        lc_session_free(s);
    }
    free(step);
    free(ids);
    lc_model_close(m);
    lc_test_backend_free(be);
}

/* The public path: a lolcats folder (lolcats_config.json and
 * feature_maps.safetensors) loaded with lc_model_load_lolcats decodes
 * like the parallel forward. */
static void test_load_lolcats_folder(void **state)
{
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = open_stories(be);
    struct lc_linattn *lin = noisy_linattn(m, 8, LC_WINDOW_TERRACED, 77);
    const char *dir = lc_test_tmpdir();
    const int pieces[] = {20, 1, 30};
    const int T = 90;
    int32_t *ids = make_ids(T, 8);
    float *host = malloc(lin->n_params * sizeof(float));
    float *full;
    char path[1024];
    struct lc_error err = {0};
    FILE *f;
    (void)state;

    assert_int_equal(lc_linattn_download(lin, host), LC_OK);
    snprintf(path, sizeof(path), "%s/feature_maps.safetensors", dir);
    if (lc_linattn_save(lin, host, path, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    snprintf(path, sizeof(path), "%s/lolcats_config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"attention\": {\"feature_dim\": %d, \"window\": 8, "
               "\"window_mode\": \"terraced\"}}\n",
            FEATURE_DIM);
    assert_int_equal(fclose(f), 0);
    if (lc_model_load_lolcats(m, dir, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    full = forward_logits(m, ids, T);
    check_session(m, ids, T, pieces, 3, full, "loaded from a folder");
    free(full);
    free(host);
    free(ids);
    lc_linattn_free(lin);
    lc_model_close(m);
    lc_test_backend_free(be);
}

/* A hybrid model (--softmax-layers): layers 1 and 3 keep softmax
 * attention.  The feature-map file has no keys for them; lolcats_config.json
 * lists them and loading honours it; prefill + decode still equal the
 * parallel forward (those layers decode with a full KV cache, so the state
 * grows by their keys only); the logits differ from the all-linearized
 * model's; bad lists are refused naming the file. */
static void test_softmax_layers(void **state)
{
    static const char *const bad_lists[] = {"[7]", "[1, 1]", "\"1\"", "[-1]", "[0, 1, 2, 3, 4]"};
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = open_stories(be);
    const struct lc_model_config *c = lc_model_get_config(m);
    const size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    const size_t HF = (size_t)c->n_heads * 2 * FEATURE_DIM;
    struct lc_linattn *lin = noisy_linattn(m, 8, LC_WINDOW_TERRACED, 78);
    const int softmax[] = {1, 3};
    const char *dir = lc_test_tmpdir();
    const int pieces[] = {20, 1, 30};
    const int T = 90;
    int32_t *ids = make_ids(T, 9);
    float *host = malloc(lin->n_params * sizeof(float));
    float *full;
    float *all_linear;
    char path[1024];
    struct lc_error err = {0};
    struct lc_st_file *st = NULL;
    struct lc_session *s = NULL;
    FILE *f;
    (void)state;

    assert_int_equal(lc_linattn_download(lin, host), LC_OK);
    /* the same maps, all layers linearized, for comparison */
    lc_model_attach_linattn(m, noisy_linattn(m, 8, LC_WINDOW_TERRACED, 78));
    all_linear = forward_logits(m, ids, T);

    assert_int_equal(lc_linattn_set_softmax(lin, softmax, 2, &err), LC_OK);
    snprintf(path, sizeof(path), "%s/feature_maps.safetensors", dir);
    if (lc_linattn_save(lin, host, path, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(lc_st_open(&st, path, &err), LC_OK);
    assert_null(lc_st_find(st, "model.layers.1.self_attn.feature_map_q.mlp.layer"));
    assert_null(lc_st_find(st, "model.layers.3.self_attn.window_factors"));
    assert_non_null(lc_st_find(st, "model.layers.2.self_attn.feature_map_k.mlp.layer"));
    lc_st_close(st);
    snprintf(path, sizeof(path), "%s/lolcats_config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"attention\": {\"feature_dim\": %d, \"window\": 8, "
               "\"window_mode\": \"terraced\", \"softmax_layers\": [1, 3]}}\n",
            FEATURE_DIM);
    assert_int_equal(fclose(f), 0);
    if (lc_model_load_lolcats(m, dir, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    full = forward_logits(m, ids, T);
    assert_true(lc_test_max_abs_diff(full, all_linear, (size_t)T * c->vocab_size) > 1e-3);
    check_session(m, ids, T, pieces, 3, full, "softmax layers 1 and 3");

    /* the state: three linear layers stop growing, two softmax layers do not */
    assert_int_equal(lc_session_new(&s, m, T, &err), LC_OK);
    assert_int_equal(lc_session_feed(s, ids, T, NULL, &err), LC_OK);
    assert_int_equal(lc_session_state_bytes(s),
                     (3 * (HF * c->head_dim + HF + 2 * 16 * KD) + 2 * 2 * (size_t)T * KD) *
                         sizeof(float));
    lc_session_free(s);

    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "{\"attention\": {\"feature_dim\": %d, \"window\": 8, "
                   "\"window_mode\": \"terraced\", \"softmax_layers\": %s}}\n",
                FEATURE_DIM, bad_lists[i]);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(lc_model_load_lolcats(m, dir, &err), LC_ERR_FORMAT);
        if (strstr(err.msg, "lolcats_config.json") == NULL ||
            (strstr(err.msg, "softmax") == NULL && strstr(err.msg, "linearize") == NULL)) {
            fail_msg("softmax_layers %s: %s", bad_lists[i], err.msg);
        }
    }
    free(full);
    free(all_linear);
    free(host);
    free(ids);
    lc_linattn_free(lin);
    lc_model_close(m);
    lc_test_backend_free(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompts_cpu),
        cmocka_unit_test(test_prompts_ref),
        cmocka_unit_test(test_pieces_cpu),
        cmocka_unit_test(test_pieces_ref),
        cmocka_unit_test(test_add_state_kernel),
        cmocka_unit_test(test_state_bytes),
        cmocka_unit_test(test_rope_tables_constant),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_lolcats_folder),
        cmocka_unit_test(test_softmax_layers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    printf("largest |session - parallel forward| of a logit: %.3g\n", worst_diff);
    return failed;
}
