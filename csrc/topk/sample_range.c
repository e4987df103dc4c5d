/*
 * sample_range.c: from a sample of the keys, the key range that holds the k-th largest key
 * with high probability (the sampled paths' bracket; see sampled.c). Whole arrays draw the
 * sample in sampled.c, slices in rows.c; both call sample_range.
 */
#include <math.h>
#include "topk_internal.h"

/* LSD radix sort of n keys by their bits [low, high) (stable: the order of key >> low),
 * ascending, 8-bit digits; tmp holds n keys. The keys are cut in 4 quarters, each with its own
 * counts and offsets, worked in one interleaved loop: a run of equal digits (the exponent's, in
 * real data) then makes 4 independent chains of counter updates instead of one, each update
 * waiting for the previous. Digits every key shares are skipped. */
static void sort_keys(uint64_t *a, uint64_t *tmp, int64_t n, int low, int high) {
    uint64_t *src = a, *dst = tmp;
    const int64_t qn = n / 4; /* quarters [0, qn), [qn, 2qn), [2qn, 3qn), [3qn, n) */
    for (int shift = low; shift < high; shift += 8) {
#define DIGIT(v) (((v) >> shift) & 255)
        uint32_t h[4][256];
        memset(h, 0, sizeof h);
        for (int64_t i = 0; i < qn; i++) {
            h[0][DIGIT(src[i])]++;
            h[1][DIGIT(src[qn + i])]++;
            h[2][DIGIT(src[2 * qn + i])]++;
            h[3][DIGIT(src[3 * qn + i])]++;
        }
        for (int64_t i = 4 * qn; i < n; i++) h[3][DIGIT(src[i])]++;
        uint64_t d0 = DIGIT(src[0]);
        if ((int64_t)h[0][d0] + h[1][d0] + h[2][d0] + h[3][d0] == n) continue;
        uint32_t acc = 0; /* offsets: digit by digit, quarters in order within a digit */
        for (int d = 0; d < 256; d++)
            for (int q = 0; q < 4; q++) {
                uint32_t c = h[q][d];
                h[q][d] = acc;
                acc += c;
            }
        for (int64_t i = 0; i < qn; i++) {
            uint64_t v0 = src[i], v1 = src[qn + i], v2 = src[2 * qn + i], v3 = src[3 * qn + i];
            dst[h[0][DIGIT(v0)]++] = v0;
            dst[h[1][DIGIT(v1)]++] = v1;
            dst[h[2][DIGIT(v2)]++] = v2;
            dst[h[3][DIGIT(v3)]++] = v3;
        }
        for (int64_t i = 4 * qn; i < n; i++) dst[h[3][DIGIT(src[i])]++] = src[i];
#undef DIGIT
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* Walking down a histogram of digits from `top` (no key's digit is higher): the digits that
 * hold the keys of descending ranks r1 <= r2 (0 = the largest key) into *d1 >= *d2, and the
 * number of keys in digits above *d1 into *above_d1. r2 must be below the histogram's total. */
void digits_of_ranks(const uint32_t *h, int64_t top, int64_t r1, int64_t r2, uint64_t *d1,
                     uint64_t *d2, int64_t *above_d1) {
    int64_t above = 0;
    int found = 0;
    *d1 = *d2 = 0;
    *above_d1 = 0;
    for (int64_t dg = top; dg >= 0; dg--) {
        if (!found && above + h[dg] > r1) {
            *d1 = (uint64_t)dg;
            *above_d1 = above;
            found = 1;
        }
        if (above + h[dg] > r2) {
            *d2 = (uint64_t)dg;
            return;
        }
        above += h[dg];
    }
}

#define SAMPLE_RANGE_THREADS 64

/* What the threads of sample_range share. */
typedef struct {
    const uint64_t *keys;
    uint64_t *tmp;
    int64_t s, a, b;
    int bits;
    uint32_t h[2048];
    uint64_t kmax, da, db; /* da, db: the digits of ascending ranks a and b */
    int64_t above_db;
    int parts;
    int64_t part_end[SAMPLE_RANGE_THREADS];
} sample_share;

/* Thread t of nt's part of sample_range's three passes over the sample: the largest key, the
 * digit histogram, and the compaction of the keys near the ranks. With nt > 1 every thread of
 * a team calls it (its barriers bind to that team); with nt == 1 it runs alone,
 * with no barrier or lock: the per-slice path calls it from inside its own team, whose
 * barriers it must not join, and a named critical section is one lock for the whole process. */
static void sample_range_part(sample_share *sh, int t, int nt) {
    const uint64_t *keys = sh->keys;
    const int64_t from = sh->s * t / nt, to = sh->s * (t + 1) / nt, nb = (int64_t)1 << sh->bits;
    uint64_t mine_max = 0;
    for (int64_t i = from; i < to; i++) mine_max = keys[i] > mine_max ? keys[i] : mine_max;
    if (nt == 1) {
        sh->kmax = mine_max;
    } else {
#ifdef _OPENMP
#pragma omp critical(tp_topk_sample_range)
#endif
        sh->kmax = mine_max > sh->kmax ? mine_max : sh->kmax;
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    const int shift = bit_length(sh->kmax) > sh->bits ? bit_length(sh->kmax) - sh->bits : 0;
    uint32_t mine[2048], *counts = nt == 1 ? sh->h : mine;
    if (nt > 1) memset(mine, 0, sizeof(uint32_t) * (size_t)nb);
    for (int64_t i = from; i < to; i++) counts[keys[i] >> shift]++;
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp critical(tp_topk_sample_range)
#endif
        for (int64_t g = 0; g < nb; g++) sh->h[g] += mine[g];
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    if (t == 0)
        digits_of_ranks(sh->h, (int64_t)(sh->kmax >> shift), sh->s - 1 - sh->b, sh->s - 1 - sh->a,
                        &sh->db, &sh->da, &sh->above_db);
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    /* branch-free compaction of the keys whose digit lies in [da, db], each thread's part to
     * the start of its own stretch of tmp */
    const uint64_t da = sh->da, width = sh->db - sh->da;
    int64_t w = from;
    for (int64_t i = from; i < to; i++) {
        sh->tmp[w] = keys[i];
        w += (keys[i] >> shift) - da <= width;
    }
    sh->part_end[t] = w;
    if (t == 0) sh->parts = nt;
}

/* The key range [*lo, *hi] that holds the k-th largest of `total` keys with high probability,
 * from s sample keys (reordered; tmp holds s keys): the sample's keys of ascending ranks r - d
 * and r + d, where r is the k-th's expected rank in the sample and d is z standard
 * deviations of it (binomial) plus `margin` (for neighbours within a group being alike). Only
 * the keys near those ranks are sorted: a histogram of the top `bits` (<= 11) significant bits
 * picks them out (a full radix sort of the sample costs more than the selection it serves:
 * its skewed top digits chain every counter increment through the previous one). The passes
 * over the sample share `threads` threads: on one they took 0.3 ms of a 16M-key mask. */
void sample_range(uint64_t *keys, uint64_t *tmp, int64_t s, int64_t total, int64_t k,
                  uint64_t top, int bits, int64_t margin, int threads, double z, uint64_t *lo,
                  uint64_t *hi) {
    double p = (double)k / (double)total;
    int64_t r = (int64_t)((double)(total - k) / (double)total * (double)s);
    int64_t d = (int64_t)(z * sqrt((double)s * p * (1.0 - p))) + margin;
    int64_t a = r - d < 0 ? 0 : r - d, b = r + d >= s ? s - 1 : r + d;
    sample_share sh;
    sh.keys = keys;
    sh.tmp = tmp;
    sh.s = s;
    sh.a = a;
    sh.b = b;
    sh.bits = bits;
    memset(sh.h, 0, sizeof(uint32_t) * ((size_t)1 << bits));
    sh.kmax = sh.da = sh.db = 0;
    sh.above_db = 0;
    sh.parts = 1;
    if (threads > 1) {
        if (threads > SAMPLE_RANGE_THREADS) threads = SAMPLE_RANGE_THREADS;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        sample_range_part(&sh, tp_team_id(), tp_team_size());
    } else {
        sample_range_part(&sh, 0, 1);
    }
    /* the parts side by side, in thread order (so in sample order); they are short */
    int64_t m = 0;
    for (int t = 0; t < sh.parts; t++) {
        const int64_t from = s * t / sh.parts;
        memmove(tmp + m, tmp + from, (size_t)(sh.part_end[t] - from) * sizeof *tmp);
        m += sh.part_end[t] - from;
    }
    const int64_t above_db = sh.above_db;
    const int64_t base = s - above_db - m; /* the ascending rank of tmp's smallest key */
    /* the range may be wider than the sample says, never narrower: sort on the top 16 bits
     * of those in which these keys differ, then round the ends outwards over the bits left out */
    uint64_t vary = 0;
    for (int64_t i = 0; i < m; i++) vary |= tmp[i] ^ tmp[0];
    int high = bit_length(vary), low = high > 16 ? high - 16 : 0;
    uint64_t rest = ((uint64_t)1 << low) - 1;
    sort_keys(tmp, keys, m, low, high);
    *lo = r - d < 0 ? 0 : tmp[a - base] & ~rest;
    *hi = r + d >= s ? top : tmp[b - base] | rest;
}

