/* lolcats-eval: perplexity and multiple-choice benchmarks of a model. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* the five tasks of the LoLCATs tables, in their order ("all") */
static const char *const builtin_tasks[] = {"piqa", "arc-easy", "arc-challenge", "hellaswag",
                                            "winogrande"};
#define N_BUILTIN (sizeof(builtin_tasks) / sizeof(builtin_tasks[0]))
#define MAX_TASKS 64

struct eval_args {
    struct cli_common common;
    const char *model;
    const char *lolcats;
    int compare;
    const char *task;
    const char *data;
    long long context; /* 0: the default (ppl: 512; tasks: the library's, the model's length) */
    long long shots;
    long long limit;
    unsigned long long seed;
    enum lc_data_split split;
    struct lc_data_opts data_opts;
    int json;
    char *task_buf;                /* --task split at its commas */
    const char *tasks[MAX_TASKS];  /* multiple-choice tasks: names or JSONL files */
    int n_tasks;
};

/* a name with a '/' or a '.' is a JSONL task file */
static int is_file_task(const char *name)
{
    return strchr(name, '/') != NULL || strchr(name, '.') != NULL;
}

static int add_task(struct eval_args *a, const char *name)
{
    if (a->n_tasks == MAX_TASKS) {
        return cli_usage_error("--task: more than %d tasks", MAX_TASKS);
    }
    a->tasks[a->n_tasks++] = name;
    return CLI_EXIT_OK;
}

