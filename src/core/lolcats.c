/* Feature maps and window factors of the linearized attention. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llama.h"
#include "core/lolcats.h"
#include "core/tensorfile.h"
#include "core/util.h"

lc_status lc_linattn_new(struct lc_linattn **out, const struct lc_llama *m,
                         const struct lc_linattn_cfg *cfg, struct lc_error *err)
{
    struct lc_linattn *a = NULL;
    float *host = NULL;
    const int f = cfg->feature_dim;
    lc_status rc;

    *out = NULL;
    if (f < 1 || cfg->window < 1 ||
        (cfg->mode != LC_WINDOW_TERRACED && cfg->mode != LC_WINDOW_SLIDING)) {
        return lc_err_set(err, LC_ERR_ARG, "invalid linear attention settings (feature dim %d, window %d)",
                          f, cfg->window);
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    a->be = m->be;
    a->cfg = *cfg;
    a->L = m->cfg.n_layers;
    a->H = m->cfg.n_heads;
    a->Hkv = m->cfg.n_kv_heads;
    a->D = m->cfg.head_dim;
    a->layer_size = 2 * (size_t)a->H * (size_t)a->D * (size_t)f + (size_t)a->H;
    a->n_params = (size_t)a->L * a->layer_size;
    host = calloc(a->n_params, sizeof(float));
    if (host == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory for %zu feature-map parameters",
                        a->n_params);
        goto fail;
    }
    for (int l = 0; l < a->L; l++) {
        float *wq = lc_linattn_wq(a, host, l);
        float *wk = lc_linattn_wk(a, host, l);
        float *theta = lc_linattn_theta(a, host, l);
        for (int h = 0; h < a->H; h++) {
            for (int i = 0; i < a->D && i < f; i++) {
                size_t at = ((size_t)h * a->D + (size_t)i) * (size_t)f + (size_t)i;
                wq[at] = 1.0f;
                wk[at] = 1.0f;
            }
            theta[h] = (float)LC_THETA_INIT;
        }
    }
    a->params = lc_be_upload_new(a->be, host, a->n_params * sizeof(float));
    if (a->params == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for feature maps");
        goto fail;
    }
    free(host);
    *out = a;
    return LC_OK;

fail:
    free(host);
    lc_linattn_free(a);
    return rc;
}

void lc_linattn_free(struct lc_linattn *a)
{
    if (a == NULL) {
        return;
    }
    a->be->ops->release(a->be, a->params);
    free(a);
}

lc_status lc_linattn_download(const struct lc_linattn *a, float *host)
{
    a->be->ops->download(a->be, host, a->params, a->n_params * sizeof(float));
    return a->be->ops->sync(a->be, NULL);
}

lc_status lc_linattn_upload(struct lc_linattn *a, const float *host)
{
    a->be->ops->upload(a->be, a->params, host, a->n_params * sizeof(float));
    return a->be->ops->sync(a->be, NULL);
}

static void key_name(char *buf, size_t cap, int l, const char *what)
{
    snprintf(buf, cap, "model.layers.%d.self_attn.%s", l, what);
}

lc_status lc_linattn_save(const struct lc_linattn *a, const float *host, const char *path,
                          struct lc_error *err)
{
    struct lc_st_writer *w = NULL;
    const int64_t fshape[3] = {a->H, a->D, a->cfg.feature_dim};
    const int64_t tshape[4] = {1, a->H, 1, 1};
    char name[128];
    lc_status rc;

    rc = lc_st_writer_new(&w, err);
    if (rc != LC_OK) {
        return rc;
    }
    for (int l = 0; l < a->L && rc == LC_OK; l++) {
        key_name(name, sizeof(name), l, "feature_map_q.mlp.layer");
        rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 3, fshape,
                              lc_linattn_wq(a, (float *)host, l), err);
        if (rc == LC_OK) {
            key_name(name, sizeof(name), l, "feature_map_k.mlp.layer");
            rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 3, fshape,
                                  lc_linattn_wk(a, (float *)host, l), err);
        }
        if (rc == LC_OK) {
            key_name(name, sizeof(name), l, "window_factors");
            rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 4, tshape,
                                  lc_linattn_theta(a, (float *)host, l), err);
        }
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_set_metadata(w, "format", "lolcats", err);
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_write(w, path, err);
    }
    lc_st_writer_free(w);
    return rc;
}

/* Copies one tensor of the file into dst after checking its shape. */
static lc_status read_tensor(const struct lc_st_file *f, const char *path, const char *name,
                             int ndim, const int64_t *shape, float *dst, struct lc_error *err)
{
    const struct lc_tensor_view *t = lc_st_find(f, name);
    int64_t n = 1;

    if (t == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s missing", path, name);
    }
    if (t->dtype != LC_DTYPE_F32 || t->ndim != ndim) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s must be F32 with %d dimensions (found %s, %d)",
                          path, name, ndim, lc_dtype_name(t->dtype), t->ndim);
    }
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] != shape[i]) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: %s has dimension %d of size %lld; this model needs %lld", path,
                              name, i, (long long)t->shape[i], (long long)shape[i]);
        }
        n *= shape[i];
    }
    memcpy(dst, t->data, (size_t)n * sizeof(float));
    return LC_OK;
}

