# src/core/ref: the reference kernels and the "ref" backend.
liblc_internal_la_SOURCES += \
	src/core/ref/ref.h \
	src/core/ref/ref_backend.c \
	src/core/ref/ref_dense.c \
	src/core/ref/ref_dense_impl.h

# the double-precision instance of the dense reference kernels, compiled
# into the kernel tests only (finite differences)
LC_REF_F64_SOURCES = src/core/ref/ref_dense_f64.c src/core/ref/ref_f64.h
