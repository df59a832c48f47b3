/*
 * safetensors files (safetensors.c): one file, a sharded set, and an
 * atomic writer.
 * Validation as every tensor-file reader does it (tensorfile.h).
 */
#ifndef LC_CORE_SAFETENSORS_H
#define LC_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensorfile.h"
#include "lolcats/lolcats.h"

struct lc_st_file;

/* Open one .safetensors file. */
lc_status lc_st_open(struct lc_st_file **out, const char *path, struct lc_error *err);
/* The same checks on len bytes in memory (name only names them in
 * messages); buf must outlive the file object, whose views point into it
 * (or into aligned copies when buf is misaligned). */
lc_status lc_st_open_mem(struct lc_st_file **out, const char *name, const void *buf, size_t len,
                         struct lc_error *err);
void lc_st_close(struct lc_st_file *f);
const char *lc_st_path(const struct lc_st_file *f);
/* bytes of tensor data in the file (the file size less the header) */
size_t lc_st_data_bytes(const struct lc_st_file *f);
size_t lc_st_count(const struct lc_st_file *f);
/* tensors in header order */
const struct lc_tensor_view *lc_st_at(const struct lc_st_file *f, size_t i);
const struct lc_tensor_view *lc_st_find(const struct lc_st_file *f, const char *name);
/* a string value of the "__metadata__" object, NULL when absent */
const char *lc_st_metadata(const struct lc_st_file *f, const char *key);

/* A whole checkpoint: a folder holding model.safetensors, or a sharded one
 * with model.safetensors.index.json, or a single .safetensors file. */
struct lc_st_set;

lc_status lc_st_set_open(struct lc_st_set **out, const char *path, struct lc_error *err);
void lc_st_set_close(struct lc_st_set *s);
size_t lc_st_set_count(const struct lc_st_set *s);
const struct lc_tensor_view *lc_st_set_at(const struct lc_st_set *s, size_t i);
const struct lc_tensor_view *lc_st_set_find(const struct lc_st_set *s, const char *name);

/* Writer.  Tensors are copied on add; write() goes to PATH.tmp.XXXXXX,
 * fsyncs, renames over PATH and fsyncs the folder, so a crash leaves
 * either the old file or the new one, never a broken one. */
struct lc_st_writer;

lc_status lc_st_writer_new(struct lc_st_writer **out, struct lc_error *err);
void lc_st_writer_free(struct lc_st_writer *w);
lc_status lc_st_writer_add(struct lc_st_writer *w, const char *name, enum lc_dtype dtype,
                           int ndim, const int64_t *shape, const void *data,
                           struct lc_error *err);
lc_status lc_st_writer_set_metadata(struct lc_st_writer *w, const char *key, const char *value,
                                    struct lc_error *err);
lc_status lc_st_writer_write(struct lc_st_writer *w, const char *path, struct lc_error *err);

#endif /* LC_CORE_SAFETENSORS_H */
