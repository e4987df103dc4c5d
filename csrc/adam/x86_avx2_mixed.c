/*
 * x86_avx2_mixed.c: the mixed-precision Adam step hand-written for AVX2 + FMA + F16C, the
 * AVX2 slot of ADAM_MIXED: whole groups of 16 elements here, the tail through the compiled
 * body (variants.c). Same update, same bits as mixed_ref.c, for every combination.
 *
 * Why by hand: the compiled body converts float16 with half.h's integer forms (GCC does not
 * turn them into F16C's vcvtph2ps / vcvtps2ph, which give the same bits in one instruction):
 * one thread, L2-resident, float16 params with float32 states ran 4.8-4.9 TSC cycles per
 * element, behind the Numba twin (4.3-4.7). The structure is x86_avx512_mixed.c's at 8 lanes:
 * bfloat16 widened by a zero-extend and a shift, narrowed by the integer rounding whose NaN
 * fix runs only when the new params hold a NaN, two halves of 8 packed into 16 words.
 */
#include "adam_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

#define AVM_PLAIN 0  /* the param is read and written in its own type */
#define AVM_SR 1     /* ... written rounded stochastically */
#define AVM_MASTER 2 /* the float32 master is read and written; the param only written */

/* 16 elements as float32: i..i+7 in lo, i+8..i+15 in hi. */
typedef struct {
    __m256 lo, hi;
} avm_pair;

typedef struct {
    __m256 grad_scale, sign, decay, wd, lw, lwc, beta2, omb2, bc, y, eps, nss;
} avm_consts;

TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256 avm_widen_bf16(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Elements i..i+15 of a stream of `type`, read exactly into float32. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE avm_pair avm_load16(const void *base, int64_t i, const int type) {
    avm_pair x;
    if (type == TP_FLOAT32) {
        x.lo = _mm256_loadu_ps((const float *)base + i);
        x.hi = _mm256_loadu_ps((const float *)base + i + 8);
    } else {
        const __m128i *h = (const __m128i *)((const uint16_t *)base + i);
        __m128i a = _mm_loadu_si128(h), b = _mm_loadu_si128(h + 1);
        if (type == TP_FLOAT16) { /* exact, as tp_f16_to_f32 */
            x.lo = _mm256_cvtph_ps(a);
            x.hi = _mm256_cvtph_ps(b);
        } else { /* bfloat16 is the high half of a float32 */
            x.lo = avm_widen_bf16(a);
            x.hi = avm_widen_bf16(b);
        }
    }
    return x;
}

/* NaN lanes replaced by sign | 0x7fc00000, which both roundings below turn into the quiet
 * NaN 0x7fc0 with its sign (tp_f32_to_bf16's), as in x86_avx512_mixed.c. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_bits(__m256 x, const int nans) {
    __m256i b = _mm256_castps_si256(x);
    if (!nans) return b;
    __m256i quiet = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi32((int)0x80000000u)),
                                    _mm256_set1_epi32(0x7fc00000));
    return _mm256_blendv_epi8(b, quiet, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
}

/* The high halves of the 32-bit lanes of lo, then hi, as 16 consecutive words: the pack works
 * per 128-bit half (a0-3 b0-3 a4-7 b4-7) until the 64-bit groups are put in order. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_high_halves(__m256i lo, __m256i hi) {
    __m256i packed = _mm256_packus_epi32(_mm256_srli_epi32(lo, 16), _mm256_srli_epi32(hi, 16));
    return _mm256_permute4x64_epi64(packed, 0xd8);
}

/* tp_f32_to_bf16: add 0x7fff + the lowest kept bit, keep the high half. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_bf16_round(__m256i b) {
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), lsb);
}

/* float32 -> IEEE half to nearest even: F16C gives tp_f32_to_f16's bits. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m128i avm_to_f16(__m256 x) {
    return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_store16(void *base, int64_t i, avm_pair x, const int type,
                                                 const int nans) {
    if (type == TP_FLOAT32) {
        _mm256_storeu_ps((float *)base + i, x.lo);
        _mm256_storeu_ps((float *)base + i + 8, x.hi);
    } else if (type == TP_FLOAT16) {
        __m128i *h = (__m128i *)((uint16_t *)base + i);
        _mm_storeu_si128(h, avm_to_f16(x.lo));
        _mm_storeu_si128(h + 1, avm_to_f16(x.hi));
    } else {
        __m256i w = avm_high_halves(avm_bf16_round(avm_bits(x.lo, nans)),
                                    avm_bf16_round(avm_bits(x.hi, nans)));
        _mm256_storeu_si256((__m256i *)((uint16_t *)base + i), w);
    }
}

/* ---- stochastic rounding: half.h's formulas, 8 lanes at a time ---- */

TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_hash32(__m256i x) {
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x21f0aaad));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x735a2d97));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
}

