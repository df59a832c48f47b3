/*
 * Whole-file reads through zlib's gz* functions, which decompress gzip
 * files and pass any other file through unchanged, so that every data
 * file may be stored compressed.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/util.h"

/* bytes asked of gzread at a time (it takes an unsigned int) */
#define READ_STEP ((size_t)1 << 20)

/* zlib's message without the "path: " it puts in front */
static const char *gz_message(gzFile gz, const char *path, int *zerr)
{
    const char *msg = gzerror(gz, zerr);
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') {
        msg += n + 2;
    }
    return msg;
}

lc_status lc_read_text_file(const char *path, char **data, size_t *len, struct lc_error *err)
{
    gzFile gz = NULL;
    char *buf = NULL;
    size_t cap = 0;
    size_t n = 0;
    lc_status rc = LC_OK;

    *data = NULL;
    *len = 0;
    errno = 0;
    gz = gzopen(path, "rb");
    if (gz == NULL) {
        if (errno != 0) {
            return lc_err_set(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        }
        return lc_err_set(err, LC_ERR_NOMEM, "%s: cannot open: out of memory", path);
    }
    for (;;) {
        int got;
        if (cap - n < READ_STEP + 1) {
            size_t want;
            char *grown;
            if (!lc_add_size(cap, cap / 2 + READ_STEP + 1, &want)) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: file too large", path);
                goto fail;
            }
            grown = realloc(buf, want);
            if (grown == NULL) {
                rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path,
                                want);
                goto fail;
            }
            buf = grown;
            cap = want;
        }
        got = gzread(gz, buf + n, (unsigned)READ_STEP);
        if (got < 0) {
            int zerr = Z_OK;
            const char *msg = gz_message(gz, path, &zerr);
            if (zerr == Z_ERRNO) {
                rc = lc_err_set(err, LC_ERR_IO, "%s: read error: %s", path, strerror(errno));
            } else {
                rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
            }
            goto fail;
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    /* a gzip stream cut short ends with a short read and then 0 bytes;
     * zlib records the problem, which only gzerror shows */
    {
        int zerr = Z_OK;
        const char *msg = gz_message(gz, path, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
            goto fail;
        }
    }
    buf[n] = '\0';
    gzclose(gz);
    *data = buf;
    *len = n;
    return LC_OK;

fail:
    gzclose(gz);
    free(buf);
    return rc;
}
