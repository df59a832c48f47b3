#!/bin/sh
# The programs against the independent references, as a user runs them:
# lolcats-generate --temperature 0 from an empty prompt prints the greedy
# stories260K text listed in the shared data README, and lolcats-eval
# --task ppl --json gives the perplexities of data/ref/ppl_reference.json
# (transformers) to 4 significant digits.  The bundled model and text
# (data/) are always checked; the GGUF copy and llama-2-tiny-random when
# the shared data holds them.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
gguf=$(data_path models/stories260K/stories260K.gguf)
tiny=$(data_path models/llama-2-tiny-random/llama-2-tiny-random.gguf)
val=$(data_path text/tinystories/tinystories_val.txt)
sample=$(data_path text/tinystories/tinystories_sample.txt)
ref="$LC_DATA_DIR/ref/ppl_reference.json"
[ -d "$model" ] && [ -f "$val" ] || { echo "SKIP: test data missing"; exit 77; }
set -- "$model"
if [ -f "$gguf" ]; then set -- "$model" "$gguf"; else echo "note: $gguf not found"; fi

# --- greedy text: the README's first 32 tokens (the README shows a longer
# text; generation is cut at 32 new tokens, which end in "One")
want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One"
for m in "$@"; do
    got=$("$gen" --model "$m" --temperature 0 --max-tokens 32 --quiet) ||
        fail "lolcats-generate --model $m failed"
    [ "$got" = "$want" ] || fail "greedy text of $m: '$got'"
done

# --- perplexity, 4 significant digits: the value of "ppl" of the record
# named $1 in the reference (one key per line there)
ref_ppl() {
    awk -v name="$1" '/"name":/ { found = index($0, "\"" name "\"") > 0 }
        found && /"ppl":/ { gsub(/[",]/, "", $2); print $2; exit }' "$ref"
}
check_ppl() { # record, json output
    want=$(ref_ppl "$1")
    got=$(sed -n 's/.*"ppl": \([^,}]*\).*/\1/p' "$2")
    [ -n "$want" ] && [ -n "$got" ] || { fail "$1: no value (reference '$want', ours '$got')"; return; }
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 5e-5 * b) }' ||
        fail "$1: perplexity $got, reference $want"
}
if [ -f "$tiny" ] && [ -f "$sample" ]; then
    "$eval_" -m "$tiny" -t ppl -d "$sample" -c 128 --json --quiet >"$tmp/tiny.json" ||
        fail "lolcats-eval on llama-2-tiny-random failed"
    check_ppl llama-2-tiny-random-sample "$tmp/tiny.json"
else
    echo "note: $tiny or $sample not found"
fi
"$eval_" -m "$model" -t ppl -d "$val" --split val --json --quiet >"$tmp/val.json" ||
    fail "lolcats-eval on the held-out text failed"
check_ppl stories260K-val-heldout "$tmp/val.json"
exit $status
