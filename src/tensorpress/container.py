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
import reprlib
import zlib

import numpy as np

from ._atomic import replacing
from .errors import CorruptDataError, DTypeError, InvalidArgumentError, MissingTensorError

try:  # the C extension's CRC-32 (carry-less multiplication), where it was built
    from ._native.huffman import crc32 as _native_crc32
except ImportError:
    _native_crc32 = None

MAGIC = b"\x89TPZ\r\n\x1a\n"
END_MAGIC = b"TPZ!"
VERSION = 1
HEADER_SIZE = 16
FOOTER_SIZE = 24
MAX_INDEX_SIZE = 1 << 30  # a sane upper bound: 1 GiB of JSON is no index tensorpress writes
MAX_NDIM = 64               # numpy's own limit on dimensions
MAX_DIM = 1 << 62           # each dimension is below this
MAX_ELEMENTS = 1 << 50      # a record's element count (a Huffman stream's limit too)
MAX_DEPTH = 32              # JSON nesting; tensorpress's own index nests 5 deep
# The dtypes a record may name: those pipeline.compress stores (NumPy's bool, int, uint and
# float types; long double where the platform has one; ml_dtypes' bfloat16). Anything else
# (object, structured, subarray, datetime dtypes) could not have been written and is refused.
DTYPES = frozenset(["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float16", "float32", "float64", np.dtype(np.longdouble).name, "bfloat16"])


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


def write_to(stream, records, checkpoint=None):
    """Write a container to a binary stream positioned at its start and return its index as a
    list of Record. `records` may be a generator: each record's parts are written as soon as
    it is produced and then dropped (only the index stays in memory until the end, where the
    format puts it), so a writer never holds more than one record's parts. `checkpoint`, when
    given, is JSON the index keeps about the source checkpoint (checkpoints.py: its safetensors
    metadata or shard layout; docs/format.md)."""
    stream.write(MAGIC + VERSION.to_bytes(4, "little") + bytes(4))
    offset = HEADER_SIZE
    index = []
    seen = set()
    for record in records:
        entry = _write_record(stream, record, offset, seen)
        offset += sum(p["size"] for p in entry["parts"].values())
        index.append(entry)
        del record  # drop this record's parts before the generator makes the next one
    top = {"format": "tensorpress", "version": VERSION, "records": index}
    if checkpoint is not None:
        top["checkpoint"] = checkpoint
    body = json.dumps(top, separators=(",", ":"), allow_nan=False).encode("utf-8")
    stream.write(body)
    stream.write(offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
                 + zlib.crc32(body).to_bytes(4, "little") + END_MAGIC)
    return [Record(e["name"], e["shape"], e["dtype"], e["codec"], e["params"],
                   {k: (p["offset"], p["size"], p["crc32"]) for k, p in e["parts"].items()}) for e in index]


def _write_record(stream, record, offset, seen):
    """Write one record's parts from `offset` on; return its index entry."""
    name, shape, dtype, codec, params, parts = record
    if not _is_name(name):
        raise InvalidArgumentError(f"record names must be non-empty strings that UTF-8 can encode, got {name!r}")
    if name in seen:
        raise InvalidArgumentError(f"two records are named {name!r}")
    seen.add(name)
    entry_parts = {}
    for part_name, data in parts.items():
        view = memoryview(data).cast("B")
        stream.write(view)
        entry_parts[part_name] = {"offset": offset, "size": view.nbytes, "crc32": crc32(view)}
        offset += view.nbytes
    return {"name": name, "shape": [int(d) for d in shape], "dtype": dtype, "codec": codec,
            "params": params, "parts": entry_parts}


