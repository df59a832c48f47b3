/* Public model interface: open, logits, NLL, perplexity, decoding sessions. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/llama.h"
#include "core/model.h"
#include "core/ref/ref.h"
#include "core/safetensors.h"
#include "core/util.h"

/* rows of the forward scratch used by sessions and perplexity */
#define LC_CHUNK_ROWS 512
/* a later chunk of a linearized session shorter than this steps token by
 * token; from this length on it runs in the parallel form */
#define LC_BATCH_MIN_TOKENS 16

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

lc_status lc_model_random(struct lc_model **out, const struct lc_model_config *cfg,
                          uint64_t seed, struct lc_backend *be, struct lc_error *err)
{
    struct lc_model *m;
    lc_status rc;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_llama_random(&m->llama, cfg, LC_DTYPE_F32, seed, be, err);
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
    return m->llama->files != NULL ? lc_model_files_format(m->llama->files) : "random";
}

LC_API int64_t lc_model_mapped_bytes(const struct lc_model *m)
{
    return lc_llama_mapped_bytes(m->llama);
}

LC_API lc_status lc_model_page_in(struct lc_model *m,
                                  int (*progress)(int64_t done, int64_t total, void *user),
                                  void *user, struct lc_error *err)
{
    return lc_llama_page_in(m->llama, progress, user, err);
}

/* The forward scratch only grows: sized for the largest batch so far, it
 * is reused by later calls instead of being allocated per call (until a
 * change of attention or adapter drops it). */
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
    /* the windows do not overlap: each is a fresh forward from position
     * 0, with no context from the window before */
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

/*
 * What a session keeps of the tokens it has seen.
 *
 * Softmax attention (the teacher): every key and value, per layer
 * [max_tokens, Hkv, D], so the state grows with the context.
 *
 * Linearized attention: a window cache of keys and values (after RoPE,
 * Hkv heads, not repeated for grouped-query attention) and the linear
 * state S = sum_j phi_k(k_j)^T v_j [H, F, D], z = sum_j phi_k(k_j) [H, F]
 * per layer, fp32.  After n tokens, with lo(n) = lc_window_start(n - 1, W,
 * mode) (0 for n = 0), the first window key of the last query:
 *
 *   keys [0, lo(n)) are in S and z,   keys [lo(n), n) are in the cache.
 *
 * This is the split of the last query exactly, so a new token at
 * position p = n first moves keys [lo(p), lo(p + 1)) from the cache into
 * S and z (their features recomputed from the cached keys), then adds its
 * own key, then attends with hybrid_decode over the cache and the state:
 *
 *   sliding   lo(n) = max(0, n - W).  From the W+1-th token on, each token
 *             moves the oldest key into the state; the cache holds the last
 *             min(n, W) keys, key j in slot j % W (a ring: hybrid_decode
 *             takes the cached keys in any order).
 *   terraced  lo(n) = W * max(0, (n - 1) / W - 1), the start of the block
 *             before the last query's block.  A token that opens block
 *             b >= 2 (p = bW) moves the whole block b - 2 (W keys) into the
 *             state; the cache holds all n keys while n <= 2W, then between
 *             W+1 and 2W: key j in slot j - lo(n), compacted (the newer
 *             block copied down) when the older block leaves.
 *
 * Which key is where after n tokens depends only on n, never on how the
 * tokens were fed.  The first chunk of a session (positions from 0) runs the parallel
 * form (lc_linattn_forward, hybrid_fwd over the chunk) and then hands
 * keys [0, lo(n)) to S and z and keys [lo(n), n) to the cache.  A later
 * chunk of LC_BATCH_MIN_TOKENS or more does the same from the first
 * cached key on (linear_chunk), with the state added by hybrid_add_state;
 * a shorter one runs the step above token by token for the attention
 * (projections, feature maps of the queries, MLP and head stay batched
 * over the chunk).  Both cost O((W + F) D) per token and head.
 */
