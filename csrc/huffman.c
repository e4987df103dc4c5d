/*
 * huffman.c: the tensorpress Huffman stream: independent blocks, 4 interleaved bit streams per
 * block, table-driven decoding, checksums; blocks coded in parallel.
 *
 * Stream layout (all integers little-endian):
 *   "TPHF"  u8 version=1  u8 dtype  u8 ndim  u8 block_log2  u64 count  u64 shape[ndim]
 *   u32 block_size[n_blocks]          n_blocks = ceil(count / 2^block_log2)
 *   u32 xxh32(every byte above)       the header checksum
 *   blocks, back to back; their sizes add up to the rest of the stream exactly.
 * Block:
 *   u8 type  u32 xxh32(the block's decoded bytes)
 *   type 0 (raw):     the bytes
 *   type 1 (rle):     u8 symbol (the block is that symbol repeated)
 *   type 2 (huffman): 128 bytes of 4-bit code lengths (symbol 2i low nibble, 2i+1 high),
 *                     u32 size of streams 0, 1, 2 (stream 3 takes the rest), the 4 streams.
 * Stream k codes the block's symbols i with i % 4 == k, in order (interleaved, so the four
 * decoders write neighbouring bytes), LSB-first with bit-reversed canonical codes, zero-padded
 * to a byte; it must end exactly at its size, padding zero. docs/huffman.md is the full spec.
 *
 * Encoding runs in two phases so every block is written in place: (A) per block, four
 * quarter histograms (which give the exact size of each stream for the chosen lengths) and the
 * block type; (B) per block, at its offset from the prefix sum of the sizes, the encoding.
 */
#include "huffman_internal.h"

#define HUFF_MAGIC "TPHF"
#define HUFF_VERSION 1
#define HUFF_BLOCK_HEADER 5                                 /* type + checksum */
#define HUFF_LENGTHS_BYTES 128
#define HUFF_PAYLOAD_START (HUFF_BLOCK_HEADER + HUFF_LENGTHS_BYTES + 12)
#define HUFF_MAX_COUNT ((int64_t)1 << 50)

/* a * b for shape products, stuck at HUFF_MAX_COUNT + 1 once past the limit, but exactly 0 when
 * a dimension is 0 (a wrapped 64-bit product could otherwise pass for a small count). */
static uint64_t saturating_product(uint64_t a, uint64_t b) {
    const uint64_t over = (uint64_t)HUFF_MAX_COUNT + 1;
    if (a == 0 || b == 0) return 0;
    if (a >= over || b >= over || a > over / b) return over;
    return a * b;
}
/* Below this many symbols per thread a second thread costs more than it saves. */
#define HUFF_MIN_PER_THREAD ((int64_t)1 << 18)

enum { BLOCK_RAW = 0, BLOCK_RLE = 1, BLOCK_HUFF = 2 };

/* What phase A decided for one block (the encoder's workspace holds one per block). */
typedef struct {
    uint32_t stream_bytes[4];
    uint32_t size; /* bytes of the whole block in the stream */
    uint8_t type;
    uint8_t symbol;
    uint8_t lengths[256];
} huff_plan;

/* ---- the hot loops, one always-inline body compiled per instruction-set variant ---------- */

/* Symbol i of a block belongs to stream i % 4, so stream k holds (len + 3 - k) / 4 symbols and
 * one decoding round of all four streams fills 20 consecutive output bytes. */
TP_ALWAYS_INLINE int64_t stream_count(int64_t len, int k) { return (len + 3 - k) / 4; }

/* The four streams' histograms: four tables also hide the store-to-load latency of runs of
 * one symbol. */
TP_ALWAYS_INLINE void histogram4_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                      uint32_t (*TP_RESTRICT c)[256]) {
    int64_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w = tp_load32le(src + i);
        c[0][w & 255]++;
        c[1][(w >> 8) & 255]++;
        c[2][(w >> 16) & 255]++;
        c[3][w >> 24]++;
    }
    for (; i < len; i++) c[i & 3][src[i]]++;
}

