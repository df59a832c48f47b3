/* lolcats-generate: continue a prompt, streaming the text to stdout. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct gen_args {
    struct cli_common common;
    const char *model;
    const char *lolcats;
    const char *prompt;
    const char *prompt_file;
    long long max_tokens;
    double temperature;
    double top_p;
    long long seed;
    int no_bos;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s --model PATH [--lolcats DIR] [--prompt TEXT] [OPTIONS]\n"
            "Continue a prompt with a Llama-family model, streaming the text to standard output.\n"
            "\n"
            "  -m, --model PATH        Hugging Face model folder or GGUF file\n"
            "  -l, --lolcats DIR       generate with the model linearized by lolcats-train into\n"
            "                          DIR (constant memory per token)\n"
            "  -p, --prompt TEXT       the prompt (default: empty, generation starts after BOS)\n"
            "  -f, --prompt-file FILE  read the prompt from FILE\n"
            "  -n, --max-tokens N      stop after N new tokens (default 256)\n"
            "      --temperature T     sampling temperature, 0 = greedy (default 0.8)\n"
            "      --top-p P           nucleus sampling mass, 1 = off (default 0.9)\n"
            "      --seed S            random seed for sampling (default 0)\n"
            "      --no-bos            do not put BOS before the prompt\n"
            "      --backend NAME      compute backend: cpu (default), cuda or ref\n"
            "      --threads N         threads (default: all cores)\n"
            "  -v, --verbose           print the backend, GEMM kernel, speed and the size of\n"
            "                          the decoding state to stderr\n"
            "  -q, --quiet             print only the generated text\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "See lolcats-generate(1) for details and exit statuses.\n",
            cli_prog);
}

enum { OPT_TEMPERATURE = CLI_OPT_FIRST, OPT_TOP_P, OPT_SEED, OPT_NO_BOS };

static int parse_args(int argc, char **argv, struct gen_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"lolcats", required_argument, NULL, 'l'},
        {"prompt", required_argument, NULL, 'p'},
        {"prompt-file", required_argument, NULL, 'f'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, OPT_TEMPERATURE},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"seed", required_argument, NULL, OPT_SEED},
        {"no-bos", no_argument, NULL, OPT_NO_BOS},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    int status;

    memset(a, 0, sizeof(*a));
    a->max_tokens = 256;
    a->temperature = 0.8;
    a->top_p = 0.9;
    while ((c = getopt_long(argc, argv, "m:l:p:f:n:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'l':
            a->lolcats = optarg;
            break;
        case 'p':
            a->prompt = optarg;
            break;
        case 'f':
            a->prompt_file = optarg;
            break;
        case 'n':
            if (!cli_parse_int("--max-tokens", optarg, 0, 1 << 24, &a->max_tokens)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_TEMPERATURE:
            if (!cli_parse_double("--temperature", optarg, 0.0, 100.0, &a->temperature)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_TOP_P:
            if (!cli_parse_double("--top-p", optarg, 1e-6, 1.0, &a->top_p)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_SEED:
            if (!cli_parse_int("--seed", optarg, 0, INT64_MAX, &a->seed)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_NO_BOS:
            a->no_bos = 1;
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
    if (a->prompt != NULL && a->prompt_file != NULL) {
        return cli_usage_error("--prompt and --prompt-file exclude each other");
    }
    return CLI_EXIT_OK;
}

/* The prompt text (malloc'd) from --prompt, --prompt-file or "". */
static int read_prompt(const struct gen_args *a, char **text, size_t *len)
{
    if (a->prompt_file != NULL) {
        struct lc_error err = {0};
        lc_status rc = lc_read_text_file(a->prompt_file, text, len, &err);
        return rc == LC_OK ? CLI_EXIT_OK : cli_fail(rc, &err, 0);
    }
    *text = strdup(a->prompt != NULL ? a->prompt : "");
    if (*text == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_RESOURCES;
    }
    *len = strlen(*text);
    return CLI_EXIT_OK;
}

