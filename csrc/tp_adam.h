/* tp_adam.h: fused Adam / AdamW over many tensors in one call (see csrc/adam/). */
#ifndef TP_ADAM_H
#define TP_ADAM_H

/* cdef: begin */
/* One tensor's buffers, each of `numel` elements. Types (TP_FLOAT32, ...):
 *   dtype (param)  float32, float64, bfloat16 or float16
 *   grad_dtype     the param's; or bfloat16 / float16 for a float32 param; or float32 for a
 *                  half param
 *   state_dtype    exp_avg, exp_avg_sq and max_exp_avg_sq: float64 for a float64 param, else
 *                  float32 or bfloat16 (float16 is refused: the second moment underflows it)
 * `master`, when not NULL, holds float32 master weights of a half param: the update is made on
 * the master and the param receives it rounded to nearest even (the param is only written).
 * `index` is the tensor's number in stochastic rounding's counter (TP_ADAM_STOCHASTIC_ROUNDING). */
typedef struct {
    void *param;
    const void *grad;
    void *exp_avg;
    void *exp_avg_sq;
    void *max_exp_avg_sq; /* NULL unless TP_ADAM_AMSGRAD */
    float *master;
    int64_t numel;
    int64_t index;
    int32_t dtype;
    int32_t grad_dtype;
    int32_t state_dtype;
    int32_t reserved; /* 0 */
} tp_adam_tensor;

#define TP_ADAM_DECOUPLED 1  /* AdamW: p *= 1 - lr*wd instead of g += wd*p */
#define TP_ADAM_AMSGRAD 2
#define TP_ADAM_MAXIMIZE 4
#define TP_ADAM_GRAD_SCALE 8 /* grads are divided by grad_scale; a non-finite result skips the step */
/* Half params without a master are written rounded stochastically (keyed by seed, step,
 * tensor index and element index; docs/mixed_precision.md), not to nearest even. */
#define TP_ADAM_STOCHASTIC_ROUNDING 16

/* Update `count` tensors in place with the operation order of torch.optim.Adam, in float32
 * arithmetic (float64 for float64 params). *found_inf is set to 1 (and nothing is written) when
 * TP_ADAM_GRAD_SCALE is set and any unscaled gradient is NaN or Inf, or beyond the finite range
 * of its own dtype (a half grad that overflows when unscaled); otherwise to 0. `seed` keys
 * TP_ADAM_STOCHASTIC_ROUNDING. */
int tp_adam_step(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                 double beta1, double beta2, double eps, double weight_decay, double grad_scale,
                 int32_t flags, uint64_t seed, int32_t *found_inf);

/* tp_adam_step for a table built by a caller that has raw pointers (e.g. from torch tensors'
 * data_ptr()): first checks that every buffer is aligned to its element type and that no
 * written buffer overlaps any other one (TP_ERR_ARGUMENT otherwise; nothing is written).
 * `spans` is a workspace of 12*count entries. */
int tp_adam_step_checked(const tp_adam_tensor *tensors, int64_t count, tp_span *spans,
                         int64_t step, double lr, double beta1, double beta2, double eps,
                         double weight_decay, double grad_scale, int32_t flags,
                         uint64_t seed, int32_t *found_inf);

/* *found_inf = 1 when any grad / grad_scale (divided in float32, float64 for float64 grads) is
 * NaN or Inf or beyond its dtype's finite range, else 0:
 * the check tp_adam_step makes under TP_ADAM_GRAD_SCALE, for a caller that splits one step
 * into several calls and must decide before the first one writes. Reads the grads only. */
int tp_adam_found_inf(const tp_adam_tensor *tensors, int64_t count, double grad_scale,
                      int32_t *found_inf);

/* tp_adam_step with one named instruction-set variant (TP_ISA_*), for tests and benchmarks. */
int tp_adam_step_isa(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay,
                     double grad_scale, int32_t flags, uint64_t seed, int32_t *found_inf,
                     int isa);
/* cdef: end */

#endif /* TP_ADAM_H */
