/* The vector row kernels for AVX-512 F/BW/DQ/VL (compiled with
 * $(CFLAGS_AVX512); used only on CPUs that have them), and the dropout,
 * which needs AVX-512DQ's 64-bit multiply. */
#include "config.h"

#include "backend-cpu/cpu_kernels.h"
#include "backend-cpu/simd/simd_avx512.h"
#include "core/ref/ref.h"

/* lc_mix64 over 8 lanes */
static inline __m512i mix64_epi64(__m512i z)
{
    const __m512i c1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull);
    const __m512i c2 = _mm512_set1_epi64((long long)0x94d049bb133111ebull);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), c1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), c2);
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* u = (h >> 40) * 2^-24 for 8 counters */
static inline __m256 dropout_u8(__m512i base, __m512i idx)
{
    const __m512i gamma = _mm512_set1_epi64((long long)LC_DROPOUT_GAMMA);
    __m512i h = mix64_epi64(_mm512_add_epi64(base, _mm512_mullo_epi64(idx, gamma)));
    __m256 u = _mm512_cvtepi64_ps(_mm512_srli_epi64(h, 40));
    return _mm256_mul_ps(u, _mm256_set1_ps(0x1p-24f));
}

static void dropout_avx512(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t i0)
{
    const __m512i base = _mm512_set1_epi64((long long)lc_mix64(seed));
    const __m512i lanes = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
    const __m512 pv = _mm512_set1_ps(p);
    const __m512 scale = _mm512_set1_ps(1.0f / (1.0f - p));

    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = vm_first((int)(n - i < 16 ? n - i : 16));
        /* counters i0 + i + 1 .. i0 + i + 16, as lc_dropout_uniform counts */
        __m512i idx = _mm512_add_epi64(_mm512_set1_epi64((long long)(i0 + i)), lanes);
        __m256 ulo = dropout_u8(base, idx);
        __m256 uhi = dropout_u8(base, _mm512_add_epi64(idx, _mm512_set1_epi64(8)));
        __m512 u = _mm512_insertf32x8(_mm512_castps256_ps512(ulo), uhi, 1);
        __mmask16 keep = _mm512_mask_cmp_ps_mask(k, u, pv, _CMP_GE_OQ);
        __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_maskz_mul_ps(keep, xv, scale));
    }
}

#define LC_SIMD_TABLE lc_cpu_kernels_avx512
#define LC_SIMD_LABEL "AVX-512"
#define LC_SIMD_DROPOUT dropout_avx512
#ifdef LC_HAVE_AVX2
/* rows of up to 8 floats (small heads) in the 8-lane kernels: every
 * AVX-512 CPU has AVX2, FMA and F16C */
#define LC_SIMD_SHORT_ROWS lc_cpu_kernels_avx2
/* and the decoding gemv's long rows 256 bits at a time: streaming the
 * weights of an 8B-shaped layer's seven products from memory with two
 * threads on an AMD EPYC Zen 4, 1500 rounds alternating with the 512-bit
 * gemv, it was 1.05 times as fast at the median (0.99 at the 10th
 * percentile, 1.12 at the 90th); on an Intel Xeon the AVX2 set's
 * decoding had printed 85-95% of the triad in bench_layer against the
 * AVX-512 set's 80-86% (with an earlier gemv) */
#define LC_SIMD_STREAM_GEMV lc_cpu_kernels_avx2
#endif

#include "backend-cpu/simd/simd_kernels.h"
