/*
 * The teacher: causal softmax attention with grouped-query heads.
 *
 * Per batch row b, per chunk of query rows [i0, i0 + rows) and per
 * position g of a head inside its KV group (query head h = kvh * group + g
 * reads KV head kvh), three steps run over the Hkv KV heads at once:
 *   S = scale * Q K^T    cuBLAS strided-batched SGEMM, [Hkv, rows, nk]
 *   P = softmax(S)       one block per row, masked causally
 *   Y = P V              cuBLAS strided-batched SGEMM into y
 * With g fixed, the heads kvh * group + g sit group * D floats apart in q
 * and y and the KV heads D floats apart in k and v: constant strides, so
 * one batched call covers them.  nk = the keys the chunk's last query sees;
 * the chunk size bounds the score buffer (LC_CUDA_ATTN_SCORE_BYTES).
 * Everything is fp32 (no TF32, unless the context's tf32 switch is on), so
 * it compares with the reference closely.
 *
 * With the context's bf16 switch on (the default), chunks of at least
 * LC_CUDA_FLASH_MIN_ROWS query rows with a head dim the fused kernel is
 * built for run the bf16 flash attention of k_flash.cu instead; decoding
 * steps (a few rows against a long cache) stay here, where the work is
 * reading the cache.
 */
#include "backend-cuda/cuda_common.cuh"

#define SOFTMAX_THREADS 256

/* Row r of S (r = kvh * rows + i) is query i0 + i at absolute position
 * pos0 + i, which sees keys 0 .. min(pos0 + i, Tk - 1); later keys get
 * weight 0.  p_j = exp(s_j - max) / sum, as the reference computes it. */
static __global__ void k_attn_softmax(float *S, int rows, int nk, int64_t pos0, int Tk)
{
    __shared__ float sh[32];
    float *s = S + (size_t)blockIdx.x * nk;
    int i = blockIdx.x % rows;
    int64_t last = pos0 + i;
    int vis = last + 1 < Tk ? (int)(last + 1) : Tk;
    float mx = -INFINITY;
    float den = 0.0f;

    for (int j = threadIdx.x; j < vis; j += blockDim.x) {
        mx = fmaxf(mx, s[j]);
    }
    mx = lc_block_max(mx, sh);
    for (int j = threadIdx.x; j < vis; j += blockDim.x) {
        den += expf(s[j] - mx);
    }
    den = lc_block_sum(den, sh);
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        s[j] = j < vis ? expf(s[j] - mx) / den : 0.0f;
    }
}

extern "C" const char *lc_cuda_attn_fwd_fp32(struct lc_cuda_ctx *c, float *y, const float *q,
                                             const float *k, const float *v, int B, int Tq,
                                             int Tk, int H, int Hkv, int D, int q_pos0)
{
    float scale = (float)(1.0 / sqrt((double)D));
    int group = H / Hkv;
    int ldq = H * D;   /* row stride of q and y */
    int ldk = Hkv * D; /* row stride of k and v */
    int chunk = c->attn_chunk > 0 ? c->attn_chunk : LC_CUDA_ATTN_CHUNK;
    float *S;

    if (B <= 0 || Tq <= 0 || H <= 0 || D <= 0) {
        return NULL;
    }
    if (Tk <= 0) {
        /* no keys: every output is an empty sum */
        cudaError_t e = cudaMemsetAsync(y, 0, (size_t)B * Tq * H * D * sizeof(float), c->stream);
        return e == cudaSuccess ? NULL : cudaGetErrorString(e);
    }
    if (chunk > Tq) {
        chunk = Tq;
    }
    while (chunk > 1 && (size_t)Hkv * chunk * Tk * sizeof(float) > LC_CUDA_ATTN_SCORE_BYTES) {
        chunk = (chunk + 1) / 2;
    }
    S = (float *)lc_cuda_scratch(c, (size_t)Hkv * chunk * Tk * sizeof(float));
    if (S == NULL) {
        return "out of device memory for the attention scores";
    }
    for (int b = 0; b < B; b++) {
        const float *kb = k + (size_t)b * Tk * ldk;
        const float *vb = v + (size_t)b * Tk * ldk;
        for (int i0 = 0; i0 < Tq; i0 += chunk) {
            int rows = Tq - i0 < chunk ? Tq - i0 : chunk;
            int64_t pos0 = (int64_t)q_pos0 + i0;
            int nk = pos0 + rows < Tk ? (int)(pos0 + rows) : Tk;
            long long stride_s = (long long)rows * nk;
            for (int g = 0; g < group; g++) {
                size_t off = ((size_t)b * Tq + i0) * ldq + (size_t)g * D;
                const char *e;
                /* column-major S^T[nk, rows] = K[nk, D] Q^T[D, rows], per kvh */
                e = lc_cuda_sgemm_sb(c, CUBLAS_OP_T, CUBLAS_OP_N, nk, rows, D, scale, kb, ldk, D,
                                     q + off, ldq, (long long)group * D, 0.0f, S, nk, stride_s,
                                     Hkv);
                if (e != NULL) {
                    return e;
                }
                LC_LAUNCH(k_attn_softmax, Hkv * rows, SOFTMAX_THREADS, c->stream)(S, rows, nk,
                                                                                  pos0, Tk);
                e = lc_cuda_launched();
                if (e != NULL) {
                    return e;
                }
                /* column-major Y^T[D, rows] = V^T[D, nk] P^T[nk, rows], per kvh */
                e = lc_cuda_sgemm_sb(c, CUBLAS_OP_N, CUBLAS_OP_N, D, rows, nk, 1.0f, vb, ldk, D,
                                     S, nk, stride_s, 0.0f, y + off, ldq, (long long)group * D,
                                     Hkv);
                if (e != NULL) {
                    return e;
                }
            }
        }
    }
    return NULL;
}

extern "C" const char *lc_cuda_attn_fwd(struct lc_cuda_ctx *c, float *y, const float *q,
                                        const float *k, const float *v, int B, int Tq, int Tk,
                                        int H, int Hkv, int D, int q_pos0)
{
    if (c->attn_bf16 && Tk > 0 && Tq >= LC_CUDA_FLASH_MIN_ROWS && lc_cuda_flash_supports(D)) {
        return B > 0 && H > 0 ? lc_cuda_flash_fwd(c, y, q, k, v, B, Tq, Tk, H, Hkv, D, q_pos0)
                              : NULL;
    }
    return lc_cuda_attn_fwd_fp32(c, y, q, k, v, B, Tq, Tk, H, Hkv, D, q_pos0);
}
