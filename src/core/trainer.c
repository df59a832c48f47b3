/*
 * The training loop shared by attention transfer and LoRA finetuning:
 * data order, gradient accumulation, AdamW, evaluation, ReduceLROnPlateau,
 * best-on-validation selection, metrics and the resumable state.
 *
 * Determinism: the data order comes from lc_shuffle(seed, epoch), every
 * kernel is independent of the thread count, and losses are summed on the
 * host in a fixed order, so the same seed gives byte-identical checkpoints
 * for any thread count.  The training state saved at each evaluation holds
 * everything the loop needs (weights, AdamW moments, best weights,
 * position, schedule), so a resumed run reproduces the uninterrupted one
 * exactly.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dist_train.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/trainer.h"
#include "core/util.h"

/* ------------------------------------------------------------ events */

static double step_lr(const struct lc_trainer *tr);

/* The event to the caller; its wish to stop. */
static int emit_here(struct lc_trainer *tr, struct lc_train_event *ev)
{
    ev->stage = tr->hooks->stage;
    ev->step = tr->step;
    ev->epoch = tr->epoch;
    if (ev->kind != LC_EV_STEP) {
        ev->lr = step_lr(tr); /* a step event has the rate of the step it reports */
    }
    ev->best_val_loss = tr->best_val;
    ev->n_layers = tr->m->cfg.n_layers;
    ev->block = tr->block;
    ev->n_blocks = tr->n_blocks;
    ev->first_layer = tr->block_l0;
    ev->end_layer = tr->block_l1;
    if (tr->on_event == NULL) {
        return 0;
    }
    return tr->on_event(ev, tr->user);
}

/* The same at the points every rank reaches together: every rank stops
 * at the same step when any rank asks to. */
static int emit(struct lc_trainer *tr, struct lc_train_event *ev)
{
    return lc_dt_agree_stop(tr, emit_here(tr, ev));
}

int lc_trainer_emit(struct lc_trainer *tr, struct lc_train_event *ev)
{
    return emit(tr, ev);
}

int lc_trainer_poll(struct lc_trainer *tr, int layer, int layers)
{
    struct lc_train_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = LC_EV_PROGRESS;
    ev.phase = tr->phase;
    ev.done = tr->phase_done;
    ev.total = tr->phase_total;
    ev.layer = layer;
    ev.layers = layers;
    /* across ranks a stop waits for the end of the step, where every rank
     * agrees on it (the caller's wish stays set until then) */
    return lc_dt_alone(tr) ? emit_here(tr, &ev) : (emit_here(tr, &ev), 0);
}

static void metrics_line(struct lc_trainer *tr, const char *fmt, ...) LC_PRINTF(2, 3);

static void metrics_line(struct lc_trainer *tr, const char *fmt, ...)
{
    va_list ap;
    if (tr->metrics_out != NULL) {
        /* a block trainer's lines go to rank 0's file */
        char buf[4096];
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        tr->metrics_out(tr, buf);
        return;
    }
    if (tr->metrics == NULL) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(tr->metrics, fmt, ap);
    va_end(ap);
    if ((fflush(tr->metrics) != 0 || ferror(tr->metrics)) && tr->metrics_errno == 0) {
        tr->metrics_errno = errno != 0 ? errno : EIO; /* reported by metrics_check */
    }
    if (fmt[strlen(fmt) - 1] == '\n') {
        tr->metrics_lines++;
    }
}

/* The start of a metrics line: the stage, and a block's number and layers. */
static void metrics_head(struct lc_trainer *tr)
{
    metrics_line(tr, "{\"stage\": \"%s\", ", tr->hooks->name);
    if (tr->block >= 0) {
        metrics_line(tr, "\"block\": %d, \"layers\": [%d, %d], ", tr->block, tr->block_l0,
                     tr->block_l1);
    }
}

/* A metrics line that could not be written (a full disk) stops training:
 * the metrics would silently lack lines. */
static lc_status metrics_check(const struct lc_trainer *tr, struct lc_error *err)
{
    if (tr->metrics_errno != 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot write the metrics: %s",
                          tr->o->metrics_path, strerror(tr->metrics_errno));
    }
    return LC_OK;
}

/* Cuts the metrics file after its first `lines` lines: the lines a resumed
 * run will write again.  (A line count, not a byte offset, because the
 * lines hold timings whose length varies from run to run.) */
static lc_status rewind_metrics(struct lc_trainer *tr, int64_t lines, struct lc_error *err)
{
    int64_t seen = 0;
    long offset = 0;
    int c;

    rewind(tr->metrics);
    while (seen < lines && (c = fgetc(tr->metrics)) != EOF) {
        offset++;
        if (c == '\n') {
            seen++;
        }
    }
    if (seen < lines || fflush(tr->metrics) != 0 ||
        ftruncate(fileno(tr->metrics), (off_t)offset) != 0 ||
        fseek(tr->metrics, offset, SEEK_SET) != 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot rewind the metrics file to line %lld",
                          tr->o->metrics_path, (long long)lines);
    }
    tr->metrics_lines = lines;
    return LC_OK;
}

/* ------------------------------------------------------------ schedule */

/* PyTorch ReduceLROnPlateau(mode="min", threshold=1e-4 relative,
 * cooldown=0, eps=1e-8), stepped once per evaluation. */
static void plateau_step(struct lc_trainer *tr, double metric)
{
    const struct lc_train_opts *o = tr->o;
    if (metric < tr->plateau_best * (1.0 - 1e-4)) {
        tr->plateau_best = metric;
        tr->plateau_bad = 0;
    } else {
        tr->plateau_bad++;
    }
    if (tr->plateau_bad > o->plateau_patience) {
        double new_lr = tr->lr * o->plateau_factor;
        if (new_lr < o->min_lr) {
            new_lr = o->min_lr;
        }
        /* PyTorch's eps: a cut smaller than it is not made */
        if (tr->lr - new_lr > 1e-8) {
            tr->lr = new_lr;
        }
        tr->plateau_bad = 0;
    }
}

/* Whole batches only: the chunks left over after the last full batch are
 * skipped that epoch (which ones changes with the epoch's order). */
static int64_t microbatches_per_epoch(const struct lc_trainer *tr)
{
    return tr->n_train / tr->B;
}

static int64_t steps_per_epoch(const struct lc_trainer *tr)
{
    int64_t mbs = microbatches_per_epoch(tr);
    return (mbs + tr->o->grad_accum - 1) / tr->o->grad_accum;
}

static int64_t total_steps(const struct lc_trainer *tr)
{
    if (tr->o->max_steps >= 0) {
        return tr->o->max_steps;
    }
    return (int64_t)tr->o->epochs * steps_per_epoch(tr);
}

static int is_lora_stage(const struct lc_trainer *tr)
{
    return tr->hooks->stage != LC_STAGE_TRANSFER;
}

static int stage_schedule(const struct lc_trainer *tr)
{
    return is_lora_stage(tr) ? tr->o->lora_lr_schedule : tr->o->lr_schedule;
}

/* The learning rate of the next step (number tr->step + 1): the schedule
 * applied to the base rate tr->lr (which only the plateau schedule lowers,
 * at evaluations), times the warm-up ramp (k / warmup for step k). */
static double step_lr(const struct lc_trainer *tr)
{
    const struct lc_train_opts *o = tr->o;
    const int64_t warm = is_lora_stage(tr) ? o->lora_warmup_steps : o->warmup_steps;
    const int64_t total = total_steps(tr);
    double lr = tr->lr;

    if (stage_schedule(tr) == LC_LR_COSINE && tr->step > warm && total > warm) {
        const double pi = 3.14159265358979323846;
        /* the floor is min_lr, unless the base rate is lower already */
        double lo = o->min_lr < tr->lr ? o->min_lr : tr->lr;
        double p = (double)(tr->step - warm) / (double)(total - warm);
        lr = lo + (tr->lr - lo) * 0.5 * (1.0 + cos(pi * p));
    }
    if (tr->step < warm) {
        lr *= (double)(tr->step + 1) / (double)warm;
    }
    return lr;
}

/* The data order of the current epoch.  It depends on (seed, epoch) only,
 * so a resumed run rebuilds it instead of reading it from the state. */
