/*
 * The memory planner (plan.h).
 *
 * Each figure follows what the code allocates: the weights a rank touches
 * (they are mapped from the model file, so only the pages used count: the
 * layers of its pipeline stage, the embedding rows of the data, the
 * lm_head in stage 2), the forward scratch, the stage's buffers, the
 * parameters with their gradients, AdamW moments, best copy and per-step
 * sums, the gradients data parallelism gathers, and the kernels' scratch
 * of the cpu backend; plus the process itself (libraries, tokenizer,
 * data), measured when the plan is made inside a run.  Stage 1's buffers
 * are freed before stage 2, its mapped weights stay; a rank's peak is the
 * larger of the two stages.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend-cpu/cpu.h"
#include "core/data.h"
#include "core/dist_train.h"
#include "core/fileio.h"
#include "core/finetune.h"
#include "core/hidden_cache.h"
#include "core/lora.h"
#include "core/modelconfig.h"
#include "core/modelfiles.h"
#include "core/plan.h"
#include "core/util.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)
#define PAGE 4096.0
/* the process without model or data: code, libraries, OpenMP and OpenBLAS
 * set-up (measured on Debian 12, x86-64) */
#define PROCESS_BYTES (10.0 * MIB)
/* an MPI rank's library buffers (Open MPI 4.1 shared-memory transport) */
#define MPI_RANK_BYTES (24.0 * MIB)
/* what OpenBLAS touches of its per-thread packing buffer in large SGEMMs */
#define BLAS_THREAD_BYTES (24.0 * MIB)
/* bytes a token costs the data pipeline (ids and labels, packed copies) */
#define DATA_TOKEN_BYTES 24.0

/* ------------------------------------------------------------ memory now */

static double status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0.0;
    const size_t n = strlen(key);

    if (f == NULL) {
        return 0.0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    }
    fclose(f);
    return v * 1024.0;
}

double lc_rss_now(void)
{
    return status_kib("VmRSS");
}

double lc_rss_peak(void)
{
    return status_kib("VmHWM");
}

LC_API int64_t lc_memory_peak(void)
{
    return (int64_t)lc_rss_peak();
}

/* ------------------------------------------------------------ the model */

static double dtype_bytes_of(const char *name)
{
    if (name == NULL) {
        return 2.0; /* Llama checkpoints are bf16 */
    }
    if (strcmp(name, "float32") == 0) {
        return 4.0;
    }
    return 2.0; /* bfloat16, float16 */
}

static void sizes_from_config(struct lc_plan_model *pm, double esz)
{
    const struct lc_model_config *c = &pm->cfg;
    const double C = c->hidden_size, HD = (double)c->n_heads * c->head_dim;
    const double KD = (double)c->n_kv_heads * c->head_dim, FF = c->intermediate_size;

    pm->weight_esz = esz;
    pm->layer_bytes = esz * (C * HD * 2 + C * KD * 2 + 3 * C * FF);
    pm->mlp_bytes = esz * 3 * C * FF;
    pm->norm_bytes = 2 * C * 4;
    pm->embed_row_bytes = esz * C;
    pm->embed_bytes = pm->embed_row_bytes * c->vocab_size;
    pm->head_bytes = c->tie_word_embeddings ? 0.0 : pm->embed_bytes;
}

lc_status lc_plan_model_from_path(struct lc_plan_model *pm, const char *path,
                                  struct lc_error *err)
{
    struct lc_model_files *mf = NULL;
    struct lc_error quiet = {0};
    struct stat st;
    char *cfg_path = NULL;
    json_t *root;
    const char *dt;
    lc_status rc;

