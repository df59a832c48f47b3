/*
 * Multiple-choice benchmarks scored the way lm-evaluation-harness scores
 * them: the log-likelihood of each choice's continuation given its
 * context, acc = argmax of the log-likelihoods, acc_norm = argmax of the
 * log-likelihood per character of the choice, acc_bytes per byte.  Loaders for PIQA, ARC,
 * HellaSwag (bzip2 text), WinoGrande (partial scoring) and a generic
 * JSON-lines format; prompts, few-shot examples, tokenization and batched
 * scoring.
 */
#include "config.h"

#include <bzlib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/eval.h"
#include "core/fileio.h"
#include "core/tokenizer.h"
#include "core/util.h"

/* items whose requests are tokenized, sorted and batched together */
#define CHUNK_ITEMS 64

struct mc_item {
    int n_choices;
    int gold;
    int64_t line;
    char **contexts;     /* [n_choices] */
    char **conts;        /* [n_choices] */
    size_t *norm_chars;  /* [n_choices] acc_norm's divisor */
    size_t *norm_bytes;  /* [n_choices] acc_bytes's divisor */
};

struct lc_mc_task {
    char name[32];
    char *path;
    int has_acc_norm;
    struct mc_item *items;
    int64_t n_items;
    int64_t cap;
};

/* ------------------------------------------------------------ bzip2 files */

static lc_status read_bz2(const char *path, char **data, size_t *len, struct lc_error *err)
{
    void *map = NULL;
    const char *in = NULL;
    size_t in_len = 0;
    char *out = NULL;
    size_t out_len = 0;
    size_t out_cap = 0;
    size_t pos = 0;
    lc_status rc = LC_OK;

    rc = lc_map_file(path, &map, &in_len, err);
    if (rc != LC_OK) {
        return rc;
    }
    in = map;
    /* one stream after the other, as bzip2 -d does with concatenated files */
    while (pos < in_len) {
        bz_stream bz;
        int brc;

        memset(&bz, 0, sizeof(bz));
        if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: cannot start bzip2 decompression", path);
            goto done;
        }
        bz.next_in = (char *)map + pos; /* bzlib only reads it */
        bz.avail_in = (unsigned)(in_len - pos > 0x40000000u ? 0x40000000u : in_len - pos);
        for (;;) {
            unsigned before_in;
            if (out_cap - out_len < 65536 + 1) {
                size_t want;
                char *grown;
                if (!lc_add_size(out_cap, out_cap / 2 + 65536 + 1, &want)) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: file too large", path);
                    break;
                }
                grown = realloc(out, want);
                if (grown == NULL) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory decompressing", path);
                    break;
                }
                out = grown;
                out_cap = want;
            }
            if (bz.avail_in == 0 && (size_t)(bz.next_in - in) < in_len) {
                size_t left = in_len - (size_t)(bz.next_in - in);
                bz.avail_in = (unsigned)(left > 0x40000000u ? 0x40000000u : left);
            }
            before_in = bz.avail_in;
            bz.next_out = out + out_len;
            bz.avail_out = (unsigned)(out_cap - out_len - 1 > 0x40000000u
                                          ? 0x40000000u
                                          : out_cap - out_len - 1);
            {
                unsigned before_out = bz.avail_out;
                brc = BZ2_bzDecompress(&bz);
                out_len += before_out - bz.avail_out;
                if (brc == BZ_STREAM_END) {
                    break;
                }
                if (brc == BZ_MEM_ERROR) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory decompressing", path);
                    break;
                }
                if (brc != BZ_OK) {
                    rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt bzip2 data (%s)", path,
                                    brc == BZ_DATA_ERROR_MAGIC ? "bad magic number"
                                    : brc == BZ_DATA_ERROR     ? "checksum or data error"
                                                               : "decompression error");
                    break;
                }
                /* all input used, room left for output, and no end of stream */
                if (bz.avail_in == 0 && (size_t)(bz.next_in - in) >= in_len &&
                    bz.avail_out > 0) {
                    rc = lc_err_set(err, LC_ERR_FORMAT,
                                    "%s: truncated bzip2 data (the stream ends early)", path);
                    break;
                }
                if (before_in == bz.avail_in && before_out == bz.avail_out) {
                    rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt bzip2 data (no progress)",
                                    path);
                    break;
                }
            }
        }
        pos = (size_t)(bz.next_in - in);
        BZ2_bzDecompressEnd(&bz);
        if (rc != LC_OK) {
            goto done;
        }
        /* trailing zero padding (as tape archives leave) is not a stream */
        while (pos < in_len && in[pos] == '\0') {
            pos++;
        }
    }
    if (out == NULL) {
        out = malloc(1);
        if (out == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    out[out_len] = '\0';
    *data = out;
    *len = out_len;
    out = NULL;

done:
    lc_unmap_file(map, in_len);
    free(out);
    return rc;
}

lc_status lc_read_maybe_bz2(const char *path, char **data, size_t *len, struct lc_error *err)
{
    char magic[4] = {0};
    size_t got = 0;
    lc_status rc;

    *data = NULL;
    *len = 0;
    rc = lc_read_file_head(path, magic, sizeof(magic), &got, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* "BZh" and the block size digit */
    if (got == 4 && memcmp(magic, "BZh", 3) == 0 && magic[3] >= '1' && magic[3] <= '9') {
        return read_bz2(path, data, len, err);
    }
    return lc_read_text_file(path, data, len, err);
}

/* ------------------------------------------------------------------ tasks */

static void free_item(struct mc_item *it)
{
    for (int c = 0; c < it->n_choices; c++) {
        if (it->contexts != NULL) {
            free(it->contexts[c]);
        }
        if (it->conts != NULL) {
            free(it->conts[c]);
        }
    }
    free(it->contexts);
    free(it->conts);
    free(it->norm_chars);
    free(it->norm_bytes);
}

LC_API void lc_mc_task_free(struct lc_mc_task *t)
{
    if (t == NULL) {
        return;
    }
    for (int64_t i = 0; i < t->n_items; i++) {
        free_item(&t->items[i]);
    }
    free(t->items);
    free(t->path);
    free(t);
}

/* A new item with n_choices empty slots, owned by the task from now on. */
static lc_status add_item(struct lc_mc_task *t, int n_choices, int gold, int64_t line,
                          struct mc_item **out, struct lc_error *err)
{
    struct mc_item *it;

    if (t->n_items == t->cap) {
        int64_t cap = t->cap == 0 ? 256 : t->cap * 2;
        struct mc_item *grown = realloc(t->items, (size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory for %lld items", t->path,
                              (long long)cap);
        }
        t->items = grown;
        t->cap = cap;
    }
    it = &t->items[t->n_items++];
    memset(it, 0, sizeof(*it));
    it->n_choices = n_choices;
    it->gold = gold;
    it->line = line;
    it->contexts = calloc((size_t)n_choices, sizeof(char *));
    it->conts = calloc((size_t)n_choices, sizeof(char *));
    it->norm_chars = calloc((size_t)n_choices, sizeof(size_t));
    it->norm_bytes = calloc((size_t)n_choices, sizeof(size_t));
    if (it->contexts == NULL || it->conts == NULL || it->norm_chars == NULL ||
        it->norm_bytes == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", t->path);
    }
    *out = it;
    return LC_OK;
}

/* a + b (either may be NULL for ""), malloc'd */
static char *concat(const char *a, size_t na, const char *b, size_t nb)
{
    char *s = malloc(na + nb + 1);
    if (s == NULL) {
        return NULL;
    }
    if (na > 0) {
        memcpy(s, a, na);
    }
    if (nb > 0) {
        memcpy(s + na, b, nb);
    }
    s[na + nb] = '\0';
    return s;
}

/* The length of a choice as Python's len() counts the str: characters
 * (code points; a byte that is not valid UTF-8 counts as one).  Dividing
 * by it is lm-evaluation-harness's acc_norm, by the bytes its acc_bytes. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        size_t len = lc_tok_utf8_len((const unsigned char *)s + i, n - i, &cp);
        i += len > 0 ? len : 1;
    }
    return count;
}

/* Choice c: context, and " " + text as the continuation (the harness's
 * target delimiter); acc_norm and acc_bytes count the text without the
 * space. */
static lc_status set_choice(struct lc_mc_task *t, struct mc_item *it, int c, const char *ctx,
                            size_t ctx_len, const char *text, size_t text_len,
                            struct lc_error *err)
{
    if (text_len == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: choice %d is empty", t->path,
                          (long long)it->line, c);
    }
    it->contexts[c] = concat(ctx, ctx_len, NULL, 0);
    it->conts[c] = concat(" ", 1, text, text_len);
    it->norm_chars[c] = utf8_chars(text, text_len);
    it->norm_bytes[c] = text_len;
    if (it->contexts[c] == NULL || it->conts[c] == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", t->path);
    }
    return LC_OK;
}

/* Lines of a text buffer: '\n'-separated, a trailing '\r' dropped. */
struct line_iter {
    const char *p;
    const char *end;
    int64_t line; /* number of the line last returned */
};

static int next_line(struct line_iter *it, const char **s, size_t *len)
{
    const char *nl;

    if (it->p >= it->end) {
        return 0;
    }
    nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    if (nl == NULL) {
        nl = it->end;
    }
    *s = it->p;
    *len = (size_t)(nl - it->p);
    if (*len > 0 && (*s)[*len - 1] == '\r') {
        (*len)--;
    }
    it->p = nl < it->end ? nl + 1 : it->end;
    it->line++;
    return 1;
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') {
            return 0;
        }
    }
    return 1;
}

