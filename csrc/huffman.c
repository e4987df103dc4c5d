/*
 * huffman.c: the tensorpress Huffman stream: independent blocks, 4 interleaved bit streams per
 * block, table-driven decoding, checksums; blocks coded in parallel.
 *
 * Stream layout (all integers little-endian):
 *   "TPHF"  u8 version=2  u8 dtype  u8 ndim  u8 block_log2  u64 count  u64 shape[ndim]
 *   u32 block_size[n_blocks]          n_blocks = ceil(count / 2^block_log2)
 *   u32 crc32(every byte above)       the header checksum
 *   blocks, back to back; their sizes add up to the rest of the stream exactly.
 * Block:
 *   u8 type  u32 crc32(the block's decoded bytes)
 *   type 0 (raw):     the bytes
 *   type 1 (rle):     u8 symbol (the block is that symbol repeated)
 *   type 2 (huffman): 128 bytes of 4-bit code lengths (symbol 2i low nibble, 2i+1 high),
 *                     u32 size of streams 0, 1, 2 (stream 3 takes the rest), the 4 streams.
 * Stream k codes the block's symbols i with i % 4 == k, in order (interleaved, so the four
 * decoders write neighbouring bytes), LSB-first with bit-reversed canonical codes, zero-padded
 * to a byte; it must end exactly at its size, padding zero. crc32 is zlib's CRC-32 (version 1
 * used XXH32, which costs twice as much here). docs/huffman.md is the full spec.
 *
 * Encoding runs in two phases so every block is written in place: (A) per block, one pass for
 * four quarter histograms (which give the exact size of each stream for the chosen lengths)
 * and the checksum, then the lengths and the block type; (B) at the block's offset (the sum of
 * the earlier blocks' sizes), the encoding. Each block goes through A and B back to back (in
 * cache); with threads, a block waits only for the previous block's A to know its offset.
 *
 * Where the time goes (Zen 1, 2.45 GHz, Gaussian int8 data, cycles per byte): encoding 1.1 for
 * A's pass (bound by its one store per byte), 0.15 for the lengths, 2.0 for B (bound by its
 * ~6-7.5 instructions per symbol); decoding ~2.2 for the four-stream rounds (5 instructions
 * per symbol plus the refills), 0.15 for the CRC folded into them, 0.1 for the table and the
 * last symbols. Both coders' rounds are in assembly on x86-64 (GCC spilled the decoder's 15
 * live registers, and the encoder's xmm form saves a fifth of its instructions); the C loops
 * beside them are the portable reference and what sanitizer builds check.
 */
#include "huffman_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>
#endif

#define HUFF_MAGIC "TPHF"
#define HUFF_VERSION 2
#define HUFF_BLOCK_HEADER 5                                 /* type + checksum */
#define HUFF_LENGTHS_BYTES 128
#define HUFF_PAYLOAD_START (HUFF_BLOCK_HEADER + HUFF_LENGTHS_BYTES + 12)
#define HUFF_MAX_COUNT ((int64_t)1 << 50)

/* a * b for shape products, stuck at HUFF_MAX_COUNT + 1 once past the limit, but exactly 0 when
 * a dimension is 0 (a wrapped 64-bit product could otherwise pass for a small count). */
static uint64_t saturating_product(uint64_t a, uint64_t b) {
    const uint64_t over = (uint64_t)HUFF_MAX_COUNT + 1;
    if (a == 0 || b == 0) return 0;
    if (a >= over || b >= over || a > over / b) return over;
    return a * b;
}
/* Give the CPU away while waiting for another thread (which may be descheduled on a busy
 * machine); a no-op where there is no portable way. */
#ifdef _OPENMP
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
static void huff_yield(void) { sched_yield(); }
#elif defined(_WIN32)
#include <windows.h>
static void huff_yield(void) { SwitchToThread(); }
#else
static void huff_yield(void) {}
#endif
#endif

/* Below this many symbols per thread a second thread costs more than it saves. */
#define HUFF_MIN_PER_THREAD ((int64_t)1 << 18)

enum { BLOCK_RAW = 0, BLOCK_RLE = 1, BLOCK_HUFF = 2 };

/* What phase A decided for one block (the encoder's workspace holds one per block). */
typedef struct {
    uint32_t stream_bytes[4];
    uint32_t size;     /* bytes of the whole block in the stream */
    uint32_t checksum; /* CRC-32 of the block's bytes */
    uint8_t type;
    uint8_t symbol;
    uint8_t lengths[256];
    /* Threads only: where the block starts in the stream, valid once `ready` is set (by the
     * thread that planned the previous block; see tp_huffman_encode_isa). */
    int64_t offset;
    volatile int ready;
} huff_plan;

/* ---- the hot loops, one always-inline body compiled per instruction-set variant ---------- */

/* Symbol i of a block belongs to stream i % 4, so stream k holds (len + 3 - k) / 4 symbols, a
 * 16-byte stripe of the block holds 4 symbols of each stream, and one decoding round of all
 * four streams (5 symbols each) fills 20 consecutive output bytes. */

/* Phase A's pass over a block: the four streams' histograms (symbol i counts in table i % 4,
 * which also keeps a run of one symbol from waiting on its own increments), from two 8-byte
 * loads per 16-byte stripe (twice as fast on Zen 1 as four 4-byte loads: the byte extraction
 * was the bottleneck, not the counting). The block's CRC-32 rides on the same loads: with the
 * tables in the portable variants, with PCLMULQDQ (scan_x86 below: nearly free, the counting is
 * bound by its one store per byte) on x86. */
#define HISTOGRAM16(c, a, b)            \
    do {                                \
        (c)[0][(a) & 255]++;            \
        (c)[1][((a) >> 8) & 255]++;     \
        (c)[2][((a) >> 16) & 255]++;    \
        (c)[3][((a) >> 24) & 255]++;    \
        (c)[0][((a) >> 32) & 255]++;    \
        (c)[1][((a) >> 40) & 255]++;    \
        (c)[2][((a) >> 48) & 255]++;    \
        (c)[3][(a) >> 56]++;            \
        (c)[0][(b) & 255]++;            \
        (c)[1][((b) >> 8) & 255]++;     \
        (c)[2][((b) >> 16) & 255]++;    \
        (c)[3][((b) >> 24) & 255]++;    \
        (c)[0][((b) >> 32) & 255]++;    \
        (c)[1][((b) >> 40) & 255]++;    \
        (c)[2][((b) >> 48) & 255]++;    \
        (c)[3][(b) >> 56]++;            \
    } while (0)

TP_ALWAYS_INLINE uint32_t scan_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                    uint32_t (*TP_RESTRICT c)[256], int hash) {
    uint32_t crc = 0xFFFFFFFFu; /* the raw register */
    const int64_t stripes = len / 16;
    for (int64_t t = 0; t < stripes; t++) {
        uint64_t a = tp_load64le(src + 16 * t), b = tp_load64le(src + 16 * t + 8);
        if (hash) crc = tp_crc32_step8(tp_crc32_step8(crc, a), b);
        HISTOGRAM16(c, a, b);
    }
    for (int64_t i = 16 * stripes; i < len; i++) c[i & 3][src[i]]++;
    if (!hash) return 0;
    return tp_crc32_sw(~crc, src + 16 * stripes, (size_t)(len - 16 * stripes));
}

