/*
 * variants.c: the quant loops compiled once per ISA, and the two dispatch tables.
 *
 * body_tmpl.h is instantiated once per input type; QZ_STAMP_LOOPS then stamps thin wrappers
 * that compile those inlined bodies under one ISA's target attribute, and a loop set
 * (qz_loops, one per input type) names them, with the hand-written AVX2 loops (x86_avx2.c) in
 * the slots where they are faster. The variants of tp_quantize_int8 / tp_dequantize_int8 are
 * the references of ref.c (TP_ISA_SCALAR) and the drivers run with one ISA's loop sets.
 */
#include "quant_internal.h"

#define T float
#define SUF f32
#define HALF 0
#include "body_tmpl.h"

#define T double
#define SUF f64
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

/* out = float(q - zp) * scale: the difference is an exact small integer, so the one multiply
 * is the only rounding, as in torch's dequantize; then stored as float32 or rounded to nearest
 * even into bfloat16 / IEEE half (OT: the output's type code, a constant in each wrapper). */
TP_ALWAYS_INLINE void dq_store(void *TP_RESTRICT out, int64_t i, float v, const int ot) {
    if (ot == TP_FLOAT32) ((float *)out)[i] = v;
    else if (ot == TP_BFLOAT16) ((uint16_t *)out)[i] = tp_f32_to_bf16(v);
    else ((uint16_t *)out)[i] = tp_f32_to_f16(v);
}

TP_ALWAYS_INLINE void dq_seg_body(const int8_t *TP_RESTRICT q, void *TP_RESTRICT out, int64_t n,
                                  float scale, int32_t zp, const int ot) {
    for (int64_t i = 0; i < n; i++) dq_store(out, i, (float)((int32_t)q[i] - zp) * scale, ot);
}

TP_ALWAYS_INLINE void dq_cols_body(const int8_t *TP_RESTRICT q, void *TP_RESTRICT out, int64_t n,
                                   const float *TP_RESTRICT scale, const int8_t *TP_RESTRICT zp,
                                   const int ot) {
    if (zp)
        for (int64_t j = 0; j < n; j++)
            dq_store(out, j, (float)((int32_t)q[j] - (int32_t)zp[j]) * scale[j], ot);
    else
        for (int64_t j = 0; j < n; j++) dq_store(out, j, (float)q[j] * scale[j], ot);
}

/* Parameter lists the wrappers share (the loop slots of qz_loops). */
#define QZ_SEG_PARAMS const void *x, int8_t *q, int64_t n, float inv, int32_t zp, int32_t qmin, int check
#define QZ_COLS_PARAMS const void *x, int8_t *q, int64_t n, const float *inv, const int32_t *zp, int32_t qmin, int check
#define QZ_BLOCK_PARAMS const void *x, int8_t *q, int64_t count, int64_t B, int affine, float *scale, int8_t *zp
#define QZ_COPY_AFF_PARAMS const void *x, float *buf, int64_t n, int32_t *lo, int32_t *hi
/* where a hand-written loop takes the slot, the compiled one goes unused */
#define QZ_MAYBE_UNUSED __attribute__((unused))

/* The wrappers of one input type under one ISA: qz_<loop>_<SUF>_<ISA>, each one call. */
#define QZ_STAMP_LOOPS(SUF, ISA, TARGET) \
    TARGET static uint32_t qz_stats_sym_##SUF##_##ISA(const void *x, int64_t n, uint32_t m) { return qz_stats_sym_body_##SUF(x, n, m); } \
    TARGET static void qz_stats_aff_##SUF##_##ISA(const void *x, int64_t n, int32_t *lo, int32_t *hi) { qz_stats_aff_body_##SUF(x, n, lo, hi); } \
    TARGET static void qz_cols_sym_##SUF##_##ISA(const void *x, int64_t n, uint32_t *acc) { qz_cols_sym_body_##SUF(x, NULL, n, acc, 0); } \
    TARGET static void qz_cols_aff_##SUF##_##ISA(const void *x, int64_t n, int32_t *lo, int32_t *hi) { qz_cols_aff_body_##SUF(x, NULL, n, lo, hi, 0); } \
    TARGET QZ_MAYBE_UNUSED static int qz_quant_seg_##SUF##_##ISA(QZ_SEG_PARAMS) { return qz_quant_seg_body_##SUF(x, q, n, inv, zp, qmin, check); } \
    TARGET QZ_MAYBE_UNUSED static int qz_quant_cols_##SUF##_##ISA(QZ_COLS_PARAMS) { return qz_quant_cols_body_##SUF(x, q, n, inv, zp, qmin, check); } \
    TARGET static int qz_block_run_##SUF##_##ISA(QZ_BLOCK_PARAMS) { return qz_block_run_body_##SUF(x, q, count, B, affine, scale, zp); } \
    TARGET static void qz_copy_##SUF##_##ISA(const void *x, float *buf, int64_t n) { qz_copy_body_##SUF(x, buf, n); } \
    TARGET static void qz_copy_cols_sym_##SUF##_##ISA(const void *x, float *buf, int64_t n, uint32_t *acc) { qz_cols_sym_body_##SUF(x, buf, n, acc, 1); } \
    TARGET static void qz_copy_cols_aff_##SUF##_##ISA(QZ_COPY_AFF_PARAMS) { qz_cols_aff_body_##SUF(x, buf, n, lo, hi, 1); }

