#!/bin/bash
# bench/gpu-prepare.sh: prepares what bench/gpu-check.sh needs on a GPU
# machine that has no network and perhaps none of our C dependencies.
# Run it here (Debian 12, with the Debian archive reachable), in the
# repository, after the last commit that should be checked:
#
#   bash bench/gpu-prepare.sh
#
# It fills the git-ignored folder .gpu-deps/ (carry it to the GPU machine):
#   lolcats-VERSION.tar.gz  the distribution tarball (make dist), so that the
#                           GPU machine needs no autotools
#   debs/                   Debian 12 packages of the libraries and headers
#                           the build needs (OpenBLAS with OpenMP, jansson,
#                           zlib, PCRE2, bzip2, CMocka, and the GCC run-time
#                           libraries OpenBLAS needs, used there only where
#                           the system lacks them)
#   data/                   a copy of the shared test data (models, texts,
#                           tokenizers), so that the model-level tests run
#   manifest.txt            what was prepared, from which commit
#
# Everything it does is printed.  Exits non-zero when a step fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS=$ROOT/.gpu-deps
DATA_SRC=${LC_TEST_DATA:-$ROOT/../shared/data}
PACKAGES="libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0 libgomp1
libjansson4 libjansson-dev zlib1g zlib1g-dev libpcre2-8-0 libpcre2-dev libbz2-1.0 libbz2-dev
libcmocka0 libcmocka-dev"

cd "$ROOT"
echo "== preparing $DEPS"
rm -rf "$DEPS"
mkdir -p "$DEPS/debs"

echo "== the distribution tarball (make dist)"
if [ -f "$ROOT/config.status" ]; then
    # configured in place (which refuses builds elsewhere): make dist here
    rm -f "$ROOT"/lolcats-*.tar.gz
    make -C "$ROOT" dist >/dev/null
    mv "$ROOT"/lolcats-*.tar.gz "$DEPS/"
else
    ./autogen.sh
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    (cd "$build" && "$ROOT/configure" --without-cmocka >/dev/null && make dist >/dev/null)
    cp "$build"/lolcats-*.tar.gz "$DEPS/"
fi
ls -l "$DEPS"/lolcats-*.tar.gz

echo "== Debian packages"
if ! apt-cache show libjansson-dev >/dev/null 2>&1; then
    apt-get update
fi
# shellcheck disable=SC2086 # one word per package
(cd "$DEPS/debs" && apt-get download $PACKAGES)
ls -l "$DEPS/debs"

echo "== test data from $DATA_SRC"
if [ -d "$DATA_SRC/models" ]; then
    mkdir -p "$DEPS/data"
    cp -r "$DATA_SRC"/. "$DEPS/data/"
    du -sh "$DEPS/data"
else
    echo "no test data at $DATA_SRC (set LC_TEST_DATA): the model-level tests will skip there"
fi

{
    echo "prepared: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "uncommitted changes: $(git status --porcelain 2>/dev/null | wc -l)"
    echo "tarball: $(basename "$DEPS"/lolcats-*.tar.gz)"
    echo "packages:"
    (cd "$DEPS/debs" && ls -1 ./*.deb)
} >"$DEPS/manifest.txt"
cat "$DEPS/manifest.txt"

size=$(du -sm "$DEPS" | cut -f1)
tree=$(git ls-files -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "== .gpu-deps is ${size} MiB; the tracked files about ${tree} MiB" \
    "(the device tool carries 64 MiB)"
if [ $((size + tree)) -gt 62 ]; then
    echo "warning: that is close to the limit;" \
        "drop data/ (rm -rf .gpu-deps/data) if the carry fails"
fi
echo "== done.  On the GPU machine: bash bench/gpu-check.sh (with .gpu-deps carried)"