static lc_status ensure_perm(struct lc_trainer *tr, struct lc_error *err)
{
    if (tr->perm == NULL) {
        tr->perm = malloc((size_t)tr->n_train * sizeof(int64_t));
        if (tr->perm == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        tr->perm_epoch = -1;
    }
    if (tr->perm_epoch != tr->epoch) {
        lc_shuffle(tr->perm, tr->n_train, tr->o->seed, tr->epoch);
        tr->perm_epoch = tr->epoch;
    }
    return LC_OK;
}

/* ------------------------------------------------------------ evaluation */

static lc_status evaluate(struct lc_trainer *tr, double *val_loss, double *layer_loss,
                          struct lc_error *err)
{
    const int L = tr->m->cfg.n_layers;
    const size_t T = (size_t)tr->T;
    const int64_t n_batches = (tr->n_val + tr->B - 1) / tr->B;
    const double *vals = NULL;
    double sum = 0.0;
    lc_status rc;

    for (int l = 0; l < L; l++) {
        layer_loss[l] = 0.0;
    }
    tr->phase = LC_PHASE_EVAL;
    tr->phase_done = 0;
    tr->phase_total = n_batches;
    /* the batches (split among the ranks), then their losses in order */
    rc = lc_dt_eval_begin(tr, n_batches, err);
    for (int64_t j = 0; j < n_batches && rc == LC_OK; j++) {
        const int64_t done = j * tr->B;
        const int b = tr->n_val - done < tr->B ? (int)(tr->n_val - done) : tr->B;
        double loss = 0.0;
        tr->phase_done = j;
        if (!lc_dt_runs_eval(tr, j)) {
            continue;
        }
        tr->cur_chunks = NULL;
        tr->cur_val = done;
        rc = tr->hooks->microbatch(tr, tr->val_ids + (size_t)done * T,
                                   tr->val_labels + (size_t)done * T, b, 0, 1.0, &loss,
                                   tr->layer_loss, err);
        /* kept by batch index, so the sum below runs in batch order
         * whichever rank computed which batch */
        lc_dt_eval_keep(tr, j, loss, tr->layer_loss);
    }
    if (rc == LC_OK) {
        rc = lc_dt_eval_end(tr, &vals, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    for (int64_t j = 0; j < n_batches; j++) {
        const double *v = vals + (size_t)j * (size_t)(1 + L);
        const int64_t done = j * tr->B;
        const int b = tr->n_val - done < tr->B ? (int)(tr->n_val - done) : tr->B;
        /* chunk-weighted mean, so the batch size does not change it */
        sum += v[0] * b;
        for (int l = 0; l < L; l++) {
            layer_loss[l] += v[1 + l] * b;
        }
    }
    tr->phase_done = n_batches;
    *val_loss = sum / (double)tr->n_val;
    for (int l = 0; l < L; l++) {
        layer_loss[l] /= (double)tr->n_val;
    }
    if (!isfinite(*val_loss)) {
        return lc_err_set(err, LC_ERR_NUMERIC, "%s: validation loss is not finite at step %lld",
                          tr->hooks->name, (long long)tr->step);
    }
    return LC_OK;
}

/* ------------------------------------------------------------ state */

/* the training state's file (malloc'd) */
static char *state_path(const struct lc_trainer *tr)
{
    return lc_path_join(tr->o->out_dir,
                        tr->state_name != NULL ? tr->state_name : LC_TRAIN_STATE_FILE);
}

/* Every option and the data that the results depend on: a state saved
 * under others is refused, since resuming from it would not reproduce
 * either run. */
static void fingerprint(const struct lc_trainer *tr, char *buf, size_t cap)
{
    const struct lc_train_opts *o = tr->o;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the training chunks */
    for (int64_t i = 0; i < tr->n_train * (int64_t)tr->T; i++) {
        h = (h ^ (uint32_t)tr->train_ids[i]) * 1099511628211ull;
    }
    snprintf(buf, cap,
             "stage=%s seq_len=%d batch=%d accum=%d seed=%llu max_steps=%lld epochs=%d "
             "eval_every=%d val=%lld lr=%.17g lora_lr=%.17g f=%d window=%d mode=%d mse=%.17g "
             "xent=%.17g rank=%d alpha=%.17g dropout=%.17g targets=%u train_fmaps=%d "
             "skip_transfer=%d wd=%.17g factor=%.17g patience=%d min_lr=%.17g chunks=%lld "
             "data=%016llx schedule=%d,%d warmup=%lld,%lld fmap_lr=%.17g",
             tr->hooks->name, tr->T, tr->B, o->grad_accum, (unsigned long long)o->seed,
             (long long)o->max_steps, o->epochs, o->eval_every, (long long)tr->n_val, o->lr,
             o->lora_lr, o->feature_dim, o->window, o->window_mode, o->mse_weight,
             o->xent_weight, o->lora_rank, o->lora_alpha, o->lora_dropout, o->lora_targets,
             o->train_feature_maps, o->skip_transfer, o->weight_decay, o->plateau_factor,
             o->plateau_patience, o->min_lr, (long long)tr->n_train, (unsigned long long)h,
             o->lr_schedule, o->lora_lr_schedule, (long long)o->warmup_steps,
             (long long)o->lora_warmup_steps, o->feature_map_lr);
    if (tr->block >= 0) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, " block=%d layers=%d-%d", tr->block, tr->block_l0,
                 tr->block_l1);
    }
    /* only when set, so that states saved before the option still match */
    for (int l = 0, first = 1; l < tr->m->cfg.n_layers; l++) {
        if (lc_linattn_is_softmax(tr->lin, l)) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s%d", first ? " softmax=" : ",", l);
            first = 0;
        }
    }
}

