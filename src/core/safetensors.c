/*
 * Safetensors: a reader that maps the file and validates every header
 * entry before handing out pointers, checkpoint sets (one file, or shards
 * listed by model.safetensors.index.json), and an atomic writer.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {string: string}}), then the data; offsets are relative to the data.
 * Like the Python library we require the tensors to tile the data exactly:
 * no overlap, no gap, nothing after the last tensor.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/atomicfile.h"
#include "core/fileio.h"
#include "core/tensorfile.h"
#include "core/util.h"

/* the Python library's limit: no real checkpoint has a larger header */
#define ST_HEADER_MAX 100000000u
/* index files of the largest public checkpoints are well under 1 MB */
#define ST_INDEX_MAX (64u << 20)

struct lc_st_file {
    char *path;
    void *map;
    size_t size;
    int mapped; /* map is ours to unmap (lc_st_open), not the caller's (lc_st_open_mem) */
    struct lc_tensor_view *tensors; /* [n], header order */
    char **names;                   /* [n], owned names of tensors[] */
    void **owned;                   /* [n], aligned copies of misaligned data (or NULL) */
    const struct lc_tensor_view **sorted; /* [n], by name */
    size_t n;
    char **meta_keys; /* [n_meta] */
    char **meta_vals; /* [n_meta] */
    size_t n_meta;
};

struct lc_st_set {
    struct lc_st_file **files; /* [n_files] */
    size_t n_files;
    const struct lc_tensor_view **views;  /* [n], in file (or weight_map) order */
    const struct lc_tensor_view **sorted; /* [n], by name */
    size_t n;
};

/* ------------------------------------------------------------------ helpers */

static const struct {
    const char *name;
    enum lc_dtype dtype;
} dtype_names[] = {
    {"F32", LC_DTYPE_F32}, {"F16", LC_DTYPE_F16}, {"BF16", LC_DTYPE_BF16},
    {"I32", LC_DTYPE_I32}, {"I64", LC_DTYPE_I64}, {"U8", LC_DTYPE_U8},
};

/* dtypes the format defines that we do not read: named as unsupported,
 * not as garbage */
static const char *const dtype_other[] = {
    "F64", "I8", "I16", "U16", "U32", "U64", "BOOL", "C64",
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
};

static int dtype_from_name(const char *s, enum lc_dtype *out)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++) {
        if (strcmp(s, dtype_names[i].name) == 0) {
            *out = dtype_names[i].dtype;
            return 1;
        }
    }
    return 0;
}

