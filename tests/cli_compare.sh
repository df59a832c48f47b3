#!/bin/sh
# lolcats-train's yardstick, the lora-only stage (the same LoRA on the
# original softmax model), and the learning-rate schedules, on the small
# real model:
#  - with no step the adapter is zero, so the summary's teacher + LoRA
#    equals the teacher, and lolcats-eval reads the folder as that model;
#  - byte-identical adapters for 1 and 2 threads, and --compare-lora trains
#    exactly the adapter of a separate --stage lora-only run with the same
#    options into DIR/lora-only, resumes after kill -9 in that stage to the
#    same files, and prints the ratio;
#  - mixing it up with a linearized folder or contradicting options is
#    refused;
#  - stage 2 trains the feature maps at --feature-map-lr by default and
#    keeps stage 1's for the summary and for running stage 2 again;
#    --no-train-feature-maps keeps stage 1's fixed;
#  - --lr-schedule cosine / constant with warm-up follow their formulas,
#    and a resumed cosine run ends as an uninterrupted one.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_val.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }

# short runs: 8 steps of 2 x 128 tokens, an evaluation every 4 steps
run_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 8 --eval-every 4 --val-size 8 --quiet "$@"
}
run() { (run_exec "$@"); }

# --- no step: the zero adapter leaves the original model
run "$tmp/zero" --stage lora-only --max-steps 0 >"$tmp/zero.out" 2>&1 ||
    fail "lora-only --max-steps 0 failed: $(cat "$tmp/zero.out")"
t=$(grep 'teacher (softmax attention)' "$tmp/zero.out" | awk '{print $NF}')
y=$(grep 'teacher + LoRA (softmax attention)' "$tmp/zero.out" | awk '{print $(NF-1)}')
[ -n "$t" ] && [ "$t" = "$y" ] ||
    fail "a zero adapter: teacher $t but teacher + LoRA '$y'"
grep -q '"type": "softmax"' "$tmp/zero/lolcats_config.json" ||
    fail "the lora-only folder's lolcats_config.json does not say softmax attention"
[ ! -e "$tmp/zero/feature_maps.safetensors" ] || fail "the lora-only stage wrote feature maps"
e1=$("$eval_" -m "$model" -t ppl -d "$text" --split val -c 128 --json | sed 's/.*"ppl": //; s/}//')
e2=$("$eval_" -m "$model" --lolcats "$tmp/zero" -t ppl -d "$text" --split val -c 128 --json |
    sed 's/.*"ppl": //; s/}//')
[ -n "$e1" ] && [ "$e1" = "$e2" ] ||
    fail "lolcats-eval: the zero lora-only adapter gives $e2, the original model $e1"

# --- training: the same adapter for any thread count
run "$tmp/lo1" --stage lora-only --threads 1 --no-summary --metrics "$tmp/lo1.jsonl" ||
    fail "lora-only with 1 thread failed"
run "$tmp/lo2" --stage lora-only --threads 2 --no-summary || fail "lora-only with 2 threads failed"
cmp -s "$tmp/lo1/adapter_model.safetensors" "$tmp/lo2/adapter_model.safetensors" ||
    fail "lora-only adapters differ between 1 and 2 threads"
n=$(grep -c '"stage": "lora-only"' "$tmp/lo1.jsonl")
[ "$n" = 11 ] || fail "lora-only metrics: $n lines, not 8 steps + 3 evaluations"
# it learned something: the last evaluation beats the first
first=$(grep val_loss "$tmp/lo1.jsonl" | head -n 1 | sed 's/.*"val_loss": //; s/,.*//')
best=$(tail -n 1 "$tmp/lo1.jsonl" | sed 's/.*"best_val_loss": //; s/,.*//')
awk -v a="$first" -v b="$best" 'BEGIN { exit !(b < a) }' ||
    fail "lora-only: validation loss $first at the start, best $best"

# --- --compare-lora: both stages, then the same LoRA into DIR/lora-only
run "$tmp/cmp" --compare-lora --metrics "$tmp/cmp.jsonl" >"$tmp/cmp.out" 2>&1 ||
    fail "--compare-lora failed: $(cat "$tmp/cmp.out")"
for f in adapter_model.safetensors adapter_config.json lolcats_config.json; do
    cmp -s "$tmp/lo1/$f" "$tmp/cmp/lora-only/$f" ||
        fail "--compare-lora: lora-only/$f differs from a --stage lora-only run's"
done
[ -f "$tmp/cmp/feature_maps.safetensors" ] && [ -f "$tmp/cmp/adapter_model.safetensors" ] ||
    fail "--compare-lora: the linearized model's files are missing"