/* The dequantize wrappers of one output type under one ISA: dq_{seg,cols}_<OSUF>_<ISA>. */
#define DQ_STAMP_LOOPS(OSUF, OT, ISA, TARGET) \
    TARGET QZ_MAYBE_UNUSED static void dq_seg_##OSUF##_##ISA(const int8_t *q, void *out, int64_t n, float scale, int32_t zp) { dq_seg_body(q, out, n, scale, zp, OT); } \
    TARGET QZ_MAYBE_UNUSED static void dq_cols_##OSUF##_##ISA(const int8_t *q, void *out, int64_t n, const float *scale, const int8_t *zp) { dq_cols_body(q, out, n, scale, zp, OT); }
#define DQ_STAMP_ALL(ISA, TARGET) \
    DQ_STAMP_LOOPS(f32, TP_FLOAT32, ISA, TARGET) \
    DQ_STAMP_LOOPS(bf16, TP_BFLOAT16, ISA, TARGET) \
    DQ_STAMP_LOOPS(f16, TP_FLOAT16, ISA, TARGET)
/* The dequantize loop sets of one ISA, by output type code [TP_FLOAT32, -, TP_FLOAT16,
 * TP_BFLOAT16], from the compiled loops (slot unused by the x86 ISAs: QZ_MAYBE_UNUSED). */
