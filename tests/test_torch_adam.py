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

from tensorpress.errors import DTypeError, InvalidArgumentError  # noqa: E402
from tensorpress.torch import Adam, AdamW  # noqa: E402

SHAPES = [(), (0,), (1,), (7,), (33, 5), (3, 0, 4), (17, 19, 3), (67,)]
STEPS = 50
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
@pytest.mark.parametrize("classes, wd, amsgrad, maximize", OPTIONS)
def test_parity_with_torch(classes, wd, amsgrad, maximize, dtype):
    """Against torch's fused=False and fused=True paths at once (one tensorpress run)."""
    cls, tcls = classes
    options = dict(lr=LR, weight_decay=wd, amsgrad=amsgrad, maximize=maximize)
    ours, theirs, opt, topt = make_pair(cls, tcls, SHAPES, dtype, fused=False, **options)
    fused = [p.detach().clone().requires_grad_() for p in ours]
    fopt = tcls(fused, fused=True, **options)
    gen = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        set_grads(ours, theirs, gen)
        for p, q in zip(fused, theirs):
            p.grad = None if q.grad is None else q.grad.clone()
        opt.step()
        topt.step()
        fopt.step()
        if step in (0, 9, STEPS - 1):
            assert_same_state(opt, topt, ours, theirs, dtype)
            assert_same_state(opt, fopt, ours, fused, dtype)


def run_both(ours, theirs, opt, topt, steps, seed=2, none=(), sched=None, tsched=None):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        set_grads(ours, theirs, gen, none=none)
        opt.step()
        topt.step()
        if sched is not None:
            sched.step()
            tsched.step()


def test_defaults_and_group_layout_match_torch():
    p = torch.zeros(3, requires_grad=True)
    for cls, tcls in [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)]:
        opt, topt = cls([p]), tcls([p])
        assert isinstance(opt, torch.optim.Optimizer)
        assert opt.defaults == topt.defaults  # AdamW: weight_decay 1e-2, decoupled
        assert opt.param_groups[0].keys() == topt.param_groups[0].keys()
    assert AdamW([p]).defaults["weight_decay"] == 1e-2 and Adam([p]).defaults["weight_decay"] == 0


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_state_dict_layout_matches_torch(fused):
    ours, theirs, opt, topt = make_pair(AdamW, torch.optim.AdamW, [(5, 3), (2,)], torch.float32,
                                        fused=fused, lr=LR, amsgrad=True)
    run_both(ours, theirs, opt, topt, 3)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"][0].keys() == tsd["param_groups"][0].keys()
    assert sd["state"].keys() == tsd["state"].keys() == {0, 1}
    for i in (0, 1):
        assert sd["state"][i].keys() == tsd["state"][i].keys()
        for key, t in tsd["state"][i].items():
            s = sd["state"][i][key]
            assert (s.dtype, s.shape, s.device) == (t.dtype, t.shape, t.device), key
    step = sd["state"][0]["step"]
    assert step.dtype == torch.float32 and step.shape == () and step.item() == 3.0


def _saved(state_dict):
    """A state_dict after a trip through torch.save / torch.load(weights_only=True)."""
    import io

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dict_round_trip_continues_identically(direction, fused):
    """Train 10 steps with one optimizer, save, load into the other kind, train 20 more: the
    result equals the first kind continuing."""
    shapes = [(6, 4), (4,), (), (0, 3)]
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(s, generator=gen) for s in shapes]
    options = dict(lr=LR, weight_decay=0.05, amsgrad=True)

    def build(kind, params):
        return (AdamW(params, **options) if kind == "ours"
                else torch.optim.AdamW(params, fused=fused, **options))

    first, second = ("torch", "ours") if direction == "torch_to_ours" else ("ours", "torch")
    a = [t.clone().requires_grad_() for t in start]
    opt_a = build(first, a)
    gen = torch.Generator().manual_seed(4)
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(30)]
    for k in range(10):
        for p, g in zip(a, grads[k]):
            p.grad = g.clone()
        opt_a.step()
    saved = _saved(opt_a.state_dict())
    b = [p.detach().clone().requires_grad_() for p in a]
    opt_b = build(second, b)
    opt_b.load_state_dict(saved)
    for k in range(10, 30):
        for p, q, g in zip(a, b, grads[k]):
            p.grad, q.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    ours, theirs, opt, topt = (b, a, opt_b, opt_a) if second == "ours" else (a, b, opt_a, opt_b)
    assert_same_state(opt, topt, ours, theirs, torch.float32)
    assert opt.state[ours[0]]["step"].item() == 30.0


