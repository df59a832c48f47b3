/*
 * Block-wise attention transfer (method doc section 6, --block-layers K):
 * the layers are cut into blocks of K; the original model's residual
 * stream at the first layer of every block is computed once for the
 * training and validation chunks and cached on disk (hidden_cache.c); then
 * each block is trained on its own, from its cached inputs, with its own
 * optimizer, schedule and best-on-validation selection, and a loss that
 * is the mean over the block's layers.  A block's state and best weights
 * are files of their own (OUT/blocks/), so an interrupted run resumes
 * block by block.
 *
 * Across ranks, the blocks are dealt out in contiguous runs to the
 * pipeline stages, and the ranks of a stage train its blocks together
 * (data parallel).  Stages work independently of each other, so rank 0,
 * which writes every file, serves the files and metrics lines of the
 * other stages' first ranks between its own micro-batches (they are
 * redirected to it, atomicfile.h), and a stop asked for on any rank is
 * passed to all.  At the end rank 0 puts the blocks' feature maps together
 * into feature_maps.safetensors and every rank gets them.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomicfile.h"
#include "core/dist_train.h"
#include "core/fileio.h"
#include "core/hidden_cache.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/train.h"
#include "core/util.h"

#define BLOCKS_DIR "blocks"
/* requests to rank 0 share one tag, so that they arrive in the order sent:
 * a kind byte, then the request */
#define TAG_SERVICE 31
#define TAG_WRITE_REPLY 32
#define TAG_STOP 34
enum { SVC_WRITE = 1, SVC_EVENT = 2, SVC_LINE = 3, SVC_DONE = 4 };

/* What a rank knows of the others during block training. */
struct relay {
    struct lc_trainer *main;   /* the run's trainer (rank 0: the metrics file, the caller) */
    struct lc_dtrain *dt;
    int stop_sent;             /* this rank told the others to stop */
    int stop_seen;             /* another rank asked to stop */
    int done_seen;             /* rank 0: stage leaders that finished */
    int failed;                /* rank 0: a stage leader failed */
    struct lc_comm_req **stop_reqs;
    char stop_byte;
};

struct block_ctx {
    char line[16384];          /* the metrics line being written */
    size_t line_len;
    struct relay *relay;
    struct lc_trainer *bt;     /* the block's trainer */
    struct lc_hcache *cache;   /* opened on first use */
    float *rows;               /* host [B, T, C] */
    int n_lin;                 /* linearized layers in the block */
};

static char *block_file(const struct lc_train_opts *o, const char *what, int block)
{
    char name[96];
    snprintf(name, sizeof(name), BLOCKS_DIR "/%s-b%04d.safetensors", what, block);
    return lc_path_join(o->out_dir, name);
}

/* ------------------------------------------------------------ rank 0's service */

static void write_metrics_line(struct lc_trainer *main, const char *line)
{
    if (main->metrics != NULL && line[0] != '\0') {
        fputs(line, main->metrics);
        fflush(main->metrics);
        main->metrics_lines++;
    }
}

/* Rank 0: a write request [path length][path][data], answered with
 * [status][message]. */
static void serve_write(struct relay *r, int src, const char *msg, size_t bytes)
{
    struct {
        int32_t rc;
        char msg[LC_ERROR_MSG_MAX];
    } reply;
    struct lc_error err = {0};
    uint32_t plen = 0;

    memset(&reply, 0, sizeof(reply));
    memcpy(&plen, msg, sizeof(plen));
    LC_ASSERT(sizeof(plen) + plen + 1 <= bytes);
    reply.rc = lc_write_file_atomic(msg + sizeof(plen), msg + sizeof(plen) + plen + 1,
                                    bytes - sizeof(plen) - plen - 1, &err);
    snprintf(reply.msg, sizeof(reply.msg), "%s", err.msg);
    lc_comm_send(r->dt->dist->world, NULL, &reply, sizeof(reply), src, TAG_WRITE_REPLY, NULL);
}

