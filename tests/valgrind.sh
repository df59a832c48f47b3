#!/bin/sh
# make check-valgrind: each program on a short run under valgrind's
# memcheck: no errors and no definite leaks.  OpenMP's and OpenBLAS's
# thread pools keep memory until exit ("possibly lost", "still
# reachable"): only definite and indirect leaks count.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_sample.txt)
task=$(data_path eval/arc/ARC-Easy-test.jsonl)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }

export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
vg() { # NAME STATUS PROGRAM ARGS...: STATUS is the exit status the run should have
    name=$1 want=$2; shift 2
    "$LC_BUILDDIR/libtool" --mode=execute valgrind --quiet --error-exitcode=97 \
        --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect \
        --suppressions="$LC_SRCDIR/tests/valgrind.supp" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    if [ "$rc" != "$want" ]; then
        cat "$tmp/$name.err"
        fail "$name under valgrind: exit $rc (97: memcheck errors or leaks), not $want"
    fi
}
head -c 3000 "$task" | head -n 4 >"$tmp/arc.jsonl"
vg train 0 "$train" --model "$model" --data "$text" --out "$tmp/out" --seq-len 16 \
    --val-fraction 0.3 --grad-accum 2 --max-steps 2 --eval-every 1 --window 4 --feature-dim 4 \
    --lora-rank 2 --no-summary --quiet
vg resume 0 "$train" --model "$model" --data "$text" --out "$tmp/out" --seq-len 16 \
    --val-fraction 0.3 --grad-accum 2 --max-steps 2 --eval-every 1 --window 4 --feature-dim 4 \
    --lora-rank 2 --no-summary --quiet --resume
vg generate 0 "$gen" --model "$model" --lolcats "$tmp/out" --prompt "Once upon a time" -n 8 --seed 1
vg eval-ppl 0 "$eval_" --model "$model" --lolcats "$tmp/out" --task ppl --data "$text" -c 32 -q
vg eval-task 0 "$eval_" --model "$model" --task arc-easy --data "$tmp/arc.jsonl" -q
vg bad-input 3 "$train" --model "$model" --data "$tmp/no-such-file" --out "$tmp/out2" --quiet
exit $status
