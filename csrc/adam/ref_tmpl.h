/*
 * ref_tmpl.h: the scalar reference of one element type (template header, csrc/README.md),
 * instantiated by ref.c through for_each_type.h: adam_ref_f32 / adam_ref_f64.
 * The update of one element after another, in torch.optim.Adam's order, written to be read.
 */
void TP_CAT(adam_ref, SUF)(const TP_CAT(adam_consts, SUF) *c, T *TP_RESTRICT p,
                           const T *TP_RESTRICT g, T *TP_RESTRICT m, T *TP_RESTRICT v,
                           T *TP_RESTRICT vmax, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        T grad = g[i];
        if (c->scaled) grad = grad / c->grad_scale;
        grad = grad * c->sign; /* -1 with maximize */
        T param = p[i];
        if (c->decoupled) param = param * c->decay;       /* AdamW */
        if (c->l2) grad = grad + c->weight_decay * param; /* Adam's L2 term */
        /* m = torch.lerp(m, grad, 1 - beta1), whose formula depends on the weight */
        if (c->lerp_low)
            m[i] = m[i] + c->lerp_weight * (grad - m[i]);
        else
            m[i] = grad - (grad - m[i]) * c->lerp_weight_c;
        v[i] = v[i] * c->beta2 + (c->one_minus_beta2 * grad) * grad;
        T second = v[i];
        if (vmax) {
            /* torch.maximum: a NaN wins from either side */
            if (vmax[i] < v[i] || v[i] != v[i]) vmax[i] = v[i];
            second = vmax[i];
        }
        T denom = SQRT(second) / c->bias_correction2_sqrt + c->eps;
        p[i] = param + (c->neg_step_size * m[i]) / denom;
    }
}
