"""The .tpz container: round trips, lazy reads, atomic writes, and damaged files."""

import json
import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorpress import container
from tensorpress.errors import CorruptDataError, DTypeError, InvalidArgumentError


def sample_records():
    return [
        ("a", (2, 3), "float32", "raw", {"k": 1}, {"data": np.arange(6, dtype=np.float32).tobytes()}),
        ("b", (0,), "int8", "raw", {}, {"data": b""}),
        ("c", (4,), "float16", "custom", {"x": [1, 2]}, {"one": b"\x01\x02", "two": b"xyz"}),
    ]


def test_round_trip_in_memory():
    blob = container.build(sample_records())
    reader = container.Reader(blob)
    assert reader.names() == ["a", "b", "c"]
    a = reader.record("a")
    assert (a.shape, a.dtype, a.codec, a.params) == ((2, 3), "float32", "raw", {"k": 1})
    assert np.frombuffer(reader.part(a, "data"), np.float32).tolist() == list(range(6))
    assert reader.part(reader.record("b"), "data") == b""
    c = reader.record("c")
    assert reader.part(c, "one") == b"\x01\x02" and reader.part(c, "two") == b"xyz"
    with pytest.raises(KeyError, match="no tensor named 'zz'"):
        reader.record("zz")


def test_round_trip_through_a_file_reads_only_what_is_asked(tmp_path):
    path = tmp_path / "m.tpz"
    container.write_file(path, sample_records())
    with container.Reader(path) as reader:
        assert reader.part(reader.record("c"), "two") == b"xyz"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_writer_rejects_duplicate_and_empty_names():
    with pytest.raises(InvalidArgumentError, match="two records"):
        container.build([("x", (), "float32", "raw", {}, {}), ("x", (), "float32", "raw", {}, {})])
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        container.build([("", (), "float32", "raw", {}, {})])


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.tpz"
    container.write_file(path, sample_records())
    before = path.read_bytes()

    def records():
        yield sample_records()[0]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        container.write_file(path, records())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.tpz"]


