"""What the Huffman twin's modules share (as csrc/common.h does for the C files): read-only
argument views and the one factory of the serial and parallel drivers."""

import numba as nb

from .. import use_parallel

PARALLEL_MIN = 1 << 22  # parallel drivers compile slowly; worth it for large inputs only


def readonly(a):
    """A read-only view: Numba compiles one specialization per writability, so every input
    array is passed read-only (no copy)."""
    v = a.view()
    v.flags.writeable = False
    return v


def serial_and_parallel(driver):
    """The serial and the parallel kernel of one driver over blocks, written with nb.prange:
    compiled without parallel=True, prange runs as range (that form is cached on disk); with
    it, the blocks are spread over threads (not cached: Numba's parallel kernels and its cache
    do not mix safely). Both release the GIL."""
    return nb.njit(cache=True, nogil=True)(driver), nb.njit(parallel=True, nogil=True)(driver)


def pick(kernels, size):
    """The parallel one of (serial, parallel) above PARALLEL_MIN symbols when threads may run,
    else the serial one."""
    return kernels[1] if use_parallel(size, PARALLEL_MIN) else kernels[0]