/* The encoder's table, as in zstd's huff0: entry = code << (64 - len) | len, the bit-reversed
 * code left-aligned in 64 bits with its length in the low byte. A stream's container c then
 * holds its pending bits in its top n bits (the newest code highest) and takes a code with
 *     c = (c >> len) | entry;   n += entry;
 * (the shift uses the low 6 bits of the entry, the length; the length byte OR-ed into c's
 * bottom stays below the pending bits, which never exceed 7 + 4 * 11 = 51 < 56; n's low byte is
 * the pending count and the code bits added above it are ignored). A flush writes the pending
 * bits c >> (64 - n) as 8 little-endian bytes, advances over the whole bytes and keeps the
 * 0..7 newest bits at the top: three ALU operations per symbol and one table load. */
#define ENC_PUT(c, n, s)                       \
    do {                                       \
        uint64_t e_ = etab[(s)];               \
        (c) = ((c) >> (e_ & 63)) | e_;         \
        (n) += e_;                             \
    } while (0)
/* n >= 4 here (four codes of >= 1 bit since the last flush), so the shift is < 64. */
#define ENC_FLUSH(c, n, p)                             \
    do {                                               \
        unsigned nb_ = (uint8_t)(n);                   \
        tp_store64le((p), (c) >> (64 - nb_));          \
        (p) += nb_ >> 3;                               \
        (n) = nb_ & 7;                                 \
    } while (0)

/* Streams k0 and k0 + 1 of a block, written in place into [begin[k], end[k]) (their exact
 * sizes are known from phase A). Two streams per pass: twelve state registers for all four
 * would not fit x86-64's sixteen, and the spills cost more than a second pass over the block
 * (in L2). Each round takes 16 source bytes (4 symbols per stream, <= 44 bits) and flushes each
 * stream once; a flush stores 8 bytes and advances <= 6, so how many rounds keep every store
 * inside its stream is computed once per batch, and the last symbols are written byte-wise.
 * Nothing is ever written outside the two ranges (another thread may write the next block). */
TP_ALWAYS_INLINE int encode2_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                  const uint64_t *TP_RESTRICT etab, uint8_t *const *begin,
                                  uint8_t *const *end, int k0) {
    uint8_t *pa = begin[k0], *pb = begin[k0 + 1];
    const uint8_t *ea = end[k0], *eb = end[k0 + 1];
    uint64_t ca = 0, cb = 0, na = 0, nb = 0;
    int64_t i = 0;
    for (;;) {
        int64_t rounds = (len - i) / 16;
        int64_t room_a = ea - pa - 8, room_b = eb - pb - 8;
        int64_t safe_a = room_a < 0 ? 0 : room_a / 6 + 1, safe_b = room_b < 0 ? 0 : room_b / 6 + 1;
        if (safe_a < rounds) rounds = safe_a;
        if (safe_b < rounds) rounds = safe_b;
        if (rounds <= 0) break;
        const uint8_t *x = src + i + k0;
        i += 16 * rounds;
        for (; rounds; rounds--, x += 16) {
            ENC_PUT(ca, na, x[0]);
            ENC_PUT(cb, nb, x[1]);
            ENC_PUT(ca, na, x[4]);
            ENC_PUT(cb, nb, x[5]);
            ENC_PUT(ca, na, x[8]);
            ENC_PUT(cb, nb, x[9]);
            ENC_PUT(ca, na, x[12]);
            ENC_PUT(cb, nb, x[13]);
            ENC_FLUSH(ca, na, pa);
            ENC_FLUSH(cb, nb, pb);
        }
    }
    /* The tail: the pending bits go to plain LSB-first writers that store whole bytes only. */
    tp_bitwriter w[2];
    const uint64_t cs[2] = {ca, cb}, ns[2] = {na, nb};
    uint8_t *const ps[2] = {pa, pb};
    for (int k = 0; k < 2; k++) {
        unsigned bits = (uint8_t)ns[k];
        w[k].buf = bits ? cs[k] >> (64 - bits) : 0;
        w[k].n = bits;
        w[k].p = ps[k];
    }
    for (i += k0; i < len; i++) {
        int k = (int)(i & 3) - k0;
        if (k < 0 || k > 1) continue;
        uint64_t e = etab[src[i]];
        unsigned l = (unsigned)(e & 255);
        if (l == 0) return TP_ERR_ARGUMENT; /* a symbol without a code: a bug, never silent */
        tp_bw_put(&w[k], (uint32_t)(e >> (64 - l)), l);
        if (w[k].p + (w[k].n >> 3) > end[k0 + k]) return TP_ERR_ARGUMENT;
        tp_bw_flush_safe(&w[k]);
    }
    for (int k = 0; k < 2; k++) {
        /* each stream must fill its range exactly (the sizes come from the same counts) */
        if (w[k].p + ((w[k].n + 7) >> 3) != end[k0 + k]) return TP_ERR_ARGUMENT;
        tp_bw_finish(&w[k]);
    }
    return TP_OK;
}

TP_ALWAYS_INLINE int encode4_body(const uint8_t *TP_RESTRICT src, int64_t len,
                                  const uint64_t *TP_RESTRICT etab, uint8_t *const *begin,
                                  uint8_t *const *end) {
    int status = encode2_body(src, len, etab, begin, end, 0);
    return status != TP_OK ? status : encode2_body(src, len, etab, begin, end, 2);
}

/* Decoding table entries are `length | symbol << 8`: a shift by the whole entry shifts by the
 * length (x86 takes shift counts modulo 64, and the `& 63` below compiles to nothing), so
 * consuming a code needs no unpacking. */
#define TABLE_ENTRY(sym, len) ((uint16_t)((len) | ((sym) << 8)))

/* The four readers of a block. Reader k (F. Giesen's "variant 4" refill): b[k] holds the
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

#define DEC_REFILL(b, k, q)                                \
    do {                                                   \
        (b) |= tp_load64le(q) << ((k) & 63);               \
        (q) += (((k) & 63) ^ 63) >> 3;                     \
        (k) |= 56;                                         \
    } while (0)
#define DEC_ONE(b, k, o)                        \
    do {                                        \
        uint32_t e_ = table[(b) & mask];        \
        (b) >>= e_ & 63;                        \
        (k) -= e_;                              \
        (o) = (uint8_t)(e_ >> 8);               \
    } while (0)

/* `rounds` rounds from o: each refills every reader once and decodes 5 symbols from each (20
 * table lookups without a branch, 20 consecutive output bytes). The caller guarantees every
 * refill reads inside its stream. The portable loop; decode_rounds_asm is the same on x86-64. */
