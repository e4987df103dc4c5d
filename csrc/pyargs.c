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

#define ROLES 5

static int report(tp_arg_problem *problem, int64_t index, int role, int reason) {
    problem->index = index;
    problem->role = role;
    problem->reason = reason;
    return TP_ERR_ARGUMENT;
}

static PyObject *item(PyObject *seq, int64_t i) {
    return PyList_Check(seq) ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
}

/* Fill the table from the lists; GIL held. */
static int gather(PyTypeObject *ndarray, PyObject *lists[ROLES], int64_t count,
                  tp_adam_tensor *out, tp_span *spans, tp_arg_problem *problem) {
    int roles = lists[4] ? ROLES : ROLES - 1;
    for (int r = 0; r < roles; r++) {
        PyObject *seq = lists[r];
        Py_ssize_t len = PyList_Check(seq) ? PyList_GET_SIZE(seq)
                         : PyTuple_Check(seq) ? PyTuple_GET_SIZE(seq) : -1;
        if (len != count) return report(problem, -1, r, TP_ARG_LENGTH_MISMATCH);
    }
    for (int64_t i = 0; i < count; i++) {
        PyArrayObject *param = NULL;
        void *ptrs[ROLES] = {NULL, NULL, NULL, NULL, NULL};
        int64_t numel = 1;
        for (int r = 0; r < roles; r++) {
            PyObject *obj = item(lists[r], i);
            /* Exactly ndarray: the Python layer views subclasses as plain arrays (or refuses
             * masked arrays) and calls again, so both backends see the same arrays. */
            if (Py_TYPE(obj) != ndarray) return report(problem, i, r, TP_ARG_NOT_ARRAY);
            PyArrayObject *a = (PyArrayObject *)obj;
            int type = PyArray_TYPE(a), flags = PyArray_FLAGS(a);
            if ((type != NPY_FLOAT && type != NPY_DOUBLE) || !PyArray_ISNOTSWAPPED(a))
                return report(problem, i, r, TP_ARG_BAD_DTYPE);
            if (r == 0) {
                param = a;
                for (int d = 0; d < PyArray_NDIM(a); d++) numel *= PyArray_DIMS(a)[d];
            } else {
                if (type != PyArray_TYPE(param)) return report(problem, i, r, TP_ARG_DTYPE_MISMATCH);
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
            tp_span *span = &spans[r * count + i];
            span->start = numel > 0 ? (uintptr_t)ptrs[r] : 0;
            span->end = numel > 0 ? span->start + (uintptr_t)numel * (type == NPY_FLOAT ? 4u : 8u) : 0;
            span->writes = numel > 0 && r != 1;
        }
        out[i].param = ptrs[0];
        out[i].grad = ptrs[1];
        out[i].exp_avg = ptrs[2];
        out[i].exp_avg_sq = ptrs[3];
        out[i].max_exp_avg_sq = ptrs[4];
        out[i].numel = numel;
        out[i].dtype = PyArray_TYPE(param) == NPY_FLOAT ? TP_FLOAT32 : TP_FLOAT64;
    }
    int64_t n_spans = (int64_t)roles * count;
    if (!tp_spans_disjoint(spans, n_spans, spans + n_spans)) return report(problem, -1, -1, TP_ARG_OVERLAP);
    return TP_OK;
}

int tp_py_adam_step(uintptr_t ndarray_type, uintptr_t params, uintptr_t grads,
                    uintptr_t exp_avgs, uintptr_t exp_avg_sqs, uintptr_t max_exp_avg_sqs,
                    int64_t count, tp_adam_tensor *table, tp_span *spans,
                    tp_arg_problem *problem, int64_t step, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double grad_scale,
                    int32_t flags, int32_t *found_inf, int isa) {
    if (!ndarray_type || !params || !grads || !exp_avgs || !exp_avg_sqs || count < 0 ||
        !problem || !found_inf || (count > 0 && (!table || !spans)))
        return TP_ERR_ARGUMENT;
    problem->reason = 0;
    /* cffi released the GIL around this call; reading the Python objects needs it back. The
     * caller holds references to every array until we return, so the pointers stay valid
     * after the GIL is given up again for the update. */
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *lists[ROLES] = {(PyObject *)params, (PyObject *)grads, (PyObject *)exp_avgs,
                              (PyObject *)exp_avg_sqs, (PyObject *)max_exp_avg_sqs};
    int status = gather((PyTypeObject *)ndarray_type, lists, count, table, spans, problem);
    PyGILState_Release(gil);
    if (status != TP_OK) return status;
    return tp_adam_step_isa(table, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
                            flags, found_inf, isa < 0 ? tp_isa_current() : isa);
}
