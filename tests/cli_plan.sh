#!/bin/sh
# lolcats-train --plan: the memory plan from a configuration alone (the
# Llama 3.1 8B, 70B and 405B configs in data/configs: weights per layer
# and of the whole model, per-rank figures of pipeline stages and blocks,
# stage 2 data parallel and as a pipeline),
# from a GGUF header, and with data; a run prints its plan and its peak
# resident memory, within 10% of each other; --max-memory below the plan
# refuses to start, naming what would fit.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
gguf=$(data_path models/stories260K/stories260K.gguf)
text=$(data_path text/tinystories/tinystories_val.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
configs="$LC_DATA_DIR/configs"

# weights per layer and of the whole model (bf16): public shapes
plan_has() { # CONFIG ARGS... -- WANT
    cfg=$1; shift
    "$train" --plan --model "$configs/$cfg.json" "$@" >"$tmp/plan" 2>"$tmp/err" ||
        fail "--plan $cfg $*: $(cat "$tmp/err")"
}
plan_has llama-3.1-8b
grep -q '0.41 GiB per layer, embedding 0.98 GiB, lm_head as much; whole model 14.96 GiB' \
    "$tmp/plan" || fail "8B: $(head -2 "$tmp/plan")"
plan_has llama-3.1-70b --ranks 16 --block-layers 5 --threads 8
grep -q '1.59 GiB per layer, embedding 1.96 GiB, lm_head as much; whole model 131.41 GiB' \
    "$tmp/plan" || fail "70B: $(head -2 "$tmp/plan")"
grep -q '16 blocks of 5 layers, 244.14 GiB per million tokens' "$tmp/plan" ||
    fail "70B cache: $(cat "$tmp/plan")"
# rank 15 holds layers 75-79: 5 x 1.59 GiB, less the last layer's MLP
# (never run in stage 1: 1.31 GiB)
grep -A1 'rank 15 (stage 15, layers 75-79)' "$tmp/plan" | grep -q 'stage 1          6.66' ||
    fail "70B rank 15: $(cat "$tmp/plan")"
# stage 2 data parallel: the whole model on every rank; in 8 pipeline
# stages: rank 1 maps its 10 layers, rank 0 also the embedding, rank 7
# the lm_head
grep -A3 'rank 15 (stage 15' "$tmp/plan" | grep 'stage 2' | grep -q ' 131.41 ' ||
    fail "70B stage 2 data parallel: $(cat "$tmp/plan")"
plan_has llama-3.1-70b --ranks 8 --pipeline-stages 8 --threads 8
grep -q 'stage 2 in 8 pipeline stages of 1 rank' "$tmp/plan" ||
    fail "70B stage 2 pipeline: $(head -3 "$tmp/plan")"
s2_weights() { grep -A3 "rank $1 (stage $1," "$tmp/plan" | awk '$1 == "stage" && $2 == 2 { print $3 }'; }
[ "$(s2_weights 1)" = 15.94 ] && [ "$(s2_weights 0)" = 17.89 ] && [ "$(s2_weights 7)" = 17.89 ] ||
    fail "70B stage 2 in 8 stages, weights of ranks 0, 1, 7: $(s2_weights 0) $(s2_weights 1) $(s2_weights 7)"
plan_has llama-3.1-405b --ranks 14 --block-layers 9
grep -q '5.94 GiB per layer, embedding 3.91 GiB, lm_head as much; whole model 755.95 GiB' \
    "$tmp/plan" || fail "405B: $(head -2 "$tmp/plan")"
grep -q '14 blocks of 9 layers' "$tmp/plan" || fail "405B blocks: $(cat "$tmp/plan")"
# --recompute lowers stage 2's activations
plan_has llama-3.1-8b --seq-len 1024
a=$(grep 'stage 2' "$tmp/plan" | awk '{print $4}')
plan_has llama-3.1-8b --seq-len 1024 --recompute
b=$(grep 'stage 2' "$tmp/plan" | awk '{print $4}')
awk "BEGIN { exit !($b < $a / 4) }" || fail "--recompute: stage 2 activations $a, then $b"

# a GGUF header; a Hugging Face folder with data
if [ -f "$gguf" ]; then
    "$train" --plan -m "$gguf" >"$tmp/plan" || fail "--plan on a GGUF file"
    grep -q 'memory plan: 5 layers, hidden 64' "$tmp/plan" || fail "GGUF plan: $(cat "$tmp/plan")"
fi
"$train" --plan -m "$model" -d "$text" --seq-len 128 --block-layers 2 >"$tmp/plan" ||
    fail "--plan with data"
grep -q 'GiB for this data' "$tmp/plan" || fail "plan with data: $(cat "$tmp/plan")"
"$train" --plan -m "$tmp/none" >/dev/null 2>&1 && fail "--plan on a missing model succeeded"

# a run: its plan against its peak resident memory (not in the sanitizer
# build, whose shadow memory the plan does not count)
if [ "${LC_SANITIZERS:-no}" = yes ]; then
    echo "sanitizer build: the plan is not compared with the memory used"
    exit $status
fi
"$train" -m "$model" -d "$text" -o "$tmp/r" --seq-len 128 --window 16 --grad-accum 2 \
    --max-steps 4 --eval-every 2 --val-size 8 --no-summary 2>"$tmp/err" ||
    fail "training: $(cat "$tmp/err")"
pct=$(sed -n 's/.*memory: planned .* peak resident .* (\([-+0-9.]*\)%)$/\1/p' "$tmp/err")
[ -n "$pct" ] && awk "BEGIN { exit !($pct < 10 && $pct > -10) }" ||
    fail "plan and peak resident memory differ by more than 10%: $(grep memory "$tmp/err")"
# too little memory: refused before training, with what would fit.  The
# process's own memory is measured (a CUDA build's libraries alone take
# over 100 MiB), so the limit is that plus 100 MiB: above what stage 2 needs
# with --recompute (about 56 MiB), below what it needs without (about 139)
"$train" -m "$model" -d "$text" -o "$tmp/m" --seq-len 512 --batch-size 4 --max-memory 1M \
    --no-summary -q 2>"$tmp/err"
process=$(sed -n 's/.*process and data \([0-9]*\)\.[0-9]* MiB.*/\1/p' "$tmp/err")
[ -n "$process" ] || fail "--max-memory 1M: no process figure in '$(cat "$tmp/err")'"
"$train" -m "$model" -d "$text" -o "$tmp/m" --seq-len 512 --batch-size 4 \
    --max-memory "$((${process:-0} + 100))M" --no-summary -q 2>"$tmp/err"
rc=$?
[ "$rc" = 5 ] && grep -q 'would need' "$tmp/err" && grep -q 'what would fit: --recompute' \
    "$tmp/err" || fail "--max-memory $((${process:-0} + 100))M: status $rc, $(cat "$tmp/err")"
[ -f "$tmp/m/train_state.safetensors" ] && fail "a refused run wrote a training state"
for bad in 0 12X -5G; do
    "$train" -m "$model" -d "$text" -o "$tmp/m" --max-memory "$bad" -q 2>/dev/null
    [ $? = 2 ] || fail "--max-memory $bad accepted"
done
exit $status
