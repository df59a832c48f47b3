#!/bin/sh
# Faults during training: every kind of write failing (a full disk: a file
# size limit, and /dev/full for the metrics), kill -9 at random moments of
# both stages, and a loss that stops being finite.  A failed run exits
# with a clear message and leaves each output file whole: the earlier
# version or the new one, never a broken one; a resumed run ends with the
# files of an uninterrupted one.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_sample.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
export OMP_NUM_THREADS=1

# both stages, 6 steps each, an evaluation every 2, merged model
run_exec() {
    out=$1; shift
    exec "$train" --model "$model" --data "$text" --out "$out" --seq-len 16 --val-fraction 0.3 \
        --grad-accum 2 --max-steps 6 --eval-every 2 --window 4 --feature-dim 4 --lora-rank 2 \
        --lora-lr 0.001 --no-summary --quiet "$@"
}
run() { (run_exec "$@"); }
files="feature_maps.safetensors adapter_model.safetensors adapter_config.json
lolcats_config.json train_state.safetensors merged/model.safetensors merged/config.json"

run "$tmp/old" --merge || fail "the first checkpoint"
run "$tmp/new" --merge --seed 7 --lr 0.02 || fail "the second checkpoint"

# whether a file is whole: a safetensors file as long as its header says,
# a JSON file one object (the writes go to a temporary file renamed over
# the old one, so a cut-off file is what a broken write would leave)
whole() {
    case $1 in
    *.safetensors)
        hlen=$(od -An -tu8 -N8 "$1" | tr -d ' ')
        end=$(dd if="$1" bs=1 skip=8 count="$hlen" 2>/dev/null |
            grep -o '"data_offsets":\[[0-9]*,[0-9]*' | sed 's/.*,//' | sort -n | tail -n 1)
        [ "$(wc -c <"$1")" = $((8 + hlen + ${end:-0})) ] ;;
    *.json)
        [ "$(head -c 1 "$1")" = "{" ] && [ "$(tr -d ' \n' <"$1" | tail -c 1)" = "}" ] ;;
    esac
}

# --- a full disk at every size: each write in turn is the one that fails
# (feature maps, training state, lolcats_config.json, adapter, merged
# model); every file is then the old one, the new one or one the new run
# wrote at an earlier evaluation, whole, or absent (stage 1 removes an
# adapter that belongs to the old feature maps)
blocks=1
while :; do
    d="$tmp/full$blocks"
    cp -r "$tmp/old" "$d"
    (
        trap '' XFSZ
        ulimit -f "$blocks"
        run_exec "$d" --merge --seed 7 --lr 0.02
    ) 2>"$tmp/err"
    rc=$?
    if [ "$rc" != 0 ]; then
        [ "$rc" = 4 ] && grep -q 'cannot write' "$tmp/err" ||
            fail "full disk at $blocks blocks: status $rc, $(cat "$tmp/err")"
    fi
    for f in $files; do
        [ ! -f "$d/$f" ] || cmp -s "$d/$f" "$tmp/old/$f" || cmp -s "$d/$f" "$tmp/new/$f" ||
            whole "$d/$f" || fail "full disk at $blocks blocks: $f is broken"
    done
    left=$(find "$d" -name '*.tmp.*' | head -n 1)
    [ -z "$left" ] || fail "full disk at $blocks blocks: $left left behind"
    rm -rf "$d"
    [ "$rc" = 0 ] && break
    blocks=$((blocks * 3 / 2 + 1))
    [ "$blocks" -lt 100000 ] || { fail "the run never fits"; break; }
done

# --- the metrics on a full disk (ENOSPC): an error, not lines lost quietly
run "$tmp/m" --metrics /dev/full 2>"$tmp/err"
rc=$?
[ "$rc" = 4 ] && grep -q 'cannot write the metrics' "$tmp/err" ||
    fail "metrics on /dev/full: status $rc, $(cat "$tmp/err")"

# --- kill -9 at random moments (both stages), then --resume: the files of
# an uninterrupted run.  The seed of the draw is printed for a rerun.
seed=${LC_FAULT_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
echo "kill -9 delays drawn with seed $seed"
delays=$(awk -v s="$seed" 'BEGIN { srand(s); for (i = 0; i < 6; i++) printf "%.3f ", rand() * 0.6 }')
for t in $delays; do
    d="$tmp/kill$t"
    (run_exec "$d" --merge) &
    pid=$!
    sleep "$t"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    run "$d" --merge --resume || fail "resume after kill -9 at ${t}s"
    for f in $files; do
        cmp -s "$d/$f" "$tmp/old/$f" || fail "kill -9 at ${t}s then --resume: $f differs"
    done
done

# --- a loss that is not finite: the parameters of a saved state made
# infinite (as a diverging run leaves them); the resumed run stops with a
# clear message and the last good checkpoint stays as it was
d="$tmp/nan"
# a long run killed once its first state (after the evaluation of step 0)
# is saved: the resumed run has steps left to take
(run_exec "$d" --stage transfer --max-steps 1000 --eval-every 1000) &
pid=$!
while [ ! -f "$d/train_state.safetensors" ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.002
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ -f "$d/train_state.safetensors" ] || fail "no training state to resume"
cp -r "$d" "$tmp/nan-before"
state="$d/train_state.safetensors"
hlen=$(od -An -tu8 -N8 "$state" | tr -d ' ')
begin=$(dd if="$state" bs=1 skip=8 count="$hlen" 2>/dev/null |
    sed -n 's/.*"feature_maps\.params":{[^}]*"data_offsets":\[\([0-9]*\),.*/\1/p')
[ -n "$begin" ] || fail "no feature_maps.params in the training state"
# +inf (0x7f800000, little-endian) over the first 16 parameters
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    printf '\000\000\200\177' |
        dd of="$state" bs=1 seek=$((8 + hlen + begin + 4 * i)) conv=notrunc 2>/dev/null
done
cp "$state" "$tmp/nan-state"
run "$d" --stage transfer --max-steps 1000 --eval-every 1000 --resume 2>"$tmp/err"
rc=$?
[ "$rc" != 0 ] && grep -q 'not finite' "$tmp/err" ||
    fail "infinite parameters: status $rc, $(cat "$tmp/err")"
cmp -s "$d/feature_maps.safetensors" "$tmp/nan-before/feature_maps.safetensors" ||
    fail "a loss that is not finite changed the last good feature maps"
cmp -s "$state" "$tmp/nan-state" || fail "a loss that is not finite changed the training state"
whole "$d/feature_maps.safetensors" ||
    fail "the feature maps kept after a loss that is not finite are broken"

exit $status
