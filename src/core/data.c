/*
 * The data pipeline: plain text, {"text"} records and Alpaca instruction
 * records, read (gzip or not), checked, tokenized, split into train and
 * held-out parts, and packed into fixed-length chunks.
 *
 * The token layout follows the reference code (method doc section 4.3):
 * an Alpaca record becomes BOS + encode(prompt) with labels -100, then
 * encode(output) + EOS with labels equal to the ids; prompt and answer are
 * tokenized separately.  Special-token text inside the data ("</s>") is
 * encoded as plain text: EOS is appended as an id, not as a string.
 *
 * A dataset keeps one stream in file order; each split is a contiguous
 * range of it (records: the held-out records come first, and LC_SPLIT_ALL
 * is the whole stream).  Plain text cut in two also gets a third range: the
 * whole text tokenized as one stream with one BOS, which is what
 * LC_SPLIT_ALL means for a text (perplexity of a whole file).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/data.h"
#include "core/util.h"

#define UTF8_BOM "\xef\xbb\xbf"

struct lc_dataset {
    struct lc_data_stats stats;
    int32_t *ids;    /* [n] every sample, in file order */
    int32_t *labels; /* [n] */
    size_t n;
    size_t cap;
    size_t off[3];   /* LC_SPLIT_TRAIN, LC_SPLIT_VAL, LC_SPLIT_ALL: range in ids/labels */
    size_t len[3];
};

int64_t lc_dataset_distinct_tokens(const struct lc_dataset *ds)
{
    int32_t top = 0;
    unsigned char *seen;
    int64_t count = 0;

    for (size_t i = 0; i < ds->n; i++) {
        top = ds->ids[i] > top ? ds->ids[i] : top;
    }
    seen = calloc((size_t)top + 1, 1);
    if (seen == NULL) {
        return 0;
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->ids[i] >= 0 && !seen[ds->ids[i]]) {
            seen[ds->ids[i]] = 1;
            count++;
        }
    }
    free(seen);
    return count;
}

LC_API void lc_data_opts_default(struct lc_data_opts *o)
{
    o->format = LC_DATA_AUTO;
    o->val_fraction = 0.1;
    o->val_records = 200;
}

/* ------------------------------------------------------------------------ */
/* Detection and the plain-text split                                        */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_space(s[i])) {
            return 0;
        }
    }
    return 1;
}

static size_t bom_len(const char *data, size_t len)
{
    return len >= 3 && memcmp(data, UTF8_BOM, 3) == 0 ? 3 : 0;
}

enum lc_data_container lc_data_detect(const char *data, size_t len)
{
    for (size_t i = bom_len(data, len); i < len; i++) {
        if (is_space(data[i])) {
            continue;
        }
        if (data[i] == '[') {
            return LC_CONTAINER_ARRAY;
        }
        if (data[i] == '{') {
            return LC_CONTAINER_LINES;
        }
        return LC_CONTAINER_TEXT;
    }
    return LC_CONTAINER_EMPTY;
}

size_t lc_data_text_cut(const char *data, size_t len, double val_fraction)
{
    double at = floor((1.0 - val_fraction) * (double)len);
    size_t cut;

    if (!(at > 0.0)) {
        return 0;
    }
    if (at >= (double)len) {
        return len;
    }
    cut = (size_t)at;
    /* move forward to a line start */
    while (cut < len && data[cut - 1] != '\n') {
        cut++;
    }
    return cut;
}

/* ------------------------------------------------------------------------ */
/* Alpaca prompts                                                            */

