"""Numba twin of csrc/huffman.c and csrc/huffman_codes.c: the same stream, byte for byte.

Every decision that shapes the output (sorting, Huffman merge order, the height-limiting pass,
canonical codes, block types, stream sizes) follows the C code step by step; bit-level details
that do not (when the writer flushes, how the reader refills) are free, so this twin writes and
reads bytes one at a time where the C code moves 8 at once. Bit arithmetic stays in uint64:
Numba turns mixed int64/uint64 arithmetic into float64.

Per-block kernels are serial and cached; the drivers over many blocks run in parallel (prange,
not cached) above _PARALLEL_MIN symbols. Every kernel releases the GIL (nogil=True), as the C
calls do, so threads decoding different streams run at once. Integer divisions are by constants
or by values checked nonzero before the call, so Python's error_model never raises in them.
"""

import numba as nb
import numpy as np

from ..errors import CorruptDataError, InvalidArgumentError
from . import use_parallel

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
_PARALLEL_MIN = 1 << 22  # parallel drivers compile slowly; worth it for large inputs only

OK = 0
ERR_CORRUPT = -2


# ---- CRC-32 (zlib's; csrc/huffman_crc.c) --------------------------------------------------

def _crc_tables():
    """Slicing-by-8 tables of the reflected polynomial 0xEDB88320 (as csrc/huffman_crc.c)."""
    t = np.zeros((8, 256), np.uint64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        t[0, i] = c
    for k in range(1, 8):
        t[k] = (t[k - 1] >> np.uint64(8)) ^ t[0, t[k - 1] & np.uint64(255)]
    return t


_CRC = _crc_tables()
_M32 = np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, nogil=True, inline="always")  # a call per use would cost more than the work
def _read32(a, i):
    return (np.uint64(a[i]) | (np.uint64(a[i + 1]) << np.uint64(8))
            | (np.uint64(a[i + 2]) << np.uint64(16)) | (np.uint64(a[i + 3]) << np.uint64(24)))


@nb.njit(cache=True, nogil=True, inline="always")  # a call per use would cost more than the work
def _crc_step8(c, w):
    """8 message bytes (little-endian w) into the raw CRC register c."""
    w ^= c
    b = np.uint64(255)
    return (_CRC[7, w & b] ^ _CRC[6, (w >> np.uint64(8)) & b] ^ _CRC[5, (w >> np.uint64(16)) & b]
            ^ _CRC[4, (w >> np.uint64(24)) & b] ^ _CRC[3, (w >> np.uint64(32)) & b]
            ^ _CRC[2, (w >> np.uint64(40)) & b] ^ _CRC[1, (w >> np.uint64(48)) & b]
            ^ _CRC[0, w >> np.uint64(56)])


@nb.njit(cache=True, nogil=True)
def crc32(a, lo, n):
    """zlib.crc32 of a[lo:lo+n], as an int."""
    c = _M32
    p = lo
    m = n // 8
    if m and (a.ctypes.data + lo) % 8 == 0:
        # aligned: read the words as uint64 (little-endian hosts only, as everything Numba
        # targets)
        words = a[lo:lo + 8 * m].view(np.uint64)
        for w in range(m):
            c = _crc_step8(c, words[w])
        p = lo + 8 * m
    else:
        for w in range(m):
            c = _crc_step8(c, _read32(a, p) | (_read32(a, p + 4) << np.uint64(32)))
            p += 8
    for i in range(p, lo + n):
        c = (c >> np.uint64(8)) ^ _CRC[0, (c ^ np.uint64(a[i])) & np.uint64(255)]
    return c ^ _M32


# ---- code lengths (huffman_codes.c) ---------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _sort_keys(keys, n):
    """Bottom-up merge sort of keys[:n] (distinct keys: any sort gives csrc's order)."""
    tmp = np.empty(n, np.uint64)
    a = keys
    b = tmp
    width = 1
    swapped = False
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if a[i] <= a[j]:
                    b[k] = a[i]
                    i += 1
                else:
                    b[k] = a[j]
                    j += 1
                k += 1
            while i < mid:
                b[k] = a[i]
                i += 1
                k += 1
            while j < hi:
                b[k] = a[j]
                j += 1
                k += 1
            lo += 2 * width
        a, b = b, a
        swapped = not swapped
        width *= 2
    if swapped:
        for i in range(n):
            keys[i] = a[i]


