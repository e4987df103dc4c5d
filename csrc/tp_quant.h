/* tp_quant.h: the quant kernel family's public declarations (the kernels: csrc/quant/). */
#ifndef TP_QUANT_H
#define TP_QUANT_H

/* cdef: begin */
/* Every entry takes the kernel variant one way: tp_<kernel>_isa(..., isa) runs TP_ISA_* `isa`
 * (TP_ISA_SCALAR: the plain scalar reference; TP_ERR_UNSUPPORTED where this CPU or build lacks
 * it), and tp_<kernel>(...) runs tp_isa_current(). */
/* Modes of tp_quantize_int8. */
#define TP_QUANT_SYMMETRIC 0 /* scale = absmax/127 per group, q in [-127, 127], no zero point */
#define TP_QUANT_AFFINE 1    /* [min, max] widened to 0, scale = range/255, int8 zero point */
#define TP_QUANT_GIVEN 2     /* scale (and zero_point, NULL = 0) given; q in [-128, 127] */

/* Layout of x (and q), one of:
 *   block == 0: x is [outer][channels][inner]; one scale per channel (`channels` scales).
 *               Per tensor is channels == 1.
 *   block > 0:  x is [outer][inner] rows cut into blocks of `block` elements along the row, the
 *               last block of a row may be short; channels must be ceil(inner / block) and there
 *               are outer * channels scales, row-major.
 *
 * x is float32, float64, or the uint16 bits of IEEE half (TP_FLOAT16) or bfloat16 (TP_BFLOAT16).
 * q = clamp(round_half_even(x * (1.0f / scale)) + zero_point), computed in float32 (x is rounded
 * to float32 first; exactly for the 16-bit types), the clamp in float before the conversion.
 *
 * scale / zero_point are written (SYMMETRIC: zero_point unused, may be NULL; AFFINE) or read
 * (GIVEN). `workspace` holds tp_quantize_int8_workspace(...) int32 words (0 per tensor and per
 * block, then it may be NULL); with fewer words for `threads` buffers, fewer threads run.
 * Returns TP_ERR_NONFINITE with *bad set to the first channel (block) holding a NaN or Inf
 * (also: a float64 beyond float32 range); *bad is -1 otherwise. */
/* int32 words of workspace tp_quantize_int8 needs to run with up to `threads` threads. */
int64_t tp_quantize_int8_workspace(int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                                   int64_t block, int32_t mode, int32_t threads);
int tp_quantize_int8(const void *x, int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                     int64_t block, int32_t mode, float *scale, int8_t *zero_point, int8_t *q,
                     int32_t *workspace, int64_t workspace_len, int64_t *bad);
int tp_quantize_int8_isa(const void *x, int32_t dtype, int64_t outer, int64_t channels,
                         int64_t inner, int64_t block, int32_t mode, float *scale,
                         int8_t *zero_point, int8_t *q, int32_t *workspace,
                         int64_t workspace_len, int64_t *bad, int isa);

/* out = float32(q - zero_point) * scale, same layout rules; zero_point NULL means 0. out_dtype
 * TP_FLOAT32 stores it as is; TP_BFLOAT16 / TP_FLOAT16 round it to nearest even into their
 * uint16 bits (IEEE half overflows to Inf; NaN stays NaN). */
int tp_dequantize_int8(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                       int64_t block, const float *scale, const int8_t *zero_point, void *out,
                       int32_t out_dtype);
int tp_dequantize_int8_isa(const int8_t *q, int64_t outer, int64_t channels, int64_t inner,
                           int64_t block, const float *scale, const int8_t *zero_point,
                           void *out, int32_t out_dtype, int isa);
/* cdef: end */

#endif /* TP_QUANT_H */
