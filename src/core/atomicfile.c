/* Crash-safe file replacement (temporary file, fsync, rename, fsync folder). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/atomicfile.h"
#include "core/util.h"

struct lc_atomic_file {
    int fd;        /* -1 when redirected */
    char *path;
    char *tmp;
    char *buf;     /* redirected: the content so far */
    size_t len, cap;
};

static lc_atomic_redirect_fn redirect_fn;
static void *redirect_user;

void lc_atomic_set_redirect(lc_atomic_redirect_fn fn, void *user)
{
    redirect_fn = fn;
    redirect_user = user;
}

/* Creates PATH.tmp.XXXXXX with O_EXCL (mode 0666 less the umask, as a plain
 * fopen would give). */
static int create_temp(const char *path, char *tmp, size_t cap)
{
    static unsigned counter;
    uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL) ^
                 (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        char suffix[7];
        int fd;
        x += 0x632BE59BD9B4E019ull * (++counter);
        x ^= x >> 29;
        for (int i = 0; i < 6; i++) {
            suffix[i] = alnum[(x >> (6 * i)) % 36];
        }
        suffix[6] = '\0';
        if ((size_t)snprintf(tmp, cap, "%s.tmp.%s", path, suffix) >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) {
            return fd;
        }
    }
    return -1;
}

static lc_status sync_parent_dir(const char *path, struct lc_error *err)
{
    char *dir = strdup(path);
    char *slash = NULL;
    int fd;
    lc_status rc = LC_OK;

    if (dir == NULL) {
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    slash = strrchr(dir, '/');
    if (slash == dir) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot open folder %s: %s", path, dir,
                        strerror(errno));
    } else {
        /* some file systems cannot sync folders; the rename is done */
        if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) {
            rc = lc_err_set(err, LC_ERR_IO, "%s: cannot sync folder %s: %s", path, dir,
                            strerror(errno));
        }
        close(fd);
    }
    free(dir);
    return rc;
}

lc_status lc_atomic_open(struct lc_atomic_file **out, const char *path, struct lc_error *err)
{
    struct lc_atomic_file *f = calloc(1, sizeof(*f));
    size_t cap = strlen(path) + 16;

    *out = NULL;
    if (f == NULL || (f->path = strdup(path)) == NULL || (f->tmp = malloc(cap)) == NULL) {
        if (f != NULL) {
            free(f->path);
            free(f);
        }
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (redirect_fn != NULL) {
        f->fd = -1;
        *out = f;
        return LC_OK;
    }
    f->fd = create_temp(path, f->tmp, cap);
    if (f->fd < 0) {
        lc_status rc = lc_err_set(err, LC_ERR_IO, "%s: cannot create a temporary file: %s", path,
                                  strerror(errno));
        free(f->tmp);
        free(f->path);
        free(f);
        return rc;
    }
    *out = f;
    return LC_OK;
}

/* all of data at the file's position (offset < 0) or at offset */
static lc_status write_all(struct lc_atomic_file *f, const void *data, size_t len, int64_t offset,
                           struct lc_error *err)
{
    const char *p = data;
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        ssize_t k = offset < 0 ? write(f->fd, p, n) : pwrite(f->fd, p, n, (off_t)offset);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return lc_err_set(err, LC_ERR_IO, "%s: cannot write: %s", f->path, strerror(errno));
        }
        p += k;
        len -= (size_t)k;
        offset += offset < 0 ? 0 : k;
    }
    return LC_OK;
}

lc_status lc_atomic_write(struct lc_atomic_file *f, const void *data, size_t len,
                          struct lc_error *err)
{
    const char *p = data;
    if (f->fd < 0) {
        if (f->len + len > f->cap) {
            size_t cap = f->cap > 0 ? f->cap : 4096;
            char *grown;
            while (cap < f->len + len) {
                cap *= 2;
            }
            grown = realloc(f->buf, cap);
            if (grown == NULL) {
                return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", f->path);
            }
            f->buf = grown;
            f->cap = cap;
        }
        memcpy(f->buf + f->len, data, len);
        f->len += len;
        return LC_OK;
    }
    return write_all(f, p, len, -1, err);
}

lc_status lc_atomic_pwrite(struct lc_atomic_file *f, const void *data, size_t len, uint64_t offset,
                           struct lc_error *err)
{
    if (f->fd < 0) {
        return lc_err_set(err, LC_ERR_ARG, "%s: positioned writes cannot be redirected", f->path);
    }
    return write_all(f, data, len, (int64_t)offset, err);
}

void lc_atomic_abort(struct lc_atomic_file *f)
{
    if (f == NULL) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    free(f->buf);
    free(f->tmp);
    free(f->path);
    free(f);
}

lc_status lc_atomic_commit(struct lc_atomic_file *f, struct lc_error *err)
{
    lc_status rc;

    if (f->fd < 0) {
        rc = redirect_fn(f->path, f->buf, f->len, redirect_user, err);
        lc_atomic_abort(f);
        return rc;
    }

    if (fsync(f->fd) != 0) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot sync: %s", f->path, strerror(errno));
        lc_atomic_abort(f);
        return rc;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot close: %s", f->path, strerror(errno));
        lc_atomic_abort(f);
        return rc;
    }
    f->fd = -1;
    if (rename(f->tmp, f->path) != 0) {
        rc = lc_err_set(err, LC_ERR_IO, "%s: cannot rename %s to it: %s", f->path, f->tmp,
                        strerror(errno));
        lc_atomic_abort(f);
        return rc;
    }
    rc = sync_parent_dir(f->path, err);
    free(f->tmp);
    free(f->path);
    free(f);
    return rc;
}

lc_status lc_write_file_atomic(const char *path, const void *data, size_t len,
                               struct lc_error *err)
{
    struct lc_atomic_file *f = NULL;
    lc_status rc = lc_atomic_open(&f, path, err);

    if (rc != LC_OK) {
        return rc;
    }
    rc = lc_atomic_write(f, data, len, err);
    if (rc != LC_OK) {
        lc_atomic_abort(f);
        return rc;
    }
    return lc_atomic_commit(f, err);
}

void lc_atomic_remove_temporaries(const char *dir, const char *suffix)
{
    const size_t ns = strlen(suffix);
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        /* NAME + suffix + ".tmp." + 6 characters */
        const char *tmp = strstr(e->d_name, ".tmp.");
        size_t at = tmp != NULL ? (size_t)(tmp - e->d_name) : 0;
        if (tmp != NULL && at >= ns && strncmp(e->d_name + at - ns, suffix, ns) == 0 &&
            strlen(tmp + 5) == 6) {
            size_t len = strlen(dir) + strlen(e->d_name) + 2;
            char *p = malloc(len);
            if (p != NULL) {
                snprintf(p, len, "%s/%s", dir, e->d_name);
                unlink(p);
                free(p);
            }
        }
    }
    closedir(d);
}
