"""Every constant of tensorpress._consts equals its definition in the C headers.

C cannot import Python, so the values are written twice; this test is what keeps them one.
It reads the values from the compiled extension (cffi exposes the headers' #defines) and, for
the defines cffi does not bind, from the header text itself.
"""

import os
import re
import struct

import pytest

from conftest import requires_c
from tensorpress import _consts

CSRC = os.path.join(os.path.dirname(__file__), "..", "csrc")

# _consts name -> the C name it mirrors
C_NAMES = {
    "FLOAT32": "TP_FLOAT32",
    "FLOAT64": "TP_FLOAT64",
    "FLOAT16": "TP_FLOAT16",
    "BFLOAT16": "TP_BFLOAT16",
    "ISA_SCALAR": "TP_ISA_SCALAR",
    "ISA_BASELINE": "TP_ISA_BASELINE",
    "ISA_AVX2": "TP_ISA_AVX2",
    "ISA_AVX512": "TP_ISA_AVX512",
    "QUANT_SYMMETRIC": "TP_QUANT_SYMMETRIC",
    "QUANT_AFFINE": "TP_QUANT_AFFINE",
    "QUANT_GIVEN": "TP_QUANT_GIVEN",
    "ADAM_DECOUPLED": "TP_ADAM_DECOUPLED",
    "ADAM_AMSGRAD": "TP_ADAM_AMSGRAD",
    "ADAM_MAXIMIZE": "TP_ADAM_MAXIMIZE",
    "ADAM_GRAD_SCALE": "TP_ADAM_GRAD_SCALE",
    "HUFFMAN_MAX_BITS": "TP_HUFFMAN_MAX_BITS",
    "HUFFMAN_MAX_NDIM": "TP_HUFFMAN_MAX_NDIM",
    "HUFFMAN_BLOCK_LOG2": "TP_HUFFMAN_BLOCK_LOG2",
    "HUFFMAN_MIN_BLOCK_LOG2": "TP_HUFFMAN_MIN_BLOCK_LOG2",
    "HUFFMAN_MAX_BLOCK_LOG2": "TP_HUFFMAN_MAX_BLOCK_LOG2",
    "ADAM_STOCHASTIC_ROUNDING": "TP_ADAM_STOCHASTIC_ROUNDING",
    "HUFFMAN_UINT8": "TP_HUFFMAN_UINT8",
    "HUFFMAN_INT8": "TP_HUFFMAN_INT8",
    "HUFFMAN_BYTES": "TP_HUFFMAN_BYTES",
    "FLOAT_CODEC_MAX_NDIM": "TP_FLOAT_CODEC_MAX_NDIM",
    "FLOAT_CODEC_MIN_CHUNK_LOG2": "TP_FLOAT_CODEC_MIN_CHUNK_LOG2",
    "FLOAT_CODEC_MAX_CHUNK_LOG2": "TP_FLOAT_CODEC_MAX_CHUNK_LOG2",
}


def header_defines():
    """Every `#define NAME value` of the C sources' headers, as text."""
    defines = {}
    for folder, _, names in os.walk(CSRC):
        for name in names:
            if name.endswith(".h"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    for match in re.finditer(r"^#define (\w+) (\S+)", f.read(), re.M):
                        defines.setdefault(match.group(1), match.group(2))
    return defines


@requires_c
@pytest.mark.parametrize("name", sorted(C_NAMES))
def test_each_constant_equals_the_compiled_one(name):
    from tensorpress._native import lib

    assert getattr(_consts, name) == getattr(lib, C_NAMES[name])


def test_every_shared_constant_is_checked():
    checked = set(C_NAMES) | {"HUFFMAN_MAGIC", "HUFFMAN_VERSION", "ISA_NAMES", "ISA_CODES",
                              "ADAM_ROW", "ADAM_ROW_HEAD", "ADAM_ROW_TAIL",
                              "FLOAT_CODEC_MAGIC", "FLOAT_CODEC_VERSION", "FLOAT_CODEC_CHUNK_LOG2"}
    public = {n for n in vars(_consts) if n.isupper()}
    assert public == checked, f"unchecked constants: {sorted(public - checked)}"


def test_format_constants_equal_the_headers():
    defines = header_defines()
    assert defines["HUFF_MAGIC"] == '"%s"' % _consts.HUFFMAN_MAGIC.decode()
    assert int(defines["HUFF_VERSION"]) == _consts.HUFFMAN_VERSION
    assert defines["FLOAT_MAGIC"] == '"%s"' % _consts.FLOAT_CODEC_MAGIC.decode()
    assert int(defines["FLOAT_VERSION"]) == _consts.FLOAT_CODEC_VERSION
    chunks = _consts.FLOAT_CODEC_CHUNK_LOG2.values()
    assert all(_consts.FLOAT_CODEC_MIN_CHUNK_LOG2 <= c <= _consts.FLOAT_CODEC_MAX_CHUNK_LOG2 for c in chunks)
    # one code per half type, not one per family
    assert sorted(k for k in defines if k.endswith("FLOAT16")) == ["TP_BFLOAT16", "TP_FLOAT16"]
    assert _consts.ISA_CODES == {v: k for k, v in _consts.ISA_NAMES.items()}


@requires_c
def test_adam_row_is_the_c_struct():
    from tensorpress._native import ffi

    assert struct.calcsize(_consts.ADAM_ROW) == ffi.sizeof("tp_adam_tensor")
    head, tail = struct.calcsize(_consts.ADAM_ROW_HEAD), struct.calcsize(_consts.ADAM_ROW_TAIL)
    assert 2 * head + tail == struct.calcsize(_consts.ADAM_ROW)
    fields = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master", "numel",
              "index", "dtype", "grad_dtype", "state_dtype", "reserved")
    assert [ffi.offsetof("tp_adam_tensor", f) for f in fields] == [0, 8, 16, 24, 32, 40, 48, 56, 64, 68, 72, 76]
