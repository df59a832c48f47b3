/* GGUF reader: the real stories260K, llama-2-tiny-random and vocabulary
 * files, a synthetic file with every value type, and corrupt or hostile
 * files built byte by byte. */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gguf.h"
#include "core/half.h"
#include "core/tensorfile.h"
#include "tests/lc_test.h"

/* ------------------------------------------------------------------ helpers */

/* GGUF bytes, built piece by piece (little-endian) */
struct gb {
    unsigned char *b;
    size_t n;
    size_t cap;
};

static void gb_put(struct gb *g, const void *p, size_t n)
{
    if (g->n + n > g->cap) {
        g->cap = 2 * (g->n + n) + 64;
        g->b = realloc(g->b, g->cap);
        assert_non_null(g->b);
    }
    if (n > 0) {
        memcpy(g->b + g->n, p, n);
    }
    g->n += n;
}

static void gb_uint(struct gb *g, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    gb_put(g, b, (size_t)bytes);
}

static void gb_u32(struct gb *g, uint32_t v)
{
    gb_uint(g, v, 4);
}

static void gb_u64(struct gb *g, uint64_t v)
{
    gb_uint(g, v, 8);
}

static void gb_str(struct gb *g, const char *s)
{
    gb_u64(g, strlen(s));
    gb_put(g, s, strlen(s));
}

static void gb_header(struct gb *g, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_put(g, "GGUF", 4);
    gb_u32(g, version);
    gb_u64(g, n_tensors);
    gb_u64(g, n_kv);
}

static void gb_kv_u32(struct gb *g, const char *key, uint32_t v)
{
    gb_str(g, key);
    gb_u32(g, LC_GGUF_UINT32);
    gb_u32(g, v);
}

static void gb_kv_str(struct gb *g, const char *key, const char *v)
{
    gb_str(g, key);
    gb_u32(g, LC_GGUF_STRING);
    gb_str(g, v);
}

static void gb_tensor(struct gb *g, const char *name, uint32_t nd, const uint64_t *ne,
                      uint32_t type, uint64_t offset)
{
    gb_str(g, name);
    gb_u32(g, nd);
    for (uint32_t i = 0; i < nd; i++) {
        gb_u64(g, ne[i]);
    }
    gb_u32(g, type);
    gb_u64(g, offset);
}

static void gb_pad(struct gb *g, size_t align)
{
    static const unsigned char zero[64];
    while (g->n % align != 0) {
        gb_put(g, zero, 1);
    }
}

static const char *gb_write(struct gb *g, const char *name)
{
    const char *path = lc_test_tmp_path(name);
    lc_test_write_file(path, g->b, g->n);
    free(g->b);
    memset(g, 0, sizeof(*g));
    return path;
}

static void expect_open_fails(const char *path, lc_status code, const char *substr)
{
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    lc_status rc = lc_gguf_open(&g, path, &err);
    assert_null(g);
    lc_test_expect_error(rc, &err, code, substr);
    if (strstr(err.msg, path) == NULL) {
        print_error("message does not name the file %s: %s\n", path, err.msg);
        fail();
    }
}

static void expect_gb_fails(struct gb *g, lc_status code, const char *substr)
{
    expect_open_fails(gb_write(g, "bad.gguf"), code, substr);
}

/* llama2.c stories260K.bin: float offset of an array (see test_safetensors) */
static size_t bin_embed(void)
{
    return 0;
}

static size_t bin_wq(int layer)
{
    return 512 * 64 + 5 * 64 + (size_t)layer * 64 * 64;
}

/* ---------------------------------------------------------------- real data */

