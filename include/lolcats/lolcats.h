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
    LC_ERR_NUMERIC = -8      /* a NaN or infinity where none may be */
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
    LC_ROPE_LLAMA3 = 1   /* Llama 3.1 frequency scaling (rope_scaling.rope_type "llama3") */
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
 * NUL).  BOS/EOS produce no text.  decode(encode(x)) == x.
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

#ifdef __cplusplus
}
#endif

#endif /* LOLCATS_LOLCATS_H */
