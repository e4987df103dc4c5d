/* adam_internal.h: what the files of the Adam family share (never seen by cffi). */
#ifndef TP_ADAM_INTERNAL_H
#define TP_ADAM_INTERNAL_H

#include <math.h>
#include "common.h"
#include "half.h"

#define ADAM_TEMPLATE "consts_tmpl.h"
#include "for_each_type.h"

/* The scalar references (ref.c): the documented update, one element at a time. */
void adam_ref_f32(const adam_consts_f32 *c, float *TP_RESTRICT p, const float *TP_RESTRICT g,
                  float *TP_RESTRICT m, float *TP_RESTRICT v, float *TP_RESTRICT vmax, int64_t n);
void adam_ref_f64(const adam_consts_f64 *c, double *TP_RESTRICT p, const double *TP_RESTRICT g,
                  double *TP_RESTRICT m, double *TP_RESTRICT v, double *TP_RESTRICT vmax,
                  int64_t n);

/* The dispatch tables (variants.c), indexed by TP_ISA_*; pick with TP_PICK. */
extern const adam_kernel_f32 ADAM_F32[TP_ISA_COUNT];
extern const adam_kernel_f64 ADAM_F64[TP_ISA_COUNT];

/* 1 if any g[i] / scale is NaN or Inf (variants.c). */
int adam_any_nonfinite_f32(const float *g, int64_t n, float scale);
int adam_any_nonfinite_f64(const double *g, int64_t n, double scale);

/* ---- mixed precision: every tensor that is not all-float32 or all-float64 ---------------
 * One slice of one tensor for the mixed kernels, its pointers already advanced to element
 * `first` of the tensor (the stochastic-rounding counter). Arithmetic is float32. */
typedef struct {
    void *p;
    const void *g;
    void *m, *v, *vmax; /* vmax NULL unless amsgrad */
    float *master;      /* NULL, or the float32 master of a half param */
    int32_t ptype, gtype, stype;
    int stochastic; /* round a half param stochastically (no master) */
    uint64_t key;   /* tp_sr_key of the 2^32-element span holding the slice */
    uint32_t first; /* low 32 bits of the slice's first element index */
    int stream_param; /* the half param is only written (a master) and the call is larger than
                         the caches: a kernel may write it with non-temporal stores */
} adam_mixed_slice;

typedef void (*adam_kernel_mixed)(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n);

/* The scalar reference (mixed_ref.c) and the dispatch table (variants.c). */
void adam_mixed_ref(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n);
extern const adam_kernel_mixed ADAM_MIXED[TP_ISA_COUNT];

/* 1 if any g[i] (bfloat16 or float16 bits, `type`) / scale, in float32, is NaN or at least
 * `limit` in magnitude (the smallest float that rounds to Inf in the grad's type). */
int adam_any_nonfinite_half(const uint16_t *g, int64_t n, float scale, int32_t type);

#if TP_HAVE_X86_VARIANTS
/* The compiled AVX2 body, and the hand-written float32 one (x86_avx2.c) that runs whole
 * vectors before it. */
void adam_f32_avx2_compiled(const adam_consts_f32 *c, float *TP_RESTRICT p,
                            const float *TP_RESTRICT g, float *TP_RESTRICT m,
                            float *TP_RESTRICT v, float *TP_RESTRICT vmax, int64_t n);
void adam_f32_avx2(const adam_consts_f32 *c, float *TP_RESTRICT p, const float *TP_RESTRICT g,
                   float *TP_RESTRICT m, float *TP_RESTRICT v, float *TP_RESTRICT vmax,
                   int64_t n);

/* The mixed-precision step hand-written for AVX2 (x86_avx2_mixed.c: whole groups of 16,
 * the tail through the compiled body) and for AVX-512 (x86_avx512_mixed.c). */
void adam_mixed_avx2_compiled(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n);
void adam_mixed_avx2(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n);
void adam_mixed_avx512(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n);
#endif

#endif /* TP_ADAM_INTERNAL_H */
