/* LoRA adapters: parameters, forward and backward, PEFT files, merging. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomicfile.h"
#include "core/fileio.h"
#include "core/half.h"
#include "core/llama.h"
#include "core/lora.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/util.h"

/* the projections' names in Hugging Face and PEFT files */
static const char *const proj_names[LC_LORA_NT] = {"q_proj", "k_proj", "v_proj", "o_proj"};

/* rows of forward scratch every adapter set has from the start */
#define MIN_ROWS 64

/* shards of a merged model hold at most this many bytes */
#define SHARD_BYTES ((size_t)4 << 30)

/* ------------------------------------------------------------ random */

#define GOLDEN LC_GOLDEN_GAMMA

uint64_t lc_lora_batch_seed(uint64_t seed, int64_t step, int64_t microbatch)
{
    return lc_mix64(lc_mix64(lc_mix64(seed ^ 0x6c6f7261ull) + (uint64_t)step * GOLDEN) +
                    (uint64_t)microbatch * GOLDEN);
}

uint64_t lc_lora_dropout_seed(uint64_t batch_seed, int l, int t)
{
    return lc_mix64(batch_seed + (uint64_t)(l * LC_LORA_NT + t + 1) * GOLDEN);
}

/* ------------------------------------------------------------ layout */

lc_status lc_lora_layout(struct lc_lora *lo, const struct lc_llama *m,
                         const struct lc_lora_cfg *cfg, struct lc_error *err)
{
    const int C = m->cfg.hidden_size;
    const int HD = m->cfg.n_heads * m->cfg.head_dim;
    const int KD = m->cfg.n_kv_heads * m->cfg.head_dim;
    size_t at = 0;

    if (cfg->rank < 1 || cfg->rank > 65536 || !(cfg->alpha > 0) || !(cfg->dropout >= 0) ||
        !(cfg->dropout < 1) || cfg->targets == 0 || cfg->targets > 15) {
        return lc_err_set(err, LC_ERR_ARG,
                          "invalid LoRA settings (rank %d, alpha %g, dropout %g, targets %#x)",
                          cfg->rank, cfg->alpha, cfg->dropout, cfg->targets);
    }
    lo->be = m->be;
    lo->cfg = *cfg;
    lo->L = m->cfg.n_layers;
    lo->in[LC_LORA_TQ] = C;
    lo->out[LC_LORA_TQ] = HD;
    lo->in[LC_LORA_TK] = C;
    lo->out[LC_LORA_TK] = KD;
    lo->in[LC_LORA_TV] = C;
    lo->out[LC_LORA_TV] = KD;
    lo->in[LC_LORA_TO] = HD;
    lo->out[LC_LORA_TO] = C;
    lo->max_in = 0;
    for (int t = 0; t < LC_LORA_NT; t++) {
        lo->off[t] = at;
        if (lc_lora_has(lo, t)) {
            at += (size_t)cfg->rank * (size_t)(lo->in[t] + lo->out[t]);
            lo->max_in = lo->in[t] > lo->max_in ? lo->in[t] : lo->max_in;
        }
    }
    lo->layer_size = at;
    lo->n_params = (size_t)lo->L * at;
    lo->scale = (float)(cfg->alpha / cfg->rank);
    return LC_OK;
}

static lc_status alloc_params(struct lc_lora *lo, struct lc_error *err)
{
    lo->params = lo->be->ops->alloc(lo->be, lo->n_params * sizeof(float) + 1);
    if (lo->params == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for %zu LoRA parameters",
                          lo->n_params);
    }
    return lc_lora_reserve(lo, MIN_ROWS, 0, err);
}

