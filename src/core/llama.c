/* The Llama model on a backend: loading, RoPE, layer pieces, forward. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/half.h"
#include "core/llama.h"
#include "core/util.h"

/* RoPE tables a new model starts with; they grow on demand */
#define ROPE_FIRST_POSITIONS 256

/* ------------------------------------------------------------------ RoPE */

void lc_rope_inv_freq(const struct lc_model_config *cfg, float *inv_freq)
{
    const int D = cfg->head_dim;
    const float base = (float)cfg->rope_theta;

    /* fp32 as transformers computes it: 1 / base^(2i/D) */
    for (int i = 0; i < D / 2; i++) {
        float expo = (float)(2 * i) / (float)D;
        inv_freq[i] = 1.0f / powf(base, expo);
    }
    if (cfg->rope_type == LC_ROPE_LLAMA3) {
        /* Llama 3.1: long wavelengths are slowed down by `factor`, short
         * ones kept, and the band between interpolated smoothly. */
        const float factor = (float)cfg->rope_factor;
        const float low = (float)cfg->rope_low_freq_factor;
        const float high = (float)cfg->rope_high_freq_factor;
        const float old_len = (float)cfg->rope_original_max_pos;
        const float low_wavelen = old_len / low;
        const float high_wavelen = old_len / high;
        for (int i = 0; i < D / 2; i++) {
            float f = inv_freq[i];
            float wavelen = 2.0f * (float)M_PI / f;
            float scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                float smooth = (old_len / wavelen - low) / (high - low);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            inv_freq[i] = scaled;
        }
    }
}

void lc_llama_rope_rows(const struct lc_llama *m, int64_t p0, int n, float *cos_out,
                        float *sin_out)
{
    const int half = m->cfg.head_dim / 2;

    for (int r = 0; r < n; r++) {
        for (int i = 0; i < half; i++) {
            /* the angle is rounded to fp32 before cos/sin, as in transformers */
            float angle = (float)(p0 + r) * m->inv_freq_host[i];
            cos_out[(size_t)r * half + i] = cosf(angle);
            sin_out[(size_t)r * half + i] = sinf(angle);
        }
    }
}

lc_status lc_llama_rope_reserve(struct lc_llama *m, int n_pos, struct lc_error *err)
{
    struct lc_backend *be = m->be;
    const int half = m->cfg.head_dim / 2;
    int len;
    float *cos_host = NULL;
    float *sin_host = NULL;
    float *cos_dev = NULL;
    float *sin_dev = NULL;
    size_t bytes;

    if (n_pos <= m->rope_len) {
        return LC_OK;
    }
    /* grow geometrically so that decoding does not rebuild every step */
    len = m->rope_len > 0 ? m->rope_len : ROPE_FIRST_POSITIONS;
    while (len < n_pos) {
        len = len > (1 << 29) ? n_pos : 2 * len;
    }
    bytes = (size_t)len * (size_t)half * sizeof(float);
    cos_host = malloc(bytes);
    sin_host = malloc(bytes);
    if (cos_host == NULL || sin_host == NULL) {
        goto nomem;
    }
    lc_llama_rope_rows(m, 0, len, cos_host, sin_host);
    cos_dev = lc_be_upload_new(be, cos_host, bytes);
    sin_dev = lc_be_upload_new(be, sin_host, bytes);
    if (cos_dev == NULL || sin_dev == NULL) {
        be->ops->release(be, cos_dev);
        be->ops->release(be, sin_dev);
        goto nomem;
    }
    free(cos_host);
    free(sin_host);
    be->ops->release(be, m->rope_cos);
    be->ops->release(be, m->rope_sin);
    m->rope_cos = cos_dev;
    m->rope_sin = sin_dev;
    m->rope_len = len;
    return LC_OK;

nomem:
    free(cos_host);
    free(sin_host);
    return lc_err_set(err, LC_ERR_NOMEM, "out of memory for RoPE tables of %d positions", len);
}

/* --------------------------------------------------------------- loading */

static lc_status weight_from_view(struct lc_llama *m, struct lc_weight *w,
                                  const struct lc_tensor_view *t, struct lc_error *err)
{
    struct lc_backend *be = m->be;

    w->dtype = t->dtype;
    w->owned = NULL;
    w->nbytes = t->nbytes;
    if (be->ops->host_memory) {
        w->data = t->data; /* use the mapping in place */
        return LC_OK;
    }
    w->owned = lc_be_upload_new(be, t->data, t->nbytes);
    if (w->owned == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for %s (%zu bytes)", t->name,
                          t->nbytes);
    }
    w->data = w->owned;
    return LC_OK;
}

