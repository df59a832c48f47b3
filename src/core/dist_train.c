/*
 * The training loop across ranks (dist_train.h).
 *
 * Gradients: every micro-batch's gradient goes into its own zeroed arena
 * (the group's grads) and is then added to the step's sum (acc) in
 * micro-batch order.  In data parallelism a rank keeps the gradients of
 * its micro-batches in slots, the slots of all ranks are gathered, and
 * every rank adds them up in micro-batch order: the sum one process makes.
 * In the pipeline a rank's gradients are those of its own layers, and it
 * updates only that part of the arenas; the writer collects the parts
 * before it saves.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist_train.h"
#include "core/util.h"

#define TAG_PIPE 11
#define TAG_PARTS 12
#define TAG_PIPE_BACK 13

static lc_status nomem(struct lc_error *err)
{
    return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
}

lc_status lc_dt_new(struct lc_dtrain **out, struct lc_trainer *tr, struct lc_error *err)
{
    const struct lc_train_opts *o = tr->o;
    struct lc_dtrain *dt = calloc(1, sizeof(*dt));
    lc_status rc;

    *out = NULL;
    if (dt == NULL) {
        return nomem(err);
    }
    if (o->dist != NULL) {
        dt->dist = o->dist;
    } else {
        /* one process: a world of one rank */
        dt->dist = &dt->single;
        dt->single.size = 1;
        rc = lc_comm_new_self(&dt->single.world, err);
        if (rc != LC_OK) {
            free(dt);
            return rc;
        }
    }
    rc = lc_layout_make(&dt->layout, tr->m->cfg.n_layers, dt->dist->size, o->block_layers,
                        o->pipeline_stages, err);
    if (rc == LC_OK) {
        dt->stage = lc_layout_stage(&dt->layout, dt->dist->rank);
        dt->replica = lc_layout_replica(&dt->layout, dt->dist->rank);
        rc = lc_comm_split(dt->dist->world, dt->stage, dt->replica, &dt->stage_comm, err);
    }
    if (rc == LC_OK) {
        rc = lc_comm_attach_backend(dt->stage_comm, tr->be, err);
    }
    if (rc == LC_OK && dt->dist->size > 1) {
        rc = lc_comm_attach_backend(dt->dist->world, tr->be, err);
    }
    if (rc != LC_OK) {
        lc_dt_free(dt);
        return rc;
    }
    *out = dt;
    return LC_OK;
}

void lc_dt_free(struct lc_dtrain *dt)
{
    if (dt == NULL) {
        return;
    }
    lc_comm_free(dt->stage_comm);
    if (dt->dist == &dt->single) {
        lc_comm_free(dt->single.world);
    }
    free(dt->mb_loss);
    free(dt->mb_mask);
    free(dt->ev_vals);
    free(dt->ev_mask);
    free(dt);
}

lc_status lc_dt_agree_status(struct lc_dtrain *dt, lc_status rc, struct lc_error *err)
{
    /* one max-reduction tells every rank whether any failed, and names the
     * highest failed rank */
    int64_t v[2] = {rc != LC_OK ? 1 : 0, rc != LC_OK ? dt->dist->rank : -1};
    lc_status crc;

    if (dt->dist->size == 1) {
        return rc;
    }
    crc = lc_comm_allreduce_max(dt->dist->world, v, 2, rc == LC_OK ? err : NULL);
    if (rc != LC_OK) {
        return rc;
    }
    if (crc != LC_OK) {
        return crc;
    }
    if (v[0] != 0) {
        return lc_err_set(err, LC_ERR_DIST, "rank %d: stopped because rank %lld failed (see its "
                                            "message)",
                          dt->dist->rank, (long long)v[1]);
    }
    return LC_OK;
}

/* ------------------------------------------------------------ stages */

