"""Huffman coding of byte-sized symbols (csrc/huffman.c, with a Numba twin).

    blob = tp.huffman_encode(x)         # x: uint8 / int8 array of any shape, or bytes
    y = tp.huffman_decode(blob)         # same dtype and shape (bytes for bytes)
    tp.huffman_decode(blob, out=y)      # into an existing array
    tp.huffman_code_lengths(counts)     # the lengths the coder would use for these counts
    tp.entropy_bits(x)                  # the order-0 entropy bound of x, in bits

The stream is self-describing: magic, version, dtype, shape, symbol count, independent blocks
of 256 KiB (each with its own canonical code of at most 11 bits, four interleaved bit streams,
and a CRC-32 of its decoded bytes), a checksummed header. A block that would not shrink is
stored raw, a block of one repeated symbol as that symbol. Any damage (truncation, flipped
bits, a wrong header, trailing bytes) raises CorruptDataError.
"""


import numpy as np

from . import _backend, _checks
from .errors import CorruptDataError, DTypeError, InvalidArgumentError

__all__ = ["huffman_encode", "huffman_decode", "huffman_code_lengths", "entropy_bits"]

_DTYPE_CODES = {np.dtype(np.uint8): 0, np.dtype(np.int8): 1}
_CODE_DTYPES = {0: np.dtype(np.uint8), 1: np.dtype(np.int8), 2: np.dtype(np.uint8)}
_BYTES = 2
_MAX_NDIM = 32
_MAX_COUNT = 1 << 50


def _kernels():
    return _backend.kernels("huffman")


def _symbols(symbols, name):
    """(flat uint8 view, dtype code, shape) of an array or bytes-like input, without copying."""
    if isinstance(symbols, np.ndarray):
        if symbols.dtype not in _DTYPE_CODES:
            raise DTypeError(f"{name} has dtype {symbols.dtype}; expected uint8 or int8")
        _checks.require_contiguous(symbols, name)
        if symbols.ndim > _MAX_NDIM:
            raise InvalidArgumentError(f"{name} has {symbols.ndim} dimensions; at most {_MAX_NDIM}")
        if symbols.size > _MAX_COUNT:
            raise InvalidArgumentError(f"{name} has more than 2**50 elements")
        return symbols.reshape(-1).view(np.uint8), _DTYPE_CODES[symbols.dtype], symbols.shape
    if isinstance(symbols, (bytes, bytearray, memoryview)):
        try:
            flat = np.frombuffer(symbols, np.uint8)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"{name}: a bytes-like input must be contiguous ({exc})") from None
        return flat, _BYTES, (flat.size,)
    raise DTypeError(
        f"{name} must be a uint8/int8 numpy.ndarray or bytes-like, got {type(symbols).__name__}")


def huffman_encode(symbols):
    """Losslessly encode uint8 / int8 symbols (an array of any shape, or bytes-like).

    Returns the self-describing stream as ``bytes``; ``huffman_decode`` restores the dtype and
    shape (bytes-like input comes back as ``bytes``). Canonical codes are limited to 11 bits;
    the output is identical for either backend and any thread count. Incompressible data grows
    by 9 bytes per 256 KiB block plus a header of 20 + 8 * ndim bytes.
    """
    flat, code, shape = _symbols(symbols, "symbols")
    return _kernels().encode(flat, code, tuple(int(d) for d in shape))


def _blob(blob):
    if isinstance(blob, np.ndarray):
        if blob.dtype not in _DTYPE_CODES or blob.ndim != 1:
            raise DTypeError("blob must be bytes-like or a 1-D uint8/int8 array")
        _checks.require_contiguous(blob, "blob")
        return blob.view(np.uint8)
    if isinstance(blob, (bytes, bytearray, memoryview)):
        try:
            return np.frombuffer(blob, np.uint8)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"blob must be contiguous ({exc})") from None
    raise DTypeError(f"blob must be bytes-like, got {type(blob).__name__}")


