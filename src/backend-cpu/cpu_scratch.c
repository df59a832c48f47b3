/*
 * What the cpu kernels share of the backend's context: the first failure,
 * reported by the next sync, and the kernel scratch.  Kept apart from the
 * backend table (cpu_backend.c), which calls the kernels, so that the
 * kernels' calls go one way.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend-cpu/cpu.h"
#include "core/ref/ref.h"

void lc_cpu_fail(struct lc_backend *be, lc_status code, const char *fmt, ...)
{
    struct lc_cpu_ctx *ctx = be->ctx;
    va_list ap;

    if (ctx->failure.code != LC_OK) {
        return;
    }
    ctx->failure.code = code;
    va_start(ap, fmt);
    vsnprintf(ctx->failure.msg, sizeof(ctx->failure.msg), fmt, ap);
    va_end(ap);
}

void *lc_cpu_scratch(struct lc_backend *be, size_t bytes)
{
    struct lc_cpu_ctx *ctx = be->ctx;
    void *p = NULL;

    if (bytes > ctx->scratch_asked) {
        ctx->scratch_asked = bytes;
    }
    if (bytes <= ctx->scratch_bytes) {
        return ctx->scratch;
    }
    /* grow by half at least, so that calls of slowly growing sizes (one
     * more key per decoded token) allocate only now and then */
    if (bytes - ctx->scratch_bytes < ctx->scratch_bytes / 2 &&
        ctx->scratch_bytes / 2 <= SIZE_MAX / 3) {
        bytes = ctx->scratch_bytes + ctx->scratch_bytes / 2;
    }
    free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
    p = lc_host_alloc(be, bytes);
    if (p == NULL) {
        lc_cpu_fail(be, LC_ERR_NOMEM, "cpu backend: out of memory for %zu bytes of kernel scratch",
                    bytes);
        return NULL;
    }
    ctx->scratch = p;
    ctx->scratch_bytes = bytes;
    return p;
}
