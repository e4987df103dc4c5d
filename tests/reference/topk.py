"""Plain NumPy reference of the top-k family, built on a stable argsort (slow, obviously right).

Ties at the threshold keep the lower flat index: a stable sort of the negated magnitudes lists
equal magnitudes in index order.
"""

import numpy as np


def magnitudes(x):
    # float64 holds every float16/bfloat16/float32 magnitude exactly (ml_dtypes converts
    # bfloat16); -0.0 becomes 0.0
    return np.abs(np.asarray(x, dtype=np.float64))


def resolve_k(k, n):
    if isinstance(k, float):
        return int(round(k * n))
    return int(k)


def order(x):
    """Flat indices from the largest magnitude down, ties in index order."""
    return np.argsort(-magnitudes(x).reshape(-1), kind="stable")


def mask_from_order(order_, k, shape):
    """topk_mask(x, k) of the x that order_ = order(x) came from (cheap for many k)."""
    mask = np.zeros(order_.size, dtype=bool)
    mask[order_[:resolve_k(k, order_.size)]] = True
    return mask.reshape(shape)


def _flat_mask(mag, k):
    mask = np.zeros(mag.size, dtype=bool)
    order_ = np.argsort(-mag.reshape(-1), kind="stable")
    mask[order_[:k]] = True
    return mask


def topk_mask(x, k, axis=None):
    x = np.asarray(x)
    mag = magnitudes(x)
    if axis is None:
        return _flat_mask(mag, resolve_k(k, x.size)).reshape(x.shape)
    moved = np.moveaxis(mag, axis, -1)
    rows = moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1])
    kk = resolve_k(k, moved.shape[-1])
    out = np.stack([_flat_mask(r, kk) for r in rows]) if rows.shape[0] else np.zeros(rows.shape, bool)
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


def topk_threshold(x, k, axis=None):
    x = np.asarray(x)
    mag = magnitudes(x)
    if axis is None:
        kk = resolve_k(k, x.size)
        return np.sort(mag.reshape(-1))[::-1][kk - 1].astype(x.dtype)
    moved = np.moveaxis(mag, axis, -1)
    kk = resolve_k(k, moved.shape[-1])
    return np.sort(moved, axis=-1)[..., ::-1][..., kk - 1].astype(x.dtype)


def global_topk_masks(arrays, k):
    sizes = [a.size for a in arrays]
    mag = np.concatenate([magnitudes(a).reshape(-1) for a in arrays]) if arrays else np.zeros(0)
    flat = _flat_mask(mag, resolve_k(k, mag.size))
    out, at = [], 0
    for a, n in zip(arrays, sizes):
        out.append(flat[at:at + n].reshape(a.shape))
        at += n
    return out


def nm_mask(x, n=2, m=4, axis=-1):
    x = np.asarray(x)
    moved = np.moveaxis(magnitudes(x), axis, -1)
    groups = moved.reshape(-1, m)
    out = np.zeros(groups.shape, dtype=bool)
    if groups.size:
        np.put_along_axis(out, np.argsort(-groups, axis=1, kind="stable")[:, :n], True, axis=1)
    return np.moveaxis(out.reshape(moved.shape), -1, axis)
