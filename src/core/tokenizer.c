/*
 * Tokenizers: opening (which loader for which path), added/special tokens,
 * and the public encode/decode.  The vocabulary tables the loaders fill
 * are built by tok_vocab.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/fileio.h"
#include "core/tok_vocab.h"
#include "core/tokenizer.h"
#include "core/util.h"

/* Sizes of files a tokenizer may come from (a GGUF is mapped, not read). */
#define TOK_MAX_FILE ((size_t)1 << 30)

/* ---------------------------------------------------------------- files */

/* ---------------------------------------------------------------- opening */

/* A token named in tokenizer_config.json: a string, or an object whose
 * "content" is the string (AddedToken).  NULL and absent leave *id alone. */
static lc_status config_token(const struct lc_tokenizer *tok, json_t *root, const char *key,
                              const char *path, int32_t *id, struct lc_error *err)
{
    json_t *v = json_object_get(root, key);
    int32_t found;
    if (v == NULL || json_is_null(v)) {
        return LC_OK;
    }
    if (json_is_object(v)) {
        v = json_object_get(v, "content");
    }
    if (!json_is_string(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: \"%s\" is not a string", path, key);
    }
    found = lc_tok_lookup(tok, json_string_value(v), json_string_length(v));
    if (found < 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s '%s' is not in the vocabulary", path, key,
                          json_string_value(v));
    }
    *id = found;
    return LC_OK;
}

static lc_status read_tokenizer_config(struct lc_tokenizer *tok, const char *path,
                                       struct lc_error *err)
{
    json_t *root = NULL;
    json_t *v;
    json_error_t jerr;
    lc_status st = LC_OK;

    root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
    }
    if (!json_is_object(root)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    v = json_object_get(root, "add_bos_token");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: add_bos_token is not true or false", path);
            goto done;
        }
        tok->wants_bos = json_is_true(v);
    }
    st = config_token(tok, root, "bos_token", path, &tok->bos, err);
    if (st == LC_OK) {
        st = config_token(tok, root, "eos_token", path, &tok->eos, err);
    }
done:
    json_decref(root);
    return st;
}

static lc_status open_file(struct lc_tokenizer *tok, const char *path, struct lc_error *err)
{
    unsigned char head[8] = {0};
    size_t n = 0;
    size_t i = 0;
    lc_status st = lc_read_file_head(path, head, sizeof(head), &n, err);

    if (st != LC_OK) {
        return st;
    }
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) {
        return lc_tok_load_gguf(tok, path, err);
    }
    while (i < n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' || head[i] == '\r')) {
        i++;
    }
    if (i < n && head[i] == '{') {
        return lc_tok_load_hf_json(tok, path, err);
    }
    if (n == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: empty file", path);
    }
    return lc_tok_load_spm(tok, path, err);
}

