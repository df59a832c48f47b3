/* The vector row kernels for AVX2 + FMA + F16C (compiled with
 * $(CFLAGS_AVX2); used only on CPUs that have all three). */
#include "config.h"

#include "backend-cpu/simd/simd_avx2.h"

#define LC_SIMD_TABLE lc_cpu_kernels_avx2
#define LC_SIMD_LABEL "AVX2+FMA"
/* no 64-bit vector multiply for the dropout hash: the generic kernel */
#define LC_SIMD_DROPOUT lc_cpu_dropout_generic

#include "backend-cpu/simd/simd_kernels.h"
