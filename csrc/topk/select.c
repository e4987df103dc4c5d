/*
 * select.c: tp_topk_select, exact top-k magnitude masks of one array or of a concatenation of
 * many ("segments"), in O(n) by radix selection on the magnitude keys (keys.h): argument
 * checks, the workspace carved into units (one or more per thread), and the dispatch table.
 * Large inputs try the sampled path (sampled.c); when its bracket misses, and below its size,
 * the histogram path (histogram.c) does the work.
 */
#include "topk_internal.h"

static int64_t units_for(int64_t total, int threads) {
    int64_t units = (total + TOPK_UNIT_MAX - 1) / TOPK_UNIT_MAX;
    return units > threads ? units : threads;
}

static int64_t select_ws_bytes(int32_t dtype, int64_t units, int64_t cap) {
    int64_t b = (int64_t)1 << levels_of(dtype)->bits[0];
    return units * (b * 4 + (int64_t)sizeof(topk_range) + 16) + cap * 32 + 64;
}

int64_t tp_topk_workspace_bytes(int32_t dtype, int64_t total, int64_t cand_cap) {
    if (!valid_dtype(dtype) || total < 0 || cand_cap < 0) return -1;
    int threads = tp_threads_for(total, TOPK_MIN_PER_THREAD);
    return select_ws_bytes(dtype, units_for(total, threads), cand_cap);
}

/* The virtual index p moved down to a multiple of TOPK_ALIGN within its segment. */
static int64_t align_split(const tp_topk_segment *segs, int64_t count, int64_t p) {
    int64_t off = 0;
    for (int64_t s = 0; s < count; s++) {
        int64_t n = segs[s].numel;
        if (p < off + n) return off + ((p - off) & ~(int64_t)(TOPK_ALIGN - 1));
        off += n;
    }
    return off;
}

/* The selection with one ISA's passes: as many threads as the size pays for and the workspace
 * holds, the workspace carved for them, then the sampled path (z >= 0, large inputs) and,
 * where it misses (counted into *misses), the histogram path. */
static int select_with(const tp_topk_segment *segs, int64_t count, int32_t dtype, int64_t total,
                       int64_t k, int32_t flags, char *ws, int64_t ws_bytes, int64_t cap,
                       double z, uint64_t *threshold_key, int64_t *misses,
                       const topk_passes *passes) {
    const int64_t B = (int64_t)1 << levels_of(dtype)->bits[0];
    int threads = tp_threads_for(total, TOPK_MIN_PER_THREAD);
    int64_t units = units_for(total, threads);
    while (threads > 1 && select_ws_bytes(dtype, units, cap) > ws_bytes)
        units = units_for(total, --threads);
    TP_RETURN_IF(select_ws_bytes(dtype, units, cap) > ws_bytes, TP_ERR_BUFFER);
    /* carve the workspace: histograms, ranges, the units' candidate spans (offsets and
     * ends), two candidate areas (8-aligned) */
    topk_range *ranges = (topk_range *)(ws + units * B * 4);
    topk_job job;
    job.segs = segs;
    job.count = count;
    job.total = total;
    job.k = k;
    job.packed = (flags & TP_TOPK_PACKED) != 0;
    job.zero = (flags & TP_TOPK_ZERO) != 0;
    job.want_mask = !(flags & TP_TOPK_NO_MASK);
    job.threads = threads;
    job.units = units;
    job.cap = cap;
    job.ranges = ranges;
    job.hist = (uint32_t *)ws;
    job.offsets = (int64_t *)(ranges + units);
    job.ends = job.offsets + units;
    job.cidx = job.ends + units;
    job.ckey = (uint64_t *)(job.cidx + cap);
    job.cidx2 = (int64_t *)(job.ckey + cap);
    job.ckey2 = (uint64_t *)(job.cidx2 + cap);
    for (int64_t u = 0; u < units; u++) {
        int64_t lo = align_split(segs, count, (int64_t)((double)total * u / units));
        int64_t hi = u == units - 1
                         ? total
                         : align_split(segs, count, (int64_t)((double)total * (u + 1) / units));
        ranges[u].lo = lo;
        ranges[u].hi = hi < lo ? lo : hi;
    }
    const int sampled = k > 0 && k < total && total >= passes->sample_min && z >= 0;
    int status = 1;
    switch (dtype) {
        case TP_FLOAT32:
            if (sampled) status = sampled_select_f32(&job, passes->f32, z, threshold_key);
            if (status != 1) return status;
            *misses += sampled;
            return histogram_select_f32(&job, passes->f32, threshold_key);
        case TP_FLOAT64:
            if (sampled) status = sampled_select_f64(&job, passes->f64, z, threshold_key);
            if (status != 1) return status;
            *misses += sampled;
            return histogram_select_f64(&job, passes->f64, threshold_key);
        case TP_BFLOAT16:
            if (sampled) status = sampled_select_bf16(&job, passes->bf16, z, threshold_key);
            if (status != 1) return status;
            *misses += sampled;
            return histogram_select_bf16(&job, passes->bf16, threshold_key);
        default:
            if (sampled) status = sampled_select_f16(&job, passes->f16, z, threshold_key);
            if (status != 1) return status;
            *misses += sampled;
            return histogram_select_f16(&job, passes->f16, threshold_key);
    }
}

