/*
 * Model files: a Hugging Face folder or a GGUF file, presented the same
 * way (configuration + tensors under Hugging Face names, in the Hugging
 * Face layout), after checking every tensor the configuration implies.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/gguf.h"
#include "core/modelconfig.h"
#include "core/modelfiles.h"
#include "core/safetensors.h"
#include "core/util.h"

/* one GGUF tensor under its Hugging Face name */
struct mf_tensor {
    struct lc_tensor_view view; /* view.name = hf_name; data maybe owned */
    char *hf_name;
    const char *gguf_name;
    void *owned; /* q/k rows permuted back to the rotate-half order */
};

struct lc_model_files {
    char *path;
    const char *format;
    struct lc_model_config cfg;
    struct lc_st_set *st;
    struct lc_gguf *gguf;
    struct mf_tensor *t; /* [n], GGUF only, sorted by hf_name */
    size_t n;
    char *weights_path; /* the file named in messages */
};

/* How the configuration's numbers are called where they came from. */
struct cfg_names {
    const char *source; /* "config.json", "the GGUF metadata" */
    char V[96], C[96], F[96], L[96], H[96], Hkv[96], D[96];
};

static void names_hf(struct cfg_names *n)
{
    n->source = "config.json";
    snprintf(n->V, sizeof(n->V), "vocab_size");
    snprintf(n->C, sizeof(n->C), "hidden_size");
    snprintf(n->F, sizeof(n->F), "intermediate_size");
    snprintf(n->L, sizeof(n->L), "num_hidden_layers");
    snprintf(n->H, sizeof(n->H), "num_attention_heads");
    snprintf(n->Hkv, sizeof(n->Hkv), "num_key_value_heads");
    snprintf(n->D, sizeof(n->D), "head_dim");
}

static void names_gguf(struct cfg_names *n, const char *a)
{
    n->source = "the GGUF metadata";
    snprintf(n->V, sizeof(n->V), "vocabulary size");
    snprintf(n->C, sizeof(n->C), "%s.embedding_length", a);
    snprintf(n->F, sizeof(n->F), "%s.feed_forward_length", a);
    snprintf(n->L, sizeof(n->L), "%s.block_count", a);
    snprintf(n->H, sizeof(n->H), "%s.attention.head_count", a);
    snprintf(n->Hkv, sizeof(n->Hkv), "%s.attention.head_count_kv", a);
    snprintf(n->D, sizeof(n->D), "%s.attention.key_length", a);
}

/* ------------------------------------------------------------ name mapping */

static const struct {
    const char *gguf;
    const char *hf;
} layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

/* The Hugging Face name of a GGUF tensor (malloc'd), NULL for tensors the
 * model does not use; *layer gets N of blk.N (or -1).  rope_freqs.weight
 * has no Hugging Face counterpart and keeps its name. */
static char *hf_name_of(const char *g, long *layer)
{
    const char *p = NULL;
    char *end = NULL;
    long n;
    char buf[256];

    *layer = -1;
    if (strcmp(g, "token_embd.weight") == 0) {
        return strdup("model.embed_tokens.weight");
    }
    if (strcmp(g, "output_norm.weight") == 0) {
        return strdup("model.norm.weight");
    }
    if (strcmp(g, "output.weight") == 0) {
        return strdup("lm_head.weight");
    }
    if (strcmp(g, LC_ROPE_FREQS_TENSOR) == 0) {
        return strdup(LC_ROPE_FREQS_TENSOR);
    }
    if (strncmp(g, "blk.", 4) != 0 || g[4] < '0' || g[4] > '9' || (g[4] == '0' && g[5] != '.')) {
        return NULL;
    }
    errno = 0;
    n = strtol(g + 4, &end, 10);
    if (errno != 0 || *end != '.' || n > 1000000) {
        return NULL;
    }
    p = end + 1;
    for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
        if (strcmp(p, layer_names[i].gguf) == 0) {
            snprintf(buf, sizeof(buf), "model.layers.%ld.%s", n, layer_names[i].hf);
            *layer = n;
            return strdup(buf);
        }
    }
    return NULL;
}

static int cmp_mf(const void *a, const void *b)
{
    const struct mf_tensor *x = a;
    const struct mf_tensor *y = b;
    return strcmp(x->hf_name, y->hf_name);
}

