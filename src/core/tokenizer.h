/*
 * Tokenizers: the internal representation shared by the loaders
 * (tok_spm.c: SentencePiece tokenizer.model, tok_hf.c: tokenizer.json and
 * encoder.json + vocab.bpe, tok_gguf.c: a GGUF file's vocabulary) and the
 * encoder (tok_bpe.c).  tokenizer.c holds the public functions.
 *
 * Two algorithms cover the Llama family:
 *  - SentencePiece-style BPE: text with spaces as U+2581 ("▁"), symbols
 *    start as UTF-8 characters, merges are taken by piece score
 *    (tokenizer.model, GGUF "llama") or by merge rank (tokenizer.json);
 *    characters outside the vocabulary become byte tokens <0xXX>.
 *  - byte-level BPE (GPT-2 layout, Llama 3): a regex pre-tokenizer splits
 *    the text, each byte becomes a printable stand-in character, merges by
 *    rank.
 */
#ifndef LC_CORE_TOKENIZER_H
#define LC_CORE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

/* Token types, numbered as SentencePiece and GGUF's token_type number them. */
enum lc_tok_type {
    LC_TOKT_NORMAL = 1,
    LC_TOKT_UNKNOWN = 2,
    LC_TOKT_CONTROL = 3,
    LC_TOKT_USER_DEFINED = 4,
    LC_TOKT_UNUSED = 5,
    LC_TOKT_BYTE = 6
};

enum lc_tok_algo {
    LC_TOKA_SPM,      /* SentencePiece BPE: merges by piece score over the whole segment */
    LC_TOKA_SPM_RANK, /* tokenizer.json BPE over "▁" text: merges by rank */
    LC_TOKA_BYTELEVEL /* byte-level BPE after a regex pre-tokenizer: merges by rank */
};

/* Where a "▁" is put in front of a text segment (a segment is the text
 * between two tokens matched as added/special tokens). */
enum lc_tok_prefix {
    LC_TOKP_NONE,    /* never */
    LC_TOKP_SEGMENT, /* every non-empty segment (SentencePiece add_dummy_prefix as
                      * llama.cpp applies it; tokenizer.json Prepend normalizer) */
    LC_TOKP_ALWAYS,  /* tokenizer.json Metaspace "always": every segment that does
                      * not already start with "▁" */
    LC_TOKP_FIRST    /* Metaspace "first": the same, only for a segment at offset 0 */
};

/* A token recognized in the raw text before the model runs. */
struct lc_tok_added {
    int32_t id;
    uint8_t special; /* matched only with LC_TOK_PARSE_SPECIAL */
    uint8_t lstrip;  /* swallows the whitespace on its left */
    uint8_t rstrip;  /* ... on its right */
};

/* (left id, right id) -> merge rank and merged id */
struct lc_tok_merge {
    uint64_t key; /* UINT64_MAX: empty slot */
    int32_t rank;
    int32_t id;
};

#define LC_TOK_MAX_REGEX 4

struct lc_tokenizer {
    char *path;
    enum lc_tok_algo algo;
    int32_t n_vocab;

    /* string pool: each token's spelling in the vocabulary ("▁the",
     * "Ġthe", "<0x0A>") and the bytes it decodes to */
    char *pool;
    size_t pool_len, pool_cap;
    size_t *piece_off; /* [n_vocab] */
    uint32_t *piece_len;
    size_t *text_off; /* [n_vocab] */
    uint32_t *text_len;
    float *score;     /* [n_vocab] (SentencePiece) */
    uint8_t *type;    /* [n_vocab] enum lc_tok_type */
    uint8_t *defined; /* [n_vocab] set while loading, to find holes and duplicates */
    uint32_t max_piece_len;

    /* spelling -> id (open addressing, -1 = empty) */
    int32_t *slots;
    size_t slot_mask;

    /* rank merges (LC_TOKA_SPM_RANK, LC_TOKA_BYTELEVEL) */
    struct lc_tok_merge *merges;
    size_t merge_mask;
    size_t n_merges;

    /* SentencePiece: the id of <0xXX>; byte-level: the id of the byte's
     * stand-in character; -1 when missing */
    int32_t byte_id[256];

