"""The .tpz container: named records of byte parts, an index, checksums, atomic writes.

Layout (all integers little-endian; docs/format.md is the full specification):

    0      8 bytes  magic b"\\x89TPZ\\r\\n\\x1a\\n"
    8      u32      format version (1)
    12     u32      reserved, 0
    16     ...      the parts of every record, back to back
    I      ...      the index: UTF-8 JSON, I = index offset
    end-24 u64      index offset;  u64 index size;  u32 CRC-32 of the index;  4 bytes b"TPZ!"

A record is a tensor: name, shape, dtype, codec, codec parameters, and named parts (byte
strings, each with its offset, size and CRC-32). The container does not interpret parts; the
codecs in pipeline.py do. The index sits at the end so a writer streams parts out first; a
reader reads the fixed-size footer, then the index, then only the parts it needs.
"""

import io
import json
import os
import zlib

from ._atomic import replacing
from .errors import CorruptDataError, InvalidArgumentError, MissingTensorError

MAGIC = b"\x89TPZ\r\n\x1a\n"
END_MAGIC = b"TPZ!"
VERSION = 1
HEADER_SIZE = 16
FOOTER_SIZE = 24
MAX_INDEX_SIZE = 1 << 30  # a sane upper bound: 1 GiB of JSON is no index tensorpress writes


class Record:
    """One tensor's entry in the index. `parts` maps a part name to (offset, size, crc32)."""

    __slots__ = ("name", "shape", "dtype", "codec", "params", "parts")

    def __init__(self, name, shape, dtype, codec, params, parts):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype
        self.codec, self.params, self.parts = codec, params, parts

    @property
    def stored_bytes(self):
        return sum(size for _, size, _ in self.parts.values())

    def __repr__(self):
        return f"Record({self.name!r}, shape={self.shape}, dtype={self.dtype}, codec={self.codec!r}, {self.stored_bytes} bytes)"


def build(records):
    """The bytes of a container. `records`: iterable of (name, shape, dtype, codec, params, parts)
    where parts is a dict of part name -> bytes-like."""
    out = io.BytesIO()
    write_to(out, records)
    return out.getvalue()


def write_to(stream, records):
    """Write a container to a binary stream positioned at its start and return its index as a
    list of Record. `records` may be a generator: each record's parts are written as soon as
    it is produced and then dropped (only the index stays in memory until the end, where the
    format puts it), so a writer never holds more than one record's parts."""
    stream.write(MAGIC + VERSION.to_bytes(4, "little") + bytes(4))
    offset = HEADER_SIZE
    index = []
    seen = set()
    for record in records:
        entry = _write_record(stream, record, offset, seen)
        offset += sum(p["size"] for p in entry["parts"].values())
        index.append(entry)
        del record  # drop this record's parts before the generator makes the next one
    body = json.dumps({"format": "tensorpress", "version": VERSION, "records": index},
                      separators=(",", ":"), allow_nan=False).encode("utf-8")
    stream.write(body)
    stream.write(offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
                 + zlib.crc32(body).to_bytes(4, "little") + END_MAGIC)
    return [Record(e["name"], e["shape"], e["dtype"], e["codec"], e["params"],
                   {k: (p["offset"], p["size"], p["crc32"]) for k, p in e["parts"].items()}) for e in index]


def _write_record(stream, record, offset, seen):
    """Write one record's parts from `offset` on; return its index entry."""
    name, shape, dtype, codec, params, parts = record
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"record names must be non-empty strings, got {name!r}")
    if name in seen:
        raise InvalidArgumentError(f"two records are named {name!r}")
    seen.add(name)
    entry_parts = {}
    for part_name, data in parts.items():
        view = memoryview(data).cast("B")
        stream.write(view)
        entry_parts[part_name] = {"offset": offset, "size": view.nbytes, "crc32": zlib.crc32(view)}
        offset += view.nbytes
    return {"name": name, "shape": [int(d) for d in shape], "dtype": dtype, "codec": codec,
            "params": params, "parts": entry_parts}


