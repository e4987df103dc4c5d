/*
 * x86_avx2.c: the hand-written AVX2 passes of the top-k family, where the compiled bodies did
 * not get there: the sampled pass of whole arrays (range_*_avx2, one per key width; float16's
 * serves bfloat16) and the 4-element N:M groups (nm4_*_avx2). variants.c puts them in the AVX2
 * and AVX-512 pass tables; the split path of float32 slices is in x86_avx2_split.c.
 */
#include "topk_internal.h"

#if TP_HAVE_X86_VARIANTS
#include "simd_x86.h"

/* 2:4-style groups with AVX2: the keep lanes of two groups of 32-bit keys, one group per
 * 128-bit lane. Rotating the lane by r = 1, 2, 3 lines every element up with each of the other
 * three. The other beats it when larger, or equal and at a lower position, which for rotation
 * r is the case in lanes a >= 4 - r. Kept: fewer than n beat it. Same rule as nm4_body, hence
 * the same mask. Keys are below 2^31, so signed compares order them. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i nm4_keep_avx2(__m256i v, __m256i neg_n) {
    const __m256i tie1 = _mm256_setr_epi32(0, 0, 0, -1, 0, 0, 0, -1);
    const __m256i tie2 = _mm256_setr_epi32(0, 0, -1, -1, 0, 0, -1, -1);
    const __m256i tie3 = _mm256_setr_epi32(0, -1, -1, -1, 0, -1, -1, -1);
    __m256i o1 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(0, 3, 2, 1));
    __m256i o2 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));
    __m256i o3 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 0, 3));
    __m256i b1 = _mm256_or_si256(_mm256_cmpgt_epi32(o1, v), _mm256_and_si256(_mm256_cmpeq_epi32(o1, v), tie1));
    __m256i b2 = _mm256_or_si256(_mm256_cmpgt_epi32(o2, v), _mm256_and_si256(_mm256_cmpeq_epi32(o2, v), tie2));
    __m256i b3 = _mm256_or_si256(_mm256_cmpgt_epi32(o3, v), _mm256_and_si256(_mm256_cmpeq_epi32(o3, v), tie3));
    __m256i minus_count = _mm256_add_epi32(_mm256_add_epi32(b1, b2), b3);
    return _mm256_cmpgt_epi32(minus_count, neg_n); /* count < n */
}

/* float32 keys, 8 groups (32 elements) per step. Returns 1 on NaN; *done = groups handled. */
TP_TARGET_AVX2 int nm4_f32_avx2(const uint32_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                int64_t *done) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i neg_n = _mm256_set1_epi32(-n);
    const __m256i one = _mm256_set1_epi8(1);
    __m256i vmax = _mm256_setzero_si256();
    int64_t steps = groups / 8;
    for (int64_t t = 0; t < steps; t++) {
        __m256i keep[4];
        for (int q = 0; q < 4; q++) {
            __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 32 * t + 8 * q)), absm);
            vmax = _mm256_max_epu32(vmax, v);
            keep[q] = nm4_keep_avx2(v, neg_n);
        }
        __m256i bytes = tp_lanes_to_bytes(keep[0], keep[1], keep[2], keep[3]);
        _mm256_storeu_si256((__m256i *)(mask + 32 * t), _mm256_and_si256(bytes, one));
    }
    /* keys are < 2^31, so a signed compare against Inf's key finds NaN */
    __m256i nan = _mm256_cmpgt_epi32(vmax, _mm256_set1_epi32(0x7f800000));
    *done = steps * 8;
    return !_mm256_testz_si256(nan, nan);
}

