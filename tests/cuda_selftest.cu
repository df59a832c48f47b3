/*
 * The self-test kernels of tests/cuda_selftest.h: the same source for the
 * GPU and for the CPU emulation.
 */
#include "backend-cuda/cuda_mma.cuh"
#include "cuda_selftest.h" /* beside this file: nvcc has no -I for the source root */

#define ST_SMEM (64 << 10)

static __global__ void k_st_block(float *out, const float *x)
{
    __shared__ float tree[LC_ST_THREADS];
    float *big = LC_DYN_SMEM(float);
    const int t = (int)threadIdx.x;
    const int lane = t & 31;
    const float v = x[blockIdx.x * LC_ST_THREADS + t];
    float *o = out + ((size_t)blockIdx.x * LC_ST_THREADS + t) * 8;
    float w, scan = v;
    unsigned ballot;

    tree[t] = v;
    __syncthreads();
    for (int span = LC_ST_THREADS / 2; span > 0; span >>= 1) {
        if (t < span) {
            tree[t] += tree[t + span];
        }
        __syncthreads();
    }
    o[0] = tree[0];

    w = v;
    for (int m = 16; m > 0; m >>= 1) {
        w += __shfl_xor_sync(0xffffffffu, w, m);
    }
    o[1] = w;
    for (int d = 1; d < 32; d <<= 1) {
        float u = __shfl_up_sync(0xffffffffu, scan, d);
        if (lane >= d) {
            scan += u;
        }
    }
    o[2] = scan;
    w = v;
    for (int d = 1; d <= 4; d++) {
        w += __shfl_down_sync(0xffffffffu, v, d);
    }
    o[3] = w;
    o[4] = __shfl_sync(0xffffffffu, v, 5);
    ballot = __ballot_sync(0xffffffffu, v > 0.0f);
    o[5] = (float)(ballot & 0xffffu);
    o[6] = (float)(ballot >> 16);

    /* dynamic shared memory beyond 48 KiB: every thread writes its value
     * at both ends, then reads its mirror's */
    big[t] = v;
    big[ST_SMEM / sizeof(float) - 1 - t] = v;
    __syncthreads();
    o[7] = big[LC_ST_THREADS - 1 - t] == big[ST_SMEM / sizeof(float) - LC_ST_THREADS + t]
               ? big[LC_ST_THREADS - 1 - t]
               : NAN;
}

extern "C" const char *lc_st_block(struct lc_cuda_ctx *c, float *out, const float *x, int blocks)
{
    cudaError_t e = cudaFuncSetAttribute(k_st_block, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         ST_SMEM);
    if (e != cudaSuccess) {
        return cudaGetErrorString(e);
    }
    LC_LAUNCH_SMEM(k_st_block, (unsigned)blocks, LC_ST_THREADS, ST_SMEM, c->stream)(out, x);
    return lc_cuda_launched();
}

static __global__ void k_st_bf16(uint16_t *bits, const float *x, int n)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) {
        bits[i] = lc_bf16_bits(x[i]);
    }
}

extern "C" const char *lc_st_bf16(struct lc_cuda_ctx *c, uint16_t *bits, const float *x, int n)
{
    LC_LAUNCH(k_st_bf16, (unsigned)((n + 127) / 128), 128, c->stream)(bits, x, n);
    return lc_cuda_launched();
}

static __global__ void k_st_mma(float *D1, float *D2, float *D3, int *acc_rc, const uint16_t *A,
                                const uint16_t *At, const uint16_t *B, const uint16_t *Bt,
                                const uint16_t *B2, const uint16_t *B3, const float *C)
{
    const int lane = lc_lane();
    uint32_t a[4], b[2];
    float d[4], x[4], yv[4];

    for (int i = 0; i < 4; i++) {
        acc_rc[lane * 8 + 2 * i] = lc_acc_row(i);
        acc_rc[lane * 8 + 2 * i + 1] = lc_acc_col(i);
        d[i] = C[lc_acc_row(i) * 8 + lc_acc_col(i)];
    }
    lc_frag_a(a, A, 16);
    lc_frag_b_t(b, B, 8);
    lc_mma_16816(d, a, b);
    for (int i = 0; i < 4; i++) {
        D1[lc_acc_row(i) * 8 + lc_acc_col(i)] = d[i];
        d[i] = C[lc_acc_row(i) * 8 + lc_acc_col(i)];
    }
    lc_frag_a_t(a, At, 16);
    lc_frag_b(b, Bt, 16);
    lc_mma_16816(d, a, b);
    for (int i = 0; i < 4; i++) {
        D2[lc_acc_row(i) * 8 + lc_acc_col(i)] = d[i];
        x[i] = yv[i] = d[i] = 0.0f;
    }
    lc_frag_b_t(b, B, 8);
    lc_mma_16816(x, a, b);
    lc_frag_b_t(b, B3, 8);
    lc_mma_16816(yv, a, b);
    lc_frag_a_from_acc(a, x, yv);
    lc_frag_b_t(b, B2, 8);
    lc_mma_16816(d, a, b);
    for (int i = 0; i < 4; i++) {
        D3[lc_acc_row(i) * 8 + lc_acc_col(i)] = d[i];
    }
}

extern "C" const char *lc_st_mma(struct lc_cuda_ctx *c, float *D1, float *D2, float *D3,
                                 int *acc_rc, const uint16_t *A, const uint16_t *At,
                                 const uint16_t *B, const uint16_t *Bt, const uint16_t *B2,
                                 const uint16_t *B3, const float *C)
{
    LC_LAUNCH(k_st_mma, 1, 32, c->stream)(D1, D2, D3, acc_rc, A, At, B, Bt, B2, B3, C);
    return lc_cuda_launched();
}

static __global__ void k_st_divergent(float *out)
{
    const int lane = (int)(threadIdx.x & 31u);
    float v = (float)threadIdx.x;

    if (lane < 16) {
        __syncthreads();
    } else {
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    }
    out[threadIdx.x] = v;
}

extern "C" const char *lc_st_divergent(struct lc_cuda_ctx *c, float *out)
{
    LC_LAUNCH(k_st_divergent, 1, 64, c->stream)(out);
    return lc_cuda_launched();
}
