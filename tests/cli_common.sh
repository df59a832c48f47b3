# Sourced by the program tests tests/cli_*.sh (run by make check): the
# programs, a temporary folder $tmp removed at exit, the overall $status,
# fail() to report a failure and go on, and wait_for_lines() to time a
# kill by a run's metrics.
set -u
: "${LC_BUILDDIR:?run through make check}"
train="$LC_BUILDDIR/src/cli/lolcats-train"
eval_="$LC_BUILDDIR/src/cli/lolcats-eval"
gen="$LC_BUILDDIR/src/cli/lolcats-generate"
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }
# the number of lines of file $1 (0 when missing)
lines_of() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# waits until the metrics file $1 has $2 lines, or the run $pid has ended
wait_for_lines() {
    while [ "$(lines_of "$1")" -lt "$2" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.002
    done
}
