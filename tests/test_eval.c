/*
 * Multiple-choice evaluation: per-choice log-likelihoods and accuracies of
 * stories260K on the first items of every task against an independent
 * implementation (transformers + SentencePiece; data/gen/make_eval_ref.py),
 * prompts and few-shot examples, tokenization and truncation, batching,
 * the generic JSONL format, and bad task files (each a clear error naming
 * the file and line).
 */
#include "config.h"

#include <bzlib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "tests/lc_test.h"

#define MODEL "models/stories260K-hf"

static json_t *ref_root;

struct fixture {
    struct lc_backend *be;
    struct lc_model *m;
    struct lc_tokenizer *tok;
};

/* The task files are shared data that data/ does not bundle: a test that
 * needs them asks for them first (lc_test_data_file skips the test), before
 * it allocates anything. */
static void open_model(struct fixture *fx)
{
    struct lc_error err = {0};
    const char *model = lc_test_data_file(MODEL);
    if (lc_backend_open(&fx->be, "cpu", &err) != LC_OK ||
        lc_model_open(&fx->m, model, fx->be, &err) != LC_OK ||
        lc_tokenizer_open(&fx->tok, model, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
}

static void close_model(struct fixture *fx)
{
    lc_tokenizer_close(fx->tok);
    lc_model_close(fx->m);
    lc_backend_close(fx->be);
}

static struct lc_mc_task *load_ok(const char *name, const char *path)
{
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    if (lc_mc_task_load(&t, name, path, &err) != LC_OK) {
        fail_msg("%s", err.msg);
    }
    return t;
}

/* ------------------------------------------------------------------------ */
/* Against the reference                                                     */

static void check_run(struct fixture *fx, json_t *run)
{
    struct lc_error err = {0};
    const char *task = json_string_value(json_object_get(run, "task"));
    json_t *items = json_object_get(run, "items");
    struct lc_mc_task *t = load_ok(task, lc_test_data_path("eval"));
    struct lc_mc_opts o;
    struct lc_mc_result res;
    double *ll = NULL;
    int64_t n_items = (int64_t)json_array_size(items);
    int64_t off = 0;
    double worst = 0.0;
    double worst64 = 0.0;

    /* the folder resolves to the file the reference read */
    assert_non_null(strstr(lc_mc_task_path(t),
                           json_string_value(json_object_get(run, "file")) + strlen("eval/")));
    lc_mc_opts_default(&o);
    o.shots = (int)json_integer_value(json_object_get(run, "shots"));
    o.seed = (uint64_t)json_integer_value(json_object_get(run, "seed"));
    o.limit = n_items;
    /* the default: the model's length, the reference's 512 */
    o.context = 0;
    ll = malloc((size_t)lc_mc_task_choices(t, n_items) * sizeof(double));
    assert_non_null(ll);
    if (lc_mc_evaluate(fx->m, fx->tok, t, &o, NULL, NULL, ll, &res, &err) != LC_OK) {
        fail_msg("%s: %s", task, err.msg);
    }
    assert_int_equal(res.n_items, n_items);
    assert_int_equal(res.context, json_integer_value(json_object_get(run, "context")));
    o.context = res.context;
    for (int64_t i = 0; i < n_items; i++) {
        json_t *rec = json_array_get(items, (size_t)i);
        json_t *want_ll = json_object_get(rec, "loglik");
        struct lc_mc_item it;
        assert_int_equal(lc_mc_task_item(t, i, &it, &err), LC_OK);
        assert_int_equal(it.gold, json_integer_value(json_object_get(rec, "gold")));
        assert_int_equal(it.n_choices, json_array_size(want_ll));
        for (int c = 0; c < it.n_choices; c++) {
            double want = json_real_value(json_array_get(want_ll, (size_t)c));
            double want64 = json_real_value(
                json_array_get(json_object_get(rec, "loglik_f64"), (size_t)c));
            int32_t *ids = NULL;
            int n_ids = 0;
            int n_cont = 0;
            assert_int_equal(it.norm_chars[c],
                             json_integer_value(json_array_get(json_object_get(rec, "chars"),
                                                               (size_t)c)));
            assert_int_equal(it.norm_bytes[c],
                             json_integer_value(json_array_get(json_object_get(rec, "bytes"),
                                                               (size_t)c)));
            if (lc_mc_request(t, fx->tok, i, c, &o, &ids, &n_ids, &n_cont, &err) != LC_OK) {
                fail_msg("%s", err.msg);
            }
            if (n_cont != json_integer_value(json_array_get(json_object_get(rec, "n_cont"),
                                                            (size_t)c)) ||
                n_ids != json_integer_value(json_array_get(json_object_get(rec, "n_ids"),
                                                           (size_t)c))) {
                fail_msg("%s item %lld choice %d: %d tokens, %d scored; the reference has "
                         "%lld, %lld",
                         task, (long long)i, c, n_ids, n_cont,
                         (long long)json_integer_value(
                             json_array_get(json_object_get(rec, "n_ids"), (size_t)c)),
                         (long long)json_integer_value(
                             json_array_get(json_object_get(rec, "n_cont"), (size_t)c)));
            }
            if (n_ids < o.context + 1) {
                assert_int_equal(ids[0], 1); /* BOS, unless cut away */
            }
            free(ids);
            /* float32 rounding moves a sum over a long continuation by ~1e-4
             * from the float64 value (transformers' float32 too, by up to
             * 1.1e-4 here): 1e-4 plus 2e-7 relative from float64, twice that
             * from transformers' float32 */
            const double tol = 1e-4 + 2e-7 * fabs(want64);
            if (fabs(ll[off + c] - want64) > tol || fabs(ll[off + c] - want) > 2.0 * tol) {
                fail_msg("%s %d-shot item %lld choice %d: log-likelihood %.8f, reference %.8f "
                         "(float64 %.8f)",
                         task, o.shots, (long long)i, c, ll[off + c], want, want64);
            }
            worst = fmax(worst, fabs(ll[off + c] - want));
            worst64 = fmax(worst64, fabs(ll[off + c] - want64));
        }
        off += it.n_choices;
    }
    fprintf(stderr, "%-14s %d-shot %3lld items: acc %.4f acc_norm %.4f acc_bytes %.4f, "
            "log-likelihoods within %.1e of transformers float32, %.1e of float64\n",
            task, o.shots, (long long)n_items, res.acc, res.acc_norm, res.acc_bytes, worst,
            worst64);
    assert_true(res.acc == json_real_value(json_object_get(run, "acc")));
    assert_true(res.acc_norm == json_real_value(json_object_get(run, "acc_norm")));
    assert_true(res.acc_bytes == json_real_value(json_object_get(run, "acc_bytes")));
    assert_int_equal(res.has_acc_norm, strcmp(task, "winogrande") != 0);
    if (o.shots > 0) {
        json_t *fp = json_object_get(run, "first_prompt");
        char *ctx = NULL;
        char *cont = NULL;
        assert_int_equal(lc_mc_prompt(t, 0, 0, &o, &ctx, &cont, &err), LC_OK);
        assert_string_equal(ctx, json_string_value(json_array_get(fp, 0)));
        assert_string_equal(cont, json_string_value(json_array_get(fp, 1)));
        free(ctx);
        free(cont);
    }
    free(ll);
    lc_mc_task_free(t);
}

static void test_reference(void **state)
{
    struct fixture fx = {0};
    json_t *runs = json_object_get(ref_root, "runs");
    (void)state;

    (void)lc_test_data_file("eval");
    open_model(&fx);
    assert_true(json_array_size(runs) >= 5);
    for (size_t k = 0; k < json_array_size(runs); k++) {
        check_run(&fx, json_array_get(runs, k));
    }
    close_model(&fx);
}

/* ------------------------------------------------------------------------ */
/* Prompts, few-shot examples, tokens                                        */

static void test_fewshot_draw(void **state)
{
    struct lc_error err = {0};
    int64_t a[8];
    int64_t b[8];
    int differs = 0;
    (void)state;

    for (int64_t item = 0; item < 20; item++) {
        assert_int_equal(lc_mc_fewshot_draw(20, item, 8, 42, a, &err), LC_OK);
        assert_int_equal(lc_mc_fewshot_draw(20, item, 8, 42, b, &err), LC_OK);
        assert_memory_equal(a, b, sizeof(a));
        for (int k = 0; k < 8; k++) {
            assert_true(a[k] >= 0 && a[k] < 20 && a[k] != item);
            for (int q = 0; q < k; q++) {
                assert_true(a[q] != a[k]);
            }
        }
        assert_int_equal(lc_mc_fewshot_draw(20, item, 8, 43, b, &err), LC_OK);
        differs |= memcmp(a, b, sizeof(a)) != 0;
    }
    assert_true(differs);
    /* all the other items */
    assert_int_equal(lc_mc_fewshot_draw(5, 2, 4, 1, a, &err), LC_OK);
    assert_int_equal(lc_mc_fewshot_draw(5, 2, 5, 1, a, &err), LC_ERR_ARG);
    assert_int_equal(lc_mc_fewshot_draw(1, 0, 1, 1, a, &err), LC_ERR_ARG);
}

static void test_prompts(void **state)
{
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    struct lc_mc_item it;
    struct lc_mc_opts o;
    char *ctx = NULL;
    char *cont = NULL;
    const char *path = lc_test_tmp_path("prompts.jsonl");
    static const char text[] =
        "{\"context\": \"Q: one \", \"choices\": [\"a\", \" bb\"], \"gold\": 1}\n"
        "\n"
        "{\"context\": \"Q: two\", \"choices\": [\" cc\", \" d\", \" e\"], \"gold\": 0}\r\n"
        "{\"context\": \"\", \"choices\": [\" x\", \"yy\"], \"gold\": 1}\n";
    (void)state;

    lc_test_write_file(path, text, strlen(text));
    t = load_ok("jsonl", path);
    assert_int_equal(lc_mc_task_size(t), 3);
    assert_string_equal(lc_mc_task_name(t), "jsonl");
    assert_int_equal(lc_mc_task_choices(t, 2), 5);
    assert_int_equal(lc_mc_task_item(t, 1, &it, &err), LC_OK);
    assert_int_equal(it.line, 3);
    assert_int_equal(it.n_choices, 3);
    assert_string_equal(it.continuations[0], " cc");
    assert_int_equal(it.norm_bytes[0], 2); /* the leading space is the join */
    assert_int_equal(it.norm_chars[0], 2);
    assert_int_equal(lc_mc_task_item(t, 0, &it, &err), LC_OK);
    assert_int_equal(it.norm_bytes[0], 1);
    assert_int_equal(it.norm_chars[0], 1);
    assert_int_equal(lc_mc_task_item(t, 3, &it, &err), LC_ERR_ARG);

    lc_mc_opts_default(&o);
    /* trailing whitespace of the context moves to the continuation */
    assert_int_equal(lc_mc_prompt(t, 0, 0, &o, &ctx, &cont, &err), LC_OK);
    assert_string_equal(ctx, "Q: one");
    assert_string_equal(cont, " a");
    free(ctx);
    free(cont);
    /* 2-shot: the two other items' gold choices, each followed by "\n\n";
     * item 2's context is empty, so the last delimiter is trailing
     * whitespace and moves to the continuation */
    o.shots = 2;
    assert_int_equal(lc_mc_prompt(t, 2, 1, &o, &ctx, &cont, &err), LC_OK);
    assert_true(strcmp(ctx, "Q: one  bb\n\nQ: two cc") == 0 ||
                strcmp(ctx, "Q: two cc\n\nQ: one  bb") == 0);
    assert_string_equal(cont, "\n\nyy");
    free(ctx);
    free(cont);
    assert_int_equal(lc_mc_prompt(t, 1, 2, &o, &ctx, &cont, &err), LC_OK);
    assert_true(strcmp(ctx, "Q: one  bb\n\nyy\n\nQ: two") == 0 ||
                strcmp(ctx, "yy\n\nQ: one  bb\n\nQ: two") == 0);
    assert_string_equal(cont, " e");
    free(ctx);
    free(cont);
    o.shots = 3;
    assert_int_equal(lc_mc_prompt(t, 0, 0, &o, &ctx, &cont, &err), LC_ERR_ARG);
    assert_int_equal(lc_mc_prompt(t, 0, 2, &o, &ctx, &cont, &err), LC_ERR_ARG);
    lc_mc_task_free(t);
}

/* Request tokens: the continuation tokens are the tail of the encoding of
 * the whole text; truncation keeps the newest tokens. */
static void test_requests(void **state)
{
    struct fixture fx = {0};
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    struct lc_mc_opts o;
    int32_t *ids = NULL;
    int32_t *cut = NULL;
    int32_t *whole = NULL;
    size_t n_whole = 0;
    int n_ids = 0;
    int n_cut = 0;
    int n_cont = 0;
    int n_cont2 = 0;
    const char *path = lc_test_tmp_path("requests.jsonl");
    static const char text[] =
        "{\"context\": \"Once upon a time there was a little girl named Lily. She\", "
        "\"choices\": [\" liked to play outside in the park with her friends.\", \" ran.\"], "
        "\"gold\": 0}\n"
        "{\"context\": \"\", \"choices\": [\" Once upon a time\", \" Lily\"], \"gold\": 0}\n";
    (void)state;

    open_model(&fx);
    lc_test_write_file(path, text, strlen(text));
    t = load_ok("jsonl", path);
    lc_mc_opts_default(&o);
    assert_int_equal(lc_mc_request(t, fx.tok, 0, 0, &o, &ids, &n_ids, &n_cont, &err), LC_OK);
    assert_int_equal(lc_tokenizer_encode(fx.tok, "Once upon a time there was a little girl named "
                                         "Lily. She liked to play outside in the park with her "
                                         "friends.",
                                         strlen("Once upon a time there was a little girl named "
                                                "Lily. She liked to play outside in the park "
                                                "with her friends."),
                                         LC_TOK_ADD_BOS, &whole, &n_whole, &err),
                     LC_OK);
    assert_true(n_cont > 3 && n_cont < n_ids);
    assert_memory_equal(ids + n_ids - n_cont, whole + n_whole - n_cont,
                        (size_t)n_cont * sizeof(int32_t));
    /* cut to n_cont + 2 tokens of context: the last n_cont + 3 ids */
    assert_true(n_ids > n_cont + 3);
    o.context = n_cont + 2;
    assert_int_equal(lc_mc_request(t, fx.tok, 0, 0, &o, &cut, &n_cut, &n_cont2, &err), LC_OK);
    assert_int_equal(n_cut, n_cont + 3);
    assert_int_equal(n_cont2, n_cont);
    assert_memory_equal(cut, ids + n_ids - n_cut, (size_t)n_cut * sizeof(int32_t));
    free(cut);
    /* a continuation longer than the context cannot be scored */
    o.context = n_cont - 1;
    assert_int_equal(lc_mc_request(t, fx.tok, 0, 0, &o, &cut, &n_cut, &n_cont2, &err),
                     LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "continuation"));
    /* an empty context is BOS alone */
    o.context = 0;
    free(ids);
    assert_int_equal(lc_mc_request(t, fx.tok, 1, 1, &o, &ids, &n_ids, &n_cont, &err), LC_OK);
    assert_int_equal(ids[0], 1);
    assert_int_equal(n_cont, n_ids - 1);
    free(ids);
    free(whole);
    lc_mc_task_free(t);
    close_model(&fx);
}

/* Batching and padding change nothing; a JSONL copy of PIQA scores as PIQA. */
static void test_batching_and_jsonl(void **state)
{
    struct fixture fx = {0};
    struct lc_error err = {0};
    struct lc_mc_task *piqa = NULL;
    struct lc_mc_task *copy = NULL;
    struct lc_mc_opts o;
    struct lc_mc_result r1;
    struct lc_mc_result r2;
    struct lc_mc_result r3;
    double ll1[24];
    double ll2[24];
    double ll3[24];
    const char *path = lc_test_tmp_path("piqa-copy.jsonl");
    FILE *f = NULL;
    const char *piqa_file = lc_test_data_file("eval/piqa/valid.jsonl");
    (void)state;

    open_model(&fx);
    piqa = load_ok("piqa", piqa_file);
    assert_int_equal(lc_mc_task_size(piqa), 1838);
    lc_mc_opts_default(&o);
    o.limit = 12;
    assert_int_equal(lc_mc_task_choices(piqa, 12), 24);
    assert_int_equal(lc_mc_evaluate(fx.m, fx.tok, piqa, &o, NULL, NULL, ll1, &r1, &err), LC_OK);
    o.batch_tokens = 1; /* one request per forward */
    assert_int_equal(lc_mc_evaluate(fx.m, fx.tok, piqa, &o, NULL, NULL, ll2, &r2, &err), LC_OK);
    /* the GEMM blocking depends on the batch: float rounding differs */
    for (int k = 0; k < 24; k++) {
        if (fabs(ll1[k] - ll2[k]) > 1e-4) {
            fail_msg("choice %d: batched %.8f, alone %.8f", k, ll1[k], ll2[k]);
        }
    }
    assert_true(r1.acc == r2.acc && r1.acc_norm == r2.acc_norm);

    /* the same items written in the generic format */
    f = fopen(path, "w");
    assert_non_null(f);
    for (int64_t i = 0; i < 12; i++) {
        struct lc_mc_item it;
        json_t *obj = json_object();
        json_t *ch = json_array();
        char *line;
        assert_int_equal(lc_mc_task_item(piqa, i, &it, &err), LC_OK);
        json_object_set_new(obj, "context", json_string(it.contexts[0]));
        for (int c = 0; c < it.n_choices; c++) {
            json_array_append_new(ch, json_string(it.continuations[c]));
        }
        json_object_set_new(obj, "choices", ch);
        json_object_set_new(obj, "gold", json_integer(it.gold));
        line = json_dumps(obj, JSON_COMPACT);
        fprintf(f, "%s\n", line);
        free(line);
        json_decref(obj);
    }
    assert_int_equal(fclose(f), 0);
    copy = load_ok("jsonl", path);
    o.batch_tokens = 0;
    o.limit = 0;
    assert_int_equal(lc_mc_evaluate(fx.m, fx.tok, copy, &o, NULL, NULL, ll3, &r3, &err), LC_OK);
    for (int64_t i = 0, off = 0; i < 12; i++) {
        struct lc_mc_item a;
        struct lc_mc_item b;
        assert_int_equal(lc_mc_task_item(piqa, i, &a, &err), LC_OK);
        assert_int_equal(lc_mc_task_item(copy, i, &b, &err), LC_OK);
        for (int c = 0; c < a.n_choices; c++) {
            assert_int_equal(a.norm_bytes[c], b.norm_bytes[c]);
            assert_true(fabs(ll1[off + c] - ll3[off + c]) <= 1e-6);
        }
        off += a.n_choices;
    }
    assert_true(r1.acc == r3.acc && r1.acc_norm == r3.acc_norm);
    lc_mc_task_free(copy);
    lc_mc_task_free(piqa);
    close_model(&fx);
}

static void test_accuracy(void **state)
{
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    struct lc_mc_result res;
    const char *path = lc_test_tmp_path("acc.jsonl");
    struct lc_mc_item it;
    /* characters: 1, 4 | 2, 2 | 3, 1 | 1, 2; bytes the same but 2 for the
     * "\u00e9" of item 4 */
    static const char text[] =
        "{\"context\": \"c\", \"choices\": [\" a\", \" bbbb\"], \"gold\": 1}\n"
        "{\"context\": \"c\", \"choices\": [\"aa\", \"bb\"], \"gold\": 0}\n"
        "{\"context\": \"c\", \"choices\": [\" aaa\", \" b\"], \"gold\": 0}\n"
        "{\"context\": \"c\", \"choices\": [\" \u00e9\", \" ab\"], \"gold\": 0}\n";
    /* item 1 (gold 1): acc picks 0 (-1 > -2), acc_norm picks 1 (-2/4 > -1/1);
     * item 2 (gold 0): a tie goes to the first choice, for all;
     * item 3 (gold 0): acc picks 0 (-2.5 > -3), acc_norm too (-2.5/3 > -3/1);
     * item 4 (gold 0): acc picks 0 (-2 > -3), acc_norm 1 (-3/2 > -2/1),
     * acc_bytes 0 (-2/2 > -3/2) */
    const double ll[8] = {-1.0, -2.0, -4.0, -4.0, -2.5, -3.0, -2.0, -3.0};
    (void)state;

    lc_test_write_file(path, text, strlen(text));
    t = load_ok("jsonl", path);
    assert_int_equal(lc_mc_task_item(t, 3, &it, &err), LC_OK);
    assert_int_equal(it.norm_chars[0], 1);
    assert_int_equal(it.norm_bytes[0], 2);
    assert_int_equal(lc_mc_accuracy(t, 3, ll, &res, &err), LC_OK);
    assert_int_equal(res.n_items, 3);
    assert_int_equal(res.n_requests, 6);
    assert_true(fabs(res.acc - 2.0 / 3.0) < 1e-12);
    assert_true(fabs(res.acc_norm - 1.0) < 1e-12);
    assert_true(res.acc_bytes == res.acc_norm);
    assert_true(fabs(res.acc_stderr - sqrt(2.0 / 9.0 / 2.0)) < 1e-12);
    assert_true(res.acc_norm_stderr == 0.0);
    assert_int_equal(lc_mc_accuracy(t, 4, ll, &res, &err), LC_OK);
    assert_true(fabs(res.acc - 0.75) < 1e-12);
    assert_true(fabs(res.acc_norm - 0.75) < 1e-12);
    assert_true(fabs(res.acc_bytes - 1.0) < 1e-12);
    assert_true(fabs(res.acc_norm_stderr - sqrt(0.75 * 0.25 / 3.0)) < 1e-12);
    assert_true(res.acc_bytes_stderr == 0.0);
    assert_int_equal(lc_mc_accuracy(t, 5, ll, &res, &err), LC_ERR_ARG);
    lc_mc_task_free(t);
}

/* ------------------------------------------------------------------------ */
/* Loading: the real files, bzip2, bad files                                 */

static void test_real_files(void **state)
{
    static const struct {
        const char *name;
        int64_t items;
        int first_choices;
        int first_gold;
    } want[] = {
        {"piqa", 1838, 2, 0},          {"arc-easy", 2376, 4, 0},
        {"arc-challenge", 1172, 4, 2}, {"hellaswag", 10042, 4, 3},
        {"winogrande", 1267, 2, 1},
    };
    struct lc_error err = {0};
    (void)state;

    (void)lc_test_data_file("eval");
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        /* the eval folder or the data folder above it */
        struct lc_mc_task *t = load_ok(want[k].name, lc_test_data_dir());
        struct lc_mc_item it;
        assert_int_equal(lc_mc_task_size(t), want[k].items);
        assert_int_equal(lc_mc_task_item(t, 0, &it, &err), LC_OK);
        assert_int_equal(it.n_choices, want[k].first_choices);
        assert_int_equal(it.gold, want[k].first_gold);
        assert_int_equal(lc_mc_task_has_acc_norm(t), strcmp(want[k].name, "winogrande") != 0);
        if (strcmp(want[k].name, "hellaswag") == 0) {
            assert_string_equal(it.contexts[0],
                                "Roof shingle removal: A man is sitting on a roof. he");
            assert_string_equal(it.continuations[3], " starts pulling up roofing on a roof.");
            assert_int_equal(it.norm_bytes[3], strlen("starts pulling up roofing on a roof."));
            assert_int_equal(it.norm_chars[3], strlen("starts pulling up roofing on a roof."));
            assert_int_equal(lc_mc_task_item(t, 10041, &it, &err), LC_OK);
            assert_int_equal(it.line, 10041 * 6 + 1);
        } else if (strcmp(want[k].name, "winogrande") == 0) {
            assert_string_equal(it.contexts[1],
                                "Sarah was a much better surgeon than Maria so Maria");
            assert_string_equal(it.continuations[0], " always got the easier cases.");
        } else if (strcmp(want[k].name, "piqa") == 0) {
            assert_string_equal(it.contexts[0], "Question: How do I ready a guinea pig cage "
                                                "for it's new occupants?\nAnswer:");
        }
        lc_mc_task_free(t);
    }
}

