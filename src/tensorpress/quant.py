"""int8 quantization: per tensor, per channel (any axis) and per block, symmetric or affine.

    q, scale = tp.quantize_int8(w, axis=0)                      # symmetric, q in [-127, 127]
    q, scale, zp = tp.quantize_int8(w, axis=0, symmetric=False)  # affine, q in [-128, 127]
    q, scale = tp.quantize_int8(w, block_size=32)              # ggml Q8_0-style blocks
    w_hat = tp.dequantize_int8(q, scale, axis=0)
    w_hat = tp.dequantize_int8(q, scale, axis=0, dtype=ml_dtypes.bfloat16)  # or np.float16
    err = tp.quantization_error(w, q, scale, axis=0)           # max_abs, rms, snr_db

Arithmetic (torch's convention, float32 throughout):
    q = clamp(round_half_even(x * (1 / scale)) + zero_point)    reciprocal in float32
    x_hat = float32(q - zero_point) * scale    then, for a bfloat16 / float16 output, rounded to
                                               nearest even (x_hat.astype(dtype) bit for bit)
With float32 scales this is ``torch.quantize_per_channel(x, scale, zero_point, axis,
torch.qint8).int_repr()`` bit for bit, and the computed scales are those of torch's
``PerChannelMinMaxObserver`` (``per_channel_symmetric`` with quant range -127..127, or
``per_channel_affine``), except that torch clamps scales below float32 eps (1.19e-7) up to eps
while tensorpress keeps them (down to the smallest normal float32), and that an all-zero
channel gets scale 1 here (torch: eps). float64, float16 and bfloat16 (``ml_dtypes.bfloat16``)
inputs are rounded to float32 first (float16 and bfloat16 exactly): the results are those of the
same call on ``x.astype(np.float32)``.
"""

import math
from typing import NamedTuple

import ml_dtypes
import numpy as np

from . import _checks
from ._backend import quant as _k
from ._consts import QUANT_AFFINE, QUANT_GIVEN, QUANT_SYMMETRIC
from .errors import DTypeError, InvalidArgumentError, NonFiniteError


BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
INPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BFLOAT16)
OUTPUT_DTYPES = (np.dtype(np.float32), BFLOAT16, np.dtype(np.float16))
_F32_TINY = float(np.finfo(np.float32).tiny)


class _Default:
    def __repr__(self):
        return "0"


_AXIS_DEFAULT = _Default()


class QuantizationError(NamedTuple):
    """What quantization cost: the largest absolute error, the root-mean-square error, and the
    signal-to-noise ratio 10*log10(sum x^2 / sum (x - x_hat)^2) in dB (inf when exact)."""

    max_abs: float
    rms: float
    snr_db: float


def _array(x, name):
    x = _checks.require_ndarray(x, name)
    _checks.require_contiguous(x, name)
    _checks.require_aligned(x, name)
    return x


def _axis_index(axis, ndim, name="axis"):
    if isinstance(axis, (bool, np.bool_)):
        raise DTypeError(f"{name} must be an int or None, got bool")
    try:
        axis = int(axis.__index__())
    except (AttributeError, TypeError):
        raise DTypeError(f"{name} must be an int or None, got {type(axis).__name__}") from None
    if not -ndim <= axis < ndim:
        raise InvalidArgumentError(f"{name}={axis} is out of range for an array with {ndim} dimensions")
    return axis % ndim


