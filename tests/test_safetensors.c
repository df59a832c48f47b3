/* Safetensors reader, sets and writer: the real stories260K checkpoint,
 * round trips, sharded folders, and corrupt or hostile files. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/tensorfile.h"
#include "tests/lc_test.h"

/* ------------------------------------------------------------------ helpers */

/* A safetensors file from a header text (used as is, no padding) and
 * data_len bytes of data (a counting pattern). */
static const char *write_st(const char *name, uint64_t hlen_field, const char *header,
                            size_t data_len)
{
    const char *path = lc_test_tmp_path(name);
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_len);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)(hlen_field >> (8 * i));
    }
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) {
        buf[8 + hl + i] = (unsigned char)(i * 7 + 1);
    }
    lc_test_write_file(path, buf, 8 + hl + data_len);
    free(buf);
    return path;
}

/* Opens a file that must fail with code and a message containing substr
 * (and the file's path). */
static void expect_open_fails(const char *path, lc_status code, const char *substr)
{
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    lc_status rc = lc_st_open(&f, path, &err);
    assert_null(f);
    lc_test_expect_error(rc, &err, code, substr);
    if (strstr(err.msg, path) == NULL) {
        print_error("message does not name the file %s: %s\n", path, err.msg);
        fail();
    }
}

static void expect_header_fails(const char *header, size_t data_len, lc_status code,
                                const char *substr)
{
    const char *path = write_st("bad.safetensors", strlen(header), header, data_len);
    expect_open_fails(path, code, substr);
}

/* stories260K.bin (llama2.c): 7 int32 header fields, then float32 arrays
 * in a fixed order; returns the float offset of each array we compare. */
enum { BIN_EMBED, BIN_WV, BIN_FINAL };

static size_t bin_float_offset(int which, int layer)
{
    const size_t V = 512, C = 64, F = 172, L = 5, KV = 32;
    size_t off = 0;
    if (which == BIN_EMBED) {
        return off;
    }
    off += V * C + L * C + L * C * C + L * KV * C; /* embed, rms_att, wq, wk */
    if (which == BIN_WV) {
        return off + (size_t)layer * KV * C;
    }
    off += L * KV * C + L * C * C + L * C + L * F * C * 3; /* wv, wo, rms_ffn, w1, w2, w3 */
    return off;
}

/* ---------------------------------------------------------------- real data */

static void test_real_file(void **state)
{
    const char *path = lc_test_data_file("models/stories260K-hf/model.safetensors");
    const char *bin_path = lc_test_data_file("models/stories260K/stories260K.bin");
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    unsigned char *bin = NULL;
    size_t bin_len = 0;
    const float *binf = NULL;
    (void)state;

    assert_int_equal(lc_st_open(&f, path, &err), LC_OK);
    assert_string_equal(lc_st_path(f), path);
    assert_int_equal(lc_st_count(f), 47);
    assert_string_equal(lc_st_metadata(f, "format"), "pt");
    assert_null(lc_st_metadata(f, "nope"));
    assert_string_equal(lc_st_at(f, 0)->name, "model.embed_tokens.weight");
    assert_string_equal(lc_st_at(f, 46)->name, "model.norm.weight");
    assert_null(lc_st_at(f, 47));
    assert_null(lc_st_find(f, "lm_head.weight"));
    for (size_t i = 0; i < lc_st_count(f); i++) {
        t = lc_st_at(f, i);
        assert_ptr_equal(lc_st_find(f, t->name), t);
        assert_int_equal(t->dtype, LC_DTYPE_F32);
        assert_int_equal((uintptr_t)t->data % 4, 0);
    }

    t = lc_st_find(f, "model.layers.3.self_attn.k_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 32);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->numel, 32 * 64);
    assert_int_equal(t->nbytes, 32 * 64 * 4);
    t = lc_st_find(f, "model.layers.0.mlp.down_proj.weight");
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->shape[1], 172);

    /* values: the same weights as the llama2.c checkpoint (no permutation
     * for the embedding, v_proj and the final norm) */
    bin = lc_test_read_file(bin_path, &bin_len);
    assert_int_equal(bin_len, 1056540);
    binf = (const float *)(bin + 28);
    t = lc_st_find(f, "model.embed_tokens.weight");
    assert_int_equal(t->shape[0], 512);
    assert_memory_equal(t->data, binf + bin_float_offset(BIN_EMBED, 0), t->nbytes);
    t = lc_st_find(f, "model.layers.2.self_attn.v_proj.weight");
    assert_memory_equal(t->data, binf + bin_float_offset(BIN_WV, 2), t->nbytes);
    t = lc_st_find(f, "model.norm.weight");
    assert_int_equal(t->ndim, 1);
    assert_memory_equal(t->data, binf + bin_float_offset(BIN_FINAL, 0), t->nbytes);

    free(bin);
    lc_st_close(f);
    lc_st_close(NULL);
}