static int dtype_is_other(const char *s)
{
    for (size_t i = 0; i < sizeof(dtype_other) / sizeof(dtype_other[0]); i++) {
        if (strcmp(s, dtype_other[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* ------------------------------------------------------------------- reader */

static int json_uint(const json_t *v, uint64_t *out)
{
    json_int_t i;
    if (!json_is_integer(v)) {
        return 0;
    }
    i = json_integer_value(v);
    if (i < 0) {
        return 0;
    }
    *out = (uint64_t)i;
    return 1;
}

/* One header entry: dtype, shape, data_offsets; checked against the data
 * size.  t->data is set later, once the offsets are known to tile. */
static lc_status parse_entry(const char *path, const char *name, json_t *v, uint64_t data_size,
                             struct lc_tensor_view *t, struct lc_span *sp, struct lc_error *err)
{
    json_t *jd = NULL;
    json_t *js = NULL;
    json_t *jo = NULL;
    const char *ds = NULL;
    size_t ndim;
    uint64_t numel = 1;
    uint64_t nbytes;
    uint64_t begin;
    uint64_t end;
    char shape_s[256];

    if (!json_is_object(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: header entry %s is not an object", path, name);
    }
    jd = json_object_get(v, "dtype");
    js = json_object_get(v, "shape");
    jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has no dtype string", path, name);
    }
    ds = json_string_value(jd);
    if (!dtype_from_name(ds, &t->dtype)) {
        if (dtype_is_other(ds)) {
            return lc_err_set(err, LC_ERR_UNSUPPORTED,
                              "%s: tensor %s has dtype %s, which is not supported "
                              "(F32, F16, BF16, I32, I64 and U8 are)",
                              path, name, ds);
        }
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has unknown dtype \"%.40s\"", path,
                          name, ds);
    }
    if (!json_is_array(js)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has no shape array", path, name);
    }
    ndim = json_array_size(js);
    if (ndim > LC_MAX_DIMS) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s has %zu dimensions (at most %d)",
                          path, name, ndim, LC_MAX_DIMS);
    }
    t->ndim = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d;
        if (!json_uint(json_array_get(js, i), &d) || d > (uint64_t)INT64_MAX) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: tensor %s: shape entry %zu is not a non-negative integer",
                              path, name, i);
        }
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > (uint64_t)INT64_MAX / d) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s: shape is too large", path,
                              name);
        }
        numel *= d;
    }
    lc_shape_format(shape_s, sizeof(shape_s), t->ndim, t->shape);
    if (numel > (uint64_t)SIZE_MAX / lc_dtype_size(t->dtype)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s: shape %s is too large", path, name,
                          shape_s);
    }
    nbytes = numel * lc_dtype_size(t->dtype);
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_uint(json_array_get(jo, 0), &begin) || !json_uint(json_array_get(jo, 1), &end)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: tensor %s: data_offsets is not a pair of non-negative integers",
                          path, name);
    }
    if (begin > end || end > data_size) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: tensor %s: data_offsets [%llu, %llu] lie outside the %llu bytes "
                          "of data",
                          path, name, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_size);
    }
    if (end - begin != nbytes) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but %s %s "
                          "needs %llu",
                          path, name, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)(end - begin), ds, shape_s,
                          (unsigned long long)nbytes);
    }
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    sp->begin = begin;
    sp->end = end;
    return LC_OK;
}

static lc_status parse_metadata(struct lc_st_file *f, json_t *meta, struct lc_error *err)
{
    const char *key = NULL;
    json_t *v = NULL;
    size_t n;

    if (json_is_null(meta)) {
        return LC_OK;
    }
    if (!json_is_object(meta)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
    }
    n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof(char *));
    f->meta_vals = calloc(n ? n : 1, sizeof(char *));
    if (f->meta_keys == NULL || f->meta_vals == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
    }
    json_object_foreach(meta, key, v)
    {
        if (!json_is_string(v)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: __metadata__ value of %s is not a string",
                              f->path, key);
        }
        f->meta_keys[f->n_meta] = strdup(key);
        f->meta_vals[f->n_meta] = strdup(json_string_value(v));
        f->n_meta++;
        if (f->meta_keys[f->n_meta - 1] == NULL || f->meta_vals[f->n_meta - 1] == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
        }
    }
    return LC_OK;
}

