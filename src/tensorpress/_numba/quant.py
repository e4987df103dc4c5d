"""Numba twin of csrc/quant/: the same float32 arithmetic in the same order, hence the same bits.

Layout arguments follow tp_quant.h: (outer, channels, inner, block). x arrives flat: float32,
float64, the uint16 bits of float16 (Numba has no float16 type), decoded by table lookup, or
ml_dtypes.bfloat16, which the kernels see as its bits viewed as int16 (a type of its own to
Numba, so the load overload tells it from float16's uint16) and widen by a shift: the bits
moved into the upper half of a uint32, reinterpreted as float32 in a register (_f32_from_bits).
Serial kernels, cached on disk (parallel Numba kernels cannot be cached and took a minute to
compile per process). Non-finite input returns the first bad channel (block) index instead of
raising, like the C
backend's *bad; the public layer words the exception.
"""

import ml_dtypes
import numba as nb
import numpy as np
from numba.extending import overload

from ..errors import InvalidArgumentError
from . import check_isa
from .half import float_from_bits as _f32_from_bits
from .half import store_rounded as _store

from .._consts import QUANT_AFFINE as AFFINE
from .._consts import QUANT_GIVEN as GIVEN
_INT64_MAX = 2**63 - 1

# Every kernel releases the GIL (nogil), as the C calls do. error_model="numpy": a division by
# zero gives Inf/NaN as in csrc/quant/'s IEEE float arithmetic (a given scale of 0 reached from the
# kernel level) rather than raising ZeroDivisionError.
_KERNEL = dict(nogil=True, cache=True, error_model="numpy")
_F32_MIN = np.float32(np.finfo(np.float32).tiny)  # smallest scale with a finite reciprocal
_F32_MAX = np.float32(np.finfo(np.float32).max)


# Every float16 bit pattern as float32 (exact; NumPy's own conversion), 256 KiB: a table lookup
# is much faster in Numba than decoding the bits.
_HALF_TABLE = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def _load(x, i):  # pragma: no cover - replaced by the overload inside jitted code
    raise NotImplementedError


@overload(_load)
def _load_impl(x, i):
    if x.dtype == nb.types.uint16:
        def load_half(x, i):
            return _HALF_TABLE[x[i]]

        return load_half

    if x.dtype == nb.types.int16:  # bfloat16 bits (see the module docstring)
        def load_bfloat16(x, i):
            return _f32_from_bits(np.uint32(np.uint16(x[i])) << np.uint32(16))

        return load_bfloat16

    def load(x, i):
        return np.float32(x[i])

    return load


@nb.njit(inline="always", **_KERNEL)
def _finite(v):
    return np.isfinite(v)


@nb.njit(inline="always", **_KERNEL)
def _round_clamp(t, zp, qmin):
    """clamp(rint(t) + zp, qmin, 127) in float32, as int8."""
    if t != t:
        t = np.float32(0)  # NaN only reaches here with given scales, and then raises anyway
    r = np.float32(np.rint(t)) + np.float32(zp)
    if r < np.float32(qmin):
        r = np.float32(qmin)
    if r > np.float32(127):
        r = np.float32(127)
    return np.int8(r)


@nb.njit(**_KERNEL)
def _params_sym(a):
    """scale, inv, zero point, qmin from the absmax (float32)."""
    s = a / np.float32(127.0)
    if a == np.float32(0):
        s = np.float32(1.0)
    elif s < _F32_MIN:
        s = _F32_MIN
    return s, np.float32(1.0) / s, 0, -127


@nb.njit(**_KERNEL)
def _params_aff(mn, mx, empty):
    if empty:
        mn = np.float32(0)
        mx = np.float32(0)
    if not mn < np.float32(0):
        mn = np.float32(0)
    if not mx > np.float32(0):
        mx = np.float32(0)
    rng = mx - mn
    s = rng / np.float32(255.0)
    if rng > _F32_MAX:  # +-FLT_MAX data: the float32 range overflowed
        s = np.float32((np.float64(mx) - np.float64(mn)) / 255.0)
    if s == np.float32(0):
        s = np.float32(1.0)
    elif s < _F32_MIN:
        s = _F32_MIN
    z = np.float32(-128.0) - np.float32(np.rint(mn / s))
    if z < np.float32(-128):
        z = np.float32(-128)
    if z > np.float32(127):
        z = np.float32(127)
    return s, np.float32(1.0) / s, int(z), -128


