/* Fuzz: the vocabulary of a GGUF file (tokenizer.ggml.*), then encoding
 * and decoding with it. */
#include "config.h"

#include <string.h>

#include "core/tensorfile.h"
#include "core/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_tokenizer tok;
    struct lc_gguf *g = NULL;
    struct lc_error err = {0};
    lc_status rc;

    fuzz_quiet();
    rc = lc_gguf_open_mem(&g, "vocab.gguf", data, size, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "vocab.gguf");
        return 0;
    }
    memset(&tok, 0, sizeof(tok));
    rc = lc_tok_load_gguf_file(&tok, g, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "vocab.gguf");
    } else {
        fuzz_tok_exercise(&tok, "vocab.gguf");
    }
    lc_tok_free_fields(&tok);
    lc_gguf_close(g);
    return 0;
}
