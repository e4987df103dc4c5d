"""Numba twin of csrc/floatcodec/: the lossless float codec's stream, byte for byte
(docs/float_codec.md), one section per C file:

    format.c    the header: its size and bound, writing it, parsing (checking) it
    planes.h    the split of a chunk into byte planes (rotated left by one) and their merge
    encode.c    per chunk: split, each plane planned, its block type chosen (choose_block), written
    decode.c    per chunk: each plane's block decoded and checked, the planes merged

Every plane of every chunk is one block of the Huffman stream, or of its type 3 (a range code
table, huffman/table.py) that only this stream uses: the Huffman twin's block kernels
(huffman.plan_block, write_block, decode_block) code them, so both streams share one block coder
per backend. The chunk drivers come in a serial (cached) and a parallel (prange, not cached)
form from one function (serial_and_parallel), the parallel one above PARALLEL_MIN bytes of
elements when threads may run; chunks are independent and each is coded in its own scratch,
so the bytes never depend on the thread count.

Where this departs from the C code without changing a byte: the encoder writes each chunk in a
slot of the stream's bound (chunk c at header + c * planes * (5 + chunk), which the chunk's
blocks never outgrow) and the returned bytes are the header and the slots' used parts joined,
the one copy the C backend's `tobytes()` makes too; so no chunk waits for the previous one's
size. Raw planes (most mantissa planes) are written and read here, checksum and copy, rather
than by the block kernels, whose slice assignment runs slower than a loop; the decoder checks a
raw plane's CRC-32 in the stream and copies it into the chunk's scratch, where the C decoder
merges it from the stream in place.

Bit arithmetic stays in uint64 (Numba turns mixed int64/uint64 arithmetic into float64). The
split and merge take the element width from the array's dtype when they compile (one loop per
width, @overload), since an array's itemsize is a run-time value for Numba.
"""

import numba as nb
import numpy as np
from numba.extending import overload

from .._consts import (BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FLOAT_CODEC_MAGIC,
                       FLOAT_CODEC_MAX_CHUNK_LOG2, FLOAT_CODEC_MAX_NDIM, FLOAT_CODEC_MIN_CHUNK_LOG2,
                       FLOAT_CODEC_VERSION)
from ..errors import CorruptDataError, InvalidArgumentError
from . import check_isa
from .huffman.common import PARALLEL_MIN, readonly, serial_and_parallel, use_parallel
from .huffman.crc import crc32, read32
from .huffman.decode import decode_block
from .huffman.encode import plan_block, write_block
from .huffman.format import (BLOCK_HEADER, ERR_CORRUPT, HUFF, HUFF_RANGE, PAYLOAD_START, RAW,
                             RLE, TABLE, put32le)
from .huffman.table import range_table_bytes

MAX_COUNT = 1 << 50
# A plane is Huffman-coded only when that saves at least 1/MIN_GAIN of its raw bytes
# (FLOAT_MIN_GAIN, docs/float_codec.md section 6).
MIN_GAIN = 64
# A plane of at least SAMPLE_MIN bytes whose every SAMPLE_STEP-th byte looks uniformly random
# (sum c (c - 1) * RANDOM_PAIRS <= n (n - 1) over the sample's counts) is stored raw without
# being counted in full (FLOAT_SAMPLE_MIN .. FLOAT_RANDOM_PAIRS, docs/float_codec.md section 6).
SAMPLE_MIN = 16384
SAMPLE_STEP = 8
RANDOM_PAIRS = 239
PLANES = {FLOAT32: 4, FLOAT64: 8, FLOAT16: 2, BFLOAT16: 2}
_BITS_DTYPE = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_BAD_HEADER = "float_decode: corrupt or truncated data (bad header)"


# ---- format.c ----------------------------------------------------------------------------------

def _chunk_count(count, chunk_log2):
    return (count + (1 << chunk_log2) - 1) >> chunk_log2


def _header_size(count, ndim, chunk_log2, planes):
    return 16 + 8 * ndim + 4 * planes * _chunk_count(count, chunk_log2) + 4