static void test_set_forms(void **state)
{
    const char *dir = lc_test_data_file("models/stories260K-hf");
    const char *file = lc_test_data_file("models/stories260K-hf/model.safetensors");
    struct lc_st_set *a = NULL;
    struct lc_st_set *b = NULL;
    struct lc_error err = {0};
    lc_status rc;
    (void)state;

    assert_int_equal(lc_st_set_open(&a, dir, &err), LC_OK);
    assert_int_equal(lc_st_set_open(&b, file, &err), LC_OK);
    assert_int_equal(lc_st_set_count(a), 47);
    assert_int_equal(lc_st_set_count(b), 47);
    for (size_t i = 0; i < 47; i++) {
        const struct lc_tensor_view *ta = lc_st_set_at(a, i);
        const struct lc_tensor_view *tb = lc_st_set_at(b, i);
        assert_string_equal(ta->name, tb->name);
        assert_ptr_equal(lc_st_set_find(a, ta->name), ta);
        assert_memory_equal(ta->data, tb->data, ta->nbytes);
    }
    assert_null(lc_st_set_at(a, 47));
    assert_null(lc_st_set_find(a, "model.layers.5.self_attn.q_proj.weight"));
    lc_st_set_close(a);
    lc_st_set_close(b);
    lc_st_set_close(NULL);

    a = NULL;
    rc = lc_st_set_open(&a, lc_test_tmp_path("no-such-folder"), &err);
    assert_null(a);
    lc_test_expect_error(rc, &err, LC_ERR_IO, "no-such-folder");
    mkdir(lc_test_tmp_path("empty-model"), 0777);
    rc = lc_st_set_open(&a, lc_test_tmp_path("empty-model"), &err);
    lc_test_expect_error(rc, &err, LC_ERR_IO, "neither model.safetensors nor");
}

