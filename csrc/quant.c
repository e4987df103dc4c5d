/*
 * quant.c: int8 quantize / dequantize per tensor, per channel (any axis) and per block.
 *
 *   q   = clamp(round_half_even(x * (1.0f / scale)) + zero_point, qmin, 127)    (float32 math)
 *   x^  = float32(q - zero_point) * scale
 * which is torch.quantize_per_channel / dequantize bit for bit. Scales come from the data
 * (symmetric: absmax / 127; affine: the [min, max] range widened to 0, / 255, torch's observer
 * formulas) or from the caller.
 *
 * Memory traffic is the cost, so each element is read once from DRAM where the layout allows:
 *  - per channel, the channels are cut into tiles of about QZ_TILE_BYTES; a tile's stats pass
 *    pulls it into cache and its quantize pass re-reads it from there (axis 0). When the channel
 *    axis is not outermost, short strided runs are copied into a per-thread float32 tile (few
 *    rows) or handled in two sequential passes over the rows (many rows; see qz_make_plan);
 *  - per block, each block (32 elements for ggml's Q8_0) is reduced and quantized at once;
 *  - per tensor needs the global absmax before the first q, hence two passes;
 *  - caller-given scales and dequantize are plain streams;
 *  - large outputs are written with streaming stores (no read-for-ownership).
 * Threads take whole tiles / chunks, and every result is independent of how work is split
 * (max / min reductions are exact), so results never depend on the thread count.
 *
 * The per-element loops live in quant_body.h, compiled for each input type (float32, float64,
 * float16) and each variant (scalar reference, baseline, AVX2, AVX-512) and picked at run time;
 * the hottest float32 loops also have hand-written AVX2 versions here, held to the scalar
 * reference bit for bit by the tests.
 */
#include <float.h>
#include <math.h>
#include <string.h>
#include "common.h"

#define QZ_MIN_PER_THREAD 65536          /* elements: below this one thread is faster */
#define QZ_CHUNK 65536                   /* elements per work item of the streaming loops */
#define QZ_TILE_BYTES (256 * 1024)       /* bytes of x per tile: stays in the 512 KiB L2 */

/* ---- scalar helpers, inlined into every variant ------------------------------------------- */

TP_ALWAYS_INLINE uint32_t qz_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

TP_ALWAYS_INLINE float qz_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* An int32 whose signed order is the float order (negative floats have their magnitude bits
 * flipped), so min / max reduce as integers. NaNs land beyond the infinities. */
TP_ALWAYS_INLINE int32_t qz_key(float f) {
    int32_t b = (int32_t)qz_bits(f);
    return b ^ ((b >> 31) & 0x7fffffff);
}

TP_ALWAYS_INLINE float qz_unkey(int32_t k) { return qz_float((uint32_t)(k ^ ((k >> 31) & 0x7fffffff))); }

#define QZ_KEY_POS_INF 0x7f800000
#define QZ_KEY_NEG_INF ((int32_t)0x807fffff)

TP_ALWAYS_INLINE int qz_key_nonfinite(int32_t lo, int32_t hi) {
    return hi >= QZ_KEY_POS_INF || lo <= QZ_KEY_NEG_INF;
}

/* IEEE half bits -> float, exact, in integer and float ops that vectorize on any x86-64 (no F16C
 * needed): shift exponent and mantissa into float position and rescale by 2^(127-15); subnormal
 * halves become normal floats through the same multiply; Inf / NaN get the all-ones exponent. */
TP_ALWAYS_INLINE float qz_half(uint16_t h) {
    uint32_t em = h & 0x7fffu;
    uint32_t b = qz_bits(qz_float(em << 13) * 0x1p112f);
    b = em >= 0x7c00u ? (b | 0x7f800000u) : b;
    return qz_float(b | ((uint32_t)(h & 0x8000u) << 16));
}

/* Rounding without float compares: GCC will not if-convert a float compare-and-select under
 * the default -ftrapping-math, which would leave the loops scalar, so the clamps are integer.
 * Adding 1.5 * 2^23 to a float t with |t| <= 2^22 leaves rint(t) (half to even, the default
 * rounding mode, as cvtps2dq) in the low mantissa bits: bits(t + MAGIC) - bits(MAGIC). */
#define QZ_MAGIC 12582912.0f
#define QZ_MAGIC_BITS 0x4B400000
/* qz_key(-256.0f) and qz_key(256.0f) */
#define QZ_KEY_M256 ((int32_t)0xbc7fffff)
#define QZ_KEY_P256 0x43800000

/* clamp(rint(t) + zp, qmin, 127) as int8. With `wide` (caller-given scales, so t may be huge,
 * Inf or NaN) t is first clamped to +-256 through its order-preserving key (NaN keys lie
 * beyond the infinities): beyond that the final clamp decides anyway, and integer bounds
 * commute with rint, so the result is torch's clamp(nearbyint(t) + zp). Without `wide` the
 * scale came from this data, so |t| <= 255 already. */
TP_ALWAYS_INLINE int8_t qz_round_clamp(float t, int32_t zp, int32_t qmin, const int wide) {
    if (wide) {
        int32_t k = qz_key(t);
        k = k > QZ_KEY_M256 ? k : QZ_KEY_M256;
        k = k < QZ_KEY_P256 ? k : QZ_KEY_P256;
        t = qz_unkey(k);
    }
    int32_t r = (int32_t)qz_bits(t + QZ_MAGIC) + (zp - QZ_MAGIC_BITS); /* one add per element */
    r = r > qmin ? r : qmin;
    r = r < 127 ? r : 127;
    return (int8_t)r;
}

typedef struct {
    float scale, inv;
    int32_t zp, qmin;
} qz_params;

/* Smallest scale whose reciprocal is finite (a denormal-range channel gets this, not 0). */
#define QZ_MIN_SCALE FLT_MIN

/* Symmetric: scale = absmax / 127 (torch: max_val_pos / ((quant_max - quant_min) / 2)). */
static inline qz_params qz_params_sym(uint32_t absmax_bits) {
    qz_params p;
    float a = qz_float(absmax_bits);
    float s = a / 127.0f;
    if (a == 0.0f) s = 1.0f;
    else if (s < QZ_MIN_SCALE) s = QZ_MIN_SCALE;
    p.scale = s;
    p.inv = 1.0f / s;
    p.zp = 0;
    p.qmin = -127;
    return p;
}

/* Affine, torch's observer formulas in float32: min_neg = min(min, 0), max_pos = max(max, 0),
 * scale = (max_pos - min_neg) / 255, zero_point = clamp(-128 - round(min_neg / scale)).
 * An empty group (lo > hi) counts as all zeros. */
static inline qz_params qz_params_aff(int32_t lo, int32_t hi) {
    qz_params p;
    float mn = lo > hi ? 0.0f : qz_unkey(lo), mx = lo > hi ? 0.0f : qz_unkey(hi);
    mn = mn < 0.0f ? mn : 0.0f;
    mx = mx > 0.0f ? mx : 0.0f;
    float range = mx - mn;
    float s = range / 255.0f;
    if (!isfinite(range)) s = (float)(((double)mx - (double)mn) / 255.0); /* +-FLT_MAX data */
    if (s == 0.0f) s = 1.0f;
    else if (s < QZ_MIN_SCALE) s = QZ_MIN_SCALE;
    float z = -128.0f - rintf(mn / s);
    z = z < -128.0f ? -128.0f : (z > 127.0f ? 127.0f : z);
    p.scale = s;
    p.inv = 1.0f / s;
    p.zp = (int32_t)z;
    p.qmin = -128;
    return p;
}

