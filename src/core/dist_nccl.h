/*
 * NCCL for the data collectives of GPU ranks (dist.c uses it when the
 * build has CUDA, MPI and NCCL, and the backend is cuda).  Buffers are
 * device memory of the backend; each call waits for the backend's queued
 * work first and returns when NCCL is done.
 */
#ifndef LC_CORE_DIST_NCCL_H
#define LC_CORE_DIST_NCCL_H

#include <stddef.h>

#include "core/backend.h"
#include "lolcats/lolcats.h"

#ifdef LC_HAVE_NCCL

/* sizeof(ncclUniqueId) */
#define LC_NCCL_ID_BYTES 128

struct lc_nccl;

lc_status lc_nccl_unique_id(unsigned char id[LC_NCCL_ID_BYTES], struct lc_error *err);
lc_status lc_nccl_new(struct lc_nccl **out, struct lc_backend *be,
                      const unsigned char id[LC_NCCL_ID_BYTES], int rank, int size,
                      struct lc_error *err);
void lc_nccl_free(struct lc_nccl *n);
lc_status lc_nccl_bcast(struct lc_nccl *n, void *buf, size_t bytes, int root, struct lc_error *err);
lc_status lc_nccl_allgather(struct lc_nccl *n, const void *send, void *recv, size_t bytes,
                            struct lc_error *err);
lc_status lc_nccl_send(struct lc_nccl *n, const void *buf, size_t bytes, int peer,
                       struct lc_error *err);
lc_status lc_nccl_recv(struct lc_nccl *n, void *buf, size_t bytes, int peer, struct lc_error *err);

#endif /* LC_HAVE_NCCL */

#endif /* LC_CORE_DIST_NCCL_H */
