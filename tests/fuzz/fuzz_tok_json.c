/* Fuzz: a Hugging Face tokenizer.json, then encoding and decoding with it. */
#include "config.h"

#include <string.h>

#include "core/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_tokenizer tok;
    struct lc_error err = {0};
    lc_status rc;

    fuzz_quiet();
    memset(&tok, 0, sizeof(tok));
    rc = lc_tok_load_hf_json_buf(&tok, "tokenizer.json", (const char *)data, size, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "tokenizer.json");
    } else {
        fuzz_tok_exercise(&tok, "tokenizer.json");
    }
    lc_tok_free_fields(&tok);
    return 0;
}
