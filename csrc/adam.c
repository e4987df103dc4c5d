/*
 * adam.c: fused Adam / AdamW, one pass over memory, many tensors per call.
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
 * The per-step scalars are computed once in double and rounded to the element type, as torch does.
 *
 * One body, several compilations: adam_body_* is always inlined into a plain-scalar reference,
 * a baseline build (auto-vectorized for the compiler's default target) and AVX2 / AVX-512
 * builds chosen at run time. The build uses -ffp-contract=off so no variant fuses a multiply
 * and an add: every variant gives the same bits as the scalar reference.
 */
#include <math.h>
#include "common.h"
#include "spans.h"

/* Below this many elements per thread a second thread costs more than it saves. */
#define ADAM_MIN_PER_THREAD 32768
/* Largest work item of a list of tensors (0.5 MiB of each float32 stream); work items are
 * multiples of 16 elements, so two threads never write one cache line. */
#define ADAM_CHUNK ((int64_t)1 << 17)

#define DEFINE_ADAM_CONSTS(T, SUF)                                                          \
    typedef struct {                                                                        \
        T grad_scale, sign, weight_decay, decay, lerp_weight, lerp_weight_c, beta2,         \
            one_minus_beta2, eps, bias_correction2_sqrt, inv_bias_correction2_sqrt,          \
            neg_step_size;                                                                  \
        int scaled, l2, decoupled, lerp_low, amsgrad, fma_div_ok;                           \
    } adam_consts_##SUF;                                                                    \
                                                                                            \
    static void adam_consts_init_##SUF(adam_consts_##SUF *c, double bias_correction1,      \
                                       double bias_correction2, double lr, double beta1,    \
                                       double beta2, double eps, double wd,                 \
                                       double grad_scale, int32_t flags) {                  \
        c->scaled = (flags & TP_ADAM_GRAD_SCALE) != 0;                                      \
        c->grad_scale = (T)(c->scaled ? grad_scale : 1.0);                                  \
        c->sign = (T)((flags & TP_ADAM_MAXIMIZE) ? -1.0 : 1.0);                             \
        c->decoupled = (flags & TP_ADAM_DECOUPLED) != 0;                                    \
        c->l2 = !c->decoupled && wd != 0.0;                                                 \
        c->weight_decay = (T)wd;                                                            \
        c->decay = (T)(1.0 - lr * wd);                                                      \
        /* torch.lerp(m, g, w) = w < 0.5 ? m + w*(g-m) : g - (g-m)*(1-w), 1-w in T */          \
        c->lerp_weight = (T)(1.0 - beta1);                                                  \
        c->lerp_weight_c = (T)1 - c->lerp_weight;                                           \
        c->lerp_low = fabs((double)c->lerp_weight) < 0.5;                                   \
        c->beta2 = (T)beta2;                                                                \
        c->one_minus_beta2 = (T)(1.0 - beta2);                                              \
        c->eps = (T)eps;                                                                    \
        c->bias_correction2_sqrt = (T)sqrt(bias_correction2);                               \
        c->inv_bias_correction2_sqrt = (T)1 / c->bias_correction2_sqrt;                     \
        /* adam_f32_avx2_fma's division needs a normal divisor far from underflow */        \
        c->fma_div_ok = c->bias_correction2_sqrt >= (T)0x1p-60                              \
                        && c->bias_correction2_sqrt <= (T)1;                                \
        c->neg_step_size = (T)(-(lr / bias_correction1));                                   \
        c->amsgrad = (flags & TP_ADAM_AMSGRAD) != 0;                                        \
    }

/* The body, written once per element type and inlined into each variant. Options that only
 * change arithmetic cheaply are selects on loop invariants (the vectorizer keeps them
 * branch-free, computing both sides). Two are compile-time parameters instead: amsgrad, which
 * adds a fourth stream, so the common loop carries no conditional load or store; and the grad
 * scale, whose division would otherwise be paid on every step (a third of the arithmetic). */
