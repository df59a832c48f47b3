/*
 * Stage 2, low-rank linearizing: the forward and backward of the whole
 * linearized model with LoRA (see finetune.h for what is kept), and the
 * stage hooks of the training loop.  The lora-only stage, the yardstick of
 * stage 2, runs the same code on the original model: its softmax attention
 * is the hybrid attention with a window as long as the chunk.
 *
 * Loss of a micro-batch: next-token cross-entropy, position i predicting
 * labels[i + 1] of its chunk (labels from the data pipeline, -100 =
 * ignored), the mean over the counted tokens, divided by the number of
 * micro-batches of the step.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist_train.h"
#include "core/finetune.h"
#include "core/train.h"
#include "core/util.h"

/* ------------------------------------------------------------ layout */

/* Hands out pieces of one allocation, each 256-byte aligned; with base
 * NULL it only counts. */
struct carver {
    char *base;
    size_t off;
};

static void *take(struct carver *c, size_t bytes)
{
    void *p = c->base != NULL ? c->base + c->off : NULL;
    c->off += (bytes + 255) / 256 * 256;
    return p;
}

static int head_rows_for(const struct lc_llama *m, int rows)
{
    /* as the forward: logits of at most 64 MiB at a time */
    size_t hr = ((size_t)64 << 20) / ((size_t)m->cfg.vocab_size * sizeof(float));
    if (hr < 16) {
        hr = 16;
    }
    if (hr > (size_t)rows) {
        hr = (size_t)rows;
    }
    return (int)hr;
}

