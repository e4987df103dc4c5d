/*
 * x86_avx2_split.c: the split path of contiguous float32 slices that fit in L2, with AVX2
 * (rows.c tries it first; variants.c puts it in the AVX2 and AVX-512 pass tables).
 */
#include <math.h>
#include "topk_internal.h"
#include "../half.h"

#if TP_HAVE_X86_VARIANTS
#include "simd_x86.h"
#include "split_pack_order.h"

/*
 * A slice in cache can be read several times for less than it costs to branch on its keys.
 * So instead of the one pass that collects every key of a sampled bracket (about a tenth of
 * the slice at k = 10%, each one a branch), the split path:
 *  1. samples ROW_SPLIT_SAMPLE keys and takes ROW_SPLITS thresholds from the sample's order
 *     statistics spread over the bracket (split_points);
 *  2. counts the keys above each threshold in one branch-free pass: the counts are exact, so
 *     the bucket (t[j], t[j + 1]] holding the k-th key, and its size, are known before any
 *     key is collected;
 *  3. marks in one more branch-free pass: mask = key above the bucket, and the bucket's
 *     indices packed into a list by a vector permute per 8 keys (no branch per key);
 *  4. selects among the bucket's keys (select_small) and sets the mask of the kept ones.
 * Thresholds only steer the speed: any thresholds give the exact result or a miss (the k-th
 * key outside them), which the one-pass sampled path then handles.
 * On 4096x4096 float32 rows (k = 10%), one thread, TSC cycles per row: sample 360, thresholds
 * 1200, counts 3000, mark 4100, select 1450, mask of the bucket 300; the one-pass sampled path
 * took about 19000 (its bracket holds a tenth of the row, and its collecting branch
 * mispredicts). Sample size, digit bits and threshold count were tuned there together.
 */
#define ROW_SPLITS 9
#define ROW_SPLIT_SAMPLE 128
#define ROW_SPLIT_MAX_LEN 65536 /* 256 KB of float32: the later passes still read from L2 */
#define ROW_SPLIT_DIGIT_BITS 10

/* ROW_SPLITS ascending thresholds from s sample keys (reordered; scratch holds 2s keys) such
 * that the k-th largest of `total` keys lies in (t[0], t[last]] with high probability: the
 * sample keys at descending ranks spread evenly over q +- d, where q = s k / total is the
 * expected number of sample keys above it and d is z binomial standard deviations plus
 * 2. Ranks past the sample's ends give 0 and 0x7fffffff (above every key). Only the keys near
 * those ranks are ranked: a histogram of ROW_SPLIT_DIGIT_BITS bits picks them out (the top
 * bits in which the sample's keys differ, so order is kept), and each of those m keys is
 * ranked by counting the others above it (m^2 / 8 vector compares for m of about 40). */
