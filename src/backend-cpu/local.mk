# src/backend-cpu: the OpenBLAS/OpenMP backend.  AVX-512 kernels live in
# src/backend-cpu/avx512/ and are compiled with their own flags into their
# own convenience library; the rest of the code never assumes AVX-512.
liblc_internal_la_SOURCES += \
	src/backend-cpu/cpu.h \
	src/backend-cpu/cpu_backend.c