/* One JSON object from a line; errors name the file and line. */
static lc_status parse_object(const char *path, int64_t line, const char *s, size_t len,
                              json_t **out, struct lc_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);

    *out = NULL;
    if (obj == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: invalid JSON: %s", path,
                          (long long)line, jerr.text);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: expected a JSON object", path,
                          (long long)line);
    }
    *out = obj;
    return LC_OK;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

static lc_status get_str(const json_t *obj, const char *key, const char *path, int64_t line,
                         const char **s, size_t *len, struct lc_error *err)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: missing field \"%s\"", path,
                          (long long)line, key);
    }
    if (!json_is_string(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: field \"%s\" is %s, not a string",
                          path, (long long)line, key, type_name(v));
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return LC_OK;
}

/* An array of n >= 1 strings (choices); each must be non-empty. */
static lc_status get_str_array(const json_t *obj, const char *key, const char *path,
                               int64_t line, const json_t **arr, struct lc_error *err)
{
    const json_t *v = json_object_get(obj, key);
    size_t n;

    if (v == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: missing field \"%s\"", path,
                          (long long)line, key);
    }
    if (!json_is_array(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: field \"%s\" is %s, not an array",
                          path, (long long)line, key, type_name(v));
    }
    n = json_array_size(v);
    if (n == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: field \"%s\" is an empty array",
                          path, (long long)line, key);
    }
    if (n > 1000) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: field \"%s\" has %zu entries (at most 1000)", path,
                          (long long)line, key, n);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: line %lld: \"%s\"[%zu] is %s, not a string", path,
                              (long long)line, key, i, type_name(e));
        }
        if (json_string_length(e) == 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: \"%s\"[%zu] is empty", path,
                              (long long)line, key, i);
        }
    }
    *arr = v;
    return LC_OK;
}

