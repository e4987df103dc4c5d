"""C backend of the Huffman coder (csrc/huffman.c): pointers taken, one call, status -> exception.

Arguments arrive validated by tensorpress.huffman: `src` / `out` are 1-D C-contiguous uint8
views, `blob` a 1-D uint8 array over the stream's bytes.
"""

import numpy as np

from ..errors import CorruptDataError, InvalidArgumentError
from . import ISA_CODES, check, ffi, lib

BLOCK_LOG2 = lib.TP_HUFFMAN_BLOCK_LOG2


def _u8(a):
    return ffi.cast("uint8_t *", ffi.from_buffer(a))


def bound(count, ndim, block_log2=BLOCK_LOG2):
    return lib.tp_huffman_bound(count, ndim, block_log2)


def _encode(src, dtype_code, shape, block_log2, isa):
    count, ndim = src.size, len(shape)
    capacity = lib.tp_huffman_bound(count, ndim, block_log2)
    if capacity < 0:
        raise InvalidArgumentError("huffman_encode: too many symbols or dimensions")
    dst = np.empty(capacity, np.uint8)
    workspace = np.empty(max(1, (lib.tp_huffman_workspace_size(count, block_log2) + 7) // 8), np.uint64)
    shape_arr = ffi.new("int64_t[]", [int(d) for d in shape] or [0])
    written = ffi.new("int64_t *")
    args = (_u8(src), count, dtype_code, ndim, shape_arr, block_log2, _u8(dst), capacity,
            ffi.from_buffer(workspace), workspace.nbytes, written)
    if isa is None:
        status = lib.tp_huffman_encode(*args)
    else:
        status = lib.tp_huffman_encode_isa(*args, ISA_CODES[isa])
    check(status, "huffman_encode")
    return dst[: written[0]].tobytes()


def encode(src, dtype_code, shape, block_log2=BLOCK_LOG2):
    return _encode(src, dtype_code, shape, block_log2, None)


def encode_isa(src, dtype_code, shape, isa, block_log2=BLOCK_LOG2):
    """encode with one named kernel variant ("scalar", "baseline", "avx2", ...)."""
    return _encode(src, dtype_code, shape, block_log2, isa)


def parse(blob):
    """(count, dtype_code, shape, header_size, block_log2) of a stream whose header checks out."""
    info = ffi.new("tp_huffman_info *")
    status = lib.tp_huffman_parse(_u8(blob) if blob.size else ffi.NULL, blob.size, info)
    if status == lib.TP_ERR_CORRUPT:
        raise CorruptDataError("huffman_decode: corrupt or truncated data (bad header)")
    check(status, "huffman_decode")
    return (info.count, info.dtype, tuple(info.shape[d] for d in range(info.ndim)),
            info.header_size, info.block_log2)


def _decode(blob, out, isa):
    dst = _u8(out) if out.size else ffi.NULL
    if isa is None:
        status = lib.tp_huffman_decode(_u8(blob), blob.size, dst, out.size)
    else:
        status = lib.tp_huffman_decode_isa(_u8(blob), blob.size, dst, out.size, ISA_CODES[isa])
    check(status, "huffman_decode")


def decode(blob, out):
    _decode(blob, out, None)


def decode_isa(blob, out, isa):
    _decode(blob, out, isa)


def histogram(src):
    counts = np.empty(256, np.int64)
    check(lib.tp_huffman_histogram(_u8(src) if src.size else ffi.NULL, src.size,
                                   ffi.cast("int64_t *", ffi.from_buffer(counts))),
          "histogram")
    return counts


def code_lengths(counts, max_bits):
    lengths = np.zeros(counts.size, np.uint8)
    status = lib.tp_huffman_code_lengths(
        ffi.cast("int64_t *", ffi.from_buffer(counts)) if counts.size else ffi.NULL,
        counts.size, max_bits, _u8(lengths) if counts.size else ffi.NULL)
    if status == lib.TP_ERR_ARGUMENT:
        raise InvalidArgumentError(
            f"huffman_code_lengths: more than 2**{max_bits} symbols are used")
    check(status, "huffman_code_lengths")
    return lengths
