/* Model configuration (config.json, GGUF metadata) and model files: the
 * real stories260K in both formats (the GGUF, un-permuted, must equal the
 * Hugging Face copy bit for bit), llama-2-tiny-random, and broken
 * checkpoints. */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gguf.h"
#include "core/modelconfig.h"
#include "core/modelfiles.h"
#include "core/safetensors.h"
#include "tests/lc_test.h"

/* ------------------------------------------------------------------ helpers */

/* parses config text written to a temporary config.json */
static lc_status parse_config(const char *text, struct lc_model_config *cfg,
                              struct lc_error *err)
{
    const char *path = lc_test_tmp_path("config.json");
    lc_test_write_text(path, text);
    memset(cfg, 0x5a, sizeof(*cfg));
    return lc_config_from_hf_json(cfg, path, err);
}

static void expect_config_fails(const char *text, lc_status code, const char *substr)
{
    struct lc_model_config cfg;
    struct lc_error err = {0};
    lc_status rc = parse_config(text, &cfg, &err);
    lc_test_expect_error(rc, &err, code, substr);
    if (strstr(err.msg, "config.json") == NULL) {
        print_error("message does not name the file: %s\n", err.msg);
        fail();
    }
}

/* ------------------------------------------------------------- config.json */

static void test_hf_config_stories(void **state)
{
    const char *path = lc_test_data_file("models/stories260K-hf/config.json");
    struct lc_model_config c;
    struct lc_error err = {0};
    (void)state;

    assert_int_equal(lc_config_from_hf_json(&c, path, &err), LC_OK);
    assert_string_equal(c.arch, "llama");
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 172);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.max_position_embeddings, 512);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.rope_type, LC_ROPE_DEFAULT);
    assert_int_equal(c.tie_word_embeddings, 1);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2);
}

#define BASE "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, " \
             "\"num_attention_heads\": 4, \"vocab_size\": 100"

static void test_hf_config_variants(void **state)
{
    struct lc_model_config c;
    struct lc_error err = {0};
    (void)state;

    /* defaults */
    assert_int_equal(parse_config("{\"model_type\": \"llama\", " BASE "}", &c, &err), LC_OK);
    assert_string_equal(c.arch, "llama");
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.n_kv_heads, 4);
    assert_true(c.rope_theta == 10000.0);
    assert_true(c.rms_norm_eps == 1e-6f);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_int_equal(c.tie_word_embeddings, 0);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.eos_token_id, -1);
    assert_int_equal(c.rope_type, LC_ROPE_DEFAULT);

    /* Mistral, known by its architecture name only */
    assert_int_equal(parse_config("{\"architectures\": [\"MistralForCausalLM\"], " BASE
                                  ", \"num_key_value_heads\": 2, \"sliding_window\": 4096, "
                                  "\"rope_theta\": 1000000.0, \"head_dim\": null, "
                                  "\"hidden_act\": \"silu\", \"attention_bias\": false}",
                                  &c, &err),
                     LC_OK);
    assert_string_equal(c.arch, "mistral");
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_true(c.rope_theta == 1e6);
    assert_int_equal(c.max_position_embeddings, 131072);

    /* Llama 3.1: llama3 RoPE scaling, a list of end tokens, explicit head_dim */
    assert_int_equal(parse_config("{\"model_type\": \"llama\", " BASE
                                  ", \"head_dim\": 24, \"rope_scaling\": {\"factor\": 8.0, "
                                  "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                  "\"original_max_position_embeddings\": 8192, \"rope_type\": "
                                  "\"llama3\"}, \"bos_token_id\": null, \"eos_token_id\": "
                                  "[128001, 128008, 128009], \"tie_word_embeddings\": true, "
                                  "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000}",
                                  &c, &err),
                     LC_OK);
    assert_int_equal(c.head_dim, 24);
    assert_int_equal(c.rope_type, LC_ROPE_LLAMA3);
    assert_true(c.rope_factor == 8.0);
    assert_true(c.rope_low_freq_factor == 1.0);
    assert_true(c.rope_high_freq_factor == 4.0);
    assert_int_equal(c.rope_original_max_pos, 8192);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.eos_token_id, 128001);
    assert_int_equal(c.tie_word_embeddings, 1);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.rope_theta == 500000.0);
    /* the legacy spelling "type", and "default" */
    assert_int_equal(parse_config("{\"model_type\": \"llama\", " BASE
                                  ", \"rope_scaling\": {\"type\": \"llama3\", \"factor\": 32, "
                                  "\"low_freq_factor\": 1, \"high_freq_factor\": 4, "
                                  "\"original_max_position_embeddings\": 8192}, "
                                  "\"eos_token_id\": [], \"bos_token_id\": 7}",
                                  &c, &err),
                     LC_OK);
    assert_int_equal(c.rope_type, LC_ROPE_LLAMA3);
    assert_true(c.rope_factor == 32.0);
    assert_int_equal(c.eos_token_id, -1);
    assert_int_equal(c.bos_token_id, 7);
    assert_int_equal(parse_config("{\"model_type\": \"llama\", " BASE
                                  ", \"rope_scaling\": {\"rope_type\": \"default\"}}",
                                  &c, &err),
                     LC_OK);
    assert_int_equal(c.rope_type, LC_ROPE_DEFAULT);
}

