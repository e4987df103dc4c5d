"""Length-limited code lengths and canonical codes (csrc/huffman/code_lengths.c), step by step
as the C code, so both backends write identical streams."""

import numba as nb
import numpy as np

from ...errors import InvalidArgumentError
from .. import check_isa
from .common import readonly
from .format import MAX_BITS


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


def code_lengths(counts, max_bits, isa=None):
    """tp_huffman_code_lengths on validated int64 counts."""
    check_isa(isa)
    lengths = np.zeros(counts.size, np.uint8)
    if lengths_into(readonly(counts), counts.size, max_bits, lengths) != 0:
        raise InvalidArgumentError(
            f"huffman_code_lengths: more than 2**{max_bits} symbols are used")
    return lengths