static void carve(struct lc_ft *ft, struct carver *c, const struct lc_llama *m,
                  const struct lc_linattn *lin, const struct lc_lora *lora, int rows,
                  int recompute, int train_fmaps, int l0, int l1)
{
    const struct lc_model_config *cfg = &m->cfg;
    const size_t N = (size_t)rows;
    const size_t C = (size_t)cfg->hidden_size;
    const size_t H = (size_t)cfg->n_heads;
    const size_t HD = H * (size_t)cfg->head_dim;
    const size_t KD = (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim;
    const size_t HF = H * 2 * (size_t)lin->cfg.feature_dim;
    const size_t FF = (size_t)cfg->intermediate_size;
    const size_t R = (size_t)lora->cfg.rank;
    const size_t MI = (size_t)lora->max_in;
    /* the last pipeline stage (or the only one) has the head */
    const int last = l1 == cfg->n_layers;
    const int hr = head_rows_for(m, rows);
    const size_t f = sizeof(float);

    ft->lora_grads = take(c, lora->n_params * f);
    /* frozen feature maps: one layer's worth, where fmap_bwd puts the
     * weight gradients nobody reads, reused by every layer */
    ft->lin_grads = take(c, (train_fmaps ? lin->n_params : lin->layer_size) * f);
    for (int l = l0; l < l1; l++) {
        struct lc_ft_acts *a = &ft->acts[l];
        a->x = take(c, N * C * f);
        if (recompute && l > l0) {
            /* one shared set: the layer being worked on */
            struct lc_ft_acts *s = &ft->acts[l0];
            float *x = a->x;
            *a = *s;
            a->x = x;
            continue;
        }
        a->rstd1 = take(c, N * f);
        a->q = take(c, N * HD * f);
        a->k = take(c, N * KD * f);
        a->v = take(c, N * KD * f);
        a->fq = take(c, N * HF * f);
        a->fk = take(c, N * HF * f);
        a->mx = take(c, N * H * f);
        a->den = take(c, N * H * f);
        a->att = take(c, N * HD * f);
        a->xmid = take(c, N * C * f);
        a->rstd2 = take(c, N * f);
        a->gate = take(c, N * FF * f);
        a->up = take(c, N * FF * f);
    }
    /* below, one of each: the working buffers (xn, h, the gradients) serve
     * every layer in turn, as the layers run one at a time */
    ft->x_last = last ? take(c, N * C * f) : NULL;
    ft->rstd_f = last ? take(c, N * f) : NULL;
    ft->xn = take(c, N * C * f);
    ft->x_out = recompute ? take(c, N * C * f) : NULL;
    ft->h = take(c, N * FF * f);
    ft->dx = take(c, N * C * f);
    ft->dxn = take(c, N * C * f);
    ft->dh = take(c, N * FF * f);
    ft->dgate = take(c, N * FF * f);
    ft->dup = take(c, N * FF * f);
    ft->datt = take(c, N * HD * f);
    ft->dq = take(c, N * HD * f);
    ft->dk = take(c, N * KD * f);
    ft->dv = take(c, N * KD * f);
    ft->dfq = take(c, N * HF * f);
    ft->dfk = take(c, N * HF * f);
    ft->ls.t_rows = take(c, N * R * f);
    ft->ls.u = take(c, N * R * f);
    if (lora->cfg.dropout > 0) {
        ft->ls.xd = take(c, N * MI * f);
        ft->ls.tmp = take(c, N * MI * f);
    } else {
        ft->ls.xd = NULL;
        ft->ls.tmp = NULL;
    }
    ft->head_rows = hr;
    ft->logits = last ? take(c, (size_t)hr * (size_t)cfg->vocab_size * f) : NULL;
    ft->row_loss = last ? take(c, N * f) : NULL;
    ft->ids = take(c, N * sizeof(int32_t));
    ft->pos = take(c, N * sizeof(int32_t));
    ft->targets = take(c, N * sizeof(int32_t));
}

size_t lc_ft_bytes(const struct lc_llama *m, const struct lc_linattn *lin,
                   const struct lc_lora *lora, int rows, int recompute, int train_fmaps)
{
    return lc_ft_bytes_layers(m, lin, lora, rows, recompute, train_fmaps, 0, m->cfg.n_layers);
}

size_t lc_ft_bytes_layers(const struct lc_llama *m, const struct lc_linattn *lin,
                          const struct lc_lora *lora, int rows, int recompute, int train_fmaps,
                          int l0, int l1)
{
    struct lc_ft ft;
    struct carver c = {NULL, 0};
    struct lc_ft_acts *acts = calloc((size_t)m->cfg.n_layers, sizeof(*acts));

    if (acts == NULL) {
        return 0;
    }
    memset(&ft, 0, sizeof(ft));
    ft.acts = acts;
    carve(&ft, &c, m, lin, lora, rows, recompute, train_fmaps, l0, l1);
    free(acts);
    return c.off;
}

lc_status lc_ft_new(struct lc_ft **out, struct lc_llama *m, struct lc_linattn *lin,
                    struct lc_lora *lora, int max_rows, int recompute, int train_fmaps,
                    struct lc_error *err)
{
    return lc_ft_new_layers(out, m, lin, lora, max_rows, recompute, train_fmaps, 0,
                            m->cfg.n_layers, err);
}

lc_status lc_ft_new_layers(struct lc_ft **out, struct lc_llama *m, struct lc_linattn *lin,
                           struct lc_lora *lora, int max_rows, int recompute, int train_fmaps,
                           int l0, int l1, struct lc_error *err)
{
    struct lc_backend *be = m->be;
    struct lc_ft *ft = NULL;
    struct carver c = {NULL, 0};
    lc_status rc;

    *out = NULL;
    if (max_rows < 1) {
        return lc_err_set(err, LC_ERR_ARG, "no rows for the LoRA stage");
    }
    if (l0 < 0 || l1 > m->cfg.n_layers || l0 >= l1) {
        return lc_err_set(err, LC_ERR_ARG, "layers %d-%d are not a range of the model's %d", l0,
                          l1 - 1, m->cfg.n_layers);
    }
    ft = calloc(1, sizeof(*ft));
    if (ft == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    ft->m = m;
    ft->lin = lin;
    ft->lora = lora;
    ft->max_rows = max_rows;
    ft->recompute = recompute;
    ft->train_fmaps = train_fmaps;
    ft->l0 = l0;
    ft->l1 = l1;
    ft->acts = calloc((size_t)m->cfg.n_layers, sizeof(*ft->acts));
    ft->host_loss = malloc((size_t)max_rows * sizeof(float));
    if (ft->acts == NULL || ft->host_loss == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* carve twice: first with no base, to size the one backend allocation
     * that holds every buffer of the stage, then to lay them out in it */
    carve(ft, &c, m, lin, lora, max_rows, recompute, train_fmaps, l0, l1);
    ft->arena = be->ops->alloc(be, c.off);
    if (ft->arena == NULL) {
        char less[96] = "";
        if (!recompute) {
            snprintf(less, sizeof(less), "; --recompute needs %.1f MiB",
                     (double)lc_ft_bytes_layers(m, lin, lora, max_rows, 1, train_fmaps, l0, l1) /
                         (1 << 20));
        }
        rc = lc_err_set(err, LC_ERR_NOMEM,
                        "out of backend memory for the LoRA stage: its activations, gradients "
                        "and working buffers take %.1f MiB for micro-batches of %d tokens%s",
                        (double)c.off / (1 << 20), max_rows, less);
        goto fail;
    }
    c.base = ft->arena;
    c.off = 0;
    carve(ft, &c, m, lin, lora, max_rows, recompute, train_fmaps, l0, l1);
    rc = lc_lora_reserve(lora, max_rows, 1, err);
    if (rc != LC_OK) {
        goto fail;
    }
    *out = ft;
    return LC_OK;

fail:
    lc_ft_free(ft);
    return rc;
}

void lc_ft_free(struct lc_ft *ft)
{
    if (ft == NULL) {
        return;
    }
    ft->m->be->ops->release(ft->m->be, ft->arena);
    free(ft->acts);
    free(ft->host_loss);
    free(ft);
}

void lc_ft_zero_grads(struct lc_ft *ft)
{
    struct lc_backend *be = ft->m->be;
    be->ops->zero(be, ft->lora_grads, ft->lora->n_params * sizeof(float));
    be->ops->zero(be, ft->lin_grads,
                  (ft->train_fmaps ? ft->lin->n_params : ft->lin->layer_size) * sizeof(float));
}

/* ------------------------------------------------------------ one layer */

void lc_ft_layer_forward(struct lc_ft *ft, int l, const struct lc_ft_acts *a, float *x_out,
                         int B, int T)
{
    struct lc_llama *m = ft->m;
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const struct lc_llama_layer *Ly = &m->layers[l];
    const int N = B * T;
    const int C = c->hidden_size;
    const int FF = c->intermediate_size;

    /* the projections must add the adapters the backward differentiates */
    LC_ASSERT(m->lora == ft->lora);
    o->rmsnorm_fwd(be, ft->xn, a->rstd1, a->x, Ly->attn_norm, N, C, c->rms_norm_eps);
    lc_llama_qkv(m, l, ft->xn, a->q, a->k, a->v, ft->pos, N);
    lc_linattn_forward(ft->lin, ft->lin->params, l, B, T, a->q, a->k, a->v, a->fq, a->fk, a->att,
                       a->mx, a->den);
    /* the residual: xmid starts as x and o_proj adds to it; x stays
     * as the backward needs it */
    o->copy(be, a->xmid, a->x, (size_t)N * C * sizeof(float));
    lc_llama_attn_out(m, l, a->xmid, a->att, N);
    /* the MLP, keeping gate and up for SwiGLU's backward */
    o->rmsnorm_fwd(be, ft->xn, a->rstd2, a->xmid, Ly->ffn_norm, N, C, c->rms_norm_eps);
    o->linear_fwd(be, a->gate, ft->xn, Ly->w_gate.data, Ly->w_gate.dtype, N, C, FF, 0.0f);
    o->linear_fwd(be, a->up, ft->xn, Ly->w_up.data, Ly->w_up.dtype, N, C, FF, 0.0f);
    o->swiglu_fwd(be, ft->h, a->gate, a->up, (int64_t)N * FF);
    o->copy(be, x_out, a->xmid, (size_t)N * C * sizeof(float));
    o->linear_fwd(be, x_out, ft->h, Ly->w_down.data, Ly->w_down.dtype, N, FF, C, 1.0f);
}

void lc_ft_layer_backward(struct lc_ft *ft, int l, const struct lc_ft_acts *a, float *dx, int B,
                          int T)
{
    struct lc_llama *m = ft->m;
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const struct lc_llama_layer *Ly = &m->layers[l];
    const struct lc_linattn *lin = ft->lin;
    struct lc_lora *lora = ft->lora;
    const int N = B * T;
    const int C = c->hidden_size;
    const int FF = c->intermediate_size;
    const int H = c->n_heads;
    const int Hkv = c->n_kv_heads;
    const int D = c->head_dim;
    const int fdim = lin->cfg.feature_dim;
    const struct lc_attn_shape s = {
        .B = B, .T = T, .H = H, .Hkv = Hkv, .D = D, .F = 2 * fdim,
        .window = lin->cfg.window, .mode = lin->cfg.mode,
    };
    /* frozen feature maps: their weight gradients go to a scratch layer */
    const int lg = ft->train_fmaps ? l : 0;

    if (!ft->train_fmaps) {
        o->zero(be, ft->lin_grads, lin->layer_size * sizeof(float));
    }
    /* MLP: x_out = xmid + down(silu(gate) * up), gate/up from rmsnorm(xmid) */
    o->linear_bwd(be, ft->dh, dx, Ly->w_down.data, Ly->w_down.dtype, N, FF, C, 0.0f);
    o->swiglu_bwd(be, ft->dgate, ft->dup, ft->dh, a->gate, a->up, (int64_t)N * FF);
    o->linear_bwd(be, ft->dxn, ft->dgate, Ly->w_gate.data, Ly->w_gate.dtype, N, C, FF, 0.0f);
    o->linear_bwd(be, ft->dxn, ft->dup, Ly->w_up.data, Ly->w_up.dtype, N, C, FF, 1.0f);
    o->rmsnorm_bwd(be, dx, NULL, ft->dxn, a->xmid, Ly->ffn_norm, a->rstd2, N, C);
    /* now dx = dL/dxmid.  Attention output: xmid = x + o_proj(att) */
    o->linear_bwd(be, ft->datt, dx, Ly->wo.data, Ly->wo.dtype, N, H * D, C, 0.0f);
    lc_lora_backward(lora, ft->lora_grads, l, LC_LORA_TO, a->att, dx, ft->datt, N, &ft->ls);
    if (lc_linattn_is_softmax(lin, l)) {
        /* softmax attention is the hybrid attention with every key in the
         * window (no linear part, sigmoid(theta) cancels): its backward
         * with the stabilizer and denominator of that form, recomputed
         * here (dq stands in for its output, which the forward's softmax
         * output in a->att replaces) */
        struct lc_attn_shape full = s;
        full.window = T;
        full.mode = LC_WINDOW_TERRACED;
        o->zero(be, a->fq, (size_t)N * H * 2 * fdim * sizeof(float));
        o->zero(be, a->fk, (size_t)N * H * 2 * fdim * sizeof(float));
        o->hybrid_fwd(be, ft->dq, a->mx, a->den, a->q, a->k, a->v, a->fq, a->fk,
                      lc_linattn_theta(lin, lin->params, l), &full);
        o->hybrid_bwd(be, ft->dq, ft->dk, ft->dv, NULL, NULL, NULL, ft->datt, a->att, a->mx,
                      a->den, a->q, a->k, a->v, a->fq, a->fk,
                      lc_linattn_theta(lin, lin->params, l), &full);
    } else {
        /* hybrid attention, then the feature maps back into q and k */
        o->hybrid_bwd(be, ft->dq, ft->dk, ft->dv, ft->dfq, ft->dfk,
                      ft->train_fmaps ? lc_linattn_theta(lin, ft->lin_grads, l) : NULL,
                      ft->datt, a->att, a->mx, a->den, a->q, a->k, a->v, a->fq, a->fk,
                      lc_linattn_theta(lin, lin->params, l), &s);
        o->fmap_bwd(be, lc_linattn_wq(lin, ft->lin_grads, lg), ft->dq, ft->dfq, a->q,
                    lc_linattn_wq(lin, lin->params, l), N, H, H, D, fdim, LC_FMAP_EPS);
        o->fmap_bwd(be, lc_linattn_wk(lin, ft->lin_grads, lg), ft->dk, ft->dfk, a->k,
                    lc_linattn_wk(lin, lin->params, l), N, H, Hkv, D, fdim, LC_FMAP_EPS);
    }
    o->rope_bwd(be, ft->dq, ft->pos, m->rope_cos, m->rope_sin, N, H, D);
    o->rope_bwd(be, ft->dk, ft->pos, m->rope_cos, m->rope_sin, N, Hkv, D);
    /* projections from xn = rmsnorm(x), recomputed: ft->xn is one buffer
     * for both norms of every layer, so it no longer holds this one */
    o->rmsnorm_fwd(be, ft->xn, NULL, a->x, Ly->attn_norm, N, C, c->rms_norm_eps);
    o->linear_bwd(be, ft->dxn, ft->dq, Ly->wq.data, Ly->wq.dtype, N, C, H * D, 0.0f);
    lc_lora_backward(lora, ft->lora_grads, l, LC_LORA_TQ, ft->xn, ft->dq, ft->dxn, N, &ft->ls);
    o->linear_bwd(be, ft->dxn, ft->dk, Ly->wk.data, Ly->wk.dtype, N, C, Hkv * D, 1.0f);
    lc_lora_backward(lora, ft->lora_grads, l, LC_LORA_TK, ft->xn, ft->dk, ft->dxn, N, &ft->ls);
    o->linear_bwd(be, ft->dxn, ft->dv, Ly->wv.data, Ly->wv.dtype, N, C, Hkv * D, 1.0f);
    lc_lora_backward(lora, ft->lora_grads, l, LC_LORA_TV, ft->xn, ft->dv, ft->dxn, N, &ft->ls);
    /* dx += the attention path: dx is now dL/dx, the gradient of the
     * layer below's output */
    o->rmsnorm_bwd(be, dx, NULL, ft->dxn, a->x, Ly->attn_norm, a->rstd1, N, C);
}

/* ------------------------------------------------------------ micro-batch */

lc_status lc_ft_microbatch(struct lc_ft *ft, const int32_t *ids, const int32_t *targets, int B,
                           int T, int backward, double grad_div, double *nll_sum,
                           int64_t *n_valid, struct lc_error *err)
{
    struct lc_llama *m = ft->m;
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const int N = B * T;
    const int C = c->hidden_size;
    const int V = c->vocab_size;
    const int L = c->n_layers;
    const int l0 = ft->l0, l1 = ft->l1;
    const int first = l0 == 0, last = l1 == L;
    int32_t *pos = NULL;
    int64_t count = 0;
    double sum = 0.0;
    float scale;
    lc_status rc;

    *nll_sum = 0.0;
    *n_valid = 0;
    LC_ASSERT((first && last) || ft->pipe != NULL);
    if (B < 1 || T < 1 || N > ft->max_rows) {
        return lc_err_set(err, LC_ERR_ARG, "a micro-batch of %d x %d tokens does not fit %d rows",
                          B, T, ft->max_rows);
    }
    for (int i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= V || targets[i] >= V) {
            return lc_err_set(err, LC_ERR_ARG, "token id %d or target %d at %d is outside the "
                                               "vocabulary (%d)",
                              ids[i], targets[i], i, V);
        }
        count += targets[i] >= 0;
    }
    rc = lc_llama_rope_reserve(m, T, err);
    if (rc != LC_OK) {
        return rc;
    }
    pos = malloc((size_t)N * sizeof(int32_t));
    if (pos == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    /* every chunk is a sequence of its own: positions from 0 */
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            pos[b * T + t] = t;
        }
    }
    o->upload(be, ft->pos, pos, (size_t)N * sizeof(int32_t));
    o->upload(be, ft->ids, ids, (size_t)N * sizeof(int32_t));
    o->upload(be, ft->targets, targets, (size_t)N * sizeof(int32_t));
    free(pos);

    /* forward, keeping what the backward needs; a later pipeline stage
     * starts from the residual stream of the stage before */
    if (first) {
        lc_llama_embed(m, ft->acts[0].x, ft->ids, N);
    } else {
        rc = ft->pipe(ft->pipe_user, LC_FT_RECV_X, ft->acts[l0].x, N, err);
        if (rc != LC_OK) {
            return rc;
        }
    }
    /* each layer's output is the next one's kept input; a stage that is
     * not the last puts its output in dx, free until the gradient comes
     * back, and sends it from there */
    for (int l = l0; l < l1; l++) {
        lc_ft_layer_forward(ft, l, &ft->acts[l],
                            l + 1 < l1 ? ft->acts[l + 1].x : last ? ft->x_last : ft->dx, B, T);
        if (ft->poll != NULL && ft->poll(ft->poll_user, l + 1, backward ? 2 * L : L)) {
            return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped in layer %d", l);
        }
    }
    /* the gradient flows back only where some token counts (every stage
     * knows the targets, so all agree) */
    backward = backward && count > 0;
    if (!last) {
        rc = ft->pipe(ft->pipe_user, LC_FT_SEND_X, ft->dx, N, err);
        if (rc == LC_OK && backward) {
            rc = ft->pipe(ft->pipe_user, LC_FT_RECV_DX, ft->dx, N, err);
        }
        if (rc != LC_OK) {
            return rc;
        }
    } else {
        o->rmsnorm_fwd(be, ft->xn, ft->rstd_f, ft->x_last, m->final_norm, N, C,
                       c->rms_norm_eps);
        /* loss and dL/d(normed final states), lm_head in row chunks with
         * the logits' gradient in place */
        /* the mean over the counted tokens, over the step's micro-batches */
        scale = backward ? (float)(1.0 / ((double)count * grad_div)) : 0.0f;
        for (int r0 = 0; r0 < N; r0 += ft->head_rows) {
            int rows = N - r0 < ft->head_rows ? N - r0 : ft->head_rows;
            o->linear_fwd(be, ft->logits, ft->xn + (size_t)r0 * C, m->lm_head.data,
                          m->lm_head.dtype, rows, C, V, 0.0f);
            o->xent_fwd_bwd(be, ft->row_loss + r0, backward ? ft->logits : NULL, ft->logits,
                            ft->targets + r0, rows, V, scale);
            if (backward) {
                o->linear_bwd(be, ft->dxn + (size_t)r0 * C, ft->logits, m->lm_head.data,
                              m->lm_head.dtype, rows, C, V, 0.0f);
            }
        }
        o->download(be, ft->host_loss, ft->row_loss, (size_t)N * sizeof(float));
        /* rmsnorm_bwd adds to dx, and above the final norm there is no
         * residual path to start from */
        if (backward) {
            o->zero(be, ft->dx, (size_t)N * C * sizeof(float));
            o->rmsnorm_bwd(be, ft->dx, NULL, ft->dxn, ft->x_last, m->final_norm, ft->rstd_f, N,
                           C);
        }
    }
    if (backward) {
        for (int l = l1 - 1; l >= l0; l--) {
            /* recompute: the layer's activations again from its kept x,
             * into the one shared set; its output (already the next
             * layer's x) goes to x_out and is dropped */
            if (ft->recompute) {
                lc_ft_layer_forward(ft, l, &ft->acts[l], ft->x_out, B, T);
            }
            lc_ft_layer_backward(ft, l, &ft->acts[l], ft->dx, B, T);
            if (ft->poll != NULL && ft->poll(ft->poll_user, 2 * L - l, 2 * L)) {
                return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped in layer %d", l);
            }
        }
        if (!first) {
            rc = ft->pipe(ft->pipe_user, LC_FT_SEND_DX, ft->dx, N, err);
            if (rc != LC_OK) {
                return rc;
            }
        }
    }
    rc = o->sync(be, err);
    if (rc != LC_OK) {
        return rc;
    }
    for (int i = 0; i < N && last; i++) {
        sum += ft->host_loss[i]; /* fixed order: the same sum for any thread count */
    }
    *nll_sum = sum;
    *n_valid = count;
    return LC_OK;
}

/* ------------------------------------------------------------ stage hooks */

struct finetune_ctx {
    struct lc_lora *lora;
    struct lc_ft *ft;
    float *lora_m;
    float *lora_v;
    float *lora_best;  /* host */
    float *lin_m;
    float *lin_v;
    float *lin_best;   /* host */
    int32_t *targets;  /* host [B*T] */
    struct lc_lora *prev_lora; /* what the model had attached before */
    struct lc_linattn *softmax; /* lora-only stage: softmax attention in hybrid form */
};

lc_status lc_ft_softmax_attention(struct lc_linattn **out, const struct lc_llama *m, int T,
                                  struct lc_error *err)
{
    /* a window as long as the chunk holds every key, so there is no linear
     * part and sigmoid(theta) cancels: softmax attention exactly, and the
     * feature maps (dimension 1, the least) play no part */
    const struct lc_linattn_cfg cfg = {.feature_dim = 1, .window = T, .mode = LC_WINDOW_SLIDING};
    return lc_linattn_new(out, m, &cfg, err);
}

/* Before the big allocation: what stage 2 will hold in memory, and what
 * the system has available, for the caller to show (and to stop on). */
static lc_status report_memory(struct lc_trainer *tr, const struct lc_linattn *lin,
                               const struct lc_lora *lora, int train_fmaps, int l0, int l1,
                               struct lc_error *err)
{
    const size_t rows = (size_t)tr->B * (size_t)tr->T;
    struct lc_train_event ev;
    size_t opt = 3 * lora->n_params * sizeof(float); /* AdamW m, v; best (host) */

    if (train_fmaps) {
        opt += 3 * lin->n_params * sizeof(float);
    }
    memset(&ev, 0, sizeof(ev));
    ev.kind = LC_EV_MEMORY;
    ev.act_bytes = (int64_t)lc_ft_bytes_layers(tr->m, lin, lora, (int)rows, 0, train_fmaps, l0, l1);
    ev.act_bytes_recompute =
        (int64_t)lc_ft_bytes_layers(tr->m, lin, lora, (int)rows, 1, train_fmaps, l0, l1);
    ev.optimizer_bytes = (int64_t)(opt + rows * sizeof(int32_t));
    ev.weight_bytes = l0 == 0 && l1 == tr->m->cfg.n_layers
                          ? lc_model_mapped_bytes(tr->model)
                          : lc_llama_stage_bytes(tr->m, l0, l1);
    ev.mem_available = lc_memory_available();
    if (lc_trainer_emit(tr, &ev) != 0) {
        return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped before the LoRA stage");
    }
    return LC_OK;
}

static int ft_poll(void *user, int layer, int layers)
{
    return lc_trainer_poll(user, layer, layers);
}

/* a pipeline stage's exchanges with its neighbours */
static lc_status ft_pipe(void *user, int op, float *x, int N, struct lc_error *err)
{
    struct lc_trainer *tr = user;
    double unused = 0.0;

    switch (op) {
    case LC_FT_RECV_X:
        return lc_dt_pipe_recv(tr, x, N, &unused, err);
    case LC_FT_SEND_X:
        return lc_dt_pipe_send(tr, x, N, 0.0, err);
    case LC_FT_RECV_DX:
        return lc_dt_pipe_recv_back(tr, x, N, err);
    default:
        return lc_dt_pipe_send_back(tr, x, N, err);
    }
}

lc_status lc_finetune_setup(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_backend *be = tr->be;
    const struct lc_train_opts *o = tr->o;
    const int softmax = o->stage == LC_STAGE_LORA_ONLY;
    const int train_fmaps = !softmax && (o->train_feature_maps || o->skip_transfer);
    const size_t N = (size_t)tr->B * (size_t)tr->T;
    struct lc_lora_cfg lcfg = {
        .rank = o->lora_rank, .alpha = o->lora_alpha, .dropout = o->lora_dropout,
        .targets = o->lora_targets,
    };
    struct finetune_ctx *x = calloc(1, sizeof(*x));
    int l0, l1;
    lc_status rc;

    if (x == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    tr->stage_ctx = x;
    /* a pipeline stage holds the activations of its own layers only */
    lc_dt_finetune_layers(tr, &l0, &l1);
    rc = lc_lora_new(&x->lora, tr->m, &lcfg, o->seed, err);
    if (rc == LC_OK && softmax) {
        rc = lc_ft_softmax_attention(&x->softmax, tr->m, tr->T, err);
    }
    if (rc == LC_OK) {
        rc = report_memory(tr, softmax ? x->softmax : tr->lin, x->lora, train_fmaps, l0, l1, err);
    }
    if (rc == LC_OK) {
        rc = lc_ft_new_layers(&x->ft, tr->m, softmax ? x->softmax : tr->lin, x->lora, (int)N,
                              o->recompute, train_fmaps, l0, l1, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    x->ft->poll = ft_poll;
    x->ft->poll_user = tr;
    x->ft->pipe = ft_pipe;
    x->ft->pipe_user = tr;
    x->lora_m = be->ops->alloc(be, x->lora->n_params * sizeof(float));
    x->lora_v = be->ops->alloc(be, x->lora->n_params * sizeof(float));
    x->lora_best = malloc(x->lora->n_params * sizeof(float));
    x->targets = malloc(N * sizeof(int32_t));
    if (x->lora_m == NULL || x->lora_v == NULL || x->lora_best == NULL || x->targets == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for the LoRA optimizer state");
    }
    tr->n_groups = 1;
    tr->groups[0] = (struct lc_param_group){
        .name = "lora",
        .params = x->lora->params,
        .grads = x->ft->lora_grads,
        .adam_m = x->lora_m,
        .adam_v = x->lora_v,
        .best = x->lora_best,
        .n = x->lora->n_params,
        .layer_size = x->lora->layer_size,
    };
    if (train_fmaps) {
        const size_t n = tr->lin->n_params;
        x->lin_m = be->ops->alloc(be, n * sizeof(float));
        x->lin_v = be->ops->alloc(be, n * sizeof(float));
        x->lin_best = malloc(n * sizeof(float));
        if (x->lin_m == NULL || x->lin_v == NULL || x->lin_best == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory for the feature maps' optimizer "
                                                 "state");
        }
        tr->n_groups = 2;
        tr->groups[1] = (struct lc_param_group){
            .name = "feature_maps",
            .params = tr->lin->params,
            .grads = x->ft->lin_grads,
            .adam_m = x->lin_m,
            .adam_v = x->lin_v,
            .best = x->lin_best,
            .n = n,
            .layer_size = tr->lin->layer_size,
            /* the same schedule, at their own rate when asked */
            .lr_scale = o->feature_map_lr > 0 ? o->feature_map_lr / o->lora_lr : 1.0,
        };
    }
    /* the adapters act through the model's projections */
    x->prev_lora = tr->m->lora;
    tr->m->lora = x->lora;
    return LC_OK;
}

void lc_finetune_teardown(struct lc_trainer *tr)
{
    struct finetune_ctx *x = tr->stage_ctx;
    struct lc_backend *be = tr->be;

    if (x == NULL) {
        return;
    }
    if (x->lora != NULL && tr->m->lora == x->lora) {
        tr->m->lora = x->prev_lora;
    }
    be->ops->release(be, x->lora_m);
    be->ops->release(be, x->lora_v);
    be->ops->release(be, x->lin_m);
    be->ops->release(be, x->lin_v);
    free(x->lora_best);
    free(x->lin_best);
    free(x->targets);
    lc_ft_free(x->ft);
    lc_lora_free(x->lora);
    lc_linattn_free(x->softmax);
    free(x);
    tr->stage_ctx = NULL;
    tr->n_groups = 0;
}

static lc_status finetune_microbatch(struct lc_trainer *tr, const int32_t *ids,
                                     const int32_t *labels, int B, int backward,
                                     double grad_div, double *loss, double *layer_loss,
                                     struct lc_error *err)
{
    struct finetune_ctx *x = tr->stage_ctx;
    const int T = tr->T;
    double sum = 0.0;
    int64_t count = 0;
    lc_status rc;

    (void)layer_loss;
    /* position t predicts the label of position t + 1 of its chunk */
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            x->targets[b * T + t] = t + 1 < T ? labels[b * T + t + 1] : -1;
        }
    }
    for (int i = 0; i < B * T; i++) {
        if (x->targets[i] < 0) {
            x->targets[i] = -1;
        }
    }
    /* dropout in training only, its masks fixed by (seed, step,
     * micro-batch), so that a resumed run draws the same ones */
    x->lora->train = backward;
    x->lora->drop_seed = lc_lora_batch_seed(tr->o->seed, tr->step, tr->cur_mb);
    rc = lc_ft_microbatch(x->ft, ids, x->targets, B, T, backward, grad_div, &sum, &count, err);
    x->lora->train = 0;
    if (rc != LC_OK) {
        return rc;
    }
    *loss = count > 0 ? sum / (double)count : 0.0;
    return LC_OK;
}

static lc_status finetune_save(struct lc_trainer *tr, struct lc_error *err)
{
    struct finetune_ctx *x = tr->stage_ctx;
    const struct lc_train_opts *o = tr->o;
    char *path = NULL;
    lc_status rc;

    rc = lc_lora_save(x->lora, x->lora_best, o->out_dir, lc_model_files_path(tr->m->files), err);
    if (rc == LC_OK && tr->n_groups > 1) {
        /* feature maps trained jointly: the file holds the model's maps */
        path = malloc(strlen(o->out_dir) + 32);
        if (path == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        sprintf(path, "%s/feature_maps.safetensors", o->out_dir);
        rc = lc_linattn_save(tr->lin, x->lin_best, path, err);
        free(path);
    }
    return rc;
}

lc_status lc_finetune_merge(struct lc_trainer *tr, struct lc_error *err)
{
    struct finetune_ctx *x = tr->stage_ctx;
    char *path = malloc(strlen(tr->o->out_dir) + 16);
    lc_status rc;

    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    sprintf(path, "%s/merged", tr->o->out_dir);
    rc = lc_lora_merge(x->lora, x->lora_best, tr->m, path, err);
    free(path);
    return rc;
}

const struct lc_stage_hooks lc_finetune_hooks = {
    .stage = LC_STAGE_FINETUNE,
    .name = "finetune",
    .microbatch = finetune_microbatch,
    .save_outputs = finetune_save,
    .reports_layers = 0,
};

const struct lc_stage_hooks lc_lora_only_hooks = {
    .stage = LC_STAGE_LORA_ONLY,
    .name = "lora-only",
    .microbatch = finetune_microbatch,
    .save_outputs = finetune_save,
    .reports_layers = 0,
};
