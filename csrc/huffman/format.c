/*
 * format.c: the tensorpress Huffman stream's header: its size, the bounds the encoder sizes
 * its buffers with, writing it, and checking a stream's header before anything is decoded.
 *
 * Stream layout (all integers little-endian; docs/huffman.md is the full spec):
 *   "TPHF"  u8 version=2  u8 dtype  u8 ndim  u8 block_log2  u64 count  u64 shape[ndim]
 *   u32 block_size[n_blocks]          n_blocks = ceil(count / 2^block_log2)
 *   u32 crc32(every byte above)       the header checksum
 *   blocks, back to back; their sizes add up to the rest of the stream exactly.
 * Block:
 *   u8 type  u32 crc32(the block's decoded bytes)
 *   type 0 (raw):     the bytes
 *   type 1 (rle):     u8 symbol (the block is that symbol repeated)
 *   type 2 (huffman): 128 bytes of 4-bit code lengths (symbol 2i low nibble, 2i+1 high),
 *                     u32 size of streams 0, 1, 2 (stream 3 takes the rest), the 4 streams.
 * Stream k codes the block's symbols i with i % 4 == k, in order (interleaved, so the four
 * decoders write neighbouring bytes), LSB-first with bit-reversed canonical codes, zero-padded
 * to a byte; it must end exactly at its size, padding zero. crc32 is zlib's CRC-32 (version 1
 * used XXH32, which costs twice as much here).
 */
#include "huffman_internal.h"

/* a * b for shape products, stuck at HUFF_MAX_COUNT + 1 once past the limit, but exactly 0 when
 * a dimension is 0 (a wrapped 64-bit product could otherwise pass for a small count). */
static uint64_t saturating_product(uint64_t a, uint64_t b) {
    const uint64_t over = (uint64_t)HUFF_MAX_COUNT + 1;
    if (a == 0 || b == 0) return 0;
    if (a >= over || b >= over || a > over / b) return over;
    return a * b;
}

int huff_shape_matches(const int64_t *shape, int32_t ndim, uint64_t count) {
    uint64_t product = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || shape[d] > HUFF_MAX_COUNT) return 0;
        product = saturating_product(product, (uint64_t)shape[d]);
    }
    return product == count;
}

int64_t huff_block_count(int64_t count, int32_t block_log2) {
    return (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
}

int64_t huff_header_size(int64_t count, int32_t ndim, int32_t block_log2) {
    return 16 + 8 * (int64_t)ndim + 4 * huff_block_count(count, block_log2) + 4;
}

void huff_write_header(uint8_t *dst, int64_t count, int32_t dtype, int32_t ndim,
                       const int64_t *shape, int32_t block_log2) {
    memcpy(dst, HUFF_MAGIC, 4);
    dst[4] = HUFF_VERSION;
    dst[5] = (uint8_t)dtype;
    dst[6] = (uint8_t)ndim;
    dst[7] = (uint8_t)block_log2;
    tp_store64le(dst + 8, (uint64_t)count);
    for (int d = 0; d < ndim; d++) tp_store64le(dst + 16 + 8 * d, (uint64_t)shape[d]);
}

int64_t tp_huffman_bound(int64_t count, int32_t ndim, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || ndim < 0 || ndim > TP_HUFFMAN_MAX_NDIM ||
        block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 || block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    return huff_header_size(count, ndim, block_log2) +
           HUFF_BLOCK_HEADER * huff_block_count(count, block_log2) + count;
}

int64_t tp_huffman_workspace_size(int64_t count, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 ||
        block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    return huff_block_count(count, block_log2) * (int64_t)sizeof(huff_plan);
}

int tp_huffman_parse(const uint8_t *blob, int64_t size, tp_huffman_info *info) {
    TP_RETURN_IF(!info || size < 0 || (size > 0 && !blob), TP_ERR_ARGUMENT);
    memset(info, 0, sizeof *info);
    TP_RETURN_IF(size < 20 || memcmp(blob, HUFF_MAGIC, 4) != 0, TP_ERR_CORRUPT);
    TP_RETURN_IF(blob[4] != HUFF_VERSION || blob[5] > TP_HUFFMAN_BYTES, TP_ERR_CORRUPT);
    int ndim = blob[6], block_log2 = blob[7];
    TP_RETURN_IF(ndim > TP_HUFFMAN_MAX_NDIM || (blob[5] == TP_HUFFMAN_BYTES && ndim != 1),
                 TP_ERR_CORRUPT);
    TP_RETURN_IF(block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 || block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2,
                 TP_ERR_CORRUPT);
    uint64_t count = tp_load64le(blob + 8);
    TP_RETURN_IF(count > (uint64_t)HUFF_MAX_COUNT, TP_ERR_CORRUPT);
    TP_RETURN_IF(size < 16 + 8 * (int64_t)ndim + 4, TP_ERR_CORRUPT);
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = tp_load64le(blob + 16 + 8 * d);
        TP_RETURN_IF(dim > (uint64_t)HUFF_MAX_COUNT, TP_ERR_CORRUPT);
        info->shape[d] = (int64_t)dim;
    }
    TP_RETURN_IF(!huff_shape_matches(info->shape, ndim, count), TP_ERR_CORRUPT);
    int64_t hsize = huff_header_size((int64_t)count, ndim, block_log2);
    TP_RETURN_IF(hsize > size, TP_ERR_CORRUPT);
    TP_RETURN_IF(huff_crc32_slice8(0, blob, (size_t)(hsize - 4)) != tp_load32le(blob + hsize - 4),
                 TP_ERR_CORRUPT);
    int64_t n_blocks = huff_block_count((int64_t)count, block_log2);
    const uint8_t *sizes = blob + 16 + 8 * ndim;
    uint64_t total = 0, rest = (uint64_t)(size - hsize);
    for (int64_t b = 0; b < n_blocks; b++) {
        uint32_t s = tp_load32le(sizes + 4 * b);
        TP_RETURN_IF(s < HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
        total += s;
        TP_RETURN_IF(total > rest, TP_ERR_CORRUPT);
    }
    TP_RETURN_IF(total != rest, TP_ERR_CORRUPT); /* truncated, or trailing bytes */
    info->count = (int64_t)count;
    info->header_size = hsize;
    info->n_blocks = n_blocks;
    info->dtype = blob[5];
    info->ndim = ndim;
    info->block_log2 = block_log2;
    return TP_OK;
}