@nb.njit(cache=True, nogil=True)
def lengths_into(counts, n, max_bits, lengths):
    """tp_huff_lengths: 0 or -1 (more than 2^max_bits symbols used)."""
    keys = np.empty(256, np.uint64)
    used = 0
    for s in range(n):
        lengths[s] = 0
        if counts[s] != 0:
            keys[used] = (np.uint64(counts[s]) << np.uint64(8)) | np.uint64(s)
            used += 1
    if used == 0:
        return 0
    if used == 1:
        lengths[keys[0] & np.uint64(255)] = 1
        return 0
    if max_bits < 32 and used > (1 << max_bits):
        return -1
    _sort_keys(keys, used)
    # two-queue Huffman, ties take the leaf
    inner = np.zeros(256, np.uint64)
    leaf_parent = np.zeros(256, np.int64)
    inner_parent = np.zeros(256, np.int64)
    li = 0
    ii = 0
    for k in range(used - 1):
        w0 = np.uint64(0)
        for t in range(2):
            if li < used and (ii >= k or (keys[li] >> np.uint64(8)) <= inner[ii]):
                w = keys[li] >> np.uint64(8)
                leaf_parent[li] = k
                li += 1
            else:
                w = inner[ii]
                inner_parent[ii] = k
                ii += 1
            if t == 0:
                w0 = w
            else:
                inner[k] = w0 + w
    depth = np.zeros(256, np.int64)
    depth[used - 2] = 0
    for k in range(used - 3, -1, -1):
        depth[k] = depth[inner_parent[k]] + 1
    bl = np.zeros(34, np.int64)
    for i in range(used):
        ln = depth[leaf_parent[i]] + 1
        bl[min(ln, max_bits)] += 1
    over = -(1 << max_bits)
    for ln in range(1, max_bits + 1):
        over += bl[ln] << (max_bits - ln)
    while over > 0:
        best = 0
        best_cost = 0.0
        start = bl[max_bits]
        for ln in range(max_bits - 1, 0, -1):
            if bl[ln] != 0:
                if (1 << (max_bits - ln - 1)) <= over:
                    cost = float(keys[start] >> np.uint64(8)) * float(np.uint64(1) << np.uint64(ln))
                    if best == 0 or cost < best_cost:
                        best = ln
                        best_cost = cost
                start += bl[ln]
        if best == 0:
            best = max_bits - 1
            while bl[best] == 0:
                best -= 1
        bl[best] -= 1
        bl[best + 1] += 1
        over -= 1 << (max_bits - best - 1)
    while over < 0:
        ln = max_bits
        while bl[ln] == 0 or (1 << (max_bits - ln)) > -over:
            ln -= 1
        bl[ln] -= 1
        bl[ln - 1] += 1
        over += 1 << (max_bits - ln)
    i = used - 1
    for ln in range(1, max_bits + 1):
        for _ in range(bl[ln]):
            lengths[keys[i] & np.uint64(255)] = ln
            i -= 1
    return 0


@nb.njit(cache=True, nogil=True)
def canonical_codes(lengths):
    """Bit-reversed canonical codes (deflate's rule), as tp_huff_codes."""
    bl_count = np.zeros(MAX_BITS + 1, np.int64)
    for s in range(256):
        bl_count[lengths[s]] += 1
    bl_count[0] = 0
    nxt = np.zeros(MAX_BITS + 2, np.int64)
    code = 0
    for ln in range(1, MAX_BITS + 1):
        code = (code + bl_count[ln - 1]) << 1
        nxt[ln] = code
    codes = np.zeros(256, np.uint64)
    for s in range(256):
        ln = lengths[s]
        if ln == 0:
            continue
        c = nxt[ln]
        nxt[ln] += 1
        r = 0
        for b in range(ln):
            r |= ((c >> b) & 1) << (ln - 1 - b)
        codes[s] = r
    return codes


