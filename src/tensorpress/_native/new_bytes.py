"""A new ``bytes`` object that a kernel writes in place: the encoders' streams are returned
without copying them out of a scratch array.

Why: ``bytes(array)`` of a stream copies it into fresh pages, and the first touch of each page
faults. For all-MiniLM-L6-v2's float32 weights (90 MB, a 74 MB stream) that copy took 39 ms of
float_encode's 100 ms at one thread: more than the coding of the largest plane.

How (CPython's C API through ctypes): PyBytes_FromStringAndSize(NULL, capacity) makes an
uninitialised bytes object that nothing else has seen yet, so writing into it is safe; the kernel
writes through PyBytes_AsString's pointer (with the GIL released: no other thread can reach
the object); _PyBytes_Resize then shrinks it to what was written (a realloc that keeps its
start, so the stream is not copied: untouched pages past it are returned unread). The object is
held as a raw reference until it is complete: a ctypes py_object would keep its own reference
to the pre-resize address. As NumPy does for its arrays, a large buffer is advised to be backed
by transparent huge pages (Linux): one fault per 2 MiB instead of one per 4 KiB, which
otherwise cost as much as the copy saved. Elsewhere than CPython the stream is written into an array and
copied.
"""

import ctypes
import platform
import sys

import numpy as np

from . import check, ffi

__all__ = ["written_in_place", "encoded"]

if platform.python_implementation() == "CPython":
    _api = ctypes.pythonapi  # a PyDLL: each call raises the Python error it sets
    _new = _api.PyBytes_FromStringAndSize
    _new.argtypes, _new.restype = (ctypes.c_void_p, ctypes.c_ssize_t), ctypes.c_void_p
    _data = _api.PyBytes_AsString
    _data.argtypes, _data.restype = (ctypes.c_void_p,), ctypes.c_void_p
    _resize = _api._PyBytes_Resize
    _resize.argtypes, _resize.restype = (ctypes.POINTER(ctypes.c_void_p), ctypes.c_ssize_t), ctypes.c_int
    _decref = _api.Py_DecRef
    _decref.argtypes, _decref.restype = (ctypes.c_void_p,), None
else:  # pragma: no cover - the CI runs CPython
    _api = None

_HUGE_PAGE = 1 << 21
_HUGE_FROM = 1 << 22  # NumPy's threshold for the same advice
_MADV_HUGEPAGE = 14
if sys.platform.startswith("linux"):
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes, _madvise.restype = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int), ctypes.c_int
else:  # pragma: no cover
    _madvise = None


def _advise_huge_pages(address, size):
    """Ask for huge pages over the whole 2 MiB pages inside [address, address + size) (a hint:
    a kernel without transparent huge pages refuses it, and nothing changes)."""
    start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
    end = (address + size) // _HUGE_PAGE * _HUGE_PAGE
    if _madvise is not None and size >= _HUGE_FROM and end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)


def written_in_place(capacity, write):
    """The bytes that ``write(address)`` writes at the integer address of a new, uninitialised
    buffer of ``capacity`` > 0 bytes, returning how many it used (<= capacity)."""
    if capacity <= 0:  # size 0 would be CPython's shared empty bytes object
        raise ValueError("written_in_place needs a capacity > 0")
    if _api is None:  # pragma: no cover
        buffer = np.empty(capacity, np.uint8)
        return buffer[:write(buffer.ctypes.data)].tobytes()
    ref = ctypes.c_void_p(_new(None, capacity))  # our only reference, raw
    try:
        address = _data(ref)
        _advise_huge_pages(address, capacity)
        used = write(address)
        if not 0 <= used <= capacity:  # pragma: no cover - the kernels never overrun
            raise AssertionError(f"wrote {used} bytes into a buffer of {capacity}")
        _resize(ctypes.byref(ref), used)  # on failure it frees the object and NULLs ref
    except BaseException:
        if ref.value:
            _decref(ref)
        raise
    result = ctypes.cast(ref, ctypes.py_object).value  # a new reference, Python's own
    _decref(ref)
    return result


def encoded(kernel, what, src, count, dtype_code, shape, log2, capacity, workspace, isa):
    """The bytes an encoder kernel of the stream families writes (tp_huffman_encode_isa and
    tp_float_encode_isa take the same arguments): src a cffi pointer to the input, shape a
    tuple, workspace a uint64 array, isa a code. Errors raise as `what`'s."""
    shape_arr = ffi.new("int64_t[]", [int(d) for d in shape] or [0])
    written = ffi.new("int64_t *")

    def write(address):
        check(kernel(src, count, dtype_code, len(shape), shape_arr, log2,
                     ffi.cast("uint8_t *", address), capacity, ffi.from_buffer(workspace),
                     workspace.nbytes, written, isa), what)
        return written[0]
    return written_in_place(capacity, write)
