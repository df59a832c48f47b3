/* The "cpu" backend table, initialization and ISA dispatch. */
#include "config.h"

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
    free(be->ctx);
    be->ctx = NULL;
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
    .sync = lc_host_sync,

    /* dense algebra, embedding, norms, RoPE, SwiGLU, softmax attention,
     * losses, optimizer */

    /* feature maps, hybrid attention, decoding */
    .fmap_fwd = lc_cpu_fmap_fwd,
    .fmap_bwd = lc_cpu_fmap_bwd,
    .hybrid_fwd = lc_cpu_hybrid_fwd,
    .hybrid_bwd = lc_cpu_hybrid_bwd,
    .hybrid_xent = lc_cpu_hybrid_xent,
    .hybrid_decode = lc_cpu_hybrid_decode,
    .linstate_add = lc_cpu_linstate_add,
};