/* ---- the loops, one compilation per (type, variant) --------------------------------------- */

#define LOAD_F32(p, i) ((p)[i])
#define LOAD_F64(p, i) ((float)(p)[i])
#define LOAD_F16(p, i) qz_half((p)[i])

#define QB_ATTR TP_NO_VECTORIZE
#define QB_IN float
#define QB_LOAD LOAD_F32
#define QB_NAME(b) b##_f32_scalar
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN double
#define QB_LOAD LOAD_F64
#define QB_NAME(b) b##_f64_scalar
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN uint16_t
#define QB_HALF
#define QB_LOAD LOAD_F16
#define QB_NAME(b) b##_f16_scalar
#include "quant_body.h"
#undef QB_HALF
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_DEQUANT
#define QB_NAME(b) b##_scalar
#include "quant_body.h"
#undef QB_NAME
#undef QB_DEQUANT
#undef QB_ATTR

#define QB_ATTR
#define QB_IN float
#define QB_LOAD LOAD_F32
#define QB_NAME(b) b##_f32_baseline
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN double
#define QB_LOAD LOAD_F64
#define QB_NAME(b) b##_f64_baseline
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN uint16_t
#define QB_HALF
#define QB_LOAD LOAD_F16
#define QB_NAME(b) b##_f16_baseline
#include "quant_body.h"
#undef QB_HALF
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_DEQUANT
#define QB_NAME(b) b##_baseline
#include "quant_body.h"
#undef QB_NAME
#undef QB_DEQUANT
#undef QB_ATTR

#if TP_HAVE_X86_VARIANTS
#define QB_ATTR TP_TARGET_AVX2
#define QB_IN float
#define QB_LOAD LOAD_F32
#define QB_NAME(b) b##_f32_avx2
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN double
#define QB_LOAD LOAD_F64
#define QB_NAME(b) b##_f64_avx2
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN uint16_t
#define QB_HALF
#define QB_LOAD LOAD_F16
#define QB_NAME(b) b##_f16_avx2
#include "quant_body.h"
#undef QB_HALF
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_DEQUANT
#define QB_NAME(b) b##_avx2
#include "quant_body.h"
#undef QB_NAME
#undef QB_DEQUANT
#undef QB_ATTR

#define QB_ATTR TP_TARGET_AVX512
#define QB_IN float
#define QB_LOAD LOAD_F32
#define QB_NAME(b) b##_f32_avx512
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN double
#define QB_LOAD LOAD_F64
#define QB_NAME(b) b##_f64_avx512
#include "quant_body.h"
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_IN uint16_t
#define QB_HALF
#define QB_LOAD LOAD_F16
#define QB_NAME(b) b##_f16_avx512
#include "quant_body.h"
#undef QB_HALF
#undef QB_IN
#undef QB_LOAD
#undef QB_NAME
#define QB_DEQUANT
#define QB_NAME(b) b##_avx512
#include "quant_body.h"
#undef QB_NAME
#undef QB_DEQUANT
#undef QB_ATTR
#endif

#if TP_HAVE_X86_VARIANTS
#include "simd_x86.h"

/* Eight elements as float32, and eight elements times inv rounded to int32 (cvtps2dq: nearest
 * even; see qz_quant_seg_f32_avx2_fast for why no clamp follows). */
TP_TARGET_AVX2 static inline __m256 qz_load8_f32(const float *p) { return _mm256_loadu_ps(p); }
/* IEEE half: F16C converts exactly, as qz_half does (NaN never gets here: computed scales
 * mean the data was finite) */
TP_TARGET_AVX2 static inline __m256 qz_load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
TP_TARGET_AVX2 static inline __m256i qz_round8_f32(const float *p, __m256 inv) {
    return _mm256_cvtps_epi32(_mm256_mul_ps(qz_load8_f32(p), inv));
}
TP_TARGET_AVX2 static inline __m256i qz_round8_f16(const uint16_t *p, __m256 inv) {
    return _mm256_cvtps_epi32(_mm256_mul_ps(qz_load8_f16(p), inv));
}

/* ggml's Q8_0 layout (float32, 32-element blocks) hand-written for AVX2: the compiler's version of
 * the generic body spends most of a 32-element block on loop set-up and horizontal reductions.
 * Same results as qz_block_body (integer max of |x| bits, then qz_params, then rounding to
 * nearest even), so the tests hold it to the scalar reference bit for bit. */
TP_TARGET_AVX2 static inline uint32_t qz_hmax_epu32(__m256i v) {
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

TP_TARGET_AVX2 static int qz_block32_sym_f32_avx2(const float *x, int8_t *q, int64_t count,
                                                  float *scale, int stream) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    /* Eight blocks at a time: their absmaxes, then their scales and reciprocals with two vector
     * divisions (the same IEEE divisions qz_params_sym does one by one), then their q. This keeps
     * the divider's latency off each block's critical path. */
    for (int64_t g0 = 0; g0 < count; g0 += 8) {
        int64_t nb = count - g0 < 8 ? count - g0 : 8;
        uint32_t amax[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t k = 0; k < nb; k++) {
            const float *xb = x + (g0 + k) * 32;
            __m256i m = _mm256_max_epu32(
                _mm256_max_epu32(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)xb), abs_mask),
                                 _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(xb + 8)), abs_mask)),
                _mm256_max_epu32(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(xb + 16)), abs_mask),
                                 _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(xb + 24)), abs_mask)));
            amax[k] = qz_hmax_epu32(m);
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
            const float *xb = x + (g0 + k) * 32;
            const __m256 inv = _mm256_set1_ps(invs[k]);
            scale[g0 + k] = scs[k];
            __m256i r0 = qz_round8_f32(xb, inv), r1 = qz_round8_f32(xb + 8, inv),
                    r2 = qz_round8_f32(xb + 16, inv), r3 = qz_round8_f32(xb + 24, inv);
            __m256i bytes = tp_lanes_to_bytes(r0, r1, r2, r3);
            /* stream: q is large and 16-byte aligned (NumPy's big buffers sit 16 bytes into
             * a page, so 32-byte streaming stores would not line up): two 16-byte streaming
             * stores, which the write-combining buffers join into whole lines (see qz_publish) */
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

/* The float32 (and float16, via F16C) quantize loops with computed scales, hand-written for
 * AVX2. Same results as qz_quant_body bit for bit, with fewer instructions per element, which
 * the quantize pass of a per-channel tile needs (it runs from L2 and was compute-bound):
 *  - rounding by cvtps2dq instead of the magic-number add: both round to nearest even under
 *    the current MXCSR mode, and the two agree wherever |t| < 2^22;
 *  - no integer clamps: the saturating packs clamp to [-128, 127], which is the affine clamp,
 *    and a symmetric scale computed from the data gives |x * inv| <= 127 * (1 + 3 * 2^-24)
 *    (s = RN(absmax / 127), inv = RN(1 / s); with s = FLT_MIN, absmax * 2^126 < 127), so -127
 *    is never passed either.
 * Caller-given scales (`check`, where t may be huge or NaN) take the generic loop.
 * The _nt forms write q with streaming stores straight from registers (no staging buffer);
 * the caller fences once per work item (qz_publish).
 * The one-scale loops are written once per input type T, with its 8-lane rounding helper. */