static char *bz2_compress(const char *text, unsigned *len)
{
    unsigned cap = (unsigned)strlen(text) * 2 + 1024;
    char *out = malloc(cap);
    assert_non_null(out);
    *len = cap;
    assert_int_equal(BZ2_bzBuffToBuffCompress(out, len, (char *)text, (unsigned)strlen(text), 9,
                                              0, 0),
                     BZ_OK);
    return out;
}

static const char hella2[] = "Act: the man sits. he\n2\nstands.\nsits.\njumps.\nruns.\n"
                             "Other: a dog runs. it\n0\nbarks.\nmeows.\nflies.\nswims.\n";

static void expect_error(const char *name, const char *path, lc_status code, const char *where,
                         const char *what)
{
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    lc_status rc = lc_mc_task_load(&t, name, path, &err);
    if (rc != code || t != NULL || strstr(err.msg, where) == NULL ||
        (what != NULL && strstr(err.msg, what) == NULL)) {
        fail_msg("%s %s: status %d, message \"%s\"; wanted status %d naming \"%s\" and \"%s\"",
                 name, path, (int)rc, err.msg, (int)code, where, what != NULL ? what : "");
    }
}

static void test_bzip2(void **state)
{
    struct lc_error err = {0};
    struct lc_mc_task *t = NULL;
    struct lc_mc_item it;
    const char *good = lc_test_tmp_path("hs.txt.bz2");
    const char *two = lc_test_tmp_path("hs2.txt.bz2");
    const char *cut = lc_test_tmp_path("hs-cut.txt.bz2");
    const char *bad = lc_test_tmp_path("hs-bad.txt.bz2");
    const char *plain = lc_test_tmp_path("hs.txt");
    unsigned len = 0;
    char *z = bz2_compress(hella2, &len);
    char *zz = malloc(2 * (size_t)len);
    char *data = NULL;
    size_t n = 0;
    (void)state;

    assert_non_null(zz);
    lc_test_write_file(good, z, len);
    t = load_ok("hellaswag", good);
    assert_int_equal(lc_mc_task_size(t), 2);
    assert_int_equal(lc_mc_task_item(t, 1, &it, &err), LC_OK);
    assert_int_equal(it.gold, 0);
    assert_int_equal(it.line, 7);
    assert_string_equal(it.contexts[2], "Other: a dog runs. it");
    assert_string_equal(it.continuations[2], " flies.");
    lc_mc_task_free(t);
    /* two concatenated streams, as bzip2 -d reads them */
    memcpy(zz, z, len);
    memcpy(zz + len, z, len);
    lc_test_write_file(two, zz, 2 * (size_t)len);
    t = load_ok("hellaswag", two);
    assert_int_equal(lc_mc_task_size(t), 4);
    lc_mc_task_free(t);
    assert_int_equal(lc_read_maybe_bz2(two, &data, &n, &err), LC_OK);
    assert_int_equal(n, 2 * strlen(hella2));
    free(data);
    /* plain text is read too */
    lc_test_write_file(plain, hella2, strlen(hella2));
    t = load_ok("hellaswag", plain);
    assert_int_equal(lc_mc_task_size(t), 2);
    lc_mc_task_free(t);
    /* truncated at several points, and corrupt */
    for (unsigned keep = 4; keep < len; keep += len / 7 + 1) {
        lc_test_write_file(cut, z, keep);
        expect_error("hellaswag", cut, LC_ERR_FORMAT, cut, "bzip2");
    }
    lc_test_write_file(cut, zz, 2 * (size_t)len - 3);
    expect_error("hellaswag", cut, LC_ERR_FORMAT, cut, "truncated");
    memcpy(zz, z, len);
    for (unsigned k = len / 2; k < len / 2 + 8; k++) {
        zz[k] ^= 0x5a;
    }
    lc_test_write_file(bad, zz, len);
    expect_error("hellaswag", bad, LC_ERR_FORMAT, bad, "bzip2");
    free(z);
    free(zz);
}

