/* Fuzz: model.safetensors.index.json of a sharded checkpoint, in a folder
 * that also holds two small shards. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/tensorfile.h"
#include "fuzz_common.h"

static void write_shard(const char *name, const char *const *tensors, int n)
{
    struct lc_st_writer *w = NULL;
    struct lc_error err = {0};
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[2] = {2, 2};
    if (lc_st_writer_new(&w, &err) != LC_OK) {
        abort();
    }
    for (int i = 0; i < n; i++) {
        if (lc_st_writer_add(w, tensors[i], LC_DTYPE_F32, 2, shape, v, &err) != LC_OK) {
            abort();
        }
    }
    if (lc_st_writer_write(w, fuzz_put_file(name, "", 0), &err) != LC_OK) {
        abort();
    }
    lc_st_writer_free(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const a[] = {"model.embed_tokens.weight", "model.norm.weight"};
    static const char *const b[] = {"lm_head.weight"};
    (void)argc;
    (void)argv;
    fuzz_quiet();
    write_shard("model-00001-of-00002.safetensors", a, 2);
    write_shard("model-00002-of-00002.safetensors", b, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_st_set *s = NULL;
    struct lc_error err = {0};
    const char *path = fuzz_put_file("model.safetensors.index.json", data, size);
    lc_status rc = lc_st_set_open(&s, fuzz_tmpdir(), &err);

    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "model.safetensors.index.json");
        return 0;
    }
    (void)path;
    for (size_t i = 0; i < lc_st_set_count(s); i++) {
        const struct lc_tensor_view *t = lc_st_set_at(s, i);
        if (lc_st_set_find(s, t->name) != t) {
            __builtin_trap();
        }
    }
    lc_st_set_close(s);
    return 0;
}
