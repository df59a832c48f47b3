/* Hybrid attention cases (lc_test_hybrid.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/ref/ref_hybrid_f64.h"
#include "tests/lc_test_hybrid.h"

void lc_test_hy_in_make(struct lc_test_hy_in *in, int B, int T, int H, int Hkv, int D, int F, int W,
                        int mode, uint64_t seed)
{
    struct lc_attn_shape s = {B, T, H, Hkv, D, F, W, mode};

    in->s = s;
    in->nq = (size_t)B * T * H * D;
    in->nk = (size_t)B * T * Hkv * D;
    in->nf = (size_t)B * T * H * F;
    in->nm = (size_t)B * T * H;
    in->q = lc_test_new_f32(in->nq);
    in->k = lc_test_new_f32(in->nk);
    in->v = lc_test_new_f32(in->nk);
    in->fq = lc_test_new_f32(in->nf);
    in->fk = lc_test_new_f32(in->nf);
    in->theta = lc_test_new_f32((size_t)H);
    in->dy = lc_test_new_f32(in->nq);
    lc_test_fill_normal(in->q, in->nq, seed + 1, 1.0f);
    lc_test_fill_normal(in->k, in->nk, seed + 2, 1.0f);
    lc_test_fill_normal(in->v, in->nk, seed + 3, 1.0f);
    /* feature maps are positive; these sizes keep window and linear terms
     * of comparable weight */
    lc_test_fill_uniform(in->fq, in->nf, seed + 4, 0.01f, 0.3f);
    lc_test_fill_uniform(in->fk, in->nf, seed + 5, 0.01f, 0.3f);
    lc_test_fill_normal(in->theta, (size_t)H, seed + 6, 1.0f);
    lc_test_fill_normal(in->dy, in->nq, seed + 7, 1.0f);
}

void lc_test_hy_in_free(struct lc_test_hy_in *in)
{
    free(in->q);
    free(in->k);
    free(in->v);
    free(in->fq);
    free(in->fk);
    free(in->theta);
    free(in->dy);
}

void lc_test_hy_make_tie(struct lc_test_hy_in *in, int p)
{
    const struct lc_attn_shape *s = &in->s;
    /* A dyadic query value near 2/sqrt(D) (exactly 1 for D = 4), so that
     * every product and partial sum of the tied scores is exact and any
     * summation order (blocked GEMM kernels differ by column) gives the
     * same score for both keys. */
    const float qv = roundf(32.0f * 2.0f / sqrtf((float)s->D)) / 32.0f;
    /* Keys p and p+1 are 1.5 + e and 1.5 - e' along dimensions 0 and 1
     * (e on 0, -e on 1): query p+2 (equal in both dimensions) sees the
     * same score 1.5 qv D for both, while any other query, and the keys
     * of another tie, differ.  With D = 1 the keys are equal: one product
     * per score is exact anyway. */
    const float e = s->D > 1 ? 0.125f * (float)(1 + p % 5) : 0.0f;
    const float e1 = s->D > 1 ? 0.75f : 0.0f;

    for (int b = 0; b < s->B; b++) {
        for (int g = 0; g < s->Hkv; g++) {
            float *k0 = in->k + lc_test_at4(s, b, p, s->Hkv, g, s->D);
            float *k1 = in->k + lc_test_at4(s, b, p + 1, s->Hkv, g, s->D);
            for (int d = 0; d < s->D; d++) {
                k0[d] = 1.5f;
                k1[d] = 1.5f;
            }
            if (s->D > 1) {
                k0[0] += e;
                k0[1] -= e;
                k1[0] -= e1;
                k1[1] += e1;
            }
        }
        for (int h = 0; h < s->H; h++) {
            for (int d = 0; d < s->D; d++) {
                in->q[lc_test_at4(s, b, p + 2, s->H, h, s->D) + (size_t)d] = qv;
            }
        }
    }
}

void lc_test_hy_out_free(struct lc_test_hy_out *o)
{
    free(o->y);
    free(o->mx);
    free(o->den);
    free(o->dq);
    free(o->dk);
    free(o->dv);
    free(o->dfq);
    free(o->dfk);
    free(o->dth);
    free(o->loss);
    free(o->xdfq);
    free(o->xdfk);
    free(o->xdth);
}

