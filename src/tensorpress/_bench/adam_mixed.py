"""Benchmark of the mixed-precision Adam steps against torch, each with its own bandwidth bound.

Two steps (docs/mixed_precision.md):
- offload: float32 master weights, bfloat16 grads, bfloat16 params written, float32 states:
  28 bytes per element (master 4 + 4, grad 2, states 8 + 8, param 2). torch has no fused form
  with master weights, so its side is the composite an offload loop runs:
  ``master.grad.copy_(bf16_grad)``, fused float32 AdamW on the master, ``bf16.copy_(master)``
  (28 + 18 bytes per element: 1.64x is the ceiling of any fused step against it);
- pure bfloat16: params, grads and states all bfloat16: 14 bytes per element, against
  torch.optim.AdamW(fused=True) on the same bfloat16 tensors.
The bound is the C stream probe moving the same bytes in place (float32 streams, so 28 B per
element is 4 read + 3 written streams of n elements, and 14 B the same over n / 2).
"""

import ml_dtypes
import numpy as np

from .. import _backend, optim
from .models import minilm_l6_shapes
from .report import Report, per_second, speedup
from .timing import best_times, routed_to, stream_probe, torch_or_none

BF16 = np.dtype(ml_dtypes.bfloat16)
FULL_SIZES = [1 << 16, 1 << 20, 1 << 24]
QUICK_SIZES = [1 << 20]


def _tensors(shapes, seed=0):
    rng = np.random.default_rng(seed)
    masters = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    grads = [(rng.standard_normal(s, dtype=np.float32) * 1e-2).astype(BF16) for s in shapes]
    return masters, grads


def offload_step(shapes):
    """tp.adam_step over float32 masters, bf16 grads and params, float32 states."""
    masters, grads = _tensors(shapes)
    params = [m.astype(BF16) for m in masters]
    ms = [np.zeros(s, np.float32) for s in shapes]
    vs = [np.zeros(s, np.float32) for s in shapes]
    return lambda: optim.adam_step(params, grads, ms, vs, step=10, weight_decay=1e-2,
                                   decoupled_weight_decay=True, master_params=masters)


def bf16_step(shapes):
    """tp.adam_step with params, grads and states in bfloat16."""
    masters, grads = _tensors(shapes)
    params = [m.astype(BF16) for m in masters]
    ms = [np.zeros(s, BF16) for s in shapes]
    vs = [np.zeros(s, BF16) for s in shapes]
    return lambda: optim.adam_step(params, grads, ms, vs, step=10, weight_decay=1e-2,
                                   decoupled_weight_decay=True)


def torch_offload_step(torch, shapes):
    masters, grads = _tensors(shapes)
    master_t = [torch.from_numpy(m) for m in masters]
    half_t = [t.to(torch.bfloat16) for t in master_t]
    grad_t = [torch.from_numpy(g.view(np.int16)).view(torch.bfloat16) for g in grads]
    for m in master_t:
        m.grad = torch.empty_like(m)
    opt = torch.optim.AdamW(master_t, lr=1e-3, weight_decay=1e-2, fused=True)

    def step():
        for m, g in zip(master_t, grad_t):
            m.grad.copy_(g)
        opt.step()
        for h, m in zip(half_t, master_t):
            h.copy_(m)
    return step


def torch_bf16_step(torch, shapes):
    masters, grads = _tensors(shapes)
    params = [torch.from_numpy(m).to(torch.bfloat16) for m in masters]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.view(np.int16)).view(torch.bfloat16)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, fused=True).step


STEPS = {
    # name: (tensorpress step, torch step, bytes per element, torch's label)
    "offload": (offload_step, torch_offload_step, 28, "copy + fused f32 AdamW + copy"),
    "bf16": (bf16_step, torch_bf16_step, 14, "AdamW(fused=True) on bf16"),
}


def run(quick=False, plot=False):
    torch = torch_or_none()
    backends = [b for b in ("c", "numba") if b in _backend.available_backends()]
    lead = backends[0]
    cases = [(f"{n:,} elements", [(n,)]) for n in (QUICK_SIZES if quick else FULL_SIZES)]
    if not quick:
        cases.append(("all-MiniLM-L6-v2 (103 tensors)", [s for _, s in minilm_l6_shapes()]))
    report = Report(
        "adam_mixed",
        "Mixed-precision AdamW step, in place. offload: float32 master, bf16 grads and params, "
        "float32 states (28 B/element; torch: grad copy + fused float32 AdamW + param copy, "
        "46 B/element). bf16: params, grads, states bf16 (14 B/element; torch: "
        "AdamW(fused=True)). bound: C stream probe moving the same bytes in place",
        ["step", "case", "C elem/s", "Numba elem/s", "torch elem/s", f"{lead} vs torch",
         "Numba/C", "of bound", "torch of bound"],
        ["{}", "{}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}x", "{:.2f}", "{:.0f}%", "{:.0f}%"])
    for name, (ours, theirs, nbytes, _) in STEPS.items():
        for label, shapes in cases:
            n = sum(int(np.prod(s)) for s in shapes)
            fns = {b: ours(shapes) for b in backends}
            fns["torch"] = theirs(torch, shapes) if torch is not None else None
            # nbytes per element as 7 float32 streams (4 read, 3 written in place)
            fns["bound"] = stream_probe(max(n * nbytes // 28, 1), 4, 3, in_place=True)
            routes = {b: (lambda b=b: routed_to(optim, "adam", b)) for b in backends}
            t = best_times(fns, contexts=routes)
            share = lambda key: 100 * t["bound"] / t[key] if t.get("bound") and t.get(key) else None  # noqa: E731
            report.rows.append([
                name, label, per_second(n, t.get("c")), per_second(n, t.get("numba")),
                per_second(n, t.get("torch")), speedup(t[lead], t.get("torch")),
                t["c"] / t["numba"] if "numba" in t and "c" in t else None,
                share(lead), share("torch")])
    return report
