/* Fuzz: a training data file (plain text, a JSON array or JSON lines of
 * Alpaca or {"text"} records, each maybe gzip-compressed), read, tokenized
 * with a byte-level encoder, split and packed.  The first byte picks the
 * format, the held-out share and the chunk length; the rest is the file. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/util.h"
#include "fuzz_common.h"

static lc_status byte_encode(const void *ctx, const char *text, size_t len, int32_t **ids,
                             size_t *n_ids, struct lc_error *err)
{
    (void)ctx;
    *ids = malloc((len ? len : 1) * sizeof(int32_t));
    if (*ids == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        (*ids)[i] = (unsigned char)text[i];
    }
    *n_ids = len;
    return LC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum lc_data_format formats[4] = {LC_DATA_AUTO, LC_DATA_TEXT,
                                                   LC_DATA_JSONL_TEXT, LC_DATA_ALPACA};
    const struct lc_data_encoder enc = {byte_encode, NULL, 256, 257};
    struct lc_data_opts opts;
    struct lc_dataset *ds = NULL;
    struct lc_error err = {0};
    const char *path;
    lc_status rc;

    if (size == 0) {
        return 0;
    }
    fuzz_quiet();
    lc_data_opts_default(&opts);
    opts.format = formats[data[0] & 3];
    opts.val_fraction = ((data[0] >> 2) & 3) / 3.0;
    opts.val_records = (data[0] >> 4) & 3;
    path = fuzz_put_file("data.jsonl", data + 1, size - 1);
    rc = lc_dataset_load_with(&ds, path, &enc, &opts, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "data.jsonl");
        return 0;
    }
    for (int split = LC_SPLIT_TRAIN; split <= LC_SPLIT_ALL; split++) {
        const int32_t *ids, *labels;
        int32_t *pi = NULL, *pl = NULL;
        int64_t n = 0, chunks = 0;
        if (lc_dataset_stream(ds, (enum lc_data_split)split, &ids, &labels, &n) != LC_OK) {
            abort();
        }
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] > 257 || (labels[i] != ids[i] && labels[i] != -100)) {
                abort();
            }
        }
        rc = lc_dataset_pack(ds, (enum lc_data_split)split, 1 + (data[0] >> 6) * 7, &pi, &pl,
                             &chunks, &err);
        free(pi);
        free(pl);
    }
    lc_dataset_free(ds);
    return 0;
}
