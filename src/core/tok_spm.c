/*
 * SentencePiece tokenizer.model: a protobuf ModelProto, read by hand.
 *
 * Only the fields a BPE model needs are interpreted (numbers from
 * sentencepiece_model.proto); everything else is skipped by wire type.
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                   3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum)
 *   TrainerSpec     3 model_type (1 unigram [default], 2 bpe, ...),
 *                   24 treat_whitespace_as_suffix, 35 byte_fallback,
 *                   40 unk_id (0), 41 bos_id (1), 42 eos_id (2)
 *   NormalizerSpec  2 precompiled_charsmap, 3 add_dummy_prefix (true),
 *                   4 remove_extra_whitespaces, 5 escape_whitespaces (true)
 * Every read is bounds-checked against the enclosing message.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/tok_vocab.h"
#include "core/tokenizer.h"
#include "core/util.h"

#define SPM_MAX_FILE ((size_t)1 << 30)

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

struct pb {
    const uint8_t *base; /* start of the file, for offsets in messages */
    const uint8_t *p, *end;
};

static int pb_varint(struct pb *b, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t c;
        if (b->p >= b->end) {
            return 0;
        }
        c = *b->p++;
        x |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0; /* more than 10 bytes */
}

static int pb_key(struct pb *b, uint32_t *field, uint32_t *wire)
{
    uint64_t k;
    if (!pb_varint(b, &k) || (k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF) {
        return 0;
    }
    *field = (uint32_t)(k >> 3);
    *wire = (uint32_t)(k & 7);
    return 1;
}

static int pb_len(struct pb *b, struct pb *sub)
{
    uint64_t n;
    if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) {
        return 0;
    }
    sub->base = b->base;
    sub->p = b->p;
    sub->end = b->p + n;
    b->p += n;
    return 1;
}

static int pb_fixed32(struct pb *b, uint32_t *v)
{
    if (b->end - b->p < 4) {
        return 0;
    }
    *v = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 |
         (uint32_t)b->p[3] << 24;
    b->p += 4;
    return 1;
}

static int pb_skip(struct pb *b, uint32_t wire)
{
    uint64_t v;
    struct pb sub;
    switch (wire) {
    case WIRE_VARINT:
        return pb_varint(b, &v);
    case WIRE_I64:
        if (b->end - b->p < 8) {
            return 0;
        }
        b->p += 8;
        return 1;
    case WIRE_LEN:
        return pb_len(b, &sub);
    case WIRE_I32:
        if (b->end - b->p < 4) {
            return 0;
        }
        b->p += 4;
        return 1;
    default:
        return 0; /* groups (3, 4) and undefined types */
    }
}

static long pb_off(const struct pb *b)
{
    return (long)(b->p - b->base);
}

struct spm_spec {
    int64_t model_type;
    int byte_fallback;
    int suffix;
    int64_t unk_id, bos_id, eos_id;
    int add_dummy_prefix;
    int escape_whitespaces;
    size_t charsmap_len;
};

/* int32 fields: negative values are sign-extended 10-byte varints */
static int pb_int32(struct pb *b, int64_t *out)
{
    uint64_t v;
    if (!pb_varint(b, &v)) {
        return 0;
    }
    *out = (int64_t)(int32_t)(uint32_t)v;
    return 1;
}

static lc_status parse_trainer(struct pb *m, struct spm_spec *spec, const char *name,
                               struct lc_error *err)
{
    while (m->p < m->end) {
        uint32_t field, wire;
        uint64_t v = 0;
        int ok;
        if (!pb_key(m, &field, &wire)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: bad field key in trainer_spec at byte %ld",
                              name, pb_off(m));
        }
        if (wire == WIRE_VARINT && (field == 3 || field == 24 || field == 35)) {
            ok = pb_varint(m, &v);
            if (field == 3) {
                spec->model_type = (int64_t)v;
            } else if (field == 24) {
                spec->suffix = v != 0;
            } else {
                spec->byte_fallback = v != 0;
            }
        } else if (wire == WIRE_VARINT && field == 40) {
            ok = pb_int32(m, &spec->unk_id);
        } else if (wire == WIRE_VARINT && field == 41) {
            ok = pb_int32(m, &spec->bos_id);
        } else if (wire == WIRE_VARINT && field == 42) {
            ok = pb_int32(m, &spec->eos_id);
        } else {
            ok = pb_skip(m, wire);
        }
        if (!ok) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated trainer_spec field %u at byte %ld",
                              name, field, pb_off(m));
        }
    }
    return LC_OK;
}

