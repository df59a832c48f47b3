/* Token sampling: greedy, temperature, nucleus (top-p). */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "core/util.h"

/* splitmix64: a small counter-based generator, the same everywhere */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct prob_index {
    float p;
    int32_t i;
};

static int by_prob_desc(const void *a, const void *b)
{
    const struct prob_index *x = a;
    const struct prob_index *y = b;
    if (x->p != y->p) {
        return x->p < y->p ? 1 : -1;
    }
    return x->i < y->i ? -1 : (x->i > y->i); /* ties: lower id first, deterministic */
}

static _Thread_local struct prob_index *pi_buf;
static _Thread_local int pi_cap;

LC_API int32_t lc_sample_token(const float *logits, int V, float temperature, float top_p,
                               uint64_t *rng_state)
{
    struct prob_index *pi;
    double sum = 0.0;
    double u;
    double acc;
    int32_t best = 0;
    int keep;

    for (int i = 1; i < V; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    if (temperature <= 0.0f || V == 1) {
        return best;
    }
    /* one buffer per thread, kept from call to call: no allocation per
     * generated token */
    if (V > pi_cap) {
        struct prob_index *grown = realloc(pi_buf, (size_t)V * sizeof(*pi));
        if (grown == NULL) {
            return best; /* no memory for sampling: fall back to the mode */
        }
        pi_buf = grown;
        pi_cap = V;
    }
    pi = pi_buf;
    for (int i = 0; i < V; i++) {
        pi[i].p = expf((logits[i] - logits[best]) / temperature);
        pi[i].i = i;
        sum += pi[i].p;
    }
    keep = V;
    if (top_p < 1.0f) {
        qsort(pi, (size_t)V, sizeof(*pi), by_prob_desc);
        acc = 0.0;
        for (keep = 0; keep < V;) {
            acc += pi[keep].p / sum;
            keep++;
            if (acc >= top_p) {
                break;
            }
        }
        sum = 0.0;
        for (int i = 0; i < keep; i++) {
            sum += pi[i].p;
        }
    }
    u = (double)(next_u64(rng_state) >> 11) * (1.0 / 9007199254740992.0) * sum;
    acc = 0.0;
    best = pi[keep - 1].i;
    for (int i = 0; i < keep; i++) {
        acc += pi[i].p;
        if (u < acc) {
            best = pi[i].i;
            break;
        }
    }
    return best;
}
