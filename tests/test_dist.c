/*
 * Ranks without MPI: the layouts of stage 1 over ranks (every layer in
 * exactly one stage, contiguous, as even as possible; the automatic stage
 * count; bad requests refused), and a one-rank communicator whose
 * collectives are copies.  The collectives across processes are tested by
 * tests/cli_dist.sh under mpirun.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "tests/lc_test.h"

/* every unit in exactly one stage, in order, sizes differing by at most 1 */
static void check_cover(const struct lc_layout *lo)
{
    int next_unit = 0;
    int next_layer = 0;
    int smallest = 1 << 30;
    int largest = 0;

    for (int g = 0; g < lo->stages; g++) {
        int u0, u1, l0, l1;
        lc_layout_units(lo, g, &u0, &u1);
        lc_layout_layers(lo, g, &l0, &l1);
        assert_int_equal(u0, next_unit);
        assert_int_equal(l0, next_layer);
        assert_true(u1 > u0);
        assert_true(l1 > l0);
        smallest = u1 - u0 < smallest ? u1 - u0 : smallest;
        largest = u1 - u0 > largest ? u1 - u0 : largest;
        next_unit = u1;
        next_layer = l1;
    }
    assert_int_equal(next_unit, lo->n_units);
    assert_int_equal(next_layer, lo->n_layers);
    assert_true(largest - smallest <= 1);
    assert_int_equal(lo->stages * lo->replicas, lo->ranks);
}

static void test_layouts(void **state)
{
    struct lc_layout lo;
    struct lc_error err = {0};
    int l0, l1;
    (void)state;

    /* 5 layers on 2 ranks: stages of 3 and 2 layers */
    assert_int_equal(lc_layout_make(&lo, 5, 2, 0, 0, &err), LC_OK);
    assert_int_equal(lo.stages, 2);
    assert_int_equal(lo.replicas, 1);
    lc_layout_layers(&lo, 0, &l0, &l1);
    assert_int_equal(l0, 0);
    assert_int_equal(l1, 3);
    lc_layout_layers(&lo, 1, &l0, &l1);
    assert_int_equal(l0, 3);
    assert_int_equal(l1, 5);
    check_cover(&lo);

    /* 6 ranks, 5 layers: the largest divisor of 6 up to 5 is 3 stages of 2 replicas */
    assert_int_equal(lc_layout_make(&lo, 5, 6, 0, 0, &err), LC_OK);
    assert_int_equal(lo.stages, 3);
    assert_int_equal(lo.replicas, 2);
    check_cover(&lo);
    assert_int_equal(lc_layout_stage(&lo, 4), 1);
    assert_int_equal(lc_layout_replica(&lo, 4), 1);

    /* block-wise: 5 layers in blocks of 2 are 3 blocks (the last of 1) */
    assert_int_equal(lc_layout_make(&lo, 5, 3, 2, 0, &err), LC_OK);
    assert_int_equal(lo.n_units, 3);
    assert_int_equal(lo.stages, 3);
    lc_layout_unit_layers(&lo, 2, &l0, &l1);
    assert_int_equal(l0, 4);
    assert_int_equal(l1, 5);
    check_cover(&lo);

    /* 80 layers in blocks of 5 on 8 ranks; 126 in blocks of 9 on 14 */
    assert_int_equal(lc_layout_make(&lo, 80, 8, 5, 0, &err), LC_OK);
    assert_int_equal(lo.n_units, 16);
    assert_int_equal(lo.stages, 8);
    check_cover(&lo);
    assert_int_equal(lc_layout_make(&lo, 126, 14, 9, 0, &err), LC_OK);
    assert_int_equal(lo.n_units, 14);
    check_cover(&lo);

    /* asked for: 2 stages of 2 replicas on 4 ranks */
    assert_int_equal(lc_layout_make(&lo, 5, 4, 0, 2, &err), LC_OK);
    assert_int_equal(lo.stages, 2);
    assert_int_equal(lo.replicas, 2);
    check_cover(&lo);
    /* one rank: one stage */
    assert_int_equal(lc_layout_make(&lo, 32, 1, 0, 0, &err), LC_OK);
    assert_int_equal(lo.stages, 1);
    check_cover(&lo);
    /* a prime number of ranks above the units: one stage, all replicas */
    assert_int_equal(lc_layout_make(&lo, 2, 7, 0, 0, &err), LC_OK);
    assert_int_equal(lo.stages, 1);
    assert_int_equal(lo.replicas, 7);

    /* refused: stages not dividing the ranks, more stages than units,
     * blocks longer than the model */
    assert_int_equal(lc_layout_make(&lo, 5, 4, 0, 3, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "divide"));
    assert_int_equal(lc_layout_make(&lo, 2, 4, 0, 4, &err), LC_ERR_ARG);
    assert_int_equal(lc_layout_make(&lo, 5, 2, 6, 0, &err), LC_ERR_ARG);
    assert_non_null(strstr(err.msg, "--block-layers"));
}

static void test_self_comm(void **state)
{
    struct lc_comm *c = NULL;
    struct lc_comm *sub = NULL;
    struct lc_error err = {0};
    const double send[3] = {1.5, -2.0, 3.25};
    double recv[3] = {0};
    int64_t v[2] = {4, -7};
    int src = -1;
    size_t bytes = 0;
    (void)state;

    assert_int_equal(lc_comm_new_self(&c, &err), LC_OK);
    assert_int_equal(lc_comm_rank(c), 0);
    assert_int_equal(lc_comm_size(c), 1);
    assert_int_equal(lc_comm_split(c, 3, 0, &sub, &err), LC_OK);
    assert_int_equal(lc_comm_size(sub), 1);
    assert_int_equal(lc_comm_allgather(c, NULL, send, recv, sizeof(send), &err), LC_OK);
    assert_memory_equal(send, recv, sizeof(send));
    memset(recv, 0, sizeof(recv));
    assert_int_equal(lc_comm_gather(sub, send, recv, sizeof(send), 0, &err), LC_OK);
    assert_memory_equal(send, recv, sizeof(send));
    assert_int_equal(lc_comm_bcast(c, NULL, recv, sizeof(recv), 0, &err), LC_OK);
    assert_memory_equal(send, recv, sizeof(send));
    assert_int_equal(lc_comm_allreduce_max(c, v, 2, &err), LC_OK);
    assert_int_equal(v[0], 4);
    assert_int_equal(v[1], -7);
    assert_int_equal(lc_comm_barrier(c, &err), LC_OK);
    assert_int_equal(lc_comm_probe(c, -1, 5, &src, &bytes), 0);
    /* nobody to talk to */
    assert_int_equal(lc_comm_send(c, NULL, send, sizeof(send), 1, 5, &err), LC_ERR_ARG);
    lc_comm_free(sub);
    lc_comm_free(c);
}

/* Not started by an MPI launcher: one rank, whatever the build. */
static void test_open_single(void **state)
{
    struct lc_dist *d = NULL;
    struct lc_error err = {0};
    (void)state;

    unsetenv("OMPI_COMM_WORLD_RANK");
    unsetenv("PMI_RANK");
    unsetenv("PMIX_RANK");
    assert_int_equal(lc_dist_open(&d, NULL, NULL, &err), LC_OK);
    assert_int_equal(lc_dist_rank(d), 0);
    assert_int_equal(lc_dist_size(d), 1);
    assert_int_equal(lc_dist_local_rank(d), 0);
    assert_string_equal(lc_dist_describe(d), "one process");
    lc_dist_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_self_comm),
        cmocka_unit_test(test_open_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
