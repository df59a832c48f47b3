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
};

/* Grows the forward scratch to at least `rows` token rows. */
lc_status lc_model_reserve_rows(struct lc_model *m, int rows, struct lc_error *err);

#endif /* LC_CORE_MODEL_H */
