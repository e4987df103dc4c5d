/*
 * x86_avx2.c: the quant loops hand-written for AVX2, where the compiler's versions of
 * body_tmpl.h were not enough. Every one gives the bits of quantize_int8_ref (the tests hold
 * them to it and to the NumPy reference).
 *  - qz_block32_sym_{f32,bf16}_avx2: ggml's Q8_0 layout (float32 or bfloat16, 32-element blocks,
 *    symmetric). The compiled block body spent most of a 32-element block on loop set-up and
 *    horizontal reductions.
 *  - qz_quant_{seg,cols}_<type>_avx2_{fast,nt}: the quantize pass of a per-channel tile runs
 *    from L2 and was compute-bound; these take fewer instructions per element, and the _nt
 *    forms write q with streaming stores straight from registers (no staging buffer).
 *    bfloat16 is read natively (16-bit lanes shifted into float32 lanes), never copied.
 *  - dq_{seg,cols}_avx2_nt, qz_stream_copy_avx2: streaming stores for large outputs, which skip
 *    the read-for-ownership of every line written (for a float32 output of int8 input, 4 of
 *    the 9 bytes moved per element).
 *  - dq_{seg,cols}_{f16,bf16}_avx2_{fast,nt}: dequantize into IEEE half (F16C) / bfloat16,
 *    16 lanes per step.
 * Streaming stores are weakly ordered: the drivers fence once per work item (qz_publish).
 */
#include "quant_internal.h"

#if TP_HAVE_X86_VARIANTS
#include "../simd_x86.h"

/* The compiled AVX2 loops, for the short pieces, heads and tails of the hand-written ones. */
#define T float
#define SUF f32
#define HALF 0
#include "body_tmpl.h"

#define T uint16_t
#define SUF f16
#define HALF 1
#include "body_tmpl.h"

#define T uint16_t
#define SUF bf16
#define HALF 1
#include "body_tmpl.h"

/* The input types of the hand-written loops (the `in` parameter below). */
enum { QZ_IN_F32, QZ_IN_F16, QZ_IN_BF16 };

TP_TARGET_AVX2 static int seg_compiled_f32(const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin,
                                           int check) {
    return qz_quant_seg_body_f32(x, q, n, inv, zp, qmin, check);
}

TP_TARGET_AVX2 static int seg_compiled_f16(const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin,
                                           int check) {
    return qz_quant_seg_body_f16(x, q, n, inv, zp, qmin, check);
}

TP_TARGET_AVX2 static int seg_compiled_bf16(const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin,
                                            int check) {
    return qz_quant_seg_body_bf16(x, q, n, inv, zp, qmin, check);
}

TP_TARGET_AVX2 static int cols_compiled_bf16(const void *x, int8_t *q, int64_t n, const float *inv, const int32_t *zp,
                                             int32_t qmin, int check) {
    return qz_quant_cols_body_bf16(x, q, n, inv, zp, qmin, check);
}

TP_TARGET_AVX2 static int cols_compiled_f32(const void *x, int8_t *q, int64_t n, const float *inv, const int32_t *zp,
                                            int32_t qmin, int check) {
    return qz_quant_cols_body_f32(x, q, n, inv, zp, qmin, check);
}

/* Eight elements of input type `in` as float32, exactly: IEEE half through F16C, as tp_f16_to_f32
 * does (NaN never gets here: computed scales mean the data was finite); bfloat16 read as 16-bit
 * lanes, widened and shifted into the upper half of float32 lanes, as tp_bf16_to_f32 does. */
