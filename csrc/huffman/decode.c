/*
 * decode.c: the Huffman decoder: every block checked and decoded, blocks in parallel.
 *
 * Where the time goes (Zen 1, 2.45 GHz, Gaussian int8 data, cycles per byte): ~2.2 for the
 * four-stream rounds (5 instructions per symbol plus the refills), 0.15 for the CRC folded
 * into them, 0.1 for the table and the last symbols. Blocks are taken two at a time: two
 * single-symbol Huffman blocks of the same length are decoded together (eight readers,
 * loops.h; 1.5x faster on Zen 4: 0.39 against 0.59 ns a symbol on float16's top plane, CRC-32
 * included). The variant (HUFF_DECODE, HUFF_DECODE_PAIR in variants.c) decodes whole blocks:
 * the scalar reference's (ref.c), or huff_decode_block(_pair) below around the baseline or x86
 * loops.
 */
#include "huffman_internal.h"

/* Decoding table entries: loops.h. */
static uint16_t table_entry(int symbol, int length) { return (uint16_t)(length | (symbol << 8)); }

/* The decoding table of a complete code (Kraft's sum 1, every length <= HUFF_BITS: checked
 * first). An l-bit code (its bits reversed: LSB first) owns every entry whose low l bits it is,
 * so the table is built by doubling: once the first 2^(l-1) entries hold every code of fewer
 * than l bits, copying them up gives the first 2^l, and each l-bit code then takes its one
 * entry among them. What the copies carry into the entries of longer codes' prefixes is
 * overwritten on the way. One store a symbol and 4 KB of copies, where filling each code's
 * entries one by one took 2048 stores (2% of float16's decoding time). The canonical codes
 * (deflate's rule, as huff_canonical_codes) are counted out length by length as they go. */
static void fill_table(const uint8_t *lengths, uint16_t *table) {
    /* the symbols by length: those of length l end up at by_length[at[l - 1], at[l]) */
    uint8_t by_length[256];
    int at[HUFF_BITS + 2] = {0};
    for (int s = 0; s < 256; s++) at[lengths[s] + 1]++;
    for (int l = 1; l <= HUFF_BITS + 1; l++) at[l] += at[l - 1];
    for (int s = 0; s < 256; s++) by_length[at[lengths[s]]++] = (uint8_t)s;
    table[0] = 0;
    uint32_t code = 0; /* the first code of length l */
    for (int l = 1, size = 1; l <= HUFF_BITS; l++, size *= 2) {
        memcpy(table + size, table, (size_t)size * sizeof *table);
        for (int i = at[l - 1]; i < at[l]; i++)
            table[huff_reverse(code++, l)] = table_entry(by_length[i], l);
        code <<= 1;
    }
}

/* A block's header checked and, for a Huffman block, its decoding table built in `table` and its
 * streams found: what decoding it needs. */
typedef struct {
    int type;
    uint32_t expect; /* the CRC-32 of its decoded bytes */
    int multi;       /* few bits per symbol: the multi-symbol loop pays (loops.h) */
    huff_streams s;
} huff_job;

static int block_setup(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                       int allow_range, uint16_t *table, huff_job *job) {
    TP_RETURN_IF(size < HUFF_BLOCK_HEADER, TP_ERR_CORRUPT);
    job->type = blk[0];
    job->expect = tp_load32le(blk + 1);
    job->multi = 0;
    job->s.out = out;
    switch (blk[0]) {
        case BLOCK_RAW: /* one byte is a single-symbol block (B2): a flipped type bit shows */
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + len || len < 2, TP_ERR_CORRUPT);
            job->s.base = blk + HUFF_BLOCK_HEADER;
            return TP_OK;
        case BLOCK_RLE:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
            job->s.base = blk + HUFF_BLOCK_HEADER;
            return TP_OK;
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
            job->s.base = blk + at + 12;
            const uint64_t start[4] = {0, s0, s0 + s1, s0 + s1 + s2};
            const uint64_t end[4] = {s0, s0 + s1, s0 + s1 + s2, payload};
            memcpy(job->s.start, start, sizeof start);
            memcpy(job->s.end, end, sizeof end);
            fill_table(lengths, table);
            job->multi = 8 * payload < (uint64_t)HUFF_MULTI_MAX_BITS * (uint64_t)len;
            return TP_OK;
        }
        default: return TP_ERR_CORRUPT;
    }
}

/* The block of a set-up job, decoded alone; its CRC-32 checked. */
static int block_run(huff_decode4_fn decode4, huff_decode4_fn decode4_multi, huff_crc32_fn crc32,
                     const uint16_t *table, const huff_job *job, int64_t len) {
    uint32_t crc = 0;
    uint8_t *out = job->s.out;
    switch (job->type) {
        case BLOCK_RAW:
            memcpy(out, job->s.base, (size_t)len);
            crc = crc32(0, out, (size_t)len);
            break;
        case BLOCK_RLE:
            memset(out, job->s.base[0], (size_t)len);
            crc = crc32(0, out, (size_t)len);
            break;
        default: {
            huff_decode4_fn loop = decode4_multi && job->multi ? decode4_multi : decode4;
            int status = loop(table, job->s.base, job->s.start, job->s.end, out, len, &crc);
            TP_RETURN_IF(status != TP_OK, status);
        }
    }
    TP_RETURN_IF(crc != job->expect, TP_ERR_CORRUPT);
    return TP_OK;
}

