/*
 * histogram_tmpl.h: the histogram path of whole-array selection for one element type (see
 * key_type.h and histogram.c), and the scatter that ends both whole-array paths.
 */
#include "key_type.h"

#define HIST_PIECE TP_CAT(hist_piece, SUF)
#define FIND_CUT TP_CAT(find_cut, SUF)

/* Histogram of the digit (key >> shift) & dmask over x[0, n); at level > 0 only keys whose
 * prefix key >> pshift equals `prefix` count. */
static int HIST_PIECE(const BITS_T *TP_RESTRICT x, int64_t n, int shift, KEY_T dmask, int restricted,
                      int pshift, KEY_T prefix, uint32_t *TP_RESTRICT h) {
    int nan = 0;
    if (!restricted) {
        /* NaN is found from the histogram afterwards (below): the hot loop
         * is only load, mask, shift, increment */
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) {
            KEY_T k0 = (KEY_T)(x[i] & KEY_ABS), k1 = (KEY_T)(x[i + 1] & KEY_ABS);
            KEY_T k2 = (KEY_T)(x[i + 2] & KEY_ABS), k3 = (KEY_T)(x[i + 3] & KEY_ABS);
            h[k0 >> shift]++;
            h[k1 >> shift]++;
            h[k2 >> shift]++;
            h[k3 >> shift]++;
        }
        for (; i < n; i++) h[(KEY_T)(x[i] & KEY_ABS) >> shift]++;
        /* every NaN key lies in a digit >= Inf's; only the digit shared with Inf needs
         * a look at the keys themselves (rare: the data holds an Inf or a NaN) */
        KEY_T inf_digit = KEY_INF >> shift;
        for (KEY_T d = inf_digit + 1; d <= dmask; d++) nan |= h[d] != 0;
        if (!nan && h[inf_digit]) {
            KEY_T mx = 0;
            for (int64_t j = 0; j < n; j++) {
                KEY_T key = (KEY_T)(x[j] & KEY_ABS);
                mx = key > mx ? key : mx;
            }
            nan = mx > KEY_INF;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            KEY_T k = (KEY_T)(x[i] & KEY_ABS);
            if ((k >> pshift) == prefix) h[(k >> shift) & dmask]++;
        }
    }
    return nan;
}

/* The index of the need-th element (in index order) whose key is T. */
static int64_t FIND_CUT(const tp_topk_segment *segs, int64_t count, KEY_T T, int64_t need) {
    int64_t off = 0;
    for (int64_t s = 0; s < count; s++) {
        const BITS_T *x = (const BITS_T *)segs[s].data;
        int64_t n = segs[s].numel;
        for (int64_t b = 0; b < n; b += 256) {
            int64_t len = n - b < 256 ? n - b : 256, c = 0;
            for (int64_t j = 0; j < len; j++) c += (KEY_T)(x[b + j] & KEY_ABS) == T;
            if (c >= need) {
                for (int64_t j = 0; j < len; j++)
                    if ((KEY_T)(x[b + j] & KEY_ABS) == T && --need == 0) return off + b + j;
            }
            need -= c;
        }
        off += n;
    }
    return off - 1; /* not reached when the counts are right */
}

/* Step 6 of both paths (paths_tmpl.h): decide the collected candidates and write them into
 * the masks, each unit its own, so units never write the same byte. */
void TP_CAT(scatter, SUF)(const topk_job *job, const int64_t *first, const int64_t *last,
                          const int64_t *cidx, const uint64_t *ckey, uint64_t trel, int64_t cut) {
    const tp_topk_segment *segs = job->segs;
    const int64_t units = job->units;
    const int want_mask = job->want_mask, packed = job->packed, zero = job->zero;
    const int threads = job->threads;
    (void)threads;
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int64_t u = 0; u < units; u++) {
        const int64_t end = last[u];
        int64_t s = 0, off = 0;
        for (int64_t i = first[u]; i < end; i++) {
            int64_t id = cidx[i];
            while (id >= off + segs[s].numel) off += segs[s++].numel;
            int64_t j = id - off;
            /* the candidates are spread over the whole mask, about one per cache line:
             * fetch the line of a later one while this one is written */
            if (want_mask && i + 16 < end && cidx[i + 16] - off < segs[s].numel)
                __builtin_prefetch((uint8_t *)segs[s].mask +
                                       ((cidx[i + 16] - off) >> (packed ? 3 : 0)), 1);
            int keep = ckey[i] > trel || (ckey[i] == trel && id <= cut);
            if (keep) {
                if (want_mask) {
                    uint8_t *mk = (uint8_t *)segs[s].mask;
                    if (packed)
                        mk[j >> 3] |= (uint8_t)(0x80u >> (j & 7));
                    else
                        mk[j] = 1;
                }
            } else if (zero) {
                ((BITS_T *)segs[s].data)[j] = 0;
            }
        }
    }
}

