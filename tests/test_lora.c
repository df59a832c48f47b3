/*
 * Stage 2: the backward of the whole linearized model with LoRA.
 *
 *  - finite differences through a tiny random Llama (2 layers, C 16, 4
 *    heads, 2 KV heads of 4, FFN 24, V 37, T 9, window 4, f 3): the loss is
 *    evaluated in double with the double-precision reference kernels, and
 *    its central differences are compared with the analytic gradients of
 *    every LoRA A and B, the feature maps and theta on the ref and cpu
 *    backends, in both window modes, with and without LoRA dropout;
 *  - the same for the lora-only stage (LoRA on the original model): its
 *    attention in hybrid form (lc_ft_softmax_attention, with random window
 *    factors and feature maps that must not matter) against a loss in
 *    double with the true softmax attention;
 *  - --recompute gives bit-identical gradients, and so do two pipeline
 *    stages (a layer each) handing on the residual stream and its gradient;
 *  - golden loss and gradients of stories260K from an independent PyTorch
 *    implementation (data/gen/make_lora_golden.py);
 *  - the LoRA forward in row chunks, a zero adapter changes nothing;
 *  - adapter files: round trip, the merged model (adapter folded into the
 *    weights) gives the linearized logits of base + adapter, and bad files
 *    get clear errors.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/finetune.h"
#include "core/lora.h"
#include "core/model.h"
#include "core/ref/ref_f64.h"
#include "core/ref/ref_hybrid_f64.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "tests/lc_test.h"

/* the tiny model */
enum { TL = 2, TC = 16, TH = 4, TKV = 2, TD = 4, TFF = 24, TV = 37, TT = 9, TB = 2, TW = 4,
       TF = 3, TR = 2 };
#define TEPS 1e-5f
#define TALPHA 3.0
/* a third "mode" of the tests: the lora-only stage's softmax attention */
#define MODE_SOFTMAX 2

/* ------------------------------------------------------------ tiny model */

struct tiny_weights {
    float *embed;    /* [V, C] */
    float *lm_head;  /* [V, C] */
    float *final_norm;
    float *attn_norm[TL], *wq[TL], *wk[TL], *wv[TL], *wo[TL];
    float *ffn_norm[TL], *wg[TL], *wu[TL], *wd[TL];
};

static struct tiny_weights tw;
static char tiny_dir[600];

