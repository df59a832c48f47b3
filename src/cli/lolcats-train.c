/* lolcats-train: linearize a Llama-family model with LoLCATs. */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* the most layers --softmax-layers can name */
#define LC_MAX_LIST 4096

struct train_args {
    struct cli_common common;
    const char *model;
    const char *data;
    struct lc_data_opts data_opts;
    struct lc_train_opts t;
    int softmax_layers[LC_MAX_LIST];
    int no_summary;
    int plan;
    int plan_ranks;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s --model PATH --data FILE --out DIR [OPTIONS]\n"
            "Linearize a Llama-family model with LoLCATs: train Hedgehog feature maps and a\n"
            "softmax window to mimic every softmax attention (stage 1, attention transfer),\n"
            "then LoRA adapters on the linearized model (stage 2, low-rank linearizing).\n"
            "\n"
            "Input and output:\n"
            "  -m, --model PATH        Hugging Face model folder or GGUF file\n"
            "  -d, --data FILE         training text: plain text, JSON lines of {\"text\"}, or\n"
            "                          Alpaca records (JSON array or lines); gzip allowed\n"
            "  -o, --out DIR           output folder (created if missing)\n"
            "      --stage STAGE       transfer, finetune or all (default all: both); or\n"
            "                          lora-only: the same LoRA on the original model\n"
            "      --format FMT        auto, text, jsonl or alpaca (default auto)\n"
            "      --val-fraction F    held-out fraction of a text file (default 0.1)\n"
            "      --val-records N     held-out records of a record file (default 200)\n"
            "      --resume            continue from the training state in DIR\n"
            "      --metrics FILE      write metrics as JSON lines to FILE\n"
            "\n"
            "Training:\n"
            "      --seq-len N         tokens per chunk (default min(1024, model context))\n"
            "      --batch-size N      chunks per micro-batch (default 1)\n"
            "      --grad-accum N      micro-batches per optimizer step (default 8)\n"
            "      --lr LR             AdamW learning rate of stage 1 (default 0.01)\n"
            "      --weight-decay W    AdamW weight decay (default 0)\n"
            "      --max-steps N       optimizer steps (0: evaluate the start only;\n"
            "                          default: --epochs epochs)\n"
            "      --epochs N          passes over the data (default 2)\n"
            "      --eval-every N      optimizer steps between evaluations (default 100)\n"
            "      --val-size N        held-out chunks per evaluation and for the summary\n"
            "                          (default all)\n"
            "      --plateau-factor F  learning-rate factor on a plateau (default 0.1)\n"
            "      --plateau-patience N  evaluations without improvement first (default 10)\n"
            "      --min-lr LR         lower bound of the learning rate (default 1e-05)\n"
            "      --lr-schedule S     stage 1: plateau (default), cosine or constant\n"
            "      --warmup-steps N    stage 1: linear warm-up steps (default 0)\n"
            "      --seed S            data order seed (default 0)\n"
            "\n"
            "Linear attention:\n"
            "      --feature-dim N     feature-map output f; features are 2f (default 64)\n"
            "      --window N          softmax window W (default 64)\n"
            "      --window-mode MODE  terraced (default) or sliding\n"
            "      --mse-weight W      weight of the output MSE loss (default 1000)\n"
            "      --xent-weight W     weight of the attention-weight cross-entropy (default 0)\n"
            "      --softmax-layers LIST  layers that keep softmax attention, e.g. 0,15-17\n"
            "                          (a hybrid model; default none)\n"
            "      --block-layers K    block-wise transfer: train blocks of K layers each on\n"
            "                          its own, from cached hidden states (default: all\n"
            "                          layers together)\n"
            "      --cache-dir DIR     the cached hidden states (default DIR/hidden_states)\n"
            "      --cache-shard-chunks N  chunks per cache file (default: about 64 MiB)\n"
            "\n"
            "LoRA (stage 2):\n"
            "      --lora-rank N       adapter rank r (default 8)\n"
            "      --lora-alpha A      adapter scale alpha; the update is alpha/r B A (default 16)\n"
            "      --lora-dropout P    dropout on the adapters' input (default 0)\n"
            "      --lora-targets LIST projections to adapt, any of q,k,v,o (default q,k,v,o)\n"
            "      --lora-lr LR        AdamW learning rate of stage 2 (default 0.0001)\n"
            "      --lora-lr-schedule S  stage 2: plateau (default), cosine or constant\n"
            "      --lora-warmup-steps N  stage 2: linear warm-up steps (default 0)\n"
            "      --train-feature-maps  also train the feature maps and window factors\n"
            "                          (default; stage 1's kept beside them)\n"
            "      --no-train-feature-maps  keep stage 1's feature maps fixed\n"
            "      --feature-map-lr LR  their learning rate in stage 2 (default 0.01)\n"
            "      --no-transfer       skip attention transfer: untrained feature maps, trained\n"
            "                          jointly with LoRA (the paper's baseline)\n"
            "      --recompute         keep only each layer's input for the backward and\n"
            "                          recompute the rest (less memory, more time)\n"
            "      --merge             also write DIR/merged: the model with the adapters\n"
            "                          folded into its weights (Hugging Face folder)\n"
            "      --compare-lora      also train the same LoRA on the original model into\n"
            "                          DIR/lora-only and compare it in the summary\n"
            "\n"
            "Ranks (under mpirun; see DISTRIBUTED in lolcats-train(1)):\n"
            "      --pipeline-stages N  pipeline stages, each a block of layers (default:\n"
            "                          as many as the ranks and layers allow); stage 2 is\n"
            "                          a pipeline only when N is given and above 1, else\n"
            "                          data parallel\n"
            "\n"
            "Memory:\n"
            "      --plan              print the memory plan per rank and exit (needs only\n"
            "                          --model, which may be a config.json or a GGUF file)\n"
            "      --ranks N           the ranks to plan for (default: those running)\n"
            "      --max-memory SIZE   memory a rank may use, e.g. 20G (default: what the\n"
            "                          host has available); refuse to start beyond it\n"
            "\n"
            "General:\n"
            "      --backend NAME      compute backend: cpu (default), cuda or ref\n"
            "      --threads N         threads (default: all cores)\n"
            "      --no-summary        skip the final perplexity comparison\n"
            "  -v, --verbose           print the backend and GEMM kernel in use\n"
            "  -q, --quiet             no configuration, progress, memory or evaluation\n"
            "                          lines (warnings and errors remain)\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "See lolcats-train(1) and lolcats-checkpoint(5).\n",
            cli_prog);
}