l=$(grep 'attention transfer + LoRA' "$tmp/cmp.out" | awk '{print $(NF-1)}')
y=$(grep 'teacher + LoRA (softmax attention)' "$tmp/cmp.out" | awk '{print $(NF-1)}')
r=$(grep 'ratio linearized / (teacher + LoRA)' "$tmp/cmp.out" | awk '{print $NF}')
awk -v l="$l" -v y="$y" -v r="$r" 'BEGIN { d = l / y - r; exit !(r > 0 && d < 1e-3 && d > -1e-3) }' ||
    fail "--compare-lora summary: linearized $l, teacher + LoRA $y, ratio '$r'"
for st in transfer finetune lora-only; do
    n=$(grep -c "\"stage\": \"$st\"" "$tmp/cmp.jsonl")
    [ "$n" = 11 ] || fail "--compare-lora metrics: $n lines of stage $st"
done

# kill -9 in the lora-only stage (after its second evaluation), then --resume
d="$tmp/kill"
(run_exec "$d" --compare-lora --no-summary --metrics "$d.jsonl") &
pid=$!
wait_for_lines "$d.jsonl" 28
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
grep -q '"stage": "lora-only"' "$d.jsonl" || fail "the kill did not land in the lora-only stage"
run "$d" --compare-lora --no-summary --metrics "$d.jsonl" --resume ||
    fail "--compare-lora --resume after kill -9 failed"
for f in feature_maps.safetensors adapter_model.safetensors lora-only/adapter_model.safetensors \
    lora-only/train_state.safetensors; do
    cmp -s "$tmp/cmp/$f" "$d/$f" || fail "kill -9 in lora-only then --resume: $f differs"
done
n=$(grep -c . "$d.jsonl")
[ "$n" = 33 ] || fail "kill -9 in lora-only then --resume: $n metrics lines, not 33"

# --- refusals, leaving the folders as they were
cp "$tmp/cmp/adapter_model.safetensors" "$tmp/adapter.keep"
run "$tmp/cmp" --stage lora-only --no-summary 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'linearized model' "$tmp/err" ||
    fail "lora-only into a linearized folder: exit $rc, $(cat "$tmp/err")"
cmp -s "$tmp/adapter.keep" "$tmp/cmp/adapter_model.safetensors" ||
    fail "a refused lora-only run changed the linearized model's adapter"
for bad in "--stage lora-only --compare-lora" "--stage lora-only --no-transfer" \
    "--lr-schedule linear" "--lora-lr-schedule" "--warmup-steps -1"; do
    # shellcheck disable=SC2086
    run "$tmp/bad" $bad 2>"$tmp/err"
    rc=$?
    [ "$rc" = 2 ] || fail "$bad: exit $rc, not 2 ($(cat "$tmp/err"))"
done

# --- stage 2 trains the feature maps by default, at --feature-map-lr 0.01,
# keeping stage 1's aside for the summary's row of attention transfer alone;
# another rate gives other feature maps; --no-train-feature-maps keeps
# stage 1's fixed
run "$tmp/fm1" >"$tmp/fm1.out" || fail "stage 2 with the default feature maps failed"
run "$tmp/fm2" --train-feature-maps --feature-map-lr 0.01 --no-summary ||
    fail "--feature-map-lr 0.01 failed"
run "$tmp/fm3" --feature-map-lr 0.003 --no-summary || fail "--feature-map-lr 0.003 failed"
run "$tmp/fm4" --no-train-feature-maps >"$tmp/fm4.out" || fail "--no-train-feature-maps failed"
cmp -s "$tmp/fm1/feature_maps.safetensors" "$tmp/fm2/feature_maps.safetensors" &&
    cmp -s "$tmp/fm1/adapter_model.safetensors" "$tmp/fm2/adapter_model.safetensors" ||
    fail "--train-feature-maps --feature-map-lr 0.01 is not the default"
cmp -s "$tmp/fm1/feature_maps.safetensors" "$tmp/fm3/feature_maps.safetensors" &&
    fail "--feature-map-lr 0.003 left the feature maps as with 0.01"
grep -q '"feature_map_lr": 0.0030' "$tmp/fm3/lolcats_config.json" ||
    fail "lolcats_config.json does not record --feature-map-lr"
cmp -s "$tmp/fm1/transfer_feature_maps.safetensors" "$tmp/fm4/feature_maps.safetensors" ||
    fail "transfer_feature_maps.safetensors is not stage 1's feature maps"
