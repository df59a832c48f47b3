/*
 * The BPE encoder: text segment -> words -> symbols -> merges -> ids.
 *
 * Merging keeps the symbols of a word in a linked list and the candidate
 * pairs in a binary heap (best first, leftmost on ties), so a word of n
 * symbols costs O(n log n) whatever its length; SentencePiece texts are
 * one word per segment, i.e. a whole document.  A heap entry goes stale
 * when one of its symbols merges with another neighbour; it is then
 * recognized by its length and skipped.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/tok_vocab.h"
#include "core/tokenizer.h"
#include "core/util.h"

#define META "\xE2\x96\x81" /* U+2581, SentencePiece's space */
#define META_LEN 3

/* Segments longer than this are refused (symbol positions are 32-bit). */
#define MAX_SEGMENT ((size_t)1 << 30)

struct sym {
    uint32_t start, len; /* bytes of the word; len 0: merged away */
    int32_t id;          /* -1: not in the vocabulary (SentencePiece byte fallback) */
    int32_t prev, next;  /* neighbours, -1 at the ends */
    int32_t node;        /* merge tree node (only when UNUSED pieces exist) */
    uint8_t frozen;      /* SentencePiece user-defined piece: never merges */
};

struct pair {
    float key;    /* smaller first: -score (SentencePiece) or merge rank */
    uint32_t pos; /* start of the left symbol: leftmost first on ties */
    int32_t left, right;
    uint32_t len; /* left.len + right.len when pushed: detects stale pairs */
    int32_t id;   /* the merged token */
};

/* How a symbol was built, to resegment UNUSED pieces into their parts as
 * SentencePiece does. */
struct node {
    int32_t id, left, right;
    uint32_t start, len;
};

struct lc_tok_work {
    char *buf; /* normalized segment */
    size_t buf_cap;
    char *map; /* a byte-level word spelled in stand-in characters */
    size_t map_cap;
    struct sym *syms;
    size_t syms_cap;
    struct pair *heap;
    size_t heap_n, heap_cap;
    struct node *nodes;
    size_t nodes_cap, n_nodes;
    int32_t *stack;
    size_t stack_cap;
    pcre2_match_data *md;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 64;
    void *q;
    if (need <= *cap) {
        return 1;
    }
    while (c < need) {
        c *= 2;
    }
    q = realloc(*p, c * elem);
    if (q == NULL) {
        return 0;
    }
    *p = q;
    *cap = c;
    return 1;
}

lc_status lc_tok_work_new(const struct lc_tokenizer *tok, struct lc_tok_work **out,
                          struct lc_error *err)
{
    struct lc_tok_work *w = calloc(1, sizeof(*w));
    *out = NULL;
    if (w == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
    }
    if (tok->n_re > 0) {
        w->md = pcre2_match_data_create(1, NULL);
        if (w->md == NULL) {
            free(w);
            return lc_err_set(err, LC_ERR_NOMEM, "out of memory");
        }
    }
    *out = w;
    return LC_OK;
}

void lc_tok_work_free(struct lc_tok_work *w)
{
    if (w == NULL) {
        return;
    }
    free(w->buf);
    free(w->map);
    free(w->syms);
    free(w->heap);
    free(w->nodes);
    free(w->stack);
    pcre2_match_data_free(w->md);
    free(w);
}

/* ---------------------------------------------------------------- heap */

static int pair_before(const struct pair *a, const struct pair *b)
{
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static int heap_push(struct lc_tok_work *w, const struct pair *p)
{
    size_t i;
    if (!grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof(*w->heap))) {
        return 0;
    }
    i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(p, &w->heap[parent])) {
            break;
        }
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = *p;
    return 1;
}

static struct pair heap_pop(struct lc_tok_work *w)
{
    struct pair top = w->heap[0];
    struct pair last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c])) {
            c++;
        }
        if (!pair_before(&w->heap[c], &last)) {
            break;
        }
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) {
        w->heap[i] = last;
    }
    return top;
}

/* ---------------------------------------------------------------- merging */

static int mergeable(uint8_t type)
{
    return type == LC_TOKT_NORMAL || type == LC_TOKT_USER_DEFINED || type == LC_TOKT_UNUSED;
}

