"""Thread-count control shared by both backends."""

import os
import operator

from . import _backend
from .errors import DTypeError, InvalidArgumentError


def _default_threads():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1


_num_threads = _default_threads()


def get_num_threads():
    """The number of threads tensorpress kernels may use (default: OMP_NUM_THREADS or all cores)."""
    return _num_threads


def set_num_threads(n):
    """Let tensorpress kernels use at most `n` threads (n >= 1). Applies to both backends.

    Kernels only start extra threads above a size where it pays, so small calls stay
    single-threaded whatever `n` is.
    """
    global _num_threads
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise DTypeError(f"set_num_threads expects an int, got {type(n).__name__}") from None
    if n < 1:
        raise InvalidArgumentError(f"set_num_threads expects n >= 1, got {n}")
    if "c" in _backend.available_backends():
        from . import _native

        if _native.openmp_enabled():
            _native.set_num_threads(n)
    if _backend.BACKEND == "numba":
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _num_threads = n


def _apply_default():
    """Make both backends start from the same default."""
    if "c" in _backend.available_backends():
        from . import _native

        if _native.openmp_enabled():
            _native.set_num_threads(_num_threads)
