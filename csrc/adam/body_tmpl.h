/*
 * body_tmpl.h: the Adam kernel body of one element type (template header, csrc/README.md),
 * instantiated by variants.c through for_each_type.h. It is inlined into each per-ISA
 * wrapper, so each compilation vectorizes it for its target.
 *
 * Options that only change arithmetic cheaply are selects on loop invariants (the vectorizer
 * keeps them branch-free, computing both sides). Two are compile-time parameters instead:
 * amsgrad, which adds a fourth stream, so the common loop carries no conditional load or
 * store; and the grad scale, whose division would otherwise be paid on every step (a third of
 * the arithmetic). The build's -ffp-contract=off keeps every variant's bits the reference's.
 */
#define ADAM_CONSTS TP_CAT(adam_consts, SUF)

TP_ALWAYS_INLINE void TP_CAT(adam_loop, SUF)(const ADAM_CONSTS *c, T *TP_RESTRICT p,
                                             const T *TP_RESTRICT gr, T *TP_RESTRICT m,
                                             T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n,
                                             const int amsgrad, const int scaled) {
    const ADAM_CONSTS k = *c;
    for (int64_t i = 0; i < n; i++) {
        T g = gr[i];
        if (scaled) g = g / k.grad_scale;
        g = g * k.sign;
        T pi = p[i];
        pi = k.decoupled ? pi * k.decay : pi;
        g = k.l2 ? g + k.weight_decay * pi : g;
        T mi = m[i];
        mi = k.lerp_low ? mi + k.lerp_weight * (g - mi) : g - (g - mi) * k.lerp_weight_c;
        T vi = v[i] * k.beta2 + (k.one_minus_beta2 * g) * g;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            T mx = vmax[i];
            mx = (mx < vi || vi != vi) ? vi : mx; /* torch.maximum: NaN wins from either side */
            vmax[i] = mx;
            vi = mx;
        }
        T denom = SQRT(vi) / k.bias_correction2_sqrt + k.eps;
        p[i] = pi + (k.neg_step_size * mi) / denom;
    }
}

/* The body a wrapper inlines: one loop compiled per (amsgrad, scaled) pair. */
TP_ALWAYS_INLINE void TP_CAT(adam_body, SUF)(const ADAM_CONSTS *c, T *TP_RESTRICT p,
                                             const T *TP_RESTRICT g, T *TP_RESTRICT m,
                                             T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n) {
    if (vmax && c->scaled)
        TP_CAT(adam_loop, SUF)(c, p, g, m, v, vmax, n, 1, 1);
    else if (vmax)
        TP_CAT(adam_loop, SUF)(c, p, g, m, v, vmax, n, 1, 0);
    else if (c->scaled)
        TP_CAT(adam_loop, SUF)(c, p, g, m, v, vmax, n, 0, 1);
    else
        TP_CAT(adam_loop, SUF)(c, p, g, m, v, vmax, n, 0, 0);
}

/* 1 if any g[i] / scale is NaN or Inf. x - x is 0 for finite x and NaN otherwise; an integer
 * OR (unlike a float sum) is a reduction the compiler vectorizes without reassociating. */
int TP_CAT(adam_any_nonfinite, SUF)(const T *TP_RESTRICT g, int64_t n, T scale) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        T x = g[i] / scale;
        bad |= !(x - x == 0);
    }
    return bad;
}

#undef ADAM_CONSTS
