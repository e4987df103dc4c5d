"""The one place that chooses the backend, and the live backend's kernel families.

TENSORPRESS_BACKEND=auto (default) uses the compiled C kernels when they import, else the
Numba twins with a warning; =c or =numba forces one and fails loudly when it is unavailable.

The public modules reach kernels through the family modules imported here by name
(python-zstandard's pattern): ``from ._backend import topk`` is tensorpress._native.topk on the
C backend and tensorpress._numba.topk on the Numba one. Both backends' family modules offer the
same functions with the same signatures, the contract written down in tensorpress._families
(tests/test_families.py holds both to it); they take arguments the public layer has validated.
"""

import importlib
import importlib.util
import os
import warnings

from .errors import BackendError

_CHOICES = ("auto", "c", "numba")


def _c_import_error():
    """None when the compiled extension imports, else why it does not."""
    try:
        importlib.import_module("tensorpress._tensorpress_c")
    except ImportError as exc:
        return exc
    return None


def _numba_import_error():
    # Importing numba takes a second or more, so only when the Numba backend is really needed;
    # elsewhere c_available() / numba_installed() answer cheaply.
    try:
        importlib.import_module("numba")
    except ImportError as exc:
        return exc
    return None


def c_available():
    """True when the compiled extension imports (cheap after the first call)."""
    return _c_import_error() is None


def numba_installed():
    """True when numba is installed (found, not imported)."""
    return importlib.util.find_spec("numba") is not None


def _choose():
    requested = os.environ.get("TENSORPRESS_BACKEND", "auto").strip().lower() or "auto"
    if requested not in _CHOICES:
        raise BackendError(
            f"TENSORPRESS_BACKEND={requested!r} is not one of {', '.join(_CHOICES)}"
        )
    if requested == "c":
        err = _c_import_error()
        if err is not None:
            raise BackendError(
                "TENSORPRESS_BACKEND=c but the compiled extension tensorpress._tensorpress_c "
                f"does not import ({err}); reinstall with a working C compiler"
            )
        return "c"
    if requested == "numba":
        err = _numba_import_error()
        if err is not None:
            raise BackendError(f"TENSORPRESS_BACKEND=numba but numba does not import ({err})")
        return "numba"
    err = _c_import_error()
    if err is None:
        return "c"
    if _numba_import_error() is None:
        warnings.warn(
            f"tensorpress: the compiled C kernels are not available ({err}); using the slower "
            "Numba backend. Reinstall with a working C compiler for full speed.",
            RuntimeWarning,
            stacklevel=3,
        )
        return "numba"
    raise BackendError(f"tensorpress has no usable backend: the C extension fails ({err}) and numba does not import")


BACKEND = _choose()

if BACKEND == "c":
    from ._native import adam, floatcodec, huffman, quant, topk  # noqa: E402,F401
else:
    from ._numba import adam, floatcodec, huffman, quant, topk  # noqa: E402,F401

FAMILIES = ("adam", "floatcodec", "huffman", "quant", "topk")


def kernels(family):
    """The live backend's module of `family` (for tests and benchmarks; the public modules
    import them above by name)."""
    return {"adam": adam, "floatcodec": floatcodec, "huffman": huffman, "quant": quant,
            "topk": topk}[family]


def kernels_of(backend, family):
    """The module of `family` for a named backend ("c" or "numba"), for tests and benchmarks."""
    package = {"c": "tensorpress._native", "numba": "tensorpress._numba"}[backend]
    return importlib.import_module(f"{package}.{family}")


def available_backends():
    """The backends that work in this process (imports numba to be sure of it)."""
    names = []
    if c_available():
        names.append("c")
    if _numba_import_error() is None:
        names.append("numba")
    return names
