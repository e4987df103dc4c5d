/*
 * step.c: the public Adam entries: argument checks, the per-step constants, the found-inf scan,
 * threads over the virtual concatenation of all tensors, and dispatch to one variant.
 *
 * Per element, in torch.optim.Adam's order (single-tensor path, float32 math for float32 data):
 *   g = grad / grad_scale            (TP_ADAM_GRAD_SCALE)
 *   g = -g                           (TP_ADAM_MAXIMIZE)
 *   p = p * (1 - lr*wd)              (TP_ADAM_DECOUPLED, AdamW)   or   g = g + wd*p   (Adam, wd != 0)
 *   m = lerp(m, g, 1 - beta1)        (torch's lerp: two formulas depending on the weight)
 *   v = v*beta2 + ((1 - beta2)*g)*g
 *   vmax = max(vmax, v)              (TP_ADAM_AMSGRAD; the denominator then uses vmax)
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
 *   p = p + ((-lr / (1 - beta1^t)) * m) / denom
 * ref.c spells this out; variants.c and x86_avx2.c are the fast forms with the same bits.
 *
 * A tensor whose buffers are not all float32 (or all float64) runs the mixed-precision kernel
 * (mixed_ref.c, mixed_body.h): the same update in float32 on values read exactly from
 * bfloat16 / float16, each written value rounded once.
 */
#include "adam_internal.h"
#include "spans.h"

/* Below this many elements per thread a second thread costs more than it saves. */
#define ADAM_MIN_PER_THREAD 32768
/* Largest work item of a list of tensors (0.5 MiB of each float32 stream); work items are
 * multiples of 32 elements, so two threads never write one cache line, even of 16-bit data. */
#define ADAM_CHUNK ((int64_t)1 << 17)
/* From this many elements in a call (28 bytes each in the offload step: 112 MiB) its data
 * has left the caches, and a param that is only written may bypass them (adam_mixed_slice). */
#define ADAM_STREAM_MIN ((int64_t)1 << 22)

typedef struct {
    adam_consts_f32 f32;
    adam_consts_f64 f64;
    adam_kernel_f32 kernel_f32;
    adam_kernel_f64 kernel_f64;
    adam_kernel_mixed kernel_mixed;
    uint64_t seed, step;
    int stochastic;
    int large; /* at least ADAM_STREAM_MIN elements in the call */
} adam_plan;

static int64_t dtype_size(int32_t dtype) {
    return dtype == TP_FLOAT64 ? 8 : dtype == TP_FLOAT32 ? 4 : 2;
}

/* 1 if the tensor's types are a combination the step accepts (tp_adam.h). */
static int types_ok(const tp_adam_tensor *t) {
    int32_t p = t->dtype, g = t->grad_dtype, s = t->state_dtype;
    if (t->reserved != 0) return 0;
    if (p == TP_FLOAT64) return g == TP_FLOAT64 && s == TP_FLOAT64 && !t->master;
    if (s != TP_FLOAT32 && s != TP_BFLOAT16) return 0;
    if (p == TP_FLOAT32)
        return (g == TP_FLOAT32 || g == TP_BFLOAT16 || g == TP_FLOAT16) && !t->master;
    return (p == TP_BFLOAT16 || p == TP_FLOAT16) && (g == p || g == TP_FLOAT32);
}

static int all_f32(const tp_adam_tensor *t) {
    return t->dtype == TP_FLOAT32 && t->grad_dtype == TP_FLOAT32 &&
           t->state_dtype == TP_FLOAT32;
}