TP_ALWAYS_INLINE void decode_rounds_c(const uint16_t *TP_RESTRICT table, huff_readers *r,
                                      uint8_t *TP_RESTRICT o, int64_t rounds) {
    const uint64_t mask = TP_HUFF_TABLE - 1;
    uint64_t b0 = r->b[0], b1 = r->b[1], b2 = r->b[2], b3 = r->b[3];
    uint64_t k0 = r->n[0], k1 = r->n[1], k2 = r->n[2], k3 = r->n[3];
    const uint8_t *q0 = r->q[0], *q1 = r->q[1], *q2 = r->q[2], *q3 = r->q[3];
    for (; rounds; rounds--, o += 20) {
        DEC_REFILL(b0, k0, q0);
        DEC_REFILL(b1, k1, q1);
        DEC_REFILL(b2, k2, q2);
        DEC_REFILL(b3, k3, q3);
        for (int j = 0; j < 20; j += 4) {
            DEC_ONE(b0, k0, o[j]);
            DEC_ONE(b1, k1, o[j + 1]);
            DEC_ONE(b2, k2, o[j + 2]);
            DEC_ONE(b3, k3, o[j + 3]);
        }
    }
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = k0, r->n[1] = k1, r->n[2] = k2, r->n[3] = k3;
    r->q[0] = q0, r->q[1] = q1, r->q[2] = q2, r->q[3] = q3;
}

/* The same loop in x86-64 assembly (BMI2), where GCC's register allocation of the C loop costs
 * a third more: 16 registers are just enough for the four readers' bits (r8-r11) and counts
 * (r12-r15), the output (rsi), the table (rdi), the bzhi index 11 (rdx), the entry (rax,
 * whose %ah is the symbol byte), the CRC position (rbx) and a temporary (rcx); the four q stay
 * in memory (read and written once per round, off the lookups' chain). Per symbol: bzhi
 * (index = b & 2047, non-destructive), load the entry, shift b by it, subtract its length byte
 * from the count's low byte (so the count stays clean, < 64), store %ah. Not built under
 * sanitizers, which cannot see inside asm: the C loop is checked instead. */
#if TP_HAVE_X86_VARIANTS && defined(__x86_64__) && defined(__GNUC__) && defined(__OPTIMIZE__)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HUFF_ASM 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define HUFF_ASM 0
#endif
#endif
#ifndef HUFF_ASM
#define HUFF_ASM 1
#endif
#else
#define HUFF_ASM 0
#endif

#if HUFF_ASM
#define ASM_SYM(B, K, J)                         \
    "bzhi %%rdx, %%" B ", %%rcx\n\t"             \
    "movzwl (%%rdi,%%rcx,2), %%eax\n\t"          \
    "shrx %%rax, %%" B ", %%" B "\n\t"           \
    "sub %%al, %%" K "b\n\t"                      \
    "mov %%ah, " J "(%%rsi)\n\t"
#define ASM_REFILL(B, K, Q)                      \
    "mov " Q ", %%rax\n\t"                       \
    "shlx %%" K ", (%%rax), %%rcx\n\t"           \
    "or %%rcx, %%" B "\n\t"                      \
    "mov %%" K ", %%rcx\n\t"                     \
    "xor $63, %%ecx\n\t"                         \
    "shr $3, %%ecx\n\t"                          \
    "add %%rcx, %%rax\n\t"                       \
    "mov %%rax, " Q "\n\t"                       \
    "or $56, %%" K "\n\t"
#define ASM_SYMS4(J0, J1, J2, J3) \
    ASM_SYM("r8", "r12", J0) ASM_SYM("r9", "r13", J1) ASM_SYM("r10", "r14", J2) ASM_SYM("r11", "r15", J3)
#define ASM_REFILLS                                                      \
    ASM_REFILL("r8", "r12", "%[q]") ASM_REFILL("r9", "r13", "8+%[q]")    \
    ASM_REFILL("r10", "r14", "16+%[q]") ASM_REFILL("r11", "r15", "24+%[q]")
/* x = fold(x) ^ the 16 bytes at rbx + D, split in two so the multiplications overlap symbols */
#define ASM_FOLD(D)                                  \
    "vpclmulqdq $0x00, %[k], %[x], %[t]\n\t"        \
    "vpclmulqdq $0x11, %[k], %[x], %[x]\n\t"
#define ASM_FOLD_END(D)                              \
    "vpxor %[t], %[x], %[x]\n\t"                    \
    "vpxor " D "(%%rbx), %[x], %[x]\n\t"

/* Two rounds per iteration (`rounds` even). Each round also folds the 16 output bytes at h into
 * the CRC remainder x (PCLMULQDQ, on the vector unit, beside the integer work; see
 * huffman_crc.c): h trails the output (by >= 48 bytes, written rounds ago and no longer in the
 * store queue) and falls 4 bytes further behind per round; the caller folds the rest. */
__attribute__((target("bmi,bmi2,pclmul,avx"))) static void decode_rounds_asm(
    const uint16_t *table, huff_readers *r, uint8_t *o, int64_t rounds, __m128i *crc_x,
    const uint8_t **crc_at) {
    register uint64_t b0 __asm__("r8") = r->b[0], b1 __asm__("r9") = r->b[1];
    register uint64_t b2 __asm__("r10") = r->b[2], b3 __asm__("r11") = r->b[3];
    /* the counts enter clean (< 64) and stay so: only their low byte is updated */
    register uint64_t k0 __asm__("r12") = r->n[0] & 63, k1 __asm__("r13") = r->n[1] & 63;
    register uint64_t k2 __asm__("r14") = r->n[2] & 63, k3 __asm__("r15") = r->n[3] & 63;
    const __m128i k = _mm_set_epi64x((long long)TP_CRC32_K127, (long long)TP_CRC32_K191);
    __m128i x = *crc_x, t;
    const uint8_t *h = *crc_at;
    uint8_t *end = o + 20 * rounds;
    /* q and end live in this frame: the asm addresses them from the stack pointer, as every
     * other register is taken (a pointer to them would need one) */
    const uint8_t *q[4] = {r->q[0], r->q[1], r->q[2], r->q[3]};
    if (rounds > 0)
        __asm__ volatile(
            "1:\n\t"
            ASM_REFILLS
            ASM_SYMS4("0", "1", "2", "3") ASM_SYMS4("4", "5", "6", "7")
            ASM_FOLD("0")
            ASM_SYMS4("8", "9", "10", "11") ASM_SYMS4("12", "13", "14", "15")
            ASM_FOLD_END("0")
            ASM_SYMS4("16", "17", "18", "19")
            ASM_REFILLS
            ASM_SYMS4("20", "21", "22", "23") ASM_SYMS4("24", "25", "26", "27")
            ASM_FOLD("16")
            ASM_SYMS4("28", "29", "30", "31") ASM_SYMS4("32", "33", "34", "35")
            ASM_FOLD_END("16")
            ASM_SYMS4("36", "37", "38", "39")
            "add $32, %%rbx\n\t"
            "add $40, %%rsi\n\t"
            "cmp %[end], %%rsi\n\t"
            "jb 1b\n\t"
            : "+r"(b0), "+r"(b1), "+r"(b2), "+r"(b3), "+r"(k0), "+r"(k1), "+r"(k2), "+r"(k3),
              "+S"(o), "+b"(h), [x] "+x"(x), [t] "=&x"(t), [q] "+m"(q)
            : "D"(table), "d"((uint64_t)TP_HUFF_BITS), [end] "m"(end), [k] "x"(k)
            : "rax", "rcx", "memory", "cc");
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = k0, r->n[1] = k1, r->n[2] = k2, r->n[3] = k3;
    r->q[0] = q[0], r->q[1] = q[1], r->q[2] = q[2], r->q[3] = q[3];
    *crc_x = x;
    *crc_at = h;
}
#endif

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
        uint16_t e = table[(bits >> (at & 7)) & (TP_HUFF_TABLE - 1)];
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