#define DEFINE_ADAM_BODY(T, SUF, SQRT)                                                      \
    TP_ALWAYS_INLINE void adam_body_##SUF(const adam_consts_##SUF *c, T *TP_RESTRICT p,     \
                                          const T *TP_RESTRICT gr, T *TP_RESTRICT m,        \
                                          T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n, \
                                          const int amsgrad, const int scaled) {            \
        const adam_consts_##SUF k = *c;                                                     \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T g = gr[i];                                                                    \
            if (scaled) g = g / k.grad_scale;                                               \
            g = g * k.sign;                                                                 \
            T pi = p[i];                                                                    \
            pi = k.decoupled ? pi * k.decay : pi;                                           \
            g = k.l2 ? g + k.weight_decay * pi : g;                                         \
            T mi = m[i];                                                                    \
            mi = k.lerp_low ? mi + k.lerp_weight * (g - mi) : g - (g - mi) * k.lerp_weight_c; \
            T vi = v[i] * k.beta2 + (k.one_minus_beta2 * g) * g;                            \
            m[i] = mi;                                                                      \
            v[i] = vi;                                                                      \
            if (amsgrad) {                                                                  \
                T mx = vmax[i];                                                             \
                /* torch.maximum: NaN wins from either side */                              \
                mx = (mx < vi || vi != vi) ? vi : mx;                                       \
                vmax[i] = mx;                                                               \
                vi = mx;                                                                    \
            }                                                                               \
            T denom = SQRT(vi) / k.bias_correction2_sqrt + k.eps;                           \
            p[i] = pi + (k.neg_step_size * mi) / denom;                                     \
        }                                                                                   \
    }

#define DEFINE_ADAM_VARIANT(T, SUF, NAME, ATTRS)                                            \
    ATTRS static void adam_##SUF##_##NAME(const adam_consts_##SUF *c, T *TP_RESTRICT p,     \
                                          const T *TP_RESTRICT g, T *TP_RESTRICT m,         \
                                          T *TP_RESTRICT v, T *TP_RESTRICT vmax, int64_t n) { \
        if (vmax && c->scaled)                                                              \
            adam_body_##SUF(c, p, g, m, v, vmax, n, 1, 1);                                  \
        else if (vmax)                                                                      \
            adam_body_##SUF(c, p, g, m, v, vmax, n, 1, 0);                                  \
        else if (c->scaled)                                                                 \
            adam_body_##SUF(c, p, g, m, v, vmax, n, 0, 1);                                  \
        else                                                                                \
            adam_body_##SUF(c, p, g, m, v, vmax, n, 0, 0);                                  \
    }

#define DEFINE_ADAM_FAMILY(T, SUF, SQRT)                                                    \
    DEFINE_ADAM_CONSTS(T, SUF)                                                              \
    DEFINE_ADAM_BODY(T, SUF, SQRT)                                                          \
    DEFINE_ADAM_VARIANT(T, SUF, scalar, TP_NO_VECTORIZE)                                    \
    DEFINE_ADAM_VARIANT(T, SUF, baseline, )

DEFINE_ADAM_FAMILY(float, f32, sqrtf)
DEFINE_ADAM_FAMILY(double, f64, sqrt)

#if TP_HAVE_X86_VARIANTS
DEFINE_ADAM_VARIANT(float, f32, avx2, TP_TARGET_AVX2)
DEFINE_ADAM_VARIANT(float, f32, avx512, TP_TARGET_AVX512)
DEFINE_ADAM_VARIANT(double, f64, avx2, TP_TARGET_AVX2)
DEFINE_ADAM_VARIANT(double, f64, avx512, TP_TARGET_AVX512)
#endif

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>

/* Elements ahead that the AVX2 loop prefetches its four input streams, one line each per 16
 * elements: with four streams read and three written per thread, the hardware prefetcher alone
 * left DRAM-sized steps a few percent short (16M: 0.96-0.97x torch without, 1.00-1.03x with,
 * side by side; 1024 ahead did worse). */
#define ADAM_PREFETCH_AHEAD 256