/* Stream k: symbols src[k], src[k+4], ...; 5 codes (<= 55 bits) per 8-byte store. A round
 * advances p by at most 7 bytes, so how many rounds keep 8 writable bytes before `limit` is
 * computed once per batch; the last codes are written byte-wise. */
TP_ALWAYS_INLINE uint8_t *encode_stream_body(const uint8_t *TP_RESTRICT src, int64_t n,
                                             const uint16_t *TP_RESTRICT code,
                                             const uint8_t *TP_RESTRICT length, uint8_t *p,
                                             const uint8_t *limit) {
    uint64_t buf = 0;
    unsigned bits = 0;
    int64_t i = 0;
    for (;;) {
        int64_t rounds = (n - i) / 5, room = limit - p - 8;
        int64_t safe = room < 0 ? 0 : room / 7 + 1;
        if (safe < rounds) rounds = safe;
        if (rounds <= 0) break;
        const uint8_t *x = src + 4 * i;
        i += 5 * rounds;
        for (; rounds; rounds--, x += 20) {
            unsigned s0 = x[0], s1 = x[4], s2 = x[8], s3 = x[12], s4 = x[16];
            buf |= (uint64_t)code[s0] << bits;
            bits += length[s0];
            buf |= (uint64_t)code[s1] << bits;
            bits += length[s1];
            buf |= (uint64_t)code[s2] << bits;
            bits += length[s2];
            buf |= (uint64_t)code[s3] << bits;
            bits += length[s3];
            buf |= (uint64_t)code[s4] << bits;
            bits += length[s4];
            tp_store64le(p, buf);
            p += bits >> 3;
            buf >>= bits & ~7u;
            bits &= 7;
        }
    }
    tp_bitwriter w = {buf, bits, p};
    for (; i < n; i++) {
        uint8_t x = src[4 * i];
        tp_bw_put(&w, code[x], length[x]);
        tp_bw_flush_safe(&w);
    }
    tp_bw_finish(&w);
    return w.p;
}

/* Decoding table entries are `length | symbol << 8`: a shift by the whole entry shifts by the
 * length (x86 takes shift counts modulo 64, and the `& 63` below compiles to nothing), so
 * consuming a code needs no unpacking. */
#define TABLE_ENTRY(sym, len) ((uint16_t)((len) | ((sym) << 8)))

/* One round of one reader: `pos` is its bit position from `base`. A fresh 8-byte load gives
 * >= 57 bits; a marker bit at 56 (above the <= 55 bits five codes take) tells afterwards how
 * many bits were consumed: 56 - (63 - clz) = clz - 7. */
#define ROUND_BEGIN(buf, pos)                                                          \
    uint64_t buf = (tp_load64le(base + ((pos) >> 3)) >> ((pos) & 7));                  \
    buf = (buf & (((uint64_t)1 << 56) - 1)) | ((uint64_t)1 << 56)
#define DECODE_ONE(buf, o)                      \
    do {                                        \
        uint32_t e_ = table[(buf) & mask];      \
        (buf) >>= e_ & 63;                      \
        (o) = (uint8_t)(e_ >> 8);               \
    } while (0)
#define ROUND_END(buf, pos) (pos) += (uint64_t)__builtin_clzll(buf) - 7

/* Symbols [from, len) one at a time with byte-wise reads that stop at each stream's end; then
 * every stream must end exactly: only its last byte's zero padding may remain. */
TP_ALWAYS_INLINE int decode_tail(const uint16_t *table, const uint8_t *base, uint64_t *pos,
                                 const uint64_t *end_bit, uint8_t *out, int64_t from,
                                 int64_t len) {
    for (int64_t i = from; i < len; i++) {
        int k = (int)(i & 3);
        uint64_t at = pos[k];
        uint64_t byte = at >> 3, last = (end_bit[k] >> 3); /* first byte past the stream */
        uint32_t bits = 0;
        for (int j = 0; j < 3 && byte + (uint64_t)j < last; j++)
            bits |= (uint32_t)base[byte + (uint64_t)j] << (8 * j);
        uint16_t e = table[(bits >> (at & 7)) & (TP_HUFF_TABLE - 1)];
        unsigned l = e & 0xFF;
        if (at + l > end_bit[k]) return TP_ERR_CORRUPT; /* the code runs past the end */
        out[i] = (uint8_t)(e >> 8);
        pos[k] = at + l;
    }
    for (int k = 0; k < 4; k++) {
        uint64_t at = pos[k], stop = end_bit[k];
        if (stop - at >= 8 || (stop - at && (base[at >> 3] >> (at & 7)) != 0))
            return TP_ERR_CORRUPT;
    }
    return TP_OK;
}