def test_killed_writer_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "m.tpz"
    container.write_file(path, sample_records())
    before = path.read_bytes()
    # A writer killed mid-file (SIGKILL: no cleanup runs) must not damage the existing file.
    code = textwrap.dedent(f"""
        import os, signal
        from tensorpress import container
        def records():
            yield ("big", (1 << 20,), "uint8", "raw", {{}}, {{"data": bytes(1 << 20)}})
            os.kill(os.getpid(), signal.SIGKILL)
        container.write_file({str(path)!r}, records())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert result.returncode != 0
    assert path.read_bytes() == before
    container.Reader(path).close()


def corrupt(blob, offset, value):
    data = bytearray(blob)
    data[offset] ^= value
    return bytes(data)


def test_every_truncation_raises_corrupt_data():
    blob = container.build(sample_records())
    for cut in range(len(blob)):
        with pytest.raises(CorruptDataError):
            reader = container.Reader(blob[:cut])
            for r in reader.records:
                for part in r.parts:
                    reader.part(r, part)


def test_every_single_bit_flip_is_detected():
    blob = container.build(sample_records())
    for offset in range(len(blob)):
        for bit in (1, 0x80):
            damaged = corrupt(blob, offset, bit)
            with pytest.raises(CorruptDataError):
                reader = container.Reader(damaged)
                for r in reader.records:
                    for part in r.parts:
                        reader.part(r, part)


def test_unknown_version_says_so():
    blob = bytearray(container.build(sample_records()))
    blob[8:12] = (7).to_bytes(4, "little")
    with pytest.raises(CorruptDataError, match="version 7"):
        container.Reader(bytes(blob))


def forge(index, payload=b"\x00" * 64):
    """A container with a hand-written index (valid checksums), for lying-index tests."""
    body = json.dumps(index).encode()
    offset = container.HEADER_SIZE + len(payload)
    return (container.MAGIC + (1).to_bytes(4, "little") + bytes(4) + payload + body
            + offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
            + zlib.crc32(body).to_bytes(4, "little") + container.END_MAGIC)


def entry(**overrides):
    e = {"name": "w", "shape": [4], "dtype": "float32", "codec": "raw", "params": {},
         "parts": {"data": {"offset": 16, "size": 16, "crc32": zlib.crc32(bytes(16))}}}
    e.update(overrides)
    return e


@pytest.mark.parametrize("bad, message", [
    ({"parts": {"data": {"offset": 16, "size": 10**12, "crc32": 0}}}, "outside the data area"),
    ({"parts": {"data": {"offset": 8, "size": 4, "crc32": 0}}}, "outside the data area"),
    ({"parts": {"data": {"offset": 70, "size": 40, "crc32": 0}}}, "outside the data area"),
    ({"parts": {"data": {"offset": 16, "size": "16", "crc32": 0}}}, "malformed"),
    ({"shape": [-1]}, "invalid shape"),
    ({"shape": [2**70]}, "invalid shape"),
    ({"shape": "4"}, "invalid shape"),
    ({"name": ""}, "no name"),
    ({"params": []}, "codec parameters"),
    ({"name": "\ud800"}, "no name"),                        # a lone surrogate: not UTF-8
    ({"name": 7}, "no name"),
    ({"shape": [1] * 65}, "invalid shape"),
    ({"shape": [2**31, 2**31]}, "invalid shape"),            # 2**62 elements
    ({"shape": [True]}, "invalid shape"),
    ({"dtype": "O"}, "unsupported dtype"),
    ({"dtype": "(2,)f4"}, "unsupported dtype"),
    ({"dtype": "<f4"}, "unsupported dtype"),
    ({"dtype": ["float32"]}, "unsupported dtype"),
    ({"codec": None}, "no codec"),
    ({"parts": {"\udfff": {"offset": 16, "size": 4, "crc32": 0}}}, "invalid name"),
    ({"parts": {"data": {"offset": 16, "size": 4, "crc32": 2**32}}}, "invalid CRC-32"),
    ({"parts": {"data": {"offset": 16, "size": 4, "crc32": -1}}}, "invalid CRC-32"),
])
def test_lying_index_entries_are_rejected(bad, message):
    blob = forge({"format": "tensorpress", "version": 1, "records": [entry(**bad)]})
    with pytest.raises(CorruptDataError, match=message):
        container.Reader(blob)


def test_overlapping_records_and_duplicates_are_rejected():
    two = [entry(), entry(name="v", parts={"data": {"offset": 24, "size": 16, "crc32": 0}})]
    with pytest.raises(CorruptDataError, match="overlaps"):
        container.Reader(forge({"format": "tensorpress", "version": 1, "records": two}))
    with pytest.raises(CorruptDataError, match="twice"):
        container.Reader(forge({"format": "tensorpress", "version": 1, "records": [entry(), entry()]}))
    with pytest.raises(CorruptDataError, match="not a tensorpress index"):
        container.Reader(forge([1, 2, 3]))


def test_deep_nesting_and_json_constants_are_corrupt_data():
    deep = '{"format": "tensorpress", "version": 1, "records": [], "x": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(CorruptDataError, match="nests"):
        container.Reader(forge_text(deep))
    medium = '{"format": "tensorpress", "version": 1, "records": [], "x": ' + "[" * 40 + "]" * 40 + "}"
    with pytest.raises(CorruptDataError, match="nests deeper than 32"):
        container.Reader(forge_text(medium))
    with pytest.raises(CorruptDataError, match="not valid JSON"):
        container.Reader(forge_text('{"format": "tensorpress", "version": NaN, "records": []}'))
    with pytest.raises(CorruptDataError, match="unsupported index version True"):
        container.Reader(forge({"format": "tensorpress", "version": True, "records": []}))


def forge_text(text, payload=b"\x00" * 64):
    body = text.encode()
    offset = container.HEADER_SIZE + len(payload)
    return (container.MAGIC + (1).to_bytes(4, "little") + bytes(4) + payload + body
            + offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
            + zlib.crc32(body).to_bytes(4, "little") + container.END_MAGIC)


def test_the_writer_refuses_names_it_could_not_read_back():
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        container.build([("\ud800", (), "float32", "raw", {}, {})])


def test_reader_sources(tmp_path):
    path = tmp_path / "m.tpz"
    container.write_file(path, sample_records())
    for source in (str(path), path, os.fsencode(path)):  # bytes path: as open() takes one
        with container.Reader(path=source) as reader:
            assert reader.names() == ["a", "b", "c"]
    with pytest.raises(DTypeError, match="path"):
        container.Reader(3.5)
    with pytest.raises(InvalidArgumentError, match="not both"):
        container.Reader(b"x", path=path)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_arbitrary_bytes_never_crash(data):
    try:
        reader = container.Reader(data)
    except CorruptDataError:
        return
    for r in reader.records:
        for part in r.parts:
            try:
                reader.part(r, part)
            except CorruptDataError:
                pass


@pytest.mark.parametrize("size", [0, 1, 100, (1 << 16) - 1, 1 << 16, (1 << 16) + 7, 3 << 20])
def test_part_checksums_are_zlib_crc32_at_every_size(size):
    """Parts of 64 KiB and more take the C extension's CRC-32 where it is built: the same value
    as zlib.crc32, for bytes, memoryviews and arrays."""
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    for form in (data.tobytes(), memoryview(data), data, bytearray(data.tobytes())):
        assert container.crc32(form) == zlib.crc32(data.tobytes())