def _arguments_ok(count, dtype_code, chunk_log2):
    return (0 <= count <= MAX_COUNT and dtype_code in PLANES
            and FLOAT_CODEC_MIN_CHUNK_LOG2 <= chunk_log2 <= FLOAT_CODEC_MAX_CHUNK_LOG2)


def bound(count, dtype_code, ndim, chunk_log2):
    """The largest stream `count` elements can need (tp_float_bound); -1 when an argument is out
    of range."""
    if not _arguments_ok(count, dtype_code, chunk_log2) or not 0 <= ndim <= FLOAT_CODEC_MAX_NDIM:
        return -1
    planes = PLANES[dtype_code]
    return (_header_size(count, ndim, chunk_log2, planes)
            + BLOCK_HEADER * planes * _chunk_count(count, chunk_log2) + planes * count)


def _header(count, dtype_code, shape, chunk_log2, sizes):
    """The header's bytes, block-size table and checksum included."""
    head = bytearray(FLOAT_CODEC_MAGIC)
    head += bytes((FLOAT_CODEC_VERSION, dtype_code, len(shape), chunk_log2))
    head += int(count).to_bytes(8, "little")
    for d in shape:
        head += int(d).to_bytes(8, "little")
    head += sizes.astype("<u4").tobytes()
    arr = np.frombuffer(bytes(head), np.uint8)
    head += int(crc32(arr, 0, arr.size)).to_bytes(4, "little")
    return bytes(head)


def _bad_header():
    raise CorruptDataError(_BAD_HEADER)


def parse(blob):
    """(count, dtype_code, shape, header_size, chunk_log2) of a stream whose header, header
    checksum and block-size table check out (tp_float_parse's rules F1-F8); CorruptDataError
    otherwise."""
    size = blob.size
    if size < 20 or bytes(blob[:4]) != FLOAT_CODEC_MAGIC:
        _bad_header()
    version, dtype_code, ndim, chunk_log2 = (int(v) for v in blob[4:8])
    if version != FLOAT_CODEC_VERSION or dtype_code not in PLANES:
        _bad_header()
    if ndim > FLOAT_CODEC_MAX_NDIM:
        _bad_header()
    if not FLOAT_CODEC_MIN_CHUNK_LOG2 <= chunk_log2 <= FLOAT_CODEC_MAX_CHUNK_LOG2:
        _bad_header()
    count = int.from_bytes(bytes(blob[8:16]), "little")
    if count > MAX_COUNT or size < 16 + 8 * ndim + 4:
        _bad_header()
    shape = []
    product = 1
    for d in range(ndim):
        dim = int.from_bytes(bytes(blob[16 + 8 * d:24 + 8 * d]), "little")
        if dim > MAX_COUNT:
            _bad_header()
        product = product if product > MAX_COUNT else product * dim
        shape.append(dim)
    if product != count:
        _bad_header()
    planes = PLANES[dtype_code]
    hsize = _header_size(count, ndim, chunk_log2, planes)
    if hsize > size:
        _bad_header()
    if int(crc32(blob, 0, hsize - 4)) != int.from_bytes(bytes(blob[hsize - 4:hsize]), "little"):
        _bad_header()
    n_blocks = planes * _chunk_count(count, chunk_log2)
    if n_blocks:
        sizes = _block_sizes(blob, ndim, n_blocks)
        if int(sizes.min()) < BLOCK_HEADER + 1 or int(sizes.sum()) != size - hsize:
            _bad_header()
    elif size != hsize:
        _bad_header()
    return count, dtype_code, tuple(shape), hsize, chunk_log2


def _block_sizes(blob, ndim, n_blocks):
    """The block-size table of a stream, as int64."""
    return blob[16 + 8 * ndim:16 + 8 * ndim + 4 * n_blocks].view("<u4").astype(np.int64)


# ---- planes.h ----------------------------------------------------------------------------------

