/* Backend registry: look a table up by name, check it is complete, open it. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/util.h"

static const struct lc_backend_ops *const registry[] = {
    &lc_cpu_ops,
    &lc_ref_ops,
#ifdef LC_HAVE_CUDA
    &lc_cuda_ops,
#endif
};

#define REGISTRY_SIZE (sizeof(registry) / sizeof(registry[0]))

LC_API const char *const *lc_backend_list(void)
{
    static const char *names[REGISTRY_SIZE + 1];
    for (size_t i = 0; i < REGISTRY_SIZE; i++) {
        names[i] = registry[i]->name;
    }
    names[REGISTRY_SIZE] = NULL;
    return names;
}

/* The compute list names every function entry after the seven of memory
 * and the three of life cycle: a new entry must be added to it. */
#define LC_COUNT_OP(f) +1
_Static_assert(sizeof(struct lc_backend_ops) ==
                   offsetof(struct lc_backend_ops, init) +
                       (3 + 7 LC_BACKEND_COMPUTE_OPS(LC_COUNT_OP)) * sizeof(void (*)(void)),
               "LC_BACKEND_COMPUTE_OPS (backend.h) does not list every entry of the table");
#undef LC_COUNT_OP

/* Every entry is mandatory.  The list is spelled out (not a walk over the
 * struct's bytes) so that the message can name the missing entry. */
const char *lc_backend_ops_missing(const struct lc_backend_ops *o)
{
#define LC_CHECK_OP(f)                                                         \
    if (o->f == NULL)                                                          \
        return #f;
    LC_CHECK_OP(name)
    LC_CHECK_OP(init)
    LC_CHECK_OP(fini)
    LC_CHECK_OP(describe)
    LC_CHECK_OP(alloc)
    LC_CHECK_OP(release)
    LC_CHECK_OP(upload)
    LC_CHECK_OP(download)
    LC_CHECK_OP(copy)
    LC_CHECK_OP(zero)
    LC_CHECK_OP(sync)
    LC_BACKEND_COMPUTE_OPS(LC_CHECK_OP)
#undef LC_CHECK_OP
    return NULL;
}

LC_API lc_status lc_backend_open(struct lc_backend **out, const char *name, struct lc_error *err)
{
    const struct lc_backend_ops *ops = NULL;
    struct lc_backend *be;
    const char *missing;
    lc_status rc;

    *out = NULL;
    if (name == NULL || name[0] == '\0') {
        name = "cpu";
    }
    for (size_t i = 0; i < REGISTRY_SIZE; i++) {
        if (strcmp(registry[i]->name, name) == 0) {
            ops = registry[i];
        }
    }
    if (ops == NULL) {
        char list[256] = "";
        for (size_t i = 0; i < REGISTRY_SIZE; i++) {
            strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
            strncat(list, registry[i]->name, sizeof(list) - strlen(list) - 1);
        }
        return lc_err_set(err, LC_ERR_ARG, "unknown backend '%s' (this build has: %s)", name, list);
    }
    if (ops->abi != LC_BACKEND_ABI) {
        return lc_err_set(err, LC_ERR_BACKEND, "backend '%s' was built for interface %d, not %d",
                          name, ops->abi, LC_BACKEND_ABI);
    }
    missing = lc_backend_ops_missing(ops);
    if (missing != NULL) {
        return lc_err_set(err, LC_ERR_BACKEND, "backend '%s' lacks the operation '%s'", name,
                          missing);
    }
    be = calloc(1, sizeof(*be));
    if (be == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory opening backend '%s'", name);
    }
    be->ops = ops;
    rc = ops->init(be, err);
    if (rc != LC_OK) {
        free(be);
        return rc;
    }
    *out = be;
    return LC_OK;
}

LC_API void lc_backend_close(struct lc_backend *be)
{
    if (be == NULL) {
        return;
    }
    be->ops->fini(be);
    free(be);
}

LC_API const char *lc_backend_name(const struct lc_backend *be)
{
    return be->ops->name;
}

LC_API const char *lc_backend_describe(struct lc_backend *be)
{
    return be->ops->describe(be);
}

void *lc_be_upload_new(struct lc_backend *be, const void *host, size_t bytes)
{
    void *p = be->ops->alloc(be, bytes);
    if (p != NULL && bytes > 0) {
        be->ops->upload(be, p, host, bytes);
    }
    return p;
}
