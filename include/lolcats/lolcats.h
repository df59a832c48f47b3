/*
 * lolcats: linearize Llama-family language models with LoLCATs
 * (learned linear-attention feature maps + a softmax window, trained by
 * attention transfer, then LoRA), and run the result with constant memory
 * per generated token.
 *
 * Conventions of this interface:
 *  - Functions that can fail return an lc_status (LC_OK = 0, errors < 0)
 *    and, when the caller passes a non-NULL struct lc_error, fill it with
 *    a message that names the file or argument at fault.
 *  - Objects come in open/close pairs; close(NULL) is a no-op.
 *  - The library never prints and never exits: it reports through status
 *    codes, the error struct and the log callback.
 */
#ifndef LOLCATS_LOLCATS_H
#define LOLCATS_LOLCATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define LC_API __attribute__((visibility("default")))
#else
#define LC_API
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */

typedef enum lc_status {
    LC_OK = 0,
    LC_ERR_NOMEM = -1,       /* out of memory (host or device) */
    LC_ERR_IO = -2,          /* a file could not be read or written */
    LC_ERR_FORMAT = -3,      /* a file's contents are malformed */
    LC_ERR_ARG = -4,         /* an invalid argument or option value */
    LC_ERR_BACKEND = -5,     /* the compute backend failed */
    LC_ERR_UNSUPPORTED = -6, /* valid input this build cannot handle */
    LC_ERR_INTERRUPTED = -7, /* stopped on request (e.g. SIGINT) */
    LC_ERR_NUMERIC = -8,     /* a NaN or infinity where none may be */
    LC_ERR_DIST = -9         /* communication between ranks failed */
} lc_status;

#define LC_ERROR_MSG_MAX 1024

struct lc_error {
    lc_status code;
    char msg[LC_ERROR_MSG_MAX];
};

/** A short fixed English description of a status code. */
LC_API const char *lc_status_str(lc_status status);

/** The package version, e.g. "0.1.0". */
LC_API const char *lc_version(void);

/* ------------------------------------------------------------------------ */
/* Element types of tensors in model files                                   */

enum lc_dtype {
    LC_DTYPE_F32 = 0,
    LC_DTYPE_F16 = 1,
    LC_DTYPE_BF16 = 2,
    LC_DTYPE_I32 = 3,
    LC_DTYPE_I64 = 4,
    LC_DTYPE_U8 = 5,
    LC_DTYPE_COUNT
};

/** Name as safetensors spells it ("F32", "BF16", ...). */
LC_API const char *lc_dtype_name(enum lc_dtype dtype);
/** Size of one element in bytes. */
LC_API size_t lc_dtype_size(enum lc_dtype dtype);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */

enum lc_log_level { LC_LOG_ERROR = 0, LC_LOG_WARN = 1, LC_LOG_INFO = 2, LC_LOG_DEBUG = 3 };

typedef void (*lc_log_fn)(enum lc_log_level level, const char *msg, void *user);

/** Install the process-wide log handler (NULL: discard). Not thread-safe. */
LC_API void lc_set_log_handler(lc_log_fn fn, void *user, enum lc_log_level max_level);

/* ------------------------------------------------------------------------ */
/* Threads and the CPU GEMM kernel                                           */

/** Number of threads for OpenMP and OpenBLAS (n <= 0: library default). */
LC_API void lc_set_num_threads(int n);
LC_API int lc_get_num_threads(void);

/**
 * Make OpenBLAS use its fastest kernels on this CPU.  OpenBLAS picks its
 * kernels when it is loaded, from OPENBLAS_CORETYPE or its own CPU probe,
 * and some builds misdetect AVX-512 CPUs as old ones.  When
 * OPENBLAS_CORETYPE is not set and the kernel in use is slower than what
 * the CPU supports, this sets OPENBLAS_CORETYPE and re-executes the
 * program (argv as given), so it must be called at the very start of main.
 * When OPENBLAS_CORETYPE is already set it is respected and nothing
 * happens.  Returns only when no re-execution was needed or it failed.
 */
LC_API void lc_blas_use_fast_kernels(int argc, char **argv);

/** The name of the OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...). */
LC_API const char *lc_blas_kernel_name(void);

/* ------------------------------------------------------------------------ */
/* Ranks: one process, or several started by an MPI launcher                 */

struct lc_dist;

/**
 * This process's place among the ranks of a job.  When the library was
 * built with MPI and an MPI launcher (mpirun, srun) started the program,
 * this initializes MPI (call it first thing in main, before any threads;
 * argc and argv may be NULL); otherwise the job is this process alone.  A
 * build without MPI refuses to run as one of several ranks.
 */
