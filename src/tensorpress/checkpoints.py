"""Reading and writing checkpoints: .safetensors (one file, or sharded), .npz and .tpz.

Readers treat their input as hostile: whatever a damaged or forged file holds becomes a
CorruptDataError (a dtype NumPy cannot hold, a DTypeError), and an array's size is checked
against what the file holds before memory is allocated for it. Errors of the file system
(missing file, permissions) stay OSError. Writers go through _atomic.replacing: a reader sees
the old file or the new one, never a part.

.safetensors files are read lazily: read() checks the whole header (every dtype, shape and
offset, the data covering the file exactly as the format requires) and returns a Checkpoint,
a mapping whose values are read only when asked, each through its own memory map of just that
tensor's bytes (private: writing to an array never changes the file). The map goes away with
the array, so a caller that takes one tensor at a time (the pipeline does) holds one tensor's
pages, whatever the checkpoint's size. A file truncated in place by another process while it
is mapped can still end this process with SIGBUS, as with every memory-mapped reader.

A sharded checkpoint is the Hugging Face layout: shards `model-00001-of-0000N.safetensors` and
an index `model.safetensors.index.json`, `{"metadata": {...}, "weight_map": {tensor: shard}}`,
all in one directory. read() takes the directory or the index; shard names are plain file names
in that directory (never a path), the shards hold exactly the tensors the index places in them
and no tensor is in two shards. Its Checkpoint carries the layout (`info`), which the .tpz keeps
so that write_sharded() can restore the same shards and index (docs/format.md).
"""

import collections.abc
import contextlib
import errno
import json
import math
import mmap
import os
import stat
import zipfile
import zlib

import ml_dtypes
import numpy as np

from . import container
from ._atomic import replacing
from .errors import CorruptDataError, DTypeError, InvalidArgumentError, TensorpressError

FORMATS = (".safetensors", ".npz", ".tpz")
INDEX_SUFFIX = ".index.json"           # model.safetensors.index.json
SHARD_INDEX_SUFFIX = ".safetensors" + INDEX_SUFFIX
DEFAULT_INDEX = "model" + SHARD_INDEX_SUFFIX

# safetensors dtype codes <-> NumPy dtype names (bfloat16 and float8 are ml_dtypes' names).
_ST_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
             "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "complex64": "C64",
             "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
             "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL"}
# the codes tensorpress reads (little-endian, as the format stores them); float8 is refused
_ST_DTYPES = {code: np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name).newbyteorder("<")
              for name, code in _ST_CODES.items() if not name.startswith("float8")}

# safetensors' own limit on its JSON header; an index.json is no larger in practice
MAX_HEADER_SIZE = 100_000_000
MAX_INDEX_SIZE = 100_000_000
MAX_JSON_DEPTH = 16  # the metadata a .tpz keeps nests inside its index, which allows 32

# Deflate cannot expand data more than 1032 times: a larger declared size in a zip is forged.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20


def kind(path):
    """The checkpoint format of input `path`: ".safetensors", ".npz" or ".tpz" from its
    extension; "sharded" for an index (`*.index.json`) or a directory."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return ext
    if path.lower().endswith(INDEX_SUFFIX) or os.path.isdir(path):
        return "sharded"
    raise InvalidArgumentError(f"{path!r}: unknown checkpoint format {ext or '(none)'}; use {', '.join(FORMATS)}, "
                               f"a sharded checkpoint's directory or its {INDEX_SUFFIX}")


def output_kind(path):
    """What decompress writes at `path`: ".safetensors", ".npz" or ".tpz" from its extension;
    "directory" (shards and an index) for an existing directory or a path without extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return ext
    if os.path.isdir(path) or not ext or path.endswith(os.sep):
        return "directory"
    raise InvalidArgumentError(f"{path!r}: unknown checkpoint format {ext}; use {', '.join(FORMATS)} "
                               "or a directory")


