/* The vector row kernels for aarch64 NEON (ASIMD, in every ARMv8-A core). */
#include "config.h"

#include "backend-cpu/simd/simd_neon.h"

#define LC_SIMD_TABLE lc_cpu_kernels_neon
#define LC_SIMD_LABEL "NEON"
/* no 64-bit vector multiply for the dropout hash: the generic kernel */
#define LC_SIMD_DROPOUT lc_cpu_dropout_generic

#include "backend-cpu/simd/simd_kernels.h"
