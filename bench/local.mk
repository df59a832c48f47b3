# bench: benchmarks that print rates and ratios; built by make, run by hand
# (never by make check).
noinst_PROGRAMS += bench/bench_gemm
bench_bench_gemm_SOURCES = bench/bench_gemm.c
bench_bench_gemm_LDADD = liblc_internal.la $(LC_DEP_LIBS)

noinst_PROGRAMS += bench/bench_hybrid
bench_bench_hybrid_SOURCES = bench/bench_hybrid.c
bench_bench_hybrid_LDADD = liblc_internal.la $(LC_DEP_LIBS)
