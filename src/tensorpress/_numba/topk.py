"""Numba twin of csrc/topk/: the same radix selection on magnitude keys, hence the same masks.

The answer (exactly k kept, ties at the threshold to the lower flat index) is unique, so any
correct selection agrees with the C kernels bit for bit; this one follows the same steps in a
simpler order: a histogram of the top digit, the candidates of the threshold's bucket collected
in index order, radix selection among them with 8-bit digits, then one pass applying the rule
"key > T, or key == T and index <= cut".
"""

import ml_dtypes
import numba as nb
import numpy as np

from ..errors import NonFiniteError
from . import check_isa, use_parallel

# (unsigned view dtype, sign-clearing mask, key of Inf, top-digit shift) per float dtype; the
# top digit has the same width as in csrc/topk/. Numba has no bfloat16: like float16 it is
# read as its uint16 bits, whose magnitude keys order as the values do (Inf's key 0x7F80).
_KEYS = {
    np.dtype(np.float16): (np.uint16, 0x7FFF, 0x7C00, 4),
    np.dtype(ml_dtypes.bfloat16): (np.uint16, 0x7FFF, 0x7F80, 4),
    np.dtype(np.float32): (np.uint32, 0x7FFFFFFF, 0x7F800000, 19),
    np.dtype(np.float64): (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, 48),
}
_ROWS_PARALLEL_MIN = 1 << 18
# Every kernel releases the GIL (nogil), as the C calls do. Divisions here are integer ones by
# lengths the callers keep positive, so Numba's default error model stays.
_SERIAL = dict(nogil=True, cache=True)
_PARALLEL = dict(nogil=True, parallel=True)  # parallel + cache segfaults


def _view(x):
    return x.reshape(-1).view(_KEYS[x.dtype][0])


@nb.njit(**_SERIAL)
def _hist(u, absmask, infkey, shift, h):
    """Histogram of (key >> shift) into h; True when a NaN is seen."""
    nan = False
    sh = np.uint64(shift)
    for i in range(u.size):
        key = np.uint64(u[i] & absmask)
        if key > infkey:
            nan = True
        h[key >> sh] += 1
    return nan


@nb.njit(**_SERIAL)
def _any_nan(u, absmask, infkey):
    for i in range(u.size):
        if np.uint64(u[i] & absmask) > infkey:
            return True
    return False


@nb.njit(**_SERIAL)
def _bucket(h, need):
    """The digit whose bucket holds the need-th largest key, the count above it, its count."""
    above = 0
    d = h.size - 1
    while d > 0:
        if above + h[d] >= need:
            break
        above += h[d]
        d -= 1
    return d, above, h[d]


@nb.njit(**_SERIAL)
def _collect(u, absmask, shift, digit, base, cidx, ckey, w):
    sh = np.uint64(shift)
    dg = np.uint64(digit)
    for i in range(u.size):
        key = np.uint64(u[i] & absmask)
        if (key >> sh) == dg:
            cidx[w] = base + i
            ckey[w] = key
            w += 1
    return w


@nb.njit(**_SERIAL)
def _select_candidates(cidx, ckey, count, need, shift):
    """As select_candidates in csrc/topk/candidates.c: (threshold key, index of the last tied element kept)."""
    while shift > 0 and count > need:
        bits = 8 if shift >= 8 else shift
        ns = shift - bits
        dmask = np.uint64((1 << bits) - 1)
        h = np.zeros(256, np.int64)
        for i in range(count):
            h[(ckey[i] >> np.uint64(ns)) & dmask] += 1
        above = 0
        b = (1 << bits) - 1
        while b > 0:
            if above + h[b] >= need:
                break
            above += h[b]
            b -= 1
        need -= above
        w = 0
        for i in range(count):
            if ((ckey[i] >> np.uint64(ns)) & dmask) == b:
                cidx[w] = cidx[i]
                ckey[w] = ckey[i]
                w += 1
        count = w
        shift = ns
    if count == need:
        t = ckey[0]
        for i in range(1, count):
            if ckey[i] < t:
                t = ckey[i]
        cut = -1
        for i in range(count):
            if ckey[i] == t:
                cut = cidx[i]
        return t, cut
    return ckey[0], cidx[need - 1]


