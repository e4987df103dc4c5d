"""Numba twin of csrc/adam/ (ref.c and mixed_ref.c spell the update out): the same operations in
the same order, hence the same bits.

All-float32 and all-float64 tensors run the plain loop below. Every other tensor (a half param,
grad or state, or a float32 master: docs/mixed_precision.md) runs the mixed-precision loop, the
port of csrc/adam/mixed_ref.c: each stream read into float32 exactly, the update in float32,
each written value rounded once (to nearest even, or stochastically for a half param without a
master). Numba has no bfloat16 or float16 arithmetic, so the kernels see the bits: float16 as
uint16, ml_dtypes.bfloat16 as int16 (a type of its own to Numba, so the overloads tell the two
apart, as in _numba/quant.py), converted with the integer and float32 formulas of csrc/half.h
(bit casts in registers through two intrinsics), which LLVM vectorizes.
"""

import ctypes
import math
import struct

import ml_dtypes
import numba as nb
import numpy as np
from numba.extending import overload

from .. import _checks
from .._consts import (
    ADAM_AMSGRAD,
    ADAM_DECOUPLED,
    ADAM_GRAD_SCALE,
    ADAM_MAXIMIZE,
    ADAM_ROW,
    ADAM_STOCHASTIC_ROUNDING,
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
)
from ..errors import InvalidArgumentError
from . import PARALLEL_CHUNK, check_isa, serial_and_parallel, use_parallel
from .half import bits_of as _bits
from .half import f16_to_f32 as _f16_to_f32
from .half import f32_to_bf16_sr as _f32_to_bf16_sr
from .half import f32_to_f16_sr as _f32_to_f16_sr
from .half import float_from_bits as _float
from .half import sr_bits as _sr_bits
from .half import store_rounded as _store

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


# --- mixed precision: csrc/adam/mixed_ref.c (the conversions: _numba/half.py) ---------------
# uint32 arithmetic: Numba widens integer operations to 64 bits, so every result that can carry
# past bit 31 is cut back with np.uint32() before it is shifted right or compared, and no uint
# value meets a signed one (uint64 with int64 gives float64 in Numba).
_U32 = np.uint32
_BF16_DTYPE = np.dtype(ml_dtypes.bfloat16)
_F16_DTYPE = np.dtype(np.float16)
_F32_DTYPE = np.dtype(np.float32)
_F64_DTYPE = np.dtype(np.float64)
# The smallest float32 magnitudes that round to Inf in float16 / bfloat16 (csrc/adam/variants.c).
_F16_OVERFLOW = np.uint32(0x477FF000)  # 65520.0f
_BF16_OVERFLOW = np.uint32(0x7F7F8000)  # 0x1.ffp127f


def _load(x, i):  # pragma: no cover - replaced by the overload inside jitted code
    raise NotImplementedError


@overload(_load)
def _load_impl(x, i):
    """x[i] as float32, exactly: float32, float16 bits (uint16) or bfloat16 bits (int16)."""
    if x.dtype == nb.types.uint16:
        def load_half(x, i):
            return _f16_to_f32(_U32(x[i]))

        return load_half

    if x.dtype == nb.types.int16:
        def load_bfloat16(x, i):
            return _float(_U32(_U32(np.uint16(x[i])) << _U32(16)))

        return load_bfloat16

    def load(x, i):
        return x[i]

    return load


def _store_sr(out, i, v, r):  # pragma: no cover - replaced by the overload inside jitted code
    raise NotImplementedError


@overload(_store_sr)
def _store_sr_impl(out, i, v, r):
    """out[i] = v rounded stochastically with the random bits r (a half param's bits)."""
    if out.dtype == nb.types.uint16:
        def store_half(out, i, v, r):
            out[i] = _f32_to_f16_sr(v, r)

        return store_half

    if out.dtype == nb.types.int16:
        def store_bfloat16(out, i, v, r):
            out[i] = np.int16(_f32_to_bf16_sr(v, r))

        return store_bfloat16

    def store(out, i, v, r):  # a float32 param is never rounded: no such kernel is called
        out[i] = v

    return store


_PLAIN, _STOCHASTIC, _MASTER = 0, 1, 2  # how a mixed tensor's param is read and written


