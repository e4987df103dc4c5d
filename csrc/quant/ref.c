/*
 * ref.c: the scalar references of tp_quantize_int8 and tp_dequantize_int8 (the TP_ISA_SCALAR
 * slots of the dispatch tables, so isa="scalar" runs them).
 *
 * Written for clarity: group by group (a channel, a block of a row, or the whole tensor), one
 * element at a time, the documented formulas read top to bottom, float comparisons and libm
 * rounding; no SIMD, no threads, no integer tricks. The tests hold every other variant to them
 * bit for bit.
 */
#include "quant_internal.h"

/* IEEE half -> float32, exactly: sign, 5-bit exponent (bias 15), 10-bit mantissa. */
static float half_to_float(uint16_t h) {
    int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    float magnitude;
    if (exponent == 0) magnitude = ldexpf((float)mantissa, -24); /* zero or subnormal */
    else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
    else magnitude = ldexpf((float)(1024 + mantissa), exponent - 25);
    return (h & 0x8000) ? -magnitude : magnitude;
}

/* bfloat16 -> float32, exactly: its 16 bits are the upper half of the float32's. */
static float bfloat16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Element i of x as float32 (a float64 beyond float32's range becomes an infinity). */
static float element(const void *x, int32_t dtype, int64_t i) {
    if (dtype == TP_FLOAT32) return ((const float *)x)[i];
    if (dtype == TP_FLOAT64) return (float)((const double *)x)[i];
    if (dtype == TP_BFLOAT16) return bfloat16_to_float(((const uint16_t *)x)[i]);
    return half_to_float(((const uint16_t *)x)[i]);
}

/* Group g's elements are the indices group_index(L, g, k) for k < group_size(L, g). Per channel
 * (block 0) x is [outer][channels][inner] and group g is channel g; per block, x is
 * [outer][inner] and group g is block g % channels of row g / channels. */
static int64_t group_size(const qz_layout *L, int64_t g) {
    if (L->block == 0) return L->outer * L->inner;
    int64_t start = (g % L->channels) * L->block;
    return L->inner - start < L->block ? L->inner - start : L->block;
}

static int64_t group_index(const qz_layout *L, int64_t g, int64_t k) {
    if (L->block == 0) return ((k / L->inner) * L->channels + g) * L->inner + k % L->inner;
    return (g / L->channels) * L->inner + (g % L->channels) * L->block + k;
}

/* Symmetric: scale = absmax / 127; an all-zero group gets 1; a scale below FLT_MIN (whose
 * reciprocal would overflow) gets FLT_MIN. */
static float symmetric_scale(float absmax) {
    if (absmax == 0.0f) return 1.0f;
    float scale = absmax / 127.0f;
    return scale < FLT_MIN ? FLT_MIN : scale;
}

/* Affine, torch's observer: min_neg = min(min, 0) and max_pos = max(max, 0) (the caller's
 * running min and max start at 0), scale = (max_pos - min_neg) / 255 in float32 (in double
 * when the range overflows float32), zero_point = clamp(-128 - round(min_neg / scale)). */
static float affine_scale(float min_neg, float max_pos) {
    float range = max_pos - min_neg;
    float scale = isfinite(range) ? range / 255.0f : (float)(((double)max_pos - (double)min_neg) / 255.0);
    if (scale == 0.0f) return 1.0f;
    return scale < FLT_MIN ? FLT_MIN : scale;
}

static int32_t affine_zero_point(float min_neg, float scale) {
    float z = -128.0f - nearbyintf(min_neg / scale);
    if (z < -128.0f) z = -128.0f;
    if (z > 127.0f) z = 127.0f;
    return (int32_t)z;
}

/* q = clamp(round_half_even(v * inv) + zero_point, qmin, 127); nearbyintf rounds half to even
 * in the default rounding mode. */
static int8_t quantize_one(float v, float inv, int32_t zero_point, int32_t qmin) {
    float r = nearbyintf(v * inv) + (float)zero_point;
    if (r < (float)qmin) r = (float)qmin;
    if (r > 127.0f) r = 127.0f;
    return (int8_t)r;
}

int quantize_int8_ref(const qz_call *c) {
    const qz_layout *L = &c->L;
    for (int64_t g = 0; g < L->groups; g++) {
        const int64_t size = group_size(L, g);
        for (int64_t k = 0; k < size; k++)
            if (!isfinite(element(c->x, c->dtype, group_index(L, g, k)))) return 1;
        float scale;
        int32_t zero_point = 0, qmin = -128;
        if (c->mode == TP_QUANT_GIVEN) {
            scale = c->scale[g];
            if (c->zero_point) zero_point = c->zero_point[g];
        } else if (c->mode == TP_QUANT_SYMMETRIC) {
            float absmax = 0.0f;
            for (int64_t k = 0; k < size; k++) {
                float v = fabsf(element(c->x, c->dtype, group_index(L, g, k)));
                if (v > absmax) absmax = v;
            }
            scale = symmetric_scale(absmax);
            qmin = -127;
            c->scale[g] = scale;
        } else {
            float min_neg = 0.0f, max_pos = 0.0f;
            for (int64_t k = 0; k < size; k++) {
                float v = element(c->x, c->dtype, group_index(L, g, k));
                if (v < min_neg) min_neg = v;
                if (v > max_pos) max_pos = v;
            }
            scale = affine_scale(min_neg, max_pos);
            zero_point = affine_zero_point(min_neg, scale);
            c->scale[g] = scale;
            c->zero_point[g] = (int8_t)zero_point;
        }
        const float inv = 1.0f / scale;
        for (int64_t k = 0; k < size; k++) {
            int64_t i = group_index(L, g, k);
            c->q[i] = quantize_one(element(c->x, c->dtype, i), inv, zero_point, qmin);
        }
    }
    return 0;
}

/* float32 -> bfloat16, round to nearest even: keep the upper 16 bits, rounded by what the
 * lower 16 hold (above half: up; exactly half: up when the kept part is odd). A NaN becomes
 * the quiet NaN 0x7fc0 with its sign. */
static uint16_t float_to_bfloat16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f)) return (uint16_t)(((bits >> 16) & 0x8000u) | 0x7fc0u);
    uint32_t upper = bits >> 16, lower = bits & 0xffffu;
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) upper += 1; /* may carry to Inf */
    return (uint16_t)upper;
}

