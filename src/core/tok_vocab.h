/*
 * The vocabulary builder (tok_vocab.c): what the loaders fill in a struct
 * lc_tokenizer (tokenizer.h) and the encoders read.
 */
#ifndef LC_CORE_TOK_VOCAB_H
#define LC_CORE_TOK_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "core/tokenizer.h"

/* ---------------------------------------------------------------- building */

/* Allocates the per-token arrays for n tokens (types NORMAL, scores 0, no
 * spelling yet) and sets the defaults of the other fields. */
lc_status lc_tok_init(struct lc_tokenizer *tok, int32_t n, struct lc_error *err);
/* Sets the spelling of token id (copied). */
lc_status lc_tok_set_piece(struct lc_tokenizer *tok, int32_t id, const char *s, size_t len,
                           struct lc_error *err);
/* Finds a token by spelling (after lc_tok_build_index); -1 when absent. */
int32_t lc_tok_lookup(const struct lc_tokenizer *tok, const char *s, size_t len);
/* Builds the spelling index; fails on a token without spelling or two
 * tokens with the same spelling. */
lc_status lc_tok_build_index(struct lc_tokenizer *tok, struct lc_error *err);
/* Allocates the merge table for n merges, then adds them one by one. */
lc_status lc_tok_merges_alloc(struct lc_tokenizer *tok, size_t n, struct lc_error *err);
lc_status lc_tok_add_merge(struct lc_tokenizer *tok, const char *left, size_t left_len,
                           const char *right, size_t right_len, int32_t rank,
                           struct lc_error *err);
const struct lc_tok_merge *lc_tok_merge_find(const struct lc_tokenizer *tok, int32_t a,
                                             int32_t b);
/* Adds a token to the raw-text matcher. */
lc_status lc_tok_add_added(struct lc_tokenizer *tok, const struct lc_tok_added *a,
                           struct lc_error *err);
/* After the loader: byte ids, decoded texts, matcher indexes. */
lc_status lc_tok_finish(struct lc_tokenizer *tok, struct lc_error *err);
/* Compiles a pre-tokenizer regex (PCRE2, UTF with Unicode properties,
 * invalid UTF-8 allowed in subjects) and appends it. */
lc_status lc_tok_add_regex(struct lc_tokenizer *tok, const char *pattern, size_t len,
                           struct lc_error *err);
void lc_tok_free_regex(void *re);
void lc_tok_free_fields(struct lc_tokenizer *tok);

/* The Llama 3 pre-tokenizer regex and GPT-2's (tokenizer.json ByteLevel
 * with use_regex). */
extern const char lc_tok_llama3_regex[];
extern const char lc_tok_gpt2_regex[];

/* GPT-2's byte-level stand-ins: byte -> code point and back (-1: not a
 * stand-in). */
uint32_t lc_tok_byte_to_cp(uint8_t b);
int lc_tok_cp_to_byte(uint32_t cp);

/* "<0xAB>" -> 0xAB; -1 for any other spelling */
int lc_tok_byte_piece(const char *s, size_t len);

/* UTF-8: the length of the valid sequence at s (1..4), or 0 when the
 * bytes there are not valid UTF-8 (a lone or truncated sequence). */
size_t lc_tok_utf8_len(const unsigned char *s, size_t n, uint32_t *cp);

/* ---------------------------------------------------------------- id lists */

struct lc_tok_ids {
    int32_t *v;
    size_t n, cap;
};

lc_status lc_tok_ids_push(struct lc_tok_ids *ids, int32_t id);

#endif /* LC_CORE_TOK_VOCAB_H */
