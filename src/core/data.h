/*
 * Internals of the data pipeline (src/core/data.c).
 *
 * Loading runs in three steps, each testable on its own:
 *  1. the container is detected from the content (plain text, a JSON
 *     array, JSON lines);
 *  2. records are parsed and checked one at a time and handed to a
 *     callback (lc_data_parse_records), or plain text is cut into its
 *     train and held-out parts (lc_data_text_cut);
 *  3. each part or record is tokenized through an encoder and appended to
 *     its split's stream.
 * The encoder is a small table so that the token layout (BOS, template,
 * labels, EOS) can be tested with a byte-level encoder, independently of
 * any real vocabulary; lc_dataset_load wraps a struct lc_tokenizer in it.
 */
#ifndef LC_CORE_DATA_H
#define LC_CORE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

/* labels value of a position the loss ignores (PyTorch's ignore_index) */
#define LC_LABEL_IGNORE (-100)

/* How many different token ids the data holds (0 when unknown). */
int64_t lc_dataset_distinct_tokens(const struct lc_dataset *ds);

enum lc_data_container {
    LC_CONTAINER_EMPTY = 0, /* no byte other than white space */
    LC_CONTAINER_TEXT = 1,
    LC_CONTAINER_ARRAY = 2, /* first non-space byte '[' */
    LC_CONTAINER_LINES = 3  /* first non-space byte '{' */
};

/* The container from the first byte that is not white space (a UTF-8
 * byte-order mark is ignored). */
enum lc_data_container lc_data_detect(const char *data, size_t len);

/*
 * Plain text: the offset where the held-out part begins, the first line
 * start (offset 0 or just after a '\n') at or after
 * floor((1 - val_fraction) * len).  0 <= val_fraction <= 1; 0 gives len
 * (nothing held out), 1 gives 0 (everything held out).
 */
size_t lc_data_text_cut(const char *data, size_t len, double val_fraction);

/*
 * The Alpaca prompt (Stanford Alpaca template, as the reference code's
 * PROMPT_DICT has it, ending in "### Response:\n"):
 *   with input:    HEAD_INPUT instruction MID_INPUT input TAIL
 *   without input: HEAD_NO_INPUT instruction TAIL
 */
#define LC_ALPACA_HEAD_INPUT                                                                      \
    "Below is an instruction that describes a task, paired with an input that provides further " \
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
#define LC_ALPACA_HEAD_NO_INPUT                                                                   \
    "Below is an instruction that describes a task. Write a response that appropriately "         \
    "completes the request.\n\n### Instruction:\n"
#define LC_ALPACA_MID_INPUT "\n\n### Input:\n"
#define LC_ALPACA_TAIL "\n\n### Response:\n"

/*
 * The prompt of an Alpaca record: the "with input" template iff input is
 * non-empty.  *out is malloc'd and NUL-terminated.
 */
lc_status lc_alpaca_prompt(const char *instruction, size_t instruction_len, const char *input,
                           size_t input_len, char **out, size_t *out_len);

/* a string field of a record (not NUL-terminated; may contain NUL) */
struct lc_data_str {
    const char *s;
    size_t len;
};

/* One usable record as the parser hands it on. */
struct lc_data_record {
    int64_t index;  /* 0-based position among the file's records, skipped ones included */
    int64_t line;   /* 1-based line where the record starts */
    enum lc_data_format kind; /* LC_DATA_ALPACA or LC_DATA_JSONL_TEXT */
    struct lc_data_str instruction, input, output; /* Alpaca (input may be empty) */
    struct lc_data_str text;                       /* {"text"} records */
};

typedef lc_status (*lc_data_record_fn)(const struct lc_data_record *rec, void *user,
                                       struct lc_error *err);

struct lc_data_parse_result {
    enum lc_data_format kind; /* of all records */
    int64_t records;          /* records read, skipped ones included */
    int64_t skipped;          /* records with nothing to learn (empty output or text) */
};

/*
 * Parses the records of a JSON array or JSON lines file (data, len) and
 * calls fn on each usable one, in file order.  kind is LC_DATA_AUTO (each
 * record's fields decide, and all records must agree), LC_DATA_ALPACA or
 * LC_DATA_JSONL_TEXT.  Records with an empty output (or empty text) are
 * skipped, counted, and logged.  Malformed JSON, a record that is not an
 * object, a missing or non-string field, and mixed kinds are
 * LC_ERR_FORMAT naming path and the line (and, in an array, the record);
 * so is a file without records or with none usable.  An error from fn
 * stops the parse and is returned as it is.
 */
lc_status lc_data_parse_records(const char *path, const char *data, size_t len,
                                enum lc_data_format kind, lc_data_record_fn fn, void *user,
                                struct lc_data_parse_result *res, struct lc_error *err);

/* What tokenization needs from a tokenizer. */
struct lc_data_encoder {
    /* len bytes of text -> *ids (malloc'd), without BOS or EOS */
    lc_status (*encode)(const void *ctx, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                        struct lc_error *err);
    const void *ctx;
    int32_t bos; /* prepended to every sample; -1: none */
    int32_t eos; /* appended to Alpaca and {"text"} samples; -1: none */
};

/* lc_dataset_load with the file already read into (data, len); path only
 * names it in messages. */
lc_status lc_dataset_build(struct lc_dataset **out, const char *path, const char *data,
                           size_t len, const struct lc_data_encoder *enc,
                           const struct lc_data_opts *opts, struct lc_error *err);

/* lc_dataset_load with an encoder of one's own. */
lc_status lc_dataset_load_with(struct lc_dataset **out, const char *path,
                               const struct lc_data_encoder *enc,
                               const struct lc_data_opts *opts, struct lc_error *err);

#endif /* LC_CORE_DATA_H */
