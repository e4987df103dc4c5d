"""C backend of int8 quantize / dequantize (csrc/quant.c): pointers taken, one call each.

Arguments arrive validated by tensorpress.quant; x, q, scale, zero_point and out are flat,
C-contiguous views. The functions mirror tensorpress._numba.quant.
"""

import numpy as np

from . import ISA_CODES, check, ffi, lib

SYMMETRIC, AFFINE, GIVEN = lib.TP_QUANT_SYMMETRIC, lib.TP_QUANT_AFFINE, lib.TP_QUANT_GIVEN
_DTYPE_CODES = {
    np.dtype(np.float32): (lib.TP_FLOAT32, "float *"),
    np.dtype(np.float64): (lib.TP_FLOAT64, "double *"),
    np.dtype(np.uint16): (lib.TP_QUANT_FLOAT16, "uint16_t *"),  # float16 bits
}


def _ptr(a, ctype):
    return ffi.NULL if a is None else ffi.cast(ctype, ffi.from_buffer(a, require_writable=False))


def _quantize(x, layout, mode, scale, zero_point, q, isa):
    outer, channels, inner, block = layout
    code, ctype = _DTYPE_CODES[x.dtype]
    words = lib.tp_quantize_int8_workspace(code, outer, channels, inner, block, mode,
                                           lib.tp_get_num_threads())
    workspace = np.empty(max(words, 0), np.int32)
    bad = ffi.new("int64_t *")
    status = lib.tp_quantize_int8_isa(
        _ptr(x, ctype), code, outer, channels, inner, block, mode,
        ffi.cast("float *", ffi.from_buffer(scale)),
        _ptr(zero_point, "int8_t *"), ffi.cast("int8_t *", ffi.from_buffer(q)),
        ffi.cast("int32_t *", ffi.from_buffer(workspace)), workspace.size, bad, isa,
    )
    if status == lib.TP_ERR_NONFINITE:
        return int(bad[0])
    check(status, "quantize_int8")
    return -1


def quantize(x, layout, mode, scale, zero_point, q):
    """Returns the first channel (block) holding NaN / Inf, or -1 when q and scale are written."""
    return _quantize(x, layout, mode, scale, zero_point, q, lib.tp_isa_current())


def quantize_isa(x, layout, mode, scale, zero_point, q, isa):
    """quantize with one named kernel variant ("scalar", "baseline", "avx2", "avx512")."""
    return _quantize(x, layout, mode, scale, zero_point, q, ISA_CODES[isa])


def _dequantize(q, layout, scale, zero_point, out, isa):
    outer, channels, inner, block = layout
    check(
        lib.tp_dequantize_int8_isa(
            ffi.cast("int8_t *", ffi.from_buffer(q, require_writable=False)), outer, channels,
            inner, block, ffi.cast("float *", ffi.from_buffer(scale, require_writable=False)),
            _ptr(zero_point, "int8_t *"), ffi.cast("float *", ffi.from_buffer(out)), isa,
        ),
        "dequantize_int8",
    )


def dequantize(q, layout, scale, zero_point, out):
    _dequantize(q, layout, scale, zero_point, out, lib.tp_isa_current())


def dequantize_isa(q, layout, scale, zero_point, out, isa):
    _dequantize(q, layout, scale, zero_point, out, ISA_CODES[isa])
