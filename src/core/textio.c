/*
 * Whole-file reads through zlib's gz* functions, which decompress gzip
 * files and pass any other file through unchanged, so that every data
 * file may be stored compressed; and through libbz2 for the files that
 * start with the bzip2 magic (lc_read_maybe_bz2, textio.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bzlib.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/textio.h"
#include "core/util.h"

/* bytes asked of gzread at a time (it takes an unsigned int) */
#define READ_STEP ((size_t)1 << 20)

/* zlib's message without the "<fd:N>: " (gzdopen's name for the file) it
 * puts in front */
static const char *gz_message(gzFile gz, int *zerr)
{
    const char *msg = gzerror(gz, zerr);
    const char *end;
    if (strncmp(msg, "<fd:", 4) == 0 && (end = strstr(msg, ">: ")) != NULL) {
        msg = end + 3;
    }
    return msg;
}

lc_status lc_read_text_file(const char *path, char **data, size_t *len, struct lc_error *err)
{
    gzFile gz = NULL;
    char *buf = NULL;
    size_t cap = 0;
    size_t n = 0;
    struct stat st;
    int fd;
    lc_status rc = LC_OK;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    /* the buffer starts at the file's size (one byte more, so that the
     * read that finds the end needs no room): a small file gets a small
     * buffer, a plain file one allocation; a gzip file grows it */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size < SIZE_MAX - 2) {
        cap = (size_t)st.st_size + 2;
    } else {
        cap = 4096;
    }
    errno = 0;
    gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        close(fd);
        return lc_err_set(err, LC_ERR_NOMEM, "%s: cannot open: out of memory", path);
    }
    buf = malloc(cap);
    if (buf == NULL) {
        rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
        goto fail;
    }
    for (;;) {
        int got;
        size_t step;
        if (cap - n < 2) {
            size_t want;
            char *grown;
            if (!lc_add_size(cap, cap / 2 + 65536, &want)) {
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
        step = cap - n - 1 < READ_STEP ? cap - n - 1 : READ_STEP;
        got = gzread(gz, buf + n, (unsigned)step);
        if (got < 0) {
            int zerr = Z_OK;
            const char *msg = gz_message(gz, &zerr);
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
        const char *msg = gz_message(gz, &zerr);
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

/* ------------------------------------------------------------ bzip2 files */

static lc_status read_bz2(const char *path, char **data, size_t *len, struct lc_error *err)
{
    void *map = NULL;
    const char *in = NULL;
    size_t in_len = 0;
    char *out = NULL;
    size_t out_len = 0;
    size_t out_cap = 0;
    size_t pos = 0;
    lc_status rc = LC_OK;

    rc = lc_map_file(path, &map, &in_len, err);
    if (rc != LC_OK) {
        return rc;
    }
    in = map;
    /* one stream after the other, as bzip2 -d does with concatenated files */
    while (pos < in_len) {
        bz_stream bz;
        int brc;

        memset(&bz, 0, sizeof(bz));
        if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: cannot start bzip2 decompression", path);
            goto done;
        }
        bz.next_in = (char *)map + pos; /* bzlib only reads it */
        bz.avail_in = (unsigned)(in_len - pos > 0x40000000u ? 0x40000000u : in_len - pos);
        for (;;) {
            unsigned before_in;
            if (out_cap - out_len < 65536 + 1) {
                size_t want;
                char *grown;
                if (!lc_add_size(out_cap, out_cap / 2 + 65536 + 1, &want)) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: file too large", path);
                    break;
                }
                grown = realloc(out, want);
                if (grown == NULL) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory decompressing", path);
                    break;
                }
                out = grown;
                out_cap = want;
            }
            if (bz.avail_in == 0 && (size_t)(bz.next_in - in) < in_len) {
                size_t left = in_len - (size_t)(bz.next_in - in);
                bz.avail_in = (unsigned)(left > 0x40000000u ? 0x40000000u : left);
            }
            before_in = bz.avail_in;
            bz.next_out = out + out_len;
            bz.avail_out = (unsigned)(out_cap - out_len - 1 > 0x40000000u
                                          ? 0x40000000u
                                          : out_cap - out_len - 1);
            {
                unsigned before_out = bz.avail_out;
                brc = BZ2_bzDecompress(&bz);
                out_len += before_out - bz.avail_out;
                if (brc == BZ_STREAM_END) {
                    break;
                }
                if (brc == BZ_MEM_ERROR) {
                    rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory decompressing", path);
                    break;
                }
                if (brc != BZ_OK) {
                    rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt bzip2 data (%s)", path,
                                    brc == BZ_DATA_ERROR_MAGIC ? "bad magic number"
                                    : brc == BZ_DATA_ERROR     ? "checksum or data error"
                                                               : "decompression error");
                    break;
                }
                /* all input used, room left for output, and no end of stream */
                if (bz.avail_in == 0 && (size_t)(bz.next_in - in) >= in_len &&
                    bz.avail_out > 0) {
                    rc = lc_err_set(err, LC_ERR_FORMAT,
                                    "%s: truncated bzip2 data (the stream ends early)", path);
                    break;
                }
                if (before_in == bz.avail_in && before_out == bz.avail_out) {
                    rc = lc_err_set(err, LC_ERR_FORMAT, "%s: corrupt bzip2 data (no progress)",
                                    path);
                    break;
                }
            }
        }
        pos = (size_t)(bz.next_in - in);
        BZ2_bzDecompressEnd(&bz);
        if (rc != LC_OK) {
            goto done;
        }
        /* trailing zero padding (as tape archives leave) is not a stream */
        while (pos < in_len && in[pos] == '\0') {
            pos++;
        }
    }
    if (out == NULL) {
        out = malloc(1);
        if (out == NULL) {
            rc = lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    out[out_len] = '\0';
    *data = out;
    *len = out_len;
    out = NULL;

done:
    lc_unmap_file(map, in_len);
    free(out);
    return rc;
}

lc_status lc_read_maybe_bz2(const char *path, char **data, size_t *len, struct lc_error *err)
{
    char magic[4] = {0};
    size_t got = 0;
    lc_status rc;

    *data = NULL;
    *len = 0;
    rc = lc_read_file_head(path, magic, sizeof(magic), &got, err);
    if (rc != LC_OK) {
        return rc;
    }
    /* "BZh" and the block size digit */
    if (got == 4 && memcmp(magic, "BZh", 3) == 0 && magic[3] >= '1' && magic[3] <= '9') {
        return read_bz2(path, data, len, err);
    }
    return lc_read_text_file(path, data, len, err);
}