TP_TARGET_AVX2 static inline __m256 qz_load8(const void *x, int64_t i, const int in) {
    if (in == QZ_IN_F32) return _mm256_loadu_ps((const float *)x + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)x + i));
    if (in == QZ_IN_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Eight elements times inv rounded to int32 (cvtps2dq: nearest even; see qz_quant_avx2 for why
 * no clamp follows). */
TP_TARGET_AVX2 static inline __m256i qz_round8(const void *x, int64_t i, __m256 inv, const int in) {
    return _mm256_cvtps_epi32(_mm256_mul_ps(qz_load8(x, i, in), inv));
}

TP_TARGET_AVX2 static inline uint32_t qz_hmax_epu32(__m256i v) {
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

TP_TARGET_AVX2 static inline uint32_t qz_hmax_epu16(__m256i v) {
    __m128i m = _mm_max_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_minpos_epu16(_mm_xor_si128(m, _mm_set1_epi32(-1))); /* max = ~min of the complements */
    return 0xffffu - ((uint32_t)_mm_cvtsi128_si32(m) & 0xffffu);
}

/* One 32-element block's |x| max as float32 bits. bfloat16: two loads, the max taken on the
 * 16-bit patterns (|bf16| orders like its float32), only the winner widened. */
TP_TARGET_AVX2 static inline uint32_t qz_block32_absmax(const void *xb, const int in) {
    if (in == QZ_IN_BF16) {
        const __m256i abs16 = _mm256_set1_epi16(0x7fff);
        const uint16_t *h = (const uint16_t *)xb;
        __m256i m = _mm256_max_epu16(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)h), abs16),
                                     _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(h + 16)), abs16));
        return qz_hmax_epu16(m) << 16;
    }
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    __m256i m = _mm256_max_epu32(
        _mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(qz_load8(xb, 0, in)), abs_mask),
                         _mm256_and_si256(_mm256_castps_si256(qz_load8(xb, 8, in)), abs_mask)),
        _mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(qz_load8(xb, 16, in)), abs_mask),
                         _mm256_and_si256(_mm256_castps_si256(qz_load8(xb, 24, in)), abs_mask)));
    return qz_hmax_epu32(m);
}

/* One 32-element block's q (no clamp needed: see qz_quant_avx2). bfloat16: two loads; unpacking
 * with zeros puts each bf16 in the upper half of a 32-bit lane (its float32), in the order
 * 0-3,8-11 / 4-7,12-15 per load, which packs_epi32 undoes; one permute fixes packs_epi16's. */
TP_TARGET_AVX2 static inline __m256i qz_block32_bytes(const void *xb, __m256 inv, const int in) {
    if (in == QZ_IN_BF16) {
        const __m256i zero = _mm256_setzero_si256();
        const uint16_t *h = (const uint16_t *)xb;
        __m256i v0 = _mm256_loadu_si256((const __m256i *)h), v1 = _mm256_loadu_si256((const __m256i *)(h + 16));
        __m256i r0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v0)), inv));
        __m256i r1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v0)), inv));
        __m256i r2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v1)), inv));
        __m256i r3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v1)), inv));
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r0, r1), _mm256_packs_epi32(r2, r3));
        return _mm256_permute4x64_epi64(b, _MM_SHUFFLE(3, 1, 2, 0));
    }
    return tp_lanes_to_bytes(qz_round8(xb, 0, inv, in), qz_round8(xb, 8, inv, in), qz_round8(xb, 16, inv, in),
                             qz_round8(xb, 24, inv, in));
}

/* Same results as the block body (integer max of |x| bits, then qz_params_sym, then rounding
 * to nearest even). Returns 1 on NaN / Inf. */