def test_param_groups_with_their_own_options():
    gen = torch.Generator().manual_seed(5)
    shapes = [(8, 3), (3,), (10,), ()]
    ours = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]

    def groups(ps):
        return [{"params": ps[:2], "lr": 1e-2},
                {"params": ps[2:3], "lr": 1e-3, "weight_decay": 0.1, "amsgrad": True},
                {"params": ps[3:], "lr": 3e-2, "maximize": True, "betas": (0.8, 0.99)}]

    opt, topt = Adam(groups(ours), lr=5e-3), torch.optim.Adam(groups(theirs), lr=5e-3)
    run_both(ours, theirs, opt, topt, 25)
    assert_same_state(opt, topt, ours, theirs, torch.float32, lr=3e-2)
    # a group added later behaves the same
    extra = torch.randn(4, generator=gen).requires_grad_()
    textra = extra.detach().clone().requires_grad_()
    opt.add_param_group({"params": [extra], "lr": 2e-2})
    topt.add_param_group({"params": [textra], "lr": 2e-2})
    run_both(ours + [extra], theirs + [textra], opt, topt, 5)
    assert_same_state(opt, topt, ours + [extra], theirs + [textra], torch.float32, lr=3e-2)


def test_closure_runs_with_grad_and_returns_loss():
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(16, 5, generator=gen), torch.randn(16, generator=gen)
    w = torch.zeros(5, requires_grad=True)
    tw = w.detach().clone().requires_grad_()
    opt, topt = Adam([w], lr=0.1), torch.optim.Adam([tw], lr=0.1)

    def closure_for(param, o):
        def closure():
            o.zero_grad()
            loss = ((x @ param - y) ** 2).mean()
            loss.backward()
            return loss
        return closure

    losses = []
    for _ in range(20):
        with torch.no_grad():  # the closure must still build a graph
            loss = opt.step(closure_for(w, opt))
            tloss = topt.step(closure_for(tw, topt))
        assert torch.is_tensor(loss)
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert_close(w, tw, RTOL[torch.float32], PARAM_ATOL[torch.float32] * 0.1, "param")
    assert opt.step() is None  # no closure: None, like torch


def test_none_grads_are_skipped_and_step_counts_stay_per_param():
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(4,), (3, 2), (5,), (2,)],
                                        torch.float32, lr=LR, amsgrad=True)
    gen = torch.Generator().manual_seed(7)
    for k in range(12):
        none = {3} | ({0} if k < 4 else set()) | ({1} if k % 2 else set())
        set_grads(ours, theirs, gen, none=none)
        opt.step()
        topt.step()
    assert_same_state(opt, topt, ours, theirs, torch.float32)
    assert [opt.state[p]["step"].item() if p in opt.state else 0 for p in ours] == [8.0, 6.0, 12.0, 0]
    assert ours[3] not in opt.state


def test_zero_grad_and_zero_size_and_scalar_params():
    ours, theirs, opt, topt = make_pair(AdamW, torch.optim.AdamW, [(), (0,), (1,)], torch.float64, lr=LR)
    run_both(ours, theirs, opt, topt, 5)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)
    opt.step()  # nothing has a grad: nothing changes
    topt.zero_grad()
    topt.step()
    assert_same_state(opt, topt, ours, theirs, torch.float64)


@pytest.mark.parametrize("make_sched", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.3),
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=40),
], ids=["StepLR", "OneCycleLR"])
def test_lr_scheduler_changes_the_lr_used(make_sched):
    ours, theirs, opt, topt = make_pair(AdamW, torch.optim.AdamW, [(20,), (3, 3)], torch.float32, lr=LR)
    sched, tsched = make_sched(opt), make_sched(topt)
    run_both(ours, theirs, opt, topt, 30, sched=sched, tsched=tsched)
    assert opt.param_groups[0]["lr"] == topt.param_groups[0]["lr"] != LR
    assert_same_state(opt, topt, ours, theirs, torch.float32, lr=0.05)


