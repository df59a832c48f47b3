# tests: CMocka unit tests (one binary per module) and program tests.

# The tests run in parallel (make -j), each with several OpenMP threads, so
# the cores are oversubscribed; threads that spin at barriers then waste
# whole time slices, so they sleep instead (results do not depend on it).
AM_TESTS_ENVIRONMENT = \
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive}; export OMP_WAIT_POLICY; \
	LC_TEST_DATA='$(LC_TEST_DATA)'; export LC_TEST_DATA; \
	LC_DATA_DIR='$(abs_top_srcdir)/data'; export LC_DATA_DIR; \
	LC_BUILDDIR='$(abs_top_builddir)'; export LC_BUILDDIR; \
	LC_SRCDIR='$(abs_top_srcdir)'; export LC_SRCDIR; \
	LC_HAVE_MPI='$(LC_HAVE_MPI)'; export LC_HAVE_MPI; \
	LC_SANITIZERS='$(LC_SANITIZERS)'; export LC_SANITIZERS;

if COND_CMOCKA
noinst_LTLIBRARIES += tests/liblctest.la
tests_liblctest_la_SOURCES = tests/lc_test.c tests/lc_test.h
tests_liblctest_la_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

LC_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
# the hybrid attention cases of test_hybrid, test_backend_ops and test_cuda
# (with the float64 reference, LC_REF_HYBRID_F64_SOURCES)
LC_TEST_HYBRID_SOURCES = tests/lc_test_hybrid.c tests/lc_test_hybrid.h
LC_TEST_LDADD = tests/liblctest.la liblc_internal.la $(LC_DEP_LIBS) $(CMOCKA_LIBS)

check_PROGRAMS += tests/test_core
tests_test_core_SOURCES = tests/test_core.c
tests_test_core_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_core_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_dist
tests_test_dist_SOURCES = tests/test_dist.c
tests_test_dist_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_dist_LDADD = $(LC_TEST_LDADD)

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
tests_test_kernels_attn_SOURCES = tests/test_kernels_attn.c
tests_test_kernels_attn_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_kernels_attn_LDADD = $(LC_TEST_LDADD)

# every entry of the backend table on every backend of the build, one row
# per entry (see the comment at its top)
check_PROGRAMS += tests/test_backend_ops
tests_test_backend_ops_SOURCES = tests/test_backend_ops.c $(LC_TEST_HYBRID_SOURCES) \
	$(LC_REF_F64_SOURCES) $(LC_REF_HYBRID_F64_SOURCES)
tests_test_backend_ops_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_backend_ops_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_train
tests_test_train_SOURCES = tests/test_train.c $(LC_REF_F64_SOURCES)
tests_test_train_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_train_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_llama
tests_test_llama_SOURCES = tests/test_llama.c
tests_test_llama_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_llama_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_ppl
tests_test_ppl_SOURCES = tests/test_ppl.c
tests_test_ppl_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_ppl_LDADD = $(LC_TEST_LDADD)

check_PROGRAMS += tests/test_eval
tests_test_eval_SOURCES = tests/test_eval.c
tests_test_eval_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_eval_LDADD = $(LC_TEST_LDADD)

if COND_CUDA
# the cuda backend against ref; exits 77 (skip) without a CUDA device.
# tests/cuda_selftest.cu (kernels that check the CUDA primitives) is built
# by nvcc's rule of src/backend-cuda/local.mk.
check_PROGRAMS += tests/test_cuda
tests_test_cuda_SOURCES = tests/test_cuda.c tests/cuda_selftest.h $(LC_TEST_HYBRID_SOURCES) \
	$(LC_REF_HYBRID_F64_SOURCES)
