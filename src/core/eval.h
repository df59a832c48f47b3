/*
 * Multiple-choice evaluation: what the tests need besides the public API
 * (lolcats.h, "Multiple-choice benchmarks").
 */
#ifndef LC_CORE_EVAL_H
#define LC_CORE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

/*
 * The few-shot examples of item `item` of a task of n_items items:
 * `shots` distinct indices other than `item`, in draw order, into
 * picks[shots].  The draw (documented in lolcats-eval(1)):
 *   state = seed XOR ((item + 1) * 0xD1B54A32D192ED03)   (mod 2^64)
 *   r = splitmix64(state); j = r mod (n_items - 1); j += (j >= item)
 *   and j is drawn again when already picked.
 */
lc_status lc_mc_fewshot_draw(int64_t n_items, int64_t item, int shots, uint64_t seed,
                             int64_t *picks, struct lc_error *err);

#endif /* LC_CORE_EVAL_H */
