/*
 * Kernels that exercise the CUDA primitives the fused kernels rely on --
 * shared memory, __syncthreads, warp shuffles and votes, dynamic shared
 * memory over 48 KiB, the bf16 rounding and the mma.m16n8k16 fragment
 * layouts of cuda_mma.cuh -- built by nvcc for tests/test_cuda (on a GPU:
 * the hardware's answers) and by the host compiler for tests/test_cuda_emu
 * (the CPU emulation's).  tests/test_cuda.c compares both with plain C.
 * Every launcher queues on the context's stream and returns NULL or the
 * launch error.
 */
#ifndef LC_TESTS_CUDA_SELFTEST_H
#define LC_TESTS_CUDA_SELFTEST_H

#include <stdint.h>

#include "backend-cuda/cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Threads per block of lc_st_block. */
#define LC_ST_THREADS 256

/* blocks blocks of LC_ST_THREADS threads; thread t of block b reads
 * x[b * LC_ST_THREADS + t] and writes 8 values per block and thread:
 *   out[(b * LC_ST_THREADS + t) * 8 + ...]
 *   0  the block sum (a tree in static shared memory, __syncthreads)
 *   1  the warp sum (butterfly __shfl_xor_sync)
 *   2  the inclusive prefix sum over the warp (__shfl_up_sync)
 *   3  the sum of the lane's value and the next 4 lanes' (__shfl_down_sync;
 *      lanes past 31 give their own value, as CUDA defines)
 *   4  lane 5's value (__shfl_sync)
 *   5  __ballot_sync(x > 0) of the warp, as a float of its low 16 bits
 *   6  __ballot_sync's high 16 bits
 *   7  x of thread LC_ST_THREADS - 1 - t, through 64 KiB of dynamic
 *      shared memory (cudaFuncSetAttribute) */
const char *lc_st_block(struct lc_cuda_ctx *c, float *out, const float *x, int blocks);

/* bits[i] = the bf16 rounding of x[i] (lc_bf16_bits), n <= 1024 */
const char *lc_st_bf16(struct lc_cuda_ctx *c, uint16_t *bits, const float *x, int n);

/* One warp:
 *   D1 = A B + C      A from A [16][16] (lc_frag_a), B from B [16][8]
 *                     (lc_frag_b_t)
 *   D2 = A B + C      A from At [16][16] = A^T (lc_frag_a_t), B from
 *                     Bt [8][16] = B^T (lc_frag_b)
 *   D3 = [X Y] B2     X = A B, Y = A B3 (16x8 each, accumulators rounded
 *                     to bf16 as one 16x16 A operand, lc_frag_a_from_acc),
 *                     B2 [16][8]
 * A, B, B2, B3 bf16 bits; C and D fp32 [16][8]; and acc_rc [32][8] = the
 * row and column lc_acc_row/lc_acc_col give for each lane's 4 elements. */
const char *lc_st_mma(struct lc_cuda_ctx *c, float *D1, float *D2, float *D3, int *acc_rc,
                      const uint16_t *A, const uint16_t *At, const uint16_t *B, const uint16_t *Bt,
                      const uint16_t *B2, const uint16_t *B3, const float *C);

/* A kernel whose warp 0 splits: lanes 0-15 wait at __syncthreads, lanes
 * 16-31 at a full-warp shuffle -- undefined in CUDA; the emulation must
 * report it and abort.  Not run on a GPU. */
const char *lc_st_divergent(struct lc_cuda_ctx *c, float *out);

#ifdef __cplusplus
}
#endif

#endif /* LC_TESTS_CUDA_SELFTEST_H */
