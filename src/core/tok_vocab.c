/*
 * What the tokenizer loaders build and the encoders read: the vocabulary
 * tables (pieces, spelling index, merges, added tokens), the compiled
 * pre-tokenizer regexes, UTF-8 and byte-level conversions, and the id list an
 * encode grows.  The loaders (tok_spm.c, tok_hf.c, tok_gguf.c) and the
 * encoder (tok_bpe.c) sit on top of this file, the dispatcher
 * (tokenizer.c) on top of them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/tok_vocab.h"
#include "core/tokenizer.h"
#include "core/util.h"

/* the most tokens a vocabulary may have */
#define TOK_MAX_VOCAB (1 << 24)

/* ---------------------------------------------------------------- UTF-8 and byte-level */

size_t lc_tok_utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len;
    uint32_t min;

    if (n == 0) {
        return 0;
    }
    c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        c &= 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        c &= 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    /* overlong forms, surrogates and code points past U+10FFFF are invalid */
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return len;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's byte-level alphabet: the printable bytes '!'..'~', 0xA1..0xAC and
 * 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing
 * order, become U+0100, U+0101, ... so that every byte is a visible
 * character in the vocabulary files. */
static int byte_is_self(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t lc_tok_byte_to_cp(uint8_t b)
{
    unsigned n = 0;
    if (byte_is_self(b)) {
        return b;
    }
    for (unsigned i = 0; i < b; i++) {
        n += !byte_is_self(i);
    }
    return 256 + n;
}

int lc_tok_cp_to_byte(uint32_t cp)
{
    unsigned n = 0;
    if (cp < 256) {
        return byte_is_self(cp) ? (int)cp : -1;
    }
    for (unsigned b = 0; b < 256; b++) {
        if (!byte_is_self(b)) {
            if (256 + n == cp) {
                return (int)b;
            }
            n++;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- vocabulary tables */

lc_status lc_tok_init(struct lc_tokenizer *tok, int32_t n, struct lc_error *err)
{
    if (n <= 0 || n > TOK_MAX_VOCAB) {
        return lc_err_set(err, LC_ERR_FORMAT, "vocabulary size %ld out of range", (long)n);
    }
    tok->n_vocab = n;
    tok->piece_off = calloc((size_t)n, sizeof(*tok->piece_off));
    tok->piece_len = calloc((size_t)n, sizeof(*tok->piece_len));
    tok->text_off = calloc((size_t)n, sizeof(*tok->text_off));
    tok->text_len = calloc((size_t)n, sizeof(*tok->text_len));
    tok->score = calloc((size_t)n, sizeof(*tok->score));
    tok->type = malloc((size_t)n);
    tok->defined = calloc((size_t)n, 1);
    if (tok->piece_off == NULL || tok->piece_len == NULL || tok->text_off == NULL ||
        tok->text_len == NULL || tok->score == NULL || tok->type == NULL ||
        tok->defined == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for %ld tokens", (long)n);
    }
    memset(tok->type, LC_TOKT_NORMAL, (size_t)n);
    for (int i = 0; i < 256; i++) {
        tok->byte_id[i] = -1;
    }
    tok->bos = tok->eos = tok->unk = -1;
    return LC_OK;
}

static lc_status pool_add(struct lc_tokenizer *tok, const char *s, size_t len, size_t *off,
                          struct lc_error *err)
{
    if (len > UINT32_MAX || tok->pool_len + len < tok->pool_len) {
        return lc_err_set(err, LC_ERR_FORMAT, "token text too long");
    }
    if (tok->pool_len + len > tok->pool_cap) {
        size_t cap = tok->pool_cap ? tok->pool_cap : 4096;
        char *p;
        while (cap < tok->pool_len + len) {
            cap *= 2;
        }
        p = realloc(tok->pool, cap);
        if (p == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory for token strings");
        }
        tok->pool = p;
        tok->pool_cap = cap;
    }
    if (len > 0) {
        memcpy(tok->pool + tok->pool_len, s, len);
    }
    *off = tok->pool_len;
    tok->pool_len += len;
    return LC_OK;
}

lc_status lc_tok_set_piece(struct lc_tokenizer *tok, int32_t id, const char *s, size_t len,
                           struct lc_error *err)
{
    lc_status st;
    if (id < 0 || id >= tok->n_vocab) {
        return lc_err_set(err, LC_ERR_FORMAT, "token id %ld out of range [0, %ld)", (long)id,
                          (long)tok->n_vocab);
    }
    if (tok->defined[id]) {
        return lc_err_set(err, LC_ERR_FORMAT, "token id %ld defined twice", (long)id);
    }
    if (len == 0) {
        return lc_err_set(err, LC_ERR_FORMAT, "token %ld is empty", (long)id);
    }
    st = pool_add(tok, s, len, &tok->piece_off[id], err);
    if (st != LC_OK) {
        return st;
    }
    tok->piece_len[id] = (uint32_t)len;
    tok->defined[id] = 1;
    if (len > tok->max_piece_len) {
        tok->max_piece_len = (uint32_t)len;
    }
    return LC_OK;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int32_t lc_tok_lookup(const struct lc_tokenizer *tok, const char *s, size_t len)
{
    size_t i;
    if (tok->slots == NULL || len > tok->max_piece_len) {
        return -1;
    }
    i = (size_t)hash_bytes(s, len) & tok->slot_mask;
    for (;;) {
        int32_t id = tok->slots[i];
        if (id < 0) {
            return -1;
        }
        if (tok->piece_len[id] == len && memcmp(tok->pool + tok->piece_off[id], s, len) == 0) {
            return id;
        }
        i = (i + 1) & tok->slot_mask;
    }
}

lc_status lc_tok_build_index(struct lc_tokenizer *tok, struct lc_error *err)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)tok->n_vocab) {
        cap *= 2;
    }
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (!tok->defined[id]) {
            return lc_err_set(err, LC_ERR_FORMAT, "token id %ld has no entry", (long)id);
        }
    }
    free(tok->slots);
    tok->slots = malloc(cap * sizeof(*tok->slots));
    if (tok->slots == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for the vocabulary index");
    }
    memset(tok->slots, 0xFF, cap * sizeof(*tok->slots));
    tok->slot_mask = cap - 1;
    /* a spelling that occurs twice (an added token repeating a vocabulary
     * entry) is found under its lowest id */
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const char *s = tok->pool + tok->piece_off[id];
        size_t len = tok->piece_len[id];
        size_t i = (size_t)hash_bytes(s, len) & tok->slot_mask;
        int dup = 0;
        while (tok->slots[i] >= 0) {
            int32_t o = tok->slots[i];
            if (tok->piece_len[o] == len && memcmp(tok->pool + tok->piece_off[o], s, len) == 0) {
                dup = 1;
                break;
            }
            i = (i + 1) & tok->slot_mask;
        }
        if (!dup) {
            tok->slots[i] = id;
        }
    }
    return LC_OK;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

lc_status lc_tok_merges_alloc(struct lc_tokenizer *tok, size_t n, struct lc_error *err)
{
    size_t cap = 16;
    while (cap < 2 * n) {
        cap *= 2;
    }
    free(tok->merges);
    tok->merges = malloc(cap * sizeof(*tok->merges));
    if (tok->merges == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory for %zu merges", n);
    }
    for (size_t i = 0; i < cap; i++) {
        tok->merges[i].key = UINT64_MAX;
    }
    tok->merge_mask = cap - 1;
    tok->n_merges = 0;
    return LC_OK;
}

lc_status lc_tok_add_merge(struct lc_tokenizer *tok, const char *left, size_t left_len,
                           const char *right, size_t right_len, int32_t rank,
                           struct lc_error *err)
{
    int32_t a = lc_tok_lookup(tok, left, left_len);
    int32_t b = lc_tok_lookup(tok, right, right_len);
    int32_t m;
    char *joined = NULL;
    uint64_t key;
    size_t i;

    if (a < 0 || b < 0) {
        const char *bad = a < 0 ? left : right;
        int bad_len = (int)(a < 0 ? left_len : right_len);
        return lc_err_set(err, LC_ERR_FORMAT, "merge %ld names the unknown token '%.*s'",
                          (long)rank, bad_len > 64 ? 64 : bad_len, bad);
    }
    if (left_len + right_len > tok->max_piece_len) {
        m = -1;
    } else {
        joined = malloc(left_len + right_len);
        if (joined == NULL) {
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        memcpy(joined, left, left_len);
        memcpy(joined + left_len, right, right_len);
        m = lc_tok_lookup(tok, joined, left_len + right_len);
        free(joined);
    }
    if (m < 0) {
        return lc_err_set(err, LC_ERR_FORMAT,
                          "merge %ld ('%.*s' '%.*s') makes a token that is not in the vocabulary",
                          (long)rank, (int)(left_len > 64 ? 64 : left_len), left,
                          (int)(right_len > 64 ? 64 : right_len), right);
    }
    if (2 * (tok->n_merges + 1) > tok->merge_mask + 1) {
        return lc_err_set(err, LC_ERR_FORMAT, "more merges than announced");
    }
    key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    i = (size_t)hash_u64(key) & tok->merge_mask;
    while (tok->merges[i].key != UINT64_MAX && tok->merges[i].key != key) {
        i = (i + 1) & tok->merge_mask;
    }
    if (tok->merges[i].key == UINT64_MAX) {
        tok->n_merges++;
    }
    /* a repeated pair takes its last rank, as the Hugging Face library does */
    tok->merges[i].key = key;
    tok->merges[i].rank = rank;
    tok->merges[i].id = m;
    return LC_OK;
}

const struct lc_tok_merge *lc_tok_merge_find(const struct lc_tokenizer *tok, int32_t a,
                                             int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i;
    if (tok->merges == NULL) {
        return NULL;
    }
    i = (size_t)hash_u64(key) & tok->merge_mask;
    while (tok->merges[i].key != UINT64_MAX) {
        if (tok->merges[i].key == key) {
            return &tok->merges[i];
        }
        i = (i + 1) & tok->merge_mask;
    }
    return NULL;
}

lc_status lc_tok_add_added(struct lc_tokenizer *tok, const struct lc_tok_added *a,
                           struct lc_error *err)
{
    struct lc_tok_added *p;
    if (a->id < 0 || a->id >= tok->n_vocab) {
        return lc_err_set(err, LC_ERR_FORMAT, "added token id %ld out of range", (long)a->id);
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].id == a->id) {
            tok->added[i] = *a;
            return LC_OK;
        }
    }
    p = realloc(tok->added, (tok->n_added + 1) * sizeof(*p));
    if (p == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    tok->added = p;
    tok->added[tok->n_added++] = *a;
    return LC_OK;
}

/* Groups token ids by first byte, longest spelling first, so that the
 * matchers find the longest token at a position with one scan. */
struct group_key {
    uint32_t first, len;
    int32_t id;
};

static int cmp_group_key(const void *pa, const void *pb)
{
    const struct group_key *a = pa, *b = pb;
    if (a->first != b->first) {
        return a->first < b->first ? -1 : 1;
    }
    if (a->len != b->len) {
        return a->len > b->len ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

static int group_by_first_byte(const struct lc_tokenizer *tok, int32_t *ids, size_t n,
                               uint32_t *start)
{
    struct group_key *keys = malloc(n * sizeof(*keys) + 1);
    if (keys == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].first = (unsigned char)tok->pool[tok->piece_off[ids[i]]];
        keys[i].len = tok->piece_len[ids[i]];
        keys[i].id = ids[i];
    }
    qsort(keys, n, sizeof(*keys), cmp_group_key);
    memset(start, 0, 257 * sizeof(*start));
    for (size_t i = 0; i < n; i++) {
        ids[i] = keys[i].id;
        start[keys[i].first + 1]++;
    }
    for (int b = 0; b < 256; b++) {
        start[b + 1] += start[b];
    }
    free(keys);
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

int lc_tok_byte_piece(const char *s, size_t len)
{
    int hi, lo;
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }
    hi = hex_digit(s[3]);
    lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) {
        return -1;
    }
    return hi * 16 + lo;
}

/* The bytes token id stands for in decoded text. */
static lc_status make_text(struct lc_tokenizer *tok, int32_t id, char *scratch,
                           struct lc_error *err)
{
    const char *p = tok->pool + tok->piece_off[id];
    size_t len = tok->piece_len[id];
    size_t n = 0;
    lc_status st;

    if (tok->type[id] == LC_TOKT_CONTROL || tok->type[id] == LC_TOKT_UNKNOWN) {
        n = 0;
    } else if (tok->algo != LC_TOKA_SPM && tok->type[id] == LC_TOKT_USER_DEFINED) {
        /* Hugging Face added tokens decode to their content */
        memcpy(scratch, p, len);
        n = len;
    } else if (tok->type[id] == LC_TOKT_BYTE) {
        int b = lc_tok_byte_piece(p, len);
        if (b < 0) {
            return lc_err_set(err, LC_ERR_FORMAT, "byte token %ld is spelled '%.*s', not <0xXX>",
                              (long)id, (int)(len > 32 ? 32 : len), p);
        }
        scratch[0] = (char)b;
        n = 1;
    } else if (tok->algo == LC_TOKA_BYTELEVEL) {
        size_t i = 0;
        while (i < len) {
            uint32_t cp;
            size_t l = lc_tok_utf8_len((const unsigned char *)p + i, len - i, &cp);
            int b = l > 0 ? lc_tok_cp_to_byte(cp) : -1;
            if (b >= 0) {
                scratch[n++] = (char)b;
            } else {
                /* not a stand-in character: keep its bytes */
                l = l > 0 ? l : 1;
                memcpy(scratch + n, p + i, l);
                n += l;
            }
            i += l;
        }
    } else {
        size_t i = 0;
        while (i < len) {
            if (tok->unescape && len - i >= 3 && memcmp(p + i, "\xE2\x96\x81", 3) == 0) {
                scratch[n++] = ' ';
                i += 3;
            } else {
                scratch[n++] = p[i++];
            }
        }
    }
    st = pool_add(tok, scratch, n, &tok->text_off[id], err);
    tok->text_len[id] = (uint32_t)n;
    return st;
}

lc_status lc_tok_finish(struct lc_tokenizer *tok, struct lc_error *err)
{
    char *scratch = NULL;
    int32_t *ids = NULL;
    lc_status st = LC_OK;

    if (tok->slots == NULL) {
        st = lc_tok_build_index(tok, err);
        if (st != LC_OK) {
            return st;
        }
    }
    if (tok->algo == LC_TOKA_BYTELEVEL) {
        for (int b = 0; b < 256; b++) {
            char s[4];
            size_t l = utf8_put(lc_tok_byte_to_cp((uint8_t)b), s);
            tok->byte_id[b] = lc_tok_lookup(tok, s, l);
            if (tok->byte_id[b] < 0) {
                return lc_err_set(err, LC_ERR_UNSUPPORTED,
                                  "the vocabulary lacks the byte-level symbol of byte 0x%02X", b);
            }
        }
    } else {
        for (int32_t id = 0; id < tok->n_vocab; id++) {
            if (tok->type[id] == LC_TOKT_BYTE) {
                int b = lc_tok_byte_piece(tok->pool + tok->piece_off[id], tok->piece_len[id]);
                if (b < 0) {
                    return lc_err_set(err, LC_ERR_FORMAT,
                                      "byte token %ld is spelled '%.*s', not <0xXX>", (long)id,
                                      (int)(tok->piece_len[id] > 32 ? 32 : tok->piece_len[id]),
                                      tok->pool + tok->piece_off[id]);
                }
                if (tok->byte_id[b] < 0) {
                    tok->byte_id[b] = id;
                }
            }
        }
        if (tok->unk < 0) {
            int have_all = 1;
            for (int b = 0; b < 256; b++) {
                have_all &= tok->byte_id[b] >= 0;
            }
            if (!tok->byte_fallback || !have_all) {
                return lc_err_set(err, LC_ERR_UNSUPPORTED,
                                  "neither an unknown token nor all 256 byte tokens: some text "
                                  "could not be encoded");
            }
        }
    }

    /* When no token of two or more bytes contains a newline, a newline
     * never merges with anything, so the text on either side of one can
     * be merged separately with the same result (smaller heaps). */
    tok->newline_splits = !tok->ignore_merges;
    for (int32_t id = 0; id < tok->n_vocab && tok->newline_splits; id++) {
        if (tok->piece_len[id] >= 2 &&
            memchr(tok->pool + tok->piece_off[id], '\n', tok->piece_len[id]) != NULL) {
            tok->newline_splits = 0;
        }
    }

    /* decoded text of each token; pool_add may move the pool, so the
     * spelling is read through offsets only */
    scratch = malloc((size_t)tok->max_piece_len + 1);
    if (scratch == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    for (int32_t id = 0; id < tok->n_vocab && st == LC_OK; id++) {
        if (tok->type[id] == LC_TOKT_UNUSED) {
            tok->has_unused = 1;
        }
        st = make_text(tok, id, scratch, err);
    }
    free(scratch);
    if (st != LC_OK) {
        return st;
    }

    /* raw-text matcher */
    free(tok->added_order);
    tok->added_order = NULL;
    if (tok->n_added > 0) {
        tok->added_order = malloc(tok->n_added * sizeof(*tok->added_order));
        ids = malloc(tok->n_added * sizeof(*ids));
        if (tok->added_order == NULL || ids == NULL) {
            free(ids);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < tok->n_added; i++) {
            ids[i] = tok->added[i].id;
        }
        if (!group_by_first_byte(tok, ids, tok->n_added, tok->added_start)) {
            free(ids);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
        /* added_order holds indexes into added[] */
        for (size_t i = 0; i < tok->n_added; i++) {
            for (size_t j = 0; j < tok->n_added; j++) {
                if (tok->added[j].id == ids[i]) {
                    tok->added_order[i] = (uint32_t)j;
                    break;
                }
            }
        }
        free(ids);
        ids = NULL;
    }

    /* SentencePiece user-defined pieces */
    free(tok->user);
    tok->user = NULL;
    tok->n_user = 0;
    if (tok->algo == LC_TOKA_SPM) {
        for (int32_t id = 0; id < tok->n_vocab; id++) {
            tok->n_user += tok->type[id] == LC_TOKT_USER_DEFINED;
        }
        if (tok->n_user > 0) {
            size_t k = 0;
            tok->user = malloc(tok->n_user * sizeof(*tok->user));
            if (tok->user == NULL) {
                return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            }
            for (int32_t id = 0; id < tok->n_vocab; id++) {
                if (tok->type[id] == LC_TOKT_USER_DEFINED) {
                    tok->user[k++] = id;
                }
            }
            if (!group_by_first_byte(tok, tok->user, tok->n_user, tok->user_start)) {
                return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
            }
        }
    }
    if (tok->bos >= tok->n_vocab || tok->eos >= tok->n_vocab || tok->unk >= tok->n_vocab) {
        return lc_err_set(err, LC_ERR_FORMAT, "special token id out of range");
    }
    return LC_OK;
}

void lc_tok_free_fields(struct lc_tokenizer *tok)
{
    free(tok->path);
    free(tok->pool);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->score);
    free(tok->type);
    free(tok->defined);
    free(tok->slots);
    free(tok->merges);
    free(tok->added);
    free(tok->added_order);
    free(tok->user);
    for (int i = 0; i < tok->n_re; i++) {
        lc_tok_free_regex(tok->re[i]);
    }
    memset(tok, 0, sizeof(*tok));
}

/* ---------------------------------------------------------------- pre-tokenizer regexes */

/* Llama 3's pre-tokenizer (tiktoken cl100k-style) and GPT-2's. */
const char lc_tok_llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char lc_tok_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

lc_status lc_tok_add_regex(struct lc_tokenizer *tok, const char *pattern, size_t len,
                           struct lc_error *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re;

    if (tok->n_re >= LC_TOK_MAX_REGEX) {
        return lc_err_set(err, LC_ERR_UNSUPPORTED, "more than %d pre-tokenizer regexes",
                          LC_TOK_MAX_REGEX);
    }
    re = pcre2_compile((PCRE2_SPTR)pattern, len,
                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return lc_err_set(err, LC_ERR_UNSUPPORTED,
                          "pre-tokenizer regex does not compile at offset %zu: %s", (size_t)off,
                          (const char *)msg);
    }
    /* the JIT is only faster; without it the interpreter runs */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    tok->re[tok->n_re++] = re;
    return LC_OK;
}

void lc_tok_free_regex(void *re)
{
    pcre2_code_free(re);
}

/* ---------------------------------------------------------------- id lists */

lc_status lc_tok_ids_push(struct lc_tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        int32_t *v = realloc(ids->v, cap * sizeof(*v));
        if (v == NULL) {
            return LC_ERR_NOMEM;
        }
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return LC_OK;
}
