/*
 * rows_tmpl.h: the per-slice selection of one element type (see key_type.h and rows.c).
 */
#include "key_type.h"

#define ROW_SAMPLED TP_CAT(row_sampled, SUF)
#define ROWS TP_CAT(rows, SUF)
#define ANY_NAN TP_CAT(any_nan, SUF)

/* 1 when x[0, n) holds a NaN. */
static int ANY_NAN(const BITS_T *x, int64_t n) {
    KEY_T mx = 0;
    for (int64_t i = 0; i < n; i++) {
        KEY_T key = (KEY_T)(x[i] & KEY_ABS);
        mx = key > mx ? key : mx;
    }
    return mx > KEY_INF;
}

/* The sampled path for one contiguous slice (bool mask or none): a sample of every
 * len/TOPK_ROW_SAMPLE-th key (jittered) brackets the k-th key, one pass over the slice writes
 * the mask outside the bracket and collects the keys inside, and the exact selection runs on
 * those. Slices up to ROW_SPLIT_MAX_LEN with AVX2 take the split path instead (16-bit ones
 * unless zeroed in place), and come here only when it misses. Returns 0, 1 on NaN, 2 when the bracket missed (the
 * histogram path then redoes the slice), or 3 for slices shorter than TOPK_ROW_SAMPLE_MIN
 * that the split path did not take (the histogram path does them). Workspace: keys of `len`
 * (the split path's), cidx and ckey of `len` entries each; halves hold candidates and their
 * compaction. z: the bracket's half-width in standard deviations. */
static int ROW_SAMPLED(BITS_T *x, int64_t len, int64_t k, int zero, uint8_t *mask, uint64_t *thr,
                       KEY_T *keys, int64_t *cidx, uint64_t *ckey, double z,
                       const TP_CAT(topk_passes, SUF) *pass) {
    const int64_t half = len / 2, ns = TOPK_ROW_SAMPLE, stride = len / TOPK_ROW_SAMPLE;
    /* with AVX2 the split path goes first (x86_avx2_split.c) */
    int split = pass->row_split ? pass->row_split(x, len, k, zero, mask, thr, keys, cidx, ckey, z) : 2;
    if (split < 2) return split;
    if (len < TOPK_ROW_SAMPLE_MIN) return 3; /* short: straight to the histogram path */
    uint64_t *sample = ckey, *tmp = (uint64_t *)cidx;
    /* fetch the next slice while this one is worked on (prefetches never fault, so
     * running past the array's end is harmless) */
    for (int64_t b = 0; b < len * (int64_t)sizeof(BITS_T); b += 64)
        __builtin_prefetch((const char *)(x + len) + b);
    for (int64_t j = 0; j < ns; j++)
        sample[j] = (KEY_T)(x[j * stride + jitter((uint64_t)j, stride)] & KEY_ABS);
    uint64_t lo64, hi64;
    sample_range(sample, tmp, ns, len, k, KEY_ABS, 8, 2, 1, z, &lo64, &hi64);
    const KEY_T LO = (KEY_T)lo64, HI = (KEY_T)hi64;
    mark_stats st = {0, 0};
    int64_t found = pass->range(x, 0, len, 0, LO, HI, mask, 0, cidx, ckey, half, &st);
    if (st.kmax > KEY_INF) return 1;
    int64_t need = k - st.above;
    if (found < 0 || need < 1 || need > found) return 2;
    uint64_t trel;
    int64_t cut;
    select_candidates(cidx, ckey, found, need, bit_length((uint64_t)(KEY_T)(HI - LO)),
                      cidx + half, ckey + half, &trel, &cut);
    if (thr) *thr = (uint64_t)LO + trel;
    if (zero) pass->zero_below(x, 0, len, LO);
    /* branch-free: about half the candidates are kept, unpredictably */
    if (mask)
        for (int64_t i = 0; i < found; i++)
            mask[cidx[i]] = (uint8_t)((ckey[i] > trel) | ((ckey[i] == trel) & (cidx[i] <= cut)));
    if (zero)
        for (int64_t i = 0; i < found; i++)
            if (!((ckey[i] > trel) | ((ckey[i] == trel) & (cidx[i] <= cut)))) x[cidx[i]] = 0;
    return 0;
}

