"""C backend of the lossless float codec (csrc/floatcodec/): pointers taken, one call, status ->
exception.

Arguments arrive validated by tensorpress.floatcodec: `src` / `out` are 1-D C-contiguous
unsigned-integer views of the elements (uint16 for bfloat16 / float16, uint32, uint64), `blob`
a 1-D uint8 array over the stream's bytes. `isa` as every family takes it (_native.isa_code).
"""

import numpy as np

from ..errors import CorruptDataError, InvalidArgumentError
from . import check, ffi, get_num_threads, isa_code, lib
from .new_bytes import encoded


def _u8(a):
    return ffi.cast("uint8_t *", ffi.from_buffer(a)) if a.size else ffi.NULL


def _ptr(a):
    return ffi.cast("void *", ffi.from_buffer(a)) if a.size else ffi.NULL


MIN_BYTES_PER_THREAD = 1 << 19  # csrc/floatcodec: FLOAT_MIN_BYTES_PER_THREAD


def _workspace(count, dtype_code, chunk_log2, encode):
    """Scratch for as many threads as the kernel will use (it runs as many as this holds):
    one per 512 KiB of elements, at most get_num_threads(), so a high thread setting does not
    allocate scratch for threads a small tensor never starts."""
    itemsize = 2 if dtype_code in (lib.TP_FLOAT16, lib.TP_BFLOAT16) else 4 if dtype_code == lib.TP_FLOAT32 else 8
    threads = max(1, min(get_num_threads(), count * itemsize // MIN_BYTES_PER_THREAD))
    size = lib.tp_float_workspace_size(count, dtype_code, chunk_log2, threads, encode)
    if size < 0:
        raise InvalidArgumentError("float codec: too many elements")
    return np.empty(max(1, (size + 7) // 8), np.uint64)


def bound(count, dtype_code, ndim, chunk_log2):
    return lib.tp_float_bound(count, dtype_code, ndim, chunk_log2)


def encode(src, dtype_code, shape, chunk_log2, isa=None):
    """The stream of the elements `src` (their dtype code and shape are stored) as bytes, written
    in place (new_bytes: no copy; the pages past its end were never touched)."""
    count, ndim = src.size, len(shape)
    capacity = lib.tp_float_bound(count, dtype_code, ndim, chunk_log2)
    if capacity < 0:
        raise InvalidArgumentError("float_encode: too many elements or dimensions")
    workspace = _workspace(count, dtype_code, chunk_log2, 1)
    return encoded(lib.tp_float_encode_isa, "float_encode", _ptr(src), count, dtype_code, shape,
                   chunk_log2, capacity, workspace, isa_code(isa))


def parse(blob):
    """(count, dtype_code, shape, header_size, chunk_log2) of a stream whose header checks out."""
    info = ffi.new("tp_float_info *")
    status = lib.tp_float_parse(_u8(blob), blob.size, info)
    if status == lib.TP_ERR_CORRUPT:
        raise CorruptDataError("float_decode: corrupt or truncated data (bad header)")
    check(status, "float_decode")
    return (info.count, info.dtype, tuple(info.shape[d] for d in range(info.ndim)),
            info.header_size, info.chunk_log2)


def decode(blob, out, isa=None):
    """Decode a checked stream into `out` (exactly the header's count of its dtype's size)."""
    _, dtype_code, _, _, chunk_log2 = parse(blob)
    workspace = _workspace(out.size, dtype_code, chunk_log2, 0)
    check(lib.tp_float_decode_isa(_u8(blob), blob.size, _ptr(out), out.size,
                                  ffi.from_buffer(workspace), workspace.nbytes, isa_code(isa)),
          "float_decode")