TP_TARGET_AVX2 static void split_points(uint32_t *keys, uint32_t *scratch, int64_t s,
                                        int64_t total, int64_t k, double z, uint32_t *t) {
    double p = (double)k / (double)total;
    int64_t q = (int64_t)(p * (double)s);
    int64_t d = (int64_t)(z * sqrt((double)s * p * (1.0 - p))) + 2;
    int64_t rank[ROW_SPLITS];
    for (int j = 0; j < ROW_SPLITS; j++) /* j = 0: the lowest threshold, the largest rank */
        rank[j] = q + d - (2 * d * j) / (ROW_SPLITS - 1);
    int64_t rmin = rank[ROW_SPLITS - 1] < 0 ? 0 : rank[ROW_SPLITS - 1];
    int64_t rmax = rank[0] >= s ? s - 1 : rank[0];
    uint32_t vary = 0, kmax = 0;
    for (int64_t i = 0; i < s; i++) {
        vary |= keys[i] ^ keys[0];
        kmax = keys[i] > kmax ? keys[i] : kmax;
    }
    const int bits = ROW_SPLIT_DIGIT_BITS;
    const int shift = bit_length(vary) > bits ? bit_length(vary) - bits : 0;
    const uint32_t dmask = (1u << bits) - 1; /* keys agree above shift + bits */
    uint32_t h[1 << ROW_SPLIT_DIGIT_BITS];
    memset(h, 0, sizeof h);
    for (int64_t i = 0; i < s; i++) h[(keys[i] >> shift) & dmask]++;
    uint64_t dhi, dlo; /* the digits of descending ranks rmin and rmax */
    int64_t base; /* the number of keys above dhi: the rank of the first compacted one */
    digits_of_ranks(h, (kmax >> shift) & dmask, rmin, rmax, &dhi, &dlo, &base);
    int64_t m = 0; /* branch-free compaction of the keys whose digit lies in [dlo, dhi] */
    for (int64_t i = 0; i < s; i++) {
        scratch[m] = keys[i];
        m += (((keys[i] >> shift) & dmask) - dlo) <= dhi - dlo;
    }
    /* descending order: a key's place is the count of keys above it; equal keys take the
     * next free places (they are the same value, so which goes where does not matter) */
    uint32_t *sorted = scratch + s;
    uint8_t used[ROW_SPLIT_SAMPLE];
    memset(used, 0, (size_t)m);
    const int32_t *sk = (const int32_t *)scratch; /* keys < 2^31: int32 compares vectorize */
    for (int32_t i = 0; i < (int32_t)m; i++) {
        int32_t v = sk[i], r = 0;
        for (int32_t j2 = 0; j2 < (int32_t)m; j2++) r += sk[j2] > v;
        while (used[r]) r++;
        used[r] = 1;
        sorted[r] = (uint32_t)v;
    }
    for (int j = 0; j < ROW_SPLITS; j++)
        t[j] = rank[j] >= s ? 0 : rank[j] < 0 ? 0x7fffffffu : sorted[rank[j] - base];
}

/* The offsets (key - base) >> sh of 16 keys at x as 16-bit lanes (8 from x, then 8 from x + 8
 * per 128-bit half, as packs_epi32 orders them); keys below base give negative offsets
 * (arithmetic shift). */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i split_offsets(const uint32_t *x, __m256i absm, __m256i vbase,
                                                      __m128i shift) {
    __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)x), absm);
    __m256i b = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 8)), absm);
    return _mm256_packs_epi32(_mm256_sra_epi32(_mm256_sub_epi32(a, vbase), shift),
                              _mm256_sra_epi32(_mm256_sub_epi32(b, vbase), shift));
}

/* The keys of x[0, len) above each threshold, branch-free. Keys are compared as 8-bit
 * offsets from the lowest threshold, 32 per vector: (key - base) >> sh, saturated to int8, with
 * sh just large enough that the highest threshold fits. The thresholds are first moved onto
 * that grid (t[j] becomes base + (u << sh) - 1, for which the counts are exact); they only
 * steer the selection, so rounding them to 1/128 of the bracket costs nothing. The byte
 * counters take 255 steps; then they are summed into 64-bit ones. Against 32-bit compares
 * (8 keys each) this is 4 times fewer compares and counter updates; the pass went from 8.8 to
 * about 5 cycles per 8 keys. Requires t ascending and t[0] < Inf's key. */
