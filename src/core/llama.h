/*
 * The Llama model on a backend: weights, RoPE tables, and the pieces of a
 * decoder layer as functions, so that the forward pass, the attention
 * transfer trainer, the LoRA trainer and the decoders compose them in their
 * own order.
 *
 * All float pointers below are backend memory.  Activations are [N, ...]
 * with N = B*T token rows.
 */
#ifndef LC_CORE_LLAMA_H
#define LC_CORE_LLAMA_H

#include "core/backend.h"
#include "core/lolcats.h"
#include "core/lora.h"
#include "core/modelfiles.h"
#include "lolcats/lolcats.h"

/* A weight matrix or vector in backend memory, in its file dtype. */
struct lc_weight {
    const void *data;
    enum lc_dtype dtype;
    void *owned; /* backend allocation to release, or NULL (mmapped) */
    size_t nbytes;
};

struct lc_llama_layer {
    float *attn_norm;     /* [C] fp32 */
    struct lc_weight wq;  /* [H*D, C] */
    struct lc_weight wk;  /* [Hkv*D, C] */
    struct lc_weight wv;  /* [Hkv*D, C] */
    struct lc_weight wo;  /* [C, H*D] */
    float *ffn_norm;      /* [C] fp32 */
    struct lc_weight w_gate; /* [FFN, C] */
    struct lc_weight w_up;   /* [FFN, C] */
    struct lc_weight w_down; /* [C, FFN] */
};

struct lc_llama {
    struct lc_backend *be;
    struct lc_model_files *files;
    struct lc_model_config cfg;
    struct lc_weight embed;   /* [V, C] */
    struct lc_weight lm_head; /* [V, C]; the embedding when tied */
    float *final_norm;        /* [C] */
    struct lc_llama_layer *layers;
    float *inv_freq_host;     /* [D/2] host */
    float *rope_cos;          /* [rope_len, D/2] */
    float *rope_sin;
    int rope_len;             /* positions covered by the tables */
    /* linearized attention in place of softmax attention, when attached */
    const struct lc_linattn *lin;
    /* LoRA adapters on q, k, v, o, when attached: lc_llama_qkv and
     * lc_llama_attn_out add them, so every forward and decoder uses them */
    struct lc_lora *lora;
};

lc_status lc_llama_load(struct lc_llama **out, const char *path, struct lc_backend *be,
                        struct lc_error *err);
void lc_llama_free(struct lc_llama *m);

/* Bytes of the matrices read in place from the mapped model files (a tied
 * lm_head counted once); 0 when the backend holds copies. */
int64_t lc_llama_mapped_bytes(const struct lc_llama *m);
/* Reads those matrices into memory (readahead a piece ahead, one read per
 * page), calling progress with the bytes done after each piece; non-zero
 * from progress stops with LC_ERR_INTERRUPTED. */
lc_status lc_llama_page_in(const struct lc_llama *m,
                           int (*progress)(int64_t done, int64_t total, void *user), void *user,
                           struct lc_error *err);

/* A model of shape cfg with random weights and no files, for tests and
 * benchmarks: every matrix uniform in +-1/sqrt(fan_in) (the PyTorch
 * nn.Linear default), the embedding uniform in +-1, norm weights 1 (fp32).
 * The matrices and the embedding are of type wtype, LC_DTYPE_F32 or
 * LC_DTYPE_BF16 (the fp32 values rounded).  The same seed gives the same
 * weights. */
lc_status lc_llama_random(struct lc_llama **out, const struct lc_model_config *cfg,
                          enum lc_dtype wtype, uint64_t seed, struct lc_backend *be,
                          struct lc_error *err);

/* Makes the RoPE tables cover positions [0, n_pos). */
lc_status lc_llama_rope_reserve(struct lc_llama *m, int n_pos, struct lc_error *err);

/* Host rows cos_out, sin_out [n, D/2] of positions [p0, p0 + n): the values
 * of the tables, computed the same way (for decoding sessions, which keep
 * tables of one chunk instead of every position). */
