/*
 * The training loop across ranks (dist_train.c): the few calls that
 * train.c, transfer.c and finetune.c make so that one loop serves one
 * process and many.
 *
 * Modes of a stage:
 *   single    one rank does everything (also the one-process case)
 *   data      data parallel: the ranks of `dp` split each step's
 *             micro-batches (micro-batch i on replica i % R) and every
 *             rank holds all parameters (stage 2)
 *   pipeline  pipeline stage g computes layers [l0, l1) and passes the
 *             residual stream on to stage g + 1 of its replica (stage 2:
 *             and its gradient back to stage g - 1); the replicas of a
 *             stage split the micro-batches.  Stage 1 always (the
 *             stages may be one); stage 2 with --pipeline-stages above 1
 *   block     block-wise stage 1: the ranks of one pipeline stage train
 *             that stage's blocks from the cached hidden states, data
 *             parallel among themselves, independently of other stages
 *
 * Determinism across ranks: the step's gradient is the sum of the
 * micro-batch gradients in micro-batch order (one process does the same),
 * AdamW is element-wise, losses are summed in micro-batch and layer order
 * after they are collected, so every rank count gives the bytes of one
 * process.
 */
#ifndef LC_CORE_DIST_TRAIN_H
#define LC_CORE_DIST_TRAIN_H

#include "core/dist.h"
#include "core/trainer.h"

enum lc_dt_mode { LC_DT_SINGLE = 0, LC_DT_DATA, LC_DT_PIPELINE, LC_DT_BLOCK };

struct lc_dtrain {
    struct lc_dist *dist;      /* the world (never NULL: one process is a world of 1) */
    struct lc_dist single;     /* the world when the caller gave none */
    struct lc_layout layout;   /* stage 1 across the ranks */
    struct lc_comm *stage_comm; /* the ranks of this rank's pipeline stage */
    int stage;                 /* pipeline stage of this rank (stage 1) */
    int replica;

    /* the stage being run */
    int mode;                  /* enum lc_dt_mode */
    struct lc_comm *dp;        /* the ranks splitting the micro-batches (NULL: none) */
    int dp_rank, dp_size;
    int l0, l1;                /* layers this rank computes */
    size_t own_off[LC_MAX_PARAM_GROUPS]; /* the part of each group it updates */
    size_t own_n[LC_MAX_PARAM_GROUPS];

    /* one step */
    int64_t n_mb;
    double *mb_loss;           /* [grad_accum] losses of the micro-batches run here */
    int64_t *mb_mask;          /* [grad_accum] 1 where mb_loss holds a complete loss */
    float *slots[LC_MAX_PARAM_GROUPS]; /* data parallel: [k, own_n] gradients of own micro-batches */
    float *gathered[LC_MAX_PARAM_GROUPS]; /* [dp_size, k, own_n] */
    int64_t k_slots;

    /* one evaluation: per batch, the loss and the per-layer losses */
    int64_t n_eval;
    double *ev_vals;           /* [n_eval, 1 + L] */
    int64_t *ev_mask;

    /* pipeline sends in flight: double-buffered residual streams */
    struct lc_comm_req *send_req[2];
    double *send_buf[2];       /* [1 + N*C/2] the running loss, then the floats */
    int send_next;
    size_t send_bytes;
};

/* The distributed state of a run with these options (o->dist may be NULL);
 * checks the layout options against the model. */
lc_status lc_dt_new(struct lc_dtrain **out, struct lc_trainer *tr, struct lc_error *err);
void lc_dt_free(struct lc_dtrain *dt);
/* rc when every rank has LC_OK or its own failure; a rank that is fine
 * while another failed gets LC_ERR_DIST (the other prints why) */
lc_status lc_dt_agree_status(struct lc_dtrain *dt, lc_status rc, struct lc_error *err);

