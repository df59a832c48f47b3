/*
 * Model configuration from a Hugging Face config.json (Llama, Mistral) or
 * from GGUF metadata (llama.cpp's "llama" architecture).
 *
 * Defaults follow transformers' LlamaConfig/MistralConfig where a key may
 * be absent; keys that change the architecture beyond what this project
 * runs (biases, other activations, other RoPE scalings) are refused as
 * unsupported rather than ignored.
 */
#include "config.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/modelfiles.h"
#include "core/util.h"

#define CONFIG_JSON_MAX (16u << 20)

/* The one place both parsers meet: the shape of the model must be
 * consistent whatever file it came from.  what names the source in
 * messages ("config.json", "the GGUF metadata"). */
static lc_status check_config(const struct lc_model_config *c, const char *path,
                              const char *what, struct lc_error *err)
{
    if (c->n_heads % c->n_kv_heads != 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %s has %d attention heads, not a multiple of its %d key/value "
                          "heads",
                          path, what, c->n_heads, c->n_kv_heads);
    }
    if (c->head_dim % 2 != 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %s has head dimension %d; rotary embeddings need an even one",
                          path, what, c->head_dim);
    }
    if ((int64_t)c->n_heads * c->head_dim > INT_MAX || (int64_t)c->vocab_size * c->hidden_size >
                                                            (int64_t)INT64_MAX / 8) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s describes an impossibly large model", path,
                          what);
    }
    if (!(c->rms_norm_eps > 0.0f) || !isfinite(c->rms_norm_eps)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has RMS norm epsilon %g (must be > 0)",
                          path, what, (double)c->rms_norm_eps);
    }
    if (!(c->rope_theta > 0.0) || !isfinite(c->rope_theta)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has RoPE theta %g (must be > 0)", path,
                          what, c->rope_theta);
    }
    return LC_OK;
}

/* ---------------------------------------------------------------- config.json */

/* An integer key: absent or null gives def (or an error when required). */
static lc_status json_int_key(const json_t *root, const char *path, const char *key,
                              int required, int def, int min, int *out, struct lc_error *err)
{
    const json_t *v = json_object_get(root, key);
    double d;

    if (v == NULL || json_is_null(v)) {
        if (required) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
        }
        *out = def;
        return LC_OK;
    }
    if (json_is_integer(v)) {
        d = (double)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        d = json_real_value(v);
    } else {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"%s\" is not an integer", path, key);
    }
    if (d < min || d > INT_MAX) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"%s\" is %.0f, out of range (at least %d)",
                          path, key, d, min);
    }
    *out = (int)d;
    return LC_OK;
}

static lc_status json_num_key(const json_t *root, const char *path, const char *key,
                              int required, double def, double *out, struct lc_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
        }
        *out = def;
        return LC_OK;
    }
    if (!json_is_number(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"%s\" is not a number", path, key);
    }
    *out = json_number_value(v);
    return LC_OK;
}

static lc_status json_bool_key(const json_t *root, const char *path, const char *key, int def,
                               int *out, struct lc_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return LC_OK;
    }
    if (!json_is_boolean(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"%s\" is not true or false", path, key);
    }
    *out = json_is_true(v);
    return LC_OK;
}

/* bos_token_id / eos_token_id: an integer, a list (the first counts; Llama
 * 3 lists several end tokens) or null. */
static lc_status json_token_key(const json_t *root, const char *path, const char *key, int *out,
                                struct lc_error *err)
{
    const json_t *v = json_object_get(root, key);
    *out = -1;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            return LC_OK;
        }
        v = json_array_get(v, 0);
    }
    if (v == NULL || json_is_null(v)) {
        return LC_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: \"%s\" is not a token id (a non-negative integer, a list of them, "
                          "or null)",
                          path, key);
    }
    *out = (int)json_integer_value(v);
    return LC_OK;
}

static lc_status parse_arch(struct lc_model_config *cfg, const json_t *root, const char *path,
                            struct lc_error *err)
{
    const json_t *mt = json_object_get(root, "model_type");
    const json_t *archs = json_object_get(root, "architectures");
    const char *name = NULL;