static void test_hf_config_bad(void **state)
{
    struct lc_model_config c;
    struct lc_error err = {0};
    lc_status rc;
    (void)state;

    expect_config_fails("{\"model_type\": \"llama\", " BASE
                        ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}",
                        LC_ERR_UNSUPPORTED, "rope_scaling type \"yarn\" is not supported");
    expect_config_fails("{\"model_type\": \"llama\", " BASE
                        ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}",
                        LC_ERR_UNSUPPORTED, "\"linear\"");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"factor\": 2}}",
                        LC_ERR_FORMAT, "no \"rope_type\"");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": 3}",
                        LC_ERR_FORMAT, "\"rope_scaling\" is not an object");
    expect_config_fails("{\"model_type\": \"llama\", " BASE
                        ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"low_freq_factor\": 1, "
                        "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}}",
                        LC_ERR_FORMAT, "rope_scaling (llama3) has no number \"factor\"");
    expect_config_fails("{\"model_type\": \"llama\", " BASE
                        ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, "
                        "\"low_freq_factor\": 4, \"high_freq_factor\": 1, "
                        "\"original_max_position_embeddings\": 8192}}",
                        LC_ERR_FORMAT, "low_freq_factor < high_freq_factor");
    expect_config_fails("{\"model_type\": \"qwen2\", " BASE "}", LC_ERR_UNSUPPORTED,
                        "model_type \"qwen2\" is not supported");
    expect_config_fails("{\"architectures\": [\"GPT2LMHeadModel\"], " BASE "}",
                        LC_ERR_UNSUPPORTED, "architecture \"GPT2LMHeadModel\"");
    expect_config_fails("{" BASE "}", LC_ERR_FORMAT, "neither \"model_type\" nor");
    expect_config_fails("{\"model_type\": \"llama\", \"intermediate_size\": 128, "
                        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                        "\"vocab_size\": 100}",
                        LC_ERR_FORMAT, "missing required key \"hidden_size\"");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": "
                        "128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
                        LC_ERR_FORMAT, "missing required key \"vocab_size\"");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ",}", LC_ERR_FORMAT,
                        "not valid JSON");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": \"64\", "
                        "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 100}",
                        LC_ERR_FORMAT, "\"hidden_size\" is not an integer");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": 64.5, "
                        "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 100}",
                        LC_ERR_FORMAT, "\"hidden_size\" is not an integer");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": 64, "
                        "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"vocab_size\": -3}",
                        LC_ERR_FORMAT, "\"vocab_size\" is -3, out of range");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": 64, "
                        "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 1e30}",
                        LC_ERR_FORMAT, "out of range");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}",
                        LC_ERR_FORMAT, "4 attention heads, not a multiple of its 3 key/value");
    expect_config_fails("{\"model_type\": \"llama\", \"hidden_size\": 66, \"intermediate_size\": "
                        "128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                        "\"vocab_size\": 100}",
                        LC_ERR_FORMAT, "hidden_size 66 is not a multiple of num_attention_heads");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"head_dim\": 7}", LC_ERR_FORMAT,
                        "head dimension 7");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"attention_bias\": true}",
                        LC_ERR_UNSUPPORTED, "attention_bias true is not supported");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"mlp_bias\": true}",
                        LC_ERR_UNSUPPORTED, "mlp_bias true");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"hidden_act\": \"gelu\"}",
                        LC_ERR_UNSUPPORTED, "hidden_act gelu is not supported");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"eos_token_id\": \"two\"}",
                        LC_ERR_FORMAT, "\"eos_token_id\" is not a token id");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"bos_token_id\": [-1]}",
                        LC_ERR_FORMAT, "\"bos_token_id\" is not a token id");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"tie_word_embeddings\": 1}",
                        LC_ERR_FORMAT, "\"tie_word_embeddings\" is not true or false");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": 0}",
                        LC_ERR_FORMAT, "epsilon");
    expect_config_fails("{\"model_type\": \"llama\", " BASE ", \"rope_theta\": \"big\"}",
                        LC_ERR_FORMAT, "\"rope_theta\" is not a number");
    expect_config_fails("{\"model_type\": 3, " BASE "}", LC_ERR_FORMAT,
                        "\"model_type\" is not a string");
    expect_config_fails("[1, 2]", LC_ERR_FORMAT, "not a JSON object");
    expect_config_fails("", LC_ERR_FORMAT, "not valid JSON");
    expect_config_fails("{\"model_type\": \"llama\", \"model_type\": \"llama\", " BASE "}",
                        LC_ERR_FORMAT, "duplicate");

    rc = lc_config_from_hf_json(&c, lc_test_tmp_path("nothing/config.json"), &err);
    lc_test_expect_error(rc, &err, LC_ERR_IO, "nothing/config.json: cannot open");
}