#define QZ_DEFINE_SEG_AVX2(SUF, T)                                                            \
    TP_TARGET_AVX2 static inline void qz_quant_run_##SUF##_avx2(const T *x, int8_t *q,      \
                                                                int64_t n, float inv_,       \
                                                                int32_t zp, int stream) {    \
        const __m256 inv = _mm256_set1_ps(inv_);                                             \
        const __m256i z = _mm256_set1_epi32(zp);                                             \
        for (int64_t i = 0; i < n; i += 32) {                                                \
            __m256i r0 = qz_round8_##SUF(x + i, inv), r1 = qz_round8_##SUF(x + i + 8, inv);  \
            __m256i r2 = qz_round8_##SUF(x + i + 16, inv);                                   \
            __m256i r3 = qz_round8_##SUF(x + i + 24, inv);                                   \
            if (zp) {                                                                        \
                r0 = _mm256_add_epi32(r0, z);                                                \
                r1 = _mm256_add_epi32(r1, z);                                                \
                r2 = _mm256_add_epi32(r2, z);                                                \
                r3 = _mm256_add_epi32(r3, z);                                                \
            }                                                                                \
            __m256i bytes = tp_lanes_to_bytes(r0, r1, r2, r3);                               \
            if (stream) _mm256_stream_si256((__m256i *)(q + i), bytes);                      \
            else _mm256_storeu_si256((__m256i *)(q + i), bytes);                             \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    TP_TARGET_AVX2 static int qz_quant_seg_##SUF##_avx2_fast(const void *xv, int8_t *q,     \
                                                             int64_t n, float inv,           \
                                                             int32_t zp, int32_t qmin,       \
                                                             int check) {                    \
        if (check || n < 32) return qz_quant_seg_##SUF##_avx2(xv, q, n, inv, zp, qmin, check); \
        const T *x = (const T *)xv;                                                          \
        int64_t body = n & ~(int64_t)31;                                                     \
        if (zp) qz_quant_run_##SUF##_avx2(x, q, body, inv, zp, 0);                           \
        else qz_quant_run_##SUF##_avx2(x, q, body, inv, 0, 0);                               \
        if (body < n) qz_quant_seg_##SUF##_avx2(x + body, q + body, n - body, inv, zp, qmin, 0); \
        return 0;                                                                            \
    }                                                                                        \
                                                                                             \
    TP_TARGET_AVX2 static int qz_quant_seg_##SUF##_avx2_nt(const void *xv, int8_t *q,       \
                                                           int64_t n, float inv, int32_t zp, \
                                                           int32_t qmin, int check) {        \
        const T *x = (const T *)xv;                                                          \
        int64_t head = (int64_t)((32 - ((uintptr_t)q & 31)) & 31);                          \
        if (check || n < head + 32) return qz_quant_seg_##SUF##_avx2(xv, q, n, inv, zp, qmin, check); \
        if (head) qz_quant_seg_##SUF##_avx2(x, q, head, inv, zp, qmin, 0);                   \
        int64_t body = (n - head) & ~(int64_t)31;                                            \
        if (zp) qz_quant_run_##SUF##_avx2(x + head, q + head, body, inv, zp, 1);             \
        else qz_quant_run_##SUF##_avx2(x + head, q + head, body, inv, 0, 1);                 \
        int64_t done = head + body;                                                          \
        if (done < n) qz_quant_seg_##SUF##_avx2(x + done, q + done, n - done, inv, zp, qmin, 0); \
        return 0;                                                                            \
    }

QZ_DEFINE_SEG_AVX2(f32, float)
QZ_DEFINE_SEG_AVX2(f16, uint16_t)

/* The same with one scale and zero point per column (channel axis innermost). */
TP_TARGET_AVX2 static inline void qz_cols_run_f32_avx2(const float *x, int8_t *q, int64_t n,
                                                      const float *inv, const int32_t *zp,
                                                      int stream) {
    /* zp == NULL: symmetric, every zero point is 0 (no loads, no adds) */
#define QZ_ROUND8(k)                                                                           \
    (zp ? _mm256_add_epi32(qz_round8_f32(x + (k), _mm256_loadu_ps(inv + (k))),                 \
                           _mm256_loadu_si256((const __m256i *)(zp + (k))))                     \
        : qz_round8_f32(x + (k), _mm256_loadu_ps(inv + (k))))
    for (int64_t i = 0; i < n; i += 32) {
        __m256i bytes = tp_lanes_to_bytes(QZ_ROUND8(i), QZ_ROUND8(i + 8), QZ_ROUND8(i + 16),
                                          QZ_ROUND8(i + 24));
        if (stream) _mm256_stream_si256((__m256i *)(q + i), bytes);
        else _mm256_storeu_si256((__m256i *)(q + i), bytes);
    }
#undef QZ_ROUND8
}

TP_TARGET_AVX2 static int qz_quant_cols_f32_avx2_fast(const void *xv, int8_t *q, int64_t n,
                                                      const float *inv, const int32_t *zp,
                                                      int32_t qmin, int check) {
    if (check || n < 32) return qz_quant_cols_f32_avx2(xv, q, n, inv, zp, qmin, check);
    const float *x = (const float *)xv;
    int64_t body = n & ~(int64_t)31;
    if (qmin == -127) qz_cols_run_f32_avx2(x, q, body, inv, NULL, 0); /* symmetric: zp all 0 */
    else qz_cols_run_f32_avx2(x, q, body, inv, zp, 0);
    if (body < n) qz_quant_cols_f32_avx2(x + body, q + body, n - body, inv + body, zp + body, qmin, 0);
    return 0;
}

TP_TARGET_AVX2 static int qz_quant_cols_f32_avx2_nt(const void *xv, int8_t *q, int64_t n,
                                                    const float *inv, const int32_t *zp,
                                                    int32_t qmin, int check) {
    const float *x = (const float *)xv;
    int64_t head = (int64_t)((32 - ((uintptr_t)q & 31)) & 31);
    if (check || n < head + 32) return qz_quant_cols_f32_avx2(xv, q, n, inv, zp, qmin, check);
    if (head) qz_quant_cols_f32_avx2(x, q, head, inv, zp, qmin, 0);
    int64_t body = (n - head) & ~(int64_t)31;
    if (qmin == -127) qz_cols_run_f32_avx2(x + head, q + head, body, inv + head, NULL, 1);
    else qz_cols_run_f32_avx2(x + head, q + head, body, inv + head, zp + head, 1);
    int64_t done = head + body;
    if (done < n) qz_quant_cols_f32_avx2(x + done, q + done, n - done, inv + done, zp + done, qmin, 0);
    return 0;
}
#endif