static void test_stories(void **state)
{
    const char *path = lc_test_data_file("models/stories260K/stories260K.gguf");
    const char *bin_path = lc_test_data_file("models/stories260K/stories260K.bin");
    const char *vocab_path = lc_test_data_file("models/stories260K/tok512.vocab");
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    const struct lc_tensor_view *t2 = NULL;
    const char *s = NULL;
    size_t len = 0;
    int64_t iv = 0;
    double fv = 0;
    enum lc_gguf_type et;
    uint64_t count = 0;
    unsigned char *bin = NULL;
    size_t bin_len = 0;
    FILE *fp = NULL;
    char line[256];
    uint64_t id = 0;
    (void)state;

    assert_int_equal(lc_gguf_open(&g, path, &err), LC_OK);
    assert_string_equal(lc_gguf_path(g), path);
    assert_int_equal(lc_gguf_version(g), 3);
    assert_int_equal(lc_gguf_tensor_count(g), 48);
    assert_true(lc_gguf_get_string(g, "general.architecture", &s, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    assert_true(lc_gguf_get_int(g, "llama.embedding_length", &iv));
    assert_int_equal(iv, 64);
    assert_true(lc_gguf_get_int(g, "llama.block_count", &iv));
    assert_int_equal(iv, 5);
    assert_true(lc_gguf_get_int(g, "llama.feed_forward_length", &iv));
    assert_int_equal(iv, 172);
    assert_true(lc_gguf_get_int(g, "llama.attention.head_count_kv", &iv));
    assert_int_equal(iv, 4);
    assert_true(lc_gguf_get_int(g, "llama.context_length", &iv));
    assert_int_equal(iv, 2048);
    assert_true(lc_gguf_get_int(g, "tokenizer.ggml.padding_token_id", &iv));
    assert_int_equal(iv, 4294967295LL);
    assert_true(lc_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &fv));
    assert_true(fv == (double)1e-5f);
    /* type mismatches and absent keys */
    assert_false(lc_gguf_get_int(g, "general.architecture", &iv));
    assert_false(lc_gguf_get_float(g, "llama.block_count", &fv));
    assert_false(lc_gguf_get_string(g, "llama.block_count", &s, &len));
    assert_false(lc_gguf_get_int(g, "general.alignment", &iv));
    assert_false(lc_gguf_get_array(g, "general.architecture", &et, &count));

    /* the vocabulary, against the SentencePiece listing tok512.vocab */
    assert_true(lc_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count));
    assert_int_equal(et, LC_GGUF_STRING);
    assert_int_equal(count, 512);
    assert_true(lc_gguf_get_array(g, "tokenizer.ggml.scores", &et, &count));
    assert_int_equal(et, LC_GGUF_FLOAT32);
    assert_true(lc_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &count));
    assert_int_equal(et, LC_GGUF_INT32);
    fp = fopen(vocab_path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *tab = strchr(line, '\t');
        double score = 0;
        assert_non_null(tab);
        *tab = '\0';
        assert_true(lc_gguf_array_string(g, "tokenizer.ggml.tokens", id, &s, &len));
        assert_int_equal(len, strlen(line));
        assert_memory_equal(s, line, len);
        assert_true(lc_gguf_array_float(g, "tokenizer.ggml.scores", id, &score));
        assert_true(score == strtod(tab + 1, NULL));
        id++;
    }
    fclose(fp);
    assert_int_equal(id, 512);
    assert_false(lc_gguf_array_string(g, "tokenizer.ggml.tokens", 512, &s, &len));
    assert_false(lc_gguf_array_float(g, "tokenizer.ggml.tokens", 0, &fv));
    assert_false(lc_gguf_array_int(g, "tokenizer.ggml.scores", 0, &iv));
    assert_true(lc_gguf_array_int(g, "tokenizer.ggml.token_type", 1, &iv));
    assert_int_equal(iv, 3); /* <s>: control */
    assert_true(lc_gguf_array_int(g, "tokenizer.ggml.token_type", 300, &iv));
    assert_int_equal(iv, 1); /* normal */

    /* tensors: shapes reversed from ne[], data as in stories260K.bin */
    t = lc_gguf_tensor_find(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, LC_DTYPE_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->nbytes, 512 * 64 * 4);
    bin = lc_test_read_file(bin_path, &bin_len);
    assert_memory_equal(t->data, (const float *)(bin + 28) + bin_embed(), t->nbytes);
    t2 = lc_gguf_tensor_find(g, "output.weight");
    assert_non_null(t2);
    assert_memory_equal(t2->data, t->data, t->nbytes);
    t = lc_gguf_tensor_find(g, "blk.3.attn_q.weight");
    assert_memory_equal(t->data, (const float *)(bin + 28) + bin_wq(3), t->nbytes);
    t = lc_gguf_tensor_find(g, "blk.0.attn_k.weight");
    assert_int_equal(t->shape[0], 32);
    assert_int_equal(t->shape[1], 64);
    t = lc_gguf_tensor_find(g, "blk.0.ffn_down.weight");
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->shape[1], 172);
    t = lc_gguf_tensor_find(g, "output_norm.weight");
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 64);
    for (size_t i = 0; i < lc_gguf_tensor_count(g); i++) {
        t = lc_gguf_tensor_at(g, i);
        assert_ptr_equal(lc_gguf_tensor_find(g, t->name), t);
        assert_int_equal(lc_gguf_tensor_get(g, t->name, &t2, &err), LC_OK);
        assert_ptr_equal(t2, t);
    }
    assert_null(lc_gguf_tensor_at(g, 48));
    assert_null(lc_gguf_tensor_find(g, "blk.5.attn_q.weight"));
    lc_test_expect_error(lc_gguf_tensor_get(g, "blk.5.attn_q.weight", &t2, &err), &err,
                         LC_ERR_FORMAT, "no tensor blk.5.attn_q.weight");
    assert_null(t2);
    free(bin);
    lc_gguf_close(g);
    lc_gguf_close(NULL);
}

