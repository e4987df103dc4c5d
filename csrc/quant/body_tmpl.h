/*
 * body_tmpl.h: the per-element loops of one input type, written once (a template header).
 *
 * The including file defines
 *   T     the element type of x: float, double, or uint16_t (IEEE half or bfloat16 bits)
 *   SUF   its suffix: f32, f64, f16, bf16 (the loads are qz_load_<SUF>, quant_internal.h)
 *   HALF  1 when T holds 16-bit float bits (IEEE half or bfloat16), else 0
 * and gets the TP_ALWAYS_INLINE bodies qz_<loop>_body_<SUF>, which variants.c compiles under
 * each ISA's target attribute through thin wrappers. Every loop is branch-free on data so the
 * compiler vectorizes it for each target; the tests hold every variant to quantize_int8_ref.
 * The parameters are #undef'd at the end.
 */

#define QZ_LOAD TP_CAT(qz_load, SUF)

/* Largest |x| as float32 bits with the sign cleared: for non-negative floats the integer order
 * is the float order, so an integer max reduction (which vectorizes without -ffast-math) finds
 * absmax, and any NaN or Inf shows up as a result >= 0x7f800000. */
TP_ALWAYS_INLINE uint32_t TP_CAT(qz_stats_sym_body, SUF)(const void *xv, int64_t n, uint32_t m) {
    const T *TP_RESTRICT x = (const T *)xv;
#if HALF
    /* IEEE half and bfloat16: |h| orders like |x| too, and the conversion to float32 keeps that
     * order (Inf and NaN included), so the max is taken on the 16-bit patterns, 16 lanes per
     * AVX2 vector, and only the winner is converted. */
    uint16_t h = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t a = (uint16_t)(x[i] & 0x7fffu);
        h = a > h ? a : h;
    }
    uint32_t b = tp_bits(QZ_LOAD(&h, 0));
    return b > m ? b : m;
#else
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = tp_bits(QZ_LOAD(x, i)) & 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
#endif
}

/* Min and max as order-preserving int32 keys (see qz_key). */
TP_ALWAYS_INLINE void TP_CAT(qz_stats_aff_body, SUF)(const void *xv, int64_t n, int32_t *mn,
                                                      int32_t *mx) {
    const T *TP_RESTRICT x = (const T *)xv;
    int32_t lo = *mn, hi = *mx;
    for (int64_t i = 0; i < n; i++) {
        int32_t k = qz_key(QZ_LOAD(x, i));
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    *mn = lo;
    *mx = hi;
}

/* Column-wise versions for a channel axis that is innermost: acc[j] accumulates column j of
 * successive rows, so the loop runs along contiguous memory instead of down a column. With a
 * buffer, x is also copied to it as float32 (the copy plan, channels.c). */
TP_ALWAYS_INLINE void TP_CAT(qz_cols_sym_body, SUF)(const void *xv, float *TP_RESTRICT buf,
                                                     int64_t n, uint32_t *TP_RESTRICT acc,
                                                     const int copy) {
    const T *TP_RESTRICT x = (const T *)xv;
    for (int64_t j = 0; j < n; j++) {
        float v = QZ_LOAD(x, j);
        uint32_t b = tp_bits(v) & 0x7fffffffu;
        if (copy) buf[j] = v;
        acc[j] = b > acc[j] ? b : acc[j];
    }
}

TP_ALWAYS_INLINE void TP_CAT(qz_cols_aff_body, SUF)(const void *xv, float *TP_RESTRICT buf,
                                                     int64_t n, int32_t *TP_RESTRICT mn,
                                                     int32_t *TP_RESTRICT mx, const int copy) {
    const T *TP_RESTRICT x = (const T *)xv;
    for (int64_t j = 0; j < n; j++) {
        float v = QZ_LOAD(x, j);
        int32_t k = qz_key(v);
        if (copy) buf[j] = v;
        mn[j] = k < mn[j] ? k : mn[j];
        mx[j] = k > mx[j] ? k : mx[j];
    }
}

TP_ALWAYS_INLINE void TP_CAT(qz_copy_body, SUF)(const void *xv, float *TP_RESTRICT buf, int64_t n) {
    const T *TP_RESTRICT x = (const T *)xv;
    for (int64_t i = 0; i < n; i++) buf[i] = QZ_LOAD(x, i);
}

/* q = clamp(rint(x * inv) + zp, qmin, 127) with one scale, or one per column (`cols`);
 * returns 1 when x held a NaN or Inf (only looked at when `check`, i.e. for caller-given
 * scales: otherwise the stats pass did). */
TP_ALWAYS_INLINE int TP_CAT(qz_quant_loop, SUF)(const T *TP_RESTRICT x, int8_t *TP_RESTRICT q,
                                                 int64_t n, float inv, int32_t zp,
                                                 const float *TP_RESTRICT inv_cols,
                                                 const int32_t *TP_RESTRICT zp_cols, int32_t qmin,
                                                 const int cols, const int check) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = QZ_LOAD(x, i);
        if (check) bad |= (tp_bits(v) & 0x7f800000u) == 0x7f800000u;
        if (cols) q[i] = qz_round_clamp(v * inv_cols[i], zp_cols[i], qmin, check);
        else q[i] = qz_round_clamp(v * inv, zp, qmin, check);
    }
    return bad != 0;
}

