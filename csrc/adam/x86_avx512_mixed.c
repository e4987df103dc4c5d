/*
 * x86_avx512_mixed.c: the mixed-precision Adam step hand-written for AVX-512 (F+BW+VL+DQ and
 * F16C; AVX512_BF16 where the CPU has it), the AVX-512 slot of ADAM_MIXED. Same update, same
 * bits as mixed_ref.c, for every combination step.c accepts (a bfloat16, float16 or float32
 * param with the grads and states it may have, written to nearest, from a float32 master or
 * stochastically; every option).
 *
 * Why by hand: GCC's vectorization of mixed_body.h spent most of its time converting. One
 * thread, 32K elements (L2), TSC cycles per element, compiled -> this file, same run:
 * bfloat16 params, grads and states 2.1-2.5 -> 1.1; the offload step (float32 master,
 * bfloat16 grads and param, float32 states) 1.6-1.8 -> 1.1 (0.85 in a C harness); float16
 * params 2.7-3.4 -> 1.0-1.2. What it does instead:
 *  - a bfloat16 stream is widened with one shuffle per 16 elements (vpermw into the high
 *    halves), float16 with F16C's exact vcvtph2ps / vcvtps2ph (which GCC does not make out of
 *    half.h's integer forms: float16 params ran 2.9 cycles per element);
 *  - bfloat16 is written by vcvtne2ps2bf16 where the CPU has it, 32 elements in one
 *    instruction. It rounds to nearest even as tp_f32_to_bf16 does except on NaN (it keeps
 *    the payload) and subnormal input (it flushes to zero), so each pair of vectors is
 *    classified first (vfpclassps) and one holding either takes the integer rounding;
 *  - the integer rounding (tp_f32_to_bf16: add 0x7fff + the lowest kept bit) fixes NaNs only
 *    when the step produced one: any NaN stored (m, v, vmax, the param) makes the new param
 *    NaN (below), so one compare of the new params tells;
 *  - 32 elements per step (one 64-byte line of each 16-bit stream), the tail through masked
 *    loads and stores instead of a scalar epilogue; the usual AdamW options as constants;
 *  - the offload step past the caches streams its half param (only written) with
 *    non-temporal stores: no read of each line before it is written (about 6% at 16M).
 * The two divisions stay on the divider (vsqrtps + vdivps: about 0.7 cycles per element, the
 * floor of this loop); the one by the bias correction is x86_avx2.c's divider-free one.
 */
#include "adam_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

#define AMX_PLAIN 0  /* the param is read and written in its own type */
#define AMX_SR 1     /* ... written rounded stochastically */
#define AMX_MASTER 2 /* the float32 master is read and written; the param only written */

/* 32 elements as float32: elements i..i+15 in lo, i+16..i+31 in hi. */
typedef struct {
    __m512 lo, hi;
} amx_pair;

typedef struct {
    __m512 grad_scale, sign, decay, wd, lw, lwc, beta2, omb2, bc, y, eps, nss;
} amx_consts;

/* ---- loads: every stream read exactly into float32 ---- */

/* vpermw indices putting 16 words (the low or high half of a 32-word vector) into the high
 * halves of 16 32-bit lanes; the even words are zeroed by the mask 0xaaaaaaaa. */
#define AMX_WIDEN(o)                                                                           \
    _mm512_set_epi16(15 + o, 0, 14 + o, 0, 13 + o, 0, 12 + o, 0, 11 + o, 0, 10 + o, 0, 9 + o, 0, \
                     8 + o, 0, 7 + o, 0, 6 + o, 0, 5 + o, 0, 4 + o, 0, 3 + o, 0, 2 + o, 0, 1 + o, \
                     0, o, 0)

TP_TARGET_AVX512 TP_ALWAYS_INLINE __m256i amx_load_half16(const uint16_t *src, const int tail,
                                                          __mmask16 k) {
    return tail ? _mm256_maskz_loadu_epi16(k, src) : _mm256_loadu_si256((const __m256i *)src);
}

