/*
 * table.c: the code-length table of a Huffman block, in its two layouts (docs/huffman.md
 * section 3; the range layout of docs/float_codec.md section 5): written by the encoders and
 * read, with every bound checked, by the decoders (the scalar reference's included: this is
 * format, not a hot loop).
 */
#include "huffman_internal.h"

/* The used symbols' range [*first, *last] (at least one used). */
static void used_range(const uint8_t *lengths, int *first, int *last) {
    *first = 0;
    while (!lengths[*first]) ++*first;
    *last = 255;
    while (!lengths[*last]) --*last;
}

int huff_range_table_bytes(const uint8_t *lengths) {
    int first, last;
    used_range(lengths, &first, &last);
    return 2 + (last - first + 2) / 2;
}

int huff_write_table(uint8_t *dst, int type, const uint8_t *lengths) {
    if (type == BLOCK_HUFF) {
        for (int i = 0; i < HUFF_LENGTHS_BYTES; i++) /* symbol 2i in the low nibble */
            dst[i] = (uint8_t)(lengths[2 * i] | lengths[2 * i + 1] << 4);
        return HUFF_LENGTHS_BYTES;
    }
    int first, last;
    used_range(lengths, &first, &last);
    const int count = last - first + 1;
    dst[0] = (uint8_t)first;
    dst[1] = (uint8_t)(count - 1);
    for (int i = 0; 2 * i < count; i++) /* symbol first + 2i in the low nibble */
        dst[2 + i] = (uint8_t)(lengths[first + 2 * i] | (2 * i + 1 < count ? lengths[first + 2 * i + 1] << 4 : 0));
    return 2 + (count + 1) / 2;
}

int huff_read_table(const uint8_t *blk, int64_t size, int allow_range, uint8_t *lengths,
                    int64_t *sizes_at) {
    const uint8_t *p = blk + HUFF_BLOCK_HEADER;
    if (blk[0] == BLOCK_HUFF) {
        TP_RETURN_IF(size < HUFF_PAYLOAD_START, TP_ERR_CORRUPT);
        for (int i = 0; i < HUFF_LENGTHS_BYTES; i++) {
            lengths[2 * i] = p[i] & 15;
            lengths[2 * i + 1] = p[i] >> 4;
        }
        *sizes_at = HUFF_BLOCK_HEADER + HUFF_LENGTHS_BYTES;
        return TP_OK;
    }
    TP_RETURN_IF(blk[0] != BLOCK_HUFF_RANGE || !allow_range, TP_ERR_CORRUPT);
    TP_RETURN_IF(size < HUFF_BLOCK_HEADER + 2 + 12, TP_ERR_CORRUPT);
    const int first = p[0], count = p[1] + 1, bytes = 2 + (count + 1) / 2;
    TP_RETURN_IF(first + count > 256 || size < HUFF_BLOCK_HEADER + bytes + 12, TP_ERR_CORRUPT);
    TP_RETURN_IF((count & 1) && (p[2 + count / 2] >> 4), TP_ERR_CORRUPT); /* the pad nibble */
    memset(lengths, 0, 256);
    for (int i = 0; i < count; i++) lengths[first + i] = (p[2 + i / 2] >> (4 * (i & 1))) & 15;
    /* The range is exactly the used symbols (as the encoder writes it): otherwise one flipped
     * bit of the count could turn a zero pad nibble into an unused symbol, changing nothing
     * the checksum sees. */
    TP_RETURN_IF(!lengths[first] || !lengths[first + count - 1], TP_ERR_CORRUPT);
    *sizes_at = HUFF_BLOCK_HEADER + bytes;
    return TP_OK;
}