TP_ALWAYS_INLINE int TP_CAT(qz_quant_seg_body, SUF)(const void *x, int8_t *q, int64_t n, float inv,
                                                     int32_t zp, int32_t qmin, int check) {
    const T *xt = (const T *)x;
    if (check) return TP_CAT(qz_quant_loop, SUF)(xt, q, n, inv, zp, NULL, NULL, qmin, 0, 1);
    /* ggml's Q8_0 blocks: a constant trip count lets the compiler unroll the 32 elements. */
    if (n == 32) return TP_CAT(qz_quant_loop, SUF)(xt, q, 32, inv, zp, NULL, NULL, qmin, 0, 0);
    return TP_CAT(qz_quant_loop, SUF)(xt, q, n, inv, zp, NULL, NULL, qmin, 0, 0);
}

TP_ALWAYS_INLINE int TP_CAT(qz_quant_cols_body, SUF)(const void *x, int8_t *q, int64_t n,
                                                      const float *inv, const int32_t *zp,
                                                      int32_t qmin, int check) {
    const T *xt = (const T *)x;
    if (check) return TP_CAT(qz_quant_loop, SUF)(xt, q, n, 0.0f, 0, inv, zp, qmin, 1, 1);
    return TP_CAT(qz_quant_loop, SUF)(xt, q, n, 0.0f, 0, inv, zp, qmin, 1, 0);
}

/* One block, fused: its stats, its scale (and zero point), its q. Returns 1 on NaN / Inf. */
TP_ALWAYS_INLINE int TP_CAT(qz_block, SUF)(const T *TP_RESTRICT x, int8_t *TP_RESTRICT q,
                                            int64_t n, int affine, float *scale, int8_t *zp) {
    qz_params p;
    if (!affine) {
        uint32_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t b = tp_bits(QZ_LOAD(x, i)) & 0x7fffffffu;
            m = b > m ? b : m;
        }
        if (m >= 0x7f800000u) return 1;
        p = qz_params_sym(m);
    } else {
        int32_t lo = INT32_MAX, hi = INT32_MIN;
        TP_CAT(qz_stats_aff_body, SUF)(x, n, &lo, &hi);
        if (qz_key_nonfinite(lo, hi)) return 1;
        p = qz_params_aff(lo, hi);
    }
    TP_CAT(qz_quant_loop, SUF)(x, q, n, p.inv, p.zp, NULL, NULL, p.qmin, 0, 0);
    *scale = p.scale;
    if (zp) *zp = (int8_t)p.zp;
    return 0;
}

/* `count` consecutive blocks of `B` elements (one row's full blocks, or a run of them): one call
 * for many blocks keeps call overhead off the 32-element blocks. Returns 1 on NaN / Inf. */
TP_ALWAYS_INLINE int TP_CAT(qz_block_run_body, SUF)(const void *xv, int8_t *q, int64_t count,
                                                     int64_t B, int affine, float *scale,
                                                     int8_t *zp) {
    const T *x = (const T *)xv;
    int bad = 0;
    if (B == 32) /* ggml's Q8_0: a constant trip count lets the compiler unroll the block */
        for (int64_t g = 0; g < count; g++)
            bad |= TP_CAT(qz_block, SUF)(x + g * 32, q + g * 32, 32, affine, scale + g,
                                         zp ? zp + g : NULL);
    else
        for (int64_t g = 0; g < count; g++)
            bad |= TP_CAT(qz_block, SUF)(x + g * B, q + g * B, B, affine, scale + g,
                                         zp ? zp + g : NULL);
    return bad;
}

#undef QZ_LOAD
#undef T
#undef SUF
#undef HALF
