/*
 * The reference kernels: plain C, single-threaded, written to be read.
 * They are the executable specification of every backend entry: each fast
 * kernel has a twin here with the same signature, and the tests compare
 * them.  They also form the "ref" backend, so whole-model tests can run on
 * both backends and compare.
 */
#ifndef LC_CORE_REF_REF_H
#define LC_CORE_REF_REF_H

#include "core/backend.h"

/* memory entries shared by every host-memory backend (ref and cpu) */
void *lc_host_alloc(struct lc_backend *be, size_t bytes);
void lc_host_release(struct lc_backend *be, void *p);
void lc_host_copy(struct lc_backend *be, void *dst, const void *src, size_t bytes);
void lc_host_zero(struct lc_backend *be, void *dst, size_t bytes);
lc_status lc_host_sync(struct lc_backend *be, struct lc_error *err);

#endif /* LC_CORE_REF_REF_H */