/* Four streams, four independent readers, in batches of rounds: how many rounds are safe
 * (every refill reads 8 bytes inside its stream, every stream still has 5 symbols) is computed
 * once per batch; every bit a round consumes was counted by its refill, so no code of the fast
 * rounds can run past its stream's end. The last symbols go through decode_tail. */
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

/* ---- the variants --------------------------------------------------------------------------
 * scalar and baseline: the portable loops and the table CRC. x86 (AVX2 CPUs, which all have
 * BMI2 and PCLMULQDQ, checked anyway): the assembly decoding loop and the PCLMULQDQ CRC, which
 * the scan folds in 16 bytes at a time while it counts. The coders stay scalar in every variant:
 * GCC's SLP vectorizer would otherwise gather the 20 decoded bytes of a round into a vector
 * (pinsrb chains, spills), which is much slower. */
#define DEFINE_HUFF_VARIANT(NAME, ATTRS)                                                     \
    ATTRS static uint32_t scan_##NAME(const uint8_t *src, int64_t len, uint32_t (*c)[256],   \
                                      int hash) {                                            \
        return hash ? scan_body(src, len, c, 1) : scan_body(src, len, c, 0);                 \
    }                                                                                        \
    ATTRS TP_NO_VECTORIZE static int encode4_##NAME(const uint8_t *src, int64_t len,         \
                                                    const uint64_t *etab,                    \
                                                    uint8_t *const *begin,                   \
                                                    uint8_t *const *end) {                   \
        return encode4_body(src, len, etab, begin, end);                                     \
    }                                                                                        \
    ATTRS TP_NO_VECTORIZE static int decode4_##NAME(const uint16_t *table,                   \
                                                    const uint8_t *base,                     \
                                                    const uint64_t *start,                   \
                                                    const uint64_t *end, uint8_t *out,       \
                                                    int64_t len, uint32_t *crc) {            \
        int status = decode4_body(table, base, start, end, out, len);                        \
        *crc = status == TP_OK ? tp_crc32_sw(0, out, (size_t)len) : 0;                       \
        return status;                                                                       \
    }

DEFINE_HUFF_VARIANT(scalar, TP_NO_VECTORIZE)
DEFINE_HUFF_VARIANT(baseline, )

#if TP_HAVE_X86_VARIANTS
#define TP_TARGET_HUFF_X86 __attribute__((target("avx2,fma,bmi,bmi2,pclmul")))

/* scan_body with the CRC folded by PCLMULQDQ: the first stripe (XOR the initial register)
 * starts the 128-bit remainder, each further stripe folds it 16 bytes on (see huffman_crc.c);
 * the multiplications run on the vector unit while the integer side counts. */
TP_TARGET_HUFF_X86 static uint32_t scan_x86(const uint8_t *TP_RESTRICT src, int64_t len,
                                            uint32_t (*TP_RESTRICT c)[256], int hash) {
    if (!hash || len < 32) return scan_body(src, len, c, hash);
    const __m128i k = _mm_set_epi64x((long long)TP_CRC32_K127, (long long)TP_CRC32_K191);
    __m128i x = _mm_cvtsi32_si128(-1);
    const int64_t stripes = len / 16;
    for (int64_t t = 0; t < stripes; t++) {
        /* the same bytes loaded twice: moving them from the vector unit costs more */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + 16 * t));
        uint64_t a = tp_load64le(src + 16 * t), b = tp_load64le(src + 16 * t + 8);
        x = _mm_xor_si128(t ? _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                            _mm_clmulepi64_si128(x, k, 0x11))
                            : x,
                          v);
        HISTOGRAM16(c, a, b);
    }
    for (int64_t i = 16 * stripes; i < len; i++) c[i & 3][src[i]]++;
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(x), hi = (uint64_t)_mm_extract_epi64(x, 1);
    uint32_t reg = tp_crc32_step8(tp_crc32_step8(0, lo), hi);
    return tp_crc32_sw(~reg, src + 16 * stripes, (size_t)(len - 16 * stripes));
}

#if HUFF_ASM
/* The encoder's rounds in x86-64 assembly, all four streams in one pass over the block: the
 * containers of streams 0, 1 and 2, 3 are the two 64-bit lanes of two xmm registers (the same
 * huff0-style containers as ENC_PUT / ENC_FLUSH, updated with variable per-lane shifts), the
 * table entries are loaded straight into the lanes, and a flush stores each lane at its stream's
 * pointer (the pointers ride in two more vectors, advanced by one add). 5.4 instructions per
 * symbol against 7.5 for the scalar loop (which GCC compiles well), and the vector unit takes
 * the shifts: ~6% faster on Zen 1. `rounds` rounds of 16 source
 * bytes (4 symbols per stream, one flush each), every store inside its stream (the caller's
 * batch bound). */
#define ENC_ASM_ROUND(R0, R1, R2, R3)                            \
    "movzbl " R0 "(%[x]), %%eax\n\t"                             \
    "movzbl " R1 "(%[x]), %%ecx\n\t"                             \
    "movzbl " R2 "(%[x]), %%edx\n\t"                             \
    "movzbl " R3 "(%[x]), %%r8d\n\t"                             \
    "vmovq (%[etab],%%rax,8), %[e01]\n\t"                        \
    "vpinsrq $1, (%[etab],%%rcx,8), %[e01], %[e01]\n\t"          \
    "vmovq (%[etab],%%rdx,8), %[e23]\n\t"                        \
    "vpinsrq $1, (%[etab],%%r8,8), %[e23], %[e23]\n\t"           \
    "vpand %[m63], %[e01], %[t01]\n\t"                           \
    "vpsrlvq %[t01], %[c01], %[c01]\n\t"                         \
    "vpor %[e01], %[c01], %[c01]\n\t"                            \
    "vpaddq %[e01], %[n01], %[n01]\n\t"                          \
    "vpand %[m63], %[e23], %[t23]\n\t"                           \
    "vpsrlvq %[t23], %[c23], %[c23]\n\t"                         \
    "vpor %[e23], %[c23], %[c23]\n\t"                            \
    "vpaddq %[e23], %[n23], %[n23]\n\t"