static double std_dev(const struct lc_tensor_view *t, double *mean)
{
    const uint16_t *h = t->data;
    double s = 0;
    double s2 = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double x = lc_f16_to_f32(h[i]);
        assert_true(isfinite(x));
        s += x;
        s2 += x * x;
    }
    *mean = s / (double)t->numel;
    return sqrt(s2 / (double)t->numel - *mean * *mean);
}

static void test_tiny_random(void **state)
{
    const char *path = lc_test_data_file("models/llama-2-tiny-random/llama-2-tiny-random.gguf");
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    enum lc_gguf_type et;
    uint64_t count = 0;
    int64_t iv = 0;
    const char *s = NULL;
    size_t len = 0;
    double mean = 0;
    double sd = 0;
    (void)state;

    assert_int_equal(lc_gguf_open(&g, path, &err), LC_OK);
    assert_int_equal(lc_gguf_tensor_count(g), 12);
    assert_true(lc_gguf_get_int(g, "llama.embedding_length", &iv));
    assert_int_equal(iv, 8);
    assert_true(lc_gguf_get_int(g, "general.file_type", &iv));
    assert_int_equal(iv, 1);
    assert_true(lc_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count));
    assert_int_equal(count, 32000);
    assert_true(lc_gguf_array_string(g, "tokenizer.ggml.tokens", 31999, &s, &len));
    assert_true(len > 0);
    assert_true(lc_gguf_array_string(g, "tokenizer.ggml.tokens", 2, &s, &len));
    assert_int_equal(len, 4);
    assert_memory_equal(s, "</s>", 4);

    t = lc_gguf_tensor_find(g, "token_embd.weight");
    assert_int_equal(t->dtype, LC_DTYPE_F16);
    assert_int_equal(t->shape[0], 32000);
    assert_int_equal(t->shape[1], 8);
    assert_int_equal(t->nbytes, 32000 * 8 * 2);
    assert_int_equal((uintptr_t)t->data % 2, 0);
    /* random init with std 0.02; row 0 (padding) is zero */
    sd = std_dev(t, &mean);
    assert_true(sd > 0.015 && sd < 0.025);
    assert_true(fabs(mean) < 0.001);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(((const uint16_t *)t->data)[i] & 0x7fff, 0);
    }
    t = lc_gguf_tensor_find(g, "output.weight");
    assert_int_equal(t->dtype, LC_DTYPE_F16);
    assert_int_equal(t->shape[0], 32000);
    sd = std_dev(t, &mean);
    assert_true(sd > 0.015 && sd < 0.025);
    t = lc_gguf_tensor_find(g, "blk.0.ffn_down.weight");
    assert_int_equal(t->shape[0], 8);
    assert_int_equal(t->shape[1], 32);
    t = lc_gguf_tensor_find(g, "blk.0.attn_norm.weight");
    assert_int_equal(t->dtype, LC_DTYPE_F32);
    for (int i = 0; i < 8; i++) {
        assert_true(((const float *)t->data)[i] == 1.0f);
    }
    lc_gguf_close(g);
}