def _layout(shape, axis, block_size, what):
    """(outer, channels, inner, block) and the shape of the scales."""
    ndim = len(shape)
    if block_size is not None:
        block = _checks.positive_int(block_size, "block_size")
        if axis is not _AXIS_DEFAULT and axis is not None:
            if _axis_index(axis, max(ndim, 1)) != ndim - 1:
                raise InvalidArgumentError(
                    f"{what}: blocks run along the last axis; axis={axis} cannot be combined with block_size"
                )
        if ndim == 0:
            raise InvalidArgumentError(f"{what}: block_size needs an array with at least one dimension")
        length = shape[-1]
        nb = -(-length // block)
        outer = math.prod(shape[:-1])
        return (outer, nb, length, block), tuple(shape[:-1]) + (nb,)
    if axis is _AXIS_DEFAULT:
        axis = 0
    if axis is None or ndim == 0:
        if axis is not None and ndim == 0:
            raise InvalidArgumentError(f"{what}: a 0-d array has no axis {axis}; use axis=None")
        n = math.prod(shape)
        return (1, 1, n, 0), ()
    ax = _axis_index(axis, ndim)
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    return (outer, shape[ax], inner, 0), (shape[ax],)


def _given_scale(scale, scale_shape, name="scale"):
    s = np.asarray(scale)
    if s.dtype.kind != "f":
        raise DTypeError(f"{name} must hold floats (float32 preferred), got dtype {s.dtype}")
    if s.size != math.prod(scale_shape) or (s.ndim and s.shape != scale_shape and s.shape != (s.size,)):
        raise InvalidArgumentError(f"{name} has shape {s.shape}; expected {scale_shape} (one per channel or block)")
    s = np.ascontiguousarray(s, dtype=np.float32).reshape(scale_shape)
    if not np.all(np.isfinite(s)):
        raise NonFiniteError(f"{name} holds NaN or Inf")
    if s.size and not np.all(s >= _F32_TINY):
        raise InvalidArgumentError(f"{name} must be >= {_F32_TINY:.3g} (its float32 reciprocal must be finite)")
    return s


def _given_zero_point(zero_point, scale_shape, name="zero_point"):
    z = np.asarray(zero_point)
    if z.dtype.kind not in "iu":
        raise DTypeError(f"{name} must hold integers, got dtype {z.dtype}")
    if z.size != math.prod(scale_shape) or (z.ndim and z.shape != scale_shape and z.shape != (z.size,)):
        raise InvalidArgumentError(f"{name} has shape {z.shape}; expected {scale_shape}")
    if z.size and (z.min() < -128 or z.max() > 127):
        raise InvalidArgumentError(f"{name} must lie in [-128, 127]")
    return np.ascontiguousarray(z, dtype=np.int8).reshape(scale_shape)


def _describe_group(index, layout, scale_shape, axis):
    outer, channels, inner, block = layout
    if block:
        where = np.unravel_index(index, scale_shape)
        return f"block {tuple(int(i) for i in where)} (block_size={block})"
    if channels == 1 and scale_shape == ():
        return "the tensor"
    return f"channel {index} along axis {axis}"


def _flat_input(x):
    """x flat as the backends take it: float16 as its uint16 bits; bfloat16 as it is."""
    flat = x.reshape(-1)
    return flat.view(np.uint16) if x.dtype == np.float16 else flat


def quantize_int8(x, axis=_AXIS_DEFAULT, *, symmetric=True, scale=None, zero_point=None, block_size=None):
    """Quantize a float array to int8 with one scale per tensor, channel or block.

    x: float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16``) ndarray, C-contiguous
       (tensorpress never copies silently; pass ``np.ascontiguousarray(x)``). float64 is rounded
       to float32 first; float16 and bfloat16 convert exactly (q, scale and zero_point are those
       of ``x.astype(np.float32)``), read in place, never through a converted copy.
    axis: the channel axis (default 0; negative counts from the end); None = one scale for the
       whole tensor. With ``block_size`` it may only be left out, None or the last axis.
    symmetric: True: scale = absmax / 127, q in [-127, 127], returns (q, scale).
       False: affine, the [min, max] range widened to include 0, scale = range / 255,
       zero_point = clamp(-128 - round(min / scale)), q in [-128, 127]; returns (q, scale,
       zero_point).
    scale, zero_point: caller-given parameters (one per channel or block, float scales rounded to
       float32, integer zero points in [-128, 127]); q is then clamped to [-128, 127], exactly
       torch.quantize_per_channel(..., torch.qint8). Returns (q, scale) or, with zero_point or
       symmetric=False, (q, scale, zero_point).
    block_size: groups of this many consecutive elements along the last axis get one scale each
       (the last group of a row may be short); scale has shape x.shape[:-1] + (nblocks,).

    All-zero (and empty) channels get scale 1. Raises NonFiniteError (a ValueError) naming the
    first channel or block that holds NaN or Inf (or a float64 beyond float32 range).
    """
    x = _array(x, "x")
    _checks.require_dtype(x, INPUT_DTYPES, "x")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise DTypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    layout, scale_shape = _layout(x.shape, axis, block_size, "quantize_int8")
    if zero_point is not None and scale is None:
        raise InvalidArgumentError("zero_point= needs scale= as well (both given, or both computed)")
    q = np.empty(x.shape, np.int8)
    if scale is not None:
        mode = QUANT_GIVEN
        scale_arr = _given_scale(scale, scale_shape)
        zp_arr = _given_zero_point(zero_point, scale_shape) if zero_point is not None else None
        if zp_arr is None and not symmetric:
            zp_arr = np.zeros(scale_shape, np.int8)
    else:
        mode = QUANT_SYMMETRIC if symmetric else QUANT_AFFINE
        scale_arr = np.empty(scale_shape, np.float32)
        zp_arr = None if symmetric else np.empty(scale_shape, np.int8)
    bad = _k.quantize(
        _flat_input(x), layout, mode, scale_arr.reshape(-1),
        None if zp_arr is None else zp_arr.reshape(-1), q.reshape(-1),
    )
    if bad >= 0:
        ax = None if axis is _AXIS_DEFAULT else axis
        raise NonFiniteError(
            f"quantize_int8: x holds NaN or Inf (or a value beyond float32 range) in "
            f"{_describe_group(bad, layout, scale_shape, 0 if ax is None else ax)}"
        )
    if zp_arr is not None:
        return q, scale_arr, zp_arr
    return q, scale_arr


def _output_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}") from None
    if dt not in OUTPUT_DTYPES:
        raise DTypeError(f"dtype {dt} is not an output of dequantize_int8; expected float32, bfloat16 or float16")
    return dt


