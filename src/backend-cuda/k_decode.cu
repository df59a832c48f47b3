/*
 * Constant-memory decoding: one query token against the window cache and
 * the linear state (method doc 7.3), and the update that moves keys from
 * the window into the state.  Three small kernels for a step (scores per
 * (head, cache entry), the window weights per head, the output per (head,
 * dim)); the state update is a batched SGEMM plus a kernel for z, each
 * summing over the new rows in row order.
 */
#include "backend-cuda/cuda_hybrid.cuh"

/* sc [H, ncache] = q_h . kc[c, g] / sqrt(D) */
static __global__ void k_dec_scores(float *sc, const float *q, const float *kc, int ncache, int H,
                                    int Hkv, int D)
{
    const int64_t n = (int64_t)H * ncache;
    const int rep = H / Hkv;
    const float scale = 1.0f / sqrtf((float)D);

    LC_HY_FOR(idx, n)
    {
        const int h = (int)(idx / ncache);
        const int cc = (int)(idx % ncache);
        const float *qh = q + (size_t)h * D;
        const float *kr = kc + ((size_t)cc * Hkv + h / rep) * D;
        float acc = 0.0f;

        for (int d = 0; d < D; d++) {
            acc += qh[d] * kr[d];
        }
        sc[idx] = acc * scale;
    }
}

/* sc[h] <- gamma exp(sc - max), wsum[h] = their sum */
static __global__ void k_dec_weights(float *sc, float *wsum, const float *theta, int ncache,
                                     int H)
{
    LC_HY_FOR(h, H)
    {
        float *e = sc + h * ncache;
        const float gamma = 1.0f / (1.0f + expf(-theta[h]));
        float m = e[0];
        float sum = 0.0f;

        for (int c = 1; c < ncache; c++) {
            m = e[c] > m ? e[c] : m;
        }
        for (int c = 0; c < ncache; c++) {
            e[c] = gamma * expf(e[c] - m);
            sum += e[c];
        }
        wsum[h] = sum;
    }
}

/* y[h, d] = (fq_h^T S_h[:, d] + sum_c e_c vc[c, g, d]) / (fq_h . z_h + sum e) */
static __global__ void k_dec_out(float *y, const float *fq, const float *S, const float *z,
                                 const float *sc, const float *wsum, const float *vc, int ncache,
                                 int H, int Hkv, int D, int F)
{
    const int64_t n = (int64_t)H * D;
    const int rep = H / Hkv;

    LC_HY_FOR(idx, n)
    {
        const int h = (int)(idx / D);
        const int d = (int)(idx % D);
        const float *fqh = fq + (size_t)h * F;
        const float *Sh = S + (size_t)h * F * D;
        const float *zh = z + (size_t)h * F;
        float acc = 0.0f;
        float lin = 0.0f;
        float den;

        for (int e = 0; e < F; e++) {
            acc += fqh[e] * Sh[(size_t)e * D + d];
            lin += fqh[e] * zh[e];
        }
        den = ncache > 0 ? wsum[h] + lin : lin;
        for (int c = 0; c < ncache; c++) {
            acc += sc[(size_t)h * ncache + c] * vc[((size_t)c * Hkv + h / rep) * D + d];
        }
        y[idx] = acc / den;
    }
}

extern "C" const char *lc_cuda_hybrid_decode(struct lc_cuda_ctx *c, float *y, const float *q,
                                             const float *fq, const float *kc, const float *vc,
                                             int ncache, const float *S, const float *z,
                                             const float *theta, int H, int Hkv, int D, int F)
{
    float *sc = NULL;
    float *wsum = NULL;

    if (ncache > 0) {
        const char *e;
        sc = (float *)lc_cuda_scratch(c, ((size_t)H * ncache + H) * sizeof(float));
        if (sc == NULL) {
            return "out of device memory for decoding";
        }
        wsum = sc + (size_t)H * ncache;
        LC_LAUNCH(k_dec_scores, lc_hy_blocks((int64_t)H * ncache), LC_CUDA_EW_THREADS,
                  c->stream)(sc, q, kc, ncache, H, Hkv, D);
        if ((e = lc_cuda_launched()) != NULL) {
            return e;
        }
        LC_LAUNCH(k_dec_weights, lc_hy_blocks(H), LC_CUDA_EW_THREADS, c->stream)(sc, wsum, theta,
                                                                                 ncache, H);
        if ((e = lc_cuda_launched()) != NULL) {
            return e;
        }
    }
    LC_LAUNCH(k_dec_out, lc_hy_blocks((int64_t)H * D), LC_CUDA_EW_THREADS, c->stream)(
        y, fq, S, z, sc, wsum, vc, ncache, H, Hkv, D, F);
    return lc_cuda_launched();
}

/* y[r, h, d] = (y den + fq_rh^T S_h[:, d]) / (den + fq_rh . z_h), den = den[r, h] */
static __global__ void k_add_state(float *y, const float *den, const float *fq, const float *S,
                                   const float *z, int n, int H, int D, int F)
{
    LC_HY_FOR(idx, (int64_t)n * H * D)
    {
        const int64_t rh = idx / D;
        const int d = (int)(idx % D);
        const int h = (int)(rh % H);
        const float *fqr = fq + (size_t)rh * F;
        const float *Sh = S + (size_t)h * F * D;
        const float *zh = z + (size_t)h * F;
        const float d0 = den[rh];
        float acc = y[idx] * d0;
        float d1 = d0;

        for (int e = 0; e < F; e++) {
            acc += fqr[e] * Sh[(size_t)e * D + d];
            d1 += fqr[e] * zh[e];
        }
        y[idx] = acc / d1;
    }
}

extern "C" const char *lc_cuda_hybrid_add_state(struct lc_cuda_ctx *c, float *y, const float *den,
                                                const float *fq, const float *S, const float *z,
                                                int n, int H, int D, int F)
{
    LC_LAUNCH(k_add_state, lc_hy_blocks((int64_t)n * H * D), LC_CUDA_EW_THREADS, c->stream)(
        y, den, fq, S, z, n, H, D, F);
    return lc_cuda_launched();
}

/* z[h] += sum over the n rows of fk[r, h] (rows in order) */
static __global__ void k_linstate_z(float *z, const float *fk, int n, int H, int F)
{
    LC_HY_FOR(idx, (int64_t)H * F)
    {
        float acc = z[idx];
        for (int r = 0; r < n; r++) {
            acc += fk[(size_t)r * H * F + idx];
        }
        z[idx] = acc;
    }
}

extern "C" const char *lc_cuda_linstate_add(struct lc_cuda_ctx *c, float *S, float *z,
                                            const float *fk, const float *v, int n, int H, int Hkv,
                                            int D, int F)
{
    const int rep = H / Hkv;
    const char *err;

    /* S[h] [F, D] += fk_h^T [F, n] v_g [n, D], heads h = g rep + r */
    for (int r = 0; r < rep; r++) {
        err = lc_hy_gemm(c, 1, 0, F, D, n, 1.0f, fk + (size_t)r * F, H * F, (long long)rep * F, v,
                         Hkv * D, D, 1.0f, S + (size_t)r * F * D, D, (long long)rep * F * D, Hkv);
        if (err != NULL) {
            return err;
        }
    }
    LC_LAUNCH(k_linstate_z, lc_hy_blocks((int64_t)H * F), LC_CUDA_EW_THREADS, c->stream)(z, fk, n,
                                                                                         H, F);
    return lc_cuda_launched();
}
