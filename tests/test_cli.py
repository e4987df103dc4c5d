"""The `tensorpress` command, end to end through a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tensorpress", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.fixture
def checkpoint(tmp_path):
    rng = np.random.default_rng(7)
    tensors = {"layer.weight": rng.standard_normal((128, 64)).astype(np.float32),
               "layer.bias": rng.standard_normal(128).astype(np.float32),
               "ids": np.arange(10)}
    path = tmp_path / "model.npz"
    np.savez(path, **tensors)
    return path, tensors


def test_compress_info_decompress_round_trip(checkpoint, tmp_path):
    path, tensors = checkpoint
    out = tmp_path / "model.tpz"
    result = run("compress", path, "-o", out, "--sparsity", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tensors"] == 3 and summary["output_bytes"] == os.path.getsize(out)
    assert summary["lossy_tensors"] == 1 and 0 < summary["rms_relative_error"] < 1

    info = run("info", out)
    assert info.returncode == 0, info.stderr
    assert "layer.weight" in info.stdout and "int8-" in info.stdout and "lossless" in info.stdout
    info_json = json.loads(run("info", out, "--json").stdout)
    assert [t["name"] for t in info_json["tensors"]] == ["layer.weight", "layer.bias", "ids"]

    back = tmp_path / "back.npz"
    result = run("decompress", out, "-o", back)
    assert result.returncode == 0, result.stderr
    with np.load(back) as restored:
        np.testing.assert_array_equal(restored["layer.bias"], tensors["layer.bias"])
        np.testing.assert_array_equal(restored["ids"], tensors["ids"])
        w = restored["layer.weight"]
        assert w.shape == (128, 64) and (w != 0).sum() <= 128 * 64 // 2


def test_safetensors_in_and_out(checkpoint, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    _, tensors = checkpoint
    src = tmp_path / "model.safetensors"
    st.save_file(tensors, str(src))
    assert run("compress", src, "-o", tmp_path / "m.tpz", "--keep", "layer.weight").returncode == 0
    assert run("decompress", tmp_path / "m.tpz", "-o", tmp_path / "back.safetensors").returncode == 0
    restored = st.load_file(str(tmp_path / "back.safetensors"))
    for name, value in tensors.items():
        np.testing.assert_array_equal(restored[name], value)


def test_exit_codes(checkpoint, tmp_path):
    path, _ = checkpoint
    missing = run("compress", tmp_path / "nope.npz", "-o", tmp_path / "x.tpz")
    assert missing.returncode == 3 and "No such file" in missing.stderr
    bad_option = run("compress", path, "-o", tmp_path / "x.tpz", "--sparsity", "1.5")
    assert bad_option.returncode == 2 and "sparsity" in bad_option.stderr
    assert run("compress", path).returncode == 2  # -o is required
    (tmp_path / "junk.tpz").write_bytes(b"not a tensorpress file at all, just words" * 3)
    damaged = run("info", tmp_path / "junk.tpz")
    assert damaged.returncode == 1 and "damaged" in damaged.stderr
    wrong_ext = run("compress", path, "-o", tmp_path / "x.bin")
    assert wrong_ext.returncode == 2 and ".bin" in wrong_ext.stderr
    assert not (tmp_path / "x.tpz").exists() and not (tmp_path / "x.bin").exists()


def test_help_explains_every_option():
    for command, options in [("compress", ["--sparsity", "--bits", "--keep", "--keep-small", "--json", "--block-size"]),
                             ("decompress", ["--names", "--json"]), ("info", ["--json"]), ("bench", ["--quick", "--only", "--plot"])]:
        result = run(command, "--help")
        assert result.returncode == 0
        for option in options:
            assert option in result.stdout


def test_a_checkpoint_of_empty_tensors_round_trips(tmp_path):
    tensors = {"empty": np.zeros(0, np.float32), "rows": np.zeros((0, 3)), "ids": np.zeros((2, 0), np.int64)}
    np.savez(tmp_path / "e.npz", **tensors)
    result = run("compress", tmp_path / "e.npz", "-o", tmp_path / "e.tpz")
    assert result.returncode == 0 and "0 weights" in result.stdout, result.stderr
    assert json.loads(run("info", tmp_path / "e.tpz", "--json").stdout)["total"]["weights"] == 0
    for out in ("back.npz", "back.safetensors"):
        assert run("decompress", tmp_path / "e.tpz", "-o", tmp_path / out).returncode == 0
        from tensorpress import checkpoints

        back = checkpoints.read(tmp_path / out)
        assert sorted(back) == sorted(tensors)
        for name, value in tensors.items():
            assert back[name].shape == value.shape and back[name].dtype == value.dtype
    np.savez(tmp_path / "none.npz")  # no tensors at all
    assert run("compress", tmp_path / "none.npz", "-o", tmp_path / "none.tpz").returncode == 0


def test_help_lists_the_exit_codes():
    for command in ([], ["compress"], ["decompress"], ["info"]):
        out = run(*command, "--help").stdout
        assert "exit status:" in out and "143" in out
        for code in ("0", "1", "2", "3"):
            assert f"\n  {code}  " in out
