/*
 * Ranks and collectives (dist.h) on MPI, or on one process.
 *
 * MPI is initialized only when the program was started by an MPI launcher
 * (its environment says so), so that a plain run never touches MPI.  MPI
 * counts are ints: messages are cut into pieces of at most 1 GiB.  Errors
 * are returned (MPI_ERRORS_RETURN), not fatal, so that a rank can say what
 * happened before the launcher stops the job.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LC_HAVE_MPI
#include <mpi.h>
#endif

#include "core/dist.h"
#include "core/dist_nccl.h"
#include "core/util.h"

#define PIECE ((size_t)1 << 30)

struct lc_comm {
    int rank;
    int size;
#ifdef LC_HAVE_MPI
    MPI_Comm mpi; /* MPI_COMM_NULL: a single rank without MPI */
#endif
#ifdef LC_HAVE_NCCL
    struct lc_nccl *nccl; /* NCCL for backend data, or NULL */
#endif
};

struct lc_comm_req {
#ifdef LC_HAVE_MPI
    MPI_Request reqs[8];
#endif
    int n;
};

/* ------------------------------------------------------------ open */

/* Whether an MPI launcher started this process, and how many ranks it
 * started (0: unknown). */
static int launched_by_mpi(int *size)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                       "MPI_LOCALNRANKS", "SLURM_NTASKS"};
    static const char *const markers[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
    int found = 0;

    *size = 0;
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        found |= getenv(markers[i]) != NULL;
    }
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && found; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && atoi(v) > 0) {
            *size = atoi(v);
            break;
        }
    }
    return found;
}

lc_status lc_comm_new_self(struct lc_comm **out, struct lc_error *err)
{
    struct lc_comm *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    c->rank = 0;
    c->size = 1;
#ifdef LC_HAVE_MPI
    c->mpi = MPI_COMM_NULL;
#endif
    *out = c;
    return LC_OK;
}

static lc_status new_single(struct lc_dist *d, struct lc_error *err)
{
    lc_status rc = lc_comm_new_self(&d->world, err);
    if (rc != LC_OK) {
        return rc;
    }
    d->rank = 0;
    d->size = 1;
    d->host_rank = 0;
    d->host_size = 1;
    d->n_hosts = 1;
    snprintf(d->describe, sizeof(d->describe), "one process");
    return LC_OK;
}

#ifdef LC_HAVE_MPI
static lc_status mpi_fail(struct lc_error *err, int code, const char *what, int rank)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;

    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) {
        snprintf(text, sizeof(text), "MPI error %d", code);
    }
    return lc_err_set(err, LC_ERR_DIST,
                      "rank %d: %s failed: %s (another rank may have stopped or the network failed)",
                      rank, what, text);
}

/* Waits for a request without keeping a core busy: a short spin, then
 * sleeps growing to 1 ms (ranks share cores with each other and with
 * other programs; a blocking MPI call would poll at full speed). */
static int wait_politely(MPI_Request *r)
{
    int done = 0;
    long sleep_us = 0;

    for (int spins = 0;; spins++) {
        int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) {
            return rc;
        }
        if (spins >= 64) {
            sleep_us = sleep_us == 0 ? 20 : (sleep_us * 2 > 1000 ? 1000 : sleep_us * 2);
            usleep((useconds_t)sleep_us);
        }
    }
}

/* the non-blocking call, then its wait */
#define MPI_CHECK(call, what)                                                  \
    do {                                                                       \
        MPI_Request req_ = MPI_REQUEST_NULL;                                   \
        int mpi_rc_ = (call);                                                  \
        if (mpi_rc_ == MPI_SUCCESS) {                                          \
            mpi_rc_ = wait_politely(&req_);                                    \
        }                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) {                                          \
            return mpi_fail(err, mpi_rc_, what, c->rank);                      \
        }                                                                      \
    } while (0)