TP_TARGET_HUFF_X86 static void encode_rounds_asm(const uint8_t *x, int64_t rounds,
                                                 const uint64_t *etab, uint8_t **p,
                                                 __m128i *c01, __m128i *c23, __m128i *n01,
                                                 __m128i *n23) {
    const __m128i m63 = _mm_set1_epi64x(63), m255 = _mm_set1_epi64x(255);
    const __m128i m7 = _mm_set1_epi64x(7), k64 = _mm_set1_epi64x(64);
    __m128i C01 = *c01, C23 = *c23, N01 = *n01, N23 = *n23, e01, e23, t01, t23;
    /* the output pointers ride in two more lanes pairs: advanced by a vector add */
    __m128i P01 = _mm_set_epi64x((long long)(uintptr_t)p[1], (long long)(uintptr_t)p[0]);
    __m128i P23 = _mm_set_epi64x((long long)(uintptr_t)p[3], (long long)(uintptr_t)p[2]);
    const uint8_t *end = x + 16 * rounds;
    if (rounds > 0)
        __asm__ volatile(
            "1:\n\t"
            ENC_ASM_ROUND("0", "1", "2", "3") ENC_ASM_ROUND("4", "5", "6", "7")
            ENC_ASM_ROUND("8", "9", "10", "11") ENC_ASM_ROUND("12", "13", "14", "15")
            /* flush: nb = n & 255, store c >> (64 - nb), p += nb >> 3, n = nb & 7 */
            "vpand %[m255], %[n01], %[n01]\n\t"
            "vpand %[m255], %[n23], %[n23]\n\t"
            "vpsubq %[n01], %[k64], %[t01]\n\t"
            "vpsubq %[n23], %[k64], %[t23]\n\t"
            "vpsrlvq %[t01], %[c01], %[t01]\n\t"
            "vpsrlvq %[t23], %[c23], %[t23]\n\t"
            "vmovq %[p01], %%rax\n\t"
            "vpextrq $1, %[p01], %%rcx\n\t"
            "vmovq %[p23], %%rdx\n\t"
            "vpextrq $1, %[p23], %%r8\n\t"
            "vmovq %[t01], (%%rax)\n\t"
            "vpextrq $1, %[t01], (%%rcx)\n\t"
            "vmovq %[t23], (%%rdx)\n\t"
            "vpextrq $1, %[t23], (%%r8)\n\t"
            "vpsrlq $3, %[n01], %[e01]\n\t"
            "vpsrlq $3, %[n23], %[e23]\n\t"
            "vpaddq %[e01], %[p01], %[p01]\n\t"
            "vpaddq %[e23], %[p23], %[p23]\n\t"
            "vpand %[m7], %[n01], %[n01]\n\t"
            "vpand %[m7], %[n23], %[n23]\n\t"
            "add $16, %[x]\n\t"
            "cmp %[end], %[x]\n\t"
            "jb 1b\n\t"
            : [x] "+r"(x), [p01] "+x"(P01), [p23] "+x"(P23),
              [c01] "+x"(C01), [c23] "+x"(C23), [n01] "+x"(N01), [n23] "+x"(N23),
              [e01] "=&x"(e01), [e23] "=&x"(e23), [t01] "=&x"(t01), [t23] "=&x"(t23)
            : [etab] "r"(etab), [end] "rm"(end), [m63] "x"(m63), [m255] "x"(m255),
              [m7] "x"(m7), [k64] "x"(k64)
            : "rax", "rcx", "rdx", "r8", "memory", "cc");
    *c01 = C01, *c23 = C23, *n01 = N01, *n23 = N23;
    p[0] = (uint8_t *)(uintptr_t)_mm_cvtsi128_si64(P01);
    p[1] = (uint8_t *)(uintptr_t)_mm_extract_epi64(P01, 1);
    p[2] = (uint8_t *)(uintptr_t)_mm_cvtsi128_si64(P23);
    p[3] = (uint8_t *)(uintptr_t)_mm_extract_epi64(P23, 1);
}
#endif

#if HUFF_ASM
/* The last symbols (from source byte i on) of the four streams, whose pending bits are the top
 * n[k] & 255 bits of c[k]: plain LSB-first writers that store whole bytes only; each stream
 * must end exactly at end[k]. */
static int encode_tail4(const uint8_t *src, int64_t len, const uint64_t *etab, int64_t i,
                        const uint64_t *c, const uint64_t *n, uint8_t *const *p,
                        uint8_t *const *end) {
    tp_bitwriter w[4];
    for (int k = 0; k < 4; k++) {
        unsigned bits = (uint8_t)n[k];
        w[k].buf = bits ? c[k] >> (64 - bits) : 0;
        w[k].n = bits;
        w[k].p = p[k];
    }
    for (; i < len; i++) {
        int k = (int)(i & 3);
        uint64_t e = etab[src[i]];
        unsigned l = (unsigned)(e & 255);
        if (l == 0) return TP_ERR_ARGUMENT; /* a symbol without a code: a bug, never silent */
        tp_bw_put(&w[k], (uint32_t)(e >> (64 - l)), l);
        if (w[k].p + (w[k].n >> 3) > end[k]) return TP_ERR_ARGUMENT;
        tp_bw_flush_safe(&w[k]);
    }
    for (int k = 0; k < 4; k++) {
        if (w[k].p + ((w[k].n + 7) >> 3) != end[k]) return TP_ERR_ARGUMENT;
        tp_bw_finish(&w[k]);
    }
    return TP_OK;
}
#endif

TP_TARGET_HUFF_X86 TP_NO_VECTORIZE static int encode4_x86(const uint8_t *src, int64_t len,
                                                          const uint64_t *etab,
                                                          uint8_t *const *begin,
                                                          uint8_t *const *end) {
#if HUFF_ASM
    uint8_t *p[4] = {begin[0], begin[1], begin[2], begin[3]};
    __m128i c01 = _mm_setzero_si128(), c23 = c01, n01 = c01, n23 = c01;
    int64_t i = 0;
    for (;;) {
        int64_t rounds = (len - i) / 16;
        for (int k = 0; k < 4; k++) { /* a flush stores 8 bytes and advances <= 6 */
            int64_t room = end[k] - p[k] - 8;
            int64_t safe = room < 0 ? 0 : room / 6 + 1;
            if (safe < rounds) rounds = safe;
        }
        if (rounds <= 0) break;
        encode_rounds_asm(src + i, rounds, etab, p, &c01, &c23, &n01, &n23);
        i += 16 * rounds;
    }
    const uint64_t c[4] = {(uint64_t)_mm_cvtsi128_si64(c01), (uint64_t)_mm_extract_epi64(c01, 1),
                           (uint64_t)_mm_cvtsi128_si64(c23), (uint64_t)_mm_extract_epi64(c23, 1)};
    const uint64_t n[4] = {(uint64_t)_mm_cvtsi128_si64(n01), (uint64_t)_mm_extract_epi64(n01, 1),
                           (uint64_t)_mm_cvtsi128_si64(n23), (uint64_t)_mm_extract_epi64(n23, 1)};
    return encode_tail4(src, len, etab, i, c, n, p, end);
#else
    return encode4_body(src, len, etab, begin, end);
#endif
}