static void add_tensor(struct lc_st_writer *w, const char *name, int64_t r, int64_t c,
                       const float *data)
{
    struct lc_error err = {0};
    int64_t shape[2] = {r, c};
    if (lc_st_writer_add(w, name, LC_DTYPE_F32, c > 0 ? 2 : 1, shape, data, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
}

static float *rand_matrix(size_t n, uint64_t seed, float std)
{
    float *p = lc_test_new_f32(n);
    lc_test_fill_normal(p, n, seed, std);
    return p;
}

static float *rand_norm(size_t n, uint64_t seed)
{
    float *p = lc_test_new_f32(n);
    lc_test_fill_uniform(p, n, seed, 0.8f, 1.2f);
    return p;
}

/* A random Llama written as a Hugging Face folder (untied lm_head). */
static const char *tiny_model(void)
{
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    char path[700];
    char name[128];

    if (tiny_dir[0] != '\0') {
        return tiny_dir;
    }
    snprintf(tiny_dir, sizeof(tiny_dir), "%s/tiny", lc_test_tmpdir());
    assert_int_equal(mkdir(tiny_dir, 0777), 0);
    snprintf(path, sizeof(path), "%s/config.json", tiny_dir);
    lc_test_write_text(
        path, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
              " \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2,\n"
              " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 4,\n"
              " \"vocab_size\": 37, \"max_position_embeddings\": 64,\n"
              " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,\n"
              " \"tie_word_embeddings\": false, \"hidden_act\": \"silu\",\n"
              " \"torch_dtype\": \"float32\"}\n");
    tw.embed = rand_matrix((size_t)TV * TC, 1, 1.0f);
    tw.lm_head = rand_matrix((size_t)TV * TC, 2, 0.5f);
    tw.final_norm = rand_norm(TC, 3);
    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    add_tensor(w, "model.embed_tokens.weight", TV, TC, tw.embed);
    add_tensor(w, "lm_head.weight", TV, TC, tw.lm_head);
    add_tensor(w, "model.norm.weight", TC, 0, tw.final_norm);
    for (int l = 0; l < TL; l++) {
        uint64_t s = 100 + 20 * (uint64_t)l;
        tw.attn_norm[l] = rand_norm(TC, s + 1);
        tw.wq[l] = rand_matrix((size_t)TH * TD * TC, s + 2, 0.4f);
        tw.wk[l] = rand_matrix((size_t)TKV * TD * TC, s + 3, 0.4f);
        tw.wv[l] = rand_matrix((size_t)TKV * TD * TC, s + 4, 0.4f);
        tw.wo[l] = rand_matrix((size_t)TC * TH * TD, s + 5, 0.4f);
        tw.ffn_norm[l] = rand_norm(TC, s + 6);
        tw.wg[l] = rand_matrix((size_t)TFF * TC, s + 7, 0.4f);
        tw.wu[l] = rand_matrix((size_t)TFF * TC, s + 8, 0.4f);
        tw.wd[l] = rand_matrix((size_t)TC * TFF, s + 9, 0.3f);
#define LAYER_T(part, r, c, data)                                              \
    do {                                                                       \
        snprintf(name, sizeof(name), "model.layers.%d.%s", l, part);           \
        add_tensor(w, name, r, c, data);                                       \
    } while (0)
        LAYER_T("input_layernorm.weight", TC, 0, tw.attn_norm[l]);
        LAYER_T("self_attn.q_proj.weight", TH * TD, TC, tw.wq[l]);
        LAYER_T("self_attn.k_proj.weight", TKV * TD, TC, tw.wk[l]);
        LAYER_T("self_attn.v_proj.weight", TKV * TD, TC, tw.wv[l]);
        LAYER_T("self_attn.o_proj.weight", TC, TH * TD, tw.wo[l]);
        LAYER_T("post_attention_layernorm.weight", TC, 0, tw.ffn_norm[l]);
        LAYER_T("mlp.gate_proj.weight", TFF, TC, tw.wg[l]);
        LAYER_T("mlp.up_proj.weight", TFF, TC, tw.wu[l]);
        LAYER_T("mlp.down_proj.weight", TC, TFF, tw.wd[l]);
#undef LAYER_T
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", tiny_dir);
    if (lc_st_writer_write(w, path, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_st_writer_free(w);
    return tiny_dir;
}

/* ------------------------------------------------------------ the setup */

struct setup {
    struct lc_backend *be;
    struct lc_llama *m;
    struct lc_linattn *lin;
    struct lc_lora *lora;
    float *lin_host;   /* the parameters as set */
    float *lora_host;
    int32_t ids[TB * TT];
    int32_t targets[TB * TT];
    int train_fmaps;
};

static void open_setup(struct setup *s, const struct lc_backend_ops *ops, int mode,
                       double dropout)
{
    struct lc_error err = {0};
    struct lc_linattn_cfg lcfg = {.feature_dim = TF, .window = TW, .mode = mode};
    struct lc_lora_cfg rcfg = {.rank = TR, .alpha = TALPHA, .dropout = dropout,
                               .targets = LC_LORA_Q | LC_LORA_K | LC_LORA_V | LC_LORA_O};
    uint32_t r = 12345;

    memset(s, 0, sizeof(*s));
    s->be = lc_test_backend(ops);
    if (lc_llama_load(&s->m, tiny_model(), s->be, &err) != LC_OK ||
        (mode == MODE_SOFTMAX ? lc_ft_softmax_attention(&s->lin, s->m, TT, &err)
                              : lc_linattn_new(&s->lin, s->m, &lcfg, &err)) != LC_OK ||
        lc_lora_new(&s->lora, s->m, &rcfg, 7, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    /* feature maps and window factors away from their init; adapters with
     * B != 0, so that every gradient is non-zero */
    s->lin_host = rand_matrix(s->lin->n_params, 31, 0.6f);
    for (int l = 0; l < TL; l++) {
        lc_test_fill_uniform(lc_linattn_theta(s->lin, s->lin_host, l), TH, 32 + (uint64_t)l,
                             -1.5f, 1.5f);
    }
    s->train_fmaps = mode != MODE_SOFTMAX; /* as the stages do */
    lc_linattn_upload(s->lin, s->lin_host);
    s->lora_host = rand_matrix(s->lora->n_params, 33, 0.3f);
    s->be->ops->upload(s->be, s->lora->params, s->lora_host, s->lora->n_params * sizeof(float));
    s->m->lora = s->lora;
    for (int i = 0; i < TB * TT; i++) {
        r = r * 1103515245u + 12345u;
        s->ids[i] = (int32_t)((r >> 8) % TV);
        r = r * 1103515245u + 12345u;
        /* about one target in five ignored */
        s->targets[i] = (r >> 8) % 5 == 0 ? -1 : (int32_t)((r >> 12) % TV);
    }
}

static void close_setup(struct setup *s)
{
    lc_lora_free(s->lora);
    lc_linattn_free(s->lin);
    lc_llama_free(s->m);
    lc_test_backend_free(s->be);
    free(s->lin_host);
    free(s->lora_host);
}

/* One forward/backward: loss and the gradients (host copies). */
static double run_grads(struct setup *s, int recompute, uint64_t drop_seed, float *lora_g,
                        float *lin_g)
{
    struct lc_error err = {0};
    struct lc_ft *ft = NULL;
    double sum = 0.0;
    int64_t count = 0;

    if (lc_ft_new(&ft, s->m, s->lin, s->lora, TB * TT, recompute, s->train_fmaps, &err) !=
        LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_ft_zero_grads(ft);
    s->lora->train = 1;
    s->lora->drop_seed = drop_seed;
    if (lc_ft_microbatch(ft, s->ids, s->targets, TB, TT, 1, 1.0, &sum, &count, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    s->lora->train = 0;
    s->be->ops->download(s->be, lora_g, ft->lora_grads, s->lora->n_params * sizeof(float));
    if (s->train_fmaps) {
        s->be->ops->download(s->be, lin_g, ft->lin_grads, s->lin->n_params * sizeof(float));
    }
    lc_ft_free(ft);
    assert_true(count > 0);
    return sum / (double)count;
}

/* ------------------------------------------------ the loss in double */

struct f64_model {
    const struct setup *s;
    int mode;
    int softmax_layer;  /* the layer that keeps softmax attention, or -1 */
    double p;           /* dropout */
    uint64_t drop_seed;
    double *lora;       /* same layout as the LoRA arena */
    double *lin;        /* same layout as the feature-map arena */
    double *norms[2 * TL + 1];
};

static void lora_f64(const struct f64_model *f, int l, int t, const double *x, double *y, int N)
{
    const struct lc_lora *lo = f->s->lora;
    const int in = lo->in[t];
    const int out = lo->out[t];
    const size_t off = (size_t)l * lo->layer_size + lo->off[t];
    const double *A = f->lora + off;
    const double *B = A + (size_t)TR * in;
    double *xd = lc_test_new_f64((size_t)N * in);
    double u[TB * TT * TR];

    if (f->p > 0) {
        lc_ref_dropout_f64(NULL, xd, x, (int64_t)N * in, f->p,
                           lc_lora_dropout_seed(f->drop_seed, l, t));
    } else {
        memcpy(xd, x, (size_t)N * in * sizeof(double));
    }
    lc_ref_gemm_f64(NULL, 0, 1, N, TR, in, 1.0, xd, in, A, in, 0.0, u, TR);
    lc_ref_gemm_f64(NULL, 0, 1, N, out, TR, TALPHA / TR, u, TR, B, TR, 1.0, y, out);
    free(xd);
}

static double loss_f64(const struct f64_model *f)
{
    const struct setup *s = f->s;
    const struct lc_linattn *lin = s->lin;
    const int N = TB * TT, HD = TH * TD, KD = TKV * TD, HF = TH * 2 * TF;
    const struct lc_attn_shape shp = {.B = TB, .T = TT, .H = TH, .Hkv = TKV, .D = TD, .F = 2 * TF,
                                      .window = TW, .mode = f->mode};
    double *x = lc_test_new_f64((size_t)N * TC), *xn = lc_test_new_f64((size_t)N * TC);
    double *q = lc_test_new_f64((size_t)N * HD), *k = lc_test_new_f64((size_t)N * KD);
    double *v = lc_test_new_f64((size_t)N * KD);
    double *fq = lc_test_new_f64((size_t)N * HF), *fk = lc_test_new_f64((size_t)N * HF);
    double *att = lc_test_new_f64((size_t)N * HD);
    double *gate = lc_test_new_f64((size_t)N * TFF), *up = lc_test_new_f64((size_t)N * TFF);
    double *logits = lc_test_new_f64((size_t)N * TV), *rows = lc_test_new_f64(N);
    int32_t pos[TB * TT];
    double sum = 0.0;
    int count = 0;

    for (int i = 0; i < N; i++) {
        pos[i] = i % TT;
    }
    lc_ref_embedding_fwd_f64(NULL, x, s->ids, tw.embed, LC_DTYPE_F32, N, TC);
    for (int l = 0; l < TL; l++) {
        lc_ref_rmsnorm_fwd_f64(NULL, xn, NULL, x, f->norms[2 * l], N, TC, TEPS);
        lc_ref_linear_fwd_f64(NULL, q, xn, tw.wq[l], LC_DTYPE_F32, N, TC, HD, 0.0);
        lc_ref_linear_fwd_f64(NULL, k, xn, tw.wk[l], LC_DTYPE_F32, N, TC, KD, 0.0);
        lc_ref_linear_fwd_f64(NULL, v, xn, tw.wv[l], LC_DTYPE_F32, N, TC, KD, 0.0);
        lora_f64(f, l, LC_LORA_TQ, xn, q, N);
        lora_f64(f, l, LC_LORA_TK, xn, k, N);
        lora_f64(f, l, LC_LORA_TV, xn, v, N);
        lc_ref_rope_fwd_f64(NULL, q, pos, s->m->rope_cos, s->m->rope_sin, N, TH, TD);
        lc_ref_rope_fwd_f64(NULL, k, pos, s->m->rope_cos, s->m->rope_sin, N, TKV, TD);
        if (f->mode == MODE_SOFTMAX || l == f->softmax_layer) {
            lc_ref_attn_fwd_f64(NULL, att, q, k, v, TB, TT, TT, TH, TKV, TD, 0);
        } else {
            const double *wq = f->lin + (size_t)l * lin->layer_size;
            const double *wk = wq + (size_t)TH * TD * TF;
            const double *theta = wk + (size_t)TH * TD * TF;
            lc_ref_fmap_fwd_f64(fq, q, wq, N, TH, TH, TD, TF, 1e-12);
            lc_ref_fmap_fwd_f64(fk, k, wk, N, TH, TKV, TD, TF, 1e-12);
            lc_ref_hybrid_fwd_f64(att, NULL, NULL, q, k, v, fq, fk, theta, &shp);
        }
        lc_ref_linear_fwd_f64(NULL, x, att, tw.wo[l], LC_DTYPE_F32, N, HD, TC, 1.0);
        lora_f64(f, l, LC_LORA_TO, att, x, N);
        lc_ref_rmsnorm_fwd_f64(NULL, xn, NULL, x, f->norms[2 * l + 1], N, TC, TEPS);
        lc_ref_linear_fwd_f64(NULL, gate, xn, tw.wg[l], LC_DTYPE_F32, N, TC, TFF, 0.0);
        lc_ref_linear_fwd_f64(NULL, up, xn, tw.wu[l], LC_DTYPE_F32, N, TC, TFF, 0.0);
        lc_ref_swiglu_fwd_f64(NULL, gate, gate, up, (int64_t)N * TFF);
        lc_ref_linear_fwd_f64(NULL, x, gate, tw.wd[l], LC_DTYPE_F32, N, TFF, TC, 1.0);
    }
    lc_ref_rmsnorm_fwd_f64(NULL, xn, NULL, x, f->norms[2 * TL], N, TC, TEPS);
    lc_ref_linear_fwd_f64(NULL, logits, xn, tw.lm_head, LC_DTYPE_F32, N, TC, TV, 0.0);
    lc_ref_xent_fwd_bwd_f64(NULL, rows, NULL, logits, s->targets, N, TV, 0.0);
    for (int i = 0; i < N; i++) {
        if (s->targets[i] >= 0) {
            sum += rows[i];
            count++;
        }
    }
    {
        double *bufs[] = {x, xn, q, k, v, fq, fk, att, gate, up, logits, rows};
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            free(bufs[i]);
        }
    }
    return sum / count;
}

static double *norm_f64(const float *w)
{
    double *d = lc_test_new_f64(TC);
    for (int i = 0; i < TC; i++) {
        d[i] = w[i];
    }
    return d;
}

/* Central differences of loss_f64 over every entry of arena[0..n) in
 * double (step 1e-5: truncation ~1e-10, rounding ~1e-11 on a loss of
 * ~4), against the float analytic gradients: per tensor of the arena
 * (ranges [lo, hi)), |g - fd| <= 5e-5 * max|fd| + 1e-3 |fd|, the float
 * backward's rounding through two layers being ~1e-6 relative.  Returns
 * the number of mismatches. */
static double fd_worst; /* largest |g - fd| / max|fd| seen */

static size_t check_fd(struct f64_model *f, double *arena, const float *grad, size_t lo,
                       size_t hi, const char *what)
{
    const double h = 1e-5;
    double *fd = lc_test_new_f64(hi - lo);
    double scale = 0.0;
    size_t bad = 0;

    for (size_t i = lo; i < hi; i++) {
        double keep = arena[i];
        double lp, lm;
        arena[i] = keep + h;
        lp = loss_f64(f);
        arena[i] = keep - h;
        lm = loss_f64(f);
        arena[i] = keep;
        fd[i - lo] = (lp - lm) / (2 * h);
        scale = fabs(fd[i - lo]) > scale ? fabs(fd[i - lo]) : scale;
    }
    /* the test must be able to fail: every tensor has a real gradient */
    if (!(scale > 1e-6)) {
        fprintf(stderr, "%s: the finite differences are all ~0 (max %g)\n", what, scale);
        bad++;
    }
    for (size_t i = lo; i < hi; i++) {
        double d = fabs(grad[i] - fd[i - lo]);
        fd_worst = d / scale > fd_worst ? d / scale : fd_worst;
        if (d > 5e-5 * scale + 1e-3 * fabs(fd[i - lo])) {
            if (bad < 5) {
                fprintf(stderr, "%s[%zu]: analytic %.8g, finite differences %.8g\n", what,
                        i - lo, grad[i], fd[i - lo]);
            }
            bad++;
        }
    }
    free(fd);
    return bad;
}

/* softmax_layer: a layer that keeps softmax attention (-1: none); its
 * feature maps get no gradient */
static void fd_case(const struct lc_backend_ops *ops, int mode, double dropout,
                    int softmax_layer)
{
    struct setup s;
    struct f64_model f;
    const uint64_t drop_seed = 0x5eedull;
    float *lora_g;
    float *lin_g;
    double loss;
    double ref_loss;
    size_t bad = 0;
    char what[96];

    open_setup(&s, ops, mode, dropout);
    if (softmax_layer >= 0) {
        struct lc_error err = {0};
        assert_int_equal(lc_linattn_set_softmax(s.lin, &softmax_layer, 1, &err), LC_OK);
    }
    fd_worst = 0.0;
    lora_g = lc_test_new_f32(s.lora->n_params);
    lin_g = lc_test_new_f32(s.lin->n_params);
    loss = run_grads(&s, 0, drop_seed, lora_g, lin_g);

    memset(&f, 0, sizeof(f));
    f.s = &s;
    f.mode = mode;
    f.softmax_layer = softmax_layer;
    f.p = dropout;
    f.drop_seed = drop_seed;
    f.lora = lc_test_new_f64(s.lora->n_params);
    f.lin = lc_test_new_f64(s.lin->n_params);
    for (size_t i = 0; i < s.lora->n_params; i++) {
        f.lora[i] = s.lora_host[i];
    }
    for (size_t i = 0; i < s.lin->n_params; i++) {
        f.lin[i] = s.lin_host[i];
    }
    for (int l = 0; l < TL; l++) {
        f.norms[2 * l] = norm_f64(tw.attn_norm[l]);
        f.norms[2 * l + 1] = norm_f64(tw.ffn_norm[l]);
    }
    f.norms[2 * TL] = norm_f64(tw.final_norm);

    /* the float forward is the same function */
    ref_loss = loss_f64(&f);
    fprintf(stderr, "%s %s dropout %g: loss %.9g (float) vs %.9g (double)\n", ops->name,
            mode == MODE_SOFTMAX       ? "softmax"
            : mode == LC_WINDOW_SLIDING ? "sliding"
                                        : "terraced",
            dropout, loss, ref_loss);
    assert_true(fabs(loss - ref_loss) < 1e-5 * fabs(ref_loss));

    for (int l = 0; l < TL; l++) {
        for (int t = 0; t < LC_LORA_NT; t++) {
            const struct lc_lora *lo = s.lora;
            size_t a0 = (size_t)l * lo->layer_size + lo->off[t];
            size_t b0 = a0 + (size_t)TR * lo->in[t];
            size_t b1 = b0 + (size_t)lo->out[t] * TR;
            snprintf(what, sizeof(what), "layer %d lora %c A", l, "qkvo"[t]);
            bad += check_fd(&f, f.lora, lora_g, a0, b0, what);
            snprintf(what, sizeof(what), "layer %d lora %c B", l, "qkvo"[t]);
            bad += check_fd(&f, f.lora, lora_g, b0, b1, what);
        }
        if (l == softmax_layer) {
            /* no feature maps in use: their gradient is exactly zero */
            for (size_t i = 0; i < s.lin->layer_size; i++) {
                bad += lin_g[(size_t)l * s.lin->layer_size + i] != 0.0f;
            }
        } else if (mode != MODE_SOFTMAX) {
            size_t w0 = (size_t)l * s.lin->layer_size;
            size_t w1 = w0 + (size_t)TH * TD * TF;
            size_t w2 = w1 + (size_t)TH * TD * TF;
            snprintf(what, sizeof(what), "layer %d feature map q", l);
            bad += check_fd(&f, f.lin, lin_g, w0, w1, what);
            snprintf(what, sizeof(what), "layer %d feature map k", l);
            bad += check_fd(&f, f.lin, lin_g, w1, w2, what);
            snprintf(what, sizeof(what), "layer %d theta", l);
            bad += check_fd(&f, f.lin, lin_g, w2, w2 + TH, what);
        }
    }
    fprintf(stderr, "  largest |analytic - finite differences| / tensor scale: %.2g\n",
            fd_worst);
    assert_int_equal(bad, 0);

    for (int i = 0; i < 2 * TL + 1; i++) {
        free(f.norms[i]);
    }
    free(f.lora);
    free(f.lin);
    free(lora_g);
    free(lin_g);
    close_setup(&s);
}

static void test_fd_ref_terraced(void **state)
{
    (void)state;
    fd_case(&lc_ref_ops, LC_WINDOW_TERRACED, 0.0, -1);
}

static void test_fd_ref_sliding(void **state)
{
    (void)state;
    fd_case(&lc_ref_ops, LC_WINDOW_SLIDING, 0.0, -1);
}

static void test_fd_cpu_terraced(void **state)
{
    (void)state;
    fd_case(&lc_cpu_ops, LC_WINDOW_TERRACED, 0.0, -1);
}

static void test_fd_cpu_sliding(void **state)
{
    (void)state;
    fd_case(&lc_cpu_ops, LC_WINDOW_SLIDING, 0.0, -1);
}

/* the lora-only stage: LoRA on the original model */
static void test_fd_softmax(void **state)
{
    (void)state;
    fd_case(&lc_ref_ops, MODE_SOFTMAX, 0.0, -1);
    fd_case(&lc_cpu_ops, MODE_SOFTMAX, 0.0, -1);
    fd_case(&lc_cpu_ops, MODE_SOFTMAX, 0.25, -1);
}

/* dropout masks are fixed by the seed, so the loss is a smooth function of
 * the parameters and finite differences apply */
static void test_fd_dropout(void **state)
{
    (void)state;
    fd_case(&lc_cpu_ops, LC_WINDOW_TERRACED, 0.25, -1);
    fd_case(&lc_ref_ops, LC_WINDOW_SLIDING, 0.25, -1);
}

/* a layer that keeps softmax attention (--softmax-layers): the gradient is
 * that of softmax attention, against the double model computing it with
 * the teacher's attn_fwd; the other layer stays linearized */
static void test_fd_softmax_layer(void **state)
{
    (void)state;
    fd_case(&lc_cpu_ops, LC_WINDOW_TERRACED, 0.0, 0);
    fd_case(&lc_ref_ops, LC_WINDOW_SLIDING, 0.0, 1);
}

/* --recompute: the same gradients, bit for bit */
static void test_recompute(void **state)
{
    struct setup s;
    float *g1, *g2, *h1, *h2;
    double l1, l2;

    (void)state;
    for (int be = 0; be < 2; be++) {
        open_setup(&s, be == 0 ? &lc_cpu_ops : &lc_ref_ops, LC_WINDOW_TERRACED, 0.25);
        g1 = lc_test_new_f32(s.lora->n_params);
        g2 = lc_test_new_f32(s.lora->n_params);
        h1 = lc_test_new_f32(s.lin->n_params);
        h2 = lc_test_new_f32(s.lin->n_params);
        l1 = run_grads(&s, 0, 99, g1, h1);
        l2 = run_grads(&s, 1, 99, g2, h2);
        assert_true(l1 == l2);
        assert_memory_equal(g1, g2, s.lora->n_params * sizeof(float));
        assert_memory_equal(h1, h2, s.lin->n_params * sizeof(float));
        free(g1);
        free(g2);
        free(h1);
        free(h2);
        close_setup(&s);
    }
}

/* ------------------------------------------------ pipeline stages */

/* Two stages in one process: layer 0 in stage a, layer 1 in stage b.  Stage
 * a's hand-over of the residual stream runs stage b right there, which
 * hands back the gradient of that stream. */
struct two_stages {
    struct setup *s;
    struct lc_ft *b;
    float *x, *dx;     /* host [N, C] */
    double b_sum;
    int64_t b_count;
};

static lc_status stage_pipe(void *user, int op, float *x, int N, struct lc_error *err)
{
    struct two_stages *p = user;
    struct lc_backend *be = p->s->be;
    const size_t bytes = (size_t)N * TC * sizeof(float);

    switch (op) {
    case LC_FT_SEND_X: /* stage a */
        be->ops->download(be, p->x, x, bytes);
        return lc_ft_microbatch(p->b, p->s->ids, p->s->targets, TB, TT, 1, 1.0, &p->b_sum,
                                &p->b_count, err);
    case LC_FT_RECV_X: /* stage b */
        be->ops->upload(be, x, p->x, bytes);
        return LC_OK;
    case LC_FT_SEND_DX: /* stage b */
        be->ops->download(be, p->dx, x, bytes);
        return LC_OK;
    default: /* stage a */
        be->ops->upload(be, x, p->dx, bytes);
        return LC_OK;
    }
}

/* The stages' gradients (each of its own layer) and loss are those of the
 * whole model, bit for bit, and each stage holds less than the whole. */
static void test_pipeline_stages(void **state)
{
    (void)state;
    for (int be = 0; be < 2; be++) {
        for (int recompute = 0; recompute < 2; recompute++) {
            struct lc_error err = {0};
            struct setup s;
            struct two_stages p;
            struct lc_ft *a = NULL;
            float *g, *h, *ga, *ha, *gb, *hb;
            double loss, a_sum = 0.0;
            int64_t a_count = 0;
            size_t lsz, fsz;

            open_setup(&s, be == 0 ? &lc_cpu_ops : &lc_ref_ops, LC_WINDOW_TERRACED, 0.25);
            lsz = s.lora->layer_size;
            fsz = s.lin->layer_size;
            g = lc_test_new_f32(s.lora->n_params);
            h = lc_test_new_f32(s.lin->n_params);
            ga = lc_test_new_f32(s.lora->n_params);
            ha = lc_test_new_f32(s.lin->n_params);
            gb = lc_test_new_f32(s.lora->n_params);
            hb = lc_test_new_f32(s.lin->n_params);
            loss = run_grads(&s, recompute, 99, g, h);

            memset(&p, 0, sizeof(p));
            p.s = &s;
            p.x = lc_test_new_f32((size_t)TB * TT * TC);
            p.dx = lc_test_new_f32((size_t)TB * TT * TC);
            if (lc_ft_new_layers(&a, s.m, s.lin, s.lora, TB * TT, recompute, 1, 0, 1, &err) !=
                    LC_OK ||
                lc_ft_new_layers(&p.b, s.m, s.lin, s.lora, TB * TT, recompute, 1, 1, TL, &err) !=
                    LC_OK) {
                fail_msg("%s", err.msg);
            }
            assert_true(lc_ft_bytes_layers(s.m, s.lin, s.lora, TB * TT, recompute, 1, 0, 1) <
                        lc_ft_bytes(s.m, s.lin, s.lora, TB * TT, recompute, 1));
            a->pipe = p.b->pipe = stage_pipe;
            a->pipe_user = p.b->pipe_user = &p;
            lc_ft_zero_grads(a);
            lc_ft_zero_grads(p.b);
            s.lora->train = 1;
            s.lora->drop_seed = 99;
            if (lc_ft_microbatch(a, s.ids, s.targets, TB, TT, 1, 1.0, &a_sum, &a_count, &err) !=
                LC_OK) {
                fail_msg("%s", err.msg);
            }
            s.lora->train = 0;
            /* the loss is the last stage's */
            assert_true(a_sum == 0.0);
            assert_true(a_count == p.b_count);
            assert_true(p.b_sum / (double)p.b_count == loss);
            s.be->ops->download(s.be, ga, a->lora_grads, s.lora->n_params * sizeof(float));
            s.be->ops->download(s.be, ha, a->lin_grads, s.lin->n_params * sizeof(float));
            s.be->ops->download(s.be, gb, p.b->lora_grads, s.lora->n_params * sizeof(float));
            s.be->ops->download(s.be, hb, p.b->lin_grads, s.lin->n_params * sizeof(float));
            assert_memory_equal(ga, g, lsz * sizeof(float));
            assert_memory_equal(gb + lsz, g + lsz, lsz * sizeof(float));
            assert_memory_equal(ha, h, fsz * sizeof(float));
            assert_memory_equal(hb + fsz, h + fsz, fsz * sizeof(float));
            lc_ft_free(a);
            lc_ft_free(p.b);
            free(p.x);
            free(p.dx);
            free(g);
            free(h);
            free(ga);
            free(ha);
            free(gb);
            free(hb);
            close_setup(&s);
        }
    }
}

/* ------------------------------------------------ LoRA forward details */

static void test_forward_chunks_and_zero(void **state)
{
    struct setup s;
    struct lc_error err = {0};
    const int N = 150; /* more rows than the 64 of the initial scratch */
    float *x = lc_test_new_f32((size_t)N * TC);
    float *y1 = lc_test_new_f32((size_t)N * TH * TD);
    float *y2 = lc_test_new_f32((size_t)N * TH * TD);
    struct lc_lora *zero = NULL;
    struct lc_lora_cfg rcfg = {.rank = 4, .alpha = 8, .dropout = 0, .targets = LC_LORA_Q};

    (void)state;
    open_setup(&s, &lc_cpu_ops, LC_WINDOW_TERRACED, 0.0);
    lc_test_fill_normal(x, (size_t)N * TC, 5, 1.0f);
    assert_int_equal(s.lora->cap_rows, 64);
    lc_lora_forward(s.lora, 1, LC_LORA_TQ, x, y1, N);
    assert_int_equal(lc_lora_reserve(s.lora, N, 0, &err), LC_OK);
    lc_lora_forward(s.lora, 1, LC_LORA_TQ, x, y2, N);
    assert_int_equal(lc_test_check_close("chunked", y1, y2, (size_t)N * TH * TD, 1e-6, 1e-6), 0);
    /* a fresh adapter (B = 0) adds nothing; a missing target is skipped */
    assert_int_equal(lc_lora_new(&zero, s.m, &rcfg, 1, &err), LC_OK);
    memcpy(y1, y2, (size_t)N * TH * TD * sizeof(float));
    lc_lora_forward(zero, 0, LC_LORA_TQ, x, y2, N);
    lc_lora_forward(zero, 0, LC_LORA_TK, x, y2, N);
    assert_memory_equal(y1, y2, (size_t)N * TH * TD * sizeof(float));
    /* A is U(-1/sqrt(in), 1/sqrt(in)), the same for the same seed */
    {
        float *a = lc_test_new_f32(zero->n_params);
        struct lc_lora *again = NULL;
        float *b = lc_test_new_f32(zero->n_params);
        float bound = 1.0f / sqrtf((float)TC);
        float lo = 1, hi = -1;
        s.be->ops->download(s.be, a, zero->params, zero->n_params * sizeof(float));
        for (int l = 0; l < TL; l++) {
            const float *A = lc_lora_A(zero, a, l, LC_LORA_TQ);
            const float *B = lc_lora_B(zero, a, l, LC_LORA_TQ);
            for (int i = 0; i < 4 * TC; i++) {
                assert_true(fabsf(A[i]) <= bound);
                lo = A[i] < lo ? A[i] : lo;
                hi = A[i] > hi ? A[i] : hi;
            }
            for (int i = 0; i < TH * TD * 4; i++) {
                assert_true(B[i] == 0.0f);
            }
        }
        assert_true(lo < -0.5f * bound && hi > 0.5f * bound);
        assert_int_equal(lc_lora_new(&again, s.m, &rcfg, 1, &err), LC_OK);
        s.be->ops->download(s.be, b, again->params, zero->n_params * sizeof(float));
        assert_memory_equal(a, b, zero->n_params * sizeof(float));
        lc_lora_free(again);
        assert_int_equal(lc_lora_new(&again, s.m, &rcfg, 2, &err), LC_OK);
        s.be->ops->download(s.be, b, again->params, zero->n_params * sizeof(float));
        assert_memory_not_equal(a, b, zero->n_params * sizeof(float));
        lc_lora_free(again);
        free(a);
        free(b);
    }
    lc_lora_free(zero);
    free(x);
    free(y1);
    free(y2);
    close_setup(&s);
}

/* ------------------------------------------------ golden gradients */

static const struct lc_tensor_view *need(const struct lc_st_file *f, const char *name)
{
    const struct lc_tensor_view *t = lc_st_find(f, name);
    if (t == NULL) {
        fail_msg("golden file lacks %s", name);
    }
    return t;
}

static void golden_case(struct lc_backend *be, const struct lc_st_file *g, int mode)
{
    struct lc_error err = {0};
    const char *mname = mode == LC_WINDOW_SLIDING ? "sliding" : "terraced";
    const struct lc_tensor_view *ids = need(g, "ids");
    const struct lc_tensor_view *targets = need(g, "targets");
    const int B = (int)ids->shape[0];
    const int T = (int)ids->shape[1];
    const int32_t *config = need(g, "config")->data; /* window, rank, feature dim */
    const int W = config[0];
    const int rank = config[1];
    const double alpha = *(const float *)need(g, "alpha")->data;
    struct lc_linattn_cfg lcfg = {.feature_dim = config[2], .window = W, .mode = mode};
    struct lc_lora_cfg rcfg = {.rank = rank, .alpha = alpha, .dropout = 0,
                               .targets = LC_LORA_Q | LC_LORA_K | LC_LORA_V | LC_LORA_O};
    struct lc_llama *m = NULL;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_ft *ft = NULL;
    float *host;
    float *grads;
    double sum = 0.0, loss;
    int64_t count = 0;
    char name[160];
    size_t bad = 0;
    double worst = 0.0; /* largest |C - PyTorch| / tensor scale */
    int with_fmaps = mode == LC_WINDOW_TERRACED;

    if (lc_llama_load(&m, lc_test_data_path("models/stories260K-hf"), be, &err) != LC_OK ||
        lc_linattn_new(&lin, m, &lcfg, &err) != LC_OK ||
        lc_lora_new(&lora, m, &rcfg, 0, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    host = lc_test_new_f32(lin->n_params > lora->n_params ? lin->n_params : lora->n_params);
    grads = lc_test_new_f32(lin->n_params > lora->n_params ? lin->n_params : lora->n_params);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        snprintf(name, sizeof(name), "model.layers.%d.self_attn.feature_map_q.mlp.layer", l);
        memcpy(lc_linattn_wq(lin, host, l), need(g, name)->data, need(g, name)->nbytes);
        snprintf(name, sizeof(name), "model.layers.%d.self_attn.feature_map_k.mlp.layer", l);
        memcpy(lc_linattn_wk(lin, host, l), need(g, name)->data, need(g, name)->nbytes);
        snprintf(name, sizeof(name), "model.layers.%d.self_attn.window_factors", l);
        memcpy(lc_linattn_theta(lin, host, l), need(g, name)->data, need(g, name)->nbytes);
    }
    lc_linattn_upload(lin, host);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int t = 0; t < LC_LORA_NT; t++) {
            const struct lc_tensor_view *v;
            snprintf(name, sizeof(name), "lora.%d.%c.A", l, "qkvo"[t]);
            v = need(g, name);
            memcpy(lc_lora_A(lora, host, l, t), v->data, v->nbytes);
            snprintf(name, sizeof(name), "lora.%d.%c.B", l, "qkvo"[t]);
            v = need(g, name);
            memcpy(lc_lora_B(lora, host, l, t), v->data, v->nbytes);
        }
    }
    be->ops->upload(be, lora->params, host, lora->n_params * sizeof(float));
    m->lora = lora;
    if (lc_ft_new(&ft, m, lin, lora, B * T, 0, with_fmaps, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_ft_zero_grads(ft);
    if (lc_ft_microbatch(ft, ids->data, targets->data, B, T, 1, 1.0, &sum, &count, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    loss = sum / (double)count;
    snprintf(name, sizeof(name), "%s.loss", mname);
    {
        float want = *(const float *)need(g, name)->data;
        fprintf(stderr, "golden %s on %s: loss %.7f, PyTorch %.7f\n", mname, be->ops->name, loss,
                want);
        assert_true(fabs(loss - want) <= 1e-5 * fabs(want));
    }
    /* every gradient tensor within 1e-4 of its own largest entry */
    be->ops->download(be, grads, ft->lora_grads, lora->n_params * sizeof(float));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int t = 0; t < LC_LORA_NT; t++) {
            for (int ab = 0; ab < 2; ab++) {
                const struct lc_tensor_view *v;
                const float *got = ab == 0 ? lc_lora_A(lora, grads, l, t) : lc_lora_B(lora, grads, l, t);
                double scale = 0.0;
                snprintf(name, sizeof(name), "%s.grad.lora.%d.%c.%c", mname, l, "qkvo"[t],
                         "AB"[ab]);
                v = need(g, name);
                for (int64_t i = 0; i < v->numel; i++) {
                    double a = fabs(((const float *)v->data)[i]);
                    scale = a > scale ? a : scale;
                }
                assert_true(scale > 0);
                worst = fmax(worst, lc_test_max_abs_diff(got, v->data, (size_t)v->numel) / scale);
                bad += lc_test_check_close(name, got, v->data, (size_t)v->numel, 1e-4 * scale,
                                           0.0);
            }
        }
    }
    if (with_fmaps) {
        be->ops->download(be, grads, ft->lin_grads, lin->n_params * sizeof(float));
        for (int l = 0; l < m->cfg.n_layers; l++) {
            static const char *const parts[3] = {"feature_map_q", "feature_map_k", "theta"};
            for (int p = 0; p < 3; p++) {
                const struct lc_tensor_view *v;
                const float *got = p == 0   ? lc_linattn_wq(lin, grads, l)
                                   : p == 1 ? lc_linattn_wk(lin, grads, l)
                                            : lc_linattn_theta(lin, grads, l);
                double scale = 0.0;
                snprintf(name, sizeof(name), "%s.grad.%s.%d", mname, parts[p], l);
                v = need(g, name);
                for (int64_t i = 0; i < v->numel; i++) {
                    double a = fabs(((const float *)v->data)[i]);
                    scale = a > scale ? a : scale;
                }
                assert_true(scale > 0);
                worst = fmax(worst, lc_test_max_abs_diff(got, v->data, (size_t)v->numel) / scale);
                bad += lc_test_check_close(name, got, v->data, (size_t)v->numel, 1e-4 * scale,
                                           0.0);
            }
        }
    }
    fprintf(stderr, "  gradients: largest |C - PyTorch| / tensor scale %.2g\n", worst);
    assert_int_equal(bad, 0);
    lc_ft_free(ft);
    lc_lora_free(lora);
    lc_linattn_free(lin);
    lc_llama_free(m);
    free(host);
    free(grads);
}

static void test_golden(void **state)
{
    struct lc_error err = {0};
    struct lc_st_file *g = NULL;

    (void)state;
    if (lc_st_open(&g, lc_test_project_path("ref/lora_golden.safetensors"), &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    for (int b = 0; b < 2; b++) {
        struct lc_backend *be = lc_test_backend(b == 0 ? &lc_cpu_ops : &lc_ref_ops);
        golden_case(be, g, LC_WINDOW_TERRACED);
        golden_case(be, g, LC_WINDOW_SLIDING);
        lc_test_backend_free(be);
    }
    lc_st_close(g);
}

/* ------------------------------------------------ adapter files, merging */

/* A lolcats output folder for the tiny model: feature maps, config and a
 * random adapter (B != 0). */
static const char *make_out_dir(struct setup *s)
{
    static char dir[700];
    struct lc_error err = {0};
    char path[800];

    snprintf(dir, sizeof(dir), "%s/out", lc_test_tmpdir());
    mkdir(dir, 0777);
    snprintf(path, sizeof(path), "%s/lolcats_config.json", dir);
    lc_test_write_text(path, "{\"format\": \"lolcats\", \"format_version\": 1,\n"
                             " \"attention\": {\"type\": \"hedgehog_window\", \"feature_dim\": 3,\n"
                             "   \"window\": 4, \"window_mode\": \"terraced\"}}\n");
    snprintf(path, sizeof(path), "%s/feature_maps.safetensors", dir);
    if (lc_linattn_save(s->lin, s->lin_host, path, &err) != LC_OK ||
        lc_lora_save(s->lora, s->lora_host, dir, tiny_model(), &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    return dir;
}

static float *model_logits(struct lc_model *m, const int32_t *ids, int n)
{
    struct lc_error err = {0};
    float *out = lc_test_new_f32((size_t)n * TV);
    if (lc_model_logits(m, ids, 1, n, out, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    return out;
}

static void test_adapter_files_and_merge(void **state)
{
    struct setup s;
    struct lc_error err = {0};
    struct lc_lora *back = NULL;
    struct lc_model *base = NULL;
    struct lc_model *merged = NULL;
    const char *dir;
    char mdir[800];
    float *got;
    float *a, *b, *c, *d;
    int32_t ids[40];

    (void)state;
    open_setup(&s, &lc_cpu_ops, LC_WINDOW_TERRACED, 0.0);
    dir = make_out_dir(&s);
    /* round trip */
    assert_int_equal(lc_lora_load(&back, s.m, dir, &err), LC_OK);
    assert_int_equal(back->cfg.rank, TR);
    assert_true(back->cfg.alpha == TALPHA);
    assert_int_equal(back->cfg.targets, 15);
    got = lc_test_new_f32(back->n_params);
    s.be->ops->download(s.be, got, back->params, back->n_params * sizeof(float));
    assert_memory_equal(got, s.lora_host, back->n_params * sizeof(float));
    free(got);
    lc_lora_free(back);
    /* the merged model */
    snprintf(mdir, sizeof(mdir), "%s/merged", dir);
    {
        /* what a merge killed half-way leaves is cleared by the next one */
        char stale[900];
        assert_int_equal(mkdir(mdir, 0777), 0);
        snprintf(stale, sizeof(stale), "%s/model.safetensors.tmp.Ab3xYz", mdir);
        lc_test_write_text(stale, "half a file");
        if (lc_lora_merge(s.lora, s.lora_host, s.m, mdir, &err) != LC_OK) {
            fail_msg("%s", err.msg);
        }
        assert_int_not_equal(access(stale, F_OK), 0);
    }
    for (int i = 0; i < 40; i++) {
        ids[i] = (i * 7 + 3) % TV;
    }
    if (lc_model_open(&base, tiny_model(), s.be, &err) != LC_OK ||
        lc_model_open(&merged, mdir, s.be, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    a = model_logits(base, ids, 40);   /* teacher, base weights */
    b = model_logits(merged, ids, 40); /* teacher, merged weights */
    assert_true(lc_test_max_abs_diff(a, b, 40 * TV) > 1e-2);
    if (lc_model_load_lolcats(base, dir, &err) != LC_OK ||
        lc_model_load_lolcats(merged, dir, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    assert_true(lc_model_has_adapter(base));
    lc_model_use_adapter(merged, 0);
    free(a);
    free(b);
    a = model_logits(base, ids, 40);   /* linearized: base + adapter */
    b = model_logits(merged, ids, 40); /* linearized: merged weights, no adapter */
    fprintf(stderr, "adapter vs merged linearized logits: max abs diff %.3g\n",
            lc_test_max_abs_diff(a, b, 40 * TV));
    assert_int_equal(lc_test_check_close("merged", b, a, 40 * TV, 1e-4, 1e-4), 0);
    /* switching the adapter off and on, and the teacher */
    lc_model_use_adapter(base, 0);
    c = model_logits(base, ids, 40);
    assert_true(lc_test_max_abs_diff(a, c, 40 * TV) > 1e-2);
    lc_model_use_adapter(base, 1);
    lc_model_use_teacher(base, 1);
    d = model_logits(base, ids, 40);
    lc_model_use_teacher(base, 0);
    free(c);
    c = model_logits(base, ids, 40);
    assert_memory_equal(a, c, 40 * TV * sizeof(float));
    free(c);
    c = model_logits(merged, ids, 40);
    assert_memory_equal(b, c, 40 * TV * sizeof(float));
    {
        /* the adapter reaches decoding: a session fed 1, 5, then 34 tokens
         * gives the logits of the parallel forward; switching the adapter
         * off makes the session refuse to go on */
        struct lc_session *sess = NULL;
        float step[TV];
        static const int chunks[3] = {1, 5, 34};
        int done = 0;
        assert_int_equal(lc_session_new(&sess, base, 40, &err), LC_OK);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(lc_session_feed(sess, ids + done, chunks[i], step, &err), LC_OK);
            done += chunks[i];
            assert_int_equal(lc_test_check_close("session", step, a + (size_t)(done - 1) * TV, TV,
                                                 1e-4, 1e-4),
                             0);
        }
        lc_session_free(sess);
        assert_int_equal(lc_session_new(&sess, base, 40, &err), LC_OK);
        assert_int_equal(lc_session_feed(sess, ids, 3, step, &err), LC_OK);
        lc_model_use_adapter(base, 0);
        assert_int_equal(lc_session_feed(sess, ids + 3, 1, step, &err), LC_ERR_ARG);
        lc_model_use_adapter(base, 1);
        lc_session_free(sess);
    }
    {
        /* the teacher is the original model, adapter or not */
        struct lc_model *plain = NULL;
        float *e;
        assert_int_equal(lc_model_open(&plain, tiny_model(), s.be, &err), LC_OK);
        e = model_logits(plain, ids, 40);
        assert_memory_equal(d, e, 40 * TV * sizeof(float));
        free(e);
        lc_model_close(plain);
    }
    free(a);
    free(b);
    free(c);
    free(d);
    lc_model_close(base);
    lc_model_close(merged);
    close_setup(&s);
}

/* Bad adapter folders: a clear error each, never a crash. */
static void test_bad_adapters(void **state)
{
    static const struct {
        const char *config;
        const char *expect;
    } cases[] = {
        {"{\"peft_type\": \"PREFIX_TUNING\", \"r\": 2, \"lora_alpha\": 3, \"target_modules\": "
         "[\"q_proj\"]}",
         "peft_type"},
        {"{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 3, \"target_modules\": [\"q_proj\"]}",
         "\"r\""},
        {"{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": -1, \"target_modules\": "
         "[\"q_proj\"]}",
         "lora_alpha"},
        {"{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 3, \"target_modules\": "
         "[\"gate_proj\"]}",
         "gate_proj"},
        {"{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 3, \"target_modules\": [\"q_proj\"], "
         "\"use_dora\": true}",
         "plain LoRA"},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 3, \"target_modules\": [\"q_proj\"]}",
         "shape"},
        {"{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 3, \"target_modules\": [\"q_proj\"], "
         "\"lora_dropout\": 1.5}",
         "lora_dropout"},
        {"{\"peft_type\": \"LORA\", \"r\": 2, ", "adapter_config.json"},
    };
    struct setup s;
    struct lc_error err = {0};
    struct lc_lora *lo = NULL;
    const char *dir;
    char path[900];

    (void)state;
    open_setup(&s, &lc_ref_ops, LC_WINDOW_TERRACED, 0.0);
    dir = make_out_dir(&s);
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lc_test_write_text(path, cases[i].config);
        memset(&err, 0, sizeof(err));
        assert_int_not_equal(lc_lora_load(&lo, s.m, dir, &err), LC_OK);
        assert_null(lo);
        if (strstr(err.msg, cases[i].expect) == NULL) {
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].expect);
        }
    }
    /* a weight file with integer tensors, one with a NaN, then a truncated one */
    lc_lora_save(s.lora, s.lora_host, dir, NULL, &err);
    {
        struct lc_st_file *f = NULL;
        struct lc_st_writer *w = NULL;
        snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
        assert_int_equal(lc_st_open(&f, path, &err), LC_OK);
        assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
        for (size_t i = 0; i < lc_st_count(f); i++) {
            const struct lc_tensor_view *t = lc_st_at(f, i);
            assert_int_equal(t->dtype, LC_DTYPE_F32);
            assert_int_equal(lc_st_writer_add(w, t->name, LC_DTYPE_I32, t->ndim, t->shape,
                                              t->data, &err),
                             LC_OK);
        }
        /* the writer holds pointers into the mapping until it writes */
        assert_int_equal(lc_st_writer_write(w, path, &err), LC_OK);
        lc_st_writer_free(w);
        lc_st_close(f);
        assert_int_not_equal(lc_lora_load(&lo, s.m, dir, &err), LC_OK);
        assert_null(lo);
        if (strstr(err.msg, "has dtype I32; F32, F16 or BF16 needed") == NULL) {
            fail_msg("I32 adapter weights: message '%s'", err.msg);
        }
    }
    {
        float keep = s.lora_host[3];
        s.lora_host[3] = NAN;
        lc_lora_save(s.lora, s.lora_host, dir, NULL, &err);
        s.lora_host[3] = keep;
        assert_int_not_equal(lc_lora_load(&lo, s.m, dir, &err), LC_OK);
        assert_non_null(strstr(err.msg, "not finite"));
    }
    {
        FILE *fp;
        long len;
        char *buf;
        lc_lora_save(s.lora, s.lora_host, dir, NULL, &err);
        snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
        fp = fopen(path, "rb");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        buf = malloc((size_t)len);
        assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        fp = fopen(path, "wb");
        fwrite(buf, 1, (size_t)len / 2, fp);
        fclose(fp);
        free(buf);
        assert_int_not_equal(lc_lora_load(&lo, s.m, dir, &err), LC_OK);
        assert_non_null(strstr(err.msg, "adapter_model.safetensors"));
        /* the model refuses the folder as a whole */
        {
            struct lc_model *mm = NULL;
            assert_int_equal(lc_model_open(&mm, tiny_model(), s.be, &err), LC_OK);
            assert_int_not_equal(lc_model_load_lolcats(mm, dir, &err), LC_OK);
            assert_false(lc_model_has_adapter(mm));
            lc_model_close(mm);
        }
    }
    close_setup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_ref_terraced),
        cmocka_unit_test(test_fd_ref_sliding),
        cmocka_unit_test(test_fd_cpu_terraced),
        cmocka_unit_test(test_fd_cpu_sliding),
        cmocka_unit_test(test_fd_softmax),
        cmocka_unit_test(test_fd_dropout),
        cmocka_unit_test(test_fd_softmax_layer),
        cmocka_unit_test(test_recompute),
        cmocka_unit_test(test_pipeline_stages),
        cmocka_unit_test(test_forward_chunks_and_zero),
        cmocka_unit_test(test_adapter_files_and_merge),
        cmocka_unit_test(test_bad_adapters),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
