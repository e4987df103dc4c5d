/*
 * quant_internal.h: what the files of the quant family share (never seen by cffi).
 *
 *   q   = clamp(round_half_even(x * (1.0f / scale)) + zero_point, qmin, 127)    (float32 math)
 *   x^  = float32(q - zero_point) * scale, written as float32 or rounded to nearest even into
 *         bfloat16 / IEEE half
 * which is torch.quantize_per_channel / dequantize bit for bit. Scales come from the data
 * (symmetric: absmax / 127; affine: the [min, max] range widened to 0, / 255, torch's observer
 * formulas) or from the caller.
 *
 * The files:
 *   ref.c          quantize_int8_ref / dequantize_int8_ref: the plain scalar references
 *   body_tmpl.h    the per-element loops, once per input type (float32, float64, float16,
 *                  bfloat16)
 *   variants.c     the loops compiled per ISA (thin wrappers), the loop sets, the dispatch tables
 *   x86_avx2.c     hand-written AVX2 loops (32-element blocks, float32 / float16 / bfloat16
 *                  rounding, streaming stores)
 *   x86_avx512.c   hand-written AVX-512 dequantize into bfloat16
 *   quantize.c     tp_quantize_int8[_isa]: checks, layouts; per tensor, per block, given scales
 *   channels.c     per channel: the tile / copy / rows plans
 *   dequantize.c   tp_dequantize_int8[_isa]
 */
#ifndef TP_QUANT_INTERNAL_H
#define TP_QUANT_INTERNAL_H

#include <float.h>
#include <math.h>
#include <string.h>
#include "../common.h"
#include "../half.h"

#define QZ_MIN_PER_THREAD 65536    /* elements: below this one thread is faster */
#define QZ_CHUNK 65536             /* elements per work item of the streaming loops */
#define QZ_TILE_BYTES (256 * 1024) /* bytes of x per tile: stays in the 512 KiB L2 */
/* Outputs at least this large are written with streaming stores where the ISA has them: a
 * normal store first reads the line it writes (read-for-ownership), and an output this large
 * would not stay in cache for the caller anyway. q counts elements, dequantize bytes. */
#define QZ_NT_MIN_ELEMENTS ((int64_t)8 << 20)
#define QZ_NT_MIN_BYTES ((int64_t)8 << 20)
/* Smallest scale whose reciprocal is finite (a denormal-range channel gets this, not 0). */
#define QZ_MIN_SCALE FLT_MIN

/* ---- scalar helpers, inlined into every loop ---------------------------------------------- */

/* An int32 whose signed order is the float order (negative floats have their magnitude bits
 * flipped), so min / max reduce as integers, which vectorizes without -ffast-math. NaNs land
 * beyond the infinities. */
TP_ALWAYS_INLINE int32_t qz_key(float f) {
    int32_t b = (int32_t)tp_bits(f);
    return b ^ ((b >> 31) & 0x7fffffff);
}

TP_ALWAYS_INLINE float qz_unkey(int32_t k) {
    return tp_float((uint32_t)(k ^ ((k >> 31) & 0x7fffffff)));
}

#define QZ_KEY_POS_INF 0x7f800000
#define QZ_KEY_NEG_INF ((int32_t)0x807fffff)

TP_ALWAYS_INLINE int qz_key_nonfinite(int32_t lo, int32_t hi) {
    return hi >= QZ_KEY_POS_INF || lo <= QZ_KEY_NEG_INF;
}

/* Element i as float32, one per input type (the template header picks by suffix). */
TP_ALWAYS_INLINE float qz_load_f32(const float *p, int64_t i) { return p[i]; }
TP_ALWAYS_INLINE float qz_load_f64(const double *p, int64_t i) { return (float)p[i]; }
TP_ALWAYS_INLINE float qz_load_f16(const uint16_t *p, int64_t i) { return tp_f16_to_f32(p[i]); }
TP_ALWAYS_INLINE float qz_load_bf16(const uint16_t *p, int64_t i) { return tp_bf16_to_f32(p[i]); }

