/* Fuzz: a lolcats output folder as lolcats-generate --lolcats and
 * lolcats-eval --lolcats read it, attached to stories260K (shared test
 * data): lolcats_config.json, feature_maps.safetensors,
 * adapter_config.json and adapter_model.safetensors, given as one input,
 * the files in that order separated by the line "--lolcats-file--" (a
 * file left out is absent).  A folder that loads is run: logits of a few
 * tokens and a decoding session. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"

static struct lc_backend *be;
static struct lc_model *model;

static void close_all(void)
{
    lc_model_close(model);
    lc_backend_close(be);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = fuzz_shared_path("models/stories260K-hf");
    struct lc_error err = {0};
    (void)argc;
    (void)argv;
    fuzz_quiet();
    lc_set_num_threads(1);
    if (path == NULL) {
        fprintf(stderr, "fuzz_lolcats_dir: no shared test data (models/stories260K-hf): "
                        "every input is skipped\n");
        return 0;
    }
    if (lc_backend_open(&be, "cpu", &err) != LC_OK ||
        lc_model_open(&model, path, be, &err) != LC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    atexit(close_all);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const files[4] = {"lolcats_config.json", "feature_maps.safetensors",
                                         "adapter_config.json", "adapter_model.safetensors"};
    const uint8_t *part[4];
    size_t len[4];
    size_t n;
    struct lc_error err = {0};
    lc_status rc;

    if (model == NULL) {
        return 0;
    }
    n = fuzz_split(data, size, "\n--lolcats-file--\n", part, len, 4);
    for (size_t i = 0; i < 4; i++) {
        fuzz_put_file(files[i], i < n ? part[i] : NULL, i < n ? len[i] : 0);
    }
    rc = lc_model_load_lolcats(model, fuzz_tmpdir(), &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, fuzz_tmpdir());
        return 0;
    }
    {
        const int32_t ids[4] = {1, 403, 407, 261};
        float *logits = malloc(4 * 512 * sizeof(float));
        struct lc_session *s = NULL;
        if (logits == NULL || lc_model_logits(model, ids, 1, 4, logits, &err) != LC_OK ||
            lc_session_new(&s, model, 6, &err) != LC_OK ||
            lc_session_feed(s, ids, 4, logits, &err) != LC_OK ||
            lc_session_feed(s, ids, 2, logits, &err) != LC_OK) {
            fprintf(stderr, "a loaded folder does not run: %s\n", err.msg);
            abort();
        }
        lc_session_free(s);
        free(logits);
    }
    lc_model_use_teacher(model, 1);
    return 0;
}