def code_lengths(counts, max_bits):
    """tp_huffman_code_lengths on validated int64 counts."""
    lengths = np.zeros(counts.size, np.uint8)
    if lengths_into(_readonly(counts), counts.size, max_bits, lengths) != 0:
        raise InvalidArgumentError(
            f"huffman_code_lengths: more than 2**{max_bits} symbols are used")
    return lengths


# ---- blocks -------------------------------------------------------------------------------

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


@nb.njit(cache=True, nogil=True, inline="always")  # a call per use would cost more than the work
def _put32le(dst, p, v):
    for j in range(4):
        dst[p + j] = np.uint8((v >> np.uint64(8 * j)) & np.uint64(255))


@nb.njit(cache=True, nogil=True)
def write_block(src, lo, ln, btype, symbol, lengths, stream_bytes, dst, off):
    """Phase B: the block at dst[off:]; returns 0, or -1 on an internal size mismatch."""
    dst[off] = btype
    _put32le(dst, off + 1, crc32(src, lo, ln))
    if btype == RAW:
        dst[off + BLOCK_HEADER:off + BLOCK_HEADER + ln] = src[lo:lo + ln]
        return 0
    if btype == RLE:
        dst[off + BLOCK_HEADER] = symbol
        return 0
    p = off + BLOCK_HEADER
    for i in range(128):
        dst[p + i] = lengths[2 * i] | (lengths[2 * i + 1] << 4)
    p += 128
    for k in range(3):
        _put32le(dst, p + 4 * k, np.uint64(stream_bytes[k]))
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
            _put32le(dst, p0, b0)
            p0 += 4
            b0 >>= thirty_two
            n0 -= thirty_two
        if n1 >= thirty_two:
            _put32le(dst, p1, b1)
            p1 += 4
            b1 >>= thirty_two
            n1 -= thirty_two
        if n2 >= thirty_two:
            _put32le(dst, p2, b2)
            p2 += 4
            b2 >>= thirty_two
            n2 -= thirty_two
        if n3 >= thirty_two:
            _put32le(dst, p3, b3)
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