/* The dispatch table's signature: the entry's arguments, checked, with the options read. */
typedef int (*topk_select_fn)(const tp_topk_segment *segs, int64_t count, int32_t dtype,
                              int64_t total, int64_t k, int32_t flags, char *ws,
                              int64_t ws_bytes, int64_t cap, double z, uint64_t *threshold_key,
                              int64_t *misses);

static int select_scalar(const tp_topk_segment *segs, int64_t count, int32_t dtype,
                         int64_t total, int64_t k, int32_t flags, char *ws, int64_t ws_bytes,
                         int64_t cap, double z, uint64_t *threshold_key, int64_t *misses) {
    (void)total, (void)ws, (void)ws_bytes, (void)cap, (void)z, (void)misses;
    return tp_topk_select_ref(segs, count, dtype, k, flags, threshold_key);
}

static int select_baseline(const tp_topk_segment *segs, int64_t count, int32_t dtype,
                           int64_t total, int64_t k, int32_t flags, char *ws, int64_t ws_bytes,
                           int64_t cap, double z, uint64_t *threshold_key, int64_t *misses) {
    return select_with(segs, count, dtype, total, k, flags, ws, ws_bytes, cap, z, threshold_key,
                       misses, &TOPK_PASSES_BASELINE);
}

#if TP_HAVE_X86_VARIANTS
static int select_avx2(const tp_topk_segment *segs, int64_t count, int32_t dtype, int64_t total,
                       int64_t k, int32_t flags, char *ws, int64_t ws_bytes, int64_t cap,
                       double z, uint64_t *threshold_key, int64_t *misses) {
    return select_with(segs, count, dtype, total, k, flags, ws, ws_bytes, cap, z, threshold_key,
                       misses, &TOPK_PASSES_AVX2);
}

static int select_avx512(const tp_topk_segment *segs, int64_t count, int32_t dtype,
                         int64_t total, int64_t k, int32_t flags, char *ws, int64_t ws_bytes,
                         int64_t cap, double z, uint64_t *threshold_key, int64_t *misses) {
    return select_with(segs, count, dtype, total, k, flags, ws, ws_bytes, cap, z, threshold_key,
                       misses, &TOPK_PASSES_AVX512);
}
#endif

static const topk_select_fn TOPK_SELECT[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = select_scalar,
    [TP_ISA_BASELINE] = select_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = select_avx2, [TP_ISA_AVX512] = select_avx512, )
};

int tp_topk_select_isa(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                       int32_t flags, void *workspace, int64_t workspace_bytes,
                       int64_t cand_cap, const tp_topk_options *options,
                       uint64_t *threshold_key, tp_topk_stats *stats, int isa) {
    if (stats) stats->sample_misses = 0;
    TP_RETURN_IF(!threshold_key || count < 0 || (count > 0 && !segments), TP_ERR_ARGUMENT);
    *threshold_key = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || cand_cap < 0 || !workspace, TP_ERR_ARGUMENT);
    TP_RETURN_IF(flags & ~(TP_TOPK_PACKED | TP_TOPK_ZERO | TP_TOPK_NO_MASK), TP_ERR_ARGUMENT);
    int64_t total = 0;
    for (int64_t s = 0; s < count; s++) {
        TP_RETURN_IF(segments[s].numel < 0, TP_ERR_ARGUMENT);
        if (segments[s].numel == 0) continue;
        TP_RETURN_IF(!segments[s].data, TP_ERR_ARGUMENT);
        TP_RETURN_IF(!(flags & TP_TOPK_NO_MASK) && !segments[s].mask, TP_ERR_ARGUMENT);
        total += segments[s].numel;
    }
    TP_RETURN_IF(k < 0 || k > total, TP_ERR_ARGUMENT);
    if (total == 0) return TP_OK;
    /* one thread's workspace is the least any variant takes */
    TP_RETURN_IF(select_ws_bytes(dtype, units_for(total, 1), cand_cap) > workspace_bytes,
                 TP_ERR_BUFFER);
    const double z = options ? options->sample_width : TOPK_SAMPLE_WIDTH;
    int64_t misses = 0;
    int status = TP_PICK(TOPK_SELECT, isa)(segments, count, dtype, total, k, flags,
                                           (char *)workspace, workspace_bytes, cand_cap, z,
                                           threshold_key, &misses);
    if (stats) stats->sample_misses = misses;
    return status;
}

int tp_topk_select(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                   int32_t flags, void *workspace, int64_t workspace_bytes, int64_t cand_cap,
                   const tp_topk_options *options, uint64_t *threshold_key,
                   tp_topk_stats *stats) {
    return tp_topk_select_isa(segments, count, dtype, k, flags, workspace, workspace_bytes,
                              cand_cap, options, threshold_key, stats, tp_isa_current());
}