lc_status lc_alpaca_prompt(const char *instruction, size_t instruction_len, const char *input,
                           size_t input_len, char **out, size_t *out_len)
{
    static const char head_in[] = LC_ALPACA_HEAD_INPUT;
    static const char head_no[] = LC_ALPACA_HEAD_NO_INPUT;
    static const char mid[] = LC_ALPACA_MID_INPUT;
    static const char tail[] = LC_ALPACA_TAIL;
    const char *parts[5];
    size_t lens[5];
    int n_parts = 0;
    size_t total = 0;
    char *buf = NULL;
    char *p = NULL;

    if (input_len > 0) {
        parts[0] = head_in;
        lens[0] = sizeof(head_in) - 1;
        parts[1] = instruction;
        lens[1] = instruction_len;
        parts[2] = mid;
        lens[2] = sizeof(mid) - 1;
        parts[3] = input;
        lens[3] = input_len;
        parts[4] = tail;
        lens[4] = sizeof(tail) - 1;
        n_parts = 5;
    } else {
        parts[0] = head_no;
        lens[0] = sizeof(head_no) - 1;
        parts[1] = instruction;
        lens[1] = instruction_len;
        parts[2] = tail;
        lens[2] = sizeof(tail) - 1;
        n_parts = 3;
    }
    for (int i = 0; i < n_parts; i++) {
        if (!lc_add_size(total, lens[i], &total)) {
            return LC_ERR_NOMEM;
        }
    }
    if (!lc_add_size(total, 1, &total)) {
        return LC_ERR_NOMEM;
    }
    buf = malloc(total);
    if (buf == NULL) {
        return LC_ERR_NOMEM;
    }
    p = buf;
    for (int i = 0; i < n_parts; i++) {
        if (lens[i] > 0) {
            memcpy(p, parts[i], lens[i]);
        }
        p += lens[i];
    }
    *p = '\0';
    *out = buf;
    *out_len = total - 1;
    return LC_OK;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */

struct parse_state {
    const char *path;
    int in_array;
    enum lc_data_format kind;   /* forced, or set by the first record when AUTO */
    int kind_forced;
    int64_t first_kind_index;   /* record that set kind (AUTO) */
    lc_data_record_fn fn;
    void *user;
    int64_t records;
    int64_t skipped;
};

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "of an unknown type";
}

/* "path: line L" or "path: record N (line L)"; N counts from 1 */
static void where(const struct parse_state *st, int64_t index, int64_t line, char *buf,
                  size_t size)
{
    if (st->in_array) {
        snprintf(buf, size, "%s: record %lld (line %lld)", st->path, (long long)(index + 1),
                 (long long)line);
    } else {
        snprintf(buf, size, "%s: line %lld", st->path, (long long)line);
    }
}

/* a string field: 1 found, 0 absent, error when present but not a string */
static lc_status get_string(const json_t *obj, const char *key, const char *at,
                            struct lc_data_str *out, int *found, struct lc_error *err)
{
    const json_t *v = json_object_get(obj, key);

    out->s = "";
    out->len = 0;
    *found = 0;
    if (v == NULL) {
        return LC_OK;
    }
    if (!json_is_string(v)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: field \"%s\" is %s, not a string", at, key,
                          json_type_name(v));
    }
    out->s = json_string_value(v);
    out->len = json_string_length(v);
    *found = 1;
    return LC_OK;
}

static const char *kind_name(enum lc_data_format kind)
{
    return kind == LC_DATA_ALPACA ? "an Alpaca record (instruction/output)"
                                  : "a {\"text\"} record";
}

