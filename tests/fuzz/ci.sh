#!/bin/sh
# Short fuzz run of the Huffman decoder for CI (about 45 s). Run from the repository root:
#   sh tests/fuzz/ci.sh [seconds]
# With clang + libFuzzer (Debian: apt-get install -y clang-14 libfuzzer-14-dev) it runs the
# coverage-guided libFuzzer target; otherwise gcc's AddressSanitizer/UBSan build of the
# self-driving random fuzzer (needs only gcc). Any sanitizer report or refused round trip
# fails the script.
# Sanitizers cannot see inside the x86-64 assembly decoding loop (sanitizer builds use the C
# loop instead), so a plain -O2 build of the self-driving fuzzer then runs for a tenth of the
# time (at least 5 s): every kernel variant this CPU runs must agree on every input, the
# assembly included. With TP_FUZZ_VALGRIND=seconds that build also runs under valgrind
# (memcheck sees the assembly's reads and writes).
set -eu
SECONDS_TO_RUN="${1:-45}"
OUT="${TMPDIR:-/tmp}/tp_huffman_fuzz.$$"
mkdir -p "$OUT/corpus"
SRC="tests/fuzz/huffman_fuzz.c $(ls csrc/huffman/*.c) csrc/cpu.c"
CLANG="$(command -v clang-14 || command -v clang || true)"
PROBE='int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }'
if [ -n "$CLANG" ] && echo "$PROBE" | "$CLANG" -fsanitize=fuzzer -x c - -o "$OUT/probe" 2>/dev/null; then
    "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -DTP_FUZZ_LIBFUZZER -Icsrc $SRC -o "$OUT/huffman_fuzz"
    "$OUT/huffman_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=20000 -print_final_stats=1 \
        "$OUT/corpus"
else
    gcc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fopenmp -Icsrc $SRC \
        -o "$OUT/huffman_fuzz"
    "$OUT/huffman_fuzz" "$SECONDS_TO_RUN"
fi
PLAIN_SECONDS=$((SECONDS_TO_RUN / 10))
[ "$PLAIN_SECONDS" -ge 5 ] || PLAIN_SECONDS=5
gcc -g -O2 -fopenmp -Icsrc $SRC -o "$OUT/huffman_fuzz_plain"
"$OUT/huffman_fuzz_plain" "$PLAIN_SECONDS"
if [ -n "${TP_FUZZ_VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=9 "$OUT/huffman_fuzz_plain" "$TP_FUZZ_VALGRIND" 2
fi
rm -rf "$OUT"
