#!/bin/sh
# lolcats-train end to end on the small real model: byte-identical output
# for 1 and 2 threads, resume after kill -9 and after SIGINT gives the
# same files as an uninterrupted run, bad input gets clear errors and never
# damages an existing checkpoint, and lolcats-eval reads the result; first
# for attention transfer alone, then for both stages (kills in stage 2,
# --recompute, --merge, --stage finetune, --no-transfer).
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_val.txt)
gguf=$(data_path models/stories260K/stories260K.gguf)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }

# a short run: 24 steps of 2 x 128 tokens (window 16, so that the linear
# part is used), an evaluation every 4 steps.  The program replaces the
# subshell (exec), so that $! of a run in the background is the trainer.
run_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 24 --eval-every 4 --val-size 8 --no-summary --quiet \
        --stage transfer "$@"
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
for k in 0 1 3 6 11 17 24 30; do
    d="$tmp/k$k"
    (run_exec "$d" --metrics "$d.jsonl") &
    pid=$!
    wait_for_lines "$d.jsonl" "$k"
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
wait_for_lines "$d.jsonl" 8
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
# an unwritable folder: by its mode, or for root (whom modes do not stop)
# by a read-only bind mount in a mount namespace of its own
mkdir "$tmp/ro" && chmod 0555 "$tmp/ro"
ro_run=
if [ "$(id -u)" != 0 ]; then
    ro_run=plain
elif unshare -m sh -c "mount --bind '$tmp/ro' '$tmp/ro' && mount -o remount,bind,ro '$tmp/ro'" 2>/dev/null; then
    ro_run=mount
else
    echo "note: root without mount namespaces, the unwritable folder is not tried"
fi
if [ "$ro_run" = plain ]; then
    "$train" -m "$model" -d "$text" -o "$tmp/ro" --quiet 2>"$tmp/err"
elif [ "$ro_run" = mount ]; then
    unshare -m sh -c "mount --bind '$tmp/ro' '$tmp/ro' && mount -o remount,bind,ro '$tmp/ro' &&
        exec '$train' -m '$model' -d '$text' -o '$tmp/ro' --quiet" 2>"$tmp/err"
fi
rc=$?
if [ -n "$ro_run" ]; then
    [ "$rc" = 4 ] && grep -q 'not writable' "$tmp/err" ||
        fail "unwritable folder ($ro_run): status $rc, $(cat "$tmp/err")"
    [ -z "$(ls -A "$tmp/ro")" ] || fail "unwritable folder ($ro_run): something was written there"
fi
# a full disk, simulated by a file size limit: the write fails cleanly and
# the existing checkpoint is untouched
(
    trap '' XFSZ
    ulimit -f 64
    exec "$train" --model "$model" --data "$text" --out "$tmp/t1" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 4 --eval-every 2 --val-size 4 --no-summary --quiet
) 2>"$tmp/err"
rc=$?
[ "$rc" = 4 ] || fail "full disk: status $rc, not 4 ($(cat "$tmp/err"))"
grep -q 'cannot write' "$tmp/err" || fail "full disk: message '$(cat "$tmp/err")'"
cmp -s "$tmp/before" "$tmp/t1/feature_maps.safetensors" ||
    fail "a failed run damaged the existing feature_maps.safetensors"

# ===================== both stages =====================
# 8 steps per stage, an evaluation every 4: the metrics hold 11 lines of
# stage 1 (evaluations at lines 1, 6, 11), then 11 of stage 2 (evaluations
# at lines 12, 17, 22).  LoRA dropout on, so that resuming must redraw the
# same masks.
all_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 128 --window 16 \
        --grad-accum 2 --max-steps 8 --eval-every 4 --val-size 8 --no-summary --quiet \
        --lora-dropout 0.1 --lora-lr 0.001 "$@"
}
all_run() { (all_exec "$@"); }
outputs="feature_maps.safetensors transfer_feature_maps.safetensors adapter_model.safetensors
adapter_config.json lolcats_config.json train_state.safetensors"
same_outputs() { # DIR1 DIR2 WHAT
    for f in $outputs; do
        cmp -s "$1/$f" "$2/$f" || fail "$3: $f differs"
    done
}
all_run "$tmp/a1" --threads 1 --metrics "$tmp/a1.jsonl" --merge || fail "--stage all, 1 thread"
all_run "$tmp/a2" --threads 2 --metrics "$tmp/a2.jsonl" || fail "--stage all, 2 threads"
same_outputs "$tmp/a1" "$tmp/a2" "--stage all with 1 and 2 threads"
steps=$(grep -c '"stage": "finetune", "step": [0-9]*, "epoch": [0-9]*, "loss"' "$tmp/a2.jsonl")
evals=$(grep -c '"stage": "finetune".*"val_loss"' "$tmp/a2.jsonl")
[ "$steps" = 8 ] && [ "$evals" = 3 ] || fail "--stage all: $steps finetune steps, $evals evaluations"
grep -q '"stages_done": 3' "$tmp/a1/lolcats_config.json" || fail "stages_done is not 3"
grep -q '"peft_type": "LORA"' "$tmp/a1/adapter_config.json" || fail "adapter_config.json"
# the adapter changed: B is no longer all zeros, the merged q_proj differs
cmp -s "$tmp/a1/merged/model.safetensors" "$model/model.safetensors" &&
    fail "--merge wrote the base weights unchanged"