static const struct mf_tensor *mf_find(const struct lc_model_files *mf, const char *name)
{
    size_t lo = 0;
    size_t hi = mf->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(mf->t[mid].hf_name, name);
        if (c == 0) {
            return &mf->t[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static lc_status map_gguf_names(struct lc_model_files *mf, struct lc_error *err)
{
    size_t n = lc_gguf_tensor_count(mf->gguf);
    mf->t = calloc(n ? n : 1, sizeof(*mf->t));
    if (mf->t == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    for (size_t i = 0; i < n; i++) {
        const struct lc_tensor_view *v = lc_gguf_tensor_at(mf->gguf, i);
        long layer;
        char *hf = hf_name_of(v->name, &layer);
        if (hf == NULL) {
            continue; /* nothing the model uses */
        }
        mf->t[mf->n].hf_name = hf;
        mf->t[mf->n].gguf_name = v->name;
        mf->t[mf->n].view = *v;
        mf->t[mf->n].view.name = hf;
        mf->n++;
    }
    qsort(mf->t, mf->n, sizeof(*mf->t), cmp_mf);
    for (size_t i = 1; i < mf->n; i++) {
        if (strcmp(mf->t[i - 1].hf_name, mf->t[i].hf_name) == 0) {
            /* blk.1 and blk.01 would both be layer 1: refused above, so
             * this cannot happen with distinct GGUF names */
            return lc_err_set(err, LC_ERR_FORMAT, "%s: tensors %s and %s are both %s", mf->path,
                              mf->t[i - 1].gguf_name, mf->t[i].gguf_name, mf->t[i].hf_name);
        }
    }
    return LC_OK;
}

/* ----------------------------------------------------------------- checking */

/* A tensor's view as found in the file (before any permutation), or NULL. */
static const struct lc_tensor_view *raw_find(const struct lc_model_files *mf, const char *hf)
{
    if (mf->st != NULL) {
        return lc_st_set_find(mf->st, hf);
    }
    {
        const struct mf_tensor *t = mf_find(mf, hf);
        return t != NULL ? &t->view : NULL;
    }
}

/* The GGUF name llama.cpp gives a Hugging Face tensor name; 0 when none. */
static int gguf_name_for(const char *hf, char *buf, size_t cap)
{
    const char *p = NULL;
    char *end = NULL;
    long n;

    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(buf, cap, "token_embd.weight");
        return 1;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(buf, cap, "output_norm.weight");
        return 1;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        snprintf(buf, cap, "output.weight");
        return 1;
    }
    if (strncmp(hf, "model.layers.", 13) != 0) {
        return 0;
    }
    n = strtol(hf + 13, &end, 10);
    if (end == hf + 13 || *end != '.') {
        return 0;
    }
    p = end + 1;
    for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
        if (strcmp(p, layer_names[i].hf) == 0) {
            snprintf(buf, cap, "blk.%ld.%s", n, layer_names[i].gguf);
            return 1;
        }
    }
    return 0;
}

/* "blk.3.attn_k.weight (model.layers.3.self_attn.k_proj.weight)" for GGUF,
 * the name alone for safetensors */
static void display_name(const struct lc_model_files *mf, const char *hf, char *buf, size_t cap)
{
    char g[200];
    if (mf->gguf != NULL && gguf_name_for(hf, g, sizeof(g))) {
        snprintf(buf, cap, "%s (%s)", g, hf);
    } else {
        snprintf(buf, cap, "%s", hf);
    }
}

static lc_status check_tensor(const struct lc_model_files *mf, const struct cfg_names *nm,
                              const char *hf, int ndim, int64_t d0, int64_t d1, const char *why,
                              struct lc_error *err)
{
    const struct lc_tensor_view *t = raw_find(mf, hf);
    const int64_t want[2] = {d0, d1};
    char shown[400];
    char got_s[200];
    char want_s[64];
    int ok;

    display_name(mf, hf, shown, sizeof(shown));
    if (t == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s is missing (%s: %s)", mf->weights_path,
                          shown, nm->source, why);
    }
    ok = t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
    if (!ok) {
        lc_shape_format(got_s, sizeof(got_s), t->ndim, t->shape);
        lc_shape_format(want_s, sizeof(want_s), ndim, want);
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has shape %s, but %s (%s) implies %s",
                          mf->weights_path, shown, got_s, nm->source, why, want_s);
    }
    if (mf->gguf != NULL) {
        const struct mf_tensor *m = mf_find(mf, hf);
        const struct lc_tensor_view *v = NULL;
        lc_status rc = lc_gguf_tensor_get(mf->gguf, m->gguf_name, &v, err);
        if (rc != LC_OK) {
            return rc; /* quantized: names the type */
        }
    }
    if (t->dtype != LC_DTYPE_F32 && t->dtype != LC_DTYPE_F16 && t->dtype != LC_DTYPE_BF16) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %s has dtype %s; model weights must be F32, F16 or BF16",
                          mf->weights_path, shown, lc_dtype_name(t->dtype));
    }
    return LC_OK;
}