static void test_vocab_only(void **state)
{
    const char *path = lc_test_data_file("tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    int b = -1;
    const char *s = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(lc_gguf_open(&g, path, &err), LC_OK);
    assert_int_equal(lc_gguf_tensor_count(g), 0);
    assert_true(lc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b));
    assert_int_equal(b, 1);
    assert_true(lc_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b));
    assert_int_equal(b, 0);
    assert_false(lc_gguf_get_bool(g, "tokenizer.ggml.model", &b));
    assert_true(lc_gguf_get_string(g, "tokenizer.ggml.model", &s, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    lc_gguf_close(g);
}

/* ---------------------------------------------------------------- synthetic */

/* Every metadata value type, nested arrays, alignment 64, tensors of
 * F32, F16, BF16 and Q4_0 (listed, data refused). */
static const char *build_all_types(const char *name, uint32_t alignment)
{
    struct gb g = {0};
    const uint64_t ne_f32[2] = {4, 3}, ne_f16[1] = {5}, ne_bf16[3] = {2, 1, 2},
                   ne_q[2] = {32, 2};
    size_t data_at;
    float f32[12];

    gb_header(&g, 3, 4, 21);
    gb_kv_u32(&g, "general.alignment", alignment);
    gb_kv_str(&g, "general.architecture", "llama");
    gb_str(&g, "u8");
    gb_u32(&g, LC_GGUF_UINT8);
    gb_uint(&g, 200, 1);
    gb_str(&g, "i8");
    gb_u32(&g, LC_GGUF_INT8);
    gb_uint(&g, 0x80, 1); /* -128 */
    gb_str(&g, "u16");
    gb_u32(&g, LC_GGUF_UINT16);
    gb_uint(&g, 65535, 2);
    gb_str(&g, "i16");
    gb_u32(&g, LC_GGUF_INT16);
    gb_uint(&g, 0xfffe, 2); /* -2 */
    gb_str(&g, "i32");
    gb_u32(&g, LC_GGUF_INT32);
    gb_uint(&g, 0x80000000u, 4); /* INT32_MIN */
    gb_str(&g, "u64.big");
    gb_u32(&g, LC_GGUF_UINT64);
    gb_u64(&g, UINT64_MAX);
    gb_str(&g, "u64");
    gb_u32(&g, LC_GGUF_UINT64);
    gb_u64(&g, 1ull << 40);
    gb_str(&g, "i64");
    gb_u32(&g, LC_GGUF_INT64);
    gb_u64(&g, 1ull << 63); /* INT64_MIN */
    gb_str(&g, "f32");
    gb_u32(&g, LC_GGUF_FLOAT32);
    gb_uint(&g, 0x3fc00000u, 4); /* 1.5 */
    gb_str(&g, "f64");
    gb_u32(&g, LC_GGUF_FLOAT64);
    gb_u64(&g, 0xc004000000000000ull); /* -2.5 */
    gb_str(&g, "bool");
    gb_u32(&g, LC_GGUF_BOOL);
    gb_uint(&g, 1, 1);
    gb_kv_str(&g, "empty.string", "");
    gb_str(&g, "arr.i16");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_INT16);
    gb_u64(&g, 3);
    gb_uint(&g, 1, 2);
    gb_uint(&g, 0xffff, 2);
    gb_uint(&g, 300, 2);
    gb_str(&g, "arr.f64");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_FLOAT64);
    gb_u64(&g, 2);
    gb_u64(&g, 0x3ff0000000000000ull); /* 1.0 */
    gb_u64(&g, 0x4000000000000000ull); /* 2.0 */
    gb_str(&g, "arr.str");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, 3);
    gb_str(&g, "alpha");
    gb_str(&g, "");
    gb_str(&g, "gamma");
    gb_str(&g, "arr.empty");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_UINT32);
    gb_u64(&g, 0);
    /* [["a", "bc"], ["d"]] */
    gb_str(&g, "arr.nested");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u64(&g, 2);
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, 2);
    gb_str(&g, "a");
    gb_str(&g, "bc");
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, 1);
    gb_str(&g, "d");
    /* [[[1u8]]] */
    gb_str(&g, "arr.deep");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u64(&g, 1);
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u64(&g, 1);
    gb_u32(&g, LC_GGUF_UINT8);
    gb_u64(&g, 1);
    gb_uint(&g, 1, 1);
    gb_kv_str(&g, "zz.last", "end");

    /* data layout (offsets multiples of the alignment, at least 64) */
    gb_tensor(&g, "w.f32", 2, ne_f32, 0, 0);
    gb_tensor(&g, "w.f16", 1, ne_f16, 1, 64);
    gb_tensor(&g, "w.bf16", 3, ne_bf16, 30, 128);
    gb_tensor(&g, "w.q4", 2, ne_q, 2, 192);
    gb_pad(&g, alignment);
    data_at = g.n;
    for (int i = 0; i < 12; i++) {
        f32[i] = (float)i - 5.5f;
    }
    gb_put(&g, f32, sizeof(f32));
    while (g.n < data_at + 64) {
        gb_uint(&g, 0, 1);
    }
    for (int i = 0; i < 5; i++) {
        gb_uint(&g, lc_f32_to_f16((float)i * 0.25f), 2);
    }
    while (g.n < data_at + 128) {
        gb_uint(&g, 0, 1);
    }
    for (int i = 0; i < 4; i++) {
        gb_uint(&g, lc_f32_to_bf16((float)-i), 2);
    }
    while (g.n < data_at + 192) {
        gb_uint(&g, 0, 1);
    }
    for (int i = 0; i < 2 * 18; i++) {
        gb_uint(&g, (uint64_t)i, 1);
    }
    return gb_write(&g, name);
}