# --recompute: the same files
all_run "$tmp/a3" --recompute --metrics "$tmp/a3.jsonl" || fail "--recompute run failed"
same_outputs "$tmp/a1" "$tmp/a3" "--recompute"

# kill -9 in stage 2 (and at the end of stage 1), then --resume
for k in 11 12 14 19; do
    d="$tmp/ak$k"
    (all_exec "$d" --metrics "$d.jsonl") &
    pid=$!
    wait_for_lines "$d.jsonl" "$k"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    all_run "$d" --metrics "$d.jsonl" --resume || fail "--stage all: resume after kill at line $k"
    same_outputs "$tmp/a1" "$d" "--stage all, kill -9 at line $k then --resume"
    steps=$(grep -c '"loss"' "$d.jsonl")
    evals=$(grep -c '"val_loss"' "$d.jsonl")
    [ "$steps" = 16 ] && [ "$evals" = 6 ] ||
        fail "--stage all, kill -9 at line $k: metrics has $steps step and $evals evaluation lines"
done

# a full disk on a folder holding a complete two-stage checkpoint: the new
# run fails at its first write and every file of the checkpoint is intact
cp -r "$tmp/a2" "$tmp/full"
(
    trap '' XFSZ
    ulimit -f 64
    all_exec "$tmp/full"
) 2>"$tmp/err"
rc=$?
[ "$rc" = 4 ] || fail "full disk, two stages: status $rc, not 4 ($(cat "$tmp/err"))"
same_outputs "$tmp/a2" "$tmp/full" "a run failing on a full disk"

# the merged model loads as a plain model (softmax attention)
"$eval_" -m "$tmp/a1/merged" -t ppl -d "$text" --split val -c 128 --json -q \
    >"$tmp/merged.json" || fail "lolcats-eval on the merged model failed"
grep -q '"ppl"' "$tmp/merged.json" || fail "merged model: $(cat "$tmp/merged.json")"

# stage 2 alone: from the feature maps of a transfer run, or refused
cp -r "$tmp/t1" "$tmp/f1"
all_run "$tmp/f1" --stage finetune --max-steps 2 || fail "--stage finetune after transfer"
[ -f "$tmp/f1/adapter_model.safetensors" ] || fail "--stage finetune wrote no adapter"
cmp -s "$tmp/t1/feature_maps.safetensors" "$tmp/f1/transfer_feature_maps.safetensors" ||
    fail "--stage finetune did not keep stage 1's feature maps"
cmp -s "$tmp/t1/feature_maps.safetensors" "$tmp/f1/feature_maps.safetensors" &&
    fail "--stage finetune left the feature maps as they were"
all_run "$tmp/f2" --stage finetune 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'stage transfer first' "$tmp/err" ||
    fail "--stage finetune without feature maps: status $rc, $(cat "$tmp/err")"
# the baseline: no attention transfer, feature maps trained with LoRA; with
# the model given relative to the working folder, and an output folder whose
# parents are missing (created); the configs name the model by its absolute
# path, as PEFT needs it from anywhere
(cd "$(dirname "$model")" && model=./$(basename "$model") &&
    all_exec "$tmp/deep/er/nt" --no-transfer --max-steps 2) || fail "--no-transfer failed"
nt="$tmp/deep/er/nt"
grep -q '"train_feature_maps": true' "$nt/lolcats_config.json" &&
    grep -q '"stages_done": 2' "$nt/lolcats_config.json" || fail "--no-transfer config"