typedef struct {
    uint32_t (*stats_sym)(const void *, int64_t, uint32_t);
    void (*stats_aff)(const void *, int64_t, int32_t *, int32_t *);
    void (*cols_sym)(const void *, int64_t, uint32_t *);
    void (*cols_aff)(const void *, int64_t, int32_t *, int32_t *);
    int (*quant_seg)(const void *, int8_t *, int64_t, float, int32_t, int32_t, int);
    int (*quant_cols)(const void *, int8_t *, int64_t, const float *, const int32_t *, int32_t, int);
    int (*block_run)(const void *, int8_t *, int64_t, int64_t, int, float *, int8_t *);
    void (*copy)(const void *, float *, int64_t);
    void (*copy_cols_sym)(const void *, float *, int64_t, uint32_t *);
    void (*copy_cols_aff)(const void *, float *, int64_t, int32_t *, int32_t *);
    /* quant_seg / quant_cols writing q with streaming stores; NULL: staged (qz_seg_out) */
    int (*quant_seg_nt)(const void *, int8_t *, int64_t, float, int32_t, int32_t, int);
    int (*quant_cols_nt)(const void *, int8_t *, int64_t, const float *, const int32_t *, int32_t, int);
} qz_ops;

typedef struct {
    void (*seg)(const int8_t *, float *, int64_t, float, int32_t);
    void (*cols)(const int8_t *, float *, int64_t, const float *, const int8_t *);
} dq_ops;

#define QZ_OPS(SUF)                                                                          \
    {qz_stats_sym_##SUF, qz_stats_aff_##SUF, qz_cols_sym_##SUF, qz_cols_aff_##SUF,           \
     qz_quant_seg_##SUF, qz_quant_cols_##SUF, qz_block_run_##SUF, qz_copy_##SUF,                 \
     qz_copy_cols_sym_##SUF, qz_copy_cols_aff_##SUF, NULL, NULL}
#define QZ_OPS_ROW(ISA) {QZ_OPS(f32_##ISA), QZ_OPS(f64_##ISA), QZ_OPS(f16_##ISA)}
/* float32 with the hand-written AVX2 quantize loops */
#define QZ_OPS_FAST_F32(ISA)                                                              \
    {qz_stats_sym_f32_##ISA, qz_stats_aff_f32_##ISA, qz_cols_sym_f32_##ISA,                \
     qz_cols_aff_f32_##ISA, qz_quant_seg_f32_avx2_fast, qz_quant_cols_f32_avx2_fast,       \
     qz_block_run_f32_##ISA, qz_copy_f32_##ISA, qz_copy_cols_sym_f32_##ISA,                \
     qz_copy_cols_aff_f32_##ISA, qz_quant_seg_f32_avx2_nt, qz_quant_cols_f32_avx2_nt}

/* float16 with the hand-written AVX2 one-scale quantize loops (F16C loads) */
#define QZ_OPS_FAST_F16(ISA)                                                              \
    {qz_stats_sym_f16_##ISA, qz_stats_aff_f16_##ISA, qz_cols_sym_f16_##ISA,                \
     qz_cols_aff_f16_##ISA, qz_quant_seg_f16_avx2_fast, qz_quant_cols_f16_##ISA,           \
     qz_block_run_f16_##ISA, qz_copy_f16_##ISA, qz_copy_cols_sym_f16_##ISA,                \
     qz_copy_cols_aff_f16_##ISA, qz_quant_seg_f16_avx2_nt, NULL}

/* [variant][dtype]: TP_ISA_* by TP_FLOAT32 / TP_FLOAT64 / TP_QUANT_FLOAT16 */
static const qz_ops QZ_TABLE[4][3] = {
    QZ_OPS_ROW(scalar),
    QZ_OPS_ROW(baseline),
#if TP_HAVE_X86_VARIANTS
    {QZ_OPS_FAST_F32(avx2), QZ_OPS(f64_avx2), QZ_OPS_FAST_F16(avx2)},
    QZ_OPS_ROW(avx512),
#else
    QZ_OPS_ROW(baseline),
    QZ_OPS_ROW(baseline),
#endif
};

static const dq_ops DQ_TABLE[4] = {
    {dq_seg_scalar, dq_cols_scalar},
    {dq_seg_baseline, dq_cols_baseline},
#if TP_HAVE_X86_VARIANTS
    {dq_seg_avx2, dq_cols_avx2},
    {dq_seg_avx512, dq_cols_avx512},
#else
    {dq_seg_baseline, dq_cols_baseline},
    {dq_seg_baseline, dq_cols_baseline},
#endif
};

/* ---- layout helpers ----------------------------------------------------------------------- */

typedef struct {
    int64_t outer, channels, inner, block; /* see tp_quant.h */
    int64_t n;                             /* elements */
    int64_t groups;                        /* scales */
    int es;                                /* bytes per input element */
    int fast_q8_0;                         /* float32, symmetric, B = 32, AVX2: hand-written */
    int nt;                                /* q large enough for streaming stores (qz_rows) */
} qz_layout;

#define AT(x, i, es) ((const char *)(x) + (size_t)(i) * (size_t)(es))

/* The segment holding element a: its scale index, and where it ends (exclusive). Per channel a
 * segment is one run of `inner` elements; per block, one block of a row. */
static inline int64_t qz_segment(const qz_layout *L, int64_t a, int64_t *group) {
    if (L->block) {
        int64_t r = a / L->inner, pos = a - r * L->inner, b = pos / L->block;
        int64_t e = (b + 1) * L->block;
        *group = r * L->channels + b;
        return r * L->inner + (e < L->inner ? e : L->inner);
    }
    int64_t s = a / L->inner;
    *group = s % L->channels;
    return (s + 1) * L->inner;
}

static float qz_load_one(const void *x, int dtype, int64_t i) {
    if (dtype == TP_FLOAT32) return ((const float *)x)[i];
    if (dtype == TP_FLOAT64) return (float)((const double *)x)[i];
    return qz_half(((const uint16_t *)x)[i]);
}

/* Error path only: the lowest channel (block) index holding a value that is not finite in
 * float32. Plain and serial; it runs once, after a kernel has reported a bad value. */
static int64_t qz_first_bad_group(const void *x, int dtype, const qz_layout *L) {
    int64_t best = -1;
    for (int64_t i = 0; i < L->n; i++) {
        if (isfinite(qz_load_one(x, dtype, i))) continue;
        int64_t g;
        qz_segment(L, i, &g);
        if (best < 0 || g < best) best = g;
        if (L->block || L->channels == 1) break; /* memory order is group order here */
    }
    return best;
}

/* ---- quantize drivers --------------------------------------------------------------------- */

/* q stores that skip the read-for-ownership: above
 * QZ_NT_MIN_ELEMENTS, q is staged QZ_STAGE bytes at a time in L1 and copied out with streaming
 * stores, which skip the read-for-ownership of every q line. */
#define QZ_STAGE 4096
#define QZ_NT_MIN_ELEMENTS ((int64_t)8 << 20)

#if TP_HAVE_X86_VARIANTS
TP_TARGET_AVX2 static void qz_stream(int8_t *TP_RESTRICT dst, const int8_t *TP_RESTRICT src, int64_t n) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 31); i++) dst[i] = src[i];
    for (; i + 32 <= n; i += 32)
        _mm256_stream_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
    for (; i < n; i++) dst[i] = src[i];
}
#endif

/* Streaming stores are weakly ordered: a work item that wrote q with them publishes it with one
 * fence at its end. A fence per segment would wait for the write-combining buffers to drain
 * every few KB, which cost a tenth of a per-channel quantize. */
static inline void qz_publish(const qz_layout *L) {
#if TP_HAVE_X86_VARIANTS
    if (L->nt) _mm_sfence();
#else
    (void)L;
#endif
}

