/*
 * The linearized attention of every layer: Hedgehog feature maps for q and
 * k (per layer and query head, [H, D, f]) and the window factors theta
 * (per layer and head; the softmax window is weighted by sigmoid(theta)),
 * in one flat fp32 parameter arena on the backend.
 *
 * Arena layout, layer after layer:
 *   Wq [H, D, f] | Wk [H, D, f] | theta [H]
 */
#ifndef LC_CORE_LOLCATS_H
#define LC_CORE_LOLCATS_H

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
};

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

/* Host copy of the whole arena. */
lc_status lc_linattn_download(const struct lc_linattn *a, float *host);
lc_status lc_linattn_upload(struct lc_linattn *a, const float *host);

/* feature_maps.safetensors with the reference code's key names:
 *   model.layers.{i}.self_attn.feature_map_q.mlp.layer  [H, D, f]
 *   model.layers.{i}.self_attn.feature_map_k.mlp.layer  [H, D, f]
 *   model.layers.{i}.self_attn.window_factors           [1, H, 1, 1]
 * from a host arena. */
lc_status lc_linattn_save(const struct lc_linattn *a, const float *host_arena, const char *path,
                          struct lc_error *err);
/* Reads such a file into the arena; shapes must match. */
lc_status lc_linattn_load(struct lc_linattn *a, const char *path, struct lc_error *err);
struct lc_st_file;
lc_status lc_linattn_load_file(struct lc_linattn *a, const struct lc_st_file *f, const char *path,
                               struct lc_error *err);
/* Before anything is allocated for them: whether the file (path names it)
 * holds feature maps of dimension feature_dim for this model shape (layer
 * 0's map has shape [n_heads, head_dim, feature_dim] and the data is
 * large enough for all layers). */
lc_status lc_linattn_check_file(const struct lc_st_file *f, const char *path, int n_layers,
                                int n_heads, int head_dim, int feature_dim, struct lc_error *err);

/* The hybrid attention of layer l for q [N,H*D], k, v [N,Hkv*D] (after
 * RoPE): fq, fk [N,H*F] receive the features, y [N,H*D] the output, mx
 * and den [N,H] (nullable) what the backward needs. */
void lc_linattn_forward(const struct lc_linattn *a, const float *arena, int l, int B, int T,
                        const float *q, const float *k, const float *v, float *fq, float *fk,
                        float *y, float *mx, float *den);

#endif /* LC_CORE_LOLCATS_H */
