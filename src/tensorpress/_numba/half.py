"""Bit casts between float32 and uint32 inside Numba kernels, in registers (the Numba side of
csrc/half.h's tp_float / tp_bits): the half-precision conversions of the quant and adam twins
are written on them."""

import numba as nb
from llvmlite import ir
from numba.extending import intrinsic


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