abs_model=$(cd "$model" && pwd -P)
grep -q "\"base_model_name_or_path\": \"$abs_model\"" "$nt/adapter_config.json" ||
    fail "adapter_config.json does not name $abs_model: $(grep base_model "$nt/adapter_config.json")"
grep -q "\"path\": \"$abs_model\"" "$nt/lolcats_config.json" ||
    fail "lolcats_config.json does not name $abs_model"
"$train" -m "$model" -d "$text" -o "$tmp/x" --stage transfer --no-transfer -q 2>"$tmp/err"
[ $? = 2 ] || fail "--stage transfer --no-transfer accepted"
# merging needs a Hugging Face folder: refused before any training
if [ -f "$gguf" ]; then
    "$train" -m "$gguf" -d "$text" -o "$tmp/x" --merge -q 2>"$tmp/err"
    rc=$?
    [ "$rc" = 2 ] && grep -q 'Hugging Face model folder' "$tmp/err" ||
        fail "--merge with a GGUF model: status $rc, $(cat "$tmp/err")"
else
    echo "note: $gguf not found: --merge with a GGUF model not checked"
fi

# --- a hybrid model: layers 1 and 3 keep softmax attention through both
# stages; the output folder records them, the feature maps have no keys
# for them, evaluation and generation load the folder, and stage 2 alone
# refuses another list
all_run "$tmp/sm" --softmax-layers 1,3 --threads 1 || fail "--softmax-layers 1,3 failed"
all_run "$tmp/sm2" --softmax-layers 3,1 --threads 2 || fail "--softmax-layers 3,1 failed"
same_outputs "$tmp/sm" "$tmp/sm2" "--softmax-layers with 1 and 2 threads"
tr -d ' \n' <"$tmp/sm/lolcats_config.json" | grep -q '"softmax_layers":\[1,3\]' ||
    fail "lolcats_config.json does not list the softmax layers"
grep -aq 'model.layers.1.self_attn' "$tmp/sm/feature_maps.safetensors" &&
    fail "feature maps of softmax layer 1 were saved"
grep -aq 'model.layers.2.self_attn.feature_map_q' "$tmp/sm/feature_maps.safetensors" ||
    fail "feature maps of layer 2 missing"
grep -aq 'layers.1.self_attn.q_proj.lora_A' "$tmp/sm/adapter_model.safetensors" ||
    fail "no LoRA adapter on the softmax layer"
cmp -s "$tmp/sm/feature_maps.safetensors" "$tmp/a1/feature_maps.safetensors" &&
    fail "--softmax-layers changed nothing"
"$eval_" -m "$model" --lolcats "$tmp/sm" -t ppl -d "$text" --split val -c 128 --json -q \
    >"$tmp/sm.json" || fail "lolcats-eval on a hybrid model failed"
grep -q '"ppl"' "$tmp/sm.json" || fail "hybrid model evaluation: $(cat "$tmp/sm.json")"
"$gen" -m "$model" --lolcats "$tmp/sm" -p "Once upon a time" -n 40 --temperature 0 -q \
    >"$tmp/sm.txt" || fail "lolcats-generate on a hybrid model failed"
[ -s "$tmp/sm.txt" ] || fail "lolcats-generate on a hybrid model wrote nothing"
all_run "$tmp/sm" --stage finetune --max-steps 2 --softmax-layers 2 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'softmax layers 1,3' "$tmp/err" ||
    fail "--stage finetune with other softmax layers: status $rc, $(cat "$tmp/err")"
for bad in 5 1,1 0-4 x 2-; do
    "$train" -m "$model" -d "$text" -o "$tmp/x" --softmax-layers "$bad" -q 2>"$tmp/err"
    rc=$?
    [ "$rc" = 2 ] && grep -q 'softmax\|linearize' "$tmp/err" ||
        fail "--softmax-layers $bad: status $rc, $(cat "$tmp/err")"
done

