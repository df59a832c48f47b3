/* AdamW on a flat fp32 arena, in PyTorch's single-tensor order. */
#include "backend-cuda/cuda_common.cuh"

/* p *= 1 - lr wd; m = lerp(m, g, 1 - beta1) (torch.lerp's two forms);
 * v = beta2 v + (1 - beta2) g^2;
 * p += -(lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps) */
__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                        struct lc_cuda_adamw_scalars s)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        float pi = p[i] * s.decay;
        float mi = m[i];
        float vi;
        float denom;

        if (s.lerp_first) {
            mi = mi + s.w1 * (gi - mi);
        } else {
            mi = gi - (gi - mi) * s.beta1;
        }
        vi = v[i] * s.beta2 + s.w2 * gi * gi;
        denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
        p[i] = pi + s.neg_step * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" const char *lc_cuda_adamw(struct lc_cuda_ctx *c, float *p, const float *g, float *m,
                                     float *v, int64_t n, const struct lc_cuda_adamw_scalars *s)
{
    k_adamw<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(p, g, m, v, n, *s);
    return lc_cuda_launched();
}
