/* Elementwise operations: add, dropout, SwiGLU, and random fills. */
#include "backend-cuda/cuda_common.cuh"

/* Outputs may alias inputs in every kernel here: element i is read before
 * it is written, by the same thread. */

__global__ void k_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        y[i] += x[i];
    }
}

/* keep = (u(seed, i) >= p); scale = 1 / (1 - p) in float, as the
 * reference computes it, so that kept values agree to the bit */
__global__ void k_dropout(float *y, const float *x, int64_t n, float p, float scale,
                          uint64_t seed_mixed)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float u = lc_cuda_uniform(seed_mixed, (uint64_t)i);
        y[i] = u >= p ? x[i] * scale : 0.0f;
    }
}

/* sigmoid(g) = 1 / (1 + exp(-g)); expf overflows to inf for g < -88 and
 * the quotient is then exactly 0 */
__device__ __forceinline__ float sigmoid(float g)
{
    return 1.0f / (1.0f + expf(-g));
}

__global__ void k_swiglu_fwd(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g * sigmoid(g) * up[i];
    }
}

/* d silu(g)/dg = s (1 + g (1 - s)) with s = sigmoid(g) */
__global__ void k_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        float u = up[i];
        float d = dout[i];
        float s = sigmoid(g);
        dgate[i] = d * u * (s * (1.0f + g * (1.0f - s)));
        dup[i] = d * (g * s);
    }
}

__global__ void k_fill_uniform(void *dst, enum lc_dtype type, int64_t n, uint64_t seed_mixed,
                               float lo, float hi)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = lo + (hi - lo) * lc_cuda_uniform(seed_mixed, (uint64_t)i);
        if (type == LC_DTYPE_F32) {
            ((float *)dst)[i] = x;
        } else if (type == LC_DTYPE_F16) {
            ((__half *)dst)[i] = __float2half_rn(x);
        } else {
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(x);
        }
    }
}

extern "C" const char *lc_cuda_probe(void)
{
    struct cudaFuncAttributes attr;
    cudaError_t e = cudaFuncGetAttributes(&attr, k_add);
    return e == cudaSuccess ? NULL : cudaGetErrorString(e);
}

extern "C" const char *lc_cuda_add(struct lc_cuda_ctx *c, float *y, const float *x, int64_t n)
{
    k_add<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(y, x, n);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_dropout(struct lc_cuda_ctx *c, float *y, const float *x, int64_t n,
                                       float p, uint64_t seed)
{
    float scale = 1.0f / (1.0f - p);
    k_dropout<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(
        y, x, n, p, scale, lc_cuda_mix64(seed));
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_swiglu_fwd(struct lc_cuda_ctx *c, float *out, const float *gate,
                                          const float *up, int64_t n)
{
    k_swiglu_fwd<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(out, gate, up, n);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_swiglu_bwd(struct lc_cuda_ctx *c, float *dgate, float *dup,
                                          const float *dout, const float *gate, const float *up,
                                          int64_t n)
{
    k_swiglu_bwd<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(dgate, dup, dout,
                                                                            gate, up, n);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_fill_uniform(struct lc_cuda_ctx *c, void *dst, enum lc_dtype type,
                                            int64_t n, uint64_t seed, float lo, float hi)
{
    if (type != LC_DTYPE_F32 && type != LC_DTYPE_F16 && type != LC_DTYPE_BF16) {
        return "fill: the dtype is not F32, F16 or BF16";
    }
    k_fill_uniform<<<lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, 0, c->stream>>>(
        dst, type, n, lc_cuda_mix64(seed), lo, hi);
    return lc_cuda_launched();
}
