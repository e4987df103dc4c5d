/* tp_pyargs.h: argument gathering through the CPython buffer protocol (see pyargs.c).
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

typedef struct {
    uintptr_t start, end;
    int32_t writes;
    int32_t pad;
} tp_span;

typedef struct {
    int64_t index;  /* which tensor */
    int32_t role;   /* 0 param, 1 grad, 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq */
    int32_t reason; /* TP_ARG_* */
} tp_arg_problem;

/* Fill `out[0..count)` from four (five with max_exp_avg_sqs) Python lists or tuples of
 * C-contiguous float32/float64 ndarrays, passed as their id(). The grads may be read-only; the
 * rest must be writable; no written buffer may overlap any other. `spans` is a workspace of
 * 5*count entries. Returns TP_OK, or TP_ERR_ARGUMENT with *problem filled. */
int tp_py_gather_adam(uintptr_t ndarray_type, uintptr_t params, uintptr_t grads,
                      uintptr_t exp_avgs, uintptr_t exp_avg_sqs, uintptr_t max_exp_avg_sqs,
                      int64_t count, tp_adam_tensor *out, tp_span *spans,
                      tp_arg_problem *problem);
/* cdef: end */

#endif /* TP_PYARGS_H */
