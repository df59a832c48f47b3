/*
 * What the benchmarks that run through the backend table share: opening
 * the backend, random buffers in backend memory, timing, the GEMM peak,
 * the Llama-3-8B layer shape, the chunked hybrid attention's block
 * products, and the report line.  Failures print "PROG: ..." and exit.
 */
#ifndef LC_BENCH_COMMON_H
#define LC_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

/* Switches to the fast BLAS kernels, sets the thread count, opens the
 * backend and prints its description; prog names the benchmark in
 * messages.  Returns 0, or the exit status after printing the error (77
 * without a CUDA device).  For the cpu backend without LC_CPU_ISA (or
 * with LC_CPU_ISA=all) it does not return: it runs the program once per
 * kernel set the CPU supports (the AVX2 run with OpenBLAS's Haswell
 * kernels, as on an AVX2 machine) and exits. */
int bench_open(struct lc_backend **be, const char *prog, int argc, char **argv,
               const char *backend, int threads);

/* n values of type dt (fp32, or bf16 rounded from fp32) uniform in
 * +-scale from a xorshift stream of seed, in backend memory. */
void *bench_random(struct lc_backend *be, size_t n, enum lc_dtype dt, uint64_t seed, float scale);

/* The clock after the backend's queued work has finished. */
double bench_sync_now(struct lc_backend *be);

/* Best FLOP/s over reps runs of the larger of an fp32 2048^3 gemm and a
 * bf16-weight 4096^3 linear layer; prints both rates. */
double bench_gemm_peak(struct lc_backend *be, int reps);

/* The same peak sampled over a whole run, between the runs it is compared
 * with, so that both see the machine in the same minutes: open allocates
 * the operands, each sample runs the gemm and the linear layer once and
 * keeps the best of each, close prints both rates, frees the operands and
 * returns the larger in FLOP/s. */
struct bench_peak {
    struct lc_backend *be;
    float *A, *B, *C, *X, *Y;
    void *W;
    double best_f32, best_bf16; /* seconds */
};

void bench_peak_open(struct bench_peak *p, struct lc_backend *be);
void bench_peak_sample(struct bench_peak *p);
double bench_peak_close(struct bench_peak *p);

/* One Llama-3-8B-shaped layer (hidden 4096, 32 heads, 8 KV heads of 128,
 * FFN 14336, RoPE base 500000) as a one-layer model; the vocabulary is
 * 256 and tied, as only the layer runs. */
void bench_llama3_8b_layer(struct lc_model_config *cfg);

/* The whole Llama-3.2-1B (16 layers, hidden 2048, 32 heads, 8 KV heads of
 * 64, FFN 8192, vocabulary 128256 tied, llama3 RoPE scaling), as its
 * config.json gives it. */
void bench_llama32_1b(struct lc_model_config *cfg);

/* The GEMM FLOPs of the chunked hybrid attention of T tokens (window W,
 * head dim D, F features) per (batch, head), summed over its blocks:
 * *near, one [nb x nk] x D product of a block's window (scores, or weights
 * times values); *lin, phi(q) S; *state, S += phi(k)^T v. */
void bench_hybrid_blocks(int T, int W, int D, int F, double *near, double *lin, double *state);

/* GEMM FLOPs of the chunked hybrid attention per (batch, head): the
 * forward, and the backward of the stage-1 gradients */
void bench_hybrid_flops(int T, int W, int D, int F, double *fwd, double *bwd);

/* GEMM FLOPs of one decoder layer of shape c over T tokens (one
 * sequence): *fwd, its forward with causal softmax attention (the MLP only
 * when with_mlp); *transfer, its attention transfer: that forward plus the
 * feature maps of q and k (f columns) and their weight gradients, the
 * chunked hybrid attention (window W, terraced) forward, and its backward
 * for the stage-1 gradients. */
void bench_layer_flops(const struct lc_model_config *c, int T, int f, int W, int with_mlp,
                       double *fwd, double *transfer);

/* "WHAT   N tokens/s  G GFLOP/s  P% of the GEMM peak", WHAT padded to
 * width. */
void bench_report(const char *what, int width, int tokens, double secs, double flops,
                  double peak);

#endif /* LC_BENCH_COMMON_H */
