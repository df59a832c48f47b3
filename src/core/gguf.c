/*
 * GGUF (llama.cpp) reader, versions 2 and 3.
 *
 * Layout, little-endian: "GGUF", u32 version, u64 tensor count, u64
 * metadata count; metadata (string key, u32 value type, value); tensor
 * infos (string name, u32 n_dims, u64 ne[n_dims] fastest first, u32 ggml
 * type, u64 offset into the data); zero padding to general.alignment
 * (default 32); the tensor data.  Strings are a u64 length and bytes,
 * without a NUL.  Version 1 had 32-bit counts and lengths.
 *
 * Every count and length is checked against the bytes left in the file
 * before anything is allocated or read, so a hostile file gets an error,
 * not a huge allocation or a read past the mapping.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/tensorfile.h"
#include "core/util.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8

struct kv {
    char *key;
    uint32_t type; /* enum lc_gguf_type */
    size_t pos;    /* the value's position in the file */
    /* arrays */
    uint32_t elem_type;
    uint64_t count;
    size_t elems;    /* position of the first element */
    size_t *str_pos; /* [count] string arrays: position of each length field */
};

struct lc_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    int mapped; /* map is ours to unmap (lc_gguf_open), not the caller's */
    uint32_t version;
    struct kv *kv; /* [n_kv], file order */
    size_t n_kv;
    const struct kv **kv_sorted; /* [n_kv], by key */
    struct lc_tensor_view *tensors; /* [n_tensors], file order */
    char **names;                   /* [n_tensors] */
    uint32_t *ggml_type;            /* [n_tensors] */
    uint64_t *offset;               /* [n_tensors], relative to data_start */
    void **owned;                   /* [n_tensors], aligned copies of misaligned data */
    const struct lc_tensor_view **sorted; /* [n_tensors], by name */
    size_t n_tensors;
    uint64_t alignment;
    uint64_t data_start;
};

/* ---------------------------------------------------------------- ggml types */

static const struct ggml_type_info {
    uint32_t id;
    const char *name;
    uint32_t block; /* elements per block */
    uint32_t size;  /* bytes per block */
} ggml_types[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},     {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 40},     {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},  {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},       {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},  {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},   {40, "NVFP4", 64, 36},
    {41, "Q1_0", 128, 18},
};

static const struct ggml_type_info *ggml_type_lookup(uint32_t id)
{
    for (size_t i = 0; i < sizeof(ggml_types) / sizeof(ggml_types[0]); i++) {
        if (ggml_types[i].id == id) {
            return &ggml_types[i];
        }
    }
    return NULL;
}