lc_status lc_lora_new(struct lc_lora **out, const struct lc_llama *m,
                      const struct lc_lora_cfg *cfg, uint64_t seed, struct lc_error *err)
{
    struct lc_lora *lo = NULL;
    float *host = NULL;
    lc_status rc;

    *out = NULL;
    lo = calloc(1, sizeof(*lo));
    if (lo == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_lora_layout(lo, m, cfg, err);
    if (rc != LC_OK) {
        goto fail;
    }
    rc = alloc_params(lo, err);
    if (rc != LC_OK) {
        goto fail;
    }
    host = calloc(lo->n_params + 1, sizeof(float));
    if (host == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory for %zu LoRA parameters", lo->n_params);
        goto fail;
    }
    for (int l = 0; l < lo->L; l++) {
        for (int t = 0; t < LC_LORA_NT; t++) {
            float *A;
            size_t n;
            double bound;
            uint64_t key;
            if (!lc_lora_has(lo, t)) {
                continue;
            }
            /* kaiming_uniform_(a = sqrt(5)) on [r, in]: gain sqrt(1/3),
             * bound = gain * sqrt(3 / fan_in) = 1 / sqrt(in) */
            A = lc_lora_A(lo, host, l, t);
            n = (size_t)cfg->rank * (size_t)lo->in[t];
            bound = 1.0 / sqrt((double)lo->in[t]);
            key = lc_mix64(lc_mix64(seed ^ 0x4c6f5241ull) +
                           (uint64_t)(l * LC_LORA_NT + t + 1) * GOLDEN);
            for (size_t i = 0; i < n; i++) {
                /* 53 random bits: u in [0, 1) */
                double u = (double)(lc_mix64(key + (uint64_t)(i + 1) * GOLDEN) >> 11) * 0x1p-53;
                A[i] = (float)((2.0 * u - 1.0) * bound);
            }
            /* B stays 0: training starts from the model without adapters */
        }
    }
    lo->be->ops->upload(lo->be, lo->params, host, lo->n_params * sizeof(float));
    free(host);
    *out = lo;
    return LC_OK;

fail:
    free(host);
    lc_lora_free(lo);
    return rc;
}

void lc_lora_free(struct lc_lora *lo)
{
    if (lo == NULL) {
        return;
    }
    if (lo->be != NULL) {
        lo->be->ops->release(lo->be, lo->params);
        lo->be->ops->release(lo->be, lo->u);
        lo->be->ops->release(lo->be, lo->xd);
    }
    free(lo);
}

lc_status lc_lora_reserve(struct lc_lora *lo, int rows, int with_dropout, struct lc_error *err)
{
    struct lc_backend *be = lo->be;

    if (rows > lo->cap_rows) {
        float *u = be->ops->alloc(be, (size_t)rows * (size_t)lo->cfg.rank * sizeof(float));
        if (u == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for LoRA scratch of %d rows",
                              rows);
        }
        be->ops->release(be, lo->u);
        lo->u = u;
        lo->cap_rows = rows;
    }
    if (with_dropout && lo->cfg.dropout > 0 && rows > lo->xd_rows) {
        float *xd = be->ops->alloc(be, (size_t)rows * (size_t)lo->max_in * sizeof(float));
        if (xd == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM,
                              "out of backend memory for LoRA dropout scratch of %d rows", rows);
        }
        be->ops->release(be, lo->xd);
        lo->xd = xd;
        lo->xd_rows = rows;
    }
    return LC_OK;
}

/* ------------------------------------------------------------ compute */

void lc_lora_forward(struct lc_lora *lo, int l, int t, const float *x, float *y, int N)
{
    const struct lc_backend_ops *o = lo->be->ops;
    const int R = lo->cfg.rank;
    const int in = lo->in[t];
    const int out = lo->out[t];
    const float *A;
    const float *B;
    const float *xs = x;

    if (!lc_lora_has(lo, t) || N <= 0) {
        return;
    }
    A = lc_lora_A(lo, lo->params, l, t);
    B = lc_lora_B(lo, lo->params, l, t);
    if (lo->train && lo->cfg.dropout > 0) {
        /* the trainer reserved room for the whole micro-batch: the mask
         * must not depend on a chunking */
        LC_ASSERT(N <= lo->xd_rows && N <= lo->cap_rows);
        o->dropout(lo->be, lo->xd, x, (int64_t)N * in, (float)lo->cfg.dropout,
                   lc_lora_dropout_seed(lo->drop_seed, l, t));
        xs = lo->xd;
    }
    for (int r0 = 0; r0 < N; r0 += lo->cap_rows) {
        int n = N - r0 < lo->cap_rows ? N - r0 : lo->cap_rows;
        /* u = x A^T, then y += scale * u B^T */
        o->gemm(lo->be, 0, 1, n, R, in, 1.0f, xs + (size_t)r0 * in, in, A, in, 0.0f, lo->u, R);
        o->gemm(lo->be, 0, 1, n, out, R, lo->scale, lo->u, R, B, R, 1.0f, y + (size_t)r0 * out,
                out);
    }
}

