/* The data pipeline: format detection, record parsing and its errors, the
 * token layout of each format, splits, packing, shuffling. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "core/data.h"
#include "core/util.h"
#include "tests/lc_test.h"

#define ALPACA_FILE "text/alpaca-cleaned/alpaca_data_cleaned.json"
#define STORIES_FILE "text/tinystories/tinystories_val.txt"

/* The Alpaca template written out here on its own, so that the library's
 * copy is checked against it. */
static const char prompt_no_input_head[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n";
static const char prompt_input_head[] =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n";

/* ------------------------------------------------------------------------ */
/* A byte-level encoder: byte b -> id b + 3, BOS 1, EOS 2.  With it the      */
/* token layout can be read back exactly.                                    */

#define BYTE_BOS 1
#define BYTE_EOS 2
#define BYTE_ID(b) ((int32_t)(unsigned char)(b) + 3)

struct byte_ctx {
    int fail_on_hash; /* fail on a text holding '#', to test error paths */
};

static lc_status byte_encode(const void *ctx, const char *text, size_t len, int32_t **ids,
                             size_t *n_ids, struct lc_error *err)
{
    const struct byte_ctx *bc = ctx;
    int32_t *out = NULL;

    if (bc != NULL && bc->fail_on_hash && memchr(text, '#', len) != NULL) {
        return lc_err_set(err, LC_ERR_FORMAT, "test encoder refuses '#'");
    }
    out = malloc((len > 0 ? len : 1) * sizeof(int32_t));
    if (out == NULL) {
        return LC_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = BYTE_ID(text[i]);
    }
    *ids = out;
    *n_ids = len;
    return LC_OK;
}

static const struct lc_data_encoder byte_enc = {byte_encode, NULL, BYTE_BOS, BYTE_EOS};

/* ids of a byte-encoded range back to bytes (BOS/EOS must not occur) */
static char *byte_decode(const int32_t *ids, int64_t n)
{
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    for (int64_t i = 0; i < n; i++) {
        assert_true(ids[i] >= 3 && ids[i] < 259);
        s[i] = (char)(ids[i] - 3);
    }
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* Files and messages                                                        */

static const char *write_file(const char *name, const char *content, size_t len)
{
    const char *path = lc_test_tmp_path(name);
    lc_test_write_file(path, content, len);
    return path;
}

static const char *write_text(const char *name, const char *content)
{
    return write_file(name, content, strlen(content));
}

static const char *write_gzip(const char *name, const char *content, size_t len)
{
    const char *path = lc_test_tmp_path(name);
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, content, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
    return path;
}

static char *read_all(const char *path, size_t *len)
{
    char *data = NULL;
    struct lc_error err = {0};
    lc_status rc = lc_read_text_file(path, &data, len, &err);
    if (rc != LC_OK) {
        fail_msg("%s", err.msg);
    }
    return data;
}

/* the message must name the file and hold every fragment */
static void check_msg(const struct lc_error *err, const char *path, const char *frag1,
                      const char *frag2)
{
    if (strstr(err->msg, path) == NULL || (frag1 != NULL && strstr(err->msg, frag1) == NULL) ||
        (frag2 != NULL && strstr(err->msg, frag2) == NULL)) {
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\" / \"%s\"", err->msg, path,
                 frag1 != NULL ? frag1 : "", frag2 != NULL ? frag2 : "");
    }
    if (getenv("LC_TEST_VERBOSE") != NULL) {
        printf("    %s\n", err->msg);
    }
}

/* loading CONTENT as a file must fail with CODE and a message naming the
 * file and holding the fragments */
static void expect_bad(const char *name, const char *content, enum lc_data_format format,
                       lc_status code, const char *frag1, const char *frag2)
{
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_error err = {0};
    const char *path = write_text(name, content);
    lc_status rc;

    lc_data_opts_default(&o);
    o.format = format;
    rc = lc_dataset_load_with(&ds, path, &byte_enc, &o, &err);
    if (rc != code) {
        fail_msg("%s: got status %d (%s), want %d", name, rc, err.msg, code);
    }
    assert_null(ds);
    check_msg(&err, path, frag1, frag2);
}

/* log capture */
static int n_warnings;
static char last_warning[2048];

static void capture_log(enum lc_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == LC_LOG_WARN) {
        n_warnings++;
        snprintf(last_warning, sizeof(last_warning), "%s", msg);
    }
}

/* ------------------------------------------------------------------------ */
/* Detection, cutting, the template                                          */

static void test_detect(void **state)
{
    (void)state;
    assert_int_equal(lc_data_detect("", 0), LC_CONTAINER_EMPTY);
    assert_int_equal(lc_data_detect(" \n\t\r\n", 5), LC_CONTAINER_EMPTY);
    assert_int_equal(lc_data_detect("\xef\xbb\xbf  ", 5), LC_CONTAINER_EMPTY);
    assert_int_equal(lc_data_detect("  \n[{}]", 7), LC_CONTAINER_ARRAY);
    assert_int_equal(lc_data_detect("\xef\xbb\xbf[", 4), LC_CONTAINER_ARRAY);
    assert_int_equal(lc_data_detect("\n{\"text\": 1}\n", 13), LC_CONTAINER_LINES);
    assert_int_equal(lc_data_detect("Once upon a time", 16), LC_CONTAINER_TEXT);
    assert_int_equal(lc_data_detect("  x{", 4), LC_CONTAINER_TEXT);
    /* only the first non-space byte counts */
    assert_int_equal(lc_data_detect("\0[", 2), LC_CONTAINER_TEXT);
}

