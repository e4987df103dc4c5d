"""Lossless checkpoints: compress(lossless=True), save / load and `tensorpress compress
--lossless` keep every tensor bit for bit, float tensors as "float" records (the float codec's
stream, docs/format.md), and the lossy pipeline stores what it keeps losslessly the same way.
Forged "float" records are refused before anything is allocated."""

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import tensorpress as tp
from tensorpress import checkpoints, container
from tensorpress.errors import CorruptDataError, InvalidArgumentError

BF16 = np.dtype(ml_dtypes.bfloat16)


def checkpoint(rng):
    w = rng.standard_normal((300, 200)) * 0.02
    # a quiet NaN with a payload, a signalling NaN, -0.0, the smallest subnormal, +-inf
    specials = np.array([0x7FC01234, 0xFF800001, 0x80000000, 0x00000001, 0x7F800000, 0xFF800000],
                        np.uint32).view(np.float32)
    return {
        "bf16.weight": w.astype(BF16),
        "fp16.weight": w.astype(np.float16),
        "f32.weight": w.astype(np.float32),
        "f64.bias": rng.standard_normal(300),
        "specials": specials,
        "ids": np.arange(512, dtype=np.int64),
        "mask": rng.random(100) < 0.5,
        "scalar": np.array(1.5, BF16),
        "empty": np.zeros((0, 7), np.float16),
    }


def assert_identical(back, tensors):
    assert sorted(back) == sorted(tensors)
    for name, x in tensors.items():
        y = back[name]
        assert y.dtype == x.dtype and y.shape == x.shape, name
        assert y.tobytes() == x.tobytes(), name


def test_lossless_round_trip_is_bit_exact_and_floats_use_the_float_codec(rng):
    tensors = checkpoint(rng)
    blob = tp.compress(tensors, lossless=True, sparsity=0.9, bits=4)  # lossy options change nothing
    assert_identical(tp.decompress(blob), tensors)
    codecs = {r.name: r.codec for r in container.Reader(blob).records}
    assert codecs["bf16.weight"] == codecs["f32.weight"] == codecs["fp16.weight"] == "float"
    assert codecs["ids"] == codecs["mask"] == "lossless"
    sizes = {r.name: r.stored_bytes for r in container.Reader(blob).records}
    assert sizes["bf16.weight"] < 0.7 * tensors["bf16.weight"].nbytes


def test_save_and_load_lossless(tmp_path, rng):
    tensors = checkpoint(rng)
    tp.save(tmp_path / "m.tpz", tensors, lossless=True)
    assert_identical(tp.load(tmp_path / "m.tpz"), tensors)
    assert_identical(tp.load(tmp_path / "m.tpz", names=["specials"]), {"specials": tensors["specials"]})


def test_the_lossy_pipeline_keeps_small_tensors_with_the_float_codec(rng):
    tensors = {"w": rng.standard_normal((64, 64)).astype(np.float32),
               "b": (rng.standard_normal(2000) * 0.01).astype(BF16)}
    blob = tp.compress(tensors, keep_small=4096)
    codecs = {r.name: r.codec for r in container.Reader(blob).records}
    assert codecs == {"w": "int8-dense", "b": "float"}
    assert tp.decompress(blob)["b"].tobytes() == tensors["b"].tobytes()


@pytest.mark.parametrize("bad", [1, "yes", None, np.bool_(True)])
def test_lossless_must_be_a_bool(bad, rng):
    with pytest.raises(InvalidArgumentError, match="lossless must be True or False"):
        tp.compress({"w": np.zeros(4, np.float32)}, lossless=bad)


def forge(codec="float", dtype="bfloat16", shape=(100,), params=None, data=None):
    x = (np.arange(100) * 0.01).astype(BF16)
    data = tp.float_encode(x) if data is None else data
    return container.build([("w", shape, dtype, codec, params or {}, {"data": data})])


@pytest.mark.parametrize("kwargs, message", [
    (dict(dtype="float32"), "holds bfloat16"),            # stream and record disagree
    (dict(shape=(10, 10)), r"holds bfloat16 \(100,\)"),
    (dict(shape=(99,)), "declares 100 elements, more than the 99 expected"),
    (dict(dtype="int8"), "float records hold"),
    (dict(params={"huffman": True}), "no parameters"),
    (dict(data=tp.huffman_encode(np.zeros(200, np.uint8))), "part 'data'"),  # another format
    (dict(data=b"TPFC" + bytes(30)), "part 'data'"),
])
def test_forged_float_records_raise_corrupt_data(kwargs, message):
    assert tp.decompress(forge())["w"].tobytes() == (np.arange(100) * 0.01).astype(BF16).tobytes()
    with pytest.raises(CorruptDataError, match=message):
        tp.decompress(forge(**kwargs))


def test_a_float_record_claiming_billions_is_refused_before_allocating():
    """A few hundred bytes declaring 2^40 elements in single-symbol blocks with wrong checksums:
    refused from the stream's block table, under the record's own bound too."""
    import struct
    import zlib

    count, chunk_log2 = 1 << 32, 20
    n_blocks = (count >> chunk_log2) * 2
    block = b"\x01" + bytes(4) + b"\x07"
    head = b"TPFC" + bytes([1, 3, 1, chunk_log2]) + struct.pack("<QQ", count, count)
    head += struct.pack(f"<{n_blocks}I", *([len(block)] * n_blocks))
    stream = head + struct.pack("<I", zlib.crc32(head)) + block * n_blocks
    with pytest.raises(CorruptDataError, match="single-symbol"):
        tp.decompress(forge(shape=(count,), data=stream))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tensorpress", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_lossless_round_trips_a_bf16_safetensors_file_byte_for_byte(tmp_path, rng):
    tensors = {k: v for k, v in checkpoint(rng).items() if k not in ("mask",)}
    src = tmp_path / "model.safetensors"
    checkpoints.write(src, tensors)
    done = run_cli("compress", src, "-o", tmp_path / "m.tpz", "--lossless", "--json")
    assert done.returncode == 0, done.stderr
    done = run_cli("decompress", tmp_path / "m.tpz", "-o", tmp_path / "back.safetensors")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back.safetensors").read_bytes() == src.read_bytes()
    assert_identical(dict(checkpoints.read(tmp_path / "back.safetensors")), tensors)