def read(path):
    """name -> array from a .safetensors, .npz or .tpz file, or a sharded checkpoint (its
    directory or index). .safetensors input gives a lazy Checkpoint (see the module's
    docstring), the others a dict. A damaged file raises CorruptDataError; a missing or
    unreadable one, OSError."""
    ext = kind(path)
    path = os.fspath(path)
    if ext == ".safetensors":
        tensors, metadata = _read_header(path)
        return Checkpoint(tensors, {"metadata": metadata} if metadata is not None else None)
    if ext == "sharded":
        return _read_sharded(path)
    if ext == ".npz":
        return _read_npz(path)
    from .pipeline import load

    return load(path)


class Checkpoint(collections.abc.Mapping):
    """name -> array of a .safetensors file or a sharded checkpoint, in the files' order; each
    array is mapped from its file when asked (a writable private map: changing the array never
    changes the file). `spec(name)` gives (dtype, shape) without reading. `info` is what a .tpz
    keeps of the source: {"metadata": the file's __metadata__} or {"shards": the layout}, or None."""

    def __init__(self, tensors, info):
        self._tensors = tensors
        self.info = info

    def __getitem__(self, name):
        return self._tensors[name].load()

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def spec(self, name):
        t = self._tensors[name]
        return t.dtype, t.shape


class _Stored:
    """Where one tensor's bytes are: a file (and what it was when its header was read), the
    absolute offset and size."""

    __slots__ = ("path", "identity", "dtype", "shape", "start", "nbytes")

    def __init__(self, path, identity, dtype, shape, start, nbytes):
        self.path, self.identity, self.dtype, self.shape = path, identity, dtype, tuple(shape)
        self.start, self.nbytes = start, nbytes

    def load(self):
        if self.nbytes == 0:
            return np.zeros(self.shape, self.dtype)
        with open(self.path, "rb") as f:
            if _identity(os.fstat(f.fileno())) != self.identity:
                raise CorruptDataError(f"{self.path}: the file changed while it was being read")
            base = self.start - self.start % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(f.fileno(), self.start + self.nbytes - base, offset=base, access=mmap.ACCESS_COPY)
        # the array keeps the map alive; the map is closed (unmapped) when the array goes
        count = self.nbytes // self.dtype.itemsize
        return np.frombuffer(mapped, self.dtype, count, self.start - base).reshape(self.shape)


