/*
 * lc_train, the conversion: checks the options and the output folder
 * (removing the temporary files a killed run left there), loads the data,
 * and runs the stages asked for in turn (attention transfer, LoRA
 * finetuning, the lora-only comparison) through the training loop of
 * trainer.c, resuming where a killed run stopped, and writes
 * lolcats_config.json after each stage.  This file picks the stages; the
 * stages call only the loop's pieces (trainer.h), never back into here.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomicfile.h"
#include "core/dist_train.h"
#include "core/fileio.h"
#include "core/plan.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/train.h"
#include "core/util.h"

#define CONFIG_FILE "lolcats_config.json"

LC_API void lc_train_opts_default(struct lc_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->stage = LC_STAGE_ALL;
    o->seq_len = 0; /* chosen from the model */
    o->batch_size = 1;
    o->grad_accum = 8;
    o->max_steps = -1;
    o->epochs = 2;
    o->eval_every = 100;
    o->val_size = 0;
    o->seed = 0;
    o->lr = 1e-2;
    o->feature_dim = 64;
    o->window = 64;
    o->window_mode = LC_WINDOW_TERRACED;
    o->mse_weight = 1000.0;
    o->xent_weight = 0.0;
    o->lora_lr = 1e-4;
    o->lora_rank = 8;
    o->lora_alpha = 16.0;
    o->lora_dropout = 0.0;
    o->lora_targets = LC_LORA_Q | LC_LORA_K | LC_LORA_V | LC_LORA_O;
    o->weight_decay = 0.0;
    o->plateau_factor = 0.1;
    o->plateau_patience = 10;
    o->min_lr = 1e-5;
    o->lr_schedule = LC_LR_PLATEAU;
    o->lora_lr_schedule = LC_LR_PLATEAU;
    o->warmup_steps = 0;
    o->lora_warmup_steps = 0;
    /* stage 2 trains the feature maps too, at stage 1's rate: on stories260K
     * the linearized model then ends below the original with the same LoRA
     * (lolcats-train(1), DEFAULTS) */
    o->train_feature_maps = 1;
    o->feature_map_lr = 1e-2;
}

/* ------------------------------------------------------------ outputs */

static const char *mode_name(int mode)
{
    return mode == LC_WINDOW_SLIDING ? "sliding" : "terraced";
}

lc_status lc_write_lolcats_config(const struct lc_trainer *tr, int stages_done,
                                  struct lc_error *err)
{
    const struct lc_train_opts *o = tr->o;
    const struct lc_model_config *c = &tr->m->cfg;
    const int softmax = o->stage == LC_STAGE_LORA_ONLY;
    json_t *root = json_object();
    json_t *base = json_object();
    json_t *attn = json_object();
    json_t *train = json_object();
    json_t *lora = json_object();
    json_t *targets = json_array();
    char *text = NULL;
    char *path = lc_path_join(o->out_dir, CONFIG_FILE);
    char *base_path = lc_path_absolute(lc_model_files_path(tr->m->files));
    lc_status rc;

