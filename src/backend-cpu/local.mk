# src/backend-cpu: the OpenBLAS/OpenMP backend.  The vector kernels are
# one template (simd/simd_kernels.h) compiled once per instruction set,
# each with its own flags into its own convenience library; the rest of
# the code never assumes those instructions and picks a set at run time.
liblc_internal_la_SOURCES += \
	src/backend-cpu/cpu.h \
	src/backend-cpu/cpu_attn.c \
	src/backend-cpu/cpu_backend.c \
	src/backend-cpu/cpu_dense.c \
	src/backend-cpu/cpu_gemm.c \
	src/backend-cpu/cpu_scratch.c \
	src/backend-cpu/cpu_kernels.h \
	src/backend-cpu/cpu_kernels_generic.c

LC_SIMD_SOURCES = src/backend-cpu/simd/simd_kernels.h
if COND_AVX2
noinst_LTLIBRARIES += liblc_avx2.la
liblc_avx2_la_SOURCES = src/backend-cpu/simd/kernels_avx2.c src/backend-cpu/simd/simd_avx2.h \
	$(LC_SIMD_SOURCES)
liblc_avx2_la_CFLAGS = $(AM_CFLAGS) $(CFLAGS_AVX2) -fvisibility=hidden
liblc_internal_la_LIBADD += liblc_avx2.la
endif
if COND_AVX512
noinst_LTLIBRARIES += liblc_avx512.la
liblc_avx512_la_SOURCES = src/backend-cpu/simd/kernels_avx512.c \
	src/backend-cpu/simd/simd_avx512.h $(LC_SIMD_SOURCES)
liblc_avx512_la_CFLAGS = $(AM_CFLAGS) $(CFLAGS_AVX512) -fvisibility=hidden
liblc_internal_la_LIBADD += liblc_avx512.la
endif
if COND_NEON
noinst_LTLIBRARIES += liblc_neon.la
liblc_neon_la_SOURCES = src/backend-cpu/simd/kernels_neon.c src/backend-cpu/simd/simd_neon.h \
	$(LC_SIMD_SOURCES)
liblc_neon_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
liblc_internal_la_LIBADD += liblc_neon.la
endif
# the sets this build does not compile, for make dist
EXTRA_DIST += src/backend-cpu/simd/kernels_avx2.c src/backend-cpu/simd/simd_avx2.h \
	src/backend-cpu/simd/kernels_avx512.c src/backend-cpu/simd/simd_avx512.h \
	src/backend-cpu/simd/kernels_neon.c src/backend-cpu/simd/simd_neon.h $(LC_SIMD_SOURCES)

# feature maps, hybrid attention, decoding
liblc_internal_la_SOURCES += \
	src/backend-cpu/cpu_fmap.c \
	src/backend-cpu/cpu_hybrid.c \
	src/backend-cpu/cpu_hybrid.h \
	src/backend-cpu/cpu_hybrid_decode.c \
	src/backend-cpu/cpu_hybrid_rows.c \
	src/backend-cpu/cpu_hybrid_rows.h \
	src/backend-cpu/cpu_hybrid_xent.c
