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
