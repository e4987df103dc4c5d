"""Top-k family: every function against the stable-argsort reference (tests/reference/topk.py),
C variants and thread counts against each other, C against Numba, torch.nn.utils.prune parity,
properties, heavy ties, special values and bad inputs. Runs on the live backend."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tensorpress as tp
from tensorpress import _backend
from tensorpress.errors import DTypeError, InvalidArgumentError, NonFiniteError

from conftest import isa_variants, requires_c, variants_run
from reference import topk as ref

BF16 = ml_dtypes.bfloat16
DTYPES = [np.float16, BF16, np.float32, np.float64]
BITS = {np.float16: np.uint16, BF16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}


def data(rng, shape, dtype, kind="normal"):
    n = int(np.prod(shape))
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "ties":  # few distinct magnitudes, both signs
        x = rng.integers(-3, 4, n).astype(np.float64)
    elif kind == "equal":
        x = np.full(n, -2.5)
    elif kind == "zeros":  # half signed zeros, half values
        x = np.where(rng.random(n) < 0.5, rng.choice([0.0, -0.0], n), rng.standard_normal(n))
    elif kind == "narrow":  # every key in one top-digit bucket: forces the refinement passes
        x = 1.0 + rng.random(n) / 64
    else:
        raise ValueError(kind)
    return x.astype(dtype).reshape(shape)


def ks(n):
    return sorted({0, min(1, n), n // 10, n // 2, max(n - 1, 0), n})


def unpack(p, x):
    return np.unpackbits(p, count=x.size).astype(bool).reshape(x.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "equal", "zeros", "narrow"])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 63, 64, 65, 1000, 70001])
def test_topk_mask_matches_reference(rng, dtype, kind, n):
    x = data(rng, (n,), dtype, kind)
    order = ref.order(x)
    for k in ks(n):
        expected = ref.mask_from_order(order, k, x.shape)
        got = tp.topk_mask(x, k)
        assert got.dtype == np.bool_ and got.shape == x.shape
        np.testing.assert_array_equal(got, expected, err_msg=f"k={k}")
        packed = tp.topk_mask(x, k, packed=True)
        np.testing.assert_array_equal(packed, np.packbits(expected.reshape(-1)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "narrow"])
def test_large_parallel_path(rng, dtype, kind):
    # above the size where the C kernel starts threads and splits the data into units
    x = data(rng, (1_200_007,), dtype, kind)
    order = ref.order(x)
    for k in (1, 120_001, 600_000, x.size - 1):
        expected = ref.mask_from_order(order, k, x.shape)
        np.testing.assert_array_equal(tp.topk_mask(x, k), expected, err_msg=f"k={k}")
    k = 300_000
    assert tp.topk_threshold(x, k) == ref.topk_threshold(x, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((5, 7), 1), ((5, 7), 0), ((3, 4, 9), 1), ((3, 4, 9), -1),
                                        ((2, 16), -1), ((6, 13), 1), ((1, 40), 1), ((40, 1), 0),
                                        ((0, 5), 1), ((5, 0), 1), ((300, 257), 1), ((257, 300), 0)])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_topk_mask_axis(rng, dtype, shape, axis, kind):
    x = data(rng, shape, dtype, kind)
    length = shape[axis]
    for k in ks(length) + [0.3]:
        expected = ref.topk_mask(x, k, axis=axis)
        np.testing.assert_array_equal(tp.topk_mask(x, k, axis=axis), expected, err_msg=f"k={k}")
        np.testing.assert_array_equal(tp.topk_mask(x, k, axis=axis, packed=True),
                                      np.packbits(expected.reshape(-1)), err_msg=f"packed k={k}")
        if isinstance(k, int) and k >= 1 and x.size:
            np.testing.assert_array_equal(tp.topk_threshold(x, k, axis=axis),
                                          ref.topk_threshold(x, k, axis=axis))


def test_rows_parallel_large(rng):
    x = data(rng, (512, 1024), np.float32, "normal")
    for k in (1, 102, 512, 1023):
        np.testing.assert_array_equal(tp.topk_mask(x, k, axis=1), ref.topk_mask(x, k, axis=1))
    x = data(rng, (64, 4096), np.float32, "ties")
    np.testing.assert_array_equal(tp.topk_mask(x, 0.1, axis=-1), ref.topk_mask(x, 0.1, axis=-1))


@pytest.mark.parametrize("k", [0.0, 0.1, 0.25, 0.5, 0.95, 1.0, 0.05])
def test_fraction_uses_python_round(rng, k):
    x = data(rng, (1234,), np.float32)
    assert tp.topk_mask(x, k).sum() == round(k * x.size)
    x = data(rng, (10,), np.float32)
    assert tp.topk_mask(x, 0.25).sum() == round(2.5) == 2  # banker's rounding, as torch.prune


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold(rng, dtype):
    x = data(rng, (10_001,), dtype)
    for k in (1, 17, 5000, 10_001, 0.5):
        t = tp.topk_threshold(x, k)
        assert isinstance(t, np.generic) and t.dtype == dtype
        assert t == ref.topk_threshold(x, k)
    assert tp.topk_threshold(np.array([-3.0, 1.0], dtype), 1) == 3.0
    with pytest.raises(InvalidArgumentError):
        tp.topk_threshold(x, 0)
    with pytest.raises(InvalidArgumentError):
        tp.topk_threshold(np.zeros(0, dtype), 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [None, 1])
def test_prune_in_place(rng, dtype, axis):
    x = data(rng, (37, 91), dtype, "zeros")
    before = x.copy()
    mask = tp.prune_(x, 0.3, axis=axis)
    expected = ref.topk_mask(before, 0.3, axis=axis)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(x[mask], before[mask])
    assert np.all(x[~mask] == 0) and not np.signbit(x[~mask]).any()
    y = before.copy()
    packed = tp.prune_(y, 0.3, axis=axis, packed=True)
    np.testing.assert_array_equal(unpack(packed, y), expected)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prune_large(rng, dtype):
    x = data(rng, (700_001,), dtype, "ties")
    before = x.copy()
    mask = tp.prune_(x, 0.37)
    np.testing.assert_array_equal(mask, ref.topk_mask(before, 0.37))
    np.testing.assert_array_equal(x, np.where(mask, before, 0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_global(rng, dtype):
    shapes = [(3, 5), (0,), (100,), (7, 7, 7), (1,), (40_000,), (2, 300_000)]
    arrays = [data(rng, s, dtype, kind) for s, kind in zip(shapes, ["normal", "ties"] * 4)]
    total = sum(a.size for a in arrays)
    for k in (0, 1, 1000, 0.1, 0.5, total - 1, total):
        expected = ref.global_topk_masks(arrays, k)
        got = tp.global_topk_masks(arrays, k)
        packed = tp.global_topk_masks(arrays, k, packed=True)
        for a, g, p, e in zip(arrays, got, packed, expected):
            assert g.shape == a.shape
            np.testing.assert_array_equal(g, e)
            np.testing.assert_array_equal(p, np.packbits(e.reshape(-1)))
    assert tp.global_topk_masks([], 0) == []


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis,n,m", [((8,), -1, 2, 4), ((3, 16), -1, 2, 4), ((3, 16), 1, 1, 4),
                                            ((16, 5), 0, 2, 4), ((4, 8, 3), 1, 3, 8), ((2, 12), -1, 1, 3),
                                            ((5, 64), -1, 0, 4), ((5, 64), -1, 4, 4), ((0, 4), -1, 2, 4),
                                            ((1000, 400), -1, 2, 4), ((2, 128), 1, 7, 64)])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_nm_mask(rng, dtype, shape, axis, n, m, kind):
    x = data(rng, shape, dtype, kind)
    expected = ref.nm_mask(x, n=n, m=m, axis=axis)
    np.testing.assert_array_equal(tp.nm_mask(x, n=n, m=m, axis=axis), expected)


def test_nm_default_is_2_4(rng):
    x = data(rng, (6, 32), np.float32)
    mask = tp.nm_mask(x)
    assert np.all(mask.reshape(6, 8, 4).sum(-1) == 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype):
    info = ml_dtypes.finfo(dtype)  # np.finfo's values, bfloat16's too
    tiny_sub = info.smallest_subnormal
    x = np.array([0.0, -0.0, tiny_sub, -tiny_sub, 2 * tiny_sub, info.tiny, -info.max, np.inf,
                  -np.inf, 1.0, -1.0, 0.0], dtype)
    for k in range(x.size + 1):
        np.testing.assert_array_equal(tp.topk_mask(x, k), ref.topk_mask(x, k), err_msg=f"k={k}")
    assert tp.topk_threshold(x, 1) == np.inf
    assert tp.topk_threshold(x, 6) == info.tiny
    # signed zeros tie: the lower index wins
    z = np.array([-0.0, 0.0, -0.0], dtype)
    np.testing.assert_array_equal(tp.topk_mask(z, 2), [True, True, False])


def test_ties_keep_lower_index():
    x = np.array([1, -5, 5, 3, -5, 5, 2], np.float32)
    np.testing.assert_array_equal(tp.topk_mask(x, 2), [0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(tp.topk_mask(x, 4), [0, 1, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(tp.topk_mask(np.ones((2, 3), np.float32), 2, axis=1),
                                  [[1, 1, 0], [1, 1, 0]])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64]),
                  hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
                  elements=st.floats(-1e4, 1e4, width=16)),
       st.floats(0, 1), st.booleans(), st.data())
def test_properties(x, frac, as_bf16, draw):
    if as_bf16:  # hypothesis draws no bfloat16: the float16 values rounded to it (many ties)
        x = x.astype(BF16)
    k = round(frac * x.size)
    mask = tp.topk_mask(x, k)
    assert mask.sum() == k
    mag = np.abs(x.astype(np.float64))
    if 0 < k < x.size:
        assert mag[mask].min() >= mag[~mask].max()
        t = mag[mask].min()
        tied = np.flatnonzero((mag == t).reshape(-1))
        kept = mask.reshape(-1)[tied]
        # among equal magnitudes at the threshold, kept ones come first in index order
        assert np.all(kept[:kept.sum()]) and not kept[kept.sum():].any()
    np.testing.assert_array_equal(mask, ref.topk_mask(x, k))
    axis = draw.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_array_equal(tp.topk_mask(x, frac, axis=axis), ref.topk_mask(x, frac, axis=axis))


def test_nan_raises_and_leaves_input_alone(rng):
    for dtype in DTYPES:
        x = data(rng, (1000,), dtype)
        x[537] = np.nan
        before = x.copy()
        for call in (lambda: tp.topk_mask(x, 10), lambda: tp.topk_threshold(x, 10),
                     lambda: tp.prune_(x, 10), lambda: tp.prune_(x.reshape(10, 100), 10, axis=1),
                     lambda: tp.prune_(x.reshape(10, 100), 10, axis=0),
                     lambda: tp.global_topk_masks([x[:5], x], 3), lambda: tp.nm_mask(x),
                     lambda: tp.topk_mask(x, 0), lambda: tp.topk_mask(x, x.size),
                     lambda: tp.topk_mask(x.reshape(10, 100), 3, axis=1)):
            with pytest.raises(NonFiniteError, match="NaN"):
                call()
            with pytest.raises(ValueError):
                call()
        assert x.tobytes() == before.tobytes()  # bit for bit (NaN payloads too)


def blocky(rng, n, dtype):
    """Runs of 256 large or small magnitudes: neighbours alike, so a sample of neighbouring
    groups estimates the threshold's rank badly (the sampled path's hard case)."""
    big = np.repeat(rng.random(n // 256) < 0.5, 256)
    return np.where(big, 10 + rng.random(n), rng.random(n)).astype(dtype)


live_c = pytest.mark.skipif(tp.backend != "c", reason="the C backend's sampled path")


@live_c
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [4.0, 0.0])
def test_sampled_path_and_its_misses(rng, dtype, width):
    """Large inputs take the sampled path (a sample brackets the threshold, one pass does the
    rest); a zero-width bracket makes it miss, and the histogram path must then give the same
    exact result. Every entry point that selects over a whole array goes through it."""
    from tensorpress._native import topk as ck

    n = 1 << 19  # TOPK_SAMPLE_MIN: the smallest input every variant samples
    # "ties": seven values, so the k-th key's value is shared by far more keys than the
    # candidate space holds; the pass gives up part way and the histogram path takes over
    cases = [("normal", data(rng, (n,), dtype, "normal")), ("blocky", blocky(rng, n, dtype)),
             ("ties", rng.integers(-3, 4, n).astype(dtype))]
    missed = {}
    with ck.sampling(width) as stats:  # every call in the block passes the width to C
        for kind, x in cases:
            misses = stats.misses
            order = ref.order(x)
            for k in (1, 1000, n // 10, n // 2, n - 5):
                expected = ref.mask_from_order(order, k, x.shape)
                msg = f"{kind} k={k}"
                np.testing.assert_array_equal(tp.topk_mask(x, k), expected, err_msg=msg)
                np.testing.assert_array_equal(tp.topk_mask(x, k, packed=True),
                                              np.packbits(expected), err_msg=msg)
                assert tp.topk_threshold(x, k) == ref.topk_threshold(x, k), msg
                y = x.copy()
                np.testing.assert_array_equal(tp.prune_(y, k), expected, err_msg=msg)
                np.testing.assert_array_equal(y, np.where(expected, x, 0), err_msg=msg)
            rows = x.reshape(-1, 4096)  # slices long enough for the per-slice sampled path
            for k in (1, 409, 2048, 4095):
                expected = ref.topk_mask(rows, k, axis=1)
                msg = f"{kind} rows k={k}"
                np.testing.assert_array_equal(tp.topk_mask(rows, k, axis=1), expected, err_msg=msg)
                np.testing.assert_array_equal(tp.topk_threshold(rows, k, axis=1),
                                              ref.topk_threshold(rows, k, axis=1), err_msg=msg)
                y = rows.copy()
                np.testing.assert_array_equal(tp.prune_(y, k, axis=1), expected, err_msg=msg)
                np.testing.assert_array_equal(y, np.where(expected, rows, 0), err_msg=msg)
            parts = [x[:1000], x[1000:1000], x[1000:350_001], x[350_001:]]
            for got, want in zip(tp.global_topk_masks(parts, n // 3),
                                 ref.global_topk_masks(parts, n // 3)):
                np.testing.assert_array_equal(got, want, err_msg=f"{kind} global")
            missed[kind] = stats.misses - misses
    if width == 0:
        assert missed["normal"] > 0 and missed["blocky"] > 0  # the fallback really ran
    else:
        assert missed["normal"] == 0  # ...and on ordinary data the sampled path did the work


@live_c
def test_sample_width_is_per_call(rng):
    """The sample width and the miss count belong to each call (there is no process-wide
    setting): a thread forcing misses leaves another thread's calls on the sampled path."""
    import threading

    from tensorpress._native import topk as ck

    x = data(rng, (256, 4096), np.float32)  # slices long enough for the per-slice sampled path
    expected = ref.topk_mask(x, 2048, axis=1)
    misses, errors = {}, []
    start = threading.Barrier(2)

    def run(width):
        try:
            with ck.sampling(width) as stats:
                start.wait()
                for _ in range(4):
                    np.testing.assert_array_equal(tp.topk_mask(x, 2048, axis=1), expected)
            misses[width] = stats.misses
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in (0.0, None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert misses[0.0] > 0 and misses[None] == 0
    with ck.sampling(-1.0) as stats:  # negative: no sampled path, hence no miss
        np.testing.assert_array_equal(tp.topk_mask(x, 2048, axis=1), expected)
    assert stats.misses == 0


@live_c
@pytest.mark.parametrize("threads", [1, 2])
def test_sampled_path_over_many_tiny_arrays(rng, threads):
    """global_topk_masks over thousands of arrays shorter than a sample group (16 keys): the
    groups run on across array ends, so the sample stays unbiased and the sampled path does
    not miss; the masks equal the reference at every thread count."""
    from tensorpress._native import topk as ck

    def tiny(count, most):
        return [rng.standard_normal(int(n)).astype(np.float32)
                for n in rng.integers(0, most, count)]

    parts = tiny(3000, 20) + [rng.standard_normal(600_000).astype(np.float32)] + tiny(2000, 9)
    before = tp.get_num_threads()
    try:
        tp.set_num_threads(threads)
        with ck.sampling() as stats:  # the default width; count the misses
            for k in (1, 1000, 0.1, 0.5):
                for got, want in zip(tp.global_topk_masks(parts, k),
                                     ref.global_topk_masks(parts, k)):
                    np.testing.assert_array_equal(got, want, err_msg=f"k={k}")
    finally:
        tp.set_num_threads(before)
    assert stats.misses == 0


SMALLEST_NAN_BITS = {np.float16: 0xFC01, BF16: 0xFF81, np.float32: 0xFF800001,
                     np.float64: 0xFFF0000000000001}


@pytest.mark.parametrize("dtype", DTYPES)
def test_sampled_path_nan_anywhere(rng, dtype):
    """The sampled path finds NaN in its one pass, before anything is zeroed: any NaN, at the
    start, inside, or at the end of the data, including the NaN whose key is just above Inf's
    (the sign bit set, so only the magnitude tells it from Inf)."""
    bits_type = BITS[dtype]
    for at, smallest in ((0, False), (12345, False), ((1 << 20) - 1, False), (777777, True)):
        x = data(rng, (1 << 20,), dtype)
        if smallest:
            x.view(bits_type)[at] = SMALLEST_NAN_BITS[dtype]
        else:
            x[at] = np.nan
        before = x.copy()
        rows = x.reshape(256, 4096)
        for call in (lambda: tp.topk_mask(x, 1000), lambda: tp.prune_(x, 0.5),
                     lambda: tp.topk_threshold(x, 7), lambda: tp.topk_mask(rows, 100, axis=1),
                     lambda: tp.prune_(rows, 0.5, axis=1)):
            with pytest.raises(NonFiniteError):
                call()
        assert x.tobytes() == before.tobytes()  # bit for bit (NaN payloads too)


def test_bad_inputs():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with pytest.raises(DTypeError):
        tp.topk_mask(x.astype(np.int32), 2)
    with pytest.raises(DTypeError):
        tp.topk_mask([1.0, 2.0], 1)
    with pytest.raises(DTypeError):
        tp.topk_mask(x, True)
    with pytest.raises(DTypeError):
        tp.topk_mask(x, "3")
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, 13)
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, -1)
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, 1.5)
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, float("nan"))
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, 5, axis=1)  # k > slice length
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x, 1, axis=2)
    with pytest.raises(DTypeError):
        tp.topk_mask(x, 1, axis=1.0)
    with pytest.raises(InvalidArgumentError):
        tp.topk_mask(x[:, ::2], 1)  # never copied silently
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(InvalidArgumentError):
        tp.prune_(ro, 2)
    tp.topk_mask(ro, 2)  # reading a read-only array is fine
    with pytest.raises(DTypeError):
        tp.global_topk_masks(x, 2)
    with pytest.raises(DTypeError):
        tp.global_topk_masks([x, x.astype(np.float64)], 2)
    with pytest.raises(InvalidArgumentError):
        tp.nm_mask(np.ones(6, np.float32))  # 6 % 4
    with pytest.raises(InvalidArgumentError):
        tp.nm_mask(x, n=5, m=4)
    with pytest.raises(InvalidArgumentError):
        tp.nm_mask(x, n=1, m=0)
    with pytest.raises(InvalidArgumentError):
        tp.nm_mask(np.ones(128, np.float32), n=1, m=128)
    with pytest.raises(InvalidArgumentError):
        tp.nm_mask(np.ones((), np.float32))


