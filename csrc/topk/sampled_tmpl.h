/*
 * sampled_tmpl.h: the sampled path of whole-array selection for one element type (see
 * key_type.h and sampled.c).
 */
#include "key_type.h"

#define DRAW_SAMPLE TP_CAT(draw_sample, SUF)

/* `groups` groups of TOPK_SAMPLE_GROUP neighbours (consecutive in the concatenation),
 * one at a jittered position in each of `groups` equal strata of it (strata, so every
 * part of the data is seen; jitter, so a period in the data cannot line up with the
 * strata). The groups are far apart, each a cache (and TLB) miss: the threads share
 * them, and each fetches the group TOPK_SAMPLE_AHEAD draws on, with a cursor of its
 * own, so that many misses are in flight instead of one (16M float32: 0.95 ms on one
 * thread without the prefetch, 0.57 ms with it, 0.28 ms on two threads). */
static int64_t DRAW_SAMPLE(const tp_topk_segment *segs, int64_t total, int64_t groups,
                           uint64_t *out, int threads) {
    const int64_t stride = total / groups; /* > TOPK_SAMPLE_GROUP by the caller */
    const int64_t span = stride - TOPK_SAMPLE_GROUP + 1; /* so p + GROUP <= total */
    (void)threads;
    #pragma omp parallel num_threads(threads) if(threads > 1)
    {
        int64_t s = 0, off = 0, ps = 0, poff = 0;
        #pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            if (g + TOPK_SAMPLE_AHEAD < groups) {
                int64_t ga = g + TOPK_SAMPLE_AHEAD;
                int64_t pa = ga * stride + jitter((uint64_t)ga, span);
                while (pa >= poff + segs[ps].numel) poff += segs[ps++].numel;
                const BITS_T *xa = (const BITS_T *)segs[ps].data + (pa - poff);
                __builtin_prefetch(xa);
                __builtin_prefetch(xa + TOPK_SAMPLE_GROUP - 1);
            }
            int64_t p = g * stride + jitter((uint64_t)g, span);
            while (p >= off + segs[s].numel) off += segs[s++].numel;
            uint64_t *o = out + g * TOPK_SAMPLE_GROUP;
            if (p - off + TOPK_SAMPLE_GROUP <= segs[s].numel) {
                const BITS_T *x = (const BITS_T *)segs[s].data + (p - off);
                for (int64_t j = 0; j < TOPK_SAMPLE_GROUP; j++)
                    o[j] = (KEY_T)(x[j] & KEY_ABS);
            } else { /* the group runs on into later segments */
                int64_t gs = s, goff = off;
                for (int64_t j = 0; j < TOPK_SAMPLE_GROUP; j++, p++) {
                    while (p >= goff + segs[gs].numel) goff += segs[gs++].numel;
                    o[j] = (KEY_T)(((const BITS_T *)segs[gs].data)[p - goff] & KEY_ABS);
                }
            }
        }
    }
    return groups * TOPK_SAMPLE_GROUP;
}

/* The sampled path (sampled.c) over the job's units, with this ISA's passes: TP_OK,
 * TP_ERR_NONFINITE, or 1 when the bracket missed and the histogram path must run. */
