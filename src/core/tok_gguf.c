/*
 * The vocabulary a GGUF file embeds (llama.cpp's "tokenizer.ggml.*" keys),
 * for tokenizer.ggml.model = "llama": SentencePiece BPE, the same tables as
 * a tokenizer.model.
 *   tokens       [n] string   the pieces
 *   scores       [n] float32  merge priority (optional, 0)
 *   token_type   [n] int32    SentencePiece types 1..6, 0 = undefined (optional)
 *   bos_token_id / eos_token_id / unknown_token_id, add_bos_token,
 *   add_space_prefix (true when absent)
 * An id key holding a value past the vocabulary (llama.cpp writes
 * 0xFFFFFFFF for "none") means no such token.
 */
#include "config.h"

#include <string.h>

#include "core/tensorfile.h"
#include "core/tokenizer.h"
#include "core/util.h"

#define KEY(s) "tokenizer.ggml." s
#define GGUF_NO_ID 0xFFFFFFFFll

/* An optional id key: -1 when absent or "none". */
static lc_status special_id(const struct lc_gguf *g, const char *key, int32_t n, int32_t *id,
                            const char *path, struct lc_error *err)
{
    int64_t v;
    if (!lc_gguf_get_int(g, key, &v)) {
        return LC_OK;
    }
    if (v == GGUF_NO_ID || v == -1) {
        *id = -1;
        return LC_OK;
    }
    if (v < 0 || v >= n) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s = %lld is not a token (%ld tokens)", path,
                          key, (long long)v, (long)n);
    }
    *id = (int32_t)v;
    return LC_OK;
}

/* Whether key exists with a scalar value (of any type). */
static int has_scalar(const struct lc_gguf *g, const char *key)
{
    const char *s;
    size_t len;
    int64_t i;
    double f;
    int b;
    return lc_gguf_get_string(g, key, &s, &len) || lc_gguf_get_int(g, key, &i) ||
           lc_gguf_get_float(g, key, &f) || lc_gguf_get_bool(g, key, &b);
}

/* An optional per-token array: absent is fine, else n elements of an
 * allowed type. */
static lc_status check_array(const struct lc_gguf *g, const char *key, uint64_t n, int want_float,
                             int *present, const char *path, struct lc_error *err)
{
    enum lc_gguf_type type;
    uint64_t count;
    *present = 0;
    if (!lc_gguf_get_array(g, key, &type, &count)) {
        if (has_scalar(g, key)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: %s is not an array", path, key);
        }
        return LC_OK;
    }
    if (count != n) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has %llu entries for %llu tokens", path,
                          key, (unsigned long long)count, (unsigned long long)n);
    }
    if (want_float ? (type != LC_GGUF_FLOAT32 && type != LC_GGUF_FLOAT64)
                   : (type != LC_GGUF_INT8 && type != LC_GGUF_UINT8 && type != LC_GGUF_INT16 &&
                      type != LC_GGUF_UINT16 && type != LC_GGUF_INT32 && type != LC_GGUF_UINT32 &&
                      type != LC_GGUF_INT64 && type != LC_GGUF_UINT64)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s holds elements of GGUF type %d", path, key,
                          (int)type);
    }
    *present = 1;
    return LC_OK;
}

lc_status lc_tok_load_gguf_file(struct lc_tokenizer *tok, const struct lc_gguf *g,
                                struct lc_error *err)
{
    const char *path = lc_gguf_path(g);
    const char *model;
    size_t model_len;
    enum lc_gguf_type type;
    uint64_t n;
    int have_scores, have_types;
    int flag;
    lc_status st;