def test_tensor_lr_is_accepted():
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(6,)], torch.float32, lr=torch.tensor(LR))
    run_both(ours, theirs, opt, topt, 5)
    assert_same_state(opt, topt, ours, theirs, torch.float32)


def test_updates_in_place_without_copies():
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(50,), (4, 4)], torch.float32, lr=LR, amsgrad=True)
    run_both(ours, theirs, opt, topt, 1)
    ptrs = [(p.data_ptr(), {k: (id(v), v.data_ptr()) for k, v in opt.state[p].items()}) for p in ours]
    run_both(ours, theirs, opt, topt, 5)
    assert ptrs == [(p.data_ptr(), {k: (id(v), v.data_ptr()) for k, v in opt.state[p].items()}) for p in ours]
    assert_same_state(opt, topt, ours, theirs, torch.float32)


def test_replaced_param_storage_and_state_are_picked_up():
    """The adapter caches NumPy views between steps; `p.data = ...` and replaced state tensors
    must be noticed, not updated through stale views."""
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(4, 4), (6,)], torch.float32, lr=LR)
    run_both(ours, theirs, opt, topt, 3)
    fresh = torch.randn(4, 4)
    ours[0].data = fresh.clone()
    theirs[0].data = fresh.clone()
    opt.state[ours[1]]["exp_avg"] = opt.state[ours[1]]["exp_avg"].clone()
    run_both(ours, theirs, opt, topt, 3)
    assert_same_state(opt, topt, ours, theirs, torch.float32)
    assert ours[0].data_ptr() != fresh.data_ptr()


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error", [
    (lambda: torch.randn(4, 5).t().requires_grad_(), InvalidArgumentError),  # not contiguous
    (lambda: torch.zeros(3, dtype=torch.int64), DTypeError),
    (lambda: torch.zeros(3, dtype=torch.float8_e4m3fn), DTypeError),  # half precision is taken; 8-bit is not
    (lambda: torch.zeros(3, dtype=torch.complex64, requires_grad=True), DTypeError),
    (lambda: torch.zeros(3, device="meta", requires_grad=True), InvalidArgumentError),
], ids=["noncontiguous", "int64", "float8", "complex64", "meta-device"])
def test_unsupported_params_are_refused_at_construction(make, error):
    with pytest.raises(error):
        Adam([make()])


@pytest.mark.parametrize("options", [
    dict(lr=-1.0), dict(betas=(1.0, 0.9)), dict(eps=float("nan")), dict(weight_decay=-0.1),
    dict(capturable=True), dict(differentiable=True),
])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        Adam([torch.zeros(2, requires_grad=True)], **options)


def _make_bad(p, kind):
    """Done after the optimizer is built (which checks its params then)."""
    if kind == "sparse":
        p.grad = torch.randn(4, 3).to_sparse()
    elif kind == "noncontiguous":
        p.grad = torch.randn(3, 4).t()
    elif kind == "param-made-noncontiguous":
        p.data = torch.randn(3, 4).t()
        p.grad = torch.randn(4, 3)


@pytest.mark.parametrize("kind", ["sparse", "noncontiguous", "param-made-noncontiguous"])
def test_bad_grads_raise_and_change_nothing(kind):
    good = torch.randn(5, requires_grad=True)
    good.grad = torch.randn(5)
    bad = torch.randn(4, 3, requires_grad=True)
    opt = Adam([{"params": [good]}, {"params": [bad]}], lr=0.1)
    _make_bad(bad, kind)
    before = good.detach().clone()
    with pytest.raises(InvalidArgumentError):
        opt.step()
    assert torch.equal(good, before) and len(opt.state) == 0


def test_lr_made_invalid_by_hand_raises_before_any_update():
    a, b = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt = Adam([{"params": [a]}, {"params": [b]}])
    opt.param_groups[1]["lr"] = float("nan")
    before = a.detach().clone()
    with pytest.raises(ValueError):
        opt.step()
    assert torch.equal(a, before)


# --- gradient scaling --------------------------------------------------------------------------

