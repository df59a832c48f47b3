/*
 * bf16 tensor-core products for the fused attention kernels (k_flash.cu,
 * k_hybrid_tile.cu): the PTX instruction
 *   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32  D = A B + C
 * (A 16x16, B 16x8 bf16; C, D 16x8 fp32), its operands distributed over
 * the 32 lanes of a warp as the PTX ISA documents ("Matrix Fragments for
 * mma.m16n8k16 with floating point type"), with g = lane / 4 and
 * t = lane % 4:
 *   A  a[0] = A[g][2t..2t+1]      a[1] = A[g+8][2t..2t+1]
 *      a[2] = A[g][2t+8..2t+9]    a[3] = A[g+8][2t+8..2t+9]
 *   B  b[0] = B[2t..2t+1][g]      b[1] = B[2t+8..2t+9][g]
 *   C  c[0..1] = C[g][2t..2t+1]   c[2..3] = C[g+8][2t..2t+1]
 * each 32-bit register holding two bf16, the lower index in the low half.
 * The kernels rely on nothing else: the fragment loaders below place the
 * elements by these rules, and the accumulators of two neighbouring
 * 16x8 products are, element for element, the A operand of the next
 * product (lc_frag_a_from_acc), as the rules make them.
 *
 * Under the CPU emulation (cuda_emu.h) the instruction is a warp
 * collective: every lane deposits its A and B registers, and each lane
 * computes its four elements of D from the whole A and B, placed by the
 * same rules -- so a kernel that misplaces an element fails there as on a
 * GPU.  The emulated sum of the 16 exact products and C is rounded to
 * fp32 once; the tensor cores add in an order of their own, so results
 * agree to fp32 rounding, not to the bit.
 */
#ifndef LC_BACKEND_CUDA_CUDA_MMA_CUH
#define LC_BACKEND_CUDA_CUDA_MMA_CUH

#include "backend-cuda/cuda_common.cuh"

#ifdef LC_CUDA_EMU
#include <string.h>

/* its locals named half would shadow cuda_fp16.h's type */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "core/half.h"
#pragma GCC diagnostic pop
#endif

/* bf16 of x, rounded to nearest even, as bits (NaN stays NaN); the
 * emulation uses the conversion of the file readers and the reference
 * kernels, which tests/test_cuda.c checks against the GPU's */
__device__ static inline uint16_t lc_bf16_bits(float x)
{
#ifdef LC_CUDA_EMU
    return lc_f32_to_bf16(x);
#else
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
#endif
}

__device__ static inline float lc_bf16_value(uint16_t b)
{
#ifdef LC_CUDA_EMU
    return lc_bf16_to_f32(b);
#else
    return __uint_as_float((uint32_t)b << 16);
#endif
}

/* lo and hi rounded to bf16, lo in the low half */
__device__ static inline uint32_t lc_pack_bf16(float lo, float hi)
{
#ifdef LC_CUDA_EMU
    return (uint32_t)lc_f32_to_bf16(lo) | ((uint32_t)lc_f32_to_bf16(hi) << 16);
#else
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
#endif
}

/* two bf16 at p (4-byte aligned) as one register */
__device__ static inline uint32_t lc_ld_pair(const uint16_t *p)
{
#ifdef LC_CUDA_EMU
    uint32_t u;
    memcpy(&u, p, sizeof(u));
    return u;
#else
    return *reinterpret_cast<const uint32_t *>(p);
#endif
}

/* two bf16 from anywhere, lo in the low half */
__device__ static inline uint32_t lc_pair(uint16_t lo, uint16_t hi)
{
    return (uint32_t)lo | ((uint32_t)hi << 16);
}

/* 16 bytes from src to dst, both 16-byte aligned */
__device__ static inline void lc_copy16(void *dst, const void *src)
{
#ifdef LC_CUDA_EMU
    memcpy(dst, src, 16);
#else
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
#endif
}

__device__ static inline void lc_zero16(void *dst)
{
#ifdef LC_CUDA_EMU
    memset(dst, 0, 16);
#else
    *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
#endif
}