void lc_lora_backward(struct lc_lora *lo, float *grads, int l, int t, const float *x,
                      const float *dy, float *dx, int N, const struct lc_lora_bwd_scratch *s)
{
    struct lc_backend *be = lo->be;
    const struct lc_backend_ops *o = be->ops;
    const int R = lo->cfg.rank;
    const int in = lo->in[t];
    const int out = lo->out[t];
    const int drop = lo->train && lo->cfg.dropout > 0;
    const float p = (float)lo->cfg.dropout;
    const uint64_t seed = lc_lora_dropout_seed(lo->drop_seed, l, t);
    const float *A;
    const float *B;
    float *dA;
    float *dB;
    const float *xs = x;

    if (!lc_lora_has(lo, t) || N <= 0) {
        return;
    }
    A = lc_lora_A(lo, lo->params, l, t);
    B = lc_lora_B(lo, lo->params, l, t);
    dA = lc_lora_A(lo, grads, l, t);
    dB = lc_lora_B(lo, grads, l, t);
    if (drop) {
        /* the forward's mask again, from the same counter-based seed */
        o->dropout(be, s->xd, x, (int64_t)N * in, p, seed);
        xs = s->xd;
    }
    /* u = xd A^T [N, R];  dB += scale * dy^T u [out, R] */
    o->gemm(be, 0, 1, N, R, in, 1.0f, xs, in, A, in, 0.0f, s->u, R);
    o->gemm(be, 1, 0, out, R, N, lo->scale, dy, out, s->u, R, 1.0f, dB, R);
    /* t = scale * dy B [N, R];  dA += t^T xd [R, in] */
    o->gemm(be, 0, 0, N, R, out, lo->scale, dy, out, B, R, 0.0f, s->t_rows, R);
    o->gemm(be, 1, 0, R, in, N, 1.0f, s->t_rows, R, xs, in, 1.0f, dA, in);
    if (dx == NULL) {
        return;
    }
    /* dx += dropout'(t A) */
    if (drop) {
        o->gemm(be, 0, 0, N, in, R, 1.0f, s->t_rows, R, A, in, 0.0f, s->tmp, in);
        o->dropout(be, s->tmp, s->tmp, (int64_t)N * in, p, seed);
        o->add(be, dx, s->tmp, (int64_t)N * in);
    } else {
        o->gemm(be, 0, 0, N, in, R, 1.0f, s->t_rows, R, A, in, 1.0f, dx, in);
    }
}

/* ------------------------------------------------------------ files */

static void key_name(char *buf, size_t cap, int l, int t, char which)
{
    snprintf(buf, cap, "base_model.model.model.layers.%d.self_attn.%s.lora_%c.weight", l,
             proj_names[t], which);
}

