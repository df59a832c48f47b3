/* A program built against the installed liblolcats: greedy decoding of
 * 32 tokens from BOS with the bundled stories260K model must give the text
 * llama2.c and transformers give (data/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lolcats/lolcats.h>

#define N_NEW 32

static const char want[] = "Once upon a time, there was a little girl named Lily. She loved to "
                           "play outside in the park. One";

static int fail(const char *what, const struct lc_error *err)
{
    fprintf(stderr, "greedy: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    struct lc_error err = {0};
    struct lc_backend *be = NULL;
    struct lc_model *m = NULL;
    struct lc_tokenizer *tok = NULL;
    struct lc_session *s = NULL;
    int32_t ids[N_NEW + 1];
    float *logits = NULL;
    char *text = NULL;
    size_t len = 0;
    int V;
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: greedy MODEL_DIR\n");
        return 2;
    }
    printf("liblolcats %s\n", lc_version());
    if (lc_backend_open(&be, "cpu", &err) != LC_OK) {
        return fail("cpu backend", &err);
    }
    if (lc_model_open(&m, argv[1], be, &err) != LC_OK ||
        lc_tokenizer_open(&tok, argv[1], &err) != LC_OK ||
        lc_session_new(&s, m, N_NEW + 1, &err) != LC_OK) {
        rc = fail(argv[1], &err);
        goto done;
    }
    V = lc_model_get_config(m)->vocab_size;
    logits = malloc((size_t)V * sizeof(float));
    if (logits == NULL) {
        fprintf(stderr, "greedy: out of memory\n");
        goto done;
    }
    ids[0] = lc_tokenizer_bos(tok);
    for (int t = 0; t < N_NEW; t++) {
        int best = 0;
        if (lc_session_feed(s, &ids[t], 1, logits, &err) != LC_OK) {
            rc = fail("decoding", &err);
            goto done;
        }
        for (int v = 1; v < V; v++) {
            best = logits[v] > logits[best] ? v : best;
        }
        ids[t + 1] = best;
    }
    if (lc_tokenizer_decode(tok, ids, N_NEW + 1, &text, &len, &err) != LC_OK) {
        rc = fail("decode", &err);
        goto done;
    }
    /* SentencePiece's leading space of the first word */
    printf("%s\n", text);
    if (strcmp(text + (text[0] == ' '), want) != 0) {
        fprintf(stderr, "greedy: not the expected text:\n  %s\n", want);
        goto done;
    }
    rc = 0;

done:
    free(text);
    free(logits);
    lc_session_free(s);
    lc_tokenizer_close(tok);
    lc_model_close(m);
    lc_backend_close(be);
    return rc;
}