/* ------------------------------------------------------------------- writer */

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e = NULL;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp.") != NULL) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_writer_roundtrip(void **state)
{
    const char *path = NULL;
    struct lc_st_writer *w = NULL;
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    float f32[6];
    uint16_t f16[5] = {0x3c00, 0xbc00, 0x7bff, 0x0001, 0x8000};
    uint16_t bf16[4] = {0x3f80, 0xc000, 0x7f80, 0x0000};
    int32_t i32[3] = {-1, 0, 2147483647};
    int64_t i64[2] = {INT64_MIN, 42};
    uint8_t u8[3] = {0, 128, 255};
    float scalar = 3.5f;
    const int64_t s_f32[2] = {2, 3}, s_f16[1] = {5}, s_bf16[3] = {1, 2, 2}, s_i32[1] = {3};
    const int64_t s_i64[1] = {2}, s_u8[1] = {3}, s_empty[2] = {0, 4};
    size_t len = 0;
    unsigned char *bytes = NULL;
    uint64_t hlen = 0;
    (void)state;

    lc_test_fill_normal(f32, 6, 1, 1.0f);
    path = lc_test_tmp_path("rt.safetensors");
    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    /* u8 first: the writer must still align the wider types after it */
    assert_int_equal(lc_st_writer_add(w, "u8", LC_DTYPE_U8, 1, s_u8, u8, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "a.f16", LC_DTYPE_F16, 1, s_f16, f16, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "w", LC_DTYPE_F32, 2, s_f32, f32, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "bf", LC_DTYPE_BF16, 3, s_bf16, bf16, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "i32", LC_DTYPE_I32, 1, s_i32, i32, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "i64", LC_DTYPE_I64, 1, s_i64, i64, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "scalar", LC_DTYPE_F32, 0, NULL, &scalar, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "empty", LC_DTYPE_F32, 2, s_empty, NULL, &err), LC_OK);
    assert_int_equal(lc_st_writer_set_metadata(w, "format", "xx", &err), LC_OK);
    assert_int_equal(lc_st_writer_set_metadata(w, "format", "pt", &err), LC_OK);
    assert_int_equal(lc_st_writer_set_metadata(w, "note", "héllo \"quoted\"", &err), LC_OK);
    /* writing twice replaces the file */
    assert_int_equal(lc_st_writer_write(w, path, &err), LC_OK);
    assert_int_equal(lc_st_writer_write(w, path, &err), LC_OK);
    assert_int_equal(count_tmp_files(lc_test_tmpdir()), 0);
    f32[0] = 99.0f; /* the writer copied the data */

    bytes = lc_test_read_file(path, &len);
    for (int i = 7; i >= 0; i--) {
        hlen = (hlen << 8) | bytes[i];
    }
    assert_int_equal(hlen % 8, 0);
    assert_true(8 + hlen <= len);
    assert_int_equal(bytes[8], '{');
    assert_int_equal(bytes[8 + hlen - 1] == ' ' || bytes[8 + hlen - 1] == '}', 1);

    assert_int_equal(lc_st_open(&f, path, &err), LC_OK);
    assert_int_equal(lc_st_count(f), 8);
    assert_string_equal(lc_st_metadata(f, "format"), "pt");
    assert_string_equal(lc_st_metadata(f, "note"), "héllo \"quoted\"");
    /* header order is the order of adding */
    assert_string_equal(lc_st_at(f, 0)->name, "u8");
    assert_string_equal(lc_st_at(f, 7)->name, "empty");
    for (size_t i = 0; i < lc_st_count(f); i++) {
        const struct lc_tensor_view *t = lc_st_at(f, i);
        if (t->nbytes > 0) {
            assert_int_equal((uintptr_t)t->data % lc_dtype_size(t->dtype), 0);
        }
    }
    {
        const struct lc_tensor_view *t = lc_st_find(f, "w");
        float expect[6];
        lc_test_fill_normal(expect, 6, 1, 1.0f);
        assert_int_equal(t->dtype, LC_DTYPE_F32);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[1], 3);
        assert_memory_equal(t->data, expect, sizeof(expect));
    }
    assert_memory_equal(lc_st_find(f, "a.f16")->data, f16, sizeof(f16));
    assert_int_equal(lc_st_find(f, "a.f16")->dtype, LC_DTYPE_F16);
    assert_memory_equal(lc_st_find(f, "bf")->data, bf16, sizeof(bf16));
    assert_int_equal(lc_st_find(f, "bf")->shape[2], 2);
    assert_memory_equal(lc_st_find(f, "i32")->data, i32, sizeof(i32));
    assert_memory_equal(lc_st_find(f, "i64")->data, i64, sizeof(i64));
    assert_int_equal(lc_st_find(f, "i64")->dtype, LC_DTYPE_I64);
    assert_memory_equal(lc_st_find(f, "u8")->data, u8, sizeof(u8));
    assert_int_equal(lc_st_find(f, "scalar")->ndim, 0);
    assert_int_equal(lc_st_find(f, "scalar")->numel, 1);
    assert_memory_equal(lc_st_find(f, "scalar")->data, &scalar, 4);
    assert_int_equal(lc_st_find(f, "empty")->numel, 0);
    assert_int_equal(lc_st_find(f, "empty")->nbytes, 0);
    lc_st_close(f);
    free(bytes);
    lc_st_writer_free(w);
    lc_st_writer_free(NULL);
}

/* Writing the stories260K tensors back, in header order with the same
 * metadata, gives the file the Python library wrote, byte for byte. */