static void test_text_cut(void **state)
{
    /* offsets: a0 b1 \n2 c3 d4 \n5 e6 f7 */
    const char *s = "ab\ncd\nef";
    (void)state;
    assert_int_equal(lc_data_text_cut(s, 8, 0.0), 8);
    assert_int_equal(lc_data_text_cut(s, 8, 1.0), 0);
    assert_int_equal(lc_data_text_cut(s, 8, 0.5), 6);   /* floor(4) -> after the '\n' at 5 */
    assert_int_equal(lc_data_text_cut(s, 8, 0.75), 3);  /* floor(2) -> after the '\n' at 2 */
    assert_int_equal(lc_data_text_cut(s, 8, 0.625), 3); /* floor(3) is a line start */
    assert_int_equal(lc_data_text_cut(s, 8, 0.2), 6);   /* floor(6.4) = 6 is a line start */
    assert_int_equal(lc_data_text_cut(s, 8, 0.1), 8);   /* floor(7.2): no line start after 7 */
    assert_int_equal(lc_data_text_cut("abcdef", 6, 0.5), 6);
    assert_int_equal(lc_data_text_cut("", 0, 0.5), 0);
}

static void test_alpaca_prompt(void **state)
{
    char *p = NULL;
    size_t n = 0;
    char want[1024];
    (void)state;

    assert_int_equal(lc_alpaca_prompt("Add.", 4, "", 0, &p, &n), LC_OK);
    snprintf(want, sizeof(want), "%sAdd.\n\n### Response:\n", prompt_no_input_head);
    assert_string_equal(p, want);
    assert_int_equal(n, strlen(want));
    free(p);

    assert_int_equal(lc_alpaca_prompt("Add.", 4, "2 3", 3, &p, &n), LC_OK);
    snprintf(want, sizeof(want), "%sAdd.\n\n### Input:\n2 3\n\n### Response:\n",
             prompt_input_head);
    assert_string_equal(p, want);
    assert_int_equal(n, strlen(want));
    free(p);

    /* embedded NUL bytes are kept */
    assert_int_equal(lc_alpaca_prompt("a\0b", 3, "", 0, &p, &n), LC_OK);
    assert_int_equal(n, strlen(prompt_no_input_head) + 3 + strlen("\n\n### Response:\n"));
    assert_memory_equal(p + strlen(prompt_no_input_head), "a\0b\n\n", 5);
    free(p);
}

/* ------------------------------------------------------------------------ */
/* Token layout with the byte encoder                                        */

static void test_alpaca_layout(void **state)
{
    const char *content =
        "{\"instruction\": \"Add.\", \"input\": \"2 3\", \"output\": \"5\"}\n"
        "\n"
        "{\"instruction\": \"Say hi.\", \"output\": \"hi\"}\n";
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    char want[1024];
    size_t p1;
    size_t p2;
    const char *path = write_text("layout.jsonl", content);
    (void)state;

    lc_data_opts_default(&o);
    o.val_records = 1;
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_ALPACA);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.skipped, 0);

    /* record 1 is held out: BOS, prompt (ignored), "5", EOS */
    snprintf(want, sizeof(want), "%sAdd.\n\n### Input:\n2 3\n\n### Response:\n",
             prompt_input_head);
    p1 = strlen(want);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, 1 + (int64_t)p1 + 1 + 1);
    assert_int_equal(ids[0], BYTE_BOS);
    assert_int_equal(labels[0], -100);
    for (size_t i = 0; i < p1; i++) {
        assert_int_equal(ids[1 + i], BYTE_ID(want[i]));
        assert_int_equal(labels[1 + i], -100);
    }
    assert_int_equal(ids[1 + p1], BYTE_ID('5'));
    assert_int_equal(labels[1 + p1], BYTE_ID('5'));
    assert_int_equal(ids[2 + p1], BYTE_EOS);
    assert_int_equal(labels[2 + p1], BYTE_EOS);
    assert_int_equal(st.val_tokens, n);

    /* record 2 (no input field: the short template) is train */
    snprintf(want, sizeof(want), "%sSay hi.\n\n### Response:\n", prompt_no_input_head);
    p2 = strlen(want);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, 1 + (int64_t)p2 + 2 + 1);
    assert_int_equal(st.train_tokens, n);
    assert_int_equal(ids[0], BYTE_BOS);
    for (size_t i = 0; i < p2; i++) {
        assert_int_equal(ids[1 + i], BYTE_ID(want[i]));
        assert_int_equal(labels[1 + i], -100);
    }
    assert_int_equal(labels[1 + p2], BYTE_ID('h'));
    assert_int_equal(labels[2 + p2], BYTE_ID('i'));
    assert_int_equal(ids[3 + p2], BYTE_EOS);

    /* ALL is the file order: the held-out record first */
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_ALL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, st.val_tokens + st.train_tokens);
    assert_int_equal(ids[1 + p1 + 2], BYTE_BOS);
    assert_int_equal(ids[1 + p1 + 3], BYTE_ID(prompt_no_input_head[0]));
    assert_int_equal(lc_dataset_stream(ds, (enum lc_data_split)7, &ids, &labels, &n),
                     LC_ERR_ARG);
    lc_dataset_free(ds);
}

static void test_text_records_layout(void **state)
{
    const char *content = "[{\"text\": \"ab\"}, {\"text\": \"\\u0000c\", \"id\": 4}]";
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    const int32_t want[] = {BYTE_BOS, BYTE_ID('a'), BYTE_ID('b'), BYTE_EOS,
                            BYTE_BOS, BYTE_ID('\0'), BYTE_ID('c'), BYTE_EOS};
    const char *path = write_text("textrec.json", content);
    (void)state;

    lc_data_opts_default(&o);
    o.val_records = 0;
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_JSONL_TEXT);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.val_tokens, 0);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, 8);
    /* all labeled, BOS and EOS included */
    assert_memory_equal(ids, want, sizeof(want));
    assert_memory_equal(labels, want, sizeof(want));
    lc_dataset_free(ds);
}