    if (json_is_string(mt)) {
        name = json_string_value(mt);
        if (strcmp(name, "llama") == 0 || strcmp(name, "mistral") == 0) {
            snprintf(cfg->arch, sizeof(cfg->arch), "%s", name);
            return LC_OK;
        }
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: model_type \"%s\" is not supported (llama and mistral are)", path,
                          name);
    }
    if (mt != NULL && !json_is_null(mt)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"model_type\" is not a string", path);
    }
    if (json_is_array(archs) && json_is_string(json_array_get(archs, 0))) {
        name = json_string_value(json_array_get(archs, 0));
        if (strcmp(name, "LlamaForCausalLM") == 0) {
            snprintf(cfg->arch, sizeof(cfg->arch), "llama");
            return LC_OK;
        }
        if (strcmp(name, "MistralForCausalLM") == 0) {
            snprintf(cfg->arch, sizeof(cfg->arch), "mistral");
            return LC_OK;
        }
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: architecture \"%s\" is not supported (LlamaForCausalLM and "
                          "MistralForCausalLM are)",
                          path, name);
    }
    return lc_err_set(err, LC_ERR_FORMAT,
                      "%s: has neither \"model_type\" nor \"architectures\": not a model "
                      "config.json?",
                      path);
}

static lc_status parse_rope_scaling(struct lc_model_config *cfg, const json_t *root,
                                    const char *path, struct lc_error *err)
{
    static const char *const llama3_keys[] = {"factor", "low_freq_factor", "high_freq_factor",
                                              "original_max_position_embeddings"};
    const json_t *rs = json_object_get(root, "rope_scaling");
    const json_t *ty = NULL;
    const char *name = NULL;
    lc_status rc;

    cfg->rope_type = LC_ROPE_DEFAULT;
    if (rs == NULL || json_is_null(rs)) {
        return LC_OK;
    }
    if (!json_is_object(rs)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"rope_scaling\" is not an object or null",
                          path);
    }
    ty = json_object_get(rs, "rope_type");
    if (ty == NULL) {
        ty = json_object_get(rs, "type"); /* the older spelling */
    }
    if (!json_is_string(ty)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: rope_scaling has no \"rope_type\" (or \"type\") string", path);
    }
    name = json_string_value(ty);
    if (strcmp(name, "default") == 0) {
        return LC_OK;
    }
    if (strcmp(name, "llama3") != 0) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: rope_scaling type \"%s\" is not supported (llama3 is)", path, name);
    }
    for (size_t i = 0; i < sizeof(llama3_keys) / sizeof(llama3_keys[0]); i++) {
        if (!json_is_number(json_object_get(rs, llama3_keys[i]))) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: rope_scaling (llama3) has no number \"%s\"", path,
                              llama3_keys[i]);
        }
    }
    cfg->rope_type = LC_ROPE_LLAMA3;
    cfg->rope_factor = json_number_value(json_object_get(rs, "factor"));
    cfg->rope_low_freq_factor = json_number_value(json_object_get(rs, "low_freq_factor"));
    cfg->rope_high_freq_factor = json_number_value(json_object_get(rs, "high_freq_factor"));
    rc = json_int_key(rs, path, "original_max_position_embeddings", 1, 0, 1,
                      &cfg->rope_original_max_pos, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (!(cfg->rope_factor > 0) || !isfinite(cfg->rope_factor) ||
        !(cfg->rope_low_freq_factor > 0) ||
        !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor) ||
        !isfinite(cfg->rope_high_freq_factor)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: rope_scaling (llama3) needs factor > 0 and 0 < low_freq_factor < "
                          "high_freq_factor (got %g, %g, %g)",
                          path, cfg->rope_factor, cfg->rope_low_freq_factor,
                          cfg->rope_high_freq_factor);
    }
    return LC_OK;
}

