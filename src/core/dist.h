/*
 * Ranks and collectives: the layer between the trainer and MPI (or NCCL
 * for the data of GPU ranks).
 *
 * A communicator (struct lc_comm) is a group of ranks.  The process's own
 * place among all ranks is struct lc_dist (lolcats.h: lc_dist_open).
 * Without MPI, or when the program was not started by mpirun, there is one
 * rank and every collective is a copy or nothing.
 *
 * Data buffers are host memory, or backend memory when a backend is
 * passed: a backend whose memory is not host memory (cuda) moves its data
 * through NCCL when the build has it, else through host copies.  Control
 * values (flags, counts, losses) are always host memory and go through
 * MPI.  Every call is blocking unless named otherwise; a failure (a rank
 * died, the network broke) is LC_ERR_DIST with the MPI error text.
 */
#ifndef LC_CORE_DIST_H
#define LC_CORE_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"
#include "lolcats/lolcats.h"

struct lc_comm;
struct lc_comm_req;

struct lc_dist {
    int rank;                /* in the world, 0 .. size-1 */
    int size;
    struct lc_comm *world;
    int mpi;                 /* MPI was initialized by lc_dist_open */
    int host_rank;           /* among the ranks of this host */
    int host_size;
    int n_hosts;
    char describe[256];
};

/* A communicator of this process alone. */
lc_status lc_comm_new_self(struct lc_comm **out, struct lc_error *err);
int lc_comm_rank(const struct lc_comm *c);
int lc_comm_size(const struct lc_comm *c);
/* A new communicator of the ranks passing the same color, ordered by key
 * (collective over c). */
lc_status lc_comm_split(struct lc_comm *c, int color, int key, struct lc_comm **out,
                        struct lc_error *err);
void lc_comm_free(struct lc_comm *c);
/* NCCL for the backend data of this communicator's ranks (a no-op unless
 * the build has NCCL and be is a GPU backend; collective over c). */
lc_status lc_comm_attach_backend(struct lc_comm *c, struct lc_backend *be, struct lc_error *err);

lc_status lc_comm_barrier(struct lc_comm *c, struct lc_error *err);
/* bytes of buf from root to every rank */
lc_status lc_comm_bcast(struct lc_comm *c, struct lc_backend *be, void *buf, size_t bytes,
                        int root, struct lc_error *err);
/* recv [size * bytes] = every rank's send [bytes], in rank order */
lc_status lc_comm_allgather(struct lc_comm *c, struct lc_backend *be, const void *send,
                            void *recv, size_t bytes, struct lc_error *err);
/* v[0..n) = the largest over the ranks, element by element (host) */
lc_status lc_comm_allreduce_max(struct lc_comm *c, int64_t *v, int n, struct lc_error *err);
/* root's recv [size * bytes] = every rank's send [bytes], in rank order
 * (host; recv is only used on root) */
lc_status lc_comm_gather(struct lc_comm *c, const void *send, void *recv, size_t bytes, int root,
                         struct lc_error *err);

/* Point to point; tags below 1000 are the caller's. */
lc_status lc_comm_send(struct lc_comm *c, struct lc_backend *be, const void *buf, size_t bytes,
                       int peer, int tag, struct lc_error *err);
lc_status lc_comm_recv(struct lc_comm *c, struct lc_backend *be, void *buf, size_t bytes,
                       int peer, int tag, struct lc_error *err);
/* Starts sending host memory; buf must stay untouched until lc_comm_wait
 * (which frees *req; a NULL req is done). */
lc_status lc_comm_isend(struct lc_comm *c, const void *buf, size_t bytes, int peer, int tag,
                        struct lc_comm_req **req, struct lc_error *err);
lc_status lc_comm_wait(struct lc_comm_req *req, struct lc_error *err);
/* Whether a message with tag waits from peer (< 0: any rank): its source
 * and size (non-blocking). */
int lc_comm_probe(struct lc_comm *c, int peer, int tag, int *source, size_t *bytes);

/* Gives up the whole job at once (after a fatal error on one rank that the
 * others cannot learn of). */
_Noreturn void lc_dist_abort_all(struct lc_dist *d, int code);

/* ------------------------------------------------------------ layouts */

/*
 * How the ranks share stage 1.  The layers (or, block-wise, the blocks of
 * block_layers layers) are cut into `stages` contiguous pieces, as even as
 * possible, the first pieces one unit longer; pipeline stage g owns piece
 * g.  The `replicas` = ranks / stages ranks of a stage split its
 * micro-batches (data parallelism).  Rank r is stage r % stages of replica
 * r / stages, so a replica's stages are consecutive ranks.
 */
struct lc_layout {
    int ranks;
    int stages;
    int replicas;
    int n_layers;
    int block_layers; /* 0: joint transfer (units are layers) */
    int n_units;      /* layers, or blocks */
};

/* stages_wanted 0: the largest divisor of ranks not above the units */
lc_status lc_layout_make(struct lc_layout *lo, int n_layers, int ranks, int block_layers,
                         int stages_wanted, struct lc_error *err);
/* units [*first, *end) of stage g */
void lc_layout_units(const struct lc_layout *lo, int g, int *first, int *end);
/* layers [*first, *end) of stage g */
void lc_layout_layers(const struct lc_layout *lo, int g, int *first, int *end);
/* layers [*first, *end) of unit u */
void lc_layout_unit_layers(const struct lc_layout *lo, int u, int *first, int *end);
static inline int lc_layout_stage(const struct lc_layout *lo, int rank)
{
    return rank % lo->stages;
}
static inline int lc_layout_replica(const struct lc_layout *lo, int rank)
{
    return rank / lo->stages;
}

#endif /* LC_CORE_DIST_H */
