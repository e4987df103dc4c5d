/*
 * huffman_internal.h: what the files of the Huffman family share (never seen by cffi).
 *
 *   format.c        the stream's header: layout, bounds, writing and parsing it
 *   code_lengths.c  length-limited Huffman code lengths, canonical codes, Kraft's sum
 *   crc.c           CRC-32 with slicing-by-8 tables (crc_table.h), and its dispatch table
 *   encode.c        the encoder: per-block planning and writing, threads, the histogram entry
 *   decode.c        the decoder: per-block decoding (two blocks at a time), threads
 *   loops.h         the portable hot loops (always-inline bodies) of the block coders
 *   variants.c      the per-ISA wrappers around those loops and the dispatch tables
 *   x86_encode.c, x86_decode.c, x86_crc.c   the x86-64 assembly / intrinsics loops
 *   ref.c           the scalar references: plain CRC, code lengths, block encoder and decoder
 * docs/huffman.md specifies the stream byte for byte.
 */
#ifndef TP_HUFFMAN_INTERNAL_H
#define TP_HUFFMAN_INTERNAL_H

#include <string.h>
#include "bitstream.h"
#include "common.h"

/* ---- the stream format (docs/huffman.md) -------------------------------------------------- */
#define HUFF_MAGIC "TPHF"
#define HUFF_VERSION 2
#define HUFF_BITS TP_HUFFMAN_MAX_BITS   /* longest code */
#define HUFF_TABLE (1 << HUFF_BITS)     /* entries of a decoding table */
#define HUFF_BLOCK_HEADER 5             /* type + CRC-32 of the decoded bytes */
#define HUFF_LENGTHS_BYTES 128          /* 256 four-bit code lengths */
#define HUFF_PAYLOAD_START (HUFF_BLOCK_HEADER + HUFF_LENGTHS_BYTES + 12) /* + 3 stream sizes */
#define HUFF_MAX_COUNT ((int64_t)1 << 50)

/* Block types. BLOCK_HUFF_RANGE (the float codec's streams only; docs/float_codec.md section
 * 5) is BLOCK_HUFF with the lengths of a range of symbols only: u8 first, u8 count - 1, then
 * ceil(count / 2) bytes of 4-bit lengths (symbol first + 2i low nibble, an odd count's last high
 * nibble 0). The exponent plane of a chunk uses a few dozen symbols, so its table takes ~20
 * bytes instead of 128. */
enum { BLOCK_RAW = 0, BLOCK_RLE = 1, BLOCK_HUFF = 2, BLOCK_HUFF_RANGE = 3 };

/* Bytes before the first block (format.c). */
int64_t huff_header_size(int64_t count, int32_t ndim, int32_t block_log2);
/* Blocks of a stream of `count` symbols. */
int64_t huff_block_count(int64_t count, int32_t block_log2);
/* The header, with its block-size table left for the caller and no checksum yet. */
void huff_write_header(uint8_t *dst, int64_t count, int32_t dtype, int32_t ndim,
                       const int64_t *shape, int32_t block_log2);
/* 1 when the shape's product is count (every dimension <= HUFF_MAX_COUNT, no wrap-around). */
int huff_shape_matches(const int64_t *shape, int32_t ndim, uint64_t count);

/* What an encoder decided for one block (phase A), then wrote from (phase B); the encoder's
 * workspace holds one per block. */
typedef struct {
    uint32_t stream_bytes[4];
    uint32_t size;     /* bytes of the whole block in the stream */
    uint32_t checksum; /* CRC-32 of the block's bytes */
    uint32_t huffman_size; /* a BLOCK_HUFF block's size, whatever the type; 0: no code */
    uint8_t type;
    uint8_t symbol;
    uint8_t lengths[256];
    /* Threads only: where the block starts in the stream, valid once `ready` is set (by the
     * thread that planned the previous block; see tp_huffman_encode_isa). */
    int64_t offset;
    volatile int ready;
} huff_plan;

/* ---- the code-length table of a Huffman block (table.c) ------------------------------------
 * Bytes of the table a BLOCK_HUFF_RANGE block needs for these lengths (at least two used). */
int huff_range_table_bytes(const uint8_t *lengths);
/* The table of a Huffman block of `type` (BLOCK_HUFF or BLOCK_HUFF_RANGE) at dst; returns its
 * bytes. */