TP_TARGET_AVX2 static inline int qz_block32_sym_avx2(const void *x, int8_t *q, int64_t count, float *scale, int stream,
                                                  const int in) {
    /* Eight blocks at a time: their absmaxes, then their scales and reciprocals with two vector
     * divisions (the same IEEE divisions qz_params_sym does one by one), then their q. This keeps
     * the divider's latency off each block's critical path. */
    for (int64_t g0 = 0; g0 < count; g0 += 8) {
        int64_t nb = count - g0 < 8 ? count - g0 : 8;
        uint32_t amax[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t k = 0; k < nb; k++) {
            amax[k] = qz_block32_absmax(AT(x, (g0 + k) * 32, in == QZ_IN_F32 ? 4 : 2), in);
            if (amax[k] >= 0x7f800000u) return 1;
        }
        /* qz_params_sym, eight lanes: s = a / 127; a == 0 -> 1; s < FLT_MIN -> FLT_MIN; 1 / s */
        __m256 a = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)amax));
        __m256 sc = _mm256_div_ps(a, _mm256_set1_ps(127.0f));
        sc = _mm256_blendv_ps(sc, _mm256_set1_ps(QZ_MIN_SCALE),
                              _mm256_cmp_ps(sc, _mm256_set1_ps(QZ_MIN_SCALE), _CMP_LT_OQ));
        sc = _mm256_blendv_ps(sc, _mm256_set1_ps(1.0f), _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_EQ_OQ));
        float invs[8], scs[8];
        _mm256_storeu_ps(invs, _mm256_div_ps(_mm256_set1_ps(1.0f), sc));
        _mm256_storeu_ps(scs, sc);
        for (int64_t k = 0; k < nb; k++) {
            const void *xb = AT(x, (g0 + k) * 32, in == QZ_IN_F32 ? 4 : 2);
            const __m256 inv = _mm256_set1_ps(invs[k]);
            scale[g0 + k] = scs[k];
            __m256i bytes = qz_block32_bytes(xb, inv, in);
            /* stream: q is large and 16-byte aligned (NumPy's big buffers sit 16 bytes into
             * a page, so 32-byte streaming stores would not line up): two 16-byte streaming
             * stores, which the write-combining buffers join into whole lines */
            int8_t *dst = q + (g0 + k) * 32;
            if (stream) {
                _mm_stream_si128((__m128i *)dst, _mm256_castsi256_si128(bytes));
                _mm_stream_si128((__m128i *)(dst + 16), _mm256_extracti128_si256(bytes, 1));
            } else {
                _mm256_storeu_si256((__m256i *)dst, bytes);
            }
        }
    }
    return 0;
}

/* float32 (ggml's Q8_0) and bfloat16 (read natively: the compiled block body ran at a fifth of
 * the float32 blocks' speed). */
TP_TARGET_AVX2 int qz_block32_sym_f32_avx2(const void *x, int8_t *q, int64_t count, float *scale, int stream) {
    return qz_block32_sym_avx2(x, q, count, scale, stream, QZ_IN_F32);
}

TP_TARGET_AVX2 int qz_block32_sym_bf16_avx2(const void *x, int8_t *q, int64_t count, float *scale, int stream) {
    return qz_block32_sym_avx2(x, q, count, scale, stream, QZ_IN_BF16);
}

/* 32 elements from i: one scale (inv, zp; zp == 0 skips the adds) or one per column (cols;
 * zp_cols NULL: symmetric, every zero point 0, no loads and no adds). */
TP_TARGET_AVX2 static inline __m256i qz_round32(const void *x, int64_t i, __m256 inv, __m256i z, int32_t zp,
                                                const float *inv_cols, const int32_t *zp_cols, const int in,
                                                const int cols) {
    __m256i r[4];
    for (int k = 0; k < 4; k++) {
        int64_t at = i + 8 * k;
        if (cols) {
            r[k] = qz_round8(x, at, _mm256_loadu_ps(inv_cols + at), in);
            if (zp_cols) r[k] = _mm256_add_epi32(r[k], _mm256_loadu_si256((const __m256i *)(zp_cols + at)));
        } else {
            r[k] = qz_round8(x, at, inv, in);
            if (zp) r[k] = _mm256_add_epi32(r[k], z);
        }
    }
    return tp_lanes_to_bytes(r[0], r[1], r[2], r[3]);
}

