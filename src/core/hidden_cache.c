/*
 * The hidden-state cache of block-wise attention transfer (hidden_cache.h).
 *
 * Building: the first replica's pipeline stages run the teacher forward
 * over the chunks, micro-batch after micro-batch, each stage over its
 * layers up to its last block start (layers after the last block start of
 * the model are never needed).  At the first layer of every block the
 * stage owning it rounds the residual stream to bf16 and hands it to rank
 * 0, which writes each file as its rows arrive (in chunk order: one stage
 * sends a block's rows, in order) and puts the checksum into the header at
 * the end.  Shards whose files are all present and whole are skipped.
 *
 * Reading: pread of a chunk's rows (no mapping, so the cache stays out of
 * the process's resident memory), bf16 to fp32.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/atomicfile.h"
#include "core/dist_train.h"
#include "core/fileio.h"
#include "core/half.h"
#include "core/hidden_cache.h"
#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "core/util.h"

#define FORMAT "lolcats-hidden-states"
#define TENSOR "hidden_states"
#define TAG_CAPTURE 21
#define TARGET_FILE_BYTES ((int64_t)64 << 20)

static const char *const split_names[2] = {"train", "val"};

int64_t lc_hcache_shard_chunks(const struct lc_train_opts *o, int T, int C)
{
    int64_t per_chunk = (int64_t)T * C * 2;
    int64_t n;

    if (o->cache_shard_chunks > 0) {
        return o->cache_shard_chunks;
    }
    n = TARGET_FILE_BYTES / (per_chunk > 0 ? per_chunk : 1);
    return n > 0 ? n : 1;
}

char *lc_hcache_dir(const struct lc_train_opts *o)
{
    if (o->cache_dir != NULL && o->cache_dir[0] != '\0') {
        return strdup(o->cache_dir);
    }
    return lc_path_join(o->out_dir, "hidden_states");
}

/* ------------------------------------------------------------ names */

struct split_info {
    const int32_t *ids; /* [n, T] */
    int64_t n;          /* chunks */
    int64_t shards;
    char source[512];   /* what the files were made from */
};

static void split_info(const struct lc_trainer *tr, int split, int64_t shard_chunks,
                       struct split_info *si)
{
    const struct lc_model_config *c = &tr->m->cfg;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the chunks' tokens */

    si->ids = split == LC_HC_TRAIN ? tr->train_ids : tr->val_ids;
    si->n = split == LC_HC_TRAIN ? tr->n_train : tr->n_val;
    si->shards = (si->n + shard_chunks - 1) / shard_chunks;
    for (int64_t i = 0; i < si->n * (int64_t)tr->T; i++) {
        h = (h ^ (uint32_t)si->ids[i]) * 1099511628211ull;
    }
    snprintf(si->source, sizeof(si->source),
             "model=%.300s layers=%d hidden=%d heads=%d kv_heads=%d seq_len=%d "
             "block_layers=%d chunks=%lld shard_chunks=%lld data=%016llx",
             lc_model_files_path(tr->m->files), c->n_layers, c->hidden_size, c->n_heads,
             c->n_kv_heads, tr->T, tr->o->block_layers, (long long)si->n,
             (long long)shard_chunks, (unsigned long long)h);
}

static char *file_path(const char *dir, int split, int block, int64_t shard)
{
    char name[64];
    snprintf(name, sizeof(name), "%s-b%04d-s%05lld.safetensors", split_names[split], block,
             (long long)shard);
    return lc_path_join(dir, name);
}

/* The safetensors header (with its 8-byte length) of a file; crc 0 gives
 * the placeholder of the same length.  *len: its bytes (malloc'd). */