int huff_write_table(uint8_t *dst, int type, const uint8_t *lengths);
/* The lengths of the Huffman block blk (size bytes, type BLOCK_HUFF, or BLOCK_HUFF_RANGE when
 * allow_range) and the offset of its three stream sizes; TP_ERR_CORRUPT when the table does
 * not fit the block or a range runs past symbol 255 or pads with a nonzero nibble. */
int huff_read_table(const uint8_t *blk, int64_t size, int allow_range, uint8_t *lengths,
                    int64_t *sizes_at);

/* ---- code lengths (code_lengths.c) --------------------------------------------------------- */
/* Lengths limited to max_bits for n <= 256 counts: TP_OK, or TP_ERR_ARGUMENT when more than
 * 2^max_bits symbols are used. huffman_code_lengths_ref (ref.c) is the same rule, plainly. */
typedef int (*huff_lengths_fn)(const uint64_t *counts, int n, int max_bits, uint8_t *lengths);
int huff_code_lengths_fast(const uint64_t *counts, int n, int max_bits, uint8_t *lengths);
int huffman_code_lengths_ref(const uint64_t *counts, int n, int max_bits, uint8_t *lengths);
/* Canonical codes (deflate's rule), bit-reversed for the LSB-first writer. */
void huff_canonical_codes(const uint8_t *lengths, uint16_t *codes);
/* The l-bit code reversed: its 16 bits reversed by swapping halves, then shifted down (a
 * bit-at-a-time loop was a tenth of decoding a 16K-symbol block). */
TP_ALWAYS_INLINE uint16_t huff_reverse(uint32_t r, int l) {
    r = ((r >> 1) & 0x5555) | ((r & 0x5555) << 1);
    r = ((r >> 2) & 0x3333) | ((r & 0x3333) << 2);
    r = ((r >> 4) & 0x0F0F) | ((r & 0x0F0F) << 4);
    r = ((r >> 8) & 0x00FF) | ((r & 0x00FF) << 8);
    return (uint16_t)(r >> (16 - l));
}
/* Kraft's sum in units of 2^-HUFF_BITS, -1 when a length exceeds HUFF_BITS. */
int64_t huff_kraft(const uint8_t *lengths);

/* ---- CRC-32 (crc.c, x86_crc.c, ref.c) ------------------------------------------------------
 * crc = f(0, data, n) is zlib.crc32(data); passing a previous result continues it. */
typedef uint32_t (*huff_crc32_fn)(uint32_t crc, const uint8_t *p, size_t n);
uint32_t huffman_crc32_ref(uint32_t crc, const uint8_t *p, size_t n);
uint32_t huff_crc32_slice8(uint32_t crc, const uint8_t *p, size_t n);
extern const uint32_t huff_crc32_table[8][256]; /* crc_table.h */

/* 8 message bytes (little-endian w) into the raw (not inverted) CRC register c. */
TP_ALWAYS_INLINE uint32_t huff_crc32_step8(uint32_t c, uint64_t w) {
    const uint32_t(*t)[256] = huff_crc32_table;
    w ^= c;
    return t[7][w & 255] ^ t[6][(w >> 8) & 255] ^ t[5][(w >> 16) & 255] ^ t[4][(w >> 24) & 255] ^
           t[3][(w >> 32) & 255] ^ t[2][(w >> 40) & 255] ^ t[1][(w >> 48) & 255] ^ t[0][w >> 56];
}

/* PCLMULQDQ folding constants (see x86_crc.c): x^191, x^127 fold 16 bytes forward,
 * x^575, x^511 fold 64 bytes, x^2111, x^2047 fold 256. */
#define HUFF_CRC32_K191 0x65673b4600000000ull
#define HUFF_CRC32_K127 0x9ba54c6f00000000ull
#define HUFF_CRC32_K575 0x653d982200000000ull
#define HUFF_CRC32_K511 0xcad38e8f00000000ull
#define HUFF_CRC32_K2111 0x7cc8e1e700000000ull
#define HUFF_CRC32_K2047 0x03f9f86300000000ull
#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>
#define TP_TARGET_PCLMUL __attribute__((target("pclmul,sse4.1")))
/* huff_crc32_slice8's values with PCLMULQDQ. */
TP_TARGET_PCLMUL uint32_t huff_crc32_pclmul(uint32_t crc, const uint8_t *p, size_t n);
/* The CRC of a message whose first part is folded into the 128-bit remainder x (its first 16
 * bytes XOR the initial register, then 16 bytes at a time) and whose last n bytes are at p. */
