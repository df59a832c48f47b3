#!/bin/sh
# Runs one fuzz harness: run.sh SRCDIR BUILDDIR NAME SECONDS [RUNS]
# The corpus is BUILDDIR/tests/fuzz/corpus/NAME, seeded once by
# make-seeds.sh and each time with the committed seeds and regression
# inputs; crashes
# go to BUILDDIR/tests/fuzz/artifacts, the log to BUILDDIR/tests/fuzz/logs.
# Prints one line: executions, executions per second, coverage.
set -u
srcdir=$1 builddir=$2 name=$3 seconds=$4 runs=${5:-}

dict= max=65536
case $name in
safetensors|train_state) dict=safetensors.dict ;;
gguf|tok_gguf) dict=gguf.dict ;;
tok_spm) max=16384 ;;
tok_roundtrip) dict=tok.dict max=1024 ;;
config_json|data|eval) dict=json.dict max=8192 ;;
st_index|tok_json|tok_gpt2|lolcats_dir) dict=json.dict ;;
*) echo "run.sh: unknown harness $name" >&2; exit 2 ;;
esac

fz=$builddir/tests/fuzz
corpus=$fz/corpus/$name
mkdir -p "$corpus" "$fz/artifacts" "$fz/logs" || exit 2
if [ ! -f "$fz/corpus/.seeded-$name" ]; then
    "${SHELL:-/bin/sh}" "$srcdir/tests/fuzz/make-seeds.sh" "$srcdir" "$builddir" "$name" "$corpus" &&
        touch "$fz/corpus/.seeded-$name" || exit 2
fi
set -- -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len="$max" -print_final_stats=1 -artifact_prefix="$fz/artifacts/$name-"
if [ -n "$runs" ]; then
    set -- "$@" -runs="$runs"
fi
if [ -n "$dict" ]; then
    set -- "$@" -dict="$srcdir/tests/fuzz/$dict"
fi
# the committed seeds and regression inputs join the corpus (libFuzzer
# writes into the folders it is given: never the source tree)
for d in "$srcdir/tests/fuzz/seeds/$name" "$srcdir/tests/fuzz/regress/$name"; do
    if [ -d "$d" ]; then
        for f in "$d"/*; do
            [ -f "$f" ] && cp "$f" "$corpus/${d##*/}-${f##*/}"
        done
    fi
done
set -- "$@" "$corpus"
log=$fz/logs/$name.log
"$fz/fuzz_$name" "$@" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -n 1)
echo "fuzz_$name: ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-no coverage line}, exit $rc"
if [ "$rc" != 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz_$name: failed; the input is in $fz/artifacts (log: $log)" >&2
fi
exit $rc
