"""Every file the package writes (.tpz, .npz, .safetensors) is replaced atomically and gets the
permissions a plain open() would give it: the umask's for a new file, the old file's when one
is replaced."""

import os
import stat

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import checkpoints

TENSORS = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float32)}


def write_tpz(path):
    tp.save(path, TENSORS)


def write_npz(path):
    checkpoints.write(path, TENSORS)


def write_safetensors(path):
    pytest.importorskip("safetensors")
    checkpoints.write(path, TENSORS)


WRITERS = [("m.tpz", write_tpz), ("m.npz", write_npz), ("m.safetensors", write_safetensors)]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("name, write", WRITERS)
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask_mode(tmp_path, umask, name, write, mask, mode):
    umask(mask)
    path = tmp_path / name
    write(path)
    assert mode_of(path) == mode
    assert os.listdir(tmp_path) == [name]
    got = checkpoints.read(path)
    assert sorted(got) == sorted(TENSORS)
    for key, value in TENSORS.items():
        np.testing.assert_array_equal(got[key], value)


@pytest.mark.parametrize("name, write", WRITERS)
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, name, write):
    umask(0o022)
    path = tmp_path / name
    write(path)
    os.chmod(path, 0o640)
    write(path)
    assert mode_of(path) == 0o640
    assert os.listdir(tmp_path) == [name]


def test_a_failed_npz_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    checkpoints.write(path, TENSORS)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full_disk)
    with pytest.raises(OSError, match="No space"):
        checkpoints.write(path, {"other": np.zeros(3)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