struct lc_session {
    struct lc_model *model;
    const struct lc_linattn *lin; /* the attention it was made for; NULL: softmax */
    uint64_t lin_serial;          /* and m->lin_serial then */
    int max_tokens;
    int length;
    int cache_rows; /* key rows per layer in kcache, vcache */
    float **kcache; /* per layer [cache_rows, Hkv, D] */
    float **vcache;
    float **S;      /* per layer [H, F, D], linearized only */
    float **z;      /* per layer [H, F] */
    float *fk_move; /* [W, H, F] features of the keys that leave the window */
    /* RoPE rows of the chunk being fed, [LC_CHUNK_ROWS, D/2] each: made per
     * chunk, so that no table grows with the session's length */
    float *rope_cos;
    float *rope_sin;
    float *rope_host; /* [2, LC_CHUNK_ROWS, D/2] */
    float *den;       /* [cache_rows + LC_CHUNK_ROWS, H] denominators of a batched chunk */
};

/* keys [0, lin_keys) of the first n tokens are in the linear state */
static int lin_keys(const struct lc_linattn *lin, int n)
{
    return n > 0 ? lc_window_start(n - 1, lin->cfg.window, lin->cfg.mode) : 0;
}

/* the cache slot of key j when keys [lo, ...) are cached */
static int cache_slot(const struct lc_linattn *lin, int j, int lo)
{
    return lin->cfg.mode == LC_WINDOW_SLIDING ? j % lin->cfg.window : j - lo;
}

/* the key rows of layer l's cache: a softmax layer of a linearized model
 * keeps every key */
static int layer_cache_rows(const struct lc_session *s, int l)
{
    return s->lin != NULL && lc_linattn_is_softmax(s->lin, l) ? s->max_tokens : s->cache_rows;
}

/* one buffer per layer of bytes_per_row times rows(s, l) bytes (rows NULL:
 * one row) */
static float **alloc_per_layer(const struct lc_session *s, size_t bytes_per_row,
                               int (*rows)(const struct lc_session *, int))
{
    struct lc_backend *be = s->model->llama->be;
    const int n_layers = s->model->llama->cfg.n_layers;
    float **p = calloc((size_t)n_layers, sizeof(float *));

    for (int l = 0; p != NULL && l < n_layers; l++) {
        size_t bytes = bytes_per_row * (size_t)(rows != NULL ? rows(s, l) : 1);
        p[l] = be->ops->alloc(be, bytes);
        if (p[l] == NULL) {
            for (int i = 0; i < l; i++) {
                be->ops->release(be, p[i]);
            }
            free(p);
            p = NULL;
        }
    }
    return p;
}

static void free_per_layer(struct lc_backend *be, float **p, int n_layers)
{
    if (p != NULL) {
        for (int l = 0; l < n_layers; l++) {
            be->ops->release(be, p[l]);
        }
        free(p);
    }
}

LC_API lc_status lc_session_new(struct lc_session **out, struct lc_model *m, int max_tokens,
                                struct lc_error *err)
{
    struct lc_backend *be = m->llama->be;
    const struct lc_model_config *c = &m->llama->cfg;
    const struct lc_linattn *lin = m->llama->lin;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    struct lc_session *s;

