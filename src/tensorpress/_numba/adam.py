"""Numba twin of csrc/adam/ (ref.c spells the update out): the same operations in the same order, hence the same bits."""

import ctypes
import math
import struct

import numba as nb
import numpy as np

from .. import _checks
from .._consts import ADAM_AMSGRAD, ADAM_DECOUPLED, ADAM_GRAD_SCALE, ADAM_MAXIMIZE, ADAM_ROW, FLOAT32, FLOAT64
from ..errors import InvalidArgumentError
from . import PARALLEL_CHUNK, check_isa, serial_and_parallel, use_parallel

_PARALLEL_MIN = 65536  # below this a second thread costs more than it saves

# Every kernel releases the GIL (nogil), as the C calls do, so other Python threads run while
# it works. error_model="numpy" makes division IEEE as in csrc/adam/: a grad_scale that rounds to 0
# in float32 (1e-300) or eps=0 with a zero second moment gives Inf/NaN (found_inf, or NaN
# params as on C) instead of the ZeroDivisionError of Numba's default "python" model.
_SERIAL = dict(nogil=True, cache=True, error_model="numpy")


def _make_update(amsgrad):
    """The element loop, one compiled form with amsgrad's fourth stream and one without, so the
    common loop has no conditional load or store. Options that only change arithmetic are
    selects on loop invariants, which LLVM keeps branch-free and vectorizes (as in csrc/adam/body_tmpl.h)."""

    @nb.njit(inline="always", **_SERIAL)
    def update(p, g, m, v, vmax, grad_scale, sign, wd, decay, lerp_w, lerp_wc, beta2,
               one_minus_beta2, eps, bc2_sqrt, neg_step_size, scaled, l2, decoupled, lerp_low):
        # range(p.size) lets LLVM see that i >= 0, so no negative-index wraparound per access
        # and the loop vectorizes; callers pass slices for a sub-range.
        for i in range(p.size):
            gi = g[i]
            gi = gi / grad_scale if scaled else gi
            gi = gi * sign
            pi = p[i]
            pi = pi * decay if decoupled else pi
            gi = gi + wd * pi if l2 else gi
            mi = m[i]
            mi = mi + lerp_w * (gi - mi) if lerp_low else gi - (gi - mi) * lerp_wc
            vi = v[i] * beta2 + (one_minus_beta2 * gi) * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                mx = vmax[i]
                mx = vi if (mx < vi or vi != vi) else mx  # torch.maximum: NaN wins from either side
                vmax[i] = mx
                vi = mx
            denom = np.sqrt(vi) / bc2_sqrt + eps
            p[i] = pi + (neg_step_size * mi) / denom

    return update


_update_plain = _make_update(False)
_update_amsgrad = _make_update(True)


@nb.njit(inline="always", **_SERIAL)
def _update(p, g, m, v, vmax, lo, hi, c, flags):
    p, g, m, v = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
    if flags[4]:
        _update_amsgrad(p, g, m, v, vmax[lo:hi], c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                        c[8], c[9], c[10], flags[0], flags[1], flags[2], flags[3])
    else:
        _update_plain(p, g, m, v, vmax, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                      c[8], c[9], c[10], flags[0], flags[1], flags[2], flags[3])


def _drive(p, g, m, v, vmax, c, flags):
    """The update over chunks of PARALLEL_CHUNK elements (a prange loop: see serial_and_parallel)."""
    n = p.size
    chunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    for k in nb.prange(chunks):
        lo = k * PARALLEL_CHUNK
        hi = min(lo + PARALLEL_CHUNK, n)
        _update(p, g, m, v, vmax, lo, hi, c, flags)


_adam_serial, _adam_parallel = serial_and_parallel(_drive, error_model="numpy")


@nb.njit(**_SERIAL)
def _any_nonfinite(g, scale):
    acc = g.dtype.type(0)
    for i in range(g.size):
        x = g[i] / scale
        acc += x - x  # 0 for finite x, NaN otherwise
    return acc != 0


