#!/bin/sh
# lolcats-train end to end on the small real model: byte-identical output
# for 1 and 2 threads, resume after kill -9 and after SIGINT gives the
# same files as an uninterrupted run, bad input gets clear errors and never
# damages an existing checkpoint, and lolcats-eval reads the result.
set -u
: "${LC_BUILDDIR:?run through make check}" "${LC_TEST_DATA:?run through make check}"
train="$LC_BUILDDIR/src/cli/lolcats-train"
eval_="$LC_BUILDDIR/src/cli/lolcats-eval"
model="$LC_TEST_DATA/models/stories260K-hf"
text="$LC_TEST_DATA/text/tinystories/tinystories_val.txt"
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

# a short run: 24 steps of 2 x 128 tokens (window 16, so that the linear
# part is used), an evaluation every 4 steps.  The program replaces the
# subshell (exec), so that $! of a run in the background is the trainer.
run_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 24 --eval-every 4 --val-size 8 --no-summary --quiet "$@"
}
run() { (run_exec "$@"); }

# --- determinism across thread counts
run "$tmp/t1" --threads 1 --metrics "$tmp/t1.jsonl" || fail "training with 1 thread failed"
run "$tmp/t2" --threads 2 --metrics "$tmp/t2.jsonl" || fail "training with 2 threads failed"
cmp -s "$tmp/t1/feature_maps.safetensors" "$tmp/t2/feature_maps.safetensors" ||
    fail "feature maps differ between 1 and 2 threads"
cmp -s "$tmp/t1/train_state.safetensors" "$tmp/t2/train_state.safetensors" ||
    fail "training states differ between 1 and 2 threads"
cmp -s "$tmp/t1/lolcats_config.json" "$tmp/t2/lolcats_config.json" ||
    fail "lolcats_config.json differs between 1 and 2 threads"
# metrics: one line per step and per evaluation (7: steps 0, 4, ..., 24)
steps=$(grep -c '"loss"' "$tmp/t2.jsonl")
evals=$(grep -c '"val_loss"' "$tmp/t2.jsonl")
[ "$steps" = 24 ] && [ "$evals" = 7 ] || fail "metrics: $steps step lines, $evals evaluation lines"

# --- kill -9 at several points, then --resume: the same files.  The kill
# comes as soon as the metrics file has k lines (line 1 and every 5th line
# are evaluations, each followed at once by a state save), so it lands at
# chosen places whatever the machine's speed.
lines_of() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
for k in 0 1 3 6 11 17 24 30; do
    d="$tmp/k$k"
    (run_exec "$d" --metrics "$d.jsonl") &
    pid=$!
    while [ "$(lines_of "$d.jsonl")" -lt "$k" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.002
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    run "$d" --metrics "$d.jsonl" --resume || fail "resume after kill -9 at line $k failed"
    cmp -s "$tmp/t1/feature_maps.safetensors" "$d/feature_maps.safetensors" ||
        fail "kill -9 at line $k then --resume: feature maps differ from an uninterrupted run"
    cmp -s "$tmp/t1/train_state.safetensors" "$d/train_state.safetensors" ||
        fail "kill -9 at line $k then --resume: training state differs"
    cmp -s "$tmp/t1/lolcats_config.json" "$d/lolcats_config.json" ||
        fail "kill -9 at line $k then --resume: lolcats_config.json differs"
    # the resumed run removed what the killed one left half-written
    if ls "$d" | grep -q '\.tmp\.'; then
        fail "kill -9 at line $k: temporary files left in $d: $(ls "$d")"
    fi
    steps=$(grep -c '"loss"' "$d.jsonl")
    evals=$(grep -c '"val_loss"' "$d.jsonl")
    [ "$steps" = 24 ] && [ "$evals" = 7 ] ||
        fail "kill -9 at line $k: metrics has $steps step and $evals evaluation lines"
done

# --- SIGINT: exit 130 with the state saved, then --resume
d="$tmp/int"
(run_exec "$d" --metrics "$d.jsonl" 2>/dev/null) &
pid=$!
while [ "$(lines_of "$d.jsonl")" -lt 8 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.002
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" = 130 ] || fail "SIGINT: exit status $rc, not 130"
[ -f "$d/train_state.safetensors" ] || fail "SIGINT: no training state saved"
run "$d" --resume --metrics "$d.jsonl" 2>/dev/null || fail "resume after SIGINT failed"
cmp -s "$tmp/t1/feature_maps.safetensors" "$d/feature_maps.safetensors" ||
    fail "SIGINT then --resume: feature maps differ"

# --- resume with other options is refused (exit 2)
run "$tmp/t1" --resume --lr 0.02 >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'resume needs the same options' "$tmp/err" ||
    fail "resume with a different --lr: status $rc, $(cat "$tmp/err")"

# --- bad input: clear errors, distinct statuses, the old checkpoint intact
cp "$tmp/t1/feature_maps.safetensors" "$tmp/before"
"$train" -m "$model" -d "$text" -o "$tmp/t1" --seq-len 64 --window 128 --quiet 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'window' "$tmp/err" || fail "--window > --seq-len: status $rc"
printf 'Once upon a time.\n' >"$tmp/short.txt"
"$train" -m "$model" -d "$tmp/short.txt" -o "$tmp/t1" --quiet --no-summary 2>"$tmp/err"
rc=$?
[ "$rc" != 0 ] && grep -q 'fewer than one batch\|less than one chunk' "$tmp/err" ||
    fail "data shorter than a chunk: status $rc, $(cat "$tmp/err")"
"$train" -m "$tmp/no-such-model" -d "$text" -o "$tmp/x" --quiet 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] || fail "missing model: status $rc, not 3"
mkdir "$tmp/ro" && chmod 0555 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
    "$train" -m "$model" -d "$text" -o "$tmp/ro" --quiet 2>"$tmp/err"
    rc=$?
    [ "$rc" = 4 ] && grep -q 'not writable' "$tmp/err" || fail "unwritable folder: status $rc"
fi
# a full disk, simulated by a file size limit: the write fails cleanly and
# the existing checkpoint is untouched
(
    trap '' XFSZ
    ulimit -f 64
    exec "$train" --model "$model" --data "$text" --out "$tmp/t1" --seq-len 128 --grad-accum 2 \
        --max-steps 4 --eval-every 2 --val-size 4 --no-summary --quiet
) 2>"$tmp/err"
rc=$?
[ "$rc" = 4 ] || fail "full disk: status $rc, not 4 ($(cat "$tmp/err"))"
grep -q 'cannot write' "$tmp/err" || fail "full disk: message '$(cat "$tmp/err")'"
cmp -s "$tmp/before" "$tmp/t1/feature_maps.safetensors" ||
    fail "a failed run damaged the existing feature_maps.safetensors"

# --- the result is usable: lolcats-eval with --lolcats and --compare
"$eval_" -m "$model" --lolcats "$tmp/t1" --compare -t ppl -d "$text" --split val -c 128 \
    --json -q >"$tmp/eval.json" || fail "lolcats-eval --lolcats failed"
[ "$(grep -c '"ppl"' "$tmp/eval.json")" = 2 ] || fail "--compare --json: $(cat "$tmp/eval.json")"
grep -q '"attention": "linearized"' "$tmp/eval.json" || fail "no linearized result"

exit $status
