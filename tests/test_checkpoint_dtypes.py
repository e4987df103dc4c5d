""".safetensors in bfloat16 and float16: read and written with their dtype and bits, stored
bit-exactly by the lossless path, quantized directly (no float32 copy) to the same int8 as their
float32 conversion; and tensorpress's own .safetensors header reader on forged headers."""

import contextlib
import json
import os
import threading

import ml_dtypes
import numpy as np
import pytest

import tensorpress as tp
from tensorpress import checkpoints, pipeline
from test_cli_hostile import one_error_line, run_cli, safetensors_bytes

BF16 = ml_dtypes.bfloat16
HALVES = [BF16, np.float16]


def every_bit_pattern(dtype):
    """All 65536 16-bit patterns (NaN payloads, signed zeros, subnormals, infinities) as `dtype`."""
    return np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(dtype).reshape(256, 256)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", HALVES)
def test_half_safetensors_round_trip_bit_exactly(tmp_path, dtype):
    x = every_bit_pattern(dtype)
    path = tmp_path / "m.safetensors"
    checkpoints.write(path, {"x": x, "scalar": np.array(1.5, dtype)}, {"format": "pt"})
    got = checkpoints.read(path)
    assert got.info == {"metadata": {"format": "pt"}}
    assert same_bits(got["x"], x) and same_bits(got["scalar"], np.array(1.5, dtype))
    got["x"][0, 0] = 1  # a private map: the array is writable, the file is not changed
    assert same_bits(checkpoints.read(path)["x"], x)
    # stored losslessly in a .tpz (small tensors, keep=): the same bits back
    back = tp.decompress(tp.compress({"x": x}, keep=["x"]))["x"]
    assert same_bits(back, x)


def test_torch_reads_our_bfloat16_files_and_we_read_its():
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    import tempfile

    x = every_bit_pattern(BF16)[:4]
    with tempfile.TemporaryDirectory() as d:
        checkpoints.write(f"{d}/ours.safetensors", {"x": x})
        theirs = st_torch.load_file(f"{d}/ours.safetensors")["x"]
        assert theirs.dtype == torch.bfloat16
        assert theirs.view(torch.int16).numpy().tobytes() == x.tobytes()
        st_torch.save_file({"y": theirs, "z": torch.ones(3, dtype=torch.float16)}, f"{d}/theirs.safetensors")
        got = checkpoints.read(f"{d}/theirs.safetensors")
        assert same_bits(got["y"], x) and same_bits(got["z"], np.ones(3, np.float16))


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("options", [{}, {"sparsity": 0.6}, {"block_size": 32, "bits": 4}])
def test_half_tensors_quantize_directly_to_the_float32_result(dtype, options, monkeypatch):
    rng = np.random.default_rng(3)
    half = {"w": rng.standard_normal((96, 80)).astype(dtype), "v": rng.standard_normal(3000).astype(dtype)}
    seen = []
    for name in ("quantize_int8", "prune_"):
        real = getattr(pipeline, name)
        monkeypatch.setattr(pipeline, name, lambda x, *a, _real=real, **k: seen.append(x.dtype) or _real(x, *a, **k))
    got = tp.decompress(tp.compress(half, **options))
    assert seen and all(d == np.dtype(dtype) for d in seen)  # the kernels were given the half tensor
    monkeypatch.undo()
    expected = tp.decompress(tp.compress({k: v.astype(np.float32) for k, v in half.items()}, **options))
    for name in half:
        assert got[name].dtype == np.float32 and same_bits(got[name], expected[name]), name


