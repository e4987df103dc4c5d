"""The Numba side of csrc/half.h, for the quant and adam twins: float32 <-> uint32 bit casts in
registers, float32 <-> bfloat16 / IEEE half conversions (half arrays are passed as their bits:
float16 as uint16, bfloat16 as int16), stochastic rounding and its hash, each the same bits as
its C function.

uint32 arithmetic: Numba widens integer operations to 64 bits, so every result that can carry
past bit 31 is cut back with np.uint32() before it is shifted right or compared, and no uint
value meets a signed one (uint64 with int64 gives float64 in Numba)."""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic, overload


@intrinsic
def float_from_bits(typingctx, bits):
    """The float32 whose bits are the low 32 of the unsigned integer `bits` (a register bit
    cast, no memory; Numba widens uint32 arithmetic to uint64, hence the truncation)."""
    if not isinstance(bits, nb.types.Integer) or bits.signed or bits.bitwidth < 32:
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if bits.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return nb.types.float32(bits), codegen


@intrinsic
def bits_of(typingctx, value):
    """The uint32 bits of the float32 `value` (a register bit cast)."""
    if value != nb.types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return nb.types.uint32(nb.types.float32), codegen


_U32 = np.uint32
_TWO_112 = np.float32(2.0**112)
_TWO_24 = np.float32(2.0**24)
_TWO_M24 = np.float32(2.0**-24)
_SERIAL = dict(nogil=True, cache=True, error_model="numpy")


@nb.njit(inline="always", **_SERIAL)
def f16_to_f32(h):
    """IEEE half bits (uint32 holding 16) -> float32, exact (tp_f16_to_f32)."""
    em = _U32(h & _U32(0x7FFF))
    b = bits_of(float_from_bits(_U32(em << _U32(13))) * _TWO_112)
    b = _U32(b | _U32(0x7F800000)) if em >= _U32(0x7C00) else b
    sign = _U32(_U32(h & _U32(0x8000)) << _U32(16))
    return float_from_bits(_U32(b | sign))


@nb.njit(inline="always", **_SERIAL)
def f32_to_bf16(f):
    """float32 -> bfloat16 bits, nearest even; a NaN becomes 0x7fc0 with its sign (tp_f32_to_bf16)."""
    b = bits_of(f)
    high = _U32(b >> _U32(16))
    r = _U32(_U32(_U32(b + _U32(0x7FFF)) + _U32(high & _U32(1))) >> _U32(16))
    nan = _U32(_U32(high & _U32(0x8000)) | _U32(0x7FC0))
    return np.uint16(nan if _U32(b & _U32(0x7FFFFFFF)) > _U32(0x7F800000) else r)


@nb.njit(inline="always", **_SERIAL)
def f32_to_f16(f):
    """float32 -> IEEE half bits, nearest even, every path computed and one picked (tp_f32_to_f16)."""
    b = bits_of(f)
    sign = _U32(_U32(b >> _U32(16)) & _U32(0x8000))
    a = _U32(b & _U32(0x7FFFFFFF))
    mant = _U32(a >> _U32(13))
    # (a + ((15 - 127) << 23) + 0xfff + lowest kept bit) >> 13, wrapping at 32 bits
    normal = _U32(_U32(_U32(a + _U32(0xC8000FFF)) + _U32(mant & _U32(1))) >> _U32(13))
    sub = _U32(bits_of(float_from_bits(a) + np.float32(0.5)) - _U32(0x3F000000))
    big = _U32(_U32(0x7E00) | _U32(mant & _U32(0x3FF))) if a > _U32(0x7F800000) else _U32(0x7C00)
    h = big if a >= _U32(0x47800000) else (sub if a < _U32(0x38800000) else normal)
    return np.uint16(_U32(sign | h))


@nb.njit(inline="always", **_SERIAL)
def hash32(x):
    """tp_hash32: two multiply-xorshift rounds on 32-bit words."""
    x = _U32(x ^ _U32(x >> _U32(16)))
    x = _U32(x * _U32(0x21F0AAAD))
    x = _U32(x ^ _U32(x >> _U32(15)))
    x = _U32(x * _U32(0x735A2D97))
    return _U32(x ^ _U32(x >> _U32(15)))


@nb.njit(inline="always", **_SERIAL)
def sr_bits(key_lo, key_hi, lo):
    """tp_sr_bits: the 32 random bits of the element whose index has low word `lo`."""
    return hash32(_U32(hash32(_U32(lo ^ key_lo)) + key_hi))


@nb.njit(inline="always", **_SERIAL)
def f32_to_bf16_sr(f, r):
    """float32 -> bfloat16 bits rounded stochastically with the random bits r (tp_f32_to_bf16_sr)."""
    b = bits_of(f)
    nan = _U32(_U32(_U32(b >> _U32(16)) & _U32(0x8000)) | _U32(0x7FC0))
    rounded = _U32(_U32(b + _U32(r >> _U32(16))) >> _U32(16))
    return np.uint16(nan if _U32(b & _U32(0x7FFFFFFF)) > _U32(0x7F800000) else rounded)


@nb.njit(inline="always", **_SERIAL)
def f32_to_f16_sr(f, r):
    """float32 -> IEEE half bits rounded stochastically with the random bits r (tp_f32_to_f16_sr)."""
    b = bits_of(f)
    sign = _U32(_U32(b >> _U32(16)) & _U32(0x8000))
    a = _U32(b & _U32(0x7FFFFFFF))
    carried = _U32(a + _U32(r >> _U32(19)))
    normal = (_U32(0x7C00) if carried >= _U32(0x47800000)
              else _U32(_U32(carried >> _U32(13)) - _U32(112 << 10)))
    y = float_from_bits(a if a < _U32(0x38800000) else _U32(0)) * _TWO_24
    n = np.int32(y)
    fraction = y - np.float32(n)
    u = np.float32(np.int32(_U32(r >> _U32(8)))) * _TWO_M24
    sub = _U32(_U32(n) + _U32(1 if bits_of(u) < bits_of(fraction) else 0))
    nan = _U32(_U32(0x7E00) | _U32(_U32(a >> _U32(13)) & _U32(0x3FF)))
    h = nan if a > _U32(0x7F800000) else (sub if a < _U32(0x38800000) else normal)
    return np.uint16(_U32(sign | h))


def store_rounded(out, i, v):  # pragma: no cover - replaced by the overload inside jitted code
    raise NotImplementedError


@overload(store_rounded)
def _store_rounded_impl(out, i, v):
    """out[i] = v (float32), rounded to nearest even into float16 bits (uint16) or bfloat16 bits (int16)."""
    if out.dtype == nb.types.uint16:
        def store_half(out, i, v):
            out[i] = f32_to_f16(v)

        return store_half

    if out.dtype == nb.types.int16:
        def store_bfloat16(out, i, v):
            out[i] = np.int16(f32_to_bf16(v))

        return store_bfloat16

    def store(out, i, v):
        out[i] = v

    return store