/* nm4_keep_avx2 for 16-bit keys: four groups, one per 64-bit quarter; shufflelo/hi rotate each
 * quarter's four lanes. Keys are below 2^15, so signed 16-bit compares order them. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i nm4_keep16_avx2(__m256i v, __m256i neg_n) {
    const __m256i tie1 = _mm256_set1_epi64x((int64_t)0xffff000000000000ULL);
    const __m256i tie2 = _mm256_set1_epi64x((int64_t)0xffffffff00000000ULL);
    const __m256i tie3 = _mm256_set1_epi64x((int64_t)0xffffffffffff0000ULL);
    __m256i o1 = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, _MM_SHUFFLE(0, 3, 2, 1)), _MM_SHUFFLE(0, 3, 2, 1));
    __m256i o2 = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, _MM_SHUFFLE(1, 0, 3, 2)), _MM_SHUFFLE(1, 0, 3, 2));
    __m256i o3 = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, _MM_SHUFFLE(2, 1, 0, 3)), _MM_SHUFFLE(2, 1, 0, 3));
    __m256i b1 = _mm256_or_si256(_mm256_cmpgt_epi16(o1, v), _mm256_and_si256(_mm256_cmpeq_epi16(o1, v), tie1));
    __m256i b2 = _mm256_or_si256(_mm256_cmpgt_epi16(o2, v), _mm256_and_si256(_mm256_cmpeq_epi16(o2, v), tie2));
    __m256i b3 = _mm256_or_si256(_mm256_cmpgt_epi16(o3, v), _mm256_and_si256(_mm256_cmpeq_epi16(o3, v), tie3));
    __m256i minus_count = _mm256_add_epi16(_mm256_add_epi16(b1, b2), b3);
    return _mm256_cmpgt_epi16(minus_count, neg_n); /* count < n */
}

/* 16-bit keys (float16, bfloat16): the same in 16-bit lanes, 8 groups (one cache line) per
 * step; `inf` is the type's Inf key, above which a key is NaN. Widening each 8 keys to 32-bit
 * lanes for nm4_keep_avx2 did half the work per instruction: 16M bfloat16 2:4 masks on one
 * thread ran at 4.5e9 elements/s (float32: 3.8e9), in 16-bit lanes at 6.0e9 - 6.9e9. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE int nm4_half_avx2(const uint16_t *x, int64_t groups, int32_t n,
                                                  uint8_t *mask, int64_t *done, int16_t inf) {
    const __m256i absm = _mm256_set1_epi16(0x7fff);
    const __m256i neg_n = _mm256_set1_epi16((int16_t)-n);
    const __m256i one = _mm256_set1_epi8(1);
    __m256i vmax = _mm256_setzero_si256();
    int64_t steps = groups / 8;
    for (int64_t t = 0; t < steps; t++) {
        __m256i k0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 32 * t)), absm);
        __m256i k1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 32 * t + 16)), absm);
        vmax = _mm256_max_epi16(vmax, _mm256_max_epi16(k0, k1));
        __m256i keep = _mm256_packs_epi16(nm4_keep16_avx2(k0, neg_n), nm4_keep16_avx2(k1, neg_n));
        keep = _mm256_permute4x64_epi64(keep, 0xD8); /* packs interleaves 128-bit halves */
        _mm256_storeu_si256((__m256i *)(mask + 32 * t), _mm256_and_si256(keep, one));
    }
    __m256i nan = _mm256_cmpgt_epi16(vmax, _mm256_set1_epi16(inf));
    *done = steps * 8;
    return !_mm256_testz_si256(nan, nan);
}

TP_TARGET_AVX2 int nm4_f16_avx2(const uint16_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                int64_t *done) {
    return nm4_half_avx2(x, groups, n, mask, done, INFKEY_f16);
}

TP_TARGET_AVX2 int nm4_bf16_avx2(const uint16_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                 int64_t *done) {
    return nm4_half_avx2(x, groups, n, mask, done, INFKEY_bf16);
}

/* Keys ahead that the range pass prefetches (4 KB). One thread alone cannot keep enough
 * misses in flight for the hardware prefetcher to fill the memory bus; with this, a 16M
 * float32 mask at k = 10% takes 4.97 ms instead of 5.9 ms on 2 threads (512 to 2048 ahead
 * measure the same; prefetching the mask's lines for writing did not help). */
#define RANGE_AHEAD 1024

/* Inside the range passes' loops over 32-key steps: collect element at + j (x + j, elements of
 * `bytes` bytes) for each set bit j of `bits` as the candidate (at + j, key - LO) at cidx/ckey
 * [c...]; returns the new count. Candidates' keys are >= LO. */
TP_ALWAYS_INLINE int64_t range_collect(uint32_t bits, const void *x, const int bytes, int64_t at,
                                       uint64_t LO, int64_t *cidx, uint64_t *ckey, int64_t c) {
    while (bits) {
        int j = __builtin_ctz(bits);
        bits &= bits - 1;
        uint64_t key = bytes == 2   ? ((const uint16_t *)x)[j] & 0x7fffu
                       : bytes == 4 ? ((const uint32_t *)x)[j] & 0x7fffffffu
                                    : ((const uint64_t *)x)[j] & 0x7fffffffffffffffULL;
        cidx[c] = at + j;
        ckey[c] = key - LO;
        c++;
    }
    return c;
}