def test_empty_and_scalar():
    for dtype in DTYPES:
        e = np.zeros((0, 3), dtype)
        assert tp.topk_mask(e, 0).shape == (0, 3)
        assert tp.topk_mask(e, 0.5).shape == (0, 3)
        assert tp.topk_mask(e, 0, packed=True).size == 0
        assert tp.prune_(e, 0).shape == (0, 3)
        s = np.array(-2.0, dtype)
        assert tp.topk_mask(s, 1)[()] and tp.topk_mask(s, 1).shape == ()
        assert tp.topk_threshold(s, 1) == 2.0


# ---- torch parity ------------------------------------------------------------------------

def test_torch_l1_unstructured(rng):
    torch = pytest.importorskip("torch")
    prune = pytest.importorskip("torch.nn.utils.prune")
    for shape, amount in [((64, 33), 0.3), ((1000,), 0.9), ((17, 5, 3), 100), ((8, 8), 0.5)]:
        x = rng.permutation(np.prod(shape)).astype(np.float32).reshape(shape) + 1  # tie-free
        x *= rng.choice([-1, 1], x.shape)
        w = torch.nn.Linear(1, 1)
        w.weight = torch.nn.Parameter(torch.from_numpy(x.copy()))
        prune.l1_unstructured(w, "weight", amount=amount)
        torch_keep = w.weight_mask.numpy().astype(bool)
        n = x.size
        k = n - (round(amount * n) if isinstance(amount, float) else amount)  # amount = pruned
        np.testing.assert_array_equal(tp.topk_mask(x, k), torch_keep)