/* Element i of x as float32, any input type (error paths only: the loops use the loads above). */
static inline float qz_element(const void *x, int32_t dtype, int64_t i) {
    if (dtype == TP_FLOAT32) return ((const float *)x)[i];
    if (dtype == TP_FLOAT64) return (float)((const double *)x)[i];
    if (dtype == TP_BFLOAT16) return tp_bf16_to_f32(((const uint16_t *)x)[i]);
    return tp_f16_to_f32(((const uint16_t *)x)[i]);
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
    int32_t r = (int32_t)tp_bits(t + QZ_MAGIC) + (zp - QZ_MAGIC_BITS); /* one add per element */
    r = r > qmin ? r : qmin;
    r = r < 127 ? r : 127;
    return (int8_t)r;
}

/* ---- the parameters of one group (a channel, a block, the tensor) ------------------------- */

typedef struct {
    float scale, inv;
    int32_t zp, qmin;
} qz_params;

/* Symmetric: scale = absmax / 127 (torch: max_val_pos / ((quant_max - quant_min) / 2)). */
static inline qz_params qz_params_sym(uint32_t absmax_bits) {
    qz_params p;
    float a = tp_float(absmax_bits);
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

/* ---- layouts ------------------------------------------------------------------------------ */

typedef struct {
    int64_t outer, channels, inner, block; /* see tp_quant.h; per tensor is 1, 1, n, 0 */
    int64_t n;                             /* elements */
    int64_t groups;                        /* scales */
    int es;                                /* bytes per input element */
    int nt;                                /* q written with streaming stores */
} qz_layout;

/* Bytes per element of an input type */
static inline int qz_element_size(int32_t dtype) {
    return dtype == TP_FLOAT32 ? 4 : dtype == TP_FLOAT64 ? 8 : 2;
}

#define AT(x, i, es) ((const char *)(x) + (size_t)(i) * (size_t)(es))

/* The layout's normal form, or TP_ERR_ARGUMENT; es is left to the caller. */
int qz_layout_init(qz_layout *L, int64_t outer, int64_t channels, int64_t inner, int64_t block);

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

/* ---- the loops of one input type under one ISA (variants.c, x86_avx2.c) ------------------- */

typedef struct {
    /* stats: absmax bits / min and max keys of n elements, or column-wise into acc[0..n) */
    uint32_t (*stats_sym)(const void *x, int64_t n, uint32_t m);
    void (*stats_aff)(const void *x, int64_t n, int32_t *mn, int32_t *mx);
    void (*cols_sym)(const void *x, int64_t n, uint32_t *acc);
    void (*cols_aff)(const void *x, int64_t n, int32_t *mn, int32_t *mx);
    /* q of n elements with one scale / one per column; `check`: caller-given scales, so look
     * for NaN / Inf (returns 1) and clamp wide values */
    int (*quant_seg)(const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin,
                     int check);
    int (*quant_cols)(const void *x, int8_t *q, int64_t n, const float *inv, const int32_t *zp,
                      int32_t qmin, int check);
    /* `count` blocks of B elements: stats, scale, q; returns 1 on NaN / Inf */
    int (*block_run)(const void *x, int8_t *q, int64_t count, int64_t B, int affine,
                     float *scale, int8_t *zp);
    /* x as float32 into buf, with the column stats fused in */
    void (*copy)(const void *x, float *buf, int64_t n);
    void (*copy_cols_sym)(const void *x, float *buf, int64_t n, uint32_t *acc);
    void (*copy_cols_aff)(const void *x, float *buf, int64_t n, int32_t *mn, int32_t *mx);
    /* x86 only (NULL elsewhere). quant_seg / quant_cols writing q with streaming stores
     * (NULL: staged in L1 and copied out by stream_copy); float32 / bfloat16 symmetric 32-element blocks
     * (NULL: block_run); a streaming copy (NULL: this ISA never streams). */
    int (*quant_seg_nt)(const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin,
                        int check);
    int (*quant_cols_nt)(const void *x, int8_t *q, int64_t n, const float *inv,
                         const int32_t *zp, int32_t qmin, int check);
    int (*block32_sym)(const void *x, int8_t *q, int64_t count, float *scale, int stream);
    void (*stream_copy)(int8_t *dst, const int8_t *src, int64_t n);
} qz_loops;

/* The dequantize loops of one output type (out: float32, or bfloat16 / IEEE half bits). */
typedef struct {
    void (*seg)(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
    void (*cols)(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
    /* the same with streaming stores, for large outputs (NULL: never) */
    void (*seg_nt)(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
    void (*cols_nt)(const int8_t *q, void *out, int64_t n, const float *scale,
                    const int8_t *zp);
} dq_loops;

/* ---- one call, checked, as every variant receives it -------------------------------------- */

typedef struct {
    const void *x;
    int32_t dtype; /* TP_FLOAT32, TP_FLOAT64, TP_FLOAT16, TP_BFLOAT16: also the loop set's index */
    int32_t mode;
    qz_layout L;   /* n > 0 */
    float *scale;
    int8_t *zero_point;
    int8_t *q;
    int32_t *workspace;
    int64_t workspace_len;
} qz_call;

typedef struct {
    const int8_t *q;
    qz_layout L; /* n > 0 */
    const float *scale;
    const int8_t *zero_point;
    void *out;
    int32_t out_dtype; /* TP_FLOAT32, TP_BFLOAT16, TP_FLOAT16: also the loop set's index */
} dq_call;

/* A variant returns 1 when x holds a value that is not finite in float32, else 0. */
typedef int (*quantize_fn)(const qz_call *c);
typedef void (*dequantize_fn)(const dq_call *c);

/* ref.c: the scalar references (the TP_ISA_SCALAR slots) */
int quantize_int8_ref(const qz_call *c);
void dequantize_int8_ref(const dq_call *c);

/* quantize.c / channels.c / dequantize.c: the drivers every other variant runs with its loops
 * (`loops`: one ISA's loop sets, indexed by input type) */
int quantize_int8_run(const qz_call *c, const qz_loops *loops);
int qz_channels(const qz_loops *o, const qz_loops *o32, const qz_call *c, const qz_layout *L);
void dequantize_int8_run(const dq_call *c, const dq_loops *loops);

/* q for n elements of one segment, with one scale (col_inv NULL) or one per column, streamed
 * when L->nt; qz_publish fences what a work item streamed. */
void qz_write(const qz_loops *o, const qz_layout *L, const void *x, int8_t *q, int64_t n,
              float inv, int32_t zp, const float *col_inv, const int32_t *col_zp, int32_t qmin);
void qz_publish(const qz_layout *L);

/* variants.c: the dispatch tables, through TP_PICK */
quantize_fn quantize_int8_variant(int isa);
dequantize_fn dequantize_int8_variant(int isa);

#if TP_HAVE_X86_VARIANTS
/* x86_avx2.c */
int qz_quant_seg_f32_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                               int32_t qmin, int check);
int qz_quant_seg_f32_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                             int32_t qmin, int check);
int qz_quant_seg_f16_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                               int32_t qmin, int check);
int qz_quant_seg_f16_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                             int32_t qmin, int check);
int qz_quant_seg_bf16_avx2_fast(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                                int32_t qmin, int check);
int qz_quant_seg_bf16_avx2_nt(const void *x, int8_t *q, int64_t n, float inv, int32_t zp,
                              int32_t qmin, int check);
