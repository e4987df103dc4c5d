"""The contract of each kernel family: what tensorpress._native.<family> (C) and
tensorpress._numba.<family> (Numba) both offer, with the same parameters.

The public modules (optim, quant, prune, huffman, torch) validate every argument, then call
these through tensorpress._backend; a family function trusts what it is given (arrays of the
right dtype, contiguous, aligned, sizes consistent) and only turns a kernel's status into an
exception. Every kernel function takes ``isa``: None runs the best variant this CPU has; on
the C backend a name ("scalar" = the plain reference, "baseline", "avx2", "avx512") runs that
one, for tests and benchmarks; the Numba twins have one form and refuse a name.

tests/test_families.py holds both backends to these signatures; a backend may add only the
test hooks listed in BACKEND_ONLY.
"""

from typing import Protocol


class Adam(Protocol):
    def adam_step(self, lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                  seed=0, indices=None, isa=None):
        """Update in place; `lists` = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs or
        None, masters or None), tuples of arrays. `flags`: _consts.ADAM_* bits; `seed` and
        `indices` (each tensor's number, None for 0..n-1) key stochastic rounding. Returns
        found_inf."""

    def adam_step_packed(self, rows, count, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                         seed=0):
        """adam_step over `count` rows of raw addresses (_consts.ADAM_ROW), for callers holding
        tensors rather than arrays; checks alignment and overlap before writing."""

    def found_inf_packed(self, rows, count, grad_scale):
        """True when any grad of the rows divided by grad_scale (in its dtype) is NaN or Inf."""


class Quant(Protocol):
    def quantize(self, x, layout, mode, scale, zero_point, q, isa=None):
        """Write q, scale (and zero_point) for flat x in `layout` = (outer, channels, inner,
        block); returns the first channel (block) holding NaN / Inf, or -1."""

    def dequantize(self, q, layout, scale, zero_point, out, isa=None):
        """Write float32(q - zero_point) * scale into flat `out`."""


class Topk(Protocol):
    def topk_select(self, arrays, k, masks, packed=False, zero=False, isa=None):
        """Exactly k kept across the concatenation of `arrays`; masks written (None: threshold
        only); returns the threshold's key bits."""

    def topk_rows(self, x, outer, length, inner, k, mask, thresholds=None, packed=False, zero=False, isa=None):
        """Exactly k kept in every slice of x viewed as (outer, length, inner)."""

    def nm_mask(self, x, outer, length, inner, n, m, mask, isa=None):
        """n of every m consecutive elements along the slice axis kept."""


class Huffman(Protocol):
    def bound(self, count, ndim, block_log2=18):
        """The largest stream `count` symbols can need."""

    def parse(self, blob):
        """(count, dtype_code, shape, header_size, block_log2) of a stream's checked header."""

    def encode(self, src, dtype_code, shape, block_log2=18, isa=None):
        """The stream (bytes) of flat uint8 `src`."""

    def decode(self, blob, out, isa=None):
        """Decode a checked stream into flat uint8 `out` of its declared count."""

    def histogram(self, src, isa=None):
        """Counts (int64[256]) of the byte values of `src`."""

    def code_lengths(self, counts, max_bits, isa=None):
        """Length-limited Huffman code lengths (uint8) for int64 `counts`."""


class Floatcodec(Protocol):
    def bound(self, count, dtype_code, ndim, chunk_log2):
        """The largest stream `count` elements can need."""

    def parse(self, blob):
        """(count, dtype_code, shape, header_size, chunk_log2) of a stream's checked header."""

    def encode(self, src, dtype_code, shape, chunk_log2, isa=None):
        """The stream of `src`, the flat unsigned-integer view of the elements: bytes, or a
        1-D uint8 array (no copy of what the kernel wrote)."""

    def decode(self, blob, out, isa=None):
        """Decode a checked stream into `out`, the flat unsigned-integer view of its elements."""


FAMILIES = {"adam": Adam, "quant": Quant, "topk": Topk, "huffman": Huffman, "floatcodec": Floatcodec}

# Functions one backend adds, for its own tests: the C top-k's sampling knobs and its exposed
# CRC-32 kernel (the Numba twins compute them inside their kernels).
BACKEND_ONLY = {
    ("c", "topk"): {"sampling", "candidate_capacity"},
    ("c", "huffman"): {"crc32"},
}
