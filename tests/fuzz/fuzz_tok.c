/* The tokenizer harnesses' checks (fuzz_tok.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer.h"
#include "fuzz_common.h"
#include "fuzz_tok.h"

static void dump(const char *what, const uint8_t *s, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 200; i++) {
        fprintf(stderr, s[i] >= 32 && s[i] < 127 && s[i] != '"' ? "%c" : "\\x%02x", s[i]);
    }
    fprintf(stderr, "%s\"\n", n > 200 ? "..." : "");
}

void fuzz_tok_roundtrip(const struct lc_tokenizer *tok, const char *name, const uint8_t *text,
                        size_t len, int check_rule)
{
    struct lc_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    size_t out_len = 0;
    uint8_t *want;
    size_t want_len;
    char *stream;
    size_t pos = 0;
    lc_status rc;

    rc = lc_tokenizer_encode(tok, (const char *)text, len, LC_TOK_ADD_BOS, &ids, &n, &err);
    if (rc != LC_OK) {
        fprintf(stderr, "%s: encode failed: %s\n", name, err.msg);
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= lc_tokenizer_vocab_size(tok)) {
            fprintf(stderr, "%s: id %d outside the vocabulary\n", name, ids[i]);
            abort();
        }
    }
    rc = lc_tokenizer_decode(tok, ids, n, &out, &out_len, &err);
    if (rc != LC_OK) {
        fprintf(stderr, "%s: decode failed: %s\n", name, err.msg);
        abort();
    }
    want = (uint8_t *)lc_tok_roundtrip_text(tok, (const char *)text, len, &want_len);
    if (want == NULL) {
        abort();
    }
    /* a text the vocabulary cannot spell (a character without a piece,
     * and no byte piece for its bytes) holds the unknown token, which
     * decodes to nothing: no round trip then */
    int has_unk = 0;
    for (size_t i = 0; i < n; i++) {
        has_unk |= ids[i] == tok->unk;
    }
    if (check_rule && !has_unk && (out_len != want_len || memcmp(out, want, want_len) != 0)) {
        fprintf(stderr, "%s: decode(encode(x)) breaks the round-trip rule\n", name);
        dump("x", text, len);
        dump("decoded", (const uint8_t *)out, out_len);
        dump("expected", want, want_len);
        abort();
    }
    stream = malloc(out_len + 1);
    if (stream == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        int32_t prev = i > 0 ? ids[i - 1] : -1;
        size_t k = lc_tokenizer_decode_next(tok, prev, ids[i], NULL, 0);
        if (k > out_len - pos ||
            lc_tokenizer_decode_next(tok, prev, ids[i], stream + pos, k) != k) {
            fprintf(stderr, "%s: streaming decode runs past decode\n", name);
            abort();
        }
        pos += k;
    }
    if (pos != out_len || memcmp(stream, out, out_len) != 0) {
        fprintf(stderr, "%s: streaming decode differs from decode\n", name);
        abort();
    }
    free(stream);
    free(want);
    free(out);
    free(ids);

    /* special-token text parsed: no round-trip promise, but no failure */
    rc = lc_tokenizer_encode(tok, (const char *)text, len, LC_TOK_PARSE_SPECIAL, &ids, &n, &err);
    if (rc != LC_OK) {
        fprintf(stderr, "%s: encode with special tokens failed: %s\n", name, err.msg);
        abort();
    }
    rc = lc_tokenizer_decode(tok, ids, n, &out, &out_len, &err);
    if (rc != LC_OK) {
        abort();
    }
    free(out);
    free(ids);
}

void fuzz_tok_exercise(const struct lc_tokenizer *tok, const char *name)
{
    static const char *const texts[] = {
        "Once upon a time, there was a little girl.",
        "  two  spaces\n\tand\r\nlines  ",
        "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 <s> </s> <unk> <|eot_id|> \xff\xfe\x80",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        fuzz_tok_roundtrip(tok, name, (const uint8_t *)texts[i], strlen(texts[i]), 0);
    }
}
