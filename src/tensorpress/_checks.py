"""Argument validation shared by both backends, so both raise the same exceptions.

Each check raises a TensorpressError subclass whose message names the argument, the position
in a list when there is one, and what was expected.
"""

import math
import numbers
import operator

import numpy as np

from .errors import DTypeError, InvalidArgumentError, NonFiniteError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def where(name, index):
    """'params' or 'params[3]'."""
    return name if index is None else f"{name}[{index}]"


def require_ndarray(x, name, index=None):
    """`x` as a plain np.ndarray, the one form the backends accept.

    An ndarray subclass is viewed as a plain ndarray over the same memory (np.matrix keeps its
    2-D shape under reshape(-1), which the kernels' flat views must not meet; np.memmap and
    others need nothing of their own). A masked array is refused: viewing it would silently
    drop its mask. Anything else is refused with DTypeError."""
    if type(x) is np.ndarray:
        return x
    if not isinstance(x, np.ndarray):
        raise DTypeError(f"{where(name, index)} must be a numpy.ndarray, got {type(x).__name__}")
    if isinstance(x, np.ma.MaskedArray):
        raise DTypeError(
            f"{where(name, index)} is a masked array, whose mask tensorpress would ignore; pass "
            "x.filled(value), or np.asarray(x) to use the data under the mask as it is"
        )
    return x.view(np.ndarray)


def require_dtype(x, dtypes, name, index=None):
    if x.dtype not in dtypes:
        if x.dtype.newbyteorder("=") in dtypes:
            raise DTypeError(f"{where(name, index)} is byte-swapped ({x.dtype}); convert it to native byte order first")
        allowed = ", ".join(str(d) for d in dtypes)
        raise DTypeError(f"{where(name, index)} has dtype {x.dtype}; expected {allowed}")


def require_contiguous(x, name, index=None):
    if not x.flags.c_contiguous:
        raise InvalidArgumentError(
            f"{where(name, index)} is not C-contiguous; tensorpress never copies silently: "
            "pass np.ascontiguousarray(x) (and copy the result back if it is updated in place)"
        )


def require_writable(x, name, index=None):
    if not x.flags.writeable:
        raise InvalidArgumentError(f"{where(name, index)} is read-only but is updated in place")


def memory_span(x):
    """[start, end) of a C-contiguous array's bytes."""
    start = x.__array_interface__["data"][0]
    return start, start + x.nbytes


def require_no_overlap(named_arrays):
    """`named_arrays`: (label, array, written) triples. A written array may share no byte with any
    other array; arrays that are only read may share memory with each other."""
    require_disjoint_spans(memory_span(a) + (label, written) for label, a, written in named_arrays if a.nbytes)


def require_disjoint_spans(spans):
    """`spans`: (start, end, label, written) of buffers by address, as require_no_overlap asks."""
    spans = sorted(spans, key=lambda s: s[0])
    end_any = end_written = 0
    label_any = label_written = None
    for start, end, label, written in spans:
        if start < end_written:
            raise InvalidArgumentError(f"{label} overlaps {label_written} in memory; in-place updates need separate buffers")
        if written and start < end_any:
            raise InvalidArgumentError(f"{label} overlaps {label_any} in memory; in-place updates need separate buffers")
        if end > end_any:
            end_any, label_any = end, label
        if written and end > end_written:
            end_written, label_written = end, label


def real_scalar(value, name):
    """A finite-or-not Python float from a real number (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise DTypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise NonFiniteError(f"{name} is NaN")
    return value


def nonnegative_finite(value, name):
    value = real_scalar(value, name)
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be finite and >= 0, got {value}")
    return value


def in_unit_interval(value, name):
    """0 <= value < 1."""
    value = real_scalar(value, name)
    if not 0.0 <= value < 1.0:
        raise InvalidArgumentError(f"{name} must be in [0, 1), got {value}")
    return value


def integer(value, name, expected="an int"):
    """`value` as a Python int: any integer type (NumPy's too), never a bool or a float."""
    if isinstance(value, (bool, np.bool_)):
        raise DTypeError(f"{name} must be {expected}, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise DTypeError(f"{name} must be {expected}, got {type(value).__name__}") from None


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def positive_int(value, name, maximum=INT64_MAX):
    """An int in [1, maximum]; the default bound is what a C int64_t holds, so an absurd value
    (2**63) is an InvalidArgumentError here rather than an OverflowError at the C boundary."""
    value = integer(value, name)
    if not 1 <= value <= maximum:
        bound = "" if value < 1 else f" and <= {maximum}"
        raise InvalidArgumentError(f"{name} must be >= 1{bound}, got {value}")
    return value


def int_in_range(value, name, minimum, maximum):
    value = integer(value, name)
    if not minimum <= value <= maximum:
        raise InvalidArgumentError(f"{name} must be in [{minimum}, {maximum}], got {value}")
    return value


ADAM_ROLES = ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")


def check_adam_tensors(lists):
    """Validate the tuples of arrays of one Adam step: `lists` holds params, grads, exp_avgs,
    exp_avg_sqs and (with amsgrad) max_exp_avg_sqs. Raises on the first problem; returns the
    same lists as tuples of plain ndarrays (subclasses viewed, see require_ndarray)."""
    count = len(lists[0])
    for name, seq in zip(ADAM_ROLES[1:], lists[1:]):
        if len(seq) != count:
            raise InvalidArgumentError(f"{name} has {len(seq)} arrays but params has {count}")
    spans = []
    plain = [[] for _ in lists]
    for i in range(count):
        p = require_ndarray(lists[0][i], "params", i)
        require_dtype(p, FLOAT_DTYPES, "params", i)
        for name, seq, checked in zip(ADAM_ROLES, lists, plain):
            a = require_ndarray(seq[i], name, i)
            checked.append(a)
            if a.dtype != p.dtype:
                raise DTypeError(f"{name}[{i}] has dtype {a.dtype} but params[{i}] has {p.dtype}")
            if a.shape != p.shape:
                raise InvalidArgumentError(f"{name}[{i}] has shape {a.shape} but params[{i}] has {p.shape}")
            require_contiguous(a, name, i)
            if not a.flags.aligned:
                raise InvalidArgumentError(f"{name}[{i}] is not aligned to its dtype; copy it into a fresh array")
            if a.dtype.byteorder == (">" if np.little_endian else "<"):
                raise DTypeError(f"{name}[{i}] is byte-swapped ({a.dtype}); use native byte order")
            written = name != "grads"
            if written:
                require_writable(a, name, i)
            spans.append((f"{name}[{i}]", a, written))
    require_no_overlap(spans)
    return [tuple(checked) for checked in plain]
