/*
 * Dense algebra on cuBLAS: the row-major gemm of backend.h and the linear
 * layers, fp32 SGEMM for F32 weights (no TF32: the handle keeps the
 * default math mode) and, for F16/BF16 weights, cublasGemmEx on the tensor
 * cores with the activations rounded to the weight dtype in scratch and
 * fp32 accumulation and output.
 *
 * cuBLAS is column-major; a row-major matrix X[r,c] with row stride ld is
 * the column-major X^T with the same ld, so the row-major C = A B is
 * computed as the column-major C^T = B^T A^T: the operands swap places.
 */
#include "backend-cuda/cuda_common.cuh"

/* C[M,N] = beta * C (beta = 0 writes zeros, ignoring C): what gemm
 * means when K = 0, which cuBLAS would reject with ld < 1. */
__global__ void k_scale_rows(float *C, int M, int N, int ldc, float beta)
{
    int64_t total = (int64_t)M * N;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = t / N;
        int64_t j = t - i * N;
        float *c = C + (size_t)i * ldc + j;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

/* round n fp32 values to the weight dtype, round to nearest even */
__global__ void k_to_half(void *dst, const float *src, int64_t n, enum lc_dtype type)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (type == LC_DTYPE_F16) {
            ((__half *)dst)[i] = __float2half_rn(src[i]);
        } else {
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
        }
    }
}

static const char *scale_rows(struct lc_cuda_ctx *c, float *C, int M, int N, int ldc, float beta)
{
    k_scale_rows<<<lc_cuda_ew_blocks((int64_t)M * N), LC_CUDA_EW_THREADS, 0, c->stream>>>(
        C, M, N, ldc, beta);
    return lc_cuda_launched();
}

extern "C" const char *lc_cuda_gemm(struct lc_cuda_ctx *c, int ta, int tb, int M, int N, int K,
                                    float alpha, const float *A, int lda, const float *B,
                                    int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) {
        return NULL;
    }
    if (K <= 0) {
        return scale_rows(c, C, M, N, ldc, beta);
    }
    /* column-major C^T[N,M] = op(B)^T op(A)^T */
    return lc_cublas_result(cublasSgemm(c->cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb,
                                        A, lda, &beta, C, ldc));
}

/* fwd: y[N,M] = x[N,K] w[M,K]^T + beta y, column-major y^T = w x^T: A = w
 *      (stored K x M, transposed), B = x^T (K x N).
 * bwd: dx[N,K] = dy[N,M] w[M,K] + beta dx, column-major dx^T = w^T dy^T:
 *      A = w (stored K x M as is), B = dy^T (M x N). */
extern "C" const char *lc_cuda_linear(struct lc_cuda_ctx *c, int bwd, float *out, const float *in,
                                      const void *w, enum lc_dtype wtype, int N, int K, int M,
                                      float beta)
{
    const float one = 1.0f;
    int in_cols = bwd ? M : K;  /* x is [N,K], dy is [N,M] */
    int out_cols = bwd ? K : M;
    int inner = bwd ? M : K;
    cublasOperation_t opa = bwd ? CUBLAS_OP_N : CUBLAS_OP_T;
    cudaDataType_t ctype;
    void *in_half;
    int64_t n_in = (int64_t)N * in_cols;

    if (N <= 0 || out_cols <= 0) {
        return NULL;
    }
    if (inner <= 0) {
        return scale_rows(c, out, N, out_cols, out_cols, beta);
    }
    if (wtype == LC_DTYPE_F32) {
        return lc_cublas_result(cublasSgemm(c->cublas, opa, CUBLAS_OP_N, out_cols, N, inner, &one,
                                            (const float *)w, K, in, in_cols, &beta, out,
                                            out_cols));
    }
    if (wtype == LC_DTYPE_F16) {
        ctype = CUDA_R_16F;
    } else if (wtype == LC_DTYPE_BF16) {
        ctype = CUDA_R_16BF;
    } else {
        return "the weight dtype is not F32, F16 or BF16";
    }
    in_half = lc_cuda_scratch(c, (size_t)n_in * 2);
    if (in_half == NULL) {
        return "out of device memory for the rounded activations";
    }
    k_to_half<<<lc_cuda_ew_blocks(n_in), LC_CUDA_EW_THREADS, 0, c->stream>>>(in_half, in, n_in,
                                                                            wtype);
    {
        const char *e = lc_cuda_launched();
        if (e != NULL) {
            return e;
        }
    }
    return lc_cublas_result(cublasGemmEx(c->cublas, opa, CUBLAS_OP_N, out_cols, N, inner, &one, w,
                                         ctype, K, in_half, ctype, in_cols, &beta, out,
                                         CUDA_R_32F, out_cols, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
}
