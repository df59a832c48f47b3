/*
 * The model configuration from a Hugging Face config.json or from GGUF
 * metadata (modelconfig.c), checked; used by lc_model_files_open.
 */
#ifndef LC_CORE_MODELCONFIG_H
#define LC_CORE_MODELCONFIG_H

#include <stddef.h>

#include "lolcats/lolcats.h"

struct lc_gguf;

/* Parsers used by lc_model_files_open, exposed for tests. */
lc_status lc_config_from_hf_json(struct lc_model_config *cfg, const char *config_json_path,
                                 struct lc_error *err);
lc_status lc_config_from_hf_json_buf(struct lc_model_config *cfg, const char *path,
                                     const char *text, size_t len, struct lc_error *err);
lc_status lc_config_from_gguf(struct lc_model_config *cfg, const struct lc_gguf *g,
                              struct lc_error *err);

#endif /* LC_CORE_MODELCONFIG_H */