/* Elements i..i+31 of a stream of `type` (tail: only the lanes of k; the others read 0). */
TP_TARGET_AVX512 TP_ALWAYS_INLINE amx_pair amx_load32(const void *base, int64_t i, const int type,
                                                      const int tail, __mmask32 k) {
    amx_pair x;
    if (type == TP_FLOAT32) {
        const float *f = (const float *)base + i;
        x.lo = tail ? _mm512_maskz_loadu_ps((__mmask16)k, f) : _mm512_loadu_ps(f);
        x.hi = tail ? _mm512_maskz_loadu_ps((__mmask16)(k >> 16), f + 16) : _mm512_loadu_ps(f + 16);
    } else if (type == TP_FLOAT16) { /* exact, as tp_f16_to_f32 */
        const uint16_t *h = (const uint16_t *)base + i;
        x.lo = _mm512_cvtph_ps(amx_load_half16(h, tail, (__mmask16)k));
        x.hi = _mm512_cvtph_ps(amx_load_half16(h + 16, tail, (__mmask16)(k >> 16)));
    } else { /* bfloat16 is the high half of a float32 */
        const uint16_t *h = (const uint16_t *)base + i;
        __m512i w = tail ? _mm512_maskz_loadu_epi16(k, h) : _mm512_loadu_si512(h);
        x.lo = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xaaaaaaaau, AMX_WIDEN(0), w));
        x.hi = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xaaaaaaaau, AMX_WIDEN(16), w));
    }
    return x;
}

/* ---- stores ---- */

TP_TARGET_AVX512 TP_ALWAYS_INLINE void amx_store_f32(float *dst, amx_pair x, const int tail,
                                                     __mmask32 k) {
    if (tail) {
        _mm512_mask_storeu_ps(dst, (__mmask16)k, x.lo);
        _mm512_mask_storeu_ps(dst + 16, (__mmask16)(k >> 16), x.hi);
    } else {
        _mm512_storeu_ps(dst, x.lo);
        _mm512_storeu_ps(dst + 16, x.hi);
    }
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE void amx_store_half16(uint16_t *dst, __m256i h, const int tail,
                                                        __mmask16 k) {
    if (tail)
        _mm256_mask_storeu_epi16(dst, k, h);
    else
        _mm256_storeu_si256((__m256i *)dst, h);
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE void amx_store_words32(uint16_t *dst, __m512i w, const int tail,
                                                         __mmask32 k) {
    if (tail)
        _mm512_mask_storeu_epi16(dst, k, w);
    else
        _mm512_storeu_si512(dst, w);
}

/* float32 -> IEEE half to nearest even: F16C's vcvtps2ph gives tp_f32_to_f16's bits
 * (subnormals rounded, NaNs quieted with their top payload bits). */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m256i amx_to_f16(__m512 x) {
    return _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE void amx_store_f16(uint16_t *dst, amx_pair x, const int tail,
                                                     __mmask32 k) {
    amx_store_half16(dst, amx_to_f16(x.lo), tail, (__mmask16)k);
    amx_store_half16(dst + 16, amx_to_f16(x.hi), tail, (__mmask16)(k >> 16));
}

/* NaN lanes of x replaced by their sign | 0x7fc00000 (one masked ternlog: (x & sign) | quiet):
 * both roundings below then give the quiet NaN 0x7fc0 with its sign (tp_f32_to_bf16's),
 * since neither carries out of the low half of 0x7fc00000. */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_quiet_nans(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_ternarylogic_epi32(_mm512_castps_si512(x), nan,
                                          _mm512_set1_epi32((int)0x80000000u),
                                          _mm512_set1_epi32(0x7fc00000), 0xea);
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_bits(__m512 x, const int nans) {
    return nans ? amx_quiet_nans(x) : _mm512_castps_si512(x);
}

/* The high halves of the 32-bit lanes of lo, then hi, as 32 consecutive words (vpermt2w). */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_high_halves(__m512i lo, __m512i hi) {
    const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37,
                                         35, 33, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7,
                                         5, 3, 1);
    return _mm512_permutex2var_epi16(lo, odd, hi);
}

/* tp_f32_to_bf16 on 32 elements in integer operations: add 0x7fff + the lowest kept bit, keep
 * the high half. nans: some lane may be NaN (else the NaN fix is skipped). */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_bf16_round(__m512i b) {
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    return _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb);
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_to_bf16_rne(amx_pair x, const int nans) {
    return amx_high_halves(amx_bf16_round(amx_bits(x.lo, nans)), amx_bf16_round(amx_bits(x.hi, nans)));
}

/* ---- stochastic rounding: half.h's formulas, 16 lanes at a time ---- */

TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_hash32(__m512i x) {
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x21f0aaad));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x735a2d97));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
}