static lc_status open_dir(struct lc_tokenizer *tok, const char *dir, struct lc_error *err)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "encoder.json",
                                        "vocab.bpe", "tokenizer_config.json"};
    char *p[5] = {NULL};
    lc_status st = LC_OK;

    for (int i = 0; i < 5; i++) {
        p[i] = lc_path_join(dir, names[i]);
        if (p[i] == NULL) {
            st = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (lc_is_regular_file(p[0])) {
        st = lc_tok_load_hf_json(tok, p[0], err);
    } else if (lc_is_regular_file(p[1])) {
        st = lc_tok_load_spm(tok, p[1], err);
    } else if (lc_is_regular_file(p[2]) && lc_is_regular_file(p[3])) {
        st = lc_tok_load_gpt2(tok, p[2], p[3], err);
    } else {
        st = lc_err_set(err, LC_ERR_IO,
                        "%s: no tokenizer.json, tokenizer.model or encoder.json + vocab.bpe", dir);
    }
    if (st == LC_OK && lc_is_regular_file(p[4])) {
        st = read_tokenizer_config(tok, p[4], err);
    }
done:
    for (int i = 0; i < 5; i++) {
        free(p[i]);
    }
    return st;
}

LC_API lc_status lc_tokenizer_open(struct lc_tokenizer **out, const char *path,
                                   struct lc_error *err)
{
    struct lc_tokenizer *tok = NULL;
    lc_status st;

    if (out == NULL || path == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "lc_tokenizer_open: NULL argument");
    }
    *out = NULL;
    tok = calloc(1, sizeof(*tok));
    if (tok == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    tok->path = strdup(path);
    if (tok->path == NULL) {
        free(tok);
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (lc_is_dir(path)) {
        st = open_dir(tok, path, err);
    } else {
        st = open_file(tok, path, err);
    }
    if (st != LC_OK) {
        lc_tokenizer_close(tok);
        return st;
    }
    *out = tok;
    return LC_OK;
}

LC_API void lc_tokenizer_close(struct lc_tokenizer *tok)
{
    if (tok == NULL) {
        return;
    }
    lc_tok_free_fields(tok);
    free(tok);
}

LC_API int lc_tokenizer_vocab_size(const struct lc_tokenizer *tok)
{
    return tok != NULL ? (int)tok->n_vocab : 0;
}

LC_API int32_t lc_tokenizer_bos(const struct lc_tokenizer *tok)
{
    return tok != NULL ? tok->bos : -1;
}

LC_API int32_t lc_tokenizer_eos(const struct lc_tokenizer *tok)
{
    return tok != NULL ? tok->eos : -1;
}

LC_API int lc_tokenizer_wants_bos(const struct lc_tokenizer *tok)
{
    return tok != NULL && tok->wants_bos && tok->bos >= 0;
}

/* ---------------------------------------------------------------- encoding */

static int is_space_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The longest added token at text[pos]; returns its index in added[] or -1. */
static int find_added(const struct lc_tokenizer *tok, const char *text, size_t len, size_t pos,
                      unsigned flags)
{
    unsigned char b = (unsigned char)text[pos];
    for (uint32_t k = tok->added_start[b]; k < tok->added_start[b + 1]; k++) {
        const struct lc_tok_added *a = &tok->added[tok->added_order[k]];
        size_t l = tok->piece_len[a->id];
        if (a->special && !(flags & LC_TOK_PARSE_SPECIAL)) {
            continue;
        }
        if (l <= len - pos && memcmp(text + pos, tok->pool + tok->piece_off[a->id], l) == 0) {
            return (int)tok->added_order[k];
        }
    }
    return -1;
}

LC_API lc_status lc_tokenizer_encode(const struct lc_tokenizer *tok, const char *text, size_t len,
                                     unsigned flags, int32_t **ids, size_t *n_ids,
                                     struct lc_error *err)
{
    struct lc_tok_ids out = {NULL, 0, 0};
    struct lc_tok_work *w = NULL;
    size_t seg = 0, pos = 0;
    lc_status st;

    if (ids != NULL) {
        *ids = NULL;
    }
    if (n_ids != NULL) {
        *n_ids = 0;
    }
    if (tok == NULL || ids == NULL || n_ids == NULL || (text == NULL && len > 0)) {
        return lc_err_set(err, LC_ERR_ARG, "lc_tokenizer_encode: NULL argument");
    }
    if ((flags & ~(LC_TOK_ADD_BOS | LC_TOK_PARSE_SPECIAL)) != 0) {
        return lc_err_set(err, LC_ERR_ARG, "lc_tokenizer_encode: unknown flags 0x%x", flags);
    }
    st = lc_tok_work_new(tok, &w, err);
    if (st != LC_OK) {
        return st;
    }
    if ((flags & LC_TOK_ADD_BOS) && tok->bos >= 0) {
        st = lc_tok_ids_push(&out, tok->bos);
        if (st != LC_OK) {
            goto nomem;
        }
    }
    while (tok->n_added > 0 && pos < len) {
        unsigned char b = (unsigned char)text[pos];
        int k;
        size_t start, end;
        if (tok->added_start[b] == tok->added_start[b + 1] ||
            (k = find_added(tok, text, len, pos, flags)) < 0) {
            pos++;
            continue;
        }
        start = pos;
        end = pos + tok->piece_len[tok->added[k].id];
        if (tok->added[k].lstrip) {
            while (start > seg && is_space_byte(text[start - 1])) {
                start--;
            }
        }
        if (tok->added[k].rstrip) {
            while (end < len && is_space_byte(text[end])) {
                end++;
            }
        }
        st = lc_tok_encode_segment(tok, w, text + seg, start - seg, seg == 0, &out, err);
        if (st != LC_OK) {
            goto fail;
        }
        st = lc_tok_ids_push(&out, tok->added[k].id);
        if (st != LC_OK) {
            goto nomem;
        }
        seg = pos = end;
    }
    st = lc_tok_encode_segment(tok, w, text + seg, len - seg, seg == 0, &out, err);
    if (st != LC_OK) {
        goto fail;
    }
    lc_tok_work_free(w);
    *ids = out.v;
    *n_ids = out.n;
    return LC_OK;
nomem:
    st = lc_err_set(err, LC_ERR_NOMEM, "out of memory for token ids");
fail:
    lc_tok_work_free(w);
    free(out.v);
    return st;
}

/* ---------------------------------------------------------------- decoding */

LC_API size_t lc_tokenizer_decode_next(const struct lc_tokenizer *tok, int32_t prev, int32_t id,
                                       char *buf, size_t cap)
{
    const char *s;
    size_t n;

    if (tok == NULL || id < 0 || id >= tok->n_vocab) {
        return 0;
    }
    s = tok->pool + tok->text_off[id];
    n = tok->text_len[id];
    /* the space the dummy prefix put in front of the text */
    if (tok->strip_space && (prev < 0 || prev == tok->bos) && n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    if (buf != NULL && cap > 0) {
        memcpy(buf, s, n < cap ? n : cap);
    }
    return n;
}

LC_API lc_status lc_tokenizer_decode(const struct lc_tokenizer *tok, const int32_t *ids,
                                     size_t n_ids, char **text, size_t *len,
                                     struct lc_error *err)
{
    size_t total = 0;
    char *buf = NULL;

    if (text != NULL) {
        *text = NULL;
    }
    if (len != NULL) {
        *len = 0;
    }
    if (tok == NULL || text == NULL || len == NULL || (ids == NULL && n_ids > 0)) {
        return lc_err_set(err, LC_ERR_ARG, "lc_tokenizer_decode: NULL argument");
    }
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            return lc_err_set(err, LC_ERR_ARG,
                              "lc_tokenizer_decode: token %zu is %ld, outside [0, %ld)", i,
                              (long)ids[i], (long)tok->n_vocab);
        }
        total += lc_tokenizer_decode_next(tok, i > 0 ? ids[i - 1] : -1, ids[i], NULL, 0);
    }
    buf = malloc(total + 1);
    if (buf == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for %zu bytes of text", total);
    }
    total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        total += lc_tokenizer_decode_next(tok, i > 0 ? ids[i - 1] : -1, ids[i], buf + total,
                                          SIZE_MAX);
    }
    buf[total] = '\0';
    *text = buf;
    *len = total;
    return LC_OK;
}

char *lc_tok_roundtrip_text(const struct lc_tokenizer *tok, const char *text, size_t len,
                            size_t *out_len)
{
    char *e = malloc(len + 1);
    size_t n = 0;
    if (e == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (tok->unescape && i + 2 < len && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            e[n++] = ' ';
            i += 2;
        } else {
            e[n++] = text[i];
        }
    }
    if (tok->unescape && (tok->prefix == LC_TOKP_FIRST || tok->prefix == LC_TOKP_ALWAYS) &&
        n > 0 && e[0] == ' ') {
        memmove(e, e + 1, n - 1);
        n--;
    }
    e[n] = '\0';
    *out_len = n;
    return e;
}
