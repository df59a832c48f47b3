/* Tokenizers: llama.cpp's test cases for Llama 2 and Llama 3, llama.cpp's
 * ids and decoded texts of the round trip's hard cases, round trips
 * on real text and invalid UTF-8, tokenizer.json against the Hugging Face
 * library's ids (data/tokenizers/expected_ids.json), and bad input for
 * every loader. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "core/gguf.h"
#include "core/tensorfile.h"
#include "core/tok_vocab.h"
#include "core/tokenizer.h"
#include "core/util.h"
#include "tests/lc_test.h"

/* ---------------------------------------------------------------- helpers */

static struct lc_tokenizer *open_ok(const char *path)
{
    struct lc_tokenizer *tok = NULL;
    struct lc_error err = {0};
    if (lc_tokenizer_open(&tok, path, &err) != LC_OK) {
        fail_msg("open %s: %s", path, err.msg);
    }
    return tok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void encode_ok(const struct lc_tokenizer *tok, const char *text, size_t len,
                      unsigned flags, int32_t **ids, size_t *n)
{
    struct lc_error err = {0};
    if (lc_tokenizer_encode(tok, text, len, flags, ids, n, &err) != LC_OK) {
        fail_msg("encode: %s", err.msg);
    }
}

/* decode(ids) must give exactly text[0..len), and so must the streaming
 * decoder, token by token. */
static void check_decodes_to(const struct lc_tokenizer *tok, const int32_t *ids, size_t n,
                             const char *text, size_t len, const char *what)
{
    struct lc_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    char *stream = malloc(len + 64);
    size_t pos = 0;

    assert_non_null(stream);
    if (lc_tokenizer_decode(tok, ids, n, &out, &out_len, &err) != LC_OK) {
        fail_msg("decode %s: %s", what, err.msg);
    }
    if (out_len != len || memcmp(out, text, len) != 0) {
        size_t i = 0;
        while (i < len && i < out_len && out[i] == text[i]) {
            i++;
        }
        fail_msg("%s: decode gives %zu bytes, want %zu; first difference at byte %zu", what,
                 out_len, len, i);
    }
    assert_int_equal(out[out_len], '\0');
    for (size_t i = 0; i < n; i++) {
        size_t k = lc_tokenizer_decode_next(tok, i > 0 ? ids[i - 1] : -1, ids[i], NULL, 0);
        assert_true(pos + k <= len + 64);
        assert_int_equal(lc_tokenizer_decode_next(tok, i > 0 ? ids[i - 1] : -1, ids[i],
                                                  stream + pos, k),
                         k);
        pos += k;
    }
    assert_int_equal(pos, len);
    assert_memory_equal(stream, text, len);
    free(stream);
    free(out);
}

static void check_roundtrip(const struct lc_tokenizer *tok, const char *text, size_t len,
                            const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    encode_ok(tok, text, len, 0, &ids, &n);
    check_decodes_to(tok, ids, n, text, len, what);
    free(ids);
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n && i < 40; i++) {
        fprintf(stderr, " %d", ids[i]);
    }
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* ---------------------------------------------------------------- llama.cpp cases */

/* .inp holds texts each followed by "\n__ggml_vocab_test__\n" (so
 * splitting on it leaves an empty piece after the last text); .out has
 * one line of space-separated ids per text. */
static void run_llamacpp_cases(const struct lc_tokenizer *tok, const char *inp_rel,
                               const char *out_rel)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t inp_len, out_len;
    char *inp = lc_test_read_file(lc_test_data_file(inp_rel), &inp_len);
    char *out = lc_test_read_file(lc_test_data_file(out_rel), &out_len);
    char *p = inp, *q = out;
    int n_cases = 0, bad = 0;

    for (;;) {
        char *end = strstr(p, sep);
        char *eol;
        int32_t want[512];
        size_t n_want = 0;
        int32_t *ids = NULL;
        size_t n = 0;
        char *s;

        if (end == NULL) {
            break;
        }
        eol = strchr(q, '\n');
        assert_non_null(eol);
        *eol = '\0';
        for (s = q; *s != '\0';) {
            char *e;
            long v = strtol(s, &e, 10);
            if (e == s) {
                break;
            }
            assert_true(n_want < 512);
            want[n_want++] = (int32_t)v;
            s = e;
        }
        encode_ok(tok, p, (size_t)(end - p), 0, &ids, &n);
        if (!ids_equal(ids, n, want, n_want)) {
            fprintf(stderr, "case %d (%.40s): ids differ\n", n_cases, p);
            print_ids("got ", ids, n);
            print_ids("want", want, n_want);
            bad++;
        }
        check_decodes_to(tok, ids, n, p, (size_t)(end - p), "llama.cpp case");
        free(ids);
        n_cases++;
        p = end + strlen(sep);
        q = eol + 1;
    }
    /* every text was consumed, and every line of ids */
    assert_int_equal(*p, '\0');
    assert_int_equal(*q, '\0');
    assert_int_equal(n_cases, 46);
    assert_int_equal(bad, 0);
    free(inp);
    free(out);
}

static void test_llama2_spm_cases(void **state)
{
    struct lc_tokenizer *tok = open_ok(lc_test_data_file("tokenizers/llama2-spm/tokenizer.model"));
    (void)state;
    assert_int_equal(lc_tokenizer_vocab_size(tok), 32000);
    assert_int_equal(lc_tokenizer_bos(tok), 1);
    assert_int_equal(lc_tokenizer_eos(tok), 2);
    assert_true(lc_tokenizer_wants_bos(tok));
    run_llamacpp_cases(tok, "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.inp",
                       "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.out");
    lc_tokenizer_close(tok);
}

static void test_llama3_cases(void **state)
{
    struct lc_tokenizer *tok = open_ok(lc_test_data_file("tokenizers/llama3-bpe"));
    (void)state;
    assert_int_equal(lc_tokenizer_vocab_size(tok), 128256);
    assert_int_equal(lc_tokenizer_bos(tok), 128000);
    assert_int_equal(lc_tokenizer_eos(tok), 128001);
    assert_true(lc_tokenizer_wants_bos(tok));
    run_llamacpp_cases(tok, "tokenizers/llama3-bpe/ggml-vocab-llama-bpe.gguf.inp",
                       "tokenizers/llama3-bpe/ggml-vocab-llama-bpe.gguf.out");
    lc_tokenizer_close(tok);
}

/* ---------------------------------------------------------------- special tokens */

static void expect_ids(const struct lc_tokenizer *tok, const char *text, unsigned flags,
                       const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    encode_ok(tok, text, strlen(text), flags, &ids, &n);
    if (!ids_equal(ids, n, want, n_want)) {
        fprintf(stderr, "'%s' (flags %u):\n", text, flags);
        print_ids("got ", ids, n);
        print_ids("want", want, n_want);
        fail();
    }
    free(ids);
}

static void test_llama2_gguf_cases(void **state)
{
    struct lc_tokenizer *tok =
        open_ok(lc_test_data_file("tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf"));
    (void)state;
    assert_int_equal(lc_tokenizer_vocab_size(tok), 32000);
    assert_int_equal(lc_tokenizer_bos(tok), 1);
    assert_int_equal(lc_tokenizer_eos(tok), 2);
    assert_true(lc_tokenizer_wants_bos(tok));
    run_llamacpp_cases(tok, "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.inp",
                       "tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.out");
    lc_tokenizer_close(tok);
}

