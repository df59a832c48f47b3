/*
 * Stage 2, low-rank linearizing (method doc section 5): the linearized
 * model (hybrid attention in every layer, no teacher) forward and backward
 * with LoRA adapters on the attention projections, and next-token
 * cross-entropy.  Base weights are frozen; the adapters, and optionally the
 * feature maps and window factors, receive gradients.
 *
 * Everything runs through the backend table.  What the backward needs of
 * each layer l (floats per token; C width, HD = H*D, KD = Hkv*D,
 * HF = H*2f, FF the MLP width):
 *
 *   x      C    layer input (the residual stream)
 *   rstd1  1    1/rms of x (attention norm)
 *   q      HD   after LoRA and RoPE
 *   k, v   2KD  (k after RoPE)
 *   fq, fk 2HF  feature maps of q and k
 *   mx,den 2H   window max and denominator of the hybrid attention
 *   att    HD   hybrid attention output (input of o_proj)
 *   xmid   C    residual after the attention
 *   rstd2  1    1/rms of xmid (MLP norm)
 *   gate,up 2FF MLP projections before SwiGLU
 *
 * i.e. 2C + 2HD + 2KD + 2HF + 2H + 2FF + 2 floats per token and layer
 * (stories260K: 2730 floats = 10.7 KiB; Llama 3 8B: 55362 floats =
 * 216 KiB), plus the final hidden states.  The normalized inputs of the
 * projections are recomputed from x (one rmsnorm) rather than kept.
 * With recompute, only x of every layer is kept and the rest of a layer is
 * computed again in the backward from it (the same kernels on the same
 * inputs, so the gradients are bit-identical), for one layer's set plus
 * L*C floats per token.
 */
#ifndef LC_CORE_FINETUNE_H
#define LC_CORE_FINETUNE_H

#include "core/linattn.h"
#include "core/llama.h"
#include "core/lora.h"

struct lc_ft_acts {
    float *x;      /* [N, C] */
    float *rstd1;  /* [N] */
    float *q;      /* [N, HD] */
    float *k;      /* [N, KD] */
    float *v;      /* [N, KD] */
    float *fq;     /* [N, HF] */
    float *fk;     /* [N, HF] */
    float *mx;     /* [N, H] */
    float *den;    /* [N, H] */
    float *att;    /* [N, HD] */
    float *xmid;   /* [N, C] */
    float *rstd2;  /* [N] */
    float *gate;   /* [N, FF] */
    float *up;     /* [N, FF] */
};

/* What a pipeline stage exchanges with its neighbours (lc_ft.pipe). */
enum lc_ft_pipe_op {
    LC_FT_RECV_X = 0, /* the residual stream from the stage before */
    LC_FT_SEND_X,     /* ... to the next */
    LC_FT_RECV_DX,    /* its gradient from the next stage */
    LC_FT_SEND_DX,    /* ... to the stage before */
};

struct lc_ft {
    struct lc_llama *m;
    struct lc_linattn *lin;
    struct lc_lora *lora;
    int max_rows;
    int recompute;
    int train_fmaps;      /* feature maps and window factors get gradients */
    int l0, l1;           /* the layers run here (a pipeline stage; else all) */
    float *lora_grads;    /* [lora->n_params] += */
    float *lin_grads;     /* [lin->n_params] += when train_fmaps, else scratch */

    struct lc_ft_acts *acts; /* [L], set for [l0, l1); with recompute all but x shared */
    float *x_last;        /* [N, C] final hidden states (the last stage) */
    float *rstd_f;        /* [N] (the last stage) */
    /* working buffers */
    float *xn;            /* [N, C] normalized input, recomputed */
    float *x_out;         /* [N, C] output of a recomputed layer (discarded) */
    float *h;             /* [N, FF] SwiGLU output */
    float *dx;            /* [N, C] gradient of the residual stream */
    float *dxn;           /* [N, C] */
    float *dh;            /* [N, FF] */
    float *dgate;         /* [N, FF] */
    float *dup;           /* [N, FF] */
    float *datt;          /* [N, HD] */
    float *dq;            /* [N, HD] */
    float *dk;            /* [N, KD] */
    float *dv;            /* [N, KD] */
    float *dfq;           /* [N, HF] */
    float *dfk;           /* [N, HF] */
    struct lc_lora_bwd_scratch ls;
    int head_rows;        /* rows per lm_head chunk */
    float *logits;        /* [head_rows, V] */
    float *row_loss;      /* [N] */
    int32_t *ids;         /* [N] */
    int32_t *pos;         /* [N] */
    int32_t *targets;     /* [N] */
    float *host_loss;     /* host [N] */
    void *arena;          /* the one backend allocation behind the buffers */
    /* called after each layer pass of lc_ft_microbatch (layer of layers);
     * non-zero stops it with LC_ERR_INTERRUPTED (nullable) */
    int (*poll)(void *user, int layer, int layers);
    void *poll_user;
    /* a pipeline stage that lacks the first or the last layer moves the
     * residual stream x [N, C] (backend memory) and its gradient through
     * this (enum lc_ft_pipe_op) */
    lc_status (*pipe)(void *user, int op, float *x, int N, struct lc_error *err);
    void *pipe_user;
};

