# Sourced by the program tests tests/cli_*.sh (run by make check): the
# programs, a temporary folder $tmp removed at exit, the overall $status,
# and fail() to report a failure and go on.
set -u
: "${LC_BUILDDIR:?run through make check}"
train="$LC_BUILDDIR/src/cli/lolcats-train"
eval_="$LC_BUILDDIR/src/cli/lolcats-eval"
gen="$LC_BUILDDIR/src/cli/lolcats-generate"
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }
