#!/bin/sh
# What a user sees of long runs, on the small real model with options that
# reproduce the situations of real-size ones: a run in which the linear
# attention gets no key is refused, SIGINT is acknowledged at once and stops
# inside an evaluation with a state that resumes to the same files (a second
# one stops at once, the files whole), progress shows whatever the output
# format, the summary honours --val-size, and the messages name the program
# and each stage's own settings.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_val.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }

train_q() { "$train" --model "$model" --data "$text" --no-summary --quiet --threads 1 "$@"; }

# --- runs that would learn nothing are refused before anything is written
train_q --out "$tmp/r1" --seq-len 128 --window 64 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'would learn nothing' "$tmp/err" &&
    grep -q -- '--seq-len above 128, or a --window of at most 63' "$tmp/err" ||
    fail "--seq-len 128 --window 64: status $rc, $(cat "$tmp/err")"
[ -e "$tmp/r1" ] && fail "a refused run created its output folder"
train_q --out "$tmp/r2" --seq-len 64 --window 64 --window-mode sliding 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q -- '--seq-len above 64' "$tmp/err" ||
    fail "sliding --seq-len 64 --window 64: status $rc, $(cat "$tmp/err")"
train_q --out "$tmp/r3" --seq-len 128 --window 64 --no-transfer 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'training the feature maps would learn nothing' "$tmp/err" ||
    fail "--no-transfer --seq-len 128 --window 64: status $rc, $(cat "$tmp/err")"
# a sliding window of 64 in chunks of 128 leaves keys to the linear part
train_q --out "$tmp/s" --seq-len 128 --window 64 --window-mode sliding --stage transfer \
    --max-steps 0 --val-size 1 2>"$tmp/err" || fail "sliding --seq-len 128 --window 64 refused"
# stage 2 alone still trains its adapters, with a warning
train_q --out "$tmp/s" --seq-len 64 --window 64 --window-mode sliding --stage finetune \
    --max-steps 0 --val-size 1 2>"$tmp/err" || fail "--stage finetune, 64/64: $(cat "$tmp/err")"
grep -q 'warning: .*never uses the linear attention' "$tmp/err" ||
    fail "--stage finetune, 64/64: no warning ($(cat "$tmp/err"))"

# --- messages name the program, not a libtool path
for p in "$train" "$eval_" "$gen"; do
    name=$(basename "$p")
    "$p" --no-such-option >/dev/null 2>"$tmp/err"
    grep -q "^$name: unrecognized option" "$tmp/err" && ! grep -q 'libs\|lt-' "$tmp/err" ||
        fail "$name names itself as: $(head -n 1 "$tmp/err")"
done

# --- loading says how much it mapped and pages it in as its own phase
# (shown for a model this small at --verbose only)
"$gen" --model "$model" --max-tokens 1 --verbose >/dev/null 2>"$tmp/err" ||
    fail "lolcats-generate --verbose: $(cat "$tmp/err")"
grep -q '^loading: 0.00 GiB of weights mapped from .*, used in place' "$tmp/err" &&
    grep -q '^loading: paged in 0.00 GiB in ' "$tmp/err" || fail "loading lines: $(cat "$tmp/err")"

# --- --stage finetune shows its own settings, not those of stage 1
"$train" --model "$model" --data "$text" --out "$tmp/s" --seq-len 128 --window 64 \
    --window-mode sliding --stage finetune --max-steps 0 --val-size 1 --no-summary \
    2>"$tmp/err" || fail "--stage finetune: $(cat "$tmp/err")"
grep -q '^finetune  *AdamW lr 0.0001.*; feature maps trained too, lr 0.01$' "$tmp/err" &&
    ! grep -q 'MSE\|^transfer' "$tmp/err" ||
    fail "--stage finetune prints: $(cat "$tmp/err")"

# --- the summary measures the --val-size chunks, not the whole held-out split
"$train" --model "$model" --data "$text" --out "$tmp/v" --seq-len 128 --window 16 \
    --stage transfer --max-steps 0 --val-size 3 --quiet >"$tmp/out" 2>"$tmp/err" ||
    fail "summary run: $(cat "$tmp/err")"
grep -q 'held-out perplexity (context 128, 384 tokens)' "$tmp/out" ||
    fail "summary with --val-size 3: $(cat "$tmp/out")"

# --- progress on a terminal whatever the output format (--json too), and
# counted right: a last window of one token is no window
if command -v script >/dev/null 2>&1; then
    head -c 3000 "$text" >"$tmp/small.txt"
    "$eval_" -m "$model" -t ppl -d "$tmp/small.txt" -c 100000 --json --quiet >"$tmp/n.json" ||
        fail "lolcats-eval on a small text"
    n=$(sed 's/.*"tokens": \([0-9]*\).*/\1/' "$tmp/n.json")
    script -qec "'$eval_' -m '$model' -t ppl -d '$tmp/small.txt' -c $((n - 1)) --json \
        >'$tmp/j.json'" /dev/null >"$tmp/tty" 2>&1 || fail "lolcats-eval --json on a terminal"
    grep -q 'teacher \[#*\] 1/1 ' "$tmp/tty" && ! grep -q '/2 ' "$tmp/tty" ||
        fail "lolcats-eval --json progress: $(cat "$tmp/tty")"
    grep -q '"windows": 1,' "$tmp/j.json" || fail "lolcats-eval --json: $(cat "$tmp/j.json")"
    script -qec "'$eval_' -m '$model' -t ppl -d '$tmp/small.txt' --json --quiet \
        >/dev/null" /dev/null >"$tmp/tty" 2>&1
    [ -s "$tmp/tty" ] && fail "lolcats-eval --quiet on a terminal printed: $(cat "$tmp/tty")"
