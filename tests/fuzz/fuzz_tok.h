/* The tokenizer harnesses' checks (fuzz_tok.c). */
#ifndef LC_TESTS_FUZZ_TOK_H
#define LC_TESTS_FUZZ_TOK_H

#include <stddef.h>
#include <stdint.h>

struct lc_tokenizer;

/*
 * Encodes text, decodes the ids, and aborts unless the result is what the
 * round-trip rule of lc_tokenizer_decode (lolcats.h) says: the text itself,
 * except for tokenizers that write spaces as U+2581, where every U+2581 of
 * the text comes back as a space and, when "▁" is put in front of a text
 * only if it does not start with one (Metaspace prepend_scheme "first" or
 * "always"), one leading space is dropped.  Also checks that the streaming
 * decode gives the same bytes, that every id is in the vocabulary, and
 * that encoding with special tokens parsed does not fail.
 */
void fuzz_tok_roundtrip(const struct lc_tokenizer *tok, const char *name, const uint8_t *text,
                        size_t len, int check_rule);

/* fuzz_tok_roundtrip on a few fixed texts, without the round-trip rule:
 * for the loader harnesses, whose vocabularies are made up (a decoder
 * that does not undo the normalizer, a BOS that is a normal token) and
 * keep only their own definition. */
void fuzz_tok_exercise(const struct lc_tokenizer *tok, const char *name);

#endif /* LC_TESTS_FUZZ_TOK_H */