static lc_status open_mpi(struct lc_dist *d, int *argc, char ***argv, struct lc_error *err)
{
    int provided = 0;
    int inited = 0;
    int rc;
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int vlen = 0;
    MPI_Comm host;
    int *host_of = NULL;

    MPI_Initialized(&inited);
    if (!inited) {
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            return lc_err_set(err, LC_ERR_DIST, "MPI_Init_thread failed (error %d)", rc);
        }
        d->mpi = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    d->world = calloc(1, sizeof(*d->world));
    if (d->world == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (MPI_Comm_dup(MPI_COMM_WORLD, &d->world->mpi) != MPI_SUCCESS) {
        return lc_err_set(err, LC_ERR_DIST, "MPI_Comm_dup failed");
    }
    MPI_Comm_set_errhandler(d->world->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->world->mpi, &d->rank);
    MPI_Comm_size(d->world->mpi, &d->size);
    d->world->rank = d->rank;
    d->world->size = d->size;
    /* the ranks sharing this host's memory */
    if (MPI_Comm_split_type(d->world->mpi, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &host) !=
        MPI_SUCCESS) {
        return lc_err_set(err, LC_ERR_DIST, "MPI_Comm_split_type failed");
    }
    MPI_Comm_rank(host, &d->host_rank);
    MPI_Comm_size(host, &d->host_size);
    MPI_Comm_free(&host);
    /* hosts: the ranks that are first on their host */
    host_of = calloc((size_t)d->size, sizeof(int));
    if (host_of == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    {
        int first = d->host_rank == 0;
        MPI_Allgather(&first, 1, MPI_INT, host_of, 1, MPI_INT, d->world->mpi);
        d->n_hosts = 0;
        for (int r = 0; r < d->size; r++) {
            d->n_hosts += host_of[r];
        }
    }
    free(host_of);
    MPI_Get_library_version(version, &vlen);
    version[strcspn(version, ",\n")] = '\0';
    version[160] = '\0';
    snprintf(d->describe, sizeof(d->describe), "%.160s, %d rank%s on %d host%s", version, d->size,
             d->size == 1 ? "" : "s", d->n_hosts, d->n_hosts == 1 ? "" : "s");
    return LC_OK;
}
#endif

LC_API lc_status lc_dist_open(struct lc_dist **out, int *argc, char ***argv, struct lc_error *err)
{
    struct lc_dist *d = calloc(1, sizeof(*d));
    int launched_size = 0;
    int launched = launched_by_mpi(&launched_size);
    lc_status rc;

    *out = NULL;
    if (d == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
#ifdef LC_HAVE_MPI
    rc = launched ? open_mpi(d, argc, argv, err) : new_single(d, err);
#else
    (void)argc;
    (void)argv;
    if (launched && launched_size > 1) {
        free(d);
        /* each copy would run the whole job and write the same files */
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "started as one of %d ranks, but this build has no MPI support "
                          "(configure --with-mpi)",
                          launched_size);
    }
    rc = new_single(d, err);
#endif
    if (rc != LC_OK) {
        lc_dist_close(d);
        return rc;
    }
    *out = d;
    return LC_OK;
}

LC_API void lc_dist_close(struct lc_dist *d)
{
    if (d == NULL) {
        return;
    }
    lc_comm_free(d->world);
#ifdef LC_HAVE_MPI
    if (d->mpi) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Finalize();
        }
    }
#endif
    free(d);
}

LC_API int lc_dist_rank(const struct lc_dist *d)
{
    return d != NULL ? d->rank : 0;
}

LC_API int lc_dist_size(const struct lc_dist *d)
{
    return d != NULL ? d->size : 1;
}

LC_API int lc_dist_local_rank(const struct lc_dist *d)
{
    return d != NULL ? d->host_rank : 0;
}

LC_API const char *lc_dist_describe(const struct lc_dist *d)
{
    return d != NULL ? d->describe : "one process";
}

