/*
 * variants.c: the Adam kernel compiled once per ISA around the one body (body_tmpl.h), and the
 * dispatch tables. Each wrapper is a named function a debugger can stop in.
 */
#include "adam_internal.h"

#define ADAM_TEMPLATE "body_tmpl.h"
#include "for_each_type.h"

/* adam_SUF_NAME: the body compiled with ATTRS (a target attribute, or none for baseline). */
#define ADAM_WRAPPER(ATTRS, T, SUF, NAME)                                                     \
    ATTRS void adam_##SUF##_##NAME(const adam_consts_##SUF *c, T *TP_RESTRICT p,              \
                                   const T *TP_RESTRICT g, T *TP_RESTRICT m,                  \
                                   T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n) {        \
        adam_body_##SUF(c, p, g, m, v, vmax, n);                                              \
    }

ADAM_WRAPPER(static, float, f32, baseline)
ADAM_WRAPPER(static, double, f64, baseline)
#if TP_HAVE_X86_VARIANTS
ADAM_WRAPPER(TP_TARGET_AVX2, float, f32, avx2_compiled) /* the tail of adam_f32_avx2 */
ADAM_WRAPPER(TP_TARGET_AVX512 static, float, f32, avx512)
ADAM_WRAPPER(TP_TARGET_AVX2 static, double, f64, avx2)
ADAM_WRAPPER(TP_TARGET_AVX512 static, double, f64, avx512)
#endif

const adam_kernel_f32 ADAM_F32[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = adam_ref_f32,
    [TP_ISA_BASELINE] = adam_f32_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = adam_f32_avx2, [TP_ISA_AVX512] = adam_f32_avx512,)
};

const adam_kernel_f64 ADAM_F64[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = adam_ref_f64,
    [TP_ISA_BASELINE] = adam_f64_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = adam_f64_avx2, [TP_ISA_AVX512] = adam_f64_avx512,)
};

/* ---- mixed precision (mixed_body.h) ---------------------------------------------------- */
#include "mixed_body.h"

/* adam_mixed_NAME: the body compiled with TARGET (a target attribute, or none), one function
 * per param type (see mixed_body.h for why not one); FMA: the target has fused multiply-add;
 * LINKAGE: static, or empty for the one a hand-written variant calls for its tail. */
#define ADAM_MIXED_WRAPPER(TARGET, NAME, FMA, LINKAGE)                                        \
    TARGET TP_NOINLINE static void adam_mixed_bf16_##NAME(const adam_consts_f32 *c,           \
                                                          const adam_mixed_slice *s,          \
                                                          int64_t n) {                        \
        adam_mixed_half(c, s, n, TP_BFLOAT16, FMA);                                            \
    }                                                                                         \
    TARGET TP_NOINLINE static void adam_mixed_f16_##NAME(const adam_consts_f32 *c,            \
                                                         const adam_mixed_slice *s,           \
                                                         int64_t n) {                         \
        adam_mixed_half(c, s, n, TP_FLOAT16, FMA);                                             \
    }                                                                                         \
    TARGET TP_NOINLINE static void adam_mixed_f32_##NAME(const adam_consts_f32 *c,            \
                                                         const adam_mixed_slice *s,           \
                                                         int64_t n) {                         \
        adam_mixed_single(c, s, n, FMA);                                                      \
    }                                                                                         \
    LINKAGE void adam_mixed_##NAME(const adam_consts_f32 *c, const adam_mixed_slice *s,        \
                                  int64_t n) {                                                \
        if (s->ptype == TP_BFLOAT16)                                                          \
            adam_mixed_bf16_##NAME(c, s, n);                                                  \
        else if (s->ptype == TP_FLOAT16)                                                      \
            adam_mixed_f16_##NAME(c, s, n);                                                   \
        else                                                                                  \
            adam_mixed_f32_##NAME(c, s, n);                                                   \
    }

ADAM_MIXED_WRAPPER(, baseline, 0, static)
#if TP_HAVE_X86_VARIANTS
ADAM_MIXED_WRAPPER(TP_TARGET_AVX2, avx2_compiled, 1, ) /* the tail of x86_avx2_mixed.c */
#endif /* AVX-512: x86_avx512_mixed.c, which needs no tail */

const adam_kernel_mixed ADAM_MIXED[TP_ISA_COUNT] = {
    [TP_ISA_SCALAR] = adam_mixed_ref,
    [TP_ISA_BASELINE] = adam_mixed_baseline,
    TP_X86_ONLY([TP_ISA_AVX2] = adam_mixed_avx2, [TP_ISA_AVX512] = adam_mixed_avx512,)
};

/* The smallest float32 magnitude that rounds to Inf in each half type (halfway between the
 * largest finite value and 2^16 or 2^128; a tie rounds to the even Inf). */
#define ADAM_F16_OVERFLOW 0x477ff000u  /* 65520.0f */
#define ADAM_BF16_OVERFLOW 0x7f7f8000u /* 0x1.ffp127f */

TP_ALWAYS_INLINE int adam_any_nonfinite_half_body(const uint16_t *TP_RESTRICT g, int64_t n,
                                                  float scale, const int type) {
    const uint32_t limit = type == TP_BFLOAT16 ? ADAM_BF16_OVERFLOW : ADAM_F16_OVERFLOW;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = (type == TP_BFLOAT16 ? tp_bf16_to_f32(g[i]) : tp_f16_to_f32(g[i])) / scale;
        bad |= (tp_bits(x) & 0x7fffffffu) >= limit; /* NaN's bits lie above every limit */
    }
    return bad;
}

int adam_any_nonfinite_half(const uint16_t *g, int64_t n, float scale, int32_t type) {
    return type == TP_BFLOAT16 ? adam_any_nonfinite_half_body(g, n, scale, TP_BFLOAT16)
                               : adam_any_nonfinite_half_body(g, n, scale, TP_FLOAT16);
}