/* n (a multiple of 32) elements, vector by vector. */
TP_TARGET_AVX2 static inline void qz_run32(const void *x, int8_t *q, int64_t n, float inv_, int32_t zp,
                                           const float *inv_cols, const int32_t *zp_cols, int stream,
                                           const int in, const int cols) {
    const __m256 inv = _mm256_set1_ps(inv_);
    const __m256i z = _mm256_set1_epi32(zp);
    for (int64_t i = 0; i < n; i += 32) {
        __m256i bytes = qz_round32(x, i, inv, z, zp, inv_cols, zp_cols, in, cols);
        if (stream) _mm256_stream_si256((__m256i *)(q + i), bytes);
        else _mm256_storeu_si256((__m256i *)(q + i), bytes);
    }
}

/* The quantize loops with computed scales, same results as the compiled ones bit for bit:
 *  - rounding by cvtps2dq instead of the magic-number add: both round to nearest even under
 *    the current MXCSR mode, and the two agree wherever |t| < 2^22;
 *  - no integer clamps: the saturating packs clamp to [-128, 127], which is the affine clamp,
 *    and a symmetric scale computed from the data gives |x * inv| <= 127 * (1 + 3 * 2^-24)
 *    (s = RN(absmax / 127), inv = RN(1 / s); with s = FLT_MIN, absmax * 2^126 < 127), so -127
 *    is never passed either.
 * Caller-given scales (`check`, where t may be huge or NaN) and short pieces take the compiled
 * loop; with `stream`, so do the elements before q's first 32-byte boundary, and the tail.
 * A symmetric zero point of 0 (zp == 0, or qmin == -127 per column) runs a loop without adds. */
TP_TARGET_AVX2 static inline int qz_quant_compiled(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                                   const float *inv_cols, const int32_t *zp_cols, int32_t qmin,
                                                   int check, const int in, const int cols) {
    if (in == QZ_IN_BF16)
        return cols ? cols_compiled_bf16(x, q, n, inv_cols, zp_cols, qmin, check)
                    : seg_compiled_bf16(x, q, n, inv, zp, qmin, check);
    if (cols) return cols_compiled_f32(x, q, n, inv_cols, zp_cols, qmin, check);
    if (in == QZ_IN_F16) return seg_compiled_f16(x, q, n, inv, zp, qmin, check);
    return seg_compiled_f32(x, q, n, inv, zp, qmin, check);
}

TP_TARGET_AVX2 static inline int qz_quant_avx2(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                               const float *inv_cols, const int32_t *zp_cols, int32_t qmin, int check,
                                               const int stream, const int in, const int cols) {
    const int es = in == QZ_IN_F32 ? 4 : 2;
    int64_t head = stream ? (int64_t)((32 - ((uintptr_t)q & 31)) & 31) : 0;
    if (check || n < head + 32) return qz_quant_compiled(x, q, n, inv, zp, inv_cols, zp_cols, qmin, check, in, cols);
    if (head) qz_quant_compiled(x, q, head, inv, zp, inv_cols, zp_cols, qmin, 0, in, cols);
    int64_t body = (n - head) & ~(int64_t)31, done = head + body;
    const void *xb = AT(x, head, es);
    if (cols && qmin == -127) qz_run32(xb, q + head, body, 0.0f, 0, inv_cols + head, NULL, stream, in, 1);
    else if (cols) qz_run32(xb, q + head, body, 0.0f, 0, inv_cols + head, zp_cols + head, stream, in, 1);
    else if (zp) qz_run32(xb, q + head, body, inv, zp, NULL, NULL, stream, in, 0);
    else qz_run32(xb, q + head, body, inv, 0, NULL, NULL, stream, in, 0);
    if (done < n)
        qz_quant_compiled(AT(x, done, es), q + done, n - done, inv, zp, cols ? inv_cols + done : NULL,
                          cols ? zp_cols + done : NULL, qmin, 0, in, cols);
    return 0;
}

/* The named forms the loop sets hold (variants.c). */
TP_TARGET_AVX2 int qz_quant_seg_f32_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                              int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 0, QZ_IN_F32, 0);
}

TP_TARGET_AVX2 int qz_quant_seg_f32_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                            int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 1, QZ_IN_F32, 0);
}

