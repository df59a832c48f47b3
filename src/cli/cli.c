#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

const char *cli_prog = "lolcats";

/* signals seen; the handler stops the process at once on the second */
static volatile sig_atomic_t interrupted;
/* What a first SIGINT or SIGTERM waits for, as the handler prints it: two
 * buffers, so that the handler never reads one being rewritten; -1: none,
 * the first signal stops at once. */
static char stop_notes[2][320];
static size_t stop_note_len[2];
static volatile sig_atomic_t stop_note = -1;
static int stderr_is_tty;

static void on_log(enum lc_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    (void)user;
    fprintf(stderr, "%s: %s: %s\n", cli_prog, names[level], msg);
}

void cli_init(int argc, char **argv, const char *prog)
{
    cli_prog = prog;
    /* before anything else: this may re-execute the program */
    lc_blas_use_fast_kernels(argc, argv);
    /* getopt_long names the program by argv[0] in its messages: under
     * libtool that is a path into .libs */
    if (argc > 0) {
        argv[0] = (char *)prog;
    }
    lc_set_log_handler(on_log, NULL, LC_LOG_WARN);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: warning: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_info(const struct cli_common *c, const char *fmt, ...)
{
    va_list ap;
    if (c->quiet) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(lc_status rc, const struct lc_error *err, int is_output)
{
    const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : lc_status_str(rc);
    cli_error("%s", msg);
    switch (rc) {
    case LC_OK:
        return CLI_EXIT_OK;
    case LC_ERR_ARG:
        return CLI_EXIT_USAGE;
    case LC_ERR_IO:
        return is_output ? CLI_EXIT_OUTPUT : CLI_EXIT_INPUT;
    case LC_ERR_FORMAT:
    case LC_ERR_UNSUPPORTED:
        return CLI_EXIT_INPUT;
    case LC_ERR_NOMEM:
    case LC_ERR_BACKEND:
        return CLI_EXIT_RESOURCES;
    case LC_ERR_INTERRUPTED:
        return CLI_EXIT_INTERRUPTED;
    case LC_ERR_NUMERIC:
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", cli_prog);
    return CLI_EXIT_USAGE;
}

int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0) {
        cli_usage_error("%s: '%s' is not an integer", opt, s);
        return 0;
    }
    if (v < lo || v > hi) {
        cli_usage_error("%s: %lld is out of range [%lld, %lld]", opt, v, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v)) {
        cli_usage_error("%s: '%s' is not a number", opt, s);
        return 0;
    }
    if (v < lo || v > hi) {
        cli_usage_error("%s: %g is out of range [%g, %g]", opt, v, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_common_option(struct cli_common *c, int opt, const char *arg, void (*usage)(FILE *out))
{
    long long n;

    switch (opt) {
    case CLI_OPT_BACKEND:
        c->backend = arg;
        return CLI_EXIT_OK;
    case CLI_OPT_THREADS:
        if (!cli_parse_int("--threads", arg, 1, 4096, &n)) {
            return CLI_EXIT_USAGE;
        }
        c->threads = (int)n;
        return CLI_EXIT_OK;
    case 'v':
        c->verbose = 1;
        return CLI_EXIT_OK;
    case 'q':
        c->quiet = 1;
        return CLI_EXIT_OK;
    case 'h':
        usage(stdout);
        exit(CLI_EXIT_OK);
    case 'V':
        cli_print_version();
        exit(CLI_EXIT_OK);
    default:
        /* getopt_long has printed what is wrong */
        fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog);
        return CLI_EXIT_USAGE;
    }
}

int cli_data_option(struct lc_data_opts *d, int opt, const char *arg)
{
    long long n;

    switch (opt) {
    case CLI_OPT_FORMAT:
        if (strcmp(arg, "auto") == 0) {
            d->format = LC_DATA_AUTO;
        } else if (strcmp(arg, "text") == 0) {
            d->format = LC_DATA_TEXT;
        } else if (strcmp(arg, "jsonl") == 0) {
            d->format = LC_DATA_JSONL_TEXT;
        } else if (strcmp(arg, "alpaca") == 0) {
            d->format = LC_DATA_ALPACA;
        } else {
            cli_usage_error("--format: '%s' is not one of auto, text, jsonl, alpaca", arg);
            return 0;
        }
        return 1;
    case CLI_OPT_VAL_FRACTION:
        return cli_parse_double("--val-fraction", arg, 0.0, 1.0, &d->val_fraction);
    case CLI_OPT_VAL_RECORDS:
        if (!cli_parse_int("--val-records", arg, 0, INT64_MAX / 2, &n)) {
            return 0;
        }
        d->val_records = n;
        return 1;
    }
    return 0;
}

int cli_open_backend(const struct cli_common *c, struct lc_backend **be)
{
    struct lc_error err = {0};
    lc_status rc;

    lc_set_num_threads(c->threads);
    rc = lc_backend_open(be, c->backend, &err);
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    if (c->verbose) {
        fprintf(stderr, "%s: backend %s\n", cli_prog, lc_backend_describe(*be));
        fprintf(stderr, "%s: GEMM kernel: OpenBLAS %s (OPENBLAS_CORETYPE=%s)\n", cli_prog,
                lc_blas_kernel_name(),
                getenv("OPENBLAS_CORETYPE") != NULL ? getenv("OPENBLAS_CORETYPE") : "unset");
    }
    return CLI_EXIT_OK;
}

void cli_print_version(void)
{
    printf("%s (lolcats) %s\n", cli_prog, lc_version());
}

/* write(2) of a whole buffer, as a signal handler may */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void on_signal(int sig)
{
    int note = stop_note;
    size_t plen = strlen(cli_prog);

    (void)sig;
    interrupted++;
    if (stderr_is_tty) {
        write_all("\r\033[K", 4); /* over a progress bar */
    }
    write_all(cli_prog, plen);
    if (interrupted >= 2 || note < 0) {
        static const char now[] = ": interrupted: stopped at once\n";
        write_all(now, sizeof(now) - 1);
        _exit(CLI_EXIT_INTERRUPTED);
    }
    write_all(stop_notes[note], stop_note_len[note]);
}

void cli_catch_interrupts(void)
{
    struct sigaction sa;
    stderr_is_tty = isatty(STDERR_FILENO);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_set_stop_note(const char *fmt, ...)
{
    int next = stop_note == 0 ? 1 : 0;
    char body[256];
    va_list ap;
    int n;

    if (fmt == NULL) {
        stop_note = -1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    n = snprintf(stop_notes[next], sizeof(stop_notes[next]),
                 ": interrupted: %s (Ctrl-C again stops at once)\n", body);
    if (n < 0) {
        n = 0;
    }
    stop_note_len[next] = (size_t)n < sizeof(stop_notes[next]) ? (size_t)n
                                                               : sizeof(stop_notes[next]) - 1;
    stop_note = next;
}

int cli_interrupted(void)
{
    return interrupted != 0;
}

/* ---------------------------------------------------------------- progress */

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "--:--");
    } else if (s < 3600) {
        snprintf(buf, cap, "%02d:%02d", (int)s / 60, (int)s % 60);
    } else {
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
    }
}

void cli_progress_start(struct cli_progress *p, const char *label, int64_t total, int quiet)
{
    p->label = label;
    p->total = total;
    p->quiet = quiet;
    p->is_tty = isatty(STDERR_FILENO);
    p->t_start = cli_now();
    p->t_last = p->t_start;
    p->lines = 0;
}

void cli_progress_update(struct cli_progress *p, double done, const char *extra)
{
    double now = cli_now();
    double elapsed = now - p->t_start;
    double eta = done > 0 ? elapsed * ((double)p->total - done) / done : NAN;
    char eta_s[32];
    char el_s[32];

    if (p->quiet) {
        return;
    }
    /* a terminal gets at most 10 redraws a second, a log a line every 5 s
     * (and the final one, after a phase long enough to have had others) */
    if (now - p->t_last < (p->is_tty ? 0.1 : 5.0) &&
        (done < (double)p->total || (!p->is_tty && p->lines == 0))) {
        return;
    }
    p->t_last = now;
    p->lines++;
    format_duration(eta_s, sizeof(eta_s), eta);
    format_duration(el_s, sizeof(el_s), elapsed);
    if (p->is_tty) {
        const int width = 24;
        int filled = p->total > 0 ? (int)((double)width * (double)done / (double)p->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) {
            bar[i] = i < filled ? '#' : '.';
        }
        bar[width] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s%s elapsed %s eta %s", p->label, bar,
                (long long)floor(done), (long long)p->total, extra != NULL ? extra : "",
                extra != NULL ? " " : "", el_s, eta_s);
    } else {
        fprintf(stderr, "%s %lld/%lld %s%selapsed %s eta %s\n", p->label, (long long)floor(done),
                (long long)p->total, extra != NULL ? extra : "", extra != NULL ? " " : "", el_s,
                eta_s);
    }
    fflush(stderr);
}

void cli_progress_clear(struct cli_progress *p)
{
    if (!p->quiet && p->is_tty && p->lines > 0) {
        fprintf(stderr, "\r\033[K");
    }
}

void cli_progress_end(struct cli_progress *p)
{
    if (!p->quiet && p->is_tty && p->lines > 0) {
        fputc('\n', stderr);
    }
}

/* ---------------------------------------------------------------- page-in */

static int on_page_in(int64_t done, int64_t total, void *user)
{
    (void)total;
    cli_progress_update(user, (double)(done >> 20), "MiB");
    return cli_interrupted();
}

int cli_page_in(const struct cli_common *c, struct lc_model *model, const char *path)
{
    const int64_t bytes = lc_model_mapped_bytes(model);
    const int64_t avail = lc_memory_available();
    const double gib = (double)bytes / (1 << 30);
    struct cli_progress prog;
    struct lc_error err = {0};
    double t0;
    lc_status rc;

    if (bytes <= 0) {
        return CLI_EXIT_OK;
    }
    if (c->verbose || gib >= 0.1) {
        cli_info(c, "loading: %.2f GiB of weights mapped from %s, used in place", gib, path);
    }
    if (avail >= 0 && bytes > avail) {
        cli_warn("the model's %.1f GiB of weights exceed the %.1f GiB of memory available: "
                 "parts of them will be read from disk again and again (slow)",
                 gib, (double)avail / (1 << 30));
        return CLI_EXIT_OK;
    }
    t0 = cli_now();
    cli_progress_start(&prog, "loading: paging in", bytes >> 20, c->quiet);
    rc = lc_model_page_in(model, on_page_in, &prog, &err);
    cli_progress_clear(&prog);
    if (rc != LC_OK) {
        return cli_fail(rc, &err, 0);
    }
    if (c->verbose || cli_now() - t0 >= 1.0) {
        double dt = cli_now() - t0;
        cli_info(c, "loading: paged in %.2f GiB in %.1f s (%.0f MiB/s)", gib, dt,
                 (double)bytes / (1 << 20) / (dt > 0 ? dt : 1e-9));
    }
    return CLI_EXIT_OK;
}