/* c += A b, one warp (every lane calls it, with the same control flow) */
__device__ static inline void lc_mma_16816(float c[4], const uint32_t a[4], const uint32_t b[2])
{
#ifdef LC_CUDA_EMU
    const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    const unsigned char(*slots)[LC_EMU_SLOT] =
        lc_emu_warp_collective(0xffffffffu, LC_EMU_MMA, mine, sizeof(mine));
    const int lane = (int)(threadIdx.x & 31u);
    const int g = lane >> 2, t = lane & 3;

    for (int i = 0; i < 4; i++) {
        const int row = g + (i >= 2 ? 8 : 0);
        const int col = 2 * t + (i & 1);
        double acc = c[i];
        for (int k = 0; k < 16; k++) {
            /* A[row][k]: lane (row % 8) * 4 + (k % 8) / 2, register
             * (row >= 8) + 2 (k >= 8); B[k][col]: lane col * 4 + (k % 8) / 2,
             * register (k >= 8); the odd index in the high half */
            uint32_t ra, rb;
            memcpy(&ra, slots[(row % 8) * 4 + (k % 8) / 2] + 4 * ((row >= 8) + 2 * (k >= 8)), 4);
            memcpy(&rb, slots[col * 4 + (k % 8) / 2] + 4 * (4 + (k >= 8)), 4);
            acc += (double)lc_bf16_value((uint16_t)(k & 1 ? ra >> 16 : ra)) *
                   (double)lc_bf16_value((uint16_t)(k & 1 ? rb >> 16 : rb));
        }
        c[i] = (float)acc;
    }
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

/* ------------------------------------------------------ fragment loads
 * From bf16 tiles (shared or global memory), ld elements apart; "rows"
 * and "columns" are those of the operand.  Pairs of consecutive elements
 * are one 32-bit load where the layout makes them adjacent (base and ld
 * even), two 16-bit loads elsewhere. */

__device__ static inline int lc_lane(void)
{
    return (int)(threadIdx.x & 31u);
}

/* A (16x16) from A[m * ld + k] */
__device__ static inline void lc_frag_a(uint32_t a[4], const uint16_t *A, int ld)
{
    const int g = lc_lane() >> 2, t = lc_lane() & 3;
    a[0] = lc_ld_pair(A + g * ld + 2 * t);
    a[1] = lc_ld_pair(A + (g + 8) * ld + 2 * t);
    a[2] = lc_ld_pair(A + g * ld + 2 * t + 8);
    a[3] = lc_ld_pair(A + (g + 8) * ld + 2 * t + 8);
}

/* A (16x16) from its transpose: A[m][k] at At[k * ld + m] */
__device__ static inline void lc_frag_a_t(uint32_t a[4], const uint16_t *At, int ld)
{
    const int g = lc_lane() >> 2, t = lc_lane() & 3;
    const uint16_t *p = At + 2 * t * ld + g;
    a[0] = lc_pair(p[0], p[ld]);
    a[1] = lc_pair(p[8], p[ld + 8]);
    a[2] = lc_pair(p[8 * ld], p[9 * ld]);
    a[3] = lc_pair(p[8 * ld + 8], p[9 * ld + 8]);
}

/* A (16x16) from fp32 A[m * ld + k] (ld even), rounded to bf16 */
__device__ static inline void lc_frag_a_f32(uint32_t a[4], const float *A, int ld)
{
    const int g = lc_lane() >> 2, t = lc_lane() & 3;
    const float *p = A + g * ld + 2 * t;
    a[0] = lc_pack_bf16(p[0], p[1]);
    a[1] = lc_pack_bf16(p[8 * ld], p[8 * ld + 1]);
    a[2] = lc_pack_bf16(p[8], p[9]);
    a[3] = lc_pack_bf16(p[8 * ld + 8], p[8 * ld + 9]);
}

/* B (16x8) from Bt[n * ld + k] (the "col" layout: k adjacent) */
__device__ static inline void lc_frag_b(uint32_t b[2], const uint16_t *Bt, int ld)
{
    const int g = lc_lane() >> 2, t = lc_lane() & 3;
    b[0] = lc_ld_pair(Bt + g * ld + 2 * t);
    b[1] = lc_ld_pair(Bt + g * ld + 2 * t + 8);
}

/* B (16x8) from B[k * ld + n] (row-major: n adjacent) */
__device__ static inline void lc_frag_b_t(uint32_t b[2], const uint16_t *B, int ld)
{
    const int g = lc_lane() >> 2, t = lc_lane() & 3;
    const uint16_t *p = B + 2 * t * ld + g;
    b[0] = lc_pair(p[0], p[ld]);
    b[1] = lc_pair(p[8 * ld], p[9 * ld]);
}

/* The accumulators of the 16x8 products of columns 0-7 (c0) and 8-15
 * (c1), rounded to bf16: the A operand (16x16) of a product with k over
 * those 16 columns. */
__device__ static inline void lc_frag_a_from_acc(uint32_t a[4], const float c0[4],
                                                 const float c1[4])
{
    a[0] = lc_pack_bf16(c0[0], c0[1]);
    a[1] = lc_pack_bf16(c0[2], c0[3]);
    a[2] = lc_pack_bf16(c1[0], c1[1]);
    a[3] = lc_pack_bf16(c1[2], c1[3]);
}

/* Row and column (within the 16x8 tile) of accumulator element i of this
 * lane. */
__device__ static inline int lc_acc_row(int i)
{
    return (lc_lane() >> 2) + (i >= 2 ? 8 : 0);
}

__device__ static inline int lc_acc_col(int i)
{
    return 2 * (lc_lane() & 3) + (i & 1);
}

/* Sum and max over the four lanes that hold one accumulator row (lanes
 * 4g .. 4g+3), in a fixed order. */
__device__ static inline float lc_quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}

__device__ static inline float lc_quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    return v;
}

#endif /* LC_BACKEND_CUDA_CUDA_MMA_CUH */
