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

#define ROLES 5

/* Sort spans by start: a natural merge sort (merge neighbouring ascending runs until one is
 * left) into `tmp`. Spans are laid out role by role, and each role's arrays were usually
 * allocated in order, so there are a handful of runs and this is close to linear, several times
 * faster than qsort on the lists of hundreds of arrays this exists for. Result ends in `a`. */
static void sort_spans(tp_span *a, tp_span *tmp, int64_t n) {
    tp_span *src = a, *dst = tmp;
    for (;;) {
        int64_t i = 0, out = 0, runs = 0;
        while (i < n) {
            int64_t mid = i + 1;
            while (mid < n && src[mid - 1].start <= src[mid].start) mid++;
            int64_t end = mid;
            if (end < n) {
                end++;
                while (end < n && src[end - 1].start <= src[end].start) end++;
            }
            int64_t x = i, y = mid;
            while (x < mid && y < end) dst[out++] = src[y].start < src[x].start ? src[y++] : src[x++];
            while (x < mid) dst[out++] = src[x++];
            while (y < end) dst[out++] = src[y++];
            i = end;
            runs++;
        }
        tp_span *t = src;
        src = dst;
        dst = t;
        if (runs <= 1) break;
    }
    if (src != a) memcpy(a, src, sizeof(tp_span) * (size_t)n);
}

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
            if (!PyObject_TypeCheck(obj, ndarray)) return report(problem, i, r, TP_ARG_NOT_ARRAY);
            PyArrayObject *a = (PyArrayObject *)obj;
            int type = PyArray_TYPE(a), flags = PyArray_FLAGS(a);
            if ((type != NPY_FLOAT && type != NPY_DOUBLE) || !PyArray_ISNOTSWAPPED(a))
                return report(problem, i, r, TP_ARG_BAD_DTYPE);
            if (r == 0) {
                param = a;
                for (int d = 0; d < PyArray_NDIM(a); d++) numel *= PyArray_DIMS(a)[d];
            } else {
                if (type != PyArray_TYPE(param)) return report(problem, i, r, TP_ARG_DTYPE_MISMATCH);
                if (PyArray_NDIM(a) != PyArray_NDIM(param) ||
                    memcmp(PyArray_DIMS(a), PyArray_DIMS(param), sizeof(npy_intp) * (size_t)PyArray_NDIM(a)))
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
    /* No buffer that is written may overlap any other one (grads may share memory with each
     * other: they are only read). Sorted by start, a span overlaps an earlier one exactly when
     * it starts before that one's end. */
    int64_t n_spans = (int64_t)roles * count;
    sort_spans(spans, spans + n_spans, n_spans);
    uintptr_t end_any = 0, end_written = 0;
    for (int64_t s = 0; s < n_spans; s++) {
        if (spans[s].start < end_written || (spans[s].writes && spans[s].start < end_any))
            return report(problem, -1, -1, TP_ARG_OVERLAP);
        if (spans[s].end > end_any) end_any = spans[s].end;
        if (spans[s].writes && spans[s].end > end_written) end_written = spans[s].end;
    }
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
