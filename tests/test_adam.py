"""Fused Adam / AdamW (tp.adam_step): bit-exact against the NumPy reference on the live backend,
every C variant against the scalar reference, C against Numba, and every bad input."""

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorpress as tp
from tensorpress import _backend, _consts
from conftest import isa_variants, requires_c
from reference.adam import adam_reference

SHAPES = [(0,), (1,), (7,), (33,), (1000,), (3, 5, 7), (2, 0, 3), (70001,)]
OPTION_GRID = [
    dict(zip(("weight_decay", "decoupled", "amsgrad", "maximize", "grad_scale"), combo))
    for combo in itertools.product((0.0, 0.1), (False, True), (False, True), (False, True), (None, 4.0))
]


def make_state(rng, shape, dtype, amsgrad=False):
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    m = (0.1 * rng.standard_normal(shape)).astype(dtype)
    v = np.abs(0.01 * rng.standard_normal(shape)).astype(dtype)
    vmax = (v * 1.5).astype(dtype) if amsgrad else None
    return p, g, m, v, vmax


def copies(state):
    return [None if a is None else a.copy() for a in state]


def run_tp(state, step, opts, *, fn=tp.adam_step, **extra):
    p, g, m, v, vmax = state
    return fn(p, g, m, v, step=step, lr=opts.get("lr", 1e-3), betas=opts.get("betas", (0.9, 0.999)),
              eps=opts.get("eps", 1e-8), weight_decay=opts["weight_decay"],
              decoupled_weight_decay=opts["decoupled"], amsgrad=opts["amsgrad"],
              max_exp_avg_sqs=vmax, maximize=opts["maximize"], grad_scale=opts["grad_scale"], **extra)


def run_ref(state, step, opts):
    p, g, m, v, vmax = state
    return adam_reference(p, g, m, v, vmax, step=step, lr=opts.get("lr", 1e-3),
                          betas=opts.get("betas", (0.9, 0.999)), eps=opts.get("eps", 1e-8),
                          weight_decay=opts["weight_decay"], decoupled=opts["decoupled"],
                          amsgrad=opts["amsgrad"], maximize=opts["maximize"],
                          grad_scale=opts["grad_scale"])


def assert_same(a_state, b_state):
    for a, b in zip(a_state, b_state):
        if a is not None:
            np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("opts", OPTION_GRID, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_bit_for_bit_over_steps(opts, dtype, rng):
    for shape in [(0,), (1,), (37,), (3, 5, 7)]:
        ours = make_state(rng, shape, dtype, opts["amsgrad"])
        ref = copies(ours)
        for step in range(1, 6):
            g = rng.standard_normal(shape).astype(dtype)
            ours[1][...] = g
            ref[1][...] = g
            assert run_tp(ours, step, opts) == run_ref(ref, step, opts) is False
            assert_same(ours, ref)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_threads(shape, dtype, rng):
    opts = OPTION_GRID[0] | {"weight_decay": 0.01}
    ours = make_state(rng, shape, dtype)
    ref = copies(ours)
    run_tp(ours, 3, opts)
    run_ref(ref, 3, opts)
    assert_same(ours, ref)


def test_other_hyperparameters(rng):
    # beta1 <= 0.5 takes torch's other lerp formula; large eps, zero lr, beta2 = 0.
    for betas, lr, eps in [((0.3, 0.9), 1e-2, 1e-3), ((0.5, 0.0), 0.0, 1e-8), ((0.0, 0.5), 1.0, 0.0)]:
        opts = OPTION_GRID[0] | {"betas": betas, "lr": lr, "eps": eps}
        ours = make_state(rng, (129,), np.float32)
        ref = copies(ours)
        for step in (1, 2, 1000):
            run_tp(ours, step, opts)
            run_ref(ref, step, opts)
            assert_same(ours, ref)


def test_thread_count_does_not_change_results(rng):
    opts = OPTION_GRID[5]
    base = make_state(rng, (300001,), np.float32, opts["amsgrad"])
    results = []
    before = tp.get_num_threads()
    try:
        for threads in (1, 2, 3):
            tp.set_num_threads(threads)
            state = copies(base)
            run_tp(state, 2, opts)
            results.append(state)
    finally:
        tp.set_num_threads(before)
    assert_same(results[0], results[1])
    assert_same(results[0], results[2])


def lists_state(rng, shapes, dtypes, amsgrad=False):
    states = [make_state(rng, s, d, amsgrad) for s, d in zip(shapes, dtypes)]
    cols = [list(col) for col in zip(*states)]
    return cols if amsgrad else cols[:4] + [None]


def test_list_of_tensors_is_one_call_with_the_same_result(rng):
    shapes = [(384,)] * 50 + [(3, 4), (0,), (1,), (65537,)]
    dtypes = [np.float32] * 30 + [np.float64] * (len(shapes) - 30)
    opts = OPTION_GRID[-1]
    ours = lists_state(rng, shapes, dtypes, opts["amsgrad"])
    singles = [copies(col) for col in ours]
    assert run_tp(ours, 4, opts) is False
    for i in range(len(shapes)):
        one = [col[i] for col in singles]
        run_ref(one, 4, opts)
        assert_same([col[i] for col in ours], one)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e38])