/* Four streams, four independent readers: each round decodes 5 symbols from each (20 table
 * lookups without a branch). How many rounds are safe (every reader keeps 8 readable bytes
 * before its stream's end, every stream keeps 5 symbols) is computed once per batch. */
TP_ALWAYS_INLINE int decode4_body(const uint16_t *TP_RESTRICT table, const uint8_t *base,
                                  const uint64_t *start_byte, const uint64_t *end_byte,
                                  uint8_t *TP_RESTRICT out, int64_t len) {
    const uint64_t mask = TP_HUFF_TABLE - 1;
    uint64_t p0 = 8 * start_byte[0], p1 = 8 * start_byte[1], p2 = 8 * start_byte[2],
             p3 = 8 * start_byte[3];
    const int64_t full = len / 20; /* rounds that exist in every stream */
    int64_t done = 0;
    for (;;) {
        int64_t rounds = full - done;
        const uint64_t ps[4] = {p0, p1, p2, p3};
        for (int k = 0; k < 4; k++) {
            /* a round reads bytes [pos/8, pos/8 + 8) and advances pos by <= 55 bits */
            int64_t avail = (int64_t)end_byte[k] - (int64_t)(ps[k] >> 3) - 8;
            int64_t safe = avail < 0 ? 0 : avail / 7 + 1;
            if (safe < rounds) rounds = safe;
        }
        if (rounds <= 0) break;
        uint8_t *o = out + 20 * done;
        done += rounds;
        for (int64_t t = 0; t < rounds; t++, o += 20) {
            ROUND_BEGIN(b0, p0);
            ROUND_BEGIN(b1, p1);
            ROUND_BEGIN(b2, p2);
            ROUND_BEGIN(b3, p3);
            for (int j = 0; j < 5; j++) {
                DECODE_ONE(b0, o[4 * j]);
                DECODE_ONE(b1, o[4 * j + 1]);
                DECODE_ONE(b2, o[4 * j + 2]);
                DECODE_ONE(b3, o[4 * j + 3]);
            }
            ROUND_END(b0, p0);
            ROUND_END(b1, p1);
            ROUND_END(b2, p2);
            ROUND_END(b3, p3);
        }
    }
    uint64_t pos[4] = {p0, p1, p2, p3};
    uint64_t end_bit[4] = {8 * end_byte[0], 8 * end_byte[1], 8 * end_byte[2], 8 * end_byte[3]};
    return decode_tail(table, base, pos, end_bit, out, 20 * done, len);
}

/* The coders stay scalar in every variant: GCC's SLP vectorizer would otherwise gather the 20
 * decoded bytes of a round into a vector (pinsrb chains, spills), which is much slower. */
#define DEFINE_HUFF_VARIANT(NAME, ATTRS)                                                    \
    ATTRS static void histogram4_##NAME(const uint8_t *src, int64_t len, uint32_t (*c)[256]) { \
        histogram4_body(src, len, c);                                                       \
    }                                                                                       \
    ATTRS TP_NO_VECTORIZE static uint8_t *encode_stream_##NAME(const uint8_t *src, int64_t n,               \
                                               const uint16_t *code, const uint8_t *length, \
                                               uint8_t *p, const uint8_t *limit) {          \
        return encode_stream_body(src, n, code, length, p, limit);                          \
    }                                                                                       \
    ATTRS TP_NO_VECTORIZE static int decode4_##NAME(const uint16_t *table, const uint8_t *base,             \
                                    const uint64_t *start, const uint64_t *end,             \
                                    uint8_t *out, int64_t len) {                            \
        return decode4_body(table, base, start, end, out, len);                             \
    }