/* The float32 body, hand-written for AVX2 + FMA, for CPUs whose vector divider bounds the loop
 * (one sqrt and two divisions per element). It divides by the bias correction without the
 * divider (Markstein): q0 = root * y is within an ulp of the quotient, the residual
 * e = q0*c - root is exact, and with y = RN(1/c), q0 - e*y rounds to the IEEE quotient. So the
 * bits are adam_body_f32's (the tests hold every variant to the scalar reference, and check
 * the division itself on every significand); only the divider's load drops by a third.
 * Written so that a zero root keeps its sign; an Inf root makes e NaN, which is zeroed so q0
 * (= Inf) passes; a NaN root stays NaN through q0. GCC does not vectorize this from C: the
 * FMA builtins stay calls in the generic body, and a loop with calls and branches is not
 * if-converted. Whole vectors only; the caller runs the tail through the generic body. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE void adam_f32_avx2_fma_body(
    const adam_consts_f32 *c, float *TP_RESTRICT p, const float *TP_RESTRICT gr,
    float *TP_RESTRICT m, float *TP_RESTRICT v, float *TP_RESTRICT vmax, int64_t n,
    const int scaled, const int negate, const int decoupled, const int l2, const int lerp_low) {
    const __m256 grad_scale = _mm256_set1_ps(c->grad_scale), sign = _mm256_set1_ps(c->sign);
    const __m256 decay = _mm256_set1_ps(c->decay), wd = _mm256_set1_ps(c->weight_decay);
    const __m256 lw = _mm256_set1_ps(c->lerp_weight), lwc = _mm256_set1_ps(c->lerp_weight_c);
    const __m256 beta2 = _mm256_set1_ps(c->beta2), omb2 = _mm256_set1_ps(c->one_minus_beta2);
    const __m256 bc = _mm256_set1_ps(c->bias_correction2_sqrt);
    const __m256 y = _mm256_set1_ps(c->inv_bias_correction2_sqrt);
    const __m256 eps = _mm256_set1_ps(c->eps), nss = _mm256_set1_ps(c->neg_step_size);
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        if (((i + ADAM_PREFETCH_AHEAD) & 15) == 0 && i + ADAM_PREFETCH_AHEAD < n) {
            _mm_prefetch((const char *)(gr + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(p + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(m + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(v + i + ADAM_PREFETCH_AHEAD), _MM_HINT_T0);
        }
        __m256 g = _mm256_loadu_ps(gr + i);
        if (scaled) g = _mm256_div_ps(g, grad_scale);
        if (negate) g = _mm256_mul_ps(g, sign);
        __m256 pi = _mm256_loadu_ps(p + i);
        if (decoupled) pi = _mm256_mul_ps(pi, decay);
        if (l2) g = _mm256_add_ps(g, _mm256_mul_ps(wd, pi));
        __m256 mi = _mm256_loadu_ps(m + i);
        mi = lerp_low ? _mm256_add_ps(mi, _mm256_mul_ps(lw, _mm256_sub_ps(g, mi)))
                         : _mm256_sub_ps(g, _mm256_mul_ps(_mm256_sub_ps(g, mi), lwc));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), beta2),
                                  _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        if (vmax) { /* torch.maximum: NaN wins from either side */
            __m256 mx = _mm256_loadu_ps(vmax + i);
            __m256 take = _mm256_or_ps(_mm256_cmp_ps(mx, vi, _CMP_LT_OQ), _mm256_cmp_ps(vi, vi, _CMP_UNORD_Q));
            vi = _mm256_blendv_ps(mx, vi, take);
            _mm256_storeu_ps(vmax + i, vi);
        }
        __m256 root = _mm256_sqrt_ps(vi);
        __m256 q0 = _mm256_mul_ps(root, y);
        __m256 e = _mm256_fmsub_ps(q0, bc, root);
        e = _mm256_and_ps(e, _mm256_cmp_ps(e, e, _CMP_ORD_Q));
        __m256 denom = _mm256_add_ps(_mm256_fnmadd_ps(e, y, q0), eps);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(nss, mi), denom)));
    }
}

/* The common options get a body of their own, with no test of an option inside the loop.
 * Read per iteration from the constants, the options cost eight branches per 8 elements, and
 * on a CPU that splits 256-bit operations in two the loop is bound by issue as much as by the
 * divider (4096 elements in L1: 17.5 -> 15.6 TSC cycles per 8; 1M elements, 2 threads:
 * 1.60e9 -> 1.69e9 elements/s). Any other mix of options runs the same body with the options
 * as run-time values. */
