/*
 * x86_decode2.c: the multi-symbol four-stream decoder (loops.h) for the x86 slots: the
 * huff_decode4_fn that huff_decode_block runs on low-entropy blocks. Its rounds in x86-64
 * assembly (BMI2), the runs interleaved by SSE2 unpacks, the table built with AVX-512 gathers
 * in the AVX-512 slot, and the block's CRC-32 by (V)PCLMULQDQ afterwards (the output is still
 * in L1/L2).
 *
 * Why assembly: the rounds keep 15 values live (four readers' bits, counts and run
 * positions, the table, two temporaries) and GCC spills some of them onto the lookups' chain.
 * Here r8-r11 hold the bits, r12-r15 the counts (kept clean, < 64: only their low byte is
 * updated), rsi, rdi, rbx, rbp the run positions, rdx the table, rax and rcx the entry; the
 * four q stay in memory (read and written once per round, off the lookups' chain). Per lookup:
 * index = b & 2047, load the entry and store its 8 bytes at the run position, load its length
 * and count again as one 16-bit word (a second load, not a rorx and a shift: shifts are what
 * Zen 4 runs short of, see x86_decode.c; 3% faster on bfloat16's exponent plane), shift b by
 * the length, subtract it from the count's low byte, advance the position by the count (%ch).
 */
#include "loops.h"

#if TP_HAVE_X86_VARIANTS

#if HUFF_ASM
#define ASM_LOOKUP(B, N, O)                                                                    \
    "mov %%" B ", %%rax\n\tand $0x7ff, %%eax\n\tmov (%%rdx,%%rax,8), %%rcx\n\t"               \
    "mov %%rcx, (%%" O ")\n\tmovzwl 4(%%rdx,%%rax,8), %%ecx\n\tshrx %%rcx, %%" B ", %%" B "\n\t" \
    "sub %%cl, %%" N "b\n\tmovzbl %%ch, %%eax\n\tadd %%rax, %%" O "\n\t"
#define ASM_LOOKUPS4                                                                           \
    ASM_LOOKUP("r8", "r12", "rsi") ASM_LOOKUP("r9", "r13", "rdi")                              \
    ASM_LOOKUP("r10", "r14", "rbx") ASM_LOOKUP("r11", "r15", "rbp")
#define ASM_REFILL(B, K, Q)                                                                   \
    "mov " Q ", %%rax\n\tshlx %%" K ", (%%rax), %%rcx\n\tor %%rcx, %%" B "\n\tmov %%" K        \
    ", %%rcx\n\txor $63, %%ecx\n\tshr $3, %%ecx\n\tadd %%rcx, %%rax\n\tmov %%rax, " Q        \
    "\n\tor $56, %%" K "\n\t"

/* decode_multi_rounds_c's contract and effect. */
__attribute__((target("bmi,bmi2"))) static void multi_rounds_asm(const uint64_t *table,
                                                                 huff_mreaders *r,
                                                                 huff_run *run, int64_t *fill,
                                                                 int64_t rounds) {
    register uint64_t b0 __asm__("r8") = r->b[0], b1 __asm__("r9") = r->b[1];
    register uint64_t b2 __asm__("r10") = r->b[2], b3 __asm__("r11") = r->b[3];
    register uint64_t k0 __asm__("r12") = r->n[0] & 63, k1 __asm__("r13") = r->n[1] & 63;
    register uint64_t k2 __asm__("r14") = r->n[2] & 63, k3 __asm__("r15") = r->n[3] & 63;
    register uint8_t *o0 __asm__("rsi") = run[0] + fill[0];
    register uint8_t *o1 __asm__("rdi") = run[1] + fill[1];
    register uint8_t *o2 __asm__("rbx") = run[2] + fill[2];
    register uint8_t *o3 __asm__("rbp") = run[3] + fill[3];
    /* q and the round count live in this frame, addressed from the stack pointer */
    const uint8_t *q[4] = {r->q[0], r->q[1], r->q[2], r->q[3]};
    if (rounds > 0)
        __asm__ volatile(
            "1:\n\t"
            ASM_REFILL("r8", "r12", "%[q]") ASM_REFILL("r9", "r13", "8+%[q]")
            ASM_REFILL("r10", "r14", "16+%[q]") ASM_REFILL("r11", "r15", "24+%[q]")
            ASM_LOOKUPS4 ASM_LOOKUPS4 ASM_LOOKUPS4 ASM_LOOKUPS4 ASM_LOOKUPS4
            "decq %[rounds]\n\t"
            "jnz 1b\n\t"
            : "+r"(b0), "+r"(b1), "+r"(b2), "+r"(b3), "+r"(k0), "+r"(k1), "+r"(k2), "+r"(k3),
              "+r"(o0), "+r"(o1), "+r"(o2), "+r"(o3), [q] "+m"(q), [rounds] "+m"(rounds)
            : "d"(table)
            : "rax", "rcx", "memory", "cc");
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = k0, r->n[1] = k1, r->n[2] = k2, r->n[3] = k3;
    r->q[0] = q[0], r->q[1] = q[1], r->q[2] = q[2], r->q[3] = q[3];
    fill[0] = o0 - run[0], fill[1] = o1 - run[1], fill[2] = o2 - run[2], fill[3] = o3 - run[3];
}
#else
/* Without the assembly (sanitizer builds): the C rounds. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE static void multi_rounds_asm(const uint64_t *table,
                                                                huff_mreaders *r,
                                                                huff_run *run, int64_t *fill,
                                                                int64_t rounds) {
    decode_multi_rounds_c(table, r, run, fill, rounds);
}
#endif /* HUFF_ASM */

