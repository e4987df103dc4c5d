"""Benchmark of the top-k family: tensorpress (C, Numba) vs the naive NumPy mask (np.partition's
threshold, then a comparison) vs a mask built from torch.topk, as elements per second and as a
share of the bandwidth bound measured in the same run (a bool mask reads 4 bytes and writes 1
byte per float32 element: the C stream probe over n/4 elements reading 4 and writing 1 float32
streams moves exactly those bytes; for 16-bit keys, 2 read streams). The float32 cases also run
on the bfloat16 cast of the same data, in the same rounds, with tensorpress's bf16/f32 ratio."""


import time

import ml_dtypes
import numpy as np

from .. import _backend, prune
from .report import BOUND_LABEL, Report, Series, memory_bound_only, per_second, speedup
from .timing import (
    best_time,
    best_times,
    bound_seconds,
    routed_to,
    stream_probe,
    torch_or_none,
)

FULL_N, QUICK_N = 1 << 24, 1 << 20
FULL_SWEEP, QUICK_SWEEP = [1 << e for e in range(12, 24, 2)], [1 << 12, 1 << 16]  # --plot, below N


def using_backend(name):
    """Route the public top-k functions through one backend's kernels."""
    return routed_to(prune, "topk", name)


def naive_mask(x, k):
    """What a NumPy user writes: the k-th largest |x| from np.partition, then |x| >= t."""
    a = np.abs(x)
    t = np.partition(a.reshape(-1), a.size - k)[a.size - k]
    return a >= t


def naive_rows(x, k):
    a = np.abs(x)
    t = np.partition(a, a.shape[1] - k, axis=1)[:, a.shape[1] - k]
    return a >= t[:, None]


