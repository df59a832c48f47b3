/* The "cpu" backend table, initialization and ISA dispatch. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_hybrid.h"
#include "core/ref/ref.h"
#include "core/util.h"

enum lc_cpu_isa lc_cpu_detect_isa(void)
{
    const char *force = getenv("LC_CPU_ISA");

    if (force != NULL && strcmp(force, "generic") == 0) {
        return LC_CPU_ISA_GENERIC;
    }
#if defined(LC_HAVE_AVX512) && defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        return LC_CPU_ISA_AVX512;
    }
#endif
    return LC_CPU_ISA_GENERIC;
}

static lc_status cpu_init(struct lc_backend *be, struct lc_error *err)
{
    struct lc_cpu_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory initializing the cpu backend");
    }
    ctx->isa = lc_cpu_detect_isa();
    be->ctx = ctx;
    return LC_OK;
}

static void cpu_fini(struct lc_backend *be)
{
    struct lc_cpu_ctx *ctx = be->ctx;

    if (ctx != NULL) {
        free(ctx->scratch);
        free(ctx);
    }
    be->ctx = NULL;
}

static lc_status cpu_sync(struct lc_backend *be, struct lc_error *err)
{
    struct lc_cpu_ctx *ctx = be->ctx;
    lc_status rc = ctx->failure.code;

    if (rc != LC_OK) {
        lc_err_set(err, rc, "%s", ctx->failure.msg);
        ctx->failure.code = LC_OK;
        ctx->failure.msg[0] = '\0';
    }
    return rc;
}

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

    if (bytes <= ctx->scratch_bytes) {
        return ctx->scratch;
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

static const char *cpu_describe(struct lc_backend *be)
{
    snprintf(be->description, sizeof(be->description),
             "cpu: %s kernels, OpenBLAS %s SGEMM, %d threads",
             lc_cpu_isa_of(be) == LC_CPU_ISA_AVX512 ? "AVX-512" : "generic C",
             lc_blas_kernel_name(), lc_get_num_threads());
    return be->description;
}

const struct lc_backend_ops lc_cpu_ops = {
    .name = "cpu",
    .abi = LC_BACKEND_ABI,
    .host_memory = 1,
    .init = cpu_init,
    .fini = cpu_fini,
    .describe = cpu_describe,

    .alloc = lc_host_alloc,
    .release = lc_host_release,
    .upload = lc_host_copy,
    .download = lc_host_copy,
    .copy = lc_host_copy,
    .zero = lc_host_zero,
    .sync = cpu_sync,

    /* dense algebra, embedding, norms, RoPE, SwiGLU, softmax attention,
     * losses, optimizer */
    .gemm = lc_cpu_gemm,
    .linear_fwd = lc_cpu_linear_fwd,
    .linear_bwd = lc_cpu_linear_bwd,
    .add = lc_cpu_add,
    .dropout = lc_cpu_dropout,
    .embedding_fwd = lc_cpu_embedding_fwd,
    .embedding_bwd = lc_cpu_embedding_bwd,
    .rmsnorm_fwd = lc_cpu_rmsnorm_fwd,
    .rmsnorm_bwd = lc_cpu_rmsnorm_bwd,
    .rope_fwd = lc_cpu_rope_fwd,
    .rope_bwd = lc_cpu_rope_bwd,
    .swiglu_fwd = lc_cpu_swiglu_fwd,
    .swiglu_bwd = lc_cpu_swiglu_bwd,
    .attn_fwd = lc_cpu_attn_fwd,
    .mse_fwd_bwd = lc_cpu_mse_fwd_bwd,
    .xent_fwd_bwd = lc_cpu_xent_fwd_bwd,
    .adamw = lc_cpu_adamw,

    /* feature maps, hybrid attention, decoding */
    .fmap_fwd = lc_cpu_fmap_fwd,
    .fmap_bwd = lc_cpu_fmap_bwd,
    .hybrid_fwd = lc_cpu_hybrid_fwd,
    .hybrid_bwd = lc_cpu_hybrid_bwd,
    .hybrid_xent = lc_cpu_hybrid_xent,
    .hybrid_decode = lc_cpu_hybrid_decode,
    .linstate_add = lc_cpu_linstate_add,
    .hybrid_add_state = lc_cpu_hybrid_add_state,
};
