/*
 * A driver for the harnesses without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on every file named on the command line (folders: on each file in
 * them).  `make check` uses it to replay the seed corpora and the
 * regression inputs under whatever sanitizers the build has.
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: cannot read\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return 1;
    }
    /* an exact-size copy, so that AddressSanitizer sees reads past the end */
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;
    int runs = 0;
    if (LLVMFuzzerInitialize != NULL) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            struct dirent **names = NULL;
            int n = scandir(argv[i], &names, NULL, alphasort);
            for (int k = 0; k < n; k++) {
                char p[8192];
                struct stat fs;
                int len = snprintf(p, sizeof(p), "%s/%s", argv[i], names[k]->d_name);
                if (len > 0 && (size_t)len < sizeof(p) && names[k]->d_name[0] != '.' &&
                    stat(p, &fs) == 0 && S_ISREG(fs.st_mode)) {
                    bad |= run_file(p);
                    runs++;
                }
                free(names[k]);
            }
            free(names);
        } else {
            bad |= run_file(argv[i]);
            runs++;
        }
    }
    printf("%s: %d inputs\n", argv[0], runs);
    return bad;
}
