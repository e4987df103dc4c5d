/*
 * ref.c: the scalar references of the plane split and merge (docs/float_codec.md section 4),
 * as the spec reads: element i's bits b (an unsigned integer of 8 * planes bits, in the host's
 * byte order in memory), r = b rotated left by one bit, byte p of r (p = 0 least significant)
 * to plane p.
 */
#include "floatcodec_internal.h"

static uint64_t load_bits(const uint8_t *e, int planes) {
    if (planes == 2) { uint16_t v; memcpy(&v, e, 2); return v; }
    if (planes == 4) { uint32_t v; memcpy(&v, e, 4); return v; }
    uint64_t v;
    memcpy(&v, e, 8);
    return v;
}

static void store_bits(uint8_t *e, int planes, uint64_t b) {
    if (planes == 2) { uint16_t v = (uint16_t)b; memcpy(e, &v, 2); }
    else if (planes == 4) { uint32_t v = (uint32_t)b; memcpy(e, &v, 4); }
    else memcpy(e, &b, 8);
}

TP_NO_VECTORIZE void float_split_ref(const void *src, int64_t n, int planes, uint8_t *dst) {
    const int bits = 8 * planes;
    const uint64_t mask = bits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t b = load_bits((const uint8_t *)src + i * planes, planes);
        uint64_t r = ((b << 1) | (b >> (bits - 1))) & mask;
        for (int p = 0; p < planes; p++) dst[p * n + i] = (uint8_t)(r >> (8 * p));
    }
}

TP_NO_VECTORIZE void float_merge_ref(const uint8_t *const *src, int64_t n, int planes, void *dst) {
    const int bits = 8 * planes;
    const uint64_t mask = bits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = 0;
        for (int p = 0; p < planes; p++) r |= (uint64_t)src[p][i] << (8 * p);
        store_bits((uint8_t *)dst + i * planes, planes, ((r >> 1) | (r << (bits - 1))) & mask);
    }
}
