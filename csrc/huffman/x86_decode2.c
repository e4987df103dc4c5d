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
    uint64_t multi[HUFF_TABLE];
    huff_multi_table(single, multi);
    int status = decode4_multi_body(single, multi, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_pclmul(0, out, (size_t)len) : 0;
    return status;
}

/* huff_multi_table 16 entries at a time: the three lookups of each entry are gathers (of 32
 * bits at 2-byte steps, the high half masked off: `single` has one spare entry past its end).
 * ~1 cycle an entry on Zen 4 against ~14 for the scalar loop, whose 45 instructions an entry
 * cost more than decoding a 32K-symbol block at 3 symbols a lookup. */
TP_TARGET_AVX512 static void multi_table_avx512(const uint16_t *single, uint64_t *multi) {
    const __m512i low16 = _mm512_set1_epi32(0xFFFF), len = _mm512_set1_epi32(255);
    const __m512i sym = _mm512_set1_epi32(0xFF00), max_bits = _mm512_set1_epi32(HUFF_BITS);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int at = 0; at < HUFF_TABLE; at += 16, i = _mm512_add_epi32(i, _mm512_set1_epi32(16))) {
        __m512i e1 = _mm512_and_si512(_mm512_i32gather_epi32(i, single, 2), low16);
        __m512i l1 = _mm512_and_si512(e1, len), j2 = _mm512_srlv_epi32(i, l1);
        __m512i e2 = _mm512_and_si512(_mm512_i32gather_epi32(j2, single, 2), low16);
        __m512i l2 = _mm512_and_si512(e2, len), j3 = _mm512_srlv_epi32(j2, l2);
        __m512i e3 = _mm512_and_si512(_mm512_i32gather_epi32(j3, single, 2), low16);
        __m512i l3 = _mm512_and_si512(e3, len);
        __m512i t2 = _mm512_add_epi32(l1, l2), t3 = _mm512_add_epi32(t2, l3);
        __mmask16 two = _mm512_cmple_epu32_mask(t2, max_bits);
        __mmask16 three = _mm512_mask_cmple_epu32_mask(two, t3, max_bits);
        __m512i bits = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(l1, two, t2), three, t3);
        __m512i count = _mm512_mask_add_epi32(_mm512_mask_add_epi32(one, two, one, one), three,
                                              one, _mm512_set1_epi32(2));
        /* bits | s1 << 8 | s2 << 16 | s3 << 24, and the count above it */
        __m512i lo = _mm512_ternarylogic_epi32(bits, _mm512_and_si512(e1, sym),
                                               _mm512_slli_epi32(_mm512_and_si512(e2, sym), 8), 0xFE);
        lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(e3, sym), 16));
        __m512i first = _mm512_unpacklo_epi32(lo, count), second = _mm512_unpackhi_epi32(lo, count);
        /* unpack works within 128-bit lanes: entries 0 1 4 5 8 9 12 13 | 2 3 6 7 .. back in order */
        const __m512i order_a = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        const __m512i order_b = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        _mm512_storeu_si512(multi + at, _mm512_permutex2var_epi64(first, order_a, second));
        _mm512_storeu_si512(multi + at + 8, _mm512_permutex2var_epi64(first, order_b, second));
    }
}

/* The same with the AVX-512 slot's table build and CRC. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_multi_avx512(const uint16_t *single,
                                                                 const uint8_t *base,
                                                                 const uint64_t *start,
                                                                 const uint64_t *end,
                                                                 uint8_t *out, int64_t len,
                                                                 uint32_t *crc) {
    uint64_t multi[HUFF_TABLE];
    multi_table_avx512(single, multi);
    int status = decode4_multi_body(single, multi, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_vpclmul(0, out, (size_t)len) : 0;
    return status;
}
#endif /* TP_HAVE_X86_VARIANTS */