/* the ggml types we hand out data for */
static int ggml_to_dtype(uint32_t id, enum lc_dtype *out)
{
    switch (id) {
    case 0:
        *out = LC_DTYPE_F32;
        return 1;
    case 1:
        *out = LC_DTYPE_F16;
        return 1;
    case 30:
        *out = LC_DTYPE_BF16;
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ reading */

static uint64_t le_u(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

struct rd {
    const uint8_t *p;
    size_t size;
    size_t pos;
};

static size_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4) {
        return 0;
    }
    *v = (uint32_t)le_u(r->p + r->pos, 4);
    r->pos += 4;
    return 1;
}

static int rd_u64(struct rd *r, uint64_t *v)
{
    if (rd_left(r) < 8) {
        return 0;
    }
    *v = le_u(r->p + r->pos, 8);
    r->pos += 8;
    return 1;
}

/* A string: *pos is where its bytes start.  Returns 0 when the length
 * field is cut off, -1 when the bytes run past the end, 1 on success. */
static int rd_str(struct rd *r, size_t *pos, uint64_t *len)
{
    if (!rd_u64(r, len)) {
        return 0;
    }
    if (*len > rd_left(r)) {
        return -1;
    }
    *pos = r->pos;
    r->pos += (size_t)*len;
    return 1;
}

static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case LC_GGUF_UINT8:
    case LC_GGUF_INT8:
    case LC_GGUF_BOOL:
        return 1;
    case LC_GGUF_UINT16:
    case LC_GGUF_INT16:
        return 2;
    case LC_GGUF_UINT32:
    case LC_GGUF_INT32:
    case LC_GGUF_FLOAT32:
        return 4;
    case LC_GGUF_UINT64:
    case LC_GGUF_INT64:
    case LC_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static int type_is_int(uint32_t type)
{
    return type <= LC_GGUF_INT32 || type == LC_GGUF_UINT64 || type == LC_GGUF_INT64;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Reads one value (at r->pos) of the given type; kv, when not NULL, gets
 * what the accessors need (top level only). */
static lc_status read_value(const struct lc_gguf *g, struct rd *r, uint32_t type, int depth,
                            const char *key, struct kv *kv, struct lc_error *err)
{
    size_t sz = scalar_size(type);
    uint32_t et;
    uint64_t count;

    if (kv != NULL) {
        kv->pos = r->pos;
    }
    if (sz > 0) {
        if (rd_left(r) < sz) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: truncated in the value of metadata key %s", g->path, key);
        }
        r->pos += sz;
        return LC_OK;
    }
    if (type == LC_GGUF_STRING) {
        size_t pos;
        uint64_t len;
        int k = rd_str(r, &pos, &len);
        if (k == 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: truncated in the value of metadata key %s", g->path, key);
        }
        if (k < 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: metadata key %s: string length %llu runs past the end of the "
                              "file",
                              g->path, key, (unsigned long long)len);
        }
        return LC_OK;
    }
    if (type != LC_GGUF_ARRAY) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: metadata key %s has unknown value type %u",
                          g->path, key, (unsigned)type);
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: metadata key %s: arrays nested more than %d deep", g->path, key,
                          GGUF_MAX_ARRAY_DEPTH);
    }
    if (!rd_u32(r, &et) || !rd_u64(r, &count)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in the array of metadata key %s",
                          g->path, key);
    }
    if (kv != NULL) {
        kv->elem_type = et;
        kv->count = count;
        kv->elems = r->pos;
    }
    sz = scalar_size(et);
    if (sz == 0 && et != LC_GGUF_STRING && et != LC_GGUF_ARRAY) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: metadata key %s is an array of unknown value type %u", g->path,
                          key, (unsigned)et);
    }
    /* each element needs at least this many bytes: a count that cannot
     * fit in the rest of the file is refused before any allocation */
    if (sz == 0) {
        sz = et == LC_GGUF_STRING ? 8 : 12;
    }
    if (count > rd_left(r) / sz) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: metadata key %s: array of %llu elements runs past the end of the "
                          "file",
                          g->path, key, (unsigned long long)count);
    }
    if (et == LC_GGUF_STRING) {
        if (kv != NULL) {
            kv->str_pos = malloc((count ? count : 1) * sizeof(*kv->str_pos));
            if (kv->str_pos == NULL) {
                return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
            }
        }
        for (uint64_t i = 0; i < count; i++) {
            size_t pos;
            uint64_t len;
            size_t at = r->pos;
            int k = rd_str(r, &pos, &len);
            if (k <= 0) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: metadata key %s: string %llu of the array runs past the "
                                  "end of the file",
                                  g->path, key, (unsigned long long)i);
            }
            if (kv != NULL) {
                kv->str_pos[i] = at;
            }
        }
    } else if (et == LC_GGUF_ARRAY) {
        for (uint64_t i = 0; i < count; i++) {
            lc_status rc = read_value(g, r, LC_GGUF_ARRAY, depth + 1, key, NULL, err);
            if (rc != LC_OK) {
                return rc;
            }
        }
    } else {
        r->pos += (size_t)count * sz;
    }
    return LC_OK;
}

static int cmp_kv(const void *a, const void *b)
{
    const struct kv *const *x = a;
    const struct kv *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static const struct kv *kv_find(const struct lc_gguf *g, const char *key)
{
    size_t lo = 0;
    size_t hi = g->n_kv;
    if (key == NULL) {
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_sorted[mid]->key, key);
        if (c == 0) {
            return g->kv_sorted[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static lc_status parse_kvs(struct lc_gguf *g, struct rd *r, uint64_t n_kv, struct lc_error *err)
{
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*g->kv));
    g->kv_sorted = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*g->kv_sorted));
    if (g->kv == NULL || g->kv_sorted == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        struct kv *kv = &g->kv[i];
        size_t pos;
        uint64_t len;
        int k = rd_str(r, &pos, &len);
        lc_status rc;
        if (k == 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: truncated in metadata key %llu of %llu", g->path,
                              (unsigned long long)i, (unsigned long long)n_kv);
        }
        if (k < 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: metadata key %llu: string length %llu runs past the end of "
                              "the file",
                              g->path, (unsigned long long)i, (unsigned long long)len);
        }
        if (memchr(r->p + pos, '\0', (size_t)len) != NULL) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: metadata key %llu contains a NUL byte",
                              g->path, (unsigned long long)i);
        }
        kv->key = dup_bytes(r->p + pos, (size_t)len);
        if (kv->key == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
        }
        g->n_kv++;
        if (!rd_u32(r, &kv->type)) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: truncated in the type of metadata key %s", g->path, kv->key);
        }
        rc = read_value(g, r, kv->type, 0, kv->key, kv, err);
        if (rc != LC_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        g->kv_sorted[i] = &g->kv[i];
    }
    qsort(g->kv_sorted, g->n_kv, sizeof(*g->kv_sorted), cmp_kv);
    for (size_t i = 1; i < g->n_kv; i++) {
        if (strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key) == 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: metadata key %s appears twice", g->path,
                              g->kv_sorted[i]->key);
        }
    }
    return LC_OK;
}

