"""int8 quantize / dequantize: NumPy reference, torch parity, C variants, C vs Numba, bad input."""

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import isa_variants, requires_c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorpress as tp
from reference import quant as ref
from tensorpress import _backend
from tensorpress.errors import DTypeError, InvalidArgumentError, NonFiniteError

BF16 = ml_dtypes.bfloat16
DTYPES = [np.float32, np.float64, np.float16, BF16]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def data_for(rng, shape, dtype, kind="normal"):
    if kind == "normal":
        x = rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 30.0])
    elif kind == "halves":  # many exact x/scale = k + 0.5 ties
        x = (rng.integers(-300, 300, shape) / 2.0) * 0.25
    else:  # wide dynamic range per element
        x = rng.standard_normal(shape) * np.exp(rng.uniform(-8, 8, shape))
    return np.ascontiguousarray(x.astype(dtype))


def check_quant(x, axis, symmetric, block_size):
    kwargs = {} if block_size is None else {"block_size": block_size}
    eq, es, ez = ref.quantize(x, axis=axis, symmetric=symmetric, block_size=block_size)
    if block_size is None:
        out = tp.quantize_int8(x, axis, symmetric=symmetric)
    else:
        out = tp.quantize_int8(x, symmetric=symmetric, **kwargs)
    q, s = out[0], out[1]
    assert q.dtype == np.int8 and q.shape == x.shape
    assert s.dtype == np.float32 and s.shape == es.shape
    np.testing.assert_array_equal(s, es)
    np.testing.assert_array_equal(q, eq)
    if symmetric:
        assert len(out) == 2
        assert q.min(initial=0) >= -127
    else:
        assert out[2].dtype == np.int8
        np.testing.assert_array_equal(out[2], ez)
    return out


shapes = st.lists(st.integers(0, 9), min_size=1, max_size=4).filter(lambda s: int(np.prod(s)) <= 3000)


@SETTINGS
@given(shape=shapes, axis_pick=st.integers(-5, 4), per_tensor=st.booleans(), symmetric=st.booleans(),
       dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["normal", "halves", "wide"]),
       seed=st.integers(0, 2**31))
def test_per_channel_matches_reference(shape, axis_pick, per_tensor, symmetric, dtype, kind, seed):
    x = data_for(np.random.default_rng(seed), shape, dtype, kind)
    axis = None if per_tensor else axis_pick % len(shape) - (len(shape) if axis_pick < 0 else 0)
    check_quant(x, axis, symmetric, None)


@SETTINGS
@given(shape=shapes.filter(lambda s: s[-1] > 0), block=st.integers(1, 40), symmetric=st.booleans(),
       dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["normal", "halves", "wide"]),
       seed=st.integers(0, 2**31))
def test_per_block_matches_reference(shape, block, symmetric, dtype, kind, seed):
    x = data_for(np.random.default_rng(seed), shape, dtype, kind)
    check_quant(x, None, symmetric, block)


