/*
 * What the tensor-file readers share (safetensors.h: safetensors, single
 * and sharded, and the atomic writer; gguf.h: GGUF), all read through
 * mmap: the view of one tensor, shape formatting, lookups by name and the
 * overlap check of tensor byte ranges.
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

#endif /* LC_CORE_TENSORFILE_H */