TP_TARGET_PCLMUL uint32_t huff_crc32_pclmul_finish(__m128i x, const uint8_t *p, size_t n);
/* The same with VPCLMULQDQ on 512-bit vectors: the AVX-512 slot's (huff_pick_isa). */
#define TP_TARGET_VPCLMUL \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,vpclmulqdq,pclmul,sse4.1")))
TP_TARGET_VPCLMUL uint32_t huff_crc32_vpclmul(uint32_t crc, const uint8_t *p, size_t n);
#endif

/* ---- the block coders and their dispatch tables (variants.c) ------------------------------- */
/* Phase A: a block's type, lengths, exact stream sizes and checksum. Phase B: the block,
 * exactly plan->size bytes at dst (nothing written past them). */
typedef struct {
    void (*plan)(const uint8_t *src, int64_t len, huff_plan *plan);
    int (*write)(const uint8_t *src, int64_t len, const huff_plan *plan, uint8_t *dst);
} huff_block_encoder;
/* One block of `size` bytes into out[0, len): TP_OK or TP_ERR_CORRUPT. allow_range: the block
 * may be of type BLOCK_HUFF_RANGE (the float codec's streams; never the Huffman stream's). */
typedef int (*huff_block_decoder)(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                                  int allow_range);
/* Blocks a and b (len_a and len_b symbols) into out_a and out_b, as two huff_block_decoder
 * calls would: TP_OK, or TP_ERR_CORRUPT when either is damaged. blk_b NULL: block a alone.
 * Callers hand blocks over in pairs and the variant decides whether they go together. */
typedef int (*huff_block_pair_decoder)(const uint8_t *blk_a, int64_t size_a, uint8_t *out_a,
                                       int64_t len_a, const uint8_t *blk_b, int64_t size_b,
                                       uint8_t *out_b, int64_t len_b, int allow_range);
/* The four streams' histograms of src (symbol i counts in c[i % 4]), added to c. */
typedef void (*huff_count_fn)(const uint8_t *src, int64_t len, uint32_t (*c)[256]);

/* The per-ISA loops the fast block coders are built from (variants.c, x86_*.c). */
typedef uint32_t (*huff_scan_fn)(const uint8_t *src, int64_t len, uint32_t (*c)[256]);
typedef int (*huff_encode4_fn)(const uint8_t *src, int64_t len, const uint64_t *etab,
                               uint8_t *const *begin, uint8_t *const *end);
typedef int (*huff_decode4_fn)(const uint16_t *table, const uint8_t *base,
                               const uint64_t *start, const uint64_t *end, uint8_t *out,
                               int64_t len, uint32_t *crc);
/* Two Huffman blocks of the same length at once (loops.h, "two blocks at once"): their
 * streams and outputs, and their decoding tables at tables and tables + HUFF_PAIR_STRIDE (one
 * register reaches both). TP_OK or TP_ERR_CORRUPT; the CRCs are the caller's. */
#define HUFF_PAIR_STRIDE (HUFF_TABLE + 64)
typedef struct {
    const uint8_t *base;
    uint64_t start[4], end[4];
    uint8_t *out;
} huff_streams;
typedef int (*huff_decode4_pair_fn)(const uint16_t *tables, const huff_streams *a,
                                    const huff_streams *b, int64_t len);

/* The fast block coders around those loops (encode.c, decode.c); the type and stream sizes
 * from the streams' histograms (encode.c, the fast planning's and the reference's). */
void huff_plan_from_counts(const uint32_t (*c)[256], int64_t len, huff_lengths_fn code_lengths,
                           huff_plan *plan);
void huff_plan_block(huff_scan_fn scan, const uint8_t *src, int64_t len, huff_plan *plan);
int huff_write_block(huff_encode4_fn encode4, const uint8_t *src, int64_t len,
                     const huff_plan *plan, uint8_t *dst);
/* decode4_multi (or NULL): the multi-symbol loop, which huff_decode_block runs instead of
 * decode4 for blocks of fewer than HUFF_MULTI_MAX_BITS payload bits per symbol. */