/* Two tokenizers hold the same vocabulary: pieces, scores, types, ids. */
static void check_same_vocab(const struct lc_tokenizer *a, const struct lc_tokenizer *b)
{
    assert_int_equal(a->n_vocab, b->n_vocab);
    assert_int_equal(a->bos, b->bos);
    assert_int_equal(a->eos, b->eos);
    assert_int_equal(a->unk, b->unk);
    assert_int_equal(a->wants_bos, b->wants_bos);
    for (int32_t i = 0; i < a->n_vocab; i++) {
        assert_int_equal(a->piece_len[i], b->piece_len[i]);
        assert_memory_equal(a->pool + a->piece_off[i], b->pool + b->piece_off[i], a->piece_len[i]);
        assert_true(a->score[i] == b->score[i]);
        assert_int_equal(a->type[i], b->type[i]);
    }
}

/* The stories260K GGUF embeds tok512: the same ids as tokenizer.model on
 * whole files; llama-2-tiny-random embeds Llama 2's vocabulary. */
static void test_gguf_vocab_matches_model(void **state)
{
    static const char *const files[] = {"text/tinystories/tinystories_val.txt",
                                        "text/alpaca-cleaned/alpaca_data_cleaned.json"};
    /* every file first: a missing one skips the test before it allocates */
    const char *paths[2] = {lc_test_data_file(files[0]), lc_test_data_file(files[1])};
    const char *tiny = lc_test_data_file("models/llama-2-tiny-random/llama-2-tiny-random.gguf");
    const char *llama2 = lc_test_data_file("tokenizers/llama2-spm/tokenizer.model");
    struct lc_tokenizer *gg = open_ok(lc_test_data_file("models/stories260K/stories260K.gguf"));
    struct lc_tokenizer *sp = open_ok(lc_test_data_file("models/stories260K-hf/tokenizer.model"));
    struct lc_tokenizer *l2g = open_ok(tiny);
    struct lc_tokenizer *l2 = open_ok(llama2);
    (void)state;
    check_same_vocab(gg, sp);
    check_same_vocab(l2g, l2);
    for (int f = 0; f < 2; f++) {
        size_t len;
        char *text = lc_test_read_file(paths[f], &len);
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        encode_ok(gg, text, len, LC_TOK_ADD_BOS, &a, &na);
        encode_ok(sp, text, len, LC_TOK_ADD_BOS, &b, &nb);
        assert_true(ids_equal(a, na, b, nb));
        assert_int_equal(a[0], 1);
        check_decodes_to(gg, a, na, text, len, files[f]);
        free(a);
        free(b);
        free(text);
    }
    lc_tokenizer_close(gg);
    lc_tokenizer_close(sp);
    lc_tokenizer_close(l2g);
    lc_tokenizer_close(l2);
}

static void test_special_tokens(void **state)
{
    const char *llama3 = lc_test_data_file("tokenizers/llama3-bpe");
    struct lc_tokenizer *l2 = open_ok(lc_test_data_file("tokenizers/llama2-spm/tokenizer.model"));
    struct lc_tokenizer *l3 = open_ok(llama3);
    char buf[64];
    (void)state;

    /* Llama 2: "<s>" is text unless asked; a segment after a special
     * token gets its own dummy prefix (as llama.cpp and HF legacy do) */
    {
        const int32_t plain[] = {29871, 15043}; /* "▁" "▁Hello" */
        const int32_t hello[] = {15043};
        const int32_t special[] = {1, 15043, 2};
        const int32_t bos[] = {1, 15043};
        int32_t *ids = NULL;
        size_t n = 0;
        expect_ids(l2, " Hello", 0, plain, 2);
        expect_ids(l2, "Hello", 0, hello, 1);
        expect_ids(l2, "<s>Hello</s>", LC_TOK_PARSE_SPECIAL, special, 3);
        expect_ids(l2, "Hello", LC_TOK_ADD_BOS, bos, 2);
        encode_ok(l2, "<s>Hello</s>", 12, 0, &ids, &n);
        for (size_t i = 0; i < n; i++) {
            assert_true(ids[i] > 2);
        }
        check_decodes_to(l2, ids, n, "<s>Hello</s>", 12, "<s> as text");
        free(ids);
        /* BOS and EOS decode to nothing; the dummy space goes after BOS */
        check_decodes_to(l2, special, 3, "Hello", 5, "special ids");
        expect_ids(l2, "", LC_TOK_ADD_BOS, bos, 1);
        expect_ids(l2, "", 0, NULL, 0);
    }
    /* Llama 3 */
    {
        const int32_t chat[] = {128000, 128006, 882, 128007, 271, 13347, 128009};
        const int32_t hello[] = {128000, 9906};
        int32_t *ids = NULL;
        size_t n = 0;
        expect_ids(l3, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
                   LC_TOK_PARSE_SPECIAL, chat, 7);
        expect_ids(l3, "Hello", LC_TOK_ADD_BOS, hello, 2);
        encode_ok(l3, "<|eot_id|>", 10, 0, &ids, &n);
        assert_true(n > 1);
        for (size_t i = 0; i < n; i++) {
            assert_true(ids[i] < 128000);
        }
        free(ids);
        /* names of the added ids: Llama 3.1/3.2's */
        assert_int_equal(lc_tokenizer_decode_next(l3, -1, 128009, buf, sizeof(buf)), 0);
        assert_int_equal(lc_tok_lookup(l3, "<|eot_id|>", 10), 128009);
        assert_int_equal(lc_tok_lookup(l3, "<|python_tag|>", 14), 128010);
        assert_int_equal(lc_tok_lookup(l3, "<|reserved_special_token_0|>", 28), 128002);
        assert_int_equal(lc_tok_lookup(l3, "<|reserved_special_token_2|>", 28), 128005);
        assert_int_equal(lc_tok_lookup(l3, "<|reserved_special_token_3|>", 28), 128011);
        assert_int_equal(lc_tok_lookup(l3, "<|reserved_special_token_247|>", 30), 128255);
    }
    lc_tokenizer_close(l2);
    lc_tokenizer_close(l3);
}

/* ---------------------------------------------------------------- round trips */

static void roundtrip_files(const char *tok_rel, const char *name)
{
    static const char *const files[] = {"text/tinystories/tinystories_val.txt",
                                        "text/alpaca-cleaned/alpaca_data_cleaned.json"};
    const char *paths[2] = {lc_test_data_file(files[0]), lc_test_data_file(files[1])};
    struct lc_tokenizer *tok = open_ok(lc_test_data_file(tok_rel));
    for (int f = 0; f < 2; f++) {
        size_t len;
        char *text = lc_test_read_file(paths[f], &len);
        int32_t *ids = NULL;
        size_t n = 0;
        double t0 = now_s(), dt;
        encode_ok(tok, text, len, 0, &ids, &n);
        dt = now_s() - t0;
        fprintf(stderr, "%s: %s: %zu bytes -> %zu tokens in %.3f s\n", name, files[f], len, n, dt);
        /* a quadratic merge loop would take minutes here */
        assert_true(dt < 5.0);
        check_decodes_to(tok, ids, n, text, len, files[f]);
        free(ids);
        free(text);
    }
    lc_tokenizer_close(tok);
}

