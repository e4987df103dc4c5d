"""Benchmark of the fused Adam step: tensorpress (C, Numba) vs naive NumPy vs torch's fused CPU
Adam, as elements per second and as a share of the bandwidth bound measured in the same run."""


import numpy as np

from .. import _backend, optim
from .models import minilm_l6_shapes
from .report import BOUND_LABEL, Report, Series, memory_bound_only, per_second, speedup
from .timing import best_times, heap_room, routed_to, stream_probe, torch_or_none

FULL_SIZES = [1, 1 << 10, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
QUICK_SIZES = [1, 1 << 14, 1 << 18, 1 << 22]
BYTES_READ, BYTES_WRITTEN = 4, 3  # float32 streams: p, g, m, v in; p, m, v out


def naive_adam(p, g, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """The textbook formula with temporaries: what a NumPy user writes first."""
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    p[...] = p - lr * m_hat / (np.sqrt(v_hat) + eps)


def using_backend(name):
    """Route tp.adam_step through one backend's kernels."""
    return routed_to(optim, "adam", name)


def make_tensors(shapes, seed=0):
    rng = np.random.default_rng(seed)
    cols = [[rng.standard_normal(s, dtype=np.float32) for s in shapes] for _ in range(2)]
    cols += [[np.zeros(s, np.float32) for s in shapes] for _ in range(2)]
    return cols  # params, grads, exp_avgs, exp_avg_sqs


def tensorpress_step(cols):
    """One tp.adam_step over cols (the public wrapper included); route it with using_backend.
    One tensor is passed as arrays, the API's one-tensor form; several as lists."""
    if len(cols[0]) == 1:
        p, g, m, v = (col[0] for col in cols)
        return lambda: optim.adam_step(p, g, m, v, step=10)
    return lambda: optim.adam_step(*cols, step=10)


def naive_step(shapes):
    """The naive step on its own arrays, made after room for its temporaries (heap_room): a
    NumPy user's loop reuses them; without the room each call faulted them in anew and the
    'vs NumPy' column read up to 5x high at 64K-1M elements. Build it last."""
    room = heap_room(shapes)
    cols = make_tensors(shapes)
    del room

    def call():
        for p, g, m, v in zip(*cols):
            naive_adam(p, g, m, v, 10)
    return call


def torch_step(torch, cols):
    """torch.optim.Adam(fused=True).step over copies of the params, grads shared."""
    params = [torch.from_numpy(p.copy()).requires_grad_() for p in cols[0]]
    for p, g in zip(params, cols[1]):
        p.grad = torch.from_numpy(g)
    return torch.optim.Adam(params, lr=1e-3, fused=True).step


def share_of_bound(times, key):
    """Percent of the probe's speed that `key` reaches. torch's share caps the ratio any kernel
    can reach against torch where the data does not fit in cache: at the bound it is
    100 / share."""
    if not times.get("bound") or not times.get(key):
        return None
    return 100 * times["bound"] / times[key]


def run(quick=False, plot=False):
    """The Adam report; with `plot`, the chart's series come from the table's own single-tensor
    timings (no more measuring)."""
    torch = torch_or_none()
    backends = [b for b in ("c", "numba") if b in _backend.available_backends()]
    cases = [(f"{n:,} element{'s' if n > 1 else ''}", [(n,)]) for n in (QUICK_SIZES if quick else FULL_SIZES)]
    if not quick:
        cases.append(("all-MiniLM-L6-v2 (103 tensors)", [s for _, s in minilm_l6_shapes()]))
    cases.append(("200 tensors x 384", [(384,)] * 200))
    lead = backends[0]
    results = []
    for label, shapes in cases:
        cols = make_tensors(shapes)
        n = sum(int(np.prod(s)) for s in shapes)
        fns = {b: tensorpress_step(cols) for b in backends}
        fns["torch"] = torch_step(torch, make_tensors(shapes)) if torch is not None else None
        fns["bound"] = stream_probe(max(n, 1), BYTES_READ, BYTES_WRITTEN, in_place=True)
        fns["numpy"] = naive_step(shapes)  # last: nothing allocated after it takes its heap room
        # Side by side, round by round: the ratios then hold even when the machine's speed drifts.
        routes = {b: (lambda b=b: using_backend(b)) for b in backends}
        results.append((label, shapes, n, best_times(fns, contexts=routes)))
    report = Report(
        "adam",
        "Fused Adam step, float32, in place (torch: torch.optim.Adam(fused=True).step(); "
        "bound: C stream probe reading 4 float32 streams and writing 3 of them in place, all threads)",
        ["case", "C elem/s", "Numba elem/s", "NumPy elem/s", "torch elem/s",
         f"{lead} vs NumPy", f"{lead} vs torch", "Numba/C", "of bound", "torch of bound",
         f"{lead} us/call"],
        ["{}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}x", "{:.2f}x", "{:.2f}", "{:.0f}%", "{:.0f}%",
         "{:.1f}"],
        chart_title="Fused Adam step, float32, one tensor, in place",
        xlabel="elements (one tensor)", ylabel="elements / s")
    for label, shapes, n, t in results:
        report.rows.append([label, per_second(n, t.get("c")), per_second(n, t.get("numba")),
                            per_second(n, t["numpy"]), per_second(n, t["torch"]),
                            speedup(t[lead], t["numpy"]), speedup(t[lead], t["torch"]),
                            t["c"] / t["numba"] if "numba" in t and "c" in t else None,
                            share_of_bound(t, lead), share_of_bound(t, "torch"), t[lead] * 1e6])
    single = [(n, t) for _, shapes, n, t in results if len(shapes) == 1 and plot]
    xs = [n for n, _ in single]
    for key, label in [("c", "tensorpress C"), ("numba", "tensorpress Numba"), ("numpy", "naive NumPy"),
                       ("torch", "torch fused Adam"), ("bound", BOUND_LABEL)]:
        ys = [per_second(n, t.get(key)) for n, t in single]
        ys = memory_bound_only(xs, ys) if key == "bound" else ys
        if any(ys):
            report.series.append(Series(label, xs, ys, dashed=key == "bound"))
    return report