def test_the_cli_quantizes_half_tensors_and_gives_back_their_dtype(tmp_path):
    rng = np.random.default_rng(4)
    tensors = {"b": rng.standard_normal((64, 32)).astype(BF16), "h": rng.standard_normal((32, 64)).astype(np.float16)}
    checkpoints.write(tmp_path / "m.safetensors", tensors)
    assert run_cli("compress", tmp_path / "m.safetensors", "-o", tmp_path / "m.tpz", "--sparsity", "0.5")[0] == 0
    info = json.loads(run_cli("info", tmp_path / "m.tpz", "--json")[1])
    assert {t["codec"][:4] for t in info["tensors"]} == {"int8"}
    assert run_cli("decompress", tmp_path / "m.tpz", "-o", tmp_path / "back.safetensors")[0] == 0
    back, float32 = checkpoints.read(tmp_path / "back.safetensors"), tp.load(tmp_path / "m.tpz")
    for name, x in tensors.items():
        assert same_bits(back[name], float32[name].astype(x.dtype))
        assert np.count_nonzero(back[name]) <= x.size // 2


def test_a_file_replaced_after_its_header_was_read_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoints.write(path, {"w": np.ones(4, BF16)})
    lazy = checkpoints.read(path)
    checkpoints.write(path, {"w": np.zeros(4, BF16)})
    with pytest.raises(tp.CorruptDataError, match="changed"):
        lazy["w"]
    assert same_bits(checkpoints.read(path)["w"], np.zeros(4, BF16))


def entry(dtype="BF16", shape=(2,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


FORGED_HEADERS = {  # what: (file bytes, what the error says)
    "gap between tensors": (safetensors_bytes({"a": entry(), "b": entry(offsets=(8, 12))}, bytes(12)), "starts at byte 8"),
    "overlapping tensors": (safetensors_bytes({"a": entry(), "b": entry(offsets=(2, 6))}, bytes(6)), "starts at byte 2"),
    "bytes after the data": (safetensors_bytes({"a": entry()}, bytes(9)), "hold 4 bytes"),
    "size disagrees with shape": (safetensors_bytes({"a": entry(shape=(3,))}, bytes(4)), "6 bytes"),
    "negative offset": (safetensors_bytes({"a": entry(offsets=(-4, 0))}, bytes(4)), "offsets"),
    "offsets not a pair": (safetensors_bytes({"a": entry(offsets=(0, 2, 4))}, bytes(4)), "offsets"),
    "shape of floats": (safetensors_bytes({"a": entry(shape=(2.0,))}, bytes(4)), "shape"),
    "shape of booleans": (safetensors_bytes({"a": entry(shape=(True, True))}, bytes(4)), "shape"),
    "entry not an object": (safetensors_bytes({"a": [1, 2]}, bytes(4)), "not an object"),
    "header a list": (safetensors_bytes([1, 2]), "not a JSON object"),
    "metadata not strings": (safetensors_bytes({"__metadata__": {"format": 1}, "a": entry()}, bytes(4)), "__metadata__"),
    "duplicate name": (b'\x50\x00\x00\x00\x00\x00\x00\x00' + b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}, "a": {}}'.ljust(80)
                       + bytes(4), "twice"),
    "NaN in the header": (safetensors_bytes({"a": entry()}).replace(b"[2]", b"[NaN]") + bytes(4), "NaN"),
    "no header size": (b"\x01\x00", "shorter"),
}


@pytest.mark.parametrize("what", FORGED_HEADERS)
def test_forged_safetensors_headers_fail_with_one_line(tmp_path, what):
    data, says = FORGED_HEADERS[what]
    path = tmp_path / "in.safetensors"
    path.write_bytes(data)
    status, _, err = run_cli("compress", path, "-o", tmp_path / "out.tpz")
    assert status == 1 and one_error_line(err, path) and says in err, (what, err)
    assert not (tmp_path / "out.tpz").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["in.safetensors", "model.safetensors.index.json"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)

    def unblock():  # had the reader opened the FIFO and waited, this writer would release it
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(5.0, unblock)
    timer.start()
    try:
        status, _, err = run_cli("compress", fifo, "-o", tmp_path / "out.tpz")
    finally:
        timer.cancel()
    assert status == 1 and one_error_line(err, fifo) and "not a regular file" in err, err