static void test_roundtrip_tok512(void **state)
{
    (void)state;
    roundtrip_files("models/stories260K-hf", "tok512");
}

static void test_roundtrip_llama2(void **state)
{
    (void)state;
    roundtrip_files("tokenizers/llama2-spm/tokenizer.model", "llama2");
}

static void test_roundtrip_llama3(void **state)
{
    (void)state;
    roundtrip_files("tokenizers/llama3-bpe", "llama3");
}

/* Merging line by line (the fast path) gives the ids of one merge over
 * the whole text (SentencePiece's own way). */
static void test_newline_splits(void **state)
{
    static const char *const toks[] = {"models/stories260K-hf/tokenizer.model",
                                       "tokenizers/llama2-spm/tokenizer.model"};
    const char *tok_paths[2] = {lc_test_data_file(toks[0]), lc_test_data_file(toks[1])};
    size_t len;
    char *text =
        lc_test_read_file(lc_test_data_file("text/alpaca-cleaned/alpaca_data_cleaned.json"), &len);
    (void)state;
    /* a third of the file keeps the single-merge run short */
    len /= 3;
    for (int t = 0; t < 2; t++) {
        struct lc_tokenizer *tok = open_ok(tok_paths[t]);
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        assert_true(tok->newline_splits);
        encode_ok(tok, text, len, 0, &a, &na);
        tok->newline_splits = 0;
        encode_ok(tok, text, len, 0, &b, &nb);
        assert_true(ids_equal(a, na, b, nb));
        free(a);
        free(b);
        lc_tokenizer_close(tok);
    }
    free(text);
}

/* Invalid UTF-8 is neither dropped nor a crash: SentencePiece gives byte
 * tokens, byte-level BPE its byte symbols. */
static void test_invalid_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        {"\x80", 1},
        {"\xff", 1},
        {"a\xbf\xbf b", 5},
        {"\xe2\x96", 2},               /* truncated "▁" */
        {"x\xe2\x96 y\xe2", 6},       /* truncated mid-text and at the end */
        {"\xc0\xaf", 2},               /* overlong "/" */
        {"\xed\xa0\x80", 3},           /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4},       /* past U+10FFFF */
        {"\xf0\x9f\x98", 3},           /* truncated emoji */
        {" \xfe\xff\n\xff\xff Hello", 12},
        {"caf\xc3\xa9\xc3", 6},
        {"\0nul\0", 5},
    };
    static const char *const toks[] = {"models/stories260K-hf",
                                       "tokenizers/llama2-spm/tokenizer.model",
                                       "tokenizers/llama3-bpe"};
    const char *paths[3] = {lc_test_data_file(toks[0]), lc_test_data_file(toks[1]),
                            lc_test_data_file(toks[2])};
    (void)state;
    for (int t = 0; t < 3; t++) {
        struct lc_tokenizer *tok = open_ok(paths[t]);
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            check_roundtrip(tok, cases[c].s, cases[c].len, toks[t]);
        }
        /* a lone 0xFF is its own byte token */
        {
            int32_t *ids = NULL;
            size_t n = 0;
            encode_ok(tok, "\xff", 1, 0, &ids, &n);
            assert_int_equal(ids[n - 1], tok->byte_id[0xFF]);
            free(ids);
        }
        lc_tokenizer_close(tok);
    }
}

/* ---------------------------------------------------------------- stories260K */

static void test_stories_greedy_text(void **state)
{
    /* data README section 1: BOS and the 32 greedy ids after it */
    static const int32_t ids[] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                  315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
                                  408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385};
    /* the text listed there (one line; it runs on past the 32 ids) */
    static const char listed[] =
        " Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high";
    /* what the 32 ids stand for: the pieces joined give " Once ... One";
     * at the start of a text the decoder drops the dummy-prefix space (as
     * SentencePiece and llama2.c do) */
    static const char text[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One";
    struct lc_tokenizer *tok = open_ok(lc_test_data_file("models/stories260K-hf"));
    char buf[16];
    (void)state;
    assert_memory_equal(listed + 1, text, strlen(text));
    check_decodes_to(tok, ids, 33, text, strlen(text), "greedy ids after BOS");
    check_decodes_to(tok, ids + 1, 32, text, strlen(text), "greedy ids");
    /* in the middle of a text the space stays */
    assert_int_equal(lc_tokenizer_decode_next(tok, 385, 403, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, " Once", 5);
    /* and encoding the text gives these ids back */
    {
        int32_t *got = NULL;
        size_t n = 0;
        encode_ok(tok, text, strlen(text), LC_TOK_ADD_BOS, &got, &n);
        assert_true(ids_equal(got, n, ids, 33));
        free(got);
    }
    /* folder with tokenizer_config.json */
    assert_int_equal(lc_tokenizer_bos(tok), 1);
    assert_int_equal(lc_tokenizer_eos(tok), 2);
    assert_true(lc_tokenizer_wants_bos(tok));
    assert_int_equal(lc_tokenizer_vocab_size(tok), 512);
    lc_tokenizer_close(tok);
}

/* ---------------------------------------------------------------- tokenizer.json vs Python */

static int32_t *json_ids(json_t *arr, size_t *n)
{
    size_t i;
    json_t *v;
    int32_t *ids = malloc(json_array_size(arr) * sizeof(*ids) + 1);
    assert_non_null(ids);
    json_array_foreach(arr, i, v) {
        ids[i] = (int32_t)json_integer_value(v);
    }
    *n = json_array_size(arr);
    return ids;
}

static void check_python_cases(const struct lc_tokenizer *tok, json_t *cases, const char *name)
{
    size_t i;
    json_t *c;
    int bad = 0;
    static const struct {
        const char *key;
        unsigned flags;
    } kinds[] = {{"ids", 0}, {"ids_special", LC_TOK_PARSE_SPECIAL}, {"ids_bos", LC_TOK_ADD_BOS}};

    assert_true(json_array_size(cases) > 30);
    json_array_foreach(cases, i, c) {
        json_t *text = json_object_get(c, "text");
        json_t *decoded = json_object_get(c, "decoded");
        const char *s = json_string_value(text);
        size_t len = json_string_length(text);
        for (int k = 0; k < 3; k++) {
            size_t n_want, n;
            int32_t *want = json_ids(json_object_get(c, kinds[k].key), &n_want);
            int32_t *ids = NULL;
            encode_ok(tok, s, len, kinds[k].flags, &ids, &n);
            if (!ids_equal(ids, n, want, n_want)) {
                fprintf(stderr, "%s case %zu '%.50s' %s differ\n", name, i, s, kinds[k].key);
                print_ids("got ", ids, n);
                print_ids("want", want, n_want);
                bad++;
            }
            if (k == 0) {
                check_decodes_to(tok, want, n_want, json_string_value(decoded),
                                 json_string_length(decoded), name);
            }
            free(ids);
            free(want);
        }
    }
    assert_int_equal(bad, 0);
}

static void test_hf_json_matches_python(void **state)
{
    static const struct {
        const char *key;
        const char *rel;
    } toks[] = {{"tok512-hf", "tokenizers/tok512-hf"},
                {"tok512-legacy.json", "tokenizers/tok512-legacy.json"},
                {"tok512-first.json", "tokenizers/tok512-first.json"},
                {"bbpe-small", "tokenizers/bbpe-small"}};
    json_error_t jerr;
    json_t *root = json_load_file(lc_test_project_path("tokenizers/expected_ids.json"), 0, &jerr);
    (void)state;
    assert_non_null(root);
    for (size_t t = 0; t < sizeof(toks) / sizeof(toks[0]); t++) {
        struct lc_tokenizer *tok = open_ok(lc_test_project_path(toks[t].rel));
        json_t *cases = json_object_get(json_object_get(root, "tokenizers"), toks[t].key);
        assert_non_null(cases);
        check_python_cases(tok, cases, toks[t].key);
        lc_tokenizer_close(tok);
    }
    json_decref(root);
}

static void test_hf_json_details(void **state)
{
    struct lc_tokenizer *hf = open_ok(lc_test_project_path("tokenizers/tok512-hf"));
    struct lc_tokenizer *bb = open_ok(lc_test_project_path("tokenizers/bbpe-small/tokenizer.json"));
    struct lc_tokenizer *legacy = open_ok(lc_test_project_path("tokenizers/tok512-legacy.json"));
    struct lc_tokenizer *spm = open_ok(lc_test_data_file("models/stories260K-hf/tokenizer.model"));
    size_t len;
    char *text = lc_test_read_file(lc_test_data_file("text/tinystories/tinystories_val.txt"), &len);
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    (void)state;

    /* BOS from the post-processor template / tokenizer_config.json */
    assert_int_equal(lc_tokenizer_bos(hf), 1);
    assert_int_equal(lc_tokenizer_eos(hf), 2);
    assert_true(lc_tokenizer_wants_bos(hf));
    assert_int_equal(lc_tokenizer_vocab_size(bb), 668);
    assert_int_equal(lc_tokenizer_bos(bb), 664);
    assert_int_equal(lc_tokenizer_eos(bb), 665);
    assert_true(lc_tokenizer_wants_bos(bb));
    assert_int_equal(hf->algo, LC_TOKA_SPM_RANK);
    assert_int_equal(bb->algo, LC_TOKA_BYTELEVEL);
    /* the legacy tokenizer.json (merges by rank) and tokenizer.model
     * (merges by score) give the same ids on a whole file */
    encode_ok(legacy, text, len, 0, &a, &na);
    encode_ok(spm, text, len, 0, &b, &nb);
    assert_true(ids_equal(a, na, b, nb));
    check_decodes_to(legacy, a, na, text, len, "legacy tokenizer.json");
    free(a);
    free(b);
    /* byte-level round trip of the whole file */
    check_roundtrip(bb, text, len, "bbpe-small");
    free(text);
    lc_tokenizer_close(hf);
    lc_tokenizer_close(bb);
    lc_tokenizer_close(legacy);
    lc_tokenizer_close(spm);
}

/* ---------------------------------------------------------------- llama.cpp round trips */

/* hex (two digits a byte) to bytes; *len the byte count */
static char *from_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* llama.cpp's ids and decoded texts for the GGUF vocabularies and Llama
 * 3's byte-level BPE (data/tokenizers/llamacpp_roundtrip.json,
 * data/gen/compare_llamacpp_tok.py): lolcats, reading the same GGUF files
 * (Llama 3: the encoder.json + vocab.bpe the script wrote llama.cpp's
 * GGUF from), gives the same ids and text, except where llama.cpp's own
 * decode breaks the round-trip rule.  That happens on invalid UTF-8 only:
 * with SentencePiece llama.cpp takes as many bytes as a lead byte
 * announces, whatever they are, so "\xff" swallows the "▁" of the space
 * after it, which then comes back as those three bytes; with byte-level
 * BPE it replaces invalid sequences with U+FFFD before encoding.  lolcats
 * keeps each invalid byte a symbol of its own, and the rule, there. */