_Noreturn void lc_dist_abort_all(struct lc_dist *d, int code)
{
#ifdef LC_HAVE_MPI
    if (d != NULL && d->size > 1) {
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#else
    (void)d;
#endif
    exit(code);
}

LC_API void lc_dist_abort(struct lc_dist *d, int code)
{
    lc_dist_abort_all(d, code);
}

/* ------------------------------------------------------------ communicators */

int lc_comm_rank(const struct lc_comm *c)
{
    return c->rank;
}

int lc_comm_size(const struct lc_comm *c)
{
    return c->size;
}

#ifdef LC_HAVE_MPI
static int is_mpi(const struct lc_comm *c)
{
    return c->mpi != MPI_COMM_NULL;
}
#endif

lc_status lc_comm_split(struct lc_comm *c, int color, int key, struct lc_comm **out,
                        struct lc_error *err)
{
    struct lc_comm *n = calloc(1, sizeof(*n));

    *out = NULL;
    if (n == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    n->rank = 0;
    n->size = 1;
#ifdef LC_HAVE_MPI
    n->mpi = MPI_COMM_NULL;
    if (is_mpi(c)) {
        int rc = MPI_Comm_split(c->mpi, color, key, &n->mpi);
        if (rc != MPI_SUCCESS) {
            free(n);
            return mpi_fail(err, rc, "MPI_Comm_split", c->rank);
        }
        MPI_Comm_set_errhandler(n->mpi, MPI_ERRORS_RETURN);
        MPI_Comm_rank(n->mpi, &n->rank);
        MPI_Comm_size(n->mpi, &n->size);
    }
#else
    (void)c;
    (void)color;
    (void)key;
#endif
    *out = n;
    return LC_OK;
}

void lc_comm_free(struct lc_comm *c)
{
    if (c == NULL) {
        return;
    }
#ifdef LC_HAVE_NCCL
    lc_nccl_free(c->nccl);
#endif
#ifdef LC_HAVE_MPI
    if (is_mpi(c)) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Comm_free(&c->mpi);
        }
    }
#endif
    free(c);
}

lc_status lc_comm_attach_backend(struct lc_comm *c, struct lc_backend *be, struct lc_error *err)
{
#if defined(LC_HAVE_MPI) && defined(LC_HAVE_NCCL)
    if (c->nccl == NULL && c->size > 1 && be != NULL && !be->ops->host_memory &&
        strcmp(be->ops->name, "cuda") == 0) {
        /* the unique id travels from rank 0 through MPI */
        unsigned char id[LC_NCCL_ID_BYTES];
        lc_status rc = LC_OK;
        if (c->rank == 0) {
            rc = lc_nccl_unique_id(id, err);
        }
        if (rc == LC_OK) {
            rc = lc_comm_bcast(c, NULL, id, sizeof(id), 0, err);
        }
        if (rc == LC_OK) {
            rc = lc_nccl_new(&c->nccl, be, id, c->rank, c->size, err);
        }
        return rc;
    }
#else
    (void)c;
    (void)be;
    (void)err;
#endif
    return LC_OK;
}

#if defined(LC_HAVE_MPI) || defined(LC_HAVE_NCCL)
/* Host staging of backend memory that is not host memory. */
static int staged(const struct lc_backend *be)
{
    return be != NULL && !be->ops->host_memory;
}
#endif

lc_status lc_comm_barrier(struct lc_comm *c, struct lc_error *err)
{
#ifdef LC_HAVE_MPI
    if (is_mpi(c)) {
        MPI_CHECK(MPI_Ibarrier(c->mpi, &req_), "MPI_Barrier");
    }
#else
    (void)c;
    (void)err;
#endif
    return LC_OK;
}

#ifdef LC_HAVE_MPI
static lc_status mpi_bcast_host(struct lc_comm *c, void *buf, size_t bytes, int root,
                                struct lc_error *err)
{
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        MPI_CHECK(MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, c->mpi, &req_),
                  "MPI_Bcast");
    }
    return LC_OK;
}
#endif