static void test_writer_matches_python(void **state)
{
    const char *src = lc_test_data_file("models/stories260K-hf/model.safetensors");
    const char *dst = lc_test_tmp_path("copy.safetensors");
    struct lc_st_file *f = NULL;
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    unsigned char *a = NULL;
    unsigned char *b = NULL;
    size_t la = 0;
    size_t lb = 0;
    (void)state;

    assert_int_equal(lc_st_open(&f, src, &err), LC_OK);
    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    assert_int_equal(lc_st_writer_set_metadata(w, "format", "pt", &err), LC_OK);
    for (size_t i = 0; i < lc_st_count(f); i++) {
        const struct lc_tensor_view *t = lc_st_at(f, i);
        assert_int_equal(lc_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err),
                         LC_OK);
    }
    assert_int_equal(lc_st_writer_write(w, dst, &err), LC_OK);
    a = lc_test_read_file(src, &la);
    b = lc_test_read_file(dst, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    lc_st_writer_free(w);
    lc_st_close(f);
}

static void test_writer_errors(void **state)
{
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    float x[4] = {0};
    const int64_t ok[1] = {4}, neg[2] = {2, -1}, huge[2] = {INT64_MAX, 4};
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    char path[1100];
    lc_status rc;
    (void)state;

    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "x", LC_DTYPE_F32, 1, ok, x, &err), LC_OK);
    rc = lc_st_writer_add(w, "x", LC_DTYPE_F32, 1, ok, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "added twice");
    rc = lc_st_writer_add(w, "__metadata__", LC_DTYPE_F32, 1, ok, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "invalid tensor name");
    rc = lc_st_writer_add(w, "", LC_DTYPE_F32, 1, ok, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "invalid tensor name");
    rc = lc_st_writer_add(w, "n", LC_DTYPE_F32, 2, neg, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "invalid shape");
    rc = lc_st_writer_add(w, "h", LC_DTYPE_F32, 2, huge, x, &err);
    assert_int_equal(rc, LC_ERR_ARG);
    rc = lc_st_writer_add(w, "d", LC_DTYPE_F32, 9, nine, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "9 dimensions");
    rc = lc_st_writer_add(w, "t", LC_DTYPE_COUNT, 1, ok, x, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "invalid dtype");
    rc = lc_st_writer_add(w, "z", LC_DTYPE_F32, 1, ok, NULL, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "no data");
    rc = lc_st_writer_add(w, "bad\xff", LC_DTYPE_F32, 1, ok, x, &err);
    assert_int_equal(rc, LC_OK);
    snprintf(path, sizeof(path), "%s/badname.safetensors", lc_test_tmpdir());
    rc = lc_st_writer_write(w, path, &err);
    lc_test_expect_error(rc, &err, LC_ERR_ARG, "not valid UTF-8");
    lc_st_writer_free(w);

    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "x", LC_DTYPE_F32, 1, ok, x, &err), LC_OK);
    snprintf(path, sizeof(path), "%s/missing-dir/out.safetensors", lc_test_tmpdir());
    rc = lc_st_writer_write(w, path, &err);
    lc_test_expect_error(rc, &err, LC_ERR_IO, "missing-dir/out.safetensors");
    assert_int_equal(count_tmp_files(lc_test_tmpdir()), 0);
    lc_st_writer_free(w);
}

/* ----------------------------------------------------------------- bad input */

static void test_bad_length(void **state)
{
    const char *path = NULL;
    (void)state;

    path = lc_test_tmp_path("empty.safetensors");
    lc_test_write_file(path, "", 0);
    expect_open_fails(path, LC_ERR_FORMAT, "too short");
    path = lc_test_tmp_path("five.safetensors");
    lc_test_write_file(path, "\x10\0\0\0\0", 5);
    expect_open_fails(path, LC_ERR_FORMAT, "too short");
    path = write_st("past.safetensors", 1000, "{}", 0);
    expect_open_fails(path, LC_ERR_FORMAT, "runs past the end");
    path = write_st("huge.safetensors", UINT64_MAX, "{}", 0);
    expect_open_fails(path, LC_ERR_FORMAT, "larger than");
    path = write_st("zero.safetensors", 0, "{}", 0);
    expect_open_fails(path, LC_ERR_FORMAT, "does not start with a JSON object");
    expect_open_fails(lc_test_tmp_path("absent.safetensors"), LC_ERR_IO, "cannot open");
    expect_open_fails(lc_test_tmpdir(), LC_ERR_IO, "not a regular file");
}