@pytest.mark.parametrize("shape,axis", [((300, 40), 1), ((64, 48), 1), ((64, 48), 0), ((512, 8, 3), 1),
                                         ((3, 50, 70), -1), ((2, 3, 4, 5), 2), ((1000,), 0), ((7, 1, 5), 1)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_layouts_match_reference(rng, shape, axis, symmetric):
    # Shapes picked to run every work plan of the C kernel (tile, copy, rows, per tensor).
    check_quant(data_for(rng, shape, np.float32), axis, symmetric, None)


@pytest.mark.parametrize("shape", [(9, 96), (5, 13 * 32), (2048, 64), (37 * 32,)])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_q8_0_blocks_match_reference(rng, shape, symmetric, dtype):
    # Rows that split into whole 32-element blocks take the hand-written AVX2 path (float32).
    for kind in ("normal", "halves", "wide"):
        check_quant(data_for(rng, shape, dtype, kind), None, symmetric, 32)
    x = data_for(rng, shape, dtype)
    x.reshape(-1)[x.size // 2 + 3] = np.inf
    with pytest.raises(NonFiniteError, match="block"):
        tp.quantize_int8(x, block_size=32)


@SETTINGS
@given(shape=shapes, axis_pick=st.integers(0, 3), block=st.one_of(st.none(), st.integers(1, 20)),
       with_zp=st.booleans(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_given_scale_matches_reference(shape, axis_pick, block, with_zp, dtype, seed):
    rng = np.random.default_rng(seed)
    if block is not None and shape[-1] == 0:
        shape = shape[:-1] + [1]
    x = data_for(rng, shape, dtype, "wide")
    axis = axis_pick % len(shape)
    g, sshape = ref.groups(x.shape, axis, block)
    scale = np.exp(rng.uniform(-6, 3, sshape)).astype(np.float32)
    zp = rng.integers(-128, 128, sshape).astype(np.int8) if with_zp else None
    eq, _, _ = ref.quantize(x, axis=axis, scale=scale, zero_point=zp, block_size=block)
    if block is None:
        out = tp.quantize_int8(x, axis, scale=scale, zero_point=zp)
    else:
        out = tp.quantize_int8(x, scale=scale, zero_point=zp, block_size=block)
    np.testing.assert_array_equal(out[0], eq)
    np.testing.assert_array_equal(out[1], scale)
    assert len(out) == (3 if with_zp else 2)


@SETTINGS
@given(shape=shapes, axis_pick=st.integers(0, 3), symmetric=st.booleans(), block=st.one_of(st.none(), st.integers(1, 20)),
       seed=st.integers(0, 2**31))
def test_roundtrip_error_at_most_half_a_step(shape, axis_pick, symmetric, block, seed):
    if block is not None and shape[-1] == 0:
        shape = shape[:-1] + [1]
    x = data_for(np.random.default_rng(seed), shape, np.float32, "wide")
    axis = axis_pick % len(shape)
    if block is None:
        out = tp.quantize_int8(x, axis, symmetric=symmetric)
    else:
        out = tp.quantize_int8(x, symmetric=symmetric, block_size=block)
    zp = out[2] if not symmetric else None
    if block is not None:
        axis = None
    x_hat = tp.dequantize_int8(out[0], out[1], zp, axis, block_size=block)
    np.testing.assert_array_equal(x_hat, ref.dequantize(out[0], out[1], zp, axis, block))
    g, _ = ref.groups(x.shape, axis, block)
    step = out[1].reshape(-1)[g.reshape(-1)].reshape(x.shape).astype(np.float64)
    err = np.abs(x_hat.astype(np.float64) - x)
    assert np.all(err <= step * (0.5 + 1e-4))


def test_dequantize_into_out(rng):
    x = rng.standard_normal((33, 17)).astype(np.float32)
    q, s, z = tp.quantize_int8(x, 1, symmetric=False)
    out = np.full(x.shape, np.nan, np.float32)
    res = tp.dequantize_int8(q, s, z, 1, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ref.dequantize(q, s, z, 1))
    out2 = np.full(x.shape, np.nan, np.float32)
    assert tp.dequantize_int8(q, s, z, 1, out2) is out2  # out is also the fifth positional
    np.testing.assert_array_equal(out2, out)


def test_threads_do_not_change_results(rng):
    cases = [((1024, 256), 1, None), ((64, 4096), 1, None), ((256, 1024), 0, None), ((512, 200, 3), 1, None),
             ((400000,), None, None), ((1024, 300), None, 32), ((1024, 256), None, 64)]
    before = tp.get_num_threads()
    try:
        for shape, axis, block in cases:
            x = data_for(rng, shape, np.float32, "wide")
            for symmetric in (True, False):
                results = []
                for threads in (1, 2, 3):
                    tp.set_num_threads(threads)
                    if block is None:
                        results.append(tp.quantize_int8(x, axis, symmetric=symmetric))
                    else:
                        results.append(tp.quantize_int8(x, symmetric=symmetric, block_size=block))
                for r in results[1:]:
                    for a, b in zip(results[0], r):
                        np.testing.assert_array_equal(a, b)
                eq, es, _ = ref.quantize(x, axis=axis, symmetric=symmetric, block_size=block)
                np.testing.assert_array_equal(results[0][0], eq)
                np.testing.assert_array_equal(results[0][1], es)
    finally:
        tp.set_num_threads(before)


# ---- edge cases and bad input ------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis,block", [((0,), 0, None), ((3, 0), 0, None), ((0, 5), 1, None),
                                               ((3, 0), None, None), ((0, 7), None, 4), ((4, 0, 2), 1, None)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_empty(shape, axis, block, symmetric):
    x = np.zeros(shape, np.float32)
    if block is None:
        out = tp.quantize_int8(x, axis, symmetric=symmetric)
    else:
        out = tp.quantize_int8(x, symmetric=symmetric, block_size=block)
    assert out[0].shape == shape
    _, sshape = ref.groups(shape, axis, block)
    assert out[1].shape == sshape and np.all(out[1] == 1)
    if not symmetric:
        assert np.all(out[2] == -128)
    x_hat = tp.dequantize_int8(out[0], out[1], None if symmetric else out[2], axis, block_size=block)
    assert x_hat.shape == shape and x_hat.dtype == np.float32


def test_zero_channel_gets_scale_one_and_tiny_channel_keeps_precision():
    x = np.zeros((3, 8), np.float32)
    x[1] = np.linspace(-1e-30, 1e-30, 8, dtype=np.float32)
    x[2, 3] = 5.0
    q, s = tp.quantize_int8(x, 0)
    assert s[0] == 1 and np.all(q[0] == 0)
    assert s[1] == np.float32(1e-30) / np.float32(127) and q[1, 0] == -127 and q[1, -1] == 127
    assert q[2, 3] == 127
    q, s, z = tp.quantize_int8(x, 0, symmetric=False)
    assert s[0] == 1 and z[0] == -128 and np.all(q[0] == -128)
    one = np.array([-2.5], np.float32)
    assert tp.quantize_int8(one, None)[0][0] == -127


@pytest.mark.parametrize("symmetric", [True, False])
def test_extreme_magnitudes(symmetric):
    big = np.finfo(np.float32).max
    x = np.array([[big, -big, 1.0, 0.0], [1e-44, -3e-45, 0.0, 1e-45], [-big, -1.0, -2.0, -big],
                  [1e-40, 2e-39, -1e-38, 0.0]], np.float32)
    for axis in (0, 1, None):
        out = check_quant(x, axis, symmetric, None)
        assert np.all(np.isfinite(out[1])) and np.all(out[1] > 0)
    check_quant(x, None, symmetric, 2)


def test_ties_round_half_to_even():
    # x * (1/scale) = k + 0.5 exactly, with scale = 1 given.
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -127.5, -128.5, 1e9, -1e9], np.float32)
    q, _ = tp.quantize_int8(x, None, scale=1.0)
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, -2, 126, 127, -128, -128, 127, -128])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_names_first_bad_channel(dtype, bad):
    x = np.ones((5, 6, 7), dtype)
    x[4, 2, 3] = bad
    x[1, 3, 5] = bad
    with pytest.raises(NonFiniteError, match="channel 2 along axis 1"):
        tp.quantize_int8(x, 1)
    with pytest.raises(NonFiniteError, match="channel 3 along axis -1"):
        tp.quantize_int8(x, -1, symmetric=False)
    with pytest.raises(NonFiniteError, match=r"block \(1, 3, 1\)"):
        tp.quantize_int8(x, block_size=4)
    with pytest.raises(NonFiniteError, match="the tensor"):
        tp.quantize_int8(x, None)
    with pytest.raises(NonFiniteError, match="channel 1 along axis 0"):
        tp.quantize_int8(x, 0, scale=np.ones(5, np.float32))
    with pytest.raises(ValueError):  # NonFiniteError is a ValueError
        tp.quantize_int8(x, 0)


def test_read_only_input_is_fine(rng):
    x = rng.standard_normal((6, 10)).astype(np.float32)
    x.flags.writeable = False
    q, s = tp.quantize_int8(x, 1)
    q.flags.writeable = False
    np.testing.assert_array_equal(tp.dequantize_int8(q, s, axis=1), ref.dequantize(q, s, None, 1))


def test_float64_beyond_float32_range_raises():
    x = np.array([[1.0, 2.0], [1e300, 0.0]])
    with pytest.raises(NonFiniteError, match="channel 1"):
        tp.quantize_int8(x, 0)


def test_bfloat16_extremes():
    # largest finite, smallest normal, subnormals (exact in float32), signed zeros
    bits = np.array([0x7f7f, 0xff7f, 0x0080, 0x8080, 0x0001, 0x807f, 0x0000, 0x8000, 0x3f80, 0x4049],
                    np.uint16)
    x = bits.view(BF16)
    for axis in (None, 0):
        check_quant(x, axis, True, None)
        check_quant(x, axis, False, None)
    check_quant(x.reshape(2, 5), None, True, 2)


BF16_CASES = [  # (shape, axis, block): every plan and loop of the C kernel
    ((1,), None, None), ((0, 3), 0, None), ((), None, None), ((5,), None, None), ((7, 9), 0, None),
    ((7, 9), 1, None), ((33, 65), 1, None), ((300, 37), 1, None), ((300, 5, 3), 1, None),
    ((3, 70, 5), 2, None), ((2, 1000), 0, None), ((4000, 300), 1, None), ((64, 2000), 0, None),
    ((9, 100), None, 32), ((9, 97), None, 32), ((3, 13 * 32), None, 32), ((5, 70), None, 7),
    ((4, 4, 131), 0, None), ((4096, 5), 1, None),
]


def _call(x, case, **kw):
    shape, axis, block = case
    if block is not None:
        return tp.quantize_int8(x, block_size=block, **kw)
    return tp.quantize_int8(x, axis, **kw)


@pytest.mark.parametrize("case", BF16_CASES)
@pytest.mark.parametrize("kind", ["normal", "halves", "wide"])
def test_bfloat16_is_the_float32_call(rng, case, kind):
    # bf16 -> float32 is exact, so every mode must give the bits of the same call on float32.
    x = data_for(rng, case[0], BF16, kind)
    x32 = x.astype(np.float32)
    _, sshape = ref.groups(case[0], case[1], case[2])
    scale = np.exp(rng.uniform(-4, 2, sshape)).astype(np.float32)
    zp = rng.integers(-128, 128, sshape).astype(np.int8)
    for kw in (dict(symmetric=True), dict(symmetric=False), dict(scale=scale), dict(scale=scale, zero_point=zp)):
        got, want = _call(x, case, **kw), _call(x32, case, **kw)
        assert len(got) == len(want)
        for u, v in zip(got, want):
            assert u.dtype == v.dtype and u.shape == v.shape
            np.testing.assert_array_equal(u, v)
        e_got, e_want = tp.quantization_error(x, *got, **({"block_size": case[2]} if case[2] else {"axis": case[1]})), \
            tp.quantization_error(x32, *want, **({"block_size": case[2]} if case[2] else {"axis": case[1]}))
        assert e_got == e_want or (np.isnan(e_got.snr_db) and np.isnan(e_want.snr_db))


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_bfloat16_variants_match_float32_scalar(rng, isa):
    # Each C variant on bf16 input against the scalar reference on the float32 conversion.
    c = _backend.kernels_of("c", "quant")
    for case in BF16_CASES:
        if case[0] == () or 0 in case[0]:
            continue
        for kind in ("normal", "halves", "wide"):
            x = data_for(rng, case[0], BF16, kind)
            _, sshape = ref.groups(case[0], case[1], case[2])
            scale = np.exp(rng.uniform(-4, 2, sshape)).astype(np.float32)
            for mode, sc in ((0, None), (1, None), (2, scale)):
                assert_same(run_backend(c, x, case, mode, sc, isa=isa),
                            run_backend(c, x.astype(np.float32), case, mode, sc, isa="scalar"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bfloat16_nonfinite_in_quantization_error(bad):
    x = np.ones((2, 3), BF16)
    q, s = tp.quantize_int8(x, 0)
    x[1, 2] = bad
    with pytest.raises(NonFiniteError):
        tp.quantization_error(x, q, s, axis=0)


def test_float16_extremes():
    x = np.array([65504, -65504, 6e-8, -6e-8, 0, -0.0, 1e-5, 3.0], np.float16)  # max, subnormals
    for axis in (None, 0):
        check_quant(x, axis, True, None)
        check_quant(x, axis, False, None)


@pytest.mark.parametrize("bad_call,exc", [
    (lambda x: tp.quantize_int8(x.astype(np.int32)), DTypeError),
    (lambda x: tp.quantize_int8(x.T), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x.tolist()), DTypeError),
    (lambda x: tp.quantize_int8(x, 2), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, -3), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 1.0), DTypeError),
    (lambda x: tp.quantize_int8(x, symmetric="no"), DTypeError),
    (lambda x: tp.quantize_int8(x, 0, block_size=4), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, block_size=0), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.ones(3, np.float32)), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.zeros(4, np.float32)), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.full(4, np.nan, np.float32)), NonFiniteError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.ones(4, np.int32)), DTypeError),
    (lambda x: tp.quantize_int8(x, 0, zero_point=np.zeros(4, np.int8)), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.ones(4), zero_point=np.full(4, 200)), InvalidArgumentError),
    (lambda x: tp.quantize_int8(x, 0, scale=np.ones(4), zero_point=np.zeros(4)), DTypeError),
    (lambda x: tp.dequantize_int8(x, np.ones(4, np.float32)), DTypeError),
    (lambda x: tp.dequantize_int8(np.zeros((4, 6), np.int8), np.ones(6, np.float32)), InvalidArgumentError),
    (lambda x: tp.dequantize_int8(np.zeros((4, 6), np.int8), np.ones(4, np.float32), out=np.empty((4, 6))), DTypeError),
    (lambda x: tp.dequantize_int8(np.zeros((4, 6), np.int8), np.ones(4, np.float32), out=np.empty((6, 4), np.float32)), InvalidArgumentError),
    (lambda x: tp.quantization_error(x, np.zeros((4, 5), np.int8), np.ones(4, np.float32)), InvalidArgumentError),
])
def test_bad_input_raises(bad_call, exc):
    x = np.ones((4, 6), np.float32)
    with pytest.raises(exc):
        bad_call(x)