static void test_all_types(void **state)
{
    const char *path = build_all_types("all.gguf", 64);
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    int64_t iv = 0;
    double fv = 0;
    int b = 0;
    const char *s = NULL;
    size_t len = 0;
    enum lc_gguf_type et;
    uint64_t count = 0;
    lc_status rc;
    (void)state;

    assert_int_equal(lc_gguf_open(&g, path, &err), LC_OK);
    assert_true(lc_gguf_get_int(g, "general.alignment", &iv));
    assert_int_equal(iv, 64);
    assert_true(lc_gguf_get_int(g, "u8", &iv));
    assert_int_equal(iv, 200);
    assert_true(lc_gguf_get_int(g, "i8", &iv));
    assert_int_equal(iv, -128);
    assert_true(lc_gguf_get_int(g, "u16", &iv));
    assert_int_equal(iv, 65535);
    assert_true(lc_gguf_get_int(g, "i16", &iv));
    assert_int_equal(iv, -2);
    assert_true(lc_gguf_get_int(g, "i32", &iv));
    assert_true(iv == INT32_MIN);
    assert_false(lc_gguf_get_int(g, "u64.big", &iv)); /* does not fit */
    assert_true(lc_gguf_get_int(g, "u64", &iv));
    assert_true(iv == (int64_t)1 << 40);
    assert_true(lc_gguf_get_int(g, "i64", &iv));
    assert_true(iv == INT64_MIN);
    assert_false(lc_gguf_get_int(g, "f32", &iv));
    assert_false(lc_gguf_get_int(g, "bool", &iv));
    assert_true(lc_gguf_get_float(g, "f32", &fv));
    assert_true(fv == 1.5);
    assert_true(lc_gguf_get_float(g, "f64", &fv));
    assert_true(fv == -2.5);
    assert_false(lc_gguf_get_float(g, "u8", &fv));
    assert_true(lc_gguf_get_bool(g, "bool", &b));
    assert_int_equal(b, 1);
    assert_true(lc_gguf_get_string(g, "empty.string", &s, &len));
    assert_int_equal(len, 0);
    assert_true(lc_gguf_get_string(g, "zz.last", &s, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(s, "end", 3);

    assert_true(lc_gguf_get_array(g, "arr.i16", &et, &count));
    assert_int_equal(et, LC_GGUF_INT16);
    assert_int_equal(count, 3);
    assert_true(lc_gguf_array_int(g, "arr.i16", 1, &iv));
    assert_int_equal(iv, -1);
    assert_true(lc_gguf_array_int(g, "arr.i16", 2, &iv));
    assert_int_equal(iv, 300);
    assert_false(lc_gguf_array_int(g, "arr.i16", 3, &iv));
    assert_false(lc_gguf_array_float(g, "arr.i16", 0, &fv));
    assert_true(lc_gguf_array_float(g, "arr.f64", 1, &fv));
    assert_true(fv == 2.0);
    assert_true(lc_gguf_array_string(g, "arr.str", 2, &s, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(s, "gamma", 5);
    assert_true(lc_gguf_array_string(g, "arr.str", 1, &s, &len));
    assert_int_equal(len, 0);
    assert_true(lc_gguf_get_array(g, "arr.empty", &et, &count));
    assert_int_equal(count, 0);
    assert_false(lc_gguf_array_int(g, "arr.empty", 0, &iv));
    assert_true(lc_gguf_get_array(g, "arr.nested", &et, &count));
    assert_int_equal(et, LC_GGUF_ARRAY);
    assert_int_equal(count, 2);
    assert_false(lc_gguf_array_string(g, "arr.nested", 0, &s, &len));
    assert_true(lc_gguf_get_array(g, "arr.deep", &et, &count));
    assert_int_equal(count, 1);
    assert_false(lc_gguf_get_array(g, "nope", &et, &count));

    assert_int_equal(lc_gguf_tensor_count(g), 4);
    t = lc_gguf_tensor_find(g, "w.f32");
    assert_int_equal(t->dtype, LC_DTYPE_F32);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 4);
    assert_true(((const float *)t->data)[11] == 5.5f);
    t = lc_gguf_tensor_find(g, "w.f16");
    assert_int_equal(t->dtype, LC_DTYPE_F16);
    assert_true(lc_f16_to_f32(((const uint16_t *)t->data)[4]) == 1.0f);
    t = lc_gguf_tensor_find(g, "w.bf16");
    assert_int_equal(t->dtype, LC_DTYPE_BF16);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[2], 2);
    assert_true(lc_bf16_to_f32(((const uint16_t *)t->data)[3]) == -3.0f);
    /* a quantized tensor is listed but its data is refused, naming the type */
    t = lc_gguf_tensor_find(g, "w.q4");
    assert_non_null(t);
    assert_null(t->data);
    assert_int_equal(t->dtype, LC_DTYPE_COUNT);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 32);
    assert_int_equal(t->numel, 64);
    assert_int_equal(t->nbytes, 36);
    rc = lc_gguf_tensor_get(g, "w.q4", &t, &err);
    lc_test_expect_error(rc, &err, LC_ERR_UNSUPPORTED, "tensor w.q4 has ggml type Q4_0");
    assert_null(t);
    lc_gguf_close(g);
}

/* alignment 1: tensors at odd offsets get aligned copies */
static void test_alignment_one(void **state)
{
    struct gb b = {0};
    const uint64_t ne[1] = {2};
    const float x[2] = {1.25f, -7.0f};
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    (void)state;

    gb_header(&b, 2, 2, 1);
    gb_kv_u32(&b, "general.alignment", 1);
    gb_tensor(&b, "a", 1, ne, 0, 0);
    gb_tensor(&b, "b", 1, ne, 0, 8);
    /* the data starts right after the infos, at an odd offset */
    assert_int_equal(b.n % 2, 1);
    gb_put(&b, x, 8);
    gb_put(&b, x, 8);
    assert_int_equal(lc_gguf_open(&g, gb_write(&b, "align1.gguf"), &err), LC_OK);
    assert_int_equal(lc_gguf_version(g), 2);
    t = lc_gguf_tensor_find(g, "a");
    assert_int_equal((uintptr_t)t->data % 4, 0);
    assert_memory_equal(t->data, x, 8);
    t = lc_gguf_tensor_find(g, "b");
    assert_int_equal((uintptr_t)t->data % 4, 0);
    assert_memory_equal(t->data, x, 8);
    lc_gguf_close(g);
}

/* ----------------------------------------------------------------- bad input */

static void test_bad_header(void **state)
{
    struct gb g = {0};
    (void)state;

    lc_test_write_file(lc_test_tmp_path("empty.gguf"), "", 0);
    expect_open_fails(lc_test_tmp_path("empty.gguf"), LC_ERR_FORMAT, "empty file");
    lc_test_write_file(lc_test_tmp_path("magic.gguf"), "GGML\3\0\0\0", 8);
    expect_open_fails(lc_test_tmp_path("magic.gguf"), LC_ERR_FORMAT,
                      "not a GGUF file (starts with 47 47 4d 4c");
    lc_test_write_file(lc_test_tmp_path("short.gguf"), "GG", 2);
    expect_open_fails(lc_test_tmp_path("short.gguf"), LC_ERR_FORMAT, "not a GGUF file");
    expect_open_fails(lc_test_tmp_path("absent.gguf"), LC_ERR_IO, "cannot open");
    expect_open_fails(lc_test_tmpdir(), LC_ERR_IO, "not a regular file");

    gb_put(&g, "GGUF", 4);
    gb_u32(&g, 1);
    gb_u32(&g, 0);
    gb_u32(&g, 0);
    expect_gb_fails(&g, LC_ERR_UNSUPPORTED, "GGUF version 1 is not supported");
    gb_header(&g, 4, 0, 0);
    expect_gb_fails(&g, LC_ERR_UNSUPPORTED, "GGUF version 4 is not supported");
    gb_put(&g, "GGUF\0\0\0\3", 8);
    gb_put(&g, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect_gb_fails(&g, LC_ERR_UNSUPPORTED, "big-endian");
    gb_put(&g, "GGUF\3\0\0\0\0\0", 10);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in the GGUF header");
    gb_put(&g, "GGUF\3\0", 6);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in the GGUF header");
    gb_header(&g, 3, 0, 1ull << 60);
    expect_gb_fails(&g, LC_ERR_FORMAT, "1152921504606846976 metadata pairs cannot fit");
    gb_header(&g, 3, UINT64_MAX, 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor infos cannot fit");

    /* a valid empty file */
    {
        struct lc_gguf *f = NULL;
        struct lc_error err = {0};
        gb_header(&g, 3, 0, 0);
        assert_int_equal(lc_gguf_open(&f, gb_write(&g, "nothing.gguf"), &err), LC_OK);
        assert_int_equal(lc_gguf_tensor_count(f), 0);
        lc_gguf_close(f);
    }
}

static void test_bad_metadata(void **state)
{
    struct gb g = {0};
    (void)state;

    /* cut inside the second pair */
    gb_header(&g, 3, 0, 2);
    gb_kv_u32(&g, "a", 1);
    gb_str(&g, "b");
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in the type of metadata key b");
    gb_header(&g, 3, 0, 2);
    gb_kv_u32(&g, "aaaaaaaaaaaaaaaaaaaa", 1);
    gb_put(&g, "\x05\0\0", 3);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in metadata key 1 of 2");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "k");
    gb_u32(&g, LC_GGUF_UINT64);
    gb_u32(&g, 7);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in the value of metadata key k");
    /* string lengths past the end */
    gb_header(&g, 3, 0, 1);
    gb_u64(&g, 1000);
    gb_put(&g, "key", 3);
    gb_put(&g, "\0\0\0\0\0\0\0\0\0\0", 10);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key 0: string length 1000 runs past the end");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "name");
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, 1ull << 62);
    gb_put(&g, "abc", 3);
    expect_gb_fails(&g, LC_ERR_FORMAT,
                    "metadata key name: string length 4611686018427387904 runs past the end");
    /* absurd array counts are refused before any allocation */
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "arr");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_UINT32);
    gb_u64(&g, 1ull << 61);
    gb_put(&g, "\0\0\0\0\0\0\0\0", 8);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key arr: array of 2305843009213693952 elements");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "tokens");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, UINT64_MAX);
    gb_str(&g, "x");
    expect_gb_fails(&g, LC_ERR_FORMAT, "array of 18446744073709551615 elements");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "tokens");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_STRING);
    gb_u64(&g, 2);
    gb_str(&g, "x");
    gb_u64(&g, 99);
    gb_put(&g, "y", 1);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key tokens: string 1 of the array runs past");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "nest");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u64(&g, 1ull << 40);
    gb_put(&g, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
    expect_gb_fails(&g, LC_ERR_FORMAT, "array of 1099511627776 elements runs past");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "deep");
    gb_u32(&g, LC_GGUF_ARRAY);
    for (int i = 0; i < 12; i++) {
        gb_u32(&g, LC_GGUF_ARRAY);
        gb_u64(&g, 1);
    }
    gb_u32(&g, LC_GGUF_UINT8);
    gb_u64(&g, 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key deep: arrays nested more than 8 deep");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "odd");
    gb_u32(&g, 13);
    gb_u64(&g, 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key odd has unknown value type 13");
    gb_header(&g, 3, 0, 1);
    gb_str(&g, "odd");
    gb_u32(&g, LC_GGUF_ARRAY);
    gb_u32(&g, 77);
    gb_u64(&g, 1);
    gb_u64(&g, 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key odd is an array of unknown value type 77");
    gb_header(&g, 3, 0, 2);
    gb_kv_u32(&g, "twice", 1);
    gb_kv_u32(&g, "twice", 2);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key twice appears twice");
    gb_header(&g, 3, 0, 1);
    gb_u64(&g, 3);
    gb_put(&g, "a\0b", 3);
    gb_u32(&g, LC_GGUF_UINT8);
    gb_put(&g, "\0", 1);
    expect_gb_fails(&g, LC_ERR_FORMAT, "metadata key 0 contains a NUL byte");
    gb_header(&g, 3, 0, 1);
    gb_kv_u32(&g, "general.alignment", 48);
    expect_gb_fails(&g, LC_ERR_FORMAT, "general.alignment 48 is not a power of two");
    gb_header(&g, 3, 0, 1);
    gb_kv_u32(&g, "general.alignment", 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "general.alignment 0 is not a power of two");
    gb_header(&g, 3, 0, 1);
    gb_kv_str(&g, "general.alignment", "32");
    expect_gb_fails(&g, LC_ERR_FORMAT, "general.alignment is not an integer");
}

static void test_bad_tensors(void **state)
{
    struct gb g = {0};
    const uint64_t ne[2] = {4, 2}, ne9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const uint64_t ne_big[2] = {1ull << 32, 1ull << 32}, ne_q[1] = {33};
    const uint64_t ne_neg[1] = {1ull << 63};
    static const unsigned char zeros[128];
    (void)state;

    gb_header(&g, 3, 2, 0);
    gb_tensor(&g, "a", 2, ne, 0, 0);
    gb_str(&g, "b");
    gb_u32(&g, 2);
    gb_u64(&g, 4);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in tensor info b");
    gb_header(&g, 3, 2, 0);
    gb_tensor(&g, "aaaaaaaaaaaaaaaaaaaaaaaaa", 2, ne, 0, 0);
    gb_put(&g, "\x01\0\0\0\0\0\0", 7);
    expect_gb_fails(&g, LC_ERR_FORMAT, "truncated in tensor info 1 of 2");
    gb_header(&g, 3, 1, 0);
    gb_u64(&g, 500);
    gb_put(&g, "name", 4);
    gb_put(&g, zeros, 30);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor info 0: name length 500 runs past");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "", 2, ne, 0, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "name is empty or contains a NUL");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "nine", 9, ne9, 0, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor nine has 9 dimensions");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "big", 2, ne_big, 0, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor big: shape is too large");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "neg", 1, ne_neg, 0, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor neg: shape is too large");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "t", 2, ne, 99, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor t has unknown ggml type 99");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "t", 2, ne, 4, 0); /* Q4_2, removed from ggml */
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "unknown ggml type 4");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "q", 1, ne_q, 8, 0);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "row length 33 is not a multiple of the Q8_0 block size 32");
    /* data past the end */
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "a", 2, ne, 0, 0);
    gb_pad(&g, 32);
    gb_put(&g, zeros, 31);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor a: data (32 bytes at offset 0 from");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "a", 2, ne, 0, UINT64_MAX - 31);
    gb_pad(&g, 32);
    gb_put(&g, zeros, 32);
    expect_gb_fails(&g, LC_ERR_FORMAT, "runs past the end of the file");
    /* the data start (after padding) beyond the end */
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "a", 2, ne, 0, 0);
    expect_gb_fails(&g, LC_ERR_FORMAT, "runs past the end of the file");
    gb_header(&g, 3, 1, 0);
    gb_tensor(&g, "a", 2, ne, 0, 4);
    gb_pad(&g, 32);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor a: offset 4 is not a multiple of the alignment 32");
    gb_header(&g, 3, 2, 0);
    gb_tensor(&g, "a", 2, ne, 0, 0);
    gb_tensor(&g, "b", 2, ne, 0, 0);
    gb_pad(&g, 32);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor b overlaps tensor a");
    gb_header(&g, 3, 2, 0);
    gb_tensor(&g, "a", 2, ne, 0, 0);
    gb_tensor(&g, "a", 2, ne, 0, 32);
    gb_pad(&g, 32);
    gb_put(&g, zeros, 64);
    expect_gb_fails(&g, LC_ERR_FORMAT, "tensor a appears twice");
}