static void test_bad_files(void **state)
{
    static const struct {
        const char *task;
        const char *text;
        const char *where; /* "line N" in the message */
        const char *what;
    } cases[] = {
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\"], \"gold\": 0}\n{\"context\": \"a\",\n",
         "line 2", "invalid JSON"},
        {"jsonl", "[1, 2]\n", "line 1", "JSON object"},
        {"jsonl", "{\"context\": 3, \"choices\": [\" b\"], \"gold\": 0}\n", "line 1", "\"context\""},
        {"jsonl", "{\"context\": \"a\", \"choices\": \" b\", \"gold\": 0}\n", "line 1", "not an array"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [], \"gold\": 0}\n", "line 1", "empty array"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \"\"], \"gold\": 0}\n", "line 1",
         "empty"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", 4], \"gold\": 0}\n", "line 1",
         "not a string"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 2}\n", "line 1",
         "out of range"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": -1}\n", "line 1",
         "out of range"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": \"0\"}\n", "line 1",
         "not an integer"},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \" c\"]}\n", "line 1", "\"gold\""},
        {"jsonl", "{\"context\": \"a\", \"choices\": [\" b\"], \"gold\": 0, \"gold\": 0}\n", "line 1",
         "invalid JSON"},
        {"jsonl", "\n\n", "", "no items"},
        {"arc-easy",
         "{\"question\": \"q\", \"choices\": {\"text\": [\"x\", \"y\"], \"label\": [\"A\", \"B\"]}, "
         "\"answerKey\": \"C\"}\n",
         "line 1", "answerKey"},
        {"arc-easy",
         "{\"question\": \"q\", \"choices\": {\"text\": [\"x\", \"y\"], \"label\": [\"A\"]}, "
         "\"answerKey\": \"A\"}\n",
         "line 1", "labels"},
        {"arc-challenge", "{\"question\": \"q\", \"answerKey\": \"A\"}\n", "line 1", "\"choices\""},
        {"winogrande",
         "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 1}\n"
         "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 2}\n",
         "line 2", "out of range"},
        {"winogrande", "{\"context_options\": [\"a\"], \"continuation\": \"c\", \"gold\": 0}\n",
         "line 1", "two"},
        {"winogrande", "{\"context_options\": [\"a\", \"b\"], \"gold\": 0}\n", "line 1",
         "\"continuation\""},
        {"hellaswag", "Act: x\n2\na\nb\nc\nd\nAct: y\n1\na\nb\n", "line 7", "truncated"},
        {"hellaswag", "Act: x\n4\na\nb\nc\nd\n", "line 2", "gold"},
        {"hellaswag", "Act: x\n1\na\n\nc\nd\n", "line 4", "empty ending"},
        {"hellaswag", "", "", "no items"},
    };
    (void)state;

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char name[64];
        const char *path;
        snprintf(name, sizeof(name), "bad%zu.jsonl", k);
        path = lc_test_tmp_path(name);
        lc_test_write_text(path, cases[k].text);
        expect_error(cases[k].task, path, LC_ERR_FORMAT, path, cases[k].where);
        expect_error(cases[k].task, path, LC_ERR_FORMAT, path, cases[k].what);
    }
    /* a missing file, an unknown task, a folder without the task */
    expect_error("piqa", lc_test_tmp_path("nothing.jsonl"), LC_ERR_IO, "nothing", "cannot open");
    expect_error("mmlu", lc_test_tmp_path("x"), LC_ERR_ARG, "unknown task", "mmlu");
    expect_error("piqa", lc_test_tmpdir(), LC_ERR_IO, lc_test_tmpdir(), "piqa/valid.jsonl");
}

