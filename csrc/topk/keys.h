/*
 * keys.h: the magnitude keys every top-k file works on, and small helpers over them.
 *
 * Clearing the sign bit of an IEEE float and reading the rest as an unsigned integer orders
 * magnitudes exactly (subnormals below normals, +0 and -0 both 0, Inf above every finite
 * value, NaN above Inf: that is how NaN is detected). float16 and bfloat16 keys are held in
 * 32-bit integers (their sums and histogram indices then never wrap). bfloat16 is the upper half
 * of a float32, so its keys order exactly as the float32 keys of the same values do.
 */
#ifndef TP_TOPK_KEYS_H
#define TP_TOPK_KEYS_H

#include <string.h>
#include "common.h"

/* Sign-clearing masks and Inf's key per element type. */
#define KEYMASK_f16 0x7fffu
#define KEYMASK_bf16 0x7fffu
#define KEYMASK_f32 0x7fffffffu
#define KEYMASK_f64 0x7fffffffffffffffULL
#define INFKEY_f16 0x7c00u
#define INFKEY_bf16 0x7f80u
#define INFKEY_f32 0x7f800000u
#define INFKEY_f64 0x7ff0000000000000ULL

/* The digits of each key type: level L looks at bits [shift, shift + bits). Each level's shift
 * is the next one's shift + bits, so the prefix known so far is key >> (shift + bits). */
typedef struct {
    int levels;
    int shift[5];
    int bits[5];
} topk_levels;
static const topk_levels LEVELS_f16 = {2, {4, 0}, {11, 4}};
static const topk_levels LEVELS_bf16 = {2, {4, 0}, {11, 4}}; /* 15-bit keys too: f16's digits */
static const topk_levels LEVELS_f32 = {3, {19, 8, 0}, {12, 11, 8}};
static const topk_levels LEVELS_f64 = {5, {48, 36, 24, 12, 0}, {15, 12, 12, 12, 12}};

TP_ALWAYS_INLINE const topk_levels *levels_of(int32_t dtype) {
    return dtype == TP_FLOAT32    ? &LEVELS_f32
           : dtype == TP_FLOAT64  ? &LEVELS_f64
           : dtype == TP_BFLOAT16 ? &LEVELS_bf16
                                  : &LEVELS_f16;
}

TP_ALWAYS_INLINE int valid_dtype(int32_t dtype) {
    return dtype == TP_FLOAT32 || dtype == TP_FLOAT64 || dtype == TP_FLOAT16 ||
           dtype == TP_BFLOAT16;
}

/* 8 bools (0/1 bytes) -> one np.packbits byte, first bool in the most significant bit. */
TP_ALWAYS_INLINE uint8_t pack8(const uint8_t *b) {
    uint64_t v;
    memcpy(&v, b, 8);
    return (uint8_t)((v * 0x8040201008040201ULL) >> 56);
}

TP_ALWAYS_INLINE void pack_bools(uint8_t *out, const uint8_t *m, int64_t len) {
    int64_t full = len / 8;
    for (int64_t t = 0; t < full; t++) out[t] = pack8(m + 8 * t);
    if (len % 8) {
        uint8_t tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(tail, m + 8 * full, (size_t)(len % 8));
        out[full] = pack8(tail);
    }
}

TP_ALWAYS_INLINE int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* An offset in [0, range) for draw j: frac(j * golden ratio) * range, a low-discrepancy
 * sequence (one multiply, no division), so sample positions never line up with a period of
 * the data. */
TP_ALWAYS_INLINE int64_t jitter(uint64_t j, int64_t range) {
    uint32_t frac = (uint32_t)(j * 2654435769u); /* 2^32 / golden ratio */
    return (int64_t)(((uint64_t)frac * (uint64_t)range) >> 32);
}

#endif /* TP_TOPK_KEYS_H */
