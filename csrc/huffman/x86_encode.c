/*
 * x86_encode.c: the encoder's x86-64 loops (the x86 slots of HUFF_ENCODE): phase A's pass with
 * the CRC folded by PCLMULQDQ, and phase B's four-stream rounds in assembly.
 */
#include "loops.h"

#if TP_HAVE_X86_VARIANTS

/* scan_body with the CRC folded by PCLMULQDQ: the first stripe (XOR the initial register)
 * starts the 128-bit remainder, each further stripe folds it 16 bytes on (see x86_crc.c); the
 * multiplications run on the vector unit while the integer side counts, so the CRC is nearly
 * free (the table CRC of scan_body costs ~1.7 cycles per byte on Zen 1). */
TP_TARGET_HUFF_X86 uint32_t huff_scan_x86(const uint8_t *TP_RESTRICT src, int64_t len,
                                          uint32_t (*TP_RESTRICT c)[256]) {
    if (len < 32) return scan_body(src, len, c, 1);
    const __m128i k = _mm_set_epi64x((long long)HUFF_CRC32_K127, (long long)HUFF_CRC32_K191);
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
        count_stripe(c, a, b);
    }
    count_tail(src, 16 * stripes, len, c);
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(x), hi = (uint64_t)_mm_extract_epi64(x, 1);
    uint32_t reg = huff_crc32_step8(huff_crc32_step8(0, lo), hi);
    return huff_crc32_slice8(~reg, src + 16 * stripes, (size_t)(len - 16 * stripes));
}

#if HUFF_ASM
/* The encoder's rounds in x86-64 assembly, all four streams in one pass over the block: the
 * containers of streams 0, 1 and 2, 3 are the two 64-bit lanes of two xmm registers (the same
 * huff0-style containers as enc_put / enc_flush in loops.h, updated with variable per-lane
 * shifts), the table entries are loaded straight into the lanes, and a flush stores each lane
 * at its stream's pointer (the pointers ride in two more vectors, advanced by one add). 5.4
 * instructions per symbol against 7.5 for the C loop (which GCC compiles well), and the vector
 * unit takes the shifts: ~6% faster on Zen 1. `rounds` rounds of 16 source bytes (4 symbols
 * per stream, one flush each), every store inside its stream (the caller's batch bound).
 * ENC_ASM_ROUND is the assembler text of one symbol of each stream (source bytes R0..R3). */
#define ENC_ASM_ROUND(R0, R1, R2, R3)                                                         \
    "movzbl " R0 "(%[x]), %%eax\n\tmovzbl " R1 "(%[x]), %%ecx\n\tmovzbl " R2                   \
    "(%[x]), %%edx\n\tmovzbl " R3 "(%[x]), %%r8d\n\t"                                          \
    "vmovq (%[etab],%%rax,8), %[e01]\n\tvpinsrq $1, (%[etab],%%rcx,8), %[e01], %[e01]\n\t"     \
    "vmovq (%[etab],%%rdx,8), %[e23]\n\tvpinsrq $1, (%[etab],%%r8,8), %[e23], %[e23]\n\t"      \
    "vpand %[m63], %[e01], %[t01]\n\tvpsrlvq %[t01], %[c01], %[c01]\n\t"                       \
    "vpor %[e01], %[c01], %[c01]\n\tvpaddq %[e01], %[n01], %[n01]\n\t"                         \
    "vpand %[m63], %[e23], %[t23]\n\tvpsrlvq %[t23], %[c23], %[c23]\n\t"                       \
    "vpor %[e23], %[c23], %[c23]\n\tvpaddq %[e23], %[n23], %[n23]\n\t"

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

TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_encode4_x86(const uint8_t *src, int64_t len,
                                                        const uint64_t *etab,
                                                        uint8_t *const *begin,
                                                        uint8_t *const *end) {
    uint8_t *p[4] = {begin[0], begin[1], begin[2], begin[3]};
    __m128i c01 = _mm_setzero_si128(), c23 = c01, n01 = c01, n23 = c01;
    int64_t i = 0;
    for (;;) {
        int64_t rounds = (len - i) / 16;
        for (int k = 0; k < 4; k++) rounds = enc_safe_rounds(p[k], end[k], rounds);
        if (rounds <= 0) break;
        encode_rounds_asm(src + i, rounds, etab, p, &c01, &c23, &n01, &n23);
        i += 16 * rounds;
    }
    const uint64_t c[4] = {(uint64_t)_mm_cvtsi128_si64(c01), (uint64_t)_mm_extract_epi64(c01, 1),
                           (uint64_t)_mm_cvtsi128_si64(c23), (uint64_t)_mm_extract_epi64(c23, 1)};
    const uint64_t n[4] = {(uint64_t)_mm_cvtsi128_si64(n01), (uint64_t)_mm_extract_epi64(n01, 1),
                           (uint64_t)_mm_cvtsi128_si64(n23), (uint64_t)_mm_extract_epi64(n23, 1)};
    return enc_tail(src, len, etab, i, 0, 4, c, n, p, end);
}
#else
/* Without the assembly (sanitizer builds): the C loop. */
TP_TARGET_HUFF_X86 TP_NO_VECTORIZE int huff_encode4_x86(const uint8_t *src, int64_t len,
                                                        const uint64_t *etab,
                                                        uint8_t *const *begin,
                                                        uint8_t *const *end) {
    return encode4_body(src, len, etab, begin, end);
}
#endif /* HUFF_ASM */
#endif /* TP_HAVE_X86_VARIANTS */