/* -------------------------------------------------------------- GGUF config */

static void test_gguf_config(void **state)
{
    const char *p1 = lc_test_data_file("models/stories260K/stories260K.gguf");
    const char *p2 = lc_test_data_file("models/llama-2-tiny-random/llama-2-tiny-random.gguf");
    struct lc_gguf *g = NULL;
    struct lc_model_config c;
    struct lc_error err = {0};
    (void)state;

    assert_int_equal(lc_gguf_open(&g, p1, &err), LC_OK);
    assert_int_equal(lc_config_from_gguf(&c, g, &err), LC_OK);
    assert_string_equal(c.arch, "llama");
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 172);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.rope_type, LC_ROPE_DEFAULT);
    assert_int_equal(c.tie_word_embeddings, 0); /* output.weight exists */
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2);
    lc_gguf_close(g);

    assert_int_equal(lc_gguf_open(&g, p2, &err), LC_OK);
    assert_int_equal(lc_config_from_gguf(&c, g, &err), LC_OK);
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.hidden_size, 8);
    assert_int_equal(c.intermediate_size, 32);
    assert_int_equal(c.n_layers, 1);
    assert_int_equal(c.n_heads, 2);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 4);
    assert_int_equal(c.max_position_embeddings, 4096);
    assert_int_equal(c.tie_word_embeddings, 0);
    lc_gguf_close(g);
}

/* ------------------------------------------------------------- model files */