/* decode4_body with the assembly loop and the CRC folded in as it goes: the first 4 rounds run
 * in C, then the remainder starts from the first 16 output bytes and the assembly rounds fold
 * 16 more bytes each; the bytes left behind (a fifth of the block, then the tail) are folded
 * after. Without the assembly (sanitizer builds), the C loop and a CRC pass. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE static int decode4_x86(const uint16_t *table,
                                                          const uint8_t *base,
                                                          const uint64_t *start,
                                                          const uint64_t *end, uint8_t *out,
                                                          int64_t len, uint32_t *crc) {
#if HUFF_ASM
    huff_readers r;
    readers_init(&r, base, start);
    const int64_t full = len / 20;
    int64_t done = 0, rounds;
    __m128i x = _mm_setzero_si128();
    const uint8_t *h = NULL; /* the next 16 bytes to fold; NULL: not started */
    while ((rounds = safe_rounds(&r, base, end, full - done)) > 0) {
        if (!h) {
            int64_t first = rounds < 4 - done ? rounds : 4 - done;
            decode_rounds_c(table, &r, out + 20 * done, first);
            done += first;
            rounds -= first;
            if (done < 4) continue;
            x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)out),
                              _mm_cvtsi32_si128(-1));
            h = out + 16;
        }
        if (rounds & 1) { /* the assembly takes rounds in pairs */
            decode_rounds_c(table, &r, out + 20 * done, 1);
            done++;
            rounds--;
        }
        decode_rounds_asm(table, &r, out + 20 * done, rounds, &x, &h);
        done += rounds;
    }
    int status = readers_finish(table, &r, base, end, out, done, len);
    if (status != TP_OK) return status; /* (out is not fully written: no CRC) */
    *crc = h ? tp_crc32_pclmul_finish(x, h, (size_t)(out + len - h))
             : tp_crc32_pclmul(0, out, (size_t)len);
    return status;
#else
    int status = decode4_body(table, base, start, end, out, len);
    *crc = status == TP_OK ? tp_crc32_pclmul(0, out, (size_t)len) : 0;
    return status;
#endif
}

static int huff_variant(int isa) {
    if (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
            __builtin_cpu_supports("pclmul"))
            return TP_ISA_AVX2;
        return TP_ISA_BASELINE;
    }
    return isa;
}
#else
static int huff_variant(int isa) { return isa == TP_ISA_SCALAR ? isa : TP_ISA_BASELINE; }
#endif

static uint32_t scan(int isa, const uint8_t *src, int64_t len, uint32_t (*c)[256], int hash) {
    switch (isa) {
        case TP_ISA_SCALAR: return scan_scalar(src, len, c, hash);
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: return scan_x86(src, len, c, hash);
#endif
        default: return scan_baseline(src, len, c, hash);
    }
}

static int encode4(int isa, const uint8_t *src, int64_t len, const uint64_t *etab,
                   uint8_t *const *begin, uint8_t *const *end) {
    switch (isa) {
        case TP_ISA_SCALAR: return encode4_scalar(src, len, etab, begin, end);
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: return encode4_x86(src, len, etab, begin, end);
#endif
        default: return encode4_baseline(src, len, etab, begin, end);
    }
}

/* Decode a Huffman block's four streams into out and its CRC-32 into *crc. */
static int decode4(int isa, const uint16_t *table, const uint8_t *base, const uint64_t *start,
                   const uint64_t *end, uint8_t *out, int64_t len, uint32_t *crc) {
    switch (isa) {
        case TP_ISA_SCALAR: return decode4_scalar(table, base, start, end, out, len, crc);
#if TP_HAVE_X86_VARIANTS
        case TP_ISA_AVX2: return decode4_x86(table, base, start, end, out, len, crc);
#endif
        default: return decode4_baseline(table, base, start, end, out, len, crc);
    }
}

static uint32_t crc32_of(int isa, const uint8_t *p, int64_t n) {
#if TP_HAVE_X86_VARIANTS
    if (isa == TP_ISA_AVX2) return tp_crc32_pclmul(0, p, (size_t)n);
#endif
    (void)isa;
    return tp_crc32_sw(0, p, (size_t)n);
}

/* ---- blocks ------------------------------------------------------------------------------ */

/* Phase A: choose the block's type and, for Huffman, its lengths and exact stream sizes; the
 * block's checksum comes from the same pass. */
