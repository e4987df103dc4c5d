"""The stream format (csrc/huffman/format.c): constants, the header's size and bound, writing
and parsing the header. docs/huffman.md specifies every byte."""

import numba as nb
import numpy as np

from ...errors import CorruptDataError
from .crc import crc32

MAX_BITS = 11
TABLE = 1 << MAX_BITS
BLOCK_LOG2 = 18
MIN_BLOCK_LOG2 = 10
MAX_BLOCK_LOG2 = 24
MAX_NDIM = 32
MAX_COUNT = 1 << 50
BLOCK_HEADER = 5
PAYLOAD_START = BLOCK_HEADER + 128 + 12
MAGIC = b"TPHF"
VERSION = 2
RAW, RLE, HUFF = 0, 1, 2
HUFF_RANGE = 3  # type 2 with a range table: the float codec's streams only (table.py)

OK = 0
ERR_CORRUPT = -2


@nb.njit(cache=True, nogil=True, inline="always")  # a call per use would cost more than the work
def put32le(dst, p, v):
    for j in range(4):
        dst[p + j] = np.uint8((v >> np.uint64(8 * j)) & np.uint64(255))


def block_count(count, block_log2):
    return (count + (1 << block_log2) - 1) >> block_log2


def header_size(count, ndim, block_log2):
    return 16 + 8 * ndim + 4 * block_count(count, block_log2) + 4


def bound(count, ndim, block_log2=BLOCK_LOG2):
    return header_size(count, ndim, block_log2) + BLOCK_HEADER * block_count(count, block_log2) + count


def write_header(dst, count, dtype_code, shape, block_log2, sizes):
    """The header into dst[:header_size], block sizes and checksum included."""
    hsize = header_size(count, len(shape), block_log2)
    head = bytearray()
    head += MAGIC
    head += bytes((VERSION, dtype_code, len(shape), block_log2))
    head += int(count).to_bytes(8, "little")
    for d in shape:
        head += int(d).to_bytes(8, "little")
    head += sizes.astype("<u4").tobytes()
    dst[:hsize - 4] = np.frombuffer(bytes(head), np.uint8)
    dst[hsize - 4:hsize] = np.frombuffer(int(crc32(dst, 0, hsize - 4)).to_bytes(4, "little"), np.uint8)


def block_sizes(blob, ndim, n_blocks):
    """The block-size table of a parsed stream, as int64."""
    return blob[16 + 8 * ndim:16 + 8 * ndim + 4 * n_blocks].view("<u4").astype(np.int64)


def corrupt(what):
    raise CorruptDataError(f"huffman_decode: corrupt or truncated data ({what})")


def parse(blob):
    """(count, dtype_code, shape, header_size, block_log2) of a validated-header stream."""
    size = blob.size
    if size < 20 or bytes(blob[:4]) != MAGIC:
        corrupt("not a tensorpress Huffman stream")
    version, dtype_code, ndim, block_log2 = (int(v) for v in blob[4:8])
    if version != VERSION or dtype_code > 2:
        corrupt("unknown version or dtype")
    if ndim > MAX_NDIM or (dtype_code == 2 and ndim != 1):
        corrupt("bad shape")
    if not MIN_BLOCK_LOG2 <= block_log2 <= MAX_BLOCK_LOG2:
        corrupt("bad block size")
    count = int.from_bytes(bytes(blob[8:16]), "little")
    if count > MAX_COUNT or size < 16 + 8 * ndim + 4:
        corrupt("bad symbol count")
    shape = []
    product = 1
    for d in range(ndim):
        dim = int.from_bytes(bytes(blob[16 + 8 * d:24 + 8 * d]), "little")
        if dim > MAX_COUNT:
            corrupt("bad shape")
        product = product if product > MAX_COUNT else product * dim
        shape.append(dim)
    if product != count:
        corrupt("shape does not match the symbol count")
    hsize = header_size(count, ndim, block_log2)
    if hsize > size:
        corrupt("truncated header")
    if int(crc32(blob, 0, hsize - 4)) != int.from_bytes(bytes(blob[hsize - 4:hsize]), "little"):
        corrupt("header checksum mismatch")
    n_blocks = block_count(count, block_log2)
    sizes = block_sizes(blob, ndim, n_blocks)
    if n_blocks and int(sizes.min()) < BLOCK_HEADER + 1:
        corrupt("bad block size")
    if int(sizes.sum()) != size - hsize:
        corrupt("stream length does not match its block sizes")
    return count, dtype_code, tuple(shape), hsize, block_log2
