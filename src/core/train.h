/*
 * The stages lc_train (train.c) runs through the training loop of
 * trainer.h: attention transfer (transfer.c, block-wise in blockwise.c),
 * low-rank linearizing and the lora-only stage (finetune.c).
 */
#ifndef LC_CORE_TRAIN_H
#define LC_CORE_TRAIN_H

#include "core/trainer.h"

/* stage 1 */
lc_status lc_transfer_setup(struct lc_trainer *tr, struct lc_error *err);
void lc_transfer_teardown(struct lc_trainer *tr);
extern const struct lc_stage_hooks lc_transfer_hooks;
/* Positions 0..T-1 of B chunks into the forward scratch. */
lc_status lc_transfer_positions(struct lc_trainer *tr, int B, struct lc_error *err);
/* Layers [l0, l1) of stage 1 on the residual stream in the forward
 * scratch (transfer.c): the loss is the mean over n_lin linearized
 * layers; *total accumulates each layer's term in layer order; mlp_after:
 * the stream goes on to layer l1. */
lc_status lc_transfer_layers(struct lc_trainer *tr, int l0, int l1, int B, int backward,
                             double grad_div, int n_lin, int mlp_after, double *total,
                             double *layer_loss, struct lc_error *err);

/* stage 2 (finetune.c); with tr->o->stage LC_STAGE_LORA_ONLY the setup is
 * that of the lora-only stage: the same LoRA on the original softmax
 * attention, run with lc_lora_only_hooks */
lc_status lc_finetune_setup(struct lc_trainer *tr, struct lc_error *err);
void lc_finetune_teardown(struct lc_trainer *tr);
extern const struct lc_stage_hooks lc_finetune_hooks;
extern const struct lc_stage_hooks lc_lora_only_hooks;
/* DIR/merged from the best adapters */
lc_status lc_finetune_merge(struct lc_trainer *tr, struct lc_error *err);

/* block-wise stage 1 (blockwise.c): cache the hidden states, train this
 * rank's blocks, and leave the best feature maps of every block in
 * tr->groups[0].best and the model's arena on every rank */
lc_status lc_blockwise_transfer(struct lc_trainer *tr, struct lc_error *err);

/* lolcats_config.json describing the conversion, written atomically. */
lc_status lc_write_lolcats_config(const struct lc_trainer *tr, int stages_done,
                                  struct lc_error *err);

/* Atomic small-file write (temporary file, fsync, rename, fsync folder). */
lc_status lc_write_file_atomic(const char *path, const void *data, size_t len,
                               struct lc_error *err);

#endif /* LC_CORE_TRAIN_H */