int huff_decode_block(huff_decode4_fn decode4, huff_decode4_fn decode4_multi,
                      huff_crc32_fn crc32, const uint8_t *blk, int64_t size, uint8_t *out,
                      int64_t len, int allow_range);
/* A huff_block_pair_decoder: blocks a and b as two calls of huff_decode_block would, but the
 * two decoded together by decode4_pair where both are single-symbol Huffman blocks of the same
 * length (decode4_pair NULL: never). */
int huff_decode_block_pair(huff_decode4_fn decode4, huff_decode4_fn decode4_multi,
                           huff_decode4_pair_fn decode4_pair, huff_crc32_fn crc32,
                           const uint8_t *blk_a, int64_t size_a, uint8_t *out_a, int64_t len_a,
                           const uint8_t *blk_b, int64_t size_b, uint8_t *out_b, int64_t len_b,
                           int allow_range);
#ifndef HUFF_MULTI_MAX_BITS
#define HUFF_MULTI_MAX_BITS 4
#endif

/* The scalar references (ref.c): the block format of docs/huffman.md read top to bottom. */
void huffman_plan_block_ref(const uint8_t *src, int64_t len, huff_plan *plan);
int huffman_write_block_ref(const uint8_t *src, int64_t len, const huff_plan *plan,
                            uint8_t *dst);
int huffman_decode_block_ref(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                             int allow_range);
void huffman_count_ref(const uint8_t *src, int64_t len, uint32_t (*c)[256]);

#if TP_HAVE_X86_VARIANTS
/* The x86-64 loops (AVX2 CPUs with BMI2 and PCLMULQDQ). Their assembly rounds are built only
 * where GCC-style inline assembly is optimized and no sanitizer runs (sanitizers cannot see
 * inside asm: those builds run the C loops of loops.h instead, which is what they check). */
#define TP_TARGET_HUFF_X86 __attribute__((target("avx2,fma,bmi,bmi2,pclmul")))
#define HUFF_ASM 0
#if defined(__x86_64__) && defined(__OPTIMIZE__)
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#undef HUFF_ASM
#define HUFF_ASM 1
#endif
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#undef HUFF_ASM
#define HUFF_ASM 0
#endif
#endif
uint32_t huff_scan_x86(const uint8_t *src, int64_t len, uint32_t (*c)[256]);
int huff_encode4_x86(const uint8_t *src, int64_t len, const uint64_t *etab,
                     uint8_t *const *begin, uint8_t *const *end);
int huff_decode4_x86(const uint16_t *table, const uint8_t *base, const uint64_t *start,
                     const uint64_t *end, uint8_t *out, int64_t len, uint32_t *crc);
int huff_decode4_multi_x86(const uint16_t *table, const uint8_t *base, const uint64_t *start,
                           const uint64_t *end, uint8_t *out, int64_t len, uint32_t *crc);
int huff_decode4_pair_x86(const uint16_t *tables, const huff_streams *a, const huff_streams *b,
                          int64_t len);
int huff_decode4_multi_avx512(const uint16_t *table, const uint8_t *base, const uint64_t *start,
                              const uint64_t *end, uint8_t *out, int64_t len, uint32_t *crc);
#endif

/* The dispatch tables, indexed by TP_ISA_*: pick with huff_pick_isa, then TP_PICK. */
extern const huff_block_encoder *const HUFF_ENCODE[TP_ISA_COUNT];
extern const huff_block_decoder HUFF_DECODE[TP_ISA_COUNT];
extern const huff_block_pair_decoder HUFF_DECODE_PAIR[TP_ISA_COUNT];
extern const huff_count_fn HUFF_COUNT[TP_ISA_COUNT];
extern const huff_crc32_fn HUFF_CRC32[TP_ISA_COUNT];
extern const huff_lengths_fn HUFF_CODE_LENGTHS[TP_ISA_COUNT];
/* The variant to run for `isa`: the x86 slots need BMI2, LZCNT and PCLMULQDQ too (every AVX2
 * CPU has them; checked anyway), else the baseline one; the AVX-512 slot also VPCLMULQDQ, else AVX2's. */
int huff_pick_isa(int isa);

/* Below this many symbols per thread a second thread costs more than it saves. */
#define HUFF_MIN_PER_THREAD ((int64_t)1 << 18)

#endif /* TP_HUFFMAN_INTERNAL_H */