/* Every prefix of a valid file is an error (the last tensor ends at the
 * end of the file), never a crash. */
static void check_prefixes(const char *src, size_t step_after, size_t dense_until)
{
    const char *dst = lc_test_tmp_path("cut.gguf");
    unsigned char *buf = NULL;
    size_t len = 0;
    size_t n_tried = 0;
    FILE *fp = NULL;

    buf = lc_test_read_file(src, &len);
    fp = fopen(dst, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fflush(fp), 0);
    /* shrink the one file from the end: cheaper than rewriting it */
    for (size_t cut = len; cut-- > 0;) {
        struct lc_gguf *g = NULL;
        struct lc_error err = {0};
        lc_status rc;
        if (cut > dense_until && (len - cut) % step_after != 1) {
            continue;
        }
        assert_int_equal(ftruncate(fileno(fp), (off_t)cut), 0);
        rc = lc_gguf_open(&g, dst, &err);
        if (rc == LC_OK || g != NULL) {
            print_error("%s: prefix of %zu of %zu bytes was accepted\n", src, cut, len);
            fail();
        }
        assert_true(rc == LC_ERR_FORMAT);
        n_tried++;
    }
    fclose(fp);
    assert_true(n_tried > 0);
    free(buf);
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    check_prefixes(build_all_types("whole.gguf", 32), 1, SIZE_MAX);
}