@nb.njit(cache=True, nogil=True)
def decode_block(blob, off, size, out, lo, ln, table):
    """One block into out[lo:lo+ln]: 0 or ERR_CORRUPT. Every read stays in blob[off:off+size]."""
    if size < BLOCK_HEADER:
        return ERR_CORRUPT
    expect = _read32(blob, off + 1)
    btype = blob[off]
    if btype == RAW:
        if size != BLOCK_HEADER + ln:
            return ERR_CORRUPT
        out[lo:lo + ln] = blob[off + BLOCK_HEADER:off + BLOCK_HEADER + ln]
    elif btype == RLE:
        if size != BLOCK_HEADER + 1:
            return ERR_CORRUPT
        out[lo:lo + ln] = blob[off + BLOCK_HEADER]
    elif btype == HUFF:
        if size < PAYLOAD_START:
            return ERR_CORRUPT
        lengths = np.empty(256, np.uint8)
        kraft = 0
        for i in range(128):
            b = blob[off + BLOCK_HEADER + i]
            lengths[2 * i] = b & 15
            lengths[2 * i + 1] = b >> 4
        for s in range(256):
            if lengths[s] > MAX_BITS:
                return ERR_CORRUPT
            if lengths[s] != 0:
                kraft += 1 << (MAX_BITS - lengths[s])
        if kraft != TABLE:
            return ERR_CORRUPT
        payload = size - PAYLOAD_START
        j = off + BLOCK_HEADER + 128
        s0 = np.int64(_read32(blob, j))
        s1 = np.int64(_read32(blob, j + 4))
        s2 = np.int64(_read32(blob, j + 8))
        if s0 + s1 + s2 > payload:
            return ERR_CORRUPT
        codes = canonical_codes(lengths)
        for s in range(256):
            ln_s = np.int64(lengths[s])
            if ln_s == 0:
                continue
            entry = np.uint16(ln_s | (s << 8))
            i = np.int64(codes[s])
            while i < TABLE:
                table[i] = entry
                i += 1 << ln_s
        base = off + PAYLOAD_START
        a1 = base + s0
        a2 = a1 + s1
        a3 = a2 + s2
        a4 = off + size
        mask = np.uint64(TABLE - 1)
        thirty_two = np.uint64(32)
        # Fast loop: one symbol from each stream in turn (four independent dependency chains),
        # 32-bit refills while every stream has 4 bytes left.
        b0 = np.uint64(0)
        b1 = np.uint64(0)
        b2 = np.uint64(0)
        b3 = np.uint64(0)
        n0 = np.uint64(0)
        n1 = np.uint64(0)
        n2 = np.uint64(0)
        n3 = np.uint64(0)
        p0 = base
        p1 = a1
        p2 = a2
        p3 = a3
        j = 0
        m = ln // 4
        while j < m:
            if n0 < thirty_two:
                if p0 + 4 > a1:
                    break
                b0 |= _read32(blob, p0) << n0
                p0 += 4
                n0 += thirty_two
            if n1 < thirty_two:
                if p1 + 4 > a2:
                    break
                b1 |= _read32(blob, p1) << n1
                p1 += 4
                n1 += thirty_two
            if n2 < thirty_two:
                if p2 + 4 > a3:
                    break
                b2 |= _read32(blob, p2) << n2
                p2 += 4
                n2 += thirty_two
            if n3 < thirty_two:
                if p3 + 4 > a4:
                    break
                b3 |= _read32(blob, p3) << n3
                p3 += 4
                n3 += thirty_two
            e0 = table[b0 & mask]
            e1 = table[b1 & mask]
            e2 = table[b2 & mask]
            e3 = table[b3 & mask]
            l0 = np.uint64(e0 & 0xFF)
            l1 = np.uint64(e1 & 0xFF)
            l2 = np.uint64(e2 & 0xFF)
            l3 = np.uint64(e3 & 0xFF)
            o = lo + 4 * j
            out[o] = np.uint8(e0 >> 8)
            out[o + 1] = np.uint8(e1 >> 8)
            out[o + 2] = np.uint8(e2 >> 8)
            out[o + 3] = np.uint8(e3 >> 8)
            # each reader holds >= 32 valid bits here, so no code (<= 11 bits) overruns
            b0 >>= l0
            b1 >>= l1
            b2 >>= l2
            b3 >>= l3
            n0 -= l0
            n1 -= l1
            n2 -= l2
            n3 -= l3
            j += 1
        state_b = np.array([b0, b1, b2, b3], np.uint64)
        state_n = np.array([n0, n1, n2, n3], np.uint64)
        state_p = np.array([p0, p1, p2, p3], np.int64)
        ends = (a1, a2, a3, a4)
        # The rest of each stream, one at a time, reading bytes that never pass its end.
        for k in range(4):
            p = state_p[k]
            end = ends[k]
            buf = state_b[k]
            nbits = state_n[k]
            i = lo + 4 * j + k
            while i < lo + ln:
                if nbits < thirty_two:
                    if p + 4 <= end:
                        buf |= _read32(blob, p) << nbits
                        p += 4
                        nbits += thirty_two
                    else:
                        while nbits <= np.uint64(56) and p < end:
                            buf |= np.uint64(blob[p]) << nbits
                            p += 1
                            nbits += np.uint64(8)
                e = table[buf & mask]
                le = np.uint64(e & 0xFF)
                if le > nbits:
                    return ERR_CORRUPT  # the code runs past the stream's end
                out[i] = np.uint8(e >> 8)
                buf >>= le
                nbits -= le
                i += 4
            while nbits <= np.uint64(56) and p < end:
                buf |= np.uint64(blob[p]) << nbits
                p += 1
                nbits += np.uint64(8)
            if p != end or nbits >= np.uint64(8) or buf != np.uint64(0):
                return ERR_CORRUPT
    else:
        return ERR_CORRUPT
    if crc32(out, lo, ln) != expect:
        return ERR_CORRUPT
    return 0