static lc_status parse_tensor_infos(struct lc_gguf *g, struct rd *r, uint64_t n,
                                    struct lc_error *err)
{
    size_t cap = n ? (size_t)n : 1;
    g->tensors = calloc(cap, sizeof(*g->tensors));
    g->names = calloc(cap, sizeof(*g->names));
    g->ggml_type = calloc(cap, sizeof(*g->ggml_type));
    g->offset = calloc(cap, sizeof(*g->offset));
    g->owned = calloc(cap, sizeof(*g->owned));
    g->sorted = calloc(cap, sizeof(*g->sorted));
    if (g->tensors == NULL || g->names == NULL || g->ggml_type == NULL || g->offset == NULL ||
        g->owned == NULL || g->sorted == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
    }
    for (uint64_t i = 0; i < n; i++) {
        struct lc_tensor_view *t = &g->tensors[i];
        const struct ggml_type_info *ti = NULL;
        size_t pos;
        uint64_t len;
        uint32_t nd;
        uint32_t type;
        uint64_t ne[LC_MAX_DIMS];
        uint64_t numel = 1;
        int k = rd_str(r, &pos, &len);

        if (k == 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in tensor info %llu of %llu",
                              g->path, (unsigned long long)i, (unsigned long long)n);
        }
        if (k < 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: tensor info %llu: name length %llu runs past the end of the "
                              "file",
                              g->path, (unsigned long long)i, (unsigned long long)len);
        }
        if (len == 0 || memchr(r->p + pos, '\0', (size_t)len) != NULL) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: tensor info %llu: name is empty or contains a NUL byte",
                              g->path, (unsigned long long)i);
        }
        g->names[i] = dup_bytes(r->p + pos, (size_t)len);
        if (g->names[i] == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
        }
        t->name = g->names[i];
        g->n_tensors++;
        if (!rd_u32(r, &nd)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in tensor info %s", g->path,
                              t->name);
        }
        if (nd > LC_MAX_DIMS) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has %u dimensions (at most %d)",
                              g->path, t->name, (unsigned)nd, LC_MAX_DIMS);
        }
        for (uint32_t d = 0; d < nd; d++) {
            if (!rd_u64(r, &ne[d])) {
                return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in tensor info %s",
                                  g->path, t->name);
            }
            if (ne[d] > (uint64_t)INT64_MAX ||
                (ne[d] != 0 && numel > (uint64_t)INT64_MAX / ne[d])) {
                return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s: shape is too large",
                                  g->path, t->name);
            }
            numel *= ne[d];
        }
        if (!rd_u32(r, &type) || !rd_u64(r, &g->offset[i])) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in tensor info %s", g->path,
                              t->name);
        }
        ti = ggml_type_lookup(type);
        if (ti == NULL) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has unknown ggml type %u",
                              g->path, t->name, (unsigned)type);
        }
        if (nd > 0 && ne[0] % ti->block != 0) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: tensor %s: row length %llu is not a multiple of the %s block "
                              "size %u",
                              g->path, t->name, (unsigned long long)ne[0], ti->name,
                              (unsigned)ti->block);
        }
        if (nd == 0 && ti->block != 1) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s: a %s scalar", g->path,
                              t->name, ti->name);
        }
        if (numel / ti->block > (uint64_t)SIZE_MAX / ti->size) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s: shape is too large", g->path,
                              t->name);
        }
        g->ggml_type[i] = type;
        t->ndim = (int)nd;
        for (uint32_t d = 0; d < nd; d++) {
            t->shape[d] = (int64_t)ne[nd - 1 - d]; /* row-major: slowest first */
        }
        t->numel = (int64_t)numel;
        t->nbytes = (size_t)(numel / ti->block * ti->size);
        if (!ggml_to_dtype(type, &t->dtype)) {
            t->dtype = LC_DTYPE_COUNT;
        }
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        g->sorted[i] = &g->tensors[i];
    }
    lc_views_sort(g->sorted, g->n_tensors);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (strcmp(g->sorted[i - 1]->name, g->sorted[i]->name) == 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s appears twice", g->path,
                              g->sorted[i]->name);
        }
    }
    return LC_OK;
}