static void test_bad_header(void **state)
{
    (void)state;
    expect_header_fails("{garbage", 0, LC_ERR_FORMAT, "not valid JSON");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", ", 0, LC_ERR_FORMAT, "not valid JSON");
    expect_header_fails("[1, 2]", 0, LC_ERR_FORMAT, "does not start with a JSON object");
    expect_header_fails("{} {}", 0, LC_ERR_FORMAT, "not valid JSON");
    expect_header_fails("{\"a\": 1}", 0, LC_ERR_FORMAT, "header entry a is not an object");
    expect_header_fails("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, LC_ERR_FORMAT,
                        "tensor a has no dtype");
    expect_header_fails("{\"a\": {\"dtype\": \"Q99\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                        4, LC_ERR_FORMAT, "tensor a has unknown dtype \"Q99\"");
    expect_header_fails("{\"b\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
                        8, LC_ERR_UNSUPPORTED, "tensor b has dtype F64");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
                        LC_ERR_FORMAT, "no shape");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1, 4], \"data_offsets\": [0, "
                        "4]}}",
                        4, LC_ERR_FORMAT, "shape entry 0 is not a non-negative integer");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, "
                        "4]}}",
                        4, LC_ERR_FORMAT, "shape entry 0");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, "
                        "4294967296], \"data_offsets\": [0, 4]}}",
                        4, LC_ERR_FORMAT, "too large");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], "
                        "\"data_offsets\": [0, 4]}}",
                        4, LC_ERR_FORMAT, "9 dimensions");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
                        LC_ERR_FORMAT, "data_offsets is not a pair");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, "
                        "0]}}",
                        4, LC_ERR_FORMAT, "data_offsets is not a pair");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [250], \"data_offsets\": [0, "
                        "1000]}}",
                        16, LC_ERR_FORMAT, "lie outside the 16 bytes");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}",
                        8, LC_ERR_FORMAT, "lie outside");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, "
                        "8]}}",
                        8, LC_ERR_FORMAT, "hold 8 bytes, but F32 [2, 2] needs 16");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                        " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
                        24, LC_ERR_FORMAT, "tensor b (data_offsets [8, 24]) overlaps tensor a");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]}}",
                        24, LC_ERR_FORMAT, "data bytes [8, 16) belong to no tensor");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                        12, LC_ERR_FORMAT, "after the last tensor");
    expect_header_fails("{\"__metadata__\": {\"k\": 1}}", 0, LC_ERR_FORMAT,
                        "__metadata__ value of k is not a string");
    expect_header_fails("{\"__metadata__\": [1]}", 0, LC_ERR_FORMAT, "__metadata__ is not an");
    expect_header_fails("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                        " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                        8, LC_ERR_FORMAT, "duplicate");
    expect_header_fails("{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                        4, LC_ERR_FORMAT, "empty name");
}

/* A header whose length is not a multiple of 8 is valid; its tensors get
 * aligned copies. */
static void test_misaligned_header(void **state)
{
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}} ";
    const char *path = write_st("odd.safetensors", strlen(hdr), hdr, 16);
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    unsigned char expect[16];
    (void)state;

    assert_int_not_equal(strlen(hdr) % 4, 0);
    for (size_t i = 0; i < 16; i++) {
        expect[i] = (unsigned char)(i * 7 + 1);
    }
    assert_int_equal(lc_st_open(&f, path, &err), LC_OK);
    assert_int_equal((uintptr_t)lc_st_find(f, "a")->data % 4, 0);
    assert_int_equal((uintptr_t)lc_st_find(f, "b")->data % 8, 0);
    assert_memory_equal(lc_st_find(f, "a")->data, expect, 8);
    assert_memory_equal(lc_st_find(f, "b")->data, expect + 8, 8);
    assert_null(lc_st_metadata(f, "format"));
    lc_st_close(f);
}

