"""Plain Python / NumPy reference of the Huffman family: the stream format read from its
written description (docs/huffman.md), bit by bit, and the code-length rules.
Slow; for small inputs only."""

import heapq
import struct

import numpy as np

MAX_BITS = 11


class Corrupt(Exception):
    pass


def entropy_bits(flat):
    counts = np.bincount(np.asarray(flat, np.uint8).reshape(-1), minlength=256).astype(np.float64)
    n = counts.sum()
    nz = counts[counts > 0]
    return float(-(nz * np.log2(nz / n)).sum()) if n else 0.0


def huffman_lengths(counts):
    """Unlimited optimal Huffman lengths (heap based, any tie order)."""
    heap = [(int(c), s, (s,)) for s, c in enumerate(counts) if c]
    lengths = [0] * len(counts)
    if len(heap) == 1:
        lengths[heap[0][1]] = 1
        return lengths
    heapq.heapify(heap)
    k = len(counts)
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        for s in a[2] + b[2]:
            lengths[s] += 1
        heapq.heappush(heap, (a[0] + b[0], k, a[2] + b[2]))
        k += 1
    return lengths


def package_merge(counts, max_bits):
    """Optimal length-limited lengths (package-merge)."""
    leaves = sorted((int(c), (s,)) for s, c in enumerate(counts) if c)
    n = len(leaves)
    lengths = [0] * len(counts)
    if n == 1:
        lengths[leaves[0][1][0]] = 1
    if n <= 1:
        return lengths
    current = leaves
    for _ in range(max_bits - 1):
        packages = [(current[j][0] + current[j + 1][0], current[j][1] + current[j + 1][1])
                    for j in range(0, len(current) - 1, 2)]
        current = sorted(leaves + packages, key=lambda t: t[0])
    for _, symbols in current[: 2 * n - 2]:
        for s in symbols:
            lengths[s] += 1
    return lengths


def limited_lengths(counts, max_bits):
    """The coder's rule (csrc/huffman/code_lengths.c), written from its description: Huffman lengths by a
    two-queue merge of (count, symbol)-sorted leaves, clamped, excess repaid by the cheapest
    non-overshooting lengthening (count * 2^length), deficit filled by shortening a longest code,
    lengths handed out by frequency."""
    used = sorted((int(c), s) for s, c in enumerate(counts) if c)
    lengths = [0] * len(counts)
    if not used:
        return lengths
    if len(used) == 1:
        lengths[used[0][1]] = 1
        return lengths
    # two queues; ties take the leaf; track leaf depths through parent links
    n = len(used)
    inner, leaf_parent, inner_parent = [], [0] * n, [0] * n
    li = ii = 0
    for k in range(n - 1):
        w = []
        for _ in range(2):
            if li < n and (ii >= k or used[li][0] <= inner[ii]):
                w.append(used[li][0])
                leaf_parent[li] = k
                li += 1
            else:
                w.append(inner[ii])
                inner_parent[ii] = k
                ii += 1
        inner.append(w[0] + w[1])
    depth = [0] * (n - 1)
    for k in range(n - 3, -1, -1):
        depth[k] = depth[inner_parent[k]] + 1
    bl = [0] * (max_bits + 2)
    for i in range(n):
        bl[min(depth[leaf_parent[i]] + 1, max_bits)] += 1
    over = sum(bl[l] << (max_bits - l) for l in range(1, max_bits + 1)) - (1 << max_bits)
    while over > 0:
        best, best_cost, start = 0, 0, bl[max_bits]
        for l in range(max_bits - 1, 0, -1):
            if bl[l]:
                if (1 << (max_bits - l - 1)) <= over:
                    cost = used[start][0] << l
                    if not best or cost < best_cost:
                        best, best_cost = l, cost
                start += bl[l]
        if not best:
            best = max_bits - 1
            while not bl[best]:
                best -= 1
        bl[best] -= 1
        bl[best + 1] += 1
        over -= 1 << (max_bits - best - 1)
    while over < 0:
        l = max_bits
        while not bl[l] or (1 << (max_bits - l)) > -over:
            l -= 1
        bl[l] -= 1
        bl[l - 1] += 1
        over += 1 << (max_bits - l)
    i = n - 1
    for l in range(1, max_bits + 1):
        for _ in range(bl[l]):
            lengths[used[i][1]] = l
            i -= 1
    return lengths


def canonical_codes(lengths):
    """{(length, code as MSB-first int): symbol} with deflate's canonical rule."""
    table, code = {}, 0
    ordered = sorted((l, s) for s, l in enumerate(lengths) if l)
    prev = 0
    for l, s in ordered:
        code <<= l - prev
        prev = l
        table[(l, code)] = s
        code += 1
    return table