def write_file(path, records, checkpoint=None):
    """Write a container to `path` atomically and return its index (see write_to; `records`
    may be a generator, consumed as the file is written): a temporary file in the same
    directory is written, fsynced, then renamed over `path` (_atomic.replacing). A crash, a full
    disk or an exception from `records` part way leaves any previous file at `path` as it was."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        return write_to(f, records, checkpoint)


class Reader:
    """Reads a container from bytes or a file: the index at once, parts only when asked.

    `source` is the container's bytes (bytes-like) or the path of a file (str or os.PathLike);
    `path=` names a file explicitly, which is how a bytes path (as open() takes) is given.
    Every offset, size and checksum is checked; any inconsistency raises CorruptDataError that
    names the record (and part) concerned. `checkpoint` is the index's JSON about the source
    checkpoint, unchecked (None when absent): checkpoints.py checks what it uses."""

    def __init__(self, source=None, *, path=None):
        if (source is None) == (path is None):
            raise InvalidArgumentError("Reader takes either the container's bytes or path=, not both")
        if path is None and isinstance(source, (bytes, bytearray, memoryview)):
            self._data = memoryview(source).cast("B")
            self._file = None
            size = self._data.nbytes
        else:
            path = source if path is None else path
            if not isinstance(path, (str, bytes, os.PathLike)):
                raise DTypeError(f"a container is read from bytes or a path (str, bytes or os.PathLike), "
                                 f"got {type(path).__name__}")
            self._data = None
            self._file = open(path, "rb")
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
            index = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except RecursionError:  # json nests by recursion: deep nesting is no index we write
            raise CorruptDataError("the container's index nests too deeply") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptDataError(f"the container's index is not valid JSON ({exc})") from None
        _require(_depth_at_most(index, MAX_DEPTH), f"the container's index nests deeper than {MAX_DEPTH}")
        records = _parse_index(index, index_offset)
        self.checkpoint = index.get("checkpoint")
        return records

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
        if crc32(data) != crc:
            raise CorruptDataError(f"record {record.name!r}: part {part_name!r} fails its checksum")
        return data


def crc32(data):
    """zlib.crc32 of bytes-like data. Large parts go through the C extension where it was built:
    4x zlib's speed here, and a lossless compress run spent a tenth of its time in zlib's."""
    view = memoryview(data).cast("B")
    if _native_crc32 is None or view.nbytes < 1 << 16:
        return zlib.crc32(view)
    return _native_crc32(np.frombuffer(view, np.uint8))


def _require(condition, message):
    if not condition:
        raise CorruptDataError(message)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")  # json.loads accepts NaN and Infinity


def _depth_at_most(value, limit):
    """Whether lists and dicts nest at most `limit` deep in `value` (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return False
                stack.append((child, depth + 1))
    return True


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_name(x):
    """A non-empty str that UTF-8 can encode (JSON's escapes let a lone surrogate through)."""
    if not isinstance(x, str) or not x:
        return False
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_shape(shape):
    """A list of at most MAX_NDIM ints in [0, MAX_DIM) with at most MAX_ELEMENTS elements."""
    if not (isinstance(shape, list) and len(shape) <= MAX_NDIM
            and all(_is_int(d) and 0 <= d < MAX_DIM for d in shape)):
        return False
    n = 1
    for d in shape:
        n *= d
    return n <= MAX_ELEMENTS


def _parse_index(index, payload_end):
    """Records from a decoded index, after checking every field's type and range."""
    _require(isinstance(index, dict) and index.get("format") == "tensorpress", "the index is not a tensorpress index")
    version = index.get("version")
    _require(_is_int(version) and version == VERSION, f"unsupported index version {reprlib.repr(version)}")
    entries = index.get("records")
    _require(isinstance(entries, list), "the index has no record list")
    records, names, spans = [], set(), []
    for position, e in enumerate(entries):
        _require(isinstance(e, dict), f"index entry {position} is not an object")
        name = e.get("name")
        _require(_is_name(name), f"index entry {position} has no name or an invalid one (not a non-empty UTF-8 string)")
        _require(name not in names, f"record {name!r} appears twice in the index")
        names.add(name)
        shape = e.get("shape")
        _require(is_shape(shape), f"record {name!r} has an invalid shape (at most {MAX_NDIM} dimensions, "
                                  f"each in [0, 2**62), at most 2**50 elements)")
        _require(isinstance(e.get("dtype"), str) and e["dtype"] in DTYPES, f"record {name!r} has an unsupported dtype {reprlib.repr(e.get('dtype'))}")
        _require(isinstance(e.get("codec"), str), f"record {name!r} has no codec")
        params = e.get("params")
        _require(isinstance(params, dict), f"record {name!r} has invalid codec parameters")
        parts_in = e.get("parts")
        _require(isinstance(parts_in, dict), f"record {name!r} has no parts")
        parts = {}
        for part_name, p in parts_in.items():
            _require(_is_name(part_name), f"record {name!r} has a part with an invalid name {reprlib.repr(part_name)}")
            _require(isinstance(p, dict) and all(_is_int(p.get(k)) for k in ("offset", "size", "crc32")),
                     f"record {name!r}: part {part_name!r} is malformed")
            offset, size, crc = p["offset"], p["size"], p["crc32"]
            _require(HEADER_SIZE <= offset and 0 <= size and offset + size <= payload_end,
                     f"record {name!r}: part {part_name!r} lies outside the data area")
            _require(0 <= crc < 1 << 32, f"record {name!r}: part {part_name!r} has an invalid CRC-32")
            parts[part_name] = (offset, size, crc)
            if size:
                spans.append((offset, offset + size, name, part_name))
        records.append(Record(name, shape, e["dtype"], e["codec"], params, parts))
    spans.sort()
    for (_, end, a_name, a_part), (start, _, b_name, b_part) in zip(spans, spans[1:]):
        _require(start >= end, f"record {b_name!r}: part {b_part!r} overlaps record {a_name!r} part {a_part!r}")
    return records
