"""The encoder (csrc/huffman/encode.c): each block planned (phase A: histograms, lengths, type,
exact stream sizes), then written at its offset (phase B), and the byte histogram.

Every decision that shapes the output follows the C code; bit-level details that do not (when
the writer flushes) are free, so this twin stores 4 bytes at a time where the C code stores 8.
Bit arithmetic stays in uint64: Numba turns mixed int64/uint64 arithmetic into float64.
"""

import numba as nb
import numpy as np

from .code_lengths import canonical_codes, lengths_into
from .. import check_isa
from .common import pick, readonly, serial_and_parallel
from .crc import crc32
from .format import (BLOCK_HEADER, BLOCK_LOG2, HUFF, MAX_BITS, PAYLOAD_START, RAW, RLE,
                     block_count, header_size, put32le, write_header)
from .table import write_table


@nb.njit(cache=True, nogil=True)
def _histogram4(src, lo, ln, c):
    c0 = np.zeros(256, np.int64)
    c1 = np.zeros(256, np.int64)
    c2 = np.zeros(256, np.int64)
    c3 = np.zeros(256, np.int64)
    m = ln // 4
    for j in range(m):
        i = lo + 4 * j
        c0[src[i]] += 1
        c1[src[i + 1]] += 1
        c2[src[i + 2]] += 1
        c3[src[i + 3]] += 1
    for i in range(lo + 4 * m, lo + ln):
        c[i - lo - 4 * m, src[i]] += 1  # the stream of symbol i: (i - lo) % 4
    for s in range(256):
        c[0, s] += c0[s]
        c[1, s] += c1[s]
        c[2, s] += c2[s]
        c[3, s] += c3[s]


@nb.njit(cache=True, nogil=True)
def plan_block(src, lo, ln, lengths, stream_bytes):
    """Phase A: (type, size, symbol); lengths and stream_bytes filled for Huffman blocks."""
    c = np.zeros((4, 256), np.int64)
    _histogram4(src, lo, ln, c)
    total = np.zeros(256, np.int64)
    used = 0
    last = 0
    for s in range(256):
        total[s] = c[0, s] + c[1, s] + c[2, s] + c[3, s]
        if total[s] != 0:
            used += 1
            last = s
    for k in range(4):
        stream_bytes[k] = 0
    if used == 1:
        return RLE, BLOCK_HEADER + 1, last
    size = BLOCK_HEADER + ln
    if used == 0:
        return RAW, size, 0
    lengths_into(total, 256, MAX_BITS, lengths)
    nbytes = PAYLOAD_START
    for k in range(4):
        bits = 0
        for s in range(256):
            bits += c[k, s] * lengths[s]
        stream_bytes[k] = (bits + 7) // 8
        nbytes += stream_bytes[k]
    if nbytes < size:
        return HUFF, nbytes, 0
    return RAW, size, 0