def _make_mixed(pmode, amsgrad, scaled):
    """The mixed-precision driver of one (param mode, amsgrad, grad scale) choice, serial and
    parallel: chunks of PARALLEL_CHUNK elements (never across a 2^32-element span of the
    stochastic-rounding key, as 2^32 is a multiple of the chunk), each running the element loop
    of mixed_ref.c. The choices are closure constants, so each form is its own straight loop
    (Numba prunes the branches on them); the stream types come from the arrays' dtypes.
    Options that only change arithmetic are selects on loop invariants, as in the plain loop."""
    master_mode = pmode == _MASTER
    stochastic = pmode == _STOCHASTIC

    def drive(p, g, m, v, vmax, master, c, flags, key_lo, key_hi):
        n = g.size
        grad_scale, sign, wd, decay = c[0], c[1], c[2], c[3]
        lerp_w, lerp_wc, beta2, one_minus_beta2 = c[4], c[5], c[6], c[7]
        eps, bc2_sqrt, neg_step_size = c[8], c[9], c[10]
        l2, decoupled, lerp_low = flags[1], flags[2], flags[3]
        chunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
        for k in nb.prange(chunks):
            lo = k * PARALLEL_CHUNK
            hi = min(lo + PARALLEL_CHUNK, n)
            ps, gs, ms, vs = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
            xs = vmax[lo:hi] if amsgrad else vmax
            ws = master[lo:hi] if master_mode else master
            klo = key_lo[lo >> 32] if stochastic else _U32(0)
            khi = key_hi[lo >> 32] if stochastic else _U32(0)
            counter = _U32(lo)  # the low word of the element index, kept in 32 bits
            # range(gs.size): i >= 0 for LLVM, so no negative-index wraparound per access.
            for i in range(gs.size):
                gi = _load(gs, i)
                if scaled:
                    gi = gi / grad_scale
                gi = gi * sign
                if master_mode:
                    pi = ws[i]
                else:
                    pi = _load(ps, i)
                pi = pi * decay if decoupled else pi
                gi = gi + wd * pi if l2 else gi
                mi = _load(ms, i)
                mi = mi + lerp_w * (gi - mi) if lerp_low else gi - (gi - mi) * lerp_wc
                vi = _load(vs, i) * beta2 + (one_minus_beta2 * gi) * gi
                _store(ms, i, mi)
                _store(vs, i, vi)
                if amsgrad:
                    mx = _load(xs, i)
                    mx = vi if (mx < vi or vi != vi) else mx  # torch.maximum: NaN wins from either side
                    _store(xs, i, mx)
                    vi = mx
                denom = np.sqrt(vi) / bc2_sqrt + eps
                pn = pi + (neg_step_size * mi) / denom
                if master_mode:
                    ws[i] = pn
                if stochastic:
                    _store_sr(ps, i, pn, _sr_bits(klo, khi, counter))
                    counter = _U32(counter + _U32(1))
                else:
                    _store(ps, i, pn)

    return serial_and_parallel(drive, error_model="numpy")


_MIXED = {}  # (pmode, amsgrad, scaled) -> (serial, parallel), made on first use


def _mixed_kernels(pmode, amsgrad, scaled):
    key = (pmode, amsgrad, scaled)
    kernels = _MIXED.get(key)
    if kernels is None:
        kernels = _MIXED.setdefault(key, _make_mixed(pmode, amsgrad, scaled))
    return kernels


@nb.njit(**_SERIAL)
def _half_overflows(g, scale, limit):
    """True when any g[i] (half bits) / scale, in float32, is NaN or at least `limit` in
    magnitude (adam_any_nonfinite_half): the grad overflows its own dtype when unscaled."""
    acc = _U32(0)
    for i in range(g.size):
        a = _U32(_bits(_load(g, i) / scale) & _U32(0x7FFFFFFF))
        acc = max(acc, a)  # NaN's bits lie above every limit
    return acc >= limit


def _kernel_view(a):
    """A flat view that the kernels read: float16 as uint16 bits, bfloat16 as int16 bits."""
    flat = a.reshape(-1)
    if a.dtype == _F16_DTYPE:
        return flat.view(np.uint16)
    if a.dtype == _BF16_DTYPE:
        return flat.view(np.int16)
    return flat


_MASK64 = (1 << 64) - 1


