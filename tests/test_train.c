/*
 * The training loop's optimizer step, through lc_train_run_stage with a
 * stage of its own whose gradients are known, against AdamW in double
 * precision with PyTorch's hyperparameters.
 *
 * The loop must hand beta2 = 0.999 to the backend as a double: rounded to
 * float first, 1 - beta2 is off by 1.3e-5 relative and so are the second
 * moments, far outside the tolerance used here.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist_train.h"
#include "core/llama.h"
#include "core/ref/ref_f64.h"
#include "core/train.h"
#include "tests/lc_test.h"

#define N_PARAMS 257
#define N_STEPS 3
#define LR 3e-3
#define WD 0.01

/* the gradient of step s (0-based), the same for the stage and the check */
static void step_grad(float *g, int step)
{
    lc_test_fill_normal(g, N_PARAMS, 1000 + (uint64_t)step, 0.5f);
}

struct fake_stage {
    float *host_grad; /* [N_PARAMS] */
    float *dev_grad;  /* backend [N_PARAMS] */
};

static lc_status fake_microbatch(struct lc_trainer *tr, const int32_t *ids, const int32_t *labels,
                                 int B, int backward, double grad_div, double *loss,
                                 double *layer_loss, struct lc_error *err)
{
    struct fake_stage *fs = tr->stage_ctx;
    struct lc_backend *be = tr->be;

    (void)ids;
    (void)labels;
    (void)B;
    (void)err;
    assert_true(grad_div == 1.0);
    /* a falling validation loss: every evaluation is the best so far */
    *loss = 1.0 / (1.0 + (double)tr->step);
    if (layer_loss != NULL) {
        layer_loss[0] = *loss;
    }
    if (backward) {
        step_grad(fs->host_grad, (int)tr->step);
        be->ops->upload(be, fs->dev_grad, fs->host_grad, N_PARAMS * sizeof(float));
        be->ops->add(be, tr->groups[0].grads, fs->dev_grad, N_PARAMS);
    }
    return LC_OK;
}

static lc_status fake_save_outputs(struct lc_trainer *tr, struct lc_error *err)
{
    (void)tr;
    (void)err;
    return LC_OK;
}

static const struct lc_stage_hooks fake_hooks = {
    .stage = LC_STAGE_TRANSFER,
    .name = "transfer",
    .microbatch = fake_microbatch,
    .save_outputs = fake_save_outputs,
    .reports_layers = 0,
};

static void *dev_alloc(struct lc_backend *be, size_t bytes)
{
    void *p = be->ops->alloc(be, bytes);
    assert_non_null(p);
    return p;
}

/* |got - want| <= atol + rtol |want| for each of the N_PARAMS values */
static void expect_close(const char *backend, const char *what, const float *got,
                         const double *want, double atol, double rtol)
{
    for (size_t i = 0; i < N_PARAMS; i++) {
        if (fabs(got[i] - want[i]) > atol + rtol * fabs(want[i])) {
            fail_msg("%s: trainer's %s[%zu] = %.9g, AdamW in double gives %.9g", backend, what, i,
                     got[i], want[i]);
        }
    }
}