static lc_status get_gold(const json_t *obj, const char *key, int n_choices, const char *path,
                          int64_t line, int *gold, struct lc_error *err)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: missing field \"%s\"", path,
                          (long long)line, key);
    }
    if (!json_is_integer(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: field \"%s\" is %s, not an integer",
                          path, (long long)line, key, type_name(v));
    }
    if (json_integer_value(v) < 0 || json_integer_value(v) >= n_choices) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: \"%s\" is %lld, out of range for %d choices (0 to %d)",
                          path, (long long)line, key, (long long)json_integer_value(v), n_choices,
                          n_choices - 1);
    }
    *gold = (int)json_integer_value(v);
    return LC_OK;
}

/* The non-blank lines of a JSON-lines file, one object at a time. */
typedef lc_status (*object_fn)(struct lc_mc_task *t, const json_t *obj, int64_t line,
                               void *user, struct lc_error *err);

static lc_status for_each_object(struct lc_mc_task *t, const char *data, size_t len,
                                 object_fn fn, void *user, struct lc_error *err)
{
    struct line_iter it = {data, data + len, 0};
    const char *s;
    size_t n;

    while (next_line(&it, &s, &n)) {
        json_t *obj = NULL;
        lc_status rc;
        if (is_blank(s, n)) {
            continue;
        }
        rc = parse_object(t->path, it.line, s, n, &obj, err);
        if (rc == LC_OK) {
            rc = fn(t, obj, it.line, user, err);
        }
        json_decref(obj);
        if (rc != LC_OK) {
            return rc;
        }
    }
    return LC_OK;
}

/* --- PIQA: {goal, sol1, sol2} + a labels file of 0/1 lines */

struct piqa_labels {
    const char *path;
    struct line_iter it;
};

static lc_status piqa_item(struct lc_mc_task *t, const json_t *obj, int64_t line, void *user,
                           struct lc_error *err)
{
    struct piqa_labels *lab = user;
    const char *goal;
    const char *sol[2];
    size_t goal_len;
    size_t sol_len[2];
    const char *s = NULL;
    size_t n = 0;
    char *ctx = NULL;
    struct mc_item *it = NULL;
    int gold;
    lc_status rc;

    rc = get_str(obj, "goal", t->path, line, &goal, &goal_len, err);
    if (rc == LC_OK) {
        rc = get_str(obj, "sol1", t->path, line, &sol[0], &sol_len[0], err);
    }
    if (rc == LC_OK) {
        rc = get_str(obj, "sol2", t->path, line, &sol[1], &sol_len[1], err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    if (!next_line(&lab->it, &s, &n)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: no label for the item at %s line %lld (the labels "
                          "file is shorter than the task)",
                          lab->path, (long long)lab->it.line + 1, t->path, (long long)line);
    }
    if (n == 1 && (s[0] == '0' || s[0] == '1')) {
        gold = s[0] - '0';
    } else {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: label \"%.*s\" is not 0 or 1",
                          lab->path, (long long)lab->it.line, (int)(n > 40 ? 40 : n), s);
    }
    rc = add_item(t, 2, gold, line, &it, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* "Question: {goal}\nAnswer:" */
    ctx = malloc(goal_len + 32);
    if (ctx == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", t->path);
    }
    memcpy(ctx, "Question: ", 10);
    memcpy(ctx + 10, goal, goal_len);
    memcpy(ctx + 10 + goal_len, "\nAnswer:", 9);
    for (int c = 0; c < 2 && rc == LC_OK; c++) {
        rc = set_choice(t, it, c, ctx, goal_len + 18, sol[c], sol_len[c], err);
    }
    free(ctx);
    return rc;
}

static lc_status piqa_labels_path(const char *path, char **out, struct lc_error *err)
{
    size_t n = strlen(path);
    const size_t ext = strlen(".jsonl");

    if (n > ext && strcmp(path + n - ext, ".jsonl") == 0) {
        n -= ext;
    }
    *out = malloc(n + sizeof("-labels.lst"));
    if (*out == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    memcpy(*out, path, n);
    memcpy(*out + n, "-labels.lst", sizeof("-labels.lst"));
    return LC_OK;
}

static lc_status load_piqa(struct lc_mc_task *t, const char *data, size_t len,
                           struct lc_error *err)
{
    struct piqa_labels lab;
    char *lpath = NULL;
    char *ldata = NULL;
    size_t llen = 0;
    const char *s;
    size_t n;
    lc_status rc;

    rc = piqa_labels_path(t->path, &lpath, err);
    if (rc == LC_OK) {
        rc = lc_read_text_file(lpath, &ldata, &llen, err);
    }
    if (rc != LC_OK) {
        goto done;
    }
    lab.path = lpath;
    lab.it.p = ldata;
    lab.it.end = ldata + llen;
    lab.it.line = 0;
    rc = for_each_object(t, data, len, piqa_item, &lab, err);
    if (rc != LC_OK) {
        goto done;
    }
    /* nothing but blank lines may follow the last label */
    while (next_line(&lab.it, &s, &n)) {
        if (!is_blank(s, n)) {
            rc = lc_err_set(err, LC_ERR_FORMAT,
                            "%s: line %lld: more labels than items in %s (%lld)", lpath,
                            (long long)lab.it.line, t->path, (long long)t->n_items);
            goto done;
        }
    }

done:
    free(lpath);
    free(ldata);
    return rc;
}

/* --- ARC: {question, choices: {text[], label[]}, answerKey} */

static lc_status arc_item(struct lc_mc_task *t, const json_t *obj, int64_t line, void *user,
                          struct lc_error *err)
{
    const char *q;
    size_t q_len;
    const char *key;
    size_t key_len;
    const json_t *choices;
    const json_t *text = NULL;
    const json_t *label = NULL;
    struct mc_item *it = NULL;
    char *ctx = NULL;
    size_t n;
    int gold = -1;
    lc_status rc;

    (void)user;
    rc = get_str(obj, "question", t->path, line, &q, &q_len, err);
    if (rc == LC_OK) {
        rc = get_str(obj, "answerKey", t->path, line, &key, &key_len, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    choices = json_object_get(obj, "choices");
    if (!json_is_object(choices)) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: field \"choices\" is %s, not an object with \"text\" "
                          "and \"label\"",
                          t->path, (long long)line, choices == NULL ? "missing" : type_name(choices));
    }
    rc = get_str_array(choices, "text", t->path, line, &text, err);
    if (rc == LC_OK) {
        rc = get_str_array(choices, "label", t->path, line, &label, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    n = json_array_size(text);
    if (json_array_size(label) != n) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: %zu choice texts but %zu labels", t->path,
                          (long long)line, n, json_array_size(label));
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(json_string_value(json_array_get(label, i)), key) == 0) {
            gold = (int)i;
            break;
        }
    }
    if (gold < 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: answerKey \"%s\" is not one of the choice labels",
                          t->path, (long long)line, key);
    }
    rc = add_item(t, (int)n, gold, line, &it, err);
    if (rc != LC_OK) {
        return rc;
    }
    ctx = malloc(q_len + 32);
    if (ctx == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", t->path);
    }
    memcpy(ctx, "Question: ", 10);
    memcpy(ctx + 10, q, q_len);
    memcpy(ctx + 10 + q_len, "\nAnswer:", 9);
    for (size_t c = 0; c < n && rc == LC_OK; c++) {
        const json_t *e = json_array_get(text, c);
        rc = set_choice(t, it, (int)c, ctx, q_len + 18, json_string_value(e),
                        json_string_length(e), err);
    }
    free(ctx);
    return rc;
}

/* --- WinoGrande (MosaicML schema): {context_options[], continuation, gold};
 * partial scoring: the same continuation after each option's prefix */

static lc_status winogrande_item(struct lc_mc_task *t, const json_t *obj, int64_t line,
                                 void *user, struct lc_error *err)
{
    const json_t *opts = NULL;
    const char *cont;
    size_t cont_len;
    struct mc_item *it = NULL;
    size_t n;
    int gold;
    lc_status rc;

    (void)user;
    rc = get_str_array(obj, "context_options", t->path, line, &opts, err);
    if (rc == LC_OK) {
        rc = get_str(obj, "continuation", t->path, line, &cont, &cont_len, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    n = json_array_size(opts);
    if (n < 2) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: line %lld: \"context_options\" has %zu entry; two are needed",
                          t->path, (long long)line, n);
    }
    if (cont_len == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: \"continuation\" is empty",
                          t->path, (long long)line);
    }
    rc = get_gold(obj, "gold", (int)n, t->path, line, &gold, err);
    if (rc == LC_OK) {
        rc = add_item(t, (int)n, gold, line, &it, err);
    }
    for (size_t c = 0; c < n && rc == LC_OK; c++) {
        const json_t *e = json_array_get(opts, c);
        rc = set_choice(t, it, (int)c, json_string_value(e), json_string_length(e), cont,
                        cont_len, err);
    }
    return rc;
}