def write_file(path, records):
    """Write a container to `path` atomically and return its index (see write_to; `records`
    may be a generator, consumed as the file is written): a temporary file in the same
    directory is written, fsynced, then renamed over `path` (_atomic.replacing). A crash, a full
    disk or an exception from `records` part way leaves any previous file at `path` as it was."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        return write_to(f, records)


class Reader:
    """Reads a container from bytes or a file: the index at once, parts only when asked.

    Every offset, size and checksum is checked; any inconsistency raises CorruptDataError that
    names the record (and part) concerned."""

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data = memoryview(source).cast("B")
            self._file = None
            size = self._data.nbytes
        else:
            self._data = None
            self._file = open(os.fspath(source), "rb")
            self._file.seek(0, os.SEEK_END)
            size = self._file.tell()
        try:
            self.records = self._read_index(size)
        except BaseException:
            self.close()
            raise
        self._by_name = {r.name: r for r in self.records}

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, offset, size):
        if self._data is not None:
            return bytes(self._data[offset:offset + size])
        self._file.seek(offset)
        data = self._file.read(size)
        return data

    def _read_index(self, size):
        if size < HEADER_SIZE + FOOTER_SIZE:
            raise CorruptDataError(f"not a tensorpress container: {size} bytes is shorter than the header and footer")
        header = self._read(0, HEADER_SIZE)
        if header[:8] != MAGIC:
            raise CorruptDataError("not a tensorpress container (bad magic number)")
        version = int.from_bytes(header[8:12], "little")
        if version != VERSION:
            raise CorruptDataError(f"unsupported .tpz format version {version}; this tensorpress reads version {VERSION}")
        if header[12:16] != bytes(4):
            raise CorruptDataError("the container's header is damaged (reserved bytes are not zero)")
        footer = self._read(size - FOOTER_SIZE, FOOTER_SIZE)
        if footer[20:] != END_MAGIC:
            raise CorruptDataError("the container is truncated or its footer is damaged")
        index_offset = int.from_bytes(footer[0:8], "little")
        index_size = int.from_bytes(footer[8:16], "little")
        index_crc = int.from_bytes(footer[16:20], "little")
        if (index_offset < HEADER_SIZE or index_size > MAX_INDEX_SIZE
                or index_offset + index_size != size - FOOTER_SIZE):
            raise CorruptDataError("the container's footer points outside the file")
        body = self._read(index_offset, index_size)
        if zlib.crc32(body) != index_crc:
            raise CorruptDataError("the container's index fails its checksum")
        try:
            index = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptDataError(f"the container's index is not valid JSON ({exc})") from None
        return _parse_index(index, index_offset)

    def names(self):
        return [r.name for r in self.records]

    def record(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise MissingTensorError(f"no tensor named {name!r} in this container") from None

    def part(self, record, part_name):
        """The bytes of one part, checked against its CRC-32."""
        try:
            offset, size, crc = record.parts[part_name]
        except KeyError:
            raise CorruptDataError(f"record {record.name!r} has no part {part_name!r}") from None
        data = self._read(offset, size)
        if len(data) != size:
            raise CorruptDataError(f"record {record.name!r}: part {part_name!r} is truncated")
        if zlib.crc32(data) != crc:
            raise CorruptDataError(f"record {record.name!r}: part {part_name!r} fails its checksum")
        return data


def _require(condition, message):
    if not condition:
        raise CorruptDataError(message)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_index(index, payload_end):
    """Records from a decoded index, after checking every field's type and range."""
    _require(isinstance(index, dict) and index.get("format") == "tensorpress", "the index is not a tensorpress index")
    _require(index.get("version") == VERSION, f"unsupported index version {index.get('version')!r}")
    entries = index.get("records")
    _require(isinstance(entries, list), "the index has no record list")
    records, names, spans = [], set(), []
    for position, e in enumerate(entries):
        _require(isinstance(e, dict), f"index entry {position} is not an object")
        name = e.get("name")
        _require(isinstance(name, str) and name, f"index entry {position} has no name")
        _require(name not in names, f"record {name!r} appears twice in the index")
        names.add(name)
        shape = e.get("shape")
        _require(isinstance(shape, list) and len(shape) <= 64 and all(_is_int(d) and 0 <= d < 2**62 for d in shape),
                 f"record {name!r} has an invalid shape")
        _require(isinstance(e.get("dtype"), str), f"record {name!r} has no dtype")
        _require(isinstance(e.get("codec"), str), f"record {name!r} has no codec")
        params = e.get("params")
        _require(isinstance(params, dict), f"record {name!r} has invalid codec parameters")
        parts_in = e.get("parts")
        _require(isinstance(parts_in, dict), f"record {name!r} has no parts")
        parts = {}
        for part_name, p in parts_in.items():
            _require(isinstance(p, dict) and all(_is_int(p.get(k)) for k in ("offset", "size", "crc32")),
                     f"record {name!r}: part {part_name!r} is malformed")
            offset, size = p["offset"], p["size"]
            _require(HEADER_SIZE <= offset and 0 <= size and offset + size <= payload_end,
                     f"record {name!r}: part {part_name!r} lies outside the data area")
            parts[part_name] = (offset, size, p["crc32"])
            if size:
                spans.append((offset, offset + size, name, part_name))
        records.append(Record(name, shape, e["dtype"], e["codec"], params, parts))
    spans.sort()
    for (_, end, a_name, a_part), (start, _, b_name, b_part) in zip(spans, spans[1:]):
        _require(start >= end, f"record {b_name!r}: part {b_part!r} overlaps record {a_name!r} part {a_part!r}")
    return records