TP_TARGET_AVX2 static void count_above_f32_avx2(const uint32_t *x, int64_t len, uint32_t *t,
                                                int64_t *above) {
    /* A threshold of 0x7fffffff (past the sample's top) has no key above it: its compare
     * (offset > 127) is never true, and the grid is sized by the others. */
    int top = ROW_SPLITS - 1;
    while (top > 0 && t[top] == 0x7fffffffu) top--;
    const uint64_t base = (uint64_t)t[0] + 1;
    const int span_bits = bit_length((uint64_t)t[top] + 1 - base);
    const int sh = span_bits > 7 ? span_bits - 7 : 0;
    __m256i thr[ROW_SPLITS], sum[ROW_SPLITS];
    for (int j = 0; j < ROW_SPLITS; j++) {
        sum[j] = _mm256_setzero_si256();
        if (t[j] == 0x7fffffffu) {
            thr[j] = _mm256_set1_epi8(127);
            continue;
        }
        uint64_t u = ((uint64_t)t[j] + 1 - base) >> sh; /* <= 127 */
        t[j] = (uint32_t)(base + (u << sh) - 1);
        thr[j] = _mm256_set1_epi8((int8_t)(u - 1)); /* offset > u - 1: key > t[j] */
    }
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), vbase = _mm256_set1_epi32((int32_t)base);
    const __m128i shift = _mm_cvtsi32_si128(sh);
    int64_t i = 0;
    while (i + 32 <= len) {
        const int64_t end = len - i > 255 * 32 ? i + 255 * 32 : len;
        __m256i acc[ROW_SPLITS];
        for (int j = 0; j < ROW_SPLITS; j++) acc[j] = _mm256_setzero_si256();
        for (; i + 32 <= end; i += 32) {
            /* fetch the next slice's lines while this one is counted (prefetches never fault) */
            __builtin_prefetch(x + len + i);
            __builtin_prefetch(x + len + i + 16);
            /* lane order is irrelevant to counts */
            __m256i o = _mm256_packs_epi16(split_offsets(x + i, absm, vbase, shift),
                                           split_offsets(x + i + 16, absm, vbase, shift));
            for (int j = 0; j < ROW_SPLITS; j++) /* a true compare is -1 */
                acc[j] = _mm256_sub_epi8(acc[j], _mm256_cmpgt_epi8(o, thr[j]));
        }
        for (int j = 0; j < ROW_SPLITS; j++)
            sum[j] = _mm256_add_epi64(sum[j], _mm256_sad_epu8(acc[j], _mm256_setzero_si256()));
    }
    for (int j = 0; j < ROW_SPLITS; j++) {
        int64_t c64[4];
        _mm256_storeu_si256((__m256i *)c64, sum[j]);
        above[j] = c64[0] + c64[1] + c64[2] + c64[3];
    }
    for (; i < len; i++) {
        uint32_t key = x[i] & 0x7fffffffu;
        for (int j = 0; j < ROW_SPLITS; j++) above[j] += key > t[j];
    }
}

/* The mark pass of the split path: mask[i] = key > HI (mask may be NULL), the indices of the
 * keys in [LO, HI] (LO >= 1) packed into idx without a branch (each vector's selected lanes
 * are permuted to the front and stored whole; the next store starts where they end, so idx
 * needs 8 entries of slack), and with zero, x[i] = 0 where key < LO. Returns the count. */
TP_TARGET_AVX2 static int64_t split_mark_f32_avx2(uint32_t *x, int64_t len, uint32_t LO,
                                                  uint32_t HI, uint8_t *mask, int zero,
                                                  uint32_t *idx, uint32_t *kmax_out) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i vhi = _mm256_set1_epi32((int32_t)HI);
    const __m256i vlo1 = _mm256_set1_epi32((int32_t)(LO - 1)); /* key > LO - 1: key >= LO */
    const __m256i one = _mm256_set1_epi8(1), eight = _mm256_set1_epi32(8);
    __m256i at = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); /* the indices of the 8 keys */
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i g[4];
        for (int q = 0; q < 4; q++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + i + 8 * q));
            __m256i key = _mm256_and_si256(v, absm);
            vmax = _mm256_max_epi32(vmax, key);
            __m256i ge = _mm256_cmpgt_epi32(key, vlo1);
            g[q] = _mm256_cmpgt_epi32(key, vhi);
            uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(g[q], ge)));
            __m256i order = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&split_pack_order[m]));
            _mm256_storeu_si256((__m256i *)(idx + c), _mm256_permutevar8x32_epi32(at, order));
            at = _mm256_add_epi32(at, eight);
            c += __builtin_popcount(m);
            if (zero) _mm256_storeu_si256((__m256i *)(x + i + 8 * q), _mm256_and_si256(v, ge));
        }
        if (mask)
            _mm256_storeu_si256((__m256i *)(mask + i),
                                _mm256_and_si256(tp_lanes_to_bytes(g[0], g[1], g[2], g[3]), one));
    }
    uint32_t lanes[8], kmax = 0;
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    for (int l = 0; l < 8; l++) kmax = lanes[l] > kmax ? lanes[l] : kmax;
    for (; i < len; i++) {
        uint32_t key = x[i] & 0x7fffffffu;
        kmax = key > kmax ? key : kmax;
        if (mask) mask[i] = key > HI;
        if (key >= LO && key <= HI) idx[c++] = (uint32_t)i;
        if (zero && key < LO) x[i] = 0;
    }
    *kmax_out = kmax;
    return c;
}