/* --- generic: {context, choices[], gold}; choices are continuations as
 * written (a leading space only when the file has one) */

static lc_status generic_item(struct lc_mc_task *t, const json_t *obj, int64_t line, void *user,
                              struct lc_error *err)
{
    const char *ctx;
    size_t ctx_len;
    const json_t *choices = NULL;
    struct mc_item *it = NULL;
    size_t n;
    int gold;
    lc_status rc;

    (void)user;
    rc = get_str(obj, "context", t->path, line, &ctx, &ctx_len, err);
    if (rc == LC_OK) {
        rc = get_str_array(obj, "choices", t->path, line, &choices, err);
    }
    if (rc != LC_OK) {
        return rc;
    }
    n = json_array_size(choices);
    rc = get_gold(obj, "gold", (int)n, t->path, line, &gold, err);
    if (rc == LC_OK) {
        rc = add_item(t, (int)n, gold, line, &it, err);
    }
    for (size_t c = 0; c < n && rc == LC_OK; c++) {
        const json_t *e = json_array_get(choices, c);
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        it->contexts[c] = concat(ctx, ctx_len, NULL, 0);
        it->conts[c] = concat(s, len, NULL, 0);
        /* a leading space is the join to the context, not part of the
         * answer (the harness's target delimiter), unless it is all */
        it->norm_bytes[c] = len > 1 && s[0] == ' ' ? len - 1 : len;
        it->norm_chars[c] = utf8_chars(s + (len - it->norm_bytes[c]), it->norm_bytes[c]);
        if (it->contexts[c] == NULL || it->conts[c] == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", t->path);
        }
    }
    return rc;
}

/* --- HellaSwag, llama.cpp text format: 6 lines per item = context
 * ("activity_label: ctx", already preprocessed), gold 0-3, four endings */

static lc_status load_hellaswag(struct lc_mc_task *t, const char *data, size_t len,
                                struct lc_error *err)
{
    struct line_iter li = {data, data + len, 0};
    const char *s[6];
    size_t n[6];

    for (;;) {
        struct mc_item *it = NULL;
        int64_t first;
        int got = 0;
        int gold;
        lc_status rc;

        while (got < 6 && next_line(&li, &s[got], &n[got])) {
            got++;
        }
        first = li.line - got + 1;
        if (got == 0) {
            break;
        }
        if (got == 1 && is_blank(s[0], n[0])) {
            break; /* a final empty line */
        }
        if (got < 6) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: line %lld: the item starting here has %d of its 6 lines "
                              "(context, gold, four endings): the file is truncated",
                              t->path, (long long)first, got);
        }
        if (n[1] != 1 || s[1][0] < '0' || s[1][0] > '3') {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: line %lld: gold \"%.*s\" is not 0, 1, 2 or 3 (the item "
                              "starting at line %lld is misaligned or corrupt)",
                              t->path, (long long)first + 1, (int)(n[1] > 40 ? 40 : n[1]), s[1],
                              (long long)first);
        }
        gold = s[1][0] - '0';
        if (is_blank(s[0], n[0])) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: empty context", t->path,
                              (long long)first);
        }
        for (int k = 2; k < 6; k++) {
            if (n[k] == 0) {
                return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: empty ending", t->path,
                                  (long long)first + k);
            }
        }
        rc = add_item(t, 4, gold, first, &it, err);
        for (int c = 0; c < 4 && rc == LC_OK; c++) {
            rc = set_choice(t, it, c, s[0], n[0], s[c + 2], n[c + 2], err);
        }
        if (rc != LC_OK) {
            return rc;
        }
    }
    return LC_OK;
}