static lc_status write_json_atomic(json_t *root, const char *path, struct lc_error *err)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    lc_status rc;
    size_t len;
    char *with_nl;

    if (text == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    len = strlen(text);
    with_nl = realloc(text, len + 2);
    if (with_nl == NULL) {
        free(text);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    with_nl[len] = '\n';
    with_nl[len + 1] = '\0';
    rc = lc_write_file_atomic(path, with_nl, len + 1, err);
    free(with_nl);
    return rc;
}

lc_status lc_lora_save(const struct lc_lora *lo, const float *host, const char *dir,
                       const char *base_model, struct lc_error *err)
{
    struct lc_st_writer *w = NULL;
    json_t *root = NULL;
    json_t *targets = NULL;
    char *path = NULL;
    char *base_abs = NULL;
    char name[160];
    lc_status rc;

    rc = lc_st_writer_new(&w, err);
    for (int l = 0; l < lo->L && rc == LC_OK; l++) {
        for (int t = 0; t < LC_LORA_NT && rc == LC_OK; t++) {
            const int64_t ashape[2] = {lo->cfg.rank, lo->in[t]};
            const int64_t bshape[2] = {lo->out[t], lo->cfg.rank};
            if (!lc_lora_has(lo, t)) {
                continue;
            }
            key_name(name, sizeof(name), l, t, 'A');
            rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 2, ashape,
                                  lc_lora_A(lo, (float *)host, l, t), err);
            if (rc == LC_OK) {
                key_name(name, sizeof(name), l, t, 'B');
                rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 2, bshape,
                                      lc_lora_B(lo, (float *)host, l, t), err);
            }
        }
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_set_metadata(w, "format", "pt", err);
    }
    if (rc == LC_OK) {
        path = lc_path_join(dir, LC_ADAPTER_MODEL_FILE);
        rc = path == NULL ? lc_err_set(err, LC_ERR_NOMEM, "out of memory")
                          : lc_st_writer_write(w, path, err);
        free(path);
        path = NULL;
    }
    lc_st_writer_free(w);
    if (rc != LC_OK) {
        return rc;
    }

    /* the fields of PEFT's LoraConfig that describe this adapter; the base
     * model's path absolute, so that PEFT finds it from anywhere */
    root = json_object();
    targets = json_array();
    path = lc_path_join(dir, LC_ADAPTER_CONFIG_FILE);
    base_abs = base_model != NULL ? lc_path_absolute(base_model) : NULL;
    if (root == NULL || targets == NULL || path == NULL || (base_model != NULL && base_abs == NULL)) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* PEFT lists the target modules sorted: k, o, q, v */
    {
        static const int sorted[LC_LORA_NT] = {LC_LORA_TK, LC_LORA_TO, LC_LORA_TQ, LC_LORA_TV};
        for (int i = 0; i < LC_LORA_NT; i++) {
            if (lc_lora_has(lo, sorted[i])) {
                json_array_append_new(targets, json_string(proj_names[sorted[i]]));
            }
        }
    }
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(root, "base_model_name_or_path",
                        base_abs != NULL ? json_string(base_abs) : json_null());
    json_object_set_new(root, "revision", json_null());
    json_object_set_new(root, "inference_mode", json_true());
    json_object_set_new(root, "r", json_integer(lo->cfg.rank));
    json_object_set_new(root, "target_modules", targets);
    targets = NULL;
    json_object_set_new(root, "lora_alpha", json_real(lo->cfg.alpha));
    json_object_set_new(root, "lora_dropout", json_real(lo->cfg.dropout));
    json_object_set_new(root, "fan_in_fan_out", json_false());
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "use_rslora", json_false());
    json_object_set_new(root, "use_dora", json_false());
    json_object_set_new(root, "modules_to_save", json_null());
    json_object_set_new(root, "init_lora_weights", json_true());
    json_object_set_new(root, "layers_to_transform", json_null());
    json_object_set_new(root, "layers_pattern", json_null());
    json_object_set_new(root, "rank_pattern", json_object());
    json_object_set_new(root, "alpha_pattern", json_object());
    rc = write_json_atomic(root, path, err);

done:
    json_decref(targets);
    json_decref(root);
    free(path);
    free(base_abs);
    return rc;
}

/* An optional key that must hold the value this loader implements. */
static int key_is(json_t *root, const char *key, json_t *want)
{
    json_t *v = json_object_get(root, key);
    int ok = v == NULL || json_is_null(v) || json_equal(v, want);
    json_decref(want);
    return ok;
}

static int empty_or_absent(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    return v == NULL || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0);
}

