/*
 * format.c: the float codec stream's header: its size, the bounds the encoder sizes its
 * buffers with, writing it, and checking a stream's header before anything is decoded.
 *
 * Stream layout (all integers little-endian; docs/float_codec.md is the full spec):
 *   "TPFC"  u8 version=1  u8 dtype  u8 ndim  u8 chunk_log2  u64 count  u64 shape[ndim]
 *   u32 block_size[n_chunks * planes]   block chunk * planes + p codes plane p of that chunk
 *   u32 crc32(every byte above)          the header checksum
 *   blocks (docs/huffman.md section 3), back to back; their sizes add up to the rest exactly.
 */
#include "floatcodec_internal.h"

int float_planes(int32_t dtype) {
    switch (dtype) {
        case TP_FLOAT32: return 4;
        case TP_FLOAT64: return 8;
        case TP_FLOAT16:
        case TP_BFLOAT16: return 2;
        default: return 0;
    }
}

int64_t float_chunk_count(int64_t count, int32_t chunk_log2) {
    return (count + ((int64_t)1 << chunk_log2) - 1) >> chunk_log2;
}

int64_t float_header_size(int64_t count, int32_t ndim, int32_t chunk_log2, int planes) {
    return 16 + 8 * (int64_t)ndim + 4 * planes * float_chunk_count(count, chunk_log2) + 4;
}

void float_write_header(uint8_t *dst, int64_t count, int32_t dtype, int32_t ndim,
                        const int64_t *shape, int32_t chunk_log2) {
    memcpy(dst, FLOAT_MAGIC, 4);
    dst[4] = FLOAT_VERSION;
    dst[5] = (uint8_t)dtype;
    dst[6] = (uint8_t)ndim;
    dst[7] = (uint8_t)chunk_log2;
    tp_store64le(dst + 8, (uint64_t)count);
    for (int d = 0; d < ndim; d++) tp_store64le(dst + 16 + 8 * d, (uint64_t)shape[d]);
}

static int arguments_ok(int64_t count, int32_t dtype, int32_t chunk_log2) {
    return count >= 0 && count <= FLOAT_MAX_COUNT && float_planes(dtype) &&
           chunk_log2 >= TP_FLOAT_CODEC_MIN_CHUNK_LOG2 && chunk_log2 <= TP_FLOAT_CODEC_MAX_CHUNK_LOG2;
}

int64_t tp_float_bound(int64_t count, int32_t dtype, int32_t ndim, int32_t chunk_log2) {
    if (!arguments_ok(count, dtype, chunk_log2) || ndim < 0 || ndim > TP_FLOAT_CODEC_MAX_NDIM)
        return -1;
    const int planes = float_planes(dtype);
    return float_header_size(count, ndim, chunk_log2, planes) +
           HUFF_BLOCK_HEADER * planes * float_chunk_count(count, chunk_log2) + planes * count;
}

int64_t tp_float_workspace_size(int64_t count, int32_t dtype, int32_t chunk_log2,
                                int32_t threads, int32_t encode) {
    if (!arguments_ok(count, dtype, chunk_log2) || threads < 1 || threads > 4096) return -1;
    const int planes = float_planes(dtype);
    const int64_t chunk = (int64_t)1 << chunk_log2;
    /* per thread: the planes of one chunk (encoding) or of two (decoding: chunks are decoded
     * in pairs, decode.c), rounded to 64 bytes */
    const int64_t held = encode ? chunk : 2 * chunk;
    const int64_t scratch = (planes * (count < held ? count : held) + 63) & ~(int64_t)63;
    const int64_t plans = encode ? planes * float_chunk_count(count, chunk_log2) * (int64_t)sizeof(huff_plan) : 0;
    return plans + threads * scratch;
}

int tp_float_parse(const uint8_t *blob, int64_t size, tp_float_info *info) {
    TP_RETURN_IF(!info || size < 0 || (size > 0 && !blob), TP_ERR_ARGUMENT);
    memset(info, 0, sizeof *info);
    TP_RETURN_IF(size < 20 || memcmp(blob, FLOAT_MAGIC, 4) != 0, TP_ERR_CORRUPT);
    const int planes = float_planes(blob[5]);
    TP_RETURN_IF(blob[4] != FLOAT_VERSION || !planes, TP_ERR_CORRUPT);
    int ndim = blob[6], chunk_log2 = blob[7];
    TP_RETURN_IF(ndim > TP_FLOAT_CODEC_MAX_NDIM, TP_ERR_CORRUPT);
    TP_RETURN_IF(chunk_log2 < TP_FLOAT_CODEC_MIN_CHUNK_LOG2 || chunk_log2 > TP_FLOAT_CODEC_MAX_CHUNK_LOG2,
                 TP_ERR_CORRUPT);
    uint64_t count = tp_load64le(blob + 8);
    TP_RETURN_IF(count > (uint64_t)FLOAT_MAX_COUNT, TP_ERR_CORRUPT);
    TP_RETURN_IF(size < 16 + 8 * (int64_t)ndim + 4, TP_ERR_CORRUPT);
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = tp_load64le(blob + 16 + 8 * d);
        TP_RETURN_IF(dim > (uint64_t)FLOAT_MAX_COUNT, TP_ERR_CORRUPT);
        info->shape[d] = (int64_t)dim;
    }
    TP_RETURN_IF(!huff_shape_matches(info->shape, ndim, count), TP_ERR_CORRUPT);
    /* count <= 2^50 and planes <= 8: the header size cannot overflow */
    int64_t hsize = float_header_size((int64_t)count, ndim, chunk_log2, planes);
    TP_RETURN_IF(hsize > size, TP_ERR_CORRUPT);
    TP_RETURN_IF(huff_crc32_slice8(0, blob, (size_t)(hsize - 4)) != tp_load32le(blob + hsize - 4),
                 TP_ERR_CORRUPT);
    int64_t n_blocks = planes * float_chunk_count((int64_t)count, chunk_log2);
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
    info->n_chunks = float_chunk_count((int64_t)count, chunk_log2);
    info->dtype = blob[5];
    info->ndim = ndim;
    info->chunk_log2 = chunk_log2;
    info->planes = planes;
    return TP_OK;
}
