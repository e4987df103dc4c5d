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

#endif /* TP_HUFFMAN_INTERNAL_H */