TP_TARGET_AVX2 int qz_quant_seg_f16_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                              int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 0, QZ_IN_F16, 0);
}

TP_TARGET_AVX2 int qz_quant_seg_f16_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                            int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 1, QZ_IN_F16, 0);
}

TP_TARGET_AVX2 int qz_quant_seg_bf16_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                               int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 0, QZ_IN_BF16, 0);
}

TP_TARGET_AVX2 int qz_quant_seg_bf16_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                             int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, inv, zp, NULL, NULL, qmin, check, 1, QZ_IN_BF16, 0);
}

TP_TARGET_AVX2 int qz_quant_cols_bf16_avx2_fast(const void *x, int8_t *q, int64_t n, const float *inv,
                                                const int32_t *zp, int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, 0.0f, 0, inv, zp, qmin, check, 0, QZ_IN_BF16, 1);
}

TP_TARGET_AVX2 int qz_quant_cols_bf16_avx2_nt(const void *x, int8_t *q, int64_t n, const float *inv,
                                              const int32_t *zp, int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, 0.0f, 0, inv, zp, qmin, check, 1, QZ_IN_BF16, 1);
}

TP_TARGET_AVX2 int qz_quant_cols_f32_avx2_fast(const void *x, int8_t *q, int64_t n, const float *inv,
                                               const int32_t *zp, int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, 0.0f, 0, inv, zp, qmin, check, 0, QZ_IN_F32, 1);
}

TP_TARGET_AVX2 int qz_quant_cols_f32_avx2_nt(const void *x, int8_t *q, int64_t n, const float *inv,
                                             const int32_t *zp, int32_t qmin, int check) {
    return qz_quant_avx2(x, q, n, 0.0f, 0, inv, zp, qmin, check, 1, QZ_IN_F32, 1);
}

/* q staged in L1 by a compiled loop, copied out with streaming stores (from dst's first 32-byte
 * boundary). */
TP_TARGET_AVX2 void qz_stream_copy_avx2(int8_t *TP_RESTRICT dst, const int8_t *TP_RESTRICT src, int64_t n) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 31); i++) dst[i] = src[i];
    for (; i + 32 <= n; i += 32)
        _mm256_stream_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
    for (; i < n; i++) dst[i] = src[i];
}

/* Dequantize with streaming stores: the same arithmetic as dq_seg_body / dq_cols_body (one
 * exact integer difference, one multiply), so the same bits. One scale (scale, zp) or one per
 * column (cols; zp_cols NULL: every zero point 0). */
TP_TARGET_AVX2 static inline float dq_one(const int8_t *q, int64_t i, float scale, int32_t zp,
                                          const float *scale_cols, const int8_t *zp_cols, const int cols) {
    if (cols) return (float)((int32_t)q[i] - (zp_cols ? (int32_t)zp_cols[i] : 0)) * scale_cols[i];
    return (float)((int32_t)q[i] - zp) * scale;
}

/* Eight results of dq_one as float32 lanes (one scale, or one per column). */
TP_TARGET_AVX2 static inline __m256 dq_x8(const int8_t *q, int64_t i, __m256 s, __m256i z, const float *scale_cols,
                                          const int8_t *zp_cols, const int cols) {
    __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
    if (!cols) return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, z)), s);
    if (zp_cols) v = _mm256_sub_epi32(v, _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(zp_cols + i))));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(scale_cols + i));
}

/* 16-byte streaming stores from out's first 16-byte boundary: NumPy's large buffers sit 16
 * bytes into a page, and with 32-byte alignment every 32-element block paid a scalar head and
 * tail (per block 32 ran 6x slower than per channel). */
TP_TARGET_AVX2 static inline void dq_stream8(float *out, __m256 x) {
    _mm_stream_ps(out, _mm256_castps256_ps128(x));
    _mm_stream_ps(out + 4, _mm256_extractf128_ps(x, 1));
}

