"""The code-length table of a Huffman block in its two layouts (csrc/huffman/table.c): type 2's
128 bytes of 4-bit lengths (docs/huffman.md section 3), and type 3's range of symbols, which
only the float codec's stream uses (docs/float_codec.md section 5): u8 first, u8 count - 1,
then ceil(count / 2) bytes of 4-bit lengths, symbol first + 2i in byte i's low nibble, an odd
count's last high nibble 0. Written by the encoder, read with every bound checked by the
decoder."""

import numba as nb

from .format import BLOCK_HEADER, HUFF, HUFF_RANGE, PAYLOAD_START


@nb.njit(cache=True, nogil=True)
def used_range(lengths):
    """(first, last): the smallest and the largest symbol with a code (at least one has)."""
    first = 0
    while lengths[first] == 0:
        first += 1
    last = 255
    while lengths[last] == 0:
        last -= 1
    return first, last


@nb.njit(cache=True, nogil=True)
def range_table_bytes(lengths):
    """Bytes of the type-3 table of these lengths (at least two symbols used)."""
    first, last = used_range(lengths)
    return 2 + (last - first + 2) // 2


@nb.njit(cache=True, nogil=True)
def write_table(dst, p, btype, lengths):
    """The table of a Huffman block of type btype (HUFF or HUFF_RANGE) at dst[p:]; its bytes."""
    if btype == HUFF:
        for i in range(128):  # symbol 2i in the low nibble
            dst[p + i] = lengths[2 * i] | (lengths[2 * i + 1] << 4)
        return 128
    first, last = used_range(lengths)
    count = last - first + 1
    dst[p] = first
    dst[p + 1] = count - 1
    for i in range((count + 1) // 2):  # symbol first + 2i in the low nibble
        high = lengths[first + 2 * i + 1] if 2 * i + 1 < count else 0
        dst[p + 2 + i] = lengths[first + 2 * i] | (high << 4)
    return 2 + (count + 1) // 2


@nb.njit(cache=True, nogil=True)
def read_table(blob, off, size, allow_range, lengths):
    """The lengths of the Huffman block at blob[off:off+size] (type HUFF, or HUFF_RANGE when
    allow_range) into lengths; returns where its three stream sizes start (from off), or -1
    when the table does not fit the block, a range runs past symbol 255 or pads with a nonzero
    nibble. Every read stays in the block."""
    p = off + BLOCK_HEADER
    if blob[off] == HUFF:
        if size < PAYLOAD_START:
            return -1
        for i in range(128):
            b = blob[p + i]
            lengths[2 * i] = b & 15
            lengths[2 * i + 1] = b >> 4
        return BLOCK_HEADER + 128
    if blob[off] != HUFF_RANGE or not allow_range or size < BLOCK_HEADER + 2 + 12:
        return -1
    first = int(blob[p])
    count = int(blob[p + 1]) + 1
    nbytes = 2 + (count + 1) // 2
    if first + count > 256 or size < BLOCK_HEADER + nbytes + 12:
        return -1
    if count & 1 and blob[p + 2 + count // 2] >> 4:  # the pad nibble
        return -1
    lengths[:] = 0
    for i in range(count):
        lengths[first + i] = (blob[p + 2 + i // 2] >> (4 * (i & 1))) & 15
    if lengths[first] == 0 or lengths[first + count - 1] == 0:  # exactly the used symbols
        return -1
    return BLOCK_HEADER + nbytes
