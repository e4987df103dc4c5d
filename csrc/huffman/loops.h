/*
 * loops.h: the portable hot loops of the fast block coders, as always-inline bodies that
 * variants.c compiles into the baseline wrappers (and x86_*.c reuses where its own loops
 * start or end). One concern each: the planning pass (histograms + CRC), the four-stream
 * writer, the four-stream reader.
 *
 * Symbol i of a block belongs to stream i % 4, so stream k holds (len + 3 - k) / 4 symbols, a
 * 16-byte stripe of the block holds 4 symbols of each stream, and one decoding round of all
 * four streams (5 symbols each) fills 20 consecutive output bytes.
 */
#ifndef TP_HUFFMAN_LOOPS_H
#define TP_HUFFMAN_LOOPS_H

#include "huffman_internal.h"

/* ---- phase A: histograms (+ CRC) ----------------------------------------------------------
 * The four streams' histograms (symbol i counts in table i % 4, which also keeps a run of one
 * symbol from waiting on its own increments), from two 8-byte loads per 16-byte stripe (twice
 * as fast on Zen 1 as four 4-byte loads: the byte extraction was the bottleneck, not the
 * counting). The block's CRC-32 rides on the same loads: with the tables here, with PCLMULQDQ
 * in huff_scan_x86 (nearly free: the counting is bound by its one store per byte). */

/* The 16 bytes a (first 8) and b (last 8) of a stripe: byte j counts in c[j % 4]. */
TP_ALWAYS_INLINE void count_stripe(uint32_t (*TP_RESTRICT c)[256], uint64_t a, uint64_t b) {
    for (int j = 0; j < 8; j++) c[j & 3][(a >> (8 * j)) & 255]++;
    for (int j = 0; j < 8; j++) c[j & 3][(b >> (8 * j)) & 255]++;
}

/* The bytes past the last whole stripe. */
TP_ALWAYS_INLINE void count_tail(const uint8_t *TP_RESTRICT src, int64_t from, int64_t len,
                                 uint32_t (*TP_RESTRICT c)[256]) {
    for (int64_t i = from; i < len; i++) c[i & 3][src[i]]++;
}

/* Counts into c; returns the CRC-32 of src when with_crc (a constant in each instance). */
TP_ALWAYS_INLINE uint32_t scan_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                    uint32_t (*TP_RESTRICT c)[256], const int with_crc) {
    uint32_t crc = 0xFFFFFFFFu; /* the raw register */
    const int64_t stripes = len / 16;
    for (int64_t t = 0; t < stripes; t++) {
        uint64_t a = tp_load64le(src + 16 * t), b = tp_load64le(src + 16 * t + 8);
        if (with_crc) crc = huff_crc32_step8(huff_crc32_step8(crc, a), b);
        count_stripe(c, a, b);
    }
    count_tail(src, 16 * stripes, len, c);
    if (!with_crc) return 0;
    return huff_crc32_slice8(~crc, src + 16 * stripes, (size_t)(len - 16 * stripes));
}

/* ---- phase B: the four-stream writer --------------------------------------------------------
 * The encoder's table, as in zstd's huff0: entry = code << (64 - len) | len, the bit-reversed
 * code left-aligned in 64 bits with its length in the low byte. A stream's container c then
 * holds its pending bits in its top n bits (the newest code highest) and takes a code with
 *     c = (c >> len) | entry;   n += entry;
 * (the shift uses the low 6 bits of the entry, the length; the length byte OR-ed into c's
 * bottom stays below the pending bits, which never exceed 7 + 4 * 11 = 51 < 56; n's low byte is
 * the pending count and the code bits added above it are ignored). A flush writes the pending
 * bits c >> (64 - n) as 8 little-endian bytes, advances over the whole bytes and keeps the
 * 0..7 newest bits at the top: three ALU operations per symbol and one table load. */
TP_ALWAYS_INLINE void enc_put(uint64_t *c, uint64_t *n, uint64_t entry) {
    *c = (*c >> (entry & 63)) | entry;
    *n += entry;
}

/* n >= 4 here (four codes of >= 1 bit since the last flush), so the shift is < 64. */
TP_ALWAYS_INLINE void enc_flush(uint64_t c, uint64_t *n, uint8_t **p) {
    unsigned bits = (uint8_t)*n;
    tp_store64le(*p, c >> (64 - bits));
    *p += bits >> 3;
    *n = bits & 7;
}