/* Element i of an F32, F16 or BF16 tensor (the model files check the dtype). */
static float view_f32_at(const struct lc_tensor_view *t, int64_t i)
{
    return lc_dtype_load_f32(t->data, t->dtype, (size_t)i);
}

/* Norm weights are small: always fp32 in backend memory. */
static lc_status vector_f32_from_view(struct lc_llama *m, float **out,
                                      const struct lc_tensor_view *t, struct lc_error *err)
{
    float *host;

    if (t->dtype != LC_DTYPE_F32 && t->dtype != LC_DTYPE_F16 && t->dtype != LC_DTYPE_BF16) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: unsupported dtype %s", t->name,
                          lc_dtype_name(t->dtype));
    }
    host = malloc((size_t)t->numel * sizeof(float) + 1);
    if (host == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory converting %s", t->name);
    }
    for (int64_t i = 0; i < t->numel; i++) {
        host[i] = view_f32_at(t, i);
    }
    *out = lc_be_upload_new(m->be, host, (size_t)t->numel * sizeof(float));
    free(host);
    if (*out == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for %s", t->name);
    }
    return LC_OK;
}

static const struct lc_tensor_view *need(struct lc_llama *m, const char *name,
                                         struct lc_error *err)
{
    const struct lc_tensor_view *t = lc_model_files_tensor(m->files, name);
    if (t == NULL) {
        lc_err_set(err, LC_ERR_FORMAT, "%s: tensor %s missing", lc_model_files_path(m->files),
                   name);
    }
    return t;
}

/* The (empty) layer table and the RoPE frequencies of m->cfg. */
static lc_status alloc_layers(struct lc_llama *m, struct lc_error *err)
{
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof(*m->layers));
    m->inv_freq_host = malloc((size_t)(m->cfg.head_dim / 2) * sizeof(float) + 1);
    if (m->layers == NULL || m->inv_freq_host == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    lc_rope_inv_freq(&m->cfg, m->inv_freq_host);
    if (m->cfg.rope_type == LC_ROPE_FACTORS) {
        const struct lc_tensor_view *t = NULL;
        if (m->files == NULL) {
            /* a model made in memory has no file to take the factors from */
            return lc_err_set(err, LC_ERR_ARG, "RoPE factors (rope_type %d) need a model file",
                              LC_ROPE_FACTORS);
        }
        t = need(m, LC_ROPE_FREQS_TENSOR, err);
        if (t == NULL) {
            return LC_ERR_FORMAT;
        }
        for (int i = 0; i < m->cfg.head_dim / 2; i++) {
            float f = view_f32_at(t, i);
            if (!(f > 0.0f) || !isfinite(f)) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: %s[%d] is %g; RoPE factors must be positive and finite",
                                  lc_model_files_path(m->files), LC_ROPE_FREQS_TENSOR, i,
                                  (double)f);
            }
            m->inv_freq_host[i] /= f;
        }
    }
    return LC_OK;
}

static lc_status load_layer(struct lc_llama *m, int l, struct lc_error *err)
{
    static const struct {
        const char *suffix;
        size_t offset;
        int is_norm;
    } parts[] = {
        {"input_layernorm.weight", offsetof(struct lc_llama_layer, attn_norm), 1},
        {"self_attn.q_proj.weight", offsetof(struct lc_llama_layer, wq), 0},
        {"self_attn.k_proj.weight", offsetof(struct lc_llama_layer, wk), 0},
        {"self_attn.v_proj.weight", offsetof(struct lc_llama_layer, wv), 0},
        {"self_attn.o_proj.weight", offsetof(struct lc_llama_layer, wo), 0},
        {"post_attention_layernorm.weight", offsetof(struct lc_llama_layer, ffn_norm), 1},
        {"mlp.gate_proj.weight", offsetof(struct lc_llama_layer, w_gate), 0},
        {"mlp.up_proj.weight", offsetof(struct lc_llama_layer, w_up), 0},
        {"mlp.down_proj.weight", offsetof(struct lc_llama_layer, w_down), 0},
    };
    struct lc_llama_layer *L = &m->layers[l];

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char name[128];
        const struct lc_tensor_view *t;
        lc_status rc;
        snprintf(name, sizeof(name), "model.layers.%d.%s", l, parts[i].suffix);
        t = need(m, name, err);
        if (t == NULL) {
            return LC_ERR_FORMAT;
        }
        if (parts[i].is_norm) {
            rc = vector_f32_from_view(m, (float **)((char *)L + parts[i].offset), t, err);
        } else {
            rc = weight_from_view(m, (struct lc_weight *)((char *)L + parts[i].offset), t, err);
        }
        if (rc != LC_OK) {
            return rc;
        }
    }
    return LC_OK;
}

