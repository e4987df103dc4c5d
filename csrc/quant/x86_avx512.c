/*
 * x86_avx512.c: dequantize into bfloat16 written for AVX-512, where the AVX2 loop was not
 * enough. The bits are those of dequantize_int8_ref (the tests hold this to it).
 *  - dq_{seg,cols}_bf16_avx512_{fast,nt}: 16 lanes per step, and vpmovdw narrows the rounded
 *    lanes in one instruction where AVX2 needs a pack and a permute. The AVX2 loop ran at
 *    0.84-0.90x of the float32 output's speed (16M elements, compute-bound: its rounding is
 *    five integer ops per 8 lanes); figures in the commit that added this file.
 * Streaming stores are weakly ordered: the driver fences once per work item.
 */
#include "quant_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

TP_TARGET_AVX512 static inline float dq512_one(const int8_t *q, int64_t i, float scale, int32_t zp,
                                               const float *scale_cols, const int8_t *zp_cols, const int cols) {
    if (cols) return (float)((int32_t)q[i] - (zp_cols ? (int32_t)zp_cols[i] : 0)) * scale_cols[i];
    return (float)((int32_t)q[i] - zp) * scale;
}

/* Sixteen results rounded to bfloat16 (tp_f32_to_bf16: nearest even; NaN -> 0x7fc0 with its sign,
 * looked for only when a scale of the call is not finite). */
TP_TARGET_AVX512 static inline __m256i dq512_bf16_16(__m512 x, const int may_nan) {
    const __m512i b = _mm512_castps_si512(x);
    const __m512i hi = _mm512_srli_epi32(b, 16);
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    r = _mm512_srli_epi32(r, 16);
    if (may_nan) {
        __mmask16 is_nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)),
                                                   _mm512_set1_epi32(0x7f800000));
        const __m512i nan = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7fc0));
        r = _mm512_mask_mov_epi32(r, is_nan, nan);
    }
    return _mm512_cvtepi32_epi16(r);
}

TP_TARGET_AVX512 static inline void dq512_bf16_run(const int8_t *TP_RESTRICT q, uint16_t *TP_RESTRICT out, int64_t n,
                                                   float scale, int32_t zp, const float *TP_RESTRICT scale_cols,
                                                   const int8_t *TP_RESTRICT zp_cols, const int cols, const int stream,
                                                   const int may_nan) {
    int64_t i = 0;
    /* 16-byte streaming stores from out's first 16-byte boundary (see dq16_avx2) */
    if (stream)
        for (; i < n && ((uintptr_t)(out + i) & 15); i++)
            out[i] = tp_f32_to_bf16(dq512_one(q, i, scale, zp, scale_cols, zp_cols, cols));
    const __m512 s = _mm512_set1_ps(scale);
    const __m512i z = _mm512_set1_epi32(zp);
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + i)));
        __m512 x;
        if (!cols) {
            x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, z)), s);
        } else {
            if (zp_cols) v = _mm512_sub_epi32(v, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(zp_cols + i))));
            x = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(scale_cols + i));
        }
        __m256i h = dq512_bf16_16(x, may_nan);
        if (stream) {
            _mm_stream_si128((__m128i *)(out + i), _mm256_castsi256_si128(h));
            _mm_stream_si128((__m128i *)(out + i + 8), _mm256_extracti128_si256(h, 1));
        } else {
            _mm256_storeu_si256((__m256i *)(out + i), h);
        }
    }
    for (; i < n; i++) out[i] = tp_f32_to_bf16(dq512_one(q, i, scale, zp, scale_cols, zp_cols, cols));
}

TP_TARGET_AVX512 static inline void dq512_bf16(const int8_t *q, void *out, int64_t n, float scale, int32_t zp,
                                               const float *scale_cols, const int8_t *zp_cols, const int cols,
                                               const int stream) {
    int finite = 1;
    if (cols)
        for (int64_t j = 0; j < n; j++) finite &= isfinite(scale_cols[j]) != 0;
    else
        finite = isfinite(scale) != 0;
    if (finite) dq512_bf16_run(q, (uint16_t *)out, n, scale, zp, scale_cols, zp_cols, cols, stream, 0);
    else dq512_bf16_run(q, (uint16_t *)out, n, scale, zp, scale_cols, zp_cols, cols, stream, 1);
}

TP_TARGET_AVX512 void dq_seg_bf16_avx512_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq512_bf16(q, out, n, scale, zp, NULL, NULL, 0, 0);
}
TP_TARGET_AVX512 void dq_seg_bf16_avx512_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq512_bf16(q, out, n, scale, zp, NULL, NULL, 0, 1);
}
TP_TARGET_AVX512 void dq_cols_bf16_avx512_fast(const int8_t *q, void *out, int64_t n, const float *scale,
                                               const int8_t *zp) {
    dq512_bf16(q, out, n, 0.0f, 0, scale, zp, 1, 0);
}
TP_TARGET_AVX512 void dq_cols_bf16_avx512_nt(const int8_t *q, void *out, int64_t n, const float *scale,
                                             const int8_t *zp) {
    dq512_bf16(q, out, n, 0.0f, 0, scale, zp, 1, 1);
}

#endif /* TP_HAVE_X86_VARIANTS */