int TP_CAT(sampled_select, SUF)(const topk_job *job, const TP_CAT(topk_passes, SUF) *pass, double z,
                                uint64_t *threshold_key) {
    /* the sample goes to the second candidate area, the bracket from it */
    const tp_topk_segment *segs = job->segs;
    const int64_t total = job->total, k = job->k, cap = job->cap;
    const int threads = job->threads;
    int64_t *cidx2 = job->cidx2;
    uint64_t *ckey2 = job->ckey2;
    int64_t groups = total / 512 < TOPK_SAMPLE_GROUPS ? total / 512 : TOPK_SAMPLE_GROUPS;
    if (groups * TOPK_SAMPLE_GROUP > cap) groups = cap / TOPK_SAMPLE_GROUP;
    if (groups < 64) return 1;
    uint64_t *sample = (uint64_t *)cidx2;
    int64_t ns = DRAW_SAMPLE(segs, total, groups, sample, threads);
    uint64_t lo64, hi64;
    sample_range(sample, ckey2, ns, total, k, KEY_ABS, 11, 2 * TOPK_SAMPLE_GROUP, threads, z,
                 &lo64, &hi64);
    const KEY_T LO = (KEY_T)lo64, HI = (KEY_T)hi64;
    /* the pass: each unit collects into its share of the first candidate area, its kept count
     * and largest key into its stats (the histogram area: units stats, then units digit
     * histograms of 256) */
    const int64_t count = job->count, units = job->units;
    const int want_mask = job->want_mask, packed = job->packed, zero = job->zero;
    const topk_range *ranges = job->ranges;
    mark_stats *stats = (mark_stats *)job->hist;
    int64_t *offsets = job->offsets, *ends = job->ends;
    int64_t *cidx = job->cidx;
    uint64_t *ckey = job->ckey;
    const int64_t per_unit = cap / units;
    (void)threads;
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int64_t u = 0; u < units; u++) {
        mark_stats *st = stats + u;
        int64_t w = 0, *ui = cidx + u * per_unit;
        uint64_t *uk = ckey + u * per_unit;
        st->above = 0;
        st->kmax = 0;
        for (topk_piece p = piece_first(segs, count, ranges[u].lo, ranges[u].hi); p.s < count;
             piece_next(segs, count, ranges[u].lo, ranges[u].hi, &p)) {
            if (w < 0) continue;
            int64_t c = pass->range((BITS_T *)segs[p.s].data, p.a, p.b, p.off, LO, HI,
                                    want_mask ? (uint8_t *)segs[p.s].mask : NULL, packed, ui + w,
                                    uk + w, per_unit - w, st);
            w = c < 0 ? -1 : w + c;
        }
        offsets[u] = w;
    }
    int64_t above = 0, found = 0;
    for (int64_t u = 0; u < units; u++) {
        if (stats[u].kmax > KEY_INF) return TP_ERR_NONFINITE;
        if (offsets[u] < 0) return 1;
        above += stats[u].above;
        found += offsets[u];
    }
    int64_t need = k - above;
    if (need < 1 || need > found) return 1;
    /* The selection's first digit runs per unit, in parallel: each unit counts its
     * candidates' top digits, then copies those in the k-th key's bucket to their place
     * in cidx2 (units in order, so index order holds). This replaced gathering all the
     * units' candidates into one list, a serial copy of every candidate. */
    const int shift = bit_length((uint64_t)(KEY_T)(HI - LO));
    const int dshift = shift > 8 ? shift - 8 : 0;
    uint32_t *digits = (uint32_t *)(stats + units); /* units x 256, histogram area */
    for (int64_t u = 0; u < units; u++) {
        ends[u] = u * per_unit + offsets[u];
        offsets[u] = u * per_unit;
    }
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int64_t u = 0; u < units; u++) {
        uint32_t *h = digits + 256 * u;
        memset(h, 0, 256 * sizeof *h);
        for (int64_t i = offsets[u]; i < ends[u]; i++) h[ckey[i] >> dshift]++;
    }
    int64_t bucket = 255, in_bucket = 0;
    for (;; bucket--) {
        in_bucket = 0;
        for (int64_t u = 0; u < units; u++) in_bucket += digits[256 * u + bucket];
        if (in_bucket >= need || bucket == 0) break;
        need -= in_bucket;
    }
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int64_t u = 0; u < units; u++) {
        int64_t w = 0;
        for (int64_t v = 0; v < u; v++) w += digits[256 * v + bucket];
        for (int64_t i = offsets[u]; i < ends[u]; i++) {
            if ((int64_t)(ckey[i] >> dshift) == bucket) { /* a few in 256: well predicted */
                cidx2[w] = cidx[i];
                ckey2[w++] = ckey[i];
            }
        }
    }
    uint64_t trel;
    int64_t cut;
    select_candidates(cidx2, ckey2, in_bucket, need, dshift, cidx2, ckey2, &trel, &cut);
    *threshold_key = (uint64_t)LO + trel;
    if (zero) {
        #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
        for (int64_t u = 0; u < units; u++) {
            for (topk_piece p = piece_first(segs, count, ranges[u].lo, ranges[u].hi); p.s < count;
                 piece_next(segs, count, ranges[u].lo, ranges[u].hi, &p))
                pass->zero_below((BITS_T *)segs[p.s].data, p.a, p.b, LO);
        }
    }
    if (want_mask || zero)
        TP_CAT(scatter, SUF)(job, offsets, ends, cidx, ckey, trel, cut);
    return TP_OK;
}

#undef DRAW_SAMPLE
#include "key_type_end.h"
