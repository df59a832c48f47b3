/*
 * Reading whole text files, plain or compressed.  lc_read_text_file
 * (plain or gzip) is public (lolcats/lolcats.h); this adds bzip2.
 */
#ifndef LC_CORE_TEXTIO_H
#define LC_CORE_TEXTIO_H

#include <stddef.h>

#include "lolcats/lolcats.h"

/*
 * Reads the whole of PATH into *data (malloc'd, NUL after the last byte,
 * not counted in *len).  A file starting with the bzip2 magic "BZh" is
 * decompressed with libbz2 (several concatenated streams allowed); any
 * other file is read by lc_read_text_file (plain or gzip).  Truncated or
 * corrupt bzip2 data is LC_ERR_FORMAT naming PATH.
 */
lc_status lc_read_maybe_bz2(const char *path, char **data, size_t *len, struct lc_error *err);

#endif /* LC_CORE_TEXTIO_H */