static void qz_seg_out(const qz_ops *o, const qz_layout *L, const void *x, int8_t *q, int64_t n,
                       float inv, int32_t zp, int32_t qmin) {
#if TP_HAVE_X86_VARIANTS
    if (L->nt && o->quant_seg_nt) {
        o->quant_seg_nt(x, q, n, inv, zp, qmin, 0);
        return;
    }
    if (L->nt) {
        int8_t stage[QZ_STAGE] __attribute__((aligned(32)));
        for (int64_t a = 0; a < n; a += QZ_STAGE) {
            int64_t len = n - a < QZ_STAGE ? n - a : QZ_STAGE;
            o->quant_seg(AT(x, a, L->es), stage, len, inv, zp, qmin, 0);
            qz_stream(q + a, stage, len);
        }
        return; /* the caller fences once per work item (qz_publish) */
    }
#endif
    o->quant_seg(x, q, n, inv, zp, qmin, 0);
}

static void qz_cols_out(const qz_ops *o, const qz_layout *L, const void *x, int8_t *q, int64_t n,
                        const float *inv, const int32_t *zp, int32_t qmin) {
#if TP_HAVE_X86_VARIANTS
    if (L->nt && o->quant_cols_nt) {
        o->quant_cols_nt(x, q, n, inv, zp, qmin, 0);
        return;
    }
    if (L->nt) {
        int8_t stage[QZ_STAGE] __attribute__((aligned(32)));
        for (int64_t a = 0; a < n; a += QZ_STAGE) {
            int64_t len = n - a < QZ_STAGE ? n - a : QZ_STAGE;
            o->quant_cols(AT(x, a, L->es), stage, len, inv + a, zp + a, qmin, 0);
            qz_stream(q + a, stage, len);
        }
        return; /* the caller fences once per work item (qz_publish) */
    }
#endif
    o->quant_cols(x, q, n, inv, zp, qmin, 0);
}

/* Per-channel work plan. x is [R][C][I], seen as R rows of K = C*I columns.
 *  - tile: channels are cut into tiles of whole channels of about QZ_TILE_BYTES, stats then
 *    quantize per tile while it is in cache. Right when a channel's runs are long (axis 0).
 *  - copy: when the channel axis is not outermost (R > 1) and runs are short, a tile's rows sit
 *    a whole row stride apart; with the power-of-two strides of real weights they map to a few
 *    cache sets and evict each other. With few rows (R <= QZ_COPY_TILE_BYTES / 1 KiB, so each
 *    row of a tile still spans >= 1 KiB and TLB misses amortise) the tile is first copied as
 *    float32 into a contiguous per-thread buffer: x is read from DRAM once.
 *  - rows: with many rows, strided tiles drown in TLB misses, so two sequential passes: column
 *    stats into per-thread accumulators over each thread's rows, then quantize; the quantize pass
 *    walks each thread's rows backwards so the rows the stats pass read last are still cached. */
#define QZ_COPY_TILE_BYTES (256 * 1024)
#define QZ_COPY_MIN_ROW_BYTES 1024
#define QZ_SHORT_RUN_BYTES 1024 /* runs at least this long stream well read in place */
#define QZ_ROWS_MAX_COLUMNS (1 << 20)
/* Bytes of x the rows plan counts on finding in cache after its stats pass (of an 8 MiB L3
 * and the L2s; a smaller guess only costs a few rows read twice). */
#define QZ_ROWS_CACHED_BYTES ((int64_t)4 << 20)

enum { QZ_PLAN_TILE, QZ_PLAN_COPY, QZ_PLAN_ROWS };

typedef struct {
    int kind;
    int64_t tile;         /* channels per tile (tile, copy) */
    int64_t thread_words; /* int32 words of one thread's buffer or accumulators */
    int64_t shared_words; /* int32 words after the 4*C block shared by all threads */
} qz_plan;

static qz_plan qz_make_plan(const qz_layout *L, int32_t mode) {
    qz_plan p = {QZ_PLAN_TILE, 1, 0, 0};
    const int64_t R = L->outer, I = L->inner, C = L->channels, K = C * I;
    if (mode == TP_QUANT_GIVEN || L->block || C <= 1 || L->n == 0) return p;
    if (R > 1 && I * L->es < QZ_SHORT_RUN_BYTES) {
        if (R * QZ_COPY_MIN_ROW_BYTES <= QZ_COPY_TILE_BYTES) {
            p.kind = QZ_PLAN_COPY;
            p.tile = QZ_COPY_TILE_BYTES / (R * I * 4);
            if (p.tile < 1) p.tile = 1;
            if (p.tile > C) p.tile = C;
            p.thread_words = p.tile * R * I;
            return p;
        }
        if (K <= QZ_ROWS_MAX_COLUMNS) {
            p.kind = QZ_PLAN_ROWS;
            p.thread_words = 2 * K;               /* column stats (min and max keys) */
            p.shared_words = I > 1 ? 2 * K : 0;   /* inv and zero point spread per column */
            return p;
        }
    }
    int64_t chan_bytes = R * I * L->es;
    p.tile = chan_bytes > 0 ? QZ_TILE_BYTES / chan_bytes : C;
    if (p.tile < 1) p.tile = 1;
    return p;
}

static void qz_tile_init(const qz_layout *L, int64_t c0, int64_t c1, int affine, int32_t *ws) {
    const int64_t C = L->channels;
    for (int64_t c = c0; c < c1; c++) {
        if (affine) {
            ws[c] = INT32_MAX;
            ws[C + c] = INT32_MIN;
        } else {
            ws[c] = 0;
        }
    }
}

/* Scales of channels [c0, c1) from their stats; 1 when one holds a NaN / Inf. */
static int qz_tile_params(const qz_layout *L, int64_t c0, int64_t c1, int affine, float *scale,
                          int8_t *zp, int32_t *ws) {
    const int64_t C = L->channels;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    for (int64_t c = c0; c < c1; c++) {
        if (affine ? qz_key_nonfinite(mn[c], mx[c]) : absmax[c] >= 0x7f800000u) return 1;
        qz_params p = affine ? qz_params_aff(mn[c], mx[c]) : qz_params_sym(absmax[c]);
        scale[c] = p.scale;
        if (affine) zp[c] = (int8_t)p.zp;
        inv[c] = p.inv;
        zpi[c] = p.zp;
    }
    return 0;
}

/* Channels [c0, c1) of a [R][C][I] tensor, stats then quantize, reading x in place. ws: 4*C
 * words (stats a, stats b, inv, zero point). Returns 1 when the tile holds a NaN / Inf. */
static int qz_tile(const qz_ops *o, const void *x, const qz_layout *L, int64_t c0, int64_t c1,
                   int affine, float *scale, int8_t *zp, int8_t *q, int32_t *ws) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, W = c1 - c0;
    const int es = L->es;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    qz_tile_init(L, c0, c1, affine, ws);
    if (I == 1) {
        for (int64_t r = 0; r < R; r++) {
            const void *row = AT(x, r * C + c0, es);
            if (affine) o->cols_aff(row, W, mn + c0, mx + c0);
            else o->cols_sym(row, W, absmax + c0);
        }
    } else {
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = c0; c < c1; c++) {
                const void *seg = AT(x, (r * C + c) * I, es);
                if (affine) o->stats_aff(seg, I, &mn[c], &mx[c]);
                else absmax[c] = o->stats_sym(seg, I, absmax[c]);
            }
    }
    if (qz_tile_params(L, c0, c1, affine, scale, zp, ws)) return 1;
    int32_t qmin = affine ? -128 : -127;
    if (I == 1) {
        for (int64_t r = 0; r < R; r++)
            o->quant_cols(AT(x, r * C + c0, es), q + r * C + c0, W, inv + c0, zpi + c0, qmin, 0);
    } else {
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = c0; c < c1; c++)
                qz_seg_out(o, L, AT(x, (r * C + c) * I, es), q + (r * C + c) * I, I, inv[c],
                           zpi[c], qmin);
    }
    qz_publish(L);
    return 0;
}