static lc_status read_config(const char *path, struct lc_lora_cfg *cfg, struct lc_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *v;
    lc_status rc = LC_OK;

    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    }
    memset(cfg, 0, sizeof(*cfg));
    if (!json_is_object(root) ||
        !json_is_string(json_object_get(root, "peft_type")) ||
        strcmp(json_string_value(json_object_get(root, "peft_type")), "LORA") != 0) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: not a LoRA adapter configuration (peft_type)",
                        path);
        goto done;
    }
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: \"r\" must be an integer from 1 to 65536", path);
        goto done;
    }
    cfg->rank = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (!json_is_number(v) || !(json_number_value(v) > 0)) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: \"lora_alpha\" must be a positive number", path);
        goto done;
    }
    cfg->alpha = json_number_value(v);
    v = json_object_get(root, "lora_dropout");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0) || !(json_number_value(v) < 1)) {
            rc = lc_err_set(err, LC_ERR_FORMAT, "%s: \"lora_dropout\" must be in [0, 1)", path);
            goto done;
        }
        cfg->dropout = json_number_value(v);
    }
    v = json_object_get(root, "target_modules");
    if (json_is_string(v)) {
        /* a single name */
        for (int t = 0; t < LC_LORA_NT; t++) {
            if (strcmp(json_string_value(v), proj_names[t]) == 0) {
                cfg->targets |= 1u << t;
            }
        }
        if (cfg->targets == 0) {
            rc = lc_err_set(err, LC_ERR_UNSUPPORTED, "%s: target module \"%s\" is not one of "
                                                     "q_proj, k_proj, v_proj, o_proj",
                            path, json_string_value(v));
            goto done;
        }
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *s = json_string_value(json_array_get(v, i));
            int found = 0;
            for (int t = 0; t < LC_LORA_NT && s != NULL; t++) {
                if (strcmp(s, proj_names[t]) == 0) {
                    cfg->targets |= 1u << t;
                    found = 1;
                }
            }
            if (!found) {
                rc = lc_err_set(err, LC_ERR_UNSUPPORTED,
                                "%s: target module %s%s%s is not one of q_proj, k_proj, v_proj, "
                                "o_proj",
                                path, s != NULL ? "\"" : "", s != NULL ? s : "(not a string)",
                                s != NULL ? "\"" : "");
                goto done;
            }
        }
    } else {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: \"target_modules\" must name the projections",
                        path);
        goto done;
    }
    /* variants this loader does not implement are refused, not ignored */
    if (!key_is(root, "bias", json_string("none")) ||
        !key_is(root, "fan_in_fan_out", json_false()) ||
        !key_is(root, "use_rslora", json_false()) || !key_is(root, "use_dora", json_false()) ||
        !empty_or_absent(root, "rank_pattern") || !empty_or_absent(root, "alpha_pattern") ||
        !empty_or_absent(root, "layers_to_transform") ||
        !empty_or_absent(root, "modules_to_save")) {
        rc = lc_err_set(err, LC_ERR_UNSUPPORTED,
                        "%s: only plain LoRA is supported (bias \"none\", no fan_in_fan_out, "
                        "rslora, DoRA, per-module ranks, layer subsets or extra modules)",
                        path);
        goto done;
    }

done:
    json_decref(root);
    return rc;
}

/* Copies a [rows, cols] tensor of the file into dst as fp32. */
static lc_status read_matrix(const struct lc_st_file *f, const char *path, const char *name,
                             int64_t rows, int64_t cols, float *dst, struct lc_error *err)
{
    const struct lc_tensor_view *t = lc_st_find(f, name);
    char alt[200];

    if (t == NULL) {
        /* state dicts of PEFT models in memory name the adapter "default" */
        const char *w = strstr(name, ".weight");
        snprintf(alt, sizeof(alt), "%.*s.default.weight", (int)(w - name), name);
        t = lc_st_find(f, alt);
    }
    if (t == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s missing", path, name);
    }
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s must have shape [%lld, %lld]", path, name,
                          (long long)rows, (long long)cols);
    }
    if (t->dtype != LC_DTYPE_F32 && t->dtype != LC_DTYPE_F16 && t->dtype != LC_DTYPE_BF16) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has dtype %s; F32, F16 or BF16 needed", path,
                          name, lc_dtype_name(t->dtype));
    }
    for (int64_t i = 0; i < rows * cols; i++) {
        dst[i] = lc_dtype_load_f32(t->data, t->dtype, (size_t)i);
        if (!isfinite(dst[i])) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: %s holds a value that is not finite", path,
                              name);
        }
    }
    return LC_OK;
}

