"""A hostile-argument probe of the public API (hypothesis), run on the live backend.

Every public function is fed arrays and scalars a careless or hostile caller could pass: wrong
dtypes, byte-swapped, non-contiguous, read-only and misaligned arrays, ndarray subclasses
(np.matrix, masked arrays), 0-d and empty arrays, NaN/Inf contents, absurd integers (2**63),
NaN and Inf scalars, bools, strings, None. Each call must either
- raise a TensorpressError (the documented exceptions), having modified none of its inputs, or
- return what the plain NumPy reference (tests/reference/) returns for the same values, with
  its read-only inputs unchanged.
Anything else (another exception type, a crash, a wrong result, a modified input) fails.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorpress as tp
from reference import adam as ref_adam
from reference import quant as ref_quant
from reference import topk as ref_topk

# np.matrix is one of the hostile inputs; its deprecation notice is not what is tested.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning", "ignore::RuntimeWarning")

PROBE = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))

SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 3), (4, 8), (2, 3, 4)]
DTYPES = ["float32", "float64", "float16", "int8", "uint8", "bool", "int64", "complex64", ">f4", ">f8"]
LAYOUTS = ["plain", "plain", "plain", "plain", "plain", "matrix", "matrix", "masked", "strided", "readonly", "misaligned", "list"]

HOSTILE_INTS = [0, 1, 2, 3, -1, -2, 7, 2**31, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64]
HOSTILE_SCALARS = HOSTILE_INTS + [True, False, None, "3", 0.5, 0.1, 1.0, -0.5, 1.5, math.nan,
                                  math.inf, -math.inf, 1e-300, np.int64(2), np.float32(0.25)]


def _values(shape, dtype, data):
    n = math.prod(shape)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30, 0.0]))
    base = rng.standard_normal(n) * scale
    if n and data.draw(st.booleans()):
        base[rng.integers(n)] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf, 65504.0, -0.0]))
    with np.errstate(all="ignore"):
        if np.dtype(dtype).kind in "iub":
            base = np.nan_to_num(base, posinf=0, neginf=0) * 40
        return base.astype(dtype).reshape(shape)


def hostile_array(data, shape=None, dtypes=DTYPES, layouts=LAYOUTS):
    """(array-like, plain copy of its values or None when it is not an ndarray)."""
    shape = data.draw(st.sampled_from(SHAPES)) if shape is None else shape
    dtype = data.draw(st.sampled_from(dtypes))
    layout = data.draw(st.sampled_from(layouts))
    a = _values(shape, dtype, data)
    if layout == "matrix" and a.ndim == 2:
        a = np.asmatrix(a)
    elif layout == "masked":
        a = np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    elif layout == "strided" and a.ndim >= 1:
        wide = np.repeat(a, 2, axis=-1)
        a = wide[..., ::2]
    elif layout == "readonly":
        a.flags.writeable = False
    elif layout == "misaligned" and a.dtype.itemsize > 1:
        raw = np.zeros(a.nbytes + 1, np.uint8)
        a = raw[1:].view(a.dtype).reshape(a.shape) if a.size else a
        a[...] = _values(shape, dtype, data) if a.size else a
    elif layout == "list":
        return a.tolist(), None
    return a, np.array(a)


def _snapshot(*arrays):
    return [None if not isinstance(a, np.ndarray) else (np.array(a, copy=True), a.dtype) for a in arrays]


def _unchanged(before, *arrays):
    for snap, a in zip(before, arrays):
        if snap is not None:
            assert np.asarray(a).tobytes() == snap[0].tobytes(), "an input was modified"


def _call(fn, *args, **kwargs):
    """(result, None) or (None, the TensorpressError); any other exception fails the test."""
    try:
        return fn(*args, **kwargs), None
    except tp.TensorpressError as exc:
        return None, exc


def _resolved_k(k, n):
    """k as the library documents it, or None where it must be refused."""
    if isinstance(k, (bool, np.bool_)) or isinstance(k, str) or k is None:
        return None
    if isinstance(k, (int, np.integer)):
        return int(k) if 0 <= k <= n else None
    k = float(k)
    return int(round(k * n)) if 0.0 <= k <= 1.0 else None


def _plain_float(values):
    return (values is not None and values.dtype in (np.float16, np.float32, np.float64)
            and values.dtype.isnative)


@PROBE
@given(st.data())
def test_topk_mask_and_threshold(data):
    x, values = hostile_array(data)
    k = data.draw(st.sampled_from(HOSTILE_SCALARS))
    axis = data.draw(st.sampled_from([None, None, 0, -1, 1, 5, 2**63, True, 0.0]))
    packed = data.draw(st.booleans())
    before = _snapshot(x)
    mask, err = _call(tp.topk_mask, x, k, axis, packed=packed)
    thr, thr_err = _call(tp.topk_threshold, x, k, axis)
    _unchanged(before, x)
    if err is not None:
        return
    assert _plain_float(values), f"{values.dtype} accepted"
    assert not np.isnan(values.astype(np.float64)).any()
    flat_axis = axis is None or values.ndim == 0
    n = values.size if flat_axis else values.shape[axis]
    kk = _resolved_k(k, n)
    assert kk is not None, f"k={k!r} accepted for n={n}"
    expected = ref_topk.topk_mask(values, kk, None if flat_axis else axis)
    if packed:
        assert np.array_equal(mask, np.packbits(expected.reshape(-1)))
    else:
        assert type(mask) is np.ndarray and mask.shape == values.shape and np.array_equal(mask, expected)
    if kk >= 1 and (flat_axis or values.size):
        assert thr_err is None, thr_err
        assert np.array_equal(np.asarray(thr), ref_topk.topk_threshold(values, kk, None if flat_axis else axis))


@PROBE
@given(st.data())
def test_prune_in_place(data):
    x, values = hostile_array(data)
    k = data.draw(st.sampled_from(HOSTILE_SCALARS))
    before = _snapshot(x)
    mask, err = _call(tp.prune_, x, k)
    if err is not None:
        _unchanged(before, x)
        return
    kk = _resolved_k(k, values.size)
    assert kk is not None and not np.isnan(values.astype(np.float64)).any()
    expected = ref_topk.topk_mask(values, kk)
    assert np.array_equal(mask, expected)
    assert np.array_equal(np.asarray(x), np.where(expected, values, 0).astype(values.dtype))


@PROBE
@given(st.data())
def test_global_and_nm_masks(data):
    a, va = hostile_array(data)
    b, vb = hostile_array(data)
    k = data.draw(st.sampled_from(HOSTILE_SCALARS))
    before = _snapshot(a, b)
    masks, err = _call(tp.global_topk_masks, [a, b], k)
    _unchanged(before, a, b)
    if err is None:
        kk = _resolved_k(k, va.size + vb.size)
        assert kk is not None and va.dtype == vb.dtype
        for got, want in zip(masks, ref_topk.global_topk_masks([va, vb], kk)):
            assert np.array_equal(got, want)
    n, m = data.draw(st.sampled_from(HOSTILE_INTS + [None, 0.5])), data.draw(st.sampled_from([4, 2, 1, 0, 65, 2**63, 4.0]))
    axis = data.draw(st.sampled_from([-1, 0, 3, 2**63]))
    mask, err = _call(tp.nm_mask, a, n, m, axis)
    _unchanged(before, a, b)
    if err is None:
        assert np.array_equal(mask, ref_topk.nm_mask(va, n, m, axis))


@PROBE
@given(st.data())
def test_quantize_dequantize(data):
    x, values = hostile_array(data)
    axis = data.draw(st.sampled_from(["default", None, 0, -1, 1, 3, 2**63]))
    block_size = data.draw(st.sampled_from([None, None, 1, 3, 32, 2**62, 2**63 - 1, 2**63, 0, -1, 2.0]))
    symmetric = data.draw(st.sampled_from([True, False, 1]))
    kwargs = {} if axis == "default" else {"axis": axis}
    before = _snapshot(x)
    result, err = _call(tp.quantize_int8, x, symmetric=symmetric, block_size=block_size, **kwargs)
    _unchanged(before, x)
    if err is not None:
        return
    ax = 0 if axis == "default" else axis
    if block_size is not None:
        ax = -1
    q, scale = result[0], result[1]
    want_q, want_s, want_z = ref_quant.quantize(values, axis=ax if values.ndim or block_size else None,
                                                symmetric=bool(symmetric), block_size=block_size)
    assert np.array_equal(q, want_q) and np.array_equal(scale, want_s)
    # dequantize into a hostile out=
    out, _ = hostile_array(data, shape=q.shape, dtypes=["float32", "float32", "float64"],
                           layouts=["plain", "matrix", "readonly", "strided", "masked"])
    zp = result[2] if len(result) == 3 else None
    before = _snapshot(q, scale, out)
    got, err = _call(tp.dequantize_int8, q, scale, zp, out=out, block_size=block_size, **kwargs)
    if err is not None:
        _unchanged(before, q, scale, out)
        return
    assert got is out
    _unchanged(before[:2], q, scale)
    assert np.array_equal(np.asarray(out), ref_quant.dequantize(q, scale, zp, axis=ax if values.ndim or block_size else None,
                                                                 block_size=block_size))


def _pick(data, valid, hostile):
    """`valid` three times in four, else one of `hostile`: a call with one bad argument gets
    past the others' checks and reaches the one under test."""
    return valid if data.draw(st.integers(0, 3)) else data.draw(st.sampled_from(hostile))


