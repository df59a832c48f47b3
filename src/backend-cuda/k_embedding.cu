/* Token embeddings: the gather and its deterministic scatter-add. */
#include "backend-cuda/cuda_common.cuh"

/* out[N,C] = table[ids[n], :] */
__global__ void k_embedding_fwd(float *out, const int32_t *ids, const void *table,
                                enum lc_dtype ttype, int N, int C)
{
    int64_t total = (int64_t)N * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / C;
        int64_t c = i - n * C;
        out[i] = lc_load_elem(table, ttype, (size_t)ids[n] * C + c);
    }
}

/* One thread per column c walks the tokens in order and adds each row's
 * value into its id's row: repeated ids sum in token order, the same sum
 * as the reference, with no atomics.  Ids outside [0, V) are skipped. */
__global__ void k_embedding_bwd(float *dtable, const float *dout, const int32_t *ids, int N,
                                int C, int V)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) {
        return;
    }
    for (int n = 0; n < N; n++) {
        int32_t id = ids[n];
        if (id >= 0 && id < V) {
            dtable[(size_t)id * C + c] += dout[(size_t)n * C + c];
        }
    }
}

extern "C" const char *lc_cuda_embedding_fwd(struct lc_cuda_ctx *c, float *out,
                                             const int32_t *ids, const void *table,
                                             enum lc_dtype ttype, int N, int C)
{
    if (ttype != LC_DTYPE_F32 && ttype != LC_DTYPE_F16 && ttype != LC_DTYPE_BF16) {
        return "the table's dtype is not F32, F16 or BF16";
    }
    k_embedding_fwd<<<lc_cuda_ew_blocks((int64_t)N * C), LC_CUDA_EW_THREADS, 0, c->stream>>>(
        out, ids, table, ttype, N, C);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_embedding_bwd(struct lc_cuda_ctx *c, float *dtable,
                                             const float *dout, const int32_t *ids, int N, int C,
                                             int V)
{
    const int threads = 128;
    k_embedding_bwd<<<(C + threads - 1) / threads, threads, 0, c->stream>>>(dtable, dout, ids, N,
                                                                           C, V);
    return lc_cuda_launched();
}
