/*
 * Cached hidden states for block-wise attention transfer (method doc 6):
 * the residual stream of the original model at the first layer of every
 * block of block_layers layers, for the training and validation chunks,
 * computed once and then read by the block trainers.
 *
 * On disk, in the cache folder, one file per split, block and shard:
 *
 *   {train,val}-b{block:04}-s{shard:05}.safetensors
 *
 * a safetensors file with one tensor "hidden_states", BF16 [n, T, C], the
 * residual stream before layer first_layer of chunks first_chunk ..
 * first_chunk + n - 1 (the true residual stream, not normalized), and
 * metadata: format "lolcats-hidden-states", split, block, first_layer,
 * shard, first_chunk, source (the model, the chunks and the layout it
 * belongs to) and crc32 (of the tensor's bytes, 8 hex digits).  A shard
 * holds shard_chunks chunks (the last one fewer).  Every file is written
 * atomically; a file that is missing, damaged, or made for other data is
 * computed again; complete ones are kept, so an interrupted run continues
 * where it stopped.
 */
#ifndef LC_CORE_HIDDEN_CACHE_H
#define LC_CORE_HIDDEN_CACHE_H

#include <stdint.h>

#include "core/train.h"

enum lc_hc_split { LC_HC_TRAIN = 0, LC_HC_VAL = 1 };

/* Chunks per shard file: the option, else about 64 MiB of bf16 rows. */
int64_t lc_hcache_shard_chunks(const struct lc_train_opts *o, int T, int C);
/* The cache folder (malloc'd): the option, else OUT/hidden_states. */
char *lc_hcache_dir(const struct lc_train_opts *o);

/* Computes the missing files (collective over the ranks: the first
 * replica's pipeline stages run the teacher, rank 0 writes). */
lc_status lc_hcache_build(struct lc_trainer *tr, struct lc_error *err);

/* A reader of one block's files, checked (metadata, sizes, checksums). */
struct lc_hcache;
lc_status lc_hcache_open(struct lc_hcache **out, struct lc_trainer *tr, int block,
                         struct lc_error *err);
void lc_hcache_close(struct lc_hcache *h);
/* The rows of chunk c of a split as floats: dst [T, C] (host). */
lc_status lc_hcache_read(struct lc_hcache *h, int split, int64_t c, float *dst,
                         struct lc_error *err);

#endif /* LC_CORE_HIDDEN_CACHE_H */