static lc_status read_alignment(struct lc_gguf *g, struct lc_error *err)
{
    const struct kv *kv = kv_find(g, "general.alignment");
    int64_t a;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (kv == NULL) {
        return LC_OK;
    }
    if (!lc_gguf_get_int(g, "general.alignment", &a)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: general.alignment is not an integer", g->path);
    }
    if (a <= 0 || (a & (a - 1)) != 0 || a > (1 << 30)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: general.alignment %lld is not a power of two (up to 2^30)",
                          g->path, (long long)a);
    }
    g->alignment = (uint64_t)a;
    return LC_OK;
}

/* Offsets aligned, data inside the file, no two tensors sharing bytes;
 * then the views' data pointers. */
static lc_status place_tensors(struct lc_gguf *g, struct lc_error *err)
{
    struct lc_span *sp = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*sp));
    size_t k = 0;
    lc_status rc = LC_OK;

    if (sp == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        const struct lc_tensor_view *t = &g->tensors[i];
        uint64_t off = g->offset[i];
        if (off % g->alignment != 0) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: tensor %s: offset %llu is not a multiple of the alignment %llu",
                            g->path, t->name, (unsigned long long)off,
                            (unsigned long long)g->alignment);
            goto done;
        }
        if (off > g->size || g->data_start > g->size - off ||
            t->nbytes > g->size - off - g->data_start) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: tensor %s: data (%zu bytes at offset %llu from %llu) runs past "
                            "the end of the file (%zu bytes)",
                            g->path, t->name, t->nbytes, (unsigned long long)off,
                            (unsigned long long)g->data_start, g->size);
            goto done;
        }
        if (t->nbytes > 0) {
            sp[k].idx = i;
            sp[k].begin = off;
            sp[k].end = off + t->nbytes;
            k++;
        }
    }
    lc_spans_sort(sp, k);
    for (size_t i = 1; i < k; i++) {
        if (sp[i].begin < sp[i - 1].end) {
            rc = lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s overlaps tensor %s", g->path,
                            g->tensors[sp[i].idx].name, g->tensors[sp[i - 1].idx].name);
            goto done;
        }
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct lc_tensor_view *t = &g->tensors[i];
        const uint8_t *p = g->map + g->data_start + g->offset[i];
        size_t es;
        if (t->dtype == LC_DTYPE_COUNT) {
            continue; /* listed, but no data for unsupported types */
        }
        es = lc_dtype_size(t->dtype);
        /* a small general.alignment can leave data misaligned */
        if (t->nbytes > 0 && (uintptr_t)p % es != 0) {
            g->owned[i] = malloc(t->nbytes);
            if (g->owned[i] == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", g->path);
                goto done;
            }
            memcpy(g->owned[i], p, t->nbytes);
            p = g->owned[i];
        }
        t->data = t->nbytes > 0 ? (const void *)p : (const void *)g->map;
    }

done:
    free(sp);
    return rc;
}