def crc32(data):
    """The format's checksum: zlib's CRC-32 (polynomial 0x04C11DB7 reflected, initial value and
    final XOR 0xFFFFFFFF), written out bit by bit."""
    c = 0xFFFFFFFF
    for byte in bytes(data):
        c ^= byte
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def decode(blob):
    """(dtype code, shape, decoded bytes) of a stream, or raise Corrupt."""
    blob = bytes(blob)
    if len(blob) < 20 or blob[:4] != b"TPHF" or blob[4] != 2 or blob[5] > 2:
        raise Corrupt("header")
    dtype, ndim, block_log2 = blob[5], blob[6], blob[7]
    if ndim > 32 or not 10 <= block_log2 <= 24:
        raise Corrupt("header")
    (count,) = struct.unpack_from("<Q", blob, 8)
    if len(blob) < 16 + 8 * ndim + 4:
        raise Corrupt("header")
    shape = struct.unpack_from(f"<{ndim}Q", blob, 16)
    if int(np.prod(shape, dtype=object)) != count:
        raise Corrupt("shape")
    bs = 1 << block_log2
    n_blocks = -(-count // bs)
    hsize = 16 + 8 * ndim + 4 * n_blocks + 4
    if hsize > len(blob) or crc32(blob[:hsize - 4]) != struct.unpack_from("<I", blob, hsize - 4)[0]:
        raise Corrupt("header checksum")
    sizes = struct.unpack_from(f"<{n_blocks}I", blob, 16 + 8 * ndim)
    if sum(sizes) != len(blob) - hsize:
        raise Corrupt("length")
    out, off = bytearray(), hsize
    for b, size in enumerate(sizes):
        out += decode_block(blob[off:off + size], min(bs, count - b * bs))
        off += size
    return dtype, tuple(shape), bytes(out)


def decode_block(block, length, allow_range=False):
    """The `length` bytes one block (section 3) decodes to, or raise Corrupt. With
    `allow_range`, also type 3 (docs/float_codec.md section 5: the lengths of a range of symbols
    only), which only the float codec's streams hold."""
    size = len(block)
    if size < 5:
        raise Corrupt("block")
    kind, (check,) = block[0], struct.unpack_from("<I", block, 1)
    if kind == 0:
        if size != 5 + length or length < 2:
            raise Corrupt("raw")
        data = block[5:]
    elif kind == 1:
        if size != 6:
            raise Corrupt("rle")
        data = bytes([block[5]]) * length
    elif kind == 2 or (kind == 3 and allow_range):
        if kind == 2:  # 256 nibbles, symbol 2i in the low one
            if size < 145:
                raise Corrupt("huff")
            at = 133
            lengths = [n for byte in block[5:at] for n in (byte & 15, byte >> 4)]
        else:  # first symbol, count - 1, the range's nibbles
            if size < 5 + 2 + 12:
                raise Corrupt("huff")
            first, count = block[5], block[6] + 1
            at = 5 + 2 + (count + 1) // 2
            if first + count > 256 or size < at + 12:
                raise Corrupt("range table")
            nibbles = [n for byte in block[7:at] for n in (byte & 15, byte >> 4)]
            if count % 2 and nibbles[-1]:
                raise Corrupt("pad nibble")
            lengths = [0] * first + nibbles[:count] + [0] * (256 - first - count)
            if not lengths[first] or not lengths[first + count - 1]:
                raise Corrupt("range wider than the used symbols")
        if max(lengths) > MAX_BITS or sum(2.0 ** -l for l in lengths if l) != 1.0:
            raise Corrupt("lengths")
        codes = canonical_codes(lengths)
        s = struct.unpack_from("<3I", block, at)
        if sum(s) > size - at - 12:
            raise Corrupt("jump table")
        start = at + 12
        bounds = [start, start + s[0], start + s[0] + s[1], start + sum(s), size]
        data = bytearray(length)
        for k in range(4):
            stream = block[bounds[k]:bounds[k + 1]]
            bits = [(byte >> j) & 1 for byte in stream for j in range(8)]
            pos = 0
            for i in range(k, length, 4):
                code, l = 0, 0
                while (l, code) not in codes:
                    if pos >= len(bits) or l >= MAX_BITS:
                        raise Corrupt("stream overrun")
                    code = (code << 1) | bits[pos]
                    pos += 1
                    l += 1
                data[i] = codes[(l, code)]
            rest = bits[pos:]
            if len(rest) >= 8 or any(rest):
                raise Corrupt("stream end")
        data = bytes(data)
    else:
        raise Corrupt("block type")
    if crc32(data) != check:
        raise Corrupt("block checksum")
    return bytes(data)
