/*
 * decode.c: the Huffman decoder: every block checked and decoded, blocks in parallel.
 *
 * Where the time goes (Zen 1, 2.45 GHz, Gaussian int8 data, cycles per byte): ~2.2 for the
 * four-stream rounds (5 instructions per symbol plus the refills), 0.15 for the CRC folded
 * into them, 0.1 for the table and the last symbols. The variant (HUFF_DECODE in variants.c)
 * decodes whole blocks: the scalar reference's (ref.c), or huff_decode_block below around the
 * baseline or x86 loops.
 */
#include "huffman_internal.h"

/* Decoding table entries: loops.h. */
static uint16_t table_entry(int symbol, int length) { return (uint16_t)(length | (symbol << 8)); }

int huff_decode_block(huff_decode4_fn decode4, huff_decode4_fn decode4_multi,
                      huff_crc32_fn crc32, const uint8_t *blk, int64_t size, uint8_t *out,
                      int64_t len, int allow_range) {
    TP_RETURN_IF(size < HUFF_BLOCK_HEADER, TP_ERR_CORRUPT);
    uint32_t expect = tp_load32le(blk + 1), crc = 0;
    switch (blk[0]) {
        case BLOCK_RAW: /* one byte is a single-symbol block (B2): a flipped type bit shows */
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + len || len < 2, TP_ERR_CORRUPT);
            memcpy(out, blk + HUFF_BLOCK_HEADER, (size_t)len);
            crc = crc32(0, out, (size_t)len);
            break;
        case BLOCK_RLE:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
            memset(out, blk[HUFF_BLOCK_HEADER], (size_t)len);
            crc = crc32(0, out, (size_t)len);
            break;
        case BLOCK_HUFF:
        case BLOCK_HUFF_RANGE: {
            uint8_t lengths[256];
            int64_t at;
            int status = huff_read_table(blk, size, allow_range, lengths, &at);
            TP_RETURN_IF(status != TP_OK, status);
            /* A complete code (Kraft's sum exactly 1) fills every table entry. */
            TP_RETURN_IF(huff_kraft(lengths) != HUFF_TABLE, TP_ERR_CORRUPT);
            const uint8_t *p = blk + at;
            uint64_t payload = (uint64_t)(size - at - 12);
            uint64_t s0 = tp_load32le(p), s1 = tp_load32le(p + 4), s2 = tp_load32le(p + 8);
            TP_RETURN_IF(s0 + s1 + s2 > payload, TP_ERR_CORRUPT);
            const uint8_t *base = blk + at + 12;
            const uint64_t start[4] = {0, s0, s0 + s1, s0 + s1 + s2};
            const uint64_t end[4] = {s0, s0 + s1, s0 + s1 + s2, payload};
            uint16_t codes[256], table[HUFF_TABLE + 1]; /* + 1: multi_table_avx512 reads past */
            huff_canonical_codes(lengths, codes);
            for (int s = 0; s < 256; s++) {
                int l = lengths[s];
                if (!l) continue;
                uint16_t entry = table_entry(s, l);
                for (int i = codes[s]; i < HUFF_TABLE; i += 1 << l) table[i] = entry;
            }
            /* Few bits per symbol: most 11-bit windows hold several codes (loops.h) */
            if (decode4_multi && 8 * payload < (uint64_t)HUFF_MULTI_MAX_BITS * (uint64_t)len)
                decode4 = decode4_multi;
            status = decode4(table, base, start, end, out, len, &crc);
            TP_RETURN_IF(status != TP_OK, status);
            break;
        }
        default: return TP_ERR_CORRUPT;
    }
    TP_RETURN_IF(crc != expect, TP_ERR_CORRUPT);
    return TP_OK;
}

int tp_huffman_decode_isa(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count,
                          int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    const huff_block_decoder decode_block = TP_PICK(HUFF_DECODE, huff_pick_isa(isa));
    tp_huffman_info info;
    int status = tp_huffman_parse(blob, size, &info);
    TP_RETURN_IF(status != TP_OK, status);
    TP_RETURN_IF(count != info.count || (count > 0 && !dst), TP_ERR_ARGUMENT);
    const int64_t bs = (int64_t)1 << info.block_log2, n_blocks = info.n_blocks;
    const uint8_t *sizes = blob + 16 + 8 * info.ndim;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : status) if (threads > 1)
#endif
    {
        /* dynamic blocks, each thread's cursor into the block table only moving on */
        int64_t cursor = 0, offset = info.header_size;
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t b = 0; b < n_blocks; b++) {
            for (; cursor < b; cursor++) offset += tp_load32le(sizes + 4 * cursor);
            if (mine != TP_OK) continue; /* no break out of an OpenMP loop */
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            mine = decode_block(blob + offset, tp_load32le(sizes + 4 * b), dst + b * bs, len, 0);
        }
        if (mine < status) status = mine;
    }
    return status;
}

int tp_huffman_decode(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count) {
    return tp_huffman_decode_isa(blob, size, dst, count, tp_isa_current());
}