def test_nonfinite_grad_with_grad_scale_skips_the_whole_step(bad, rng):
    shapes = [(10,), (5, 5), (70000,)]
    state = lists_state(rng, shapes, [np.float32] * 3)
    state[1][2][12345] = bad  # 1e38 / 1e-3 overflows to inf once unscaled
    before = copies([a for col in state[:4] for a in col])
    found = tp.adam_step(*state[:4], step=1, grad_scale=1e-3)
    assert found is True
    assert_same([a for col in state[:4] for a in col], before)


def test_without_grad_scale_nonfinite_grads_propagate_like_torch(rng):
    p, g, m, v, _ = make_state(rng, (8,), np.float32)
    g[3] = np.nan
    assert tp.adam_step(p, g, m, v, step=1) is False
    assert np.isnan(p[3]) and np.isfinite(np.delete(p, 3)).all()


def test_grads_may_be_read_only_and_are_never_written(rng):
    p, g, m, v, _ = make_state(rng, (100,), np.float64)
    g.flags.writeable = False
    g_before = g.copy()
    tp.adam_step(p, g, m, v, step=1, grad_scale=2.0, maximize=True)
    np.testing.assert_array_equal(g, g_before)


# --- every compiled variant against the scalar reference, and C against Numba ---------------

def assert_same_bits(a_state, b_state):
    """Bit for bit, so a zero's sign counts too; NaNs only by place (which operand's NaN an
    IEEE operation passes on, and its sign, is the hardware's choice)."""
    for a, b in zip(a_state, b_state):
        if a is not None:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            ints = np.uint32 if a.dtype == np.float32 else np.uint64
            keep = ~np.isnan(a)
            np.testing.assert_array_equal(a[keep].view(ints), b[keep].view(ints), strict=True)


def kernel_flags(opts):
    """The native adam_step's flag bits (TP_ADAM_*) for an OPTION_GRID entry."""
    return ((_consts.ADAM_DECOUPLED if opts["decoupled"] else 0)
            | (_consts.ADAM_AMSGRAD if opts["amsgrad"] else 0)
            | (_consts.ADAM_MAXIMIZE if opts["maximize"] else 0)
            | (_consts.ADAM_GRAD_SCALE if opts["grad_scale"] else 0))


def run_isa(state, isa, step, opts, beta1=0.9, beta2=0.999, eps=1e-8):
    c_adam = _backend.kernels_of("c", "adam")
    flags = kernel_flags(opts)
    lists = tuple(None if a is None else (a,) for a in state) + (None,)  # no masters
    return c_adam.adam_step(lists, step, 1e-3, beta1, beta2, eps, opts["weight_decay"], opts["grad_scale"], flags, isa=isa)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