static lc_status parse_header(struct lc_st_file *f, const char *hdr, size_t hlen,
                              const unsigned char *data, uint64_t data_size, struct lc_error *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    json_t *v = NULL;
    const char *key = NULL;
    struct lc_span *spans = NULL;
    size_t cap;
    uint64_t expect = 0;
    lc_status rc = LC_OK;

    root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: header is not valid JSON: %s (line %d, column %d)", f->path,
                          jerr.text, jerr.line, jerr.column);
    }
    if (!json_is_object(root)) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: header is not a JSON object", f->path);
        goto done;
    }
    cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof(*f->tensors));
    f->names = calloc(cap ? cap : 1, sizeof(*f->names));
    f->owned = calloc(cap ? cap : 1, sizeof(*f->owned));
    f->sorted = calloc(cap ? cap : 1, sizeof(*f->sorted));
    spans = calloc(cap ? cap : 1, sizeof(*spans));
    if (f->tensors == NULL || f->names == NULL || f->owned == NULL || f->sorted == NULL ||
        spans == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
        goto done;
    }
    json_object_foreach(root, key, v)
    {
        struct lc_tensor_view *t = &f->tensors[f->n];
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_metadata(f, v, err);
            if (rc != LC_OK) {
                goto done;
            }
            continue;
        }
        if (key[0] == '\0') {
            rc = lc_err_set(err, LC_ERR_FORMAT, "%s: a tensor has an empty name", f->path);
            goto done;
        }
        rc = parse_entry(f->path, key, v, data_size, t, &spans[f->n], err);
        if (rc != LC_OK) {
            goto done;
        }
        f->names[f->n] = strdup(key);
        if (f->names[f->n] == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
            goto done;
        }
        t->name = f->names[f->n];
        spans[f->n].idx = f->n;
        f->n++;
    }

    /* the tensors must tile the data: sorted by offset, each starts where
     * the previous one ended */
    lc_spans_sort(spans, f->n);
    for (size_t i = 0; i < f->n; i++) {
        if (spans[i].begin < expect) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: tensor %s (data_offsets [%llu, %llu]) overlaps tensor %s",
                            f->path, f->tensors[spans[i].idx].name,
                            (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                            f->tensors[spans[i - 1].idx].name);
            goto done;
        }
        if (spans[i].begin > expect) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: data bytes [%llu, %llu) belong to no tensor (before %s)",
                            f->path, (unsigned long long)expect,
                            (unsigned long long)spans[i].begin, f->tensors[spans[i].idx].name);
            goto done;
        }
        expect = spans[i].end;
    }
    if (expect != data_size) {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: data bytes [%llu, %llu) after the last tensor belong to no tensor",
                        f->path, (unsigned long long)expect, (unsigned long long)data_size);
        goto done;
    }

    for (size_t i = 0; i < f->n; i++) {
        struct lc_tensor_view *t = &f->tensors[spans[i].idx];
        const unsigned char *p = data + spans[i].begin;
        size_t es = lc_dtype_size(t->dtype);
        /* a header whose length is not a multiple of 8 leaves the data
         * misaligned: readers then get an aligned copy */
        if (t->nbytes > 0 && ((uintptr_t)p % es) != 0) {
            void *copy = malloc(t->nbytes);
            if (copy == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
                goto done;
            }
            memcpy(copy, p, t->nbytes);
            f->owned[spans[i].idx] = copy;
            p = copy;
        }
        t->data = p;
    }
    for (size_t i = 0; i < f->n; i++) {
        f->sorted[i] = &f->tensors[i];
    }
    lc_views_sort(f->sorted, f->n);

done:
    free(spans);
    json_decref(root);
    return rc;
}

/* The checks and the header of a file whose bytes are at f->map. */
static lc_status st_parse(struct lc_st_file *f, struct lc_error *err)
{
    const char *path = f->path;
    const unsigned char *base = f->map;
    uint64_t hlen;

    if (f->size < 8) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %zu bytes, too short for a safetensors file (8-byte header length "
                          "first)",
                          path, f->size);
    }
    hlen = get_le64(base);
    if (hlen > ST_HEADER_MAX) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: header length %llu is larger than the %u bytes allowed", path,
                          (unsigned long long)hlen, ST_HEADER_MAX);
    }
    if (hlen > f->size - 8) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: header length %llu runs past the end of the file (%zu bytes)",
                          path, (unsigned long long)hlen, f->size);
    }
    if (hlen < 2 || base[8] != '{') {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: header does not start with a JSON object",
                          path);
    }
    return parse_header(f, (const char *)base + 8, (size_t)hlen, base + 8 + hlen,
                        f->size - 8 - hlen, err);
}

