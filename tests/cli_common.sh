# Sourced by the program tests tests/cli_*.sh (run by make check): the
# programs, a temporary folder $tmp removed at exit, the overall $status,
# fail() to report a failure and go on, data_path() to find a file of the
# shared test data, and wait_for_lines() to time a kill by a run's metrics.
set -u
: "${LC_BUILDDIR:?run through make check}" "${LC_DATA_DIR:?run through make check}"
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
# data_path REL: where the file REL of the shared test data is: in the
# project's data/ for the main job's model and text, which it bundles under
# the same names, else under $LC_TEST_DATA (a path that does not exist
# when there is no shared data)
data_path() {
    if [ -e "$LC_DATA_DIR/$1" ]; then
        echo "$LC_DATA_DIR/$1"
    else
        echo "${LC_TEST_DATA:-/nonexistent}/$1"
    fi
}
