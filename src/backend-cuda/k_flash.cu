/*
 * The teacher's causal softmax attention as one fused kernel on the bf16
 * tensor cores (flash attention: tiles of Q, K and V in shared memory and
 * registers, an online softmax, no T x T matrix anywhere).
 *
 * q, k and v are first rounded to bf16 into head-major copies, the head
 * dim zero-padded to DP, a multiple of 16 (k_to_bf16_heads).  A block of
 * four warps then owns 64 query rows of one (batch, head): each warp 16
 * rows, their Q fragments in registers.  For each tile of 64 keys that a
 * row of the block can see, K and V are copied into shared memory and the
 * warp computes
 *   S = Q K^T                        m16n8k16 products, fp32 accumulators
 *   m' = max(m, rowmax(scale S))     over the visible keys, per row
 *   P = exp(scale S - m')            fp32
 *   l = l exp(m - m') + rowsum(P)    fp32, from the unrounded P
 *   O = O exp(m - m') + P V          P rounded to bf16 (the accumulators
 *                                    of S are the A operand as they lie)
 * and at the end y = O / l.  Query i sits at absolute position q_pos0 + i
 * and sees keys j <= q_pos0 + i, j < Tk (backend.h).  Blocks with the most
 * key tiles start first.
 *
 * Error: with q, k, v as their bf16 roundings, every product and sum is
 * fp32 except P's rounding to bf16 for P V (relative 2^-8 at most), while
 * l sums the unrounded P, so |y - y_exact| <= 2^-8 sum_j p_j |v_j| / l <=
 * 2^-8 max|v|, plus fp32 rounding (tests/test_cuda.c checks that bound).
 * Deterministic: every sum has an order fixed by the shapes.
 */
#include "backend-cuda/cuda_mma.cuh"

#define FL_ROWS 64    /* query rows per block */
#define FL_KEYS 64    /* keys per tile */
#define FL_THREADS 128

/* dst [B, nh, T, DP] bf16 <- src [B, T, nh, D] fp32, zeros for d >= D */
static __global__ void k_to_bf16_heads(uint16_t *dst, const float *src, int B, int T, int nh,
                                       int D, int DP)
{
    const int64_t n = (int64_t)B * nh * T * DP;

    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int d = (int)(idx % DP);
        const int64_t rest = idx / DP;
        const int t = (int)(rest % T);
        const int64_t bh = rest / T;
        const int h = (int)(bh % nh);
        const int64_t b = bh / nh;
        dst[idx] = d < D ? lc_bf16_bits(src[((b * T + t) * nh + h) * D + d]) : (uint16_t)0;
    }
}

extern "C" const char *lc_cuda_to_bf16_heads(struct lc_cuda_ctx *c, uint16_t *dst,
                                             const float *src, int B, int T, int nh, int D,
                                             int DP)
{
    const int64_t n = (int64_t)B * nh * T * DP;

    if (n <= 0) {
        return NULL;
    }
    LC_LAUNCH(k_to_bf16_heads, lc_cuda_ew_blocks(n), LC_CUDA_EW_THREADS, c->stream)(
        dst, src, B, T, nh, D, DP);
    return lc_cuda_launched();
}

/* Copies rows [r0, r0 + 64) of a [T, DP] bf16 head into a shared tile
 * with rows ld apart; rows at or after T are zero. */
template <int DP>
__device__ static inline void fl_load_tile(uint16_t *tile, int ld, const uint16_t *head, int r0,
                                           int T)
{
    constexpr int CHUNKS = DP / 8; /* 16-byte pieces per row */

    for (int idx = (int)threadIdx.x; idx < FL_KEYS * CHUNKS; idx += FL_THREADS) {
        const int r = idx / CHUNKS;
        const int c8 = (idx % CHUNKS) * 8;
        uint16_t *dst = tile + r * ld + c8;
        if (r0 + r < T) {
            lc_copy16(dst, head + (int64_t)(r0 + r) * DP + c8);
        } else {
            lc_zero16(dst);
        }
    }
}

