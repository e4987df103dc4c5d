"""Numba twin of csrc/huffman/: the same stream, byte for byte, one module per C file:

    format.py        format.c         constants, header size and bound, writing and parsing it
    crc.py           crc.c            CRC-32 (zlib's)
    code_lengths.py  code_lengths.c   length-limited code lengths, canonical codes
    table.py         table.c          a Huffman block's code-length table, both layouts
    encode.py        encode.c         blocks planned and written; the byte histogram
    decode.py        decode.c         blocks checked and decoded
    common.py        (common.h)       read-only views, the serial/parallel driver factory

Per-block kernels are serial and cached; the drivers over many blocks come in a serial
(cached) and a parallel (prange, not cached) form from one factory, the parallel one above
common.PARALLEL_MIN symbols. Every kernel releases the GIL (nogil=True), as the C calls do, so
threads coding different streams run at once. Integer divisions are by constants or by values
checked nonzero before the call, so Python's error_model never raises in them. The C family's
ISA variants have no twin here: Numba picks the instructions.

This package exposes the functions of tensorpress._native.huffman, and its kernels (so a look
at this module's Numba dispatchers sees them all).
"""

from .code_lengths import canonical_codes, code_lengths, lengths_into
from .crc import crc32
from .decode import decode, decode_all_parallel, decode_all_serial, decode_block
from .encode import (encode, histogram, plan_all_parallel, plan_all_serial, plan_block,
                     write_all_parallel, write_all_serial, write_block)
from .format import BLOCK_LOG2, bound, parse

__all__ = ["BLOCK_LOG2", "bound", "encode", "parse", "decode", "histogram", "code_lengths",
           "crc32", "canonical_codes", "lengths_into", "plan_block", "write_block",
           "decode_block", "plan_all_serial", "plan_all_parallel", "write_all_serial",
           "write_all_parallel", "decode_all_serial", "decode_all_parallel"]