fi

# --- SIGINT in an evaluation: acknowledged within a second, saying what it
# waits for; the run stops inside the evaluation and --resume ends with the
# files of an uninterrupted run.  300 held-out chunks make each evaluation
# last a while; the one after step 4 starts when the metrics file has its
# 5th line.
run_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 8 --eval-every 4 --val-size 300 --no-summary \
        --stage transfer --threads 1 "$@"
}
# waits until the file $1 holds the text $2, or the run $pid has ended
wait_for_text() {
    while ! grep -q -- "$2" "$1" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
        sleep 0.005
    done
}
# waits up to a second for the pattern $2 in the file $1
seen_within_1s() {
    i=0
    while [ $i -lt 50 ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.02
        i=$((i + 1))
    done
    return 1
}
# sends SIGINT to the run $pid, checks that the file $1 shows the
# acknowledgment $2 within a second (the run: $3), and waits for the run to
# end: its status in $rc
interrupt() {
    kill -INT "$pid"
    seen_within_1s "$1" "$2" || fail "$3: SIGINT not acknowledged within a second: $(cat "$1")"
    wait "$pid"
    rc=$?
}
(run_exec "$tmp/u" --metrics "$tmp/u.jsonl" --quiet) || fail "uninterrupted run"
(run_exec "$tmp/i" --metrics "$tmp/i.jsonl" 2>"$tmp/ierr") &
pid=$!
wait_for_lines "$tmp/i.jsonl" 5
sleep 0.1 # well inside the evaluation
interrupt "$tmp/ierr" 'interrupted: waiting for the layer being computed in the evaluation' \
    "lolcats-train in an evaluation"
[ "$rc" = 130 ] && grep -q 'stopped in the evaluation after step 4; the state is saved' "$tmp/ierr" ||
    fail "SIGINT in an evaluation: status $rc, $(tail -n 2 "$tmp/ierr")"
(run_exec "$tmp/i" --metrics "$tmp/i.jsonl" --resume --quiet) || fail "resume after SIGINT"
for f in feature_maps.safetensors train_state.safetensors lolcats_config.json; do
    cmp -s "$tmp/u/$f" "$tmp/i/$f" || fail "SIGINT in an evaluation, then --resume: $f differs"
done
[ "$(grep -c '"val_loss"' "$tmp/i.jsonl")" = 3 ] || fail "resumed metrics: $(cat "$tmp/i.jsonl")"
# a state whose eval_pending is neither 0 nor 1 is refused, naming the file
perl -pi -e 's/"eval_pending":"0"/"eval_pending":"7"/' "$tmp/i/train_state.safetensors"
(run_exec "$tmp/i" --resume --quiet 2>"$tmp/err")
rc=$?
[ "$rc" = 3 ] && grep -q 'train_state.safetensors: .*eval_pending is not 0 or 1' "$tmp/err" ||
    fail "a bad eval_pending: status $rc, $(cat "$tmp/err")"

# --- a second signal stops at once and leaves the folder as it was: both
# arrive while the program is stopped in the first evaluation of a new run
# over a finished checkpoint
cp -r "$tmp/u" "$tmp/w"
(run_exec "$tmp/w" 2>"$tmp/werr") &
pid=$!
wait_for_text "$tmp/werr" 'transfer: 8 optimizer steps'
kill -STOP "$pid"
kill -INT "$pid"
kill -TERM "$pid"
kill -CONT "$pid"
wait "$pid"
rc=$?
[ "$rc" = 130 ] && grep -q 'stopped at once' "$tmp/werr" ||
    fail "two signals: status $rc, $(tail -n 2 "$tmp/werr")"
for f in feature_maps.safetensors train_state.safetensors lolcats_config.json; do
    cmp -s "$tmp/u/$f" "$tmp/w/$f" || fail "stopped at once: $f changed"
done

# --- lolcats-eval: SIGINT during a perplexity is acknowledged within a second
("$eval_" -m "$model" -t ppl -d "$text" --json --threads 1 >"$tmp/e.json" 2>"$tmp/eerr") &
pid=$!
wait_for_text "$tmp/eerr" 'teacher: perplexity of'
interrupt "$tmp/eerr" 'interrupted: waiting for the teacher window' "lolcats-eval"
[ "$rc" = 130 ] && grep -q 'perplexity stopped after' "$tmp/eerr" ||
    fail "lolcats-eval after SIGINT: status $rc, $(cat "$tmp/eerr")"

exit $status
