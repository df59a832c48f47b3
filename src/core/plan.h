/*
 * The memory planner (plan.c): what a training run will hold in memory on
 * each rank, from the model's configuration and tensor sizes (not its
 * weights), the options and the rank layout, and the check that refuses a
 * run that would not fit.
 */
#ifndef LC_CORE_PLAN_H
#define LC_CORE_PLAN_H

#include "core/train.h"

/* What the plan needs of the model. */
struct lc_plan_model {
    struct lc_model_config cfg;
    double layer_bytes;     /* one layer's weight matrices, in their file dtype */
    double mlp_bytes;       /* of which the MLP's */
    double norm_bytes;      /* one layer's norm vectors as the model keeps them (fp32) */
    double embed_bytes;     /* the embedding table */
    double embed_row_bytes;
    double head_bytes;      /* the lm_head when it is not the embedding, else 0 */
    double weight_esz;      /* bytes per element of the matrices */
    char dtype[16];         /* of the matrices */
    char source[64];        /* "tensor sizes" or "config.json (torch_dtype ...)" */
};

/* From a Hugging Face folder (with or without weights), a config.json, or
 * a GGUF file: only the configuration and the tensor table are read. */
lc_status lc_plan_model_from_path(struct lc_plan_model *pm, const char *path,
                                  struct lc_error *err);

/* What the plan knows of the data: chunks per split (0: unknown, then the
 * cache is given per million tokens), distinct tokens (0: unknown), the
 * process's memory before training, less resident weights (0: estimated). */
struct lc_plan_data {
    int64_t train_chunks;
    int64_t val_chunks;
    int64_t distinct_tokens;
    double baseline_bytes;
    /* model weights already resident in the process (they stay: no stage
     * maps less); negative: one rank pages in the whole model first, as
     * lolcats-train does, several ranks none */
    double resident_weights;
};

/* One rank's memory, in bytes. */
struct lc_plan_rank {
    int stage, replica;
    int l0, l1;              /* the layers of its pipeline stage */
    double baseline;         /* the process, libraries, data */
    double s1_weights, s1_work, s1_train;  /* stage 1: mapped weights, activations and */
    double s1_cache;                       /* scratch, parameters and optimizer; cache buffers */
    double s2_weights, s2_work, s2_work_recompute, s2_train;
    double s1_peak, s2_peak, peak;         /* the largest resident size of each stage, and of the run */
};

struct lc_plan {
    struct lc_plan_model model;
    struct lc_layout layout;
    int ranks, threads;
    int stage1, stage2;       /* the stages run */
    int s2_pipeline;          /* stage 2 in the layout's pipeline stages (else data parallel) */
    int T, B;
    double cache_disk;        /* bytes of cached hidden states (block-wise) */
    double cache_per_mtok;    /* ... per million tokens */
    struct lc_plan_rank *rank; /* [ranks] */
    double peak;              /* the largest rank's */
    int peak_rank;
};

lc_status lc_plan_compute(struct lc_plan *p, const struct lc_plan_model *pm,
                          const struct lc_train_opts *o, const struct lc_plan_data *d, int ranks,
                          int threads, struct lc_error *err);
void lc_plan_release(struct lc_plan *p);
/* The report (malloc'd). */
char *lc_plan_report(const struct lc_plan *p, const struct lc_train_opts *o);

/* lc_train's check: the plan of this run on this rank against the memory
 * its host has free (shared with the other ranks there) and
 * o->max_memory; refuses naming what does not fit and what would.
 * Collective. */
lc_status lc_plan_check(struct lc_trainer *tr, const struct lc_dataset *ds, struct lc_error *err);

/* The resident memory of this process now and at its largest (bytes; 0
 * when unknown). */
double lc_rss_now(void);
double lc_rss_peak(void);

#endif /* LC_CORE_PLAN_H */