static lc_status take_record(struct parse_state *st, const json_t *obj, int64_t index,
                             int64_t line, struct lc_error *err)
{
    char at[LC_ERROR_MSG_MAX];
    struct lc_data_record rec;
    enum lc_data_format kind;
    int found = 0;
    lc_status rc;

    where(st, index, line, at, sizeof(at));
    st->records++;
    if (!json_is_object(obj)) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: expected a JSON object, found %s", at,
                          json_type_name(obj));
    }

    if (st->kind_forced) {
        kind = st->kind;
    } else {
        int alpaca = json_object_get(obj, "instruction") != NULL ||
                     json_object_get(obj, "output") != NULL;
        int text = json_object_get(obj, "text") != NULL;
        if (alpaca && text) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: record has both Alpaca fields (instruction/output) and "
                              "\"text\"; choose the format explicitly",
                              at);
        }
        if (!alpaca && !text) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: record has neither \"instruction\" and \"output\" (Alpaca) "
                              "nor \"text\"",
                              at);
        }
        kind = alpaca ? LC_DATA_ALPACA : LC_DATA_JSONL_TEXT;
        if (st->kind == LC_DATA_AUTO) {
            st->kind = kind;
            st->first_kind_index = index;
        } else if (kind != st->kind) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: %s, but record %lld was %s: mixed record formats", at,
                              kind_name(kind), (long long)(st->first_kind_index + 1),
                              kind_name(st->kind));
        }
    }

    memset(&rec, 0, sizeof(rec));
    rec.index = index;
    rec.line = line;
    rec.kind = kind;
    rec.instruction.s = rec.input.s = rec.output.s = rec.text.s = "";
    if (kind == LC_DATA_ALPACA) {
        rc = get_string(obj, "instruction", at, &rec.instruction, &found, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (!found) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: missing field \"instruction\"", at);
        }
        /* as the reference code: a missing input is an empty one */
        rc = get_string(obj, "input", at, &rec.input, &found, err);
        if (rc != LC_OK) {
            return rc;
        }
        rc = get_string(obj, "output", at, &rec.output, &found, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (!found) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: missing field \"output\"", at);
        }
        /* a prompt without an answer teaches nothing but EOS */
        if (is_blank(rec.output.s, rec.output.len)) {
            lc_log(LC_LOG_WARN, "%s: empty \"output\": record skipped", at);
            st->skipped++;
            return LC_OK;
        }
    } else {
        rc = get_string(obj, "text", at, &rec.text, &found, err);
        if (rc != LC_OK) {
            return rc;
        }
        if (!found) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: missing field \"text\"", at);
        }
        if (is_blank(rec.text.s, rec.text.len)) {
            lc_log(LC_LOG_WARN, "%s: empty \"text\": record skipped", at);
            st->skipped++;
            return LC_OK;
        }
    }
    return st->fn(&rec, st->user, err);
}

/* JSON with NUL characters allowed (strings carry their length) and
 * duplicate keys refused (which one counts would be a guess) */
#define JSON_FLAGS (JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

static lc_status parse_lines(struct parse_state *st, const char *data, size_t len,
                             struct lc_error *err)
{
    const char *p = data;
    const char *end = data + len;
    int64_t line = 1;
    int64_t index = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *q = nl != NULL ? nl : end;
        if (!is_blank(p, (size_t)(q - p))) {
            json_error_t jerr;
            json_t *obj = json_loadb(p, (size_t)(q - p), JSON_FLAGS, &jerr);
            lc_status rc;
            if (obj == NULL) {
                /* stopped by the end of the line: perhaps a record spread
                 * over several lines */
                const char *hint = jerr.position >= 0 && (size_t)jerr.position >= (size_t)(q - p)
                                       ? " (JSON lines hold one whole record per line)"
                                       : "";
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: line %lld, column %d: invalid JSON: %s%s", st->path,
                                  (long long)line, jerr.column, jerr.text, hint);
            }
            rc = take_record(st, obj, index, line, err);
            json_decref(obj);
            if (rc != LC_OK) {
                return rc;
            }
            index++;
        }
        line++;
        p = q + 1;
    }
    return LC_OK;
}

/* lines in [from, to) */
static int64_t count_lines(const char *from, const char *to)
{
    int64_t n = 0;
    for (const char *p = from; p < to; p++) {
        n += *p == '\n';
    }
    return n;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p)) {
        p++;
    }
    return p;
}

/* A JSON array, one element at a time, so that each record is known by
 * its index and line and the whole document never sits in memory as a
 * tree. */
static lc_status parse_array(struct parse_state *st, const char *data, size_t len,
                             struct lc_error *err)
{
    const char *end = data + len;
    const char *p = skip_space(data, end);
    const char *counted = data; /* lines are counted up to here */
    int64_t line = 1;
    int64_t index = 0;