/* tp_sr_bits of the 8 elements whose low index bits are lo + 0..7. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_sr_bits(uint64_t key, uint32_t lo) {
    __m256i counter = _mm256_add_epi32(_mm256_set1_epi32((int)lo), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i x = avm_hash32(_mm256_xor_si256(counter, _mm256_set1_epi32((int)(uint32_t)key)));
    return avm_hash32(_mm256_add_epi32(x, _mm256_set1_epi32((int)(uint32_t)(key >> 32))));
}

/* Unsigned a < b on 32-bit lanes (AVX2 compares signed): flip the sign bits. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_lt_u32(__m256i a, __m256i b) {
    const __m256i flip = _mm256_set1_epi32((int)0x80000000u);
    return _mm256_cmpgt_epi32(_mm256_xor_si256(b, flip), _mm256_xor_si256(a, flip));
}

/* tp_f32_to_f16_sr on 8 elements, path for path (half.h says why each is right); 32-bit lanes. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i avm_to_f16_sr(__m256 x, __m256i r) {
    const __m256i b = _mm256_castps_si256(x);
    const __m256i a = _mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff));
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x8000));
    /* |x| >= 2^-14: carry 13 random bits into the kept ones; 65536 and beyond is Inf */
    __m256i carried = _mm256_add_epi32(a, _mm256_srli_epi32(r, 19));
    __m256i h = _mm256_sub_epi32(_mm256_srli_epi32(carried, 13), _mm256_set1_epi32((127 - 15) << 10));
    __m256i inf = avm_lt_u32(_mm256_set1_epi32(0x477fffff), carried); /* carried >= 0x47800000 */
    h = _mm256_blendv_epi8(h, _mm256_set1_epi32(0x7c00), inf);
    /* |x| < 2^-14: the integer and fraction parts of |x| * 2^24 (both exact) */
    __m256i small = avm_lt_u32(a, _mm256_set1_epi32(0x38800000));
    __m256 y = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_and_si256(a, small)), _mm256_set1_ps(0x1p24f));
    __m256i n = _mm256_cvttps_epi32(y);
    __m256 fraction = _mm256_sub_ps(y, _mm256_cvtepi32_ps(n));
    __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(r, 8)), _mm256_set1_ps(0x1p-24f));
    __m256i up = avm_lt_u32(_mm256_castps_si256(u), _mm256_castps_si256(fraction));
    __m256i sub = _mm256_sub_epi32(n, up); /* up is 0 or -1 */
    h = _mm256_blendv_epi8(h, sub, small);
    /* NaN: as rounded to nearest (quieted, top payload bits) */
    __m256i nan = avm_lt_u32(_mm256_set1_epi32(0x7f800000), a);
    __m256i quiet = _mm256_and_si256(_mm256_cvtepu16_epi32(avm_to_f16(x)), _mm256_set1_epi32(0x7fff));
    h = _mm256_blendv_epi8(h, quiet, nan);
    return _mm256_or_si256(sign, h);
}

TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_store_sr(uint16_t *dst, avm_pair x, uint64_t key,
                                                  uint32_t lo, const int ptype, const int nans) {
    __m256i a, b;
    if (ptype == TP_BFLOAT16) { /* tp_f32_to_bf16_sr: add the top 16 random bits */
        a = _mm256_add_epi32(avm_bits(x.lo, nans), _mm256_srli_epi32(avm_sr_bits(key, lo), 16));
        b = _mm256_add_epi32(avm_bits(x.hi, nans), _mm256_srli_epi32(avm_sr_bits(key, lo + 8), 16));
        _mm256_storeu_si256((__m256i *)dst, avm_high_halves(a, b));
    } else { /* 16-bit results in 32-bit lanes: pack them (no saturation below 0x10000) */
        a = avm_to_f16_sr(x.lo, avm_sr_bits(key, lo));
        b = avm_to_f16_sr(x.hi, avm_sr_bits(key, lo + 8));
        _mm256_storeu_si256((__m256i *)dst, _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8));
    }
}

/* ---- the update of 8 lanes, in mixed_ref.c's order ---- */

typedef struct {
    __m256 m, v, vmax, p; /* what is stored; vmax only with amsgrad */
} avm_new;

TP_TARGET_AVX2 TP_ALWAYS_INLINE avm_new avm_update(const avm_consts *k, __m256 g, __m256 p,
                                                   __m256 m, __m256 v, __m256 vmax, int amsgrad,
                                                   int scaled, int negate, int decoupled, int l2,
                                                   int lerp_low) {
    avm_new r;
    if (scaled) g = _mm256_div_ps(g, k->grad_scale);
    if (negate) g = _mm256_mul_ps(g, k->sign);
    if (decoupled) p = _mm256_mul_ps(p, k->decay);
    if (l2) g = _mm256_add_ps(g, _mm256_mul_ps(k->wd, p));
    r.m = lerp_low ? _mm256_add_ps(m, _mm256_mul_ps(k->lw, _mm256_sub_ps(g, m)))
                   : _mm256_sub_ps(g, _mm256_mul_ps(_mm256_sub_ps(g, m), k->lwc));
    r.v = _mm256_add_ps(_mm256_mul_ps(v, k->beta2), _mm256_mul_ps(_mm256_mul_ps(k->omb2, g), g));
    __m256 second = r.v;
    r.vmax = vmax;
    if (amsgrad) { /* torch.maximum: a NaN wins from either side */
        __m256 take = _mm256_or_ps(_mm256_cmp_ps(vmax, r.v, _CMP_LT_OQ), _mm256_cmp_ps(r.v, r.v, _CMP_UNORD_Q));
        r.vmax = second = _mm256_blendv_ps(vmax, r.v, take);
    }
    /* root / bias_correction2_sqrt without the divider (x86_avx2.c) */
    __m256 root = _mm256_sqrt_ps(second);
    __m256 q0 = _mm256_mul_ps(root, k->y);
    __m256 e = _mm256_fmsub_ps(q0, k->bc, root);
    e = _mm256_and_ps(e, _mm256_cmp_ps(e, e, _CMP_ORD_Q));
    __m256 denom = _mm256_add_ps(_mm256_fnmadd_ps(e, k->y, q0), k->eps);
    r.p = _mm256_add_ps(p, _mm256_div_ps(_mm256_mul_ps(k->nss, r.m), denom));
    return r;
}

