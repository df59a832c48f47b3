/*
 * Attention-weight cross-entropy (method doc 4.1; the formulas beside the
 * reference in core/ref/ref_hybrid_impl.h, the row steps as in the cpu
 * backend's cpu_hybrid_xent.c).  Quadratic by nature: every query row
 * meets all its causal keys.  Query rows go in chunks; for a chunk [i0,
 * i0 + nq) and every (batch, query head) at once:
 *   A = scale K[0, i0 + nq) Q^T      batched SGEMM over the heads
 *   L = fk[0, kl) fq^T               the keys linear for some row
 *                                    (both key-major, so that the row
 *                                    kernel's threads read consecutive
 *                                    addresses)
 *   rows: teacher and student weights, the row loss, and L <- G
 *   dfq += G fk,  dfk[0, kl) += G^T fq
 * The chunk's score buffers are bounded by XENT_SCORE_BYTES (or the
 * context's attn_chunk rows).  Gradients accumulate chunk after chunk
 * in head-major buffers, then into dfq, dfk; dtheta from per-row sums.
 */
#include "backend-cuda/cuda_hybrid.cuh"

#define XENT_CLAMP 1e-12f
/* the chunk's two score buffers stay below this; larger than the
 * teacher's (LC_CUDA_ATTN_SCORE_BYTES) since a chunk's rows are the
 * parallelism of the row kernel */
#define XENT_SCORE_BYTES ((size_t)1 << 30)

/* Row idx = bh * nq + r (query i = i0 + r): A [BH, kend, nq] the scores,
 * L [BH, kl, nq] the linear weights, replaced by G on the linear keys (0
 * on the others).  loss (nullable) [B, T, H]; thr (rows from base) the
 * row's sum of G omega over the window. */
static __global__ void k_xent_rows(const float *A, float *L, float *loss, float *thr,
                                   const float *theta, float grad_scale, int i0, int nq,
                                   int kend, int kl, struct lc_hy_geom g)
{
    const int64_t n = (int64_t)g.BH * nq;

    LC_HY_FOR(idx, n)
    {
        const int bh = (int)(idx / nq);
        const int r = (int)(idx % nq);
        const int i = i0 + r;
        const int h = bh % g.H;
        /* key j at [j * ld] */
        const int64_t ld = nq;
        const float *s = A + (int64_t)bh * kend * nq + r;
        float *lr = kl > 0 ? L + (int64_t)bh * kl * nq + r : NULL;
        const int lo = lc_hy_window_start(i, g.W, g.mode);
        const float gamma = 1.0f / (1.0f + expf(-theta[h]));
        float tmax = s[0], m = s[lo * ld], tsum = 0.0f, Z = 0.0f, iz, it, rowsum, irs;
        float lsum = 0.0f, sum_da = 0.0f, ge = 0.0f;

        for (int j = 1; j <= i; j++) {
            tmax = s[j * ld] > tmax ? s[j * ld] : tmax;
        }
        for (int j = lo + 1; j <= i; j++) {
            m = s[j * ld] > m ? s[j * ld] : m;
        }
        for (int j = 0; j <= i; j++) {
            tsum += expf(s[j * ld] - tmax);
        }
        for (int j = lo; j <= i; j++) {
            Z += gamma * expf(s[j * ld] - m);
        }
        for (int j = 0; j < lo; j++) {
            Z += lr[j * ld];
        }
        iz = 1.0f / Z;
        it = 1.0f / tsum;
        /* the keys j > i have A_pred = 0, clamped */
        rowsum = (float)(g.T - 1 - i) * XENT_CLAMP;
        for (int j = 0; j <= i; j++) {
            float om = (j >= lo ? gamma * expf(s[j * ld] - m) : lr[j * ld]) * iz;
            float et = expf(s[j * ld] - tmax) * it;
            float oc = om < XENT_CLAMP ? XENT_CLAMP : om;
            rowsum += oc;
            lsum -= et * logf(oc);
        }
        irs = 1.0f / rowsum;
        for (int j = 0; j <= i; j++) {
            float om = (j >= lo ? gamma * expf(s[j * ld] - m) : lr[j * ld]) * iz;
            float et = expf(s[j * ld] - tmax) * it;
            sum_da += om >= XENT_CLAMP ? om * irs - et : 0.0f;
        }
        /* G_j = grad_scale (dA_j - sum_da) / Z; on window keys G_j omega_j
         * goes to dtheta */
        for (int j = lo; j <= i; j++) {
            float om = gamma * expf(s[j * ld] - m) * iz;
            float et = expf(s[j * ld] - tmax) * it;
            float da = om >= XENT_CLAMP ? (om * irs - et) / om : 0.0f;
            ge += grad_scale * (da - sum_da) * om;
        }
        for (int j = 0; j < lo; j++) {
            float om = lr[j * ld] * iz;
            float et = expf(s[j * ld] - tmax) * it;
            float da = om >= XENT_CLAMP ? (om * irs - et) / om : 0.0f;
            lr[j * ld] = grad_scale * (da - sum_da) * iz;
        }
        for (int j = lo; j < kl; j++) {
            lr[j * ld] = 0.0f;
        }
        thr[(int64_t)bh * g.P + g.W + i] = ge;
        if (loss != NULL) {
            loss[((int64_t)(bh / g.H) * g.T + i) * g.H + h] = lsum;
        }
    }
}