lc_status lc_llama_load(struct lc_llama **out, const char *path, struct lc_backend *be,
                        struct lc_error *err)
{
    struct lc_llama *m = NULL;
    const struct lc_tensor_view *t;
    lc_status rc;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    m->be = be;
    rc = lc_model_files_open(&m->files, path, err);
    if (rc != LC_OK) {
        goto fail;
    }
    m->cfg = *lc_model_files_config(m->files);
    if (m->cfg.head_dim % 2 != 0) {
        rc = lc_err_set(err, LC_ERR_UNSUPPORTED, "%s: odd head_dim %d (RoPE needs pairs)", path,
                        m->cfg.head_dim);
        goto fail;
    }
    rc = alloc_layers(m, err);
    if (rc != LC_OK) {
        goto fail;
    }

    if ((t = need(m, "model.embed_tokens.weight", err)) == NULL) {
        rc = LC_ERR_FORMAT;
        goto fail;
    }
    rc = weight_from_view(m, &m->embed, t, err);
    if (rc != LC_OK) {
        goto fail;
    }
    t = lc_model_files_tensor(m->files, "lm_head.weight");
    if (t != NULL) {
        rc = weight_from_view(m, &m->lm_head, t, err);
        if (rc != LC_OK) {
            goto fail;
        }
    } else {
        m->lm_head = m->embed;
        m->lm_head.owned = NULL; /* owned by embed */
    }
    if ((t = need(m, "model.norm.weight", err)) == NULL) {
        rc = LC_ERR_FORMAT;
        goto fail;
    }
    rc = vector_f32_from_view(m, &m->final_norm, t, err);
    if (rc != LC_OK) {
        goto fail;
    }
    for (int l = 0; l < m->cfg.n_layers; l++) {
        rc = load_layer(m, l, err);
        if (rc != LC_OK) {
            goto fail;
        }
    }
    rc = lc_llama_rope_reserve(m, ROPE_FIRST_POSITIONS, err);
    if (rc != LC_OK) {
        goto fail;
    }
    *out = m;
    return LC_OK;

fail:
    lc_llama_free(m);
    return rc;
}

/* ------------------------------------------------------------- page-in */

/* The matrices read in place from the mapped files, into list (room for
 * 2 + 7 L); returns how many. */
static size_t mapped_weights(const struct lc_llama *m, const struct lc_weight **list)
{
    size_t n = 0;

    if (m->files == NULL || !m->be->ops->host_memory) {
        return 0;
    }
    list[n++] = &m->embed;
    if (m->lm_head.data != m->embed.data) {
        list[n++] = &m->lm_head;
    }
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct lc_llama_layer *L = &m->layers[l];
        const struct lc_weight *w[] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                       &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
            list[n++] = w[i];
        }
    }
    return n;
}

static const struct lc_weight **mapped_list(const struct lc_llama *m, size_t *n)
{
    const struct lc_weight **list = malloc((2 + 7 * (size_t)m->cfg.n_layers) * sizeof(*list));
    *n = list != NULL ? mapped_weights(m, list) : 0;
    return list;
}

int64_t lc_llama_mapped_bytes(const struct lc_llama *m)
{
    size_t n;
    const struct lc_weight **list = mapped_list(m, &n);
    int64_t bytes = 0;

    for (size_t i = 0; i < n; i++) {
        bytes += (int64_t)list[i]->nbytes;
    }
    free(list);
    return bytes;
}

int64_t lc_llama_stage_bytes(const struct lc_llama *m, int l0, int l1)
{
    size_t n;
    const struct lc_weight **list = mapped_list(m, &n);
    int64_t bytes = 0;
    const size_t head = m->lm_head.data != m->embed.data ? 2 : 1;

    for (size_t i = 0; i < n; i++) {
        /* the list: embedding, lm_head (when not the embedding), then 7 a layer */
        int layer = i < head ? -1 : (int)((i - head) / 7);
        int use = layer >= 0 ? layer >= l0 && layer < l1
                             : (i == 0 && (l0 == 0 || (head == 1 && l1 == m->cfg.n_layers))) ||
                                   (i == 1 && l1 == m->cfg.n_layers);
        if (use) {
            bytes += (int64_t)list[i]->nbytes;
        }
    }
    free(list);
    return bytes;
}

