/*
 * nm_body_tmpl.h: the N:M mask of one (len, inner) block, once per element type (see
 * key_type.h). Element a of a group beats b when its key is larger, or equal with a lower
 * position; an element is kept when fewer than n others beat it. variants.c instantiates it
 * per type and compiles the block pass per ISA (nm.c runs the blocks).
 */
#include "key_type.h"

#define NM4_BODY TP_CAT(nm4_body, SUF)
#define NM_BODY TP_CAT(nm_body, SUF)

/* Groups of 4 consecutive elements (inner == 1): the three compares of each element written
 * out. Returns 1 on NaN. */
TP_ALWAYS_INLINE int NM4_BODY(const BITS_T *TP_RESTRICT x, int64_t groups, int32_t n,
                              uint8_t *TP_RESTRICT mask) {
    KEY_T bad = 0;
    for (int64_t g = 0; g < groups; g++) {
        KEY_T k0 = (KEY_T)(x[4 * g] & KEY_ABS), k1 = (KEY_T)(x[4 * g + 1] & KEY_ABS);
        KEY_T k2 = (KEY_T)(x[4 * g + 2] & KEY_ABS), k3 = (KEY_T)(x[4 * g + 3] & KEY_ABS);
        KEY_T hi = k0 > k1 ? k0 : k1;
        KEY_T hj = k2 > k3 ? k2 : k3;
        hi = hi > hj ? hi : hj;
        bad = hi > bad ? hi : bad;
        int r0 = (k1 > k0) + (k2 > k0) + (k3 > k0);
        int r1 = (k0 >= k1) + (k2 > k1) + (k3 > k1);
        int r2 = (k0 >= k2) + (k1 >= k2) + (k3 > k2);
        int r3 = (k0 >= k3) + (k1 >= k3) + (k2 >= k3);
        mask[4 * g] = r0 < n;
        mask[4 * g + 1] = r1 < n;
        mask[4 * g + 2] = r2 < n;
        mask[4 * g + 3] = r3 < n;
    }
    return bad > KEY_INF;
}

/* Any m, any inner: element j of group row a against the same element of the others. */
TP_ALWAYS_INLINE int NM_BODY(const BITS_T *TP_RESTRICT x, int64_t len, int64_t inner, int32_t n,
                             int32_t m, uint8_t *TP_RESTRICT mask) {
    KEY_T bad = 0;
    for (int64_t g = 0; g < len; g += m) {
        for (int32_t a = 0; a < m; a++) {
            const BITS_T *xa = x + (g + a) * inner;
            uint8_t *ma = mask + (g + a) * inner;
            for (int64_t j = 0; j < inner; j++) {
                KEY_T ka = (KEY_T)(xa[j] & KEY_ABS);
                int r = 0;
                bad = ka > bad ? ka : bad;
                for (int32_t b = 0; b < a; b++) r += (KEY_T)(x[(g + b) * inner + j] & KEY_ABS) >= ka;
                for (int32_t b = a + 1; b < m; b++)
                    r += (KEY_T)(x[(g + b) * inner + j] & KEY_ABS) > ka;
                ma[j] = r < n;
            }
        }
    }
    return bad > KEY_INF;
}

/* A hand-written kernel for 4-element groups (x86_avx2.c): handles *done of the groups. */
typedef int (*TP_CAT(nm4_fast_fn, SUF))(const BITS_T *x, int64_t groups, int32_t n,
                                        uint8_t *mask, int64_t *done);

/* The block pass (nm_block_fn): 4-element groups through `fast` (NULL: none) then NM4_BODY;
 * others through NM_BODY, contiguous groups (inner == 1) with a loop of their own. */
TP_ALWAYS_INLINE int TP_CAT(nm_block_body, SUF)(const BITS_T *x, int64_t len, int64_t inner,
                                                int32_t n, int32_t m, uint8_t *mask,
                                                TP_CAT(nm4_fast_fn, SUF) fast) {
    if (m == 4 && inner == 1) {
        int64_t done = 0;
        int nan = fast ? fast(x, len / 4, n, mask, &done) : 0;
        return nan | NM4_BODY(x + 4 * done, len / 4 - done, n, mask + 4 * done);
    }
    if (inner == 1) return NM_BODY(x, len, 1, n, m, mask);
    return NM_BODY(x, len, inner, n, m, mask);
}

#undef NM4_BODY
#undef NM_BODY
#include "key_type_end.h"
