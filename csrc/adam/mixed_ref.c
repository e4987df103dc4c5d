/*
 * mixed_ref.c: the scalar reference of the mixed-precision Adam step (the TP_ISA_SCALAR slot of
 * ADAM_MIXED; csrc/README.md). Every stream is read into float32 exactly, the update is
 * ref_tmpl.h's in float32, and what is written is rounded once, to nearest even (or
 * stochastically, for a half param without a master). States are rounded only when stored:
 * the step itself uses the float32 values it computed, as torch's fused kernel does.
 */
#include "adam_internal.h"

static float load(const void *base, int64_t i, int32_t type) {
    if (type == TP_FLOAT32) return ((const float *)base)[i];
    if (type == TP_BFLOAT16) return tp_bf16_to_f32(((const uint16_t *)base)[i]);
    return tp_f16_to_f32(((const uint16_t *)base)[i]);
}

static void store(void *base, int64_t i, float x, int32_t type) {
    if (type == TP_FLOAT32)
        ((float *)base)[i] = x;
    else if (type == TP_BFLOAT16)
        ((uint16_t *)base)[i] = tp_f32_to_bf16(x);
    else
        ((uint16_t *)base)[i] = tp_f32_to_f16(x);
}

void adam_mixed_ref(const adam_consts_f32 *c, const adam_mixed_slice *s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float grad = load(s->g, i, s->gtype);
        if (c->scaled) grad = grad / c->grad_scale;
        grad = grad * c->sign;
        float param = s->master ? s->master[i] : load(s->p, i, s->ptype);
        if (c->decoupled) param = param * c->decay;
        if (c->l2) grad = grad + c->weight_decay * param;
        float m = load(s->m, i, s->stype);
        if (c->lerp_low)
            m = m + c->lerp_weight * (grad - m);
        else
            m = grad - (grad - m) * c->lerp_weight_c;
        float v = load(s->v, i, s->stype) * c->beta2 + (c->one_minus_beta2 * grad) * grad;
        store(s->m, i, m, s->stype);
        store(s->v, i, v, s->stype);
        float second = v;
        if (s->vmax) {
            float vmax = load(s->vmax, i, s->stype);
            if (vmax < v || v != v) vmax = v; /* torch.maximum: a NaN wins from either side */
            store(s->vmax, i, vmax, s->stype);
            second = vmax;
        }
        float denom = sqrtf(second) / c->bias_correction2_sqrt + c->eps;
        param = param + (c->neg_step_size * m) / denom;
        if (s->master) {
            s->master[i] = param;
            store(s->p, i, param, s->ptype);
        } else if (s->stochastic && s->ptype != TP_FLOAT32) {
            uint32_t r = tp_sr_bits(s->key, s->first + (uint32_t)i);
            ((uint16_t *)s->p)[i] = s->ptype == TP_BFLOAT16 ? tp_f32_to_bf16_sr(param, r)
                                                            : tp_f32_to_f16_sr(param, r);
        } else {
            store(s->p, i, param, s->ptype);
        }
    }
}