def naive_nm(x):
    g = np.abs(x).reshape(-1, 4)
    idx = np.argsort(-g, axis=1, kind="stable")[:, :2]
    mask = np.zeros(g.shape, bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask.reshape(x.shape)


def torch_mask(torch, t, k):
    mask = torch.zeros(t.numel(), dtype=torch.bool)
    mask[torch.topk(t.abs().reshape(-1), k, sorted=False).indices] = True
    return mask


def torch_rows(torch, t, k):
    mask = torch.zeros(t.shape, dtype=torch.bool)
    mask.scatter_(1, torch.topk(t.abs(), k, dim=1, sorted=False).indices, True)
    return mask


def torch_nm(torch, t):
    g = t.abs().reshape(-1, 4)
    mask = torch.zeros(g.shape, dtype=torch.bool)
    mask.scatter_(1, torch.topk(g, 2, dim=1).indices, True)
    return mask


def cases(n):
    """(label, elements, bytes moved per element, tensorpress call, NumPy call, torch call or
    None, bfloat16 twin or None) per workload: a bool mask reads the key and writes 1 byte. The
    twin, (label, bytes per element, tensorpress call), is the case on the bfloat16 cast of x."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    xb = x.astype(ml_dtypes.bfloat16)
    side = int(round(n**0.5))
    rows, rows_b = x[: side * side].reshape(side, side), xb[: side * side].reshape(side, side)
    parts, parts_b = np.array_split(x.copy(), 100), np.array_split(xb.copy(), 100)
    out = []
    for frac in (0.1, 0.5):
        k = round(frac * n)
        out.append((f"topk_mask {n:,}, k={frac:.0%}", n, 5, lambda k=k: prune.topk_mask(x, k),
                    lambda k=k: naive_mask(x, k), lambda torch, t, k=k: torch_mask(torch, t, k),
                    (f"topk_mask {n:,} bfloat16, k={frac:.0%}", 3, lambda k=k: prune.topk_mask(xb, k))))
    k = round(0.1 * n)
    half = x.astype(np.float16)  # the weights of many inference checkpoints
    out.append((f"topk_mask {n:,} float16, k=10%", n, 3, lambda: prune.topk_mask(half, k),
                lambda: naive_mask(half, k), lambda torch, t: torch_mask(torch, t.half(), k), None))
    kr = round(0.1 * side)
    out.append((f"topk_mask {side}x{side}, axis=1, 10%/row", side * side, 5,
                lambda: prune.topk_mask(rows, kr, axis=1), lambda: naive_rows(rows, kr),
                lambda torch, t: torch_rows(torch, t.reshape(side, side), kr),
                (f"topk_mask {side}x{side} bfloat16, axis=1, 10%/row", 3,
                 lambda: prune.topk_mask(rows_b, kr, axis=1))))
    kg = round(0.1 * n)
    out.append((f"global_topk_masks, 100 arrays, {n:,} total, 10%", n, 5,
                lambda: prune.global_topk_masks(parts, kg), None, None,
                (f"global_topk_masks bfloat16, 100 arrays, {n:,} total, 10%", 3,
                 lambda: prune.global_topk_masks(parts_b, kg))))
    out.append((f"nm_mask 2:4 {n:,}", n, 5, lambda: prune.nm_mask(x), lambda: naive_nm(x),
                lambda torch, t: torch_nm(torch, t), (f"nm_mask 2:4 {n:,} bfloat16", 3, lambda: prune.nm_mask(xb))))
    return x, out


def _time_all(backends, ours, naive, peer, torch, t_x, repeat, twin=None, probes=None):
    """Seconds per call of tensorpress on each backend (keys "c", "numba"; with the bfloat16 call
    `twin`, also "c bf16", "numba bf16"), the NumPy and the torch equivalents, and the `probes`
    (key -> fn), measured side by side, round by round (see timing.best_times)."""
    fns, routes = {}, {}
    for b in backends:
        for key, fn in ((b, ours), (f"{b} bf16", twin)):
            fns[key] = fn
            routes[key] = lambda b=b: using_backend(b)
    fns["numpy"] = naive
    fns["torch"] = (lambda: peer(torch, t_x)) if torch is not None and peer is not None else None
    fns.update(probes or {})
    return best_times(fns, contexts=routes, repeat=repeat)


def run(quick=False, plot=False):
    """The top-k report; with `plot`, also topk_mask (k = 10%) over smaller sizes for the chart."""
    torch = torch_or_none()
    backends = [b for b in ("c", "numba") if b in _backend.available_backends()]
    if quick and "c" in backends:
        backends = ["c"]  # the Numba twins' first call compiles for seconds
    n = QUICK_N if quick else FULL_N
    repeat = 3 if quick else 5
    x, work = cases(n)
    t_x = torch.from_numpy(x) if torch is not None else None
    # The probe over n/4 elements reading nbytes - 1 and writing 1 float32 streams moves the
    # nbytes per element of a mask over n keys: 4 + 1 for float32, 2 + 1 for 16-bit keys. The
    # probes run in every case's rounds; the bound is their best time over the whole table.
    probes = {nbytes: stream_probe(n // 4, nbytes - 1, 1) for nbytes in (5, 3)}
    times = [_time_all(backends, ours, naive, peer, torch, t_x, repeat, twin and twin[2], probes)
             for _, _, _, ours, naive, peer, twin in work]
    bounds = {nbytes: min((t[nbytes] for t in times if t[nbytes]), default=None) for nbytes in probes}
    bound = bounds[5]
    lead = backends[0]
    report = Report(
        "topk",
        "Top-k magnitude masks (NumPy: np.partition threshold then |x| >= t; torch: torch.topk "
        "indices scattered into a bool mask; bound: the key read + 1 byte written per element, the "
        "best round of a stream probe timed among every case's, moving the same bytes: "
        f"{'-' if not bound else format(n / bound, '.3g')} elem/s for float32, "
        f"{'-' if not bounds[3] else format(n / bounds[3], '.3g')} for 16-bit keys; cases are float32 "
        "unless named; bfloat16 rows: the row above on its data cast to bfloat16, timed in the same "
        f"rounds; bf16/f32: {lead}'s elements/s on bfloat16 over float32)",
        ["case", "C elem/s", "Numba elem/s", "NumPy elem/s", "torch elem/s",
         f"{lead} vs NumPy", f"{lead} vs torch", "of bound", "bf16/f32", "note"],
        ["{}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}x", "{:.2f}x", "{:.0f}%", "{:.2f}x", "{}"],
        chart_title="Top-k magnitude mask, float32", xlabel="elements (float32)", ylabel="elements / s")
    single = times[0]  # topk_mask, float32, k = 10%: the global case's reference and the chart's
    share = lambda count, nbytes, seconds: 100 * bounds[nbytes] * count / n / seconds if bound else None
    for (label, count, nbytes, _, _, _, twin), t in zip(work, times):
        note = ""
        if label.startswith("global") and single:
            note = f"{t[lead] / single[lead]:.2f}x one array"
        report.rows.append([label, per_second(count, t.get("c")), per_second(count, t.get("numba")),
                            per_second(count, t["numpy"]), per_second(count, t["torch"]),
                            speedup(t[lead], t["numpy"]), speedup(t[lead], t["torch"]),
                            share(count, nbytes, t[lead]), None, note])
        if twin:
            label16, nbytes16, _ = twin
            b16 = t[f"{lead} bf16"]
            report.rows.append([label16, per_second(count, t.get("c bf16")), per_second(count, t.get("numba bf16")),
                                None, None, None, None, share(count, nbytes16, b16), speedup(b16, t[lead]), ""])
    if plot:
        single["bound"] = bound
        report.series = _sweep(QUICK_SWEEP if quick else FULL_SWEEP, backends, torch, (n, single))
    return report


def _sweep(sizes, backends, torch, table_point):
    """Series of topk_mask with k = 10% over `sizes`, then the table's n (`table_point`: n and
    its timings)."""
    time.sleep(0.5)  # let torch's OpenMP threads from the table's last timings go idle
    points, inputs = {}, {}
    for m in sizes:
        x, work = inputs[m] = cases(m)
        _, _, _, ours, naive, _, _ = work[0]  # topk_mask, k = 10%
        points[m] = _time_all(backends, ours, naive, None, torch, None, 3)
        points[m]["bound"] = bound_seconds(m // 4, 4, 1)
    if torch is not None:  # torch last, as in the table
        for m in sizes:
            x, work = inputs[m]
            t_x = torch.from_numpy(x)
            points[m]["torch"] = best_time(lambda: work[0][5](torch, t_x), repeat=2, min_time=0)
    n, at_n = table_point
    points[n] = at_n
    series, xs = [], list(points)
    for key, label in [("c", "tensorpress C"), ("numba", "tensorpress Numba"), ("numpy", "naive NumPy (np.partition)"),
                       ("torch", "torch.topk + scatter"), ("bound", BOUND_LABEL)]:
        ys = [per_second(m, points[m].get(key)) for m in xs]
        ys = memory_bound_only(xs, ys) if key == "bound" else ys
        if any(ys):
            series.append(Series(label, xs, ys, panel="topk_mask, k = 10%", dashed=key == "bound"))
    return series