int huff_decode_block(huff_decode4_fn decode4, huff_decode4_fn decode4_multi,
                      huff_crc32_fn crc32, const uint8_t *blk, int64_t size, uint8_t *out,
                      int64_t len, int allow_range) {
    uint16_t table[HUFF_TABLE + 1]; /* + 1: multi_table_avx512 reads past */
    huff_job job;
    int status = block_setup(blk, size, out, len, allow_range, table, &job);
    TP_RETURN_IF(status != TP_OK, status);
    return block_run(decode4, decode4_multi, crc32, table, &job, len);
}

/* Every stream of a Huffman job holds the 8 bytes a pair reader starts from. */
static int pair_fits(const huff_job *job) {
    if (job->multi || (job->type != BLOCK_HUFF && job->type != BLOCK_HUFF_RANGE)) return 0;
    for (int k = 0; k < 4; k++)
        if (job->s.end[k] - job->s.start[k] < 8) return 0;
    return 1;
}

int huff_decode_block_pair(huff_decode4_fn decode4, huff_decode4_fn decode4_multi,
                           huff_decode4_pair_fn decode4_pair, huff_crc32_fn crc32,
                           const uint8_t *blk_a, int64_t size_a, uint8_t *out_a, int64_t len_a,
                           const uint8_t *blk_b, int64_t size_b, uint8_t *out_b, int64_t len_b,
                           int allow_range) {
    /* both tables in one array: the pair loop reaches B's at a constant offset from A's */
    uint16_t tables[2 * HUFF_PAIR_STRIDE];
    huff_job a, b;
    int status = block_setup(blk_a, size_a, out_a, len_a, allow_range, tables, &a);
    TP_RETURN_IF(status != TP_OK, status);
    if (!blk_b) return block_run(decode4, decode4_multi, crc32, tables, &a, len_a);
    status = block_setup(blk_b, size_b, out_b, len_b, allow_range, tables + HUFF_PAIR_STRIDE, &b);
    TP_RETURN_IF(status != TP_OK, status);
    if (!decode4_pair || len_a != len_b || !pair_fits(&a) || !pair_fits(&b)) {
        status = block_run(decode4, decode4_multi, crc32, tables, &a, len_a);
        TP_RETURN_IF(status != TP_OK, status);
        return block_run(decode4, decode4_multi, crc32, tables + HUFF_PAIR_STRIDE, &b, len_b);
    }
    status = decode4_pair(tables, &a.s, &b.s, len_a);
    TP_RETURN_IF(status != TP_OK, status);
    TP_RETURN_IF(crc32(0, out_a, (size_t)len_a) != a.expect, TP_ERR_CORRUPT);
    TP_RETURN_IF(crc32(0, out_b, (size_t)len_b) != b.expect, TP_ERR_CORRUPT);
    return TP_OK;
}

int tp_huffman_decode_isa(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count,
                          int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    const int hisa = huff_pick_isa(isa);
    const huff_block_pair_decoder decode_pair = TP_PICK(HUFF_DECODE_PAIR, hisa);
    tp_huffman_info info;
    int status = tp_huffman_parse(blob, size, &info);
    TP_RETURN_IF(status != TP_OK, status);
    TP_RETURN_IF(count != info.count || (count > 0 && !dst), TP_ERR_ARGUMENT);
    const int64_t bs = (int64_t)1 << info.block_log2, n_blocks = info.n_blocks;
    const int64_t n_pairs = (n_blocks + 1) / 2;
    const uint8_t *sizes = blob + 16 + 8 * info.ndim;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : status) if (threads > 1)
#endif
    {
        /* dynamic pairs of blocks, each thread's cursor into the block table only moving on */
        int64_t cursor = 0, offset = info.header_size;
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t g = 0; g < n_pairs; g++) {
            const int64_t b = 2 * g; /* blocks b and b + 1 (when there is one) */
            for (; cursor < b; cursor++) offset += tp_load32le(sizes + 4 * cursor);
            if (mine != TP_OK) continue; /* no break out of an OpenMP loop */
            const int64_t size_a = tp_load32le(sizes + 4 * b);
            const int64_t len_a = count - b * bs < bs ? count - b * bs : bs;
            if (b + 1 < n_blocks)
                mine = decode_pair(blob + offset, size_a, dst + b * bs, len_a, blob + offset + size_a,
                                   tp_load32le(sizes + 4 * (b + 1)), dst + (b + 1) * bs,
                                   count - (b + 1) * bs < bs ? count - (b + 1) * bs : bs, 0);
            else
                mine = decode_pair(blob + offset, size_a, dst + b * bs, len_a, NULL, 0, NULL, 0, 0);
        }
        if (mine < status) status = mine;
    }
    return status;
}

int tp_huffman_decode(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count) {
    return tp_huffman_decode_isa(blob, size, dst, count, tp_isa_current());
}