#define DQ_LOOP_SETS(ISA)                                                                    \
    {{dq_seg_f32_##ISA, dq_cols_f32_##ISA, NULL, NULL},                                       \
     {NULL, NULL, NULL, NULL},                                                                \
     {dq_seg_f16_##ISA, dq_cols_f16_##ISA, NULL, NULL},                                       \
     {dq_seg_bf16_##ISA, dq_cols_bf16_##ISA, NULL, NULL}}
/* The same on x86, with the hand-written loops of x86_avx2.c: float32 through the compiled
 * loop and streaming stores, the 16-bit outputs through F16C / integer rounding, both ways;
 * bfloat16 from BF16_ISA's file (x86_avx2.c or x86_avx512.c). */
#define DQ_LOOP_SETS_X86(ISA, BF16_ISA)                                                      \
    {{dq_seg_f32_##ISA, dq_cols_f32_##ISA, dq_seg_avx2_nt, dq_cols_avx2_nt},                  \
     {NULL, NULL, NULL, NULL},                                                                \
     {dq_seg_f16_avx2_fast, dq_cols_f16_avx2_fast, dq_seg_f16_avx2_nt, dq_cols_f16_avx2_nt},  \
     {dq_seg_bf16_##BF16_ISA##_fast, dq_cols_bf16_##BF16_ISA##_fast, dq_seg_bf16_##BF16_ISA##_nt, \
      dq_cols_bf16_##BF16_ISA##_nt}}

/* A loop set: the stamped loops of SUF under ISA, with these quant_seg / quant_cols, and the
 * x86 slots (streaming loops, the float32 32-element blocks, the streaming copy) or NULLs. */
#define QZ_LOOP_SET(SUF, ISA, SEG, COLS, SEG_NT, COLS_NT, BLOCK32, STREAM)                                  \
    {qz_stats_sym_##SUF##_##ISA, qz_stats_aff_##SUF##_##ISA, qz_cols_sym_##SUF##_##ISA,                      \
     qz_cols_aff_##SUF##_##ISA, SEG, COLS, qz_block_run_##SUF##_##ISA, qz_copy_##SUF##_##ISA,                \
     qz_copy_cols_sym_##SUF##_##ISA, qz_copy_cols_aff_##SUF##_##ISA, SEG_NT, COLS_NT, BLOCK32, STREAM}
#define QZ_COMPILED_LOOP_SET(SUF, ISA, BLOCK32, STREAM) \
    QZ_LOOP_SET(SUF, ISA, qz_quant_seg_##SUF##_##ISA, qz_quant_cols_##SUF##_##ISA, NULL, NULL, BLOCK32, STREAM)

/* ---- baseline: whatever the compiler's default target allows ------------------------------ */

QZ_STAMP_LOOPS(f32, baseline, )
QZ_STAMP_LOOPS(f64, baseline, )
QZ_STAMP_LOOPS(f16, baseline, )
QZ_STAMP_LOOPS(bf16, baseline, )
DQ_STAMP_ALL(baseline, )

/* [TP_FLOAT32, TP_FLOAT64, TP_FLOAT16, TP_BFLOAT16] */
static const qz_loops QZ_LOOPS_BASELINE[4] = {
    QZ_COMPILED_LOOP_SET(f32, baseline, NULL, NULL),
    QZ_COMPILED_LOOP_SET(f64, baseline, NULL, NULL),
    QZ_COMPILED_LOOP_SET(f16, baseline, NULL, NULL),
    QZ_COMPILED_LOOP_SET(bf16, baseline, NULL, NULL),
};
static const dq_loops DQ_LOOPS_BASELINE[4] = DQ_LOOP_SETS(baseline);

static int quantize_int8_baseline(const qz_call *c) { return quantize_int8_run(c, QZ_LOOPS_BASELINE); }
static void dequantize_int8_baseline(const dq_call *c) { dequantize_int8_run(c, DQ_LOOPS_BASELINE); }

#if TP_HAVE_X86_VARIANTS
/* ---- AVX2: compiled loops, with the hand-written float32 / float16 ones where they pay ----- */

QZ_STAMP_LOOPS(f32, avx2, TP_TARGET_AVX2)
QZ_STAMP_LOOPS(f64, avx2, TP_TARGET_AVX2)
QZ_STAMP_LOOPS(f16, avx2, TP_TARGET_AVX2)
QZ_STAMP_LOOPS(bf16, avx2, TP_TARGET_AVX2)
DQ_STAMP_ALL(avx2, TP_TARGET_AVX2)

static const qz_loops QZ_LOOPS_AVX2[4] = {
    QZ_LOOP_SET(f32, avx2, qz_quant_seg_f32_avx2_fast, qz_quant_cols_f32_avx2_fast, qz_quant_seg_f32_avx2_nt,
                qz_quant_cols_f32_avx2_nt, qz_block32_sym_f32_avx2, qz_stream_copy_avx2),
    QZ_COMPILED_LOOP_SET(f64, avx2, NULL, qz_stream_copy_avx2),
    QZ_LOOP_SET(f16, avx2, qz_quant_seg_f16_avx2_fast, qz_quant_cols_f16_avx2, qz_quant_seg_f16_avx2_nt, NULL, NULL,
                qz_stream_copy_avx2),
    QZ_LOOP_SET(bf16, avx2, qz_quant_seg_bf16_avx2_fast, qz_quant_cols_bf16_avx2_fast, qz_quant_seg_bf16_avx2_nt,
                qz_quant_cols_bf16_avx2_nt, qz_block32_sym_bf16_avx2, qz_stream_copy_avx2),
};
static const dq_loops DQ_LOOPS_AVX2[4] = DQ_LOOP_SETS_X86(avx2, avx2);

static int quantize_int8_avx2(const qz_call *c) { return quantize_int8_run(c, QZ_LOOPS_AVX2); }
static void dequantize_int8_avx2(const dq_call *c) { dequantize_int8_run(c, DQ_LOOPS_AVX2); }

/* ---- AVX-512: compiled loops; the hand-written AVX2 blocks and streaming stores ------------- */

QZ_STAMP_LOOPS(f32, avx512, TP_TARGET_AVX512)
QZ_STAMP_LOOPS(f64, avx512, TP_TARGET_AVX512)
QZ_STAMP_LOOPS(f16, avx512, TP_TARGET_AVX512)
QZ_STAMP_LOOPS(bf16, avx512, TP_TARGET_AVX512)
DQ_STAMP_ALL(avx512, TP_TARGET_AVX512)

static const qz_loops QZ_LOOPS_AVX512[4] = {
    QZ_COMPILED_LOOP_SET(f32, avx512, qz_block32_sym_f32_avx2, qz_stream_copy_avx2),
    QZ_COMPILED_LOOP_SET(f64, avx512, NULL, qz_stream_copy_avx2),
    QZ_COMPILED_LOOP_SET(f16, avx512, NULL, qz_stream_copy_avx2),
    QZ_COMPILED_LOOP_SET(bf16, avx512, qz_block32_sym_bf16_avx2, qz_stream_copy_avx2),
};
static const dq_loops DQ_LOOPS_AVX512[4] = DQ_LOOP_SETS_X86(avx512, avx512);

static int quantize_int8_avx512(const qz_call *c) { return quantize_int8_run(c, QZ_LOOPS_AVX512); }
static void dequantize_int8_avx512(const dq_call *c) { dequantize_int8_run(c, DQ_LOOPS_AVX512); }
#endif

/* ---- the dispatch tables ------------------------------------------------------------------ */

static const quantize_fn QUANTIZE_INT8[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = quantize_int8_ref, [TP_ISA_BASELINE] = quantize_int8_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = quantize_int8_avx2, [TP_ISA_AVX512] = quantize_int8_avx512,)
};

static const dequantize_fn DEQUANTIZE_INT8[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = dequantize_int8_ref, [TP_ISA_BASELINE] = dequantize_int8_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = dequantize_int8_avx2, [TP_ISA_AVX512] = dequantize_int8_avx512,)
};

quantize_fn quantize_int8_variant(int isa) { return TP_PICK(QUANTIZE_INT8, isa); }

dequantize_fn dequantize_int8_variant(int isa) { return TP_PICK(DEQUANTIZE_INT8, isa); }
