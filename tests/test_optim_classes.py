"""tp.Adam / tp.AdamW over NumPy arrays: equal to the functional step, exact state round trips."""

import numpy as np
import pytest

import tensorpress as tp
from reference.adam import adam_reference


def params_and_grads(rng, shapes=((4, 3), (3,), (0,), (10,)), dtype=np.float32):
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return params, lambda: [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("cls, decoupled, wd", [(tp.Adam, False, 0.0), (tp.Adam, False, 0.05), (tp.AdamW, True, 0.01)])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_class_equals_reference(cls, decoupled, wd, amsgrad, rng):
    params, grads = params_and_grads(rng)
    ref_p = [p.copy() for p in params]
    ref_m = [np.zeros_like(p) for p in params]
    ref_v = [np.zeros_like(p) for p in params]
    ref_vmax = [np.zeros_like(p) for p in params]
    opt = cls(params, lr=1e-2, weight_decay=wd, amsgrad=amsgrad)
    for step in range(1, 8):
        gs = grads()
        assert opt.step(gs) is False
        for i, g in enumerate(gs):
            adam_reference(ref_p[i], g, ref_m[i], ref_v[i], ref_vmax[i], step=step, lr=1e-2,
                           weight_decay=wd, decoupled=decoupled, amsgrad=amsgrad)
    for p, r in zip(params, ref_p):
        np.testing.assert_array_equal(p, r)


def test_adamw_default_weight_decay():
    p = np.ones(3, np.float32)
    assert tp.AdamW([p]).weight_decay == 1e-2
    assert tp.Adam([p]).weight_decay == 0.0


def test_state_dict_round_trip_is_exact(rng):
    params, grads = params_and_grads(rng, dtype=np.float64)
    opt = tp.AdamW(params, lr=3e-3, amsgrad=True)
    for _ in range(5):
        opt.step(grads())
    saved = opt.state_dict()
    clone_params = [p.copy() for p in params]
    clone = tp.AdamW(clone_params, lr=0.5)  # hyper-parameters come back from the state_dict
    clone.load_state_dict(saved)
    assert clone.lr == 3e-3 and clone.amsgrad
    for _ in range(5):
        g = grads()
        opt.step(g)
        clone.step([x.copy() for x in g])
    for a, b in zip(params, clone_params):
        np.testing.assert_array_equal(a, b)
    sd = clone.state_dict()
    assert [sd["state"][i]["step"] for i in sd["state"]] == [10, 10, 10, 10]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def test_state_dict_is_a_copy(rng):
    params, grads = params_and_grads(rng)
    opt = tp.Adam(params)
    opt.step(grads())
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"][...] = 123.0
    assert not (opt.state_dict()["state"][0]["exp_avg"] == 123.0).any()


def test_none_grads_skip_and_keep_per_array_steps(rng):
    params, grads = params_and_grads(rng)
    opt = tp.Adam(params, lr=1e-2)
    frozen = params[1].copy()
    g = grads()
    g[1] = None
    opt.step(g)
    np.testing.assert_array_equal(params[1], frozen)
    opt.step(grads())
    steps = {i: e["step"] for i, e in opt.state_dict()["state"].items()}
    assert steps == {0: 2, 1: 1, 2: 2, 3: 2}


def test_found_inf_leaves_everything_untouched(rng):
    params, grads = params_and_grads(rng)
    opt = tp.Adam(params, lr=1e-2)
    opt.step(grads())
    before = opt.state_dict()
    snapshot = [p.copy() for p in params]
    g = grads()
    g[0][0, 0] = np.inf
    assert opt.step(g, grad_scale=2.0) is True
    after = opt.state_dict()
    for p, s in zip(params, snapshot):
        np.testing.assert_array_equal(p, s)
    for i in before["state"]:
        assert before["state"][i]["step"] == after["state"][i]["step"]
        np.testing.assert_array_equal(before["state"][i]["exp_avg"], after["state"][i]["exp_avg"])


def test_found_inf_with_mixed_step_counts_checks_all_groups_first(rng):
    params, grads = params_and_grads(rng)
    opt = tp.Adam(params, lr=1e-2)
    g = grads()
    g[1] = None
    opt.step(g)  # arrays now have steps 1, 0, 1, 1: two groups next time
    snapshot = [p.copy() for p in params]
    g = grads()
    g[3][0] = np.nan
    assert opt.step(g, grad_scale=1.0) is True
    for p, s in zip(params, snapshot):
        np.testing.assert_array_equal(p, s)


def test_bad_construction_and_steps(rng):
    p = rng.standard_normal(5).astype(np.float32)
    with pytest.raises(ValueError, match="lr"):
        tp.Adam([p], lr=-1)
    with pytest.raises(TypeError, match="dtype"):
        tp.Adam([p.astype(np.int64)])
    with pytest.raises(ValueError, match="contiguous"):
        tp.Adam([rng.standard_normal(10).astype(np.float32)[::2]])
    with pytest.raises(ValueError, match="overlaps"):
        tp.Adam([p, p[1:]])
    opt = tp.Adam([p])
    with pytest.raises(ValueError, match="1 params"):
        opt.step([p, p])
    with pytest.raises(ValueError, match="shape"):
        opt.step([np.ones(4, np.float32)])


def test_load_state_dict_rejects_mismatches(rng):
    p = rng.standard_normal(5).astype(np.float32)
    opt = tp.Adam([p])
    opt.step([np.ones(5, np.float32)])
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="1 arrays|arrays"):
        tp.Adam([p.copy(), p.copy()]).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected float32\\[6\\]"):
        tp.Adam([np.ones(6, np.float32)]).load_state_dict(sd)
    with pytest.raises(ValueError):
        tp.Adam([p.copy()]).load_state_dict({"nonsense": 1})