/* A token of the BPE model's own vocabulary (not a special token that
 * only the raw-text matcher may produce). */
static int32_t model_lookup(const struct lc_tokenizer *tok, const char *s, size_t len)
{
    int32_t id = lc_tok_lookup(tok, s, len);
    if (id >= 0 && (tok->type[id] == LC_TOKT_CONTROL || tok->type[id] == LC_TOKT_UNKNOWN)) {
        return -1;
    }
    return id;
}

/* Pushes the pair (a, b) when it merges into a token. */
static int try_pair(const struct lc_tokenizer *tok, struct lc_tok_work *w, const char *word,
                    int32_t a, int32_t b)
{
    const struct sym *l = &w->syms[a];
    const struct sym *r = &w->syms[b];
    struct pair p;

    p.len = l->len + r->len;
    p.pos = l->start;
    p.left = a;
    p.right = b;
    if (tok->algo == LC_TOKA_SPM) {
        /* SentencePiece: any two neighbours whose concatenation is a
         * piece, the higher score first */
        int32_t id;
        if (l->frozen || r->frozen || p.len > tok->max_piece_len) {
            return 1;
        }
        id = lc_tok_lookup(tok, word + l->start, p.len);
        if (id < 0 || !mergeable(tok->type[id])) {
            return 1;
        }
        p.key = -tok->score[id];
        p.id = id;
    } else {
        const struct lc_tok_merge *m;
        if (l->id < 0 || r->id < 0 || (m = lc_tok_merge_find(tok, l->id, r->id)) == NULL) {
            return 1;
        }
        p.key = (float)m->rank;
        p.id = m->id;
    }
    return heap_push(w, &p);
}

static int add_sym(const struct lc_tokenizer *tok, struct lc_tok_work *w, size_t *n,
                   uint32_t start, uint32_t len, int32_t id, int frozen)
{
    struct sym *s;
    if (!grow((void **)&w->syms, &w->syms_cap, *n + 1, sizeof(*w->syms))) {
        return 0;
    }
    s = &w->syms[*n];
    s->start = start;
    s->len = len;
    s->id = id;
    s->prev = (int32_t)*n - 1;
    s->next = -1;
    s->frozen = (uint8_t)frozen;
    s->node = -1;
    if (*n > 0) {
        w->syms[*n - 1].next = (int32_t)*n;
    }
    (*n)++;
    if (tok->has_unused) {
        struct node *nd;
        if (!grow((void **)&w->nodes, &w->nodes_cap, w->n_nodes + 1, sizeof(*w->nodes))) {
            return 0;
        }
        nd = &w->nodes[w->n_nodes];
        nd->id = id;
        nd->left = nd->right = -1;
        nd->start = start;
        nd->len = len;
        s->node = (int32_t)w->n_nodes++;
    }
    return 1;
}

static int run_merges(const struct lc_tokenizer *tok, struct lc_tok_work *w, const char *word,
                      size_t n)
{
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (!try_pair(tok, w, word, (int32_t)i, (int32_t)i + 1)) {
            return 0;
        }
    }
    while (w->heap_n > 0) {
        struct pair p = heap_pop(w);
        struct sym *l = &w->syms[p.left];
        struct sym *r = &w->syms[p.right];
        if (l->len == 0 || r->len == 0 || l->next != p.right || l->len + r->len != p.len) {
            continue;
        }
        if (tok->has_unused) {
            struct node *nd;
            if (!grow((void **)&w->nodes, &w->nodes_cap, w->n_nodes + 1, sizeof(*w->nodes))) {
                return 0;
            }
            nd = &w->nodes[w->n_nodes];
            nd->id = p.id;
            nd->left = l->node;
            nd->right = r->node;
            nd->start = l->start;
            nd->len = p.len;
            l->node = (int32_t)w->n_nodes++;
        }
        l->len = p.len;
        l->id = p.id;
        l->next = r->next;
        if (r->next >= 0) {
            w->syms[r->next].prev = p.left;
        }
        r->len = 0;
        if (l->prev >= 0 && !try_pair(tok, w, word, l->prev, p.left)) {
            return 0;
        }
        if (l->next >= 0 && !try_pair(tok, w, word, p.left, l->next)) {
            return 0;
        }
    }
    return 1;
}

