/*
 * A model checkpoint on disk, whatever its format: a Hugging Face folder
 * (config.json + model.safetensors or shards) or a GGUF file.  Gives the
 * configuration and the weights under their Hugging Face names, in the
 * Hugging Face layout.
 *
 * GGUF files from llama.cpp store the rows of q_proj and k_proj in the
 * interleaved-pair RoPE order; they are permuted back to the rotate-half
 * order here (into owned buffers), so that both formats give the same
 * model.
 */
#ifndef LC_CORE_MODELFILES_H
#define LC_CORE_MODELFILES_H

#include "core/tensorfile.h"
#include "lolcats/lolcats.h"

struct lc_model_files;

/* llama.cpp's per-frequency RoPE divisors (Llama 3.1 scaling) */
#define LC_ROPE_FREQS_TENSOR "rope_freqs.weight"

/* Opens and validates: every tensor the configuration needs exists with
 * the shape the configuration implies and a supported dtype (F32, F16,
 * BF16).  Names used:
 *   model.embed_tokens.weight [V,C]        model.norm.weight [C]
 *   lm_head.weight [V,C] (absent when tied)
 *   model.layers.{i}.input_layernorm.weight [C]
 *   model.layers.{i}.self_attn.q_proj.weight [H*D, C]
 *   model.layers.{i}.self_attn.k_proj.weight [Hkv*D, C]   (v_proj alike)
 *   model.layers.{i}.self_attn.o_proj.weight [C, H*D]
 *   model.layers.{i}.post_attention_layernorm.weight [C]
 *   model.layers.{i}.mlp.gate_proj.weight [FFN, C]          (up_proj alike)
 *   model.layers.{i}.mlp.down_proj.weight [C, FFN]
 *   rope_freqs.weight [D/2] (GGUF only, rope_type LC_ROPE_FACTORS)
 */
lc_status lc_model_files_open(struct lc_model_files **out, const char *path,
                              struct lc_error *err);
void lc_model_files_close(struct lc_model_files *mf);

const struct lc_model_config *lc_model_files_config(const struct lc_model_files *mf);
/* NULL when absent */
const struct lc_tensor_view *lc_model_files_tensor(const struct lc_model_files *mf,
                                                   const char *hf_name);
/* "safetensors" or "gguf" */
const char *lc_model_files_format(const struct lc_model_files *mf);
/* the path given to open */
const char *lc_model_files_path(const struct lc_model_files *mf);

/* Parsers used by lc_model_files_open, exposed for tests. */
lc_status lc_config_from_hf_json(struct lc_model_config *cfg, const char *config_json_path,
                                 struct lc_error *err);
lc_status lc_config_from_hf_json_buf(struct lc_model_config *cfg, const char *path,
                                     const char *text, size_t len, struct lc_error *err);
lc_status lc_config_from_gguf(struct lc_model_config *cfg, const struct lc_gguf *g,
                              struct lc_error *err);

#endif /* LC_CORE_MODELFILES_H */
