/*
 * half.h: float32 <-> bfloat16 / IEEE half conversions and stochastic rounding, as scalar
 * inline functions written in integer and float operations that the compiler vectorizes on
 * any x86-64 target (no F16C or AVX512-BF16 needed, and no instruction whose corner cases
 * differ: AVX512-BF16's vcvtneps2bf16 flushes subnormals). Shared by the families that read
 * or write half-precision data (quant, adam); never seen by cffi.
 *
 * Half-precision values travel as their uint16 bits.
 */
#ifndef TP_HALF_H
#define TP_HALF_H

#include <stdint.h>
#include <string.h>
#include "common.h"

TP_ALWAYS_INLINE uint32_t tp_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

TP_ALWAYS_INLINE float tp_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* IEEE half bits -> float, exact: shift exponent and mantissa into float position and rescale
 * by 2^(127-15); subnormal halves become normal floats through the same multiply; Inf / NaN
 * get the all-ones exponent. */
TP_ALWAYS_INLINE float tp_f16_to_f32(uint16_t h) {
    uint32_t em = h & 0x7fffu;
    uint32_t b = tp_bits(tp_float(em << 13) * 0x1p112f);
    b = em >= 0x7c00u ? (b | 0x7f800000u) : b;
    return tp_float(b | ((uint32_t)(h & 0x8000u) << 16));
}

/* bfloat16 bits -> float, exact: bfloat16 is the upper half of a float32. */
TP_ALWAYS_INLINE float tp_bf16_to_f32(uint16_t h) { return tp_float((uint32_t)h << 16); }

/* c ? a : b for a condition c of 0 or 1, in bit operations. The half conversions pick among
 * paths with these rather than with ?: because GCC sinks a float operation used on one side
 * only into a branch, and then (under -ftrapping-math) will not if-convert it: the loop stays
 * scalar. */
TP_ALWAYS_INLINE uint32_t tp_pick(uint32_t c, uint32_t a, uint32_t b) {
    uint32_t mask = 0u - c;
    return (a & mask) | (b & ~mask);
}

/* float32 -> bfloat16 bits, rounded to nearest even: add 0x7fff plus the lowest kept bit, then
 * drop the low half. A NaN becomes the quiet NaN 0x7fc0 with its sign (ml_dtypes' choice). */
TP_ALWAYS_INLINE uint16_t tp_f32_to_bf16(float f) {
    uint32_t b = tp_bits(f);
    uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    uint32_t nan = ((b >> 16) & 0x8000u) | 0x7fc0u;
    return (uint16_t)((b & 0x7fffffffu) > 0x7f800000u ? nan : r);
}

/* float32 -> IEEE half bits, rounded to nearest even (F16C's vcvtps2ph gives the same bits).
 * Every path is computed and one picked:
 *  - |f| >= 2^16: Inf (a NaN keeps its sign and top payload bits, quieted, as F16C does);
 *  - 2^-14 <= |f| < 2^16: rebias the exponent, round at bit 13 (a carry into the exponent is
 *    the right result, up to Inf for |f| >= 65520);
 *  - |f| < 2^-14: subnormal or zero: adding 0.5 puts the 10 mantissa bits at the bottom of the
 *    float, and the float add rounds them to nearest even. */
