/* Fuzz: a Hugging Face config.json. */
#include "config.h"

#include "core/modelfiles.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_model_config cfg;
    struct lc_error err = {0};
    lc_status rc = lc_config_from_hf_json_buf(&cfg, "config.json", (const char *)data, size, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "config.json");
        return 0;
    }
    if (cfg.vocab_size < 1 || cfg.n_layers < 1 || cfg.n_heads < 1 || cfg.n_kv_heads < 1 ||
        cfg.head_dim < 1 || cfg.n_heads % cfg.n_kv_heads != 0) {
        __builtin_trap(); /* accepted a shape check_config should refuse */
    }
    return 0;
}
