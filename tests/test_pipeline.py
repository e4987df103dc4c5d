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


@pytest.mark.parametrize("x", [np.float32(2.5), np.array(-1.25), np.array(7, np.int64), np.array(True)])
def test_zero_dimensional_tensors_stay_zero_dimensional(x, tmp_path):
    for options in ({}, {"keep_small": 0}):  # lossless, and quantized when x is a float
        out = tp.decompress(tp.compress({"s": x}, **options))["s"]
        assert out.shape == () and out == x
    tp.save(tmp_path / "s.tpz", {"s": x})
    assert tp.load(tmp_path / "s.tpz")["s"].shape == ()


@pytest.mark.parametrize("threads, error", [
    (float("nan"), tp.DTypeError), (2.0, tp.DTypeError), (True, tp.DTypeError),
    (0, tp.InvalidArgumentError), (-3, tp.InvalidArgumentError), (1025, tp.InvalidArgumentError),
])
def test_threads_is_none_or_a_bounded_int(threads, error, rng):
    with pytest.raises(error, match="threads"):
        tp.compress({"w": rng.standard_normal(3).astype(np.float32)}, threads=threads)
    assert tp.decompress(tp.compress({"w": np.ones(3)}, threads=np.int64(3)))["w"].tolist() == [1, 1, 1]


def test_load_takes_paths_and_decompress_bytes(tmp_path):
    path = tmp_path / "m.tpz"
    tp.save(path, {"w": np.arange(4.0)})
    for p in (path, str(path), bytes(path)):  # a bytes path, as open() takes it
        assert tp.load(p)["w"].tolist() == [0, 1, 2, 3]
    with pytest.raises(tp.DTypeError, match="load"):
        tp.decompress(str(path))
    with pytest.raises(tp.DTypeError, match="path"):
        tp.load(3)
    with pytest.raises(tp.DTypeError, match="names"):
        tp.load(path, names="w")
    with pytest.raises(tp.DTypeError, match="strings"):
        tp.load(path, names=[1])


def test_matrix_input_and_masked_arrays():
    m = np.matrix(np.arange(6.0).reshape(2, 3))
    assert tp.decompress(tp.compress({"m": m}))["m"].tolist() == m.tolist()
    with pytest.raises(tp.DTypeError, match="masked"):
        tp.compress({"m": np.ma.masked_array(np.ones(3), mask=[1, 0, 0])})
    with pytest.raises(tp.InvalidArgumentError, match="UTF-8"):
        tp.compress({"\ud800": np.ones(3)})


def forge_record(rng, **changes):
    """compress()'s one record with fields replaced; `parts` values are bytes."""
    blob = tp.compress({"w": rng.standard_normal((16, 64)).astype(np.float32)}, keep_small=0)
    reader = container.Reader(blob)
    rec = reader.record("w")
    fields = dict(shape=rec.shape, dtype=rec.dtype, codec=rec.codec, params=dict(rec.params),
                  parts={k: reader.part(rec, k) for k in rec.parts})
    for key, value in changes.items():
        if key in fields:
            fields[key] = value
        else:
            fields["params"][key] = value
    return container.build([("w", fields["shape"], fields["dtype"], fields["codec"], fields["params"],
                             fields["parts"])])


@pytest.mark.parametrize("changes, message", [
    (dict(scale_shape=[1] * 65), "invalid scale shape"),
    (dict(scale_shape=[-16]), "invalid scale shape"),
    (dict(granularity="block", group=2**63), "invalid group"),
    (dict(group=1.5), "invalid group"),
    (dict(bits=True), "invalid bits"),
    (dict(dtype="int8"), "decode to float32"),
    (dict(codec="int8-sparse"), "invalid nonzero count"),
    (dict(error={"rms": float("nan")}), "not valid JSON"),  # the writer's allow_nan=False
    (dict(error={"rms": "x"}), "error statistics"),
    (dict(source_dtype="O"), "source dtype"),
    (dict(codec="lossless", huffman=1), "must be true or false"),
])
def test_forged_parameters_raise_corrupt_data(changes, message, rng):
    try:
        blob = forge_record(rng, **changes)
    except ValueError as exc:  # json.dumps refuses NaN: the file cannot even be written
        assert "JSON" in str(exc) and message == "not valid JSON"
        return
    with pytest.raises(CorruptDataError, match=message):
        tp.decompress(blob)


def test_huffman_parts_of_the_wrong_symbol_type_or_size(rng):
    for stream in (tp.huffman_encode(b"\x00" * 1024),                      # bytes: decodes to bytes
                   tp.huffman_encode(np.zeros(1024, np.int8)),
                   tp.huffman_encode(np.zeros((32, 32), np.uint8))):    # 2-D
        blob = tp.decompress(forge_record(rng, parts={"values": stream, "scales": bytes(64)}))
        assert blob["w"].shape == (16, 64) and not blob["w"].any()     # 1024 zeros: a valid record
    with pytest.raises(CorruptDataError, match="declares 1025 symbols, more than the 1024"):
        tp.decompress(forge_record(rng, parts={"values": tp.huffman_encode(b"\x00" * 1025), "scales": bytes(64)}))
    with pytest.raises(CorruptDataError, match="holds 60 bytes, expected 64"):
        tp.decompress(forge_record(rng, parts={"values": tp.huffman_encode(b"\x00" * 1024), "scales": bytes(60)}))


def test_a_small_record_with_a_huge_valid_stream_is_refused_before_decoding():
    """The audit's bomb: [10] int64 whose part is a valid stream of 2 GiB in 1.3 KB."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
    try:
        import forged_tpz
    finally:
        sys.path.pop(0)
    stream = forged_tpz.rle_bomb(1 << 31, 24, good_crc=True)
    blob = container.build([("x", (10,), "int64", "lossless", {"huffman": True}, {"data": stream})])
    with pytest.raises(CorruptDataError, match="declares 2147483648 symbols, more than the 80 expected"):
        tp.decompress(blob)
