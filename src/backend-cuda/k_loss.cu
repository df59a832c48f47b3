/* Losses: per-row squared error, and cross-entropy over the vocabulary. */
#include "backend-cuda/cuda_common.cuh"

#define MSE_WARPS 8
#define XENT_THREADS 512

/* One warp per row.  dpred may alias pred: each lane reads an element
 * before it writes it. */
__global__ void k_mse(float *row_sse, float *dpred, const float *pred, const float *target,
                      int64_t rows, int cols, float grad_scale)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * MSE_WARPS + (threadIdx.x >> 5);
    const float *p;
    const float *t;
    float sse = 0.0f;

    if (r >= rows) {
        return; /* a whole warp leaves together: no shuffle is left waiting */
    }
    p = pred + (size_t)r * cols;
    t = target + (size_t)r * cols;
    for (int c = lane; c < cols; c += 32) {
        float e = p[c] - t[c];
        sse += e * e;
        if (dpred != NULL) {
            dpred[(size_t)r * cols + c] = grad_scale * 2.0f * e;
        }
    }
    sse = lc_warp_sum(sse);
    if (lane == 0) {
        row_sse[r] = sse;
    }
}

/* One block per row: the max, then the sum of exp(l - max), then the
 * loss and (optionally) the gradient.  dlogits may alias logits: the
 * target's logit is read by every thread before the first barrier, and in
 * the last pass each thread reads an element just before writing it.
 * Targets < 0 are ignored rows (loss 0, gradient 0); a target >= V is a
 * caller's bug and gives NaN (the reference asserts). */
__global__ void k_xent(float *row_loss, float *dlogits, const float *logits,
                       const int32_t *targets, int V, float grad_scale)
{
    __shared__ float sh[32];
    size_t row = (size_t)blockIdx.x * V;
    const float *l = logits + row;
    float *dl = dlogits != NULL ? dlogits + row : NULL;
    int t = targets[blockIdx.x];
    float lt;
    float mx = -INFINITY;
    float sum = 0.0f;
    float lse;

    if (t < 0 || t >= V) {
        float fill = t < 0 ? 0.0f : NAN;
        if (threadIdx.x == 0) {
            row_loss[blockIdx.x] = fill;
        }
        for (int j = threadIdx.x; dl != NULL && j < V; j += blockDim.x) {
            dl[j] = fill;
        }
        return;
    }
    lt = l[t];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        mx = fmaxf(mx, l[j]);
    }
    mx = lc_block_max(mx, sh);
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        sum += expf(l[j] - mx);
    }
    sum = lc_block_sum(sum, sh);
    lse = mx + logf(sum);
    if (threadIdx.x == 0) {
        row_loss[blockIdx.x] = lse - lt;
    }
    for (int j = threadIdx.x; dl != NULL && j < V; j += blockDim.x) {
        float p = expf(l[j] - lse);
        dl[j] = grad_scale * (p - (j == t ? 1.0f : 0.0f));
    }
}

extern "C" const char *lc_cuda_mse_fwd_bwd(struct lc_cuda_ctx *c, float *row_sse, float *dpred,
                                           const float *pred, const float *target, int64_t rows,
                                           int cols, float grad_scale)
{
    int64_t blocks = (rows + MSE_WARPS - 1) / MSE_WARPS;
    if (blocks > 0x7fffffff) {
        return "mse: too many rows for one launch";
    }
    k_mse<<<(unsigned)blocks, MSE_WARPS * 32, 0, c->stream>>>(row_sse, dpred, pred, target, rows,
                                                             cols, grad_scale);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_xent_fwd_bwd(struct lc_cuda_ctx *c, float *row_loss,
                                            float *dlogits, const float *logits,
                                            const int32_t *targets, int N, int V,
                                            float grad_scale)
{
    k_xent<<<N, XENT_THREADS, 0, c->stream>>>(row_loss, dlogits, logits, targets, V, grad_scale);
    return lc_cuda_launched();
}