static const char *write_small_valid(const char *name)
{
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    float x[12];
    uint16_t h[3] = {1, 2, 3};
    const int64_t sx[2] = {3, 4}, sh[1] = {3};
    const char *path = lc_test_tmp_path(name);

    lc_test_fill_uniform(x, 12, 7, -1.0f, 1.0f);
    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "x", LC_DTYPE_F32, 2, sx, x, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "h", LC_DTYPE_BF16, 1, sh, h, &err), LC_OK);
    assert_int_equal(lc_st_writer_set_metadata(w, "format", "pt", &err), LC_OK);
    assert_int_equal(lc_st_writer_write(w, path, &err), LC_OK);
    lc_st_writer_free(w);
    return path;
}

/* Every proper prefix of a valid file is an error, never a crash. */
static void test_truncated_everywhere(void **state)
{
    const char *src = write_small_valid("whole.safetensors");
    const char *dst = lc_test_tmp_path("cut.safetensors");
    unsigned char *buf = NULL;
    size_t len = 0;
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    (void)state;

    buf = lc_test_read_file(src, &len);
    assert_int_equal(lc_st_open(&f, src, &err), LC_OK);
    lc_st_close(f);
    lc_test_write_file(dst, buf, len);
    /* shrink one file from the end: rewriting it each time is slow */
    for (size_t cut = len; cut-- > 0;) {
        lc_status rc;
        f = NULL;
        assert_int_equal(truncate(dst, (off_t)cut), 0);
        rc = lc_st_open(&f, dst, &err);
        if (rc == LC_OK || f != NULL) {
            print_error("prefix of %zu of %zu bytes was accepted\n", cut, len);
            fail();
        }
        assert_int_equal(rc, LC_ERR_FORMAT);
    }
    free(buf);
}

/* Single-byte corruptions anywhere in the header: an error or a valid
 * file, never a crash (the sanitizer build checks the reads). */
static void test_corrupt_bytes(void **state)
{
    const char *src = write_small_valid("whole2.safetensors");
    const char *dst = lc_test_tmp_path("flip.safetensors");
    static const unsigned char subst[] = {0x00, 0xff, '0', '9', '"', '-', '[', '{', ' ', 0x80};
    unsigned char *buf = NULL;
    size_t len = 0;
    size_t hend;
    int n_ok = 0;
    int n_err = 0;
    int fd = -1;
    (void)state;

    buf = lc_test_read_file(src, &len);
    lc_test_write_file(dst, buf, len);
    /* patch one byte at a time in place: rewriting the file is slow */
    fd = open(dst, O_WRONLY);
    assert_true(fd >= 0);
    hend = 8 + (size_t)buf[0] + ((size_t)buf[1] << 8);
    assert_true(hend < len);
    for (size_t pos = 0; pos < hend; pos++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            unsigned char keep = buf[pos];
            struct lc_st_file *f = NULL;
            struct lc_error err = {0};
            lc_status rc;
            if (subst[k] == keep) {
                continue;
            }
            assert_int_equal(pwrite(fd, &subst[k], 1, (off_t)pos), 1);
            rc = lc_st_open(&f, dst, &err);
            assert_int_equal(pwrite(fd, &keep, 1, (off_t)pos), 1);
            if (rc == LC_OK) {
                for (size_t i = 0; i < lc_st_count(f); i++) {
                    const struct lc_tensor_view *t = lc_st_at(f, i);
                    volatile unsigned char sum = 0;
                    for (size_t b = 0; b < t->nbytes; b++) {
                        sum ^= ((const unsigned char *)t->data)[b];
                    }
                    (void)sum;
                }
                lc_st_close(f);
                n_ok++;
            } else {
                assert_null(f);
                assert_true(rc == LC_ERR_FORMAT || rc == LC_ERR_UNSUPPORTED);
                assert_true(err.msg[0] != '\0');
                n_err++;
            }
        }
    }
    /* most corruptions break the file; a few (inside strings, spaces) do not */
    assert_true(n_err > 0);
    assert_true(n_ok > 0);
    close(fd);
    free(buf);
}

/* ------------------------------------------------------------------ shards */

static void make_shard(const char *path, const char *const *names, size_t n, float base)
{
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    const int64_t shape[2] = {2, 3};
    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    for (size_t i = 0; i < n; i++) {
        float x[6];
        for (int k = 0; k < 6; k++) {
            x[k] = base + (float)(10 * i + (size_t)k);
        }
        assert_int_equal(lc_st_writer_add(w, names[i], LC_DTYPE_F32, 2, shape, x, &err), LC_OK);
    }
    assert_int_equal(lc_st_writer_write(w, path, &err), LC_OK);
    lc_st_writer_free(w);
}

