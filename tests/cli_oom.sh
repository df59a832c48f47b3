#!/bin/sh
# Out of memory at every allocation: tests/failmalloc.so makes the N-th
# allocation of lolcats' own code fail (the C library's, OpenBLAS's and
# OpenMP's are left alone; see failmalloc.c), for N over the allocations of
# a short training run (both stages), a generation and an evaluation.
# Each run must end with a clear message and an error status, never a
# crash.  make check tries every LC_OOM_STEP-th N (default: about 30 per
# program); LC_OOM_STEP=1 tries them all.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_sample.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
shim="$LC_BUILDDIR/tests/failmalloc.so"
[ -f "$shim" ] || { echo "SKIP: $shim not built"; exit 77; }
export OMP_NUM_THREADS=1
# a sanitizer build cannot take a preloaded allocator
LD_PRELOAD="$shim" "$train" --help >/dev/null 2>&1 ||
    { echo "SKIP: the programs do not run with $shim preloaded (a sanitizer build?)"; exit 77; }

"$train" --model "$model" --data "$text" --out "$tmp/base" --seq-len 16 --val-fraction 0.3 \
    --grad-accum 2 --max-steps 2 --eval-every 1 --window 4 --feature-dim 2 --lora-rank 1 \
    --no-summary --quiet || fail "the run to generate from"
train_run() {
    rm -rf "$tmp/out"
    "$train" --model "$model" --data "$text" --out "$tmp/out" --seq-len 16 --val-fraction 0.3 \
        --grad-accum 2 --max-steps 2 --eval-every 1 --window 4 --feature-dim 2 --lora-rank 1 \
        --no-summary --quiet
}
generate_run() { "$gen" --model "$model" --lolcats "$tmp/base" --prompt "Once upon" -n 4 --seed 1; }
eval_run() { "$eval_" --model "$model" --lolcats "$tmp/base" --task ppl --data "$text" -c 32 -q; }

for prog in train generate eval; do
    LD_PRELOAD="$shim" FAILMALLOC_COUNT="$tmp/count" ${prog}_run >/dev/null 2>&1 ||
        { fail "$prog: the counting run failed"; continue; }
    total=$(cat "$tmp/count")
    step=${LC_OOM_STEP:-$((total / 30 + 1))}
    echo "$prog: $total allocations, failing every ${step}th"
    n=1
    while [ "$n" -le "$total" ]; do
        LD_PRELOAD="$shim" FAILMALLOC_N=$n ${prog}_run >/dev/null 2>"$tmp/err"
        rc=$?
        if [ "$rc" -ge 126 ]; then
            fail "$prog: allocation $n failing: status $rc (a crash), $(tail -n 3 "$tmp/err")"
        elif [ "$rc" != 0 ] && ! grep -qi 'memory' "$tmp/err"; then
            fail "$prog: allocation $n failing: status $rc, message '$(cat "$tmp/err")'"
        fi
        n=$((n + step))
    done
done
exit $status