lc_status lc_comm_bcast(struct lc_comm *c, struct lc_backend *be, void *buf, size_t bytes,
                        int root, struct lc_error *err)
{
    lc_status rc = LC_OK;
    void *host = NULL;

    if (c->size == 1 || bytes == 0) {
        return LC_OK;
    }
#ifdef LC_HAVE_NCCL
    if (c->nccl != NULL && staged(be)) {
        return lc_nccl_bcast(c->nccl, buf, bytes, root, err);
    }
#endif
#ifdef LC_HAVE_MPI
    if (staged(be)) {
        host = malloc(bytes);
        if (host == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory staging %zu bytes", bytes);
        }
        if (c->rank == root) {
            be->ops->download(be, host, buf, bytes);
            rc = be->ops->sync(be, err);
        }
    }
    if (rc == LC_OK) {
        rc = mpi_bcast_host(c, host != NULL ? host : buf, bytes, root, err);
    }
    if (rc == LC_OK && host != NULL && c->rank != root) {
        be->ops->upload(be, buf, host, bytes);
        rc = be->ops->sync(be, err);
    }
#else
    (void)be;
    (void)buf;
    (void)root;
    (void)err;
#endif
    free(host);
    return rc;
}

lc_status lc_comm_allgather(struct lc_comm *c, struct lc_backend *be, const void *send,
                            void *recv, size_t bytes, struct lc_error *err)
{
    lc_status rc = LC_OK;
    char *hs = NULL;
    char *hr = NULL;

    if (c->size == 1) {
        if (bytes > 0 && send != recv) {
            if (be != NULL) {
                be->ops->copy(be, recv, send, bytes);
            } else {
                memmove(recv, send, bytes);
            }
        }
        return LC_OK;
    }
    if (bytes == 0) {
        return LC_OK;
    }
#ifdef LC_HAVE_NCCL
    if (c->nccl != NULL && staged(be)) {
        return lc_nccl_allgather(c->nccl, send, recv, bytes, err);
    }
#endif
#ifdef LC_HAVE_MPI
    if (staged(be)) {
        hs = malloc(bytes);
        hr = malloc(bytes * (size_t)c->size);
        if (hs == NULL || hr == NULL) {
            free(hs);
            free(hr);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory staging %zu bytes", bytes);
        }
        be->ops->download(be, hs, send, bytes);
        rc = be->ops->sync(be, err);
    }
    {
        const char *s = hs != NULL ? hs : send;
        char *r = hr != NULL ? hr : recv;
        if (bytes <= PIECE) {
            if (rc == LC_OK) {
                MPI_Request req = MPI_REQUEST_NULL;
                int mrc = MPI_Iallgather(s, (int)bytes, MPI_BYTE, r, (int)bytes, MPI_BYTE, c->mpi,
                                         &req);
                mrc = mrc == MPI_SUCCESS ? wait_politely(&req) : mrc;
                rc = mrc == MPI_SUCCESS ? LC_OK : mpi_fail(err, mrc, "MPI_Allgather", c->rank);
            }
        } else {
            /* each rank's part by broadcast, one piece at a time */
            for (int root = 0; root < c->size && rc == LC_OK; root++) {
                char *dst = r + (size_t)root * bytes;
                if (root == c->rank && dst != s) {
                    memmove(dst, s, bytes);
                }
                rc = mpi_bcast_host(c, dst, bytes, root, err);
            }
        }
    }
    if (rc == LC_OK && hr != NULL) {
        be->ops->upload(be, recv, hr, bytes * (size_t)c->size);
        rc = be->ops->sync(be, err);
    }
#else
    (void)send;
    (void)recv;
    (void)err;
#endif
    free(hs);
    free(hr);
    return rc;
}

lc_status lc_comm_allreduce_max(struct lc_comm *c, int64_t *v, int n, struct lc_error *err)
{
#ifdef LC_HAVE_MPI
    if (is_mpi(c) && c->size > 1) {
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_MAX, c->mpi, &req_),
                  "MPI_Allreduce");
    }
#else
    (void)c;
    (void)v;
    (void)n;
    (void)err;
#endif
    return LC_OK;
}

lc_status lc_comm_gather(struct lc_comm *c, const void *send, void *recv, size_t bytes, int root,
                         struct lc_error *err)
{
    if (c->size == 1) {
        if (bytes > 0 && send != recv) {
            memmove(recv, send, bytes);
        }
        return LC_OK;
    }
#ifdef LC_HAVE_MPI
    if (bytes > PIECE) {
        return lc_err_set(err, LC_ERR_ARG, "gather of %zu bytes per rank: too large", bytes);
    }
    MPI_CHECK(MPI_Igather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, root, c->mpi,
                          &req_),
              "MPI_Gather");