/* tp_sr_bits of the 16 elements whose low index bits are lo + 0..15. */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_sr_bits(uint64_t key, uint32_t lo) {
    __m512i counter = _mm512_add_epi32(_mm512_set1_epi32((int)lo),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                         12, 13, 14, 15));
    __m512i x = amx_hash32(_mm512_xor_si512(counter, _mm512_set1_epi32((int)(uint32_t)key)));
    return amx_hash32(_mm512_add_epi32(x, _mm512_set1_epi32((int)(uint32_t)(key >> 32))));
}

/* tp_f32_to_bf16_sr on 32 elements: add the top 16 random bits, keep the high half. */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m512i amx_to_bf16_sr(amx_pair x, uint64_t key, uint32_t lo,
                                                         const int nans) {
    __m512i a = _mm512_add_epi32(amx_bits(x.lo, nans), _mm512_srli_epi32(amx_sr_bits(key, lo), 16));
    __m512i b = _mm512_add_epi32(amx_bits(x.hi, nans), _mm512_srli_epi32(amx_sr_bits(key, lo + 16), 16));
    return amx_high_halves(a, b);
}

/* tp_f32_to_f16_sr on 16 elements, path for path (half.h says why each is right). */
TP_TARGET_AVX512 TP_ALWAYS_INLINE __m256i amx_to_f16_sr(__m512 x, __m512i r) {
    const __m512i b = _mm512_castps_si512(x);
    const __m512i a = _mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff));
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(0x8000));
    /* |x| >= 2^-14: carry 13 random bits into the kept ones; 65536 and beyond is Inf */
    __m512i carried = _mm512_add_epi32(a, _mm512_srli_epi32(r, 19));
    __m512i h = _mm512_sub_epi32(_mm512_srli_epi32(carried, 13), _mm512_set1_epi32((127 - 15) << 10));
    h = _mm512_mask_mov_epi32(h, _mm512_cmpge_epu32_mask(carried, _mm512_set1_epi32(0x47800000)),
                              _mm512_set1_epi32(0x7c00));
    /* |x| < 2^-14: the integer and fraction parts of |x| * 2^24 (both exact) */
    __mmask16 small = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x38800000));
    __m512 y = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_maskz_mov_epi32(small, a)),
                             _mm512_set1_ps(0x1p24f));
    __m512i n = _mm512_cvttps_epi32(y);
    __m512 fraction = _mm512_sub_ps(y, _mm512_cvtepi32_ps(n));
    __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(r, 8)), _mm512_set1_ps(0x1p-24f));
    __mmask16 up = _mm512_cmplt_epu32_mask(_mm512_castps_si512(u), _mm512_castps_si512(fraction));
    h = _mm512_mask_mov_epi32(h, small, _mm512_mask_add_epi32(n, up, n, _mm512_set1_epi32(1)));
    /* NaN: as rounded to nearest (quieted, top payload bits) */
    __mmask16 nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
    __m512i quiet = _mm512_and_si512(_mm512_cvtepu16_epi32(amx_to_f16(x)), _mm512_set1_epi32(0x7fff));
    h = _mm512_mask_mov_epi32(h, nan, quiet);
    return _mm512_cvtepi32_epi16(_mm512_or_si512(sign, h));
}