/* The need-th largest of n candidates by key, ties to the lower index (candidates in index
 * order; keys rel < span): its key into *key_out and its index into *cut_out. Rounds of 16-way
 * counts narrow the candidates to the bucket of 2^sh keys holding it (the keys at or above
 * each of 15 bucket bounds counted, then that bucket compacted into bidx/brel); 32 or fewer
 * are ranked directly. For the split path's ~100 candidates this replaces select_candidates,
 * whose 256-bucket histogram per digit (clear, fill, scan) cost more than the keys did. */
TP_TARGET_AVX2 static void select_small(const uint32_t *idx, const uint32_t *rel, int64_t n,
                                        int64_t need, uint32_t span, uint32_t *bidx,
                                        uint32_t *brel, uint32_t *key_out, int64_t *cut_out) {
    uint32_t base = 0;
    const uint32_t *si = idx, *sr = rel;
    while (n > 32 && span > 1) {
        const int bl = bit_length(span - 1), sh = bl > 4 ? bl - 4 : 0;
        int64_t above[17];
        above[0] = n;
        above[16] = 0;
        for (int b = 1; b < 16; b++) {
            const uint32_t bound = (uint32_t)b << sh;
            int32_t c = 0;
            for (int64_t i = 0; i < n; i++) c += sr[i] >= bound;
            above[b] = c;
        }
        int b = 15;
        while (above[b] < need) b--;
        need -= above[b + 1];
        const uint32_t lo = (uint32_t)b << sh;
        int64_t w = 0; /* branch-free: always store, advance on a match */
        for (int64_t i = 0; i < n; i++) {
            uint32_t r = sr[i];
            bidx[w] = si[i];
            brel[w] = r - lo;
            w += (r >> sh) == (uint32_t)b;
        }
        base += lo;
        n = w;
        si = bidx;
        sr = brel;
        span = (uint32_t)1 << sh;
    }
    int64_t e = need - 1; /* span 1: all keys equal, the need-th in index order */
    if (span > 1) {
        const int32_t *sk = (const int32_t *)sr; /* keys < 2^31 */
        for (int64_t i = 0; i < n; i++) {
            int32_t v = sk[i], r = 0;
            for (int64_t j = 0; j < n; j++) r += sk[j] > v;
            for (int64_t j = 0; j < i; j++) r += sk[j] == v;
            if (r == need - 1) e = i;
        }
    }
    *key_out = base + sr[e];
    *cut_out = si[e];
}

/* The split path for one contiguous float32 slice (see split_points). Workspace: `keys` of
 * len uint32, cidx and ckey of len entries each (halves: candidates and their compaction).
 * Returns 0, 1 on NaN, or 2 when the k-th key fell outside the thresholds or its bucket holds
 * more than half the slice (the caller then takes the one-pass sampled path). */
