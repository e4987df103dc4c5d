"""C backend of int8 quantize / dequantize (csrc/quant/): pointers taken, one call each.

Arguments arrive validated by tensorpress.quant; x, q, scale, zero_point and out are flat,
C-contiguous views (x: float32, float64, float16 as its uint16 bits, or ml_dtypes.bfloat16). The functions mirror tensorpress._numba.quant; `isa` picks a kernel variant
(None: the current one; or "scalar", the plain reference, "baseline", "avx2", "avx512").
"""

import ml_dtypes
import numpy as np

from . import check, ffi, isa_code, lib

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_DTYPE_CODES = {
    np.dtype(np.float32): (lib.TP_FLOAT32, "float *"),
    np.dtype(np.float64): (lib.TP_FLOAT64, "double *"),
    np.dtype(np.uint16): (lib.TP_FLOAT16, "uint16_t *"),  # float16 bits
    _BFLOAT16: (lib.TP_BFLOAT16, "uint16_t *"),  # passed as its bits (no buffer protocol)
}


def _ptr(a, ctype):
    return ffi.NULL if a is None else ffi.cast(ctype, ffi.from_buffer(a, require_writable=False))


def quantize(x, layout, mode, scale, zero_point, q, isa=None):
    """Returns the first channel (block) holding NaN / Inf, or -1 when q and scale are written."""
    outer, channels, inner, block = layout
    code, ctype = _DTYPE_CODES[x.dtype]
    if x.dtype == _BFLOAT16:
        x = x.view(np.uint16)
    words = lib.tp_quantize_int8_workspace(code, outer, channels, inner, block, mode,
                                           lib.tp_get_num_threads())
    workspace = np.empty(max(words, 0), np.int32)
    bad = ffi.new("int64_t *")
    status = lib.tp_quantize_int8_isa(
        _ptr(x, ctype), code, outer, channels, inner, block, mode,
        ffi.cast("float *", ffi.from_buffer(scale)),
        _ptr(zero_point, "int8_t *"), ffi.cast("int8_t *", ffi.from_buffer(q)),
        ffi.cast("int32_t *", ffi.from_buffer(workspace)), workspace.size, bad, isa_code(isa),
    )
    if status == lib.TP_ERR_NONFINITE:
        return int(bad[0])
    check(status, "quantize_int8")
    return -1


# Output types of dequantize: float32, or the uint16 bits of bfloat16 / float16.
_OUT_CODES = {
    np.dtype(np.float32): lib.TP_FLOAT32,
    _BFLOAT16: lib.TP_BFLOAT16,
    np.dtype(np.float16): lib.TP_FLOAT16,
}


def dequantize(q, layout, scale, zero_point, out, isa=None):
    """out: float32, ml_dtypes.bfloat16 or float16 (rounded to nearest even)."""
    outer, channels, inner, block = layout
    code = _OUT_CODES[out.dtype]
    if code != lib.TP_FLOAT32:
        out = out.view(np.uint16)
    check(
        lib.tp_dequantize_int8_isa(
            ffi.cast("int8_t *", ffi.from_buffer(q, require_writable=False)), outer, channels,
            inner, block, ffi.cast("float *", ffi.from_buffer(scale, require_writable=False)),
            _ptr(zero_point, "int8_t *"), ffi.cast("void *", ffi.from_buffer(out)), code,
            isa_code(isa),
        ),
        "dequantize_int8",
    )