static lc_status st_new(struct lc_st_file **out, const char *path, struct lc_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    (*out)->path = strdup(path);
    if ((*out)->path == NULL) {
        free(*out);
        *out = NULL;
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    return LC_OK;
}

lc_status lc_st_open(struct lc_st_file **out, const char *path, struct lc_error *err)
{
    struct lc_st_file *f = NULL;
    lc_status rc;

    *out = NULL;
    rc = st_new(&f, path, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = lc_map_file(path, &f->map, &f->size, err);
    if (rc == LC_OK) {
        f->mapped = 1;
        rc = st_parse(f, err);
    }
    if (rc != LC_OK) {
        lc_st_close(f);
        return rc;
    }
    *out = f;
    return LC_OK;
}

lc_status lc_st_open_mem(struct lc_st_file **out, const char *name, const void *buf, size_t len,
                         struct lc_error *err)
{
    struct lc_st_file *f = NULL;
    lc_status rc;

    *out = NULL;
    rc = st_new(&f, name, err);
    if (rc != LC_OK) {
        return rc;
    }
    f->map = (void *)buf; /* only read: the views point into it */
    f->size = len;
    rc = st_parse(f, err);
    if (rc != LC_OK) {
        lc_st_close(f);
        return rc;
    }
    *out = f;
    return LC_OK;
}

void lc_st_close(struct lc_st_file *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; f->names != NULL && i < f->n; i++) {
        free(f->names[i]);
        free(f->owned[i]);
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->tensors);
    free(f->names);
    free(f->owned);
    free(f->sorted);
    if (f->mapped) {
        lc_unmap_file(f->map, f->size);
    }
    free(f->path);
    free(f);
}

size_t lc_st_data_bytes(const struct lc_st_file *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        n += f->tensors[i].nbytes; /* they tile the data: no overflow */
    }
    return n;
}

const char *lc_st_path(const struct lc_st_file *f)
{
    return f->path;
}

size_t lc_st_count(const struct lc_st_file *f)
{
    return f->n;
}

const struct lc_tensor_view *lc_st_at(const struct lc_st_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const struct lc_tensor_view *lc_st_find(const struct lc_st_file *f, const char *name)
{
    return lc_views_find(f->sorted, f->n, name);
}

const char *lc_st_metadata(const struct lc_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta_keys[i], key) == 0) {
            return f->meta_vals[i];
        }
    }
    return NULL;
}

/* --------------------------------------------------------------------- sets */

static lc_status set_add_file(struct lc_st_set *s, const char *path, struct lc_st_file **out,
                              struct lc_error *err)
{
    struct lc_st_file **files = realloc(s->files, (s->n_files + 1) * sizeof(*files));
    lc_status rc;
    if (files == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    s->files = files;
    rc = lc_st_open(&s->files[s->n_files], path, err);
    if (rc != LC_OK) {
        return rc;
    }
    *out = s->files[s->n_files++];
    return LC_OK;
}

static lc_status set_finish(struct lc_st_set *s, const char *path, struct lc_error *err)
{
    s->sorted = calloc(s->n ? s->n : 1, sizeof(*s->sorted));
    if (s->sorted == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(s->sorted, s->views, s->n * sizeof(*s->sorted));
    lc_views_sort(s->sorted, s->n);
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->sorted[i - 1]->name, s->sorted[i]->name) == 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s appears twice", path,
                              s->sorted[i]->name);
        }
    }
    return LC_OK;
}

static lc_status open_single(struct lc_st_set *s, const char *file, struct lc_error *err)
{
    struct lc_st_file *f = NULL;
    lc_status rc = set_add_file(s, file, &f, err);
    if (rc != LC_OK) {
        return rc;
    }
    s->views = calloc(f->n ? f->n : 1, sizeof(*s->views));
    if (s->views == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", file);
    }
    for (size_t i = 0; i < f->n; i++) {
        s->views[i] = &f->tensors[i];
    }
    s->n = f->n;
    return set_finish(s, file, err);
}

/* A shard name from weight_map must be a plain file name in the index's
 * folder: a hostile index must not reach elsewhere. */