static char *make_header(int split, int block, int first_layer, int64_t shard,
                         int64_t first_chunk, int64_t rows, int T, int C, const char *source,
                         uint32_t crc, size_t *len)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    json_t *t = json_object();
    char buf[32];
    char *text = NULL;
    char *out = NULL;
    size_t n, pad;

    json_object_set_new(meta, "format", json_string(FORMAT));
    json_object_set_new(meta, "split", json_string(split_names[split]));
    snprintf(buf, sizeof(buf), "%d", block);
    json_object_set_new(meta, "block", json_string(buf));
    snprintf(buf, sizeof(buf), "%d", first_layer);
    json_object_set_new(meta, "first_layer", json_string(buf));
    snprintf(buf, sizeof(buf), "%lld", (long long)shard);
    json_object_set_new(meta, "shard", json_string(buf));
    snprintf(buf, sizeof(buf), "%lld", (long long)first_chunk);
    json_object_set_new(meta, "first_chunk", json_string(buf));
    json_object_set_new(meta, "source", json_string(source));
    snprintf(buf, sizeof(buf), "%08x", (unsigned)crc);
    json_object_set_new(meta, "crc32", json_string(buf));
    json_object_set_new(root, "__metadata__", meta);
    json_object_set_new(t, "dtype", json_string("BF16"));
    json_object_set_new(t, "shape", json_pack("[III]", (json_int_t)rows, (json_int_t)T,
                                              (json_int_t)C));
    json_object_set_new(t, "data_offsets",
                        json_pack("[II]", (json_int_t)0, (json_int_t)(rows * T * C * 2)));
    json_object_set_new(root, TENSOR, t);
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL) {
        return NULL;
    }
    n = strlen(text);
    pad = (8 - n % 8) % 8;
    out = malloc(8 + n + pad);
    if (out != NULL) {
        uint64_t hl = n + pad;
        for (int i = 0; i < 8; i++) {
            out[i] = (char)(hl >> (8 * i));
        }
        memcpy(out + 8, text, n);
        memset(out + 8 + n, ' ', pad);
        *len = 8 + n + pad;
    }
    free(text);
    return out;
}

/* ------------------------------------------------------------ checking */

static int meta_is(const struct lc_st_file *f, const char *key, const char *want)
{
    const char *v = lc_st_metadata(f, key);
    return v != NULL && strcmp(v, want) == 0;
}

static int meta_is_int(const struct lc_st_file *f, const char *key, int64_t want)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)want);
    return meta_is(f, key, buf);
}

/* crc32 of bytes [off, off + n) of fd */
static lc_status crc_of(int fd, uint64_t off, uint64_t n, uint32_t *crc, const char *path,
                        struct lc_error *err)
{
    const size_t piece = (size_t)4 << 20;
    unsigned char *buf = malloc(piece);
    uLong c = crc32(0L, Z_NULL, 0);

