/*
 * variant_tmpl.h: the passes of one element type compiled for one ISA: thin wrappers around
 * the always-inline bodies (mark_body_tmpl.h, row_body_tmpl.h, nm_body_tmpl.h, which the
 * including file has instantiated for the type), and their table. Parameters, #undef'd at the
 * end: TOPK_DTYPE (see key_type.h), ISA (the name suffix: baseline, avx2, avx512), ISA_ATTRS
 * (the target attribute), and the hand-written kernels this ISA has, NULL where none:
 * RANGE_FAST (range_fast_fn), NM4_FAST (nm4_fast_fn), ROW_SPLIT (row_split_fn).
 */
#include "key_type.h"

#define VARIANT(name) TP_CAT(TP_CAT(name, SUF), ISA)

ISA_ATTRS static int64_t VARIANT(range_pass)(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                            KEY_T LO, KEY_T HI, uint8_t *mask, int packed,
                                            int64_t *cidx, uint64_t *ckey, int64_t cap,
                                            mark_stats *st) {
    return TP_CAT(range_pass_body, SUF)(x, lo, hi, vbase, LO, HI, mask, packed, cidx, ckey, cap,
                                        st, RANGE_FAST);
}

ISA_ATTRS static int64_t VARIANT(bucket_pass)(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                             int shift, KEY_T P, uint8_t *mask, int packed,
                                             int zero, int64_t *cidx, uint64_t *ckey) {
    return TP_CAT(bucket_pass_body, SUF)(x, lo, hi, vbase, shift, P, mask, packed, zero, cidx,
                                         ckey);
}

ISA_ATTRS static void VARIANT(rule_pass)(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                         KEY_T T, int64_t cut, uint8_t *mask, int packed,
                                         int zero) {
    TP_CAT(rule_pass_body, SUF)(x, lo, hi, vbase, T, cut, mask, packed, zero);
}

ISA_ATTRS static void VARIANT(zero_below)(BITS_T *x, int64_t lo, int64_t hi, KEY_T LO) {
    TP_CAT(zero_below_body, SUF)(x, lo, hi, LO);
}

ISA_ATTRS static int VARIANT(row_pass)(BITS_T *x, int64_t len, int64_t stride, int64_t k,
                                       int packed, int zero, uint8_t *mask, int64_t mbase,
                                       uint64_t *thr, const topk_levels *lv, uint32_t *h,
                                       KEY_T *keys, int64_t *cidx, uint64_t *ckey) {
    return TP_CAT(row_pass_body, SUF)(x, len, stride, k, packed, zero, mask, mbase, thr, lv, h,
                                      keys, cidx, ckey);
}

ISA_ATTRS static int VARIANT(nm_block)(const void *x, int64_t len, int64_t inner, int32_t n,
                                       int32_t m, uint8_t *mask) {
    return TP_CAT(nm_block_body, SUF)((const BITS_T *)x, len, inner, n, m, mask, NM4_FAST);
}

static const TP_CAT(topk_passes, SUF) VARIANT(passes) = {
    VARIANT(range_pass), VARIANT(bucket_pass), VARIANT(rule_pass), VARIANT(zero_below),
    VARIANT(row_pass),   ROW_SPLIT,            VARIANT(nm_block),
};

#undef VARIANT
#undef ISA
#undef ISA_ATTRS
#undef RANGE_FAST
#undef NM4_FAST
#undef ROW_SPLIT
#include "key_type_end.h"
