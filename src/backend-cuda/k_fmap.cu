/*
 * Hedgehog feature maps (method doc 2.1, 2.4): z = x_h W[h] by batched
 * SGEMM, then both softmaxes of each row by a kernel with one thread per
 * (token, head).  The backward recomputes z (it needs the unclamped
 * softmaxes), turns dphi into dz per row, and gets dW = x^T dz (a GEMM
 * over the tokens: a fixed reduction order, no atomics) and dx = dz W^T,
 * the heads that read one x head added in head order.
 *
 * The query heads h = g * rep + r (rep = H / Hx) reading x head g: with r
 * fixed, heads g * rep + r of W, z and dz are rep * (D f) and rep * f
 * floats apart and x heads D apart, so one strided-batched call covers
 * every g.
 */
#include "backend-cuda/cuda_hybrid.cuh"

/* phi [N, H, 2f] from z [N, H, f]: clamp_min(softmax(z), eps) and
 * clamp_min(softmax(-z), eps) */
static __global__ void k_fmap_rows(float *phi, const float *Z, int64_t nrows, int f, float eps)
{
    LC_HY_FOR(row, nrows)
    {
        const float *z = Z + row * f;
        float *out = phi + row * 2 * f;
        float zmax = z[0], zmin = z[0], sp = 0.0f, sn = 0.0f;

        for (int c = 1; c < f; c++) {
            zmax = z[c] > zmax ? z[c] : zmax;
            zmin = z[c] < zmin ? z[c] : zmin;
        }
        /* max(-z) = -zmin */
        for (int c = 0; c < f; c++) {
            sp += expf(z[c] - zmax);
            sn += expf(-z[c] + zmin);
        }
        for (int c = 0; c < f; c++) {
            float a = expf(z[c] - zmax) / sp;
            float b = expf(-z[c] + zmin) / sn;
            out[c] = a < eps ? eps : a;
            out[f + c] = b < eps ? eps : b;
        }
    }
}

/* dz [N, H, f] (in place over z) from z and dphi [N, H, 2f]:
 * dz = p (gp - <gp, p>) - pn (gn - <gn, pn>), the clamp passing the
 * gradient where the pre-clamp value is >= eps */
static __global__ void k_fmap_bwd_rows(float *Z, const float *dphi, int64_t nrows, int f,
                                       float eps)
{
    LC_HY_FOR(row, nrows)
    {
        float *z = Z + row * f;
        const float *gr = dphi + row * 2 * f;
        float zmax = z[0], zmin = z[0], sp = 0.0f, sn = 0.0f, ip = 0.0f, in = 0.0f;

        for (int c = 1; c < f; c++) {
            zmax = z[c] > zmax ? z[c] : zmax;
            zmin = z[c] < zmin ? z[c] : zmin;
        }
        for (int c = 0; c < f; c++) {
            sp += expf(z[c] - zmax);
            sn += expf(-z[c] + zmin);
        }
        for (int c = 0; c < f; c++) {
            float p = expf(z[c] - zmax) / sp;
            float pn = expf(-z[c] + zmin) / sn;
            ip += (p >= eps ? gr[c] : 0.0f) * p;
            in += (pn >= eps ? gr[f + c] : 0.0f) * pn;
        }
        for (int c = 0; c < f; c++) {
            float p = expf(z[c] - zmax) / sp;
            float pn = expf(-z[c] + zmin) / sn;
            float gp = p >= eps ? gr[c] : 0.0f;
            float gn = pn >= eps ? gr[f + c] : 0.0f;
            z[c] = p * (gp - ip) - pn * (gn - in);
        }
    }
}

/* Z [N, H, f] = x_h W[h] for every head */
static const char *fmap_z(struct lc_cuda_ctx *c, float *Z, const float *x, const float *W, int N,
                          int H, int Hx, int D, int f)
{
    const int rep = H / Hx;
    const char *err;

    for (int r = 0; r < rep; r++) {
        err = lc_hy_gemm(c, 0, 0, N, f, D, 1.0f, x, Hx * D, D, W + (size_t)r * D * f, f,
                         (long long)rep * D * f, 0.0f, Z + (size_t)r * f, H * f, (long long)rep * f,
                         Hx);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

extern "C" const char *lc_cuda_fmap_fwd(struct lc_cuda_ctx *c, float *phi, const float *x,
                                        const float *W, int N, int H, int Hx, int D, int f,
                                        float eps)
{
    const int64_t nrows = (int64_t)N * H;
    float *Z = (float *)lc_cuda_scratch(c, (size_t)nrows * f * sizeof(float));
    const char *err;

    if (Z == NULL) {
        return "out of device memory for the feature maps";
    }
    err = fmap_z(c, Z, x, W, N, H, Hx, D, f);
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_fmap_rows, lc_hy_blocks(nrows), LC_CUDA_EW_THREADS, c->stream)(phi, Z, nrows, f,
                                                                               eps);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_fmap_bwd(struct lc_cuda_ctx *c, float *dW, float *dx,
                                        const float *dphi, const float *x, const float *W, int N,
                                        int H, int Hx, int D, int f, float eps)
{
    const int rep = H / Hx;
    const int64_t nrows = (int64_t)N * H;
    float *Z = (float *)lc_cuda_scratch(c, (size_t)nrows * f * sizeof(float));
    const char *err;

    if (Z == NULL) {
        return "out of device memory for the feature-map backward";
    }
    err = fmap_z(c, Z, x, W, N, H, Hx, D, f);
    if (err != NULL) {
        return err;
    }
    LC_LAUNCH(k_fmap_bwd_rows, lc_hy_blocks(nrows), LC_CUDA_EW_THREADS, c->stream)(Z, dphi, nrows,
                                                                                   f, eps);
    err = lc_cuda_launched();
    if (err != NULL) {
        return err;
    }
    for (int r = 0; r < rep; r++) {
        /* dW[h] [D, f] += x_g^T [D, N] dz_h [N, f] */
        err = lc_hy_gemm(c, 1, 0, D, f, N, 1.0f, x, Hx * D, D, Z + (size_t)r * f, H * f,
                         (long long)rep * f, 1.0f, dW + (size_t)r * D * f, f,
                         (long long)rep * D * f, Hx);
        if (err != NULL) {
            return err;
        }
    }
    for (int r = 0; dx != NULL && r < rep; r++) {
        /* dx_g [N, D] += dz_h [N, f] W[h]^T [f, D] */
        err = lc_hy_gemm(c, 0, 1, N, D, f, 1.0f, Z + (size_t)r * f, H * f, (long long)rep * f,
                         W + (size_t)r * D * f, f, (long long)rep * D * f, 1.0f, dx, Hx * D, D, Hx);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}