static lc_status save_state(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_backend *be = tr->be;
    struct lc_st_writer *w = NULL;
    char *path = state_path(tr);
    float *host = NULL;
    char buf[1024];
    lc_status rc;

    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_st_writer_new(&w, err);
    for (int g = 0; g < tr->n_groups && rc == LC_OK; g++) {
        const struct lc_param_group *pg = &tr->groups[g];
        static const char *const parts[] = {"params", "adam_m", "adam_v", "best"};
        int64_t shape[1] = {(int64_t)pg->n};
        /* + 1: an empty group must not read as out of memory */
        float *grown = realloc(host, pg->n * sizeof(float) + 1);
        if (grown == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            break;
        }
        host = grown;
        for (int p = 0; p < 4 && rc == LC_OK; p++) {
            const float *src = p == 0 ? pg->params : p == 1 ? pg->adam_m : pg->adam_v;
            char name[128];
            /* the best weights are already on the host */
            if (p < 3) {
                be->ops->download(be, host, src, pg->n * sizeof(float));
            } else {
                memcpy(host, pg->best, pg->n * sizeof(float));
            }
            snprintf(name, sizeof(name), "%s.%s", pg->name, parts[p]);
            rc = lc_st_writer_add(w, name, LC_DTYPE_F32, 1, shape, host, err);
        }
    }
    /* the loop's scalars, in this order; doubles as %.17g, which reads back
     * to the same double, so that a resumed run continues with the very
     * same values */
    const struct {
        const char *key;
        int is_double;
        int64_t i;
        double d;
    } scalars[] = {
        {"step", 0, tr->step, 0.0},
        {"epoch", 0, tr->epoch, 0.0},
        {"microbatch", 0, tr->mb, 0.0},
        {"lr", 1, 0, tr->lr},
        {"plateau_best", 1, 0, tr->plateau_best},
        {"plateau_bad", 0, tr->plateau_bad, 0.0},
        {"best_val", 1, 0, tr->best_val},
        {"metrics_lines", 0, tr->metrics_lines, 0.0},
        {"stages_done", 0, tr->stages_done, 0.0},
        {"eval_pending", 0, tr->eval_pending, 0.0},
    };
    if (rc == LC_OK) {
        rc = lc_st_writer_set_metadata(w, "stage", tr->hooks->name, err);
    }
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]) && rc == LC_OK; i++) {
        if (scalars[i].is_double) {
            snprintf(buf, sizeof(buf), "%.17g", scalars[i].d);
        } else {
            snprintf(buf, sizeof(buf), "%lld", (long long)scalars[i].i);
        }
        rc = lc_st_writer_set_metadata(w, scalars[i].key, buf, err);
    }
    if (rc == LC_OK) {
        fingerprint(tr, buf, sizeof(buf));
        rc = lc_st_writer_set_metadata(w, "fingerprint", buf, err);
    }
    if (rc == LC_OK) {
        rc = lc_st_writer_write(w, path, err);
    }
    lc_st_writer_free(w);
    free(host);
    free(path);
    return rc;
}

static int meta_double(const struct lc_st_file *f, const char *key, double *out)
{
    const char *s = lc_st_metadata(f, key);
    char *end = NULL;
    if (s == NULL) {
        return 0;
    }
    *out = strtod(s, &end);
    return end != s && *end == '\0';
}

int lc_train_state_int(const struct lc_st_file *f, const char *key, int64_t *out)
{
    const char *s = lc_st_metadata(f, key);
    char *end = NULL;
    if (s == NULL) {
        return 0;
    }
    *out = strtoll(s, &end, 10);
    return end != s && *end == '\0';
}

lc_status lc_train_state_check(const struct lc_trainer *tr, const struct lc_st_file *f,
                               const char *path, struct lc_train_resume *pos,
                               struct lc_error *err)
{
    const int64_t total = total_steps(tr);
    const int64_t per_epoch = steps_per_epoch(tr);
    int64_t bad = 0;

