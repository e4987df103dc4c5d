"""Plain NumPy reference of tensorpress.quant: group by group, float32 arithmetic, no tricks.

Inputs of any float type (bfloat16 is ml_dtypes.bfloat16) are converted with astype(np.float32)
first; dequantize's bfloat16 / float16 results are the float32 result's astype(dtype) (NumPy's and
ml_dtypes' round to nearest even)."""

import numpy as np

TINY = np.float32(np.finfo(np.float32).tiny)


def groups(shape, axis=0, block_size=None):
    """(group index of every element, shape of the scales)."""
    n = int(np.prod(shape, dtype=np.int64))
    if block_size is not None:
        length = shape[-1]
        nb = -(-length // block_size)
        rows = n // length if length else int(np.prod(shape[:-1], dtype=np.int64))
        col = np.arange(length) // block_size
        g = (np.arange(rows)[:, None] * nb + col[None, :]).reshape(shape)
        return g, tuple(shape[:-1]) + (nb,)
    if axis is None or len(shape) == 0:
        return np.zeros(shape, np.int64), ()
    axis %= len(shape)
    idx = np.arange(shape[axis]).reshape([-1 if d == axis else 1 for d in range(len(shape))])
    return np.broadcast_to(idx, shape), (shape[axis],)


def params_sym(a):
    a = np.float32(a)
    if a == 0:
        return np.float32(1), 0
    s = a / np.float32(127)
    return max(s, TINY), 0


def params_aff(mn, mx):
    mn = min(np.float32(mn), np.float32(0))
    mx = max(np.float32(mx), np.float32(0))
    with np.errstate(over="ignore"):
        rng = np.float32(mx - mn)
    s = rng / np.float32(255)
    if not np.isfinite(rng):
        s = np.float32((float(mx) - float(mn)) / 255.0)
    if s == 0:
        s = np.float32(1)
    s = max(s, TINY)
    z = np.float32(-128) - np.rint(mn / s)
    return s, int(np.clip(z, -128, 127))


def quantize(x, axis=0, symmetric=True, scale=None, zero_point=None, block_size=None):
    """(q, scale, zero_point) the way the docs describe them; raises ValueError on NaN / Inf."""
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    g, sshape = groups(x.shape, axis, block_size)
    ng = int(np.prod(sshape, dtype=np.int64))
    gf, xf = g.reshape(-1), x32.reshape(-1)
    if scale is not None:
        s = np.asarray(scale, np.float32).reshape(-1)
        z = np.zeros(ng, np.int64) if zero_point is None else np.asarray(zero_point).reshape(-1).astype(np.int64)
        qmin = -128
    else:
        s = np.empty(ng, np.float32)
        z = np.zeros(ng, np.int64)
        # Sort the elements by group once; each group is then one slice.
        order = np.argsort(gf, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(gf, minlength=ng))])
        xs = xf[order]
        for k in range(ng):
            v = xs[bounds[k]:bounds[k + 1]]
            if not np.all(np.isfinite(v)):
                raise ValueError(f"group {k}")
            if symmetric:
                s[k], z[k] = params_sym(np.max(np.abs(v)) if v.size else 0)
            else:
                s[k], z[k] = params_aff(v.min() if v.size else 0, v.max() if v.size else 0)
        qmin = -127 if symmetric else -128
    if not np.all(np.isfinite(xf)):
        raise ValueError("non-finite")
    inv = np.float32(1) / s
    t = xf * inv[gf]
    r = np.rint(t) + z[gf].astype(np.float32)
    q = np.clip(r, qmin, 127).astype(np.int8).reshape(x.shape)
    return q, s.reshape(sshape), z.astype(np.int8).reshape(sshape)


def dequantize(q, scale, zero_point=None, axis=0, block_size=None, dtype=np.float32):
    g, sshape = groups(q.shape, axis, block_size)
    s = np.asarray(scale, np.float32).reshape(-1)
    z = np.zeros(s.size, np.int32) if zero_point is None else np.asarray(zero_point).reshape(-1).astype(np.int32)
    gf = g.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        x32 = ((q.reshape(-1).astype(np.int32) - z[gf]).astype(np.float32) * s[gf]).reshape(q.shape)
        return x32 if np.dtype(dtype) == np.float32 else x32.astype(dtype)
