"""Benchmark of the mixed-precision Adam steps against naive NumPy, torch and (when installed)
DeepSpeed's CPUAdam, each with its own bandwidth bound.

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

The naive NumPy rows are the textbook AdamW a NumPy user writes first: float32 temporaries, the
bf16 grads (and, for the bf16 step, the param and states) converted with astype, results assigned
back (to nearest even). DeepSpeed's CPUAdam (an optional peer, never a dependency) runs the
offload step as ZeRO-Offload does (runtime/zero/stage_1_and_2.py): the bf16 grad copied into the
float32 master's grad, DeepSpeedCPUAdam.step() on float32 params, grads and states, the master
copied into the bf16 param; it has no fused form with master weights. The bf16 step is fused
there: DeepSpeedCPUAdam(fp32_optimizer_states=False) on bfloat16 params, grads and states.
"""

import os

import ml_dtypes
import numpy as np

from .. import _backend, optim
from .models import minilm_l6_shapes
from .report import Report, per_second, speedup
from .timing import MMAP_THRESHOLD_MAX, heap_room, best_times, routed_to, stream_probe, torch_or_none

BF16 = np.dtype(ml_dtypes.bfloat16)
FULL_SIZES = [1 << 16, 1 << 20, 1 << 24]
QUICK_SIZES = [1 << 20]
# AdamW as every peer here runs it (torch's defaults but the decay)
BETA1, BETA2, EPS, LR, WEIGHT_DECAY, STEP = 0.9, 0.999, 1e-8, 1e-3, 1e-2, 10


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
    return lambda: optim.adam_step(params, grads, ms, vs, step=STEP, lr=LR,
                                   weight_decay=WEIGHT_DECAY, decoupled_weight_decay=True, master_params=masters)


def bf16_step(shapes):
    """tp.adam_step with params, grads and states in bfloat16."""
    masters, grads = _tensors(shapes)
    params = [m.astype(BF16) for m in masters]
    ms = [np.zeros(s, BF16) for s in shapes]
    vs = [np.zeros(s, BF16) for s in shapes]
    return lambda: optim.adam_step(params, grads, ms, vs, step=STEP, lr=LR,
                                   weight_decay=WEIGHT_DECAY, decoupled_weight_decay=True)


def naive_adamw(p, g, m, v, step=STEP, lr=LR, weight_decay=WEIGHT_DECAY, beta1=BETA1, beta2=BETA2,
                eps=EPS):
    """The textbook AdamW on float32 arrays, with temporaries; p, m and v updated in place."""
    p[...] = p - lr * weight_decay * p
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    p[...] = p - lr * m_hat / (np.sqrt(v_hat) + eps)


def naive_offload(master, grad, param, m, v):
    """Offload AdamW as a NumPy user writes it: grad to float32, step on the master, param copied."""
    naive_adamw(master, grad.astype(np.float32), m, v)
    param[...] = master.astype(BF16)


def naive_bf16(param, grad, m, v):
    """Pure bf16 AdamW as a NumPy user writes it: everything to float32, updated, assigned back
    (rounded to nearest even)."""
    p32, m32, v32 = param.astype(np.float32), m.astype(np.float32), v.astype(np.float32)
    naive_adamw(p32, grad.astype(np.float32), m32, v32)
    param[...] = p32
    m[...] = m32
    v[...] = v32


def naive_offload_step(shapes):
    room = heap_room(shapes)
    masters, grads = _tensors(shapes)
    cols = [masters, grads, [m.astype(BF16) for m in masters],
            [np.zeros(s, np.float32) for s in shapes], [np.zeros(s, np.float32) for s in shapes]]
    del room

    def step():
        for master, g, p, m, v in zip(*cols):
            naive_offload(master, g, p, m, v)
    return step


def naive_bf16_step(shapes):
    room = heap_room(shapes)
    masters, grads = _tensors(shapes)
    cols = [[m.astype(BF16) for m in masters], grads,
            [np.zeros(s, BF16) for s in shapes], [np.zeros(s, BF16) for s in shapes]]
    del room

    def step():
        for p, g, m, v in zip(*cols):
            naive_bf16(p, g, m, v)
    return step


