/*
 * An LD_PRELOAD library for tests/cli_oom.sh: makes the N-th memory
 * allocation of lolcats' own code fail.
 *
 * Only allocations whose caller is lolcats (the library or a program:
 * "lolcats" in the file name of the calling object) are counted and
 * failed.  The C library's, OpenBLAS's, OpenMP's and jansson's own
 * allocations are left alone: a failure there is not one lolcats code can
 * see (OpenMP aborts, OpenBLAS prints and exits), and their number
 * depends on threads and timing, which would make N mean another
 * allocation from run to run.
 *
 * FAILMALLOC_N=n   fail the n-th counted allocation (malloc, calloc,
 *                  realloc, posix_memalign, aligned_alloc, strdup, strndup)
 * FAILMALLOC_COUNT=FILE  write the number of counted allocations at exit
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void (*real_free)(void *);

static long fail_at = -1;
static long counted;
static int state; /* 0: not started, 1: starting (dlsym may allocate), 2: ready */

/* what dlsym asks for while the real functions are looked up */
static char boot[1 << 16];
static size_t boot_used;

static void *boot_alloc(size_t n)
{
    void *p;
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof(boot) - boot_used) {
        return NULL;
    }
    p = boot + boot_used;
    boot_used += n;
    return p;
}

static int in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

/* the address ranges of lolcats' code: the library and the program */
#define MAX_RANGES 64
static uintptr_t range_lo[MAX_RANGES], range_hi[MAX_RANGES];
static int n_ranges;

static int add_ranges(struct dl_phdr_info *info, size_t size, void *data)
{
    const char *name = info->dlpi_name;
    (void)size;
    (void)data;
    /* the program itself has an empty name */
    if (name[0] != '\0' && strstr(strrchr(name, '/') ? strrchr(name, '/') : name, "lolcats") == NULL) {
        return 0;
    }
    if (name[0] == '\0' && strstr(program_invocation_name, "lolcats") == NULL) {
        return 0;
    }
    for (int i = 0; i < info->dlpi_phnum && n_ranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            range_lo[n_ranges] = info->dlpi_addr + ph->p_vaddr;
            range_hi[n_ranges] = range_lo[n_ranges] + ph->p_memsz;
            n_ranges++;
        }
    }
    return 0;
}

static void start(void)
{
    const char *n;
    state = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    n = getenv("FAILMALLOC_N");
    fail_at = n != NULL ? atol(n) : -1;
    dl_iterate_phdr(add_ranges, NULL);
    state = 2;
}

/* Whether this allocation, asked for from ret, is the one to fail. */
static int fail_now(const void *ret)
{
    uintptr_t a = (uintptr_t)ret;
    int ours = 0;
    if (state != 2) {
        return 0;
    }
    for (int i = 0; i < n_ranges && !ours; i++) {
        ours = a >= range_lo[i] && a < range_hi[i];
    }
    return ours && ++counted == fail_at;
}

#define ENTER(fallback)                                                         \
    do {                                                                        \
        if (state != 2) {                                                       \
            if (state == 0) {                                                   \
                start();                                                        \
            }                                                                   \
            if (state != 2) {                                                   \
                return fallback;                                                \
            }                                                                   \
        }                                                                       \
    } while (0)

void *malloc(size_t n)
{
    ENTER(boot_alloc(n));
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    ENTER(boot_alloc(a * b)); /* the boot buffer is zero */
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    ENTER(NULL);
    if (in_boot(p)) {
        void *q = real_malloc(n);
        if (q != NULL) {
            memcpy(q, p, n < (size_t)(boot + sizeof(boot) - (char *)p)
                             ? n : (size_t)(boot + sizeof(boot) - (char *)p));
        }
        return q;
    }
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    ENTER(ENOMEM);
    if (fail_now(__builtin_return_address(0))) {
        return ENOMEM;
    }
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    ENTER(NULL);
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return real_aligned_alloc(align, n);
}

void free(void *p)
{
    if (p == NULL || in_boot(p)) {
        return;
    }
    if (state != 2) {
        start();
    }
    real_free(p);
}

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p;
    ENTER(NULL);
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    p = real_malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p;
    ENTER(NULL);
    if (fail_now(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    p = real_malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("FAILMALLOC_COUNT");
    if (path != NULL && path[0] != '\0') {
        FILE *f = fopen(path, "w");
        if (f != NULL) {
            fprintf(f, "%ld\n", counted);
            fclose(f);
        }
    }
}