static int shard_name_ok(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

static lc_status open_sharded(struct lc_st_set *s, const char *index_path, struct lc_error *err)
{
    char *text = NULL;
    size_t len = 0;
    char *dir = NULL;
    char *slash = NULL;
    char *shard_path = NULL;
    char **shard_names = NULL; /* [s->n_files], names as in weight_map */
    json_error_t jerr;
    json_t *root = NULL;
    json_t *map = NULL;
    json_t *v = NULL;
    const char *key = NULL;
    size_t n;
    lc_status rc;

    rc = lc_read_small_file(index_path, ST_INDEX_MAX, &text, &len, err);
    if (rc != LC_OK) {
        return rc;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)",
                        index_path, jerr.text, jerr.line, jerr.column);
        goto done;
    }
    map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    n = json_object_size(map);
    if (n == 0) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    dir = strdup(index_path);
    s->views = calloc(n, sizeof(*s->views));
    shard_names = calloc(n, sizeof(*shard_names));
    if (dir == NULL || s->views == NULL || shard_names == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    json_object_foreach(map, key, v)
    {
        const char *shard = NULL;
        struct lc_st_file *f = NULL;
        const struct lc_tensor_view *t = NULL;

        if (!json_is_string(v) || !shard_name_ok(json_string_value(v))) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: weight_map entry %s is not a file name in the same folder",
                            index_path, key);
            goto done;
        }
        shard = json_string_value(v);
        for (size_t i = 0; i < s->n_files; i++) {
            if (strcmp(shard_names[i], shard) == 0) {
                f = s->files[i];
                break;
            }
        }
        if (f == NULL) {
            free(shard_path);
            shard_path = lc_path_join(dir, shard);
            shard_names[s->n_files] = strdup(shard);
            if (shard_path == NULL || shard_names[s->n_files] == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", index_path);
                goto done;
            }
            if (!lc_is_regular_file(shard_path)) {
                rc = lc_err_set(err, LC_ERR_IO, "%s: shard %s (of tensor %s) not found: %s",
                                index_path, shard, key, shard_path);
                goto done;
            }
            rc = set_add_file(s, shard_path, &f, err);
            if (rc != LC_OK) {
                goto done;
            }
        }
        t = lc_st_find(f, key);
        if (t == NULL) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: weight_map puts tensor %s in %s, but that file has no such "
                            "tensor",
                            index_path, key, shard);
            goto done;
        }
        s->views[s->n++] = t;
    }
    rc = set_finish(s, index_path, err);

done:
    for (size_t i = 0; shard_names != NULL && i < n; i++) {
        free(shard_names[i]);
    }
    free(shard_names);
    free(shard_path);
    free(dir);
    json_decref(root);
    free(text);
    return rc;
}

lc_status lc_st_set_open(struct lc_st_set **out, const char *path, struct lc_error *err)
{
    struct lc_st_set *s = NULL;
    struct stat st;
    char *p = NULL;
    lc_status rc;

    *out = NULL;
    if (stat(path, &st) != 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: %s", path, strerror(errno));
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (S_ISDIR(st.st_mode)) {
        p = lc_path_join(path, "model.safetensors.index.json");
        if (p == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        if (lc_is_regular_file(p)) {
            rc = open_sharded(s, p, err);
        } else {
            free(p);
            p = lc_path_join(path, "model.safetensors");
            if (p == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            if (!lc_is_regular_file(p)) {
                rc = lc_err_set(err, LC_ERR_IO,
                                "%s: neither model.safetensors nor "
                                "model.safetensors.index.json is in this folder",
                                path);
                goto fail;
            }
            rc = open_single(s, p, err);
        }
    } else if (lc_path_ends_with(path, ".json")) {
        rc = open_sharded(s, path, err);
    } else {
        rc = open_single(s, path, err);
    }
    if (rc != LC_OK) {
        goto fail;
    }
    free(p);
    *out = s;
    return LC_OK;

fail:
    free(p);
    lc_st_set_close(s);
    return rc;
}

void lc_st_set_close(struct lc_st_set *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_files; i++) {
        lc_st_close(s->files[i]);
    }
    free(s->files);
    free(s->views);
    free(s->sorted);
    free(s);
}

size_t lc_st_set_count(const struct lc_st_set *s)
{
    return s->n;
}

const struct lc_tensor_view *lc_st_set_at(const struct lc_st_set *s, size_t i)
{
    return i < s->n ? s->views[i] : NULL;
}

const struct lc_tensor_view *lc_st_set_find(const struct lc_st_set *s, const char *name)
{
    return lc_views_find(s->sorted, s->n, name);
}

/* ------------------------------------------------------------------- writer */

struct wentry {
    char *name;
    enum lc_dtype dtype;
    int ndim;
    int64_t shape[LC_MAX_DIMS];
    void *data;
    size_t nbytes;
};

struct lc_st_writer {
    struct wentry *e; /* [n] */
    size_t n;
    size_t cap;
    char **meta_keys; /* [n_meta] */
    char **meta_vals;
    size_t n_meta;
};

lc_status lc_st_writer_new(struct lc_st_writer **out, struct lc_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
    }
    return LC_OK;
}

void lc_st_writer_free(struct lc_st_writer *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->e);
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}