DEFINE_HUFF_VARIANT(scalar, TP_NO_VECTORIZE)
DEFINE_HUFF_VARIANT(baseline, )
#if TP_HAVE_X86_VARIANTS
/* BMI2's shrx/shlx shift by any register (no %cl shuffling). Every
 * AVX2 CPU has them, but cpu.c only checks AVX2+FMA, so they are checked here too. */
#define TP_TARGET_AVX2_BMI2 __attribute__((target("avx2,fma,bmi,bmi2")))
DEFINE_HUFF_VARIANT(avx2, TP_TARGET_AVX2_BMI2)

static int huff_variant(int isa) {
    if (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")) return TP_ISA_AVX2;
        return TP_ISA_BASELINE;
    }
    return isa;
}
#else
static int huff_variant(int isa) { return isa == TP_ISA_SCALAR ? isa : TP_ISA_BASELINE; }
#endif

static void histogram4(int isa, const uint8_t *src, int64_t len, uint32_t (*c)[256]) {
    switch (isa) {
        case TP_ISA_SCALAR: histogram4_scalar(src, len, c); return;
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: histogram4_avx2(src, len, c); return;
#endif
        default: histogram4_baseline(src, len, c); return;
    }
}

static uint8_t *encode_stream(int isa, const uint8_t *src, int64_t n, const uint16_t *code,
                              const uint8_t *length, uint8_t *p, const uint8_t *limit) {
    switch (isa) {
        case TP_ISA_SCALAR: return encode_stream_scalar(src, n, code, length, p, limit);
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: return encode_stream_avx2(src, n, code, length, p, limit);
#endif
        default: return encode_stream_baseline(src, n, code, length, p, limit);
    }
}

static int decode4(int isa, const uint16_t *table, const uint8_t *base, const uint64_t *start,
                   const uint64_t *end, uint8_t *out, int64_t len) {
    switch (isa) {
        case TP_ISA_SCALAR: return decode4_scalar(table, base, start, end, out, len);
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: return decode4_avx2(table, base, start, end, out, len);
#endif
        default: return decode4_baseline(table, base, start, end, out, len);
    }
}

/* ---- blocks ------------------------------------------------------------------------------ */

