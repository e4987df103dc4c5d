/*
 * pyargs.c: gathers the pointers of many NumPy arrays in one call.
 *
 * Why this exists: a fused multi-tensor step promises one native call for a whole list of
 * tensors, and a model's biases and norms make lists of hundreds of small arrays. Taking each
 * pointer from Python (ffi.from_buffer, ~1 us each) would cost more than the update itself, so
 * the lists are handed over by id() and read here through the buffer protocol, holding the GIL,
 * at a few tens of nanoseconds per array. Only checks live here; the exception text is worded
 * by the Python layer, which re-runs its own checks when this reports a problem.
 */
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "tp_pyargs.h"

#define ROLES 5

static int format_dtype(const char *format) {
    if (format == NULL) return -1;
    if (format[0] == '@' || format[0] == '=') format++;
#if PY_LITTLE_ENDIAN
    if (format[0] == '<') format++;
#else
    if (format[0] == '>') format++;
#endif
    if (format[0] == 'f' && format[1] == '\0') return TP_FLOAT32;
    if (format[0] == 'd' && format[1] == '\0') return TP_FLOAT64;
    return -1;
}

static int compare_spans(const void *a, const void *b) {
    uintptr_t x = ((const tp_span *)a)->start, y = ((const tp_span *)b)->start;
    return (x > y) - (x < y);
}

static void report(tp_arg_problem *problem, int64_t index, int role, int reason) {
    problem->index = index;
    problem->role = role;
    problem->reason = reason;
}

/* Gather with the GIL held. */
static int gather(PyTypeObject *ndarray, PyObject *lists[ROLES], int64_t count,
                  tp_adam_tensor *out, tp_span *spans, tp_arg_problem *problem) {
    int roles = lists[4] ? ROLES : ROLES - 1;
    for (int r = 0; r < roles; r++) {
        PyObject *seq = lists[r];
        Py_ssize_t len = PyList_Check(seq) ? PyList_GET_SIZE(seq)
                         : PyTuple_Check(seq) ? PyTuple_GET_SIZE(seq) : -1;
        if (len != count) {
            report(problem, -1, r, TP_ARG_LENGTH_MISMATCH);
            return TP_ERR_ARGUMENT;
        }
    }
    int64_t n_spans = 0;
    for (int64_t i = 0; i < count; i++) {
        tp_adam_tensor *t = &out[i];
        Py_ssize_t shape[PyBUF_MAX_NDIM];
        int ndim = 0, dtype = -1;
        void *ptrs[ROLES] = {NULL, NULL, NULL, NULL, NULL};
        for (int r = 0; r < roles; r++) {
            PyObject *seq = lists[r];
            PyObject *obj = PyList_Check(seq) ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
            if (!PyObject_TypeCheck(obj, ndarray)) {
                report(problem, i, r, TP_ARG_NOT_ARRAY);
                return TP_ERR_ARGUMENT;
            }
            Py_buffer view;
            if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) != 0) {
                PyErr_Clear();
                report(problem, i, r, TP_ARG_BAD_DTYPE);
                return TP_ERR_ARGUMENT;
            }
            int reason = 0, this_dtype = format_dtype(view.format);
            if (this_dtype < 0)
                reason = TP_ARG_BAD_DTYPE;
            else if (r == 0) {
                dtype = this_dtype;
                ndim = view.ndim;
                memcpy(shape, view.shape, sizeof(Py_ssize_t) * (size_t)ndim);
            } else if (this_dtype != dtype)
                reason = TP_ARG_DTYPE_MISMATCH;
            else if (view.ndim != ndim || memcmp(shape, view.shape, sizeof(Py_ssize_t) * (size_t)ndim))
                reason = TP_ARG_SHAPE_MISMATCH;
            if (!reason && !PyBuffer_IsContiguous(&view, 'C')) reason = TP_ARG_NOT_CONTIGUOUS;
            if (!reason && r != 1 && view.readonly) reason = TP_ARG_READ_ONLY;
            ptrs[r] = view.buf;
            if (!reason && view.len > 0) {
                spans[n_spans].start = (uintptr_t)view.buf;
                spans[n_spans].end = (uintptr_t)view.buf + (uintptr_t)view.len;
                spans[n_spans].writes = r != 1;
                n_spans++;
            }
            if (r == 0) t->numel = view.itemsize ? view.len / view.itemsize : 0;
            /* The caller keeps every array alive for the whole call; the pointer stays valid. */
            PyBuffer_Release(&view);
            if (reason) {
                report(problem, i, r, reason);
                return TP_ERR_ARGUMENT;
            }
        }
        t->param = ptrs[0];
        t->grad = ptrs[1];
        t->exp_avg = ptrs[2];
        t->exp_avg_sq = ptrs[3];
        t->max_exp_avg_sq = ptrs[4];
        t->dtype = dtype;
    }
    /* No buffer that is written may overlap any other one (grads may share memory with each
     * other: they are only read). Sorted by start, a span overlaps an earlier one exactly when
     * it starts before that one's end. */
    qsort(spans, (size_t)n_spans, sizeof(tp_span), compare_spans);
    uintptr_t end_any = 0, end_written = 0;
    for (int64_t s = 0; s < n_spans; s++) {
        if (spans[s].start < end_written || (spans[s].writes && spans[s].start < end_any)) {
            report(problem, -1, -1, TP_ARG_OVERLAP);
            return TP_ERR_ARGUMENT;
        }
        if (spans[s].end > end_any) end_any = spans[s].end;
        if (spans[s].writes && spans[s].end > end_written) end_written = spans[s].end;
    }
    return TP_OK;
}

int tp_py_gather_adam(uintptr_t ndarray_type, uintptr_t params, uintptr_t grads,
                      uintptr_t exp_avgs, uintptr_t exp_avg_sqs, uintptr_t max_exp_avg_sqs,
                      int64_t count, tp_adam_tensor *out, tp_span *spans,
                      tp_arg_problem *problem) {
    if (!ndarray_type || !params || !grads || !exp_avgs || !exp_avg_sqs || count < 0 || !problem)
        return TP_ERR_ARGUMENT;
    /* cffi released the GIL around this call; the Python objects need it back. */
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *lists[ROLES] = {(PyObject *)params, (PyObject *)grads, (PyObject *)exp_avgs,
                              (PyObject *)exp_avg_sqs, (PyObject *)max_exp_avg_sqs};
    int status = gather((PyTypeObject *)ndarray_type, lists, count, out, spans, problem);
    PyGILState_Release(gil);
    return status;
}
