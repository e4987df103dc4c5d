/*
 * mixed_body.h: the mixed-precision Adam body (mixed_ref.c spells out the same update), inlined
 * into the per-ISA wrappers of variants.c: the baseline variant, and the tail (n % 16) of the
 * hand-written AVX2 one (x86_avx2_mixed.c). AVX-512 runs x86_avx512_mixed.c throughout.
 *
 * Each stream's type is a compile-time constant of the loop: adam_mixed_body switches on the
 * slice's types once per call and every branch calls adam_mixed_loop with constants, so each
 * valid combination becomes its own straight loop, vectorized with its conversions inline
 * (a bfloat16 load is a shift, a store an add and a shift). No converted copy of any stream is
 * made: one pass over memory, as for float32. The combinations compiled are the ones step.c
 * accepts: a float32 param with any grad type and float32 or bfloat16 states (all-float32 runs
 * body_tmpl.h instead); a half param with its own type or float32 grads, either state type,
 * written to nearest, stochastically, or from a float32 master. amsgrad and the grad scale
 * are compile-time too, as in body_tmpl.h, and the usual AdamW options get loops of their
 * own: 29 combinations x 5 loops per ISA. Where FMA exists, the division by the bias
 * correction is x86_avx2.c's exact divider-free one (step.c falls back to the baseline
 * variant in the never-met case its precondition fails): the divider bounds these loops. variants.c compiles the three param types as three
 * functions per ISA: in one function of all 145 loops GCC left the 16-bit AdamW loop on its
 * scalar path (16,384 bfloat16 elements: 7.7-8.9 ns each, 0.7 ns as its own function).
 */
#define AM_PLAIN 0  /* the param is read and written in its own type */
#define AM_SR 1     /* ... written rounded stochastically */
#define AM_MASTER 2 /* the float32 master is read and written; the param only written */

TP_ALWAYS_INLINE float am_load(const void *TP_RESTRICT base, int64_t i, const int type) {
    if (type == TP_FLOAT32) return ((const float *)base)[i];
    if (type == TP_BFLOAT16) return tp_bf16_to_f32(((const uint16_t *)base)[i]);
    return tp_f16_to_f32(((const uint16_t *)base)[i]);
}

TP_ALWAYS_INLINE void am_store(void *TP_RESTRICT base, int64_t i, float x, const int type) {
    if (type == TP_FLOAT32)
        ((float *)base)[i] = x;
    else if (type == TP_BFLOAT16)
        ((uint16_t *)base)[i] = tp_f32_to_bf16(x);
    else
        ((uint16_t *)base)[i] = tp_f32_to_f16(x);
}

/* mask ? a : b on the bits, mask all ones or zero. The options' selects are written this way
 * (both sides computed, one picked by integer operations): under the default
 * -ftrapping-math GCC does not if-convert a choice between float operations, and this loop is
 * too large for it to unswitch the options out (body_tmpl.h's is not), so a float select left
 * it scalar: 16M bfloat16 elements took 129 ms on one thread, 6.9x the float32 step. */
TP_ALWAYS_INLINE float am_select(uint32_t mask, float a, float b) {
    return tp_float((tp_bits(a) & mask) | (tp_bits(b) & ~mask));
}

/* The buffers are disjoint (step.c checks it for every caller), but GCC drops `restrict`
 * through the casts from void *, and then versions the loop on run-time overlap checks: over
 * six streams they exceeded its limit (master + amsgrad stayed scalar), and one of them sent
 * the 16-bit AdamW loop to its scalar copy (6x slower). ivdep states the fact instead. */
TP_ALWAYS_INLINE void adam_mixed_stream(const adam_consts_f32 *c, void *TP_RESTRICT p,
                                        const void *TP_RESTRICT gr, void *TP_RESTRICT m,
                                        void *TP_RESTRICT v, void *TP_RESTRICT vmax,
                                        float *TP_RESTRICT master, uint64_t key, uint32_t first,
                                        int64_t n, const int ptype, const int pmode,
                                        const int gtype, const int stype, const int amsgrad,
                                        const int scaled, const int adamw, const int fma) {
    const adam_consts_f32 k = *c;
    const uint32_t decoupled = adamw || k.decoupled ? ~0u : 0u;
    const uint32_t l2 = !adamw && k.l2 ? ~0u : 0u;
    const uint32_t lerp_low = adamw || k.lerp_low ? ~0u : 0u;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
    for (int64_t i = 0; i < n; i++) {
        float g = am_load(gr, i, gtype);
        if (scaled) g = g / k.grad_scale;
        if (!adamw) g = g * k.sign;
        float pi = pmode == AM_MASTER ? master[i] : am_load(p, i, ptype);
        pi = am_select(decoupled, pi * k.decay, pi);
        g = am_select(l2, g + k.weight_decay * pi, g);
        float mi = am_load(m, i, stype);
        mi = am_select(lerp_low, mi + k.lerp_weight * (g - mi), g - (g - mi) * k.lerp_weight_c);
        float vi = am_load(v, i, stype) * k.beta2 + (k.one_minus_beta2 * g) * g;
        am_store(m, i, mi, stype);
        am_store(v, i, vi, stype);
        if (amsgrad) {
            float mx = am_load(vmax, i, stype);
            uint32_t take = (mx < vi) | (vi != vi); /* torch.maximum: NaN wins from either side */
            mx = am_select(0u - take, vi, mx);
            am_store(vmax, i, mx, stype);
            vi = mx;
        }
        float root = sqrtf(vi), quotient;
        if (fma) { /* root / bias_correction2_sqrt without the divider (x86_avx2.c proves it) */
            float q0 = root * k.inv_bias_correction2_sqrt;
            float e = __builtin_fmaf(q0, k.bias_correction2_sqrt, -root);
            e = am_select(0u - (uint32_t)(e == e), e, 0.0f);
            quotient = __builtin_fmaf(-e, k.inv_bias_correction2_sqrt, q0);
        } else {
            quotient = root / k.bias_correction2_sqrt;
        }
        float denom = quotient + k.eps;
        float pn = pi + (k.neg_step_size * mi) / denom;
        if (pmode == AM_MASTER) master[i] = pn;
        if (pmode == AM_SR) {
            uint32_t r = tp_sr_bits(key, first + (uint32_t)i);
            ((uint16_t *)p)[i] = ptype == TP_BFLOAT16 ? tp_f32_to_bf16_sr(pn, r) : tp_f32_to_f16_sr(pn, r);
        } else {
            am_store(p, i, pn, ptype);
        }
    }
}