TP_TARGET_AVX2 static void adam_f32_avx2_fma(const adam_consts_f32 *c, float *TP_RESTRICT p,
                                             const float *TP_RESTRICT gr, float *TP_RESTRICT m,
                                             float *TP_RESTRICT v, float *TP_RESTRICT vmax,
                                             int64_t n) {
    const int negate = c->sign != 1.0f;
    if (!vmax && !c->scaled && !negate && c->lerp_low) {
        if (c->decoupled) /* AdamW */
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 1, 0, 1);
        else if (c->l2) /* Adam with weight decay */
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 0, 1, 1);
        else
            adam_f32_avx2_fma_body(c, p, gr, m, v, NULL, n, 0, 0, 0, 0, 1);
        return;
    }
    adam_f32_avx2_fma_body(c, p, gr, m, v, vmax, n, c->scaled, negate, c->decoupled, c->l2,
                           c->lerp_low);
}
#endif

typedef struct {
    adam_consts_f32 f32;
    adam_consts_f64 f64;
    int isa;
} adam_plan;

/* Update elements [lo, hi) of one tensor with the plan's variant. */
static void adam_run(const adam_plan *plan, const tp_adam_tensor *t, int64_t lo, int64_t hi) {
    int64_t n = hi - lo;
    if (n <= 0) return;
    if (t->dtype == TP_FLOAT32) {
        float *p = (float *)t->param + lo, *m = (float *)t->exp_avg + lo;
        float *v = (float *)t->exp_avg_sq + lo;
        const float *g = (const float *)t->grad + lo;
        float *vmax = plan->f32.amsgrad ? (float *)t->max_exp_avg_sq + lo : NULL;
        switch (plan->isa) {
            case TP_ISA_SCALAR: adam_f32_scalar(&plan->f32, p, g, m, v, vmax, n); return;
#if TP_HAVE_X86_VARIANTS
            case TP_ISA_AVX2:
                if (plan->f32.fma_div_ok) {
                    int64_t body = n & ~(int64_t)7;
                    adam_f32_avx2_fma(&plan->f32, p, g, m, v, vmax, body);
                    p += body, g += body, m += body, v += body, n -= body;
                    if (vmax) vmax += body;
                }
                adam_f32_avx2(&plan->f32, p, g, m, v, vmax, n);
                return;
            case TP_ISA_AVX512: adam_f32_avx512(&plan->f32, p, g, m, v, vmax, n); return;
#endif
            default: adam_f32_baseline(&plan->f32, p, g, m, v, vmax, n); return;
        }
    } else {
        double *p = (double *)t->param + lo, *m = (double *)t->exp_avg + lo;
        double *v = (double *)t->exp_avg_sq + lo;
        const double *g = (const double *)t->grad + lo;
        double *vmax = plan->f64.amsgrad ? (double *)t->max_exp_avg_sq + lo : NULL;
        switch (plan->isa) {
            case TP_ISA_SCALAR: adam_f64_scalar(&plan->f64, p, g, m, v, vmax, n); return;
#if TP_HAVE_X86_VARIANTS
            case TP_ISA_AVX2: adam_f64_avx2(&plan->f64, p, g, m, v, vmax, n); return;
            case TP_ISA_AVX512: adam_f64_avx512(&plan->f64, p, g, m, v, vmax, n); return;
#endif
            default: adam_f64_baseline(&plan->f64, p, g, m, v, vmax, n); return;
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

/* 1 if any grad / grad_scale is NaN or Inf. x - x is 0 for finite x and NaN otherwise; an
 * integer OR (unlike a float sum) is a reduction the compiler vectorizes without reassociating. */
#define DEFINE_NONFINITE_SCAN(T, SUF)                                                       \
    static int any_nonfinite_##SUF(const T *TP_RESTRICT g, int64_t n, T scale) {            \
        int bad = 0;                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T x = g[i] / scale;                                                             \
            bad |= !(x - x == 0);                                                           \
        }                                                                                   \
        return bad;                                                                         \
    }
DEFINE_NONFINITE_SCAN(float, f32)
DEFINE_NONFINITE_SCAN(double, f64)

static int grads_nonfinite(const adam_plan *plan, const tp_adam_tensor *t, int64_t count,
                           int64_t total) {
    int found = 0;
    int threads = tp_threads_for(total, 4 * ADAM_MIN_PER_THREAD);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(| : found) if (threads > 1)
#endif
    for (int64_t i = 0; i < count; i++) {
        if (t[i].dtype == TP_FLOAT32)
            found |= any_nonfinite_f32((const float *)t[i].grad, t[i].numel, plan->f32.grad_scale);
        else
            found |= any_nonfinite_f64((const double *)t[i].grad, t[i].numel, plan->f64.grad_scale);
    }
    return found;
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
                           TP_ADAM_GRAD_SCALE),
                 TP_ERR_ARGUMENT);
    return TP_OK;
}

