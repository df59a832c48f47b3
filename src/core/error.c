/* Status codes, error messages, version, dtype names. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

LC_API const char *lc_status_str(lc_status status)
{
    switch (status) {
    case LC_OK:
        return "success";
    case LC_ERR_NOMEM:
        return "out of memory";
    case LC_ERR_IO:
        return "input/output error";
    case LC_ERR_FORMAT:
        return "malformed file";
    case LC_ERR_ARG:
        return "invalid argument";
    case LC_ERR_BACKEND:
        return "compute backend failure";
    case LC_ERR_UNSUPPORTED:
        return "unsupported";
    case LC_ERR_INTERRUPTED:
        return "interrupted";
    case LC_ERR_NUMERIC:
        return "numerical failure (NaN or infinity)";
    case LC_ERR_DIST:
        return "communication between ranks failed";
    }
    return "unknown status";
}

LC_API const char *lc_version(void)
{
    return PACKAGE_VERSION;
}

lc_status lc_err_set(struct lc_error *err, lc_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void lc_err_prefix(struct lc_error *err, const char *fmt, ...)
{
    char prefix[LC_ERROR_MSG_MAX];
    char joined[2 * LC_ERROR_MSG_MAX + 2];
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
    /* keep the head of the message when it no longer fits */
    memcpy(err->msg, joined, sizeof(err->msg) - 1);
    err->msg[sizeof(err->msg) - 1] = '\0';
}

_Noreturn void lc_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "lolcats: internal error: assertion '%s' failed at %s:%d\n", what, file, line);
    abort();
}

static const struct {
    const char *name;
    size_t size;
} dtype_table[LC_DTYPE_COUNT] = {
    [LC_DTYPE_F32] = {"F32", 4}, [LC_DTYPE_F16] = {"F16", 2},  [LC_DTYPE_BF16] = {"BF16", 2},
    [LC_DTYPE_I32] = {"I32", 4}, [LC_DTYPE_I64] = {"I64", 8}, [LC_DTYPE_U8] = {"U8", 1},
};

LC_API const char *lc_dtype_name(enum lc_dtype dtype)
{
    if ((unsigned)dtype >= LC_DTYPE_COUNT) {
        return "?";
    }
    return dtype_table[dtype].name;
}

LC_API size_t lc_dtype_size(enum lc_dtype dtype)
{
    if ((unsigned)dtype >= LC_DTYPE_COUNT) {
        return 0;
    }
    return dtype_table[dtype].size;
}