template <int DP>
static __global__ void __launch_bounds__(FL_THREADS)
    k_flash_fwd(float *y, const uint16_t *Qb, const uint16_t *Kb, const uint16_t *Vb, int B,
                int Tq, int Tk, int H, int Hkv, int D, int q_pos0, float scale_log2)
{
    constexpr int LD = DP + 8; /* shared rows: pairs conflict-free */
    constexpr int KS = DP / 16;
    constexpr int ND = DP / 8;
    uint16_t *Ks = LC_DYN_SMEM(uint16_t);
    uint16_t *Vs = Ks + FL_KEYS * LD;
    const int BH = B * H;
    const int nqt = (Tq + FL_ROWS - 1) / FL_ROWS;
    const int qt = nqt - 1 - (int)(blockIdx.x / (unsigned)BH); /* longest first */
    const int bh = (int)(blockIdx.x % (unsigned)BH);
    const int b = bh / H, h = bh % H;
    const int kvh = h / (H / Hkv);
    const int warp = (int)(threadIdx.x >> 5);
    const int lane = lc_lane();
    const int q0 = qt * FL_ROWS;
    const int r_lo = q0 + warp * 16 + (lane >> 2); /* this lane's rows: r_lo, r_lo + 8 */
    const uint16_t *Kh = Kb + ((int64_t)b * Hkv + kvh) * Tk * DP;
    const uint16_t *Vh = Vb + ((int64_t)b * Hkv + kvh) * Tk * DP;
    const int q_last = (q0 + FL_ROWS < Tq ? q0 + FL_ROWS : Tq) - 1;
    const int64_t kv_end64 = (int64_t)q_pos0 + q_last + 1;
    const int kv_end = kv_end64 < Tk ? (int)kv_end64 : Tk;
    uint32_t qf[KS][4];
    float o[ND][4];
    float m[2] = {-INFINITY, -INFINITY};
    float l[2] = {0.0f, 0.0f};

    /* Q through the K buffer into registers */
    fl_load_tile<DP>(Ks, LD, Qb + (int64_t)bh * Tq * DP, q0, Tq);
    __syncthreads();
    for (int kk = 0; kk < KS; kk++) {
        lc_frag_a(qf[kk], Ks + warp * 16 * LD + kk * 16, LD);
    }
    for (int nd = 0; nd < ND; nd++) {
        o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    }
    __syncthreads();

    for (int k0 = 0; k0 < kv_end; k0 += FL_KEYS) {
        float s[8][4];
        /* every key of the tile visible to every row of the warp */
        const int full = k0 + FL_KEYS <= Tk &&
                         (int64_t)k0 + FL_KEYS - 1 <= (int64_t)q_pos0 + q0 + warp * 16;

        fl_load_tile<DP>(Ks, LD, Kh, k0, Tk);
        fl_load_tile<DP>(Vs, LD, Vh, k0, Tk);
        __syncthreads();

        for (int nt = 0; nt < 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        }
        for (int kk = 0; kk < KS; kk++) {
            for (int nt = 0; nt < 8; nt++) {
                uint32_t bf[2];
                lc_frag_b(bf, Ks + nt * 8 * LD + kk * 16, LD);
                lc_mma_16816(s[nt], qf[kk], bf);
            }
        }
        /* scale (to log2 units) and mask; the row maxima of the tile */
        float mt[2] = {-INFINITY, -INFINITY};
        for (int nt = 0; nt < 8; nt++) {
            for (int i = 0; i < 4; i++) {
                const int key = k0 + nt * 8 + lc_acc_col(i);
                const int row = r_lo + (i >= 2 ? 8 : 0);
                float x = s[nt][i] * scale_log2;
                if (!full && (key >= Tk || (int64_t)key > (int64_t)q_pos0 + row)) {
                    x = -INFINITY;
                }
                s[nt][i] = x;
                mt[i >> 1] = fmaxf(mt[i >> 1], x);
            }
        }
        float alpha[2];
        for (int r = 0; r < 2; r++) {
            const float mn = fmaxf(m[r], lc_quad_max(mt[r]));
            /* every row sees key 0, in the first tile: mn is finite */
            alpha[r] = exp2f(m[r] - mn);
            m[r] = mn;
            l[r] *= alpha[r];
        }
        for (int nt = 0; nt < 8; nt++) {
            for (int i = 0; i < 4; i++) {
                const float p = exp2f(s[nt][i] - m[i >> 1]);
                s[nt][i] = p;
                l[i >> 1] += p;
            }
        }
        for (int nd = 0; nd < ND; nd++) {
            o[nd][0] *= alpha[0];
            o[nd][1] *= alpha[0];
            o[nd][2] *= alpha[1];
            o[nd][3] *= alpha[1];
        }
        /* O += P V, 16 keys at a time */
        for (int ks = 0; ks < 4; ks++) {
            uint32_t pf[4];
            lc_frag_a_from_acc(pf, s[2 * ks], s[2 * ks + 1]);
            for (int nd = 0; nd < ND; nd++) {
                uint32_t bf[2];
                lc_frag_b_t(bf, Vs + ks * 16 * LD + nd * 8, LD);
                lc_mma_16816(o[nd], pf, bf);
            }
        }
        __syncthreads(); /* the tiles are overwritten next */
    }

    for (int r = 0; r < 2; r++) {
        l[r] = lc_quad_sum(l[r]);
    }
    for (int nd = 0; nd < ND; nd++) {
        for (int i = 0; i < 4; i++) {
            const int row = r_lo + (i >= 2 ? 8 : 0);
            const int d = nd * 8 + lc_acc_col(i);
            if (row < Tq && d < D) {
                y[(((int64_t)b * Tq + row) * H + h) * D + d] = o[nd][i] / l[i >> 1];
            }
        }
    }
}

