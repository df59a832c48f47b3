/* Fuzz: a safetensors file (header, offsets, metadata) from memory. */
#include "config.h"

#include <string.h>

#include "core/tensorfile.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_st_file *f = NULL;
    struct lc_error err = {0};
    volatile uint8_t sink = 0;
    lc_status rc = lc_st_open_mem(&f, "fuzz.safetensors", data, size, &err);

    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "fuzz.safetensors");
        return 0;
    }
    /* every byte handed out must be inside the input */
    for (size_t i = 0; i < lc_st_count(f); i++) {
        const struct lc_tensor_view *t = lc_st_at(f, i);
        const uint8_t *p = t->data;
        if (lc_st_find(f, t->name) != t) {
            __builtin_trap();
        }
        for (size_t k = 0; k < t->nbytes; k++) {
            sink ^= p[k];
        }
    }
    (void)lc_st_metadata(f, "format");
    (void)lc_st_data_bytes(f);
    lc_st_close(f);
    (void)sink;
    return 0;
}