/* Elements [lo, lo + n) of a mixed tensor, with lo and lo + n in one 2^32-element span. */
static void adam_run_mixed(const adam_plan *plan, const tp_adam_tensor *t, int64_t lo, int64_t n) {
    int64_t ssize = dtype_size(t->state_dtype);
    adam_mixed_slice s;
    s.p = (char *)t->param + lo * dtype_size(t->dtype);
    s.g = (const char *)t->grad + lo * dtype_size(t->grad_dtype);
    s.m = (char *)t->exp_avg + lo * ssize;
    s.v = (char *)t->exp_avg_sq + lo * ssize;
    s.vmax = plan->f32.amsgrad ? (char *)t->max_exp_avg_sq + lo * ssize : NULL;
    s.master = t->master ? t->master + lo : NULL;
    s.ptype = t->dtype;
    s.gtype = t->grad_dtype;
    s.stype = t->state_dtype;
    s.stochastic = plan->stochastic && t->dtype != TP_FLOAT32 && !t->master;
    s.key = s.stochastic ? tp_sr_key(plan->seed, plan->step, (uint64_t)t->index, (uint64_t)lo >> 32) : 0;
    s.first = (uint32_t)lo;
    s.stream_param = plan->large && t->master != NULL;
    plan->kernel_mixed(&plan->f32, &s, n);
}

/* Update elements [lo, hi) of one tensor with the plan's variant. */
static void adam_run(const adam_plan *plan, const tp_adam_tensor *t, int64_t lo, int64_t hi) {
    int64_t n = hi - lo;
    if (n <= 0) return;
    if (all_f32(t) && !t->master) {
        float *vmax = plan->f32.amsgrad ? (float *)t->max_exp_avg_sq + lo : NULL;
        plan->kernel_f32(&plan->f32, (float *)t->param + lo, (const float *)t->grad + lo,
                         (float *)t->exp_avg + lo, (float *)t->exp_avg_sq + lo, vmax, n);
    } else if (t->dtype == TP_FLOAT64) {
        double *vmax = plan->f64.amsgrad ? (double *)t->max_exp_avg_sq + lo : NULL;
        plan->kernel_f64(&plan->f64, (double *)t->param + lo, (const double *)t->grad + lo,
                         (double *)t->exp_avg + lo, (double *)t->exp_avg_sq + lo, vmax, n);
    } else {
        /* split where the stochastic-rounding key changes (every 2^32 elements) */
        while (n > 0) {
            int64_t span_end = ((lo >> 32) + 1) << 32;
            int64_t part = span_end - lo < n ? span_end - lo : n;
            adam_run_mixed(plan, t, lo, part);
            lo += part, n -= part;
        }
    }
}

/* Update elements [lo, hi) of the virtual concatenation of all tensors. */
static void adam_run_range(const adam_plan *plan, const tp_adam_tensor *t, int64_t count,
                           int64_t lo, int64_t hi) {
    int64_t offset = 0;
    for (int64_t i = 0; i < count && offset < hi; i++) {
        int64_t n = t[i].numel;
        int64_t a = lo > offset ? lo - offset : 0;
        int64_t b = hi - offset < n ? hi - offset : n;
        if (a < b) adam_run(plan, &t[i], a, b);
        offset += n;
    }
}

/* 1 if any grad / grad_scale (in the grad's type, as the update divides) is NaN or Inf. */
static int grads_nonfinite(const tp_adam_tensor *t, int64_t count, int64_t total,
                           double grad_scale) {
    int found = 0;
    int threads = tp_threads_for(total, 4 * ADAM_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(| : found) if (threads > 1)
#endif
    for (int64_t i = 0; i < count; i++) {
        if (t[i].numel == 0) continue;
        if (t[i].grad_dtype == TP_FLOAT32)
            found |= adam_any_nonfinite_f32((const float *)t[i].grad, t[i].numel, (float)grad_scale);
        else if (t[i].grad_dtype == TP_FLOAT64)
            found |= adam_any_nonfinite_f64((const double *)t[i].grad, t[i].numel, grad_scale);
        else
            found |= adam_any_nonfinite_half((const uint16_t *)t[i].grad, t[i].numel,
                                             (float)grad_scale, t[i].grad_dtype);
    }
    return found;
}

int tp_adam_found_inf(const tp_adam_tensor *tensors, int64_t count, double grad_scale,
                      int32_t *found_inf) {
    TP_RETURN_IF(found_inf == NULL || count < 0 || (count > 0 && tensors == NULL), TP_ERR_ARGUMENT);
    *found_inf = 0;
    TP_RETURN_IF(!isfinite(grad_scale) || grad_scale == 0.0, TP_ERR_ARGUMENT);
    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) {
        TP_RETURN_IF(tensors[i].numel < 0, TP_ERR_ARGUMENT);
        TP_RETURN_IF(!types_ok(&tensors[i]), TP_ERR_ARGUMENT);
        TP_RETURN_IF(tensors[i].numel > 0 && tensors[i].grad == NULL, TP_ERR_ARGUMENT);
        total += tensors[i].numel;
    }
    *found_inf = grads_nonfinite(tensors, count, total, grad_scale);
    return TP_OK;
}

