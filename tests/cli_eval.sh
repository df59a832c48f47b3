#!/bin/sh
# lolcats-eval on multiple-choice tasks: the accuracies of stories260K on
# the first 50 items of each task are those of the independent reference
# (data/ref/eval_reference.json), results do not depend on the batch or the
# thread count, --compare prints both models, and bad task files are exit
# status 3 with a message naming the file and line.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
tasks=$(data_path eval)
text=$(data_path text/tinystories/tinystories_val.txt)
ref="$LC_DATA_DIR/ref/eval_reference.json"
[ -d "$model" ] && [ -d "$tasks" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
run() { "$eval_" --model "$model" --threads 1 --quiet "$@"; }

# value of "key": in a one-line JSON object
field() { sed -n "s/.*\"$2\": \\([^,}]*\\).*/\\1/p" <<EOT
$1
EOT
}

# --- the first 50 items of every task, against the reference's zero-shot runs
run --task all --data "$tasks" --limit 50 --json >"$tmp/all.jsonl" || fail "--task all failed"
[ "$(wc -l <"$tmp/all.jsonl")" = 5 ] || fail "--task all: $(wc -l <"$tmp/all.jsonl") results, not 5"
# the reference has, per run, "task", "shots", "acc", "acc_norm" and
# "acc_bytes" on lines of their own
awk '/^ *"task":/ { gsub(/[",]/, "", $2); task = $2 }
     /^ *"shots":/ { gsub(/,/, "", $2); shots = $2 }
     /^ *"acc":/ { gsub(/,/, "", $2); acc = $2 }
     /^ *"acc_norm":/ { gsub(/,/, "", $2); acc_norm = $2 }
     /^ *"acc_bytes":/ { gsub(/,/, "", $2); if (shots == 0) print task, acc, acc_norm, $2 }' \
    "$ref" >"$tmp/want"
[ "$(wc -l <"$tmp/want")" = 5 ] || fail "cannot read 5 zero-shot runs from $ref"
while read -r task acc acc_norm acc_bytes; do
    line=$(grep "\"task\": \"$task\"" "$tmp/all.jsonl")
    got_acc=$(field "$line" acc)
    got_norm=$(field "$line" acc_norm)
    got_bytes=$(field "$line" acc_bytes)
    [ "$(field "$line" items)" = 50 ] || fail "$task: not 50 items: $line"
    # the default context: the model's length, as the reference's
    [ "$(field "$line" context)" = 512 ] || fail "$task: not the model's 512 tokens: $line"
    awk -v a="$got_acc" -v b="$acc" -v c="$got_norm" -v d="$acc_norm" -v e="$got_bytes" \
        -v f="$acc_bytes" \
        'BEGIN { exit !((a - b) ^ 2 < 1e-12 && (c - d) ^ 2 < 1e-12 && (e - f) ^ 2 < 1e-12) }' ||
        fail "$task: acc $got_acc acc_norm $got_norm acc_bytes $got_bytes, reference $acc" \
            "$acc_norm $acc_bytes"
done <"$tmp/want"
grep '"task": "winogrande"' "$tmp/all.jsonl" | grep -q '"acc_norm_is_acc": true' ||
    fail "winogrande does not say acc_norm is acc"

# --- a task file of one's own, the task's own file, 2 threads, a few shots
printf '%s\n' '{"context": "Once upon a time there was a little", "choices": [" girl", " xq"], "gold": 0}' \
    '{"context": "The cat sat on the", "choices": [" mat.", " zzzz qqq"], "gold": 0}' \
    '' '{"context": "Lily and Tom went to the", "choices": [" park", " fzx"], "gold": 0}' >"$tmp/own.jsonl"
run --task "$tmp/own.jsonl" --json >"$tmp/own.out" || fail "a JSONL task failed"
[ "$(field "$(cat "$tmp/own.out")" items)" = 3 ] || fail "JSONL task: $(cat "$tmp/own.out")"
run --task piqa --data "$tasks/piqa/valid.jsonl" --limit 20 --shots 3 --json |
    sed 's/"seconds": [0-9.]*//' >"$tmp/s1" || fail "3-shot piqa failed"
"$eval_" --model "$model" --threads 2 --quiet --task piqa --data "$tasks" --limit 20 --shots 3 \
    --json | sed 's/"seconds": [0-9.]*//' >"$tmp/s2" || fail "3-shot piqa with 2 threads failed"
sed 's|"data": "[^"]*"||' "$tmp/s1" >"$tmp/s1n"
sed 's|"data": "[^"]*"||' "$tmp/s2" >"$tmp/s2n"
cmp -s "$tmp/s1n" "$tmp/s2n" || fail "3-shot piqa differs between 1 and 2 threads"

# --- --compare: a linearized model from a short training run
"$train" --model "$model" --data "$text" --out "$tmp/lin" --seq-len 64 --window 16 \
    --grad-accum 1 --max-steps 2 --eval-every 2 --val-size 2 --no-summary --quiet --threads 1 ||
    fail "training a linearized model failed"
run --lolcats "$tmp/lin" --compare --task piqa,winogrande --data "$tasks" --limit 20 \
    >"$tmp/cmp" || fail "--compare failed"
grep -q 'softmax (teacher).*linearized (lolcats)' "$tmp/cmp" || fail "--compare: no header"
grep -q '^piqa  *20 ' "$tmp/cmp" && grep -q '^winogrande\*  *20 ' "$tmp/cmp" ||
    fail "--compare: no line per task"
run --lolcats "$tmp/lin" --compare --task piqa --data "$tasks" --limit 20 --json >"$tmp/cmp.json" ||
    fail "--compare --json failed"
grep -q '"attention": "softmax"' "$tmp/cmp.json" && grep -q '"attention": "linearized"' "$tmp/cmp.json" ||
    fail "--compare --json: not both models"
# the teacher's figures are those of a run without --lolcats
t1=$(grep softmax "$tmp/cmp.json" | sed 's/.*"acc": \([^,]*\), .*"acc_norm": \([^,]*\),.*/\1 \2/')
t2=$(run --task piqa --data "$tasks" --limit 20 --json |
    sed 's/.*"acc": \([^,]*\), .*"acc_norm": \([^,]*\),.*/\1 \2/')
[ "$t1" = "$t2" ] || fail "teacher with --compare ($t1) differs from the teacher alone ($t2)"

# --- errors: exit status and a message naming the file and line
expect() {
    want=$1; shift
    msg=$1; shift
    "$eval_" --model "$model" --threads 1 --quiet "$@" >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = "$want" ] || fail "$* exited $rc, not $want: $(cat "$tmp/err")"
    grep -q -- "$msg" "$tmp/err" || fail "$*: message '$(cat "$tmp/err")' lacks '$msg'"
}
printf '%s\n' '{"context": "a", "choices": [" b", " c"], "gold": 1}' '{"context": "a", "choices": [" b"' >"$tmp/bad1.jsonl"
expect 3 "bad1.jsonl: line 2: invalid JSON" --task "$tmp/bad1.jsonl"
printf '%s\n' '{"context": "a", "choices": [" b", " c"], "gold": 5}' >"$tmp/bad2.jsonl"
expect 3 "bad2.jsonl: line 1: .*out of range" --task "$tmp/bad2.jsonl"
printf '%s\n' '{"context": "a", "choices": [], "gold": 0}' >"$tmp/bad3.jsonl"
expect 3 "bad3.jsonl: line 1: .*empty" --task "$tmp/bad3.jsonl"
printf '%s\n' '{"context": "a", "answers": [" b"], "gold": 0}' >"$tmp/bad4.jsonl"
expect 3 'bad4.jsonl: line 1: missing field "choices"' --task "$tmp/bad4.jsonl"
mkdir -p "$tmp/p/piqa"
head -n 3 "$tasks/piqa/valid.jsonl" >"$tmp/p/piqa/valid.jsonl"
printf '0\n3\n1\n' >"$tmp/p/piqa/valid-labels.lst"
expect 3 "valid-labels.lst: line 2" --task piqa --data "$tmp/p"
head -c 200000 "$tasks/hellaswag/hellaswag_val_full.txt.bz2" >"$tmp/hs.txt.bz2"
expect 3 "hs.txt.bz2: truncated bzip2" --task hellaswag --data "$tmp/hs.txt.bz2"
printf '%s\n' '{"question": "q", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "E"}' >"$tmp/arc.jsonl"
expect 3 "arc.jsonl: line 1: answerKey" --task arc-easy --data "$tmp/arc.jsonl"
expect 3 "no-such.jsonl" --task "$tmp/no-such.jsonl"
expect 2 "unknown task 'mmlu'" --task mmlu --data "$tasks"
expect 2 "needs --data" --task piqa
expect 2 "ppl cannot be combined" --task ppl,piqa --data "$tasks"
expect 2 "few-shot" --task "$tmp/own.jsonl" --shots 3
expect 2 "continuation" --task "$tmp/own.jsonl" --context 2
exit $status
