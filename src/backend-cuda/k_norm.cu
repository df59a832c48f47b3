/* RMSNorm, forward and backward: one block per row. */
#include "backend-cuda/cuda_common.cuh"

#define NORM_THREADS 256

/* out = w * (x * r), r = 1/sqrt(mean(x^2) + eps).  out may alias x: every
 * x of the row is read for the sum before any thread writes. */
__global__ void k_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int C,
                              float eps)
{
    __shared__ float sh[32];
    const float *xr = x + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    float r;

    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        ss += xr[c] * xr[c];
    }
    ss = lc_block_sum(ss, sh);
    r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        o[c] = w[c] * (xr[c] * r);
    }
    if (rstd != NULL && threadIdx.x == 0) {
        rstd[blockIdx.x] = r;
    }
}

/* dx_c += r w_c g_c - x_c r^3 / C * sum_j g_j w_j x_j */
__global__ void k_rmsnorm_bwd_dx(float *dx, const float *dout, const float *x, const float *w,
                                 const float *rstd, int C)
{
    __shared__ float sh[32];
    size_t row = (size_t)blockIdx.x * C;
    float r = rstd[blockIdx.x];
    float dot = 0.0f;
    float coef;

    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        dot += dout[row + c] * w[c] * x[row + c];
    }
    dot = lc_block_sum(dot, sh);
    coef = dot * r * r * r / (float)C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        dx[row + c] += r * w[c] * dout[row + c] - coef * x[row + c];
    }
}

/* dw_c += sum_n g[n,c] x[n,c] r[n]: a block owns 32 columns; its rows of
 * threads take every DW_ROWS-th row, then one thread per column adds the
 * partials in row-group order. */
#define DW_COLS 32
#define DW_ROWS 16

__global__ void k_rmsnorm_bwd_dw(float *dw, const float *dout, const float *x, const float *rstd,
                                 int N, int C)
{
    __shared__ float part[DW_ROWS][DW_COLS + 1];
    int c = blockIdx.x * DW_COLS + threadIdx.x;
    float s = 0.0f;

    if (c < C) {
        for (int n = threadIdx.y; n < N; n += DW_ROWS) {
            size_t i = (size_t)n * C + c;
            s += dout[i] * x[i] * rstd[n];
        }
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
        for (int j = 0; j < DW_ROWS; j++) {
            t += part[j][threadIdx.x];
        }
        dw[c] += t;
    }
}

extern "C" const char *lc_cuda_rmsnorm_fwd(struct lc_cuda_ctx *c, float *out, float *rstd,
                                           const float *x, const float *w, int N, int C,
                                           float eps)
{
    k_rmsnorm_fwd<<<N, NORM_THREADS, 0, c->stream>>>(out, rstd, x, w, C, eps);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_rmsnorm_bwd(struct lc_cuda_ctx *c, float *dx, float *dw,
                                           const float *dout, const float *x, const float *w,
                                           const float *rstd, int N, int C)
{
    const char *e;

    k_rmsnorm_bwd_dx<<<N, NORM_THREADS, 0, c->stream>>>(dx, dout, x, w, rstd, C);
    e = lc_cuda_launched();
    if (e != NULL || dw == NULL) {
        return e;
    }
    k_rmsnorm_bwd_dw<<<(C + DW_COLS - 1) / DW_COLS, dim3(DW_COLS, DW_ROWS), 0, c->stream>>>(
        dw, dout, x, rstd, N, C);
    return lc_cuda_launched();
}
