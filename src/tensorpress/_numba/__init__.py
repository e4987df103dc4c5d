"""The Numba backend: jitted twins of the C kernels, giving the same results.

Serial kernels are cached on disk (cache=True); parallel ones are not, because Numba's
parallel kernels and its cache do not mix safely. Each family module exposes the same
functions as its C counterpart in tensorpress._native.
"""

PARALLEL_CHUNK = 16384  # elements per prange task: large enough to amortise scheduling


def use_parallel(size, minimum):
    """True when a kernel over `size` elements should take its parallel (prange) form: large
    enough, and threads allowed (a process forked after Numba's OpenMP threads started must
    stay serial, or the runtime aborts it)."""
    from .._threads import get_num_threads

    return size >= minimum and get_num_threads() > 1