/* The last symbols of `count` streams (k0 .. k0 + count - 1), from source byte i on, whose
 * pending bits are the top n[k] & 255 bits of c[k]: plain LSB-first writers that store whole
 * bytes only; each stream must end exactly at end[k0 + k] (the sizes come from the same
 * counts). A symbol without a code or a stream that does not end there is a bug: never silent. */
TP_ALWAYS_INLINE int enc_tail(const uint8_t *src, int64_t len, const uint64_t *etab, int64_t i,
                              int k0, int count, const uint64_t *c, const uint64_t *n,
                              uint8_t *const *p, uint8_t *const *end) {
    tp_bitwriter w[4];
    for (int k = 0; k < count; k++) {
        unsigned bits = (uint8_t)n[k];
        w[k].buf = bits ? c[k] >> (64 - bits) : 0;
        w[k].n = bits;
        w[k].p = p[k];
    }
    for (; i < len; i++) {
        int k = (int)(i & 3) - k0;
        if (k < 0 || k >= count) continue;
        uint64_t e = etab[src[i]];
        unsigned l = (unsigned)(e & 255);
        if (l == 0) return TP_ERR_ARGUMENT;
        tp_bw_put(&w[k], (uint32_t)(e >> (64 - l)), l);
        if (w[k].p + (w[k].n >> 3) > end[k0 + k]) return TP_ERR_ARGUMENT;
        tp_bw_flush_safe(&w[k]);
    }
    for (int k = 0; k < count; k++) {
        if (w[k].p + ((w[k].n + 7) >> 3) != end[k0 + k]) return TP_ERR_ARGUMENT;
        tp_bw_finish(&w[k]);
    }
    return TP_OK;
}

/* Rounds that keep every store inside a stream whose pointer is p and end is end: a flush
 * stores 8 bytes and advances <= 6. */
TP_ALWAYS_INLINE int64_t enc_safe_rounds(const uint8_t *p, const uint8_t *end, int64_t rounds) {
    int64_t room = end - p - 8;
    int64_t safe = room < 0 ? 0 : room / 6 + 1;
    return safe < rounds ? safe : rounds;
}

/* Streams k0 and k0 + 1 of a block, written in place into [begin[k], end[k]) (their exact
 * sizes are known from phase A). Two streams per pass: twelve state registers for all four
 * would not fit x86-64's sixteen, and the spills cost more than a second pass over the block
 * (in L2). Each round takes 16 source bytes (4 symbols per stream, <= 44 bits) and flushes each
 * stream once; how many rounds keep every store inside its stream is computed once per batch,
 * and the last symbols are written byte-wise. Nothing is ever written outside the two ranges
 * (another thread may write the next block). */
TP_ALWAYS_INLINE int encode2_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                  const uint64_t *TP_RESTRICT etab, uint8_t *const *begin,
                                  uint8_t *const *end, int k0) {
    uint8_t *p[2] = {begin[k0], begin[k0 + 1]};
    uint64_t ca = 0, cb = 0, na = 0, nb = 0;
    int64_t i = 0;
    for (;;) {
        int64_t rounds = enc_safe_rounds(p[0], end[k0], (len - i) / 16);
        rounds = enc_safe_rounds(p[1], end[k0 + 1], rounds);
        if (rounds <= 0) break;
        const uint8_t *x = src + i + k0;
        uint8_t *pa = p[0], *pb = p[1];
        i += 16 * rounds;
        for (; rounds; rounds--, x += 16) {
            for (int j = 0; j < 16; j += 4) {
                enc_put(&ca, &na, etab[x[j]]);
                enc_put(&cb, &nb, etab[x[j + 1]]);
            }
            enc_flush(ca, &na, &pa);
            enc_flush(cb, &nb, &pb);
        }
        p[0] = pa, p[1] = pb;
    }
    const uint64_t c[2] = {ca, cb}, n[2] = {na, nb};
    return enc_tail(src, len, etab, i + k0, k0, 2, c, n, p, end);
}

TP_ALWAYS_INLINE int encode4_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                  const uint64_t *TP_RESTRICT etab, uint8_t *const *begin,
                                  uint8_t *const *end) {
    int status = encode2_body(src, len, etab, begin, end, 0);
    return status != TP_OK ? status : encode2_body(src, len, etab, begin, end, 2);
}

