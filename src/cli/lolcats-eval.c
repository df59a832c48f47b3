/* lolcats-eval: perplexity (and, later, benchmark tasks) of a model. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct eval_args {
    struct cli_common common;
    const char *model;
    const char *lolcats;
    int compare;
    const char *task;
    const char *data;
    long long context;
    enum lc_data_split split;
    struct lc_data_opts data_opts;
    int json;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s --model PATH --task ppl --data FILE [OPTIONS]\n"
            "Measure the quality of a Llama-family model.\n"
            "\n"
            "  -m, --model PATH        Hugging Face model folder or GGUF file\n"
            "  -l, --lolcats DIR       evaluate the model linearized by lolcats-train into DIR\n"
            "      --compare           evaluate the original and the linearized model (needs\n"
            "                          --lolcats) and print them side by side\n"
            "  -t, --task NAME         ppl: perplexity of the text of --data\n"
            "  -d, --data FILE         text, JSON lines or Alpaca JSON data (gzip allowed)\n"
            "  -c, --context N         tokens per perplexity window (default 512)\n"
            "      --split WHICH       all, train or val part of --data (default all)\n"
            "      --val-fraction F    held-out fraction of a text file for --split (default 0.1)\n"
            "      --val-records N     held-out records of a record file for --split (default 200)\n"
            "      --format FMT        auto, text, jsonl or alpaca (default auto)\n"
            "      --json              print one JSON object instead of a table\n"
            "      --backend NAME      compute backend: cpu or ref (default cpu)\n"
            "      --threads N         threads (default: all cores)\n"
            "  -v, --verbose           print the backend and GEMM kernel in use\n"
            "  -q, --quiet             no progress display\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "See lolcats-eval(1) for the perplexity protocol and exit statuses.\n",
            cli_prog);
}

enum {
    OPT_SPLIT = 256,
    OPT_COMPARE,
    OPT_VAL_FRACTION,
    OPT_VAL_RECORDS,
    OPT_FORMAT,
    OPT_JSON,
    OPT_BACKEND,
    OPT_THREADS
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
        {"val-fraction", required_argument, NULL, OPT_VAL_FRACTION},
        {"val-records", required_argument, NULL, OPT_VAL_RECORDS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"json", no_argument, NULL, OPT_JSON},
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long long n;
    double x;

    memset(a, 0, sizeof(*a));
    a->context = 512;
    a->split = LC_SPLIT_ALL;
    lc_data_opts_default(&a->data_opts);
    while ((c = getopt_long(argc, argv, "m:l:t:d:c:vqhV", longopts, NULL)) != -1) {
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
        case OPT_VAL_FRACTION:
            if (!cli_parse_double("--val-fraction", optarg, 0.0, 1.0, &x)) {
                return CLI_EXIT_USAGE;
            }
            a->data_opts.val_fraction = x;
            break;
        case OPT_VAL_RECORDS:
            if (!cli_parse_int("--val-records", optarg, 0, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            a->data_opts.val_records = n;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "auto") == 0) {
                a->data_opts.format = LC_DATA_AUTO;
            } else if (strcmp(optarg, "text") == 0) {
                a->data_opts.format = LC_DATA_TEXT;
            } else if (strcmp(optarg, "jsonl") == 0) {
                a->data_opts.format = LC_DATA_JSONL_TEXT;
            } else if (strcmp(optarg, "alpaca") == 0) {
                a->data_opts.format = LC_DATA_ALPACA;
            } else {
                return cli_usage_error("--format: '%s' is not one of auto, text, jsonl, alpaca",
                                       optarg);
            }
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_BACKEND:
            a->common.backend = optarg;
            break;
        case OPT_THREADS:
            if (!cli_parse_int("--threads", optarg, 1, 4096, &n)) {
                return CLI_EXIT_USAGE;
            }
            a->common.threads = (int)n;
            break;
        case 'v':
            a->common.verbose = 1;
            break;
        case 'q':
            a->common.quiet = 1;
            break;
        case 'h':
            usage(stdout);
            exit(CLI_EXIT_OK);
        case 'V':
            cli_print_version();
            exit(CLI_EXIT_OK);
        default:
            fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog);
            return CLI_EXIT_USAGE;
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
    if (strcmp(a->task, "ppl") != 0) {
        return cli_usage_error("--task: unknown task '%s' (known: ppl)", a->task);
    }
    if (a->data == NULL) {
        return cli_usage_error("--task ppl needs --data FILE");
    }
    if (a->compare && a->lolcats == NULL) {
        return cli_usage_error("--compare needs --lolcats DIR");
    }
    return CLI_EXIT_OK;
}

static int on_progress(int64_t done, int64_t total, void *user)
{
    struct cli_progress *p = user;
    (void)total;
    cli_progress_update(p, done, NULL);
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

    cli_progress_start(&prog, label, (n + a->context - 1) / a->context, a->common.quiet || a->json);
    rc = lc_model_perplexity(model, ids, n, (int)a->context, on_progress, &prog, res, err);
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

int main(int argc, char **argv)
{
    struct eval_args a;
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *model = NULL;
    struct lc_tokenizer *tok = NULL;
    lc_status rc;
    int status;

    cli_init(argc, argv, "lolcats-eval");
    status = parse_args(argc, argv, &a);
    if (status != CLI_EXIT_OK) {
        return status;
    }
    cli_catch_interrupts();
    status = cli_open_backend(&a.common, &be);
    if (status != CLI_EXIT_OK) {
        return status;
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
    status = run_ppl(&a, model, tok);

done:
    lc_tokenizer_close(tok);
    lc_model_close(model);
    lc_backend_close(be);
    return status;
}