static void test_open_stories_hf(void **state)
{
    const char *dir = lc_test_data_file("models/stories260K-hf");
    const char *file = lc_test_data_file("models/stories260K-hf/model.safetensors");
    struct lc_model_files *mf = NULL;
    struct lc_model_files *mf2 = NULL;
    struct lc_error err = {0};
    const struct lc_model_config *c = NULL;
    const struct lc_tensor_view *t = NULL;
    (void)state;

    assert_int_equal(lc_model_files_open(&mf, dir, &err), LC_OK);
    assert_string_equal(lc_model_files_format(mf), "safetensors");
    assert_string_equal(lc_model_files_path(mf), dir);
    c = lc_model_files_config(mf);
    assert_int_equal(c->hidden_size, 64);
    assert_int_equal(c->tie_word_embeddings, 1);
    assert_null(lc_model_files_tensor(mf, "lm_head.weight"));
    assert_null(lc_model_files_tensor(mf, "nope"));
    t = lc_model_files_tensor(mf, "model.layers.4.mlp.down_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->shape[1], 172);

    /* the weights file itself, config.json beside it */
    assert_int_equal(lc_model_files_open(&mf2, file, &err), LC_OK);
    assert_int_equal(lc_model_files_config(mf2)->n_layers, 5);
    assert_memory_equal(lc_model_files_tensor(mf2, "model.norm.weight")->data,
                        lc_model_files_tensor(mf, "model.norm.weight")->data, 64 * 4);
    lc_model_files_close(mf2);
    lc_model_files_close(mf);
    lc_model_files_close(NULL);
}

/* The acceptance test of the q/k un-permutation: every tensor of the GGUF
 * equals its Hugging Face counterpart bit for bit. */
static void test_gguf_equals_hf(void **state)
{
    const char *hf_dir = lc_test_data_file("models/stories260K-hf");
    const char *hf_file = lc_test_data_file("models/stories260K-hf/model.safetensors");
    const char *gguf = lc_test_data_file("models/stories260K/stories260K.gguf");
    struct lc_model_files *a = NULL;
    struct lc_model_files *b = NULL;
    struct lc_st_file *st = NULL;
    struct lc_gguf *raw = NULL;
    struct lc_error err = {0};
    const struct lc_model_config *ca = NULL;
    const struct lc_model_config *cb = NULL;
    const struct lc_tensor_view *ta = NULL;
    const struct lc_tensor_view *tb = NULL;
    (void)state;

    assert_int_equal(lc_model_files_open(&a, hf_dir, &err), LC_OK);
    assert_int_equal(lc_model_files_open(&b, gguf, &err), LC_OK);
    assert_string_equal(lc_model_files_format(b), "gguf");
    ca = lc_model_files_config(a);
    cb = lc_model_files_config(b);
    assert_int_equal(ca->vocab_size, cb->vocab_size);
    assert_int_equal(ca->n_layers, cb->n_layers);
    assert_int_equal(ca->n_kv_heads, cb->n_kv_heads);
    assert_int_equal(ca->head_dim, cb->head_dim);
    assert_true(ca->rms_norm_eps == cb->rms_norm_eps);

    assert_int_equal(lc_st_open(&st, hf_file, &err), LC_OK);
    assert_int_equal(lc_st_count(st), 47);
    for (size_t i = 0; i < lc_st_count(st); i++) {
        const char *name = lc_st_at(st, i)->name;
        ta = lc_model_files_tensor(a, name);
        tb = lc_model_files_tensor(b, name);
        assert_non_null(ta);
        if (tb == NULL) {
            print_error("GGUF model has no %s\n", name);
            fail();
        }
        assert_string_equal(tb->name, name);
        assert_int_equal(ta->dtype, tb->dtype);
        assert_int_equal(ta->ndim, tb->ndim);
        assert_memory_equal(ta->shape, tb->shape, sizeof(ta->shape[0]) * (size_t)ta->ndim);
        assert_int_equal(ta->nbytes, tb->nbytes);
        if (memcmp(ta->data, tb->data, ta->nbytes) != 0) {
            print_error("%s differs between the GGUF and the Hugging Face copy\n", name);
            fail();
        }
    }
    /* the GGUF has its own classifier (equal to the embedding) */
    tb = lc_model_files_tensor(b, "lm_head.weight");
    assert_non_null(tb);
    assert_int_equal(cb->tie_word_embeddings, 0);
    assert_memory_equal(tb->data, lc_model_files_tensor(a, "model.embed_tokens.weight")->data,
                        tb->nbytes);

    /* control: the file's own q/k rows are in the other order, so the
     * equality above is the permutation's doing */
    assert_int_equal(lc_gguf_open(&raw, gguf, &err), LC_OK);
    ta = lc_model_files_tensor(a, "model.layers.0.self_attn.q_proj.weight");
    tb = lc_gguf_tensor_find(raw, "blk.0.attn_q.weight");
    assert_int_equal(ta->nbytes, tb->nbytes);
    assert_true(memcmp(ta->data, tb->data, ta->nbytes) != 0);
    ta = lc_model_files_tensor(a, "model.layers.2.self_attn.k_proj.weight");
    tb = lc_gguf_tensor_find(raw, "blk.2.attn_k.weight");
    assert_true(memcmp(ta->data, tb->data, ta->nbytes) != 0);
    ta = lc_model_files_tensor(a, "model.layers.2.self_attn.v_proj.weight");
    tb = lc_gguf_tensor_find(raw, "blk.2.attn_v.weight");
    assert_memory_equal(ta->data, tb->data, ta->nbytes);

    lc_gguf_close(raw);
    lc_st_close(st);
    lc_model_files_close(a);
    lc_model_files_close(b);
}

static void test_open_tiny_random(void **state)
{
    const char *path = lc_test_data_file("models/llama-2-tiny-random/llama-2-tiny-random.gguf");
    struct lc_model_files *mf = NULL;
    struct lc_gguf *raw = NULL;
    struct lc_error err = {0};
    const struct lc_tensor_view *t = NULL;
    const struct lc_tensor_view *r = NULL;
    const uint16_t *tq = NULL;
    const uint16_t *rq = NULL;
    (void)state;

    assert_int_equal(lc_model_files_open(&mf, path, &err), LC_OK);
    assert_int_equal(lc_model_files_config(mf)->vocab_size, 32000);
    assert_int_equal(lc_model_files_config(mf)->tie_word_embeddings, 0);
    t = lc_model_files_tensor(mf, "lm_head.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, LC_DTYPE_F16);
    assert_int_equal(t->shape[0], 32000);
    assert_int_equal(t->shape[1], 8);
    t = lc_model_files_tensor(mf, "model.layers.0.post_attention_layernorm.weight");
    assert_int_equal(t->dtype, LC_DTYPE_F32);
    assert_int_equal(t->shape[0], 8);
    assert_non_null(lc_model_files_tensor(mf, "model.embed_tokens.weight"));
    assert_non_null(lc_model_files_tensor(mf, "model.norm.weight"));

    /* head dim 4: per head, Hugging Face rows 0 1 2 3 are GGUF rows 0 2 1 3 */
    assert_int_equal(lc_gguf_open(&raw, path, &err), LC_OK);
    t = lc_model_files_tensor(mf, "model.layers.0.self_attn.q_proj.weight");
    r = lc_gguf_tensor_find(raw, "blk.0.attn_q.weight");
    assert_int_equal(t->dtype, LC_DTYPE_F16);
    assert_int_equal(t->shape[0], 8);
    tq = t->data;
    rq = r->data;
    for (int h = 0; h < 2; h++) {
        static const int from[4] = {0, 2, 1, 3};
        for (int row = 0; row < 4; row++) {
            assert_memory_equal(tq + (h * 4 + row) * 8, rq + (h * 4 + from[row]) * 8, 16);
        }
    }
    t = lc_model_files_tensor(mf, "model.layers.0.self_attn.k_proj.weight");
    r = lc_gguf_tensor_find(raw, "blk.0.attn_k.weight");
    assert_memory_equal((const uint16_t *)t->data + 8, (const uint16_t *)r->data + 16, 16);
    t = lc_model_files_tensor(mf, "model.layers.0.self_attn.o_proj.weight");
    r = lc_gguf_tensor_find(raw, "blk.0.attn_output.weight");
    assert_memory_equal(t->data, r->data, t->nbytes);
    lc_gguf_close(raw);
    lc_model_files_close(mf);
}

/* --------------------------------------------------- broken checkpoints */

/* A small Llama folder: C 64, H 8, Hkv 4, D 8, FFN 16, V 32, 4 layers. */
enum {
    MK_OK = 0,
    MK_BAD_K_SHAPE,  /* layer 3 k_proj [64, 64] */
    MK_DROP_UP,      /* no layer 2 up_proj */
    MK_NO_ATTENTION, /* no self_attn tensors at all */
    MK_I32_NORM,     /* model.norm.weight in I32 */
    MK_LM_HEAD,      /* an lm_head.weight */
};

static const char *make_model(const char *name, int mode, int tied)
{
    static const char *const suffix[] = {
        "input_layernorm.weight",       "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",      "self_attn.o_proj.weight",
        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    };
    static const int64_t shapes[9][2] = {{64, 0},  {64, 64}, {32, 64}, {32, 64}, {64, 64},
                                         {64, 0},  {16, 64}, {16, 64}, {64, 16}};
    const char *dir = lc_test_tmp_path(name);
    char p[1200];
    char cfg[1024];
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    float *buf = calloc(64 * 64, sizeof(float));
    const int64_t emb[2] = {32, 64}, norm[1] = {64}, bad_k[2] = {64, 64};

    assert_non_null(buf);
    lc_test_fill_normal(buf, 64 * 64, 3, 0.02f);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(cfg, sizeof(cfg),
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
             "\"hidden_size\": 64, \"intermediate_size\": 16, \"num_hidden_layers\": 4, "
             "\"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"head_dim\": 8, "
             "\"vocab_size\": 32, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": %s}",
             tied ? "true" : "false");
    snprintf(p, sizeof(p), "%s/config.json", dir);
    lc_test_write_text(p, cfg);

    assert_int_equal(lc_st_writer_new(&w, &err), LC_OK);
    assert_int_equal(lc_st_writer_add(w, "model.embed_tokens.weight", LC_DTYPE_F32, 2, emb, buf,
                                      &err),
                     LC_OK);
    if (mode == MK_I32_NORM) {
        assert_int_equal(lc_st_writer_add(w, "model.norm.weight", LC_DTYPE_I32, 1, norm, buf,
                                          &err),
                         LC_OK);
    } else {
        assert_int_equal(lc_st_writer_add(w, "model.norm.weight", LC_DTYPE_F32, 1, norm, buf,
                                          &err),
                         LC_OK);
    }
    if (mode == MK_LM_HEAD) {
        assert_int_equal(lc_st_writer_add(w, "lm_head.weight", LC_DTYPE_BF16, 2, emb, buf, &err),
                         LC_OK);
    }
    for (int l = 0; l < 4; l++) {
        for (int k = 0; k < 9; k++) {
            char tn[160];
            const int64_t *shape = shapes[k];
            snprintf(tn, sizeof(tn), "model.layers.%d.%s", l, suffix[k]);
            if ((mode == MK_DROP_UP && l == 2 && k == 7) ||
                (mode == MK_NO_ATTENTION && k >= 1 && k <= 4)) {
                continue;
            }
            if (mode == MK_BAD_K_SHAPE && l == 3 && k == 2) {
                shape = bad_k;
            }
            assert_int_equal(lc_st_writer_add(w, tn, l % 2 ? LC_DTYPE_F16 : LC_DTYPE_F32,
                                              shape[1] ? 2 : 1, shape, buf, &err),
                             LC_OK);
        }
    }
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    assert_int_equal(lc_st_writer_write(w, p, &err), LC_OK);
    lc_st_writer_free(w);
    free(buf);
    return dir;
}

static void expect_model_fails(const char *path, lc_status code, const char *substr)
{
    struct lc_model_files *mf = NULL;
    struct lc_error err = {0};
    lc_status rc = lc_model_files_open(&mf, path, &err);
    assert_null(mf);
    lc_test_expect_error(rc, &err, code, substr);
}

static void test_broken_models(void **state)
{
    struct lc_model_files *mf = NULL;
    struct lc_error err = {0};
    char p[1200];
    const char *dir = NULL;
    (void)state;

    dir = make_model("ok", MK_OK, 1);
    assert_int_equal(lc_model_files_open(&mf, dir, &err), LC_OK);
    assert_int_equal(lc_model_files_tensor(mf, "model.layers.1.mlp.up_proj.weight")->dtype,
                     LC_DTYPE_F16);
    lc_model_files_close(mf);

    dir = make_model("bad-k", MK_BAD_K_SHAPE, 1);
    snprintf(p, sizeof(p),
             "%s/model.safetensors: model.layers.3.self_attn.k_proj.weight has shape [64, 64], "
             "but config.json (num_key_value_heads 4, head_dim 8, hidden_size 64) implies "
             "[32, 64]",
             dir);
    expect_model_fails(dir, LC_ERR_FORMAT, p);
    dir = make_model("drop-up", MK_DROP_UP, 1);
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.safetensors: model.layers.2.mlp.up_proj.weight is missing "
                       "(config.json: intermediate_size 16, hidden_size 64)");
    dir = make_model("no-attn", MK_NO_ATTENTION, 1);
    expect_model_fails(dir, LC_ERR_FORMAT, "no attention tensors");
    dir = make_model("i32", MK_I32_NORM, 1);
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.norm.weight has dtype I32; model weights must be F32, F16 or BF16");
    dir = make_model("untied", MK_OK, 0);
    expect_model_fails(dir, LC_ERR_FORMAT, "lm_head.weight is missing");

    /* untied with its classifier; tied with a stray lm_head (hidden, as
     * transformers ties it to the embedding) */
    dir = make_model("untied-head", MK_LM_HEAD, 0);
    assert_int_equal(lc_model_files_open(&mf, dir, &err), LC_OK);
    assert_int_equal(lc_model_files_tensor(mf, "lm_head.weight")->dtype, LC_DTYPE_BF16);
    lc_model_files_close(mf);
    dir = make_model("tied-head", MK_LM_HEAD, 1);
    assert_int_equal(lc_model_files_open(&mf, dir, &err), LC_OK);
    assert_null(lc_model_files_tensor(mf, "lm_head.weight"));
    assert_int_equal(lc_model_files_config(mf)->tie_word_embeddings, 1);
    lc_model_files_close(mf);

    /* a config.json that contradicts the weights in another way */
    dir = make_model("wrong-cfg", MK_OK, 1);
    snprintf(p, sizeof(p), "%s/config.json", dir);
    lc_test_write_text(
        p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 16, "
           "\"num_hidden_layers\": 5, \"num_attention_heads\": 8, "
           "\"num_key_value_heads\": 4, \"tie_word_embeddings\": true, "
           "\"vocab_size\": 32}");
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.layers.4.input_layernorm.weight is missing (config.json: "
                       "hidden_size 64)");
    lc_test_write_text(
        p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 16, "
           "\"num_hidden_layers\": 4, \"num_attention_heads\": 8, "
           "\"num_key_value_heads\": 4, \"tie_word_embeddings\": true, "
           "\"vocab_size\": 33}");
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.embed_tokens.weight has shape [32, 64], but config.json "
                       "(vocab_size 33, hidden_size 64) implies [33, 64]");
    lc_test_write_text(
        p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 16, "
           "\"num_hidden_layers\": 4, \"num_attention_heads\": 4, "
           "\"num_key_value_heads\": 4, \"tie_word_embeddings\": true, "
           "\"vocab_size\": 32}");
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.layers.0.self_attn.k_proj.weight has shape [32, 64], but "
                       "config.json (num_key_value_heads 4, head_dim 16, hidden_size 64) implies "
                       "[64, 64]");
    unlink(p);
    expect_model_fails(dir, LC_ERR_IO, "config.json: cannot open");

    snprintf(p, sizeof(p), "%s/notes.txt", lc_test_tmpdir());
    lc_test_write_text(p, "hello");
    expect_model_fails(p, LC_ERR_FORMAT, "not a model");
    expect_model_fails(lc_test_tmp_path("absent"), LC_ERR_IO, "absent");
    mkdir(lc_test_tmp_path("cfg-only"), 0777);
    snprintf(p, sizeof(p), "%s/config.json", lc_test_tmp_path("cfg-only"));
    lc_test_write_text(p, "{\"model_type\": \"llama\", " BASE "}");
    expect_model_fails(lc_test_tmp_path("cfg-only"), LC_ERR_IO, "neither model.safetensors nor");
}