def test_grad_scale_matches_torch_fused():
    """torch's fused Adam takes grad_scale / found_inf as attributes (GradScaler sets them)."""
    scale = 1024.0
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(30,), (5, 2)], torch.float32,
                                        fused=True, lr=LR, weight_decay=0.1)
    topt.grad_scale, topt.found_inf = torch.tensor(scale), torch.tensor(0.0)
    gen = torch.Generator().manual_seed(8)
    for _ in range(10):
        set_grads(ours, theirs, gen, scale=scale)
        opt.step(grad_scale=scale)
        topt.step()
        assert opt.last_found_inf is False
    assert_same_state(opt, topt, ours, theirs, torch.float32)


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()["state"])


def _assert_unchanged(opt, params, snap):
    ps, state = snap
    assert all(torch.equal(p, q) for p, q in zip(params, ps))
    now = opt.state_dict()["state"]
    assert now.keys() == state.keys()
    for i in state:
        for k in state[i]:
            assert torch.equal(now[i][k], state[i][k]), (i, k)


@pytest.mark.parametrize("layout", ["one_call", "two_groups", "mixed_steps"])
@pytest.mark.parametrize("bad", [math.inf, math.nan, 3e38], ids=["inf", "nan", "overflows-after-unscale"])
def test_nonfinite_grads_under_grad_scale_change_nothing(layout, bad):
    """With a grad_scale, a step whose unscaled grads hold NaN/Inf is a no-op, step counts
    included, however many native calls the step needs (the adapter checks all first)."""
    gen = torch.Generator().manual_seed(9)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in [(6,), (3, 3), (4,)]]
    groups = [{"params": params}] if layout != "two_groups" else [{"params": params[:2]}, {"params": params[2:], "lr": 0.1}]
    opt = AdamW(groups, lr=LR, amsgrad=True)
    for k in range(3):
        for i, p in enumerate(params):
            skip = layout == "mixed_steps" and i == 0 and k == 0
            p.grad = None if skip else torch.randn(p.shape, generator=gen)
        opt.step(grad_scale=0.5)
    snap = _snapshot(opt, params)
    params[-1].grad.view(-1)[1] = bad  # only the last tensor (last call) is bad
    opt.step(grad_scale=0.5)
    assert opt.last_found_inf is True
    _assert_unchanged(opt, params, snap)
    params[-1].grad.view(-1)[1] = 0.0
    opt.step(grad_scale=0.5)
    assert opt.last_found_inf is False
    assert opt.state[params[-1]]["step"].item() == 4.0


