"""Reading and writing checkpoints by file extension: .safetensors, .npz and .tpz."""

import os

import numpy as np

from ._atomic import replacing
from .errors import InvalidArgumentError

FORMATS = (".safetensors", ".npz", ".tpz")


def kind(path):
    """The checkpoint format of `path` from its extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise InvalidArgumentError(f"{os.fspath(path)!r}: unknown checkpoint format {ext or '(none)'}; use {', '.join(FORMATS)}")
    return ext


def _safetensors():
    try:
        from safetensors import numpy as st_numpy
    except ImportError:
        raise InvalidArgumentError(
            "reading or writing .safetensors needs the safetensors package: pip install safetensors"
        ) from None
    return st_numpy


def read(path):
    """A dict of name -> array from a .safetensors, .npz or .tpz file."""
    ext = kind(path)
    if ext == ".safetensors":
        return dict(_safetensors().load_file(os.fspath(path)))
    if ext == ".npz":
        with np.load(os.fspath(path), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    from .pipeline import load

    return load(path)


def write(path, tensors):
    """Write a dict of arrays to .safetensors or .npz, atomically (temporary file + rename)."""
    ext = kind(path)
    if ext == ".tpz":
        raise InvalidArgumentError("write .tpz files with tensorpress.save (it compresses)")
    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    with replacing(path, suffix=ext) as tmp:
        if ext == ".safetensors":
            _safetensors().save_file(arrays, tmp)
        else:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
