"""C backend of the fused Adam step: gather every pointer in one call, update in one call."""

import numpy as np

from .. import _checks
from ..errors import InvalidArgumentError
from . import check, ffi, lib

_NDARRAY = id(np.ndarray)
_REASONS = {
    lib.TP_ARG_NOT_ARRAY: "is not a numpy.ndarray",
    lib.TP_ARG_BAD_DTYPE: "has an unsupported dtype",
    lib.TP_ARG_DTYPE_MISMATCH: "differs in dtype from its param",
    lib.TP_ARG_SHAPE_MISMATCH: "differs in shape from its param",
    lib.TP_ARG_NOT_CONTIGUOUS: "is not C-contiguous",
    lib.TP_ARG_READ_ONLY: "is read-only",
    lib.TP_ARG_OVERLAP: "overlaps another buffer",
    lib.TP_ARG_LENGTH_MISMATCH: "has a different length",
}


def _raise_problem(lists, problem):
    # The Python checks word the same exception the Numba backend raises.
    _checks.check_adam_tensors([seq for seq in lists if seq is not None])
    role = _checks.ADAM_ROLES[problem.role] if problem.role >= 0 else "an array"
    raise InvalidArgumentError(f"adam_step: {role} {_REASONS.get(problem.reason, 'is invalid')}")


def gather(lists):
    """A cdata array of tp_adam_tensor for validated-by-C tuples of arrays."""
    count = len(lists[0])
    table = ffi.new("tp_adam_tensor[]", count)
    spans = ffi.new("tp_span[]", 5 * count)
    problem = ffi.new("tp_arg_problem *")
    maxes = lists[4]
    status = lib.tp_py_gather_adam(
        _NDARRAY, id(lists[0]), id(lists[1]), id(lists[2]), id(lists[3]),
        0 if maxes is None else id(maxes), count, table, spans, problem,
    )
    if status != lib.TP_OK:
        _raise_problem(lists, problem)
    return table, count


def adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags):
    table, count = gather(lists)
    found_inf = ffi.new("int32_t *")
    check(
        lib.tp_adam_step(table, count, step, lr, beta1, beta2, eps, weight_decay,
                         1.0 if grad_scale is None else grad_scale, flags, found_inf),
        "adam_step",
    )
    return bool(found_inf[0])


def adam_step_isa(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, isa):
    """adam_step with one named kernel variant ("scalar", "baseline", "avx2", "avx512")."""
    from . import ISA_CODES

    table, count = gather(lists)
    found_inf = ffi.new("int32_t *")
    check(
        lib.tp_adam_step_isa(table, count, step, lr, beta1, beta2, eps, weight_decay,
                             1.0 if grad_scale is None else grad_scale, flags, found_inf,
                             ISA_CODES[isa]),
        "adam_step",
    )
    return bool(found_inf[0])