tests_test_cuda_CFLAGS = $(LC_TEST_CFLAGS) $(LC_CUDA_SYS_CFLAGS)
tests_test_cuda_LDADD = tests/cuda_selftest.lo $(LC_TEST_LDADD) -lstdc++
EXTRA_tests_test_cuda_DEPENDENCIES = tests/cuda_selftest.lo
tests/cuda_selftest.lo: $(srcdir)/tests/cuda_selftest.h $(srcdir)/src/backend-cuda/cuda_mma.cuh \
	$(srcdir)/src/backend-cuda/cuda_common.cuh $(srcdir)/src/backend-cuda/cuda_kernels.h
CLEANFILES += tests/cuda_selftest.lo tests/.libs/cuda_selftest.o

# whole-model checks, cuda against cpu (stories260K); 77 without a device
check_PROGRAMS += tests/test_cuda_model
tests_test_cuda_model_SOURCES = tests/test_cuda_model.c
tests_test_cuda_model_CFLAGS = $(LC_TEST_CFLAGS) $(LC_CUDA_SYS_CFLAGS)
tests_test_cuda_model_LDADD = $(LC_TEST_LDADD)

# The same test of the attention-student entries on any machine: the glue
# and those kernels built by the host compiler against the CPU emulation
# of CUDA and cuBLAS (tests/cuda_emu.h; the .cu files as C++).
LC_EMU_FLAGS = -DLC_CUDA_EMU -include $(srcdir)/tests/cuda_emu.h
LC_EMU_CU_OBJS = tests/emu/k_fmap.o tests/emu/k_hybrid.o tests/emu/k_hybrid_xent.o \
	tests/emu/k_decode.o tests/emu/k_attn.o tests/emu/k_flash.o tests/emu/k_hybrid_tile.o \
	tests/emu/cuda_selftest.o
LC_EMU_CXX = $(CC) -x c++ -std=c++17 $(DEFS) $(AM_CPPFLAGS) $(CPPFLAGS) $(LC_CUDA_SYS_CFLAGS) \
	$(LC_EMU_FLAGS) $(CFLAGS) $(LC_SAN_CFLAGS) -Wall -Wextra -Wshadow -Wundef
LC_EMU_DEPS = $(srcdir)/tests/cuda_emu.h $(srcdir)/src/backend-cuda/cuda_kernels.h \
	$(srcdir)/src/backend-cuda/cuda_common.cuh $(srcdir)/src/backend-cuda/cuda_hybrid.cuh \
	$(srcdir)/src/backend-cuda/cuda_mma.cuh $(srcdir)/src/core/backend.h
AM_V_EMU = $(am__v_EMU_@AM_V@)
am__v_EMU_ = $(am__v_EMU_@AM_DEFAULT_V@)
am__v_EMU_0 = @echo "  EMU-CXX " $@;
am__v_EMU_1 =
tests/emu/k_fmap.o: $(srcdir)/src/backend-cuda/k_fmap.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/src/backend-cuda/k_fmap.cu
tests/emu/k_hybrid.o: $(srcdir)/src/backend-cuda/k_hybrid.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/src/backend-cuda/k_hybrid.cu
tests/emu/k_hybrid_xent.o: $(srcdir)/src/backend-cuda/k_hybrid_xent.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ \
	$(srcdir)/src/backend-cuda/k_hybrid_xent.cu