lc_status lc_st_writer_add(struct lc_st_writer *w, const char *name, enum lc_dtype dtype,
                           int ndim, const int64_t *shape, const void *data,
                           struct lc_error *err)
{
    struct wentry *e = NULL;
    size_t numel = 1;
    size_t nbytes;

    if (name == NULL || name[0] == '\0' || strcmp(name, "__metadata__") == 0) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: invalid tensor name \"%s\"",
                          name != NULL ? name : "(null)");
    }
    if ((unsigned)dtype >= LC_DTYPE_COUNT) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s: invalid dtype %d",
                          name, (int)dtype);
    }
    if (ndim < 0 || ndim > LC_MAX_DIMS || (ndim > 0 && shape == NULL)) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s: %d dimensions", name,
                          ndim);
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !lc_mul_size(numel, (size_t)shape[i], &numel)) {
            return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s: invalid shape",
                              name);
        }
    }
    if (!lc_mul_size(numel, lc_dtype_size(dtype), &nbytes) || numel > (size_t)INT64_MAX) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s: too large", name);
    }
    if (nbytes > 0 && data == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s: no data", name);
    }
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->e[i].name, name) == 0) {
            return lc_err_set(err, LC_ERR_ARG, "safetensors writer: tensor %s added twice", name);
        }
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct wentry *ne = realloc(w->e, cap * sizeof(*ne));
        if (ne == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->e = ne;
        w->cap = cap;
    }
    e = &w->e[w->n];
    memset(e, 0, sizeof(*e));
    e->name = strdup(name);
    e->data = malloc(nbytes ? nbytes : 1);
    if (e->name == NULL || e->data == NULL) {
        free(e->name);
        free(e->data);
        return lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
    }
    if (nbytes > 0) {
        memcpy(e->data, data, nbytes);
    }
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
    }
    e->nbytes = nbytes;
    w->n++;
    return LC_OK;
}

lc_status lc_st_writer_set_metadata(struct lc_st_writer *w, const char *key, const char *value,
                                    struct lc_error *err)
{
    char *k = NULL;
    char *v = NULL;
    char **nk = NULL;
    char **nv = NULL;

    if (key == NULL || value == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "safetensors writer: metadata key or value is NULL");
    }
    v = strdup(value);
    if (v == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = v;
            return LC_OK;
        }
    }
    k = strdup(key);
    nk = realloc(w->meta_keys, (w->n_meta + 1) * sizeof(*nk));
    if (nk != NULL) {
        w->meta_keys = nk;
    }
    nv = realloc(w->meta_vals, (w->n_meta + 1) * sizeof(*nv));
    if (nv != NULL) {
        w->meta_vals = nv;
    }
    if (k == NULL || nk == NULL || nv == NULL) {
        free(k);
        free(v);
        return lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_vals[w->n_meta] = v;
    w->n_meta++;
    return LC_OK;
}

/* Data order: larger elements first (stable otherwise), so that every
 * tensor is aligned to its element size once the header is padded to 8,
 * as the Python library lays files out. */