def test_grad_scaler_drives_the_optimizer_like_torch_fused():
    """torch.amp.GradScaler hands grad_scale/found_inf to optimizers that declare
    _step_supports_amp_scaling; an overflowing step is skipped and the scale backs off."""
    gen = torch.Generator().manual_seed(10)
    x, y = torch.randn(32, 6, generator=gen), torch.randn(32, generator=gen)
    w0 = torch.randn(6, generator=gen)
    runs = []
    for kind in ("ours", "torch"):
        w = w0.clone().requires_grad_()
        opt = Adam([w], lr=LR) if kind == "ours" else torch.optim.Adam([w], lr=LR, fused=True)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
        scales = []
        for k in range(12):
            opt.zero_grad()
            loss = ((x @ w - y) ** 2).mean() * (float("inf") if k == 5 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
        runs.append((w.detach(), opt.state[w]["step"].item(), scales))
    (w, step, scales), (tw, tstep, tscales) = runs
    assert step == tstep == 11.0 and scales == tscales
    assert_close(w, tw, RTOL[torch.float32], PARAM_ATOL[torch.float32] * LR, "param")


# --- a real training loop ----------------------------------------------------------------------

# Measured: the two loss curves differ by at most 3.0e-7 relative over the 100 steps (both
# backends); the optimizers' ulp-level differences (module docstring) barely reach the loss.
LOSS_RTOL = 2e-6


def test_mlp_on_digits_follows_torch_adamw():
    """An MLP on scikit-learn's bundled digits (no download), 100 full-batch AdamW steps from
    the same seed with tensorpress and with torch: the loss curves agree to LOSS_RTOL."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    curves = {}
    for kind in ("ours", "torch"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        cls = AdamW if kind == "ours" else torch.optim.AdamW
        opt = cls(model.parameters(), lr=1e-2, weight_decay=1e-2)
        losses = []
        for _ in range(100):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves[kind] = np.array(losses)
    ours, theirs = curves["ours"], curves["torch"]
    assert theirs[-1] < 0.1 * theirs[0]  # it does learn
    assert np.allclose(ours, theirs, rtol=LOSS_RTOL, atol=0), np.max(np.abs(ours / theirs - 1))


def test_importing_tensorpress_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tensorpress; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_old_state_dicts_with_number_steps_load():
    """Very old torch checkpoints stored 'step' as a Python number; torch converts it on load."""
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(5,)], torch.float32, lr=LR)
    run_both(ours, theirs, opt, topt, 4)
    sd = copy.deepcopy(topt.state_dict())
    sd["state"][0]["step"] = 4
    fresh = Adam([ours[0]], lr=LR)
    fresh.load_state_dict(sd)
    step = fresh.state[ours[0]]["step"]
    assert torch.is_tensor(step) and step.dtype == torch.float32 and step.item() == 4.0


def test_mismatched_loaded_state_raises_before_any_update():
    ours, theirs, opt, topt = make_pair(Adam, torch.optim.Adam, [(5,), (3,)], torch.float32, lr=LR)
    run_both(ours, theirs, opt, topt, 2)
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][1]["exp_avg"] = torch.zeros(4)
    opt.load_state_dict(sd)
    before = [p.detach().clone() for p in ours]
    with pytest.raises(InvalidArgumentError, match="exp_avg"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, before))


def test_deepcopy_and_pickle_keep_training_identically():
    import pickle

    ours, theirs, opt, topt = make_pair(AdamW, torch.optim.AdamW, [(6,), (2, 2)], torch.float32, lr=LR)
    run_both(ours, theirs, opt, topt, 3)
    bundle = pickle.loads(pickle.dumps((ours, opt)))
    ours2, opt2 = bundle
    run_both(ours, theirs, opt, topt, 3)
    run_both(ours2, [p.detach().clone().requires_grad_() for p in ours2], opt2,
             torch.optim.AdamW([torch.zeros(1, requires_grad=True)]), 3)
    for p, q in zip(ours, ours2):
        assert torch.equal(p, q)


def _misaligned(n):
    """A float32 tensor whose data starts one byte past an element boundary."""
    raw = torch.zeros(4 * n + 1, dtype=torch.uint8)
    t = torch.frombuffer(memoryview(raw.numpy()), dtype=torch.float32, offset=1, count=n)
    assert t.data_ptr() % 4
    return raw, t


def test_a_bad_tensor_in_a_later_group_modifies_nothing():
    a = torch.randn(5, requires_grad=True)
    a.grad = torch.randn(5)
    raw, b = _misaligned(6)
    b.requires_grad_(True)
    b.grad = torch.ones(6)
    opt = Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
    before = a.detach().clone()
    with pytest.raises(InvalidArgumentError, match="aligned"):
        opt.step()
    assert torch.equal(a, before) and len(opt.state) == 0
    # A grad of the second group over the first group's parameter: each call alone is fine,
    # together the first call would change what the second reads.
    c = torch.randn(5, requires_grad=True)
    c.grad = a.detach()
    opt = Adam([{"params": [a]}, {"params": [c]}], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="overlaps"):
        opt.step()
    assert torch.equal(a, before) and len(opt.state) == 0


def test_state_made_by_a_step_that_raises_is_removed():
    a, b = torch.randn(5, requires_grad=True), torch.randn(3, requires_grad=True)
    a.grad, b.grad = torch.ones(5), torch.ones(3)
    opt = Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
    opt.state[b].update(step=torch.tensor(1.0), exp_avg=torch.zeros(4), exp_avg_sq=torch.zeros(3))
    with pytest.raises(InvalidArgumentError, match="exp_avg"):
        opt.step()
    assert a not in opt.state and set(opt.state[b]) == {"step", "exp_avg", "exp_avg_sq"}
    opt.state[b]["step"] = torch.tensor(float("inf"))
    opt.state[b]["exp_avg"] = torch.zeros(3)
    with pytest.raises(InvalidArgumentError, match="whole number"):
        opt.step()
    assert a not in opt.state