static void test_llamacpp_roundtrip(void **state)
{
    json_error_t jerr;
    json_t *root =
        json_load_file(lc_test_project_path("tokenizers/llamacpp_roundtrip.json"), 0, &jerr);
    json_t *vocabs = json_object_get(root, "vocabularies");
    const char *name;
    json_t *v;
    int n_cases = 0, n_rule = 0, bad = 0;
    (void)state;
    assert_non_null(root);
    assert_int_equal(json_object_size(vocabs), 3);
    json_object_foreach(vocabs, name, v)
    {
        struct lc_tokenizer *tok =
            open_ok(lc_test_data_file(json_string_value(json_object_get(v, "lolcats"))));
        json_t *cases = json_object_get(v, "cases");
        assert_true(json_array_size(cases) > 50);
        for (size_t c = 0; c < json_array_size(cases); c++) {
            json_t *jc = json_array_get(cases, c);
            size_t len, want_len, rule_len, n, n_bos, n_want, n_want_bos;
            char *text = from_hex(json_string_value(json_object_get(jc, "text")), &len);
            char *want = from_hex(json_string_value(json_object_get(jc, "decoded")), &want_len);
            char *rule = lc_tok_roundtrip_text(tok, text, len, &rule_len);
            int32_t *want_ids = json_ids(json_object_get(jc, "ids"), &n_want);
            int32_t *want_bos = json_ids(json_object_get(jc, "ids_bos"), &n_want_bos);
            int32_t *ids = NULL, *bos = NULL;

            assert_non_null(rule);
            encode_ok(tok, text, len, 0, &ids, &n);
            encode_ok(tok, text, len, LC_TOK_ADD_BOS, &bos, &n_bos);
            if (want_len == rule_len && memcmp(want, rule, rule_len) == 0) {
                if (!ids_equal(ids, n, want_ids, n_want) ||
                    !ids_equal(bos, n_bos, want_bos, n_want_bos)) {
                    fprintf(stderr, "%s case %zu: ids differ from llama.cpp's\n", name, c);
                    print_ids("got ", ids, n);
                    print_ids("want", want_ids, n_want);
                    bad++;
                }
                check_decodes_to(tok, ids, n, want, want_len, name);
            } else {
                check_decodes_to(tok, ids, n, rule, rule_len, name);
                n_rule++;
            }
            n_cases++;
            free(ids);
            free(bos);
            free(want_ids);
            free(want_bos);
            free(rule);
            free(want);
            free(text);
        }
        lc_tokenizer_close(tok);
    }
    assert_int_equal(bad, 0);
    /* the two invalid-UTF-8 texts of each SentencePiece vocabulary, and
     * Llama 3's invalid UTF-8 (surrogates aside, which llama.cpp keeps) */
    assert_int_equal(n_rule, 13);
    assert_true(n_cases > 100);
    json_decref(root);
}

/* ---------------------------------------------------------------- API */