/* Keys that would change the architecture: refused, not ignored. */
static lc_status check_unsupported(const json_t *root, const char *path, struct lc_error *err)
{
    static const char *const bias_keys[] = {"attention_bias", "mlp_bias"};
    const json_t *act = json_object_get(root, "hidden_act");
    for (size_t i = 0; i < sizeof(bias_keys) / sizeof(bias_keys[0]); i++) {
        if (json_is_true(json_object_get(root, bias_keys[i]))) {
            return lc_err_set(err, LC_ERR_UNSUPPORTED, "%s: %s true is not supported", path,
                              bias_keys[i]);
        }
    }
    if (act != NULL && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: hidden_act %s is not supported (silu is)", path,
                          json_is_string(act) ? json_string_value(act) : "(not a string)");
    }
    return LC_OK;
}

lc_status lc_config_from_hf_json(struct lc_model_config *cfg, const char *path,
                                 struct lc_error *err)
{
    char *text = NULL;
    size_t len = 0;
    lc_status rc = lc_read_small_file(path, CONFIG_JSON_MAX, &text, &len, err);
    if (rc == LC_OK) {
        rc = lc_config_from_hf_json_buf(cfg, path, text, len, err);
    }
    free(text);
    return rc;
}

lc_status lc_config_from_hf_json_buf(struct lc_model_config *cfg, const char *path,
                                     const char *text, size_t len, struct lc_error *err)
{
    json_t *root = NULL;
    json_error_t jerr;
    struct lc_model_config c;
    double eps;
    int mistral;
    lc_status rc;

    memset(&c, 0, sizeof(c));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                        jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(root)) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    rc = parse_arch(&c, root, path, err);
    if (rc != LC_OK) {
        goto done;
    }
    mistral = strcmp(c.arch, "mistral") == 0;
    rc = check_unsupported(root, path, err);
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "vocab_size", 1, 0, 1, &c.vocab_size, err);
    }
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "hidden_size", 1, 0, 1, &c.hidden_size, err);
    }
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "intermediate_size", 1, 0, 1, &c.intermediate_size, err);
    }
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "num_hidden_layers", 1, 0, 1, &c.n_layers, err);
    }
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "num_attention_heads", 1, 0, 1, &c.n_heads, err);
    }
    if (rc == LC_OK) {
        rc = json_int_key(root, path, "num_key_value_heads", 0, c.n_heads, 1, &c.n_kv_heads,
                          err);
    }
    if (rc != LC_OK) {
        goto done;
    }
    if (json_object_get(root, "head_dim") == NULL ||
        json_is_null(json_object_get(root, "head_dim"))) {
        if (c.hidden_size % c.n_heads != 0) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: hidden_size %d is not a multiple of num_attention_heads %d, and "
                            "there is no head_dim",
                            path, c.hidden_size, c.n_heads);
            goto done;
        }
        c.head_dim = c.hidden_size / c.n_heads;
    } else {
        rc = json_int_key(root, path, "head_dim", 1, 0, 1, &c.head_dim, err);
    }
    if (rc == LC_OK) {
        /* LlamaConfig's and MistralConfig's defaults */
        rc = json_int_key(root, path, "max_position_embeddings", 0, mistral ? 4096 * 32 : 2048, 1,
                          &c.max_position_embeddings, err);
    }
    if (rc == LC_OK) {
        rc = json_num_key(root, path, "rms_norm_eps", 0, 1e-6, &eps, err);
        c.rms_norm_eps = (float)eps;
    }
    if (rc == LC_OK) {
        rc = json_num_key(root, path, "rope_theta", 0, 10000.0, &c.rope_theta, err);
    }
    if (rc == LC_OK) {
        rc = parse_rope_scaling(&c, root, path, err);
    }
    if (rc == LC_OK) {
        rc = json_bool_key(root, path, "tie_word_embeddings", 0, &c.tie_word_embeddings, err);
    }
    if (rc == LC_OK) {
        rc = json_token_key(root, path, "bos_token_id", &c.bos_token_id, err);
    }
    if (rc == LC_OK) {
        rc = json_token_key(root, path, "eos_token_id", &c.eos_token_id, err);
    }
    if (rc == LC_OK) {
        rc = check_config(&c, path, "config.json", err);
    }
    if (rc == LC_OK) {
        *cfg = c;
    }

