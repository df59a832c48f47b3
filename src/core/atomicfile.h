/*
 * Crash-safe file replacement: data goes to PATH.tmp.XXXXXX in the same
 * folder, is fsynced, renamed over PATH, and the folder is fsynced.  A
 * crash at any point leaves either the old PATH or the new one.
 */
#ifndef LC_CORE_ATOMICFILE_H
#define LC_CORE_ATOMICFILE_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

struct lc_atomic_file;

lc_status lc_atomic_open(struct lc_atomic_file **out, const char *path, struct lc_error *err);
lc_status lc_atomic_write(struct lc_atomic_file *f, const void *data, size_t len,
                          struct lc_error *err);
/* Writes at a byte offset of the new content (e.g. a header whose checksum
 * is known only at the end); not with a redirect (below). */
lc_status lc_atomic_pwrite(struct lc_atomic_file *f, const void *data, size_t len, uint64_t offset,
                           struct lc_error *err);
/* Makes the new content visible under PATH; frees f in every case. */
lc_status lc_atomic_commit(struct lc_atomic_file *f, struct lc_error *err);
/* Drops the temporary file and frees f (NULL is fine). */
void lc_atomic_abort(struct lc_atomic_file *f);

/*
 * A redirect: while one is set, the files of this process are not written
 * here but, at commit, handed whole to fn (which writes them elsewhere,
 * e.g. on another rank, and returns how that went).  Process-wide; set it
 * while nothing is being written.  NULL fn: write here again.
 */
typedef lc_status (*lc_atomic_redirect_fn)(const char *path, const void *data, size_t len,
                                           void *user, struct lc_error *err);
void lc_atomic_set_redirect(lc_atomic_redirect_fn fn, void *user);

/* Removes the temporary files (NAME.tmp.XXXXXX) that writes of files
 * ending in suffix left in dir when the process was killed. */
void lc_atomic_remove_temporaries(const char *dir, const char *suffix);

/* All of it for one buffer. */
lc_status lc_write_file_atomic(const char *path, const void *data, size_t len,
                               struct lc_error *err);

#endif /* LC_CORE_ATOMICFILE_H */
