/*
 * variants.c: the Huffman family's per-ISA wrappers and its dispatch tables (one per kernel).
 *
 *   scalar    the references of ref.c, written plainly (never these loops recompiled)
 *   baseline  loops.h's portable loops and the table CRC
 *   avx2/512  x86_*.c: the assembly coders and the PCLMULQDQ CRC (AVX2 CPUs, which all have
 *             BMI2 and PCLMULQDQ: huff_pick_isa checks anyway); the AVX-512 slot differs only
 *             in its CRC passes, VPCLMULQDQ on 512 bits (CPUs without it get the AVX2 slot)
 * The coders stay scalar code in every variant: GCC's SLP vectorizer would otherwise gather the
 * 20 decoded bytes of a round into a vector (pinsrb chains, spills), which is much slower, so
 * the baseline coders are compiled without tree vectorization (TP_NO_VECTORIZE).
 */
#include "loops.h"

/* ---- baseline: the portable loops ----------------------------------------------------------- */
static uint32_t scan_baseline(const uint8_t *src, int64_t len, uint32_t (*c)[256]) {
    return scan_body(src, len, c, 1);
}

static void count_baseline(const uint8_t *src, int64_t len, uint32_t (*c)[256]) {
    scan_body(src, len, c, 0);
}

TP_NO_VECTORIZE static int encode4_baseline(const uint8_t *src, int64_t len,
                                            const uint64_t *etab, uint8_t *const *begin,
                                            uint8_t *const *end) {
    return encode4_body(src, len, etab, begin, end);
}

TP_NO_VECTORIZE static int decode4_baseline(const uint16_t *table, const uint8_t *base,
                                            const uint64_t *start, const uint64_t *end,
                                            uint8_t *out, int64_t len, uint32_t *crc) {
    int status = decode4_body(table, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_slice8(0, out, (size_t)len) : 0;
    return status;
}

TP_NO_VECTORIZE static void multi_rounds_baseline(const uint64_t *table, huff_mreaders *r,
                                                  huff_run *run, int64_t *fill, int64_t rounds) {
    decode_multi_rounds_c(table, r, run, fill, rounds);
}

static void interleave_baseline(huff_run *run, int64_t count, uint8_t *out) {
    interleave_body(run, 0, count, out);
}

TP_NO_VECTORIZE static int decode4_multi_baseline(const uint16_t *table, const uint8_t *base,
                                                  const uint64_t *start, const uint64_t *end,
                                                  uint8_t *out, int64_t len, uint32_t *crc) {
    uint64_t multi[HUFF_TABLE];
    huff_multi_table(table, multi);
    int status = decode4_multi_body(table, multi, base, start, end, out, len,
                                    multi_rounds_baseline, interleave_baseline);
    *crc = status == TP_OK ? huff_crc32_slice8(0, out, (size_t)len) : 0;
    return status;
}

/* ---- the block coders of each variant: encode.c and decode.c around its loops -------------
 * (one thin wrapper a line) */
static void plan_baseline(const uint8_t *src, int64_t len, huff_plan *p) { huff_plan_block(scan_baseline, src, len, p); }
static int write_baseline(const uint8_t *src, int64_t len, const huff_plan *p, uint8_t *dst) { return huff_write_block(encode4_baseline, src, len, p, dst); }
static int decode_baseline(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len, int range) { return huff_decode_block(decode4_baseline, decode4_multi_baseline, huff_crc32_slice8, blk, size, out, len, range); }
static int decode_pair_baseline(const uint8_t *a, int64_t sa, uint8_t *oa, int64_t la, const uint8_t *b, int64_t sb, uint8_t *ob, int64_t lb, int range) { return huff_decode_block_pair(decode4_baseline, decode4_multi_baseline, NULL, huff_crc32_slice8, a, sa, oa, la, b, sb, ob, lb, range); }
static const huff_block_encoder ENCODE_BASELINE = {plan_baseline, write_baseline};
static const huff_block_encoder ENCODE_REF = {huffman_plan_block_ref, huffman_write_block_ref};

#if TP_HAVE_X86_VARIANTS
static void plan_x86(const uint8_t *src, int64_t len, huff_plan *p) { huff_plan_block(huff_scan_x86, src, len, p); }
static int write_x86(const uint8_t *src, int64_t len, const huff_plan *p, uint8_t *dst) { return huff_write_block(huff_encode4_x86, src, len, p, dst); }
static int decode_x86(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len, int range) { return huff_decode_block(huff_decode4_x86, huff_decode4_multi_x86, huff_crc32_pclmul, blk, size, out, len, range); }
static int decode_avx512(const uint8_t *blk, int64_t size, uint8_t *out, int64_t len, int range) { return huff_decode_block(huff_decode4_x86, huff_decode4_multi_avx512, huff_crc32_vpclmul, blk, size, out, len, range); }
static int decode_pair_x86(const uint8_t *a, int64_t sa, uint8_t *oa, int64_t la, const uint8_t *b, int64_t sb, uint8_t *ob, int64_t lb, int range) { return huff_decode_block_pair(huff_decode4_x86, huff_decode4_multi_x86, huff_decode4_pair_x86, huff_crc32_pclmul, a, sa, oa, la, b, sb, ob, lb, range); }
static int decode_pair_avx512(const uint8_t *a, int64_t sa, uint8_t *oa, int64_t la, const uint8_t *b, int64_t sb, uint8_t *ob, int64_t lb, int range) { return huff_decode_block_pair(huff_decode4_x86, huff_decode4_multi_avx512, huff_decode4_pair_x86, huff_crc32_vpclmul, a, sa, oa, la, b, sb, ob, lb, range); }
static const huff_block_encoder ENCODE_X86 = {plan_x86, write_x86};
#endif

/* ---- the dispatch tables ------------------------------------------------------------------- */
const huff_block_encoder *const HUFF_ENCODE[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = &ENCODE_REF,
    [TP_ISA_BASELINE] = &ENCODE_BASELINE,
    TP_X86_ONLY([TP_ISA_AVX2] = &ENCODE_X86, [TP_ISA_AVX512] = &ENCODE_X86,)
};

const huff_block_decoder HUFF_DECODE[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = huffman_decode_block_ref,
    [TP_ISA_BASELINE] = decode_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = decode_x86, [TP_ISA_AVX512] = decode_avx512,)
};