/* ----------------------------------------------------------- task loading */

struct task_spec {
    const char *name;
    const char *file; /* inside the eval folder */
};

static const struct task_spec task_specs[] = {
    {"piqa", "piqa/valid.jsonl"},
    {"arc-easy", "arc/ARC-Easy-test.jsonl"},
    {"arc-challenge", "arc/ARC-Challenge-test.jsonl"},
    {"hellaswag", "hellaswag/hellaswag_val_full.txt.bz2"},
    {"winogrande", "winogrande/winogrande.jsonl"},
    {"jsonl", NULL},
};

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* The task's file: PATH itself, or PATH/file, or PATH/eval/file. */
static lc_status resolve_path(const struct task_spec *spec, const char *path, char **out,
                              struct lc_error *err)
{
    static const char *const under[] = {"", "eval/"};
    size_t need;

    *out = NULL;
    if (spec->file == NULL || !lc_is_dir(path)) {
        *out = concat(path, strlen(path), NULL, 0);
        return *out == NULL ? lc_err_set(err, LC_ERR_NOMEM, "out of memory") : LC_OK;
    }
    need = strlen(path) + strlen(spec->file) + 8;
    for (size_t k = 0; k < sizeof(under) / sizeof(under[0]); k++) {
        char *p = malloc(need);
        if (p == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        snprintf(p, need, "%s/%s%s", path, under[k], spec->file);
        if (is_file(p)) {
            *out = p;
            return LC_OK;
        }
        free(p);
    }
    return lc_err_set(err, LC_ERR_IO, "%s: no %s in this folder or in its eval/ folder", path,
                      spec->file);
}

LC_API lc_status lc_mc_task_load(struct lc_mc_task **out, const char *name, const char *path,
                                 struct lc_error *err)
{
    const struct task_spec *spec = NULL;
    struct lc_mc_task *t = NULL;
    char *data = NULL;
    size_t len = 0;
    lc_status rc;

    *out = NULL;
    for (size_t k = 0; k < sizeof(task_specs) / sizeof(task_specs[0]); k++) {
        if (name != NULL && strcmp(name, task_specs[k].name) == 0) {
            spec = &task_specs[k];
        }
    }
    if (spec == NULL) {
        return lc_err_set(err, LC_ERR_ARG,
                          "unknown task \"%s\" (known: piqa, arc-easy, arc-challenge, hellaswag, "
                          "winogrande, jsonl)",
                          name != NULL ? name : "(null)");
    }
    if (path == NULL || path[0] == '\0') {
        return lc_err_set(err, LC_ERR_ARG, "task %s: no data path", name);
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    snprintf(t->name, sizeof(t->name), "%s", spec->name);
    t->has_acc_norm = strcmp(spec->name, "winogrande") != 0;
    rc = resolve_path(spec, path, &t->path, err);
    if (rc != LC_OK) {
        goto fail;
    }
    rc = lc_read_maybe_bz2(t->path, &data, &len, err);
    if (rc != LC_OK) {
        goto fail;
    }
    if (strcmp(spec->name, "piqa") == 0) {
        rc = load_piqa(t, data, len, err);
    } else if (strncmp(spec->name, "arc-", 4) == 0) {
        rc = for_each_object(t, data, len, arc_item, NULL, err);
    } else if (strcmp(spec->name, "hellaswag") == 0) {
        rc = load_hellaswag(t, data, len, err);
    } else if (strcmp(spec->name, "winogrande") == 0) {
        rc = for_each_object(t, data, len, winogrande_item, NULL, err);
    } else {
        rc = for_each_object(t, data, len, generic_item, NULL, err);
    }
    if (rc == LC_OK && t->n_items == 0) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: no items", t->path);
    }
    if (rc != LC_OK) {
        goto fail;
    }
    free(data);
    *out = t;
    return LC_OK;

fail:
    free(data);
    lc_mc_task_free(t);
    return rc;
}

LC_API const char *lc_mc_task_name(const struct lc_mc_task *t)
{
    return t->name;
}

LC_API const char *lc_mc_task_path(const struct lc_mc_task *t)
{
    return t->path;
}

LC_API int64_t lc_mc_task_size(const struct lc_mc_task *t)
{
    return t->n_items;
}

LC_API int lc_mc_task_has_acc_norm(const struct lc_mc_task *t)
{
    return t->has_acc_norm;
}

LC_API int64_t lc_mc_task_choices(const struct lc_mc_task *t, int64_t n_items)
{
    int64_t total = 0;

    if (n_items > t->n_items) {
        n_items = t->n_items;
    }
    for (int64_t i = 0; i < n_items; i++) {
        total += t->items[i].n_choices;
    }
    return total;
}

LC_API lc_status lc_mc_task_item(const struct lc_mc_task *t, int64_t i, struct lc_mc_item *item,
                                 struct lc_error *err)
{
    const struct mc_item *it;