lc_status lc_dt_stage_begin(struct lc_trainer *tr, int mode, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    struct lc_backend *be = tr->be;
    const int L = tr->m->cfg.n_layers;

    /* one rank: no communication, whatever mode was asked for */
    if (dt->dist->size == 1) {
        mode = LC_DT_SINGLE;
    }
    dt->mode = mode;
    dt->l0 = 0;
    dt->l1 = L;
    dt->dp = NULL;
    dt->dp_rank = 0;
    dt->dp_size = 1;
    if (mode == LC_DT_DATA) {
        dt->dp = dt->dist->world;
    } else if (mode == LC_DT_PIPELINE || mode == LC_DT_BLOCK) {
        dt->dp = dt->stage_comm;
        if (mode == LC_DT_PIPELINE) {
            lc_layout_layers(&dt->layout, dt->stage, &dt->l0, &dt->l1);
        }
    }
    if (dt->dp != NULL) {
        dt->dp_rank = lc_comm_rank(dt->dp);
        dt->dp_size = lc_comm_size(dt->dp);
    }
    {
        /* through temporaries: a failed realloc keeps the old block, which
         * lc_dt_free must still find */
        double *loss = realloc(dt->mb_loss, (size_t)tr->o->grad_accum * sizeof(double));
        int64_t *mask;
        if (loss == NULL) {
            return nomem(err);
        }
        dt->mb_loss = loss;
        mask = realloc(dt->mb_mask, (size_t)tr->o->grad_accum * sizeof(int64_t));
        if (mask == NULL) {
            return nomem(err);
        }
        dt->mb_mask = mask;
    }
    /* a replica runs every dp_size-th micro-batch of a step: at most this
     * many, each with its own gradient slot until the step's sum */
    dt->k_slots = (tr->o->grad_accum + dt->dp_size - 1) / dt->dp_size;
    for (int g = 0; g < tr->n_groups; g++) {
        struct lc_param_group *pg = &tr->groups[g];
        size_t off = 0;
        size_t n = pg->n;
        if (mode == LC_DT_PIPELINE && pg->layer_size > 0) {
            /* the group's arena is layer after layer */
            off = (size_t)dt->l0 * pg->layer_size;
            n = (size_t)(dt->l1 - dt->l0) * pg->layer_size;
        }
        dt->own_off[g] = off;
        dt->own_n[g] = n;
        /* the whole group, so that acc shares the layout of params; a
         * pipeline stage uses only its own part */
        pg->acc = be->ops->alloc(be, pg->n * sizeof(float));
        if (pg->acc == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for the step's gradients");
        }
        if (dt->dp_size > 1) {
            dt->slots[g] = be->ops->alloc(be, (size_t)dt->k_slots * n * sizeof(float));
            dt->gathered[g] =
                be->ops->alloc(be, (size_t)dt->dp_size * (size_t)dt->k_slots * n * sizeof(float));
            if (dt->slots[g] == NULL || dt->gathered[g] == NULL) {
                return lc_err_set(err, LC_ERR_NOMEM,
                                  "out of backend memory for the gradients of %lld micro-batches",
                                  (long long)tr->o->grad_accum);
            }
        }
    }
    return LC_OK;
}

void lc_dt_stage_end(struct lc_trainer *tr)
{
    struct lc_dtrain *dt = tr->dt;
    struct lc_backend *be = tr->be;

    lc_dt_pipe_free(tr);
    for (int g = 0; g < tr->n_groups; g++) {
        be->ops->release(be, tr->groups[g].acc);
        tr->groups[g].acc = NULL;
        be->ops->release(be, dt->slots[g]);
        be->ops->release(be, dt->gathered[g]);
        dt->slots[g] = NULL;
        dt->gathered[g] = NULL;
    }
    dt->mode = LC_DT_SINGLE;
}

void lc_dt_own(const struct lc_trainer *tr, int g, size_t *off, size_t *n)
{
    *off = tr->dt->own_off[g];
    *n = tr->dt->own_n[g];
}

/* ------------------------------------------------------------ the step */