TP_TARGET_AVX2 static inline void dq_avx2_nt(const int8_t *TP_RESTRICT q, float *TP_RESTRICT out, int64_t n,
                                             float scale, int32_t zp, const float *TP_RESTRICT scale_cols,
                                             const int8_t *TP_RESTRICT zp_cols, const int cols) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(out + i) & 15); i++) out[i] = dq_one(q, i, scale, zp, scale_cols, zp_cols, cols);
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i z = _mm256_set1_epi32(zp);
    for (; i + 8 <= n; i += 8) dq_stream8(out + i, dq_x8(q, i, s, z, scale_cols, zp_cols, cols));
    for (; i < n; i++) out[i] = dq_one(q, i, scale, zp, scale_cols, zp_cols, cols);
}

/* float32 outputs (the dq_loops slots take the output as void *) */
TP_TARGET_AVX2 void dq_seg_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq_avx2_nt(q, (float *)out, n, scale, zp, NULL, NULL, 0);
}

TP_TARGET_AVX2 void dq_cols_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) {
    dq_avx2_nt(q, (float *)out, n, 0.0f, 0, scale, zp, 1);
}

/* Dequantize into bfloat16 / IEEE half (ot: the output's type code): the float32 result of
 * dq_one, sixteen lanes at a time, then rounded to nearest even: IEEE half by F16C's vcvtps2ph
 * (the bits of tp_f32_to_f16: overflow to Inf, NaN quieted with its top payload), bfloat16 by the
 * integer rounding of tp_f32_to_bf16 (NaN -> 0x7fc0 with its sign; that select is skipped when every
 * scale of the call is finite, as the integer q cannot make a NaN then). The compiled
 * tp_f32_to_f16 loop did not vectorize (its float add for subnormals sits among integer selects)
 * and ran 10x slower than the float32 output. With `stream`, 16-byte streaming stores from
 * out's first 16-byte boundary (NumPy's large buffers sit 16 bytes into a page: with 32-byte
 * alignment every 32-element block paid a scalar head and tail, 4x slower). */
/* bfloat16 bits of eight float32 lanes, each in the low half of its 32-bit lane */
TP_TARGET_AVX2 static inline __m256i dq_bf16_8(__m256 v, const int may_nan) {
    const __m256i b = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(b, 16);
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
    r = _mm256_srli_epi32(r, 16);
    if (may_nan) {
        const __m256i nan = _mm256_or_si256(_mm256_and_si256(hi, _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7fc0));
        const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff)),
                                                  _mm256_set1_epi32(0x7f800000));
        r = _mm256_blendv_epi8(r, nan, is_nan);
    }
    return r;
}