static int check_hyper(int64_t step, double lr, double beta1, double beta2, double eps,
                       double wd, double grad_scale, int32_t flags) {
    TP_RETURN_IF(step < 1, TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(lr >= 0.0) || !isfinite(lr), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(beta1 >= 0.0 && beta1 < 1.0), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(beta2 >= 0.0 && beta2 < 1.0), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(eps >= 0.0) || !isfinite(eps), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(wd >= 0.0) || !isfinite(wd), TP_ERR_ARGUMENT);
    if (flags & TP_ADAM_GRAD_SCALE)
        TP_RETURN_IF(!isfinite(grad_scale) || grad_scale == 0.0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(flags & ~(TP_ADAM_DECOUPLED | TP_ADAM_AMSGRAD | TP_ADAM_MAXIMIZE |
                           TP_ADAM_GRAD_SCALE | TP_ADAM_STOCHASTIC_ROUNDING),
                 TP_ERR_ARGUMENT);
    return TP_OK;
}

int tp_adam_step_isa(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay,
                     double grad_scale, int32_t flags, uint64_t seed, int32_t *found_inf,
                     int isa) {
    TP_RETURN_IF(found_inf == NULL || count < 0 || (count > 0 && tensors == NULL), TP_ERR_ARGUMENT);
    *found_inf = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    int status = check_hyper(step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags);
    TP_RETURN_IF(status != TP_OK, status);

    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) {
        const tp_adam_tensor *t = &tensors[i];
        TP_RETURN_IF(t->numel < 0, TP_ERR_ARGUMENT);
        TP_RETURN_IF(!types_ok(t), TP_ERR_ARGUMENT);
        if (t->numel == 0) continue;
        TP_RETURN_IF(!t->param || !t->grad || !t->exp_avg || !t->exp_avg_sq, TP_ERR_ARGUMENT);
        TP_RETURN_IF((flags & TP_ADAM_AMSGRAD) && !t->max_exp_avg_sq, TP_ERR_ARGUMENT);
        total += t->numel;
    }

    adam_plan plan;
    plan.kernel_f32 = TP_PICK(ADAM_F32, isa);
    plan.kernel_f64 = TP_PICK(ADAM_F64, isa);
    plan.kernel_mixed = TP_PICK(ADAM_MIXED, isa);
    plan.seed = seed;
    plan.step = (uint64_t)step;
    plan.stochastic = (flags & TP_ADAM_STOCHASTIC_ROUNDING) != 0;
    plan.large = total >= ADAM_STREAM_MIN;
    double bias_correction1 = 1.0 - pow(beta1, (double)step);
    double bias_correction2 = 1.0 - pow(beta2, (double)step);
    adam_consts_init_f32(&plan.f32, bias_correction1, bias_correction2, lr, beta1, beta2, eps,
                         weight_decay, grad_scale, flags);
    adam_consts_init_f64(&plan.f64, bias_correction1, bias_correction2, lr, beta1, beta2, eps,
                         weight_decay, grad_scale, flags);
    /* The FMA variants divide by the bias correction without the divider, which needs it in
     * [2^-60, 1]: always so for beta2 in [0, 1) (it is at least 1 - beta2 >= 2^-53), but
     * should it fail, the baseline variant divides. */
    if (!plan.f32.fma_div_ok && isa > TP_ISA_BASELINE) plan.kernel_mixed = TP_PICK(ADAM_MIXED, TP_ISA_BASELINE);

    if ((flags & TP_ADAM_GRAD_SCALE) && grads_nonfinite(tensors, count, total, grad_scale)) {
        *found_inf = 1;
        return TP_OK;
    }

    int threads = tp_threads_for(total, ADAM_MIN_PER_THREAD);
    if (threads <= 1) {
        adam_run_range(&plan, tensors, count, 0, total);
        return TP_OK;
    }
#ifdef _OPENMP
    /* Chunks of the virtual concatenation of all tensors, across tensor borders. One tensor
     * splits evenly: one contiguous chunk per thread streams best. A list is handed out in
     * smaller chunks, dynamically: the thread that meets a run of small tensors (each a few
     * new streams to open) takes fewer chunks, so the threads finish together. A thread's
     * chunks come in increasing order, so its cursor into the list only moves on. */
    int64_t chunk = total / (count == 1 ? threads : 4 * threads);
    if (count > 1 && chunk > ADAM_CHUNK) chunk = ADAM_CHUNK;
    chunk = chunk < 32 ? 32 : chunk & ~(int64_t)31;
    const int64_t chunks = total / chunk; /* the last one also takes the remainder */
#pragma omp parallel num_threads(threads)
    {
        int64_t first = 0, offset = 0; /* this thread's cursor: tensor `first` starts at offset */
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t lo = c * chunk, hi = c == chunks - 1 ? total : lo + chunk;
            while (offset + tensors[first].numel <= lo) offset += tensors[first++].numel;
            adam_run_range(&plan, tensors + first, count - first, lo - offset, hi - offset);
        }
    }
