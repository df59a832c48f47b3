# tests: CMocka unit tests (one binary per module) and program tests.

# The tests run in parallel (make -j), each with several OpenMP threads, so
# the cores are oversubscribed; threads that spin at barriers then waste
# whole time slices, so they sleep instead (results do not depend on it).
AM_TESTS_ENVIRONMENT = \
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY; \
	LC_TEST_DATA='$(LC_TEST_DATA)'; export LC_TEST_DATA; \
	LC_DATA_DIR='$(abs_top_srcdir)/data'; export LC_DATA_DIR; \
	LC_BUILDDIR='$(abs_top_builddir)'; export LC_BUILDDIR; \
	LC_SRCDIR='$(abs_top_srcdir)'; export LC_SRCDIR;

if COND_CMOCKA
noinst_LTLIBRARIES += tests/liblctest.la
tests_liblctest_la_SOURCES = tests/lc_test.c tests/lc_test.h
tests_liblctest_la_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

LC_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
LC_TEST_LDADD = tests/liblctest.la liblc_internal.la $(LC_DEP_LIBS) $(CMOCKA_LIBS)

check_PROGRAMS += tests/test_core
tests_test_core_SOURCES = tests/test_core.c
tests_test_core_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_core_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_data
tests_test_data_SOURCES = tests/test_data.c
tests_test_data_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_data_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_safetensors
tests_test_safetensors_SOURCES = tests/test_safetensors.c
tests_test_safetensors_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_safetensors_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_gguf
tests_test_gguf_SOURCES = tests/test_gguf.c
tests_test_gguf_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_gguf_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_modelfiles
tests_test_modelfiles_SOURCES = tests/test_modelfiles.c
tests_test_modelfiles_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_modelfiles_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_tokenizer
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c
tests_test_tokenizer_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_tokenizer_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_kernels_grad
tests_test_kernels_grad_SOURCES = tests/test_kernels_grad.c $(LC_REF_F64_SOURCES)
tests_test_kernels_grad_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_kernels_grad_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_kernels_dense
tests_test_kernels_dense_SOURCES = tests/test_kernels_dense.c
tests_test_kernels_dense_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_kernels_dense_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_kernels_attn
tests_test_kernels_attn_SOURCES = tests/test_kernels_attn.c $(LC_REF_F64_SOURCES)
tests_test_kernels_attn_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_kernels_attn_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_llama
tests_test_llama_SOURCES = tests/test_llama.c
tests_test_llama_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_llama_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_ppl
tests_test_ppl_SOURCES = tests/test_ppl.c
tests_test_ppl_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_ppl_LDADD = $(LC_TEST_LDADD)

if COND_CUDA
# the cuda backend against ref; exits 77 (skip) without a CUDA device
check_PROGRAMS += tests/test_cuda
tests_test_cuda_SOURCES = tests/test_cuda.c
tests_test_cuda_CFLAGS = $(LC_TEST_CFLAGS) $(LC_CUDA_SYS_CFLAGS)
tests_test_cuda_LDADD = $(LC_TEST_LDADD)
endif

check_PROGRAMS += tests/test_lora
tests_test_lora_SOURCES = tests/test_lora.c $(LC_REF_F64_SOURCES) $(LC_REF_HYBRID_F64_SOURCES)
tests_test_lora_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_lora_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_decode
tests_test_decode_SOURCES = tests/test_decode.c
tests_test_decode_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_decode_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_fmap tests/test_hybrid
tests_test_fmap_SOURCES = tests/test_fmap.c $(LC_REF_HYBRID_F64_SOURCES)
tests_test_fmap_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_fmap_LDADD = $(LC_TEST_LDADD)
tests_test_hybrid_SOURCES = tests/test_hybrid.c $(LC_REF_HYBRID_F64_SOURCES)
tests_test_hybrid_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_hybrid_LDADD = $(LC_TEST_LDADD)
endif

LC_CLI_TESTS = tests/cli_manpages.sh tests/cli_train.sh tests/cli_blas.sh tests/cli_generate.sh
TESTS += $(check_PROGRAMS) $(LC_CLI_TESTS)
EXTRA_DIST += $(LC_CLI_TESTS)
