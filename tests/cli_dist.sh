#!/bin/sh
# lolcats-train across ranks (mpirun, Open MPI): both stages give the
# bytes of one process with 2 ranks (a pipeline of 2 stages, then data
# parallel), 3 (3 stages), 2 and 3 with --pipeline-stages (stage 2 a
# pipeline too) and 4 (2 stages of 2 data-parallel ranks, in both stages),
# and so does block-wise transfer (its cache and block states included);
# SIGTERM on one rank stops every rank after the step with the state
# saved, SIGKILL of one rank ends the job with mpirun's message, and
# --resume (with another number of ranks, too) finishes with the same
# bytes; bad layouts are refused by every rank.  Without MPI in the build,
# running as one of several ranks is refused.
. "$(dirname "$0")/cli_common.sh"
. "$(dirname "$0")/cli_dist_common.sh"
# the two cores are oversubscribed
export OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { # NP ARGS...: lolcats-train under mpirun, one thread per rank
    np=$1; shift
    mpirun -np "$np" -x OMP_WAIT_POLICY -x OMP_NUM_THREADS=1 "$train" "$@"
}

if [ "${LC_HAVE_MPI:-no}" != yes ]; then
    mpirun -np 2 "$train" -m "$model" -d "$text" -o "$tmp/x" -q >/dev/null 2>"$tmp/err"
    grep -q 'no MPI support' "$tmp/err" || fail "a build without MPI ran as 2 ranks: $(cat "$tmp/err")"
    exit $status
fi

one_process
# shellcheck disable=SC2086
mpi 2 $opts --out "$tmp/r2" --metrics "$tmp/r2.jsonl" || fail "2 ranks failed"
same_outputs "$tmp/r2" "2 ranks"
# shellcheck disable=SC2086
mpi 3 $opts --out "$tmp/r3" --metrics "$tmp/r3.jsonl" || fail "3 ranks failed"
same_outputs "$tmp/r3" "3 ranks"
# stage 2 in pipeline stages: the residual stream goes down and its
# gradient up, each rank updates the adapters of its layers
# shellcheck disable=SC2086
mpi 2 $opts --out "$tmp/p2" --metrics "$tmp/p2.jsonl" --pipeline-stages 2 ||
    fail "2 ranks in 2 pipeline stages failed"
same_outputs "$tmp/p2" "2 ranks, stage 2 in 2 pipeline stages"
# shellcheck disable=SC2086
mpi 3 $opts --out "$tmp/p3" --metrics "$tmp/p3.jsonl" --pipeline-stages 3 ||
    fail "3 ranks in 3 pipeline stages failed"
same_outputs "$tmp/p3" "3 ranks, stage 2 in 3 pipeline stages"
# shellcheck disable=SC2086
mpi 4 $opts --out "$tmp/r4" --metrics "$tmp/r4.jsonl" --pipeline-stages 2 ||
    fail "4 ranks in 2 pipeline stages failed"
same_outputs "$tmp/r4" "4 ranks in 2 stages"
# only rank 0 wrote: no temporary files of anybody else
[ "$(ls "$tmp/r4")" = "$(ls "$tmp/one")" ] || fail "4 ranks left other files: $(ls "$tmp/r4")"

# the process of rank $2 among the children of mpirun $1
rank_pid() {
    for p in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return
        fi
    done
}
# runs NP ranks with OPTS... into $d, sends SIGNAL to rank RANK once the
# metrics have LINES lines, and waits; mpirun's messages in $tmp/sig.err
signal_rank() { # NP SIGNAL RANK LINES OPTS...
    np=$1 sig=$2 rank=$3 lines=$4
    shift 4
    (mpi "$np" "$@" --out "$d" --metrics "$d.jsonl" >/dev/null 2>"$tmp/sig.err") &
    job=$!
    wait_for_lines "$d.jsonl" "$lines"
    p=$(rank_pid "$(pgrep -P "$job" mpirun || echo "$job")" "$rank")
    [ -n "$p" ] && kill "-$sig" "$p"
    wait
}

# SIGTERM to rank 1 in stage 2: every rank stops after the step, exit 130
d="$tmp/term"
# shellcheck disable=SC2086
signal_rank 2 TERM 1 14 $opts
grep -q 'stopped at step' "$tmp/sig.err" || fail "SIGTERM on rank 1: $(cat "$tmp/sig.err")"
[ -f "$d/train_state.safetensors" ] || fail "SIGTERM on rank 1: no state saved"
# shellcheck disable=SC2086
mpi 2 $opts --out "$d" --metrics "$d.jsonl" --resume || fail "resume after SIGTERM failed"
same_outputs "$d" "SIGTERM on rank 1, then --resume"