/* An encoder without BOS/EOS adds none; an encoder error names the record. */
static void test_encoder_variants(void **state)
{
    const char *content = "{\"instruction\": \"x\", \"output\": \"y\"}\n"
                          "{\"instruction\": \"x\", \"output\": \"#y\"}\n";
    struct lc_data_encoder enc = byte_enc;
    struct byte_ctx bc = {1};
    struct lc_dataset *ds = NULL;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    char *prompt = NULL;
    size_t plen = 0;
    const char *path = write_text("variants.jsonl", content);
    (void)state;

    enc.bos = -1;
    enc.eos = -1;
    assert_int_equal(lc_dataset_load_with(&ds, path, &enc, NULL, &err), LC_OK);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(lc_alpaca_prompt("x", 1, "", 0, &prompt, &plen), LC_OK);
    /* (prompt + "y") + (prompt + "#y"), nothing else */
    assert_int_equal(n, 2 * (int64_t)plen + 3);
    assert_int_equal(ids[0], BYTE_ID(prompt[0]));
    assert_int_equal(labels[plen], BYTE_ID('y'));
    assert_int_equal(ids[plen + 1], BYTE_ID(prompt[0]));
    free(prompt);
    lc_dataset_free(ds);

    /* the prompt holds '#': the test encoder fails on record 1 */
    enc = byte_enc;
    enc.ctx = &bc;
    assert_int_equal(lc_dataset_load_with(&ds, path, &enc, NULL, &err), LC_ERR_FORMAT);
    assert_null(ds);
    check_msg(&err, path, "line 1", "refuses");
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */

static void test_bad_files(void **state)
{
    struct lc_dataset *ds = NULL;
    struct lc_error err = {0};
    struct lc_data_opts o;
    char *deep = NULL;
    (void)state;

    expect_bad("empty.txt", "", LC_DATA_AUTO, LC_ERR_FORMAT, "empty", NULL);
    expect_bad("blank.txt", "  \n\n\t\n", LC_DATA_AUTO, LC_ERR_FORMAT, "empty", NULL);
    expect_bad("empty-arr.json", " [\n ]\n", LC_DATA_AUTO, LC_ERR_FORMAT, "no records", NULL);

    /* JSON lines */
    expect_bad("bad-json.jsonl",
               "{\"instruction\": \"a\", \"output\": \"b\"}\n"
               "\n"
               "{\"instruction\": \"a\", \"output\": \"b}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 3", "invalid JSON");
    expect_bad("pretty.jsonl", "{\n  \"text\": \"a\"\n}\n", LC_DATA_AUTO, LC_ERR_FORMAT,
               "line 1", "one whole record per line");
    expect_bad("no-output.jsonl",
               "{\"instruction\": \"a\", \"output\": \"b\"}\n"
               "{\"instruction\": \"a\", \"input\": \"b\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 2", "missing field \"output\"");
    expect_bad("no-instr.jsonl", "{\"output\": \"b\"}\n", LC_DATA_AUTO, LC_ERR_FORMAT,
               "line 1", "missing field \"instruction\"");
    expect_bad("nonstring.jsonl",
               "{\"instruction\": \"a\", \"output\": \"b\"}\n"
               "{\"instruction\": 5, \"output\": \"b\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 2", "\"instruction\" is a number");
    expect_bad("null-input.jsonl", "{\"instruction\": \"a\", \"input\": null, \"output\": \"b\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 1", "\"input\" is null");
    expect_bad("mixed.jsonl",
               "{\"instruction\": \"a\", \"output\": \"b\"}\n"
               "{\"text\": \"hello\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 2", "mixed");
    expect_bad("both.jsonl", "{\"text\": \"t\", \"instruction\": \"a\", \"output\": \"b\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "line 1", "both");
    expect_bad("neither.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 1", "neither");
    expect_bad("not-object.jsonl", "{\"text\": \"a\"}\n[\"text\"]\n", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 2", "expected a JSON object");
    expect_bad("dup-key.jsonl", "{\"text\": \"a\", \"text\": \"b\"}\n", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 1", "duplicate");
    expect_bad("bad-utf8.jsonl", "{\"text\": \"a\"}\n{\"text\": \"\xff\xfe\"}\n", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 2", "invalid JSON");
    expect_bad("text-nonstring.jsonl", "{\"text\": [\"a\"]}\n", LC_DATA_AUTO, LC_ERR_FORMAT,
               "line 1", "\"text\" is an array");

    /* JSON arrays: the record and the line where it starts */
    expect_bad("arr-type.json",
               "[\n"
               "  {\"instruction\": \"a\", \"output\": \"b\"},\n"
               "  {\"instruction\": \"c\",\n"
               "   \"output\": 7}\n"
               "]\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "record 2 (line 3)", "\"output\" is a number");
    expect_bad("arr-json.json",
               "[\n"
               "  {\"instruction\": \"a\", \"output\": \"b\"},\n"
               "  {\"instruction\": \"a\", \"output\": \"b\"},\n"
               "  {\"instruction\": \"c\"\n"
               "   \"output\": \"d\"}\n"
               "]\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "record 3 (line 5)", "invalid JSON");
    expect_bad("arr-elem.json", "[{\"text\": \"a\"},\n 42]", LC_DATA_AUTO, LC_ERR_FORMAT,
               "record 2 (line 2)", "expected a JSON object");
    expect_bad("arr-trunc.json", "[{\"text\": \"a\"},\n {\"text\": \"b\"}\n", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 3", "no closing");
    expect_bad("arr-trunc2.json", "[{\"text\": \"a\"},\n {\"text\": \"b", LC_DATA_AUTO,
               LC_ERR_FORMAT, "record 2 (line 2)", "invalid JSON");
    expect_bad("arr-comma.json", "[{\"text\": \"a\"},\n]", LC_DATA_AUTO, LC_ERR_FORMAT, "line 2",
               "','");
    expect_bad("arr-sep.json", "[{\"text\": \"a\"}\n\n {\"text\": \"b\"}]", LC_DATA_AUTO,
               LC_ERR_FORMAT, "line 3", "expected ',' or ']'");
    expect_bad("arr-after.json", "[{\"text\": \"a\"}]\n\nmore", LC_DATA_AUTO, LC_ERR_FORMAT,
               "line 3", "after the end");
    expect_bad("arr-mixed.json", "[{\"text\": \"a\"}, {\"instruction\": \"b\", \"output\": \"c\"}]",
               LC_DATA_AUTO, LC_ERR_FORMAT, "record 2", "mixed");

    /* a forced format must match the records */
    expect_bad("forced-alpaca.jsonl", "{\"text\": \"a\"}\n", LC_DATA_ALPACA, LC_ERR_FORMAT,
               "line 1", "missing field \"instruction\"");
    expect_bad("forced-text.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n",
               LC_DATA_JSONL_TEXT, LC_ERR_FORMAT, "line 1", "missing field \"text\"");
    expect_bad("forced-records.txt", "just some text\n", LC_DATA_ALPACA, LC_ERR_FORMAT,
               "expected JSON records", NULL);

    /* only prompts: every record skipped */
    expect_bad("prompts.jsonl",
               "{\"instruction\": \"a\", \"output\": \"\"}\n"
               "{\"instruction\": \"b\", \"output\": \" \\n\"}\n",
               LC_DATA_AUTO, LC_ERR_FORMAT, "all 2 records were skipped", NULL);
    expect_bad("empty-texts.json", "[{\"text\": \"\"}]", LC_DATA_AUTO, LC_ERR_FORMAT,
               "all 1 records were skipped", NULL);

    /* hostile nesting: a clear error, no stack overflow */
    deep = malloc(300016);
    assert_non_null(deep);
    memcpy(deep, "{\"text\": ", 9);
    memset(deep + 9, '[', 300000);
    strcpy(deep + 300009, "\n");
    expect_bad("deep.jsonl", deep, LC_DATA_AUTO, LC_ERR_FORMAT, "line 1", "invalid JSON");
    deep[0] = '[';
    memset(deep + 1, '[', 300008);
    expect_bad("deep.json", deep, LC_DATA_AUTO, LC_ERR_FORMAT, "record 1", NULL);
    free(deep);

    /* a missing file */
    assert_int_equal(
        lc_dataset_load_with(&ds, lc_test_tmp_path("missing.json"), &byte_enc, NULL, &err),
        LC_ERR_IO);
    check_msg(&err, "missing.json", "cannot open", NULL);

    /* bad options */
    lc_data_opts_default(&o);
    o.val_fraction = 1.5;
    assert_int_equal(lc_dataset_load_with(&ds, write_text("opt.txt", "abc\n"), &byte_enc, &o, &err),
                     LC_ERR_ARG);
    check_msg(&err, "opt.txt", "val_fraction", NULL);
    o.val_fraction = NAN;
    assert_int_equal(lc_dataset_load_with(&ds, lc_test_tmp_path("opt.txt"), &byte_enc, &o, &err),
                     LC_ERR_ARG);
    lc_data_opts_default(&o);
    o.val_records = -1;
    assert_int_equal(lc_dataset_load_with(&ds, lc_test_tmp_path("opt.txt"), &byte_enc, &o, &err),
                     LC_ERR_ARG);
    check_msg(&err, "opt.txt", "val_records", NULL);
    lc_data_opts_default(&o);
    o.format = (enum lc_data_format)9;
    assert_int_equal(lc_dataset_load_with(&ds, lc_test_tmp_path("opt.txt"), &byte_enc, &o, &err),
                     LC_ERR_ARG);
    assert_null(ds);
}

static void test_bad_gzip(void **state)
{
    const char *content = "{\"instruction\": \"a\", \"output\": \"b\"}\n";
    const char *good = write_gzip("good.jsonl.gz", content, strlen(content));
    struct lc_dataset *ds = NULL;
    struct lc_error err = {0};
    char *gz = NULL;
    size_t len = 0;
    char *raw = NULL;
    size_t raw_len = 0;
    const char *bad = NULL;
    FILE *f = NULL;
    (void)state;

    /* decompressed on reading */
    raw = read_all(good, &raw_len);
    assert_int_equal(raw_len, strlen(content));
    assert_memory_equal(raw, content, raw_len);
    free(raw);
    assert_int_equal(lc_dataset_load_with(&ds, good, &byte_enc, NULL, &err), LC_OK);
    lc_dataset_free(ds);
    ds = NULL;

    /* the compressed bytes themselves */
    f = fopen(good, "rb");
    assert_non_null(f);
    gz = malloc(4096);
    assert_non_null(gz);
    len = fread(gz, 1, 4096, f);
    fclose(f);
    assert_true(len > 20);
    assert_int_equal((unsigned char)gz[0], 0x1f);

    /* cut short */
    bad = write_file("trunc.jsonl.gz", gz, len - 12);
    assert_true(lc_dataset_load_with(&ds, bad, &byte_enc, NULL, &err) < 0);
    assert_null(ds);
    check_msg(&err, "trunc.jsonl.gz", "gzip", NULL);

    /* corrupt deflate data */
    for (size_t i = 12; i < len - 8; i++) {
        gz[i] = (char)(gz[i] ^ 0x5a);
    }
    bad = write_file("corrupt.jsonl.gz", gz, len);
    assert_true(lc_dataset_load_with(&ds, bad, &byte_enc, NULL, &err) < 0);
    assert_null(ds);
    check_msg(&err, "corrupt.jsonl.gz", "gzip", NULL);
    free(gz);
}

/* Skipped records are counted, logged with file and line, and keep their
 * place in the held-out count. */
static void test_skipped_records(void **state)
{
    const char *content = "[\n"
                          "{\"instruction\": \"a\", \"output\": \"\"},\n"
                          "{\"instruction\": \"b\", \"output\": \"x\"},\n"
                          "{\"instruction\": \"c\", \"output\": \"y\"}\n"
                          "]\n";
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    const char *path = write_text("skip.json", content);
    char *prompt = NULL;
    size_t plen = 0;
    (void)state;

    lc_set_log_handler(capture_log, NULL, LC_LOG_WARN);
    n_warnings = 0;
    lc_data_opts_default(&o);
    o.val_records = 2; /* records 1 (skipped) and 2 */
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_set_log_handler(NULL, NULL, LC_LOG_WARN);
    assert_int_equal(n_warnings, 1);
    assert_non_null(strstr(last_warning, path));
    assert_non_null(strstr(last_warning, "record 1 (line 2)"));

    lc_dataset_stats(ds, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(lc_alpaca_prompt("b", 1, "", 0, &prompt, &plen), LC_OK);
    free(prompt);
    /* held out: record 2 only; train: record 3 */
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, (int64_t)plen + 3);
    assert_int_equal(labels[plen + 1], BYTE_ID('x'));
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, (int64_t)plen + 3);
    assert_int_equal(labels[plen + 1], BYTE_ID('y'));
    lc_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* Real files with the byte encoder                                          */

static void check_same_dataset(const struct lc_dataset *a, const struct lc_dataset *b)
{
    struct lc_data_stats sa;
    struct lc_data_stats sb;
    lc_dataset_stats(a, &sa);
    lc_dataset_stats(b, &sb);
    assert_int_equal(sa.format, sb.format);
    assert_int_equal(sa.records, sb.records);
    assert_int_equal(sa.skipped, sb.skipped);
    assert_int_equal(sa.train_tokens, sb.train_tokens);
    assert_int_equal(sa.val_tokens, sb.val_tokens);
    for (int split = LC_SPLIT_TRAIN; split <= LC_SPLIT_ALL; split++) {
        const int32_t *ia = NULL;
        const int32_t *la = NULL;
        const int32_t *ib = NULL;
        const int32_t *lb = NULL;
        int64_t na = 0;
        int64_t nb = 0;
        assert_int_equal(lc_dataset_stream(a, (enum lc_data_split)split, &ia, &la, &na), LC_OK);
        assert_int_equal(lc_dataset_stream(b, (enum lc_data_split)split, &ib, &lb, &nb), LC_OK);
        assert_int_equal(na, nb);
        if (na > 0) {
            assert_memory_equal(ia, ib, (size_t)na * sizeof(int32_t));
            assert_memory_equal(la, lb, (size_t)na * sizeof(int32_t));
        }
    }
}

/* The same records as JSON lines (written with jansson) and gzipped. */
static void write_variants(const char *json_path, const char **jsonl_path, const char **gz_path)
{
    json_error_t jerr;
    json_t *arr = json_load_file(json_path, 0, &jerr);
    size_t len = 0;
    char *raw = NULL;
    FILE *f = NULL;

    assert_non_null(arr);
    *jsonl_path = lc_test_tmp_path("alpaca.jsonl");
    f = fopen(*jsonl_path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char *line = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENSURE_ASCII);
        assert_non_null(line);
        fprintf(f, "%s\n", line);
        free(line);
    }
    assert_int_equal(fclose(f), 0);
    json_decref(arr);

    raw = read_all(json_path, &len);
    *gz_path = write_gzip("alpaca.json.gz", raw, len);
    free(raw);
}

/* samples of an Alpaca stream: each starts with BOS */
static int64_t count_samples(const int32_t *ids, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        k += ids[i] == BYTE_BOS;
    }
    return k;
}

static void test_alpaca_file(void **state)
{
    const char *path = lc_test_data_file(ALPACA_FILE);
    const char *jsonl = NULL;
    const char *gz = NULL;
    struct lc_dataset *ds = NULL;
    struct lc_dataset *ds2 = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    int64_t with_input = 0;
    int64_t samples = 0;
    char *prompt = NULL;
    size_t nh = strlen(prompt_no_input_head);
    size_t ni = strlen(prompt_input_head);
    (void)state;

    if (lc_dataset_load_with(&ds, path, &byte_enc, NULL, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_ALPACA);
    assert_int_equal(st.records, 1000);
    assert_int_equal(st.skipped, 0);

    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(count_samples(ids, n), 200);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(count_samples(ids, n), 800);

    /* walk every sample: BOS, a prompt of -100 labels that is one of the
     * two templates, an answer labeled as itself, EOS */
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_ALL, &ids, &labels, &n), LC_OK);
    for (int64_t i = 0; i < n;) {
        int64_t start = i;
        int64_t p_end;
        int64_t a_end;
        assert_int_equal(ids[i], BYTE_BOS);
        assert_int_equal(labels[i], -100);
        i++;
        while (i < n && labels[i] == -100) {
            assert_true(ids[i] != BYTE_BOS && ids[i] != BYTE_EOS);
            i++;
        }
        p_end = i;
        while (i < n && ids[i] != BYTE_EOS) {
            assert_int_equal(labels[i], ids[i]);
            i++;
        }
        a_end = i;
        assert_true(a_end > p_end);
        assert_true(i < n);
        assert_int_equal(labels[i], BYTE_EOS);
        i++;
        prompt = byte_decode(ids + start + 1, p_end - start - 1);
        if (strncmp(prompt, prompt_input_head, ni) == 0) {
            with_input++;
            assert_non_null(strstr(prompt + ni, "\n\n### Input:\n"));
        } else {
            assert_memory_equal(prompt, prompt_no_input_head, nh);
        }
        assert_true(strlen(prompt) > 16);
        assert_string_equal(prompt + strlen(prompt) - 16, "\n\n### Response:\n");
        if (samples == 0) {
            char want[256];
            snprintf(want, sizeof(want), "%sGive three tips for staying healthy.\n\n### Response:\n",
                     prompt_no_input_head);
            assert_string_equal(prompt, want);
        }
        free(prompt);
        samples++;
    }
    assert_int_equal(samples, 1000);
    assert_int_equal(with_input, 409);

    /* JSON lines and gzip give the same dataset */
    write_variants(path, &jsonl, &gz);
    if (lc_dataset_load_with(&ds2, jsonl, &byte_enc, NULL, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    check_same_dataset(ds, ds2);
    lc_dataset_free(ds2);
    if (lc_dataset_load_with(&ds2, gz, &byte_enc, NULL, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    check_same_dataset(ds, ds2);
    lc_dataset_free(ds2);
    lc_dataset_free(ds);
}

static void test_text_file(void **state)
{
    const char *path = lc_test_data_file(STORIES_FILE);
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    size_t len = 0;
    char *text = read_all(path, &len);
    size_t cut;
    char *back = NULL;
    (void)state;

    /* the held-out part: the line that starts at or after 90% of the bytes */
    cut = (size_t)floor((1.0 - 0.1) * (double)len);
    while (text[cut - 1] != '\n') {
        cut++;
    }
    assert_true(cut < len);

    lc_data_opts_default(&o);
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_TEXT);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.train_tokens, (int64_t)cut + 1);
    assert_int_equal(st.val_tokens, (int64_t)(len - cut) + 1);

    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(ids[0], BYTE_BOS);
    assert_memory_equal(ids, labels, (size_t)n * sizeof(int32_t));
    back = byte_decode(ids + 1, n - 1);
    assert_memory_equal(back, text, cut);
    free(back);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(ids[0], BYTE_BOS);
    assert_memory_equal(ids, labels, (size_t)n * sizeof(int32_t));
    back = byte_decode(ids + 1, n - 1);
    assert_memory_equal(back, text + cut, len - cut);
    free(back);
    /* ALL: the whole text as one stream with one BOS */
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_ALL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, (int64_t)len + 1);
    assert_int_equal(ids[0], BYTE_BOS);
    back = byte_decode(ids + 1, n - 1);
    assert_memory_equal(back, text, len);
    free(back);
    lc_dataset_free(ds);

    /* no held-out part; everything held out; a forced format on text */
    o.val_fraction = 0.0;
    o.format = LC_DATA_TEXT;
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.train_tokens, (int64_t)len + 1);
    assert_int_equal(st.val_tokens, 0);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_ALL, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, (int64_t)len + 1);
    lc_dataset_free(ds);
    o.val_fraction = 1.0;
    assert_int_equal(lc_dataset_load_with(&ds, path, &byte_enc, &o, &err), LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.train_tokens, 0);
    assert_int_equal(st.val_tokens, (int64_t)len + 1);
    lc_dataset_free(ds);
    free(text);

    /* a JSON-looking file read as text when asked */
    o.val_fraction = 0.0;
    assert_int_equal(lc_dataset_load_with(&ds, write_text("brackets.txt", "[Verse 1]\nla la\n"),
                                          &byte_enc, &o, &err),
                     LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.train_tokens, 17);
    lc_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* Packing                                                                   */

static void check_pack_matches(const struct lc_dataset *ds, enum lc_data_split split,
                               int seq_len)
{
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    int32_t *pi = NULL;
    int32_t *pl = NULL;
    int64_t chunks = 0;
    int64_t k = 0;
    struct lc_error err = {0};

    assert_int_equal(lc_dataset_stream(ds, split, &ids, &labels, &n), LC_OK);
    assert_int_equal(lc_dataset_pack(ds, split, seq_len, &pi, &pl, &chunks, &err), LC_OK);
    /* the kept chunks are, in order, the full chunks with a label */
    for (int64_t c = 0; c < n / seq_len; c++) {
        int any = 0;
        for (int i = 0; i < seq_len; i++) {
            any |= labels[c * seq_len + i] != -100;
        }
        if (!any) {
            continue;
        }
        assert_true(k < chunks);
        assert_memory_equal(pi + k * seq_len, ids + c * seq_len, (size_t)seq_len * 4);
        assert_memory_equal(pl + k * seq_len, labels + c * seq_len, (size_t)seq_len * 4);
        k++;
    }
    assert_int_equal(k, chunks);
    free(pi);
    free(pl);
}

static void test_pack(void **state)
{
    struct lc_data_opts o;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    int32_t *pi = NULL;
    int32_t *pl = NULL;
    int64_t chunks = 0;
    char instr[301];
    char content[1024];
    char *prompt = NULL;
    size_t plen = 0;
    (void)state;

    /* text: every full chunk is kept */
    lc_data_opts_default(&o);
    assert_int_equal(lc_dataset_load_with(&ds, lc_test_data_file(STORIES_FILE), &byte_enc, &o,
                                          &err),
                     LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(lc_dataset_pack(ds, LC_SPLIT_TRAIN, 256, &pi, &pl, &chunks, &err), LC_OK);
    assert_int_equal(chunks, st.train_tokens / 256);
    free(pi);
    free(pl);
    check_pack_matches(ds, LC_SPLIT_TRAIN, 256);
    check_pack_matches(ds, LC_SPLIT_VAL, 1000);
    /* a chunk longer than the split: none */
    assert_int_equal(lc_dataset_pack(ds, LC_SPLIT_VAL, (int)st.val_tokens + 1, &pi, &pl, &chunks,
                                     &err),
                     LC_OK);
    assert_int_equal(chunks, 0);
    assert_null(pi);
    assert_null(pl);
    assert_int_equal(lc_dataset_pack(ds, LC_SPLIT_TRAIN, 0, &pi, &pl, &chunks, &err), LC_ERR_ARG);
    assert_int_equal(lc_dataset_pack(ds, (enum lc_data_split)5, 8, &pi, &pl, &chunks, &err),
                     LC_ERR_ARG);
    lc_dataset_free(ds);

    /* one record with a 300-byte instruction: the chunks holding only the
     * prompt go */
    memset(instr, 'q', 300);
    instr[300] = '\0';
    snprintf(content, sizeof(content), "{\"instruction\": \"%s\", \"output\": \"%s\"}\n", instr,
             "an answer of some length, long enough to fill a few chunks of sixteen tokens");
    o.val_records = 0;
    assert_int_equal(lc_dataset_load_with(&ds, write_text("long-prompt.jsonl", content),
                                          &byte_enc, &o, &err),
                     LC_OK);
    lc_dataset_stats(ds, &st);
    assert_int_equal(lc_alpaca_prompt(instr, 300, "", 0, &prompt, &plen), LC_OK);
    free(prompt);
    assert_int_equal(st.train_tokens, 1 + (int64_t)plen + 76 + 1);
    assert_int_equal(lc_dataset_pack(ds, LC_SPLIT_TRAIN, 16, &pi, &pl, &chunks, &err), LC_OK);
    /* chunk c is kept iff it reaches past the 1 + plen ignored tokens */
    assert_int_equal(chunks, st.train_tokens / 16 - (1 + (int64_t)plen) / 16);
    assert_true(chunks < st.train_tokens / 16);
    free(pi);
    free(pl);
    check_pack_matches(ds, LC_SPLIT_TRAIN, 16);
    lc_dataset_free(ds);

    /* the Alpaca file, both splits (the test is skipped here without it) */
    assert_int_equal(lc_dataset_load_with(&ds, lc_test_data_file(ALPACA_FILE), &byte_enc, NULL,
                                          &err),
                     LC_OK);
    check_pack_matches(ds, LC_SPLIT_TRAIN, 1024);
    check_pack_matches(ds, LC_SPLIT_VAL, 512);
    check_pack_matches(ds, LC_SPLIT_TRAIN, 64);
    lc_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* Shuffling                                                                 */

static void check_permutation(const int64_t *perm, int64_t n)
{
    char *seen = calloc((size_t)n + 1, 1);
    assert_non_null(seen);
    for (int64_t i = 0; i < n; i++) {
        assert_true(perm[i] >= 0 && perm[i] < n);
        assert_false(seen[perm[i]]);
        seen[perm[i]] = 1;
    }
    free(seen);
}

static void test_shuffle(void **state)
{
    enum { N = 1000 };
    int64_t *a = malloc(N * sizeof(int64_t));
    int64_t *b = malloc(N * sizeof(int64_t));
    int64_t counts[6] = {0};
    int64_t pos_counts[10][10];
    int64_t one = -1;
    (void)state;

    assert_non_null(a);
    assert_non_null(b);
    lc_shuffle(a, N, 42, 0);
    check_permutation(a, N);
    lc_shuffle(b, N, 42, 0);
    assert_memory_equal(a, b, N * sizeof(int64_t));
    /* another epoch, another seed: another order */
    lc_shuffle(b, N, 42, 1);
    check_permutation(b, N);
    assert_memory_not_equal(a, b, N * sizeof(int64_t));
    lc_shuffle(b, N, 43, 0);
    assert_memory_not_equal(a, b, N * sizeof(int64_t));
    /* not the identity */
    {
        int64_t fixed = 0;
        for (int64_t i = 0; i < N; i++) {
            fixed += a[i] == i;
        }
        assert_true(fixed < 10);
    }
    lc_shuffle(&one, 1, 1, 1);
    assert_int_equal(one, 0);
    lc_shuffle(NULL, 0, 1, 1);

    /* uniform over the 6 orders of 3 items (6000 epochs: 1000 each,
     * standard deviation about 29) */
    for (int64_t e = 0; e < 6000; e++) {
        int64_t p[3];
        lc_shuffle(p, 3, 7, e);
        check_permutation(p, 3);
        counts[p[0] * 2 + (p[1] > p[2] ? 1 : 0)]++;
    }
    for (int i = 0; i < 6; i++) {
        assert_true(counts[i] > 850 && counts[i] < 1150);
    }
    /* every item lands in every place about equally often */
    memset(pos_counts, 0, sizeof(pos_counts));
    for (int64_t e = 0; e < 10000; e++) {
        int64_t p[10];
        lc_shuffle(p, 10, 1234, e);
        for (int i = 0; i < 10; i++) {
            pos_counts[i][p[i]]++;
        }
    }
    for (int i = 0; i < 10; i++) {
        for (int j = 0; j < 10; j++) {
            assert_true(pos_counts[i][j] > 850 && pos_counts[i][j] < 1150);
        }
    }
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* With the stories260K tokenizer, against the reference tokenization        */
/* (data/ref/data_stories260k.json, made by data/gen/make_data_ref.py)       */

#define STORIES_TOKENIZER "models/stories260K-hf/tokenizer.model"
#define REF_BLOCK 4096

static uint64_t fnv1a(const int32_t *v, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)v[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static json_t *load_ref(void)
{
    json_error_t jerr;
    json_t *ref = json_load_file(lc_test_project_path("ref/data_stories260k.json"), 0, &jerr);
    if (ref == NULL) {
        fail_msg("data_stories260k.json: %s", jerr.text);
    }
    return ref;
}

static struct lc_tokenizer *open_tokenizer(void)
{
    struct lc_tokenizer *tok = NULL;
    struct lc_error err = {0};
    if (lc_tokenizer_open(&tok, lc_test_data_file(STORIES_TOKENIZER), &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    return tok;
}

static uint64_t hex_u64(const json_t *v)
{
    assert_true(json_is_string(v));
    return strtoull(json_string_value(v), NULL, 16);
}

/* a stream against {"n", "ids_fnv", "blocks_fnv", ["labels_fnv"]}; on a
 * difference, says in which block of REF_BLOCK tokens it starts */
static void check_stream_ref(const char *what, const int32_t *ids, const int32_t *labels,
                             int64_t n, const json_t *ref)
{
    const json_t *blocks = json_object_get(ref, "blocks_fnv");
    int64_t want_n = json_integer_value(json_object_get(ref, "n"));

    for (size_t b = 0; b < json_array_size(blocks); b++) {
        int64_t start = (int64_t)b * REF_BLOCK;
        int64_t len = n - start < REF_BLOCK ? n - start : REF_BLOCK;
        if (len <= 0 || fnv1a(ids + start, len) != hex_u64(json_array_get(blocks, b))) {
            fail_msg("%s: tokens differ from the reference in block %zu (tokens %lld..%lld; "
                     "%lld tokens, reference %lld)",
                     what, b, (long long)start, (long long)(start + REF_BLOCK - 1), (long long)n,
                     (long long)want_n);
        }
    }
    assert_int_equal(n, want_n);
    assert_true(fnv1a(ids, n) == hex_u64(json_object_get(ref, "ids_fnv")));
    if (json_object_get(ref, "labels_fnv") != NULL) {
        assert_true(fnv1a(labels, n) == hex_u64(json_object_get(ref, "labels_fnv")));
    }
}

static void test_tokenized_text(void **state)
{
    struct lc_tokenizer *tok = open_tokenizer();
    json_t *ref = load_ref();
    json_t *tref = json_object_get(ref, "text");
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    int32_t *pi = NULL;
    int32_t *pl = NULL;
    int64_t chunks = 0;
    char *text = NULL;
    size_t len = 0;
    const json_t *first = json_object_get(tref, "train_first");
    (void)state;

    assert_int_equal(lc_tokenizer_bos(tok), json_integer_value(json_object_get(ref, "bos")));
    assert_int_equal(lc_tokenizer_eos(tok), json_integer_value(json_object_get(ref, "eos")));
    if (lc_dataset_load(&ds, lc_test_data_file(STORIES_FILE), tok, NULL, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    /* the cut as the reference script finds it */
    text = read_all(lc_test_data_file(STORIES_FILE), &len);
    assert_int_equal(lc_data_text_cut(text, len, 0.1),
                     json_integer_value(json_object_get(tref, "cut")));
    free(text);

    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_TEXT);
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    assert_int_equal(ids[0], lc_tokenizer_bos(tok));
    for (size_t i = 0; i < json_array_size(first) && (int64_t)i < n; i++) {
        if (ids[i] != json_integer_value(json_array_get(first, i))) {
            fail_msg("train token %zu: %d, reference %lld", i, ids[i],
                     (long long)json_integer_value(json_array_get(first, i)));
        }
    }
    check_stream_ref("text train", ids, labels, n, json_object_get(tref, "train"));
    assert_memory_equal(ids, labels, (size_t)n * sizeof(int32_t));
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    check_stream_ref("text val", ids, labels, n, json_object_get(tref, "val"));

    /* packing: every full chunk of the train stream */
    assert_int_equal(lc_dataset_pack(ds, LC_SPLIT_TRAIN, 512, &pi, &pl, &chunks, &err), LC_OK);
    assert_int_equal(chunks, st.train_tokens / 512);
    free(pi);
    free(pl);
    lc_dataset_free(ds);
    json_decref(ref);
    lc_tokenizer_close(tok);
}

static void test_tokenized_alpaca(void **state)
{
    const char *alpaca = lc_test_data_file(ALPACA_FILE); /* skipped before allocating */
    struct lc_tokenizer *tok = open_tokenizer();
    json_t *ref = load_ref();
    json_t *aref = json_object_get(ref, "alpaca");
    const json_t *lengths = json_object_get(aref, "lengths");
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    int32_t bos = lc_tokenizer_bos(tok);
    int32_t eos = lc_tokenizer_eos(tok);
    int64_t record = 0;
    int64_t with_input = 0;
    (void)state;

    if (lc_dataset_load(&ds, alpaca, tok, NULL, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    lc_dataset_stats(ds, &st);
    assert_int_equal(st.format, LC_DATA_ALPACA);
    assert_int_equal(st.records, json_integer_value(json_object_get(aref, "records")));
    assert_int_equal(st.records, 1000);

    /* every sample: BOS, prompt (-100), answer labeled as itself, EOS;
     * lengths as the reference, prompts decoding to the template */
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_ALL, &ids, &labels, &n), LC_OK);
    for (int64_t i = 0; i < n; record++) {
        int64_t start = i;
        int64_t plen;
        int64_t alen;
        char *prompt = NULL;
        size_t prompt_len = 0;
        const json_t *want = json_array_get(lengths, (size_t)record);

        assert_true(record < 1000);
        assert_int_equal(ids[i], bos);
        while (i < n && labels[i] == -100) {
            i++;
        }
        plen = i - start;
        while (i < n && ids[i] != eos) {
            assert_int_equal(labels[i], ids[i]);
            i++;
        }
        assert_true(i < n);
        assert_int_equal(labels[i], eos);
        i++;
        alen = i - start - plen;
        if (plen != json_integer_value(json_array_get(want, 0)) ||
            alen != json_integer_value(json_array_get(want, 1))) {
            fail_msg("record %lld: prompt %lld + answer %lld tokens, reference %lld + %lld",
                     (long long)(record + 1), (long long)plen, (long long)alen,
                     (long long)json_integer_value(json_array_get(want, 0)),
                     (long long)json_integer_value(json_array_get(want, 1)));
        }
        if (lc_tokenizer_decode(tok, ids + start, (size_t)plen, &prompt, &prompt_len, &err) !=
            LC_OK) {
            fail_msg("%s", err.msg);
        }
        with_input += strstr(prompt, "\n\n### Input:\n") != NULL;
        if (record == 0) {
            char expect[256];
            snprintf(expect, sizeof(expect),
                     "%sGive three tips for staying healthy.\n\n### Response:\n",
                     prompt_no_input_head);
            assert_string_equal(prompt, expect);
        }
        free(prompt);
    }
    assert_int_equal(record, 1000);
    assert_int_equal(with_input, 409);
    assert_int_equal(with_input, json_integer_value(json_object_get(aref, "with_input")));

    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_TRAIN, &ids, &labels, &n), LC_OK);
    check_stream_ref("alpaca train", ids, labels, n, json_object_get(aref, "train"));
    assert_int_equal(lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n), LC_OK);
    check_stream_ref("alpaca val", ids, labels, n, json_object_get(aref, "val"));
    check_pack_matches(ds, LC_SPLIT_TRAIN, 1024);

    /* arguments */
    lc_dataset_free(ds);
    assert_int_equal(lc_dataset_load(&ds, alpaca, NULL, NULL, &err),
                     LC_ERR_ARG);
    assert_null(ds);
    json_decref(ref);
    lc_tokenizer_close(tok);
}

int main(void)
{
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_text_cut),
        cmocka_unit_test(test_alpaca_prompt),
        cmocka_unit_test(test_alpaca_layout),
        cmocka_unit_test(test_text_records_layout),
        cmocka_unit_test(test_encoder_variants),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_gzip),
        cmocka_unit_test(test_skipped_records),
        cmocka_unit_test(test_shuffle),
    };
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_alpaca_file),
        cmocka_unit_test(test_text_file),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_tokenized_text),
        cmocka_unit_test(test_tokenized_alpaca),
    };
    int failed = cmocka_run_group_tests_name("own data", own, NULL, NULL);

    /* data/ bundles the text and the tokenizer; a test that needs the
     * Alpaca file of the shared data is skipped without it */
    failed += cmocka_run_group_tests_name("shared data", shared, NULL, NULL);
    return failed != 0 ? 1 : 0;
}