tests/emu/k_decode.o: $(srcdir)/src/backend-cuda/k_decode.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/src/backend-cuda/k_decode.cu
tests/emu/k_attn.o: $(srcdir)/src/backend-cuda/k_attn.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/src/backend-cuda/k_attn.cu
tests/emu/k_flash.o: $(srcdir)/src/backend-cuda/k_flash.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/src/backend-cuda/k_flash.cu
tests/emu/k_hybrid_tile.o: $(srcdir)/src/backend-cuda/k_hybrid_tile.cu $(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ \
	$(srcdir)/src/backend-cuda/k_hybrid_tile.cu
tests/emu/cuda_selftest.o: $(srcdir)/tests/cuda_selftest.cu $(srcdir)/tests/cuda_selftest.h \
	$(LC_EMU_DEPS)
	$(AM_V_EMU)$(MKDIR_P) tests/emu && $(LC_EMU_CXX) -c -o $@ $(srcdir)/tests/cuda_selftest.cu
CLEANFILES += $(LC_EMU_CU_OBJS)

check_PROGRAMS += tests/test_cuda_emu
tests_test_cuda_emu_SOURCES = tests/test_cuda.c src/backend-cuda/cuda_backend.c \
	tests/cuda_emu.c $(LC_TEST_HYBRID_SOURCES) $(LC_REF_HYBRID_F64_SOURCES)
# the dense-op tests are compiled but not run under the emulation
tests_test_cuda_emu_CFLAGS = $(LC_TEST_CFLAGS) $(LC_CUDA_SYS_CFLAGS) $(LC_EMU_FLAGS) \
	-Wno-unused-function
tests_test_cuda_emu_LDADD = $(LC_EMU_CU_OBJS) $(LC_TEST_LDADD) -lstdc++
EXTRA_tests_test_cuda_emu_DEPENDENCIES = $(LC_EMU_CU_OBJS)

# the rows of tests/test_backend_ops.c whose kernels the emulation builds,
# on the emulated cuda backend
check_PROGRAMS += tests/test_backend_ops_emu
tests_test_backend_ops_emu_SOURCES = tests/test_backend_ops.c src/backend-cuda/cuda_backend.c \
	tests/cuda_emu.c $(LC_TEST_HYBRID_SOURCES) $(LC_REF_F64_SOURCES) \
	$(LC_REF_HYBRID_F64_SOURCES)
tests_test_backend_ops_emu_CFLAGS = $(LC_TEST_CFLAGS) $(LC_CUDA_SYS_CFLAGS) $(LC_EMU_FLAGS)
tests_test_backend_ops_emu_LDADD = $(LC_EMU_CU_OBJS) $(LC_TEST_LDADD) -lstdc++
EXTRA_tests_test_backend_ops_emu_DEPENDENCIES = $(LC_EMU_CU_OBJS)
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
tests_test_hybrid_SOURCES = tests/test_hybrid.c $(LC_TEST_HYBRID_SOURCES) $(LC_REF_HYBRID_F64_SOURCES)
tests_test_hybrid_CFLAGS = $(LC_TEST_CFLAGS)
tests_test_hybrid_LDADD = $(LC_TEST_LDADD)
endif

LC_CLI_TESTS = tests/cli_manpages.sh tests/cli_train.sh tests/cli_blas.sh tests/cli_generate.sh \
	tests/cli_eval.sh tests/cli_reference.sh tests/cli_feedback.sh tests/cli_faults.sh \
	tests/cli_oom.sh tests/cli_dist.sh tests/cli_plan.sh tests/cli_netns.sh \
	tests/cli_compare.sh
TESTS += $(check_PROGRAMS) $(LC_CLI_TESTS)
EXTRA_DIST += $(LC_CLI_TESTS) tests/cli_common.sh tests/cli_dist_common.sh tests/valgrind.sh \
	tests/valgrind.supp \
	tests/failmalloc.c tests/cuda_selftest.cu tests/cuda_emu.h tests/cuda_emu.c

# the allocation-failure library of tests/cli_oom.sh (preloaded: no
# sanitizer flags, no libtool)
check_DATA = tests/failmalloc.so
tests/failmalloc.so: tests/failmalloc.c
	$(AM_V_CC)$(MKDIR_P) tests && $(CC) $(CFLAGS) -shared -fPIC -o $@ $(srcdir)/tests/failmalloc.c -ldl
CLEANFILES += tests/failmalloc.so

# each program on a short run under valgrind's memcheck (not part of
# check: several minutes)
check-valgrind: all
	@$(AM_TESTS_ENVIRONMENT) $(SHELL) $(srcdir)/tests/valgrind.sh
.PHONY: check-valgrind
