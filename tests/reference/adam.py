"""Naive NumPy Adam/AdamW: the textbook update with temporaries, in torch.optim.Adam's order.

Every operation is one IEEE operation in the arrays' dtype, so the C kernels (built without
multiply-add contraction) and the Numba twins must match it bit for bit.
"""

import math

import ml_dtypes
import numpy as np


def adam_reference(p, g, m, v, vmax=None, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False,
                   grad_scale=None):
    """Update p, m, v (and vmax) in place; return found_inf."""
    t = p.dtype.type
    beta1, beta2 = betas
    g = g.copy()
    if grad_scale is not None:
        g = g / t(grad_scale)
        if not np.isfinite(g).all():
            return True
    if maximize:
        g = -g
    if decoupled:
        p[...] = p * t(1.0 - lr * weight_decay)
    elif weight_decay != 0.0:
        g = g + t(weight_decay) * p
    w = t(1.0 - beta1)
    if abs(float(w)) < 0.5:
        m[...] = m + w * (g - m)
    else:
        m[...] = g - (g - m) * (t(1) - w)
    v[...] = v * t(beta2) + (t(1.0 - beta2) * g) * g
    denom_src = v
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        denom_src = vmax
    bias_correction1 = 1.0 - beta1 ** float(step)
    bias_correction2 = 1.0 - beta2 ** float(step)
    denom = np.sqrt(denom_src) / t(math.sqrt(bias_correction2)) + t(eps)
    p[...] = p + (t(-(lr / bias_correction1)) * m) / denom
    return False



# --- mixed precision (docs/mixed_precision.md) -------------------------------------------------
# Written from the spec, not from csrc/half.h: buffers are read into float32 with NumPy's exact
# widening, written values are rounded once with ml_dtypes' / NumPy's round-to-nearest-even
# casts, and stochastic rounding is the spec's generator and formulas in NumPy's wrapping
# unsigned arithmetic (arrays, so an overflow wraps silently).


BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT16 = np.dtype(np.float16)
HALF_DTYPES = (BFLOAT16, FLOAT16)

_U64 = np.uint64
_U32 = np.uint32


