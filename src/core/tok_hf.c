/*
 * Hugging Face tokenizers: tokenizer.json (model "BPE"), and the GPT-2
 * file pair encoder.json + vocab.bpe.
 *
 * tokenizer.json is interpreted, not guessed: every normalizer,
 * pre-tokenizer and decoder step is one this encoder implements, or the
 * file is refused with LC_ERR_UNSUPPORTED naming the step.  Supported:
 *   normalizer     null, Sequence, Prepend("▁"), Replace(" " -> "▁")
 *   pre_tokenizer  null, Sequence, Metaspace, Split(Regex, Isolated),
 *                  ByteLevel (add_prefix_space false)
 *   decoder        null, Sequence, Replace("▁" -> " "), ByteFallback, Fuse,
 *                  Strip(" ", start <= 1, stop 0), Metaspace, ByteLevel
 *   post_processor TemplateProcessing (BOS), Sequence; others ignored
 * Decoding gives each token's bytes: byte tokens <0xXX> their byte
 * (whether or not the decoder lists ByteFallback), "▁" a space when the
 * decoder has Replace or Metaspace, added tokens their content.  (With no
 * decoder at all the Hugging Face library joins tokens with spaces; that
 * is not reproduced.)
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/fileio.h"
#include "core/tokenizer.h"
#include "core/util.h"

#define MAX_ID ((1 << 24) - 1)
/* tokenizer.json, encoder.json and vocab.bpe: the largest public ones are
 * under 20 MB */
#define HF_JSON_MAX ((size_t)1 << 30)
#define META "\xE2\x96\x81"

/* What the file's pipeline asks for, before it is checked as a whole. */
struct hf_pipe {
    int metaspace;   /* a Metaspace pre-tokenizer */
    int bytelevel;   /* a ByteLevel pre-tokenizer */
    int after_bytes; /* a step after ByteLevel (not supported) */
};

static const char *str_or_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* a boolean field; absent or null gives def; another type is an error */
static int get_bool(json_t *obj, const char *key, int def, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 1;
    }
    if (!json_is_boolean(v)) {
        return 0;
    }
    *out = json_is_true(v);
    return 1;
}