    *out = NULL;
    if (max_tokens <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "a session needs room for at least one token");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    s->model = m;
    s->lin = lin;
    s->lin_serial = m->lin_serial;
    s->max_tokens = max_tokens;
    s->cache_rows = max_tokens;
    if (lin != NULL) {
        const int W = lin->cfg.window;
        const size_t HF = (size_t)c->n_heads * 2 * (size_t)lin->cfg.feature_dim;
        const int need = lin->cfg.mode == LC_WINDOW_SLIDING ? W : 2 * W;

        /* the most keys the window part ever holds: a query's last W keys
         * (sliding), or its own block and the one before (terraced) */
        s->cache_rows = need < max_tokens ? need : max_tokens;
        s->S = alloc_per_layer(s, HF * (size_t)c->head_dim * sizeof(float), NULL);
        s->z = alloc_per_layer(s, HF * sizeof(float), NULL);
        /* at most W keys leave the window at a time, and never more than
         * the session holds */
        s->fk_move = be->ops->alloc(be, (size_t)(W < max_tokens ? W : max_tokens) * HF *
                                            sizeof(float));
        /* a batched chunk's rows: the cached keys' rows, then its own */
        s->den = be->ops->alloc(be, (size_t)(s->cache_rows + LC_CHUNK_ROWS) *
                                        (size_t)c->n_heads * sizeof(float));
        if (s->S == NULL || s->z == NULL || s->fk_move == NULL || s->den == NULL) {
            lc_session_free(s);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory for the linear attention state");
        }
    }
    s->kcache = alloc_per_layer(s, KD * sizeof(float), layer_cache_rows);
    s->vcache = alloc_per_layer(s, KD * sizeof(float), layer_cache_rows);
    if (s->kcache == NULL || s->vcache == NULL) {
        lc_session_free(s);
        return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for a KV cache of %d tokens",
                          s->cache_rows);
    }
    {
        const size_t rope_bytes = (size_t)LC_CHUNK_ROWS * (size_t)(c->head_dim / 2) * sizeof(float);
        s->rope_cos = be->ops->alloc(be, rope_bytes);
        s->rope_sin = be->ops->alloc(be, rope_bytes);
        s->rope_host = malloc(2 * rope_bytes);
        if (s->rope_cos == NULL || s->rope_sin == NULL || s->rope_host == NULL) {
            lc_session_free(s);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory for RoPE rows");
        }
    }
    *out = s;
    return LC_OK;
}

LC_API void lc_session_free(struct lc_session *s)
{
    struct lc_backend *be;
    int L;

    if (s == NULL) {
        return;
    }
    be = s->model->llama->be;
    L = s->model->llama->cfg.n_layers;
    free_per_layer(be, s->kcache, L);
    free_per_layer(be, s->vcache, L);
    free_per_layer(be, s->S, L);
    free_per_layer(be, s->z, L);
    be->ops->release(be, s->fk_move);
    be->ops->release(be, s->den);
    be->ops->release(be, s->rope_cos);
    be->ops->release(be, s->rope_sin);
    free(s->rope_host);
    free(s);
}

LC_API int lc_session_length(const struct lc_session *s)
{
    return s->length;
}

/* The cache rows in use (a linearized model's cache stops growing once it
 * has held 2W keys, W when sliding) and the linear states. */
LC_API size_t lc_session_state_bytes(const struct lc_session *s)
{
    const struct lc_model_config *c = &s->model->llama->cfg;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t total = 0;

    for (int l = 0; l < c->n_layers; l++) {
        size_t rows = (size_t)s->length;
        if (s->lin != NULL && !lc_linattn_is_softmax(s->lin, l)) {
            const size_t HF = (size_t)c->n_heads * 2 * (size_t)s->lin->cfg.feature_dim;
            rows = rows < (size_t)s->cache_rows ? rows : (size_t)s->cache_rows;
            total += HF * (size_t)c->head_dim + HF;
        }
        total += 2 * rows * KD;
    }
    return total * sizeof(float);
}

/* Softmax attention of one layer for the chunk's n tokens at positions
 * p0..p0+n-1: their keys join the cache, the queries see all of it. */
static void softmax_chunk(struct lc_session *s, int l, int p0, int n)
{
    struct lc_llama *m = s->model->llama;
    struct lc_llama_fwd *f = &s->model->fwd;
    const struct lc_backend_ops *o = m->be->ops;
    const struct lc_model_config *c = &m->cfg;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    float *kc = s->kcache[l];
    float *vc = s->vcache[l];

    /* the cache is in position order, so attn_fwd's causal rule counted
     * from q_pos0 = p0 applies as it stands */
    o->copy(m->be, kc + (size_t)p0 * KD, f->k, (size_t)n * KD * sizeof(float));
    o->copy(m->be, vc + (size_t)p0 * KD, f->v, (size_t)n * KD * sizeof(float));
    o->attn_fwd(m->be, f->att, f->q, kc, vc, 1, n, p0 + n, c->n_heads, c->n_kv_heads,
                c->head_dim, p0);
}

