/* tp_pyargs.h: argument gathering straight from NumPy arrays (see pyargs.c).
 * Compiled only into the Python extension, never part of the plain C kernels. */
#ifndef TP_PYARGS_H
#define TP_PYARGS_H

/* cdef: begin */
/* What the gatherer found wrong; the Python layer re-checks in Python to word the exception. */
#define TP_ARG_NOT_ARRAY 1
#define TP_ARG_BAD_DTYPE 2
#define TP_ARG_DTYPE_MISMATCH 3
#define TP_ARG_SHAPE_MISMATCH 4
#define TP_ARG_NOT_CONTIGUOUS 5
#define TP_ARG_READ_ONLY 6
#define TP_ARG_OVERLAP 7
#define TP_ARG_LENGTH_MISMATCH 8
#define TP_ARG_MISALIGNED 9
#define TP_ARG_STATE_F16 10 /* float16 optimizer states: refused */
#define TP_ARG_MASTER_UNUSED 11 /* a master for a param that is not half precision */

typedef struct {
    int64_t index;  /* which tensor */
    int32_t role;   /* 0 param, 1 grad, 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq, 5 master */
    int32_t reason; /* TP_ARG_* */
} tp_arg_problem;

/* Gather the arrays of one Adam step and run it, in one call. The lists (params, grads,
 * exp_avgs, exp_avg_sqs, and max_exp_avg_sqs or 0, masters or 0) are Python lists or tuples of
 * NumPy arrays (a master may be None), passed as their id(): aligned, C-contiguous, native byte order, alike in shape
 * per tensor, in the type combinations of tp_adam_tensor (`bfloat16` is the type number NumPy
 * gave ml_dtypes.bfloat16); grads may be read-only, the rest must be writable; no written
 * buffer may overlap any other. `indices` (count entries) numbers the tensors for stochastic
 * rounding, or is NULL for 0..count-1. The checks hold the GIL; the update runs without it.
 * `table` (count entries) and `spans` (12*count) are workspaces. `isa` is a TP_ISA_* variant
 * or -1 for the current one. Returns the status of tp_adam_step, or TP_ERR_ARGUMENT with
 * *problem filled when an array is unfit. */
int tp_py_adam_step(uintptr_t ndarray_type, int bfloat16, uintptr_t params, uintptr_t grads,
                    uintptr_t exp_avgs, uintptr_t exp_avg_sqs, uintptr_t max_exp_avg_sqs,
                    uintptr_t masters, const int64_t *indices, int64_t count,
                    tp_adam_tensor *table, tp_span *spans, tp_arg_problem *problem,
                    int64_t step, double lr, double beta1, double beta2, double eps,
                    double weight_decay, double grad_scale, int32_t flags, uint64_t seed,
                    int32_t *found_inf, int isa);
/* cdef: end */

#endif /* TP_PYARGS_H */