/* The end of a 32-key step of range_f32_avx2 and range_f16_avx2: g and e hold the step's
 * compares as bytes in index order (key > HI, key >= LO). Counts the kept keys into *above,
 * stores them as mask bytes (mask_at: the step's 32, or NULL) and collects the candidates;
 * returns the new count. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE int64_t range_record(__m256i g, __m256i e, uint8_t *mask_at,
                                                     const void *x, const int bytes, int64_t at,
                                                     uint64_t LO, int64_t *cidx, uint64_t *ckey,
                                                     int64_t c, int64_t *above) {
    uint32_t gbits = (uint32_t)_mm256_movemask_epi8(g);
    *above += __builtin_popcount(gbits);
    if (mask_at) _mm256_storeu_si256((__m256i *)mask_at, _mm256_and_si256(g, _mm256_set1_epi8(1)));
    uint32_t bits = (uint32_t)_mm256_movemask_epi8(e) & ~gbits;
    return range_collect(bits, x, bytes, at, LO, cidx, ckey, c);
}

/* ...and after the loop: fold vmax's lanes (of `bytes` bytes) into st->kmax, add the kept
 * count, and report the elements handled. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE void range_finish(__m256i vmax, const int bytes, int64_t above,
                                                  int64_t handled, mark_stats *st,
                                                  int64_t *done) {
    union {
        uint16_t h[16];
        uint32_t w[8];
        uint64_t d[4];
    } lanes;
    _mm256_storeu_si256((__m256i *)&lanes, vmax);
    for (int l = 0; l < 32 / bytes; l++) {
        uint64_t v = bytes == 2 ? lanes.h[l] : bytes == 4 ? lanes.w[l] : lanes.d[l];
        st->kmax = v > st->kmax ? v : st->kmax;
    }
    st->above += above;
    *done = handled;
}

/* 16 float32 keys of range_f32_avx2's step: their compares with HI (*gt) and LO - 1 (*ge),
 * packed to 16-bit lanes; returns vmax with them. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i range_pair_f32(const uint32_t *x, __m256i absm, __m256i vhi,
                                                       __m256i vlo1, __m256i vmax, __m256i *gt,
                                                       __m256i *ge) {
    __m256i k0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)x), absm);
    __m256i k1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 8)), absm);
    *gt = _mm256_packs_epi32(_mm256_cmpgt_epi32(k0, vhi), _mm256_cmpgt_epi32(k1, vhi));
    *ge = _mm256_packs_epi32(_mm256_cmpgt_epi32(k0, vlo1), _mm256_cmpgt_epi32(k1, vlo1));
    return _mm256_max_epi32(vmax, _mm256_max_epi32(k0, k1));
}

/* The sampled pass of mark_body (track=1, shift 0, bool mask or none) for float32 keys with
 * AVX2, 32 keys per step: kept = key > HI, candidate = LO <= key <= HI (as key - LO <= span,
 * unsigned), the kept count and the largest key accumulated in vectors. Returns the candidates
 * collected, or -1 when they would pass cap; *done = elements handled (a multiple of 32). */
TP_TARGET_AVX2 int64_t range_f32_avx2(const uint32_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                       uint32_t LO, uint32_t HI, uint8_t *mask, int64_t *cidx,
                                       uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    /* Keys are below 2^31, so signed compares order them; LO - 1 is -1 when LO is 0. */
    const __m256i vhi = _mm256_set1_epi32((int32_t)HI), vlo1 = _mm256_set1_epi32((int32_t)LO - 1);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    /* Keys are packed to bytes two vectors at a time, as soon as they are compared: with all
     * four kept to the end (tp_lanes_to_bytes), the loop ran out of ymm registers and spilled.
     * The loop is bound by issue on CPUs that split 256-bit operations, so it keeps to the
     * fewest vector operations: candidates are (key >= LO) and not (key > HI), taken after
     * the packing, and the kept keys are counted by popcount on the scalar side. */
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        _mm_prefetch((const char *)(x + i + RANGE_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i + RANGE_AHEAD + 16), _MM_HINT_T0);
        __m256i g01, g23, e01, e23;
        vmax = range_pair_f32(x + i, absm, vhi, vlo1, vmax, &g01, &e01);
        vmax = range_pair_f32(x + i + 16, absm, vhi, vlo1, vmax, &g23, &e23);
        __m256i g = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(g01, g23), order);
        __m256i e = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(e01, e23), order);
        c = range_record(g, e, mask ? mask + i : NULL, x + i, 4, vbase + i, LO, cidx, ckey, c,
                         &above);
    }
    range_finish(vmax, 4, above, i - lo, st, done);
    return c;
}

