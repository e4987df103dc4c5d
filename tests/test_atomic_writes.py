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


def test_an_npz_write_interrupted_with_a_member_open_raises_the_interruption(tmp_path, monkeypatch):
    """A signal (SIGTERM in the CLI, Ctrl-C) can land after the archive opened a member for
    writing and before the member's `with` took it over: the member then stays open, and closing
    the archive would raise its own ValueError over the interruption (the CLI then exited 1 with
    a traceback instead of 143)."""
    import zipfile

    path = tmp_path / "m.npz"
    checkpoints.write(path, TENSORS)
    before = path.read_bytes()
    open_to_write = zipfile.ZipFile._open_to_write
    held = []  # as the interrupted frame holds it: the member stays open

    def interrupted(self, *args, **kwargs):
        held.append(open_to_write(self, *args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "_open_to_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.write(path, {"other": np.zeros(3)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def odd_tensors():
    """Every dtype both formats hold, with the layouts that trip hand-written readers."""
    rng = np.random.default_rng(5)
    return {"f64": rng.standard_normal((3, 2)), "f16": rng.standard_normal(5).astype(np.float16),
            "i8": np.arange(-4, 4, dtype=np.int8), "u16": np.arange(6, dtype=np.uint16).reshape(2, 3),
            "i64": np.arange(5), "flags": np.array([True, False, True]), "scalar": np.array(2.5, np.float32),
            "empty": np.zeros((0, 4), np.float32), "big_endian": np.arange(4, dtype=">f4"),
            "fortran": np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
            "file": np.ones(2, np.float32), "allow_pickle": np.zeros(2, np.int32)}  # np.savez's own argument names


@pytest.mark.parametrize("name", ["m.npz", "m.safetensors"])
def test_every_dtype_and_layout_round_trips(tmp_path, name):
    if name.endswith(".safetensors"):
        pytest.importorskip("safetensors")
    tensors = odd_tensors()
    checkpoints.write(tmp_path / name, tensors)
    got = checkpoints.read(tmp_path / name)
    assert sorted(got) == sorted(tensors)
    for key, value in tensors.items():
        assert got[key].shape == value.shape and got[key].dtype.newbyteorder("=") == value.dtype.newbyteorder("="), key
        np.testing.assert_array_equal(got[key], value)


def test_safetensors_files_are_read_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = odd_tensors()
    checkpoints.write(tmp_path / "m.safetensors", tensors)
    got = st.load_file(str(tmp_path / "m.safetensors"))
    for key, value in tensors.items():
        np.testing.assert_array_equal(got[key], value)


def test_npz_files_of_numpy_are_read(tmp_path):
    tensors = {k: v for k, v in odd_tensors().items() if k not in ("file", "allow_pickle")}
    np.savez(tmp_path / "plain.npz", **tensors)
    np.savez_compressed(tmp_path / "compressed.npz", **tensors)
    for path in (tmp_path / "plain.npz", tmp_path / "compressed.npz"):
        got = checkpoints.read(path)
        for key, value in tensors.items():
            np.testing.assert_array_equal(got[key], value)
        assert got["fortran"].flags.f_contiguous and got["big_endian"].dtype == np.dtype(">f4")