#else
    (void)recv;
    (void)root;
    (void)err;
#endif
    return LC_OK;
}

/* A message to (sending) or from peer, through host staging for backend
 * memory that is not host memory (or NCCL). */
static lc_status p2p(struct lc_comm *c, struct lc_backend *be, void *buf, size_t bytes, int peer,
                     int tag, int sending, struct lc_error *err)
{
    lc_status rc = LC_OK;
    void *host = NULL;

#ifdef LC_HAVE_NCCL
    if (c->nccl != NULL && staged(be)) {
        return sending ? lc_nccl_send(c->nccl, buf, bytes, peer, err)
                       : lc_nccl_recv(c->nccl, buf, bytes, peer, err);
    }
#endif
#ifdef LC_HAVE_MPI
    if (!is_mpi(c)) {
        return lc_err_set(err, LC_ERR_ARG, "%s rank %d of a single process",
                          sending ? "send to" : "receive from", peer);
    }
    if (staged(be)) {
        host = malloc(bytes > 0 ? bytes : 1);
        if (host == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory staging %zu bytes", bytes);
        }
        if (sending) {
            be->ops->download(be, host, buf, bytes);
            rc = be->ops->sync(be, err);
        }
    }
    for (size_t off = 0; rc == LC_OK && (off < bytes || off == 0); off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        char *p = (char *)(host != NULL ? host : buf) + off;
        MPI_Request req = MPI_REQUEST_NULL;
        int mrc = sending ? MPI_Isend(p, (int)n, MPI_BYTE, peer, tag, c->mpi, &req)
                          : MPI_Irecv(p, (int)n, MPI_BYTE, peer, tag, c->mpi, &req);
        mrc = mrc == MPI_SUCCESS ? wait_politely(&req) : mrc;
        rc = mrc == MPI_SUCCESS ? LC_OK
                                : mpi_fail(err, mrc, sending ? "MPI_Send" : "MPI_Recv", c->rank);
        if (bytes == 0) {
            break;
        }
    }
    if (rc == LC_OK && host != NULL && !sending) {
        be->ops->upload(be, buf, host, bytes);
        rc = be->ops->sync(be, err);
    }
#else
    (void)c;
    (void)be;
    (void)buf;
    (void)bytes;
    (void)tag;
    rc = lc_err_set(err, LC_ERR_ARG, "%s rank %d of a single process",
                    sending ? "send to" : "receive from", peer);
#endif
    free(host);
    return rc;
}

lc_status lc_comm_send(struct lc_comm *c, struct lc_backend *be, const void *buf, size_t bytes,
                       int peer, int tag, struct lc_error *err)
{
    return p2p(c, be, (void *)buf, bytes, peer, tag, 1, err);
}

lc_status lc_comm_recv(struct lc_comm *c, struct lc_backend *be, void *buf, size_t bytes,
                       int peer, int tag, struct lc_error *err)
{
    return p2p(c, be, buf, bytes, peer, tag, 0, err);
}

lc_status lc_comm_isend(struct lc_comm *c, const void *buf, size_t bytes, int peer, int tag,
                        struct lc_comm_req **req, struct lc_error *err)
{
    struct lc_comm_req *r;