/* ---- the four-stream reader -----------------------------------------------------------------
 * Decoding table entries are `length | symbol << 8` (huff_decode_block builds them): a shift by
 * the whole entry shifts by the length (x86 takes shift counts modulo 64, and the `& 63` below
 * compiles to nothing), so consuming a code needs no unpacking.
 *
 * The four readers of a block. Reader k (F. Giesen's "variant 4" refill): b[k] holds the
 * stream's next bits, of which the low 6 bits of n[k] count the valid ones (subtracting whole
 * table entries leaves their symbol bits above); q[k] is the first byte not yet counted. A
 * refill ORs in the 8 bytes at q (bits above n are zero or the stream's true next bits, so
 * OR-ing them again is harmless), advances q over the whole bytes taken and leaves 56..63
 * valid bits: enough for 5 codes of <= 11 bits. The load's address was known a round
 * earlier, so a refill adds only a shift and an OR to each reader's chain of lookups. */
typedef struct {
    uint64_t b[4], n[4];
    const uint8_t *q[4];
} huff_readers;

TP_ALWAYS_INLINE void dec_refill(uint64_t *b, uint64_t *n, const uint8_t **q) {
    *b |= tp_load64le(*q) << (*n & 63);
    *q += ((*n & 63) ^ 63) >> 3;
    *n |= 56;
}

TP_ALWAYS_INLINE uint8_t dec_one(const uint16_t *TP_RESTRICT table, uint64_t *b, uint64_t *n) {
    uint32_t e = table[*b & (HUFF_TABLE - 1)];
    *b >>= e & 63;
    *n -= e;
    return (uint8_t)(e >> 8);
}

/* `rounds` rounds from o: each refills every reader once and decodes 5 symbols from each (20
 * table lookups without a branch, 20 consecutive output bytes). The caller guarantees every
 * refill reads inside its stream. The portable loop; x86_decode.c has it in assembly. */
TP_ALWAYS_INLINE void decode_rounds_c(const uint16_t *TP_RESTRICT table, huff_readers *r,
                                      uint8_t *TP_RESTRICT o, int64_t rounds) {
    uint64_t b0 = r->b[0], b1 = r->b[1], b2 = r->b[2], b3 = r->b[3];
    uint64_t k0 = r->n[0], k1 = r->n[1], k2 = r->n[2], k3 = r->n[3];
    const uint8_t *q0 = r->q[0], *q1 = r->q[1], *q2 = r->q[2], *q3 = r->q[3];
    for (; rounds; rounds--, o += 20) {
        dec_refill(&b0, &k0, &q0);
        dec_refill(&b1, &k1, &q1);
        dec_refill(&b2, &k2, &q2);
        dec_refill(&b3, &k3, &q3);
        for (int j = 0; j < 20; j += 4) {
            o[j] = dec_one(table, &b0, &k0);
            o[j + 1] = dec_one(table, &b1, &k1);
            o[j + 2] = dec_one(table, &b2, &k2);
            o[j + 3] = dec_one(table, &b3, &k3);
        }
    }
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = k0, r->n[1] = k1, r->n[2] = k2, r->n[3] = k3;
    r->q[0] = q0, r->q[1] = q1, r->q[2] = q2, r->q[3] = q3;
}

/* Symbols [from, len) one at a time with byte-wise reads that stop at each stream's end; then
 * every stream must end exactly: only its last byte's zero padding may remain. */
TP_ALWAYS_INLINE int decode_tail(const uint16_t *table, const uint8_t *base, uint64_t *pos,
                                 const uint64_t *end_bit, uint8_t *out, int64_t from,
                                 int64_t len) {
    for (int64_t i = from; i < len; i++) {
        int k = (int)(i & 3);
        uint64_t at = pos[k];
        uint64_t byte = at >> 3, last = (end_bit[k] >> 3); /* first byte past the stream */
        uint32_t bits = 0;
        for (int j = 0; j < 3 && byte + (uint64_t)j < last; j++)
            bits |= (uint32_t)base[byte + (uint64_t)j] << (8 * j);
        uint16_t e = table[(bits >> (at & 7)) & (HUFF_TABLE - 1)];
        unsigned l = e & 0xFF;
        if (at + l > end_bit[k]) return TP_ERR_CORRUPT; /* the code runs past the end */
        out[i] = (uint8_t)(e >> 8);
        pos[k] = at + l;
    }
    for (int k = 0; k < 4; k++) {
        uint64_t at = pos[k], stop = end_bit[k];
        if (stop - at >= 8 || (stop - at && (base[at >> 3] >> (at & 7)) != 0))
            return TP_ERR_CORRUPT;
    }
    return TP_OK;
}

