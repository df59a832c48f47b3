/*
 * Helpers shared by the unit tests: where the data is, seeded fills, and
 * comparisons that print what differs.
 *
 * Exit codes follow Automake: 0 pass, 1 fail, 77 skip (data missing),
 * 99 hard error.
 */
#ifndef LC_TESTS_LC_TEST_H
#define LC_TESTS_LC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend-cpu/cpu.h"
#include "core/backend.h"

#define LC_TEST_SKIP 77

/* The shared data folder (../shared/data), from LC_TEST_DATA.  Exits 77
 * when it is not set or not a folder. */
const char *lc_test_data_dir(void);
/* A file of the shared data in a static rotating buffer: the project's
 * data/ + "/" + rel when data/ bundles it (the small model and text of the
 * main job), else data_dir + "/" + rel; exits 77 when the file is
 * missing. */
const char *lc_test_data_path(const char *rel);
/* The project's own data/ folder (reference outputs), from LC_DATA_DIR. */
const char *lc_test_project_path(const char *rel);
/* The same, but when the file is missing only the calling test is
 * skipped, so that a binary's tests without data still run. */
const char *lc_test_data_file(const char *rel);
/* A fresh temporary folder, removed at exit. */
const char *lc_test_tmpdir(void);
/* lc_test_tmpdir() + "/" + name in a static rotating buffer (8 of them). */
const char *lc_test_tmp_path(const char *name);

/* Whole files; any failure fails the test.  lc_test_read_file returns a
 * malloc'd copy with a NUL after the last byte (*len does not count it). */
void lc_test_write_file(const char *path, const void *data, size_t len);
void lc_test_write_text(const char *path, const char *text);
void *lc_test_read_file(const char *path, size_t *len);

/* Fails the test unless rc is code and err->msg contains substr. */
void lc_test_expect_error(lc_status rc, const struct lc_error *err, lc_status code,
                          const char *substr);

/* deterministic fills (xorshift-based, independent of libc) */
void lc_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
void lc_test_fill_normal(float *x, size_t n, uint64_t seed, float stddev);

/* Zeroed arrays of n elements (one more is allocated, so that n = 0 is
 * fine); being out of memory fails the test. */
void *lc_test_calloc(size_t n, size_t size);
float *lc_test_new_f32(size_t n);
double *lc_test_new_f64(size_t n);
/* new arrays: uniform in [lo, hi) (lc_test_fill_uniform), a copy, a
 * widened copy, and a copy stored as F32, F16 or BF16 (rounded) */
float *lc_test_new_uniform(size_t n, uint64_t seed, float lo, float hi);
float *lc_test_dup_f32(const float *x, size_t n);
double *lc_test_to_f64(const float *x, size_t n);
void *lc_test_to_dtype(const float *x, size_t n, enum lc_dtype type);
/* x rounded to the dtype and back, in place (the values lc_test_to_dtype
 * stores); returns x */
float *lc_test_round_to(float *x, size_t n, enum lc_dtype type);
/* NaN everywhere: outputs a kernel must write */
void lc_test_fill_nan(float *x, size_t n);
double lc_test_max_abs(const float *x, size_t n);

/* Compares n values: |got - ref| <= atol + rtol * |ref|.  Prints the first
 * five mismatches, the largest absolute error and the count; returns the
 * number of mismatches (0 = pass). */
size_t lc_test_check_close(const char *name, const float *got, const float *ref, size_t n,
                           double atol, double rtol);
size_t lc_test_check_close_f64(const char *name, const double *got, const double *ref, size_t n,
                               double atol, double rtol);
double lc_test_max_abs_diff(const float *a, const float *b, size_t n);
/* The teacher attention's shapes (batch, queries, keys, heads, KV heads,
 * head dim, position of the first query) of the comparisons with the
 * reference on uniform inputs: every backend at the default settings in
 * tests/test_backend_ops.c, cuda's query chunks in tests/test_cuda.c. */
struct lc_test_attn_shape {
    int B, Tq, Tk, H, Hkv, D, q_pos0;
};
#define LC_TEST_N_ATTN_SHAPES 8
extern const struct lc_test_attn_shape lc_test_attn_shapes[LC_TEST_N_ATTN_SHAPES];
/* lc_test_check_close relative to the reference's scale: atol = tol *
 * max|ref|, rtol = tol. */
size_t lc_test_check_rel(const char *name, const float *got, const float *ref, size_t n,
                         double tol);
/* Fails the test unless a and b are the same bits. */
void lc_test_expect_same(const char *what, const float *a, const float *b, size_t n);

/* Element offset of (b, t, head h of nh, 0) in a [B, T, nh, dim] array
 * of attention shape s. */
size_t lc_test_at4(const struct lc_attn_shape *s, int b, int t, int nh, int h, int dim);

/* Opens a backend table directly (without the completeness check of
 * lc_backend_open), so that kernel tests can run before every entry
 * exists; fails the test on error. */
struct lc_backend *lc_test_backend(const struct lc_backend_ops *ops);
void lc_test_backend_free(struct lc_backend *be);

/* Group fixture of the cpu kernel tests: the ref and cpu backends and the
 * ISAs to cover (lc_test_cpu_isas); teardown also restores the default
 * thread count. */
struct lc_test_cpu_ref {
    struct lc_backend *ref;
    struct lc_backend *cpu;
    enum lc_cpu_isa isas[LC_CPU_ISA_COUNT];
    int nisas;
};
int lc_test_cpu_ref_setup(void **state);
int lc_test_cpu_ref_teardown(void **state);

/* The cpu backend's kernel sets to cover: generic always, and each vector
 * set built and supported up to the one in use (LC_CPU_ISA=avx2 leaves
 * AVX-512 out; a note says when there is none); returns how many. */
int lc_test_cpu_isas(enum lc_cpu_isa isas[LC_CPU_ISA_COUNT]);
/* Switches a cpu backend's kernels, and their name in messages. */
void lc_test_set_isa(struct lc_backend *be, enum lc_cpu_isa isa);
const char *lc_test_isa_name(enum lc_cpu_isa isa);

#endif /* LC_TESTS_LC_TEST_H */
