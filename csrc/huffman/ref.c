/*
 * ref.c: the scalar references of the Huffman family (csrc/README.md): the TP_ISA_SCALAR slots
 * of its dispatch tables, written from the format's description (docs/huffman.md) for
 * clarity: one byte, one symbol, one bit at a time, no tables beyond the code itself, no
 * tricks. Every other variant must give their bytes and their verdicts on damaged streams.
 */
#include "huffman_internal.h"

/* ---- CRC-32 (zlib's): the reflected polynomial, one bit at a time ------------------------- */
uint32_t huffman_crc32_ref(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int bit = 0; bit < 8; bit++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

/* ---- code lengths: the rule of code_lengths.c, step by step -------------------------------- */

/* Sum of bl[l] * 2^(max_bits - l) minus 2^max_bits: Kraft's excess in units of 2^-max_bits. */
static int64_t kraft_excess(const int64_t *bl, int max_bits) {
    int64_t over = -((int64_t)1 << max_bits);
    for (int l = 1; l <= max_bits; l++) over += bl[l] << (max_bits - l);
    return over;
}

int huffman_code_lengths_ref(const uint64_t *counts, int n, int max_bits, uint8_t *lengths) {
    /* 1. The used symbols sorted by (count, symbol): insertion sort, symbols in order. */
    int symbol[256], used = 0;
    uint64_t weight[511]; /* nodes: leaves 0 .. used-1 (sorted), then internal nodes */
    for (int s = 0; s < n; s++) {
        lengths[s] = 0;
        if (counts[s] == 0) continue;
        int i = used++;
        while (i > 0 && weight[i - 1] > counts[s]) {
            weight[i] = weight[i - 1];
            symbol[i] = symbol[i - 1];
            i--;
        }
        weight[i] = counts[s];
        symbol[i] = s;
    }
    if (used == 0) return TP_OK;
    if (used == 1) {
        lengths[symbol[0]] = 1;
        return TP_OK;
    }
    if (max_bits < 32 && (uint64_t)used > ((uint64_t)1 << max_bits)) return TP_ERR_ARGUMENT;

    /* 2. Huffman's two-queue merge: take the lighter head of the leaves and of the internal
     * nodes (in the order they were made), the leaf on a tie, twice; their parent is the next
     * internal node. */
    int parent[511], next_leaf = 0, next_inner = used, nodes = used;
    for (int k = 0; k < used - 1; k++) {
        int pick[2];
        for (int t = 0; t < 2; t++) {
            int leaf_left = next_leaf < used, inner_left = next_inner < nodes;
            if (leaf_left && (!inner_left || weight[next_leaf] <= weight[next_inner]))
                pick[t] = next_leaf++;
            else
                pick[t] = next_inner++;
        }
        weight[nodes] = weight[pick[0]] + weight[pick[1]];
        parent[pick[0]] = parent[pick[1]] = nodes;
        nodes++;
    }
    /* Depths from the root (the last node); a parent always comes after its children. */
    int depth[511];
    depth[nodes - 1] = 0;
    for (int v = nodes - 2; v >= 0; v--) depth[v] = depth[parent[v]] + 1;

    /* 3. How many codes of each length, lengths beyond max_bits cut to max_bits. */
    int64_t bl[33] = {0};
    for (int i = 0; i < used; i++) bl[depth[i] < max_bits ? depth[i] : max_bits]++;

    /* 4. While Kraft's sum exceeds 1: lengthen by one bit a code of the length l whose step
     * (2^(max_bits - l - 1)) does not overshoot and whose cost, the count of its least frequent
     * symbol times 2^l, is smallest (the longest such length on a tie); if every step
     * overshoots, a code of the longest length below max_bits. Lengths go to symbols by
     * frequency (step 6), so the least frequent symbol of length l is the first one after all
     * the longer codes in the sorted order. */
    int64_t over = kraft_excess(bl, max_bits);
    while (over > 0) {
        int best = 0;
        double best_cost = 0.0;
        for (int l = max_bits - 1; l >= 1; l--) {
            if (bl[l] == 0 || ((int64_t)1 << (max_bits - l - 1)) > over) continue;
            int64_t least_frequent = 0;
            for (int longer = l + 1; longer <= max_bits; longer++) least_frequent += bl[longer];
            double cost = (double)weight[least_frequent] * (double)((uint64_t)1 << l);
            if (best == 0 || cost < best_cost) best = l, best_cost = cost;
        }
        if (best == 0) {
            best = max_bits - 1;
            while (bl[best] == 0) best--;
        }
        bl[best]--;
        bl[best + 1]++;
        over = kraft_excess(bl, max_bits);
    }
    /* 5. While it falls short of 1: shorten a code of the longest length whose step fits. */
    while (over < 0) {
        int l = max_bits;
        while (bl[l] == 0 || ((int64_t)1 << (max_bits - l)) > -over) l--;
        bl[l]--;
        bl[l - 1]++;
        over = kraft_excess(bl, max_bits);
    }
    /* 6. The shortest codes to the most frequent symbols. */
    int i = used - 1;
    for (int l = 1; l <= max_bits; l++)
        for (int64_t k = 0; k < bl[l]; k++) lengths[symbol[i--]] = (uint8_t)l;
    return TP_OK;
}

/* ---- blocks --------------------------------------------------------------------------------- */

void huffman_count_ref(const uint8_t *src, int64_t len, uint32_t (*c)[256]) {
    for (int64_t i = 0; i < len; i++) c[i % 4][src[i]]++;
}

void huffman_plan_block_ref(const uint8_t *src, int64_t len, huff_plan *plan) {
    uint32_t c[4][256] = {{0}};
    huffman_count_ref(src, len, c);
    plan->checksum = huffman_crc32_ref(0, src, (size_t)len);
    huff_plan_from_counts((const uint32_t(*)[256])c, len, huffman_code_lengths_ref, plan);
}

/* Canonical codes as the format defines them (deflate's rule), most significant bit first:
 * codes of each length are consecutive, shorter codes first, by symbol within a length. */
static void canonical_codes_ref(const uint8_t *lengths, uint32_t *codes) {
    uint32_t count[HUFF_BITS + 1] = {0}, next[HUFF_BITS + 1] = {0};
    for (int s = 0; s < 256; s++)
        if (lengths[s]) count[lengths[s]]++;
    uint32_t code = 0;
    for (int l = 1; l <= HUFF_BITS; l++) {
        code = (code + count[l - 1]) << 1;
        next[l] = code;
    }
    for (int s = 0; s < 256; s++) codes[s] = lengths[s] ? next[lengths[s]]++ : 0;
}

/* Bit `pos` of a stream is bit pos % 8 of its byte pos / 8 (the first code in the low bits). */
static int get_bit(const uint8_t *stream, uint64_t pos) { return (stream[pos / 8] >> (pos % 8)) & 1; }

int huffman_write_block_ref(const uint8_t *src, int64_t len, const huff_plan *plan,
                            uint8_t *dst) {
    dst[0] = plan->type;
    tp_store32le(dst + 1, plan->checksum);
    if (plan->type == BLOCK_RAW) {
        memcpy(dst + HUFF_BLOCK_HEADER, src, (size_t)len);
        return TP_OK;
    }
    if (plan->type == BLOCK_RLE) {
        dst[HUFF_BLOCK_HEADER] = plan->symbol;
        return TP_OK;
    }
    const int table = huff_write_table(dst + HUFF_BLOCK_HEADER, plan->type, plan->lengths);
    for (int k = 0; k < 3; k++)
        tp_store32le(dst + HUFF_BLOCK_HEADER + table + 4 * k, plan->stream_bytes[k]);
    uint32_t codes[256];
    canonical_codes_ref(plan->lengths, codes);
    /* Stream k: the symbols i with i % 4 == k, each code's bits from its first (most
     * significant) on, zero-padded to its exact size. */
    uint8_t *stream = dst + HUFF_BLOCK_HEADER + table + 12;
    for (int k = 0; k < 4; k++) {
        uint64_t size_bits = 8 * (uint64_t)plan->stream_bytes[k], pos = 0;
        memset(stream, 0, plan->stream_bytes[k]);
        for (int64_t i = k; i < len; i += 4) {
            int l = plan->lengths[src[i]];
            if (l == 0) return TP_ERR_ARGUMENT; /* a symbol without a code: a bug */
            for (int b = l - 1; b >= 0; b--, pos++) {
                if (pos >= size_bits) return TP_ERR_ARGUMENT;
                stream[pos / 8] |= (uint8_t)(((codes[src[i]] >> b) & 1) << (pos % 8));
            }
        }
        if ((pos + 7) / 8 != plan->stream_bytes[k]) return TP_ERR_ARGUMENT;
        stream += plan->stream_bytes[k];
    }
    return TP_OK;
}

/* One symbol of a canonical code, a bit at a time (as zlib's puff): among the codes of length
 * l, which are consecutive from `first`, the one read so far; -1 when the stream ends first. */
static int read_symbol(const uint8_t *stream, uint64_t *pos, uint64_t end,
                       const uint32_t *count, const uint8_t *sorted) {
    uint32_t code = 0, first = 0, index = 0;
    for (int l = 1; l <= HUFF_BITS; l++) {
        if (*pos >= end) return -1;
        code |= (uint32_t)get_bit(stream, (*pos)++);
        if (code - first < count[l]) return sorted[index + code - first];
        index += count[l];
        first = (first + count[l]) << 1;
        code <<= 1;
    }
    return -1; /* not reached with a complete code */
}

static int decode_huffman_ref(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                              int allow_range) {
    uint8_t lengths[256];
    int64_t at;
    if (huff_read_table(blk, size, allow_range, lengths, &at) != TP_OK) return TP_ERR_CORRUPT;
    /* The lengths must make a complete code of at most HUFF_BITS bits: Kraft's sum 1. */
    uint32_t count[HUFF_BITS + 1] = {0};
    int64_t kraft = 0;
    for (int s = 0; s < 256; s++) {
        if (lengths[s] > HUFF_BITS) return TP_ERR_CORRUPT;
        if (lengths[s]) count[lengths[s]]++, kraft += (int64_t)1 << (HUFF_BITS - lengths[s]);
    }
    if (kraft != HUFF_TABLE) return TP_ERR_CORRUPT;
    uint8_t sorted[256]; /* the symbols by (length, symbol): canonical order */
    int n_sorted = 0;
    for (int l = 1; l <= HUFF_BITS; l++)
        for (int s = 0; s < 256; s++)
            if (lengths[s] == l) sorted[n_sorted++] = (uint8_t)s;
    /* The streams: sizes of 0, 1, 2 stored, stream 3 takes the rest of the block. */
    const uint8_t *sizes = blk + at;
    uint64_t stream_size[4], payload = (uint64_t)(size - at - 12), stored = 0;
    for (int k = 0; k < 3; k++) stored += stream_size[k] = tp_load32le(sizes + 4 * k);
    if (stored > payload) return TP_ERR_CORRUPT;
    stream_size[3] = payload - stored;
    const uint8_t *stream[4];
    uint64_t pos[4] = {0};
    stream[0] = blk + at + 12;
    for (int k = 1; k < 4; k++) stream[k] = stream[k - 1] + stream_size[k - 1];
    for (int64_t i = 0; i < len; i++) {
        int k = (int)(i % 4);
        int s = read_symbol(stream[k], &pos[k], 8 * stream_size[k], count, sorted);
        if (s < 0) return TP_ERR_CORRUPT; /* a code runs past its stream's end */
        out[i] = (uint8_t)s;
    }
    /* Each stream ends exactly: fewer than 8 bits left, all zero. */
    for (int k = 0; k < 4; k++) {
        if (8 * stream_size[k] - pos[k] >= 8) return TP_ERR_CORRUPT;
        for (uint64_t p = pos[k]; p < 8 * stream_size[k]; p++)
            if (get_bit(stream[k], p)) return TP_ERR_CORRUPT;
    }
    return TP_OK;
}

int huffman_decode_block_ref(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                             int allow_range) {
    if (size < HUFF_BLOCK_HEADER) return TP_ERR_CORRUPT;
    int status = TP_OK;
    switch (blk[0]) {
        case BLOCK_RAW: /* the bytes (at least two: one is a single-symbol block) */
            if (size != HUFF_BLOCK_HEADER + len || len < 2) return TP_ERR_CORRUPT;
            memcpy(out, blk + HUFF_BLOCK_HEADER, (size_t)len);
            break;
        case BLOCK_RLE: /* one symbol, repeated */
            if (size != HUFF_BLOCK_HEADER + 1) return TP_ERR_CORRUPT;
            memset(out, blk[HUFF_BLOCK_HEADER], (size_t)len);
            break;
        case BLOCK_HUFF:
        case BLOCK_HUFF_RANGE: status = decode_huffman_ref(blk, size, out, len, allow_range); break;
        default: return TP_ERR_CORRUPT;
    }
    if (status != TP_OK) return status;
    return huffman_crc32_ref(0, out, (size_t)len) == tp_load32le(blk + 1) ? TP_OK : TP_ERR_CORRUPT;
}