void lc_llama_rope_rows(const struct lc_llama *m, int64_t p0, int n, float *cos_out,
                        float *sin_out);

/* RoPE inverse frequencies as Hugging Face computes them in fp32,
 * including llama3 scaling.  inv_freq has D/2 entries. */
void lc_rope_inv_freq(const struct lc_model_config *cfg, float *inv_freq);

/* ------------------------------------------------------- layer pieces */

/* x[N,C] = embedding rows of ids[N] */
void lc_llama_embed(struct lc_llama *m, float *x, const int32_t *ids, int N);

/* xn = rmsnorm(x) with the attention norm of layer l; q[N,H*D], k, v
 * [N,Hkv*D] projections (with the attached LoRA adapters); RoPE applied to
 * q and k at positions pos[N]. */
void lc_llama_qkv(struct lc_llama *m, int l, const float *xn, float *q, float *k, float *v,
                  const int32_t *pos, int N);
/* The same with RoPE rows cos_tab, sin_tab (backend memory) indexed by pos. */
void lc_llama_qkv_tab(struct lc_llama *m, int l, const float *xn, float *q, float *k, float *v,
                      const int32_t *pos, const float *cos_tab, const float *sin_tab, int N);

/* x += o_proj(att) (with the attached LoRA adapter) */
void lc_llama_attn_out(struct lc_llama *m, int l, float *x, const float *att, int N);

/* x += mlp(rmsnorm(x)); xn [N,C], gate, up [N,FFN] scratch */
void lc_llama_mlp(struct lc_llama *m, int l, float *x, float *xn, float *gate, float *up, int N);

/* logits[N,V] = lm_head(rmsnorm(x)); xn [N,C] scratch */
void lc_llama_head(struct lc_llama *m, const float *x, float *xn, float *logits, int N);

/* ------------------------------------------------------- whole passes */

/* Scratch for a teacher forward over up to max_rows token rows. */
struct lc_llama_fwd {
    int max_rows;
    int head_rows;  /* rows per lm_head chunk */
    float *x;       /* [N, C] residual stream */
    float *xn;      /* [N, C] */
    float *q;       /* [N, H*D] */
    float *k;       /* [N, Hkv*D] */
    float *v;       /* [N, Hkv*D] */
    float *att;     /* [N, H*D] */
    float *gate;    /* [N, FFN] */
    float *up;      /* [N, FFN] */
    float *fq;      /* [N, H*F] when a linear attention is attached */
    float *fk;      /* [N, H*F] */
    float *logits;  /* [head_rows, V] */
    float *row_loss; /* [head_rows] */
    int32_t *ids;   /* [N] */
    int32_t *pos;   /* [N] */
    int32_t *targets; /* [N] */
};

lc_status lc_llama_fwd_alloc(struct lc_llama *m, struct lc_llama_fwd *f, int max_rows,
                             struct lc_error *err);
void lc_llama_fwd_free(struct lc_llama *m, struct lc_llama_fwd *f);

/* Forward of B sequences (softmax attention, or the attached linear
 * attention) of T tokens (host ids
 * [B*T]); positions 0..T-1 in each.  Leaves the final hidden states in
 * f->x.  Pass logits_host [B*T, V] to get all logits, or NULL. */
lc_status lc_llama_forward(struct lc_llama *m, struct lc_llama_fwd *f, const int32_t *ids,
                           int B, int T, float *logits_host, struct lc_error *err);

/* Per-token negative log-likelihood of targets (host [B*T]; < 0 =
 * ignored, NLL 0) given the hidden states f->x of the last forward. */
lc_status lc_llama_nll_from_hidden(struct lc_llama *m, struct lc_llama_fwd *f,
                                   const int32_t *targets, int N, float *nll_host,
                                   struct lc_error *err);

#endif /* LC_CORE_LLAMA_H */