TP_TARGET_AVX512 TP_ALWAYS_INLINE void amx_store_f16_sr(uint16_t *dst, amx_pair x, uint64_t key,
                                                        uint32_t lo, const int tail, __mmask32 k) {
    amx_store_half16(dst, amx_to_f16_sr(x.lo, amx_sr_bits(key, lo)), tail, (__mmask16)k);
    amx_store_half16(dst + 16, amx_to_f16_sr(x.hi, amx_sr_bits(key, lo + 16)), tail,
                     (__mmask16)(k >> 16));
}

/* ---- the update of 16 lanes, in mixed_ref.c's order ---- */

typedef struct {
    __m512 m, v, vmax, p; /* what is stored; vmax only with amsgrad */
} amx_new;

/* The options are constants in the AdamW loop and run-time values in the other, where each
 * costs a predictable branch per 16 elements. */
TP_TARGET_AVX512 TP_ALWAYS_INLINE amx_new amx_update(const amx_consts *k, __m512 g, __m512 p,
                                                     __m512 m, __m512 v, __m512 vmax,
                                                     int amsgrad, int scaled, int negate,
                                                     int decoupled, int l2, int lerp_low) {
    amx_new r;
    if (scaled) g = _mm512_div_ps(g, k->grad_scale);
    if (negate) g = _mm512_mul_ps(g, k->sign);
    if (decoupled) p = _mm512_mul_ps(p, k->decay);
    if (l2) g = _mm512_add_ps(g, _mm512_mul_ps(k->wd, p));
    r.m = lerp_low ? _mm512_add_ps(m, _mm512_mul_ps(k->lw, _mm512_sub_ps(g, m)))
                   : _mm512_sub_ps(g, _mm512_mul_ps(_mm512_sub_ps(g, m), k->lwc));
    r.v = _mm512_add_ps(_mm512_mul_ps(v, k->beta2), _mm512_mul_ps(_mm512_mul_ps(k->omb2, g), g));
    __m512 second = r.v;
    r.vmax = vmax;
    if (amsgrad) { /* torch.maximum: a NaN wins from either side */
        __mmask16 take = _mm512_cmp_ps_mask(vmax, r.v, _CMP_LT_OQ) | _mm512_cmp_ps_mask(r.v, r.v, _CMP_UNORD_Q);
        r.vmax = second = _mm512_mask_mov_ps(vmax, take, r.v);
    }
    /* root / bias_correction2_sqrt without the divider (x86_avx2.c: exact for y = RN(1/bc));
     * where the residual is NaN (an Inf or NaN root) q0 is already the quotient, so the
     * correction is masked off (mixed_body.h zeroes the residual: the same bits). */
    __m512 root = _mm512_sqrt_ps(second);
    __m512 q0 = _mm512_mul_ps(root, k->y);
    __m512 e = _mm512_fmsub_ps(q0, k->bc, root);
    __m512 quotient = _mm512_mask3_fnmadd_ps(e, k->y, q0, _mm512_cmp_ps_mask(e, e, _CMP_ORD_Q));
    __m512 denom = _mm512_add_ps(quotient, k->eps);
    r.p = _mm512_add_ps(p, _mm512_div_ps(_mm512_mul_ps(k->nss, r.m), denom));
    return r;
}

/* The body once per target: without AVX512_BF16, and with it (vcvtne2ps2bf16). */
#define AMX_BF16 0
#define AMX_TARGET TP_TARGET_AVX512
#define AMX_SUF base
#include "x86_avx512_mixed_tmpl.h"

#define AMX_BF16 1
#define AMX_TARGET TP_TARGET_AVX512_BF16
#define AMX_SUF bf16
#include "x86_avx512_mixed_tmpl.h"

/* The AVX-512 slot of ADAM_MIXED. step.c sends calls whose bias correction is outside the
 * range of the divider-free division (never met) to the baseline variant. */
void adam_mixed_avx512(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n) {
    if (tp_cpu_has_avx512_bf16())
        adam_mixed_avx512_bf16(c, s, n);
    else
        adam_mixed_avx512_base(c, s, n);
}
#endif
