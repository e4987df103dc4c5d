/*
 * mark_body_tmpl.h: the mask pass of whole-array selection, once per element type (see
 * key_type.h), and the pass functions built on it (range, bucket, rule, zero_below; their
 * types in passes_tmpl.h). variants.c instantiates it per type and compiles the passes per
 * ISA (variant_tmpl.h). The parameters that select a loop (collect, out, zero, track) are
 * constants at the calls below, so each combination compiles to a loop of its own.
 */
#include "key_type.h"

#define MARK_BODY TP_CAT(mark_body, SUF)
/* The mask pass over x[lo, hi) of one segment (lo a multiple of TOPK_ALIGN). Keys whose
 * digit d = key >> shift is above HI are kept, below LO dropped; the ones in [LO, HI]
 * are candidates: collected as (index, key - base) (collect=1) or decided by the rule
 * index <= cut (collect=0, shift=0, LO=HI). The histogram path passes one digit,
 * LO=HI=P; the sampled path a key range and track=1: it then also counts the kept keys
 * into st->above, keeps the largest key in st->kmax (NaN detection), and returns -1
 * when the candidates would pass `cap`. */
TP_ALWAYS_INLINE int64_t MARK_BODY(BITS_T *TP_RESTRICT x, int64_t lo, int64_t hi, int64_t vbase,
                                   int shift, KEY_T LO, KEY_T HI, KEY_T base, int64_t cut,
                                   const int collect, uint8_t *TP_RESTRICT mask, const int out,
                                   const int zero, int64_t *TP_RESTRICT cidx,
                                   uint64_t *TP_RESTRICT ckey, const int track, int64_t cap,
                                   mark_stats *st) {
    /* out: 0 no mask, 1 bools written straight from the compare loop, 2 packed bits
     * (through a block buffer) */
    int64_t c = 0, above = 0;
    const KEY_T span = (KEY_T)(HI - LO);
    KEY_T kmax = 0;
    for (int64_t b = lo; b < hi; b += TOPK_BLOCK) {
        int64_t len = hi - b < TOPK_BLOCK ? hi - b : TOPK_BLOCK;
        uint8_t buf[TOPK_BLOCK], e[TOPK_BLOCK];
        uint8_t *m = out == 1 ? mask + b : buf;
        uint8_t any = 0;
        const BITS_T *xb = x + b;
        if (track && c + TOPK_BLOCK > cap) return -1;
        /* one unsigned compare tests LO <= d <= HI: d - LO wraps above span below LO */
        for (int64_t j = 0; j < len; j++) {
            KEY_T key = (KEY_T)(xb[j] & KEY_ABS);
            KEY_T d = key >> shift;
            m[j] = d > HI;
            e[j] = (KEY_T)(d - LO) <= span;
            any |= e[j];
            if (track) kmax = key > kmax ? key : kmax;
        }
        if (track)
            for (int64_t j = 0; j < len; j++) above += m[j];
        if (any) {
            /* candidates are sparse: visit only the nonzero bytes of e, 8 at a time */
            if (len < TOPK_BLOCK) memset(e + len, 0, (size_t)(TOPK_BLOCK - len));
            for (int64_t w8 = 0; w8 < TOPK_BLOCK; w8 += 8) {
                uint64_t word;
                memcpy(&word, e + w8, 8);
                while (word) {
                    int64_t j = w8 + (__builtin_ctzll(word) >> 3);
                    word &= word - 1;
                    if (collect) {
                        cidx[c] = vbase + b + j;
                        ckey[c] = (KEY_T)((KEY_T)(xb[j] & KEY_ABS) - base);
                        c++;
                    } else {
                        m[j] = vbase + b + j <= cut;
                    }
                }
            }
        }
        if (zero) {
            /* candidates are zeroed later, if they lose */
            BITS_T *xw = x + b;
            for (int64_t j = 0; j < len; j++)
                xw[j] = (m[j] | (uint8_t)(collect & e[j])) ? xw[j] : (BITS_T)0;
        }
        if (out == 2) pack_bools(mask + b / 8, m, len);
    }
    if (track) {
        st->above += above;
        st->kmax = (uint64_t)kmax > st->kmax ? (uint64_t)kmax : st->kmax;
    }
    return c;
}

