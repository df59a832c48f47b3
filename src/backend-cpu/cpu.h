/*
 * The "cpu" backend: OpenBLAS SGEMM, OpenMP, and AVX-512 kernels chosen at
 * run time with a generic C fallback.
 */
#ifndef LC_BACKEND_CPU_CPU_H
#define LC_BACKEND_CPU_CPU_H

#include "core/backend.h"

enum lc_cpu_isa {
    LC_CPU_ISA_GENERIC = 0,
    LC_CPU_ISA_AVX512 = 1
};

struct lc_cpu_ctx {
    enum lc_cpu_isa isa; /* kernels in use; tests switch it to cover both */
};

static inline enum lc_cpu_isa lc_cpu_isa_of(const struct lc_backend *be)
{
    return ((const struct lc_cpu_ctx *)be->ctx)->isa;
}

/* The best ISA this CPU and build support, unless LC_CPU_ISA=generic. */
enum lc_cpu_isa lc_cpu_detect_isa(void);

#endif /* LC_BACKEND_CPU_CPU_H */
