#!/bin/sh
# Short fuzz run of the Huffman decoder and the float codec's decoder for CI (about 45 s of
# fuzzing in all, split 5:4 between them). Run from the repository root:
#   sh tests/fuzz/ci.sh [seconds]
# With clang + libFuzzer (Debian: apt-get install -y clang-14 libfuzzer-14-dev) it runs the
# coverage-guided libFuzzer targets; otherwise gcc's AddressSanitizer/UBSan builds of the
# self-driving random fuzzers (needs only gcc). Any sanitizer report or refused round trip
# fails the script.
# Sanitizers cannot see inside the x86-64 assembly decoding loop (sanitizer builds use the C
# loop instead), so plain -O2 builds of the self-driving fuzzers then run for a tenth of the
# time (at least 5 s in all): every kernel variant this CPU runs must agree on every input, the
# assembly included. With TP_FUZZ_VALGRIND=seconds the plain builds also run under valgrind
# (memcheck sees the assembly's reads and writes).
set -eu
SECONDS_TO_RUN="${1:-45}"
HUFFMAN_SECONDS=$((SECONDS_TO_RUN * 5 / 9))
FLOAT_SECONDS=$((SECONDS_TO_RUN - HUFFMAN_SECONDS))
PLAIN_SECONDS=$((SECONDS_TO_RUN / 10))
[ "$PLAIN_SECONDS" -ge 5 ] || PLAIN_SECONDS=5
HUFFMAN_PLAIN=$((PLAIN_SECONDS - PLAIN_SECONDS / 2))
FLOAT_PLAIN=$((PLAIN_SECONDS / 2))
OUT="${TMPDIR:-/tmp}/tp_fuzz.$$"
mkdir -p "$OUT/huffman_corpus" "$OUT/float_corpus"
HUFFMAN_SRC="tests/fuzz/huffman_fuzz.c $(ls csrc/huffman/*.c) csrc/cpu.c"
FLOAT_SRC="tests/fuzz/float_fuzz.c $(ls csrc/huffman/*.c) $(ls csrc/floatcodec/*.c) csrc/cpu.c"
CLANG="$(command -v clang-14 || command -v clang || true)"
PROBE='int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }'
# The four builds run side by side (each waited for: a failed build fails the script).
if [ -n "$CLANG" ] && echo "$PROBE" | "$CLANG" -fsanitize=fuzzer -x c - -o "$OUT/probe" 2>/dev/null; then
    LIBFUZZER=1
    FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DTP_FUZZ_LIBFUZZER -Icsrc"
    "$CLANG" $FLAGS $HUFFMAN_SRC -o "$OUT/huffman_fuzz" & P1=$!
    "$CLANG" $FLAGS $FLOAT_SRC -o "$OUT/float_fuzz" & P2=$!
else
    LIBFUZZER=0
    FLAGS="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fopenmp -Icsrc"
    gcc $FLAGS $HUFFMAN_SRC -o "$OUT/huffman_fuzz" & P1=$!
    gcc $FLAGS $FLOAT_SRC -o "$OUT/float_fuzz" & P2=$!
fi
gcc -g -O2 -fopenmp -Icsrc $HUFFMAN_SRC -o "$OUT/huffman_fuzz_plain" & P3=$!
gcc -g -O2 -fopenmp -Icsrc $FLOAT_SRC -o "$OUT/float_fuzz_plain" & P4=$!
wait $P1
wait $P2
wait $P3
wait $P4
if [ "$LIBFUZZER" = 1 ]; then
    "$OUT/huffman_fuzz" -max_total_time="$HUFFMAN_SECONDS" -max_len=20000 -print_final_stats=1 \
        "$OUT/huffman_corpus"
    "$OUT/float_fuzz" -max_total_time="$FLOAT_SECONDS" -max_len=40000 -print_final_stats=1 \
        "$OUT/float_corpus"
else
    "$OUT/huffman_fuzz" "$HUFFMAN_SECONDS"
    "$OUT/float_fuzz" "$FLOAT_SECONDS"
fi
"$OUT/huffman_fuzz_plain" "$HUFFMAN_PLAIN"
"$OUT/float_fuzz_plain" "$FLOAT_PLAIN"
if [ -n "${TP_FUZZ_VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=9 "$OUT/huffman_fuzz_plain" "$TP_FUZZ_VALGRIND" 2
    valgrind -q --error-exitcode=9 "$OUT/float_fuzz_plain" "$TP_FUZZ_VALGRIND" 2
fi
rm -rf "$OUT"