static void test_api_errors(void **state)
{
    struct lc_tokenizer *tok = open_ok(lc_test_data_file("models/stories260K-hf"));
    struct lc_error err = {0};
    int32_t *ids = NULL;
    size_t n = 7;
    char *text = NULL;
    size_t len = 0;
    const int32_t bad_ids[] = {5, 512};
    char buf[4];
    (void)state;

    assert_int_equal(lc_tokenizer_encode(tok, NULL, 3, 0, &ids, &n, &err), LC_ERR_ARG);
    assert_int_equal(lc_tokenizer_encode(NULL, "x", 1, 0, &ids, &n, &err), LC_ERR_ARG);
    assert_int_equal(lc_tokenizer_encode(tok, "x", 1, 8u, &ids, &n, &err), LC_ERR_ARG);
    assert_int_equal(lc_tokenizer_encode(tok, NULL, 0, 0, &ids, &n, &err), LC_OK);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(lc_tokenizer_decode(tok, bad_ids, 2, &text, &len, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "512"));
    assert_null(text);
    assert_int_equal(lc_tokenizer_decode_next(tok, -1, -3, buf, sizeof(buf)), 0);
    assert_int_equal(lc_tokenizer_decode_next(tok, -1, 99999, buf, sizeof(buf)), 0);
    /* the full length even when the buffer is shorter */
    assert_int_equal(lc_tokenizer_decode_next(tok, 5, 403, buf, 2), 5);
    assert_memory_equal(buf, " O", 2);
    assert_int_equal(lc_tokenizer_vocab_size(NULL), 0);
    assert_int_equal(lc_tokenizer_bos(NULL), -1);
    lc_tokenizer_close(NULL);
    lc_tokenizer_close(tok);
}

/* ---------------------------------------------------------------- bad input */

static void expect_open_error(const char *path, lc_status want, const char *needle)
{
    struct lc_tokenizer *tok = NULL;
    struct lc_error err = {0};
    lc_status st = lc_tokenizer_open(&tok, path, &err);
    if (st != want || tok != NULL || (needle != NULL && strstr(err.msg, needle) == NULL)) {
        fail_msg("open %s: status %d (want %d), message '%s' (want '%s')", path, st, want,
                 err.msg, needle != NULL ? needle : "");
    }
}

static void expect_file_error(const char *name, const char *contents, lc_status want,
                              const char *needle)
{
    const char *path = lc_test_tmp_path(name);
    lc_test_write_file(path, contents, strlen(contents));
    expect_open_error(path, want, needle);
}

static void test_bad_paths(void **state)
{
    (void)state;
    expect_open_error(lc_test_tmp_path("does-not-exist.model"), LC_ERR_IO, "does-not-exist.model");
    /* an empty folder */
    expect_open_error(lc_test_tmpdir(), LC_ERR_IO, "no tokenizer.json");
    expect_file_error("empty.model", "", LC_ERR_FORMAT, "empty.model");
}

/* A protobuf from bytes given as a hex-free C string with explicit length. */
static lc_status load_pb(const void *buf, size_t len, struct lc_error *err)
{
    struct lc_tokenizer tok;
    lc_status st;
    memset(&tok, 0, sizeof(tok));
    st = lc_tok_load_spm_buf(&tok, "test.model", buf, len, err);
    lc_tok_free_fields(&tok);
    return st;
}

static void test_bad_spm(void **state)
{
    size_t len;
    char *model =
        lc_test_read_file(lc_test_data_file("models/stories260K-hf/tokenizer.model"), &len);
    struct lc_error err = {0};
    uint64_t seed = 12345;
    int loaded = 0;
    (void)state;

    /* the real file loads from memory */
    assert_int_equal(load_pb(model, len, &err), LC_OK);
    /* every truncation fails cleanly, except cuts at the boundary of the
     * top-level fields after the pieces, which leave a shorter valid
     * model; such a model must then work */
    for (size_t cut = 0; cut < len; cut++) {
        struct lc_tokenizer tok;
        lc_status st;
        memset(&tok, 0, sizeof(tok));
        err.msg[0] = '\0';
        st = lc_tok_load_spm_buf(&tok, "test.model", (const uint8_t *)model, cut, &err);
        if (st == LC_OK) {
            assert_int_equal(tok.n_vocab, 512);
            check_roundtrip(&tok, "Once upon a time", 16, "truncated model");
            loaded++;
        } else if (st != LC_ERR_FORMAT && st != LC_ERR_UNSUPPORTED) {
            fail_msg("truncated at %zu: status %d (%s)", cut, st, err.msg);
        } else {
            assert_non_null(strstr(err.msg, "test.model"));
        }
        lc_tok_free_fields(&tok);
    }
    assert_true(loaded <= 2);
    loaded = 0;
    /* corrupt bytes: an error or a tokenizer that works, never a crash */
    for (int i = 0; i < 300; i++) {
        char *copy = malloc(len);
        struct lc_tokenizer tok;
        assert_non_null(copy);
        memcpy(copy, model, len);
        for (int k = 0; k < 3; k++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            copy[seed % len] = (char)(seed >> 32);
        }
        memset(&tok, 0, sizeof(tok));
        if (lc_tok_load_spm_buf(&tok, "fuzz.model", (const uint8_t *)copy, len, &err) == LC_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            loaded++;
            if (lc_tokenizer_encode(&tok, "Once upon a time \xff", 18, 0, &ids, &n, &err) ==
                LC_OK) {
                char *out = NULL;
                size_t out_len = 0;
                assert_int_equal(lc_tokenizer_decode(&tok, ids, n, &out, &out_len, &err), LC_OK);
                free(out);
            }
            free(ids);
        }
        lc_tok_free_fields(&tok);
        free(copy);
    }
    fprintf(stderr, "corrupt tok512.model: %d of 300 still loaded\n", loaded);

    /* hand-made messages; 0x12 0x02 0x18 0x02 is trainer_spec {model_type: BPE} */
    {
        /* a varint of 11 bytes */
        static const uint8_t long_varint[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                              0xFF, 0xFF, 0xFF, 0xFF, 0x01};
        /* a length far past the end */
        static const uint8_t long_len[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00};
        /* wire type 3 (group) */
        static const uint8_t group[] = {0x0B, 0x00};
        /* field number 0 */
        static const uint8_t field0[] = {0x02, 0x00};
        /* piece "a" of type 9 */
        static const uint8_t bad_type[] = {0x0A, 0x05, 0x0A, 0x01, 'a',  0x18,
                                           0x09, 0x12, 0x02, 0x18, 0x02};
        /* a piece without text */
        static const uint8_t no_text[] = {0x0A, 0x02, 0x18, 0x01, 0x12, 0x02, 0x18, 0x02};
        /* a piece whose score is cut short */
        static const uint8_t cut_score[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x15, 0x00,
                                            0x12, 0x02, 0x18, 0x02};
        /* no trainer_spec: the proto default is a unigram model */
        static const uint8_t unigram[] = {0x0A, 0x03, 0x0A, 0x01, 'a'};
        /* pieces <unk> (type 2) and "a", BPE, unk_id = 5 */
        static const uint8_t bad_unk[] = {0x0A, 0x09, 0x0A, 0x05, '<',  'u',  'n',  'k',
                                          '>',  0x18, 0x02, 0x0A, 0x03, 0x0A, 0x01, 'a',
                                          0x12, 0x05, 0x18, 0x02, 0xC0, 0x02, 0x05};
        /* unk_id 0 (default) but with a precompiled_charsmap */
        static const uint8_t charsmap[] = {0x0A, 0x09, 0x0A, 0x05, '<',  'u',  'n',  'k',  '>',
                                           0x18, 0x02, 0x0A, 0x03, 0x0A, 0x01, 'a',  0x12, 0x02,
                                           0x18, 0x02, 0x1A, 0x03, 0x12, 0x01, 0x00};
        /* no pieces at all */
        static const uint8_t no_pieces[] = {0x12, 0x02, 0x18, 0x02};
        assert_int_equal(load_pb(long_varint, sizeof(long_varint), &err), LC_ERR_FORMAT);
        assert_int_equal(load_pb(long_len, sizeof(long_len), &err), LC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "past the end"));
        assert_int_equal(load_pb(group, sizeof(group), &err), LC_ERR_FORMAT);
        assert_int_equal(load_pb(field0, sizeof(field0), &err), LC_ERR_FORMAT);
        assert_int_equal(load_pb(bad_type, sizeof(bad_type), &err), LC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "unknown type 9"));
        assert_int_equal(load_pb(no_text, sizeof(no_text), &err), LC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "no text"));
        assert_int_equal(load_pb(cut_score, sizeof(cut_score), &err), LC_ERR_FORMAT);
        assert_int_equal(load_pb(unigram, sizeof(unigram), &err), LC_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "not BPE"));
        assert_int_equal(load_pb(bad_unk, sizeof(bad_unk), &err), LC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "unk_id 5"));
        assert_int_equal(load_pb(charsmap, sizeof(charsmap), &err), LC_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "precompiled_charsmap"));
        assert_int_equal(load_pb(no_pieces, sizeof(no_pieces), &err), LC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "no pieces"));
    }
    /* a minimal valid model: pieces <unk>, a, b, ab (score 1); BPE with
     * bos_id = eos_id = -1 (10-byte varints); no dummy prefix and no byte
     * fallback, so "abc" is "ab" + <unk> */
    {
        static const uint8_t good[] = {
            0x0A, 0x09, 0x0A, 0x05, '<',  'u',  'n',  'k',  '>',  0x18, 0x02,
            0x0A, 0x03, 0x0A, 0x01, 'a',  0x0A, 0x03, 0x0A, 0x01, 'b',
            0x0A, 0x09, 0x0A, 0x02, 'a',  'b',  0x15, 0x00, 0x00, 0x80, 0x3F,
            0x12, 0x1A, 0x18, 0x02, 0xC8, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0x01, 0xD0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0x01, 0x1A, 0x02, 0x18, 0x00};
        const int32_t want[] = {3, 0};
        struct lc_tokenizer tok;
        memset(&tok, 0, sizeof(tok));
        if (lc_tok_load_spm_buf(&tok, "good.model", good, sizeof(good), &err) != LC_OK) {
            fail_msg("%s", err.msg);
        }
        assert_int_equal(tok.n_vocab, 4);
        assert_int_equal(lc_tokenizer_bos(&tok), -1);
        assert_int_equal(lc_tokenizer_eos(&tok), -1);
        assert_false(lc_tokenizer_wants_bos(&tok));
        expect_ids(&tok, "abc", 0, want, 2);
        lc_tok_free_fields(&tok);
    }
    /* through the public API: the file is named */
    lc_test_write_file(lc_test_tmp_path("cut.model"), model, len / 2);
    expect_open_error(lc_test_tmp_path("cut.model"), LC_ERR_FORMAT, "cut.model");
    free(model);
}

