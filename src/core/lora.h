/*
 * LoRA adapters on the attention projections (method doc section 5):
 * y = x W^T + (alpha/r) * dropout(x) A^T B^T with A [r, in] and B [out, r]
 * per adapted projection (q, k, v, o) of every layer, as Hugging Face PEFT
 * computes it (dropout on the adapter input only; none at inference).
 *
 * All adapters live in one flat fp32 arena on the backend, layer after
 * layer, and inside a layer target after target (q, k, v, o; only the
 * targeted ones):  A [r, in] | B [out, r].
 *
 * Files: adapter_model.safetensors with PEFT's key names
 *   base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_A.weight [r, in]
 *   base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_B.weight [out, r]
 * (float32) and adapter_config.json (peft_type LORA, task_type CAUSAL_LM).
 */
#ifndef LC_CORE_LORA_H
#define LC_CORE_LORA_H

#include "core/backend.h"
#include "lolcats/lolcats.h"

struct lc_llama;

/* target index: q, k, v, o projections (bit 1 << t is LC_LORA_Q...) */
enum { LC_LORA_TQ = 0, LC_LORA_TK = 1, LC_LORA_TV = 2, LC_LORA_TO = 3, LC_LORA_NT = 4 };

#define LC_ADAPTER_MODEL_FILE "adapter_model.safetensors"
#define LC_ADAPTER_CONFIG_FILE "adapter_config.json"

struct lc_lora_cfg {
    int rank;          /* r >= 1 */
    double alpha;      /* scale = alpha / r */
    double dropout;    /* probability in [0, 1) */
    unsigned targets;  /* LC_LORA_* bits, at least one */
};

struct lc_lora {
    struct lc_backend *be;
    struct lc_lora_cfg cfg;
    int L;
    int in[LC_LORA_NT];      /* input features of each projection */
    int out[LC_LORA_NT];     /* output features */
    size_t off[LC_LORA_NT];  /* offset of A inside a layer's block (targeted ones) */
    size_t layer_size;       /* floats per layer */
    size_t n_params;         /* L * layer_size */
    int max_in;              /* largest input width among the targets */
    float scale;             /* alpha / r */
    float *params;           /* backend [n_params] */

    /* forward scratch: u [cap_rows, r]; xd [cap_rows, max_in] for dropout */
    float *u;
    float *xd;
    int cap_rows;
    int xd_rows;
    /* forward dropout: applied when train is set and dropout > 0, with
     * lc_lora_dropout_seed(drop_seed, layer, target) */
    int train;
    uint64_t drop_seed;
};

static inline int lc_lora_has(const struct lc_lora *lo, int t)
{
    return (lo->cfg.targets >> t) & 1u;
}

/* A [r, in] and B [out, r] of (layer l, target t) inside an arena of this
 * layout (parameters, gradients, host copies). */
static inline float *lc_lora_A(const struct lc_lora *lo, float *arena, int l, int t)
{
    return arena + (size_t)l * lo->layer_size + lo->off[t];
}
static inline float *lc_lora_B(const struct lc_lora *lo, float *arena, int l, int t)
{
    return arena + (size_t)l * lo->layer_size + lo->off[t] +
           (size_t)lo->cfg.rank * (size_t)lo->in[t];
}

/* New adapters for model m as PEFT initializes them: A from
 * kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), drawn from
 * a counter-based generator keyed by (seed, layer, target) so that every
 * machine gets the same numbers; B = 0. */
lc_status lc_lora_new(struct lc_lora **out, const struct lc_llama *m,
                      const struct lc_lora_cfg *cfg, uint64_t seed, struct lc_error *err);
void lc_lora_free(struct lc_lora *lo);

/* Makes the forward scratch hold `rows` rows without chunking (with room
 * for the dropped-out inputs when with_dropout). */
lc_status lc_lora_reserve(struct lc_lora *lo, int rows, int with_dropout, struct lc_error *err);

/* Dropout seeds: one per micro-batch of a training step, and from it one
 * per (layer, target). */
uint64_t lc_lora_batch_seed(uint64_t seed, int64_t step, int64_t microbatch);
uint64_t lc_lora_dropout_seed(uint64_t batch_seed, int l, int t);

/* y[N, out] += scale * dropout(x[N, in]) A^T B^T for (layer l, target t)
 * with the adapters in lo->params; nothing when t is not targeted.  Rows
 * beyond the scratch are done in chunks (never with dropout, which
 * lc_lora_reserve makes room for). */
void lc_lora_forward(struct lc_lora *lo, int l, int t, const float *x, float *y, int N);

/* Scratch of the backward: t_rows [N, r], u [N, r], xd and tmp [N, max_in]
 * (the last two used only with dropout). */
struct lc_lora_bwd_scratch {
    float *t_rows;
    float *u;
    float *xd;
    float *tmp;
};

/* The backward of lc_lora_forward with the same x and dropout state:
 * dA, dB (in the gradient arena grads) +=, dx[N, in] += (nullable). */
void lc_lora_backward(struct lc_lora *lo, float *grads, int l, int t, const float *x,
                      const float *dy, float *dx, int N, const struct lc_lora_bwd_scratch *s);

/* Writes DIR/adapter_model.safetensors and DIR/adapter_config.json from a
 * host arena.  base_model is recorded as base_model_name_or_path, made
 * absolute. */
lc_status lc_lora_save(const struct lc_lora *lo, const float *host_arena, const char *dir,
                       const char *base_model, struct lc_error *err);

/* Reads an adapter folder written by lc_lora_save (or by PEFT with the same
 * key names and settings) for model m. */
lc_status lc_lora_load(struct lc_lora **out, const struct lc_llama *m, const char *dir,
                       struct lc_error *err);

/* Writes OUT_DIR as a plain Hugging Face model: config.json and the
 * tokenizer files copied from the base model folder, and the weights with
 * W + scale * B A folded into every adapted projection, in the base
 * weights' dtype (model.safetensors, or shards with an index past 4 GiB).
 * host_arena holds the adapters.  The base model must be a Hugging Face
 * folder. */
lc_status lc_lora_merge(const struct lc_lora *lo, const float *host_arena,
                        const struct lc_llama *m, const char *out_dir, struct lc_error *err);

/* The merged weight of (layer l, target t) as fp32 host [out, in]:
 * w (the base weight, host memory in its dtype) + scale * B A, each
 * element computed in double and rounded to fp32. */
void lc_lora_merged_weight(const struct lc_lora *lo, const float *host_arena, int l, int t,
                           const void *w, enum lc_dtype wtype, float *out);

#endif /* LC_CORE_LORA_H */