/* Keys [lo, end) between their cache slots (keys [lo, ...) cached) and
 * rows j - first of k and v: into the cache (to_cache), or out of it.
 * Runs of consecutive slots: a sliding ring wraps at most once. */
static void cache_copy(struct lc_session *s, int l, float *k, float *v, int first, int lo,
                       int end, int to_cache)
{
    struct lc_backend *be = s->model->llama->be;
    const struct lc_linattn *lin = s->lin;
    const struct lc_model_config *c = &s->model->llama->cfg;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;

    for (int j = lo; j < end;) {
        const int slot = cache_slot(lin, j, lo);
        const size_t bytes_per_key = KD * sizeof(float);
        float *kc = s->kcache[l] + (size_t)slot * KD;
        float *vc = s->vcache[l] + (size_t)slot * KD;
        float *kr = k + (size_t)(j - first) * KD;
        float *vr = v + (size_t)(j - first) * KD;
        int run = end - j;

        if (lin->cfg.mode == LC_WINDOW_SLIDING && run > lin->cfg.window - slot) {
            run = lin->cfg.window - slot;
        }
        be->ops->copy(be, to_cache ? kc : kr, to_cache ? kr : kc, (size_t)run * bytes_per_key);
        be->ops->copy(be, to_cache ? vc : vr, to_cache ? vr : vc, (size_t)run * bytes_per_key);
        j += run;
    }
}

/* A chunk of n tokens at positions p0..p0+n-1 in the parallel form.  Its
 * queries see keys from base = lin_keys(p0) on in the window and the
 * linear part, the state S, z the keys before.  As base starts a block
 * (terraced) or lies a whole window back (sliding), the window rule
 * counted from base is the rule counted from 0; so the chunk runs as a
 * sequence of nc = p0 - base cached keys (with dummy queries) and its own
 * n tokens, whose rows [nc, nc + n) of q, k, v the caller filled, and
 * hybrid_add_state adds the state.  Then keys [base, lin_keys(p0 + n))
 * move into the state and the rest into the cache. */
static void linear_chunk(struct lc_session *s, int l, int p0, int n)
{
    struct lc_llama *m = s->model->llama;
    struct lc_llama_fwd *f = &s->model->fwd;
    struct lc_backend *be = m->be;
    const struct lc_linattn *lin = s->lin;
    const struct lc_model_config *c = &m->cfg;
    const int H = c->n_heads, D = c->head_dim;
    const int F = 2 * lin->cfg.feature_dim;
    const size_t HD = (size_t)H * (size_t)D;
    const int base = lin_keys(lin, p0);
    const int nc = p0 - base;
    const int lo = lin_keys(lin, p0 + n);

    if (nc > 0) {
        /* the cached keys in key order, and queries that are never used */
        cache_copy(s, l, f->k, f->v, base, base, p0, 0);
        be->ops->zero(be, f->q, (size_t)nc * HD * sizeof(float));
    }
    lc_linattn_forward(lin, lin->params, l, 1, nc + n, f->q, f->k, f->v, f->fq, f->fk, f->att,
                       NULL, s->den);
    /* keys before base are in S and z only: their part is added to the
     * chunk's rows, renormalized with the denominators just computed */
    if (base > 0) {
        be->ops->hybrid_add_state(be, f->att + (size_t)nc * HD, s->den + (size_t)nc * H,
                                  f->fq + (size_t)nc * H * F, s->S[l], s->z[l], n, H, D, F);
    }
    /* f->fk holds the features of keys [base, ...) from the forward above:
     * the ones that leave the window need not be computed again */
    if (lo > base) {
        be->ops->linstate_add(be, s->S[l], s->z[l], f->fk, f->v, lo - base, H, c->n_kv_heads, D,
                              F);
    }
    cache_copy(s, l, f->k, f->v, base, lo, p0 + n, 1);
}

/* The decode step of layer l for the token at position p, row i of the
 * chunk's q, k, v, fq (see the comment above struct lc_session). */