/* Four streams, four independent readers, in batches of rounds: how many rounds are safe is
 * computed once per batch (safe_rounds); every bit a round consumes was counted by its refill,
 * so no code of the fast rounds can run past its stream's end. The last symbols go through
 * decode_tail (readers_finish). */
TP_ALWAYS_INLINE void readers_init(huff_readers *r, const uint8_t *base,
                                   const uint64_t *start_byte) {
    for (int k = 0; k < 4; k++) {
        r->b[k] = 0;
        r->n[k] = 0;
        r->q[k] = base + start_byte[k];
    }
}

/* How many rounds can run now (every refill reads 8 bytes inside its stream, advancing q by
 * <= 7; every stream still has 5 symbols per round). */
TP_ALWAYS_INLINE int64_t safe_rounds(const huff_readers *r, const uint8_t *base,
                                     const uint64_t *end_byte, int64_t rounds) {
    for (int k = 0; k < 4; k++) {
        int64_t avail = (int64_t)end_byte[k] - (r->q[k] - base) - 8;
        int64_t safe = avail < 0 ? 0 : avail / 7 + 1;
        if (safe < rounds) rounds = safe;
    }
    return rounds;
}

/* Symbols from 20 * done on, and the end-of-stream checks. */
TP_ALWAYS_INLINE int readers_finish(const uint16_t *table, const huff_readers *r,
                                    const uint8_t *base, const uint64_t *end_byte, uint8_t *out,
                                    int64_t done, int64_t len) {
    /* bit positions of the next unread bits: the whole bytes before q minus the unread bits */
    uint64_t pos[4], end_bit[4];
    for (int k = 0; k < 4; k++) {
        pos[k] = 8 * (uint64_t)(r->q[k] - base) - (r->n[k] & 63);
        end_bit[k] = 8 * end_byte[k];
    }
    return decode_tail(table, base, pos, end_bit, out, 20 * done, len);
}

TP_ALWAYS_INLINE int decode4_body(const uint16_t *TP_RESTRICT table, const uint8_t *base,
                                  const uint64_t *start_byte, const uint64_t *end_byte,
                                  uint8_t *TP_RESTRICT out, int64_t len) {
    huff_readers r;
    readers_init(&r, base, start_byte);
    const int64_t full = len / 20; /* rounds that exist in every stream */
    int64_t done = 0, rounds;
    while ((rounds = safe_rounds(&r, base, end_byte, full - done)) > 0) {
        decode_rounds_c(table, &r, out + 20 * done, rounds);
        done += rounds;
    }
    return readers_finish(table, &r, base, end_byte, out, done, len);
}

/* ---- two blocks at once: eight readers -----------------------------------------------------
 * Four readers leave the core with 5 instructions a symbol and four lookup chains; two blocks
 * of the same length decoded together give eight chains and drop the count update from every
 * symbol (1.5x faster on float16's top plane, ~5.6 bits a symbol, with x86_decode.c's choice
 * of instructions). A pair reader's bits carry a sentinel: b holds the valid bits, a 1 just
 * above them and zeros above it, so a refill finds how many bits remain with one lzcnt. It then reloads the 8 bytes that end at its new
 * q (k whole bytes further): their low 63 bits are the bits it still held followed by the new
 * ones, and their top bit, overwritten by the new sentinel, is read again by the next refill
 * (the valid bits always end one bit before q). One OR and one shift replace the four-stream
 * refill's mask, shift and OR.
 *
 * The block of reader k (0..3: A, 4..7: B) uses table `tables` (A) or tables +
 * HUFF_PAIR_STRIDE (B; huffman_internal.h). A round decodes 5 symbols of each reader (20 output
 * bytes of each block), then refills: every reader starts a round with >= 56 valid bits. */
typedef struct {
    uint64_t b[8];
    const uint8_t *q[8];
} huff_pair_readers;

/* Reads the 8 bytes below the new q, which is at most 7 bytes further: the caller guarantees
 * q + 7 <= its stream's end (q - 8 is never before its start: q starts 8 bytes in). */
TP_ALWAYS_INLINE void pair_refill(uint64_t *b, const uint8_t **q) {
    unsigned t = (unsigned)__builtin_clzll(*b); /* the sentinel is bit 63 - t */
    *q += t >> 3;
    *b = (tp_load64le(*q - 8) | (uint64_t)1 << 63) >> (t & 7);
}

