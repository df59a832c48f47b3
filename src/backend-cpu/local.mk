# src/backend-cpu: the OpenBLAS/OpenMP backend.  AVX-512 kernels live in
# src/backend-cpu/avx512/ and are compiled with their own flags into their
# own convenience library; the rest of the code never assumes AVX-512.
liblc_internal_la_SOURCES += \
	src/backend-cpu/avx512/avx512_dense.h \
	src/backend-cpu/cpu.h \
	src/backend-cpu/cpu_attn.c \
	src/backend-cpu/cpu_backend.c \
	src/backend-cpu/cpu_dense.c \
	src/backend-cpu/cpu_gemm.c

if COND_AVX512
noinst_LTLIBRARIES += liblc_avx512.la
liblc_avx512_la_SOURCES = \
	src/backend-cpu/avx512/avx512_dense.c \
	src/backend-cpu/avx512/avx512_math.h
liblc_avx512_la_CFLAGS = $(AM_CFLAGS) $(CFLAGS_AVX512) -fvisibility=hidden
liblc_internal_la_LIBADD += liblc_avx512.la
endif
