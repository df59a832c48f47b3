#!/bin/sh
# The programs run OpenBLAS's AVX-512 kernels on an AVX-512 processor when
# OPENBLAS_CORETYPE is not set, respect it when it is, and say which kernel
# runs at --verbose.
. "$(dirname "$0")/cli_common.sh"
model=$(data_path models/llama-2-tiny-random/llama-2-tiny-random.gguf)
text=$(data_path text/tinystories/tinystories_sample.txt)
[ -f "$model" ] && [ -f "$text" ] || { echo "SKIP: test data missing"; exit 77; }

run() { "$eval_" --model "$model" --task ppl --data "$text" --context 64 --quiet --verbose "$@"; }

OPENBLAS_CORETYPE=Haswell run >/dev/null 2>"$tmp/set" || { echo "FAIL: run failed"; cat "$tmp/set"; exit 1; }
grep -q 'GEMM kernel: OpenBLAS Haswell (OPENBLAS_CORETYPE=Haswell)' "$tmp/set" || {
    echo "FAIL: OPENBLAS_CORETYPE=Haswell not respected:"; cat "$tmp/set"; status=1; }

flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
avx512=yes
for f in avx512f avx512bw avx512dq avx512vl; do
    case " $flags " in *" $f "*) ;; *) avx512=no ;; esac
done
if [ "$avx512" = yes ]; then
    env -u OPENBLAS_CORETYPE "$eval_" --model "$model" --task ppl --data "$text" --context 64 \
        --quiet --verbose >/dev/null 2>"$tmp/unset" || { echo "FAIL: run failed"; exit 1; }
    grep -qi 'GEMM kernel: OpenBLAS \(SkylakeX\|Cooperlake\|SapphireRapids\)' "$tmp/unset" || {
        echo "FAIL: an AVX-512 processor without OPENBLAS_CORETYPE did not get AVX-512 kernels:"
        cat "$tmp/unset"; status=1; }
else
    echo "note: no AVX-512 on this processor; only the respected setting was checked"
fi
exit $status
