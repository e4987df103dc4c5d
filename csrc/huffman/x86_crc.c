/*
 * x86_crc.c: CRC-32 with PCLMULQDQ (x86-64), the x86 slots of HUFF_CRC32: huff_crc32_slice8's
 * values at ~0.25 cycles/byte on Zen 1 against ~1.7 for the tables (and ~0.55 for XXH32, the
 * checksum of format version 1). Carry-less multiplication folds 16-byte chunks into a 128-bit
 * remainder (Gopal et al., Intel, "Fast CRC computation for generic polynomials using
 * PCLMULQDQ"), four chunks in flight.
 *
 * The folding: a 16-byte chunk X (little-endian) stands for the message polynomial
 * M_X = rev64(X.lo) x^64 + rev64(X.hi) (its first bit is the highest power). For a message
 * X || Y, M = M_X x^128 + M_Y, and since the CRC of a message depends only on M mod P, X can be
 * replaced by any Z with M_Z = M_X x^128 (mod P). PCLMULQDQ of bit-reversed operands gives the
 * reversed product times x, so Z = clmul(X.lo, K_a) ^ clmul(X.hi, K_b) with
 * K_a = rev64(x^191 mod P) and K_b = rev64(x^127 mod P) (for a 4-chunk stride, x^575 and
 * x^511; make_crc_table.py prints them). The initial value is XOR-ed into the first four
 * bytes, and the last 128-bit remainder (a 16-byte message with the same CRC) goes through the
 * tables.
 */
#include "huffman_internal.h"

#if TP_HAVE_X86_VARIANTS

/* Fold the 128-bit remainder x forward by the distance the constants k encode. */
TP_TARGET_PCLMUL static inline __m128i fold(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

TP_TARGET_PCLMUL static inline __m128i load16(const uint8_t *p) {
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

TP_TARGET_PCLMUL uint32_t huff_crc32_pclmul_finish(__m128i x, const uint8_t *p, size_t n) {
    const __m128i k1 = _mm_set_epi64x((long long)HUFF_CRC32_K127, (long long)HUFF_CRC32_K191);
    for (; n >= 16; n -= 16, p += 16) x = _mm_xor_si128(fold(x, k1), load16(p));
    uint8_t rest[16];
    _mm_storeu_si128((__m128i *)(void *)rest, x);
    /* the remainder as a 16-byte message from a zero register, then the last bytes */
    uint32_t c = huff_crc32_step8(huff_crc32_step8(0, tp_load64le(rest)), tp_load64le(rest + 8));
    return huff_crc32_slice8(~c, p, n);
}

TP_TARGET_PCLMUL uint32_t huff_crc32_pclmul(uint32_t crc, const uint8_t *p, size_t n) {
    if (n < 32) return huff_crc32_slice8(crc, p, n);
    const __m128i k1 = _mm_set_epi64x((long long)HUFF_CRC32_K127, (long long)HUFF_CRC32_K191);
    __m128i x = _mm_xor_si128(load16(p), _mm_cvtsi32_si128((int)~crc));
    size_t i = 16;
    if (n >= 128) { /* four chunks in flight: the multiplier's latency is hidden */
        const __m128i k4 = _mm_set_epi64x((long long)HUFF_CRC32_K511, (long long)HUFF_CRC32_K575);
        __m128i x1 = load16(p + 16), x2 = load16(p + 32), x3 = load16(p + 48);
        for (i = 64; i + 64 <= n; i += 64) {
            x = _mm_xor_si128(fold(x, k4), load16(p + i));
            x1 = _mm_xor_si128(fold(x1, k4), load16(p + i + 16));
            x2 = _mm_xor_si128(fold(x2, k4), load16(p + i + 32));
            x3 = _mm_xor_si128(fold(x3, k4), load16(p + i + 48));
        }
        x = _mm_xor_si128(fold(x, k1), x1);
        x = _mm_xor_si128(fold(x, k1), x2);
        x = _mm_xor_si128(fold(x, k1), x3);
    }
    return huff_crc32_pclmul_finish(x, p + i, n - i);
}

/* x folded forward by the distance k encodes, XOR d: one ternary logic op for both XORs. */
TP_TARGET_VPCLMUL static inline __m512i fold4(__m512i x, __m512i k, __m512i d) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), d, 0x96);
}

TP_TARGET_VPCLMUL static inline __m512i broadcast_constants(uint64_t k_lo, uint64_t k_hi) {
    return _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k_hi, (long long)k_lo));
}

TP_TARGET_VPCLMUL uint32_t huff_crc32_vpclmul(uint32_t crc, const uint8_t *p, size_t n) {
    if (n < 256) return huff_crc32_pclmul(crc, p, n);
    const __m512i k256 = broadcast_constants(HUFF_CRC32_K2111, HUFF_CRC32_K2047);
    const __m512i k64 = broadcast_constants(HUFF_CRC32_K575, HUFF_CRC32_K511);
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                  _mm512_castsi128_si512(_mm_cvtsi32_si128((int)~crc)));
    __m512i x1 = _mm512_loadu_si512(p + 64), x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    size_t i = 256;
    for (; i + 256 <= n; i += 256) {
        x0 = fold4(x0, k256, _mm512_loadu_si512(p + i));
        x1 = fold4(x1, k256, _mm512_loadu_si512(p + i + 64));
        x2 = fold4(x2, k256, _mm512_loadu_si512(p + i + 128));
        x3 = fold4(x3, k256, _mm512_loadu_si512(p + i + 192));
    }
    x0 = fold4(x0, k64, x1);
    x0 = fold4(x0, k64, x2);
    x0 = fold4(x0, k64, x3);
    for (; i + 64 <= n; i += 64) x0 = fold4(x0, k64, _mm512_loadu_si512(p + i));
    /* the four lanes, first to last, into one remainder */
    const __m128i k16 = _mm_set_epi64x((long long)HUFF_CRC32_K127, (long long)HUFF_CRC32_K191);
    __m128i x = _mm512_castsi512_si128(x0);
    x = _mm_xor_si128(fold(x, k16), _mm512_extracti32x4_epi32(x0, 1));
    x = _mm_xor_si128(fold(x, k16), _mm512_extracti32x4_epi32(x0, 2));
    x = _mm_xor_si128(fold(x, k16), _mm512_extracti32x4_epi32(x0, 3));
    return huff_crc32_pclmul_finish(x, p + i, n - i);
}
#endif