/* A small SentencePiece-style tokenizer.json; variants replace one part. */
static const char json_ok[] =
    "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
    "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"\\u2581\":4},"
    "\"merges\":[\"a b\"]},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"always\",\"split\":false}}";

/* json_ok with the first occurrence of `from` replaced by `to` */
static void expect_json_variant(const char *from, const char *to, lc_status want,
                                const char *needle)
{
    char buf[2048];
    const char *at = strstr(json_ok, from);
    assert_non_null(at);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - json_ok), json_ok, to, at + strlen(from));
    expect_file_error("variant.json", buf, want, needle);
}

static void test_bad_hf_json(void **state)
{
    const char *path = lc_test_tmp_path("ok.json");
    struct lc_tokenizer *tok;
    const int32_t want[] = {4, 3, 0};
    (void)state;

    lc_test_write_file(path, json_ok, strlen(json_ok));
    tok = open_ok(path);
    expect_ids(tok, "abc", 0, want, 3);
    lc_tokenizer_close(tok);

    /* a special token is only made from text on request, never by the
     * BPE model from a character with the same spelling */
    {
        char buf[2048];
        const char *at = strstr(json_ok, "\"pre_tokenizer\"");
        const int32_t plain[] = {4, 1, 0};
        const int32_t special[] = {4, 1, 5};
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - json_ok), json_ok,
                 "\"added_tokens\":[{\"id\":5,\"content\":\"x\",\"special\":true}],", at);
        lc_test_write_text(path, buf);
        tok = open_ok(path);
        expect_ids(tok, "ax", 0, plain, 3);
        expect_ids(tok, "ax", LC_TOK_PARSE_SPECIAL, special, 3);
        lc_tokenizer_close(tok);
    }

    /* every truncation of the file is refused, naming it */
    for (size_t cut = 0; cut < strlen(json_ok); cut += 7) {
        char name[32];
        snprintf(name, sizeof(name), "cut%zu.json", cut);
        lc_test_write_file(lc_test_tmp_path(name), json_ok, cut);
        expect_open_error(lc_test_tmp_path(name), LC_ERR_FORMAT, name);
    }
    expect_file_error("nomodel.json", "{\"x\": 1}", LC_ERR_FORMAT, "no \"model\"");
    expect_json_variant("\"BPE\"", "\"Unigram\"", LC_ERR_UNSUPPORTED, "Unigram");
    expect_json_variant("{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"\\u2581\":4}", "{}",
                        LC_ERR_FORMAT, "empty");
    expect_json_variant("\"a b\"", "\"a c\"", LC_ERR_FORMAT, "unknown token 'c'");
    expect_json_variant("\"a b\"", "\"b a\"", LC_ERR_FORMAT, "not in the vocabulary");
    expect_json_variant("\"a b\"", "\"ab\"", LC_ERR_FORMAT, "not two tokens");
    expect_json_variant("\"a b\"", "[\"a\", 3]", LC_ERR_FORMAT, "pair of strings");
    expect_json_variant("\"a\":1", "\"a\":-1", LC_ERR_FORMAT, "no valid id");
    expect_json_variant("\"a\":1", "\"a\":9", LC_ERR_FORMAT, "has no entry");
    expect_json_variant("\"a\":1", "\"a\":2", LC_ERR_FORMAT, "twice");
    expect_json_variant("\"unk_token\":\"<unk>\"", "\"unk_token\":\"<what>\"", LC_ERR_FORMAT,
                        "<what>");
    /* neither <unk> nor byte fallback: some text could not be encoded */
    expect_json_variant("\"unk_token\":\"<unk>\"", "\"unk_token\":null", LC_ERR_UNSUPPORTED,
                        "byte tokens");
    expect_json_variant("\"pre_tokenizer\"", "\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\"",
                        LC_ERR_UNSUPPORTED, "NFKC");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"decoder\":{\"type\":\"WordPiece\"},\"pre_tokenizer\"",
                        LC_ERR_UNSUPPORTED, "WordPiece");
    expect_json_variant("\"type\":\"Metaspace\"", "\"type\":\"Whitespace\"", LC_ERR_UNSUPPORTED,
                        "Whitespace");
    /* pipeline steps without a type, Sequences without their list */
    expect_json_variant("\"pre_tokenizer\"", "\"normalizer\":{\"x\":1},\"pre_tokenizer\"",
                        LC_ERR_FORMAT, "normalizer without a type");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"normalizer\":{\"type\":\"Sequence\"},\"pre_tokenizer\"", LC_ERR_FORMAT,
                        "Sequence normalizer without a list");
    expect_json_variant("\"type\":\"Metaspace\"", "\"kind\":\"Metaspace\"", LC_ERR_FORMAT,
                        "pre_tokenizer without a type");
    expect_json_variant("\"type\":\"Metaspace\"", "\"type\":\"Sequence\"", LC_ERR_FORMAT,
                        "Sequence pre_tokenizer without a list");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"t\":1}]},"
                        "\"pre_tokenizer\"",
                        LC_ERR_FORMAT, "decoder without a type");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":{}},\"pre_tokenizer\"",
                        LC_ERR_FORMAT, "Sequence decoder without a list");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"added_tokens\":[{\"id\":1,\"content\":\"zz\",\"special\":true}],"
                        "\"pre_tokenizer\"",
                        LC_ERR_FORMAT, "differs");
    expect_json_variant("\"pre_tokenizer\"",
                        "\"added_tokens\":[{\"id\":5,\"content\":\"<x>\",\"special\":\"yes\"}],"
                        "\"pre_tokenizer\"",
                        LC_ERR_FORMAT, "non-boolean");
    /* a Split pre-tokenizer whose regex does not compile */
    expect_json_variant("{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
                        "\"prepend_scheme\":\"always\",\"split\":false}",
                        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                        "\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\","
                        "\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
                        LC_ERR_UNSUPPORTED, "does not compile");
    /* byte-level without all 256 byte symbols */
    expect_json_variant("{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
                        "\"prepend_scheme\":\"always\",\"split\":false}",
                        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}",
                        LC_ERR_UNSUPPORTED, "byte 0x00");
}