int64_t lc_llama_resident_bytes(const struct lc_llama *m)
{
    size_t n;
    const struct lc_weight **list = mapped_list(m, &n);
    FILE *f;
    char line[512];
    int in_model = 0;
    double kib = 0.0;

    if (list == NULL || n == 0) {
        free(list);
        return 0;
    }
    f = fopen("/proc/self/smaps", "r");
    if (f == NULL) {
        free(list);
        return 0;
    }
    /* a mapping's header "start-end perms ...", then its "Rss: N kB"; the
     * mappings that hold a weight are the model's files */
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long a, b;
        double v;
        if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in_model = 0;
            for (size_t i = 0; i < n && !in_model; i++) {
                const uintptr_t p = (uintptr_t)list[i]->data;
                in_model = p >= (uintptr_t)a && p < (uintptr_t)b;
            }
        } else if (in_model && sscanf(line, "Rss: %lf", &v) == 1) {
            kib += v;
        }
    }
    fclose(f);
    free(list);
    return (int64_t)(kib * 1024.0);
}

/* asks the kernel to start reading [p, p + len) from the file */
static void read_ahead(const unsigned char *p, size_t len, size_t page)
{
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    posix_madvise((void *)start, len + ((uintptr_t)p - start), POSIX_MADV_WILLNEED);
}

lc_status lc_llama_page_in(const struct lc_llama *m,
                           int (*progress)(int64_t done, int64_t total, void *user), void *user,
                           struct lc_error *err)
{
    const size_t piece = (size_t)16 << 20;
    const long sys_page = sysconf(_SC_PAGESIZE);
    const size_t page = sys_page > 0 ? (size_t)sys_page : 4096;
    const int64_t total = lc_llama_mapped_bytes(m);
    size_t n;
    const struct lc_weight **list = mapped_list(m, &n);
    volatile unsigned char sink = 0;
    int64_t done = 0;

    if (list == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = list[i]->data;
        const size_t size = list[i]->nbytes;
        for (size_t off = 0; off < size; off += piece) {
            const size_t len = size - off < piece ? size - off : piece;
            const size_t ahead = size - off < 2 * piece ? size - off : 2 * piece;
            /* this piece and the next: the disk works while pages are read */
            read_ahead(p + off, ahead, page);
            sink ^= p[off];
            for (uintptr_t a = ((uintptr_t)(p + off) / page + 1) * page;
                 a < (uintptr_t)(p + off + len); a += page) {
                sink ^= *(const unsigned char *)a;
            }
            done += (int64_t)len;
            if (progress != NULL && progress(done, total, user) != 0) {
                free(list);
                return lc_err_set(err, LC_ERR_INTERRUPTED, "paging in stopped after %lld of %lld "
                                                           "bytes",
                                  (long long)done, (long long)total);
            }
        }
    }
    (void)sink;
    free(list);
    return LC_OK;
}

/* ---------------------------------------------------------- random model */

/* a seeded stream of uniform numbers in [-a, a) */
static float random_uniform(uint64_t *state, float a)
{
    uint64_t z = lc_splitmix64(state);

    return a * (2.0f * ((float)(z >> 40) * 0x1p-24f) - 1.0f);
}

/* n values of type dt (fp32 or bf16, rounded from fp32) uniform in +-a
 * (or all 1 when a = 0), in backend memory; NULL when out of memory */
static void *random_buffer(struct lc_backend *be, size_t n, enum lc_dtype dt, float a,
                           uint64_t *state)
{
    const size_t esz = lc_dtype_size(dt);
    char *host = malloc(n * esz + 1);
    void *dev = NULL;

    if (host != NULL) {
        for (size_t i = 0; i < n; i++) {
            float v = a > 0.0f ? random_uniform(state, a) : 1.0f;
            if (dt == LC_DTYPE_BF16) {
                ((uint16_t *)(void *)host)[i] = lc_f32_to_bf16(v);
            } else {
                ((float *)(void *)host)[i] = v;
            }
        }
        dev = lc_be_upload_new(be, host, n * esz);
    }
    free(host);
    return dev;
}