@nb.njit(**_KERNEL)
def _channel_stats(x, outer, channels, inner, affine, a, mn, mx, bad):
    """Per-channel absmax (or min, max) and NaN / Inf flags, walking x in memory order."""
    idx = 0
    for _ in range(outer):
        for c in range(channels):
            for _i in range(inner):
                v = _load(x, idx)
                idx += 1
                if not _finite(v):
                    bad[c] = True
                elif affine:
                    mn[c] = min(mn[c], v)
                    mx[c] = max(mx[c], v)
                else:
                    a[c] = max(a[c], abs(v))


@nb.njit(**_KERNEL)
def _channel_quant(x, q, outer, channels, inner, inv, zp, qmin, check, bad):
    idx = 0
    for _ in range(outer):
        for c in range(channels):
            ic = inv[c]
            z = zp[c]
            for _i in range(inner):
                v = _load(x, idx)
                if check and not _finite(v):
                    bad[c] = True
                q[idx] = _round_clamp(v * ic, z, qmin)
                idx += 1


@nb.njit(**_KERNEL)
def _quantize_channels(x, q, outer, channels, inner, affine, scale, zp_out):
    a = np.zeros(channels, np.float32)
    mn = np.full(channels, np.inf, np.float32)
    mx = np.full(channels, -np.inf, np.float32)
    bad = np.zeros(channels, np.bool_)
    _channel_stats(x, outer, channels, inner, affine, a, mn, mx, bad)
    for c in range(channels):
        if bad[c]:
            return c
    inv = np.empty(channels, np.float32)
    zp = np.zeros(channels, np.int64)
    empty = outer * inner == 0
    for c in range(channels):
        if affine:
            sc, inv[c], zp[c], qmin = _params_aff(mn[c], mx[c], empty)
            zp_out[c] = zp[c]
        else:
            sc, inv[c], zp[c], qmin = _params_sym(a[c])
        scale[c] = sc
    _channel_quant(x, q, outer, channels, inner, inv, zp, -128 if affine else -127, False, bad)
    return -1


@nb.njit(**_KERNEL)
def _quantize_blocks(x, q, rows, nb_, length, block, affine, scale, zp_out):
    """Each block: stats, scale, q. Returns the first bad block or -1."""
    for r in range(rows):
        for b in range(nb_):
            g = r * nb_ + b
            lo = r * length + b * block
            hi = r * length + min((b + 1) * block, length)
            a = np.float32(0)
            mn = np.float32(np.inf)
            mx = np.float32(-np.inf)
            for i in range(lo, hi):
                v = _load(x, i)
                if not _finite(v):
                    return g
                if affine:
                    mn = min(mn, v)
                    mx = max(mx, v)
                else:
                    a = max(a, abs(v))
            if affine:
                sc, inv, zp, qmin = _params_aff(mn, mx, hi == lo)
                zp_out[g] = zp
            else:
                sc, inv, zp, qmin = _params_sym(a)
            scale[g] = sc
            for i in range(lo, hi):
                q[i] = _round_clamp(_load(x, i) * inv, zp, qmin)
    return -1


@nb.njit(**_KERNEL)
def _quantize_given_blocks(x, q, rows, nb_, length, block, scale, zp, has_zp):
    first = -1
    for r in range(rows):
        for b in range(nb_):
            g = r * nb_ + b
            inv = np.float32(1.0) / scale[g]
            z = zp[g] if has_zp else 0
            for i in range(r * length + b * block, r * length + min((b + 1) * block, length)):
                v = _load(x, i)
                if first < 0 and not _finite(v):
                    first = g
                q[i] = _round_clamp(v * inv, z, -128)
    return first