    if (!lc_train_state_int(f, "step", &pos->step) ||
        !lc_train_state_int(f, "epoch", &pos->epoch) ||
        !lc_train_state_int(f, "microbatch", &pos->mb) || !meta_double(f, "lr", &pos->lr) ||
        !meta_double(f, "plateau_best", &pos->plateau_best) ||
        !lc_train_state_int(f, "plateau_bad", &bad) ||
        !meta_double(f, "best_val", &pos->best_val) ||
        !lc_train_state_int(f, "metrics_lines", &pos->metrics_lines)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: training state metadata incomplete (step, epoch, microbatch, lr, "
                          "plateau_best, plateau_bad, best_val and metrics_lines are needed)",
                          path);
    }
    /* the position is used to index the data order: it must be one the
     * loop reaches, and the epoch and micro-batch the ones of that step */
    if (pos->step < 0 || pos->step > total) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: training state step %lld is outside 0..%lld",
                          path, (long long)pos->step, (long long)total);
    }
    if (per_epoch < 1 || pos->epoch != pos->step / per_epoch ||
        pos->mb != pos->step % per_epoch * tr->o->grad_accum) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: training state epoch %lld and microbatch %lld do not belong to "
                          "step %lld (%lld steps of %d micro-batches per epoch)",
                          path, (long long)pos->epoch, (long long)pos->mb, (long long)pos->step,
                          (long long)per_epoch, tr->o->grad_accum);
    }
    if (!(pos->lr > 0) || !isfinite(pos->lr) || isnan(pos->plateau_best) ||
        isnan(pos->best_val) || bad < 0 || bad > tr->o->plateau_patience ||
        pos->metrics_lines < 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: training state schedule out of range (lr %g, plateau_best %g, "
                          "plateau_bad %lld, best_val %g, metrics_lines %lld)",
                          path, pos->lr, pos->plateau_best, (long long)bad, pos->best_val,
                          (long long)pos->metrics_lines);
    }
    pos->plateau_bad = (int)bad;
    for (int g = 0; g < tr->n_groups; g++) {
        const struct lc_param_group *pg = &tr->groups[g];
        static const char *const parts[] = {"params", "adam_m", "adam_v", "best"};
        for (int p = 0; p < 4; p++) {
            char name[128];
            const struct lc_tensor_view *t;
            snprintf(name, sizeof(name), "%s.%s", pg->name, parts[p]);
            t = lc_st_find(f, name);
            if (t == NULL || t->dtype != LC_DTYPE_F32 || t->numel != (int64_t)pg->n) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: tensor %s missing or not F32 of %zu elements", path, name,
                                  pg->n);
            }
            pos->tensors[g][p] = t;
        }
    }
    return LC_OK;
}

lc_status lc_train_state_open(const struct lc_trainer *tr, char **path, struct lc_st_file **f,
                              struct lc_error *err)
{
    *f = NULL;
    *path = state_path(tr);
    if (*path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (access(*path, F_OK) != 0) {
        return LC_OK;
    }
    return lc_st_open(f, *path, err);
}

/* Loads the state when the folder has one for this stage.  *found says
 * whether it did. */
static lc_status load_state(struct lc_trainer *tr, int *found, struct lc_error *err)
{
    struct lc_backend *be = tr->be;
    char *path = NULL;
    struct lc_st_file *f = NULL;
    const char *stage;
    const char *fp;
    char want[1024];
    struct lc_train_resume pos;
    int64_t pending = 0;
    lc_status rc;

    *found = 0;
    rc = lc_train_state_open(tr, &path, &f, err);
    if (rc != LC_OK || f == NULL) {
        free(path);
        return rc;
    }
    stage = lc_st_metadata(f, "stage");
    if (stage == NULL || strcmp(stage, tr->hooks->name) != 0) {
        /* the state of another stage: not ours to resume */
        lc_st_close(f);
        free(path);
        return LC_OK;
    }
    fp = lc_st_metadata(f, "fingerprint");
    fingerprint(tr, want, sizeof(want));
    if (fp == NULL || strcmp(fp, want) != 0) {
        rc = lc_err_set(err, LC_ERR_ARG,
                        "%s: saved with other settings or data; resume needs the same options "
                        "and data (saved: %s; now: %s)",
                        path, fp != NULL ? fp : "none", want);
        goto done;
    }
    rc = lc_train_state_check(tr, f, path, &pos, err);
    if (rc != LC_OK) {
        goto done;
    }
    /* absent in states saved before stops inside an evaluation existed */
    if (lc_st_metadata(f, "eval_pending") != NULL &&
        (!lc_train_state_int(f, "eval_pending", &pending) || (pending != 0 && pending != 1))) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: training state metadata eval_pending is not 0 "
                                            "or 1", path);
        goto done;
    }
    for (int g = 0; g < tr->n_groups; g++) {
        struct lc_param_group *pg = &tr->groups[g];
        for (int p = 0; p < 4; p++) {
            const struct lc_tensor_view *t = pos.tensors[g][p];
            if (p < 3) {
                float *dst = p == 0 ? pg->params : p == 1 ? pg->adam_m : pg->adam_v;
                be->ops->upload(be, dst, t->data, pg->n * sizeof(float));
            } else {
                memcpy(pg->best, t->data, pg->n * sizeof(float));
            }
        }
    }
    tr->step = pos.step;
    tr->epoch = pos.epoch;
    tr->mb = pos.mb;
    tr->lr = pos.lr;
    tr->plateau_best = pos.plateau_best;
    tr->plateau_bad = pos.plateau_bad;
    tr->best_val = pos.best_val;
    tr->eval_pending = (int)pending;
    if (tr->metrics != NULL) {
        /* drop metric lines written after the saved state */
        rc = rewind_metrics(tr, pos.metrics_lines, err);
        if (rc != LC_OK) {
            goto done;
        }
    }
    *found = 1;
    rc = be->ops->sync(be, err);