static int has_attention(const struct lc_model_files *mf)
{
    size_t n = mf->st != NULL ? lc_st_set_count(mf->st) : mf->n;
    for (size_t i = 0; i < n; i++) {
        const char *name = mf->st != NULL ? lc_st_set_at(mf->st, i)->name : mf->t[i].hf_name;
        if (strstr(name, ".self_attn.") != NULL) {
            return 1;
        }
    }
    return 0;
}

static lc_status validate(const struct lc_model_files *mf, const struct cfg_names *nm,
                          struct lc_error *err)
{
    const struct lc_model_config *c = &mf->cfg;
    const int64_t V = c->vocab_size, C = c->hidden_size, F = c->intermediate_size;
    const int64_t QD = (int64_t)c->n_heads * c->head_dim;
    const int64_t KD = (int64_t)c->n_kv_heads * c->head_dim;
    char why_vc[300], why_c[200], why_q[400], why_kv[400], why_o[400], why_fc[300];
    char name[160];
    lc_status rc;

    if (!has_attention(mf)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: no attention tensors (model.layers.N.self_attn.*): not a "
                          "Llama-family checkpoint",
                          mf->weights_path);
    }
    snprintf(why_vc, sizeof(why_vc), "%s %d, %s %d", nm->V, c->vocab_size, nm->C, c->hidden_size);
    snprintf(why_c, sizeof(why_c), "%s %d", nm->C, c->hidden_size);
    snprintf(why_q, sizeof(why_q), "%s %d, %s %d, %s %d", nm->H, c->n_heads, nm->D, c->head_dim,
             nm->C, c->hidden_size);
    snprintf(why_kv, sizeof(why_kv), "%s %d, %s %d, %s %d", nm->Hkv, c->n_kv_heads, nm->D,
             c->head_dim, nm->C, c->hidden_size);
    snprintf(why_o, sizeof(why_o), "%s %d, %s %d, %s %d", nm->C, c->hidden_size, nm->H,
             c->n_heads, nm->D, c->head_dim);
    snprintf(why_fc, sizeof(why_fc), "%s %d, %s %d", nm->F, c->intermediate_size, nm->C,
             c->hidden_size);

    rc = check_tensor(mf, nm, "model.embed_tokens.weight", 2, V, C, why_vc, err);
    if (rc == LC_OK) {
        rc = check_tensor(mf, nm, "model.norm.weight", 1, C, 0, why_c, err);
    }
    if (rc == LC_OK && !c->tie_word_embeddings) {
        char why[400];
        snprintf(why, sizeof(why), "%s; word embeddings not tied", why_vc);
        rc = check_tensor(mf, nm, "lm_head.weight", 2, V, C, why, err);
    }
    if (rc == LC_OK && c->rope_type == LC_ROPE_FACTORS) {
        char why[200];
        snprintf(why, sizeof(why), "%s %d: one RoPE factor per frequency", nm->D, c->head_dim);
        rc = check_tensor(mf, nm, LC_ROPE_FREQS_TENSOR, 1, c->head_dim / 2, 0, why, err);
    }
    for (int l = 0; rc == LC_OK && l < c->n_layers; l++) {
        static const struct {
            const char *suffix;
            int which; /* 0 norm, 1 q, 2 k/v, 3 o, 4 gate/up, 5 down */
        } per_layer[] = {
            {"input_layernorm.weight", 0},   {"self_attn.q_proj.weight", 1},
            {"self_attn.k_proj.weight", 2},  {"self_attn.v_proj.weight", 2},
            {"self_attn.o_proj.weight", 3},  {"post_attention_layernorm.weight", 0},
            {"mlp.gate_proj.weight", 4},     {"mlp.up_proj.weight", 4},
            {"mlp.down_proj.weight", 5},
        };
        for (size_t k = 0; rc == LC_OK && k < sizeof(per_layer) / sizeof(per_layer[0]); k++) {
            snprintf(name, sizeof(name), "model.layers.%d.%s", l, per_layer[k].suffix);
            switch (per_layer[k].which) {
            case 0:
                rc = check_tensor(mf, nm, name, 1, C, 0, why_c, err);
                break;
            case 1:
                rc = check_tensor(mf, nm, name, 2, QD, C, why_q, err);
                break;
            case 2:
                rc = check_tensor(mf, nm, name, 2, KD, C, why_kv, err);
                break;
            case 3:
                rc = check_tensor(mf, nm, name, 2, C, QD, why_o, err);
                break;
            case 4:
                rc = check_tensor(mf, nm, name, 2, F, C, why_fc, err);
                break;
            default: {
                char why[300];
                snprintf(why, sizeof(why), "%s %d, %s %d", nm->C, c->hidden_size, nm->F,
                         c->intermediate_size);
                rc = check_tensor(mf, nm, name, 2, C, F, why, err);
                break;
            }
            }
        }
    }
    return rc;
}