def _constants(dtype, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags):
    """The per-step scalars, computed in double and rounded to `dtype` exactly as csrc/adam/consts_tmpl.h does."""
    t = np.dtype(dtype).type
    bias_correction1 = 1.0 - math.pow(beta1, float(step))
    bias_correction2 = 1.0 - math.pow(beta2, float(step))
    lerp_w = t(1.0 - beta1)
    # C's (float) cast of a double beyond float32's range is Inf, silently; NumPy's warns.
    with np.errstate(over="ignore"):
        values = np.array(
            [
                grad_scale if flags & ADAM_GRAD_SCALE else 1.0,
                -1.0 if flags & ADAM_MAXIMIZE else 1.0,
                weight_decay,
                1.0 - lr * weight_decay,
                lerp_w,
                t(1) - lerp_w,
                beta2,
                1.0 - beta2,
                eps,
                math.sqrt(bias_correction2),
                -(lr / bias_correction1),
            ],
            dtype=dtype,
        )
    decoupled = bool(flags & ADAM_DECOUPLED)
    switches = np.array(
        [bool(flags & ADAM_GRAD_SCALE), (not decoupled) and weight_decay != 0.0, decoupled,
         abs(float(lerp_w)) < 0.5, bool(flags & ADAM_AMSGRAD)],
        dtype=np.bool_,
    )
    return values, switches


def adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, isa=None):
    check_isa(isa)
    # The checked lists hold plain ndarrays: a subclass's reshape(-1) (np.matrix) is not flat.
    params, grads, exp_avgs, exp_avg_sqs, *maxes = _checks.check_adam_tensors(
        [seq for seq in lists if seq is not None])
    maxes = maxes[0] if maxes else None
    per_dtype = {}
    for dtype in {p.dtype for p in params}:
        per_dtype[dtype] = _constants(dtype, step, lr, beta1, beta2, eps, weight_decay,
                                     grad_scale, flags)
    if flags & ADAM_GRAD_SCALE:
        for g in grads:
            if g.size and _any_nonfinite(g.reshape(-1), per_dtype[g.dtype][0][0]):
                return True
    for i, p in enumerate(params):
        if p.size == 0:
            continue
        values, switches = per_dtype[p.dtype]
        flat = p.reshape(-1)
        vmax = maxes[i].reshape(-1) if maxes is not None else flat[:0]
        kernel = _adam_parallel if use_parallel(p.size, _PARALLEL_MIN) else _adam_serial
        kernel(flat, grads[i].reshape(-1), exp_avgs[i].reshape(-1), exp_avg_sqs[i].reshape(-1),
               vmax, values, switches)
    return False


# --- raw-address entry for callers that hold tensors, not arrays (tensorpress.torch) ---------
# The same rows the C backend takes (_consts.ADAM_ROW), turned into NumPy arrays over the
# addresses; adam_step's checks (alignment, overlap) then hold for them as for any array.
_ROW = struct.Struct(ADAM_ROW)
_ROW_DTYPES = {FLOAT32: np.dtype(np.float32), FLOAT64: np.dtype(np.float64)}


def _array_at(address, numel, dtype, writable):
    if numel == 0:
        return np.empty(0, dtype)
    if address == 0:
        raise InvalidArgumentError("adam_step: a buffer's address is NULL")
    buffer = (ctypes.c_char * (numel * dtype.itemsize)).from_address(address)
    array = np.frombuffer(buffer, dtype)
    array.flags.writeable = writable
    return array


def _rows_to_lists(rows, count, amsgrad):
    lists = ([], [], [], [], [] if amsgrad else None)
    for i in range(count):
        *addresses, numel, code, _ = _ROW.unpack_from(rows, i * _ROW.size)
        dtype = _ROW_DTYPES.get(code)
        if dtype is None or numel < 0:
            raise InvalidArgumentError(f"adam_step: row {i} has dtype code {code} and {numel} elements")
        for role, (address, seq) in enumerate(zip(addresses, lists)):
            if seq is not None:
                seq.append(_array_at(address, numel, dtype, writable=role != 1))
    return lists


def adam_step_packed(rows, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags):
    """adam_step over a table of `count` packed rows (bytes), as the C backend's."""
    lists = _rows_to_lists(rows, count, bool(flags & ADAM_AMSGRAD))
    return adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags)


def found_inf_packed(rows, count, grad_scale):
    """True when any grad of the packed rows, divided by grad_scale in its own dtype, is NaN or
    Inf (adam_step's check, for a step split into several calls). Reads the grads only."""
    grads = _rows_to_lists(rows, count, False)[1]
    with np.errstate(over="ignore"):  # a scale beyond float32 rounds to Inf there, as in C
        return any(g.size and _any_nonfinite(g, g.dtype.type(grad_scale)) for g in grads)