/* The scalar reference decodes one block after the other. */
static int decode_pair_ref(const uint8_t *a, int64_t sa, uint8_t *oa, int64_t la,
                           const uint8_t *b, int64_t sb, uint8_t *ob, int64_t lb, int range) {
    int status = huffman_decode_block_ref(a, sa, oa, la, range);
    return status != TP_OK || !b ? status : huffman_decode_block_ref(b, sb, ob, lb, range);
}

/* Blocks two at a time: the x86 slots decode two single-symbol Huffman blocks of the same
 * length together with eight readers (loops.h); the baseline one after the other, as the
 * reference. */
const huff_block_pair_decoder HUFF_DECODE_PAIR[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = decode_pair_ref,
    [TP_ISA_BASELINE] = decode_pair_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = decode_pair_x86, [TP_ISA_AVX512] = decode_pair_avx512,)
};

/* Counting alone gains nothing from the x86 loops: their x86 slots take the baseline. */
const huff_count_fn HUFF_COUNT[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = huffman_count_ref,
    [TP_ISA_BASELINE] = count_baseline,
};

const huff_crc32_fn HUFF_CRC32[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = huffman_crc32_ref,
    [TP_ISA_BASELINE] = huff_crc32_slice8,
    TP_X86_ONLY([TP_ISA_AVX2] = huff_crc32_pclmul, [TP_ISA_AVX512] = huff_crc32_vpclmul,)
};

/* One form beside the reference: the x86 slots take the baseline. */
const huff_lengths_fn HUFF_CODE_LENGTHS[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = huffman_code_lengths_ref,
    [TP_ISA_BASELINE] = huff_code_lengths_fast,
};

int huff_pick_isa(int isa) {
#if TP_HAVE_X86_VARIANTS
    if (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("bmi") || !__builtin_cpu_supports("bmi2") ||
            !__builtin_cpu_supports("lzcnt") || !__builtin_cpu_supports("pclmul"))
            return TP_ISA_BASELINE;
        return isa == TP_ISA_AVX512 && !__builtin_cpu_supports("vpclmulqdq") ? TP_ISA_AVX2 : isa;
    }
#endif
    return isa == TP_ISA_SCALAR ? isa : TP_ISA_BASELINE;
}