/* A hand-written sampled pass (x86_avx2.c): handles a prefix of x[lo, hi), *done elements. */
typedef int64_t (*TP_CAT(range_fast_fn, SUF))(const BITS_T *x, int64_t lo, int64_t hi,
                                              int64_t vbase, KEY_T LO, KEY_T HI, uint8_t *mask,
                                              int64_t *cidx, uint64_t *ckey, int64_t cap,
                                              mark_stats *st, int64_t *done);

/* The sampled path's pass (range_pass_fn): key ranges (shift 0), collects, never zeroes. With
 * bool masks (or none) the hand-written kernel `fast` (NULL: none) takes what it can first. */
TP_ALWAYS_INLINE int64_t TP_CAT(range_pass_body, SUF)(BITS_T *x, int64_t lo, int64_t hi,
                                                      int64_t vbase, KEY_T LO, KEY_T HI,
                                                      uint8_t *mask, int packed, int64_t *cidx,
                                                      uint64_t *ckey, int64_t cap, mark_stats *st,
                                                      TP_CAT(range_fast_fn, SUF) fast) {
    int out = !mask ? 0 : packed ? 2 : 1;
    if (out != 2) {
        int64_t done = 0, c = 0;
        if (fast) c = fast(x, lo, hi, vbase, LO, HI, mask, cidx, ckey, cap, st, &done);
        if (c < 0) return c;
        int64_t r = MARK_BODY(x, lo + done, hi, vbase, 0, LO, HI, LO, 0, 1, mask, out, 0, cidx + c,
                              ckey + c, 1, cap - c, st);
        return r < 0 ? r : c + r;
    }
    return MARK_BODY(x, lo, hi, vbase, 0, LO, HI, LO, 0, 1, mask, out, 0, cidx, ckey, 1, cap, st);
}

/* The histogram path's pass (bucket_pass_fn): the bucket of digit P collected; each
 * combination of mask kind and zeroing a loop of its own. */
TP_ALWAYS_INLINE int64_t TP_CAT(bucket_pass_body, SUF)(BITS_T *x, int64_t lo, int64_t hi,
                                                       int64_t vbase, int shift, KEY_T P,
                                                       uint8_t *mask, int packed, int zero,
                                                       int64_t *cidx, uint64_t *ckey) {
    int out = !mask ? 0 : packed ? 2 : 1;
    if (out == 1 && !zero)
        return MARK_BODY(x, lo, hi, vbase, shift, P, P, 0, 0, 1, mask, 1, 0, cidx, ckey, 0, 0, NULL);
    if (out == 0 && !zero)
        return MARK_BODY(x, lo, hi, vbase, shift, P, P, 0, 0, 1, mask, 0, 0, cidx, ckey, 0, 0, NULL);
    return MARK_BODY(x, lo, hi, vbase, shift, P, P, 0, 0, 1, mask, out, zero, cidx, ckey, 0, 0,
                     NULL);
}

/* The rule pass (rule_pass_fn): kept iff key > T, or key == T and index <= cut. */
TP_ALWAYS_INLINE void TP_CAT(rule_pass_body, SUF)(BITS_T *x, int64_t lo, int64_t hi,
                                                  int64_t vbase, KEY_T T, int64_t cut,
                                                  uint8_t *mask, int packed, int zero) {
    int out = !mask ? 0 : packed ? 2 : 1;
    if (out == 1 && !zero)
        MARK_BODY(x, lo, hi, vbase, 0, T, T, 0, cut, 0, mask, 1, 0, NULL, NULL, 0, 0, NULL);
    else
        MARK_BODY(x, lo, hi, vbase, 0, T, T, 0, cut, 0, mask, out, zero, NULL, NULL, 0, 0, NULL);
}

/* The sampled path's in-place pruning (zero_below_fn): every key below LO is dropped. */
TP_ALWAYS_INLINE void TP_CAT(zero_below_body, SUF)(BITS_T *x, int64_t lo, int64_t hi, KEY_T LO) {
    for (int64_t j = lo; j < hi; j++) x[j] = (KEY_T)(x[j] & KEY_ABS) >= LO ? x[j] : (BITS_T)0;
}

#undef MARK_BODY
#include "key_type_end.h"
