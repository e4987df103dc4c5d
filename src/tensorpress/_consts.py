"""Constants shared by the C kernels, the Python layer and the Numba twins, written once here.

The C headers hold the same values (C cannot import Python); tests/test_consts.py ties every
one of them to its C definition whenever the C backend is built, so the two cannot drift. The
Numba twins import this module, never the C one.
"""

# Element type codes (csrc/tensorpress.h: TP_FLOAT32, ...).
FLOAT32 = 0
FLOAT64 = 1
FLOAT16 = 2
BFLOAT16 = 3

# Kernel variants (csrc/tensorpress.h: TP_ISA_*), by the names tests and benchmarks use.
ISA_SCALAR = 0    # the plain <kernel>_ref of each family
ISA_BASELINE = 1
ISA_AVX2 = 2
ISA_AVX512 = 3
ISA_NAMES = {ISA_SCALAR: "scalar", ISA_BASELINE: "baseline", ISA_AVX2: "avx2", ISA_AVX512: "avx512"}
ISA_CODES = {name: code for code, name in ISA_NAMES.items()}

# Adam option bits (csrc/tp_adam.h: TP_ADAM_*).
ADAM_DECOUPLED = 1   # AdamW: p *= 1 - lr*wd instead of g += wd*p
ADAM_AMSGRAD = 2
ADAM_MAXIMIZE = 4
ADAM_GRAD_SCALE = 8  # grads are divided by grad_scale; a non-finite result skips the step
ADAM_STOCHASTIC_ROUNDING = 16  # half params without a master are rounded stochastically

# One row of the C table tp_adam_tensor (csrc/tp_adam.h) as the struct module packs it, for
# callers holding raw addresses (tensorpress.torch): param, grad, exp_avg, exp_avg_sq,
# max_exp_avg_sq, master (addresses, 0 for none), numel, index (int64: the tensor's number in
# stochastic rounding's counter), dtype, grad_dtype, state_dtype, reserved (int32). The head is
# the param's address, the tail everything after the grad's, so a caller keeps both between
# steps and packs only the grad's address anew.
ADAM_ROW = "=QQQQQQqqiiii"
ADAM_ROW_HEAD = "=Q"
ADAM_ROW_TAIL = "=QQQQqqiiii"

# Modes of the int8 quantizer (csrc/tp_quant.h: TP_QUANT_*).
QUANT_SYMMETRIC = 0  # scale = absmax/127 per group, q in [-127, 127], no zero point
QUANT_AFFINE = 1     # [min, max] widened to 0, scale = range/255, int8 zero point
QUANT_GIVEN = 2      # the caller's scales (and zero points); q in [-128, 127]

# The Huffman stream (csrc/tp_huffman.h, docs/huffman.md).
HUFFMAN_MAGIC = b"TPHF"
HUFFMAN_VERSION = 2
HUFFMAN_MAX_BITS = 11         # longest code the block coder uses
HUFFMAN_MAX_NDIM = 32
HUFFMAN_BLOCK_LOG2 = 18       # 256 KiB blocks (what huffman_encode writes)
HUFFMAN_MIN_BLOCK_LOG2 = 10
HUFFMAN_MAX_BLOCK_LOG2 = 24
HUFFMAN_UINT8 = 0             # dtype codes stored in the stream
HUFFMAN_INT8 = 1
HUFFMAN_BYTES = 2

# The lossless float codec's stream (csrc/tp_floatcodec.h, docs/float_codec.md); its dtype
# codes are the element types above.
FLOAT_CODEC_MAGIC = b"TPFC"
FLOAT_CODEC_VERSION = 1
FLOAT_CODEC_MAX_NDIM = 32
FLOAT_CODEC_MIN_CHUNK_LOG2 = 10
FLOAT_CODEC_MAX_CHUNK_LOG2 = 20
# What float_encode writes, by dtype name: chunks of 64K elements (32K for float64, 128K for
# float16): small enough that each chunk's codes follow its statistics, large enough that the
# blocks' headers (about 40 bytes a coded plane) stay near 0.1% of the stream and the
# decoder's per-chunk work (its tables, and the memory streams that start again at each
# chunk) a few percent of a chunk's. On all-MiniLM-L6-v2, float32 at 64K elements a chunk
# keeps a ratio of 1.2207 (1.2210 at 32K, 1.2197 at 128K) and decodes 10-12% faster than at
# 32K; bfloat16 loses ratio from 128K on (1.5040 at 64K, 1.5036 at 128K). float16 gains a
# little at 128K (1.1791 against 1.1790 at 64K) and decodes 3-6% faster than at 64K.
FLOAT_CODEC_CHUNK_LOG2 = {"float16": 17, "bfloat16": 16, "float32": 16, "float64": 15}