def test_dequantize_out_checks():
    q = np.zeros((4, 6), np.int8)
    s = np.ones(4, np.float32)
    ro = np.empty((4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(InvalidArgumentError, match="read-only"):
        tp.dequantize_int8(q, s, out=ro)
    buf = np.zeros(64, np.float32)
    q_alias = buf.view(np.int8)[:24].reshape(4, 6)
    with pytest.raises(InvalidArgumentError, match="overlaps"):
        tp.dequantize_int8(q_alias, s, out=buf[:24].reshape(4, 6))


def test_quantization_error(rng):
    x = rng.standard_normal((16, 40)).astype(np.float32)
    q, s = tp.quantize_int8(x, 0)
    e = tp.quantization_error(x, q, s, axis=0)
    d = ref.dequantize(q, s, None, 0).astype(np.float64) - x
    assert e.max_abs == pytest.approx(np.abs(d).max(), rel=1e-12)
    assert e.rms == pytest.approx(np.sqrt(np.mean(d * d)), rel=1e-9)
    assert e.snr_db == pytest.approx(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(d * d)), rel=1e-9)
    assert 35 < e.snr_db < 50
    exact = np.array([[1.0, -2.0]], np.float32)
    q, s = tp.quantize_int8(exact, 0, scale=np.array([1.0], np.float32))
    assert tp.quantization_error(exact, q, s, axis=0) == (0.0, 0.0, math.inf)
    assert tp.quantization_error(np.zeros((1, 2), np.float32), q, s, axis=0).snr_db == -math.inf


# ---- C variants and C vs Numba ------------------------------------------------------------------

LAYOUT_CASES = [  # (shape, axis, block)
    ((1,), None, None), ((5,), None, None), ((7, 9), 0, None), ((7, 9), 1, None), ((33, 65), 1, None),
    ((300, 37), 1, None), ((300, 5, 3), 1, None), ((3, 70, 5), 2, None), ((2, 1000), 0, None),
    ((9, 100), None, 32), ((9, 97), None, 32), ((9, 96), None, 32), ((3, 13 * 32), None, 32), ((5, 70), None, 7), ((200,), None, 1), ((4, 4, 131), 0, None),
]


def run_backend(module, x, shape_axis_block, mode, scale=None, zp=None, isa=None):
    shape, axis, block = shape_axis_block
    from tensorpress.quant import _layout, _AXIS_DEFAULT

    layout, sshape = _layout(x.shape, _AXIS_DEFAULT if axis is None and block is not None else axis, block, "t")
    q = np.full(x.shape, 99, np.int8)
    s = np.array(scale, np.float32).reshape(sshape) if scale is not None else np.full(sshape, -1, np.float32)
    z = zp if zp is not None else (np.full(sshape, 99, np.int8) if mode == 1 else None)
    flat = x.reshape(-1).view(np.uint16) if x.dtype == np.float16 else x.reshape(-1)  # bf16 as it is
    args = (flat, layout, mode, s.reshape(-1), None if z is None else z.reshape(-1), q.reshape(-1))
    bad = module.quantize(*args) if isa is None else module.quantize(*args, isa=isa)
    out = np.full(x.shape, np.nan, np.float32)
    if bad < 0:
        dargs = (q.reshape(-1), layout, s.reshape(-1), None if z is None else z.reshape(-1), out.reshape(-1))
        module.dequantize(*dargs) if isa is None else module.dequantize(*dargs, isa=isa)
    return bad, q, s, z, out


def variant_inputs(rng):
    for case in LAYOUT_CASES:
        for dtype in DTYPES:
            x = data_for(rng, case[0], dtype, "wide")
            _, sshape = ref.groups(case[0], case[1], case[2])
            yield case, x, 0, None, None
            yield case, x, 1, None, None
            scale = np.exp(rng.uniform(-4, 2, sshape)).astype(np.float32)
            yield case, x, 2, scale, rng.integers(-128, 128, sshape).astype(np.int8)
            xb = x.copy()
            xb.reshape(-1)[rng.integers(0, xb.size)] = np.nan
            yield case, xb, 0, None, None
            yield case, xb, 2, scale, None


def assert_same(a, b):
    assert a[0] == b[0]
    if a[0] >= 0:
        return
    for u, v in zip(a[1:], b[1:]):
        if u is None:
            assert v is None
        else:
            np.testing.assert_array_equal(u, v)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_every_variant_matches_scalar(rng, isa):
    c = _backend.kernels_of("c", "quant")
    for case, x, mode, scale, zp in variant_inputs(rng):
        assert_same(run_backend(c, x, case, mode, scale, zp, isa=isa),
                    run_backend(c, x, case, mode, scale, zp, isa="scalar"))


def reference_result(x, case, mode, scale, zp):
    """What run_backend gives, from the NumPy reference: (bad, q, scale, zero point, x_hat)."""
    shape, axis, block = case
    ax = axis if block is None else None
    finite = np.isfinite(x.astype(np.float32))
    if not finite.all():  # the lowest group holding a NaN / Inf
        return (int(ref.groups(shape, ax, block)[0][~finite].min()),)
    if mode == 2:
        q, s, z = ref.quantize(x, axis=ax, scale=scale, zero_point=zp, block_size=block)
        s, z = np.asarray(scale, np.float32), zp
    else:
        q, s, z = ref.quantize(x, axis=ax, symmetric=mode == 0, block_size=block)
        z = None if mode == 0 else z.astype(np.int8)
    return -1, q, s, z, ref.dequantize(q, s, z, ax, block)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_every_variant_matches_numpy_reference(rng, isa):
    # The scalar reference (isa="scalar", csrc/quant/ref.c) included: it is what the other
    # variants are held to, so it is held to the NumPy reference itself.
    c = _backend.kernels_of("c", "quant")
    for case, x, mode, scale, zp in variant_inputs(rng):
        got, want = run_backend(c, x, case, mode, scale, zp, isa=isa), reference_result(x, case, mode, scale, zp)
        assert got[0] == want[0]
        if want[0] < 0:
            for u, v in zip(got[1:], want[1:]):
                if v is None:
                    assert u is None
                else:
                    np.testing.assert_array_equal(np.asarray(u).reshape(np.shape(v)), v)


@requires_c
def test_scalar_variant_is_the_reference():
    # isa="scalar" runs the plain reference: a variant the build or CPU lacks is refused, and the
    # scalar one is there on every build.
    from tensorpress import _native

    assert "scalar" in _native.available_isas()
    c = _backend.kernels_of("c", "quant")
    x = np.arange(-40, 40, dtype=np.float32).reshape(8, 10) / 7
    for isa in ("scalar", "baseline"):
        assert run_backend(c, x, ((8, 10), 0, None), 0, isa=isa)[0] == -1


@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
def test_c_matches_numba(rng):
    c = _backend.kernels_of("c", "quant")
    nb = _backend.kernels_of("numba", "quant")
    for case, x, mode, scale, zp in variant_inputs(rng):
        assert_same(run_backend(c, x, case, mode, scale, zp), run_backend(nb, x, case, mode, scale, zp))


@pytest.mark.parametrize("shape,axis,block", [((1024, 2100), 0, None), ((1024, 2101), 1, None), ((1024, 2101), None, 32)])
def test_large_dequantize_matches_reference(rng, shape, axis, block):
    # Above 8 MiB of output the AVX2 kernels use streaming stores: check them (and their
    # unaligned heads and tails) against the reference and against the scalar variant.
    q = rng.integers(-128, 128, shape, dtype=np.int8)
    _, sshape = ref.groups(shape, axis, block)
    s = rng.uniform(0.01, 2, sshape).astype(np.float32)
    z = rng.integers(-128, 128, sshape).astype(np.int8)
    out = np.empty(shape, np.float32)
    view = np.empty(out.size + 3, np.float32)[3:].reshape(shape)  # output not 32-byte aligned
    for o in (out, view):
        tp.dequantize_int8(q, s, z, axis, block_size=block, out=o)
        np.testing.assert_array_equal(o, ref.dequantize(q, s, z, axis, block))
    for isa in isa_variants():
        from tensorpress.quant import _layout, _AXIS_DEFAULT

        layout, _ = _layout(shape, _AXIS_DEFAULT if axis is None else axis, block, "t")
        got = np.empty(shape, np.float32)
        _backend.kernels_of("c", "quant").dequantize(q.reshape(-1), layout, s.reshape(-1), None,
                                                     got.reshape(-1), isa=isa)
        np.testing.assert_array_equal(got, ref.dequantize(q, s, None, axis, block))


@pytest.mark.parametrize("axis,symmetric,dtype", [(1, True, np.float32), (1, False, np.float32),
                                                  (0, True, np.float32), (None, False, np.float32),
                                                  (0, True, np.float16), (None, False, np.float16),
                                                  (1, True, BF16), (0, False, BF16), (None, True, BF16)])
def test_large_arrays_match_reference(rng, axis, symmetric, dtype):
    # 8M+ elements: q is written with streaming stores (rows plan for axis 1, tiles for axis 0,
    # the two global passes per tensor), from unaligned row starts (1027 columns); float16
    # through the F16C loads, bfloat16 through the shifting ones.
    x = data_for(rng, (8171, 1027), dtype)
    check_quant(x, axis, symmetric, None)


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_large_blocks_match_reference(rng, dtype):
    # 8M+ elements in whole 32-element blocks: the AVX2 block loop (symmetric; float32 and
    # bfloat16) streams q with 16-byte stores (NumPy's big buffers start 16 bytes into a page);
    # q one byte off does not.
    x = data_for(rng, (8200, 1024), dtype)
    eq, es, _ = ref.quantize(x, axis=None, symmetric=True, block_size=32)
    q, s = tp.quantize_int8(x, block_size=32)
    np.testing.assert_array_equal(q, eq)
    np.testing.assert_array_equal(s, es)
    if "c" not in _backend.available_backends():
        return
    from tensorpress.quant import _layout

    layout, _ = _layout(x.shape, -1, 32, "t")
    kern = _backend.kernels_of("c", "quant")
    for offset in (0, 1):
        q = np.empty(x.size + 16, np.int8)[offset:offset + x.size]
        for isa in [v for v in isa_variants() if v in ("avx2", "avx512")]:  # the streaming ones
            q[...] = 0
            s = np.empty(es.size, np.float32)
            assert kern.quantize(x.reshape(-1), layout, 0, s, None, q, isa=isa) < 0
            np.testing.assert_array_equal(q.reshape(x.shape), eq)
            np.testing.assert_array_equal(s, es.reshape(-1))


def _edge_absmaxes(rng, count):
    """Channel absmaxes a where a * (1 / (a / 127)), in float32, comes out largest: the rows
    that would need an upper clamp if the rounding of the scale could push |q| past 127."""
    a = np.exp(rng.uniform(np.log(1e-30), np.log(1e30), 400_000)).astype(np.float32)
    tiny = (np.float32(127) * np.finfo(np.float32).tiny * rng.uniform(0.1, 1.2, 2000)).astype(np.float32)
    a = np.concatenate([a, tiny])
    t = a * (np.float32(1) / np.maximum(a / np.float32(127), np.finfo(np.float32).tiny))
    return a[np.argsort(t)[-count:]], t.max()


def _affine_edge_rows(rng, count):
    """(min, max) pairs whose q before the clamp, round(x / s) + zero point, leaves [-128, 127]
    at one end (the AVX2 loops clamp with saturating packs there)."""
    lo = -np.exp(rng.uniform(-5, 5, 4_000_000)).astype(np.float32)
    hi = np.exp(rng.uniform(-5, 5, 4_000_000)).astype(np.float32)
    s = (hi - lo) / np.float32(255)
    inv = np.float32(1) / s
    z = np.clip(np.float32(-128) - np.rint(lo / s), -128, 127)
    q_hi = np.rint(hi * inv) + z
    q_lo = np.rint(lo * inv) + z
    edge = (q_hi > 127) | (q_lo < -128)
    assert edge.sum() >= 4  # the data does leave the range before the clamp
    return np.resize(lo[edge], count), np.resize(hi[edge], count)


@pytest.mark.parametrize("axis", [0, 1])
def test_scales_at_rounding_edges(rng, axis):
    # The AVX2 loops round with cvtps2dq and drop the integer clamps (see
    # qz_quant_seg_f32_avx2_fast): channels whose computed scale rounds the worst way for that.
    a, worst = _edge_absmaxes(rng, 96)
    assert worst > 127  # the data does reach past 127 before rounding
    x = rng.uniform(-1, 1, (96, 80)).astype(np.float32) * a[:, None]
    x[:, 3], x[:, 40], x[:, 77] = a, -a, np.nextafter(a, np.float32(0))
    lo, hi = _affine_edge_rows(rng, 96)
    xa = rng.uniform(0, 1, (96, 80)).astype(np.float32) * (hi - lo)[:, None] + lo[:, None]
    xa[:, 5], xa[:, 60] = lo, hi
    for data in (x, xa):
        data = np.ascontiguousarray(data if axis == 0 else data.T)
        for symmetric in (True, False):
            check_quant(data, axis, symmetric, None)
            check_quant(data, None, symmetric, 32)
    for row in x[:8]:
        check_quant(np.ascontiguousarray(np.tile(row, 512)), None, True, None)  # per tensor


# ---- torch parity ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((64, 48), 0), ((64, 48), 1), ((8, 3, 5, 5), 0), ((8, 3, 5, 5), 1),
                                         ((300, 40), 1), ((4, 6, 130), 2), ((4, 6, 130), -1)])