    if (!lc_gguf_get_string(g, KEY("model"), &model, &model_len)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: no embedded vocabulary (no %s string)", path,
                        KEY("model"));
        goto done;
    }
    if (model_len != 5 || memcmp(model, "llama", 5) != 0) {
        st = lc_err_set(err, LC_ERR_UNSUPPORTED,
                        "%s: tokenizer model '%.*s' is not supported (only 'llama')", path,
                        (int)(model_len > 32 ? 32 : model_len), model);
        goto done;
    }
    if (!lc_gguf_get_array(g, KEY("tokens"), &type, &n) || type != LC_GGUF_STRING) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: %s is missing or not an array of strings", path,
                        KEY("tokens"));
        goto done;
    }
    if (n == 0 || n > INT32_MAX) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: %s has %llu entries", path, KEY("tokens"),
                        (unsigned long long)n);
        goto done;
    }
    st = check_array(g, KEY("scores"), n, 1, &have_scores, path, err);
    if (st == LC_OK) {
        st = check_array(g, KEY("token_type"), n, 0, &have_types, path, err);
    }
    if (st != LC_OK) {
        goto done;
    }
    st = lc_tok_init(tok, (int32_t)n, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", path);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        double score = 0.0;
        int64_t t = LC_TOKT_NORMAL;
        if (!lc_gguf_array_string(g, KEY("tokens"), i, &s, &len) ||
            (have_scores && !lc_gguf_array_float(g, KEY("scores"), i, &score)) ||
            (have_types && !lc_gguf_array_int(g, KEY("token_type"), i, &t))) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: token %llu cannot be read", path,
                            (unsigned long long)i);
            goto done;
        }
        if (t < 0 || t > LC_TOKT_BYTE) {
            st = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: token %llu has type %lld in tokenizer.ggml.token_type "
                            "(types are 0 to %d)",
                            path, (unsigned long long)i, (long long)t, LC_TOKT_BYTE);
            goto done;
        }
        if (score != score) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: token %llu has a NaN score", path,
                            (unsigned long long)i);
            goto done;
        }
        st = lc_tok_set_piece(tok, (int32_t)i, s, len, err);
        if (st != LC_OK) {
            lc_err_prefix(err, "%s", path);
            goto done;
        }
        tok->score[i] = (float)score;
        tok->type[i] = (uint8_t)(t == 0 ? LC_TOKT_NORMAL : t);
    }

    tok->algo = LC_TOKA_SPM;
    tok->byte_fallback = 1;
    tok->escape_spaces = 1;
    tok->unescape = 1;
    tok->prefix = LC_TOKP_SEGMENT;
    if (lc_gguf_get_bool(g, KEY("add_space_prefix"), &flag) && !flag) {
        tok->prefix = LC_TOKP_NONE;
    }
    tok->strip_space = tok->prefix != LC_TOKP_NONE;
    tok->wants_bos = 1;
    if (lc_gguf_get_bool(g, KEY("add_bos_token"), &flag)) {
        tok->wants_bos = flag;
    }
    /* llama.cpp's defaults for a "llama" vocabulary: unk 0, bos 1, eos 2 */
    tok->unk = n > 0 && tok->type[0] == LC_TOKT_UNKNOWN ? 0 : -1;
    tok->bos = n > 1 && tok->type[1] == LC_TOKT_CONTROL ? 1 : -1;
    tok->eos = n > 2 && tok->type[2] == LC_TOKT_CONTROL ? 2 : -1;
    st = special_id(g, KEY("unknown_token_id"), tok->n_vocab, &tok->unk, path, err);
    if (st == LC_OK) {
        st = special_id(g, KEY("bos_token_id"), tok->n_vocab, &tok->bos, path, err);
    }
    if (st == LC_OK) {
        st = special_id(g, KEY("eos_token_id"), tok->n_vocab, &tok->eos, path, err);
    }
    if (st != LC_OK) {
        goto done;
    }
    for (int32_t i = 0; i < tok->n_vocab && st == LC_OK; i++) {
        if (tok->type[i] == LC_TOKT_CONTROL || tok->type[i] == LC_TOKT_UNKNOWN) {
            struct lc_tok_added a = {i, 1, 0, 0};
            st = lc_tok_add_added(tok, &a, err);
        }
    }
    if (st == LC_OK) {
        st = lc_tok_finish(tok, err);
        if (st != LC_OK) {
            lc_err_prefix(err, "%s", path);
        }
    }
done:
    return st;
}

lc_status lc_tok_load_gguf(struct lc_tokenizer *tok, const char *path, struct lc_error *err)
{
    struct lc_gguf *g = NULL;
    lc_status st = lc_gguf_open(&g, path, err);
    if (st == LC_OK) {
        st = lc_tok_load_gguf_file(tok, g, err);
    }
    lc_gguf_close(g);
    return st;
}
