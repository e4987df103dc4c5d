/*
 * topk_internal.h: what the files of the top-k family share (never seen by cffi).
 *
 * The family, one concern per file:
 *   keys.h, key_type.h        magnitude keys, digit levels, the type parameters of templates
 *   select.c                  tp_topk_select: checks, workspace, dispatch; histogram or sampled
 *   histogram.c (+ _tmpl.h)   the histogram path of whole-array selection, and the scatter
 *   sampled.c (+ _tmpl.h)     the sampled path: a sample brackets the k-th key, one pass
 *   sample_range.c            the bracket from a sample (shared with the per-slice paths)
 *   candidates.c              the exact selection among collected candidates
 *   rows.c (+ _tmpl.h)        tp_topk_rows: per-slice selection
 *   nm.c (+ nm_body_tmpl.h)   tp_nm_mask: N:M masks
 *   mark_body_tmpl.h, row_body_tmpl.h   the vectorizing pass bodies, once per type
 *   variants.c                those bodies compiled per ISA: the pass tables below
 *   x86_avx2.c                hand-written AVX2 passes (range_*_avx2, nm4_*_avx2)
 *   x86_avx2_split.c          the hand-written split path of float32 slices
 *   ref.c                     the scalar references (the TP_ISA_SCALAR slots)
 */
#ifndef TP_TOPK_INTERNAL_H
#define TP_TOPK_INTERNAL_H

#include "keys.h"

/* A second thread pays off from 64K elements (10% masks, float32: 64K keys 0.72e9 -> 1.3e9
 * elements/s, 256K 1.24e9 -> 2.2e9); at 32K a second thread still gained, but each thread's
 * histograms are merged serially, so many cores on small arrays would cost more than gain. */
#define TOPK_MIN_PER_THREAD 32768
#define TOPK_ROWS_MIN_PER_THREAD 65536
#define TOPK_ALIGN 64                /* unit ranges start at multiples of 64 of their segment, so
                                      * packed bytes and cache lines are never shared */
#define TOPK_BLOCK 64
#define TOPK_UNIT_MAX ((int64_t)1 << 31) /* elements per unit: its uint32 histogram never overflows */
#define NM_MAX_M 64
/* Contiguous slices from this length try the per-slice sampled paths (rows.c): the split path
 * from 4x its sample (1024-key rows: 0.44e9 -> 1.0e9 elements/s, 2 threads). */
#define ROW_SPLIT_MIN_LEN 512
/* The sampled paths' default bracket half-width in standard deviations (tp_topk_options). */
#define TOPK_SAMPLE_WIDTH 3.5
/* Whole arrays below these sizes skip the sampled path (sampled.c): the histogram path is
 * faster, its passes run in cache. With the hand-vectorized sampled pass (range_*_avx2) the
 * sampled path wins from 96K keys (2 threads, 10% masks, against the histogram path: float32
 * 128K keys 1.05e9 -> 1.5e9 elements/s, float16 256K 1.2e9 -> 2.6e9, float64 128K 0.56e9 ->
 * 1.1e9); with the compiled generic pass only near 512K (float32, portable build: 256K
 * 1.32e9 histogram, 1.06e9 sampled). */
#define TOPK_SAMPLE_MIN_VECTOR ((int64_t)3 << 15)
#define TOPK_SAMPLE_MIN ((int64_t)1 << 19)

typedef struct {
    int64_t lo, hi;
} topk_range;

/* What the sampled mask pass tallies besides the mask: keys above the range, largest key. */
typedef struct {
    int64_t above;
    uint64_t kmax;
} mark_stats;

/* One piece of a virtual range [lo, hi) of a concatenation of segments: segment s, its
 * elements [a, b), and off, the virtual index of its element 0. Iterate with
 *   for (topk_piece p = piece_first(segs, count, lo, hi); p.s < count;
 *        piece_next(segs, count, lo, hi, &p))                                                */
typedef struct {
    int64_t s, a, b, off;
} topk_piece;

/* From p->s (at virtual index p->off) on, the first segment holding part of [lo, hi). */
TP_ALWAYS_INLINE void piece_seek(const tp_topk_segment *segs, int64_t count, int64_t lo,
                                 int64_t hi, topk_piece *p) {
    for (; p->s < count && p->off < hi; p->off += segs[p->s].numel, p->s++) {
        const int64_t n = segs[p->s].numel;
        p->a = lo > p->off ? lo - p->off : 0;
        p->b = hi - p->off < n ? hi - p->off : n;
        if (p->a < p->b) return;
    }
    p->s = count;
}

TP_ALWAYS_INLINE topk_piece piece_first(const tp_topk_segment *segs, int64_t count, int64_t lo,
                                        int64_t hi) {
    topk_piece p = {0, 0, 0, 0};
    piece_seek(segs, count, lo, hi, &p);
    return p;
}

TP_ALWAYS_INLINE void piece_next(const tp_topk_segment *segs, int64_t count, int64_t lo,
                                 int64_t hi, topk_piece *p) {
    p->off += segs[p->s].numel;
    p->s++;
    piece_seek(segs, count, lo, hi, p);
}

/* The per-ISA passes of each type (passes_tmpl.h), and which sizes take the sampled path. */
#define TOPK_DTYPE TP_FLOAT16
#include "passes_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "passes_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "passes_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "passes_tmpl.h"

