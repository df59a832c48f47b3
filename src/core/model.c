/* Public model interface: open, logits, NLL, perplexity, decoding sessions. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/llama.h"
#include "core/model.h"
#include "core/util.h"

/* rows of the forward scratch used by sessions and perplexity */
#define LC_CHUNK_ROWS 512

LC_API lc_status lc_model_open(struct lc_model **out, const char *path, struct lc_backend *be,
                               struct lc_error *err)
{
    struct lc_model *m;
    lc_status rc;

    *out = NULL;
    if (path == NULL || be == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "lc_model_open: no path or backend");
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_llama_load(&m->llama, path, be, err);
    if (rc != LC_OK) {
        free(m);
        return rc;
    }
    *out = m;
    return LC_OK;
}

LC_API void lc_model_close(struct lc_model *m)
{
    if (m == NULL) {
        return;
    }
    if (m->fwd.max_rows > 0) {
        lc_llama_fwd_free(m->llama, &m->fwd);
    }
    lc_linattn_free(m->lin);
    lc_lora_free(m->lora);
    lc_llama_free(m->llama);
    free(m);
}

LC_API const struct lc_model_config *lc_model_get_config(const struct lc_model *m)
{
    return &m->llama->cfg;
}

LC_API const char *lc_model_format(const struct lc_model *m)
{
    return lc_model_files_format(m->llama->files);
}

lc_status lc_model_reserve_rows(struct lc_model *m, int rows, struct lc_error *err)
{
    if (m->fwd.max_rows >= rows) {
        return LC_OK;
    }
    if (m->fwd.max_rows > 0) {
        lc_llama_fwd_free(m->llama, &m->fwd);
    }
    return lc_llama_fwd_alloc(m->llama, &m->fwd, rows, err);
}

LC_API lc_status lc_model_logits(struct lc_model *m, const int32_t *ids, int B, int T,
                                 float *logits, struct lc_error *err)
{
    lc_status rc;

    if (B <= 0 || T <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "empty batch (%d x %d)", B, T);
    }
    rc = lc_model_reserve_rows(m, B * T, err);
    if (rc != LC_OK) {
        return rc;
    }
    return lc_llama_forward(m->llama, &m->fwd, ids, B, T, logits, err);
}

LC_API lc_status lc_model_nll(struct lc_model *m, const int32_t *ids, const int32_t *targets,
                              int B, int T, float *nll, struct lc_error *err)
{
    lc_status rc;

    if (B <= 0 || T <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "empty batch (%d x %d)", B, T);
    }
    rc = lc_model_reserve_rows(m, B * T, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = lc_llama_forward(m->llama, &m->fwd, ids, B, T, NULL, err);
    if (rc != LC_OK) {
        return rc;
    }
    return lc_llama_nll_from_hidden(m->llama, &m->fwd, targets, B * T, nll, err);
}

LC_API lc_status lc_model_perplexity(struct lc_model *m, const int32_t *ids, int64_t n_ids,
                                     int context, lc_progress_fn progress, void *user,
                                     struct lc_ppl_result *res, struct lc_error *err)
{
    int32_t *targets = NULL;
    float *nll = NULL;
    int64_t n_windows;
    double sum = 0.0;
    int64_t count = 0;
    lc_status rc = LC_OK;

    memset(res, 0, sizeof(*res));
    if (context < 2) {
        return lc_err_set(err, LC_ERR_ARG, "perplexity context must be at least 2 tokens (got %d)",
                          context);
    }
    /* full windows, plus a final one when it has at least 2 tokens */
    n_windows = n_ids / context + (n_ids % context >= 2 ? 1 : 0);
    if (n_windows == 0) {
        return lc_err_set(err, LC_ERR_ARG, "perplexity needs at least 2 tokens (got %lld)",
                          (long long)n_ids);
    }
    targets = malloc((size_t)context * sizeof(int32_t));
    nll = malloc((size_t)context * sizeof(float));
    if (targets == NULL || nll == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t w = 0; w < n_windows; w++) {
        const int32_t *win = ids + w * context;
        int len = (int)(n_ids - w * context < context ? n_ids - w * context : context);
        for (int i = 0; i < len - 1; i++) {
            targets[i] = win[i + 1];
        }
        targets[len - 1] = -1; /* the last token predicts nothing inside the window */
        rc = lc_model_nll(m, win, targets, 1, len, nll, err);
        if (rc != LC_OK) {
            goto done;
        }
        for (int i = 0; i < len - 1; i++) {
            sum += nll[i];
        }
        count += len - 1;
        if (progress != NULL && progress(w + 1, n_windows, user) != 0) {
            rc = lc_err_set(err, LC_ERR_INTERRUPTED, "perplexity stopped after %lld of %lld windows",
                            (long long)(w + 1), (long long)n_windows);
            goto done;
        }
    }
    res->n_tokens = n_ids;
    res->n_windows = n_windows;
    res->n_predicted = count;
    res->mean_nll = sum / (double)count;
    res->ppl = exp(res->mean_nll);
    if (!isfinite(res->ppl)) {
        rc = lc_err_set(err, LC_ERR_NUMERIC, "perplexity is not finite (mean NLL %g)", res->mean_nll);
    }

done:
    free(targets);
    free(nll);
    return rc;
}

