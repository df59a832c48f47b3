/*
 * A CPU emulation of the part of CUDA and cuBLAS that the cuda backend's
 * glue (cuda_backend.c) and its attention-student kernels (k_fmap.cu,
 * k_hybrid.cu, k_hybrid_xent.cu, k_decode.cu) use, so that their logic --
 * the index arithmetic, the block layout, the cuBLAS arguments -- is
 * tested by make check on machines without a GPU (tests/test_cuda_emu:
 * tests/test_cuda.c built against this).
 *
 * Force-included (-include) before anything else into those sources,
 * compiled by the host compiler (the .cu files as C++).  It renames the
 * CUDA runtime and cuBLAS entries to the emulation's (cuda_emu.c) and the
 * backend's own global symbols, so that an emulated build links beside
 * the real one without clashing.  Device memory is host memory (fresh
 * allocations filled with NaN bytes, so that reading scratch that was
 * never written shows); streams are synchronous; a kernel launch runs
 * every block and thread in turn, which is exact only for kernels whose
 * threads are independent (no shared memory, no synchronization, no warp
 * shuffles) -- the kind the files above are written as.  cuBLAS SGEMM is
 * a plain loop that checks its arguments as cuBLAS does.
 */
#ifndef LC_BACKEND_CUDA_CUDA_EMU_H
#define LC_BACKEND_CUDA_CUDA_EMU_H

#define LC_CUDA_EMU 1

/* device code is host code */
#define __host__
#define __device__
#define __global__

#define cudaGetDeviceCount lc_emu_cudaGetDeviceCount
#define cudaSetDevice lc_emu_cudaSetDevice
#define cudaStreamCreateWithFlags lc_emu_cudaStreamCreateWithFlags
#define cudaStreamSynchronize lc_emu_cudaStreamSynchronize
#define cudaStreamDestroy lc_emu_cudaStreamDestroy
#define cudaMalloc lc_emu_cudaMalloc
#define cudaFree lc_emu_cudaFree
#define cudaMemsetAsync lc_emu_cudaMemsetAsync
#define cudaMemcpyAsync lc_emu_cudaMemcpyAsync
#define cudaGetLastError lc_emu_cudaGetLastError
#define cudaGetErrorString lc_emu_cudaGetErrorString
#define cudaGetDeviceProperties lc_emu_cudaGetDeviceProperties
#define cudaRuntimeGetVersion lc_emu_cudaRuntimeGetVersion
#define cudaDriverGetVersion lc_emu_cudaDriverGetVersion
/* cublas_v2.h maps cublasCreate to cublasCreate_v2 and so on */
#define cublasCreate_v2 lc_emu_cublasCreate
#define cublasDestroy_v2 lc_emu_cublasDestroy
#define cublasSetStream_v2 lc_emu_cublasSetStream
#define cublasSetMathMode lc_emu_cublasSetMathMode
#define cublasGetStatusString lc_emu_cublasGetStatusString
#define cublasGetProperty lc_emu_cublasGetProperty
#define cublasSgemmStridedBatched lc_emu_cublasSgemmStridedBatched
#define cublasGemmStridedBatchedEx lc_emu_cublasGemmStridedBatchedEx

/* the backend's global symbols that the emulated build defines */
#define lc_cuda_ops lc_cuda_emu_ops
#define lc_cuda_scratch lc_cuda_emu_scratch
#define lc_cuda_probe lc_cuda_emu_probe
#define lc_cuda_fmap_fwd lc_cuda_emu_fmap_fwd
#define lc_cuda_fmap_bwd lc_cuda_emu_fmap_bwd
#define lc_cuda_hybrid_fwd lc_cuda_emu_hybrid_fwd
#define lc_cuda_hybrid_bwd lc_cuda_emu_hybrid_bwd
#define lc_cuda_hybrid_xent lc_cuda_emu_hybrid_xent
#define lc_cuda_hybrid_decode lc_cuda_emu_hybrid_decode
#define lc_cuda_linstate_add lc_cuda_emu_linstate_add
#define lc_cuda_hybrid_add_state lc_cuda_emu_hybrid_add_state

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#ifdef __cplusplus
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct lc_emu_dim {
    unsigned x, y, z;
};
extern struct lc_emu_dim lc_emu_thread_idx, lc_emu_block_idx, lc_emu_block_dim, lc_emu_grid_dim;

/* a bad launch configuration: what the next cudaGetLastError returns */
void lc_emu_launch_failed(void);
/* launches so far (tests check that work was done) */
extern long long lc_emu_launches;

#ifdef __cplusplus
}

#define threadIdx lc_emu_thread_idx
#define blockIdx lc_emu_block_idx
#define blockDim lc_emu_block_dim
#define gridDim lc_emu_grid_dim

/* LC_LAUNCH(kernel, blocks, threads, stream)(args...) of cuda_common.cuh:
 * every thread of every block in turn (one-dimensional grids) */
template <typename... P> struct lc_emu_launch {
    void (*kernel)(P...);
    unsigned blocks;
    unsigned threads;

    void operator()(P... args) const
    {
        if (blocks < 1 || threads < 1 || threads > 1024 || blocks > 2147483647u) {
            lc_emu_launch_failed();
            return;
        }
        lc_emu_launches++;
        lc_emu_grid_dim = {blocks, 1, 1};
        lc_emu_block_dim = {threads, 1, 1};
        for (unsigned b = 0; b < blocks; b++) {
            for (unsigned t = 0; t < threads; t++) {
                lc_emu_block_idx = {b, 0, 0};
                lc_emu_thread_idx = {t, 0, 0};
                kernel(args...);
            }
        }
    }
};

template <typename... P>
lc_emu_launch<P...> lc_emu_launcher(void (*kernel)(P...), unsigned blocks, unsigned threads)
{
    return lc_emu_launch<P...>{kernel, blocks, threads};
}
#endif /* __cplusplus */

#endif /* LC_BACKEND_CUDA_CUDA_EMU_H */