@PROBE
@given(st.data())
def test_adam_step(data):
    shape = data.draw(st.sampled_from([(), (0,), (5,), (3, 4), (2, 8)]))
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    arrays = [hostile_array(data, shape=shape, dtypes=[dtype], layouts=["plain"]) for _ in range(4)]
    arrays[3] = (np.abs(arrays[3][0]), np.abs(arrays[3][1]))  # a second moment is >= 0
    odd = data.draw(st.integers(0, 4))  # one array made hostile (4: none)
    if odd < 4:
        arrays[odd] = hostile_array(data, shape=data.draw(st.sampled_from([shape, shape, (5,), ()])),
                                    dtypes=[dtype, dtype, "float16", ">f4", "int8", "float32"],
                                    layouts=["matrix", "matrix", "masked", "strided", "readonly", "misaligned", "list"])
    hyper = dict(
        step=_pick(data, 3, HOSTILE_INTS + [1.0, True, None]),
        lr=_pick(data, 1e-3, [0.0, -1.0, math.nan, math.inf, 2**63, "x"]),
        betas=_pick(data, (0.9, 0.999), [(1.0, 0.9), (math.nan, 0.9), (0.9,), None]),
        eps=_pick(data, 1e-8, [0.0, -1e-8, math.nan]),
        weight_decay=_pick(data, 0.0, [1e-2, -1.0, math.inf]),
        grad_scale=_pick(data, None, [2.0, 1e-300, 0.0, math.nan, -4.0, 1e300]),
        decoupled_weight_decay=data.draw(st.booleans()),
    )
    xs = [a for a, _ in arrays]
    before = _snapshot(*xs)
    found_inf, err = _call(tp.adam_step, *xs, **hyper)
    if err is not None or found_inf:
        _unchanged(before, *xs)
        return
    p, g, m, v = (np.array(vals) for _, vals in arrays)
    assert p.dtype in (np.float32, np.float64)
    # a float32 param takes float16 grads, read exactly into float32 (docs/mixed_precision.md)
    assert g.dtype == p.dtype or (p.dtype == np.float32 and g.dtype == np.float16)
    g = g.astype(p.dtype)
    with np.errstate(all="ignore"):
        ref_adam.adam_reference(p, g, m, v, step=hyper["step"], lr=hyper["lr"], betas=hyper["betas"],
                                eps=hyper["eps"], weight_decay=hyper["weight_decay"],
                                decoupled=hyper["decoupled_weight_decay"], grad_scale=hyper["grad_scale"])
    for got, want in zip((xs[0], xs[2], xs[3]), (p, m, v)):
        assert np.array_equal(np.asarray(got), want, equal_nan=True)
    _unchanged(before[1:2], xs[1])