/* encoder.json with the 256 byte-level symbols and "ab" = 256 */
static void write_encoder(const char *path, int with_ab)
{
    json_t *obj = json_object();
    assert_non_null(obj);
    for (int b = 0; b < 256; b++) {
        char s[4] = {0};
        uint32_t cp = lc_tok_byte_to_cp((uint8_t)b);
        if (cp < 0x80) {
            s[0] = (char)cp;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        assert_int_equal(lc_tok_cp_to_byte(cp), b);
        json_object_set_new(obj, s, json_integer(b));
    }
    if (with_ab) {
        json_object_set_new(obj, "ab", json_integer(256));
    }
    assert_int_equal(json_dump_file(obj, path, 0), 0);
    json_decref(obj);
}

static void test_bad_gpt2(void **state)
{
    char dir[1024];
    char enc[1100], bpe[1100], cfg[1100];
    struct lc_tokenizer *tok;
    const int32_t want[] = {256, 'c', 256};
    (void)state;

    snprintf(dir, sizeof(dir), "%s/gpt2", lc_test_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(enc, sizeof(enc), "%s/encoder.json", dir);
    snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", dir);
    snprintf(cfg, sizeof(cfg), "%s/tokenizer_config.json", dir);
    write_encoder(enc, 1);
    /* encoder.json alone is not enough */
    expect_open_error(dir, LC_ERR_IO, "no tokenizer.json");
    lc_test_write_text(bpe, "#version: 0.2\na b\n");
    tok = open_ok(dir);
    assert_int_equal(lc_tokenizer_vocab_size(tok), 257);
    assert_int_equal(lc_tokenizer_bos(tok), -1);
    expect_ids(tok, "abcab", 0, want, 3);
    check_roundtrip(tok, "\xff\x80 ab\n", 6, "gpt2 folder");
    lc_tokenizer_close(tok);

    lc_test_write_text(bpe, "a b\nab\n");
    expect_open_error(dir, LC_ERR_FORMAT, "vocab.bpe: line 2");
    lc_test_write_text(bpe, "a zz\n");
    expect_open_error(dir, LC_ERR_FORMAT, "unknown token 'zz'");
    lc_test_write_text(bpe, "");
    expect_open_error(dir, LC_ERR_FORMAT, "no merges");
    lc_test_write_text(bpe, "a b\r\n");
    tok = open_ok(dir);
    lc_tokenizer_close(tok);
    /* a merge whose result is not in encoder.json */
    write_encoder(enc, 0);
    lc_test_write_text(bpe, "a b\n");
    expect_open_error(dir, LC_ERR_FORMAT, "not in the vocabulary");
    lc_test_write_text(enc, "{\"a\": 0,");
    expect_open_error(dir, LC_ERR_FORMAT, "encoder.json");
    lc_test_write_text(enc, "[1, 2]");
    expect_open_error(dir, LC_ERR_FORMAT, "not a non-empty JSON object");

    /* tokenizer_config.json beside a good tokenizer */
    write_encoder(enc, 1);
    lc_test_write_text(cfg, "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"ab\"}, "
                            "\"eos_token\": \"c\"}");
    tok = open_ok(dir);
    assert_int_equal(lc_tokenizer_bos(tok), 256);
    assert_int_equal(lc_tokenizer_eos(tok), 'c');
    assert_true(lc_tokenizer_wants_bos(tok));
    lc_tokenizer_close(tok);
    lc_test_write_text(cfg, "{\"add_bos_token\": 1}");
    expect_open_error(dir, LC_ERR_FORMAT, "add_bos_token");
    lc_test_write_text(cfg, "{\"bos_token\": \"<nope>\"}");
    expect_open_error(dir, LC_ERR_FORMAT, "'<nope>' is not in the vocabulary");
    lc_test_write_text(cfg, "{\"bos_token\"");
    expect_open_error(dir, LC_ERR_FORMAT, "tokenizer_config.json");
}

/* A GGUF v3 file with metadata only, written by hand. */
struct gw {
    uint8_t buf[4096];
    size_t n;
    uint64_t n_kv;
};

static void gw_put(struct gw *w, const void *p, size_t len)
{
    assert_true(w->n + len <= sizeof(w->buf));
    memcpy(w->buf + w->n, p, len);
    w->n += len;
}

static void gw_u32(struct gw *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    gw_put(w, b, 4);
}

static void gw_u64(struct gw *w, uint64_t v)
{
    gw_u32(w, (uint32_t)v);
    gw_u32(w, (uint32_t)(v >> 32));
}

static void gw_str(struct gw *w, const char *s)
{
    gw_u64(w, strlen(s));
    gw_put(w, s, strlen(s));
}

static void gw_key(struct gw *w, const char *key, uint32_t type)
{
    gw_str(w, key);
    gw_u32(w, type);
    w->n_kv++;
}

static void gw_kv_str(struct gw *w, const char *key, const char *v)
{
    gw_key(w, key, LC_GGUF_STRING);
    gw_str(w, v);
}

static void gw_kv_u32(struct gw *w, const char *key, uint32_t v)
{
    gw_key(w, key, LC_GGUF_UINT32);
    gw_u32(w, v);
}

static void gw_kv_bool(struct gw *w, const char *key, int v)
{
    uint8_t b = (uint8_t)v;
    gw_key(w, key, LC_GGUF_BOOL);
    gw_put(w, &b, 1);
}

static void gw_kv_strs(struct gw *w, const char *key, const char *const *v, size_t n)
{
    gw_key(w, key, LC_GGUF_ARRAY);
    gw_u32(w, LC_GGUF_STRING);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        gw_str(w, v[i]);
    }
}

static void gw_kv_f32s(struct gw *w, const char *key, const float *v, size_t n)
{
    gw_key(w, key, LC_GGUF_ARRAY);
    gw_u32(w, LC_GGUF_FLOAT32);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        gw_u32(w, bits);
    }
}