@nb.njit(cache=True, nogil=True)
def write_block(src, lo, ln, btype, symbol, lengths, stream_bytes, dst, off):
    """Phase B: the block at dst[off:]; returns 0, or -1 on an internal size mismatch. btype
    may also be HUFF_RANGE (the float codec's range table, table.py)."""
    dst[off] = btype
    put32le(dst, off + 1, crc32(src, lo, ln))
    if btype == RAW:
        dst[off + BLOCK_HEADER:off + BLOCK_HEADER + ln] = src[lo:lo + ln]
        return 0
    if btype == RLE:
        dst[off + BLOCK_HEADER] = symbol
        return 0
    p = off + BLOCK_HEADER
    p += write_table(dst, p, btype, lengths)  # HUFF, or the float codec's HUFF_RANGE
    for k in range(3):
        put32le(dst, p + 4 * k, np.uint64(stream_bytes[k]))
    p += 12
    codes = canonical_codes(lengths)
    lens = lengths.astype(np.uint64)
    # Four writers at their streams' exact offsets, one symbol each per round (independent
    # dependency chains). A writer stores 4 bytes once it holds 32 bits: those are its own
    # stream's bytes, so no writer passes its stream's end.
    ps = np.empty(4, np.int64)
    ps[0] = p
    for k in range(1, 4):
        ps[k] = ps[k - 1] + stream_bytes[k - 1]
    p0, p1, p2, p3 = ps[0], ps[1], ps[2], ps[3]
    b0 = np.uint64(0)
    b1 = np.uint64(0)
    b2 = np.uint64(0)
    b3 = np.uint64(0)
    n0 = np.uint64(0)
    n1 = np.uint64(0)
    n2 = np.uint64(0)
    n3 = np.uint64(0)
    thirty_two = np.uint64(32)
    for j in range(ln // 4):
        i = lo + 4 * j
        s0 = src[i]
        s1 = src[i + 1]
        s2 = src[i + 2]
        s3 = src[i + 3]
        b0 |= codes[s0] << n0
        b1 |= codes[s1] << n1
        b2 |= codes[s2] << n2
        b3 |= codes[s3] << n3
        n0 += lens[s0]
        n1 += lens[s1]
        n2 += lens[s2]
        n3 += lens[s3]
        if n0 >= thirty_two:
            put32le(dst, p0, b0)
            p0 += 4
            b0 >>= thirty_two
            n0 -= thirty_two
        if n1 >= thirty_two:
            put32le(dst, p1, b1)
            p1 += 4
            b1 >>= thirty_two
            n1 -= thirty_two
        if n2 >= thirty_two:
            put32le(dst, p2, b2)
            p2 += 4
            b2 >>= thirty_two
            n2 -= thirty_two
        if n3 >= thirty_two:
            put32le(dst, p3, b3)
            p3 += 4
            b3 >>= thirty_two
            n3 -= thirty_two
    state_b = np.array([b0, b1, b2, b3], np.uint64)
    state_n = np.array([n0, n1, n2, n3], np.uint64)
    state_p = np.array([p0, p1, p2, p3], np.int64)
    for k in range(4):
        buf = state_b[k]
        nbits = state_n[k]
        p = state_p[k]
        i = lo + 4 * (ln // 4) + k
        if i < lo + ln:  # the streams' last, uneven symbols
            s = src[i]
            buf |= codes[s] << nbits
            nbits += lens[s]
        while nbits > np.uint64(0):
            dst[p] = np.uint8(buf & np.uint64(255))
            p += 1
            buf >>= np.uint64(8)
            nbits = nbits - np.uint64(8) if nbits > np.uint64(8) else np.uint64(0)
        if p != ps[k] + stream_bytes[k]:
            return -1
    return 0


def _plan_all(src, bs, lengths, sbytes, types, sizes, symbols):
    n = src.size
    for b in nb.prange(types.size):
        lo = b * bs
        t, sz, sym = plan_block(src, lo, min(bs, n - lo), lengths[b], sbytes[b])
        types[b] = t
        sizes[b] = sz
        symbols[b] = sym


def _write_all(src, bs, lengths, sbytes, types, symbols, offsets, dst):
    n = src.size
    status = np.zeros(types.size, np.int64)
    for b in nb.prange(types.size):
        lo = b * bs
        status[b] = write_block(src, lo, min(bs, n - lo), types[b], symbols[b], lengths[b],
                                sbytes[b], dst, offsets[b])
    return status.min()


plan_all_serial, plan_all_parallel = PLAN_ALL = serial_and_parallel(_plan_all)
write_all_serial, write_all_parallel = WRITE_ALL = serial_and_parallel(_write_all)


def encode(src, dtype_code, shape, block_log2=BLOCK_LOG2, isa=None):
    """The stream for validated 1-D uint8 `src` (dtype code and shape are stored)."""
    check_isa(isa)
    src = readonly(src)
    count = src.size
    bs = 1 << block_log2
    n_blocks = block_count(count, block_log2)
    hsize = header_size(count, len(shape), block_log2)
    lengths = np.zeros((n_blocks, 256), np.uint8)
    sbytes = np.zeros((n_blocks, 4), np.int64)
    types = np.zeros(n_blocks, np.uint8)
    sizes = np.zeros(n_blocks, np.int64)
    symbols = np.zeros(n_blocks, np.uint8)
    if n_blocks:
        pick(PLAN_ALL, count)(src, bs, lengths, sbytes, types, sizes, symbols)
    offsets = hsize + np.cumsum(sizes) - sizes
    dst = np.empty(hsize + int(sizes.sum()), np.uint8)
    write_header(dst, count, dtype_code, shape, block_log2, sizes)
    if n_blocks and pick(WRITE_ALL, count)(src, bs, lengths, sbytes, types, symbols, offsets, dst):
        raise AssertionError("huffman_encode: internal stream size mismatch")
    return dst.tobytes()


@nb.njit(cache=True, nogil=True)
def _histogram_serial(src):
    c = np.zeros((4, 256), np.int64)
    n = src.size
    i = 0
    while i + 4 <= n:
        c[0, src[i]] += 1
        c[1, src[i + 1]] += 1
        c[2, src[i + 2]] += 1
        c[3, src[i + 3]] += 1
        i += 4
    while i < n:
        c[0, src[i]] += 1
        i += 1
    total = np.zeros(256, np.int64)
    for s in range(256):
        total[s] = c[0, s] + c[1, s] + c[2, s] + c[3, s]
    return total


def histogram(src, isa=None):
    check_isa(isa)
    return _histogram_serial(readonly(src))