int tp_adam_step_isa(const tp_adam_tensor *tensors, int64_t count, int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay,
                     double grad_scale, int32_t flags, int32_t *found_inf, int isa) {
    TP_RETURN_IF(found_inf == NULL || count < 0 || (count > 0 && tensors == NULL), TP_ERR_ARGUMENT);
    *found_inf = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    int status = check_hyper(step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags);
    TP_RETURN_IF(status != TP_OK, status);

    int64_t total = 0;
    for (int64_t i = 0; i < count; i++) {
        const tp_adam_tensor *t = &tensors[i];
        TP_RETURN_IF(t->numel < 0, TP_ERR_ARGUMENT);
        TP_RETURN_IF(t->dtype != TP_FLOAT32 && t->dtype != TP_FLOAT64, TP_ERR_ARGUMENT);
        if (t->numel == 0) continue;
        TP_RETURN_IF(!t->param || !t->grad || !t->exp_avg || !t->exp_avg_sq, TP_ERR_ARGUMENT);
        TP_RETURN_IF((flags & TP_ADAM_AMSGRAD) && !t->max_exp_avg_sq, TP_ERR_ARGUMENT);
        total += t->numel;
    }

    adam_plan plan;
    double bias_correction1 = 1.0 - pow(beta1, (double)step);
    double bias_correction2 = 1.0 - pow(beta2, (double)step);
    adam_consts_init_f32(&plan.f32, bias_correction1, bias_correction2, lr, beta1, beta2, eps,
                         weight_decay, grad_scale, flags);
    adam_consts_init_f64(&plan.f64, bias_correction1, bias_correction2, lr, beta1, beta2, eps,
                         weight_decay, grad_scale, flags);
    plan.isa = isa;

    if ((flags & TP_ADAM_GRAD_SCALE) && grads_nonfinite(&plan, tensors, count, total)) {
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
    chunk = chunk < 16 ? 16 : chunk & ~(int64_t)15;
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
                 int32_t flags, int32_t *found_inf) {
    return tp_adam_step_isa(tensors, count, step, lr, beta1, beta2, eps, weight_decay,
                            grad_scale, flags, found_inf, tp_isa_current());
}

int tp_adam_step_checked(const tp_adam_tensor *tensors, int64_t count, tp_span *spans,
                         int64_t step, double lr, double beta1, double beta2, double eps,
                         double weight_decay, double grad_scale, int32_t flags,
                         int32_t *found_inf) {
    TP_RETURN_IF(found_inf == NULL || count < 0 || (count > 0 && (!tensors || !spans)), TP_ERR_ARGUMENT);
    *found_inf = 0;
    int roles = (flags & TP_ADAM_AMSGRAD) ? 5 : 4;
    for (int64_t i = 0; i < count; i++) {
        const tp_adam_tensor *t = &tensors[i];
        TP_RETURN_IF(t->dtype != TP_FLOAT32 && t->dtype != TP_FLOAT64, TP_ERR_ARGUMENT);
        TP_RETURN_IF(t->numel < 0, TP_ERR_ARGUMENT);
        uintptr_t size = t->dtype == TP_FLOAT32 ? 4 : 8;
        const void *ptrs[5] = {t->param, t->grad, t->exp_avg, t->exp_avg_sq, t->max_exp_avg_sq};
        for (int r = 0; r < 5; r++) {
            tp_span *span = &spans[r * count + i];
            int used = r < roles && t->numel > 0;
            if (used) TP_RETURN_IF(ptrs[r] == NULL || (uintptr_t)ptrs[r] % size, TP_ERR_ARGUMENT);
            span->start = used ? (uintptr_t)ptrs[r] : 0;
            span->end = used ? span->start + (uintptr_t)t->numel * size : 0;
            span->writes = used && r != 1;
        }
    }
    TP_RETURN_IF(!tp_spans_disjoint(spans, 5 * count, spans + 5 * count), TP_ERR_ARGUMENT);
    return tp_adam_step(tensors, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
                        flags, found_inf);
}