/* The same through a contiguous float32 copy of the tile (o32: the float32 loops). */
static int qz_tile_copy(const qz_ops *o, const qz_ops *o32, const void *x, const qz_layout *L,
                        int64_t c0, int64_t c1, int affine, float *scale, int8_t *zp, int8_t *q,
                        int32_t *ws, float *buf) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, W = (c1 - c0) * I;
    const int es = L->es;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    qz_tile_init(L, c0, c1, affine, ws);
    for (int64_t r = 0; r < R; r++) {
        const void *src = AT(x, (r * C + c0) * I, es);
        float *dst = buf + r * W;
        if (I == 1) {
            if (affine) o->copy_cols_aff(src, dst, W, mn + c0, mx + c0);
            else o->copy_cols_sym(src, dst, W, absmax + c0);
        } else {
            o->copy(src, dst, W);
            for (int64_t c = c0; c < c1; c++) {
                const float *seg = dst + (c - c0) * I;
                if (affine) o32->stats_aff(seg, I, &mn[c], &mx[c]);
                else absmax[c] = o32->stats_sym(seg, I, absmax[c]);
            }
        }
    }
    if (qz_tile_params(L, c0, c1, affine, scale, zp, ws)) return 1;
    int32_t qmin = affine ? -128 : -127;
    for (int64_t r = 0; r < R; r++) {
        const float *row = buf + r * W;
        if (I == 1) {
            o32->quant_cols(row, q + r * C + c0, W, inv + c0, zpi + c0, qmin, 0);
        } else {
            for (int64_t c = c0; c < c1; c++)
                o32->quant_seg(row + (c - c0) * I, q + (r * C + c) * I, I, inv[c], zpi[c], qmin, 0);
        }
    }
    return 0;
}

/* The rows plan (see qz_make_plan). ws: 4*C words, then the per-column inv / zero point (I > 1),
 * then one block of 2*K accumulator words per thread. */
static int qz_rows(const qz_ops *o, const qz_ops *o32, const void *x, const qz_layout *L,
                   int affine, float *scale, int8_t *zp, int8_t *q, int32_t *ws, int threads,
                   const qz_plan *plan) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, K = C * I;
    const int es = L->es;
    int32_t *colws = ws + 4 * C, *accs = colws + plan->shared_words;
    float *inv = (float *)(ws + 2 * C), *col_inv = (float *)colws;
    int32_t *zpi = ws + 3 * C, *col_zp = colws + K;
    int32_t qmin = affine ? -128 : -127;
    int bad = 0;
    (void)o32;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        const int nt = tp_team_size(), id = tp_team_id();
        int64_t r0 = R * id / nt, r1 = R * (id + 1) / nt;
        int32_t *mn = accs + (int64_t)id * 2 * K, *mx = mn + K;
        uint32_t *am = (uint32_t *)mn;
        for (int64_t j = 0; j < K; j++) {
            mn[j] = affine ? INT32_MAX : 0;
            mx[j] = INT32_MIN;
        }
        for (int64_t r = r0; r < r1; r++) {
            if (affine) o->cols_aff(AT(x, r * K, es), K, mn, mx);
            else o->cols_sym(AT(x, r * K, es), K, am);
        }
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
        {
            /* Fold the threads' columns and each channel's I columns: max / min are exact, so
             * the order does not matter. */
            for (int64_t c = 0; c < C; c++) {
                int32_t lo = INT32_MAX, hi = INT32_MIN;
                uint32_t m = 0;
                for (int t = 0; t < nt; t++) {
                    const int32_t *tmn = accs + (int64_t)t * 2 * K, *tmx = tmn + K;
                    for (int64_t i = c * I; i < (c + 1) * I; i++) {
                        if (affine) {
                            lo = tmn[i] < lo ? tmn[i] : lo;
                            hi = tmx[i] > hi ? tmx[i] : hi;
                        } else {
                            uint32_t v = (uint32_t)tmn[i];
                            m = v > m ? v : m;
                        }
                    }
                }
                ws[c] = affine ? lo : (int32_t)m;
                ws[C + c] = hi;
            }
            bad = qz_tile_params(L, 0, C, affine, scale, zp, ws);
            if (!bad && I > 1)
                for (int64_t j = 0; j < K; j++) {
                    col_inv[j] = inv[j / I];
                    col_zp[j] = zpi[j / I];
                }
        } /* implicit barrier */
        if (!bad) {
            const float *ci = I > 1 ? col_inv : inv;
            const int32_t *cz = I > 1 ? col_zp : zpi;
            /* The rows this thread's stats pass read last are still in cache: quantize them
             * first, then the rest from its first row, each run forward (the order the
             * hardware prefetcher follows best). */
            int64_t row_bytes = K * es > 0 ? K * es : 1;
            int64_t cached = QZ_ROWS_CACHED_BYTES / nt / row_bytes;
            int64_t split = r1 - cached > r0 ? r1 - cached : r0;
            for (int64_t r = split; r < r1; r++)
                qz_cols_out(o, L, AT(x, r * K, es), q + r * K, K, ci, cz, qmin);
            for (int64_t r = r0; r < split; r++)
                qz_cols_out(o, L, AT(x, r * K, es), q + r * K, K, ci, cz, qmin);
            qz_publish(L);
        }
    }
    return bad;
}

static int qz_channels(const qz_ops *o, const qz_ops *o32, const void *x, const qz_layout *L,
                       int affine, float *scale, int8_t *zp, int8_t *q, int32_t *ws,
                       int64_t ws_len) {
    const int64_t C = L->channels;
    qz_plan plan = qz_make_plan(L, affine ? TP_QUANT_AFFINE : TP_QUANT_SYMMETRIC);
    int64_t tile = plan.tile;
    int threads = tp_threads_for(L->n, QZ_MIN_PER_THREAD);
    if (plan.thread_words) { /* as many threads as the caller gave buffers for */
        int64_t fit = (ws_len - 4 * C - plan.shared_words) / plan.thread_words;
        if (fit < threads) threads = fit < 1 ? 1 : (int)fit;
    }
    if (plan.kind == QZ_PLAN_ROWS) return qz_rows(o, o32, x, L, affine, scale, zp, q, ws, threads, &plan);
    if ((C + tile - 1) / tile < threads) tile = (C + threads - 1) / threads; /* feed every thread */
    int64_t ntiles = (C + tile - 1) / tile;
    float *bufs = (float *)(ws + 4 * C);
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t c0 = t * tile, c1 = c0 + tile < C ? c0 + tile : C;
        if (plan.kind == QZ_PLAN_COPY) {
            const int id = tp_team_id();
            bad |= qz_tile_copy(o, o32, x, L, c0, c1, affine, scale, zp, q, ws,
                                bufs + (int64_t)id * plan.thread_words);
        } else {
            bad |= qz_tile(o, x, L, c0, c1, affine, scale, zp, q, ws);
        }
    }
    return bad;
}