lc_status lc_dt_step_begin(struct lc_trainer *tr, int64_t n_mb, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;

    (void)err;
    dt->n_mb = n_mb;
    for (int64_t i = 0; i < n_mb; i++) {
        dt->mb_loss[i] = 0.0;
        dt->mb_mask[i] = 0;
    }
    for (int g = 0; g < tr->n_groups; g++) {
        tr->be->ops->zero(tr->be, tr->groups[g].acc, tr->groups[g].n * sizeof(float));
    }
    return LC_OK;
}

/* Round robin by index; the step's sum runs in micro-batch order anyway,
 * so the split does not show in the result. */
int lc_dt_runs_mb(const struct lc_trainer *tr, int64_t i)
{
    return i % tr->dt->dp_size == tr->dt->dp_rank;
}

lc_status lc_dt_keep_mb(struct lc_trainer *tr, int64_t i, double loss, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    struct lc_backend *be = tr->be;

    (void)err;
    dt->mb_loss[i] = loss;
    /* in the pipeline only the last stage has the whole loss */
    dt->mb_mask[i] = dt->mode != LC_DT_PIPELINE || lc_dt_pipe_last(tr);
    for (int g = 0; g < tr->n_groups; g++) {
        struct lc_param_group *pg = &tr->groups[g];
        const size_t off = dt->own_off[g];
        const size_t n = dt->own_n[g];
        /* the replica's j-th micro-batch (i = j dp_size + dp_rank) in slot
         * j; alone, straight into the sum, which is the same order */
        if (dt->dp_size > 1) {
            be->ops->copy(be, dt->slots[g] + (size_t)(i / dt->dp_size) * n, pg->grads + off,
                          n * sizeof(float));
        } else {
            be->ops->add(be, pg->acc + off, pg->grads + off, (int64_t)n);
        }
    }
    return LC_OK;
}

/* the ranks that share losses: a block's trainers, else all */
static struct lc_comm *loss_comm(const struct lc_dtrain *dt)
{
    return dt->mode == LC_DT_BLOCK ? dt->dp : dt->dist->world;
}

/* values[n] from the ranks where mask is set (exactly one each), on every
 * rank of c */
static lc_status gather_values(struct lc_comm *c, double *values, int64_t *mask, int64_t n,
                               struct lc_error *err)
{
    const int P = lc_comm_size(c);
    double *all_v = NULL;
    int64_t *all_m = NULL;
    lc_status rc;

    if (P == 1 || n == 0) {
        return LC_OK;
    }
    all_v = malloc((size_t)P * (size_t)n * sizeof(double));
    all_m = malloc((size_t)P * (size_t)n * sizeof(int64_t));
    if (all_v == NULL || all_m == NULL) {
        free(all_v);
        free(all_m);
        return nomem(err);
    }
    rc = lc_comm_allgather(c, NULL, values, all_v, (size_t)n * sizeof(double), err);
    if (rc == LC_OK) {
        rc = lc_comm_allgather(c, NULL, mask, all_m, (size_t)n * sizeof(int64_t), err);
    }
    for (int64_t i = 0; i < n && rc == LC_OK; i++) {
        int found = 0;
        for (int p = 0; p < P; p++) {
            if (all_m[(size_t)p * n + i]) {
                values[i] = all_v[(size_t)p * n + i];
                found++;
            }
        }
        LC_ASSERT(found == 1);
        mask[i] = 1;
    }
    free(all_v);
    free(all_m);
    return rc;
}