def test_torch_global_unstructured(rng):
    torch = pytest.importorskip("torch")
    prune = pytest.importorskip("torch.nn.utils.prune")
    shapes = [(30, 20), (50,), (4, 4, 4)]
    total = sum(int(np.prod(s)) for s in shapes)
    values = (rng.permutation(total) + 1).astype(np.float32) * rng.choice([-1, 1], total)
    arrays, at = [], 0
    for s in shapes:
        n = int(np.prod(s))
        arrays.append(values[at:at + n].reshape(s).copy())
        at += n
    modules = []
    for a in arrays:
        mod = torch.nn.Module()
        mod.weight = torch.nn.Parameter(torch.from_numpy(a.copy()))
        modules.append(mod)
    prune.global_unstructured([(m, "weight") for m in modules], prune.L1Unstructured, amount=0.4)
    masks = tp.global_topk_masks(arrays, total - round(0.4 * total))
    for mod, mask in zip(modules, masks):
        np.testing.assert_array_equal(mask, mod.weight_mask.numpy().astype(bool))


# ---- backends, variants and threads ------------------------------------------------------

@variants_run
@pytest.mark.parametrize("dtype", DTYPES)
def test_c_variants_agree(rng, dtype):
    """Every C variant this machine runs gives the scalar reference's masks, thresholds and
    zeroed data (isa="scalar" is the plain radix-select reference of csrc/topk/ref.c, not a
    recompiled SIMD body), and the scalar reference gives the NumPy reference's."""
    from tensorpress._native import topk as ck

    bits = BITS[dtype]

    def key_of(t):
        return int(np.abs(np.asarray(t, dtype)).view(bits))

    for kind in ("normal", "ties", "narrow"):
        x = data(rng, (300_003,), dtype, kind)
        rows = data(rng, (37, 517), dtype, kind)
        cube = data(rng, (3, 8, 5), dtype, kind)  # slices and N:M groups along a middle axis
        groups = data(rng, (9, 64), dtype, kind)
        parts = [x[:1000], x[1000:1000], x[1000:200_001], x[200_001:]]
        order = ref.order(x)
        results = {}
        for isa in isa_variants():
            out = []
            for k in (0, 1, 30_000, 150_001, x.size):
                for packed in (False, True):
                    mask = np.zeros((x.size + 7) // 8, np.uint8) if packed else np.zeros(x.size, bool)
                    key = ck.topk_select([x], k, [mask], packed=packed, isa=isa)
                    out += [mask, key]
                    if isa == "scalar":  # the reference against NumPy's
                        expected = ref.mask_from_order(order, k, x.shape)
                        np.testing.assert_array_equal(
                            mask, np.packbits(expected) if packed else expected, err_msg=f"k={k}")
                        assert key == (key_of(ref.topk_threshold(x, k)) if k else 0)
            for k in (1, 77_777):  # segments, zeroing, threshold only
                masks = [np.zeros(p.size, bool) for p in parts]
                zeroed = [p.copy() for p in parts]
                ck.topk_select(zeroed, k, masks, zero=True, isa=isa)
                out += masks + zeroed + [ck.topk_select(parts, k, None, isa=isa)]
                if isa == "scalar":
                    for got, want, z, p in zip(masks, ref.global_topk_masks(parts, k), zeroed, parts):
                        np.testing.assert_array_equal(got, want)
                        np.testing.assert_array_equal(z, np.where(want, p, 0))
            for packed in (False, True):
                mask = np.zeros((rows.size + 7) // 8, np.uint8) if packed else np.zeros(rows.shape, bool)
                thr = np.zeros(37, np.uint64)
                ck.topk_rows(rows, 37, 517, 1, 50, mask, thr, packed=packed, isa=isa)
                out += [mask, thr]
                cmask = np.zeros((cube.size + 7) // 8, np.uint8) if packed else np.zeros(cube.shape, bool)
                y = cube.copy()
                ck.topk_rows(y, 3, 8, 5, 3, cmask, None, packed=packed, zero=True, isa=isa)
                out += [cmask, y]
                if isa == "scalar":
                    want = ref.topk_mask(rows, 50, axis=1)
                    np.testing.assert_array_equal(mask, np.packbits(want) if packed else want)
                    np.testing.assert_array_equal(
                        thr, [key_of(t) for t in ref.topk_threshold(rows, 50, axis=1)])
                    want = ref.topk_mask(cube, 3, axis=1)
                    np.testing.assert_array_equal(cmask, np.packbits(want) if packed else want)
                    np.testing.assert_array_equal(y, np.where(want, cube, 0))
            for n, m in ((2, 4), (3, 8)):
                mask = np.zeros(groups.shape, bool)
                ck.nm_mask(groups, 1, groups.size, 1, n, m, mask, isa=isa)
                out.append(mask)
                if isa == "scalar":
                    np.testing.assert_array_equal(mask, ref.nm_mask(groups, n=n, m=m))
            mask = np.zeros(cube.shape, bool)
            ck.nm_mask(cube, 3, 8, 5, 1, 4, mask, isa=isa)
            out.append(mask)
            if isa == "scalar":
                np.testing.assert_array_equal(mask, ref.nm_mask(cube, n=1, m=4, axis=1))
            results[isa] = out
        scalar = results["scalar"]
        for isa, out in results.items():
            assert len(out) == len(scalar)
            for a, b in zip(out, scalar):
                np.testing.assert_array_equal(a, b, err_msg=f"{isa} vs scalar ({kind})")


@requires_c
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "equal", "narrow", "zeros", "blocky", "inf"])
@pytest.mark.parametrize("length", [600, 4099])  # not multiples of the vector steps: tails run
def test_c_variants_agree_on_long_slices(rng, dtype, kind, length):
    """Slices long enough for the per-slice sampled paths (float32 with AVX2 takes the split
    path from 512 keys: thresholds from a sample, exact counts, a branch-free mark pass; the
    others the one-pass sampled path from 2048). Mask, thresholds and in-place zeroing of every
    variant must equal the reference, at every kind of k."""
    from tensorpress._native import topk as ck

    if kind == "blocky":
        rows = blocky(rng, 256 * 113, dtype)[:7 * length].reshape(7, length)
    elif kind == "inf":  # a few infinities of both signs among normal values
        rows = data(rng, (7, length), dtype, "normal")
        rows[rng.random(rows.shape) < 0.01] = np.inf
        rows[rng.random(rows.shape) < 0.01] = -np.inf
    else:
        rows = data(rng, (7, length), dtype, kind)
    for k in (1, 2, 41, length // 10, length // 2, length - 2, length - 1):
        expected = ref.topk_mask(rows, k, axis=1)
        want_thr = ref.topk_threshold(rows, k, axis=1)
        for isa in isa_variants():
            msg = f"{isa} k={k}"
            mask = np.zeros(rows.shape, bool)
            thr = np.zeros(7, np.uint64)
            ck.topk_rows(rows, 7, length, 1, k, mask, thr, isa=isa)
            np.testing.assert_array_equal(mask, expected, err_msg=msg)
            bits = np.abs(want_thr).view(BITS[dtype])
            np.testing.assert_array_equal(thr, bits.astype(np.uint64), err_msg=msg)
            y = rows.copy()
            ck.topk_rows(y, 7, length, 1, k, None, zero=True, isa=isa)
            want = np.where(expected, rows, 0)
            np.testing.assert_array_equal(y, want, err_msg=msg)
            np.testing.assert_array_equal(np.signbit(y), np.signbit(want), err_msg=msg)


@requires_c
def test_thread_counts_agree(rng):
    before = tp.get_num_threads()
    x = data(rng, (2_000_003,), np.float32, "ties")
    rows = data(rng, (300, 999), np.float32, "ties")
    try:
        outs = []
        for threads in (1, 2, 3):
            tp.set_num_threads(threads)
            outs.append((tp.topk_mask(x, 0.3), tp.topk_mask(x, 0.3, packed=True),
                         tp.topk_mask(rows, 0.1, axis=1, packed=True), tp.nm_mask(x[:-3])))
    finally:
        tp.set_num_threads(before)
    for out in outs[1:]:
        for a, b in zip(out, outs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(len(_backend.available_backends()) < 2, reason="needs both backends")
@pytest.mark.parametrize("dtype", DTYPES)
def test_c_and_numba_agree(rng, dtype):
    c = _backend.kernels_of("c", "topk")
    nb = _backend.kernels_of("numba", "topk")
    x = data(rng, (200_001,), dtype, "ties")
    rows = data(rng, (6, 50, 7), dtype, "normal")
    for k in (0, 3, 20_000, x.size):
        masks = [np.zeros(x.size, bool) for _ in range(2)]
        keys = [be.topk_select([x], k, [m]) for be, m in zip((c, nb), masks)]
        assert keys[0] == keys[1]
        np.testing.assert_array_equal(masks[0], masks[1])
    for packed in (False, True):
        ms, ts = [], []
        for be in (c, nb):
            m = np.zeros((rows.size + 7) // 8, np.uint8) if packed else np.zeros(rows.shape, bool)
            t = np.zeros(42, np.uint64)
            be.topk_rows(rows, 6, 50, 7, 9, m, t, packed=packed)
            ms.append(m)
            ts.append(t)
        np.testing.assert_array_equal(ms[0], ms[1])
        np.testing.assert_array_equal(ts[0], ts[1])
    g = [np.zeros(rows.shape, bool) for _ in range(2)]
    for be, m in zip((c, nb), g):
        be.nm_mask(rows, 6, 50, 7, 3, 5, m)
    np.testing.assert_array_equal(g[0], g[1])


@requires_c
def test_c_entry_points_check_their_arguments():
    """The C functions refuse bad arguments with a status instead of crashing."""
    from tensorpress._native import ffi, lib

    x = np.ones(1000, np.float32)
    mask = np.zeros(1000, bool)
    segs = ffi.new("tp_topk_segment[]", 1)
    segs[0].data = ffi.from_buffer(x)
    segs[0].numel = x.size
    segs[0].mask = ffi.from_buffer(mask)
    key = ffi.new("uint64_t *")
    need = lib.tp_topk_workspace_bytes(lib.TP_FLOAT32, x.size, 1000)
    ws = np.zeros(need, np.uint8)
    wsp = ffi.from_buffer(ws)
    stats = ffi.new("tp_topk_stats *")
    stats.sample_misses = 99

    def select(segs, dtype, k, flags, wsp, nbytes, cap):
        return lib.tp_topk_select(segs, 1, dtype, k, flags, wsp, nbytes, cap, ffi.NULL, key, stats)

    assert select(segs, lib.TP_FLOAT32, 10, 0, wsp, need, 1000) == lib.TP_OK
    assert mask.sum() == 10 and stats.sample_misses == 0
    assert select(segs, lib.TP_FLOAT32, 1001, 0, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    assert select(segs, lib.TP_FLOAT32, -1, 0, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    assert select(segs, 7, 10, 0, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    assert select(segs, lib.TP_FLOAT32, 10, 64, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    for isa in range(4):  # every variant, the scalar reference too, checks the workspace
        if lib.tp_isa_available(isa):
            assert lib.tp_topk_select_isa(segs, 1, lib.TP_FLOAT32, 10, 0, wsp, 100, 1000, ffi.NULL,
                                          key, stats, isa) == lib.TP_ERR_BUFFER
    assert select(segs, lib.TP_FLOAT32, 10, 0, ffi.NULL, need, 1000) == lib.TP_ERR_ARGUMENT
    assert select(ffi.NULL, lib.TP_FLOAT32, 10, 0, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    segs[0].mask = ffi.NULL
    assert select(segs, lib.TP_FLOAT32, 10, 0, wsp, need, 1000) == lib.TP_ERR_ARGUMENT
    # a candidate space of 0 still selects exactly (by histogram passes down to single keys)
    segs[0].mask = ffi.from_buffer(mask)
    y = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    segs[0].data = ffi.from_buffer(y)
    assert select(segs, lib.TP_FLOAT32, 77, 0, wsp, need, 0) == lib.TP_OK
    np.testing.assert_array_equal(mask, ref.topk_mask(y, 77))

    rws_need = lib.tp_topk_rows_workspace_bytes(lib.TP_FLOAT32, 100)
    rws = np.zeros(rws_need, np.uint8)
    rows = np.ones((10, 100), np.float32)
    rmask = np.zeros(rows.shape, bool)
    args = [ffi.from_buffer(rows), 10, 100, 1, lib.TP_FLOAT32, 5, 0, ffi.from_buffer(rmask), ffi.NULL,
            ffi.from_buffer(rws), rws_need, ffi.NULL, ffi.NULL]
    assert lib.tp_topk_rows(*args) == lib.TP_OK and rmask.sum() == 50
    assert lib.tp_topk_rows(*args[:5], 101, *args[6:]) == lib.TP_ERR_ARGUMENT
    assert lib.tp_topk_rows(*args[:10], 8, *args[11:]) == lib.TP_ERR_BUFFER
    for isa in range(4):
        if lib.tp_isa_available(isa):
            assert lib.tp_topk_rows_isa(*args[:10], 8, *args[11:], isa) == lib.TP_ERR_BUFFER
    nm = np.zeros(rows.shape, bool)
    nmp = ffi.cast("uint8_t *", ffi.from_buffer(nm))
    assert lib.tp_nm_mask(ffi.from_buffer(rows), 10, 100, 1, lib.TP_FLOAT32, 2, 3, nmp) == lib.TP_ERR_ARGUMENT
    assert lib.tp_nm_mask(ffi.from_buffer(rows), 10, 100, 1, lib.TP_FLOAT32, 5, 4, nmp) == lib.TP_ERR_ARGUMENT
    assert lib.tp_nm_mask(ffi.from_buffer(rows), 10, 100, 1, lib.TP_FLOAT32, 2, 4, nmp) == lib.TP_OK


# ---- bfloat16: the results of the same call on the float32 conversion --------------------
# bfloat16 is the upper half of a float32, so converting is exact and orders magnitudes the
# same way: masks must equal the float32 call's bit for bit, thresholds be its thresholds (exact
# in bfloat16: they are input values). Its Inf key (0x7f80) lies far above float16's (0x7c00):
# bfloat16 values with bits from 0x7c01 up are large finite numbers, never NaN.

def bf16_data(rng, shape, kind):
    if kind == "huge":  # finite magnitudes whose bits pass float16's Inf key, and Inf itself
        bits = rng.integers(0x7C00, 0x7F80, int(np.prod(shape)), dtype=np.uint16)
        bits |= rng.integers(0, 2, bits.size, dtype=np.uint16) << 15
        x = bits.view(BF16).reshape(shape).copy()
        x.reshape(-1)[::97] = np.inf
        x.reshape(-1)[1::89] = -np.inf
        return x
    if kind == "inf":
        x = data(rng, shape, BF16, "normal")
        x.reshape(-1)[::53] = np.inf
        x.reshape(-1)[7::71] = -np.inf
        return x
    return data(rng, shape, BF16, kind)


def assert_bf16_threshold(t, t32):
    t, t32 = np.asarray(t), np.asarray(t32)
    assert t.dtype == BF16 and t.shape == t32.shape
    np.testing.assert_array_equal(t.astype(np.float32), t32)  # the float32 threshold, exactly
    np.testing.assert_array_equal(t, t32.astype(BF16))


BF16_KINDS = ["normal", "ties", "equal", "zeros", "narrow", "inf", "huge"]


@pytest.mark.parametrize("kind", BF16_KINDS)
@pytest.mark.parametrize("n", [1, 7, 64, 1000, 70001, 1_200_007])
def test_bf16_whole_array_equals_float32_call(rng, kind, n):
    x = bf16_data(rng, (n,), kind)
    f = x.astype(np.float32)
    for k in ks(n) + [0.1, 0.5]:
        msg = f"k={k}"
        np.testing.assert_array_equal(tp.topk_mask(x, k), tp.topk_mask(f, k), err_msg=msg)
        np.testing.assert_array_equal(tp.topk_mask(x, k, packed=True),
                                      tp.topk_mask(f, k, packed=True), err_msg=msg)
        if k != 0 and round(k * n if isinstance(k, float) else k) >= 1:
            assert_bf16_threshold(tp.topk_threshold(x, k), tp.topk_threshold(f, k))
    y, g = x.copy(), f.copy()
    np.testing.assert_array_equal(tp.prune_(y, 0.3), tp.prune_(g, 0.3))
    assert y.dtype == BF16
    np.testing.assert_array_equal(y.view(np.uint16), g.astype(BF16).view(np.uint16))  # +0.0 too


@pytest.mark.parametrize("kind", ["normal", "ties", "inf", "huge"])
@pytest.mark.parametrize("shape", [(5, 7, 9), (3, 600, 2), (4, 2, 4099), (0, 3, 4), (1, 1, 1)])
def test_bf16_per_slice_equals_float32_call(rng, kind, shape):
    x = bf16_data(rng, shape, kind)
    f = x.astype(np.float32)
    for axis in range(-x.ndim, x.ndim):
        for k in sorted({0, 1, shape[axis] // 3, shape[axis]} - {-1}) + [0.25]:
            if not isinstance(k, float) and k > shape[axis]:
                continue
            msg = f"axis={axis} k={k}"
            np.testing.assert_array_equal(tp.topk_mask(x, k, axis=axis),
                                          tp.topk_mask(f, k, axis=axis), err_msg=msg)
            np.testing.assert_array_equal(tp.topk_mask(x, k, axis=axis, packed=True),
                                          tp.topk_mask(f, k, axis=axis, packed=True), err_msg=msg)
            if x.size and (k if not isinstance(k, float) else round(k * shape[axis])) >= 1:
                assert_bf16_threshold(tp.topk_threshold(x, k, axis=axis),
                                      tp.topk_threshold(f, k, axis=axis))
            y, g = x.copy(), f.copy()
            np.testing.assert_array_equal(tp.prune_(y, k, axis=axis), tp.prune_(g, k, axis=axis))
            np.testing.assert_array_equal(y.view(np.uint16), g.astype(BF16).view(np.uint16))


@pytest.mark.parametrize("kind", ["normal", "ties", "huge"])
def test_bf16_global_and_nm_equal_float32_call(rng, kind):
    shapes = [(3, 5), (0,), (100,), (7, 7, 7), (1,), (40_000,), (2, 300_000)]
    arrays = [bf16_data(rng, s, kind) for s in shapes]
    floats = [a.astype(np.float32) for a in arrays]
    total = sum(a.size for a in arrays)
    for k in (0, 1, 1000, 0.1, 0.5, total - 1, total):
        for packed in (False, True):
            for a, b in zip(tp.global_topk_masks(arrays, k, packed=packed),
                            tp.global_topk_masks(floats, k, packed=packed)):
                np.testing.assert_array_equal(a, b, err_msg=f"k={k} packed={packed}")
    x = bf16_data(rng, (64, 4096), kind)  # 2:4 groups along rows: the 4-element passes
    f = x.astype(np.float32)
    for n, m, axis in ((2, 4, -1), (1, 4, -1), (3, 4, -1), (2, 4, 0), (3, 8, -1), (5, 64, 1)):
        np.testing.assert_array_equal(tp.nm_mask(x, n=n, m=m, axis=axis),
                                      tp.nm_mask(f, n=n, m=m, axis=axis), err_msg=f"{n}:{m}")
    c = bf16_data(rng, (3, 8, 5), kind)
    np.testing.assert_array_equal(tp.nm_mask(c, 2, 4, axis=1), tp.nm_mask(c.astype(np.float32), 2, 4, axis=1))


def test_bf16_nan_raises_empty_and_scalar(rng):
    for nan_bits in (0x7F81, 0xFF81, 0x7FC0, 0xFFFF):  # NaN keys: just above Inf's and beyond
        for n in (1000, 1 << 20):
            x = data(rng, (n,), BF16)
            x.view(np.uint16)[n // 3] = nan_bits
            before = x.copy()
            for call in (lambda: tp.topk_mask(x, 10), lambda: tp.topk_threshold(x, 10),
                         lambda: tp.prune_(x, 0.5), lambda: tp.prune_(x.reshape(8, -1), 10, axis=1),
                         lambda: tp.prune_(x.reshape(8, -1), 3, axis=0),
                         lambda: tp.global_topk_masks([x[:5], x], 3), lambda: tp.nm_mask(x),
                         lambda: tp.nm_mask(x.reshape(8, -1), 2, 4, axis=0)):
                with pytest.raises(NonFiniteError, match="NaN"):
                    call()
            np.testing.assert_array_equal(x.view(np.uint16), before.view(np.uint16))
    e = np.zeros((0, 3), BF16)
    assert tp.topk_mask(e, 0).shape == (0, 3) and tp.topk_mask(e, 0.5, axis=1).shape == (0, 3)
    assert tp.topk_mask(e, 0, packed=True).size == 0 and tp.prune_(e, 0).shape == (0, 3)
    assert tp.global_topk_masks([e, e], 0)[1].shape == (0, 3)
    assert tp.nm_mask(np.zeros((0, 4), BF16)).shape == (0, 4)
    s = np.array(-2.0, BF16)
    assert tp.topk_mask(s, 1)[()] and tp.topk_mask(s, 1).shape == ()
    t = tp.topk_threshold(s, 1)
    assert isinstance(t, np.generic) and t.dtype == BF16 and t == 2.0
    y = s.copy()
    assert not tp.prune_(y, 0)[()] and y == 0 and not np.signbit(y)


@requires_c
@pytest.mark.parametrize("kind", ["normal", "ties", "narrow", "inf", "huge", "blocky"])
def test_bf16_c_variants_equal_float32_calls(rng, kind):
    """Every C variant on bfloat16 gives what the scalar reference gives on the float32
    conversion: masks, zeroed data, and threshold keys (float32's are bfloat16's << 16)."""
    from tensorpress._native import topk as ck

    def make(shape):
        if kind == "blocky":
            n = int(np.prod(shape))
            return blocky(rng, (n + 255) // 256 * 256, BF16)[:n].reshape(shape)
        return bf16_data(rng, shape, kind)

    x = make((1_000_003,))  # the sampled path of every variant (baseline's from 512K)
    rows = make((7, 4099))  # per-slice sampled paths
    short = make((37, 517))
    cube = make((3, 8, 5))
    groups = make((9, 4096))
    parts = [x[:1000], x[1000:1000], x[1000:200_001], x[200_001:]]
    f = {id(a): a.astype(np.float32) for a in (x, rows, short, cube, groups, *parts)}

    def run(isa, wide):
        def arr(a):
            return f[id(a)] if wide else a

        out = []
        for k in (0, 1, 30_000, 500_001, x.size):
            for packed in (False, True):
                mask = np.zeros((x.size + 7) // 8, np.uint8) if packed else np.zeros(x.size, bool)
                key = ck.topk_select([arr(x)], k, [mask], packed=packed, isa=isa)
                out += [mask, key >> 16 if wide else key]
        for k in (1, 77_777):
            masks = [np.zeros(p.size, bool) for p in parts]
            zeroed = [arr(p).copy() for p in parts]
            ck.topk_select(zeroed, k, masks, zero=True, isa=isa)
            key = ck.topk_select([arr(p) for p in parts], k, None, isa=isa)
            out += masks + [z.astype(BF16).view(np.uint16) for z in zeroed] + [key >> 16 if wide else key]
        for r in (rows, short):
            for k in (1, 41, r.shape[1] // 10, r.shape[1] // 2, r.shape[1] - 1):
                for packed in (False, True):
                    mask = np.zeros((r.size + 7) // 8, np.uint8) if packed else np.zeros(r.shape, bool)
                    thr = np.zeros(r.shape[0], np.uint64)
                    ck.topk_rows(arr(r), r.shape[0], r.shape[1], 1, k, mask, thr, packed=packed, isa=isa)
                    y = arr(r).copy()
                    ck.topk_rows(y, r.shape[0], r.shape[1], 1, k, None, zero=True, isa=isa)
                    out += [mask, thr >> 16 if wide else thr, y.astype(BF16).view(np.uint16)]
        y = arr(cube).copy()
        cmask = np.zeros(cube.shape, bool)
        ck.topk_rows(y, 3, 8, 5, 3, cmask, None, zero=True, isa=isa)
        out += [cmask, y.astype(BF16).view(np.uint16)]
        for n, m in ((2, 4), (1, 4), (3, 4), (3, 8)):
            mask = np.zeros(groups.shape, bool)
            ck.nm_mask(arr(groups), 1, groups.size, 1, n, m, mask, isa=isa)
            out.append(mask)
        mask = np.zeros(cube.shape, bool)
        ck.nm_mask(arr(cube), 3, 8, 5, 2, 4, mask, isa=isa)
        out.append(mask)
        return out

    want = run("scalar", True)
    for isa in isa_variants():
        got = run(isa, False)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(a, b, err_msg=f"{isa} bfloat16 vs scalar float32 ({kind}) #{i}")