/* a [rows, cols] matrix of type dt uniform in +-a, owned by w */
static lc_status random_matrix(struct lc_llama *m, struct lc_weight *w, size_t rows, size_t cols,
                               enum lc_dtype dt, float a, uint64_t *state, struct lc_error *err)
{
    w->owned = random_buffer(m->be, rows * cols, dt, a, state);
    w->data = w->owned;
    w->dtype = dt;
    w->nbytes = rows * cols * lc_dtype_size(dt);
    if (w->owned == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for a %zu x %zu random matrix", rows,
                          cols);
    }
    return LC_OK;
}

/* a norm weight of ones */
static lc_status ones_vector(struct lc_llama *m, float **out, size_t n, struct lc_error *err)
{
    *out = random_buffer(m->be, n, LC_DTYPE_F32, 0.0f, NULL);
    if (*out == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for a norm weight of %zu", n);
    }
    return LC_OK;
}

lc_status lc_llama_random(struct lc_llama **out, const struct lc_model_config *cfg,
                          enum lc_dtype wtype, uint64_t seed, struct lc_backend *be,
                          struct lc_error *err)
{
    struct lc_llama *m = NULL;
    const size_t V = (size_t)cfg->vocab_size;
    const size_t C = (size_t)cfg->hidden_size;
    const size_t FF = (size_t)cfg->intermediate_size;
    const size_t HD = (size_t)cfg->n_heads * (size_t)cfg->head_dim;
    const size_t KD = (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim;
    const float ac = 1.0f / sqrtf((float)C);
    uint64_t state = seed;
    lc_status rc;

    *out = NULL;
    if (cfg->vocab_size < 1 || cfg->hidden_size < 1 || cfg->intermediate_size < 1 ||
        cfg->n_layers < 1 || cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->head_dim < 2 ||
        cfg->head_dim % 2 != 0 || cfg->n_heads % cfg->n_kv_heads != 0) {
        return lc_err_set(err, LC_ERR_ARG,
                          "random model: invalid shape (%d layers, %d heads, %d KV heads of %d)",
                          cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
    }
    if (wtype != LC_DTYPE_F32 && wtype != LC_DTYPE_BF16) {
        return lc_err_set(err, LC_ERR_ARG, "random model: weights of type %s (F32 or BF16 only)",
                          lc_dtype_name(wtype));
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    m->be = be;
    m->cfg = *cfg;
    rc = alloc_layers(m, err);
    if (rc == LC_OK) {
        rc = random_matrix(m, &m->embed, V, C, wtype, 1.0f, &state, err);
    }
    if (rc == LC_OK && cfg->tie_word_embeddings) {
        m->lm_head = m->embed;
        m->lm_head.owned = NULL; /* owned by embed */
    } else if (rc == LC_OK) {
        rc = random_matrix(m, &m->lm_head, V, C, wtype, ac, &state, err);
    }
    if (rc == LC_OK) {
        rc = ones_vector(m, &m->final_norm, C, err);
    }
    for (int l = 0; l < cfg->n_layers && rc == LC_OK; l++) {
        struct lc_llama_layer *L = &m->layers[l];
        if ((rc = ones_vector(m, &L->attn_norm, C, err)) != LC_OK ||
            (rc = random_matrix(m, &L->wq, HD, C, wtype, ac, &state, err)) != LC_OK ||
            (rc = random_matrix(m, &L->wk, KD, C, wtype, ac, &state, err)) != LC_OK ||
            (rc = random_matrix(m, &L->wv, KD, C, wtype, ac, &state, err)) != LC_OK ||
            (rc = random_matrix(m, &L->wo, C, HD, wtype, 1.0f / sqrtf((float)HD), &state,
                                err)) != LC_OK ||
            (rc = ones_vector(m, &L->ffn_norm, C, err)) != LC_OK ||
            (rc = random_matrix(m, &L->w_gate, FF, C, wtype, ac, &state, err)) != LC_OK ||
            (rc = random_matrix(m, &L->w_up, FF, C, wtype, ac, &state, err)) != LC_OK) {
            break;
        }
        rc = random_matrix(m, &L->w_down, C, FF, wtype, 1.0f / sqrtf((float)FF), &state, err);
    }
    if (rc == LC_OK) {
        rc = lc_llama_rope_reserve(m, ROPE_FIRST_POSITIONS, err);
    }
    if (rc != LC_OK) {
        goto fail;
    }
    *out = m;
    return LC_OK;

fail:
    lc_llama_free(m);
    return rc;
}

static void weight_release(struct lc_backend *be, struct lc_weight *w)
{
    be->ops->release(be, w->owned);
    w->owned = NULL;
}

void lc_llama_free(struct lc_llama *m)
{
    struct lc_backend *be;

    if (m == NULL) {
        return;
    }
    be = m->be;
    if (m->layers != NULL) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            struct lc_llama_layer *L = &m->layers[l];
            be->ops->release(be, L->attn_norm);
            be->ops->release(be, L->ffn_norm);
            weight_release(be, &L->wq);
            weight_release(be, &L->wk);
            weight_release(be, &L->wv);
            weight_release(be, &L->wo);
            weight_release(be, &L->w_gate);
            weight_release(be, &L->w_up);
            weight_release(be, &L->w_down);
        }
        free(m->layers);
    }
    weight_release(be, &m->embed);
    weight_release(be, &m->lm_head);
    be->ops->release(be, m->final_norm);
    be->ops->release(be, m->rope_cos);
    be->ops->release(be, m->rope_sin);
    free(m->inv_freq_host);
    lc_model_files_close(m->files);
    free(m);
}

/* ---------------------------------------------------------- layer pieces */

void lc_llama_embed(struct lc_llama *m, float *x, const int32_t *ids, int N)
{
    m->be->ops->embedding_fwd(m->be, x, ids, m->embed.data, m->embed.dtype, N,
                              m->cfg.hidden_size);
}

void lc_llama_qkv(struct lc_llama *m, int l, const float *xn, float *q, float *k, float *v,
                  const int32_t *pos, int N)
{
    lc_llama_qkv_tab(m, l, xn, q, k, v, pos, m->rope_cos, m->rope_sin, N);
}

void lc_llama_qkv_tab(struct lc_llama *m, int l, const float *xn, float *q, float *k, float *v,
                      const int32_t *pos, const float *cos_tab, const float *sin_tab, int N)
{
    const struct lc_backend_ops *o = m->be->ops;
    const struct lc_llama_layer *L = &m->layers[l];
    const int C = m->cfg.hidden_size;
    const int D = m->cfg.head_dim;
    const int H = m->cfg.n_heads;
    const int Hkv = m->cfg.n_kv_heads;

    o->linear_fwd(m->be, q, xn, L->wq.data, L->wq.dtype, N, C, H * D, 0.0f);
    o->linear_fwd(m->be, k, xn, L->wk.data, L->wk.dtype, N, C, Hkv * D, 0.0f);
    o->linear_fwd(m->be, v, xn, L->wv.data, L->wv.dtype, N, C, Hkv * D, 0.0f);
    if (m->lora != NULL) {
        /* the adapters act on the projections, before RoPE */
        lc_lora_forward(m->lora, l, LC_LORA_TQ, xn, q, N);
        lc_lora_forward(m->lora, l, LC_LORA_TK, xn, k, N);
        lc_lora_forward(m->lora, l, LC_LORA_TV, xn, v, N);
    }
    o->rope_fwd(m->be, q, pos, cos_tab, sin_tab, N, H, D);
    o->rope_fwd(m->be, k, pos, cos_tab, sin_tab, N, Hkv, D);
}

void lc_llama_attn_out(struct lc_llama *m, int l, float *x, const float *att, int N)
{
    const struct lc_llama_layer *L = &m->layers[l];
    const int C = m->cfg.hidden_size;
    const int HD = m->cfg.n_heads * m->cfg.head_dim;

    /* o_proj straight into the residual stream (beta = 1) */
    m->be->ops->linear_fwd(m->be, x, att, L->wo.data, L->wo.dtype, N, HD, C, 1.0f);
    if (m->lora != NULL) {
        lc_lora_forward(m->lora, l, LC_LORA_TO, att, x, N);
    }
}

void lc_llama_mlp(struct lc_llama *m, int l, float *x, float *xn, float *gate, float *up, int N)
{
    const struct lc_backend_ops *o = m->be->ops;
    const struct lc_llama_layer *L = &m->layers[l];
    const int C = m->cfg.hidden_size;
    const int FF = m->cfg.intermediate_size;

    o->rmsnorm_fwd(m->be, xn, NULL, x, L->ffn_norm, N, C, m->cfg.rms_norm_eps);
    o->linear_fwd(m->be, gate, xn, L->w_gate.data, L->w_gate.dtype, N, C, FF, 0.0f);
    o->linear_fwd(m->be, up, xn, L->w_up.data, L->w_up.dtype, N, C, FF, 0.0f);
    o->swiglu_fwd(m->be, gate, gate, up, (int64_t)N * FF);
    o->linear_fwd(m->be, x, gate, L->w_down.data, L->w_down.dtype, N, FF, C, 1.0f);
}

void lc_llama_head(struct lc_llama *m, const float *x, float *xn, float *logits, int N)
{
    const struct lc_backend_ops *o = m->be->ops;
    const int C = m->cfg.hidden_size;

    o->rmsnorm_fwd(m->be, xn, NULL, x, m->final_norm, N, C, m->cfg.rms_norm_eps);
    o->linear_fwd(m->be, logits, xn, m->lm_head.data, m->lm_head.dtype, N, C,
                  m->cfg.vocab_size, 0.0f);
}

/* ------------------------------------------------------------ whole pass */

lc_status lc_llama_fwd_alloc(struct lc_llama *m, struct lc_llama_fwd *f, int max_rows,
                             struct lc_error *err)
{
    struct lc_backend *be = m->be;
    const struct lc_model_config *c = &m->cfg;
    const size_t N = (size_t)max_rows;
    const size_t HD = (size_t)c->n_heads * (size_t)c->head_dim;
    const size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t head_rows;

