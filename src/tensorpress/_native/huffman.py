"""C backend of the Huffman coder (csrc/huffman/): pointers taken, one call, status -> exception.

Arguments arrive validated by tensorpress.huffman: `src` / `out` are 1-D C-contiguous uint8
views, `blob` a 1-D uint8 array over the stream's bytes. Every kernel takes `isa`: None runs
the current variant, a name ("scalar", "baseline", "avx2", "avx512") that one (tests and
benchmarks; "scalar" is the plain reference, csrc/huffman/ref.c).
"""

import numpy as np

from ..errors import CorruptDataError, InvalidArgumentError
from . import check, ffi, isa_code, lib
from .new_bytes import encoded

BLOCK_LOG2 = lib.TP_HUFFMAN_BLOCK_LOG2


def _u8(a):
    return ffi.cast("uint8_t *", ffi.from_buffer(a)) if a.size else ffi.NULL


def bound(count, ndim, block_log2=BLOCK_LOG2):
    return lib.tp_huffman_bound(count, ndim, block_log2)


def encode(src, dtype_code, shape, block_log2=BLOCK_LOG2, isa=None):
    """The stream of `src` (its dtype code and shape are stored) as bytes, written in place
    (new_bytes: no copy)."""
    count, ndim = src.size, len(shape)
    capacity = lib.tp_huffman_bound(count, ndim, block_log2)
    if capacity < 0:
        raise InvalidArgumentError("huffman_encode: too many symbols or dimensions")
    workspace = np.empty(max(1, (lib.tp_huffman_workspace_size(count, block_log2) + 7) // 8), np.uint64)
    return encoded(lib.tp_huffman_encode_isa, "huffman_encode", _u8(src), count, dtype_code, shape,
                   block_log2, capacity, workspace, isa_code(isa))


def parse(blob):
    """(count, dtype_code, shape, header_size, block_log2) of a stream whose header checks out."""
    info = ffi.new("tp_huffman_info *")
    status = lib.tp_huffman_parse(_u8(blob), blob.size, info)
    if status == lib.TP_ERR_CORRUPT:
        raise CorruptDataError("huffman_decode: corrupt or truncated data (bad header)")
    check(status, "huffman_decode")
    return (info.count, info.dtype, tuple(info.shape[d] for d in range(info.ndim)),
            info.header_size, info.block_log2)


def decode(blob, out, isa=None):
    """Decode a stream into `out` (exactly the header's count)."""
    check(lib.tp_huffman_decode_isa(_u8(blob), blob.size, _u8(out), out.size, isa_code(isa)),
          "huffman_decode")


def histogram(src, isa=None):
    counts = np.empty(256, np.int64)
    check(lib.tp_huffman_histogram_isa(_u8(src), src.size,
                                       ffi.cast("int64_t *", ffi.from_buffer(counts)), isa_code(isa)),
          "histogram")
    return counts


def crc32(data, crc=0, isa=None):
    """zlib.crc32(data, crc) of a 1-D uint8 array."""
    out = ffi.new("uint32_t *")
    check(lib.tp_huffman_crc32_isa(_u8(data), data.size, crc, out, isa_code(isa)), "crc32")
    return int(out[0])


def code_lengths(counts, max_bits, isa=None):
    lengths = np.zeros(counts.size, np.uint8)
    counts_ptr = ffi.cast("int64_t *", ffi.from_buffer(counts)) if counts.size else ffi.NULL
    status = lib.tp_huffman_code_lengths_isa(counts_ptr, counts.size, max_bits, _u8(lengths),
                                             isa_code(isa))
    if status == lib.TP_ERR_ARGUMENT:
        raise InvalidArgumentError(
            f"huffman_code_lengths: more than 2**{max_bits} symbols are used")
    check(status, "huffman_code_lengths")
    return lengths