def _open_file(path):
    """`path` opened for reading, refused unless it is a regular file: a FIFO would block the
    reader forever, a device give endless bytes. O_NONBLOCK makes opening a FIFO not wait."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise CorruptDataError(f"{path}: not a regular file")
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _identity(st):
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")  # json.loads accepts NaN and Infinity


def _unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise CorruptDataError(f"the key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def _parse_json(data, what):
    """The JSON value of `data` (bytes): plain JSON (no NaN), no key twice in an object,
    nested at most MAX_JSON_DEPTH deep; anything else is a CorruptDataError about `what`."""
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except CorruptDataError as exc:
        raise CorruptDataError(f"{what}: {exc}") from None
    except RecursionError:  # json nests by recursion
        raise CorruptDataError(f"{what} nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptDataError(f"{what} is not valid JSON ({exc})") from None
    if not container._depth_at_most(value, MAX_JSON_DEPTH):
        raise CorruptDataError(f"{what} nests deeper than {MAX_JSON_DEPTH}")
    return value


def _is_text(x):
    return container._is_name(x) or x == ""


def _check_metadata(metadata, what):
    """A safetensors __metadata__: None or an object of strings."""
    if metadata is not None and not (isinstance(metadata, dict) and all(
            _is_text(k) and _is_text(v) for k, v in metadata.items())):
        raise CorruptDataError(f"{what}: __metadata__ must be an object of strings")
    return metadata


def _read_header(path):
    """({name: _Stored} in the order of the data, __metadata__ or None) of a .safetensors file,
    after checking the whole header against the file. Layout: u64 header size N, N bytes of JSON
    {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
    data, whose tensors follow one another from offset 0 to the end of the file."""
    with _open_file(path) as f:
        st = os.fstat(f.fileno())
        head = f.read(8)
        if len(head) < 8:
            raise CorruptDataError(f"{path}: not a .safetensors file ({st.st_size} bytes, shorter than its header size)")
        size = int.from_bytes(head, "little")
        if size > MAX_HEADER_SIZE or 8 + size > st.st_size:
            raise CorruptDataError(f"{path}: not a .safetensors file (a header of {size} bytes in a file of {st.st_size})")
        header = _parse_json(f.read(size), f"{path}: the .safetensors header")
    if not isinstance(header, dict):
        raise CorruptDataError(f"{path}: the .safetensors header is not a JSON object")
    metadata = _check_metadata(header.pop("__metadata__", None), path)
    data_start, identity = 8 + size, _identity(st)
    spans = []
    for name, entry in header.items():
        dtype, shape, begin, end = _header_entry(path, name, entry)
        spans.append((begin, end, name, dtype, shape))
    spans.sort(key=lambda s: s[:2])
    tensors, position = {}, 0
    for begin, end, name, dtype, shape in spans:
        if begin != position:
            raise CorruptDataError(f"{path}: tensor {name!r} starts at byte {begin} of the data, not where "
                                   f"the previous one ends ({position})")
        position = end
        tensors[name] = _Stored(path, identity, dtype, shape, data_start + begin, end - begin)
    if position != st.st_size - data_start:
        raise CorruptDataError(f"{path}: the tensors hold {position} bytes, the file {st.st_size - data_start} after its header")
    return tensors, metadata


def _header_entry(path, name, entry):
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise CorruptDataError(f"{where}: its header entry is not an object")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if code in ("F8_E4M3", "F8_E5M2"):
        raise DTypeError(f"{where} has dtype {code}, which tensorpress cannot read from .safetensors")
    if not isinstance(code, str) or code not in _ST_DTYPES:
        raise CorruptDataError(f"{where} has an unknown dtype {str(code)[:40]!r}")
    if not container.is_shape(shape):
        raise CorruptDataError(f"{where} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(container._is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise CorruptDataError(f"{where} has invalid data offsets")
    dtype = _ST_DTYPES[code]
    nbytes = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise CorruptDataError(f"{where}: {code} of shape {shape} is {nbytes} bytes, its offsets span {offsets[1] - offsets[0]}")
    return dtype, shape, offsets[0], offsets[1]


# --- sharded checkpoints ------------------------------------------------------------------------

def _is_file_name(name, suffix):
    """A plain file name ending in `suffix`: no directory part, nothing hidden, valid UTF-8."""
    return (container._is_name(name) and name.endswith(suffix) and len(name) > len(suffix)
            and not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name
            and len(name.encode("utf-8")) <= 255)


def _find_index(path):
    if path.lower().endswith(INDEX_SUFFIX):
        return path
    found = sorted(e for e in os.listdir(path) if e.endswith(SHARD_INDEX_SUFFIX))
    if len(found) != 1:
        raise InvalidArgumentError(f"{path}: a sharded checkpoint's directory holds one *{SHARD_INDEX_SUFFIX} "
                                   f"file, this one {len(found) or 'none'}{': ' + ', '.join(found) if found else ''}; "
                                   "name the index to use")
    return os.path.join(path, found[0])


def _read_sharded(path):
    index_path = _find_index(path)
    directory = os.path.dirname(index_path) or "."
    with _open_file(index_path) as f:
        data = f.read(MAX_INDEX_SIZE + 1)
    if len(data) > MAX_INDEX_SIZE:
        raise CorruptDataError(f"{index_path}: larger than {MAX_INDEX_SIZE} bytes; no index is")
    index = _parse_json(data, index_path)
    if not (isinstance(index, dict) and isinstance(index.get("weight_map"), dict)):
        raise CorruptDataError(f"{index_path}: not a checkpoint index (no \"weight_map\" object)")
    metadata = index.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise CorruptDataError(f"{index_path}: its \"metadata\" is not an object")
    weight_map = index["weight_map"]
    for name, shard in weight_map.items():
        if not _is_file_name(shard, ".safetensors"):
            raise CorruptDataError(f"{index_path}: tensor {name!r} is placed in {str(shard)[:80]!r}, which is not "
                                   "the name of a .safetensors file in the index's directory")
    headers, files = {}, {}
    for shard in sorted(set(weight_map.values())):
        shard_path = os.path.join(directory, shard)
        if not os.path.isfile(shard_path):
            raise CorruptDataError(f"{index_path}: names shard {shard!r}, which {directory} does not hold")
        headers[shard], files[shard] = _read_header(shard_path)
    tensors, where = {}, {}
    for shard, entries in headers.items():
        for name, stored in entries.items():
            if name in where:
                raise CorruptDataError(f"tensor {name!r} is in two shards, {where[name]} and {shard}")
            where[name] = shard
            tensors[name] = stored
    for name, shard in where.items():
        if weight_map.get(name) != shard:
            raise CorruptDataError(f"shard {shard} holds tensor {name!r}, which {index_path} "
                                   + (f"places in {weight_map[name]}" if name in weight_map else "does not list"))
    for name, shard in weight_map.items():
        if name not in where:
            raise CorruptDataError(f"{index_path} places tensor {name!r} in shard {shard}, which does not hold it")
    info = {"index": os.path.basename(index_path), "metadata": metadata, "files": files, "weight_map": dict(weight_map)}
    return Checkpoint(tensors, {"shards": info})


def shards_of(info, names):
    """The shard layout that a .tpz's `checkpoint` entry (`info`, from a hostile file) keeps for
    the tensors `names`, checked: {"index", "metadata", "files", "weight_map"}, restricted to
    those tensors. None when the .tpz keeps no layout."""
    shards = info.get("shards") if isinstance(info, dict) else None
    if shards is None:
        return None
    if not (isinstance(shards, dict) and _is_file_name(shards.get("index"), INDEX_SUFFIX)
            and (shards.get("metadata") is None or isinstance(shards["metadata"], dict))
            and isinstance(shards.get("files"), dict) and isinstance(shards.get("weight_map"), dict)):
        raise CorruptDataError("its shard layout is malformed")
    files = shards["files"]
    for shard, metadata in files.items():
        if not _is_file_name(shard, ".safetensors"):
            raise CorruptDataError(f"its shard layout names {shard[:80]!r}, which is not a plain .safetensors file name")
        _check_metadata(metadata, f"shard {shard}")
    stored, wanted = shards["weight_map"], set(names)
    for name in wanted:
        shard = stored.get(name)
        if not (isinstance(shard, str) and shard in files):
            raise CorruptDataError(f"its shard layout places tensor {name!r} in no shard it lists")
    weight_map = {name: shard for name, shard in stored.items() if name in wanted}  # the index's order
    used = set(weight_map.values())
    return {"index": shards["index"], "metadata": shards["metadata"],
            "files": {shard: metadata for shard, metadata in files.items() if shard in used}, "weight_map": weight_map}


def common_metadata(info):
    """The __metadata__ a single .safetensors file gets from a .tpz's `checkpoint` entry: its
    source file's, or the one every shard has (None when they differ or there is none)."""
    if not isinstance(info, dict):
        return None
    if "shards" not in info:
        return _check_metadata(info.get("metadata"), "its safetensors metadata")
    shards_of(info, [])  # checks the layout
    values = list(info["shards"]["files"].values())
    return values[0] if values and all(v == values[0] for v in values) else None


def _read_npz(path):
    """np.load's .npz reading, minus its hazards: a member's header may not declare more bytes
    than the member holds (np.load allocates what the header asks, terabytes if forged), object
    arrays are refused (never unpickled), and members that are not .npy arrays are errors."""
    tensors = {}
    try:
        file_size = os.path.getsize(path)
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                name = _npz_name(member)
                if name in tensors:
                    raise CorruptDataError(f"two arrays are named {name!r}")
                _check_zip_sizes(member, file_size)
                with archive.open(member) as f:
                    tensors[name] = _read_npy(f, name, member.file_size)
    except TensorpressError:
        raise
    # What zipfile, zlib and numpy's header parser raise on damaged bytes.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        raise CorruptDataError(f"not a valid .npz file ({type(exc).__name__}: {exc})") from None
    return tensors


def _npz_name(member):
    if not member.filename.endswith(".npy") or member.is_dir():
        raise CorruptDataError(f"member {member.filename!r} is not a .npy array")
    return member.filename[:-4]


def _check_zip_sizes(member, file_size):
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CorruptDataError(f"member {member.filename!r} uses compression method {member.compress_type}; "
                               ".npz files are stored or deflated")
    limit = member.compress_size * (1 if member.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO)
    if member.compress_size > file_size or member.file_size > limit:
        raise CorruptDataError(f"member {member.filename!r} declares more bytes than the file holds")


def _read_npy(f, name, member_size):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise CorruptDataError(f"array {name!r}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise CorruptDataError(f"array {name!r} holds Python objects; tensorpress never unpickles")
    nbytes = math.prod(shape) * dtype.itemsize
    if f.tell() + nbytes != member_size:  # before allocating: the member bounds the array
        raise CorruptDataError(f"array {name!r}: its header declares {nbytes} bytes of data, "
                               f"the member holds {member_size - f.tell()}")
    array = np.empty(shape[::-1] if fortran else shape, dtype)
    flat = array.reshape(-1).view(np.uint8) if nbytes else None
    done = 0
    while done < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - done))
        if not chunk:
            raise CorruptDataError(f"array {name!r} is truncated")
        flat[done:done + len(chunk)] = np.frombuffer(chunk, np.uint8)
        done += len(chunk)
    if f.read(1):  # reading to the end also makes zipfile check the member's CRC-32
        raise CorruptDataError(f"array {name!r} has bytes after its data")
    return array.T if fortran else array


