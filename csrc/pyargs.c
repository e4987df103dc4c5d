/*
 * pyargs.c: gathers the pointers of many NumPy arrays in one call.
 *
 * Why this exists: a fused multi-tensor step promises one native call for a whole list of
 * tensors, and a model's biases and norms make lists of hundreds of small arrays. Taking each
 * pointer from Python (ffi.from_buffer, ~1 us each) or through the buffer protocol (~0.2 us)
 * would cost more than the update itself, so the lists are handed over by id() and each
 * array's fields are read directly (NumPy's stable struct layout, header-only: no NumPy C-API
 * table is needed), a few nanoseconds per array. Only checks live here; the exception text
 * is worded by the Python layer, which re-runs its own checks when this reports a problem.
 */
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/ndarraytypes.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "tp_pyargs.h"
#include "spans.h"

#define ROLES 6 /* param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master */

static int report(tp_arg_problem *problem, int64_t index, int role, int reason) {
    problem->index = index;
    problem->role = role;
    problem->reason = reason;
    return TP_ERR_ARGUMENT;
}

static PyObject *item(PyObject *seq, int64_t i) {
    return PyList_Check(seq) ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
}

/* The TP_FLOAT* code of a NumPy type number, or -1. */
static int32_t dtype_code(int type, int bfloat16) {
    if (type == NPY_FLOAT) return TP_FLOAT32;
    if (type == NPY_DOUBLE) return TP_FLOAT64;
    if (type == NPY_HALF) return TP_FLOAT16;
    if (type == bfloat16) return TP_BFLOAT16;
    return -1;
}

/* 0, or the TP_ARG_* reason why role r's type does not go with the param's (tp_adam.h). */
static int type_problem(int r, int32_t type, int32_t param, int32_t state) {
    int half_param = param == TP_FLOAT16 || param == TP_BFLOAT16;
    switch (r) {
    case 1: /* grad */
        if (type == param) return 0;
        if (param == TP_FLOAT32 && (type == TP_FLOAT16 || type == TP_BFLOAT16)) return 0;
        if (half_param && type == TP_FLOAT32) return 0;
        return TP_ARG_DTYPE_MISMATCH;
    case 2: case 3: case 4: /* states: one type per tensor */
        if (param == TP_FLOAT64) return type == TP_FLOAT64 ? 0 : TP_ARG_DTYPE_MISMATCH;
        if (type == TP_FLOAT16) return TP_ARG_STATE_F16;
        if (type != TP_FLOAT32 && type != TP_BFLOAT16) return TP_ARG_DTYPE_MISMATCH;
        return r == 2 || type == state ? 0 : TP_ARG_DTYPE_MISMATCH;
    case 5: /* master */
        if (!half_param) return TP_ARG_MASTER_UNUSED;
        return type == TP_FLOAT32 ? 0 : TP_ARG_DTYPE_MISMATCH;
    default:
        return 0;
    }
}

