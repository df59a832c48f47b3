/* Fuzz: a GGUF file from memory (header, metadata, tensor infos), and the
 * model configuration read from its metadata. */
#include "config.h"

#include <string.h>

#include "core/modelfiles.h"
#include "core/tensorfile.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    struct lc_model_config cfg;
    volatile uint8_t sink = 0;
    enum lc_gguf_type et;
    uint64_t count;
    lc_status rc = lc_gguf_open_mem(&g, "fuzz.gguf", data, size, &err);

    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "fuzz.gguf");
        return 0;
    }
    for (size_t i = 0; i < lc_gguf_tensor_count(g); i++) {
        const struct lc_tensor_view *t = lc_gguf_tensor_at(g, i);
        const struct lc_tensor_view *v = NULL;
        if (lc_gguf_tensor_find(g, t->name) != t) {
            __builtin_trap();
        }
        rc = lc_gguf_tensor_get(g, t->name, &v, &err);
        if (rc == LC_OK) {
            const uint8_t *p = v->data;
            for (size_t k = 0; k < v->nbytes; k++) {
                sink ^= p[k];
            }
        } else {
            fuzz_check_error(rc, &err, "fuzz.gguf");
        }
    }
    /* every array accessor on the keys a vocabulary has */
    if (lc_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count)) {
        for (uint64_t i = 0; i < count && i < 64; i++) {
            const char *s;
            size_t len;
            double d;
            int64_t n;
            if (lc_gguf_array_string(g, "tokenizer.ggml.tokens", i, &s, &len)) {
                for (size_t k = 0; k < len; k++) {
                    sink ^= (uint8_t)s[k];
                }
            }
            (void)lc_gguf_array_float(g, "tokenizer.ggml.scores", i, &d);
            (void)lc_gguf_array_int(g, "tokenizer.ggml.token_type", i, &n);
        }
    }
    rc = lc_config_from_gguf(&cfg, g, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "fuzz.gguf");
    }
    lc_gguf_close(g);
    (void)sink;
    return 0;
}
