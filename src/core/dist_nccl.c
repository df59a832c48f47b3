/*
 * NCCL collectives of GPU ranks (dist_nccl.h).  One NCCL communicator per
 * lolcats communicator, on its own stream; before each call the backend's
 * queue is drained (be->ops->sync), so that the data NCCL reads is
 * written, and each call waits for its stream, so that the backend's next
 * kernels see what NCCL wrote.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "core/dist_nccl.h"
#include "core/util.h"

struct lc_nccl {
    struct lc_backend *be;
    ncclComm_t comm;
    cudaStream_t stream;
};

_Static_assert(sizeof(ncclUniqueId) == LC_NCCL_ID_BYTES, "NCCL unique id size");

static lc_status nccl_fail(struct lc_error *err, ncclResult_t r, const char *what)
{
    return lc_err_set(err, LC_ERR_DIST, "%s failed: %s", what, ncclGetErrorString(r));
}

/* waits for the stream, after the call was queued */
static lc_status finish(struct lc_nccl *n, ncclResult_t r, const char *what, struct lc_error *err)
{
    cudaError_t e;

    if (r != ncclSuccess) {
        return nccl_fail(err, r, what);
    }
    e = cudaStreamSynchronize(n->stream);
    if (e != cudaSuccess) {
        return lc_err_set(err, LC_ERR_DIST, "%s: %s", what, cudaGetErrorString(e));
    }
    return LC_OK;
}

lc_status lc_nccl_unique_id(unsigned char id[LC_NCCL_ID_BYTES], struct lc_error *err)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);

    if (r != ncclSuccess) {
        return nccl_fail(err, r, "ncclGetUniqueId");
    }
    memcpy(id, &u, sizeof(u));
    return LC_OK;
}

lc_status lc_nccl_new(struct lc_nccl **out, struct lc_backend *be,
                      const unsigned char id[LC_NCCL_ID_BYTES], int rank, int size,
                      struct lc_error *err)
{
    struct lc_nccl *n = calloc(1, sizeof(*n));
    ncclUniqueId u;
    ncclResult_t r;

    *out = NULL;
    if (n == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    n->be = be;
    if (cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking) != cudaSuccess) {
        free(n);
        return lc_err_set(err, LC_ERR_DIST, "cannot create a CUDA stream for NCCL");
    }
    memcpy(&u, id, sizeof(u));
    r = ncclCommInitRank(&n->comm, size, u, rank);
    if (r != ncclSuccess) {
        cudaStreamDestroy(n->stream);
        free(n);
        return nccl_fail(err, r, "ncclCommInitRank");
    }
    *out = n;
    return LC_OK;
}

void lc_nccl_free(struct lc_nccl *n)
{
    if (n == NULL) {
        return;
    }
    ncclCommDestroy(n->comm);
    cudaStreamDestroy(n->stream);
    free(n);
}

lc_status lc_nccl_bcast(struct lc_nccl *n, void *buf, size_t bytes, int root, struct lc_error *err)
{
    lc_status rc = n->be->ops->sync(n->be, err);
    if (rc != LC_OK) {
        return rc;
    }
    return finish(n, ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, n->stream),
                  "ncclBroadcast", err);
}

lc_status lc_nccl_allgather(struct lc_nccl *n, const void *send, void *recv, size_t bytes,
                            struct lc_error *err)
{
    lc_status rc = n->be->ops->sync(n->be, err);
    if (rc != LC_OK) {
        return rc;
    }
    return finish(n, ncclAllGather(send, recv, bytes, ncclUint8, n->comm, n->stream),
                  "ncclAllGather", err);
}

lc_status lc_nccl_send(struct lc_nccl *n, const void *buf, size_t bytes, int peer,
                       struct lc_error *err)
{
    lc_status rc = n->be->ops->sync(n->be, err);
    if (rc != LC_OK) {
        return rc;
    }
    return finish(n, ncclSend(buf, bytes, ncclUint8, peer, n->comm, n->stream), "ncclSend", err);
}

lc_status lc_nccl_recv(struct lc_nccl *n, void *buf, size_t bytes, int peer, struct lc_error *err)
{
    lc_status rc = n->be->ops->sync(n->be, err);
    if (rc != LC_OK) {
        return rc;
    }
    return finish(n, ncclRecv(buf, bytes, ncclUint8, peer, n->comm, n->stream), "ncclRecv", err);
}
