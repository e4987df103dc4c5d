"""Thread-count control shared by both backends."""

import os

from . import _backend, _checks
from .errors import BackendError, InvalidArgumentError


# set_num_threads accepts up to the largest C int, what the C side's thread count holds.
MAX_THREADS = 2**31 - 1
# What the C backend is handed at most. More threads than cores only oversubscribe them, and
# the C kernels size per-thread workspaces by the count (per-channel quantize keeps up to 8 MB
# per thread), so n = 2**31-1 passed down as is would ask for terabytes. Four per core still
# lets one oversubscribe on purpose. (Numba caps itself: NUMBA_NUM_THREADS, the cores.)
_BACKEND_MAX_THREADS = 4 * (os.cpu_count() or 1)


def _default_threads():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return min(int(value), MAX_THREADS)
    return os.cpu_count() or 1


def _for_backend(n):
    """The thread count handed to the C backend for a requested n."""
    return min(n, _BACKEND_MAX_THREADS)


_num_threads = _default_threads()
# True in a child forked from a process that may have started OpenMP threads: GCC's OpenMP
# runtime hangs if a forked child enters a parallel region the parent had already used, so such
# a child keeps every kernel on one thread.
_forked_child = False


def get_num_threads():
    """The number of threads tensorpress kernels may use (default: OMP_NUM_THREADS or all cores)."""
    return _num_threads


def set_num_threads(n):
    """Let tensorpress kernels use at most `n` threads (1 <= n <= 2**31-1). Applies to both
    backends; get_num_threads() then returns n.

    Kernels only start extra threads above a size where it pays, so small calls stay
    single-threaded whatever `n` is. Each backend is handed at most what it can use: the C
    (OpenMP) kernels at most 4 per core, the Numba ones at most the NUMBA_NUM_THREADS their
    thread pool started with (the cores, by default).
    """
    global _num_threads
    n = _checks.integer(n, "set_num_threads' n")
    if not 1 <= n <= MAX_THREADS:
        raise InvalidArgumentError(f"set_num_threads expects 1 <= n <= {MAX_THREADS}, got {n}")
    if _forked_child and n > 1:
        raise BackendError(
            "this process was forked from one that used tensorpress's OpenMP threads, which cannot "
            "be restarted after fork(); it runs kernels on one thread. Use the 'spawn' or "
            "'forkserver' multiprocessing start method for multi-threaded kernels in workers."
        )
    if _backend.c_available():
        from . import _native

        if _native.openmp_enabled():
            _native.set_num_threads(_for_backend(n))
    if _backend.BACKEND == "numba":
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _num_threads = n


def _after_fork_in_child():
    global _num_threads, _forked_child
    _forked_child = True
    _num_threads = 1
    if _backend.c_available():
        from . import _native

        _native.set_num_threads(1)


def _apply_default():
    """Make both backends start from the same default, and keep forked children safe (the
    Numba twins also check get_num_threads() before using their parallel kernels)."""
    if _backend.c_available():
        from . import _native

        if _native.openmp_enabled():
            _native.set_num_threads(_for_backend(_num_threads))
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
