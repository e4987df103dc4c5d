"""tensorpress.torch.Adam / AdamW against torch.optim.Adam / AdamW.

Runs on whichever backend TENSORPRESS_BACKEND selects (the suite runs once per backend).

Tolerances. tensorpress's kernel does the IEEE operations of torch's single-tensor formula with
no fused multiply-add. torch's own CPU kernels do not: ``lerp_`` and ``addcmul_`` are computed
with an FMA, and its vectorized float32 ``sqrt`` is not always correctly rounded (measured with
torch 2.13 on AVX2). So exp_avg / exp_avg_sq / the denominator differ from torch by an ulp
here and there, and over many steps a parameter drifts by a few ulps of its own magnitude
plus a few ulps of each step's update. Checked as ``|ours - torch| <= RTOL*|torch| + atol`` with
RTOL = 1e-6 and atol, for values that pass near zero, a small multiple of what one step can
move: ``PARAM_ATOL * lr`` for parameters, ``MOMENT_ATOL * gscale**k`` for the moments (k = 1
for exp_avg, 2 for exp_avg_sq). The figures measured over the whole parity sweep are quoted
next to the constants. float64 agrees to ~1e-13 relative.
"""

import copy
import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tensorpress  # noqa: E402
from tensorpress.errors import DTypeError, InvalidArgumentError  # noqa: E402
from tensorpress.torch import Adam, AdamW  # noqa: E402

SHAPES = [(), (0,), (1,), (7,), (33, 5), (3, 0, 4), (1000,), (17, 19, 3), (67,)]
STEPS = 60
LR = 1e-2

RTOL = {torch.float32: 1e-6, torch.float64: 1e-12}
# atol / lr for parameters and atol / grad-scale**k for the moments (see the module docstring).
# Measured over the parity sweep (60 steps, lr 1e-2, both backends, torch fused and unfused):
# parameters need atol 2.4e-6*lr (float32) and 4.6e-15*lr (float64) on top of RTOL; exp_avg
# 5.2e-8 (float32) and 1e-18 (float64); exp_avg_sq nothing beyond RTOL. Limits below: ~4x that.
PARAM_ATOL = {torch.float32: 1e-5, torch.float64: 2e-14}
MOMENT_ATOL = {torch.float32: 2e-7, torch.float64: 4e-18}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # torch's elementwise CPU ops (its sqrt especially) wake OpenMP threads for tensors of a
    # few thousand elements, which on a loaded 2-core machine costs milliseconds per call.
    # Results do not depend on it: these ops are elementwise.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pair(cls, tcls, shapes, dtype, seed=0, fused=False, **options):
    gen = torch.Generator().manual_seed(seed)
    ours = [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    return ours, theirs, cls(ours, **options), tcls(theirs, fused=fused, **options)


def set_grads(ours, theirs, gen, scale=1.0, none=()):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        if i in none:
            p.grad = q.grad = None
            continue
        g = torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale
        if g.numel() > 4:
            g.view(-1)[::5] = 0.0  # exact zeros: exp_avg_sq stays small, eps matters
        p.grad, q.grad = g.clone(), g.clone()


def assert_close(a, b, rtol, atol, what):
    a, b = a.detach(), b.detach()
    assert a.shape == b.shape and a.dtype == b.dtype, what
    if a.numel() == 0:
        return
    excess = ((a - b).abs() - (rtol * b.abs() + atol)).max().item()
    assert excess <= 0, f"{what}: max |diff| exceeds tolerance by {excess:.3g}"


def assert_same_state(opt, topt, ours, theirs, dtype, lr=LR, gscale=1.0):
    rtol = RTOL[dtype]
    patol = PARAM_ATOL[dtype] * lr
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert_close(p, q, rtol, patol, f"param {i} {tuple(p.shape)}")
        s, t = opt.state.get(p, {}), topt.state.get(q, {})
        assert sorted(s) == sorted(t), f"state keys of param {i}"
        if not t:
            continue
        assert s["step"].dtype == t["step"].dtype and s["step"].shape == t["step"].shape == ()
        assert s["step"].item() == t["step"].item(), f"step of param {i}"
        assert_close(s["exp_avg"], t["exp_avg"], rtol, MOMENT_ATOL[dtype] * gscale, f"exp_avg {i}")
        for key in ("exp_avg_sq", "max_exp_avg_sq"):
            if key in t:
                assert_close(s[key], t[key], rtol, MOMENT_ATOL[dtype] * gscale**2, f"{key} {i}")


# Every option combination: (optimizer, weight_decay, amsgrad, maximize).
OPTIONS = [
    pytest.param(cls, wd, ams, mx, id=f"{cls[0].__name__}-wd{wd}-{'ams' if ams else 'noams'}-{'max' if mx else 'min'}")
    for cls, wd, ams, mx in itertools.product(
        [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)], [0.0, 0.1], [False, True], [False, True]
    )
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("classes, wd, amsgrad, maximize", OPTIONS)
def test_parity_with_torch(classes, wd, amsgrad, maximize, fused, dtype):
    cls, tcls = classes
    ours, theirs, opt, topt = make_pair(cls, tcls, SHAPES, dtype, fused=fused, lr=LR,
                                        weight_decay=wd, amsgrad=amsgrad, maximize=maximize)
    gen = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        set_grads(ours, theirs, gen)
        opt.step()
        topt.step()
        if step in (0, 9, STEPS - 1):
            assert_same_state(opt, topt, ours, theirs, dtype)