static int is_string(json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* {"String": s} */
static int pattern_is_string(json_t *pattern, const char *s)
{
    return json_is_object(pattern) && is_string(json_object_get(pattern, "String"), s);
}

static lc_status unsupported(const char *path, const char *what, const char *type,
                             struct lc_error *err)
{
    return lc_err_set(err, LC_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported", path, what,
                      type != NULL ? type : "(no type)");
}

/* What the steps of the pipeline (normalizer, pre_tokenizer, decoder) are
 * parsed into. */
struct hf_ctx {
    struct lc_tokenizer *tok;
    struct hf_pipe *pipe;
    const char *path;
};

typedef lc_status (*hf_step_fn)(const struct hf_ctx *c, json_t *n, struct lc_error *err);

/* The type of step n (what: "normalizer", ... in messages); *type is NULL
 * when n is absent or null, and a step without a type is an error. */
static lc_status step_type(const struct hf_ctx *c, json_t *n, const char *what, const char **type,
                           struct lc_error *err)
{
    *type = NULL;
    if (n == NULL || json_is_null(n)) {
        return LC_OK;
    }
    *type = str_or_null(n, "type");
    if (*type == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s without a type", c->path, what);
    }
    return LC_OK;
}

/* A Sequence step: parse each step of its list n[key], in order. */
static lc_status parse_sequence(const struct hf_ctx *c, json_t *n, const char *key,
                                const char *what, hf_step_fn parse, struct lc_error *err)
{
    json_t *list = json_object_get(n, key);
    size_t i;
    json_t *v;

    if (!json_is_array(list)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: Sequence %s without a list", c->path, what);
    }
    json_array_foreach(list, i, v) {
        lc_status st = parse(c, v, err);
        if (st != LC_OK) {
            return st;
        }
    }
    return LC_OK;
}

static lc_status parse_normalizer(const struct hf_ctx *c, json_t *n, struct lc_error *err)
{
    struct lc_tokenizer *tok = c->tok;
    const char *path = c->path;
    const char *type;
    lc_status st = step_type(c, n, "normalizer", &type, err);

    if (st != LC_OK || type == NULL) {
        return st;
    }
    if (strcmp(type, "Sequence") == 0) {
        return parse_sequence(c, n, "normalizers", "normalizer", parse_normalizer, err);
    }
    if (strcmp(type, "Prepend") == 0 && is_string(json_object_get(n, "prepend"), META)) {
        tok->prefix = LC_TOKP_SEGMENT;
        return LC_OK;
    }
    if (strcmp(type, "Replace") == 0 && pattern_is_string(json_object_get(n, "pattern"), " ") &&
        is_string(json_object_get(n, "content"), META)) {
        tok->escape_spaces = 1;
        return LC_OK;
    }
    return unsupported(path, "normalizer", type, err);
}

/* Metaspace's prepend_scheme (newer files) or add_prefix_space (older). */
static int metaspace_prefix(json_t *n, int *prefix)
{
    const char *scheme = str_or_null(n, "prepend_scheme");
    int add;
    if (scheme != NULL) {
        if (strcmp(scheme, "always") == 0) {
            *prefix = LC_TOKP_ALWAYS;
        } else if (strcmp(scheme, "first") == 0) {
            *prefix = LC_TOKP_FIRST;
        } else if (strcmp(scheme, "never") == 0) {
            *prefix = LC_TOKP_NONE;
        } else {
            return 0;
        }
        return 1;
    }
    if (!get_bool(n, "add_prefix_space", 1, &add)) {
        return 0;
    }
    *prefix = add ? LC_TOKP_ALWAYS : LC_TOKP_NONE;
    return 1;
}

static lc_status parse_pretok(const struct hf_ctx *c, json_t *n, struct lc_error *err)
{
    struct lc_tokenizer *tok = c->tok;
    struct hf_pipe *pipe = c->pipe;
    const char *path = c->path;
    const char *type;
    lc_status st = step_type(c, n, "pre_tokenizer", &type, err);

    if (st != LC_OK || type == NULL) {
        return st;
    }
    if (pipe->bytelevel) {
        pipe->after_bytes = 1;
    }
    if (strcmp(type, "Sequence") == 0) {
        return parse_sequence(c, n, "pretokenizers", "pre_tokenizer", parse_pretok, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        int split;
        if (!is_string(json_object_get(n, "replacement"), META) ||
            !metaspace_prefix(n, &tok->prefix) || !get_bool(n, "split", 1, &split)) {
            return unsupported(path, "pre_tokenizer", "Metaspace with these options", err);
        }
        pipe->metaspace = 1;
        tok->escape_spaces = 1;
        tok->meta_split = split;
        return LC_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int add_prefix, use_regex;
        if (!get_bool(n, "add_prefix_space", 0, &add_prefix) ||
            !get_bool(n, "use_regex", 1, &use_regex) || add_prefix) {
            return unsupported(path, "pre_tokenizer", "ByteLevel with add_prefix_space", err);
        }
        pipe->bytelevel = 1;
        if (use_regex) {
            st = lc_tok_add_regex(tok, lc_tok_gpt2_regex, strlen(lc_tok_gpt2_regex), err);
            if (st != LC_OK) {
                lc_err_prefix(err, "%s", path);
                return st;
            }
        }
        return LC_OK;
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pattern = json_object_get(n, "pattern");
        json_t *re = json_is_object(pattern) ? json_object_get(pattern, "Regex") : NULL;
        int invert;
        if (!json_is_string(re) || !is_string(json_object_get(n, "behavior"), "Isolated") ||
            !get_bool(n, "invert", 0, &invert) || invert) {
            return unsupported(path, "pre_tokenizer",
                               "Split other than a regex with behavior Isolated", err);
        }
        st = lc_tok_add_regex(tok, json_string_value(re), json_string_length(re), err);
        if (st != LC_OK) {
            lc_err_prefix(err, "%s", path);
        }
        return st;
    }
    return unsupported(path, "pre_tokenizer", type, err);
}

static lc_status parse_decoder(const struct hf_ctx *c, json_t *n, struct lc_error *err)
{
    struct lc_tokenizer *tok = c->tok;
    const char *path = c->path;
    const char *type;
    lc_status st = step_type(c, n, "decoder", &type, err);

    if (st != LC_OK || type == NULL) {
        return st;
    }
    if (strcmp(type, "Sequence") == 0) {
        return parse_sequence(c, n, "decoders", "decoder", parse_decoder, err);
    }
    if (strcmp(type, "Replace") == 0 && pattern_is_string(json_object_get(n, "pattern"), META) &&
        is_string(json_object_get(n, "content"), " ")) {
        tok->unescape = 1;
        return LC_OK;
    }
    if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "Fuse") == 0 ||
        strcmp(type, "ByteLevel") == 0) {
        return LC_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        json_t *start = json_object_get(n, "start");
        json_t *stop = json_object_get(n, "stop");
        if (is_string(json_object_get(n, "content"), " ") && json_is_integer(start) &&
            json_integer_value(start) >= 0 && json_integer_value(start) <= 1 &&
            json_is_integer(stop) && json_integer_value(stop) == 0) {
            tok->strip_space = (int)json_integer_value(start);
            return LC_OK;
        }
        return unsupported(path, "decoder", "Strip with these options", err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        int prefix;
        if (!is_string(json_object_get(n, "replacement"), META) || !metaspace_prefix(n, &prefix)) {
            return unsupported(path, "decoder", "Metaspace with these options", err);
        }
        tok->unescape = 1;
        tok->strip_space = prefix != LC_TOKP_NONE;
        return LC_OK;
    }
    return unsupported(path, "decoder", type, err);
}

/* BOS from a TemplateProcessing whose single-sequence template starts
 * with a special token. */
static lc_status parse_post(struct lc_tokenizer *tok, json_t *n, const char *path,
                            struct lc_error *err)
{
    const char *type;
    if (n == NULL || json_is_null(n)) {
        return LC_OK;
    }
    type = str_or_null(n, "type");
    if (type != NULL && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "processors");
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            lc_status st = parse_post(tok, v, path, err);
            if (st != LC_OK) {
                return st;
            }
        }
        return LC_OK;
    }
    if (type != NULL && strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(n, "single");
        json_t *first = json_array_get(single, 0);
        json_t *special = json_object_get(first, "SpecialToken");
        const char *name = str_or_null(special, "id");
        json_t *entry, *ids;
        if (name == NULL) {
            return LC_OK;
        }
        entry = json_object_get(json_object_get(n, "special_tokens"), name);
        ids = json_object_get(entry, "ids");
        if (json_array_size(ids) != 1 || !json_is_integer(json_array_get(ids, 0)) ||
            json_integer_value(json_array_get(ids, 0)) < 0 ||
            json_integer_value(json_array_get(ids, 0)) >= tok->n_vocab) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: post_processor special token '%s' has no valid id", path, name);
        }
        tok->bos = (int32_t)json_integer_value(json_array_get(ids, 0));
        tok->wants_bos = 1;
    }
    return LC_OK;
}