static void linear_step(struct lc_session *s, int l, int p, int i)
{
    struct lc_llama *m = s->model->llama;
    struct lc_llama_fwd *f = &s->model->fwd;
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_linattn *lin = s->lin;
    const struct lc_model_config *c = &m->cfg;
    const int H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    const int F = 2 * lin->cfg.feature_dim;
    const size_t KD = (size_t)Hkv * (size_t)D;
    const int lo = lin_keys(lin, p);     /* the cache holds keys [lo, p) */
    const int lo_next = lin_keys(lin, p + 1);
    const int moved = lo_next - lo;
    float *kc = s->kcache[l];
    float *vc = s->vcache[l];
    int slot;

    if (moved > 0) {
        /* keys [lo, lo_next) leave the window: sliding, the one in slot
         * lo % W; terraced, the older block in slots [0, W) */
        const int first = cache_slot(lin, lo, lo);
        o->fmap_fwd(be, s->fk_move, kc + (size_t)first * KD, lc_linattn_wk(lin, lin->params, l),
                    moved, H, Hkv, D, lin->cfg.feature_dim, LC_FMAP_EPS);
        o->linstate_add(be, s->S[l], s->z[l], s->fk_move, vc + (size_t)first * KD, moved, H, Hkv,
                        D, F);
        /* terraced: the newer block moves down to slot 0, so that key j
         * stays in slot j - lo */
        if (lin->cfg.mode == LC_WINDOW_TERRACED) {
            const size_t kept = (size_t)(p - lo_next) * KD * sizeof(float);
            o->copy(be, kc, kc + (size_t)moved * KD, kept);
            o->copy(be, vc, vc + (size_t)moved * KD, kept);
        }
    }
    slot = cache_slot(lin, p, lo_next);
    o->copy(be, kc + (size_t)slot * KD, f->k + (size_t)i * KD, KD * sizeof(float));
    o->copy(be, vc + (size_t)slot * KD, f->v + (size_t)i * KD, KD * sizeof(float));
    o->hybrid_decode(be, f->att + (size_t)i * H * D, f->q + (size_t)i * H * D,
                     f->fq + (size_t)i * H * F, kc, vc, p + 1 - lo_next, s->S[l], s->z[l],
                     lc_linattn_theta(lin, lin->params, l), H, Hkv, D, F);
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
    const struct lc_linattn *lin = s->lin;
    const int p0 = s->length;
    const size_t half = (size_t)(c->head_dim / 2);
    const size_t HD = (size_t)c->n_heads * (size_t)c->head_dim;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    /* a linearized chunk runs in the parallel form from position 0, and
     * later when it is long enough to be worth its cached keys' rows;
     * shorter later chunks step token by token.  The parallel form puts
     * the cached keys ahead of the chunk's rows. */
    const int batched = lin != NULL && (p0 == 0 || n >= LC_BATCH_MIN_TOKENS);
    const int nc = batched ? p0 - lin_keys(lin, p0) : 0; /* keys the cache holds */
    int32_t pos[LC_CHUNK_ROWS];

    /* the chunk's own RoPE rows, row i for position p0 + i */
    for (int i = 0; i < n; i++) {
        pos[i] = i;
    }
    lc_llama_rope_rows(m, p0, n, s->rope_host, s->rope_host + (size_t)n * half);
    o->upload(be, s->rope_cos, s->rope_host, (size_t)n * half * sizeof(float));
    o->upload(be, s->rope_sin, s->rope_host + (size_t)n * half, (size_t)n * half * sizeof(float));
    o->upload(be, f->pos, pos, (size_t)n * sizeof(int32_t));
    o->upload(be, f->ids, ids, (size_t)n * sizeof(int32_t));
    lc_llama_embed(m, f->x, f->ids, n);
    for (int l = 0; l < c->n_layers; l++) {
        /* a softmax layer of a linearized model decodes as the teacher */
        const int softmax = lin == NULL || lc_linattn_is_softmax(lin, l);
        const int off = softmax ? 0 : nc;
        o->rmsnorm_fwd(be, f->xn, NULL, f->x, m->layers[l].attn_norm, n, c->hidden_size,
                       c->rms_norm_eps);
        lc_llama_qkv_tab(m, l, f->xn, f->q + (size_t)off * HD, f->k + (size_t)off * KD,
                         f->v + (size_t)off * KD, f->pos, s->rope_cos, s->rope_sin, n);
        if (softmax) {
            softmax_chunk(s, l, p0, n);
        } else if (batched) {
            linear_chunk(s, l, p0, n);
        } else {
            o->fmap_fwd(be, f->fq, f->q, lc_linattn_wq(lin, lin->params, l), n, c->n_heads,
                        c->n_heads, c->head_dim, lin->cfg.feature_dim, LC_FMAP_EPS);
            for (int i = 0; i < n; i++) {
                linear_step(s, l, p0 + i, i);
            }
        }
        lc_llama_attn_out(m, l, f->x, f->att + (size_t)off * HD, n);
        lc_llama_mlp(m, l, f->x, f->xn, f->gate, f->up, n);
    }
    s->length += n;
    /* only the last token's logits: the one that predicts the next token */
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
    if (s->model->llama->lin != s->lin ||
        (s->lin != NULL && s->model->lin_serial != s->lin_serial)) {
        return lc_err_set(err, LC_ERR_ARG,
                          "the model's attention changed since the session began (%s then, %s now)",
                          s->lin != NULL ? "linearized" : "softmax",
                          s->model->llama->lin != NULL ? "linearized" : "softmax");
    }
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            return lc_err_set(err, LC_ERR_ARG, "token id %d is outside the vocabulary (%d)", ids[i],
                              c->vocab_size);
        }
    }
    /* a batched linearized chunk has the cached keys' rows ahead of its own */
    rc = lc_model_reserve_rows(s->model,
                               (n < LC_CHUNK_ROWS ? n : LC_CHUNK_ROWS) +
                                   (s->lin != NULL ? s->cache_rows : 0),
                               err);
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
    if (m->llama->lin != NULL && m->llama->lora != (use_adapter ? m->lora : NULL)) {
        drop_scratch(m); /* sized for the adapter's scratch on the next use */
        m->llama->lora = use_adapter ? m->lora : NULL;
        m->lin_serial++; /* other weights: sessions made before refuse to go on */
    }
}