@PROBE
@given(st.data())
def test_huffman_round_trip_and_damage(data):
    x, values = hostile_array(data, dtypes=["uint8", "int8", "uint8", "float32", "int64", "bool"])
    before = _snapshot(x)
    blob, err = _call(tp.huffman_encode, x)
    _unchanged(before, x)
    if err is not None:
        return
    back = tp.huffman_decode(blob)
    assert back.dtype == values.dtype and back.shape == values.shape and np.array_equal(back, values)
    damaged = bytearray(blob)
    if damaged:
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    for forged in (bytes(damaged), bytes(blob[:cut])):
        got, err = _call(tp.huffman_decode, forged)
        if err is None:  # a flip the checksum cannot see is impossible; a cut at the end is the blob
            assert forged == bytes(blob) and np.array_equal(got, values)
        else:
            assert isinstance(err, tp.CorruptDataError)


@PROBE
@given(st.data())
def test_compress_round_trip(data):
    x, values = hostile_array(data, dtypes=["float32", "float64", "float16", "int8", "int64", "bool", ">f4", "complex64"])
    options = dict(
        sparsity=data.draw(st.sampled_from([0.0, 0.5, 1.0, -0.1, math.nan, True])),
        bits=data.draw(st.sampled_from([8, 4, 2, 1, 9, 2**63, 8.0])),
        keep_small=data.draw(st.sampled_from([0, 1024, -1, 2**63])),
        threads=data.draw(st.sampled_from([None, 1, 2, 0, -1, 2**63, math.nan, 2.0, True])),
    )
    before = _snapshot(x)
    blob, err = _call(tp.compress, {"t": x}, **options)
    _unchanged(before, x)
    if err is not None:
        return
    back = tp.decompress(blob)["t"]
    assert back.shape == values.shape
    # Quantized float tensors come back as float32 (docs/format.md); the rest bit for bit.
    if back.dtype != values.dtype:
        assert values.dtype.kind == "f" and back.dtype == np.float32
    else:
        assert back.tobytes() == values.tobytes() or values.dtype.kind == "f"