# the same in a stage-2 pipeline, on its first stage (rank 0, the writer);
# resume on 3 ranks in 3 stages
d="$tmp/pterm"
# shellcheck disable=SC2086
signal_rank 2 TERM 0 14 $opts --pipeline-stages 2
grep -q 'stopped at step' "$tmp/sig.err" || fail "SIGTERM on rank 0 of a stage-2 pipeline: $(cat "$tmp/sig.err")"
[ -f "$d/train_state.safetensors" ] || fail "SIGTERM on rank 0 of a stage-2 pipeline: no state saved"
[ "$(lines_of "$d.jsonl")" -lt 22 ] || fail "SIGTERM on rank 0 of a stage-2 pipeline: it did not stop"
# shellcheck disable=SC2086
mpi 3 $opts --out "$d" --metrics "$d.jsonl" --pipeline-stages 3 --resume ||
    fail "resume of a stage-2 pipeline after SIGTERM failed"
same_outputs "$d" "SIGTERM on rank 0 of a stage-2 pipeline, then --resume on 3 stages"

# SIGKILL of rank 0 in stage 1: the job ends with mpirun's message; resume
# with 3 ranks
d="$tmp/kill"
# shellcheck disable=SC2086
signal_rank 2 KILL 0 7 $opts
grep -q 'signal 9' "$tmp/sig.err" || fail "SIGKILL of rank 0: $(cat "$tmp/sig.err")"
# shellcheck disable=SC2086
mpi 3 $opts --out "$d" --metrics "$d.jsonl" --resume || fail "resume after SIGKILL failed"
same_outputs "$d" "SIGKILL of rank 0, then --resume on 3 ranks"

# block-wise transfer (--block-layers 2: 3 blocks) on a short text: 3
# ranks (a block each) and 4 ranks (2 stages of 2) give every file of one
# process, the cache and the blocks' states included; SIGTERM on rank 1
# while the blocks train, then --resume on 2 ranks: the same
head -c 100000 "$text" >"$tmp/bw.txt"
bopts="--model $model --data $tmp/bw.txt --seq-len 128 --window 16 --grad-accum 2 --max-steps 8
--eval-every 4 --val-size 8 --no-summary --quiet --stage transfer --block-layers 2
--cache-shard-chunks 50"
bw_same() { # DIR WHAT
    for f in $(cd "$tmp/bw1" && find . -type f | sort); do
        cmp -s "$tmp/bw1/$f" "$1/$f" || fail "$2: $f differs from one process"
    done
    [ "$(sort "$1.jsonl" | sed 's/"tokens_per_s": [0-9.]*//' | cksum)" = \
        "$(sort "$tmp/bw1.jsonl" | sed 's/"tokens_per_s": [0-9.]*//' | cksum)" ] ||
        fail "$2: other metrics lines than one process"
}
# shellcheck disable=SC2086
"$train" $bopts --out "$tmp/bw1" --metrics "$tmp/bw1.jsonl" --threads 1 ||
    fail "block-wise, one process, failed"
# shellcheck disable=SC2086
mpi 3 $bopts --out "$tmp/bw3" --metrics "$tmp/bw3.jsonl" || fail "block-wise on 3 ranks failed"
bw_same "$tmp/bw3" "block-wise on 3 ranks"
# shellcheck disable=SC2086
mpi 4 $bopts --out "$tmp/bw4" --metrics "$tmp/bw4.jsonl" || fail "block-wise on 4 ranks failed"
bw_same "$tmp/bw4" "block-wise on 4 ranks (2 stages of 2)"
d="$tmp/bwt"
# shellcheck disable=SC2086
signal_rank 3 TERM 1 4 $bopts
grep -q 'stopped' "$tmp/sig.err" || fail "block-wise, SIGTERM on rank 1: $(cat "$tmp/sig.err")"
# shellcheck disable=SC2086
mpi 2 $bopts --out "$d" --metrics "$d.jsonl" --resume || fail "block-wise: resume failed"
bw_same "$d" "block-wise, SIGTERM on rank 1, then --resume on 2 ranks"

# a layout that does not fit: every rank says so, exit 2
# shellcheck disable=SC2086
mpi 2 $opts --out "$tmp/bad" --pipeline-stages 4 >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'pipeline stages' "$tmp/err" ||
    fail "--pipeline-stages 4 on 2 ranks: status $rc, $(cat "$tmp/err")"

exit $status
