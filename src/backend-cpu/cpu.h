/*
 * The "cpu" backend: OpenBLAS SGEMM, OpenMP, and vector kernels (AVX2+FMA
 * or AVX-512 on x86-64, NEON on aarch64) chosen at run time, with a
 * generic C fallback.
 */
#ifndef LC_BACKEND_CPU_CPU_H
#define LC_BACKEND_CPU_CPU_H

#include "core/backend.h"
#include "core/util.h"

/* the kernel sets (cpu_kernels.h) */
enum lc_cpu_isa {
    LC_CPU_ISA_GENERIC = 0,
    LC_CPU_ISA_AVX2 = 1,   /* AVX2, FMA and F16C */
    LC_CPU_ISA_AVX512 = 2, /* AVX-512 F, BW, DQ, VL */
    LC_CPU_ISA_NEON = 3,   /* aarch64 ASIMD */
    LC_CPU_ISA_COUNT = 4
};

/* A linear layer with half-precision weights converts them to fp32 in
 * tiles of whole rows of at most this many bytes, one SGEMM per tile.
 * lc_cpu_sgemm cuts a product into pieces fixed by its shape (16 or more
 * where it is large), each packing its own panels of x and of the
 * weights: with T = 1024 tokens a whole Llama-3-8B MLP matrix (235 MB in
 * fp32) in one tile gives pieces of 512 x 512, where tiles of 64 MiB gave
 * 256 x 304 (1.8 times the packing per FLOP).  The memory plan counts one
 * tile (plan.c). */
#define LC_CPU_WEIGHT_TILE_BYTES ((size_t)256 << 20)

/* How the decoding gemv prefetches the weights it streams from memory
 * (measured per CPU: a stream of bf16 rows of 4096 with two threads on an
 * Intel Xeon ran faster with the lines fetched to L1 2 KiB ahead than with
 * the hardware prefetcher alone; on an AMD EPYC Zen 4, fetching them to L1
 * made it 0.6-0.8x as fast, and to L2 about as fast as or a little faster
 * than not at all). */
enum lc_cpu_prefetch {
    LC_CPU_PREFETCH_NONE,
    LC_CPU_PREFETCH_L1,
    LC_CPU_PREFETCH_L2,
    LC_CPU_PREFETCH_COUNT
};

/* Where LC_CPU_PREFETCH names no level, decoding measures them against
 * each other on the weights it streams anyway: the one-row products of at
 * least min_bytes of weights (bound by memory) take the levels in turn and
 * time themselves, from the second time the first such product's weights
 * come by (the first pass over a model's weights may fault their pages
 * in) for LC_CPU_PROBE_PRODUCTS products; then the level with the least
 * median time per byte is kept if it beats the level the probe started
 * from (the vendor's default) by LC_CPU_PROBE_MARGIN, else that one.  Only
 * the speed depends on it. */
/* 14 per level: a multiple of 3 and of 7, a Llama layer's seven products */
#define LC_CPU_PROBE_PRODUCTS 42
#define LC_CPU_PROBE_MARGIN 0.05
#define LC_CPU_PROBE_MIN_BYTES ((size_t)4 << 20)

struct lc_cpu_probe {
    int active;        /* 0: the level in use stays */
    const void *first; /* the first timed-size product's weights */
    /* products timed, product i with level i % 3: 0 until the first
     * one's weights come by again; LC_CPU_PROBE_PRODUCTS once the level
     * in use came out of the probe */
    int taken;
    double per_byte[LC_CPU_PROBE_PRODUCTS]; /* seconds per weight byte */
    size_t min_bytes;  /* LC_CPU_PROBE_MIN_BYTES; the tests lower it */
};

struct lc_cpu_ctx {
    enum lc_cpu_isa isa; /* kernels in use; tests switch it to cover each */
    enum lc_cpu_prefetch gemv_prefetch; /* lc_cpu_detect_prefetch, then the probe */
    struct lc_cpu_probe probe;
    /* the fp32 weight tiles' limit: LC_CPU_WEIGHT_TILE_BYTES (the tests
     * lower it to reach several tiles with small weights) */
    size_t weight_tile_bytes;
    /* scratch shared by the kernels (fp32 weight tiles, attention scores),
     * 64-byte aligned, grown on demand, freed by fini */
    void *scratch;
    size_t scratch_bytes;
    /* the most bytes asked for since it was last set to 0 (by the tests,
     * which refill only that much of the scratch with NaN between cases) */
    size_t scratch_asked;
    /* the first failure of a kernel since the last sync (code LC_OK: none);
     * kernels cannot return errors, so sync reports it */
    struct lc_error failure;
};

static inline enum lc_cpu_isa lc_cpu_isa_of(const struct lc_backend *be)
{
    return ((const struct lc_cpu_ctx *)be->ctx)->isa;
}

/* The kernels to use: the best set this CPU and build support, or the
 * one LC_CPU_ISA names (generic, avx2, avx512, neon) where supported. */
enum lc_cpu_isa lc_cpu_detect_isa(void);

/* The decoding gemv's prefetch: the one LC_CPU_PREFETCH names (none, l1,
 * l2; *named set to 1), or else the level measured best on this CPU's
 * vendor's cores (*named 0: the probe may change it). */
enum lc_cpu_prefetch lc_cpu_detect_prefetch(int *named);

/* Starts the probe of the prefetch levels (struct lc_cpu_probe) afresh,
 * from the level in use. */
void lc_cpu_probe_start(struct lc_cpu_ctx *ctx);

/* The level the probe settles on from n (a multiple of 3) times per byte,
 * time i taken with level i % 3: the one with the least median, where it
 * is under (1 - LC_CPU_PROBE_MARGIN) times current's median; else current.
 * median[], where not NULL, receives each level's median. */
