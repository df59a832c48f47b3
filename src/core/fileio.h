/*
 * Files and paths as the readers use them: mapping a file, reading a small
 * file whole or its first bytes, joining paths, telling files from
 * folders.  Errors name the file.
 */
#ifndef LC_CORE_FILEIO_H
#define LC_CORE_FILEIO_H

#include <stddef.h>

#include "lolcats/lolcats.h"

/* Maps a whole regular file read-only; *map stays NULL for an empty file.
 * A folder or device is LC_ERR_IO "not a regular file". */
lc_status lc_map_file(const char *path, void **map, size_t *size, struct lc_error *err);
/* Unmaps what lc_map_file mapped (map may be NULL). */
void lc_unmap_file(void *map, size_t size);

/* Reads a regular file of at most max bytes whole into *buf (malloc'd,
 * NUL-terminated; *len does not count the NUL).  A larger file is
 * LC_ERR_FORMAT. */
lc_status lc_read_small_file(const char *path, size_t max, char **buf, size_t *len,
                             struct lc_error *err);

/* Reads the first bytes of a file (up to cap; fewer for a shorter file)
 * into buf and sets *got; a file that cannot be opened is LC_ERR_IO. */
lc_status lc_read_file_head(const char *path, void *buf, size_t cap, size_t *got,
                            struct lc_error *err);

/* "dir/name", malloc'd; NULL when out of memory. */
char *lc_path_join(const char *dir, const char *name);

/* Whether path ends with suffix (e.g. ".json"). */
int lc_path_ends_with(const char *path, const char *suffix);

/* Whether path names an existing regular file, or folder (links followed). */
int lc_is_regular_file(const char *path);
int lc_is_dir(const char *path);

/* Creates the folder path and the folders above it that are missing, as
 * mkdir -p does; an existing folder is fine.  0, or -1 with errno set
 * (ENOTDIR when path or a folder above it is something else). */
int lc_mkdir_parents(const char *path);

/* path as an absolute path (symbolic links and "." / ".." resolved when
 * the path exists, else joined to the working folder), malloc'd; NULL
 * when out of memory. */
char *lc_path_absolute(const char *path);

#endif /* LC_CORE_FILEIO_H */
