/*
 * Hybrid attention cases shared by the tests that compare a backend's
 * hybrid attention with the reference (test_hybrid: cpu, test_cuda: cuda).
 * Built with the float64 reference ($(LC_REF_HYBRID_F64_SOURCES)).
 */
#ifndef LC_TESTS_LC_TEST_HYBRID_H
#define LC_TESTS_LC_TEST_HYBRID_H

#include "tests/lc_test.h"

/* A hybrid attention case for comparing backends: seeded inputs (normal q,
 * k, v, theta and dy; feature maps uniform in [0.01, 0.3) so that window
 * and linear terms weigh alike) and every output of the forward, the
 * backward and the cross-entropy. */
struct lc_test_hy_in {
    struct lc_attn_shape s;
    size_t nq, nk, nf, nm; /* [B,T,H,D], [B,T,Hkv,D], [B,T,H,F], [B,T,H] */
    float *q, *k, *v, *fq, *fk, *theta, *dy;
};
void lc_test_hy_in_make(struct lc_test_hy_in *in, int B, int T, int H, int Hkv, int D, int F, int W,
                        int mode, uint64_t seed);
void lc_test_hy_in_free(struct lc_test_hy_in *in);
/* keys p and p+1 with the same score for query p+2, exactly whatever the
 * order of summation: a two-way tie for the window max of row p+2 (for
 * other queries the two keys differ, and so do the keys of ties made at
 * other positions) */
void lc_test_hy_make_tie(struct lc_test_hy_in *in, int p);

struct lc_test_hy_out {
    float *y, *mx, *den, *dq, *dk, *dv, *dfq, *dfk, *dth, *loss, *xdfq, *xdfk, *xdth;
};
/* all outputs, zeroed */
void lc_test_hy_out_alloc(struct lc_test_hy_out *o, const struct lc_test_hy_in *in);
void lc_test_hy_out_free(struct lc_test_hy_out *o);
/* The fixed nonzero values the accumulating outputs (dtheta, and the
 * cross-entropy's dfq, dfk and dtheta) start from. */
void lc_test_hy_init_acc(struct lc_test_hy_out *o, const struct lc_test_hy_in *in);
/* The reference outputs (allocated here): the ref backend's forward,
 * backward and cross-entropy (weight 0.75) from lc_test_hy_init_acc,
 * with the window-factor gradients, which sum G e over every row and key
 * with cancellation, from the float64 reference. */
void lc_test_hy_ref(struct lc_backend *ref, const struct lc_test_hy_in *in,
                    struct lc_test_hy_out *o);
/* Compares every output with lc_test_check_rel (the window-factor
 * gradients, sums over all B*T rows, with a tolerance growing with
 * sqrt(rows)); returns the number of mismatches. */
size_t lc_test_hy_compare(const char *tag, const struct lc_test_hy_out *got,
                          const struct lc_test_hy_out *want, const struct lc_test_hy_in *in,
                          double tol);

#endif /* LC_TESTS_LC_TEST_HYBRID_H */
