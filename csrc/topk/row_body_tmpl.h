/*
 * row_body_tmpl.h: one slice's selection by the histogram (the per-slice path every slice
 * can take), once per element type (see key_type.h), and the row pass built on it (row_fn
 * in passes_tmpl.h). variants.c instantiates it per type and compiles it per ISA: the rule
 * pass at its end vectorizes.
 */
#include "key_type.h"

#define ROW_BODY TP_CAT(row_body, SUF)
#define ROW_KEY TP_CAT(row_key, SUF)

/* The key of slice element l: straight from x when the slice is contiguous, else from the
 * gathered copy. */
TP_ALWAYS_INLINE KEY_T ROW_KEY(const BITS_T *x, const KEY_T *keys, int64_t stride, int64_t l) {
    return stride == 1 ? (KEY_T)(x[l] & KEY_ABS) : keys[l];
}

/* The per-slice work of one thread: gather keys, select, apply the rule. Returns 1 when a NaN
 * was seen. */
TP_ALWAYS_INLINE int ROW_BODY(BITS_T *TP_RESTRICT x, int64_t len, int64_t stride, int64_t k,
                              int packed, int zero, uint8_t *TP_RESTRICT mask, int64_t mbase,
                              uint64_t *thr, const topk_levels *lv, uint32_t *TP_RESTRICT h,
                              KEY_T *TP_RESTRICT keys, int64_t *TP_RESTRICT cidx,
                              uint64_t *TP_RESTRICT ckey) {
    int shift = lv->shift[0];
    int nan = 0;
    KEY_T kmax = 0;
    /* contiguous slices are re-read from x (now in cache) instead of copied */
    if (stride == 1) {
        for (int64_t l = 0; l < len; l++) {
            KEY_T key = (KEY_T)(x[l] & KEY_ABS);
            kmax = key > kmax ? key : kmax;
            h[key >> shift]++;
        }
    } else {
        for (int64_t l = 0; l < len; l++) {
            KEY_T key = (KEY_T)(x[l * stride] & KEY_ABS);
            keys[l] = key;
            kmax = key > kmax ? key : kmax;
            h[key >> shift]++;
        }
    }
    nan = kmax > KEY_INF;
    KEY_T T;
    int64_t cut;
    if (k == 0) {
        T = (KEY_T)KEY_ABS; /* above every key but NaN: nothing kept */
        cut = -1;
    } else {
        int64_t above = 0, d = (int64_t)(kmax >> shift);
        for (; d > 0; d--) {
            if (above + h[d] >= k) break;
            above += h[d];
        }
        int64_t need = k - above;
        /* collect the bucket: a vectorized compare per block of 64, then only the
         * matching bytes are visited (a branch-free compaction would chain every
         * store address through the previous compare: ~5 cycles per key) */
        int64_t c = 0;
        const KEY_T dk = (KEY_T)d;
        for (int64_t b = 0; b < len; b += TOPK_BLOCK) {
            int64_t n = len - b < TOPK_BLOCK ? len - b : TOPK_BLOCK;
            uint8_t e[TOPK_BLOCK];
            /* while this slice is worked on in cache, fetch the next one (contiguous
             * slices): its gather then reads from cache, not memory. Prefetches never
             * fault, so running past the array's end is harmless. */
            if (stride == 1)
                for (int64_t p = 0; p < TOPK_BLOCK * (int64_t)sizeof(BITS_T); p += 64)
                    __builtin_prefetch((const char *)(x + len + b) + p);
            uint8_t any = 0;
            for (int64_t j = 0; j < n; j++) {
                e[j] = (ROW_KEY(x, keys, stride, b + j) >> shift) == dk;
                any |= e[j];
            }
            if (!any) continue;
            if (n < TOPK_BLOCK) memset(e + n, 0, (size_t)(TOPK_BLOCK - n));
            for (int64_t w8 = 0; w8 < TOPK_BLOCK; w8 += 8) {
                uint64_t word;
                memcpy(&word, e + w8, 8);
                while (word) {
                    int64_t j = b + w8 + (__builtin_ctzll(word) >> 3);
                    word &= word - 1;
                    cidx[c] = j;
                    ckey[c] = ROW_KEY(x, keys, stride, j);
                    c++;
                }
            }
        }
        uint64_t t64;
        select_candidates(cidx, ckey, c, need, shift, cidx, ckey, &t64, &cut);
        T = (KEY_T)t64;
    }
    memset(h, 0, sizeof(uint32_t) * ((size_t)(kmax >> shift) + 1));
    if (thr) *thr = k == 0 ? 0 : (uint64_t)T;
    if (!mask && !zero) return nan;
    if (stride == 1 && !packed) {
        for (int64_t l = 0; l < len; l++) {
            KEY_T key = ROW_KEY(x, keys, stride, l);
            uint8_t keep = (key > T) | ((key == T) & (l <= cut));
            if (mask) mask[mbase + l] = keep;
            if (zero) x[l] = keep ? x[l] : (BITS_T)0;
        }
    } else if (stride == 1 && (mbase & 7) == 0) {
        for (int64_t b = 0; b < len; b += TOPK_BLOCK) {
            int64_t n = len - b < TOPK_BLOCK ? len - b : TOPK_BLOCK;
            uint8_t m[TOPK_BLOCK];
            for (int64_t j = 0; j < n; j++) {
                KEY_T key = ROW_KEY(x, keys, stride, b + j);
                m[j] = (key > T) | ((key == T) & (b + j <= cut));
                if (zero) x[b + j] = m[j] ? x[b + j] : (BITS_T)0;
            }
            if (mask) pack_bools(mask + (mbase + b) / 8, m, n);
        }
    } else {
        for (int64_t l = 0; l < len; l++) {
            KEY_T key = ROW_KEY(x, keys, stride, l);
            uint8_t keep = (key > T) | ((key == T) & (l <= cut));
            int64_t p = mbase + l * stride;
            if (mask) {
                if (packed) {
                    uint8_t bit = (uint8_t)(0x80u >> (p & 7));
                    mask[p >> 3] = keep ? (uint8_t)(mask[p >> 3] | bit)
                                        : (uint8_t)(mask[p >> 3] & ~bit);
                } else {
                    mask[p] = keep;
                }
            }
            if (zero && !keep) x[l * stride] = 0;
        }
    }
    return nan;
}

/* The row pass (row_fn): contiguous slices with bool masks get a loop of their own. */
TP_ALWAYS_INLINE int TP_CAT(row_pass_body, SUF)(BITS_T *x, int64_t len, int64_t stride, int64_t k,
                                                int packed, int zero, uint8_t *mask, int64_t mbase,
                                                uint64_t *thr, const topk_levels *lv, uint32_t *h,
                                                KEY_T *keys, int64_t *cidx, uint64_t *ckey) {
    if (stride == 1 && !packed && mask)
        return ROW_BODY(x, len, 1, k, 0, zero, mask, mbase, thr, lv, h, keys, cidx, ckey);
    return ROW_BODY(x, len, stride, k, packed, zero, mask, mbase, thr, lv, h, keys, cidx, ckey);
}

#undef ROW_BODY
#undef ROW_KEY
#include "key_type_end.h"