lc_status lc_linattn_check_file(const struct lc_st_file *f, const char *path, int n_layers,
                                int n_heads, int head_dim, int feature_dim, struct lc_error *err)
{
    char name[128];
    const int64_t fshape[3] = {n_heads, head_dim, feature_dim};
    const struct lc_tensor_view *t;

    key_name(name, sizeof(name), 0, "feature_map_q.mlp.layer");
    t = lc_st_find(f, name);
    if (t == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s missing", path, name);
    }
    if (t->ndim != 3 || t->shape[0] != fshape[0] || t->shape[1] != fshape[1] ||
        t->shape[2] != fshape[2]) {
        char shape[128];
        lc_shape_format(shape, sizeof(shape), t->ndim, t->shape);
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %s has shape %s; feature_dim %d of this model needs [%d, %d, %d]",
                          path, name, shape, feature_dim, n_heads, head_dim, feature_dim);
    }
    /* every layer's two maps: the file must be large enough for them */
    if ((uint64_t)lc_st_data_bytes(f) / 8 / (uint64_t)n_layers / (uint64_t)n_heads /
            (uint64_t)head_dim < (uint64_t)feature_dim) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: too small for %d layers of feature maps of dimension %d", path,
                          n_layers, feature_dim);
    }
    return LC_OK;
}

lc_status lc_linattn_load_file(struct lc_linattn *a, const struct lc_st_file *f, const char *path,
                               struct lc_error *err)
{
    float *host = NULL;
    const int64_t fshape[3] = {a->H, a->D, a->cfg.feature_dim};
    const int64_t tshape[4] = {1, a->H, 1, 1};
    char name[128];
    lc_status rc = LC_OK;

    host = malloc(a->n_params * sizeof(float));
    if (host == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < a->L && rc == LC_OK; l++) {
        key_name(name, sizeof(name), l, "feature_map_q.mlp.layer");
        rc = read_tensor(f, path, name, 3, fshape, lc_linattn_wq(a, host, l), err);
        if (rc == LC_OK) {
            key_name(name, sizeof(name), l, "feature_map_k.mlp.layer");
            rc = read_tensor(f, path, name, 3, fshape, lc_linattn_wk(a, host, l), err);
        }
        if (rc == LC_OK) {
            key_name(name, sizeof(name), l, "window_factors");
            rc = read_tensor(f, path, name, 4, tshape, lc_linattn_theta(a, host, l), err);
        }
    }
    if (rc == LC_OK) {
        rc = lc_linattn_upload(a, host);
    }
    free(host);
    return rc;
}

lc_status lc_linattn_load(struct lc_linattn *a, const char *path, struct lc_error *err)
{
    struct lc_st_file *f = NULL;
    lc_status rc = lc_st_open(&f, path, err);
    if (rc == LC_OK) {
        rc = lc_linattn_load_file(a, f, path, err);
    }
    lc_st_close(f);
    return rc;
}

void lc_linattn_forward(const struct lc_linattn *a, const float *arena, int l, int B, int T,
                        const float *q, const float *k, const float *v, float *fq, float *fk,
                        float *y, float *mx, float *den)
{
    struct lc_backend *be = a->be;
    const int N = B * T;
    const int f = a->cfg.feature_dim;
    struct lc_attn_shape s = {
        .B = B, .T = T, .H = a->H, .Hkv = a->Hkv, .D = a->D, .F = 2 * f,
        .window = a->cfg.window, .mode = a->cfg.mode,
    };

    be->ops->fmap_fwd(be, fq, q, lc_linattn_wq(a, (float *)arena, l), N, a->H, a->H, a->D, f,
                      LC_FMAP_EPS);
    be->ops->fmap_fwd(be, fk, k, lc_linattn_wk(a, (float *)arena, l), N, a->H, a->Hkv, a->D, f,
                      LC_FMAP_EPS);
    be->ops->hybrid_fwd(be, y, mx, den, q, k, v, fq, fk, lc_linattn_theta(a, (float *)arena, l),
                        &s);
}