static void gw_kv_i32s(struct gw *w, const char *key, const int32_t *v, size_t n)
{
    gw_key(w, key, LC_GGUF_ARRAY);
    gw_u32(w, LC_GGUF_INT32);
    gw_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        gw_u32(w, (uint32_t)v[i]);
    }
}

/* The header in front of the metadata, then the file. */
static void gw_save(const struct gw *w, const char *path)
{
    struct gw h = {.n = 0};
    FILE *f;
    gw_put(&h, "GGUF", 4);
    gw_u32(&h, 3);
    gw_u64(&h, 0);
    gw_u64(&h, w->n_kv);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h.buf, 1, h.n, f), h.n);
    assert_int_equal(fwrite(w->buf, 1, w->n, f), w->n);
    assert_int_equal(fclose(f), 0);
}

enum gguf_flaw {
    GGUF_GOOD,
    GGUF_NO_MODEL,
    GGUF_GPT2,
    GGUF_SHORT_SCORES,
    GGUF_BAD_TYPE,
    GGUF_INT_TOKENS,
    GGUF_SCALAR_SCORES,
    GGUF_BAD_BOS,
    GGUF_NO_BOS,
    GGUF_EMPTY_TOKEN
};

/* <unk> <s> </s> ▁ a b ▁a ab, with "▁a" scored highest */
static void write_gguf(const char *path, enum gguf_flaw flaw)
{
    static const char *const tokens[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81",
                                         "a",     "b",   "\xE2\x96\x81" "a", "ab"};
    static const char *const empty_tok[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81",
                                            "a",     "",    "\xE2\x96\x81" "a", "ab"};
    static const float scores[] = {0, 0, 0, -1, -2, -3, 5, 1};
    int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1};
    struct gw w = {.n = 0};

    gw_kv_str(&w, "general.architecture", "llama");
    if (flaw != GGUF_NO_MODEL) {
        gw_kv_str(&w, "tokenizer.ggml.model", flaw == GGUF_GPT2 ? "gpt2" : "llama");
    }
    if (flaw == GGUF_INT_TOKENS) {
        gw_kv_i32s(&w, "tokenizer.ggml.tokens", types, 8);
    } else {
        gw_kv_strs(&w, "tokenizer.ggml.tokens", flaw == GGUF_EMPTY_TOKEN ? empty_tok : tokens, 8);
    }
    if (flaw == GGUF_SCALAR_SCORES) {
        gw_kv_str(&w, "tokenizer.ggml.scores", "none");
    } else {
        gw_kv_f32s(&w, "tokenizer.ggml.scores", scores, flaw == GGUF_SHORT_SCORES ? 7 : 8);
    }
    if (flaw == GGUF_BAD_TYPE) {
        types[4] = 9;
    }
    gw_kv_i32s(&w, "tokenizer.ggml.token_type", types, 8);
    gw_kv_u32(&w, "tokenizer.ggml.bos_token_id",
              flaw == GGUF_BAD_BOS ? 99 : flaw == GGUF_NO_BOS ? 0xFFFFFFFFu : 1);
    gw_kv_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    gw_kv_bool(&w, "tokenizer.ggml.add_bos_token", 0);
    gw_save(&w, path);
}

static void test_bad_gguf(void **state)
{
    static const struct {
        enum gguf_flaw flaw;
        lc_status st;
        const char *needle;
    } bad[] = {
        {GGUF_NO_MODEL, LC_ERR_FORMAT, "no embedded vocabulary"},
        {GGUF_GPT2, LC_ERR_UNSUPPORTED, "'gpt2'"},
        {GGUF_SHORT_SCORES, LC_ERR_FORMAT, "7 entries for 8 tokens"},
        {GGUF_BAD_TYPE, LC_ERR_FORMAT,
         "token 4 has type 9 in tokenizer.ggml.token_type (types are 0 to 6)"},
        {GGUF_INT_TOKENS, LC_ERR_FORMAT, "not an array of strings"},
        {GGUF_SCALAR_SCORES, LC_ERR_FORMAT, "scores is not an array"},
        {GGUF_BAD_BOS, LC_ERR_FORMAT, "bos_token_id = 99"},
        {GGUF_EMPTY_TOKEN, LC_ERR_FORMAT, "empty"},
    };
    const char *path = lc_test_tmp_path("vocab.gguf");
    const int32_t want[] = {6, 5};
    struct lc_tokenizer *tok;
    size_t len;
    char *data;
    (void)state;

    write_gguf(path, GGUF_GOOD);
    tok = open_ok(path);
    expect_ids(tok, "ab", 0, want, 2);
    assert_int_equal(lc_tokenizer_bos(tok), 1);
    assert_int_equal(lc_tokenizer_eos(tok), 2);
    assert_false(lc_tokenizer_wants_bos(tok));
    lc_tokenizer_close(tok);
    write_gguf(path, GGUF_NO_BOS);
    tok = open_ok(path);
    assert_int_equal(lc_tokenizer_bos(tok), -1);
    lc_tokenizer_close(tok);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_gguf(path, bad[i].flaw);
        expect_open_error(path, bad[i].st, bad[i].needle);
        expect_open_error(path, bad[i].st, "vocab.gguf");
    }

    /* every truncation of the small file fails */
    write_gguf(path, GGUF_GOOD);
    data = lc_test_read_file(path, &len);
    for (size_t cut = 0; cut < len; cut++) {
        struct lc_tokenizer *t = NULL;
        struct lc_error err = {0};
        lc_test_write_file(lc_test_tmp_path("cut.gguf"), data, cut);
        if (lc_tokenizer_open(&t, lc_test_tmp_path("cut.gguf"), &err) == LC_OK) {
            fail_msg("truncated at %zu of %zu bytes: opened", cut, len);
        }
        assert_non_null(strstr(err.msg, "cut.gguf"));
    }
    free(data);
    /* and of the Llama 2 vocabulary, inside its token arrays */
    data = lc_test_read_file(lc_test_data_file("tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf"),
                             &len);
    for (size_t k = 1; k < 16; k++) {
        size_t cut = len * k / 16;
        lc_test_write_file(lc_test_tmp_path("cut.gguf"), data, cut);
        expect_open_error(lc_test_tmp_path("cut.gguf"), LC_ERR_FORMAT, "cut.gguf");
    }
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_bad_hf_json),
        cmocka_unit_test(test_bad_gpt2),
        cmocka_unit_test(test_api_errors),
        cmocka_unit_test(test_bad_spm),
        cmocka_unit_test(test_bad_gguf),
        cmocka_unit_test(test_llama2_spm_cases),
        cmocka_unit_test(test_llama3_cases),
        cmocka_unit_test(test_llamacpp_roundtrip),
        cmocka_unit_test(test_llama2_gguf_cases),
        cmocka_unit_test(test_gguf_vocab_matches_model),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_stories_greedy_text),
        cmocka_unit_test(test_hf_json_matches_python),
        cmocka_unit_test(test_hf_json_details),
        cmocka_unit_test(test_newline_splits),
        cmocka_unit_test(test_roundtrip_tok512),
        cmocka_unit_test(test_roundtrip_llama2),
        cmocka_unit_test(test_roundtrip_llama3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
