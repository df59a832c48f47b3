/*
 * Stage 1, attention transfer (method doc section 4).  The frozen model
 * runs forward with its own softmax attention (teacher forcing: every
 * layer's residual stream is the original model's), and in every layer the
 * hybrid attention is computed from the same q, k, v and trained to match
 * the softmax output per head before o_proj:
 *
 *   loss = mse_weight * mean_l MSE_l + xent_weight * mean_l XENT_l
 *
 * Only the feature maps and the window factors receive gradients, and each
 * layer's only from its own term, so layers are processed one at a time
 * and nothing is kept across layers.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/train.h"
#include "core/util.h"

struct transfer_ctx {
    float *grads;   /* [n_params], same layout as the feature-map arena */
    float *adam_m;
    float *adam_v;
    float *best;    /* host */
    float *ys;      /* [N, H*D] student output */
    float *dy;      /* [N, H*D] */
    float *fq;      /* [N, H*F] */
    float *fk;      /* [N, H*F] */
    float *dfq;     /* [N, H*F] */
    float *dfk;     /* [N, H*F] */
    float *mx;      /* [N, H] */
    float *den;     /* [N, H] */
    float *row_sse; /* [N] */
    float *row_x;   /* [N*H] */
    float *dtheta_scratch; /* [H] */
    float *host_rows; /* host [N*H] */
};

lc_status lc_transfer_setup(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_backend *be = tr->be;
    const struct lc_model_config *c = &tr->m->cfg;
    const size_t N = (size_t)tr->B * (size_t)tr->T;
    const size_t HD = (size_t)c->n_heads * (size_t)c->head_dim;
    const size_t HF = (size_t)c->n_heads * 2 * (size_t)tr->o->feature_dim;
    const size_t H = (size_t)c->n_heads;
    const size_t n = tr->lin->n_params;
    struct transfer_ctx *x = calloc(1, sizeof(*x));

    if (x == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    tr->stage_ctx = x;
    x->grads = be->ops->alloc(be, n * sizeof(float));
    x->adam_m = be->ops->alloc(be, n * sizeof(float));
    x->adam_v = be->ops->alloc(be, n * sizeof(float));
    x->best = malloc(n * sizeof(float));
    x->ys = be->ops->alloc(be, N * HD * sizeof(float));
    x->dy = be->ops->alloc(be, N * HD * sizeof(float));
    x->fq = be->ops->alloc(be, N * HF * sizeof(float));
    x->fk = be->ops->alloc(be, N * HF * sizeof(float));
    x->dfq = be->ops->alloc(be, N * HF * sizeof(float));
    x->dfk = be->ops->alloc(be, N * HF * sizeof(float));
    x->mx = be->ops->alloc(be, N * H * sizeof(float));
    x->den = be->ops->alloc(be, N * H * sizeof(float));
    x->row_sse = be->ops->alloc(be, N * sizeof(float));
    x->row_x = be->ops->alloc(be, N * H * sizeof(float));
    x->dtheta_scratch = be->ops->alloc(be, H * sizeof(float));
    x->host_rows = malloc(N * H * sizeof(float));
    if (x->grads == NULL || x->adam_m == NULL || x->adam_v == NULL || x->best == NULL ||
        x->ys == NULL || x->dy == NULL || x->fq == NULL || x->fk == NULL || x->dfq == NULL ||
        x->dfk == NULL || x->mx == NULL || x->den == NULL || x->row_sse == NULL ||
        x->row_x == NULL || x->dtheta_scratch == NULL || x->host_rows == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM,
                          "out of memory for attention transfer on batches of %zu tokens", N);
    }
    tr->n_groups = 1;
    tr->groups[0] = (struct lc_param_group){
        .name = "feature_maps",
        .params = tr->lin->params,
        .grads = x->grads,
        .adam_m = x->adam_m,
        .adam_v = x->adam_v,
        .best = x->best,
        .n = n,
    };
    return LC_OK;
}

void lc_transfer_teardown(struct lc_trainer *tr)
{
    struct transfer_ctx *x = tr->stage_ctx;
    struct lc_backend *be = tr->be;

    if (x == NULL) {
        return;
    }
    void *dev[] = {x->grads, x->adam_m, x->adam_v, x->ys,  x->dy,      x->fq,   x->fk,
                   x->dfq,   x->dfk,    x->mx,     x->den, x->row_sse, x->row_x, x->dtheta_scratch};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) {
        be->ops->release(be, dev[i]);
    }
    free(x->best);
    free(x->host_rows);
    free(x);
    tr->stage_ctx = NULL;
    tr->n_groups = 0;
}

/* Sum of n host floats in a fixed order, in double. */
static double host_sum(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += v[i];
    }
    return s;
}

