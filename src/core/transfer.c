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

#include "core/dist_train.h"
#include "core/train.h"
#include "core/util.h"

/* The buffers from ys on are one layer's scratch, reused by every layer
 * and every micro-batch: a layer's gradients are complete (added into
 * grads) before the next layer runs. */
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
        .layer_size = tr->lin->layer_size,
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

/* Sum of n host floats in a fixed order, in double: the per-row losses
 * are summed here rather than in a kernel, so that the loss does not
 * depend on the thread count. */
static double host_sum(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += v[i];
    }
    return s;
}

/* Layers [l0, l1) on the residual stream f->x of N = B*T rows (positions
 * uploaded): each layer's teacher attention, then for a linearized layer
 * the student's loss (and with backward its gradients, scaled by
 * 1/grad_div), then the residual stream continues with the teacher.  The
 * loss is the mean over n_lin linearized layers: *total accumulates each
 * layer's term in layer order; layer_loss[l] (nullable) gets its MSE (0
 * for a softmax layer).  The MLP of layer l1 - 1 runs only with mlp_after
 * (a later stage continues from it), never for the model's last layer. */
lc_status lc_transfer_layers(struct lc_trainer *tr, int l0, int l1, int B, int backward,
                             double grad_div, int n_lin, int mlp_after, double *total,
                             double *layer_loss, struct lc_error *err)
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
    /* d(loss)/d(y_student) of the MSE term, per element; grad_div is the
     * step's number of micro-batches, whose gradients are summed */
    const float mse_scale =
        (float)(opt->mse_weight / (double)n_lin / ((double)N * (double)HD) / grad_div);
    const float xent_scale = (float)(opt->xent_weight / (double)n_lin / ((double)N * H) / grad_div);
    lc_status rc;

    for (int l = l0; l < l1; l++) {
        float *params = lin->params;
        float *grads = x->grads;
        double mse = 0.0;
        double xent = 0.0;

        o->rmsnorm_fwd(be, f->xn, NULL, f->x, m->layers[l].attn_norm, N, c->hidden_size,
                       c->rms_norm_eps);
        lc_llama_qkv(m, l, f->xn, f->q, f->k, f->v, f->pos, N);
        /* teacher: softmax attention, the target and the residual input */
        o->attn_fwd(be, f->att, f->q, f->k, f->v, B, T, T, H, c->n_kv_heads, D, 0);
        if (!lc_linattn_is_softmax(lin, l)) {
            /* student */
            lc_linattn_forward(lin, params, l, B, T, f->q, f->k, f->v, x->fq, x->fk, x->ys,
                               x->mx, x->den);
            o->mse_fwd_bwd(be, x->row_sse, backward ? x->dy : NULL, x->ys, f->att, N, (int)HD,
                           mse_scale);
            o->download(be, x->host_rows, x->row_sse, (size_t)N * sizeof(float));
            rc = o->sync(be, err);
            if (rc != LC_OK) {
                return rc;
            }
            mse = host_sum(x->host_rows, (size_t)N) / ((double)N * (double)HD);
            /* q, k, v are the teacher's and frozen: no dq, dk, dv.  dfq
             * and dfk are overwritten here; the cross-entropy below adds to
             * them, so it must come after. */
            if (backward) {
                o->hybrid_bwd(be, NULL, NULL, NULL, x->dfq, x->dfk,
                              lc_linattn_theta(lin, grads, l), x->dy, x->ys, x->mx, x->den, f->q,
                              f->k, f->v, x->fq, x->fk, lc_linattn_theta(lin, params, l), &s);
            }
            if (opt->xent_weight > 0) {
                /* without backward the gradients land in scratch that the
                 * next hybrid_bwd overwrites */
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
            /* dx NULL: nothing upstream of q and k is trained */
            if (backward) {
                o->fmap_bwd(be, lc_linattn_wq(lin, grads, l), NULL, x->dfq, f->q,
                            lc_linattn_wq(lin, params, l), N, H, H, D, fdim, LC_FMAP_EPS);
                o->fmap_bwd(be, lc_linattn_wk(lin, grads, l), NULL, x->dfk, f->k,
                            lc_linattn_wk(lin, params, l), N, H, c->n_kv_heads, D, fdim,
                            LC_FMAP_EPS);
            }
            /* in layer order: a pipeline stage adds its layers to the
             * total of the stages before, as one process would */
            *total += (opt->mse_weight * mse + opt->xent_weight * xent) / (double)n_lin;
        }
        if (layer_loss != NULL) {
            layer_loss[l] = mse;
        }
        /* teacher forcing: the residual stream continues with the teacher
         * (after the last layer only when a later layer needs it) */
        lc_llama_attn_out(m, l, f->x, f->att, N);
        if (l + 1 < l1 || (mlp_after && l + 1 < L)) {
            lc_llama_mlp(m, l, f->x, f->xn, f->gate, f->up, N);
        }
        if (lc_trainer_poll(tr, l + 1, L) != 0) {
            return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped in layer %d", l);
        }
    }
    return LC_OK;
}

/* Positions 0..T-1 of each of B chunks into f->pos (and the RoPE tables
 * that far). */
lc_status lc_transfer_positions(struct lc_trainer *tr, int B, struct lc_error *err)
{
    return lc_llama_upload_positions(tr->m, &tr->model->fwd, B, tr->T, 0, err);
}

static lc_status transfer_microbatch(struct lc_trainer *tr, const int32_t *ids,
                                     const int32_t *labels, int B, int backward, double grad_div,
                                     double *loss, double *layer_loss, struct lc_error *err)
{
    struct lc_llama_fwd *f = &tr->model->fwd;
    struct lc_backend *be = tr->be;
    const int N = B * tr->T;
    const int L = tr->m->cfg.n_layers;
    double total = 0.0;
    int l0, l1;
    lc_status rc;

    (void)labels;
    rc = lc_transfer_positions(tr, B, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* across ranks, a pipeline stage runs its layers on the residual
     * stream of the stage before and hands it on with the loss so far */
    lc_dt_layers(tr, &l0, &l1);
    if (lc_dt_pipe_first(tr)) {
        be->ops->upload(be, f->ids, ids, (size_t)N * sizeof(int32_t));
        lc_llama_embed(tr->m, f->x, f->ids, N);
    } else {
        rc = lc_dt_pipe_recv(tr, f->x, N, &total, err);
    }
    if (rc == LC_OK) {
        rc = lc_transfer_layers(tr, l0, l1, B, backward, grad_div, L - tr->lin->n_softmax,
                                !lc_dt_pipe_last(tr), &total, layer_loss, err);
    }
    if (rc == LC_OK && !lc_dt_pipe_last(tr)) {
        rc = lc_dt_pipe_send(tr, f->x, N, total, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    *loss = total;
    return be->ops->sync(be, err);
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