# --- block-wise transfer (--block-layers 2: blocks of layers 0-1, 2-3, 4)
# on a short text: the hidden states at each block's first layer are
# cached in files of 50 chunks, each block is trained on its own and has
# its own state; kill -9 while caching and while training blocks, then
# --resume: the same files; a damaged cache file is made again
head -c 100000 "$text" >"$tmp/bw.txt"
bw_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$tmp/bw.txt" --out "$out" --seq-len 128 \
        --window 16 --grad-accum 2 --max-steps 8 --eval-every 4 --val-size 8 --no-summary \
        --quiet --stage transfer --block-layers 2 --cache-shard-chunks 50 "$@"
}
bw_run() { (bw_exec "$@"); }
bw_same() { # DIR WHAT: every file of the block-wise run in $tmp/bw1
    for f in $(cd "$tmp/bw1" && find . -type f | sort); do
        cmp -s "$tmp/bw1/$f" "$1/$f" || fail "$2: $f differs"
    done
    if find "$1" -name '*.tmp.*' | grep -q .; then
        fail "$2: temporary files left: $(find "$1" -name '*.tmp.*')"
    fi
}
bw_run "$tmp/bw1" --threads 1 --metrics "$tmp/bw1.jsonl" || fail "block-wise transfer failed"
bw_run "$tmp/bw2" --threads 2 --metrics "$tmp/bw2.jsonl" || fail "block-wise, 2 threads, failed"
bw_same "$tmp/bw2" "block-wise with 1 and 2 threads"
# for each of the 3 blocks: the training chunks in several shards, the 8
# validation chunks in one
for b in 0000 0001 0002; do
    [ "$(ls "$tmp/bw1/hidden_states" | grep -c "^train-b$b-s0000[0-9].safetensors$")" -ge 2 ] &&
        [ "$(ls "$tmp/bw1/hidden_states" | grep -c "^val-b$b-s")" = 1 ] ||
        fail "hidden state files of block $b: $(ls "$tmp/bw1/hidden_states")"
done
[ "$(ls "$tmp/bw1/hidden_states" | grep -c 'b0003')" = 0 ] || fail "a fourth block was cached"
[ "$(ls "$tmp/bw1/blocks" | wc -l)" = 6 ] || fail "block files: $(ls "$tmp/bw1/blocks")"
# 3 blocks of 8 step lines and 3 evaluations
[ "$(grep -c '"block": 1, "layers": \[2, 4\]' "$tmp/bw1.jsonl")" = 11 ] ||
    fail "block metrics: $(head -3 "$tmp/bw1.jsonl")"
cmp -s "$tmp/bw1/feature_maps.safetensors" "$tmp/t1/feature_maps.safetensors" &&
    fail "block-wise transfer gave the joint result"
for k in cache 14; do
    d="$tmp/bwk$k"
    (bw_exec "$d" --metrics "$d.jsonl") &
    pid=$!
    if [ "$k" = cache ]; then
        while [ "$(ls "$d/hidden_states" 2>/dev/null | grep -vc tmp)" -lt 4 ] &&
            kill -0 "$pid" 2>/dev/null; do
            sleep 0.002
        done
    else
        wait_for_lines "$d.jsonl" "$k"
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    bw_run "$d" --metrics "$d.jsonl" --resume || fail "block-wise: resume after kill at $k failed"
    bw_same "$d" "block-wise, kill -9 at $k then --resume"
    [ "$(sort "$d.jsonl" | sed 's/"tokens_per_s": [0-9.]*//' | cksum)" = \
        "$(sort "$tmp/bw1.jsonl" | sed 's/"tokens_per_s": [0-9.]*//' | cksum)" ] ||
        fail "block-wise, kill -9 at $k then --resume: other metrics lines"
done
# a damaged cache file (one byte changed) is found by its checksum and made
# again; the result is the same
f="$tmp/bw2/hidden_states/train-b0001-s00001.safetensors"
printf 'X' | dd of="$f" bs=1 seek=5000 conv=notrunc 2>/dev/null
bw_run "$tmp/bw2" --resume 2>"$tmp/err" || fail "block-wise with a damaged cache file failed"
grep -q 'train-b0001-s00001.safetensors: checksum' "$tmp/err" ||
    fail "damaged cache file: $(cat "$tmp/err")"
bw_same "$tmp/bw2" "block-wise after a damaged cache file"
bw_run "$tmp/x" --block-layers 6 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'block-layers' "$tmp/err" || fail "--block-layers 6: status $rc"

# --- the result is usable: lolcats-eval with --lolcats and --compare
"$eval_" -m "$model" --lolcats "$tmp/t1" --compare -t ppl -d "$text" --split val -c 128 \
    --json -q >"$tmp/eval.json" || fail "lolcats-eval --lolcats failed"
[ "$(grep -c '"ppl"' "$tmp/eval.json")" = 2 ] || fail "--compare --json: $(cat "$tmp/eval.json")"
grep -q '"attention": "linearized"' "$tmp/eval.json" || fail "no linearized result"

exit $status