LC_API lc_status lc_dist_open(struct lc_dist **out, int *argc, char ***argv, struct lc_error *err);
/** Ends MPI when lc_dist_open started it. */
LC_API void lc_dist_close(struct lc_dist *d);
LC_API int lc_dist_rank(const struct lc_dist *d);
LC_API int lc_dist_size(const struct lc_dist *d);
/** This rank's number among the ranks of its host (0 ..). */
LC_API int lc_dist_local_rank(const struct lc_dist *d);
/** "Open MPI v4.1.4, 2 ranks on 1 host" or "one process". */
LC_API const char *lc_dist_describe(const struct lc_dist *d);
/** Stops every rank of the job at once with exit status code. */
LC_API void lc_dist_abort(struct lc_dist *d, int code);

/* ------------------------------------------------------------------------ */
/* Compute backends                                                          */

struct lc_backend;

/**
 * Open a compute backend by name: "cpu" (OpenBLAS + OpenMP + AVX-512),
 * "ref" (plain C reference kernels, slow, for tests) or "cuda" (when
 * built).  NULL or "" means "cpu".
 */
LC_API lc_status lc_backend_open(struct lc_backend **out, const char *name, struct lc_error *err);
LC_API void lc_backend_close(struct lc_backend *be);
LC_API const char *lc_backend_name(const struct lc_backend *be);
/** One line on what the backend runs (kernels, threads, device). */
LC_API const char *lc_backend_describe(struct lc_backend *be);
/** Names of the backends built into this library, NULL-terminated. */
LC_API const char *const *lc_backend_list(void);

/* ------------------------------------------------------------------------ */
/* Model configuration (Hugging Face config.json or GGUF metadata)          */

enum lc_rope_type {
    LC_ROPE_DEFAULT = 0, /* inv_freq[i] = theta^(-2i/D) */
    LC_ROPE_LLAMA3 = 1,  /* Llama 3.1 frequency scaling (rope_scaling.rope_type "llama3") */
    LC_ROPE_FACTORS = 2  /* inv_freq[i] divided by factor i of the model file's
                          * rope_freqs.weight (Llama 3.1 scaling as GGUF stores it) */
};

struct lc_model_config {
    char arch[32];               /* "llama" or "mistral" */
    int vocab_size;              /* V */
    int hidden_size;             /* C */
    int intermediate_size;       /* FFN width */
    int n_layers;                /* L */
    int n_heads;                 /* H */
    int n_kv_heads;              /* Hkv (grouped-query attention) */
    int head_dim;                /* D */
    int max_position_embeddings; /* informational */
    float rms_norm_eps;
    double rope_theta;
    int rope_type;               /* enum lc_rope_type */
    double rope_factor;          /* llama3 scaling: factor, low/high-frequency factors, */
    double rope_low_freq_factor; /* original context length */
    double rope_high_freq_factor;
    int rope_original_max_pos;
    int tie_word_embeddings;     /* lm_head shares the embedding matrix */
    int bos_token_id;            /* -1 when unknown */
    int eos_token_id;            /* -1 when unknown */
};

/* ------------------------------------------------------------------------ */
/* Tokenizers                                                                */

struct lc_tokenizer;

/* lc_tokenizer_encode flags */
#define LC_TOK_ADD_BOS 1u       /* prepend BOS (when the vocabulary has one) */
#define LC_TOK_PARSE_SPECIAL 2u /* turn special-token text ("<s>", "<|eot_id|>") into their ids */

/**
 * Open a tokenizer.  PATH is one of: a model folder (uses tokenizer.json,
 * else tokenizer.model, else encoder.json + vocab.bpe), a tokenizer.json,
 * a SentencePiece tokenizer.model, or a .gguf file with an embedded
 * vocabulary.
 */
LC_API lc_status lc_tokenizer_open(struct lc_tokenizer **out, const char *path,
                                   struct lc_error *err);
LC_API void lc_tokenizer_close(struct lc_tokenizer *tok);
LC_API int lc_tokenizer_vocab_size(const struct lc_tokenizer *tok);
LC_API int32_t lc_tokenizer_bos(const struct lc_tokenizer *tok); /* -1: none */
LC_API int32_t lc_tokenizer_eos(const struct lc_tokenizer *tok); /* -1: none */
/** Whether the model expects BOS in front of a text (tokenizer config). */
LC_API int lc_tokenizer_wants_bos(const struct lc_tokenizer *tok);
/**
 * Encode len bytes of UTF-8 text.  *ids is malloc'd (free() it).  Invalid
 * UTF-8 is neither dropped nor a crash: each invalid byte is encoded as
 * its byte token (SentencePiece byte fallback) or byte-level symbol.
 */
LC_API lc_status lc_tokenizer_encode(const struct lc_tokenizer *tok, const char *text, size_t len,
                                     unsigned flags, int32_t **ids, size_t *n_ids,
                                     struct lc_error *err);
