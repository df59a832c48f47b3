#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "tests/lc_test.h"

static char tmpdir_path[512];

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *lc_test_data_dir(void)
{
    const char *dir = getenv("LC_TEST_DATA");
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "SKIP: no shared test data (configure --with-test-data=DIR)\n");
        exit(LC_TEST_SKIP);
    }
    if (!is_dir(dir)) {
        fprintf(stderr, "SKIP: test data folder %s not found (configure --with-test-data=DIR)\n",
                dir);
        exit(LC_TEST_SKIP);
    }
    return dir;
}

static const char *join_checked(const char *dir, const char *rel)
{
    static char bufs[8][1024];
    static int next;
    char *buf = bufs[next++ % 8];
    struct stat st;

    snprintf(buf, sizeof(bufs[0]), "%s/%s", dir, rel);
    if (stat(buf, &st) != 0) {
        fprintf(stderr, "SKIP: %s not found\n", buf);
        exit(LC_TEST_SKIP);
    }
    return buf;
}

/* The bundled copy of a shared file: the project's data/ holds the few
 * small ones the main job needs under the same names (data/README.md). */
static const char *bundled(const char *rel, char *buf, size_t cap)
{
    const char *dir = getenv("LC_DATA_DIR");
    struct stat st;

    if (dir == NULL || dir[0] == '\0') {
        return NULL;
    }
    snprintf(buf, cap, "%s/%s", dir, rel);
    return stat(buf, &st) == 0 ? buf : NULL;
}

const char *lc_test_data_path(const char *rel)
{
    static char bufs[8][1024];
    static int next;
    const char *own = bundled(rel, bufs[next++ % 8], sizeof(bufs[0]));
    return own != NULL ? own : join_checked(lc_test_data_dir(), rel);
}

const char *lc_test_project_path(const char *rel)
{
    const char *dir = getenv("LC_DATA_DIR");
    if (dir == NULL || !is_dir(dir)) {
        fprintf(stderr, "SKIP: LC_DATA_DIR is not set or not a folder\n");
        exit(LC_TEST_SKIP);
    }
    return join_checked(dir, rel);
}

static void remove_tmpdir(void)
{
    if (tmpdir_path[0] != '\0') {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir_path);
        if (system(cmd) != 0) {
            fprintf(stderr, "warning: could not remove %s\n", tmpdir_path);
        }
    }
}

const char *lc_test_tmpdir(void)
{
    if (tmpdir_path[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir_path, sizeof(tmpdir_path), "%s/lctest.XXXXXX",
                 base != NULL && base[0] != '\0' ? base : "/tmp");
        if (mkdtemp(tmpdir_path) == NULL) {
            fprintf(stderr, "cannot create a temporary folder: %s\n", strerror(errno));
            exit(99);
        }
        atexit(remove_tmpdir);
    }
    return tmpdir_path;
}

const char *lc_test_data_file(const char *rel)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    const char *dir = getenv("LC_TEST_DATA");
    struct stat st;
    if (bundled(rel, b, sizeof(bufs[0])) != NULL) {
        return b;
    }
    if (dir == NULL || dir[0] == '\0') {
        print_message("no shared test data for %s: skipping\n", rel);
        skip();
    }
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, rel);
    if (stat(b, &st) != 0) {
        print_message("%s not found: skipping\n", b);
        skip();
    }
    return b;
}

const char *lc_test_tmp_path(const char *name)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", lc_test_tmpdir(), name);
    return b;
}

void lc_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (len > 0) {
        assert_int_equal(fwrite(data, 1, len, fp), len);
    }
    assert_int_equal(fclose(fp), 0);
}

void lc_test_write_text(const char *path, const char *text)
{
    lc_test_write_file(path, text, strlen(text));
}

void *lc_test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

