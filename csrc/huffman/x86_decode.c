/*
 * x86_decode.c: the decoder's four-stream rounds in x86-64 assembly (BMI2), with the block's
 * CRC-32 folded in by PCLMULQDQ as they go: the x86 slots' huff_decode4_fn.
 *
 * Why assembly: GCC's register allocation of the C loop (decode_rounds_c in loops.h) spills
 * the decoder's 15 live registers and costs a third more; here 16 registers are just enough
 * for the four readers' bits (r8-r11) and counts (r12-r15), the output (rsi), the table (rdi),
 * the bzhi index 11 (rdx), the entry (rax, whose %ah is the symbol byte), the CRC position
 * (rbx) and a temporary (rcx); the four q stay in memory (read and written once per round,
 * off the lookups' chain). Per symbol: bzhi (index = b & 2047, non-destructive), load the
 * entry, shift b by it, subtract its length byte from the count's low byte (so the count stays
 * clean, < 64), store %ah.
 *
 * huff_decode4_pair_x86 decodes two blocks together (loops.h, "two blocks at once"): its
 * rounds keep the eight readers' bits in r8-r15, the two outputs in rsi and rbx, both tables
 * in rdi (B's at a fixed displacement), the index mask ~2047 in rdx and three temporaries; the
 * eight q stay in memory. Per symbol: andn (index = b & 2047), load, shift, store %ah; per
 * refill ten instructions. What bounds this loop on Zen 4 is its shift-class instructions
 * (measured: without its refills it runs at one symbol a cycle, and four nops a refill cost
 * nothing), not the lookups' latency: so the index comes from andn, not bzhi, and the refill
 * ORs its sentinel in from memory instead of shifting it in with a shrd. Together 1.2x faster
 * than bzhi and shrd on float16's top plane (0.38 against 0.46 ns a symbol).
 */
#include "loops.h"

#if TP_HAVE_X86_VARIANTS

#if HUFF_ASM
/* The assembler text of one symbol of reader (B, K) to output byte J, of one reader's refill
 * from its pointer Q, and of the CRC fold (split in two so the multiplications overlap
 * symbols): x = fold(x) ^ the 16 bytes at rbx + D. */
#define ASM_SYM(B, K, J)                                                                       \
    "bzhi %%rdx, %%" B ", %%rcx\n\tmovzwl (%%rdi,%%rcx,2), %%eax\n\tshrx %%rax, %%" B ", %%" B \
    "\n\tsub %%al, %%" K "b\n\tmov %%ah, " J "(%%rsi)\n\t"
#define ASM_REFILL(B, K, Q)                                                                   \
    "mov " Q ", %%rax\n\tshlx %%" K ", (%%rax), %%rcx\n\tor %%rcx, %%" B "\n\tmov %%" K        \
    ", %%rcx\n\txor $63, %%ecx\n\tshr $3, %%ecx\n\tadd %%rcx, %%rax\n\tmov %%rax, " Q        \
    "\n\tor $56, %%" K "\n\t"
#define ASM_SYMS4(J0, J1, J2, J3)                                                             \
    ASM_SYM("r8", "r12", J0) ASM_SYM("r9", "r13", J1) ASM_SYM("r10", "r14", J2)               \
    ASM_SYM("r11", "r15", J3)
#define ASM_REFILLS                                                                           \
    ASM_REFILL("r8", "r12", "%[q]") ASM_REFILL("r9", "r13", "8+%[q]")                          \
    ASM_REFILL("r10", "r14", "16+%[q]") ASM_REFILL("r11", "r15", "24+%[q]")
#define ASM_FOLD "vpclmulqdq $0x00, %[k], %[x], %[t]\n\tvpclmulqdq $0x11, %[k], %[x], %[x]\n\t"
#define ASM_FOLD_END(D) "vpxor %[t], %[x], %[x]\n\tvpxor " D "(%%rbx), %[x], %[x]\n\t"

/* Two rounds per iteration (`rounds` even). Each round also folds the 16 output bytes at h into
 * the CRC remainder x (see x86_crc.c): h trails the output (by >= 48 bytes, written rounds ago
 * and no longer in the store queue) and falls 4 bytes further behind per round; the caller
 * folds the rest. */