/**
 * Decode ids to bytes (*text malloc'd and NUL-terminated; *len excludes the
 * NUL).  BOS/EOS produce no text.
 *
 * decode(encode(x)) == x for every byte string x (encoded without
 * LC_TOK_PARSE_SPECIAL), except where the tokenizer's format cannot
 * represent x:
 *  - tokenizers that write spaces as U+2581 "▁" (SentencePiece; a
 *    tokenizer.json Metaspace pre-tokenizer or space-replacing normalizer)
 *    decode every U+2581 of x as a space;
 *  - those that prepend "▁" only to a text that does not start with one
 *    (Metaspace prepend_scheme "first" or "always") encode " " + y and y
 *    alike, so a leading space of x is dropped (after the rule above);
 *  - a character the vocabulary can spell neither as a piece nor as byte
 *    pieces becomes the unknown token, which decodes to nothing (the
 *    Llama vocabularies have all 256 byte pieces).
 * transformers decodes the same way, and so does llama.cpp for a GGUF
 * vocabulary and for Llama 3's byte-level BPE, except on invalid UTF-8,
 * where its tokens or decode can change the text and lolcats' do not
 * (lolcats(7)).
 */
LC_API lc_status lc_tokenizer_decode(const struct lc_tokenizer *tok, const int32_t *ids,
                                     size_t n_ids, char **text, size_t *len,
                                     struct lc_error *err);
/**
 * Streaming decode: the bytes token id adds after the tokens before it
 * (prev = the previous id, -1 at the start).  Concatenating the outputs
 * over a sequence gives lc_tokenizer_decode of it.  Returns the byte
 * count (may exceed cap; then only cap bytes were written).
 */