@pytest.mark.parametrize("opts", OPTION_GRID, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_variant_equals_scalar_reference(isa, opts, dtype, rng):
    # beta1 = 0.3 takes torch.lerp's other formula (weight 0.7 >= 0.5)
    for beta1 in (0.9, 0.3):
        for n in (1, 3, 8, 15, 16, 17, 31, 64, 255, 1001):
            scalar = make_state(rng, (n,), dtype, opts["amsgrad"])
            variant = copies(scalar)
            for state, which in ((scalar, "scalar"), (variant, isa)):
                run_isa(state, which, 2, opts, beta1=beta1)
            assert_same_bits(scalar, variant)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_variant_on_special_values(isa, dtype):
    # Inf, NaN and signed zeros through every stream; eps = +-0 so a zero denominator, and
    # its sign, show in p
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3e38, 1.0, -2.5], dtype)
    k = len(specials)
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    for amsgrad, eps in itertools.product((False, True), (0.0, -0.0)):
        opts = dict(weight_decay=0.0, decoupled=False, amsgrad=amsgrad, maximize=False, grad_scale=None)
        base = [specials[np.arange(len(grid)) % k], specials[grid[:, 0]], specials[grid[:, 1]],
                np.abs(specials[grid[:, 2]]), specials[grid[:, 2]] if amsgrad else None]
        base = [None if a is None else np.ascontiguousarray(a) for a in base]
        scalar, variant = copies(base), copies(base)
        with np.errstate(all="ignore"):
            run_isa(scalar, "scalar", 3, opts, eps=eps)
            run_isa(variant, isa, 3, opts, eps=eps)
        assert_same_bits(scalar, variant)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_bias_correction_division_on_every_significand(isa):
    # The AVX2 float32 loop divides sqrt(v) by sqrt(1 - beta2^t) with FMAs (Markstein), not the
    # divider; it must give the division's bits. v runs over every float32 in [0.5, 2) and
    # g = 0, so the roots cover ~2^23 significands; eps = 0 so the quotient is the denominator.
    v0 = np.arange(0x3F000000, 0x40000000, dtype=np.uint32).view(np.float32)
    opts = dict(weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False, grad_scale=None)
    for step in (1, 2, 3, 10, 1000):
        states = []
        for which in ("scalar", isa):
            state = [np.ones_like(v0), np.zeros_like(v0), np.ones_like(v0), v0.copy(), None]
            run_isa(state, which, step, opts, eps=0.0)
            states.append(state)
        assert_same_bits(*states)


@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
@pytest.mark.parametrize("opts", OPTION_GRID[::2], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_c_and_numba_agree(opts, rng):
    flags = kernel_flags(opts)
    shapes, dtypes = [(5,), (70000,), (2, 3)], [np.float32, np.float32, np.float64]
    c_state = lists_state(rng, shapes, dtypes, opts["amsgrad"])
    nb_state = [None if col is None else [a.copy() for a in col] for col in c_state]
    for backend, state in (("c", c_state), ("numba", nb_state)):
        lists = tuple(None if col is None else tuple(col) for col in state) + (None,)  # no masters
        for step in (1, 2, 3):
            _backend.kernels_of(backend, "adam").adam_step(lists, step, 1e-3, 0.9, 0.999, 1e-8, opts["weight_decay"], opts["grad_scale"], flags)
    for c_col, nb_col in zip(c_state, nb_state):
        if c_col is not None:
            for a, b in zip(c_col, nb_col):
                np.testing.assert_array_equal(a, b, strict=True)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 300),
    step=st.integers(1, 10**6),
    lr=st.floats(0, 1),
    beta1=st.floats(0, 0.999),
    beta2=st.floats(0, 0.9999),
    eps=st.floats(0, 1e-2),
    weight_decay=st.floats(0, 1),
    decoupled=st.booleans(),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(n, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize, dtype, seed):
    rng = np.random.default_rng(seed)
    opts = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, decoupled=decoupled,
                amsgrad=amsgrad, maximize=maximize, grad_scale=None)
    ours = make_state(rng, (n,), dtype, amsgrad)
    ref = copies(ours)
    with np.errstate(all="ignore"):
        run_tp(ours, step, opts)
        run_ref(ref, step, opts)
    assert_same(ours, ref)


# --- bad input: a clear exception, and nothing modified --------------------------------------

def fresh(rng, n=16, dtype=np.float32):
    return [rng.standard_normal(n).astype(dtype) for _ in range(4)]