def test_torch_observer_and_quantize_per_channel_parity(rng, shape, axis):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import PerChannelMinMaxObserver

    x = data_for(rng, shape, np.float32, "normal")
    x.reshape(-1)[::7] *= 50  # uneven channels
    ax = axis % len(shape)
    xt = torch.from_numpy(x)
    for symmetric in (True, False):
        if symmetric:
            obs = PerChannelMinMaxObserver(ch_axis=ax, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                           quant_min=-127, quant_max=127)
        else:
            obs = PerChannelMinMaxObserver(ch_axis=ax, dtype=torch.qint8, qscheme=torch.per_channel_affine)
        obs(xt)
        ts, tz = obs.calculate_qparams()
        with _quiet():
            tq = torch.quantize_per_channel(xt, ts, tz, ax, torch.qint8)
        out = tp.quantize_int8(x, axis, symmetric=symmetric)
        np.testing.assert_array_equal(out[1], ts.numpy())
        if not symmetric:
            np.testing.assert_array_equal(out[2], tz.numpy().astype(np.int8))
        np.testing.assert_array_equal(out[0], tq.int_repr().numpy())
        x_hat = tp.dequantize_int8(out[0], out[1], None if symmetric else out[2], axis)
        np.testing.assert_array_equal(x_hat, tq.dequantize().numpy())