@nb.njit(**_KERNEL)
def _quantize_given_channels(x, q, outer, channels, inner, scale, zp, has_zp):
    inv = np.empty(channels, np.float32)
    z = np.zeros(channels, np.int64)
    for c in range(channels):
        inv[c] = np.float32(1.0) / scale[c]
        if has_zp:
            z[c] = zp[c]
    bad = np.zeros(channels, np.bool_)
    _channel_quant(x, q, outer, channels, inner, inv, z, -128, True, bad)
    for c in range(channels):
        if bad[c]:
            return c
    return -1


@nb.njit(**_KERNEL)
def _dequantize_channels(q, outer, channels, inner, scale, zp, has_zp, out):
    idx = 0
    for _ in range(outer):
        for c in range(channels):
            s = scale[c]
            z = np.int32(zp[c]) if has_zp else np.int32(0)
            for _i in range(inner):
                _store(out, idx, np.float32(np.int32(q[idx]) - z) * s)
                idx += 1


@nb.njit(**_KERNEL)
def _dequantize_blocks(q, rows, nb_, length, block, scale, zp, has_zp, out):
    for r in range(rows):
        for b in range(nb_):
            g = r * nb_ + b
            s = scale[g]
            z = np.int32(zp[g]) if has_zp else np.int32(0)
            for i in range(r * length + b * block, r * length + min((b + 1) * block, length)):
                _store(out, i, np.float32(np.int32(q[i]) - z) * s)


def _normalize(outer, channels, inner, block):
    """The layout as Python ints, checked as csrc/quant/ checks it. Numba types a Python int above
    2**63-1 as uint64, and int64 arithmetic mixed with uint64 wraps: with block_size=2**63,
    min((b + 1) * block, length) came out negative, every block loop was empty, and q came back
    as np.empty left it (every scale 1). So the layout must fit int64 (C's int64_t cannot take more
    either); every block_size up to 2**63-1 is then exact: blocks past the first exist only
    when block < length, so (b + 1) * block < 2 * length cannot overflow."""
    layout = tuple(int(v) for v in (outer, channels, inner, block))
    outer, channels, inner, block = layout
    if min(layout) < 0 or max(layout) > _INT64_MAX:
        raise InvalidArgumentError(f"int8 layout {layout} out of range")
    if block and channels != -(-inner // block):  # Python ints: no overflow near 2**63
        raise InvalidArgumentError(f"int8 layout {layout}: {channels} blocks do not cover a row")
    if not block and channels == 1:
        return 1, 1, outer * inner, 0
    return layout


_NO_ZP = np.zeros(1, np.int8)


def quantize(x, layout, mode, scale, zero_point, q, isa=None):
    """x, q, scale, zero_point flat (zero_point may be None unless AFFINE). Returns the first
    group holding NaN / Inf, or -1."""
    check_isa(isa)
    outer, channels, inner, block = _normalize(*layout)
    zp = zero_point if zero_point is not None else _NO_ZP
    if x.dtype == _BFLOAT16:
        x = x.view(np.int16)
    if mode == GIVEN:
        if block:
            return int(_quantize_given_blocks(x, q, outer, channels, inner, block, scale, zp,
                                              zero_point is not None))
        return int(_quantize_given_channels(x, q, outer, channels, inner, scale, zp,
                                            zero_point is not None))
    affine = mode == AFFINE
    if block:
        return int(_quantize_blocks(x, q, outer, channels, inner, block, affine, scale, zp))
    return int(_quantize_channels(x, q, outer, channels, inner, affine, scale, zp))


def dequantize(q, layout, scale, zero_point, out, isa=None):
    """out: float32, ml_dtypes.bfloat16 (seen as int16 bits) or float16 (as uint16 bits)."""
    check_isa(isa)
    outer, channels, inner, block = _normalize(*layout)
    zp = zero_point if zero_point is not None else _NO_ZP
    if out.dtype == _BFLOAT16:
        out = out.view(np.int16)
    elif out.dtype == np.float16:
        out = out.view(np.uint16)
    if block:
        _dequantize_blocks(q, outer, channels, inner, block, scale, zp, zero_point is not None, out)
    else:
        _dequantize_channels(q, outer, channels, inner, scale, zp, zero_point is not None, out)
