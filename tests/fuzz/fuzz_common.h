/*
 * What the fuzz harnesses share.  Each harness defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer
 * (./configure --enable-fuzzing, `make fuzz`) or with fuzz_main.c, which
 * runs it once on each file named on its command line (`make check` runs
 * the seed corpora and the regression inputs of tests/fuzz/regress so).
 *
 * A harness aborts (a crash to the fuzzer) when a parser breaks its own
 * contract: a failure without a status code below zero or without a
 * message, or a message that does not name the file it read.
 */
#ifndef LC_TESTS_FUZZ_COMMON_H
#define LC_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "lolcats/lolcats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks a failure: code < 0, err->code the same, a message that contains
 * `name` (when not NULL).  Aborts with the message otherwise. */
void fuzz_check_error(lc_status rc, const struct lc_error *err, const char *name);

/* A file of the project's data/ folder (LC_DATA_DIR, else the source tree
 * configure saw), in a static rotating buffer. */
const char *fuzz_project_path(const char *rel);
/* A file of the shared test data (LC_TEST_DATA, else configure's
 * --with-test-data), or NULL when it is not there. */
const char *fuzz_shared_path(const char *rel);

/* A private temporary folder (under TMPDIR, else /dev/shm or /tmp), removed with its
 * files at exit. */
const char *fuzz_tmpdir(void);
/* Writes len bytes to fuzz_tmpdir()/name, or removes that file when data
 * is NULL; returns the path (static rotating buffer). */
const char *fuzz_put_file(const char *name, const void *data, size_t len);

/* Splits data at each occurrence of sep into at most max parts (the last
 * one takes the rest); returns the number of parts. */
size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **part,
                  size_t *part_len, size_t max);

/* A harness's quiet log handler. */
void fuzz_quiet(void);

#endif /* LC_TESTS_FUZZ_COMMON_H */
