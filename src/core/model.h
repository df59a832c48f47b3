/* The public model object and what the other core modules need of it. */
#ifndef LC_CORE_MODEL_H
#define LC_CORE_MODEL_H

#include "core/llama.h"

struct lc_model {
    struct lc_llama *llama;
    struct lc_llama_fwd fwd; /* scratch sized for the largest batch so far */
    struct lc_linattn *lin;  /* loaded linear attention, or NULL */
    struct lc_lora *lora;    /* loaded LoRA adapter, or NULL */
    int no_adapter;          /* lc_model_use_adapter(m, 0) */
    uint64_t lin_serial;     /* counts lc_model_attach_linattn calls and adapter switches */
};

/* Grows the forward scratch to at least `rows` token rows. */
lc_status lc_model_reserve_rows(struct lc_model *m, int rows, struct lc_error *err);

/* A model with random weights (lc_llama_random), for tests and benchmarks;
 * lc_model_format() says "random". */
lc_status lc_model_random(struct lc_model **out, const struct lc_model_config *cfg,
                          uint64_t seed, struct lc_backend *be, struct lc_error *err);

/* Runs the model with lin (owned from now on) in place of softmax
 * attention, replacing any attached before. */
void lc_model_attach_linattn(struct lc_model *m, struct lc_linattn *lin);

#endif /* LC_CORE_MODEL_H */
