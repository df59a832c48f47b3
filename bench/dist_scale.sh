#!/bin/sh
# Stage-1 throughput on 1 and 2 ranks, back to back on the same machine:
# one rank with one thread, one rank with two threads, two ranks (a
# pipeline of two stages) with one thread each; prints tokens per second
# (the median over the optimizer steps, the evaluations left out) and the
# scaling efficiency per core: (rate on 2 cores) / (2 x rate on 1 core).
#
#   bench/dist_scale.sh MODEL DATA [lolcats-train options...]
#
# e.g. bench/dist_scale.sh ../shared/data/models/stories260K-hf \
#          ../shared/data/text/tinystories/tinystories_val.txt --seq-len 256
# Run from the build folder (it uses src/cli/lolcats-train); needs mpirun.
set -eu
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
model=$1 data=$2
shift 2
train=${LC_TRAIN:-src/cli/lolcats-train}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common="--model $model --data $data --stage transfer --no-summary --quiet --eval-every 1000000"

# the median tokens_per_s of the step lines of a metrics file
median_rate() {
    sed -n 's/.*"loss": .*"tokens_per_s": \([0-9.]*\).*/\1/p' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
run() { # NAME NP THREADS
    if [ "$2" = 1 ]; then
        # shellcheck disable=SC2086
        "$train" $common --out "$tmp/$1" --metrics "$tmp/$1.jsonl" --threads "$3"
    else
        # shellcheck disable=SC2086
        mpirun --oversubscribe -np "$2" -x OMP_WAIT_POLICY -x OMP_NUM_THREADS="$3" "$train" \
            $common --out "$tmp/$1" --metrics "$tmp/$1.jsonl" --threads "$3"
    fi
}
extra="$*"
set --
common="$common $extra"
start=$(date +%s)
run r1t1 1 1
run r1t2 1 2
run r2t1 2 1
end=$(date +%s)
a=$(median_rate "$tmp/r1t1.jsonl")
b=$(median_rate "$tmp/r1t2.jsonl")
c=$(median_rate "$tmp/r2t1.jsonl")
echo "stage-1 tokens/s (median over steps; the three runs back to back, $((end - start)) s)"
printf '  1 rank,  1 thread : %10.1f\n' "$a"
printf '  1 rank,  2 threads: %10.1f   efficiency per core %.2f\n' "$b" \
    "$(awk "BEGIN { print $b / (2 * $a) }")"
printf '  2 ranks, 1 thread : %10.1f   efficiency per core %.2f\n' "$c" \
    "$(awk "BEGIN { print $c / (2 * $a) }")"
for d in r1t2 r2t1; do
    cmp -s "$tmp/r1t1/feature_maps.safetensors" "$tmp/$d/feature_maps.safetensors" ||
        echo "  note: $d's feature maps differ from one process's"
done
