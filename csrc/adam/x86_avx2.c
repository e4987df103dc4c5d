/*
 * x86_avx2.c: the float32 Adam kernel hand-written for AVX2 + FMA (the AVX2 slot of the
 * float32 table), for CPUs whose vector divider bounds the loop.
 */
#include "adam_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

/* Elements ahead that the AVX2 loop prefetches its four input streams, one line each per 16
 * elements: with four streams read and three written per thread, the hardware prefetcher alone
 * left DRAM-sized steps a few percent short (16M: 0.96-0.97x torch without, 1.00-1.03x with,
 * side by side; 1024 ahead did worse). */
#define ADAM_PREFETCH_AHEAD 256

/* The float32 body, hand-written for AVX2 + FMA, for CPUs whose vector divider bounds the loop
 * (one sqrt and two divisions per element). It divides by the bias correction without the
 * divider (Markstein): q0 = root * y is within an ulp of the quotient, the residual
 * e = q0*c - root is exact, and with y = RN(1/c), q0 - e*y rounds to the IEEE quotient. So the
 * bits are adam_body_f32's (the tests hold every variant to the scalar reference, and check
 * the division itself on every significand); only the divider's load drops by a third.
 * Written so that a zero root keeps its sign; an Inf root makes e NaN, which is zeroed so q0
 * (= Inf) passes; a NaN root stays NaN through q0. GCC does not vectorize this from C: the
 * FMA builtins stay calls in the generic body, and a loop with calls and branches is not
 * if-converted. Whole vectors only; the caller runs the tail through the generic body. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE void adam_f32_avx2_fma_body(
    const adam_consts_f32 *c, float *TP_RESTRICT p, const float *TP_RESTRICT gr,
    float *TP_RESTRICT m, float *TP_RESTRICT v, float *TP_RESTRICT vmax, int64_t n,
    const int scaled, const int negate, const int decoupled, const int l2, const int lerp_low) {
    const __m256 grad_scale = _mm256_set1_ps(c->grad_scale), sign = _mm256_set1_ps(c->sign);
    const __m256 decay = _mm256_set1_ps(c->decay), wd = _mm256_set1_ps(c->weight_decay);
    const __m256 lw = _mm256_set1_ps(c->lerp_weight), lwc = _mm256_set1_ps(c->lerp_weight_c);
    const __m256 beta2 = _mm256_set1_ps(c->beta2), omb2 = _mm256_set1_ps(c->one_minus_beta2);
    const __m256 bc = _mm256_set1_ps(c->bias_correction2_sqrt);
    const __m256 y = _mm256_set1_ps(c->inv_bias_correction2_sqrt);
    const __m256 eps = _mm256_set1_ps(c->eps), nss = _mm256_set1_ps(c->neg_step_size);
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        if (((i + ADAM_PREFETCH_AHEAD) & 15) == 0 && i + ADAM_PREFETCH_AHEAD < n) {
            _mm_prefetch((const char *)(gr + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(p + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(m + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
        }
        __m256 g = _mm256_loadu_ps(gr + i);
        if (scaled) g = _mm256_div_ps(g, grad_scale);
        if (negate) g = _mm256_mul_ps(g, sign);
        __m256 pi = _mm256_loadu_ps(p + i);
        if (decoupled) pi = _mm256_mul_ps(pi, decay);
        if (l2) g = _mm256_add_ps(g, _mm256_mul_ps(wd, pi));
        __m256 mi = _mm256_loadu_ps(m + i);
        mi = lerp_low ? _mm256_add_ps(mi, _mm256_mul_ps(lw, _mm256_sub_ps(g, mi)))
                         : _mm256_sub_ps(g, _mm256_mul_ps(_mm256_sub_ps(g, mi), lwc));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), beta2),
                                  _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        if (vmax) { /* torch.maximum: NaN wins from either side */
            __m256 mx = _mm256_loadu_ps(vmax + i);
            __m256 take = _mm256_or_ps(_mm256_cmp_ps(mx, vi, _CMP_LT_OQ), _mm256_cmp_ps(vi, vi, _CMP_UNORD_Q));
            vi = _mm256_blendv_ps(mx, vi, take);
            _mm256_storeu_ps(vmax + i, vi);
        }
        __m256 root = _mm256_sqrt_ps(vi);
        __m256 q0 = _mm256_mul_ps(root, y);
        __m256 e = _mm256_fmsub_ps(q0, bc, root);
        e = _mm256_and_ps(e, _mm256_cmp_ps(e, e, _CMP_ORD_Q));
        __m256 denom = _mm256_add_ps(_mm256_fnmadd_ps(e, y, q0), eps);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(nss, mi), denom)));
    }
}

/* The common options get a body of their own, with no test of an option inside the loop.
 * Read per iteration from the constants, the options cost eight branches per 8 elements, and
 * on a CPU that splits 256-bit operations in two the loop is bound by issue as much as by the
 * divider (4096 elements in L1: 17.5 -> 15.6 TSC cycles per 8; 1M elements, 2 threads:
 * 1.60e9 -> 1.69e9 elements/s). Any other mix of options runs the same body with the options
 * as run-time values. */
TP_TARGET_AVX2 static void adam_f32_avx2_fma(const adam_consts_f32 *c, float *TP_RESTRICT p,
                                             const float *TP_RESTRICT gr, float *TP_RESTRICT m,
                                             float *TP_RESTRICT v, float *TP_RESTRICT vmax,
                                             int64_t n) {
    const int negate = c->sign != 1.0f;
    if (!vmax && !c->scaled && !negate && c->lerp_low) {
        if (c->decoupled) /* AdamW */
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 1, 0, 1);
        else if (c->l2) /* Adam with weight decay */
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 0, 1, 1);
        else
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 0, 0, 1);
        return;
    }
    adam_f32_avx2_fma_body(c, p, gr, m, v, vmax, n, c->scaled, negate, c->decoupled, c->l2,
                           c->lerp_low);
}

/* The AVX2 slot: whole vectors through the hand-written loop when its division applies, the
 * tail (or everything, when it does not) through the compiled body. */
TP_TARGET_AVX2 void adam_f32_avx2(const adam_consts_f32 *c, float *TP_RESTRICT p,
                                  const float *TP_RESTRICT g, float *TP_RESTRICT m,
                                  float *TP_RESTRICT v, float *TP_RESTRICT vmax, int64_t n) {
    if (c->fma_div_ok) {
        int64_t body = n & ~(int64_t)7;
        adam_f32_avx2_fma(c, p, g, m, v, vmax, body);
        p += body, g += body, m += body, v += body, n -= body;
        if (vmax) vmax += body;
    }
    adam_f32_avx2_compiled(c, p, g, m, v, vmax, n);
}
#endif
