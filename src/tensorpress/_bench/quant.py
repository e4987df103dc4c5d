"""Benchmark of int8 quantize / dequantize: tensorpress (C, Numba) against the naive NumPy chain
and torch (observer + quantize_per_channel), with the percent of the bandwidth bound."""

import warnings

import numpy as np

from .. import _backend
from .. import quant as _quant
from .timing import best_time, bound_seconds, format_table, rate, ratio, torch_or_none


def _naive_quantize(x, axis):
    """abs / max / divide / rint / clip / astype, as one would write it."""
    s = np.abs(x).max(axis=axis, keepdims=True) / 127
    s[s == 0] = 1
    return np.clip(np.rint(x / s), -127, 127).astype(np.int8), s


def _naive_dequantize(q, s):
    return q.astype(np.float32) * s


def _torch_quantize(torch, xt, axis):
    from torch.ao.quantization import PerChannelMinMaxObserver

    obs = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                   quant_min=-127, quant_max=127)
    obs(xt)
    s, z = obs.calculate_qparams()
    return torch.quantize_per_channel(xt, s, z, axis, torch.qint8)


def _with_backend(name, fn):
    """fn run with the public functions bound to backend `name`, or None if it is missing."""
    if name not in _backend.available_backends():
        return None
    module = _backend.kernels_of(name, "quant")

    def call():
        saved = _quant._k
        _quant._k = module
        try:
            return fn()
        finally:
            _quant._k = saved

    return call


def _seconds_per_byte(n):
    """Seconds per byte of memory traffic, from the 1 read + 1 write float32 stream probe of this
    run. Its plain stores first read each line they write (read-for-ownership), so it moves
    4 + 2*4 = 12 bytes per element. None without the C extension."""
    t11 = bound_seconds(n, 1, 1)
    return None if t11 is None else t11 / (12 * n)


def run(quick=False):
    rows_, cols_ = (1024, 1024) if quick else (4096, 4096)
    n = rows_ * cols_
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows_, cols_), dtype=np.float32)
    x16 = x.astype(np.float16)
    torch = torch_or_none()
    repeat = 2 if quick else 5
    per_byte = _seconds_per_byte(n)

    def bound(traffic_bytes):
        """The probe's time for this many bytes of traffic per element."""
        return None if per_byte is None else n * traffic_bytes * per_byte

    q0, s0 = _quant.quantize_int8(x, 0)
    out = np.empty_like(x)
    cases = []  # (label, tensorpress fn, naive fn, torch fn, bound seconds)
    t_x = torch.from_numpy(x) if torch is not None else None
    for axis in (0, 1):
        cases.append((
            f"quantize axis {axis}",
            lambda axis=axis: _quant.quantize_int8(x, axis),
            lambda axis=axis: _naive_quantize(x, 1 - axis),
            None if torch is None else (lambda axis=axis: _torch_quantize(torch, t_x, axis)),
            bound(5),
        ))
    cases.append((
        "quantize axis 0 affine",
        lambda: _quant.quantize_int8(x, 0, symmetric=False), None,
        None if torch is None else (lambda: _torch_quantize_affine(torch, t_x)),
        bound(5),
    ))
    xb = x.reshape(-1, 32)
    cases.append((
        "quantize block_size=32",
        lambda: _quant.quantize_int8(x, block_size=32),
        lambda: _naive_quantize(xb, 1),
        None if torch is None else (lambda: _torch_quantize(torch, torch.from_numpy(xb), 0)),
        bound(4 + 2 * 1.125),  # + one float32 scale per 32 elements
    ))
    cases.append((
        "quantize axis 0 float16",
        lambda: _quant.quantize_int8(x16, 0), lambda: _naive_quantize(x16, 1), None, bound(3),
    ))
    tq0 = []  # quantized lazily: running torch before the tensorpress timings would skew them

    def torch_dequantize():
        if not tq0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tq0.append(_torch_quantize(torch, t_x, 0))
        return tq0[0].dequantize()

    cases.append((
        "dequantize axis 0",
        lambda: _quant.dequantize_int8(q0, s0, axis=0, out=out),
        lambda: _naive_dequantize(q0, s0[:, None]),
        None if torch is None else torch_dequantize,
        bound(5),
    ))

    # Phases, not rows: once torch has run a parallel op its own OpenMP threads keep spinning on
    # both cores for milliseconds, which would be charged to whatever is timed next. So every
    # tensorpress figure is taken first, torch's last.
    c_ok = "c" in _backend.available_backends()
    t_c = [best_time(_with_backend("c", fn), repeat=repeat) if c_ok else None for _, fn, _, _, _ in cases]
    t_nb = []
    for _, fn, _, _, _ in cases:
        nb = _with_backend("numba", fn)
        t_nb.append(None if quick or nb is None else best_time(nb, repeat=2))
    t_np = [None if naive is None else best_time(naive, repeat=repeat) for _, _, naive, _, _ in cases]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for quantized tensors
        t_peer = [None if peer is None else best_time(peer, repeat=repeat) for _, _, _, peer, _ in cases]
    table = []
    for k, (label, _, _, _, bound_s) in enumerate(cases):
        best = t_c[k] or t_nb[k]
        pct = "-" if not best or not bound_s else f"{100 * bound_s / best:.0f}%"
        table.append([label, rate(n, t_c[k]), rate(n, t_nb[k]), rate(n, t_np[k]), rate(n, t_peer[k]),
                      ratio(best, t_np[k]), ratio(best, t_peer[k]), pct])
    title = (
        f"int8 quantize / dequantize, {rows_}x{cols_} float32 ({n / 1e6:.0f}M elements), elements/s; "
        "torch = PerChannelMinMaxObserver + quantize_per_channel (block rows: per-channel over a "
        "(n/32, 32) view); naive = NumPy abs/max/divide/rint/clip/astype. "
        "Bound = the time of this run's 1-read + 1-write float32 stream probe scaled by memory "
        "traffic per element: the probe's plain stores read each line before writing it, so it "
        "moves 4 + 2*4 = 12 B; quantize 4 + 1 = 5 B (q is written with streaming stores from 8M "
        "elements; float16 2 + 1; axis 1 held to 5 B although it reads x twice), blocks "
        "4 + 2*1.125 = 6.25 B (plain stores, scales included), dequantize 1 + 4 = 5 B (streaming "
        "stores). At --quick sizes the data stays in cache and the percentages mean little."
    )
    headers = ["work", "tp C", "tp Numba", "naive NumPy", "torch", "vs NumPy", "vs torch", "% of bound"]
    return format_table(title, headers, table)


def _torch_quantize_affine(torch, xt):
    from torch.ao.quantization import PerChannelMinMaxObserver

    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
    obs(xt)
    s, z = obs.calculate_qparams()
    return torch.quantize_per_channel(xt, s, z, 0, torch.qint8)