lc_status lc_dt_step_end(struct lc_trainer *tr, double *loss, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    struct lc_backend *be = tr->be;
    const int64_t n_mb = dt->n_mb;
    lc_status rc = lc_dt_pipe_flush(tr, err);

    /* gradients: the slots of every replica, added in micro-batch order */
    for (int g = 0; g < tr->n_groups && rc == LC_OK && dt->dp_size > 1; g++) {
        struct lc_param_group *pg = &tr->groups[g];
        const size_t off = dt->own_off[g];
        const size_t n = dt->own_n[g];
        const size_t k = (size_t)dt->k_slots;
        rc = lc_comm_allgather(dt->dp, be, dt->slots[g], dt->gathered[g], k * n * sizeof(float),
                               err);
        for (int64_t i = 0; i < n_mb && rc == LC_OK; i++) {
            /* micro-batch i is slot j of replica p */
            const size_t p = (size_t)(i % dt->dp_size);
            const size_t j = (size_t)(i / dt->dp_size);
            be->ops->add(be, pg->acc + off, dt->gathered[g] + (p * k + j) * n, (int64_t)n);
        }
    }
    /* the loss: every micro-batch's from where it is whole, summed in order */
    if (rc == LC_OK) {
        rc = gather_values(loss_comm(dt), dt->mb_loss, dt->mb_mask, n_mb, err);
    }
    if (rc == LC_OK) {
        double sum = 0.0;
        for (int64_t i = 0; i < n_mb; i++) {
            sum += dt->mb_loss[i] / (double)n_mb;
        }
        *loss = sum;
    }
    return rc;
}

/* ------------------------------------------------------------ evaluation */

lc_status lc_dt_eval_begin(struct lc_trainer *tr, int64_t n_batches, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    const size_t w = 1 + (size_t)tr->m->cfg.n_layers;

    dt->n_eval = n_batches;
    free(dt->ev_vals);
    free(dt->ev_mask);
    dt->ev_vals = calloc((size_t)n_batches * w + 1, sizeof(double));
    dt->ev_mask = calloc((size_t)n_batches * w + 1, sizeof(int64_t));
    if (dt->ev_vals == NULL || dt->ev_mask == NULL) {
        return nomem(err);
    }
    return LC_OK;
}

int lc_dt_runs_eval(const struct lc_trainer *tr, int64_t batch)
{
    return batch % tr->dt->dp_size == tr->dt->dp_rank;
}

void lc_dt_eval_keep(struct lc_trainer *tr, int64_t batch, double loss, const double *layer_loss)
{
    struct lc_dtrain *dt = tr->dt;
    const int L = tr->m->cfg.n_layers;
    double *v = dt->ev_vals + (size_t)batch * (size_t)(1 + L);
    int64_t *m = dt->ev_mask + (size_t)batch * (size_t)(1 + L);
    const int pipe = dt->mode == LC_DT_PIPELINE;

    /* in the pipeline only the last stage has the whole loss, and each
     * stage the losses of its own layers */
    v[0] = loss;
    m[0] = !pipe || lc_dt_pipe_last(tr);
    for (int l = 0; l < L; l++) {
        v[1 + l] = layer_loss[l];
        m[1 + l] = !pipe || (l >= dt->l0 && l < dt->l1);
    }
}

