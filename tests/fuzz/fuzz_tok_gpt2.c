/* Fuzz: encoder.json + vocab.bpe (GPT-2 layout, as Llama 3's original
 * files), given as one input: encoder.json, the line
 * "--vocab.bpe--", then vocab.bpe. */
#include "config.h"

#include <string.h>

#include "core/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_tokenizer tok;
    struct lc_error err = {0};
    const uint8_t *part[2];
    size_t len[2];
    lc_status rc;

    fuzz_quiet();
    if (fuzz_split(data, size, "\n--vocab.bpe--\n", part, len, 2) != 2) {
        return 0;
    }
    memset(&tok, 0, sizeof(tok));
    rc = lc_tok_load_gpt2_buf(&tok, "encoder.json", (const char *)part[0], len[0], "vocab.bpe",
                              (const char *)part[1], len[1], &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, NULL);
        if (strstr(err.msg, "encoder.json") == NULL && strstr(err.msg, "vocab.bpe") == NULL) {
            fuzz_check_error(rc, &err, "encoder.json");
        }
    } else {
        fuzz_tok_exercise(&tok, "encoder.json");
    }
    lc_tok_free_fields(&tok);
    return 0;
}