/* the padded head dims the kernel is built for */
static int flash_dp(int D)
{
    return D <= 16 ? 16 : D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 0;
}

extern "C" int lc_cuda_flash_supports(int D)
{
    return D >= 1 && flash_dp(D) > 0;
}

template <int DP>
static const char *flash_launch(struct lc_cuda_ctx *c, float *y, const uint16_t *Qb,
                                const uint16_t *Kb, const uint16_t *Vb, int B, int Tq, int Tk,
                                int H, int Hkv, int D, int q_pos0)
{
    const size_t smem = 2 * (size_t)FL_KEYS * (DP + 8) * sizeof(uint16_t);
    const int64_t blocks = (int64_t)B * H * ((Tq + FL_ROWS - 1) / FL_ROWS);
    const float scale_log2 = (float)(1.4426950408889634 / sqrt((double)D));

    if (blocks > 2147483647) {
        return "too many query tiles for one launch";
    }
    LC_LAUNCH_SMEM(k_flash_fwd<DP>, (unsigned)blocks, FL_THREADS, smem, c->stream)(
        y, Qb, Kb, Vb, B, Tq, Tk, H, Hkv, D, q_pos0, scale_log2);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_flash_fwd(struct lc_cuda_ctx *c, float *y, const float *q,
                                         const float *k, const float *v, int B, int Tq, int Tk,
                                         int H, int Hkv, int D, int q_pos0)
{
    const int DP = flash_dp(D);
    const size_t nq = (size_t)B * H * Tq * DP, nk = (size_t)B * Hkv * Tk * DP;
    uint16_t *Qb, *Kb, *Vb;
    const char *err;

    if (DP == 0) {
        return "internal error: flash attention for an unsupported head dim";
    }
    Qb = (uint16_t *)lc_cuda_scratch(c, (nq + 2 * nk + 64) * sizeof(uint16_t));
    if (Qb == NULL) {
        return "out of device memory for the attention operands";
    }
    /* 16-byte aligned pieces */
    Kb = Qb + (nq + 7) / 8 * 8;
    Vb = Kb + (nk + 7) / 8 * 8;
    if ((err = lc_cuda_to_bf16_heads(c, Qb, q, B, Tq, H, D, DP)) != NULL ||
        (err = lc_cuda_to_bf16_heads(c, Kb, k, B, Tk, Hkv, D, DP)) != NULL ||
        (err = lc_cuda_to_bf16_heads(c, Vb, v, B, Tk, Hkv, D, DP)) != NULL) {
        return err;
    }
    switch (DP) {
    case 16:
        return flash_launch<16>(c, y, Qb, Kb, Vb, B, Tq, Tk, H, Hkv, D, q_pos0);
    case 32:
        return flash_launch<32>(c, y, Qb, Kb, Vb, B, Tq, Tk, H, Hkv, D, q_pos0);
    case 64:
        return flash_launch<64>(c, y, Qb, Kb, Vb, B, Tq, Tk, H, Hkv, D, q_pos0);
    default:
        return flash_launch<128>(c, y, Qb, Kb, Vb, B, Tq, Tk, H, Hkv, D, q_pos0);
    }
}