def _mix64(z):
    """tp_mix64 (splitmix64's finalizer) on Python ints, wrapping at 64 bits."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _sr_keys(seed, step, index, numel):
    """The low and high words of tp_sr_key(seed, step, index, hi) for each 2^32-element span
    of a tensor of `numel` elements."""
    spans = max(1, (numel + (1 << 32) - 1) >> 32)
    base = _mix64(_mix64(_mix64(seed & _MASK64) ^ (step & _MASK64)) ^ (index & _MASK64))
    keys = [_mix64(base ^ hi) for hi in range(spans)]
    return (np.array([k & 0xFFFFFFFF for k in keys], dtype=np.uint32),
            np.array([k >> 32 for k in keys], dtype=np.uint32))


_NO_KEYS = np.zeros(1, dtype=np.uint32)


# --- the step ---------------------------------------------------------------------------------

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


def _grad_scale_as(dtype, grad_scale):
    """grad_scale in the type the check divides in: float64 for float64 grads, else float32
    (C's (float) cast: beyond float32's range it is Inf, silently)."""
    if dtype == _F64_DTYPE:
        return np.float64(grad_scale)
    with np.errstate(over="ignore"):
        return np.float32(grad_scale)


def _grad_overflows(g, grad_scale):
    """One grad's found-inf check (csrc/adam/step.c: grads_nonfinite)."""
    if g.size == 0:
        return False
    scale = _grad_scale_as(g.dtype, grad_scale)
    if g.dtype == _F32_DTYPE or g.dtype == _F64_DTYPE:
        return bool(_any_nonfinite(g.reshape(-1), scale))
    limit = _BF16_OVERFLOW if g.dtype == _BF16_DTYPE else _F16_OVERFLOW
    return bool(_half_overflows(_kernel_view(g), scale, limit))


def _run(tensors, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, seed):
    """The step over checked tensors: (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq or
    None, master or None, index) each. Returns found_inf."""
    scaled = bool(flags & ADAM_GRAD_SCALE)
    if scaled and any(_grad_overflows(t[1], grad_scale) for t in tensors):
        return True
    amsgrad = bool(flags & ADAM_AMSGRAD)
    stochastic = bool(flags & ADAM_STOCHASTIC_ROUNDING)
    per_dtype = {}
    for p, g, m, v, vmax, master, index in tensors:
        if p.size == 0:
            continue
        plain = (master is None and p.dtype == g.dtype == m.dtype
                 and (p.dtype == _F32_DTYPE or p.dtype == _F64_DTYPE))
        kind = p.dtype if plain else _F32_DTYPE  # mixed tensors compute in float32
        consts = per_dtype.get(kind)
        if consts is None:
            consts = per_dtype[kind] = _constants(kind, step, lr, beta1, beta2, eps, weight_decay,
                                                  grad_scale, flags)
        values, switches = consts
        parallel = use_parallel(p.size, _PARALLEL_MIN)
        if plain:  # all float32 or all float64
            flat = p.reshape(-1)
            vmax_flat = vmax.reshape(-1) if amsgrad else flat[:0]
            kernel = _adam_parallel if parallel else _adam_serial
            kernel(flat, g.reshape(-1), m.reshape(-1), v.reshape(-1), vmax_flat, values, switches)
            continue
        if master is not None:
            pmode = _MASTER
        elif stochastic and p.dtype != _F32_DTYPE:
            pmode = _STOCHASTIC
        else:
            pmode = _PLAIN
        if pmode == _STOCHASTIC:
            key_lo, key_hi = _sr_keys(seed, step, index, p.size)
        else:
            key_lo = key_hi = _NO_KEYS
        mv = _kernel_view(m)
        serial, par = _mixed_kernels(pmode, amsgrad, scaled)
        (par if parallel else serial)(
            _kernel_view(p), _kernel_view(g), mv, _kernel_view(v),
            _kernel_view(vmax) if amsgrad else mv[:0],
            master.reshape(-1) if master is not None else _NO_MASTER,
            values, switches, key_lo, key_hi)
    return False


_NO_MASTER = np.zeros(0, dtype=np.float32)


def _seed_value(seed):
    seed = int(seed)
    if not 0 <= seed <= _MASK64:
        raise InvalidArgumentError(f"adam_step: seed must be in [0, 2**64), got {seed}")
    return seed


def adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, seed=0,
              indices=None, isa=None):
    """`lists`: tuples of arrays (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs or
    None, masters or None). `indices`: each tensor's number for stochastic rounding (None:
    0..n-1). Returns found_inf."""
    check_isa(isa)
    # The checked lists hold plain ndarrays: a subclass's reshape(-1) (np.matrix) is not flat.
    params, grads, exp_avgs, exp_avg_sqs, maxes, masters = _checks.check_adam_tensors(lists)[:6]
    count = len(params)
    if indices is None:
        indices = range(count)
    else:
        indices = [int(i) for i in indices]
        if len(indices) != count:
            raise InvalidArgumentError(f"adam_step: {len(indices)} tensor indices for {count} params")
    if flags & ADAM_AMSGRAD and maxes is None:
        raise InvalidArgumentError("adam_step: amsgrad needs max_exp_avg_sqs")
    tensors = [
        (params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
         maxes[i] if flags & ADAM_AMSGRAD else None,
         masters[i] if masters is not None else None, indices[i])
        for i in range(count)
    ]
    return _run(tensors, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                _seed_value(seed))


# --- raw-address entry for callers that hold tensors, not arrays (tensorpress.torch) ---------
# The same rows the C backend takes (_consts.ADAM_ROW), turned into NumPy arrays over the
# addresses; adam_step's checks (dtypes, alignment, overlap) then hold for them as for any array.
_ROW = struct.Struct(ADAM_ROW)
_ROW_DTYPES = {FLOAT32: _F32_DTYPE, FLOAT64: _F64_DTYPE, FLOAT16: _F16_DTYPE, BFLOAT16: _BF16_DTYPE}


def _array_at(address, numel, dtype, writable):
    if numel == 0:
        return np.empty(0, dtype)
    if address == 0:
        raise InvalidArgumentError("adam_step: a buffer's address is NULL")
    buffer = (ctypes.c_char * (numel * dtype.itemsize)).from_address(address)
    array = np.frombuffer(buffer, dtype)
    array.flags.writeable = writable
    return array


def _row_types_ok(p, g, s, has_master):
    """csrc/adam/step.c: types_ok, on dtype codes."""
    if p == FLOAT64:
        return g == FLOAT64 and s == FLOAT64 and not has_master
    if s not in (FLOAT32, BFLOAT16):
        return False
    if p == FLOAT32:
        return g in (FLOAT32, BFLOAT16, FLOAT16) and not has_master
    return p in (BFLOAT16, FLOAT16) and g in (p, FLOAT32)


def _rows_to_lists(rows, count, amsgrad):
    """The packed rows as adam_step's lists (masters: a None entry where a row has none), and
    each row's tensor index."""
    lists = ([], [], [], [], [] if amsgrad else None, [])
    indices = []
    for i in range(count):
        *addresses, numel, index, code, grad_code, state_code, reserved = _ROW.unpack_from(rows, i * _ROW.size)
        has_master = addresses[5] != 0
        if (numel < 0 or reserved != 0 or code not in _ROW_DTYPES or grad_code not in _ROW_DTYPES
                or state_code not in _ROW_DTYPES or not _row_types_ok(code, grad_code, state_code, has_master)):
            raise InvalidArgumentError(
                f"adam_step: row {i} has dtype codes {code}, {grad_code}, {state_code}"
                f"{' and a master' if has_master else ''}, reserved {reserved} and {numel} elements")
        codes = (code, grad_code, state_code, state_code, state_code, FLOAT32)
        for role, (address, seq, c) in enumerate(zip(addresses, lists, codes)):
            if seq is None:
                continue
            if role == 5 and not has_master:
                seq.append(None)
                continue
            seq.append(_array_at(address, numel, _ROW_DTYPES[c], writable=role != 1))
        indices.append(index)
    if not any(m is not None for m in lists[5]):
        lists = lists[:5] + (None,)
    return lists, indices


def adam_step_packed(rows, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                     seed=0):
    """adam_step over a table of `count` packed rows (bytes), as the C backend's."""
    lists, indices = _rows_to_lists(rows, count, bool(flags & ADAM_AMSGRAD))
    return adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags, seed,
                     indices)


def found_inf_packed(rows, count, grad_scale):
    """True when any grad of the packed rows, divided by grad_scale (in float32, float64 for
    float64), is NaN or Inf or beyond its own dtype's range: adam_step's check, for a step
    split into several calls. Reads the grads only."""
    grads = _rows_to_lists(rows, count, False)[0][1]
    return any(_grad_overflows(g, grad_scale) for g in grads)
