#!/bin/sh
# Quality of the linearized model against its yardstick, the same LoRA on
# the original model: lolcats-train --compare-lora on stories260K and the
# TinyStories text (context 512, the last 10% held out), with the default
# settings or the options given after --, for each seed; prints every
# seed's held-out perplexities and the mean and spread of the ratio
# linearized / (teacher + LoRA).
#
#   bench/quality.sh [--data DIR] [--seeds "0 1 2"] [--threads N] [--keep DIR]
#                    [-- lolcats-train options]
#
# DIR holds models/stories260K-hf and text/tinystories/tinystories_val.txt
# (default: the copies bundled in the source tree's data/).  One seed takes
# about 4 minutes of one core.  Run from the build tree (or set LC_BUILDDIR
# to it).  With the defaults, seed 0 prints teacher 5.8517, transfer
# 5.9493, linearized 5.2536, teacher + LoRA 5.2749, ratio 0.9960.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${LC_BUILDDIR:-$(pwd)}
train="$build/src/cli/lolcats-train"
data="$here/data"
seeds="0 1 2"
threads=""
keep=""
while [ $# -gt 0 ]; do
    case $1 in
    --data) data=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --threads) threads="--threads $2"; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quality.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$train" ] || { echo "quality.sh: $train not built (run from the build tree)" >&2; exit 2; }
model="$data/models/stories260K-hf"
text="$data/text/tinystories/tinystories_val.txt"
[ -d "$model" ] && [ -f "$text" ] || { echo "quality.sh: no test data in $data" >&2; exit 2; }
if [ -n "$keep" ]; then
    work=$keep
    mkdir -p "$work" || exit 4
else
    work=$(mktemp -d) || exit 4
    trap 'rm -rf "$work"' EXIT
fi
rm -f "$work/pairs"
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY

echo "lolcats-train --compare-lora $* (stories260K, TinyStories, held-out perplexity)"
printf '%-6s %10s %10s %10s %10s %8s\n' seed teacher transfer linearized "teacher+LoRA" ratio
for seed in $seeds; do
    out="$work/seed$seed"
    # shellcheck disable=SC2086
    if ! "$train" --model "$model" --data "$text" --out "$out" --seed "$seed" --compare-lora \
        --quiet $threads "$@" >"$out.txt" 2>&1; then
        echo "quality.sh: seed $seed failed:" >&2
        cat "$out.txt" >&2
        exit 1
    fi
    t=$(grep 'teacher (softmax attention)' "$out.txt" | awk '{print $NF}')
    a=$(grep 'attention transfer only' "$out.txt" | awk '{print $(NF-1)}')
    l=$(grep 'attention transfer + LoRA' "$out.txt" | awk '{print $(NF-1)}')
    y=$(grep 'teacher + LoRA (softmax attention)' "$out.txt" | awk '{print $(NF-1)}')
    printf '%-6s %10s %10s %10s %10s %8.4f\n' "$seed" "$t" "${a:--}" "$l" "$y" \
        "$(awk -v l="$l" -v y="$y" 'BEGIN { print l / y }')"
    echo "$l $y" >>"$work/pairs"
done
awk '{ r = $1 / $2; n++; s += r; ss += r * r; l += $1; y += $2 }
     END { m = s / n; sd = n > 1 ? sqrt((ss - n * m * m) / (n - 1)) : 0
           printf "mean over %d seeds: linearized %.4f, teacher + LoRA %.4f, ratio %.4f (sd %.4f)\n",
                  n, l / n, y / n, m, sd }' "$work/pairs"