/* A stage starts (after its setup, with tr->groups set) / ends. */
lc_status lc_dt_stage_begin(struct lc_trainer *tr, int mode, struct lc_error *err);
void lc_dt_stage_end(struct lc_trainer *tr);

/* ---- the step */
/* zeroes the step's gradients */
lc_status lc_dt_step_begin(struct lc_trainer *tr, int64_t n_mb, struct lc_error *err);
/* whether this rank runs micro-batch i of the step */
int lc_dt_runs_mb(const struct lc_trainer *tr, int64_t i);
/* after micro-batch i ran here with loss: keep its gradients and loss */
lc_status lc_dt_keep_mb(struct lc_trainer *tr, int64_t i, double loss, struct lc_error *err);
/* every rank: the step's gradients (sum in micro-batch order) and its loss */
lc_status lc_dt_step_end(struct lc_trainer *tr, double *loss, struct lc_error *err);
/* the part [*off, *off + *n) of group g this rank updates */
void lc_dt_own(const struct lc_trainer *tr, int g, size_t *off, size_t *n);

/* ---- evaluation over n_batches batches */
lc_status lc_dt_eval_begin(struct lc_trainer *tr, int64_t n_batches, struct lc_error *err);
int lc_dt_runs_eval(const struct lc_trainer *tr, int64_t batch);
void lc_dt_eval_keep(struct lc_trainer *tr, int64_t batch, double loss, const double *layer_loss);
/* every rank: loss[b] and layer_loss[b * L + l] of every batch */
lc_status lc_dt_eval_end(struct lc_trainer *tr, const double **loss_of, struct lc_error *err);

/* ---- checkpoints: the writer gets the parts the other ranks updated */
lc_status lc_dt_gather_best(struct lc_trainer *tr, struct lc_error *err);
lc_status lc_dt_gather_state(struct lc_trainer *tr, struct lc_error *err);
/* the end of a stage: every rank gets the best weights of every layer */
lc_status lc_dt_share_best(struct lc_trainer *tr, struct lc_error *err);

/* Whether this run has one rank. */
int lc_dt_alone(const struct lc_trainer *tr);
/* Whether any rank wants to stop (every rank calls it at the same
 * points): stop is this rank's wish. */
int lc_dt_agree_stop(struct lc_trainer *tr, int stop);

/* ---- the pipeline: layers [*l0, *l1) of this rank; the residual stream
 * (N rows in tr->model->fwd.x) and the running loss from the stage before
 * (stage 0: none, returns 0) and to the next (the last stage: none) */
void lc_dt_layers(const struct lc_trainer *tr, int *l0, int *l1);
int lc_dt_pipe_first(const struct lc_trainer *tr);
int lc_dt_pipe_last(const struct lc_trainer *tr);
lc_status lc_dt_pipe_recv(struct lc_trainer *tr, float *x, int N, double *total,
                          struct lc_error *err);
lc_status lc_dt_pipe_send(struct lc_trainer *tr, const float *x, int N, double total,
                          struct lc_error *err);
/* stage 2's backward: the gradient of the residual stream at the end of
 * this rank's layers from the next stage, and at their start to the stage
 * before */
lc_status lc_dt_pipe_recv_back(struct lc_trainer *tr, float *dx, int N, struct lc_error *err);
lc_status lc_dt_pipe_send_back(struct lc_trainer *tr, const float *dx, int N,
                               struct lc_error *err);
/* whether stage 2 runs as a pipeline (several ranks, --pipeline-stages
 * above 1), and the layers [*l0, *l1) this rank runs in it (all when not) */
int lc_dt_finetune_pipelined(const struct lc_trainer *tr);
void lc_dt_finetune_layers(const struct lc_trainer *tr, int *l0, int *l1);
/* waits for the sends in flight */
lc_status lc_dt_pipe_flush(struct lc_trainer *tr, struct lc_error *err);
/* ... and frees their buffers */
void lc_dt_pipe_free(struct lc_trainer *tr);

#endif /* LC_CORE_DIST_TRAIN_H */