/* Per tensor: one global stats pass, then one quantize pass. */
static int qz_tensor(const qz_ops *o, const void *x, const qz_layout *L, int affine, float *scale,
                     int8_t *zp, int8_t *q) {
    const int64_t n = L->n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK;
    int threads = tp_threads_for(n, QZ_MIN_PER_THREAD);
    (void)threads;
    qz_params p;
    if (affine) {
        int32_t lo = INT32_MAX, hi = INT32_MIN;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : lo) reduction(max : hi) if (threads > 1)
#endif
        for (int64_t k = 0; k < chunks; k++) {
            int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
            int32_t l = INT32_MAX, h = INT32_MIN;
            o->stats_aff(AT(x, a, L->es), len, &l, &h);
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
        }
        if (qz_key_nonfinite(lo, hi)) return 1;
        p = qz_params_aff(lo, hi);
    } else {
        uint32_t m = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(max : m) if (threads > 1)
#endif
        for (int64_t k = 0; k < chunks; k++) {
            int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
            uint32_t v = o->stats_sym(AT(x, a, L->es), len, 0);
            m = v > m ? v : m;
        }
        if (m >= 0x7f800000u) return 1;
        p = qz_params_sym(m);
    }
    scale[0] = p.scale;
    if (affine) zp[0] = (int8_t)p.zp;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t k = 0; k < chunks; k++) {
        int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
        qz_seg_out(o, L, AT(x, a, L->es), q + a, len, p.inv, p.zp, p.qmin);
        qz_publish(L);
    }
    return 0;
}

/* Per block: each block reduced and quantized while it sits in L1. Work items are runs of
 * QZ_BLOCK_RUN blocks when every row splits evenly (the tensor is then one run of blocks), else
 * whole rows (their full blocks in one run, then the short one). */
#define QZ_BLOCK_RUN 2048

static int qz_blocks(const qz_ops *o, const void *x, const qz_layout *L, int affine, float *scale,
                     int8_t *zp, int8_t *q) {
    const int64_t G = L->groups, B = L->block, I = L->inner, nb = L->channels, R = L->outer;
    const int uniform = I % B == 0;
    const int64_t items = uniform ? (G + QZ_BLOCK_RUN - 1) / QZ_BLOCK_RUN : R;
    int threads = tp_threads_for(L->n, QZ_MIN_PER_THREAD);
    int bad = 0;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t k = 0; k < items; k++) {
        if (uniform) {
            int64_t g0 = k * QZ_BLOCK_RUN, count = G - g0 < QZ_BLOCK_RUN ? G - g0 : QZ_BLOCK_RUN;
#if TP_HAVE_X86_VARIANTS
            if (L->fast_q8_0) {
                int stream = L->nt && ((uintptr_t)q & 15) == 0;
                bad |= qz_block32_sym_f32_avx2((const float *)x + g0 * 32, q + g0 * 32, count,
                                               scale + g0, stream);
                if (stream) qz_publish(L);
                continue;
            }
#endif
            bad |= o->block_run(AT(x, g0 * B, L->es), q + g0 * B, count, B, affine, scale + g0,
                                zp ? zp + g0 : NULL);
        } else {
            int64_t g0 = k * nb, start = k * I, last = (nb - 1) * B;
            bad |= o->block_run(AT(x, start, L->es), q + start, nb - 1, B, affine, scale + g0,
                                zp ? zp + g0 : NULL);
            bad |= o->block_run(AT(x, start + last, L->es), q + start + last, 1, I - last, affine,
                                scale + g0 + nb - 1, zp ? zp + g0 + nb - 1 : NULL);
        }
    }
    return bad;
}

/* Caller-given scales: one streaming pass that also looks for NaN / Inf. */
static int qz_given(const qz_ops *o, const void *x, const qz_layout *L, const float *scale,
                    const int8_t *zp, int8_t *q, int32_t *ws) {
    const int64_t n = L->n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK, C = L->channels;
    const int per_channel = L->block == 0 && C > 1;
    float *inv = (float *)(ws + 2 * C);
    int32_t *zpi = ws + 3 * C;
    if (per_channel)
        for (int64_t c = 0; c < C; c++) {
            inv[c] = 1.0f / scale[c];
            zpi[c] = zp ? zp[c] : 0;
        }
    int threads = tp_threads_for(n, QZ_MIN_PER_THREAD);
    int bad = 0;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t k = 0; k < chunks; k++) {
        int64_t a = k * QZ_CHUNK, b = n - a < QZ_CHUNK ? n : a + QZ_CHUNK;
        while (a < b) {
            int64_t len;
            if (per_channel && L->inner == 1) {
                int64_t j = a % C;
                len = C - j < b - a ? C - j : b - a;
                bad |= o->quant_cols(AT(x, a, L->es), q + a, len, inv + j, zpi + j, -128, 1);
            } else {
                int64_t g, end = qz_segment(L, a, &g);
                len = (end < b ? end : b) - a;
                float gi = per_channel ? inv[g] : 1.0f / scale[g];
                int32_t gz = per_channel ? zpi[g] : (zp ? zp[g] : 0);
                bad |= o->quant_seg(AT(x, a, L->es), q + a, len, gi, gz, -128, 1);
            }
            a += len;
        }
    }
    return bad;
}

static int qz_layout_init(qz_layout *L, int64_t outer, int64_t channels, int64_t inner,
                          int64_t block) {
    TP_RETURN_IF(outer < 0 || channels < 0 || inner < 0 || block < 0, TP_ERR_ARGUMENT);
    L->block = block;
    L->fast_q8_0 = 0;
    L->nt = 0;
    if (block) {
        TP_RETURN_IF(channels != (inner + block - 1) / block, TP_ERR_ARGUMENT);
        L->outer = outer;
        L->channels = channels;
        L->inner = inner;
        L->n = outer * inner;
        L->groups = outer * channels;
    } else if (channels == 1) { /* per tensor, also a channel axis of length 1 */
        L->outer = 1;
        L->channels = 1;
        L->inner = outer * inner;
        L->n = L->inner;
        L->groups = 1;
    } else {
        L->outer = outer;
        L->channels = channels;
        L->inner = inner;
        L->n = outer * channels * inner;
        L->groups = channels;
    }
    return TP_OK;
}

