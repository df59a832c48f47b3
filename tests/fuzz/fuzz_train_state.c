/* Fuzz: the training state (train_state.safetensors) as lolcats-train
 * --resume reads it: its metadata (position and schedule) and tensors,
 * checked against a trainer of stories260K's shapes with feature
 * dimension 2 and LoRA rank 1 on q, k, v, o.  What passes the check must
 * be a position the training loop can index its data order with. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensorfile.h"
#include "core/train.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    struct lc_train_opts o;
    struct lc_trainer tr;
    struct lc_train_resume pos;
    const char *stage;
    lc_status rc;

    rc = lc_st_open_mem(&f, "train_state.safetensors", data, size, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "train_state.safetensors");
        return 0;
    }
    lc_train_opts_default(&o);
    o.max_steps = 4;
    o.grad_accum = 2;
    memset(&tr, 0, sizeof(tr));
    tr.o = &o;
    tr.B = 1;
    tr.T = 32;
    tr.n_train = 7;
    tr.n_groups = 1;
    stage = lc_st_metadata(f, "stage");
    if (stage != NULL && strcmp(stage, "finetune") == 0) {
        /* 5 layers of rank-1 LoRA: q 64+64, k 64+32, v 64+32, o 64+64 */
        tr.groups[0].name = "lora";
        tr.groups[0].n = 5 * (128 + 96 + 96 + 128);
    } else {
        /* 5 layers of 8 heads: q and k maps [8, 8, 2], 8 window factors */
        tr.groups[0].name = "feature_maps";
        tr.groups[0].n = 5 * (2 * 8 * 8 * 2 + 8);
    }
    rc = lc_train_state_check(&tr, f, "train_state.safetensors", &pos, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "train_state.safetensors");
    } else {
        /* what the loop then indexes: perm[(mb + i) * B] for the micro-
         * batches i of the next step, and the schedule */
        const int64_t mb_epoch = tr.n_train / tr.B;
        if (pos.step < 0 || pos.step > o.max_steps || pos.mb < 0 || pos.mb >= mb_epoch ||
            pos.epoch < 0 || !(pos.lr > 0) || pos.plateau_bad < 0 || pos.metrics_lines < 0) {
            abort();
        }
        for (int p = 0; p < 4; p++) {
            static const char *const parts[] = {"params", "adam_m", "adam_v", "best"};
            char name[64];
            const struct lc_tensor_view *t;
            volatile float sink = 0;
            snprintf(name, sizeof(name), "%s.%s", tr.groups[0].name, parts[p]);
            t = lc_st_find(f, name);
            for (size_t i = 0; i < tr.groups[0].n; i++) {
                sink += ((const float *)t->data)[i];
            }
            (void)sink;
        }
    }
    lc_st_close(f);
    return 0;
}