    *req = NULL;
    if (bytes > 8 * PIECE) {
        return lc_err_set(err, LC_ERR_ARG, "a message of %zu bytes is too large", bytes);
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
#ifdef LC_HAVE_MPI
    if (!is_mpi(c)) {
        free(r);
        return lc_err_set(err, LC_ERR_ARG, "send to rank %d of a single process", peer);
    }
    for (size_t off = 0; off < bytes || off == 0; off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int mrc = MPI_Isend((const char *)buf + off, (int)n, MPI_BYTE, peer, tag, c->mpi,
                            &r->reqs[r->n]);
        if (mrc != MPI_SUCCESS) {
            lc_status rc = mpi_fail(err, mrc, "MPI_Isend", c->rank);
            lc_comm_wait(r, NULL);
            return rc;
        }
        r->n++;
        if (bytes == 0) {
            break;
        }
    }
#else
    (void)c;
    (void)buf;
    (void)tag;
    free(r);
    return lc_err_set(err, LC_ERR_ARG, "send to rank %d of a single process", peer);
#endif
    *req = r;
    return LC_OK;
}

lc_status lc_comm_wait(struct lc_comm_req *req, struct lc_error *err)
{
    lc_status rc = LC_OK;

    if (req == NULL) {
        return LC_OK;
    }
#ifdef LC_HAVE_MPI
    for (int i = 0; i < req->n; i++) {
        int mrc = wait_politely(&req->reqs[i]);
        if (mrc != MPI_SUCCESS && rc == LC_OK) {
            int rank = -1;
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            rc = mpi_fail(err, mrc, "MPI_Wait", rank);
        }
    }
#else
    (void)err;
#endif
    free(req);
    return rc;
}

int lc_comm_probe(struct lc_comm *c, int peer, int tag, int *source, size_t *bytes)
{
#ifdef LC_HAVE_MPI
    if (is_mpi(c)) {
        int flag = 0;
        MPI_Status st;
        int count = 0;
        if (MPI_Iprobe(peer < 0 ? MPI_ANY_SOURCE : peer, tag, c->mpi, &flag, &st) !=
                MPI_SUCCESS ||
            !flag) {
            return 0;
        }
        MPI_Get_count(&st, MPI_BYTE, &count);
        *source = st.MPI_SOURCE;
        *bytes = (size_t)count;
        return 1;
    }
#else
    (void)c;
    (void)peer;
    (void)tag;
#endif
    (void)source;
    (void)bytes;
    return 0;
}

/* ------------------------------------------------------------ layouts */

lc_status lc_layout_make(struct lc_layout *lo, int n_layers, int ranks, int block_layers,
                         int stages_wanted, struct lc_error *err)
{
    memset(lo, 0, sizeof(*lo));
    if (n_layers < 1 || ranks < 1 || block_layers < 0) {
        return lc_err_set(err, LC_ERR_ARG, "no layers or no ranks to lay out");
    }
    if (block_layers > n_layers) {
        return lc_err_set(err, LC_ERR_ARG,
                          "--block-layers %d is more than the model's %d layers", block_layers,
                          n_layers);
    }
    lo->ranks = ranks;
    lo->n_layers = n_layers;
    lo->block_layers = block_layers;
    lo->n_units = block_layers > 0 ? (n_layers + block_layers - 1) / block_layers : n_layers;
    if (stages_wanted > 0) {
        if (ranks % stages_wanted != 0 || stages_wanted > lo->n_units) {
            return lc_err_set(err, LC_ERR_ARG,
                              "%d pipeline stages: they must divide the %d ranks and be at most "
                              "the %d %s",
                              stages_wanted, ranks, lo->n_units,
                              block_layers > 0 ? "blocks" : "layers");
        }
        lo->stages = stages_wanted;
    } else {
        lo->stages = 1;
        for (int g = 1; g <= ranks && g <= lo->n_units; g++) {
            if (ranks % g == 0) {
                lo->stages = g;
            }
        }
    }
    lo->replicas = ranks / lo->stages;
    return LC_OK;
}

void lc_layout_units(const struct lc_layout *lo, int g, int *first, int *end)
{
    const int base = lo->n_units / lo->stages;
    const int extra = lo->n_units % lo->stages;

    *first = g * base + (g < extra ? g : extra);
    *end = *first + base + (g < extra ? 1 : 0);
}

void lc_layout_unit_layers(const struct lc_layout *lo, int u, int *first, int *end)
{
    if (lo->block_layers > 0) {
        *first = u * lo->block_layers;
        *end = *first + lo->block_layers < lo->n_layers ? *first + lo->block_layers : lo->n_layers;
    } else {
        *first = u;
        *end = u + 1;
    }
}

void lc_layout_layers(const struct lc_layout *lo, int g, int *first, int *end)
{
    int u0, u1, dummy;

    lc_layout_units(lo, g, &u0, &u1);
    lc_layout_unit_layers(lo, u0, first, &dummy);
    lc_layout_unit_layers(lo, u1 - 1, &dummy, end);
}
