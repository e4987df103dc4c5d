/*
 * variants.c: the float codec's plane split and merge per ISA, and their dispatch tables.
 *
 *   scalar    ref.c's plain loops, byte by byte
 *   baseline  planes.h's bodies with the compiler's default target
 *   avx2/512  the same bodies compiled for those targets
 * The block coders are the Huffman family's (HUFF_ENCODE / HUFF_DECODE of the same ISA).
 */
#include "planes.h"

#define FLOAT_PLANES_WRAPPER(TARGET, NAME)                                                    \
    TARGET static void split_##NAME(const void *src, int64_t n, int planes, uint8_t *dst) { \
        split_body(src, n, planes, dst);                                                    \
    }                                                                                       \
    TARGET static void merge_##NAME(const uint8_t *const *src, int64_t n, int planes,         \
                                  void *dst) {                                            \
        merge_body(src, n, planes, dst);                                                    \
    }

FLOAT_PLANES_WRAPPER(, baseline)
#if TP_HAVE_X86_VARIANTS
FLOAT_PLANES_WRAPPER(TP_TARGET_AVX2, avx2)
FLOAT_PLANES_WRAPPER(TP_TARGET_AVX512, avx512)
#endif

const float_split_fn FLOAT_SPLIT[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = float_split_ref,
    [TP_ISA_BASELINE] = split_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = split_avx2, [TP_ISA_AVX512] = split_avx512,)
};

const float_merge_fn FLOAT_MERGE[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = float_merge_ref,
    [TP_ISA_BASELINE] = merge_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = merge_avx2, [TP_ISA_AVX512] = merge_avx512,)
};