static void check_trainer_adamw(const char *backend)
{
    enum { T = 4, CHUNKS = 2 };
    struct lc_backend *be = NULL;
    struct lc_error err = {0};
    struct lc_train_opts o;
    struct lc_llama m;
    struct lc_trainer tr;
    struct fake_stage fs;
    struct lc_param_group *pg = &tr.groups[0];
    int32_t ids[CHUNKS * T] = {0};
    double layer_loss[1];
    float *p0 = lc_test_new_uniform(N_PARAMS, 7, -1.0f, 1.0f);
    float *got = lc_test_new_f32(N_PARAMS);
    float *g = lc_test_new_f32(N_PARAMS);
    double *p = lc_test_to_f64(p0, N_PARAMS);
    double *m1 = lc_test_new_f64(N_PARAMS);
    double *v2 = lc_test_new_f64(N_PARAMS);
    double *g64 = lc_test_new_f64(N_PARAMS);
    lc_status rc;

    rc = lc_backend_open(&be, backend, &err);
    if (rc != LC_OK) {
        print_message("[   SKIP   ] trainer adamw on %s: %s\n", backend, err.msg);
        goto done;
    }
    lc_train_opts_default(&o);
    o.out_dir = lc_test_tmpdir();
    o.grad_accum = 1;
    o.max_steps = N_STEPS;
    o.eval_every = 1;
    o.lr = LR;
    o.weight_decay = WD;
    memset(&m, 0, sizeof(m));
    m.cfg.n_layers = 1;
    memset(&tr, 0, sizeof(tr));
    tr.model = NULL;
    tr.m = &m;
    tr.be = be;
    tr.o = &o;
    tr.T = T;
    tr.B = 1;
    tr.train_ids = ids;
    tr.train_labels = ids;
    tr.n_train = CHUNKS;
    tr.val_ids = ids;
    tr.val_labels = ids;
    tr.n_val = 1;
    tr.hooks = &fake_hooks;
    tr.stage_ctx = &fs;
    tr.layer_loss = layer_loss;
    tr.batch_ids = lc_test_calloc(T, sizeof(int32_t));
    tr.batch_labels = lc_test_calloc(T, sizeof(int32_t));
    tr.n_groups = 1;
    pg->name = "test";
    pg->n = N_PARAMS;
    pg->params = dev_alloc(be, N_PARAMS * sizeof(float));
    pg->grads = dev_alloc(be, N_PARAMS * sizeof(float));
    pg->adam_m = dev_alloc(be, N_PARAMS * sizeof(float));
    pg->adam_v = dev_alloc(be, N_PARAMS * sizeof(float));
    pg->best = lc_test_new_f32(N_PARAMS);
    fs.host_grad = lc_test_new_f32(N_PARAMS);
    fs.dev_grad = dev_alloc(be, N_PARAMS * sizeof(float));
    be->ops->upload(be, pg->params, p0, N_PARAMS * sizeof(float));
    /* one process: a world of one rank */
    rc = lc_dt_new(&tr.dt, &tr, &err);
    if (rc != LC_OK) {
        fail_msg("%s: %s", backend, err.msg);
    }

    rc = lc_train_run_stage(&tr, &err);
    if (rc != LC_OK) {
        fail_msg("%s: %s", backend, err.msg);
    }
    assert_int_equal(tr.step, N_STEPS);

    /* the same steps in double precision */
    for (int s = 0; s < N_STEPS; s++) {
        step_grad(g, s);
        for (size_t i = 0; i < N_PARAMS; i++) {
            g64[i] = g[i];
        }
        lc_ref_adamw_f64(NULL, p, g64, m1, v2, N_PARAMS, LR, 0.9, 0.999, 1e-8, WD, s + 1);
    }
    be->ops->download(be, got, pg->adam_v, N_PARAMS * sizeof(float));
    expect_close(backend, "adam_v", got, v2, 0.0, 1e-6);
    be->ops->download(be, got, pg->adam_m, N_PARAMS * sizeof(float));
    expect_close(backend, "adam_m", got, m1, 5e-8, 1e-6);
    /* the loop goes on from the best weights: those after the last step */
    be->ops->download(be, got, pg->params, N_PARAMS * sizeof(float));
    expect_close(backend, "params", got, p, 1e-6 * LR, 5e-7);

    be->ops->release(be, fs.dev_grad);
    be->ops->release(be, pg->params);
    be->ops->release(be, pg->grads);
    be->ops->release(be, pg->adam_m);
    be->ops->release(be, pg->adam_v);
    free(pg->best);
    free(fs.host_grad);
    free(tr.batch_ids);
    free(tr.batch_labels);
    free(tr.perm);
    lc_dt_free(tr.dt);
    lc_backend_close(be);
done:
    free(p0);
    free(got);
    free(g);
    free(p);
    free(m1);
    free(v2);
    free(g64);
}

static void test_trainer_adamw(void **state)
{
    (void)state;
    for (const char *const *name = lc_backend_list(); *name != NULL; name++) {
        check_trainer_adamw(*name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainer_adamw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
