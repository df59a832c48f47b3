/*
 * Crash-safe file replacement: data goes to PATH.tmp.XXXXXX in the same
 * folder, is fsynced, renamed over PATH, and the folder is fsynced.  A
 * crash at any point leaves either the old PATH or the new one.
 */
#ifndef LC_CORE_ATOMICFILE_H
#define LC_CORE_ATOMICFILE_H

#include <stddef.h>

#include "lolcats/lolcats.h"

struct lc_atomic_file;

lc_status lc_atomic_open(struct lc_atomic_file **out, const char *path, struct lc_error *err);
lc_status lc_atomic_write(struct lc_atomic_file *f, const void *data, size_t len,
                          struct lc_error *err);
/* Makes the new content visible under PATH; frees f in every case. */
lc_status lc_atomic_commit(struct lc_atomic_file *f, struct lc_error *err);
/* Drops the temporary file and frees f (NULL is fine). */
void lc_atomic_abort(struct lc_atomic_file *f);

/* All of it for one buffer. */
lc_status lc_write_file_atomic(const char *path, const void *data, size_t len,
                               struct lc_error *err);

#endif /* LC_CORE_ATOMICFILE_H */
