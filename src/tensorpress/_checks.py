"""Argument validation shared by both backends, so both raise the same exceptions.

Each check raises a TensorpressError subclass whose message names the argument, the position
in a list when there is one, and what was expected.
"""

import math
import numbers
import operator

import ml_dtypes
import numpy as np

from .errors import DTypeError, InvalidArgumentError, NonFiniteError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT16 = np.dtype(np.float16)
HALF_DTYPES = (BFLOAT16, FLOAT16)
ADAM_PARAM_DTYPES = FLOAT_DTYPES + HALF_DTYPES


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


def require_aligned(x, name, index=None):
    """Element-aligned data, as C requires of a typed pointer (x86 tolerates a misaligned load;
    the C standard, UBSan and other CPUs do not)."""
    if not x.flags.aligned:
        raise InvalidArgumentError(f"{where(name, index)} is not aligned to its dtype; copy it into a fresh array")


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


ADAM_ROLES = ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "master_params")
_F32, _F64 = FLOAT_DTYPES


def _adam_dtype_problem(name, a, p, state):
    """Why array `a` in role `name` cannot go with param `p` (whose first state array has dtype
    `state`), or None (docs/mixed_precision.md has the table)."""
    t = a.dtype
    half_param = p.dtype in HALF_DTYPES
    if name == "grads":
        if t == p.dtype or (p.dtype == _F32 and t in HALF_DTYPES) or (half_param and t == _F32):
            return None
        if p.dtype == _F64:
            return "float64 params take float64 grads"
        if p.dtype == _F32:
            return "float32 params take float32, bfloat16 or float16 grads"
        return f"{p.dtype} params take {p.dtype} or float32 grads"
    if name == "master_params":
        if not half_param:
            return f"master weights are for bfloat16 / float16 params, and this param is {p.dtype}"
        return None if t == _F32 else "master weights are float32"
    # the optimizer states
    if p.dtype == _F64:
        return None if t == _F64 else "float64 params keep float64 states"
    if t == FLOAT16:
        return ("float16 optimizer states are refused: the second moment (grad^2 scaled by "
                "1 - beta2) of gradients near 1e-2 falls below float16's range and the step "
                "diverges; use float32 or bfloat16 states")
    if t not in (_F32, BFLOAT16):
        return "states are float32 or bfloat16"
    if state is not None and t != state:
        return f"the states of one param share one dtype, and exp_avgs has {state}"
    return None


def check_adam_tensors(lists):
    """Validate the tuples of arrays of one Adam step: `lists` holds params, grads, exp_avgs,
    exp_avg_sqs, and max_exp_avg_sqs and master_params (each a sequence, or None when not
    used). Raises on the first problem: DTypeError naming the arrays for a dtype combination
    that docs/mixed_precision.md does not list. Returns the lists with None kept, each other
    one a tuple of plain ndarrays (subclasses viewed, see require_ndarray)."""
    lists = list(lists) + [None] * (len(ADAM_ROLES) - len(lists))
    count = len(lists[0])
    for name, seq in zip(ADAM_ROLES[1:], lists[1:]):
        if seq is not None and len(seq) != count:
            raise InvalidArgumentError(f"{name} has {len(seq)} arrays but params has {count}")
    spans = []
    plain = [None if seq is None else [] for seq in lists]
    for i in range(count):
        p = require_ndarray(lists[0][i], "params", i)
        if p.dtype.byteorder == (">" if np.little_endian else "<"):
            raise DTypeError(f"params[{i}] is byte-swapped ({p.dtype}); use native byte order")
        require_dtype(p, ADAM_PARAM_DTYPES, "params", i)
        state = None
        for name, seq, checked in zip(ADAM_ROLES, lists, plain):
            if seq is None:
                continue
            if seq[i] is None and name == "master_params":
                checked.append(None)  # this param has no master
                continue
            a = require_ndarray(seq[i], name, i)
            checked.append(a)
            if a.dtype.byteorder == (">" if np.little_endian else "<"):
                raise DTypeError(f"{name}[{i}] is byte-swapped ({a.dtype}); use native byte order")
            if name != "params":
                why = _adam_dtype_problem(name, a, p, state)
                if why:
                    raise DTypeError(f"{name}[{i}] has dtype {a.dtype} and params[{i}] has {p.dtype}: {why}")
                if name == "exp_avgs":
                    state = a.dtype
            if a.shape != p.shape:
                raise InvalidArgumentError(f"{name}[{i}] has shape {a.shape} but params[{i}] has {p.shape}")
            require_contiguous(a, name, i)
            require_aligned(a, name, i)
            written = name != "grads"
            if written:
                require_writable(a, name, i)
            spans.append((f"{name}[{i}]", a, written))
    require_no_overlap(spans)
    return [None if checked is None else tuple(checked) for checked in plain]


# --- Adam ---------------------------------------------------------------------------------

def adam_hyper(step, lr, betas, eps, weight_decay, grad_scale):
    """Validated hyper-parameters as (step, lr, beta1, beta2, eps, weight_decay, grad_scale)."""
    # One flat test for the common case (Python floats in range), which matters for per-call
    # overhead; anything unusual takes the full path, which also words the errors.
    if type(betas) is tuple and len(betas) == 2:
        beta1, beta2 = betas
        if (type(step) is int and 1 <= step <= INT64_MAX and type(lr) is float and type(beta1) is float
                and type(beta2) is float and type(eps) is float and type(weight_decay) is float
                and 0.0 <= lr < math.inf and 0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0
                and 0.0 <= eps < math.inf and 0.0 <= weight_decay < math.inf
                and (grad_scale is None or (type(grad_scale) is float and grad_scale != 0.0
                                            and -math.inf < grad_scale < math.inf))):
            return step, lr, beta1, beta2, eps, weight_decay, grad_scale
    return _adam_hyper_checked(step, lr, betas, eps, weight_decay, grad_scale)


def _adam_hyper_checked(step, lr, betas, eps, weight_decay, grad_scale):
    step = positive_int(step, "step")
    lr = real_scalar(lr, "lr")
    if not 0.0 <= lr < math.inf:
        raise InvalidArgumentError(f"lr must be finite and >= 0, got {lr}")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    beta1, beta2 = real_scalar(beta1, "betas[0]"), real_scalar(beta2, "betas[1]")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise InvalidArgumentError(f"betas must be in [0, 1), got ({beta1}, {beta2})")
    eps = real_scalar(eps, "eps")
    if not 0.0 <= eps < math.inf:
        raise InvalidArgumentError(f"eps must be finite and >= 0, got {eps}")
    weight_decay = real_scalar(weight_decay, "weight_decay")
    if not 0.0 <= weight_decay < math.inf:
        raise InvalidArgumentError(f"weight_decay must be finite and >= 0, got {weight_decay}")
    if grad_scale is not None:
        grad_scale = real_scalar(grad_scale, "grad_scale")
        if not math.isfinite(grad_scale) or grad_scale == 0.0:
            raise InvalidArgumentError(f"grad_scale must be finite and non-zero, got {grad_scale}")
    return step, lr, beta1, beta2, eps, weight_decay, grad_scale


def check_grad_scale(value):
    """A loss scale: None, or a finite non-zero real number."""
    return adam_hyper(1, 0.0, (0.0, 0.0), 0.0, 0.0, value)[6]
