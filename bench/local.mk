# bench

noinst_PROGRAMS += bench/bench_hybrid
bench_bench_hybrid_SOURCES = bench/bench_hybrid.c
bench_bench_hybrid_LDADD = liblc_internal.la $(LC_DEP_LIBS)