static size_t *data_order(const struct lc_st_writer *w)
{
    size_t *ord = malloc((w->n ? w->n : 1) * sizeof(*ord));
    size_t k = 0;
    if (ord == NULL) {
        return NULL;
    }
    for (size_t es = 8; es >= 1; es /= 2) {
        for (size_t i = 0; i < w->n; i++) {
            if (lc_dtype_size(w->e[i].dtype) == es) {
                ord[k++] = i;
            }
        }
    }
    LC_ASSERT(k == w->n);
    return ord;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes. */
static lc_status build_header(const struct lc_st_writer *w, const size_t *ord, char **out,
                              size_t *out_len, struct lc_error *err)
{
    json_t *root = json_object();
    json_t *meta = NULL;
    uint64_t *begin = NULL;
    uint64_t off = 0;
    char *s = NULL;
    size_t len;
    size_t pad;
    lc_status rc = LC_OK;

    begin = malloc((w->n ? w->n : 1) * sizeof(*begin));
    if (root == NULL || begin == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
        goto done;
    }
    for (size_t k = 0; k < w->n; k++) {
        begin[ord[k]] = off;
        off += w->e[ord[k]].nbytes;
    }
    if (w->n_meta > 0) {
        meta = json_object();
        if (meta == NULL || json_object_set_new(root, "__metadata__", meta) != 0) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
            goto done;
        }
        for (size_t i = 0; i < w->n_meta; i++) {
            json_t *v = json_string(w->meta_vals[i]);
            if (v == NULL || json_object_set_new(meta, w->meta_keys[i], v) != 0) {
                rc = lc_err_set(err, LC_ERR_ARG,
                                "safetensors writer: metadata %s is not valid UTF-8",
                                w->meta_keys[i]);
                goto done;
            }
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        const struct wentry *e = &w->e[i];
        json_t *t = json_object();
        json_t *shape = json_array();
        json_t *offs = json_array();
        int bad = t == NULL || shape == NULL || offs == NULL;
        for (int d = 0; !bad && d < e->ndim; d++) {
            bad = json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) != 0;
        }
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)begin[i])) != 0 ||
              json_array_append_new(offs, json_integer((json_int_t)(begin[i] + e->nbytes))) != 0;
        /* key order as the Python library writes it: dtype, shape, data_offsets */
        bad = bad || json_object_set_new(t, "dtype", json_string(lc_dtype_name(e->dtype))) != 0;
        bad = bad || json_object_set(t, "shape", shape) != 0;
        bad = bad || json_object_set(t, "data_offsets", offs) != 0;
        json_decref(shape);
        json_decref(offs);
        if (bad) {
            json_decref(t);
            rc = lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
            goto done;
        }
        if (json_object_set_new(root, e->name, t) != 0) {
            rc = lc_err_set(err, LC_ERR_ARG,
                            "safetensors writer: tensor name %s is not valid UTF-8", e->name);
            goto done;
        }
    }
    s = json_dumps(root, JSON_COMPACT);
    if (s == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
        goto done;
    }
    len = strlen(s);
    pad = (8 - len % 8) % 8;
    *out = realloc(s, len + pad + 1);
    if (*out == NULL) {
        free(s);
        rc = lc_err_set(err, LC_ERR_NOMEM, "safetensors writer: out of memory");
        goto done;
    }
    memset(*out + len, ' ', pad);
    (*out)[len + pad] = '\0';
    *out_len = len + pad;

done:
    free(begin);
    json_decref(root);
    return rc;
}

lc_status lc_st_writer_write(struct lc_st_writer *w, const char *path, struct lc_error *err)
{
    size_t *ord = NULL;
    char *hdr = NULL;
    size_t hlen = 0;
    unsigned char lenbuf[8];
    struct lc_atomic_file *f = NULL;
    lc_status rc;

    ord = data_order(w);
    if (ord == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    rc = build_header(w, ord, &hdr, &hlen, err);
    if (rc != LC_OK) {
        lc_err_prefix(err, "%s", path);
        goto done;
    }
    rc = lc_atomic_open(&f, path, err);
    if (rc != LC_OK) {
        goto done;
    }
    put_le64(lenbuf, hlen);
    rc = lc_atomic_write(f, lenbuf, 8, err);
    if (rc == LC_OK) {
        rc = lc_atomic_write(f, hdr, hlen, err);
    }
    for (size_t k = 0; k < w->n && rc == LC_OK; k++) {
        const struct wentry *e = &w->e[ord[k]];
        rc = lc_atomic_write(f, e->data, e->nbytes, err);
    }
    if (rc != LC_OK) {
        lc_atomic_abort(f);
        goto done;
    }
    rc = lc_atomic_commit(f, err);

done:
    free(hdr);
    free(ord);
    return rc;
}
