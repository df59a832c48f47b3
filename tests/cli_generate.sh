#!/bin/sh
# lolcats-generate with --lolcats on the small real model: it generates,
# the same text for 1 and 2 threads and for each LC_CPU_PREFETCH (and
# without it, the level to be measured, as --verbose says), its
# decoding state is the same size after 40 and after 200 new tokens (the
# teacher's KV cache grows), a prompt file (plain or gzip) is read like
# --prompt, and a missing prompt file or a missing or mismatched lolcats
# folder is an input error (exit 3).
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/stories260K-hf)
other=$(data_path models/llama-2-tiny-random/llama-2-tiny-random.gguf)
text=$(data_path text/tinystories/tinystories_val.txt)
[ -d "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }

# a lolcats folder from a short stage-1 run (window 16)
"$train" --model "$model" --data "$text" --out "$tmp/lc" --seq-len 128 --window 16 \
    --max-steps 2 --eval-every 2 --val-size 4 --no-summary --quiet ||
    { echo "FAIL: training the lolcats folder failed"; exit 1; }

generate() {
    "$gen" --model "$model" --temperature 0 --prompt "Once upon a time" "$@"
}
state_of() { sed -n 's/.*decoding state \([0-9.]*\) KiB.*/\1/p' "$1"; }

generate --lolcats "$tmp/lc" -n 40 --threads 1 >"$tmp/a1" 2>"$tmp/e1" ||
    fail "generation with --lolcats failed: $(cat "$tmp/e1")"
generate --lolcats "$tmp/lc" -n 40 --threads 2 >"$tmp/a2" 2>"$tmp/e2" ||
    fail "generation with --lolcats and 2 threads failed: $(cat "$tmp/e2")"
[ "$(wc -c <"$tmp/a1")" -gt 20 ] || fail "--lolcats generated almost nothing: $(cat "$tmp/a1")"
cmp -s "$tmp/a1" "$tmp/a2" || fail "--lolcats: 1 and 2 threads generate different text"

# the decoding gemv's prefetch level changes the speed only; --verbose names it
for level in none l1 l2; do
    LC_CPU_PREFETCH=$level generate --lolcats "$tmp/lc" -n 40 --threads 1 --verbose \
        >"$tmp/a3" 2>"$tmp/e3" || fail "LC_CPU_PREFETCH=$level: $(cat "$tmp/e3")"
    cmp -s "$tmp/a1" "$tmp/a3" || fail "LC_CPU_PREFETCH=$level generates other text"
    grep -q "decode prefetch $level" "$tmp/e3" ||
        fail "--verbose does not name LC_CPU_PREFETCH=$level: $(cat "$tmp/e3")"
done
# unset, the level is measured on products of 4 MiB of weights and more,
# which this model lacks; --verbose says so before and after decoding (the
# generic kernels do not prefetch and measure nothing)
(unset LC_CPU_PREFETCH; generate --lolcats "$tmp/lc" -n 40 --verbose) >"$tmp/a3" 2>"$tmp/e3" ||
    fail "LC_CPU_PREFETCH unset: $(cat "$tmp/e3")"
cmp -s "$tmp/a1" "$tmp/a3" || fail "LC_CPU_PREFETCH unset generates other text"
measuring=$(grep -c "decode prefetch \(none\|l1\|l2\), to be measured" "$tmp/e3")
if grep -q "generic C kernels" "$tmp/e3"; then
    [ "$measuring" = 0 ] || fail "the generic kernels measure prefetch levels: $(cat "$tmp/e3")"
else
    [ "$measuring" = 2 ] ||
        fail "--verbose does not say the level is to be measured: $(cat "$tmp/e3")"
fi
grep -q "backend after decoding cpu:" "$tmp/e3" ||
    fail "--verbose does not describe the backend after decoding: $(cat "$tmp/e3")"

# the state is constant once the cache holds 2W = 32 tokens; the KV cache grows
generate --lolcats "$tmp/lc" -n 40 --verbose >/dev/null 2>"$tmp/v40" || fail "--verbose -n 40"
generate --lolcats "$tmp/lc" -n 200 --verbose >/dev/null 2>"$tmp/v200" || fail "--verbose -n 200"
generate -n 40 --verbose >/dev/null 2>"$tmp/t40" || fail "teacher -n 40"
generate -n 200 --verbose >/dev/null 2>"$tmp/t200" || fail "teacher -n 200"
s40=$(state_of "$tmp/v40"); s200=$(state_of "$tmp/v200")
t40=$(state_of "$tmp/t40"); t200=$(state_of "$tmp/t200")
if [ -z "$s40" ] || [ "$s40" != "$s200" ] || ! grep -q 'constant' "$tmp/v200"; then
    fail "linearized decoding state: $s40 KiB after 40 tokens, $s200 KiB after 200"
fi
[ -n "$t40" ] && [ "$t40" != "$t200" ] ||
    fail "teacher decoding state: $t40 KiB after 40 tokens, $t200 KiB after 200"

# --prompt-file, plain and gzip-compressed, reads the same prompt as --prompt;
# a missing prompt file is an input error
printf 'Once upon a time' >"$tmp/prompt.txt"
gzip -c "$tmp/prompt.txt" >"$tmp/prompt.txt.gz"
generate -n 20 --threads 1 >"$tmp/p0" 2>/dev/null || fail "teacher -n 20 --prompt"
for f in prompt.txt prompt.txt.gz; do
    "$gen" --model "$model" --temperature 0 --prompt-file "$tmp/$f" -n 20 --threads 1 \
        >"$tmp/p1" 2>"$tmp/err" || fail "--prompt-file $f: $(cat "$tmp/err")"
    cmp -s "$tmp/p0" "$tmp/p1" || fail "--prompt-file $f generates other text than --prompt"
done
"$gen" --model "$model" --prompt-file "$tmp/missing.txt" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] && grep -q 'missing.txt' "$tmp/err" ||
    fail "missing prompt file: status $rc, $(cat "$tmp/err")"

# a missing folder, a folder made for another model
generate --lolcats "$tmp/missing" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 3 ] && grep -q 'lolcats_config.json' "$tmp/err" ||
    fail "missing lolcats folder: status $rc, $(cat "$tmp/err")"
if [ -f "$other" ]; then
    "$gen" --model "$other" --lolcats "$tmp/lc" --prompt x >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = 3 ] && grep -q 'another shape' "$tmp/err" ||
        fail "lolcats folder of another model: status $rc, $(cat "$tmp/err")"
fi
exit $status