def check_naive_steps(n=4099, seed=1):
    """Assert (not timed) that one naive NumPy step lands where tp.adam_step does, from nonzero
    states: float32 values to float32 rounding (relative to the array's largest value, as a
    difference of near values cancels), bf16 values within one bf16 ulp besides (the two order
    their float32 operations differently, so a value near a rounding boundary may round the
    other way)."""
    rng = np.random.default_rng(seed)
    master = rng.standard_normal(n, dtype=np.float32)
    grad = (rng.standard_normal(n, dtype=np.float32) * 1e-2).astype(BF16)
    m = rng.standard_normal(n, dtype=np.float32) * 1e-2
    v = (rng.standard_normal(n, dtype=np.float32) * 1e-2) ** 2

    def close(a, b, rtol):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6 * float(np.abs(b).max()))
    bf16_ulp = 2.0**-7

    ours = [master.copy(), master.astype(BF16), m.copy(), v.copy()]
    optim.adam_step(ours[1], grad, ours[2], ours[3], step=STEP, lr=LR, weight_decay=WEIGHT_DECAY,
                    decoupled_weight_decay=True, master_params=ours[0])
    naive = [master.copy(), master.astype(BF16), m.copy(), v.copy()]
    naive_offload(naive[0], grad, naive[1], naive[2], naive[3])
    for a, b, rtol in zip(ours, naive, [1e-6, bf16_ulp, 1e-6, 1e-6]):
        close(a, b, rtol)

    ours = [x.astype(BF16) for x in (master, m, v)]
    optim.adam_step(ours[0], grad, ours[1], ours[2], step=STEP, lr=LR, weight_decay=WEIGHT_DECAY,
                    decoupled_weight_decay=True)
    naive = [x.astype(BF16) for x in (master, m, v)]
    naive_bf16(naive[0], grad, naive[1], naive[2])
    for a, b in zip(ours, naive):
        close(a, b, bf16_ulp)


def torch_offload_step(torch, shapes, optimizer=None):
    """The offload loop's composite: grad copy, fused float32 AdamW on the master (or
    `optimizer`, a class taking the params and AdamW's hyperparameters), param copy."""
    masters, grads = _tensors(shapes)
    master_t = [torch.from_numpy(m) for m in masters]
    half_t = [t.to(torch.bfloat16) for t in master_t]
    grad_t = [torch.from_numpy(g.view(np.int16)).view(torch.bfloat16) for g in grads]
    for m in master_t:
        m.grad = torch.empty_like(m)
    opt = (optimizer(master_t, lr=LR, weight_decay=WEIGHT_DECAY) if optimizer is not None
           else torch.optim.AdamW(master_t, lr=LR, weight_decay=WEIGHT_DECAY, fused=True))

    def step():
        for m, g in zip(master_t, grad_t):
            m.grad.copy_(g)
        opt.step()
        for h, m in zip(half_t, master_t):
            h.copy_(m)
    return step


def _bf16_params(torch, shapes):
    masters, grads = _tensors(shapes)
    params = [torch.from_numpy(m).to(torch.bfloat16) for m in masters]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.view(np.int16)).view(torch.bfloat16)
    return params


def torch_bf16_step(torch, shapes):
    return torch.optim.AdamW(_bf16_params(torch, shapes), lr=LR, weight_decay=WEIGHT_DECAY,
                             fused=True).step


def deepspeed_offload_step(torch, cpu_adam, shapes):
    """ZeRO-Offload's step: grad copy, DeepSpeedCPUAdam (AdamW mode) on float32, param copy."""
    return torch_offload_step(
        torch, shapes, optimizer=lambda params, **kw: cpu_adam(params, adamw_mode=True, **kw))


def deepspeed_bf16_step(torch, cpu_adam, shapes):
    """DeepSpeedCPUAdam's fused step on bf16 params, grads and states (AdamW mode)."""
    return cpu_adam(_bf16_params(torch, shapes), lr=LR, weight_decay=WEIGHT_DECAY, adamw_mode=True,
                    fp32_optimizer_states=False).step


