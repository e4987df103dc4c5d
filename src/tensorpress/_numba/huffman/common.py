"""What the Huffman twin's modules share (as csrc/common.h does for the C files): read-only
argument views and the choice between a serial and a parallel driver."""

from .. import serial_and_parallel, use_parallel  # noqa: F401 (the family modules take both from here)

PARALLEL_MIN = 1 << 22  # parallel drivers compile slowly; worth it for large inputs only


def readonly(a):
    """A read-only view: Numba compiles one specialization per writability, so every input
    array is passed read-only (no copy)."""
    v = a.view()
    v.flags.writeable = False
    return v


def pick(kernels, size):
    """The parallel one of (serial, parallel) above PARALLEL_MIN symbols when threads may run,
    else the serial one."""
    return kernels[1] if use_parallel(size, PARALLEL_MIN) else kernels[0]
