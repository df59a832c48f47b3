/*
 * Helpers shared by the CUDA kernels: launch sizes, launch-error strings,
 * dtype loads and the block reductions.
 *
 * Every reduction here runs in a fixed order decided by the block size
 * alone (butterfly shuffles within a warp, then warp 0 over the warps'
 * partials), never with atomics, so results are the same run to run.
 */
#ifndef LC_BACKEND_CUDA_CUDA_COMMON_CUH
#define LC_BACKEND_CUDA_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend-cuda/cuda_kernels.h"

/* threads of the one-dimensional elementwise kernels */
#define LC_CUDA_EW_THREADS 256

/* kernel<<<blocks, threads, smem, stream>>>(args): the launch of the
 * files that also build under the CPU emulation (cuda_emu.h), where a
 * launch runs the blocks in turn, their threads as coroutines.
 * One-dimensional grids and blocks; LC_LAUNCH_SMEM with smem bytes of
 * dynamic shared memory (lc_dyn_smem). */
#ifdef LC_CUDA_EMU
#define LC_LAUNCH(kernel, blocks, threads, stream) \
    ((void)(stream), lc_emu_launcher((kernel), (blocks), (threads)))
#define LC_LAUNCH_SMEM(kernel, blocks, threads, smem, stream) \
    ((void)(stream), lc_emu_launcher((kernel), (blocks), (threads), (smem)))
/* the block's dynamic shared memory, as T * */
#define LC_DYN_SMEM(T) ((T *)lc_emu_dyn_smem())
#else
#define LC_LAUNCH(kernel, blocks, threads, stream) kernel<<<(blocks), (threads), 0, (stream)>>>
#define LC_LAUNCH_SMEM(kernel, blocks, threads, smem, stream) \
    kernel<<<(blocks), (threads), (smem), (stream)>>>
extern __shared__ __align__(16) unsigned char lc_dyn_smem_bytes[];
#define LC_DYN_SMEM(T) ((T *)lc_dyn_smem_bytes)
#endif

/* blocks for a grid-stride loop over n elements: enough to fill the GPU,
 * few enough that the grid size stays in range */
static inline unsigned lc_cuda_ew_blocks(int64_t n)
{
    int64_t b = (n + LC_CUDA_EW_THREADS - 1) / LC_CUDA_EW_THREADS;
    if (b > 65536) {
        b = 65536;
    }
    return b < 1 ? 1u : (unsigned)b;
}

/* the launch error (bad configuration, no kernel image), or NULL */
static inline const char *lc_cuda_launched(void)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? NULL : cudaGetErrorString(e);
}

static inline const char *lc_cublas_result(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? NULL : cublasGetStatusString(s);
}

/* Column-major strided-batched C = alpha op(A) op(B) + beta C in fp32,
 * as cublasSgemmStridedBatched; with the context's tf32 switch on, on the
 * TF32 tensor cores (fp32 in and out, products of 10-bit mantissas,
 * relative error about 1e-3). */
static inline const char *lc_cuda_sgemm_sb(struct lc_cuda_ctx *c, cublasOperation_t ta,
                                           cublasOperation_t tb, int m, int n, int k,
                                           float alpha, const float *A, int lda, long long sA,
                                           const float *B, int ldb, long long sB, float beta,
                                           float *C, int ldc, long long sC, int batch)
{
    if (c->tf32) {
        return lc_cublas_result(cublasGemmStridedBatchedEx(
            c->cublas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, sA, B, CUDA_R_32F, ldb, sB,
            &beta, C, CUDA_R_32F, ldc, sC, batch, CUBLAS_COMPUTE_32F_FAST_TF32,
            CUBLAS_GEMM_DEFAULT));
    }
    return lc_cublas_result(cublasSgemmStridedBatched(c->cublas, ta, tb, m, n, k, &alpha, A, lda,
                                                      sA, B, ldb, sB, &beta, C, ldc, sC, batch));
}

/* element i of an F32, F16 or BF16 array */
__device__ __forceinline__ float lc_load_elem(const void *base, enum lc_dtype type, size_t i)
{
    if (type == LC_DTYPE_F32) {
        return ((const float *)base)[i];
    }
    if (type == LC_DTYPE_F16) {
        return __half2float(((const __half *)base)[i]);
    }
    return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
}

/* The dropout hash (the same as the reference kernels' lc_dropout_uniform
 * in core/ref/ref.h): splitmix64's finalizer over the mixed seed plus a
 * Weyl step per index; 24 bits, so that u is exact in float. */
__host__ __device__ __forceinline__ uint64_t lc_cuda_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ float lc_cuda_uniform(uint64_t seed_mixed, uint64_t i)
{
    uint64_t h = lc_cuda_mix64(seed_mixed + (i + 1) * 0x9e3779b97f4a7c15ull);
    return (float)(h >> 40) * 0x1p-24f;
}

__device__ __forceinline__ float lc_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ float lc_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result.  sh holds 32 floats; the function may be called
 * again with the same sh right after it returns. */
__device__ __forceinline__ float lc_block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5;

    v = lc_warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) {
        sh[warp] = v;
    }
    __syncthreads();
    v = lane < nwarps ? sh[lane] : 0.0f;
    return lc_warp_sum(v);
}

__device__ __forceinline__ float lc_block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5;

    v = lc_warp_max(v);
    __syncthreads();
    if (lane == 0) {
        sh[warp] = v;
    }
    __syncthreads();
    v = lane < nwarps ? sh[lane] : -INFINITY;
    return lc_warp_max(v);
}

#endif /* LC_BACKEND_CUDA_CUDA_COMMON_CUH */