_FORMAT_VERSION = 2  # docs/huffman.md; version 1 differed only in its checksums


def _check_version(data):
    """Name the version of a well-formed stream this release cannot read (the kernels only say
    'bad header')."""
    if len(data) >= 5 and bytes(data[:4]) == b"TPHF" and data[4] != _FORMAT_VERSION:
        raise CorruptDataError(f"huffman_decode: unsupported stream version {data[4]} "
                               f"(this tensorpress reads version {_FORMAT_VERSION})")


def huffman_decode(blob, out=None):
    """Decode a stream made by ``huffman_encode``.

    Returns a new array of the original dtype and shape (``bytes`` for bytes-like input), or,
    with ``out`` (a writable C-contiguous array of exactly that dtype and shape), fills ``out``
    and returns it. Raises CorruptDataError for any truncated, damaged or foreign stream (and
    ``out`` then holds unspecified bytes).
    """
    data = _blob(blob)
    _check_version(data)
    kernels = _kernels()
    count, code, shape, _, _ = kernels.parse(data)
    dtype = _CODE_DTYPES[code]
    if out is None:
        target = np.empty(shape, dtype)
    else:
        _checks.require_ndarray(out, "out")
        if out.dtype != dtype:
            raise DTypeError(f"out has dtype {out.dtype}; the stream holds {dtype}")
        if out.shape != tuple(shape):
            raise InvalidArgumentError(f"out has shape {out.shape}; the stream holds {tuple(shape)}")
        _checks.require_contiguous(out, "out")
        _checks.require_writable(out, "out")
        if np.may_share_memory(out, data):
            raise InvalidArgumentError("out overlaps blob in memory")
        target = out
    kernels.decode(data, target.reshape(-1).view(np.uint8))
    if code == _BYTES and out is None:
        return target.tobytes()
    return target


def huffman_code_lengths(counts, max_bits=11):
    """Length-limited Huffman code lengths for up to 256 symbol counts.

    ``counts``: non-negative integers (sum < 2**53). Returns uint8 lengths (0 for unused
    symbols) whose longest is at most ``max_bits`` (1..32): Huffman's lengths, repaired by a
    height-limiting pass when some are longer, with Kraft's sum exactly 1 whenever two or more
    symbols are used (a single used symbol gets length 1). These are the lengths the coder
    uses for a block with these counts (max_bits=11).
    """
    max_bits = _checks.integer(max_bits, "max_bits")
    if not 1 <= max_bits <= 32:
        raise InvalidArgumentError(f"max_bits must be in [1, 32], got {max_bits}")
    arr = np.asarray(counts)
    if arr.size == 0 and arr.dtype == np.float64:  # [] has no dtype of its own
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise DTypeError(f"counts must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size > 256:
        raise InvalidArgumentError(f"counts must be 1-D with at most 256 entries, got shape {arr.shape}")
    if arr.size and int(arr.min()) < 0:
        raise InvalidArgumentError("counts must be >= 0")
    if arr.size and sum(int(c) for c in arr) >= 1 << 53:
        raise InvalidArgumentError("counts must sum to less than 2**53")
    used = int(np.count_nonzero(arr))
    if max_bits < 32 and used > 1 << max_bits:
        raise InvalidArgumentError(f"{used} symbols cannot have codes of at most {max_bits} bits")
    return _kernels().code_lengths(np.ascontiguousarray(arr, dtype=np.int64), max_bits)


def entropy_bits(symbols):
    """The order-0 entropy of ``symbols`` in bits, in total: n * H, with H the Shannon entropy
    of the byte histogram (``entropy_bits(x) / x.size`` is bits per symbol). No order-0 coder,
    this one included, can write the symbols in fewer bits (headers aside)."""
    flat, _, _ = _symbols(symbols, "symbols")
    n = flat.size
    if n == 0:
        return 0.0
    counts = _kernels().histogram(flat)
    nz = counts[counts > 0].astype(np.float64)
    return float(-(nz * np.log2(nz / n)).sum())