    if (root == NULL || base == NULL || attn == NULL || train == NULL || lora == NULL ||
        targets == NULL || path == NULL || base_path == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    json_object_set_new(root, "format", json_string("lolcats"));
    json_object_set_new(root, "format_version", json_integer(1));
    json_object_set_new(base, "path", json_string(base_path));
    json_object_set_new(base, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(base, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(base, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(base, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(base, "head_dim", json_integer(c->head_dim));
    json_object_set_new(base, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(root, "base_model", base);
    base = NULL;
    if (softmax) {
        /* the lora-only stage: the original attention with the adapter */
        json_object_set_new(attn, "type", json_string("softmax"));
    } else {
        json_object_set_new(attn, "type", json_string("hedgehog_window"));
        json_object_set_new(attn, "feature_dim", json_integer(o->feature_dim));
        json_object_set_new(attn, "window", json_integer(o->window));
        json_object_set_new(attn, "window_mode", json_string(mode_name(o->window_mode)));
        json_object_set_new(attn, "feature_map_eps", json_real(LC_FMAP_EPS));
        json_object_set_new(attn, "feature_maps_file", json_string("feature_maps.safetensors"));
        if (tr->lin->n_softmax > 0) {
            json_t *list = json_array();
            for (int l = 0; l < c->n_layers; l++) {
                if (lc_linattn_is_softmax(tr->lin, l)) {
                    json_array_append_new(list, json_integer(l));
                }
            }
            json_object_set_new(attn, "softmax_layers", list);
        }
    }
    json_object_set_new(root, "attention", attn);
    attn = NULL;
    if (softmax || (o->stage & LC_STAGE_FINETUNE)) {
        static const char *const names[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
        for (int t = 0; t < 4; t++) {
            if (o->lora_targets & (1u << t)) {
                json_array_append_new(targets, json_string(names[t]));
            }
        }
        json_object_set_new(lora, "rank", json_integer(o->lora_rank));
        json_object_set_new(lora, "alpha", json_real(o->lora_alpha));
        json_object_set_new(lora, "dropout", json_real(o->lora_dropout));
        json_object_set_new(lora, "target_modules", targets);
        targets = NULL;
        json_object_set_new(lora, "lr", json_real(o->lora_lr));
        if (!softmax) {
            json_object_set_new(lora, "train_feature_maps",
                                json_boolean(o->train_feature_maps || o->skip_transfer));
            if (o->train_feature_maps || o->skip_transfer) {
                json_object_set_new(lora, "feature_map_lr",
                                    json_real(o->feature_map_lr > 0 ? o->feature_map_lr
                                                                    : o->lora_lr));
            }
            json_object_set_new(lora, "attention_transfer", json_boolean(!o->skip_transfer));
            if (o->train_feature_maps && !o->skip_transfer) {
                /* stage 1's feature maps, kept for comparison */
                json_object_set_new(lora, "transfer_feature_maps_file",
                                    json_string(LC_TRANSFER_MAPS_FILE));
            }
        }
        json_object_set_new(lora, "adapter_file", json_string("adapter_model.safetensors"));
        json_object_set_new(lora, "adapter_config_file", json_string("adapter_config.json"));
        json_object_set_new(root, "lora", lora);
        lora = NULL;
    }
    json_object_set_new(train, "stages_done", json_integer(stages_done));
    json_object_set_new(train, "seq_len", json_integer(tr->T));
    json_object_set_new(train, "batch_size", json_integer(tr->B));
    json_object_set_new(train, "grad_accum", json_integer(o->grad_accum));
    json_object_set_new(train, "seed", json_integer((json_int_t)o->seed));
    if (!softmax) {
        json_object_set_new(train, "transfer_lr", json_real(o->lr));
        json_object_set_new(train, "mse_weight", json_real(o->mse_weight));
        json_object_set_new(train, "xent_weight", json_real(o->xent_weight));
    }
    json_object_set_new(root, "training", train);
    train = NULL;
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (text == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        size_t len = strlen(text);
        char *with_nl = realloc(text, len + 2);
        if (with_nl == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            goto done;
        }
        text = with_nl;
        text[len] = '\n';
        text[len + 1] = '\0';
        /* a run killed here leaves the old file or the new one, whole */
        rc = lc_write_file_atomic(path, text, len + 1, err);
    }

done:
    json_decref(base);
    json_decref(attn);
    json_decref(train);
    json_decref(lora);
    json_decref(targets);
    json_decref(root);
    free(text);
    free(path);
    free(base_path);
    return rc;
}

/* ------------------------------------------------------------ entry */

/* Removes temporary files a killed run may have left behind
 * (NAME.tmp.XXXXXX of the files this program writes). */
static void remove_stale_temporaries(const char *dir)
{
    static const char *const ours[] = {"feature_maps.safetensors", LC_TRANSFER_MAPS_FILE,
                                       "adapter_model.safetensors", "adapter_config.json",
                                       CONFIG_FILE, LC_TRAIN_STATE_FILE};
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
            size_t n = strlen(ours[i]);
            if (strncmp(e->d_name, ours[i], n) == 0 && strncmp(e->d_name + n, ".tmp.", 5) == 0 &&
                strlen(e->d_name + n + 5) == 6) {
                char *p = lc_path_join(dir, e->d_name);
                if (p != NULL) {
                    unlink(p);
                    free(p);
                }
            }
        }
    }
    closedir(d);
}

static lc_status check_out_dir(const char *dir, struct lc_error *err)
{
    struct stat st;
    char *probe;
    struct lc_atomic_file *f = NULL;
    lc_status rc;

    if (dir == NULL || dir[0] == '\0') {
        return lc_err_set(err, LC_ERR_ARG, "no output folder given");
    }
    if (stat(dir, &st) != 0) {
        if (lc_mkdir_parents(dir) != 0) {
            return lc_err_set(err, LC_ERR_IO, "%s: cannot create the output folder: %s", dir,
                              strerror(errno));
        }
    } else if (!S_ISDIR(st.st_mode)) {
        return lc_err_set(err, LC_ERR_IO, "%s: exists and is not a folder", dir);
    }
    /* fail now, not after an hour of training */
    probe = lc_path_join(dir, ".lolcats-write-test");
    if (probe == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_atomic_open(&f, probe, err);
    if (rc == LC_OK) {
        lc_atomic_abort(f);
        remove_stale_temporaries(dir);
    } else if (rc != LC_ERR_NOMEM) {
        lc_err_set(err, LC_ERR_IO, "%s: the output folder is not writable", dir);
    }
    free(probe);
    return rc;
}

/* Whether any query of a chunk of T tokens attends to some key by linear
 * attention: terraced, from the third block on (position 2W); sliding,
 * from position W. */
static int linear_part_used(const struct lc_train_opts *o, int T)
{
    return T > (o->window_mode == LC_WINDOW_SLIDING ? o->window : 2 * o->window);
}

/* Whether the run exists to train the feature maps: stage 1, or the
 * baseline without it.  Stage 2's training them further (the default) is
 * not: without keys for the linear attention they get no gradient and stay
 * as they are, while the adapters still learn. */
static int trains_feature_maps(const struct lc_train_opts *o)
{
    return ((o->stage & LC_STAGE_TRANSFER) && !o->skip_transfer) ||
           ((o->stage & LC_STAGE_FINETUNE) && o->skip_transfer);
}

/* the method's 1024, unless the model was trained on less */
static int seq_len_of(const struct lc_llama *m, const struct lc_train_opts *o)
{
    if (o->seq_len > 0) {
        return o->seq_len;
    }
    return m->cfg.max_position_embeddings > 0 && m->cfg.max_position_embeddings < 1024
               ? m->cfg.max_position_embeddings
               : 1024;
}

static lc_status check_opts(const struct lc_llama *m, const struct lc_train_opts *o, int T,
                            struct lc_error *err)
{
    const int lora_stage = o->stage == LC_STAGE_LORA_ONLY || (o->stage & LC_STAGE_FINETUNE);

    if (o->stage < LC_STAGE_TRANSFER || o->stage > LC_STAGE_LORA_ONLY) {
        return lc_err_set(err, LC_ERR_ARG, "unknown stage %d", o->stage);
    }
    if (o->compare_lora && o->stage == LC_STAGE_LORA_ONLY) {
        return lc_err_set(err, LC_ERR_ARG, "the lora-only stage is the comparison itself");
    }
    if (o->lr_schedule < LC_LR_PLATEAU || o->lr_schedule > LC_LR_CONSTANT ||
        o->lora_lr_schedule < LC_LR_PLATEAU || o->lora_lr_schedule > LC_LR_CONSTANT ||
        o->warmup_steps < 0 || o->lora_warmup_steps < 0) {
        return lc_err_set(err, LC_ERR_ARG, "unknown learning-rate schedule, or a negative "
                                           "warm-up");
    }
    if (T < 2) {
        return lc_err_set(err, LC_ERR_ARG, "the sequence length must be at least 2 (got %d)", T);
    }
    if (o->window < 1 || o->window > T) {
        return lc_err_set(err, LC_ERR_ARG,
                          "the window (%d) must be between 1 and the sequence length (%d)",
                          o->window, T);
    }
    if (trains_feature_maps(o) && !linear_part_used(o, T)) {
        const int sliding = o->window_mode == LC_WINDOW_SLIDING;
        const int longest = sliding ? o->window : 2 * o->window;
        const int widest = sliding ? T - 1 : (T - 1) / 2;
        char other[64] = "";
        if (widest >= 1) {
            snprintf(other, sizeof(other), ", or a --window of at most %d", widest);
        }
        return lc_err_set(err, LC_ERR_ARG,
                          "%s would learn nothing: in chunks of %d tokens (--seq-len) with a %s "
                          "window of %d, every query attends to all its keys by softmax (%s), so "
                          "the linear attention gets no key to learn from; use a --seq-len above "
                          "%d%s",
                          o->stage & LC_STAGE_TRANSFER && !o->skip_transfer
                              ? "attention transfer (stage 1)"
                              : "training the feature maps",
                          T, sliding ? "sliding" : "terraced", o->window,
                          sliding ? "the window holds a query's last W keys"
                                  : "the window covers a query's own block and the one before",
                          longest, other);
    }
    if (o->feature_dim < 1 || o->batch_size < 1 || o->grad_accum < 1 || o->eval_every < 1 ||
        (o->max_steps < 0 && o->epochs < 1)) {
        return lc_err_set(err, LC_ERR_ARG, "feature dim, batch size, gradient accumulation, "
                                           "evaluation interval and epochs must be positive");
    }
    if (!(o->lr > 0) || !(o->lora_lr > 0) || !(o->feature_map_lr >= 0) || o->mse_weight < 0 ||
        o->xent_weight < 0 ||
        (o->mse_weight == 0 && o->xent_weight == 0)) {
        return lc_err_set(err, LC_ERR_ARG, "learning rates must be positive and the loss weights "
                                           "non-negative, not both zero");
    }
    if (m->cfg.n_layers < 1 || m->cfg.n_heads < 1) {
        return lc_err_set(err, LC_ERR_ARG, "the model has no attention layers to linearize");
    }
    if (o->lora_rank < 1 || o->lora_rank > 65536 || !(o->lora_alpha > 0) ||
        !(o->lora_dropout >= 0) || !(o->lora_dropout < 1) || o->lora_targets == 0 ||
        (o->lora_targets & ~(LC_LORA_Q | LC_LORA_K | LC_LORA_V | LC_LORA_O)) != 0) {
        return lc_err_set(err, LC_ERR_ARG, "LoRA needs a rank of at least 1, a positive alpha, a "
                                           "dropout in [0, 1) and at least one target");
    }
    if (o->skip_transfer && (o->stage == LC_STAGE_LORA_ONLY || !(o->stage & LC_STAGE_FINETUNE))) {
        return lc_err_set(err, LC_ERR_ARG, "skipping attention transfer leaves nothing to do in "
                                           "the transfer stage");
    }
    if (o->merge && !lora_stage) {
        return lc_err_set(err, LC_ERR_ARG, "merging needs the LoRA stage");
    }
    if (o->merge) {
        const char *path = lc_model_files_path(m->files);
        struct stat st;
        if (strcmp(lc_model_files_format(m->files), "safetensors") != 0 || stat(path, &st) != 0 ||
            !S_ISDIR(st.st_mode)) {
            return lc_err_set(err, LC_ERR_ARG, "%s: merging needs a Hugging Face model folder as "
                                               "the base model",
                              path);
        }
    }
    return LC_OK;
}

LC_API lc_status lc_train_check(const struct lc_model *model, const struct lc_train_opts *o,
                                struct lc_error *err)
{
    return check_opts(model->llama, o, seq_len_of(model->llama, o), err);
}

/* Whether the state in the output folder is that of stage 2 after stage 1
 * finished there: a run killed in stage 2 resumes there. */
static lc_status transfer_done_before(const struct lc_trainer *tr, int *done,
                                      struct lc_error *err)
{
    char *path = NULL;
    struct lc_st_file *f = NULL;
    const char *stage;
    int64_t stages = 0;
    lc_status rc;

    *done = 0;
    rc = lc_train_state_open(tr, &path, &f, err);
    if (rc == LC_OK && f != NULL) {
        stage = lc_st_metadata(f, "stage");
        *done = stage != NULL && strcmp(stage, lc_finetune_hooks.name) == 0 &&
                lc_train_state_int(f, "stages_done", &stages) &&
                (stages & LC_STAGE_TRANSFER) != 0;
        lc_st_close(f);
    }
    free(path);
    return rc;
}

/* Stage 2 without stage 1 in this run: the feature maps of an earlier
 * transfer run in the output folder (kept aside when a stage 2 trained them
 * further). */
static lc_status load_transfer_result(struct lc_trainer *tr, struct lc_error *err)
{
    char *path = lc_path_join(tr->o->out_dir, LC_TRANSFER_MAPS_FILE);
    lc_status rc;

    if (path != NULL && access(path, F_OK) != 0) {
        free(path);
        path = lc_path_join(tr->o->out_dir, "feature_maps.safetensors");
    }
    if (path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (access(path, F_OK) != 0) {
        rc = lc_err_set(err, LC_ERR_ARG,
                        "%s: missing; the LoRA stage alone starts from the feature maps of an "
                        "attention transfer in the same folder (run --stage transfer first), or "
                        "from untrained ones with --no-transfer",
                        path);
    } else {
        rc = lc_check_softmax_layers(tr->lin, tr->o->out_dir, err);
        if (rc == LC_OK) {
            rc = lc_linattn_load(tr->lin, path, err);
        }
    }
    free(path);
    return rc;
}

/* Before stage 2, whose maps go to feature_maps.safetensors: when it trains
 * them, stage 1's (in tr->lin now) are kept in LC_TRANSFER_MAPS_FILE, once
 * (a resumed stage 2 finds them there); when it does not, kept ones become
 * the model's maps again; after no transfer there are none to keep. */
static lc_status keep_transfer_result(struct lc_trainer *tr, struct lc_error *err)
{
    const struct lc_train_opts *o = tr->o;
    char *kept = lc_path_join(o->out_dir, LC_TRANSFER_MAPS_FILE);
    char *maps = lc_path_join(o->out_dir, "feature_maps.safetensors");
    float *host = NULL;
    lc_status rc = LC_OK;

    if (kept == NULL || maps == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    } else if (o->skip_transfer) {
        unlink(kept);
    } else if (o->train_feature_maps ? access(kept, F_OK) != 0 : access(kept, F_OK) == 0) {
        host = malloc(tr->lin->n_params * sizeof(float));
        if (host == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        } else {
            rc = lc_linattn_download(tr->lin, host);
        }
        if (rc == LC_OK) {
            rc = lc_linattn_save(tr->lin, host, o->train_feature_maps ? kept : maps, err);
        }
        if (rc == LC_OK && !o->train_feature_maps) {
            unlink(kept);
        }
    }
    free(host);
    free(kept);
    free(maps);
    return rc;
}

/* The lora-only stage with the options yo (its own output folder), after
 * the stages run before in this call. */
static lc_status run_lora_only(struct lc_trainer *tr, const struct lc_train_opts *yo,
                               struct lc_error *err)
{
    const struct lc_train_opts *main_opts = tr->o;
    const int stages_done = tr->stages_done;
    lc_status rc;

    tr->o = yo;
    tr->stages_done = 0; /* nothing else in its folder */
    tr->hooks = &lc_lora_only_hooks;
    rc = lc_finetune_setup(tr, err);
    if (rc == LC_OK) {
        rc = lc_train_run_stage(tr, err);
    }
    if (rc == LC_OK && yo->merge) {
        rc = lc_finetune_merge(tr, err);
    }
    if (rc == LC_OK) {
        rc = lc_write_lolcats_config(tr, LC_STAGE_LORA_ONLY, err);
    }
    lc_finetune_teardown(tr);
    tr->o = main_opts;
    tr->stages_done = stages_done;
    return rc;
}

/* Whether the lora-only stage with options yo saved a state in its folder:
 * with --compare-lora it runs last, so the stages before it are done. */
static lc_status lora_only_started(struct lc_trainer *tr, const struct lc_train_opts *yo,
                                   int *started, struct lc_error *err)
{
    const struct lc_train_opts *main_opts = tr->o;
    char *path = NULL;
    struct lc_st_file *f = NULL;
    const char *stage;
    lc_status rc;

    *started = 0;
    tr->o = yo;
    rc = lc_train_state_open(tr, &path, &f, err);
    tr->o = main_opts;
    if (rc == LC_OK && f != NULL) {
        stage = lc_st_metadata(f, "stage");
        *started = stage != NULL && strcmp(stage, lc_lora_only_hooks.name) == 0;
        lc_st_close(f);
    }
    free(path);
    return rc;
}

static lc_status load_chunks(struct lc_trainer *tr, const struct lc_dataset *ds,
                             struct lc_error *err)
{
    int64_t n_val_all = 0;
    struct lc_data_stats st;
    lc_status rc;

    lc_dataset_stats(ds, &st);
    rc = lc_dataset_pack(ds, LC_SPLIT_TRAIN, tr->T, &tr->train_ids, &tr->train_labels,
                         &tr->n_train, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (tr->n_train < tr->B) {
        return lc_err_set(err, LC_ERR_ARG,
                          "the training data holds %lld tokens: fewer than one batch of %d "
                          "chunks of %d tokens (use a smaller --seq-len or --batch-size, or more data)",
                          (long long)st.train_tokens, tr->B, tr->T);
    }
    rc = lc_dataset_pack(ds, LC_SPLIT_VAL, tr->T, &tr->val_ids, &tr->val_labels, &n_val_all, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (n_val_all < 1) {
        return lc_err_set(err, LC_ERR_ARG,
                          "the held-out data holds %lld tokens: less than one chunk of %d tokens "
                          "(use a smaller --seq-len or hold out more data)",
                          (long long)st.val_tokens, tr->T);
    }
    tr->n_val = tr->o->val_size > 0 && tr->o->val_size < n_val_all ? tr->o->val_size : n_val_all;
    tr->batch_ids = malloc((size_t)tr->B * (size_t)tr->T * sizeof(int32_t));
    tr->batch_labels = malloc((size_t)tr->B * (size_t)tr->T * sizeof(int32_t));
    tr->layer_loss = calloc((size_t)tr->m->cfg.n_layers, sizeof(double));
    if (tr->batch_ids == NULL || tr->batch_labels == NULL || tr->layer_loss == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    return LC_OK;
}

LC_API lc_status lc_train(struct lc_model *model, const struct lc_dataset *ds,
                          const struct lc_train_opts *o, lc_train_fn on_event, void *user,
                          struct lc_error *err)
{
    struct lc_trainer tr;
    struct lc_linattn_cfg lcfg;
    struct lc_train_opts yo; /* the lora-only stage's */
    char *yo_dir = NULL;
    int T = o->seq_len;
    int run_transfer = (o->stage & LC_STAGE_TRANSFER) && !o->skip_transfer;
    int run_finetune = (o->stage & LC_STAGE_FINETUNE) != 0;
    int run_yardstick = o->stage == LC_STAGE_LORA_ONLY || o->compare_lora;
    lc_status rc;

    memset(&tr, 0, sizeof(tr));
    tr.model = model;
    tr.m = model->llama;
    tr.be = tr.m->be;
    tr.o = o;
    tr.on_event = on_event;
    tr.user = user;
    tr.block = -1;
    T = seq_len_of(tr.m, o);
    tr.T = T;
    tr.B = o->batch_size;
    rc = check_opts(tr.m, o, T, err);
    if (rc == LC_OK && (o->stage & LC_STAGE_FINETUNE) && !linear_part_used(o, T)) {
        lc_log(LC_LOG_WARN, "in chunks of %d tokens with a %s window of %d every query attends "
                            "to all its keys by softmax: stage 2 never uses the linear attention",
               T, o->window_mode == LC_WINDOW_SLIDING ? "sliding" : "terraced", o->window);
    }
    if (rc == LC_OK) {
        rc = lc_dt_new(&tr.dt, &tr, err);
    }
    /* rank 0 writes every file; the others read what they need */
    tr.writer = tr.dt == NULL || tr.dt->dist->rank == 0;
    if (rc == LC_OK && tr.writer) {
        rc = check_out_dir(o->out_dir, err);
    }
    yo = *o;
    if (rc == LC_OK && o->compare_lora) {
        /* the same options and data, in a folder of its own */
        yo_dir = lc_path_join(o->out_dir, "lora-only");
        yo.out_dir = yo_dir;
        yo.stage = LC_STAGE_LORA_ONLY;
        yo.compare_lora = 0;
        yo.merge = 0;
        rc = yo_dir != NULL ? check_out_dir(yo_dir, err)
                            : lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (rc == LC_OK && o->stage == LC_STAGE_LORA_ONLY) {
        char *fm = lc_path_join(o->out_dir, "feature_maps.safetensors");
        if (fm == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        } else if (access(fm, F_OK) == 0) {
            rc = lc_err_set(err, LC_ERR_ARG,
                            "%s: the folder holds a linearized model, whose adapter the lora-only "
                            "stage would replace; give it a folder of its own (or train it beside "
                            "the linearized model with --compare-lora)",
                            o->out_dir);
        }
        free(fm);
    }
    if (rc == LC_OK) {
        rc = load_chunks(&tr, ds, err);
    }
    if (rc == LC_OK && o->metrics_path != NULL && tr.writer) {
        /* appended to on resume (rewound to the saved state), else fresh */
        tr.metrics = fopen(o->metrics_path, o->resume ? "a+" : "w");
        if (tr.metrics == NULL) {
            rc = lc_err_set(err, LC_ERR_IO, "%s: cannot open the metrics file: %s",
                            o->metrics_path, strerror(errno));
        }
    }
    if (rc == LC_OK) {
        lcfg.feature_dim = o->feature_dim;
        lcfg.window = o->window;
        lcfg.mode = o->window_mode;
        rc = lc_linattn_new(&tr.lin, tr.m, &lcfg, err);
    }
    if (rc == LC_OK) {
        rc = lc_linattn_set_softmax(tr.lin, o->softmax_layers, o->n_softmax_layers, err);
    }
    /* stage 1's forward scratch (training and evaluation), sized once for
     * a micro-batch and reused by every one */
    if (rc == LC_OK) {
        rc = lc_model_reserve_rows(model, tr.B * tr.T, err);
    }
    if (tr.dt != NULL) {
        /* every rank starts, or none; and only if it fits in memory */
        rc = lc_dt_agree_status(tr.dt, rc, err);
        if (rc == LC_OK) {
            rc = lc_plan_check(&tr, ds, err);
        }
        rc = lc_dt_agree_status(tr.dt, rc, err);
    }
    if (rc == LC_OK && o->compare_lora && o->resume) {
        int started = 0;
        rc = lora_only_started(&tr, &yo, &started, err);
        if (rc == LC_OK && started) {
            /* killed in the lora-only stage, which runs after the others */
            run_transfer = 0;
            run_finetune = 0;
        }
    }
    if (rc == LC_OK && run_transfer && run_finetune && o->resume) {
        int done = 0;
        rc = transfer_done_before(&tr, &done, err);
        if (rc == LC_OK && done) {
            /* killed in stage 2: stage 1's result is in the folder */
            run_transfer = 0;
            tr.stages_done = LC_STAGE_TRANSFER;
            rc = load_transfer_result(&tr, err);
        }
    }
    if (rc == LC_OK && run_transfer) {
        tr.hooks = &lc_transfer_hooks;
        rc = lc_transfer_setup(&tr, err);
        if (rc == LC_OK) {
            rc = o->block_layers > 0 ? lc_blockwise_transfer(&tr, err)
                                     : lc_train_run_stage(&tr, err);
        }
        if (rc == LC_OK) {
            tr.stages_done |= LC_STAGE_TRANSFER;
            if (tr.writer) {
                rc = lc_write_lolcats_config(&tr, tr.stages_done, err);
            }
        }
        lc_transfer_teardown(&tr);
    }
    if (rc == LC_OK && run_finetune) {
        if (!(tr.stages_done & LC_STAGE_TRANSFER) && !o->skip_transfer) {
            rc = load_transfer_result(&tr, err);
            tr.stages_done |= LC_STAGE_TRANSFER;
        }
        if (model->fwd.max_rows > 0) {
            /* stage 1's forward scratch: stage 2 has its own buffers */
            lc_llama_fwd_free(tr.m, &model->fwd);
        }
        tr.hooks = &lc_finetune_hooks;
        if (rc == LC_OK) {
            rc = keep_transfer_result(&tr, err);
        }
        if (rc == LC_OK) {
            rc = lc_finetune_setup(&tr, err);
        }
        if (rc == LC_OK) {
            rc = lc_train_run_stage(&tr, err);
        }
        if (rc == LC_OK && o->merge && tr.writer) {
            rc = lc_finetune_merge(&tr, err);
        }
        if (rc == LC_OK) {
            tr.stages_done |= LC_STAGE_FINETUNE;
            if (tr.writer) {
                rc = lc_write_lolcats_config(&tr, tr.stages_done, err);
            }
        }
        lc_finetune_teardown(&tr);
    }
    if (rc == LC_OK && run_yardstick) {
        if (model->fwd.max_rows > 0) {
            lc_llama_fwd_free(tr.m, &model->fwd);
        }
        rc = run_lora_only(&tr, &yo, err);
    }

    free(yo_dir);
    if (tr.metrics != NULL) {
        fclose(tr.metrics);
    }
    lc_dt_free(tr.dt);
    lc_linattn_free(tr.lin);
    free(tr.train_ids);
    free(tr.train_labels);
    free(tr.val_ids);
    free(tr.val_labels);
    free(tr.batch_ids);
    free(tr.batch_labels);
    free(tr.layer_loss);
    free(tr.perm);
    return rc;
}
