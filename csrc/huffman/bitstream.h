/*
 * bitstream.h: little-endian loads/stores and the LSB-first bit writer and reader of the Huffman
 * coder. Internal: never seen by cffi.
 *
 * Bit order: the first code of a stream sits in the lowest bits of its first byte (as in
 * deflate). Canonical codes are defined MSB-first, so each code is stored bit-reversed; then a
 * reader looks up the next symbol with `table[buf & mask]` and drops it with `buf >>= len`.
 */
#ifndef TP_BITSTREAM_H
#define TP_BITSTREAM_H

#include <stdint.h>
#include <string.h>
#include "common.h"

/* memcpy compiles to one unaligned load/store; the format is little-endian on every host. */
TP_ALWAYS_INLINE uint64_t tp_load64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

TP_ALWAYS_INLINE uint32_t tp_load32le(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

TP_ALWAYS_INLINE void tp_store64le(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

TP_ALWAYS_INLINE void tp_store32le(uint8_t *p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

/* ---- bit writer ------------------------------------------------------------------------- */
/* `n` bits (n < 64) are pending in `buf`. put() appends up to 64 - n bits; flush8() stores 8
 * bytes unconditionally (the caller guarantees 8 writable bytes at p) and advances over the
 * whole bytes, keeping the 0..7 leftover bits. */
typedef struct {
    uint64_t buf;
    unsigned n;
    uint8_t *p;
} tp_bitwriter;

TP_ALWAYS_INLINE void tp_bw_put(tp_bitwriter *w, uint32_t code, unsigned len) {
    w->buf |= (uint64_t)code << w->n;
    w->n += len;
}

TP_ALWAYS_INLINE void tp_bw_flush8(tp_bitwriter *w) {
    tp_store64le(w->p, w->buf);
    w->p += w->n >> 3;
    w->buf >>= w->n & ~7u;
    w->n &= 7;
}

/* Byte-wise flush that never writes past the last whole byte (used near a buffer's end). */
TP_ALWAYS_INLINE void tp_bw_flush_safe(tp_bitwriter *w) {
    while (w->n >= 8) {
        *w->p++ = (uint8_t)w->buf;
        w->buf >>= 8;
        w->n -= 8;
    }
}

/* The final partial byte (zero-padded). */
TP_ALWAYS_INLINE void tp_bw_finish(tp_bitwriter *w) {
    tp_bw_flush_safe(w);
    if (w->n) {
        *w->p++ = (uint8_t)w->buf;
        w->buf = 0;
        w->n = 0;
    }
}

/* ---- bit reader ------------------------------------------------------------------------- */
/* Bits [0, n) of `buf` are loaded and not yet consumed; bits above n are either zero or the
 * true next bits of the stream (so OR-ing them in again is harmless); p is the first byte not
 * fully counted in n. */
typedef struct {
    uint64_t buf;
    unsigned n;
    const uint8_t *p;
} tp_bitreader;

/* Branch-free refill to >= 56 bits (F. Giesen's "variant 4"): reads p[0..7], so the caller
 * guarantees p + 8 <= end of the stream. Advances p by at most 7. */
TP_ALWAYS_INLINE void tp_br_refill_fast(tp_bitreader *r) {
    r->buf |= tp_load64le(r->p) << r->n;
    r->p += (63 - r->n) >> 3;
    r->n |= 56;
}

/* Byte-wise refill that never reads at or past `end`. */
TP_ALWAYS_INLINE void tp_br_refill_safe(tp_bitreader *r, const uint8_t *end) {
    while (r->n <= 56 && r->p < end) {
        r->buf |= (uint64_t)*r->p++ << r->n;
        r->n += 8;
    }
}

#endif /* TP_BITSTREAM_H */