TP_ALWAYS_INLINE uint8_t pair_one(const uint16_t *TP_RESTRICT table, uint64_t *b) {
    uint32_t e = table[*b & (HUFF_TABLE - 1)];
    *b >>= e & 63;
    return (uint8_t)(e >> 8);
}

/* `rounds` rounds into oa and ob (20 bytes each a round). The caller guarantees every refill
 * reads inside its stream. The portable loop; x86_decode.c has it in assembly. */
typedef void (*huff_pair_rounds_fn)(const uint16_t *tables, huff_pair_readers *r, uint8_t *oa,
                                    uint8_t *ob, int64_t rounds);
TP_ALWAYS_INLINE void decode_pair_rounds_c(const uint16_t *TP_RESTRICT tables,
                                           huff_pair_readers *r, uint8_t *TP_RESTRICT oa,
                                           uint8_t *TP_RESTRICT ob, int64_t rounds) {
    for (; rounds; rounds--, oa += 20, ob += 20) {
        for (int j = 0; j < 20; j += 4)
            for (int k = 0; k < 4; k++) {
                oa[j + k] = pair_one(tables, &r->b[k]);
                ob[j + k] = pair_one(tables + HUFF_PAIR_STRIDE, &r->b[4 + k]);
            }
        for (int k = 0; k < 8; k++) pair_refill(&r->b[k], &r->q[k]);
    }
}

/* Blocks a and b of `len` symbols each: TP_OK or TP_ERR_CORRUPT. Pair rounds while every
 * reader's refill stays inside its stream, then each block's last symbols as decode4_body's
 * (its readers handed over: the sentinel dropped, its position the count). Every stream holds
 * >= 8 bytes (the caller checks): a reader starts with 63 bits of one 8-byte load. */
TP_ALWAYS_INLINE int decode4_pair_body(const uint16_t *TP_RESTRICT tables, const huff_streams *a,
                                       const huff_streams *b, int64_t len,
                                       huff_pair_rounds_fn rounds_fn) {
    const huff_streams *blk[2] = {a, b};
    huff_pair_readers r;
    for (int k = 0; k < 8; k++) {
        const huff_streams *s = blk[k >> 2];
        r.q[k] = s->base + s->start[k & 3];
        r.b[k] = tp_load64le(r.q[k]) | (uint64_t)1 << 63; /* 63 bits, ending before q */
        r.q[k] += 8;
    }
    const int64_t full = len / 20;
    int64_t done = 0;
    for (;;) {
        int64_t rounds = full - done;
        for (int k = 0; k < 8; k++) {
            const huff_streams *s = blk[k >> 2];
            int64_t avail = (int64_t)s->end[k & 3] - (r.q[k] - s->base) - 7;
            int64_t safe = avail < 0 ? 0 : avail / 7 + 1;
            rounds = safe < rounds ? safe : rounds;
        }
        if (rounds <= 0) break;
        rounds_fn(tables, &r, a->out + 20 * done, b->out + 20 * done, rounds);
        done += rounds;
    }
    for (int h = 0; h < 2; h++) {
        const huff_streams *s = blk[h];
        const uint16_t *table = tables + h * HUFF_PAIR_STRIDE;
        huff_readers one;
        for (int k = 0; k < 4; k++) {
            /* n valid bits (>= 56: a round ends with a refill) ending at bit 8q - 1; a
             * four-stream reader's end at 8q: the last byte's 7 bits are given back */
            uint64_t bits = r.b[4 * h + k];
            unsigned n = 63u - (unsigned)__builtin_clzll(bits);
            one.b[k] = bits & ((((uint64_t)1) << (n - 7)) - 1);
            one.n[k] = n - 7;
            one.q[k] = r.q[4 * h + k] - 1;
        }
        int64_t at = done, rounds;
        while ((rounds = safe_rounds(&one, s->base, s->end, full - at)) > 0) {
            decode_rounds_c(table, &one, s->out + 20 * at, rounds);
            at += rounds;
        }
        int status = readers_finish(table, &one, s->base, s->end, s->out, at, len);
        if (status != TP_OK) return status;
    }
    return TP_OK;
}