def test_torch_quantize_per_channel_given_scales(rng):
    torch = pytest.importorskip("torch")
    for shape, axis in [((17, 33), 0), ((17, 33), 1), ((3, 4, 5, 6), 2), ((2, 3, 260), 2)]:
        x = data_for(rng, shape, np.float32, "wide")
        c = shape[axis]
        scale = np.exp(rng.uniform(-5, 2, c)).astype(np.float32)
        zp = rng.integers(-128, 128, c).astype(np.int8)
        with _quiet():
            tq = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scale),
                                            torch.from_numpy(zp.astype(np.int64)), axis, torch.qint8)
        q, _, _ = tp.quantize_int8(x, axis, scale=scale, zero_point=zp)
        np.testing.assert_array_equal(q, tq.int_repr().numpy())
        np.testing.assert_array_equal(tp.dequantize_int8(q, scale, zp, axis), tq.dequantize().numpy())


def _quiet():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")

    class _Exit:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            ctx.__exit__(*exc)

    return _Exit()


# ---- dequantize into bfloat16 / float16 ---------------------------------------------------------

HALF_OUTS = [BF16, np.float16]


def _bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def assert_bits_equal(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _as(x32, dtype):
    with np.errstate(over="ignore", invalid="ignore"):
        return x32.astype(dtype)


DEQ_CASES = [((), None, None), ((0,), 0, None), ((3, 0), 1, None), ((0, 5), None, 4), ((1,), None, None),
             ((7, 9), 0, None), ((7, 9), 1, None), ((33, 65), 1, None), ((300, 5, 3), 1, None),
             ((3, 70, 5), 2, None), ((9, 100), None, 32), ((9, 97), None, 32), ((5, 70), None, 7),
             ((4, 4, 131), 0, None), ((2, 1000), None, None)]


@pytest.mark.parametrize("case", DEQ_CASES)
@pytest.mark.parametrize("dtype", HALF_OUTS)
@pytest.mark.parametrize("with_zp", [False, True])
def test_dequantize_to_half_is_astype_of_float32(rng, case, dtype, with_zp):
    shape, axis, block = case
    q = rng.integers(-128, 128, shape, dtype=np.int8)
    _, sshape = ref.groups(shape, axis, block)
    # scales from float16-subnormal results to float16 overflow
    s = np.exp(rng.uniform(-30, 10, sshape)).astype(np.float32)
    z = rng.integers(-128, 128, sshape).astype(np.int8) if with_zp else None
    kw = {"block_size": block} if block is not None else {"axis": axis}
    want = _as(ref.dequantize(q, s, z, axis if block is None else None, block), dtype)
    got = tp.dequantize_int8(q, s, z, dtype=dtype, **kw)
    assert_bits_equal(got, want)
    assert_bits_equal(tp.dequantize_int8(q, s, z, dtype=np.dtype(dtype), **kw), want)
    out = np.full(shape, 7, dtype)
    assert tp.dequantize_int8(q, s, z, out=out, **kw) is out
    assert_bits_equal(out, want)
    out2 = np.full(shape, 7, dtype)
    assert tp.dequantize_int8(q, s, z, out=out2, dtype=dtype, **kw) is out2
    assert_bits_equal(out2, want)
    assert tp.dequantize_int8(q, s, z, **kw).dtype == np.float32  # the default stays float32


def _edge_values():
    """float32 values at every rounding edge of bfloat16 and float16: exact halfway ties (kept
    part even and odd), one ulp either side, subnormal results and ties, float16's overflow
    threshold (65520 rounds to Inf, just below does not), float32 subnormals and extremes."""
    rng = np.random.default_rng(7)
    hi = rng.integers(0, 0x7F80, 3000, dtype=np.uint32) << 16  # finite bf16 patterns
    bf_ties = np.concatenate([hi | 0x8000, hi | 0x7FFF, hi | 0x8001, hi | 0x0001, hi | 0xFFFF])
    h = rng.integers(0, 0x7C00, 3000).astype(np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    normal_h = h[h >= 0x38800000]
    h_ties = np.concatenate([normal_h | 0x1000, (normal_h | 0x1000) + 1, (normal_h | 0x1000) - 1,
                             normal_h + 0x2000 | 0x1000])
    sub = (np.arange(0, 2048) * 0.5).astype(np.float32) * np.float32(2.0**-24)  # k/2 * 2^-24: ties
    sub = np.concatenate([sub, np.nextafter(sub, np.float32(1)), np.nextafter(sub, np.float32(-1))]).astype(np.float32)
    special = np.array([np.uint32(0x7F7F8000).view(np.float32), np.uint32(0x7F7FFFFF).view(np.float32),
                        np.uint32(0x7F7E8000).view(np.float32), 65504, 65519.996, 65520, 65520.004, 65535, 65536, 1e5, 3.3895314e38,
                        np.finfo(np.float32).max, 6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08,
                        2.9802326e-08, 1e-40, 1.4e-45, 0.0, 1.0, 1.00390625, 1.0009765625, 0.33333334],
                       np.float32)
    v = np.concatenate([bf_ties.view(np.float32), h_ties.astype(np.uint32).view(np.float32), sub, special])
    v = v[np.isfinite(v)]
    return np.concatenate([v, -v]).astype(np.float32)


def _edge_case():
    """q of +-1 with one scale per element: the float32 result is the scale itself, exactly."""
    v = _edge_values()
    q = np.where(np.signbit(v), -1, 1).astype(np.int8)
    return q, np.abs(v).astype(np.float32), v


@pytest.mark.parametrize("dtype", HALF_OUTS)
def test_dequantize_rounding_edges(dtype):
    q, s, v = _edge_case()
    x32 = tp.dequantize_int8(q, s, axis=0)
    np.testing.assert_array_equal(_bits(x32), _bits(v))  # the float32 result is the value itself
    got = tp.dequantize_int8(q, s, axis=0, dtype=dtype)
    assert_bits_equal(got, _as(v, dtype))
    if dtype == np.float16:  # overflow to Inf and subnormal results were reached
        assert np.isinf(got.astype(np.float32)).any()
        assert ((np.abs(got) < np.float16(6.1035e-05)) & (got != 0)).any()
    for block in (1, 3, 32):  # the same values through the block layout (one scale per block)
        qb = np.ones(q.size, np.int8)
        sb = s[::block]
        want = ref.dequantize(qb, sb, None, None, block, dtype=dtype)
        assert_bits_equal(tp.dequantize_int8(qb, sb, block_size=block, dtype=dtype), want)


@pytest.mark.parametrize("dtype", HALF_OUTS)
def test_dequantize_nonfinite_scales_stay_nonfinite(dtype):
    q = np.array([0, 1, -1, 5, 0, 1], np.int8)
    s = np.array([np.inf, np.inf, np.inf, np.nan, 1, 1], np.float32)
    want = ref.dequantize(q, s, None, 0, dtype=dtype)
    got = tp.dequantize_int8(q, s, axis=0, dtype=dtype)
    assert_bits_equal(got, want)
    assert np.isnan(got[[0, 3]].astype(np.float32)).all() and np.isinf(got[[1, 2]].astype(np.float32)).all()


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
@pytest.mark.parametrize("dtype", HALF_OUTS)
def test_dequantize_half_variants_match_scalar(rng, isa, dtype):
    c = _backend.kernels_of("c", "quant")
    from tensorpress.quant import _layout, _AXIS_DEFAULT

    def run(q, layout, s, z, isa):
        out = np.full(q.shape, 7, dtype)
        c.dequantize(q.reshape(-1), layout, s.reshape(-1), None if z is None else z.reshape(-1), out.reshape(-1), isa=isa)
        return out

    q, s, v = _edge_case()
    layout, _ = _layout(q.shape, 0, None, "t")
    assert_bits_equal(run(q, layout, s, None, isa), run(q, layout, s, None, "scalar"))
    assert_bits_equal(run(q, layout, s, None, "scalar"), _as(v, dtype))
    for shape, axis, block in LAYOUT_CASES + DEQ_CASES:
        if int(np.prod(shape)) == 0 or shape == ():
            continue
        qq = rng.integers(-128, 128, shape, dtype=np.int8)
        _, sshape = ref.groups(shape, axis, block)
        ss = np.exp(rng.uniform(-30, 10, sshape)).astype(np.float32)
        zz = rng.integers(-128, 128, sshape).astype(np.int8)
        layout, _ = _layout(shape, _AXIS_DEFAULT if axis is None and block is not None else axis, block, "t")
        for z in (None, zz):
            got, want = run(qq, layout, ss, z, isa), run(qq, layout, ss, z, "scalar")
            assert_bits_equal(got, want)
            assert_bits_equal(want, _as(ref.dequantize(qq, ss, z, axis if block is None else None, block), dtype))


@pytest.mark.parametrize("dtype", HALF_OUTS)
@pytest.mark.parametrize("shape,axis,block", [((1024, 4200), 0, None), ((1024, 4201), 1, None), ((1024, 4201), None, 32)])
def test_large_dequantize_to_half(rng, dtype, shape, axis, block):
    # 8 MiB+ of 16-bit output, aligned and not, every variant.
    q = rng.integers(-128, 128, shape, dtype=np.int8)
    _, sshape = ref.groups(shape, axis, block)
    s = np.exp(rng.uniform(-20, 8, sshape)).astype(np.float32)
    z = rng.integers(-128, 128, sshape).astype(np.int8)
    want = _as(ref.dequantize(q, s, z, axis, block), dtype)
    view = np.empty(q.size + 3, dtype)[3:].reshape(shape)
    for o in (np.empty(shape, dtype), view):
        tp.dequantize_int8(q, s, z, axis, block_size=block, out=o)
        assert_bits_equal(o, want)
    from tensorpress.quant import _layout, _AXIS_DEFAULT

    layout, _ = _layout(shape, _AXIS_DEFAULT if axis is None else axis, block, "t")
    for isa in isa_variants():
        got = np.empty(shape, dtype)
        _backend.kernels_of("c", "quant").dequantize(q.reshape(-1), layout, s.reshape(-1), z.reshape(-1),
                                                     got.reshape(-1), isa=isa)
        assert_bits_equal(got, want)


@pytest.mark.parametrize("bad_call", [
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), np.float64)),
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), np.int16)),
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), np.uint16)),
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), np.float16), dtype=np.float32),
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), BF16), dtype=np.float16),
    lambda q, s: tp.dequantize_int8(q, s, out=np.empty((4, 6), np.float32), dtype=BF16),
    lambda q, s: tp.dequantize_int8(q, s, dtype=np.float64),
    lambda q, s: tp.dequantize_int8(q, s, dtype=np.int8),
    lambda q, s: tp.dequantize_int8(q, s, dtype="not a dtype"),
    lambda q, s: tp.dequantize_int8(q, s, dtype=object),
])
def test_dequantize_wrong_output_dtype_raises(bad_call):
    with pytest.raises(DTypeError):
        bad_call(np.zeros((4, 6), np.int8), np.ones(4, np.float32))


@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
@pytest.mark.parametrize("dtype", HALF_OUTS)
def test_dequantize_half_c_matches_numba(dtype):
    from tensorpress.quant import _layout

    q, s, v = _edge_case()
    layout, _ = _layout(q.shape, 0, None, "t")
    outs = []
    for be in ("c", "numba"):
        out = np.full(q.shape, 7, dtype)
        _backend.kernels_of(be, "quant").dequantize(q, layout, s, None, out)
        outs.append(out)
    assert_bits_equal(outs[0], outs[1])
    assert_bits_equal(outs[0], _as(v, dtype))