static lc_status parse_normalizer(struct pb *m, struct spm_spec *spec, const char *name,
                                  struct lc_error *err)
{
    while (m->p < m->end) {
        uint32_t field, wire;
        uint64_t v = 0;
        struct pb sub;
        int ok;
        if (!pb_key(m, &field, &wire)) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: bad field key in normalizer_spec at byte %ld", name, pb_off(m));
        }
        if (wire == WIRE_LEN && field == 2) {
            ok = pb_len(m, &sub);
            spec->charsmap_len = ok ? (size_t)(sub.end - sub.p) : 0;
        } else if (wire == WIRE_VARINT && field == 3) {
            ok = pb_varint(m, &v);
            spec->add_dummy_prefix = v != 0;
        } else if (wire == WIRE_VARINT && field == 5) {
            ok = pb_varint(m, &v);
            spec->escape_whitespaces = v != 0;
        } else {
            ok = pb_skip(m, wire);
        }
        if (!ok) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: truncated normalizer_spec field %u at byte %ld", name, field,
                              pb_off(m));
        }
    }
    return LC_OK;
}

/* One SentencePiece message into token id. */
static lc_status parse_piece(struct lc_tokenizer *tok, struct pb *m, int32_t id, const char *name,
                             struct lc_error *err)
{
    const uint8_t *piece = NULL;
    size_t piece_len = 0;
    float score = 0.0f;
    uint64_t type = LC_TOKT_NORMAL;
    lc_status st;

    while (m->p < m->end) {
        uint32_t field, wire;
        struct pb sub;
        uint32_t bits;
        int ok;
        if (!pb_key(m, &field, &wire)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: bad field key in piece %ld at byte %ld",
                              name, (long)id, pb_off(m));
        }
        if (wire == WIRE_LEN && field == 1) {
            ok = pb_len(m, &sub);
            piece = sub.p;
            piece_len = (size_t)(sub.end - sub.p);
        } else if (wire == WIRE_I32 && field == 2) {
            ok = pb_fixed32(m, &bits);
            memcpy(&score, &bits, sizeof(score));
        } else if (wire == WIRE_VARINT && field == 3) {
            ok = pb_varint(m, &type);
        } else {
            ok = pb_skip(m, wire);
        }
        if (!ok) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated field %u of piece %ld at byte %ld",
                              name, field, (long)id, pb_off(m));
        }
    }
    if (piece == NULL || piece_len == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: piece %ld has no text", name, (long)id);
    }
    if (type < LC_TOKT_NORMAL || type > LC_TOKT_BYTE) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: piece %ld has unknown type %llu", name,
                          (long)id, (unsigned long long)type);
    }
    if (score != score) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: piece %ld has a NaN score", name, (long)id);
    }
    st = lc_tok_set_piece(tok, id, (const char *)piece, piece_len, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", name);
        return st;
    }
    tok->score[id] = score;
    tok->type[id] = (uint8_t)type;
    return LC_OK;
}

static lc_status check_special_id(int64_t id, int32_t n, const char *what, const char *name,
                                  int32_t *out, struct lc_error *err)
{
    if (id < 0) {
        *out = -1;
        return LC_OK;
    }
    if (id >= n) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %s %lld is not a piece (%ld pieces)", name,
                          what, (long long)id, (long)n);
    }
    *out = (int32_t)id;
    return LC_OK;
}

