"""Huffman coding of byte-sized symbols (csrc/huffman/, with a Numba twin in _numba/huffman/).

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

import functools
import zlib

import numpy as np

from . import _checks
from ._backend import huffman as _kernels
from ._consts import HUFFMAN_BYTES as _BYTES
from ._consts import HUFFMAN_INT8, HUFFMAN_MAGIC, HUFFMAN_UINT8
from ._consts import HUFFMAN_MAX_NDIM as _MAX_NDIM
from ._consts import HUFFMAN_VERSION as _FORMAT_VERSION
from .errors import CorruptDataError, DTypeError, InvalidArgumentError

__all__ = ["huffman_encode", "huffman_decode", "huffman_code_lengths", "entropy_bits"]

_DTYPE_CODES = {np.dtype(np.uint8): HUFFMAN_UINT8, np.dtype(np.int8): HUFFMAN_INT8}
_CODE_DTYPES = {HUFFMAN_UINT8: np.dtype(np.uint8), HUFFMAN_INT8: np.dtype(np.int8), _BYTES: np.dtype(np.uint8)}
_MAX_COUNT = 1 << 50


def _symbols(symbols, name):
    """(flat uint8 view, dtype code, shape) of an array or bytes-like input, without copying."""
    if isinstance(symbols, np.ndarray):
        # a plain view: np.matrix stays 2-D under reshape(-1), so the kernels would get a
        # (1, n) "flat" view; masked arrays are refused (their mask would be ignored)
        symbols = _checks.require_ndarray(symbols, name)
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
    return _kernels.encode(flat, code, tuple(int(d) for d in shape))


def _blob(blob):
    if isinstance(blob, np.ndarray):
        blob = _checks.require_ndarray(blob, "blob")
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


# docs/huffman.md: version 1 differed from _FORMAT_VERSION (2) only in its checksums


def _check_version(data):
    """Name the version of a well-formed stream this release cannot read (the kernels only say
    'bad header')."""
    if len(data) >= 5 and bytes(data[:4]) == HUFFMAN_MAGIC and data[4] != _FORMAT_VERSION:
        raise CorruptDataError(f"huffman_decode: unsupported stream version {data[4]} "
                               f"(this tensorpress reads version {_FORMAT_VERSION})")


_RAW, _RLE, _HUFF = 0, 1, 2  # block types (docs/huffman.md section 3)
_HUFF_RANGE = 3  # the float codec's compact-table Huffman block (docs/float_codec.md section 5)
_BLOCK_HEADER = 5               # type byte + CRC-32
_PAYLOAD_START = 145            # a Huffman block's bit streams start here


def _run_crc_direct(symbol, length):
    """CRC-32 of `length` copies of byte `symbol`, in chunks of at most 1 MiB."""
    chunk = memoryview(bytes((symbol,)) * min(length, 1 << 20))
    crc, left = 0, length
    while left:
        n = min(left, len(chunk))
        crc = zlib.crc32(chunk[:n], crc)
        left -= n
    return crc


@functools.lru_cache(maxsize=16)
def _run_crcs(length):
    """CRC-32 of `length` copies of each byte value (index = value) from nine runs: CRC-32 is
    affine, crc(x) = L(x) ^ crc(zeros), so a run of c is the run of zeros XOR, for each bit b
    set in c, (run of 1 << b) ^ (run of zeros). Caps the work of a forged stream whose
    single-symbol blocks use all 256 values."""
    zero = _run_crc_direct(0, length)
    values = np.arange(256)
    crcs = np.full(256, zero, np.uint32)
    for b in range(8):
        crcs[(values >> b) & 1 == 1] ^= np.uint32(_run_crc_direct(1 << b, length) ^ zero)
    return crcs


def _check_blocks(data, count, ndim, header_size, block_log2):
    """Check from the block table alone, before the output is allocated or touched, that each
    block can hold the symbols the header gives it (check_block_table)."""
    bs = 1 << block_log2
    n_blocks = -(-count // bs)
    if not n_blocks:
        return
    table = 16 + 8 * ndim
    sizes = data[table:table + 4 * n_blocks].view("<u4").astype(np.int64)
    offsets = header_size + np.cumsum(sizes) - sizes  # parse() checked that they add up
    lens = np.full(n_blocks, bs, np.int64)
    lens[-1] = count - (n_blocks - 1) * bs
    check_block_table(data, offsets, sizes, lens, "huffman_decode")


def check_block_table(data, offsets, sizes, lens, who, allow_range=False):
    """Check that the blocks (section 3 of docs/huffman.md) at `offsets` of the stream `data`,
    of `sizes` bytes, can each hold its `lens` symbols: a raw block exactly its payload, a
    Huffman block at most 8 per payload byte (every code is at least 1 bit long), a
    single-symbol block any run, when the CRC-32 it stores is that run's. A forged count (a few
    bytes claiming gigabytes) is refused here; what passes is what the stream's bytes really
    encode, up to the bit-level checks (code lengths, streams, the CRC-32 of decoded bytes) that
    need decoding. The float codec's stream, made of the same blocks, is checked here too; with
    `allow_range` its compact-table Huffman blocks (type 3) are accepted, their table's size read
    from the block."""
    types = data[offsets]
    rle = types == _RLE
    fits = ((types == _RAW) & (sizes == _BLOCK_HEADER + lens) & (lens >= 2)) | (rle & (sizes == _BLOCK_HEADER + 1)) \
        | ((types == _HUFF) & (sizes >= _PAYLOAD_START) & (lens <= 8 * (sizes - _PAYLOAD_START)))
    if allow_range:
        ranged = (types == _HUFF_RANGE) & (sizes >= _BLOCK_HEADER + 2 + 12)
        at = offsets[ranged]
        count = data[at + _BLOCK_HEADER + 1].astype(np.int64) + 1
        payload_start = _BLOCK_HEADER + 2 + (count + 1) // 2 + 12
        ok = (data[at + _BLOCK_HEADER].astype(np.int64) + count <= 256) & (sizes[ranged] >= payload_start) \
            & (lens[ranged] <= 8 * (sizes[ranged] - payload_start))
        fits[np.flatnonzero(ranged)[ok]] = True
    if not fits.all():
        b = int(np.argmin(fits))
        raise CorruptDataError(f"{who}: corrupt data (block {b}, {int(sizes[b])} bytes of "
                               f"type {int(types[b])}, cannot hold its {int(lens[b])} symbols)")
    if rle.any():
        at = offsets[rle]
        stored = (data[at + 1].astype(np.uint32) | data[at + 2].astype(np.uint32) << 8
                  | data[at + 3].astype(np.uint32) << 16 | data[at + 4].astype(np.uint32) << 24)
        symbols, lengths = data[at + _BLOCK_HEADER], lens[rle]
        for length in np.unique(lengths):
            mine = lengths == length
            used = np.unique(symbols[mine])
            if used.size < 9:  # fewer runs than _run_crcs' nine
                crcs = np.zeros(256, np.uint32)
                crcs[used] = [_run_crc_direct(int(c), int(length)) for c in used]
            else:
                crcs = _run_crcs(int(length))
            if (crcs[symbols[mine]] != stored[mine]).any():
                raise CorruptDataError(f"{who}: corrupt data (a single-symbol block fails its checksum)")


def decoder_out(out, dtype, shape, data):
    """`out` checked as a decoder's destination (the stream `data` holds `dtype` x `shape`):
    a plain, writable, C-contiguous array of exactly those, sharing no memory with the stream.
    huffman_decode's and float_decode's, before they touch it."""
    out = _checks.require_ndarray(out, "out")
    if out.dtype != dtype:
        raise DTypeError(f"out has dtype {out.dtype}; the stream holds {dtype}")
    if out.shape != tuple(shape):
        raise InvalidArgumentError(f"out has shape {out.shape}; the stream holds {tuple(shape)}")
    _checks.require_contiguous(out, "out")
    _checks.require_writable(out, "out")
    if np.may_share_memory(out, data):
        raise InvalidArgumentError("out overlaps blob in memory")
    return out


def huffman_decode(blob, out=None, *, max_count=None):
    """Decode a stream made by ``huffman_encode``.

    Returns a new array of the original dtype and shape (``bytes`` for bytes-like input), or,
    with ``out`` (a writable C-contiguous array of exactly that dtype and shape), fills ``out``
    and returns it. Raises CorruptDataError for any truncated, damaged or foreign stream.

    Memory: nothing is allocated (and ``out`` is not touched) before the header, its checksum
    and every block's type and size have been checked against the symbol count, so a stream
    can only make this allocate what its bytes encode (raw blocks byte for byte, Huffman
    blocks at most 8 symbols per byte, single-symbol blocks runs whose CRC-32 is right).
    ``max_count`` (an int >= 0) refuses, with CorruptDataError and before allocating, a stream
    declaring more symbols: callers that know the size to expect (the .tpz reader) pass it.

    Damage inside a Huffman or raw block's bits or its decoded bytes' CRC-32 is found only
    while decoding: ``out`` then holds partial, unspecified bytes (a new array is discarded).
    """
    data = _blob(blob)
    if max_count is not None:
        max_count = _checks.integer(max_count, "max_count")
        if max_count < 0:
            raise InvalidArgumentError(f"max_count must be >= 0, got {max_count}")
    _check_version(data)
    kernels = _kernels
    count, code, shape, header_size, block_log2 = kernels.parse(data)
    if max_count is not None and count > max_count:
        raise CorruptDataError(f"huffman_decode: the stream declares {count} symbols, more than "
                               f"the {max_count} expected")
    dtype = _CODE_DTYPES[code]
    if out is not None:
        out = decoder_out(out, dtype, shape, data)
    _check_blocks(data, count, len(shape), header_size, block_log2)
    target = np.empty(shape, dtype) if out is None else out
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
    return _kernels.code_lengths(np.ascontiguousarray(arr, dtype=np.int64), max_bits)


def entropy_bits(symbols):
    """The order-0 entropy of ``symbols`` in bits, in total: n * H, with H the Shannon entropy
    of the byte histogram (``entropy_bits(x) / x.size`` is bits per symbol). No order-0 coder,
    this one included, can write the symbols in fewer bits (headers aside)."""
    flat, _, _ = _symbols(symbols, "symbols")
    n = flat.size
    if n == 0:
        return 0.0
    counts = _kernels.histogram(flat)
    nz = counts[counts > 0].astype(np.float64)
    return float(-(nz * np.log2(nz / n)).sum())
