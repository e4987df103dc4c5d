/*
 * x86_decode2.c: the multi-symbol four-stream rounds (loops.h) for the x86 slots: the
 * huff_decode4_fn that huff_decode_block runs on low-entropy blocks, compiled for BMI2 (bzhi,
 * shrx) with the block's CRC-32 by (V)PCLMULQDQ afterwards (the output is still in L1/L2).
 *
 * The C rounds, not assembly: an assembly form (sentinel-bit readers so that the four readers'
 * bits, output indices, table and temporaries fit the 16 registers) measured 1.2x slower than
 * GCC's code for this loop on Zen 4 (1.68 against 1.39 cycles per symbol on the bfloat16
 * exponent plane), so it was not kept.
 */
#include "loops.h"

#if TP_HAVE_X86_VARIANTS
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_multi_x86(const uint16_t *single,
                                                              const uint8_t *base,
                                                              const uint64_t *start,
                                                              const uint64_t *end, uint8_t *out,
                                                              int64_t len, uint32_t *crc) {
    int status = decode4_multi_body(single, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_pclmul(0, out, (size_t)len) : 0;
    return status;
}

/* The same with the AVX-512 slot's CRC. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_multi_avx512(const uint16_t *single,
                                                                 const uint8_t *base,
                                                                 const uint64_t *start,
                                                                 const uint64_t *end,
                                                                 uint8_t *out, int64_t len,
                                                                 uint32_t *crc) {
    int status = decode4_multi_body(single, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_vpclmul(0, out, (size_t)len) : 0;
    return status;
}
#endif /* TP_HAVE_X86_VARIANTS */