def deepspeed_cpu_adam():
    """(DeepSpeedCPUAdam, None) with its cpu_adam op built and loaded, or (None, a one-line note
    why not). Imported here, never at module level: DeepSpeed is an optional peer. Its op
    JIT-builds with ninja on first use (about 80 s), under DS_ACCELERATOR=cpu unless set."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
        from deepspeed.ops.adam import DeepSpeedCPUAdam
        from deepspeed.ops.op_builder import CPUAdamBuilder
    except Exception as e:  # not installed, or its import fails (e.g. accelerator detection)
        return None, f"DeepSpeed columns empty: deepspeed not importable ({type(e).__name__}: {_first_line(e)})"
    try:
        CPUAdamBuilder().load()
    except Exception as e:
        return None, (f"DeepSpeed {deepspeed.__version__} columns empty: its cpu_adam op failed to "
                      f"build or load ({type(e).__name__}: {_first_line(e)})")
    return DeepSpeedCPUAdam, None


def deepspeed_or_none(make, step_name, notes):
    """make(), a DeepSpeed step, called once to see that it runs; None after a failure (its
    first one per step noted in `notes`), so that its columns stay empty and the bench goes on."""
    try:
        fn = make()
        fn()
    except Exception as e:
        notes.setdefault(step_name, f"DeepSpeed's {step_name} step failed, its cells empty "
                                    f"({type(e).__name__}: {_first_line(e)})")
        return None
    return fn


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:160]


STEPS = {
    # name: (tensorpress step, naive NumPy step, torch step, DeepSpeed step, bytes per element)
    "offload": (offload_step, naive_offload_step, torch_offload_step, deepspeed_offload_step, 28),
    "bf16": (bf16_step, naive_bf16_step, torch_bf16_step, deepspeed_bf16_step, 14),
}


def run(quick=False, plot=False):
    torch = torch_or_none()
    backends = [b for b in ("c", "numba") if b in _backend.available_backends()]
    lead = backends[0]
    for b in backends:  # once, not timed: the naive rows compute what tp.adam_step does
        with routed_to(optim, "adam", b):
            check_naive_steps()
    cpu_adam, ds_note = deepspeed_cpu_adam() if torch is not None else (None, None)
    ds_failures = {}
    cases = [(f"{n:,} elements", [(n,)]) for n in (QUICK_SIZES if quick else FULL_SIZES)]
    if not quick:
        cases.append(("all-MiniLM-L6-v2 (103 tensors)", [s for _, s in minilm_l6_shapes()]))
    report = Report(
        "adam_mixed",
        "Mixed-precision AdamW step, in place. offload: float32 master, bf16 grads and params, "
        "float32 states (28 B/element; torch and DeepSpeed: grad copy + float32 AdamW + param copy, "
        "46 B/element). bf16: params, grads, states bf16 (14 B/element; torch: AdamW(fused=True); "
        "DeepSpeed: CPUAdam on bf16 states). NumPy: textbook AdamW with astype. bound: C stream "
        "probe moving the same bytes in place",
        ["step", "case", "C elem/s", "Numba elem/s", "NumPy elem/s", "torch elem/s",
         "DeepSpeed elem/s", f"{lead} vs NumPy", f"{lead} vs torch", f"{lead} vs DeepSpeed",
         "Numba/C", "of bound", "torch of bound"],
        ["{}", "{}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.3g}", "{:.2f}x", "{:.2f}x",
         "{:.2f}x", "{:.2f}", "{:.0f}%", "{:.0f}%"])
    for name, (ours, naive, theirs, deepspeed, nbytes) in STEPS.items():
        for label, shapes in cases:
            n = sum(int(np.prod(s)) for s in shapes)
            fns = {b: ours(shapes) for b in backends}
            fns["torch"] = theirs(torch, shapes) if torch is not None else None
            if fns["torch"] is not None:
                fns["torch"]()  # its states, allocated on the first step, before the naive room
            fns["deepspeed"] = (deepspeed_or_none(lambda: deepspeed(torch, cpu_adam, shapes), name, ds_failures)
                                if cpu_adam is not None else None)
            # nbytes per element as 7 float32 streams (4 read, 3 written in place)
            fns["bound"] = stream_probe(max(n * nbytes // 28, 1), 4, 3, in_place=True)
            fns["numpy"] = naive(shapes)  # last: nothing allocated after it takes its heap room
            routes = {b: (lambda b=b: routed_to(optim, "adam", b)) for b in backends}
            t = best_times(fns, contexts=routes)
            share = lambda key: 100 * t["bound"] / t[key] if t.get("bound") and t.get(key) else None  # noqa: E731
            report.rows.append([
                name, label, per_second(n, t.get("c")), per_second(n, t.get("numba")),
                per_second(n, t["numpy"]), per_second(n, t.get("torch")),
                per_second(n, t.get("deepspeed")), speedup(t[lead], t["numpy"]),
                speedup(t[lead], t.get("torch")), speedup(t[lead], t.get("deepspeed")),
                t["c"] / t["numba"] if "numba" in t and "c" in t else None,
                share(lead), share("torch")])
    report.notes.append(
        "NumPy: its temporaries reused from the heap, as in a long-running loop (no page faults); "
        f"past {MMAP_THRESHOLD_MAX >> 20} MiB a tensor's (16M elements, MiniLM's embedding) are mapped "
        "fresh every call, as in any glibc process.")
    if cpu_adam is not None:
        import deepspeed as ds
        report.notes.append(
            f"DeepSpeed {ds.__version__} CPUAdam, AdamW mode: offload as ZeRO-Offload runs it "
            "(grad copy, DeepSpeedCPUAdam.step() on float32, param copy: it has no fused form with "
            "a master); bf16 fused (fp32_optimizer_states=False).")
        report.notes += ds_failures.values()
    elif ds_note:
        report.notes.append(ds_note)
    return report
