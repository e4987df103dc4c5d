/*
 * passes_tmpl.h: the types of the per-ISA passes of one element type (see topk_internal.h),
 * instantiated per type by topk_internal.h. The passes are the loops over the data that
 * vectorize; variants.c compiles each for every ISA.
 */
#include "key_type.h"

/* The sampled path's pass over x[lo, hi) of one segment (vbase: the virtual index of x[0]):
 * keys above HI kept, keys in [LO, HI] collected as (index, key - LO) into cidx/ckey, the
 * kept ones counted into st->above and the largest key kept in st->kmax. Returns the count
 * collected, or -1 when it would pass cap. */
typedef int64_t (*TP_CAT(range_pass_fn, SUF))(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                              KEY_T LO, KEY_T HI, uint8_t *mask, int packed,
                                              int64_t *cidx, uint64_t *ckey, int64_t cap,
                                              mark_stats *st);
/* The histogram path's pass: keys whose digit key >> shift is above P kept, below dropped,
 * equal to P collected as (index, key). Returns the count collected. */
typedef int64_t (*TP_CAT(bucket_pass_fn, SUF))(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                               int shift, KEY_T P, uint8_t *mask, int packed,
                                               int zero, int64_t *cidx, uint64_t *ckey);
/* The rule pass: kept iff key > T, or key == T and index <= cut. */
typedef void (*TP_CAT(rule_pass_fn, SUF))(BITS_T *x, int64_t lo, int64_t hi, int64_t vbase,
                                          KEY_T T, int64_t cut, uint8_t *mask, int packed,
                                          int zero);
/* The sampled path's in-place pruning: zero every element of x[lo, hi) whose key is below LO. */
typedef void (*TP_CAT(zero_below_fn, SUF))(BITS_T *x, int64_t lo, int64_t hi, KEY_T LO);
/* One slice's selection by the histogram (see row_body_tmpl.h). Returns 1 on NaN. */
typedef int (*TP_CAT(row_fn, SUF))(BITS_T *x, int64_t len, int64_t stride, int64_t k, int packed,
                                   int zero, uint8_t *mask, int64_t mbase, uint64_t *thr,
                                   const topk_levels *lv, uint32_t *h, KEY_T *keys,
                                   int64_t *cidx, uint64_t *ckey);
/* The split path of one contiguous slice (x86_avx2_split.c): 0, 1 on NaN, 2 on a miss. */
typedef int (*TP_CAT(row_split_fn, SUF))(BITS_T *x, int64_t len, int64_t k, int zero,
                                         uint8_t *mask, uint64_t *thr, KEY_T *keys,
                                         int64_t *cidx, uint64_t *ckey, double z);

/* N:M masks of one (len, inner) block (nm_body_tmpl.h; x: BITS_T elements). Returns 1 on NaN. */
typedef int (*TP_CAT(nm_block_fn, SUF))(const void *x, int64_t len, int64_t inner, int32_t n,
                                        int32_t m, uint8_t *mask);

typedef struct {
    TP_CAT(range_pass_fn, SUF) range;
    TP_CAT(bucket_pass_fn, SUF) bucket;
    TP_CAT(rule_pass_fn, SUF) rule;
    TP_CAT(zero_below_fn, SUF) zero_below;
    TP_CAT(row_fn, SUF) row;
    TP_CAT(row_split_fn, SUF) row_split; /* NULL: no split path for this type and ISA */
    TP_CAT(nm_block_fn, SUF) nm_block;
} TP_CAT(topk_passes, SUF);

#include "key_type_end.h"
