"""Exceptions raised by tensorpress.

Every exception is a TensorpressError and also the builtin a user would expect (ValueError,
TypeError, ...), so ``except ValueError`` keeps working around calls into tensorpress.
"""


class TensorpressError(Exception):
    """Base class of every error tensorpress raises."""


class InvalidArgumentError(TensorpressError, ValueError):
    """An argument has the wrong value, shape, layout or memory (read-only, overlapping)."""


class DTypeError(TensorpressError, TypeError):
    """An argument has the wrong type or dtype."""


class NonFiniteError(InvalidArgumentError):
    """NaN or Inf where finite values are required."""


class CorruptDataError(TensorpressError, ValueError):
    """Encoded data is damaged, truncated or not tensorpress data."""


class MissingTensorError(TensorpressError, KeyError):
    """A tensor name that the file or container does not hold."""

    def __str__(self):  # KeyError's str() would show the message as a quoted repr
        return str(self.args[0]) if self.args else ""


class BackendError(TensorpressError, RuntimeError):
    """The requested backend is not available, or a kernel failed unexpectedly."""


__all__ = [
    "TensorpressError",
    "InvalidArgumentError",
    "DTypeError",
    "NonFiniteError",
    "CorruptDataError",
    "MissingTensorError",
    "BackendError",
]