/* range_f32_avx2 for 16-bit keys (float16, and bfloat16: the pass only compares keys; its
 * caller tests st->kmax against the type's Inf key): 32 keys (one cache line) per step in two
 * vectors of 16-bit lanes. Keys are below 2^15, so signed 16-bit compares order them, and LO - 1 is -1 when LO
 * is 0. packs_epi16 interleaves the two vectors' 128-bit halves; one permute restores index
 * order. */
TP_TARGET_AVX2 int64_t range_f16_avx2(const uint16_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                       uint32_t LO, uint32_t HI, uint8_t *mask, int64_t *cidx,
                                       uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi16(0x7fff);
    const __m256i vhi = _mm256_set1_epi16((int16_t)HI), vlo1 = _mm256_set1_epi16((int16_t)(LO - 1));
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        _mm_prefetch((const char *)(x + i + 2 * RANGE_AHEAD), _MM_HINT_T0); /* the same 4 KB */
        __m256i k0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), absm);
        __m256i k1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 16)), absm);
        vmax = _mm256_max_epi16(vmax, _mm256_max_epi16(k0, k1));
        __m256i g = _mm256_packs_epi16(_mm256_cmpgt_epi16(k0, vhi), _mm256_cmpgt_epi16(k1, vhi));
        __m256i e = _mm256_packs_epi16(_mm256_cmpgt_epi16(k0, vlo1), _mm256_cmpgt_epi16(k1, vlo1));
        g = _mm256_permute4x64_epi64(g, 0xD8);
        e = _mm256_permute4x64_epi64(e, 0xD8);
        c = range_record(g, e, mask ? mask + i : NULL, x + i, 2, vbase + i, LO, cidx, ckey, c,
                         &above);
    }
    range_finish(vmax, 2, above, i - lo, st, done);
    return c;
}

/* range_f32_avx2 for float64 keys: 32 keys (four cache lines) per step in eight vectors of
 * 64-bit lanes. Keys are below 2^63, so signed 64-bit compares order them. The compares are
 * gathered as bits (movemask_pd) and the kept bits spread back to mask bytes: each byte picks
 * its bit's byte of the word (shuffle), then tests its own bit. AVX2 has no 64-bit max; the
 * largest key (for NaN detection) is kept by compare and blend. */
TP_TARGET_AVX2 int64_t range_f64_avx2(const uint64_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                       uint64_t LO, uint64_t HI, uint8_t *mask, int64_t *cidx,
                                       uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi64x(0x7fffffffffffffffLL);
    const __m256i vhi = _mm256_set1_epi64x((int64_t)HI), vlo1 = _mm256_set1_epi64x((int64_t)LO - 1);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bitsel = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        for (int l = 0; l < 32; l += 8) /* the same 4 KB ahead as float32's */
            _mm_prefetch((const char *)(x + i + RANGE_AHEAD / 2 + l), _MM_HINT_T0);
        uint32_t gbits = 0, ebits = 0;
        for (int v = 0; v < 8; v++) {
            __m256i k = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 4 * v)), absm);
            vmax = _mm256_blendv_epi8(vmax, k, _mm256_cmpgt_epi64(k, vmax));
            gbits |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(k, vhi))) << (4 * v);
            ebits |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(k, vlo1))) << (4 * v);
        }
        above += __builtin_popcount(gbits);
        if (mask) {
            __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)gbits), spread);
            b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bitsel), bitsel);
            _mm256_storeu_si256((__m256i *)(mask + i), _mm256_and_si256(b, one));
        }
        uint32_t bits = ebits & ~gbits;
        c = range_collect(bits, x + i, 8, vbase + i, LO, cidx, ckey, c);
    }
    range_finish(vmax, 8, above, i - lo, st, done);
    return c;
}
#endif