/* The id of the first of names that is a special added token, or -1. */
static int32_t find_special(const struct lc_tokenizer *tok, const char *const *names)
{
    for (; *names != NULL; names++) {
        int32_t id = lc_tok_lookup(tok, *names, strlen(*names));
        if (id >= 0 && tok->type[id] == LC_TOKT_CONTROL) {
            return id;
        }
    }
    return -1;
}

static lc_status read_id(json_t *v, const char *path, const char *what, int32_t *id,
                         struct lc_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_ID) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s has no valid id", path, what);
    }
    *id = (int32_t)json_integer_value(v);
    return LC_OK;
}

/* One merge: "left right" or ["left", "right"]. */
static lc_status read_merge(struct lc_tokenizer *tok, json_t *m, int32_t rank, const char *path,
                            struct lc_error *err)
{
    const char *a, *b;
    size_t la, lb;
    lc_status st;

    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t len = json_string_length(m);
        const char *sp = memchr(s, ' ', len);
        if (sp == NULL || sp == s || sp + 1 == s + len ||
            memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)) != NULL) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: merge %ld is not two tokens: '%s'", path,
                              (long)rank, s);
        }
        a = s;
        la = (size_t)(sp - s);
        b = sp + 1;
        lb = len - la - 1;
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
        a = json_string_value(json_array_get(m, 0));
        la = json_string_length(json_array_get(m, 0));
        b = json_string_value(json_array_get(m, 1));
        lb = json_string_length(json_array_get(m, 1));
    } else {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: merge %ld is not a pair of strings", path,
                          (long)rank);
    }
    st = lc_tok_add_merge(tok, a, la, b, lb, rank, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", path);
    }
    return st;
}

