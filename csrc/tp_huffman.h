/* tp_huffman.h: the Huffman family's public declarations (csrc/huffman/, docs/huffman.md).
 * Each kernel takes the ISA one way: tp_<kernel>_isa(..., isa), and tp_<kernel>(...) runs it
 * with tp_isa_current(); TP_ISA_SCALAR runs the plain reference (huffman/ref.c). */
#ifndef TP_HUFFMAN_H
#define TP_HUFFMAN_H

/* cdef: begin */
#define TP_HUFFMAN_MAX_BITS 11      /* longest code the block coder uses */
#define TP_HUFFMAN_MAX_NDIM 32
#define TP_HUFFMAN_BLOCK_LOG2 18    /* 256 KiB blocks (what huffman_encode uses) */
#define TP_HUFFMAN_MIN_BLOCK_LOG2 10
#define TP_HUFFMAN_MAX_BLOCK_LOG2 24
#define TP_HUFFMAN_UINT8 0          /* dtype codes stored in the stream */
#define TP_HUFFMAN_INT8 1
#define TP_HUFFMAN_BYTES 2

/* What a stream's header says (filled by tp_huffman_parse once every header check passed). */
typedef struct {
    int64_t count;                  /* symbols */
    int64_t shape[32];
    int64_t header_size;            /* bytes before the first block */
    int64_t n_blocks;
    int32_t dtype;                  /* TP_HUFFMAN_UINT8 / INT8 / BYTES */
    int32_t ndim;
    int32_t block_log2;
} tp_huffman_info;

/* Largest stream tp_huffman_encode can write for `count` symbols of `ndim` dimensions
 * (-1 when an argument is out of range). Incompressible data grows by 9 bytes per block. */
int64_t tp_huffman_bound(int64_t count, int32_t ndim, int32_t block_log2);
/* Bytes of workspace tp_huffman_encode needs (8-byte aligned). */
int64_t tp_huffman_workspace_size(int64_t count, int32_t block_log2);

/* Encode `count` bytes; shape[ndim] is stored (its product must be count). Writes at most
 * tp_huffman_bound(...) bytes to dst and the length to *written. Output is identical for
 * any thread count and any instruction-set variant. */
int tp_huffman_encode(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                      const int64_t *shape, int32_t block_log2, uint8_t *dst,
                      int64_t dst_capacity, void *workspace, int64_t workspace_size,
                      int64_t *written);
int tp_huffman_encode_isa(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                          const int64_t *shape, int32_t block_log2, uint8_t *dst,
                          int64_t dst_capacity, void *workspace, int64_t workspace_size,
                          int64_t *written, int isa);

/* Check a stream's header, header checksum and block-size table (the blocks sizes must add up
 * to the stream's exact length); TP_ERR_CORRUPT when anything is wrong. */
int tp_huffman_parse(const uint8_t *blob, int64_t size, tp_huffman_info *info);

/* Decode a whole stream into dst (`count` bytes, which must equal the header's count).
 * TP_ERR_CORRUPT on any damage (bad block header, code lengths, jump table, stream that does
 * not end exactly where its size says, checksum mismatch); dst content is then unspecified.
 * Never reads outside blob[0, size) nor writes outside dst[0, count). */
int tp_huffman_decode(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count);
int tp_huffman_decode_isa(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count,
                          int isa);

/* Byte histogram of src (all threads above a size where it pays). */
int tp_huffman_histogram(const uint8_t *src, int64_t count, int64_t *counts);
int tp_huffman_histogram_isa(const uint8_t *src, int64_t count, int64_t *counts, int isa);

/* *out = CRC-32 of data[0, n) continuing `crc` (zlib.crc32(data, crc)): the stream's checksum. */
int tp_huffman_crc32(const uint8_t *data, int64_t n, uint32_t crc, uint32_t *out);
int tp_huffman_crc32_isa(const uint8_t *data, int64_t n, uint32_t crc, uint32_t *out, int isa);

/* Length-limited code lengths for `n` (<= 256) symbol counts (each >= 0, sum < 2^53):
 * Huffman lengths, then a height-limiting pass to max_bits (1..32) that keeps Kraft's sum
 * exactly 1 when two or more symbols are used. Unused symbols get 0; a single used symbol
 * gets 1. TP_ERR_ARGUMENT when more than 2^max_bits symbols are used. */
int tp_huffman_code_lengths(const int64_t *counts, int32_t n, int32_t max_bits,
                            uint8_t *lengths);
int tp_huffman_code_lengths_isa(const int64_t *counts, int32_t n, int32_t max_bits,
                                uint8_t *lengths, int isa);
/* cdef: end */

#endif /* TP_HUFFMAN_H */