size_t lc_test_hy_compare(const char *tag, const struct lc_test_hy_out *got,
                          const struct lc_test_hy_out *want, const struct lc_test_hy_in *in,
                          double tol)
{
    size_t bad = 0;
    char name[200];
#define CMP(field, n)                                                                              \
    do {                                                                                           \
        snprintf(name, sizeof(name), "%s %s", tag, #field);                                        \
        bad += lc_test_check_rel(name, got->field, want->field, n, tol);                           \
    } while (0)
    CMP(y, in->nq);
    CMP(mx, in->nm);
    CMP(den, in->nm);
    CMP(dq, in->nq);
    CMP(dk, in->nk);
    CMP(dv, in->nk);
    CMP(dfq, in->nf);
    CMP(dfk, in->nf);
    CMP(loss, in->nm);
    CMP(xdfq, in->nf);
    CMP(xdfk, in->nf);
#undef CMP
    {
        /* dtheta sums over all B*T rows (and is exactly 0, i.e. rounding
         * noise, when no key is linear): rounding grows with sqrt(rows) */
        const double rows = sqrt((double)in->s.B * in->s.T);
        const double sd = lc_test_max_abs(want->dth, (size_t)in->s.H);
        const double sx = lc_test_max_abs(want->xdth, (size_t)in->s.H);

        snprintf(name, sizeof(name), "%s dtheta", tag);
        bad += lc_test_check_close(name, got->dth, want->dth, (size_t)in->s.H,
                                   tol * rows * (sd > 1.0 ? sd : 1.0), tol);
        snprintf(name, sizeof(name), "%s xent dtheta", tag);
        bad += lc_test_check_close(name, got->xdth, want->xdth, (size_t)in->s.H,
                                   tol * rows * (sx > 1.0 ? sx : 1.0), tol);
    }
    return bad;
}

void lc_test_hy_out_alloc(struct lc_test_hy_out *o, const struct lc_test_hy_in *in)
{
    o->y = lc_test_new_f32(in->nq);
    o->mx = lc_test_new_f32(in->nm);
    o->den = lc_test_new_f32(in->nm);
    o->dq = lc_test_new_f32(in->nq);
    o->dk = lc_test_new_f32(in->nk);
    o->dv = lc_test_new_f32(in->nk);
    o->dfq = lc_test_new_f32(in->nf);
    o->dfk = lc_test_new_f32(in->nf);
    o->dth = lc_test_new_f32((size_t)in->s.H);
    o->loss = lc_test_new_f32(in->nm);
    o->xdfq = lc_test_new_f32(in->nf);
    o->xdfk = lc_test_new_f32(in->nf);
    o->xdth = lc_test_new_f32((size_t)in->s.H);
}

void lc_test_hy_init_acc(struct lc_test_hy_out *o, const struct lc_test_hy_in *in)
{
    for (int h = 0; h < in->s.H; h++) {
        o->dth[h] = 0.5f;
        o->xdth[h] = -0.25f;
    }
    lc_test_fill_uniform(o->xdfq, in->nf, 9, -0.1f, 0.1f);
    lc_test_fill_uniform(o->xdfk, in->nf, 10, -0.1f, 0.1f);
}

void lc_test_hy_ref(struct lc_backend *ref, const struct lc_test_hy_in *in,
                    struct lc_test_hy_out *o)
{
    const struct lc_backend_ops *ops = ref->ops;
    const size_t H = (size_t)in->s.H;
    double *q = lc_test_to_f64(in->q, in->nq);
    double *k = lc_test_to_f64(in->k, in->nk);
    double *v = lc_test_to_f64(in->v, in->nk);
    double *fq = lc_test_to_f64(in->fq, in->nf);
    double *fk = lc_test_to_f64(in->fk, in->nf);
    double *th = lc_test_to_f64(in->theta, H);
    double *dy = lc_test_to_f64(in->dy, in->nq);
    double *y = lc_test_new_f64(in->nq);
    double *mx = lc_test_new_f64(in->nm);
    double *den = lc_test_new_f64(in->nm);
    double *dth = lc_test_new_f64(H);
    double *xdth = lc_test_new_f64(H);

    lc_test_hy_out_alloc(o, in);
    lc_test_hy_init_acc(o, in);
    ops->hybrid_fwd(ref, o->y, o->mx, o->den, in->q, in->k, in->v, in->fq, in->fk, in->theta,
                    &in->s);
    ops->hybrid_bwd(ref, o->dq, o->dk, o->dv, o->dfq, o->dfk, o->dth, in->dy, o->y, o->mx, o->den,
                    in->q, in->k, in->v, in->fq, in->fk, in->theta, &in->s);
    ops->hybrid_xent(ref, o->loss, o->xdfq, o->xdfk, o->xdth, 0.75f, in->q, in->k, in->fq, in->fk,
                     in->theta, &in->s);
    for (size_t h = 0; h < H; h++) {
        dth[h] = 0.5;
        xdth[h] = -0.25;
    }
    lc_ref_hybrid_fwd_f64(y, mx, den, q, k, v, fq, fk, th, &in->s);
    lc_ref_hybrid_bwd_f64(NULL, NULL, NULL, NULL, NULL, dth, dy, y, mx, den, q, k, v, fq, fk, th,
                          &in->s);
    lc_ref_hybrid_xent_f64(NULL, NULL, NULL, xdth, 0.75, q, k, fq, fk, th, &in->s);
    for (size_t h = 0; h < H; h++) {
        o->dth[h] = (float)dth[h];
        o->xdth[h] = (float)xdth[h];
    }
    free(q);
    free(k);
    free(v);
    free(fq);
    free(fk);
    free(th);
    free(dy);
    free(y);
    free(mx);
    free(den);
    free(dth);
    free(xdth);
}