    memset(f, 0, sizeof(*f));
    f->max_rows = max_rows;
    /* the lm_head runs in row chunks so that a 128K vocabulary does not
     * need logits for the whole batch at once */
    head_rows = ((size_t)64 << 20) / ((size_t)c->vocab_size * sizeof(float));
    if (head_rows < 16) {
        head_rows = 16;
    }
    if (head_rows > N) {
        head_rows = N;
    }
    f->head_rows = (int)head_rows;
    f->x = be->ops->alloc(be, N * (size_t)c->hidden_size * sizeof(float));
    f->xn = be->ops->alloc(be, N * (size_t)c->hidden_size * sizeof(float));
    f->q = be->ops->alloc(be, N * HD * sizeof(float));
    f->att = be->ops->alloc(be, N * HD * sizeof(float));
    f->k = be->ops->alloc(be, N * KD * sizeof(float));
    f->v = be->ops->alloc(be, N * KD * sizeof(float));
    f->gate = be->ops->alloc(be, N * (size_t)c->intermediate_size * sizeof(float));
    f->up = be->ops->alloc(be, N * (size_t)c->intermediate_size * sizeof(float));
    if (m->lin != NULL) {
        const size_t HF = (size_t)c->n_heads * 2 * (size_t)m->lin->cfg.feature_dim;
        f->fq = be->ops->alloc(be, N * HF * sizeof(float));
        f->fk = be->ops->alloc(be, N * HF * sizeof(float));
        if (f->fq == NULL || f->fk == NULL) {
            lc_llama_fwd_free(m, f);
            return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for activations of %d tokens",
                              max_rows);
        }
    }
    if (m->lora != NULL) {
        lc_status rc = lc_lora_reserve(m->lora, max_rows, 0, err);
        if (rc != LC_OK) {
            lc_llama_fwd_free(m, f);
            return rc;
        }
    }
    f->logits = be->ops->alloc(be, head_rows * (size_t)c->vocab_size * sizeof(float));
    f->row_loss = be->ops->alloc(be, head_rows * sizeof(float));
    f->ids = be->ops->alloc(be, N * sizeof(int32_t));
    f->pos = be->ops->alloc(be, N * sizeof(int32_t));
    f->targets = be->ops->alloc(be, N * sizeof(int32_t));
    if (f->x == NULL || f->xn == NULL || f->q == NULL || f->att == NULL ||
        f->k == NULL || f->v == NULL || f->gate == NULL || f->up == NULL || f->logits == NULL ||
        f->row_loss == NULL || f->ids == NULL || f->pos == NULL || f->targets == NULL) {
        lc_llama_fwd_free(m, f);
        return lc_err_set(err, LC_ERR_NOMEM, "out of backend memory for activations of %d tokens",
                          max_rows);
    }
    return LC_OK;
}