    memset(pm, 0, sizeof(*pm));
    /* with weights (or a GGUF file): their sizes */
    if (lc_model_files_open(&mf, path, &quiet) == LC_OK) {
        const struct lc_tensor_view *t = NULL;
        const char *first = "model.layers.0.self_attn.q_proj.weight";
        pm->cfg = *lc_model_files_config(mf);
        t = lc_model_files_tensor(mf, first);
        sizes_from_config(pm, t != NULL ? (double)lc_dtype_size(t->dtype) : 2.0);
        snprintf(pm->dtype, sizeof(pm->dtype), "%s",
                 t != NULL ? lc_dtype_name(t->dtype) : "BF16");
        t = lc_model_files_tensor(mf, "model.embed_tokens.weight");
        if (t != NULL) {
            pm->embed_bytes = (double)t->nbytes;
            pm->embed_row_bytes = (double)t->nbytes / pm->cfg.vocab_size;
        }
        t = lc_model_files_tensor(mf, "lm_head.weight");
        pm->head_bytes = t != NULL ? (double)t->nbytes : 0.0;
        snprintf(pm->source, sizeof(pm->source), "%s tensor sizes", lc_model_files_format(mf));
        lc_model_files_close(mf);
        return LC_OK;
    }
    /* a configuration alone: config.json, or a folder holding one */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cfg_path = lc_path_join(path, "config.json");
    } else {
        cfg_path = strdup(path);
    }
    if (cfg_path == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    rc = lc_config_from_hf_json(&pm->cfg, cfg_path, err);
    if (rc != LC_OK) {
        free(cfg_path);
        return rc;
    }
    root = json_load_file(cfg_path, 0, NULL);
    dt = json_string_value(json_object_get(root, "torch_dtype"));
    sizes_from_config(pm, dtype_bytes_of(dt));
    snprintf(pm->dtype, sizeof(pm->dtype), "%s",
             dtype_bytes_of(dt) == 4.0 ? "F32" : (dt != NULL && strcmp(dt, "float16") == 0
                                                      ? "F16"
                                                      : "BF16"));
    snprintf(pm->source, sizeof(pm->source), "config.json (%s)", pm->dtype);
    json_decref(root);
    free(cfg_path);
    return LC_OK;
}

/* ------------------------------------------------------------ the plan */

/* the cpu kernels' scratch (one buffer, the largest need): attention rows
 * of the teacher, the hybrid kernels' blocks, the feature-map backward's
 * partial gradients, and a half-precision model's fp32 weight tile (of the
 * largest matrix, the lm_head's included, within the cpu backend's limit) */
static double kernel_scratch(const struct lc_plan_model *pm, int B, int T, int W, int f,
                             int threads)
{
    const struct lc_model_config *c = &pm->cfg;
    const double H = c->n_heads, D = c->head_dim, F = 2.0 * f;
    const double N = (double)B * T;
    const double nb = W < T ? W : T, nk = 2.0 * W < T ? 2.0 * W : T;
    const double chunks = ceil(N / 128) < 16 ? ceil(N / 128) : 16;
    double attn = threads * 64.0 * (c->n_heads / c->n_kv_heads) * (2 * D + T);
    double hyb = 2 * N * H * D + threads * (3 * nb * nk + nb * nb + F * D + 2 * T + nb * F);
    double fmap = chunks * H * D * f + threads * (2 * ceil(N / chunks) * f + F);
    double m = attn > hyb ? attn : hyb;
    double tile = 0.0;
    if (pm->weight_esz < 4.0) {
        const double C = c->hidden_size, FF = c->intermediate_size, V = c->vocab_size;
        const double HD = H * D, big = fmax(fmax(C * HD, C * FF), C * V);
        tile = fmin(big, (double)LC_CPU_WEIGHT_TILE_BYTES / 4.0);
    }
    m = m > fmap ? m : fmap;
    return 4.0 * (m > tile ? m : tile);
}

/* the embedding's pages that `rows` rows touch */
static double embed_touched(const struct lc_plan_model *pm, int64_t rows)
{
    double per_row = ceil(pm->embed_row_bytes / PAGE) * PAGE;
    double b;

    if (rows <= 0 || rows >= pm->cfg.vocab_size) {
        return pm->embed_bytes;
    }
    b = (double)rows * per_row;
    return b < pm->embed_bytes ? b : pm->embed_bytes;
}

