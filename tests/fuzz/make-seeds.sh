#!/bin/sh
# Seeds a harness's corpus from real files: make-seeds.sh SRCDIR BUILDDIR
# NAME CORPUS.  The files of data/ and, when LC_TEST_DATA names the shared
# test data, small cuts of the models, tokenizers, texts and evaluation
# sets there; for the output folder and the training state, the files of
# a short lolcats-train run of this build on stories260K.  The committed
# seeds (tests/fuzz/seeds) are only the few small files that cannot be
# made so.
set -u
srcdir=$1 builddir=$2 name=$3 out=$4
data=$srcdir/data
shared=${LC_TEST_DATA:-}
if [ -n "$shared" ] && [ ! -d "$shared/models" ]; then
    shared=
fi
sep_file() { printf '\n%s\n' "$1"; }

# $1 file, $2 name in the corpus: the file's first $3 bytes (all of it by default)
put() {
    if [ -f "$1" ]; then
        if [ -n "${3:-}" ]; then head -c "$3" "$1" >"$out/$2"; else cp "$1" "$out/$2"; fi
    fi
}
# one selector byte, then the text of $1 (a file) or nothing
put_sel() {
    if [ -f "$2" ]; then
        { printf "\\$(printf %03o "$1")"; cat "$2"; } >"$out/$3"
    fi
}

# the output folder of a short run (feature dimension 2, LoRA rank 1)
train_run() {
    run=$builddir/tests/fuzz/corpus/.train-run
    if [ -n "$shared" ] && [ ! -f "$run/done" ]; then
        rm -rf "$run" && mkdir -p "$run" &&
        OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 "$builddir/src/cli/lolcats-train" \
            --model "$shared/models/stories260K-hf" \
            --data "$shared/text/tinystories/tinystories_sample.txt" --out "$run/out" \
            --seq-len 16 --val-fraction 0.3 --batch-size 1 --grad-accum 2 --max-steps 4 --eval-every 2 \
            --window 4 --feature-dim 2 --lora-rank 1 --no-summary >"$run/log" 2>&1 && touch "$run/done"
    fi
    [ -f "$run/done" ]
}

case $name in
safetensors)
    put "$data/ref/tiny-llama31-hf/model.safetensors" tiny-llama31.safetensors
    if train_run; then
        put "$run/out/feature_maps.safetensors" feature_maps.safetensors
        put "$run/out/adapter_model.safetensors" adapter_model.safetensors
    fi ;;
st_index) ;;
gguf)
    put "$data/ref/tiny-llama31.gguf" tiny-llama31.gguf ;;
config_json)
    put "$data/ref/tiny-llama31-hf/config.json" tiny-llama31.json
    [ -n "$shared" ] && put "$shared/models/stories260K-hf/config.json" stories260K.json ;;
tok_spm)
    [ -n "$shared" ] && put "$shared/models/stories260K/tok512.model" tok512.model ;;
tok_json)
    put "$data/tokenizers/tok512-hf/tokenizer.json" tok512-hf.json
    put "$data/tokenizers/tok512-first.json" tok512-first.json
    put "$data/tokenizers/tok512-legacy.json" tok512-legacy.json
    put "$data/tokenizers/bbpe-small/tokenizer.json" bbpe-small.json ;;
tok_gpt2|tok_gguf|st_index) ;;
tok_roundtrip)
    if [ -n "$shared" ]; then
        for k in 0 1 2 3 4 5 6 7; do
            { printf "\\$(printf %03o "$k")"; head -c 300 "$shared/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.inp"; } \
                >"$out/inp-$k"
        done
    fi ;;
data)
    if [ -n "$shared" ]; then
        put_sel 1 "$shared/text/tinystories/tinystories_sample.txt" tinystories.txt
        head -c 3000 "$shared/text/alpaca-cleaned/alpaca_data_cleaned.json" >"$out/.alpaca" &&
            printf '"}]\n' >>"$out/.alpaca" && put_sel 3 "$out/.alpaca" alpaca.json
        gzip -c "$shared/text/tinystories/tinystories_sample.txt" >"$out/.gz" &&
            put_sel 0 "$out/.gz" tinystories.txt.gz
        rm -f "$out/.alpaca" "$out/.gz"
    fi ;;
eval)
    if [ -n "$shared" ]; then
        e=$shared/eval
        { printf '\000'; head -n 3 "$e/piqa/valid.jsonl"; sep_file --labels--; head -n 3 "$e/piqa/valid-labels.lst"; } >"$out/piqa"
        { printf '\001'; head -n 3 "$e/arc/ARC-Easy-test.jsonl"; } >"$out/arc-easy"
        { printf '\002'; head -n 3 "$e/arc/ARC-Challenge-test.jsonl"; } >"$out/arc-challenge"
        { printf '\004'; head -n 3 "$e/winogrande/winogrande.jsonl"; } >"$out/winogrande"
        if command -v bzip2 >/dev/null; then
            { printf '\003'; bzip2 -dc "$e/hellaswag/hellaswag_val_full.txt.bz2" | head -n 12 | bzip2 -c; } \
                >"$out/hellaswag.bz2"
            { printf '\003'; bzip2 -dc "$e/hellaswag/hellaswag_val_full.txt.bz2" | head -n 12; } >"$out/hellaswag"
        fi
    fi ;;
lolcats_dir)
    if train_run; then
        o=$run/out
        { cat "$o/lolcats_config.json"; sep_file --lolcats-file--; cat "$o/feature_maps.safetensors"
          sep_file --lolcats-file--; cat "$o/adapter_config.json"; sep_file --lolcats-file--
          cat "$o/adapter_model.safetensors"; } >"$out/stage2"
        { cat "$o/lolcats_config.json"; sep_file --lolcats-file--; cat "$o/feature_maps.safetensors"; } >"$out/stage1"
    fi ;;
train_state)
    if train_run; then
        put "$run/out/train_state.safetensors" finetune.safetensors
    fi ;;
esac
exit 0
