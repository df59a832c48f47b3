/* What the safetensors and GGUF readers share (tensorfile.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensorfile.h"

void lc_shape_format(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int k = snprintf(buf, cap, "[");
    used = k > 0 ? (size_t)k : 0;
    for (int i = 0; i < ndim && used < cap; i++) {
        k = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
        used += k > 0 ? (size_t)k : 0;
    }
    if (used < cap) {
        snprintf(buf + used, cap - used, "]");
    }
}

static int cmp_view_name(const void *a, const void *b)
{
    const struct lc_tensor_view *const *x = a;
    const struct lc_tensor_view *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void lc_views_sort(const struct lc_tensor_view **sorted, size_t n)
{
    qsort(sorted, n, sizeof(*sorted), cmp_view_name);
}

const struct lc_tensor_view *lc_views_find(const struct lc_tensor_view *const *sorted, size_t n,
                                           const char *name)
{
    size_t lo = 0;
    size_t hi = n;
    if (name == NULL) {
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid]->name, name);
        if (c == 0) {
            return sorted[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int cmp_span(const void *a, const void *b)
{
    const struct lc_span *x = a;
    const struct lc_span *y = b;
    if (x->begin != y->begin) {
        return x->begin < y->begin ? -1 : 1;
    }
    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

void lc_spans_sort(struct lc_span *spans, size_t n)
{
    qsort(spans, n, sizeof(*spans), cmp_span);
}