/* interleave_body 16 symbols a stream at a time: a0 b0 a1 b1 .., then a0 b0 c0 d0 a1 .. */
static void interleave_x86(huff_run *run, int64_t count, uint8_t *out) {
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(run[0] + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(run[1] + i));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(run[2] + i));
        __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(run[3] + i));
        __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
        __m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
        __m128i *o = (__m128i *)(void *)(out + 4 * i);
        _mm_storeu_si128(o, _mm_unpacklo_epi16(ab0, cd0));
        _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab0, cd0));
        _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab1, cd1));
        _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab1, cd1));
    }
    interleave_body(run, i, count, out);
}

/* huff_multi_table 16 entries at a time: the four lookups of each entry are gathers (of 32
 * bits at 2-byte steps, the high half masked off: `single` has one spare entry past its end).
 * The scalar loop's 50-odd instructions an entry cost about as much as decoding a 32K-symbol
 * block. */
TP_TARGET_AVX512 static void multi_table_avx512(const uint16_t *single, uint64_t *multi) {
    const __m512i low16 = _mm512_set1_epi32(0xFFFF), len = _mm512_set1_epi32(255);
    const __m512i sym = _mm512_set1_epi32(0xFF00), max_bits = _mm512_set1_epi32(HUFF_BITS);
    const __m512i count_step = _mm512_set1_epi32(1 << 8);
    /* unpack works within 128-bit lanes: entries 0 1 4 5 8 9 12 13 | 2 3 6 7 .. back in order */
    const __m512i order_a = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i order_b = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int at = 0; at < HUFF_TABLE; at += 16, i = _mm512_add_epi32(i, _mm512_set1_epi32(16))) {
        __m512i e1 = _mm512_and_si512(_mm512_i32gather_epi32(i, single, 2), low16);
        __m512i l1 = _mm512_and_si512(e1, len), j2 = _mm512_srlv_epi32(i, l1);
        __m512i e2 = _mm512_and_si512(_mm512_i32gather_epi32(j2, single, 2), low16);
        __m512i l2 = _mm512_and_si512(e2, len), j3 = _mm512_srlv_epi32(j2, l2);
        __m512i e3 = _mm512_and_si512(_mm512_i32gather_epi32(j3, single, 2), low16);
        __m512i l3 = _mm512_and_si512(e3, len), j4 = _mm512_srlv_epi32(j3, l3);
        __m512i e4 = _mm512_and_si512(_mm512_i32gather_epi32(j4, single, 2), low16);
        __m512i l4 = _mm512_and_si512(e4, len);
        __m512i t2 = _mm512_add_epi32(l1, l2), t3 = _mm512_add_epi32(t2, l3);
        __m512i t4 = _mm512_add_epi32(t3, l4);
        __mmask16 two = _mm512_cmple_epu32_mask(t2, max_bits);
        __mmask16 three = _mm512_mask_cmple_epu32_mask(two, t3, max_bits);
        __mmask16 four = _mm512_mask_cmple_epu32_mask(three, t4, max_bits);
        /* the high word: total length | count << 8 */
        __m512i hi = _mm512_mask_mov_epi32(
            _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(l1, two, t2), three, t3), four, t4);
        hi = _mm512_add_epi32(hi, count_step);
        hi = _mm512_mask_add_epi32(hi, two, hi, count_step);
        hi = _mm512_mask_add_epi32(hi, three, hi, count_step);
        hi = _mm512_mask_add_epi32(hi, four, hi, count_step);
        /* the low word: s1 | s2 << 8 | s3 << 16 | s4 << 24 */
        __m512i lo = _mm512_ternarylogic_epi32(_mm512_srli_epi32(e1, 8), _mm512_and_si512(e2, sym),
                                               _mm512_slli_epi32(_mm512_and_si512(e3, sym), 8),
                                               0xFE);
        lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(e4, sym), 16));
        __m512i first = _mm512_unpacklo_epi32(lo, hi), second = _mm512_unpackhi_epi32(lo, hi);
        _mm512_storeu_si512(multi + at, _mm512_permutex2var_epi64(first, order_a, second));
        _mm512_storeu_si512(multi + at + 8, _mm512_permutex2var_epi64(first, order_b, second));
    }
}

TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_multi_x86(const uint16_t *single,
                                                              const uint8_t *base,
                                                              const uint64_t *start,
                                                              const uint64_t *end, uint8_t *out,
                                                              int64_t len, uint32_t *crc) {
    uint64_t multi[HUFF_TABLE];
    huff_multi_table(single, multi);
    int status = decode4_multi_body(single, multi, base, start, end, out, len, multi_rounds_asm,
                                    interleave_x86);
    *crc = status == TP_OK ? huff_crc32_pclmul(0, out, (size_t)len) : 0;
    return status;
}

/* The same with the AVX-512 slot's table build and CRC. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_multi_avx512(const uint16_t *single,
                                                                 const uint8_t *base,
                                                                 const uint64_t *start,
                                                                 const uint64_t *end,
                                                                 uint8_t *out, int64_t len,
                                                                 uint32_t *crc) {
    uint64_t multi[HUFF_TABLE];
    multi_table_avx512(single, multi);
    int status = decode4_multi_body(single, multi, base, start, end, out, len, multi_rounds_asm,
                                    interleave_x86);
    *crc = status == TP_OK ? huff_crc32_vpclmul(0, out, (size_t)len) : 0;
    return status;
}
#endif /* TP_HAVE_X86_VARIANTS */