void lc_model_attach_linattn(struct lc_model *m, struct lc_linattn *lin)
{
    drop_scratch(m);
    lc_linattn_free(m->lin);
    m->lin = lin;
    m->llama->lin = lin;
    m->lin_serial++; /* sessions made before refuse to go on */
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

/* A linear attention of configuration cfg for m with the feature maps and
 * window factors of the file path, which must agree with the shapes first
 * (the feature dimension sizes the allocation). */
static lc_status read_feature_maps(struct lc_model *m, const struct lc_linattn_cfg *cfg,
                                   const unsigned char *softmax, int n_softmax, const char *path,
                                   struct lc_linattn **out, struct lc_error *err)
{
    const struct lc_model_config *c = &m->llama->cfg;
    struct lc_st_file *f = NULL;
    struct lc_linattn *lin = NULL;
    int first_lin = 0;
    lc_status rc = lc_st_open(&f, path, err);

    /* the layers that keep softmax attention (flags softmax[l]) have no
     * maps in the file */
    while (softmax != NULL && first_lin < c->n_layers && softmax[first_lin]) {
        first_lin++;
    }
    /* the feature dimension sizes the allocation: the file must agree first */
    if (rc == LC_OK) {
        rc = lc_linattn_check_file(f, path, c->n_layers - n_softmax, first_lin, c->n_heads,
                                   c->head_dim, cfg->feature_dim, err);
    }
    if (rc == LC_OK) {
        rc = lc_linattn_new(&lin, m->llama, cfg, err);
    }
    if (rc == LC_OK && n_softmax > 0) {
        lin->softmax = malloc((size_t)c->n_layers);
        if (lin->softmax == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        } else {
            memcpy(lin->softmax, softmax, (size_t)c->n_layers);
            lin->n_softmax = n_softmax;
        }
    }
    if (rc == LC_OK) {
        rc = lc_linattn_load_file(lin, f, path, err);
    }
    lc_st_close(f);
    if (rc != LC_OK) {
        lc_linattn_free(lin);
        lin = NULL;
    }
    *out = lin;
    return rc;
}

LC_API lc_status lc_model_load_lolcats(struct lc_model *m, const char *dir, struct lc_error *err)
{
    const struct lc_model_config *c = &m->llama->cfg;
    char *path = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    json_t *attn;
    json_t *base;
    const char *mode;
    int softmax;
    struct lc_linattn_cfg cfg;
    struct lc_linattn *lin = NULL;
    struct lc_lora *lora = NULL;
    struct lc_linattn shape; /* the softmax layers only */
    int v;
    lc_status rc;

    memset(&shape, 0, sizeof(shape));
    path = lc_path_join(dir, "lolcats_config.json");
    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    root = json_load_file(path, 0, &jerr);
    if (root == NULL && jerr.line < 1) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: %s", path, jerr.text); /* not opened */
        goto done;
    }
    if (root == NULL) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
        goto done;
    }
    attn = json_object_get(root, "attention");
    base = json_object_get(root, "base_model");
    softmax = json_is_object(attn) &&
              json_is_string(json_object_get(attn, "type")) &&
              strcmp(json_string_value(json_object_get(attn, "type")), "softmax") == 0;
    mode = json_string_value(json_object_get(attn, "window_mode"));
    /* (type "softmax": the lora-only stage, the original attention with an
     * adapter, has no linear attention to read) */
    if (!softmax && (!json_is_object(attn) ||
                     !json_int_field(attn, "feature_dim", &cfg.feature_dim) ||
                     !json_int_field(attn, "window", &cfg.window) || mode == NULL)) {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: \"attention\" needs integer feature_dim and window, and window_mode",
                        path);
        goto done;
    }
    if (softmax) {
        cfg.mode = LC_WINDOW_SLIDING; /* unused */
    } else if (strcmp(mode, "terraced") == 0) {
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
    /* the layers that keep softmax attention */
    shape.L = c->n_layers;
    rc = lc_read_softmax_layers(&shape, attn, path, err);
    if (rc != LC_OK) {
        goto done;
    }
    if (!softmax) {
        free(path);
        path = lc_path_join(dir, "feature_maps.safetensors");
        rc = path != NULL ? read_feature_maps(m, &cfg, shape.softmax, shape.n_softmax, path, &lin,
                                              err)
                          : lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        if (rc != LC_OK) {
            goto done;
        }
    }
    /* the LoRA adapter of stage 2, when the folder has one (the lora-only
     * stage's folder must) */
    free(path);
    path = lc_path_join(dir, LC_ADAPTER_CONFIG_FILE);
    if (path == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (access(path, F_OK) == 0 || softmax) {
        rc = lc_lora_load(&lora, m->llama, dir, err);
        if (rc != LC_OK) {
            goto done;
        }
    }
    lc_lora_free(m->lora);
    m->lora = lora;
    lc_model_attach_linattn(m, lin);
    m->llama->lora = m->no_adapter ? NULL : lora;
    lin = NULL;
    lora = NULL;

done:
    free(shape.softmax);
    lc_linattn_free(lin);
    lc_lora_free(lora);
    json_decref(root);
    free(path);
    return rc;
}

LC_API lc_status lc_model_load_feature_maps(struct lc_model *m, const char *path,
                                            struct lc_error *err)
{
    struct lc_linattn *lin = NULL;
    lc_status rc;

    if (m->lin == NULL) {
        return lc_err_set(err, LC_ERR_ARG,
                          "%s: the model has no linear attention whose feature maps these would "
                          "replace (load a linearized folder first)",
                          path);
    }
    rc = read_feature_maps(m, &m->lin->cfg, m->lin->softmax, m->lin->n_softmax, path, &lin, err);
    if (rc == LC_OK) {
        lc_model_attach_linattn(m, lin);
    }
    return rc;
}
