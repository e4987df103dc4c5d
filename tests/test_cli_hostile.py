"""The `tensorpress` command on damaged and forged input: every run ends with a documented exit
status and, when it fails, one line on stderr that names the file; never a traceback.

The commands run in-process through cli.main (a subprocess costs a second of imports each), a
few hundred damaged files per run, from a fixed seed so that a failure reproduces."""

import contextlib
import io
import json
import os
import random
import traceback
import zlib

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import checkpoints, cli

SEED = 20261203


def run_cli(*argv):
    """(exit status, stdout, stderr) of cli.main(argv); an exception escaping main() comes back
    as status None and its traceback as stderr. The streams are strict UTF-8, as stdout is on a
    UTF-8 terminal: text that cannot be encoded raises instead of passing unnoticed."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict") for _ in range(2))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
        except BaseException:  # noqa: B036 - the point is to see whatever escapes
            return None, "", traceback.format_exc()
    return status, text_of(out), text_of(err)


def text_of(stream):
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8")


def tensors():
    rng = np.random.default_rng(3)
    return {"layer.weight": rng.standard_normal((64, 40)).astype(np.float32),
            "layer.bias": rng.standard_normal(40).astype(np.float32),
            "ids": np.arange(7), "half": rng.standard_normal((40, 30)).astype(np.float16)}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The bytes of one good file per input format."""
    d = tmp_path_factory.mktemp("sources")
    t = tensors()
    np.savez(d / "a.npz", **t)
    np.savez_compressed(d / "c.npz", **t)
    checkpoints.write(d / "a.safetensors", t)
    tp.save(d / "a.tpz", t, sparsity=0.5)
    return {name: (d / name).read_bytes() for name in ("a.npz", "c.npz", "a.safetensors", "a.tpz")}