def mix64(z):
    """splitmix64's finalizer on a uint64 array (wrapping)."""
    z = np.asarray(z, dtype=_U64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def hash32(x):
    """The spec's 32-bit hash on a uint32 array (wrapping)."""
    x = np.asarray(x, dtype=_U32)
    x = x ^ (x >> _U32(16))
    x = x * _U32(0x21F0AAAD)
    x = x ^ (x >> _U32(15))
    x = x * _U32(0x735A2D97)
    return x ^ (x >> _U32(15))


def sr_key(seed, step, tensor_index, hi):
    """key = mix64(mix64(mix64(mix64(seed) ^ step) ^ tensor_index) ^ hi), as a uint64 array
    shaped like `hi`."""
    one = lambda value: np.array([value % 2**64], dtype=_U64)  # noqa: E731
    base = mix64(mix64(mix64(one(seed)) ^ one(step)) ^ one(tensor_index))
    return mix64(base ^ np.asarray(hi, dtype=_U64))


def sr_bits(seed, step, tensor_index, n, first=0):
    """The 32 random bits of elements first .. first+n-1 of one tensor (uint32 array)."""
    index = np.arange(first, first + n, dtype=_U64)
    key = sr_key(seed, step, tensor_index, index >> _U64(32))
    low_key = (key & _U64(0xFFFFFFFF)).astype(_U32)
    high_key = (key >> _U64(32)).astype(_U32)
    low_index = (index & _U64(0xFFFFFFFF)).astype(_U32)
    return hash32(hash32(low_index ^ low_key) + high_key)


def round_bf16_stochastic(x, r):
    """float32 array -> bfloat16, rounded with the random bits r: (b + (r >> 16)) >> 16; a NaN
    rounds to nearest."""
    x = np.asarray(x, dtype=np.float32)
    b = x.view(_U32)
    out = ((b + (r >> _U32(16))) >> _U32(16)).astype(np.uint16).view(BFLOAT16)
    return np.where(np.isnan(x), x.astype(BFLOAT16), out)


def round_f16_stochastic(x, r):
    """float32 array -> float16, rounded with the random bits r by the spec's two formulas
    (normal: add r >> 19 to the magnitude; below 2^-14: n + (u < f) on the 2^-24 grid); a NaN
    rounds to nearest."""
    x = np.asarray(x, dtype=np.float32)
    b = x.view(_U32)
    sign = (b >> _U32(16)) & _U32(0x8000)
    a = b & _U32(0x7FFFFFFF)
    c = a + (r >> _U32(19))
    normal = np.where(c >= _U32(0x47800000), _U32(0x7C00), (c >> _U32(13)) - _U32(112 << 10))
    small = a < _U32(0x38800000)
    y = np.where(small, a, _U32(0)).view(np.float32).astype(np.float64) * 2.0**24  # exact
    n = np.trunc(y)
    f = y - n
    u = (r >> _U32(8)).astype(np.float64) * 2.0**-24
    sub = n.astype(_U32) + (u < f).astype(_U32)
    out = (sign | np.where(small, sub, normal)).astype(np.uint16).view(FLOAT16)
    return np.where(np.isnan(x), x.astype(FLOAT16), out)


def round_stochastic(x, dtype, r):
    return round_bf16_stochastic(x, r) if np.dtype(dtype) == BFLOAT16 else round_f16_stochastic(x, r)


def compute_type(param_dtype):
    return np.float64 if np.dtype(param_dtype) == np.float64 else np.float32


def grad_overflows(g, grad_scale):
    """found_inf for one grad: grad / grad_scale in float32 (float64 for float64 grads) is NaN or
    Inf, or, for a half grad, rounds to Inf in the grad's own dtype."""
    t = compute_type(g.dtype)
    with np.errstate(all="ignore"):
        q = g.astype(t) / t(grad_scale)
        if g.dtype in HALF_DTYPES:
            return bool(np.isnan(q).any() or np.isinf(q.astype(g.dtype)).any())
        return not bool(np.isfinite(q).all())


def adam_mixed_reference(p, g, m, v, vmax=None, master=None, *, step, lr=1e-3, betas=(0.9, 0.999),
                         eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False,
                         maximize=False, grad_scale=None, stochastic_rounding=False, seed=0,
                         tensor_index=0, check_found_inf=True):
    """One Adam step of one tensor of any dtype combination of docs/mixed_precision.md, in
    place; returns found_inf. Every buffer is read into float32 exactly (float64 for float64),
    the update is adam_reference's, in torch's order, and every written value is rounded once:
    states to nearest even after the update has used their float32 values, the param to
    nearest even, from the float32 master (which receives the float32 result), or
    stochastically. `check_found_inf=False` skips the grad check (a list's caller makes it
    over every grad first)."""
    t = compute_type(p.dtype)
    beta1, beta2 = betas
    if grad_scale is not None and check_found_inf and grad_overflows(g, grad_scale):
        return True
    with np.errstate(all="ignore"):
        gf = g.astype(t)
        if grad_scale is not None:
            gf = gf / t(grad_scale)
        if maximize:
            gf = -gf
        pf = master.astype(t) if master is not None else p.astype(t)
        if decoupled:
            pf = pf * t(1.0 - lr * weight_decay)
        elif weight_decay != 0.0:
            gf = gf + t(weight_decay) * pf
        mf, vf = m.astype(t), v.astype(t)
        w = t(1.0 - beta1)
        if abs(float(w)) < 0.5:
            mf = mf + w * (gf - mf)
        else:
            mf = gf - (gf - mf) * (t(1) - w)
        vf = vf * t(beta2) + (t(1.0 - beta2) * gf) * gf
        m[...] = mf.astype(m.dtype)
        v[...] = vf.astype(v.dtype)
        second = vf
        if amsgrad:
            xf = vmax.astype(t)
            xf = np.where((xf < vf) | np.isnan(vf), vf, xf)  # torch.maximum: a NaN wins
            vmax[...] = xf.astype(vmax.dtype)
            second = xf
        bias_correction1 = 1.0 - beta1 ** float(step)
        bias_correction2 = 1.0 - beta2 ** float(step)
        denom = np.sqrt(second) / t(math.sqrt(bias_correction2)) + t(eps)
        pn = (pf + (t(-(lr / bias_correction1)) * mf) / denom).astype(t)
    if master is not None:
        master[...] = pn
        p[...] = pn.astype(p.dtype)
    elif stochastic_rounding and p.dtype in HALF_DTYPES:
        r = sr_bits(seed, step, tensor_index, p.size)
        p[...] = round_stochastic(pn.reshape(-1), p.dtype, r).reshape(p.shape)
    else:
        p[...] = pn.astype(p.dtype)
    return False


def adam_mixed_reference_list(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None,
                              master_params=None, *, tensor_indices=None, grad_scale=None, **options):
    """adam_mixed_reference over lists, as one call: the found-inf check covers every grad
    before anything is written; tensor i's stochastic-rounding index is tensor_indices[i] (or i)."""
    n = len(params)
    if grad_scale is not None and any(grad_overflows(g, grad_scale) for g in grads):
        return True
    for i in range(n):
        adam_mixed_reference(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
                             None if max_exp_avg_sqs is None else max_exp_avg_sqs[i],
                             None if master_params is None else master_params[i],
                             grad_scale=grad_scale, check_found_inf=False,
                             tensor_index=i if tensor_indices is None else tensor_indices[i], **options)
    return False