    LC_ASSERT(p < end && *p == '[');
    p = skip_space(p + 1, end);
    if (p < end && *p == ']') {
        p++;
    } else {
        for (;;) {
            json_error_t jerr;
            json_t *obj = NULL;
            lc_status rc;

            line += count_lines(counted, p);
            counted = p;
            if (p == end) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: line %lld: the JSON array ends early (no closing ']')",
                                  st->path, (long long)line);
            }
            if (*p != '{' && *p != '[') {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: record %lld (line %lld): expected a JSON object", st->path,
                                  (long long)(index + 1), (long long)line);
            }
            obj = json_loadb(p, (size_t)(end - p), JSON_FLAGS | JSON_DISABLE_EOF_CHECK, &jerr);
            if (obj == NULL) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: record %lld (line %lld): invalid JSON: %s", st->path,
                                  (long long)(index + 1), (long long)(line + jerr.line - 1),
                                  jerr.text);
            }
            rc = take_record(st, obj, index, line, err);
            json_decref(obj);
            if (rc != LC_OK) {
                return rc;
            }
            index++;
            /* on success jansson reports the bytes it consumed */
            p = skip_space(p + jerr.position, end);
            if (p < end && *p == ',') {
                p = skip_space(p + 1, end);
                if (p < end && *p == ']') {
                    line += count_lines(counted, p);
                    return lc_err_set(err, LC_ERR_FORMAT,
                                      "%s: line %lld: invalid JSON: a ',' before the closing ']'",
                                      st->path, (long long)line);
                }
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                break;
            }
            line += count_lines(counted, p);
            if (p == end) {
                return lc_err_set(err, LC_ERR_FORMAT,
                                  "%s: line %lld: the JSON array ends early (no closing ']')",
                                  st->path, (long long)line);
            }
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: line %lld: invalid JSON: expected ',' or ']' after record %lld",
                              st->path, (long long)line, (long long)index);
        }
    }
    p = skip_space(p, end);
    if (p != end) {
        line += count_lines(counted, p);
        return lc_err_set(err, LC_ERR_FORMAT, "%s: line %lld: data after the end of the JSON array",
                          st->path, (long long)line);
    }
    return LC_OK;
}

lc_status lc_data_parse_records(const char *path, const char *data, size_t len,
                                enum lc_data_format kind, lc_data_record_fn fn, void *user,
                                struct lc_data_parse_result *res, struct lc_error *err)
{
    struct parse_state st;
    enum lc_data_container container;
    size_t skip = bom_len(data, len);
    lc_status rc;

    memset(res, 0, sizeof(*res));
    if (kind != LC_DATA_AUTO && kind != LC_DATA_ALPACA && kind != LC_DATA_JSONL_TEXT) {
        return lc_err_set(err, LC_ERR_ARG, "%s: not a record format (%d)", path, (int)kind);
    }
    data += skip;
    len -= skip;
    container = lc_data_detect(data, len);
    if (container == LC_CONTAINER_EMPTY) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: the file is empty", path);
    }
    if (container == LC_CONTAINER_TEXT) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: expected JSON records (a JSON array or JSON lines), found text",
                          path);
    }

    memset(&st, 0, sizeof(st));
    st.path = path;
    st.in_array = container == LC_CONTAINER_ARRAY;
    st.kind = kind;
    st.kind_forced = kind != LC_DATA_AUTO;
    st.fn = fn;
    st.user = user;
    rc = st.in_array ? parse_array(&st, data, len, err) : parse_lines(&st, data, len, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (st.records == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: no records (an empty JSON array)", path);
    }
    if (st.skipped == st.records) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "%s: all %lld records were skipped (empty output or text): nothing to "
                          "train on",
                          path, (long long)st.records);
    }
    res->kind = st.kind;
    res->records = st.records;
    res->skipped = st.skipped;
    return LC_OK;
}

/* ------------------------------------------------------------------------ */
/* Building the token stream                                                 */

static lc_status reserve(struct lc_dataset *ds, size_t extra)
{
    size_t need;
    size_t cap;
    size_t bytes;
    int32_t *p = NULL;

    if (!lc_add_size(ds->n, extra, &need)) {
        return LC_ERR_NOMEM;
    }
    if (need <= ds->cap) {
        return LC_OK;
    }
    cap = ds->cap < 4096 ? 4096 : ds->cap;
    while (cap < need) {
        if (!lc_add_size(cap, cap / 2, &cap)) {
            return LC_ERR_NOMEM;
        }
    }
    if (!lc_mul_size(cap, sizeof(int32_t), &bytes)) {
        return LC_ERR_NOMEM;
    }
    p = realloc(ds->ids, bytes);
    if (p == NULL) {
        return LC_ERR_NOMEM;
    }
    ds->ids = p;
    p = realloc(ds->labels, bytes);
    if (p == NULL) {
        return LC_ERR_NOMEM;
    }
    ds->labels = p;
    ds->cap = cap;
    return LC_OK;
}

