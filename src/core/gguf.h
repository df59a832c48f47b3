/*
 * GGUF files (gguf.c): metadata and tensors.
 * Validation as every tensor-file reader does it (tensorfile.h).
 */
#ifndef LC_CORE_GGUF_H
#define LC_CORE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensorfile.h"
#include "lolcats/lolcats.h"

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

#endif /* LC_CORE_GGUF_H */