#endif
    return TP_OK;
}

int tp_adam_step(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                 double beta1, double beta2, double eps, double weight_decay, double grad_scale,
                 int32_t flags, uint64_t seed, int32_t *found_inf) {
    return tp_adam_step_isa(tensors, count, step, lr, beta1, beta2, eps, weight_decay,
                            grad_scale, flags, seed, found_inf, tp_isa_current());
}

int tp_adam_step_checked(const tp_adam_tensor *tensors, int64_t count, tp_span *spans,
                         int64_t step, double lr, double beta1, double beta2, double eps,
                         double weight_decay, double grad_scale, int32_t flags,
                         uint64_t seed, int32_t *found_inf) {
    TP_RETURN_IF(found_inf == NULL || count < 0 || (count > 0 && (!tensors || !spans)), TP_ERR_ARGUMENT);
    *found_inf = 0;
    enum { ROLES = 6 }; /* param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master */
    for (int64_t i = 0; i < count; i++) {
        const tp_adam_tensor *t = &tensors[i];
        TP_RETURN_IF(!types_ok(t), TP_ERR_ARGUMENT);
        TP_RETURN_IF(t->numel < 0, TP_ERR_ARGUMENT);
        const void *ptrs[ROLES] = {t->param, t->grad, t->exp_avg, t->exp_avg_sq,
                                   t->max_exp_avg_sq, t->master};
        const int32_t types[ROLES] = {t->dtype, t->grad_dtype, t->state_dtype, t->state_dtype,
                                      t->state_dtype, TP_FLOAT32};
        const int used_roles[ROLES] = {1, 1, 1, 1, (flags & TP_ADAM_AMSGRAD) != 0, t->master != NULL};
        for (int r = 0; r < ROLES; r++) {
            tp_span *span = &spans[r * count + i];
            uintptr_t size = (uintptr_t)dtype_size(types[r]);
            int used = used_roles[r] && t->numel > 0;
            if (used) TP_RETURN_IF(ptrs[r] == NULL || (uintptr_t)ptrs[r] % size, TP_ERR_ARGUMENT);
            span->start = used ? (uintptr_t)ptrs[r] : 0;
            span->end = used ? span->start + (uintptr_t)t->numel * size : 0;
            span->writes = used && r != 1;
        }
    }
    TP_RETURN_IF(!tp_spans_disjoint(spans, ROLES * count, spans + ROLES * count), TP_ERR_ARGUMENT);
    return tp_adam_step(tensors, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
                        flags, seed, found_inf);
}
