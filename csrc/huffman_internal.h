/* huffman_internal.h: what huffman.c and huffman_codes.c share (never seen by cffi). */
#ifndef TP_HUFFMAN_INTERNAL_H
#define TP_HUFFMAN_INTERNAL_H

#include <string.h>
#include "bitstream.h"
#include "common.h"

#define TP_HUFF_BITS TP_HUFFMAN_MAX_BITS
#define TP_HUFF_TABLE (1 << TP_HUFF_BITS)

/* Lengths limited to max_bits for n <= 256 counts (see huffman_codes.c). */
int tp_huff_lengths(const uint64_t *counts, int n, int max_bits, uint8_t *lengths);
/* Canonical codes, bit-reversed for the LSB-first writer. */
void tp_huff_codes(const uint8_t *lengths, uint16_t *codes);
/* Kraft's sum in units of 2^-TP_HUFF_BITS, -1 when a length exceeds TP_HUFF_BITS. */
int64_t tp_huff_kraft(const uint8_t *lengths);

/* ---- CRC-32 (zlib's), huffman_crc.c ------------------------------------------------------- */
/* crc = tp_crc32_*(0, data, n) is zlib.crc32(data); passing a previous result continues it. */
extern const uint32_t tp_crc32_table[8][256];
uint32_t tp_crc32_sw(uint32_t crc, const uint8_t *p, size_t n);

/* 8 message bytes (little-endian w) into the raw (not inverted) CRC register c. */
TP_ALWAYS_INLINE uint32_t tp_crc32_step8(uint32_t c, uint64_t w) {
    w ^= c;
    return tp_crc32_table[7][w & 255] ^ tp_crc32_table[6][(w >> 8) & 255] ^
           tp_crc32_table[5][(w >> 16) & 255] ^ tp_crc32_table[4][(w >> 24) & 255] ^
           tp_crc32_table[3][(w >> 32) & 255] ^ tp_crc32_table[2][(w >> 40) & 255] ^
           tp_crc32_table[1][(w >> 48) & 255] ^ tp_crc32_table[0][w >> 56];
}

/* PCLMULQDQ folding constants (see huffman_crc.c): x^191, x^127 fold 16 bytes forward,
 * x^575, x^511 fold 64 bytes. */
#define TP_CRC32_K191 0x65673b4600000000ull
#define TP_CRC32_K127 0x9ba54c6f00000000ull
#define TP_CRC32_K575 0x653d982200000000ull
#define TP_CRC32_K511 0xcad38e8f00000000ull
#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>
/* Same values as tp_crc32_sw; only on CPUs with PCLMULQDQ. */
uint32_t tp_crc32_pclmul(uint32_t crc, const uint8_t *p, size_t n);
/* The CRC of a message whose first part is folded into the 128-bit remainder x (its first 16
 * bytes XOR the initial register, then 16 bytes at a time) and whose last n bytes are at p. */
__attribute__((target("pclmul,sse4.1"))) uint32_t tp_crc32_pclmul_finish(__m128i x,
                                                                          const uint8_t *p,
                                                                          size_t n);
#endif

#endif /* TP_HUFFMAN_INTERNAL_H */