LC_API size_t lc_tokenizer_decode_next(const struct lc_tokenizer *tok, int32_t prev, int32_t id,
                                       char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */

struct lc_model;

/**
 * Load a Llama-family model: a Hugging Face folder (config.json +
 * model.safetensors, sharded or not) or a GGUF file (F32/F16/BF16).  The
 * backend must outlive the model.
 */
LC_API lc_status lc_model_open(struct lc_model **out, const char *path, struct lc_backend *be,
                               struct lc_error *err);
LC_API void lc_model_close(struct lc_model *m);
LC_API const struct lc_model_config *lc_model_get_config(const struct lc_model *m);
/** "safetensors" or "gguf" */
LC_API const char *lc_model_format(const struct lc_model *m);
/**
 * Bytes of weights the model reads in place from its memory-mapped files
 * (0 when the backend holds copies of them, e.g. cuda).  The operating
 * system reads them from disk when they are first used, unless
 * lc_model_page_in did it before.
 */
LC_API int64_t lc_model_mapped_bytes(const struct lc_model *m);
/**
 * Read the mapped weights into memory now (readahead, then one read per
 * page), so that the first computation does not wait for the disk.
 * progress (nullable) gets bytes done and lc_model_mapped_bytes; returning
 * non-zero from it stops with LC_ERR_INTERRUPTED.
 */
LC_API lc_status lc_model_page_in(struct lc_model *m, int (*progress)(int64_t done, int64_t total,
                                                                      void *user),
                                  void *user, struct lc_error *err);
/** Memory available for new allocations without swapping, in bytes (Linux
 * MemAvailable); -1 when the system does not say. */
LC_API int64_t lc_memory_available(void);

/**
 * Logits of B sequences of T tokens (positions 0..T-1 each):
 * logits [B*T, V] host memory.
 */
LC_API lc_status lc_model_logits(struct lc_model *m, const int32_t *ids, int B, int T,
                                 float *logits, struct lc_error *err);
/**
 * Negative log-likelihood of targets[i] after ids[0..i] (within each of
 * the B sequences): nll [B*T]; targets < 0 are ignored (NLL 0).
 */
LC_API lc_status lc_model_nll(struct lc_model *m, const int32_t *ids, const int32_t *targets,
                              int B, int T, float *nll, struct lc_error *err);

/* ------------------------------------------------------------------------ */
/* Perplexity                                                                */

struct lc_ppl_result {
    int64_t n_tokens;    /* tokens in the stream */
    int64_t n_windows;   /* windows evaluated */
    int64_t n_predicted; /* tokens scored */
    double mean_nll;     /* nats per scored token */
    double ppl;          /* exp(mean_nll) */
};

/* progress callback: done and total windows; return non-zero to stop */
typedef int (*lc_progress_fn)(int64_t done, int64_t total, void *user);

/**
 * Perplexity of a token stream: cut into consecutive non-overlapping
 * windows of `context` tokens (a final window counts when it has >= 2
 * tokens); in each window every token after the first is predicted from
 * its prefix inside the window; ppl = exp(mean NLL).
 */
LC_API lc_status lc_model_perplexity(struct lc_model *m, const int32_t *ids, int64_t n_ids,
                                     int context, lc_progress_fn progress, void *user,
                                     struct lc_ppl_result *res, struct lc_error *err);

/* ------------------------------------------------------------------------ */
/* Multiple-choice benchmarks (as lm-evaluation-harness scores them)         */

/*
 * A task is a list of items; each item has n_choices requests, each a
 * context and a continuation, and a gold choice.  A choice is scored by
 * the log-likelihood of its continuation given its context; acc takes the
 * argmax of the log-likelihoods, acc_norm the argmax of log-likelihood /
 * norm_chars (the length in characters of the choice text without the
 * space that joins it to the context), acc_bytes the same per UTF-8 byte
 * (norm_bytes): lm-evaluation-harness's three accuracies.  lolcats-eval(1)
 * gives every task's prompt.
 */
struct lc_mc_task;

/**
 * Load a task.  name: "piqa", "arc-easy", "arc-challenge", "hellaswag",
 * "winogrande" (path: the task's file, or a folder holding piqa/valid.jsonl,
 * arc/ARC-Easy-test.jsonl, arc/ARC-Challenge-test.jsonl,
 * hellaswag/hellaswag_val_full.txt.bz2, winogrande/winogrande.jsonl,
 * directly or under eval/), or "jsonl" (path: a file of
 * {"context", "choices", "gold"} lines).  A bad file is LC_ERR_FORMAT
 * naming the file and line; an unknown name LC_ERR_ARG.
 */
LC_API lc_status lc_mc_task_load(struct lc_mc_task **out, const char *name, const char *path,
                                 struct lc_error *err);
LC_API void lc_mc_task_free(struct lc_mc_task *t);
/** The name it was loaded with. */
LC_API const char *lc_mc_task_name(const struct lc_mc_task *t);
/** The file the items came from. */
LC_API const char *lc_mc_task_path(const struct lc_mc_task *t);
LC_API int64_t lc_mc_task_size(const struct lc_mc_task *t);
/** 0 when the task reports acc only (winogrande: all continuations are
 * the same text, so acc_norm equals acc). */
LC_API int lc_mc_task_has_acc_norm(const struct lc_mc_task *t);
/** Choices of the first n_items items together (the size of the
 * log-likelihood array of lc_mc_evaluate). */
LC_API int64_t lc_mc_task_choices(const struct lc_mc_task *t, int64_t n_items);

/* One item, pointing into the task (valid until lc_mc_task_free). */
struct lc_mc_item {
    int n_choices;
    int gold;                         /* 0 .. n_choices-1 */
    int64_t line;                     /* line of the item in its file (from 1) */
    const char *const *contexts;      /* [n_choices] */
    const char *const *continuations; /* [n_choices], with their leading space */
    const size_t *norm_chars;         /* [n_choices] the acc_norm divisor: characters */
    const size_t *norm_bytes;         /* [n_choices] the acc_bytes divisor: UTF-8 bytes */
};
LC_API lc_status lc_mc_task_item(const struct lc_mc_task *t, int64_t i, struct lc_mc_item *item,
                                 struct lc_error *err);

struct lc_mc_opts {
    int shots;         /* few-shot examples before each item; default 0 */
    uint64_t seed;     /* draw of the few-shot examples; default 1234 */
    int64_t limit;     /* score the first `limit` items; <= 0 (default): all */
    int context;       /* tokens per request at most (cut from the left);
                        * <= 0 (default): the model's max_position_embeddings,
                        * 2048 for a model that does not say */
    int batch_tokens;  /* token rows per forward pass; default 2048 */
};
LC_API void lc_mc_opts_default(struct lc_mc_opts *o);

/**
 * The text of choice `choice` of item `item`: the few-shot examples (each
 * the example's gold context + gold continuation, followed by "\n\n"), then
 * the item's context; trailing whitespace of the context is moved to the
 * front of the continuation, as the harness does.  *context and
 * *continuation are malloc'd (free() them).
 */
LC_API lc_status lc_mc_prompt(const struct lc_mc_task *t, int64_t item, int choice,
                              const struct lc_mc_opts *o, char **context, char **continuation,
                              struct lc_error *err);

/**
 * The tokens of a request: whole = encode(context + continuation) and
 * ctx = encode(context) (both with BOS when the tokenizer wants it); the
 * continuation tokens are whole[len(ctx):] and *ids = ctx + those (an
 * empty ctx becomes [BOS or EOS]).  When o->context > 0 and there are more
 * than o->context + 1 tokens, the oldest are dropped.  The last *n_cont
 * ids are scored, each predicted from the ids before it.  *ids malloc'd.
 */
LC_API lc_status lc_mc_request(const struct lc_mc_task *t, const struct lc_tokenizer *tok,
                               int64_t item, int choice, const struct lc_mc_opts *o,
                               int32_t **ids, int *n_ids, int *n_cont, struct lc_error *err);

struct lc_mc_result {
    int64_t n_items;         /* items scored */
    int64_t n_requests;      /* choices scored */
    int64_t n_truncated;     /* requests cut to the context length */
    int context;             /* that length (lc_mc_opts.context or its default;
                              * 0 from lc_mc_accuracy) */
    double acc, acc_stderr;  /* stderr: sqrt(p (1 - p) / (n - 1)) */
    double acc_norm, acc_norm_stderr;   /* per character */
    double acc_bytes, acc_bytes_stderr; /* per byte */
    int has_acc_norm;        /* 0: acc_norm and acc_bytes are acc */
};

/**
 * Accuracies from the log-likelihoods of the first n_items items
 * (loglik[lc_mc_task_choices(t, n_items)], item after item); ties go to
 * the first choice.
 */
LC_API lc_status lc_mc_accuracy(const struct lc_mc_task *t, int64_t n_items, const double *loglik,
                                struct lc_mc_result *res, struct lc_error *err);

/**
 * Score a task: every request through lc_model_nll (requests of a few
 * items sorted by length and batched), then the accuracies.  loglik
 * (nullable) receives the log-likelihood of every choice, item after
 * item.  progress counts items.
 */
LC_API lc_status lc_mc_evaluate(struct lc_model *m, const struct lc_tokenizer *tok,
                                const struct lc_mc_task *t, const struct lc_mc_opts *o,
                                lc_progress_fn progress, void *user, double *loglik,
                                struct lc_mc_result *res, struct lc_error *err);

/* ------------------------------------------------------------------------ */
/* Incremental decoding                                                      */

struct lc_session;

/** A decoding state for one sequence of up to max_tokens tokens. */
LC_API lc_status lc_session_new(struct lc_session **out, struct lc_model *m, int max_tokens,
                                struct lc_error *err);
LC_API void lc_session_free(struct lc_session *s);
/** Tokens consumed so far. */
LC_API int lc_session_length(const struct lc_session *s);
/**
 * Feed n tokens; logits (host [V], nullable) receives the logits after the
 * last of them.
 */
LC_API lc_status lc_session_feed(struct lc_session *s, const int32_t *ids, int n, float *logits,
                                 struct lc_error *err);
/** Bytes of decoding state it holds now (caches, linear states). */
LC_API size_t lc_session_state_bytes(const struct lc_session *s);

/* ------------------------------------------------------------------------ */
/* Data: text and instruction files, tokenized, split, packed               */

enum lc_data_format {
    LC_DATA_AUTO = 0,   /* from the content: JSON array/JSONL records, else plain text */
    LC_DATA_TEXT = 1,   /* plain text */
    LC_DATA_JSONL_TEXT = 2, /* JSON lines (or a JSON array) of {"text": ...} */
    LC_DATA_ALPACA = 3  /* JSON array or JSON lines of {"instruction", "input", "output"} */
};

enum lc_data_split { LC_SPLIT_TRAIN = 0, LC_SPLIT_VAL = 1, LC_SPLIT_ALL = 2 };

struct lc_data_opts {
    enum lc_data_format format;
    /* plain text: the held-out part is the last val_fraction of the file's
     * bytes, starting at a line start; records: the first val_records
     * records are held out (the reference code holds out rows 0-199) */
    double val_fraction;   /* default 0.1 */
    int64_t val_records;   /* default 200 */
};

/** Defaults: LC_DATA_AUTO, val_fraction 0.1, val_records 200. */
LC_API void lc_data_opts_default(struct lc_data_opts *o);

/**
 * Read the whole of PATH into *data (malloc'd, with a NUL after the last
 * byte that *len does not count; free() it).  A gzip file is decompressed
 * (a plain file is read unchanged); a truncated or corrupt gzip stream is
 * LC_ERR_FORMAT, an unreadable file LC_ERR_IO, both naming PATH.
 */
LC_API lc_status lc_read_text_file(const char *path, char **data, size_t *len,
                                   struct lc_error *err);

struct lc_dataset;

/**
 * Read and tokenize a data file (any format above; gzip-compressed files
 * are read transparently).  Text: each split is one token stream with BOS
 * prepended once, and LC_SPLIT_ALL is the whole text as one such stream.  Alpaca: each record becomes BOS + prompt (Alpaca
 * template; labels ignored) + output + EOS (labels = ids), as the method
 * doc section 4.3 describes.  {"text"} records: BOS + text + EOS, all
 * labeled.  Bad records are an error naming the file and line, except
 * where skipping is the sensible choice (counted in the stats).
 */
LC_API lc_status lc_dataset_load(struct lc_dataset **out, const char *path,
                                 const struct lc_tokenizer *tok, const struct lc_data_opts *opts,
                                 struct lc_error *err);
LC_API void lc_dataset_free(struct lc_dataset *ds);

struct lc_data_stats {
    enum lc_data_format format; /* as detected */
    int64_t records;            /* records read (text: 1) */
    int64_t skipped;            /* records skipped, with the reason logged */
    int64_t train_tokens;
    int64_t val_tokens;
};
LC_API void lc_dataset_stats(const struct lc_dataset *ds, struct lc_data_stats *st);

/**
 * The token stream of a split: the concatenation of its samples in file
 * order.  labels[i] is the token the model is trained to produce AT
 * position i (= ids[i]) or -100 when position i is a prompt token.
 * Pointers stay valid until lc_dataset_free.
 */
LC_API lc_status lc_dataset_stream(const struct lc_dataset *ds, enum lc_data_split split,
                                   const int32_t **ids, const int32_t **labels, int64_t *n);

/**
 * Pack a split into consecutive chunks of seq_len tokens (the remainder
 * shorter than seq_len is dropped; chunks whose labels are all -100 are
 * dropped).  Returns malloc'd arrays [n_chunks * seq_len] (free them).
 */
LC_API lc_status lc_dataset_pack(const struct lc_dataset *ds, enum lc_data_split split,
                                 int seq_len, int32_t **ids, int32_t **labels,
                                 int64_t *n_chunks, struct lc_error *err);

/**
 * A deterministic permutation of 0..n-1 for epoch `epoch` from `seed`
 * (the same on every machine and thread count).
 */
LC_API void lc_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                  */

/**
 * Pick the next token from logits [V]: temperature 0 is greedy (the first
 * maximum); otherwise softmax(logits / temperature) restricted to the
 * smallest set of most likely tokens whose probability reaches top_p
 * (1 = no restriction).  rng_state is advanced (seed it with any value).
 */
LC_API int32_t lc_sample_token(const float *logits, int V, float temperature, float top_p,
                               uint64_t *rng_state);

/* How the keys of a query are split between the softmax window and the
 * linear-attention part of the hybrid attention. */
enum lc_window_mode {
    /* blocks of W tokens aligned to the sequence start: a query sees its
     * own block (causally) and the whole previous block by softmax, all
     * older blocks by linear attention */
    LC_WINDOW_TERRACED = 0,
    /* exactly the W most recent keys (including the query's own) by
     * softmax, all older keys by linear attention */
    LC_WINDOW_SLIDING = 1
};

/* ------------------------------------------------------------------------ */
/* Training: attention transfer (stage 1) and LoRA finetuning (stage 2)     */

enum lc_train_stage {
    LC_STAGE_TRANSFER = 1, /* train feature maps and window factors to mimic softmax attention */
    LC_STAGE_FINETUNE = 2, /* train LoRA adapters with next-token cross-entropy */
    LC_STAGE_ALL = 3,      /* both, stage 2 starting from stage 1's best weights */
    LC_STAGE_LORA_ONLY = 4 /* the yardstick of stage 2: the same LoRA training on the original
                            * model, softmax attention kept */
};

/* Learning-rate schedules of a stage (each after the optional warm-up) */
enum lc_lr_schedule {
    LC_LR_PLATEAU = 0,  /* ReduceLROnPlateau on the validation loss (the reference recipe) */
    LC_LR_COSINE = 1,   /* cosine decay from the stage's rate to min_lr over its steps */
    LC_LR_CONSTANT = 2  /* the stage's rate throughout */
};

/* LoRA target bits */
#define LC_LORA_Q 1u
#define LC_LORA_K 2u
#define LC_LORA_V 4u
#define LC_LORA_O 8u

struct lc_train_opts {
    int stage;              /* enum lc_train_stage; default LC_STAGE_ALL */
    const char *out_dir;    /* checkpoints and outputs */
    int seq_len;            /* tokens per chunk; default min(1024, model context) */
    int batch_size;         /* chunks per micro-batch; default 1 */
    int grad_accum;         /* micro-batches per optimizer step; default 8 */
    int64_t max_steps;      /* optimizer steps per stage; 0: none (evaluate the
                             * starting point only); < 0 (default): `epochs` epochs */
    int epochs;             /* default 2 */
    int eval_every;         /* optimizer steps between evaluations; default 100 */
    int64_t val_size;       /* validation chunks per evaluation; 0 = all; default 0 */
    uint64_t seed;          /* data order and LoRA init; default 0 */
    int resume;             /* continue from the training state in out_dir */
    const char *metrics_path; /* JSON lines of metrics, or NULL */
    /* stage 1 */
    double lr;              /* default 1e-2 */
    int feature_dim;        /* f; default 64 */
    int window;             /* W; default 64 */
    int window_mode;        /* enum lc_window_mode; default terraced */
    const int *softmax_layers; /* layers that keep softmax attention (a hybrid model): */
    int n_softmax_layers;      /* no feature maps, no transfer loss; default none */
    double mse_weight;      /* default 1000 */
    double xent_weight;     /* default 0 */
    /* stage 2 */
    double lora_lr;         /* default 1e-4 */
    int lora_rank;          /* default 8 */
    double lora_alpha;      /* default 16 */
    double lora_dropout;    /* default 0 */
    unsigned lora_targets;  /* LC_LORA_* bits; default q, k, v, o */
    int train_feature_maps; /* also train feature maps and window factors in stage 2; default 1
                             * (stage 1's are kept in out_dir/LC_TRANSFER_MAPS_FILE) */
    double feature_map_lr;  /* their learning rate in stage 2; default 1e-2; 0: lora_lr */
    int recompute;          /* stage 2: recompute layer activations in the backward */
    int skip_transfer;      /* stage 2 without stage 1 (the paper's "no attention transfer" baseline):
                             * untrained feature maps, trained jointly with LoRA */
    int merge;              /* stage 2: also write out_dir/merged, a plain Hugging Face model with
                             * the adapters folded into the weights */
    int compare_lora;       /* after the other stages, also the lora-only stage (the same LoRA on
                             * the original model) into out_dir/lora-only */
    /* optimizer and schedule */
    double weight_decay;    /* default 0 */
    double plateau_factor;  /* ReduceLROnPlateau factor; default 0.1 */
    int plateau_patience;   /* default 10 */
    double min_lr;          /* default 1e-5 */
    /* ranks (see lolcats-train(1), DISTRIBUTED) */
    struct lc_dist *dist;   /* the job's ranks (lc_dist_open); NULL: this process alone */
    int pipeline_stages;    /* stage 1: pipeline stages across the ranks (each a contiguous
                             * block of layers; the ranks of a stage split its micro-batches);
                             * 0 (default): as many as the ranks allow */
    /* block-wise attention transfer (method doc section 6) */
    int block_layers;       /* > 0: stage 1 trains blocks of this many layers independently,
                             * each from cached hidden states at its first layer; 0 (default):
                             * all layers together */
    const char *cache_dir;  /* the cached hidden states; NULL: OUT/hidden_states */
    int64_t cache_shard_chunks; /* chunks per cache file; 0 (default): about 64 MiB each */
    int64_t max_memory;     /* bytes a rank may use; 0 (default): what its host has free.
                             * Training refuses to start when the memory plan exceeds it */
    int lr_schedule;        /* enum lc_lr_schedule of stage 1; default plateau */
    int lora_lr_schedule;   /* enum lc_lr_schedule of stage 2 (and lora-only); default plateau */
    int64_t warmup_steps;   /* linear warm-up from lr/warmup_steps, stage 1; default 0 */
    int64_t lora_warmup_steps; /* the same for stage 2 (and lora-only); default 0 */
};

/** Defaults as the LoLCATs reference recipe (method doc sections 4-5). */
LC_API void lc_train_opts_default(struct lc_train_opts *o);

/* What the trainer reports while it runs. */
enum lc_train_event_kind {
    LC_EV_START = 0,  /* a stage starts: total_steps, tokens_per_step set */
    LC_EV_STEP = 1,   /* after an optimizer step: loss, lr, tokens_per_s */
    LC_EV_EVAL = 2,   /* after an evaluation: val_loss, improved, layer_mse */
    LC_EV_END = 3,    /* a stage ends: best_val_loss */
    LC_EV_PROGRESS = 4, /* inside an optimizer step or an evaluation, after each layer of
                         * each micro-batch: phase, done, total */
    LC_EV_MEMORY = 5, /* stage 2 is about to allocate: act_bytes, act_bytes_recompute,
                       * optimizer_bytes, weight_bytes, mem_available */
    LC_EV_CACHE = 6   /* block-wise stage 1: hidden states cached for step of total_steps
                       * chunks */
};

/* LC_EV_PROGRESS phases */
enum lc_train_phase {
    LC_PHASE_TRAIN = 0, /* the micro-batches of an optimizer step */
    LC_PHASE_EVAL = 1   /* the held-out chunks of an evaluation */
};

struct lc_train_event {
    int kind;                /* enum lc_train_event_kind */
    int stage;               /* LC_STAGE_TRANSFER or LC_STAGE_FINETUNE */
    int64_t step;            /* optimizer steps done in this stage */
    int64_t total_steps;
    int64_t epoch;
    int64_t tokens_per_step;
    double loss;             /* training loss of the last step */
    double lr;
    double tokens_per_s;
    double val_loss;
    double best_val_loss;
    int improved;            /* the evaluation improved on the best so far */
    int n_layers;
    const double *layer_mse; /* stage 1 evaluations: validation MSE per layer */
    int64_t act_bytes;       /* stage 2: backend bytes of the activations, gradients and */
    int64_t act_bytes_recompute; /* working buffers of a micro-batch, without and with
                              * recompute (the allocation that fails when memory is short) */
    int phase;               /* enum lc_train_phase */
    int64_t done;            /* micro-batches of the phase finished */
    int64_t total;           /* micro-batches of the phase */
    int layer;               /* layer passes of the current micro-batch finished */
    int layers;              /* layer passes of a micro-batch */
    int64_t optimizer_bytes; /* stage 2: AdamW moments and best-weight copies */
    int64_t weight_bytes;    /* lc_model_mapped_bytes */
    int64_t mem_available;   /* lc_memory_available() just before stage 2 allocates */
    int64_t plan_bytes;      /* LC_EV_START: the memory plan's peak for this rank */
    int block;               /* block-wise stage 1: the block (0 ..), else -1 */
    int n_blocks;
    int first_layer;         /* the block's layers [first_layer, end_layer) */
    int end_layer;
};

/* Return non-zero to stop: the trainer stops within the layer being
 * computed (an unfinished step or evaluation is dropped and done again on
 * resume), saves its state and returns LC_ERR_INTERRUPTED; before the
 * first evaluation of a stage has ended there is nothing to save. */
typedef int (*lc_train_fn)(const struct lc_train_event *ev, void *user);

/**
 * The checks lc_train makes of its options against the model before it
 * reads any data: LC_ERR_ARG with a message saying what to change.  Among
 * them: stage 1 needs chunks long enough for the linear attention to get
 * keys (seq_len > 2 window when terraced, > window when sliding).
 */
LC_API lc_status lc_train_check(const struct lc_model *m, const struct lc_train_opts *o,
                                struct lc_error *err);

/**
 * Linearize model m on the dataset.  Writes into out_dir:
 * feature_maps.safetensors (stage 1), adapter_model.safetensors +
 * adapter_config.json (stage 2), lolcats_config.json, and the resumable
 * training state.  Every file is written atomically.
 */
LC_API lc_status lc_train(struct lc_model *m, const struct lc_dataset *ds,
                          const struct lc_train_opts *o, lc_train_fn on_event, void *user,
                          struct lc_error *err);

/* ------------------------------------------------------------------------ */
/* Memory planning                                                           */

/**
 * The memory plan of lc_train with options o on `ranks` ranks: per rank
 * and stage the mapped weights, the activations (with and without
 * recompute), the parameters with gradients and optimizer state, and the
 * cached hidden states on disk.  It needs only the model's configuration
 * and tensor table (model_path: a Hugging Face folder, with or without its
 * weights, a config.json, or a GGUF file).  ds (nullable) gives the data's
 * size.  *text: the report (malloc'd); *peak (nullable): the largest
 * rank's bytes.
 */
LC_API lc_status lc_plan_text(char **text, int64_t *peak, const char *model_path,
                              const struct lc_dataset *ds, const struct lc_train_opts *o,
                              int ranks, struct lc_error *err);
/** The largest resident memory of this process so far, in bytes (0 unknown). */
LC_API int64_t lc_memory_peak(void);

/**
 * Attach a linearized attention (and LoRA adapter, when present) from a
 * lolcats output folder: the model then runs the hybrid attention instead
 * of softmax attention.
 */
LC_API lc_status lc_model_load_lolcats(struct lc_model *m, const char *dir, struct lc_error *err);
/** Where stage 2, when it trains the feature maps further, keeps those of stage 1. */
#define LC_TRANSFER_MAPS_FILE "transfer_feature_maps.safetensors"
/**
 * Replace the feature maps and window factors of a model linearized by
 * lc_model_load_lolcats with those of the file `path` (of the same shapes),
 * e.g. stage 1's (LC_TRANSFER_MAPS_FILE in the folder), with the adapter off,
 * to see attention transfer alone.  On failure the model is unchanged.
 */
LC_API lc_status lc_model_load_feature_maps(struct lc_model *m, const char *path,
                                            struct lc_error *err);
/** Back to the original softmax attention (teacher). */
LC_API void lc_model_use_teacher(struct lc_model *m, int use_teacher);
/** Whether lc_model_load_lolcats found a LoRA adapter. */
LC_API int lc_model_has_adapter(const struct lc_model *m);
/**
 * Use the loaded LoRA adapter (default) or not, e.g. to compare the
 * linearized model after attention transfer alone with the finetuned one.
 */
LC_API void lc_model_use_adapter(struct lc_model *m, int use_adapter);

#ifdef __cplusplus
}
#endif

#endif /* LOLCATS_LOLCATS_H */