/* appends ids with labels = ids, or LC_LABEL_IGNORE when !learn */
static lc_status append(struct lc_dataset *ds, const int32_t *ids, size_t n, int learn)
{
    if (reserve(ds, n) != LC_OK) {
        return LC_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ds->ids[ds->n + i] = ids[i];
        ds->labels[ds->n + i] = learn ? ids[i] : LC_LABEL_IGNORE;
    }
    ds->n += n;
    return LC_OK;
}

static lc_status append_encoded(struct lc_dataset *ds, const struct lc_data_encoder *enc,
                                const char *text, size_t len, int learn, struct lc_error *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    lc_status rc;

    rc = enc->encode(enc->ctx, text, len, &ids, &n, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = append(ds, ids, n, learn);
    free(ids);
    if (rc != LC_OK) {
        return lc_err_set(err, rc, "out of memory for the token stream (%zu tokens)", ds->n);
    }
    return LC_OK;
}

static lc_status append_special(struct lc_dataset *ds, int32_t id, int learn,
                                struct lc_error *err)
{
    if (id < 0) {
        return LC_OK;
    }
    if (append(ds, &id, 1, learn) != LC_OK) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for the token stream (%zu tokens)",
                          ds->n);
    }
    return LC_OK;
}

struct build_state {
    struct lc_dataset *ds;
    const struct lc_data_encoder *enc;
    const char *path;
    int64_t val_records;
    int in_array;
    size_t val_end; /* end of the held-out records in the stream */
};

static lc_status build_record(const struct lc_data_record *rec, void *user,
                              struct lc_error *err)
{
    struct build_state *bs = user;
    struct lc_dataset *ds = bs->ds;
    const struct lc_data_encoder *enc = bs->enc;
    char *prompt = NULL;
    size_t prompt_len = 0;
    lc_status rc;

    if (rec->kind == LC_DATA_ALPACA) {
        rc = lc_alpaca_prompt(rec->instruction.s, rec->instruction.len, rec->input.s,
                              rec->input.len, &prompt, &prompt_len);
        if (rc != LC_OK) {
            rc = lc_err_set(err, rc, "out of memory for a prompt");
            goto done;
        }
        /* the prompt, BOS included, is context only */
        rc = append_special(ds, enc->bos, 0, err);
        if (rc == LC_OK) {
            rc = append_encoded(ds, enc, prompt, prompt_len, 0, err);
        }
        if (rc == LC_OK) {
            rc = append_encoded(ds, enc, rec->output.s, rec->output.len, 1, err);
        }
    } else {
        rc = append_special(ds, enc->bos, 1, err);
        if (rc == LC_OK) {
            rc = append_encoded(ds, enc, rec->text.s, rec->text.len, 1, err);
        }
    }
    if (rc == LC_OK) {
        rc = append_special(ds, enc->eos, 1, err);
    }
    if (rc != LC_OK) {
        if (bs->in_array) {
            lc_err_prefix(err, "%s: record %lld (line %lld)", bs->path,
                          (long long)(rec->index + 1), (long long)rec->line);
        } else {
            lc_err_prefix(err, "%s: line %lld", bs->path, (long long)rec->line);
        }
        goto done;
    }
    /* the held-out records are the first ones, so they end where the
     * last of them does */
    if (rec->index < bs->val_records) {
        bs->val_end = ds->n;
    }

done:
    free(prompt);
    return rc;
}

/* one part of a plain-text file: a stream with BOS once, all labeled */
static lc_status build_text_part(struct lc_dataset *ds, const struct lc_data_encoder *enc,
                                 const char *path, const char *text, size_t len,
                                 struct lc_error *err)
{
    lc_status rc;