int qz_quant_cols_bf16_avx2_fast(const void *x, int8_t *q, int64_t n, const float *inv,
                                 const int32_t *zp, int32_t qmin, int check);
int qz_quant_cols_bf16_avx2_nt(const void *x, int8_t *q, int64_t n, const float *inv,
                               const int32_t *zp, int32_t qmin, int check);
int qz_quant_cols_f32_avx2_fast(const void *x, int8_t *q, int64_t n, const float *inv,
                                const int32_t *zp, int32_t qmin, int check);
int qz_quant_cols_f32_avx2_nt(const void *x, int8_t *q, int64_t n, const float *inv,
                              const int32_t *zp, int32_t qmin, int check);
int qz_block32_sym_f32_avx2(const void *x, int8_t *q, int64_t count, float *scale, int stream);
int qz_block32_sym_bf16_avx2(const void *x, int8_t *q, int64_t count, float *scale, int stream);
void qz_stream_copy_avx2(int8_t *dst, const int8_t *src, int64_t n);
void dq_seg_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_cols_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale,
                     const int8_t *zp);
void dq_seg_f16_avx2_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_seg_f16_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_cols_f16_avx2_fast(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
void dq_cols_f16_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
void dq_seg_bf16_avx2_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_seg_bf16_avx2_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_cols_bf16_avx2_fast(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
void dq_cols_bf16_avx2_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
/* x86_avx512.c */
void dq_seg_bf16_avx512_fast(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_seg_bf16_avx512_nt(const int8_t *q, void *out, int64_t n, float scale, int32_t zp);
void dq_cols_bf16_avx512_fast(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
void dq_cols_bf16_avx512_nt(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp);
#endif

#endif /* TP_QUANT_INTERNAL_H */
