"""Benchmark of int8 quantize / dequantize: tensorpress (C, Numba) against the naive NumPy chain
and torch (observer + quantize_per_channel), with the percent of the bandwidth bound; the
float32 cases also on the bfloat16 cast of the same data (dequantize: into bfloat16), timed in
the same rounds, with tensorpress's bf16/f32 speed ratio."""

import time
import warnings

import ml_dtypes
import numpy as np

from .. import _backend
from .. import quant as _quant
from .report import BOUND_LABEL, Report, Series, memory_bound_only, per_second, speedup
from .timing import best_time, best_times, bound_seconds, stream_probe, torch_or_none

QUICK_SIDE, FULL_SIDE = 1024, 4096  # the table's square matrix
QUICK_SIDES, FULL_SIDES = (64, 256), (64, 128, 256, 512, 1024, 2048)  # --plot: smaller ones too


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


def run(quick=False, plot=False):
    """The quant report; with `plot`, also a size sweep of per-channel quantize and dequantize."""
    rows_ = cols_ = QUICK_SIDE if quick else FULL_SIDE
    n = rows_ * cols_
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows_, cols_), dtype=np.float32)
    x16 = x.astype(np.float16)
    xb16 = x.astype(ml_dtypes.bfloat16)
    torch = torch_or_none()
    repeat = 2 if quick else 5
    per_byte = None  # seconds per byte of traffic: the best probe round beside the kernels

    q0, s0 = _quant.quantize_int8(x, 0)
    out = np.empty_like(x)
    out16 = np.empty(x.shape, ml_dtypes.bfloat16)
    # (label, tensorpress fn, naive fn, torch fn, bytes of traffic per element, bfloat16 twin:
    # (label, tensorpress fn, bytes per element) or None)
    cases = []
    t_x = torch.from_numpy(x) if torch is not None else None
    for axis in (0, 1):
        cases.append((
            f"quantize axis {axis}",
            lambda axis=axis: _quant.quantize_int8(x, axis),
            lambda axis=axis: _naive_quantize(x, 1 - axis),
            None if torch is None else (lambda axis=axis: _torch_quantize(torch, t_x, axis)),
            5,  # bytes of memory traffic per element
            (f"quantize axis {axis} bfloat16", lambda axis=axis: _quant.quantize_int8(xb16, axis), 3),
        ))
    cases.append((
        "quantize axis 0 affine",
        lambda: _quant.quantize_int8(x, 0, symmetric=False), None,
        None if torch is None else (lambda: _torch_quantize_affine(torch, t_x)),
        5,  # bytes of memory traffic per element
        ("quantize axis 0 affine bfloat16", lambda: _quant.quantize_int8(xb16, 0, symmetric=False), 3),
    ))
    xb = x.reshape(-1, 32)
    cases.append((
        "quantize block_size=32",
        lambda: _quant.quantize_int8(x, block_size=32),
        lambda: _naive_quantize(xb, 1),
        None if torch is None else (lambda: _torch_quantize(torch, torch.from_numpy(xb), 0)),
        4 + 2 * 1.125,  # bytes per element: + one float32 scale per 32 elements
        ("quantize block_size=32 bfloat16", lambda: _quant.quantize_int8(xb16, block_size=32), 2 + 2 * 1.125),
    ))
    cases.append((
        "quantize axis 0 float16",
        lambda: _quant.quantize_int8(x16, 0), lambda: _naive_quantize(x16, 1), None, 3, None,
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
        5,  # bytes of memory traffic per element
        ("dequantize axis 0 to bfloat16", lambda: _quant.dequantize_int8(q0, s0, axis=0, out=out16), 3),
    ))

    # Side by side, round by round, with the bandwidth probe among them: the ratios then hold
    # even when the machine's speed drifts during the run (bfloat16 twins in the same rounds).
    ours = lambda name, fn: None if fn is None or (quick and name == "numba") else _with_backend(name, fn)
    t_c, t_nb, t_np, t_peer, t16 = [], [], [], [], []
    probe = stream_probe(n, 1, 1)
    for _, fn, naive, peer, _, twin in cases:
        fn16 = twin[1] if twin else None
        fns = {"c": ours("c", fn), "c bf16": ours("c", fn16), "numba": ours("numba", fn),
               "numba bf16": ours("numba", fn16), "numpy": naive, "torch": peer, "probe": probe}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notice for quantized tensors
            t = best_times(fns, repeat=repeat)
        t_c.append(t["c"])
        t_nb.append(t["numba"])
        t_np.append(t["numpy"])
        t_peer.append(t["torch"])
        t16.append((t["c bf16"], t["numba bf16"]))
        if t["probe"] is not None:
            # The probe's plain stores read each line first: 4 + 2*4 = 12 bytes per element.
            seconds = t["probe"] / (12 * n)
            per_byte = seconds if per_byte is None else min(per_byte, seconds)
    report = Report(
        "quant",
        f"int8 quantize / dequantize, {rows_}x{cols_} float32 ({n / 1e6:.0f}M elements), elements/s; "
        "torch = PerChannelMinMaxObserver + quantize_per_channel (block rows: per-channel over a "
        "(n/32, 32) view); naive = NumPy abs/max/divide/rint/clip/astype. "
        "Bound = the time of this run's 1-read + 1-write float32 stream probe scaled by memory "
        "traffic per element: the probe's plain stores read each line before writing it, so it "
        "moves 4 + 2*4 = 12 B; quantize 4 + 1 = 5 B (q is written with streaming stores from 8M "
        "elements; float16 2 + 1; axis 1 held to 5 B although it reads x twice), blocks "
        "4 + 2*1.125 = 6.25 B (plain stores, scales included), dequantize 1 + 4 = 5 B (streaming "
        "stores). bfloat16 rows: the float32 row's case on x cast to bfloat16 (dequantize: into a "
        "bfloat16 out), timed in the same rounds; their bytes: quantize 2 + 1 = 3 B, blocks "
        "2 + 2*1.125 = 4.25 B, dequantize 1 + 2 = 3 B; bf16/f32 = tensorpress's elements/s on "
        "bfloat16 over its float32 row's (C, else Numba). At --quick sizes the data stays in "
        "cache and the percentages mean little.",
        ["work", "tp C", "tp Numba", "naive NumPy", "torch", "vs NumPy", "vs torch", "% of bound", "bf16/f32"],
        ["{}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}x", "{:.2f}x", "{:.0f}%", "{:.2f}x"],
        chart_title="int8 quantization, float32 square matrices",
        xlabel="elements (square float32 matrix)", ylabel="elements / s")
    share = lambda traffic, best: 100 * n * traffic * per_byte / best if best and per_byte else None
    for k, (label, _, _, _, traffic, twin) in enumerate(cases):
        best = t_c[k] or t_nb[k]
        report.rows.append([label, per_second(n, t_c[k]), per_second(n, t_nb[k]), per_second(n, t_np[k]),
                            per_second(n, t_peer[k]), speedup(best, t_np[k]), speedup(best, t_peer[k]),
                            share(traffic, best), None])
        if twin:
            (c16, nb16), (label16, _, traffic16) = t16[k], twin
            best16 = c16 if t_c[k] else nb16
            report.rows.append([label16, per_second(n, c16), per_second(n, nb16), None, None, None, None,
                                share(traffic16, best16), speedup(best16, best)])
    if plot:
        # The table's per-channel quantize and dequantize at its size, plus smaller squares.
        at_n = {work: {"c": t_c[k], "numba": t_nb[k], "numpy": t_np[k], "torch": t_peer[k],
                       "bound": None if per_byte is None else n * 5 * per_byte}
                for work, k in (("quantize", 0), ("dequantize", -1))}
        report.series = _sweep(QUICK_SIDES if quick else FULL_SIDES, (rows_, at_n), quick, torch)
    return report


