# bench: benchmarks that print rates and ratios; built by make, run by hand
# (never by make check).
noinst_PROGRAMS += bench/bench_gemm
bench_bench_gemm_SOURCES = bench/bench_gemm.c
bench_bench_gemm_LDADD = liblc_internal.la $(LC_DEP_LIBS)

if COND_CUDA
# the cuda backend against the GPU's bf16 GEMM peak; exits 77 without a device
noinst_PROGRAMS += bench/bench_cuda
bench_bench_cuda_SOURCES = bench/bench_cuda.c
bench_bench_cuda_CFLAGS = $(AM_CFLAGS) $(LC_CUDA_SYS_CFLAGS)
bench_bench_cuda_LDADD = liblc_internal.la $(LC_DEP_LIBS)
endif

noinst_PROGRAMS += bench/bench_hybrid
bench_bench_hybrid_SOURCES = bench/bench_hybrid.c
bench_bench_hybrid_LDADD = liblc_internal.la $(LC_DEP_LIBS)

# one Llama-3-8B-shaped layer through the backend table (any backend)
noinst_PROGRAMS += bench/bench_layer
bench_bench_layer_SOURCES = bench/bench_layer.c bench/bench_common.c bench/bench_common.h
bench_bench_layer_LDADD = liblc_internal.la $(LC_DEP_LIBS)

# stage 2 (LoRA on the linearized model): stories260K micro-batches
# (--model DIR) and one Llama-3-8B-shaped layer, against the GEMM peak
noinst_PROGRAMS += bench/bench_train
bench_bench_train_SOURCES = bench/bench_train.c bench/bench_common.c bench/bench_common.h
bench_bench_train_LDADD = liblc_internal.la $(LC_DEP_LIBS)

# one stage-1 optimizer step of the Llama-3.2-1B shape (weights made in
# memory), against the GEMM peak
noinst_PROGRAMS += bench/bench_stage1
bench_bench_stage1_SOURCES = bench/bench_stage1.c bench/bench_common.c bench/bench_common.h
bench_bench_stage1_LDADD = liblc_internal.la $(LC_DEP_LIBS)

# decode time and memory per token at 1K..32K context, teacher vs linearized
noinst_PROGRAMS += bench/bench_decode
bench_bench_decode_SOURCES = bench/bench_decode.c
bench_bench_decode_LDADD = liblc_internal.la $(LC_DEP_LIBS)

# the GPU check: prepared here, run on a GPU machine (see the scripts)
EXTRA_DIST += bench/gpu-check.sh bench/gpu-prepare.sh

# scripts: stage-1 throughput on 1 and 2 ranks; the 70B-shaped run
EXTRA_DIST += bench/dist_scale.sh bench/dist_70b.sh

# held-out perplexity of the linearized model against the same LoRA on the
# original model (lolcats-train --compare-lora), mean and spread over seeds
EXTRA_DIST += bench/quality.sh