/* ------------------------------------------------------------ permutation */

/* llama.cpp stores the q/k rows of each head in the interleaved-pair RoPE
 * order (row 2j+t of a head is pair j, half t); Hugging Face puts the
 * halves apart (row t*D/2 + j).  This is transformers'
 * w.view(nh, D/2, 2, in).transpose(1, 2).reshape(nh*D, in). */
static lc_status unpermute(struct lc_model_files *mf, struct mf_tensor *t, int nh,
                           struct lc_error *err)
{
    const int D = mf->cfg.head_dim;
    const size_t row = (size_t)t->view.shape[1] * lc_dtype_size(t->view.dtype);
    const unsigned char *src = t->view.data;
    unsigned char *dst = malloc(t->view.nbytes ? t->view.nbytes : 1);

    if (dst == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    LC_ASSERT((int64_t)nh * D == t->view.shape[0]);
    for (int h = 0; h < nh; h++) {
        for (int half = 0; half < 2; half++) {
            for (int j = 0; j < D / 2; j++) {
                size_t to = (size_t)h * D + (size_t)half * (D / 2) + j;
                size_t from = (size_t)h * D + 2 * (size_t)j + half;
                memcpy(dst + to * row, src + from * row, row);
            }
        }
    }
    t->owned = dst;
    t->view.data = dst;
    return LC_OK;
}

static lc_status unpermute_all(struct lc_model_files *mf, struct lc_error *err)
{
    char name[160];
    for (int l = 0; l < mf->cfg.n_layers; l++) {
        struct mf_tensor *t = NULL;
        lc_status rc;
        snprintf(name, sizeof(name), "model.layers.%d.self_attn.q_proj.weight", l);
        t = (struct mf_tensor *)mf_find(mf, name);
        rc = unpermute(mf, t, mf->cfg.n_heads, err);
        if (rc != LC_OK) {
            return rc;
        }
        snprintf(name, sizeof(name), "model.layers.%d.self_attn.k_proj.weight", l);
        t = (struct mf_tensor *)mf_find(mf, name);
        rc = unpermute(mf, t, mf->cfg.n_kv_heads, err);
        if (rc != LC_OK) {
            return rc;
        }
    }
    return LC_OK;
}

/* ---------------------------------------------------------------- opening */

static int has_gguf_magic(const char *path)
{
    unsigned char m[4];
    size_t got = 0;
    return lc_read_file_head(path, m, sizeof(m), &got, NULL) == LC_OK && got == 4 &&
           memcmp(m, "GGUF", 4) == 0;
}

static lc_status open_hf(struct lc_model_files *mf, const char *dir, const char *weights,
                         struct lc_error *err)
{
    struct cfg_names nm;
    char *cfg_path = lc_path_join(dir, "config.json");
    char *index = NULL;
    lc_status rc;

