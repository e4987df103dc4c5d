/*
 * planes.h: the byte-plane split and merge as always-inline bodies, compiled per ISA by
 * variants.c. Each element width is its own loop on its own unsigned type (a rotate, then one
 * shift and narrowing store per plane), which GCC vectorizes: vpmovwb / vpmovdb / vpmovqb with
 * AVX-512BW, packs with AVX2.
 */
#ifndef TP_FLOATCODEC_PLANES_H
#define TP_FLOATCODEC_PLANES_H

#include "floatcodec_internal.h"

#define PLANES_SPLIT_LOOP(T, BITS)                                                     \
    do {                                                                               \
        const T *TP_RESTRICT s = (const T *)src;                                       \
        for (int64_t i = 0; i < n; i++) {                                              \
            T r = (T)((T)(s[i] << 1) | (T)(s[i] >> (BITS - 1)));                       \
            for (int p = 0; p < BITS / 8; p++) dst[p * n + i] = (uint8_t)(r >> (8 * p)); \
        }                                                                              \
    } while (0)

/* (the plane pointers copied to locals first: otherwise each store to d could, for GCC, change
 * src[p], and the loop would reload them and stay scalar) */
#define PLANES_MERGE_LOOP(T, BITS)                                                     \
    do {                                                                               \
        T *TP_RESTRICT d = (T *)dst;                                                   \
        const uint8_t *plane[BITS / 8];                                                \
        for (int p = 0; p < BITS / 8; p++) plane[p] = src[p];                          \
        for (int64_t i = 0; i < n; i++) {                                              \
            T r = 0;                                                                   \
            for (int p = 0; p < BITS / 8; p++) r |= (T)plane[p][i] << (8 * p);         \
            d[i] = (T)((T)(r >> 1) | (T)(r << (BITS - 1)));                            \
        }                                                                              \
    } while (0)

TP_ALWAYS_INLINE void split_body(const void *TP_RESTRICT src, int64_t n, int planes,
                                 uint8_t *TP_RESTRICT dst) {
    switch (planes) {
        case 2: PLANES_SPLIT_LOOP(uint16_t, 16); break;
        case 4: PLANES_SPLIT_LOOP(uint32_t, 32); break;
        default: PLANES_SPLIT_LOOP(uint64_t, 64); break;
    }
}

TP_ALWAYS_INLINE void merge_body(const uint8_t *const *src, int64_t n, int planes,
                                 void *TP_RESTRICT dst) {
    switch (planes) {
        case 2: PLANES_MERGE_LOOP(uint16_t, 16); break;
        case 4: PLANES_MERGE_LOOP(uint32_t, 32); break;
        default: PLANES_MERGE_LOOP(uint64_t, 64); break;
    }
}

#endif /* TP_FLOATCODEC_PLANES_H */