def _split(src, lo, n, dst):
    """Elements src[lo:lo+n] into n-byte planes at dst[0:planes*n]: plane p holds byte p of each
    element's bits rotated left by one (the sign to bit 0, the exponent to the top plane).
    Called from jitted code, where it is one loop per element width (_split_typed)."""
    planes = src.itemsize
    bits = 8 * planes
    for i in range(n):
        b = int(src[lo + i])
        r = ((b << 1) | (b >> (bits - 1))) & ((1 << bits) - 1)
        for p in range(planes):
            dst[p * n + i] = (r >> (8 * p)) & 255


def _merge(src, n, dst, lo):
    """The inverse of split: n-byte planes at src[0:planes*n] into elements dst[lo:lo+n].
    Called from jitted code, where it is one loop per element width (_merge_typed)."""
    planes = dst.itemsize
    bits = 8 * planes
    for i in range(n):
        r = 0
        for p in range(planes):
            r |= int(src[p * n + i]) << (8 * p)
        dst[lo + i] = (r >> 1) | ((r & 1) << (bits - 1))


# The jitted forms, one per element width, picked by the array's dtype when the caller compiles:
# the width is a constant of each loop, so the plane loop unrolls and the element loop
# vectorizes, and indices run from 0 on slices, so no negative-index wrap-around is computed.
# (A first version taking the width from itemsize at run time split a 2^17-element bfloat16
# chunk in 630 us; this one in 6 us.)

def _split_loop(planes):
    top = np.uint64(8 * planes - 1)
    mask = np.uint64((1 << (8 * planes)) - 1)

    def impl(src, lo, n, dst):
        s = src[lo:lo + n]
        for i in range(n):
            b = np.uint64(s[i])
            r = ((b << np.uint64(1)) | (b >> top)) & mask
            for p in range(planes):
                dst[p * n + i] = np.uint8((r >> np.uint64(8 * p)) & np.uint64(255))
    return impl


def _merge_loop(planes):
    top = np.uint64(8 * planes - 1)

    def impl(src, n, dst, lo):
        d = dst[lo:lo + n]
        for i in range(n):
            r = np.uint64(0)
            for p in range(planes):
                r |= np.uint64(src[p * n + i]) << np.uint64(8 * p)
            d[i] = (r >> np.uint64(1)) | ((r & np.uint64(1)) << top)
    return impl


_SPLIT_LOOPS = {w: _split_loop(w) for w in (2, 4, 8)}
_MERGE_LOOPS = {w: _merge_loop(w) for w in (2, 4, 8)}