TP_TARGET_AVX2 int row_split_f32_avx2(uint32_t *x, int64_t len, int64_t k, int zero, uint8_t *mask,
                                      uint64_t *thr, uint32_t *keys, int64_t *cidx, uint64_t *ckey,
                                      double z) {
    if (len > ROW_SPLIT_MAX_LEN) return 2;
    const int64_t s = ROW_SPLIT_SAMPLE, stride = len / ROW_SPLIT_SAMPLE, half = len / 2;
    for (int64_t j = 0; j < s; j++)
        keys[j] = x[j * stride + jitter((uint64_t)j, stride)] & 0x7fffffffu;
    uint32_t t[ROW_SPLITS];
    split_points(keys, keys + s, s, len, k, z, t);
    if (t[0] >= 0x7f800000u) return 2; /* Inf or NaN in the sample: the one-pass path copes */
    int64_t above[ROW_SPLITS];
    count_above_f32_avx2(x, len, t, above);
    /* the k-th key lies in (t[j], t[j + 1]] for the last j with above[j] >= k */
    int j = -1;
    while (j + 1 < ROW_SPLITS && above[j + 1] >= k) j++;
    if (j < 0 || j == ROW_SPLITS - 1 || above[j] - above[j + 1] > half) return 2;
    const uint32_t LO = t[j] + 1, HI = t[j + 1];
    uint32_t kmax;
    int64_t found = split_mark_f32_avx2(x, len, LO, HI, mask, zero, keys, &kmax);
    if (kmax > 0x7f800000u) return 1; /* NaN: zero is never asked for then (see rows_) */
    const uint32_t *cand = keys; /* the candidates' indices; their keys, relative to LO: */
    uint32_t *rel = (uint32_t *)ckey;
    for (int64_t i = 0; i < found; i++) rel[i] = (x[cand[i]] & 0x7fffffffu) - LO;
    uint32_t trel;
    int64_t cut;
    select_small(cand, rel, found, k - above[j + 1], HI - LO + 1, (uint32_t *)cidx,
                 (uint32_t *)cidx + len, &trel, &cut);
    if (thr) *thr = LO + trel;
    /* decide the candidates 8 at a time (rel and indices are < 2^31: signed compares), then
     * store each one's byte: about half are kept, unpredictably, so no branch on it */
    const __m256i vt = _mm256_set1_epi32((int32_t)trel), vcut = _mm256_set1_epi32((int32_t)cut);
    for (int64_t i = 0; i < found; i += 8) { /* rel and cand have 8 entries of slack */
        __m256i r = _mm256_loadu_si256((const __m256i *)(rel + i));
        __m256i c = _mm256_loadu_si256((const __m256i *)(cand + i));
        __m256i keep = _mm256_or_si256(_mm256_cmpgt_epi32(r, vt),
                                       _mm256_andnot_si256(_mm256_cmpgt_epi32(c, vcut),
                                                           _mm256_cmpeq_epi32(r, vt)));
        uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(keep));
        int n = found - i < 8 ? (int)(found - i) : 8;
        if (mask)
            for (int l = 0; l < n; l++) mask[cand[i + l]] = (uint8_t)(bits >> l & 1);
        if (zero)
            for (int l = 0; l < n; l++) x[cand[i + l]] &= 0u - (bits >> l & 1);
    }
    return 0;
}

/* The split path of a 16-bit slice: its keys widened, exactly, to float32 keys (a bfloat16 is
 * the top half of its float32; a float16 converts exactly) in the upper half of ckey, which
 * the float32 path leaves unused (it keeps at most len / 2 + 8 relative keys there), and the
 * float32 path run on them; the threshold comes back as the 16-bit key it is. In-place
 * zeroing needs the slice itself, so that case stays on the sampled path. Without this,
 * 4096 x 4096 bfloat16 rows ran at 0.57-0.74x the elements/s of float32 ones. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE int row_split_16(uint16_t *x, int64_t len, int64_t k, int zero,
                                       uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                       int64_t *cidx, uint64_t *ckey, double z, const int bf16) {
    if (zero || len > ROW_SPLIT_MAX_LEN) return 2;
    /* fetch the next slice while this one is worked on, as the sampled path does: the widening
     * pass otherwise waits on memory for every line (three quarters of its time) */
    for (int64_t b = 0; b < len * (int64_t)sizeof(uint16_t); b += 64)
        __builtin_prefetch((const char *)(x + len) + b);
    uint32_t *wide = (uint32_t *)ckey + len;
    for (int64_t i = 0; i < len; i++)
        wide[i] = bf16 ? (uint32_t)x[i] << 16 : tp_bits(tp_f16_to_f32(x[i]));
    uint64_t t32 = 0;
    int status = row_split_f32_avx2(wide, len, k, 0, mask, thr ? &t32 : NULL, keys, cidx, ckey, z);
    if (status == 0 && thr)
        *thr = bf16 ? t32 >> 16 : (uint64_t)(tp_f32_to_f16(tp_float((uint32_t)t32)) & 0x7fffu);
    return status;
}

TP_TARGET_AVX2 int row_split_bf16_avx2(uint16_t *x, int64_t len, int64_t k, int zero,
                                       uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                       int64_t *cidx, uint64_t *ckey, double z) {
    return row_split_16(x, len, k, zero, mask, thr, keys, cidx, ckey, z, 1);
}

TP_TARGET_AVX2 int row_split_f16_avx2(uint16_t *x, int64_t len, int64_t k, int zero,
                                      uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                      int64_t *cidx, uint64_t *ckey, double z) {
    return row_split_16(x, len, k, zero, mask, thr, keys, cidx, ckey, z, 0);
}
#endif
