/* Fuzz: decode(encode(x)) for every byte string x and every tokenizer
 * at hand: the small ones of data/tokenizers and, when the shared test
 * data is there, SentencePiece (tokenizer.model, GGUF vocabulary) and
 * Llama 3's byte-level BPE.  The first byte picks the tokenizer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tok.h"

#define MAX_TOKS 12

static struct lc_tokenizer *toks[MAX_TOKS];
static const char *names[MAX_TOKS];
static int n_toks;

static void add(const char *path, const char *name)
{
    struct lc_error err = {0};
    if (path == NULL || n_toks == MAX_TOKS) {
        return;
    }
    if (lc_tokenizer_open(&toks[n_toks], path, &err) != LC_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        abort();
    }
    names[n_toks++] = name;
}

static void close_all(void)
{
    for (int i = 0; i < n_toks; i++) {
        lc_tokenizer_close(toks[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    add(fuzz_project_path("tokenizers/tok512-hf"), "tok512-hf");
    add(fuzz_project_path("tokenizers/tok512-first.json"), "tok512-first");
    add(fuzz_project_path("tokenizers/tok512-legacy.json"), "tok512-legacy");
    add(fuzz_project_path("tokenizers/bbpe-small/tokenizer.json"), "bbpe-small");
    add(fuzz_shared_path("models/stories260K/tok512.model"), "tok512.model");
    add(fuzz_shared_path("tokenizers/llama2-spm/tokenizer.model"), "llama2-spm");
    add(fuzz_shared_path("tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf"), "llama2-gguf");
    add(fuzz_shared_path("tokenizers/llama3-bpe"), "llama3-bpe");
    atexit(close_all);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int k;
    if (size == 0) {
        return 0;
    }
    k = data[0] % n_toks;
    fuzz_tok_roundtrip(toks[k], names[k], data + 1, size - 1, 1);
    return 0;
}