/* Softmax attention in the form lc_ft runs: the hybrid attention whose
 * window holds every key.  A sliding window of T keys leaves no key to the
 * linear part in chunks of up to T tokens, so y = sum_j g e_j v_j /
 * sum_j g e_j: the window factor g cancels and the stabilizer is the row's
 * maximum, which is causal softmax attention with scale 1/sqrt(D), and
 * hybrid_bwd is its exact backward.  The feature maps are never used (f = 1
 * keeps them small).  With it, lc_ft trains LoRA on the original model
 * (the lora-only stage). */
lc_status lc_ft_softmax_attention(struct lc_linattn **out, const struct lc_llama *m, int T,
                                  struct lc_error *err);

/* Bytes of backend memory lc_ft_new allocates for micro-batches of rows
 * tokens: activations, gradients and working buffers (not the parameters
 * or the optimizer state). */
size_t lc_ft_bytes(const struct lc_llama *m, const struct lc_linattn *lin,
                   const struct lc_lora *lora, int rows, int recompute, int train_fmaps);

/* ... for a pipeline stage that runs layers [l0, l1) */
size_t lc_ft_bytes_layers(const struct lc_llama *m, const struct lc_linattn *lin,
                          const struct lc_lora *lora, int rows, int recompute, int train_fmaps,
                          int l0, int l1);

/* An engine for micro-batches of up to max_rows tokens.  m, lin and lora
 * must outlive it; lora must be attached to m (m->lora) while it runs. */
lc_status lc_ft_new(struct lc_ft **out, struct lc_llama *m, struct lc_linattn *lin,
                    struct lc_lora *lora, int max_rows, int recompute, int train_fmaps,
                    struct lc_error *err);
/* ... for a pipeline stage: layers [l0, l1) only, their activations only;
 * the embedding when l0 = 0, the final norm, lm_head and loss when l1 is
 * the last layer; set pipe for the rest.  Gradients go to these layers'
 * parts of the arenas only. */
lc_status lc_ft_new_layers(struct lc_ft **out, struct lc_llama *m, struct lc_linattn *lin,
                           struct lc_lora *lora, int max_rows, int recompute, int train_fmaps,
                           int l0, int l1, struct lc_error *err);
void lc_ft_free(struct lc_ft *ft);

/* Zeroes the gradients. */
void lc_ft_zero_grads(struct lc_ft *ft);

/* Forward of B sequences of T tokens (host ids [B*T], positions 0..T-1)
 * and the cross-entropy against host targets [B*T] (< 0: ignored).
 * nll_sum receives the summed NLL of the n_valid counted tokens (0 on a
 * pipeline stage before the last).  With
 * backward, the gradients of  sum NLL / (n_valid * grad_div)  are added to
 * ft->lora_grads (and ft->lin_grads).  LoRA dropout follows lora->train and
 * lora->drop_seed. */
lc_status lc_ft_microbatch(struct lc_ft *ft, const int32_t *ids, const int32_t *targets, int B,
                           int T, int backward, double grad_div, double *nll_sum,
                           int64_t *n_valid, struct lc_error *err);

/* One layer (for benchmarks): forward from a->x into x_out, saving a; and
 * backward with dx [N, C] the gradient of the layer output on entry and of
 * its input on return.  ft->pos must hold the positions. */
void lc_ft_layer_forward(struct lc_ft *ft, int l, const struct lc_ft_acts *a, float *x_out,
                         int B, int T);
void lc_ft_layer_backward(struct lc_ft *ft, int l, const struct lc_ft_acts *a, float *dx, int B,
                          int T);

#endif /* LC_CORE_FINETUNE_H */
