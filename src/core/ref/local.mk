# src/core/ref: the reference kernels and the "ref" backend.
liblc_internal_la_SOURCES += \
	src/core/ref/ref.h \
	src/core/ref/ref_backend.c

# feature maps, hybrid attention, decoding
liblc_internal_la_SOURCES += \
	src/core/ref/ref_hybrid.c \
	src/core/ref/ref_hybrid_impl.h