/* Phase A: choose the block's type and, for Huffman, its lengths and exact stream sizes. */
static void plan_block(int isa, const uint8_t *src, int64_t len, huff_plan *plan) {
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    histogram4(isa, src, len, c);
    uint64_t total[256];
    int used = 0, last = 0;
    for (int s = 0; s < 256; s++) {
        total[s] = (uint64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        if (total[s]) used++, last = s;
    }
    memset(plan->stream_bytes, 0, sizeof plan->stream_bytes);
    plan->symbol = 0;
    if (used == 1) {
        plan->type = BLOCK_RLE;
        plan->symbol = (uint8_t)last;
        plan->size = HUFF_BLOCK_HEADER + 1;
        return;
    }
    plan->type = BLOCK_RAW;
    plan->size = (uint32_t)(HUFF_BLOCK_HEADER + len);
    if (used == 0) return;
    tp_huff_lengths(total, 256, TP_HUFF_BITS, plan->lengths); /* 256 <= 2^11 symbols: never fails */
    uint64_t bytes = HUFF_PAYLOAD_START;
    for (int k = 0; k < 4; k++) {
        uint64_t bits = 0;
        for (int s = 0; s < 256; s++) bits += (uint64_t)c[k][s] * plan->lengths[s];
        plan->stream_bytes[k] = (uint32_t)((bits + 7) / 8);
        bytes += plan->stream_bytes[k];
    }
    if (bytes < plan->size) {
        plan->type = BLOCK_HUFF;
        plan->size = (uint32_t)bytes;
    }
}

/* Phase B: write the block (exactly plan->size bytes at dst; nothing written past them). */
static int write_block(int isa, const uint8_t *src, int64_t len, const huff_plan *plan,
                       uint8_t *dst) {
    dst[0] = plan->type;
    tp_store32le(dst + 1, tp_xxh32(src, (size_t)len, 0));
    if (plan->type == BLOCK_RAW) {
        memcpy(dst + HUFF_BLOCK_HEADER, src, (size_t)len);
        return TP_OK;
    }
    if (plan->type == BLOCK_RLE) {
        dst[HUFF_BLOCK_HEADER] = plan->symbol;
        return TP_OK;
    }
    uint8_t *p = dst + HUFF_BLOCK_HEADER;
    for (int i = 0; i < HUFF_LENGTHS_BYTES; i++)
        p[i] = (uint8_t)(plan->lengths[2 * i] | (plan->lengths[2 * i + 1] << 4));
    p += HUFF_LENGTHS_BYTES;
    for (int k = 0; k < 3; k++) tp_store32le(p + 4 * k, plan->stream_bytes[k]);
    p += 12;
    uint16_t codes[256];
    tp_huff_codes(plan->lengths, codes);
    const uint8_t *limit = dst + plan->size;
    for (int k = 0; k < 4; k++) {
        uint8_t *end = encode_stream(isa, src + k, stream_count(len, k), codes, plan->lengths, p,
                                     limit);
        /* the sizes were computed from the same counts: a mismatch is a bug, never silent */
        if (end != p + plan->stream_bytes[k]) return TP_ERR_ARGUMENT;
        p = end;
    }
    return TP_OK;
}

static int decode_block(int isa, const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                        uint16_t *table) {
    TP_RETURN_IF(size < HUFF_BLOCK_HEADER, TP_ERR_CORRUPT);
    uint32_t expect = tp_load32le(blk + 1);
    switch (blk[0]) {
        case BLOCK_RAW:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + len, TP_ERR_CORRUPT);
            memcpy(out, blk + HUFF_BLOCK_HEADER, (size_t)len);
            break;
        case BLOCK_RLE:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
            memset(out, blk[HUFF_BLOCK_HEADER], (size_t)len);
            break;
        case BLOCK_HUFF: {
            TP_RETURN_IF(size < HUFF_PAYLOAD_START, TP_ERR_CORRUPT);
            uint8_t lengths[256];
            const uint8_t *p = blk + HUFF_BLOCK_HEADER;
            for (int i = 0; i < HUFF_LENGTHS_BYTES; i++) {
                lengths[2 * i] = p[i] & 15;
                lengths[2 * i + 1] = p[i] >> 4;
            }
            /* A complete code (Kraft's sum exactly 1) fills every table entry. */
            TP_RETURN_IF(tp_huff_kraft(lengths) != TP_HUFF_TABLE, TP_ERR_CORRUPT);
            p += HUFF_LENGTHS_BYTES;
            uint64_t payload = (uint64_t)(size - HUFF_PAYLOAD_START);
            uint64_t s0 = tp_load32le(p), s1 = tp_load32le(p + 4), s2 = tp_load32le(p + 8);
            TP_RETURN_IF(s0 + s1 + s2 > payload, TP_ERR_CORRUPT);
            const uint8_t *base = blk + HUFF_PAYLOAD_START;
            const uint64_t start[4] = {0, s0, s0 + s1, s0 + s1 + s2};
            const uint64_t end[4] = {s0, s0 + s1, s0 + s1 + s2, payload};
            uint16_t codes[256];
            tp_huff_codes(lengths, codes);
            for (int s = 0; s < 256; s++) {
                int l = lengths[s];
                if (!l) continue;
                uint16_t entry = TABLE_ENTRY(s, l);
                for (int i = codes[s]; i < TP_HUFF_TABLE; i += 1 << l) table[i] = entry;
            }
            int status = decode4(isa, table, base, start, end, out, len);
            TP_RETURN_IF(status != TP_OK, status);
            break;
        }
        default: return TP_ERR_CORRUPT;
    }
    TP_RETURN_IF(tp_xxh32(out, (size_t)len, 0) != expect, TP_ERR_CORRUPT);
    return TP_OK;
}

