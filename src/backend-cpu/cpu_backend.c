/* The "cpu" backend table, initialization and ISA dispatch. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(HAVE_SYS_AUXV_H)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "backend-cpu/cpu.h"
#include "backend-cpu/cpu_hybrid.h"
#include "backend-cpu/cpu_kernels.h"
#include "core/ref/ref.h"
#include "core/util.h"

static const char *const isa_names[LC_CPU_ISA_COUNT] = {"generic", "avx2", "avx512", "neon"};

#if defined(LC_HAVE_AVX2) && defined(__x86_64__) && defined(__GNUC__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does
 * not know the name "f16c" */
static int has_f16c(void)
{
    unsigned a, b, c, d;

    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif

const char *lc_cpu_isa_name(enum lc_cpu_isa isa)
{
    return (unsigned)isa < LC_CPU_ISA_COUNT ? isa_names[isa] : "unknown";
}

int lc_cpu_isa_supported(enum lc_cpu_isa isa)
{
    switch (isa) {
    case LC_CPU_ISA_GENERIC:
        return 1;
#if defined(LC_HAVE_AVX2) && defined(__x86_64__) && defined(__GNUC__)
    case LC_CPU_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
#endif
#if defined(LC_HAVE_AVX512) && defined(__x86_64__) && defined(__GNUC__)
    case LC_CPU_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
#if defined(LC_HAVE_NEON) && defined(__aarch64__)
    case LC_CPU_ISA_NEON:
#ifdef HAVE_SYS_AUXV_H
        /* ASIMD is part of every ARMv8-A core; the kernel says so too */
        return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
        return 1;
#endif
#endif
    default:
        return 0;
    }
}

/* the best supported set: the widest vectors first */
static enum lc_cpu_isa best_isa(void)
{
    static const enum lc_cpu_isa order[] = {LC_CPU_ISA_AVX512, LC_CPU_ISA_AVX2, LC_CPU_ISA_NEON};

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (lc_cpu_isa_supported(order[i])) {
            return order[i];
        }
    }
    return LC_CPU_ISA_GENERIC;
}

/* The index among names[0..n) of the value of the environment variable
 * var; -1 when it is unset or empty, and -1 after a warning (naming the
 * choices, `known`, and the default used instead, dflt) when it is none of
 * them. */
static int env_choice(const char *var, const char *const *names, int n, const char *known,
                      const char *dflt)
{
    const char *value = getenv(var);

    if (value == NULL || value[0] == '\0') {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(value, names[i]) == 0) {
            return i;
        }
    }
    lc_log(LC_LOG_WARN, "%s=%s: unknown (%s); using %s", var, value, known, dflt);
    return -1;
}

enum lc_cpu_isa lc_cpu_detect_isa(void)
{
    const enum lc_cpu_isa best = best_isa();
    const int i = env_choice("LC_CPU_ISA", isa_names, LC_CPU_ISA_COUNT,
                             "generic, avx2, avx512 or neon", isa_names[best]);

    if (i < 0) {
        return best;
    }
    if (!lc_cpu_isa_supported((enum lc_cpu_isa)i)) {
        lc_log(LC_LOG_WARN, "LC_CPU_ISA=%s: this CPU or build lacks those kernels; using %s",
               isa_names[i], isa_names[best]);
        return best;
    }
    return (enum lc_cpu_isa)i;
}

static const char *const prefetch_names[LC_CPU_PREFETCH_COUNT] = {"none", "l1", "l2"};

const char *lc_cpu_prefetch_name(enum lc_cpu_prefetch level)
{
    return (unsigned)level < LC_CPU_PREFETCH_COUNT ? prefetch_names[level] : "unknown";
}

/* The decoding gemv's prefetch by default (enum lc_cpu_prefetch in cpu.h):
 * to L2 on AMD's cores (and Hygon's, built on them), to L1 elsewhere. */
static enum lc_cpu_prefetch gemv_prefetch_for_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    unsigned a, b, c, d;
    char vendor[13];

    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
        vendor[12] = '\0';
        if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0) {
            return LC_CPU_PREFETCH_L2;
        }
    }
#endif
    return LC_CPU_PREFETCH_L1;
}

enum lc_cpu_prefetch lc_cpu_detect_prefetch(int *named)
{
    const enum lc_cpu_prefetch dflt = gemv_prefetch_for_cpu();
    const int i = env_choice("LC_CPU_PREFETCH", prefetch_names, LC_CPU_PREFETCH_COUNT,
                             "none, l1 or l2", prefetch_names[dflt]);

    *named = i >= 0;
    return i < 0 ? dflt : (enum lc_cpu_prefetch)i;
}

void lc_cpu_probe_start(struct lc_cpu_ctx *ctx)
{
    const size_t min_bytes = ctx->probe.min_bytes;

    memset(&ctx->probe, 0, sizeof(ctx->probe));
    ctx->probe.min_bytes = min_bytes != 0 ? min_bytes : LC_CPU_PROBE_MIN_BYTES;
    ctx->probe.active = 1;
}

enum lc_cpu_prefetch lc_cpu_probe_pick(const double *per_byte, int n, enum lc_cpu_prefetch current,
                                       double *median)
{
    double med[LC_CPU_PREFETCH_COUNT], sorted[LC_CPU_PROBE_PRODUCTS];
    const int per_level = n / LC_CPU_PREFETCH_COUNT;
    int best = (int)current;

    LC_ASSERT(per_level >= 1 && per_level * LC_CPU_PREFETCH_COUNT == n &&
              n <= LC_CPU_PROBE_PRODUCTS);
    for (int l = 0; l < LC_CPU_PREFETCH_COUNT; l++) {
        for (int i = 0; i < per_level; i++) {
            sorted[i] = per_byte[i * LC_CPU_PREFETCH_COUNT + l];
        }
        med[l] = lc_median(sorted, per_level);
        if (median != NULL) {
            median[l] = med[l];
        }
    }
    for (int l = 0; l < LC_CPU_PREFETCH_COUNT; l++) {
        if (med[l] < med[best]) {
            best = l;
        }
    }
    return med[best] < (1.0 - LC_CPU_PROBE_MARGIN) * med[current] ? (enum lc_cpu_prefetch)best
                                                                  : current;
}

static lc_status cpu_init(struct lc_backend *be, struct lc_error *err)
{
    struct lc_cpu_ctx *ctx = calloc(1, sizeof(*ctx));
    int named;

    if (ctx == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory initializing the cpu backend");
    }
    ctx->isa = lc_cpu_detect_isa();
    ctx->gemv_prefetch = lc_cpu_detect_prefetch(&named);
    /* the generic kernels do not prefetch: nothing to measure */
    if (!named && ctx->isa != LC_CPU_ISA_GENERIC) {
        lc_cpu_probe_start(ctx);
    }
    ctx->weight_tile_bytes = LC_CPU_WEIGHT_TILE_BYTES;
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

static const char *cpu_describe(struct lc_backend *be)
{
    const struct lc_cpu_ctx *ctx = be->ctx;

    snprintf(be->description, sizeof(be->description),
             "cpu: %s kernels (decode prefetch %s%s), OpenBLAS %s SGEMM, %d threads",
             lc_cpu_kernels(be)->name, lc_cpu_prefetch_name(ctx->gemv_prefetch),
             ctx->probe.active                            ? ", to be measured"
             : ctx->probe.taken == LC_CPU_PROBE_PRODUCTS ? ", measured"
                                                          : "",
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