lc_status lc_tok_load_hf_json_buf(struct lc_tokenizer *tok, const char *path, const char *text,
                                  size_t text_len, struct lc_error *err)
{
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    json_t *root = NULL;
    json_t *model, *vocab, *added, *merges, *v;
    json_error_t jerr;
    struct hf_pipe pipe = {0, 0, 0};
    const struct hf_ctx ctx = {tok, &pipe, path};
    const char *key;
    const char *mtype;
    const char *unk;
    int32_t max_id = -1;
    size_t i;
    lc_status st = LC_OK;

    root = json_loadb(text, text_len, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %d column %d: %s", path, jerr.line,
                          jerr.column, jerr.text);
    }
    model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: no \"model\" object", path);
        goto done;
    }
    mtype = str_or_null(model, "type");
    if ((mtype != NULL && strcmp(mtype, "BPE") != 0) ||
        (mtype == NULL && json_object_get(model, "merges") == NULL)) {
        st = unsupported(path, "model", mtype != NULL ? mtype : "without merges", err);
        goto done;
    }
    vocab = json_object_get(model, "vocab");
    merges = json_object_get(model, "merges");
    added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: model.vocab is missing or empty", path);
        goto done;
    }
    if (!json_is_array(merges)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: model.merges is not a list", path);
        goto done;
    }
    if (added != NULL && !json_is_null(added) && !json_is_array(added)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: added_tokens is not a list", path);
        goto done;
    }

    /* vocabulary: model.vocab plus the added tokens */
    json_object_foreach(vocab, key, v) {
        int32_t id;
        st = read_id(v, path, key, &id, err);
        if (st != LC_OK) {
            goto done;
        }
        max_id = id > max_id ? id : max_id;
    }
    json_array_foreach(added, i, v) {
        int32_t id;
        st = read_id(json_object_get(v, "id"), path, "an added token", &id, err);
        if (st != LC_OK) {
            goto done;
        }
        max_id = id > max_id ? id : max_id;
    }
    /* every id below the largest needs a token: more ids than entries
     * is a hole, refused before the tables are allocated */
    if ((size_t)max_id >= json_object_size(vocab) + json_array_size(added)) {
        st = lc_err_set(err, LC_ERR_FORMAT,
                        "%s: token id %ld, but model.vocab and added_tokens have only %zu "
                        "entries: some id below it has no entry",
                        path, (long)max_id, json_object_size(vocab) + json_array_size(added));
        goto done;
    }
    st = lc_tok_init(tok, max_id + 1, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", path);
        goto done;
    }
    json_object_foreach(vocab, key, v) {
        st = lc_tok_set_piece(tok, (int32_t)json_integer_value(v), key, strlen(key), err);
        if (st != LC_OK) {
            lc_err_prefix(err, "%s", path);
            goto done;
        }
    }
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        json_t *content = json_object_get(v, "content");
        struct lc_tok_added a = {id, 0, 0, 0};
        int special, lstrip, rstrip, single;
        if (!json_is_string(content) || json_string_length(content) == 0) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: added token %ld has no content", path,
                            (long)id);
            goto done;
        }
        if (!get_bool(v, "special", 0, &special) || !get_bool(v, "lstrip", 0, &lstrip) ||
            !get_bool(v, "rstrip", 0, &rstrip) || !get_bool(v, "single_word", 0, &single)) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: added token %ld has a non-boolean flag",
                            path, (long)id);
            goto done;
        }
        if (single) {
            st = lc_err_set(err, LC_ERR_UNSUPPORTED,
                            "%s: added token %ld '%s': single_word is not supported", path,
                            (long)id, json_string_value(content));
            goto done;
        }
        if (tok->defined[id]) {
            if (tok->piece_len[id] != json_string_length(content) ||
                memcmp(tok->pool + tok->piece_off[id], json_string_value(content),
                       tok->piece_len[id]) != 0) {
                st = lc_err_set(err, LC_ERR_FORMAT,
                                "%s: added token %ld '%s' differs from the vocabulary entry", path,
                                (long)id, json_string_value(content));
                goto done;
            }
        } else {
            st = lc_tok_set_piece(tok, id, json_string_value(content), json_string_length(content),
                                  err);
            if (st != LC_OK) {
                lc_err_prefix(err, "%s", path);
                goto done;
            }
        }
        tok->type[id] = special ? LC_TOKT_CONTROL : LC_TOKT_USER_DEFINED;
        a.special = (uint8_t)special;
        a.lstrip = (uint8_t)lstrip;
        a.rstrip = (uint8_t)rstrip;
        st = lc_tok_add_added(tok, &a, err);
        if (st != LC_OK) {
            goto done;
        }
    }
    st = lc_tok_build_index(tok, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", path);
        goto done;
    }

    /* model options */
    if (!get_bool(model, "byte_fallback", 0, &tok->byte_fallback) ||
        !get_bool(model, "fuse_unk", 0, &tok->fuse_unk) ||
        !get_bool(model, "ignore_merges", 0, &tok->ignore_merges)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: a model flag is not true or false", path);
        goto done;
    }
    v = json_object_get(model, "dropout");
    if (v != NULL && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0.0)) {
        st = unsupported(path, "model option", "dropout", err);
        goto done;
    }
    if ((str_or_null(model, "continuing_subword_prefix") != NULL &&
         str_or_null(model, "continuing_subword_prefix")[0] != '\0') ||
        (str_or_null(model, "end_of_word_suffix") != NULL &&
         str_or_null(model, "end_of_word_suffix")[0] != '\0')) {
        st = unsupported(path, "model option", "subword prefix/suffix", err);
        goto done;
    }
    if (tok->byte_fallback) {
        for (int32_t id = 0; id < tok->n_vocab; id++) {
            if (tok->type[id] == LC_TOKT_NORMAL &&
                lc_tok_byte_piece(tok->pool + tok->piece_off[id], tok->piece_len[id]) >= 0) {
                tok->type[id] = LC_TOKT_BYTE;
            }
        }
    }
    unk = str_or_null(model, "unk_token");
    if (unk != NULL) {
        tok->unk = lc_tok_lookup(tok, unk, strlen(unk));
        if (tok->unk < 0) {
            st = lc_err_set(err, LC_ERR_FORMAT, "%s: unk_token '%s' is not in the vocabulary",
                            path, unk);
            goto done;
        }
        tok->type[tok->unk] = LC_TOKT_UNKNOWN;
    }

    /* pipeline */
    st = parse_normalizer(&ctx, json_object_get(root, "normalizer"), err);
    if (st == LC_OK) {
        st = parse_pretok(&ctx, json_object_get(root, "pre_tokenizer"), err);
    }
    if (st == LC_OK) {
        st = parse_decoder(&ctx, json_object_get(root, "decoder"), err);
    }
    if (st == LC_OK) {
        st = parse_post(tok, json_object_get(root, "post_processor"), path, err);
    }
    if (st != LC_OK) {
        goto done;
    }
    if (pipe.bytelevel) {
        if (pipe.metaspace || pipe.after_bytes || tok->escape_spaces ||
            tok->prefix != LC_TOKP_NONE) {
            st = lc_err_set(err, LC_ERR_UNSUPPORTED,
                            "%s: ByteLevel combined with Metaspace, \"▁\" normalizers or later "
                            "pre-tokenizers is not supported",
                            path);
            goto done;
        }
        tok->algo = LC_TOKA_BYTELEVEL;
    } else {
        if (tok->n_re > 0) {
            st = lc_err_set(err, LC_ERR_UNSUPPORTED,
                            "%s: a Split pre-tokenizer without ByteLevel is not supported", path);
            goto done;
        }
        tok->algo = LC_TOKA_SPM_RANK;
    }

    st = lc_tok_merges_alloc(tok, json_array_size(merges), err);
    if (st != LC_OK) {
        goto done;
    }
    json_array_foreach(merges, i, v) {
        st = read_merge(tok, v, (int32_t)i, path, err);
        if (st != LC_OK) {
            goto done;
        }
    }
    if (tok->bos < 0) {
        tok->bos = find_special(tok, bos_names);
    }
    tok->eos = find_special(tok, eos_names);
    st = lc_tok_finish(tok, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", path);
    }