/* Steps 1-6 of histogram.c over the job's units, with this ISA's passes. */
int TP_CAT(histogram_select, SUF)(const topk_job *job, const TP_CAT(topk_passes, SUF) *pass,
                                  uint64_t *threshold_key) {
    const tp_topk_segment *segs = job->segs;
    const int64_t count = job->count, total = job->total, k = job->k;
    const int64_t units = job->units, cap = job->cap;
    const int want_mask = job->want_mask, packed = job->packed, zero = job->zero;
    const int threads = job->threads;
    const topk_range *ranges = job->ranges;
    uint32_t *hist = job->hist;
    int64_t *offsets = job->offsets, *ends = job->ends;
    int64_t *cidx = job->cidx, *cidx2 = job->cidx2;
    uint64_t *ckey = job->ckey, *ckey2 = job->ckey2;
    const topk_levels *lv = &TP_CAT(LEVELS, SUF);
    const int64_t B = (int64_t)1 << lv->bits[0];
    (void)threads;
    /* 1-3: histogram levels until the bucket of the k-th key fits the candidate space */
    KEY_T P = 0;
    int64_t need = k, bucket = total;
    int L = 0, nan = 0;
    for (L = 0; L < lv->levels; L++) {
        const int shift = lv->shift[L], bits = lv->bits[L];
        const int64_t nb = (int64_t)1 << bits;
        const int restricted = L > 0, pshift = shift + bits;
        const KEY_T prefix = P, dmask = (KEY_T)(nb - 1);
        #pragma omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)
        for (int64_t u = 0; u < units; u++) {
            uint32_t *h = hist + u * B;
            memset(h, 0, sizeof(uint32_t) * (size_t)nb);
            for (topk_piece p = piece_first(segs, count, ranges[u].lo, ranges[u].hi); p.s < count;
                 piece_next(segs, count, ranges[u].lo, ranges[u].hi, &p))
                nan |= HIST_PIECE((const BITS_T *)segs[p.s].data + p.a, p.b - p.a, shift, dmask,
                                  restricted, pshift, prefix, h);
        }
        TP_RETURN_IF(nan, TP_ERR_NONFINITE);
        if (k == 0) break;
        int64_t above = 0, d = nb - 1, c = 0;
        for (; d >= 0; d--) {
            c = 0;
            for (int64_t u = 0; u < units; u++) c += hist[u * B + d];
            if (above + c >= need) break;
            above += c;
        }
        need -= above;
        P = (KEY_T)((P << bits) | (KEY_T)d);
        bucket = c;
        for (int64_t u = 0, acc = 0; u < units; u++) {
            offsets[u] = acc;
            acc += hist[u * B + d];
        }
        if (shift == 0 || bucket <= cap) break;
    }
    KEY_T T;
    int64_t cut;
    int shift = k == 0 ? 0 : lv->shift[L];
    if (k == 0) {
        T = (KEY_T)~(KEY_T)0 >> 1; /* no key (but NaN) reaches it: nothing kept */
        cut = -1;
    } else if (shift == 0) {
        T = P;
        cut = need == bucket ? total : FIND_CUT(segs, count, T, need);
    } else {
        /* 4: write the mask outside the bucket and collect the bucket */
        const KEY_T PP = P;
        const int sh = shift;
        #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
        for (int64_t u = 0; u < units; u++) {
            int64_t w = offsets[u];
            for (topk_piece p = piece_first(segs, count, ranges[u].lo, ranges[u].hi); p.s < count;
                 piece_next(segs, count, ranges[u].lo, ranges[u].hi, &p))
                w += pass->bucket((BITS_T *)segs[p.s].data, p.a, p.b, p.off, sh, PP,
                                  want_mask ? (uint8_t *)segs[p.s].mask : NULL, packed, zero,
                                  cidx + w, ckey + w);
        }
        /* 5: the exact threshold among the candidates */
        uint64_t t64;
        select_candidates(cidx, ckey, bucket, need, shift, cidx2, ckey2, &t64, &cut);
        T = (KEY_T)t64;
        *threshold_key = (uint64_t)T;
        if (!want_mask && !zero) return TP_OK;
        /* 6: scatter the kept candidates */
        for (int64_t u = 0; u < units; u++) ends[u] = u + 1 < units ? offsets[u + 1] : bucket;
        TP_CAT(scatter, SUF)(job, offsets, ends, cidx, ckey, T, cut);
        return TP_OK;
    }
    *threshold_key = k == 0 ? 0 : (uint64_t)T;
    if (!want_mask && !zero) return TP_OK;
    /* the rule pass: keep key > T, and key == T up to index cut */
    const KEY_T TT = T;
    const int64_t CUT = cut;
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int64_t u = 0; u < units; u++) {
        for (topk_piece p = piece_first(segs, count, ranges[u].lo, ranges[u].hi); p.s < count;
             piece_next(segs, count, ranges[u].lo, ranges[u].hi, &p))
            pass->rule((BITS_T *)segs[p.s].data, p.a, p.b, p.off, TT, CUT,
                       want_mask ? (uint8_t *)segs[p.s].mask : NULL, packed, zero);
    }
    return TP_OK;
}

#undef HIST_PIECE
#undef FIND_CUT
#include "key_type_end.h"