enum {
    OPT_STAGE = CLI_OPT_FIRST,
    OPT_RESUME,
    OPT_METRICS,
    OPT_SEQ_LEN,
    OPT_BATCH_SIZE,
    OPT_GRAD_ACCUM,
    OPT_LR,
    OPT_WEIGHT_DECAY,
    OPT_MAX_STEPS,
    OPT_EPOCHS,
    OPT_EVAL_EVERY,
    OPT_VAL_SIZE,
    OPT_PLATEAU_FACTOR,
    OPT_PLATEAU_PATIENCE,
    OPT_MIN_LR,
    OPT_LR_SCHEDULE,
    OPT_WARMUP_STEPS,
    OPT_SEED,
    OPT_FEATURE_DIM,
    OPT_WINDOW,
    OPT_WINDOW_MODE,
    OPT_MSE_WEIGHT,
    OPT_XENT_WEIGHT,
    OPT_SOFTMAX_LAYERS,
    OPT_BLOCK_LAYERS,
    OPT_CACHE_DIR,
    OPT_CACHE_SHARD_CHUNKS,
    OPT_LORA_RANK,
    OPT_LORA_ALPHA,
    OPT_LORA_DROPOUT,
    OPT_LORA_TARGETS,
    OPT_LORA_LR,
    OPT_LORA_LR_SCHEDULE,
    OPT_LORA_WARMUP_STEPS,
    OPT_TRAIN_FEATURE_MAPS,
    OPT_NO_TRAIN_FEATURE_MAPS,
    OPT_FEATURE_MAP_LR,
    OPT_NO_TRANSFER,
    OPT_RECOMPUTE,
    OPT_MERGE,
    OPT_NO_SUMMARY,
    OPT_PIPELINE_STAGES,
    OPT_PLAN,
    OPT_RANKS,
    OPT_MAX_MEMORY,
    OPT_COMPARE_LORA
};

static int parse_schedule(const char *opt, const char *s, int *out)
{
    if (strcmp(s, "plateau") == 0) {
        *out = LC_LR_PLATEAU;
    } else if (strcmp(s, "cosine") == 0) {
        *out = LC_LR_COSINE;
    } else if (strcmp(s, "constant") == 0) {
        *out = LC_LR_CONSTANT;
    } else {
        cli_usage_error("%s: '%s' is not plateau, cosine or constant", opt, s);
        return 0;
    }
    return 1;
}

/* "q,k,v,o" or any subset; q_proj etc. are accepted too */
static int parse_targets(const char *s, unsigned *out)
{
    static const char *const names[] = {"q", "k", "v", "o"};
    unsigned bits = 0;

    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (int t = 0; t < 4; t++) {
            if ((n == 1 && s[0] == names[t][0]) ||
                (n == 6 && s[0] == names[t][0] && strncmp(s + 1, "_proj", 5) == 0)) {
                bits |= 1u << t;
                found = 1;
            }
        }
        if (!found) {
            return 0;
        }
        s += n;
        if (*s == ',') {
            s++;
            if (*s == '\0') {
                return 0;
            }
        }
    }
    *out = bits;
    return bits != 0;
}

/* "20G", "512M", "1.5T" (powers of 1024) or bytes */
static int parse_size(const char *s, int64_t *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    double unit = 1.0;

    if (end == s || !(v > 0)) {
        return 0;
    }
    switch (*end) {
    case 'K': case 'k': unit = 1024.0; end++; break;
    case 'M': case 'm': unit = 1024.0 * 1024; end++; break;
    case 'G': case 'g': unit = 1024.0 * 1024 * 1024; end++; break;
    case 'T': case 't': unit = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B') {
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    }
    if (*end != '\0' || v * unit > 9e18) {
        return 0;
    }
    *out = (int64_t)(v * unit);
    return 1;
}

/* The memory plan: the model's configuration, the data when given. */
static int run_plan(const struct train_args *a, int ranks)
{
    struct lc_error err = {0};
    struct lc_tokenizer *tok = NULL;
    struct lc_dataset *ds = NULL;
    char *text = NULL;
    lc_status rc = LC_OK;

    if (a->common.threads > 0) {
        lc_set_num_threads(a->common.threads);
    }
    if (a->data != NULL) {
        rc = lc_tokenizer_open(&tok, a->model, &err);
        if (rc == LC_OK) {
            rc = lc_dataset_load(&ds, a->data, tok, &a->data_opts, &err);
        }
    }
    if (rc == LC_OK) {
        rc = lc_plan_text(&text, NULL, a->model, ds, &a->t, ranks, &err);
    }
    if (rc == LC_OK) {
        fputs(text, stdout);
    }
    free(text);
    lc_dataset_free(ds);
    lc_tokenizer_close(tok);
    return rc == LC_OK ? CLI_EXIT_OK : cli_fail(rc, &err, 0);
}

/* "0,3,5-7": layer numbers and ranges (up to LC_MAX_LIST layers); the
 * library checks them against the model */
static int parse_layer_list(const char *s, int *out, int *n_out)
{
    int n = 0;

    while (*s != '\0') {
        char *end = NULL;
        long lo = strtol(s, &end, 10);
        long hi = lo;
        if (end == s || lo < 0 || lo >= LC_MAX_LIST || *s == '-' || *s == '+') {
            return 0;
        }
        s = end;
        if (*s == '-') {
            s++;
            if (*s < '0' || *s > '9') {
                return 0;
            }
            hi = strtol(s, &end, 10);
            if (hi < lo || hi >= LC_MAX_LIST) {
                return 0;
            }
            s = end;
        }
        for (long l = lo; l <= hi; l++) {
            if (n >= LC_MAX_LIST) {
                return 0;
            }
            out[n++] = (int)l;
        }
        if (*s == ',') {
            s++;
            if (*s == '\0') {
                return 0;
            }
        } else if (*s != '\0') {
            return 0;
        }
    }
    *n_out = n;
    return n > 0;
}

