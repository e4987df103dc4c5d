"""C backend of the fused Adam step: one native call gathers every pointer and updates."""

import threading

import numpy as np

from .. import _checks
from ..errors import InvalidArgumentError
from . import check, ffi, isa_code, lib

_NDARRAY = id(np.ndarray)
_REASONS = {
    lib.TP_ARG_NOT_ARRAY: "is not a numpy.ndarray",
    lib.TP_ARG_BAD_DTYPE: "has an unsupported dtype",
    lib.TP_ARG_DTYPE_MISMATCH: "differs in dtype from its param",
    lib.TP_ARG_SHAPE_MISMATCH: "differs in shape from its param",
    lib.TP_ARG_NOT_CONTIGUOUS: "is not C-contiguous",
    lib.TP_ARG_MISALIGNED: "is not aligned",
    lib.TP_ARG_READ_ONLY: "is read-only",
    lib.TP_ARG_OVERLAP: "overlaps another buffer",
    lib.TP_ARG_LENGTH_MISMATCH: "has a different length",
    lib.TP_ARG_STATE_F16: "is float16, which optimizer states may not be",
    lib.TP_ARG_MASTER_UNUSED: "is given for a param that is not bfloat16 or float16",
}
_BFLOAT16_NUM = _checks.BFLOAT16.num  # the type number NumPy gave ml_dtypes.bfloat16

# Workspaces reused per thread: allocating them costs more than a small step itself.
_KEEP_UP_TO = 4096
_local = threading.local()


def _workspace(count):
    ws = getattr(_local, "ws", None)
    if ws is None or ws[0] < count:
        capacity = max(count, 16)
        ws = (capacity, ffi.new("tp_adam_tensor[]", capacity), ffi.new("tp_span[]", 12 * capacity),
              ffi.new("tp_arg_problem *"), ffi.new("int32_t *"))
        if capacity <= _KEEP_UP_TO:
            _local.ws = ws
    return ws


def _raise_problem(lists, problem):
    """Raise the exception the Python checks word for the gatherer's problem (they find the
    same one); if they pass, word the gatherer's own finding."""
    _checks.check_adam_tensors(lists)
    role = _checks.ADAM_ROLES[problem.role] if problem.role >= 0 else "an array"
    where = f"[{problem.index}]" if problem.index >= 0 else ""
    raise InvalidArgumentError(f"adam_step: {role}{where} {_REASONS.get(problem.reason, 'is invalid')}")


def adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, seed=0,
              indices=None, isa=None):
    """`lists`: tuples of arrays (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs or
    None, masters or None). `indices`: each tensor's number for stochastic rounding (None:
    0..n-1). `isa` names a kernel variant ("scalar", "baseline", "avx2", "avx512") for tests."""
    params, grads, exp_avgs, exp_avg_sqs, maxes, masters = lists
    count = len(params)
    ws = getattr(_local, "ws", None)
    if ws is None or ws[0] < count:
        ws = _workspace(count)
    _, table, spans, problem, found_inf = ws
    if indices is not None:
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        if indices.shape != (count,):
            raise InvalidArgumentError(f"adam_step: {indices.size} tensor indices for {count} params")
    status = _py_adam_step(
        _NDARRAY, _BFLOAT16_NUM, id(params), id(grads), id(exp_avgs), id(exp_avg_sqs),
        0 if maxes is None else id(maxes), 0 if masters is None else id(masters),
        ffi.NULL if indices is None else ffi.from_buffer("int64_t[]", indices), count,
        table, spans, problem, step, lr, beta1, beta2, eps, weight_decay,
        1.0 if grad_scale is None else grad_scale, flags, seed, found_inf,
        -1 if isa is None else isa_code(isa),  # C: -1 is the current variant
    )
    if status:
        if status == lib.TP_ERR_ARGUMENT and problem.reason:
            if problem.reason == lib.TP_ARG_NOT_ARRAY:
                # The gatherer takes exact ndarrays only; the checks pass plain views of
                # subclasses (np.matrix, memmap) or raise: run again on the views.
                plain = tuple(_checks.check_adam_tensors(lists))
                return adam_step(plain, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
                                 flags, seed, indices, isa)
            _raise_problem(lists, problem)
        check(status, "adam_step")
    return found_inf[0] != 0


# Bound once: attribute lookups on the cffi lib are a measurable part of a one-element step.
_py_adam_step = lib.tp_py_adam_step
assert lib.TP_OK == 0  # adam_step tests `if status:`


# --- raw-address entry for callers that hold tensors, not arrays (tensorpress.torch) ---------
# Rows of tp_adam_tensor packed with struct (_consts.ADAM_ROW). Building the table from cached
# bytes costs well under a microsecond per tensor, where a NumPy view of a torch tensor costs
# several; tests/test_consts.py checks the layout against the compiled struct.


def adam_step_packed(rows, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                     seed=0):
    """adam_step over a table of `count` packed rows (bytes). The caller has checked dtypes,
    shapes and contiguity; C checks alignment and overlaps before writing anything."""
    _, _, spans, _, found_inf = _workspace(count)
    status = lib.tp_adam_step_checked(
        ffi.from_buffer("tp_adam_tensor[]", rows), count, spans, step, lr, beta1, beta2, eps,
        weight_decay, 1.0 if grad_scale is None else grad_scale, flags, seed, found_inf)
    if status == lib.TP_ERR_ARGUMENT:
        raise InvalidArgumentError("adam_step: a buffer is misaligned, a written buffer overlaps another one in memory, or a row's dtypes do not go together")
    check(status, "adam_step")
    return bool(found_inf[0])


def found_inf_packed(rows, count, grad_scale):
    """True when any grad of the packed rows, divided by grad_scale (in float32, float64 for
    float64), is NaN or Inf or beyond its own dtype's range: adam_step's check, for a step split
    into several calls. Reads the grads only."""
    found_inf = ffi.new("int32_t *")
    check(lib.tp_adam_found_inf(ffi.from_buffer("tp_adam_tensor[]", rows), count, grad_scale,
                                found_inf), "found_inf")
    return bool(found_inf[0])