# ---- drivers --------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _plan_all_serial(src, bs, lengths, sbytes, types, sizes, symbols):
    n = src.size
    for b in range(types.size):
        lo = b * bs
        t, sz, sym = plan_block(src, lo, min(bs, n - lo), lengths[b], sbytes[b])
        types[b] = t
        sizes[b] = sz
        symbols[b] = sym


@nb.njit(parallel=True, nogil=True)
def _plan_all_parallel(src, bs, lengths, sbytes, types, sizes, symbols):
    n = src.size
    for b in nb.prange(types.size):
        lo = b * bs
        t, sz, sym = plan_block(src, lo, min(bs, n - lo), lengths[b], sbytes[b])
        types[b] = t
        sizes[b] = sz
        symbols[b] = sym


@nb.njit(cache=True, nogil=True)
def _write_all_serial(src, bs, lengths, sbytes, types, symbols, offsets, dst):
    n = src.size
    bad = 0
    for b in range(types.size):
        lo = b * bs
        bad |= write_block(src, lo, min(bs, n - lo), types[b], symbols[b], lengths[b],
                           sbytes[b], dst, offsets[b])
    return bad


@nb.njit(parallel=True, nogil=True)
def _write_all_parallel(src, bs, lengths, sbytes, types, symbols, offsets, dst):
    n = src.size
    status = np.zeros(types.size, np.int64)
    for b in nb.prange(types.size):
        lo = b * bs
        status[b] = write_block(src, lo, min(bs, n - lo), types[b], symbols[b], lengths[b],
                                sbytes[b], dst, offsets[b])
    return status.min()


def _header_size(count, ndim, block_log2):
    n_blocks = (count + (1 << block_log2) - 1) >> block_log2
    return 16 + 8 * ndim + 4 * n_blocks + 4


def bound(count, ndim, block_log2=BLOCK_LOG2):
    n_blocks = (count + (1 << block_log2) - 1) >> block_log2
    return _header_size(count, ndim, block_log2) + BLOCK_HEADER * n_blocks + count


def encode(src, dtype_code, shape, block_log2=BLOCK_LOG2):
    """The stream for validated 1-D uint8 `src` (dtype code and shape are stored)."""
    src = _readonly(src)
    count = src.size
    ndim = len(shape)
    bs = 1 << block_log2
    n_blocks = (count + bs - 1) >> block_log2
    hsize = _header_size(count, ndim, block_log2)
    lengths = np.zeros((n_blocks, 256), np.uint8)
    sbytes = np.zeros((n_blocks, 4), np.int64)
    types = np.zeros(n_blocks, np.uint8)
    sizes = np.zeros(n_blocks, np.int64)
    symbols = np.zeros(n_blocks, np.uint8)
    parallel = use_parallel(count, _PARALLEL_MIN)
    if n_blocks:
        (_plan_all_parallel if parallel else _plan_all_serial)(src, bs, lengths, sbytes, types,
                                                                sizes, symbols)
    offsets = hsize + np.concatenate(([0], np.cumsum(sizes)[:-1])) if n_blocks else sizes
    total = hsize + int(sizes.sum())
    dst = np.empty(total, np.uint8)
    head = bytearray()
    head += MAGIC
    head += bytes((VERSION, dtype_code, ndim, block_log2))
    head += int(count).to_bytes(8, "little")
    for d in shape:
        head += int(d).to_bytes(8, "little")
    head += sizes.astype("<u4").tobytes()
    dst[:hsize - 4] = np.frombuffer(bytes(head), np.uint8)
    dst[hsize - 4:hsize] = np.frombuffer(int(crc32(dst, 0, hsize - 4)).to_bytes(4, "little"), np.uint8)
    if n_blocks:
        bad = (_write_all_parallel if parallel else _write_all_serial)(
            src, bs, lengths, sbytes, types, symbols, offsets.astype(np.int64), dst)
        if bad:
            raise AssertionError("huffman_encode: internal stream size mismatch")
    return dst.tobytes()


def _corrupt(what):
    raise CorruptDataError(f"huffman_decode: corrupt or truncated data ({what})")