def write(path, tensors, metadata=None):
    """Write a mapping of name -> array to .safetensors (with `metadata`, an object of strings,
    as its __metadata__) or .npz, atomically (temporary file + rename). Every name, dtype and
    shape is checked first; then the arrays are taken one at a time as they are written, so a
    lazy mapping (a Checkpoint, a .tpz's pipeline.Decoded) streams through one tensor at a time."""
    ext = output_kind(path)
    if ext not in (".safetensors", ".npz"):
        raise InvalidArgumentError(f"{os.fspath(path)!r}: write() writes .safetensors or .npz files "
                                   "(.tpz: tensorpress.save; a directory of shards: write_sharded)")
    specs = _specs(tensors)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        if ext == ".safetensors":
            _write_safetensors(f, tensors, specs, metadata)
        else:
            _write_npz(f, tensors, specs)


def write_sharded(directory, tensors, shards):
    """Write `tensors` (a mapping; a lazy one streams) into `directory` as the shards and index
    of `shards` (the layout shards_of() returns): each tensor into its shard, the index with the
    layout's metadata and `total_size` the bytes written. Returns the paths written.

    All-or-nothing as far as files allow: every shard and the index go to temporaries in the
    directory (unnamed on Linux) and are fsynced; only once all are complete are they renamed
    into place, the index last. A failure or interruption before then leaves the directory as it
    was (one this call created is removed again); the renames themselves are quick but not one
    atomic step. Other files in the directory are left alone (old shards of another layout too)."""
    specs = _specs(tensors)
    by_shard = {shard: [] for shard in shards["files"]}
    for name in specs:
        if name not in shards["weight_map"]:
            raise InvalidArgumentError(f"the shard layout places tensor {name!r} in no shard")
        by_shard[shards["weight_map"][name]].append(name)
    by_shard = {shard: names for shard, names in by_shard.items() if names}
    index = {"metadata": {**(shards["metadata"] or {}), "total_size": sum(
                 math.prod(shape) * dtype.itemsize for dtype, shape in specs.values())},
             "weight_map": {name: shard for name, shard in shards["weight_map"].items() if name in specs}}
    directory = os.fspath(directory)
    created = not os.path.isdir(directory)
    if created:
        os.mkdir(directory)
    paths = [os.path.join(directory, shard) for shard in by_shard] + [os.path.join(directory, shards["index"])]
    try:
        with contextlib.ExitStack() as stack:  # exits last in, first out: the index is renamed last
            index_tmp = stack.enter_context(replacing(paths[-1]))
            for path, (shard, names) in zip(paths, by_shard.items()):
                with open(stack.enter_context(replacing(path)), "wb") as f:
                    _write_safetensors(f, tensors, {name: specs[name] for name in names}, shards["files"][shard])
                    f.flush()
                    os.fsync(f.fileno())  # now, so that the renames at the end follow each other closely
            with open(index_tmp, "w", encoding="utf-8") as f:
                json.dump(index, f, indent=2)
                f.write("\n")
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise
    return paths