/* float32 -> IEEE half, round to nearest even: halves are multiples of 2^-24 below 2^-14
 * (subnormal) and have 11 significant bits above; 65520 and more round to Inf. A NaN keeps
 * its sign and top 10 payload bits and is quieted. */
static uint16_t float_to_half(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    float a = fabsf(f);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00u | ((bits >> 13) & 0x3ffu));
    if (a >= 65520.0f) return (uint16_t)(sign | 0x7c00u);
    if (a < 0x1p-14f) return (uint16_t)(sign | (uint16_t)nearbyintf(a * 0x1p24f)); /* exact scaling */
    int e;
    frexpf(a, &e);                                        /* a in [2^(e-1), 2^e) */
    int m = (int)nearbyintf(ldexpf(a, 11 - e));           /* 1024..2048: 2048 carries below */
    return (uint16_t)(sign | (((e + 14) << 10) + (m - 1024)));
}

/* out = float32(q - zero_point) * scale, stored as out_dtype */
void dequantize_int8_ref(const dq_call *c) {
    const qz_layout *L = &c->L;
    for (int64_t g = 0; g < L->groups; g++) {
        const int32_t zero_point = c->zero_point ? c->zero_point[g] : 0;
        for (int64_t k = 0; k < group_size(L, g); k++) {
            int64_t i = group_index(L, g, k);
            float v = (float)((int32_t)c->q[i] - zero_point) * c->scale[g];
            if (c->out_dtype == TP_FLOAT32) ((float *)c->out)[i] = v;
            else if (c->out_dtype == TP_BFLOAT16) ((uint16_t *)c->out)[i] = float_to_bfloat16(v);
            else ((uint16_t *)c->out)[i] = float_to_half(v);
        }
    }
}