static void test_bad_piqa(void **state)
{
    const char *path = lc_test_tmp_path("valid.jsonl");
    const char *labels = lc_test_tmp_path("valid-labels.lst");
    static const char items[] =
        "{\"goal\": \"g1\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
        "{\"goal\": \"g2\", \"sol1\": \"a\", \"sol2\": \"b\"}\n";
    struct lc_mc_task *t = NULL;
    struct lc_mc_item it;
    struct lc_error err = {0};
    (void)state;

    lc_test_write_text(path, items);
    expect_error("piqa", path, LC_ERR_IO, labels, "cannot open");
    lc_test_write_text(labels, "0\n1\n");
    t = load_ok("piqa", path);
    assert_int_equal(lc_mc_task_item(t, 1, &it, &err), LC_OK);
    assert_int_equal(it.gold, 1);
    assert_string_equal(it.contexts[1], "Question: g2\nAnswer:");
    assert_string_equal(it.continuations[1], " b");
    lc_mc_task_free(t);
    lc_test_write_text(labels, "0\n2\n");
    expect_error("piqa", path, LC_ERR_FORMAT, labels, "line 2");
    lc_test_write_text(labels, "0\n");
    expect_error("piqa", path, LC_ERR_FORMAT, labels, "shorter");
    lc_test_write_text(labels, "0\n1\n1\n");
    expect_error("piqa", path, LC_ERR_FORMAT, labels, "more labels");
    lc_test_write_text(labels, "0\n1\n");
    lc_test_write_text(path, "{\"goal\": \"g1\", \"sol1\": \"a\"}\n");
    expect_error("piqa", path, LC_ERR_FORMAT, path, "\"sol2\"");
    lc_test_write_text(path, "{\"goal\": \"g1\", \"sol1\": \"a\", \"sol2\": \"\"}\n");
    expect_error("piqa", path, LC_ERR_FORMAT, path, "empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fewshot_draw),   cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_accuracy),       cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_piqa),       cmocka_unit_test(test_bzip2),
        cmocka_unit_test(test_real_files),     cmocka_unit_test(test_requests),
        cmocka_unit_test(test_batching_and_jsonl), cmocka_unit_test(test_reference),
    };
    json_error_t jerr;
    int rc;

    ref_root = json_load_file(lc_test_project_path("ref/eval_reference.json"), 0, &jerr);
    if (ref_root == NULL) {
        fprintf(stderr, "eval_reference.json: %s\n", jerr.text);
        return 99;
    }
    /* small model: threads only contend on a busy machine */
    lc_set_num_threads(1);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(ref_root);
    return rc;
}