/* ---- the multi-symbol four-stream reader (low-entropy blocks) ------------------------------
 * One lookup of the next 11 bits emits every whole code they hold, up to HUFF_MULTI symbols
 * (as zstd's huff0 "X2" decoder, which stops at two): a block of ~2.7 bits per symbol (the
 * float codec's exponent planes) takes ~3.5 symbols per lookup instead of one, and a block of
 * ~5.6 bits (float16's top plane) ~1.6. The stream format is untouched: the codes are read in
 * the same order, only grouped.
 *
 * Entries (uint64): bytes 0..3 the symbols, byte 4 the total length of the codes (<= 11), byte
 * 5 their number (1..4), bytes 6..7 zero. A lookup stores the whole entry at once: the four
 * symbol bytes, and bytes past the count that the stream's next lookup overwrites. So that one
 * store serves a lookup, each stream decodes into a run of its own (stream k's m-th symbol is
 * output byte k + 4 m), and an interleaving pass puts the four runs' symbols in place: nine
 * instructions a lookup instead of the fifteen of three byte stores into the output. */
#define HUFF_MULTI 4
#define HUFF_MULTI_LOOKUPS 5 /* lookups per refill: 5 * 11 bits <= 56 */
#define HUFF_MULTI_ROUND (HUFF_MULTI * HUFF_MULTI_LOOKUPS) /* most symbols a round emits */
#define HUFF_MULTI_RUN 2048 /* symbols a stream's run holds between interleaving passes */
typedef uint8_t huff_run[HUFF_MULTI_RUN + 8]; /* + 8: a lookup's store at the last symbol */

/* The multi-symbol table from the single-symbol one. The code after the first of window i is
 * looked up in i >> l1, whose high l1 bits are zero: its entry is right when its length fits
 * the 11 - l1 real bits, the one condition for taking it (and likewise for the next ones). */
TP_ALWAYS_INLINE void huff_multi_table(const uint16_t *TP_RESTRICT single,
                                       uint64_t *TP_RESTRICT multi) {
    for (uint32_t i = 0; i < HUFF_TABLE; i++) {
        uint32_t e1 = single[i], l1 = e1 & 255;
        uint32_t j2 = i >> l1, e2 = single[j2], l2 = e2 & 255;
        uint32_t j3 = j2 >> l2, e3 = single[j3], l3 = e3 & 255;
        uint32_t e4 = single[j3 >> l3], l4 = e4 & 255;
        uint32_t two = l1 + l2 <= HUFF_BITS, three = two & (l1 + l2 + l3 <= HUFF_BITS);
        uint32_t four = three & (l1 + l2 + l3 + l4 <= HUFF_BITS);
        uint32_t bits = l1 + (l2 & -two) + (l3 & -three) + (l4 & -four);
        uint32_t symbols = (e1 >> 8) | (e2 & 0xFF00) | (e3 & 0xFF00) << 8 | (e4 & 0xFF00) << 16;
        multi[i] = symbols | (uint64_t)bits << 32 | (uint64_t)(1 + two + three + four) << 40;
    }
}

/* The four readers as huff_readers, and o[k]: where stream k's next symbol goes in the output
 * (out + k + 4 m after m symbols), for the rounds of one stream that end a block. */
typedef struct {
    uint64_t b[4], n[4];
    const uint8_t *q[4];
    uint8_t *o[4];
} huff_mreaders;

/* One lookup of one reader into its run at o: returns the run's next position. */
TP_ALWAYS_INLINE uint8_t *dec_multi(const uint64_t *TP_RESTRICT table, uint64_t *b, uint64_t *n,
                                    uint8_t *o) {
    uint64_t e = table[*b & (HUFF_TABLE - 1)], t = e >> 32; /* length | count << 8 */
    *b >>= t & 63;
    *n -= t; /* only the low 6 bits of n count (as in dec_one) */
    tp_store64le(o, e);
    return o + (e >> 40);
}

/* One lookup of one reader straight into the output (stride 4). */
TP_ALWAYS_INLINE uint8_t *dec_multi_strided(const uint64_t *TP_RESTRICT table, uint64_t *b,
                                            uint64_t *n, uint8_t *o) {
    uint64_t e = table[*b & (HUFF_TABLE - 1)], t = e >> 32;
    *b >>= t & 63;
    *n -= t;
    for (int j = 0; j < HUFF_MULTI; j++) o[4 * j] = (uint8_t)(e >> (8 * j));
    return o + 4 * (e >> 40);
}

/* `rounds` rounds of the four streams, stream k into its run at run[k] + fill[k] (fill[k]
 * grows by what it emits): each round refills a reader once and makes 5 lookups. The caller
 * guarantees every refill reads inside its stream, every stream has HUFF_MULTI_ROUND symbols
 * left per round and every run room for them. The portable loop; x86_decode2.c has it in
 * assembly. */
