/*
 * candidates.c: the exact selection among collected candidates (step 5 of the whole-array
 * paths, and of the per-slice ones): the candidates are few and in cache.
 */
#include "topk_internal.h"

/* Radix-select among candidates that share the prefix key >> shift: the need-th largest
 * (ties: lower index first). Compacts into dst (may equal src). Writes the threshold key and
 * the index of the last kept element equal to it. Candidates are in index order. */
void select_candidates(const int64_t *src_idx, const uint64_t *src_key, int64_t count,
                       int64_t need, int shift, int64_t *dst_idx, uint64_t *dst_key,
                       uint64_t *threshold, int64_t *cut) {
    const int64_t *si = src_idx;
    const uint64_t *sk = src_key;
    while (shift > 0 && count > need) {
        int bits = shift >= 8 ? 8 : shift;
        int ns = shift - bits;
        uint64_t dmask = ((uint64_t)1 << bits) - 1;
        int64_t h[256];
        memset(h, 0, sizeof h);
        for (int64_t i = 0; i < count; i++) h[(sk[i] >> ns) & dmask]++;
        int64_t above = 0, b = (int64_t)dmask;
        for (; b > 0; b--) {
            if (above + h[b] >= need) break;
            above += h[b];
        }
        need -= above;
        /* stable compaction, branch-free: always store, advance only on a match */
        int64_t w = 0;
        for (int64_t i = 0; i < count; i++) {
            int64_t id = si[i];
            uint64_t key = sk[i];
            dst_idx[w] = id;
            dst_key[w] = key;
            w += ((key >> ns) & dmask) == (uint64_t)b;
        }
        count = w;
        si = dst_idx;
        sk = dst_key;
        shift = ns;
    }
    if (count == need) {
        /* every remaining candidate is kept: the threshold is the smallest of them */
        uint64_t t = sk[0];
        for (int64_t i = 1; i < count; i++) t = sk[i] < t ? sk[i] : t;
        int64_t c = -1;
        for (int64_t i = 0; i < count; i++)
            if (sk[i] == t) c = si[i];
        *threshold = t;
        *cut = c;
        return;
    }
    /* shift == 0: all remaining share one key; keep the first `need` in index order */
    *threshold = sk[0];
    *cut = si[need - 1];
}
