/*
 * consts_tmpl.h: the per-step scalars of one element type (a template header, csrc/README.md).
 * Included by adam_internal.h once per type with T (float, double) and SUF (f32, f64) defined;
 * defines adam_consts_SUF and adam_consts_init_SUF, then #undefs nothing (the includer does).
 */
#define ADAM_CONSTS TP_CAT(adam_consts, SUF)

typedef struct {
    T grad_scale, sign, weight_decay, decay, lerp_weight, lerp_weight_c, beta2, one_minus_beta2,
        eps, bias_correction2_sqrt, inv_bias_correction2_sqrt, neg_step_size;
    int scaled, l2, decoupled, lerp_low, amsgrad, fma_div_ok;
} ADAM_CONSTS;

/* Computed once per call in double and rounded to T, as torch does. */
static inline void TP_CAT(adam_consts_init, SUF)(ADAM_CONSTS *c, double bias_correction1,
                                                 double bias_correction2, double lr,
                                                 double beta1, double beta2, double eps,
                                                 double wd, double grad_scale, int32_t flags) {
    c->scaled = (flags & TP_ADAM_GRAD_SCALE) != 0;
    c->grad_scale = (T)(c->scaled ? grad_scale : 1.0);
    c->sign = (T)((flags & TP_ADAM_MAXIMIZE) ? -1.0 : 1.0);
    c->decoupled = (flags & TP_ADAM_DECOUPLED) != 0;
    c->l2 = !c->decoupled && wd != 0.0;
    c->weight_decay = (T)wd;
    c->decay = (T)(1.0 - lr * wd);
    /* torch.lerp(m, g, w) = w < 0.5 ? m + w*(g-m) : g - (g-m)*(1-w), with 1-w in T */
    c->lerp_weight = (T)(1.0 - beta1);
    c->lerp_weight_c = (T)1 - c->lerp_weight;
    c->lerp_low = fabs((double)c->lerp_weight) < 0.5;
    c->beta2 = (T)beta2;
    c->one_minus_beta2 = (T)(1.0 - beta2);
    c->eps = (T)eps;
    c->bias_correction2_sqrt = (T)sqrt(bias_correction2);
    c->inv_bias_correction2_sqrt = (T)1 / c->bias_correction2_sqrt;
    /* adam_f32_avx2's divider-free division needs a normal divisor far from underflow */
    c->fma_div_ok = c->bias_correction2_sqrt >= (T)0x1p-60 && c->bias_correction2_sqrt <= (T)1;
    c->neg_step_size = (T)(-(lr / bias_correction1));
    c->amsgrad = (flags & TP_ADAM_AMSGRAD) != 0;
}

/* A kernel of the dispatch table: update n elements in place (vmax NULL unless amsgrad). */
typedef void (*TP_CAT(adam_kernel, SUF))(const ADAM_CONSTS *c, T *TP_RESTRICT p,
                                         const T *TP_RESTRICT g, T *TP_RESTRICT m,
                                         T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n);

#undef ADAM_CONSTS