    if (len == 0) {
        return LC_OK;
    }
    rc = append_special(ds, enc->bos, 1, err);
    if (rc == LC_OK) {
        rc = append_encoded(ds, enc, text, len, 1, err);
    }
    if (rc != LC_OK) {
        lc_err_prefix(err, "%s", path);
    }
    return rc;
}

static lc_status check_opts(const char *path, const struct lc_data_opts *o, struct lc_error *err)
{
    if (o->format != LC_DATA_AUTO && o->format != LC_DATA_TEXT &&
        o->format != LC_DATA_JSONL_TEXT && o->format != LC_DATA_ALPACA) {
        return lc_err_set(err, LC_ERR_ARG, "%s: unknown data format %d", path, (int)o->format);
    }
    if (!(o->val_fraction >= 0.0 && o->val_fraction <= 1.0)) {
        return lc_err_set(err, LC_ERR_ARG, "%s: val_fraction %g is not in [0, 1]", path,
                          o->val_fraction);
    }
    if (o->val_records < 0) {
        return lc_err_set(err, LC_ERR_ARG, "%s: val_records %lld is negative", path,
                          (long long)o->val_records);
    }
    return LC_OK;
}

lc_status lc_dataset_build(struct lc_dataset **out, const char *path, const char *data,
                           size_t len, const struct lc_data_encoder *enc,
                           const struct lc_data_opts *opts, struct lc_error *err)
{
    struct lc_data_opts defaults;
    struct lc_dataset *ds = NULL;
    enum lc_data_container container;
    lc_status rc;

    *out = NULL;
    if (opts == NULL) {
        lc_data_opts_default(&defaults);
        opts = &defaults;
    }
    rc = check_opts(path, opts, err);
    if (rc != LC_OK) {
        return rc;
    }
    ds = calloc(1, sizeof(*ds));
    if (ds == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    {
        size_t skip = bom_len(data, len);
        data += skip;
        len -= skip;
    }
    container = lc_data_detect(data, len);
    if (container == LC_CONTAINER_EMPTY) {
        rc = lc_err_set(err, LC_ERR_FORMAT, "%s: the file is empty", path);
        goto fail;
    }

    if (opts->format == LC_DATA_TEXT ||
        (opts->format == LC_DATA_AUTO && container == LC_CONTAINER_TEXT)) {
        size_t cut = lc_data_text_cut(data, len, opts->val_fraction);
        rc = build_text_part(ds, enc, path, data, cut, err);
        if (rc != LC_OK) {
            goto fail;
        }
        ds->off[LC_SPLIT_TRAIN] = 0;
        ds->len[LC_SPLIT_TRAIN] = ds->n;
        rc = build_text_part(ds, enc, path, data + cut, len - cut, err);
        if (rc != LC_OK) {
            goto fail;
        }
        ds->off[LC_SPLIT_VAL] = ds->len[LC_SPLIT_TRAIN];
        ds->len[LC_SPLIT_VAL] = ds->n - ds->len[LC_SPLIT_TRAIN];
        ds->off[LC_SPLIT_ALL] = 0;
        ds->len[LC_SPLIT_ALL] = ds->n;
        if (cut > 0 && cut < len) {
            /* the two parts do not add up to the whole text's stream */
            ds->off[LC_SPLIT_ALL] = ds->n;
            rc = build_text_part(ds, enc, path, data, len, err);
            if (rc != LC_OK) {
                goto fail;
            }
            ds->len[LC_SPLIT_ALL] = ds->n - ds->off[LC_SPLIT_ALL];
        }
        ds->stats.format = LC_DATA_TEXT;
        ds->stats.records = 1;
    } else {
        struct build_state bs;
        struct lc_data_parse_result res;
        memset(&bs, 0, sizeof(bs));
        bs.ds = ds;
        bs.enc = enc;
        bs.path = path;
        bs.val_records = opts->val_records;
        bs.in_array = container == LC_CONTAINER_ARRAY;
        rc = lc_data_parse_records(path, data, len, opts->format, build_record, &bs, &res, err);
        if (rc != LC_OK) {
            goto fail;
        }
        ds->off[LC_SPLIT_VAL] = 0;
        ds->len[LC_SPLIT_VAL] = bs.val_end;
        ds->off[LC_SPLIT_TRAIN] = bs.val_end;
        ds->len[LC_SPLIT_TRAIN] = ds->n - bs.val_end;
        ds->off[LC_SPLIT_ALL] = 0;
        ds->len[LC_SPLIT_ALL] = ds->n;
        ds->stats.format = res.kind;
        ds->stats.records = res.records;
        ds->stats.skipped = res.skipped;
    }
    ds->stats.train_tokens = (int64_t)ds->len[LC_SPLIT_TRAIN];
    ds->stats.val_tokens = (int64_t)ds->len[LC_SPLIT_VAL];
    *out = ds;
    return LC_OK;

fail:
    lc_dataset_free(ds);
    return rc;
}

lc_status lc_dataset_load_with(struct lc_dataset **out, const char *path,
                               const struct lc_data_encoder *enc,
                               const struct lc_data_opts *opts, struct lc_error *err)
{
    char *data = NULL;
    size_t len = 0;
    lc_status rc;

    *out = NULL;
    rc = lc_read_text_file(path, &data, &len, err);
    if (rc != LC_OK) {
        return rc;
    }
    rc = lc_dataset_build(out, path, data, len, enc, opts, err);
    free(data);
    return rc;
}

LC_API void lc_dataset_free(struct lc_dataset *ds)
{
    if (ds == NULL) {
        return;
    }
    free(ds->ids);
    free(ds->labels);
    free(ds);
}

LC_API void lc_dataset_stats(const struct lc_dataset *ds, struct lc_data_stats *st)
{
    if (ds == NULL) {
        memset(st, 0, sizeof(*st));
        return;
    }
    *st = ds->stats;
}

/* the range of a split; 0 for an unknown split */
static int split_range(const struct lc_dataset *ds, enum lc_data_split split, size_t *off,
                       size_t *len)
{
    switch (split) {
    case LC_SPLIT_TRAIN:
    case LC_SPLIT_VAL:
    case LC_SPLIT_ALL:
        *off = ds->off[split];
        *len = ds->len[split];
        return 1;
    }
    return 0;
}

LC_API lc_status lc_dataset_stream(const struct lc_dataset *ds, enum lc_data_split split,
                                   const int32_t **ids, const int32_t **labels, int64_t *n)
{
    size_t off = 0;
    size_t len = 0;

    if (ds == NULL || !split_range(ds, split, &off, &len)) {
        return LC_ERR_ARG;
    }
    if (ids != NULL) {
        *ids = ds->ids != NULL ? ds->ids + off : NULL;
    }
    if (labels != NULL) {
        *labels = ds->labels != NULL ? ds->labels + off : NULL;
    }
    if (n != NULL) {
        *n = (int64_t)len;
    }
    return LC_OK;
}

/*
 * Labels are packed as they are, NOT shifted: labels[i] is the token AT
 * position i, and the trainer pairs the logits of position i with
 * labels[i + 1] itself (as Hugging Face causal LMs do).
 *
 * The reference packer emits a chunk only while more than seq_len tokens
 * are buffered, so a stream of exactly k * seq_len tokens gives k - 1
 * chunks there; here it gives k (the interface: only a remainder shorter
 * than seq_len is dropped).  No split, or one too short, gives 0 chunks and
 * NULL arrays.
 */
LC_API lc_status lc_dataset_pack(const struct lc_dataset *ds, enum lc_data_split split,
                                 int seq_len, int32_t **ids, int32_t **labels,
                                 int64_t *n_chunks, struct lc_error *err)
{
    size_t off = 0;
    size_t len = 0;
    size_t total = 0;
    size_t kept = 0;
    size_t bytes = 0;
    int32_t *out_ids = NULL;
    int32_t *out_labels = NULL;

    *ids = NULL;
    *labels = NULL;
    *n_chunks = 0;
    if (ds == NULL || !split_range(ds, split, &off, &len)) {
        return lc_err_set(err, LC_ERR_ARG, "pack: no dataset or an unknown split %d", (int)split);
    }
    if (seq_len <= 0) {
        return lc_err_set(err, LC_ERR_ARG, "pack: sequence length %d is not positive", seq_len);
    }
    total = len / (size_t)seq_len;
    for (size_t c = 0; c < total; c++) {
        const int32_t *lab = ds->labels + off + c * (size_t)seq_len;
        for (int i = 0; i < seq_len; i++) {
            if (lab[i] != LC_LABEL_IGNORE) {
                kept++;
                break;
            }
        }
    }
    if (kept == 0) {
        return LC_OK;
    }
    bytes = kept * (size_t)seq_len * sizeof(int32_t);
    out_ids = malloc(bytes);
    out_labels = malloc(bytes);
    if (out_ids == NULL || out_labels == NULL) {
        free(out_ids);
        free(out_labels);
        return lc_err_set(err, LC_ERR_NOMEM, "pack: out of memory for %zu chunks of %d tokens",
                          kept, seq_len);
    }
    kept = 0;
    for (size_t c = 0; c < total; c++) {
        const int32_t *src_ids = ds->ids + off + c * (size_t)seq_len;
        const int32_t *src_lab = ds->labels + off + c * (size_t)seq_len;
        int learn = 0;
        for (int i = 0; i < seq_len && !learn; i++) {
            learn = src_lab[i] != LC_LABEL_IGNORE;
        }
        if (!learn) {
            continue;
        }
        memcpy(out_ids + kept * (size_t)seq_len, src_ids, (size_t)seq_len * sizeof(int32_t));
        memcpy(out_labels + kept * (size_t)seq_len, src_lab, (size_t)seq_len * sizeof(int32_t));
        kept++;
    }
    *ids = out_ids;
    *labels = out_labels;
    *n_chunks = (int64_t)kept;
    return LC_OK;
}

/* ------------------------------------------------------------------------ */
/* Shuffling                                                                 */

/* a uniform draw in [0, bound) from the counter-based stream of key;
 * rejection keeps it unbiased (the values below 2^64 mod bound) */
static uint64_t draw_below(uint64_t key, uint64_t *counter, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = lc_mix64(key + ++*counter * LC_GOLDEN_GAMMA);
        if (r >= threshold) {
            return r % bound;
        }
    }
}

