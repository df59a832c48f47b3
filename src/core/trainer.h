/*
 * The training loop shared by the stages (trainer.c), and the hooks a stage
 * gives it.
 *
 * A stage owns some parameter groups (flat fp32 arenas on the backend) and
 * knows how to run one micro-batch (forward, and backward into the
 * gradient arenas) and how to write its best weights.  The loop owns the
 * rest: data order, gradient accumulation, AdamW, evaluation,
 * ReduceLROnPlateau, best-on-validation selection, metrics, and the
 * resumable state.  The stages (transfer.c, finetune.c, blockwise.c) call
 * the loop's pieces below; the loop reaches a stage only through its hooks,
 * and lc_train (train.c) picks the stages.
 */
#ifndef LC_CORE_TRAINER_H
#define LC_CORE_TRAINER_H

#include <stdio.h>

#include "core/backend.h"
#include "core/linattn.h"
#include "core/model.h"

/* the training state in the output folder, unless tr->state_name says otherwise */
#define LC_TRAIN_STATE_FILE "train_state.safetensors"

#define LC_MAX_PARAM_GROUPS 2

struct lc_param_group {
    const char *name; /* key prefix in the training state */
    float *params;    /* backend [n] */
    float *grads;     /* backend [n]: one micro-batch's gradient */
    float *acc;       /* backend [n]: the step's gradient, the sum of the micro-batches'
                       * in micro-batch order (made by the loop) */
    float *adam_m;    /* backend [n] */
    float *adam_v;    /* backend [n] */
    float *best;      /* host [n]: the weights of the best evaluation */
    size_t n;
    size_t layer_size; /* floats per layer when the arena is layer after layer, else 0 */
    double lr_scale;  /* its rate / the stage's (0 is taken as 1) */
};

struct lc_trainer;

struct lc_stage_hooks {
    int stage;        /* LC_STAGE_TRANSFER, LC_STAGE_FINETUNE or LC_STAGE_LORA_ONLY */
    const char *name; /* "transfer", "finetune" or "lora-only" */
    /* One micro-batch of B chunks of T tokens (host ids and labels).  With
     * backward, gradients are accumulated, scaled by 1/grad_div.  loss:
     * the micro-batch loss; layer_loss (nullable, [L]): per layer. */
    lc_status (*microbatch)(struct lc_trainer *tr, const int32_t *ids, const int32_t *labels,
                            int B, int backward, double grad_div, double *loss,
                            double *layer_loss, struct lc_error *err);
    /* Writes the stage's output files from the best weights (host). */
    lc_status (*save_outputs)(struct lc_trainer *tr, struct lc_error *err);
    /* How many micro-batch losses per layer the stage reports (0: none). */
    int reports_layers;
};

struct lc_trainer {
    struct lc_model *model;
    struct lc_llama *m;
    struct lc_backend *be;
    const struct lc_train_opts *o;
    lc_train_fn on_event;
    void *user;

    int T;
    int B;
    int32_t *train_ids;    /* host [n_train * T] */
    int32_t *train_labels;
    int64_t n_train;
    int32_t *val_ids;
    int32_t *val_labels;
    int64_t n_val;          /* chunks used for evaluation */

    /* the stage being run */
    const struct lc_stage_hooks *hooks;
    struct lc_param_group groups[LC_MAX_PARAM_GROUPS];
    int n_groups;
    void *stage_ctx;

    /* linearized attention (both stages use it) */
    struct lc_linattn *lin;

    /* schedule and position */
    double lr;
    double plateau_best;
    int plateau_bad;
    double best_val;
    int64_t step;
    int64_t epoch;
    int64_t mb;             /* next micro-batch index inside the epoch */
    int64_t cur_mb;         /* the micro-batch being run inside the step */
    int stages_done;        /* LC_STAGE_* bits of the stages finished before this one */
    int64_t *perm;          /* [n_train / B * B] chunk order of the current epoch */
    int64_t perm_epoch;     /* epoch the permutation is for */
    double *layer_loss;     /* [L] scratch */
    int32_t *batch_ids;     /* host [B * T]: the micro-batch being run */
    int32_t *batch_labels;
    FILE *metrics;
    int adapter_cleared;    /* lc_remove_stale_adapter has run */
    int64_t metrics_lines;  /* lines written to it */
    int eval_pending;       /* the evaluation due after step `step` is still to run */
    /* the work being done, for progress events */
    int phase;              /* LC_PHASE_* */
    int64_t phase_done;     /* micro-batches finished */
    int64_t phase_total;
    int metrics_errno;      /* the first error writing it (0: none) */