done:
    lc_st_close(f);
    free(path);
    return rc;
}

/* ------------------------------------------------------------ the loop */

/* A stop asked for inside an optimizer step or an evaluation: the work
 * under way is dropped and the state of the last finished step is saved
 * (with its evaluation still to run when that was interrupted), so that a
 * resumed run does the same work as an uninterrupted one.  Before the
 * first evaluation of the stage has ended there is nothing to save. */
static lc_status stop_inside(struct lc_trainer *tr, int in_eval, struct lc_error *err)
{
    lc_status rc;

    if (in_eval && tr->step == 0) {
        return lc_err_set(err, LC_ERR_INTERRUPTED,
                          "stopped in the first evaluation of stage %s, before any of its "
                          "results were saved",
                          tr->hooks->name);
    }
    tr->eval_pending = in_eval;
    rc = save_state(tr, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (in_eval) {
        return lc_err_set(err, LC_ERR_INTERRUPTED,
                          "stopped in the evaluation after step %lld; the state is saved in %s "
                          "(resume with --resume)",
                          (long long)tr->step, tr->o->out_dir);
    }
    return lc_err_set(err, LC_ERR_INTERRUPTED,
                      "stopped in step %lld; the state after step %lld is saved in %s (resume "
                      "with --resume)",
                      (long long)tr->step + 1, (long long)tr->step, tr->o->out_dir);
}

static lc_status eval_and_checkpoint(struct lc_trainer *tr, struct lc_error *err)
{
    const int L = tr->m->cfg.n_layers;
    struct lc_train_event ev = {0};
    double *layer = calloc((size_t)L, sizeof(double));
    double val = 0.0;
    lc_status rc;

    if (layer == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = evaluate(tr, &val, layer, err);
    if (rc == LC_ERR_INTERRUPTED) {
        rc = stop_inside(tr, 1, err);
    }
    if (rc != LC_OK) {
        goto done;
    }
    /* the evaluation of the starting point is no step of the schedule */
    if (tr->step > 0 && stage_schedule(tr) == LC_LR_PLATEAU) {
        plateau_step(tr, val);
    }
    ev.kind = LC_EV_EVAL;
    ev.val_loss = val;
    ev.improved = val < tr->best_val;
    ev.layer_mse = tr->hooks->reports_layers ? layer : NULL;
    /* best-on-validation: the weights of the best evaluation are kept on
     * the host and are the stage's result (run_stage returns to them) */
    if (ev.improved) {
        tr->best_val = val;
        for (int g = 0; g < tr->n_groups; g++) {
            tr->be->ops->download(tr->be, tr->groups[g].best, tr->groups[g].params,
                                  tr->groups[g].n * sizeof(float));
        }
        /* in the pipeline each rank holds its own layers: the writer
         * collects the others' parts before it saves */
        rc = lc_dt_gather_best(tr, err);
        if (rc == LC_OK && tr->writer) {
            rc = tr->hooks->save_outputs(tr, err);
        }
        if (rc != LC_OK) {
            goto done;
        }
    }
    if (tr->metrics != NULL || tr->metrics_out != NULL) {
        const int l0 = tr->block >= 0 ? tr->block_l0 : 0;
        const int l1 = tr->block >= 0 ? tr->block_l1 : L;
        metrics_head(tr);
        metrics_line(tr, "\"step\": %lld, \"epoch\": %lld, \"val_loss\": %.9g, "
                         "\"best_val_loss\": %.9g, \"lr\": %.9g",
                     (long long)tr->step, (long long)tr->epoch, val, tr->best_val, step_lr(tr));
        if (tr->hooks->reports_layers) {
            metrics_line(tr, ", \"layer_mse\": [");
            for (int l = l0; l < l1; l++) {
                metrics_line(tr, "%s%.9g", l > l0 ? ", " : "", layer[l]);
            }
            metrics_line(tr, "]");
        }
        metrics_line(tr, "}\n");
    }
    tr->eval_pending = 0;
    rc = metrics_check(tr, err);
    if (rc == LC_OK) {
        rc = lc_dt_gather_state(tr, err);
    }
    if (rc == LC_OK && tr->writer) {
        rc = save_state(tr, err);
    }
    if (rc == LC_OK && emit(tr, &ev) != 0) {
        rc = lc_err_set(err, LC_ERR_INTERRUPTED, "stopped at step %lld; the state is saved in %s",
                        (long long)tr->step, tr->o->out_dir);
    }

done:
    free(layer);
    return rc;
}

static lc_status run_stage(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_backend *be = tr->be;
    const struct lc_train_opts *o = tr->o;
    const int64_t total = total_steps(tr);
    const int64_t mb_epoch = microbatches_per_epoch(tr);
    struct lc_train_event ev = {0};
    int found = 0;
    lc_status rc;

    tr->lr = is_lora_stage(tr) ? o->lora_lr : o->lr;
    tr->plateau_best = INFINITY;
    tr->plateau_bad = 0;
    tr->best_val = INFINITY;
    tr->step = 0;
    tr->epoch = 0;
    tr->mb = 0;
    tr->eval_pending = 0;
    for (int g = 0; g < tr->n_groups; g++) {
        be->ops->download(be, tr->groups[g].best, tr->groups[g].params,
                          tr->groups[g].n * sizeof(float));
    }
    if (o->resume) {
        rc = load_state(tr, &found, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (!found && tr->metrics != NULL && tr->metrics_lines == 0) {
            /* nothing to resume: start the metrics afresh too */
            rc = rewind_metrics(tr, 0, err);
            if (rc != LC_OK) {
                return rc;
            }
        }
    }
    ev.kind = LC_EV_START;
    ev.total_steps = total;
    ev.plan_bytes = (int64_t)tr->plan_peak;
    ev.tokens_per_step = (int64_t)tr->B * tr->T * o->grad_accum;
    if (emit(tr, &ev) != 0) {
        return lc_err_set(err, LC_ERR_INTERRUPTED, "stopped before training");
    }
    if (!found || tr->eval_pending) {
        /* the starting point is the first candidate for the best weights
         * (or the evaluation a stop interrupted) */
        rc = eval_and_checkpoint(tr, err);
        if (rc != LC_OK) {
            return rc;
        }
    }
    while (tr->step < total) {
        double t0 = lc_time_now();
        double lr = step_lr(tr);
        double loss = 0.0;
        int64_t n_mb = o->grad_accum;
        int64_t tokens = 0;

        rc = ensure_perm(tr, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (n_mb > mb_epoch - tr->mb) {
            n_mb = mb_epoch - tr->mb; /* the last step of an epoch may be short */
        }
        rc = lc_dt_step_begin(tr, n_mb, err);
        tr->phase = LC_PHASE_TRAIN;
        tr->phase_total = n_mb;
        for (int64_t i = 0; i < n_mb && rc == LC_OK; i++) {
            int32_t *ids = tr->train_ids;
            int32_t *labels = tr->train_labels;
            double mb_loss = 0.0;
            /* the step's tokens, all ranks' together */
            tokens += (int64_t)tr->B * tr->T;
            if (!lc_dt_runs_mb(tr, i)) {
                continue; /* another rank's */
            }
            /* each micro-batch's gradient on its own, then added to the step's
             * (pg->acc) in micro-batch order: the same additions in the same
             * order with one rank or several, so the step does not depend on
             * how the micro-batches are spread over ranks */
            for (int g = 0; g < tr->n_groups; g++) {
                be->ops->zero(be, tr->groups[g].grads, tr->groups[g].n * sizeof(float));
            }
            /* gather the B chunks of this micro-batch into one contiguous batch */
            rc = lc_trainer_gather(tr, tr->perm + (tr->mb + i) * tr->B, &ids, &labels, err);
            tr->cur_mb = i;
            tr->cur_chunks = tr->perm + (tr->mb + i) * tr->B;
            tr->phase_done = i;
            /* grad_div n_mb: each micro-batch's gradient is divided by the
             * number in the step, so that their sum is the step's mean */
            if (rc == LC_OK) {
                rc = tr->hooks->microbatch(tr, ids, labels, tr->B, 1, (double)n_mb, &mb_loss,
                                           tr->layer_loss, err);
            }
            if (rc == LC_ERR_INTERRUPTED) {
                /* one process: stopped inside the step */
                return stop_inside(tr, 0, err);
            }
            if (rc == LC_OK) {
                rc = lc_dt_keep_mb(tr, i, mb_loss, err);
            }
        }
        if (rc == LC_OK) {
            /* the sum of the gradients and of the losses in micro-batch order */
            rc = lc_dt_step_end(tr, &loss, err);
        }
        if (rc != LC_OK) {
            return rc;
        }
        if (!isfinite(loss)) {
            return lc_err_set(err, LC_ERR_NUMERIC,
                              "%s: the training loss is not finite at step %lld (lr %g); "
                              "try a smaller learning rate",
                              tr->hooks->name, (long long)tr->step + 1, lr);
        }
        for (int g = 0; g < tr->n_groups; g++) {
            struct lc_param_group *pg = &tr->groups[g];
            const double scale = pg->lr_scale > 0 ? pg->lr_scale : 1.0;
            size_t off, n;
            lc_dt_own(tr, g, &off, &n); /* a pipeline stage updates its own layers */
            /* the summed gradient pg->acc; the step count is 1-based for the
             * bias corrections, as in PyTorch */
            be->ops->adamw(be, pg->params + off, pg->acc + off, pg->adam_m + off,
                           pg->adam_v + off, (int64_t)n, lr * scale, 0.9, 0.999, 1e-8,
                           o->weight_decay, tr->step + 1);
        }
        rc = be->ops->sync(be, err);
        if (rc != LC_OK) {
            return rc;
        }
        tr->step++;
        tr->mb += n_mb;
        if (tr->mb >= mb_epoch) {
            tr->epoch++;
            tr->mb = 0;
        }
        memset(&ev, 0, sizeof(ev));
        ev.kind = LC_EV_STEP;
        ev.lr = lr;
        ev.total_steps = total;
        ev.loss = loss;
        ev.tokens_per_s = (double)tokens / (lc_time_now() - t0 + 1e-9);
        ev.tokens_per_step = tokens;
        metrics_head(tr);
        metrics_line(tr, "\"step\": %lld, \"epoch\": %lld, \"loss\": %.9g, \"lr\": %.9g, "
                         "\"tokens_per_s\": %.1f}\n",
                     (long long)tr->step, (long long)tr->epoch, loss, lr, ev.tokens_per_s);
        rc = metrics_check(tr, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (emit(tr, &ev) != 0) {
            /* the evaluation due after this step has not run: a resumed
             * run does it first */
            tr->eval_pending = tr->step % o->eval_every == 0 || tr->step == total;
            rc = lc_dt_gather_state(tr, err);
            if (rc == LC_OK && tr->writer) {
                rc = save_state(tr, err);
            }
            if (rc == LC_OK) {
                rc = lc_err_set(err, LC_ERR_INTERRUPTED,
                                "stopped at step %lld; the state is saved in %s (resume with --resume)",
                                (long long)tr->step, o->out_dir);
            }
            return rc;
        }
        if (tr->step % o->eval_every == 0 || tr->step == total) {
            rc = eval_and_checkpoint(tr, err);
            if (rc != LC_OK) {
                return rc;
            }
        }
    }
    /* continue from the best weights (every rank all of them) */
    rc = lc_dt_share_best(tr, err);
    if (rc != LC_OK) {
        return rc;
    }
    for (int g = 0; g < tr->n_groups; g++) {
        be->ops->upload(be, tr->groups[g].params, tr->groups[g].best,
                        tr->groups[g].n * sizeof(float));
    }
    memset(&ev, 0, sizeof(ev));
    ev.kind = LC_EV_END;
    ev.total_steps = total;
    emit(tr, &ev);
    return be->ops->sync(be, err);
}

lc_status lc_train_run_stage(struct lc_trainer *tr, struct lc_error *err)
{
    /* stage 1 runs as a pipeline of layers, stage 2 data parallel unless
     * --pipeline-stages cuts it too */
    int mode = tr->dt_mode != 0                              ? tr->dt_mode
               : tr->hooks->stage == LC_STAGE_TRANSFER ? LC_DT_PIPELINE
               : lc_dt_finetune_pipelined(tr)          ? LC_DT_PIPELINE
                                                       : LC_DT_DATA;
    lc_status rc = lc_dt_stage_begin(tr, mode, err);

    if (rc == LC_OK) {
        rc = run_stage(tr, err);
    }
    lc_dt_stage_end(tr);
    return rc;
}

/* ------------------------------------------------------------ batches */

lc_status lc_trainer_gather(struct lc_trainer *tr, const int64_t *chunks, int32_t **ids,
                            int32_t **labels, struct lc_error *err)
{
    const size_t T = (size_t)tr->T;
    (void)err;
    /* the chunks of a micro-batch lie anywhere in the data; the kernels
     * take B contiguous rows of T tokens */
    for (int b = 0; b < tr->B; b++) {
        memcpy(tr->batch_ids + b * T, tr->train_ids + (size_t)chunks[b] * T, T * sizeof(int32_t));
        memcpy(tr->batch_labels + b * T, tr->train_labels + (size_t)chunks[b] * T,
               T * sizeof(int32_t));
    }
    *ids = tr->batch_ids;
    *labels = tr->batch_labels;
    return LC_OK;
}

/* ------------------------------------------------------------ outputs */

static void remove_output(const char *dir, const char *name)
{
    char *p = lc_path_join(dir, name);
    if (p != NULL) {
        unlink(p);
        free(p);
    }
}

void lc_remove_stale_adapter(struct lc_trainer *tr)
{
    if (!tr->adapter_cleared) {
        remove_output(tr->o->out_dir, "adapter_model.safetensors");
        remove_output(tr->o->out_dir, "adapter_config.json");
        remove_output(tr->o->out_dir, LC_TRANSFER_MAPS_FILE);
        tr->adapter_cleared = 1;
    }
}
