/*
 * rows.c: tp_topk_rows, the same selection in every slice of an array viewed as
 * (outer, len, inner). Slices are small: each thread takes whole slices, gathers a slice's keys
 * into its workspace (one read of memory), and runs the histogram steps there (row_body_tmpl.h).
 * Long contiguous slices take a sampled path of their own; with AVX2 first the split path
 * (x86_avx2_split.c; 16-bit slices through float32 keys), which reads a slice in cache three
 * times but never branches per key.
 */
#include "topk_internal.h"

#define TOPK_ROW_SAMPLE 512
#define TOPK_ROW_SAMPLE_MIN 2048 /* shorter slices: the histogram path costs no more */

/* One thread's share: histogram, keys, candidate indices and keys. */
int64_t rows_thread_bytes(int32_t dtype, int64_t len) {
    int64_t b = (int64_t)1 << levels_of(dtype)->bits[0];
    int64_t kb = dtype == TP_FLOAT64 ? 8 : 4;
    int64_t bytes = b * 4 + len * (kb + 16) + 8; /* + 8: cidx is 8-aligned after the keys */
    return (bytes + 63) & ~(int64_t)63;
}

int64_t tp_topk_rows_workspace_bytes(int32_t dtype, int64_t len) {
    if (!valid_dtype(dtype) || len < 0) return -1;
    return rows_thread_bytes(dtype, len) * tp_get_num_threads() + 64;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

#define TOPK_DTYPE TP_FLOAT16
#include "rows_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "rows_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "rows_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "rows_tmpl.h"

/* The dispatch table's signature: the entry's arguments, checked, with the options read. */
typedef int (*topk_rows_fn)(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                            int64_t k, int32_t flags, void *mask, uint64_t *thresholds, char *ws,
                            int64_t ws_bytes, double sample_width, int64_t *misses);

static int rows_with(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thr, char *ws,
                     int64_t ws_bytes, double z, int64_t *misses, const topk_passes *passes) {
    switch (dtype) {
        case TP_FLOAT32:
            return rows_f32((uint32_t *)data, outer, len, inner, k, flags, (uint8_t *)mask, thr,
                            ws, ws_bytes, z, misses, passes->f32);
        case TP_FLOAT64:
            return rows_f64((uint64_t *)data, outer, len, inner, k, flags, (uint8_t *)mask, thr,
                            ws, ws_bytes, z, misses, passes->f64);
        case TP_BFLOAT16:
            return rows_bf16((uint16_t *)data, outer, len, inner, k, flags, (uint8_t *)mask, thr,
                             ws, ws_bytes, z, misses, passes->bf16);
        default:
            return rows_f16((uint16_t *)data, outer, len, inner, k, flags, (uint8_t *)mask, thr,
                            ws, ws_bytes, z, misses, passes->f16);
    }
}

static int rows_scalar(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                       int64_t k, int32_t flags, void *mask, uint64_t *thr, char *ws,
                       int64_t ws_bytes, double z, int64_t *misses) {
    (void)ws, (void)ws_bytes, (void)z, (void)misses;
    return tp_topk_rows_ref(data, outer, len, inner, dtype, k, flags, mask, thr);
}

static int rows_baseline(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                         int64_t k, int32_t flags, void *mask, uint64_t *thr, char *ws,
                         int64_t ws_bytes, double z, int64_t *misses) {
    return rows_with(data, outer, len, inner, dtype, k, flags, mask, thr, ws, ws_bytes, z, misses,
                     &TOPK_PASSES_BASELINE);
}

#if TP_HAVE_X86_VARIANTS
static int rows_avx2(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thr, char *ws,
                     int64_t ws_bytes, double z, int64_t *misses) {
    return rows_with(data, outer, len, inner, dtype, k, flags, mask, thr, ws, ws_bytes, z, misses,
                     &TOPK_PASSES_AVX2);
}

static int rows_avx512(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                       int64_t k, int32_t flags, void *mask, uint64_t *thr, char *ws,
                       int64_t ws_bytes, double z, int64_t *misses) {
    return rows_with(data, outer, len, inner, dtype, k, flags, mask, thr, ws, ws_bytes, z, misses,
                     &TOPK_PASSES_AVX512);
}
#endif

static const topk_rows_fn TOPK_ROWS[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = rows_scalar,
    [TP_ISA_BASELINE] = rows_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = rows_avx2, [TP_ISA_AVX512] = rows_avx512, )
};

int tp_topk_rows_isa(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thresholds,
                     void *workspace, int64_t workspace_bytes, const tp_topk_options *options,
                     tp_topk_stats *stats, int isa) {
    if (stats) stats->sample_misses = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || outer < 0 || len < 0 || inner < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(flags & ~(TP_TOPK_PACKED | TP_TOPK_ZERO | TP_TOPK_NO_MASK), TP_ERR_ARGUMENT);
    TP_RETURN_IF(k < 0 || k > len, TP_ERR_ARGUMENT);
    if (outer == 0 || len == 0 || inner == 0) return TP_OK;
    TP_RETURN_IF(!data || !workspace, TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(flags & TP_TOPK_NO_MASK) && !mask, TP_ERR_ARGUMENT);
    TP_RETURN_IF(rows_thread_bytes(dtype, len) > workspace_bytes, TP_ERR_BUFFER);
    const double z = options ? options->sample_width : TOPK_SAMPLE_WIDTH;
    int64_t misses = 0;
    int status = TP_PICK(TOPK_ROWS, isa)(data, outer, len, inner, dtype, k, flags, mask,
                                         thresholds, (char *)workspace, workspace_bytes, z,
                                         &misses);
    if (stats) stats->sample_misses = misses;
    return status;
}

int tp_topk_rows(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                 int64_t k, int32_t flags, void *mask, uint64_t *thresholds, void *workspace,
                 int64_t workspace_bytes, const tp_topk_options *options, tp_topk_stats *stats) {
    return tp_topk_rows_isa(data, outer, len, inner, dtype, k, flags, mask, thresholds,
                            workspace, workspace_bytes, options, stats, tp_isa_current());
}