@overload(_split, jit_options={"nogil": True})
def _split_typed(src, lo, n, dst):
    return _SPLIT_LOOPS[src.dtype.bitwidth // 8]


@overload(_merge, jit_options={"nogil": True})
def _merge_typed(src, n, dst, lo):
    return _MERGE_LOOPS[dst.dtype.bitwidth // 8]


@nb.njit(cache=True, nogil=True, inline="always")
def copy(src, so, dst, do, n):
    """dst[do:do+n] = src[so:so+n] for two arrays that do not overlap, as a loop (Numba's slice
    assignment between arrays runs several times slower)."""
    s = src[so:so + n]
    d = dst[do:do + n]
    for i in range(n):
        d[i] = s[i]


# ---- encode.c ----------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def choose_block(lengths, sbytes, ln):
    """(type, size) of the block the codec writes for a plane of ln bytes that plan_block
    found not single-symbol (choose_block in encode.c, docs/float_codec.md section 6): the
    Huffman code's block with the smaller of its two tables (the range table unless the used
    symbols span nearly all 256), kept only when it saves at least 1/MIN_GAIN of the plane;
    else raw. plan_block left the code's lengths and stream sizes, raw block or not."""
    full = PAYLOAD_START + sbytes[0] + sbytes[1] + sbytes[2] + sbytes[3]
    ranged = full - 128 + range_table_bytes(lengths)
    raw = BLOCK_HEADER + ln
    coded = min(ranged, full)
    if (raw - coded) * MIN_GAIN >= ln:
        return (HUFF_RANGE if ranged < full else HUFF), coded
    return RAW, raw


@nb.njit(cache=True, nogil=True)
def sample_looks_random(plane, at, ln):
    """Whether the plane plane[at:at+ln] is stored raw uncounted (sample_looks_random in
    encode.c): its every SAMPLE_STEP-th byte's counts c (n of them) satisfy
    sum c (c - 1) * RANDOM_PAIRS <= n (n - 1)."""
    if ln < SAMPLE_MIN:
        return False
    c = np.zeros(256, np.int64)
    n = 0
    for i in range(0, ln, SAMPLE_STEP):
        c[plane[at + i]] += 1
        n += 1
    pairs = 0
    for s in range(256):
        pairs += c[s] * max(c[s] - 1, 0)
    return pairs * RANDOM_PAIRS <= n * (n - 1)


@nb.njit(cache=True, nogil=True)
def encode_chunk(src, lo, ln, dst, off, sizes, first):
    """Chunk src[lo:lo+ln] split in a scratch of its own, each plane planned and its block
    written from dst[off:] on, the blocks' sizes to sizes[first:first + planes]. 0, or -1 when a
    block came out of another size than planned (an internal error)."""
    planes = src.itemsize
    scratch = np.empty(planes * ln, np.uint8)
    lengths = np.zeros(256, np.uint8)
    sbytes = np.zeros(4, np.int64)
    _split(src, lo, ln, scratch)
    status = 0
    for p in range(planes):
        if sample_looks_random(scratch, p * ln, ln):
            btype, size, symbol = RAW, BLOCK_HEADER + ln, 0
        else:
            btype, size, symbol = plan_block(scratch, p * ln, ln, lengths, sbytes)
            if btype != RLE:
                btype, size = choose_block(lengths, sbytes, ln)
        if btype == RAW:
            dst[off] = RAW
            put32le(dst, off + 1, crc32(scratch, p * ln, ln))
            copy(scratch, p * ln, dst, off + BLOCK_HEADER, ln)
        elif write_block(scratch, p * ln, ln, btype, symbol, lengths, sbytes, dst, off) != 0:
            status = -1
        sizes[first + p] = size
        off += size
    return status


def _encode_chunks(src, cs, dst, hsize, slot, sizes):
    """Every chunk of cs elements of src coded into its slot, dst[hsize + c * slot:]; its
    planes' block sizes to sizes[c * planes:(c + 1) * planes]. 0, or -1 (an internal error)."""
    planes = src.itemsize
    n = src.size
    n_chunks = (n + cs - 1) // cs
    status = np.zeros(n_chunks, np.int64)
    for c in nb.prange(n_chunks):
        status[c] = encode_chunk(src, c * cs, min(cs, n - c * cs), dst, hsize + c * slot, sizes,
                                 c * planes)
    return status.min()


encode_chunks_serial, encode_chunks_parallel = ENCODE_CHUNKS = serial_and_parallel(_encode_chunks)


def encode(src, dtype_code, shape, chunk_log2, isa=None):
    """The stream (bytes) of `src`, the flat unsigned-integer view of the elements (their dtype
    code and shape are stored)."""
    check_isa(isa)
    count, ndim = src.size, len(shape)
    capacity = bound(count, dtype_code, ndim, chunk_log2)
    if capacity < 0:
        raise InvalidArgumentError("float_encode: too many elements or dimensions")
    planes = PLANES[dtype_code]
    if src.dtype != _BITS_DTYPE[planes] or src.ndim != 1:
        raise InvalidArgumentError(f"float_encode: expected a 1-D {np.dtype(_BITS_DTYPE[planes])} "
                                   f"view of the elements, got {src.ndim}-D {src.dtype}")
    product = 1
    for d in shape:
        product *= int(d)
    if product != count:
        raise InvalidArgumentError("float_encode: the shape does not match the element count")
    cs = 1 << chunk_log2
    n_chunks = _chunk_count(count, chunk_log2)
    hsize = _header_size(count, ndim, chunk_log2, planes)
    sizes = np.zeros(planes * n_chunks, np.int64)
    if not n_chunks:
        return _header(count, dtype_code, shape, chunk_log2, sizes)
    # chunk c's slot: its planes' largest blocks (raw); the last slot ends at the bound
    slot = planes * (BLOCK_HEADER + cs)
    dst = np.empty(capacity, np.uint8)
    kernel = ENCODE_CHUNKS[1] if use_parallel(count * planes, PARALLEL_MIN) else ENCODE_CHUNKS[0]
    if kernel(readonly(src), cs, dst, hsize, slot, sizes) != 0:
        raise AssertionError("float_encode: internal stream size mismatch")
    used = sizes.reshape(n_chunks, planes).sum(axis=1)
    view = memoryview(dst)
    parts = [_header(count, dtype_code, shape, chunk_log2, sizes)]
    for c in range(n_chunks):
        start = hsize + c * slot
        parts.append(view[start:start + int(used[c])])
    return b"".join(parts)


# ---- decode.c ----------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def decode_chunk(blob, offsets, sizes, first, out, lo, ln):
    """The chunk out[lo:lo+ln] from its planes' blocks (blob[offsets[first + p]:], of
    sizes[first + p] bytes): each decoded and checked, its CRC-32 included, into a scratch of
    its own, then merged. 0, or ERR_CORRUPT (out[lo:lo+ln] untouched) when a block is damaged.
    Every read stays in its block."""
    planes = out.itemsize
    scratch = np.empty(planes * ln, np.uint8)
    table = np.empty(TABLE, np.uint16)
    for p in range(planes):
        off = offsets[first + p]
        size = sizes[first + p]
        if size == BLOCK_HEADER + ln and blob[off] == RAW and ln >= 2:
            # a raw plane's checksum is checked in the stream, then the plane copied
            if crc32(blob, off + BLOCK_HEADER, ln) != read32(blob, off + 1):
                return ERR_CORRUPT
            copy(blob, off + BLOCK_HEADER, scratch, p * ln, ln)
        else:
            status = decode_block(blob, off, size, scratch, p * ln, ln, table, True)
            if status != 0:
                return status
    _merge(scratch, ln, out, lo)
    return 0


def _decode_chunks(blob, offsets, sizes, out, cs):
    """Every chunk of out decoded (decode_chunk); 0, or ERR_CORRUPT when any block is damaged."""
    planes = out.itemsize
    n = out.size
    n_chunks = (n + cs - 1) // cs
    status = np.zeros(n_chunks, np.int64)
    for c in nb.prange(n_chunks):
        status[c] = decode_chunk(blob, offsets, sizes, c * planes, out, c * cs,
                                 min(cs, n - c * cs))
    return status.min()


decode_chunks_serial, decode_chunks_parallel = DECODE_CHUNKS = serial_and_parallel(_decode_chunks)


def decode(blob, out, isa=None):
    """Decode a stream into `out`, the flat unsigned-integer view of exactly the header's count
    of elements of its dtype. CorruptDataError on any damage (`out` then holds unspecified
    values)."""
    check_isa(isa)
    blob = readonly(blob)
    count, dtype_code, shape, hsize, chunk_log2 = parse(blob)
    planes = PLANES[dtype_code]
    if out.size != count or out.ndim != 1 or out.dtype != _BITS_DTYPE[planes]:
        raise InvalidArgumentError(f"float_decode: out is a {out.ndim}-D {out.dtype} array of "
                                   f"{out.size} elements; the stream holds {count} elements of "
                                   f"{planes} bytes")
    n_blocks = planes * _chunk_count(count, chunk_log2)
    if not n_blocks:
        return
    sizes = _block_sizes(blob, len(shape), n_blocks)
    offsets = hsize + np.cumsum(sizes) - sizes
    kernel = DECODE_CHUNKS[1] if use_parallel(count * planes, PARALLEL_MIN) else DECODE_CHUNKS[0]
    if kernel(blob, offsets, sizes, out, 1 << chunk_log2) != 0:
        raise CorruptDataError("float_decode: corrupt or truncated data (damaged block)")
