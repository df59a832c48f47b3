/* Files and paths for the readers (fileio.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/util.h"

lc_status lc_map_file(const char *path, void **map, size_t *size, struct lc_error *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lc_err_set(err, LC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lc_err_set(err, LC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return lc_err_set(err, LC_ERR_IO, "%s: too large to map", path);
    }
    *size = (size_t)st.st_size;
    *map = NULL;
    if (*size > 0) {
        void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return lc_err_set(err, LC_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        *map = m;
    }
    close(fd);
    return LC_OK;
}

void lc_unmap_file(void *map, size_t size)
{
    if (map != NULL) {
        munmap(map, size);
    }
}

lc_status lc_read_small_file(const char *path, size_t max, char **buf, size_t *len,
                             struct lc_error *err)
{
    void *map = NULL;
    size_t size = 0;
    lc_status rc = lc_map_file(path, &map, &size, err);
    if (rc != LC_OK) {
        return rc;
    }
    if (size > max) {
        lc_unmap_file(map, size);
        return lc_err_set(err, LC_ERR_FORMAT, "%s: %zu bytes, more than the %zu allowed", path,
                          size, max);
    }
    *buf = malloc(size + 1);
    if (*buf == NULL) {
        lc_unmap_file(map, size);
        return lc_err_set(err, LC_ERR_NOMEM, "%s: out of memory", path);
    }
    if (size > 0) {
        memcpy(*buf, map, size);
    }
    lc_unmap_file(map, size);
    (*buf)[size] = '\0';
    *len = size;
    return LC_OK;
}

lc_status lc_read_file_head(const char *path, void *buf, size_t cap, size_t *got,
                            struct lc_error *err)
{
    FILE *f = fopen(path, "rb");

    *got = 0;
    if (f == NULL) {
        return lc_err_set(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    *got = fread(buf, 1, cap, f);
    fclose(f);
    return LC_OK;
}

char *lc_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir);
    size_t b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p != NULL) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

int lc_path_ends_with(const char *path, const char *suffix)
{
    size_t a = strlen(path);
    size_t b = strlen(suffix);
    return a >= b && strcmp(path + a - b, suffix) == 0;
}

int lc_is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int lc_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir that accepts an existing folder */
static int mkdir_once(const char *path)
{
    if (mkdir(path, 0777) == 0) {
        return 0;
    }
    if (errno == EEXIST) {
        if (lc_is_dir(path)) {
            return 0;
        }
        errno = ENOTDIR;
    }
    return -1;
}

int lc_mkdir_parents(const char *path)
{
    char *p = strdup(path);
    int rc = 0;

    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    /* each folder above path, from the top ("a" of "a/b/c", then "a/b") */
    for (char *s = strchr(p + 1, '/'); s != NULL && rc == 0; s = strchr(s + 1, '/')) {
        if (s[-1] == '/') {
            continue; /* "a//b" */
        }
        *s = '\0';
        rc = mkdir_once(p);
        *s = '/';
    }
    if (rc == 0) {
        rc = mkdir_once(p);
    }
    free(p);
    return rc;
}

char *lc_path_absolute(const char *path)
{
    char *abs = realpath(path, NULL);
    char cwd[4096];

    if (abs != NULL || path[0] == '/') {
        return abs != NULL ? abs : strdup(path);
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return strdup(path);
    }
    return lc_path_join(cwd, path);
}

/* MemAvailable counts the page cache that can be dropped, and so also the
 * pages of mapped model weights already read. */
LC_API int64_t lc_memory_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    int64_t avail = -1;

    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            long long kib;
            if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1) {
                avail = (int64_t)kib * 1024;
                break;
            }
        }
        fclose(f);
    }
    return avail;
}