    if (i < 0 || i >= t->n_items) {
        return lc_err_set(err, LC_ERR_ARG, "%s: item %lld does not exist (%lld items)", t->name,
                          (long long)i, (long long)t->n_items);
    }
    it = &t->items[i];
    item->n_choices = it->n_choices;
    item->gold = it->gold;
    item->line = it->line;
    item->contexts = (const char *const *)it->contexts;
    item->continuations = (const char *const *)it->conts;
    item->norm_chars = it->norm_chars;
    item->norm_bytes = it->norm_bytes;
    return LC_OK;
}

/* ---------------------------------------------------------------- prompts */

LC_API void lc_mc_opts_default(struct lc_mc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->shots = 0;
    o->seed = 1234;
    o->limit = 0;
    o->context = 0;
    o->batch_tokens = 2048;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

lc_status lc_mc_fewshot_draw(int64_t n_items, int64_t item, int shots, uint64_t seed,
                             int64_t *picks, struct lc_error *err)
{
    uint64_t state = seed ^ ((uint64_t)(item + 1) * 0xD1B54A32D192ED03ull);

    if (shots < 0 || (int64_t)shots > n_items - 1) {
        return lc_err_set(err, LC_ERR_ARG,
                          "%d few-shot examples asked, but the task has only %lld other items",
                          shots, (long long)(n_items - 1));
    }
    for (int k = 0; k < shots;) {
        int64_t j = (int64_t)(splitmix64(&state) % (uint64_t)(n_items - 1));
        int seen = 0;
        if (j >= item) {
            j++;
        }
        for (int q = 0; q < k; q++) {
            seen |= picks[q] == j;
        }
        if (!seen) {
            picks[k++] = j;
        }
    }
    return LC_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

LC_API lc_status lc_mc_prompt(const struct lc_mc_task *t, int64_t item, int choice,
                              const struct lc_mc_opts *o, char **context, char **continuation,
                              struct lc_error *err)
{
    const struct mc_item *it;
    int64_t *picks = NULL;
    char *ctx = NULL;
    char *cont = NULL;
    size_t len;
    size_t ctx_len;
    size_t n_space;
    lc_status rc = LC_OK;

    *context = NULL;
    *continuation = NULL;
    if (item < 0 || item >= t->n_items) {
        return lc_err_set(err, LC_ERR_ARG, "%s: item %lld does not exist (%lld items)", t->name,
                          (long long)item, (long long)t->n_items);
    }
    it = &t->items[item];
    if (choice < 0 || choice >= it->n_choices) {
        return lc_err_set(err, LC_ERR_ARG, "%s: item %lld has no choice %d", t->name,
                          (long long)item, choice);
    }
    if (o->shots > 0) {
        picks = malloc((size_t)o->shots * sizeof(int64_t));
        if (picks == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        rc = lc_mc_fewshot_draw(t->n_items, item, o->shots, o->seed, picks, err);
        if (rc != LC_OK) {
            goto done;
        }
    }
    /* examples "{context}{continuation}" of their gold choice, each
     * followed by the "\n\n" delimiter, then the item's context */
    len = strlen(it->contexts[choice]) + 1;
    for (int k = 0; k < o->shots; k++) {
        const struct mc_item *ex = &t->items[picks[k]];
        len += strlen(ex->contexts[ex->gold]) + strlen(ex->conts[ex->gold]) + 2;
    }
    ctx = malloc(len);
    if (ctx == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory for a prompt of %zu bytes", len);
        goto done;
    }
    ctx_len = 0;
    for (int k = 0; k < o->shots; k++) {
        const struct mc_item *ex = &t->items[picks[k]];
        const char *parts[3] = {ex->contexts[ex->gold], ex->conts[ex->gold], "\n\n"};
        for (int p = 0; p < 3; p++) {
            size_t n = strlen(parts[p]);
            memcpy(ctx + ctx_len, parts[p], n);
            ctx_len += n;
        }
    }
    len = strlen(it->contexts[choice]);
    memcpy(ctx + ctx_len, it->contexts[choice], len + 1);
    ctx_len += len;
    /* the harness moves the context's trailing whitespace to the front of
     * the continuation, so that it is tokenized with it */
    n_space = 0;
    while (n_space < ctx_len && is_space(ctx[ctx_len - 1 - n_space])) {
        n_space++;
    }
    cont = concat(ctx + ctx_len - n_space, n_space, it->conts[choice],
                  strlen(it->conts[choice]));
    if (cont == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    ctx[ctx_len - n_space] = '\0';
    *context = ctx;
    *continuation = cont;
    ctx = NULL;
    cont = NULL;

done:
    free(picks);
    free(ctx);
    free(cont);
    return rc;
}

/* --------------------------------------------------------------- requests */

/* Request tokens with the context cut to max_context (<= 0: no cut);
 * *truncated says whether tokens were dropped. */
static lc_status build_request(const struct lc_mc_task *t, const struct lc_tokenizer *tok,
                               int64_t item, int choice, const struct lc_mc_opts *o,
                               int max_context, int32_t **ids, int *n_ids, int *n_cont,
                               int *truncated, struct lc_error *err)
{
    const unsigned flags = lc_tokenizer_wants_bos(tok) ? LC_TOK_ADD_BOS : 0u;
    char *ctx = NULL;
    char *cont = NULL;
    char *whole_text = NULL;
    int32_t *cids = NULL;
    int32_t *wids = NULL;
    int32_t *seq = NULL;
    size_t nc = 0;
    size_t nw = 0;
    size_t ncont;
    size_t nseq;
    size_t drop = 0;
    lc_status rc;

    *ids = NULL;
    *n_ids = 0;
    *n_cont = 0;
    *truncated = 0;
    rc = lc_mc_prompt(t, item, choice, o, &ctx, &cont, err);
    if (rc != LC_OK) {
        return rc;
    }
    whole_text = concat(ctx, strlen(ctx), cont, strlen(cont));
    if (whole_text == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = lc_tokenizer_encode(tok, ctx, strlen(ctx), flags, &cids, &nc, err);
    if (rc != LC_OK) {
        goto done;
    }
    if (nc == 0) {
        /* nothing to condition on: the harness's prefix token */
        int32_t prefix = lc_tokenizer_bos(tok) >= 0 ? lc_tokenizer_bos(tok) : lc_tokenizer_eos(tok);
        if (prefix < 0) {
            rc = lc_err_set(err, LC_ERR_UNSUPPORTED,
                            "%s: item %lld has an empty context and the tokenizer has neither "
                            "BOS nor EOS to stand for it",
                            t->path, (long long)item);
            goto done;
        }
        free(cids);
        cids = malloc(sizeof(int32_t));
        if (cids == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            goto done;
        }
        cids[0] = prefix;
        nc = 1;
        rc = lc_tokenizer_encode(tok, cont, strlen(cont), 0u, &wids, &nw, err);
        ncont = nw;
    } else {
        rc = lc_tokenizer_encode(tok, whole_text, strlen(whole_text), flags, &wids, &nw, err);
        ncont = nw > nc ? nw - nc : 0;
    }
    if (rc != LC_OK) {
        goto done;
    }
    if (nc + ncont > (size_t)INT32_MAX / 2) {
        rc = lc_err_set(err, LC_ERR_ARG, "%s: item %lld: request of %zu tokens is too long",
                        t->path, (long long)item, nc + ncont);
        goto done;
    }
    nseq = nc + ncont;
    if (max_context > 0 && ncont > (size_t)max_context) {
        rc = lc_err_set(err, LC_ERR_ARG,
                        "%s: item %lld (line %lld) choice %d: the continuation has %zu tokens, "
                        "more than a context of %d tokens can hold",
                        t->path, (long long)item, (long long)t->items[item].line, choice, ncont,
                        max_context);
        goto done;
    }
    if (max_context > 0 && nseq > (size_t)max_context + 1) {
        drop = nseq - ((size_t)max_context + 1);
    }
    seq = malloc((nseq - drop) * sizeof(int32_t));
    if (seq == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* seq = (ctx ids + continuation ids)[drop:] */
    for (size_t i = drop; i < nseq; i++) {
        seq[i - drop] = i < nc ? cids[i] : wids[nw - ncont + (i - nc)];
    }
    *ids = seq;
    *n_ids = (int)(nseq - drop);
    *n_cont = (int)ncont;
    *truncated = drop > 0;
    seq = NULL;

done:
    free(ctx);
    free(cont);
    free(whole_text);
    free(cids);
    free(wids);
    free(seq);
    return rc;
}

LC_API lc_status lc_mc_request(const struct lc_mc_task *t, const struct lc_tokenizer *tok,
                               int64_t item, int choice, const struct lc_mc_opts *o,
                               int32_t **ids, int *n_ids, int *n_cont, struct lc_error *err)
{
    int truncated;
    return build_request(t, tok, item, choice, o, o->context, ids, n_ids, n_cont, &truncated,
                         err);
}

/* ------------------------------------------------------------- accuracies */

static double stderr_of(double p, int64_t n)
{
    return n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : 0.0;
}

LC_API lc_status lc_mc_accuracy(const struct lc_mc_task *t, int64_t n_items, const double *loglik,
                                struct lc_mc_result *res, struct lc_error *err)
{
    int64_t hits = 0;
    int64_t hits_norm = 0;
    int64_t hits_bytes = 0;
    int64_t off = 0;

    memset(res, 0, sizeof(*res));
    if (n_items <= 0 || n_items > t->n_items) {
        return lc_err_set(err, LC_ERR_ARG, "%s: accuracy of %lld items (the task has %lld)",
                          t->name, (long long)n_items, (long long)t->n_items);
    }
    for (int64_t i = 0; i < n_items; i++) {
        const struct mc_item *it = &t->items[i];
        const double *ll = loglik + off;
        int best = 0;
        int best_norm = 0;
        int best_bytes = 0;
        for (int c = 1; c < it->n_choices; c++) {
            /* strict >: ties go to the first choice, as numpy's argmax */
            if (ll[c] > ll[best]) {
                best = c;
            }
            if (ll[c] / (double)it->norm_chars[c] >
                ll[best_norm] / (double)it->norm_chars[best_norm]) {
                best_norm = c;
            }
            if (ll[c] / (double)it->norm_bytes[c] >
                ll[best_bytes] / (double)it->norm_bytes[best_bytes]) {
                best_bytes = c;
            }
        }
        hits += best == it->gold;
        hits_norm += best_norm == it->gold;
        hits_bytes += best_bytes == it->gold;
        off += it->n_choices;
    }
    res->n_items = n_items;
    res->n_requests = off;
    res->acc = (double)hits / (double)n_items;
    res->acc_stderr = stderr_of(res->acc, n_items);
    res->has_acc_norm = t->has_acc_norm;
    /* without acc_norm (all continuations alike) it and acc_bytes are acc */
    res->acc_norm = t->has_acc_norm ? (double)hits_norm / (double)n_items : res->acc;
    res->acc_norm_stderr = stderr_of(res->acc_norm, n_items);
    res->acc_bytes = t->has_acc_norm ? (double)hits_bytes / (double)n_items : res->acc;
    res->acc_bytes_stderr = stderr_of(res->acc_bytes, n_items);
    return LC_OK;
}

/* ---------------------------------------------------------------- scoring */

struct request {
    int32_t *ids;
    int n;      /* tokens */
    int n_cont; /* the last n_cont are scored */
    int64_t slot;
};

/* longest first, then in order: batches of similar length, reproducibly */
static int by_length(const void *a, const void *b)
{
    const struct request *x = a;
    const struct request *y = b;
    if (x->n != y->n) {
        return x->n > y->n ? -1 : 1;
    }
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Scores reqs[0..n) in batches of at most batch_tokens rows (one request
 * alone when it is longer): loglik[slot] = -sum of the scored NLLs. */
static lc_status score_requests(struct lc_model *m, struct request *reqs, int64_t n,
                                int batch_tokens, double *loglik, struct lc_error *err)
{
    int32_t *in = NULL;
    int32_t *tg = NULL;
    float *nll = NULL;
    size_t cap = 0;
    lc_status rc = LC_OK;

    qsort(reqs, (size_t)n, sizeof(*reqs), by_length);
    for (int64_t k = 0; k < n;) {
        const int T = reqs[k].n - 1; /* the longest of the batch: inputs are all but the last */
        int B = 1;
        size_t rows;

        while (k + B < n && (int64_t)(B + 1) * T <= batch_tokens) {
            B++;
        }
        rows = (size_t)B * (size_t)T;
        if (rows > cap) {
            free(in);
            free(tg);
            free(nll);
            in = malloc(rows * sizeof(int32_t));
            tg = malloc(rows * sizeof(int32_t));
            nll = malloc(rows * sizeof(float));
            cap = rows;
            if (in == NULL || tg == NULL || nll == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory for a batch of %zu tokens",
                                rows);
                goto done;
            }
        }
        /* [B, T]: request b in row b, padded at the end (causal attention:
         * the padding changes nothing before it) and not scored there */
        for (int b = 0; b < B; b++) {
            const struct request *r = &reqs[k + b];
            int32_t *row_in = in + (size_t)b * T;
            int32_t *row_tg = tg + (size_t)b * T;
            for (int p = 0; p < T; p++) {
                row_in[p] = p < r->n - 1 ? r->ids[p] : r->ids[r->n - 1];
                row_tg[p] = p >= r->n - 1 - r->n_cont && p < r->n - 1 ? r->ids[p + 1] : -1;
            }
        }
        rc = lc_model_nll(m, in, tg, B, T, nll, err);
        if (rc != LC_OK) {
            goto done;
        }
        for (int b = 0; b < B; b++) {
            const struct request *r = &reqs[k + b];
            const float *row = nll + (size_t)b * T;
            double sum = 0.0;
            for (int p = r->n - 1 - r->n_cont; p < r->n - 1; p++) {
                sum += row[p];
            }
            if (!isfinite(sum)) {
                rc = lc_err_set(err, LC_ERR_NUMERIC, "a log-likelihood is not finite (%g)", -sum);
                goto done;
            }
            loglik[r->slot] = -sum;
        }
        k += B;
    }

done:
    free(in);
    free(tg);
    free(nll);
    return rc;
}

LC_API lc_status lc_mc_evaluate(struct lc_model *m, const struct lc_tokenizer *tok,
                                const struct lc_mc_task *t, const struct lc_mc_opts *o,
                                lc_progress_fn progress, void *user, double *loglik,
                                struct lc_mc_result *res, struct lc_error *err)
{
    const struct lc_model_config *cfg = lc_model_get_config(m);
    int64_t n_items = o->limit > 0 && o->limit < t->n_items ? o->limit : t->n_items;
    int64_t n_total = lc_mc_task_choices(t, n_items);
    int max_context = o->context > 0                       ? o->context
                      : cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings
                                                         : 2048;
    int batch_tokens = o->batch_tokens > 0 ? o->batch_tokens : 2048;
    double *ll = loglik;
    double *own = NULL;
    struct request *reqs = NULL;
    int64_t n_reqs = 0;
    int64_t n_truncated = 0;
    int64_t slot = 0;
    lc_status rc = LC_OK;

    memset(res, 0, sizeof(*res));
    if (o->shots < 0) {
        return lc_err_set(err, LC_ERR_ARG, "negative number of few-shot examples (%d)", o->shots);
    }
    if (ll == NULL) {
        own = malloc((size_t)n_total * sizeof(double));
        if (own == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        ll = own;
    }
    {
        /* room for the chunk with the most choices */
        int64_t most = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < n_items; i++) {
            n = (i % CHUNK_ITEMS == 0 ? 0 : n) + t->items[i].n_choices;
            most = n > most ? n : most;
        }
        reqs = calloc((size_t)most, sizeof(*reqs));
    }
    if (reqs == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i0 = 0; i0 < n_items; i0 += CHUNK_ITEMS) {
        int64_t i1 = i0 + CHUNK_ITEMS < n_items ? i0 + CHUNK_ITEMS : n_items;
        n_reqs = 0;
        for (int64_t i = i0; i < i1; i++) {
            for (int c = 0; c < t->items[i].n_choices; c++) {
                struct request *r = &reqs[n_reqs];
                int truncated = 0;
                rc = build_request(t, tok, i, c, o, max_context, &r->ids, &r->n, &r->n_cont,
                                   &truncated, err);
                if (rc != LC_OK) {
                    goto done;
                }
                n_truncated += truncated;
                r->slot = slot++;
                if (r->n_cont == 0) {
                    ll[r->slot] = 0.0; /* nothing to score, as in the harness */
                    free(r->ids);
                    r->ids = NULL;
                    continue;
                }
                n_reqs++;
            }
        }
        rc = score_requests(m, reqs, n_reqs, batch_tokens, ll, err);
        if (rc != LC_OK) {
            goto done;
        }
        for (int64_t k = 0; k < n_reqs; k++) {
            free(reqs[k].ids);
            reqs[k].ids = NULL;
        }
        n_reqs = 0;
        if (progress != NULL && progress(i1, n_items, user) != 0) {
            rc = lc_err_set(err, LC_ERR_INTERRUPTED, "%s: stopped after %lld of %lld items",
                            t->name, (long long)i1, (long long)n_items);
            goto done;
        }
    }
    rc = lc_mc_accuracy(t, n_items, ll, res, err);
    res->n_truncated = n_truncated;
    res->context = max_context;

done:
    if (reqs != NULL) {
        for (int64_t k = 0; k < n_reqs; k++) {
            free(reqs[k].ids);
        }
    }
    free(reqs);
    free(own);
    return rc;
}
