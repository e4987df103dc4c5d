"""A plain reference of the float codec stream (docs/float_codec.md), written from the spec:
the planes with NumPy, the header with struct, each block by the Huffman reference's block
decoder. Slow (bit by bit): for small streams."""

import struct

import numpy as np

from .huffman import Corrupt, crc32, decode_block

WIDTH = {0: 4, 1: 8, 2: 2, 3: 2}  # dtype code -> bytes per element (planes)
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def planes(bits):
    """The W byte planes (a (W, n) uint8 array) of flat unsigned-integer element bits."""
    width = bits.dtype.itemsize
    nbits = np.uint64(8 * width)
    b = bits.astype(np.uint64)
    mask = np.uint64((1 << (8 * width)) - 1)
    r = ((b << np.uint64(1)) | (b >> (nbits - np.uint64(1)))) & mask
    return np.stack([((r >> np.uint64(8 * p)) & np.uint64(255)).astype(np.uint8) for p in range(width)])


def merge(plane_rows, width):
    """The element bits (unsigned integers of `width` bytes) of W byte planes."""
    r = np.zeros(plane_rows.shape[1], np.uint64)
    for p in range(width):
        r |= plane_rows[p].astype(np.uint64) << np.uint64(8 * p)
    nbits = np.uint64(8 * width)
    mask = np.uint64((1 << (8 * width)) - 1)
    b = ((r >> np.uint64(1)) | (r << (nbits - np.uint64(1)))) & mask
    return b.astype(UINT[width])


def decode(blob):
    """(dtype code, shape, element bits as unsigned integers) of a stream, or raise Corrupt."""
    blob = bytes(blob)
    if len(blob) < 20 or blob[:4] != b"TPFC" or blob[4] != 1 or blob[5] not in WIDTH:
        raise Corrupt("header")
    dtype, ndim, chunk_log2 = blob[5], blob[6], blob[7]
    width = WIDTH[dtype]
    if ndim > 32 or not 10 <= chunk_log2 <= 20:
        raise Corrupt("header")
    (count,) = struct.unpack_from("<Q", blob, 8)
    if count > 1 << 50 or len(blob) < 16 + 8 * ndim + 4:
        raise Corrupt("header")
    shape = struct.unpack_from(f"<{ndim}Q", blob, 16)
    if any(d > 1 << 50 for d in shape) or int(np.prod(shape, dtype=object)) != count:
        raise Corrupt("shape")
    cs = 1 << chunk_log2
    n_blocks = -(-count // cs) * width
    hsize = 16 + 8 * ndim + 4 * n_blocks + 4
    if hsize > len(blob) or crc32(blob[:hsize - 4]) != struct.unpack_from("<I", blob, hsize - 4)[0]:
        raise Corrupt("header checksum")
    sizes = struct.unpack_from(f"<{n_blocks}I", blob, 16 + 8 * ndim)
    if any(s < 6 for s in sizes) or sum(sizes) != len(blob) - hsize:
        raise Corrupt("length")
    chunks, off = [], hsize
    for c in range(n_blocks // width):
        length = min(cs, count - c * cs)
        rows = []
        for p in range(width):
            size = sizes[c * width + p]
            rows.append(np.frombuffer(decode_block(blob[off:off + size], length, allow_range=True), np.uint8))
            off += size
        chunks.append(merge(np.stack(rows), width))
    bits = np.concatenate(chunks) if chunks else np.zeros(0, UINT[width])
    return dtype, tuple(shape), bits
