/*
 * The linearized attention of every layer: Hedgehog feature maps for q and
 * k (per layer and query head, [H, D, f]) and the window factors theta
 * (per layer and head; the softmax window is weighted by sigmoid(theta)),
 * in one flat fp32 parameter arena on the backend.
 *
 * Arena layout, layer after layer:
 *   Wq [H, D, f] | Wk [H, D, f] | theta [H]
 */
#ifndef LC_CORE_LINATTN_H
#define LC_CORE_LINATTN_H

#include "core/backend.h"
#include "lolcats/lolcats.h"

struct lc_llama;

/* theta at initialization: sigmoid(theta) = 0.1, as the reference code */
#define LC_THETA_INIT (-2.1972245773362196)
/* lower clamp of the feature map outputs */
#define LC_FMAP_EPS 1e-12f

struct lc_linattn_cfg {
    int feature_dim; /* f: each half of phi has f entries, F = 2f */
    int window;      /* W */
    int mode;        /* enum lc_window_mode */
};

struct lc_linattn {
    struct lc_backend *be;
    struct lc_linattn_cfg cfg;
    int L, H, Hkv, D;
    size_t layer_size; /* floats per layer: 2*H*D*f + H */
    size_t n_params;   /* L * layer_size */
    float *params;     /* backend [n_params] */
    /* host [L]: 1 where the layer keeps its softmax attention (a hybrid
     * model); its part of the arena is unused and not saved.  NULL: none */
    unsigned char *softmax;
    int n_softmax;
};

static inline int lc_linattn_is_softmax(const struct lc_linattn *a, int l)
{
    return a->softmax != NULL && a->softmax[l];
}

/* Pointers into the arena (any arena of the same layout, e.g. gradients). */
static inline float *lc_linattn_wq(const struct lc_linattn *a, float *arena, int l)
{
    return arena + (size_t)l * a->layer_size;
}
static inline float *lc_linattn_wk(const struct lc_linattn *a, float *arena, int l)
{
    return arena + (size_t)l * a->layer_size + (size_t)a->H * a->D * a->cfg.feature_dim;
}
static inline float *lc_linattn_theta(const struct lc_linattn *a, float *arena, int l)
{
    return arena + (size_t)l * a->layer_size + 2 * (size_t)a->H * a->D * a->cfg.feature_dim;
}

/* New parameters for model m, initialized as the reference code does with
 * --lk_zero_init: every W[h] is the rectangular identity (W[h][i][i] = 1
 * for i < min(D, f)) and theta = LC_THETA_INIT. */
lc_status lc_linattn_new(struct lc_linattn **out, const struct lc_llama *m,
                         const struct lc_linattn_cfg *cfg, struct lc_error *err);
void lc_linattn_free(struct lc_linattn *a);

/* Keeps the softmax attention of the n layers listed (the rest are
 * linearized): each index in [0, L), no repeats, at least one layer left
 * to linearize.  Replaces an earlier list. */
lc_status lc_linattn_set_softmax(struct lc_linattn *a, const int *layers, int n,
                                 struct lc_error *err);

struct json_t;
/* The "softmax_layers" array of a lolcats_config.json "attention" object
 * (absent: none) into a->softmax; errors name path. */
lc_status lc_read_softmax_layers(struct lc_linattn *a, const struct json_t *attn, const char *path,
                                 struct lc_error *err);
/* Whether the lolcats_config.json in dir lists the same softmax layers as
 * a (LC_ERR_ARG naming both lists when not). */
lc_status lc_check_softmax_layers(const struct lc_linattn *a, const char *dir,
                                  struct lc_error *err);

/* Host copy of the whole arena. */
lc_status lc_linattn_download(const struct lc_linattn *a, float *host);
lc_status lc_linattn_upload(struct lc_linattn *a, const float *host);

/* feature_maps.safetensors with the reference code's key names:
 *   model.layers.{i}.self_attn.feature_map_q.mlp.layer  [H, D, f]
 *   model.layers.{i}.self_attn.feature_map_k.mlp.layer  [H, D, f]
 *   model.layers.{i}.self_attn.window_factors           [1, H, 1, 1]
 * from a host arena, for every linearized layer (softmax layers have no
 * keys, as in the reference code). */
lc_status lc_linattn_save(const struct lc_linattn *a, const float *host_arena, const char *path,
                          struct lc_error *err);
/* The same for layers [l0, l1) only. */
lc_status lc_linattn_save_layers(const struct lc_linattn *a, const float *host_arena, int l0,
                                 int l1, const char *path, struct lc_error *err);
/* Reads such a file into the arena; shapes must match.  The keys of
 * softmax layers are not needed (and ignored when present). */
lc_status lc_linattn_load(struct lc_linattn *a, const char *path, struct lc_error *err);
/* The linearized layers among [l0, l1) of such a file into a host arena. */
lc_status lc_linattn_read_layers(const struct lc_linattn *a, const char *path, int l0, int l1,
                                 float *host_arena, struct lc_error *err);
struct lc_st_file;
lc_status lc_linattn_load_file(struct lc_linattn *a, const struct lc_st_file *f, const char *path,
                               struct lc_error *err);
/* Before anything is allocated for them: whether the file (path names it)
 * holds feature maps of dimension feature_dim for this model shape (the
 * map of layer first_lin, the first linearized layer, has shape [n_heads,
 * head_dim, feature_dim] and the data is large enough for all n_lin
 * linearized layers). */
lc_status lc_linattn_check_file(const struct lc_st_file *f, const char *path, int n_lin,
                                int first_lin, int n_heads, int head_dim, int feature_dim,
                                struct lc_error *err);

/* The hybrid attention of layer l for q [N,H*D], k, v [N,Hkv*D] (after
 * RoPE): fq, fk [N,H*F] receive the features, y [N,H*D] the output, mx
 * and den [N,H] (nullable) what the backward needs.  A softmax layer runs
 * the causal softmax attention (attn_fwd, as the teacher) into y and
 * leaves fq, fk, mx and den untouched. */
void lc_linattn_forward(const struct lc_linattn *a, const float *arena, int l, int B, int T,
                        const float *q, const float *k, const float *v, float *fq, float *fk,
                        float *y, float *mx, float *den);

#endif /* LC_CORE_LINATTN_H */