def assert_rejected(exc, args, kwargs, match=None):
    arrays = [a for x in args for a in (x if isinstance(x, (list, tuple)) else [x]) if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    with pytest.raises(exc, match=match):
        tp.adam_step(*args, **kwargs)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_rejects_mismatched_shapes_and_dtypes(rng):
    p, g, m, v = fresh(rng)
    assert_rejected(ValueError, (p, g[:8], m, v), {"step": 1}, "shape")
    assert_rejected(TypeError, (p, g.astype(np.float64), m, v), {"step": 1}, "dtype")
    assert_rejected(TypeError, (p.astype(np.int32), g, m, v), {"step": 1}, "dtype")
    assert_rejected(TypeError, (p.astype(np.float16), g.astype(np.float16), m.astype(np.float16), v.astype(np.float16)), {"step": 1}, "dtype")
    assert_rejected(TypeError, ([p], [g.tolist()], [m], [v]), {"step": 1}, "ndarray")
    assert_rejected(TypeError, (p, [g], m, v), {"step": 1})
    assert_rejected(TypeError, ([p], g, [m], [v]), {"step": 1}, "list")


def test_rejects_layout_and_memory_problems(rng):
    p, g, m, v = fresh(rng, 32)
    assert_rejected(ValueError, (p[::2], g[::2], m[::2], v[::2]), {"step": 1}, "contiguous")
    ro = v.copy()
    ro.flags.writeable = False
    assert_rejected(ValueError, (p, g, m, ro), {"step": 1}, "read-only")
    assert_rejected(ValueError, (p, p, m, v), {"step": 1}, "overlaps")
    assert_rejected(ValueError, (p, g, m, m), {"step": 1}, "overlaps")
    buf = rng.standard_normal(40).astype(np.float32)
    assert_rejected(ValueError, (buf[:32], g, buf[8:40], v), {"step": 1}, "overlaps")
    raw = np.zeros(32 * 4 + 1, np.uint8)
    misaligned = raw[1:].view(np.float32)
    assert_rejected(ValueError, (misaligned, g, m, v), {"step": 1}, "aligned")
    assert_rejected(TypeError, (p.astype(">f4"), g.astype(">f4"), m.astype(">f4"), v.astype(">f4")), {"step": 1}, "byte")


def test_grads_may_share_memory_with_each_other(rng):
    ps = [rng.standard_normal(8).astype(np.float32) for _ in range(2)]
    g = rng.standard_normal(8).astype(np.float32)
    ms = [np.zeros(8, np.float32) for _ in range(2)]
    vs = [np.zeros(8, np.float32) for _ in range(2)]
    tp.adam_step(ps, [g, g], ms, vs, step=1)
    np.testing.assert_array_equal(ps[0] - ps[1], np.zeros(8, np.float32) + (ps[0] - ps[1]))


def test_rejects_list_length_mismatch(rng):
    p, g, m, v = fresh(rng)
    assert_rejected(ValueError, ([p, p.copy()], [g], [m, m.copy()], [v, v.copy()]), {"step": 1}, "grads has 1")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"step": 0}, ValueError, "step"),
    ({"step": -3}, ValueError, "step"),
    ({"step": 1.5}, TypeError, "step"),
    ({"step": True}, TypeError, "step"),
    ({"step": 1, "lr": -1e-3}, ValueError, "lr"),
    ({"step": 1, "lr": float("nan")}, ValueError, "lr"),
    ({"step": 1, "lr": float("inf")}, ValueError, "lr"),
    ({"step": 1, "eps": -1.0}, ValueError, "eps"),
    ({"step": 1, "betas": (1.0, 0.999)}, ValueError, "betas"),
    ({"step": 1, "betas": (0.9, -0.1)}, ValueError, "betas"),
    ({"step": 1, "betas": (0.9, float("nan"))}, ValueError, "betas"),
    ({"step": 1, "betas": 0.9}, ValueError, "betas"),
    ({"step": 1, "weight_decay": -0.1}, ValueError, "weight_decay"),
    ({"step": 1, "grad_scale": 0.0}, ValueError, "grad_scale"),
    ({"step": 1, "grad_scale": float("inf")}, ValueError, "grad_scale"),
    ({"step": 1, "lr": "0.1"}, TypeError, "lr"),
    ({"step": 1, "amsgrad": True}, ValueError, "max_exp_avg_sqs"),
])
def test_rejects_bad_hyperparameters(kwargs, exc, match, rng):
    p, g, m, v = fresh(rng)
    assert_rejected(exc, (p, g, m, v), kwargs, match)


