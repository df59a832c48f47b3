/* Core utilities: status strings, errors, half-precision conversions, the
 * backend registry, the file and path helpers, the median. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/half.h"
#include "core/util.h"
#include "tests/lc_test.h"

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(lc_status_str(LC_OK), "success");
    assert_string_equal(lc_status_str(LC_ERR_FORMAT), "malformed file");
    assert_string_equal(lc_status_str((lc_status)-999), "unknown status");
    assert_string_equal(lc_dtype_name(LC_DTYPE_BF16), "BF16");
    assert_int_equal(lc_dtype_size(LC_DTYPE_F16), 2);
    assert_int_equal(lc_dtype_size((enum lc_dtype)99), 0);
}

static void test_error_messages(void **state)
{
    struct lc_error err = {0};
    (void)state;
    assert_int_equal(lc_err_set(&err, LC_ERR_IO, "%s: cannot open", "x.bin"), LC_ERR_IO);
    assert_int_equal(err.code, LC_ERR_IO);
    assert_string_equal(err.msg, "x.bin: cannot open");
    lc_err_prefix(&err, "loading %s", "model");
    assert_string_equal(err.msg, "loading model: x.bin: cannot open");
    /* a NULL error struct is allowed everywhere */
    assert_int_equal(lc_err_set(NULL, LC_ERR_ARG, "ignored"), LC_ERR_ARG);
}

/* Every bf16 and f16 bit pattern converts to f32 and back unchanged
 * (NaNs stay NaNs). */
static void test_half_roundtrip(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float fb = lc_bf16_to_f32(h);
        float fh = lc_f16_to_f32(h);
        if (isnan(fb)) {
            assert_true(isnan(lc_bf16_to_f32(lc_f32_to_bf16(fb))));
        } else {
            assert_int_equal(lc_f32_to_bf16(fb), h);
        }
        if (isnan(fh)) {
            assert_true(isnan(lc_f16_to_f32(lc_f32_to_f16(fh))));
        } else {
            assert_int_equal(lc_f32_to_f16(fh), h);
        }
    }
}

/* f32 -> f16 rounding agrees with the compiler's own _Float16 conversion
 * on a sweep that covers normal, subnormal, overflowing and halfway cases. */
static void test_f16_rounding(void **state)
{
    (void)state;
#if defined(__FLT16_MAX__)
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u;
        float f;
        _Float16 ref;
        uint16_t refbits;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* exponents around the f16 range: 2^-30 .. 2^20 */
        u = (uint32_t)(s & 0x807fffffu) | ((uint32_t)(97 + (s >> 40) % 51) << 23);
        memcpy(&f, &u, sizeof(f));
        ref = (_Float16)f;
        memcpy(&refbits, &ref, sizeof(refbits));
        if (lc_f32_to_f16(f) != refbits) {
            fail_msg("f32 %.9g (0x%08x): got f16 0x%04x, want 0x%04x", f, u, lc_f32_to_f16(f),
                     refbits);
        }
    }
#else
    skip();
#endif
}

