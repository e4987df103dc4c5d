"""Top-k magnitude pruning: exact-k masks, thresholds, in-place pruning, global and N:M masks.

    mask = tp.topk_mask(w, 0.1)              # the 10% largest |w|, exactly round(0.1 * w.size)
    mask = tp.topk_mask(w, 64, axis=1)       # 64 per row
    t = tp.topk_threshold(w, 0.1)            # |w| of the k-th largest
    mask = tp.prune_(w, 0.1)                 # zero the rest in place
    masks = tp.global_topk_masks([w1, w2], 0.1)
    mask = tp.nm_mask(w, n=2, m=4)           # 2:4 structured sparsity

Semantics shared by every function and both backends:
- k is an int in [0, n], or a float in [0, 1] meaning ``round(k * n)`` with Python's rounding
  (torch.nn.utils.prune's convention); n is the size of the array, slice or concatenation.
- Exactly k entries are kept; among equal magnitudes at the threshold the lower flat index is
  kept (ONNX TopK's rule), so results never depend on the backend, SIMD variant or threads.
- Inputs are C-contiguous float16 / bfloat16 (ml_dtypes) / float32 / float64 arrays (never
  copied silently). NaN raises NonFiniteError (a ValueError); Inf is a valid largest magnitude.
  A bfloat16 input gives the masks of the same call on its float32 conversion, and its
  thresholds are those of the float32 call as bfloat16 (exact: they are input values).
- Masks are bool arrays of the input's shape; ``packed=True`` returns
  ``np.packbits(mask.reshape(-1))`` instead: uint8, 8x smaller (``np.unpackbits(p,
  count=x.size).reshape(x.shape)`` restores the mask).

The selection is a radix select on the magnitude bits in O(n) (see csrc/topk/): no sort.
"""

import math
import numbers
import operator

import ml_dtypes
import numpy as np

from . import _checks
from ._backend import topk as _kernels
from .errors import DTypeError, InvalidArgumentError, NonFiniteError


TOPK_DTYPES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32),
               np.dtype(np.float64))
_UNSIGNED = {np.dtype(np.float16): np.uint16, np.dtype(ml_dtypes.bfloat16): np.uint16,
             np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}

__all__ = ["topk_mask", "topk_threshold", "prune_", "global_topk_masks", "nm_mask"]


def _array(x, name="x", index=None, writable=False):
    x = _checks.require_ndarray(x, name, index)
    _checks.require_dtype(x, TOPK_DTYPES, name, index)
    _checks.require_contiguous(x, name, index)
    _checks.require_aligned(x, name, index)
    if writable:
        _checks.require_writable(x, name, index)
    return x


def resolve_k(k, n):
    """k as a count for n elements: an int in [0, n], or a float in [0, 1] -> round(k * n)."""
    if isinstance(k, (bool, np.bool_)):
        raise DTypeError("k must be an int count or a float fraction, got bool")
    if isinstance(k, numbers.Integral):
        k = operator.index(k)
        if not 0 <= k <= n:
            raise InvalidArgumentError(f"k = {k} is out of range: expected 0 <= k <= {n}")
        return k
    if isinstance(k, numbers.Real):
        f = float(k)
        if math.isnan(f) or not 0.0 <= f <= 1.0:
            raise InvalidArgumentError(f"a fractional k must be in [0, 1], got {f}")
        return int(round(f * n))
    raise DTypeError(f"k must be an int count or a float fraction, got {type(k).__name__}")


