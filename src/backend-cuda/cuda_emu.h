/*
 * A CPU emulation of the part of CUDA and cuBLAS that the cuda backend's
 * glue (cuda_backend.c) and its emulated kernels (the files that
 * tests/local.mk builds with this header) use, so that their logic -- the
 * index arithmetic, the block layout, shared memory, barriers, warp
 * shuffles, tensor-core fragments, the cuBLAS arguments -- is tested by
 * make check on machines without a GPU (tests/test_cuda_emu:
 * tests/test_cuda.c built against this).
 *
 * Force-included (-include) before anything else into those sources,
 * compiled by the host compiler (the .cu files as C++).  It renames the
 * CUDA runtime and cuBLAS entries to the emulation's (cuda_emu.c) and the
 * backend's own global symbols, so that an emulated build links beside
 * the real one without clashing.  Device memory is host memory (fresh
 * allocations filled with NaN bytes, so that reading scratch that was
 * never written shows); streams are synchronous; cuBLAS SGEMM is a plain
 * loop that checks its arguments as cuBLAS does.
 *
 * A launch runs the blocks one after another.  The threads of a block are
 * cooperative coroutines (cuda_emu.c), each on its own stack, switched
 * only where CUDA threads must wait for each other, to a thread picked in
 * a reproducible pseudo-random order (LC_CUDA_EMU_SEED picks another), so
 * that a kernel that races between barriers does not pass by the luck of
 * one order:
 *   __syncthreads()       waits for every thread of the block that has not
 *                         exited (as on sm_70 and later);
 *   warp collectives      __syncwarp, __shfl*_sync, __ballot_sync,
 *                         __any_sync, __all_sync and the tensor-core mma
 *                         (lc_emu_mma_bf16_16816, cuda_mma.cuh) wait for
 *                         every lane named in their mask;
 * so kernels that share memory, synchronize or shuffle run exactly as
 * their CUDA semantics define.  What CUDA leaves undefined is reported and
 * aborts the test instead of passing by luck: a warp collective whose
 * lanes pass different masks or call different collectives, a mask that
 * names an exited lane or omits the caller, and barriers that can never
 * complete (threads of a block waiting at different barriers).  Two
 * collectives of one warp in flight at once with disjoint masks are valid
 * CUDA, but not emulated: that is reported too.
 *
 * __shared__ variables are static storage, shared by the threads of the
 * block being run (blocks do not overlap); dynamic shared memory
 * (LC_LAUNCH_SMEM, lc_dyn_smem in cuda_common.cuh) is a fresh buffer per
 * block, filled with NaN bytes, and a launch that asks for more than 48
 * KiB without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemory-
 * Size) fails as on a GPU.
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
#define cudaFuncSetAttribute lc_emu_cudaFuncSetAttribute
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
#define lc_cuda_attn_fwd lc_cuda_emu_attn_fwd
#define lc_cuda_attn_fwd_fp32 lc_cuda_emu_attn_fwd_fp32
#define lc_cuda_flash_fwd lc_cuda_emu_flash_fwd
#define lc_cuda_flash_supports lc_cuda_emu_flash_supports
#define lc_cuda_to_bf16_heads lc_cuda_emu_to_bf16_heads
#define lc_cuda_fmap_fwd lc_cuda_emu_fmap_fwd
#define lc_cuda_fmap_bwd lc_cuda_emu_fmap_bwd
#define lc_cuda_hybrid_fwd lc_cuda_emu_hybrid_fwd
#define lc_cuda_hybrid_bwd lc_cuda_emu_hybrid_bwd
#define lc_cuda_hytile_supports lc_cuda_emu_hytile_supports
#define lc_cuda_hytile_fwd lc_cuda_emu_hytile_fwd
#define lc_cuda_hytile_bwd lc_cuda_emu_hytile_bwd
#define lc_cuda_hybrid_xent lc_cuda_emu_hybrid_xent
#define lc_cuda_hybrid_decode lc_cuda_emu_hybrid_decode
#define lc_cuda_linstate_add lc_cuda_emu_linstate_add
#define lc_cuda_hybrid_add_state lc_cuda_emu_hybrid_add_state

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <string.h>
#include <tuple>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct lc_emu_dim {
    unsigned x, y, z;
};
extern struct lc_emu_dim lc_emu_thread_idx, lc_emu_block_idx, lc_emu_block_dim, lc_emu_grid_dim;

/* a bad launch configuration: what the next cudaGetLastError returns */
void lc_emu_launch_failed(cudaError_t e);
/* launches so far (tests check that work was done) */
extern long long lc_emu_launches;
/* context switches between emulated threads so far */
extern long long lc_emu_switches;

/* Runs blocks x threads threads of body(arg) (each thread a coroutine),
 * block after block, with dyn_smem bytes of dynamic shared memory per
 * block; kernel names the kernel for its dynamic shared memory limit.
 * Fails the launch (cudaGetLastError) on a bad configuration. */
void lc_emu_run_grid(const void *kernel, unsigned blocks, unsigned threads, size_t dyn_smem,
                     void (*body)(void *), void *arg);
/* this block's dynamic shared memory */
void *lc_emu_dyn_smem(void);
/* __syncthreads() */
void lc_emu_syncthreads(void);
/* A warp collective of kind (LC_EMU_*): the calling lane deposits n <=
 * LC_EMU_SLOT bytes, waits for every lane in mask, and gets the 32 lanes'
 * slots (valid until its next collective; lanes outside mask: garbage). */