static void test_bf16_rounding(void **state)
{
    (void)state;
    /* 1 + 2^-8 is exactly halfway between two bf16 values: ties to even */
    assert_int_equal(lc_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    assert_int_equal(lc_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    assert_int_equal(lc_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    assert_int_equal(lc_f32_to_bf16(-2.0f), 0xc000);
    assert_true(lc_bf16_to_f32(0x7f80) == INFINITY);
}

static void test_backend_registry(void **state)
{
    struct lc_backend *be = NULL;
    struct lc_error err = {0};
    const char *const *names = lc_backend_list();
    struct lc_backend_ops empty = {0};
    (void)state;

    assert_string_equal(names[0], "cpu");
    assert_string_equal(names[1], "ref");
    assert_int_equal(lc_backend_open(&be, "tpu", &err), LC_ERR_ARG);
    assert_null(be);
    assert_non_null(strstr(err.msg, "unknown backend 'tpu'"));
    assert_non_null(strstr(err.msg, "cpu, ref"));
    assert_string_equal(lc_backend_ops_missing(&empty), "name");
    empty.name = "x";
    assert_string_equal(lc_backend_ops_missing(&empty), "init");
    lc_backend_close(NULL);
}

/* fileio: reading whole small files and their first bytes, mapping, and
 * the path helpers; missing files, folders and files over the limit get
 * errors naming them. */
static void test_fileio(void **state)
{
    const char *dir = lc_test_tmpdir();
    char *ten = lc_path_join(dir, "ten.txt");
    char *empty = lc_path_join(dir, "empty.txt");
    char *missing = lc_path_join(dir, "missing.txt");
    struct lc_error err = {0};
    char head[16];
    char *buf = NULL;
    void *map = NULL;
    size_t len = 99;
    (void)state;

    assert_non_null(ten);
    assert_non_null(empty);
    assert_non_null(missing);
    assert_string_equal(ten + strlen(dir), "/ten.txt");
    lc_test_write_text(ten, "0123456789");
    lc_test_write_text(empty, "");
    assert_true(lc_path_ends_with(ten, ".txt"));
    assert_false(lc_path_ends_with(ten, ".json"));
    assert_false(lc_path_ends_with("t", ".txt"));
    assert_true(lc_is_regular_file(ten));
    assert_false(lc_is_regular_file(dir));
    assert_false(lc_is_regular_file(missing));
    assert_true(lc_is_dir(dir));
    assert_false(lc_is_dir(ten));

    assert_int_equal(lc_read_small_file(ten, 10, &buf, &len, &err), LC_OK);
    assert_int_equal(len, 10);
    assert_string_equal(buf, "0123456789");
    free(buf);
    assert_int_equal(lc_read_small_file(empty, 10, &buf, &len, &err), LC_OK);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
    assert_int_equal(lc_read_small_file(ten, 9, &buf, &len, &err), LC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "ten.txt: 10 bytes, more than the 9 allowed"));
    assert_int_equal(lc_read_small_file(missing, 10, &buf, &len, &err), LC_ERR_IO);
    assert_non_null(strstr(err.msg, "missing.txt: cannot open"));
    assert_int_equal(lc_read_small_file(dir, 10, &buf, &len, &err), LC_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));

    assert_int_equal(lc_map_file(ten, &map, &len, &err), LC_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(map, "0123456789", 10);
    lc_unmap_file(map, len);
    assert_int_equal(lc_map_file(empty, &map, &len, &err), LC_OK);
    assert_null(map);
    assert_int_equal(len, 0);
    lc_unmap_file(map, len);

    assert_int_equal(lc_read_file_head(ten, head, 4, &len, &err), LC_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(head, "0123", 4);
    assert_int_equal(lc_read_file_head(ten, head, sizeof(head), &len, &err), LC_OK);
    assert_int_equal(len, 10);
    assert_int_equal(lc_read_file_head(missing, head, 4, &len, &err), LC_ERR_IO);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, "missing.txt: cannot open"));
    free(ten);
    free(empty);
    free(missing);
}

/* lc_mkdir_parents is mkdir -p; lc_path_absolute resolves a relative path
 * against the working folder. */
static void test_dirs_and_paths(void **state)
{
    const char *deep = lc_test_tmp_path("a/b//c/");
    const char *file = lc_test_tmp_path("f");
    const char *under_file = lc_test_tmp_path("f/g");
    char cwd[4096];
    char want[4200];
    char *top;
    char *abs;
    (void)state;

    assert_int_equal(lc_mkdir_parents(deep), 0);
    assert_true(lc_is_dir(lc_test_tmp_path("a/b/c")));
    assert_int_equal(lc_mkdir_parents(deep), 0); /* exists: fine */
    assert_int_equal(lc_mkdir_parents(lc_test_tmp_path("a/b/d")), 0);
    assert_true(lc_is_dir(lc_test_tmp_path("a/b/d")));
    lc_test_write_text(file, "x");
    errno = 0;
    assert_int_equal(lc_mkdir_parents(file), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(lc_mkdir_parents(under_file), -1);

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    top = realpath(lc_test_tmp_path("a"), NULL); /* the temporary folder may be a link */
    assert_non_null(top);
    assert_int_equal(chdir(top), 0);
    abs = lc_path_absolute("b/../b/c");
    snprintf(want, sizeof(want), "%s/b/c", top);
    assert_string_equal(abs, want);
    free(abs);
    abs = lc_path_absolute("missing/x");
    snprintf(want, sizeof(want), "%s/missing/x", top);
    assert_string_equal(abs, want);
    free(abs);
    free(top);
    abs = lc_path_absolute("/no/such/folder");
    assert_string_equal(abs, "/no/such/folder");
    free(abs);
    assert_int_equal(chdir(cwd), 0);
}

/* the middle value of an odd count, the mean of the middle two of an even
 * one, whatever the order given; the values come back sorted */
static void test_median(void **state)
{
    double one[] = {7.5}, odd[] = {3.0, -1.0, 9.0, 2.0, 2.5}, even[] = {4.0, 1.0, 3.0, 10.0};

    (void)state;
    assert_true(lc_median(one, 1) == 7.5);
    assert_true(lc_median(odd, 5) == 2.5);
    assert_true(odd[0] == -1.0 && odd[1] == 2.0 && odd[2] == 2.5 && odd[3] == 3.0 &&
                odd[4] == 9.0);
    assert_true(lc_median(even, 4) == 3.5);
    assert_true(even[0] == 1.0 && even[3] == 10.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),  cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_half_roundtrip),  cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_bf16_rounding),   cmocka_unit_test(test_backend_registry),
        cmocka_unit_test(test_fileio),          cmocka_unit_test(test_dirs_and_paths),
        cmocka_unit_test(test_median),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