TP_ALWAYS_INLINE void adam_mixed_loop(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                      int64_t n, const int ptype, const int pmode,
                                      const int gtype, const int stype, const int amsgrad,
                                      const int scaled, const int fma) {
    /* The usual AdamW step (decoupled decay, beta1 >= 0.5, not maximizing) with its options
     * as constants: computing both sides of three selects cost a fifth of the loop. */
    if (!amsgrad && !scaled && c->decoupled && c->lerp_low && c->sign == 1.0f)
        adam_mixed_stream(c, s->p, s->g, s->m, s->v, s->vmax, s->master, s->key, s->first, n,
                          ptype, pmode, gtype, stype, 0, 0, 1, fma);
    else
        adam_mixed_stream(c, s->p, s->g, s->m, s->v, s->vmax, s->master, s->key, s->first, n,
                          ptype, pmode, gtype, stype, amsgrad, scaled, 0, fma);
}

/* The (amsgrad, scaled) loops of one type combination. */
TP_ALWAYS_INLINE void adam_mixed_options(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                         int64_t n, const int ptype, const int pmode,
                                         const int gtype, const int stype, const int fma) {
    if (s->vmax && c->scaled)
        adam_mixed_loop(c, s, n, ptype, pmode, gtype, stype, 1, 1, fma);
    else if (s->vmax)
        adam_mixed_loop(c, s, n, ptype, pmode, gtype, stype, 1, 0, fma);
    else if (c->scaled)
        adam_mixed_loop(c, s, n, ptype, pmode, gtype, stype, 0, 1, fma);
    else
        adam_mixed_loop(c, s, n, ptype, pmode, gtype, stype, 0, 0, fma);
}

TP_ALWAYS_INLINE void adam_mixed_states(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                        int64_t n, const int ptype, const int pmode,
                                        const int gtype, const int fma) {
    if (s->stype == TP_BFLOAT16)
        adam_mixed_options(c, s, n, ptype, pmode, gtype, TP_BFLOAT16, fma);
    else
        adam_mixed_options(c, s, n, ptype, pmode, gtype, TP_FLOAT32, fma);
}

/* A half param: its own grad type or float32, and one of the three ways to write it. */
TP_ALWAYS_INLINE void adam_mixed_half(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                      int64_t n, const int ptype, const int fma) {
    const int pmode = s->master ? AM_MASTER : s->stochastic ? AM_SR : AM_PLAIN;
    const int own_grad = s->gtype == ptype;
    if (pmode == AM_MASTER && own_grad)
        adam_mixed_states(c, s, n, ptype, AM_MASTER, ptype, fma);
    else if (pmode == AM_MASTER)
        adam_mixed_states(c, s, n, ptype, AM_MASTER, TP_FLOAT32, fma);
    else if (pmode == AM_SR && own_grad)
        adam_mixed_states(c, s, n, ptype, AM_SR, ptype, fma);
    else if (pmode == AM_SR)
        adam_mixed_states(c, s, n, ptype, AM_SR, TP_FLOAT32, fma);
    else if (own_grad)
        adam_mixed_states(c, s, n, ptype, AM_PLAIN, ptype, fma);
    else
        adam_mixed_states(c, s, n, ptype, AM_PLAIN, TP_FLOAT32, fma);
}

/* A float32 param: any grad type, float32 or bfloat16 states (all-float32 runs body_tmpl.h). */
TP_ALWAYS_INLINE void adam_mixed_single(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                        int64_t n, const int fma) {
    if (s->gtype == TP_BFLOAT16)
        adam_mixed_states(c, s, n, TP_FLOAT32, AM_PLAIN, TP_BFLOAT16, fma);
    else if (s->gtype == TP_FLOAT16)
        adam_mixed_states(c, s, n, TP_FLOAT32, AM_PLAIN, TP_FLOAT16, fma);
    else /* float32 grads, so bfloat16 states */
        adam_mixed_options(c, s, n, TP_FLOAT32, AM_PLAIN, TP_FLOAT32, TP_BFLOAT16, fma);
}