lc_status lc_lora_load(struct lc_lora **out, const struct lc_llama *m, const char *dir,
                       struct lc_error *err)
{
    struct lc_lora *lo = NULL;
    struct lc_st_file *f = NULL;
    struct lc_lora_cfg cfg;
    char *cpath = lc_path_join(dir, LC_ADAPTER_CONFIG_FILE);
    char *mpath = lc_path_join(dir, LC_ADAPTER_MODEL_FILE);
    float *host = NULL;
    char name[160];
    lc_status rc;

    *out = NULL;
    if (cpath == NULL || mpath == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = read_config(cpath, &cfg, err);
    if (rc != LC_OK) {
        goto done;
    }
    lo = calloc(1, sizeof(*lo));
    if (lo == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = lc_lora_layout(lo, m, &cfg, err);
    if (rc == LC_OK) {
        rc = lc_st_open(&f, mpath, err);
    }
    /* the rank decides the allocation: the file must hold that many
     * parameters (2 bytes each at least) before any is allocated */
    if (rc == LC_OK && lo->n_params > lc_st_data_bytes(f) / 2) {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: holds %zu bytes of tensors, too few for the %zu parameters of rank "
                        "%d that %s describes",
                        mpath, lc_st_data_bytes(f), lo->n_params, cfg.rank, cpath);
    }
    if (rc == LC_OK) {
        rc = alloc_params(lo, err);
    }
    if (rc != LC_OK) {
        goto done;
    }
    host = malloc((lo->n_params + 1) * sizeof(float));
    if (host == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < lo->L && rc == LC_OK; l++) {
        for (int t = 0; t < LC_LORA_NT && rc == LC_OK; t++) {
            if (!lc_lora_has(lo, t)) {
                continue;
            }
            key_name(name, sizeof(name), l, t, 'A');
            rc = read_matrix(f, mpath, name, cfg.rank, lo->in[t], lc_lora_A(lo, host, l, t), err);
            if (rc == LC_OK) {
                key_name(name, sizeof(name), l, t, 'B');
                rc = read_matrix(f, mpath, name, lo->out[t], cfg.rank, lc_lora_B(lo, host, l, t),
                                 err);
            }
        }
    }
    if (rc == LC_OK) {
        lo->be->ops->upload(lo->be, lo->params, host, lo->n_params * sizeof(float));
        rc = lo->be->ops->sync(lo->be, err);
    }

done:
    if (rc == LC_OK) {
        *out = lo;
        lo = NULL;
    }
    lc_lora_free(lo);
    lc_st_close(f);
    free(host);
    free(cpath);
    free(mpath);
    return rc;
}

/* ------------------------------------------------------------ merging */

void lc_lora_merged_weight(const struct lc_lora *lo, const float *host, int l, int t,
                           const void *w, enum lc_dtype wtype, float *out)
{
    const int R = lo->cfg.rank;
    const int in = lo->in[t];
    const float *A = lc_lora_A(lo, (float *)host, l, t);
    const float *B = lc_lora_B(lo, (float *)host, l, t);
    const double scale = lo->cfg.alpha / lo->cfg.rank;

    for (int o = 0; o < lo->out[t]; o++) {
        for (int i = 0; i < in; i++) {
            double d = 0.0;
            for (int r = 0; r < R; r++) {
                d += (double)B[(size_t)o * R + r] * (double)A[(size_t)r * in + i];
            }
            out[(size_t)o * in + i] =
                (float)((double)lc_dtype_load_f32(w, wtype, (size_t)o * in + i) + scale * d);
        }
    }
}

/* Copies a small file (config, tokenizer) when the source has it. */
static lc_status copy_if_present(const char *src_dir, const char *dst_dir, const char *name,
                                 int required, struct lc_error *err)
{
    char *src = lc_path_join(src_dir, name);
    char *dst = lc_path_join(dst_dir, name);
    FILE *fp = NULL;
    char *buf = NULL;
    long len;
    lc_status rc = LC_OK;

    if (src == NULL || dst == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    fp = fopen(src, "rb");
    if (fp == NULL) {
        if (required || errno != ENOENT) {
            rc = lc_err_set(err, LC_ERR_IO, "%s: cannot read: %s", src, strerror(errno));
        }
        goto done;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot read: %s", src, strerror(errno));
        goto done;
    }
    buf = malloc((size_t)len + 1);
    if (buf == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot read", src);
        goto done;
    }
    rc = lc_write_file_atomic(dst, buf, (size_t)len, err);

done:
    if (fp != NULL) {
        fclose(fp);
    }
    free(buf);
    free(src);
    free(dst);
    return rc;
}

struct merged_tensor {
    char name[128];
    const struct lc_tensor_view *view;
    int layer;  /* -1: not an adapted projection */
    int target;
    size_t shard;
};

/* The tensors of the merged model, in the order model files list them. */
static lc_status list_tensors(const struct lc_lora *lo, const struct lc_llama *m,
                              struct merged_tensor **out, size_t *n_out, struct lc_error *err)
{
    static const char *const layer_parts[] = {
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight"};
    const size_t nparts = sizeof(layer_parts) / sizeof(layer_parts[0]);
    const size_t cap = 3 + (size_t)m->cfg.n_layers * nparts;
    struct merged_tensor *ts = calloc(cap, sizeof(*ts));
    size_t n = 0;

    if (ts == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    snprintf(ts[n++].name, sizeof(ts->name), "model.embed_tokens.weight");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (size_t p = 0; p < nparts; p++) {
            struct merged_tensor *t = &ts[n++];
            snprintf(t->name, sizeof(t->name), "model.layers.%d.%s", l, layer_parts[p]);
            t->layer = -1;
            if (p >= 1 && p <= 4 && lc_lora_has(lo, (int)p - 1)) {
                t->layer = l;
                t->target = (int)p - 1;
            }
        }
    }
    snprintf(ts[n++].name, sizeof(ts->name), "model.norm.weight");
    snprintf(ts[n++].name, sizeof(ts->name), "lm_head.weight");
    ts[0].layer = -1;
    ts[n - 2].layer = -1;
    ts[n - 1].layer = -1;
    for (size_t i = 0; i < n; i++) {
        ts[i].view = lc_model_files_tensor(m->files, ts[i].name);
    }
    if (ts[n - 1].view == NULL) {
        n--; /* tied to the embedding */
    }
    for (size_t i = 0; i < n; i++) {
        if (ts[i].view == NULL) {
            lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s missing",
                       lc_model_files_path(m->files), ts[i].name);
            free(ts);
            return LC_ERR_FORMAT;
        }
    }
    *out = ts;
    *n_out = n;
    return LC_OK;
}

static lc_status write_shard(const struct lc_lora *lo, const float *host,
                             struct merged_tensor *ts, size_t n, size_t shard, const char *path,
                             struct lc_error *err)
{
    struct lc_st_writer *w = NULL;
    float *f32 = NULL;
    void *conv = NULL;
    lc_status rc;

    rc = lc_st_writer_new(&w, err);
    for (size_t i = 0; i < n && rc == LC_OK; i++) {
        const struct lc_tensor_view *v = ts[i].view;
        const void *data = v->data;
        if (ts[i].shard != shard) {
            continue;
        }
        if (ts[i].layer >= 0) {
            size_t numel = (size_t)v->numel;
            float *nf = realloc(f32, numel * sizeof(float) + 1);
            void *nc = realloc(conv, numel * sizeof(float) + 1);
            if (nf == NULL || nc == NULL) {
                free(nf != NULL ? nf : f32);
                free(nc != NULL ? nc : conv);
                f32 = NULL;
                conv = NULL;
                rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory merging %s", ts[i].name);
                break;
            }
            f32 = nf;
            conv = nc;
            lc_lora_merged_weight(lo, host, ts[i].layer, ts[i].target, v->data, v->dtype, f32);
            for (size_t j = 0; j < numel; j++) {
                if (v->dtype == LC_DTYPE_BF16) {
                    ((uint16_t *)conv)[j] = lc_f32_to_bf16(f32[j]);
                } else if (v->dtype == LC_DTYPE_F16) {
                    ((uint16_t *)conv)[j] = lc_f32_to_f16(f32[j]);
                } else {
                    ((float *)conv)[j] = f32[j];
                }
            }
            data = conv;
        }
        rc = lc_st_writer_add(w, ts[i].name, v->dtype, v->ndim, v->shape, data, err);
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_set_metadata(w, "format", "pt", err);
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_write(w, path, err);
    }
    lc_st_writer_free(w);
    free(f32);
    free(conv);
    return rc;
}

static lc_status write_index(struct merged_tensor *ts, size_t n, size_t n_shards,
                             size_t total, const char *dir, struct lc_error *err)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    json_t *map = json_object();
    char *path = lc_path_join(dir, "model.safetensors.index.json");
    char file[64];
    lc_status rc;

    if (root == NULL || meta == NULL || map == NULL || path == NULL) {
        json_decref(root);
        json_decref(meta);
        json_decref(map);
        free(path);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
    for (size_t i = 0; i < n; i++) {
        snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", ts[i].shard + 1,
                 n_shards);
        json_object_set_new(map, ts[i].name, json_string(file));
    }
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "weight_map", map);
    rc = write_json_atomic(root, path, err);
    json_decref(root);
    free(path);
    return rc;
}

