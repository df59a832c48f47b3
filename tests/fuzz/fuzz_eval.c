/* Fuzz: the files of the multiple-choice tasks (PIQA with its labels file,
 * ARC, HellaSwag, WinoGrande, generic JSON lines; each maybe gzip or
 * bzip2), then the prompts of the first items.  The first byte picks the
 * task; for PIQA the line "--labels--" separates valid.jsonl from
 * valid-labels.lst. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/eval.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const tasks[6] = {"piqa", "arc-easy", "arc-challenge", "hellaswag",
                                         "winogrande", "jsonl"};
    struct lc_mc_task *t = NULL;
    struct lc_error err = {0};
    const uint8_t *part[2];
    size_t len[2];
    const char *task;
    const char *path;
    lc_status rc;

    if (size == 0) {
        return 0;
    }
    fuzz_quiet();
    task = tasks[data[0] % 6];
    if (strcmp(task, "piqa") == 0) {
        size_t n = fuzz_split(data + 1, size - 1, "\n--labels--\n", part, len, 2);
        fuzz_put_file("valid-labels.lst", n == 2 ? part[1] : NULL, n == 2 ? len[1] : 0);
    } else {
        part[0] = data + 1;
        len[0] = size - 1;
    }
    path = fuzz_put_file("valid.jsonl", part[0], len[0]);
    rc = lc_mc_task_load(&t, task, path, &err);
    if (rc != LC_OK) {
        fuzz_check_error(rc, &err, "valid");
        return 0;
    }
    for (int64_t i = 0; i < lc_mc_task_size(t) && i < 4; i++) {
        struct lc_mc_item item;
        struct lc_mc_opts o;
        lc_mc_opts_default(&o);
        o.shots = lc_mc_task_size(t) > 1 ? 1 : 0;
        if (lc_mc_task_item(t, i, &item, &err) != LC_OK || item.n_choices < 1 ||
            item.gold < 0 || item.gold >= item.n_choices) {
            abort();
        }
        for (int c = 0; c < item.n_choices; c++) {
            char *ctx = NULL, *cont = NULL;
            rc = lc_mc_prompt(t, i, c, &o, &ctx, &cont, &err);
            if (rc != LC_OK) {
                abort();
            }
            free(ctx);
            free(cont);
        }
    }
    {
        int64_t n = lc_mc_task_size(t);
        int64_t nc = lc_mc_task_choices(t, n);
        double *ll = calloc((size_t)nc + 1, sizeof(double));
        struct lc_mc_result res;
        if (ll == NULL || lc_mc_accuracy(t, n, ll, &res, &err) != LC_OK) {
            abort();
        }
        free(ll);
    }
    lc_mc_task_free(t);
    return 0;
}