static void test_truncated_stories(void **state)
{
    (void)state;
    /* every byte of the header (14176 bytes), a sample of the data */
    check_prefixes(lc_test_data_file("models/stories260K/stories260K.gguf"), 4099, 14300);
}

/* Single-byte corruptions of the synthetic file: an error or a valid
 * file, never a crash or a read outside the mapping. */
static void test_corrupt_bytes(void **state)
{
    const char *src = build_all_types("whole2.gguf", 32);
    const char *dst = lc_test_tmp_path("flip.gguf");
    static const unsigned char subst[] = {0x00, 0xff, 0x01, 0x08, 0x09, 0x80, 0x7f};
    unsigned char *buf = NULL;
    size_t len = 0;
    int n_ok = 0;
    int n_err = 0;
    int fd = -1;
    (void)state;

    buf = lc_test_read_file(src, &len);
    lc_test_write_file(dst, buf, len);
    /* patch one byte at a time in place: rewriting the file is slow */
    fd = open(dst, O_WRONLY);
    assert_true(fd >= 0);
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            unsigned char keep = buf[pos];
            struct lc_gguf *g = NULL;
            struct lc_error err = {0};
            lc_status rc;
            if (subst[k] == keep) {
                continue;
            }
            assert_int_equal(pwrite(fd, &subst[k], 1, (off_t)pos), 1);
            rc = lc_gguf_open(&g, dst, &err);
            assert_int_equal(pwrite(fd, &keep, 1, (off_t)pos), 1);
            if (rc == LC_OK) {
                enum lc_gguf_type et;
                uint64_t count = 0;
                const char *s = NULL;
                size_t sl = 0;
                for (size_t i = 0; i < lc_gguf_tensor_count(g); i++) {
                    const struct lc_tensor_view *t = lc_gguf_tensor_at(g, i);
                    volatile unsigned char sum = 0;
                    for (size_t b = 0; t->data != NULL && b < t->nbytes; b++) {
                        sum ^= ((const unsigned char *)t->data)[b];
                    }
                    (void)sum;
                }
                if (lc_gguf_get_array(g, "arr.str", &et, &count)) {
                    for (uint64_t i = 0; i < count; i++) {
                        if (lc_gguf_array_string(g, "arr.str", i, &s, &sl) && sl > 0) {
                            volatile char c = s[sl - 1];
                            (void)c;
                        }
                    }
                }
                lc_gguf_close(g);
                n_ok++;
            } else {
                assert_null(g);
                assert_true(rc == LC_ERR_FORMAT || rc == LC_ERR_UNSUPPORTED);
                assert_true(err.msg[0] != '\0');
                n_err++;
            }
        }
    }
    assert_true(n_err > 0);
    assert_true(n_ok > 0);
    close(fd);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories),
        cmocka_unit_test(test_tiny_random),
        cmocka_unit_test(test_vocab_only),
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_alignment_one),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_truncated_stories),
        cmocka_unit_test(test_corrupt_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