/* SentencePiece output of a symbol outside the vocabulary: its bytes as
 * <0xXX> tokens, or one <unk>. */
static lc_status emit_unknown(const struct lc_tokenizer *tok, const char *word, uint32_t start,
                              uint32_t len, struct lc_tok_ids *out)
{
    if (!tok->byte_fallback) {
        return lc_tok_ids_push(out, tok->unk);
    }
    for (uint32_t i = 0; i < len; i++) {
        int32_t id = tok->byte_id[(unsigned char)word[start + i]];
        lc_status st = lc_tok_ids_push(out, id >= 0 ? id : tok->unk);
        if (st != LC_OK) {
            return st;
        }
    }
    return LC_OK;
}

/* Emits a merged SentencePiece symbol, splitting UNUSED pieces back into
 * the pieces they were made of. */
static lc_status emit_node(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                           const char *word, int32_t root, struct lc_tok_ids *out)
{
    size_t sp = 0;
    if (!grow((void **)&w->stack, &w->stack_cap, 1, sizeof(*w->stack))) {
        return LC_ERR_NOMEM;
    }
    w->stack[sp++] = root;
    while (sp > 0) {
        const struct node *nd = &w->nodes[w->stack[--sp]];
        lc_status st;
        if (nd->id >= 0 && tok->type[nd->id] == LC_TOKT_UNUSED && nd->left >= 0) {
            if (!grow((void **)&w->stack, &w->stack_cap, sp + 2, sizeof(*w->stack))) {
                return LC_ERR_NOMEM;
            }
            w->stack[sp++] = nd->right;
            w->stack[sp++] = nd->left;
            continue;
        }
        st = nd->id >= 0 ? lc_tok_ids_push(out, nd->id)
                         : emit_unknown(tok, word, nd->start, nd->len, out);
        if (st != LC_OK) {
            return st;
        }
    }
    return LC_OK;
}

/* ---------------------------------------------------------------- words */

/* One word of "▁" text: SentencePiece (score merges) or tokenizer.json
 * BPE (rank merges, byte fallback before merging). */
static lc_status encode_spm_word(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                                 const char *word, size_t len, struct lc_tok_ids *out)
{
    size_t n = 0, i = 0;
    lc_status st = LC_OK;

    if (tok->algo == LC_TOKA_SPM_RANK && tok->ignore_merges) {
        int32_t id = model_lookup(tok, word, len);
        if (id >= 0) {
            return lc_tok_ids_push(out, id);
        }
    }
    w->n_nodes = 0;
    while (i < len) {
        const unsigned char *s = (const unsigned char *)word + i;
        uint32_t cp;
        size_t l = 0;
        int32_t id;

        if (tok->n_user > 0) {
            for (uint32_t k = tok->user_start[s[0]]; k < tok->user_start[s[0] + 1]; k++) {
                int32_t u = tok->user[k];
                if (tok->piece_len[u] <= len - i &&
                    memcmp(s, tok->pool + tok->piece_off[u], tok->piece_len[u]) == 0) {
                    if (!add_sym(tok, w, &n, (uint32_t)i, tok->piece_len[u], u, 1)) {
                        return LC_ERR_NOMEM;
                    }
                    l = tok->piece_len[u];
                    break;
                }
            }
            if (l > 0) {
                i += l;
                continue;
            }
        }
        /* a character, or one byte of invalid UTF-8 */
        l = lc_tok_utf8_len(s, len - i, &cp);
        l = l > 0 ? l : 1;
        id = model_lookup(tok, (const char *)s, l);
        if (tok->algo == LC_TOKA_SPM) {
            if (id >= 0 && !mergeable(tok->type[id])) {
                id = -1;
            }
            if (!add_sym(tok, w, &n, (uint32_t)i, (uint32_t)l, id, 0)) {
                return LC_ERR_NOMEM;
            }
        } else if (id >= 0) {
            if (!add_sym(tok, w, &n, (uint32_t)i, (uint32_t)l, id, 0)) {
                return LC_ERR_NOMEM;
            }
        } else {
            /* Hugging Face: byte fallback when every byte has its token,
             * else <unk> (neighbouring ones fused when fuse_unk) */
            int all = tok->byte_fallback;
            for (size_t k = 0; k < l && all; k++) {
                all = tok->byte_id[s[k]] >= 0;
            }
            if (all) {
                for (size_t k = 0; k < l; k++) {
                    if (!add_sym(tok, w, &n, (uint32_t)(i + k), 1, tok->byte_id[s[k]], 0)) {
                        return LC_ERR_NOMEM;
                    }
                }
            } else if (tok->fuse_unk && n > 0 && w->syms[n - 1].id == tok->unk &&
                       w->syms[n - 1].start + w->syms[n - 1].len == i) {
                w->syms[n - 1].len += (uint32_t)l;
            } else if (!add_sym(tok, w, &n, (uint32_t)i, (uint32_t)l, tok->unk, 0)) {
                return LC_ERR_NOMEM;
            }
        }
        i += l;
    }
    if (!run_merges(tok, w, word, n)) {
        return LC_ERR_NOMEM;
    }
    for (int32_t k = n > 0 ? 0 : -1; k >= 0 && st == LC_OK; k = w->syms[k].next) {
        const struct sym *s = &w->syms[k];
        if (tok->has_unused) {
            st = emit_node(tok, w, word, s->node, out);
        } else if (s->id >= 0) {
            st = lc_tok_ids_push(out, s->id);
        } else {
            st = emit_unknown(tok, word, s->start, s->len, out);
        }
    }
    return st;
}