/* Splits --task into multiple-choice tasks and checks each name. */
static int check_tasks(struct eval_args *a)
{
    int named = 0;
    char *p;

    a->task_buf = strdup(a->task);
    if (a->task_buf == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_RESOURCES;
    }
    p = a->task_buf;
    for (;;) {
        char *comma = strchr(p, ',');
        int status = CLI_EXIT_OK;
        if (comma != NULL) {
            *comma = '\0';
        }
        if (*p == '\0') {
            return cli_usage_error("--task: an empty task name in '%s'", a->task);
        }
        if (strcmp(p, "ppl") == 0) {
            return cli_usage_error("--task: ppl cannot be combined with other tasks");
        }
        if (strcmp(p, "all") == 0) {
            for (size_t k = 0; k < N_BUILTIN && status == CLI_EXIT_OK; k++) {
                status = add_task(a, builtin_tasks[k]);
            }
            named = 1;
        } else if (is_file_task(p)) {
            status = add_task(a, p);
        } else {
            size_t k = 0;
            while (k < N_BUILTIN && strcmp(p, builtin_tasks[k]) != 0) {
                k++;
            }
            if (k == N_BUILTIN) {
                return cli_usage_error("--task: unknown task '%s' (known: ppl, piqa, arc-easy, "
                                       "arc-challenge, hellaswag, winogrande, all, or a "
                                       "FILE.jsonl)",
                                       p);
            }
            status = add_task(a, p);
            named = 1;
        }
        if (status != CLI_EXIT_OK) {
            return status;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    if (named && a->data == NULL) {
        return cli_usage_error("--task %s needs --data: the folder of the task files (or the "
                               "task's file)",
                               a->task);
    }
    return CLI_EXIT_OK;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s --model PATH --task ppl --data FILE [OPTIONS]\n"
            "   or: %s --model PATH --task TASK[,TASK...] --data DIR [OPTIONS]\n"
            "   or: %s --model PATH --task FILE.jsonl[,...] [OPTIONS]\n"
            "Measure the quality of a Llama-family model.\n"
            "\n"
            "  -m, --model PATH        Hugging Face model folder or GGUF file\n"
            "  -l, --lolcats DIR       evaluate the model linearized by lolcats-train into DIR\n"
            "      --compare           evaluate the original and the linearized model (needs\n"
            "                          --lolcats) and print them side by side\n"
            "  -t, --task NAME         ppl: perplexity of the text of --data; or multiple-choice\n"
            "                          tasks, comma-separated: piqa, arc-easy, arc-challenge,\n"
            "                          hellaswag, winogrande, all (those five) or FILE.jsonl\n"
            "  -d, --data FILE         ppl: text, JSON lines or Alpaca JSON data (gzip allowed);\n"
            "                          named tasks (required): the folder of the task files,\n"
            "                          or the task's file\n"
            "  -c, --context N         ppl: tokens per window (default 512); tasks: most tokens\n"
            "                          per request (default: the model's context length)\n"
            "      --shots K           tasks: few-shot examples before each item (default 0)\n"
            "      --seed S            tasks: seed of the few-shot draw (default 1234)\n"
            "      --limit N           tasks: score the first N items only\n"
            "      --split WHICH       all, train or val part of --data (default all)\n"
            "      --val-fraction F    held-out fraction of a text file for --split (default 0.1)\n"
            "      --val-records N     held-out records of a record file for --split (default 200)\n"
            "      --format FMT        auto, text, jsonl or alpaca (default auto)\n"
            "      --json              print one JSON object per result instead of a table\n"
            "      --backend NAME      compute backend: cpu (default), cuda or ref\n"
            "      --threads N         threads (default: all cores)\n"
            "  -v, --verbose           print the backend and GEMM kernel in use\n"
            "  -q, --quiet             no progress display\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "See lolcats-eval(1) for the protocols, the task formats and exit statuses.\n",
            cli_prog, cli_prog, cli_prog);
}

enum {
    OPT_SPLIT = CLI_OPT_FIRST,
    OPT_COMPARE,
    OPT_JSON,
    OPT_SHOTS,
    OPT_SEED,
    OPT_LIMIT
};

static int parse_args(int argc, char **argv, struct eval_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"lolcats", required_argument, NULL, 'l'},
        {"compare", no_argument, NULL, OPT_COMPARE},
        {"task", required_argument, NULL, 't'},
        {"data", required_argument, NULL, 'd'},
        {"context", required_argument, NULL, 'c'},
        {"split", required_argument, NULL, OPT_SPLIT},
        CLI_DATA_LONGOPTS,
        {"json", no_argument, NULL, OPT_JSON},
        {"shots", required_argument, NULL, OPT_SHOTS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"limit", required_argument, NULL, OPT_LIMIT},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    long long n;
    int status;

    memset(a, 0, sizeof(*a));
    a->seed = 1234;
    a->split = LC_SPLIT_ALL;
    lc_data_opts_default(&a->data_opts);
    while ((c = getopt_long(argc, argv, "m:l:t:d:c:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'l':
            a->lolcats = optarg;
            break;
        case OPT_COMPARE:
            a->compare = 1;
            break;
        case 't':
            a->task = optarg;
            break;
        case 'd':
            a->data = optarg;
            break;
        case 'c':
            if (!cli_parse_int("--context", optarg, 2, 1 << 24, &a->context)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_SPLIT:
            if (strcmp(optarg, "all") == 0) {
                a->split = LC_SPLIT_ALL;
            } else if (strcmp(optarg, "train") == 0) {
                a->split = LC_SPLIT_TRAIN;
            } else if (strcmp(optarg, "val") == 0) {
                a->split = LC_SPLIT_VAL;
            } else {
                return cli_usage_error("--split: '%s' is not one of all, train, val", optarg);
            }
            break;
        case CLI_OPT_FORMAT:
        case CLI_OPT_VAL_FRACTION:
        case CLI_OPT_VAL_RECORDS:
            if (!cli_data_option(&a->data_opts, c, optarg)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_SHOTS:
            if (!cli_parse_int("--shots", optarg, 0, 1000, &a->shots)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_SEED:
            if (!cli_parse_int("--seed", optarg, 0, INT64_MAX, &n)) {
                return CLI_EXIT_USAGE;
            }
            a->seed = (unsigned long long)n;
            break;
        case OPT_LIMIT:
            if (!cli_parse_int("--limit", optarg, 1, INT64_MAX, &a->limit)) {
                return CLI_EXIT_USAGE;
            }
            break;
        default:
            status = cli_common_option(&a->common, c, optarg, usage);
            if (status != CLI_EXIT_OK) {
                return status;
            }
            break;
        }
    }
    if (optind < argc) {
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (a->model == NULL) {
        return cli_usage_error("--model is required");
    }
    if (a->task == NULL) {
        return cli_usage_error("--task is required");
    }
    if (strcmp(a->task, "ppl") == 0) {
        if (a->data == NULL) {
            return cli_usage_error("--task ppl needs --data FILE");
        }
        if (a->context == 0) {
            a->context = 512;
        }
    } else {
        status = check_tasks(a);
        if (status != CLI_EXIT_OK) {
            return status;
        }
    }
    if (a->compare && a->lolcats == NULL) {
        return cli_usage_error("--compare needs --lolcats DIR");
    }
    return CLI_EXIT_OK;
}

static int on_progress(int64_t done, int64_t total, void *user)
{
    struct cli_progress *p = user;
    p->total = total; /* the library's count (a last window of one token does not count) */
    cli_progress_update(p, (double)done, NULL);
    return cli_interrupted();
}

static const char *split_name(enum lc_data_split s)
{
    return s == LC_SPLIT_TRAIN ? "train" : s == LC_SPLIT_VAL ? "val" : "all";
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(out, "\\u%04x", ch);
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
}

static void print_json_result(const struct eval_args *a, const char *which,
                              const struct lc_ppl_result *res)
{
    printf("{\"task\": \"ppl\", \"model\": ");
    json_string(stdout, a->model);
    printf(", \"attention\": \"%s\"", which);
    if (a->lolcats != NULL && strcmp(which, "linearized") == 0) {
        printf(", \"lolcats\": ");
        json_string(stdout, a->lolcats);
    }
    printf(", \"data\": ");
    json_string(stdout, a->data);
    printf(", \"split\": \"%s\", \"context\": %lld, \"tokens\": %lld, \"windows\": %lld, "
           "\"predicted\": %lld, \"mean_nll\": %.9g, \"ppl\": %.9g}\n",
           split_name(a->split), a->context, (long long)res->n_tokens, (long long)res->n_windows,
           (long long)res->n_predicted, res->mean_nll, res->ppl);
}

static lc_status measure(const struct eval_args *a, struct lc_model *model, const int32_t *ids,
                         int64_t n, const char *label, struct lc_ppl_result *res,
                         struct lc_error *err)
{
    struct cli_progress prog;
    lc_status rc;

    cli_set_stop_note("waiting for the %s window being computed", label);
    /* as lc_model_perplexity counts: a last window needs 2 tokens */
    cli_info(&a->common, "%s: perplexity of %lld tokens in %lld windows", label, (long long)n,
             (long long)(n / a->context + (n % a->context >= 2)));
    cli_progress_start(&prog, label, (n + a->context - 1) / a->context, a->common.quiet);
    rc = lc_model_perplexity(model, ids, n, (int)a->context, on_progress, &prog, res, err);
    cli_set_stop_note(NULL);
    cli_progress_end(&prog);
    return rc;
}

static int run_ppl(const struct eval_args *a, struct lc_model *model, struct lc_tokenizer *tok)
{
    struct lc_error err = {0};
    struct lc_dataset *ds = NULL;
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    struct lc_ppl_result teacher;
    struct lc_ppl_result student;
    const int linear = a->lolcats != NULL;
    lc_status rc;
    int status = CLI_EXIT_OK;

    rc = lc_dataset_load(&ds, a->data, tok, &a->data_opts, &err);
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    rc = lc_dataset_stream(ds, a->split, &ids, &labels, &n);
    if (rc != LC_OK || n < 2) {
        cli_error("%s: the %s split has %lld tokens; perplexity needs at least 2", a->data,
                  split_name(a->split), (long long)n);
        lc_dataset_free(ds);
        return CLI_EXIT_INPUT;
    }
    if (!linear || a->compare) {
        lc_model_use_teacher(model, 1);
        rc = measure(a, model, ids, n, "teacher", &teacher, &err);
    }
    if (rc == LC_OK && linear) {
        lc_model_use_teacher(model, 0);
        rc = measure(a, model, ids, n, "linearized", &student, &err);
    }
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    if (a->json) {
        if (!linear || a->compare) {
            print_json_result(a, "softmax", &teacher);
        }
        if (linear) {
            print_json_result(a, "linearized", &student);
        }
    } else {
        const struct lc_ppl_result *r = linear ? &student : &teacher;
        printf("model       %s\n", a->model);
        if (linear) {
            printf("lolcats     %s\n", a->lolcats);
        }
        printf("data        %s (%s split, %lld tokens)\n", a->data, split_name(a->split),
               (long long)r->n_tokens);
        printf("context     %lld tokens, %lld windows, %lld predicted tokens\n", a->context,
               (long long)r->n_windows, (long long)r->n_predicted);
        if (a->compare) {
            printf("%-28s %12s %12s\n", "attention", "mean NLL", "perplexity");
            printf("%-28s %12.6f %12.4f\n", "softmax (teacher)", teacher.mean_nll, teacher.ppl);
            printf("%-28s %12.6f %12.4f  (%+.2f%%)\n", "linearized (lolcats)", student.mean_nll,
                   student.ppl, 100.0 * (student.ppl / teacher.ppl - 1.0));
        } else {
            printf("mean NLL    %.6f nats/token\n", r->mean_nll);
            printf("perplexity  %.4f\n", r->ppl);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the results to standard output");
        status = CLI_EXIT_OUTPUT;
    }

done:
    lc_dataset_free(ds);
    return status;
}

/* ------------------------------------------------------ multiple choice */

struct task_run {
    struct lc_mc_task *task;
    const char *label;          /* as given in --task */
    struct lc_mc_result res[2]; /* softmax, linearized */
    double seconds[2];
};

static lc_status score_task(const struct eval_args *a, struct lc_model *model,
                            struct lc_tokenizer *tok, struct task_run *tr, int which,
                            const struct lc_mc_opts *o, struct lc_error *err)
{
    struct cli_progress prog;
    char label[256];
    const int64_t n = lc_mc_task_size(tr->task);
    const int64_t items = o->limit > 0 && o->limit < n ? o->limit : n;
    double t0 = cli_now();
    lc_status rc;

    snprintf(label, sizeof(label), "%s%s", tr->label,
             a->lolcats == NULL || !a->compare ? ""
             : which == 0                      ? " (teacher)"
                                               : " (linearized)");
    lc_model_use_teacher(model, which == 0);
    cli_set_stop_note("waiting for the %s items being scored", label);
    cli_info(&a->common, "%s: %lld items", label, (long long)items);
    cli_progress_start(&prog, label, items, a->common.quiet);
    rc = lc_mc_evaluate(model, tok, tr->task, o, on_progress, &prog, NULL, &tr->res[which], err);
    cli_set_stop_note(NULL);
    cli_progress_end(&prog);
    tr->seconds[which] = cli_now() - t0;
    return rc;
}

static void print_json_task(const struct eval_args *a, const struct task_run *tr, int which,
                            const struct lc_mc_opts *o)
{
    const struct lc_mc_result *r = &tr->res[which];

    printf("{\"task\": ");
    json_string(stdout, tr->label);
    printf(", \"model\": ");
    json_string(stdout, a->model);
    printf(", \"attention\": \"%s\"", which == 0 ? "softmax" : "linearized");
    if (which == 1) {
        printf(", \"lolcats\": ");
        json_string(stdout, a->lolcats);
    }
    printf(", \"data\": ");
    json_string(stdout, lc_mc_task_path(tr->task));
    printf(", \"items\": %lld, \"requests\": %lld, \"truncated\": %lld, \"shots\": %d, "
           "\"seed\": %llu, \"context\": %d, \"acc\": %.9g, \"acc_stderr\": %.9g, "
           "\"acc_norm\": %.9g, \"acc_norm_stderr\": %.9g, \"acc_bytes\": %.9g, "
           "\"acc_bytes_stderr\": %.9g, \"acc_norm_is_acc\": %s, \"seconds\": %.3f}\n",
           (long long)r->n_items, (long long)r->n_requests, (long long)r->n_truncated, o->shots,
           (unsigned long long)o->seed, r->context, r->acc, r->acc_stderr, r->acc_norm,
           r->acc_norm_stderr, r->acc_bytes, r->acc_bytes_stderr,
           r->has_acc_norm ? "false" : "true", tr->seconds[which]);
}

static void print_table(const struct eval_args *a, const struct task_run *runs, int n_runs,
                        const struct lc_mc_opts *o)
{
    const int linear = a->lolcats != NULL;
    /* the context the library used (--context or its default) */
    const int context = runs[0].res[linear && !a->compare ? 1 : 0].context;
    int footnote = 0;

    printf("model       %s\n", a->model);
    if (linear) {
        printf("lolcats     %s\n", a->lolcats);
    }
    if (!a->compare) {
        printf("attention   %s\n", linear ? "linearized (lolcats)" : "softmax (teacher)");
    }
    printf("prompts     %d-shot", o->shots);
    if (o->shots > 0) {
        printf(" (seed %llu)", (unsigned long long)o->seed);
    }
    printf(", at most %d tokens per request\n", context);
    printf("accuracies in percent\n\n");
    if (a->compare) {
        printf("%-16s %6s   %20s   %20s\n", "", "", "softmax (teacher)", "linearized (lolcats)");
        printf("%-16s %6s   %9s %10s   %9s %10s %9s\n", "task", "items", "acc", "acc_norm", "acc",
               "acc_norm", "seconds");
    } else {
        printf("%-16s %6s   %8s %7s %9s %7s %9s\n", "task", "items", "acc", "stderr", "acc_norm",
               "stderr", "seconds");
    }
    for (int k = 0; k < n_runs; k++) {
        const struct task_run *tr = &runs[k];
        char name[64];
        footnote |= !lc_mc_task_has_acc_norm(tr->task);
        snprintf(name, sizeof(name), "%.60s%s", tr->label,
                 lc_mc_task_has_acc_norm(tr->task) ? "" : "*");
        if (a->compare) {
            printf("%-16s %6lld   %9.2f %10.2f   %9.2f %10.2f %9.1f\n", name,
                   (long long)tr->res[0].n_items, 100.0 * tr->res[0].acc,
                   100.0 * tr->res[0].acc_norm, 100.0 * tr->res[1].acc,
                   100.0 * tr->res[1].acc_norm, tr->seconds[0] + tr->seconds[1]);
        } else {
            const struct lc_mc_result *r = &tr->res[linear ? 1 : 0];
            printf("%-16s %6lld   %8.2f %7.2f %9.2f %7.2f %9.1f\n", name, (long long)r->n_items,
                   100.0 * r->acc, 100.0 * r->acc_stderr, 100.0 * r->acc_norm,
                   100.0 * r->acc_norm_stderr, tr->seconds[linear ? 1 : 0]);
        }
    }
    if (footnote) {
        printf("\n* acc only: every choice is scored on the same continuation, so acc_norm = acc\n");
    }
    for (int k = 0; k < n_runs; k++) {
        for (int w = 0; w < 2; w++) {
            if (runs[k].res[w].n_truncated > 0) {
                printf("%s: %lld requests were cut to %d tokens\n", runs[k].label,
                       (long long)runs[k].res[w].n_truncated, context);
                break;
            }
        }
    }
}

static int run_tasks(const struct eval_args *a, struct lc_model *model, struct lc_tokenizer *tok,
                     struct task_run *runs)
{
    const int linear = a->lolcats != NULL;
    struct lc_error err = {0};
    struct lc_mc_opts o;
    lc_status rc = LC_OK;

    lc_mc_opts_default(&o);
    o.shots = (int)a->shots;
    o.seed = a->seed;
    o.limit = a->limit;
    o.context = (int)a->context; /* 0: the library's default, the model's length */
    for (int k = 0; k < a->n_tasks && rc == LC_OK; k++) {
        if (!linear || a->compare) {
            rc = score_task(a, model, tok, &runs[k], 0, &o, &err);
        }
        if (rc == LC_OK && linear) {
            rc = score_task(a, model, tok, &runs[k], 1, &o, &err);
        }
        if (rc == LC_OK && a->json) {
            /* one line per result as soon as it is known */
            if (!linear || a->compare) {
                print_json_task(a, &runs[k], 0, &o);
            }
            if (linear) {
                print_json_task(a, &runs[k], 1, &o);
            }
            fflush(stdout);
        }
    }
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    if (!a->json) {
        print_table(a, runs, a->n_tasks, &o);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the results to standard output");
        return CLI_EXIT_OUTPUT;
    }
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct eval_args a;
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *model = NULL;
    struct lc_tokenizer *tok = NULL;
    struct task_run runs[MAX_TASKS];
    lc_status rc;
    int status;

    memset(runs, 0, sizeof(runs));
    cli_init(argc, argv, "lolcats-eval");
    status = parse_args(argc, argv, &a);
    if (status != CLI_EXIT_OK) {
        goto done;
    }
    cli_catch_interrupts();
    /* the task files first: a bad one fails before the model is loaded */
    for (int k = 0; k < a.n_tasks; k++) {
        const char *name = a.tasks[k];
        runs[k].label = name;
        rc = lc_mc_task_load(&runs[k].task, is_file_task(name) ? "jsonl" : name,
                             is_file_task(name) ? name : a.data, &err);
        if (rc != LC_OK) {
            status = cli_fail(rc, &err, 0);
            goto done;
        }
    }
    status = cli_open_backend(&a.common, &be);
    if (status != CLI_EXIT_OK) {
        goto done;
    }
    rc = lc_model_open(&model, a.model, be, &err);
    if (rc == LC_OK) {
        rc = lc_tokenizer_open(&tok, a.model, &err);
    }
    if (rc == LC_OK && a.lolcats != NULL) {
        rc = lc_model_load_lolcats(model, a.lolcats, &err);
    }
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    status = cli_page_in(&a.common, model, a.model);
    if (status != CLI_EXIT_OK) {
        goto done;
    }
    status = a.n_tasks > 0 ? run_tasks(&a, model, tok, runs) : run_ppl(&a, model, tok);

done:
    for (int k = 0; k < a.n_tasks; k++) {
        lc_mc_task_free(runs[k].task);
    }
    free(a.task_buf);
    lc_tokenizer_close(tok);
    lc_model_close(model);
    lc_backend_close(be);
    return status;
}