def _writable_name(name):
    # Both formats store names as UTF-8; a lone surrogate ('\ud800') has no UTF-8 form.
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"tensor names must be non-empty strings, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"tensor name {name!r} is not valid Unicode text; it cannot be stored") from None
    return name


def _specs(tensors):
    """name -> (dtype, shape) of every tensor, its name checked, before anything is written:
    from `tensors.spec(name)` where the mapping has it (lazy mappings), else from the array."""
    specs = {}
    for name in tensors:
        _writable_name(name)
        if hasattr(tensors, "spec"):
            dtype, shape = tensors.spec(name)
        else:
            array = np.asarray(tensors[name])
            dtype, shape = array.dtype, array.shape
        specs[name] = np.dtype(dtype), tuple(shape)
    return specs


def _array(tensors, name, spec):
    # asarray, not ascontiguousarray: that one turns a 0-d array into shape (1,)
    array = np.asarray(tensors[name], order="C")
    if (array.dtype, array.shape) != spec:
        raise InvalidArgumentError(f"tensor {name!r} is {array.dtype} {array.shape}, not the {spec[0]} {spec[1]} "
                                   "its header was written for")
    return array


def _write_npz(f, tensors, specs):
    # np.savez(f, **arrays) would take a tensor named "file" or "allow_pickle" for its own
    # argument; this is the rest of what it does.
    archive = zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True)
    try:
        for name, spec in specs.items():
            array = _array(tensors, name, spec)
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
            del array  # before the next tensor is read
    except BaseException:
        # The unfinished file is discarded. Closing the archive is not only useless then: after
        # a signal between archive.open() and its `with` (SIGTERM in the CLI, Ctrl-C), the
        # member stays open and close() raises its own ValueError over the interruption.
        archive.fp = None  # close(), and the archive's __del__, then do nothing
        raise
    archive.close()


def _write_safetensors(f, tensors, specs, metadata=None):
    """The safetensors format, written array by array: safetensors.numpy.save_file writes its
    own temporary beside the path (which a killed writer leaves behind), and save() would hold
    a second copy of the whole checkpoint in memory. Layout: u64 header size, JSON header
    {"__metadata__": {str: str}, name: {dtype, shape, data_offsets}} padded with spaces to 8
    bytes, the data, little-endian."""
    # widest items first, so every array starts aligned to its item size
    order = sorted(specs, key=lambda name: -specs[name][0].itemsize)
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order:
        dtype, shape = specs[name]
        code = _ST_CODES.get(dtype.name)
        if code is None:
            raise DTypeError(f"tensor {name!r} has dtype {dtype}, which .safetensors cannot store")
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 8)
    f.write(len(body).to_bytes(8, "little"))
    f.write(body)
    for name in order:
        array = _array(tensors, name, specs[name])
        if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
            array = array.astype(array.dtype.newbyteorder("<"))
        f.write(array.reshape(-1).view(np.uint8))
        del array  # before the next tensor is read