static lc_status parse(struct lc_gguf *g, struct lc_error *err)
{
    struct rd r = {g->map, g->size, 0};
    uint64_t n_tensors;
    uint64_t n_kv;
    uint64_t pad;
    lc_status rc;

    if (g->size < 4 || memcmp(g->map, "GGUF", 4) != 0) {
        unsigned char m[4] = {0, 0, 0, 0};
        memcpy(m, g->map, g->size < 4 ? g->size : 4);
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: not a GGUF file (starts with %02x %02x %02x %02x, not \"GGUF\")",
                          g->path, m[0], m[1], m[2], m[3]);
    }
    r.pos = 4;
    if (!rd_u32(&r, &g->version)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in the GGUF header", g->path);
    }
    if (g->version == 1) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: GGUF version 1 is not supported (versions 2 and 3 are); convert "
                          "the model again with a current llama.cpp",
                          g->path);
    }
    if ((g->version & 0xffffu) == 0 && (g->version >> 16) != 0) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: big-endian GGUF files are not supported", g->path);
    }
    if (g->version != 2 && g->version != 3) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: GGUF version %u is not supported (versions 2 and 3 are)", g->path,
                          (unsigned)g->version);
    }
    if (!rd_u64(&r, &n_tensors) || !rd_u64(&r, &n_kv)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated in the GGUF header", g->path);
    }
    /* a metadata pair takes at least 8 + 4 + 1 bytes, a tensor info 8 +
     * 1 + 4 + 4 + 8 */
    if (n_kv > rd_left(&r) / 13) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %llu metadata pairs cannot fit in a file of %zu bytes", g->path,
                          (unsigned long long)n_kv, g->size);
    }
    if (n_tensors > rd_left(&r) / 25) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %llu tensor infos cannot fit in a file of %zu bytes", g->path,
                          (unsigned long long)n_tensors, g->size);
    }
    rc = parse_kvs(g, &r, n_kv, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = read_alignment(g, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = parse_tensor_infos(g, &r, n_tensors, err);
    if (rc != LC_OK) {
        return rc;
    }
    pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    g->data_start = (uint64_t)r.pos + pad;
    return place_tensors(g, err);
}

static lc_status gguf_open(struct lc_gguf **out, const char *path, const void *buf, size_t len,
                           struct lc_error *err)
{
    struct lc_gguf *g = NULL;
    lc_status rc;

    *out = NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    g->path = strdup(path);
    if (g->path == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (buf == NULL) {
        void *map = NULL;
        rc = lc_map_file(path, &map, &g->size, err);
        if (rc != LC_OK) {
            goto fail;
        }
        g->map = map;
        g->mapped = 1;
    } else {
        g->map = buf;
        g->size = len;
    }
    if (g->size == 0) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: empty file, not a GGUF file", path);
        goto fail;
    }
    rc = parse(g, err);
    if (rc != LC_OK) {
        goto fail;
    }
    *out = g;
    return LC_OK;

fail:
    lc_gguf_close(g);
    return rc;
}

lc_status lc_gguf_open(struct lc_gguf **out, const char *path, struct lc_error *err)
{
    return gguf_open(out, path, NULL, 0, err);
}

lc_status lc_gguf_open_mem(struct lc_gguf **out, const char *name, const void *buf, size_t len,
                           struct lc_error *err)
{
    static const char empty[1] = {0};
    return gguf_open(out, name, buf != NULL ? buf : empty, buf != NULL ? len : 0, err);
}

void lc_gguf_close(struct lc_gguf *g)
{
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_pos);
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        free(g->names[i]);
        free(g->owned[i]);
    }
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->names);
    free(g->ggml_type);
    free(g->offset);
    free(g->owned);
    free(g->sorted);
    if (g->mapped) {
        lc_unmap_file((void *)g->map, g->size);
    }
    free(g->path);
    free(g);
}

const char *lc_gguf_path(const struct lc_gguf *g)
{
    return g->path;
}

uint32_t lc_gguf_version(const struct lc_gguf *g)
{
    return g->version;
}

/* ----------------------------------------------------------------- metadata */

/* An integer of any GGUF integer type at pos, as int64 (0 when a u64
 * does not fit). */
static int int_at(const struct lc_gguf *g, uint32_t type, size_t pos, int64_t *out)
{
    const uint8_t *p = g->map + pos;
    uint64_t u;
    switch (type) {
    case LC_GGUF_UINT8:
        *out = p[0];
        return 1;
    case LC_GGUF_INT8:
        *out = (int64_t)p[0] - (p[0] & 0x80u ? 0x100 : 0);
        return 1;
    case LC_GGUF_UINT16:
        *out = (int64_t)le_u(p, 2);
        return 1;
    case LC_GGUF_INT16:
        u = le_u(p, 2);
        *out = (int64_t)u - (u & 0x8000u ? 0x10000 : 0);
        return 1;
    case LC_GGUF_UINT32:
        *out = (int64_t)le_u(p, 4);
        return 1;
    case LC_GGUF_INT32:
        u = le_u(p, 4);
        *out = (int64_t)u - (u & 0x80000000u ? INT64_C(0x100000000) : 0);
        return 1;
    case LC_GGUF_UINT64:
        u = le_u(p, 8);
        if (u > (uint64_t)INT64_MAX) {
            return 0;
        }
        *out = (int64_t)u;
        return 1;
    case LC_GGUF_INT64:
        u = le_u(p, 8);
        if (u > (uint64_t)INT64_MAX) {
            /* two's complement without an implementation-defined cast */
            *out = -(int64_t)(~u) - 1;
        } else {
            *out = (int64_t)u;
        }
        return 1;
    default:
        return 0;
    }
}