lc_status lc_dt_eval_end(struct lc_trainer *tr, const double **vals, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    lc_status rc = lc_dt_pipe_flush(tr, err);

    if (rc == LC_OK) {
        rc = gather_values(loss_comm(dt), dt->ev_vals, dt->ev_mask,
                           dt->n_eval * (1 + tr->m->cfg.n_layers), err);
    }
    *vals = dt->ev_vals;
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

/* Pipeline: the writer (rank 0) receives from each other stage's first
 * replica that stage's part of buf (a backend arena when be, else host),
 * group g's layout. */
static lc_status collect_parts(struct lc_trainer *tr, int g, struct lc_backend *be, float *buf,
                               struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    const size_t ls = tr->groups[g].layer_size;
    lc_status rc = LC_OK;

    if (dt->mode != LC_DT_PIPELINE || ls == 0) {
        return LC_OK;
    }
    for (int s = 1; s < dt->layout.stages && rc == LC_OK; s++) {
        int l0, l1;
        lc_layout_layers(&dt->layout, s, &l0, &l1);
        if (dt->dist->rank == 0) {
            rc = lc_comm_recv(dt->dist->world, be, buf + (size_t)l0 * ls,
                              (size_t)(l1 - l0) * ls * sizeof(float), s, TAG_PARTS, err);
        } else if (dt->dist->rank == s) {
            rc = lc_comm_send(dt->dist->world, be, buf + (size_t)l0 * ls,
                              (size_t)(l1 - l0) * ls * sizeof(float), 0, TAG_PARTS, err);
        }
    }
    return rc;
}

lc_status lc_dt_gather_best(struct lc_trainer *tr, struct lc_error *err)
{
    lc_status rc = LC_OK;

    for (int g = 0; g < tr->n_groups && rc == LC_OK; g++) {
        rc = collect_parts(tr, g, NULL, tr->groups[g].best, err);
    }
    return rc;
}

lc_status lc_dt_gather_state(struct lc_trainer *tr, struct lc_error *err)
{
    lc_status rc = LC_OK;

    for (int g = 0; g < tr->n_groups && rc == LC_OK; g++) {
        struct lc_param_group *pg = &tr->groups[g];
        rc = collect_parts(tr, g, tr->be, pg->params, err);
        if (rc == LC_OK) {
            rc = collect_parts(tr, g, tr->be, pg->adam_m, err);
        }
        if (rc == LC_OK) {
            rc = collect_parts(tr, g, tr->be, pg->adam_v, err);
        }
    }
    return rc;
}

int lc_dt_alone(const struct lc_trainer *tr)
{
    return tr->dt == NULL || tr->dt->dist->size == 1;
}

lc_status lc_dt_share_best(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    lc_status rc = LC_OK;

    if (dt->mode != LC_DT_PIPELINE) {
        return LC_OK;
    }
    for (int g = 0; g < tr->n_groups && rc == LC_OK; g++) {
        rc = lc_comm_bcast(dt->dist->world, NULL, tr->groups[g].best,
                           tr->groups[g].n * sizeof(float), 0, err);
    }
    return rc;
}

int lc_dt_agree_stop(struct lc_trainer *tr, int stop)
{
    struct lc_dtrain *dt = tr->dt;
    struct lc_comm *c = loss_comm(dt);
    int64_t v = stop != 0;

    if (lc_comm_size(c) == 1) {
        return stop;
    }
    if (lc_comm_allreduce_max(c, &v, 1, NULL) != LC_OK) {
        /* the others are gone: stop too */
        return 1;
    }
    return v != 0;
}

/* ------------------------------------------------------------ the pipeline */

void lc_dt_layers(const struct lc_trainer *tr, int *l0, int *l1)
{
    *l0 = tr->dt->l0;
    *l1 = tr->dt->l1;
}

int lc_dt_pipe_first(const struct lc_trainer *tr)
{
    return tr->dt->mode != LC_DT_PIPELINE || tr->dt->stage == 0;
}

int lc_dt_pipe_last(const struct lc_trainer *tr)
{
    return tr->dt->mode != LC_DT_PIPELINE || tr->dt->stage == tr->dt->layout.stages - 1;
}

/* the residual stream (or its gradient) of N rows with a double, from
 * the rank `from` */
static lc_status pipe_recv(struct lc_trainer *tr, int from, int tag, float *x, int N,
                           double *total, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    const size_t floats = (size_t)N * (size_t)tr->m->cfg.hidden_size;
    /* one message: the loss so far, then the rows */
    const size_t bytes = sizeof(double) + floats * sizeof(float);
    char *buf = malloc(bytes);
    lc_status rc;

    if (buf == NULL) {
        return nomem(err);
    }
    rc = lc_comm_recv(dt->dist->world, NULL, buf, bytes, from, tag, err);
    if (rc == LC_OK) {
        memcpy(total, buf, sizeof(double));
        tr->be->ops->upload(tr->be, x, buf + sizeof(double), floats * sizeof(float));
        rc = tr->be->ops->sync(tr->be, err);
    }
    free(buf);
    return rc;
}

/* ... to the rank `to`, without waiting (two sends in flight at most) */
static lc_status pipe_send(struct lc_trainer *tr, int to, int tag, const float *x, int N,
                           double total, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    const size_t floats = (size_t)N * (size_t)tr->m->cfg.hidden_size;
    const size_t bytes = sizeof(double) + floats * sizeof(float);
    /* two send buffers used in turn: a send can start while the one
     * before is still in flight */
    const int b = dt->send_next;
    char *buf;
    lc_status rc;

    /* the buffer of the send before the last one is free again */
    rc = lc_comm_wait(dt->send_req[b], err);
    dt->send_req[b] = NULL;
    if (rc != LC_OK) {
        return rc;
    }
    if (bytes > dt->send_bytes) {
        for (int i = 0; i < 2; i++) {
            rc = lc_comm_wait(dt->send_req[i], err);
            dt->send_req[i] = NULL;
            free(dt->send_buf[i]);
            dt->send_buf[i] = malloc(bytes);
            if (rc != LC_OK || dt->send_buf[i] == NULL) {
                dt->send_bytes = 0;
                return rc != LC_OK ? rc : nomem(err);
            }
        }
        dt->send_bytes = bytes;
    }
    buf = (char *)dt->send_buf[b];
    memcpy(buf, &total, sizeof(double));
    tr->be->ops->download(tr->be, buf + sizeof(double), x, floats * sizeof(float));
    rc = tr->be->ops->sync(tr->be, err);
    if (rc == LC_OK) {
        rc = lc_comm_isend(dt->dist->world, buf, bytes, to, tag, &dt->send_req[b], err);
    }
    dt->send_next = 1 - b;
    return rc;
}

/* ranks of a replica are consecutive: the stages before and after are the
 * ranks before and after */
lc_status lc_dt_pipe_recv(struct lc_trainer *tr, float *x, int N, double *total,
                          struct lc_error *err)
{
    return pipe_recv(tr, tr->dt->dist->rank - 1, TAG_PIPE, x, N, total, err);
}

lc_status lc_dt_pipe_send(struct lc_trainer *tr, const float *x, int N, double total,
                          struct lc_error *err)
{
    return pipe_send(tr, tr->dt->dist->rank + 1, TAG_PIPE, x, N, total, err);
}

lc_status lc_dt_pipe_recv_back(struct lc_trainer *tr, float *dx, int N, struct lc_error *err)
{
    double unused;
    return pipe_recv(tr, tr->dt->dist->rank + 1, TAG_PIPE_BACK, dx, N, &unused, err);
}

lc_status lc_dt_pipe_send_back(struct lc_trainer *tr, const float *dx, int N,
                               struct lc_error *err)
{
    return pipe_send(tr, tr->dt->dist->rank - 1, TAG_PIPE_BACK, dx, N, 0.0, err);
}

int lc_dt_finetune_pipelined(const struct lc_trainer *tr)
{
    return tr->dt != NULL && tr->dt->dist->size > 1 && tr->o->pipeline_stages > 1;
}

void lc_dt_finetune_layers(const struct lc_trainer *tr, int *l0, int *l1)
{
    if (lc_dt_finetune_pipelined(tr)) {
        lc_layout_layers(&tr->dt->layout, tr->dt->stage, l0, l1);
    } else {
        *l0 = 0;
        *l1 = tr->m->cfg.n_layers;
    }
}

void lc_dt_pipe_free(struct lc_trainer *tr)
{
    struct lc_dtrain *dt = tr->dt;

    lc_dt_pipe_flush(tr, NULL);
    for (int i = 0; i < 2; i++) {
        free(dt->send_buf[i]);
        dt->send_buf[i] = NULL;
    }
    dt->send_bytes = 0;
}

lc_status lc_dt_pipe_flush(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    lc_status rc = LC_OK;

    for (int i = 0; i < 2; i++) {
        lc_status r = lc_comm_wait(dt->send_req[i], err);
        dt->send_req[i] = NULL;
        rc = rc != LC_OK ? rc : r;
    }
    return rc;
}