done:
    json_decref(root);
    return st;
}

/* ---------------------------------------------------------------- encoder.json + vocab.bpe */

/* Llama 3.1 / 3.2 special tokens, ids 128000.. (as in their
 * tokenizer.json); the ones not listed are <|reserved_special_token_N|>
 * with N counting on from 2 at id 128005, then 3 at id 128011. */
static const char *llama3_named(int32_t i)
{
    switch (i) {
    case 0:
        return "<|begin_of_text|>";
    case 1:
        return "<|end_of_text|>";
    case 4:
        return "<|finetune_right_pad_id|>";
    case 6:
        return "<|start_header_id|>";
    case 7:
        return "<|end_header_id|>";
    case 8:
        return "<|eom_id|>";
    case 9:
        return "<|eot_id|>";
    case 10:
        return "<|python_tag|>";
    default:
        return NULL;
    }
}

static int llama3_reserved_index(int32_t i)
{
    if (i < 4) {
        return i - 2; /* 2, 3 -> 0, 1 */
    }
    if (i == 5) {
        return 2;
    }
    return i - 8; /* 11 -> 3, ..., 255 -> 247 */
}

#define LLAMA3_BASE 128000
#define LLAMA3_SPECIALS 256

/* encoder.json + vocab.bpe are read as Llama 3's tokenizer: the Llama 3
 * pre-tokenizer regex, ignore_merges, and, when encoder.json has exactly
 * Llama 3's 128000 entries, its 256 special tokens (which those files
 * leave out) at ids 128000..128255 with BOS 128000 and EOS 128001, as
 * Llama 3's tokenizer.json has them. */