typedef void (*huff_multi_rounds_fn)(const uint64_t *table, huff_mreaders *r, huff_run *run,
                                     int64_t *fill, int64_t rounds);
TP_ALWAYS_INLINE void decode_multi_rounds_c(const uint64_t *TP_RESTRICT table, huff_mreaders *r,
                                            huff_run *run, int64_t *fill, int64_t rounds) {
    uint64_t b0 = r->b[0], b1 = r->b[1], b2 = r->b[2], b3 = r->b[3];
    uint64_t n0 = r->n[0], n1 = r->n[1], n2 = r->n[2], n3 = r->n[3];
    const uint8_t *q0 = r->q[0], *q1 = r->q[1], *q2 = r->q[2], *q3 = r->q[3];
    uint8_t *o0 = run[0] + fill[0], *o1 = run[1] + fill[1];
    uint8_t *o2 = run[2] + fill[2], *o3 = run[3] + fill[3];
    for (; rounds; rounds--) {
        dec_refill(&b0, &n0, &q0);
        dec_refill(&b1, &n1, &q1);
        dec_refill(&b2, &n2, &q2);
        dec_refill(&b3, &n3, &q3);
        for (int j = 0; j < HUFF_MULTI_LOOKUPS; j++) {
            o0 = dec_multi(table, &b0, &n0, o0);
            o1 = dec_multi(table, &b1, &n1, o1);
            o2 = dec_multi(table, &b2, &n2, o2);
            o3 = dec_multi(table, &b3, &n3, o3);
        }
    }
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = n0, r->n[1] = n1, r->n[2] = n2, r->n[3] = n3;
    r->q[0] = q0, r->q[1] = q1, r->q[2] = q2, r->q[3] = q3;
    fill[0] = o0 - run[0], fill[1] = o1 - run[1], fill[2] = o2 - run[2], fill[3] = o3 - run[3];
}

/* `rounds` rounds of stream k alone, straight into the output at r->o[k]. */
TP_ALWAYS_INLINE void decode_multi_stream_rounds_c(const uint64_t *TP_RESTRICT table,
                                                   huff_mreaders *r, int k, int64_t rounds) {
    uint64_t b = r->b[k], n = r->n[k];
    const uint8_t *q = r->q[k];
    uint8_t *o = r->o[k];
    for (; rounds; rounds--) {
        dec_refill(&b, &n, &q);
        for (int j = 0; j < HUFF_MULTI_LOOKUPS; j++) o = dec_multi_strided(table, &b, &n, o);
    }
    r->b[k] = b, r->n[k] = n, r->q[k] = q, r->o[k] = o;
}

/* The first `count` symbols of the four runs into the output: out[k + 4 i] = run[k][i] (the
 * portable pass; x86_decode2.c has a vector one). */