TP_ALWAYS_INLINE uint16_t tp_f32_to_f16(float f) {
    uint32_t b = tp_bits(f), sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    uint32_t normal = (a + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    uint32_t sub = tp_bits(tp_float(a) + 0.5f) - 0x3f000000u;
    uint32_t big = a > 0x7f800000u ? (0x7e00u | ((a >> 13) & 0x3ffu)) : 0x7c00u;
    uint32_t h = tp_pick(a >= 0x47800000u, big, tp_pick(a < 0x38800000u, sub, normal));
    return (uint16_t)(sign | h);
}

/* ---- stochastic rounding (docs/mixed_precision.md specifies it for other implementations) --
 * A value between two representable neighbours rounds away from zero with probability equal
 * to its distance from the one toward zero, in units of their gap, so the rounding is unbiased
 * in expectation: updates far below half an ulp still move a half-precision weight on
 * average. The random bits come from a counter-based generator: a pure function of
 * (seed, step, tensor index, element index), so every backend, ISA and thread count gives the
 * same bits. */

/* splitmix64's finalizer: a bijection of 64-bit words that mixes every input bit into every
 * output bit; the per-tensor key is made with it once per call. */
static inline uint64_t tp_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The key of the elements [hi * 2^32, (hi + 1) * 2^32) of one tensor at one step. */
static inline uint64_t tp_sr_key(uint64_t seed, uint64_t step, uint64_t tensor, uint64_t hi) {
    return tp_mix64(tp_mix64(tp_mix64(tp_mix64(seed) ^ step) ^ tensor) ^ hi);
}

/* A 32-bit bijection (two multiply-xorshift rounds, constants from Wellons' hash-prospector),
 * in 32-bit lanes so it vectorizes on AVX2 (vpmulld). */
TP_ALWAYS_INLINE uint32_t tp_hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x21f0aaadu;
    x ^= x >> 15;
    x *= 0x735a2d97u;
    x ^= x >> 15;
    return x;
}

/* The 32 random bits of element `lo` (the low 32 bits of its index) under `key`. For a fixed
 * key this is a bijection of the counter, so the bits of 2^32 consecutive elements are each
 * 32-bit value once. */
TP_ALWAYS_INLINE uint32_t tp_sr_bits(uint64_t key, uint32_t lo) {
    return tp_hash32(tp_hash32(lo ^ (uint32_t)key) + (uint32_t)(key >> 32));
}

/* float32 -> bfloat16, rounded stochastically with the random bits r: the 16 dropped bits are
 * exactly the distance to the value toward zero (bfloat16 shares float32's exponent range, so
 * this holds for subnormals too), and adding 16 uniform bits carries into the kept half with
 * that probability. A carry out of the largest finite value gives Inf, as a carry of round to
 * nearest does. NaN rounds as tp_f32_to_bf16. */
TP_ALWAYS_INLINE uint16_t tp_f32_to_bf16_sr(float f, uint32_t r) {
    uint32_t b = tp_bits(f);
    uint32_t nan = ((b >> 16) & 0x8000u) | 0x7fc0u;
    return (uint16_t)((b & 0x7fffffffu) > 0x7f800000u ? nan : (b + (r >> 16)) >> 16);
}

/* float32 -> IEEE half, rounded stochastically with the random bits r:
 *  - 2^-14 <= |f|: 13 bits are dropped; adding 13 uniform bits to the magnitude carries into
 *    the kept bits with the right probability; at or beyond 65536 the result is Inf;
 *  - |f| < 2^-14: the half grid is the multiples of 2^-24: y = |f| * 2^24 (exact) splits into
 *    its integer part n (the half's bits) and fraction (exact); n + 1 is taken when 24 uniform
 *    bits, as a fraction, lie below it. Exact for |f| >= 2^-24; below, the probability is
 *    rounded up to a multiple of 2^-24 (a bias under 2^-24 of the gap);
 *  - NaN rounds as tp_f32_to_f16.
 * The float compare is made on the bit patterns of two non-negative floats (same order), an
 * integer compare the vectorizer if-converts. */
TP_ALWAYS_INLINE uint16_t tp_f32_to_f16_sr(float f, uint32_t r) {
    uint32_t b = tp_bits(f), sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    uint32_t carried = a + (r >> 19);
    uint32_t normal = tp_pick(carried >= 0x47800000u, 0x7c00u, (carried >> 13) - ((uint32_t)(127 - 15) << 10));
    float y = tp_float(tp_pick(a < 0x38800000u, a, 0u)) * 0x1p24f;
    int32_t n = (int32_t)y;
    float fraction = y - (float)n;
    float u = (float)(int32_t)(r >> 8) * 0x1p-24f;
    uint32_t sub = (uint32_t)n + (tp_bits(u) < tp_bits(fraction));
    uint32_t nan = tp_f32_to_f16(f) & 0x7fffu;
    uint32_t h = tp_pick(a > 0x7f800000u, nan, tp_pick(a < 0x38800000u, sub, normal));
    return (uint16_t)(sign | h);
}

#endif /* TP_HALF_H */