done:
    json_decref(root);
    return rc;
}

/* ----------------------------------------------------------------------- GGUF */

/* An integer metadata value: absent gives def (or an error when
 * required); present with another type (a per-layer array, a string) is
 * an error. */
static lc_status gguf_int_key(const struct lc_gguf *g, const char *key, int required, int def,
                              int min, int *out, struct lc_error *err)
{
    int64_t v;
    enum lc_gguf_type et;
    uint64_t count;
    double d;
    const char *s = NULL;
    size_t len;
    int bo;

    if (lc_gguf_get_int(g, key, &v)) {
        if (v < min || v > INT_MAX) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: %s is %lld, out of range (at least %d)",
                              lc_gguf_path(g), key, (long long)v, min);
        }
        *out = (int)v;
        return LC_OK;
    }
    if (lc_gguf_get_array(g, key, &et, &count)) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: %s is a per-layer array; models whose layers differ are not "
                          "supported",
                          lc_gguf_path(g), key);
    }
    if (lc_gguf_get_float(g, key, &d) || lc_gguf_get_string(g, key, &s, &len) ||
        lc_gguf_get_bool(g, key, &bo)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s is not an integer", lc_gguf_path(g), key);
    }
    if (required) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: missing required metadata key %s",
                          lc_gguf_path(g), key);
    }
    *out = def;
    return LC_OK;
}

static lc_status gguf_float_key(const struct lc_gguf *g, const char *key, int required,
                                double def, double *out, struct lc_error *err)
{
    int64_t iv;
    if (lc_gguf_get_float(g, key, out)) {
        return LC_OK;
    }
    if (lc_gguf_get_int(g, key, &iv)) {
        *out = (double)iv;
        return LC_OK;
    }
    if (required) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: missing required metadata key %s",
                          lc_gguf_path(g), key);
    }
    *out = def;
    return LC_OK;
}

/* Token ids: unset ids are stored as -1 in a uint32 (4294967295). */
static int gguf_token_id(const struct lc_gguf *g, const char *key)
{
    int64_t v;
    if (lc_gguf_get_int(g, key, &v) && v >= 0 && v <= INT_MAX) {
        return (int)v;
    }
    return -1;
}

/* "ARCH.SUFFIX" in buf (160 bytes): GGUF keys are prefixed with the
 * architecture's name */
static const char *akey(char *buf, const char *arch, const char *suffix)
{
    snprintf(buf, 160, "%s.%s", arch, suffix);
    return buf;
}

static int str_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

lc_status lc_config_from_gguf(struct lc_model_config *cfg, const struct lc_gguf *g,
                              struct lc_error *err)
{
    struct lc_model_config c;
    const char *path = lc_gguf_path(g);
    const char *s = NULL;
    size_t len = 0;
    char key[160];
    const char *a = NULL; /* the architecture: the prefix of its keys */
    double d;
    int n;
    int rope_dims;
    int value_len;
    int64_t iv;
    enum lc_gguf_type et;
    uint64_t count;
    lc_status rc;