static lc_status transfer_microbatch(struct lc_trainer *tr, const int32_t *ids,
                                     const int32_t *labels, int B, int backward, double grad_div,
                                     double *loss, double *layer_loss, struct lc_error *err)
{
    struct transfer_ctx *x = tr->stage_ctx;
    struct lc_llama *m = tr->m;
    struct lc_llama_fwd *f = &tr->model->fwd;
    struct lc_backend *be = tr->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const struct lc_linattn *lin = tr->lin;
    const struct lc_train_opts *opt = tr->o;
    const int T = tr->T;
    const int N = B * T;
    const int L = c->n_layers;
    const int H = c->n_heads;
    const int D = c->head_dim;
    const int fdim = lin->cfg.feature_dim;
    const size_t HD = (size_t)H * (size_t)D;
    struct lc_attn_shape s = {
        .B = B, .T = T, .H = H, .Hkv = c->n_kv_heads, .D = D, .F = 2 * fdim,
        .window = lin->cfg.window, .mode = lin->cfg.mode,
    };
    /* d(loss)/d(y_student) of the MSE term, per element */
    const float mse_scale = (float)(opt->mse_weight / (double)L / ((double)N * (double)HD) / grad_div);
    const float xent_scale = (float)(opt->xent_weight / (double)L / ((double)N * H) / grad_div);
    int32_t *pos = malloc((size_t)N * sizeof(int32_t));
    double total = 0.0;
    lc_status rc;

    (void)labels;
    if (pos == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            pos[b * T + t] = t;
        }
    }
    rc = lc_llama_rope_reserve(m, T, err);
    if (rc != LC_OK) {
        free(pos);
        return rc;
    }
    o->upload(be, f->pos, pos, (size_t)N * sizeof(int32_t));
    o->upload(be, f->ids, ids, (size_t)N * sizeof(int32_t));
    free(pos);
    lc_llama_embed(m, f->x, f->ids, N);
    for (int l = 0; l < L; l++) {
        float *params = lin->params;
        float *grads = x->grads;
        double mse;
        double xent = 0.0;

        o->rmsnorm_fwd(be, f->xn, NULL, f->x, m->layers[l].attn_norm, N, c->hidden_size,
                       c->rms_norm_eps);
        lc_llama_qkv(m, l, f->xn, f->q, f->k, f->v, f->pos, N);
        /* teacher: softmax attention, the target and the residual input */
        o->attn_fwd(be, f->att, f->q, f->k, f->v, B, T, T, H, c->n_kv_heads, D, 0);
        /* student */
        lc_linattn_forward(lin, params, l, B, T, f->q, f->k, f->v, x->fq, x->fk, x->ys, x->mx,
                           x->den);
        o->mse_fwd_bwd(be, x->row_sse, backward ? x->dy : NULL, x->ys, f->att, N, (int)HD,
                       mse_scale);
        o->download(be, x->host_rows, x->row_sse, (size_t)N * sizeof(float));
        rc = o->sync(be, err);
        if (rc != LC_OK) {
            return rc;
        }
        mse = host_sum(x->host_rows, (size_t)N) / ((double)N * (double)HD);
        if (backward) {
            o->hybrid_bwd(be, NULL, NULL, NULL, x->dfq, x->dfk, lc_linattn_theta(lin, grads, l),
                          x->dy, x->ys, x->mx, x->den, f->q, f->k, f->v, x->fq, x->fk,
                          lc_linattn_theta(lin, params, l), &s);
        }
        if (opt->xent_weight > 0) {
            /* without backward the gradients land in scratch that the next
             * hybrid_bwd overwrites */
            if (!backward) {
                o->zero(be, x->dfq, (size_t)N * H * 2 * fdim * sizeof(float));
                o->zero(be, x->dfk, (size_t)N * H * 2 * fdim * sizeof(float));
            }
            o->hybrid_xent(be, x->row_x, x->dfq, x->dfk,
                           backward ? lc_linattn_theta(lin, grads, l) : x->dtheta_scratch,
                           xent_scale, f->q, f->k, x->fq, x->fk,
                           lc_linattn_theta(lin, params, l), &s);
            o->download(be, x->host_rows, x->row_x, (size_t)N * H * sizeof(float));
            rc = o->sync(be, err);
            if (rc != LC_OK) {
                return rc;
            }
            xent = host_sum(x->host_rows, (size_t)N * H) / ((double)N * H);
        }
        if (backward) {
            o->fmap_bwd(be, lc_linattn_wq(lin, grads, l), NULL, x->dfq, f->q,
                        lc_linattn_wq(lin, params, l), N, H, H, D, fdim, LC_FMAP_EPS);
            o->fmap_bwd(be, lc_linattn_wk(lin, grads, l), NULL, x->dfk, f->k,
                        lc_linattn_wk(lin, params, l), N, H, c->n_kv_heads, D, fdim, LC_FMAP_EPS);
        }
        if (layer_loss != NULL) {
            layer_loss[l] = mse;
        }
        total += (opt->mse_weight * mse + opt->xent_weight * xent) / (double)L;
        /* teacher forcing: the residual stream continues with the teacher */
        lc_llama_attn_out(m, l, f->x, f->att, N);
        if (l + 1 < L) {
            lc_llama_mlp(m, l, f->x, f->xn, f->gate, f->up, N);
        }
        if (lc_trainer_poll(tr, l + 1, L) != 0) {
            return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped in layer %d", l);
        }
    }
    *loss = total;
    return o->sync(be, err);
}

static lc_status transfer_save(struct lc_trainer *tr, struct lc_error *err)
{
    struct transfer_ctx *x = tr->stage_ctx;
    char *path = malloc(strlen(tr->o->out_dir) + 32);
    lc_status rc;

    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    sprintf(path, "%s/feature_maps.safetensors", tr->o->out_dir);
    rc = lc_linattn_save(tr->lin, x->best, path, err);
    free(path);
    if (rc == LC_OK) {
        lc_remove_stale_adapter(tr);
    }
    return rc;
}

const struct lc_stage_hooks lc_transfer_hooks = {
    .stage = LC_STAGE_TRANSFER,
    .name = "transfer",
    .microbatch = transfer_microbatch,
    .save_outputs = transfer_save,
    .reports_layers = 1,
};