LC_API void lc_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch)
{
    /* lc_mix64 is a bijection: for one seed, every epoch has its own key */
    uint64_t key = lc_mix64(lc_mix64(seed) ^ (uint64_t)epoch);
    uint64_t counter = 0;

    if (perm == NULL || n <= 0) {
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        perm[i] = i;
    }
    /* Fisher-Yates */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)draw_below(key, &counter, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ------------------------------------------------------------------------ */
/* The public loader: the encoder is the tokenizer                           */

static lc_status tokenizer_encode(const void *ctx, const char *text, size_t len, int32_t **ids,
                                  size_t *n_ids, struct lc_error *err)
{
    /* no special-token parsing: "</s>" written in the data is text */
    return lc_tokenizer_encode(ctx, text, len, 0, ids, n_ids, err);
}

LC_API lc_status lc_dataset_load(struct lc_dataset **out, const char *path,
                                 const struct lc_tokenizer *tok, const struct lc_data_opts *opts,
                                 struct lc_error *err)
{
    struct lc_data_encoder enc;

    if (out == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "dataset: no output pointer");
    }
    *out = NULL;
    if (path == NULL || tok == NULL) {
        return lc_err_set(err, LC_ERR_ARG, "dataset: no %s given", path == NULL ? "path"
                                                                               : "tokenizer");
    }
    enc.encode = tokenizer_encode;
    enc.ctx = tok;
    /* the reference tokenizes the prompt with add_special_tokens=True:
     * BOS exactly when the tokenizer adds one */
    enc.bos = lc_tokenizer_wants_bos(tok) ? lc_tokenizer_bos(tok) : -1;
    enc.eos = lc_tokenizer_eos(tok);
    return lc_dataset_load_with(out, path, &enc, opts, err);
}