def test_a_bad_array_in_a_later_group_modifies_nothing(rng):
    params, grads = params_and_grads(rng)
    opt = tp.Adam(params, lr=1e-2)
    g = grads()
    g[1] = None
    opt.step(g)  # steps 1, 0, 1, 1: the next step makes two calls, param 1's group last
    snapshot = [p.copy() for p in params] + [m.copy() for m in opt._exp_avgs]
    steps = list(opt._steps)
    g = grads()
    g[1] = g[1].astype(np.float64)  # bad dtype, in the group that would run second
    with pytest.raises(TypeError, match=r"grads\[1\]|grads"):
        opt.step(g)
    for a, s in zip(params + opt._exp_avgs, snapshot):
        np.testing.assert_array_equal(a, s)
    assert opt._steps == steps
    g = grads()
    opt.lr = float("nan")  # an option made invalid by hand is refused before any group runs
    with pytest.raises(ValueError, match="lr"):
        opt.step(g)
    for a, s in zip(params, snapshot):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd["state"].update({-1: sd["state"].pop(0)}), "key"),
    (lambda sd: sd["state"].update({5: sd["state"].pop(0)}), "out of range"),
    (lambda sd: sd["state"].update({True: sd["state"].pop(0)}), "key"),
    (lambda sd: sd["state"].update({"0": sd["state"][0]}), "twice"),
    (lambda sd: sd["state"][0].update(step=2.5), "whole number"),
    (lambda sd: sd["state"][0].update(step=float("nan")), "whole number"),
    (lambda sd: sd["state"][0].update(step=0), ">= 1"),
    (lambda sd: sd["state"][0].update(step=2**63), "<="),
    (lambda sd: sd["state"][0].pop("exp_avg"), "exp_avg"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "lr"),
    (lambda sd: sd["param_groups"][0].update(betas=(1.5, 0.9)), "betas"),
    (lambda sd: sd["param_groups"][0].update(eps=float("nan")), "eps"),
    (lambda sd: sd["param_groups"][0].pop("weight_decay"), "weight_decay"),
    (lambda sd: sd["param_groups"][0].update(amsgrad="yes"), "amsgrad"),
])
def test_load_state_dict_refuses_forged_state_and_changes_nothing(rng, edit, match):
    p = rng.standard_normal(5).astype(np.float32)
    opt = tp.Adam([p], lr=1e-2)
    opt.step([np.ones(5, np.float32)])
    opt.step([np.ones(5, np.float32)])
    sd = opt.state_dict()
    edit(sd)
    target = tp.Adam([p.copy()], lr=0.5)
    target.step([np.ones(5, np.float32)])
    before = target.state_dict()
    with pytest.raises(tp.InvalidArgumentError, match=match):
        target.load_state_dict(sd)
    after = target.state_dict()
    assert target.lr == 0.5 and after["state"][0]["step"] == before["state"][0]["step"] == 1
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_load_state_dict_takes_torch_style_steps_and_string_keys(rng):
    p = rng.standard_normal(5).astype(np.float32)
    opt = tp.Adam([p], lr=1e-2)
    opt.step([np.ones(5, np.float32)])
    sd = opt.state_dict()
    sd["state"] = {"0": dict(sd["state"][0], step=np.float32(1.0))}  # as a JSON / torch round trip leaves it
    other = tp.Adam([p.copy()], lr=1e-2)
    other.load_state_dict(sd)
    assert other._steps == [1]


@pytest.mark.parametrize("wrap", [np.asmatrix, lambda a: a.view(np.memmap)])
def test_ndarray_subclasses_are_updated_through_plain_views(rng, wrap):
    base = [rng.standard_normal((8, 16)).astype(np.float32) for _ in range(4)]
    base[3] = np.abs(base[3])  # a second moment is never negative
    p, g, m, v = (wrap(a.copy()) for a in base)
    want = [a.copy() for a in base]
    adam_reference(want[0], want[1], want[2], want[3], step=1, lr=1e-2)
    assert tp.adam_step([p], [g], [m], [v], step=1, lr=1e-2) is False
    assert tp.adam_step(p, g, m, v, step=2, lr=1e-2) is False
    adam_reference(want[0], want[1], want[2], want[3], step=2, lr=1e-2)
    for got, expected in zip((p, m, v), (want[0], want[2], want[3])):
        np.testing.assert_array_equal(np.asarray(got), expected)


def test_masked_arrays_are_refused_and_untouched(rng):
    p = np.ma.masked_array(rng.standard_normal(6).astype(np.float32), mask=[0, 1, 0, 0, 0, 0])
    g, m, v = (np.ones(6, np.float32) for _ in range(3))
    before = p.data.copy()
    with pytest.raises(TypeError, match="masked"):
        tp.adam_step(p, g, m, v, step=1)
    with pytest.raises(TypeError, match="masked"):
        tp.adam_step([np.ones(6, np.float32)], [p], [m], [v], step=1)
    np.testing.assert_array_equal(p.data, before)
    assert (m == 1).all() and (v == 1).all()
