/*
 * Tensor files: safetensors (single and sharded) and GGUF, read through
 * mmap, plus an atomic safetensors writer.
 *
 * Every reader validates before it hands out a pointer: header length and
 * tensor offsets inside the file, offsets not overlapping, shapes matching
 * the byte counts, known dtypes.  Bad input gets LC_ERR_FORMAT (or
 * LC_ERR_IO) and a message that starts with the file's path and says what
 * is wrong; never a crash or an out-of-bounds read.
 */
#ifndef LC_CORE_TENSORFILE_H
#define LC_CORE_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

#define LC_MAX_DIMS 8

/* One tensor inside a mapped file.  shape is row-major (slowest first, as
 * PyTorch writes it); for GGUF the file's ne[] order is reversed to match. */
struct lc_tensor_view {
    const char *name;
    enum lc_dtype dtype;
    int ndim;
    int64_t shape[LC_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapping; valid until the file is closed */
    size_t nbytes;
};

/* "[2, 3, 4]" into buf (cut short to fit cap), for messages. */
void lc_shape_format(char *buf, size_t cap, int ndim, const int64_t *shape);

/* The readers' name index: sorted by name, then found by binary search
 * (NULL when absent or name is NULL). */
void lc_views_sort(const struct lc_tensor_view **sorted, size_t n);
const struct lc_tensor_view *lc_views_find(const struct lc_tensor_view *const *sorted, size_t n,
                                           const char *name);

/* A tensor's bytes [begin, end) in a file, for the readers' overlap
 * checks; sorted by begin, then end, then idx. */
struct lc_span {
    size_t idx;
    uint64_t begin;
    uint64_t end;
};
void lc_spans_sort(struct lc_span *spans, size_t n);

/* ---------------------------------------------------------------- safetensors */

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

/* ----------------------------------------------------------------------- GGUF */

enum lc_gguf_type {
    LC_GGUF_UINT8 = 0,
    LC_GGUF_INT8 = 1,
    LC_GGUF_UINT16 = 2,
    LC_GGUF_INT16 = 3,
    LC_GGUF_UINT32 = 4,
    LC_GGUF_INT32 = 5,
    LC_GGUF_FLOAT32 = 6,
    LC_GGUF_BOOL = 7,
    LC_GGUF_STRING = 8,
    LC_GGUF_ARRAY = 9,
    LC_GGUF_UINT64 = 10,
    LC_GGUF_INT64 = 11,
    LC_GGUF_FLOAT64 = 12
};

struct lc_gguf;

/* GGUF v2 and v3; tensors of type F32, F16 and BF16 (others: the file
 * opens, but asking for such a tensor's data is LC_ERR_UNSUPPORTED). */
lc_status lc_gguf_open(struct lc_gguf **out, const char *path, struct lc_error *err);
/* The same on len bytes in memory, which must outlive the object. */
lc_status lc_gguf_open_mem(struct lc_gguf **out, const char *name, const void *buf, size_t len,
                           struct lc_error *err);
void lc_gguf_close(struct lc_gguf *g);
const char *lc_gguf_path(const struct lc_gguf *g);
uint32_t lc_gguf_version(const struct lc_gguf *g);

/* Scalar metadata.  Return 1 and set *out when the key exists with a
 * compatible type (any integer type whose value fits; FLOAT32/FLOAT64 for
 * floats), else 0. */
int lc_gguf_get_int(const struct lc_gguf *g, const char *key, int64_t *out);
int lc_gguf_get_float(const struct lc_gguf *g, const char *key, double *out);
int lc_gguf_get_bool(const struct lc_gguf *g, const char *key, int *out);
/* strings are not NUL-terminated in the file: use the length */
int lc_gguf_get_string(const struct lc_gguf *g, const char *key, const char **str, size_t *len);

/* Arrays: element type and count; then elements by index. */
int lc_gguf_get_array(const struct lc_gguf *g, const char *key, enum lc_gguf_type *elem_type,
                      uint64_t *count);
int lc_gguf_array_string(const struct lc_gguf *g, const char *key, uint64_t i, const char **str,
                         size_t *len);
int lc_gguf_array_float(const struct lc_gguf *g, const char *key, uint64_t i, double *out);
int lc_gguf_array_int(const struct lc_gguf *g, const char *key, uint64_t i, int64_t *out);

/* Every tensor of the file is listed; a tensor whose ggml type is not
 * F32, F16 or BF16 (Q4_K, Q8_0, ...) has data NULL and dtype
 * LC_DTYPE_COUNT in its view (shape, numel and nbytes are still set). */
size_t lc_gguf_tensor_count(const struct lc_gguf *g);
const struct lc_tensor_view *lc_gguf_tensor_at(const struct lc_gguf *g, size_t i);
const struct lc_tensor_view *lc_gguf_tensor_find(const struct lc_gguf *g, const char *name);
/* A tensor whose data the caller needs: LC_ERR_FORMAT when the file has no
 * such tensor, LC_ERR_UNSUPPORTED naming its ggml type ("Q4_K") when that
 * is not F32, F16 or BF16. */
lc_status lc_gguf_tensor_get(const struct lc_gguf *g, const char *name,
                             const struct lc_tensor_view **out, struct lc_error *err);

#endif /* LC_CORE_TENSORFILE_H */
