/*
 * dequantize.c: tp_dequantize_int8 / tp_dequantize_int8_isa, out = float32(q - zero_point) *
 * scale (stored as float32, or rounded to nearest even into bfloat16 / IEEE half), and the
 * driver of the compiled variants: one stream in chunks over the threads, with streaming
 * stores for outputs of QZ_NT_MIN_BYTES or more where the ISA has them.
 */
#include "quant_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>
#endif

void dequantize_int8_run(const dq_call *c, const dq_loops *loops) {
    const dq_loops *o = &loops[c->out_dtype];
    const qz_layout *L = &c->L;
    const int64_t n = L->n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK, C = L->channels;
    const int es = qz_element_size(c->out_dtype);
    const int cols = L->block == 0 && C > 1 && L->inner == 1;
    const int stream = o->seg_nt != NULL && n * es >= QZ_NT_MIN_BYTES;
    void (*seg)(const int8_t *, void *, int64_t, float, int32_t) = stream ? o->seg_nt : o->seg;
    void (*col)(const int8_t *, void *, int64_t, const float *, const int8_t *) = stream ? o->cols_nt : o->cols;
    const int8_t *q = c->q, *zp = c->zero_point;
    const float *scale = c->scale;
    char *out = (char *)c->out;
    int threads = tp_threads_for(n, QZ_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t k = 0; k < chunks; k++) {
        int64_t a = k * QZ_CHUNK, b = n - a < QZ_CHUNK ? n : a + QZ_CHUNK;
        while (a < b) {
            int64_t len;
            if (cols) {
                int64_t j = a % C;
                len = C - j < b - a ? C - j : b - a;
                col(q + a, out + a * es, len, scale + j, zp ? zp + j : NULL);
            } else {
                int64_t g, end = qz_segment(L, a, &g);
                len = (end < b ? end : b) - a;
                seg(q + a, out + a * es, len, scale[g], zp ? zp[g] : 0);
            }
            a += len;
        }
#if TP_HAVE_X86_VARIANTS
        /* Streaming stores are weakly ordered: publish the chunk with one fence (see qz_publish). */
        if (stream) _mm_sfence();
#endif
    }
}

int tp_dequantize_int8_isa(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                           int64_t block, const float *scale, const int8_t *zero_point,
                           void *out, int32_t out_dtype, int isa) {
    TP_RETURN_IF(isa < 0 || isa >= TP_ISA_COUNT || !tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(out_dtype != TP_FLOAT32 && out_dtype != TP_BFLOAT16 && out_dtype != TP_FLOAT16,
                 TP_ERR_ARGUMENT);
    dq_call c = {q, {0}, scale, zero_point, out, out_dtype};
    int status = qz_layout_init(&c.L, outer, channels, inner, block);
    TP_RETURN_IF(status != TP_OK, status);
    if (c.L.n == 0) return TP_OK;
    TP_RETURN_IF(q == NULL || out == NULL || scale == NULL, TP_ERR_ARGUMENT);
    dequantize_int8_variant(isa)(&c);
    return TP_OK;
}

int tp_dequantize_int8(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                       int64_t block, const float *scale, const int8_t *zero_point, void *out,
                       int32_t out_dtype) {
    return tp_dequantize_int8_isa(q, outer, channels, inner, block, scale, zero_point, out,
                                  out_dtype, tp_isa_current());
}