/* Removes NAME.tmp.XXXXXX files a killed merge left in the folder (which
 * holds only what the merge writes). */
static void remove_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (t != NULL && t != e->d_name && strlen(t + 5) == 6 && strchr(t + 5, '.') == NULL) {
            char *p = lc_path_join(dir, e->d_name);
            if (p != NULL) {
                unlink(p);
                free(p);
            }
        }
    }
    closedir(d);
}

lc_status lc_lora_merge(const struct lc_lora *lo, const float *host, const struct lc_llama *m,
                        const char *out_dir, struct lc_error *err)
{
    static const char *const small_files[] = {"tokenizer.json", "tokenizer.model",
                                              "tokenizer_config.json", "special_tokens_map.json",
                                              "generation_config.json"};
    const char *src = lc_model_files_path(m->files);
    struct merged_tensor *ts = NULL;
    size_t n = 0, n_shards = 1, total = 0, in_shard = 0;
    char *path = NULL;
    struct stat st;
    lc_status rc;

    if (strcmp(lc_model_files_format(m->files), "safetensors") != 0 || stat(src, &st) != 0 ||
        !S_ISDIR(st.st_mode)) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: merging needs a Hugging Face model folder (config.json and "
                          "safetensors) as the base model",
                          src);
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot create the folder: %s", out_dir,
                          strerror(errno));
    }
    remove_temporaries(out_dir);
    rc = copy_if_present(src, out_dir, "config.json", 1, err);
    for (size_t i = 0; i < sizeof(small_files) / sizeof(small_files[0]) && rc == LC_OK; i++) {
        rc = copy_if_present(src, out_dir, small_files[i], 0, err);
    }
    if (rc == LC_OK) {
        rc = list_tensors(lo, m, &ts, &n, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    /* shards in file order, each below SHARD_BYTES unless one tensor is larger */
    for (size_t i = 0; i < n; i++) {
        size_t b = ts[i].view->nbytes;
        if (in_shard > 0 && in_shard + b > SHARD_BYTES) {
            n_shards++;
            in_shard = 0;
        }
        ts[i].shard = n_shards - 1;
        in_shard += b;
        total += b;
    }
    for (size_t s = 0; s < n_shards && rc == LC_OK; s++) {
        char file[64];
        if (n_shards == 1) {
            snprintf(file, sizeof(file), "model.safetensors");
        } else {
            snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
        }
        path = lc_path_join(out_dir, file);
        rc = path == NULL ? lc_err_set(err, LC_ERR_NOMEM, "out of memory")
                          : write_shard(lo, host, ts, n, s, path, err);
        free(path);
        path = NULL;
    }
    if (rc == LC_OK) {
        /* exactly one of the two layouts is left, so loaders cannot mix them */
        if (n_shards > 1) {
            rc = write_index(ts, n, n_shards, total, out_dir, err);
            path = lc_path_join(out_dir, "model.safetensors");
        } else {
            path = lc_path_join(out_dir, "model.safetensors.index.json");
        }
        if (rc == LC_OK && path != NULL) {
            unlink(path);
        }
        free(path);
    }
    free(ts);
    return rc;
}