@PROBE
@given(st.sampled_from(HOSTILE_SCALARS))
def test_set_num_threads(n):
    old = tp.get_num_threads()
    try:
        _, err = _call(tp.set_num_threads, n)
        if err is None:
            assert isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
            assert tp.get_num_threads() == n
        else:
            assert tp.get_num_threads() == old
    finally:
        tp.set_num_threads(old)


@pytest.mark.parametrize("bad", [b"/nonexistent/path.tpz", 3, None, 2.5])
def test_load_refuses_non_paths(bad, tmp_path):
    with pytest.raises((tp.TensorpressError, OSError)):
        tp.load(bad)


def _misaligned(dtype, n=64):
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    a = raw[1:].view(dtype)
    a[...] = np.arange(n)
    assert not a.flags.aligned
    return a


@pytest.mark.parametrize("call", [
    lambda a: tp.topk_mask(a, 3),
    lambda a: tp.topk_mask(a.reshape(8, 8), 3, axis=0),
    lambda a: tp.topk_threshold(a, 3),
    lambda a: tp.prune_(a, 3),
    lambda a: tp.global_topk_masks([a], 3),
    lambda a: tp.nm_mask(a, 2, 4),
    lambda a: tp.quantize_int8(a),
    lambda a: tp.quantize_int8(a, block_size=8),
])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_misaligned_arrays_are_refused_before_any_kernel(call, dtype):
    # A C kernel reading a misaligned typed pointer is undefined behaviour (UBSan reports it;
    # x86 happens to tolerate it), so the checks refuse such arrays and say how to fix them.
    a = _misaligned(dtype)
    before = a.copy()
    with pytest.raises(tp.InvalidArgumentError, match="aligned"):
        call(a)
    assert np.array_equal(a, before)


def test_misaligned_dequantize_out_is_refused():
    q, s = tp.quantize_int8(np.ones(64, np.float32))
    with pytest.raises(tp.InvalidArgumentError, match="aligned"):
        tp.dequantize_int8(q, s, out=_misaligned(np.float32))
