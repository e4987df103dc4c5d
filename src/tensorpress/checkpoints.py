"""Reading and writing checkpoints by file extension: .safetensors, .npz and .tpz.

Readers treat their input as hostile: whatever a damaged or forged file makes the underlying
libraries raise becomes a CorruptDataError (a dtype NumPy cannot hold, a DTypeError), and an
array's size is checked against what the file holds before memory is allocated for it. Errors
of the file system (missing file, permissions) stay OSError. Writers go through
_atomic.replacing: a reader sees the old file or the new one, never a part.
"""

import json
import math
import os
import zipfile
import zlib

import numpy as np

from ._atomic import replacing
from .errors import CorruptDataError, DTypeError, InvalidArgumentError, TensorpressError

FORMATS = (".safetensors", ".npz", ".tpz")

# safetensors dtype codes <-> NumPy dtype names (bfloat16 and float8 are ml_dtypes' names).
_ST_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
             "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "complex64": "C64",
             "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
             "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL"}
# the codes safetensors.numpy turns into arrays; the rest fail inside it with TypeError or
# AttributeError, so they are refused before it is asked
_ST_READABLE = {"F64", "F32", "F16", "C64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"}

# Deflate cannot expand data more than 1032 times: a larger declared size in a zip is forged.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20


def kind(path):
    """The checkpoint format of `path` from its extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise InvalidArgumentError(f"{os.fspath(path)!r}: unknown checkpoint format {ext or '(none)'}; use {', '.join(FORMATS)}")
    return ext


def _safetensors():
    try:
        import safetensors
    except ImportError:
        raise InvalidArgumentError(
            "reading .safetensors files needs the safetensors package: pip install safetensors"
        ) from None
    return safetensors


def read(path):
    """A dict of name -> array from a .safetensors, .npz or .tpz file. A damaged file raises
    CorruptDataError; a missing or unreadable one, OSError."""
    ext = kind(path)
    path = os.fspath(path)
    if ext == ".safetensors":
        return _read_safetensors(path)
    if ext == ".npz":
        return _read_npz(path)
    from .pipeline import load

    return load(path)


def _read_safetensors(path):
    safetensors = _safetensors()
    # Open it ourselves first: safetensors reports a directory as "No such device" and would
    # word other file-system errors its own way.
    with open(path, "rb"):
        pass
    tensors = {}
    try:
        with safetensors.safe_open(path, framework="np") as f:
            for name in f.offset_keys():  # the file's order
                code = f.get_slice(name).get_dtype()
                if code not in _ST_READABLE:
                    raise DTypeError(f"tensor {name!r} has dtype {code}, which tensorpress cannot read from .safetensors")
                tensors[name] = f.get_tensor(name)
    except safetensors.SafetensorError as exc:
        raise CorruptDataError(f"not a valid .safetensors file ({exc})") from None
    return tensors


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


def write(path, tensors):
    """Write a dict of arrays to .safetensors or .npz, atomically (temporary file + rename)."""
    ext = kind(path)
    if ext == ".tpz":
        raise InvalidArgumentError("write .tpz files with tensorpress.save (it compresses)")
    # asarray, not ascontiguousarray: that one turns a 0-d array into shape (1,)
    arrays = {_writable_name(name): np.asarray(a, order="C") for name, a in tensors.items()}
    with replacing(path) as tmp, open(tmp, "wb") as f:
        if ext == ".safetensors":
            _write_safetensors(f, arrays)
        else:
            _write_npz(f, arrays)


def _writable_name(name):
    # Both formats store names as UTF-8; a lone surrogate ('\ud800') has no UTF-8 form.
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"tensor names must be non-empty strings, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"tensor name {name!r} is not valid Unicode text; it cannot be stored") from None
    return name


def _write_npz(f, arrays):
    # np.savez(f, **arrays) would take a tensor named "file" or "allow_pickle" for its own
    # argument; this is the rest of what it does.
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _write_safetensors(f, arrays):
    """The safetensors format, written array by array: safetensors.numpy.save_file writes its
    own temporary beside the path (which a killed writer leaves behind), and save() would hold
    a second copy of the whole checkpoint in memory. Layout: u64 header size, JSON header
    {name: {dtype, shape, data_offsets}} padded with spaces to 8 bytes, the data, little-endian."""
    # widest items first, so every array starts aligned to its item size
    order = sorted(arrays, key=lambda name: -arrays[name].dtype.itemsize)
    header, offset = {}, 0
    for name in order:
        array = arrays[name]
        code = _ST_CODES.get(array.dtype.name)
        if code is None:
            raise DTypeError(f"tensor {name!r} has dtype {array.dtype}, which .safetensors cannot store")
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 8)
    f.write(len(body).to_bytes(8, "little"))
    f.write(body)
    for name in order:
        array = arrays[name].astype(arrays[name].dtype.newbyteorder("<"), copy=False)
        f.write(array.reshape(-1).view(np.uint8))