#define LC_EMU_SLOT 32
enum { LC_EMU_SYNCWARP = 1, LC_EMU_SHFL, LC_EMU_VOTE, LC_EMU_MMA };
const unsigned char (*lc_emu_warp_collective(unsigned mask, int kind, const void *mine,
                                             size_t n))[LC_EMU_SLOT];
/* fails the test with a message (undefined behaviour in CUDA) */
void lc_emu_fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#ifdef __cplusplus
}

#define threadIdx lc_emu_thread_idx
#define blockIdx lc_emu_block_idx
#define blockDim lc_emu_block_dim
#define gridDim lc_emu_grid_dim
#define warpSize 32

/* shared by the threads of the one block that runs at a time */
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)
#ifndef __forceinline__
#define __forceinline__ inline
#endif

/* cudaFuncSetAttribute(kernel, ...), as cuda_runtime.h has it for nvcc */
template <typename... P>
static inline cudaError_t lc_emu_cudaFuncSetAttribute(void (*kernel)(P...),
                                                      enum cudaFuncAttribute attr, int value)
{
    return lc_emu_cudaFuncSetAttribute((const void *)kernel, attr, value);
}

static inline void __syncthreads(void)
{
    lc_emu_syncthreads();
}

static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)lc_emu_warp_collective(mask, LC_EMU_SYNCWARP, NULL, 0);
}

static inline unsigned lc_emu_lane(void)
{
    return threadIdx.x & 31u;
}

/* the value of lane src (in the lane's segment of width lanes) */
template <typename T> static inline T lc_emu_shfl(unsigned mask, T v, int src, int width)
{
    static_assert(sizeof(T) <= LC_EMU_SLOT, "shuffled type too large");
    const unsigned char(*slots)[LC_EMU_SLOT] =
        lc_emu_warp_collective(mask, LC_EMU_SHFL, &v, sizeof(T));
    T r;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        lc_emu_fatal("shuffle width %d is not a power of two <= 32", width);
    }
    if (src < 0 || src >= 32 || !((mask >> src) & 1u)) {
        /* CUDA: reading a lane outside the mask is undefined */
        lc_emu_fatal("shuffle reads lane %d, which is not in mask 0x%08x", src, mask);
    }
    memcpy(&r, slots[src], sizeof(T));
    return r;
}

template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    unsigned lane = lc_emu_lane();
    int base = (int)(lane & ~(unsigned)(width - 1));
    return lc_emu_shfl(mask, v, base + (src & (width - 1)), width);
}

template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = (int)lc_emu_lane();
    int src = lane ^ lane_mask;
    /* a source outside the segment reads the lane itself */
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) {
        src = lane;
    }
    return lc_emu_shfl(mask, v, src, width);
}

template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = (int)lc_emu_lane();
    int src = lane + (int)delta;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) {
        src = lane;
    }
    return lc_emu_shfl(mask, v, src, width);
}

template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = (int)lc_emu_lane();
    int src = lane - (int)delta;
    if (src < 0 || (src & ~(width - 1)) != (lane & ~(width - 1))) {
        src = lane;
    }
    return lc_emu_shfl(mask, v, src, width);
}

static inline unsigned __ballot_sync(unsigned mask, int pred)
{
    int p = pred != 0;
    const unsigned char(*slots)[LC_EMU_SLOT] =
        lc_emu_warp_collective(mask, LC_EMU_VOTE, &p, sizeof(p));
    unsigned r = 0;
    for (int l = 0; l < 32; l++) {
        int q;
        memcpy(&q, slots[l], sizeof(q));
        if (((mask >> l) & 1u) && q) {
            r |= 1u << l;
        }
    }
    return r;
}

static inline int __any_sync(unsigned mask, int pred)
{
    return __ballot_sync(mask, pred) != 0;
}

static inline int __all_sync(unsigned mask, int pred)
{
    return __ballot_sync(mask, pred) == mask;
}

/* LC_LAUNCH(kernel, blocks, threads, stream)(args...) and LC_LAUNCH_SMEM
 * of cuda_common.cuh: one-dimensional grids and blocks */
template <typename... P> struct lc_emu_call {
    void (*kernel)(P...);
    std::tuple<P...> args;

    static void run(void *self)
    {
        lc_emu_call *c = (lc_emu_call *)self;
        std::apply(c->kernel, c->args);
    }
};

template <typename... P> struct lc_emu_launch {
    void (*kernel)(P...);
    unsigned blocks;
    unsigned threads;
    size_t smem;

    void operator()(P... args) const
    {
        lc_emu_call<P...> call{kernel, std::tuple<P...>(args...)};
        lc_emu_run_grid((const void *)kernel, blocks, threads, smem, &lc_emu_call<P...>::run,
                        &call);
    }
};

template <typename... P>
lc_emu_launch<P...> lc_emu_launcher(void (*kernel)(P...), unsigned blocks, unsigned threads,
                                    size_t smem = 0)
{
    return lc_emu_launch<P...>{kernel, blocks, threads, smem};
}
#endif /* __cplusplus */

#endif /* LC_BACKEND_CUDA_CUDA_EMU_H */
