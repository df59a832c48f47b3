/*
 * The teacher's softmax attention on the cpu backend (generic and each
 * vector set), beyond the comparison with the reference in float and in
 * double (tests/test_backend_ops.c): the first query's output is its key's
 * value, decoding position by position gives the rows of the full pass,
 * and 1, 2 and 3 threads give the same bits.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "tests/lc_test.h"

struct attn_shape {
    int B, Tq, Tk, H, Hkv, D, q_pos0;
    float qscale; /* spread of the scores */
};

struct attn_data {
    size_t nq, nkv;
    float *q, *k, *v;
};

static void make_data(struct attn_data *d, const struct attn_shape *s, uint64_t seed)
{
    d->nq = (size_t)s->B * s->Tq * s->H * s->D;
    d->nkv = (size_t)s->B * s->Tk * s->Hkv * s->D;
    d->q = lc_test_new_f32(d->nq);
    d->k = lc_test_new_f32(d->nkv);
    d->v = lc_test_new_f32(d->nkv);
    lc_test_fill_normal(d->q, d->nq, seed, s->qscale);
    lc_test_fill_normal(d->k, d->nkv, seed + 1, 1.0f);
    lc_test_fill_normal(d->v, d->nkv, seed + 2, 1.0f);
}

static void free_data(struct attn_data *d)
{
    free(d->q);
    free(d->k);
    free(d->v);
}

/* The first query sees only the first key: its output is that key's value. */
static void test_attn_first_query(void **state)
{
    struct attn_shape sh = {1, 9, 9, 4, 2, 8, 0, 3.0f};
    struct lc_test_cpu_ref *b = *state;
    struct attn_data d;

    make_data(&d, &sh, 99);
    for (int i = 0; i < b->nisas; i++) {
        float *y = lc_test_new_f32(d.nq);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->attn_fwd(b->cpu, y, d.q, d.k, d.v, 1, 9, 9, 4, 2, 8, 0);
        for (int h = 0; h < 4; h++) {
            assert_int_equal(lc_test_check_close("first query", y + h * 8, d.v + (h / 2) * 8, 8,
                                                 1e-6, 1e-6),
                             0);
        }
        free(y);
    }
    free_data(&d);
}

/* Decoding: query i alone, at q_pos0 = i over the first i+1 keys, gives
 * row i of the full causal pass. */
static void test_attn_decode_matches_prefill(void **state)
{
    enum { T = 75, H = 4, HKV = 2, D = 16 };
    struct attn_shape sh = {1, T, T, H, HKV, D, 0, 1.0f};
    struct lc_test_cpu_ref *b = *state;
    struct attn_data d;

    make_data(&d, &sh, 123);
    for (int i = 0; i < b->nisas; i++) {
        float *full = lc_test_new_f32(d.nq);
        float *one = lc_test_new_f32((size_t)H * D);
        lc_test_set_isa(b->cpu, b->isas[i]);
        b->cpu->ops->attn_fwd(b->cpu, full, d.q, d.k, d.v, 1, T, T, H, HKV, D, 0);
        for (int t = 0; t < T; t++) {
            b->cpu->ops->attn_fwd(b->cpu, one, d.q + (size_t)t * H * D, d.k, d.v, 1, 1, t + 1, H,
                                  HKV, D, t);
            assert_int_equal(
                lc_test_check_close("decode row", one, full + (size_t)t * H * D, H * D, 1e-6, 1e-5),
                0);
        }
        free(full);
        free(one);
    }
    free_data(&d);
}

static void test_attn_thread_independence(void **state)
{
    static const struct attn_shape shapes[] = {
        {2, 300, 300, 8, 2, 32, 0, 1.0f},
        {1, 1, 500, 8, 8, 128, 499, 1.0f},
        {1, 200, 200, 8, 4, 8, 0, 1.0f},
        /* decoding rows, large enough for a team: one thread takes all heads
         * at once, a team one KV head each; small heads (8 lanes) */
        {2, 3, 3000, 8, 4, 8, 2997, 1.0f},
    };
    struct lc_test_cpu_ref *b = *state;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct attn_shape *sh = &shapes[s];
        struct attn_data d;
        make_data(&d, sh, 200 + s);
        for (int i = 0; i < b->nisas; i++) {
            float *one = lc_test_new_f32(d.nq);
            lc_test_set_isa(b->cpu, b->isas[i]);
            lc_set_num_threads(1);
            b->cpu->ops->attn_fwd(b->cpu, one, d.q, d.k, d.v, sh->B, sh->Tq, sh->Tk, sh->H,
                                  sh->Hkv, sh->D, sh->q_pos0);
            for (int nt = 2; nt <= 3; nt++) {
                float *many = lc_test_new_f32(d.nq);
                lc_set_num_threads(nt);
                b->cpu->ops->attn_fwd(b->cpu, many, d.q, d.k, d.v, sh->B, sh->Tq, sh->Tk, sh->H,
                                      sh->Hkv, sh->D, sh->q_pos0);
                assert_memory_equal(one, many, d.nq * sizeof(float));
                free(many);
            }
            free(one);
        }
        free_data(&d);
    }
    lc_set_num_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attn_first_query),
        cmocka_unit_test(test_attn_decode_matches_prefill),
        cmocka_unit_test(test_attn_thread_independence),
    };
    return cmocka_run_group_tests(tests, lc_test_cpu_ref_setup, lc_test_cpu_ref_teardown);
}
