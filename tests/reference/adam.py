"""Naive NumPy Adam/AdamW: the textbook update with temporaries, in torch.optim.Adam's order.

Every operation is one IEEE operation in the arrays' dtype, so the C kernels (built without
multiply-add contraction) and the Numba twins must match it bit for bit.
"""

import math

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