def _axis(x, axis):
    """(outer, length, inner) of x around a normalized axis."""
    axis = _checks.integer(axis, "axis", "an int or None")
    if not -x.ndim <= axis < x.ndim:
        raise InvalidArgumentError(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    axis %= x.ndim
    outer = math.prod(x.shape[:axis])
    inner = math.prod(x.shape[axis + 1:])
    return axis, outer, x.shape[axis], inner


def _new_mask(size, shape, packed):
    if packed:
        return np.zeros((size + 7) // 8, np.uint8)
    return np.empty(shape, np.bool_)


def _from_key(key, dtype):
    return np.array(key, dtype=_UNSIGNED[dtype]).view(dtype)


def _reraise_nan(exc, what):
    raise NonFiniteError(f"{what}: the input contains NaN") from exc


def _run(x, k, axis, packed, zero, what):
    """The mask (or None with zero-only) of x per the shared semantics."""
    if axis is None or x.ndim == 0:
        if axis is not None:
            raise InvalidArgumentError("axis must be None for a 0-d array")
        k = resolve_k(k, x.size)
        mask = _new_mask(x.size, x.shape, packed)
        try:
            _kernels.topk_select([x], k, [mask], packed=packed, zero=zero)
        except NonFiniteError as exc:
            _reraise_nan(exc, what)
        return mask
    axis, outer, length, inner = _axis(x, axis)
    k = resolve_k(k, length)
    mask = _new_mask(x.size, x.shape, packed)
    try:
        if outer * inner == 1:
            _kernels.topk_select([x], k, [mask], packed=packed, zero=zero)
        else:
            _kernels.topk_rows(x, outer, length, inner, k, mask, packed=packed, zero=zero)
    except NonFiniteError as exc:
        _reraise_nan(exc, what)
    return mask


def topk_mask(x, k, axis=None, *, packed=False):
    """A mask keeping the k entries of largest magnitude of x: exactly k True, per slice along
    `axis` when it is given (k then counts within each slice). Ties at the threshold keep the
    lower index. Returns a bool array of x's shape, or with ``packed=True`` the uint8 bytes of
    ``np.packbits(mask.reshape(-1))``."""
    x = _array(x)
    return _run(x, k, axis, bool(packed), False, "topk_mask")


def prune_(x, k, axis=None, *, packed=False):
    """Zero, in place, every entry of x but the k of largest magnitude (per slice along `axis`
    when given) and return the mask of the kept entries (see topk_mask). Dropped entries become
    +0.0; nothing is modified when the input holds a NaN."""
    x = _array(x, writable=True)
    return _run(x, k, axis, bool(packed), True, "prune_")


def topk_threshold(x, k, axis=None):
    """The magnitude of the k-th largest entry of x (1 <= k <= n), as a scalar of x's dtype; with
    `axis`, an array of one threshold per slice (x's shape without that axis). Keeping
    ``|x| > t`` plus enough ``|x| == t`` (lowest index first) is exactly topk_mask."""
    x = _array(x)
    if axis is None or x.ndim == 0:
        if axis is not None:
            raise InvalidArgumentError("axis must be None for a 0-d array")
        n, shape = x.size, None
    else:
        axis, outer, n, inner = _axis(x, axis)
        shape = x.shape[:axis] + x.shape[axis + 1:]
    k = resolve_k(k, n)
    if k == 0:
        raise InvalidArgumentError(f"topk_threshold needs k >= 1 (k resolved to 0 of {n} entries): there is no 0-th largest")
    try:
        if shape is None:
            key = _kernels.topk_select([x], k, None)
            return _from_key(key, x.dtype)[()]
        keys = np.zeros(outer * inner, np.uint64)
        _kernels.topk_rows(x, outer, n, inner, k, None, thresholds=keys)
    except NonFiniteError as exc:
        _reraise_nan(exc, "topk_threshold")
    return keys.astype(_UNSIGNED[x.dtype]).view(x.dtype).reshape(shape)


def global_topk_masks(arrays, k, *, packed=False):
    """One mask per array keeping the k entries of largest magnitude across all of them, as if
    they were concatenated in order (like torch.nn.utils.prune.global_unstructured), without
    concatenating: exactly k True in total, ties to the lower index of the concatenation.
    k counts (or, as a fraction, scales) the total number of entries. The arrays share one
    dtype. Returns a list of bool masks (or packed bytes, see topk_mask)."""
    if isinstance(arrays, np.ndarray):
        raise DTypeError("global_topk_masks takes a list of arrays, got one array")
    try:
        arrays = list(arrays)
    except TypeError:
        raise DTypeError(f"arrays must be a list of arrays, got {type(arrays).__name__}") from None
    for i, a in enumerate(arrays):
        a = arrays[i] = _array(a, "arrays", i)
        if a.dtype != arrays[0].dtype:
            raise DTypeError(f"arrays[{i}] has dtype {a.dtype} but arrays[0] has {arrays[0].dtype}")
    total = sum(a.size for a in arrays)
    k = resolve_k(k, total)
    packed = bool(packed)
    masks = [_new_mask(a.size, a.shape, packed) for a in arrays]
    if arrays:
        try:
            _kernels.topk_select(arrays, k, masks, packed=packed)
        except NonFiniteError as exc:
            _reraise_nan(exc, "global_topk_masks")
    return masks


def nm_mask(x, n=2, m=4, axis=-1):
    """N:M structured sparsity: in every group of m consecutive entries along `axis` keep the n
    of largest magnitude (ties: lower index). The length along `axis` must be a multiple of m;
    0 <= n <= m <= 64. Returns a bool mask of x's shape."""
    x = _array(x)
    if x.ndim == 0:
        raise InvalidArgumentError("nm_mask needs an array of at least one dimension")
    m = _checks.positive_int(m, "m")
    n = _checks.integer(n, "n")
    if m > 64:
        raise InvalidArgumentError(f"m must be <= 64, got {m}")
    if not 0 <= n <= m:
        raise InvalidArgumentError(f"n must be in [0, m] = [0, {m}], got {n}")
    axis, outer, length, inner = _axis(x, axis)
    if length % m:
        raise InvalidArgumentError(f"the length along axis {axis} ({length}) is not a multiple of m = {m}")
    mask = np.empty(x.shape, np.bool_)
    try:
        _kernels.nm_mask(x, outer, length, inner, n, m, mask)
    except NonFiniteError as exc:
        _reraise_nan(exc, "nm_mask")
    return mask
