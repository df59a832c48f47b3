/*
 * What the three programs share: exit codes, option values, messages,
 * progress display, interrupt handling.  Only the programs print and exit;
 * the library reports through lc_status and struct lc_error.
 */
#ifndef LC_CLI_CLI_H
#define LC_CLI_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "lolcats/lolcats.h"

/* Exit statuses, listed under EXIT STATUS in every man page. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,     /* a failure not covered below (e.g. NaN in training) */
    CLI_EXIT_USAGE = 2,       /* bad option or option value */
    CLI_EXIT_INPUT = 3,       /* an input file is missing, unreadable or malformed */
    CLI_EXIT_OUTPUT = 4,      /* an output could not be written */
    CLI_EXIT_RESOURCES = 5,   /* out of memory, or the compute backend failed */
    CLI_EXIT_INTERRUPTED = 130 /* stopped by SIGINT or SIGTERM (state saved where relevant) */
};

/* The options every program takes. */
struct cli_common {
    const char *backend;
    int threads;
    int verbose;
    int quiet;
};

extern const char *cli_prog;

/*
 * getopt_long codes of the long-only options the programs share; a
 * program numbers its own long-only options from CLI_OPT_FIRST.
 */
enum cli_opt {
    CLI_OPT_BACKEND = 256,
    CLI_OPT_THREADS,
    CLI_OPT_FORMAT,
    CLI_OPT_VAL_FRACTION,
    CLI_OPT_VAL_RECORDS,
    CLI_OPT_FIRST
};

/* getopt letters of the common options, for the end of a program's list */
#define CLI_COMMON_SHORTOPTS "vqhV"

/* longopts rows of struct cli_common's options (handled by cli_common_option) */
#define CLI_COMMON_LONGOPTS                                \
    {"backend", required_argument, NULL, CLI_OPT_BACKEND}, \
    {"threads", required_argument, NULL, CLI_OPT_THREADS}, \
    {"verbose", no_argument, NULL, 'v'},                   \
    {"quiet", no_argument, NULL, 'q'},                     \
    {"help", no_argument, NULL, 'h'},                      \
    {"version", no_argument, NULL, 'V'}

/* longopts rows of the options of struct lc_data_opts (cli_data_option) */
#define CLI_DATA_LONGOPTS                                            \
    {"format", required_argument, NULL, CLI_OPT_FORMAT},             \
    {"val-fraction", required_argument, NULL, CLI_OPT_VAL_FRACTION}, \
    {"val-records", required_argument, NULL, CLI_OPT_VAL_RECORDS}

/* First thing in main: program name, fast BLAS kernels, log handler. */
void cli_init(int argc, char **argv, const char *prog);

/* Messages to stderr, prefixed with the program name. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_info(const struct cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "prog: msg" for a failed call and returns the exit status that
 * fits it; is_output says the failure was in writing results. */
int cli_fail(lc_status rc, const struct lc_error *err, int is_output);

/* Usage error: prints the message and a hint to --help; returns 2. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Strict number parsing for option values; on failure print a usage
 * error naming the option and return 0. */
int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/*
 * The default case of a program's getopt_long switch: handles an option of
 * struct cli_common (--help prints usage(stdout) and --version the version,
 * both then exit 0) and returns CLI_EXIT_OK; any other code is an option
 * getopt_long refused, which gets a hint to --help and CLI_EXIT_USAGE.
 */
int cli_common_option(struct cli_common *c, int opt, const char *arg, void (*usage)(FILE *out));

/* Handles CLI_OPT_FORMAT, CLI_OPT_VAL_FRACTION and CLI_OPT_VAL_RECORDS;
 * on a bad value prints a usage error and returns 0. */
int cli_data_option(struct lc_data_opts *d, int opt, const char *arg);

/* Applies --threads and opens the --backend; prints the backend and the
 * GEMM kernel at --verbose. */
int cli_open_backend(const struct cli_common *c, struct lc_backend **be);

void cli_print_version(void);

/*
 * SIGINT and SIGTERM: while a stop note is set, the first one sets a flag
 * that the program checks at its next chance, and the handler prints at
 * once "PROG: interrupted: NOTE (Ctrl-C again stops at once)"; a second
 * one, or the first while no note is set, ends the process at once with
 * status 130 (every file is written atomically, so what is on disk stays
 * whole).
 */
void cli_catch_interrupts(void);
/* What a stop waits for ("stopping after ..."), printf-style; NULL: a
 * signal stops at once. */
void cli_set_stop_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_interrupted(void);

/* Progress: a redrawn bar on a terminal, a plain line every few seconds
 * otherwise; silent with --quiet. */
struct cli_progress {
    const char *label;
    int64_t total;
    int is_tty;
    int quiet;
    double t_start;
    double t_last;
    int64_t lines; /* drawn or printed */
};

double cli_now(void);
void cli_progress_start(struct cli_progress *p, const char *label, int64_t total, int quiet);
/* done: of total, fractions allowed (a step partly done); extra: a short
 * text shown after the counts (loss, lr, ...) or NULL. */
void cli_progress_update(struct cli_progress *p, double done, const char *extra);
void cli_progress_end(struct cli_progress *p);
/* erase a drawn bar so a normal line can be printed */
void cli_progress_clear(struct cli_progress *p);

/* The loading phase after lc_model_open: says how much of the model is
 * mapped (from 0.1 GiB, or at --verbose) and reads it into memory with
 * progress, so that the first computation does not wait for the disk
 * (skipped, with a warning, when it does not fit the available memory).
 * Returns an exit status. */
int cli_page_in(const struct cli_common *c, struct lc_model *model, const char *path);

#endif /* LC_CLI_CLI_H */
