#!/bin/sh
# Llama-3.1-70B-shaped layers on this machine: a model of the 70B's shape
# with 4 layers and random bf16 weights (11 GB; data/gen/make_random_model.py),
# block-wise stage 1 (2 blocks of 2 layers) on 2 ranks, each rank's memory
# plan against its peak resident memory, and the plans of the real 8B, 70B
# and 405B configurations; then stage-1 throughput on 1 and 2 ranks
# (bench/dist_scale.sh) on stories260K and on the 70B-shaped layers.
#
#   bench/dist_70b.sh SCRATCH_DIR [SHARED_DATA_DIR]
#
# Run from the build folder of a tree configured with MPI.  It needs about
# 12 GB of disk in SCRATCH_DIR, 8 GB of memory, and takes about an hour on
# two busy cores; it deletes nothing (remove SCRATCH_DIR afterwards).
set -eu
[ $# -ge 1 ] || { sed -n '2,15p' "$0"; exit 2; }
scratch=$1
data=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
src=$(cd "$(dirname "$0")/.." && pwd)
train=src/cli/lolcats-train
export OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$scratch"
model="$scratch/llama70b-4l"
if [ ! -f "$model/model.safetensors" ]; then
    python3 "$src/data/gen/make_random_model.py" --config "$src/data/configs/llama-3.1-70b.json" \
        --layers 4 --tokenizer "$data/models/stories260K-hf" --out "$model"
fi
# 14 chunks of 128 tokens (the stories tokenizer), a quarter held out
head -c 4000 "$data/text/tinystories/tinystories_val.txt" >"$scratch/tiny.txt"
opts="--model $model --data $scratch/tiny.txt --seq-len 128 --stage transfer --grad-accum 2
--max-steps 2 --eval-every 2 --val-size 1 --val-fraction 0.25 --no-summary --threads 1"

echo "=== plans of the real configurations"
for m in 8b 70b 405b; do
    "$train" --plan --model "$src/data/configs/llama-3.1-$m.json" --ranks 8 --threads 8 | head -2
done
echo "=== the plan of the 70B-shaped run on 2 ranks"
# shellcheck disable=SC2086
"$train" --plan $opts --ranks 2 --block-layers 2
echo "=== block-wise stage 1 on 2 ranks (each rank: planned against peak resident)"
rm -rf "$scratch/bw2"
# shellcheck disable=SC2086
mpirun --oversubscribe -np 2 -x OMP_WAIT_POLICY -x OMP_NUM_THREADS=1 "$train" $opts \
    --block-layers 2 --out "$scratch/bw2" --metrics "$scratch/bw2.jsonl" --verbose 2>&1 |
    grep -v '^$'
echo "=== stage-1 throughput, stories260K"
"$src/bench/dist_scale.sh" "$data/models/stories260K-hf" \
    "$data/text/tinystories/tinystories_val.txt" --seq-len 256 --grad-accum 8 --max-steps 6
echo "=== stage-1 throughput, the 70B-shaped layers"
"$src/bench/dist_scale.sh" "$model" "$scratch/tiny.txt" --seq-len 128 --grad-accum 4 \
    --max-steps 1 --val-size 1 --val-fraction 0.25
