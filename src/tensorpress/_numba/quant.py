"""Numba twin of csrc/quant.c: the same float32 arithmetic in the same order, hence the same bits.

Layout arguments follow tp_quant.h: (outer, channels, inner, block). x arrives flat: float32,
float64, or the uint16 bits of float16 (Numba has no float16 type), decoded here exactly.
Serial kernels, cached on disk (parallel Numba kernels cannot be cached and took a minute to
compile per process). Non-finite input returns the first bad channel (block) index instead of
raising, like the C
backend's *bad; the public layer words the exception.
"""

import math

import numba as nb
import numpy as np
from numba.extending import overload

SYMMETRIC, AFFINE, GIVEN = 0, 1, 2
_F32_MIN = np.float32(np.finfo(np.float32).tiny)  # smallest scale with a finite reciprocal
_F32_MAX = np.float32(np.finfo(np.float32).max)


@nb.njit(cache=True)
def _half(h):
    """IEEE half bits -> float32, exactly."""
    h = np.int64(h)
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = math.ldexp(float(m), -24)
    elif e == 31:
        v = math.inf if m == 0 else math.nan
    else:
        v = math.ldexp(float(1024 + m), int(e) - 25)
    if h & 0x8000:
        v = -v
    return np.float32(v)


def _load(x, i):  # pragma: no cover - replaced by the overload inside jitted code
    raise NotImplementedError


@overload(_load)
def _load_impl(x, i):
    if x.dtype == nb.types.uint16:
        def load_half(x, i):
            return _half(x[i])

        return load_half

    def load(x, i):
        return np.float32(x[i])

    return load


@nb.njit(cache=True, inline="always")
def _finite(v):
    return v - v == np.float32(0)


@nb.njit(cache=True, inline="always")
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


@nb.njit(cache=True)
def _params_sym(a):
    """scale, inv, zero point, qmin from the absmax (float32)."""
    s = a / np.float32(127.0)
    if a == np.float32(0):
        s = np.float32(1.0)
    elif s < _F32_MIN:
        s = _F32_MIN
    return s, np.float32(1.0) / s, 0, -127


@nb.njit(cache=True)
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
    if not _finite(rng):
        s = np.float32((float(mx) - float(mn)) / 255.0)
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


@nb.njit(cache=True, inline="always")
def _stats(x, lo, hi, affine):
    """(absmax or min, max, bad) over x[lo:hi] in float32."""
    a = np.float32(0)
    mn = np.float32(np.inf)
    mx = np.float32(-np.inf)
    bad = False
    for i in range(lo, hi):
        v = _load(x, i)
        if not _finite(v):
            bad = True
        elif affine:
            mn = min(mn, v)
            mx = max(mx, v)
        else:
            a = max(a, abs(v))
    return a, mn, mx, bad


@nb.njit(cache=True, inline="always")
def _quant_range(x, q, lo, hi, inv, zp, qmin):
    for i in range(lo, hi):
        q[i] = _round_clamp(_load(x, i) * inv, zp, qmin)


@nb.njit(cache=True)
def _quantize_groups(x, q, outer, channels, inner, block, affine, scale, zp_out):
    """Stats modes per channel or per block. Returns the first bad group or -1."""
    if block:
        groups = outer * channels
    else:
        groups = channels
    bad = np.zeros(groups, np.bool_)
    for g in range(groups):
        a = np.float32(0)
        mn = np.float32(np.inf)
        mx = np.float32(-np.inf)
        b = False
        empty = True
        lo = 0
        hi = 0
        nseg = 1
        if block:
            r = g // channels
            k = g - r * channels
            lo = r * inner + k * block
            hi = r * inner + min((k + 1) * block, inner)
            nseg = 1
        else:
            nseg = outer
        for s in range(nseg):
            if not block:
                lo = (s * channels + g) * inner
                hi = lo + inner
            ra, rmn, rmx, rb = _stats(x, lo, hi, affine)
            a = max(a, ra)
            mn = min(mn, rmn)
            mx = max(mx, rmx)
            b = b or rb
            empty = empty and hi == lo
        if b:
            bad[g] = True
            continue
        if affine:
            sc, inv, zp, qmin = _params_aff(mn, mx, empty)
            zp_out[g] = zp
        else:
            sc, inv, zp, qmin = _params_sym(a)
        scale[g] = sc
        for s in range(nseg):
            if not block:
                lo = (s * channels + g) * inner
                hi = lo + inner
            _quant_range(x, q, lo, hi, inv, zp, qmin)
    for g in range(groups):
        if bad[g]:
            return g
    return -1


@nb.njit(cache=True)
def _group_of(i, channels, inner, block):
    if block:
        r = i // inner
        return r * channels + (i - r * inner) // block
    return (i // inner) % channels


@nb.njit(cache=True)
def _quantize_given(x, q, channels, inner, block, scale, zp, has_zp):
    n = x.size
    chunk = 16384
    nchunks = (n + chunk - 1) // chunk
    bad = np.zeros(nchunks, np.bool_)
    for k in range(nchunks):
        for i in range(k * chunk, min(n, (k + 1) * chunk)):
            g = _group_of(i, channels, inner, block)
            v = _load(x, i)
            if not _finite(v):
                bad[k] = True
            z = zp[g] if has_zp else 0
            q[i] = _round_clamp(v * (np.float32(1.0) / scale[g]), z, -128)
    first = -1
    if bad.any():
        for i in range(n):
            if not _finite(_load(x, i)):
                g = _group_of(i, channels, inner, block)
                if first < 0 or g < first:
                    first = g
    return first


@nb.njit(cache=True)
def _dequantize(q, channels, inner, block, scale, zp, has_zp, out):
    n = q.size
    chunk = 16384
    nchunks = (n + chunk - 1) // chunk
    for k in range(nchunks):
        for i in range(k * chunk, min(n, (k + 1) * chunk)):
            g = _group_of(i, channels, inner, block)
            z = np.int32(zp[g]) if has_zp else np.int32(0)
            out[i] = np.float32(np.int32(q[i]) - z) * scale[g]


def _normalize(outer, channels, inner, block):
    if not block and channels == 1:
        return 1, 1, outer * inner, 0
    return outer, channels, inner, block


def quantize(x, layout, mode, scale, zero_point, q):
    """x, q, scale, zero_point flat (zero_point may be None unless AFFINE). Returns the first
    group holding NaN / Inf, or -1."""
    outer, channels, inner, block = _normalize(*layout)
    if mode == GIVEN:
        if x.size == 0:
            return -1
        zp = zero_point if zero_point is not None else np.zeros(1, np.int8)
        return int(_quantize_given(x, q, channels, max(inner, 1), block, scale, zp,
                                   zero_point is not None))
    affine = mode == AFFINE
    zp = zero_point if zero_point is not None else np.zeros(1, np.int8)
    return int(_quantize_groups(x, q, outer, channels, inner, block, affine, scale, zp))


def dequantize(q, layout, scale, zero_point, out):
    outer, channels, inner, block = _normalize(*layout)
    if q.size == 0:
        return
    zp = zero_point if zero_point is not None else np.zeros(1, np.int8)
    _dequantize(q, channels, max(inner, 1), block, scale, zp, zero_point is not None, out)