    if (buf == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    while (n > 0) {
        size_t want = n < piece ? (size_t)n : piece;
        ssize_t k = pread(fd, buf, want, (off_t)off);
        if (k <= 0) {
            free(buf);
            return lc_err_set(err, LC_ERR_IO, "%s: cannot read: %s", path,
                              k < 0 ? strerror(errno) : "unexpected end of file");
        }
        c = crc32(c, buf, (uInt)k);
        off += (uint64_t)k;
        n -= (uint64_t)k;
    }
    free(buf);
    *crc = (uint32_t)c;
    return LC_OK;
}

/* One checked file: its descriptor and where its rows start; *ok = 0 (and
 * LC_OK) when it is missing, damaged or made for something else, with the
 * reason in why. */
struct shard_file {
    int fd;
    uint64_t data_off;
    int64_t first_chunk;
    int64_t rows;
};

static lc_status check_file(const char *path, int split, int block, int first_layer,
                            int64_t shard, int64_t first_chunk, int64_t rows, int T, int C,
                            const char *source, int keep_open, struct shard_file *sf, int *ok,
                            char *why, size_t why_cap, struct lc_error *err)
{
    struct lc_st_file *st = NULL;
    struct lc_error e2 = {0};
    const struct lc_tensor_view *t;
    unsigned char lenbuf[8];
    uint64_t hl = 0;
    uint32_t crc = 0;
    char want_crc[16];
    int fd = -1;
    lc_status rc;

    *ok = 0;
    sf->fd = -1;
    if (access(path, F_OK) != 0) {
        snprintf(why, why_cap, "missing");
        return LC_OK;
    }
    if (lc_st_open(&st, path, &e2) != LC_OK) {
        snprintf(why, why_cap, "%s", e2.msg);
        return LC_OK;
    }
    t = lc_st_find(st, TENSOR);
    if (!meta_is(st, "format", FORMAT) || !meta_is(st, "split", split_names[split]) ||
        !meta_is_int(st, "block", block) || !meta_is_int(st, "first_layer", first_layer) ||
        !meta_is_int(st, "shard", shard) || !meta_is_int(st, "first_chunk", first_chunk) ||
        !meta_is(st, "source", source) || lc_st_metadata(st, "crc32") == NULL ||
        lc_st_count(st) != 1 || t == NULL || t->dtype != LC_DTYPE_BF16 || t->ndim != 3 ||
        t->shape[0] != rows || t->shape[1] != T || t->shape[2] != C) {
        snprintf(why, why_cap, "made for other data, options or model");
        lc_st_close(st);
        return LC_OK;
    }
    snprintf(want_crc, sizeof(want_crc), "%s", lc_st_metadata(st, "crc32"));
    lc_st_close(st);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, lenbuf, 8, 0) != 8) {
        if (fd >= 0) {
            close(fd);
        }
        return lc_err_set(err, LC_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    for (int i = 0; i < 8; i++) {
        hl |= (uint64_t)lenbuf[i] << (8 * i);
    }
    rc = crc_of(fd, 8 + hl, (uint64_t)rows * (uint64_t)T * (uint64_t)C * 2, &crc, path, err);
    if (rc != LC_OK) {
        close(fd);
        return rc;
    }
    {
        char got[16];
        snprintf(got, sizeof(got), "%08x", (unsigned)crc);
        if (strcmp(got, want_crc) != 0) {
            snprintf(why, why_cap, "checksum %s, the header says %s: damaged", got, want_crc);
            close(fd);
            return LC_OK;
        }
    }
    if (keep_open) {
        sf->fd = fd;
    } else {
        close(fd);
    }
    sf->data_off = 8 + hl;
    sf->first_chunk = first_chunk;
    sf->rows = rows;
    *ok = 1;
    return LC_OK;
}

/* ------------------------------------------------------------ building */

struct file_writer {
    struct lc_atomic_file *f;
    char *path;
    int split, block, first_layer;
    int64_t shard, first_chunk, rows, rows_done;
    uLong crc;
};

struct capture {
    struct lc_comm_req *req;
    void *buf;
};

struct builder {
    struct lc_trainer *tr;
    struct lc_dtrain *dt;
    char *dir;
    int64_t shard_chunks;
    int K;                   /* layers per block */
    int n_blocks;
    int u0, u1;              /* this stage's blocks */
    int l0, l1;              /* this stage's layers */
    int run_end;             /* layers [l0, run_end) are run */
    int computes;            /* this rank is a stage of the first replica */
    struct file_writer *w;   /* rank 0: [n_blocks] the files of the shard */
    uint16_t *rows16;        /* [B*T*C] */
    float *rows32;           /* [B*T*C] host */
    struct capture *caps;    /* sent and not yet received */
    int n_caps, cap_caps;
};

static lc_status writer_open(struct builder *b, int split, int block, int64_t shard,
                             int64_t first_chunk, int64_t rows, const char *source,
                             struct lc_error *err)
{
    struct file_writer *w = &b->w[block];
    char *hdr;
    size_t hlen = 0;
    lc_status rc;

    memset(w, 0, sizeof(*w));
    w->split = split;
    w->block = block;
    w->first_layer = block * b->K;
    w->shard = shard;
    w->first_chunk = first_chunk;
    w->rows = rows;
    w->crc = crc32(0L, Z_NULL, 0);
    w->path = file_path(b->dir, split, block, shard);
    hdr = make_header(split, block, w->first_layer, shard, first_chunk, rows, b->tr->T,
                      b->tr->m->cfg.hidden_size, source, 0, &hlen);
    if (w->path == NULL || hdr == NULL) {
        free(hdr);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_atomic_open(&w->f, w->path, err);
    if (rc == LC_OK) {
        rc = lc_atomic_write(w->f, hdr, hlen, err);
    }
    free(hdr);
    return rc;
}

static lc_status writer_rows(struct file_writer *w, int64_t first_row, int64_t rows,
                             const uint16_t *data, size_t row_bytes, struct lc_error *err)
{
    const size_t bytes = (size_t)rows * row_bytes;

    /* a block's rows come from one stage, in order */
    LC_ASSERT(first_row == w->rows_done && w->rows_done + rows <= w->rows);
    w->crc = crc32(w->crc, (const Bytef *)data, (uInt)bytes);
    w->rows_done += rows;
    return lc_atomic_write(w->f, data, bytes, err);
}

static lc_status writer_finish(struct builder *b, struct file_writer *w, const char *source,
                               struct lc_error *err)
{
    size_t hlen = 0;
    char *hdr = make_header(w->split, w->block, w->first_layer, w->shard, w->first_chunk,
                            w->rows, b->tr->T, b->tr->m->cfg.hidden_size, source,
                            (uint32_t)w->crc, &hlen);
    lc_status rc;

    LC_ASSERT(w->rows_done == w->rows);
    if (hdr == NULL) {
        lc_atomic_abort(w->f);
        w->f = NULL;
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_atomic_pwrite(w->f, hdr, hlen, 0, err);
    free(hdr);
    if (rc == LC_OK) {
        rc = lc_atomic_commit(w->f, err);
    } else {
        lc_atomic_abort(w->f);
    }
    w->f = NULL;
    return rc;
}

static void writers_drop(struct builder *b)
{
    for (int i = 0; b->w != NULL && i < b->n_blocks; i++) {
        lc_atomic_abort(b->w[i].f);
        b->w[i].f = NULL;
        free(b->w[i].path);
        b->w[i].path = NULL;
    }
}

/* Rank 0 takes one capture message from src: [block, first_row, rows] then
 * the bf16 rows. */
static lc_status take_capture(struct builder *b, int src, size_t bytes, struct lc_error *err)
{
    const size_t row_bytes = (size_t)b->tr->T * (size_t)b->tr->m->cfg.hidden_size * 2;
    char *msg = malloc(bytes > 0 ? bytes : 1);
    int64_t h[3];
    lc_status rc;

    if (msg == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_comm_recv(b->dt->dist->world, NULL, msg, bytes, src, TAG_CAPTURE, err);
    if (rc == LC_OK) {
        memcpy(h, msg, sizeof(h));
        LC_ASSERT(h[0] >= 0 && h[0] < b->n_blocks && b->w[h[0]].f != NULL &&
                  bytes == sizeof(h) + (size_t)h[2] * row_bytes);
        rc = writer_rows(&b->w[h[0]], h[1], h[2], (const uint16_t *)(msg + sizeof(h)),
                         row_bytes, err);
    }
    free(msg);
    return rc;
}

/* The residual stream of `rows` chunks before the first layer of block
 * bl, row first_row of its file: written by rank 0, sent to it by the
 * others. */
static lc_status capture(struct builder *b, int bl, int64_t first_row, int rows,
                         struct lc_error *err)
{
    struct lc_backend *be = b->tr->be;
    const size_t n = (size_t)rows * (size_t)b->tr->T * (size_t)b->tr->m->cfg.hidden_size;
    lc_status rc;

    be->ops->download(be, b->rows32, b->tr->model->fwd.x, n * sizeof(float));
    rc = be->ops->sync(be, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (b->dt->dist->rank == 0) {
        for (size_t i = 0; i < n; i++) {
            b->rows16[i] = lc_f32_to_bf16(b->rows32[i]);
        }
        return writer_rows(&b->w[bl], first_row, rows, b->rows16, n / (size_t)rows * 2, err);
    }
    {
        int64_t h[3] = {bl, first_row, rows};
        char *msg = malloc(sizeof(h) + n * 2);
        uint16_t *p;
        if (msg == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        memcpy(msg, h, sizeof(h));
        p = (uint16_t *)(msg + sizeof(h));
        for (size_t i = 0; i < n; i++) {
            p[i] = lc_f32_to_bf16(b->rows32[i]);
        }
        if (b->n_caps == b->cap_caps) {
            int cap = b->cap_caps > 0 ? 2 * b->cap_caps : 16;
            struct capture *c = realloc(b->caps, (size_t)cap * sizeof(*c));
            if (c == NULL) {
                free(msg);
                return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            }
            b->caps = c;
            b->cap_caps = cap;
        }
        b->caps[b->n_caps].buf = msg;
        rc = lc_comm_isend(b->dt->dist->world, msg, sizeof(h) + n * 2, 0, TAG_CAPTURE,
                           &b->caps[b->n_caps].req, err);
        b->n_caps++;
        return rc;
    }
}

static lc_status captures_wait(struct builder *b, struct lc_error *err)
{
    lc_status rc = LC_OK;
    for (int i = 0; i < b->n_caps; i++) {
        lc_status r = lc_comm_wait(b->caps[i].req, err);
        rc = rc != LC_OK ? rc : r;
        free(b->caps[i].buf);
    }
    b->n_caps = 0;
    return rc;
}

/* Rank 0: the captures that are waiting (block: until every file of the
 * shard is complete). */
static lc_status drain(struct builder *b, int block, struct lc_error *err)
{
    for (;;) {
        int src = -1;
        size_t bytes = 0;
        int complete = 1;
        for (int i = 0; i < b->n_blocks; i++) {
            complete &= b->w[i].f == NULL || b->w[i].rows_done == b->w[i].rows;
        }
        if (complete) {
            return LC_OK;
        }
        if (lc_comm_probe(b->dt->dist->world, -1, TAG_CAPTURE, &src, &bytes)) {
            lc_status rc = take_capture(b, src, bytes, err);
            if (rc != LC_OK) {
                return rc;
            }
        } else if (!block) {
            return LC_OK;
        } else {
            usleep(200);
        }
    }
}

/* One micro-batch of `rows` chunks (ids [rows, T]) at row first_row of the
 * shard, through this stage's layers. */
static lc_status stage_microbatch(struct builder *b, const int32_t *ids, int64_t first_row,
                                  int rows, struct lc_error *err)
{
    struct lc_trainer *tr = b->tr;
    struct lc_backend *be = tr->be;
    struct lc_llama_fwd *f = &tr->model->fwd;
    const int N = rows * tr->T;
    double unused = 0.0;
    lc_status rc = lc_transfer_positions(tr, rows, err);

    if (rc != LC_OK) {
        return rc;
    }
    if (b->l0 == 0) {
        be->ops->upload(be, f->ids, ids, (size_t)N * sizeof(int32_t));
        lc_llama_embed(tr->m, f->x, f->ids, N);
    } else {
        rc = lc_dt_pipe_recv(tr, f->x, N, &unused, err);
    }
    for (int l = b->l0; l < b->l1 && rc == LC_OK; l++) {
        if (l % b->K == 0) {
            rc = capture(b, l / b->K, first_row, rows, err);
        }
        if (rc == LC_OK && l < b->run_end) {
            lc_llama_layer(tr->m, f, l, rows, tr->T);
        }
    }
    if (rc == LC_OK && b->dt->stage + 1 < b->dt->layout.stages) {
        rc = lc_dt_pipe_send(tr, f->x, N, 0.0, err);
    }
    return rc;
}

/* Rank 0: whether every file of a shard is whole; prints why not. */
static lc_status shard_complete(struct builder *b, int split, int64_t shard,
                                const struct split_info *si, int *done, struct lc_error *err)
{
    const int64_t first = shard * b->shard_chunks;
    const int64_t rows = si->n - first < b->shard_chunks ? si->n - first : b->shard_chunks;
    *done = 1;
    for (int bl = 0; bl < b->n_blocks && *done; bl++) {
        char *path = file_path(b->dir, split, bl, shard);
        struct shard_file sf;
        char why[LC_ERROR_MSG_MAX];
        int ok = 0;
        lc_status rc;
        if (path == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        rc = check_file(path, split, bl, bl * b->K, shard, first, rows, b->tr->T,
                        b->tr->m->cfg.hidden_size, si->source, 0, &sf, &ok, why, sizeof(why),
                        err);
        if (rc == LC_OK && !ok && strcmp(why, "missing") != 0) {
            lc_log(LC_LOG_WARN, "%s: %s; computing it again", path, why);
        }
        free(path);
        if (rc != LC_OK) {
            return rc;
        }
        *done = ok;
    }
    return LC_OK;
}

static lc_status build_split(struct builder *b, int split, int64_t *done_chunks,
                             int64_t total_chunks, struct lc_error *err)
{
    struct lc_trainer *tr = b->tr;
    struct lc_dtrain *dt = b->dt;
    struct split_info si;
    int64_t *need = NULL;
    lc_status rc = LC_OK;

    split_info(tr, split, b->shard_chunks, &si);
    need = calloc((size_t)si.shards + 1, sizeof(int64_t));
    if (need == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    /* rank 0 looks at what is there */
    for (int64_t s = 0; s < si.shards && rc == LC_OK && dt->dist->rank == 0; s++) {
        int done = 0;
        rc = shard_complete(b, split, s, &si, &done, err);
        need[s] = !done;
    }
    rc = lc_dt_agree_status(dt, rc, err);
    if (rc == LC_OK) {
        rc = lc_comm_bcast(dt->dist->world, NULL, need, (size_t)si.shards * sizeof(int64_t), 0,
                           err);
    }
    for (int64_t s = 0; s < si.shards && rc == LC_OK; s++) {
        const int64_t first = s * b->shard_chunks;
        const int64_t rows = si.n - first < b->shard_chunks ? si.n - first : b->shard_chunks;
        struct lc_train_event ev = {0};
        int64_t stop = 0;
        if (!need[s]) {
            *done_chunks += rows;
            continue;
        }
        if (dt->dist->rank == 0) {
            for (int bl = 0; bl < b->n_blocks && rc == LC_OK; bl++) {
                rc = writer_open(b, split, bl, s, first, rows, si.source, err);
            }
        }
        for (int64_t r = 0; r < rows && rc == LC_OK && b->computes; r += tr->B) {
            const int n = rows - r < tr->B ? (int)(rows - r) : tr->B;
            rc = stage_microbatch(b, si.ids + (size_t)(first + r) * (size_t)tr->T, r, n, err);
            if (rc == LC_OK && dt->dist->rank == 0) {
                rc = drain(b, 0, err);
            }
            /* progress (rank 0 shows it); a stop waits for the shard's end */
            ev.kind = LC_EV_CACHE;
            ev.stage = LC_STAGE_TRANSFER;
            ev.block = -1;
            ev.step = *done_chunks + r + n;
            ev.total_steps = total_chunks;
            ev.n_layers = tr->m->cfg.n_layers;
            if (tr->on_event != NULL && tr->on_event(&ev, tr->user) != 0) {
                stop = 1;
            }
        }
        if (rc == LC_OK) {
            rc = lc_dt_pipe_flush(tr, err);
        }
        if (rc == LC_OK && dt->dist->rank == 0) {
            rc = drain(b, 1, err);
            for (int bl = 0; bl < b->n_blocks && rc == LC_OK; bl++) {
                rc = writer_finish(b, &b->w[bl], si.source, err);
            }
        }
        if (rc == LC_OK) {
            rc = captures_wait(b, err);
        }
        writers_drop(b);
        *done_chunks += rows;
        /* a stop asked for on any rank */
        if (rc == LC_OK) {
            rc = lc_comm_allreduce_max(dt->dist->world, &stop, 1, err);
        }
        if (rc == LC_OK && stop) {
            rc = lc_err_set(err, LC_ERR_INTERRUPTED,
                            "stopped while caching hidden states; the files made so far are "
                            "kept in %s (resume with --resume)",
                            b->dir);
        }
    }
    free(need);
    return rc;
}

lc_status lc_hcache_build(struct lc_trainer *tr, struct lc_error *err)
{
    struct builder b;
    struct lc_dtrain *dt = tr->dt;
    const int C = tr->m->cfg.hidden_size;
    const int L = tr->m->cfg.n_layers;
    const size_t n = (size_t)tr->B * (size_t)tr->T * (size_t)C;
    int64_t done = 0;
    lc_status rc = LC_OK;

    memset(&b, 0, sizeof(b));
    b.tr = tr;
    b.dt = dt;
    b.K = tr->o->block_layers;
    b.n_blocks = dt->layout.n_units;
    b.shard_chunks = lc_hcache_shard_chunks(tr->o, tr->T, C);
    b.dir = lc_hcache_dir(tr->o);
    lc_layout_units(&dt->layout, dt->stage, &b.u0, &b.u1);
    lc_layout_layers(&dt->layout, dt->stage, &b.l0, &b.l1);
    /* nothing after the model's last block start is needed */
    b.run_end = dt->stage + 1 < dt->layout.stages ? b.l1 : (b.u1 - 1) * b.K;
    b.computes = dt->replica == 0;
    b.rows16 = malloc(n * sizeof(uint16_t) + 1);
    b.rows32 = malloc(n * sizeof(float) + 1);
    b.w = calloc((size_t)b.n_blocks, sizeof(*b.w));
    if (b.dir == NULL || b.rows16 == NULL || b.rows32 == NULL || b.w == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (rc == LC_OK && dt->dist->rank == 0 && mkdir(b.dir, 0777) != 0 && errno != EEXIST) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot create the cache folder: %s", b.dir,
                        strerror(errno));
    }
    if (rc == LC_OK && dt->dist->rank == 0) {
        /* what a killed run was writing */
        lc_atomic_remove_temporaries(b.dir, ".safetensors");
    }
    if (rc == LC_OK) {
        rc = build_split(&b, LC_HC_TRAIN, &done, tr->n_train + tr->n_val, err);
    }
    if (rc == LC_OK) {
        rc = build_split(&b, LC_HC_VAL, &done, tr->n_train + tr->n_val, err);
    }
    if (rc == LC_OK && tr->on_event != NULL) {
        /* the end of the progress */
        struct lc_train_event ev = {0};
        ev.kind = LC_EV_CACHE;
        ev.stage = LC_STAGE_TRANSFER;
        ev.block = -1;
        ev.step = ev.total_steps = tr->n_train + tr->n_val;
        ev.n_layers = L;
        tr->on_event(&ev, tr->user);
    }
    captures_wait(&b, NULL);
    writers_drop(&b);
    lc_dt_pipe_free(tr);
    free(b.caps);
    free(b.w);
    free(b.rows16);
    free(b.rows32);
    free(b.dir);
    return rc;
}

/* ------------------------------------------------------------ reading */

struct lc_hcache {
    int T, C;
    int64_t shard_chunks;
    struct shard_file *files[2]; /* per split, [shards] */
    int64_t shards[2];
    int64_t n[2];
    uint16_t *buf;               /* [T*C] */
    char *dir;
};

lc_status lc_hcache_open(struct lc_hcache **out, struct lc_trainer *tr, int block,
                         struct lc_error *err)
{
    struct lc_hcache *h = calloc(1, sizeof(*h));
    lc_status rc = LC_OK;

    *out = NULL;
    if (h == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    h->T = tr->T;
    h->C = tr->m->cfg.hidden_size;
    h->shard_chunks = lc_hcache_shard_chunks(tr->o, h->T, h->C);
    h->dir = lc_hcache_dir(tr->o);
    h->buf = malloc((size_t)h->T * (size_t)h->C * sizeof(uint16_t));
    if (h->dir == NULL || h->buf == NULL) {
        lc_hcache_close(h);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int split = 0; split < 2 && rc == LC_OK; split++) {
        struct split_info si;
        split_info(tr, split, h->shard_chunks, &si);
        h->n[split] = si.n;
        h->shards[split] = si.shards;
        h->files[split] = calloc((size_t)si.shards + 1, sizeof(struct shard_file));
        if (h->files[split] == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            break;
        }
        for (int64_t s = 0; s < si.shards; s++) {
            h->files[split][s].fd = -1;
        }
        for (int64_t s = 0; s < si.shards && rc == LC_OK; s++) {
            const int64_t first = s * h->shard_chunks;
            const int64_t rows = si.n - first < h->shard_chunks ? si.n - first : h->shard_chunks;
            char *path = file_path(h->dir, split, block, s);
            char why[LC_ERROR_MSG_MAX];
            int ok = 0;
            if (path == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
                break;
            }
            rc = check_file(path, split, block, block * tr->o->block_layers, s, first, rows,
                            h->T, h->C, si.source, 1, &h->files[split][s], &ok, why,
                            sizeof(why), err);
            if (rc == LC_OK && !ok) {
                rc = lc_err_set(err, LC_ERR_FORMAT, "%s: %s", path, why);
            }
            free(path);
        }
    }
    if (rc != LC_OK) {
        lc_hcache_close(h);
        return rc;
    }
    *out = h;
    return LC_OK;
}

void lc_hcache_close(struct lc_hcache *h)
{
    if (h == NULL) {
        return;
    }
    for (int split = 0; split < 2; split++) {
        for (int64_t s = 0; h->files[split] != NULL && s < h->shards[split]; s++) {
            if (h->files[split][s].fd >= 0) {
                close(h->files[split][s].fd);
            }
        }
        free(h->files[split]);
    }
    free(h->buf);
    free(h->dir);
    free(h);
}

lc_status lc_hcache_read(struct lc_hcache *h, int split, int64_t c, float *dst,
                         struct lc_error *err)
{
    const size_t n = (size_t)h->T * (size_t)h->C;
    const struct shard_file *sf;
    uint64_t off;
    size_t got = 0;

    if (split < 0 || split > 1 || c < 0 || c >= h->n[split]) {
        return lc_err_set(err, LC_ERR_ARG, "chunk %lld of the %s split is not cached",
                          (long long)c, split_names[split & 1]);
    }
    sf = &h->files[split][c / h->shard_chunks];
    off = sf->data_off + (uint64_t)(c - sf->first_chunk) * n * 2;
    while (got < n * 2) {
        ssize_t k = pread(sf->fd, (char *)h->buf + got, n * 2 - got, (off_t)(off + got));
        if (k <= 0) {
            return lc_err_set(err, LC_ERR_IO, "%s: cannot read the cached rows of chunk %lld: %s",
                              h->dir, (long long)c, k < 0 ? strerror(errno) : "end of file");
        }
        got += (size_t)k;
    }
    for (size_t i = 0; i < n; i++) {
        dst[i] = lc_bf16_to_f32(h->buf[i]);
    }
    return LC_OK;
}
