/*
 * Reading whole text files, plain or gzip-compressed alike.
 */
#ifndef LC_CORE_TEXTIO_H
#define LC_CORE_TEXTIO_H

#include <stddef.h>

#include "lolcats/lolcats.h"

/*
 * Reads the whole of PATH into *data (malloc'd, with a NUL after the last
 * byte that *len does not count; free() it).  A gzip file is decompressed
 * (zlib reads a plain file unchanged); a truncated or corrupt gzip stream
 * is LC_ERR_FORMAT, an unreadable file LC_ERR_IO, both naming PATH.
 */
lc_status lc_read_text_file(const char *path, char **data, size_t *len, struct lc_error *err);

#endif /* LC_CORE_TEXTIO_H */