void lc_llama_fwd_free(struct lc_llama *m, struct lc_llama_fwd *f)
{
    struct lc_backend *be = m->be;
    void *bufs[] = {f->x,    f->xn,     f->q,        f->att, f->k,   f->v,
                    f->gate, f->logits, f->row_loss, f->up,  f->ids, f->pos, f->targets,
                    f->fq,   f->fk};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        be->ops->release(be, bufs[i]);
    }
    memset(f, 0, sizeof(*f));
}

lc_status lc_llama_upload_positions(struct lc_llama *m, struct lc_llama_fwd *f, int B, int T,
                                   int pos0, struct lc_error *err)
{
    int32_t *pos = malloc((size_t)B * (size_t)T * sizeof(int32_t));
    lc_status rc;

    if (pos == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            pos[(size_t)b * T + t] = pos0 + t;
        }
    }
    m->be->ops->upload(m->be, f->pos, pos, (size_t)B * (size_t)T * sizeof(int32_t));
    free(pos);
    rc = lc_llama_rope_reserve(m, pos0 + T, err);
    return rc;
}

static lc_status check_ids(const struct lc_llama *m, const int32_t *ids, size_t n,
                           struct lc_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size) {
            return lc_err_set(err, LC_ERR_ARG, "token id %d at position %zu is outside the vocabulary (%d)",
                              ids[i], i, m->cfg.vocab_size);
        }
    }
    return LC_OK;
}