static void plan_block(int isa, const uint8_t *src, int64_t len, huff_plan *plan) {
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    plan->checksum = scan(isa, src, len, c, 1);
    uint64_t total[256];
    int used = 0, last = 0;
    for (int s = 0; s < 256; s++) {
        total[s] = (uint64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        if (total[s]) used++, last = s;
    }
    memset(plan->stream_bytes, 0, sizeof plan->stream_bytes);
    plan->symbol = 0;
    if (used == 1) {
        plan->type = BLOCK_RLE;
        plan->symbol = (uint8_t)last;
        plan->size = HUFF_BLOCK_HEADER + 1;
        return;
    }
    plan->type = BLOCK_RAW;
    plan->size = (uint32_t)(HUFF_BLOCK_HEADER + len);
    if (used == 0) return;
    tp_huff_lengths(total, 256, TP_HUFF_BITS, plan->lengths); /* 256 <= 2^11 symbols: never fails */
    uint64_t bytes = HUFF_PAYLOAD_START;
    for (int k = 0; k < 4; k++) {
        uint64_t bits = 0;
        for (int s = 0; s < 256; s++) bits += (uint64_t)c[k][s] * plan->lengths[s];
        plan->stream_bytes[k] = (uint32_t)((bits + 7) / 8);
        bytes += plan->stream_bytes[k];
    }
    if (bytes < plan->size) {
        plan->type = BLOCK_HUFF;
        plan->size = (uint32_t)bytes;
    }
}

/* Phase B: write the block (exactly plan->size bytes at dst; nothing written past them). */
static int write_block(int isa, const uint8_t *src, int64_t len, const huff_plan *plan,
                       uint8_t *dst) {
    dst[0] = plan->type;
    tp_store32le(dst + 1, plan->checksum);
    if (plan->type == BLOCK_RAW) {
        memcpy(dst + HUFF_BLOCK_HEADER, src, (size_t)len);
        return TP_OK;
    }
    if (plan->type == BLOCK_RLE) {
        dst[HUFF_BLOCK_HEADER] = plan->symbol;
        return TP_OK;
    }
    uint8_t *p = dst + HUFF_BLOCK_HEADER;
    for (int i = 0; i < HUFF_LENGTHS_BYTES; i++)
        p[i] = (uint8_t)(plan->lengths[2 * i] | (plan->lengths[2 * i + 1] << 4));
    p += HUFF_LENGTHS_BYTES;
    for (int k = 0; k < 3; k++) tp_store32le(p + 4 * k, plan->stream_bytes[k]);
    p += 12;
    uint16_t codes[256];
    uint64_t etab[256];
    tp_huff_codes(plan->lengths, codes);
    for (int s = 0; s < 256; s++) {
        unsigned l = plan->lengths[s];
        etab[s] = l ? ((uint64_t)codes[s] << (64 - l)) | l : 0;
    }
    uint8_t *begin[4], *end[4];
    for (int k = 0; k < 4; k++) {
        begin[k] = p;
        p += plan->stream_bytes[k];
        end[k] = p;
    }
    return encode4(isa, src, len, etab, begin, end);
}

static int decode_block(int isa, const uint8_t *blk, int64_t size, uint8_t *out, int64_t len,
                        uint16_t *table) {
    TP_RETURN_IF(size < HUFF_BLOCK_HEADER, TP_ERR_CORRUPT);
    uint32_t expect = tp_load32le(blk + 1), crc = 0;
    switch (blk[0]) {
        case BLOCK_RAW:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + len, TP_ERR_CORRUPT);
            memcpy(out, blk + HUFF_BLOCK_HEADER, (size_t)len);
            crc = crc32_of(isa, out, len);
            break;
        case BLOCK_RLE:
            TP_RETURN_IF(size != HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
            memset(out, blk[HUFF_BLOCK_HEADER], (size_t)len);
            crc = crc32_of(isa, out, len);
            break;
        case BLOCK_HUFF: {
            TP_RETURN_IF(size < HUFF_PAYLOAD_START, TP_ERR_CORRUPT);
            uint8_t lengths[256];
            const uint8_t *p = blk + HUFF_BLOCK_HEADER;
            for (int i = 0; i < HUFF_LENGTHS_BYTES; i++) {
                lengths[2 * i] = p[i] & 15;
                lengths[2 * i + 1] = p[i] >> 4;
            }
            /* A complete code (Kraft's sum exactly 1) fills every table entry. */
            TP_RETURN_IF(tp_huff_kraft(lengths) != TP_HUFF_TABLE, TP_ERR_CORRUPT);
            p += HUFF_LENGTHS_BYTES;
            uint64_t payload = (uint64_t)(size - HUFF_PAYLOAD_START);
            uint64_t s0 = tp_load32le(p), s1 = tp_load32le(p + 4), s2 = tp_load32le(p + 8);
            TP_RETURN_IF(s0 + s1 + s2 > payload, TP_ERR_CORRUPT);
            const uint8_t *base = blk + HUFF_PAYLOAD_START;
            const uint64_t start[4] = {0, s0, s0 + s1, s0 + s1 + s2};
            const uint64_t end[4] = {s0, s0 + s1, s0 + s1 + s2, payload};
            uint16_t codes[256];
            tp_huff_codes(lengths, codes);
            for (int s = 0; s < 256; s++) {
                int l = lengths[s];
                if (!l) continue;
                uint16_t entry = TABLE_ENTRY(s, l);
                for (int i = codes[s]; i < TP_HUFF_TABLE; i += 1 << l) table[i] = entry;
            }
            int status = decode4(isa, table, base, start, end, out, len, &crc);
            TP_RETURN_IF(status != TP_OK, status);
            break;
        }
        default: return TP_ERR_CORRUPT;
    }
    TP_RETURN_IF(crc != expect, TP_ERR_CORRUPT);
    return TP_OK;
}

/* ---- the stream ------------------------------------------------------------------------ */

static int64_t header_size(int64_t count, int32_t ndim, int32_t block_log2) {
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return 16 + 8 * (int64_t)ndim + 4 * n_blocks + 4;
}

int64_t tp_huffman_bound(int64_t count, int32_t ndim, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || ndim < 0 || ndim > TP_HUFFMAN_MAX_NDIM ||
        block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 || block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return header_size(count, ndim, block_log2) + HUFF_BLOCK_HEADER * n_blocks + count;
}

int64_t tp_huffman_workspace_size(int64_t count, int32_t block_log2) {
    if (count < 0 || count > HUFF_MAX_COUNT || block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 ||
        block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2)
        return -1;
    int64_t n_blocks = (count + ((int64_t)1 << block_log2) - 1) >> block_log2;
    return n_blocks * (int64_t)sizeof(huff_plan);
}

int tp_huffman_encode_isa(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                          const int64_t *shape, int32_t block_log2, uint8_t *dst,
                          int64_t dst_capacity, void *workspace, int64_t workspace_size,
                          int64_t *written, int isa) {
    TP_RETURN_IF(!written, TP_ERR_ARGUMENT);
    *written = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    isa = huff_variant(isa);
    TP_RETURN_IF(dtype < TP_HUFFMAN_UINT8 || dtype > TP_HUFFMAN_BYTES, TP_ERR_ARGUMENT);
    int64_t bound = tp_huffman_bound(count, ndim, block_log2);
    TP_RETURN_IF(bound < 0 || (ndim > 0 && !shape) || (count > 0 && !src) || !dst, TP_ERR_ARGUMENT);
    TP_RETURN_IF(dst_capacity < bound, TP_ERR_BUFFER);
    TP_RETURN_IF(workspace_size < tp_huffman_workspace_size(count, block_log2), TP_ERR_BUFFER);
    TP_RETURN_IF(count > 0 && (!workspace || ((uintptr_t)workspace & 7)), TP_ERR_ARGUMENT);
    uint64_t product = 1;
    for (int d = 0; d < ndim; d++) {
        TP_RETURN_IF(shape[d] < 0 || shape[d] > HUFF_MAX_COUNT, TP_ERR_ARGUMENT);
        product = saturating_product(product, (uint64_t)shape[d]);
    }
    TP_RETURN_IF(product != (uint64_t)count, TP_ERR_ARGUMENT);

    const int64_t bs = (int64_t)1 << block_log2;
    const int64_t n_blocks = (count + bs - 1) >> block_log2;
    const int64_t hsize = header_size(count, ndim, block_log2);
    memcpy(dst, HUFF_MAGIC, 4);
    dst[4] = HUFF_VERSION;
    dst[5] = (uint8_t)dtype;
    dst[6] = (uint8_t)ndim;
    dst[7] = (uint8_t)block_log2;
    tp_store64le(dst + 8, (uint64_t)count);
    for (int d = 0; d < ndim; d++) tp_store64le(dst + 16 + 8 * d, (uint64_t)shape[d]);
    uint8_t *sizes = dst + 16 + 8 * ndim;
    huff_plan *plans = (huff_plan *)workspace;

    int status = TP_OK;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    if (threads <= 1) {
        /* One thread: plan and write each block while it is still in cache. */
        int64_t offset = hsize;
        for (int64_t b = 0; b < n_blocks && status == TP_OK; b++) {
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            plan_block(isa, src + b * bs, len, &plans[b]);
            status = write_block(isa, src + b * bs, len, &plans[b], dst + offset);
            offset += plans[b].size;
        }
    } else {
#ifdef _OPENMP
        /* Blocks are taken in increasing order, one at a time, from a shared counter (on a busy
         * machine a thread that gets less CPU simply takes fewer). A thread plans its block,
         * then waits for the block's offset, which the thread that planned the previous block
         * publishes as soon as that plan is done; it publishes the next block's offset at once
         * and writes its block while the bytes are still in cache. So a block waits only for
         * the previous block's plan, not for all of them (a barrier between two parallel loops
         * was 1-5% on a quiet machine and far more when a thread is descheduled). The flags
         * use OpenMP 2.0 flushes, which every OpenMP compiler has. */
        for (int64_t b = 0; b < n_blocks; b++) plans[b].ready = 0;
        plans[0].offset = hsize;
        plans[0].ready = 1;
        int64_t next = 0;
#pragma omp parallel num_threads(threads) reduction(min : status)
        {
            int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
            for (;;) {
                int64_t b;
#pragma omp critical(tp_huffman_next_block)
                b = next++;
                if (b >= n_blocks) break;
                int64_t len = count - b * bs < bs ? count - b * bs : bs;
                plan_block(isa, src + b * bs, len, &plans[b]);
                for (int spins = 0;; spins++) {
#pragma omp flush
                    if (plans[b].ready) break;
                    if (spins > 64) huff_yield(); /* let a descheduled thread finish its plan */
                }
#pragma omp flush
                int64_t offset = plans[b].offset;
                if (b + 1 < n_blocks) {
                    plans[b + 1].offset = offset + plans[b].size;
#pragma omp flush
                    plans[b + 1].ready = 1;
#pragma omp flush
                }
                if (mine == TP_OK) mine = write_block(isa, src + b * bs, len, &plans[b], dst + offset);
            }
            if (mine < status) status = mine;
        }
#endif
    }
    TP_RETURN_IF(status != TP_OK, status);
    int64_t total = hsize;
    for (int64_t b = 0; b < n_blocks; b++) {
        tp_store32le(sizes + 4 * b, plans[b].size);
        total += plans[b].size;
    }
    tp_store32le(dst + hsize - 4, tp_crc32_sw(0, dst, (size_t)(hsize - 4)));
    *written = total;
    return TP_OK;
}

int tp_huffman_encode(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                      const int64_t *shape, int32_t block_log2, uint8_t *dst,
                      int64_t dst_capacity, void *workspace, int64_t workspace_size,
                      int64_t *written) {
    return tp_huffman_encode_isa(src, count, dtype, ndim, shape, block_log2, dst, dst_capacity,
                                 workspace, workspace_size, written, tp_isa_current());
}

int tp_huffman_parse(const uint8_t *blob, int64_t size, tp_huffman_info *info) {
    TP_RETURN_IF(!info || size < 0 || (size > 0 && !blob), TP_ERR_ARGUMENT);
    memset(info, 0, sizeof *info);
    TP_RETURN_IF(size < 20 || memcmp(blob, HUFF_MAGIC, 4) != 0, TP_ERR_CORRUPT);
    TP_RETURN_IF(blob[4] != HUFF_VERSION || blob[5] > TP_HUFFMAN_BYTES, TP_ERR_CORRUPT);
    int ndim = blob[6], block_log2 = blob[7];
    TP_RETURN_IF(ndim > TP_HUFFMAN_MAX_NDIM || (blob[5] == TP_HUFFMAN_BYTES && ndim != 1),
                 TP_ERR_CORRUPT);
    TP_RETURN_IF(block_log2 < TP_HUFFMAN_MIN_BLOCK_LOG2 || block_log2 > TP_HUFFMAN_MAX_BLOCK_LOG2,
                 TP_ERR_CORRUPT);
    uint64_t count = tp_load64le(blob + 8);
    TP_RETURN_IF(count > (uint64_t)HUFF_MAX_COUNT, TP_ERR_CORRUPT);
    TP_RETURN_IF(size < 16 + 8 * (int64_t)ndim + 4, TP_ERR_CORRUPT);
    uint64_t product = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = tp_load64le(blob + 16 + 8 * d);
        TP_RETURN_IF(dim > (uint64_t)HUFF_MAX_COUNT, TP_ERR_CORRUPT);
        product = saturating_product(product, dim);
        info->shape[d] = (int64_t)dim;
    }
    TP_RETURN_IF(product != count, TP_ERR_CORRUPT);
    int64_t hsize = header_size((int64_t)count, ndim, block_log2);
    TP_RETURN_IF(hsize > size, TP_ERR_CORRUPT);
    TP_RETURN_IF(tp_crc32_sw(0, blob, (size_t)(hsize - 4)) != tp_load32le(blob + hsize - 4),
                 TP_ERR_CORRUPT);
    int64_t n_blocks = (int64_t)((count + ((uint64_t)1 << block_log2) - 1) >> block_log2);
    const uint8_t *sizes = blob + 16 + 8 * ndim;
    uint64_t total = 0, rest = (uint64_t)(size - hsize);
    for (int64_t b = 0; b < n_blocks; b++) {
        uint32_t s = tp_load32le(sizes + 4 * b);
        TP_RETURN_IF(s < HUFF_BLOCK_HEADER + 1, TP_ERR_CORRUPT);
        total += s;
        TP_RETURN_IF(total > rest, TP_ERR_CORRUPT);
    }
    TP_RETURN_IF(total != rest, TP_ERR_CORRUPT); /* truncated, or trailing bytes */
    info->count = (int64_t)count;
    info->header_size = hsize;
    info->n_blocks = n_blocks;
    info->dtype = blob[5];
    info->ndim = ndim;
    info->block_log2 = block_log2;
    return TP_OK;
}