def test_max_exp_avg_sqs_without_amsgrad_is_an_error(rng):
    p, g, m, v = fresh(rng)
    assert_rejected(ValueError, (p, g, m, v), {"step": 1, "max_exp_avg_sqs": v.copy()}, "amsgrad")


def test_errors_are_tensorpress_errors(rng):
    p, g, m, v = fresh(rng)
    with pytest.raises(tp.TensorpressError):
        tp.adam_step(p, g[:3], m, v, step=1)
    with pytest.raises(tp.TensorpressError):
        tp.adam_step(p, g, m, v, step=0)


# --- the raw-pointer entry used by tensorpress.torch ----------------------------------------

def packed_rows(cols, amsgrad=False):
    row = struct.Struct(_consts.ADAM_ROW)
    codes = {np.dtype(np.float32): _consts.FLOAT32, np.dtype(np.float64): _consts.FLOAT64}
    ptr = lambda a: a.__array_interface__["data"][0]  # noqa: E731
    return b"".join(
        row.pack(ptr(p), ptr(cols[1][i]), ptr(cols[2][i]), ptr(cols[3][i]),
                 ptr(cols[4][i]) if amsgrad else 0, 0, p.size, i,
                 codes[p.dtype], codes[p.dtype], codes[p.dtype], 0)
        for i, p in enumerate(cols[0]))


def test_packed_rows_equal_the_array_path(rng):
    family = _backend.kernels("adam")
    shapes, dtypes = [(5,), (3, 4), (0,), (70001,)], [np.float32, np.float64, np.float32, np.float32]
    a = lists_state(rng, shapes, dtypes, amsgrad=True)
    b = [[x.copy() for x in col] for col in a]
    family.adam_step_packed(packed_rows(a, True), 4, 3, 1e-3, 0.9, 0.999, 1e-8, 0.1, 2.0, 2 | 8)
    family.adam_step(tuple(tuple(col) for col in b) + (None,), 3, 1e-3, 0.9, 0.999, 1e-8, 0.1, 2.0, 2 | 8)
    for col_a, col_b in zip(a, b):
        for x, y in zip(col_a, col_b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bad, scale, found", [(None, 2.0, False), (np.inf, 2.0, True), (np.nan, 2.0, True),
                                               (3e38, 0.5, True), (None, 1e-300, True)])
def test_found_inf_packed_equals_the_step_check(rng, bad, scale, found):
    family = _backend.kernels("adam")
    a = lists_state(rng, [(5,), (70001,)], [np.float64, np.float32], amsgrad=False)
    if bad is not None:
        a[1][1][-1] = bad
    before = [x.copy() for x in a[1]]
    assert family.found_inf_packed(packed_rows(a), 2, scale) is found
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[1], before))


def test_packed_rows_refuse_overlap_and_misalignment(rng):
    native = _backend.kernels("adam")
    base = rng.standard_normal(64).astype(np.float32)
    g, m, v = (rng.standard_normal(32).astype(np.float32) for _ in range(3))
    before = base.copy()
    overlapping = [[base[:32], base[16:48]], [g, g], [m, m.copy()], [v, v.copy()], [None, None]]
    with pytest.raises(tp.InvalidArgumentError, match="overlaps"):
        native.adam_step_packed(packed_rows(overlapping), 2, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, None, 0)
    raw = np.zeros(33 * 4, np.uint8)
    misaligned = raw[1:129].view(np.float32)
    with pytest.raises(tp.InvalidArgumentError, match="aligned"):
        native.adam_step_packed(packed_rows([[misaligned], [g], [m], [v], [None]]), 1, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, None, 0)
    np.testing.assert_array_equal(base, before)
