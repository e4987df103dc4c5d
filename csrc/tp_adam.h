/* tp_adam.h: fused Adam / AdamW over many tensors in one call (see csrc/adam/). */
#ifndef TP_ADAM_H
#define TP_ADAM_H

/* cdef: begin */
/* One tensor's buffers; all hold `numel` elements of `dtype` (TP_FLOAT32 or TP_FLOAT64). */
typedef struct {
    void *param;
    const void *grad;
    void *exp_avg;
    void *exp_avg_sq;
    void *max_exp_avg_sq; /* NULL unless TP_ADAM_AMSGRAD */
    int64_t numel;
    int32_t dtype;
} tp_adam_tensor;

#define TP_ADAM_DECOUPLED 1  /* AdamW: p *= 1 - lr*wd instead of g += wd*p */
#define TP_ADAM_AMSGRAD 2
#define TP_ADAM_MAXIMIZE 4
#define TP_ADAM_GRAD_SCALE 8 /* grads are divided by grad_scale; a non-finite result skips the step */

/* Update `count` tensors in place with the operation order of torch.optim.Adam.
 * *found_inf is set to 1 (and nothing is written) when TP_ADAM_GRAD_SCALE is set and any
 * unscaled gradient is NaN or Inf; otherwise to 0. */
int tp_adam_step(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                 double beta1, double beta2, double eps, double weight_decay, double grad_scale,
                 int32_t flags, int32_t *found_inf);

/* tp_adam_step for a table built by a caller that has raw pointers (e.g. from torch tensors'
 * data_ptr()): first checks that every buffer is aligned to its element type and that no
 * written buffer overlaps any other one (TP_ERR_ARGUMENT otherwise; nothing is written).
 * `spans` is a workspace of 10*count entries. */
int tp_adam_step_checked(const tp_adam_tensor *tensors, int64_t count, tp_span *spans,
                         int64_t step, double lr, double beta1, double beta2, double eps,
                         double weight_decay, double grad_scale, int32_t flags,
                         int32_t *found_inf);

/* *found_inf = 1 when any grad / grad_scale (divided in the grad's type) is NaN or Inf, else 0:
 * the check tp_adam_step makes under TP_ADAM_GRAD_SCALE, for a caller that splits one step
 * into several calls and must decide before the first one writes. Reads the grads only. */
int tp_adam_found_inf(const tp_adam_tensor *tensors, int64_t count, double grad_scale,
                      int32_t *found_inf);

/* tp_adam_step with one named instruction-set variant (TP_ISA_*), for tests and benchmarks. */
int tp_adam_step_isa(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay,
                     double grad_scale, int32_t flags, int32_t *found_inf, int isa);
/* cdef: end */

#endif /* TP_ADAM_H */