enum lc_cpu_prefetch lc_cpu_probe_pick(const double *per_byte, int n, enum lc_cpu_prefetch current,
                                       double *median);

/* "none", "l1", "l2": the LC_CPU_PREFETCH names. */
const char *lc_cpu_prefetch_name(enum lc_cpu_prefetch level);

/* Whether this CPU and build run a kernel set. */
int lc_cpu_isa_supported(enum lc_cpu_isa isa);

/* "generic", "avx2", "avx512", "neon": the LC_CPU_ISA names. */
const char *lc_cpu_isa_name(enum lc_cpu_isa isa);

/* Scratch of at least `bytes`, valid until the next lc_cpu_scratch call
 * (so a kernel must not hold it across calls of other entries that use
 * it: linear_fwd, linear_bwd, attn_fwd); NULL, with the failure recorded
 * for sync, when out of memory. */
void *lc_cpu_scratch(struct lc_backend *be, size_t bytes);

/* Records a kernel failure for the next sync (the first one wins). */
void lc_cpu_fail(struct lc_backend *be, lc_status code, const char *fmt, ...) LC_PRINTF(3, 4);

/* C[M,N] = alpha op(A) op(B) + beta C with the layout of the gemm entry,
 * through OpenBLAS, bit-identical for any number of threads.  C is cut
 * into tiles fixed by the shapes alone, and each tile is one OpenBLAS call
 * that runs on one thread of an OpenMP team: OpenBLAS's own threading
 * splits the reduction differently for 1 and for n threads, so it is
 * never used.  Meant for the host thread (called inside a parallel
 * region, it gives the same bits). */
void lc_cpu_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

/* The same product on the calling thread only, for use inside a parallel
 * region (one call gives the same bits on any thread). */
void lc_cpu_sgemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* for (int64_t VAR = 0; VAR < N; VAR += STEP) { BODY }: split over an
 * OpenMP team (schedule static) when PAR, else on the calling thread
 * without entering OpenMP at all.  Even an if(0) or one-thread parallel
 * region costs about a microsecond, as much as a whole small op of a
 * decoding step, so small calls must not enter one. */
#define LC_CPU_PAR_FOR(par, var, n, step, ...)                                                    \
    do {                                                                                          \
        const int64_t lc_pf_n_ = (n);                                                             \
        if (par) {                                                                                \
            _Pragma("omp parallel for schedule(static)") for (int64_t var = 0; var < lc_pf_n_;    \
                                                              var += (step))                      \
            {                                                                                     \
                __VA_ARGS__                                                                       \
            }                                                                                     \
        } else {                                                                                  \
            for (int64_t var = 0; var < lc_pf_n_; var += (step)) {                                \
                __VA_ARGS__                                                                       \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* -------------------------------------------------------------- entries */
/* dense algebra (cpu_gemm.c) */
void lc_cpu_gemm(struct lc_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void lc_cpu_linear_fwd(struct lc_backend *be, float *y, const float *x, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);
void lc_cpu_linear_bwd(struct lc_backend *be, float *dx, const float *dy, const void *w,
                       enum lc_dtype wtype, int N, int K, int M, float beta);

/* elementwise, embedding, norms, RoPE, SwiGLU, losses, optimizer
 * (cpu_dense.c) */
void lc_cpu_add(struct lc_backend *be, float *y, const float *x, int64_t n);
void lc_cpu_dropout(struct lc_backend *be, float *y, const float *x, int64_t n, float p,
                    uint64_t seed);
void lc_cpu_embedding_fwd(struct lc_backend *be, float *out, const int32_t *ids,
                          const void *table, enum lc_dtype ttype, int N, int C);
void lc_cpu_embedding_bwd(struct lc_backend *be, float *dtable, const float *dout,
                          const int32_t *ids, int N, int C, int V);
void lc_cpu_rmsnorm_fwd(struct lc_backend *be, float *out, float *rstd, const float *x,
                        const float *w, int N, int C, float eps);
void lc_cpu_rmsnorm_bwd(struct lc_backend *be, float *dx, float *dw, const float *dout,
                        const float *x, const float *w, const float *rstd, int N, int C);
void lc_cpu_rope_fwd(struct lc_backend *be, float *x, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);
void lc_cpu_rope_bwd(struct lc_backend *be, float *dx, const int32_t *pos, const float *cos_tab,
                     const float *sin_tab, int N, int nh, int D);
void lc_cpu_swiglu_fwd(struct lc_backend *be, float *out, const float *gate, const float *up,
                       int64_t n);
void lc_cpu_swiglu_bwd(struct lc_backend *be, float *dgate, float *dup, const float *dout,
                       const float *gate, const float *up, int64_t n);
void lc_cpu_mse_fwd_bwd(struct lc_backend *be, float *row_sse, float *dpred, const float *pred,
                        const float *target, int64_t rows, int cols, float grad_scale);
void lc_cpu_xent_fwd_bwd(struct lc_backend *be, float *row_loss, float *dlogits,
                         const float *logits, const int32_t *targets, int N, int V,
                         float grad_scale);
void lc_cpu_adamw(struct lc_backend *be, float *p, const float *g, float *m, float *v,
                  int64_t n, double lr, double beta1, double beta2, double eps, double wd,
                  int64_t step);

/* softmax attention (cpu_attn.c) */
void lc_cpu_attn_fwd(struct lc_backend *be, float *y, const float *q, const float *k,
                     const float *v, int B, int Tq, int Tk, int H, int Hkv, int D, int q_pos0);

#endif /* LC_BACKEND_CPU_CPU_H */