def parse(blob):
    """(count, dtype_code, shape, header_size, block_log2) of a validated-header stream."""
    size = blob.size
    if size < 20 or bytes(blob[:4]) != MAGIC:
        _corrupt("not a tensorpress Huffman stream")
    version, dtype_code, ndim, block_log2 = (int(v) for v in blob[4:8])
    if version != VERSION or dtype_code > 2:
        _corrupt("unknown version or dtype")
    if ndim > MAX_NDIM or (dtype_code == 2 and ndim != 1):
        _corrupt("bad shape")
    if not MIN_BLOCK_LOG2 <= block_log2 <= MAX_BLOCK_LOG2:
        _corrupt("bad block size")
    count = int.from_bytes(bytes(blob[8:16]), "little")
    if count > MAX_COUNT or size < 16 + 8 * ndim + 4:
        _corrupt("bad symbol count")
    shape = []
    product = 1
    for d in range(ndim):
        dim = int.from_bytes(bytes(blob[16 + 8 * d:24 + 8 * d]), "little")
        if dim > MAX_COUNT:
            _corrupt("bad shape")
        product = product if product > MAX_COUNT else product * dim
        shape.append(dim)
    if product != count:
        _corrupt("shape does not match the symbol count")
    hsize = _header_size(count, ndim, block_log2)
    if hsize > size:
        _corrupt("truncated header")
    if int(crc32(blob, 0, hsize - 4)) != int.from_bytes(bytes(blob[hsize - 4:hsize]), "little"):
        _corrupt("header checksum mismatch")
    n_blocks = (count + (1 << block_log2) - 1) >> block_log2
    sizes = blob[16 + 8 * ndim:16 + 8 * ndim + 4 * n_blocks].view("<u4").astype(np.int64) \
        if n_blocks else np.zeros(0, np.int64)
    if n_blocks and int(sizes.min()) < BLOCK_HEADER + 1:
        _corrupt("bad block size")
    if int(sizes.sum()) != size - hsize:
        _corrupt("stream length does not match its block sizes")
    return count, dtype_code, tuple(shape), hsize, block_log2


@nb.njit(cache=True, nogil=True)
def _decode_all_serial(blob, offsets, sizes, out, bs):
    table = np.empty(TABLE, np.uint16)
    n = out.size
    for b in range(sizes.size):
        lo = b * bs
        if decode_block(blob, offsets[b], sizes[b], out, lo, min(bs, n - lo), table) != 0:
            return ERR_CORRUPT
    return 0


@nb.njit(parallel=True, nogil=True)
def _decode_all_parallel(blob, offsets, sizes, out, bs):
    n = out.size
    nb_ = sizes.size
    status = np.zeros(nb_, np.int64)
    for b in nb.prange(nb_):
        table = np.empty(TABLE, np.uint16)
        lo = b * bs
        status[b] = decode_block(blob, offsets[b], sizes[b], out, lo, min(bs, n - lo), table)
    return status.min() if nb_ else 0


def decode(blob, out):
    """Decode a stream into validated 1-D uint8 `out` of the header's count."""
    blob = _readonly(blob)
    count, _, shape, hsize, block_log2 = parse(blob)
    if out.size != count:
        raise InvalidArgumentError(f"huffman_decode: out has {out.size} elements, the stream {count}")
    n_blocks = (count + (1 << block_log2) - 1) >> block_log2
    if not n_blocks:
        return
    ndim = len(shape)
    sizes = blob[16 + 8 * ndim:16 + 8 * ndim + 4 * n_blocks].view("<u4").astype(np.int64)
    offsets = hsize + np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes)[:-1]))
    kernel = _decode_all_parallel if use_parallel(count, _PARALLEL_MIN) else _decode_all_serial
    if kernel(blob, offsets, sizes, out, 1 << block_log2) != 0:
        _corrupt("damaged block")


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


def _readonly(a):
    """A read-only view: Numba compiles one specialization per writability, so every input
    array is passed read-only (no copy)."""
    v = a.view()
    v.flags.writeable = False
    return v


def histogram(src):
    return _histogram_serial(_readonly(src))
