# Sourced by the rank tests (tests/cli_dist.sh, tests/cli_netns.sh) after
# cli_common.sh: the options of a short run of both stages on stories260K,
# the files it writes, their comparison with one process's, and waiting
# for a run's metrics lines.
model=$(data_path models/stories260K-hf)
text=$(data_path text/tinystories/tinystories_val.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: no mpirun"; exit 77; }
# root in containers and CI
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# in the sanitizer build: Open MPI leaves its own allocations at exit, which
# are not this program's (its leaks are checked by the tests of one process)
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# 8 steps per stage of 2 micro-batches of 128 tokens, an evaluation every
# 4: the metrics hold 11 lines of stage 1 (evaluations at lines 1, 6, 11)
# and 11 of stage 2
opts="--model $model --data $text --seq-len 128 --window 16 --grad-accum 2 --max-steps 8
--eval-every 4 --val-size 8 --no-summary --quiet --lora-dropout 0.1 --lora-lr 0.001"
outputs="feature_maps.safetensors adapter_model.safetensors adapter_config.json
lolcats_config.json train_state.safetensors"
# the files of DIR against those of one process in $tmp/one, and its 22
# metrics lines
same_outputs() { # DIR WHAT
    for f in $outputs; do
        cmp -s "$tmp/one/$f" "$1/$f" || fail "$2: $f differs from one process"
    done
    [ "$(wc -l <"$1.jsonl")" = 22 ] || fail "$2: $(wc -l <"$1.jsonl") metrics lines, not 22"
}
one_process() {
    # shellcheck disable=SC2086
    "$train" $opts --out "$tmp/one" --metrics "$tmp/one.jsonl" --threads 1 ||
        fail "one process failed"
}

lines_of() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# waits until the metrics file $1 has $2 lines, or the job $job has ended
wait_for_lines() {
    while [ "$(lines_of "$1")" -lt "$2" ] && kill -0 "$job" 2>/dev/null; do
        sleep 0.005
    done
}
