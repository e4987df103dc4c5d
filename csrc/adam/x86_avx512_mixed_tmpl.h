/*
 * x86_avx512_mixed_tmpl.h: the body of x86_avx512_mixed.c for one target (a template header,
 * csrc/README.md). Included with AMX_TARGET (a target attribute), AMX_BF16 (1: the target
 * has AVX512_BF16) and AMX_SUF (the name suffix); defines adam_mixed_avx512_SUF and #undefs
 * its parameters. Two copies because a function using vcvtne2ps2bf16 must carry the
 * avx512bf16 target, and so must every always-inline function it is inlined into.
 */
#define AMX_FN(name) TP_CAT(name, AMX_SUF)

/* 32 float32 values as bfloat16 words, rounded to nearest even (tp_f32_to_bf16). nans: some
 * lane may be NaN. */
AMX_TARGET TP_ALWAYS_INLINE __m512i AMX_FN(amx_to_bf16)(amx_pair x, const int nans) {
#if AMX_BF16
    /* vcvtne2ps2bf16 is tp_f32_to_bf16 but on NaN (payload kept) and subnormal input
     * (flushed): vectors holding either take the integer form. Classes: QNaN 0x01, subnormal
     * 0x20, SNaN 0x80. */
    (void)nans;
    if (!(_mm512_fpclass_ps_mask(x.lo, 0xa1) | _mm512_fpclass_ps_mask(x.hi, 0xa1)))
        return (__m512i)_mm512_cvtne2ps_pbh(x.hi, x.lo);
    return amx_to_bf16_rne(x, 1);
#else
    return amx_to_bf16_rne(x, nans);
#endif
}

AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_store32)(void *base, int64_t i, amx_pair x,
                                                     const int type, const int tail, __mmask32 k,
                                                     const int nans) {
    if (type == TP_FLOAT32)
        amx_store_f32((float *)base + i, x, tail, k);
    else if (type == TP_FLOAT16)
        amx_store_f16((uint16_t *)base + i, x, tail, k);
    else
        amx_store_words32((uint16_t *)base + i, AMX_FN(amx_to_bf16)(x, nans), tail, k);
}

/* A half param's 32 words to nearest even, streamed to the 64-byte aligned line at base + i
 * (amx_loop: offload steps larger than the caches). */
AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_stream32)(void *base, int64_t i, amx_pair x,
                                                      const int type, const int nans) {
    __m512i words = type == TP_FLOAT16
                        ? _mm512_inserti64x4(_mm512_castsi256_si512(amx_to_f16(x.lo)),
                                             amx_to_f16(x.hi), 1)
                        : AMX_FN(amx_to_bf16)(x, nans);
    _mm512_stream_si512((__m512i *)(void *)((uint16_t *)base + i), words);
}

/* Elements i..i+31 (only the lanes of k when tail). stream: the param's line is written with
 * a non-temporal store (master mode, whole aligned lines only). */
AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_step32)(
    const amx_consts *k, void *TP_RESTRICT p, const void *TP_RESTRICT gr, void *TP_RESTRICT m,
    void *TP_RESTRICT v, void *TP_RESTRICT vmax, float *TP_RESTRICT master, uint64_t key,
    uint32_t first, int64_t i, const int tail, __mmask32 lanes, const int ptype, const int pmode,
    const int gtype, const int stype, int amsgrad, int scaled, int negate, int decoupled, int l2,
    int lerp_low, const int stream) {
    amx_pair g = amx_load32(gr, i, gtype, tail, lanes);
    amx_pair pi = pmode == AMX_MASTER ? amx_load32(master, i, TP_FLOAT32, tail, lanes)
                                      : amx_load32(p, i, ptype, tail, lanes);
    amx_pair mi = amx_load32(m, i, stype, tail, lanes), vi = amx_load32(v, i, stype, tail, lanes);
    amx_pair mx = vi; /* unused without amsgrad */
    if (amsgrad) mx = amx_load32(vmax, i, stype, tail, lanes);
    /* Every load of the step before any store: large arrays start at the same offset in
     * their pages, so a load that GCC sinks below a store to another stream (as a memory
     * operand) matches that store's low 12 address bits and waits on it (4K aliasing). The
     * empty asm keeps the loads above: offload step 0.97-1.10 -> 0.85-1.05 TSC cycles per
     * element, float32 params with bfloat16 grads 0.80-0.88 -> 0.77 (one thread, L2). */
    __asm__ volatile("" ::: "memory");
    amx_new lo = amx_update(k, g.lo, pi.lo, mi.lo, vi.lo, mx.lo, amsgrad, scaled, negate,
                            decoupled, l2, lerp_low);
    amx_new hi = amx_update(k, g.hi, pi.hi, mi.hi, vi.hi, mx.hi, amsgrad, scaled, negate,
                            decoupled, l2, lerp_low);
    /* Whether anything stored is NaN: a NaN m makes nss*m, so the new param, NaN; a NaN v or
     * vmax makes the root, so the denominator and the new param, NaN. So the new params tell
     * for every stream (tail: the lanes written). */
    const int nans = (_mm512_mask_cmp_ps_mask((__mmask16)lanes, lo.p, lo.p, _CMP_UNORD_Q) |
                      _mm512_mask_cmp_ps_mask((__mmask16)(lanes >> 16), hi.p, hi.p, _CMP_UNORD_Q)) != 0;
    amx_pair out;
    out.lo = lo.m, out.hi = hi.m;
    AMX_FN(amx_store32)(m, i, out, stype, tail, lanes, nans);
    out.lo = lo.v, out.hi = hi.v;
    AMX_FN(amx_store32)(v, i, out, stype, tail, lanes, nans);
    if (amsgrad) {
        out.lo = lo.vmax, out.hi = hi.vmax;
        AMX_FN(amx_store32)(vmax, i, out, stype, tail, lanes, nans);
    }
    out.lo = lo.p, out.hi = hi.p;
    if (pmode == AMX_MASTER) {
        amx_store_f32(master + i, out, tail, lanes);
        if (stream)
            AMX_FN(amx_stream32)(p, i, out, ptype, nans);
        else
            AMX_FN(amx_store32)(p, i, out, ptype, tail, lanes, nans);
    } else if (pmode == AMX_SR && ptype == TP_BFLOAT16) {
        amx_store_words32((uint16_t *)p + i, amx_to_bf16_sr(out, key, first + (uint32_t)i, nans),
                          tail, lanes);
    } else if (pmode == AMX_SR) {
        amx_store_f16_sr((uint16_t *)p + i, out, key, first + (uint32_t)i, tail, lanes);
    } else {
        AMX_FN(amx_store32)(p, i, out, ptype, tail, lanes, nans);
    }
}

AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_loop)(const adam_consts_f32 *c,
                                                  const adam_mixed_slice *s, int64_t n,
                                                  const int ptype, const int pmode,
                                                  const int gtype, const int stype,
                                                  const int adamw) {
    amx_consts k;
    k.grad_scale = _mm512_set1_ps(c->grad_scale);
    k.sign = _mm512_set1_ps(c->sign);
    k.decay = _mm512_set1_ps(c->decay);
    k.wd = _mm512_set1_ps(c->weight_decay);
    k.lw = _mm512_set1_ps(c->lerp_weight);
    k.lwc = _mm512_set1_ps(c->lerp_weight_c);
    k.beta2 = _mm512_set1_ps(c->beta2);
    k.omb2 = _mm512_set1_ps(c->one_minus_beta2);
    k.bc = _mm512_set1_ps(c->bias_correction2_sqrt);
    k.y = _mm512_set1_ps(c->inv_bias_correction2_sqrt);
    k.eps = _mm512_set1_ps(c->eps);
    k.nss = _mm512_set1_ps(c->neg_step_size);
    /* AdamW: decoupled decay, beta1 >= 0.5 (lerp's first formula), not maximizing */
    const int amsgrad = adamw ? 0 : s->vmax != NULL, scaled = adamw ? 0 : c->scaled;
    const int negate = adamw ? 0 : c->sign != 1.0f, decoupled = adamw ? 1 : c->decoupled;
    const int l2 = adamw ? 0 : c->l2, lerp_low = adamw ? 1 : c->lerp_low;
    void *TP_RESTRICT p = s->p;
    const void *TP_RESTRICT g = s->g;
    void *TP_RESTRICT m = s->m, *TP_RESTRICT v = s->v, *TP_RESTRICT vmax = s->vmax;
    float *TP_RESTRICT master = s->master;
    int64_t i = 0;
    /* The offload step past the caches: its half param is only written, and non-temporal
     * stores write it without reading each line first (2 of the 30 bytes an element moved).
     * They take whole aligned lines: a head of up to 31 elements goes first, masked. */
    if (pmode == AMX_MASTER && s->stream_param && ((uintptr_t)p & 1) == 0) {
        int64_t head = (int64_t)((64 - ((uintptr_t)p & 63)) & 63) / 2;
        if (head > n) head = n;
        if (head)
            AMX_FN(amx_step32)(&k, p, g, m, v, vmax, master, s->key, s->first, 0, 1,
                               (__mmask32)((1ull << head) - 1), ptype, pmode, gtype, stype,
                               amsgrad, scaled, negate, decoupled, l2, lerp_low, 0);
        for (i = head; i + 32 <= n; i += 32)
            AMX_FN(amx_step32)(&k, p, g, m, v, vmax, master, s->key, s->first, i, 0, ~0u, ptype,
                               pmode, gtype, stype, amsgrad, scaled, negate, decoupled, l2,
                               lerp_low, 1);
        _mm_sfence(); /* the streamed lines are visible before the threads' barrier */
    } else {
        for (; i + 32 <= n; i += 32)
            AMX_FN(amx_step32)(&k, p, g, m, v, vmax, master, s->key, s->first, i, 0, ~0u, ptype,
                               pmode, gtype, stype, amsgrad, scaled, negate, decoupled, l2,
                               lerp_low, 0);
    }
    if (i < n) /* the last 1-31 elements, through masked loads and stores */
        AMX_FN(amx_step32)(&k, p, g, m, v, vmax, master, s->key, s->first, i, 1,
                           (__mmask32)((1ull << (n - i)) - 1), ptype, pmode, gtype, stype,
                           amsgrad, scaled, negate, decoupled, l2, lerp_low, 0);
}

AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_options)(const adam_consts_f32 *c,
                                                     const adam_mixed_slice *s, int64_t n,
                                                     const int ptype, const int pmode,
                                                     const int gtype, const int stype) {
    if (!s->vmax && !c->scaled && c->decoupled && c->lerp_low && c->sign == 1.0f)
        AMX_FN(amx_loop)(c, s, n, ptype, pmode, gtype, stype, 1);
    else
        AMX_FN(amx_loop)(c, s, n, ptype, pmode, gtype, stype, 0);
}

AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_states)(const adam_consts_f32 *c,
                                                    const adam_mixed_slice *s, int64_t n,
                                                    const int ptype, const int pmode,
                                                    const int gtype) {
    if (s->stype == TP_BFLOAT16)
        AMX_FN(amx_options)(c, s, n, ptype, pmode, gtype, TP_BFLOAT16);
    else
        AMX_FN(amx_options)(c, s, n, ptype, pmode, gtype, TP_FLOAT32);
}

/* A half param: its own grad type or float32, and one of the three ways to write it. */
AMX_TARGET TP_ALWAYS_INLINE void AMX_FN(amx_half)(const adam_consts_f32 *c,
                                                  const adam_mixed_slice *s, int64_t n,
                                                  const int ptype) {
    const int pmode = s->master ? AMX_MASTER : s->stochastic ? AMX_SR : AMX_PLAIN;
    const int own = s->gtype == ptype;
    if (pmode == AMX_MASTER && own)
        AMX_FN(amx_states)(c, s, n, ptype, AMX_MASTER, ptype);
    else if (pmode == AMX_MASTER)
        AMX_FN(amx_states)(c, s, n, ptype, AMX_MASTER, TP_FLOAT32);
    else if (pmode == AMX_SR && own)
        AMX_FN(amx_states)(c, s, n, ptype, AMX_SR, ptype);
    else if (pmode == AMX_SR)
        AMX_FN(amx_states)(c, s, n, ptype, AMX_SR, TP_FLOAT32);
    else if (own)
        AMX_FN(amx_states)(c, s, n, ptype, AMX_PLAIN, ptype);
    else
        AMX_FN(amx_states)(c, s, n, ptype, AMX_PLAIN, TP_FLOAT32);
}

/* One function per param type, as variants.c does for the compiled body (a function of all
 * the loops is one GCC optimizes worse). */
AMX_TARGET TP_NOINLINE static void AMX_FN(adam_mixed_avx512_bf16p)(const adam_consts_f32 *c,
                                                                   const adam_mixed_slice *s,
                                                                   int64_t n) {
    AMX_FN(amx_half)(c, s, n, TP_BFLOAT16);
}

AMX_TARGET TP_NOINLINE static void AMX_FN(adam_mixed_avx512_f16p)(const adam_consts_f32 *c,
                                                                  const adam_mixed_slice *s,
                                                                  int64_t n) {
    AMX_FN(amx_half)(c, s, n, TP_FLOAT16);
}

/* A float32 param: any grad type, float32 or bfloat16 states (all-float32 is not mixed). */
AMX_TARGET TP_NOINLINE static void AMX_FN(adam_mixed_avx512_f32p)(const adam_consts_f32 *c,
                                                                  const adam_mixed_slice *s,
                                                                  int64_t n) {
    if (s->gtype == TP_BFLOAT16)
        AMX_FN(amx_states)(c, s, n, TP_FLOAT32, AMX_PLAIN, TP_BFLOAT16);
    else if (s->gtype == TP_FLOAT16)
        AMX_FN(amx_states)(c, s, n, TP_FLOAT32, AMX_PLAIN, TP_FLOAT16);
    else /* float32 grads, so bfloat16 states */
        AMX_FN(amx_options)(c, s, n, TP_FLOAT32, AMX_PLAIN, TP_FLOAT32, TP_BFLOAT16);
}

static void AMX_FN(adam_mixed_avx512)(const adam_consts_f32 *c, const adam_mixed_slice *s,
                                      int64_t n) {
    if (s->ptype == TP_BFLOAT16)
        AMX_FN(adam_mixed_avx512_bf16p)(c, s, n);
    else if (s->ptype == TP_FLOAT16)
        AMX_FN(adam_mixed_avx512_f16p)(c, s, n);
    else
        AMX_FN(adam_mixed_avx512_f32p)(c, s, n);
}

#undef AMX_FN
#undef AMX_BF16
#undef AMX_TARGET
#undef AMX_SUF
