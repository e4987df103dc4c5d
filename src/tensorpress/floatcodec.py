"""Lossless compression of floating-point tensors (csrc/floatcodec/, with a Numba twin in
_numba/floatcodec.py).

    blob = tp.float_encode(x)           # x: float32, float64, float16 or bfloat16, any shape
    y = tp.float_decode(blob)           # the same dtype, shape and bits
    tp.float_decode(blob, out=y)        # into an existing array

Each element's bits are rotated left by one (the sign moves next to the mantissa, so one byte
holds the exponent, or its top eight bits) and split into byte planes; every plane of every
chunk of 128 KiB (256 KiB for float32 and float64) is one block of the Huffman stream's format, Huffman-coded where
that pays (with a compact code table) and stored raw where it does not (near-random mantissa
bytes). Exponents of trained
weights take 2.5-3 bits, so bfloat16 weights shrink to about 2/3 and float32 to about 5/6.
Every bit pattern round-trips: NaN payloads, signed zeros, subnormals, infinities. The split
and the merge run inside the kernels, chunk by chunk in cache, in parallel over chunks.
docs/float_codec.md specifies the stream byte for byte.
"""

import numpy as np

from . import _checks
from ._backend import floatcodec as _kernels
from ._consts import BFLOAT16, FLOAT16, FLOAT32, FLOAT64
from ._consts import FLOAT_CODEC_CHUNK_LOG2 as _CHUNK_LOG2
from ._consts import FLOAT_CODEC_MAGIC as _MAGIC
from ._consts import FLOAT_CODEC_MAX_NDIM as _MAX_NDIM
from ._consts import FLOAT_CODEC_VERSION as _FORMAT_VERSION
from .errors import CorruptDataError, DTypeError, InvalidArgumentError
from .huffman import _blob, check_block_table, decoder_out

__all__ = ["float_encode", "float_decode"]

try:
    import ml_dtypes

    _BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    _BF16 = None

_DTYPE_CODES = {np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64,
                np.dtype(np.float16): FLOAT16}
if _BF16 is not None:
    _DTYPE_CODES[_BF16] = BFLOAT16
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_MAX_COUNT = 1 << 50


def _bits_view(x):
    """The flat unsigned-integer view of x's elements (no copy)."""
    return x.reshape(-1).view(_BITS[x.dtype.itemsize])


def float_encode(x):
    """Losslessly encode a float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16``)
    array of any shape (at most 32 dimensions; C-contiguous: no hidden copy is made).

    Returns the self-describing stream as ``bytes``; ``float_decode`` restores the dtype, the
    shape and every bit. The output is identical for either backend and any thread count.
    Incompressible data (random bits) grows by 9 bytes per byte plane of each chunk (a block
    header and its size: 0.007% for float16, 0.014% for bfloat16 and float32, 0.027% for
    float64), plus a header of 20 + 8 * ndim bytes.
    """
    x = _checks.require_ndarray(x, "x")
    if x.dtype not in _DTYPE_CODES:
        raise DTypeError(f"x has dtype {x.dtype}; expected float32, float64, float16 or bfloat16 "
                         "(native byte order)")
    _checks.require_contiguous(x, "x")
    if x.ndim > _MAX_NDIM:
        raise InvalidArgumentError(f"x has {x.ndim} dimensions; at most {_MAX_NDIM}")
    if x.size > _MAX_COUNT:
        raise InvalidArgumentError("x has more than 2**50 elements")
    return _kernels.encode(_bits_view(x), _DTYPE_CODES[x.dtype], tuple(int(d) for d in x.shape),
                           _CHUNK_LOG2[x.dtype.name])


def _check_version(data):
    if len(data) >= 5 and bytes(data[:4]) == _MAGIC and data[4] != _FORMAT_VERSION:
        raise CorruptDataError(f"float_decode: unsupported stream version {data[4]} "
                               f"(this tensorpress reads version {_FORMAT_VERSION})")


def _check_blocks(data, count, itemsize, ndim, header_size, chunk_log2):
    """Every block checked against its plane's length from the block table alone, before the
    output is allocated or touched (huffman.check_block_table)."""
    cs = 1 << chunk_log2
    n_chunks = -(-count // cs)
    if not n_chunks:
        return
    n_blocks = n_chunks * itemsize
    table = 16 + 8 * ndim
    sizes = data[table:table + 4 * n_blocks].view("<u4").astype(np.int64)
    offsets = header_size + np.cumsum(sizes) - sizes  # parse() checked that they add up
    lens = np.full(n_chunks, cs, np.int64)
    lens[-1] = count - (n_chunks - 1) * cs
    check_block_table(data, offsets, sizes, np.repeat(lens, itemsize), "float_decode", allow_range=True)


def float_decode(blob, out=None, *, max_count=None):
    """Decode a stream made by ``float_encode``.

    Returns a new array of the original dtype and shape, or, with ``out`` (a writable
    C-contiguous array of exactly that dtype and shape), fills ``out`` and returns it. Raises
    CorruptDataError for any truncated, damaged or foreign stream.

    Memory: nothing is allocated (and ``out`` is not touched) before the header, its checksum
    and every block's type and size have been checked against the element count, so a stream
    can only make this allocate what its bytes encode. ``max_count`` (an int >= 0) refuses, with
    CorruptDataError and before allocating, a stream declaring more elements.

    Damage inside a block's bits or its decoded bytes' CRC-32 is found only while decoding:
    ``out`` then holds partial, unspecified values (a new array is discarded).
    """
    data = _blob(blob)
    if max_count is not None:
        max_count = _checks.integer(max_count, "max_count")
        if max_count < 0:
            raise InvalidArgumentError(f"max_count must be >= 0, got {max_count}")
    _check_version(data)
    count, code, shape, header_size, chunk_log2 = _kernels.parse(data)
    if max_count is not None and count > max_count:
        raise CorruptDataError(f"float_decode: the stream declares {count} elements, more than "
                               f"the {max_count} expected")
    dtype = _CODE_DTYPES.get(code)
    if dtype is None:  # pragma: no cover - bfloat16 without ml_dtypes
        raise DTypeError("float_decode: the stream holds bfloat16, which needs ml_dtypes")
    if out is not None:
        out = decoder_out(out, dtype, shape, data)
    _check_blocks(data, count, dtype.itemsize, len(shape), header_size, chunk_log2)
    target = np.empty(shape, dtype) if out is None else out
    _kernels.decode(data, _bits_view(target))
    return target
