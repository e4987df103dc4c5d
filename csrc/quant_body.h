/*
 * quant_body.h: the per-element loops of quant.c, written once and compiled several times.
 *
 * quant.c includes this file once per (input type, instruction-set variant) with
 *   QB_IN            the element type of x (float, double, or uint16_t for IEEE half)
 *   QB_LOAD(p, i)    element i of p as float32
 *   QB_NAME(base)    the function name for this compilation, e.g. base##_f32_avx2
 *   QB_ATTR          TP_NO_VECTORIZE (scalar reference), nothing (baseline) or a target()
 *   QB_HALF          defined when QB_IN holds IEEE half bits
 * and with QB_DEQUANT defined once per variant for the (type-independent) dequantize loops.
 * Every loop is branch-free on data so the compiler vectorizes it for each target; the scalar
 * reference compiles the same text without vectorization, and the tests compare the two.
 */

#ifndef QB_DEQUANT

/* Largest |x| as float32 bits with the sign cleared: for non-negative floats the integer order
 * is the float order, so an integer max reduction (which vectorizes without -ffast-math) finds
 * absmax, and any NaN or Inf shows up as a result >= 0x7f800000. */
#ifdef QB_HALF
/* IEEE half: |h| orders like |x| too, and the conversion to float32 keeps that order (Inf and
 * NaN included), so the max is taken on the 16-bit patterns, 16 lanes per AVX2 vector, and
 * only the winner is converted. */
QB_ATTR static uint32_t QB_NAME(qz_stats_sym)(const void *xv, int64_t n, uint32_t m) {
    const uint16_t *TP_RESTRICT x = (const uint16_t *)xv;
    uint16_t h = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t a = (uint16_t)(x[i] & 0x7fffu);
        h = a > h ? a : h;
    }
    uint32_t b = qz_bits(qz_half(h));
    return b > m ? b : m;
}
#else
QB_ATTR static uint32_t QB_NAME(qz_stats_sym)(const void *xv, int64_t n, uint32_t m) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = qz_bits(QB_LOAD(x, i)) & 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}
#endif

/* Min and max as order-preserving int32 keys (see qz_key). */
QB_ATTR static void QB_NAME(qz_stats_aff)(const void *xv, int64_t n, int32_t *mn, int32_t *mx) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    int32_t lo = *mn, hi = *mx;
    for (int64_t i = 0; i < n; i++) {
        int32_t k = qz_key(QB_LOAD(x, i));
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    *mn = lo;
    *mx = hi;
}

/* Column-wise versions for a channel axis that is innermost: acc[j] accumulates column j of
 * successive rows, so the loop runs along contiguous memory instead of down a column. */
QB_ATTR static void QB_NAME(qz_cols_sym)(const void *xv, int64_t n, uint32_t *TP_RESTRICT acc) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t j = 0; j < n; j++) {
        uint32_t b = qz_bits(QB_LOAD(x, j)) & 0x7fffffffu;
        acc[j] = b > acc[j] ? b : acc[j];
    }
}

QB_ATTR static void QB_NAME(qz_cols_aff)(const void *xv, int64_t n, int32_t *TP_RESTRICT mn,
                                         int32_t *TP_RESTRICT mx) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t j = 0; j < n; j++) {
        int32_t k = qz_key(QB_LOAD(x, j));
        mn[j] = k < mn[j] ? k : mn[j];
        mx[j] = k > mx[j] ? k : mx[j];
    }
}

/* Copy-convert to a float32 tile buffer (for channel axes that are not outermost, see quant.c),
 * with the column stats fused in when the channel axis is innermost. */
QB_ATTR static void QB_NAME(qz_copy)(const void *xv, float *TP_RESTRICT buf, int64_t n) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t i = 0; i < n; i++) buf[i] = QB_LOAD(x, i);
}

QB_ATTR static void QB_NAME(qz_copy_cols_sym)(const void *xv, float *TP_RESTRICT buf, int64_t n,
                                              uint32_t *TP_RESTRICT acc) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t j = 0; j < n; j++) {
        float v = QB_LOAD(x, j);
        uint32_t b = qz_bits(v) & 0x7fffffffu;
        buf[j] = v;
        acc[j] = b > acc[j] ? b : acc[j];
    }
}

QB_ATTR static void QB_NAME(qz_copy_cols_aff)(const void *xv, float *TP_RESTRICT buf, int64_t n,
                                              int32_t *TP_RESTRICT mn, int32_t *TP_RESTRICT mx) {
    const QB_IN *TP_RESTRICT x = (const QB_IN *)xv;
    for (int64_t j = 0; j < n; j++) {
        float v = QB_LOAD(x, j);
        int32_t k = qz_key(v);
        buf[j] = v;
        mn[j] = k < mn[j] ? k : mn[j];
        mx[j] = k > mx[j] ? k : mx[j];
    }
}

/* q = clamp(rint(x * inv) + zp, qmin, 127) with one scale; returns 1 when x held a NaN or Inf
 * (only looked at when `check`, i.e. for caller-given scales: otherwise the stats pass did). */