int tp_huffman_decode_isa(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count,
                          int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    isa = huff_variant(isa);
    tp_huffman_info info;
    int status = tp_huffman_parse(blob, size, &info);
    TP_RETURN_IF(status != TP_OK, status);
    TP_RETURN_IF(count != info.count || (count > 0 && !dst), TP_ERR_ARGUMENT);
    const int64_t bs = (int64_t)1 << info.block_log2, n_blocks = info.n_blocks;
    const uint8_t *sizes = blob + 16 + 8 * info.ndim;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : status) if (threads > 1)
#endif
    {
        /* dynamic blocks and a forward cursor, as in the encoder */
        int64_t cursor = 0, offset = info.header_size;
        uint16_t table[TP_HUFF_TABLE];
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t b = 0; b < n_blocks; b++) {
            for (; cursor < b; cursor++) offset += tp_load32le(sizes + 4 * cursor);
            if (mine != TP_OK) continue; /* no break out of an OpenMP loop */
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            mine = decode_block(isa, blob + offset, tp_load32le(sizes + 4 * b), dst + b * bs,
                                len, table);
        }
        if (mine < status) status = mine;
    }
    return status;
}

int tp_huffman_decode(const uint8_t *blob, int64_t size, uint8_t *dst, int64_t count) {
    return tp_huffman_decode_isa(blob, size, dst, count, tp_isa_current());
}

int tp_huffman_histogram(const uint8_t *src, int64_t count, int64_t *counts) {
    TP_RETURN_IF(!counts || count < 0 || (count > 0 && !src), TP_ERR_ARGUMENT);
    memset(counts, 0, 256 * sizeof(int64_t));
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
    const int isa = huff_variant(tp_isa_current());
    const int64_t chunk = (int64_t)1 << 16; /* fits the 32-bit per-quarter counters */
    int64_t n_chunks = (count + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        int64_t local[256] = {0};
        uint32_t c[4][256];
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t k = 0; k < n_chunks; k++) {
            int64_t len = count - k * chunk < chunk ? count - k * chunk : chunk;
            memset(c, 0, sizeof c);
            scan(isa, src + k * chunk, len, c, 0);
            for (int s = 0; s < 256; s++) local[s] += (int64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        }
#ifdef _OPENMP
#pragma omp critical(tp_huffman_histogram)
#endif
        for (int s = 0; s < 256; s++) counts[s] += local[s];
    }
    return TP_OK;
}