/* A sharded folder: two shards, an index, a config. */
static void test_sharded_model(void **state)
{
    const char *dir = make_model("to-shard", MK_OK, 1);
    char p[1200];
    struct lc_st_file *whole = NULL;
    struct lc_st_writer *w1 = NULL;
    struct lc_st_writer *w2 = NULL;
    struct lc_model_files *mf = NULL;
    struct lc_error err = {0};
    char *index = NULL;
    size_t used = 0;
    size_t cap = 1 << 16;
    (void)state;

    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    assert_int_equal(lc_st_open(&whole, p, &err), LC_OK);
    assert_int_equal(lc_st_writer_new(&w1, &err), LC_OK);
    assert_int_equal(lc_st_writer_new(&w2, &err), LC_OK);
    index = malloc(cap);
    assert_non_null(index);
    used += (size_t)snprintf(index, cap, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < lc_st_count(whole); i++) {
        const struct lc_tensor_view *t = lc_st_at(whole, i);
        int second = strstr(t->name, "layers.2") != NULL || strstr(t->name, "layers.3") != NULL;
        assert_int_equal(lc_st_writer_add(second ? w2 : w1, t->name, t->dtype, t->ndim, t->shape,
                                          t->data, &err),
                         LC_OK);
        used += (size_t)snprintf(index + used, cap - used, "%s\"%s\": \"model-0000%d-of-00002"
                                 ".safetensors\"", i ? ", " : "", t->name, second ? 2 : 1);
        assert_true(used < cap);
    }
    snprintf(index + used, cap - used, "}}");
    lc_st_close(whole);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof(p), "%s/model-00001-of-00002.safetensors", dir);
    assert_int_equal(lc_st_writer_write(w1, p, &err), LC_OK);
    snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
    assert_int_equal(lc_st_writer_write(w2, p, &err), LC_OK);
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    lc_test_write_text(p, index);

    assert_int_equal(lc_model_files_open(&mf, dir, &err), LC_OK);
    assert_non_null(lc_model_files_tensor(mf, "model.layers.3.mlp.down_proj.weight"));
    assert_non_null(lc_model_files_tensor(mf, "model.layers.0.mlp.down_proj.weight"));
    lc_model_files_close(mf);

    /* a shape error in a sharded folder names the index */
    snprintf(p, sizeof(p), "%s/config.json", dir);
    lc_test_write_text(
        p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 17, "
           "\"num_hidden_layers\": 4, \"num_attention_heads\": 8, "
           "\"num_key_value_heads\": 4, \"tie_word_embeddings\": true, "
           "\"vocab_size\": 32}");
    expect_model_fails(dir, LC_ERR_FORMAT,
                       "model.safetensors.index.json: model.layers.0.mlp.gate_proj.weight has "
                       "shape [16, 64], but config.json (intermediate_size 17, hidden_size 64) "
                       "implies [17, 64]");
    lc_st_writer_free(w1);
    lc_st_writer_free(w2);
    free(index);
}

