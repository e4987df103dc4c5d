"""The Numba backend: jitted twins of the C kernels, giving the same results.

Serial kernels are cached on disk (cache=True); parallel ones are not, because Numba's
parallel kernels and its cache do not mix safely. Every kernel is compiled with nogil=True, so
it releases the GIL as the C calls do. Each family module exposes the same functions as its C
counterpart in tensorpress._native.
"""

import os

import numba as nb
from numba.core.compiler_lock import global_compiler_lock

PARALLEL_CHUNK = 16384  # elements per prange task: large enough to amortise scheduling


def serial_and_parallel(driver, **options):
    """The serial and the parallel kernel of one driver written with nb.prange, so the two forms
    cannot drift: compiled without parallel=True, prange runs as range (that form is cached on
    disk); with it, the iterations are spread over threads (not cached: Numba's parallel
    kernels and its cache do not mix safely). Both release the GIL."""
    serial = nb.njit(cache=True, nogil=True, **options)(driver)
    parallel = nb.njit(parallel=True, nogil=True, **options)(driver)
    return serial, parallel


def check_isa(isa):
    """The twins have one form: a kernel variant (isa=) is the C backend's notion. The family
    functions take the argument so both backends keep one signature (tensorpress._families)."""
    if isa is not None:
        from ..errors import BackendError

        raise BackendError(f"the Numba backend has no kernel variants; isa={isa!r} names a C one")


def use_parallel(size, minimum):
    """True when a kernel over `size` elements should take its parallel (prange) form: large
    enough, and threads allowed (a process forked after Numba's OpenMP threads started must
    stay serial, or the runtime aborts it)."""
    from .._threads import get_num_threads

    return size >= minimum and get_num_threads() > 1


# A kernel's first call compiles it under Numba's process-wide compiler lock (an RLock). If
# another thread forks meanwhile, the child inherits the lock held by a thread it does not have,
# and its first compile waits forever. So fork() takes the lock first: it waits for a compile in
# progress to finish, then both parent and child release it. The lock is re-entrant, so a fork
# from the thread that is compiling (or from a nested call) goes straight through.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=global_compiler_lock.acquire,
        after_in_parent=global_compiler_lock.release,
        after_in_child=global_compiler_lock.release,
    )