/* ---- the stream ------------------------------------------------------------------------ */

static int64_t header_size(int64_t count, int32_t ndim, int32_t block_log2) {
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return 16 + 8 * (int64_t)ndim + 4 * n_blocks + 4;
}

int64_t tp_huffman_bound(int64_t count, int32_t ndim, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || ndim < 0 || ndim > TP_HUFFMAN_MAX_NDIM ||
        block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 || block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return header_size(count, ndim, block_log2) + HUFF_BLOCK_HEADER * n_blocks + count;
}

int64_t tp_huffman_workspace_size(int64_t count, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 ||
        block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return n_blocks * (int64_t)sizeof(huff_plan);
}

int tp_huffman_encode_isa(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                          const int64_t *shape, int32_t block_log2, uint8_t *dst,
                          int64_t dst_capacity, void *workspace, int64_t workspace_size,
                          int64_t *written, int isa) {
    TP_RETURN_IF(!written, TP_ERR_ARGUMENT);
    *written = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    isa = huff_variant(isa);
    TP_RETURN_IF(dtype < TP_HUFFMAN_UINT8 || dtype > TP_HUFFMAN_BYTES, TP_ERR_ARGUMENT);
    int64_t bound = tp_huffman_bound(count, ndim, block_log2);
    TP_RETURN_IF(bound < 0 || (ndim > 0 && !shape) || (count > 0 && !src) || !dst, TP_ERR_ARGUMENT);
    TP_RETURN_IF(dst_capacity < bound, TP_ERR_BUFFER);
    TP_RETURN_IF(workspace_size < tp_huffman_workspace_size(count, block_log2), TP_ERR_BUFFER);
    TP_RETURN_IF(count > 0 && (!workspace || ((uintptr_t)workspace & 7)), TP_ERR_ARGUMENT);
    uint64_t product = 1;
    for (int d = 0; d < ndim; d++) {
        TP_RETURN_IF(shape[d] < 0 || shape[d] > HUFF_MAX_COUNT, TP_ERR_ARGUMENT);
        product = saturating_product(product, (uint64_t)shape[d]);
    }
    TP_RETURN_IF(product != (uint64_t)count, TP_ERR_ARGUMENT);

    const int64_t bs = (int64_t)1 << block_log2;
    const int64_t n_blocks = (count + bs - 1) >> block_log2;
    const int64_t hsize = header_size(count, ndim, block_log2);
    memcpy(dst, HUFF_MAGIC, 4);
    dst[4] = HUFF_VERSION;
    dst[5] = (uint8_t)dtype;
    dst[6] = (uint8_t)ndim;
    dst[7] = (uint8_t)block_log2;
    tp_store64le(dst + 8, (uint64_t)count);
    for (int d = 0; d < ndim; d++) tp_store64le(dst + 16 + 8 * d, (uint64_t)shape[d]);
    uint8_t *sizes = dst + 16 + 8 * ndim;
    huff_plan *plans = (huff_plan *)workspace;

    int status = TP_OK;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    if (threads <= 1) {
        /* One thread: plan and write each block while it is still in cache. */
        int64_t offset = hsize;
        for (int64_t b = 0; b < n_blocks && status == TP_OK; b++) {
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            plan_block(isa, src + b * bs, len, &plans[b]);
            status = write_block(isa, src + b * bs, len, &plans[b], dst + offset);
            offset += plans[b].size;
        }
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : status)
        {
            /* Blocks are handed out one at a time (dynamic): on a busy machine a thread that
             * gets less CPU simply takes fewer blocks. Each thread walks a cursor forward
             * (it receives blocks in increasing order) to know where its next block starts. */
#pragma omp for schedule(dynamic, 1)
            for (int64_t b = 0; b < n_blocks; b++) {
                int64_t len = count - b * bs < bs ? count - b * bs : bs;
                plan_block(isa, src + b * bs, len, &plans[b]);
            }
            /* (the implicit barrier of the loop above: every size is known) */
            int64_t cursor = 0, offset = hsize;
#pragma omp for schedule(dynamic, 1)
            for (int64_t b = 0; b < n_blocks; b++) {
                for (; cursor < b; cursor++) offset += plans[cursor].size;
                int64_t len = count - b * bs < bs ? count - b * bs : bs;
                int s = write_block(isa, src + b * bs, len, &plans[b], dst + offset);
                if (s < status) status = s;
            }
        }
#endif
    }
    TP_RETURN_IF(status != TP_OK, status);
    int64_t total = hsize;
    for (int64_t b = 0; b < n_blocks; b++) {
        tp_store32le(sizes + 4 * b, plans[b].size);
        total += plans[b].size;
    }
    tp_store32le(dst + hsize - 4, tp_xxh32(dst, (size_t)(hsize - 4), 0));
    *written = total;
    return TP_OK;
}