__attribute__((target("bmi,bmi2,pclmul,avx"))) static void decode_rounds_asm(
    const uint16_t *table, huff_readers *r, uint8_t *o, int64_t rounds, __m128i *crc_x,
    const uint8_t **crc_at) {
    register uint64_t b0 __asm__("r8") = r->b[0], b1 __asm__("r9") = r->b[1];
    register uint64_t b2 __asm__("r10") = r->b[2], b3 __asm__("r11") = r->b[3];
    /* the counts enter clean (< 64) and stay so: only their low byte is updated */
    register uint64_t k0 __asm__("r12") = r->n[0] & 63, k1 __asm__("r13") = r->n[1] & 63;
    register uint64_t k2 __asm__("r14") = r->n[2] & 63, k3 __asm__("r15") = r->n[3] & 63;
    const __m128i k = _mm_set_epi64x((long long)HUFF_CRC32_K127, (long long)HUFF_CRC32_K191);
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
            ASM_FOLD
            ASM_SYMS4("8", "9", "10", "11") ASM_SYMS4("12", "13", "14", "15")
            ASM_FOLD_END("0")
            ASM_SYMS4("16", "17", "18", "19")
            ASM_REFILLS
            ASM_SYMS4("20", "21", "22", "23") ASM_SYMS4("24", "25", "26", "27")
            ASM_FOLD
            ASM_SYMS4("28", "29", "30", "31") ASM_SYMS4("32", "33", "34", "35")
            ASM_FOLD_END("16")
            ASM_SYMS4("36", "37", "38", "39")
            "add $32, %%rbx\n\t"
            "add $40, %%rsi\n\t"
            "cmp %[end], %%rsi\n\t"
            "jb 1b\n\t"
            : "+r"(b0), "+r"(b1), "+r"(b2), "+r"(b3), "+r"(k0), "+r"(k1), "+r"(k2), "+r"(k3),
              "+S"(o), "+b"(h), [x] "+x"(x), [t] "=&x"(t), [q] "+m"(q)
            : "D"(table), "d"((uint64_t)HUFF_BITS), [end] "m"(end), [k] "x"(k)
            : "rax", "rcx", "memory", "cc");
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->n[0] = k0, r->n[1] = k1, r->n[2] = k2, r->n[3] = k3;
    r->q[0] = q[0], r->q[1] = q[1], r->q[2] = q[2], r->q[3] = q[3];
    *crc_x = x;
    *crc_at = h;
}

/* decode4_body with the assembly loop and the CRC folded in as it goes: the first 4 rounds run
 * in C, then the remainder starts from the first 16 output bytes and the assembly rounds fold
 * 16 more bytes each; the bytes left behind (a fifth of the block, then the tail) are folded
 * after. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_x86(const uint16_t *table,
                                                        const uint8_t *base,
                                                        const uint64_t *start,
                                                        const uint64_t *end, uint8_t *out,
                                                        int64_t len, uint32_t *crc) {
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
    *crc = h ? huff_crc32_pclmul_finish(x, h, (size_t)(out + len - h))
             : huff_crc32_pclmul(0, out, (size_t)len);
    return status;
}
#else
/* Without the assembly (sanitizer builds): the C loop, then a CRC pass. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_decode4_x86(const uint16_t *table,
                                                        const uint8_t *base,
                                                        const uint64_t *start,
                                                        const uint64_t *end, uint8_t *out,
                                                        int64_t len, uint32_t *crc) {
    int status = decode4_body(table, base, start, end, out, len);
    *crc = status == TP_OK ? huff_crc32_pclmul(0, out, (size_t)len) : 0;
    return status;
}
#endif /* HUFF_ASM */

/* ---- two blocks at once ---------------------------------------------------------------------- */
#if HUFF_ASM
#define ASM_PAIR_SYM(B, O, J, TABLE)                                                           \
    "andn %%" B ", %%rdx, %%rcx\n\tmovzwl " TABLE "(%%rdi,%%rcx,2), %%eax\n\t"                 \
    "shrx %%rax, %%" B ", %%" B "\n\tmov %%ah, " J "(%%" O ")\n\t"
/* pair_refill: t = lzcnt b; q += t >> 3; b = (load64(q - 8) | 1 << 63) >> (t & 7), the
 * sentinel ORed in from memory */
#define ASM_PAIR_REFILL(B, Q)                                                                  \
    "lzcnt %%" B ", %%rcx\n\tmov " Q ", %%rax\n\tmov %%rcx, %%rbp\n\tshr $3, %%rbp\n\t"         \
    "add %%rbp, %%rax\n\tmov %%rax, " Q "\n\tmov -8(%%rax), %%" B "\n\t"                      \
    "or %[sentinel], %%" B "\n\tand $7, %%ecx\n\tshrx %%rcx, %%" B ", %%" B "\n\t"