lc_status lc_tok_load_spm_buf(struct lc_tokenizer *tok, const char *name, const uint8_t *buf,
                              size_t len, struct lc_error *err)
{
    struct spm_spec spec = {.model_type = 1, /* proto default: unigram */
                            .unk_id = 0,
                            .bos_id = 1,
                            .eos_id = 2,
                            .add_dummy_prefix = 1,
                            .escape_whitespaces = 1};
    struct pb b = {buf, buf, buf + len};
    int64_t n_pieces = 0;
    int32_t id = 0;
    lc_status st;

    /* pass 1: count pieces, read the specs, check the framing */
    while (b.p < b.end) {
        uint32_t field, wire;
        struct pb sub;
        if (!pb_key(&b, &field, &wire)) {
            return lc_err_set(err, LC_ERR_FORMAT,
                              "%s: not a SentencePiece model (bad field key at byte %ld)", name,
                              pb_off(&b));
        }
        if (wire == WIRE_LEN && (field == 1 || field == 2 || field == 3)) {
            if (!pb_len(&b, &sub)) {
                return lc_err_set(err, LC_ERR_FORMAT, "%s: field %u at byte %ld runs past the end",
                                  name, field, pb_off(&b));
            }
            if (field == 1) {
                n_pieces++;
            } else if (field == 2) {
                st = parse_trainer(&sub, &spec, name, err);
                if (st != LC_OK) {
                    return st;
                }
            } else {
                st = parse_normalizer(&sub, &spec, name, err);
                if (st != LC_OK) {
                    return st;
                }
            }
        } else if (!pb_skip(&b, wire)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated field %u at byte %ld", name,
                              field, pb_off(&b));
        }
    }
    if (n_pieces == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: no pieces", name);
    }
    if (spec.model_type != 2) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: SentencePiece model type %lld is not BPE (2)", name,
                          (long long)spec.model_type);
    }
    if (spec.charsmap_len > 0) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: normalization rules (precompiled_charsmap) are not supported", name);
    }
    if (spec.suffix) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "%s: treat_whitespace_as_suffix is not supported", name);
    }
    st = lc_tok_init(tok, (int32_t)(n_pieces > INT32_MAX ? INT32_MAX : n_pieces), err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", name);
        return st;
    }

    /* pass 2: the pieces */
    b.p = buf;
    while (b.p < b.end) {
        uint32_t field, wire;
        struct pb sub;
        if (!pb_key(&b, &field, &wire)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: bad field key at byte %ld", name,
                              pb_off(&b));
        }
        if (wire == WIRE_LEN && field == 1) {
            if (!pb_len(&b, &sub)) {
                return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated piece", name);
            }
            st = parse_piece(tok, &sub, id++, name, err);
            if (st != LC_OK) {
                return st;
            }
        } else if (!pb_skip(&b, wire)) {
            return lc_err_set(err, LC_ERR_FORMAT, "%s: truncated field %u", name, field);
        }
    }

    tok->algo = LC_TOKA_SPM;
    tok->byte_fallback = spec.byte_fallback;
    /* remove_extra_whitespaces is not applied (llama.cpp and the Hugging
     * Face conversion do not apply it either): tokenizer.model, GGUF and
     * tokenizer.json give the same ids, and decode(encode(x)) == x. */
    tok->escape_spaces = spec.escape_whitespaces;
    tok->unescape = spec.escape_whitespaces;
    tok->prefix = spec.add_dummy_prefix ? LC_TOKP_SEGMENT : LC_TOKP_NONE;
    tok->strip_space = spec.add_dummy_prefix;
    /* Llama models are trained with BOS in front of every text */
    tok->wants_bos = 1;
    st = check_special_id(spec.unk_id, tok->n_vocab, "unk_id", name, &tok->unk, err);
    if (st == LC_OK) {
        st = check_special_id(spec.bos_id, tok->n_vocab, "bos_id", name, &tok->bos, err);
    }
    if (st == LC_OK) {
        st = check_special_id(spec.eos_id, tok->n_vocab, "eos_id", name, &tok->eos, err);
    }
    if (st != LC_OK) {
        return st;
    }
    if (tok->unk < 0 || tok->type[tok->unk] != LC_TOKT_UNKNOWN) {
        return lc_err_set(err, LC_ERR_FORMAT, "%s: unk_id %lld is not the unknown piece", name,
                          (long long)spec.unk_id);
    }
    /* control and unknown pieces are spelled in text only on request */
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (tok->type[i] == LC_TOKT_CONTROL || tok->type[i] == LC_TOKT_UNKNOWN) {
            struct lc_tok_added a = {i, 1, 0, 0};
            st = lc_tok_add_added(tok, &a, err);
            if (st != LC_OK) {
                return st;
            }
        }
    }
    st = lc_tok_finish(tok, err);
    if (st != LC_OK) {
        lc_err_prefix(err, "%s", name);
    }
    return st;
}

lc_status lc_tok_load_spm(struct lc_tokenizer *tok, const char *path, struct lc_error *err)
{
    char *data = NULL;
    size_t len = 0;
    lc_status st = lc_read_small_file(path, SPM_MAX_FILE, &data, &len, err);
    if (st != LC_OK) {
        return st;
    }
    st = lc_tok_load_spm_buf(tok, path, (const uint8_t *)data, len, err);
    free(data);
    return st;
}