IMPLS = [("c", "tensorpress C"), ("numba", "tensorpress Numba"), ("numpy", "naive NumPy"),
         ("torch", "torch"), ("bound", BOUND_LABEL)]


def _sweep(sides, table_point, quick, torch):
    """Series of per-channel quantize (axis 0) and dequantize over square matrices of `sides`,
    ending with the table's own size (`table_point`: side, {work: {impl: seconds}})."""
    time.sleep(0.5)  # let torch's OpenMP threads from the table's last timings go idle
    c_ok = "c" in _backend.available_backends()
    points = {}  # (side, work) -> {impl: seconds}
    inputs = {}
    for side in sides:
        x = np.random.default_rng(side).standard_normal((side, side), dtype=np.float32)
        q, s = _quant.quantize_int8(x, 0)
        out = np.empty_like(x)
        inputs[side] = x
        per_byte = _seconds_per_byte(side * side)
        work = {"quantize": (lambda x=x: _quant.quantize_int8(x, 0), lambda x=x: _naive_quantize(x, 1)),
                "dequantize": (lambda q=q, s=s, out=out: _quant.dequantize_int8(q, s, axis=0, out=out),
                               lambda q=q, s=s: _naive_dequantize(q, s[:, None]))}
        for name, (ours, naive) in work.items():
            t = points[side, name] = {}
            t["c"] = best_time(_with_backend("c", ours), repeat=3) if c_ok else None
            nb = None if quick else _with_backend("numba", ours)
            t["numba"] = best_time(nb, repeat=2) if nb else None
            t["numpy"] = best_time(naive, repeat=3)
            t["bound"] = None if per_byte is None else side * side * 5 * per_byte
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for side in sides if torch is not None else ():  # torch last, as in the table
            xt = torch.from_numpy(inputs[side])
            tq = _torch_quantize(torch, xt, 0)
            points[side, "quantize"]["torch"] = best_time(lambda: _torch_quantize(torch, xt, 0), repeat=3)
            points[side, "dequantize"]["torch"] = best_time(tq.dequantize, repeat=3)
    side_n, at_n = table_point
    for name, t in at_n.items():
        points[side_n, name] = t
    sides = [*sides, side_n]
    series = []
    for name, panel in (("quantize", "quantize per channel (axis 0)"), ("dequantize", "dequantize (axis 0)")):
        for key, label in IMPLS:
            xs = [side * side for side in sides]
            ys = [per_second(side * side, points[side, name].get(key)) for side in sides]
            ys = memory_bound_only(xs, ys) if key == "bound" else ys
            if any(ys):
                series.append(Series(label, xs, ys, panel=panel, dashed=key == "bound"))
    return series


def _torch_quantize_affine(torch, xt):
    from torch.ao.quantization import PerChannelMinMaxObserver

    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
    obs(xt)
    s, z = obs.calculate_qparams()
    return torch.quantize_per_channel(xt, s, z, 0, torch.qint8)