/* --------------------------------------------------------------- sessions */

struct lc_session {
    struct lc_model *model;
    int max_tokens;
    int length;
    float **kcache; /* per layer [max_tokens, Hkv, D] */
    float **vcache;
};

LC_API lc_status lc_session_new(struct lc_session **out, struct lc_model *m, int max_tokens,
                                struct lc_error *err)
{
    struct lc_backend *be = m->llama->be;
    const struct lc_model_config *c = &m->llama->cfg;
    struct lc_session *s;
    size_t bytes = (size_t)max_tokens * (size_t)c->n_kv_heads * (size_t)c->head_dim * sizeof(float);
    lc_status rc;

    *out = NULL;
    if (max_tokens <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "a session needs room for at least one token");
    }
    if (m->llama->lin != NULL) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "incremental decoding of a linearized model is not available yet");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    s->model = m;
    s->max_tokens = max_tokens;
    s->kcache = calloc((size_t)c->n_layers, sizeof(float *));
    s->vcache = calloc((size_t)c->n_layers, sizeof(float *));
    if (s->kcache == NULL || s->vcache == NULL) {
        lc_session_free(s);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) {
        s->kcache[l] = be->ops->alloc(be, bytes);
        s->vcache[l] = be->ops->alloc(be, bytes);
        if (s->kcache[l] == NULL || s->vcache[l] == NULL) {
            lc_session_free(s);
            return lc_err_set(err, LC_ERR_NOMEM,
                              "out of backend memory for a KV cache of %d tokens", max_tokens);
        }
    }
    rc = lc_llama_rope_reserve(m->llama, max_tokens, err);
    if (rc != LC_OK) {
        lc_session_free(s);
        return rc;
    }
    *out = s;
    return LC_OK;
}

LC_API void lc_session_free(struct lc_session *s)
{
    if (s == NULL) {
        return;
    }
    if (s->kcache != NULL || s->vcache != NULL) {
        struct lc_backend *be = s->model->llama->be;
        for (int l = 0; l < s->model->llama->cfg.n_layers; l++) {
            if (s->kcache != NULL) {
                be->ops->release(be, s->kcache[l]);
            }
            if (s->vcache != NULL) {
                be->ops->release(be, s->vcache[l]);
            }
        }
    }
    free(s->kcache);
    free(s->vcache);
    free(s);
}

LC_API int lc_session_length(const struct lc_session *s)
{
    return s->length;
}

LC_API size_t lc_session_state_bytes(const struct lc_session *s)
{
    const struct lc_model_config *c = &s->model->llama->cfg;
    return 2 * (size_t)c->n_layers * (size_t)s->length * (size_t)c->n_kv_heads *
           (size_t)c->head_dim * sizeof(float);
}

/* One chunk of n <= LC_CHUNK_ROWS tokens at positions length..length+n-1. */
static lc_status feed_chunk(struct lc_session *s, const int32_t *ids, int n, float *logits,
                            struct lc_error *err)
{
    struct lc_llama *m = s->model->llama;
    struct lc_llama_fwd *f = &s->model->fwd;
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    const int p0 = s->length;
    int32_t pos[LC_CHUNK_ROWS];

    for (int i = 0; i < n; i++) {
        pos[i] = p0 + i;
    }
    o->upload(be, f->pos, pos, (size_t)n * sizeof(int32_t));
    o->upload(be, f->ids, ids, (size_t)n * sizeof(int32_t));
    lc_llama_embed(m, f->x, f->ids, n);
    for (int l = 0; l < c->n_layers; l++) {
        float *kc = s->kcache[l];
        float *vc = s->vcache[l];
        o->rmsnorm_fwd(be, f->xn, NULL, f->x, m->layers[l].attn_norm, n, c->hidden_size,
                       c->rms_norm_eps);
        lc_llama_qkv(m, l, f->xn, f->q, f->k, f->v, f->pos, n);
        o->copy(be, kc + (size_t)p0 * KD, f->k, (size_t)n * KD * sizeof(float));
        o->copy(be, vc + (size_t)p0 * KD, f->v, (size_t)n * KD * sizeof(float));
        o->attn_fwd(be, f->att, f->q, kc, vc, 1, n, p0 + n, c->n_heads, c->n_kv_heads,
                    c->head_dim, p0);
        lc_llama_attn_out(m, l, f->x, f->att, n);
        lc_llama_mlp(m, l, f->x, f->xn, f->gate, f->up, n);
    }
    s->length += n;
    if (logits != NULL) {
        lc_llama_head(m, f->x + (size_t)(n - 1) * c->hidden_size, f->xn, f->logits, 1);
        o->download(be, logits, f->logits, (size_t)c->vocab_size * sizeof(float));
    }
    return o->sync(be, err);
}

LC_API lc_status lc_session_feed(struct lc_session *s, const int32_t *ids, int n, float *logits,
                                 struct lc_error *err)
{
    const struct lc_model_config *c = &s->model->llama->cfg;
    lc_status rc;