typedef struct {
    const topk_passes_f16 *f16;
    const topk_passes_bf16 *bf16;
    const topk_passes_f32 *f32;
    const topk_passes_f64 *f64;
    int64_t sample_min; /* whole arrays from this size try the sampled path */
} topk_passes;

/* variants.c: the passes compiled for each ISA (the AVX ones only on x86). */
extern const topk_passes TOPK_PASSES_BASELINE;
#if TP_HAVE_X86_VARIANTS
extern const topk_passes TOPK_PASSES_AVX2;
extern const topk_passes TOPK_PASSES_AVX512;
#endif

#if TP_HAVE_X86_VARIANTS
/* x86_avx2.c: the hand-written sampled passes (a prefix of x[lo, hi): *done elements; the
 * candidates collected or -1 past cap) and 4-element N:M groups (*done groups; 1 on NaN).
 * range_f16_avx2 serves bfloat16 too: it only compares 15-bit keys; the caller checks kmax. */
TP_TARGET_AVX2 int64_t range_f16_avx2(const uint16_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                      uint32_t LO, uint32_t HI, uint8_t *mask, int64_t *cidx,
                                      uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done);
TP_TARGET_AVX2 int64_t range_f32_avx2(const uint32_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                      uint32_t LO, uint32_t HI, uint8_t *mask, int64_t *cidx,
                                      uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done);
TP_TARGET_AVX2 int64_t range_f64_avx2(const uint64_t *x, int64_t lo, int64_t hi, int64_t vbase,
                                      uint64_t LO, uint64_t HI, uint8_t *mask, int64_t *cidx,
                                      uint64_t *ckey, int64_t cap, mark_stats *st, int64_t *done);
TP_TARGET_AVX2 int nm4_f16_avx2(const uint16_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                int64_t *done);
TP_TARGET_AVX2 int nm4_bf16_avx2(const uint16_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                 int64_t *done);
TP_TARGET_AVX2 int nm4_f32_avx2(const uint32_t *x, int64_t groups, int32_t n, uint8_t *mask,
                                int64_t *done);
/* x86_avx2_split.c: the split path of one contiguous float32 slice (row_split_fn). */
TP_TARGET_AVX2 int row_split_f32_avx2(uint32_t *x, int64_t len, int64_t k, int zero,
                                      uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                      int64_t *cidx, uint64_t *ckey, double z);
/* ... and of 16-bit slices, through widened keys. */
TP_TARGET_AVX2 int row_split_bf16_avx2(uint16_t *x, int64_t len, int64_t k, int zero,
                                       uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                       int64_t *cidx, uint64_t *ckey, double z);
TP_TARGET_AVX2 int row_split_f16_avx2(uint16_t *x, int64_t len, int64_t k, int zero,
                                      uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                      int64_t *cidx, uint64_t *ckey, double z);
#endif

/* candidates.c: radix-select among `count` candidates (index order) that share the prefix
 * key >> shift: the need-th largest, ties to the lower index. Compacts into dst (may equal
 * src). Writes the threshold key and the index of the last kept element equal to it. */
void select_candidates(const int64_t *src_idx, const uint64_t *src_key, int64_t count,
                       int64_t need, int shift, int64_t *dst_idx, uint64_t *dst_key,
                       uint64_t *threshold, int64_t *cut);

/* sample_range.c: the key range [*lo, *hi] that holds the k-th largest of `total` keys with
 * high probability, from s sample keys (see there). z: the half-width in standard deviations. */
void sample_range(uint64_t *keys, uint64_t *tmp, int64_t s, int64_t total, int64_t k,
                  uint64_t top, int bits, int64_t margin, int threads, double z, uint64_t *lo,
                  uint64_t *hi);
/* Walking down a histogram of digits from `top`: the digits holding the keys of descending
 * ranks r1 <= r2 into *d1 >= *d2, and the number of keys above *d1 into *above_d1. */
void digits_of_ranks(const uint32_t *h, int64_t top, int64_t r1, int64_t r2, uint64_t *d1,
                     uint64_t *d2, int64_t *above_d1);

/* One whole-array selection as select.c sets it up: the segments, the work split into units
 * (one or more per thread, each a range of the concatenation), and the workspace carved. */
typedef struct {
    const tp_topk_segment *segs;
    int64_t count, total, k;
    int want_mask, packed, zero;
    int threads;
    int64_t units, cap;
    const topk_range *ranges;        /* units ranges of the concatenation */
    uint32_t *hist;                  /* units histograms of the top digit (1 << bits[0]
                                      * counts each); the sampled path's stats and digits */
    int64_t *offsets, *ends;         /* units entries each */
    int64_t *cidx, *cidx2;           /* two candidate areas of cap (index, key) pairs */
    uint64_t *ckey, *ckey2;
} topk_job;

/* histogram.c and sampled.c, per type: the two paths of whole-array selection. */
#define TOPK_DTYPE TP_FLOAT16
#include "paths_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "paths_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "paths_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "paths_tmpl.h"

/* rows.c: one thread's share of the per-slice workspace: histogram, keys, candidates. */
int64_t rows_thread_bytes(int32_t dtype, int64_t len);

/* ref.c: the scalar references, plain C written for clarity (the TP_ISA_SCALAR slots).
 * Arguments are checked by the public entries. */
int tp_topk_select_ref(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                       int32_t flags, uint64_t *threshold_key);
int tp_topk_rows_ref(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thresholds);
int tp_nm_mask_ref(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask);

#endif /* TP_TOPK_INTERNAL_H */