def dequantize_int8(q, scale, zero_point=None, axis=_AXIS_DEFAULT, out=None, *, block_size=None, dtype=None):
    """float32(q - zero_point) * scale, with the layout quantize_int8 used (axis / block_size).

    q: int8 C-contiguous ndarray; scale: float scales (rounded to float32) of the shape
    quantize_int8 returned; zero_point: int8 zero points or None (0).
    out: a float32, bfloat16 (``ml_dtypes.bfloat16``) or float16 C-contiguous writable array of
       q's shape to write into (returned).
    dtype: the result's type when no ``out`` is given: float32 (default), ``ml_dtypes.bfloat16``
       or ``np.float16``; with ``out`` it may only repeat out's dtype. The float32 result is
       computed as for float32 and then rounded to nearest even (ties to even; float16 overflows
       to Inf), bit for bit ``x_hat32.astype(dtype)``.
    """
    q = _array(q, "q")
    if q.dtype != np.int8:
        raise DTypeError(f"q has dtype {q.dtype}; expected int8")
    layout, scale_shape = _layout(q.shape, axis, block_size, "dequantize_int8")
    s = np.asarray(scale)
    if s.dtype.kind != "f":
        raise DTypeError(f"scale must hold floats, got dtype {s.dtype}")
    if s.size != math.prod(scale_shape) or (s.ndim and s.shape != scale_shape and s.shape != (s.size,)):
        raise InvalidArgumentError(f"scale has shape {s.shape}; expected {scale_shape} (one per channel or block)")
    s = np.ascontiguousarray(s, dtype=np.float32).reshape(-1)
    z = None if zero_point is None else _given_zero_point(zero_point, scale_shape).reshape(-1)
    want = None if dtype is None else _output_dtype(dtype)
    if out is None:
        out = result = np.empty(q.shape, np.float32 if want is None else want)
    else:
        result = out  # returned as given (an ndarray subclass stays one), written through a plain view
        out = _array(out, "out")
        if out.dtype not in OUTPUT_DTYPES:
            raise DTypeError(f"out has dtype {out.dtype}; expected float32, bfloat16 or float16")
        if want is not None and out.dtype != want:
            raise DTypeError(f"out has dtype {out.dtype} but dtype={want} was asked for")
        if out.shape != q.shape:
            raise InvalidArgumentError(f"out has shape {out.shape}; expected {q.shape}")
        _checks.require_writable(out, "out")
        spans = [("q", q, False), ("scale", s, False), ("out", out, True)]
        if z is not None:
            spans.append(("zero_point", z, False))
        _checks.require_no_overlap(spans)
    _k.dequantize(q.reshape(-1), layout, s, z, out.reshape(-1))
    return result


_ERROR_CHUNK = 1 << 20


def quantization_error(x, q, scale, zero_point=None, axis=_AXIS_DEFAULT, *, block_size=None):
    """How far dequantize_int8(q, scale, zero_point, axis, block_size) lies from x.

    x: float32, float64, float16 or bfloat16, as quantize_int8 takes it.
    Returns QuantizationError(max_abs, rms, snr_db), accumulated in float64 over the float32
    reconstruction. SNR is inf when the reconstruction is exact, -inf when x is all zeros but
    the reconstruction is not.
    """
    x = _array(x, "x")
    _checks.require_dtype(x, INPUT_DTYPES, "x")
    q = _array(q, "q")
    if q.shape != x.shape:
        raise InvalidArgumentError(f"q has shape {q.shape} but x has {x.shape}")
    x_hat = dequantize_int8(q, scale, zero_point, axis, block_size=block_size).reshape(-1)
    xf = x.reshape(-1)
    max_abs = 0.0
    noise = 0.0
    signal = 0.0
    for lo in range(0, xf.size, _ERROR_CHUNK):
        xs = xf[lo:lo + _ERROR_CHUNK].astype(np.float64)
        d = x_hat[lo:lo + _ERROR_CHUNK] - xs
        if not np.all(np.isfinite(xs)):
            raise NonFiniteError("quantization_error: x holds NaN or Inf")
        if d.size:
            max_abs = max(max_abs, float(np.max(np.abs(d))))
        noise += float(np.dot(d, d))
        signal += float(np.dot(xs, xs))
    n = max(xf.size, 1)
    rms = float(np.sqrt(noise / n))
    if noise == 0.0:
        snr = float("inf")
    elif signal == 0.0:
        snr = float("-inf")
    else:
        snr = float(10.0 * np.log10(signal / noise))
    return QuantizationError(max_abs, rms, snr)


__all__ = ["quantize_int8", "dequantize_int8", "quantization_error", "QuantizationError"]