def damage(data, rnd):
    """(kind, bytes): a truncation, a few flipped bits, or random bytes."""
    kind = rnd.choice(["truncate", "flip", "random"])
    if kind == "truncate":
        return kind, data[:rnd.randrange(len(data))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rnd.randint(1, 6)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        return kind, bytes(b)
    return kind, rnd.randbytes(rnd.randrange(300))


# --- .tpz files with a forged index: valid checksum, lying contents ------------------------

def tpz_index(data):
    offset = int.from_bytes(data[-24:-16], "little")
    size = int.from_bytes(data[-16:-8], "little")
    return offset, json.loads(data[offset:offset + size])


def with_index(data, index):
    offset, _ = tpz_index(data)
    body = json.dumps(index).encode()  # ensure_ascii: a lone surrogate is written as \\ud800
    return (data[:offset] + body + offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
            + zlib.crc32(body).to_bytes(4, "little") + b"TPZ!")


ODD_VALUES = [None, -1, 0, 1, 2**31, 2**63, 1e308, -0.5, True, "", "x", "\ud800", "O", "float32",
              [], [1, 2], [2**61, 2**61], [-1], {}, {"rms": "x"}]


def forge(data, rnd):
    """A copy of a .tpz file whose index has one field replaced by an odd value."""
    _, index = tpz_index(data)
    record = rnd.choice(index["records"])
    target = rnd.choice([record, record["params"], record.get("params", {}).get("error") or record,
                         rnd.choice(list(record["parts"].values()))])
    target[rnd.choice(list(target) + ["error", "source_dtype"])] = rnd.choice(ODD_VALUES)
    return with_index(data, index)


def report(failures):
    """The distinct ways the runs went wrong (a traceback's last line), then the first in full."""
    kinds = sorted({f.strip().splitlines()[-1] for f in failures})
    return f"{len(failures)} bad runs, {len(kinds)} kinds:\n" + "\n".join(kinds) + "\n\nfirst:\n" + failures[0]


def check(status, stderr, path, allowed, failures, what):
    if status not in allowed or (status != 0 and not one_error_line(stderr, path)):
        failures.append(f"{what}: exit {status}, expected {sorted(allowed)}\n{stderr}")


def one_error_line(stderr, path):
    lines = stderr.splitlines()
    return (len(lines) == 1 and lines[0].startswith("tensorpress ") and ": error: " in lines[0]
            and path.name in lines[0] and "Traceback" not in stderr)


def test_damaged_inputs_fail_with_one_line_and_exit_1(sources, tmp_path):
    rnd = random.Random(SEED)
    failures, counts = [], {}
    for source, data in sources.items():
        ext = source[source.index("."):]
        for i in range(100):
            kind, bad = damage(data, rnd)
            path = tmp_path / f"bad{ext}"
            path.write_bytes(bad)
            # a flipped bit may leave a valid file (a changed weight): then success is right
            allowed = {0, 1} if kind == "flip" else {1}
            commands = [["compress", path, "-o", tmp_path / "out.tpz"]]
            if ext == ".tpz":
                # info reads the index only: damaged parts pass it, the other commands fail
                commands += [["info", path], ["decompress", path, "-o", tmp_path / "out.npz"]]
            for argv in commands:
                status, _, err = run_cli(*argv)
                check(status, err, path, allowed, failures, f"{source} {kind} #{i} {argv[0]}")
                counts[status] = counts.get(status, 0) + 1
    assert not failures, report(failures)
    assert counts.get(1, 0) > 300, counts  # the damage was mostly found, not mostly harmless


def test_forged_tpz_indexes_fail_cleanly(sources, tmp_path):
    rnd = random.Random(SEED + 1)
    failures = []
    path = tmp_path / "forged.tpz"
    for i in range(150):
        path.write_bytes(forge(sources["a.tpz"], rnd))
        for argv in (["info", path], ["info", path, "--json"], ["decompress", path, "-o", tmp_path / "o.npz"],
                     ["decompress", path, "-o", tmp_path / "o.safetensors"]):
            status, _, err = run_cli(*argv)
            check(status, err, path, {0, 1}, failures, f"forgery #{i} {' '.join(map(str, argv[:1] + argv[2:]))}")
    assert not failures, report(failures)


def test_info_shows_records_without_error_statistics(sources, tmp_path):
    _, index = tpz_index(sources["a.tpz"])
    lossy = [r for r in index["records"] if "error" in r["params"]]
    assert lossy
    for record in lossy:
        del record["params"]["error"]["rms"]
    path = tmp_path / "no-rms.tpz"
    path.write_bytes(with_index(sources["a.tpz"], index))
    status, out, err = run_cli("info", path)
    assert status == 0, err
    assert "layer.weight" in out


def test_a_name_with_a_lone_surrogate_is_refused_or_printed_escaped(sources, tmp_path):
    _, index = tpz_index(sources["a.tpz"])
    index["records"][0]["name"] = "bad\ud800name"
    path = tmp_path / "surrogate.tpz"
    path.write_bytes(with_index(sources["a.tpz"], index))
    status, out, err = run_cli("info", path)
    # JSON can spell a lone surrogate; the reader may call that damage, or the table escapes it
    assert (status == 0 and "bad\\ud800name" in out) or (status == 1 and one_error_line(err, path)), err
    for output in ("o.npz", "o.safetensors"):  # both store names as UTF-8, which has no such name
        status, _, err = run_cli("decompress", path, "-o", tmp_path / output)
        assert status == 1 and one_error_line(err, path), err
        assert not (tmp_path / output).exists()


def test_output_cannot_fail_on_unprintable_text(tmp_path):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    cli._say("bad\ud800name", file=stream)
    assert text_of(stream) == "bad\\ud800name\n"
    assert cli._name("a\nb") == "'a\\nb'" and cli._name("layer.0.weight") == "layer.0.weight"
    # a file name that is not UTF-8 reaches Python as lone surrogates (\udcff)
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xff.tpz"))
    tp.save(path, {"w": np.ones(3, np.float32)})
    status, out, err = run_cli("info", path)
    assert status == 0 and "\\udcff.tpz" in out, err
    status, _, err = run_cli("compress", path + ".missing.npz", "-o", tmp_path / "x.tpz")
    assert status == 3 and "\\udcff.tpz" in err, err


def npz_bytes(members):
    """A zip of raw members, as np.savez lays it out."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def npy_forged(header, data):
    """A .npy member with a header of our choosing."""
    text = header.encode().ljust(117) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


FORGED_NPZ = {
    # a header asking for terabytes over 40 bytes of data: refused before allocating
    "huge shape": npz_bytes({"w.npy": npy_forged("{'descr': '<f4', 'fortran_order': False, 'shape': (10**6, 10**6), }", bytes(40))}),
    "negative shape": npz_bytes({"w.npy": npy_forged("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -5), }", bytes(40))}),
    "bad header": npz_bytes({"w.npy": npy_forged("{'descr': 3}", b"")}),
    "bad descr": npz_bytes({"w.npy": npy_forged("{'descr': [('a', 7)], 'fortran_order': False, 'shape': (1,), }", b"")}),
"short data": npz_bytes({"w.npy": npy_bytes(np.ones(10, np.float32))[:-4]}),
    "pickled objects": npz_bytes({"w.npy": npy_bytes(np.array([{"a": 1}], dtype=object))}),
    "not an array": npz_bytes({"w.npy": npy_bytes(np.ones(3)), "readme.txt": b"hello"}),
    "big-endian": npz_bytes({"w.npy": npy_bytes(np.ones(3, ">f4"))}),
    "complex": npz_bytes({"w.npy": npy_bytes(np.ones(3, np.complex64))}),
}


def safetensors_bytes(header, data=b""):
    body = json.dumps(header).encode()
    return len(body).to_bytes(8, "little") + body + data


FORGED_SAFETENSORS = {
    "huge shape": safetensors_bytes({"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, bytes(8)),
    "offsets past the end": safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}),
    "float8": safetensors_bytes({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, bytes(2)),
    "unknown dtype": safetensors_bytes({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)),
    "header size too big": (2**62).to_bytes(8, "little") + b"{}",
    "not JSON": b"\x08\x00\x00\x00\x00\x00\x00\x00{{{{{{{{",
}


@pytest.mark.parametrize("what, data", list(FORGED_NPZ.items()) + [(k + " (safetensors)", v) for k, v in FORGED_SAFETENSORS.items()])
def test_forged_checkpoints_fail_cleanly(tmp_path, what, data):
    path = tmp_path / ("in.safetensors" if "safetensors" in what else "in.npz")
    path.write_bytes(data)
    status, _, err = run_cli("compress", path, "-o", tmp_path / "out.tpz")
    assert status == 1 and one_error_line(err, path), err
    assert not (tmp_path / "out.tpz").exists()


def test_object_arrays_are_never_unpickled(tmp_path, monkeypatch):
    import pickle

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    path = tmp_path / "objects.npz"
    path.write_bytes(FORGED_NPZ["pickled objects"])
    with pytest.raises(tp.CorruptDataError, match="objects"):
        checkpoints.read(path)


def test_a_directory_or_missing_file_is_an_os_error(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    for name in ("dir.npz", "missing.npz", "missing.safetensors", "missing.tpz"):
        status, _, err = run_cli("compress", tmp_path / name, "-o", tmp_path / "out.tpz")
        assert status == 3 and one_error_line(err, tmp_path / name), err