static void test_sharded(void **state)
{
    static const char *const s1[] = {"a.weight", "b.weight"};
    static const char *const s2[] = {"c.weight"};
    const char *dir = lc_test_tmp_path("sharded");
    char p[1200];
    struct lc_st_set *s = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    lc_status rc;
    (void)state;

    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(p, sizeof(p), "%s/model-00001-of-00002.safetensors", dir);
    make_shard(p, s1, 2, 100.0f);
    snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
    make_shard(p, s2, 1, 200.0f);
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    lc_test_write_text(p, "{\"metadata\": {\"total_size\": 72}, \"weight_map\": {"
                          "\"c.weight\": \"model-00002-of-00002.safetensors\","
                          "\"a.weight\": \"model-00001-of-00002.safetensors\","
                          "\"b.weight\": \"model-00001-of-00002.safetensors\"}}");

    assert_int_equal(lc_st_set_open(&s, dir, &err), LC_OK);
    assert_int_equal(lc_st_set_count(s), 3);
    assert_string_equal(lc_st_set_at(s, 0)->name, "c.weight"); /* weight_map order */
    assert_string_equal(lc_st_set_at(s, 2)->name, "b.weight");
    t = lc_st_set_find(s, "b.weight");
    assert_non_null(t);
    assert_true(((const float *)t->data)[1] == 111.0f);
    t = lc_st_set_find(s, "c.weight");
    assert_true(((const float *)t->data)[5] == 205.0f);
    assert_null(lc_st_set_find(s, "d.weight"));
    lc_st_set_close(s);

    /* the index file itself may be given */
    s = NULL;
    assert_int_equal(lc_st_set_open(&s, p, &err), LC_OK);
    assert_int_equal(lc_st_set_count(s), 3);
    lc_st_set_close(s);

    /* a tensor the shard does not have */
    lc_test_write_text(p, "{\"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\","
                          "\"z.weight\": \"model-00002-of-00002.safetensors\"}}");
    s = NULL;
    rc = lc_st_set_open(&s, dir, &err);
    assert_null(s);
    lc_test_expect_error(
        rc, &err, LC_ERR_FORMAT,
        "weight_map puts tensor z.weight in model-00002-of-00002.safetensors, but that "
        "file has no such tensor");
    /* a missing shard */
    lc_test_write_text(p, "{\"weight_map\": {\"a.weight\": \"model-00001-of-00003.safetensors\"}}");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_IO,
                         "shard model-00001-of-00003.safetensors (of tensor a.weight) "
                         "not found");
    /* a shard elsewhere */
    lc_test_write_text(p,
                       "{\"weight_map\": {\"a.weight\": \"../model-00001-of-00002.safetensors\"}}");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "not a file name in the same folder");
    lc_test_write_text(p, "{\"weight_map\": {\"a.weight\": 3}}");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "not a file name in the same folder");
    lc_test_write_text(p, "{\"weight_map\": {}}");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "weight_map is empty");
    lc_test_write_text(p, "{\"metadata\": {}}");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "no \"weight_map\" object");
    lc_test_write_text(p, "{\"weight_map\": {\"a.weight\": ");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "model.safetensors.index.json: not valid JSON");
    lc_test_write_text(p, "");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "not valid JSON");
    /* a corrupt shard is reported with its own path */
    lc_test_write_text(p, "{\"weight_map\": {\"a.weight\": \"broken.safetensors\"}}");
    snprintf(p, sizeof(p), "%s/broken.safetensors", dir);
    lc_test_write_text(p, "xx");
    rc = lc_st_set_open(&s, dir, &err);
    lc_test_expect_error(rc, &err, LC_ERR_FORMAT, "broken.safetensors: 2 bytes, too short");
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_file),
        cmocka_unit_test(test_set_forms),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_matches_python),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_bad_length),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_misaligned_header),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_corrupt_bytes),
        cmocka_unit_test(test_sharded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