TP_ALWAYS_INLINE int QB_NAME(qz_quant_body)(const QB_IN *TP_RESTRICT x, int8_t *TP_RESTRICT q,
                                             int64_t n, float inv, int32_t zp, int32_t qmin,
                                             const int check) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = QB_LOAD(x, i);
        if (check) bad |= (qz_bits(v) & 0x7f800000u) == 0x7f800000u;
        q[i] = qz_round_clamp(v * inv, zp, qmin, check);
    }
    return bad != 0;
}

QB_ATTR static int QB_NAME(qz_quant_seg)(const void *x, int8_t *q, int64_t n, float inv,
                                         int32_t zp, int32_t qmin, int check) {
    if (check) return QB_NAME(qz_quant_body)((const QB_IN *)x, q, n, inv, zp, qmin, 1);
    /* ggml's Q8_0 blocks: a constant trip count lets the compiler unroll the 32 elements. */
    if (n == 32) return QB_NAME(qz_quant_body)((const QB_IN *)x, q, 32, inv, zp, qmin, 0);
    return QB_NAME(qz_quant_body)((const QB_IN *)x, q, n, inv, zp, qmin, 0);
}

/* One scale per column (the channel axis is innermost). */
TP_ALWAYS_INLINE int QB_NAME(qz_cols_body)(const QB_IN *TP_RESTRICT x, int8_t *TP_RESTRICT q,
                                            int64_t n, const float *TP_RESTRICT inv,
                                            const int32_t *TP_RESTRICT zp, int32_t qmin,
                                            const int check) {
    uint32_t bad = 0;
    for (int64_t j = 0; j < n; j++) {
        float v = QB_LOAD(x, j);
        if (check) bad |= (qz_bits(v) & 0x7f800000u) == 0x7f800000u;
        q[j] = qz_round_clamp(v * inv[j], zp[j], qmin, check);
    }
    return bad != 0;
}

QB_ATTR static int QB_NAME(qz_quant_cols)(const void *x, int8_t *q, int64_t n, const float *inv,
                                          const int32_t *zp, int32_t qmin, int check) {
    if (check) return QB_NAME(qz_cols_body)((const QB_IN *)x, q, n, inv, zp, qmin, 1);
    return QB_NAME(qz_cols_body)((const QB_IN *)x, q, n, inv, zp, qmin, 0);
}

/* One block, fused: its stats, its scale (and zero point), its q. Returns 1 on NaN / Inf. */
TP_ALWAYS_INLINE int QB_NAME(qz_block_body)(const QB_IN *TP_RESTRICT x, int8_t *TP_RESTRICT q,
                                             int64_t n, int affine, float *scale, int8_t *zp) {
    qz_params p;
    if (!affine) {
        uint32_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t b = qz_bits(QB_LOAD(x, i)) & 0x7fffffffu;
            m = b > m ? b : m;
        }
        if (m >= 0x7f800000u) return 1;
        p = qz_params_sym(m);
    } else {
        int32_t lo = INT32_MAX, hi = INT32_MIN;
        for (int64_t i = 0; i < n; i++) {
            int32_t k = qz_key(QB_LOAD(x, i));
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        if (qz_key_nonfinite(lo, hi)) return 1;
        p = qz_params_aff(lo, hi);
    }
    QB_NAME(qz_quant_body)(x, q, n, p.inv, p.zp, p.qmin, 0);
    *scale = p.scale;
    if (zp) *zp = (int8_t)p.zp;
    return 0;
}

/* `count` consecutive blocks of `B` elements (one row's full blocks, or a run of them): one call
 * for many blocks keeps call overhead off the 32-element blocks. Returns 1 on NaN / Inf. */
QB_ATTR static int QB_NAME(qz_block_run)(const void *xv, int8_t *q, int64_t count, int64_t B,
                                         int affine, float *scale, int8_t *zp) {
    const QB_IN *x = (const QB_IN *)xv;
    int bad = 0;
    if (B == 32) /* ggml's Q8_0: a constant trip count lets the compiler unroll the block */
        for (int64_t g = 0; g < count; g++)
            bad |= QB_NAME(qz_block_body)(x + g * 32, q + g * 32, 32, affine, scale + g,
                                          zp ? zp + g : NULL);
    else
        for (int64_t g = 0; g < count; g++)
            bad |= QB_NAME(qz_block_body)(x + g * B, q + g * B, B, affine, scale + g,
                                          zp ? zp + g : NULL);
    return bad;
}

#else /* QB_DEQUANT */

/* out = float(q - zp) * scale: the difference is an exact small integer, so the one multiply
 * is the only rounding, as in torch's dequantize. */
QB_ATTR static void QB_NAME(dq_seg)(const int8_t *TP_RESTRICT q, float *TP_RESTRICT out, int64_t n,
                                    float scale, int32_t zp) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)((int32_t)q[i] - zp) * scale;
}

QB_ATTR static void QB_NAME(dq_cols)(const int8_t *TP_RESTRICT q, float *TP_RESTRICT out, int64_t n,
                                     const float *TP_RESTRICT scale, const int8_t *TP_RESTRICT zp) {
    if (zp)
        for (int64_t j = 0; j < n; j++) out[j] = (float)((int32_t)q[j] - (int32_t)zp[j]) * scale[j];
    else
        for (int64_t j = 0; j < n; j++) out[j] = (float)q[j] * scale[j];
}

#endif