static int generate(const struct gen_args *a, struct lc_model *model, struct lc_tokenizer *tok)
{
    struct lc_error err = {0};
    const struct lc_model_config *cfg = lc_model_get_config(model);
    struct lc_session *sess = NULL;
    char *prompt = NULL;
    size_t prompt_len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *logits = NULL;
    uint64_t rng = (uint64_t)a->seed;
    int32_t prev = -1;
    int32_t eos = lc_tokenizer_eos(tok);
    unsigned flags = 0;
    long long produced = 0;
    double t0;
    double t_prefill = 0.0;
    lc_status rc;
    int status;

    status = read_prompt(a, &prompt, &prompt_len);
    if (status != CLI_EXIT_OK) {
        return status;
    }
    if (!a->no_bos && lc_tokenizer_wants_bos(tok)) {
        flags |= LC_TOK_ADD_BOS;
    }
    rc = lc_tokenizer_encode(tok, prompt, prompt_len, flags, &ids, &n_ids, &err);
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    if (n_ids == 0) {
        status = cli_usage_error("the prompt is empty and --no-bos leaves nothing to start from");
        goto done;
    }
    logits = malloc((size_t)cfg->vocab_size * sizeof(float));
    if (logits == NULL) {
        status = CLI_EXIT_RESOURCES;
        cli_error("out of memory");
        goto done;
    }
    rc = lc_session_new(&sess, model, (int)(n_ids + (size_t)a->max_tokens), &err);
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    t0 = cli_now();
    rc = lc_session_feed(sess, ids, (int)n_ids, logits, &err);
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    t_prefill = cli_now() - t0;
    prev = ids[n_ids - 1];
    t0 = cli_now();
    cli_set_stop_note("stopping after the token being computed");
    while (produced < a->max_tokens && !cli_interrupted()) {
        char piece[256];
        size_t len;
        int32_t next = lc_sample_token(logits, cfg->vocab_size, (float)a->temperature,
                                       (float)a->top_p, &rng);
        if (next == eos) {
            break;
        }
        len = lc_tokenizer_decode_next(tok, prev, next, piece, sizeof(piece));
        fwrite(piece, 1, len < sizeof(piece) ? len : sizeof(piece), stdout);
        fflush(stdout);
        produced++;
        prev = next;
        if (produced == a->max_tokens) {
            break;
        }
        rc = lc_session_feed(sess, &next, 1, logits, &err);
        if (rc != LC_OK) {
            fputc('\n', stdout);
            status = cli_fail(rc, &err, 0);
            goto done;
        }
    }
    fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write to standard output");
        status = CLI_EXIT_OUTPUT;
        goto done;
    }
    if (a->common.verbose) {
        double dt = cli_now() - t0;
        fprintf(stderr,
                "%s: prompt %zu tokens in %.3f s; generated %lld tokens, %.1f tokens/s; "
                "decoding state %.1f KiB after %d tokens (%s)\n",
                cli_prog, n_ids, t_prefill, produced, dt > 0 ? (double)produced / dt : 0.0,
                (double)lc_session_state_bytes(sess) / 1024.0, lc_session_length(sess),
                a->lolcats != NULL ? "window cache and linear state, constant"
                                   : "KV cache, grows with the context");
    }
    if (cli_interrupted()) {
        status = CLI_EXIT_INTERRUPTED;
    }

done:
    lc_session_free(sess);
    free(logits);
    free(ids);
    free(prompt);
    return status;
}

int main(int argc, char **argv)
{
    struct gen_args a;
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *model = NULL;
    struct lc_tokenizer *tok = NULL;
    lc_status rc;
    int status;

    cli_init(argc, argv, "lolcats-generate");
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
    if (rc == LC_OK && a.lolcats != NULL) {
        rc = lc_model_load_lolcats(model, a.lolcats, &err);
    }
    if (rc == LC_OK) {
        rc = lc_tokenizer_open(&tok, a.model, &err);
    }
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    status = cli_page_in(&a.common, model, a.model);
    if (status != CLI_EXIT_OK) {
        goto done;
    }
    status = generate(&a, model, tok);
    if (a.common.verbose && status == CLI_EXIT_OK) {
        /* with what decoding ended up (the cpu backend measures its
         * prefetch levels on a large model's first tokens) */
        fprintf(stderr, "%s: backend after decoding %s\n", cli_prog, lc_backend_describe(be));
    }

done:
    lc_tokenizer_close(tok);
    lc_model_close(model);
    lc_backend_close(be);
    return status;
}