void lc_test_expect_error(lc_status rc, const struct lc_error *err, lc_status code,
                          const char *substr)
{
    if (rc != code || strstr(err->msg, substr) == NULL) {
        print_error("expected status %d with \"%s\"; got %d: %s\n", (int)code, substr, (int)rc,
                    err->msg);
        fail();
    }
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static double unit_uniform(uint64_t *s)
{
    return (double)(xorshift(s) >> 11) * (1.0 / 9007199254740992.0);
}

void lc_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    for (size_t i = 0; i < n; i++) {
        x[i] = lo + (hi - lo) * (float)unit_uniform(&s);
    }
}

void lc_test_fill_normal(float *x, size_t n, uint64_t seed, float stddev)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x7654321ull;
    for (size_t i = 0; i < n; i++) {
        double u1 = unit_uniform(&s);
        double u2 = unit_uniform(&s);
        if (u1 < 1e-300) {
            u1 = 1e-300;
        }
        x[i] = (float)(stddev * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

void *lc_test_calloc(size_t n, size_t size)
{
    void *p = calloc(n + 1, size);
    if (p == NULL) {
        fail_msg("out of memory");
    }
    return p;
}

float *lc_test_new_f32(size_t n)
{
    return lc_test_calloc(n, sizeof(float));
}

double *lc_test_new_f64(size_t n)
{
    return lc_test_calloc(n, sizeof(double));
}

float *lc_test_new_uniform(size_t n, uint64_t seed, float lo, float hi)
{
    float *p = lc_test_new_f32(n);
    lc_test_fill_uniform(p, n, seed, lo, hi);
    return p;
}

float *lc_test_dup_f32(const float *x, size_t n)
{
    float *p = lc_test_new_f32(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

double *lc_test_to_f64(const float *x, size_t n)
{
    double *d = lc_test_new_f64(n);
    for (size_t i = 0; i < n; i++) {
        d[i] = x[i];
    }
    return d;
}

void *lc_test_to_dtype(const float *x, size_t n, enum lc_dtype type)
{
    uint16_t *h;
    if (type == LC_DTYPE_F32) {
        return lc_test_dup_f32(x, n);
    }
    h = lc_test_calloc(n, sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        h[i] = type == LC_DTYPE_F16 ? lc_f32_to_f16(x[i]) : lc_f32_to_bf16(x[i]);
    }
    return h;
}

float *lc_test_round_to(float *x, size_t n, enum lc_dtype type)
{
    for (size_t i = 0; type != LC_DTYPE_F32 && i < n; i++) {
        x[i] = type == LC_DTYPE_F16 ? lc_f16_to_f32(lc_f32_to_f16(x[i]))
                                    : lc_bf16_to_f32(lc_f32_to_bf16(x[i]));
    }
    return x;
}

void lc_test_fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = NAN;
    }
}

double lc_test_max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    }
    return m;
}

size_t lc_test_check_close_f64(const char *name, const double *got, const double *ref, size_t n,
                               double atol, double rtol)
{
    size_t bad = 0;
    double max_err = 0.0;
    size_t max_at = 0;

    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]);
        int ok = err <= atol + rtol * fabs(ref[i]);
        if (isnan(got[i]) != isnan(ref[i])) {
            ok = 0;
            err = INFINITY;
        }
        if (err > max_err || (isnan(err) && !isnan(max_err))) {
            max_err = err;
            max_at = i;
        }
        if (!ok) {
            if (bad < 5) {
                fprintf(stderr, "  %s[%zu]: got %.9g, want %.9g (diff %.3g)\n", name, i, got[i],
                        ref[i], err);
            }
            bad++;
        }
    }
    if (bad > 0 || getenv("LC_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "%s: %zu of %zu values off (atol %g, rtol %g); max abs err %.3g at %zu\n",
                name, bad, n, atol, rtol, max_err, max_at);
    }
    return bad;
}