    if (cfg_path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    rc = lc_config_from_hf_json(&mf->cfg, cfg_path, err);
    free(cfg_path);
    if (rc != LC_OK) {
        return rc;
    }
    if (weights != NULL) {
        mf->weights_path = strdup(weights);
    } else {
        index = lc_path_join(dir, "model.safetensors.index.json");
        if (index != NULL && lc_is_regular_file(index)) {
            mf->weights_path = index;
            index = NULL;
        } else {
            mf->weights_path = lc_path_join(dir, "model.safetensors");
        }
        free(index);
    }
    if (mf->weights_path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    rc = lc_st_set_open(&mf->st, weights != NULL ? weights : dir, err);
    if (rc != LC_OK) {
        return rc;
    }
    mf->format = "safetensors";
    names_hf(&nm);
    return validate(mf, &nm, err);
}

static lc_status open_gguf(struct lc_model_files *mf, const char *path, struct lc_error *err)
{
    struct cfg_names nm;
    lc_status rc = lc_gguf_open(&mf->gguf, path, err);
    if (rc != LC_OK) {
        return rc;
    }
    mf->format = "gguf";
    mf->weights_path = strdup(path);
    if (mf->weights_path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    rc = lc_config_from_gguf(&mf->cfg, mf->gguf, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = map_gguf_names(mf, err);
    if (rc != LC_OK) {
        return rc;
    }
    names_gguf(&nm, mf->cfg.arch);
    rc = validate(mf, &nm, err);
    if (rc != LC_OK) {
        return rc;
    }
    return unpermute_all(mf, err);
}

lc_status lc_model_files_open(struct lc_model_files **out, const char *path,
                              struct lc_error *err)
{
    struct lc_model_files *mf = NULL;
    struct stat st;
    lc_status rc;

    *out = NULL;
    if (stat(path, &st) != 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: %s", path, strerror(errno));
    }
    mf = calloc(1, sizeof(*mf));
    if (mf == NULL || (mf->path = strdup(path)) == NULL) {
        free(mf);
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (S_ISDIR(st.st_mode)) {
        rc = open_hf(mf, path, NULL, err);
    } else if (has_gguf_magic(path)) {
        rc = open_gguf(mf, path, err);
    } else if (lc_path_ends_with(path, ".safetensors")) {
        /* a lone weights file: config.json beside it */
        char *dir = strdup(path);
        char *slash = dir != NULL ? strrchr(dir, '/') : NULL;
        if (dir == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
        } else {
            if (slash != NULL) {
                *slash = '\0';
            }
            rc = open_hf(mf, slash != NULL ? dir : ".", path, err);
        }
        free(dir);
    } else {
        rc = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: not a model: expected a Hugging Face folder (config.json and "
                        "safetensors), a .safetensors file or a GGUF file",
                        path);
    }
    if (rc != LC_OK) {
        lc_model_files_close(mf);
        return rc;
    }
    *out = mf;
    return LC_OK;
}

void lc_model_files_close(struct lc_model_files *mf)
{
    if (mf == NULL) {
        return;
    }
    for (size_t i = 0; i < mf->n; i++) {
        free(mf->t[i].hf_name);
        free(mf->t[i].owned);
    }
    free(mf->t);
    lc_st_set_close(mf->st);
    lc_gguf_close(mf->gguf);
    free(mf->weights_path);
    free(mf->path);
    free(mf);
}

const struct lc_model_config *lc_model_files_config(const struct lc_model_files *mf)
{
    return &mf->cfg;
}

const struct lc_tensor_view *lc_model_files_tensor(const struct lc_model_files *mf,
                                                   const char *hf_name)
{
    const struct mf_tensor *t = NULL;
    if (hf_name == NULL) {
        return NULL;
    }
    /* tied: the embedding is the classifier, whatever else the file holds */
    if (mf->cfg.tie_word_embeddings && strcmp(hf_name, "lm_head.weight") == 0) {
        return NULL;
    }
    if (mf->st != NULL) {
        return lc_st_set_find(mf->st, hf_name);
    }
    t = mf_find(mf, hf_name);
    return t != NULL ? &t->view : NULL;
}

const char *lc_model_files_format(const struct lc_model_files *mf)
{
    return mf->format;
}

const char *lc_model_files_path(const struct lc_model_files *mf)
{
    return mf->path;
}