extern "C" const char *lc_cuda_hybrid_xent(struct lc_cuda_ctx *c, float *row_loss, float *dfq,
                                           float *dfk, float *dtheta, float grad_scale,
                                           const float *q, const float *k, const float *fq,
                                           const float *fk, const float *theta,
                                           const struct lc_attn_shape *s)
{
    const struct lc_hy_geom g = lc_hy_geom_of(s);
    const int T = g.T, W = g.W, D = g.D, F = g.F;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t nhd = (size_t)g.rows * D, nhf = (size_t)g.rows * F;
    int chunk = c->attn_chunk > 0 ? c->attn_chunk : T;
    float *w = NULL;
    float *Qh, *Kh, *FQh, *FKh, *Dq, *Dk, *thr, *A, *L;
    /* token 0 of head 0 (head bh's token i is P bh + i rows further) */
    const float *Qt, *Kt, *FQt, *FKt;
    float *Dqt, *Dkt;
    const char *err;
    size_t total;

    if (chunk > T) {
        chunk = T;
    }
    while (chunk > 1 && (size_t)g.BH * chunk * 2 * T * sizeof(float) > XENT_SCORE_BYTES) {
        chunk = (chunk + 1) / 2;
    }
    total = 2 * lc_hy_round(nhd) + 4 * lc_hy_round(nhf) + lc_hy_round((size_t)g.nb * W) +
            2 * lc_hy_round((size_t)g.BH * chunk * T);
    w = (float *)lc_cuda_scratch(c, total * sizeof(float));
    if (w == NULL) {
        return "out of device memory for the attention cross-entropy";
    }
    Qh = lc_hy_take(&w, nhd);
    Kh = lc_hy_take(&w, nhd);
    FQh = lc_hy_take(&w, nhf);
    FKh = lc_hy_take(&w, nhf);
    Dq = lc_hy_take(&w, nhf);
    Dk = lc_hy_take(&w, nhf);
    thr = lc_hy_take(&w, (size_t)g.nb * W);
    A = lc_hy_take(&w, (size_t)g.BH * chunk * T);
    L = lc_hy_take(&w, (size_t)g.BH * chunk * T);
    Qt = Qh + 2 * (size_t)W * D;
    Kt = Kh + 2 * (size_t)W * D;
    FQt = FQh + 2 * (size_t)W * F;
    FKt = FKh + 2 * (size_t)W * F;
    Dqt = Dq + 2 * (size_t)W * F;
    Dkt = Dk + 2 * (size_t)W * F;

    const struct lc_hy_input in[] = {
        {Qh, q, g.H, D}, {Kh, k, g.Hkv, D}, {FQh, fq, g.H, F}, {FKh, fk, g.H, F}};
    err = lc_hy_pack_all(c, &g, in, sizeof(in) / sizeof(in[0]));
    if (err != NULL) {
        return err;
    }
    err = lc_hy_zero(c, Dq, nhf);
    if (err != NULL) {
        return err;
    }
    err = lc_hy_zero(c, Dk, nhf);
    if (err != NULL) {
        return err;
    }
    err = lc_hy_zero(c, thr, (size_t)g.nb * W);
    if (err != NULL) {
        return err;
    }

    for (int i0 = 0; i0 < T; i0 += chunk) {
        const int nq = T - i0 < chunk ? T - i0 : chunk;
        const int kend = i0 + nq;
        /* the window start grows with i: the last row has the most linear keys */
        const int kl = lc_hy_window_start(kend - 1, W, g.mode);

        err = lc_hy_gemm(c, 0, 1, kend, nq, D, scale, Kt, D, g.P * D, Qt + (size_t)i0 * D, D,
                         g.P * D, 0.0f, A, nq, (long long)nq * kend, g.BH);
        if (err != NULL) {
            return err;
        }
        if (kl > 0) {
            err = lc_hy_gemm(c, 0, 1, kl, nq, F, 1.0f, FKt, F, g.P * F, FQt + (size_t)i0 * F, F,
                             g.P * F, 0.0f, L, nq, (long long)nq * kl, g.BH);
            if (err != NULL) {
                return err;
            }
        }
        LC_LAUNCH(k_xent_rows, lc_hy_blocks((int64_t)g.BH * nq), LC_CUDA_EW_THREADS, c->stream)(
            A, L, row_loss, thr, theta, grad_scale, i0, nq, kend, kl, g);
        err = lc_cuda_launched();
        if (err != NULL) {
            return err;
        }
        if (kl > 0) {
            err = lc_hy_gemm(c, 1, 0, nq, F, kl, 1.0f, L, nq, (long long)nq * kl, FKt, F, g.P * F,
                             1.0f, Dqt + (size_t)i0 * F, F, g.P * F, g.BH);
            if (err != NULL) {
                return err;
            }
            err = lc_hy_gemm(c, 0, 0, kl, F, nq, 1.0f, L, nq, (long long)nq * kl,
                             FQt + (size_t)i0 * F, F, g.P * F, 1.0f, Dkt, F, g.P * F, g.BH);
            if (err != NULL) {
                return err;
            }
        }
    }
    if (dfq != NULL) {
        err = lc_hy_unpack(c, dfq, Dq + (size_t)W * F, &g, F, 1);
        if (err != NULL) {
            return err;
        }
    }
    if (dfk != NULL) {
        err = lc_hy_unpack(c, dfk, Dk + (size_t)W * F, &g, F, 1);
        if (err != NULL) {
            return err;
        }
    }
    if (dtheta != NULL) {
        err = lc_hy_dtheta(c, dtheta, thr, theta, &g);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}