lc_status lc_plan_compute(struct lc_plan *p, const struct lc_plan_model *pm,
                          const struct lc_train_opts *o, const struct lc_plan_data *d, int ranks,
                          int threads, struct lc_error *err)
{
    const struct lc_model_config *c = &pm->cfg;
    const int L = c->n_layers;
    const double C = c->hidden_size, H = c->n_heads;
    const double HD = H * c->head_dim, KD = (double)c->n_kv_heads * c->head_dim;
    const double FF = c->intermediate_size, V = c->vocab_size;
    const int f = o->feature_dim;
    const double HF = H * 2 * f;
    int T = o->seq_len;
    double N, lin_params, lin_layer, head_rows;
    struct lc_llama fake_m;
    struct lc_linattn fake_lin;
    struct lc_lora fake_lora;
    struct lc_lora_cfg lcfg = {.rank = o->lora_rank, .alpha = o->lora_alpha,
                               .dropout = o->lora_dropout, .targets = o->lora_targets};
    lc_status rc;

    memset(p, 0, sizeof(*p));
    p->model = *pm;
    p->ranks = ranks;
    p->threads = threads > 0 ? threads : 1;
    if (T <= 0) {
        T = c->max_position_embeddings > 0 && c->max_position_embeddings < 1024
                ? c->max_position_embeddings
                : 1024;
    }
    p->T = T;
    p->B = o->batch_size;
    p->stage1 = (o->stage & LC_STAGE_TRANSFER) && !o->skip_transfer;
    p->stage2 = (o->stage & LC_STAGE_FINETUNE) != 0;
    rc = lc_layout_make(&p->layout, L, ranks, o->block_layers, o->pipeline_stages, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* stage 2 is a pipeline only when asked (else data parallel) */
    p->s2_pipeline = p->stage2 && ranks > 1 && o->pipeline_stages > 1;
    p->rank = calloc((size_t)ranks, sizeof(*p->rank));
    if (p->rank == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    N = (double)p->B * T;
    lin_layer = 2 * H * c->head_dim * f + H;
    lin_params = lin_layer * L;
    head_rows = floor(64.0 * MIB / (V * 4));
    head_rows = head_rows < 16 ? 16 : head_rows > N ? N : head_rows;
    /* the stage-2 buffers as finetune.c carves them */
    memset(&fake_m, 0, sizeof(fake_m));
    memset(&fake_lin, 0, sizeof(fake_lin));
    fake_m.cfg = *c;
    fake_lin.cfg.feature_dim = f;
    fake_lin.layer_size = (size_t)lin_layer;
    fake_lin.n_params = (size_t)lin_params;
    rc = lc_lora_layout(&fake_lora, &fake_m, &lcfg, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* cached hidden states: every block's input, bf16 */
    if (o->block_layers > 0) {
        const double per_token = 2.0 * C * p->layout.n_units;
        p->cache_per_mtok = per_token * 1e6;
        p->cache_disk = per_token * (double)(d->train_chunks + d->val_chunks) * T;
    }

    for (int r = 0; r < ranks; r++) {
        struct lc_plan_rank *pr = &p->rank[r];
        const int train_fmaps = o->train_feature_maps || o->skip_transfer;
        int u0, u1;
        double dp, k, own_layers, lora_n;

        pr->stage = lc_layout_stage(&p->layout, r);
        pr->replica = lc_layout_replica(&p->layout, r);
        lc_layout_layers(&p->layout, pr->stage, &pr->l0, &pr->l1);
        lc_layout_units(&p->layout, pr->stage, &u0, &u1);
        own_layers = pr->l1 - pr->l0;
        pr->baseline = d->baseline_bytes > 0
                           ? d->baseline_bytes
                           : PROCESS_BYTES +
                                 DATA_TOKEN_BYTES * (double)(d->train_chunks + d->val_chunks) * T;
        if (ranks > 1 && d->baseline_bytes <= 0) {
            pr->baseline += MPI_RANK_BYTES;
        }
        pr->baseline += BLAS_THREAD_BYTES * (C >= 1024 ? p->threads : 0) +
                        (double)L * pm->norm_bytes + 2 * C * 4 /* final norm */;

        if (p->stage1) {
            /* the stage's layers (the model's last MLP is never run in stage
             * 1), and the embedding rows on the first stage */
            pr->s1_weights = own_layers * pm->layer_bytes;
            if (pr->stage == p->layout.stages - 1) {
                pr->s1_weights -= pm->mlp_bytes;
            }
            if (pr->stage == 0) {
                pr->s1_weights += embed_touched(pm, d->distinct_tokens);
            }
            /* forward scratch without linear attention, the transfer buffers */
            pr->s1_work = 4.0 * (N * (2 * C + 2 * HD + 2 * KD + 2 * FF) + head_rows * V +
                                 head_rows + 3 * N) +
                          4.0 * (2 * N * HD + 4 * N * HF + 3 * N * H + N + H + N * H) +
                          kernel_scratch(pm, p->B, T, o->window, f, p->threads) +
                          4.0 * T * c->head_dim; /* RoPE tables */
            if (o->block_layers <= 0 && pr->stage + 1 < p->layout.stages) {
                pr->s1_work += 2 * 4.0 * N * C; /* the pipeline's two sends */
            }
            /* parameters, gradients, moments, the step's sum, the best copy,
             * and data parallelism's gathered gradients of the own part */
            dp = p->layout.replicas;
            k = ceil((double)o->grad_accum / dp);
            pr->s1_train = 4.0 * lin_params * 6;
            if (dp > 1) {
                double part = o->block_layers > 0 ? (double)o->block_layers * lin_layer
                                                  : own_layers * lin_layer;
                pr->s1_train += 4.0 * part * k * (dp + 1);
            }
            if (o->block_layers > 0) {
                /* caching: the rows of one micro-batch, and a shard's rows of
                 * the stage's blocks waiting for rank 0; a block trainer's rows */
                double shard = (double)lc_hcache_shard_chunks(o, T, c->hidden_size);
                if (d->train_chunks > 0 && shard > (double)d->train_chunks) {
                    shard = (double)d->train_chunks;
                }
                pr->s1_cache = 6.0 * N * C + 4.0 * N * C;
                if (r != 0 && pr->replica == 0) {
                    pr->s1_cache += 2.0 * T * C * shard * (u1 - u0);
                }
            }
        }
        if (p->stage2) {
            /* data parallel: the whole model on every rank; a pipeline
             * stage: its layers, the embedding rows on the first, the
             * lm_head on the last, and the two sends and a receive of the
             * residual stream */
            const int first = !p->s2_pipeline || pr->stage == 0;
            const int last = !p->s2_pipeline || pr->stage == p->layout.stages - 1;
            const int s0 = p->s2_pipeline ? pr->l0 : 0, s1 = p->s2_pipeline ? pr->l1 : L;
            const double pipe_bufs = p->s2_pipeline ? 3 * 4.0 * N * C : 0.0;
            pr->s2_weights = (s1 - s0) * pm->layer_bytes;
            if (pm->head_bytes > 0) {
                pr->s2_weights += (first ? embed_touched(pm, d->distinct_tokens) : 0.0) +
                                  (last ? pm->head_bytes : 0.0);
            } else if (last) {
                pr->s2_weights += pm->embed_bytes; /* the lm_head reads all of it */
            } else if (first) {
                pr->s2_weights += embed_touched(pm, d->distinct_tokens);
            }
            pr->s2_work = (double)lc_ft_bytes_layers(&fake_m, &fake_lin, &fake_lora, (int)N, 0,
                                                     train_fmaps, s0, s1) +
                          kernel_scratch(pm, p->B, T, o->window, f, p->threads) +
                          4.0 * N * lcfg.rank * 2 + pipe_bufs;
            pr->s2_work_recompute = (double)lc_ft_bytes_layers(&fake_m, &fake_lin, &fake_lora,
                                                               (int)N, 1, train_fmaps, s0, s1) +
                                    kernel_scratch(pm, p->B, T, o->window, f, p->threads) +
                                    4.0 * N * lcfg.rank * 2 + pipe_bufs;
            dp = p->s2_pipeline ? p->layout.replicas : ranks;
            k = ceil((double)o->grad_accum / dp);
            lora_n = (double)fake_lora.n_params + (train_fmaps ? lin_params : 0);
            /* gradients (in the work arena), moments, sum, best; the maps;
             * data parallelism's gathered gradients of the own part */
            pr->s2_train = 4.0 * lora_n * 6 + 4.0 * lin_params * 2;
            if (dp > 1) {
                pr->s2_train += 4.0 * lora_n * (double)(s1 - s0) / L * k * (dp + 1);
            }
        }
        /* weights already resident stay so */
        {
            double resident = d->resident_weights;
            if (resident < 0) {
                resident = ranks == 1 ? L * pm->layer_bytes + pm->embed_bytes + pm->head_bytes
                                      : 0.0;
            }
            if (p->stage1 && pr->s1_weights < resident) {
                pr->s1_weights = resident;
            }
            if (p->stage2 && pr->s2_weights < resident) {
                pr->s2_weights = resident;
            }
        }
        /* mapped weights stay; stage 1's buffers are freed before stage 2 */
        pr->s1_peak = pr->baseline + pr->s1_weights + pr->s1_work + pr->s1_train + pr->s1_cache;
        pr->s2_peak = pr->baseline + (pr->s2_weights > pr->s1_weights ? pr->s2_weights
                                                                       : pr->s1_weights) +
                      (o->recompute ? pr->s2_work_recompute : pr->s2_work) + pr->s2_train;
        if (!p->stage1) {
            pr->s1_peak = 0;
        }
        if (!p->stage2) {
            pr->s2_peak = 0;
        }
        pr->peak = pr->s1_peak > pr->s2_peak ? pr->s1_peak : pr->s2_peak;
        if (pr->peak > p->peak) {
            p->peak = pr->peak;
            p->peak_rank = r;
        }
    }
    return LC_OK;
}

void lc_plan_release(struct lc_plan *p)
{
    free(p->rank);
    p->rank = NULL;
}

/* ------------------------------------------------------------ the report */

struct sbuf {
    char *s;
    size_t len, cap;
};

static void put(struct sbuf *b, const char *fmt, ...) LC_PRINTF(2, 3);

static void put(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->cap - b->len < 1024) {
        size_t cap = b->cap > 0 ? 2 * b->cap : 8192;
        char *s = realloc(b->s, cap);
        if (s == NULL) {
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len - 1;
    }
}

static double gib(double bytes)
{
    return bytes / GIB;
}

/* the report's unit: GiB for large plans, MiB for small ones */
static double unit_bytes;
static const char *unit_name;

static double un(double bytes)
{
    return bytes / unit_bytes;
}

char *lc_plan_report(const struct lc_plan *p, const struct lc_train_opts *o)
{
    const struct lc_model_config *c = &p->model.cfg;
    struct sbuf b = {NULL, 0, 0};
    int last_printed = -1;

    unit_bytes = p->peak >= 4 * GIB ? GIB : MIB;
    unit_name = p->peak >= 4 * GIB ? "GiB" : "MiB";
    put(&b, "memory plan: %d layers, hidden %d, %d heads (%d kv) of %d, FFN %d, vocabulary %d, "
            "%s weights (from %s)\n",
        c->n_layers, c->hidden_size, c->n_heads, c->n_kv_heads, c->head_dim,
        c->intermediate_size, c->vocab_size, p->model.dtype, p->model.source);
    put(&b, "  weights: %.2f %s per layer, embedding %.2f %s%s; whole model %.2f %s\n",
        un(p->model.layer_bytes), unit_name, un(p->model.embed_bytes), unit_name,
        p->model.head_bytes > 0 ? ", lm_head as much" : " (the lm_head shares it)",
        un(p->model.layer_bytes * c->n_layers + p->model.embed_bytes + p->model.head_bytes),
        unit_name);
    put(&b, "  %d rank%s, %d thread%s each; micro-batches of %d x %d tokens", p->ranks,
        p->ranks == 1 ? "" : "s", p->threads, p->threads == 1 ? "" : "s", p->B, p->T);
    if (p->stage1) {
        put(&b, "; stage 1 %s in %d pipeline stage%s of %d rank%s",
            o->block_layers > 0 ? "block-wise" : "joint", p->layout.stages,
            p->layout.stages == 1 ? "" : "s", p->layout.replicas,
            p->layout.replicas == 1 ? "" : "s");
    }
    if (p->stage2 && p->ranks > 1) {
        if (p->s2_pipeline) {
            put(&b, "; stage 2 in %d pipeline stages of %d rank%s", p->layout.stages,
                p->layout.replicas, p->layout.replicas == 1 ? "" : "s");
        } else {
            put(&b, "; stage 2 data parallel");
        }
    }
    put(&b, "\n");
    if (o->block_layers > 0) {
        put(&b, "  cached hidden states on disk: %d blocks of %d layers, %.2f GiB per million "
                "tokens",
            p->layout.n_units, o->block_layers, gib(p->cache_per_mtok));
        if (p->cache_disk > 0) {
            put(&b, ", %.3f GiB for this data", gib(p->cache_disk));
        }
        put(&b, "\n");
    }
    put(&b, "  per rank, %s    weights  activations  parameters+optimizer   peak\n", unit_name);
    for (int r = 0; r < p->ranks; r++) {
        const struct lc_plan_rank *pr = &p->rank[r];
        /* ranks alike to the one before are not repeated */
        if (r > 0 && r + 1 < p->ranks && pr->peak == p->rank[r - 1].peak &&
            pr->stage != 0) {
            continue;
        }
        if (last_printed >= 0 && last_printed + 1 < r) {
            put(&b, "  ...\n");
        }
        last_printed = r;
        put(&b, "  rank %d", r);
        if ((p->stage1 || p->s2_pipeline) && p->ranks > 1) {
            put(&b, " (stage %d, layers %d-%d)", pr->stage, pr->l0, pr->l1 - 1);
        }
        put(&b, "\n");
        if (p->stage1) {
            put(&b, "    stage 1      %8.2f  %11.2f  %20.2f  %6.2f\n", un(pr->s1_weights),
                un(pr->s1_work + pr->s1_cache), un(pr->s1_train), un(pr->s1_peak));
        }
        if (p->stage2) {
            put(&b, "    stage 2      %8.2f  %11.2f  %20.2f  %6.2f%s\n", un(pr->s2_weights),
                un(o->recompute ? pr->s2_work_recompute : pr->s2_work), un(pr->s2_train),
                un(pr->s2_peak), o->recompute ? " (--recompute)" : "");
            put(&b, "      activations %s --recompute: %.2f %s\n",
                o->recompute ? "without" : "with",
                un(o->recompute ? pr->s2_work : pr->s2_work_recompute), unit_name);
        }
        put(&b, "    process, libraries and data %.2f %s\n", un(pr->baseline), unit_name);
    }
    put(&b, "  largest: rank %d, %.3f GiB\n", p->peak_rank, gib(p->peak));
    return b.s;
}

LC_API lc_status lc_plan_text(char **text, int64_t *peak, const char *model_path,
                              const struct lc_dataset *ds, const struct lc_train_opts *o,
                              int ranks, struct lc_error *err)
{
    struct lc_plan_model pm;
    struct lc_plan_data d;
    struct lc_plan p;
    lc_status rc;

    *text = NULL;
    memset(&d, 0, sizeof(d));
    d.resident_weights = -1;
    rc = lc_plan_model_from_path(&pm, model_path, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (ds != NULL) {
        struct lc_data_stats st;
        int T = o->seq_len > 0 ? o->seq_len
                               : (pm.cfg.max_position_embeddings > 0 &&
                                          pm.cfg.max_position_embeddings < 1024
                                      ? pm.cfg.max_position_embeddings
                                      : 1024);
        lc_dataset_stats(ds, &st);
        d.train_chunks = st.train_tokens / T;
        d.val_chunks = o->val_size > 0 && o->val_size < st.val_tokens / T ? o->val_size
                                                                           : st.val_tokens / T;
        d.distinct_tokens = lc_dataset_distinct_tokens(ds);
        /* this process holds the tokenizer and the data already */
        d.baseline_bytes = lc_rss_now() + DATA_TOKEN_BYTES / 3 * (double)(st.train_tokens +
                                                                         st.val_tokens);
        if (ranks > 1) {
            d.baseline_bytes += MPI_RANK_BYTES;
        }
    }
    rc = lc_plan_compute(&p, &pm, o, &d, ranks, lc_get_num_threads(), err);
    if (rc == LC_OK) {
        *text = lc_plan_report(&p, o);
        if (peak != NULL) {
            *peak = (int64_t)p.peak;
        }
        if (*text == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
    }
    lc_plan_release(&p);
    return rc;
}

/* ------------------------------------------------------------ the check */

/* "1.25 GiB" or "163.2 MiB" */
static const char *sz(double bytes, char *buf, size_t cap)
{
    if (bytes >= GIB) {
        snprintf(buf, cap, "%.2f GiB", bytes / GIB);
    } else {
        snprintf(buf, cap, "%.1f MiB", bytes / MIB);
    }
    return buf;
}

/* what would fit instead, into buf */
static void alternatives(const struct lc_plan_model *pm, const struct lc_train_opts *o,
                         const struct lc_plan_data *d, int ranks, int threads, double limit,
                         char *buf, size_t cap)
{
    struct lc_train_opts alt;
    struct lc_plan q;
    struct lc_plan_data fresh = *d;
    const struct lc_plan_data *now_d = d;
    size_t len = 0;

    fresh.resident_weights = 0;
    buf[0] = '\0';
#define TRY(desc)                                                                     \
    do {                                                                              \
        if (lc_plan_compute(&q, pm, &alt, d, r_try, threads, NULL) == LC_OK &&        \
            q.peak <= limit && len < cap) {                                           \
            char s1_[32];                                                             \
            int w = snprintf(buf + len, cap - len, "%s%s (%s)", len ? "; " : "", desc, \
                             sz(q.peak, s1_, sizeof(s1_)));                           \
            len += w > 0 ? (size_t)w : 0;                                             \
        }                                                                             \
        lc_plan_release(&q);                                                          \
    } while (0)
    {
        int r_try = ranks;
        char desc[96];
        alt = *o;
        if (!o->recompute && (o->stage & LC_STAGE_FINETUNE)) {
            alt.recompute = 1;
            TRY("--recompute");
        }
        for (int mult = 1; mult <= 64; mult *= 2) {
            const size_t len0 = len;
            alt = *o;
            alt.pipeline_stages = 0;
            r_try = ranks * mult;
            /* more ranks: a new run, whose ranks read only their weights */
            if (mult > 1) {
                d = &fresh;
            }
            if (mult > 1) {
                snprintf(desc, sizeof(desc), "%d ranks", r_try);
                TRY(desc);
            }
            if ((o->stage & LC_STAGE_FINETUNE) && len == len0) {
                /* stage 2 cut into pipeline stages: the most that divide
                 * the ranks */
                int g = r_try < pm->cfg.n_layers ? r_try : pm->cfg.n_layers;
                while (g > 1 && r_try % g != 0) {
                    g--;
                }
                if (g > 1 && g != o->pipeline_stages) {
                    alt.pipeline_stages = g;
                    if (mult > 1) {
                        snprintf(desc, sizeof(desc), "%d ranks with --pipeline-stages %d", r_try,
                                 g);
                    } else {
                        snprintf(desc, sizeof(desc), "--pipeline-stages %d", g);
                    }
                    TRY(desc);
                }
            }
            if (len > len0 || (mult > 1 && len > 0)) {
                break;
            }
        }
        /* block-wise stage 1, where it needs less than stage 1 now */
        r_try = ranks;
        d = now_d;
        for (int k = pm->cfg.n_layers / 2; k >= 1 && o->block_layers == 0; k /= 2) {
            struct lc_plan now;
            double s1_now = 0.0;
            if (lc_plan_compute(&now, pm, o, d, ranks, threads, NULL) == LC_OK) {
                s1_now = now.rank[now.peak_rank].s1_peak;
            }
            lc_plan_release(&now);
            alt = *o;
            alt.block_layers = k;
            if (lc_plan_compute(&q, pm, &alt, d, r_try, threads, NULL) == LC_OK &&
                q.rank[q.peak_rank].s1_peak < s1_now) {
                snprintf(desc, sizeof(desc), "--block-layers %d", k);
                lc_plan_release(&q);
                TRY(desc);
            } else {
                lc_plan_release(&q);
            }
        }
    }
#undef TRY
    if (buf[0] == '\0') {
        snprintf(buf, cap, "none of --recompute, more ranks, --pipeline-stages or "
                           "--block-layers alone; a "
                           "shorter --seq-len or --batch-size, or more memory");
    }
}

lc_status lc_plan_check(struct lc_trainer *tr, const struct lc_dataset *ds, struct lc_error *err)
{
    const struct lc_train_opts *o = tr->o;
    struct lc_dtrain *dt = tr->dt;
    struct lc_plan_model pm;
    struct lc_plan_data d;
    struct lc_plan p;
    double avail, limit, now, need;
    lc_status rc;

    memset(&pm, 0, sizeof(pm));
    memset(&d, 0, sizeof(d));
    if (tr->m->files != NULL) {
        rc = lc_plan_model_from_path(&pm, lc_model_files_path(tr->m->files), err);
        if (rc != LC_OK) {
            return rc;
        }
    } else {
        /* a model made in memory */
        pm.cfg = tr->m->cfg;
        sizes_from_config(&pm, (double)lc_dtype_size(tr->m->layers[0].wq.dtype));
        snprintf(pm.source, sizeof(pm.source), "the model in memory");
    }
    d.train_chunks = tr->n_train;
    d.val_chunks = tr->n_val;
    d.distinct_tokens = ds != NULL ? lc_dataset_distinct_tokens(ds) : 0;
    now = lc_rss_now();
    /* the weights paged in so far count as weights, not as the process */
    d.resident_weights = (double)lc_llama_resident_bytes(tr->m);
    d.baseline_bytes = now - d.resident_weights > 0 ? now - d.resident_weights : 0;
    rc = lc_plan_compute(&p, &pm, o, &d, dt->dist->size, lc_get_num_threads(), err);
    if (rc != LC_OK) {
        return rc;
    }
    need = p.rank[dt->dist->rank].peak;
    /* the host's free memory, shared by its ranks */
    avail = (double)lc_memory_available();
    limit = o->max_memory > 0 ? (double)o->max_memory : INFINITY;
    if (rc == LC_OK && avail > 0 && now + avail / dt->dist->host_size < limit) {
        limit = now + avail / dt->dist->host_size;
    }
    if (rc == LC_OK && need > limit) {
        char alt[1024];
        const struct lc_plan_rank *pr = &p.rank[dt->dist->rank];
        alternatives(&pm, o, &d, dt->dist->size, lc_get_num_threads(), limit, alt, sizeof(alt));
        char b[9][32];
        rc = lc_err_set(err, LC_ERR_NOMEM,
                        "rank %d would need %s (stage 1: weights %s, activations %s, parameters "
                        "and optimizer %s; stage 2: weights %s, activations %s, parameters and "
                        "optimizer %s; process and data %s), more than the %s %s; what would "
                        "fit: %s",
                        dt->dist->rank, sz(need, b[0], 32), sz(pr->s1_weights, b[1], 32),
                        sz(pr->s1_work + pr->s1_cache, b[2], 32), sz(pr->s1_train, b[3], 32),
                        sz(pr->s2_weights, b[4], 32),
                        sz(o->recompute ? pr->s2_work_recompute : pr->s2_work, b[5], 32),
                        sz(pr->s2_train, b[6], 32), sz(pr->baseline, b[7], 32),
                        sz(limit, b[8], 32),
                        o->max_memory > 0 && (double)o->max_memory <= limit
                            ? "of --max-memory"
                            : "this host has available for it",
                        alt);
    }
    tr->plan_peak = need;
    lc_plan_release(&p);
    return rc;
}
