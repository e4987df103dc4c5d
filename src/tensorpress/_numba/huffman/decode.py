"""The decoder (csrc/huffman/decode.c): every block checked and decoded, blocks in parallel
above a size. Bit-level details that do not shape the result are free: this twin refills 4
bytes at a time and reads the streams' ends byte by byte. Every read stays inside its block."""

import numba as nb
import numpy as np

from ...errors import InvalidArgumentError
from .code_lengths import canonical_codes
from .. import check_isa
from .common import pick, readonly, serial_and_parallel
from .crc import crc32, read32
from .format import (BLOCK_HEADER, ERR_CORRUPT, HUFF, HUFF_RANGE, MAX_BITS, RAW, RLE, TABLE,
                     block_count, block_sizes, corrupt, parse)
from .table import read_table


@nb.njit(cache=True, nogil=True)
def decode_block(blob, off, size, out, lo, ln, table, allow_range=False):
    """One block into out[lo:lo+ln]: 0 or ERR_CORRUPT. Every read stays in blob[off:off+size].
    allow_range: the block may be of type HUFF_RANGE (the float codec's streams only)."""
    if size < BLOCK_HEADER:
        return ERR_CORRUPT
    expect = read32(blob, off + 1)
    btype = blob[off]
    if btype == RAW:
        if size != BLOCK_HEADER + ln or ln < 2:  # one byte is a single-symbol block
            return ERR_CORRUPT
        out[lo:lo + ln] = blob[off + BLOCK_HEADER:off + BLOCK_HEADER + ln]
    elif btype == RLE:
        if size != BLOCK_HEADER + 1:
            return ERR_CORRUPT
        out[lo:lo + ln] = blob[off + BLOCK_HEADER]
    elif btype == HUFF or btype == HUFF_RANGE:
        lengths = np.empty(256, np.uint8)
        at = read_table(blob, off, size, allow_range, lengths)
        if at < 0:
            return ERR_CORRUPT
        kraft = 0
        for s in range(256):
            if lengths[s] > MAX_BITS:
                return ERR_CORRUPT
            if lengths[s] != 0:
                kraft += 1 << (MAX_BITS - lengths[s])
        if kraft != TABLE:
            return ERR_CORRUPT
        payload = size - at - 12
        j = off + at
        s0 = np.int64(read32(blob, j))
        s1 = np.int64(read32(blob, j + 4))
        s2 = np.int64(read32(blob, j + 8))
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
        base = off + at + 12
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
                b0 |= read32(blob, p0) << n0
                p0 += 4
                n0 += thirty_two
            if n1 < thirty_two:
                if p1 + 4 > a2:
                    break
                b1 |= read32(blob, p1) << n1
                p1 += 4
                n1 += thirty_two
            if n2 < thirty_two:
                if p2 + 4 > a3:
                    break
                b2 |= read32(blob, p2) << n2
                p2 += 4
                n2 += thirty_two
            if n3 < thirty_two:
                if p3 + 4 > a4:
                    break
                b3 |= read32(blob, p3) << n3
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
                        buf |= read32(blob, p) << nbits
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


def _decode_all(blob, offsets, sizes, out, bs):
    n = out.size
    status = np.zeros(sizes.size, np.int64)
    for b in nb.prange(sizes.size):
        table = np.empty(TABLE, np.uint16)
        lo = b * bs
        status[b] = decode_block(blob, offsets[b], sizes[b], out, lo, min(bs, n - lo), table)
    return status.min() if sizes.size else 0


decode_all_serial, decode_all_parallel = DECODE_ALL = serial_and_parallel(_decode_all)


def decode(blob, out, isa=None):
    """Decode a stream into validated 1-D uint8 `out` of the header's count."""
    check_isa(isa)
    blob = readonly(blob)
    count, _, shape, hsize, block_log2 = parse(blob)
    if out.size != count:
        raise InvalidArgumentError(f"huffman_decode: out has {out.size} elements, the stream {count}")
    n_blocks = block_count(count, block_log2)
    if not n_blocks:
        return
    sizes = block_sizes(blob, len(shape), n_blocks)
    offsets = hsize + np.cumsum(sizes) - sizes
    if pick(DECODE_ALL, count)(blob, offsets, sizes, out, 1 << block_log2) != 0:
        corrupt("damaged block")
