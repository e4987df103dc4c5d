/*
 * ref.c: the scalar references of the top-k family (the TP_ISA_SCALAR slots of the dispatch
 * tables in select.c, rows.c and nm.c): plain C, one element at a time, written to be read.
 * The public entries have checked the arguments.
 *
 * The rule every variant follows: an element's key is its magnitude bits (keys.h). The
 * threshold T is the k-th largest key; kept are the keys above T and, of the keys equal to T,
 * the first k - (number above T) in index order. Any NaN (a key above Inf's) is an error,
 * found before anything is written.
 */
#include "topk_internal.h"

/* The key of element i of an array of `dtype`. */
static uint64_t key_at(const void *data, int32_t dtype, int64_t i) {
    switch (dtype) {
        case TP_FLOAT32:
            return ((const uint32_t *)data)[i] & KEYMASK_f32;
        case TP_FLOAT64:
            return ((const uint64_t *)data)[i] & KEYMASK_f64;
        case TP_BFLOAT16:
            return ((const uint16_t *)data)[i] & KEYMASK_bf16;
        default:
            return ((const uint16_t *)data)[i] & KEYMASK_f16;
    }
}

static uint64_t inf_key(int32_t dtype) {
    switch (dtype) {
        case TP_FLOAT32:
            return INFKEY_f32;
        case TP_FLOAT64:
            return INFKEY_f64;
        case TP_BFLOAT16:
            return INFKEY_bf16;
        default:
            return INFKEY_f16;
    }
}

/* The bits a key can have set (the sign bit is always clear). */
static int key_bits(int32_t dtype) {
    return dtype == TP_FLOAT32 ? 31 : dtype == TP_FLOAT64 ? 63 : 15; /* float16, bfloat16: 15 */
}

/* Element i becomes +0. */
static void set_zero(void *data, int32_t dtype, int64_t i) {
    switch (dtype) {
        case TP_FLOAT32:
            ((uint32_t *)data)[i] = 0;
            break;
        case TP_FLOAT64:
            ((uint64_t *)data)[i] = 0;
            break;
        default: /* float16, bfloat16 */
            ((uint16_t *)data)[i] = 0;
    }
}

