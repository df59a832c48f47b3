#!/bin/sh
# make check: every fuzz harness, without libFuzzer, on its committed seeds
# and on every input a fuzzer has failed on (tests/fuzz/regress/NAME).
set -u
fz=${LC_BUILDDIR:?}/tests/fuzz
src=${LC_SRCDIR:?}/tests/fuzz
status=0
for exe in "$fz"/replay_*; do
    name=${exe##*/replay_}
    set --
    for d in "$src/seeds/$name" "$src/regress/$name"; do
        if [ -d "$d" ]; then
            set -- "$@" "$d"
        fi
    done
    if [ $# -eq 0 ]; then
        continue
    fi
    if ! "$exe" "$@"; then
        echo "FAIL: replay_$name" >&2
        status=1
    fi
done
exit $status