int tp_huffman_encode(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                      const int64_t *shape, int32_t block_log2, uint8_t *dst,
                      int64_t dst_capacity, void *workspace, int64_t workspace_size,
                      int64_t *written) {
    return tp_huffman_encode_isa(src, count, dtype, ndim, shape, block_log2, dst, dst_capacity,
                                 workspace, workspace_size, written, tp_isa_current());
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
    uint64_t product = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = tp_load64le(blob + 16 + 8 * d);
        TP_RETURN_IF(dim > (uint64_t)HUFF_MAX_COUNT, TP_ERR_CORRUPT);
        product = saturating_product(product, dim);
        info->shape[d] = (int64_t)dim;
    }
    TP_RETURN_IF(product != count, TP_ERR_CORRUPT);
    int64_t hsize = header_size((int64_t)count, ndim, block_log2);
    TP_RETURN_IF(hsize > size, TP_ERR_CORRUPT);
    TP_RETURN_IF(tp_xxh32(blob, (size_t)(hsize - 4), 0) != tp_load32le(blob + hsize - 4),
                 TP_ERR_CORRUPT);
    int64_t n_blocks = (int64_t)((count + ((uint64_t)1 << block_log2) - 1) >> block_log2);
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

int tp_huffman_decode_isa(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count,
                          int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    isa = huff_variant(isa);
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
        /* dynamic blocks and a forward cursor, as in the encoder */
        int64_t cursor = 0, offset = info.header_size;
        uint16_t table[TP_HUFF_TABLE];
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t b = 0; b < n_blocks; b++) {
            for (; cursor < b; cursor++) offset += tp_load32le(sizes + 4 * cursor);
            if (mine != TP_OK) continue; /* no break out of an OpenMP loop */
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            mine = decode_block(isa, blob + offset, tp_load32le(sizes + 4 * b), dst + b * bs,
                                len, table);
        }
        if (mine < status) status = mine;
    }
    return status;
}

int tp_huffman_decode(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count) {
    return tp_huffman_decode_isa(blob, size, dst, count, tp_isa_current());
}

int tp_huffman_histogram(const uint8_t *src, int64_t count, int64_t *counts) {
    TP_RETURN_IF(!counts || count < 0 || (count > 0 && !src), TP_ERR_ARGUMENT);
    memset(counts, 0, 256 * sizeof(int64_t));
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
    const int isa = huff_variant(tp_isa_current());
    const int64_t chunk = (int64_t)1 << 16; /* fits the 32-bit per-quarter counters */
    int64_t n_chunks = (count + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        int64_t local[256] = {0};
        uint32_t c[4][256];
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t k = 0; k < n_chunks; k++) {
            int64_t len = count - k * chunk < chunk ? count - k * chunk : chunk;
            memset(c, 0, sizeof c);
            histogram4(isa, src + k * chunk, len, c);
            for (int s = 0; s < 256; s++) local[s] += (int64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        }
#ifdef _OPENMP
#pragma omp critical(tp_huffman_histogram)
#endif
        for (int s = 0; s < 256; s++) counts[s] += local[s];
    }
    return TP_OK;
}