/* Rank 0: another stage's event [event][L doubles]. */
static void serve_event(struct relay *r, char *msg, size_t bytes)
{
    struct lc_trainer *main = r->main;
    const size_t L = (size_t)main->m->cfg.n_layers;
    double *mse = malloc(L * sizeof(double) + 1);
    struct lc_train_event ev;

    LC_ASSERT(bytes >= sizeof(ev) + L * sizeof(double));
    memcpy(&ev, msg, sizeof(ev));
    /* the message has no alignment to speak of */
    if (mse != NULL) {
        memcpy(mse, msg + sizeof(ev), L * sizeof(double));
    }
    ev.layer_mse = mse;
    /* the caller shows the other blocks' evaluations and ends */
    if ((ev.kind == LC_EV_EVAL || ev.kind == LC_EV_END) && main->on_event != NULL &&
        main->on_event(&ev, main->user) != 0) {
        r->stop_seen = 1;
    }
    free(mse);
}

/* Takes what waits: stop notices on every rank; on rank 0 also the
 * other stages' files, events and ends. */
static void relay_poll(struct relay *r)
{
    struct lc_comm *w = r->dt->dist->world;
    int src;
    size_t bytes;

    if (r->dt->dist->size == 1) {
        return;
    }
    while (lc_comm_probe(w, -1, TAG_STOP, &src, &bytes)) {
        char b;
        lc_comm_recv(w, NULL, &b, 1, src, TAG_STOP, NULL);
        r->stop_seen = 1;
    }
    if (r->dt->dist->rank != 0) {
        return;
    }
    while (lc_comm_probe(w, -1, TAG_SERVICE, &src, &bytes)) {
        char *msg = malloc(bytes + 1);
        if (msg == NULL || bytes < 1 ||
            lc_comm_recv(w, NULL, msg, bytes, src, TAG_SERVICE, NULL) != LC_OK) {
            free(msg);
            r->failed = 1;
            r->done_seen++;
            continue;
        }
        if (msg[0] == SVC_WRITE) {
            serve_write(r, src, msg + 1, bytes - 1);
        } else if (msg[0] == SVC_EVENT) {
            serve_event(r, msg + 1, bytes - 1);
        } else if (msg[0] == SVC_LINE) {
            msg[bytes] = '\0';
            write_metrics_line(r->main, msg + 1);
        } else {
            r->done_seen++;
        }
        free(msg);
    }
}

/* a request to rank 0: the kind, then data */
static lc_status to_rank0(struct relay *r, int kind, const void *data, size_t len,
                          struct lc_error *err)
{
    char *msg = malloc(len + 1);
    lc_status rc;

    if (msg == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    msg[0] = (char)kind;
    if (len > 0) {
        memcpy(msg + 1, data, len);
    }
    rc = lc_comm_send(r->dt->dist->world, NULL, msg, len + 1, 0, TAG_SERVICE, err);
    free(msg);
    return rc;
}

/* Tells every other rank to stop (once). */
static void relay_stop(struct relay *r)
{
    const int P = r->dt->dist->size;

    if (r->stop_sent || P == 1) {
        return;
    }
    r->stop_sent = 1;
    r->stop_reqs = calloc((size_t)P, sizeof(*r->stop_reqs));
    for (int p = 0; p < P && r->stop_reqs != NULL; p++) {
        if (p != r->dt->dist->rank) {
            lc_comm_isend(r->dt->dist->world, &r->stop_byte, 1, p, TAG_STOP, &r->stop_reqs[p],
                          NULL);
        }
    }
}

/* A stage leader's file, written by rank 0 (the atomic-file redirect). */
static lc_status write_via_rank0(const char *path, const void *data, size_t len, void *user,
                                 struct lc_error *err)
{
    struct relay *r = user;
    struct lc_comm *w = r->dt->dist->world;
    const uint32_t plen = (uint32_t)strlen(path);
    const size_t bytes = sizeof(plen) + plen + 1 + len;
    char *msg = malloc(bytes);
    struct {
        int32_t rc;
        char msg[LC_ERROR_MSG_MAX];
    } reply;
    lc_status rc;