static int float_at(const struct lc_gguf *g, uint32_t type, size_t pos, double *out)
{
    const uint8_t *p = g->map + pos;
    if (type == LC_GGUF_FLOAT32) {
        uint32_t u = (uint32_t)le_u(p, 4);
        float f;
        memcpy(&f, &u, sizeof(f));
        *out = f;
        return 1;
    }
    if (type == LC_GGUF_FLOAT64) {
        uint64_t u = le_u(p, 8);
        double d;
        memcpy(&d, &u, sizeof(d));
        *out = d;
        return 1;
    }
    return 0;
}

int lc_gguf_get_int(const struct lc_gguf *g, const char *key, int64_t *out)
{
    const struct kv *kv = kv_find(g, key);
    return kv != NULL && type_is_int(kv->type) && int_at(g, kv->type, kv->pos, out);
}

int lc_gguf_get_float(const struct lc_gguf *g, const char *key, double *out)
{
    const struct kv *kv = kv_find(g, key);
    return kv != NULL && float_at(g, kv->type, kv->pos, out);
}

int lc_gguf_get_bool(const struct lc_gguf *g, const char *key, int *out)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_BOOL) {
        return 0;
    }
    *out = g->map[kv->pos] != 0;
    return 1;
}

static void string_at(const struct lc_gguf *g, size_t pos, const char **str, size_t *len)
{
    *len = (size_t)le_u(g->map + pos, 8);
    *str = (const char *)g->map + pos + 8;
}

int lc_gguf_get_string(const struct lc_gguf *g, const char *key, const char **str, size_t *len)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_STRING) {
        return 0;
    }
    string_at(g, kv->pos, str, len);
    return 1;
}

int lc_gguf_get_array(const struct lc_gguf *g, const char *key, enum lc_gguf_type *elem_type,
                      uint64_t *count)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_ARRAY) {
        return 0;
    }
    *elem_type = (enum lc_gguf_type)kv->elem_type;
    *count = kv->count;
    return 1;
}

int lc_gguf_array_string(const struct lc_gguf *g, const char *key, uint64_t i, const char **str,
                         size_t *len)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_ARRAY || kv->elem_type != LC_GGUF_STRING ||
        i >= kv->count) {
        return 0;
    }
    string_at(g, kv->str_pos[i], str, len);
    return 1;
}

int lc_gguf_array_float(const struct lc_gguf *g, const char *key, uint64_t i, double *out)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_ARRAY || i >= kv->count) {
        return 0;
    }
    if (kv->elem_type != LC_GGUF_FLOAT32 && kv->elem_type != LC_GGUF_FLOAT64) {
        return 0;
    }
    return float_at(g, kv->elem_type, kv->elems + (size_t)i * scalar_size(kv->elem_type), out);
}

int lc_gguf_array_int(const struct lc_gguf *g, const char *key, uint64_t i, int64_t *out)
{
    const struct kv *kv = kv_find(g, key);
    if (kv == NULL || kv->type != LC_GGUF_ARRAY || i >= kv->count ||
        !type_is_int(kv->elem_type)) {
        return 0;
    }
    return int_at(g, kv->elem_type, kv->elems + (size_t)i * scalar_size(kv->elem_type), out);
}

/* ------------------------------------------------------------------ tensors */

size_t lc_gguf_tensor_count(const struct lc_gguf *g)
{
    return g->n_tensors;
}

const struct lc_tensor_view *lc_gguf_tensor_at(const struct lc_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct lc_tensor_view *lc_gguf_tensor_find(const struct lc_gguf *g, const char *name)
{
    return lc_views_find(g->sorted, g->n_tensors, name);
}

lc_status lc_gguf_tensor_get(const struct lc_gguf *g, const char *name,
                             const struct lc_tensor_view **out, struct lc_error *err)
{
    const struct lc_tensor_view *t = lc_gguf_tensor_find(g, name);
    *out = NULL;
    if (t == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: no tensor %s", g->path, name);
    }
    if (t->dtype == LC_DTYPE_COUNT) {
        const struct ggml_type_info *ti = ggml_type_lookup(g->ggml_type[t - g->tensors]);
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: tensor %s has ggml type %s, which is not supported (F32, F16 and "
                          "BF16 are; quantized models cannot be loaded)",
                          g->path, name, ti != NULL ? ti->name : "?");
    }
    *out = t;
    return LC_OK;
}
