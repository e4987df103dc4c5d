/*
 * variants.c: the passes that vectorize (mark_body_tmpl.h, row_body_tmpl.h, nm_body_tmpl.h),
 * compiled once per element type and ISA (variant_tmpl.h), and their tables: the baseline
 * build (the compiler's default target), and on x86 AVX2 and AVX-512 builds, which also take
 * the hand-written kernels of x86_avx2.c and x86_avx2_split.c. The histogram passes are scalar
 * by nature and have one version (histogram.c).
 */
#include "topk_internal.h"

#define TOPK_DTYPE TP_FLOAT16
#include "mark_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT16
#include "row_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT16
#include "nm_body_tmpl.h"

#define TOPK_DTYPE TP_BFLOAT16
#include "mark_body_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "row_body_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "nm_body_tmpl.h"

#define TOPK_DTYPE TP_FLOAT32
#include "mark_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "row_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "nm_body_tmpl.h"

#define TOPK_DTYPE TP_FLOAT64
#include "mark_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "row_body_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "nm_body_tmpl.h"

/* ---- baseline: the compiler's default target, no hand-written kernel -------------------- */

#define TOPK_DTYPE TP_FLOAT16
#define ISA baseline
#define ISA_ATTRS
#define RANGE_FAST NULL
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_BFLOAT16
#define ISA baseline
#define ISA_ATTRS
#define RANGE_FAST NULL
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT32
#define ISA baseline
#define ISA_ATTRS
#define RANGE_FAST NULL
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT64
#define ISA baseline
#define ISA_ATTRS
#define RANGE_FAST NULL
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

const topk_passes TOPK_PASSES_BASELINE = {&passes_f16_baseline, &passes_bf16_baseline,
                                          &passes_f32_baseline, &passes_f64_baseline,
                                          TOPK_SAMPLE_MIN};

#if TP_HAVE_X86_VARIANTS
/* ---- AVX2 and AVX-512: the bodies compiled for each, with the hand-written AVX2 kernels ---- */

#define TOPK_DTYPE TP_FLOAT16
#define ISA avx2
#define ISA_ATTRS TP_TARGET_AVX2
#define RANGE_FAST range_f16_avx2
#define NM4_FAST nm4_f16_avx2
#define ROW_SPLIT row_split_f16_avx2
#include "variant_tmpl.h"

/* the float16 range pass reads bfloat16 as well: it compares keys, Inf is not its concern */
#define TOPK_DTYPE TP_BFLOAT16
#define ISA avx2
#define ISA_ATTRS TP_TARGET_AVX2
#define RANGE_FAST range_f16_avx2
#define NM4_FAST nm4_bf16_avx2
#define ROW_SPLIT row_split_bf16_avx2
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT32
#define ISA avx2
#define ISA_ATTRS TP_TARGET_AVX2
#define RANGE_FAST range_f32_avx2
#define NM4_FAST nm4_f32_avx2
#define ROW_SPLIT row_split_f32_avx2
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT64
#define ISA avx2
#define ISA_ATTRS TP_TARGET_AVX2
#define RANGE_FAST range_f64_avx2
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

const topk_passes TOPK_PASSES_AVX2 = {&passes_f16_avx2, &passes_bf16_avx2, &passes_f32_avx2,
                                      &passes_f64_avx2, TOPK_SAMPLE_MIN_VECTOR};

#define TOPK_DTYPE TP_FLOAT16
#define ISA avx512
#define ISA_ATTRS TP_TARGET_AVX512
#define RANGE_FAST range_f16_avx2
#define NM4_FAST nm4_f16_avx2
#define ROW_SPLIT row_split_f16_avx2
#include "variant_tmpl.h"

/* the float16 range pass reads bfloat16 as well: it compares keys, Inf is not its concern */
#define TOPK_DTYPE TP_BFLOAT16
#define ISA avx512
#define ISA_ATTRS TP_TARGET_AVX512
#define RANGE_FAST range_f16_avx2
#define NM4_FAST nm4_bf16_avx2
#define ROW_SPLIT row_split_bf16_avx2
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT32
#define ISA avx512
#define ISA_ATTRS TP_TARGET_AVX512
#define RANGE_FAST range_f32_avx2
#define NM4_FAST nm4_f32_avx2
#define ROW_SPLIT row_split_f32_avx2
#include "variant_tmpl.h"

#define TOPK_DTYPE TP_FLOAT64
#define ISA avx512
#define ISA_ATTRS TP_TARGET_AVX512
#define RANGE_FAST range_f64_avx2
#define NM4_FAST NULL
#define ROW_SPLIT NULL
#include "variant_tmpl.h"

const topk_passes TOPK_PASSES_AVX512 = {&passes_f16_avx512, &passes_bf16_avx512,
                                        &passes_f32_avx512, &passes_f64_avx512,
                                        TOPK_SAMPLE_MIN_VECTOR};
#endif
