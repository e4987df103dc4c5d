/*
 * decode.c: the float codec's decoder. Per chunk: each plane's block decoded (and its CRC-32
 * checked) into the thread's scratch, then the planes merged into the output, which is
 * written once. A raw plane (most mantissa planes) is not copied: after its CRC-32 is checked
 * the merge reads it in the stream itself. Chunks are independent and decoded in parallel, two
 * at a time: the same plane of two chunks goes to the Huffman family's pair decoder, which
 * decodes two single-symbol blocks of the same length together (eight bit readers instead of
 * four: float16's top plane, ~5.6 bits a symbol, 1.5x faster).
 */
#include "floatcodec_internal.h"

/* One plane's block of `size` bytes into *plane: TP_OK or TP_ERR_CORRUPT. A raw block's
 * plane is the block's payload (checked as huff_decode_block checks it); any other is decoded
 * into `scratch`. The scalar reference (crc32 NULL) always decodes into scratch. */
static int stays_in_stream(huff_crc32_fn crc32, const uint8_t *blk, int64_t size, int64_t len) {
    return crc32 && size == HUFF_BLOCK_HEADER + len && blk[0] == BLOCK_RAW && len >= 2;
}

static int decode_plane(huff_block_decoder decode_block, huff_crc32_fn crc32, const uint8_t *blk,
                        int64_t size, int64_t len, uint8_t *scratch, const uint8_t **plane) {
    if (stays_in_stream(crc32, blk, size, len)) {
        TP_RETURN_IF(crc32(0, blk + HUFF_BLOCK_HEADER, (size_t)len) != tp_load32le(blk + 1),
                     TP_ERR_CORRUPT);
        *plane = blk + HUFF_BLOCK_HEADER;
        return TP_OK;
    }
    *plane = scratch;
    return decode_block(blk, size, scratch, len, 1);
}

int tp_float_decode_isa(const uint8_t *blob, int64_t size, void *dst, int64_t count,
                        void *workspace, int64_t workspace_size, int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    tp_float_info info;
    int status = tp_float_parse(blob, size, &info);
    TP_RETURN_IF(status != TP_OK, status);
    TP_RETURN_IF(count != info.count || (count > 0 && !dst), TP_ERR_ARGUMENT);
    const int planes = info.planes;
    const int64_t scratch_size = tp_float_workspace_size(count, info.dtype, info.chunk_log2, 1, 0);
    TP_RETURN_IF(workspace_size < scratch_size, TP_ERR_BUFFER);
    TP_RETURN_IF(count > 0 && (!workspace || ((uintptr_t)workspace & 7)), TP_ERR_ARGUMENT);
    int threads = tp_threads_for(count * planes, FLOAT_MIN_BYTES_PER_THREAD);
    if (scratch_size > 0 && workspace_size / scratch_size < threads)
        threads = (int)(workspace_size / scratch_size);
    (void)threads;

    const int hisa = huff_pick_isa(isa);
    const huff_block_decoder decode_block = TP_PICK(HUFF_DECODE, hisa);
    const huff_block_pair_decoder decode_pair = TP_PICK(HUFF_DECODE_PAIR, hisa);
    const huff_crc32_fn crc32 = isa == TP_ISA_SCALAR ? NULL : TP_PICK(HUFF_CRC32, hisa);
    const float_merge_fn merge = TP_PICK(FLOAT_MERGE, isa);
    const int64_t cs = (int64_t)1 << info.chunk_log2, n_chunks = info.n_chunks;
    const int64_t n_pairs = (n_chunks + 1) / 2;
    const uint8_t *sizes = blob + 16 + 8 * info.ndim;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : status) if (threads > 1)
#endif
    {
        uint8_t *own = (uint8_t *)workspace + tp_team_id() * scratch_size;
        /* each thread's cursor into the block table only moves on */
        int64_t cursor = 0, offset = info.header_size;
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t g = 0; g < n_pairs; g++) {
            const int64_t c = 2 * g; /* chunks c and c + 1 (when there is one) */
            for (; cursor < c * planes; cursor++) offset += tp_load32le(sizes + 4 * cursor);
            if (mine != TP_OK) continue; /* no break out of an OpenMP loop */
            const int chunks = c + 1 < n_chunks ? 2 : 1;
            int64_t len[2], at[16], size[16];
            const uint8_t *plane[2][8];
            uint8_t *scratch[2];
            for (int h = 0; h < chunks; h++)
                len[h] = count - (c + h) * cs < cs ? count - (c + h) * cs : cs;
            scratch[0] = own;
            scratch[1] = own + planes * len[0];
            for (int i = 0; i < chunks * planes; i++, cursor++) {
                size[i] = tp_load32le(sizes + 4 * cursor);
                at[i] = offset;
                offset += size[i];
            }
            for (int p = 0; p < planes && mine == TP_OK; p++) {
                const int q = planes + p; /* the same plane of the second chunk */
                if (chunks == 2 && !stays_in_stream(crc32, blob + at[p], size[p], len[0]) &&
                    !stays_in_stream(crc32, blob + at[q], size[q], len[1])) {
                    plane[0][p] = scratch[0] + p * len[0];
                    plane[1][p] = scratch[1] + p * len[1];
                    mine = decode_pair(blob + at[p], size[p], scratch[0] + p * len[0], len[0],
                                       blob + at[q], size[q], scratch[1] + p * len[1], len[1], 1);
                    continue;
                }
                for (int h = 0; h < chunks && mine == TP_OK; h++)
                    mine = decode_plane(decode_block, crc32, blob + at[h * planes + p],
                                        size[h * planes + p], len[h], scratch[h] + p * len[h],
                                        &plane[h][p]);
            }
            for (int h = 0; h < chunks && mine == TP_OK; h++)
                merge(plane[h], len[h], planes, (uint8_t *)dst + (c + h) * cs * planes);
        }
        if (mine < status) status = mine;
    }
    return status;
}

int tp_float_decode(const uint8_t *blob, int64_t size, void *dst, int64_t count,
                    void *workspace, int64_t workspace_size) {
    return tp_float_decode_isa(blob, size, dst, count, workspace, workspace_size,
                               tp_isa_current());
}
