"""The C backend: the compiled cffi module, its status codes, threads and CPU variants.

Family modules (adam.py, ...) take arguments already validated by the public layer, take
pointers, make one call and turn a status into an exception with ``check``.
"""

from .._tensorpress_c import ffi, lib
from ..errors import BackendError, CorruptDataError, InvalidArgumentError, NonFiniteError

from .._consts import ISA_CODES, ISA_NAMES  # noqa: F401 (family modules import them from here)

_STATUS_ERRORS = {
    lib.TP_ERR_ARGUMENT: InvalidArgumentError,
    lib.TP_ERR_CORRUPT: CorruptDataError,
    lib.TP_ERR_NONFINITE: NonFiniteError,
    lib.TP_ERR_BUFFER: InvalidArgumentError,
    lib.TP_ERR_UNSUPPORTED: BackendError,
}


def check(status, what):
    """Raise the exception that matches a C status code; `what` names the failed operation."""
    if status != lib.TP_OK:
        message = ffi.string(lib.tp_status_message(status)).decode()
        raise _STATUS_ERRORS.get(status, BackendError)(f"{what}: {message}")


def available_isas():
    """Names of the kernel variants this build has and this CPU can run, best last."""
    return [name for code, name in sorted(ISA_NAMES.items()) if lib.tp_isa_available(code)]


def current_isa():
    return ISA_NAMES[lib.tp_isa_current()]


def isa_code(isa):
    """The TP_ISA_* code of a kernel call's `isa` argument: None for the current (best) variant,
    or a name ("scalar", "baseline", "avx2", "avx512"). The one way every family takes it."""
    if isa is None:
        return lib.tp_isa_current()
    try:
        return ISA_CODES[isa]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"isa must be None or one of {', '.join(ISA_CODES)}, got {isa!r}") from None


def openmp_enabled():
    return bool(lib.tp_openmp_enabled())


def get_num_threads():
    return lib.tp_get_num_threads()


def set_num_threads(n):
    check(lib.tp_set_num_threads(n), f"set_num_threads({n})")