    if (n <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "nothing to feed");
    }
    if (n > s->max_tokens - s->length) {
        return lc_err_set(err, LC_ERR_ARG, "the session holds %d tokens; %d more do not fit in %d",
                          s->length, n, s->max_tokens);
    }
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            return lc_err_set(err, LC_ERR_ARG, "token id %d is outside the vocabulary (%d)", ids[i],
                              c->vocab_size);
        }
    }
    rc = lc_model_reserve_rows(s->model, n < LC_CHUNK_ROWS ? n : LC_CHUNK_ROWS, err);
    if (rc != LC_OK) {
        return rc;
    }
    while (n > 0) {
        int chunk = n < LC_CHUNK_ROWS ? n : LC_CHUNK_ROWS;
        rc = feed_chunk(s, ids, chunk, chunk == n ? logits : NULL, err);
        if (rc != LC_OK) {
            return rc;
        }
        ids += chunk;
        n -= chunk;
    }
    return LC_OK;
}

/* ------------------------------------------------------- linearized model */

static void drop_scratch(struct lc_model *m)
{
    if (m->fwd.max_rows > 0) {
        lc_llama_fwd_free(m->llama, &m->fwd);
    }
}

LC_API void lc_model_use_teacher(struct lc_model *m, int use_teacher)
{
    const struct lc_linattn *want = use_teacher ? NULL : m->lin;
    if (m->llama->lin != want) {
        drop_scratch(m); /* the scratch differs between the two */
        m->llama->lin = want;
    }
    /* the teacher is the original model: no adapter either */
    m->llama->lora = use_teacher || m->no_adapter ? NULL : m->lora;
}

LC_API int lc_model_has_adapter(const struct lc_model *m)
{
    return m->lora != NULL;
}

LC_API void lc_model_use_adapter(struct lc_model *m, int use_adapter)
{
    m->no_adapter = !use_adapter;
    if (m->llama->lin != NULL) {
        drop_scratch(m); /* sized for the adapter's scratch on the next use */
        m->llama->lora = use_adapter ? m->lora : NULL;
    }
}

static int json_int_field(json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 24)) {
        return 0;
    }
    *out = (int)json_integer_value(v);
    return 1;
}

LC_API lc_status lc_model_load_lolcats(struct lc_model *m, const char *dir, struct lc_error *err)
{
    const struct lc_model_config *c = &m->llama->cfg;
    char path[4096];
    json_error_t jerr;
    json_t *root = NULL;
    json_t *attn;
    json_t *base;
    const char *mode;
    struct lc_linattn_cfg cfg;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    int v;
    lc_status rc;

    snprintf(path, sizeof(path), "%s/lolcats_config.json", dir);
    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    }
    attn = json_object_get(root, "attention");
    base = json_object_get(root, "base_model");
    mode = json_string_value(json_object_get(attn, "window_mode"));
    if (!json_is_object(attn) || !json_int_field(attn, "feature_dim", &cfg.feature_dim) ||
        !json_int_field(attn, "window", &cfg.window) || mode == NULL) {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: \"attention\" needs integer feature_dim and window, and window_mode",
                        path);
        goto done;
    }
    if (strcmp(mode, "terraced") == 0) {
        cfg.mode = LC_WINDOW_TERRACED;
    } else if (strcmp(mode, "sliding") == 0) {
        cfg.mode = LC_WINDOW_SLIDING;
    } else {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: unknown window_mode \"%s\"", path, mode);
        goto done;
    }
    /* the conversion must belong to this model's shapes */
    if (json_is_object(base) &&
        ((json_int_field(base, "num_hidden_layers", &v) && v != c->n_layers) ||
         (json_int_field(base, "num_attention_heads", &v) && v != c->n_heads) ||
         (json_int_field(base, "head_dim", &v) && v != c->head_dim) ||
         (json_int_field(base, "hidden_size", &v) && v != c->hidden_size))) {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: made for a model of another shape than this one (%d layers, %d heads "
                        "of %d)",
                        path, c->n_layers, c->n_heads, c->head_dim);
        goto done;
    }
    rc = lc_linattn_new(&lin, m->llama, &cfg, err);
    if (rc != LC_OK) {
        goto done;
    }
    snprintf(path, sizeof(path), "%s/feature_maps.safetensors", dir);
    rc = lc_linattn_load(lin, path, err);
    if (rc != LC_OK) {
        goto done;
    }
    /* the LoRA adapter of stage 2, when the folder has one */
    snprintf(path, sizeof(path), "%s/%s", dir, LC_ADAPTER_CONFIG_FILE);
    if (access(path, F_OK) == 0) {
        rc = lc_lora_load(&lora, m->llama, dir, err);
        if (rc != LC_OK) {
            goto done;
        }
    }
    drop_scratch(m);
    lc_linattn_free(m->lin);
    lc_lora_free(m->lora);
    m->lin = lin;
    m->lora = lora;
    m->llama->lin = lin;
    m->llama->lora = m->no_adapter ? NULL : lora;
    lin = NULL;
    lora = NULL;

done:
    lc_linattn_free(lin);
    lc_lora_free(lora);
    json_decref(root);
    return rc;
}