    int32_t bos, eos, unk; /* -1: none */
    int wants_bos;

    /* text handling */
    int prefix;        /* enum lc_tok_prefix */
    int escape_spaces; /* ' ' -> "▁" when encoding */
    int unescape;      /* "▁" -> ' ' when decoding */
    int meta_split;    /* Metaspace split: one word per "▁" */
    int strip_space;   /* decoding drops the leading space of the text's first token */
    int ignore_merges; /* a word that is itself in the vocabulary is one token */
    int byte_fallback; /* characters outside the vocabulary become <0xXX> */
    int fuse_unk;      /* neighbouring unknown characters give one <unk> */
    int has_unused;    /* some pieces are UNUSED: resegment them (SentencePiece) */
    int newline_splits; /* "▁" text may be merged one line at a time */

    /* tokens matched in raw text, grouped by first byte and longest first:
     * added_order[added_start[b] .. added_start[b+1]) */
    struct lc_tok_added *added;
    size_t n_added;
    uint32_t added_start[257];
    uint32_t *added_order;

    /* SentencePiece USER_DEFINED pieces: matched in the normalized text as
     * symbols that never merge; same grouping */
    int32_t *user;
    size_t n_user;
    uint32_t user_start[257];

    /* pre-tokenizer regexes (pcre2_code *), applied in sequence */
    void *re[LC_TOK_MAX_REGEX];
    int n_re;
};

/* ---------------------------------------------------------------- loaders */

lc_status lc_tok_load_spm(struct lc_tokenizer *tok, const char *path, struct lc_error *err);
/* from memory: used by the loader and by tests of the protobuf reader */
lc_status lc_tok_load_spm_buf(struct lc_tokenizer *tok, const char *name, const uint8_t *buf,
                              size_t len, struct lc_error *err);
lc_status lc_tok_load_hf_json(struct lc_tokenizer *tok, const char *path, struct lc_error *err);
lc_status lc_tok_load_gpt2(struct lc_tokenizer *tok, const char *encoder_path,
                           const char *merges_path, struct lc_error *err);
lc_status lc_tok_load_gguf(struct lc_tokenizer *tok, const char *path, struct lc_error *err);
/* the same from bytes in memory (paths only name them in messages) */
lc_status lc_tok_load_hf_json_buf(struct lc_tokenizer *tok, const char *path, const char *text,
                                  size_t len, struct lc_error *err);
lc_status lc_tok_load_gpt2_buf(struct lc_tokenizer *tok, const char *encoder_path,
                               const char *encoder, size_t encoder_len, const char *merges_path,
                               const char *merges, size_t merges_len, struct lc_error *err);
struct lc_gguf;
lc_status lc_tok_load_gguf_file(struct lc_tokenizer *tok, const struct lc_gguf *g,
                                struct lc_error *err);

/* ---------------------------------------------------------------- encoding */

/* the ids an encode appends to (tok_vocab.h) */
struct lc_tok_ids;

/* Scratch buffers of one encode call (so that a tokenizer can be shared
 * by threads). */
struct lc_tok_work;

lc_status lc_tok_work_new(const struct lc_tokenizer *tok, struct lc_tok_work **out,
                          struct lc_error *err);
void lc_tok_work_free(struct lc_tok_work *w);

/* Encodes one segment of plain text (no added tokens inside); at_start:
 * the segment begins at offset 0 of the caller's text. */
lc_status lc_tok_encode_segment(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                                const char *text, size_t len, int at_start,
                                struct lc_tok_ids *out, struct lc_error *err);

/* ---------------------------------------------------------------- round trip */

/* What decode(encode(text)) is by the round-trip rule of
 * lc_tokenizer_decode (lolcats.h) for a text without unknown tokens: the
 * text, with each U+2581 a space for tokenizers that write spaces so, and
 * one leading space less for those that prepend U+2581 only to a text
 * that does not start with one.  malloc'd (NUL after the *out_len bytes);
 * NULL when out of memory.  For the tests and fuzz checks of the rule. */
char *lc_tok_roundtrip_text(const struct lc_tokenizer *tok, const char *text, size_t len,
                            size_t *out_len);

#endif /* LC_CORE_TOKENIZER_H */