size_t lc_test_check_close(const char *name, const float *got, const float *ref, size_t n,
                           double atol, double rtol)
{
    double *g = malloc(n * sizeof(double) + 1);
    double *r = malloc(n * sizeof(double) + 1);
    size_t bad;

    if (g == NULL || r == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(99);
    }
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        r[i] = ref[i];
    }
    bad = lc_test_check_close_f64(name, g, r, n, atol, rtol);
    free(g);
    free(r);
    return bad;
}

double lc_test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) {
            m = d;
        }
    }
    return m;
}

const struct lc_test_attn_shape lc_test_attn_shapes[LC_TEST_N_ATTN_SHAPES] = {
    {1, 1, 1, 1, 1, 1, 0},                                 /* the smallest */
    {2, 37, 37, 6, 2, 24, 0},                              /* training shape, GQA */
    {1, 1, 50, 8, 2, 128, 49},                             /* one decoding step after a cache */
    {1, 1, 1000, 4, 1, 64, 999}, {2, 5, 20, 4, 4, 64, 15}, /* a prefill after a cache */
    {1, 10, 6, 2, 1, 16, 3}, /* queries past the last key see all keys */
    {1, 300, 300, 8, 2, 128, 0}, {3, 17, 17, 3, 3, 5, 0},
};

size_t lc_test_check_rel(const char *name, const float *got, const float *ref, size_t n, double tol)
{
    return lc_test_check_close(name, got, ref, n, tol * lc_test_max_abs(ref, n), tol);
}

void lc_test_expect_same(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            fail_msg("%s: element %zu differs: %.9g vs %.9g", what, i, a[i], b[i]);
        }
    }
}

size_t lc_test_at4(const struct lc_attn_shape *s, int b, int t, int nh, int h, int dim)
{
    return (((size_t)b * s->T + (size_t)t) * (size_t)nh + (size_t)h) * (size_t)dim;
}

struct lc_backend *lc_test_backend(const struct lc_backend_ops *ops)
{
    struct lc_error err = {0};
    struct lc_backend *be = calloc(1, sizeof(*be));

    assert_non_null(be);
    be->ops = ops;
    if (ops->init(be, &err) != LC_OK) {
        fail_msg("init of backend %s failed: %s", ops->name, err.msg);
    }
    return be;
}

void lc_test_backend_free(struct lc_backend *be)
{
    if (be != NULL) {
        be->ops->fini(be);
        free(be);
    }
}

int lc_test_cpu_isas(enum lc_cpu_isa isas[LC_CPU_ISA_COUNT])
{
    const enum lc_cpu_isa best = lc_cpu_detect_isa();
    int n = 0;

    isas[n++] = LC_CPU_ISA_GENERIC;
    for (int i = 1; i < LC_CPU_ISA_COUNT; i++) {
        /* the vector sets up to the one in use (LC_CPU_ISA may lower it) */
        if (lc_cpu_isa_supported((enum lc_cpu_isa)i) && i <= (int)best) {
            isas[n++] = (enum lc_cpu_isa)i;
        }
    }
    if (n == 1) {
        fprintf(stderr, "note: no vector kernels built, supported or on (LC_CPU_ISA): generic only\n");
    }
    return n;
}

int lc_test_cpu_ref_setup(void **state)
{
    struct lc_test_cpu_ref *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return -1;
    }
    b->ref = lc_test_backend(&lc_ref_ops);
    b->cpu = lc_test_backend(&lc_cpu_ops);
    b->nisas = lc_test_cpu_isas(b->isas);
    *state = b;
    return 0;
}

int lc_test_cpu_ref_teardown(void **state)
{
    struct lc_test_cpu_ref *b = *state;
    lc_test_backend_free(b->ref);
    lc_test_backend_free(b->cpu);
    free(b);
    lc_set_num_threads(0);
    return 0;
}

void lc_test_set_isa(struct lc_backend *be, enum lc_cpu_isa isa)
{
    ((struct lc_cpu_ctx *)be->ctx)->isa = isa;
}

const char *lc_test_isa_name(enum lc_cpu_isa isa)
{
    return lc_cpu_isa_name(isa);
}