@nb.njit(**_SERIAL)
def _apply(u, absmask, threshold, cut, base, mask, packed):
    """Write the rule "key > T, or key == T and index <= cut" into mask (never writes u, so
    read-only inputs type-check)."""
    for i in range(u.size):
        key = np.uint64(u[i] & absmask)
        keep = key > threshold or (key == threshold and base + i <= cut)
        if packed:
            if keep:
                mask[i >> 3] |= np.uint8(0x80 >> (i & 7))
        else:
            mask[i] = keep


@nb.njit(**_SERIAL)
def _zero(u, absmask, threshold, cut, base):
    """Zero every element the rule drops."""
    for i in range(u.size):
        key = np.uint64(u[i] & absmask)
        if not (key > threshold or (key == threshold and base + i <= cut)):
            u[i] = 0


@nb.njit(**_SERIAL)
def _slice_select(keys, k, shift, h, cidx, ckey):
    """(threshold, cut) of one slice of keys (uint64), cut relative to the slice."""
    h[:] = 0
    sh = np.uint64(shift)
    for i in range(keys.size):
        h[keys[i] >> sh] += 1
    d, above, c = _bucket(h, k)
    dg = np.uint64(d)
    w = 0
    for i in range(keys.size):
        if (keys[i] >> sh) == dg:
            cidx[w] = i
            ckey[w] = keys[i]
            w += 1
    return _select_candidates(cidx, ckey, w, k - above, shift)


@nb.njit(**_SERIAL)
def _row(u, o, j, length, inner, k, absmask, infkey, shift, nbuckets, mask, packed, tt, cc, r):
    """Select in slice r = (o, j); write its mask; record its threshold and cut in tt, cc."""
    base = o * length * inner + j
    keys = np.empty(length, np.uint64)
    nan = False
    for l in range(length):
        key = np.uint64(u[base + l * inner] & absmask)
        keys[l] = key
        if key > infkey:
            nan = True
    if k == 0:
        t = np.uint64(absmask)
        cut = -1
    else:
        h = np.zeros(nbuckets, np.int64)
        cidx = np.empty(length, np.int64)
        ckey = np.empty(length, np.uint64)
        t, cut = _slice_select(keys, k, shift, h, cidx, ckey)
    tt[r] = t
    cc[r] = cut
    if mask.size:
        for l in range(length):
            key = keys[l]
            keep = key > t or (key == t and l <= cut)
            p = base + l * inner
            if packed:
                bit = np.uint8(0x80 >> (p & 7))
                if keep:
                    mask[p >> 3] |= bit
                else:
                    mask[p >> 3] &= ~bit
            else:
                mask[p] = keep
    return nan


@nb.njit(**_SERIAL)
def _rows_serial(u, outer, length, inner, k, absmask, infkey, shift, nbuckets, mask, packed,
                 tt, cc):
    nan = False
    for r in range(outer * inner):
        if _row(u, r // inner, r % inner, length, inner, k, absmask, infkey, shift, nbuckets,
                mask, packed, tt, cc, r):
            nan = True
    return nan


@nb.njit(**_PARALLEL)
def _rows_parallel(u, outer, length, inner, k, absmask, infkey, shift, nbuckets, mask, tt, cc):
    rows = outer * inner
    flags = np.zeros(rows, np.bool_)
    for r in nb.prange(rows):
        flags[r] = _row(u, r // inner, r % inner, length, inner, k, absmask, infkey, shift,
                        nbuckets, mask, False, tt, cc, r)
    return flags.any()


