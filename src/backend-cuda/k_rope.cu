/* Rotary position embedding, Hugging Face rotate-half layout, in place. */
#include "backend-cuda/cuda_common.cuh"

/* One thread per pair (x_i, x_{i+D/2}) of one head of one token:
 * (a, b) -> (a c - b s, b c + a s); the inverse turns the angle around. */
__global__ void k_rope(float *x, const int32_t *pos, const float *cos_tab, const float *sin_tab,
                       int N, int nh, int D, float sign)
{
    int half = D / 2;
    int64_t total = (int64_t)N * nh * half;

    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = t / half; /* n * nh + h */
        int i = (int)(t - row * half);
        int64_t n = row / nh;
        size_t tab = (size_t)pos[n] * half + i;
        float c = cos_tab[tab];
        float s = sign * sin_tab[tab];
        float *v = x + (size_t)row * D;
        float a = v[i];
        float b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

extern "C" const char *lc_cuda_rope(struct lc_cuda_ctx *c, float *x, const int32_t *pos,
                                    const float *cos_tab, const float *sin_tab, int N, int nh,
                                    int D, int inverse)
{
    int64_t total = (int64_t)N * nh * (D / 2);
    k_rope<<<lc_cuda_ew_blocks(total), LC_CUDA_EW_THREADS, 0, c->stream>>>(
        x, pos, cos_tab, sin_tab, N, nh, D, inverse ? -1.0f : 1.0f);
    return lc_cuda_launched();
}
