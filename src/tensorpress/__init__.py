"""tensorpress: compiled CPU kernels for training and shrinking neural-network weights.

    import tensorpress as tp
    tp.backend                       # "c" or "numba" (TENSORPRESS_BACKEND=auto|c|numba)
    found_inf = tp.adam_step(params, grads, exp_avgs, exp_avg_sqs, step=1, lr=1e-3)
"""

from . import _backend, _threads
from .errors import (
    BackendError,
    CorruptDataError,
    DTypeError,
    InvalidArgumentError,
    MissingTensorError,
    NonFiniteError,
    TensorpressError,
)
from .quant import QuantizationError, dequantize_int8, quantization_error, quantize_int8
from .huffman import entropy_bits, huffman_code_lengths, huffman_decode, huffman_encode
from .floatcodec import float_decode, float_encode
from .prune import global_topk_masks, nm_mask, prune_, topk_mask, topk_threshold
from .pipeline import compress, decompress, load, save

__version__ = "0.1.0"

# The optimizer (tensorpress.optim) is imported when first used: the command line and the
# compression-only users never touch it, and its import cost every `tensorpress` run 5 ms.
_LAZY = {"adam_step": "optim", "Adam": "optim", "AdamW": "optim"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


#: The live backend: "c" (compiled kernels) or "numba" (jitted twins).
backend = _backend.BACKEND
get_num_threads = _threads.get_num_threads
set_num_threads = _threads.set_num_threads
_threads._apply_default()

__all__ = [
    "backend",
    "get_num_threads",
    "set_num_threads",
    "adam_step",
    "Adam",
    "AdamW",
    "quantize_int8",
    "dequantize_int8",
    "quantization_error",
    "QuantizationError",
    "huffman_encode",
    "huffman_decode",
    "huffman_code_lengths",
    "entropy_bits",
    "float_encode",
    "float_decode",
    "topk_mask",
    "topk_threshold",
    "prune_",
    "global_topk_masks",
    "nm_mask",
    "compress",
    "decompress",
    "save",
    "load",
    "TensorpressError",
    "InvalidArgumentError",
    "DTypeError",
    "NonFiniteError",
    "CorruptDataError",
    "MissingTensorError",
    "BackendError",
]