void lc_llama_layer(struct lc_llama *m, struct lc_llama_fwd *f, int l, int B, int T)
{
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const int N = B * T;

    o->rmsnorm_fwd(be, f->xn, NULL, f->x, m->layers[l].attn_norm, N, c->hidden_size,
                   c->rms_norm_eps);
    lc_llama_qkv(m, l, f->xn, f->q, f->k, f->v, f->pos, N);
    if (m->lin != NULL) {
        lc_linattn_forward(m->lin, m->lin->params, l, B, T, f->q, f->k, f->v, f->fq, f->fk,
                           f->att, NULL, NULL);
    } else {
        o->attn_fwd(be, f->att, f->q, f->k, f->v, B, T, T, c->n_heads, c->n_kv_heads,
                    c->head_dim, 0);
    }
    lc_llama_attn_out(m, l, f->x, f->att, N);
    lc_llama_mlp(m, l, f->x, f->xn, f->gate, f->up, N);
}

lc_status lc_llama_forward(struct lc_llama *m, struct lc_llama_fwd *f, const int32_t *ids,
                           int B, int T, float *logits_host, struct lc_error *err)
{
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;
    const int N = B * T;
    lc_status rc;

    if (B <= 0 || T <= 0 || N > f->max_rows) {
        return lc_err_set(err, LC_ERR_ARG, "batch of %d x %d tokens does not fit the %d rows allocated",
                          B, T, f->max_rows);
    }
    rc = check_ids(m, ids, (size_t)N, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = lc_llama_upload_positions(m, f, B, T, 0, err);
    if (rc != LC_OK) {
        return rc;
    }
    o->upload(be, f->ids, ids, (size_t)N * sizeof(int32_t));
    lc_llama_embed(m, f->x, f->ids, N);
    for (int l = 0; l < c->n_layers; l++) {
        lc_llama_layer(m, f, l, B, T);
    }
    if (logits_host != NULL) {
        const size_t V = (size_t)c->vocab_size;
        for (int r0 = 0; r0 < N; r0 += f->head_rows) {
            int rows = N - r0 < f->head_rows ? N - r0 : f->head_rows;
            lc_llama_head(m, f->x + (size_t)r0 * c->hidden_size, f->xn, f->logits, rows);
            o->download(be, logits_host + (size_t)r0 * V, f->logits, (size_t)rows * V * sizeof(float));
        }
    }
    return o->sync(be, err);
}

lc_status lc_llama_nll_from_hidden(struct lc_llama *m, struct lc_llama_fwd *f,
                                   const int32_t *targets, int N, float *nll_host,
                                   struct lc_error *err)
{
    struct lc_backend *be = m->be;
    const struct lc_backend_ops *o = be->ops;
    const struct lc_model_config *c = &m->cfg;

    for (int i = 0; i < N; i++) {
        if (targets[i] >= c->vocab_size) {
            return lc_err_set(err, LC_ERR_ARG, "target id %d is outside the vocabulary (%d)",
                              targets[i], c->vocab_size);
        }
    }
    o->upload(be, f->targets, targets, (size_t)N * sizeof(int32_t));
    for (int r0 = 0; r0 < N; r0 += f->head_rows) {
        int rows = N - r0 < f->head_rows ? N - r0 : f->head_rows;
        lc_llama_head(m, f->x + (size_t)r0 * c->hidden_size, f->xn, f->logits, rows);
        o->xent_fwd_bwd(be, f->row_loss, NULL, f->logits, f->targets + r0, rows, c->vocab_size,
                        0.0f);
        o->download(be, nll_host + r0, f->row_loss, (size_t)rows * sizeof(float));
    }
    return o->sync(be, err);
}