    if (msg == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(msg, &plen, sizeof(plen));
    memcpy(msg + sizeof(plen), path, plen + 1);
    if (len > 0) {
        memcpy(msg + sizeof(plen) + plen + 1, data, len);
    }
    rc = to_rank0(r, SVC_WRITE, msg, bytes, err);
    free(msg);
    if (rc == LC_OK) {
        rc = lc_comm_recv(w, NULL, &reply, sizeof(reply), 0, TAG_WRITE_REPLY, err);
    }
    if (rc == LC_OK && reply.rc != LC_OK) {
        reply.msg[sizeof(reply.msg) - 1] = '\0';
        rc = lc_err_set(err, (lc_status)reply.rc, "%s", reply.msg);
    }
    return rc;
}

/* ------------------------------------------------------------ a block */

/* The block trainer's events: metrics lines (rank 0 writes them), the
 * caller's callback, and stops passed between the stages. */
/* A leader's metrics text: whole lines to rank 0's file. */
static void block_metrics_out(struct lc_trainer *tr, const char *text)
{
    struct block_ctx *bc = tr->aux;
    const size_t n = strlen(text);

    if (bc->line_len + n + 1 > sizeof(bc->line)) {
        return; /* longer than any line the loop writes */
    }
    memcpy(bc->line + bc->line_len, text, n + 1);
    bc->line_len += n;
    if (n == 0 || text[n - 1] != '\n') {
        return;
    }
    if (bc->relay->dt->dist->rank == 0) {
        write_metrics_line(bc->relay->main, bc->line);
    } else {
        to_rank0(bc->relay, SVC_LINE, bc->line, bc->line_len, NULL);
    }
    bc->line_len = 0;
}

static int block_event(const struct lc_train_event *ev, void *user)
{
    struct block_ctx *bc = user;
    struct relay *r = bc->relay;
    struct lc_trainer *main = r->main;
    const int L = main->m->cfg.n_layers;
    int stop = 0;

    if (r->dt->dist->rank != 0 && bc->bt->writer &&
        (ev->kind == LC_EV_EVAL || ev->kind == LC_EV_END)) {
        /* rank 0 shows the other stages' evaluations and ends */
        const size_t bytes = sizeof(*ev) + (size_t)L * sizeof(double);
        char *msg = calloc(1, bytes);
        if (msg != NULL) {
            struct lc_train_event copy = *ev;
            copy.layer_mse = NULL;
            memcpy(msg, &copy, sizeof(copy));
            if (ev->layer_mse != NULL) {
                memcpy(msg + sizeof(copy), ev->layer_mse, (size_t)L * sizeof(double));
            }
            to_rank0(r, SVC_EVENT, msg, bytes, NULL);
            free(msg);
        }
    }
    if (main->on_event != NULL) {
        stop = main->on_event(ev, main->user) != 0;
    }
    if (stop) {
        relay_stop(r);
    }
    relay_poll(r);
    return stop || r->stop_seen;
}

static lc_status block_microbatch(struct lc_trainer *tr, const int32_t *ids,
                                  const int32_t *labels, int B, int backward, double grad_div,
                                  double *loss, double *layer_loss, struct lc_error *err)
{
    struct block_ctx *bc = tr->aux;
    struct lc_backend *be = tr->be;
    const size_t rows = (size_t)tr->T * (size_t)tr->m->cfg.hidden_size;
    double total = 0.0;
    lc_status rc = LC_OK;

    (void)ids;
    (void)labels;
    relay_poll(bc->relay);
    if (bc->cache == NULL) {
        rc = lc_hcache_open(&bc->cache, tr, tr->block, err);
    }
    /* the block's input: the cached residual stream of these chunks */
    for (int b = 0; b < B && rc == LC_OK; b++) {
        if (tr->cur_chunks != NULL) {
            rc = lc_hcache_read(bc->cache, LC_HC_TRAIN, tr->cur_chunks[b], bc->rows + b * rows,
                                err);
        } else {
            rc = lc_hcache_read(bc->cache, LC_HC_VAL, tr->cur_val + b, bc->rows + b * rows, err);
        }
    }
    if (rc == LC_OK) {
        be->ops->upload(be, tr->model->fwd.x, bc->rows, (size_t)B * rows * sizeof(float));
        rc = lc_transfer_positions(tr, B, err);
    }
    if (rc == LC_OK) {
        rc = lc_transfer_layers(tr, tr->block_l0, tr->block_l1, B, backward, grad_div, bc->n_lin,
                                0, &total, layer_loss, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    *loss = total;
    return be->ops->sync(be, err);
}

/* the block's best feature maps: OUT/blocks/feature_maps-bNNNN.safetensors */
static lc_status block_save(struct lc_trainer *tr, struct lc_error *err)
{
    char *path = block_file(tr->o, "feature_maps", tr->block);
    float *arena = tr->groups[0].best - (size_t)tr->block_l0 * tr->lin->layer_size;
    lc_status rc;

    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_linattn_save_layers(tr->lin, arena, tr->block_l0, tr->block_l1, path, err);
    free(path);
    return rc;
}

static const struct lc_stage_hooks block_hooks = {
    .stage = LC_STAGE_TRANSFER,
    .name = "transfer",
    .microbatch = block_microbatch,
    .save_outputs = block_save,
    .reports_layers = 1,
};

static lc_status train_block(struct lc_trainer *tr, struct relay *r, int block,
                             struct lc_error *err)
{
    const struct lc_layout *lo = &tr->dt->layout;
    const struct lc_param_group *all = &tr->groups[0];
    const size_t ls = tr->lin->layer_size;
    struct block_ctx bc;
    struct lc_trainer bt = *tr;
    char state[96];
    int l0, l1;
    lc_status rc;

    lc_layout_unit_layers(lo, block, &l0, &l1);
    memset(&bc, 0, sizeof(bc));
    for (int l = l0; l < l1; l++) {
        bc.n_lin += !lc_linattn_is_softmax(tr->lin, l);
    }
    if (bc.n_lin == 0) {
        return LC_OK; /* only softmax layers: nothing to learn */
    }
    bc.relay = r;
    bc.bt = &bt;
    bc.rows = malloc((size_t)tr->B * (size_t)tr->T * (size_t)tr->m->cfg.hidden_size *
                     sizeof(float));
    if (bc.rows == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    snprintf(state, sizeof(state), BLOCKS_DIR "/train_state-b%04d.safetensors", block);
    /* the block's part of the feature-map arenas is the trained group */
    bt.hooks = &block_hooks;
    bt.n_groups = 1;
    bt.groups[0] = *all;
    bt.groups[0].params = all->params + (size_t)l0 * ls;
    bt.groups[0].grads = all->grads + (size_t)l0 * ls;
    bt.groups[0].adam_m = all->adam_m + (size_t)l0 * ls;
    bt.groups[0].adam_v = all->adam_v + (size_t)l0 * ls;
    bt.groups[0].best = all->best + (size_t)l0 * ls;
    bt.groups[0].n = (size_t)(l1 - l0) * ls;
    bt.metrics = NULL; /* its lines go to rank 0's file */
    bt.metrics_lines = 0;
    bt.on_event = block_event;
    bt.user = &bc;
    bt.aux = &bc;
    bt.perm = NULL;
    bt.state_name = state;
    bt.block = block;
    bt.n_blocks = lo->n_units;
    bt.block_l0 = l0;
    bt.block_l1 = l1;
    bt.dt_mode = LC_DT_BLOCK;
    /* the first rank of the stage writes (through rank 0) */
    bt.writer = lc_comm_rank(tr->dt->stage_comm) == 0;
    bt.metrics_out = bt.writer && tr->o->metrics_path != NULL ? block_metrics_out : NULL;
    rc = lc_train_run_stage(&bt, err);
    lc_hcache_close(bc.cache);
    free(bc.rows);
    free(bt.perm);
    return rc;
}

/* ------------------------------------------------------------ resume */

/* Rank 0, resuming: the metrics lines of each block up to the step of its
 * saved state (none of a block without one), the others as they are. */
static lc_status rewind_block_metrics(struct lc_trainer *tr, struct lc_error *err)
{
    const int nb = tr->dt->layout.n_units;
    int64_t *saved = malloc((size_t)nb * sizeof(int64_t));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    char *kept = NULL;
    size_t kept_len = 0, kept_cap = 0;
    int64_t lines = 0;
    lc_status rc = LC_OK;

    if (saved == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int b = 0; b < nb; b++) {
        char *path = block_file(tr->o, "train_state", b);
        struct lc_st_file *f = NULL;
        const char *step;
        saved[b] = -1;
        if (path != NULL && access(path, F_OK) == 0 && lc_st_open(&f, path, NULL) == LC_OK) {
            step = lc_st_metadata(f, "step");
            saved[b] = step != NULL ? strtoll(step, NULL, 10) : -1;
            lc_st_close(f);
        }
        free(path);
    }
    rewind(tr->metrics);
    while ((len = getline(&line, &cap, tr->metrics)) > 0) {
        const char *bp = strstr(line, "\"block\": ");
        const char *sp = strstr(line, "\"step\": ");
        int keep = 1;
        if (bp != NULL && sp != NULL) {
            long b = strtol(bp + 9, NULL, 10);
            long long s = strtoll(sp + 8, NULL, 10);
            keep = b >= 0 && b < nb && s <= saved[b];
        }
        if (keep) {
            if (kept_len + (size_t)len > kept_cap) {
                size_t ncap = kept_cap > 0 ? 2 * kept_cap : 65536;
                char *grown;
                while (ncap < kept_len + (size_t)len) {
                    ncap *= 2;
                }
                grown = realloc(kept, ncap);
                if (grown == NULL) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
                    break;
                }
                kept = grown;
                kept_cap = ncap;
            }
            memcpy(kept + kept_len, line, (size_t)len);
            kept_len += (size_t)len;
            lines++;
        }
    }
    if (rc == LC_OK && (fflush(tr->metrics) != 0 || ftruncate(fileno(tr->metrics), 0) != 0 ||
                        fseek(tr->metrics, 0, SEEK_SET) != 0 ||
                        (kept_len > 0 && fwrite(kept, 1, kept_len, tr->metrics) != kept_len) ||
                        fflush(tr->metrics) != 0)) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot rewrite the metrics file",
                        tr->o->metrics_path);
    }
    tr->metrics_lines = lines;
    free(line);
    free(kept);
    free(saved);
    return rc;
}

/* ------------------------------------------------------------ the whole */

/* Rank 0: every block's best maps into one arena and feature_maps.safetensors. */
static lc_status assemble(struct lc_trainer *tr, float *host, struct lc_error *err)
{
    const struct lc_layout *lo = &tr->dt->layout;
    char *path = NULL;
    lc_status rc = lc_linattn_download(tr->lin, host);

    for (int b = 0; b < lo->n_units && rc == LC_OK; b++) {
        int l0, l1, n_lin = 0;
        lc_layout_unit_layers(lo, b, &l0, &l1);
        for (int l = l0; l < l1; l++) {
            n_lin += !lc_linattn_is_softmax(tr->lin, l);
        }
        if (n_lin == 0) {
            continue;
        }
        path = block_file(tr->o, "feature_maps", b);
        rc = path != NULL ? lc_linattn_read_layers(tr->lin, path, l0, l1, host, err)
                          : lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        free(path);
    }
    if (rc == LC_OK) {
        path = lc_path_join(tr->o->out_dir, "feature_maps.safetensors");
        rc = path != NULL ? lc_linattn_save(tr->lin, host, path, err)
                          : lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        free(path);
    }
    if (rc == LC_OK) {
        lc_remove_stale_adapter(tr);
    }
    return rc;
}

lc_status lc_blockwise_transfer(struct lc_trainer *tr, struct lc_error *err)
{
    struct lc_dtrain *dt = tr->dt;
    const struct lc_layout *lo = &dt->layout;
    const int rank = dt->dist->rank;
    const int P = dt->dist->size;
    struct relay r;
    float *host = NULL;
    int u0, u1;
    int64_t agreed[2];
    lc_status rc = LC_OK;

    memset(&r, 0, sizeof(r));
    r.main = tr;
    r.dt = dt;
    if (rank == 0) {
        char *dir = lc_path_join(tr->o->out_dir, BLOCKS_DIR);
        if (dir == NULL || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
            rc = lc_err_set(err, LC_ERR_IO, "%s: cannot create the folder: %s",
                            dir != NULL ? dir : BLOCKS_DIR, strerror(errno));
        } else {
            lc_atomic_remove_temporaries(dir, ".safetensors");
        }
        free(dir);
        if (rc == LC_OK && tr->o->resume && tr->metrics != NULL) {
            rc = rewind_block_metrics(tr, err);
        }
    }
    rc = lc_dt_agree_status(dt, rc, err);
    if (rc == LC_OK) {
        rc = lc_hcache_build(tr, err);
    }
    /* this stage's blocks, one after another; the first rank of a stage
     * other than rank 0's has its files written by rank 0 */
    lc_layout_units(lo, dt->stage, &u0, &u1);
    if (rank != 0 && lc_comm_rank(dt->stage_comm) == 0) {
        lc_atomic_set_redirect(write_via_rank0, &r);
    }
    for (int b = u0; b < u1 && rc == LC_OK && !r.stop_seen; b++) {
        rc = train_block(tr, &r, b, err);
    }
    lc_atomic_set_redirect(NULL, NULL);
    if (rc != LC_OK && rc != LC_ERR_INTERRUPTED && P > 1) {
        /* the ranks of this stage may wait for this one: the caller ends
         * the job */
        return rc;
    }
    if (rc == LC_ERR_INTERRUPTED || (rc == LC_OK && r.stop_seen)) {
        relay_stop(&r);
    }
    /* rank 0 serves the others until every stage's first rank is done */
    if (P > 1) {
        if (rank != 0 && lc_comm_rank(dt->stage_comm) == 0) {
            to_rank0(&r, SVC_DONE, NULL, 0, NULL);
        } else if (rank == 0) {
            while (r.done_seen < lo->stages - 1) {
                relay_poll(&r);
                usleep(500);
            }
        }
        agreed[0] = rc == LC_ERR_INTERRUPTED || r.stop_sent || r.stop_seen;
        agreed[1] = (rc != LC_OK && rc != LC_ERR_INTERRUPTED) || r.failed;
        if (lc_comm_allreduce_max(dt->dist->world, agreed, 2, rc == LC_OK ? err : NULL) !=
            LC_OK) {
            agreed[1] = 1;
        }
        relay_poll(&r); /* stop notices still on their way */
        for (int p = 0; r.stop_reqs != NULL && p < P; p++) {
            lc_comm_wait(r.stop_reqs[p], NULL);
        }
        free(r.stop_reqs);
        if (rc == LC_OK && agreed[1]) {
            rc = lc_err_set(err, LC_ERR_DIST, "rank %d: stopped because another rank failed",
                            rank);
        } else if (rc == LC_OK && agreed[0]) {
            rc = lc_err_set(err, LC_ERR_INTERRUPTED,
                            "stopped; the states of the blocks are saved in %s/" BLOCKS_DIR
                            " (resume with --resume)",
                            tr->o->out_dir);
        }
    } else if (rc == LC_OK && r.stop_seen) {
        rc = lc_err_set(err, LC_ERR_INTERRUPTED, "stopped; resume with --resume");
    }
    if (rc != LC_OK) {
        return rc;
    }
    /* the whole model's feature maps, on every rank */
    host = malloc(tr->lin->n_params * sizeof(float));
    if (host == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (rank == 0) {
        rc = assemble(tr, host, err);
    }
    rc = lc_dt_agree_status(dt, rc, err);
    if (rc == LC_OK) {
        rc = lc_comm_bcast(dt->dist->world, NULL, host, tr->lin->n_params * sizeof(float), 0,
                           err);
    }
    if (rc == LC_OK) {
        memcpy(tr->groups[0].best, host, tr->lin->n_params * sizeof(float));
        rc = lc_linattn_upload(tr->lin, host);
    }
    free(host);
    return rc;
}