/* Every slice of x viewed as (outer, len, inner), whole slices per thread, with this ISA's
 * passes; *misses_out counts the slices whose sampled bracket missed. */
static int ROWS(BITS_T *x, int64_t outer, int64_t len, int64_t inner, int64_t k, int32_t flags,
                uint8_t *mask, uint64_t *thr, char *ws, int64_t ws_bytes, double z,
                int64_t *misses_out, const TP_CAT(topk_passes, SUF) *pass) {
    const topk_levels *lv = &TP_CAT(LEVELS, SUF);
    const int64_t per = rows_thread_bytes(DTYPE_CODE, len);
    const int64_t rows = outer * inner;
    const int packed = (flags & TP_TOPK_PACKED) != 0, zero = (flags & TP_TOPK_ZERO) != 0;
    if (flags & TP_TOPK_NO_MASK) mask = NULL;
    int threads = tp_threads_for(rows * len, TOPK_ROWS_MIN_PER_THREAD);
    if (threads > rows) threads = (int)rows;
    /* packed bits of different slices share bytes unless slices are contiguous and
     * threads split at byte boundaries */
    int64_t group = 1;
    if (packed && mask) {
        if (inner != 1)
            threads = 1;
        else
            group = 8 / gcd64(len % 8 == 0 ? 8 : len % 8, 8);
    }
    while (threads > 1 && per * threads > ws_bytes) threads--;
    TP_RETURN_IF(per > ws_bytes, TP_ERR_BUFFER);
    const int64_t groups = (rows + group - 1) / group;
    int nan = 0;
    int64_t misses = 0;
    /* in-place zeroing must not start before every slice is known to be NaN-free */
    if (zero && ANY_NAN(x, rows * len)) return TP_ERR_NONFINITE;
    (void)threads;
    #pragma omp parallel num_threads(threads) reduction(|:nan) reduction(+:misses) if(threads > 1)
    {
        const int tid = tp_team_id();
        char *mine = ws + per * tid;
        uint32_t *h = (uint32_t *)mine;
        KEY_T *keys = (KEY_T *)(mine + ((int64_t)4 << lv->bits[0]));
        /* 8-aligned: 4-byte keys of an odd length would leave cidx at 4 mod 8 */
        int64_t *cidx = (int64_t *)((char *)keys + ((len * (int64_t)sizeof(KEY_T) + 7) & ~(int64_t)7));
        uint64_t *ckey = (uint64_t *)(cidx + len);
        memset(h, 0, (size_t)4 << lv->bits[0]);
        #pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            int64_t r_end = (g + 1) * group < rows ? (g + 1) * group : rows;
            for (int64_t r = g * group; r < r_end; r++) {
                int64_t o = r / inner, j = r % inner;
                int64_t base = o * len * inner + j;
                if (inner == 1 && !packed && len >= ROW_SPLIT_MIN_LEN && k > 0 && k < len &&
                    z >= 0) {
                    int status = ROW_SAMPLED(x + base, len, k, zero, mask ? mask + base : NULL,
                                             thr ? thr + r : NULL, keys, cidx, ckey, z, pass);
                    if (status < 2) {
                        nan |= status;
                        continue;
                    }
                    if (status == 2) /* 3: too short for the one-pass sampled path */
                        misses++;
                }
                nan |= pass->row(x + base, len, inner, k, packed, zero, mask, base,
                                 thr ? thr + r : NULL, lv, h, keys, cidx, ckey);
            }
        }
    }
    *misses_out += misses;
    return nan ? TP_ERR_NONFINITE : TP_OK;
}

#undef ROW_SAMPLED
#undef ROWS
#undef ANY_NAN
#include "key_type_end.h"