/* One pre-token of byte-level BPE. */
static lc_status encode_bytelevel_word(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                                       const char *word, size_t len, struct lc_tok_ids *out)
{
    size_t n = 0;
    lc_status st = LC_OK;

    if (tok->ignore_merges) {
        size_t m = 0;
        if (!grow((void **)&w->map, &w->map_cap, 2 * len, 1)) {
            return LC_ERR_NOMEM;
        }
        for (size_t i = 0; i < len; i++) {
            uint32_t cp = lc_tok_byte_to_cp((uint8_t)word[i]);
            if (cp < 0x80) {
                w->map[m++] = (char)cp;
            } else {
                w->map[m++] = (char)(0xC0 | (cp >> 6));
                w->map[m++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        int32_t id = model_lookup(tok, w->map, m);
        if (id >= 0) {
            return lc_tok_ids_push(out, id);
        }
    }
    w->n_nodes = 0;
    for (size_t i = 0; i < len; i++) {
        if (!add_sym(tok, w, &n, (uint32_t)i, 1, tok->byte_id[(unsigned char)word[i]], 0)) {
            return LC_ERR_NOMEM;
        }
    }
    if (!run_merges(tok, w, word, n)) {
        return LC_ERR_NOMEM;
    }
    for (int32_t k = n > 0 ? 0 : -1; k >= 0 && st == LC_OK; k = w->syms[k].next) {
        st = lc_tok_ids_push(out, w->syms[k].id);
    }
    return st;
}

/* Splits s by pre-tokenizer regex `level` (matches and the text between
 * them both become pieces) and hands the pieces to the next level. */
static lc_status split_level(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                             const char *s, size_t n, int level, struct lc_tok_ids *out,
                             struct lc_error *err)
{
    size_t done = 0, search = 0;
    lc_status st;

    if (n == 0) {
        return LC_OK;
    }
    if (level == tok->n_re) {
        st = encode_bytelevel_word(tok, w, s, n, out);
        return st == LC_OK ? LC_OK : lc_err_set(err, st, "out of memory while encoding");
    }
    while (search < n) {
        int rc = pcre2_match(tok->re[level], (PCRE2_SPTR)s, n, search, 0, w->md, NULL);
        PCRE2_SIZE *ov;
        size_t ms, me;
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return lc_err_set(err, LC_ERR_UNSUPPORTED, "pre-tokenizer regex failed: %s",
                              (const char *)msg);
        }
        ov = pcre2_get_ovector_pointer(w->md);
        ms = ov[0];
        me = ov[1];
        if (me <= ms) {
            /* an empty match splits nothing */
            search = ms + 1;
            continue;
        }
        /* bytes no match covers (invalid UTF-8) are a piece of their own */
        if (ms > done) {
            st = split_level(tok, w, s + done, ms - done, level + 1, out, err);
            if (st != LC_OK) {
                return st;
            }
        }
        st = split_level(tok, w, s + ms, me - ms, level + 1, out, err);
        if (st != LC_OK) {
            return st;
        }
        done = search = me;
    }
    return split_level(tok, w, s + done, n - done, level + 1, out, err);
}

/* A word of "▁" text, cut at newlines when that cannot change the result. */
static lc_status encode_spm_lines(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                                  const char *word, size_t len, struct lc_tok_ids *out)
{
    size_t start = 0;
    lc_status st = LC_OK;
    if (!tok->newline_splits) {
        return encode_spm_word(tok, w, word, len, out);
    }
    for (size_t i = 0; i < len && st == LC_OK; i++) {
        if (word[i] == '\n') {
            if (i > start) {
                st = encode_spm_word(tok, w, word + start, i - start, out);
            }
            if (st == LC_OK) {
                st = encode_spm_word(tok, w, word + i, 1, out);
            }
            start = i + 1;
        }
    }
    if (st == LC_OK && start < len) {
        st = encode_spm_word(tok, w, word + start, len - start, out);
    }
    return st;
}

/* ---------------------------------------------------------------- segments */

lc_status lc_tok_encode_segment(const struct lc_tokenizer *tok, struct lc_tok_work *w,
                                const char *text, size_t len, int at_start,
                                struct lc_tok_ids *out, struct lc_error *err)
{
    const char *pfx = META;
    size_t pfx_len = META_LEN;
    size_t n = 0;
    int add = 0;
    int starts_meta;
    lc_status st = LC_OK;

    if (len == 0) {
        return LC_OK;
    }
    if (len > MAX_SEGMENT) {
        return lc_err_set(err, LC_ERR_ARG, "text segment of %zu bytes is too long", len);
    }
    if (tok->algo == LC_TOKA_BYTELEVEL) {
        return split_level(tok, w, text, len, 0, out, err);
    }

    /* "▁" text: the dummy prefix, then spaces escaped */
    starts_meta = (tok->escape_spaces && text[0] == ' ') ||
                  (len >= META_LEN && memcmp(text, META, META_LEN) == 0);
    switch (tok->prefix) {
    case LC_TOKP_SEGMENT:
        add = 1;
        break;
    case LC_TOKP_ALWAYS:
        add = !starts_meta;
        break;
    case LC_TOKP_FIRST:
        add = at_start && !starts_meta;
        break;
    default:
        add = 0;
        break;
    }
    if (tok->algo == LC_TOKA_SPM && !tok->escape_spaces) {
        pfx = " ";
        pfx_len = 1;
    }
    if (!grow((void **)&w->buf, &w->buf_cap, META_LEN + 3 * len, 1)) {
        return lc_err_set(err, LC_ERR_NOMEM, "out of memory while encoding");
    }
    if (add) {
        memcpy(w->buf, pfx, pfx_len);
        n = pfx_len;
    }
    for (size_t i = 0; i < len; i++) {
        if (tok->escape_spaces && text[i] == ' ') {
            memcpy(w->buf + n, META, META_LEN);
            n += META_LEN;
        } else {
            w->buf[n++] = text[i];
        }
    }

    if (tok->meta_split) {
        /* Metaspace split: a word starts at every "▁" */
        size_t start = 0;
        for (size_t i = 1; i + META_LEN <= n && st == LC_OK; i++) {
            if (memcmp(w->buf + i, META, META_LEN) == 0) {
                st = encode_spm_lines(tok, w, w->buf + start, i - start, out);
                start = i;
            }
        }
        if (st == LC_OK) {
            st = encode_spm_lines(tok, w, w->buf + start, n - start, out);
        }
    } else {
        st = encode_spm_lines(tok, w, w->buf, n, out);
    }
    if (st != LC_OK) {
        return lc_err_set(err, st, "out of memory while encoding");
    }
    return LC_OK;
}