    /* the chunks of the micro-batch being run: training chunks cur_chunks[0..B)
     * of the permutation, or in an evaluation (cur_chunks NULL) validation
     * chunks cur_val.. */
    const int64_t *cur_chunks;
    int64_t cur_val;
    /* block-wise stage 1 (blockwise.c): the block being trained, or -1 */
    int block;
    int n_blocks;
    int block_l0, block_l1;
    void *aux;              /* the block trainer's own state */
    /* where metrics text goes instead of the metrics file (pieces of lines) */
    void (*metrics_out)(struct lc_trainer *tr, const char *text);
    const char *state_name; /* the training state's file; NULL: train_state.safetensors */

    /* ranks (dist_train.h) */
    struct lc_dtrain *dt;
    int dt_mode;            /* enum lc_dt_mode of the stage; 0: by the stage */
    int writer;             /* this rank writes the files (rank 0) */
    double plan_peak;       /* the memory plan of this rank, bytes */
};

/* The position and schedule of a saved training state. */
struct lc_train_resume {
    int64_t step, epoch, mb, metrics_lines;
    int plateau_bad;
    double lr, plateau_best, best_val;
    /* params, adam_m, adam_v and best of each parameter group */
    const struct lc_tensor_view *tensors[LC_MAX_PARAM_GROUPS][4];
};

struct lc_st_file;
struct lc_tensor_view;

/* Reads and checks a training state (already known to be of this stage,
 * options and data) against the trainer: a position the loop reaches
 * (step within the run, epoch and micro-batch those of the step), a
 * finite positive lr, and every tensor of the parameter groups as F32 of
 * the group's size.  Bad values are LC_ERR_FORMAT naming path and field. */
lc_status lc_train_state_check(const struct lc_trainer *tr, const struct lc_st_file *f,
                               const char *path, struct lc_train_resume *pos,
                               struct lc_error *err);

/* the loop */
lc_status lc_train_run_stage(struct lc_trainer *tr, struct lc_error *err);

/* Sends an event to the caller (the common fields filled in); non-zero:
 * the caller asks to stop. */
int lc_trainer_emit(struct lc_trainer *tr, struct lc_train_event *ev);

/* After each layer pass of a micro-batch (layer of layers): reports the
 * progress of the phase and returns non-zero when the caller asks to stop
 * (the stage then returns LC_ERR_INTERRUPTED from its micro-batch). */
int lc_trainer_poll(struct lc_trainer *tr, int layer, int layers);

/* Copies the B chunks listed in chunks[] into the micro-batch buffers. */
lc_status lc_trainer_gather(struct lc_trainer *tr, const int64_t *chunks, int32_t **ids,
                            int32_t **labels, struct lc_error *err);

/* An adapter left in the output folder by an earlier run belongs to other
 * feature maps: stage 1 removes it once its own feature maps are written
 * (not before, so that a run that fails at the start leaves the folder as
 * it was). */
void lc_remove_stale_adapter(struct lc_trainer *tr);

/* Opens the training state in the output folder; *f stays NULL (and the
 * status LC_OK) when there is none.  *path is its file name (free it). */
lc_status lc_train_state_open(const struct lc_trainer *tr, char **path, struct lc_st_file **f,
                              struct lc_error *err);

/* The integer metadata key of a training state; 0 when it is missing or
 * not a whole number. */
int lc_train_state_int(const struct lc_st_file *f, const char *key, int64_t *out);

#endif /* LC_CORE_TRAINER_H */