int tp_quantize_int8_isa(const void *x, int32_t dtype, int64_t outer, int64_t channels,
                         int64_t inner, int64_t block, int32_t mode, float *scale,
                         int8_t *zero_point, int8_t *q, int32_t *workspace,
                         int64_t workspace_len, int64_t *bad, int isa) {
    TP_RETURN_IF(bad == NULL, TP_ERR_ARGUMENT);
    *bad = -1;
    TP_RETURN_IF(!tp_isa_available(isa) || isa < 0 || isa > 3, TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(dtype != TP_FLOAT32 && dtype != TP_FLOAT64 && dtype != TP_QUANT_FLOAT16,
                 TP_ERR_ARGUMENT);
    TP_RETURN_IF(mode != TP_QUANT_SYMMETRIC && mode != TP_QUANT_AFFINE && mode != TP_QUANT_GIVEN,
                 TP_ERR_ARGUMENT);
    qz_layout L;
    int status = qz_layout_init(&L, outer, channels, inner, block);
    TP_RETURN_IF(status != TP_OK, status);
    L.es = dtype == TP_FLOAT32 ? 4 : dtype == TP_FLOAT64 ? 8 : 2;
    const int affine = mode == TP_QUANT_AFFINE;
    TP_RETURN_IF(L.groups > 0 && scale == NULL, TP_ERR_ARGUMENT);
    TP_RETURN_IF(L.groups > 0 && affine && zero_point == NULL, TP_ERR_ARGUMENT);
    if (mode == TP_QUANT_GIVEN)
        for (int64_t g = 0; g < L.groups; g++) /* the reciprocal must be finite */
            TP_RETURN_IF(!(scale[g] >= QZ_MIN_SCALE && scale[g] <= FLT_MAX), TP_ERR_ARGUMENT);
    if (L.n == 0) { /* empty groups are all-zero groups */
        if (mode != TP_QUANT_GIVEN)
            for (int64_t g = 0; g < L.groups; g++) {
                qz_params p = affine ? qz_params_aff(INT32_MAX, INT32_MIN) : qz_params_sym(0);
                scale[g] = p.scale;
                if (affine) zero_point[g] = p.zp;
            }
        return TP_OK;
    }
    TP_RETURN_IF(x == NULL || q == NULL, TP_ERR_ARGUMENT);
    const int needs_ws = L.block == 0 && L.channels > 1;
    TP_RETURN_IF(needs_ws && (workspace == NULL || workspace_len < 4 * L.channels), TP_ERR_ARGUMENT);
    qz_plan plan = qz_make_plan(&L, mode);
    TP_RETURN_IF(needs_ws && workspace_len < 4 * L.channels + plan.shared_words + plan.thread_words,
                 TP_ERR_ARGUMENT);

    const qz_ops *o = &QZ_TABLE[isa][dtype], *o32 = &QZ_TABLE[isa][TP_FLOAT32];
    L.nt = (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) && L.n >= QZ_NT_MIN_ELEMENTS;
    L.fast_q8_0 = (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) && dtype == TP_FLOAT32 &&
                  mode == TP_QUANT_SYMMETRIC && L.block == 32;
    int found;
    if (mode == TP_QUANT_GIVEN) found = qz_given(o, x, &L, scale, zero_point, q, workspace);
    else if (L.block) found = qz_blocks(o, x, &L, affine, scale, affine ? zero_point : NULL, q);
    else if (L.channels == 1) found = qz_tensor(o, x, &L, affine, scale, zero_point, q);
    else found = qz_channels(o, o32, x, &L, affine, scale, zero_point, q, workspace, workspace_len);
    if (found) {
        *bad = qz_first_bad_group(x, dtype, &L);
        return TP_ERR_NONFINITE;
    }
    return TP_OK;
}

int64_t tp_quantize_int8_workspace(int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                                   int64_t block, int32_t mode, int32_t threads) {
    qz_layout L;
    if (qz_layout_init(&L, outer, channels, inner, block) != TP_OK) return -1;
    L.es = dtype == TP_FLOAT32 ? 4 : dtype == TP_FLOAT64 ? 8 : 2;
    if (L.block || L.channels <= 1) return 0;
    qz_plan plan = qz_make_plan(&L, mode);
    return 4 * L.channels + plan.shared_words + (threads < 1 ? 1 : threads) * plan.thread_words;
}

int tp_quantize_int8(const void *x, int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                     int64_t block, int32_t mode, float *scale, int8_t *zero_point, int8_t *q,
                     int32_t *workspace, int64_t workspace_len, int64_t *bad) {
    return tp_quantize_int8_isa(x, dtype, outer, channels, inner, block, mode, scale, zero_point,
                                q, workspace, workspace_len, bad, tp_isa_current());
}

/* ---- dequantize --------------------------------------------------------------------------- */

/* Large outputs are written with streaming (non-temporal) stores: a normal store first reads the
 * line it writes (read-for-ownership), which for a float32 output of int8 input is 4 of the 9
 * bytes moved per element. Only above QZ_NT_MIN_BYTES, where the output would not stay in
 * cache for the caller anyway. Same arithmetic as dq_seg / dq_cols, hence the same bits. */
#define QZ_NT_MIN_BYTES ((int64_t)8 << 20)

#if TP_HAVE_X86_VARIANTS

TP_TARGET_AVX2 static void dq_seg_avx2_nt(const int8_t *TP_RESTRICT q, float *TP_RESTRICT out,
                                          int64_t n, float scale, int32_t zp) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(out + i) & 31); i++) out[i] = (float)((int32_t)q[i] - zp) * scale;
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i z = _mm256_set1_epi32(zp);
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
        _mm256_stream_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, z)), s));
    }
    for (; i < n; i++) out[i] = (float)((int32_t)q[i] - zp) * scale;
}

TP_TARGET_AVX2 static void dq_cols_avx2_nt(const int8_t *TP_RESTRICT q, float *TP_RESTRICT out,
                                           int64_t n, const float *TP_RESTRICT scale,
                                           const int8_t *TP_RESTRICT zp) {
    int64_t i = 0;
    for (; i < n && ((uintptr_t)(out + i) & 31); i++)
        out[i] = (float)((int32_t)q[i] - (zp ? (int32_t)zp[i] : 0)) * scale[i];
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
        if (zp) v = _mm256_sub_epi32(v, _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(zp + i))));
        _mm256_stream_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(scale + i)));
    }
    for (; i < n; i++) out[i] = (float)((int32_t)q[i] - (zp ? (int32_t)zp[i] : 0)) * scale[i];
}

static const dq_ops DQ_NT = {dq_seg_avx2_nt, dq_cols_avx2_nt};
#endif

int tp_dequantize_int8_isa(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                           int64_t block, const float *scale, const int8_t *zero_point,
                           float *out, int isa) {
    TP_RETURN_IF(!tp_isa_available(isa) || isa < 0 || isa > 3, TP_ERR_UNSUPPORTED);
    qz_layout L;
    int status = qz_layout_init(&L, outer, channels, inner, block);
    TP_RETURN_IF(status != TP_OK, status);
    if (L.n == 0) return TP_OK;
    TP_RETURN_IF(q == NULL || out == NULL || scale == NULL, TP_ERR_ARGUMENT);
    const dq_ops *o = &DQ_TABLE[isa];
#if TP_HAVE_X86_VARIANTS
    if ((isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) && L.n * 4 >= QZ_NT_MIN_BYTES) o = &DQ_NT;
#endif
    const int64_t n = L.n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK, C = L.channels;
    const int cols = L.block == 0 && C > 1 && L.inner == 1;
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
                o->cols(q + a, out + a, len, scale + j, zero_point ? zero_point + j : NULL);
            } else {
                int64_t g, end = qz_segment(&L, a, &g);
                len = (end < b ? end : b) - a;
                o->seg(q + a, out + a, len, scale[g], zero_point ? zero_point[g] : 0);
            }
            a += len;
        }
#if TP_HAVE_X86_VARIANTS
        /* Streaming stores are weakly ordered: publish the chunk with one fence (see qz_publish). */
        if (o == &DQ_NT) _mm_sfence();
#endif
    }
    return TP_OK;
}

int tp_dequantize_int8(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                       int64_t block, const float *scale, const int8_t *zero_point, float *out) {
    return tp_dequantize_int8_isa(q, outer, channels, inner, block, scale, zero_point, out,
                                  tp_isa_current());
}
