/* What the fuzz harnesses share (fuzz_common.h). */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

void fuzz_check_error(lc_status rc, const struct lc_error *err, const char *name)
{
    if (rc >= 0 || err->code != rc || err->msg[0] == '\0' ||
        (name != NULL && strstr(err->msg, name) == NULL)) {
        fprintf(stderr, "bad error report: status %d (%s), recorded %d, message \"%s\"%s%s\n",
                (int)rc, lc_status_str(rc), (int)err->code, err->msg,
                name != NULL ? ", should name " : "", name != NULL ? name : "");
        abort();
    }
}

static const char *in_dir(const char *dir, const char *rel)
{
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ % 4];
    int n = snprintf(p, sizeof(buf[0]), "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof(buf[0])) {
        abort(); /* a path this long is no test setup */
    }
    return p;
}

const char *fuzz_project_path(const char *rel)
{
    const char *dir = getenv("LC_DATA_DIR");
    if (dir == NULL || dir[0] == '\0') {
        dir = LC_FUZZ_SRCDIR "/data";
    }
    return in_dir(dir, rel);
}

const char *fuzz_shared_path(const char *rel)
{
    const char *dir = getenv("LC_TEST_DATA");
    const char *p;
    if (dir == NULL || dir[0] == '\0') {
        dir = LC_FUZZ_TEST_DATA;
    }
    p = in_dir(dir, rel);
    return access(p, R_OK) == 0 ? p : NULL;
}

static char tmpdir[4096];

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char p[8192];
            struct stat st;
            int n;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            n = snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            if (n < 0 || (size_t)n >= sizeof(p)) {
                continue;
            }
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                remove_tree(p);
            } else {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0] != '\0') {
        remove_tree(tmpdir);
    }
}

const char *fuzz_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        struct stat st;
        if (base == NULL || base[0] == '\0') {
            /* memory, not a disk: harnesses write their input there on
             * every run */
            base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                       ? "/dev/shm"
                       : "/tmp";
        }
        snprintf(tmpdir, sizeof(tmpdir), "%s/lolcats-fuzz.XXXXXX", base);
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

const char *fuzz_put_file(const char *name, const void *data, size_t len)
{
    const char *p = in_dir(fuzz_tmpdir(), name);
    FILE *f;
    if (data == NULL) {
        unlink(p);
        return p;
    }
    f = fopen(p, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **part,
                  size_t *part_len, size_t max)
{
    size_t n = 0;
    size_t sl = strlen(sep);
    while (n + 1 < max) {
        const uint8_t *hit = NULL;
        /* memcmp only where memchr finds the first byte: the fuzzer's
         * hooks on each comparison cost far more than the parsers on
         * large inputs */
        const uint8_t *p = data;
        while (sl <= size && (size_t)(p - data) <= size - sl &&
               (p = memchr(p, sep[0], size - sl + 1 - (size_t)(p - data))) != NULL) {
            if (memcmp(p, sep, sl) == 0) {
                hit = p;
                break;
            }
            p++;
        }
        if (hit == NULL) {
            break;
        }
        part[n] = data;
        part_len[n] = (size_t)(hit - data);
        n++;
        size -= (size_t)(hit - data) + sl;
        data = hit + sl;
    }
    part[n] = data;
    part_len[n] = size;
    return n + 1;
}

void fuzz_quiet(void)
{
    lc_set_log_handler(NULL, NULL, LC_LOG_ERROR);
}