#define ASM_PAIR_SYMS8(J)                                                                      \
    ASM_PAIR_SYM("r8", "rsi", J "+0", "") ASM_PAIR_SYM("r9", "rsi", J "+1", "")                \
    ASM_PAIR_SYM("r10", "rsi", J "+2", "") ASM_PAIR_SYM("r11", "rsi", J "+3", "")              \
    ASM_PAIR_SYM("r12", "rbx", J "+0", "%c[tb]") ASM_PAIR_SYM("r13", "rbx", J "+1", "%c[tb]")  \
    ASM_PAIR_SYM("r14", "rbx", J "+2", "%c[tb]") ASM_PAIR_SYM("r15", "rbx", J "+3", "%c[tb]")

static const uint64_t pair_sentinel = (uint64_t)1 << 63;

/* decode_pair_rounds_c's contract and effect. */
__attribute__((target("bmi,bmi2,lzcnt"))) static void pair_rounds_asm(const uint16_t *tables,
                                                                      huff_pair_readers *r,
                                                                      uint8_t *oa, uint8_t *ob,
                                                                      int64_t rounds) {
    register uint64_t b0 __asm__("r8") = r->b[0], b1 __asm__("r9") = r->b[1];
    register uint64_t b2 __asm__("r10") = r->b[2], b3 __asm__("r11") = r->b[3];
    register uint64_t b4 __asm__("r12") = r->b[4], b5 __asm__("r13") = r->b[5];
    register uint64_t b6 __asm__("r14") = r->b[6], b7 __asm__("r15") = r->b[7];
    register uint64_t t __asm__("rbp") = 0;
    const uint8_t *q[8]; /* in this frame, addressed from the stack pointer */
    for (int k = 0; k < 8; k++) q[k] = r->q[k];
    if (rounds > 0)
        __asm__ volatile(
            "1:\n\t"
            ASM_PAIR_SYMS8("0") ASM_PAIR_SYMS8("4") ASM_PAIR_SYMS8("8") ASM_PAIR_SYMS8("12")
            ASM_PAIR_SYMS8("16")
            ASM_PAIR_REFILL("r8", "%[q]") ASM_PAIR_REFILL("r9", "8+%[q]")
            ASM_PAIR_REFILL("r10", "16+%[q]") ASM_PAIR_REFILL("r11", "24+%[q]")
            ASM_PAIR_REFILL("r12", "32+%[q]") ASM_PAIR_REFILL("r13", "40+%[q]")
            ASM_PAIR_REFILL("r14", "48+%[q]") ASM_PAIR_REFILL("r15", "56+%[q]")
            "add $20, %%rsi\n\t"
            "add $20, %%rbx\n\t"
            "decq %[rounds]\n\t"
            "jnz 1b\n\t"
            : "+r"(b0), "+r"(b1), "+r"(b2), "+r"(b3), "+r"(b4), "+r"(b5), "+r"(b6), "+r"(b7),
              "+r"(t), "+S"(oa), "+b"(ob), [q] "+m"(q), [rounds] "+m"(rounds)
            : "D"(tables), "d"(~(uint64_t)(HUFF_TABLE - 1)), [tb] "i"(2 * HUFF_PAIR_STRIDE),
              [sentinel] "m"(pair_sentinel)
            : "rax", "rcx", "memory", "cc");
    r->b[0] = b0, r->b[1] = b1, r->b[2] = b2, r->b[3] = b3;
    r->b[4] = b4, r->b[5] = b5, r->b[6] = b6, r->b[7] = b7;
    for (int k = 0; k < 8; k++) r->q[k] = q[k];
}
#define PAIR_ROUNDS pair_rounds_asm
#else
__attribute__((target("bmi,bmi2,lzcnt"))) TP_NO_VECTORIZE static void pair_rounds_c(
    const uint16_t *tables, huff_pair_readers *r, uint8_t *oa, uint8_t *ob, int64_t rounds) {
    decode_pair_rounds_c(tables, r, oa, ob, rounds);
}
#define PAIR_ROUNDS pair_rounds_c
#endif /* HUFF_ASM */

__attribute__((target("avx2,fma,bmi,bmi2,pclmul,lzcnt"))) TP_NO_VECTORIZE int huff_decode4_pair_x86(
    const uint16_t *tables, const huff_streams *a, const huff_streams *b, int64_t len) {
    return decode4_pair_body(tables, a, b, len, PAIR_ROUNDS);
}
#endif /* TP_HAVE_X86_VARIANTS */