    memset(&c, 0, sizeof(c));
    if (!lc_gguf_get_string(g, "general.architecture", &s, &len)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: no general.architecture string", path);
    }
    if (!str_is(s, len, "llama") && !str_is(s, len, "mistral")) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: architecture \"%.*s\" is not supported (llama and mistral are)",
                          path, (int)(len > 64 ? 64 : len), s);
    }
    memcpy(c.arch, s, len);
    c.arch[len] = '\0';
    a = c.arch;

    rc = gguf_int_key(g, akey(key, a, "embedding_length"), 1, 0, 1, &c.hidden_size, err);
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "block_count"), 1, 0, 1, &c.n_layers, err);
    }
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "feed_forward_length"), 1, 0, 1,
                          &c.intermediate_size, err);
    }
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "attention.head_count"), 1, 0, 1, &c.n_heads, err);
    }
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "attention.head_count_kv"), 0, c.n_heads, 1,
                          &c.n_kv_heads, err);
    }
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "context_length"), 1, 0, 1,
                          &c.max_position_embeddings, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    if (c.hidden_size % c.n_heads != 0 &&
        !lc_gguf_get_int(g, akey(key, a, "attention.key_length"), &iv)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: %s.embedding_length %d is not a multiple of %s.attention."
                          "head_count %d, and there is no %s.attention.key_length",
                          path, a, c.hidden_size, a, c.n_heads, a);
    }
    rc = gguf_int_key(g, akey(key, a, "attention.key_length"), 0, c.hidden_size / c.n_heads, 1,
                      &c.head_dim, err);
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "attention.value_length"), 0, c.head_dim, 1,
                          &value_len, err);
    }
    if (rc == LC_OK && value_len != c.head_dim) {
        rc = lc_err_set(err, LC_ERR_UNSUPPORTED,
                        "%s: %s.attention.value_length %d differs from the key length %d", path,
                        a, value_len, c.head_dim);
    }
    if (rc == LC_OK) {
        rc = gguf_int_key(g, akey(key, a, "rope.dimension_count"), 0, c.head_dim, 1,
                          &rope_dims, err);
    }
    if (rc == LC_OK && rope_dims != c.head_dim) {
        rc = lc_err_set(err, LC_ERR_UNSUPPORTED,
                        "%s: %s.rope.dimension_count %d is not the head dimension %d (partial "
                        "rotary embeddings are not supported)",
                        path, a, rope_dims, c.head_dim);
    }
    if (rc == LC_OK) {
        rc = gguf_float_key(g, akey(key, a, "rope.freq_base"), 0, 10000.0, &c.rope_theta, err);
    }
    if (rc == LC_OK) {
        rc = gguf_float_key(g, akey(key, a, "attention.layer_norm_rms_epsilon"), 1, 0, &d, err);
        c.rms_norm_eps = (float)d;
    }
    if (rc != LC_OK) {
        return rc;
    }
    if (lc_gguf_get_string(g, akey(key, a, "rope.scaling.type"), &s, &len) &&
        !str_is(s, len, "none")) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: %s.rope.scaling.type \"%.*s\" is not supported", path, a,
                          (int)(len > 64 ? 64 : len), s);
    }
    /* llama.cpp stores Llama 3.1's frequency scaling as one divisor per
     * frequency (the model files check its shape, the loader its values) */
    c.rope_type = lc_gguf_tensor_find(g, "rope_freqs.weight") != NULL ? LC_ROPE_FACTORS
                                                                       : LC_ROPE_DEFAULT;

    /* the vocabulary size: stated, else the tokenizer's, else the
     * embedding's rows */
    n = 0;
    rc = gguf_int_key(g, akey(key, a, "vocab_size"), 0, 0, 1, &n, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (n == 0 && lc_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count) && count > 0 &&
        count <= INT_MAX) {
        n = (int)count;
    }
    if (n == 0) {
        const struct lc_tensor_view *t = lc_gguf_tensor_find(g, "token_embd.weight");
        if (t != NULL && t->ndim == 2 && t->shape[0] > 0 && t->shape[0] <= INT_MAX) {
            n = (int)t->shape[0];
        }
    }
    if (n == 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: no vocabulary size (%s.vocab_size, tokenizer.ggml.tokens or "
                          "token_embd.weight)",
                          path, a);
    }
    c.vocab_size = n;
    c.tie_word_embeddings = lc_gguf_tensor_find(g, "output.weight") == NULL;
    c.bos_token_id = gguf_token_id(g, "tokenizer.ggml.bos_token_id");
    c.eos_token_id = gguf_token_id(g, "tokenizer.ggml.eos_token_id");
    rc = check_config(&c, path, "the GGUF metadata", err);
    if (rc == LC_OK) {
        *cfg = c;
    }
    return rc;
}