/* Fill the table from the lists; GIL held. */
static int gather(PyTypeObject *ndarray, int bfloat16, PyObject *lists[ROLES],
                  const int64_t *indices, int64_t count, tp_adam_tensor *out, tp_span *spans,
                  tp_arg_problem *problem) {
    for (int r = 0; r < ROLES; r++) {
        PyObject *seq = lists[r];
        if (!seq) continue;
        Py_ssize_t len = PyList_Check(seq) ? PyList_GET_SIZE(seq)
                         : PyTuple_Check(seq) ? PyTuple_GET_SIZE(seq) : -1;
        if (len != count) return report(problem, -1, r, TP_ARG_LENGTH_MISMATCH);
    }
    for (int64_t i = 0; i < count; i++) {
        PyArrayObject *param = NULL;
        void *ptrs[ROLES] = {NULL, NULL, NULL, NULL, NULL, NULL};
        int32_t types[ROLES] = {0, 0, 0, 0, 0, 0};
        int64_t numel = 1;
        for (int r = 0; r < ROLES; r++) {
            tp_span *span = &spans[r * count + i];
            span->start = span->end = 0;
            span->writes = 0;
            if (!lists[r]) continue;
            PyObject *obj = item(lists[r], i);
            if (r == 5 && obj == Py_None) continue; /* this param has no master */
            /* Exactly ndarray: the Python layer views subclasses as plain arrays (or refuses
             * masked arrays) and calls again, so both backends see the same arrays. */
            if (Py_TYPE(obj) != ndarray) return report(problem, i, r, TP_ARG_NOT_ARRAY);
            PyArrayObject *a = (PyArrayObject *)obj;
            int flags = PyArray_FLAGS(a);
            types[r] = dtype_code(PyArray_TYPE(a), bfloat16);
            if (types[r] < 0 || !PyArray_ISNOTSWAPPED(a)) return report(problem, i, r, TP_ARG_BAD_DTYPE);
            if (r == 0) {
                param = a;
                for (int d = 0; d < PyArray_NDIM(a); d++) numel *= PyArray_DIMS(a)[d];
            } else {
                int why = type_problem(r, types[r], types[0], types[2]);
                if (why) return report(problem, i, r, why);
                /* A 0-d array's dims pointer may be NULL, which memcmp may not be given even
                 * for 0 bytes (UBSan), so the comparison runs only for ndim > 0. */
                if (PyArray_NDIM(a) != PyArray_NDIM(param) ||
                    (PyArray_NDIM(a) > 0 &&
                     memcmp(PyArray_DIMS(a), PyArray_DIMS(param), sizeof(npy_intp) * (size_t)PyArray_NDIM(a))))
                    return report(problem, i, r, TP_ARG_SHAPE_MISMATCH);
            }
            if (!(flags & NPY_ARRAY_C_CONTIGUOUS)) return report(problem, i, r, TP_ARG_NOT_CONTIGUOUS);
            if (!(flags & NPY_ARRAY_ALIGNED)) return report(problem, i, r, TP_ARG_MISALIGNED);
            if (r != 1 && !(flags & NPY_ARRAY_WRITEABLE)) return report(problem, i, r, TP_ARG_READ_ONLY);
            ptrs[r] = PyArray_DATA(a);
            /* Role-major order keeps each role's (usually ascending) addresses together. An
             * empty array gets the empty span [0, 0), which overlaps nothing. */
            if (numel > 0) {
                span->start = (uintptr_t)ptrs[r];
                span->end = span->start + (uintptr_t)numel * (types[r] == TP_FLOAT64 ? 8u : types[r] == TP_FLOAT32 ? 4u : 2u);
                span->writes = r != 1;
            }
        }
        out[i].param = ptrs[0];
        out[i].grad = ptrs[1];
        out[i].exp_avg = ptrs[2];
        out[i].exp_avg_sq = ptrs[3];
        out[i].max_exp_avg_sq = ptrs[4];
        out[i].master = (float *)ptrs[5];
        out[i].numel = numel;
        out[i].index = indices ? indices[i] : i;
        out[i].dtype = types[0];
        out[i].grad_dtype = types[1];
        out[i].state_dtype = types[2];
        out[i].reserved = 0;
    }
    int64_t n_spans = (int64_t)ROLES * count;
    if (!tp_spans_disjoint(spans, n_spans, spans + n_spans)) return report(problem, -1, -1, TP_ARG_OVERLAP);
    return TP_OK;
}

int tp_py_adam_step(uintptr_t ndarray_type, int bfloat16, uintptr_t params, uintptr_t grads,
                    uintptr_t exp_avgs, uintptr_t exp_avg_sqs, uintptr_t max_exp_avg_sqs,
                    uintptr_t masters, const int64_t *indices, int64_t count,
                    tp_adam_tensor *table, tp_span *spans, tp_arg_problem *problem,
                    int64_t step, double lr, double beta1, double beta2, double eps,
                    double weight_decay, double grad_scale, int32_t flags, uint64_t seed,
                    int32_t *found_inf, int isa) {
    if (!ndarray_type || !params || !grads || !exp_avgs || !exp_avg_sqs || count < 0 ||
        !problem || !found_inf || (count > 0 && (!table || !spans)))
        return TP_ERR_ARGUMENT;
    problem->reason = 0;
    /* cffi released the GIL around this call; reading the Python objects needs it back. The
     * caller holds references to every array until we return, so the pointers stay valid
     * after the GIL is given up again for the update. */
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *lists[ROLES] = {(PyObject *)params, (PyObject *)grads, (PyObject *)exp_avgs,
                              (PyObject *)exp_avg_sqs, (PyObject *)max_exp_avg_sqs,
                              (PyObject *)masters};
    int status = gather((PyTypeObject *)ndarray_type, bfloat16, lists, indices, count, table,
                        spans, problem);
    PyGILState_Release(gil);
    if (status != TP_OK) return status;
    return tp_adam_step_isa(table, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
                            flags, seed, found_inf, isa < 0 ? tp_isa_current() : isa);
}