@nb.njit(**_SERIAL)
def _rows_zero(u, outer, length, inner, absmask, tt, cc):
    for r in range(outer * inner):
        base = (r // inner) * length * inner + r % inner
        for l in range(length):
            p = base + l * inner
            key = np.uint64(u[p] & absmask)
            if not (key > tt[r] or (key == tt[r] and l <= cc[r])):
                u[p] = 0


def topk_select(arrays, k, masks, packed=False, zero=False, isa=None):
    """See tensorpress._native.topk.topk_select."""
    check_isa(isa)
    udt, absmask, infkey, shift = _KEYS[arrays[0].dtype]
    absmask, infkey = udt(absmask), np.uint64(infkey)
    views = [_view(a) for a in arrays]
    total = sum(v.size for v in views)
    if total == 0:
        return 0
    width = {np.uint16: 15, np.uint32: 31, np.uint64: 63}[udt]
    h = np.zeros(1 << (width - shift), np.int64)
    nan = False
    for v in views:
        nan |= _hist(v, absmask, infkey, shift, h)
    if nan:
        raise NonFiniteError("topk: non-finite value (NaN or Inf)")
    if k == 0:
        threshold, cut, key_out = np.uint64(absmask), -1, 0
    else:
        d, above, count = _bucket(h, k)
        cidx = np.empty(count, np.int64)
        ckey = np.empty(count, np.uint64)
        w, base = 0, 0
        for v in views:
            w = _collect(v, absmask, shift, d, base, cidx, ckey, w)
            base += v.size
        threshold, cut = _select_candidates(cidx, ckey, count, k - above, shift)
        key_out = int(threshold)
    if masks is None and not zero:
        return key_out
    base = 0
    for i, v in enumerate(views):
        if v.size:
            if masks is not None:
                _apply(v, absmask, np.uint64(threshold), cut, base, masks[i].reshape(-1).view(np.uint8), packed)
            if zero:
                _zero(v, absmask, np.uint64(threshold), cut, base)
        base += v.size
    return key_out


def topk_rows(x, outer, length, inner, k, mask, thresholds=None, packed=False, zero=False, isa=None):
    """See tensorpress._native.topk.topk_rows."""
    check_isa(isa)
    if outer * length * inner == 0:
        return
    udt, absmask, infkey, shift = _KEYS[x.dtype]
    width = {np.uint16: 15, np.uint32: 31, np.uint64: 63}[udt]
    u = _view(x)
    m = np.zeros(0, np.uint8) if mask is None else mask.reshape(-1).view(np.uint8)
    if zero and _any_nan(u, udt(absmask), np.uint64(infkey)):
        # in-place zeroing must not start before every slice is known to be NaN-free
        raise NonFiniteError("topk: non-finite value (NaN or Inf)")
    rows = outer * inner
    tt = np.zeros(rows, np.uint64)
    cc = np.zeros(rows, np.int64)
    args = (u, outer, length, inner, k, udt(absmask), np.uint64(infkey), shift,
            1 << (width - shift))
    # packed bits of different slices may share a byte: only the serial loop writes them
    if use_parallel(rows * length, _ROWS_PARALLEL_MIN) and not (packed and mask is not None) and rows > 1:
        nan = _rows_parallel(*args, m, tt, cc)
    else:
        nan = _rows_serial(*args, m, packed and mask is not None, tt, cc)
    if nan:
        raise NonFiniteError("topk: non-finite value (NaN or Inf)")
    if zero:
        _rows_zero(u, outer, length, inner, udt(absmask), tt, cc)
    if thresholds is not None:
        thresholds[:] = np.where(k == 0, 0, tt)


@nb.njit(**_SERIAL)
def _nm(u, outer, length, inner, n, m, absmask, infkey, mask):
    nan = False
    keys = np.empty(m, np.uint64)
    for o in range(outer):
        for g in range(0, length, m):
            for j in range(inner):
                for a in range(m):
                    keys[a] = np.uint64(u[(o * length + g + a) * inner + j] & absmask)
                    if keys[a] > infkey:
                        nan = True
                for a in range(m):
                    r = 0
                    for b in range(m):
                        if keys[b] > keys[a] or (keys[b] == keys[a] and b < a):
                            r += 1
                    mask[(o * length + g + a) * inner + j] = r < n
    return nan


def nm_mask(x, outer, length, inner, n, m, mask, isa=None):
    """See tensorpress._native.topk.nm_mask."""
    check_isa(isa)
    if outer * length * inner == 0:
        return
    udt, absmask, infkey, _ = _KEYS[x.dtype]
    if _nm(_view(x), outer, length, inner, n, m, udt(absmask), np.uint64(infkey),
           mask.reshape(-1).view(np.uint8)):
        raise NonFiniteError("nm_mask: non-finite value (NaN or Inf)")