/* Entry i of a mask: a bool byte, or bit i of packed bytes (the first the most significant). */
static void set_mask(uint8_t *mask, int packed, int64_t i, int keep) {
    if (!packed) {
        mask[i] = (uint8_t)(keep != 0);
    } else if (keep) {
        mask[i / 8] |= (uint8_t)(0x80u >> (i % 8));
    } else {
        mask[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
    }
}

/* ---- the whole-array selection: one array or a concatenation of segments ---------------- */

static int64_t count_keys_at_least(const tp_topk_segment *segs, int64_t count, int32_t dtype,
                                   uint64_t t) {
    int64_t c = 0;
    for (int64_t s = 0; s < count; s++)
        for (int64_t i = 0; i < segs[s].numel; i++) c += key_at(segs[s].data, dtype, i) >= t;
    return c;
}

int tp_topk_select_ref(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                       int32_t flags, uint64_t *threshold_key) {
    const int want_mask = !(flags & TP_TOPK_NO_MASK), packed = (flags & TP_TOPK_PACKED) != 0;
    const int zero = (flags & TP_TOPK_ZERO) != 0;
    for (int64_t s = 0; s < count; s++)
        for (int64_t i = 0; i < segments[s].numel; i++)
            if (key_at(segments[s].data, dtype, i) > inf_key(dtype)) return TP_ERR_NONFINITE;
    /* the threshold bit by bit from the top: the largest T with at least k keys >= T */
    uint64_t T = 0;
    if (k > 0)
        for (int bit = key_bits(dtype) - 1; bit >= 0; bit--) {
            uint64_t with_bit = T | (uint64_t)1 << bit;
            if (count_keys_at_least(segments, count, dtype, with_bit) >= k) T = with_bit;
        }
    *threshold_key = T;
    if (!want_mask && !zero) return TP_OK;
    /* of the keys equal to T, keep the first k - (keys above T) in index order */
    int64_t ties = k == 0 ? 0 : k - count_keys_at_least(segments, count, dtype, T + 1);
    for (int64_t s = 0; s < count; s++) {
        const tp_topk_segment *seg = &segments[s];
        if (want_mask && packed) memset(seg->mask, 0, (size_t)((seg->numel + 7) / 8));
        for (int64_t i = 0; i < seg->numel; i++) {
            uint64_t key = key_at(seg->data, dtype, i);
            int keep = 0;
            if (k > 0 && key > T) keep = 1;
            if (k > 0 && key == T && ties > 0) {
                keep = 1;
                ties--;
            }
            if (want_mask) set_mask((uint8_t *)seg->mask, packed, i, keep);
            if (zero && !keep) set_zero(seg->data, dtype, i);
        }
    }
    return TP_OK;
}

/* ---- per slice: slice (o, j) of (outer, len, inner) is elements o*len*inner + l*inner + j -- */

static int64_t slice_count_at_least(const void *data, int32_t dtype, int64_t first, int64_t len,
                                    int64_t inner, uint64_t t) {
    int64_t c = 0;
    for (int64_t l = 0; l < len; l++) c += key_at(data, dtype, first + l * inner) >= t;
    return c;
}

int tp_topk_rows_ref(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thresholds) {
    const int want_mask = !(flags & TP_TOPK_NO_MASK), packed = (flags & TP_TOPK_PACKED) != 0;
    const int zero = (flags & TP_TOPK_ZERO) != 0;
    const int64_t total = outer * len * inner;
    for (int64_t i = 0; i < total; i++)
        if (key_at(data, dtype, i) > inf_key(dtype)) return TP_ERR_NONFINITE;
    if (want_mask && packed) memset(mask, 0, (size_t)((total + 7) / 8));
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            const int64_t first = o * len * inner + j;
            uint64_t T = 0;
            if (k > 0)
                for (int bit = key_bits(dtype) - 1; bit >= 0; bit--) {
                    uint64_t with_bit = T | (uint64_t)1 << bit;
                    if (slice_count_at_least(data, dtype, first, len, inner, with_bit) >= k)
                        T = with_bit;
                }
            if (thresholds) thresholds[o * inner + j] = T;
            int64_t ties =
                k == 0 ? 0 : k - slice_count_at_least(data, dtype, first, len, inner, T + 1);
            for (int64_t l = 0; l < len; l++) {
                const int64_t i = first + l * inner;
                uint64_t key = key_at(data, dtype, i);
                int keep = 0;
                if (k > 0 && key > T) keep = 1;
                if (k > 0 && key == T && ties > 0) {
                    keep = 1;
                    ties--;
                }
                if (want_mask) set_mask((uint8_t *)mask, packed, i, keep);
                if (zero && !keep) set_zero(data, dtype, i);
            }
        }
    }
    return TP_OK;
}

/* ---- N:M: in each group of m along the middle axis, keep the n largest ------------------- */

int tp_nm_mask_ref(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask) {
    const int64_t total = outer * len * inner;
    for (int64_t i = 0; i < total; i++)
        if (key_at(data, dtype, i) > inf_key(dtype)) return TP_ERR_NONFINITE;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t g = 0; g < len; g += m)
            for (int64_t j = 0; j < inner; j++)
                for (int32_t a = 0; a < m; a++) {
                    const int64_t ia = o * len * inner + (g + a) * inner + j;
                    uint64_t ka = key_at(data, dtype, ia);
                    /* element a's rank: the others that beat it (larger, or equal and before) */
                    int32_t rank = 0;
                    for (int32_t b = 0; b < m; b++) {
                        uint64_t kb = key_at(data, dtype, o * len * inner + (g + b) * inner + j);
                        if (kb > ka || (kb == ka && b < a)) rank++;
                    }
                    mask[ia] = rank < n;
                }
    return TP_OK;
}