static int parse_args(int argc, char **argv, struct train_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"data", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"stage", required_argument, NULL, OPT_STAGE},
        CLI_DATA_LONGOPTS,
        {"resume", no_argument, NULL, OPT_RESUME},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"seq-len", required_argument, NULL, OPT_SEQ_LEN},
        {"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
        {"grad-accum", required_argument, NULL, OPT_GRAD_ACCUM},
        {"lr", required_argument, NULL, OPT_LR},
        {"weight-decay", required_argument, NULL, OPT_WEIGHT_DECAY},
        {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
        {"val-size", required_argument, NULL, OPT_VAL_SIZE},
        {"plateau-factor", required_argument, NULL, OPT_PLATEAU_FACTOR},
        {"plateau-patience", required_argument, NULL, OPT_PLATEAU_PATIENCE},
        {"min-lr", required_argument, NULL, OPT_MIN_LR},
        {"lr-schedule", required_argument, NULL, OPT_LR_SCHEDULE},
        {"warmup-steps", required_argument, NULL, OPT_WARMUP_STEPS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"feature-dim", required_argument, NULL, OPT_FEATURE_DIM},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"window-mode", required_argument, NULL, OPT_WINDOW_MODE},
        {"mse-weight", required_argument, NULL, OPT_MSE_WEIGHT},
        {"xent-weight", required_argument, NULL, OPT_XENT_WEIGHT},
        {"softmax-layers", required_argument, NULL, OPT_SOFTMAX_LAYERS},
        {"block-layers", required_argument, NULL, OPT_BLOCK_LAYERS},
        {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
        {"cache-shard-chunks", required_argument, NULL, OPT_CACHE_SHARD_CHUNKS},
        {"lora-rank", required_argument, NULL, OPT_LORA_RANK},
        {"lora-alpha", required_argument, NULL, OPT_LORA_ALPHA},
        {"lora-dropout", required_argument, NULL, OPT_LORA_DROPOUT},
        {"lora-targets", required_argument, NULL, OPT_LORA_TARGETS},
        {"lora-lr", required_argument, NULL, OPT_LORA_LR},
        {"lora-lr-schedule", required_argument, NULL, OPT_LORA_LR_SCHEDULE},
        {"lora-warmup-steps", required_argument, NULL, OPT_LORA_WARMUP_STEPS},
        {"train-feature-maps", no_argument, NULL, OPT_TRAIN_FEATURE_MAPS},
        {"no-train-feature-maps", no_argument, NULL, OPT_NO_TRAIN_FEATURE_MAPS},
        {"feature-map-lr", required_argument, NULL, OPT_FEATURE_MAP_LR},
        {"no-transfer", no_argument, NULL, OPT_NO_TRANSFER},
        {"recompute", no_argument, NULL, OPT_RECOMPUTE},
        {"merge", no_argument, NULL, OPT_MERGE},
        {"compare-lora", no_argument, NULL, OPT_COMPARE_LORA},
        {"no-summary", no_argument, NULL, OPT_NO_SUMMARY},
        {"pipeline-stages", required_argument, NULL, OPT_PIPELINE_STAGES},
        {"plan", no_argument, NULL, OPT_PLAN},
        {"ranks", required_argument, NULL, OPT_RANKS},
        {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct lc_train_opts *t = &a->t;
    long long n;
    int c;
    int status;

    memset(a, 0, sizeof(*a));
    lc_data_opts_default(&a->data_opts);
    lc_train_opts_default(t);
    while ((c = getopt_long(argc, argv, "m:d:o:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'd':
            a->data = optarg;
            break;
        case 'o':
            t->out_dir = optarg;
            break;
        case OPT_STAGE:
            if (strcmp(optarg, "transfer") == 0) {
                t->stage = LC_STAGE_TRANSFER;
            } else if (strcmp(optarg, "finetune") == 0) {
                t->stage = LC_STAGE_FINETUNE;
            } else if (strcmp(optarg, "all") == 0) {
                t->stage = LC_STAGE_ALL;
            } else if (strcmp(optarg, "lora-only") == 0) {
                t->stage = LC_STAGE_LORA_ONLY;
            } else {
                return cli_usage_error("--stage: '%s' is not transfer, finetune, all or lora-only",
                                       optarg);
            }
            break;
        case CLI_OPT_FORMAT:
        case CLI_OPT_VAL_FRACTION:
        case CLI_OPT_VAL_RECORDS:
            if (!cli_data_option(&a->data_opts, c, optarg)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_RESUME:
            t->resume = 1;
            break;
        case OPT_METRICS:
            t->metrics_path = optarg;
            break;
        case OPT_SEQ_LEN:
            if (!cli_parse_int("--seq-len", optarg, 2, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->seq_len = (int)n;
            break;
        case OPT_BATCH_SIZE:
            if (!cli_parse_int("--batch-size", optarg, 1, 1 << 16, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->batch_size = (int)n;
            break;
        case OPT_GRAD_ACCUM:
            if (!cli_parse_int("--grad-accum", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->grad_accum = (int)n;
            break;
        case OPT_LR:
            if (!cli_parse_double("--lr", optarg, 1e-12, 10.0, &t->lr)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_WEIGHT_DECAY:
            if (!cli_parse_double("--weight-decay", optarg, 0.0, 10.0, &t->weight_decay)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_MAX_STEPS:
            if (!cli_parse_int("--max-steps", optarg, 0, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->max_steps = n;
            break;
        case OPT_EPOCHS:
            if (!cli_parse_int("--epochs", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->epochs = (int)n;
            break;
        case OPT_EVAL_EVERY:
            if (!cli_parse_int("--eval-every", optarg, 1, 1 << 30, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->eval_every = (int)n;
            break;
        case OPT_VAL_SIZE:
            if (!cli_parse_int("--val-size", optarg, 1, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->val_size = n;
            break;
        case OPT_PLATEAU_FACTOR:
            if (!cli_parse_double("--plateau-factor", optarg, 1e-6, 1.0, &t->plateau_factor)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_PLATEAU_PATIENCE:
            if (!cli_parse_int("--plateau-patience", optarg, 0, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->plateau_patience = (int)n;
            break;
        case OPT_MIN_LR:
            if (!cli_parse_double("--min-lr", optarg, 0.0, 10.0, &t->min_lr)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_LR_SCHEDULE:
            if (!parse_schedule("--lr-schedule", optarg, &t->lr_schedule)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_LORA_LR_SCHEDULE:
            if (!parse_schedule("--lora-lr-schedule", optarg, &t->lora_lr_schedule)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_WARMUP_STEPS:
            if (!cli_parse_int("--warmup-steps", optarg, 0, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->warmup_steps = n;
            break;
        case OPT_LORA_WARMUP_STEPS:
            if (!cli_parse_int("--lora-warmup-steps", optarg, 0, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->lora_warmup_steps = n;
            break;
        case OPT_SEED:
            if (!cli_parse_int("--seed", optarg, 0, INT64_MAX, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->seed = (uint64_t)n;
            break;
        case OPT_FEATURE_DIM:
            if (!cli_parse_int("--feature-dim", optarg, 1, 1 << 16, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->feature_dim = (int)n;
            break;
        case OPT_WINDOW:
            if (!cli_parse_int("--window", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->window = (int)n;
            break;
        case OPT_WINDOW_MODE:
            if (strcmp(optarg, "terraced") == 0) {
                t->window_mode = LC_WINDOW_TERRACED;
            } else if (strcmp(optarg, "sliding") == 0) {
                t->window_mode = LC_WINDOW_SLIDING;
            } else {
                return cli_usage_error("--window-mode: '%s' is not terraced or sliding", optarg);
            }
            break;
        case OPT_MSE_WEIGHT:
            if (!cli_parse_double("--mse-weight", optarg, 0.0, 1e9, &t->mse_weight)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_XENT_WEIGHT:
            if (!cli_parse_double("--xent-weight", optarg, 0.0, 1e9, &t->xent_weight)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_SOFTMAX_LAYERS:
            if (!parse_layer_list(optarg, a->softmax_layers, &t->n_softmax_layers)) {
                return cli_usage_error("--softmax-layers: '%s' is not a list of layer numbers "
                                       "and ranges (e.g. 0,15-17)",
                                       optarg);
            }
            t->softmax_layers = a->softmax_layers;
            break;
        case OPT_BLOCK_LAYERS:
            if (!cli_parse_int("--block-layers", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->block_layers = (int)n;
            break;
        case OPT_CACHE_DIR:
            t->cache_dir = optarg;
            break;
        case OPT_CACHE_SHARD_CHUNKS:
            if (!cli_parse_int("--cache-shard-chunks", optarg, 1, INT64_MAX / 2, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->cache_shard_chunks = n;
            break;
        case OPT_LORA_RANK:
            if (!cli_parse_int("--lora-rank", optarg, 1, 65536, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->lora_rank = (int)n;
            break;
        case OPT_LORA_ALPHA:
            if (!cli_parse_double("--lora-alpha", optarg, 1e-9, 1e9, &t->lora_alpha)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_LORA_DROPOUT:
            if (!cli_parse_double("--lora-dropout", optarg, 0.0, 0.999, &t->lora_dropout)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_LORA_TARGETS:
            if (!parse_targets(optarg, &t->lora_targets)) {
                return cli_usage_error("--lora-targets: '%s' is not a list of q, k, v, o "
                                       "(e.g. q,v)",
                                       optarg);
            }
            break;
        case OPT_LORA_LR:
            if (!cli_parse_double("--lora-lr", optarg, 1e-12, 10.0, &t->lora_lr)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_TRAIN_FEATURE_MAPS:
            t->train_feature_maps = 1;
            break;
        case OPT_NO_TRAIN_FEATURE_MAPS:
            t->train_feature_maps = 0;
            break;
        case OPT_FEATURE_MAP_LR:
            if (!cli_parse_double("--feature-map-lr", optarg, 1e-12, 10.0, &t->feature_map_lr)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_NO_TRANSFER:
            t->skip_transfer = 1;
            t->train_feature_maps = 1;
            break;
        case OPT_RECOMPUTE:
            t->recompute = 1;
            break;
        case OPT_MERGE:
            t->merge = 1;
            break;
        case OPT_COMPARE_LORA:
            t->compare_lora = 1;
            break;
        case OPT_NO_SUMMARY:
            a->no_summary = 1;
            break;
        case OPT_PLAN:
            a->plan = 1;
            break;
        case OPT_RANKS:
            if (!cli_parse_int("--ranks", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            a->plan_ranks = (int)n;
            break;
        case OPT_MAX_MEMORY:
            if (!parse_size(optarg, &t->max_memory)) {
                return cli_usage_error("--max-memory: '%s' is not a size such as 20G, 512M or "
                                       "a number of bytes",
                                       optarg);
            }
            break;
        case OPT_PIPELINE_STAGES:
            if (!cli_parse_int("--pipeline-stages", optarg, 1, 1 << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            t->pipeline_stages = (int)n;
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
    if (a->plan && a->model == NULL) {
        return cli_usage_error("--plan needs --model");
    }
    if (!a->plan && (a->model == NULL || a->data == NULL || t->out_dir == NULL)) {
        return cli_usage_error("--model, --data and --out are required");
    }
    if (a->plan_ranks > 0 && !a->plan) {
        return cli_usage_error("--ranks is for --plan (mpirun chooses the ranks of a run)");
    }
    if (t->mse_weight == 0 && t->xent_weight == 0) {
        return cli_usage_error("--mse-weight and --xent-weight cannot both be 0");
    }
    if (t->skip_transfer && (t->stage == LC_STAGE_TRANSFER || t->stage == LC_STAGE_LORA_ONLY)) {
        return cli_usage_error("--no-transfer cannot be used with --stage %s",
                               t->stage == LC_STAGE_TRANSFER ? "transfer" : "lora-only");
    }
    if (t->merge && t->stage == LC_STAGE_TRANSFER) {
        return cli_usage_error("--merge needs a LoRA stage (--stage finetune, all or lora-only)");
    }
    if (t->compare_lora && t->stage == LC_STAGE_LORA_ONLY) {
        return cli_usage_error("--compare-lora is for the LoLCATs stages; --stage lora-only is "
                               "the comparison alone");
    }
    if (t->skip_transfer) {
        t->stage = LC_STAGE_FINETUNE; /* nothing of stage 1 runs */
    }
    if (t->seq_len > 0 && t->window > t->seq_len) {
        return cli_usage_error("--window (%d) is larger than --seq-len (%d)", t->window,
                               t->seq_len);
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ progress */

struct run_state {
    const struct train_args *a;
    struct cli_progress prog;  /* the optimizer steps of a stage */
    struct cli_progress evalp; /* an evaluation under way */
    char eval_label[64];
    char step_extra[96];       /* loss, lr and rate of the last step */
    int phase;                 /* LC_PHASE_* of the last progress event; -1: none yet */
    int64_t phase_step;        /* and its step */
    int n_layers;
    double *first_layer_mse; /* the first evaluation (the untrained start), NaN before */
    double *best_layer_mse;
    int have_layer_mse;
    int caching;             /* the cache progress is shown */
    int plan_shown;
    int64_t plan_bytes;      /* the memory plan of this rank */
};

#define GIB (1024.0 * 1024.0 * 1024.0)

static const char *stage_name(int stage)
{
    return stage == LC_STAGE_TRANSFER   ? "transfer"
           : stage == LC_STAGE_FINETUNE ? "finetune"
                                        : "lora-only";
}

/* The memory plan, once. */
static void note_plan(struct run_state *rs, const struct lc_train_event *ev)
{
    if (ev->plan_bytes > 0 && !rs->plan_shown) {
        cli_info(&rs->a->common, "memory plan: %.3f GiB at most on this rank",
                 ev->plan_bytes / GIB);
        rs->plan_shown = 1;
        rs->plan_bytes = ev->plan_bytes;
    }
}

/* The per-layer MSE of an evaluation for the summary: a block's layers only. */
static void keep_layer_mse(struct run_state *rs, const struct lc_train_event *ev)
{
    const int l0 = ev->block >= 0 ? ev->first_layer : 0;
    const int l1 = ev->block >= 0 ? ev->end_layer : rs->n_layers;

    if (rs->first_layer_mse == NULL || ev->layer_mse == NULL) {
        return;
    }
    for (int l = l0; l < l1 && l < rs->n_layers; l++) {
        if (isnan(rs->first_layer_mse[l])) {
            rs->first_layer_mse[l] = ev->layer_mse[l];
        }
        if (ev->improved) {
            rs->best_layer_mse[l] = ev->layer_mse[l];
        }
    }
    rs->have_layer_mse = 1;
}

/* Block-wise stage 1: one block at a time on this rank (rank 0 also shows
 * the evaluations and ends of the other ranks' blocks). */
static int on_block_event(struct run_state *rs, const struct lc_train_event *ev)
{
    const struct cli_common *c = &rs->a->common;
    char label[64];
    char extra[160];

    snprintf(label, sizeof(label), "block %d/%d", ev->block + 1, ev->n_blocks);
    switch (ev->kind) {
    case LC_EV_START:
        note_plan(rs, ev);
        if (ev->end_layer - ev->first_layer > 1) {
            snprintf(extra, sizeof(extra), "layers %d-%d", ev->first_layer, ev->end_layer - 1);
        } else {
            snprintf(extra, sizeof(extra), "layer %d", ev->first_layer);
        }
        cli_info(c, "transfer %s (%s): %lld optimizer steps of %lld tokens", label, extra,
                 (long long)ev->total_steps, (long long)ev->tokens_per_step);
        cli_progress_start(&rs->prog, label, ev->total_steps, c->quiet);
        break;
    case LC_EV_STEP:
        snprintf(extra, sizeof(extra), "loss %.4f lr %.1e %.0f tok/s", ev->loss, ev->lr,
                 ev->tokens_per_s);
        cli_progress_update(&rs->prog, ev->step, extra);
        break;
    case LC_EV_EVAL:
        keep_layer_mse(rs, ev);
        cli_progress_clear(&rs->prog);
        cli_info(c, "transfer %s step %lld: validation loss %.6f%s", label, (long long)ev->step,
                 ev->val_loss, ev->improved ? " (best so far, saved)" : "");
        break;
    case LC_EV_END:
        cli_progress_end(&rs->prog);
        cli_info(c, "transfer %s done: best validation loss %.6f", label, ev->best_val_loss);
        break;
    default:
        break;
    }
    return cli_interrupted();
}

/* Inside a step or an evaluation: the progress display, and what a stop
 * would wait for. */
static void on_progress(struct run_state *rs, const struct lc_train_event *ev)
{
    const struct cli_common *c = &rs->a->common;
    const char *name = stage_name(ev->stage);
    const double part = ev->layers > 0 ? (double)ev->layer / ev->layers : 0.0;
    char extra[256];

    if (ev->phase != rs->phase || ev->step != rs->phase_step) {
        rs->phase = ev->phase;
        rs->phase_step = ev->step;
        if (ev->phase == LC_PHASE_EVAL) {
            cli_progress_clear(&rs->prog);
            snprintf(rs->eval_label, sizeof(rs->eval_label), "%s evaluation", name);
            cli_progress_start(&rs->evalp, rs->eval_label, ev->total, c->quiet);
            if (ev->step == 0) {
                cli_set_stop_note("waiting for the layer being computed in the first evaluation "
                                  "of %s; nothing of this stage is saved before it ends",
                                  name);
            } else {
                cli_set_stop_note("waiting for the layer being computed in the evaluation after "
                                  "step %lld of %s, then saving the state",
                                  (long long)ev->step, name);
            }
        } else {
            cli_set_stop_note("waiting for the layer being computed in step %lld of %s, then "
                              "saving the state after step %lld",
                              (long long)ev->step + 1, name, (long long)ev->step);
        }
    }
    if (ev->phase == LC_PHASE_EVAL) {
        snprintf(extra, sizeof(extra), "chunks (layer pass %d/%d)", ev->layer, ev->layers);
        cli_progress_update(&rs->evalp, (double)ev->done + part, extra);
    } else if (ev->total > 0 && !(ev->done + 1 == ev->total && ev->layer == ev->layers)) {
        /* (the end of a step is shown by its LC_EV_STEP) */
        snprintf(extra, sizeof(extra), "%s%smicro-batch %lld/%lld (layer pass %d/%d)",
                 rs->step_extra, rs->step_extra[0] != '\0' ? " " : "", (long long)ev->done + 1,
                 (long long)ev->total, ev->layer, ev->layers);
        cli_progress_update(&rs->prog,
                            (double)ev->step + ((double)ev->done + part) / (double)ev->total,
                            extra);
    }
}

static double mib(int64_t bytes)
{
    return (double)bytes / (1 << 20);
}

/* Before stage 2 allocates: what it needs against what is available. */
static void on_memory(const struct run_state *rs, const struct lc_train_event *ev)
{
    const struct cli_common *c = &rs->a->common;
    const int recompute = rs->a->t.recompute;
    const int64_t buffers = recompute ? ev->act_bytes_recompute : ev->act_bytes;
    const int64_t need = buffers + ev->optimizer_bytes + ev->weight_bytes;

    cli_info(c, "finetune: memory: activations, gradients and working buffers %.1f MiB per "
                "micro-batch%s (%.1f MiB %s); optimizer state %.1f MiB; mapped weights %.1f MiB",
             mib(buffers), recompute ? " with --recompute" : "",
             mib(recompute ? ev->act_bytes : ev->act_bytes_recompute),
             recompute ? "without" : "with --recompute", mib(ev->optimizer_bytes),
             mib(ev->weight_bytes));
    if (ev->mem_available < 0) {
        return;
    }
    if (need > ev->mem_available) {
        char hint[128];
        if (recompute) {
            snprintf(hint, sizeof(hint), "a smaller --seq-len or --batch-size needs less");
        } else {
            snprintf(hint, sizeof(hint), "--recompute needs %.1f MiB less",
                     mib(ev->act_bytes - ev->act_bytes_recompute));
        }
        cli_warn("stage 2 needs about %.1f MiB of memory but %.1f MiB is available: expect "
                 "swapping or the out-of-memory killer; %s",
                 mib(need), mib(ev->mem_available), hint);
    } else {
        cli_info(c, "finetune: memory: %.1f MiB needed, %.1f MiB available", mib(need),
                 mib(ev->mem_available));
    }
}

static int on_event(const struct lc_train_event *ev, void *user)
{
    struct run_state *rs = user;
    const struct cli_common *c = &rs->a->common;
    char extra[160];

    if (ev->block >= 0) {
        return on_block_event(rs, ev);
    }
    switch (ev->kind) {
    case LC_EV_CACHE:
        if (!rs->caching && ev->step >= ev->total_steps) {
            break; /* all cached before */
        }
        if (!rs->caching) {
            cli_info(c, "transfer: caching the hidden states at the first layer of every block");
            cli_progress_start(&rs->prog, "cache", ev->total_steps, c->quiet);
            rs->caching = 1;
        }
        cli_progress_update(&rs->prog, ev->step, "chunks");
        if (ev->step >= ev->total_steps) {
            cli_progress_end(&rs->prog);
            rs->caching = 0;
        }
        break;
    case LC_EV_START:
        note_plan(rs, ev);
        cli_info(c, "%s: %lld optimizer steps of %lld tokens", stage_name(ev->stage),
                 (long long)ev->total_steps, (long long)ev->tokens_per_step);
        cli_progress_start(&rs->prog, stage_name(ev->stage), ev->total_steps, c->quiet);
        rs->phase = -1;
        rs->step_extra[0] = '\0';
        cli_set_stop_note("waiting for the layer being computed in %s", stage_name(ev->stage));
        break;
    case LC_EV_MEMORY:
        on_memory(rs, ev);
        break;
    case LC_EV_PROGRESS:
        on_progress(rs, ev);
        break;
    case LC_EV_STEP:
        snprintf(rs->step_extra, sizeof(rs->step_extra), "loss %.4f lr %.1e %.0f tok/s",
                 ev->loss, ev->lr, ev->tokens_per_s);
        cli_progress_update(&rs->prog, (double)ev->step, rs->step_extra);
        break;
    case LC_EV_EVAL:
        keep_layer_mse(rs, ev);
        cli_progress_clear(&rs->prog);
        cli_progress_clear(&rs->evalp);
        if (ev->stage != LC_STAGE_TRANSFER) {
            /* the loss is a mean NLL per token: show its perplexity too */
            snprintf(extra, sizeof(extra), " (perplexity %.4f)", exp(ev->val_loss));
        } else {
            extra[0] = '\0';
        }
        cli_info(c, "%s step %lld: validation loss %.6f%s%s", stage_name(ev->stage),
                 (long long)ev->step, ev->val_loss, extra,
                 ev->improved ? " (best so far, saved)" : "");
        break;
    case LC_EV_END:
        cli_progress_end(&rs->prog);
        cli_info(c, "%s done: best validation loss %.6f", stage_name(ev->stage),
                 ev->best_val_loss);
        /* until the next stage starts, nothing is under way that a stop
         * should wait for */
        cli_set_stop_note(NULL);
        break;
    default:
        break;
    }
    return cli_interrupted();
}

static const char *schedule_name(int s)
{
    return s == LC_LR_COSINE ? "cosine" : s == LC_LR_CONSTANT ? "constant" : "plateau";
}

static void print_config(const struct train_args *a, const struct lc_model *model,
                         const struct lc_data_stats *st)
{
    const struct lc_train_opts *t = &a->t;
    const struct lc_model_config *mc = lc_model_get_config(model);
    const int transfer = (t->stage & LC_STAGE_TRANSFER) && !t->skip_transfer;
    const int finetune = (t->stage & LC_STAGE_FINETUNE) || t->stage == LC_STAGE_LORA_ONLY ||
                         t->compare_lora;
    int T = t->seq_len > 0 ? t->seq_len
                           : (mc->max_position_embeddings > 0 && mc->max_position_embeddings < 1024
                                  ? mc->max_position_embeddings
                                  : 1024);
    if (a->common.quiet) {
        return;
    }
    fprintf(stderr, "model       %s (%d layers, %d heads, %d kv heads, head dim %d; %.2f GiB of "
                    "weights mapped)\n",
            a->model, mc->n_layers, mc->n_heads, mc->n_kv_heads, mc->head_dim,
            (double)lc_model_mapped_bytes(model) / (1 << 30));
    fprintf(stderr, "data        %s: %lld train tokens, %lld held-out tokens", a->data,
            (long long)st->train_tokens, (long long)st->val_tokens);
    if (st->skipped > 0) {
        fprintf(stderr, " (%lld records skipped)", (long long)st->skipped);
    }
    fputc('\n', stderr);
    fprintf(stderr, "output      %s%s\n", t->out_dir, t->resume ? " (resuming)" : "");
    fprintf(stderr, "stage       %s%s%s\n",
            t->stage == LC_STAGE_TRANSFER    ? "transfer"
            : t->stage == LC_STAGE_FINETUNE  ? "finetune"
            : t->stage == LC_STAGE_LORA_ONLY ? "lora-only (LoRA on the original model)"
                                             : "all (transfer, then finetune)",
            t->skip_transfer ? ", without attention transfer (baseline)" : "",
            t->compare_lora ? "; then lora-only into DIR/lora-only" : "");
    fprintf(stderr, "batches     seq-len %d, batch-size %d, grad-accum %d, seed %llu\n", T,
            t->batch_size, t->grad_accum, (unsigned long long)t->seed);
    if (t->max_steps >= 0) {
        fprintf(stderr, "length      %lld steps per stage, eval every %d", (long long)t->max_steps,
                t->eval_every);
    } else {
        fprintf(stderr, "length      %d epochs per stage, eval every %d", t->epochs,
                t->eval_every);
    }
    if (t->val_size > 0) {
        fprintf(stderr, " on %lld held-out chunks", (long long)t->val_size);
    }
    fputc('\n', stderr);
    if (t->stage == LC_STAGE_LORA_ONLY) {
        fprintf(stderr, "attention   softmax (the original model's)\n");
    } else {
        fprintf(stderr, "attention   feature dim %d (x2), window %d %s%s\n", t->feature_dim,
                t->window, t->window_mode == LC_WINDOW_SLIDING ? "sliding" : "terraced",
                transfer          ? ""
                : t->skip_transfer ? "; identity feature maps"
                                   : "; feature maps of an earlier --stage transfer in the output");
    }
    if (t->n_softmax_layers > 0) {
        fprintf(stderr, "softmax     layers");
        for (int i = 0; i < t->n_softmax_layers; i++) {
            fprintf(stderr, "%s%d", i > 0 ? "," : " ", t->softmax_layers[i]);
        }
        fprintf(stderr, " keep softmax attention\n");
    }
    if (transfer) {
        fprintf(stderr, "transfer    AdamW lr %g, weight decay %g; loss %g x MSE + %g x XENT\n",
                t->lr, t->weight_decay, t->mse_weight, t->xent_weight);
    }
    if (finetune) {
        char fmaps[64] = "";
        if ((t->train_feature_maps || t->skip_transfer) && t->stage != LC_STAGE_LORA_ONLY) {
            snprintf(fmaps, sizeof(fmaps), "; feature maps trained too, lr %g",
                     t->feature_map_lr > 0 ? t->feature_map_lr : t->lora_lr);
        }
        fprintf(stderr, "finetune    AdamW lr %g, weight decay %g; LoRA rank %d, alpha %g, "
                        "dropout %g on %s%s%s%s%s%s%s\n",
                t->lora_lr, t->weight_decay, t->lora_rank, t->lora_alpha, t->lora_dropout,
                t->lora_targets & LC_LORA_Q ? "q" : "", t->lora_targets & LC_LORA_K ? "k" : "",
                t->lora_targets & LC_LORA_V ? "v" : "", t->lora_targets & LC_LORA_O ? "o" : "",
                fmaps, t->recompute ? "; recompute" : "", t->merge ? "; merge" : "");
    }
    fprintf(stderr, "schedule    transfer %s, finetune %s (warm-up %lld and %lld steps), min lr %g; "
                    "on a plateau: lr x %g after %d evaluations without improvement\n",
            schedule_name(t->lr_schedule), schedule_name(t->lora_lr_schedule),
            (long long)t->warmup_steps, (long long)t->lora_warmup_steps, t->min_lr,
            t->plateau_factor, t->plateau_patience);
}

static int on_summary_progress(int64_t done, int64_t total, void *user)
{
    struct cli_progress *p = user;
    p->total = total;
    cli_progress_update(p, (double)done, "windows");
    return cli_interrupted();
}

/* The perplexity of one model variant in the summary, with progress. */
static lc_status summary_ppl(const struct train_args *a, struct lc_model *model,
                             const int32_t *ids, int64_t n, int ctx, const char *label,
                             struct lc_ppl_result *res, struct lc_error *err)
{
    struct cli_progress prog;
    lc_status rc;

    cli_progress_start(&prog, label, (n + ctx - 1) / ctx, a->common.quiet);
    rc = lc_model_perplexity(model, ids, n, ctx, on_summary_progress, &prog, res, err);
    cli_progress_clear(&prog);
    return rc;
}

/* Teacher vs linearized perplexity on the held-out split (its first
 * --val-size chunks when given). */
static int print_summary(const struct train_args *a, struct lc_model *model,
                         const struct lc_dataset *ds, const struct run_state *rs)
{
    struct lc_error err = {0};
    const int32_t *ids = NULL;
    const int32_t *labels = NULL;
    int64_t n = 0;
    struct lc_ppl_result teacher;
    struct lc_ppl_result student;
    struct lc_ppl_result finetuned;
    struct lc_ppl_result yardstick;
    int with_lora;
    int transfer_only;
    int lora_only = a->t.stage == LC_STAGE_LORA_ONLY;
    char *yardstick_dir = NULL;
    char *kept_maps;
    int maps_trained;
    const struct lc_model_config *mc = lc_model_get_config(model);
    int ctx = a->t.seq_len > 0 ? a->t.seq_len
                               : (mc->max_position_embeddings > 0 &&
                                          mc->max_position_embeddings < 1024
                                      ? mc->max_position_embeddings
                                      : 1024);
    lc_status rc;

    if (lc_dataset_stream(ds, LC_SPLIT_VAL, &ids, &labels, &n) != LC_OK || n < 2) {
        return CLI_EXIT_OK;
    }
    if (a->t.val_size > 0 && a->t.val_size < n / ctx) {
        n = a->t.val_size * ctx;
    }
    cli_info(&a->common, "summary: perplexity of %lld held-out tokens%s", (long long)n,
             a->t.val_size > 0 ? " (--val-size chunks)" : "");
    cli_set_stop_note("waiting for the window being computed in the summary; the trained model "
                      "in %s is complete",
                      a->t.out_dir);
    lc_model_use_teacher(model, 1);
    rc = summary_ppl(a, model, ids, n, ctx, "summary: teacher", &teacher, &err);
    if (rc == LC_OK) {
        rc = lc_model_load_lolcats(model, a->t.out_dir, &err);
    }
    /* attention transfer alone: the feature maps of stage 1 without the
     * adapter, kept aside when stage 2 trained the maps further (none after
     * --no-transfer) */
    with_lora = rc == LC_OK && lc_model_has_adapter(model) && !lora_only;
    if (rc == LC_OK && with_lora) {
        rc = summary_ppl(a, model, ids, n, ctx, "summary: linearized with LoRA", &finetuned,
                         &err);
    }
    maps_trained = with_lora && (a->t.train_feature_maps || a->t.skip_transfer);
    kept_maps = malloc(strlen(a->t.out_dir) + sizeof("/" LC_TRANSFER_MAPS_FILE));
    if (kept_maps == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_RESOURCES;
    }
    sprintf(kept_maps, "%s/%s", a->t.out_dir, LC_TRANSFER_MAPS_FILE);
    transfer_only = !lora_only && (!maps_trained || access(kept_maps, F_OK) == 0);
    if (rc == LC_OK && transfer_only) {
        if (maps_trained) {
            rc = lc_model_load_feature_maps(model, kept_maps, &err);
        }
        lc_model_use_adapter(model, 0);
        if (rc == LC_OK) {
            rc = summary_ppl(a, model, ids, n, ctx, "summary: linearized, transfer only",
                             &student, &err);
        }
        lc_model_use_adapter(model, 1);
    }
    free(kept_maps);
    /* the yardstick: the same LoRA on the original model */
    if (rc == LC_OK && a->t.compare_lora) {
        yardstick_dir = malloc(strlen(a->t.out_dir) + sizeof("/lora-only"));
        if (yardstick_dir == NULL) {
            cli_error("out of memory");
            return CLI_EXIT_RESOURCES;
        }
        sprintf(yardstick_dir, "%s/lora-only", a->t.out_dir);
        rc = lc_model_load_lolcats(model, yardstick_dir, &err);
        free(yardstick_dir);
    }
    if (rc == LC_OK && (lora_only || a->t.compare_lora)) {
        rc = summary_ppl(a, model, ids, n, ctx, "summary: teacher + LoRA", &yardstick, &err);
    }
    cli_set_stop_note(NULL);
    if (rc == LC_ERR_INTERRUPTED) {
        cli_error("stopped in the summary; the trained model in %s is complete", a->t.out_dir);
        return CLI_EXIT_INTERRUPTED;
    }
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    printf("held-out perplexity (context %d, %lld tokens)\n", ctx, (long long)n);
    printf("  %-40s %10.4f\n", "teacher (softmax attention)", teacher.ppl);
    if (transfer_only) {
        printf("  %-40s %10.4f   (%+.2f%%)\n",
               with_lora ? "linearized, attention transfer only" : "linearized, attention transfer",
               student.ppl, 100.0 * (student.ppl / teacher.ppl - 1.0));
    }
    if (with_lora) {
        printf("  %-40s %10.4f   (%+.2f%%)\n",
               a->t.skip_transfer ? "linearized, no transfer + LoRA"
                                  : "linearized, attention transfer + LoRA",
               finetuned.ppl, 100.0 * (finetuned.ppl / teacher.ppl - 1.0));
    }
    if (lora_only || a->t.compare_lora) {
        printf("  %-40s %10.4f   (%+.2f%%)\n", "teacher + LoRA (softmax attention)", yardstick.ppl,
               100.0 * (yardstick.ppl / teacher.ppl - 1.0));
    }
    if (with_lora && a->t.compare_lora) {
        printf("  %-40s %10.4f\n", "ratio linearized / (teacher + LoRA)",
               finetuned.ppl / yardstick.ppl);
    }
    if (rs->first_layer_mse != NULL && rs->have_layer_mse) {
        printf("validation attention MSE per layer (start -> best)\n");
        for (int l = 0; l < rs->n_layers; l++) {
            int softmax = 0;
            for (int i = 0; i < a->t.n_softmax_layers; i++) {
                softmax |= a->t.softmax_layers[i] == l;
            }
            if (softmax) {
                printf("  layer %2d   softmax attention (kept)\n", l);
            } else {
                printf("  layer %2d   %.6g -> %.6g\n", l, rs->first_layer_mse[l],
                       rs->best_layer_mse[l]);
            }
        }
    }
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct train_args a;
    struct run_state rs;
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *model = NULL;
    struct lc_tokenizer *tok = NULL;
    struct lc_dataset *ds = NULL;
    struct lc_data_stats st;
    struct lc_dist *dist = NULL;
    char prog[64];
    int rank;
    lc_status rc;
    int status;

    cli_init(argc, argv, "lolcats-train");
    /* one of several ranks when mpirun started it (before any threads) */
    rc = lc_dist_open(&dist, &argc, &argv, &err);
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    rank = lc_dist_rank(dist);
    if (lc_dist_size(dist) > 1) {
        snprintf(prog, sizeof(prog), "lolcats-train (rank %d)", rank);
        cli_prog = prog;
    }
    status = parse_args(argc, argv, &a);
    if (status != CLI_EXIT_OK) {
        lc_dist_close(dist);
        return status;
    }
    a.t.dist = dist;
    if (a.plan) {
        status = rank == 0 ? run_plan(&a, a.plan_ranks > 0 ? a.plan_ranks : lc_dist_size(dist))
                           : CLI_EXIT_OK;
        lc_dist_close(dist);
        return status;
    }
    if (rank != 0) {
        /* rank 0 shows the progress and the summary */
        a.common.quiet = 1;
        a.no_summary = 1;
    }
    cli_catch_interrupts();
    if ((!a.common.quiet || a.common.verbose) && rank == 0 && lc_dist_size(dist) > 1) {
        fprintf(stderr, "ranks       %s\n", lc_dist_describe(dist));
    }
    if (lc_dist_size(dist) > 1 && getenv("LC_CUDA_DEVICE") == NULL) {
        /* the ranks of a host take its GPUs in turn */
        char dev[16];
        snprintf(dev, sizeof(dev), "%d", lc_dist_local_rank(dist));
        setenv("LC_CUDA_DEVICE", dev, 0);
    }
    status = cli_open_backend(&a.common, &be);
    if (status != CLI_EXIT_OK) {
        lc_dist_close(dist);
        return status;
    }
    memset(&rs, 0, sizeof(rs));
    rs.a = &a;
    rc = lc_model_open(&model, a.model, be, &err);
    if (rc == LC_OK) {
        rc = lc_tokenizer_open(&tok, a.model, &err);
    }
    if (rc == LC_OK) {
        rc = lc_dataset_load(&ds, a.data, tok, &a.data_opts, &err);
    }
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    lc_dataset_stats(ds, &st);
    print_config(&a, model, &st);
    /* refused options fail before the weights are read */
    rc = lc_train_check(model, &a.t, &err);
    if (rc != LC_OK) {
        status = cli_fail(rc, &err, 0);
        goto done;
    }
    /* one of several ranks reads only the weights of its pipeline stage, as
     * it first uses them */
    status = lc_dist_size(dist) > 1 ? CLI_EXIT_OK : cli_page_in(&a.common, model, a.model);
    if (status != CLI_EXIT_OK) {
        goto done;
    }
    rs.n_layers = lc_model_get_config(model)->n_layers;
    rs.first_layer_mse = calloc((size_t)rs.n_layers, sizeof(double));
    rs.best_layer_mse = calloc((size_t)rs.n_layers, sizeof(double));
    if (rs.first_layer_mse == NULL || rs.best_layer_mse == NULL) {
        cli_error("out of memory");
        status = CLI_EXIT_RESOURCES;
        goto done;
    }
    for (int l = 0; l < rs.n_layers; l++) {
        rs.first_layer_mse[l] = NAN;
    }
    rc = lc_train(model, ds, &a.t, on_event, &rs, &err);
    cli_set_stop_note(NULL);
    if (rc != LC_OK) {
        cli_progress_clear(&rs.prog);
        cli_progress_clear(&rs.evalp);
        if (rc == LC_ERR_INTERRUPTED && rank != 0) {
            /* every rank stopped at the same step: rank 0 says so */
            status = CLI_EXIT_INTERRUPTED;
        } else {
            status = cli_fail(rc, &err, rc == LC_ERR_IO);
        }
        goto done;
    }
    if (a.common.verbose || (!a.common.quiet && rank == 0)) {
        /* what the plan said against what the run used */
        int64_t peak = lc_memory_peak();
        fprintf(stderr, "%s: memory: planned %.3f GiB, peak resident %.3f GiB", cli_prog,
                rs.plan_bytes / GIB, peak / GIB);
        if (rs.plan_bytes > 0 && peak > 0) {
            fprintf(stderr, " (%+.1f%%)", 100.0 * ((double)peak / (double)rs.plan_bytes - 1));
        }
        fputc('\n', stderr);
    }
    if (!a.no_summary) {
        status = print_summary(&a, model, ds, &rs);
    }

done:
    if (status != CLI_EXIT_OK && status != CLI_EXIT_INTERRUPTED && lc_dist_size(dist) > 1) {
        /* the other ranks may wait for this one in vain: end the job */
        lc_dist_abort(dist, status);
    }
    free(rs.first_layer_mse);
    free(rs.best_layer_mse);
    lc_dataset_free(ds);
    lc_tokenizer_close(tok);
    lc_model_close(model);
    lc_backend_close(be);
    lc_dist_close(dist);
    return status;
}
