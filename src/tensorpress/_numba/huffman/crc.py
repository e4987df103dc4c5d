"""CRC-32, zlib's (csrc/huffman/crc.c): slicing-by-8 tables of the reflected polynomial."""

import numba as nb
import numpy as np


def _crc_tables():
    """Slicing-by-8 tables of the reflected polynomial 0xEDB88320 (csrc/huffman/crc_table.h)."""
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
def read32(a, i):
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
            c = _crc_step8(c, read32(a, p) | (read32(a, p + 4) << np.uint64(32)))
            p += 8
    for i in range(p, lo + n):
        c = (c >> np.uint64(8)) ^ _CRC[0, (c ^ np.uint64(a[i])) & np.uint64(255)]
    return c ^ _M32
