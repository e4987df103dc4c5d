/* simd_x86.h: small AVX2 helpers shared by the kernel families (x86 variants only). */
#ifndef TP_SIMD_X86_H
#define TP_SIMD_X86_H

#include "common.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

/* Four vectors of 8 int32 lanes as 32 int8 in lane order a0..a7 b0..b7 c0..c7 d0..d7, each
 * lane clamped to [-128, 127] by the packs' signed saturation (a 0/-1 compare result passes
 * unchanged). The packs work per 128-bit half, so their 4-byte groups come out in order
 * 0,4,1,5,2,6,3,7 until permuted. */
TP_TARGET_AVX2 static inline __m256i tp_lanes_to_bytes(__m256i a, __m256i b, __m256i c,
                                                       __m256i d) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    return _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d)), order);
}
#endif

#endif /* TP_SIMD_X86_H */
