/*
 * The teacher's softmax attention: the cpu kernel (generic and AVX-512)
 * against the reference in float and in double, on shapes with grouped
 * heads, ragged query blocks, decoding (Tq = 1, q_pos0 > 0) and chunked
 * prefill; decoding position by position against the full pass; and 1,
 * 2 and 3 threads, which must give the same bits.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "core/ref/ref_f64.h"
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

static void test_attn_parity(void **state)
{
    static const struct attn_shape shapes[] = {
        {1, 1, 1, 1, 1, 1, 0, 1.0f},     /* one key */
        {2, 5, 5, 4, 2, 8, 0, 1.0f},     /* grouped heads, tiny head dim */
        {1, 70, 70, 8, 4, 8, 0, 1.0f},   /* two query blocks, the second ragged */
        {1, 1, 37, 4, 1, 16, 36, 1.0f},  /* decoding: one query at position 36 */
        {2, 3, 20, 6, 3, 34, 17, 1.0f},  /* chunked prefill: positions 17..19 */
        {1, 4, 10, 2, 1, 8, 3, 1.0f},    /* keys beyond the last query are unseen */
        {1, 5, 3, 2, 2, 4, 0, 1.0f},     /* fewer keys than queries */
        {1, 130, 130, 2, 2, 128, 0, 1.0f},
        {1, 33, 33, 2, 1, 64, 0, 30.0f}, /* sharp softmax: needs the max */
        {1, 9, 12, 12, 2, 8, 3, 1.0f},   /* 6 heads per KV head: items of 3 */
        {2, 20, 20, 16, 2, 16, 0, 1.0f}, /* 8 heads per KV head: items of 4 */
        {1, 7, 7, 5, 5, 12, 0, 1.0f},    /* no grouping */
    };
    struct lc_test_cpu_ref *b = *state;

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct attn_shape *sh = &shapes[s];
        struct attn_data d;
        float *y_ref = NULL;
        double *q64 = NULL;
        double *k64 = NULL;
        double *v64 = NULL;
        double *y64 = NULL;
        float *y64f = NULL;
        char what[160];

        make_data(&d, sh, 10 * s + 1);
        y_ref = lc_test_new_f32(d.nq);
        q64 = lc_test_new_f64(d.nq);
        k64 = lc_test_new_f64(d.nkv);
        v64 = lc_test_new_f64(d.nkv);
        y64 = lc_test_new_f64(d.nq);
        y64f = lc_test_new_f32(d.nq);
        for (size_t i = 0; i < d.nq; i++) {
            q64[i] = d.q[i];
        }
        for (size_t i = 0; i < d.nkv; i++) {
            k64[i] = d.k[i];
            v64[i] = d.v[i];
        }
        lc_ref_attn_fwd(b->ref, y_ref, d.q, d.k, d.v, sh->B, sh->Tq, sh->Tk, sh->H, sh->Hkv,
                        sh->D, sh->q_pos0);
        lc_ref_attn_fwd_f64(NULL, y64, q64, k64, v64, sh->B, sh->Tq, sh->Tk, sh->H, sh->Hkv,
                            sh->D, sh->q_pos0);
        for (size_t i = 0; i < d.nq; i++) {
            y64f[i] = (float)y64[i];
        }
        snprintf(what, sizeof(what), "ref attn B%d Tq%d Tk%d H%d Hkv%d D%d pos%d vs double",
                 sh->B, sh->Tq, sh->Tk, sh->H, sh->Hkv, sh->D, sh->q_pos0);
        assert_int_equal(lc_test_check_close(what, y_ref, y64f, d.nq, 1e-6, 1e-5), 0);
        for (int i = 0; i < b->nisas; i++) {
            float *y = lc_test_new_f32(d.nq);
            for (size_t j = 0; j < d.nq; j++) {
                y[j] = NAN; /* "=" output: overwritten everywhere */
            }
            lc_test_set_isa(b->cpu, b->isas[i]);
            b->cpu->ops->attn_fwd(b->cpu, y, d.q, d.k, d.v, sh->B, sh->Tq, sh->Tk, sh->H, sh->Hkv,
                                  sh->D, sh->q_pos0);
            snprintf(what, sizeof(what), "cpu attn [%s] B%d Tq%d Tk%d H%d Hkv%d D%d pos%d",
                     lc_test_isa_name(b->isas[i]), sh->B, sh->Tq, sh->Tk, sh->H, sh->Hkv, sh->D,
                     sh->q_pos0);
            assert_int_equal(lc_test_check_close(what, y, y64f, d.nq, 1e-5, 1e-4), 0);
            assert_int_equal(lc_test_check_close(what, y, y_ref, d.nq, 1e-5, 1e-4), 0);
            free(y);
        }
        free_data(&d);
        free(y_ref);
        free(q64);
        free(k64);
        free(v64);
        free(y64);
        free(y64f);
    }
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
        cmocka_unit_test(test_attn_parity),
        cmocka_unit_test(test_attn_first_query),
        cmocka_unit_test(test_attn_decode_matches_prefill),
        cmocka_unit_test(test_attn_thread_independence),
    };
    return cmocka_run_group_tests(tests, lc_test_cpu_ref_setup, lc_test_cpu_ref_teardown);
}
