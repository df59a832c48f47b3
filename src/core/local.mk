# src/core: backend-neutral code.  Everything goes into one libtool
# convenience library that the tests link whole (they need internal
# symbols); liblolcats.la wraps it and exports the public API only.

lolcatsincludedir = $(includedir)/lolcats
lolcatsinclude_HEADERS = include/lolcats/lolcats.h

noinst_LTLIBRARIES += liblc_internal.la
liblc_internal_la_SOURCES = \
	src/core/backend.c \
	src/core/backend.h \
	src/core/blockwise.c \
	src/core/atomicfile.c \
	src/core/atomicfile.h \
	src/core/data.c \
	src/core/data.h \
	src/core/dist.c \
	src/core/dist.h \
	src/core/dist_nccl.h \
	src/core/dist_train.c \
	src/core/dist_train.h \
	src/core/error.c \
	src/core/eval.c \
	src/core/eval.h \
	src/core/fileio.c \
	src/core/fileio.h \
	src/core/finetune.c \
	src/core/finetune.h \
	src/core/gguf.c \
	src/core/gguf.h \
	src/core/hidden_cache.c \
	src/core/hidden_cache.h \
	src/core/half.h \
	src/core/linattn.c \
	src/core/linattn.h \
	src/core/llama.c \
	src/core/llama.h \
	src/core/log.c \
	src/core/lora.c \
	src/core/lora.h \
	src/core/model.c \
	src/core/model.h \
	src/core/modelconfig.c \
	src/core/modelconfig.h \
	src/core/modelfiles.c \
	src/core/modelfiles.h \
	src/core/plan.c \
	src/core/plan.h \
	src/core/safetensors.c \
	src/core/safetensors.h \
	src/core/sample.c \
	src/core/tensorfile.c \
	src/core/tensorfile.h \
	src/core/textio.c \
	src/core/textio.h \
	src/core/threads.c \
	src/core/tok_bpe.c \
	src/core/tok_gguf.c \
	src/core/tok_hf.c \
	src/core/tok_spm.c \
	src/core/tok_vocab.c \
	src/core/tok_vocab.h \
	src/core/tokenizer.c \
	src/core/tokenizer.h \
	src/core/train.c \
	src/core/train.h \
	src/core/trainer.c \
	src/core/trainer.h \
	src/core/transfer.c \
	src/core/util.h
liblc_internal_la_CFLAGS = $(AM_CFLAGS) $(MPI_CFLAGS) -fvisibility=hidden
liblc_internal_la_LIBADD =
# NCCL for GPU ranks (--with-cuda with MPI)
if COND_NCCL
liblc_internal_la_SOURCES += src/core/dist_nccl.c
endif
EXTRA_DIST += src/core/dist_nccl.c

lib_LTLIBRARIES += liblolcats.la
liblolcats_la_SOURCES =
liblolcats_la_LIBADD = liblc_internal.la $(LC_DEP_LIBS)
liblolcats_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(LC_LT_VERSION) -no-undefined
# a C++-free link: the (empty) source list needs a linker choice
nodist_EXTRA_liblolcats_la_SOURCES = dummy.c
