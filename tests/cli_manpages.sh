#!/bin/sh
# Every program's --help and man page list the same long options, every
# option in the man page is accepted by the program, and the man pages
# are free of groff/mandoc warnings.
. "$(dirname "$0")/cli_common.sh"
: "${LC_SRCDIR:?run through make check}"

lint_pages() {
    linted=0
    for page in "$LC_SRCDIR"/man/*.[1-8]; do
        if command -v groff >/dev/null 2>&1; then
            if ! groff -man -ww -z "$page" 2>"$tmp/lint"; then :; fi
            if [ -s "$tmp/lint" ]; then
                echo "FAIL: groff warnings in $page:"; cat "$tmp/lint"; status=1
            fi
            linted=1
        fi
        if command -v mandoc >/dev/null 2>&1; then
            # style-level remarks are fine; warnings and errors are not
            mandoc -Tlint -Wwarning "$page" >"$tmp/lint" 2>&1 || true
            if [ -s "$tmp/lint" ]; then
                echo "FAIL: mandoc warnings in $page:"; cat "$tmp/lint"; status=1
            fi
            linted=1
        fi
    done
    [ "$linted" = 1 ] || { echo "SKIP: neither groff nor mandoc is installed"; exit 77; }
}

check_program() {
    prog=$1
    bin="$LC_BUILDDIR/src/cli/$prog"
    page="$LC_SRCDIR/man/$prog.1"
    [ -x "$bin" ] || { echo "FAIL: $bin not built"; status=1; return; }
    [ -f "$page" ] || { echo "FAIL: $page missing"; status=1; return; }
    "$bin" --help >"$tmp/help" 2>&1 || { echo "FAIL: $prog --help exited non-zero"; status=1; }
    grep -o -- '--[a-z][a-z0-9-]*' "$tmp/help" | sort -u >"$tmp/help.opts"
    sed 's/\\-/-/g' "$page" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$tmp/man.opts"
    if ! cmp -s "$tmp/help.opts" "$tmp/man.opts"; then
        echo "FAIL: $prog: options in --help and in $prog.1 differ (< help, > man):"
        diff "$tmp/help.opts" "$tmp/man.opts" | grep '^[<>]'
        status=1
    fi
    # each option must be known to the program; give it a value when --help
    # shows one (an uppercase word after the option)
    while read -r opt; do
        if grep -q -- "$opt [A-Z]" "$tmp/help"; then
            "$bin" "$opt" 1 --help >/dev/null 2>"$tmp/err"
        else
            "$bin" "$opt" --help >/dev/null 2>"$tmp/err"
        fi
        if grep -q 'unrecognized option' "$tmp/err"; then
            echo "FAIL: $prog does not accept $opt, listed in its man page"
            status=1
        fi
    done <"$tmp/man.opts"
    # an unknown option is a usage error (exit 2)
    "$bin" --no-such-option >/dev/null 2>&1
    rc=$?
    [ "$rc" = 2 ] || { echo "FAIL: $prog --no-such-option exited $rc, not 2"; status=1; }
}

lint_pages
for prog in lolcats-eval lolcats-generate lolcats-train; do
    if [ -f "$LC_SRCDIR/src/cli/$prog.c" ]; then
        check_program "$prog"
    fi
done
exit $status