/* Elements i..i+15. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_step16(
    const avm_consts *k, void *TP_RESTRICT p, const void *TP_RESTRICT gr, void *TP_RESTRICT m,
    void *TP_RESTRICT v, void *TP_RESTRICT vmax, float *TP_RESTRICT master, uint64_t key,
    uint32_t first, int64_t i, const int ptype, const int pmode, const int gtype, const int stype,
    int amsgrad, int scaled, int negate, int decoupled, int l2, int lerp_low) {
    avm_pair g = avm_load16(gr, i, gtype);
    avm_pair pi = pmode == AVM_MASTER ? avm_load16(master, i, TP_FLOAT32) : avm_load16(p, i, ptype);
    avm_pair mi = avm_load16(m, i, stype), vi = avm_load16(v, i, stype), mx = vi;
    if (amsgrad) mx = avm_load16(vmax, i, stype);
    __asm__ volatile("" ::: "memory"); /* loads before stores: x86_avx512_mixed_tmpl.h */
    avm_new lo = avm_update(k, g.lo, pi.lo, mi.lo, vi.lo, mx.lo, amsgrad, scaled, negate,
                            decoupled, l2, lerp_low);
    avm_new hi = avm_update(k, g.hi, pi.hi, mi.hi, vi.hi, mx.hi, amsgrad, scaled, negate,
                            decoupled, l2, lerp_low);
    /* any NaN stored makes the new param NaN (x86_avx512_mixed.c) */
    const int nans = _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(lo.p, lo.p, _CMP_UNORD_Q),
                                                     _mm256_cmp_ps(hi.p, hi.p, _CMP_UNORD_Q))) != 0;
    avm_pair out;
    out.lo = lo.m, out.hi = hi.m;
    avm_store16(m, i, out, stype, nans);
    out.lo = lo.v, out.hi = hi.v;
    avm_store16(v, i, out, stype, nans);
    if (amsgrad) {
        out.lo = lo.vmax, out.hi = hi.vmax;
        avm_store16(vmax, i, out, stype, nans);
    }
    out.lo = lo.p, out.hi = hi.p;
    if (pmode == AVM_MASTER) {
        avm_store16(master, i, out, TP_FLOAT32, nans);
        avm_store16(p, i, out, ptype, nans);
    } else if (pmode == AVM_SR) {
        avm_store_sr((uint16_t *)p + i, out, key, first + (uint32_t)i, ptype, nans);
    } else {
        avm_store16(p, i, out, ptype, nans);
    }
}

/* Whole groups of 16 (n a multiple of 16). */
TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_loop(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                              int64_t n, const int ptype, const int pmode,
                                              const int gtype, const int stype, const int adamw) {
    avm_consts k;
    k.grad_scale = _mm256_set1_ps(c->grad_scale);
    k.sign = _mm256_set1_ps(c->sign);
    k.decay = _mm256_set1_ps(c->decay);
    k.wd = _mm256_set1_ps(c->weight_decay);
    k.lw = _mm256_set1_ps(c->lerp_weight);
    k.lwc = _mm256_set1_ps(c->lerp_weight_c);
    k.beta2 = _mm256_set1_ps(c->beta2);
    k.omb2 = _mm256_set1_ps(c->one_minus_beta2);
    k.bc = _mm256_set1_ps(c->bias_correction2_sqrt);
    k.y = _mm256_set1_ps(c->inv_bias_correction2_sqrt);
    k.eps = _mm256_set1_ps(c->eps);
    k.nss = _mm256_set1_ps(c->neg_step_size);
    /* AdamW: decoupled decay, beta1 >= 0.5 (lerp's first formula), not maximizing */
    const int amsgrad = adamw ? 0 : s->vmax != NULL, scaled = adamw ? 0 : c->scaled;
    const int negate = adamw ? 0 : c->sign != 1.0f, decoupled = adamw ? 1 : c->decoupled;
    const int l2 = adamw ? 0 : c->l2, lerp_low = adamw ? 1 : c->lerp_low;
    void *TP_RESTRICT p = s->p;
    const void *TP_RESTRICT g = s->g;
    void *TP_RESTRICT m = s->m, *TP_RESTRICT v = s->v, *TP_RESTRICT vmax = s->vmax;
    float *TP_RESTRICT master = s->master;
    for (int64_t i = 0; i < n; i += 16)
        avm_step16(&k, p, g, m, v, vmax, master, s->key, s->first, i, ptype, pmode, gtype, stype,
                   amsgrad, scaled, negate, decoupled, l2, lerp_low);
}

TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_options(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                                 int64_t n, const int ptype, const int pmode,
                                                 const int gtype, const int stype) {
    if (!s->vmax && !c->scaled && c->decoupled && c->lerp_low && c->sign == 1.0f)
        avm_loop(c, s, n, ptype, pmode, gtype, stype, 1);
    else
        avm_loop(c, s, n, ptype, pmode, gtype, stype, 0);
}

TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_states(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                                int64_t n, const int ptype, const int pmode,
                                                const int gtype) {
    if (s->stype == TP_BFLOAT16)
        avm_options(c, s, n, ptype, pmode, gtype, TP_BFLOAT16);
    else
        avm_options(c, s, n, ptype, pmode, gtype, TP_FLOAT32);
}

TP_TARGET_AVX2 TP_ALWAYS_INLINE void avm_half(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                              int64_t n, const int ptype) {
    const int pmode = s->master ? AVM_MASTER : s->stochastic ? AVM_SR : AVM_PLAIN;
    const int own = s->gtype == ptype;
    if (pmode == AVM_MASTER && own)
        avm_states(c, s, n, ptype, AVM_MASTER, ptype);
    else if (pmode == AVM_MASTER)
        avm_states(c, s, n, ptype, AVM_MASTER, TP_FLOAT32);
    else if (pmode == AVM_SR && own)
        avm_states(c, s, n, ptype, AVM_SR, ptype);
    else if (pmode == AVM_SR)
        avm_states(c, s, n, ptype, AVM_SR, TP_FLOAT32);
    else if (own)
        avm_states(c, s, n, ptype, AVM_PLAIN, ptype);
    else
        avm_states(c, s, n, ptype, AVM_PLAIN, TP_FLOAT32);
}

/* One function per param type, as variants.c does for the compiled body. */
TP_TARGET_AVX2 TP_NOINLINE static void adam_mixed_avx2_bf16p(const adam_consts_f32 *c,
                                                             const adam_mixed_slice *s, int64_t n) {
    avm_half(c, s, n, TP_BFLOAT16);
}

TP_TARGET_AVX2 TP_NOINLINE static void adam_mixed_avx2_f16p(const adam_consts_f32 *c,
                                                            const adam_mixed_slice *s, int64_t n) {
    avm_half(c, s, n, TP_FLOAT16);
}

TP_TARGET_AVX2 TP_NOINLINE static void adam_mixed_avx2_f32p(const adam_consts_f32 *c,
                                                            const adam_mixed_slice *s, int64_t n) {
    if (s->gtype == TP_BFLOAT16)
        avm_states(c, s, n, TP_FLOAT32, AVM_PLAIN, TP_BFLOAT16);
    else if (s->gtype == TP_FLOAT16)
        avm_states(c, s, n, TP_FLOAT32, AVM_PLAIN, TP_FLOAT16);
    else /* float32 grads, so bfloat16 states */
        avm_options(c, s, n, TP_FLOAT32, AVM_PLAIN, TP_FLOAT32, TP_BFLOAT16);
}

/* The AVX2 slot of ADAM_MIXED: whole groups of 16 here, the rest through the compiled body
 * with its pointers and counter advanced. */
void adam_mixed_avx2(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n) {
    int64_t body = n & ~(int64_t)15;
    if (body > 0) {
        if (s->ptype == TP_BFLOAT16)
            adam_mixed_avx2_bf16p(c, s, body);
        else if (s->ptype == TP_FLOAT16)
            adam_mixed_avx2_f16p(c, s, body);
        else
            adam_mixed_avx2_f32p(c, s, body);
    }
    if (body == n) return;
    const int64_t psize = s->ptype == TP_FLOAT32 ? 4 : 2, gsize = s->gtype == TP_FLOAT32 ? 4 : 2;
    const int64_t ssize = s->stype == TP_FLOAT32 ? 4 : 2;
    adam_mixed_slice rest = *s;
    rest.p = (char *)s->p + body * psize;
    rest.g = (const char *)s->g + body * gsize;
    rest.m = (char *)s->m + body * ssize;
    rest.v = (char *)s->v + body * ssize;
    rest.vmax = s->vmax ? (char *)s->vmax + body * ssize : NULL;
    rest.master = s->master ? s->master + body : NULL;
    rest.first = s->first + (uint32_t)body;
    adam_mixed_avx2_compiled(c, &rest, n - body);
}
#endif
