/*
 * Perplexity of real models on real text against an independent
 * implementation (transformers; data/gen/make_ppl_ref.py): the whole
 * pipeline of lolcats-eval --task ppl (tokenizer, data splits, windows,
 * forward, NLL) must give the same value to 4 significant digits.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "tests/lc_test.h"

static json_t *records;

/* FNV-1a over the ids, to compare streams cheaply in messages */
static void check_record(const char *name, enum lc_data_split split)
{
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *m = NULL;
    struct lc_tokenizer *tok = NULL;
    struct lc_dataset *ds = NULL;
    struct lc_data_opts o;
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    struct lc_ppl_result res;
    json_t *rec = NULL;
    json_t *first;
    const char *model;
    const char *text;
    double want;

    for (size_t i = 0; i < json_array_size(records); i++) {
        json_t *r = json_array_get(records, i);
        if (strcmp(json_string_value(json_object_get(r, "name")), name) == 0) {
            rec = r;
        }
    }
    assert_non_null(rec);
    model = json_string_value(json_object_get(rec, "model"));
    text = json_string_value(json_object_get(rec, "text"));
    want = json_real_value(json_object_get(rec, "ppl"));
    /* skipped without its files (the GGUF record names the file itself) */
    model = lc_test_data_file(model);
    text = lc_test_data_file(text);
    be = lc_test_backend(&lc_cpu_ops);
    if (lc_model_open(&m, model, be, &err) != LC_OK ||
        lc_tokenizer_open(&tok, model, &err) != LC_OK) {
        fail_msg("%s: %s", model, err.msg);
    }
    lc_data_opts_default(&o);
    o.format = LC_DATA_TEXT;
    if (lc_dataset_load(&ds, text, tok, &o, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(lc_dataset_stream(ds, split, &ids, &labels, &n), LC_OK);
    assert_int_equal(n, json_integer_value(json_object_get(rec, "n_tokens")));
    first = json_object_get(rec, "first_ids");
    for (size_t i = 0; i < json_array_size(first); i++) {
        assert_int_equal(ids[i], json_integer_value(json_array_get(first, i)));
    }
    if (lc_model_perplexity(m, ids, n, (int)json_integer_value(json_object_get(rec, "context")),
                            NULL, NULL, &res, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    fprintf(stderr, "%s: ppl %.6f (reference %.6f, relative difference %.2g), %lld windows, %lld predicted\n",
            name, res.ppl, want, fabs(res.ppl - want) / want, (long long)res.n_windows,
            (long long)res.n_predicted);
    assert_int_equal(res.n_windows, json_integer_value(json_object_get(rec, "n_windows")));
    assert_int_equal(res.n_predicted, json_integer_value(json_object_get(rec, "n_predicted")));
    /* 4 significant digits */
    assert_true(fabs(res.ppl - want) <= 5e-5 * want);
    lc_dataset_free(ds);
    lc_tokenizer_close(tok);
    lc_model_close(m);
    lc_test_backend_free(be);
}

static void test_stories_full(void **state)
{
    (void)state;
    check_record("stories260K-val-full", LC_SPLIT_ALL);
}

static void test_stories_heldout(void **state)
{
    (void)state;
    check_record("stories260K-val-heldout", LC_SPLIT_VAL);
}

static void test_tiny_random(void **state)
{
    (void)state;
    check_record("llama-2-tiny-random-sample", LC_SPLIT_ALL);
}

/* The protocol's edge cases on a hand-made stream. */
static void test_windows(void **state)
{
    struct lc_error err = {0};
    struct lc_backend *be = lc_test_backend(&lc_cpu_ops);
    struct lc_model *m = NULL;
    struct lc_ppl_result res;
    int32_t ids[11];
    float nll[5];
    int32_t targets[5];
    double sum = 0.0;
    (void)state;

    if (lc_model_open(&m, lc_test_data_path("models/stories260K-hf"), be, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    for (int i = 0; i < 11; i++) {
        ids[i] = 1 + (i * 53) % 500;
    }
    /* 11 tokens at context 5: windows of 5, 5 and 1; the last is dropped */
    assert_int_equal(lc_model_perplexity(m, ids, 11, 5, NULL, NULL, &res, &err), LC_OK);
    assert_int_equal(res.n_windows, 2);
    assert_int_equal(res.n_predicted, 8);
    /* the same from per-token NLLs of each window */
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 5; i++) {
            targets[i] = i < 4 ? ids[w * 5 + i + 1] : -1;
        }
        assert_int_equal(lc_model_nll(m, ids + w * 5, targets, 1, 5, nll, &err), LC_OK);
        assert_true(nll[4] == 0.0f);
        for (int i = 0; i < 4; i++) {
            sum += nll[i];
        }
    }
    assert_true(fabs(res.mean_nll - sum / 8.0) < 1e-9);
    /* 12 tokens: the final window of 2 counts */
    ids[10] = 7;
    assert_int_equal(lc_model_perplexity(m, ids, 10, 4, NULL, NULL, &res, &err), LC_OK);
    assert_int_equal(res.n_windows, 3);
    assert_int_equal(res.n_predicted, 7);
    assert_int_equal(lc_model_perplexity(m, ids, 1, 4, NULL, NULL, &res, &err), LC_ERR_ARG);
    assert_int_equal(lc_model_perplexity(m, ids, 10, 1, NULL, NULL, &res, &err), LC_ERR_ARG);
    lc_model_close(m);
    lc_test_backend_free(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_tiny_random),
        cmocka_unit_test(test_stories_heldout),
        cmocka_unit_test(test_stories_full),
    };
    json_error_t jerr;
    json_t *root = json_load_file(lc_test_project_path("ref/ppl_reference.json"), 0, &jerr);
    int rc;

    if (root == NULL) {
        fprintf(stderr, "ppl_reference.json: %s\n", jerr.text);
        return 99;
    }
    records = json_object_get(root, "records");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(root);
    return rc;
}
