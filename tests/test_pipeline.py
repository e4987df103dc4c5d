"""compress / decompress / save / load of whole checkpoints (prune -> int8 -> Huffman)."""


import numpy as np
import pytest

import tensorpress as tp
from tensorpress import container, pipeline
from tensorpress.errors import CorruptDataError


def checkpoint(rng):
    return {
        "encoder.weight": rng.standard_normal((96, 64)).astype(np.float32),
        "encoder.bias": rng.standard_normal(96).astype(np.float32),
        "conv.weight": rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1,
        "big_vector": rng.standard_normal(5000).astype(np.float32),
        "half": rng.standard_normal((40, 40)).astype(np.float16),
        "position_ids": np.arange(512, dtype=np.int64),
        "empty": np.zeros((0, 7), np.float32),
    }


def scale_bound(x, axis=0):
    """Per-element half scale of symmetric per-channel int8 (the round-trip error bound)."""
    if x.ndim <= 1:
        return np.full(x.shape, np.abs(x).max() / 127 / 2 if x.size else 0, np.float32)
    amax = np.abs(x).reshape(x.shape[0], -1).max(axis=1) if x.size else np.zeros(x.shape[0])
    return np.broadcast_to((amax / 127 / 2).reshape((-1,) + (1,) * (x.ndim - 1)), x.shape)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_round_trip(sparsity, rng):
    tensors = checkpoint(rng)
    out = tp.decompress(tp.compress(tensors, sparsity=sparsity))
    assert list(out) == list(tensors)
    for name in ("encoder.bias", "position_ids", "empty"):  # small, non-float, empty: lossless
        assert out[name].dtype == tensors[name].dtype
        np.testing.assert_array_equal(out[name], tensors[name])
    for name in ("encoder.weight", "conv.weight", "big_vector", "half"):
        x = tensors[name].astype(np.float32)
        y = out[name]
        assert y.dtype == np.float32 and y.shape == x.shape
        kept = y != 0
        n_keep = round((1 - sparsity) * x.size)
        assert kept.sum() <= n_keep
        if sparsity:
            # the kept entries are the largest magnitudes: every zeroed one is no larger
            threshold = np.sort(np.abs(x).ravel())[::-1][n_keep - 1]
            assert np.all(np.abs(x[kept]) >= threshold - scale_bound(x)[kept] * 2)
        bound = scale_bound(x) * 1.0001 + 1e-12
        err = np.abs(y - x)
        pruned = ~kept & (np.abs(x) > bound)
        assert np.all(err[~pruned] <= bound[~pruned])


def test_names_load_only_what_is_asked(tmp_path, rng):
    tensors = checkpoint(rng)
    path = tmp_path / "model.tpz"
    tp.save(path, tensors, sparsity=0.5)
    data = bytearray(path.read_bytes())
    # Damage one record's bytes: the others still load, and that one is named in the error.
    reader = container.Reader(bytes(data))
    rec = reader.record("conv.weight")
    offset, size, _ = next(iter(rec.parts.values()))
    data[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tp.load(path, names=["encoder.weight"])
    assert list(out) == ["encoder.weight"]
    with pytest.raises(CorruptDataError, match="conv.weight"):
        tp.load(path)


def test_a_missing_name_raises_missing_tensor_error(tmp_path, rng):
    tensors = checkpoint(rng)
    path = tmp_path / "model.tpz"
    tp.save(path, tensors)
    for call in (lambda: tp.load(path, names=["encoder.weight", "nope"]),
                 lambda: tp.decompress(tp.compress(tensors), names=["nope"])):
        with pytest.raises(tp.MissingTensorError) as info:
            call()
        assert isinstance(info.value, KeyError) and isinstance(info.value, tp.TensorpressError)
        assert str(info.value) == "no tensor named 'nope' in this container"


def test_keep_and_keep_small(rng):
    tensors = checkpoint(rng)
    out = tp.decompress(tp.compress(tensors, keep=["encoder.weight"], keep_small=0))
    np.testing.assert_array_equal(out["encoder.weight"], tensors["encoder.weight"])
    bias = tensors["encoder.bias"]
    assert not np.array_equal(out["encoder.bias"], bias)  # quantized once keep_small=0
    assert np.abs(out["encoder.bias"] - bias).max() <= np.abs(bias).max() / 127 / 2 * 1.0001


def test_bits_below_eight_use_fewer_levels(rng):
    x = rng.standard_normal((32, 64)).astype(np.float32)
    blob = tp.compress({"w": x}, bits=4, keep_small=0)
    reader = container.Reader(blob)
    rec = reader.record("w")
    assert rec.params["bits"] == 4
    y = tp.decompress(blob)["w"]
    levels = np.unique(np.round(y / (np.abs(x).max(axis=1, keepdims=True) / 7)))
    assert levels.min() >= -7 and levels.max() <= 7


def test_block_quantization(rng):
    x = rng.standard_normal((16, 100)).astype(np.float32)
    y = tp.decompress(tp.compress({"w": x}, block_size=32, keep_small=0))["w"]
    assert np.abs(y - x).max() <= np.abs(x).max() / 127


def test_gap_coding_round_trips_and_checks_its_length(rng):
    for n in (1, 254, 255, 256, 1000, 70000):
        for density in (0.0, 0.003, 0.3, 1.0):
            positions = np.flatnonzero(rng.random(n) < density)
            data = pipeline.encode_gaps(positions, n)
            np.testing.assert_array_equal(pipeline.decode_gaps(data, positions.size, n), positions)
            assert pipeline.decode_gaps(data, positions.size, n + 1) is None
            assert pipeline.decode_gaps(data, positions.size + 1, n) is None


@pytest.mark.parametrize("bad", [
    dict(sparsity=1.0), dict(sparsity=-0.1), dict(sparsity="0.5"), dict(bits=9), dict(bits=1),
    dict(axis=1.5), dict(block_size=0), dict(keep_small=-1),
])
def test_bad_options(bad, rng):
    with pytest.raises((ValueError, TypeError)):
        tp.compress({"w": rng.standard_normal((4, 4)).astype(np.float32)}, **bad)


def test_bad_tensors(rng):
    with pytest.raises(TypeError):
        tp.compress([np.ones(3)])
    with pytest.raises(ValueError, match="NaN"):
        tp.compress({"w": np.full((64, 64), np.nan, np.float32)})
    with pytest.raises(TypeError):
        tp.compress({"w": np.array(["a", "b"])})
    out = tp.decompress(tp.compress({"w": np.full((64, 64), np.nan, np.float32)}, keep=["w"]))
    assert np.isnan(out["w"]).all()


def test_shape_lies_are_caught_before_allocating(rng):
    x = rng.standard_normal((64, 64)).astype(np.float32)
    for sparsity in (0.0, 0.9):
        blob = tp.compress({"w": x}, sparsity=sparsity, keep_small=0)
        reader = container.Reader(blob)
        rec = reader.record("w")
        records = [("w", (2**40, 2**10), rec.dtype, rec.codec, rec.params,
                    {k: reader.part(rec, k) for k in rec.parts})]
        with pytest.raises(CorruptDataError, match="'w'"):
            tp.decompress(container.build(records))