cmp -s "$tmp/fm1/feature_maps.safetensors" "$tmp/fm4/feature_maps.safetensors" &&
    fail "stage 2 left the feature maps as they were"
[ -e "$tmp/fm4/transfer_feature_maps.safetensors" ] &&
    fail "--no-train-feature-maps kept a second copy of the feature maps"
grep -q '"train_feature_maps": false' "$tmp/fm4/lolcats_config.json" ||
    fail "lolcats_config.json of --no-train-feature-maps says the maps were trained"
# the summary's row of attention transfer alone: stage 1's maps either way
t1=$(grep 'attention transfer only' "$tmp/fm1.out")
t4=$(grep 'attention transfer only' "$tmp/fm4.out")
[ -n "$t1" ] && [ "$t1" = "$t4" ] ||
    fail "attention transfer alone: '$t1' with trained feature maps, '$t4' without"
# stage 2 again in the same folder starts from stage 1's maps, not stage 2's
cp -r "$tmp/fm1" "$tmp/fm5"
run "$tmp/fm5" --stage finetune --no-summary || fail "stage 2 run again failed"
cmp -s "$tmp/fm1/feature_maps.safetensors" "$tmp/fm5/feature_maps.safetensors" &&
    cmp -s "$tmp/fm1/adapter_model.safetensors" "$tmp/fm5/adapter_model.safetensors" ||
    fail "stage 2 run again did not start from stage 1's feature maps"
# without training them it makes stage 1's the folder's maps again
run "$tmp/fm5" --stage finetune --no-train-feature-maps --no-summary ||
    fail "stage 2 run again with --no-train-feature-maps failed"
cmp -s "$tmp/fm4/feature_maps.safetensors" "$tmp/fm5/feature_maps.safetensors" &&
    cmp -s "$tmp/fm4/adapter_model.safetensors" "$tmp/fm5/adapter_model.safetensors" ||
    fail "stage 2 run again with --no-train-feature-maps differs from a run without them"
[ -e "$tmp/fm5/transfer_feature_maps.safetensors" ] &&
    fail "stage 2 with --no-train-feature-maps left stage 1's maps beside the folder's"

# --- schedules: the rate of every step (k = 1..8) against the formula
check_lr() {
    # $1 metrics, $2 stage, $3 schedule, $4 lr, $5 warm-up, $6 min lr
    grep "\"stage\": \"$2\"" "$1" | grep '"loss"' | sed 's/.*"step": //; s/,.*"lr": /\t/; s/,.*//' |
        awk -v s="$3" -v lr="$4" -v w="$5" -v lo="$6" -v n=8 '
        { k = $1; want = lr
          if (s == "cosine" && k - 1 > w) want = lo + (lr - lo) * 0.5 * (1 + cos(3.141592653589793 * (k - 1 - w) / (n - w)))
          if (k - 1 < w) want = want * k / w
          if ((want - $2) / want > 1e-6 || ($2 - want) / want > 1e-6) { print "step " k ": lr " $2 ", want " want; bad = 1 }
          seen++ }
        END { if (seen != 8) { print seen " steps"; bad = 1 }; exit bad }'
}
run "$tmp/cos" --lr-schedule cosine --warmup-steps 3 --lora-lr-schedule constant \
    --lora-warmup-steps 2 --no-summary --metrics "$tmp/cos.jsonl" || fail "cosine run failed"
msg=$(check_lr "$tmp/cos.jsonl" transfer cosine 0.01 3 1e-05) || fail "stage 1 cosine: $msg"
msg=$(check_lr "$tmp/cos.jsonl" finetune constant 0.0001 2 1e-05) || fail "stage 2 constant: $msg"
# a resumed cosine run (killed after its second evaluation) ends the same
d="$tmp/coskill"
(run_exec "$d" --lr-schedule cosine --warmup-steps 3 --lora-lr-schedule constant \
    --lora-warmup-steps 2 --no-summary --metrics "$d.jsonl") &
pid=$!
wait_for_lines "$d.jsonl" 7
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
run "$d" --lr-schedule cosine --warmup-steps 3 --lora-lr-schedule constant \
    --lora-warmup-steps 2 --no-summary --metrics "$d.jsonl" --resume || fail "cosine resume failed"
for f in feature_maps.safetensors adapter_model.safetensors train_state.safetensors; do
    cmp -s "$tmp/cos/$f" "$d/$f" || fail "cosine, kill -9 then --resume: $f differs"
done
# another schedule is another run: resuming it with the plateau is refused
run "$d" --resume --no-summary 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] || fail "resume with another schedule: exit $rc, not 2"
exit $status
