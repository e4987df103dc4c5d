/*
 * nm.c: tp_nm_mask, N:M masks: in every group of m consecutive elements along the middle axis
 * of (outer, len, inner) keep the n largest magnitudes (ties: lower index). The block pass per
 * ISA is in variants.c (nm_body_tmpl.h, and x86_avx2.c for 4-element groups); this file splits
 * the work between threads and dispatches.
 */
#include "topk_internal.h"

#define NM_MIN_PER_THREAD 262144

/* The N:M mask of x (elements of `esize` bytes) with one type's block pass `block`. */
static int nm_run(const void *data, int64_t esize, int64_t outer, int64_t len, int64_t inner,
                  int32_t n, int32_t m, uint8_t *mask, int (*block)(const void *, int64_t, int64_t,
                                                                   int32_t, int32_t, uint8_t *)) {
    const char *x = (const char *)data;
    int nan = 0;
    if (outer == 1 || inner > 1) {
        /* split the (len) axis into whole groups per thread, per outer block */
        int64_t groups = len / m;
        int threads = tp_threads_for(outer * len * inner, NM_MIN_PER_THREAD);
        (void)threads;
        int64_t chunk = 4096 / (inner < 4096 ? inner : 4096);
        chunk = chunk < 1 ? 1 : chunk;
        int64_t pieces = (groups + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)
        for (int64_t t = 0; t < outer * pieces; t++) {
            int64_t o = t / pieces, p = t % pieces;
            int64_t g0 = p * chunk, g1 = g0 + chunk < groups ? g0 + chunk : groups;
            int64_t at = o * len * inner + g0 * m * inner;
            nan |= block(x + at * esize, (g1 - g0) * m, inner, n, m, mask + at);
        }
    } else {
        int threads = tp_threads_for(outer * len, NM_MIN_PER_THREAD);
        (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)
        for (int64_t o = 0; o < outer; o++)
            nan |= block(x + o * len * esize, len, 1, n, m, mask + o * len);
    }
    return nan ? TP_ERR_NONFINITE : TP_OK;
}

/* The dispatch table's signature: the entry's arguments, checked. */
typedef int (*nm_mask_fn)(const void *data, int64_t outer, int64_t len, int64_t inner,
                          int32_t dtype, int32_t n, int32_t m, uint8_t *mask);

static int nm_with(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask, const topk_passes *passes) {
    switch (dtype) {
        case TP_FLOAT32:
            return nm_run(data, 4, outer, len, inner, n, m, mask, passes->f32->nm_block);
        case TP_FLOAT64:
            return nm_run(data, 8, outer, len, inner, n, m, mask, passes->f64->nm_block);
        case TP_BFLOAT16:
            return nm_run(data, 2, outer, len, inner, n, m, mask, passes->bf16->nm_block);
        default:
            return nm_run(data, 2, outer, len, inner, n, m, mask, passes->f16->nm_block);
    }
}

static int nm_baseline(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                       int32_t n, int32_t m, uint8_t *mask) {
    return nm_with(data, outer, len, inner, dtype, n, m, mask, &TOPK_PASSES_BASELINE);
}

#if TP_HAVE_X86_VARIANTS
static int nm_avx2(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask) {
    return nm_with(data, outer, len, inner, dtype, n, m, mask, &TOPK_PASSES_AVX2);
}

static int nm_avx512(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int32_t n, int32_t m, uint8_t *mask) {
    return nm_with(data, outer, len, inner, dtype, n, m, mask, &TOPK_PASSES_AVX512);
}
#endif

static const nm_mask_fn NM_MASK[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = tp_nm_mask_ref,
    [TP_ISA_BASELINE] = nm_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = nm_avx2, [TP_ISA_AVX512] = nm_avx512, )
};

int tp_nm_mask_isa(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask, int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || outer < 0 || len < 0 || inner < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(m < 1 || m > NM_MAX_M || n < 0 || n > m || len % m != 0, TP_ERR_ARGUMENT);
    if (outer == 0 || len == 0 || inner == 0) return TP_OK;
    TP_RETURN_IF(!data || !mask, TP_ERR_ARGUMENT);
    return TP_PICK(NM_MASK, isa)(data, outer, len, inner, dtype, n, m, mask);
}

int tp_nm_mask(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
               int32_t n, int32_t m, uint8_t *mask) {
    return tp_nm_mask_isa(data, outer, len, inner, dtype, n, m, mask, tp_isa_current());
}