TP_TARGET_AVX2 static inline __m256i dq_round16(__m256 x0, __m256 x1, const int ot, const int may_nan) {
    if (ot == TP_FLOAT16)
        return _mm256_set_m128i(_mm256_cvtps_ph(x1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                _mm256_cvtps_ph(x0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    /* lanes <= 0xffff, so the unsigned pack is exact; it works per 128-bit half: one permute */
    __m256i p = _mm256_packus_epi32(dq_bf16_8(x0, may_nan), dq_bf16_8(x1, may_nan));
    return _mm256_permute4x64_epi64(p, _MM_SHUFFLE(3, 1, 2, 0));
}

TP_TARGET_AVX2 static inline uint16_t dq_one16(const int8_t *q, int64_t i, float scale, int32_t zp,
                                               const float *scale_cols, const int8_t *zp_cols, const int cols,
                                               const int ot) {
    float v = dq_one(q, i, scale, zp, scale_cols, zp_cols, cols);
    return ot == TP_FLOAT16 ? tp_f32_to_f16(v) : tp_f32_to_bf16(v);
}

TP_TARGET_AVX2 static inline void dq16_run(const int8_t *TP_RESTRICT q, uint16_t *TP_RESTRICT out, int64_t n,
                                           float scale, int32_t zp, const float *TP_RESTRICT scale_cols,
                                           const int8_t *TP_RESTRICT zp_cols, const int cols, const int ot,
                                           const int stream, const int may_nan) {
    int64_t i = 0;
    if (stream)
        for (; i < n && ((uintptr_t)(out + i) & 15); i++)
            out[i] = dq_one16(q, i, scale, zp, scale_cols, zp_cols, cols, ot);
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i z = _mm256_set1_epi32(zp);
    for (; i + 16 <= n; i += 16) {
        __m256i h = dq_round16(dq_x8(q, i, s, z, scale_cols, zp_cols, cols),
                               dq_x8(q, i + 8, s, z, scale_cols, zp_cols, cols), ot, may_nan);
        if (stream) { /* two 16-byte stores: see qz_block32_sym_avx2 on NumPy's alignment */
            _mm_stream_si128((__m128i *)(out + i), _mm256_castsi256_si128(h));
            _mm_stream_si128((__m128i *)(out + i + 8), _mm256_extracti128_si256(h, 1));
        } else {
            _mm256_storeu_si256((__m256i *)(out + i), h);
        }
    }
    for (; i < n; i++) out[i] = dq_one16(q, i, scale, zp, scale_cols, zp_cols, cols, ot);
}

TP_TARGET_AVX2 static inline void dq16_avx2(const int8_t *q, uint16_t *out, int64_t n, float scale, int32_t zp,
                                            const float *scale_cols, const int8_t *zp_cols, const int cols,
                                            const int ot, const int stream) {
    int finite = 1;
    if (ot == TP_BFLOAT16) {
        if (cols)
            for (int64_t j = 0; j < n; j++) finite &= isfinite(scale_cols[j]) != 0;
        else
            finite = isfinite(scale) != 0;
    }
    if (finite) dq16_run(q, out, n, scale, zp, scale_cols, zp_cols, cols, ot, stream, 0);
    else dq16_run(q, out, n, scale, zp, scale_cols, zp_cols, cols, ot, stream, 1);
}

/* The named forms the dequantize loop sets hold: dq_{seg,cols}_{f16,bf16}_avx2_{fast,nt}. */
TP_TARGET_AVX2 void dq_seg_f16_avx2_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq16_avx2(q, (uint16_t *)out, n, scale, zp, NULL, NULL, 0, TP_FLOAT16, 0);
}
TP_TARGET_AVX2 void dq_seg_f16_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq16_avx2(q, (uint16_t *)out, n, scale, zp, NULL, NULL, 0, TP_FLOAT16, 1);
}
TP_TARGET_AVX2 void dq_cols_f16_avx2_fast(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) {
    dq16_avx2(q, (uint16_t *)out, n, 0.0f, 0, scale, zp, 1, TP_FLOAT16, 0);
}
TP_TARGET_AVX2 void dq_cols_f16_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) {
    dq16_avx2(q, (uint16_t *)out, n, 0.0f, 0, scale, zp, 1, TP_FLOAT16, 1);
}
TP_TARGET_AVX2 void dq_seg_bf16_avx2_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq16_avx2(q, (uint16_t *)out, n, scale, zp, NULL, NULL, 0, TP_BFLOAT16, 0);
}
TP_TARGET_AVX2 void dq_seg_bf16_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) {
    dq16_avx2(q, (uint16_t *)out, n, scale, zp, NULL, NULL, 0, TP_BFLOAT16, 1);
}
TP_TARGET_AVX2 void dq_cols_bf16_avx2_fast(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) {
    dq16_avx2(q, (uint16_t *)out, n, 0.0f, 0, scale, zp, 1, TP_BFLOAT16, 0);
}
TP_TARGET_AVX2 void dq_cols_bf16_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) {
    dq16_avx2(q, (uint16_t *)out, n, 0.0f, 0, scale, zp, 1, TP_BFLOAT16, 1);
}

#endif /* TP_HAVE_X86_VARIANTS */