/* The offset of the u32 type field of a GGUF tensor info (2 dims). */
static size_t gguf_type_field(const unsigned char *buf, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 8; i + n + 20 < len; i++) {
        if (buf[i - 8] == n && memcmp(buf + i, name, n) == 0 &&
            buf[i + n] == 2 /* n_dims */) {
            return i + n + 4 + 16;
        }
    }
    fail_msg("tensor info %s not found", name);
    return 0;
}

static void test_gguf_broken(void **state)
{
    const char *src = lc_test_data_file("models/stories260K/stories260K.gguf");
    const char *dst = lc_test_tmp_path("patched.gguf");
    unsigned char *buf = NULL;
    size_t len = 0;
    size_t at;
    (void)state;

    /* a quantized matrix: the file opens, the model does not */
    buf = lc_test_read_file(src, &len);
    at = gguf_type_field(buf, 14176, "blk.0.attn_q.weight");
    assert_int_equal(buf[at], 0); /* F32 */
    buf[at] = 8;                  /* Q8_0: smaller, still inside the data */
    lc_test_write_file(dst, buf, len);
    expect_model_fails(dst, LC_ERR_UNSUPPORTED,
                       "tensor blk.0.attn_q.weight has ggml type Q8_0, which is not supported");
    buf[at] = 0;

    /* a k_proj with half its rows: ne[1] (the rows) of blk.1.attn_k */
    at = gguf_type_field(buf, 14176, "blk.1.attn_k.weight");
    assert_int_equal(buf[at - 8], 32);
    buf[at - 8] = 16;
    lc_test_write_file(dst, buf, len);
    expect_model_fails(dst, LC_ERR_FORMAT,
                       "patched.gguf: blk.1.attn_k.weight (model.layers.1.self_attn.k_proj.weight)"
                       " has shape [16, 64], but the GGUF metadata (llama.attention.head_count_kv"
                       " 4, llama.attention.key_length 8, llama.embedding_length 64) implies "
                       "[32, 64]");
    buf[at - 8] = 32;

    /* a tensor renamed away: missing */
    at = gguf_type_field(buf, 14176, "blk.4.ffn_up.weight");
    memcpy(buf + at - 20 - 19, "blk.4.ffn_xx.weight", 19);
    lc_test_write_file(dst, buf, len);
    expect_model_fails(dst, LC_ERR_FORMAT,
                       "blk.4.ffn_up.weight (model.layers.4.mlp.up_proj.weight) is missing");
    memcpy(buf + at - 20 - 19, "blk.4.ffn_up.weight", 19);

    /* another architecture */
    {
        unsigned char *p = NULL;
        for (size_t i = 0; i + 5 < 14176 && p == NULL; i++) {
            if (memcmp(buf + i, "general.architecture", 20) == 0) {
                p = buf + i + 20 + 4 + 8;
            }
        }
        assert_non_null(p);
        assert_memory_equal(p, "llama", 5);
        memcpy(p, "gpt2x", 5);
        lc_test_write_file(dst, buf, len);
        expect_model_fails(dst, LC_ERR_UNSUPPORTED, "architecture \"gpt2x\" is not supported");
        memcpy(p, "llama", 5);
    }
    lc_test_write_file(dst, buf, len);
    {
        struct lc_model_files *mf = NULL;
        struct lc_error err = {0};
        assert_int_equal(lc_model_files_open(&mf, dst, &err), LC_OK);
        lc_model_files_close(mf);
    }
    /* a corrupt GGUF fails through the reader, with its message */
    lc_test_write_file(dst, buf, 14000);
    expect_model_fails(dst, LC_ERR_FORMAT, "patched.gguf: ");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_config_stories),
        cmocka_unit_test(test_hf_config_variants),
        cmocka_unit_test(test_hf_config_bad),
        cmocka_unit_test(test_gguf_config),
        cmocka_unit_test(test_open_stories_hf),
        cmocka_unit_test(test_gguf_equals_hf),
        cmocka_unit_test(test_open_tiny_random),
        cmocka_unit_test(test_broken_models),
        cmocka_unit_test(test_sharded_model),
        cmocka_unit_test(test_gguf_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
