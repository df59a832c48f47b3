/*
 * The CPU emulation of the CUDA runtime and cuBLAS entries the cuda
 * backend uses (see cuda_emu.h): host memory, synchronous "streams", and
 * a plain column-major SGEMM that rejects what cuBLAS rejects.  Test code
 * only: linked into tests/test_cuda_emu, never into the library.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cuda/cuda_kernels.h"

struct lc_emu_dim lc_emu_thread_idx, lc_emu_block_idx, lc_emu_block_dim, lc_emu_grid_dim;
long long lc_emu_launches;

static cudaError_t last_error = cudaSuccess;
static int stream_token;
static int handle_token;

void lc_emu_launch_failed(void)
{
    last_error = cudaErrorInvalidConfiguration;
}

cudaError_t lc_emu_cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t lc_emu_cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    *stream = (cudaStream_t)(void *)&stream_token;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaStreamDestroy(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

/* fresh memory is NaN bytes: reads of scratch nobody wrote show up */
cudaError_t lc_emu_cudaMalloc(void **p, size_t size)
{
    /* more than a test could want: out of memory, as a device would say */
    if (size > ((size_t)1 << 36)) {
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    *p = malloc(size > 0 ? size : 1);
    if (*p == NULL) {
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xff, size);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemsetAsync(void *p, int value, size_t count, cudaStream_t stream)
{
    (void)stream;
    memset(p, value, count);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemcpyAsync(void *dst, const void *src, size_t count,
                                   enum cudaMemcpyKind kind, cudaStream_t stream)
{
    (void)kind;
    (void)stream;
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

const char *lc_emu_cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument (emulated)";
    case cudaErrorMemoryAllocation:
        return "out of memory (emulated)";
    default:
        return "error (emulated)";
    }
}

cudaError_t lc_emu_cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    (void)device;
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "CPU emulation");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->totalGlobalMem = (size_t)1 << 30;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaDriverGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

/* ------------------------------------------------------------- cuBLAS */

cublasStatus_t lc_emu_cublasCreate(cublasHandle_t *handle)
{
    *handle = (cublasHandle_t)(void *)&handle_token;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasDestroy(cublasHandle_t handle)
{
    (void)handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    (void)handle;
    (void)stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    (void)handle;
    (void)mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *lc_emu_cublasGetStatusString(cublasStatus_t status)
{
    return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS"
                                           : "CUBLAS_STATUS_INVALID_VALUE (emulated)";
}

cublasStatus_t lc_emu_cublasGetProperty(libraryPropertyType type, int *value)
{
    *value = type == MAJOR_VERSION ? 13 : 0;
    return CUBLAS_STATUS_SUCCESS;
}

static int max1(int a)
{
    return a > 1 ? a : 1;
}

/* column-major C = alpha op(A) op(B) + beta C per batch entry; beta = 0
 * ignores C (NaN there does not propagate), as cuBLAS does */
cublasStatus_t lc_emu_cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                                cublasOperation_t transb, int m, int n, int k,
                                                const float *alpha, const float *A, int lda,
                                                long long int strideA, const float *B, int ldb,
                                                long long int strideB, const float *beta,
                                                float *C, int ldc, long long int strideC,
                                                int batchCount)
{
    const int ta = transa != CUBLAS_OP_N;
    const int tb = transb != CUBLAS_OP_N;

    (void)handle;
    if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) ||
        (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) || m < 0 || n < 0 || k < 0 ||
        batchCount < 0 || lda < max1(ta ? k : m) || ldb < max1(tb ? n : k) || ldc < max1(m)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int bt = 0; bt < batchCount; bt++) {
        const float *a = A + (long long)bt * strideA;
        const float *b = B + (long long)bt * strideB;
        float *c = C + (long long)bt * strideC;

        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                float *cij = c + (size_t)j * ldc + i;
                for (int l = 0; l < k; l++) {
                    float x = ta ? a[(size_t)i * lda + l] : a[(size_t)l * lda + i];
                    float y = tb ? b[(size_t)l * ldb + j] : b[(size_t)j * ldb + l];
                    acc += x * y;
                }
                *cij = *beta == 0.0f ? *alpha * acc : *alpha * acc + *beta * *cij;
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* fp32 operands only; the TF32 compute type is emulated as fp32 */
cublasStatus_t lc_emu_cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA,
    const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F ||
        (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32)) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return lc_emu_cublasSgemmStridedBatched(handle, transa, transb, m, n, k, alpha, A, lda,
                                            strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                            batchCount);
}

/* --------------------------------------------------- the backend's own */

/* The kernels run on any host. */
const char *lc_cuda_probe(void)
{
    return NULL;
}
