/* tp_topk.h: the topk kernel family's public declarations (see topk/, topk_internal.h first). */
#ifndef TP_TOPK_H
#define TP_TOPK_H

/* cdef: begin */
/* Every entry takes dtype TP_FLOAT32, TP_FLOAT64, TP_FLOAT16 or TP_BFLOAT16 (the 16-bit types as
 * their bits); a threshold key is the k-th largest element's bits with the sign cleared. */
/* flags of tp_topk_select / tp_topk_rows */
#define TP_TOPK_PACKED 1   /* masks are np.packbits bytes (first element = MSB of byte 0) */
#define TP_TOPK_ZERO 2     /* also zero every element that is not kept, in place */
#define TP_TOPK_NO_MASK 4  /* only find the threshold: no mask is written */

/* One array of a (virtual) concatenation; the flat index of an element in the concatenation
 * decides ties (lower index kept). */
typedef struct {
    void *data;    /* numel elements of the call's dtype; written only with TP_TOPK_ZERO */
    int64_t numel;
    void *mask;    /* numel bools, or ceil(numel/8) packed bytes; unused with TP_TOPK_NO_MASK */
} tp_topk_segment;

/* Per-call tuning of the sampled paths (large arrays, long slices: a sample brackets the
 * threshold, one pass does the rest; a miss falls back to the histogram path, so results never
 * depend on it). NULL: the defaults. */
typedef struct {
    double sample_width; /* the bracket's half-width in standard deviations (default 3.5);
                          * narrower makes misses frequent (tests use 0); negative turns the
                          * sampled paths off */
} tp_topk_options;

/* What one call did (NULL: not wanted); filled by every call that gets one. */
typedef struct {
    int64_t sample_misses; /* sampled brackets that missed (whole array: 0 or 1; per slice:
                            * the slices), each redone by the histogram path */
} tp_topk_stats;

/* Bytes of workspace tp_topk_select needs for `total` elements and room for `cand_cap`
 * candidates, with the current thread count. */
int64_t tp_topk_workspace_bytes(int32_t dtype, int64_t total, int64_t cand_cap);

/* Keep the k (0 <= k <= total) largest magnitudes of the concatenation of `count` segments:
 * exactly k kept, ties at the threshold keep the lower flat index. *threshold_key receives the
 * magnitude bits (sign cleared) of the k-th largest (0 when k == 0). NaN gives
 * TP_ERR_NONFINITE before any data is zeroed (TP_TOPK_ZERO); the masks may be partly written. */
int tp_topk_select(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                   int32_t flags, void *workspace, int64_t workspace_bytes, int64_t cand_cap,
                   const tp_topk_options *options, uint64_t *threshold_key,
                   tp_topk_stats *stats);
int tp_topk_select_isa(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                       int32_t flags, void *workspace, int64_t workspace_bytes,
                       int64_t cand_cap, const tp_topk_options *options,
                       uint64_t *threshold_key, tp_topk_stats *stats, int isa);

/* Bytes of workspace tp_topk_rows needs for slices of `len` elements. */
int64_t tp_topk_rows_workspace_bytes(int32_t dtype, int64_t len);

/* The same selection in every slice of an array viewed as (outer, len, inner), C-contiguous:
 * slice (o, j) holds the elements o*len*inner + l*inner + j for l in [0, len). `mask` has the
 * array's layout (bools, or packed bits of the flat array); `thresholds` (outer*inner entries,
 * or NULL) receives each slice's threshold bits. */
int tp_topk_rows(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                 int64_t k, int32_t flags, void *mask, uint64_t *thresholds, void *workspace,
                 int64_t workspace_bytes, const tp_topk_options *options, tp_topk_stats *stats);
int tp_topk_rows_isa(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thresholds,
                     void *workspace, int64_t workspace_bytes, const tp_topk_options *options,
                     tp_topk_stats *stats, int isa);

/* N:M mask: in every group of m consecutive elements along the middle axis of (outer, len,
 * inner) keep the n largest magnitudes (ties: lower index). len % m == 0, 0 <= n <= m <= 64. */
int tp_nm_mask(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
               int32_t n, int32_t m, uint8_t *mask);
int tp_nm_mask_isa(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask, int isa);
/* cdef: end */

#endif /* TP_TOPK_H */