typedef void (*huff_interleave_fn)(huff_run *run, int64_t count, uint8_t *out);
TP_ALWAYS_INLINE void interleave_body(huff_run *run, int64_t from, int64_t count, uint8_t *out) {
    for (int64_t i = from; i < count; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = run[k][i];
}

/* Symbols stream k has left to decode: it holds (len + 3 - k) / 4, of which `decoded` are. */
TP_ALWAYS_INLINE int64_t stream_left(int64_t len, int k, int64_t decoded) {
    return (len + 3 - k) / 4 - decoded;
}

/* How many rounds reader k can run now: its refills read 8 bytes inside its stream (each
 * advancing q by <= 7), and `left` symbols cover HUFF_MULTI_ROUND a round. */
TP_ALWAYS_INLINE int64_t reader_safe_rounds(const huff_mreaders *r, int k, const uint8_t *base,
                                            const uint64_t *end_byte, int64_t left) {
    int64_t avail = (int64_t)end_byte[k] - (r->q[k] - base) - 8;
    int64_t safe = avail < 0 ? 0 : avail / 7 + 1;
    int64_t by_symbols = left / HUFF_MULTI_ROUND;
    return safe < by_symbols ? safe : by_symbols;
}

/* Stream k's symbols from its m-th on, one at a time from bit `at` with byte-wise reads that
 * stop at its end (as decode_tail), then the same end-of-stream check. */
TP_ALWAYS_INLINE int decode_stream_tail(const uint16_t *table, const uint8_t *base, uint64_t at,
                                        uint64_t end_bit, uint8_t *out, int64_t len, int k,
                                        int64_t m) {
    const uint64_t last = end_bit >> 3; /* first byte past the stream */
    for (int64_t i = k + 4 * m; i < len; i += 4) {
        uint64_t byte = at >> 3;
        uint32_t bits = 0;
        for (int j = 0; j < 3 && byte + (uint64_t)j < last; j++)
            bits |= (uint32_t)base[byte + (uint64_t)j] << (8 * j);
        uint16_t e = table[(bits >> (at & 7)) & (HUFF_TABLE - 1)];
        unsigned l = e & 0xFF;
        if (at + l > end_bit) return TP_ERR_CORRUPT; /* the code runs past the end */
        out[i] = (uint8_t)(e >> 8);
        at += l;
    }
    if (end_bit - at >= 8 || (end_bit - at && (base[at >> 3] >> (at & 7)) != 0))
        return TP_ERR_CORRUPT;
    return TP_OK;
}

/* The last symbols of every stream, straight into the output from r->o[k]: rounds of the
 * stream alone while it has HUFF_MULTI_ROUND symbols a round left (the four-stream rounds stop
 * when the first stream runs short), then the exact tail. */
TP_ALWAYS_INLINE int mreaders_finish(const uint16_t *single, const uint64_t *multi,
                                     huff_mreaders *r, const uint8_t *base,
                                     const uint64_t *end_byte, uint8_t *out, int64_t len) {
    for (int k = 0; k < 4; k++) {
        int64_t rounds;
        while ((rounds = reader_safe_rounds(r, k, base, end_byte,
                                            stream_left(len, k, (r->o[k] - out - k) / 4))) > 0)
            decode_multi_stream_rounds_c(multi, r, k, rounds);
        uint64_t at = 8 * (uint64_t)(r->q[k] - base) - (r->n[k] & 63);
        int status = decode_stream_tail(single, base, at, 8 * end_byte[k], out, len, k,
                                        (r->o[k] - out - k) / 4);
        if (status != TP_OK) return status;
    }
    return TP_OK;
}

/* decode4_body with the multi-symbol table `multi` (built from `single` by the caller). The
 * four streams decode into their runs in batches of rounds; after each batch the symbols every
 * run holds go to the output, and the rest move to the runs' starts. */
TP_ALWAYS_INLINE int decode4_multi_body(const uint16_t *TP_RESTRICT single,
                                        const uint64_t *TP_RESTRICT multi, const uint8_t *base,
                                        const uint64_t *start_byte, const uint64_t *end_byte,
                                        uint8_t *TP_RESTRICT out, int64_t len,
                                        huff_multi_rounds_fn rounds_fn,
                                        huff_interleave_fn interleave) {
    huff_run run[4];
    int64_t fill[4] = {0, 0, 0, 0}, m = 0; /* every stream's first m symbols are in out */
    huff_mreaders r;
    for (int k = 0; k < 4; k++) {
        r.b[k] = 0;
        r.n[k] = 0;
        r.q[k] = base + start_byte[k];
    }
    for (;;) {
        int64_t rounds = INT64_MAX;
        for (int k = 0; k < 4; k++) {
            int64_t safe = reader_safe_rounds(&r, k, base, end_byte, stream_left(len, k, m + fill[k]));
            int64_t room = (HUFF_MULTI_RUN - fill[k]) / HUFF_MULTI_ROUND;
            rounds = safe < rounds ? safe : rounds;
            rounds = room < rounds ? room : rounds;
        }
        if (rounds <= 0) break;
        rounds_fn(multi, &r, run, fill, rounds);
        int64_t ready = fill[0];
        for (int k = 1; k < 4; k++) ready = fill[k] < ready ? fill[k] : ready;
        interleave(run, ready, out + 4 * m);
        m += ready;
        for (int k = 0; k < 4; k++) {
            fill[k] -= ready;
            memmove(run[k], run[k] + ready, (size_t)fill[k]);
        }
    }
    /* what the runs still hold goes out strided, and each stream finishes alone */
    for (int k = 0; k < 4; k++) {
        for (int64_t i = 0; i < fill[k]; i++) out[k + 4 * (m + i)] = run[k][i];
        r.o[k] = out + k + 4 * (m + fill[k]);
    }
    return mreaders_finish(single, multi, &r, base, end_byte, out, len);
}

#endif /* TP_HUFFMAN_LOOPS_H */