lc_status lc_tok_load_gpt2_buf(struct lc_tokenizer *tok, const char *encoder_path,
                               const char *encoder, size_t encoder_len, const char *merges_path,
                               const char *text, size_t text_len, struct lc_error *err)
{
    json_t *root = NULL;
    json_t *v;
    json_error_t jerr;
    const char *key;
    int32_t max_id = -1;
    int32_t n;
    int llama3;
    size_t n_lines = 0;
    int32_t rank = 0;
    lc_status st = LC_OK;

    root = json_loadb(encoder, encoder_len, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %d column %d: %s", encoder_path,
                          jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root) || json_object_size(root) == 0) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: not a non-empty JSON object", encoder_path);
        goto done;
    }
    json_object_foreach(root, key, v) {
        int32_t id;
        st = read_id(v, encoder_path, key, &id, err);
        if (st != LC_OK) {
            goto done;
        }
        max_id = id > max_id ? id : max_id;
    }
    if ((size_t)max_id >= json_object_size(root)) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: token id %ld, but only %zu entries", encoder_path,
                        (long)max_id, json_object_size(root));
        goto done;
    }
    llama3 = max_id + 1 == LLAMA3_BASE && json_object_size(root) == LLAMA3_BASE;
    n = max_id + 1 + (llama3 ? LLAMA3_SPECIALS : 0);
    st = lc_tok_init(tok, n, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", encoder_path);
        goto done;
    }
    json_object_foreach(root, key, v) {
        st = lc_tok_set_piece(tok, (int32_t)json_integer_value(v), key, strlen(key), err);
        if (st != LC_OK) {
            lc_err_prefix(err, "%s", encoder_path);
            goto done;
        }
    }
    if (llama3) {
        for (int32_t i = 0; i < LLAMA3_SPECIALS; i++) {
            char name[64];
            const char *s = llama3_named(i);
            struct lc_tok_added a = {LLAMA3_BASE + i, 1, 0, 0};
            if (s == NULL) {
                snprintf(name, sizeof(name), "<|reserved_special_token_%d|>",
                         llama3_reserved_index(i));
                s = name;
            }
            st = lc_tok_set_piece(tok, LLAMA3_BASE + i, s, strlen(s), err);
            if (st == LC_OK) {
                st = lc_tok_add_added(tok, &a, err);
            }
            if (st != LC_OK) {
                goto done;
            }
            tok->type[LLAMA3_BASE + i] = LC_TOKT_CONTROL;
        }
        tok->bos = LLAMA3_BASE;
        tok->eos = LLAMA3_BASE + 1;
        tok->wants_bos = 1;
    }
    st = lc_tok_build_index(tok, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", encoder_path);
        goto done;
    }

    /* vocab.bpe: an optional "#version" line, then "left right" per line
     * in rank order */
    for (size_t i = 0; i < text_len; i++) {
        n_lines += text[i] == '\n';
    }
    st = lc_tok_merges_alloc(tok, n_lines + 1, err);
    if (st != LC_OK) {
        goto done;
    }
    {
        size_t pos = 0;
        size_t line_no = 0;
        while (pos < text_len) {
            const char *line = text + pos;
            const char *nl = memchr(line, '\n', text_len - pos);
            size_t len = nl != NULL ? (size_t)(nl - line) : text_len - pos;
            const char *sp;
            pos += len + (nl != NULL);
            line_no++;
            if (len > 0 && line[len - 1] == '\r') {
                len--;
            }
            if (len == 0 || (line_no == 1 && len >= 8 && memcmp(line, "#version", 8) == 0)) {
                continue;
            }
            sp = memchr(line, ' ', len);
            if (sp == NULL || sp == line || sp + 1 == line + len ||
                memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line)) != NULL) {
                st = lc_err_set(err, LC_ERR_FORMAT, "%s: line %zu is not two tokens", merges_path,
                                line_no);
                goto done;
            }
            st = lc_tok_add_merge(tok, line, (size_t)(sp - line), sp + 1,
                                  len - (size_t)(sp - line) - 1, rank++, err);
            if (st != LC_OK) {
                lc_err_prefix(err, "%s: line %zu", merges_path, line_no);
                goto done;
            }
        }
    }
    if (rank == 0) {
        st = lc_err_set(err, LC_ERR_FORMAT, "%s: no merges", merges_path);
        goto done;
    }
    tok->algo = LC_TOKA_BYTELEVEL;
    tok->ignore_merges = 1;
    st = lc_tok_add_regex(tok, lc_tok_llama3_regex, strlen(lc_tok_llama3_regex), err);
    if (st == LC_OK) {
        st = lc_tok_finish(tok, err);
    }
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", encoder_path);
    }
done:
    json_decref(root);
    return st;
}

lc_status lc_tok_load_hf_json(struct lc_tokenizer *tok, const char *path, struct lc_error *err)
{
    char *text = NULL;
    size_t len = 0;
    lc_status st = lc_read_small_file(path, HF_JSON_MAX, &text, &len, err);
    if (st == LC_OK) {
        st = lc_tok_load_hf_json_buf(tok, path, text, len, err);
    }
    free(text);
    return st;
}

lc_status lc_tok_load_gpt2(struct lc_tokenizer *tok, const char *encoder_path,
                           const char *merges_path, struct lc_error *err)
{
    char *enc = NULL;
    char *merges = NULL;
    size_t enc_len = 0;
    size_t merges_len = 0;
    lc_status st = lc_read_small_file(encoder_path, HF_JSON_MAX, &enc, &enc_len, err);
    if (st == LC_OK) {
        st = lc_read_small_file(merges_path, HF_JSON_MAX, &merges, &merges_len, err);
    }
    if (st == LC_OK) {
        st = lc_tok_load_gpt2_buf(tok, encoder_path, enc, enc_len, merges_path, merges,
                                  merges_len, err);
    }
    free(enc);
    free(merges);
    return st;
}
