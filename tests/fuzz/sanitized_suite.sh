#!/bin/sh
# The kernels' test files against a build of the C extension under AddressSanitizer and
# UBSan (about 3 minutes). Run from the repository root, in an environment where tensorpress's
# test extras are installed:
#   sh tests/fuzz/sanitized_suite.sh [pytest arguments]
# The extension is built in a copy of the repository (the installed one is left alone) with
# gcc's sanitizers, and python runs with their runtimes preloaded (python itself is not
# instrumented). Any report fails the run: UBSan does not recover, ASan stops at its first.
# The fuzzers cover arbitrary bytes for the decoder; this covers every kernel's edge cases
# (odd lengths, tails, ties, all variants and thread counts) as the tests drive them.
set -eu
ROOT="$(pwd)"
OUT="${TMPDIR:-/tmp}/tp_sanitized.$$"
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT"
cp -r setup.py pyproject.toml README.md csrc src tests docs "$OUT/"
rm -f "$OUT"/src/tensorpress/_tensorpress_c*.so
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
(cd "$OUT" && CFLAGS="$FLAGS" LDFLAGS="-fsanitize=address,undefined" \
    python setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1) || {
    tail -n 30 "$OUT/build.log"
    echo "sanitized build failed" >&2
    exit 1
}
ls "$OUT"/src/tensorpress/_tensorpress_c*.so >/dev/null
PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
cd "$OUT"
# -s: a sanitizer report goes to stderr as the process dies; pytest's capture would swallow it.
# detect_leaks=0: CPython keeps objects alive at exit on purpose.
# -k "not numba": the tests comparing C with the Numba twins check no C memory access the others
# do not, and compiling the twins under the sanitizers took minutes of CI's 25.
ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$PRELOAD" PYTHONPATH="$OUT/src" TENSORPRESS_BACKEND=c \
    python -m pytest -s -q -p no:cacheprovider -k "not numba" \
    tests/test_adam.py tests/test_adam_mixed.py tests/test_topk.py tests/test_quant.py tests/test_huffman.py \
    tests/test_float_codec.py \
    tests/test_concurrency.py tests/test_hostile_api.py "$@"
cd "$ROOT"
